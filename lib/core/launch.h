/* Rank, group size and rendezvous address from the launcher that started us:
 * torchrun, PMIx (Open MPI's mpirun, srun --mpi=pmix) or Slurm's srun. */
#ifndef RL_LAUNCH_H
#define RL_LAUNCH_H

#include <stddef.h>
#include "core/config.h"

/* Fill cfg->rank, cfg->size and cfg->addr where they are still unset
 * (RINGLET_RANK/SIZE/ADDR and options passed in code win). Collective under
 * PMIx when rank 0's address is exchanged. On failure writes err. */
rl_status_t rl_launch_resolve(const rl_comm_opts_t *opts, rl_config_t *cfg, char *err, size_t errlen);

/* What identifies this rank's host for locality: RINGLET_HOST_ID, else the
 * kernel's boot id and this process's network namespace, so that ranks in
 * separate namespaces or containers with one host name are not taken for
 * neighbours (their loopback cannot reach each other). */
void rl_launch_host_id(const rl_config_t *cfg, char *out, size_t len);

/* First host of a Slurm hostlist: "n[07-09,12],m1" -> "n07". -1 if malformed. */
int rl_launch_first_host(const char *list, char *out, size_t len);
/* The rendezvous port every task of a Slurm step derives alike. */
int rl_launch_slurm_port(unsigned long job_id, unsigned long step_id, unsigned seq);

#endif
