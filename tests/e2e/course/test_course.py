"""A course-style suite: a package (tests/e2e/course) with serialize.py and
a test module that defines its functions inside the test functions, the way
the course project's tests/test_webservice.py is written. dill pickles such
a function by value, with this module's __dict__ as its globals: the
sandbox stands in for this module, which it does not have.

Runs against faas up, API + local dispatcher + redis-server (or Redis
Sentinel), and push and pull dispatchers with a remote worker."""
import math
import time

import pytest
import requests

from conftest import _deployment

from .serialize import deserialize, serialize


@pytest.fixture(scope="module", params=["up", "split", "sentinel", "push", "pull"])
def base_url(request):
    for server in _deployment(request, request.param):
        yield server.url


def module_helper(x):
    return x * 3


def run(base_url, fn, *args, **kwargs):
    resp = requests.post(base_url + "/register_function",
                         json={"name": fn.__name__, "payload": serialize(fn)})
    assert resp.status_code in (200, 201), resp.text
    fn_id = resp.json()["function_id"]
    resp = requests.post(base_url + "/execute_function",
                         json={"function_id": fn_id, "payload": serialize((args, kwargs))})
    assert resp.status_code in (200, 201), resp.text
    task_id = resp.json()["task_id"]
    deadline = time.time() + 60
    while time.time() < deadline:
        resp = requests.get(f"{base_url}/result/{task_id}")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        if body["status"] in ("COMPLETED", "FAILED"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} not done")


def test_plain_function(base_url):
    def double(x):
        return x * 2

    body = run(base_url, double, 21)
    assert body["status"] == "COMPLETED", body
    assert deserialize(body["result"]) == 42


def test_closure(base_url):
    k = 100

    def add_k(x, y=0):
        return x + y + k

    body = run(base_url, add_k, 1, y=2)
    assert deserialize(body["result"]) == 103


def test_recursive_through_a_closure(base_url):
    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    body = run(base_url, fib, 15)
    assert deserialize(body["result"]) == 610


def test_lambda(base_url):
    body = run(base_url, lambda s: s.upper(), "course")
    assert deserialize(body["result"]) == "COURSE"


def test_reads_modules_imported_at_the_top(base_url):
    def hypot(a, b):
        return math.hypot(a, b), time.time() > 0

    body = run(base_url, hypot, 3, 4)
    assert body["status"] == "COMPLETED", body
    assert deserialize(body["result"]) == (5.0, True)


def test_exception_comes_back(base_url):
    def boom():
        raise ValueError("nope")

    body = run(base_url, boom)
    assert body["status"] == "FAILED"
    err = deserialize(body["result"])
    assert isinstance(err, ValueError) and "nope" in str(err)


def test_module_level_helper_is_a_name_error(base_url):
    def uses_helper(x):
        return module_helper(x)

    body = run(base_url, uses_helper, 1)
    assert body["status"] == "FAILED", body
    assert body["error"]["kind"] == "USER_EXCEPTION"
    err = deserialize(body["result"])
    assert isinstance(err, NameError)
    msg = str(err)
    assert "module_helper" in msg and "course.test_course" in msg and "not sent" in msg


def test_module_level_function_by_reference_is_refused(base_url):
    resp = requests.post(base_url + "/register_function",
                         json={"name": "module_helper", "payload": serialize(module_helper)})
    assert resp.status_code == 400
    assert "course.test_course" in resp.json()["detail"]
