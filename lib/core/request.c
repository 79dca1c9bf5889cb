/* The collective entry points: validate, queue, progress, wait. */
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/comm.h"
#include "core/log.h"

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

static rl_status_t submit(struct rl_comm *c, rl_coll_t coll, const void *in, void *out, size_t count,
                          rl_dtype_t dtype, rl_op_t op, rl_request_t *req)
{
    if (!c)
        return RL_ERR_INVALID_ARG;
    const char *name = coll == RL_COLL_ALL_REDUCE ? "rl_all_reduce" : "rl_all_gather";
    if (!req)
        return bad_arg(c, "%s: request pointer is NULL", name);
    size_t esize = rl_dtype_size(dtype);
    if (!esize)
        return bad_arg(c, "%s: unknown datatype %d", name, (int)dtype);
    if (coll == RL_COLL_ALL_REDUCE && !rl_reduce_supported(dtype, op))
        return bad_arg(c, "%s: op %d is not defined for %s", name, (int)op, rl_dtype_name(dtype));
    size_t mult = coll == RL_COLL_ALL_GATHER ? (size_t)c->nranks : 1;
    if (count > SIZE_MAX / esize / mult || count * esize * mult > ((size_t)1 << 47))
        return bad_arg(c, "%s: count %zu of %s is too large", name, count, rl_dtype_name(dtype));
    size_t inb = count * esize, outb = inb * mult;
    if (count && (!in || !out))
        return bad_arg(c, "%s: NULL buffer with count %zu", name, count);
    int inplace = coll == RL_COLL_ALL_REDUCE ? in == out : (const char *)in == (char *)out + (size_t)c->rank * inb;
    if (!inplace && overlap(in, inb, out, outb))
        return bad_arg(c, "%s: send and receive buffers overlap without being in-place", name);
    if (c->failed != RL_OK)
        return c->failed;
    struct rl_request *r = calloc(1, sizeof(*r));
    if (!r)
        return RL_ERR_NO_MEMORY;
    r->comm = c;
    r->coll = coll;
    r->in = in;
    r->out = out;
    r->count = count;
    r->dtype = dtype;
    r->op = coll == RL_COLL_ALL_REDUCE ? op : RL_SUM;
    r->esize = esize;
    r->fn = coll == RL_COLL_ALL_REDUCE ? rl_reduce_lookup(dtype, op) : NULL;
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

rl_status_t rl_test(rl_request_t r)
{
    if (!r)
        return RL_ERR_INVALID_ARG;
    if (r->status == RL_INPROGRESS && r->comm)
        rl_comm_progress(r->comm);
    if (r->status == RL_INPROGRESS && !r->comm)
        r->status = RL_ERR_ABORTED;
    return r->status;
}

rl_status_t rl_wait(rl_request_t r, int timeout_ms)
{
    if (!r)
        return RL_ERR_INVALID_ARG;
    struct rl_comm *c = r->comm;
    if (!c)
        return rl_test(r);
    int64_t start = rl_now_ns();
    int64_t dl = start + (int64_t)(timeout_ms < 0 ? c->cfg.timeout_ms : timeout_ms) * 1000000LL;
    int64_t spin_until = start + c->spin_ns;
    for (;;) {
        rl_status_t st = rl_test(r);
        if (st != RL_INPROGRESS)
            return st;
        int64_t now = rl_now_ns();
        if (now >= dl)
            return RL_ERR_TIMEOUT;
        /* Ranks may outnumber cores: after a short spin, let others run,
         * sleeping on the completion channel where the transport has one
         * (woken at least every 2 ms to watch the control channel). */
        if (now > spin_until) {
            if (c->tp && c->ops->wait)
                c->ops->wait(c->tp, 2);
            else
                sched_yield();
        }
    }
}

void rl_request_free(rl_request_t r)
{
    if (!r)
        return;
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
        rl_ring_release(c, r);
    }
    free(r);
}

/* A blocking call: on expiry the operation cannot be abandoned half-way, so
 * the communicator fails with a message that names the rank it waited on. */
static rl_status_t run_blocking(struct rl_comm *c, rl_status_t st, rl_request_t r)
{
    if (st != RL_OK)
        return st;
    st = rl_wait(r, -1);
    if (st == RL_ERR_TIMEOUT) {
        char why[256];
        rl_ring_describe_wait(c, r, why, sizeof(why));
        rl_comm_fail(c, RL_ERR_TIMEOUT, "rank %d: no completion within RINGLET_TIMEOUT_MS=%d: %s", c->rank,
                     c->cfg.timeout_ms, why);
    }
    rl_request_free(r);
    return st;
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
