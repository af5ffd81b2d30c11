"""The client without a working server: a server that is down, a fake one
that drops connections (the retry rules), and installing the package."""
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

import client_fixtures  # noqa: F401  (puts clients/python on sys.path)

import wasmfaas  # noqa: E402

CLIENT_SRC = client_fixtures.CLIENT_SRC
free_port = client_fixtures.free_port


def square(x):
    return x * x


class FakeServer:
    """Answers HTTP requests from a script: for the n-th request, answers[n]
    (the last one repeats) is None to close the connection without a word,
    or (status, json_text) to answer and close. Records (method, path)."""

    def __init__(self, answers, port=None, listen_after=0.0):
        self.answers = answers
        self.requests = []
        self.port = port or free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self._stop = threading.Event()
        self._listen_after = listen_after
        self._sock = None if listen_after else self._listen()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        if self._sock is None:
            time.sleep(self._listen_after)
            self._sock = self._listen()
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(5)
                self._answer(conn)
        self._sock.close()

    def _listen(self):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(16)
        sock.settimeout(0.1)
        return sock

    def _answer(self, conn):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        method, path, _ = lines[0].split(" ")
        length = 0
        for line in lines[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        n = len(self.requests)
        self.requests.append((method, path))
        answer = self.answers[min(n, len(self.answers) - 1)]
        if answer is None:
            return
        status, text = answer
        payload = text.encode()
        conn.sendall(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (status, len(payload), payload))

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.fixture
def fake():
    servers = []

    def make(*args, **kwargs):
        s = FakeServer(*args, **kwargs)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def test_server_down_raises_server_unavailable_quickly():
    url = "http://127.0.0.1:%d" % free_port()  # nothing listens there
    with wasmfaas.Client(url) as client:
        started = time.monotonic()
        with pytest.raises(wasmfaas.ServerUnavailable, match="127.0.0.1") as info:
            client.register(square)
        assert time.monotonic() - started < 5
        assert info.value.url == url
        assert isinstance(info.value, wasmfaas.WasmFaaSError)
    with wasmfaas.Client(url, retries=1) as client:
        with pytest.raises(wasmfaas.ServerUnavailable):
            client.status(str(uuid.uuid4()))
        assert client.health() is False
    with pytest.raises(wasmfaas.ServerUnavailable):
        with wasmfaas.Executor(url, retries=1) as ex:
            ex.submit(square, 2)


def test_post_is_not_retried_once_sent(fake):
    srv = fake([None])  # reads the request, then hangs up
    with wasmfaas.Client(srv.url, retries=3, backoff=0.01) as client:
        with pytest.raises(wasmfaas.ServerUnavailable, match="may or may not"):
            client.register(square)
    # Retrying could have registered twice (or, for execute, run a task twice).
    assert srv.requests == [("POST", "/register_function")]


def test_get_is_retried_on_connection_errors(fake):
    srv = fake([None])
    with wasmfaas.Client(srv.url, retries=2, backoff=0.01) as client:
        with pytest.raises(wasmfaas.ServerUnavailable):
            client.status(str(uuid.uuid4()))
    assert len(srv.requests) == 3

    task = str(uuid.uuid4())
    srv = fake([None, (503, '{"detail": "busy"}'), (200, '{"task_id": "%s", "status": "RUNNING"}' % task)])
    with wasmfaas.Client(srv.url, retries=2, backoff=0.01) as client:
        assert client.status(task) == "RUNNING"
    assert [m for m, _ in srv.requests] == ["GET"] * 3


def test_post_is_retried_when_the_connection_is_refused(fake):
    fid = str(uuid.uuid4())
    srv = fake([(200, '{"function_id": "%s"}' % fid)], listen_after=0.3)
    with wasmfaas.Client(srv.url, retries=6, backoff=0.1) as client:
        handle = client.register(square)
    assert handle.function_id == fid
    assert srv.requests == [("POST", "/register_function")]


def test_error_statuses_map_to_exceptions(fake):
    srv = fake([(422, '{"detail": "field \\"name\\" is required"}'),
                (413, '{"detail": "request body is larger than 33554432 bytes"}'),
                (404, '{"detail": "function x not found"}'),
                (500, '{"detail": "internal error"}')])
    with wasmfaas.Client(srv.url, retries=0) as client:
        with pytest.raises(wasmfaas.BadRequest, match="is required"):
            client.register(square)
        with pytest.raises(wasmfaas.PayloadTooLarge, match="larger than"):
            client.register(square)
        handle = wasmfaas.FunctionHandle(client, str(uuid.uuid4()))
        with pytest.raises(wasmfaas.FunctionNotFound):
            handle(1)
        with pytest.raises(wasmfaas.ServerError, match="internal error") as info:
            handle(1)
        assert info.value.status == 500


def test_pip_install_into_a_target_dir(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(CLIENT_SRC, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path / "target"
    # --no-deps: with --target pip ignores what is installed and would
    # fetch dill from PyPI; here dill comes from Debian's python3-dill.
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-index",
           "--no-deps", "--disable-pip-version-check", "--target", str(target), str(src)]
    env = dict(os.environ, PIP_NO_CACHE_DIR="1", PIP_ROOT_USER_ACTION="ignore")
    env.pop("PYTHONPATH", None)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    check = ("import wasmfaas, sys; "
             "print(wasmfaas.__file__); "
             "print(wasmfaas.deserialize(wasmfaas.serialize(lambda x: x + 1))(41))")
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60,
                         cwd=str(tmp_path), env=dict(env, PYTHONPATH=str(target)))
    assert out.returncode == 0, out.stderr
    path, value = out.stdout.split()
    assert path.startswith(str(target))
    assert value == "42"


def _task_server(fake, result_answers):
    """A fake server that registers, accepts one task, then answers the
    result polls with result_answers."""
    fid, tid = str(uuid.uuid4()), str(uuid.uuid4())
    answers = [(200, '{"function_id": "%s"}' % fid), (200, '{"task_id": "%s"}' % tid)]
    answers += [(200, text % {"tid": tid}) for text in result_answers]
    return fake(answers), tid


def test_unpicklable_remote_exception_becomes_remote_error(fake):
    failed = ('{"task_id": "%(tid)s", "status": "FAILED", "result": "Z2FyYmFnZQ==", '
              '"error": {"kind": "USER_EXCEPTION", "message": "Oops: it broke", '
              '"traceback": "Traceback (most recent call last):\\n  File \\"x.py\\", line 1, in f\\nOops: it broke\\n"}}')
    srv, tid = _task_server(fake, [failed])
    with wasmfaas.Client(srv.url, retries=0) as client:
        fut = client.submit(square, 3)
        with pytest.raises(wasmfaas.RemoteError, match="Oops: it broke") as info:
            fut.result(timeout=10)
    err = info.value
    assert (err.kind, err.message, err.task_id) == ("USER_EXCEPTION", "Oops: it broke", tid)
    assert "in f" in err.traceback and "in f" in "\n".join(err.__notes__)


def test_no_spinning_on_a_server_without_long_polling(fake):
    running = '{"task_id": "%(tid)s", "status": "RUNNING", "result": null}'
    done = '{"task_id": "%(tid)s", "status": "COMPLETED", "result": "gARLKi4="}'  # pickle of 42
    srv, _ = _task_server(fake, [running] * 3 + [done])
    with wasmfaas.Client(srv.url, retries=0) as client:
        started = time.monotonic()
        assert client.submit(square, 3).result(timeout=10) == 42
        elapsed = time.monotonic() - started
    # Each early "still running" answer makes the client pause longer
    # (0.1 s, 0.2 s, 0.4 s) instead of asking again at once.
    assert [m for m, _ in srv.requests] == ["POST", "POST", "GET", "GET", "GET", "GET"]
    assert elapsed >= 0.6
