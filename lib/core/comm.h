/* Communicator internals, shared by core/ and coll/ (never by transports). */
#ifndef RL_COMM_H
#define RL_COMM_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "coll/algo.h"
#include "coll/geom.h"
#include "coll/model.h"
#include "coll/wire.h"
#include "core/bootstrap.h"
#include "core/config.h"
#include "reduce/reduce.h"
#include "ringlet.h"
#include "transport/transport.h"

/* A communicator can span several transports: native shm for the ranks on
 * this host, a network backend for the others (RINGLET_INTRA_TRANSPORT).
 * Algorithms never call a backend directly: they hold ringlet-level
 * connections and registrations and go through the rl_conn_* / rl_mr_*
 * helpers below, which pick the backend the peer is routed through. */
#define RL_MAX_TP 2

typedef struct {
    const rl_tp_ops_t *ops;
    rl_tp_t *tp;
    int npeers;             /* ranks routed through it */
    uint64_t writes, bytes; /* what this rank wrote through it (RINGLET_LOG_LEVEL=info at destroy) */
} rl_tport_t;

/* A connection to one peer, through the transport that reaches it. */
typedef struct {
    rl_tp_conn_t *tc; /* NULL: none */
    int tpi;          /* index into c->tps */
} rl_conn_t;

/* One region registered with every open transport (keys differ). */
typedef struct {
    rl_tp_mr_t *m[RL_MAX_TP];
} rl_mr_t;

/* A registration: made by the user (pinned) or cached by ringlet. */
typedef struct rl_regent {
    char *base;
    size_t len;
    unsigned access;
    rl_mr_t mr;
    int pinned;   /* rl_mem_register(): never evicted */
    int cached;   /* kept after use */
    int refs;     /* operations using it now */
    uint64_t used;
    struct rl_regent *next;
} rl_regent_t;

struct rl_mem {
    struct rl_comm *comm;
    rl_regent_t *ent;
};

/* A sealed memfd segment of this rank and, where shared, the same-host
 * peers' segments mapped read-only here (core/shseg.c). */
typedef struct {
    const uint8_t *base; /* NULL: not on this host, or not shared */
    size_t map_len;      /* bytes mapped (the memfd's size, checked) */
    size_t len;          /* bytes its owner uses (announced, <= map_len) */
    int32_t pid;
} rl_shpeer_t;
typedef struct {
    uint64_t id;       /* the same on every rank */
    uint8_t *mine;     /* writable here */
    size_t len;        /* mapped */
    size_t user_len;   /* what the owner uses of it */
    int fd;            /* until shared */
    int shared;        /* every same-host pair mapped each other's (agreed by every rank) */
    rl_shpeer_t *peer; /* [nranks]; peer[rank] is mine */
} rl_shseg_t;

/* rl_mem_alloc's allocations (core/mem.c). */
typedef struct rl_shalloc {
    rl_shseg_t seg;
    rl_regent_t *ent; /* with every open transport; pinned, in c->regs */
    struct rl_shalloc *next;
} rl_shalloc_t;

/* A request: the header every algorithm shares, then its private state. */
#define RL_REQ_CACHE 4
#define RL_REQ_MIN_ALLOC 512 /* header + every small algorithm's state: one size to recycle */
#define RL_COMM_MAGIC 0x4d434c52u /* "RLCM" */
#define RL_REQ_MAGIC 0x51524c52u  /* "RLRQ" */

struct rl_request {
    uint32_t magic;       /* RL_REQ_MAGIC while the request lives (first: free() overwrites it) */
    struct rl_comm *comm; /* NULL once the communicator is gone */
    const rl_algo_t *algo;
    rl_coll_t coll;
    const char *in;
    char *out;
    size_t count;
    rl_dtype_t dtype;
    rl_op_t op;
    int root;             /* broadcast/reduce */
    size_t esize;
    rl_reduce_fn fn;
    uint64_t seq;
    rl_status_t status; /* RL_INPROGRESS until final */
    int started;
    rl_regent_t *in_reg, *out_reg;
    int64_t start_ns;
    int internal; /* a collective's own message: the communicator frees it */
    size_t alloc_size; /* bytes allocated (a recycled block may be larger than needed) */
    void *args;   /* the call's arguments beyond count (all-to-allv's counts); freed with it */
    struct rl_request *next;
    _Alignas(16) unsigned char priv[]; /* the algorithm's state (RL_PRIV) */
};

/* Which algorithm runs a call: per collective, size ranges in order, the
 * first usable one covering the size wins (coll/select.c). */
#define RL_SEL_MAX 8
typedef struct {
    uint64_t lo, hi; /* bytes, inclusive */
    int algo;        /* registry index, or -1: the cheapest by the model */
    int multi;       /* a default that applies only when local peers go through ringlet's shm
                        and the others through the network (two transports) */
} rl_sel_range_t;
typedef struct {
    rl_sel_range_t r[RL_SEL_MAX];
    int n;
} rl_sel_list_t;
typedef struct {
    rl_sel_list_t per[RL_COLL_COUNT];
    rl_tune_t tune;  /* RINGLET_TUNE_FILE's entries */
    rl_model_t model; /* the ones for this transport and size */
    /* an algorithm's own calibration: per_algo_n[i] size bands, ascending */
    rl_model_t per_algo[RL_ALGO_MAX][RL_MODEL_BANDS];
    uint64_t per_algo_from[RL_ALGO_MAX][RL_MODEL_BANDS];
    unsigned char per_algo_n[RL_ALGO_MAX];
    char model_src[160]; /* where the model's parameters came from */
    uint64_t hash;       /* of the lists and the model: ranks must agree */
} rl_select_t;

struct rl_comm {
    uint32_t magic; /* RL_COMM_MAGIC while the communicator lives (first: free() overwrites it) */
    int rank, nranks;
    rl_config_t cfg;
    int *order;  /* nrings x nranks: ring k at order + k x nranks; channel i runs ring i % nrings */
    int nrings;
    int stall_peer;      /* the rank an expired wait waited on, -1 (describe_wait sets it) */
    int topo_deferred;   /* RINGLET_TOPO_FILE planned once the hosts are known */
    uint64_t topo_hash;  /* its bytes' hash, in the agreement check meanwhile */
    int nchan_nic;       /* channels < nchan_nic run on the NIC named chan_nic[] (the plan's) */
    char (*chan_nic)[32];
    rl_boot_t *boot;
    rl_tport_t tps[RL_MAX_TP]; /* open transports: [0] the one named by RINGLET_TRANSPORT */
    int ntp;                   /* 0 before they open (and with one rank) */
    uint8_t *route;            /* [nranks]: index into tps of the transport that reaches the rank */
    int err_tpi;               /* the transport whose last_error explains the last failure */
    int nch;
    size_t chunk_bytes;
    size_t min_chunk_bytes;
    int depth;
    int local_ranks, oversubscribed;
    int *host_of;       /* [nranks]: host index, hosts numbered by their lowest rank */
    int nhosts;
    int ranks_per_host; /* when every host has as many ranks; else 0 */
    int64_t spin_ns; /* how long a wait busy-polls before yielding/sleeping */
    int64_t spin_cur; /* the adaptive spin now, 0..spin_ns (core/request.c's rl_wait) */
    int spin_fixed;   /* RINGLET_SPIN_US set: always spin_ns */
    int wait_events;  /* a long wait sleeps on the completion channel (RINGLET_WAIT) */
    uint64_t nevents; /* completions seen so far: waits nap only while none come */
    uint64_t next_seq;
    struct rl_request *head, *tail;
    rl_status_t failed;
    char errmsg[512];
    atomic_int abort_flag;
    int64_t next_boot_check;
    rl_regent_t *regs;
    int nregs;
    /* Partial results (reduce-scatter, reduce, halving-doubling): grown
     * between operations; peers write into it, but only what an operation
     * asks them to. */
    char *scratch;
    size_t scratch_len;
    rl_regent_t *scratch_ent;
    rl_select_t sel;
    void *algo_state[RL_ALGO_MAX]; /* each algorithm's own, by registry index */
    /* The algorithms set up here that have a foreign or comm_progress hook
     * (rl_algos_setup fills them): what every operation's start and every
     * progress call visit, rather than the whole registry. */
    const rl_algo_t *hk_foreign[RL_ALGO_MAX], *hk_progress[RL_ALGO_MAX];
    int n_foreign, n_progress;
    /* Blocks of requests that blocking calls finished with, for the next
     * call (no malloc/free per small operation); freed with the comm. */
    struct rl_request *req_cache[RL_REQ_CACHE];
    int n_req_cache;
    rl_imm_fn imm_fn[RL_IMMC_COUNT];
    int group_depth;
    struct rl_request **group;
    int ngroup, group_cap;
    uint64_t reg_clock;
    rl_shalloc_t *shallocs; /* rl_mem_alloc, newest first */
    uint64_t shalloc_ids;   /* allocations made so far (ids agree: the calls are collective) */
    char desc[256];
};

/* Whether a handle looks alive: catches NULL and most uses after destroy or
 * free (free() overwrites the first bytes; memory reused since may still
 * pass, which is why such use stays undefined). */
static inline int rl_comm_ok(const struct rl_comm *c) { return c && c->magic == RL_COMM_MAGIC; }
static inline int rl_req_ok(const struct rl_request *r) { return r && r->magic == RL_REQ_MAGIC; }

/* Record a failure once: every pending operation ends with st, and the
 * peers hear of it through the bootstrap channel. */
void rl_comm_fail(struct rl_comm *c, rl_status_t st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A completion error: fail with the failed rank's name if rank 0 reports
 * one within a short bound, else with the peer and the symptom. */
void rl_comm_transport_failure(struct rl_comm *c, int peer);
/* Drive completions and the running operation; never blocks. */
rl_status_t rl_comm_progress(struct rl_comm *c);
/* A spinning wait's cheap round: advance the head operation alone when
 * its algorithm is self-driven and it has started; 0 when that does not
 * apply (then a full rl_comm_progress is due). */
int rl_comm_poll_head(struct rl_comm *c);

/* rl_comm_create() whose rank 0 takes over a socket already listening
 * (listen_fd >= 0, closed in any case; rl_comm_split). */
rl_status_t rl_comm_create_listen(const rl_comm_opts_t *opts, int listen_fd, rl_comm_t *out);
/* Queue a call its entry point validated (coll/a2av.c) like every other
 * collective: selection by (coll, count x esize), issue order on the head
 * queue. args (malloc'ed, may be NULL) becomes r->args, freed with the
 * request, on failure too. */
rl_status_t rl_submit_local(struct rl_comm *c, rl_coll_t coll, const void *in, void *out, size_t count,
                            rl_dtype_t dtype, int root, size_t esize, void *args, rl_request_t *req);
/* Finish a blocking call whose request r was submitted with status st:
 * wait for it (or only add it to the open group) and free it (core/request.c). */
rl_status_t rl_run_blocking(struct rl_comm *c, rl_status_t st, rl_request_t r);

/* Registration cache (core/mem.c). */
rl_status_t rl_reg_acquire(struct rl_comm *c, const void *ptr, size_t len, unsigned access, rl_regent_t **out);
void rl_reg_release(struct rl_comm *c, rl_regent_t *e);
void rl_reg_cleanup(struct rl_comm *c);

/* Shared segments (core/shseg.c). open: a sealed memfd of len bytes
 * mapped writable here (0, or -1 with errno). share: collective over every
 * rank of c; hands it to the ranks of this host and maps theirs read-only
 * (s->shared says whether every pair did, alike on every rank); ok = 0: this
 * rank could not open its own, which fails the call on every rank
 * (RL_ERR_NO_MEMORY, err names the rank). close: unmap everything. */
int rl_shseg_open(const char *name, size_t len, rl_shseg_t *s);
rl_status_t rl_shseg_share(struct rl_comm *c, rl_shseg_t *s, uint64_t id, int ok, int64_t deadline, char *err,
                           size_t len);
void rl_shseg_close(struct rl_comm *c, rl_shseg_t *s);
/* Every rank's flag ANDed over the group (through the bootstrap). */
rl_status_t rl_comm_agree(struct rl_comm *c, int *flag, int64_t deadline, char *err, size_t len);
/* The shared allocation of this rank holding [p, p + len), with p's offset
 * in it; or the one numbered id (the same allocation on every rank). NULL:
 * none, or not shared with the host. */
const rl_shseg_t *rl_shalloc_find(const struct rl_comm *c, const void *p, size_t len, size_t *off);
const rl_shseg_t *rl_shalloc_by_id(const struct rl_comm *c, uint64_t id);
void rl_shalloc_cleanup(struct rl_comm *c);

/* The communicator's scratch grown to at least len bytes (core/mem.c). */
rl_status_t rl_comm_scratch(struct rl_comm *c, size_t len);
void rl_comm_scratch_free(struct rl_comm *c);

/* Selection (coll/select.c): build the table from the settings at
 * creation; pick the algorithm for a call. */
rl_status_t rl_select_build(struct rl_comm *c, char *err, size_t len);
const rl_algo_t *rl_select(const struct rl_comm *c, const rl_call_t *call);
/* ringlet-info: the table this environment resolves for nranks over a
 * transport, and each candidate's predicted time at the given sizes
 * (bytes per rank; NULL: a few from 8 B to 64 MiB). */
rl_status_t rl_select_explain(FILE *out, int nranks, const char *transport, const uint64_t *sizes, int nsizes,
                              char *err, size_t len);
/* Release what request r holds: its algorithm's state and registrations. */
void rl_request_release(struct rl_comm *c, struct rl_request *r);

/* ---- Connections and registrations across the open transports ---- */

/* The transport that reaches rank peer (0 before routes exist). */
static inline int rl_route(const struct rl_comm *c, int peer) { return c->route ? c->route[peer] : 0; }
static inline const rl_tp_ops_t *rl_conn_ops(const struct rl_comm *c, const rl_conn_t *k) { return c->tps[k->tpi].ops; }

/* Why the last transport call failed, from the backend that failed. */
static inline const char *rl_comm_tp_error(const struct rl_comm *c)
{
    return c->ntp ? c->tps[c->err_tpi].ops->last_error(c->tps[c->err_tpi].tp) : "no transport is open";
}
static inline rl_status_t rl_tp_failed(struct rl_comm *c, int tpi, rl_status_t st)
{
    if (st != RL_OK && st != RL_ERR_AGAIN)
        c->err_tpi = tpi;
    return st;
}

/* Start a connection to peer for channel chan through the transport its
 * route names; the blob goes to the peer. */
static inline rl_status_t rl_conn_create(struct rl_comm *c, int peer, int chan, rl_conn_t *k, void *blob,
                                         size_t *len)
{
    k->tpi = rl_route(c, peer);
    const rl_tport_t *t = &c->tps[k->tpi];
    return rl_tp_failed(c, k->tpi, t->ops->conn_create(t->tp, peer, chan, &k->tc, blob, len));
}
static inline rl_status_t rl_conn_establish(struct rl_comm *c, rl_conn_t *k, const void *blob, size_t len,
                                            int64_t deadline)
{
    return rl_tp_failed(c, k->tpi, rl_conn_ops(c, k)->conn_establish(k->tc, blob, len, deadline));
}
static inline void rl_conn_destroy(struct rl_comm *c, rl_conn_t *k)
{
    if (k->tc)
        rl_conn_ops(c, k)->conn_destroy(k->tc);
    k->tc = NULL;
}

/* write_imm through k: the source's registration of k's transport. */
static inline rl_status_t rl_conn_write_imm(struct rl_comm *c, const rl_conn_t *k, const void *src, size_t len,
                                            const rl_mr_t *smr, uint64_t raddr, uint64_t rkey, uint32_t imm,
                                            void *ctx)
{
    rl_tport_t *t = &c->tps[k->tpi];
    rl_status_t st = t->ops->write_imm(k->tc, src, len, smr ? smr->m[k->tpi] : NULL, raddr, rkey, imm, ctx);
    if (st == RL_OK) {
        t->writes++;
        t->bytes += len;
    }
    return rl_tp_failed(c, k->tpi, st);
}

/* Register [buf, buf + len) with every open transport; *mr is all NULL on
 * failure (core/mem.c). */
rl_status_t rl_mr_reg(struct rl_comm *c, void *buf, size_t len, unsigned access, rl_mr_t *mr);
/* Release what rl_mr_reg made (entries that are NULL are skipped). */
void rl_mr_dereg(struct rl_comm *c, rl_mr_t *mr);
/* The name of ptr (inside mr) for the peer at the other end of to, which
 * writes through to's transport. */
static inline void rl_mr_remote(const struct rl_comm *c, const rl_mr_t *mr, const rl_conn_t *to, const void *ptr,
                                rl_rkey_t *rk)
{
    c->tps[to->tpi].ops->mr_remote(mr->m[to->tpi], to->tc, ptr, rk);
}
/* The name of ptr for every rank that transport tpi reaches (keys published
 * to all ranks at once). */
static inline void rl_mr_remote_any(const struct rl_comm *c, const rl_mr_t *mr, int tpi, const void *ptr,
                                    rl_rkey_t *rk)
{
    c->tps[tpi].ops->mr_remote(mr->m[tpi], NULL, ptr, rk);
}

#endif
