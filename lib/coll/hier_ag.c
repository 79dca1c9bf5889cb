/*
 * Hierarchical all-gather for several hosts with as many ranks each:
 *   1. across hosts on the rail: rank (h, j) sends its block to (x, j) of
 *      every other host x, which receives it straight into its output;
 *   2. within the host: it forwards the H blocks of its rail, in host
 *      order, to every other rank of its host, again straight into their
 *      outputs.
 * Each rail carries 1/L of the data across hosts, and every byte crosses
 * between hosts once. Two ranks exchange messages of one step only (rail
 * peers step 1, local peers step 2), posted in host order on both sides,
 * so point-to-point order matching pairs them; every receive is posted at
 * the start. An empty call still sends its empty messages, as every call
 * does, so a mismatch shows up as one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll/hier.h"
#include "coll/p2p.h"

typedef struct {
    rl_hier_geom_t g;
    int next_x;            /* step 2: blocks of the hosts before it went out */
    struct rl_request **m; /* see slot_of() */
    int nm;
} hag_t;

static hag_t *A(const struct rl_request *r) { return RL_PRIV(r, hag_t); }

/* Messages: rail receive/send by host, local receive/send by (local index, host). */
enum { RAIL_R, RAIL_S, LOC_R, LOC_S };
static struct rl_request **slot_of(hag_t *a, int kind, int j, int x)
{
    int H = a->g.H, L = a->g.L;
    switch (kind) {
    case RAIL_R: return &a->m[x];
    case RAIL_S: return &a->m[H + x];
    case LOC_R: return &a->m[2 * H + j * H + x];
    default: return &a->m[2 * H + L * H + j * H + x];
    }
}

static int usable(const struct rl_comm *c, const rl_call_t *call)
{
    (void)call;
    return rl_hier_usable(c);
}

/* Two message latencies (each step's messages are in flight together);
 * a rank sends H - 1 blocks in step 1 and (L - 1) H in step 2. */
static double cost(const struct rl_comm *c, const rl_call_t *call, const rl_model_t *m)
{
    double L = c->ranks_per_host ? c->ranks_per_host : 1, H = c->nhosts ? c->nhosts : 1;
    return 2 * m->alpha_rdv_us + ((H - 1) + (L - 1) * H) * (double)call->bytes * m->beta_us_per_b;
}

static size_t blk(const struct rl_request *r) { return r->count * r->esize; }
static char *block_of(const struct rl_request *r, int rank) { return r->out + (size_t)rank * blk(r); }

static rl_status_t post(struct rl_comm *c, struct rl_request *r, struct rl_request **slot, int is_send,
                        const char *buf, int peer, rl_regent_t *reg)
{
    return rl_p2p_coll(c, is_send, buf, r->count, r->dtype, peer, reg, slot);
}

static rl_status_t start(struct rl_comm *c, struct rl_request *r)
{
    if (c->nranks == 1) /* rl_coll_trivial copies in to out */
        return rl_coll_trivial(c, r) ? RL_OK : RL_ERR_INTERNAL;
    hag_t *a = A(r);
    rl_status_t st = rl_hier_geom(c, &a->g);
    if (st != RL_OK)
        return st;
    int H = a->g.H, L = a->g.L, me = a->g.host;
    a->nm = 2 * H + 2 * L * H;
    if (!(a->m = calloc((size_t)a->nm, sizeof(*a->m))))
        return RL_ERR_NO_MEMORY;
    size_t b = blk(r);
    if (b && ((st = rl_reg_acquire(c, r->in, b, RL_ACCESS_LOCAL, &r->in_reg)) != RL_OK ||
              (st = rl_reg_acquire(c, r->out, b * (size_t)c->nranks, RL_ACCESS_LOCAL | RL_ACCESS_REMOTE_WRITE,
                                   &r->out_reg)) != RL_OK))
        return st;
    if (r->in != block_of(r, c->rank) && b)
        memcpy(block_of(r, c->rank), r->in, b);
    for (int x = 0; x < H && st == RL_OK; x++)
        if (x != me)
            st = post(c, r, slot_of(a, RAIL_R, 0, x), 0, block_of(r, a->g.rail[x]), a->g.rail[x], r->out_reg);
    for (int j = 0; j < L && st == RL_OK; j++)
        for (int x = 0; j != a->g.lidx && x < H && st == RL_OK; x++)
            st = post(c, r, slot_of(a, LOC_R, j, x), 0, block_of(r, a->g.at[x * L + j]), a->g.local[j], r->out_reg);
    for (int x = 0; x < H && st == RL_OK; x++)
        if (x != me)
            st = post(c, r, slot_of(a, RAIL_S, 0, x), 1, r->in, a->g.rail[x], r->in_reg);
    return st == RL_OK ? RL_INPROGRESS : st;
}

static int progress(struct rl_comm *c, struct rl_request *r)
{
    hag_t *a = A(r);
    int H = a->g.H, L = a->g.L;
    if (c->failed != RL_OK)
        return 1;
    while (a->next_x < H) { /* forward the rail's blocks in host order, each once it is here */
        int x = a->next_x;
        struct rl_request *in = *slot_of(a, RAIL_R, 0, x);
        if (x != a->g.host && in && in->status != RL_OK)
            break;
        int owner = a->g.rail[x];
        for (int j = 0; j < L; j++) {
            if (j == a->g.lidx)
                continue;
            if (post(c, r, slot_of(a, LOC_S, j, x), 1, block_of(r, owner), a->g.local[j], r->out_reg) != RL_OK) {
                rl_comm_fail(c, RL_ERR_NO_MEMORY, "rank %d: all_gather (hier): no memory for a message", c->rank);
                return 1;
            }
        }
        a->next_x++;
    }
    if (a->next_x < H || !rl_p2p_all_ok(a->m, a->nm))
        return c->failed != RL_OK;
    r->status = RL_OK;
    return 1;
}

static void release(struct rl_comm *c, struct rl_request *r)
{
    hag_t *a = A(r);
    rl_p2p_drop_all(c, a->m, a->nm);
    free(a->m);
    rl_hier_geom_free(&a->g);
    a->m = NULL;
    a->nm = 0;
}

static void describe_wait(struct rl_comm *c, struct rl_request *r, char *buf, size_t len)
{
    hag_t *a = A(r);
    if (!rl_p2p_describe_running(c, a->m, a->nm, buf, len))
        snprintf(buf, len, "all_gather %llu (hier) forwarding host %d's block", (unsigned long long)r->seq,
                 a->next_x);
}

const rl_algo_t rl_algo_hier_ag = {
    .id = RL_ALGO_ID_hier_ag,
    .name = "hier", /* names are per collective */
    .desc = "hierarchical all-gather: blocks across hosts on each rail, then every rail's blocks within the host",
    .colls = RL_COLL_BIT(RL_COLL_ALL_GATHER),
    .state_size = sizeof(hag_t),
    .usable = usable,
    .cost = cost,
    .start = start,
    .progress = progress,
    .release = release,
    .describe_wait = describe_wait,
    .on_p2p = 1,
};
