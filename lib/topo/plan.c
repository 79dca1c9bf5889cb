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
 * - Tori (every dimension >= 3): d edge-disjoint Hamiltonian cycles and
 *   their reverses, 2d rings that use every directed link exactly once (the
 *   bound): the "diagonal" pair on a square 2D torus, a local search on
 *   the others (below). Where that does not apply or runs out of budget
 *   (a dimension of 2, over 2^18 nodes, or the search gives up), one
 *   reflected Gray-code cycle per dimension that can vary fastest (closed
 *   through the wrap link of an even dimension), and their reverses.
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

/* ---- Hamiltonian decomposition of a torus (every dimension >= 3) ----
 *
 * C_m x C_n (Kotzig) and C_a x C_b x C_c (Foregger) split into d
 * edge-disjoint Hamiltonian cycles; each and its reverse as rings carry
 * every directed link exactly once. We find them by local search over d
 * factors (2-regular spanning subgraphs that partition the links), F
 * starting as the links of dimension F. A move swaps the factors of an
 * alternating square (4-cycle v, v+e_i, v+e_i+e_j, v+e_j whose opposite
 * links lie in factors P and Q != P): both stay 2-regular, and in each the
 * swap merges two cycles, keeps one, or splits one.
 * - Phase 1 takes the moves that merge in both (union-find, near O(1)).
 *   They keep c_P - c_Q, so they cannot finish unequal counts.
 * - Phase 2 sweeps for moves that lower the total, evaluated exactly (a
 *   swap on one cycle keeps it whole iff the far link's ends come in the
 *   right order along it: positions), and re-walks the changed cycles,
 *   O(N) a move; in 2D about |m - n| moves (63x512: 449).
 * - In a dead end it works only along the shortest cycle (its factor is
 *   one cycle only once that one has merged), with neutral kicks at random
 *   squares there.
 * - 3D tries a second start (hd_start_layered), first when dimensions are
 *   far apart.
 * All work is counted against a budget (HD_WORK) per attempt; over it, or
 * over HD_MAX_NODES nodes, the caller falls back to Gray codes. That
 * happens at extreme aspect ratios: 4x255, 8x1023, 3x9000, 3x3x3000 (all
 * m x n up to 24, a x b x c up to 9 succeed, and 64x8x64, 4x4x2048). A
 * 3D failure can cost 3 budgets (two 2D parts and the layered search) and
 * the other start's. The search is deterministic (constant seed, no
 * floating point): every rank plans the same rings. */

#define HD_MAX_NODES (1 << 18)
#define HD_WORK (1L << 26) /* walk steps + squares tried: ~0.5 s here when used up */

typedef struct {
    int nd, n, dims[3];
    int *step;        /* step[(v * nd + i) * 2 + s]: v - e_i (s = 0) or v + e_i (s = 1) */
    unsigned char *f; /* f[v * nd + i]: factor of the link v -- v + e_i */
    int *adj[3];      /* adj[F][2v], adj[F][2v + 1]: v's two neighbours in factor F */
    int *lab[3];      /* phase 1: union-find parent; phase 2: cycle id */
    int *pos[3];      /* phase 2: position along the cycle */
    int *len[3];      /* phase 2: length of cycle id */
    int ncyc[3], next[3]; /* cycles; next unused id */
    int *buf;         /* a cycle's nodes */
    long work;
} hd_t;

static int hd_nb(const hd_t *h, int v, int i, int s) { return h->step[(v * h->nd + i) * 2 + s]; }

static int hd_next(const int *adj, int v, int prev) { return adj[2 * v] == prev ? adj[2 * v + 1] : adj[2 * v]; }

static void hd_replace(int *adj, int v, int old, int nw)
{
    adj[2 * v + (adj[2 * v] == old ? 0 : 1)] = nw;
}

static void hd_build_adj(hd_t *h)
{
    for (int F = 0; F < h->nd; F++)
        for (int v = 0; v < h->n; v++)
            h->adj[F][2 * v] = h->adj[F][2 * v + 1] = -1;
    for (int v = 0; v < h->n; v++)
        for (int i = 0; i < h->nd; i++) {
            int *a = h->adj[h->f[v * h->nd + i]], w = hd_nb(h, v, i, 1);
            a[2 * v + (a[2 * v] >= 0)] = w;
            a[2 * w + (a[2 * w] >= 0)] = v;
        }
}

/* Number the cycle of factor F through v as cycle id, from v. */
static void hd_walk(hd_t *h, int F, int v, int id)
{
    int prev = -1, cur = v, k = 0;
    do {
        h->lab[F][cur] = id;
        h->pos[F][cur] = k++;
        int next = hd_next(h->adj[F], cur, prev);
        prev = cur, cur = next;
    } while (cur != v && k <= h->n);
    h->len[F][id] = k;
    h->work += k;
}

static void hd_label(hd_t *h, int F)
{
    for (int v = 0; v < h->n; v++)
        h->lab[F][v] = -1;
    h->ncyc[F] = 0;
    for (int v = 0; v < h->n; v++)
        if (h->lab[F][v] < 0)
            hd_walk(h, F, v, h->ncyc[F]++);
    h->next[F] = h->ncyc[F];
}

/* The square at v in dimensions i < j: corners v, vi = v+e_i, vj = v+e_j,
 * vij; links a = v--vi, c = vj--vij (dimension i), d = v--vj, b = vi--vij. */
typedef struct {
    int v, vi, vj, vij;
    int a, b, c, d;
} square_t;

static void hd_square(const hd_t *h, int v, int i, int j, square_t *q)
{
    q->v = v;
    q->vi = hd_nb(h, v, i, 1);
    q->vj = hd_nb(h, v, j, 1);
    q->vij = hd_nb(h, q->vi, j, 1);
    q->a = v * h->nd + i;
    q->c = q->vj * h->nd + i;
    q->d = v * h->nd + j;
    q->b = q->vi * h->nd + j;
}

static int hd_alternating(const hd_t *h, const square_t *q)
{
    return h->f[q->a] == h->f[q->c] && h->f[q->b] == h->f[q->d] && h->f[q->a] != h->f[q->b];
}

/* P (a, c) takes d, b; Q (d, b) takes a, c. */
static void hd_swap(hd_t *h, const square_t *q)
{
    unsigned char P = h->f[q->a], Q = h->f[q->b];
    h->f[q->a] = h->f[q->c] = Q;
    h->f[q->b] = h->f[q->d] = P;
    int *p = h->adj[P], *o = h->adj[Q];
    hd_replace(p, q->v, q->vi, q->vj), hd_replace(p, q->vi, q->v, q->vij);
    hd_replace(p, q->vj, q->vij, q->v), hd_replace(p, q->vij, q->vj, q->vi);
    hd_replace(o, q->v, q->vj, q->vi), hd_replace(o, q->vj, q->v, q->vij);
    hd_replace(o, q->vi, q->vij, q->v), hd_replace(o, q->vij, q->vi, q->vj);
}

static int uf_find(int *p, int v)
{
    while (p[v] != v)
        v = p[v] = p[p[v]];
    return v;
}

static void hd_pair(int nd, int pr, int *i, int *j)
{
    *i = nd == 2 || pr < 2 ? 0 : 1;
    *j = nd == 2 || pr == 0 ? 1 : 2;
}

static void hd_phase1(hd_t *h)
{
    for (int F = 0; F < h->nd; F++) { /* union-find parent: the node each cycle's walk began at */
        hd_label(h, F);
        for (int v = 0; v < h->n; v++)
            if (h->pos[F][v] == 0)
                h->len[F][h->lab[F][v]] = v;
        for (int v = 0; v < h->n; v++)
            h->lab[F][v] = h->len[F][h->lab[F][v]];
    }
    int npairs = h->nd == 3 ? 3 : 1;
    for (int v = 0; v < h->n; v++)
        for (int pr = 0; pr < npairs; pr++) {
            int i, j;
            square_t q;
            hd_pair(h->nd, pr, &i, &j);
            hd_square(h, v, i, j, &q);
            if (!hd_alternating(h, &q))
                continue;
            int P = h->f[q.a], Q = h->f[q.b];
            int p1 = uf_find(h->lab[P], q.v), p2 = uf_find(h->lab[P], q.vj);
            int q1 = uf_find(h->lab[Q], q.v), q2 = uf_find(h->lab[Q], q.vi);
            if (p1 == p2 || q1 == q2)
                continue;
            hd_swap(h, &q);
            h->lab[P][p2] = p1;
            h->lab[Q][q2] = q1;
        }
    h->work += (long)h->n * npairs;
}

/* Change in F's cycle count when links a--b and c--d of F give way to
 * a--c and b--d: -1 if they lie on two cycles; on one, 0 if the walk
 * a, b, ... meets c before d (the two paths join end to end), else +1. */
static int hd_delta(const hd_t *h, int F, int a, int b, int c, int d)
{
    const int *lab = h->lab[F], *pos = h->pos[F];
    if (lab[a] != lab[c])
        return -1;
    int L = h->len[F][lab[a]], fwd = (pos[a] + 1) % L == pos[b];
    int dc = fwd ? pos[c] - pos[a] : pos[a] - pos[c], dd = fwd ? pos[d] - pos[a] : pos[a] - pos[d];
    return (dc + L) % L < (dd + L) % L ? 0 : 1;
}

/* Renumber F after a swap that replaced a--b, c--d by a--c, b--d and
 * changed F's count by delta: a's cycle keeps its id; a split-off cycle
 * (through b) takes a new one, and ids running out renumber all of F. */
static void hd_relabel(hd_t *h, int F, int a, int b, int delta)
{
    hd_walk(h, F, a, h->lab[F][a]);
    h->ncyc[F] += delta;
    if (delta <= 0)
        return;
    if (h->next[F] < h->n)
        hd_walk(h, F, b, h->next[F]++);
    else
        hd_label(h, F);
}

/* Take the square at v in (i, j) if the total cycle count drops, or, with
 * neutral set, if it stays (a kick out of a dead end). */
static int hd_try(hd_t *h, int v, int i, int j, int neutral)
{
    square_t q;
    h->work++;
    hd_square(h, v, i, j, &q);
    if (!hd_alternating(h, &q))
        return 0;
    int P = h->f[q.a], Q = h->f[q.b];
    int dp = hd_delta(h, P, q.v, q.vi, q.vj, q.vij), dq = hd_delta(h, Q, q.v, q.vj, q.vi, q.vij);
    if (neutral ? dp + dq != 0 : dp + dq >= 0)
        return 0;
    hd_swap(h, &q);
    hd_relabel(h, P, q.v, q.vi, dp);
    hd_relabel(h, Q, q.v, q.vj, dq);
    return 1;
}

static int hd_total(const hd_t *h)
{
    int total = 0;
    for (int F = 0; F < h->nd; F++)
        total += h->ncyc[F];
    return total;
}

/* A node on the shortest cycle of any factor that has more than one. */
static int hd_smallest(hd_t *h, int *F)
{
    int best = -1, bl = h->n + 1;
    for (int G = 0; G < h->nd; G++)
        for (int v = 0; h->ncyc[G] > 1 && v < h->n; v++)
            if (h->len[G][h->lab[G][v]] < bl)
                bl = h->len[G][h->lab[G][v]], best = v, *F = G;
    h->work += (long)h->n * h->nd;
    return best;
}

static uint64_t hd_rand(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

/* The k-th square with corner u: pair k / 4, u at corner k % 4. */
static int hd_try_at(hd_t *h, int u, int k, int neutral)
{
    int i, j;
    hd_pair(h->nd, k / 4, &i, &j);
    int v = k & 1 ? hd_nb(h, u, i, 0) : u;
    v = k & 2 ? hd_nb(h, v, j, 0) : v;
    return hd_try(h, v, i, j, neutral);
}

/* Out of a dead end: the shortest cycle C (of a factor with several) has
 * to merge some time, so try the squares along C; if none helps, a neutral
 * move at a random one of them, and again. 1 once a move helped. */
static int hd_unstick(hd_t *h, uint64_t *rng)
{
    int F = 0, u0 = hd_smallest(h, &F), nk = 4 * (h->nd == 3 ? 3 : 1);
    while (h->work < HD_WORK) {
        int L = 0, u = u0, prev = -1;
        do { /* C into buf: a move renumbers F */
            h->buf[L++] = u;
            int next = hd_next(h->adj[F], u, prev);
            prev = u, u = next;
        } while (u != u0 && L < h->n);
        h->work += L;
        for (int x = 0; x < L; x++)
            for (int k = 0; k < nk; k++)
                if (hd_try_at(h, h->buf[x], k, 0))
                    return 1;
        for (int tries = 0; tries < 16 * nk; tries++) {
            uint64_t r = hd_rand(rng);
            if (hd_try_at(h, h->buf[r % (uint64_t)L], (int)((r >> 32) % (uint64_t)nk), 1))
                break;
        }
    }
    return 0;
}

/* Sweep the squares round and round while that finds moves, then go on
 * along the shortest cycles. 1 if every factor became one cycle. */
static int hd_phase2(hd_t *h)
{
    for (int F = 0; F < h->nd; F++)
        hd_label(h, F);
    int npairs = h->nd == 3 ? 3 : 1;
    long nsq = (long)h->n * npairs, idle = 0;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (long s = 0; hd_total(h) > h->nd && idle < nsq && h->work < HD_WORK; s = (s + 1) % nsq) {
        int i, j;
        hd_pair(h->nd, (int)(s % npairs), &i, &j);
        idle = hd_try(h, (int)(s / npairs), i, j, 0) ? 0 : idle + 1;
    }
    while (hd_total(h) > h->nd && hd_unstick(h, &rng))
        ;
    return hd_total(h) == h->nd;
}

/* The starting factors: F = the links of dimension F, except in a 2D
 * torus with m and n even. A square swap never changes a factor's class in
 * H1(torus; Z2) (it adds the square's boundary). Rows (n of class (1, 0))
 * and columns are then both of class 0, and two edge-disjoint Hamiltonian
 * cycles cannot both be contractible (the search never finished from
 * there: 6x4 stuck at 1 + 3 cycles). So swap the factors along the
 * staircase from (0, 0) (+x on a row link, +y on a column link, lcm(m, n)
 * times each): that adds its class (n, m) / gcd to both, never 0 mod 2.
 * With one of m, n odd, one cycle must be contractible (a Hamiltonian
 * cycle there has even length, so an even winding in the odd dimension),
 * and rows and columns start with the right classes. */
static void hd_start(hd_t *h)
{
    for (int v = 0; v < h->n; v++)
        for (int i = 0; i < h->nd; i++)
            h->f[v * h->nd + i] = (unsigned char)i;
    int m = h->dims[0], n = h->dims[1], g = m, r = n;
    if (h->nd != 2 || m % 2 || n % 2)
        return;
    while (r) {
        int t = g % r;
        g = r, r = t;
    }
    for (int k = 0; k < m / g * n; k++) {
        h->f[(k % n * m + k % m) * 2] = 1;           /* (k, k) -> (k + 1, k) */
        h->f[(k % n * m + (k + 1) % m) * 2 + 1] = 0; /* (k + 1, k) -> (k + 1, k + 1) */
    }
}

/* The link id of u -- w, or -1 if they are not torus neighbours. */
static int hd_link(const hd_t *h, int u, int w)
{
    for (int i = 0; i < h->nd; i++) {
        if (hd_nb(h, u, i, 1) == w)
            return u * h->nd + i;
        if (hd_nb(h, u, i, 0) == w)
            return w * h->nd + i;
    }
    return -1;
}

/* seq (nd x n nodes): each factor walked from node 0. 1 if each walk is a
 * cycle through all n nodes along torus links, no link used twice. */
static int hd_emit(const hd_t *h, int *seq)
{
    unsigned char *used = calloc((size_t)h->n * (unsigned)h->nd, 1);
    int *seen = calloc((size_t)h->n, sizeof(int)), ok = used && seen;
    for (int F = 0; ok && F < h->nd; F++) {
        int *s = seq + (size_t)F * h->n, prev = -1, cur = 0;
        for (int k = 0; ok && k < h->n; k++) {
            s[k] = cur;
            int next = hd_next(h->adj[F], cur, prev);
            prev = cur, cur = next;
            ok = cur >= 0;
        }
        for (int k = 0; ok && k < h->n; k++) {
            int a = s[k], b = s[(k + 1) % h->n];
            ok = a >= 0 && a < h->n && seen[a] == F;
            seen[a] = F + 1;
            int link = ok ? hd_link(h, a, b) : -1;
            ok = ok && link >= 0 && !used[link];
            if (ok)
                used[link] = 1;
        }
    }
    free(used);
    free(seen);
    return ok;
}

static void hd_free(hd_t *h)
{
    free(h->step);
    free(h->f);
    free(h->buf);
    for (int F = 0; F < 3; F++)
        free(h->adj[F]), free(h->lab[F]), free(h->pos[F]), free(h->len[F]);
}

static int hd_alloc(hd_t *h)
{
    size_t n = (size_t)h->n, nd = (unsigned)h->nd;
    h->step = malloc(sizeof(int) * n * nd * 2);
    h->f = malloc(n * nd);
    h->buf = malloc(sizeof(int) * n);
    int ok = h->step && h->f && h->buf;
    for (int F = 0; F < h->nd; F++) {
        h->adj[F] = malloc(sizeof(int) * n * 2);
        h->lab[F] = malloc(sizeof(int) * n);
        h->pos[F] = malloc(sizeof(int) * n);
        h->len[F] = malloc(sizeof(int) * n);
        ok = ok && h->adj[F] && h->lab[F] && h->pos[F] && h->len[F];
    }
    if (!ok)
        return 0;
    int stride[3] = {1, h->dims[0], h->dims[0] * h->dims[1]}; /* x fastest, as the generator numbers */
    for (int v = 0; v < h->n; v++)
        for (int i = 0; i < h->nd; i++) {
            int c = v / stride[i] % h->dims[i], wrap = (h->dims[i] - 1) * stride[i];
            h->step[(v * h->nd + i) * 2] = c == 0 ? v + wrap : v - stride[i];
            h->step[(v * h->nd + i) * 2 + 1] = c + 1 == h->dims[i] ? v - wrap : v + stride[i];
        }
    return 1;
}

static int torus_hamiltonian(const int *dims, int nd, int *seq);

static int hd_search(hd_t *h)
{
    hd_build_adj(h);
    hd_phase1(h);
    return hd_phase2(h);
}

/* Two edge-disjoint Hamiltonian cycles of the 2D torus m x n into seq
 * (node x + m y): the diagonal pair when square, else the search. */
static int torus_2d(int m, int n, int *seq)
{
    if (m == n) {
        diagonal_cycle(m, 0, seq);
        diagonal_cycle(m, 1, seq + (size_t)m * m);
        return 1;
    }
    int dims[2] = {m, n};
    return torus_hamiltonian(dims, 2, seq);
}

/* Factor F of the links between consecutive nodes of cyc (len nodes, each
 * mapped by node[] and moved up by off); 0 if one is no free torus link. */
static int hd_assign(hd_t *h, const int *cyc, int len, const int *node, int off, int F)
{
    for (int k = 0; k < len; k++) {
        int a = node ? node[cyc[k]] : cyc[k], b = node ? node[cyc[(k + 1) % len]] : cyc[(k + 1) % len];
        int l = hd_link(h, a + off, b + off);
        if (l < 0 || h->f[l] != 0xff)
            return 0;
        h->f[l] = (unsigned char)F;
    }
    return 1;
}

/* A second 3D start, for dimensions far apart (64x8x64 has 512, 4096 and
 * 512 lines: thousands of O(N) moves from the first): split the layers
 * across dimension c into H1 + H2 (2D); H1 in every layer with the links
 * of dimension c is the 2D torus |H1| x dims[c], whose two cycles are
 * factors 0 and 1; H2 in every layer is factor 2, dims[c] cycles to merge.
 * 1 on success, 0 if a 2D part failed, -1 out of memory. */
static int hd_start_layered(hd_t *h, int c)
{
    int p = c == 0 ? 1 : 0, q = c == 2 ? 1 : 2, mp = h->dims[p];
    int stride[3] = {1, h->dims[0], h->dims[0] * h->dims[1]};
    int ab = mp * h->dims[q], nc = h->dims[c];
    int *lay = malloc(sizeof(int) * 2 * (size_t)ab), *node = malloc(sizeof(int) * (size_t)h->n);
    int *g = malloc(sizeof(int) * 2 * (size_t)h->n);
    int ok = lay && node && g ? torus_2d(mp, h->dims[q], lay) : -1;
    for (int k = 0; ok > 0 && k < h->n; k++) { /* node k of the 2D torus: H1's (k mod ab)-th node, layer k / ab */
        int l = lay[k % ab];
        node[k] = l % mp * stride[p] + l / mp * stride[q] + k / ab * stride[c];
    }
    if (ok > 0)
        ok = torus_2d(ab, nc, g);
    memset(h->f, 0xff, (size_t)h->n * (unsigned)h->nd);
    for (int F = 0; ok > 0 && F < 2; F++)
        ok = hd_assign(h, g + (size_t)F * h->n, h->n, node, 0, F);
    for (int k = 0; ok > 0 && k < ab; k++) /* H2's nodes in layer 0 */
        node[k] = lay[ab + k] % mp * stride[p] + lay[ab + k] / mp * stride[q];
    for (int z = 0; ok > 0 && z < nc; z++)
        ok = hd_assign(h, node, ab, NULL, z * stride[c], 2);
    free(lay), free(node), free(g);
    return ok;
}

/* d edge-disjoint Hamiltonian cycles of the torus dims[0..nd) into seq
 * (nd x n nodes, each from node 0). 1 on success, 0 if none was found
 * within the budget (or a dimension is below 3: the theorems need 3, and a
 * 2-cycle's two links are one here), -1 out of memory. */
static int torus_hamiltonian(const int *dims, int nd, int *seq)
{
    hd_t h = {.nd = nd, .n = 1};
    if (nd < 2 || nd > 3)
        return 0;
    for (int i = 0; i < nd; i++) {
        if (dims[i] < 3 || h.n > HD_MAX_NODES / dims[i])
            return 0;
        h.dims[i] = dims[i];
        h.n *= dims[i];
    }
    if (!hd_alloc(&h)) {
        hd_free(&h);
        return -1;
    }
    /* 3D: the layered start too, first when the dimensions are far apart
     * (measured: 64x8x64 0.02 s that way, 0.16 s to fail the other) */
    int lo = 0, hi = 0, ok = 0;
    for (int i = 1; i < nd; i++)
        lo = dims[i] < dims[lo] ? i : lo, hi = dims[i] > dims[hi] ? i : hi;
    int first = nd == 3 && dims[hi] >= 4 * dims[lo] && dims[lo] % 2 == 0;
    for (int k = first; ok == 0 && k < (nd == 3 ? 2 + first : 1); k++) {
        h.work = 0;
        if (k % 2)
            ok = hd_start_layered(&h, lo);
        else
            hd_start(&h), ok = 1;
        ok = ok > 0 ? hd_search(&h) : ok;
    }
    ok = ok > 0 ? hd_emit(&h, seq) : ok;
    hd_free(&h);
    return ok;
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
    /* square 2D: the two diagonal cycles; else the searched decomposition;
     * else one Gray-code cycle per dimension that can run fastest: each
     * loads mostly its own links */
    int square = t->ntorus == 2 && t->torus[0] == t->torus[1] && t->torus[0] >= 3;
    int *seq = ok ? malloc(sizeof(int) * (size_t)t->nsw * 3) : NULL;
    int base = 0, hc = 0;
    rl_status_t st = RL_OK;
    if (ok && !seq)
        st = RL_ERR_NO_MEMORY;
    if (seq && square) {
        diagonal_cycle(t->torus[0], 0, seq);
        diagonal_cycle(t->torus[0], 1, seq + t->nsw);
        base = 2, hc = 1;
    } else if (seq && (hc = torus_hamiltonian(t->torus, t->ntorus, seq)) > 0) {
        base = t->ntorus;
    } else if (seq && hc == 0) {
        for (int f = 0; f < t->ntorus; f++)
            base += gray_cycle(t->torus, t->ntorus, f, seq + (size_t)base * t->nsw) == 0;
    } else if (seq) {
        st = RL_ERR_NO_MEMORY;
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
            snprintf(p->method, sizeof(p->method),
                     hc > 0 ? "torus: %d edge-disjoint Hamiltonian cycles + reverses" : "torus: %d Gray-code cycles + reverses",
                     base);
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
