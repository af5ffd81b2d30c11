"""The course protocol, as a client written for MPCSFaaS sees it, against
the real binary (every deployment of conftest.py's server fixture)."""
import concurrent.futures
import time

import pytest

from conftest import client_payloads, deserialize, serialize

FUNCS = """
def no_args(): return "hello"
def add(a, b): return a + b
def scaled(x, *, factor=1, offset=0): return x * factor + offset
def total(xs): return sum(xs)
def big(n): return "x" * n
def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)
def boom(msg): raise ValueError(msg)
def spin():
    while True: pass
def hog(): return len(bytearray(1 << 30))
def nap(s, v):
    import time
    time.sleep(s)
    return v
"""


@pytest.fixture(scope="module")
def fns(server):
    """Registers every function of FUNCS (defined in a client's __main__)."""
    names = ["no_args", "add", "scaled", "total", "big", "fib", "boom", "spin", "hog", "nap"]
    payloads = client_payloads(FUNCS, *names)
    return {n: server.register(p, name=n) for n, p in zip(names, payloads)}


def call(server, fid, *args, **kwargs):
    return server.wait_result(server.execute(fid, serialize((args, kwargs))))


@pytest.mark.parametrize("fn,args,kwargs,expected", [
    ("no_args", (), {}, "hello"),
    ("add", (2, 40), {}, 42),
    ("scaled", (5,), {"factor": 3, "offset": 1}, 16),
    ("total", (list(range(100_000)),), {}, 4999950000),
    ("big", (1_000_000,), {}, "x" * 1_000_000),
    ("fib", (20,), {}, 6765),  # recursive function from the client's __main__
])
def test_round_trip(server, fns, fn, args, kwargs, expected):
    body = call(server, fns[fn], *args, **kwargs)
    assert body["status"] == "COMPLETED", body
    assert deserialize(body["result"]) == expected


def test_exception_comes_back(server, fns):
    body = call(server, fns["boom"], "the original message")
    assert body["status"] == "FAILED"
    exc = deserialize(body["result"])
    assert isinstance(exc, ValueError)
    assert str(exc) == "the original message"
    assert body["error"]["kind"] == "USER_EXCEPTION"
    assert "raise ValueError(msg)" in body["error"]["traceback"] or "boom" in body["error"]["traceback"]
    with pytest.raises(ValueError, match="the original message"):
        raise deserialize(body["result"])


def test_limits_fail_the_task_not_the_service(server, fns):
    started = time.time()
    body = call(server, fns["spin"])
    assert body["status"] == "FAILED"
    assert body["error"]["kind"] == "TIMEOUT"
    assert isinstance(deserialize(body["result"]), TimeoutError)
    assert time.time() - started < 30

    body = call(server, fns["hog"])
    assert body["status"] == "FAILED"
    assert body["error"]["kind"] == "MEMORY_LIMIT"
    assert isinstance(deserialize(body["result"]), MemoryError)

    assert deserialize(call(server, fns["add"], 1, 2)["result"]) == 3


def test_bad_requests(server, fns):
    r = server.post("/register_function", {"name": "x", "payload": "payload"})
    assert r.status_code == 400 and r.json()["detail"]
    r = server.post("/register_function", {"name": "x"})
    assert r.status_code == 422 and "payload" in r.json()["detail"]
    r = server.post("/execute_function", {"function_id": "6f1f6f9e-1c2b-4b8e-9a53-3f1f0e2d9c11",
                                          "payload": serialize(((), {}))})
    assert r.status_code == 404
    for route in ("status", "result"):
        r = server.get(f"/{route}/6f1f6f9e-1c2b-4b8e-9a53-3f1f0e2d9c11")
        assert r.status_code == 404, r.text
        r = server.get(f"/{route}/not-a-uuid")
        assert r.status_code == 400, r.text
    r = server.post("/execute_function", {"function_id": fns["add"], "payload": serialize(42)})
    assert r.status_code == 400 and r.json()["detail"]


def double(x):
    return 2 * x


def test_function_pickled_by_reference(server):
    # dill pickles a function defined at the top of an importable module
    # (this test module) by reference: the sandbox cannot import it.
    r = server.post("/register_function", {"name": "double", "payload": serialize(double)})
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert "test_protocol" in detail and "__main__" in detail


def test_status_only_moves_forward(server, fns):
    order = ["QUEUED", "RUNNING", "COMPLETED"]
    tid = server.execute(fns["nap"], serialize(((0.5, "ok"), {})))
    seen = []
    deadline = time.time() + 30
    while time.time() < deadline:
        r = server.get(f"/status/{tid}")
        assert r.status_code == 200
        st = r.json()["status"]
        if not seen or seen[-1] != st:
            seen.append(st)
        if st in ("COMPLETED", "FAILED"):
            break
        time.sleep(0.01)
    assert seen[-1] == "COMPLETED", seen
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen), seen
    assert "RUNNING" in seen, seen


def test_many_concurrent_tasks_each_once(server, fns):
    n = 200
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        tids = list(ex.map(lambda i: server.execute(fns["add"], serialize(((i, 1000), {}))), range(n)))
        bodies = list(ex.map(server.wait_result, tids))
    assert len(set(tids)) == n
    for i, body in enumerate(bodies):
        assert body["status"] == "COMPLETED", body
        assert deserialize(body["result"]) == i + 1000
        assert body["attempts"] == 1, body
