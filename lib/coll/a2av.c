/*
 * All-to-allv, gather and scatter as two algorithms of the registry, built
 * like pairwise all-to-all: when the call reaches the head of the queue it
 * posts its point-to-point sends and receives (coll/p2p.c, the
 * collectives' matching space), so every byte moves zero-copy into the
 * receiver's buffer after its clear-to-send, and it is done when they are.
 *
 * - pairwise_v (all-to-allv): the self block is copied, then n - 1
 *   receives and n - 1 sends to peers in rotating order, as all-to-all.
 *   The counts and displacements are copied at the call (r->args), so the
 *   caller's arrays are free at once. The count in the call is 0 for
 *   selection: ranks pass different counts and must still pick alike.
 * - linear (gather, scatter): the root posts n - 1 receives (sends), in
 *   rotating order from itself, every other rank one send (receive).
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

#include "coll/p2p.h"
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
    if (c->nranks > 1 && !rl_p2p_enabled(c))
        return bad(c, RL_ERR_UNSUPPORTED,
                   "%s: point-to-point connections are off (RINGLET_P2P=%s, %d ranks); set RINGLET_P2P=on", name,
                   c->cfg.p2p, c->nranks);
    return c->failed;
}

/* ---- the algorithms' common part: a request made of messages ---- */

typedef struct {
    struct rl_request **kids;
    int nkids, cap;
} parts_t;

static parts_t *P(const struct rl_request *r) { return RL_PRIV(r, parts_t); }

static rl_status_t add_part(struct rl_comm *c, struct rl_request *r, int is_send, const void *buf, size_t count,
                            int peer)
{
    parts_t *p = P(r);
    if (!p->kids && !(p->kids = calloc((size_t)p->cap, sizeof(*p->kids))))
        return RL_ERR_NO_MEMORY;
    rl_status_t st = rl_p2p_coll(c, is_send, buf, count, r->dtype, peer, NULL, &p->kids[p->nkids]);
    if (st == RL_OK)
        p->nkids++;
    return st;
}

static int usable(const struct rl_comm *c, const rl_call_t *call)
{
    (void)call;
    return c->nranks == 1 || rl_p2p_enabled(c);
}

static int parts_progress(struct rl_comm *c, struct rl_request *r)
{
    parts_t *p = P(r);
    for (int i = 0; i < p->nkids; i++)
        if (p->kids[i]->status != RL_OK)
            return c->failed != RL_OK;
    r->status = RL_OK;
    return 1;
}

static void parts_release(struct rl_comm *c, struct rl_request *r)
{
    parts_t *p = P(r);
    rl_p2p_drop_all(c, p->kids, p->nkids);
    free(p->kids);
    p->kids = NULL;
    p->nkids = 0;
}

static void parts_describe_wait(struct rl_comm *c, struct rl_request *r, char *buf, size_t len)
{
    parts_t *p = P(r);
    if (!rl_p2p_describe_running(c, p->kids, p->nkids, buf, len))
        snprintf(buf, len, "%s %llu has not started", rl_coll_name(r->coll), (unsigned long long)r->seq);
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

/* r->args of an all-to-allv: this rank's counts and displacements. */
typedef struct {
    size_t *sc, *sd, *rc, *rd;
} vargs_t;

static rl_status_t a2av_start(struct rl_comm *c, struct rl_request *r)
{
    const vargs_t *v = r->args;
    size_t es = r->esize, n = (size_t)c->nranks, me = (size_t)c->rank;
    if (v->sc[me])
        memcpy(r->out + v->rd[me] * es, r->in + v->sd[me] * es, v->sc[me] * es);
    if (n == 1)
        return RL_OK;
    P(r)->cap = 2 * (int)(n - 1);
    /* receives first, so every clear-to-send is out before data is due;
     * peers in rotating order, so that no rank is everyone's first target */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t k = 1; k < n; k++) {
            size_t p = (me + (pass ? k : n - k)) % n;
            rl_status_t st = pass ? add_part(c, r, 1, r->in + v->sd[p] * es, v->sc[p], (int)p)
                                  : add_part(c, r, 0, r->out + v->rd[p] * es, v->rc[p], (int)p);
            if (st != RL_OK)
                return st;
        }
    }
    return RL_INPROGRESS;
}

static double a2av_cost(const struct rl_comm *c, const rl_call_t *call, const rl_model_t *m)
{
    (void)call; /* sizes differ per rank: only the message count is common */
    return (c->nranks - 1) * m->alpha_rdv_us;
}

const rl_algo_t rl_algo_pairwise_v = {
    .id = RL_ALGO_ID_pairwise_v,
    .name = "pairwise_v",
    .desc = "all-to-allv: n - 1 sends and receives of each rank's own sizes, rotating order, over point-to-point",
    .colls = RL_COLL_BIT(RL_COLL_ALLTOALLV),
    .state_size = sizeof(parts_t),
    .usable = usable,
    .cost = a2av_cost,
    .start = a2av_start,
    .progress = parts_progress,
    .release = parts_release,
    .describe_wait = parts_describe_wait,
    .on_p2p = 1,
};

rl_status_t rl_iall_to_allv(rl_comm_t c, const void *in, const size_t *scounts, const size_t *sdispls, void *out,
                            const size_t *rcounts, const size_t *rdispls, rl_dtype_t dtype, rl_request_t *req)
{
    if (!rl_comm_ok(c))
        return RL_ERR_INVALID_ARG;
    rl_status_t st = check_common(c, "rl_all_to_allv", dtype, req);
    if (st == RL_OK)
        st = a2av_check(c, in, scounts, sdispls, out, rcounts, rdispls, dtype);
    if (st != RL_OK)
        return st;
    size_t n = (size_t)c->nranks;
    vargs_t *v = malloc(sizeof(*v) + 4 * n * sizeof(size_t));
    if (!v)
        return RL_ERR_NO_MEMORY;
    v->sc = (size_t *)(v + 1), v->sd = v->sc + n, v->rc = v->sd + n, v->rd = v->rc + n;
    memcpy(v->sc, scounts, n * sizeof(size_t));
    memcpy(v->sd, sdispls, n * sizeof(size_t));
    memcpy(v->rc, rcounts, n * sizeof(size_t));
    memcpy(v->rd, rdispls, n * sizeof(size_t));
    return rl_submit_local(c, RL_COLL_ALLTOALLV, in, out, 0, dtype, 0, rl_dtype_size(dtype), v, req);
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

static rl_status_t linear_start(struct rl_comm *c, struct rl_request *r)
{
    int is_gather = r->coll == RL_COLL_GATHER;
    size_t blk = r->count * r->esize, n = (size_t)c->nranks, me = (size_t)c->rank;
    /* gather: in is every rank's block, out the root's n; scatter: the reverse */
    if (me != (size_t)r->root) {
        P(r)->cap = 1;
        rl_status_t st = add_part(c, r, is_gather, is_gather ? (void *)r->in : r->out, r->count, r->root);
        return st == RL_OK ? RL_INPROGRESS : st;
    }
    const char *own = is_gather ? r->in : r->out;
    char *many = is_gather ? r->out : (char *)r->in;
    if (blk && own != many + me * blk) /* not in place */
        memcpy(is_gather ? many + me * blk : r->out, is_gather ? r->in : many + me * blk, blk);
    if (n == 1)
        return RL_OK;
    P(r)->cap = (int)n - 1;
    /* rotating from the root, so that with several roots at once (a group)
     * no rank is everyone's first peer */
    for (size_t k = 1; k < n; k++) {
        size_t p = (me + k) % n;
        rl_status_t st = add_part(c, r, !is_gather, many + p * blk, r->count, (int)p);
        if (st != RL_OK)
            return st;
    }
    return RL_INPROGRESS;
}

static double linear_cost(const struct rl_comm *c, const rl_call_t *call, const rl_model_t *m)
{
    /* the root's n - 1 messages share its link */
    return (c->nranks - 1) * (m->alpha_rdv_us + (double)call->bytes * m->beta_us_per_b);
}

const rl_algo_t rl_algo_linear = {
    .id = RL_ALGO_ID_linear,
    .name = "linear",
    .desc = "gather/scatter: the root exchanges one message with every rank over point-to-point",
    .colls = RL_COLL_BIT(RL_COLL_GATHER) | RL_COLL_BIT(RL_COLL_SCATTER),
    .state_size = sizeof(parts_t),
    .usable = usable,
    .cost = linear_cost,
    .start = linear_start,
    .progress = parts_progress,
    .release = parts_release,
    .describe_wait = parts_describe_wait,
    .on_p2p = 1,
};

static rl_status_t rooted(struct rl_comm *c, int is_gather, const void *in, void *out, size_t count,
                          rl_dtype_t dtype, int root, rl_request_t *req)
{
    const char *name = is_gather ? "rl_gather" : "rl_scatter";
    if (!rl_comm_ok(c))
        return RL_ERR_INVALID_ARG;
    int inplace = 0;
    const void *one = is_gather ? in : out, *many = is_gather ? (const void *)out : in;
    rl_status_t st = check_common(c, name, dtype, req);
    if (st == RL_OK)
        st = rooted_check(c, name, one, many, count, dtype, root, &inplace);
    if (st != RL_OK)
        return st;
    /* the buffers a rank does not use are not looked at */
    if (root != c->rank && is_gather)
        out = NULL;
    else if (root != c->rank)
        in = NULL;
    return rl_submit_local(c, is_gather ? RL_COLL_GATHER : RL_COLL_SCATTER, in, out, count, dtype, root,
                           rl_dtype_size(dtype), NULL, req);
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
