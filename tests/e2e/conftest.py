"""End-to-end fixtures: the real `faas` binary, started the two ways a user
starts it, and a client that speaks the course protocol.

    server "up":    faas up (API + local dispatcher + embedded Redis)
    server "split": redis-server + faas api + faas dispatcher -m local
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


class Server:
    """A running deployment and a course-style client for it.

    timeout is the task timeout of the processes that run sandboxes;
    sandboxes the number of sandboxes of a local dispatcher (up, split); extra
    are flags given to every faas process (up, or api and dispatcher); env
    are variables added to their environment (FAAS_TOKENS, ...: each
    process reads those of its own flags)."""

    def __init__(self, kind, tmp, timeout=TIMEOUT, extra=(), env=None, sandboxes=2):
        self.kind = kind
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
        self.redis_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.spawn("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", self.tmp])
        wait_port(self.redis_port)
        self.spawn("api", [FAAS, "api", "--addr", f"127.0.0.1:{self.port}", "--redis", self.redis_url] + self.extra)
        self.start_dispatcher()
        wait_http(self.url, self.procs["api"])

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
    if kind == "split" and shutil.which("redis-server") is None:
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


@pytest.fixture(scope="module", params=["up", "split"])
def server(request):
    yield from _deployment(request, request.param)


@pytest.fixture(scope="module")
def split_server(request):
    """redis-server + faas api + faas dispatcher as separate processes."""
    yield from _deployment(request, "split")
