#!/usr/bin/env bash
# ringlet-tune end to end: under ringlet-run on 3 tcp ranks, a short budget
# writes a tuning file with the transport-wide line and each algorithm's own
# lines in size bands; a communicator (ringlet-info) loads it; bad options
# and a broken file are refused with a clear message.
#   tune_check.sh RINGLET_RUN RINGLET_TUNE RINGLET_INFO
set -euo pipefail
run=$1 tune=$2 info=$3
fail() { echo "tune_check: FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

grep -q '^usage: ringlet-tune' <<<"$("$tune" --help)" || fail "--help"
rc=0; "$tune" >/dev/null 2>&1 || rc=$?
[ $rc = 2 ] || fail "no -o exits $rc, not 2"
rc=0; "$tune" -o "$tmp/x" --seconds 61 >/dev/null 2>&1 || rc=$?
[ $rc = 2 ] || fail "--seconds 61 exits $rc, not 2"

start=$(date +%s)
"$run" -n 3 --only-rank 0 --env RINGLET_TRANSPORT=ofi --env RINGLET_OFI_PROVIDER=tcp -- \
  "$tune" -o "$tmp/tune.txt" --seconds 15 -v >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "ringlet-tune failed"; }
took=$(( $(date +%s) - start ))
cat "$tmp/out"
[ $took -le 60 ] || fail "took $took s with --seconds 15"
f=$tmp/tune.txt
[ -s "$f" ] || fail "no tuning file"
# the transport-wide line and the ring's bands, every number a non-negative decimal
num='[0-9]+(\.[0-9]+)?'
grep -qE "^ofi:tcp 3 $num $num $num $num$" "$f" || fail "no transport-wide line: $(cat "$f")"
grep -qE "^ofi:tcp 3 $num $num $num $num ring$" "$f" || fail "no ring line: $(cat "$f")"
# a band is written exactly when the budget left it two calibration points
# (on a loaded machine the largest sizes may be skipped on every rank alike)
pts() { awk -v lo="$1" -v hi="$2" '/calibration ring / { b = $(NF - 3) + 0; if (b >= lo && b <= hi) n++ } END { print n + 0 }' "$tmp/out"; }
band() { grep -qE "^ofi:tcp 3 $num $num $num $num ring $1$" "$f"; }
n1=$(pts 1048576 4194304) n2=$(pts 16777216 1e18)
[ "$n1" -ge 1 ] || fail "no ring calibration point from 1 MiB: $(cat "$tmp/out")"
if [ "$n1" -ge 2 ]; then band 1048576 || fail "$n1 points but no ring band from 1 MiB: $(cat "$f")"; else ! band 1048576 || fail "a 1 MiB band from $n1 point"; fi
if [ "$n2" -ge 2 ]; then band 16777216 || fail "$n2 points but no ring band from 16 MiB: $(cat "$f")"; fi
echo "tune_check: ring calibrated at $n1 sizes in 1-4 MiB, $n2 from 16 MiB"

out=$(RINGLET_TUNE_FILE=$f "$info" --algos --ranks 3 --transport ofi:tcp --sizes 8,1M,16M)
grep -qE 'cost model \(tuning file: ofi:tcp at 3 ranks, [0-9]+ algorithms calibrated alone \([0-9]+ size bands\)\)' <<<"$out" ||
  fail "ringlet-info does not show the file's model: $out"

# a second run for another group size keeps the first one's lines
"$run" -n 2 --only-rank 0 --env RINGLET_TRANSPORT=ofi --env RINGLET_OFI_PROVIDER=tcp -- \
  "$tune" -o "$f" --seconds 4 --check --check-max 32K --check-rounds 2 >"$tmp/out2" 2>&1 ||
  { cat "$tmp/out2"; fail "second ringlet-tune failed"; }
cat "$tmp/out2"
# the check: a row per (size, algorithm) from 8 B to 32 KiB, the choice per size, the summary
grep -qE '^(\[0\] )? +8 +rd +[0-9.]+ +[0-9.]+ +-?[0-9.]+%$' "$tmp/out2" || fail "no check row for rd at 8 B"
grep -qE '^(\[0\] )? +32768 +ring +[0-9.]+ +[0-9.]+ +-?[0-9.]+%$' "$tmp/out2" || fail "no check row for ring at 32 KiB"
grep -qE '^(\[0\] )?model check over 2 ranks on ofi:tcp.*median absolute error [0-9.]+% over [0-9]+ points; .* at most [0-9.]+% slower .*\(7 sizes\)$' "$tmp/out2" ||
  fail "no check summary over 7 sizes"
# the measured winners as a selection table that a communicator accepts
tab=$(sed -nE 's/^(\[0\] )?the measured winners as a table: RINGLET_ALGOS="(all_reduce:0-[^"]*)"$/\2/p' "$tmp/out2")
[ -n "$tab" ] || fail "no table of the measured winners"
grep -qE '^all_reduce:0-([0-9]+:[a-z]+,[0-9]+-)*:[a-z]+$' <<<"$tab" || fail "malformed winners table: $tab"
out=$(RINGLET_ALGOS=$tab "$info" --algos --ranks 2 --transport ofi:tcp --sizes 8,32K) ||
  fail "ringlet-info refuses the winners table $tab: $out"
grep -qF "$tab, then" <<<"$out" || fail "ringlet-info does not show the winners table $tab: $out"
rc=0; "$tune" -o "$tmp/x" --check --check-rounds 10 >/dev/null 2>&1 || rc=$?
[ $rc = 2 ] || fail "--check-rounds 10 exits $rc, not 2"
grep -qE "^ofi:tcp 3 .* ring$" "$f" || fail "the 3-rank lines were lost: $(cat "$f")"
grep -qE "^ofi:tcp 2 $num $num $num $num$" "$f" || fail "no 2-rank line: $(cat "$f")"

echo "ofi:tcp 3 1 0.001 0.001 1 ring 1M" >"$tmp/bad.txt"
rc=0; err=$(RINGLET_TUNE_FILE=$tmp/bad.txt "$info" --algos --ranks 3 --transport ofi:tcp 2>&1) || rc=$?
[ $rc != 0 ] || fail "a broken tuning file was accepted"
grep -q "bad.txt line 1" <<<"$err" || fail "the error does not name the file and line: $err"
echo "tune_check: OK ($took s)"
