"""The Python client (clients/python, package `wasmfaas`) against the real
server: `faas up` started by the `server` fixture (see conftest.py).

Functions that run remotely are plain Python; none of them uses `assert`
(pytest rewrites asserts in this module into calls of its own helpers,
which the sandbox does not have).
"""
import concurrent.futures
import json
import math
import sys
import threading
import time
import uuid

import dill
import pytest

from client_fixtures import client, request_log, server  # noqa: F401  (fixtures; also puts clients/python on sys.path)

import wasmfaas  # noqa: E402

# --- module-level code that remote functions use. dill would pickle the
# functions below by reference (this module's name), which the sandbox
# cannot import; the client must send them, and what they use, by value.

SCALE = 3
PREFIX = "v="


def _helper(x):
    return x * SCALE


def describe(x):
    """Uses a module-level helper, a constant and stdlib modules imported at
    the top of this module."""
    return PREFIX + json.dumps({"scaled": _helper(x), "root": math.sqrt(x)}, sort_keys=True)


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


class Vec:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def norm(self):
        return math.hypot(self.x, self.y)


def norm_of(v):
    return v.norm()


def make_vec(x, y):
    return Vec(x, y)


def combine(a, b=10, *args, sep="-", **extra):
    return sep.join([str(a), str(b)] + [str(x) for x in args] + ["%s:%s" % kv for kv in sorted(extra.items())])


class CustomError(Exception):
    pass


def fail_with(kind, msg):
    if kind == "value":
        raise ValueError(msg)
    if kind == "key":
        raise KeyError(msg)
    raise CustomError(msg)


def nap(seconds, value=None):
    time.sleep(seconds)
    return value


def square(x):
    return x * x


def fail_at(x, bad):
    if x == bad:
        raise ValueError("item %d is bad" % x)
    return x


def talk(x):
    print("hello from the sandbox", x)
    return x


def uses_pytest():
    return pytest.__name__


# --- registering and calling


def test_register_and_call_with_args_and_kwargs(client):
    h = client.register(combine)
    assert isinstance(h, wasmfaas.FunctionHandle)
    uuid.UUID(h.function_id)
    assert h.name == "combine"
    f = h(1, 2, 3, 4, sep="+", z=26, k=1)
    assert isinstance(f, concurrent.futures.Future)
    assert f.result(timeout=30) == "1+2+3+4+k:1+z:26"
    assert h("x").result(timeout=30) == "x-10"
    assert client.status(f.task_id) == "COMPLETED"
    assert f.info["status"] == "COMPLETED"


def test_register_with_name_and_isolation(client):
    h = client.register(square, name="sq", isolation="fresh")
    assert h.name == "sq"
    assert [h(i).result(timeout=30) for i in range(3)] == [0, 1, 4]
    with pytest.raises(wasmfaas.BadRequest, match="isolation"):
        client.register(square, isolation="lukewarm")


def test_closure(client):
    def make_adder(k):
        offset = 100

        def add(x):
            return x + k + offset + SCALE

        return add

    assert client.register(make_adder(5))(1).result(timeout=30) == 1 + 5 + 100 + 3


def test_lambda(client):
    factor = 7
    assert client.register(lambda x, y=1: (x + y) * factor)(2).result(timeout=30) == 21


def test_module_level_function_with_helpers_constants_and_imports(client):
    # Plain dill sends it by reference, and the server refuses that.
    assert len(dill.dumps(describe)) < 100
    with pytest.raises(wasmfaas.BadRequest, match="test_client"):
        client._register_pickle(dill.dumps(describe), "describe", None)
    # The client sends it by value, with _helper, SCALE, PREFIX, json, math.
    assert client.register(describe)(16).result(timeout=30) == 'v={"root": 4.0, "scaled": 48}'
    assert client.register(fib)(20).result(timeout=30) == 6765


def test_module_level_classes_travel_by_value(client):
    assert client.register(norm_of)(Vec(3, 4)).result(timeout=30) == 5.0
    # A result of a class sent by value comes back as a rebuilt class of the
    # same name (not the local one).
    v = client.register(make_vec)(1, 2).result(timeout=30)
    assert type(v).__name__ == "Vec" and (v.x, v.y) == (1, 2)


def test_module_attribute_access_travels_by_value(client):
    mod = sys.modules[__name__]  # this module, as `import test_client as mod` gives it
    assert client.register(lambda x: mod._helper(x) + mod.SCALE)(2).result(timeout=30) == 9


def test_third_party_module_is_refused_with_its_name(client):
    with pytest.raises(wasmfaas.BadRequest, match="pytest") as info:
        client.register(uses_pytest)
    assert info.value.status == 400


def test_stdout_is_kept(client):
    f = client.submit(talk, 5)
    assert f.result(timeout=30) == 5
    assert "hello from the sandbox 5" in f.stdout


# --- failures


@pytest.mark.parametrize("kind,exc_type", [("value", ValueError), ("key", KeyError)])
def test_remote_exception_is_reraised(client, kind, exc_type):
    f = client.register(fail_with)(kind, "no good")
    with pytest.raises(exc_type, match="no good") as info:
        f.result(timeout=30)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "Traceback in the sandbox" in notes and "fail_with" in notes
    assert f.error["kind"] == "USER_EXCEPTION"
    assert isinstance(f.exception(), exc_type)


def test_remote_exception_of_a_module_class(client):
    f = client.register(fail_with)("custom", "mine")
    with pytest.raises(Exception, match="mine") as info:
        f.result(timeout=30)
    # Sent by value, so rebuilt under the same name rather than the same class.
    assert type(info.value).__name__ == "CustomError"


def test_remote_timeout_raises_timeout_error(client):
    started = time.monotonic()
    f = client.register(nap)(30)
    with pytest.raises(TimeoutError, match="exceeded"):
        f.result(timeout=30)
    assert time.monotonic() - started < 20
    assert f.error["kind"] == "TIMEOUT"


def test_result_timeout_and_cancel(client, request_log):
    log = request_log(client)
    f = client.register(nap)(1.2, "late")
    with pytest.raises(TimeoutError):
        f.result(timeout=0.2)
    assert not f.done()
    assert f.cancel() and f.cancelled()
    # Cancelled on the server too, not only no longer awaited.
    assert client.result_info(f.task_id, wait=5)["error"]["kind"] == "CANCELLED"
    polls = log.count("GET", "/result/")
    time.sleep(1.5)
    # The pending long-poll may still come back, but nobody asks again.
    assert log.count("GET", "/result/") <= polls + 1
    with pytest.raises(concurrent.futures.CancelledError):
        f.result()


def test_unknown_function_id(client):
    handle = wasmfaas.FunctionHandle(client, str(uuid.uuid4()))
    with pytest.raises(wasmfaas.FunctionNotFound, match=handle.function_id) as info:
        handle(1)
    assert info.value.status == 404
    with pytest.raises(wasmfaas.TaskNotFound):
        client.status(str(uuid.uuid4()))


def test_too_large_argument(client):
    h = client.register(len)
    started = time.monotonic()
    with pytest.raises(wasmfaas.PayloadTooLarge, match="larger than") as info:
        h(b"x" * (40 << 20))
    assert info.value.status == 413
    assert time.monotonic() - started < 10
    # The client is still fine afterwards.
    assert h(b"x" * 1000).result(timeout=30) == 1000


def test_existing_task_can_be_awaited(client):
    f = client.register(square)(12)
    assert client.future(f.task_id).result(timeout=30) == 144


# --- map


def test_map_100_items_in_order(client, request_log):
    log = request_log(client)
    assert list(client.map(square, range(100))) == [i * i for i in range(100)]
    assert log.count("POST", "/register_function") == 1
    assert log.count("POST", "/execute_function") == 100
    # Accepts a registered handle and several iterables too.
    h = client.register(combine)
    assert list(client.map(h, "ab", "cd", timeout=30)) == ["a-c", "b-d"]


def test_map_raises_first_failure_when_reached(client):
    results = client.map(fail_at, range(10), [5] * 10)
    assert [next(results) for _ in range(5)] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="item 5 is bad"):
        next(results)


# --- Executor


def test_executor_submit_map_and_context_manager(server, request_log):
    with wasmfaas.Executor(server.url) as ex:
        log = request_log(ex.client)
        assert isinstance(ex, concurrent.futures.Executor)
        futures = [ex.submit(nap, 0.05, i) for i in range(50)]
        done, not_done = concurrent.futures.wait(futures, timeout=60)
        assert not not_done
        assert [f.result() for f in futures] == list(range(50))
        assert list(ex.map(square, range(20), timeout=60)) == [i * i for i in range(20)]
        assert ex.submit(combine, 1, b=2).result(timeout=30) == "1-2"
        # One registration per distinct function.
        assert log.count("POST", "/register_function") == 3
        client = ex.client
    # Leaving the block shut it down and closed the client it made.
    with pytest.raises(RuntimeError, match="shutdown"):
        ex.submit(square, 1)
    with pytest.raises(RuntimeError, match="closed"):
        client.submit(square, 1)


def test_executor_as_completed_with_many_concurrent_tasks(client):
    ex = wasmfaas.Executor(client, max_pending=20)
    futures = {ex.submit(nap, 0.02 * (i % 5), i): i for i in range(50)}
    seen = [f.result() for f in concurrent.futures.as_completed(futures, timeout=60)]
    assert sorted(seen) == list(range(50))
    assert list(ex.map(square, range(60))) == [i * i for i in range(60)]
    ex.shutdown(wait=True)
    with pytest.raises(RuntimeError):
        ex.submit(square, 2)
    # The executor did not own the client, so the client still works.
    assert client.submit(square, 3).result(timeout=30) == 9


def test_executor_max_pending_bounds_tasks_in_flight(client):
    in_flight, peak = 0, 0
    lock = threading.Lock()
    ex = wasmfaas.Executor(client, max_pending=3)

    def on_done(_):
        nonlocal in_flight
        with lock:
            in_flight -= 1

    for i in range(12):
        f = ex.submit(nap, 0.05, i)
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        f.add_done_callback(on_done)
    ex.shutdown(wait=True)
    assert peak <= 3


# --- no busy polling


def test_waiting_uses_long_polls_not_spinning(client, request_log):
    log = request_log(client)
    f = client.register(nap)(1.5, "done")
    assert f.result(timeout=30) == "done"
    # One long-poll covers the whole run (a second at most if it raced).
    assert log.count("GET", "/result/") <= 2

    h = client.register(nap)
    before = log.count("GET", "/result/")
    futures = [h(0.05, i) for i in range(50)]
    assert [f.result(timeout=60) for f in futures] == list(range(50))
    gets = log.count("GET", "/result/") - before
    # About one per task; polling in a loop would make thousands.
    assert gets <= 2 * 50, "%d result requests for 50 tasks" % gets


def test_executor_shutdown_cancel_futures(client):
    ex = wasmfaas.Executor(client)
    slow = [ex.submit(nap, 1.0, i) for i in range(3)]
    started = time.monotonic()
    ex.shutdown(wait=True, cancel_futures=True)
    assert time.monotonic() - started < 0.9
    assert all(f.cancelled() for f in slow)
    for f in slow:
        assert client.result_info(f.task_id, wait=5)["error"]["kind"] == "CANCELLED"


def test_cancel_after_the_result_is_false(client):
    f = client.register(nap)(0.0, "done")
    assert f.result(timeout=30) == "done"
    assert not f.cancel()
    assert not client.cancel_task(f.task_id)  # 409 on the server: already final
