"""Harness of the adversarial suite: the real `faas up`, an innocent canary
caller, a host canary directory, and the checks every case ends with.

Not a conftest.py on purpose: tests/e2e does `from conftest import ...`, and
a second conftest.py would replace it in sys.modules when the directories run
in one session (see tests/client/client_fixtures.py). Test modules import the
fixtures from here.

Every attack goes through `Harness.attack()` (HTTP cases call
`Harness.check_unaffected()` themselves), which afterwards checks that
  (a) the server still answers /healthz and runs a normal task correctly,
  (b) a canary task an innocent caller submitted concurrently completed with
      the right value,
  (c) the host canary files are unchanged and unread (content, mtime, atime,
      no new files), and no marker file a hostile pickle would create exists,
  (d) the server still has exactly its sandbox children (none leaked, no
      zombie, no grandchild), and its log holds no panic, ERROR or 5xx;
      and, when the module's server is shut down (SIGTERM), no process of
      its group outlives it.

Tenants (issue 7, items 1-3) are not built yet. The innocent caller is the
`victim` Client; when tokens exist, give `Client` a token and start the
server with FAAS_TOKENS (see `Server.__init__(tokens=...)`), and the cases
that say "TENANT" in their docstring can grow cross-tenant checks.

FAAS_BIN names the binary (default: bin/faas). Run with Debian's python3:

    FAAS_BIN=$PWD/bin/faas /usr/bin/python3 -m pytest -q tests/adversarial
"""
import atexit
import codecs
import json
import os
import random
import re
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
DEBIAN_PYTHON = "/usr/bin/python3"
TASK_TIMEOUT = 3  # seconds: `faas up --timeout 3s`
SANDBOXES = 2
MEMORY = "256MiB"
OUTPUT_CAP = 1 << 20  # the default --output-cap
RESULT_CAP = 10 << 20  # the default --result-cap

FINAL = ("COMPLETED", "FAILED")


def serialize(obj):
    return codecs.encode(dill.dumps(obj), "base64").decode()


def deserialize(s):
    return dill.loads(codecs.decode(s.encode(), "base64"))


def b64(data):
    """base64 of raw bytes, as a course client's codecs would send them."""
    return codecs.encode(data, "base64").decode()


# --- payloads made as a course client makes them --------------------------

_MAKER = r"""
import codecs, dill, json, sys
import __main__
out = []
for src, expr in json.load(sys.stdin):
    exec(src, __main__.__dict__)
    obj = eval(expr, __main__.__dict__)
    out.append(codecs.encode(dill.dumps(obj), "base64").decode())
json.dump(out, sys.stdout)
"""


def client_payloads(items):
    """[(source, expression)] -> [serialize(eval(expression))], each source
    run as the __main__ of one fresh Debian python3 (as a course client's
    script), so dill pickles the functions by value with their globals bound
    to __main__, exactly as a client does. One subprocess for all items."""
    out = subprocess.run([DEBIAN_PYTHON, "-c", _MAKER], input=json.dumps(items),
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError("could not make payloads:\n" + out.stderr[-3000:])
    return json.loads(out.stdout)


class Cases:
    """Function sources of a test module, pickled in one subprocess the
    first time any is needed: cases.fn("name") -> serialize(name)."""

    def __init__(self, sources, extra=None):
        self.sources = dict(sources)  # name -> source defining `name`
        self.extra = dict(extra or {})  # key -> (source, expression)
        self._made = None

    def _make(self):
        if self._made is None:
            keys = list(self.sources) + list(self.extra)
            items = [(self.sources[k], k) for k in self.sources] + [self.extra[k] for k in self.extra]
            self._made = dict(zip(keys, client_payloads(items)))
        return self._made

    def fn(self, name):
        return self._make()[name]

    def get(self, key):
        return self._make()[key]


# --- processes -------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid):
    """Direct children of pid, from /proc (all its threads)."""
    kids = set()
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    kids.update(int(x) for x in f.read().split())
            except OSError:
                pass
    except OSError:
        pass
    return sorted(kids)


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def proc_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def group_members(pgid):
    """Processes in process group pgid (the server's session: start_new_session)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid:
                    out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        for k in children(todo.pop()):
            out.append(k)
            todo.append(k)
    return out


_LIVE = set()  # process groups of servers started and not yet stopped


@atexit.register
def _kill_live_servers():
    """Last resort (pytest interrupted before teardown): no server survives us."""
    for pgid in list(_LIVE):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Server:
    """`faas up` on a free port, in its own process group."""

    def __init__(self, tmp, extra=(), tokens=None):
        self.tmp = tmp
        self.extra = list(extra)
        self.tokens = tokens  # for issue 7: "tenantA:tokenA,..." once auth exists
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log_path = os.path.join(tmp, "faas-up.log")

    def start(self):
        if not os.path.exists(FAAS):
            pytest.fail(f"{FAAS} is missing: run `make build` first (or set FAAS_BIN)")
        env = dict(os.environ)
        if self.tokens:
            env["FAAS_TOKENS"] = self.tokens
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [FAAS, "up", "--addr", f"127.0.0.1:{self.port}", "-w", str(SANDBOXES),
             "--timeout", f"{TASK_TIMEOUT}s", "--memory", MEMORY] + self.extra,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        _LIVE.add(self.proc.pid)
        log.close()
        try:
            self._wait_healthy()
        except BaseException:
            self.stop(fast=True)
            raise
        self.wait_sandboxes()

    def _wait_healthy(self):
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"faas up exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.05)
        else:
            raise RuntimeError("faas up not healthy after 60s:\n" + self.log_tail())

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def sandboxes(self):
        return [p for p in children(self.proc.pid) if proc_state(p) not in (None, "Z")]

    def wait_sandboxes(self, timeout=15):
        """Wait until the server has exactly its SANDBOXES children, each
        already running `faas sandbox` (a sandbox killed on timeout or
        cancellation is replaced asynchronously, and a child caught between
        fork and exec still shows the server's command line)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            kids = children(self.proc.pid)
            if len(kids) == SANDBOXES and all(proc_state(k) not in (None, "Z") and "sandbox" in proc_cmdline(k)
                                              for k in kids):
                return kids
            time.sleep(0.05)
        return children(self.proc.pid)

    def stop(self, fast=False):
        """SIGTERM to the server alone (a graceful shutdown, which must take
        its sandboxes with it), then SIGKILL to the whole process group.
        Returns the processes of the group that outlived the server."""
        if self.proc is None:
            return []
        if self.proc.poll() is None and not fast:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        leftovers = []
        if self.proc.poll() is not None:
            deadline = time.time() + 3
            while time.time() < deadline:
                leftovers = [p for p in group_members(self.proc.pid) if proc_state(p) not in (None, "Z")]
                if not leftovers:
                    break
                time.sleep(0.05)
            leftovers = [(p, proc_cmdline(p)) for p in leftovers]
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        _LIVE.discard(self.proc.pid)
        return leftovers if not fast else []

    def log_text(self, since=0):
        with open(self.log_path, "rb") as f:
            f.seek(since)
            return f.read().decode("utf-8", "replace")

    def log_size(self):
        return os.path.getsize(self.log_path)

    def log_tail(self, n=4000):
        return self.log_text()[-n:]


class Client:
    """A course-protocol caller (one tenant, once tenants exist)."""

    def __init__(self, server, token=None):
        self.server = server
        self.s = requests.Session()
        if token:
            self.s.headers["Authorization"] = "Bearer " + token

    @property
    def url(self):
        return self.server.url

    def post(self, path, body, timeout=30):
        return self.s.post(self.url + path, json=body, timeout=timeout)

    def get(self, path, timeout=30):
        return self.s.get(self.url + path, timeout=timeout)

    def register(self, payload=None, name="fn", source=None, isolation=None):
        body = {"name": name}
        if source is not None:
            body["source"] = source
        else:
            body["payload"] = payload
        if isolation:
            body["isolation"] = isolation
        r = self.post("/register_function", body)
        assert r.status_code == 200, r.text
        return r.json()["function_id"]

    def execute(self, fid, payload=None, args=None):
        if payload is None:
            payload = serialize((tuple(args or ()), {}))
        r = self.post("/execute_function", {"function_id": fid, "payload": payload})
        assert r.status_code == 200, r.text
        return r.json()["task_id"]

    def wait(self, tid, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = self.get(f"/result/{tid}?wait=5s", timeout=15)
            assert r.status_code == 200, r.text
            body = r.json()
            if body["status"] in FINAL:
                return body
        raise AssertionError(f"task {tid} not final after {timeout}s")

    def run(self, fid, *args, payload=None, timeout=60):
        return self.wait(self.execute(fid, payload=payload, args=args), timeout)


# --- the host canary -------------------------------------------------------

class HostCanary:
    """A directory on the host with a secret file the attacker names by its
    host path and tries to read, overwrite, delete or list. The file's atime
    is set well before its mtime, so under relatime (or strictatime) any
    read updates it; noatime mounts are detected and skip the atime check."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="faas-adv-host-")
        self.secret = "SECRET-" + "".join(random.choice("0123456789abcdef") for _ in range(32))
        self.path = os.path.join(self.dir, "secret.txt")
        self.marker = os.path.join(self.dir, "pwned")  # what hostile pickles try to create
        with open(self.path, "w") as f:
            f.write(self.secret)
        self.atime_works = self._arm(probe=True)

    def _arm(self, probe=False):
        st = os.stat(self.path)
        os.utime(self.path, ns=(st.st_mtime_ns - 10**12, st.st_mtime_ns))
        if not probe:
            return self.atime_works
        with open(self.path) as f:
            f.read()
        works = os.stat(self.path).st_atime_ns > st.st_mtime_ns - 10**12
        os.utime(self.path, ns=(st.st_mtime_ns - 10**12, st.st_mtime_ns))
        return works

    def snapshot(self):
        """The canary's metadata, without reading it (that would set atime)."""
        st = os.stat(self.path)
        return (sorted(os.listdir(self.dir)), st.st_size, st.st_mtime_ns, st.st_atime_ns, st.st_ino, st.st_mode)

    def check(self, before):
        names, size, mtime, atime, ino, mode = before
        names2, size2, mtime2, atime2, ino2, mode2 = self.snapshot()
        assert names2 == names, f"host canary dir changed: {names} -> {names2}"
        assert (size2, mtime2, ino2, mode2) == (size, mtime, ino, mode), "host canary file was modified or replaced"
        if self.atime_works:
            assert atime2 == atime, "the host canary file was read"
        with open(self.path) as f:
            assert f.read() == self.secret, "host canary file was modified"
        self._arm()
        assert not os.path.exists(self.marker), "a hostile payload created its marker on the host"

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# --- the harness -----------------------------------------------------------

CANARY_SRC = (
    "def canary(n, tag):\n"
    "    import hashlib\n"
    "    return tag, sum(i * i for i in range(n)), hashlib.sha256(tag.encode()).hexdigest()\n"
)
NORMAL_SRC = "def normal(a, b):\n    return {'sum': a + b, 'text': 'ok-' + str(a)}\n"

_BAD_LOG = re.compile(r"panic|goroutine \d+ \[|status=5\d\d|level=ERROR|fatal error|SIGSEGV|data race")


class Harness:
    """One `faas up` for a test module, an attacker and an innocent victim."""

    def __init__(self, tmp, extra=()):
        self.tmp = tmp
        self.extra = list(extra)
        self.restarts = 0  # servers a case killed (a bug reported by that case)
        self.server = Server(tmp, extra=self.extra)
        self.server.start()
        self.host = None
        try:
            self.attacker = Client(self.server)
            self.victim = Client(self.server)  # TENANT: another tenant's token once tenants exist
            self.host = HostCanary()
            self.host_state = None
            self.allowed_log = []  # regexes of log lines a case expects (none so far)
            pay = client_payloads([(CANARY_SRC, "canary"), (NORMAL_SRC, "normal")])
            self.canary_payload, self.normal_payload = pay
            self._register_helpers()
        except BaseException:
            self.finish(fast=True)
            raise

    def _register_helpers(self):
        self.canary_fid = self.victim.register(self.canary_payload, name="canary")
        self.normal_fid = self.victim.register(self.normal_payload, name="normal")

    # --- lifecycle around each case
    def begin(self):
        if not self.server.alive():
            # A previous case killed it (a bug already reported there):
            # start a fresh server so the next cases still test something.
            self.restarts += 1
            self.server.stop()
            self.server = Server(self.tmp, extra=self.extra)
            self.server.start()
            self.attacker.server = self.victim.server = self.server
            self._register_helpers()
        self.server.wait_sandboxes()
        self.log_mark = self.server.log_size()
        self.kids_before = self.server.wait_sandboxes()
        self.host._arm()
        self.host_state = self.host.snapshot()

    def finish(self, fast=False):
        if self.host is not None:
            self.host.remove()
        return self.server.stop(fast=fast)

    # --- a canary submitted concurrently by the innocent caller
    def submit_canary(self):
        tag = "c%08x" % random.getrandbits(32)
        n = random.randint(1000, 5000)
        return self.victim.execute(self.canary_fid, args=(n, tag)), (n, tag)

    def check_canary(self, tid, want, timeout=60):
        n, tag = want
        import hashlib
        body = self.victim.wait(tid, timeout)
        assert body["status"] == "COMPLETED", f"innocent canary task failed: {body.get('error')}"
        got = deserialize(body["result"])
        assert got == (tag, sum(i * i for i in range(n)), hashlib.sha256(tag.encode()).hexdigest()), got
        assert body["stdout"] == "" and body["stderr"] == "", "canary saw someone else's output"

    # --- (a)-(d)
    def check_unaffected(self, canary=None):
        srv = self.server
        assert srv.alive(), "the server died:\n" + srv.log_tail()
        r = requests.get(srv.url + "/healthz", timeout=5)
        assert r.status_code == 200 and r.json() == {"status": "ok"}, r.text
        if canary is not None:
            self.check_canary(*canary)
        a = random.randint(0, 10**6)
        body = self.victim.run(self.normal_fid, a, 7)
        assert body["status"] == "COMPLETED", body.get("error")
        assert deserialize(body["result"]) == {"sum": a + 7, "text": f"ok-{a}"}
        self.host.check(self.host_state)
        self.check_processes()
        self.check_log()

    def check_processes(self, timeout=15):
        """The server has exactly its sandboxes as children, none a zombie,
        none with children of its own. A sandbox killed a moment ago (a
        timeout, a cancellation) is still dying for a while: it keeps its
        state and command line until it exits, then is a zombie until the
        server reaps it, so one look can catch it in between. The checks
        must hold on one look within timeout; a leak, which lasts, fails."""
        deadline = time.time() + timeout
        while True:
            try:
                self._check_processes_once()
                return
            except AssertionError:
                if time.time() >= deadline:
                    raise
                time.sleep(0.2)

    def _check_processes_once(self):
        kids = self.server.wait_sandboxes()
        states = {k: proc_state(k) for k in kids}
        assert len(kids) == SANDBOXES, f"server has {len(kids)} children, want {SANDBOXES}: " + \
            ", ".join(f"{k} {states[k]} {proc_cmdline(k)!r}" for k in kids)
        assert all(s not in ("Z", None) for s in states.values()), f"zombie children: {states}"
        grand = [d for d in descendants(self.server.proc.pid) if d not in kids]
        assert not grand, f"sandboxes have children: {[(g, proc_cmdline(g)) for g in grand]}"
        for k in kids:
            assert "sandbox" in proc_cmdline(k), f"child {k} ({proc_state(k)}): {proc_cmdline(k)!r}"

    def check_log(self):
        text = self.server.log_text(self.log_mark)
        bad = [ln for ln in text.splitlines() if _BAD_LOG.search(ln)
               and not any(re.search(a, ln) for a in self.allowed_log)]
        assert not bad, "server log has errors:\n" + "\n".join(bad[:20])

    def sandbox_peak_rss(self):
        """Largest VmHWM (peak resident set) of the server's sandboxes, in bytes."""
        peak = 0
        for k in children(self.server.proc.pid):
            try:
                with open(f"/proc/{k}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]) * 1024)
            except OSError:
                pass
        return peak

    def log_since_begin(self):
        return self.server.log_text(self.log_mark)

    # --- one attack as a function run in the sandbox
    def attack(self, fn_payload, args=(), args_payload=None, expect=None, kind=None,
               timeout=60, source=None, isolation=None, name="attack", check=True, load=True):
        """Registers and runs fn with args while a canary runs beside it;
        returns the attack's final /result body (with "value": the
        deserialized result when COMPLETED, the exception when FAILED;
        load=False leaves hostile results alone: unpickling runs code).
        expect: "COMPLETED" or "FAILED"; kind: the error.kind wanted."""
        fid = self.attacker.register(fn_payload, name=name, source=source, isolation=isolation)
        tid = self.attacker.execute(fid, payload=args_payload, args=args)
        canary = self.submit_canary()
        body = self.attacker.wait(tid, timeout)
        body["function_id"] = fid
        if body["result"] is not None and load:
            try:
                body["value"] = deserialize(body["result"])
            except Exception as e:  # a platform exception we cannot load: report it
                body["value"] = e
        if expect is not None:
            assert body["status"] == expect, _summary(body)
        if kind is not None:
            assert body["status"] == "FAILED" and (body.get("error") or {}).get("kind") == kind, _summary(body)
        if check:
            self.check_unaffected(canary)
        assert self.host.secret not in json.dumps(body, default=str), "the host secret leaked into a result"
        return body


def _summary(body):
    err = body.get("error") or {}
    return (f"status={body['status']} kind={err.get('kind')} message={err.get('message')!r}\n"
            f"traceback={err.get('traceback', '')[-1500:]}\nstdout={body.get('stdout', '')[:300]!r}"
            f"\nstderr={body.get('stderr', '')[:300]!r}")


def make_harness(request, extra=(), fast_stop=False):
    tmp = tempfile.mkdtemp(prefix="faas-adv-")
    try:
        h = Harness(tmp, extra=extra)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    leftovers = []
    try:
        yield h
    finally:
        try:
            leftovers = h.finish(fast=fast_stop)
            if request.session.testsfailed or leftovers:
                sys.stderr.write(f"\n----- faas up log (tail) -----\n{h.server.log_tail()}\n")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    assert not leftovers, f"processes outlived a graceful shutdown of faas up: {leftovers}"


@pytest.fixture(scope="module")
def harness(request):
    yield from make_harness(request)


@pytest.fixture
def adv(harness):
    """The module's harness, re-armed for one case (server alive, log mark,
    sandbox count and host canary state recorded)."""
    harness.begin()
    yield harness
