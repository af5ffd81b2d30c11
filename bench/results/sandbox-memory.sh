#!/bin/bash
# measure.sh BIN PORT LABEL : PSS of each idle sandbox after start and after a burst
BIN=$1; PORT=$2; LABEL=$3
$BIN up --addr 127.0.0.1:$PORT -w 8 >/tmp/pss/up-$LABEL.log 2>&1 &
UP=$!
until grep -q "dispatcher ready" /tmp/pss/up-$LABEL.log; do sleep 0.2; done
sleep 3
kids() { pgrep -P $UP; }
snap() {
  local tag=$1; local tot=0; local line=""
  for p in $(kids); do
    [ "$(tr '\0' ' ' </proc/$p/cmdline | awk '{print $2}')" = sandbox ] || continue
    k=$(awk '/^Pss:/{print $2}' /proc/$p/smaps_rollup); a=$(awk '/^Pss_Anon:/{print $2}' /proc/$p/smaps_rollup)
    line="$line $(awk -v k=$k 'BEGIN{printf "%.1f", k/1024}')"
    cp /proc/$p/smaps /tmp/pss/smaps-$LABEL-$tag-$p
  done
  echo "$LABEL $tag PSS MiB per sandbox:$line"
}
snap start
$BIN bench --url http://127.0.0.1:$PORT -n 200 -c 8 --warmup 10 >/tmp/pss/bench-$LABEL.log 2>&1
sleep 3
snap burst
kill -INT $UP; wait $UP
