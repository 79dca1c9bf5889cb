#!/usr/bin/env bash
# tools/plot-bench: two real benchmark runs (--json) into one PNG of the asked
# size; bad input is refused with a message and a non-zero status.
#   plot_check.sh PLOT_BENCH RINGLET_RUN ALL_REDUCE_PERF ALL_GATHER_PERF
set -euo pipefail
plot=$1 run=$2 ar=$3 ag=$4
dir=$(mktemp -d /tmp/ringlet-plot.XXXXXX)
trap 'rm -rf "$dir"' EXIT
fail() { echo "plot_check: FAIL: $*" >&2; exit 1; }

"$run" -n 2 --only-rank 0 --timeout 120 -- "$ar" -b 4K -e 256K -f 4 -n 3 -w 1 --json "$dir/ar.json" >/dev/null
"$run" -n 2 --only-rank 0 --timeout 120 -- "$ag" -b 4K -e 256K -f 4 -n 3 -w 1 -d all --json "$dir/ag.json" >/dev/null
"$plot" -o "$dir/p.png" --size 900x400 -l "all-reduce run" "$dir/ar.json" "$dir/ag.json"
dims=$(/usr/bin/python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(); assert d[:8]==b"\x89PNG\r\n\x1a\n", "not a PNG"; print("%dx%d %d" % (struct.unpack(">II", d[16:24]) + (len(d),)))' "$dir/p.png")
echo "PNG: $dims"
[ "${dims% *}" = 900x400 ] || fail "size ${dims% *}"
[ "${dims#* }" -gt 10000 ] || fail "suspiciously small PNG"

grep -q '^usage: plot-bench' <<<"$("$plot" --help)" || fail "--help"
rc=0; "$plot" -o "$dir/x.png" >/dev/null 2>&1 || rc=$?; [ $rc = 2 ] || fail "no files: exit $rc"
echo '{"rows": []}' >"$dir/empty.json"
rc=0; err=$("$plot" -o "$dir/x.png" "$dir/empty.json" 2>&1) || rc=$?
[ $rc = 1 ] && grep -q 'no "rows"' <<<"$err" || fail "empty file: exit $rc: $err"
echo '{"rows": [{"size": 1}]}' >"$dir/bad.json"
rc=0; "$plot" -o "$dir/x.png" "$dir/bad.json" >/dev/null 2>&1 || rc=$?; [ $rc = 1 ] || fail "bad row: exit $rc"
[ ! -e "$dir/x.png" ] || fail "a PNG was written for bad input"
echo "plot_check: OK"
