#!/usr/bin/env bash
# Start ringlet ranks the way a launcher would, with no RINGLET_RANK/SIZE/ADDR,
# and run a payload in each (every rank must exit 0):
#   launch_test.sh mpirun   N PAYLOAD [ARGS]   Open MPI's mpirun: PMIx bootstrap
#   launch_test.sh slurm    N PAYLOAD [ARGS]   the environment srun gives tasks
#   launch_test.sh torchrun N PAYLOAD [ARGS]   the environment torchrun gives workers
# slurm/torchrun start the N processes here with exactly the variables those
# launchers document (no srun or torchrun binary is needed).
set -euo pipefail
mode=$1 n=$2
shift 2
unset RINGLET_RANK RINGLET_SIZE RINGLET_ADDR RANK WORLD_SIZE MASTER_ADDR MASTER_PORT
unset "${!SLURM_@}" "${!PMIX_@}" "${!OMPI_@}" 2>/dev/null || true
export RINGLET_TIMEOUT_MS=${RINGLET_TIMEOUT_MS:-60000}

if [ "$mode" = mpirun ]; then
  command -v mpirun >/dev/null || { echo "launch_test: mpirun not found (openmpi-bin)" >&2; exit 1; }
  # Open MPI refuses root without these; tests run as root in CI containers.
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  exec timeout -k 5 240 mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$n" "$@"
fi

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pids=()
for ((r = 0; r < n; r++)); do
  if [ "$mode" = slurm ]; then
    env SLURM_PROCID=$r SLURM_STEP_NUM_TASKS=$n SLURM_NTASKS=$n SLURM_STEP_NODELIST="localhost" \
        SLURM_JOB_ID=$((port * 3 + $$)) SLURM_STEP_ID=0 SLURMD_NODENAME=localhost SLURM_LOCALID=$r \
        EXPECT_RANK=$r EXPECT_SIZE=$n timeout -k 5 240 "$@" &
  elif [ "$mode" = torchrun ]; then
    env RANK=$r WORLD_SIZE=$n LOCAL_RANK=$r LOCAL_WORLD_SIZE=$n MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
        TORCHELASTIC_RUN_ID=test EXPECT_RANK=$r EXPECT_SIZE=$n timeout -k 5 240 "$@" &
  else
    echo "launch_test: unknown mode $mode" >&2; exit 2
  fi
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit $rc
