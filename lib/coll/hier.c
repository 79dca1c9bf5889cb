/*
 * Hierarchical all-reduce for several hosts with several ranks each (as AI
 * fabrics are built: ranks of a host share memory, and the rank with local
 * index j of every host sits on rail j):
 *   1. reduce-scatter within the host: local rank j gathers slice j from
 *      every local rank and reduces it;
 *   2. all-reduce of slice j across hosts, among the ranks of local index
 *      j only (one exchange with each such rank: every rail carries 1/L of
 *      the data);
 *   3. all-gather within the host: local rank j hands slice j to the others.
 * Reductions run in a fixed order (local index, then host index), so every
 * rank holding a slice computes it bitwise alike.
 *
 * All messages go through the point-to-point service. Between two ranks of
 * one host there are two messages each way (steps 1 and 3), in that order
 * on both sides; ranks of different hosts meet only in step 2. Every
 * receive is posted at the start: a step-3 result cannot arrive before its
 * sender has this rank's step-1 data, which is then no longer needed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll/hier.h"
#include "coll/p2p.h"
#include "core/clock.h"
#include "core/comm.h"

typedef struct {
    rl_hier_geom_t g;
    int L, H, lidx, host; /* copies of g's, short to read */
    int *local, *rail;
    int step;
    struct rl_request **m; /* every message: see slot_of() */
    int nm;
} hier_t;

static hier_t *Hs(const struct rl_request *r) { return RL_PRIV(r, hier_t); }

int rl_hier_usable(const struct rl_comm *c)
{
    return rl_p2p_enabled(c) && c->nhosts >= 2 && c->ranks_per_host >= 2 && c->ranks_per_host <= RL_HIER_MAX_LOCAL;
}

rl_status_t rl_hier_geom(const struct rl_comm *c, rl_hier_geom_t *g)
{
    memset(g, 0, sizeof(*g));
    g->L = c->ranks_per_host;
    g->H = c->nhosts;
    g->host = c->host_of[c->rank];
    g->rail = calloc((size_t)g->H, sizeof(int));
    g->at = calloc((size_t)g->H * (size_t)g->L, sizeof(int));
    int *seen = calloc((size_t)g->H, sizeof(int));
    if (!g->rail || !g->at || !seen) {
        free(seen);
        rl_hier_geom_free(g);
        return RL_ERR_NO_MEMORY;
    }
    for (int q = 0; q < c->nranks; q++) {
        int x = c->host_of[q], li = seen[x]++;
        if (li < g->L)
            g->at[x * g->L + li] = q;
        if (q == c->rank)
            g->lidx = li;
    }
    for (int j = 0; j < g->L; j++)
        g->local[j] = g->at[g->host * g->L + j];
    for (int x = 0; x < g->H; x++)
        g->rail[x] = g->at[x * g->L + g->lidx];
    free(seen);
    return RL_OK;
}

void rl_hier_geom_free(rl_hier_geom_t *g)
{
    free(g->rail);
    free(g->at);
    g->rail = g->at = NULL;
}

int rl_binom_tree(int me, int root, int n, int *parent, int *kids, int maxkids)
{
    int v = (me - root + n) % n, nk = 0, mask = 1;
    *parent = -1;
    while (mask < n) {
        if (v & mask) {
            *parent = ((v - mask) + root) % n;
            break;
        }
        mask <<= 1;
    }
    for (mask >>= 1; mask > 0; mask >>= 1)
        if (v + mask < n && nk < maxkids)
            kids[nk++] = (v + mask + root) % n;
    return nk;
}

static int usable(const struct rl_comm *c, const rl_call_t *call)
{
    (void)call;
    return rl_hier_usable(c);
}

static double cost(const struct rl_comm *c, const rl_call_t *call, const rl_model_t *m)
{
    double L = c->ranks_per_host ? c->ranks_per_host : 1, H = c->nhosts ? c->nhosts : 1;
    double s = (double)call->bytes / L, a = m->alpha_rdv_us, b = m->beta_us_per_b, g = m->gamma_us_per_b;
    return (L - 1) * (a + s * b) + L * s * g      /* 1 */
           + (H - 1) * (a + s * b) + H * s * g    /* 2 */
           + (L - 1) * (a + s * b);               /* 3 */
}

static void slice(const struct rl_request *r, int L, int j, uint64_t *lo, uint64_t *len)
{
    rl_split(r->count, (uint64_t)L, (uint64_t)j, lo, len);
}

static size_t max_slice(const struct rl_request *r, int L) { return (r->count + (size_t)L - 1) / (size_t)L * r->esize; }

/* Scratch: L step-1 slots (by local index), H step-2 slots (by host), one
 * slot to reduce into. */
static char *slot(struct rl_comm *c, const struct rl_request *r, int i)
{
    return r->count ? c->scratch + (size_t)i * max_slice(r, Hs(r)->L) : NULL;
}

/* Message slots: step 1 receives/sends by local index, step 2 by host,
 * step 3 by local index. */
enum { S1R, S1S, S2R, S2S, S3R, S3S, NKIND };
static int slot_of(const hier_t *h, int kind, int i)
{
    int base = 0;
    for (int k = 0; k < kind; k++)
        base += (k == S2R || k == S2S) ? h->H : h->L;
    return base + i;
}

static rl_status_t post(struct rl_comm *c, struct rl_request *r, int kind, int i, int is_send, const char *buf,
                        uint64_t count, int peer, rl_regent_t *reg)
{
    return rl_p2p_coll(c, is_send, buf, count, r->dtype, peer, reg, &Hs(r)->m[slot_of(Hs(r), kind, i)]);
}

static int done(const hier_t *h, int kind, int n)
{
    for (int i = 0; i < n; i++) {
        struct rl_request *m = h->m[slot_of(h, kind, i)];
        if (m && m->status != RL_OK)
            return 0;
    }
    return 1;
}

static rl_status_t start(struct rl_comm *c, struct rl_request *r)
{
    if (rl_coll_trivial(c, r))
        return RL_OK;
    hier_t *h = Hs(r);
    rl_status_t st = rl_hier_geom(c, &h->g);
    if (st != RL_OK)
        return st;
    h->L = h->g.L, h->H = h->g.H, h->lidx = h->g.lidx, h->host = h->g.host;
    h->local = h->g.local, h->rail = h->g.rail;
    h->nm = 4 * h->L + 2 * h->H;
    h->m = calloc((size_t)h->nm, sizeof(*h->m));
    if (!h->m)
        return RL_ERR_NO_MEMORY;
    size_t bytes = r->count * r->esize;
    if ((st = rl_comm_scratch(c, max_slice(r, h->L) * (size_t)(h->L + h->H + 1))) != RL_OK ||
        (st = rl_reg_acquire(c, r->in, bytes, RL_ACCESS_LOCAL, &r->in_reg)) != RL_OK ||
        (st = rl_reg_acquire(c, r->out, bytes, RL_ACCESS_LOCAL | RL_ACCESS_REMOTE_WRITE, &r->out_reg)) != RL_OK)
        return st;
    uint64_t mlo, mlen;
    slice(r, h->L, h->lidx, &mlo, &mlen);
    /* receives: step 1 (my slice from every local rank), step 2 (my slice's
     * partial from every host), step 3 (every other slice) */
    for (int j = 0; j < h->L && st == RL_OK; j++)
        if (j != h->lidx)
            st = post(c, r, S1R, j, 0, slot(c, r, j), mlen, h->local[j], c->scratch_ent);
    for (int x = 0; x < h->H && st == RL_OK; x++)
        if (x != h->host)
            st = post(c, r, S2R, x, 0, slot(c, r, h->L + x), mlen, h->rail[x], c->scratch_ent);
    for (int j = 0; j < h->L && st == RL_OK; j++) {
        uint64_t lo, len;
        slice(r, h->L, j, &lo, &len);
        if (j != h->lidx)
            st = post(c, r, S3R, j, 0, r->out + lo * r->esize, len, h->local[j], r->out_reg);
    }
    /* step 1's sends: slice j of my input to local rank j */
    for (int j = 0; j < h->L && st == RL_OK; j++) {
        uint64_t lo, len;
        slice(r, h->L, j, &lo, &len);
        if (j != h->lidx)
            st = post(c, r, S1S, j, 1, r->in + lo * r->esize, len, h->local[j], r->in_reg);
    }
    return st == RL_OK ? RL_INPROGRESS : st;
}

/* acc = contributions in order; mine is `own`, the others in their slots. */
static void fold(struct rl_comm *c, struct rl_request *r, int n, int me, const char *own, int first_slot,
                 uint64_t len, char *acc)
{
    size_t bytes = len * r->esize;
    for (int i = 0; i < n; i++) {
        const char *x = i == me ? own : slot(c, r, first_slot + i);
        if (i == 0)
            memcpy(acc, x, bytes);
        else
            r->fn(acc, acc, x, len);
    }
}

static int progress(struct rl_comm *c, struct rl_request *r)
{
    hier_t *h = Hs(r);
    uint64_t mlo, mlen;
    slice(r, h->L, h->lidx, &mlo, &mlen);
    char *mine = r->out + mlo * r->esize, *acc = slot(c, r, h->L + h->H);
    if (h->step == 0) {
        if (!done(h, S1R, h->L))
            return c->failed != RL_OK;
        if (mlen)
            fold(c, r, h->L, h->lidx, r->in + mlo * r->esize, 0, mlen, acc);
        for (int x = 0; x < h->H; x++)
            if (x != h->host && post(c, r, S2S, x, 1, acc, mlen, h->rail[x], c->scratch_ent) != RL_OK) {
                rl_comm_fail(c, RL_ERR_NO_MEMORY, "rank %d: all_reduce (hier): no memory for a message", c->rank);
                return 1;
            }
        h->step = 1;
    }
    if (h->step == 1) {
        /* the partial goes out from acc: reduce across hosts once it left */
        if (!done(h, S2R, h->H) || !done(h, S2S, h->H))
            return c->failed != RL_OK;
        if (mlen) {
            fold(c, r, h->H, h->host, acc, h->L, mlen, mine);
            if (r->op == RL_AVG)
                rl_reduce_scale(mine, mlen, r->dtype, c->nranks);
        }
        for (int j = 0; j < h->L; j++)
            if (j != h->lidx && post(c, r, S3S, j, 1, mine, mlen, h->local[j], r->out_reg) != RL_OK) {
                rl_comm_fail(c, RL_ERR_NO_MEMORY, "rank %d: all_reduce (hier): no memory for a message", c->rank);
                return 1;
            }
        h->step = 2;
    }
    if (!done(h, S1S, h->L) || !done(h, S3R, h->L) || !done(h, S3S, h->L))
        return c->failed != RL_OK;
    r->status = RL_OK;
    return 1;
}

static void release(struct rl_comm *c, struct rl_request *r)
{
    hier_t *h = Hs(r);
    rl_p2p_drop_all(c, h->m, h->nm);
    free(h->m);
    rl_hier_geom_free(&h->g);
    h->m = NULL;
    h->rail = NULL;
    h->nm = 0;
}

static void describe_wait(struct rl_comm *c, struct rl_request *r, char *buf, size_t len)
{
    hier_t *h = Hs(r);
    if (!rl_p2p_describe_running(c, h->m, h->nm, buf, len))
        snprintf(buf, len, "all_reduce %llu (hier) at step %d", (unsigned long long)r->seq, h->step + 1);
}

const rl_algo_t rl_algo_hier = {
    .id = RL_ALGO_ID_hier,
    .name = "hier",
    .desc = "hierarchical: reduce-scatter in the host, all-reduce of each slice across hosts on its rail, all-gather",
    .colls = RL_COLL_BIT(RL_COLL_ALL_REDUCE),
    .state_size = sizeof(hier_t),
    .usable = usable,
    .cost = cost,
    .start = start,
    .progress = progress,
    .release = release,
    .describe_wait = describe_wait,
    .on_p2p = 1,
};
