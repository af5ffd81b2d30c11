"""Counts what clang matched when it applied the profile to the wasm32 build.

Reads the CPython make log of a build made with -Wprofile-instr-out-of-date,
-Wprofile-instr-missing and -Wprofile-instr-unprofiled and make's
--output-sync=target (so each file's warnings follow its compile line), and
prints per-file and total counts:

- "of N functions, M have mismatched data" (out-of-date): the profile has a
  record of that name but its control-flow hash differs (the native build's
  code differs from the wasm32 build's), so clang ignores it;
- "of N functions, M have no data" (missing): no record of that name;
- "no profile data available for file": no record for any function of it.

A file with neither warning had every function matched; clang does not print
its function count, so the matched total is a lower bound over the files that
warned plus the files that did not.

Usage: python3 match_counts.py BUILD_LOG [--files]
"""
import re
import sys

log = sys.argv[1]
cur = None
files = {}  # source file -> dict
order = []
ood = re.compile(r"profile data may be out of date: of (\d+) functions?, (\d+) (?:has|have) mismatched")
miss = re.compile(r"profile data may be incomplete: of (\d+) functions?, (\d+) (?:has|have) no data")
unprof = re.compile(r'no profile data available for file "([^"]+)"')
for line in open(log, errors="replace"):
    if "clang" in line and " -c " in line and ".c" in line:
        srcs = [t for t in line.split() if t.endswith(".c")]
        if srcs:
            cur = srcs[-1]
            if cur not in files:
                files[cur] = {"n": None, "mismatch": 0, "missing": 0, "unprofiled": False}
                order.append(cur)
        continue
    if cur is None:
        continue
    m = ood.search(line)
    if m:
        files[cur]["n"] = int(m.group(1)); files[cur]["mismatch"] = int(m.group(2)); continue
    m = miss.search(line)
    if m:
        files[cur]["n"] = int(m.group(1)); files[cur]["missing"] = int(m.group(2)); continue
    m = unprof.search(line)
    if m:
        files[cur]["unprofiled"] = True

warned = [f for f in order if files[f]["n"] is not None]
unprof_files = [f for f in order if files[f]["unprofiled"]]
clean = [f for f in order if files[f]["n"] is None and not files[f]["unprofiled"]]
n = sum(files[f]["n"] for f in warned)
mm = sum(files[f]["mismatch"] for f in warned)
mi = sum(files[f]["missing"] for f in warned)
print("compiled C files: %d" % len(order))
print("files with no profile data at all (-Wprofile-instr-unprofiled): %d" % len(unprof_files))
print("files with every function matched (no warning): %d" % len(clean))
print("files with some functions mismatched or missing: %d, holding %d functions: "
      "%d matched, %d mismatched (hash differs, ignored), %d without data"
      % (len(warned), n, n - mm - mi, mm, mi))
if "--files" in sys.argv:
    for f in order:
        d = files[f]
        if d["n"] is not None or d["unprofiled"]:
            print("  %-45s %s" % (f, "unprofiled" if d["unprofiled"] and d["n"] is None else
                                  "of %d: %d mismatched, %d no data" % (d["n"], d["mismatch"], d["missing"])))
