#!/usr/bin/env python3
"""Reads `tcpdump -nn -tt -r FILE` text of a light-load run (bench/latency_hops.sh)
and prints where a task's latency goes: the median time from the client's
POST /execute to each step of its path, and between steps.

Packets are told apart by port and size (no payload parsing): the client
talks to the API port, everything else to the Redis port; a no-op task's
enqueue script is the largest request to Redis, the claim script reply the
largest reply, and so on. Tasks whose packets do not fit that shape (a
retry, two tasks overlapping) are skipped and counted.
"""
import re
import statistics
import sys

api, redis = int(sys.argv[1]), int(sys.argv[2])
rows = []
for line in sys.stdin:
    m = re.match(r"(\d+\.\d+) IP 127\.0\.0\.1\.(\d+) > 127\.0\.0\.1\.(\d+): .* length (\d+)", line)
    if m and int(m[4]) > 0:
        rows.append((float(m[1]), int(m[2]), int(m[3]), int(m[4])))

steps = ["POST at the API", "enqueue sent to Redis", "enqueue answered", "claim sent", "claim answered",
         "completion sent", "done message to the API", "result sent to the client"]
seen = {s: [] for s in steps}
skipped = 0
posts = [i for i, r in enumerate(rows) if r[2] == api and r[3] > 200]
for k, i in enumerate(posts):
    end = posts[k + 1] if k + 1 < len(posts) else len(rows)
    ev = rows[i:end]
    t0 = ev[0][0]
    try:
        enq = next(e for e in ev if e[2] == redis and e[3] > 800)
        enq_r = next(e for e in ev if e[1] == redis and e[0] > enq[0] and e[3] < 20)
        claim_r = next(e for e in ev if e[1] == redis and e[0] > enq_r[0] and 400 < e[3] < 700)
        claim = [e for e in ev if e[2] == redis and enq_r[0] <= e[0] < claim_r[0] and 150 < e[3] < 400][-1]
        comp = next(e for e in ev if e[2] == redis and e[0] > claim_r[0] and 500 < e[3] < 900)
        done = next(e for e in ev if e[1] == redis and e[0] > comp[0] and 250 <= e[3] < 500)
        resp = next(e for e in ev if e[1] == api and e[0] > done[0] and e[3] > 400)
    except (StopIteration, IndexError):
        skipped += 1
        continue
    for s, e in zip(steps, [ev[0], enq, enq_r, claim, claim_r, comp, done, resp]):
        seen[s].append((e[0] - t0) * 1e6)
n = len(seen[steps[0]])
print(f"{n} tasks ({skipped} skipped); median microseconds after the POST reached the API:")
prev = 0.0
for s in steps:
    v = statistics.median(seen[s]) if seen[s] else float("nan")
    print(f"  {s:28s} {v:7.0f}   (+{v - prev:5.0f})")
    prev = v
