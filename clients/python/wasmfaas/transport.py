"""HTTP/1.1 with keep-alive connections (one per thread), JSON bodies and
retries that never run a task twice.

Retry rules:

* GET (status, result, health) is idempotent: it is retried with
  exponential back-off on connection errors, timeouts and ``503``.
* POST (register, execute) is retried only when connecting failed, that is
  before a byte of the request was sent (connection refused, host
  unreachable, connect timeout). Once the request may have reached the
  server, an error is raised instead: retrying an execute could run the
  task twice.
* ``429`` (rate limit or queue quota) is retried for every method, after
  the server's ``Retry-After`` (capped): the server refused the request
  before doing anything, so a retry cannot run a task twice.

Large bodies are sent with ``Expect: 100-continue``, so a server that
refuses them (413) answers before the body is sent, instead of resetting
the connection in the middle of it.
"""
import http.client
import json
import random
import select
import socket
import threading
import time
import urllib.parse
import weakref

from .errors import ServerUnavailable, ServerError

__all__ = ["Transport", "Response"]

#: Bodies at least this large are sent with ``Expect: 100-continue``.
EXPECT_CONTINUE_BYTES = 1 << 20
#: How long to wait for ``100 Continue`` before sending the body anyway.
CONTINUE_WAIT = 2.0


#: Longest wait honoured from a 429's Retry-After.
MAX_RETRY_AFTER = 30.0


class Response:
    """A server's answer: ``status`` (int) and ``data`` (the decoded JSON
    body, or ``None`` when the body is not JSON; ``text`` has it raw);
    ``retry_after`` is the Retry-After header in seconds, if any."""

    __slots__ = ("status", "data", "text", "retry_after")

    def __init__(self, status, data, text, retry_after=None):
        self.status = status
        self.data = data
        self.text = text
        self.retry_after = retry_after

    @property
    def detail(self):
        """The server's ``detail`` (every error body is ``{"detail": ...}``)."""
        if isinstance(self.data, dict) and isinstance(self.data.get("detail"), str):
            return self.data["detail"]
        return (self.text or "").strip()[:500] or "HTTP %d" % self.status

    def __repr__(self):
        return "Response(%d, %r)" % (self.status, self.data if self.data is not None else self.text[:200])


class _NotSent(Exception):
    """Connecting failed: nothing of the request reached the server."""


class Transport:
    """Sends requests to one server. Thread-safe: each thread keeps its own
    keep-alive connection.

    ``timeout`` is the socket timeout of a request (a long-poll adds its
    wait to it); ``retries`` the number of retries after the first attempt;
    ``backoff`` the first pause between attempts, doubled each time (with
    jitter) up to ``max_backoff``.
    """

    def __init__(self, url, timeout=30.0, retries=4, backoff=0.1, max_backoff=2.0, token=None):
        parts = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme not in ("http", "https"):
            raise ValueError("url must be http:// or https://, not %r" % url)
        if not parts.hostname:
            raise ValueError("url has no host: %r" % url)
        self.url = "%s://%s%s" % (parts.scheme, parts.netloc, parts.path.rstrip("/"))
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self._token = token
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._local = threading.local()
        self._all = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = False

    # --- connections

    def _new_connection(self, timeout):
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=timeout)

    def _connection(self, timeout):
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None and _dropped(conn.sock):
            # The server closed it while idle: reconnect rather than send a
            # request into a dead connection.
            conn.close()
        if conn is None:
            conn = self._new_connection(timeout)
            self._local.conn = conn
            with self._lock:
                self._all.add(conn)
        conn.timeout = timeout
        if conn.sock is None:
            try:
                conn.connect()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                raise _NotSent(e) from e
        else:
            conn.sock.settimeout(timeout)
        return conn

    def close(self):
        """Close every connection (of every thread); later requests fail."""
        with self._lock:
            self._closed = True
            conns, self._all = list(self._all), weakref.WeakSet()
            self._local = threading.local()
        for c in conns:
            sock = c.sock
            try:
                if sock is not None:
                    # Wakes a thread blocked reading a long-poll answer.
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.close()
            except OSError:
                pass

    # --- requests

    def request(self, method, path, body=None, timeout=None):
        """Send ``method path`` with ``body`` (an object sent as JSON) and
        return a :class:`Response`; retry as the module documentation
        says; raise :class:`wasmfaas.ServerUnavailable` when the server
        cannot be reached, and :class:`wasmfaas.ServerError` for a GET that
        is still answered ``503`` after the retries."""
        idempotent = method in ("GET", "HEAD")
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        timeout = self.timeout if timeout is None else timeout
        attempt = 0
        while True:
            if self._closed:
                raise ServerUnavailable("the client is closed (%s)" % self.url, url=self.url)
            sent = True
            try:
                resp = self._once(method, path, payload, timeout)
            except _NotSent as e:
                err, sent, retriable = e.__cause__, False, True
            except (OSError, http.client.HTTPException) as e:
                err, retriable = e, idempotent
            else:
                if resp.status == 429 and attempt < self.retries:
                    # Refused before anything happened: safe to repeat.
                    time.sleep(min(MAX_RETRY_AFTER, resp.retry_after or self.backoff * (2 ** attempt)))
                    attempt += 1
                    continue
                if not (idempotent and resp.status == 503):
                    return resp
                err, retriable = None, True
            if not retriable or attempt >= self.retries:
                if err is None:
                    raise ServerError("%s %s%s: 503 %s" % (method, self.url, path, resp.detail),
                                      status=503, detail=resp.detail)
                raise self._unavailable(method, path, err, maybe_done=sent and not idempotent)
            delay = min(self.max_backoff, self.backoff * (2 ** attempt))
            time.sleep(delay * (0.5 + random.random() / 2))
            attempt += 1

    def _unavailable(self, method, path, err, maybe_done):
        if isinstance(err, socket.timeout):
            what = "no answer within the timeout"
        else:
            what = "%s: %s" % (type(err).__name__, err)
        msg = "cannot reach the WasmFaaS server at %s (%s %s: %s)" % (self.url, method, path, what)
        if maybe_done:
            msg += "; the request may or may not have been carried out"
        return ServerUnavailable(msg, url=self.url)

    def _once(self, method, path, payload, timeout):
        conn = self._connection(timeout)
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = "Bearer " + self._token
        if payload is not None:
            headers["Content-Type"] = "application/json"
        try:
            if payload is not None and len(payload) >= EXPECT_CONTINUE_BYTES and self._scheme == "http":
                resp = self._send_expecting_continue(conn, method, self._prefix + path, payload, headers)
            else:
                conn.request(method, self._prefix + path, payload, headers)
                resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
            if resp.will_close:
                conn.close()
        except BaseException:
            conn.close()
            raise
        data = None
        if text:
            try:
                data = json.loads(text)
            except ValueError:
                pass
        retry_after = None
        try:
            retry_after = float(resp.getheader("Retry-After"))
        except (TypeError, ValueError):
            pass
        return Response(resp.status, data, text, retry_after)

    def _send_expecting_continue(self, conn, method, url, payload, headers):
        conn.putrequest(method, url, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.putheader("Content-Length", str(len(payload)))
        conn.putheader("Expect", "100-continue")
        conn.endheaders()
        sock = conn.sock
        head = _peek_status_line(sock, CONTINUE_WAIT)
        if head:
            if head.startswith((b"HTTP/1.1 100", b"HTTP/1.0 100")):
                _consume_interim(sock)
            else:
                # A final answer (413, 400, ...) before the body: do not send it.
                resp = conn.getresponse()
                resp.will_close = True
                return resp
        try:
            conn.send(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The server answered and closed while we were sending: its
            # answer may still be readable.
            resp = http.client.HTTPResponse(sock, method=method)
            resp.begin()
            resp.will_close = True
            return resp
        return conn.getresponse()


def _peek_status_line(sock, timeout):
    """The start of the server's answer, left unread, once its first line
    (or 64 bytes) arrived; b"" if nothing came within timeout."""
    deadline = time.monotonic() + timeout
    head = b""
    while b"\n" not in head and len(head) < 64:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not _readable(sock, remaining):
            return head if b"\n" in head else b""
        more = sock.recv(64, socket.MSG_PEEK)
        if not more:
            raise http.client.RemoteDisconnected("the server closed the connection")
        if more == head:
            time.sleep(0.001)  # part of a line: wait for the rest
        head = more
    return head


def _consume_interim(sock):
    """Read one interim response (``HTTP/1.1 100 Continue`` and its headers)
    and nothing after it."""
    data = b""
    while not data.endswith(b"\r\n\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise http.client.RemoteDisconnected("the server closed the connection")
        data += chunk
        if len(data) > 8192:
            raise http.client.HTTPException("interim response too long")


def _readable(sock, timeout):
    if hasattr(select, "poll"):
        p = select.poll()
        p.register(sock, select.POLLIN | select.POLLPRI)
        return bool(p.poll(timeout * 1000))
    ready, _, _ = select.select([sock], [], [], timeout)
    return bool(ready)


def _dropped(sock):
    """True if the peer closed ``sock`` (it is readable while we expect
    nothing, which means EOF or stray bytes: either way unusable). TLS
    sockets are not checked (a TLS record may be pending)."""
    if hasattr(sock, "pending"):  # ssl.SSLSocket
        return False
    try:
        return _readable(sock, 0)
    except (OSError, ValueError):
        return True


def _is_connect_error(err):
    return isinstance(err, (ConnectionRefusedError, socket.gaierror))
