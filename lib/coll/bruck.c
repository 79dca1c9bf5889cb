/*
 * Bruck all-gather for small messages: ceil(log2 n) steps for any n,
 * against the ring's n - 1.
 *
 * A rank keeps the blocks it has in scratch, rotated so that slot i holds
 * the block of rank (rank + i) mod n; slot 0 is its own. At step k
 * (d = 2^k) it sends its first min(d, n - d) slots to rank - d and
 * receives as many from rank + d into slots d onwards. After the last step
 * every slot is full and the blocks are rotated into the output. Each step
 * talks to a different pair of peers, and every receive lands in its own
 * slots, so all of them are posted at the start.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll/p2p.h"
#include "core/comm.h"

#define MAX_STEPS 21

typedef struct {
    int steps, step;
    struct rl_request *send, *recv[MAX_STEPS];
} bruck_t;

static bruck_t *B(const struct rl_request *r) { return RL_PRIV(r, bruck_t); }

static int ceil_log2(int n)
{
    int m = 0;
    while ((1 << m) < n)
        m++;
    return m;
}

static int usable(const struct rl_comm *c, const rl_call_t *call)
{
    (void)call;
    return rl_p2p_enabled(c);
}

static double cost(const struct rl_comm *c, const rl_call_t *call, const rl_model_t *m)
{
    int n = c->nranks;
    return ceil_log2(n) * m->alpha_rdv_us + (double)(n - 1) * (double)call->bytes * m->beta_us_per_b;
}

static size_t blk(const struct rl_request *r) { return r->count * r->esize; }
static char *slot(struct rl_comm *c, const struct rl_request *r, int i) { return blk(r) ? c->scratch + (size_t)i * blk(r) : NULL; }
static int nblocks(int n, int d) { return d < n - d ? d : n - d; }

static rl_status_t msg(struct rl_comm *c, struct rl_request *r, int is_send, int first, int nb, int peer,
                       struct rl_request **out)
{
    return rl_p2p_coll(c, is_send, slot(c, r, first), r->count * (size_t)nb, r->dtype, peer, c->scratch_ent, out);
}

static rl_status_t post_send(struct rl_comm *c, struct rl_request *r)
{
    int n = c->nranks, d = 1 << B(r)->step;
    return msg(c, r, 1, 0, nblocks(n, d), (c->rank - d + n) % n, &B(r)->send);
}

static rl_status_t start(struct rl_comm *c, struct rl_request *r)
{
    int n = c->nranks;
    size_t b = blk(r);
    if (n == 1) {
        if (r->in != r->out && b)
            memmove(r->out, r->in, b);
        return RL_OK;
    }
    bruck_t *t = B(r);
    t->steps = ceil_log2(n);
    rl_status_t st = rl_comm_scratch(c, b * (size_t)n);
    if (st != RL_OK)
        return st;
    if (b)
        memcpy(slot(c, r, 0), r->in, b);
    for (int k = 0; k < t->steps; k++) {
        int d = 1 << k;
        if ((st = msg(c, r, 0, d, nblocks(n, d), (c->rank + d) % n, &t->recv[k])) != RL_OK)
            return st;
    }
    return (st = post_send(c, r)) == RL_OK ? RL_INPROGRESS : st;
}

static int progress(struct rl_comm *c, struct rl_request *r)
{
    bruck_t *t = B(r);
    while (c->failed == RL_OK) {
        if (t->send->status != RL_OK || t->recv[t->step]->status != RL_OK)
            return 0;
        rl_p2p_drop(c, &t->send);
        rl_p2p_drop(c, &t->recv[t->step]);
        if (++t->step == t->steps)
            break;
        if (post_send(c, r) != RL_OK) {
            rl_comm_fail(c, RL_ERR_NO_MEMORY, "rank %d: all_gather (bruck): no memory for a message", c->rank);
            return 1;
        }
    }
    if (c->failed != RL_OK)
        return 1;
    int n = c->nranks;
    size_t b = blk(r);
    for (int i = 0; i < n && b; i++) {
        char *dst = r->out + (size_t)((c->rank + i) % n) * b;
        if (dst != r->in || i)
            memcpy(dst, slot(c, r, i), b);
    }
    r->status = RL_OK;
    return 1;
}

static void release(struct rl_comm *c, struct rl_request *r)
{
    bruck_t *t = B(r);
    rl_p2p_drop(c, &t->send);
    rl_p2p_drop_all(c, t->recv, MAX_STEPS);
}

static void describe_wait(struct rl_comm *c, struct rl_request *r, char *buf, size_t len)
{
    bruck_t *t = B(r);
    struct rl_request *w[2] = {t->step < t->steps ? t->recv[t->step] : NULL, t->send};
    if (!rl_p2p_describe_running(c, w, 2, buf, len))
        snprintf(buf, len, "all_gather %llu (bruck) at step %d", (unsigned long long)r->seq, t->step);
}

const rl_algo_t rl_algo_bruck = {
    .id = RL_ALGO_ID_bruck,
    .name = "bruck",
    .desc = "Bruck all-gather: ceil(log2 n) steps for any n, blocks doubling, over the point-to-point connections",
    .colls = RL_COLL_BIT(RL_COLL_ALL_GATHER),
    .state_size = sizeof(bruck_t),
    .usable = usable,
    .cost = cost,
    .start = start,
    .progress = progress,
    .release = release,
    .describe_wait = describe_wait,
    .on_p2p = 1,
};
