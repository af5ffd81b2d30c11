"""Completion webhooks against the real binary: a receiver (an
http.server in this process) gets exactly one signed delivery per final
task (COMPLETED, FAILED, cancelled), a receiver that fails twice gets three
and the task says delivered, one that never answers 2xx ends undeliverable,
and a callback URL to a denied address or with another scheme is refused
with 400. The deployments allow 127.0.0.0/8 (denied by default) so that
the receiver on this machine can be reached."""
import hashlib
import hmac
import http.server
import json
import threading
import time
import uuid

import pytest
import requests

from conftest import _deployment

SECRET = "e2e-webhook-secret-0123456789"
ENV = {"FAAS_WEBHOOK_SECRET": SECRET, "FAAS_WEBHOOK_BACKOFF": "200ms", "FAAS_WEBHOOK_MAX_ATTEMPTS": "3",
       "FAAS_WEBHOOK_TIMEOUT": "3s"}

SRC = """
import time
def f(x):
    if x == "boom":
        raise ValueError("boom")
    if x == "sleep":
        time.sleep(30)
    return x
"""


class Receiver:
    """Records every POST; /flaky/... answers 500 to the first two posts of
    its path, /dead/... always 500, anything else 200."""

    def __init__(self):
        self.lock = threading.Lock()
        self.posts = []
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with rec.lock:
                    rec.posts.append((self.path, requests.structures.CaseInsensitiveDict(self.headers.items()), body))
                    n = sum(1 for p in rec.posts if p[0] == self.path)
                fail = self.path.startswith("/dead/") or (self.path.startswith("/flaky/") and n <= 2)
                self.send_response(500 if fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def of(self, path):
        with self.lock:
            return [(h, b) for p, h, b in self.posts if p == path]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module", params=["up", "split", "sentinel"])
def hooked(request):
    yield from _deployment(request, request.param, extra=["--webhook-allow", "127.0.0.0/8"], env=ENV)


def register(s, **extra):
    r = s.post("/register_function", {"name": "f", "source": SRC, **extra})
    assert r.status_code == 200, r.text
    return r.json()["function_id"]


def call(s, fid, arg, **extra):
    r = s.post("/execute_function", {"function_id": fid, "args": [arg], **extra})
    assert r.status_code == 200, r.text
    return r.json()["task_id"]


def wait_callback(s, tid, state, timeout=30):
    deadline = time.time() + timeout
    body = None
    while time.time() < deadline:
        body = s.get(f"/result/{tid}?wait=1s").json()
        if body.get("callback", {}).get("state") == state:
            return body
        time.sleep(0.05)
    raise AssertionError(f"task {tid}: callback {body and body.get('callback')}, want {state}")


def verify(headers, body, key):
    """What a receiver does (the README's snippet)."""
    parts = dict(p.split("=", 1) for p in headers["X-WasmFaaS-Signature"].split(","))
    assert parts["t"] == headers["X-WasmFaaS-Timestamp"]
    assert abs(time.time() - int(parts["t"])) < 300
    want = hmac.new(key.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], want), "bad signature"


def test_one_signed_delivery_per_final_task(hooked, receiver):
    s = hooked
    fid = register(s)
    paths = {name: f"/ok/{name}-{uuid.uuid4()}" for name in ("completed", "failed", "cancelled", "running")}
    done = call(s, fid, "hi", callback_url=receiver.url + paths["completed"])
    failed = call(s, fid, "boom", callback_url=receiver.url + paths["failed"])
    delayed = call(s, fid, "hi", delay=60, callback_url=receiver.url + paths["cancelled"])
    running = call(s, fid, "sleep", callback_url=receiver.url + paths["running"])
    assert s.get(f"/result/{delayed}").json()["callback"] == {"url": receiver.url + paths["cancelled"], "state": "waiting",
                                                            "attempts": 0}
    assert requests.delete(s.url + "/task/" + delayed, timeout=30).status_code == 200
    deadline = time.time() + 30
    while s.get(f"/status/{running}").json()["status"] != "RUNNING":
        assert time.time() < deadline
        time.sleep(0.05)
    assert requests.delete(s.url + "/task/" + running, timeout=30).status_code == 200
    key = s.get("/webhook_secret").json()["secret"]
    assert key == SECRET  # open mode: the secret itself
    want = {done: "COMPLETED", failed: "FAILED", delayed: "FAILED", running: "FAILED"}
    for tid, name in zip((done, failed, delayed, running), ("completed", "failed", "cancelled", "running")):
        result = wait_callback(s, tid, "delivered")
        assert result["status"] == want[tid]
        assert result["callback"]["attempts"] == 1 and "last_error" not in result["callback"], result["callback"]
        posts = receiver.of(paths[name])
        assert len(posts) == 1, (name, posts)
        headers, body = posts[0]
        verify(headers, body, key)
        assert headers["Content-Type"] == "application/json"
        assert headers["X-WasmFaaS-Task-Id"] == tid
        assert headers["X-WasmFaaS-Delivery-Attempt"] == "1"
        assert headers["Idempotency-Key"] == f"{tid}:{result['attempts']}"
        # The body is GET /result's answer, without the callback object.
        del result["callback"]
        assert json.loads(body) == result
    assert json.loads(receiver.of(paths["failed"])[0][1])["error"]["kind"] == "USER_EXCEPTION"
    assert json.loads(receiver.of(paths["cancelled"])[0][1])["error"]["kind"] == "CANCELLED"
    # No second delivery comes later.
    time.sleep(1)
    for path in paths.values():
        assert len(receiver.of(path)) == 1


def metric(s, name, **labels):
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in s.get("/metrics").text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[1])
    raise AssertionError(f"{want} not in /metrics")


def test_a_receiver_failing_twice_gets_three_deliveries(hooked, receiver):
    s = hooked
    failed_before = metric(s, "faas_webhook_deliveries_total", outcome="failed")
    delivered_before = metric(s, "faas_webhook_deliveries_total", outcome="delivered")
    path = f"/flaky/{uuid.uuid4()}"
    fid = register(s, callback_url=receiver.url + path)  # the function's default
    tid = call(s, fid, 7)
    result = wait_callback(s, tid, "delivered")
    cb = result["callback"]
    assert cb["url"] == receiver.url + path and cb["attempts"] == 3 and cb["last_error"] == "HTTP 500", cb
    assert "next_attempt_at" not in cb and "last_attempt_at" in cb
    posts = receiver.of(path)
    assert len(posts) == 3, posts
    assert [h["X-WasmFaaS-Delivery-Attempt"] for h, _ in posts] == ["1", "2", "3"]
    assert {h["Idempotency-Key"] for h, _ in posts} == {f"{tid}:1"}
    assert len({b for _, b in posts}) == 1  # the same body every time
    for h, b in posts:
        verify(h, b, SECRET)
    time.sleep(0.5)
    assert len(receiver.of(path)) == 3
    assert metric(s, "faas_webhook_deliveries_total", outcome="delivered") == delivered_before + 1
    assert metric(s, "faas_webhook_deliveries_total", outcome="failed") == failed_before + 2


def test_a_dead_receiver_ends_undeliverable(hooked, receiver):
    s = hooked
    before = metric(s, "faas_webhook_deliveries_total", outcome="undeliverable")
    path = f"/dead/{uuid.uuid4()}"
    fid = register(s, callback_url=receiver.url + "/ok/never")
    tid = call(s, fid, 1, callback_url=receiver.url + path)  # the call's own wins
    result = wait_callback(s, tid, "undeliverable")
    assert result["callback"]["attempts"] == 3 and result["callback"]["last_error"] == "HTTP 500", result["callback"]
    assert len(receiver.of(path)) == 3 and receiver.of("/ok/never") == []
    assert metric(s, "faas_webhook_deliveries_total", outcome="undeliverable") == before + 1
    assert metric(s, "faas_webhooks_pending") >= 0


def test_no_callback_no_delivery(hooked, receiver):
    s = hooked
    fid = register(s, callback_url=receiver.url + "/ok/default-off")
    tid = call(s, fid, 1, callback_url=None)
    body = s.wait_result(tid)
    assert body["status"] == "COMPLETED" and "callback" not in body
    time.sleep(0.5)
    assert receiver.of("/ok/default-off") == []


@pytest.mark.parametrize("url,detail", [
    ("http://10.0.0.1/hook", "10.0.0.1 is a private address"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[::1]:8000/hook", "loopback"),  # 127.0.0.0/8 is allowed here, ::1 is not
    ("http://192.168.0.10:9000/", "private"),
    ("ftp://example.com/hook", 'scheme "ftp" is not allowed'),
    ("file:///etc/passwd", 'scheme "file" is not allowed'),
    ("example.com/hook", "not an absolute URL"),
])
def test_refused_callback_urls(hooked, url, detail):
    s = hooked
    fid = register(s)
    for path, body in (("/execute_function", {"function_id": fid, "args": [1], "callback_url": url}),
                       ("/execute_batch", {"function_id": fid, "calls": [{"args": [1]}], "callback_url": url}),
                       ("/register_function", {"name": "f", "source": SRC, "callback_url": url})):
        r = s.post(path, body)
        assert r.status_code == 400, (path, r.status_code, r.text)
        assert detail in r.json()["detail"], r.text
        assert "callback_url" in r.json()["detail"]
