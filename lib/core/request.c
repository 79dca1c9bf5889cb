/* The collective entry points: validate, queue, progress, wait. */
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coll/p2p.h"
#include "core/clock.h"
#include "core/comm.h"
#include "core/log.h"

/* After the spin, a wait without a completion channel yields until this
 * long after the last completion, then sleeps in naps that double from MIN
 * to MAX (MAX bounds the latency a long wait adds; the CPU stays free). */
#define RL_WAIT_YIELD_NS 1000000LL
#define RL_WAIT_NAP_MIN_NS 20000LL
#define RL_WAIT_NAP_MAX_NS 200000LL
/* A wait this short counts as caught by the spin even with no spin left,
 * so the spin can grow back from zero. */
#define RL_WAIT_SPIN_FLOOR_NS 2000LL

/*
 * Spinning pays only while the ranks we wait for run on other cores: a rank
 * spinning on a busy host (or with more ranks than cores) holds the core
 * the others need, and every wait then costs its whole spin (2 ranks, 1
 * MiB, two busy processes on two cores: a 1 s spin made an all-reduce
 * 400x slower). So the spin adapts: a wait that ends while it spins
 * doubles the next one's spin, up to spin_ns (50 us by default); one that
 * outlasts its spin halves it, down to none (a loaded host, or a peer on
 * this core, then only yields).
 */
static void adapt_spin(struct rl_comm *c, int64_t waited_ns, int64_t spun_ns)
{
    if (c->spin_fixed)
        return;
    if (waited_ns > (spun_ns > RL_WAIT_SPIN_FLOOR_NS ? spun_ns : RL_WAIT_SPIN_FLOOR_NS)) {
        c->spin_cur /= 2;
        return;
    }
    int64_t next = c->spin_cur * 2 < 1000 ? 1000 : c->spin_cur * 2;
    c->spin_cur = next > c->spin_ns ? c->spin_ns : next;
}

static rl_status_t bad_arg(struct rl_comm *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static rl_status_t bad_arg(struct rl_comm *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
    va_end(ap);
    RL_WARN("%s", c->errmsg);
    return RL_ERR_INVALID_ARG;
}

static int overlap(const void *a, size_t alen, const void *b, size_t blen)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return alen && blen && x < y + blen && y < x + alen;
}

/* One collective call as the user made it. */
typedef struct {
    rl_coll_t coll;
    const void *in;
    void *out;
    size_t count;
    rl_dtype_t dtype;
    rl_op_t op;
    int root;
    void *args; /* becomes r->args */
} call_t;

static int has_op(rl_coll_t k)
{
    return k == RL_COLL_ALL_REDUCE || k == RL_COLL_REDUCE_SCATTER || k == RL_COLL_REDUCE;
}

/* Bytes this rank reads and writes, and whether the call is in place. */
static void call_bytes(const struct rl_comm *c, const call_t *a, size_t esize, size_t *inb, size_t *outb,
                       int *inplace)
{
    size_t blk = a->count * esize, n = (size_t)c->nranks;
    int root = a->root == c->rank;
    const char *in = a->in, *out = a->out;
    *inb = *outb = blk;
    *inplace = in == out;
    switch (a->coll) {
    case RL_COLL_ALL_GATHER:
        *outb = blk * n;
        *inplace = in == out + (size_t)c->rank * blk;
        break;
    case RL_COLL_REDUCE_SCATTER:
        *inb = blk * n;
        *inplace = out == in + (size_t)c->rank * blk;
        break;
    case RL_COLL_BROADCAST:
        if (!root)
            *inb = 0;
        break;
    case RL_COLL_REDUCE:
        if (!root)
            *outb = 0;
        break;
    case RL_COLL_BARRIER: *inb = *outb = 0; break;
    default: break;
    }
}

static rl_status_t check_call(struct rl_comm *c, const call_t *a, size_t *esize_out)
{
    const char *name = rl_coll_name(a->coll); /* messages say rl_<name> */
    if (a->coll == RL_COLL_BARRIER) {
        *esize_out = 4;
        return RL_OK;
    }
    size_t esize = rl_dtype_size(a->dtype);
    if (!esize)
        return bad_arg(c, "rl_%s: unknown datatype %d", name, (int)a->dtype);
    if (has_op(a->coll) && !rl_reduce_supported(a->dtype, a->op))
        return bad_arg(c, "rl_%s: op %s is not defined for %s (avg: floating types only; band, bor, bxor: integer "
                       "types only)", name, rl_op_name(a->op) ? rl_op_name(a->op) : "?", rl_dtype_name(a->dtype));
    if ((a->coll == RL_COLL_BROADCAST || a->coll == RL_COLL_REDUCE) && (a->root < 0 || a->root >= c->nranks))
        return bad_arg(c, "rl_%s: root %d is not a rank of this communicator (size %d)", name, a->root, c->nranks);
    size_t mult = a->coll == RL_COLL_ALL_GATHER || a->coll == RL_COLL_REDUCE_SCATTER ? (size_t)c->nranks : 1;
    if (a->count > SIZE_MAX / esize / mult || a->count * esize * mult > ((size_t)1 << 47))
        return bad_arg(c, "rl_%s: count %zu of %s is too large", name, a->count, rl_dtype_name(a->dtype));
    size_t inb, outb;
    int inplace;
    call_bytes(c, a, esize, &inb, &outb, &inplace);
    if ((inb && !a->in) || (outb && !a->out))
        return bad_arg(c, "rl_%s: NULL %s buffer with count %zu", name, inb && !a->in ? "send" : "receive", a->count);
    if (!inplace && overlap(a->in, inb, a->out, outb))
        return bad_arg(c, "rl_%s: send and receive buffers overlap without being in-place", name);
    *esize_out = esize;
    return RL_OK;
}

/* Queue a validated call on the algorithm the selection table picks.
 * Every rank picks the same one: the choice depends only on the call, the
 * group and the table, whose hash the ranks compared at creation. */
static rl_status_t enqueue(struct rl_comm *c, const call_t *a, size_t esize, rl_request_t *req)
{
    if (c->failed != RL_OK)
        return c->failed;
    int bar = a->coll == RL_COLL_BARRIER;
    rl_call_t call = {.coll = a->coll, .count = bar ? 1 : a->count, .dtype = bar ? RL_INT32 : a->dtype,
                      .op = has_op(a->coll) ? a->op : RL_SUM,
                      .root = a->coll == RL_COLL_BROADCAST || a->coll == RL_COLL_REDUCE || a->coll == RL_COLL_GATHER ||
                                      a->coll == RL_COLL_SCATTER
                                  ? a->root
                                  : 0};
    call.bytes = call.count * esize;
    struct rl_request *r = rl_request_alloc(c, rl_select(c, &call));
    if (!r) {
        free(a->args);
        return RL_ERR_NO_MEMORY;
    }
    r->args = a->args;
    r->coll = call.coll;
    r->in = a->in;
    r->out = a->out;
    r->count = call.count;
    r->dtype = call.dtype;
    r->op = call.op;
    r->root = call.root;
    r->esize = esize;
    r->fn = has_op(a->coll) || bar ? rl_reduce_lookup(r->dtype, r->op) : NULL;
    r->seq = c->next_seq++;
    r->status = RL_INPROGRESS;
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    *req = r;
    rl_comm_progress(c); /* start it now: the control record goes out at once */
    return RL_OK;
}

static rl_status_t submit_call(struct rl_comm *c, const call_t *a, rl_request_t *req)
{
    if (!rl_comm_ok(c))
        return RL_ERR_INVALID_ARG;
    if (!req)
        return bad_arg(c, "rl_%s: request pointer is NULL", rl_coll_name(a->coll));
    size_t esize = 0;
    rl_status_t st = check_call(c, a, &esize);
    if (st != RL_OK)
        return st;
    return enqueue(c, a, esize, req);
}

void rl_request_release(struct rl_comm *c, struct rl_request *r)
{
    r->algo->release(c, r);
    free(r->args);
    r->args = NULL;
    rl_reg_release(c, r->in_reg);
    rl_reg_release(c, r->out_reg);
    r->in_reg = r->out_reg = NULL;
}

static rl_status_t submit(struct rl_comm *c, rl_coll_t coll, const void *in, void *out, size_t count,
                          rl_dtype_t dtype, rl_op_t op, rl_request_t *req)
{
    call_t a = {.coll = coll, .in = in, .out = out, .count = count, .dtype = dtype, .op = op};
    return submit_call(c, &a, req);
}

rl_status_t rl_test(rl_request_t r)
{
    if (!rl_req_ok(r))
        return RL_ERR_INVALID_ARG;
    if (r->status == RL_INPROGRESS && r->comm)
        rl_comm_progress(r->comm);
    if (r->status == RL_INPROGRESS && !r->comm)
        r->status = RL_ERR_ABORTED;
    return r->status;
}

static rl_status_t wait_expired(struct rl_comm *c, rl_request_t r);

rl_status_t rl_wait(rl_request_t r, int timeout_ms)
{
    if (!rl_req_ok(r))
        return RL_ERR_INVALID_ARG;
    struct rl_comm *c = r->comm;
    if (!c)
        return rl_test(r);
    /* The clock costs as much as a small operation's own work here: a call
     * finished by its first progress reads none, and the spin reads it
     * only every 8th round (within the spin nothing depends on it but the
     * end of the spin itself). */
    rl_status_t st = rl_test(r);
    if (st != RL_INPROGRESS) {
        adapt_spin(c, 0, 0);
        return st;
    }
    int64_t start = rl_now_ns(), now = start;
    int64_t dl = start + (int64_t)(timeout_ms < 0 ? c->cfg.timeout_ms : timeout_ms) * 1000000LL;
    int64_t spin_until = start + (c->spin_fixed ? c->spin_ns : c->spin_cur);
    int64_t yield_until = spin_until + RL_WAIT_YIELD_NS, nap_ns = RL_WAIT_NAP_MIN_NS;
    uint64_t seen = c->nevents;
    for (unsigned round = 1;; round++) {
        /* while spinning, seven rounds in eight advance a self-driven head
         * operation alone (no transport polls, no bootstrap check) */
        st = (round & 7) && now <= spin_until && rl_comm_poll_head(c) ? r->status : rl_test(r);
        if (st != RL_INPROGRESS) {
            /* still spinning: it took no longer than the spin, which is all
             * adapt_spin asks */
            adapt_spin(c, now <= spin_until ? 0 : rl_now_ns() - start, spin_until - start);
            return st;
        }
        if ((round & 7) && now <= spin_until)
            continue;
        now = rl_now_ns();
        if (now >= dl)
            return timeout_ms < 0 ? wait_expired(c, r) : RL_ERR_TIMEOUT;
        if (c->nevents != seen) { /* data moves: no naps yet (a pipeline keeps flowing) */
            seen = c->nevents;
            yield_until = (now > spin_until ? now : spin_until) + RL_WAIT_YIELD_NS;
            nap_ns = RL_WAIT_NAP_MIN_NS;
        }
        /* Spin for the fast case; then let other processes run: sleep on
         * the completion channel where the transport has one (woken at
         * least every 2 ms to watch the control channel); else yield, and
         * once nothing has completed for a while, nap (doubling, bounded),
         * so a long wait leaves the CPU alone. */
        if (now <= spin_until)
            continue;
        if (c->wait_events && c->ntp == 1 && c->tps[0].ops->wait) { /* with several, none may sleep on one channel */
            c->tps[0].ops->wait(c->tps[0].tp, 2);
        } else if (now <= yield_until) {
            sched_yield();
        } else {
            struct timespec ts = {0, (long)nap_ns};
            nanosleep(&ts, NULL);
            nap_ns = nap_ns * 2 > RL_WAIT_NAP_MAX_NS ? RL_WAIT_NAP_MAX_NS : nap_ns * 2;
        }
    }
}

/* Unlink r from its communicator and release what it holds; zero when r
 * is not a live request. The block itself is the caller's to free. */
static int request_retire(rl_request_t r)
{
    if (!r)
        return 0;
    if (!rl_req_ok(r)) {
        RL_WARN("rl_request_free(%p): not a live request (freed twice?); ignored", (void *)r);
        return 0;
    }
    struct rl_comm *c = r->comm;
    if (c) {
        if (r->status == RL_INPROGRESS)
            rl_comm_fail(c, RL_ERR_ABORTED, "rank %d: a request was freed while its operation was running",
                         c->rank);
        struct rl_request **pp = &c->head, *prev = NULL;
        while (*pp && *pp != r) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        if (*pp) {
            *pp = r->next;
            if (c->tail == r)
                c->tail = prev;
        }
        if (r->algo->forget)
            r->algo->forget(c, r);
        rl_request_release(c, r);
    }
    *(volatile uint32_t *)&r->magic = 0; /* volatile: a store before free() is otherwise dropped */
    return 1;
}

void rl_request_free(rl_request_t r)
{
    if (request_retire(r))
        free(r);
}

/* Under AddressSanitizer every block goes back to malloc, which then
 * catches a use after free that recycling would hide. */
#if defined(__SANITIZE_ADDRESS__)
#define RL_RECYCLE_REQUESTS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RL_RECYCLE_REQUESTS 0
#endif
#endif
#ifndef RL_RECYCLE_REQUESTS
#define RL_RECYCLE_REQUESTS 1
#endif

/* A blocking call's request, which no one else has seen: its block is
 * kept for the communicator's next call. */
static void request_recycle(struct rl_comm *c, rl_request_t r)
{
    if (!request_retire(r))
        return;
    if (RL_RECYCLE_REQUESTS && c->n_req_cache < RL_REQ_CACHE) {
        c->req_cache[c->n_req_cache++] = r;
        return;
    }
    free(r);
}

static void describe_wait(struct rl_comm *c, rl_request_t r, char *why, size_t len)
{
    r->algo->describe_wait(c, r, why, len);
}

/* The communicator's deadline passed: the operation cannot be abandoned
 * half-way, so the communicator fails (naming, through the bootstrap, the
 * rank that stalls the group; see rl_comm_fail). */
static rl_status_t wait_expired(struct rl_comm *c, rl_request_t r)
{
    char why[256];
    c->stall_peer = -1;
    describe_wait(c, r, why, sizeof(why));
    rl_comm_fail(c, RL_ERR_TIMEOUT, "rank %d: no completion within RINGLET_TIMEOUT_MS=%d: %s", c->rank,
                 c->cfg.timeout_ms, why);
    return c->failed;
}

static rl_status_t wait_or_fail(struct rl_comm *c, rl_request_t r)
{
    (void)c;
    return rl_wait(r, -1);
}

/* A blocking call; inside a group it only joins the group. */
static rl_status_t run_blocking(struct rl_comm *c, rl_status_t st, rl_request_t r)
{
    if (st != RL_OK)
        return st;
    if (c->group_depth > 0) {
        if (c->ngroup == c->group_cap) {
            int cap = c->group_cap ? 2 * c->group_cap : 16;
            rl_request_t *g = realloc(c->group, sizeof(*g) * (size_t)cap);
            if (!g) {
                rl_request_free(r);
                return RL_ERR_NO_MEMORY;
            }
            c->group = g;
            c->group_cap = cap;
        }
        c->group[c->ngroup++] = r;
        return RL_OK;
    }
    st = wait_or_fail(c, r);
    request_recycle(c, r);
    return st;
}

rl_status_t rl_submit_local(struct rl_comm *c, rl_coll_t coll, const void *in, void *out, size_t count,
                            rl_dtype_t dtype, int root, size_t esize, void *args, rl_request_t *req)
{
    call_t a = {.coll = coll, .in = in, .out = out, .count = count, .dtype = dtype, .root = root, .args = args};
    if (c->failed != RL_OK) {
        free(args);
        return c->failed;
    }
    return enqueue(c, &a, esize, req);
}

rl_status_t rl_run_blocking(struct rl_comm *c, rl_status_t st, rl_request_t r)
{
    return run_blocking(c, st, r);
}

rl_status_t rl_group_start(rl_comm_t c)
{
    if (!rl_comm_ok(c))
        return RL_ERR_INVALID_ARG;
    c->group_depth++;
    return RL_OK;
}

rl_status_t rl_group_end(rl_comm_t c)
{
    if (!rl_comm_ok(c))
        return RL_ERR_INVALID_ARG;
    if (c->group_depth == 0)
        return bad_arg(c, "rl_group_end without rl_group_start");
    if (--c->group_depth > 0)
        return RL_OK;
    rl_status_t first = RL_OK;
    for (int i = 0; i < c->ngroup; i++) {
        rl_status_t st = first == RL_OK ? wait_or_fail(c, c->group[i]) : rl_test(c->group[i]);
        if (st != RL_OK && first == RL_OK)
            first = st == RL_INPROGRESS ? c->failed : st;
    }
    for (int i = 0; i < c->ngroup; i++)
        rl_request_free(c->group[i]);
    c->ngroup = 0;
    return first;
}

/* ---- point-to-point and all-to-all ---- */

static rl_status_t p2p_check(struct rl_comm *c, const char *name, const void *buf, size_t count, rl_dtype_t dtype,
                             int peer)
{
    if (!rl_dtype_size(dtype))
        return bad_arg(c, "%s: unknown datatype %d", name, (int)dtype);
    if (peer < 0 || peer >= c->nranks)
        return bad_arg(c, "%s: peer %d is not a rank of this communicator (size %d)", name, peer, c->nranks);
    if (peer == c->rank)
        return bad_arg(c, "%s: peer %d is this rank; copy the data instead", name, peer);
    if (count > ((size_t)1 << 47) / rl_dtype_size(dtype))
        return bad_arg(c, "%s: count %zu of %s is too large", name, count, rl_dtype_name(dtype));
    if (count && !buf)
        return bad_arg(c, "%s: NULL buffer with count %zu", name, count);
    if (!rl_p2p_enabled(c)) {
        snprintf(c->errmsg, sizeof(c->errmsg),
                 "%s: point-to-point connections are off (RINGLET_P2P=%s, %d ranks); set RINGLET_P2P=on", name,
                 c->cfg.p2p, c->nranks);
        return RL_ERR_UNSUPPORTED;
    }
    return c->failed;
}

static rl_status_t p2p_submit_tag(struct rl_comm *c, int is_send, const void *buf, size_t count, rl_dtype_t dtype,
                                  int peer, uint32_t tag, rl_request_t *req)
{
    if (!rl_comm_ok(c))
        return RL_ERR_INVALID_ARG;
    const char *name = is_send ? "rl_send" : "rl_recv";
    if (!req)
        return bad_arg(c, "%s: request pointer is NULL", name);
    rl_status_t st = p2p_check(c, name, buf, count, dtype, peer);
    if (st != RL_OK)
        return st;
    if ((st = rl_p2p_new_tag(c, RL_P2P_USER, is_send, buf, count, dtype, peer, tag, req)) != RL_OK)
        return st;
    rl_comm_progress(c);
    return RL_OK;
}

static rl_status_t p2p_submit(struct rl_comm *c, int is_send, const void *buf, size_t count, rl_dtype_t dtype,
                              int peer, rl_request_t *req)
{
    return p2p_submit_tag(c, is_send, buf, count, dtype, peer, 0, req);
}

rl_status_t rl_isend_tag(rl_comm_t c, const void *buf, size_t count, rl_dtype_t dtype, int peer, uint32_t tag,
                         rl_request_t *req)
{
    return p2p_submit_tag(c, 1, buf, count, dtype, peer, tag, req);
}

rl_status_t rl_irecv_tag(rl_comm_t c, void *buf, size_t count, rl_dtype_t dtype, int peer, uint32_t tag,
                         rl_request_t *req)
{
    return p2p_submit_tag(c, 0, buf, count, dtype, peer, tag, req);
}

rl_status_t rl_send_tag(rl_comm_t c, const void *buf, size_t count, rl_dtype_t dtype, int peer, uint32_t tag)
{
    rl_request_t r = NULL;
    rl_status_t st = p2p_submit_tag(c, 1, buf, count, dtype, peer, tag, &r);
    return run_blocking(c, st, r);
}

rl_status_t rl_recv_tag(rl_comm_t c, void *buf, size_t count, rl_dtype_t dtype, int peer, uint32_t tag)
{
    rl_request_t r = NULL;
    rl_status_t st = p2p_submit_tag(c, 0, buf, count, dtype, peer, tag, &r);
    return run_blocking(c, st, r);
}

rl_status_t rl_isend(rl_comm_t c, const void *buf, size_t count, rl_dtype_t dtype, int peer, rl_request_t *req)
{
    return p2p_submit(c, 1, buf, count, dtype, peer, req);
}

rl_status_t rl_irecv(rl_comm_t c, void *buf, size_t count, rl_dtype_t dtype, int peer, rl_request_t *req)
{
    return p2p_submit(c, 0, buf, count, dtype, peer, req);
}

rl_status_t rl_send(rl_comm_t c, const void *buf, size_t count, rl_dtype_t dtype, int peer)
{
    rl_request_t r = NULL;
    rl_status_t st = p2p_submit(c, 1, buf, count, dtype, peer, &r);
    return run_blocking(c, st, r);
}

rl_status_t rl_recv(rl_comm_t c, void *buf, size_t count, rl_dtype_t dtype, int peer)
{
    rl_request_t r = NULL;
    rl_status_t st = p2p_submit(c, 0, buf, count, dtype, peer, &r);
    return run_blocking(c, st, r);
}

rl_status_t rl_iall_to_all(rl_comm_t c, const void *in, void *out, size_t count, rl_dtype_t dtype,
                           rl_request_t *req)
{
    if (!rl_comm_ok(c))
        return RL_ERR_INVALID_ARG;
    if (!req)
        return bad_arg(c, "rl_all_to_all: request pointer is NULL");
    size_t es = rl_dtype_size(dtype), n = (size_t)c->nranks;
    if (!es)
        return bad_arg(c, "rl_all_to_all: unknown datatype %d", (int)dtype);
    if (count > ((size_t)1 << 47) / es / n)
        return bad_arg(c, "rl_all_to_all: count %zu of %s is too large", count, rl_dtype_name(dtype));
    size_t blk = count * es;
    if (count && (!in || !out))
        return bad_arg(c, "rl_all_to_all: NULL buffer with count %zu", count);
    if (overlap(in, blk * n, out, blk * n))
        return bad_arg(c, "rl_all_to_all: send and receive buffers overlap (in-place is not supported)");
    if (n > 1 && !rl_p2p_enabled(c)) {
        snprintf(c->errmsg, sizeof(c->errmsg),
                 "rl_all_to_all: point-to-point connections are off (RINGLET_P2P=%s, %d ranks); set RINGLET_P2P=on",
                 c->cfg.p2p, c->nranks);
        return RL_ERR_UNSUPPORTED;
    }
    call_t a = {.coll = RL_COLL_ALLTOALL, .in = in, .out = out, .count = count, .dtype = dtype};
    return enqueue(c, &a, es, req);
}

rl_status_t rl_all_to_all(rl_comm_t c, const void *in, void *out, size_t count, rl_dtype_t dtype)
{
    rl_request_t r = NULL;
    rl_status_t st = rl_iall_to_all(c, in, out, count, dtype, &r);
    return run_blocking(c, st, r);
}

rl_status_t rl_iall_reduce(rl_comm_t c, const void *in, void *out, size_t count, rl_dtype_t dtype, rl_op_t op,
                           rl_request_t *req)
{
    return submit(c, RL_COLL_ALL_REDUCE, in, out, count, dtype, op, req);
}

rl_status_t rl_iall_gather(rl_comm_t c, const void *in, void *out, size_t count, rl_dtype_t dtype,
                           rl_request_t *req)
{
    return submit(c, RL_COLL_ALL_GATHER, in, out, count, dtype, RL_SUM, req);
}

rl_status_t rl_all_reduce(rl_comm_t c, const void *in, void *out, size_t count, rl_dtype_t dtype, rl_op_t op)
{
    rl_request_t r = NULL;
    rl_status_t st = submit(c, RL_COLL_ALL_REDUCE, in, out, count, dtype, op, &r);
    return run_blocking(c, st, r);
}

rl_status_t rl_all_gather(rl_comm_t c, const void *in, void *out, size_t count, rl_dtype_t dtype)
{
    rl_request_t r = NULL;
    rl_status_t st = submit(c, RL_COLL_ALL_GATHER, in, out, count, dtype, RL_SUM, &r);
    return run_blocking(c, st, r);
}

/* ---- the rest of the collective set ---- */

static rl_status_t blocking_call(struct rl_comm *c, const call_t *a)
{
    rl_request_t r = NULL;
    rl_status_t st = submit_call(c, a, &r);
    return run_blocking(c, st, r);
}

rl_status_t rl_ireduce_scatter(rl_comm_t c, const void *in, void *out, size_t recvcount, rl_dtype_t dtype,
                               rl_op_t op, rl_request_t *req)
{
    call_t a = {.coll = RL_COLL_REDUCE_SCATTER, .in = in, .out = out, .count = recvcount, .dtype = dtype, .op = op};
    return submit_call(c, &a, req);
}

rl_status_t rl_reduce_scatter(rl_comm_t c, const void *in, void *out, size_t recvcount, rl_dtype_t dtype,
                              rl_op_t op)
{
    call_t a = {.coll = RL_COLL_REDUCE_SCATTER, .in = in, .out = out, .count = recvcount, .dtype = dtype, .op = op};
    return blocking_call(c, &a);
}

rl_status_t rl_ibroadcast(rl_comm_t c, const void *in, void *out, size_t count, rl_dtype_t dtype, int root,
                          rl_request_t *req)
{
    call_t a = {.coll = RL_COLL_BROADCAST, .in = in, .out = out, .count = count, .dtype = dtype, .root = root};
    return submit_call(c, &a, req);
}

rl_status_t rl_broadcast(rl_comm_t c, const void *in, void *out, size_t count, rl_dtype_t dtype, int root)
{
    call_t a = {.coll = RL_COLL_BROADCAST, .in = in, .out = out, .count = count, .dtype = dtype, .root = root};
    return blocking_call(c, &a);
}

rl_status_t rl_ireduce(rl_comm_t c, const void *in, void *out, size_t count, rl_dtype_t dtype, rl_op_t op,
                       int root, rl_request_t *req)
{
    call_t a = {.coll = RL_COLL_REDUCE, .in = in, .out = out, .count = count, .dtype = dtype, .op = op,
                .root = root};
    return submit_call(c, &a, req);
}

rl_status_t rl_reduce(rl_comm_t c, const void *in, void *out, size_t count, rl_dtype_t dtype, rl_op_t op, int root)
{
    call_t a = {.coll = RL_COLL_REDUCE, .in = in, .out = out, .count = count, .dtype = dtype, .op = op,
                .root = root};
    return blocking_call(c, &a);
}

rl_status_t rl_ibarrier(rl_comm_t c, rl_request_t *req)
{
    call_t a = {.coll = RL_COLL_BARRIER};
    return submit_call(c, &a, req);
}

rl_status_t rl_barrier(rl_comm_t c)
{
    call_t a = {.coll = RL_COLL_BARRIER};
    return blocking_call(c, &a);
}
