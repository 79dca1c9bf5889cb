#!/usr/bin/env bash
# A data link cut while the bootstrap stays up: two ranks in two network
# namespaces run 1 MiB all-reduces over libfabric tcp; then nftables in
# namespace B drops every TCP segment that is not the bootstrap's (accept
# rules first: "sport != P dport != P drop" also dropped port P here). Both
# ranks answer rank 0's liveness probe, so the verdict must come from their
# expired waits: each rank must fail within its deadline naming both ranks
# (waiting for each other, or one waiting for data the other already sent,
# when the cut fell between its last writes and their arrival).
#   cut_link.sh LOSSY_WORKER     (exit 77 = skipped: needs root, ip and nft)
set -u
case "${1:-}" in -h|--help|"") sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
worker=$1
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! command -v nft >/dev/null; then
  echo "skip: needs root, ip and nft"; exit 77
fi
tag=rc$$
a=${tag}a b=${tag}b
sub=$(( $$ % 200 + 20 ))
logs=$(mktemp -d)
cleanup() { ip netns del "$a" 2>/dev/null; ip netns del "$b" 2>/dev/null; rm -rf "$logs"; }
trap cleanup EXIT
ip netns add "$a" && ip netns add "$b" || { echo "skip: cannot create network namespaces"; exit 77; }
ip link add "${tag}x" type veth peer name "${tag}y" || { echo "skip: cannot create a veth pair"; exit 77; }
ip link set "${tag}x" netns "$a"
ip link set "${tag}y" netns "$b"
ip -n "$a" addr add "10.$sub.1.1/24" dev "${tag}x"
ip -n "$b" addr add "10.$sub.1.2/24" dev "${tag}y"
for ns in "$a" "$b"; do ip -n "$ns" link set lo up; done
ip -n "$a" link set "${tag}x" up
ip -n "$b" link set "${tag}y" up
port=$(( 20000 + $$ % 20000 ))
tmo=4000
pids=()
for r in 0 1; do
  ns=$a; [ $r = 1 ] && ns=$b
  ip netns exec "$ns" env RINGLET_RANK=$r RINGLET_SIZE=2 RINGLET_ADDR="10.$sub.1.1:$port" \
    RINGLET_TRANSPORT=ofi RINGLET_OFI_PROVIDER=tcp RINGLET_TIMEOUT_MS=$tmo \
    timeout 120 "$worker" --iters 1000000 --count 65536 >"$logs/$r.log" 2>&1 &
  pids+=($!)
done
sleep 3 # formed and running
for r in 0 1; do
  grep -q "create failed" "$logs/$r.log" && { echo "FAIL: rank $r could not form:"; cat "$logs/$r.log"; exit 1; }
done
ip netns exec "$b" nft -f - <<NFT || { echo "skip: nft rules refused"; kill "${pids[@]}" 2>/dev/null; exit 77; }
table inet rlcut {
  chain in { type filter hook input priority 0; tcp sport $port accept; tcp dport $port accept; meta l4proto tcp drop; }
  chain out { type filter hook output priority 0; tcp sport $port accept; tcp dport $port accept; meta l4proto tcp drop; }
}
NFT
t0=$(date +%s%N)
codes=""
for p in "${pids[@]}"; do wait "$p"; codes="$codes $?"; done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
fail=0
for r in 0 1; do
  line=$(grep "iterations, last" "$logs/$r.log")
  # both in one collective: they wait for each other; one a collective ahead: the other lost its data
  if ! grep -q "RL_ERR_TIMEOUT" <<<"$line" ||
     ! grep -qE "rank 0 and rank 1 wait for each other|is the link between rank 0 and rank 1 cut or lossy" <<<"$line"; then
    echo "FAIL: rank $r did not name the pair whose link was cut: ${line:-no result line}"
    sed 's/^/  /' "$logs/$r.log" | tail -5
    fail=1
  fi
done
# the deadline, then rank 0's probe (about 1 s) and the verdict
if [ $ms -gt $((tmo + 8000)) ]; then echo "FAIL: the ranks took $ms ms after the cut (deadline $tmo ms)"; fail=1; fi
[ $fail = 0 ] || exit 1
echo "ok: link cut with the bootstrap up: both ranks failed $ms ms after the cut (deadline $tmo ms), naming the pair"
grep -h "iterations, last" "$logs"/*.log | sed 's/^/  /' | cut -c1-300
