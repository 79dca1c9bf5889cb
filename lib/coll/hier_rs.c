/*
 * Hierarchical reduce-scatter for several hosts with as many ranks each,
 * the mirror of the hierarchical all-gather:
 *   1. within the host: every rank sends local rank j the blocks of the
 *      ranks on rail j (local index j on every host); rank (h, j) reduces
 *      them, in local-index order, into host h's partial sums of those H
 *      blocks;
 *   2. across hosts on the rail: it sends the partial of block (x, j) to
 *      rank (x, j) and reduces the H partials of its own block, in host
 *      order, into its output.
 * Every byte crosses between hosts once, each rail carrying 1/L of them.
 * Two ranks exchange messages of one step only (local peers step 1, rail
 * peers step 2), posted in host order on both sides; every receive is
 * posted at the start. Empty calls still send their empty messages.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll/hier.h"
#include "coll/p2p.h"

typedef struct {
    rl_hier_geom_t g;
    int step;
    struct rl_request **m; /* see slot_of() */
    int nm;
} hrs_t;

static hrs_t *S(const struct rl_request *r) { return RL_PRIV(r, hrs_t); }

/* Messages: local receive/send by (local index, host), rail receive/send by host. */
enum { LOC_R, LOC_S, RAIL_R, RAIL_S };
static struct rl_request **slot_of(hrs_t *s, int kind, int j, int x)
{
    int H = s->g.H, L = s->g.L;
    switch (kind) {
    case LOC_R: return &s->m[j * H + x];
    case LOC_S: return &s->m[L * H + j * H + x];
    case RAIL_R: return &s->m[2 * L * H + x];
    default: return &s->m[2 * L * H + H + x];
    }
}

static int usable(const struct rl_comm *c, const rl_call_t *call)
{
    (void)call;
    return rl_hier_usable(c);
}

/* Two message latencies; (L - 1) H blocks out and reduced in step 1, H - 1
 * in step 2. */
static double cost(const struct rl_comm *c, const rl_call_t *call, const rl_model_t *m)
{
    double L = c->ranks_per_host ? c->ranks_per_host : 1, H = c->nhosts ? c->nhosts : 1;
    double blocks = (L - 1) * H + (H - 1), b = (double)call->bytes;
    return 2 * m->alpha_rdv_us + blocks * b * (m->beta_us_per_b + m->gamma_us_per_b);
}

static size_t blk(const struct rl_request *r) { return r->count * r->esize; }
static const char *in_block(const struct rl_request *r, int rank) { return r->in + (size_t)rank * blk(r); }

/* Scratch: [L x H] blocks from the local ranks (by local index, then host),
 * [H] partials from the rail (by host), [H] this host's partials. */
static char *scr(struct rl_comm *c, const struct rl_request *r, size_t i)
{
    return blk(r) ? c->scratch + i * blk(r) : NULL;
}
static char *from_local(struct rl_comm *c, struct rl_request *r, int j, int x)
{
    return scr(c, r, (size_t)j * (size_t)S(r)->g.H + (size_t)x);
}
static char *from_rail(struct rl_comm *c, struct rl_request *r, int x)
{
    return scr(c, r, (size_t)S(r)->g.L * (size_t)S(r)->g.H + (size_t)x);
}
static char *partial(struct rl_comm *c, struct rl_request *r, int x)
{
    return scr(c, r, (size_t)(S(r)->g.L + 1) * (size_t)S(r)->g.H + (size_t)x);
}

static rl_status_t post(struct rl_comm *c, struct rl_request *r, struct rl_request **slot, int is_send,
                        const char *buf, int peer, rl_regent_t *reg)
{
    return rl_p2p_coll(c, is_send, buf, r->count, r->dtype, peer, reg, slot);
}

static rl_status_t start(struct rl_comm *c, struct rl_request *r)
{
    if (c->nranks == 1) /* rl_coll_trivial copies in to out */
        return rl_coll_trivial(c, r) ? RL_OK : RL_ERR_INTERNAL;
    hrs_t *s = S(r);
    rl_status_t st = rl_hier_geom(c, &s->g);
    if (st != RL_OK)
        return st;
    int H = s->g.H, L = s->g.L, me = s->g.lidx;
    s->nm = 2 * L * H + 2 * H;
    if (!(s->m = calloc((size_t)s->nm, sizeof(*s->m))))
        return RL_ERR_NO_MEMORY;
    size_t b = blk(r);
    if ((st = rl_comm_scratch(c, b * (size_t)(L + 2) * (size_t)H)) != RL_OK ||
        (b && (st = rl_reg_acquire(c, r->in, b * (size_t)c->nranks, RL_ACCESS_LOCAL, &r->in_reg)) != RL_OK))
        return st;
    for (int j = 0; j < L && st == RL_OK; j++)
        for (int x = 0; j != me && x < H && st == RL_OK; x++)
            st = post(c, r, slot_of(s, LOC_R, j, x), 0, from_local(c, r, j, x), s->g.local[j], c->scratch_ent);
    for (int x = 0; x < H && st == RL_OK; x++)
        if (x != s->g.host)
            st = post(c, r, slot_of(s, RAIL_R, 0, x), 0, from_rail(c, r, x), s->g.rail[x], c->scratch_ent);
    /* step 1's sends: to local rank j the blocks of rail j's ranks, in host order */
    for (int j = 0; j < L && st == RL_OK; j++)
        for (int x = 0; j != me && x < H && st == RL_OK; x++)
            st = post(c, r, slot_of(s, LOC_S, j, x), 1, in_block(r, s->g.at[x * L + j]), s->g.local[j], r->in_reg);
    return st == RL_OK ? RL_INPROGRESS : st;
}

/* acc = a0 op a1 op ... in order; src(i) gives the i-th contribution. */
static void fold_into(struct rl_request *r, char *acc, const char *const *src, int n)
{
    for (int i = 0; i < n; i++) {
        if (i == 0)
            memcpy(acc, src[i], blk(r));
        else
            r->fn(acc, acc, src[i], r->count);
    }
}

static int progress(struct rl_comm *c, struct rl_request *r)
{
    hrs_t *s = S(r);
    int H = s->g.H, L = s->g.L, me = s->g.lidx;
    if (c->failed != RL_OK)
        return 1;
    if (s->step == 0) {
        if (!rl_p2p_all_ok(&s->m[0], L * H)) /* step 1's receives */
            return 0;
        const char **src = malloc(sizeof(char *) * (size_t)(L > H ? L : H));
        if (!src) {
            rl_comm_fail(c, RL_ERR_NO_MEMORY, "rank %d: reduce_scatter (hier): no memory", c->rank);
            return 1;
        }
        for (int x = 0; x < H && blk(r); x++) { /* host partial of rail block (x, me), local order */
            for (int j = 0; j < L; j++)
                src[j] = j == me ? in_block(r, s->g.at[x * L + me]) : from_local(c, r, j, x);
            fold_into(r, partial(c, r, x), src, L);
        }
        free(src);
        for (int x = 0; x < H; x++)
            if (x != s->g.host &&
                post(c, r, slot_of(s, RAIL_S, 0, x), 1, partial(c, r, x), s->g.rail[x], c->scratch_ent) != RL_OK) {
                rl_comm_fail(c, RL_ERR_NO_MEMORY, "rank %d: reduce_scatter (hier): no memory for a message", c->rank);
                return 1;
            }
        s->step = 1;
    }
    if (!rl_p2p_all_ok(s->m, s->nm))
        return 0;
    if (blk(r)) { /* my block: the hosts' partials in host order */
        const char **src = malloc(sizeof(char *) * (size_t)H);
        if (!src) {
            rl_comm_fail(c, RL_ERR_NO_MEMORY, "rank %d: reduce_scatter (hier): no memory", c->rank);
            return 1;
        }
        for (int x = 0; x < H; x++)
            src[x] = x == s->g.host ? partial(c, r, x) : from_rail(c, r, x);
        fold_into(r, r->out, src, H);
        free(src);
        if (r->op == RL_AVG)
            rl_reduce_scale(r->out, r->count, r->dtype, c->nranks);
    }
    r->status = RL_OK;
    return 1;
}

static void release(struct rl_comm *c, struct rl_request *r)
{
    hrs_t *s = S(r);
    rl_p2p_drop_all(c, s->m, s->nm);
    free(s->m);
    rl_hier_geom_free(&s->g);
    s->m = NULL;
    s->nm = 0;
}

static void describe_wait(struct rl_comm *c, struct rl_request *r, char *buf, size_t len)
{
    hrs_t *s = S(r);
    if (!rl_p2p_describe_running(c, s->m, s->nm, buf, len))
        snprintf(buf, len, "reduce_scatter %llu (hier) at step %d", (unsigned long long)r->seq, s->step + 1);
}

const rl_algo_t rl_algo_hier_rs = {
    .id = RL_ALGO_ID_hier_rs,
    .name = "hier", /* names are per collective */
    .desc = "hierarchical reduce-scatter: rail blocks reduced within the host, then the partials across hosts",
    .colls = RL_COLL_BIT(RL_COLL_REDUCE_SCATTER),
    .state_size = sizeof(hrs_t),
    .usable = usable,
    .cost = cost,
    .start = start,
    .progress = progress,
    .release = release,
    .describe_wait = describe_wait,
    .on_p2p = 1,
};
