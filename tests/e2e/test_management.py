"""Task management, metrics and the API description, against the real
binary in both deployments: DELETE /task/{id}, POST /execute_batch, the
result TTL, GET /metrics, GET /openapi.json and GET /docs."""
import re
import time
import uuid

import pytest
import requests

from conftest import _deployment, client_payloads, deserialize, serialize

FUNCS = """
def nap(s, v):
    import time
    time.sleep(s)
    return v
def add(a, b): return a + b
def boom(): raise KeyError("boom")
"""


@pytest.fixture(scope="module", params=["up", "split", "sentinel"])
def srv(request):
    """A deployment whose tasks may run 60 s, so that a sleeping task is
    stopped by its cancellation, not by its timeout."""
    yield from _deployment(request, request.param, timeout="60s")


@pytest.fixture(scope="module")
def fns(srv):
    names = ["nap", "add", "boom"]
    return {n: srv.register(p, name=n) for n, p in zip(names, client_payloads(FUNCS, *names))}


def wait_status(s, tid, want, timeout=30):
    deadline = time.time() + timeout
    while True:
        st = s.get(f"/status/{tid}").json()["status"]
        if st == want:
            return
        assert time.time() < deadline, f"task {tid} is {st}, never {want}"
        time.sleep(0.02)


def cancel(s, tid):
    return requests.delete(f"{s.url}/task/{tid}", timeout=30)


def occupy_sandboxes(s, fns, n=2):
    """Starts n tasks that sleep 30 s, one per sandbox, and waits until they run."""
    tids = [s.execute(fns["nap"], serialize(((30, i), {}))) for i in range(n)]
    for tid in tids:
        wait_status(s, tid, "RUNNING")
    return tids


def assert_cancelled(s, tid):
    body = s.get(f"/result/{tid}").json()
    assert body["status"] == "FAILED", body
    assert body["error"]["kind"] == "CANCELLED", body
    exc = deserialize(body["result"])
    assert isinstance(exc, RuntimeError) and "cancelled" in str(exc), exc
    r = cancel(s, tid)  # cancelling again says it is over
    assert r.status_code == 409, r.text
    assert "already FAILED" in r.json()["detail"]


def test_cancel_queued(srv, fns):
    sleepers = occupy_sandboxes(srv, fns)
    queued = srv.execute(fns["add"], serialize(((1, 2), {})))
    assert srv.get(f"/status/{queued}").json()["status"] == "QUEUED"
    r = cancel(srv, queued)
    assert r.status_code == 200, r.text
    assert r.json() == {"task_id": queued, "status": "FAILED", "previous_status": "QUEUED"}
    assert_cancelled(srv, queued)
    for tid in sleepers:
        assert cancel(srv, tid).status_code == 200


@pytest.fixture(scope="module", params=["push", "pull"])
def remote(request):
    """Tasks run on a push or pull worker: a cancelled task must be stopped
    there too."""
    yield from _deployment(request, request.param, timeout="60s")


def test_cancel_running_on_a_remote_worker(remote):
    names = ["nap", "add"]
    fns = {n: remote.register(p, name=n) for n, p in zip(names, client_payloads(FUNCS, *names))}
    cancel_running_and_run_more(remote, fns)


def test_remote_dispatcher_shows_its_workers(remote):
    """GET /runtime (and so the metrics and the dashboard) counts the
    sandboxes of the workers a push or pull dispatcher serves."""
    deadline = time.time() + 20
    while True:
        nodes = remote.get("/runtime").json()["nodes"]
        mine = [n for n in nodes if n["mode"] == remote.kind and n["alive"]]
        if mine and mine[0]["sandboxes"] == 2:
            break
        assert time.time() < deadline, nodes
        time.sleep(0.2)
    assert mine[0]["role"] == "dispatcher"


def test_cancel_running_stops_the_sandbox(srv, fns):
    cancel_running_and_run_more(srv, fns)


def cancel_running_and_run_more(srv, fns):
    sleepers = occupy_sandboxes(srv, fns)
    for tid in sleepers:
        r = cancel(srv, tid)
        assert r.status_code == 200, r.text
        assert r.json() == {"task_id": tid, "status": "FAILED", "previous_status": "RUNNING"}
    for tid in sleepers:
        assert_cancelled(srv, tid)
    # Both sandboxes were busy for 30 s: tasks run well before that only
    # because the cancelled ones were killed.
    follow = [srv.execute(fns["add"], serialize(((i, 1), {}))) for i in range(2)]
    for i, tid in enumerate(follow):
        body = srv.wait_result(tid, timeout=20)
        assert body["status"] == "COMPLETED", body
        assert deserialize(body["result"]) == i + 1
        assert body["attempts"] == 1


def test_cancel_errors(srv, fns):
    unknown = str(uuid.uuid4())
    r = cancel(srv, unknown)
    assert r.status_code == 404 and r.json() == {"detail": f"task {unknown} not found"}
    r = cancel(srv, "not-a-uuid")
    assert r.status_code == 400 and "not a UUID" in r.json()["detail"]
    done = srv.execute(fns["add"], serialize(((1, 1), {})))
    srv.wait_result(done)
    r = cancel(srv, done)
    assert r.status_code == 409 and "already COMPLETED" in r.json()["detail"], r.text


def test_batch_of_dill_payloads(srv, fns):
    payloads = [serialize(((i, 10), {})) for i in range(20)]
    r = srv.post("/execute_batch", {"function_id": fns["add"], "payloads": payloads})
    assert r.status_code == 200, r.text
    tids = r.json()["task_ids"]
    assert len(tids) == 20 and len(set(tids)) == 20
    for i, tid in enumerate(tids):
        body = srv.wait_result(tid)
        assert body["status"] == "COMPLETED", body
        assert deserialize(body["result"]) == i + 10


def test_batch_of_json_calls(srv):
    r = srv.post("/register_function", {"name": "area", "source": "def area(w, h=1):\n    return {'area': w * h}"})
    fid = r.json()["function_id"]
    calls = [{"args": [2], "kwargs": {"h": 3}}, {"args": [5]}, {"kwargs": {"w": 1, "h": 1}}, {"args": ["x", "y"]}]
    r = srv.post("/execute_batch", {"function_id": fid, "calls": calls})
    assert r.status_code == 200, r.text
    bodies = [srv.wait_result(t) for t in r.json()["task_ids"]]
    assert [b["result_json"] for b in bodies[:3]] == [{"area": 6}, {"area": 5}, {"area": 1}]
    assert bodies[3]["status"] == "FAILED" and bodies[3]["error"]["kind"] == "USER_EXCEPTION"
    assert isinstance(deserialize(bodies[3]["result"]), TypeError)


def submitted(s):
    return s.get("/dashboard/state?limit=0").json()["tasks"]["submitted"]


@pytest.mark.parametrize("body,status,detail", [
    ({"payloads": ["OK", "OK", "bm90IGEgcGlja2xl", "OK"]}, 400, "payloads[2]: "),
    ({"payloads": ["OK", "@@@"]}, 400, "payloads[1]: payload is not valid base64"),
    ({"calls": [{"args": [1]}, {"args": {"a": 1}}]}, 422, 'calls[1]: field "args" must be a JSON array'),
    ({"calls": []}, 422, "is empty"),
    ({"payloads": ["OK"], "calls": [{}]}, 422, "not both"),
    ({"payloads": ["OK"] * 1001}, 413, "a batch of 1001 calls is over the limit of 1000"),
])
def test_batch_refused_as_a_whole(srv, fns, body, status, detail):
    ok = serialize(((1, 2), {}))
    body = dict(body, function_id=fns["add"])
    if "payloads" in body:
        body["payloads"] = [ok if p == "OK" else p for p in body["payloads"]]
    before = submitted(srv)
    r = srv.post("/execute_batch", body)
    assert r.status_code == status, r.text
    assert detail in r.json()["detail"]
    assert submitted(srv) == before  # all or nothing


def test_batch_unknown_function(srv):
    r = srv.post("/execute_batch", {"function_id": str(uuid.uuid4()), "payloads": [serialize(((), {}))]})
    assert r.status_code == 404 and "not found" in r.json()["detail"]


METRIC = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$')


def metrics(s):
    """GET /metrics as {(name, frozenset of label pairs): value}."""
    r = s.get("/metrics")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain"), r.text[:300]
    out = {}
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = METRIC.match(line)
        assert m, f"not a metric line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(ms, name, **labels):
    want = set(labels.items())
    found = [v for (n, ls), v in ms.items() if n == name and want <= ls]
    assert found, f"{name}{labels} not in /metrics"
    return sum(found)


def test_metrics_after_tasks(srv, fns):
    before = metrics(srv)
    tids = [srv.execute(fns["add"], serialize(((i, i), {}))) for i in range(4)]
    tids.append(srv.execute(fns["boom"], serialize(((), {}))))
    for tid in tids:
        srv.wait_result(tid)
    queued = occupy_sandboxes(srv, fns, 2)
    extra = srv.execute(fns["add"], serialize(((0, 0), {})))
    assert cancel(srv, extra).status_code == 200
    for tid in queued:
        assert cancel(srv, tid).status_code == 200
    after = metrics(srv)

    def delta(name, **labels):
        return value(after, name, **labels) - (value(before, name, **labels) if any(
            n == name and set(labels.items()) <= ls for n, ls in before) else 0)

    assert value(after, "faas_store_up") == 1
    assert delta("faas_tasks_submitted_total") == 8
    assert delta("faas_tasks_finished_total", status="COMPLETED") == 4
    assert delta("faas_tasks_finished_total", status="FAILED") == 4
    assert delta("faas_tasks_failed_total", kind="USER_EXCEPTION") == 1
    assert delta("faas_tasks_failed_total", kind="CANCELLED") == 3
    assert delta("faas_task_latency_seconds_count", status="COMPLETED") == 4
    assert delta("faas_task_execution_seconds_count", status="FAILED") == 3  # the queued one never ran
    assert value(after, "faas_task_latency_seconds_bucket", status="COMPLETED", le="+Inf") == value(
        after, "faas_task_latency_seconds_count", status="COMPLETED")
    assert value(after, "faas_tasks", status="QUEUED") == 0
    assert value(after, "faas_tasks", status="RUNNING") == 0
    # The node that ran them, seen from the API (in the split deployment,
    # a process without sandboxes): everything comes from Redis.
    assert value(after, "faas_node_up", role="dispatcher", mode="local") == 1
    assert value(after, "faas_sandboxes") == 2
    # Nodes report every 2 s: wait for the report that has the 7 tasks that
    # started and the 2 sandboxes the cancellations replaced.
    deadline = time.time() + 30
    while True:
        ms = metrics(srv)
        if value(ms, "faas_node_tasks_total") >= 7 and value(ms, "faas_sandbox_restarts_total") >= 2:
            break
        assert time.time() < deadline, "the node never reported its tasks"
        time.sleep(0.2)
    assert value(ms, "faas_sandbox_starts_total", type="warm") + value(ms, "faas_sandbox_starts_total", type="cold") >= 7


def test_openapi_and_docs(srv):
    r = srv.get("/openapi.json")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    routes = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    for route in [("POST", "/register_function"), ("POST", "/execute_function"), ("POST", "/execute_batch"),
                  ("GET", "/status/{task_id}"), ("GET", "/result/{task_id}"), ("DELETE", "/task/{task_id}"),
                  ("GET", "/runtime"), ("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/openapi.json"),
                  ("GET", "/docs"), ("GET", "/"), ("GET", "/dashboard/state")]:
        assert route in routes, route
    assert "409" in doc["paths"]["/task/{task_id}"]["delete"]["responses"]
    r = srv.get("/docs")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    for text in ["/execute_batch", "/task/{task_id}", "Cancel a task", "previous_status", "result_json"]:
        assert text in r.text, text


@pytest.fixture(scope="module", params=["up", "split", "sentinel"])
def short_ttl(request):
    """A deployment that keeps finished tasks 2 s."""
    yield from _deployment(request, request.param, extra=["--result-ttl", "2s"])


def test_result_ttl_removes_finished_tasks(short_ttl):
    s = short_ttl
    r = s.post("/register_function", {"name": "inc", "source": "def inc(x): return x + 1"})
    fid = r.json()["function_id"]
    tid = s.post("/execute_function", {"function_id": fid, "args": [1]}).json()["task_id"]
    assert s.wait_result(tid)["result_json"] == 2
    deadline = time.time() + 30
    while s.get(f"/status/{tid}").status_code != 404:
        assert time.time() < deadline, "the finished task was never removed"
        time.sleep(0.2)
    assert s.get(f"/result/{tid}").status_code == 404
    # The function does not expire.
    tid = s.post("/execute_function", {"function_id": fid, "args": [2]}).json()["task_id"]
    assert s.wait_result(tid)["result_json"] == 3
