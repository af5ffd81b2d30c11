"""Malformed HTTP input: oversized and truncated bodies, bad base64,
invalid UTF-8, JSON bombs, wrong content types, hostile ids and query
strings, wrong methods, HTTP/1.0 and garbage request lines, slow clients.

Every request answered by the API gets the right 4xx with a JSON
{"detail": ...} -- never a 500 -- and the server keeps serving (each case
ends with Harness.check_unaffected: /healthz, a normal task, host canary,
sandbox processes, no panic/ERROR/5xx in the log).

Documented exceptions: requests that net/http rejects before any handler
runs (an unparsable request line or header, a request line over the 64 KiB
header limit, an unsupported HTTP version) get Go's own plain-text 400/431/
505, not JSON.

The server here runs with --max-wait 2s, so the long-poll cap can be
checked quickly.
"""
import json
import re
import socket
import threading
import time
import uuid

import pytest
import requests

from adv_harness import Cases, adv, b64, deserialize, make_harness, serialize  # noqa: F401

MAX_WAIT = 2.0
MAX_BODY = 32 << 20


@pytest.fixture(scope="module")
def harness(request):
    yield from make_harness(request, extra=["--max-wait", f"{MAX_WAIT:g}s"])


CASES = Cases({
    "ident": "def ident(*args, **kwargs):\n    return [args, kwargs]\n",
    "slow": "def slow(s):\n    import time\n    time.sleep(s)\n    return 'slept'\n",
})


def json_error(r, status):
    """r has the status and a JSON {"detail": non-empty string} body."""
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body.get("detail"), str) and body["detail"], body
    return body["detail"]


def raw(port, data, timeout=5.0):
    """Sends raw bytes, returns (status, headers dict, body) of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        buf = b""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            buf += chunk
            head, sep, body = buf.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                if m and len(body) >= int(m.group(1)):
                    break
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    m = re.match(rb"HTTP/\d\.\d (\d{3})", lines[0])
    assert m, f"no HTTP answer to {data[:80]!r}: {buf[:200]!r}"
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        headers[k.decode().strip().lower()] = v.decode().strip()
    return int(m.group(1)), headers, body


@pytest.fixture(scope="module")
def ids(harness):
    """A registered function and a finished task of it."""
    fid = harness.attacker.register(CASES.fn("ident"), name="ident")
    tid = harness.attacker.execute(fid, args=(1,))
    harness.attacker.wait(tid)
    return fid, tid


# --- bodies

def test_oversized_body_with_content_length(adv):
    """33 MiB with Content-Length: 413 JSON (refused from the header)."""
    r = requests.post(adv.server.url + "/register_function", data=b'{"name": "' + b"a" * (33 << 20) + b'"}', timeout=30)
    json_error(r, 413)
    adv.check_unaffected()


def test_oversized_body_chunked(adv):
    """33 MiB chunked, no Content-Length: 413 JSON (cut by the body limit)."""
    chunks = iter([b'{"name": "'] + [b"a" * (1 << 20)] * 33 + [b'"}'])
    r = requests.post(adv.server.url + "/register_function", data=chunks, timeout=30)
    json_error(r, 413)
    adv.check_unaffected()


def test_lying_content_length(adv):
    """Content-Length: 1 GiB with a few bytes sent: 413 JSON at once,
    without waiting for (or allocating) the announced body."""
    t0 = time.time()
    status, headers, body = raw(adv.server.port, b"POST /register_function HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n{\"name\"")
    assert status == 413 and json.loads(body)["detail"], (status, body)
    assert time.time() - t0 < 3
    adv.check_unaffected()


@pytest.mark.parametrize("body,status", [
    (b"", 422), (b"   ", 422), (b"null", 422), (b"[1, 2]", 422), (b'"str"', 422), (b"42", 422),
    (b"{", 422), (b'{"name": "a"', 422), (b'{"name": "a", "source": "def a(): pass"} xx', 422),
    (b'{"name": "a", "source": "def a(): pass"}{"x": 1}', 422),
    (b'\xef\xbb\xbf{"name": "a", "source": "def a(): pass"}', 422),    # UTF-8 BOM
    (b'{"name": \xff}', 422),                                          # invalid UTF-8 as a token
    (b'{"name": "a", "payload": 5}', 422), (b'{"name": ["a"], "payload": "eA=="}', 422),
    (b'{"payload": "eA=="}', 422), (b'{"name": "a"}', 422),
    (b'{"name": "a", "payload": "eA==", "source": "def a(): pass"}', 422),
    (b'{"name": "a", "source": "   "}', 422), (b'{"name": "a", "source": "x", "entrypoint": "os.system"}', 422),
    (b'{"name": "a", "source": "def a(): pass", "isolation": "none"}', 422),
    (b'{"name": 1e999999, "payload": "x"}', 422),                       # huge number
], ids=lambda v: repr(v)[:40] if isinstance(v, bytes) else str(v))
def test_bad_register_bodies(adv, body, status):
    """Not a JSON object, truncated, trailing data, BOM, invalid UTF-8
    token, wrong field types, missing fields, both payload and source:
    the stated 4xx with a JSON detail."""
    r = requests.post(adv.server.url + "/register_function", data=body, timeout=10)
    json_error(r, status)
    adv.check_unaffected()


@pytest.mark.parametrize("payload", [
    "@@@@", "gASV", "gASVAAAA", "Zm9v=", "Zm9v===", "Zg", "-_-_", "\u00e9\u00e9\u00e9\u00e9", "\x00\x00\x00\x00",
    " ", "\n\n", b64(b"not a pickle at all"), b64(b"\x80\x04\x95\x10"), "gASV" * 1000,
], ids=lambda v: repr(v)[:30])
def test_bad_base64_or_pickle_payloads(adv, ids, payload):
    """Truncated or garbage base64, and base64 of garbage: 400 JSON, for
    both registration and execution."""
    fid, _ = ids
    r = adv.attacker.post("/register_function", {"name": "bad", "payload": payload})
    assert "payload" in json_error(r, 400)
    r = adv.attacker.post("/execute_function", {"function_id": fid, "payload": payload})
    json_error(r, 400)
    adv.check_unaffected()


def test_base64_with_newlines_is_accepted(adv, ids):
    """codecs' base64 inserts a newline every 76 characters (and a client
    may use CRLF or spaces): accepted, the task runs (200, COMPLETED)."""
    fid, _ = ids
    p = serialize((("x" * 200,), {}))
    assert "\n" in p
    for variant in (p, p.replace("\n", "\r\n")):
        tid = adv.attacker.execute(fid, payload=variant)
        assert deserialize(adv.attacker.wait(tid)["result"]) == [("x" * 200,), {}]
    adv.check_unaffected()


# --- UTF-8 and JSON bombs

def test_invalid_utf8_in_field_values(adv, ids):
    """Invalid UTF-8 inside JSON strings. Documented: Go's JSON decoder
    replaces it with U+FFFD, so a name is accepted (200) and stored
    replaced; in an id it is a 400 (not a UUID), in a payload a 400 (not
    base64), in source text the replaced text compiles or fails in the
    sandbox. Never a 500."""
    fid, _ = ids
    url = adv.server.url
    r = requests.post(url + "/register_function",
                      data=b'{"name": "\xff\xfe\xc0\xaf", "source": "def f():\\n    return 1", "entrypoint": "f"}', timeout=10)
    assert r.status_code == 200, r.text
    new = r.json()["function_id"]
    assert deserialize(adv.attacker.run(new)["result"]) == 1
    json_error(requests.post(url + "/execute_function", data=b'{"function_id": "\xff\xfe", "args": []}', timeout=10), 400)
    json_error(requests.post(url + "/register_function", data=b'{"name": "a", "payload": "gASV\xff\xfe"}', timeout=10), 400)
    r = requests.post(url + "/register_function",
                      data=b'{"name": "g", "source": "def g():\\n    return \'\xff\'"}', timeout=10)
    assert r.status_code == 200, r.text
    body = adv.attacker.run(r.json()["function_id"])
    assert body["status"] == "COMPLETED" and deserialize(body["result"]) == "\ufffd"
    # A lone surrogate escape is valid JSON syntax: accepted, run in the sandbox.
    r = requests.post(url + "/execute_function", data=b'{"function_id": "' + fid.encode() + b'", "args": ["\\ud800"]}', timeout=10)
    assert r.status_code == 200, r.text
    assert adv.attacker.wait(r.json()["task_id"])["status"] in ("COMPLETED", "FAILED")
    adv.check_unaffected()


@pytest.mark.parametrize("route,body", [
    ("/execute_function", b'{"function_id": "F", "args": ' + b"[" * 100000 + b"]" * 100000 + b"}"),
    ("/register_function", b'{"name": ' + b'{"a":' * 100000 + b"1" + b"}" * 100000 + b"}"),
    ("/register_function", b'{"name": "a", "source": "x", "junk": ' + b"[" * 50000 + b"}"),
    ("/execute_batch", b'{"function_id": "F", "calls": ' + b"[" * 100000 + b"]" * 100000 + b"}"),
], ids=["deep_args", "deep_objects", "deep_unclosed", "deep_batch"])
def test_json_nesting_bombs(adv, ids, route, body):
    """100000-deep arrays/objects: 422 JSON ("exceeded max depth"), at once."""
    fid, _ = ids
    t0 = time.time()
    r = requests.post(adv.server.url + route, data=body.replace(b'"F"', b'"' + fid.encode() + b'"'), timeout=10)
    json_error(r, 422)
    assert time.time() - t0 < 3
    adv.check_unaffected()


@pytest.mark.parametrize("args,kind", [
    (b"[" * 5000 + b"]" * 5000, "BAD_PAYLOAD"),           # Go accepts (< 10000 deep), Python's json: RecursionError
    (b"[" + b"9" * 100000 + b"]", "BAD_PAYLOAD"),          # int over 4300 digits
    (b"[1e999999, -1e999999]", "COMPLETED"),               # inf in Python; result_json null
    (b"[" + b"0," * 200000 + b"0]", "COMPLETED"),
    (b'[{"a": 1, "a": 2}]', "COMPLETED"),                  # duplicate keys: last wins
    (b'[], "kwargs": {"": 1, "__class__": 2}', "COMPLETED"),
], ids=["deep_5000", "bigint", "huge_floats", "wide", "dup_keys", "odd_kwargs"])
def test_json_arguments_bombs(adv, ids, args, kind):
    """JSON arguments the API accepts syntactically are decoded inside the
    sandbox: too deep or too big numbers are FAILED BAD_PAYLOAD there,
    the rest runs (COMPLETED). The server never decodes them itself."""
    fid, _ = ids
    canary = adv.submit_canary()
    r = requests.post(adv.server.url + "/execute_function",
                      data=b'{"function_id": "' + fid.encode() + b'", "args": ' + args + b"}", timeout=10)
    assert r.status_code == 200, r.text
    body = adv.attacker.wait(r.json()["task_id"])
    if kind == "COMPLETED":
        assert body["status"] == "COMPLETED", body.get("error")
    else:
        assert body["status"] == "FAILED" and body["error"]["kind"] == kind, body.get("error")
    if args.startswith(b"[1e999999"):
        assert body["result_json"] is None and deserialize(body["result"])[0] == (float("inf"), float("-inf"))
    if args.startswith(b'[{"a"'):
        assert body["result_json"] == [[{"a": 2}], {}]
    adv.check_unaffected(canary)


def test_duplicate_keys_last_wins(adv, ids):
    """Duplicate keys in the body object: documented, the last one wins
    (here a bad function_id after a good one: 400 JSON, not a UUID)."""
    fid, _ = ids
    good = serialize(((1,), {})).replace("\n", "\\n")
    body = ('{"function_id": "%s", "function_id": "nope", "payload": "%s"}' % (fid, good)).encode()
    assert "nope" in json_error(requests.post(adv.server.url + "/execute_function", data=body, timeout=10), 400)
    body = ('{"function_id": "nope", "function_id": "%s", "payload": "%s"}' % (fid, good)).encode()
    r = requests.post(adv.server.url + "/execute_function", data=body, timeout=10)
    assert r.status_code == 200, r.text
    adv.check_unaffected()


# --- content types

@pytest.mark.parametrize("ctype,status", [
    ("text/plain", 200), ("application/x-www-form-urlencoded", 200), ("application/xml", 200), (None, 200),
])
def test_content_type_is_ignored_for_json_bodies(adv, ids, ctype, status):
    """Documented: the API reads any body as JSON whatever its
    Content-Type, so a JSON body under another type works (200)."""
    fid, _ = ids
    headers = {"Content-Type": ctype} if ctype else {}
    data = json.dumps({"function_id": fid, "args": [2]}).encode()
    r = requests.post(adv.server.url + "/execute_function", data=data, headers=headers, timeout=10)
    assert r.status_code == status, r.text
    adv.check_unaffected()


def test_form_and_multipart_bodies(adv, ids):
    """Real form and multipart bodies are not JSON objects: 422 JSON."""
    fid, _ = ids
    url = adv.server.url + "/execute_function"
    json_error(requests.post(url, data={"function_id": fid, "args": "[]"}, timeout=10), 422)
    json_error(requests.post(url, files={"function_id": (None, fid)}, timeout=10), 422)
    json_error(requests.post(url, data=b"<xml/>", headers={"Content-Type": "application/xml"}, timeout=10), 422)
    adv.check_unaffected()


# --- ids and paths

@pytest.mark.parametrize("path,status", [
    ("/status/abc", 400), ("/result/abc", 400), ("/task/abc", None),
    ("/status/" + "a" * 10000, 400), ("/result/" + "f" * 36, 400),
    ("/status/..%2f..%2fetc%2fpasswd", 400), ("/result/..%2F..%2Fetc%2Fpasswd", 400),
    ("/status/%00", 400), ("/status/%ff%fe", 400), ("/status/%0d%0aX-Injected:%201", 400),
    ("/status/" + str(uuid.uuid4()), 404), ("/result/" + str(uuid.uuid4()), 404),
    ("/status/00000000-0000-0000-0000-000000000000", 404),
    ("/status/", 404), ("/nope", 404), ("/status/a/b", 404), ("/register_function/x", 404),
], ids=lambda v: str(v)[:40])
def test_hostile_ids_and_paths(adv, path, status):
    """Non-UUIDs, overlong ids, encoded traversal, NUL and CRLF: 400 JSON
    (the detail quotes at most 100 characters of the id); unknown UUIDs
    and routes: 404 JSON. No header injection."""
    if path.startswith("/task/"):
        r = requests.delete(adv.server.url + path, timeout=10)
        json_error(r, 400)
    else:
        r = requests.get(adv.server.url + path, timeout=10)
        detail = json_error(r, status)
        assert len(detail) < 400
    assert "X-Injected" not in r.headers
    adv.check_unaffected()


def test_raw_path_traversal(adv):
    """An unencoded ../ path sent raw (no client-side cleaning): 404 JSON
    'no route'; a request for /etc/passwd gets nothing of it."""
    for path in (b"/status/../../../etc/passwd", b"/../../etc/passwd", b"/result/..%2f..%2f..%2fetc/passwd"):
        status, headers, body = raw(adv.server.port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status in (400, 404), (path, status, body)
        assert headers["content-type"].startswith("application/json") and json.loads(body)["detail"]
        assert b"root:" not in body
    adv.check_unaffected()


def test_overlong_request_line(adv):
    """A 100 KB id makes the request line exceed the 64 KiB header limit:
    Go's own 431 (plain text, documented); the server keeps serving."""
    r = requests.get(adv.server.url + "/status/" + "a" * 100000, timeout=10)
    assert r.status_code == 431
    adv.check_unaffected()


def test_uuid_spellings_are_canonicalized(adv, ids):
    """Documented: braces, urn:uuid:, upper case and no hyphens are parsed
    as the same UUID (200, the canonical id in the answer)."""
    _, tid = ids
    for spelling in ("{%s}" % tid, "urn:uuid:" + tid, tid.upper(), tid.replace("-", "")):
        r = requests.get(adv.server.url + "/status/" + spelling, timeout=10)
        assert r.status_code == 200 and r.json()["task_id"] == tid, (spelling, r.text)
    adv.check_unaffected()


# --- query strings

@pytest.mark.parametrize("wait", ["-1", "-1s", "1e309", "-1e309", "NaN", "inf", "+Inf", "0x10", "abc", "1h1x",
                                  "99999999999h", "9223372036854775808ns", "%00", "1s%20", "5 s"])
def test_bad_wait(adv, ids, wait):
    """?wait= that is neither a non-negative duration nor a finite
    non-negative number of seconds: 400 JSON."""
    _, tid = ids
    r = requests.get(f"{adv.server.url}/result/{tid}?wait={wait}", timeout=10)
    assert "wait" in json_error(r, 400)
    adv.check_unaffected()


@pytest.mark.parametrize("wait", ["999999h", "1e18", "2562047h", "9223372036854775807ns", "-0", "0", "",
                                  "abc&wait=1s", "1e-9"])
def test_wait_is_capped(adv, ids, wait):
    """Huge waits are capped at --max-wait, odd but valid ones accepted; a
    finished task answers at once (200)."""
    _, tid = ids
    t0 = time.time()
    r = requests.get(f"{adv.server.url}/result/{tid}?wait={wait}", timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "COMPLETED", r.text
    assert time.time() - t0 < 1
    adv.check_unaffected()


def test_long_poll_cap_on_running_task(adv):
    """?wait=999999h on a task that runs 2.8 s: answers after --max-wait
    (2 s) with the task still RUNNING, not after 114 years."""
    fid = adv.attacker.register(CASES.fn("slow"), name="slow")
    tid = adv.attacker.execute(fid, args=(2.8,))
    t0 = time.time()
    r = requests.get(f"{adv.server.url}/result/{tid}?wait=999999h", timeout=10)
    took = time.time() - t0
    assert r.status_code == 200 and r.json()["status"] in ("QUEUED", "RUNNING"), r.text
    assert MAX_WAIT - 0.2 < took < MAX_WAIT + 1.5, took
    assert adv.attacker.wait(tid)["status"] == "COMPLETED"
    adv.check_unaffected()


# --- methods and protocol versions

@pytest.mark.parametrize("method,path,allow", [
    ("PUT", "/register_function", "POST"), ("GET", "/register_function", "POST"),
    ("DELETE", "/execute_function", "POST"), ("PATCH", "/status/{tid}", "GET"),
    ("POST", "/result/{tid}", "GET"), ("DELETE", "/healthz", "GET"), ("TRACE", "/", "GET"),
    ("OPTIONS", "/register_function", "POST"), ("PROPFIND", "/runtime", "GET"),
    ("HEAD", "/result/{tid}", "GET"),   # documented: HEAD is not served (405)
])
def test_methods_not_allowed(adv, ids, method, path, allow):
    """405 with a JSON detail and an Allow header naming the methods."""
    _, tid = ids
    r = requests.request(method, adv.server.url + path.replace("{tid}", tid), timeout=10)
    assert r.status_code == 405, (r.status_code, r.text)
    assert r.headers.get("Allow") == allow
    if method != "HEAD":
        json_error(r, 405)
    adv.check_unaffected()


def test_http10(adv, ids):
    """HTTP/1.0 requests (no Host, no keep-alive): answered in HTTP/1.0
    with JSON; a POST with a Content-Length works; one without a body is
    a 422 JSON."""
    fid, _ = ids
    status, headers, body = raw(adv.server.port, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    data = json.dumps({"function_id": fid, "args": [1]}).encode()
    status, headers, body = raw(adv.server.port, b"POST /execute_function HTTP/1.0\r\nContent-Length: "
                                + str(len(data)).encode() + b"\r\n\r\n" + data)
    assert status == 200 and "task_id" in json.loads(body)
    status, headers, body = raw(adv.server.port, b"POST /execute_function HTTP/1.0\r\n\r\n")
    assert status == 422 and json.loads(body)["detail"]
    adv.check_unaffected()


@pytest.mark.parametrize("data,statuses", [
    (b"GET /healthz\r\n\r\n", (400,)),                                        # HTTP/0.9
    (b"\x00\x01\x02 garbage\r\n\r\n", (400,)),
    (b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", (505,)),                   # documented: Go's 505
    (b"GET /status/a b HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", (400,)),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * (200 << 10) + b"\r\n\r\n", (431,)),
    (b"POST /register_function HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", (400,)),
    (b"POST /register_function HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef", (400,)),
    (b"POST /register_function HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", (400,)),
    (b"POST /register_function HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", (400, 422)),
    (b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\n\r\n", (405,)),
], ids=["http09", "garbage", "version_9_9", "space_in_path", "bad_header", "huge_header",
        "negative_length", "two_lengths", "bad_chunk", "length_and_chunked", "connect"])
def test_malformed_requests(adv, data, statuses):
    """Unparsable requests get a 4xx (Go's plain text before the handler,
    JSON from the handler) -- or Go's 505 for an unknown HTTP version --
    never a 500, and the server keeps serving."""
    status, headers, body = raw(adv.server.port, data)
    assert status in statuses, (status, body[:200])
    if headers.get("content-type", "").startswith("application/json"):
        assert json.loads(body)["detail"]
    adv.check_unaffected()


def test_batch_limits(adv, ids):
    """POST /execute_batch: over 1000 calls 413 JSON; one bad payload
    among good ones 400 JSON naming its index (no task created); a call
    that is not an object 422 JSON."""
    fid, _ = ids
    url = adv.server.url + "/execute_batch"
    json_error(requests.post(url, json={"function_id": fid, "calls": [{}] * 1001}, timeout=10), 413)
    good = serialize(((1,), {}))
    detail = json_error(requests.post(url, json={"function_id": fid, "payloads": [good, good, "@@", good]}, timeout=10), 400)
    assert "[2]" in detail
    json_error(requests.post(url, json={"function_id": fid, "calls": [{}, 5]}, timeout=10), 422)
    adv.check_unaffected()


# --- slow clients

def test_slow_clients_do_not_block_others(adv, ids):
    """60 connections stall mid-headers and 20 mid-body (Content-Length
    1000, 10 bytes sent), plus 30 concurrent long-polls; meanwhile other
    clients get /healthz, /status and a full task promptly. The stalled
    header connections are closed by the server (ReadHeaderTimeout 10 s)."""
    fid, tid = ids
    port = adv.server.port
    header_stalls, body_stalls = [], []
    try:
        for _ in range(60):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"POST /register_function HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            header_stalls.append(s)
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"POST /register_function HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"name\": \"a")
            body_stalls.append(s)
        slow = adv.attacker.register(CASES.fn("slow"), name="slow")
        pending = adv.attacker.execute(slow, args=(1.5,))
        polls = []
        for _ in range(30):
            t = threading.Thread(target=lambda: requests.get(f"{adv.server.url}/result/{pending}?wait=2s", timeout=10))
            t.start()
            polls.append(t)
        t0 = time.time()
        for _ in range(10):
            assert requests.get(adv.server.url + "/healthz", timeout=2).status_code == 200
            assert requests.get(f"{adv.server.url}/status/{tid}", timeout=2).status_code == 200
        assert time.time() - t0 < 3
        body = adv.victim.run(adv.normal_fid, 1, 2)
        assert deserialize(body["result"]) == {"sum": 3, "text": "ok-1"}
        for t in polls:
            t.join(10)
        # Header stalls must be cut by the server; wait for the first one.
        deadline = time.time() + 14
        closed = False
        header_stalls[0].settimeout(max(0.1, deadline - time.time()))
        try:
            closed = header_stalls[0].recv(1024) is not None
        except socket.timeout:
            closed = False
        except OSError:
            closed = True
        assert closed, "a connection stalled in its headers was not closed within 14 s"
    finally:
        for s in header_stalls + body_stalls:
            s.close()
    adv.check_unaffected()


@pytest.mark.parametrize("route,body", [
    ("/register_function", {"name": "a"}),
    ("/register_function", {"name": "a", "payload": 5}),
    ("/execute_function", {"function_id": "00000000-0000-0000-0000-000000000000"}),
])
def test_422_detail_has_no_status_prefix(adv, route, body):
    """422 JSON whose detail starts with the message, not with '422: '."""
    detail = json_error(requests.post(adv.server.url + route, json=body, timeout=10), 422)
    assert not detail.startswith("422"), detail
