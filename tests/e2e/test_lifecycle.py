"""Task lifecycle features against the real binary, as a user runs them:
retries with back-off, delayed runs (delay / run_at) and per-call
overrides of a function's retry policy.

The retry tests count attempts with a module global of a source function:
a warm interpreter keeps it between the attempts, so the server here runs
one sandbox (every attempt lands on the same interpreter)."""
import datetime
import time

import pytest

from conftest import _deployment

FLAKY = """
calls = 0
def flaky(fail_times):
    global calls
    calls += 1
    if calls <= fail_times:
        raise ValueError(f"attempt {calls} fails")
    return calls
"""

ALWAYS = """
def always(kind):
    if kind == "key":
        raise KeyError("no such key")
    raise ValueError("always fails")
"""

NOW = """
import time
def now():
    return time.time()
"""


@pytest.fixture(scope="module", params=["up", "split", "sentinel"])
def one_sandbox(request):
    yield from _deployment(request, request.param, sandboxes=1)


def register(s, src, name, **extra):
    r = s.post("/register_function", {"name": name, "source": src, **extra})
    assert r.status_code == 200, r.text
    return r.json()["function_id"]


def call(s, fid, args, **extra):
    r = s.post("/execute_function", {"function_id": fid, "args": args, **extra})
    assert r.status_code == 200, r.text
    return r.json()["task_id"]


def ts(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_retry_succeeds_on_the_third_attempt(one_sandbox):
    s = one_sandbox
    fid = register(s, FLAKY, "flaky", retries={"max": 3, "backoff": "fixed", "base": "300ms", "jitter": False})
    tid = call(s, fid, [2])
    body = s.wait_result(tid)
    assert body["status"] == "COMPLETED", body
    assert body["result_json"] == 3 and body["attempts"] == 3, body
    errs = body["errors"]
    assert [e["attempt"] for e in errs] == [1, 2], errs
    assert errs[0]["error"]["kind"] == "USER_EXCEPTION"
    assert errs[0]["error"]["message"] == "ValueError: attempt 1 fails"
    assert "ValueError: attempt 2 fails" in errs[1]["error"]["traceback"]
    # Two back-offs of 300 ms lie between submission and the end.
    assert ts(body["finished_at"]) - ts(body["created_at"]) >= 0.6 - 0.01, body


def test_retries_exhaust_with_every_error_kept(one_sandbox):
    s = one_sandbox
    fid = register(s, ALWAYS, "always")
    tid = call(s, fid, ["value"], retries={"max": 2, "backoff": "exponential", "base": "200ms", "jitter": False})
    # While it waits for a retry, /status says when the next attempt is due.
    seen_next = False
    deadline = time.time() + 30
    while time.time() < deadline:
        st = s.get(f"/status/{tid}").json()
        if st["status"] == "FAILED":
            break
        seen_next = seen_next or ("next_attempt_at" in st and st["status"] == "RUNNING")
        time.sleep(0.02)
    body = s.wait_result(tid)
    assert body["status"] == "FAILED" and body["error"]["kind"] == "USER_EXCEPTION", body
    assert body["attempts"] == 3, body
    assert [e["attempt"] for e in body["errors"]] == [1, 2, 3], body["errors"]
    assert all(e["error"]["message"] == "ValueError: always fails" for e in body["errors"])
    # Back-offs of 200 ms then 400 ms.
    at = [ts(e["at"]) for e in body["errors"]]
    assert at[1] - at[0] >= 0.2 - 0.01 and at[2] - at[1] >= 0.4 - 0.01, at
    assert seen_next, "GET /status never showed next_attempt_at while the task waited for its retry"
    metrics = s.get("/metrics").text
    assert "faas_task_retries_total" in metrics


def test_only_the_named_exceptions_are_retried(one_sandbox):
    s = one_sandbox
    fid = register(s, ALWAYS, "always", retries={"max": 3, "base": 0, "on": ["ValueError"]})
    key = s.wait_result(call(s, fid, ["key"]))
    assert key["status"] == "FAILED" and key["attempts"] == 1 and len(key["errors"]) == 1, key
    value = s.wait_result(call(s, fid, ["value"]))
    assert value["status"] == "FAILED" and value["attempts"] == 4, value
    # A call turns the function's policy off.
    off = s.wait_result(call(s, fid, ["value"], retries=0))
    assert off["status"] == "FAILED" and off["attempts"] == 1, off


def test_delayed_tasks_start_on_time(one_sandbox):
    s = one_sandbox
    fid = register(s, NOW, "now")
    # Warm the sandbox up, so that the delayed run does not pay for loading.
    assert s.wait_result(call(s, fid, []))["status"] == "COMPLETED"
    due = time.time() + 1.5
    by_delay = call(s, fid, [], delay=1.5)
    by_time = call(s, fid, [], run_at=datetime.datetime.fromtimestamp(due + 0.5, datetime.timezone.utc).isoformat())
    st = s.get(f"/status/{by_delay}").json()
    assert st["status"] == "QUEUED" and abs(ts(st["run_at"]) - due) < 0.5, st
    for tid, want in ((by_delay, due), (by_time, due + 0.5)):
        body = s.wait_result(tid)
        assert body["status"] == "COMPLETED", body
        started = body["result_json"]
        assert want - 0.01 <= started <= want + 0.1, (tid, started - want)
        assert abs(ts(body["run_at"]) - want) < 0.5


def test_cancel_a_delayed_task(one_sandbox):
    s = one_sandbox
    fid = register(s, NOW, "now")
    tid = call(s, fid, [], delay="1h")
    r = __import__("requests").delete(s.url + f"/task/{tid}", timeout=10)
    assert r.status_code == 200, r.text
    body = s.wait_result(tid)
    assert body["status"] == "FAILED" and body["error"]["kind"] == "CANCELLED", body


def test_bad_call_options_are_refused(one_sandbox):
    s = one_sandbox
    fid = register(s, NOW, "now")
    for extra, detail in [
        ({"delay": "soon"}, 'field "delay" must be a duration'),
        ({"delay": 1, "run_at": 5}, 'give either "delay" or "run_at"'),
        ({"retries": {"max": 2, "backoff": "sometimes"}}, "backoff must be"),
        ({"retries": {"max": 2, "on": ["WORKER_LOST"]}}, "neither a Python exception class name"),
    ]:
        r = s.post("/execute_function", {"function_id": fid, "args": [], **extra})
        assert r.status_code == 422 and detail in r.json()["detail"], (extra, r.text)


@pytest.fixture(scope="module", params=["push", "pull"])
def remote(request):
    yield from _deployment(request, request.param)


def test_retries_on_remote_workers(remote):
    """A push or pull worker's failure goes through the same retry policy."""
    s = remote
    fid = register(s, ALWAYS, "always", retries={"max": 2, "backoff": "fixed", "base": 0})
    body = s.wait_result(call(s, fid, ["value"]))
    assert body["status"] == "FAILED" and body["attempts"] == 3, body
    assert [e["attempt"] for e in body["errors"]] == [1, 2, 3], body["errors"]
    off = s.wait_result(call(s, fid, ["value"], retries=0))
    assert off["attempts"] == 1 and len(off["errors"]) == 1, off
