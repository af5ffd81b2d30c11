"""CPU-bound workloads for profile-guided optimisation of the guest.

Two uses:

- the training run: `python pgo_workload.py [rounds]` in a native CPython
  built with clang -fprofile-instr-generate from the guest's source (see
  bench/guestpgo/), so the profile comes from code paths a FaaS function
  typically takes: calls and integer arithmetic (fib), str methods and
  formatting, dict/list/set work, json, re, classes and attributes, and
  pickle (the sandbox pickles every argument and result);
- the mixed benchmark: BenchmarkPGOMixed (runtime/bench_test.go) runs
  mixed() in a warm sandbox.

Every function returns something derived from its work, so nothing is
optimised away and a wrong interpreter shows up as a different checksum.
Only the standard library; imports are inside the functions so that dill
can ship them to the sandbox by value.
"""


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def strings(n):
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    total = 0
    for i in range(n):
        w = words[i % len(words)]
        s = "%s-%d" % (w, i)
        s2 = f"{w.upper()}:{i:05d}:{s!r}"
        parts = (s2 + "," + s).split(",")
        joined = "|".join(p.strip().lower() for p in parts)
        if joined.startswith("alpha") or "eta" in joined:
            total += 1
        total += len(joined.replace("-", "_")) + joined.find(":") + joined.count("a")
        total += len(str(i)) + int(str(i * 7)[-1])
        total += len(" ".join(reversed(s.split("-")))).bit_length()
    return total


def dicts_lists(n):
    d = {}
    for i in range(n):
        d["k%d" % (i % 500)] = d.get("k%d" % (i % 500), 0) + i
    items = sorted(d.items(), key=lambda kv: kv[1], reverse=True)
    lst = [v for _, v in items]
    lst2 = [x * 2 for x in lst if x % 3]
    s = set(lst2)
    t = tuple(lst[:50])
    nested = {i: [i, i + 1, {"x": i}] for i in range(n // 10)}
    acc = 0
    for k, v in nested.items():
        acc += v[2]["x"] + len(v)
    lst.reverse()
    lst.extend(lst2[:100])
    lst.sort()
    acc += sum(lst) + len(s) + sum(t) + max(lst2, default=0) + min(lst, default=0)
    dq = []
    for i in range(n // 5):
        dq.append(i)
        if len(dq) > 20:
            acc += dq.pop(0)
    return acc


def json_work(n):
    import json
    doc = {"users": [{"id": i, "name": "user%d" % i, "tags": ["a", "b", str(i)],
                      "score": i * 1.5, "active": i % 2 == 0, "meta": None}
                     for i in range(n)]}
    text = json.dumps(doc)
    back = json.loads(text)
    pretty = json.dumps(back, indent=2, sort_keys=True)
    return len(text) + len(pretty) + sum(u["id"] for u in back["users"])


def re_work(n):
    import re
    log = "\n".join("2026-12-%02d 12:%02d:%02d INFO user=u%d action=%s bytes=%d"
                    % (1 + i % 28, i % 60, (i * 7) % 60, i, ("get", "put", "del")[i % 3], i * 13)
                    for i in range(n))
    pat = re.compile(r"^(\d{4})-(\d\d)-(\d\d) \S+ (\w+) user=(\w+) action=(\w+) bytes=(\d+)$", re.M)
    total = 0
    for m in pat.finditer(log):
        total += int(m.group(7)) + len(m.group(5))
    total += len(re.findall(r"action=(put|del)", log))
    total += len(re.sub(r"\d+", "#", log))
    total += len(re.split(r"\s+", log[: n * 5]))
    return total


def classes(n):
    class Vec:
        __slots__ = ("x", "y")

        def __init__(self, x, y):
            self.x = x
            self.y = y

        def __add__(self, o):
            return Vec(self.x + o.x, self.y + o.y)

        def dot(self, o):
            return self.x * o.x + self.y * o.y

    class Shape:
        sides = 0

        def __init__(self, name):
            self.name = name
            self.area_cache = None

        def area(self):
            return 0.0

        def describe(self):
            return "%s with %d sides, area %.2f" % (self.name, self.sides, self.area())

    class Square(Shape):
        sides = 4

        def __init__(self, a):
            super().__init__("square")
            self.a = a

        def area(self):
            if self.area_cache is None:
                self.area_cache = float(self.a * self.a)
            return self.area_cache

    class Tri(Shape):
        sides = 3

        def __init__(self, b, h):
            super().__init__("triangle")
            self.b, self.h = b, h

        @property
        def half(self):
            return 0.5

        def area(self):
            return self.half * self.b * self.h

    v = Vec(0, 0)
    total = 0.0
    for i in range(n):
        v = v + Vec(i, -i)
        total += v.dot(Vec(1, 2))
        sh = Square(i % 7) if i % 2 else Tri(i % 5, 3)
        total += sh.area() + len(sh.describe()) + getattr(sh, "sides")
        if isinstance(sh, Square) and hasattr(sh, "a"):
            total += sh.a
    return int(total)


def pickling(n):
    import pickle
    obj = {"ints": list(range(n)), "strs": ["s%d" % i for i in range(n)],
           "nested": [(i, {"f": i * 0.5, "b": bytes([i % 256]) * 8}) for i in range(n // 4)]}
    total = 0
    for _ in range(5):
        data = pickle.dumps(obj, protocol=4)
        back = pickle.loads(data)
        total += len(data) + len(back["strs"])
    return total


def mixed(scale=1):
    """One round of everything, about 100 ms in the sandbox at scale 1."""
    return {
        "fib": fib(22 + (scale > 1)),
        "strings": strings(1500 * scale),
        "dicts_lists": dicts_lists(12000 * scale),
        "json": json_work(300 * scale),
        "re": re_work(1500 * scale),
        "classes": classes(4000 * scale),
        "pickle": pickling(2000 * scale),
    }


if __name__ == "__main__":
    import sys
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    for r in range(rounds):
        res = mixed(1 + r % 2)
    fib(25)
    print(res)
