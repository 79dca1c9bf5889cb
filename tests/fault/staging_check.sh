#!/usr/bin/env bash
# Staging is sized by need and capped (issue 13 item 6): with
# RINGLET_CHUNK_BYTES=1G (x depth 4, then x depth 64) a 3-rank 1 MiB
# all-reduce over libfabric tcp must run, check its results, and keep each
# rank's peak resident memory under LIMIT_MB (it used to allocate and zero
# 4 GiB per rank, and fail with "channel 0 failed: " at depth 64).
#   staging_check.sh RINGLET_RUN WORKER [LIMIT_MB]
set -u
case "${1:-}" in -h|--help|"") sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
run=$1 worker=$2 limit=${3:-300}
# AddressSanitizer's shadow and quarantine need more (still far below 4 GiB)
ldd "$worker" 2>/dev/null | grep -q libasan && limit=${3:-1500}
fails=0
for depth in 4 64; do
  out=$("$run" -n 3 --timeout 120 --env RINGLET_TRANSPORT=ofi --env RINGLET_OFI_PROVIDER=tcp \
        --env RINGLET_CHUNK_BYTES=1G --env RINGLET_PIPELINE_DEPTH=$depth -- "$worker" --iters 5 --print-rss 2>&1)
  rc=$?
  echo "$out" | grep -E "peak|iterations|RL_ERR|staging" | sed "s/^/depth $depth: /"
  [ $rc -eq 0 ] || { echo "depth $depth: the group failed ($rc)"; fails=$((fails + 1)); }
  [ "$(echo "$out" | grep -c "5 iterations, last RL_OK")" -eq 3 ] || { echo "depth $depth: not every rank finished"; fails=$((fails + 1)); }
  for kb in $(echo "$out" | sed -n 's/.*VmHWM: *\([0-9]*\) kB.*/\1/p'); do
    [ "$kb" -le $((limit * 1024)) ] || { echo "depth $depth: peak $((kb / 1024)) MiB > $limit MiB"; fails=$((fails + 1)); }
  done
done
[ $fails -eq 0 ] && echo "staging_check: ok" || echo "staging_check: $fails failure(s)"
[ $fails -eq 0 ]
