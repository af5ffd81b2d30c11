#!/usr/bin/env bash
# Side by side: BenchmarkFib25 and BenchmarkPGOMixed (runtime/bench_test.go)
# on two images, taking turns (the order flips every round) in one test
# binary, so both see the same machine. Each image gets a cache dir of its
# own in which python-<recipe hash> is a link to it (the runtime finds the
# image as $FAAS_CACHE/python-<hash>; compiled code and snapshots go there
# too).
#
# Usage: bench/guestpgo/compare.sh BASE_IMAGE_DIR NEW_IMAGE_DIR [rounds] [workdir]
#   env BENCH (default 'Fib25|PGOMixed'), N (-test.benchtime, 20x for each
#   benchmark), TESTBIN (a prebuilt runtime test binary).
# Prints one line per run and, at the end, new/base ratios per round.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BASE="$(cd "$1" && pwd)"; NEW="$(cd "$2" && pwd)"
ROUNDS="${3:-6}"
W="${4:-$(mktemp -d /tmp/guestpgo-compare.XXXXXX)}"
mkdir -p "$W"
HASH="$(cat "$ROOT/runtime/pybuild/build.sh" "$ROOT/runtime/pybuild/shim.c" | sha256sum | cut -c1-16)"
for side in base new; do
    mkdir -p "$W/cache-$side"
    img="$BASE"; [[ $side == new ]] && img="$NEW"
    ln -sfn "$img" "$W/cache-$side/python-$HASH"
done
TESTBIN="${TESTBIN:-$W/runtime.test}"
[[ -x "$TESTBIN" ]] || (cd "$ROOT" && go test -c -o "$TESTBIN" ./runtime/)
BENCH="${BENCH:-Fib25|PGOMixed}"
runone() { # runone side round
    (cd "$ROOT/runtime" && FAAS_CACHE="$W/cache-$1" "$TESTBIN" -test.run '^$' -test.bench "$BENCH" \
        -test.benchtime "${N:-20}x" 2>>"$W/stderr.txt") | grep -E '^Benchmark' | sed "s/^/$2 $1 /" | tee -a "$W/runs.txt"
}
: >"$W/runs.txt"
# warm-up: compile caches and snapshots of both sides
for side in base new; do BENCH="$BENCH" runone "$side" 0 >/dev/null; done
for r in $(seq 1 "$ROUNDS"); do
    if ((r % 2)); then order="base new"; else order="new base"; fi
    for side in $order; do runone "$side" "$r"; done
    date -u +%H:%M:%S >&2
done
python3 - "$W/runs.txt" <<'PY'
import re, sys, statistics
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    r, side, name = int(f[0]), f[1], re.sub(r"-\d+$", "", f[2])
    if r == 0:
        continue
    m = dict((f[i + 1], float(f[i])) for i in range(4, len(f) - 1, 2))
    rows.setdefault(name, {}).setdefault(r, {})[side] = m
for name, byr in sorted(rows.items()):
    for metric in ("best-ms/op", "ns/op"):
        ratios, b, n = [], [], []
        for r, sides in sorted(byr.items()):
            if "base" in sides and "new" in sides and metric in sides["base"]:
                b.append(sides["base"][metric]); n.append(sides["new"][metric])
                ratios.append(sides["new"][metric] / sides["base"][metric])
        if not ratios:
            continue
        scale = 1e-6 if metric == "ns/op" else 1
        print("%-18s %-10s base %.1f ms (%.1f-%.1f)  new %.1f ms (%.1f-%.1f)  new/base median %.3f (%.3f-%.3f) over %d rounds" % (
            name, metric, statistics.median(b) * scale, min(b) * scale, max(b) * scale,
            statistics.median(n) * scale, min(n) * scale, max(n) * scale,
            statistics.median(ratios), min(ratios), max(ratios), len(ratios)))
PY
