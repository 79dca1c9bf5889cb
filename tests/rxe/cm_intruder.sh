#!/usr/bin/env bash
# rdmacm intruder (issue 13 item 1, verbs): a 2-rank group over verbs with
# RINGLET_IB_CM=rdmacm runs coll_check while cm_intruder sends forged
# connection requests (rank 0's, without the bootstrap secret) to rank 1's
# listener. The group must pass and no forged request may be accepted.
# Runs inside tools/rxe-vm --hosts 2 --env RINGLET_IB_CM=rdmacm (which picks
# the IPv4-mapped GIDs).
#   cm_intruder.sh RINGLET_RUN COLL_CHECK CM_INTRUDER
set -u
case "${1:-}" in -h|--help|"") sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
run=$1 coll=$2 intruder=$3
out=$(mktemp) iout=$(mktemp)
# Rank 1 serves connection requests only while it sets up its connections.
# To have the forged requests arrive then, rank 0 (which connects to it)
# is starved at first: niced on a CPU a busy loop holds, until the intruder
# is done. 16 QPs per peer make the set-up longer still; the forged
# requests claim the last QP.
taskset -c 1 sh -c 'while :; do :; done' &
hog=$!
"$run" -n 2 --timeout 500 --env RINGLET_TRANSPORT=verbs --env RINGLET_LOG_LEVEL=info --env RINGLET_IB_QPS_PER_PEER=16 \
  --env RINGLET_TIMEOUT_MS=120000 \
  -- sh -c 'if [ "$RINGLET_RANK" = 0 ]; then exec taskset -c 1 nice -n 19 "$0" --quick; else exec taskset -c 0 "$0" --quick; fi' \
  "$coll" >"$out" 2>&1 &
group=$!
line="" line0=""
for _ in $(seq 1 3000); do
  line=$(grep -m1 '^\[1\].*rdmacm listening on' "$out")
  line0=$(grep -m1 '^\[0\].*rdmacm listening on' "$out")
  [ -n "$line" ] && [ -n "$line0" ] && break
  sleep 0.02
done
src=$(sed -n 's/.*rdmacm listening on \([0-9.]*\) port.*/\1/p' <<<"$line0")
ip=$(sed -n 's/.*rdmacm listening on \([0-9.]*\) port \([0-9]*\).*/\1/p' <<<"$line")
port=$(sed -n 's/.*rdmacm listening on \([0-9.]*\) port \([0-9]*\).*/\2/p' <<<"$line")
irc=1
if [ -n "$ip" ] && [ -n "$port" ] && [ -n "$src" ]; then
  "$intruder" "$ip" "$port" "$src" 6 15 >"$iout" 2>&1
  irc=$?
else
  echo "cm_intruder.sh: rank 1 never logged its rdmacm listener"
fi
kill $hog
wait $group
grc=$?
grep -E "checks|rejected a connection|FAILED|RL_ERR" "$out" | head -20
sed 's/attempt [0-9]*: //' "$iout" | sort | uniq -c
echo "cm_intruder.sh: group exit $grc, intruder exit $irc, refusals logged by rank 1: $(grep -c 'wrong connection secret' "$out")"
rm -f "$out" "$iout"
[ $grc -eq 0 ] && [ $irc -eq 0 ]
