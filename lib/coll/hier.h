/*
 * What the hierarchical algorithms share (coll/hier*.c): where a rank sits
 * in a communicator of H hosts with L ranks each. Local index = position
 * among its host's ranks in rank order; the ranks of one local index, one
 * per host, form a rail (on AI fabrics, the ranks behind one rail's NICs).
 */
#ifndef RL_COLL_HIER_H
#define RL_COLL_HIER_H

#include "core/comm.h"

#define RL_HIER_MAX_LOCAL 64

typedef struct {
    int L, H, lidx, host;
    int local[RL_HIER_MAX_LOCAL]; /* ranks of this host, by local index */
    int *rail;                    /* [H]: the rank of local index lidx on each host */
    int *at;                      /* [H x L]: the rank of host x at local index j: at[x * L + j] */
} rl_hier_geom_t;

/* Every host has as many ranks (2 to RL_HIER_MAX_LOCAL), there are at least
 * two hosts, and point to point is on. */
int rl_hier_usable(const struct rl_comm *c);
/* This rank's geometry (rail and at allocated; rl_hier_geom_free releases
 * them). */
rl_status_t rl_hier_geom(const struct rl_comm *c, rl_hier_geom_t *g);
void rl_hier_geom_free(rl_hier_geom_t *g);
/* Binomial tree over positions 0..n-1 rooted at `root`: this position's
 * parent (-1 at the root) and children, farthest subtree first. */
int rl_binom_tree(int me, int root, int n, int *parent, int *kids, int maxkids);

#endif
