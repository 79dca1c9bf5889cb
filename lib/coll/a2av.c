/*
 * All-to-allv, gather and scatter, built like all-to-all: one composite
 * request whose parts are point-to-point sends and receives (coll/p2p.c),
 * so every byte moves zero-copy into the receiver's buffer after its
 * clear-to-send. The parts use the user's matching space, as all-to-all
 * does: they are posted at once, in the order the calls are issued, which
 * is the same on every rank (a collective-space message would race the
 * halving-doubling all-reduce, which posts its own when it starts).
 *
 * Every message of the pattern is posted, zero-length ones too: a pair then
 * agrees on the count of each message or both ends fail with
 * RL_ERR_MISMATCH, instead of one side waiting for a message the other
 * never sends.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/comm.h"
#include "core/log.h"

/* Largest message, as for every other collective. */
#define MAX_BYTES ((size_t)1 << 47)

static rl_status_t bad(struct rl_comm *c, rl_status_t st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static rl_status_t bad(struct rl_comm *c, rl_status_t st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
    va_end(ap);
    RL_WARN("%s", c->errmsg);
    return st;
}

static int overlap(const void *a, size_t alen, const void *b, size_t blen)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return alen && blen && x < y + blen && y < x + alen;
}

/* What every one of these calls needs before it can start. */
static rl_status_t check_common(struct rl_comm *c, const char *name, rl_dtype_t dtype, rl_request_t *req)
{
    if (!req)
        return bad(c, RL_ERR_INVALID_ARG, "%s: request pointer is NULL", name);
    if (!rl_dtype_size(dtype))
        return bad(c, RL_ERR_INVALID_ARG, "%s: unknown datatype %d", name, (int)dtype);
    if (c->nranks > 1 && !c->peers)
        return bad(c, RL_ERR_UNSUPPORTED,
                   "%s: point-to-point connections are off (RINGLET_P2P=%s, %d ranks); set RINGLET_P2P=on", name,
                   c->cfg.p2p, c->nranks);
    return c->failed;
}

static struct rl_request *composite_new(struct rl_comm *c, size_t nkids)
{
    struct rl_request *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    if (nkids && !(r->kids = calloc(nkids, sizeof(*r->kids)))) {
        free(r);
        return NULL;
    }
    r->comm = c;
    r->coll = RL_COLL_ALLTOALL; /* local only: done when its parts are */
    r->status = RL_INPROGRESS;
    return r;
}

static rl_status_t add_part(struct rl_comm *c, struct rl_request *r, int is_send, const void *buf, size_t count,
                            rl_dtype_t dtype, int peer)
{
    rl_status_t st = rl_p2p_new(c, RL_P2P_USER, is_send, buf, count, dtype, peer, &r->kids[r->nkids]);
    if (st == RL_OK)
        r->nkids++;
    return st;
}

/* Hand the request out and start it, or undo it after a failed post. */
static rl_status_t finish(struct rl_comm *c, struct rl_request *r, rl_status_t st, rl_request_t *req)
{
    if (st != RL_OK) {
        r->status = st;
        rl_request_free(r);
        return st;
    }
    if (r->nkids == 0)
        r->status = RL_OK, r->comm = NULL;
    *req = r;
    rl_comm_progress(c);
    return RL_OK;
}

/* ---- all-to-allv ---- */

typedef struct {
    size_t off, len; /* bytes */
    int peer;
} span_t;

static int span_cmp(const void *a, const void *b)
{
    const span_t *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Checks one side's counts and displacements; on success *extent is the
 * end of the furthest non-empty block and spans[] the blocks in bytes. */
static rl_status_t check_side(struct rl_comm *c, const char *side, const void *buf, const size_t *counts,
                              const size_t *displs, rl_dtype_t dtype, span_t *spans, size_t *extent)
{
    const char *dname = side[0] == 's' ? "sdispls" : "rdispls";
    const char *cname = side[0] == 's' ? "sendcounts" : "recvcounts";
    size_t es = rl_dtype_size(dtype), end = 0;
    if (!counts || !displs)
        return bad(c, RL_ERR_INVALID_ARG, "rl_all_to_allv: %s is NULL", !counts ? cname : dname);
    for (int j = 0; j < c->nranks; j++) {
        size_t n = counts[j], d = displs[j];
        if (d > SIZE_MAX - n || d + n > MAX_BYTES / es)
            return bad(c, RL_ERR_INVALID_ARG,
                       "rl_all_to_allv: %s[%d] = %zu at %s[%d] = %zu elements of %s ends beyond 2^47 bytes", cname,
                       j, n, dname, j, d, rl_dtype_name(dtype));
        spans[j] = (span_t){.off = d * es, .len = n * es, .peer = j};
        if (n && (d + n) * es > end)
            end = (d + n) * es;
    }
    if (end && !buf)
        return bad(c, RL_ERR_INVALID_ARG, "rl_all_to_allv: NULL %s buffer with non-zero %s", side, cname);
    *extent = end;
    return RL_OK;
}

/* Two receive blocks sharing bytes would be written by two peers at once. */
static rl_status_t check_recv_disjoint(struct rl_comm *c, span_t *spans)
{
    size_t n = (size_t)c->nranks, k = 0;
    for (size_t j = 0; j < n; j++)
        if (spans[j].len)
            spans[k++] = spans[j];
    qsort(spans, k, sizeof(*spans), span_cmp);
    for (size_t j = 1; j < k; j++)
        if (spans[j - 1].off + spans[j - 1].len > spans[j].off)
            return bad(c, RL_ERR_INVALID_ARG, "rl_all_to_allv: the receive blocks of ranks %d and %d overlap",
                       spans[j - 1].peer, spans[j].peer);
    return RL_OK;
}

static rl_status_t a2av_check(struct rl_comm *c, const void *in, const size_t *scounts, const size_t *sdispls,
                              void *out, const size_t *rcounts, const size_t *rdispls, rl_dtype_t dtype)
{
    size_t n = (size_t)c->nranks, send_end = 0, recv_end = 0;
    span_t *spans = malloc(n * sizeof(*spans));
    if (!spans)
        return RL_ERR_NO_MEMORY;
    rl_status_t st = check_side(c, "send", in, scounts, sdispls, dtype, spans, &send_end);
    if (st == RL_OK)
        st = check_side(c, "receive", out, rcounts, rdispls, dtype, spans, &recv_end);
    if (st == RL_OK && scounts[c->rank] != rcounts[c->rank])
        st = bad(c, RL_ERR_INVALID_ARG, "rl_all_to_allv: rank %d sends itself %zu elements but receives %zu",
                 c->rank, scounts[c->rank], rcounts[c->rank]);
    if (st == RL_OK)
        st = check_recv_disjoint(c, spans);
    if (st == RL_OK && overlap(in, send_end, out, recv_end))
        st = bad(c, RL_ERR_INVALID_ARG, "rl_all_to_allv: send and receive buffers overlap (in-place is not supported)");
    free(spans);
    return st;
}

rl_status_t rl_iall_to_allv(rl_comm_t c, const void *in, const size_t *scounts, const size_t *sdispls, void *out,
                            const size_t *rcounts, const size_t *rdispls, rl_dtype_t dtype, rl_request_t *req)
{
    if (!c)
        return RL_ERR_INVALID_ARG;
    rl_status_t st = check_common(c, "rl_all_to_allv", dtype, req);
    if (st == RL_OK)
        st = a2av_check(c, in, scounts, sdispls, out, rcounts, rdispls, dtype);
    if (st != RL_OK)
        return st;
    size_t es = rl_dtype_size(dtype), n = (size_t)c->nranks, me = (size_t)c->rank;
    struct rl_request *r = composite_new(c, 2 * (n - 1));
    if (!r)
        return RL_ERR_NO_MEMORY;
    if (scounts[me])
        memcpy((char *)out + rdispls[me] * es, (const char *)in + sdispls[me] * es, scounts[me] * es);
    /* receives first and peers in rotating order, as in rl_iall_to_all */
    for (int pass = 0; pass < 2 && st == RL_OK; pass++) {
        for (size_t k = 1; k < n && st == RL_OK; k++) {
            size_t p = (me + (pass ? k : n - k)) % n;
            if (pass)
                st = add_part(c, r, 1, (const char *)in + sdispls[p] * es, scounts[p], dtype, (int)p);
            else
                st = add_part(c, r, 0, (char *)out + rdispls[p] * es, rcounts[p], dtype, (int)p);
        }
    }
    return finish(c, r, st, req);
}

rl_status_t rl_all_to_allv(rl_comm_t c, const void *in, const size_t *scounts, const size_t *sdispls, void *out,
                           const size_t *rcounts, const size_t *rdispls, rl_dtype_t dtype)
{
    rl_request_t r = NULL;
    rl_status_t st = rl_iall_to_allv(c, in, scounts, sdispls, out, rcounts, rdispls, dtype, &r);
    return rl_run_blocking(c, st, r);
}

/* ---- gather and scatter ---- */

/* Gather (is_gather) or scatter: `many` is the root's n-block buffer (recv
 * for gather, send for scatter), `one` every rank's own block. */
static rl_status_t rooted_check(struct rl_comm *c, const char *name, const void *one, const void *many, size_t count,
                                rl_dtype_t dtype, int root, int *inplace)
{
    size_t es = rl_dtype_size(dtype), n = (size_t)c->nranks;
    if (root < 0 || root >= c->nranks)
        return bad(c, RL_ERR_INVALID_ARG, "%s: root %d is not a rank of this communicator (size %d)", name, root,
                   c->nranks);
    if (count > MAX_BYTES / es / n)
        return bad(c, RL_ERR_INVALID_ARG, "%s: count %zu of %s is too large", name, count, rl_dtype_name(dtype));
    size_t blk = count * es;
    int is_root = root == c->rank;
    *inplace = is_root && many && one == (const char *)many + (size_t)root * blk;
    if (blk && !one)
        return bad(c, RL_ERR_INVALID_ARG, "%s: NULL %s buffer with count %zu", name,
                   name[3] == 'g' ? "send" : "receive", count);
    if (blk && is_root && !many)
        return bad(c, RL_ERR_INVALID_ARG, "%s: NULL %s buffer on the root with count %zu", name,
                   name[3] == 'g' ? "receive" : "send", count);
    if (is_root && !*inplace && overlap(one, blk, many, blk * n))
        return bad(c, RL_ERR_INVALID_ARG, "%s: send and receive buffers overlap without being in-place", name);
    return RL_OK;
}

static rl_status_t rooted(struct rl_comm *c, int is_gather, const void *in, void *out, size_t count,
                          rl_dtype_t dtype, int root, rl_request_t *req)
{
    const char *name = is_gather ? "rl_gather" : "rl_scatter";
    if (!c)
        return RL_ERR_INVALID_ARG;
    int inplace = 0;
    const void *one = is_gather ? in : out, *many = is_gather ? (const void *)out : in;
    rl_status_t st = check_common(c, name, dtype, req);
    if (st == RL_OK)
        st = rooted_check(c, name, one, many, count, dtype, root, &inplace);
    if (st != RL_OK)
        return st;
    size_t es = rl_dtype_size(dtype), blk = count * es, n = (size_t)c->nranks, me = (size_t)c->rank;
    struct rl_request *r = composite_new(c, me == (size_t)root ? n - 1 : 1);
    if (!r)
        return RL_ERR_NO_MEMORY;
    if (me != (size_t)root)
        return finish(c, r, add_part(c, r, is_gather, one, count, dtype, root), req);
    if (blk && !inplace)
        memcpy((char *)out + (is_gather ? me * blk : 0), (const char *)in + (is_gather ? 0 : me * blk), blk);
    /* peers in rotating order from the root, so that with several roots at
     * once (groups) no rank is everyone's first peer */
    for (size_t k = 1; k < n && st == RL_OK; k++) {
        size_t p = (me + k) % n;
        char *b = (char *)many + p * blk;
        st = add_part(c, r, !is_gather, b, count, dtype, (int)p);
    }
    return finish(c, r, st, req);
}

rl_status_t rl_igather(rl_comm_t c, const void *in, void *out, size_t count, rl_dtype_t dtype, int root,
                       rl_request_t *req)
{
    return rooted(c, 1, in, out, count, dtype, root, req);
}

rl_status_t rl_iscatter(rl_comm_t c, const void *in, void *out, size_t count, rl_dtype_t dtype, int root,
                        rl_request_t *req)
{
    return rooted(c, 0, in, out, count, dtype, root, req);
}

rl_status_t rl_gather(rl_comm_t c, const void *in, void *out, size_t count, rl_dtype_t dtype, int root)
{
    rl_request_t r = NULL;
    rl_status_t st = rooted(c, 1, in, out, count, dtype, root, &r);
    return rl_run_blocking(c, st, r);
}

rl_status_t rl_scatter(rl_comm_t c, const void *in, void *out, size_t count, rl_dtype_t dtype, int root)
{
    rl_request_t r = NULL;
    rl_status_t st = rooted(c, 0, in, out, count, dtype, root, &r);
    return rl_run_blocking(c, st, r);
}
