/*
 * Direct all-reduce (and barrier, broadcast, all-gather) through shared
 * memory, for a communicator whose ranks all run on one host.
 *
 * Memory: every rank owns one sealed memfd segment (core/shseg.c,
 * transport/shm/memfd.h) that only it can write; the others map it
 * read-only after checking the sender's uid and pid, the seals and the
 * size. It is handed over an abstract Unix socket with a random name
 * carried by the bootstrap, so nothing has a name in /dev/shm and nothing
 * outlives a killed rank. A
 * segment holds two slots (a header line and up to SMALL_CAP bytes), two
 * "slice ready" lines, two input chunks and two output chunks: all by the
 * parity of the step.
 *
 * Steps: every operation takes one step (small) or one per chunk (large)
 * of a count every rank keeps alike. A rank publishes step k by a release
 * store of k into the header of slot k % 2, after the header and the data;
 * readers load it with acquire and take the data only when it equals k.
 *  - Small (up to 4 KiB with 2 ranks, 16 KiB with more): each rank puts its data in its slot,
 *    waits for all the slots of step k and reduces them in rank order, so
 *    every rank computes bitwise the same result (floats too): one fan-in.
 *  - Large: chunk k goes into the rank's input chunk k % 2 (published by
 *    the slot header), all but the rank's own slice, which only the rank
 *    itself reads, from its send buffer; rank j reduces slice j of it from
 *    every rank's input, in rank order, into its output chunk and publishes it; then
 *    every rank copies each slice from its owner. The input of chunk k + 1
 *    is published right after slice k is, so copying out overlaps the
 *    peers' reductions.
 * Reuse: a rank publishes step k only after it finished reading every
 * buffer of step k - 1 (a large step's slices are read before the step
 * after the next is published), and it writes the buffers of parity k % 2
 * only after it saw every rank publish step k - 1 (inputs, headers) or k
 * (outputs). So with two buffers of each kind no rank overwrites what a
 * slower one still reads, and a peer's published step is always one of two
 * values: anything else is a protocol error naming the peer.
 *
 * In place (zero copy): a large all-reduce's first step is either chunk 0
 * (K_LARGE) or, from a rank whose send and receive buffers both lie in
 * rl_mem_alloc allocations, an offer without data (K_ZC: its slot holds the
 * allocations' ids and the offsets). Every rank reads every first step, so
 * all see the same: all offered -> zero copy; none -> the copying path goes
 * on from chunk 0; some -> every rank sends chunk 0 again at the next step
 * and copies. Zero copy takes two steps: rank j reduces slice j of the
 * whole vector from every rank's send buffer, where it lies mapped
 * read-only here, into its own receive buffer (in rank order, block by
 * block; in place its own input block is copied aside first when its sum
 * would overwrite it before it is added), publishes "slice ready", copies
 * every other slice from its owner's receive buffer, then publishes step
 * k + 1 and ends only when every rank has: until then a peer may still
 * read its buffers. In place, rank j writes slice q of its own buffer only
 * after rank q said its slice is ready, i.e. after q read slice q of every
 * input. A peer's ids and offsets are copied once and must lie inside the
 * length it announced for that allocation (else RL_ERR_PROTOCOL naming it).
 *
 * Validation: headers are copied once into locals and must match this
 * rank's own call (else RL_ERR_MISMATCH); lengths and offsets always come
 * from this rank's own call, never from a peer's segment.
 *
 * Failure: waits never block (rl_wait drives progress); a pidfd per peer is
 * polled every few milliseconds, and a peer whose process exited fails the
 * communicator with RL_ERR_PEER_FAILED naming it; a stopped peer meets the
 * communicator's deadline like any other.
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/comm.h"
#include "core/log.h"
#include "transport/shm/memfd.h"

#define DIRECT_MAGIC 0x52444c52u /* "RLDR" */
#define DIRECT_VERSION 1
#define MAX_LOCAL 64
#define LINE 64
#define HDR 32                     /* slot header; small data follows in the same line */
#define SMALL_CAP 16384u           /* bytes a slot holds */
/* Largest all-reduce by one fan-in: with 2 ranks the chunked path was
 * 10-17 % faster from 8 KiB, with 4 ranks the fan-in 20-45 % faster up to
 * 16 KiB (measured: see transport/shm/NOTES.md). */
#define SMALL_MAX(n) ((n) <= 2 ? 4096u : SMALL_CAP)
#define CHUNK ((size_t)256 << 10)  /* large: bytes per rank per step */
#define LIVENESS_NS 1000000LL


/* K_ZC: a large all-reduce's first step without data, its slot holding a
 * zc_desc_t; K_ZDONE: a zero-copy rank is done reading every peer's
 * buffers. */
enum { K_FIRST = 0 /* K_LARGE or K_ZC */, K_SMALL = 1, K_LARGE = 2, K_ZC = 3, K_ZDONE = 4 };

/* Slot header, as the owner writes it; readers copy it once. */
typedef struct {
    _Atomic uint64_t step; /* published last (release) */
    uint64_t seq;          /* the operation */
    uint64_t count;
    uint8_t coll, dtype, op, kind;
    uint32_t aux; /* large: chunk index; broadcast: root */
} slot_hdr_t;
_Static_assert(sizeof(slot_hdr_t) == HDR, "slot header is half a line");

/* Segment layout (offsets in a rank's segment). */
#define SLOT_STRIDE (((size_t)HDR + SMALL_CAP + LINE - 1) / LINE * LINE)
#define OFF_SLOT(p) ((size_t)(p) * SLOT_STRIDE)
#define OFF_OUTF(p) (2 * SLOT_STRIDE + (size_t)(p) * LINE)
#define OFF_IN(p) (((2 * SLOT_STRIDE + 2 * LINE + 4095) & ~(size_t)4095) + (size_t)(p) * CHUNK)
#define OFF_OUT(p) (OFF_IN(2) + (size_t)(p) * CHUNK)
#define SEG_LEN OFF_OUT(2)

/* Zero-copy: where a rank's buffers lie (its shared allocations, by id). */
typedef struct {
    uint64_t in_id, in_off, out_id, out_off;
} zc_desc_t;

#define ZC_BLOCK ((size_t)32 << 10) /* reduce this many bytes from every input at a time */

typedef struct {
    int n, me;
    int ok; /* every rank mapped every segment (agreed through the bootstrap) */
    rl_shseg_t shseg;
    uint8_t *seg[MAX_LOCAL]; /* by rank: mine writable, the others read-only */
    int pidfd[MAX_LOCAL];
    uint64_t step; /* last step started */
    unsigned idle;
    int64_t next_live;
    /* The running zero-copy all-reduce (one operation runs at a time):
     * every rank's descriptor, copied once from its slot, and what it
     * resolved to in this process. */
    zc_desc_t zdesc[MAX_LOCAL];
    const uint8_t *zin[MAX_LOCAL], *zout[MAX_LOCAL];
    uint64_t nzc_ops, ncopy_ops; /* large all-reduces in place and copied (info log at destroy) */
    uint8_t ztmp[ZC_BLOCK]; /* in place: my own input block, before the sum overwrites it */
} direct_t;

/* One operation. */
typedef struct {
    uint64_t step;    /* current step */
    uint64_t k, nk;   /* large: chunk, chunks */
    int phase;        /* PH_* */
    int next;         /* first rank not yet seen in this phase */
    uint64_t done;    /* large copy-out: bit per rank copied */
    size_t bytes;     /* per rank */
    int zc_self;      /* large: my buffers lie in shared allocations (my first step says so) */
    int nzc;          /* large, first step: ranks that said so */
} op_t;

/* PH_FIRST: a large all-reduce's first step, where every rank says whether
 * it offers its buffers in place; PH_Z*: the zero-copy path. */
enum { PH_GATHER, PH_SLICES, PH_DONE, PH_FIRST, PH_ZREDUCE, PH_ZCOPY, PH_ZDONE };

static direct_t *state(const struct rl_comm *c) { return RL_ALGO_STATE(c, &rl_algo_direct); }
static op_t *O(struct rl_request *r) { return RL_PRIV(r, op_t); }

static slot_hdr_t *slot(direct_t *d, int rank, uint64_t step) { return (slot_hdr_t *)(d->seg[rank] + OFF_SLOT(step & 1)); }
static _Atomic uint64_t *outf(direct_t *d, int rank, uint64_t step)
{
    return (_Atomic uint64_t *)(d->seg[rank] + OFF_OUTF(step & 1));
}
static uint8_t *in_chunk(direct_t *d, int rank, uint64_t step) { return d->seg[rank] + OFF_IN(step & 1); }
static uint8_t *out_chunk(direct_t *d, int rank, uint64_t step) { return d->seg[rank] + OFF_OUT(step & 1); }

/* ------------------------------------------------------------ selection */

static int possible(const struct rl_comm *c) { return c->nranks >= 2 && c->nranks <= MAX_LOCAL && c->nhosts == 1; }

static size_t call_bytes(const rl_call_t *call) { return call->coll == RL_COLL_BARRIER ? 0 : call->bytes; }

/* Usable when set-up agreed on every rank; a communicator without a
 * bootstrap is ringlet-info's model of one host, which can. */
static int usable(const struct rl_comm *c, const rl_call_t *call)
{
    const direct_t *d = state(c);
    if (!possible(c) || (d ? !d->ok : c->boot != NULL))
        return 0;
    if (call->coll == RL_COLL_ALL_REDUCE || call->coll == RL_COLL_BARRIER)
        return 1;
    if (call->coll == RL_COLL_BROADCAST)
        return call_bytes(call) <= SMALL_CAP;
    if (call->coll == RL_COLL_ALL_GATHER)
        return call_bytes(call) <= SMALL_CAP;
    return 0;
}

/* Small: one publication, then L slots read and L - 1 reductions. Large:
 * a copy in of the peers' L - 1 slices, the slice reduced from L inputs, a
 * copy out, two publications per chunk. A pass over memory is modelled as half a
 * transport byte (a message through the shm transport is two copies: in
 * and out of its ring); the model has no parameter of its own for it. */
static double cost(const struct rl_comm *c, const rl_call_t *call, const rl_model_t *m)
{
    double L = c->nranks, n = (double)call_bytes(call), a = m->alpha_us, copy = m->beta_us_per_b / 2,
           g = m->gamma_us_per_b;
    if (call->coll != RL_COLL_ALL_REDUCE || n <= SMALL_MAX(c->nranks))
        return a + L * n * copy + (L - 1) * n * g;
    double chunks = (double)((call_bytes(call) + CHUNK - 1) / CHUNK);
    return 2 * chunks * a + (2 + (L - 1) / L) * n * copy + (L - 1) / L * n * g;
}

/* ------------------------------------------------------------ set-up */

static void watch_peers(struct rl_comm *c, direct_t *d)
{
    for (int q = 0; q < c->nranks; q++) {
        d->pidfd[q] = -1;
        if (q != c->rank)
            d->pidfd[q] = (int)syscall(SYS_pidfd_open, (pid_t)d->shseg.peer[q].pid, 0);
        if (q != c->rank && d->pidfd[q] < 0)
            RL_DEBUG("direct: pidfd_open(%d): %s; rank %d's liveness rests on the bootstrap",
                     (int)d->shseg.peer[q].pid, strerror(errno), q);
    }
}

static void teardown(struct rl_comm *c);

static rl_status_t setup(struct rl_comm *c, int64_t dl, char *err, size_t len)
{
    if (!possible(c))
        return RL_OK;
    direct_t *d = calloc(1, sizeof(*d));
    if (!d)
        return RL_ERR_NO_MEMORY;
    RL_ALGO_STATE(c, &rl_algo_direct) = d;
    d->n = c->nranks;
    d->me = c->rank;
    for (int q = 0; q < MAX_LOCAL; q++)
        d->pidfd[q] = -1;
    /* A rank that cannot make its segment fails creation (out of memory or
     * fds) on every rank; peers that cannot reach each other (another
     * network namespace, another build) only turn the algorithm off, on
     * every rank alike (segment 0: rl_mem_alloc's count from 1). */
    int made = !rl_shseg_open("ringlet-direct", SEG_LEN, &d->shseg);
    if (!made)
        d->shseg = (rl_shseg_t){.fd = -1, .len = SEG_LEN};
    rl_status_t st = rl_shseg_share(c, &d->shseg, 0, made, dl, err, len);
    int ok = st == RL_OK && d->shseg.shared;
    for (int q = 0; ok && q < c->nranks; q++) /* announced lengths: alike on every rank */
        ok = d->shseg.peer[q].map_len == SEG_LEN && d->shseg.peer[q].base;
    for (int q = 0; ok && q < c->nranks; q++)
        d->seg[q] = (uint8_t *)d->shseg.peer[q].base; /* written only where q == me */
    if (ok)
        watch_peers(c, d);
    d->ok = ok;
    if (ok && c->rank == 0)
        RL_INFO("direct: %d ranks share %zu KiB segments (fan-in up to %u B, %zu KiB chunks above)", c->nranks,
                (size_t)SEG_LEN >> 10, SMALL_MAX(c->nranks), CHUNK >> 10);
    return st;
}

static void teardown(struct rl_comm *c)
{
    direct_t *d = state(c);
    if (!d)
        return;
    if (d->ok && (d->nzc_ops || d->ncopy_ops))
        RL_INFO("rank %d: direct: %llu large all-reduces read in place, %llu copied", c->rank,
                (unsigned long long)d->nzc_ops, (unsigned long long)d->ncopy_ops);
    for (int q = 0; q < d->n; q++)
        if (d->pidfd[q] >= 0)
            close(d->pidfd[q]);
    rl_shseg_close(c, &d->shseg);
    free(d);
    RL_ALGO_STATE(c, &rl_algo_direct) = NULL;
}

/* ------------------------------------------------------------ liveness */

/* Rank q's process is gone. It may have exited after another rank failed
 * (a survivor that destroyed its communicator): give the bootstrap's
 * report of the first failure a moment (bounded) to arrive, so that every
 * survivor names the same rank; else name q. */
static void peer_exited(struct rl_comm *c, int q, const struct rl_request *r)
{
    char msg[256];
    int64_t until = rl_now_ns() + 300000000LL;
    for (;;) {
        rl_status_t st = rl_boot_check(c->boot, msg, sizeof(msg));
        if (st != RL_OK) {
            rl_comm_fail(c, st, "rank %d: %s (seen here as: rank %d's process exited)", c->rank, msg, q);
            return;
        }
        if (rl_now_ns() >= until)
            break;
        usleep(2000);
    }
    rl_comm_fail(c, RL_ERR_PEER_FAILED, "rank %d: rank %d failed: its process exited during %s %llu (direct shared memory)",
                 c->rank, q, rl_coll_name(r->coll), (unsigned long long)r->seq);
}

/* Every few milliseconds of waiting: a peer whose process exited fails
 * the communicator, naming it. */
static void check_peers(struct rl_comm *c, direct_t *d, struct rl_request *r)
{
    if ((++d->idle & 31) != 0)
        return;
    int64_t now = rl_coarse_ns();
    if (now < d->next_live)
        return;
    d->next_live = now + LIVENESS_NS;
    struct pollfd pf[MAX_LOCAL];
    for (int q = 0; q < d->n; q++)
        pf[q] = (struct pollfd){.fd = d->pidfd[q], .events = POLLIN};
    if (poll(pf, (nfds_t)d->n, 0) <= 0)
        return;
    for (int q = 0; q < d->n; q++)
        if (pf[q].revents & (POLLIN | POLLHUP | POLLERR)) {
            peer_exited(c, q, r);
            return;
        }
}

/* ------------------------------------------------------------ data path */

static uint64_t prior(uint64_t step) { return step > 2 ? step - 2 : 0; }

static void publish(direct_t *d, const struct rl_request *r, uint64_t step, int kind, uint32_t aux)
{
    slot_hdr_t *h = slot(d, d->me, step);
    h->seq = r->seq;
    h->count = r->count;
    h->coll = (uint8_t)r->coll;
    h->dtype = (uint8_t)r->dtype;
    h->op = (uint8_t)r->op;
    h->kind = (uint8_t)kind;
    h->aux = aux;
    atomic_store_explicit(&h->step, step, memory_order_release);
}

/* 1: rank q published this step and its header matches this call; 0: not
 * yet; -1: the communicator failed. */
static int peer_ready(struct rl_comm *c, direct_t *d, struct rl_request *r, int q, uint64_t step, int kind, uint32_t aux)
{
    slot_hdr_t *s = slot(d, q, step);
    uint64_t v = atomic_load_explicit(&s->step, memory_order_acquire);
    if (v == prior(step))
        return 0;
    if (v != step) {
        rl_comm_fail(c, RL_ERR_PROTOCOL, "rank %d: rank %d published step %llu in shared memory where %llu or %llu "
                     "belongs (%s %llu)", c->rank, q, (unsigned long long)v, (unsigned long long)prior(step),
                     (unsigned long long)step, rl_coll_name(r->coll), (unsigned long long)r->seq);
        return -1;
    }
    slot_hdr_t h;
    memcpy((char *)&h + sizeof(h.step), (const char *)s + sizeof(h.step), sizeof(h) - sizeof(h.step));
    /* a large all-reduce's first step: its chunk 0, or an offer of its
     * buffers in place (the descriptor, copied once) */
    int first_ok = kind == K_FIRST && (h.kind == K_LARGE || h.kind == K_ZC);
    if (h.seq != r->seq || h.coll != (uint8_t)r->coll || h.count != r->count || h.dtype != (uint8_t)r->dtype ||
        h.op != (uint8_t)r->op || (h.kind != kind && !first_ok) || h.aux != aux) {
        rl_ctrl_t theirs = {.seq = h.seq, .coll = h.coll, .dtype = h.dtype, .op = h.op, .rank = q,
                            .root = r->coll == RL_COLL_BROADCAST ? (int32_t)h.aux : 0, .count = h.count};
        if (h.seq == r->seq && h.coll == (uint8_t)r->coll && h.count == r->count && h.dtype == (uint8_t)r->dtype &&
            h.op == (uint8_t)r->op)
            rl_comm_fail(c, RL_ERR_PROTOCOL, "rank %d: rank %d's shared-memory header is malformed (kind %u, aux %u)",
                         c->rank, q, h.kind, h.aux);
        else
            rl_fail_mismatch(c, r, &theirs);
        return -1;
    }
    if (first_ok && h.kind == K_ZC) {
        memcpy(&d->zdesc[q], (const uint8_t *)s + HDR, sizeof(zc_desc_t));
        O(r)->nzc++;
    }
    return 1;
}

/* Scan the ranks from o->next; 1 when all are ready. */
static int all_ready(struct rl_comm *c, direct_t *d, struct rl_request *r, int kind, uint32_t aux)
{
    op_t *o = O(r);
    while (o->next < d->n) {
        int st = peer_ready(c, d, r, o->next, o->step, kind, aux);
        if (st <= 0)
            return 0;
        o->next++;
        c->nevents++; /* data moves: rl_wait keeps spinning rather than napping */
    }
    return 1;
}

static const uint8_t *small_data(direct_t *d, int q, uint64_t step) { return (const uint8_t *)slot(d, q, step) + HDR; }

static void small_finish(struct rl_comm *c, direct_t *d, struct rl_request *r)
{
    op_t *o = O(r);
    size_t n = o->bytes;
    switch (r->coll) {
    case RL_COLL_ALL_REDUCE:
        if (!n)
            break;
        r->fn(r->out, small_data(d, 0, o->step), small_data(d, 1, o->step), r->count);
        for (int q = 2; q < d->n; q++)
            r->fn(r->out, r->out, small_data(d, q, o->step), r->count);
        if (r->op == RL_AVG)
            rl_reduce_scale(r->out, r->count, r->dtype, c->nranks);
        break;
    case RL_COLL_BROADCAST:
        if (n && c->rank != r->root)
            memcpy(r->out, small_data(d, r->root, o->step), n);
        else if (n && r->out != r->in)
            memmove(r->out, r->in, n);
        break;
    case RL_COLL_ALL_GATHER:
        for (int q = 0; q < d->n && n; q++)
            memcpy(r->out + (size_t)q * n, small_data(d, q, o->step), n);
        break;
    default: break;
    }
}

/* Large: where slice q of chunk k lies (in bytes from the chunk's start);
 * slices are whole cache lines but the last. */
static void slice_of(size_t cb, int n, int q, size_t *lo, size_t *len)
{
    uint64_t l0, ll;
    rl_split((cb + LINE - 1) / LINE, (uint64_t)n, (uint64_t)q, &l0, &ll);
    *lo = (size_t)l0 * LINE;
    size_t hi = (size_t)(l0 + ll) * LINE;
    if (hi > cb)
        hi = cb;
    *len = hi > *lo ? hi - *lo : 0;
}

static void slice(const struct rl_request *r, int n, uint64_t k, int q, size_t *lo, size_t *len)
{
    size_t total = r->count * r->esize, off = (size_t)k * CHUNK;
    slice_of(total - off < CHUNK ? total - off : CHUNK, n, q, lo, len);
}

static size_t chunk_len(const struct rl_request *r, uint64_t k)
{
    size_t total = r->count * r->esize, off = (size_t)k * CHUNK;
    return total - off < CHUNK ? total - off : CHUNK;
}

/* Only the peers read my input chunk, each its own slice: my slice stays
 * in my send buffer, where reduce_slice reads it (1/L less copying in). */
static void put_chunk(direct_t *d, struct rl_request *r, uint64_t k, uint64_t step)
{
    size_t lo, len, cl = chunk_len(r, k);
    slice(r, d->n, k, d->me, &lo, &len);
    if (lo > cl) /* a short last chunk: my (empty) slice starts past its end */
        lo = cl;
    uint8_t *dst = in_chunk(d, d->me, step);
    const uint8_t *src = (const uint8_t *)r->in + (size_t)k * CHUNK;
    memcpy(dst, src, lo);
    memcpy(dst + lo + len, src + lo + len, cl - lo - len);
    publish(d, r, step, K_LARGE, (uint32_t)k);
}

/* My slice of the current chunk from every rank's input, in rank order. */
static void reduce_slice(struct rl_comm *c, direct_t *d, struct rl_request *r)
{
    op_t *o = O(r);
    size_t lo, len;
    slice(r, d->n, o->k, d->me, &lo, &len);
    uint8_t *dst = out_chunk(d, d->me, o->step) + lo;
    const uint8_t *mine = (const uint8_t *)r->in + (size_t)o->k * CHUNK + lo; /* in place too: my slice is copied out after this */
    size_t cnt = len / r->esize;
    if (cnt) {
        r->fn(dst, d->me == 0 ? mine : in_chunk(d, 0, o->step) + lo, d->me == 1 ? mine : in_chunk(d, 1, o->step) + lo,
              cnt);
        for (int q = 2; q < d->n; q++)
            r->fn(dst, dst, q == d->me ? mine : in_chunk(d, q, o->step) + lo, cnt);
        if (r->op == RL_AVG)
            rl_reduce_scale(dst, cnt, r->dtype, c->nranks);
    }
    atomic_store_explicit(outf(d, d->me, o->step), o->step, memory_order_release);
}

/* Copy out every slice whose owner published it (from its segment's
 * output chunk, or in zero copy from its receive buffer: the whole vector
 * at once); 1 when all are here. */
static int copy_slices(struct rl_comm *c, direct_t *d, struct rl_request *r)
{
    op_t *o = O(r);
    uint64_t all = d->n == 64 ? ~0ull : (1ull << d->n) - 1;
    for (int q = 0; q < d->n && o->done != all; q++) {
        if (o->done >> q & 1)
            continue;
        /* only large steps publish slices: an older value is "not yet" */
        uint64_t v = atomic_load_explicit(outf(d, q, o->step), memory_order_acquire);
        if (v < o->step)
            continue;
        if (v != o->step) {
            rl_comm_fail(c, RL_ERR_PROTOCOL, "rank %d: rank %d published slice step %llu where %llu belongs",
                         c->rank, q, (unsigned long long)v, (unsigned long long)o->step);
            return 0;
        }
        size_t lo, len;
        if (o->phase == PH_ZCOPY) {
            slice_of(r->count * r->esize, d->n, q, &lo, &len);
            memcpy(r->out + lo, d->zout[q] + lo, len);
        } else {
            slice(r, d->n, o->k, q, &lo, &len);
            memcpy(r->out + (size_t)o->k * CHUNK + lo, out_chunk(d, q, o->step) + lo, len);
        }
        o->done |= 1ull << q;
        c->nevents++;
    }
    return o->done == all;
}

/* ------------------------------------------------------------ zero copy */

/* Whether my buffers of r lie in shared allocations; the descriptor that
 * tells the peers where. */
static int zc_mine(struct rl_comm *c, const struct rl_request *r, zc_desc_t *z)
{
    size_t n = r->count * r->esize, ioff, ooff;
    const rl_shseg_t *in = rl_shalloc_find(c, r->in, n, &ioff), *out = in ? rl_shalloc_find(c, r->out, n, &ooff) : NULL;
    if (!out)
        return 0;
    *z = (zc_desc_t){.in_id = in->id, .in_off = ioff, .out_id = out->id, .out_off = ooff};
    return 1;
}

/* Where rank q's bytes [off, off + n) of its allocation id lie here, or
 * NULL if they do not lie inside what q announced for it. */
static const uint8_t *zc_peer(struct rl_comm *c, int q, uint64_t id, uint64_t off, size_t n)
{
    const rl_shseg_t *a = rl_shalloc_by_id(c, id);
    if (!a || !a->peer[q].base || n > a->peer[q].len || off > a->peer[q].len - n)
        return NULL;
    return a->peer[q].base + off;
}

/* Every rank offered its buffers: resolve the peers' descriptors (copied
 * once at their first step) against what they announced at allocation. */
static int zc_resolve(struct rl_comm *c, direct_t *d, struct rl_request *r)
{
    size_t n = r->count * r->esize;
    for (int q = 0; q < d->n; q++) {
        if (q == d->me) {
            d->zin[q] = (const uint8_t *)r->in;
            d->zout[q] = (const uint8_t *)r->out;
            continue;
        }
        const zc_desc_t *z = &d->zdesc[q];
        d->zin[q] = zc_peer(c, q, z->in_id, z->in_off, n);
        d->zout[q] = zc_peer(c, q, z->out_id, z->out_off, n);
        if (!d->zin[q] || !d->zout[q]) {
            rl_comm_fail(c, RL_ERR_PROTOCOL, "rank %d: rank %d offered buffers outside its shared allocations "
                         "(allocation %llu + %llu, allocation %llu + %llu, %zu bytes) for %s %llu", c->rank, q,
                         (unsigned long long)z->in_id, (unsigned long long)z->in_off,
                         (unsigned long long)z->out_id, (unsigned long long)z->out_off, n,
                         rl_coll_name(r->coll), (unsigned long long)r->seq);
            return -1;
        }
    }
    return 0;
}

/* My slice of the whole vector from every rank's send buffer in place, in
 * rank order, into my receive buffer; block by block, so that in place my
 * own input is read before the partial sum overwrites it. */
static void zc_reduce(struct rl_comm *c, direct_t *d, struct rl_request *r)
{
    size_t lo, len;
    slice_of(r->count * r->esize, d->n, d->me, &lo, &len);
    uint8_t *dst = (uint8_t *)r->out + lo;
    int inplace = r->in == r->out;
    for (size_t b = 0; b < len; b += ZC_BLOCK) {
        size_t bl = len - b < ZC_BLOCK ? len - b : ZC_BLOCK, cnt = bl / r->esize;
        const uint8_t *mine = d->zin[d->me] + lo + b;
        if (inplace && d->me >= 2) {
            memcpy(d->ztmp, mine, bl);
            mine = d->ztmp;
        }
        const uint8_t *s0 = d->me == 0 ? mine : d->zin[0] + lo + b, *s1 = d->me == 1 ? mine : d->zin[1] + lo + b;
        r->fn(dst + b, s0, s1, cnt);
        for (int q = 2; q < d->n; q++)
            r->fn(dst + b, dst + b, q == d->me ? mine : d->zin[q] + lo + b, cnt);
    }
    if (len && r->op == RL_AVG)
        rl_reduce_scale(dst, len / r->esize, r->dtype, c->nranks);
}

/* ------------------------------------------------------------ large steps */

/* Every rank's chunk k is in: reduce my slice, send the next chunk. */
static void gathered(direct_t *d, struct rl_comm *c, struct rl_request *r)
{
    op_t *o = O(r);
    reduce_slice(c, d, r);
    /* the next chunk's input may go now: every rank is past the step that
     * last read that buffer (it published this one) */
    if (o->k + 1 < o->nk)
        put_chunk(d, r, o->k + 1, o->step + 1);
    o->phase = PH_SLICES;
    o->done = 0;
}

/* Every rank's first step is in: all offered their buffers (zero copy),
 * none did (chunk 0 is there: go on copying), or some did (every rank
 * sends chunk 0 again one step later, and copies). Every rank sees the same
 * headers, so all take the same path. */
static int first_step(struct rl_comm *c, direct_t *d, struct rl_request *r)
{
    op_t *o = O(r);
    if (!all_ready(c, d, r, K_FIRST, 0))
        return 0;
    if (o->nzc == d->n) {
        if (zc_resolve(c, d, r))
            return 0;
        d->step = o->step + 1; /* the offer, then the end */
        d->nzc_ops++;
        o->phase = PH_ZREDUCE;
        return 1;
    }
    d->ncopy_ops++;
    if (o->nzc == 0) {
        gathered(d, c, r);
    } else {
        o->step++;
        d->step++;
        put_chunk(d, r, 0, o->step);
        o->next = 0;
        o->phase = PH_GATHER;
    }
    return 1;
}

static int zc_step(struct rl_comm *c, direct_t *d, struct rl_request *r)
{
    op_t *o = O(r);
    switch (o->phase) {
    case PH_ZREDUCE:
        zc_reduce(c, d, r);
        atomic_store_explicit(outf(d, d->me, o->step), o->step, memory_order_release);
        o->done = 0;
        o->phase = PH_ZCOPY;
        return 1;
    case PH_ZCOPY:
        if (!copy_slices(c, d, r))
            return 0;
        /* Done reading every peer's buffers: say so, and end only when every
         * peer has said so (until then a peer may still read mine). */
        o->step++;
        publish(d, r, o->step, K_ZDONE, 0);
        o->next = 0;
        o->phase = PH_ZDONE;
        return 1;
    default:
        if (!all_ready(c, d, r, K_ZDONE, 0))
            return 0;
        o->phase = PH_DONE;
        return 1;
    }
}

/* One move of a large operation; nonzero if it moved. */
static int large_step(struct rl_comm *c, direct_t *d, struct rl_request *r)
{
    op_t *o = O(r);
    if (o->phase == PH_FIRST)
        return first_step(c, d, r);
    if (o->phase >= PH_ZREDUCE)
        return zc_step(c, d, r);
    if (o->phase == PH_GATHER) {
        if (!all_ready(c, d, r, K_LARGE, (uint32_t)o->k))
            return 0;
        gathered(d, c, r);
        return 1;
    }
    if (!copy_slices(c, d, r))
        return 0;
    if (++o->k == o->nk) {
        o->phase = PH_DONE;
        return 1;
    }
    o->step++;
    o->next = 0;
    o->phase = PH_GATHER;
    return 1;
}

static rl_status_t start(struct rl_comm *c, struct rl_request *r)
{
    if (c->nranks == 1 && rl_coll_trivial(c, r))
        return RL_OK;
    direct_t *d = state(c);
    op_t *o = O(r);
    *o = (op_t){0};
    o->bytes = r->coll == RL_COLL_BARRIER ? 0 : r->count * r->esize;
    if (r->coll != RL_COLL_ALL_REDUCE || o->bytes <= SMALL_MAX(c->nranks)) {
        o->step = ++d->step;
        uint8_t *dst = (uint8_t *)slot(d, d->me, o->step) + HDR;
        if (o->bytes && (r->coll != RL_COLL_BROADCAST || c->rank == r->root))
            memcpy(dst, r->in, o->bytes);
        publish(d, r, o->step, K_SMALL, r->coll == RL_COLL_BROADCAST ? (uint32_t)r->root : 0);
        o->phase = PH_GATHER;
        return RL_INPROGRESS;
    }
    /* d->step as if copying; the first step may change it (first_step) */
    o->nk = (o->bytes + CHUNK - 1) / CHUNK;
    o->step = d->step + 1;
    d->step += o->nk;
    zc_desc_t z;
    if ((o->zc_self = zc_mine(c, r, &z))) {
        memcpy((uint8_t *)slot(d, d->me, o->step) + HDR, &z, sizeof(z));
        publish(d, r, o->step, K_ZC, 0);
    } else {
        put_chunk(d, r, 0, o->step);
    }
    o->phase = PH_FIRST;
    return RL_INPROGRESS;
}

static int is_small(const struct rl_request *r) { return O((struct rl_request *)r)->nk == 0; }

static int progress(struct rl_comm *c, struct rl_request *r)
{
    direct_t *d = state(c);
    op_t *o = O(r);
    if (is_small(r)) {
        if (o->phase == PH_GATHER && all_ready(c, d, r, K_SMALL, r->coll == RL_COLL_BROADCAST ? (uint32_t)r->root : 0)) {
            small_finish(c, d, r);
            o->phase = PH_DONE;
        }
    } else {
        while (c->failed == RL_OK && o->phase != PH_DONE && large_step(c, d, r))
            ;
    }
    if (c->failed != RL_OK)
        return 1;
    if (o->phase == PH_DONE) {
        r->status = RL_OK;
        return 1;
    }
    check_peers(c, d, r);
    return c->failed != RL_OK;
}

static void release(struct rl_comm *c, struct rl_request *r) { (void)c, (void)r; }

/* A peer published its next step for operation r, which runs by another
 * algorithm here: the ranks called different operations. */
static void foreign(struct rl_comm *c, const struct rl_request *r)
{
    direct_t *d = state(c);
    if (!d || !d->ok || !r || r->algo == &rl_algo_direct)
        return;
    uint64_t next = d->step + 1;
    for (int q = 0; q < d->n && c->failed == RL_OK; q++) {
        slot_hdr_t *s = slot(d, q, next);
        if (q == d->me || atomic_load_explicit(&s->step, memory_order_acquire) != next)
            continue;
        slot_hdr_t h;
        memcpy((char *)&h + sizeof(h.step), (const char *)s + sizeof(h.step), sizeof(h) - sizeof(h.step));
        if (h.seq == r->seq) {
            rl_ctrl_t theirs = {.seq = h.seq, .coll = h.coll, .dtype = h.dtype, .op = h.op, .rank = q,
                                .root = h.coll == RL_COLL_BROADCAST ? (int32_t)h.aux : 0, .count = h.count};
            rl_fail_mismatch(c, r, &theirs);
        }
    }
}

/* Another algorithm's operation at the head may be a peer's direct one. */
static void comm_progress(struct rl_comm *c)
{
    if (c->head && c->head->started && c->head->algo != &rl_algo_direct)
        foreign(c, c->head);
}

static void describe_wait(struct rl_comm *c, struct rl_request *r, char *buf, size_t len)
{
    direct_t *d = state(c);
    op_t *o = O(r);
    const char *name = rl_coll_name(r->coll);
    unsigned long long seq = (unsigned long long)r->seq;
    if (o->phase == PH_GATHER || o->phase == PH_FIRST || o->phase == PH_ZDONE)
        snprintf(buf, len, "%s %llu (direct) waits for rank %d's %s in shared memory (step %llu)", name, seq,
                 o->next < d->n ? o->next : d->n - 1, o->phase == PH_ZDONE ? "end of reading" : "data",
                 (unsigned long long)o->step);
    else {
        int q = 0;
        while (q < d->n - 1 && (o->done >> q & 1))
            q++;
        snprintf(buf, len, "%s %llu (direct) waits for rank %d's reduced slice (step %llu)", name, seq, q,
                 (unsigned long long)o->step);
    }
}

static void describe_comm(struct rl_comm *c, char *buf, size_t len)
{
    direct_t *d = state(c);
    snprintf(buf, len, "direct: %s", d && d->ok ? "shared segments mapped" : "off");
}

const rl_algo_t rl_algo_direct = {
    .id = RL_ALGO_ID_direct,
    .name = "direct",
    .desc = "one host: shared-memory fan-in of cache-line slots (small), reduce 1/L from every rank's segment "
            "then copy out (large)",
    .colls = RL_COLL_BIT(RL_COLL_ALL_REDUCE) | RL_COLL_BIT(RL_COLL_BARRIER) | RL_COLL_BIT(RL_COLL_BROADCAST) |
             RL_COLL_BIT(RL_COLL_ALL_GATHER),
    .state_size = sizeof(op_t),
    .comm_setup = setup,
    .comm_teardown = teardown,
    .usable = usable,
    .cost = cost,
    .start = start,
    .progress = progress,
    .release = release,
    .describe_wait = describe_wait,
    .foreign = foreign,
    .comm_progress = comm_progress,
    .describe_comm = describe_comm,
    .self_driven = 1,
};
