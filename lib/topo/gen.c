/* Generators for the usual fabrics. Each builds switches, then hosts with
 * their NICs, then links, then a block placement (optionally shuffled). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topo/topo.h"

void rl_topo_gen_defaults(rl_topo_gen_t *g)
{
    memset(g, 0, sizeof(*g));
    g->tiers = 2;
    g->oversub = 1;
    g->gbps = 400;
    g->lat_ns = 500;
    g->intra_gbps = 3600;
    g->ranks = 64;
    g->ranks_per_host = 1;
    g->nics_per_host = 1;
    g->rails = 8;
    g->hosts_per_leaf = 32;
    g->hosts_per_router = 2;
    g->routers = 4;
    g->globals = 2;
}

static rl_status_t gerr(char *err, size_t len, const char *msg, const char *what)
{
    snprintf(err, len, "%s: %s", what, msg);
    return RL_ERR_INVALID_ARG;
}

static int nhosts_for(const rl_topo_gen_t *g) { return (g->ranks + g->ranks_per_host - 1) / g->ranks_per_host; }

/* Hosts with nics NICs each (rail = NIC index), linked to leaf(host, nic). */
typedef int (*leaf_fn)(const rl_topo_gen_t *g, int host, int nic, void *arg);

static rl_status_t add_hosts(const rl_topo_gen_t *g, rl_topo_t *t, int nh, int nics, leaf_fn leaf, void *arg)
{
    char name[RL_TOPO_NAME], dev[32];
    for (int h = 0; h < nh; h++) {
        snprintf(name, sizeof(name), "h%d", h);
        int id = rl_topo_add_host(t, name, g->intra_gbps);
        if (id < 0)
            return RL_ERR_NO_MEMORY;
        for (int i = 0; i < nics; i++) {
            const rl_topo_nic_tmpl_t *tm = g->n_nic_tmpl ? &g->nic_tmpl[i % g->n_nic_tmpl] : NULL;
            snprintf(dev, sizeof(dev), "%s", tm ? tm->dev : "");
            if (!tm)
                snprintf(dev, sizeof(dev), "nic%d", i);
            if (rl_topo_add_nic(t, id, dev, tm ? tm->rail : i, tm ? tm->plane : 0, tm ? tm->gbps : g->gbps) < 0)
                return RL_ERR_NO_MEMORY;
        }
    }
    for (int h = 0; h < nh; h++)
        for (int i = 0; i < nics; i++) {
            int nic = t->hosts[h].first_nic + i;
            if (rl_topo_add_link(t, rl_topo_nic_node(t, nic), leaf(g, h, i, arg), t->nics[nic].gbps, g->lat_ns) < 0)
                return RL_ERR_NO_MEMORY;
        }
    return RL_OK;
}

static rl_status_t finish(const rl_topo_gen_t *g, rl_topo_t *t, char *err, size_t len)
{
    rl_status_t st = rl_topo_place_block(t, g->ranks, g->ranks_per_host, g->shuffle);
    if (st != RL_OK)
        return gerr(err, len, "placement does not fit", t->name);
    return rl_topo_finish(t, err, len);
}

static int check_common(const rl_topo_gen_t *g, char *err, size_t len, const char *what)
{
    if (g->ranks < 1 || g->ranks > (1 << 22) || g->ranks_per_host < 1 || g->nics_per_host < 1 || !(g->gbps > 0) ||
        !(g->oversub >= 1) || !(g->lat_ns >= 0) || !(g->intra_gbps > 0)) {
        gerr(err, len, "need ranks in [1, 4M], ranks/host >= 1, NICs/host >= 1, Gb/s > 0, oversubscription >= 1",
             what);
        return -1;
    }
    return 0;
}

typedef struct {
    int down; /* hosts per leaf */
} ft_arg_t;

static int ft_leaf(const rl_topo_gen_t *g, int host, int nic, void *arg)
{
    (void)g;
    (void)nic;
    return host / ((ft_arg_t *)arg)->down; /* leaves are switches 0.. */
}

/* k-port switches; a leaf has d ports down and u up with d/u = oversub.
 * 2 tiers: every leaf links to each of u spines. 3 tiers: pods of k/2
 * leaves and u aggregation switches (full bipartite), aggregation switch j
 * of every pod links to the k/2 cores of core group j. */
rl_status_t rl_topo_gen_fat_tree(const rl_topo_gen_t *g, rl_topo_t *t, char *err, size_t len)
{
    rl_topo_init(t, "fat-tree");
    if (check_common(g, err, len, "fat-tree"))
        return RL_ERR_INVALID_ARG;
    if (g->tiers != 2 && g->tiers != 3)
        return gerr(err, len, "--tiers must be 2 or 3", "fat-tree");
    int nh = nhosts_for(g), k = g->radix;
    int d = 0, u = 0, leaves = 0, pods = 1, lpp = 0;
    for (int kk = k ? k : 4; kk <= 4096; kk += 2) {
        u = (int)floor(kk / (1 + g->oversub));
        u = u < 1 ? 1 : u;
        d = kk - u;
        leaves = (nh + d - 1) / d;
        lpp = kk / 2; /* leaves per pod */
        pods = (leaves + lpp - 1) / lpp;
        int fits = g->tiers == 2 ? leaves <= kk : pods <= kk;
        if (fits || k) {
            if (!fits)
                return gerr(err, len, "hosts do not fit in this radix: raise --radix or --tiers", "fat-tree");
            k = kk;
            break;
        }
    }
    if (!k)
        return gerr(err, len, "no radix up to 4096 fits", "fat-tree");
    snprintf(t->name, sizeof(t->name), "fat-tree %d-tier k=%d oversub %g:1, %d hosts", g->tiers, k, g->oversub, nh);
    char name[RL_TOPO_NAME];
    for (int l = 0; l < leaves; l++) {
        snprintf(name, sizeof(name), "leaf%d", l);
        if (rl_topo_add_switch(t, name, 1) < 0)
            return RL_ERR_NO_MEMORY;
    }
    int first_up = t->nsw;
    int nup = g->tiers == 2 ? u : pods * u;
    for (int s = 0; s < nup; s++) {
        snprintf(name, sizeof(name), g->tiers == 2 ? "spine%d" : "agg%d", s);
        if (rl_topo_add_switch(t, name, 2) < 0)
            return RL_ERR_NO_MEMORY;
    }
    int first_core = t->nsw, ncore = g->tiers == 3 ? u * (k / 2) : 0;
    for (int s = 0; s < ncore; s++) {
        snprintf(name, sizeof(name), "core%d", s);
        if (rl_topo_add_switch(t, name, 3) < 0)
            return RL_ERR_NO_MEMORY;
    }
    ft_arg_t arg = {d};
    rl_status_t st = add_hosts(g, t, nh, g->nics_per_host, ft_leaf, &arg);
    if (st != RL_OK)
        return st;
    for (int l = 0; l < leaves; l++)
        for (int j = 0; j < u; j++) {
            int up = g->tiers == 2 ? first_up + j : first_up + (l / lpp) * u + j;
            if (rl_topo_add_link(t, l, up, g->gbps, g->lat_ns) < 0)
                return RL_ERR_NO_MEMORY;
        }
    for (int p = 0; p < pods && g->tiers == 3; p++)
        for (int j = 0; j < u; j++)
            for (int c = 0; c < k / 2; c++)
                if (rl_topo_add_link(t, first_up + p * u + j, first_core + j * (k / 2) + c, g->gbps, g->lat_ns) < 0)
                    return RL_ERR_NO_MEMORY;
    return finish(g, t, err, len);
}

/* A single switch: every host's NICs on it (the closed-form case). */
static int one_leaf(const rl_topo_gen_t *g, int host, int nic, void *arg)
{
    (void)g, (void)host, (void)nic, (void)arg;
    return 0;
}

rl_status_t rl_topo_gen_switch(const rl_topo_gen_t *g, rl_topo_t *t, char *err, size_t len)
{
    rl_topo_init(t, "switch");
    if (check_common(g, err, len, "switch"))
        return RL_ERR_INVALID_ARG;
    snprintf(t->name, sizeof(t->name), "one switch, %d hosts", nhosts_for(g));
    if (rl_topo_add_switch(t, "sw0", 1) < 0)
        return RL_ERR_NO_MEMORY;
    rl_status_t st = add_hosts(g, t, nhosts_for(g), g->nics_per_host, one_leaf, NULL);
    return st == RL_OK ? finish(g, t, err, len) : st;
}

typedef struct {
    int hpl, rails;
} rail_arg_t;

static int rail_leaf(const rl_topo_gen_t *g, int host, int nic, void *arg)
{
    (void)g;
    rail_arg_t *a = arg;
    return (host / a->hpl) * a->rails + nic % a->rails; /* one leaf per (unit, rail) */
}

/* Rail-optimized: scalable units of hosts_per_leaf hosts; in each unit, rail
 * r's NICs all go to leaf (unit, r); spines join every leaf. */
rl_status_t rl_topo_gen_rail(const rl_topo_gen_t *g0, rl_topo_t *t, char *err, size_t len)
{
    rl_topo_gen_t g = *g0;
    rl_topo_init(t, "rail");
    if (g.n_nic_tmpl)
        g.rails = g.n_nic_tmpl;
    if (g.ranks_per_host == 1 && g.rails > 1 && g0->ranks_per_host == 1)
        g.ranks_per_host = g.rails; /* one rank per GPU and NIC */
    if (check_common(&g, err, len, "rail"))
        return RL_ERR_INVALID_ARG;
    if (g.rails < 1 || g.rails > 64 || g.hosts_per_leaf < 1)
        return gerr(err, len, "--rails must be in [1, 64], --hosts-per-leaf >= 1", "rail");
    int nh = nhosts_for(&g), units = (nh + g.hosts_per_leaf - 1) / g.hosts_per_leaf;
    int u = (int)ceil(g.hosts_per_leaf / g.oversub), leaves = units * g.rails;
    snprintf(t->name, sizeof(t->name), "rail-optimized, %d rails, %d units of %d hosts, oversub %g:1", g.rails, units,
             g.hosts_per_leaf, g.oversub);
    char name[RL_TOPO_NAME];
    for (int l = 0; l < leaves; l++) {
        snprintf(name, sizeof(name), "u%dr%d", l / g.rails, l % g.rails);
        if (rl_topo_add_switch(t, name, 1) < 0)
            return RL_ERR_NO_MEMORY;
    }
    for (int s = 0; s < u; s++) {
        snprintf(name, sizeof(name), "spine%d", s);
        if (rl_topo_add_switch(t, name, 2) < 0)
            return RL_ERR_NO_MEMORY;
    }
    rail_arg_t arg = {g.hosts_per_leaf, g.rails};
    rl_status_t st = add_hosts(&g, t, nh, g.rails, rail_leaf, &arg);
    for (int l = 0; st == RL_OK && l < leaves; l++)
        for (int s = 0; s < u; s++)
            if (rl_topo_add_link(t, l, leaves + s, g.gbps, g.lat_ns) < 0)
                st = RL_ERR_NO_MEMORY;
    return st == RL_OK ? finish(&g, t, err, len) : st;
}

static int torus_leaf(const rl_topo_gen_t *g, int host, int nic, void *arg)
{
    (void)g, (void)nic, (void)arg;
    return host;
}

/* One host per torus node; the node's router is a switch linked to its
 * 2 x dims neighbours (one link per neighbour when a dimension is 2). */
rl_status_t rl_topo_gen_torus(const rl_topo_gen_t *g0, rl_topo_t *t, char *err, size_t len)
{
    rl_topo_gen_t g = *g0;
    rl_topo_init(t, "torus");
    if (check_common(&g, err, len, "torus"))
        return RL_ERR_INVALID_ARG;
    if (g.ndims < 2 || g.ndims > 3)
        return gerr(err, len, "--dims must be AxB or AxBxC", "torus");
    long long nodes = 1;
    for (int i = 0; i < g.ndims; i++) {
        if (g.dims[i] < 2 || g.dims[i] > 4096)
            return gerr(err, len, "each dimension must be in [2, 4096]", "torus");
        nodes *= g.dims[i];
    }
    if (nodes > (1 << 20) || nhosts_for(&g) > nodes)
        return gerr(err, len, "more hosts than torus nodes (or over 1M nodes)", "torus");
    int dims[3] = {g.dims[0], g.dims[1], g.ndims == 3 ? g.dims[2] : 1};
    snprintf(t->name, sizeof(t->name), "torus %dx%d%s", dims[0], dims[1], g.ndims == 3 ? "x3d" : "");
    if (g.ndims == 3)
        snprintf(t->name, sizeof(t->name), "torus %dx%dx%d", dims[0], dims[1], dims[2]);
    char name[RL_TOPO_NAME];
    for (long long i = 0; i < nodes; i++) {
        snprintf(name, sizeof(name), "r%lld", i);
        if (rl_topo_add_switch(t, name, 1) < 0)
            return RL_ERR_NO_MEMORY;
    }
    g.nics_per_host = 1;
    double inj = g.gbps;
    g.gbps = 2 * g.ndims * g0->gbps; /* injection never the bottleneck */
    rl_status_t st = add_hosts(&g, t, (int)nodes, 1, torus_leaf, NULL);
    g.gbps = inj;
    int stride[3] = {1, dims[0], dims[0] * dims[1]};
    for (long long i = 0; st == RL_OK && i < nodes; i++) {
        int c[3] = {(int)(i % dims[0]), (int)(i / dims[0] % dims[1]), (int)(i / stride[2])};
        for (int dd = 0; dd < g.ndims; dd++) {
            if (dims[dd] == 2 && c[dd] == 1)
                continue; /* the + and - neighbour coincide: one link */
            int nc = (c[dd] + 1) % dims[dd];
            long long j = i + (long long)(nc - c[dd]) * stride[dd];
            if (rl_topo_add_link(t, (int)i, (int)j, g.gbps, g.lat_ns) < 0)
                st = RL_ERR_NO_MEMORY;
        }
    }
    t->ntorus = g.ndims;
    memcpy(t->torus, dims, sizeof(t->torus));
    if (st != RL_OK)
        return st;
    if (g.ranks > nodes * g.ranks_per_host)
        return gerr(err, len, "ranks do not fit", "torus");
    return finish(&g, t, err, len);
}

typedef struct {
    int p;
} df_arg_t;

static int df_leaf(const rl_topo_gen_t *g, int host, int nic, void *arg)
{
    (void)g, (void)nic;
    return host / ((df_arg_t *)arg)->p;
}

/* Dragonfly: groups of a routers (all-to-all inside), p hosts and h global
 * links per router; group pair (x, y) joined by one global link, taken by
 * the routers of each group in turn. */
rl_status_t rl_topo_gen_dragonfly(const rl_topo_gen_t *g, rl_topo_t *t, char *err, size_t len)
{
    rl_topo_init(t, "dragonfly");
    if (check_common(g, err, len, "dragonfly"))
        return RL_ERR_INVALID_ARG;
    int a = g->routers, p = g->hosts_per_router, h = g->globals;
    if (a < 1 || p < 1 || h < 1 || a > 1024)
        return gerr(err, len, "--routers, --hosts-per-router, --globals must be >= 1", "dragonfly");
    int nh = nhosts_for(g), groups = g->groups ? g->groups : (nh + a * p - 1) / (a * p);
    if (groups < 1 || groups > a * h + 1 || (long long)groups * a * p < nh)
        return gerr(err, len, "groups must be in [1, routers x globals + 1] and hold every host", "dragonfly");
    snprintf(t->name, sizeof(t->name), "dragonfly %d groups x %d routers x %d hosts, %d globals", groups, a, p, h);
    char name[RL_TOPO_NAME];
    for (int i = 0; i < groups * a; i++) {
        snprintf(name, sizeof(name), "g%dr%d", i / a, i % a);
        if (rl_topo_add_switch(t, name, 1) < 0)
            return RL_ERR_NO_MEMORY;
    }
    df_arg_t arg = {p};
    rl_status_t st = add_hosts(g, t, groups * a * p, g->nics_per_host, df_leaf, &arg);
    for (int x = 0; st == RL_OK && x < groups; x++)
        for (int i = 0; i < a; i++)
            for (int j = i + 1; j < a; j++)
                if (rl_topo_add_link(t, x * a + i, x * a + j, g->gbps, g->lat_ns) < 0)
                    st = RL_ERR_NO_MEMORY;
    int *used = calloc((size_t)groups, sizeof(int)); /* global links taken per group */
    if (!used)
        return RL_ERR_NO_MEMORY;
    for (int x = 0; st == RL_OK && x < groups; x++)
        for (int y = x + 1; y < groups; y++) {
            int rx = x * a + (used[x]++ / h) % a, ry = y * a + (used[y]++ / h) % a;
            if (rl_topo_add_link(t, rx, ry, g->gbps, g->lat_ns) < 0)
                st = RL_ERR_NO_MEMORY;
        }
    free(used);
    return st == RL_OK ? finish(g, t, err, len) : st;
}
