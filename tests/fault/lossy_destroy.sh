#!/usr/bin/env bash
# Destroy after a failure on a lossy link (issue 13 item 2): N ranks in N
# network namespaces joined by a bridge, each link rate-limited (tbf: the
# queue adds delay) and dropping a share of incoming TCP segments at random
# (nftables numgen). Ranks run 1 MiB all-reduces over libfabric tcp, each
# waited for with a short rl_wait deadline (--wait-ms), until one fails;
# then the request is freed and the communicator destroyed. Every
# rank must exit 0 (destroy returned); a rank killed by a signal fails.
#   lossy_destroy.sh WORKER [--ranks N] [--trials N] [--loss PERMILLE] [--rate RATE] [--timeout-ms MS] [--wait-ms MS] [--iters N]
# Needs root, ip (iproute2), nft (tools/install-deps --netns) and unshare;
# exits 77 (skipped) without them. LOSSY_KEEP=PREFIX keeps each trial's output.
set -u
case "${1:-}" in -h|--help|"") sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
worker=$1; shift
ranks=4 trials=4 loss=50 rate=200mbit tmo=20000 wait=300 iters=200
while [ $# -gt 0 ]; do
  case "$1" in
    --ranks) ranks=$2; shift 2 ;;
    --trials) trials=$2; shift 2 ;;
    --loss) loss=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --timeout-ms) tmo=$2; shift 2 ;;
    --iters) iters=$2; shift 2 ;;
    --wait-ms) wait=$2; shift 2 ;;
    *) echo "lossy_destroy.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" != 0 ] || ! command -v nft >/dev/null || ! command -v ip >/dev/null || ! command -v unshare >/dev/null; then
  echo "lossy_destroy.sh: needs root, ip, nft and unshare: skipped" >&2
  exit 77
fi
tag=rl$$
hub=${tag}h
cleanup() {
  for i in $(seq 0 $((ranks - 1))); do ip netns del ${tag}n$i 2>/dev/null; done
  ip netns del $hub 2>/dev/null
}
trap cleanup EXIT
ip netns add $hub || exit 1
ip -n $hub link add br0 type bridge && ip -n $hub link set br0 up && ip -n $hub link set lo up
for i in $(seq 0 $((ranks - 1))); do
  ns=${tag}n$i
  ip netns add $ns
  ip -n $ns link set lo up
  ip link add v$tag$i netns $ns type veth peer name p$i netns $hub
  ip -n $hub link set p$i master br0 up
  ip -n $ns link set v$tag$i name eth0
  ip -n $ns addr add 10.77.0.$((i + 1))/24 dev eth0
  ip -n $ns link set eth0 up
  ip netns exec $ns tc qdisc add dev eth0 root tbf rate $rate burst 64kb latency 20ms
  ip netns exec $ns nft -f - <<NFT || exit 1
table inet lossy {
  chain in {
    type filter hook input priority 0; policy accept;
    meta l4proto tcp numgen random mod 1000 < $loss drop
  }
}
NFT
done
port=29500
fails=0
for t in $(seq 1 $trials); do
  pids=()
  out=$(mktemp)
  for i in $(seq 0 $((ranks - 1))); do
    ip netns exec ${tag}n$i unshare --uts sh -c "hostname ${tag}-$i; exec env RINGLET_RANK=$i RINGLET_SIZE=$ranks \
      RINGLET_ADDR=10.77.0.1:$port RINGLET_TRANSPORT=ofi RINGLET_OFI_PROVIDER=tcp RINGLET_TIMEOUT_MS=$tmo \
      RINGLET_AUTH_KEY=lossy FI_TCP_IFACE=eth0 $worker --iters $iters --wait-ms $wait" >>"$out" 2>&1 &
    pids+=($!)
  done
  for i in $(seq 0 $((ranks - 1))); do
    wait ${pids[$i]}; rc=$?
    if [ $rc -ne 0 ]; then
      echo "trial $t: rank $i exited with status $rc$([ $rc -gt 128 ] && echo " (signal $((rc - 128)))")"
      fails=$((fails + 1))
    fi
  done
  for i in $(seq 0 $((ranks - 1))); do
    # a rank whose destroy never returned crashed (a signal handler that
    # calls exit() would hide the signal from the status)
    if ! grep -q "^rank $i: destroy returned" "$out" && ! grep -q "create failed" "$out"; then
      echo "trial $t: rank $i did not return from rl_comm_destroy"
      fails=$((fails + 1))
    fi
  done
  grep -h "iterations\|destroy returned\|create failed\|ringlet error" "$out" | sed "s/^/trial $t: /"
  [ -n "${LOSSY_KEEP:-}" ] && cp "$out" "$LOSSY_KEEP.$t"; rm -f "$out"
  port=$((port + 1))
done
echo "lossy_destroy: $trials trials x $ranks ranks, loss ${loss}/1000, rate $rate: $fails rank(s) failed"
[ $fails -eq 0 ]
