/*
 * The algorithm interface. Every collective algorithm is one table of
 * operations, listed once in coll/algo.c's registry; the core (comm.c,
 * request.c) drives requests only through these tables and never names an
 * algorithm. An algorithm's per-request state lives after the common
 * request header (RL_PRIV), its per-communicator state in
 * c->algo_state[its registry index].
 */
#ifndef RL_ALGO_H
#define RL_ALGO_H

#include <stddef.h>
#include <stdint.h>

#include "coll/wire.h"
#include "ringlet.h"

struct rl_comm;
struct rl_request;

/* One collective call as the user made it (after validation). */
typedef struct {
    rl_coll_t coll;
    size_t count;
    rl_dtype_t dtype;
    rl_op_t op;
    int root;
    size_t bytes; /* count x element size: what selection ranges are in */
} rl_call_t;

/* Latency-bandwidth-reduction model of one transport at one group size:
 * a message costs alpha + bytes x beta, a reduction bytes x gamma. Two
 * latencies, because the protocols differ: an eager message is one write
 * into a slot the receiver keeps ready (rd); a rendezvous message waits
 * for the receiver's clear-to-send or credit (point to point, ring steps),
 * which adds part of a round trip. */
typedef struct {
    double alpha_us;        /* per eager message */
    double beta_us_per_b;   /* per byte moved */
    double gamma_us_per_b;  /* per byte reduced */
    double alpha_rdv_us;    /* per rendezvous message */
} rl_model_t;

/*
 * A completion object: the transport hands back the context pointer given
 * to a write, which points at one of these, embedded in whatever owns the
 * write (a channel, a peer, a landing slot); its handler knows the rest.
 */
typedef struct rl_compl {
    void (*fn)(struct rl_comm *c, struct rl_compl *self, rl_status_t st);
} rl_compl_t;

#define RL_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Bit of a collective in rl_algo_t.colls. */
#define RL_COLL_BIT(k) (1u << (unsigned)(k))

/* Every algorithm, once: rl_algo_<id>, each defined in its own file.
 * Communicator set-up runs in this order (the eager slots use the
 * point-to-point connections, so p2p comes first). Adding an algorithm is
 * its file, its id here, its file in lib/meson.build and, to make it a
 * default somewhere, a range in coll/select.c's defaults(). */
#define RL_ALGOS(X)                                                                                          \
    X(ring) X(chain) X(p2p) X(rd) X(rhd) X(pairwise) X(tree) X(bruck) X(dbt) X(bruck_a2a) X(pairwise_v) X(linear) X(hier) \
    X(hier_ag) X(hier_bcast) X(hier_rs) X(direct)

/* Registry index of each algorithm (its table's .id, and its slot in
 * c->algo_state), known at compile time: the data path looks up its own
 * communicator state without searching. */
enum {
#define RL_ALGO_ID_(id) RL_ALGO_ID_##id,
    RL_ALGOS(RL_ALGO_ID_)
#undef RL_ALGO_ID_
    RL_ALGO_NIDS
};

typedef struct rl_algo {
    const char *name;
    int id;             /* RL_ALGO_ID_<name of its rl_algo_<id> table> */
    const char *desc;   /* one line, for ringlet-info */
    unsigned colls;     /* RL_COLL_BIT()s of the collectives it implements */
    size_t state_size;  /* private per-request state after the header */
    /* Optional, at communicator creation (registry order) and destruction
     * (reverse order): connections, slots, the records it publishes. */
    rl_status_t (*comm_setup)(struct rl_comm *c, int64_t deadline, char *err, size_t len);
    void (*comm_teardown)(struct rl_comm *c);
    /* Whether it can run this call on this communicator. Must depend only
     * on what every rank agrees on (the call, the group, the settings). */
    int (*usable)(const struct rl_comm *c, const rl_call_t *call);
    /* Predicted time in microseconds under model m. */
    double (*cost)(const struct rl_comm *c, const rl_call_t *call, const rl_model_t *m);
    /* First step: RL_INPROGRESS while running, RL_OK when already done,
     * or an error (the core fails the communicator with it). */
    rl_status_t (*start)(struct rl_comm *c, struct rl_request *r);
    /* Advance; nonzero when finished (or the communicator failed). */
    int (*progress)(struct rl_comm *c, struct rl_request *r);
    /* Free what the request holds; may run more than once (a failure
     * releases every request, its owner frees it later). */
    void (*release)(struct rl_comm *c, struct rl_request *r);
    /* Optional: the owner frees r now; drop every reference to it. */
    void (*forget)(struct rl_comm *c, struct rl_request *r);
    void (*describe_wait)(struct rl_comm *c, struct rl_request *r, char *buf, size_t len);
    /* Optional: operation r runs by another algorithm; fail the
     * communicator with a mismatch if this one holds a message for it. */
    void (*foreign)(struct rl_comm *c, const struct rl_request *r);
    /* Optional communicator-level hooks: progress of its own queue, writes
     * still in flight (destroy drains them), and a failure ending every
     * request it queued. */
    void (*comm_progress)(struct rl_comm *c);
    /* Optional: what it set up, for the communicator's info log line. */
    void (*describe_comm)(struct rl_comm *c, char *buf, size_t len);
    int (*busy)(struct rl_comm *c);
    void (*comm_fail)(struct rl_comm *c, rl_status_t st);
    /* Nonzero: it moves data through the point-to-point service, so its
     * next step may follow that service's progress in the same call. */
    int on_p2p;
    /* Nonzero: its progress needs nothing from the transports (it moves
     * data through memory it maps itself), so a spinning wait may advance
     * it alone between full progress calls. */
    int self_driven;
} rl_algo_t;

/* Private state of request r, of type T. */
#define RL_PRIV(r, T) ((T *)(void *)(r)->priv)

/* ---- registry (coll/algo.c) ---- */
#define RL_ALGO_MAX 32
int rl_algo_count(void);
const rl_algo_t *rl_algo_at(int i);
/* The algorithm called name that implements coll (names are per collective). */
const rl_algo_t *rl_algo_find(const char *name, rl_coll_t coll);
int rl_algo_index(const rl_algo_t *a);
/* The algorithm's communicator state (by its table's registry id). */
#define RL_ALGO_STATE(c, a) ((c)->algo_state[(a)->id])

/* Set up / tear down every algorithm's communicator state. */
rl_status_t rl_algos_setup(struct rl_comm *c, int64_t deadline, char *err, size_t len);
void rl_algos_teardown(struct rl_comm *c);

/* Immediates are routed by class through one table in the communicator. */
typedef void (*rl_imm_fn)(struct rl_comm *c, uint32_t imm);
void rl_comm_route_imm(struct rl_comm *c, rl_imm_class_t cls, rl_imm_fn fn);

/* Allocate a request for algorithm a (header + its private state). */
struct rl_request *rl_request_alloc(struct rl_comm *c, const rl_algo_t *a);

/* An all-reduce with nothing to exchange (one rank or no elements): the
 * copy it still owes is made and it is finished; zero otherwise. */
int rl_coll_trivial(struct rl_comm *c, struct rl_request *r);
/* "rank 3 called all_reduce(count=10, float32, sum)" */
void rl_describe_call(char *buf, size_t len, int rank, uint32_t coll, uint64_t count, uint32_t dtype, uint32_t op,
                      int root);
/* Fail with RL_ERR_MISMATCH: operation seq differs between two ranks. */
void rl_fail_mismatch(struct rl_comm *c, const struct rl_request *r, const rl_ctrl_t *theirs);
/* All ranks reached this point (creation: everyone connected). */
rl_status_t rl_comm_sync(struct rl_comm *c, int64_t deadline, char *err, size_t len);

/* The algorithms other code names (base algorithms of the selection, the
 * services others build on, the defaults); the registry in coll/algo.c
 * lists them all. */
extern const rl_algo_t rl_algo_ring, rl_algo_chain, rl_algo_p2p, rl_algo_rhd, rl_algo_rd, rl_algo_pairwise,
    rl_algo_pairwise_v, rl_algo_linear, rl_algo_tree, rl_algo_bruck_a2a, rl_algo_direct,
    rl_algo_hier;

#endif
