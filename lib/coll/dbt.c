/*
 * Double binary tree all-reduce (the design NCCL uses at scale): two
 * complementary binary trees each carry half of the data, reduced up to
 * the tree's root and broadcast back down, pipelined in chunks. Latency
 * grows as log2(n); because a rank that is a leaf in one tree is interior
 * in the other (n even), each rank sends and receives about the ring's
 * bytes in total.
 *
 * Trees: topo/btree.h, over the positions of the first ring's order, so
 * with a planned or given ring order tree edges stay as local as the
 * ring's hops (as NCCL builds its trees from its rings' node order).
 *
 * Messages go through the point-to-point service, one per chunk, tree and
 * direction on each tree edge. Sends and receives between two ranks must
 * be posted in the same order on both sides, and a send may wait behind an
 * earlier one to the same peer; both sides use the order (chunk, up before
 * down, tree), in which every message depends only on messages earlier in
 * it, so no rank waits in a cycle. Every receive is posted at the start:
 * up-going partial results land in the scratch buffer, down-going results
 * straight into the output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll/p2p.h"
#include "core/clock.h"
#include "core/comm.h"
#include "topo/btree.h"

#define MAX_CHUNKS 64
enum { UP = 0, DOWN = 1 };

typedef struct {
    int k, phase, tree, peer, is_send, kid; /* kid: which child (up-receives) */
    int prev_send;                          /* the send before it to the same peer, or -1 */
    struct rl_request *req;
    int posted, done;
} dmsg_t;

typedef struct {
    int parent[2], nkids[2], kids[2][2];
    uint64_t lo[2], len[2]; /* each tree's half, in elements */
    int nchunks;
    dmsg_t *m;             /* every message, in (chunk, phase, tree, peer) order */
    int nm;
    int *up_recv;          /* [(chunk * 2 + tree) * 2 + kid]: index into m */
    int next_reduce[2];    /* next chunk to reduce, per tree */
    uint8_t *reduced[2];   /* [chunk]: partial result ready to go up */
    uint8_t *final[2];     /* [chunk]: the result is in the output */
    int remaining;         /* messages not done */
} dbt_t;

static dbt_t *D(const struct rl_request *r) { return RL_PRIV(r, dbt_t); }

/* My position in the node order (the first ring's); c->order[i] gives the
 * rank at position i. A scan per start: about 10 us at 32k ranks. */
static int my_pos(const struct rl_comm *c)
{
    for (int i = 0; i < c->nranks; i++)
        if (c->order[i] == c->rank)
            return i;
    return c->rank; /* unreachable: the order is a permutation */
}

static void shape(const struct rl_comm *c, dbt_t *d)
{
    int n = c->nranks, pos = my_pos(c);
    for (int t = 0; t < 2; t++) {
        int v = rl_btree_v(t, pos, n), p = rl_btree_parent(v, n), k[2];
        d->parent[t] = p ? c->order[rl_btree_pos(t, p, n)] : -1;
        d->nkids[t] = rl_btree_kids(v, n, k);
        for (int i = 0; i < d->nkids[t]; i++)
            d->kids[t][i] = c->order[rl_btree_pos(t, k[i], n)];
    }
}

static int usable(const struct rl_comm *c, const rl_call_t *call)
{
    (void)call;
    return rl_p2p_enabled(c) && c->nranks >= 2;
}

/* Each half climbs and descends a tree of depth log2(n): the pipeline
 * fills in 2 log2(n) chunk times, then a chunk time per further chunk; a
 * rank moves about the whole buffer each way and reduces about half of it. */
static double cost(const struct rl_comm *c, const rl_call_t *call, const rl_model_t *m)
{
    int depth = 0;
    while ((2 << depth) <= c->nranks)
        depth++;
    double b = (double)call->bytes, half = b / 2;
    double k = half > (double)c->chunk_bytes ? half / (double)c->chunk_bytes : 1;
    if (k > MAX_CHUNKS)
        k = MAX_CHUNKS;
    double chunk_t = m->alpha_rdv_us + half / k * (2 * m->beta_us_per_b + m->gamma_us_per_b);
    return (2 * depth + k - 1) * chunk_t;
}

static void chunk_range(const dbt_t *d, int t, int k, uint64_t *lo, uint64_t *len)
{
    uint64_t off;
    rl_split(d->len[t], (uint64_t)d->nchunks, (uint64_t)k, &off, len);
    *lo = d->lo[t] + off;
}

static int cmp_msg(const void *a, const void *b)
{
    const dmsg_t *x = a, *y = b;
    if (x->k != y->k)
        return x->k - y->k;
    if (x->phase != y->phase)
        return x->phase - y->phase;
    if (x->tree != y->tree)
        return x->tree - y->tree;
    if (x->peer != y->peer)
        return x->peer - y->peer;
    return x->is_send - y->is_send;
}

static void add(dbt_t *d, int k, int phase, int tree, int peer, int is_send, int kid)
{
    d->m[d->nm++] = (dmsg_t){.k = k, .phase = phase, .tree = tree, .peer = peer, .is_send = is_send, .kid = kid};
}

static size_t half_bytes(const struct rl_request *r, const dbt_t *d)
{
    return (d->len[0] > d->len[1] ? d->len[0] : d->len[1]) * r->esize;
}

/* Up-going partial result of child `kid` in tree t: its own scratch part. */
static char *up_slot(struct rl_comm *c, const struct rl_request *r, const dbt_t *d, int t, int kid, uint64_t lo)
{
    return c->scratch + (size_t)(t * 2 + kid) * half_bytes(r, d) + (lo - d->lo[t]) * r->esize;
}

static rl_status_t post(struct rl_comm *c, struct rl_request *r, dmsg_t *m)
{
    dbt_t *d = D(r);
    uint64_t lo, len;
    chunk_range(d, m->tree, m->k, &lo, &len);
    char *buf;
    rl_regent_t *reg;
    if (m->is_send) {
        int leaf = d->nkids[m->tree] == 0;
        /* up: the partial result (a leaf's own input); down: the result */
        int from_in = m->phase == UP && leaf;
        buf = (char *)(from_in ? r->in : r->out) + lo * r->esize;
        reg = from_in ? r->in_reg : r->out_reg;
    } else if (m->phase == UP) {
        buf = up_slot(c, r, d, m->tree, m->kid, lo);
        reg = c->scratch_ent;
    } else {
        buf = r->out + lo * r->esize;
        reg = r->out_reg;
    }
    rl_status_t st = rl_p2p_coll(c, m->is_send, buf, len, r->dtype, m->peer, reg, &m->req);
    if (st != RL_OK)
        return st;
    m->posted = 1;
    return RL_OK;
}

static rl_status_t start(struct rl_comm *c, struct rl_request *r)
{
    if (rl_coll_trivial(c, r))
        return RL_OK;
    dbt_t *d = D(r);
    shape(c, d);
    for (int t = 0; t < 2; t++)
        rl_split(r->count, 2, (uint64_t)t, &d->lo[t], &d->len[t]);
    size_t hb = half_bytes(r, d);
    d->nchunks = hb > c->chunk_bytes ? (int)((hb + c->chunk_bytes - 1) / c->chunk_bytes) : 1;
    if (d->nchunks > MAX_CHUNKS)
        d->nchunks = MAX_CHUNKS;
    int per_chunk = 0;
    for (int t = 0; t < 2; t++)
        per_chunk += 2 * d->nkids[t] + 2 * (d->parent[t] >= 0);
    d->m = calloc((size_t)(per_chunk * d->nchunks) + 1, sizeof(dmsg_t));
    for (int t = 0; t < 2; t++) {
        d->reduced[t] = calloc((size_t)d->nchunks, 1);
        d->final[t] = calloc((size_t)d->nchunks, 1);
    }
    if (!d->m || !d->reduced[0] || !d->reduced[1] || !d->final[0] || !d->final[1])
        return RL_ERR_NO_MEMORY;
    for (int k = 0; k < d->nchunks; k++)
        for (int t = 0; t < 2; t++) {
            for (int i = 0; i < d->nkids[t]; i++) {
                add(d, k, UP, t, d->kids[t][i], 0, i);
                add(d, k, DOWN, t, d->kids[t][i], 1, i);
            }
            if (d->parent[t] >= 0) {
                add(d, k, UP, t, d->parent[t], 1, 0);
                add(d, k, DOWN, t, d->parent[t], 0, 0);
            }
        }
    qsort(d->m, (size_t)d->nm, sizeof(dmsg_t), cmp_msg);
    d->remaining = d->nm;
    if (!(d->up_recv = calloc((size_t)d->nchunks * 4, sizeof(int))))
        return RL_ERR_NO_MEMORY;
    for (int i = 0; i < d->nm; i++) {
        dmsg_t *m = &d->m[i];
        m->prev_send = -1;
        for (int j = i - 1; m->is_send && j >= 0; j--)
            if (d->m[j].is_send && d->m[j].peer == m->peer) {
                m->prev_send = j;
                break;
            }
        if (!m->is_send && m->phase == UP)
            d->up_recv[(m->k * 2 + m->tree) * 2 + m->kid] = i;
    }
    size_t bytes = r->count * r->esize;
    rl_status_t st;
    if ((st = rl_comm_scratch(c, 4 * hb)) != RL_OK ||
        (st = rl_reg_acquire(c, r->in, bytes, RL_ACCESS_LOCAL, &r->in_reg)) != RL_OK ||
        (st = rl_reg_acquire(c, r->out, bytes, RL_ACCESS_LOCAL | RL_ACCESS_REMOTE_WRITE, &r->out_reg)) != RL_OK)
        return st;
    for (int i = 0; i < d->nm; i++)
        if (!d->m[i].is_send && (st = post(c, r, &d->m[i])) != RL_OK)
            return st;
    return RL_INPROGRESS;
}

static int finished(dmsg_t *m) { return m && m->req && m->req->status == RL_OK; }

/* Reduce the chunks whose children's partial results have all arrived. */
static int reduce_ready(struct rl_comm *c, struct rl_request *r)
{
    dbt_t *d = D(r);
    int moved = 0;
    for (int t = 0; t < 2; t++) {
        while (d->next_reduce[t] < d->nchunks) {
            int k = d->next_reduce[t], ok = 1;
            for (int i = 0; i < d->nkids[t] && ok; i++)
                ok = finished(&d->m[d->up_recv[(k * 2 + t) * 2 + i]]);
            if (!ok)
                break;
            uint64_t lo, len;
            chunk_range(d, t, k, &lo, &len);
            char *acc = r->out + lo * r->esize;
            const char *cur = r->in + lo * r->esize;
            for (int i = 0; i < d->nkids[t] && len; i++) {
                r->fn(acc, cur, up_slot(c, r, d, t, i, lo), len);
                cur = acc;
            }
            int root = d->parent[t] < 0;
            if (root && cur != acc && len)
                memcpy(acc, cur, len * r->esize); /* no children (two ranks): the input is the partial */
            if (root && r->op == RL_AVG && len)
                rl_reduce_scale(acc, len, r->dtype, c->nranks);
            d->reduced[t][k] = 1;
            d->final[t][k] = root;
            d->next_reduce[t]++;
            moved = 1;
        }
    }
    return moved;
}

/* A send may go when its data is ready and every earlier send to the same
 * peer has been posted. */
static int send_ready(const dbt_t *d, const dmsg_t *m)
{
    return m->phase == UP ? d->reduced[m->tree][m->k] : d->final[m->tree][m->k];
}

static int post_sends(struct rl_comm *c, struct rl_request *r)
{
    dbt_t *d = D(r);
    int moved = 0;
    for (int i = 0; i < d->nm; i++) {
        dmsg_t *m = &d->m[i];
        if (!m->is_send || m->posted)
            continue;
        if ((m->prev_send >= 0 && !d->m[m->prev_send].posted) || !send_ready(d, m))
            continue;
        if (post(c, r, m) != RL_OK) {
            rl_comm_fail(c, RL_ERR_NO_MEMORY, "rank %d: all_reduce (dbt): no memory for a message", c->rank);
            return 0;
        }
        moved = 1;
    }
    return moved;
}

static int progress(struct rl_comm *c, struct rl_request *r)
{
    dbt_t *d = D(r);
    int moved;
    do {
        moved = 0;
        for (int i = 0; i < d->nm; i++) {
            dmsg_t *m = &d->m[i];
            if (m->done || !finished(m))
                continue;
            if (!m->is_send && m->phase == DOWN)
                d->final[m->tree][m->k] = 1; /* the result of this chunk is in the output */
            if (m->is_send || m->phase == DOWN)
                rl_p2p_drop(c, &m->req); /* up-receives stay until their chunk is reduced */
            m->done = 1;
            d->remaining--;
            moved = 1;
        }
        moved |= reduce_ready(c, r);
        moved |= post_sends(c, r);
    } while (moved && c->failed == RL_OK);
    if (c->failed != RL_OK)
        return 1;
    if (d->remaining || d->next_reduce[0] < d->nchunks || d->next_reduce[1] < d->nchunks)
        return 0;
    r->status = RL_OK;
    return 1;
}

static void release(struct rl_comm *c, struct rl_request *r)
{
    dbt_t *d = D(r);
    for (int i = 0; d->m && i < d->nm; i++)
        rl_p2p_drop(c, &d->m[i].req);
    free(d->m);
    free(d->up_recv);
    d->m = NULL;
    d->up_recv = NULL;
    d->nm = 0;
    for (int t = 0; t < 2; t++) {
        free(d->reduced[t]);
        free(d->final[t]);
        d->reduced[t] = d->final[t] = NULL;
    }
}

static void describe_wait(struct rl_comm *c, struct rl_request *r, char *buf, size_t len)
{
    dbt_t *d = D(r);
    for (int i = 0; d->m && i < d->nm; i++)
        if (d->m[i].req && d->m[i].req->status == RL_INPROGRESS && !d->m[i].is_send) {
            d->m[i].req->algo->describe_wait(c, d->m[i].req, buf, len);
            return;
        }
    snprintf(buf, len, "all_reduce %llu (dbt): %d messages to go", (unsigned long long)r->seq, d->remaining);
}

/* Each tree's parent and children of this rank (the log names its tree
 * neighbours, which follow the first ring's order). */
static void describe_comm(struct rl_comm *c, char *buf, size_t len)
{
    if (c->nranks < 2 || !c->order) {
        snprintf(buf, len, "dbt: one rank");
        return;
    }
    dbt_t d = {0};
    shape(c, &d);
    size_t pos = 0;
    for (int t = 0; t < 2 && pos < len; t++) {
        if (d.parent[t] < 0)
            pos += (size_t)snprintf(buf + pos, len - pos, "%sdbt tree %d: root", t ? "; " : "", t);
        else
            pos += (size_t)snprintf(buf + pos, len - pos, "%sdbt tree %d: parent %d", t ? "; " : "", t, d.parent[t]);
        for (int i = 0; i < d.nkids[t] && pos < len; i++)
            pos += (size_t)snprintf(buf + pos, len - pos, "%s%d", i ? "," : ", children ", d.kids[t][i]);
    }
}

const rl_algo_t rl_algo_dbt = {
    .id = RL_ALGO_ID_dbt,
    .name = "dbt",
    .desc = "double binary tree: two mirrored trees each reduce and broadcast half, pipelined in chunks",
    .colls = RL_COLL_BIT(RL_COLL_ALL_REDUCE),
    .state_size = sizeof(dbt_t),
    .usable = usable,
    .cost = cost,
    .start = start,
    .progress = progress,
    .release = release,
    .describe_wait = describe_wait,
    .describe_comm = describe_comm,
    .on_p2p = 1,
};
