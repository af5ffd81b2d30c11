"""The training run of bench/guestpgo/build-pgo.sh, in the instrumented
native interpreter: pgo_workload's functions defined in __main__ (as a
client's are), a few rounds of them, then what the sandbox does for every
call: dill.loads of the function and its arguments, the call, dill.dumps
of the result (functions of __main__ go by value, as clients send them)."""
import os

_src = open(os.path.join(os.path.dirname(__import__("pgo_workload").__file__), "pgo_workload.py")).read()
exec(compile(_src.split("\nif __name__")[0], "pgo_workload.py", "exec"), globals())

for _ in range(3):
    mixed(1)
    mixed(2)
fib(25)

import dill


def noop():
    return None


blobs = [dill.dumps(f) for f in (mixed, noop, strings)]
for _ in range(200):
    for b in blobs:
        f = dill.loads(b)
    args = dill.loads(dill.dumps(((20,), {"k": [1, 2, 3]})))
    dill.dumps({"result": f(30), "s": "x" * 100})
print("trained")
