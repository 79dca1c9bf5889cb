/* The double binary tree's shape, shared by the all-reduce (coll/dbt.c)
 * and the simulator (topo/sim.c) so the simulator models the trees ringlet
 * runs.
 *
 * Positions 0..n-1 stand for the ranks in a node order (the first ring's:
 * rank order, RINGLET_RING_ORDER or the plan of RINGLET_TOPO_FILE), so a
 * tree edge joins ranks that are near each other in that order, hence in
 * the fabric. Tree 0 is the in-order binary tree over v = position + 1,
 * tree 1 its mirror, v = n - position. Node v with lowest set bit b has
 * children v - b/2 and the first of v + b/2, v + b/4, ... that exists; the
 * root is the largest power of two not above n. */
#ifndef RINGLET_TOPO_BTREE_H
#define RINGLET_TOPO_BTREE_H

static inline int rl_btree_root(int n)
{
    int t = 1;
    while (2 * t <= n)
        t *= 2;
    return t;
}

/* Parent of v (1-based) in the in-order tree over 1..n; 0 at the root. */
static inline int rl_btree_parent(int v, int n)
{
    if (v == rl_btree_root(n))
        return 0;
    int p = v;
    do {
        int b = p & -p;
        p = (p & (2 * b)) ? p - b : p + b;
    } while (p > n);
    return p;
}

/* Children of v into kids; their number (0-2). */
static inline int rl_btree_kids(int v, int n, int kids[2])
{
    int b = v & -v, nk = 0;
    if (b == 1)
        return 0;
    kids[nk++] = v - b / 2;
    for (int h = b / 2; h >= 1; h /= 2)
        if (v + h <= n) {
            kids[nk++] = v + h;
            break;
        }
    return nk;
}

/* Tree t's numbering: v of a position and the position of a v. */
static inline int rl_btree_v(int t, int pos, int n) { return t ? n - pos : pos + 1; }
static inline int rl_btree_pos(int t, int v, int n) { return t ? n - v : v - 1; }

#endif
