"""End-to-end fixtures: the real `faas` binary, started the two ways a user
starts it, and a client that speaks the course protocol.

    server "up":    faas up (API + local dispatcher + embedded Redis)
    server "split": redis-server + faas api + faas dispatcher -m local
    server "sentinel": Redis Sentinel (a primary, a replica, three sentinels,
                    all redis-server) + faas api + faas dispatcher -m local,
                    both given the redis-sentinel:// URL
    "push", "pull": redis-server + faas api + faas dispatcher -m push|pull
                    + one push-worker|pull-worker with 2 sandboxes

FAAS_BIN names the binary (default: bin/faas, which `make build` makes).
"""
import codecs
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import dill
import pytest
import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FAAS = os.environ.get("FAAS_BIN", os.path.join(ROOT, "bin", "faas"))
TIMEOUT = "3s"  # task timeout the servers run with, so limit tests are quick


def serialize(obj):
    return codecs.encode(dill.dumps(obj), "base64").decode()


def deserialize(s):
    return dill.loads(codecs.decode(s.encode(), "base64"))


def client_payloads(src, *exprs):
    """Payloads exactly as a course client script makes them: src runs as
    __main__ of a fresh Debian python3, each expression is serialize()d."""
    script = (
        "import codecs, dill, json, sys\n"
        + src
        + "\nprint(json.dumps([codecs.encode(dill.dumps(eval(e)), 'base64').decode() "
        "for e in json.loads(sys.argv[1])]))\n"
    )
    import json

    out = subprocess.run(["/usr/bin/python3", "-c", script, json.dumps(list(exprs))],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not healthy after {timeout}s")


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class RedisError(Exception):
    """An error reply of a Redis server."""


def redis_call(port, *args, timeout=2.0):
    """One command to the Redis server or sentinel on 127.0.0.1:port, its
    reply decoded (RESP2: str, int, None, list; an error reply raises
    RedisError). Enough for the fixtures, which need no Redis client."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"".join(parts))
        with sock.makefile("rb") as f:
            return _resp(f, port)


def _resp(f, port):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError(f"127.0.0.1:{port} closed the connection mid-reply")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_resp(f, port) for _ in range(n)]
    raise ConnectionError(f"127.0.0.1:{port}: unexpected reply {line!r}")


class Sentinel:
    """A Redis Sentinel deployment on free loopback ports: a primary, its
    replicas and three sentinels, every one a redis-server process
    (`redis-server sentinel.conf --sentinel` is what Debian's redis-sentinel
    would run: the package redis-server has no redis-sentinel binary, and
    needs none). Started by spawn (Server.spawn), so stopped with the rest.

    With durable, the settings of the README's deployment: every server
    fsyncs its append-only file on every write and the primary refuses
    writes while no replica is within a second of it (min-replicas-to-write
    1); then there are two replicas, so that the promoted one still has one
    and takes writes. Without, one replica and no persistence (the
    default asynchronous replication)."""

    MASTER = "faas"

    def __init__(self, tmp, spawn, durable=False):
        self.tmp, self.spawn, self.durable = tmp, spawn, durable
        self.nreplicas = 2 if durable else 1
        self.ports = {}  # process name -> port
        self.sentinels = []

    def start(self):
        common = ["--bind", "127.0.0.1", "--save", "", "--repl-diskless-sync", "yes",
                  "--repl-diskless-sync-delay", "0"]
        if self.durable:
            common += ["--appendonly", "yes", "--appendfsync", "always", "--min-replicas-to-write", "1",
                       "--min-replicas-max-lag", "1"]
        else:
            common += ["--appendonly", "no"]
        primary = None
        for i in range(1 + self.nreplicas):
            name = "redis-primary" if i == 0 else f"redis-replica{i}"
            port = free_port()
            d = os.path.join(self.tmp, name)
            os.makedirs(d)
            args = ["redis-server", "--port", str(port), "--dir", d] + common
            if primary is not None:
                args += ["--replicaof", "127.0.0.1", str(primary)]
            else:
                primary = port
            self.spawn(name, args)
            self.ports[name] = port
            wait_port(port)
        for i in range(3):
            name = f"sentinel{i + 1}"
            port = free_port()
            d = os.path.join(self.tmp, name)
            os.makedirs(d)
            conf = os.path.join(d, "sentinel.conf")
            with open(conf, "w") as f:
                f.write(f"port {port}\nbind 127.0.0.1\ndir {d}\n"
                        f"sentinel monitor {self.MASTER} 127.0.0.1 {primary} 2\n"
                        f"sentinel down-after-milliseconds {self.MASTER} 1000\n"
                        f"sentinel failover-timeout {self.MASTER} 5000\n"
                        f"sentinel parallel-syncs {self.MASTER} 1\n")
            self.spawn(name, ["redis-server", conf, "--sentinel"])
            self.ports[name] = port
            self.sentinels.append(port)
        for port in self.sentinels:
            wait_port(port)
        self.wait_ready(self.nreplicas)

    def url(self, db=0):
        addrs = ",".join(f"127.0.0.1:{p}" for p in self.sentinels)
        return f"redis-sentinel://{addrs}/{db}?master={self.MASTER}"

    def _sentinel(self, port, *args):
        reply = redis_call(port, "SENTINEL", *args)
        return [dict(zip(r[::2], r[1::2])) for r in reply]

    def wait_ready(self, nreplicas, timeout=60):
        """Waits until every sentinel knows the primary, nreplicas replicas
        in sync with it and the two other sentinels."""
        deadline = time.time() + timeout
        for port in self.sentinels:
            while True:
                try:
                    replicas = self._sentinel(port, "REPLICAS", self.MASTER)
                    others = self._sentinel(port, "SENTINELS", self.MASTER)
                    up = [r for r in replicas if "down" not in r["flags"] and "disconnected" not in r["flags"]
                          and r.get("master-link-status") == "ok"]
                    if len(up) == nreplicas and len(others) == 2:
                        break
                    state = f"replicas {replicas}, {len(others)} other sentinels"
                except (OSError, RedisError) as e:
                    state = repr(e)
                if time.time() > deadline:
                    raise RuntimeError(f"sentinel on {port} did not see the deployment within {timeout}s: {state}")
                time.sleep(0.1)

    def primary_port(self):
        """The port of the primary, as the first sentinel that answers says."""
        err = None
        for port in self.sentinels:
            try:
                host, p = redis_call(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.MASTER)
                return int(p)
            except (OSError, RedisError, TypeError, ValueError) as e:
                err = e
        raise RuntimeError(f"no sentinel names the primary: {err!r}")

    def kill_primary(self, procs, timeout=60):
        """SIGKILLs the primary (procs: name -> Popen) and waits until the
        sentinels have promoted a replica that says it is the primary now.
        Returns the name of the promoted server."""
        old = self.primary_port()
        name = next(n for n, p in self.ports.items() if p == old)
        os.killpg(procs[name].pid, signal.SIGKILL)
        procs[name].wait(timeout=20)
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                new = self.primary_port()
                if new != old and redis_call(new, "ROLE")[0] == "master":
                    return next(n for n, p in self.ports.items() if p == new)
            except (OSError, RedisError, RuntimeError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the sentinels promoted no replica within {timeout}s of killing {name}")


class Server:
    """A running deployment and a course-style client for it.

    timeout is the task timeout of the processes that run sandboxes;
    sandboxes the number of sandboxes of a local dispatcher (up, split); extra
    are flags given to every faas process (up, or api and dispatcher); env
    are variables added to their environment (FAAS_TOKENS, ...: each
    process reads those of its own flags); durable chooses the durable
    settings of a "sentinel" deployment (see Sentinel)."""

    def __init__(self, kind, tmp, timeout=TIMEOUT, extra=(), env=None, sandboxes=2, durable=False):
        self.kind = kind
        self.durable = durable  # kind "sentinel": the durable settings (Sentinel)
        self.sandboxes = str(sandboxes)
        self.tmp = tmp
        self.timeout = timeout
        self.extra = list(extra)
        self.env = dict(env or {})
        self.procs = {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.logs = {}

    def spawn(self, name, args):
        log = open(os.path.join(self.tmp, name + ".log"), "ab")
        self.logs[name] = log.name
        self.procs[name] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True, env={**os.environ, **self.env})
        return self.procs[name]

    def start(self):
        limits = ["--timeout", self.timeout]
        if self.kind == "up":
            self.spawn("up", [FAAS, "up", "--addr", f"127.0.0.1:{self.port}", "-w", self.sandboxes] + limits + self.extra)
            wait_http(self.url, self.procs["up"])
            return
        if self.kind == "sentinel":
            self.sentinel = Sentinel(self.tmp, self.spawn, durable=self.durable)
            self.sentinel.start()
            self.redis_url = self.sentinel.url()
        else:
            self.redis_port = free_port()
            self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
            self.spawn("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no", "--dir", self.tmp])
            wait_port(self.redis_port)
        self.spawn("api", [FAAS, "api", "--addr", f"127.0.0.1:{self.port}", "--redis", self.redis_url] + self.extra)
        self.start_dispatcher()
        wait_http(self.url, self.procs["api"])

    def primary_port(self):
        """The port of the Redis server that takes writes now: the one
        redis-server, or the primary the sentinels name."""
        if self.kind == "sentinel":
            return self.sentinel.primary_port()
        return self.redis_port

    def start_dispatcher(self):
        if self.kind in ("push", "pull"):
            port = free_port()
            self.spawn("dispatcher", [FAAS, "dispatcher", "-m", self.kind, "-p", str(port), "--bind", "127.0.0.1",
                                      "--redis", self.redis_url, "--lease", "2s", "--timeout", self.timeout] + self.extra)
            self.worker_args = [FAAS, f"{self.kind}-worker", "2", f"tcp://127.0.0.1:{port}", "--timeout", self.timeout]
            self.spawn("worker", self.worker_args)
            return
        self.spawn("dispatcher", [FAAS, "dispatcher", "-m", "local", "-w", self.sandboxes, "--redis", self.redis_url,
                                  "--lease", "2s", "--timeout", self.timeout] + self.extra)

    def kill(self, name, sig=signal.SIGKILL):
        p = self.procs[name]
        os.killpg(p.pid, sig)
        p.wait(timeout=20)

    def stop(self):
        for name, p in reversed(list(self.procs.items())):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                    p.wait(timeout=15)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()

    def dump_logs(self):
        for name, path in self.logs.items():
            with open(path, "rb") as f:
                data = f.read()[-4000:].decode("utf-8", "replace")
            sys.stderr.write(f"\n----- {name} log (tail) -----\n{data}\n")

    # --- the course protocol
    def post(self, path, body):
        return requests.post(self.url + path, json=body, timeout=30)

    def get(self, path):
        return requests.get(self.url + path, timeout=30)

    def register(self, payload, name="fn"):
        r = self.post("/register_function", {"name": name, "payload": payload})
        assert r.status_code == 200, r.text
        return r.json()["function_id"]

    def execute(self, function_id, payload):
        r = self.post("/execute_function", {"function_id": function_id, "payload": payload})
        assert r.status_code == 200, r.text
        return r.json()["task_id"]

    def wait_result(self, task_id, timeout=60):
        """Poll /result as a course client would (with long-polling)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = self.get(f"/result/{task_id}?wait=5s")
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["task_id"] == task_id
            if body["status"] in ("COMPLETED", "FAILED"):
                return body
        raise AssertionError(f"task {task_id} not final after {timeout}s")


def _deployment(request, kind, **server_args):
    if not os.path.exists(FAAS):
        pytest.fail(f"{FAAS} is missing: run `make build` first (or set FAAS_BIN)")
    if kind != "up" and shutil.which("redis-server") is None:
        # Also the sentinels' binary (redis-server --sentinel): a missing one
        # fails the test, it never skips it.
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    tmp = tempfile.mkdtemp(prefix="faas-e2e-")
    s = Server(kind, tmp, **server_args)
    try:
        s.start()
    except Exception:
        s.stop()
        s.dump_logs()
        raise
    yield s
    s.stop()
    if request.session.testsfailed:
        s.dump_logs()
    shutil.rmtree(tmp, ignore_errors=True)


# The deployments of the suites that run on Redis: "split" on one
# redis-server, "sentinel" on a primary + replica + 3 sentinels (issue 14:
# the e2e suite runs on both from the same test code). Every module fixture
# that runs a split deployment runs a sentinel one too.
@pytest.fixture(scope="module", params=["up", "split", "sentinel"])
def server(request):
    yield from _deployment(request, request.param)


@pytest.fixture(scope="module", params=["split", "sentinel"])
def split_server(request):
    """redis-server (or Redis Sentinel) + faas api + faas dispatcher as
    separate processes."""
    yield from _deployment(request, request.param)
