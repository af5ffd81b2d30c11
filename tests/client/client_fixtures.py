"""Fixtures of the Python client's tests: the real `faas` binary, started
once per test module (`faas up` with 2 sandboxes and a 3 s task timeout),
and the client package from the checkout (clients/python).

Test modules import the fixtures from here. (This is not a conftest.py on
purpose: tests/e2e does `from conftest import ...`, and a second
conftest.py would take its place when both directories run in one session.)

FAAS_BIN names the binary (default: bin/faas, which `make build` makes).
Run with Debian's python3 (it has dill):

    FAAS_BIN=$PWD/bin/faas /usr/bin/python3 -m pytest -q tests/client
"""
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
import uuid

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLIENT_SRC = os.path.join(ROOT, "clients", "python")
FAAS = os.environ.get("FAAS_BIN", os.path.join(ROOT, "bin", "faas"))
TASK_TIMEOUT = "3s"

# The package under test comes from the checkout, not from anything installed.
if CLIENT_SRC not in sys.path:
    sys.path.insert(0, CLIENT_SRC)


def _die_with_parent():
    """In the child: get SIGTERM when pytest dies, even if it is killed
    before the fixture's teardown (Linux only; best effort)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FaasServer:
    def __init__(self, env=None, extra=()):
        self.env = env
        self.extra = list(extra)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = tempfile.NamedTemporaryFile(prefix="faas-client-test-", suffix=".log", delete=False)
        self.proc = None

    def start(self):
        args = [FAAS, "up", "--addr", "127.0.0.1:%d" % self.port, "-w", "2", "--timeout", TASK_TIMEOUT] + self.extra
        env = dict(os.environ, **(self.env or {}))
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_die_with_parent, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s; log:\n%s" % (args, self.proc.returncode, self.tail()))
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200 and json.load(r).get("status") == "ok":
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("%s is not healthy after 60s; log:\n%s" % (self.url, self.tail()))

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass

    def tail(self, n=4000):
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read()[-n:].decode("utf-8", "replace")


def running_server(request, **kwargs):
    """A started FaasServer (generator for fixtures), stopped afterwards."""
    if not os.path.isfile(FAAS) or not os.access(FAAS, os.X_OK):
        pytest.fail("the faas binary %s is missing: run `make build` first, or set FAAS_BIN" % FAAS,
                    pytrace=False)
    s = FaasServer(**kwargs)
    try:
        s.start()
    except Exception:
        s.stop()
        raise
    failed_before = request.session.testsfailed
    yield s
    s.stop()
    if request.session.testsfailed > failed_before:
        sys.stderr.write("\n----- faas log (tail) -----\n%s\n" % s.tail())
    s.log.close()
    os.unlink(s.log.name)


@pytest.fixture(scope="module")
def server(request):
    yield from running_server(request)


@pytest.fixture
def client(server):
    import wasmfaas
    c = wasmfaas.Client(server.url, timeout=30)
    yield c
    c.close()


class RequestLog:
    """Wraps a client's transport and records every request as (method,
    path without the query)."""

    def __init__(self, client):
        self.calls = []
        self._inner = client.transport.request

        def request(method, path, body=None, timeout=None):
            self.calls.append((method, path.split("?")[0]))
            return self._inner(method, path, body, timeout)

        client.transport.request = request

    def count(self, method, prefix):
        return sum(1 for m, p in self.calls if m == method and p.startswith(prefix))


@pytest.fixture
def request_log():
    return RequestLog


# A module of "yours" the bundle tests send (ModuleTree.write it as
# "PFX_geo.py" or the like): a dataclass, functions that build and check
# instances of it, and its own path.
POINT_MODULE = """
    import math
    from dataclasses import dataclass


    @dataclass
    class Point:
        x: float
        y: float

        def norm(self):
            return math.hypot(self.x, self.y)


    def scale(p, k):
        return Point(p.x * k, p.y * k)


    def is_mine(p):
        return type(p) is Point


    def where():
        return __file__
"""


class ModuleTree:
    """Modules and packages of "yours" written under a directory on
    sys.path (the bundle tests). Every name starts with a fresh prefix
    (``PFX_`` in paths and text given to write() stands for it), so tests
    never share sys.modules entries or the client's per-module decisions.
    cleanup() forgets the modules and takes the directory off sys.path."""

    def __init__(self, root):
        self.root = root
        self.prefix = "wfb%s_" % uuid.uuid4().hex[:8]
        sys.path.insert(0, str(root))
        importlib.invalidate_caches()

    def name(self, short):
        return self.prefix + short

    def write(self, relpath, text="", binary=None):
        path = self.root / relpath.replace("PFX_", self.prefix)
        path.parent.mkdir(parents=True, exist_ok=True)
        if binary is not None:
            path.write_bytes(binary)
        else:
            path.write_text(textwrap.dedent(text).replace("PFX_", self.prefix))
        importlib.invalidate_caches()
        return path

    def load(self, short):
        return importlib.import_module(self.name(short))

    def cleanup(self):
        for name in list(sys.modules):
            if name.startswith(self.prefix):
                del sys.modules[name]
        try:
            sys.path.remove(str(self.root))
        except ValueError:
            pass


@pytest.fixture
def module_tree(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    t = ModuleTree(root)
    yield t
    t.cleanup()
