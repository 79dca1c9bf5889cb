/* Communicator internals, shared by core/ and coll/ (never by transports). */
#ifndef RL_COMM_H
#define RL_COMM_H

#include <stdatomic.h>
#include <stdint.h>

#include "coll/geom.h"
#include "coll/wire.h"
#include "core/bootstrap.h"
#include "core/config.h"
#include "reduce/reduce.h"
#include "ringlet.h"
#include "transport/transport.h"

/* A registration: made by the user (pinned) or cached by ringlet. */
typedef struct rl_regent {
    char *base;
    size_t len;
    unsigned access;
    rl_tp_mr_t *mr;
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

/* One ring: its neighbours, connections, staging slots and mailboxes. */
typedef struct {
    int id;
    int pos, prev, next;
    rl_tp_conn_t *to_prev, *to_next; /* the same object when prev == next */
    /* receive side: prev writes chunks into stage, next writes control
     * records into mbox */
    char *stage;
    rl_tp_mr_t *stage_mr;
    uint8_t *slot_full; /* [depth]: op tag + 1 of the chunk in the slot */
    uint64_t rx_chunks;
    uint8_t *mbox;
    rl_tp_mr_t *mbox_mr;
    uint8_t mbox_full[RL_MBOX_SLOTS];
    /* send side */
    rl_rkey_t next_stage, prev_mbox;
    uint8_t *ctrl_tx;
    rl_tp_mr_t *ctrl_tx_mr;
    uint64_t tx_chunks;
    int credits;     /* free staging slots at next */
    int credit_owed; /* credits for prev not yet posted (queue was full) */
    int ctl_inflight;
} rl_chan_t;

/* Point-to-point: one connection to every other rank, with a mailbox for
 * the clear-to-send records the peer writes (coll/p2p.c). */
#define RL_P2P_SLOTS 4
typedef struct {
    rl_tp_conn_t *conn;
    uint8_t *mbox; /* the peer's CTS records for my sends */
    rl_tp_mr_t *mbox_mr;
    uint8_t *ctrl_tx; /* my CTS records for its sends */
    rl_tp_mr_t *ctrl_tx_mr;
    rl_rkey_t peer_mbox;
    rl_rkey_t peer_land; /* its landing slots for eager all-reduce messages */
    /* per matching space (RL_P2P_USER, RL_P2P_COLL) */
    uint8_t mbox_full[RL_P2P_SPACES][RL_P2P_SLOTS];
    uint8_t rx_busy[RL_P2P_SPACES][RL_P2P_SLOTS]; /* a receive holds this CTS slot */
    uint64_t send_seq[RL_P2P_SPACES], recv_seq[RL_P2P_SPACES]; /* next to assign */
    uint64_t cts_next[RL_P2P_SPACES];  /* receives announce themselves in order: the next one */
    /* send side: the peer's clear-to-send records, taken from the mailbox
     * in their order and kept until a send of their tag takes them */
    uint64_t cts_seen[RL_P2P_SPACES];
    rl_ctrl_t cts[RL_P2P_SPACES][RL_P2P_SLOTS];
    uint8_t cts_valid[RL_P2P_SPACES][RL_P2P_SLOTS];
    uint8_t send_active[RL_P2P_SPACES]; /* a send is writing: one at a time, its completions need no tag */
    int send_inflight[RL_P2P_SPACES];
    int ctl_inflight;
} rl_peer_t;

/* Per-channel progress of one operation. */
typedef struct {
    rl_geom_t g;
    uint64_t nsend, nrecv; /* units this rank sends and receives */
    uint64_t sent, recvd;  /* units */
    uint8_t *arrived;     /* direct units that landed, by unit */
    int inflight;         /* data and control writes not completed */
    int ctrl_sent, have_peer, done;
    rl_ctrl_t peer;       /* next's control record */
    int empty;            /* no elements: one zero-length token each way */
    int64_t *step_ns;     /* when each ring step's last chunk was received */
} rl_opch_t;

struct rl_request {
    struct rl_comm *comm; /* NULL once the communicator is gone */
    rl_coll_t coll;
    const char *in;
    char *out;
    size_t count;
    rl_dtype_t dtype;
    rl_op_t op;
    int root;             /* broadcast/reduce */
    int cpos;             /* broadcast/reduce: this rank's place on the chain, 0 first */
    size_t esize;
    rl_reduce_fn fn;
    uint64_t seq;
    rl_status_t status; /* RL_INPROGRESS until final */
    int started;
    rl_regent_t *in_reg, *out_reg;
    int64_t last_progress;
    int64_t start_ns;
    rl_opch_t ch[RL_MAX_CHANNELS];
    /* point-to-point (coll == RL_COLL_SENDRECV) */
    int peer, is_send, cts_sent, have_cts, space;
    uint32_t ptag;    /* the user's tag (0 for tag-less calls and collectives) */
    uint64_t cts_seq; /* send: the receive it met (its data immediates name it) */
    int writing;      /* send: the active one to its peer */
    uint64_t pseq, nchunks, posted, arrived;
    uint64_t out_len; /* send: the receiver's buffer size */
    uint64_t raddr, rkey;
    /* all-reduce by recursive halving-doubling (coll/rhd.c) */
    int algo; /* RL_ALGO_* */
    struct {
        int n, m, step;
        uint64_t seg_lo[21], seg_len[21]; /* the range halving step k splits */
        uint64_t scr_off[21];             /* where halving step k's data lands in scratch */
        int64_t step_ns[42];              /* when each step finished (debug log) */
        struct rl_request *send, *recv[42]; /* every step's receive is posted at the start */
    } hd;
    /* all-reduce and barrier by eager recursive doubling (coll/rd.c) */
    struct {
        int m, vrank, level, phase, sent;
        const char *cur; /* this rank's partial result so far */
    } rd;
    int32_t bar_word; /* a barrier's one element when it runs eagerly */
    /* all-to-all: the sends and receives it is made of */
    struct rl_request **kids;
    int nkids;
    int internal; /* a collective's own message: the communicator frees it */
    struct rl_request *next;
};

struct rl_comm {
    int rank, nranks;
    rl_config_t cfg;
    int *order;
    rl_boot_t *boot;
    const rl_tp_ops_t *ops;
    rl_tp_t *tp;
    int nch;
    rl_chan_t ch[RL_MAX_CHANNELS];
    size_t chunk_bytes;
    size_t min_chunk_bytes;
    int depth;
    int local_ranks, oversubscribed;
    int64_t spin_ns; /* how long a wait busy-polls before yielding/sleeping */
    int64_t spin_cur; /* the adaptive spin now, 0..spin_ns (core/request.c's rl_wait) */
    int spin_fixed;   /* RINGLET_SPIN_US set: always spin_ns */
    uint64_t nevents; /* completions seen so far: waits nap only while none come */
    uint64_t next_seq;
    struct rl_request *head, *tail;
    rl_status_t failed;
    char errmsg[512];
    atomic_int abort_flag;
    int64_t next_boot_check;
    rl_regent_t *regs;
    int nregs;
    /* Partial results of reduce-scatter and reduce (sent on, never exposed
     * to peers), and the barrier's one-element buffer. */
    char *scratch;
    size_t scratch_len;
    rl_regent_t *scratch_ent, *bar_ent;
    rl_peer_t *peers; /* NULL when RINGLET_P2P is off */
    /* eager all-reduce (coll/rd.c): landing slots peers write, by step and
     * operation parity; what this rank sends is staged per step */
    char *land, *eager_tx;
    rl_tp_mr_t *land_mr, *eager_tx_mr;
    uint8_t land_full[16][2];
    int land_from[16][2];
    int eager_inflight;          /* writes not yet completed, all steps */
    uint8_t eager_tx_busy[16][2]; /* per step and parity: its staging is still being sent */
    struct rl_request *p2p_head, *p2p_tail;
    int group_depth;
    struct rl_request **group;
    int ngroup, group_cap;
    uint64_t reg_clock;
    char desc[128];
};

/* Record a failure once: every pending operation ends with st, and the
 * peers hear of it through the bootstrap channel. */
void rl_comm_fail(struct rl_comm *c, rl_status_t st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A completion error: fail with the failed rank's name if rank 0 reports
 * one within a short bound, else with the peer and the symptom. */
void rl_comm_transport_failure(struct rl_comm *c, int peer);
/* Drive completions and the running operation; never blocks. */
rl_status_t rl_comm_progress(struct rl_comm *c);

/* Registration cache (core/mem.c). */
rl_status_t rl_reg_acquire(struct rl_comm *c, const void *ptr, size_t len, unsigned access, rl_regent_t **out);
void rl_reg_release(struct rl_comm *c, rl_regent_t *e);
void rl_reg_cleanup(struct rl_comm *c);

/* Ring algorithms (coll/ring.c). */
void rl_ring_handle_imm(struct rl_comm *c, uint32_t imm);
void rl_ring_send_done(struct rl_comm *c, void *ctx, rl_status_t st);
/* Advance the head operation; returns nonzero when it finished. */
int rl_ring_advance(struct rl_comm *c, struct rl_request *r);
/* Why the operation is not finished, naming the peer it waits for. */
void rl_ring_describe_wait(struct rl_comm *c, struct rl_request *r, char *buf, size_t len);
void rl_ring_release(struct rl_comm *c, struct rl_request *r);
/* Point-to-point (coll/p2p.c). */
rl_status_t rl_p2p_connect(struct rl_comm *c, int64_t deadline, char *err, size_t len);
void rl_p2p_teardown(struct rl_comm *c);
/* A send or receive of count elements at buf in a matching space
 * (RL_P2P_USER/COLL), queued; progress does the rest. */
rl_status_t rl_p2p_new(struct rl_comm *c, int space, int is_send, const void *buf, size_t count, rl_dtype_t dtype,
                       int peer, struct rl_request **out);
/* The same with a tag: a send meets the earliest receive of its tag. */
rl_status_t rl_p2p_new_tag(struct rl_comm *c, int space, int is_send, const void *buf, size_t count,
                           rl_dtype_t dtype, int peer, uint32_t tag, struct rl_request **out);
/* Queue a send or receive of bytes at buf; progress does the rest. */
rl_status_t rl_p2p_post(struct rl_comm *c, struct rl_request *r);
void rl_p2p_progress(struct rl_comm *c);
void rl_p2p_handle_imm(struct rl_comm *c, uint32_t imm);
void rl_p2p_send_done(struct rl_comm *c, void *ctx, rl_status_t st);
int rl_p2p_busy(struct rl_comm *c);
void rl_p2p_unlink(struct rl_comm *c, struct rl_request *r);
void rl_p2p_describe_wait(struct rl_comm *c, struct rl_request *r, char *buf, size_t len);
/* Context values of p2p completions (ring ones are below 0x1000). */
#define RL_CTX_P2P_DATA 4
#define RL_CTX_P2P_CTS 5
#define RL_CTX_P2P_EAGER 6
static inline int rl_ctx_kind(void *ctx) { return (int)(((uintptr_t)ctx >> 8) & 0xf); }

/* An all-reduce with nothing to exchange (one rank or no elements): the
 * copy it still owes is made and it is finished; zero otherwise. */
int rl_allreduce_trivial(struct rl_comm *c, struct rl_request *r);
/* Algorithms an all-reduce can run with. */
enum { RL_ALGO_RING = 0, RL_ALGO_RHD = 1, RL_ALGO_RD = 2 };
/* Eager recursive-doubling all-reduce for small messages (coll/rd.c). */
int rl_rd_usable(const struct rl_comm *c, size_t bytes);
/* Landing slots and send staging, at connection set-up; *land_key is what
 * peers write to (zero when the eager path is off). */
rl_status_t rl_rd_setup(struct rl_comm *c, rl_rkey_t *land_key);
void rl_rd_teardown(struct rl_comm *c);
int rl_rd_advance(struct rl_comm *c, struct rl_request *r);
void rl_rd_handle_imm(struct rl_comm *c, int from, unsigned step, int parity);
/* An eager message for operation r that r does not run eagerly: the ranks
 * called different operations (fails the communicator with a mismatch). */
void rl_rd_check_foreign(struct rl_comm *c, const struct rl_request *r);
void rl_rd_describe_wait(struct rl_comm *c, struct rl_request *r, char *buf, size_t len);
/* Halving-doubling all-reduce (coll/rhd.c). */
int rl_rhd_usable(const struct rl_comm *c, size_t bytes);
int rl_rhd_advance(struct rl_comm *c, struct rl_request *r);
void rl_rhd_release(struct rl_comm *c, struct rl_request *r);
void rl_rhd_describe_wait(struct rl_comm *c, struct rl_request *r, char *buf, size_t len);
/* Grow the communicator's scratch buffer to at least len bytes. */
rl_status_t rl_ring_scratch(struct rl_comm *c, size_t len);

/* Free the scratch and barrier buffers (at destroy). */
void rl_ring_free_buffers(struct rl_comm *c);

#endif
