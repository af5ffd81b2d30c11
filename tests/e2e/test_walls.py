"""The second wall (issue 15) as a user sees it: GET /runtime says, for each
node, which OS-level walls its sandbox processes put up, on faas up, API +
local dispatcher, and push and pull dispatchers (whose workers report
theirs)."""
import time

import pytest
import requests

from conftest import _deployment


@pytest.fixture(scope="module", params=["up", "split", "sentinel", "push", "pull"])
def server(request):
    yield from _deployment(request, request.param)


def test_runtime_reports_the_walls(server):
    deadline = time.time() + 30
    walls = []
    while time.time() < deadline:
        nodes = requests.get(server.url + "/runtime", timeout=10).json()["nodes"]
        walls = [n.get("walls", "") for n in nodes if n["alive"] and n["sandboxes"] > 0]
        if walls and all(walls):
            break
        time.sleep(0.5)
    assert walls, "no live node with sandboxes"
    for w in walls:
        for wall in ("no_new_privs", "landlock", "capabilities", "rlimits", "seccomp"):
            assert wall in w, w
        assert "missing" not in w, w
