#!/bin/bash
# Where light-load latency goes: runs redis-server + faas api + faas dispatcher
# -m local -w 2 on loopback, sends no-op tasks at 20/s with `faas bench`, records
# the loopback traffic with tcpdump (apt-get install tcpdump) and prints the
# median time from a task's POST to each step of its path (latency_hops.py).
# Usage: bench/latency_hops.sh BIN [REDIS_PORT API_PORT]
set -euo pipefail
BIN=$1; RP=${2:-6490}; AP=${3:-8490}
D=$(mktemp -d)
redis-server --port "$RP" --save '' --appendonly no >/dev/null 2>&1 &
R=$!; sleep 0.5
"$BIN" api --addr 127.0.0.1:"$AP" --redis redis://127.0.0.1:"$RP"/0 --log-level warn >/dev/null 2>&1 &
A=$!
"$BIN" dispatcher -m local -w 2 --redis redis://127.0.0.1:"$RP"/0 --log-level warn >/dev/null 2>&1 &
W=$!
trap 'kill $W $A $R 2>/dev/null; rm -rf "$D"' EXIT
sleep 4
"$BIN" bench --url http://127.0.0.1:"$AP" --kind noop --rate 20 -n 40 >/dev/null 2>&1 # warm up
tcpdump -i lo -nn -tt -s 200 -w "$D/t.pcap" "tcp port $RP or tcp port $AP" >/dev/null 2>&1 &
T=$!; sleep 1
"$BIN" bench --url http://127.0.0.1:"$AP" --kind noop --rate 20 -n 300 2>&1 | grep -E "latency ms"
sleep 0.5; kill $T; wait $T 2>/dev/null || true
tcpdump -r "$D/t.pcap" -nn -tt 2>/dev/null | python3 "$(dirname "$0")/latency_hops.py" "$AP" "$RP"
