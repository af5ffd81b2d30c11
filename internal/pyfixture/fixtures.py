"""Pickle fixtures for the api tests, made with Debian's python3 and dill.

Usage: python3 fixtures.py <scratch dir>
Prints a JSON object {case name: base64 of the pickle}. The scratch
directory receives a real importable package (tests/mod.py) and module
(mymod.py), so that dill pickles their functions and classes by reference,
as it does for a client's own modules.
"""

import base64
import functools
import json
import math
import os
import sys

import dill

scratch = sys.argv[1]
os.makedirs(os.path.join(scratch, "tests"), exist_ok=True)
with open(os.path.join(scratch, "tests", "__init__.py"), "w") as f:
    f.write("")
with open(os.path.join(scratch, "tests", "mod.py"), "w") as f:
    f.write("def double(x):\n    return 2 * x\n\n\nclass Point:\n    def __init__(self, x):\n        self.x = x\n\n\n"
            "def make_nested():\n    def nested(x):\n        return x + 1\n    return nested\n\n\n"
            "def make_lambda():\n    return lambda x: x * 2\n")
with open(os.path.join(scratch, "mymod.py"), "w") as f:
    f.write("VALUE = 42\n")
sys.path.insert(0, scratch)

import mymod  # noqa: E402
import tests.mod  # noqa: E402


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def make_adder(k):
    def add(x):
        return x + k
    return add


def uses_json(x):
    import json
    return json.dumps(x)


def uses_math_global(x):
    return math.sqrt(x)


def uses_mymod():
    return mymod.VALUE


def calls_double(x):
    return tests.mod.double(x)


class Callable:
    def __init__(self, k):
        self.k = k

    def __call__(self, x):
        return x * self.k


out = {}


def add(name, obj, **kw):
    out[name] = base64.b64encode(dill.dumps(obj, **kw)).decode()


# Callables that the sandbox can load.
for p in range(6):
    add("lambda_p%d" % p, lambda x: x + 1, protocol=p)
add("closure", make_adder(3))
add("fib", fib)
add("uses_json", uses_json)
add("uses_math_global_recurse", uses_math_global, recurse=True)
add("math_sqrt", math.sqrt)
add("math_sqrt_p0", math.sqrt, protocol=0)
add("builtins_print", print)
add("builtins_len_p2", len, protocol=2)
add("partial", functools.partial(fib, 3))
add("callable_instance", Callable(3))
add("class_by_value", Callable)
add("stdlib_class", functools.partial)

# Callables the sandbox cannot load.
add("nested_in_module", tests.mod.make_nested())
add("lambda_in_module", tests.mod.make_lambda())
add("args_nested_in_module", ((tests.mod.make_nested(),), {}))
add("byref_tests_mod", tests.mod.double)
add("byref_tests_mod_recurse", tests.mod.double, recurse=True)
add("byref_tests_mod_p2", tests.mod.double, protocol=2)
add("byref_tests_mod_p0", tests.mod.double, protocol=0)
add("uses_mymod_recurse", uses_mymod, recurse=True)
add("partial_of_byref", functools.partial(tests.mod.double, 2))
add("left_out_stdlib", __import__("ctypes").sizeof)

# Plain data, which is not a function.
data = {
    "str": "hello", "bytes": b"abc", "int": 7, "bigint": 1 << 100, "float": 1.5,
    "none": None, "bool": True, "list": [1, 2], "dict": {"a": 1}, "tuple": (1, 2),
    "set": {1, 2}, "frozenset": frozenset([1]), "bytearray": bytearray(b"x"),
    "complex": 1 + 2j,
}
for name, obj in data.items():
    for p in (0, 2, 4, 5):
        add("data_%s_p%d" % (name, p), obj, protocol=p)

# Arguments.
add("args_empty", ((), {}))
add("args_simple", ((1, 2), {"a": 1}))
for p in range(6):
    add("args_simple_p%d" % p, ((1, 2), {"a": 1}), protocol=p)
add("args_list", ([1, 2], {}))
add("args_big_list", ((list(range(100000)),), {}))
add("args_nested", (({"k": [1, (2, 3)], "s": {1}}, "x" * 1000, b"y", None, 1.5), {"kw": [None]}))
add("args_function", ((lambda x: x,), {}))
add("args_shared", ((mymod.__name__,) * 3, {}))
add("args_point", ((tests.mod.Point(1),), {}))
add("args_not_pair", (1, 2, 3))
add("args_list_pair", [(), {}])
add("args_int", 5)
add("args_kwargs_list", ((), []))
add("args_args_dict", ({}, {}))
add("args_single", ((1,),))

json.dump(out, sys.stdout)
