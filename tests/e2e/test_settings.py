"""A function's own settings against the real binary: environment
variables and secrets (os.environ holds exactly them, and another
function sees none of them), a timeout and a memory cap below the node's,
and GET /function/{id} showing them with secrets by name only. Run on
`faas up` and through a push and a pull worker, so that the settings
travel over the dispatcher-worker wire too."""
import pytest

from conftest import _deployment

ENV = """
import os
def env():
    return dict(os.environ)
"""

SLOW = """
import time
def slow(s):
    time.sleep(s)
    return s
"""

HOG = """
def hog(mib):
    return len(bytearray(mib << 20))
"""


@pytest.fixture(scope="module", params=["up", "push", "pull"])
def deployment(request):
    yield from _deployment(request, request.param)


def register(s, src, name, **extra):
    r = s.post("/register_function", {"name": name, "source": src, **extra})
    assert r.status_code == 200, r.text
    return r.json()["function_id"]


def run(s, fid, *args):
    r = s.post("/execute_function", {"function_id": fid, "args": list(args)})
    assert r.status_code == 200, r.text
    return s.wait_result(r.json()["task_id"])


def test_environment_is_the_functions_own(deployment):
    s = deployment
    a = register(s, ENV, "env", env={"MODE": "prod", "URL": "https://example.org/?a=b"},
                 secrets={"API_KEY": "hunter2"})
    b = register(s, ENV, "env", env={"OTHER": "1"})
    bare = register(s, ENV, "env")
    for _ in range(2):  # the second runs warm
        assert run(s, a)["result_json"] == {"MODE": "prod", "URL": "https://example.org/?a=b", "API_KEY": "hunter2"}
        assert run(s, b)["result_json"] == {"OTHER": "1"}
        assert run(s, bare)["result_json"] == {}
    info = s.get(f"/function/{a}").json()
    assert info["env"] == {"MODE": "prod", "URL": "https://example.org/?a=b"}
    assert info["secrets"] == ["API_KEY"]
    assert "hunter2" not in s.get(f"/function/{a}").text


def test_own_timeout_and_memory_cap(deployment):
    s = deployment
    quick = register(s, SLOW, "slow", timeout="0.5s")
    body = run(s, quick, 2)
    assert body["status"] == "FAILED" and body["error"]["kind"] == "TIMEOUT", body
    assert "0.5s" in body["error"]["message"] or "500ms" in body["error"]["message"], body["error"]
    # The node's 3 s timeout still lets a 1 s sleep of another function through.
    assert run(s, register(s, SLOW, "slow"), 1)["status"] == "COMPLETED"

    small = register(s, HOG, "hog", memory_mb=64)
    body = run(s, small, 100)
    assert body["status"] == "FAILED" and body["error"]["kind"] == "MEMORY_LIMIT", body
    assert "64 MiB" in body["error"]["message"], body["error"]
    assert run(s, small, 8)["result_json"] == 8 << 20
    assert run(s, register(s, HOG, "hog"), 100)["result_json"] == 100 << 20
    info = s.get(f"/function/{small}").json()
    assert info["memory_bytes"] == 64 << 20 and info["timeout_seconds"] is None


def test_settings_beyond_the_nodes_are_refused(deployment):
    s = deployment
    lim = s.get("/runtime").json()["function_limits"]
    assert lim["max_timeout_seconds"] == 3.0, s.get("/runtime").text  # the servers here run with --timeout 3s
    r = s.post("/register_function", {"name": "slow", "source": SLOW, "timeout": "10s"})
    assert r.status_code == 422 and "over the nodes' limit of 3s" in r.json()["detail"], r.text
    r = s.post("/register_function", {"name": "hog", "source": HOG, "memory_mb": 1 << 14})
    assert r.status_code == 422 and "memory_mb" in r.json()["detail"], r.text
