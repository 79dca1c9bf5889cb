/*
 * rl_comm_split: sub-communicators formed through the parent's bootstrap.
 *
 * Two all-gathers over the parent's control channel: first every rank's
 * (color, key), from which each rank computes its group and its rank in it
 * alike; then the rendezvous of each group, which the group's first member
 * opened on a fresh port of the address it reaches the parent group by (no
 * address from the user, no port to guess). The child then bootstraps and
 * connects like any communicator: its own control channel, rings and
 * point-to-point connections, independent of the parent from then on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/comm.h"
#include "core/log.h"

typedef struct {
    int32_t color, key;
} split_rec_t;

/* Round two: the rendezvous a group's first member opened, or why not. */
typedef struct {
    int32_t status;
    char addr[72];
} rdv_rec_t;

/* A member of this rank's color: sorted by (key, parent rank). */
typedef struct {
    int32_t key, rank;
} member_t;

static int member_cmp(const void *a, const void *b)
{
    const member_t *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->rank < y->rank ? -1 : x->rank > y->rank;
}

static rl_status_t fail_split(struct rl_comm *c, rl_status_t st, const char *msg)
{
    snprintf(c->errmsg, sizeof(c->errmsg), "rl_comm_split: rank %d: %s", c->rank, msg);
    RL_ERROR("%s (%s)", c->errmsg, rl_status_name(st));
    return st;
}

rl_status_t rl_comm_split(rl_comm_t c, int color, int key, rl_comm_t *newcomm)
{
    if (!rl_comm_ok(c))
        return RL_ERR_INVALID_ARG;
    if (!newcomm)
        return fail_split(c, RL_ERR_INVALID_ARG, "the output pointer is NULL");
    if (c->failed != RL_OK)
        return c->failed;
    int n = c->nranks;
    char err[512] = "";
    int64_t dl = rl_deadline_ms(c->cfg.timeout_ms);
    split_rec_t mine = {.color = color < 0 ? -1 : color, .key = key};
    split_rec_t *recs = calloc((size_t)n, sizeof(*recs));
    rdv_rec_t *rdv = calloc((size_t)n, sizeof(*rdv));
    member_t *members = calloc((size_t)n, sizeof(*members));
    rl_status_t st = recs && rdv && members ? RL_OK : RL_ERR_NO_MEMORY;
    if (st == RL_OK)
        st = rl_boot_allgather(c->boot, &mine, sizeof(mine), recs, dl, err, sizeof(err));
    if (st != RL_OK) {
        free(recs), free(rdv), free(members);
        return fail_split(c, st, err[0] ? err : "out of memory");
    }
    int m = 0, me = -1;
    for (int r = 0; r < n; r++)
        if (mine.color >= 0 && recs[r].color == mine.color)
            members[m++] = (member_t){.key = recs[r].key, .rank = r};
    qsort(members, (size_t)m, sizeof(*members), member_cmp);
    for (int i = 0; i < m; i++)
        if (members[i].rank == c->rank)
            me = i;
    int first = m > 0 ? members[0].rank : -1; /* the child's rank 0 */
    free(recs);
    free(members);
    rdv_rec_t out = {.status = RL_OK};
    int lfd = -1;
    /* a rank whose listen failed still takes part in round two and says
     * why, so that its group fails at once instead of at the deadline */
    if (me == 0 && m > 1) {
        st = rl_boot_listen_child(c->boot, &lfd, out.addr, sizeof(out.addr), err, sizeof(err));
        out.status = st;
        if (st != RL_OK)
            snprintf(out.addr, sizeof(out.addr), "%.71s", err);
    }
    st = rl_boot_allgather(c->boot, &out, sizeof(out), rdv, dl, err, sizeof(err));
    rdv_rec_t *root = first >= 0 ? &rdv[first] : NULL;
    if (st == RL_OK && me >= 0 && m > 1) {
        root->addr[sizeof(root->addr) - 1] = '\0';
        if (root->status != RL_OK) {
            st = root->status < 0 && root->status >= RL_ERR_INTERNAL ? (rl_status_t)root->status : RL_ERR_PROTOCOL;
            snprintf(err, sizeof(err), "rank %d could not open the sub-group's rendezvous: %s", first, root->addr);
        } else if (!strchr(root->addr, ':')) {
            st = RL_ERR_PROTOCOL;
            snprintf(err, sizeof(err), "rank %d sent a malformed sub-group rendezvous", first);
        }
    }
    if (st != RL_OK || me < 0) {
        if (lfd >= 0)
            close(lfd);
        free(rdv);
        if (st != RL_OK)
            return fail_split(c, st, err);
        *newcomm = NULL; /* color < 0: no communicator for this rank */
        return RL_OK;
    }
    /* the child's ring is its rank order: RINGLET_RING_ORDER is the parent's */
    int *order = malloc(sizeof(int) * (size_t)m);
    if (!order) {
        if (lfd >= 0)
            close(lfd);
        free(rdv);
        return fail_split(c, RL_ERR_NO_MEMORY, "out of memory");
    }
    for (int i = 0; i < m; i++)
        order[i] = i;
    rl_comm_opts_t o = {.struct_size = sizeof(o), .rank = me, .nranks = m, .ring_order = order,
                        .addr = m > 1 ? root->addr : NULL, .timeout_ms = c->cfg.timeout_ms};
    rl_comm_t child = NULL;
    st = rl_comm_create_listen(&o, lfd, &child);
    free(order);
    free(rdv);
    if (st != RL_OK)
        return fail_split(c, st, rl_comm_last_error(NULL));
    RL_INFO("rl_comm_split: color %d key %d: rank %d of %d in the sub-communicator", color, key, me, m);
    *newcomm = child;
    return RL_OK;
}
