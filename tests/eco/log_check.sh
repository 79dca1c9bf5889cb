#!/usr/bin/env bash
# Logging: RINGLET_LOG_FILE with %h and %p gives one file per process, named
# by host and pid; every line starts "host:pid:rank "; at info level each
# rank's communicator-creation line names the transport with its device and
# the ring order; at the default level (warn) a clean run logs nothing; a bad
# RINGLET_LOG_LEVEL is reported, not ignored silently.
#   log_check.sh RINGLET_RUN N TRANSPORT_PREFIX [ringlet-run options] -- PAYLOAD [ARGS]
set -euo pipefail
run=$1 n=$2 want_tp=$3
shift 3
opts=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
shift
payload=("$@")
dir=$(mktemp -d /tmp/ringlet-log.XXXXXX)
trap 'rm -rf "$dir"' EXIT
fail() { echo "log_check: FAIL: $*" >&2; exit 1; }
host=$(hostname)

"$run" -n "$n" --timeout 300 "${opts[@]}" --env RINGLET_LOG_LEVEL=info --env "RINGLET_LOG_FILE=$dir/rl-%h-%p.log" \
  --env RINGLET_RING_ORDER="$(seq -s, $((n - 1)) -1 0)" -- "${payload[@]}" >/dev/null
shopt -s nullglob
files=("$dir"/rl-"$host"-*.log)
[ ${#files[@]} = "$n" ] || fail "expected $n files rl-$host-PID.log, found: $(ls "$dir")"
ranks=""
for f in "${files[@]}"; do
  pid=${f##*-}; pid=${pid%.log}
  [[ $pid =~ ^[0-9]+$ ]] || fail "no pid in $f"
  bad=$(grep -v "^$host:$pid:-\?[0-9]\+ [0-9]\+\.[0-9]\{6\} ringlet \(error\|warn\|info\|debug\) " "$f" || true)
  [ -z "$bad" ] || fail "lines without the host:pid:rank prefix in $f: $bad"
  lines=$(grep " ringlet info .*communicator of $n ranks over " "$f") || fail "no communicator line in $f"
  while read -r line; do
    echo "$line"
    grep -q "over $want_tp" <<<"$line" || fail "transport/device not named as $want_tp* in: $line"
    grep -q "ring $(seq -s, $((n - 1)) -1 0) (prev [0-9]*, next [0-9]*)" <<<"$line" || fail "ring order missing: $line"
  done <<<"$lines"
  r=$(sed 's/^[^:]*:[0-9]*:\([0-9]*\) .*/\1/' <<<"$lines" | sort -u)
  ranks+="$r "
done
[ "$(tr ' ' '\n' <<<"$ranks" | sort -n | xargs)" = "$(seq -s ' ' 0 $((n - 1)))" ] || fail "ranks seen: $ranks"

# Default level: a clean run writes nothing.
quiet=$("$run" -n "$n" --timeout 300 "${opts[@]}" -- "${payload[@]}" 2>&1 >/dev/null | grep ' ringlet ' || true)
[ -z "$quiet" ] || fail "warn level logged on a clean run: $quiet"
# A bad level is reported.
out=$("$run" -n 1 --env RINGLET_LOG_LEVEL=loud -- "${payload[@]}" 2>&1 || true)
grep -q "ignoring RINGLET_LOG_LEVEL=loud" <<<"$out" || fail "bad RINGLET_LOG_LEVEL not reported"
echo "log_check: OK"
