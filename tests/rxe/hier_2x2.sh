#!/usr/bin/env bash
# Two emulated hosts x two ranks over SoftRoCE (issue 11): rank r claims host
# r / 2 (RINGLET_HOST_ID) and keeps its own rxe device, so each communicator
# reaches its host's other rank through ringlet's shm and the other host's
# ranks through verbs. The four hierarchical collectives are forced and
# coll_check checks every element; every rank must have written through
# both transports (the traffic line each rank logs at destroy).
# Runs inside tools/rxe-vm --hosts 4.
#   hier_2x2.sh RINGLET_RUN COLL_CHECK
set -u
case "${1:-}" in -h|--help|"") sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
run=$1 coll=$2
out=$("$run" -n 4 --timeout 550 --env RINGLET_TRANSPORT=verbs --env RINGLET_LOG_LEVEL=info \
  --env 'RINGLET_ALGOS=all_reduce:0-:hier;all_gather:0-:hier;reduce_scatter:0-:hier;broadcast:0-:hier' -- \
  sh -c 'RINGLET_HOST_ID=host$((RINGLET_RANK / 2)) exec "$0" --quick --large 300000' "$coll" 2>&1)
rc=$?
fail() { echo "hier_2x2: FAIL: $*"; grep -vE "^\[[0-9]\] *$" <<<"$out" | tail -20; exit 1; }
[ $rc = 0 ] || fail "exit $rc"
[ "$(grep -c 'all checks passed (4 ranks' <<<"$out")" = 4 ] || fail "not every rank passed coll_check"
for r in 0 1 2 3; do
  line=$(grep -E "rank $r traffic: " <<<"$out") || fail "rank $r logged no traffic line"
  grep -qE "verbs [1-9][0-9]* writes [1-9][0-9]* B" <<<"$line" || fail "rank $r wrote nothing through verbs: $line"
  grep -qE "shm [1-9][0-9]* writes [1-9][0-9]* B" <<<"$line" || fail "rank $r wrote nothing through shm: $line"
done
grep -q " + shm:" <<<"$out" || fail "no communicator with two transports"
echo "hier_2x2: OK"
grep -E "traffic: " <<<"$out" | sed 's/.*ringlet info [^ ]* /  /'
