/*
 * Hierarchical broadcast for several hosts with as many ranks each: a
 * binomial tree over the hosts on the root's rail (the ranks of the
 * root's local index), then a binomial tree within every host rooted at
 * that rail's rank. The message crosses between hosts H - 1 times in
 * ceil(log2 H) message times, and within each host in ceil(log2 L).
 * A rank receives once (from its rail parent, or its local parent) and
 * then sends to its children, rail ones first; two ranks exchange at most
 * one message. Empty calls still send their empty messages.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll/hier.h"
#include "coll/p2p.h"

#define MAX_KIDS 32 /* binomial children: log2 of the 2^31 positions there could be */

typedef struct {
    rl_hier_geom_t g;
    int parent;            /* rank this one receives from, -1 at the root */
    int kids[2 * MAX_KIDS]; /* ranks it sends to */
    int nkids;
    int sent;
    struct rl_request *up, *down[2 * MAX_KIDS];
} hbc_t;

static hbc_t *B(const struct rl_request *r) { return RL_PRIV(r, hbc_t); }

static int usable(const struct rl_comm *c, const rl_call_t *call)
{
    (void)call;
    return rl_hier_usable(c);
}

static int ceil_log2(int n)
{
    int k = 0;
    while ((1 << k) < n)
        k++;
    return k;
}

static double cost(const struct rl_comm *c, const rl_call_t *call, const rl_model_t *m)
{
    int L = c->ranks_per_host ? c->ranks_per_host : 1, H = c->nhosts ? c->nhosts : 1;
    return (ceil_log2(H) + ceil_log2(L)) * (m->alpha_rdv_us + (double)call->bytes * m->beta_us_per_b);
}

/* Parent and children: on the root's rail the host tree, then the local tree. */
static void shape(const struct rl_comm *c, int root, hbc_t *b)
{
    const rl_hier_geom_t *g = &b->g;
    int L = g->L, rhost = c->host_of[root], rj = 0, p, kids[MAX_KIDS];
    for (int j = 0; j < L; j++)
        if (g->at[rhost * L + j] == root)
            rj = j;
    b->parent = -1;
    b->nkids = 0;
    if (g->lidx == rj) {
        int nk = rl_binom_tree(g->host, rhost, g->H, &p, kids, MAX_KIDS);
        if (p >= 0)
            b->parent = g->at[p * L + rj];
        for (int i = 0; i < nk; i++)
            b->kids[b->nkids++] = g->at[kids[i] * L + rj];
    }
    int nk = rl_binom_tree(g->lidx, rj, L, &p, kids, MAX_KIDS);
    if (p >= 0)
        b->parent = g->local[p];
    for (int i = 0; i < nk; i++)
        b->kids[b->nkids++] = g->local[kids[i]];
}

static rl_status_t start(struct rl_comm *c, struct rl_request *r)
{
    size_t bytes = r->count * r->esize;
    if (c->nranks == 1) {
        if (r->in != r->out && bytes)
            memmove(r->out, r->in, bytes);
        return RL_OK;
    }
    hbc_t *b = B(r);
    rl_status_t st = rl_hier_geom(c, &b->g);
    if (st != RL_OK)
        return st;
    shape(c, r->root, b);
    if (bytes && (st = rl_reg_acquire(c, r->out, bytes, RL_ACCESS_LOCAL | RL_ACCESS_REMOTE_WRITE, &r->out_reg)) !=
                     RL_OK)
        return st;
    if (b->parent < 0) {
        if (r->in != r->out && bytes)
            memcpy(r->out, r->in, bytes);
        return RL_INPROGRESS;
    }
    st = rl_p2p_coll(c, 0, r->out, r->count, r->dtype, b->parent, r->out_reg, &b->up);
    return st == RL_OK ? RL_INPROGRESS : st;
}

static int progress(struct rl_comm *c, struct rl_request *r)
{
    hbc_t *b = B(r);
    if (c->failed != RL_OK)
        return 1;
    if (b->up && b->up->status != RL_OK)
        return 0;
    for (; b->sent < b->nkids; b->sent++)
        if (rl_p2p_coll(c, 1, r->out, r->count, r->dtype, b->kids[b->sent], r->out_reg, &b->down[b->sent]) != RL_OK) {
            rl_comm_fail(c, RL_ERR_NO_MEMORY, "rank %d: broadcast (hier): no memory for a message", c->rank);
            return 1;
        }
    for (int i = 0; i < b->nkids; i++)
        if (b->down[i]->status != RL_OK)
            return 0;
    r->status = RL_OK;
    return 1;
}

static void release(struct rl_comm *c, struct rl_request *r)
{
    hbc_t *b = B(r);
    rl_p2p_drop(c, &b->up);
    rl_p2p_drop_all(c, b->down, b->nkids);
    rl_hier_geom_free(&b->g);
}

static void describe_wait(struct rl_comm *c, struct rl_request *r, char *buf, size_t len)
{
    hbc_t *b = B(r);
    if (!rl_p2p_describe_running(c, &b->up, 1, buf, len) && !rl_p2p_describe_running(c, b->down, b->nkids, buf, len))
        snprintf(buf, len, "broadcast %llu (hier) from root %d", (unsigned long long)r->seq, r->root);
}

const rl_algo_t rl_algo_hier_bcast = {
    .id = RL_ALGO_ID_hier_bcast,
    .name = "hier", /* names are per collective */
    .desc = "hierarchical broadcast: binomial tree over the hosts on the root's rail, then one within each host",
    .colls = RL_COLL_BIT(RL_COLL_BROADCAST),
    .state_size = sizeof(hbc_t),
    .usable = usable,
    .cost = cost,
    .start = start,
    .progress = progress,
    .release = release,
    .describe_wait = describe_wait,
    .on_p2p = 1,
};
