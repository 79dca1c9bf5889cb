#!/usr/bin/env bash
# ringlet-info smoke test: every RINGLET_* variable of lib/core/config.c's
# table is listed with the value set in the environment and its default, the
# libfabric providers include tcp, and the device section either lists ports
# with GIDs or says there are no RDMA devices.
#   info_check.sh RINGLET_INFO CONFIG_C [--expect-rxe N]   (N rxe devices)
set -euo pipefail
info=$1 config_c=$2
want_rxe=${4:-0}
fail() { echo "info_check: FAIL: $*" >&2; exit 1; }

out=$(RINGLET_CHUNK_BYTES=1M RINGLET_NCHANNELS=3 "$info")
echo "$out"
grep -q '^usage: ringlet-info' <<<"$("$info" --help)" || fail "--help"
rc=0; "$info" --bogus >/dev/null 2>&1 || rc=$?
[ $rc = 2 ] || fail "a bad option exits $rc, not 2"

names=$(grep -oE '(STR_|INT_)\("[A-Z0-9_]+"|^ *\{"[A-Z0-9_]+"' "$config_c" | grep -oE '[A-Z0-9_]{2,}' | grep -v -e '^STR_$' -e '^INT_$')
[ -n "$names" ] || fail "no variables found in $config_c"
for n in $names; do
  grep -qE "^RINGLET_$n +" <<<"$out" || fail "RINGLET_$n missing from the listing"
done
grep -qE '^RINGLET_CHUNK_BYTES +1M +512K +Bytes' <<<"$out" || fail "RINGLET_CHUNK_BYTES value/default/help"
grep -qE '^RINGLET_NCHANNELS +3 +1 ' <<<"$out" || fail "RINGLET_NCHANNELS value/default"
grep -qE '^RINGLET_TRANSPORT +\(unset\) +auto ' <<<"$out" || fail "an unset variable"
grep -qE '^  tcp(;ofi_rxm)? +rdm +yes' <<<"$out" || fail "libfabric tcp provider not listed"

# the algorithm table: the defaults, an override, the model's choices, a bad table
algos=$("$info" --algos --ranks 8 --transport ofi:shm --sizes 8,64K,64M)
grep -q '^all_reduce:65536-:hier(with shm inside hosts),0-:direct,0-65536:rd,0-16777216:rhd, then ring$' <<<"$algos" || fail "default all-reduce table: $algos"
grep -qE '^  rd +[0-9.]+\* +[0-9.]+\* +- *$' <<<"$algos" || fail "rd chosen up to 64K, unusable above: $algos"
over=$(RINGLET_ALGOS='broadcast:0-4K:tree' "$info" --algos --ranks 8 --sizes 8,1M)
grep -q '^broadcast:0-4096:tree, then chain$' <<<"$over" || fail "RINGLET_ALGOS not shown: $over"
grep -qE '^  tree +[0-9.]+\* +[0-9.]+ *$' <<<"$over" || fail "tree chosen at 8 B only: $over"
rc=0; RINGLET_ALGOS='broadcast:0-:nosuch' "$info" --algos >/dev/null 2>&1 || rc=$?
[ $rc = 1 ] || fail "a bad RINGLET_ALGOS exits $rc, not 1"

if [ "$want_rxe" -gt 0 ]; then
  for ((i = 0; i < want_rxe; i++)); do
    grep -q "^  rxe$i: 1 port" <<<"$out" || fail "rxe$i not listed"
  done
  [ "$(grep -cE 'port 1: ACTIVE, link layer Ethernet, active MTU [0-9]+' <<<"$out")" = "$want_rxe" ] ||
    fail "ports not ACTIVE/Ethernet"
  grep -qE 'gid 1 +::ffff:[0-9.]+ +RoCE v2 +veth0' <<<"$out" || fail "no RoCE v2 IPv4 GID on veth0"
else
  grep -qE 'no RDMA devices on this host|port [0-9]+: ' <<<"$out" || fail "device section"
fi
echo "info_check: OK"
