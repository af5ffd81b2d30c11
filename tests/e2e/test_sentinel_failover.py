"""A failover of Redis Sentinel as a client sees it: tasks submitted over
HTTP flow through faas api and faas dispatcher -m local, the primary is
SIGKILLed, the sentinels promote a replica, and the API and the dispatcher
follow it by themselves (nobody restarts them). On the durable deployment
(appendfsync always, min-replicas-to-write 1: see conftest.Sentinel), every
task whose submission the API acknowledged ends COMPLETED with its result,
and /metrics counts each completion once."""
import re
import threading
import time

import pytest
import requests

from conftest import _deployment, client_payloads, deserialize, serialize


@pytest.fixture
def durable_sentinel(request):
    yield from _deployment(request, "sentinel", durable=True)


def finished_completed(s):
    """faas_tasks_finished_total{status="COMPLETED"} from /metrics."""
    r = s.get("/metrics")
    assert r.status_code == 200, r.text[:300]
    m = re.search(r'^faas_tasks_finished_total\{[^}]*status="COMPLETED"[^}]*\} (\S+)$', r.text, re.M)
    assert m, "faas_tasks_finished_total{status=COMPLETED} not in /metrics"
    return float(m.group(1))


class Submitter(threading.Thread):
    """Submits nap(0.05, i) for i = 0, 1, ... over HTTP until stopped, as a
    client would: acked holds (i, task_id) for every 200, refused the
    submissions that got an error or no answer (not acknowledged: they may
    or may not exist)."""

    def __init__(self, s, fid):
        super().__init__(daemon=True)
        self.s, self.fid = s, fid
        self.acked, self.refused = [], []
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        i = 0
        while not self.stopping.is_set():
            try:
                r = requests.post(self.s.url + "/execute_function",
                                  json={"function_id": self.fid, "payload": serialize(((0.05, i), {}))}, timeout=30)
                ok = r.status_code == 200
                outcome = r.json()["task_id"] if ok else f"{r.status_code} {r.text[:200]}"
            except requests.RequestException as e:
                ok, outcome = False, repr(e)
            with self.lock:
                (self.acked if ok else self.refused).append((i, outcome))
            i += 1
            time.sleep(0.02)

    def n_acked(self):
        with self.lock:
            return len(self.acked)


def test_tasks_survive_a_primary_killed_mid_flow(durable_sentinel):
    s = durable_sentinel
    (nap,) = client_payloads("def nap(sec, v):\n    import time\n    time.sleep(sec)\n    return v * v", "nap")
    fid = s.register(nap, name="nap")
    sub = Submitter(s, fid)
    sub.start()
    try:
        # Some done, some running, some queued: then the primary dies.
        deadline = time.time() + 60
        while sub.n_acked() < 20:
            assert time.time() < deadline, f"only {sub.n_acked()} submissions acknowledged in 60 s: {sub.refused[-3:]}"
            time.sleep(0.05)
        assert s.wait_result(sub.acked[0][1])["status"] == "COMPLETED"
        killed_at = time.time()
        promoted = s.sentinel.kill_primary(s.procs)
        promoted_at = time.time()
        # The API takes submissions again without being restarted.
        before = sub.n_acked()
        deadline = time.time() + 60
        while sub.n_acked() < before + 20:
            assert time.time() < deadline, f"no submission acknowledged after the failover: {sub.refused[-3:]}"
            time.sleep(0.05)
    finally:
        sub.stopping.set()
        sub.join(timeout=60)
    assert not sub.is_alive()
    print(f"\nfailover to {promoted} in {promoted_at - killed_at:.1f}s; {len(sub.acked)} submissions acknowledged, "
          f"{len(sub.refused)} refused during the failover {sub.refused[:3]}")
    assert len({tid for _, tid in sub.acked}) == len(sub.acked)
    for i, tid in sub.acked:
        body = s.wait_result(tid, timeout=120)  # a 404 (a lost task) fails here
        assert body["status"] == "COMPLETED", body
        assert deserialize(body["result"]) == i * i, body
    for name in ("api", "dispatcher"):
        assert s.procs[name].poll() is None, f"{name} exited"
    # Each completion counted once: the acknowledged tasks, and at most the
    # refused submissions that were created all the same.
    done = finished_completed(s)
    assert len(sub.acked) <= done <= len(sub.acked) + len(sub.refused), (done, len(sub.acked), len(sub.refused))
