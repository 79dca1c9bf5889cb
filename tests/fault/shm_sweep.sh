#!/usr/bin/env bash
# Leftover shared memory (issue 13 item 6): ranks killed with kill -9 on
# libfabric shm leave their region files in /dev/shm; the next ringlet
# process to open shm must remove the ones whose process is gone.
#   shm_sweep.sh RINGLET_RUN WORKER
set -u
case "${1:-}" in -h|--help|"") sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
run=$1 worker=$2
ns=$(stat -L -c %i /proc/self/ns/pid)
env=(--env RINGLET_TRANSPORT=ofi --env RINGLET_OFI_PROVIDER=shm)
"$run" -n 2 --timeout 120 "${env[@]}" -- "$worker" --iters 1000000 >/dev/null 2>&1 &
runner=$!
pids=""
for _ in $(seq 1 200); do
  pids=$(pgrep -P $runner | tr '\n' ' ')
  n=0
  for p in $pids; do ls /dev/shm/ringlet.$(printf %010d $ns).$(printf %010d $p).* >/dev/null 2>&1 && n=$((n + 1)); done
  [ $n -eq 2 ] && break
  sleep 0.1
done
[ -n "$pids" ] || { echo "shm_sweep: the ranks did not start"; exit 1; }
files=()
for p in $pids; do files+=($(ls /dev/shm/ringlet.$(printf %010d $ns).$(printf %010d $p).* 2>/dev/null)); done
[ ${#files[@]} -ge 2 ] || { echo "shm_sweep: found ${#files[@]} region files of ranks $pids"; kill -9 $pids; exit 1; }
kill -9 $pids
wait $runner 2>/dev/null
left=0
for f in "${files[@]}"; do [ -e "$f" ] && left=$((left + 1)); done
echo "shm_sweep: ${#files[@]} region files, $left left after kill -9 of ranks $pids"
"$run" -n 2 --timeout 60 "${env[@]}" -- "$worker" --iters 3 >/dev/null 2>&1 || { echo "shm_sweep: the next group failed"; exit 1; }
still=0
for f in "${files[@]}"; do [ -e "$f" ] && { echo "still there: $f"; still=$((still + 1)); }; done
echo "shm_sweep: $still left after the next group started"
[ $still -eq 0 ]
