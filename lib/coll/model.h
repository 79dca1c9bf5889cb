/* The cost model's parameters (coll/model.c): per transport and group
 * size, from RINGLET_TUNE_FILE (written by ringlet-tune) or built in. */
#ifndef RL_MODEL_H
#define RL_MODEL_H

#include <stdio.h>

#include "coll/algo.h"

struct rl_comm;

/* One line of a tuning file: "transport nranks alpha_us beta_us_per_byte
 * gamma_us_per_byte alpha_rendezvous_us [algorithm [from_bytes]]"
 * (alpha_rendezvous may be missing: then alpha serves both). With an
 * algorithm name the entry is that all-reduce algorithm's own calibration
 * (its protocol's latency and bandwidth, as NCCL keeps per algorithm and
 * protocol), which wins over the transport-wide one for it; transport is a
 * prefix of rl_comm_transport(), e.g. "ofi:tcp", "ofi:shm", "verbs".
 * from_bytes makes it a size band: it holds for calls of at least that many
 * bytes, up to the next band of the same algorithm. Bandwidth per byte is
 * not one number on a host: a buffer set that fits the caches moves several
 * times faster than one that streams from memory. */
typedef struct {
    char transport[32];
    int nranks;
    rl_model_t m;
    char algo[16]; /* "": every algorithm */
    uint64_t from_bytes;
} rl_tune_entry_t;

#define RL_MODEL_BANDS 4 /* size bands per algorithm */

#define RL_TUNE_MAX 64
typedef struct {
    rl_tune_entry_t e[RL_TUNE_MAX];
    int n;
} rl_tune_t;

/* Parse a tuning file; on a bad line, RL_ERR_CONFIG with the file and line. */
rl_status_t rl_tune_read(const char *path, rl_tune_t *t, char *err, size_t len);
/* Write one as ringlet-tune does. */
int rl_tune_write(FILE *f, const rl_tune_t *t);
/* The parameters for a transport and group size: the entry with the
 * longest transport prefix, then the nearest group size; else built-in
 * estimates. src (if not NULL) tells which. */
rl_model_t rl_tune_pick(const rl_tune_t *t, const char *transport, int nranks, char *src, size_t srclen);

/* At creation: read RINGLET_TUNE_FILE into the communicator; then, once
 * the transport is open, pick its parameters. */
rl_status_t rl_model_load(struct rl_comm *c, char *err, size_t len);
void rl_model_pick(struct rl_comm *c);
/* The parameters algorithm a's cost is computed with, for a call of that
 * many bytes. */
const rl_model_t *rl_model_for(const struct rl_comm *c, const rl_algo_t *a, size_t bytes);
/* One measured all-reduce: an algorithm forced, a size, the median time. */
typedef struct {
    const rl_algo_t *algo;
    size_t bytes;
    double us;
} rl_fit_point_t;
/* ringlet-tune's fit: both latencies and beta of m from the points (gamma
 * as given in m), by least squares on relative errors, none negative; with
 * beta_only, the latencies are kept as given (a band of large sizes, where
 * they hardly show). */
void rl_model_fit(const struct rl_comm *c, const rl_fit_point_t *p, int n, rl_model_t *m, int beta_only);

/* Fold the loaded parameters into a hash (ranks must agree on them). */
uint64_t rl_model_hash(const struct rl_comm *c, uint64_t h);

#endif
