"""Failures of the platform's own processes, as a client sees them."""
import time

import pytest

from conftest import client_payloads, deserialize, serialize


def test_dispatcher_killed_mid_run(split_server):
    s = split_server
    (nap,) = client_payloads("def nap(sec, v):\n    import time\n    time.sleep(sec)\n    return v", "nap")
    fid = s.register(nap, name="nap")
    tids = [s.execute(fid, serialize(((1.0, i), {}))) for i in range(6)]
    deadline = time.time() + 20
    while not any(s.get(f"/status/{t}").json()["status"] == "RUNNING" for t in tids):
        if time.time() > deadline:
            pytest.fail("no task started")
        time.sleep(0.02)
    s.kill("dispatcher")  # SIGKILL: its sandboxes die with it, leases stay behind
    s.start_dispatcher()  # recovers the expired leases, runs the tasks again
    for i, tid in enumerate(tids):
        body = s.wait_result(tid)
        assert body["status"] == "COMPLETED", body
        assert deserialize(body["result"]) == i
        assert body["attempts"] >= 1
