"""A course-project client, as the MPCSFaaS tests talk to the API.

Usage: python3 course_client.py <base url> <scratch dir>
Prints a JSON object with what it saw. Uses requests, dill and codecs
(base64 with a newline every 76 characters), exactly like the course code.
"""

import codecs
import json
import os
import sys
import time

import dill
import requests

base = sys.argv[1].rstrip("/")
scratch = sys.argv[2]


def serialize(obj):
    return codecs.encode(dill.dumps(obj), "base64").decode()


def deserialize(s):
    return dill.loads(codecs.decode(s.encode(), "base64"))


def double(x):
    return x * 2


out = {}
fn_payload = serialize(double)
out["payload_has_newlines"] = "\n" in fn_payload

resp = requests.post(base + "/register_function", json={"name": "double", "payload": fn_payload})
assert resp.status_code == 200, resp.text
fid = resp.json()["function_id"]

# Task 1: polled the course way until it is final.
resp = requests.post(base + "/execute_function", json={"function_id": fid, "payload": serialize(((21,), {}))})
assert resp.status_code == 200, resp.text
tid = resp.json()["task_id"]
statuses = set()
deadline = time.time() + 60
while time.time() < deadline:
    st = requests.get(base + "/status/" + tid).json()
    statuses.add(st["status"])
    if st["status"] in ("COMPLETED", "FAILED"):
        break
    time.sleep(0.01)
res = requests.get(base + "/result/" + tid).json()
out["task1_status"] = res["status"]
out["task1_value"] = deserialize(res["result"])
out["task1_statuses"] = sorted(statuses)

# Task 2: long-polled; the platform fails it, and the client raises it.
resp = requests.post(base + "/execute_function", json={"function_id": fid, "payload": serialize(((1,), {"unused": None}))})
tid = resp.json()["task_id"]
res = requests.get(base + "/result/" + tid, params={"wait": "60"}).json()
out["task2_status"] = res["status"]
out["task2_error_kind"] = res["error"]["kind"]
try:
    raise deserialize(res["result"])
except TimeoutError as e:
    out["task2_raised"] = "TimeoutError: %s" % e

# A function from an importable module is pickled by reference: refused.
os.makedirs(os.path.join(scratch, "tests"), exist_ok=True)
open(os.path.join(scratch, "tests", "__init__.py"), "w").close()
with open(os.path.join(scratch, "tests", "mod.py"), "w") as f:
    f.write("def triple(x):\n    return 3 * x\n")
sys.path.insert(0, scratch)
import tests.mod  # noqa: E402

resp = requests.post(base + "/register_function", json={"name": "triple", "payload": serialize(tests.mod.triple)})
out["byref_status"] = resp.status_code
out["byref_detail"] = resp.json()["detail"]

# Bad requests the course tests make.
resp = requests.post(base + "/execute_function", json={"function_id": fid, "payload": serialize(42)})
out["bad_args_status"] = resp.status_code
out["bad_args_detail"] = resp.json()["detail"]
resp = requests.get(base + "/status/not-a-task")
out["bad_id_status"] = resp.status_code

json.dump(out, sys.stdout)
