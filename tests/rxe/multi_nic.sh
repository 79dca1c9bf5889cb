#!/usr/bin/env bash
# Several NICs per rank (issue 12): every rank gets two rxe devices,
# RINGLET_IB_HCA=rxe(2r):1,rxe(2r+1):1, and (RINGLET_NCHANNELS unset) one
# ring channel per device. coll_check checks every result element by
# element; the devices' own counters (rxe hw_counters: packets; their veth:
# bytes) read before and after must show that each device of every rank
# carried a substantial share of that rank's traffic, with QP data through
# the bootstrap and with rdmacm (a listener per device). First, bad lists
# (unknown device, port out of range, a device twice, an empty entry) must
# fail with RL_ERR_CONFIG naming the entry, and a group where one rank has
# a single device must pass coll_check.
# Runs inside tools/rxe-vm --hosts 2*N (rxe0..rxe(2N-1), one veth each, all
# on one bridge).
#   multi_nic.sh [--min-share PCT] RINGLET_RUN NRANKS -- CMD [ARGS...]
#       check: CMD (e.g. coll_check --quick --large B) on NRANKS ranks;
#       fails unless every device has at least PCT% (default 30) of its
#       rank's bytes
#   multi_nic.sh --bench RINGLET_RUN NRANKS ALL_REDUCE_PERF SIZE REPS
#       busbw of all_reduce_perf at SIZE bytes, one device per rank against
#       two (both with 2 channels), interleaved REPS times; medians and the
#       ratio (software RDMA on shared cores: no speed claim)
#   multi_nic.sh --topo RINGLET_RUN NRANKS -- CMD [ARGS...]
#       NIC per channel from the plan: a fabric file gives every rank its
#       own host (RINGLET_HOST_ID) with rxe(2r) on rail 0 and rxe(2r+1) on
#       rail 1, and RINGLET_IB_HCA lists them the other way round. Each
#       rank must log channel 0 on rxe(2r) and channel 1 on rxe(2r+1)
#       (round-robin would take them reversed), CMD must pass, and both
#       devices must carry at least 30% of the rank's bytes
#   multi_nic.sh --rank-exec CMD...   (internal) set this rank's two devices
#       (one with MULTI_NIC_ONE=1, or on rank MULTI_NIC_ONE_RANK; reversed,
#       with its own host name, with MULTI_NIC_REVERSE=1)
set -u
usage() { sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "multi_nic.sh: $*" >&2; exit 1; }

# ---- per rank: its two devices (or only the first, MULTI_NIC_ONE=1) ----
if [ "${1:-}" = --rank-exec ]; then
  shift
  r=${RINGLET_RANK:?no RINGLET_RANK: run me under ringlet-run}
  if [ "${MULTI_NIC_REVERSE:-0}" = 1 ]; then
    export RINGLET_IB_HCA="rxe$((2 * r + 1)):1,rxe$((2 * r)):1" RINGLET_HOST_ID="mnh$r"
  elif [ "${MULTI_NIC_ONE:-0}" = 1 ] || [ "${MULTI_NIC_ONE_RANK:-x}" = "$r" ]; then
    export RINGLET_IB_HCA="rxe$((2 * r)):1"
  else
    export RINGLET_IB_HCA="rxe$((2 * r)):1,rxe$((2 * r + 1)):1"
  fi
  exec "$@"
fi

# packets (rxe's counters) and bytes (the netdev's) sent + received, per device
snapshot() {
  local d n c
  for d in /sys/class/infiniband/rxe*; do
    n=${d##*/}
    c=$d/ports/1/hw_counters
    echo "$n $(($(cat "$c/sent_pkts") + $(cat "$c/rcvd_pkts"))) $(($(cat "/sys/class/net/veth${n#rxe}/statistics/tx_bytes") + $(cat "/sys/class/net/veth${n#rxe}/statistics/rx_bytes")))"
  done
}

case "${1:-}" in -h|--help|"") usage; exit 0 ;; esac

if [ "$1" = --bench ]; then
  [ $# -eq 6 ] || die "--bench wants RINGLET_RUN NRANKS ALL_REDUCE_PERF SIZE REPS (see --help)"
  run=$2 n=$3 perf=$4 size=$5 reps=$6
  res=$(mktemp)
  one() { # MULTI_NIC_ONE value -> busbw GB/s from the time column (us)
    local out
    out=$(MULTI_NIC_ONE=$1 timeout 600 "$run" -n "$n" --only-rank 0 --no-prefix --timeout 550 \
          --env RINGLET_TRANSPORT=verbs --env RINGLET_NCHANNELS=2 -- "$0" --rank-exec \
          "$perf" -b "$size" -e "$size" -n 5 -w 1 -c 1 2>&1) || { echo "$out" >&2; echo nan; return; }
    echo "$out" | awk -v n="$n" '$1 ~ /^[0-9]+$/ && $6 > 0 {b = $1 / ($6 * 1e3) * 2 * (n - 1) / n} END {print b + 0}'
  }
  for i in $(seq "$reps"); do
    a=$(one 1); b=$(one 0)
    echo "run $i: $n ranks, $size B, 2 channels: one device $a GB/s, two devices $b GB/s"
    echo "1 $a" >>"$res"; echo "2 $b" >>"$res"
  done
  med() { sort -g | awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
  a=$(awk '$1 == 1 {print $2}' "$res" | med); b=$(awk '$1 == 2 {print $2}' "$res" | med)
  awk -v a="$a" -v b="$b" -v r="$reps" 'BEGIN {printf "median of %d: one device %.5f GB/s, two devices %.5f GB/s: ratio two/one %.2f\n", r, a, b, (a > 0 ? b / a : 0)}'
  snapshot | sed 's/^/# packets bytes: /'
  rm -f "$res"
  exit 0
fi

if [ "$1" = --topo ]; then
  [ $# -ge 5 ] && [ "$4" = -- ] || die "usage: multi_nic.sh --topo RINGLET_RUN NRANKS -- CMD... (see --help)"
  run=$2 n=$3
  shift 4
  fab=$(mktemp) out=$(mktemp)
  {
    echo '{"ringlet_fabric": 1, "name": "multi_nic --topo: two rails", "hosts": ['
    for r in $(seq 0 $((n - 1))); do
      echo "{\"name\": \"mnh$r\", \"nics\": [{\"dev\": \"rxe$((2 * r))\", \"rail\": 0, \"gbps\": 10},"
      echo " {\"dev\": \"rxe$((2 * r + 1))\", \"rail\": 1, \"gbps\": 10}]}$([ "$r" -lt $((n - 1)) ] && echo ,)"
    done
    echo '], "switches": [{"name": "rail0", "tier": 1}, {"name": "rail1", "tier": 1}], "links": ['
    for r in $(seq 0 $((n - 1))); do
      echo "{\"a\": \"mnh$r/rxe$((2 * r))\", \"b\": \"rail0\", \"gbps\": 10},"
      echo "{\"a\": \"mnh$r/rxe$((2 * r + 1))\", \"b\": \"rail1\", \"gbps\": 10},"
    done
    echo '{"a": "rail0", "b": "rail1", "gbps": 10}]}'
  } >"$fab"
  before=$(snapshot)
  MULTI_NIC_REVERSE=1 timeout 500 "$run" -n "$n" --timeout 450 --env RINGLET_TRANSPORT=verbs \
    --env RINGLET_LOG_LEVEL=info --env "RINGLET_TOPO_FILE=$fab" -- "$0" --rank-exec "$@" >"$out" 2>&1 ||
    die "--topo: the group failed: $(tail -n 8 "$out")"
  after=$(snapshot)
  fail=0
  for r in $(seq 0 $((n - 1))); do
    a=$((2 * r)) b=$((2 * r + 1))
    grep -m1 "rank $r: channel NICs" "$out" || { echo "multi_nic.sh: --topo: rank $r logged no channel NICs" >&2; fail=1; }
    grep -q "rank $r: channel NICs from RINGLET_TOPO_FILE (channel:device) 0:rxe$a,1:rxe$b\$" "$out" ||
      { echo "multi_nic.sh: --topo: rank $r: expected channel 0 on rxe$a (rail 0) and 1 on rxe$b (rail 1)" >&2; fail=1; }
    line=$(printf '%s\n%s\n' "$before" "$after" | awk -v a="rxe$a" -v b="rxe$b" '
      $1 == a {ba = $3 - ba} $1 == b {bb = $3 - bb}
      END {t = ba + bb; printf "%d %d %.1f %.1f", ba, bb, t ? 100 * ba / t : 0, t ? 100 * bb / t : 0}')
    read -r ba bb sa sb <<<"$line"
    echo "rank $r: rxe$a (rail 0) ${ba} bytes (${sa}%), rxe$b (rail 1) ${bb} bytes (${sb}%)"
    awk -v x="$sa" -v y="$sb" 'BEGIN {exit !(x >= 30 && y >= 30)}' ||
      { echo "multi_nic.sh: --topo: rank $r: both devices must carry at least 30%" >&2; fail=1; }
  done
  grep -c 'all checks passed' "$out" | sed 's/$/ ranks passed the check/'
  rm -f "$fab" "$out"
  exit $fail
fi

min=30
if [ "$1" = --min-share ]; then min=${2:?--min-share needs a value}; shift 2; fi
[ $# -ge 4 ] && [ "$3" = -- ] || die "usage: multi_nic.sh [--min-share PCT] RINGLET_RUN NRANKS -- CMD... (see --help)"
run=$1 n=$2
shift 3
for r in $(seq 0 $((n - 1))); do
  for d in $((2 * r)) $((2 * r + 1)); do
    [ -e /sys/class/infiniband/rxe$d/ports/1/hw_counters/sent_pkts ] || die "no rxe$d with counters: run under tools/rxe-vm --hosts $((2 * n))"
  done
done
# Bad lists must fail at once with RL_ERR_CONFIG naming the entry (both
# ranks get the same list; ringlet-run's own RINGLET_HCA_LIST is dropped).
bad_list() { # LIST TEXT
  local o
  o=$(env -u RINGLET_HCA_LIST timeout 120 "$run" -n 2 --timeout 100 --env RINGLET_TRANSPORT=verbs \
      --env "RINGLET_IB_HCA=$1" -- "$cmd" 2>&1) && die "RINGLET_IB_HCA=$1 was accepted"
  grep -q "RL_ERR_CONFIG" <<<"$o" && grep -qF "$2" <<<"$o" ||
    die "RINGLET_IB_HCA=$1: expected RL_ERR_CONFIG and \"$2\", got: $(grep -m3 -i error <<<"$o")"
  echo "RINGLET_IB_HCA=$1 refused: $(grep -m1 -oF "$2" <<<"$o")"
}
cmd=$1
bad_list rxe0:1,nosuch:1 "RINGLET_IB_HCA entry nosuch:1: no such RDMA device"
bad_list rxe0:1,rxe1:2 "RINGLET_IB_HCA entry rxe1:2: rxe1 has 1 port"
bad_list rxe0:1,rxe0 "entry 2 (rxe0) repeats device rxe0 of entry 1"
bad_list rxe0:1,,rxe1:1 "entry 2 is empty"
# Ranks with different device counts connect (each end picks its device by
# the channel): rank 1 has one, the others two; the channel count must then
# be given, as it must agree.
mixed=$(MULTI_NIC_ONE_RANK=1 timeout 200 "$run" -n "$n" --timeout 150 --env RINGLET_TRANSPORT=verbs \
        --env RINGLET_NCHANNELS=2 -- "$0" --rank-exec "$cmd" --quick 2>&1) ||
  die "rank 1 on one device, the others on two: failed: $(tail -n 5 <<<"$mixed")"
echo "rank 1 on one device, the others on two: $(grep -c 'all checks passed' <<<"$mixed") of $n ranks passed"
# One group whose devices' counters are compared: LABEL, then extra
# ringlet-run options; CMD is the caller's.
fail=0
counted() {
  local label=$1 before after out rc t0 t1 r a b line pa pb ba bb sa sb
  shift
  before=$(snapshot)
  t0=$(date +%s.%N)
  out=$(mktemp)
  "$run" -n "$n" --timeout 500 --env RINGLET_TRANSPORT=verbs --env RINGLET_LOG_LEVEL=info "$@" \
    -- "$0" --rank-exec "${cmdline[@]}" >"$out" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  after=$(snapshot)
  echo "== $label"
  grep -v ' INFO ' "$out" | tail -n 20
  # each rank must have described both of its devices
  grep -m "$n" 'communicator of' "$out" | sed 's/.*over \(verbs:[^ ,;]*\).*/transport: \1/'
  [ $rc = 0 ] || die "$label: the group failed (status $rc)"
  for r in $(seq 0 $((n - 1))); do
    grep -q "^\[$r\].*communicator of .*over verbs:rxe$((2 * r)):1/[a-z0-9/]*+rxe$((2 * r + 1)):1/" "$out" ||
      die "$label: rank $r did not report both its devices (rxe$((2 * r)), rxe$((2 * r + 1)))"
  done
  rm -f "$out"
  for r in $(seq 0 $((n - 1))); do
    a=$((2 * r)) b=$((2 * r + 1))
    # (no process substitution: the guest has no /dev/fd)
    line=$(printf '%s\n%s\n' "$before" "$after" | awk -v a="rxe$a" -v b="rxe$b" '
      $1 == a {pa = $2 - pa; ba = $3 - ba} $1 == b {pb = $2 - pb; bb = $3 - bb}
      END {t = ba + bb; printf "%d %d %d %d %.1f %.1f", pa, pb, ba, bb, t ? 100 * ba / t : 0, t ? 100 * bb / t : 0}')
    read -r pa pb ba bb sa sb <<<"$line"
    echo "rank $r: rxe$a ${pa} packets ${ba} bytes (${sa}%), rxe$b ${pb} packets ${bb} bytes (${sb}%)"
    if ! awk -v x="$sa" -v y="$sb" -v m="$min" -v t="$((ba + bb))" 'BEGIN {exit !(x >= m && y >= m && t >= 1000000)}'; then
      echo "multi_nic.sh: $label: rank $r: each device must carry at least $min% of at least 1 MB (rxe$a ${sa}%, rxe$b ${sb}%)" >&2
      fail=1
    fi
  done
  awk -v a="$t0" -v b="$t1" -v l="$label" 'BEGIN {printf "%s: group ran %.1f s\n", l, b - a}'
}
cmdline=("$@")
counted "QP data through the bootstrap (oob)"
# rdmacm: a listener per device, on the IPv4 address in its GID (policy
# routing in tools/rxe-vm-init sends it out through that device's veth)
counted "rdmacm" --env RINGLET_IB_CM=rdmacm --env "RINGLET_IB_GID_INDEX=${RINGLET_RXE_IPV4_GID_INDEX:?not in tools/rxe-vm}"
exit $fail
