#!/usr/bin/env bash
# ringlet-topo, ringlet-sim and RINGLET_TOPO_FILE end to end: every generator
# writes a fabric the planner reads, the plan beats rank order where the
# fabric is oversubscribed, the simulator prints nccl-tests rows and JSON
# that tools/plot-bench draws, ringlet-info --topo prints the same plan, and
# 4 real ranks take their ring order from the file (coll_check passes; a rank
# with another file is refused by the hash check).
#   topo_check.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
topo=$build/tools/ringlet-topo sim=$build/tools/ringlet-sim info=$build/tools/ringlet-info
run=$build/tools/ringlet-run coll=$build/tests/mp/coll_check
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "topo_check: FAIL: $*" >&2; exit 1; }

for t in "$topo" "$topo gen" "$topo plan" "$sim" "$info"; do
  $t --help | grep -q '^usage:' || fail "$t --help"
done
rc=0; $topo gen fat-tree --bogus 1 -o "$tmp/x" 2>/dev/null || rc=$?; [ $rc = 2 ] || fail "bad option exits $rc"
rc=0; $topo gen fat-tree --tiers 4 -o "$tmp/x" 2>/dev/null || rc=$?; [ $rc != 0 ] || fail "--tiers 4 accepted"

$topo gen fat-tree --tiers 2 --oversub 3 --ranks 64 --shuffle 7 -o "$tmp/ft.json" >/dev/null
$topo gen fat-tree --tiers 3 --oversub 2 --ranks 512 -o "$tmp/ft3.json" >/dev/null
$topo gen rail --rails 4 --hosts-per-leaf 4 --ranks 64 -o "$tmp/rail.json" >/dev/null
$topo gen torus --dims 6x6 --ranks 36 -o "$tmp/torus.json" >/dev/null
$topo gen dragonfly --routers 4 --hosts-per-router 2 --ranks 64 -o "$tmp/df.json" >/dev/null
for f in ft ft3 rail torus df; do
  out=$($topo plan "$tmp/$f.json" --json "$tmp/$f.plan.json")
  grep -qE '^planned +[0-9.e-]+' <<<"$out" || fail "$f: no planned row"
  /usr/bin/python3 - "$tmp/$f.plan.json" <<'PY' || fail "$f: plan JSON"
import json, sys
d = json.load(open(sys.argv[1]))
l = d["max_load_per_gbps"]
assert l["planned"] <= l["rank_order"] * (1 + 1e-9), l
assert l["planned"] >= l["bound"] * (1 - 1e-9), l
for r in d["rings"]:
    assert sorted(r) == list(range(d["nranks"])), "not a permutation"
PY
done
grep -q '"planned": 0.0025,' "$tmp/ft.plan.json" || fail "fat tree: planned load"
grep -q '"rank_order": 0.01,' "$tmp/ft.plan.json" || fail "fat tree: rank-order load"

printf 'SwitchName=s0 Nodes=n[0-3]\nSwitchName=s1 Nodes=n[4-7]\nSwitchName=top Switches=s[0-1]\n' >"$tmp/topology.conf"
$topo import slurm "$tmp/topology.conf" --gbps 100 -o "$tmp/slurm.json" >/dev/null
$topo plan "$tmp/slurm.json" | grep -q '8 ranks on 8 hosts, 3 switches' || fail "slurm import"
printf 'SwitchName=s0 Nodes=n[0-3\n' >"$tmp/bad.conf"
e=$($topo import slurm "$tmp/bad.conf" -o "$tmp/x" 2>&1) && fail "bad topology.conf accepted"
grep -q 'bad.conf:1: Nodes=' <<<"$e" || fail "slurm error names file:line: $e"
printf '{"ringlet_fabric": 1,\n "hosts": [}\n' >"$tmp/bad.json"
e=$($topo plan "$tmp/bad.json" 2>&1) && fail "bad JSON accepted"
grep -q 'bad.json:2: ' <<<"$e" || fail "JSON error names file:line: $e"

out=$($sim "$tmp/ft.json" --algo ring -b 1M -e 1G -f 32 --json "$tmp/ring.json")
[ "$(grep -cE '^ +[0-9]+ +[0-9]+ +float +sum ' <<<"$out")" = 3 ] || fail "sim rows: $out"
$sim "$tmp/ft.json" --algo planned -b 1M -e 1G -f 32 --json "$tmp/planned.json" >/dev/null
for a in tree rhd hier; do $sim "$tmp/ft3.json" --algo $a -b 1M -e 1M >/dev/null || fail "sim --algo $a"; done
$sim "$tmp/ft.json" --coll all_gather -b 1M -e 1M >/dev/null || fail "sim all_gather"
/usr/bin/python3 - "$tmp/ring.json" "$tmp/planned.json" <<'PY' || fail "planned not faster in the simulator"
import json, sys
a, b = (json.load(open(p))["rows"][-1]["oop"]["busbw"] for p in sys.argv[1:])
assert b > 2.5 * a, (a, b)
PY
if command -v gnuplot >/dev/null; then
  "$src/tools/plot-bench" -o "$tmp/p.png" "$tmp/ring.json" "$tmp/planned.json" >/dev/null || fail "plot-bench"
  [ -s "$tmp/p.png" ] || fail "no PNG"
  "$src/tools/sim-scaling" --build "$build" --min 64 --max 128 -o "$tmp/s.png" >/dev/null || fail "sim-scaling"
  [ -s "$tmp/s.png" ] && grep -q '"hier"' "$tmp/s.png.json" || fail "sim-scaling output"
fi
$info --topo "$tmp/ft.json" | grep -q '^# plan: switch order' || fail "ringlet-info --topo"

# RINGLET_TOPO_FILE: 4 ranks, the hosts of an oversubscribed 2-leaf fabric in a shuffled order
$topo gen fat-tree --tiers 2 --radix 4 --oversub 1 --ranks 4 --shuffle 5 -o "$tmp/four.json" >/dev/null
want=$($topo plan "$tmp/four.json" --order)
[ "$want" != "0,1,2,3" ] || fail "test fabric's plan is rank order: pick another --shuffle"
log=$(RINGLET_LOG_LEVEL=info RINGLET_TOPO_FILE="$tmp/four.json" timeout 120 "$run" -n 4 -- "$coll" --quick 2>&1) ||
  fail "coll_check with RINGLET_TOPO_FILE: $log"
grep -q "ring orders from RINGLET_TOPO_FILE $tmp/four.json" <<<"$log" || fail "no plan in the log: $log"
grep -q "ring $want" <<<"$log" || grep -q "$want" <<<"$log" || fail "ring order $want not used: $log"
# one rank with another fabric: its plan's hash differs, creation must fail naming the disagreement
$topo gen fat-tree --tiers 2 --radix 4 --oversub 1 --ranks 4 --shuffle 9 -o "$tmp/other.json" >/dev/null
[ "$($topo plan "$tmp/other.json" --order)" != "$want" ] || fail "other fabric plans the same ring"
cat >"$tmp/wrap.sh" <<EOS
#!/bin/sh
if [ "\$RINGLET_RANK" = 3 ]; then export RINGLET_TOPO_FILE=$tmp/other.json; else export RINGLET_TOPO_FILE=$tmp/four.json; fi
exec "$coll" --quick
EOS
chmod +x "$tmp/wrap.sh"
rc=0; log=$(RINGLET_TIMEOUT_MS=20000 timeout 120 "$run" -n 4 -- "$tmp/wrap.sh" 2>&1) || rc=$?
[ $rc != 0 ] || fail "ranks with different fabric files were accepted"
grep -q "RINGLET_TOPO_FILE's plan" <<<"$log" || fail "mismatch not named: $log"
# a rail fabric: one planned ring per rail, each its own channel (3 hosts x 2 rails, shuffled)
$topo gen rail --rails 2 --hosts-per-leaf 4 --ranks 6 --shuffle 7 -o "$tmp/rail6.json" >/dev/null
rings=$($topo plan "$tmp/rail6.json" --rings 2 --order)
[ "$(wc -l <<<"$rings")" = 2 ] || fail "rail fabric did not plan 2 rings: $rings"
r0=$(sed -n 1p <<<"$rings") r1=$(sed -n 2p <<<"$rings")
[ "$r0" != "$r1" ] || fail "both planned rings alike: $rings"
# every collective on the rings and chains (not the trees and eager paths), each channel on its own ring
log=$(RINGLET_LOG_LEVEL=info RINGLET_TOPO_FILE="$tmp/rail6.json" RINGLET_ALGOS="all_reduce:0-:ring;broadcast:0-:chain;reduce:0-:chain;all_gather:0-:ring;barrier:0-:ring" \
  timeout 300 "$run" -n 6 -- "$coll" 2>&1) ||
  fail "coll_check on two planned rings: $log"
grep -q "2 rings;.*; 2 channels" <<<"$log" || fail "not one channel per planned ring: $log"
grep -q "rings $r0 | $r1" <<<"$log" || fail "channels do not follow the planned rings $r0 / $r1: $log"
log=$(RINGLET_LOG_LEVEL=info RINGLET_TOPO_FILE="$tmp/rail6.json" RINGLET_TOPO_RINGS=1 timeout 120 "$run" -n 6 -- "$coll" --quick 2>&1) ||
  fail "coll_check on one planned ring: $log"
grep -q " 1 ring;.*; 1 channels" <<<"$log" || fail "RINGLET_TOPO_RINGS=1 not obeyed: $log"
# placement from where the ranks run: rank r claims the fabric host named in
# hosts[r] (RINGLET_HOST_ID), across the leaves unlike the file's placement;
# the ring must be the plan of that placement, written out as a file
hosts=(h0 h2 h1 h3)
/usr/bin/python3 - "$tmp/four.json" "$tmp/placed.json" "${hosts[@]}" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))
f["placement"] = [[h, "nic0"] for h in sys.argv[3:]]
json.dump(f, open(sys.argv[2], "w"))
PY
placed=$($topo plan "$tmp/placed.json" --order)
[ "$placed" != "$want" ] || fail "the test placement plans the file's ring: pick other hosts"
cat >"$tmp/where.sh" <<EOS
#!/bin/bash
h=(${hosts[*]})
export RINGLET_HOST_ID=\${h[\$RINGLET_RANK]}
exec "$coll" --quick
EOS
chmod +x "$tmp/where.sh"
for mode in auto hosts; do
  log=$(RINGLET_LOG_LEVEL=info RINGLET_TOPO_FILE="$tmp/four.json" RINGLET_TOPO_PLACE=$mode \
        RINGLET_TRANSPORT=ofi RINGLET_OFI_PROVIDER=tcp timeout 120 "$run" -n 4 -- "$tmp/where.sh" 2>&1) ||
    fail "coll_check placed by host ($mode): $log"
  grep -q "ranks placed where the ranks run" <<<"$log" || fail "$mode: not placed by host: $log"
  grep -q "ring $placed " <<<"$log" || fail "$mode: ring is not the plan of the runtime placement ($placed): $log"
done
log=$(RINGLET_LOG_LEVEL=info RINGLET_TOPO_FILE="$tmp/four.json" RINGLET_TOPO_PLACE=file \
      RINGLET_TRANSPORT=ofi RINGLET_OFI_PROVIDER=tcp timeout 120 "$run" -n 4 -- "$tmp/where.sh" 2>&1) ||
  fail "coll_check placed by the file: $log"
grep -q "ring $want " <<<"$log" || fail "RINGLET_TOPO_PLACE=file: ring is not the file's plan ($want): $log"
# a host the fabric does not know: hosts refuses it naming host and rank
sed -i 's/^h=(.*/h=(h0 h2 nowhere h3)/' "$tmp/where.sh"
rc=0; log=$(RINGLET_TOPO_FILE="$tmp/four.json" RINGLET_TOPO_PLACE=hosts RINGLET_TIMEOUT_MS=20000 \
            RINGLET_TRANSPORT=ofi RINGLET_OFI_PROVIDER=tcp timeout 120 "$run" -n 4 -- "$tmp/where.sh" 2>&1) || rc=$?
[ $rc != 0 ] || fail "a rank on an unknown host was placed"
grep -q 'has no host named "nowhere" (rank 2 runs there)' <<<"$log" || fail "unknown host not named: $log"
# the double binary tree follows the first ring's order: on a shuffled
# oversubscribed fat tree the planned order's trees load the busiest link
# less (ringlet-topo plan), the simulator's ptree beats tree, and 5 real
# ranks with dbt forced build their trees over the planned order
$topo gen fat-tree --tiers 2 --oversub 2 --ranks 64 --shuffle 3 -o "$tmp/ft64s.json" >/dev/null
plan=$($topo plan "$tmp/ft64s.json")
awk '$1 == "tree-rank" {r = $2} $1 == "tree-planned" {p = $2} END {exit !(r > 0 && p > 0 && r > 1.5 * p)}' <<<"$plan" ||
  fail "planned trees do not load less than rank order's: $plan"
bt=$($sim "$tmp/ft64s.json" --algo tree -b 256M -e 256M | awk '$1 ~ /^[0-9]/ {print $7}')
bp=$($sim "$tmp/ft64s.json" --algo ptree -b 256M -e 256M | awk '$1 ~ /^[0-9]/ {print $7}')
awk -v t="$bt" -v p="$bp" 'BEGIN {exit !(t > 0 && p > 1.5 * t)}' || fail "sim: ptree $bp GB/s not above tree $bt"
$topo gen fat-tree --tiers 2 --radix 4 --oversub 1 --ranks 5 --shuffle 5 -o "$tmp/five.json" >/dev/null
order5=$($topo plan "$tmp/five.json" --order | head -1)
[ "$order5" != "0,1,2,3,4" ] || fail "test fabric's plan is rank order: pick another --shuffle"
log=$(RINGLET_LOG_LEVEL=info RINGLET_TOPO_FILE="$tmp/five.json" RINGLET_ALGOS=all_reduce:0-:dbt \
      RINGLET_TRANSPORT=ofi RINGLET_OFI_PROVIDER=tcp timeout 200 "$run" -n 5 -- "$coll" --quick 2>&1) ||
  fail "coll_check with dbt over the planned order: $log"
# expected parents: the in-order tree over positions (v = pos + 1, mirror v = n - pos)
printf '%s\n' "$log" >"$tmp/dbt.log"
python3 - "$order5" "$tmp/dbt.log" <<'PY' || fail "dbt trees do not follow the planned order $order5: $log"
import re, sys
order = [int(x) for x in sys.argv[1].split(",")]
n = len(order)
def root(n):
    t = 1
    while 2 * t <= n:
        t *= 2
    return t
def parent(v):
    if v == root(n):
        return 0
    p = v
    while True:
        b = p & -p
        p = p - b if p & (2 * b) else p + b
        if p <= n:
            return p
want = {}
for pos, r in enumerate(order):
    got = []
    for t in (0, 1):
        v = pos + 1 if t == 0 else n - pos
        pv = parent(v)
        got.append(-1 if pv == 0 else order[pv - 1 if t == 0 else n - pv])
    want[r] = got
seen = {}
for line in open(sys.argv[2]):
    m = re.match(r"\[(\d+)\].*dbt tree 0: (root|parent (\d+))[^;]*; dbt tree 1: (root|parent (\d+))", line)
    if m:
        r = int(m.group(1))
        seen[r] = [-1 if m.group(2) == "root" else int(m.group(3)), -1 if m.group(4) == "root" else int(m.group(5))]
assert len(seen) == n, seen
for r in range(n):
    assert seen[r] == want[r], (r, seen[r], want[r])
PY
echo "topo_check: OK"
