/*
 * Binomial-tree broadcast and reduce for small and medium messages:
 * ceil(log2 n) message times instead of the chain's n - 1.
 *
 * Ranks are renumbered relative to the root (v = rank - root mod n). The
 * parent of v clears its lowest set bit; its children are v + 2^k for
 * every 2^k below that bit (below n for the root). A broadcast receives
 * from the parent into the output and then sends to the children, largest
 * subtree first; a reduce posts a receive per child into its own part of
 * the scratch buffer, reduces input and children in one fixed order (so
 * results are bitwise reproducible), and sends the partial result up. All
 * messages go through the point-to-point service in its collective
 * matching space; between a parent and a child there is one message per
 * operation, so the pair's posting order always matches.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll/p2p.h"
#include "core/comm.h"

#define MAX_KIDS 21

typedef struct {
    int parent;               /* real rank; -1 at the root */
    int nkids;
    int kids[MAX_KIDS];       /* real ranks, largest subtree first */
    struct rl_request *up;    /* broadcast: from the parent; reduce: to it */
    struct rl_request *down[MAX_KIDS]; /* broadcast: to the children; reduce: from them */
    int phase;                /* 0: waiting for the parent's data / the children's */
} tree_t;

static tree_t *T(const struct rl_request *r) { return RL_PRIV(r, tree_t); }

static int ceil_log2(int n)
{
    int m = 0;
    while ((1 << m) < n)
        m++;
    return m;
}

static void shape(const struct rl_comm *c, int root, tree_t *t)
{
    int n = c->nranks, v = (c->rank - root + n) % n;
    int low = v ? (v & -v) : 1 << ceil_log2(n);
    t->parent = v ? (v - low + root) % n : -1;
    t->nkids = 0;
    for (int mask = low >> 1; mask > 0; mask >>= 1)
        if (v + mask < n)
            t->kids[t->nkids++] = (v + mask + root) % n;
}

static int usable(const struct rl_comm *c, const rl_call_t *call)
{
    (void)call;
    return rl_p2p_enabled(c);
}

static double cost(const struct rl_comm *c, const rl_call_t *call, const rl_model_t *m)
{
    double b = (double)call->bytes, per = m->alpha_rdv_us + b * m->beta_us_per_b;
    if (call->coll == RL_COLL_REDUCE)
        per += b * m->gamma_us_per_b;
    return ceil_log2(c->nranks) * per;
}

/* A message of this operation; reg (if any) is the registration it uses. */
static rl_status_t post(struct rl_comm *c, struct rl_request *r, int is_send, const void *buf, int peer,
                        rl_regent_t *reg, struct rl_request **out)
{
    return rl_p2p_coll(c, is_send, buf, r->count, r->dtype, peer, reg, out);
}

static size_t bytes_of(const struct rl_request *r) { return r->count * r->esize; }

/* Reduce: children's partial results land in scratch slots 1..nkids;
 * slot 0 holds this rank's own partial result on the way up. */
static char *slot(struct rl_comm *c, const struct rl_request *r, int i)
{
    return bytes_of(r) ? c->scratch + (size_t)i * bytes_of(r) : NULL;
}

static rl_status_t start(struct rl_comm *c, struct rl_request *r)
{
    tree_t *t = T(r);
    shape(c, r->root, t);
    int root = t->parent < 0;
    size_t bytes = bytes_of(r);
    if (c->nranks == 1) {
        if (r->in != r->out && bytes)
            memmove(r->out, r->in, bytes);
        return RL_OK;
    }
    /* an empty call still sends its (empty) messages, as every call does */
    rl_status_t st;
    if (r->coll == RL_COLL_BROADCAST) {
        if (root) {
            if (r->in != r->out && bytes)
                memcpy(r->out, r->in, bytes);
            t->phase = 1; /* nothing to wait for: the children next */
            return RL_INPROGRESS;
        }
        return (st = post(c, r, 0, r->out, t->parent, NULL, &t->up)) == RL_OK ? RL_INPROGRESS : st;
    }
    if ((st = rl_comm_scratch(c, bytes * (size_t)(t->nkids + 1))) != RL_OK)
        return st;
    for (int i = 0; i < t->nkids; i++)
        if ((st = post(c, r, 0, slot(c, r, i + 1), t->kids[i], c->scratch_ent, &t->down[i])) != RL_OK)
            return st;
    return RL_INPROGRESS;
}

static int progress_bcast(struct rl_comm *c, struct rl_request *r)
{
    tree_t *t = T(r);
    if (t->phase == 0) {
        if (t->up->status != RL_OK)
            return c->failed != RL_OK;
        rl_p2p_drop(c, &t->up);
        t->phase = 1;
    }
    if (t->phase == 1) {
        for (int i = 0; i < t->nkids; i++)
            if (post(c, r, 1, r->out, t->kids[i], NULL, &t->down[i]) != RL_OK) {
                rl_comm_fail(c, RL_ERR_NO_MEMORY, "rank %d: broadcast (tree): no memory for a message", c->rank);
                return 1;
            }
        t->phase = 2;
    }
    if (!rl_p2p_all_ok(t->down, t->nkids))
        return c->failed != RL_OK;
    r->status = RL_OK;
    return 1;
}

static int progress_reduce(struct rl_comm *c, struct rl_request *r)
{
    tree_t *t = T(r);
    int root = t->parent < 0;
    if (t->phase == 0) {
        if (!rl_p2p_all_ok(t->down, t->nkids))
            return c->failed != RL_OK;
        /* input, then the children in order: the same order on every run */
        char *acc = root ? r->out : slot(c, r, 0);
        const char *cur = r->in;
        for (int i = 0; i < t->nkids && r->count; i++) {
            r->fn(acc, cur, slot(c, r, i + 1), r->count);
            cur = acc;
        }
        if (cur != acc && r->count)
            memcpy(acc, cur, bytes_of(r));
        if (root && r->op == RL_AVG && r->count)
            rl_reduce_scale(acc, r->count, r->dtype, c->nranks);
        for (int i = 0; i < t->nkids; i++)
            rl_p2p_drop(c, &t->down[i]);
        if (root) {
            r->status = RL_OK;
            return 1;
        }
        if (post(c, r, 1, acc, t->parent, c->scratch_ent, &t->up) != RL_OK) {
            rl_comm_fail(c, RL_ERR_NO_MEMORY, "rank %d: reduce (tree): no memory for a message", c->rank);
            return 1;
        }
        t->phase = 1;
    }
    if (t->up->status != RL_OK)
        return c->failed != RL_OK;
    r->status = RL_OK;
    return 1;
}

static int progress(struct rl_comm *c, struct rl_request *r)
{
    return r->coll == RL_COLL_BROADCAST ? progress_bcast(c, r) : progress_reduce(c, r);
}

/* Messages still queued after a failure stay with the communicator. */
static void release(struct rl_comm *c, struct rl_request *r)
{
    tree_t *t = T(r);
    rl_p2p_drop(c, &t->up);
    rl_p2p_drop_all(c, t->down, MAX_KIDS);
}

static void describe_wait(struct rl_comm *c, struct rl_request *r, char *buf, size_t len)
{
    tree_t *t = T(r);
    if (!rl_p2p_describe_running(c, &t->up, 1, buf, len) &&
        !rl_p2p_describe_running(c, t->down, t->nkids, buf, len))
        snprintf(buf, len, "%s %llu (tree) has not started", rl_coll_name(r->coll), (unsigned long long)r->seq);
}

const rl_algo_t rl_algo_tree = {
    .id = RL_ALGO_ID_tree,
    .name = "tree",
    .desc = "binomial tree from or to the root: ceil(log2 n) message times, over the point-to-point connections",
    .colls = RL_COLL_BIT(RL_COLL_BROADCAST) | RL_COLL_BIT(RL_COLL_REDUCE),
    .state_size = sizeof(tree_t),
    .usable = usable,
    .cost = cost,
    .start = start,
    .progress = progress,
    .release = release,
    .describe_wait = describe_wait,
    .on_p2p = 1,
};
