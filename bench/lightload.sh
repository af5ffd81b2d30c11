#!/bin/bash
# Used by bench/results/perf-issue13.txt; the full study (faas bench study) measures light load too.
# light-load latency: redis-server + faas api + faas dispatcher -m local -w 2, open loop 50/s
BIN=$1; RP=$2; AP=$3
redis-server --port $RP --save '' --appendonly no >/dev/null 2>&1 &
R=$!; sleep 0.5
$BIN api --addr 127.0.0.1:$AP --redis redis://127.0.0.1:$RP/0 --log-level warn >/dev/null 2>&1 &
A=$!
$BIN dispatcher -m local -w 2 --redis redis://127.0.0.1:$RP/0 --log-level warn >/dev/null 2>&1 &
D=$!
sleep 6
/work/main/bin/faas bench --url http://127.0.0.1:$AP --kind noop --rate 50 -n 1000 --json 2>/dev/null | python3 -c 'import json,sys; r=json.load(sys.stdin); l=r["latency"]; print("p50 %.2f p95 %.2f p99 %.2f ms" % (l["p50_ms"], l["p95_ms"], l["p99_ms"]))'
kill $D $A $R; wait 2>/dev/null
