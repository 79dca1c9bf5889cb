/*
 * Direct all-reduce (and barrier, broadcast, all-gather) through shared
 * memory, for a communicator whose ranks all run on one host.
 *
 * Memory: every rank owns one sealed memfd segment (transport/shm/memfd.h)
 * that only it can write; the others map it read-only after checking the
 * sender's uid and pid, the seals and the size. It is handed over an
 * abstract Unix socket with a random name carried by the bootstrap, so
 * nothing has a name in /dev/shm and nothing outlives a killed rank. A
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
 *    the slot header); rank j reduces slice j of it from every rank's
 *    input, in rank order, into its output chunk and publishes it; then
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


enum { K_SMALL = 1, K_LARGE = 2 };

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

/* What each rank publishes through the bootstrap. */
typedef struct {
    uint32_t magic, version;
    int32_t rank, pid;
    uint64_t seg_len;
    uint8_t token[RL_MEMFD_TOKEN];
    uint8_t boot_id[16];
} blob_t;

/* What travels with the fd. */
typedef struct {
    uint32_t magic, version;
    int32_t from, to;
} fdmsg_t;

typedef struct {
    int n, me;
    int ok; /* every rank mapped every segment (agreed through the bootstrap) */
    uint8_t *seg[MAX_LOCAL]; /* by rank: mine writable, the others read-only */
    int pidfd[MAX_LOCAL];
    uint64_t step; /* last step started */
    unsigned idle;
    int64_t next_live;
} direct_t;

/* One operation. */
typedef struct {
    uint64_t step;    /* current step */
    uint64_t k, nk;   /* large: chunk, chunks */
    int phase;        /* PH_* */
    int next;         /* first rank not yet seen in this phase */
    uint64_t done;    /* large copy-out: bit per rank copied */
    size_t bytes;     /* per rank */
} op_t;

enum { PH_GATHER, PH_SLICES, PH_DONE };

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
 * a copy in, the slice reduced from L inputs, a copy out, two
 * publications per chunk. A pass over memory is modelled as half a
 * transport byte (a message through the shm transport is two copies: in
 * and out of its ring); the model has no parameter of its own for it. */
static double cost(const struct rl_comm *c, const rl_call_t *call, const rl_model_t *m)
{
    double L = c->nranks, n = (double)call_bytes(call), a = m->alpha_us, copy = m->beta_us_per_b / 2,
           g = m->gamma_us_per_b;
    if (call->coll != RL_COLL_ALL_REDUCE || n <= SMALL_MAX(c->nranks))
        return a + L * n * copy + (L - 1) * n * g;
    double chunks = (double)((call_bytes(call) + CHUNK - 1) / CHUNK);
    return 2 * chunks * a + 3 * n * copy + (L - 1) / L * n * g;
}

/* ------------------------------------------------------------ set-up */

static int self_blob(direct_t *d, blob_t *b, int *lfd, int *memfd, char *err, size_t len, int rank)
{
    void *p;
    if (rl_memfd_create("ringlet-direct", SEG_LEN, memfd, &p)) {
        snprintf(err, len, "rank %d: direct shared memory: memfd of %zu bytes: %s", rank, (size_t)SEG_LEN,
                 strerror(errno));
        return -1;
    }
    d->seg[rank] = p;
    *b = (blob_t){.magic = DIRECT_MAGIC, .version = DIRECT_VERSION, .rank = rank, .pid = (int32_t)getpid(),
                  .seg_len = SEG_LEN};
    rl_memfd_boot_id(b->boot_id);
    if ((*lfd = rl_memfd_listen(b->token)) < 0) {
        snprintf(err, len, "rank %d: direct shared memory: abstract socket: %s", rank, strerror(errno));
        return -1;
    }
    return 0;
}

/* Whether every peer's record is sane and of this host and build. */
static int blobs_ok(const struct rl_comm *c, const blob_t *all)
{
    const blob_t *me = &all[c->rank];
    for (int q = 0; q < c->nranks; q++) {
        const blob_t *b = &all[q];
        if (b->magic != DIRECT_MAGIC || b->version != DIRECT_VERSION || b->rank != q || b->pid <= 0 ||
            b->seg_len != SEG_LEN || memcmp(b->boot_id, me->boot_id, sizeof(b->boot_id))) {
            RL_INFO("direct: rank %d: rank %d's shared-memory record does not match (another build or kernel): "
                    "direct collectives off",
                    c->rank, q);
            return 0;
        }
    }
    return 1;
}

/* Queue my segment at every peer's socket; 0 when all went. */
static int send_all(const struct rl_comm *c, const blob_t *all, int memfd, int64_t dl)
{
    for (int q = 0; q < c->nranks; q++) {
        if (q == c->rank)
            continue;
        fdmsg_t m = {.magic = DIRECT_MAGIC, .version = DIRECT_VERSION, .from = c->rank, .to = q};
        int r;
        while ((r = rl_memfd_send(all[q].token, &m, sizeof(m), memfd)) == 1 && rl_now_ns() < dl)
            usleep(200);
        if (r) {
            RL_INFO("direct: rank %d: rank %d's socket is unreachable (%s): direct collectives off", c->rank, q,
                    r < 0 ? strerror(errno) : "full");
            return -1;
        }
    }
    return 0;
}

/* Map one received segment after checking who sent it and what it is. */
static int map_peer(struct rl_comm *c, direct_t *d, const blob_t *all, const fdmsg_t *m, int fd, pid_t pid)
{
    const char *why = NULL;
    if (m->magic != DIRECT_MAGIC || m->version != DIRECT_VERSION || m->to != c->rank || m->from < 0 ||
        m->from >= c->nranks || m->from == c->rank)
        why = "a malformed message";
    else if (d->seg[m->from])
        why = "a second segment";
    else if (pid != all[m->from].pid)
        why = "a segment from another process than the one it announced";
    else
        why = rl_memfd_check(fd, SEG_LEN);
    void *p = why ? MAP_FAILED : mmap(NULL, SEG_LEN, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        RL_WARN("direct: rank %d: refused %s (pid %d)", c->rank, why ? why : strerror(errno), (int)pid);
        return -1;
    }
    d->seg[m->from] = p;
    return 0;
}

/* Take the n - 1 segments the peers queued (they were all sent before the
 * bootstrap round that precedes this, so they are there). */
static int recv_all(struct rl_comm *c, direct_t *d, const blob_t *all, int lfd, int64_t dl)
{
    int got = 0;
    while (got < c->nranks - 1) {
        int s = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (s < 0) {
            if (rl_now_ns() > dl)
                return -1;
            usleep(100);
            continue;
        }
        fdmsg_t m;
        int fd = -1, r;
        pid_t pid = -1;
        while ((r = rl_memfd_recv(s, &m, sizeof(m), getuid(), &fd, &pid)) == 0 && rl_now_ns() < dl)
            usleep(100);
        close(s);
        if (r <= 0 || fd < 0) {
            RL_WARN("direct: rank %d: refused a malformed or foreign connection on its socket", c->rank);
            continue; /* a stranger: the real peers' messages are queued too */
        }
        if (map_peer(c, d, all, &m, fd, pid))
            return -1;
        got++;
    }
    return 0;
}

static void watch_peers(struct rl_comm *c, direct_t *d, const blob_t *all)
{
    for (int q = 0; q < c->nranks; q++) {
        d->pidfd[q] = -1;
        if (q != c->rank)
            d->pidfd[q] = (int)syscall(SYS_pidfd_open, (pid_t)all[q].pid, 0);
        if (q != c->rank && d->pidfd[q] < 0)
            RL_DEBUG("direct: pidfd_open(%d): %s; rank %d's liveness rests on the bootstrap", all[q].pid,
                     strerror(errno), q);
    }
}

/* Every rank's flag, ANDed over the group. */
static rl_status_t agree(struct rl_comm *c, int *flag, int64_t dl, char *err, size_t len)
{
    int32_t mine = *flag, *all = calloc((size_t)c->nranks, sizeof(int32_t));
    if (!all)
        return RL_ERR_NO_MEMORY;
    rl_status_t st = rl_boot_allgather(c->boot, &mine, sizeof(mine), all, dl, err, len);
    for (int q = 0; st == RL_OK && q < c->nranks; q++)
        *flag &= all[q] == 1;
    free(all);
    return st;
}

static void teardown(struct rl_comm *c);

static rl_status_t setup(struct rl_comm *c, int64_t dl, char *err, size_t len)
{
    if (!possible(c))
        return RL_OK;
    direct_t *d = calloc(1, sizeof(*d));
    blob_t *all = calloc((size_t)c->nranks, sizeof(blob_t));
    if (!d || !all) {
        free(d);
        free(all);
        return RL_ERR_NO_MEMORY;
    }
    RL_ALGO_STATE(c, &rl_algo_direct) = d;
    d->n = c->nranks;
    d->me = c->rank;
    for (int q = 0; q < MAX_LOCAL; q++)
        d->pidfd[q] = -1;
    int lfd = -1, memfd = -1;
    blob_t mine = {0};
    /* A rank that cannot make its segment fails creation (out of memory or
     * fds); peers that cannot reach each other (another network namespace,
     * another build) only turn the algorithm off, on every rank alike. */
    rl_status_t st = self_blob(d, &mine, &lfd, &memfd, err, len, c->rank) ? RL_ERR_NO_MEMORY : RL_OK;
    if (st != RL_OK)
        rl_boot_abort(c->boot, st, c->rank, err);
    if (st == RL_OK)
        st = rl_boot_allgather(c->boot, &mine, sizeof(mine), all, dl, err, len);
    int ok = st == RL_OK && blobs_ok(c, all);
    ok = ok && !send_all(c, all, memfd, dl);
    if (st == RL_OK)
        st = agree(c, &ok, dl, err, len);
    ok = ok && !recv_all(c, d, all, lfd, dl);
    if (st == RL_OK)
        st = agree(c, &ok, dl, err, len);
    if (st == RL_OK && ok)
        watch_peers(c, d, all);
    if (lfd >= 0)
        close(lfd); /* nobody else may connect from now on */
    if (memfd >= 0)
        close(memfd);
    free(all);
    d->ok = ok;
    if (st == RL_OK && ok && c->rank == 0)
        RL_INFO("direct: %d ranks share %zu KiB segments (fan-in up to %u B, %zu KiB chunks above)", c->nranks,
                (size_t)SEG_LEN >> 10, SMALL_MAX(c->nranks), CHUNK >> 10);
    if (!ok && st == RL_OK)
        for (int q = 0; q < c->nranks; q++)
            if (q != c->rank && d->seg[q]) {
                munmap(d->seg[q], SEG_LEN);
                d->seg[q] = NULL;
            }
    return st;
}

static void teardown(struct rl_comm *c)
{
    direct_t *d = state(c);
    if (!d)
        return;
    for (int q = 0; q < d->n; q++) {
        if (d->seg[q])
            munmap(d->seg[q], SEG_LEN);
        if (d->pidfd[q] >= 0)
            close(d->pidfd[q]);
    }
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
    if (h.seq != r->seq || h.coll != (uint8_t)r->coll || h.count != r->count || h.dtype != (uint8_t)r->dtype ||
        h.op != (uint8_t)r->op || h.kind != kind || h.aux != aux) {
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
static void slice(const struct rl_request *r, int n, uint64_t k, int q, size_t *lo, size_t *len)
{
    size_t total = r->count * r->esize, off = (size_t)k * CHUNK;
    size_t cb = total - off < CHUNK ? total - off : CHUNK;
    uint64_t l0, ll;
    rl_split((cb + LINE - 1) / LINE, (uint64_t)n, (uint64_t)q, &l0, &ll);
    *lo = (size_t)l0 * LINE;
    size_t hi = (size_t)(l0 + ll) * LINE;
    if (hi > cb)
        hi = cb;
    *len = hi > *lo ? hi - *lo : 0;
}

static size_t chunk_len(const struct rl_request *r, uint64_t k)
{
    size_t total = r->count * r->esize, off = (size_t)k * CHUNK;
    return total - off < CHUNK ? total - off : CHUNK;
}

static void put_chunk(direct_t *d, struct rl_request *r, uint64_t k, uint64_t step)
{
    memcpy(in_chunk(d, d->me, step), r->in + (size_t)k * CHUNK, chunk_len(r, k));
    publish(d, r, step, K_LARGE, (uint32_t)k);
}

/* My slice of the current chunk from every rank's input, in rank order. */
static void reduce_slice(struct rl_comm *c, direct_t *d, struct rl_request *r)
{
    op_t *o = O(r);
    size_t lo, len;
    slice(r, d->n, o->k, d->me, &lo, &len);
    uint8_t *dst = out_chunk(d, d->me, o->step) + lo;
    size_t cnt = len / r->esize;
    if (cnt) {
        r->fn(dst, in_chunk(d, 0, o->step) + lo, in_chunk(d, 1, o->step) + lo, cnt);
        for (int q = 2; q < d->n; q++)
            r->fn(dst, dst, in_chunk(d, q, o->step) + lo, cnt);
        if (r->op == RL_AVG)
            rl_reduce_scale(dst, cnt, r->dtype, c->nranks);
    }
    atomic_store_explicit(outf(d, d->me, o->step), o->step, memory_order_release);
}

/* Copy out every slice whose owner published it; 1 when all are here. */
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
        slice(r, d->n, o->k, q, &lo, &len);
        memcpy(r->out + (size_t)o->k * CHUNK + lo, out_chunk(d, q, o->step) + lo, len);
        o->done |= 1ull << q;
        c->nevents++;
    }
    return o->done == all;
}

/* One move of a large operation; nonzero if it moved. */
static int large_step(struct rl_comm *c, direct_t *d, struct rl_request *r)
{
    op_t *o = O(r);
    if (o->phase == PH_GATHER) {
        if (!all_ready(c, d, r, K_LARGE, (uint32_t)o->k))
            return 0;
        reduce_slice(c, d, r);
        /* the next chunk's input may go now: every rank is past the step
         * that last read that buffer (it published this one) */
        if (o->k + 1 < o->nk)
            put_chunk(d, r, o->k + 1, o->step + 1);
        o->phase = PH_SLICES;
        o->done = 0;
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
    o->nk = (o->bytes + CHUNK - 1) / CHUNK;
    o->step = d->step + 1;
    d->step += o->nk;
    put_chunk(d, r, 0, o->step);
    o->phase = PH_GATHER;
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
    if (o->phase == PH_GATHER)
        snprintf(buf, len, "%s %llu (direct) waits for rank %d's data in shared memory (step %llu)", name, seq,
                 o->next < d->n ? o->next : d->n - 1, (unsigned long long)o->step);
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
};
