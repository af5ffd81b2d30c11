#!/usr/bin/env bash
# Instructions redis-server spends per no-op task in the store's scripts,
# counted by valgrind's callgrind (repeatable, unlike times on a drifting VM).
#   bench/redis_callgrind.sh [redis-server binary] [tasks]
# A redis-server built with symbols (apt-get source redis; make MALLOC=libc)
# also names the functions inside Lua; Debian's binary is stripped of them.
# Prints, for the enqueue and for the completion with the next claim, the
# instructions of all commands and of the script calls, per task, and the
# heaviest functions under them (inclusive).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
server=${1:-redis-server}
n=${2:-3000}
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "$server" --port "$port" --bind 127.0.0.1 --save '' --appendonly no >"$dir/valgrind.log" 2>&1 &
vg=$!
trap 'kill $vg 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.2; done
FAAS_BENCH_REDIS=127.0.0.1:$port FAAS_BENCH_CALLGRIND=1 \
    go test -run '^$' -bench NoopScripts -benchtime "${n}x" ./store/ | grep -E '^Benchmark' | tr -s '\t ' ' '
kill "$vg"; wait "$vg" 2>/dev/null || true
set +o pipefail
incl() { callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null | grep -E '^ *[0-9,]+ \(' ; }
per() { awk -v n="$n" '{gsub(",","",$1); printf "%d", $1/n}'; }
# go test runs the benchmark with b.N=1 first: the last two dumps are b.N's.
step=0
for f in $(ls "$dir"/cg.out.* | sort -t. -k3 -n | tail -2); do
    step=$((step + 1))
    name=$([[ $step -eq 1 ]] && echo enqueue || echo complete+claim)
    all=$(incl "$f" | grep -m1 'processCommand' | per)
    scripts=$(incl "$f" | grep -m1 -E 'evalShaCommand|evalGenericCommand' | per)
    echo "== $name: $all instructions per task in all commands, $scripts in script calls"
    incl "$f" | grep -v '=>' | grep -E ':(luaRedisGenericCommand|scriptCall|luaCreateArray|luaReplyToRedisReply|luaArgsToRedisArgv|json_append_data|luaC_step|snprintf|luaB_tonumber|luaS_newlstr|lua_pcall|luaD_precall) ' \
        | awk -v n="$n" '{c=$1; gsub(",","",c); match($0, /:[A-Za-z_0-9]+ \[/); printf "   %8d  %s\n", c/n, substr($0, RSTART+1, RLENGTH-3)}' | sort -rn | head -12
done
