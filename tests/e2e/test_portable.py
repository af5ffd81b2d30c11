"""Portable functions: source text and JSON, for clients on any Python
version and for non-Python clients (here: plain JSON over HTTP).

Every test runs on every deployment: faas up, API + local dispatcher, and a
push and a pull dispatcher with a remote worker (a JSON call must come back
as JSON wherever it ran: the wire carries the want-JSON flag and the JSON
result)."""
import time

import pytest

from conftest import _deployment, client_payloads, deserialize, serialize


@pytest.fixture(scope="module", params=["up", "split", "sentinel", "push", "pull"])
def server(request):
    yield from _deployment(request, request.param)

AREA = """
import math

def area(r, *, unit="m"):
    return {"area": round(math.pi * r * r, 3), "unit": unit + "2"}
"""


def test_source_function_with_json(server):
    r = server.post("/register_function", {"name": "geometry", "source": AREA, "entrypoint": "area"})
    assert r.status_code == 200, r.text
    fid = r.json()["function_id"]
    r = server.post("/execute_function", {"function_id": fid, "args": [2], "kwargs": {"unit": "cm"}})
    assert r.status_code == 200, r.text
    body = server.wait_result(r.json()["task_id"])
    assert body["status"] == "COMPLETED", body
    assert body["result_json"] == {"area": 12.566, "unit": "cm2"}
    assert deserialize(body["result"]) == {"area": 12.566, "unit": "cm2"}


def test_source_function_with_dill_arguments(server):
    r = server.post("/register_function", {"name": "area", "source": AREA})  # entrypoint defaults to name
    fid = r.json()["function_id"]
    body = server.wait_result(server.execute(fid, serialize(((1,), {}))))
    assert deserialize(body["result"]) == {"area": 3.142, "unit": "m2"}
    assert "result_json" not in body  # only calls made with JSON get JSON back


def test_json_call_answers_json(server):
    """The call of issue 10: on push and pull it answered result_json null."""
    r = server.post("/register_function", {"name": "inc", "source": "def inc(x): return x + 1"})
    fid = r.json()["function_id"]
    r = server.post("/execute_function", {"function_id": fid, "args": [41]})
    assert r.status_code == 200, r.text
    body = server.wait_result(r.json()["task_id"])
    assert body["status"] == "COMPLETED", body
    assert body["result_json"] == 42
    assert deserialize(body["result"]) == 42
    # The same function called with a dill payload answers no JSON.
    body = server.wait_result(server.execute(fid, serialize(((1,), {}))))
    assert deserialize(body["result"]) == 2
    assert "result_json" not in body


def test_json_arguments_to_a_dill_function(server):
    (fn,) = client_payloads("def concat(*parts, sep='-'): return sep.join(parts)", "concat")
    fid = server.register(fn)
    r = server.post("/execute_function", {"function_id": fid, "args": ["a", "b"], "kwargs": {"sep": "+"}})
    body = server.wait_result(r.json()["task_id"])
    assert body["result_json"] == "a+b"


def test_result_without_json_form(server):
    r = server.post("/register_function", {"name": "s", "source": "def s(): return {1, 2}"})
    r = server.post("/execute_function", {"function_id": r.json()["function_id"], "args": []})
    body = server.wait_result(r.json()["task_id"])
    assert body["status"] == "COMPLETED"
    assert body["result_json"] is None
    assert deserialize(body["result"]) == {1, 2}


def test_source_errors(server):
    r = server.post("/register_function", {"name": "broken", "source": "def broken(:\n  pass"})
    body = server.wait_result(server.post("/execute_function", {"function_id": r.json()["function_id"], "args": []}).json()["task_id"])
    assert body["status"] == "FAILED"
    assert body["error"]["kind"] == "BAD_PAYLOAD"
    assert "does not compile" in body["error"]["message"]
    assert isinstance(deserialize(body["result"]), ValueError)


@pytest.mark.parametrize("body,status,detail", [
    ({"name": "x", "source": "def x(): pass", "payload": "gAQu"}, 422, "not both"),
    ({"name": "x", "source": "def x(): pass", "entrypoint": "not an identifier"}, 422, "entrypoint"),
    ({"name": "x", "source": "   "}, 422, "source"),
    ({"name": "x", "source": 42}, 422, "source"),
])
def test_bad_source_registrations(server, body, status, detail):
    r = server.post("/register_function", body)
    assert r.status_code == status, r.text
    assert detail in r.json()["detail"]


def test_bad_json_calls(server):
    fid = server.post("/register_function", {"name": "f", "source": "def f(*a): return a"}).json()["function_id"]
    for body, detail in [
        ({"function_id": fid, "args": {"a": 1}}, "args"),
        ({"function_id": fid, "kwargs": [1]}, "kwargs"),
        ({"function_id": fid, "args": [], "payload": serialize(((), {}))}, "not both"),
    ]:
        r = server.post("/execute_function", body)
        assert r.status_code == 422, r.text
        assert detail in r.json()["detail"]


def test_foreign_python_is_refused_at_registration(server):
    # What dill 0.3.6 on Python 3.10 writes for a code object: 17 fields.
    (payload,) = client_payloads("""
import dill
def f(x): return x + 1
c = f.__code__
class Code310:
    def __reduce__(self):
        return (dill._dill._create_code, (c.co_lnotab, 1, 0, 0, 1, 2, c.co_flags, c.co_code, c.co_consts,
                c.co_names, c.co_varnames, 'f.py', 'f', 1, c.co_linetable, (), ()))
class Fn:
    def __reduce__(self):
        return (dill._dill._create_function, (Code310(), {}, 'f', None, None))
""", "Fn()")
    r = server.post("/register_function", {"name": "f", "payload": payload})
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert "Python 3.10" in detail and "source" in detail


def test_runtime_info(server):
    # A push or pull dispatcher counts its workers' sandboxes once they
    # have connected and it has reported.
    deadline = time.time() + 60
    while True:
        r = server.get("/runtime")
        assert r.status_code == 200
        info = r.json()
        if any(n["alive"] and n["sandboxes"] == 2 for n in info["nodes"]) or time.time() > deadline:
            break
        time.sleep(0.2)
    assert info["python"] == "3.11.2" and info["dill"] == "0.3.6"
    assert info["limits"]["timeout_seconds"] == 3, info  # the servers run with --timeout 3s
    assert info["limits_source"] == "nodes"
    assert info["limits"]["memory_bytes"] == 256 << 20
    assert any(n["alive"] and n["sandboxes"] == 2 for n in info["nodes"])
