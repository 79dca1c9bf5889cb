#!/usr/bin/env bash
# Ranks in separate network namespaces that share one host name, over
# libfabric tcp: locality must come from the kernel's boot id and the network
# namespace, not from the host name (else tcp picks the loopback domain, which
# cannot reach the other namespace, and the first operation times out).
# Three ranks: 0 and 2 in namespace A, 1 in namespace B, joined by a veth
# pair. Then the same with RINGLET_HOST_ID forced equal on all ranks, which
# must fail (it is the old mistake, and shows that the test can fail).
#   netns_host.sh COLL_CHECK     (exit 77 = skipped: needs root and ip netns)
set -u
case "${1:-}" in -h|--help|"") sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
check=$1
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null; then echo "skip: needs root and ip"; exit 77; fi
tag=rl$$
a=${tag}a b=${tag}b
sub=$(( $$ % 200 + 20 ))
logs=$(mktemp -d)
cleanup() { ip netns del "$a" 2>/dev/null; ip netns del "$b" 2>/dev/null; rm -rf "$logs"; }
trap cleanup EXIT
ip netns add "$a" && ip netns add "$b" || { echo "skip: cannot create network namespaces"; exit 77; }
ip link add "${tag}x" type veth peer name "${tag}y" || { echo "skip: cannot create a veth pair"; exit 77; }
ip link set "${tag}x" netns "$a"
ip link set "${tag}y" netns "$b"
ip -n "$a" addr add "10.$sub.0.1/24" dev "${tag}x"
ip -n "$b" addr add "10.$sub.0.2/24" dev "${tag}y"
for ns in "$a" "$b"; do ip -n "$ns" link set lo up; done
ip -n "$a" link set "${tag}x" up
ip -n "$b" link set "${tag}y" up
port=$(( 20000 + $$ % 20000 ))

# run TIMEOUT_MS [extra env...]: the three ranks; prints each rank's exit code
run() {
  local tmo=$1; shift
  local pids=() r ns
  for r in 0 1 2; do
    ns=$a; [ $r = 1 ] && ns=$b
    ip netns exec "$ns" env RINGLET_RANK=$r RINGLET_SIZE=3 RINGLET_ADDR="10.$sub.0.1:$port" \
      RINGLET_TRANSPORT=ofi RINGLET_OFI_PROVIDER=tcp RINGLET_TIMEOUT_MS="$tmo" RINGLET_LOG_LEVEL=info "$@" \
      timeout 120 "$check" --quick >"$logs/$r.log" 2>&1 &
    pids+=($!)
  done
  codes=""
  for p in "${pids[@]}"; do wait "$p"; codes="$codes $?"; done
  port=$((port + 1))
}

echo "host name in both namespaces: $(ip netns exec "$a" hostname) / $(ip netns exec "$b" hostname)"
t0=$(date +%s%N)
run 20000
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
if [ "$codes" != " 0 0 0" ]; then
  echo "FAIL: 3 ranks in 2 namespaces (same host name) over tcp: exit codes$codes"
  for r in 0 1 2; do sed "s/^/  [$r] /" "$logs/$r.log" | tail -15; done
  exit 1
fi
echo "ok: 3 ranks in 2 namespaces over tcp passed coll_check --quick in $ms ms"
grep -h "communicator of" "$logs"/*.log | sed 's/^/  /'

run 3000 RINGLET_HOST_ID=same-box
if [ "$codes" = " 0 0 0" ]; then
  echo "FAIL: with RINGLET_HOST_ID forced equal the ranks should have been taken for one host and failed"
  exit 1
fi
echo "ok: RINGLET_HOST_ID=same-box on every rank is obeyed (ranks taken for one host fail:$codes)"
grep -h "rank [0-9]" "$logs"/*.log | grep -m2 -i "error" | sed 's/^/  /'

# A black-holed rendezvous: namespace A drops the SYNs to rank 0's port (no
# rank 0 needed). Rank 1's connect must give up by RINGLET_TIMEOUT_MS, saying so.
if command -v nft >/dev/null && ip netns exec "$a" nft add table inet rltest 2>/dev/null; then
  ip netns exec "$a" nft add chain inet rltest in '{ type filter hook input priority 0; }'
  ip netns exec "$a" nft add rule inet rltest in tcp dport "$port" drop
  t0=$(date +%s%N)
  ip netns exec "$b" env RINGLET_RANK=1 RINGLET_SIZE=2 RINGLET_ADDR="10.$sub.0.1:$port" RINGLET_TIMEOUT_MS=2000 \
    RINGLET_TRANSPORT=ofi RINGLET_OFI_PROVIDER=tcp timeout 60 "$check" --quick >"$logs/bh.log" 2>&1
  code=$?
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  if [ $code = 0 ] || [ $ms -gt 3000 ] || ! grep -q "no answer to the connection attempt" "$logs/bh.log"; then
    echo "FAIL: connecting to a black-holed rank 0 (SYNs dropped) with RINGLET_TIMEOUT_MS=2000: exit $code after $ms ms"
    sed 's/^/  /' "$logs/bh.log" | tail -5
    exit 1
  fi
  echo "ok: a black-holed rendezvous (nft drop) fails after $ms ms against a 2000 ms deadline:"
  grep -m1 "no answer" "$logs/bh.log" | sed 's/^/  /'
else
  echo "(no nft here: the black-holed rendezvous is covered by the unit test only)"
fi
exit 0
