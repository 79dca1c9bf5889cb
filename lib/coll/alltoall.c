/*
 * All-to-all by pairwise exchange over the point-to-point service: every
 * rank posts its n - 1 receives, then its n - 1 sends, to peers in rotating
 * order (rank + k), so that no rank is everyone's first target. The
 * receives go first, so every clear-to-send is out before data is due.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll/p2p.h"
#include "core/comm.h"

typedef struct {
    struct rl_request **kids; /* the receives, then the sends */
    int nkids;
} a2a_t;

static a2a_t *A(const struct rl_request *r) { return RL_PRIV(r, a2a_t); }

static int usable(const struct rl_comm *c, const rl_call_t *call)
{
    (void)call;
    return c->nranks == 1 || rl_p2p_enabled(c);
}

static double cost(const struct rl_comm *c, const rl_call_t *call, const rl_model_t *m)
{
    return (c->nranks - 1) * (m->alpha_rdv_us + (double)call->bytes * m->beta_us_per_b);
}

static rl_status_t start(struct rl_comm *c, struct rl_request *r)
{
    size_t n = (size_t)c->nranks, blk = r->count * r->esize;
    if (blk)
        memcpy(r->out + (size_t)c->rank * blk, r->in + (size_t)c->rank * blk, blk);
    if (n == 1)
        return RL_OK;
    a2a_t *a = A(r);
    if (!(a->kids = calloc(2 * (n - 1), sizeof(*a->kids))))
        return RL_ERR_NO_MEMORY;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t k = 1; k < n; k++) {
            int p = (int)(((size_t)c->rank + (pass ? k : n - k)) % n);
            char *b = pass ? (char *)r->in + (size_t)p * blk : r->out + (size_t)p * blk;
            rl_status_t st = rl_p2p_coll(c, pass, b, r->count, r->dtype, p, NULL, &a->kids[a->nkids]);
            if (st != RL_OK)
                return st;
            a->nkids++;
        }
    }
    return RL_INPROGRESS;
}

static int progress(struct rl_comm *c, struct rl_request *r)
{
    a2a_t *a = A(r);
    for (int i = 0; i < a->nkids; i++)
        if (a->kids[i]->status != RL_OK)
            return c->failed != RL_OK;
    r->status = RL_OK;
    return 1;
}

static void release(struct rl_comm *c, struct rl_request *r)
{
    a2a_t *a = A(r);
    rl_p2p_drop_all(c, a->kids, a->nkids);
    free(a->kids);
    a->kids = NULL;
    a->nkids = 0;
}

static void describe_wait(struct rl_comm *c, struct rl_request *r, char *buf, size_t len)
{
    a2a_t *a = A(r);
    if (!rl_p2p_describe_running(c, a->kids, a->nkids, buf, len))
        snprintf(buf, len, "all_to_all %llu has not started", (unsigned long long)r->seq);
}

const rl_algo_t rl_algo_pairwise = {
    .id = RL_ALGO_ID_pairwise,
    .name = "pairwise",
    .desc = "pairwise exchange: n - 1 sends and receives in rotating order over the point-to-point connections",
    .colls = RL_COLL_BIT(RL_COLL_ALLTOALL),
    .state_size = sizeof(a2a_t),
    .usable = usable,
    .cost = cost,
    .start = start,
    .progress = progress,
    .release = release,
    .describe_wait = describe_wait,
    .on_p2p = 1,
};
