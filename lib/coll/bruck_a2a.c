/*
 * Bruck all-to-all for small messages: ceil(log2 n) messages per rank
 * instead of n - 1, each carrying about half of the blocks.
 *
 * The input is first rotated into scratch so that slot i holds the block
 * for rank (rank + i) mod n. At step k (d = 2^k) a rank packs the slots
 * whose index has bit k set, sends them to rank + d, receives as many from
 * rank - d and unpacks them into the same slots. After the last step slot
 * i holds the block rank - i sent to this rank. Every step talks to its own
 * pair of peers and receives into its own part of scratch, so all receives
 * are posted at the start; a step's send goes once the step before it has
 * been unpacked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll/p2p.h"
#include "core/comm.h"

#define MAX_STEPS 21

typedef struct {
    int steps, step;
    size_t recv_off[MAX_STEPS]; /* where step k's receive lands, in blocks after T and S */
    struct rl_request *send, *recv[MAX_STEPS];
} ba_t;

static ba_t *A(const struct rl_request *r) { return RL_PRIV(r, ba_t); }

static int ceil_log2(int n)
{
    int m = 0;
    while ((1 << m) < n)
        m++;
    return m;
}

static int nset(int n, int d)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += (i & d) != 0;
    return k;
}

static int usable(const struct rl_comm *c, const rl_call_t *call)
{
    (void)call;
    return c->nranks == 1 || rl_p2p_enabled(c);
}

static double cost(const struct rl_comm *c, const rl_call_t *call, const rl_model_t *m)
{
    int n = c->nranks, lg = ceil_log2(n);
    double b = (double)call->bytes;
    /* each step moves about half the blocks, and packs and unpacks them */
    return lg * (m->alpha_rdv_us + (n / 2.0) * b * (m->beta_us_per_b + 2 * m->gamma_us_per_b / 4));
}

static size_t blk(const struct rl_request *r) { return r->count * r->esize; }
/* Scratch: T (n slots), S (packing, n slots), then every step's receive. */
static char *T(struct rl_comm *c, const struct rl_request *r, size_t i) { return c->scratch + i * blk(r); }
static char *S(struct rl_comm *c, const struct rl_request *r) { return T(c, r, (size_t)c->nranks); }
static char *R(struct rl_comm *c, const struct rl_request *r, int k)
{
    return T(c, r, 2 * (size_t)c->nranks + A(r)->recv_off[k]);
}

static rl_status_t msg(struct rl_comm *c, struct rl_request *r, int is_send, char *buf, int nb, int peer,
                       struct rl_request **out)
{
    return rl_p2p_coll(c, is_send, buf, r->count * (size_t)nb, r->dtype, peer, c->scratch_ent, out);
}

/* Pack step k's slots and send them. */
static rl_status_t post_send(struct rl_comm *c, struct rl_request *r)
{
    int n = c->nranks, d = 1 << A(r)->step, j = 0;
    for (int i = 0; i < n && blk(r); i++)
        if (i & d)
            memcpy(S(c, r) + (size_t)j++ * blk(r), T(c, r, (size_t)i), blk(r));
    return msg(c, r, 1, S(c, r), nset(n, d), (c->rank + d) % n, &A(r)->send);
}

static rl_status_t start(struct rl_comm *c, struct rl_request *r)
{
    int n = c->nranks;
    size_t b = blk(r);
    if (n == 1) {
        if (b)
            memcpy(r->out, r->in, b);
        return RL_OK;
    }
    ba_t *a = A(r);
    a->steps = ceil_log2(n);
    size_t total = 0;
    for (int k = 0; k < a->steps; k++) {
        a->recv_off[k] = total;
        total += (size_t)nset(n, 1 << k);
    }
    rl_status_t st = rl_comm_scratch(c, b * (2 * (size_t)n + total));
    if (st != RL_OK)
        return st;
    for (int i = 0; i < n && b; i++)
        memcpy(T(c, r, (size_t)i), r->in + (size_t)((c->rank + i) % n) * b, b);
    for (int k = 0; k < a->steps; k++) {
        int d = 1 << k;
        if ((st = msg(c, r, 0, R(c, r, k), nset(n, d), (c->rank - d + n) % n, &a->recv[k])) != RL_OK)
            return st;
    }
    return (st = post_send(c, r)) == RL_OK ? RL_INPROGRESS : st;
}

static int progress(struct rl_comm *c, struct rl_request *r)
{
    ba_t *a = A(r);
    int n = c->nranks;
    size_t b = blk(r);
    while (c->failed == RL_OK) {
        if (a->send->status != RL_OK || a->recv[a->step]->status != RL_OK)
            return 0;
        int d = 1 << a->step, j = 0;
        for (int i = 0; i < n && b; i++)
            if (i & d)
                memcpy(T(c, r, (size_t)i), R(c, r, a->step) + (size_t)j++ * b, b);
        rl_p2p_drop(c, &a->send);
        rl_p2p_drop(c, &a->recv[a->step]);
        if (++a->step == a->steps)
            break;
        if (post_send(c, r) != RL_OK) {
            rl_comm_fail(c, RL_ERR_NO_MEMORY, "rank %d: all_to_all (bruck): no memory for a message", c->rank);
            return 1;
        }
    }
    if (c->failed != RL_OK)
        return 1;
    for (int i = 0; i < n && b; i++)
        memcpy(r->out + (size_t)((c->rank - i + n) % n) * b, T(c, r, (size_t)i), b);
    r->status = RL_OK;
    return 1;
}

static void release(struct rl_comm *c, struct rl_request *r)
{
    ba_t *a = A(r);
    rl_p2p_drop(c, &a->send);
    rl_p2p_drop_all(c, a->recv, MAX_STEPS);
}

static void describe_wait(struct rl_comm *c, struct rl_request *r, char *buf, size_t len)
{
    ba_t *a = A(r);
    struct rl_request *w[2] = {a->step < a->steps ? a->recv[a->step] : NULL, a->send};
    if (!rl_p2p_describe_running(c, w, 2, buf, len))
        snprintf(buf, len, "all_to_all %llu (bruck) at step %d", (unsigned long long)r->seq, a->step);
}

const rl_algo_t rl_algo_bruck_a2a = {
    .id = RL_ALGO_ID_bruck_a2a,
    .name = "bruck", /* the all-gather of that name is another entry: names are per collective */
    .desc = "Bruck all-to-all: ceil(log2 n) messages of about half the blocks each, packed through scratch",
    .colls = RL_COLL_BIT(RL_COLL_ALLTOALL),
    .state_size = sizeof(ba_t),
    .usable = usable,
    .cost = cost,
    .start = start,
    .progress = progress,
    .release = release,
    .describe_wait = describe_wait,
    .on_p2p = 1,
};
