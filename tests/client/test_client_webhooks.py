"""The Python client's completion webhooks against the real server (with
API tokens, so each tenant's key is its own): register(..., callback_url=)
as the function's default, submit(..., callback_url=) per call ("" none),
future.callback / callback_status(), Client.webhook_secret() and
verify_webhook() in a receiver, and a denied URL refused before a task
exists."""
import http.server
import threading
import time

import pytest

from client_fixtures import running_server  # noqa: F401  (also puts the client on sys.path)

import wasmfaas

TOKEN = "hooks-token-0123456789abcdef"


@pytest.fixture(scope="module")
def hooked(request):
    yield from running_server(request, env={"FAAS_TOKENS": "hooks:" + TOKEN, "FAAS_WEBHOOK_SECRET": "client-test-webhook-secret",
                                            "FAAS_WEBHOOK_ALLOW": "127.0.0.0/8"})


@pytest.fixture(scope="module")
def receiver():
    posts = []
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                posts.append((self.path, dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    def of(path):
        with lock:
            return [(h, b) for p, h, b in posts if p == path]
    yield "http://127.0.0.1:%d" % httpd.server_address[1], of
    httpd.shutdown()
    httpd.server_close()


def double(x):
    return 2 * x


def wait_delivered(fut):
    deadline = time.time() + 30
    while time.time() < deadline:
        cb = fut.callback_status()
        if cb["state"] == "delivered":
            return cb
        time.sleep(0.05)
    raise AssertionError("not delivered: %r" % (fut.callback_status(),))


def test_register_and_submit_with_callbacks(hooked, receiver):
    url, of = receiver
    with wasmfaas.Client(hooked.url, token=TOKEN) as c:
        key = c.webhook_secret()
        assert len(key) == 64 and key != "client-test-webhook-secret"  # the tenant's own, derived
        fn = c.register(double, callback_url=url + "/default")
        by_default = fn(1)
        own = c.submit(fn, 2, callback_url=url + "/own")
        none = fn.submit(3, callback_url="")
        assert [by_default.result(30), own.result(30), none.result(30)] == [2, 4, 6]
        assert by_default.callback["url"] == url + "/default"
        assert none.callback is None and none.callback_status() is None
        for fut, path in ((by_default, "/default"), (own, "/own")):
            cb = wait_delivered(fut)
            assert cb["attempts"] == 1
            (headers, body), = of(path)
            doc = wasmfaas.verify_webhook(headers, body, key)
            assert doc["task_id"] == fut.task_id and doc["status"] == "COMPLETED"
            assert wasmfaas.deserialize(doc["result"]) == fut.result()
            with pytest.raises(ValueError, match="does not match"):
                wasmfaas.verify_webhook(headers, body + b" ", key)
            with pytest.raises(ValueError, match="replay"):
                wasmfaas.verify_webhook(headers, body, key, now=time.time() + 600)


def test_denied_callback_urls_are_refused(hooked):
    with wasmfaas.Client(hooked.url, token=TOKEN) as c:
        with pytest.raises(wasmfaas.BadRequest, match="private address"):
            c.register(double, callback_url="http://10.0.0.1/hook")
        fn = c.register(double)
        with pytest.raises(wasmfaas.BadRequest, match="only http and https"):
            c.submit(fn, 1, callback_url="ftp://example.com/hook")
        with pytest.raises(ValueError, match="callback_url must be"):
            fn.submit(1, callback_url=5)
