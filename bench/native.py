"""Native baselines for the isolation-overhead report (bench/isolation.go).

Runs N calls of a benchmark function with P processes, two ways:
  warm-pool: a multiprocessing pool of P warm python3 processes (no isolation)
  fresh:     a new python3 process per call (process isolation), P at a time,
             each loading the dill-pickled function like a sandbox does
and prints {"seconds": wall, "n": N} as JSON. Run with Debian's python3:

    /usr/bin/python3 bench/native.py warm-pool fib20 200 2
"""
import base64
import json
import multiprocessing
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import dill

SOURCE = """
def noop():
    return None

def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)

def nap(seconds):
    import time
    time.sleep(seconds)

def size(data):
    return len(data)
"""
exec(compile(SOURCE, "<bench>", "exec"), globals())

KINDS = {
    "noop": ("noop", ()),
    "fib20": ("fib", (20,)),
    "sleep100ms": ("nap", (0.1,)),
    "arg1mb": ("size", (b"x" * (1 << 20),)),
}

# A fresh interpreter per call, loading the function as a sandbox does
# (including binding its name in __main__, so recursion works, as pyshim does).
CHILD = """
import base64, sys, dill, __main__
fn = dill.loads(base64.b64decode(sys.argv[1]))
setattr(__main__, fn.__name__, fn)
args, kwargs = dill.loads(sys.stdin.buffer.read())
fn(*args, **kwargs)
"""


def call(payload):
    fn, args = dill.loads(payload)
    return fn(*args)


def main():
    mode, kind, n, procs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    name, args = KINDS[kind]
    fn = globals()[name]
    if mode == "warm-pool":
        payload = dill.dumps((fn, args))
        with multiprocessing.Pool(procs) as pool:
            pool.map(call, [payload] * procs)  # warm up every process
            t = time.perf_counter()
            pool.map(call, [payload] * n, chunksize=1)
            wall = time.perf_counter() - t
    elif mode == "fresh":
        fn_b64 = base64.b64encode(dill.dumps(fn)).decode()
        arg_bytes = dill.dumps((args, {}))

        def one(_):
            subprocess.run([sys.executable, "-c", CHILD, fn_b64], input=arg_bytes, check=True)

        t = time.perf_counter()
        with ThreadPoolExecutor(procs) as ex:
            list(ex.map(one, range(n)))
        wall = time.perf_counter() - t
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps({"seconds": wall, "n": n}))


if __name__ == "__main__":
    main()
