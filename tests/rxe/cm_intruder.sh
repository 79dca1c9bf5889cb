#!/usr/bin/env bash
# rdmacm intruder (issue 13 item 1, verbs): a 2-rank group over verbs with
# RINGLET_IB_CM=rdmacm runs coll_check while cm_intruder sends forged
# connection requests (rank 0's, without the bootstrap secret) to rank 1's
# listener. The group must pass and no forged request may be accepted.
# Runs inside tools/rxe-vm --hosts 2.
#   cm_intruder.sh RINGLET_RUN COLL_CHECK CM_INTRUDER
set -u
case "${1:-}" in -h|--help|"") sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
run=$1 coll=$2 intruder=$3
out=$(mktemp) iout=$(mktemp)
"$run" -n 2 --timeout 500 --env RINGLET_TRANSPORT=verbs --env RINGLET_IB_CM=rdmacm --env RINGLET_LOG_LEVEL=info \
  -- "$coll" --quick >"$out" 2>&1 &
group=$!
line=""
for _ in $(seq 1 2000); do
  line=$(grep -m1 '^\[1\].*rdmacm listening on' "$out")
  [ -n "$line" ] && break
  sleep 0.02
done
ip=$(sed -n 's/.*rdmacm listening on \([0-9.]*\) port \([0-9]*\).*/\1/p' <<<"$line")
port=$(sed -n 's/.*rdmacm listening on \([0-9.]*\) port \([0-9]*\).*/\2/p' <<<"$line")
irc=1
if [ -n "$ip" ] && [ -n "$port" ]; then
  "$intruder" "$ip" "$port" 10 >"$iout" 2>&1
  irc=$?
else
  echo "cm_intruder.sh: rank 1 never logged its rdmacm listener"
fi
wait $group
grc=$?
grep -E "checks|rejected a connection|FAILED|RL_ERR" "$out" | head -20
tail -1 "$iout"
echo "cm_intruder.sh: group exit $grc, intruder exit $irc, refusals logged by rank 1: $(grep -c 'wrong connection secret' "$out")"
rm -f "$out" "$iout"
[ $grc -eq 0 ] && [ $irc -eq 0 ]
