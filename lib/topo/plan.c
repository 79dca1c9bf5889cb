/* Ring planner: K Hamiltonian cycles over the ranks that keep the most
 * loaded link (load / Gb/s) low, then the hop count.
 *
 * - Tiered fabrics (fat trees, rail-optimized, Slurm trees, dragonflies):
 *   hosts are sorted by their switch ancestry (top tier first, leaf last),
 *   so a ring stays under one leaf as long as it can and crosses each cut
 *   around a leaf or pod once in each direction. With several NICs per
 *   host, ring c leaves and enters hosts on rails c and c+1 alternately and
 *   walks the other ranks inside the host: every hop between hosts stays on
 *   one rail, and the rings share the NICs evenly.
 * - Tori: a square 2D torus gets two edge-disjoint Hamiltonian cycles (the
 *   "diagonal" pair below) and their reverses: four rings that use every
 *   directed link exactly once. Other tori get one reflected Gray-code
 *   cycle per dimension that can vary fastest (closed through the wrap link
 *   of an even dimension), and their reverses.
 * If a plan is not better than rank order, rank order is kept. */
#include <stdlib.h>
#include <string.h>

#include "topo/topo.h"

#define PLAN_MAX_RINGS 16

typedef struct {
    int key[8];
    int host;
} host_key_t;

static int cmp_key(const void *a, const void *b)
{
    const host_key_t *x = a, *y = b;
    for (int i = 0; i < 8; i++)
        if (x->key[i] != y->key[i])
            return x->key[i] < y->key[i] ? -1 : 1;
    return x->host - y->host;
}

static int nic_switch(const rl_topo_t *t, int nic)
{
    const rl_topo_link_t *L = &t->links[t->nics[nic].link];
    return L->a < t->nsw ? L->a : L->b;
}

/* The lowest-numbered neighbour one tier up, or -1. */
static int parent_of(const rl_topo_t *t, int s)
{
    int best = -1;
    for (int k = t->adj_off[s]; k < t->adj_off[s + 1]; k++) {
        const rl_topo_link_t *L = &t->links[t->adj[k] >> 1];
        int v = t->adj[k] & 1 ? L->a : L->b;
        if (v < t->nsw && t->sw[v].tier > t->sw[s].tier && (best < 0 || v < best))
            best = v;
    }
    return best;
}

typedef struct {
    int *start, *ranks; /* ranks of host h: ranks[start[h] .. start[h+1]) sorted by rail */
} by_host_t;

static int cmp_rank_rail(const void *a, const void *b, void *arg)
{
    const rl_topo_t *t = arg;
    int x = *(const int *)a, y = *(const int *)b;
    const rl_topo_place_t *px = &t->place[x], *py = &t->place[y];
    if (px->host != py->host)
        return px->host - py->host;
    int rx = t->nics[px->nic].rail, ry = t->nics[py->nic].rail;
    return rx != ry ? rx - ry : x - y;
}

static rl_status_t group_hosts(const rl_topo_t *t, by_host_t *g)
{
    g->start = calloc((size_t)t->nhosts + 1, sizeof(int));
    g->ranks = malloc(sizeof(int) * (size_t)t->nranks);
    if (!g->start || !g->ranks)
        return RL_ERR_NO_MEMORY;
    for (int r = 0; r < t->nranks; r++)
        g->ranks[r] = r;
    qsort_r(g->ranks, (size_t)t->nranks, sizeof(int), cmp_rank_rail, (void *)t); /* no global: comms may be created in parallel */
    for (int r = 0; r < t->nranks; r++)
        g->start[t->place[r].host + 1]++;
    for (int h = 0; h < t->nhosts; h++)
        g->start[h + 1] += g->start[h];
    return RL_OK;
}

/* Flat fabrics (every switch one tier, e.g. a dragonfly): no ancestry to
 * sort by, so walk the switches greedily, always to the nearest unvisited
 * one (BFS hops, lowest id on ties): a group is finished before its global
 * link is taken. Returns each switch's position in the walk, or NULL. */
#define WALK_MAX_SWITCHES 4096
static int *greedy_walk(const rl_topo_t *t)
{
    int n = t->nsw, flat = n > 1 && n <= WALK_MAX_SWITCHES;
    for (int s = 1; flat && s < n; s++)
        flat = t->sw[s].tier == t->sw[0].tier;
    if (!flat)
        return NULL;
    int *pos = malloc(sizeof(int) * (size_t)n), *dist = malloc(sizeof(int) * (size_t)n),
        *q = malloc(sizeof(int) * (size_t)n);
    if (!pos || !dist || !q) {
        free(pos), free(dist), free(q);
        return NULL;
    }
    for (int s = 0; s < n; s++)
        pos[s] = -1;
    int cur = 0;
    for (int step = 0; step < n; step++) {
        pos[cur] = step;
        for (int s = 0; s < n; s++)
            dist[s] = -1;
        int head = 0, tail = 0, next = -1;
        dist[cur] = 0;
        q[tail++] = cur;
        while (head < tail && next < 0) { /* BFS levels until one holds an unvisited switch */
            int level_end = tail;
            for (; head < level_end; head++) {
                int u = q[head];
                for (int k = t->adj_off[u]; k < t->adj_off[u + 1]; k++) {
                    const rl_topo_link_t *L = &t->links[t->adj[k] >> 1];
                    int v = t->adj[k] & 1 ? L->a : L->b;
                    if (v >= n || dist[v] >= 0)
                        continue;
                    dist[v] = dist[u] + 1;
                    q[tail++] = v;
                    if (pos[v] < 0 && (next < 0 || v < next))
                        next = v;
                }
            }
        }
        for (int s = 0; next < 0 && s < n; s++) /* unreachable rest: take the lowest id */
            if (pos[s] < 0)
                next = s;
        if (next < 0)
            break;
        cur = next;
    }
    free(dist);
    free(q);
    return pos;
}

static rl_status_t plan_tiered(const rl_topo_t *t, int max_rings, rl_topo_plan_t *p)
{
    int *walk = greedy_walk(t);
    by_host_t g = {0};
    host_key_t *keys = malloc(sizeof(*keys) * (size_t)t->nhosts);
    rl_status_t st = keys ? group_hosts(t, &g) : RL_ERR_NO_MEMORY;
    int nh = 0, maxm = 1;
    for (int h = 0; st == RL_OK && h < t->nhosts; h++) {
        int m = g.start[h + 1] - g.start[h];
        if (!m)
            continue;
        maxm = m > maxm ? m : maxm;
        int chain[8], depth = 0, s = nic_switch(t, t->place[g.ranks[g.start[h]]].nic);
        while (s >= 0 && depth < 8) {
            chain[depth++] = s;
            s = parent_of(t, s);
        }
        host_key_t *k = &keys[nh++];
        memset(k->key, 0, sizeof(k->key));
        for (int i = 0; i < depth; i++) /* top of the chain first */
            k->key[i + 8 - depth] = chain[depth - 1 - i];
        if (walk)
            k->key[7] = walk[chain[0]];
        k->host = h;
    }
    if (st == RL_OK) {
        qsort(keys, (size_t)nh, sizeof(*keys), cmp_key);
        int rings = maxm > 1 ? maxm : 1;
        if (max_rings > 0 && rings > max_rings)
            rings = max_rings;
        if (rings > PLAN_MAX_RINGS)
            rings = PLAN_MAX_RINGS;
        p->nrings = rings;
        p->order = malloc(sizeof(int) * (size_t)rings * (size_t)t->nranks);
        if (!p->order)
            st = RL_ERR_NO_MEMORY;
        for (int c = 0; st == RL_OK && c < rings; c++) {
            int *o = p->order + (size_t)c * t->nranks, n = 0;
            for (int i = 0; i < nh; i++) {
                const int *loc = g.ranks + g.start[keys[i].host];
                int m = g.start[keys[i].host + 1] - g.start[keys[i].host];
                /* even hosts: enter on c, walk down, leave on c+1; odd: the mirror */
                for (int j = 0; j < m; j++)
                    o[n++] = i % 2 == 0 ? loc[((c - j) % m + m) % m] : loc[(c + 1 + j) % m];
            }
        }
        snprintf(p->method, sizeof(p->method), "%s%s", walk ? "nearest-switch walk" : "switch order",
                 maxm > 1 ? ", rail-aligned snake" : "");
    }
    free(walk);
    free(keys);
    free(g.start);
    free(g.ranks);
    return st;
}

/* ---- tori ---- */

static int torus_node(const int *c, const int *dims, int nd)
{
    int idx = 0, stride = 1;
    for (int i = 0; i < nd; i++) {
        idx += c[i] * stride;
        stride *= dims[i];
    }
    return idx;
}

/* Reflected Gray code over the dimensions, dims[fast] varying fastest and
 * an even dimension most significant, so the last node is one wrap link
 * away from the first. Returns -1 if no even dimension other than fast. */
static int gray_cycle(const int *dims, int nd, int fast, int *seq)
{
    int perm[3], k = 0, top = -1;
    for (int i = nd - 1; i >= 0 && top < 0; i--)
        if (i != fast && dims[i] % 2 == 0)
            top = i;
    if (top < 0)
        return -1;
    perm[k++] = fast;
    for (int i = 0; i < nd; i++)
        if (i != fast && i != top)
            perm[k++] = i;
    perm[k++] = top;
    int d[3], n = 1;
    for (int i = 0; i < nd; i++) {
        d[i] = dims[perm[i]];
        n *= d[i];
    }
    for (int idx = 0; idx < n; idx++) {
        int raw[3], cur[3], c[3], rest = idx;
        for (int i = 0; i < nd; i++) {
            raw[i] = rest % d[i];
            rest /= d[i];
        }
        /* digit i is reflected when the number formed by the higher digits is odd */
        long higher = 0;
        for (int i = nd - 1; i >= 0; i--) {
            cur[i] = higher % 2 ? d[i] - 1 - raw[i] : raw[i];
            higher = higher * d[i] + raw[i];
        }
        for (int i = 0; i < nd; i++)
            c[perm[i]] = cur[i];
        seq[idx] = torus_node(c, dims, nd);
    }
    return 0;
}

/* k x k: H1 steps +x except at x = k-1-y (then +y); H2 is H1 with x and y
 * swapped. The links H1 skips are exactly the ones H2 takes. */
static void diagonal_cycle(int k, int swap, int *seq)
{
    int x = 0, y = 0;
    for (int i = 0; i < k * k; i++) {
        seq[i] = swap ? x * k + y : y * k + x;
        if (x == (k - 1 - y + k) % k)
            y = (y + 1) % k;
        else
            x = (x + 1) % k;
    }
}

static rl_status_t plan_torus(const rl_topo_t *t, int max_rings, rl_topo_plan_t *p, int *done)
{
    *done = 0;
    int *rank_at = malloc(sizeof(int) * (size_t)t->nsw);
    if (!rank_at)
        return RL_ERR_NO_MEMORY;
    for (int s = 0; s < t->nsw; s++)
        rank_at[s] = -1;
    int ok = t->nranks == t->nsw;
    for (int r = 0; ok && r < t->nranks; r++) {
        int s = nic_switch(t, t->place[r].nic);
        ok = rank_at[s] < 0;
        rank_at[s] = r;
    }
    /* square 2D: the two diagonal cycles; otherwise one Gray-code cycle per
     * dimension that can run fastest: each loads mostly its own links */
    int square = t->ntorus == 2 && t->torus[0] == t->torus[1] && t->torus[0] >= 3;
    int *seq = ok ? malloc(sizeof(int) * (size_t)t->nsw * 3) : NULL;
    int base = 0;
    rl_status_t st = RL_OK;
    if (ok && !seq)
        st = RL_ERR_NO_MEMORY;
    if (seq && square) {
        diagonal_cycle(t->torus[0], 0, seq);
        diagonal_cycle(t->torus[0], 1, seq + t->nsw);
        base = 2;
    } else if (seq) {
        for (int f = 0; f < t->ntorus; f++)
            base += gray_cycle(t->torus, t->ntorus, f, seq + (size_t)base * t->nsw) == 0;
    }
    int rings = 2 * base; /* and each run backwards: the other direction of every link */
    if (max_rings > 0 && rings > max_rings)
        rings = max_rings;
    if (base > 0) {
        p->order = malloc(sizeof(int) * (size_t)rings * (size_t)t->nranks);
        if (!p->order) {
            st = RL_ERR_NO_MEMORY;
        } else {
            int n = t->nranks;
            for (int c = 0; c < rings; c++) {
                const int *sq = seq + (size_t)(c % base) * n;
                for (int i = 0; i < n; i++)
                    p->order[(size_t)c * n + i] = rank_at[c < base ? sq[i] : sq[(n - i) % n]];
            }
            p->nrings = rings;
            snprintf(p->method, sizeof(p->method), square ? "torus: 2 edge-disjoint Hamiltonian cycles + reverses"
                                                          : "torus: %d Gray-code cycles + reverses", base);
            *done = 1;
        }
    }
    free(seq);
    free(rank_at);
    return st;
}

uint64_t rl_topo_hash_order(const int *order, int n, int nrings)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)nrings;
    for (long i = 0; i < (long)n * nrings; i++)
        h = (h ^ (uint64_t)(uint32_t)order[i]) * 1099511628211ull;
    return h;
}

rl_status_t rl_topo_plan(rl_topo_t *t, int max_rings, rl_topo_plan_t *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    p->nranks = t->nranks;
    if (t->nranks < 1 || !t->adj_off) {
        snprintf(err, errlen, "plan: fabric has no ranks (or was not finished)");
        return RL_ERR_INVALID_ARG;
    }
    int done = 0;
    rl_status_t st = t->ntorus ? plan_torus(t, max_rings, p, &done) : RL_OK;
    if (st == RL_OK && !done)
        st = plan_tiered(t, max_rings, p);
    int *ident = st == RL_OK ? malloc(sizeof(int) * (size_t)t->nranks) : NULL;
    if (st == RL_OK && !ident)
        st = RL_ERR_NO_MEMORY;
    rl_topo_loads_t lp = {0}, lr = {0};
    if (st == RL_OK) {
        for (int i = 0; i < t->nranks; i++)
            ident[i] = i;
        st = rl_topo_ring_loads(t, p->order, p->nrings, &lp);
    }
    if (st == RL_OK)
        st = rl_topo_ring_loads(t, ident, 1, &lr);
    if (st == RL_OK) {
        p->util = lp.max_util;
        p->hops = lp.hops;
        p->worst = lp.argmax;
        p->util_rank_order = lr.max_util;
        p->hops_rank_order = lr.hops;
        p->worst_rank_order = lr.argmax;
        p->util_bound = rl_topo_ring_bound(t, NULL, NULL, 0);
        if (p->util > p->util_rank_order * (1 + 1e-9) ||
            (p->util >= p->util_rank_order * (1 - 1e-9) && p->hops > p->hops_rank_order * (1 + 1e-9))) {
            free(p->order); /* no better than rank order: keep it */
            p->order = ident;
            ident = NULL;
            p->nrings = 1;
            p->util = p->util_rank_order;
            p->hops = p->hops_rank_order;
            p->worst = p->worst_rank_order;
            snprintf(p->method, sizeof(p->method), "rank order (no better plan found)");
        }
        p->hash = rl_topo_hash_order(p->order, p->nranks, p->nrings);
    } else if (st == RL_ERR_INVALID_ARG) {
        snprintf(err, errlen, "plan: some ranks cannot reach each other through the fabric");
    } else {
        snprintf(err, errlen, "plan: out of memory");
    }
    rl_topo_loads_free(&lp);
    rl_topo_loads_free(&lr);
    free(ident);
    if (st != RL_OK)
        rl_topo_plan_free(p);
    return st;
}

void rl_topo_plan_free(rl_topo_plan_t *p)
{
    free(p->order);
    p->order = NULL;
}

void rl_topo_plan_print(const rl_topo_t *t, const rl_topo_plan_t *p, FILE *out)
{
    char w1[300], w2[300];
    rl_topo_res_name(t, p->worst, w1, sizeof(w1));
    rl_topo_res_name(t, p->worst_rank_order, w2, sizeof(w2));
    fprintf(out, "# fabric: %s: %d ranks on %d hosts, %d switches, %d links\n", t->name, t->nranks, t->nhosts, t->nsw,
            t->nlinks);
    fprintf(out, "# plan: %s, %d ring%s, hash %016llx\n", p->method, p->nrings, p->nrings > 1 ? "s" : "",
            (unsigned long long)p->hash);
    fprintf(out, "# max link load = ring traffic through the busiest link / its Gb/s (1 = one ring's full data)\n");
    fprintf(out, "%-12s %14s %16s %12s  %s\n", "#", "max load/Gb/s", "ring rate Gb/s", "link hops", "busiest link");
    fprintf(out, "%-12s %14.6g %16.4g %12.1f  %s\n", "rank-order", p->util_rank_order, 1 / p->util_rank_order,
            p->hops_rank_order, w2);
    fprintf(out, "%-12s %14.6g %16.4g %12.1f  %s\n", "planned", p->util, 1 / p->util, p->hops, w1);
    fprintf(out, "%-12s %14.6g %16.4g %12s\n", "lower-bound", p->util_bound, 1 / p->util_bound, "-");
    fprintf(out, "# planned vs rank order: %.3gx less load; planned / bound: %.3g\n", p->util_rank_order / p->util,
            p->util / p->util_bound);
    int show = p->nranks <= 64 ? p->nranks : 16;
    for (int c = 0; c < p->nrings; c++) {
        fprintf(out, "ring %d:", c);
        for (int i = 0; i < show; i++)
            fprintf(out, "%s%d", i ? "," : " ", p->order[(size_t)c * p->nranks + i]);
        fprintf(out, "%s\n", show < p->nranks ? ",..." : "");
    }
    rl_topo_chan_print(t, p, out);
}

rl_status_t rl_topo_plan_json(const rl_topo_t *t, const rl_topo_plan_t *p, const char *path, char *err, size_t errlen)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "w") : stdout;
    if (!f) {
        snprintf(err, errlen, "%s: cannot write", path);
        return RL_ERR_INVALID_ARG;
    }
    char w1[300], w2[300];
    rl_topo_res_name(t, p->worst, w1, sizeof(w1));
    rl_topo_res_name(t, p->worst_rank_order, w2, sizeof(w2));
    fprintf(f, "{\"fabric\": ");
    rl_topo_json_str(f, t->name);
    fprintf(f, ", \"nranks\": %d, \"method\": \"%s\", \"hash\": \"%016llx\",\n", p->nranks, p->method,
            (unsigned long long)p->hash);
    fprintf(f, " \"max_load_per_gbps\": {\"planned\": %.9g, \"rank_order\": %.9g, \"bound\": %.9g},\n", p->util,
            p->util_rank_order, p->util_bound);
    fprintf(f, " \"hops\": {\"planned\": %.6g, \"rank_order\": %.6g},\n", p->hops, p->hops_rank_order);
    fprintf(f, " \"busiest_link\": {\"planned\": ");
    rl_topo_json_str(f, w1);
    fprintf(f, ", \"rank_order\": ");
    rl_topo_json_str(f, w2);
    fprintf(f, "},\n \"rings\": [");
    for (int c = 0; c < p->nrings; c++) {
        fprintf(f, "%s\n  [", c ? "," : "");
        for (int i = 0; i < p->nranks; i++)
            fprintf(f, "%s%d", i ? "," : "", p->order[(size_t)c * p->nranks + i]);
        fprintf(f, "]");
    }
    fprintf(f, "]}\n");
    int bad = ferror(f);
    if (f != stdout)
        bad |= fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s: write error", path);
        return RL_ERR_INVALID_ARG;
    }
    return RL_OK;
}

static rl_status_t plan_into(rl_topo_t *t, const char *path, int nranks, int max_rings, int *orders, int *nrings,
                             char *desc, size_t desclen, char *err, size_t errlen);

rl_status_t rl_topo_ring_order_file(const char *path, int nranks, int max_rings, int *orders, int *nrings, char *desc,
                                    size_t desclen, char *err, size_t errlen)
{
    rl_topo_t t;
    char e[400];
    rl_status_t st = rl_topo_load(path, &t, e, sizeof(e));
    if (st != RL_OK) {
        snprintf(err, errlen, "RINGLET_TOPO_FILE: %s", e);
        return st == RL_ERR_NO_MEMORY ? st : RL_ERR_CONFIG;
    }
    if (t.nranks != nranks) {
        snprintf(err, errlen, "RINGLET_TOPO_FILE %s places %d ranks, the group has %d", path, t.nranks, nranks);
        rl_topo_free(&t);
        return RL_ERR_CONFIG;
    }
    return plan_into(&t, path, nranks, max_rings, orders, nrings, desc, desclen, err, errlen);
}

static int cmp_host_name(const void *a, const void *b, void *arg)
{
    const rl_topo_t *t = arg;
    return strcmp(t->hosts[*(const int *)a].name, t->hosts[*(const int *)b].name);
}

int rl_topo_place_hosts(rl_topo_t *t, int nranks, const char *const *names)
{
    int *by_name = malloc(sizeof(int) * (size_t)(t->nhosts ? t->nhosts : 1));
    int *used = calloc((size_t)(t->nhosts ? t->nhosts : 1), sizeof(int));
    rl_topo_place_t *p = malloc(sizeof(*p) * (size_t)nranks);
    int missing = -1;
    if (!by_name || !used || !p)
        missing = 0;
    for (int h = 0; missing < 0 && h < t->nhosts; h++)
        by_name[h] = h;
    if (missing < 0)
        qsort_r(by_name, (size_t)t->nhosts, sizeof(int), cmp_host_name, t);
    for (int r = 0; missing < 0 && r < nranks; r++) {
        int lo = 0, hi = t->nhosts - 1, h = -1;
        while (lo <= hi) { /* binary search by name */
            int mid = (lo + hi) / 2, d = strcmp(names[r], t->hosts[by_name[mid]].name);
            if (!d) {
                h = by_name[mid];
                break;
            }
            if (d < 0)
                hi = mid - 1;
            else
                lo = mid + 1;
        }
        if (h < 0 || t->hosts[h].nnics < 1) {
            missing = r;
            break;
        }
        p[r].host = h;
        p[r].nic = t->hosts[h].first_nic + used[h]++ % t->hosts[h].nnics;
    }
    if (missing < 0) {
        free(t->place);
        t->place = p;
        t->nranks = nranks;
        p = NULL;
    }
    free(p);
    free(by_name);
    free(used);
    return missing;
}

rl_status_t rl_topo_ring_order_hosts(const char *path, int nranks, const char *const *names, int max_rings,
                                     int *orders, int *nrings, int *missing, char *desc, size_t desclen, char *err,
                                     size_t errlen)
{
    rl_topo_t t;
    char e[400];
    *missing = -1;
    rl_status_t st = rl_topo_load(path, &t, e, sizeof(e));
    if (st != RL_OK) {
        snprintf(err, errlen, "RINGLET_TOPO_FILE: %s", e);
        return st == RL_ERR_NO_MEMORY ? st : RL_ERR_CONFIG;
    }
    if ((*missing = rl_topo_place_hosts(&t, nranks, names)) >= 0) {
        snprintf(err, errlen, "RINGLET_TOPO_FILE %s has no host named \"%.64s\" (rank %d runs there)", path,
                 names[*missing], *missing);
        rl_topo_free(&t);
        return RL_ERR_CONFIG;
    }
    if ((st = rl_topo_finish(&t, e, sizeof(e))) != RL_OK) {
        snprintf(err, errlen, "RINGLET_TOPO_FILE %s: %s", path, e);
        rl_topo_free(&t);
        return RL_ERR_CONFIG;
    }
    return plan_into(&t, path, nranks, max_rings, orders, nrings, desc, desclen, err, errlen);
}

/* Plan on t (freed here) and hand the first max_rings rings out. */
static rl_status_t plan_into(rl_topo_t *t, const char *path, int nranks, int max_rings, int *orders, int *nrings,
                             char *desc, size_t desclen, char *err, size_t errlen)
{
    char e[400];
    rl_status_t st;
    rl_topo_plan_t p;
    st = rl_topo_plan(t, max_rings, &p, e, sizeof(e));
    if (st == RL_OK) {
        *nrings = p.nrings < max_rings ? p.nrings : max_rings;
        memcpy(orders, p.order, sizeof(int) * (size_t)nranks * (size_t)*nrings);
        snprintf(desc, desclen, "%s: %s, %d ring%s; max link load/Gb/s %.4g (rank order %.4g, bound %.4g), hash %016llx",
                 path, p.method, *nrings, *nrings == 1 ? "" : "s", p.util, p.util_rank_order, p.util_bound,
                 (unsigned long long)p.hash);
        rl_topo_plan_free(&p);
    } else {
        snprintf(err, errlen, "RINGLET_TOPO_FILE %s: %s", path, e);
        st = RL_ERR_CONFIG;
    }
    rl_topo_free(t);
    return st;
}
