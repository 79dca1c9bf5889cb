/* Flow-level simulator of collectives on a fabric.
 *
 * An algorithm is a sequence of phases; in a phase a set of flows of equal
 * size runs at once and the phase ends when the slowest flow ends. Rates
 * are max-min fair over the links the flows share (ideal ECMP splits a flow
 * over its minimal paths). With equal sizes the slowest flow's max-min rate
 * is min over links of Gb/s / (flows crossing it), so a phase needs only
 * the link loads: U = max load / Gb/s, and
 *     phase time = alpha + path latency + bytes x 8 x U / (eff x 1e9).
 * rl_sim_maxmin does full progressive filling (the tests check that its
 * slowest rate is 1 / U). Phases that repeat (a ring's 2(n-1) steps, the
 * two halves of halving-doubling) are computed once.
 * With dcqcn set, a step's flows instead follow DCQCN's transient on the
 * phase's busiest link (dcqcn.c): they start at line rate, overfill the
 * queue and back off, one trajectory per distinct (flows, link, latency). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "topo/btree.h"
#include "topo/topo.h"

#define SIM_MAX_PHASES 64

typedef struct {
    double count;  /* times the phase runs */
    double frac;   /* bytes per flow = frac x message bytes */
    double util;   /* max load / Gb/s with weight 1 per flow */
    double lat_us; /* longest path latency */
    double reduce; /* bytes reduced per rank = reduce x message bytes */
    int worst;
    double flows, gbps; /* the busiest link's load and rate */
    int cc;             /* dcqcn: index into rl_sim.cc, -1 none (one flow per link) */
} sim_phase_t;

struct rl_sim {
    rl_sim_params_t prm;
    rl_sim_algo_t algo;
    rl_sim_coll_t coll;
    int nranks;
    sim_phase_t ph[SIM_MAX_PHASES];
    int nph;
    int tree_depth; /* tree: pipeline stages */
    rl_dcqcn_t *cc[SIM_MAX_PHASES];
    int ncc;
};

void rl_sim_defaults(rl_sim_params_t *p)
{
    memset(p, 0, sizeof(*p));
    p->alpha_us = 5;
    p->eff = 0.95;
    p->gamma_gbps = 0;
    rl_dcqcn_defaults(&p->dc);
}

static const char *algo_names[] = {"ring", "planned", "tree", "rhd", "hier", "ptree"};
#define NALGOS ((int)(sizeof(algo_names) / sizeof(algo_names[0])))

const char *rl_sim_algo_name(rl_sim_algo_t a) { return (unsigned)a < NALGOS ? algo_names[a] : "?"; }

int rl_sim_algo_parse(const char *s, rl_sim_algo_t *a)
{
    for (int i = 0; i < NALGOS; i++)
        if (!strcmp(s, algo_names[i])) {
            *a = (rl_sim_algo_t)i;
            return 0;
        }
    return -1;
}

/* Collects a phase's flows (src[i] -> dst[i], weight 1 each). */
typedef struct {
    rl_topo_t *t;
    double *load;
    int nres;
    rl_topo_flow_t *f;
    int n, cap;
    int failed;
} acc_t;

static int acc_init(acc_t *a, rl_topo_t *t)
{
    memset(a, 0, sizeof(*a));
    a->t = t;
    a->nres = rl_topo_nres(t);
    a->load = calloc((size_t)a->nres, sizeof(double));
    return a->load ? 0 : -1;
}

static void acc_free(acc_t *a)
{
    free(a->load);
    free(a->f);
}

static int acc_flow(acc_t *a, int src, int dst)
{
    if (a->n == a->cap) {
        int c = a->cap ? 2 * a->cap : 1024;
        rl_topo_flow_t *f = realloc(a->f, sizeof(*f) * (size_t)c);
        if (!f)
            return -1;
        a->f = f;
        a->cap = c;
    }
    a->f[a->n++] = (rl_topo_flow_t){src, dst, 1.0};
    return 0;
}

/* Ends a phase: routes its flows, keeps U and the latency, clears the loads. */
static int acc_close(acc_t *a, sim_phase_t *ph)
{
    double hops = 0, lat = 0;
    if (rl_topo_flow_loads(a->t, a->f, a->n, a->load, &hops, &lat) != RL_OK)
        return -1;
    ph->util = 0;
    ph->worst = -1;
    for (int r = 0; r < a->nres; r++) {
        if (a->load[r] == 0)
            continue;
        double u = a->load[r] / rl_topo_res_gbps(a->t, r);
        if (u > ph->util) {
            ph->util = u;
            ph->worst = r;
            ph->flows = a->load[r];
            ph->gbps = rl_topo_res_gbps(a->t, r);
        }
        a->load[r] = 0;
    }
    ph->lat_us = lat / 1000;
    a->n = 0;
    return 0;
}

static sim_phase_t *add_phase(rl_sim_t *s, double count, double frac, double reduce)
{
    if (s->nph == SIM_MAX_PHASES)
        return NULL;
    sim_phase_t *p = &s->ph[s->nph++];
    memset(p, 0, sizeof(*p));
    p->count = count;
    p->frac = frac;
    p->reduce = reduce;
    return p;
}

static rl_status_t sim_rings(rl_sim_t *s, acc_t *a, const int *order, int nrings)
{
    int n = s->nranks;
    for (int k = 0; k < nrings; k++)
        for (int i = 0; i < n; i++)
            if (acc_flow(a, order[(size_t)k * n + i], order[(size_t)k * n + (i + 1) % n]))
                return RL_ERR_INVALID_ARG;
    double steps = s->coll == RL_SIM_ALL_REDUCE ? 2.0 * (n - 1) : n - 1;
    double red = s->coll == RL_SIM_ALL_GATHER ? 0 : (double)(n - 1) / n / steps * (s->coll == RL_SIM_ALL_REDUCE ? 1 : 1);
    sim_phase_t *p = add_phase(s, steps, 1.0 / ((double)n * nrings), red);
    if (!p)
        return RL_ERR_INTERNAL;
    return acc_close(a, p) ? RL_ERR_INVALID_ARG : RL_OK;
}

/* Recursive halving-doubling; groups that are not a power of two first fold
 * the ranks above the largest power of two onto the ones below. */
static rl_status_t sim_rhd(rl_sim_t *s, acc_t *a)
{
    int n = s->nranks, q = 1;
    while (q * 2 <= n)
        q *= 2;
    if (q != n && s->coll != RL_SIM_ALL_REDUCE)
        return RL_ERR_INVALID_ARG;
    if (q != n) {
        for (int r = q; r < n; r++)
            if (acc_flow(a, r, r - q))
                return RL_ERR_INVALID_ARG;
        sim_phase_t *p = add_phase(s, 2, 1.0, 0.5); /* fold in, result back out */
        if (!p)
            return RL_ERR_INTERNAL;
        if (acc_close(a, p))
            return RL_ERR_INVALID_ARG;
    }
    double halves = s->coll == RL_SIM_ALL_REDUCE ? 2 : 1;
    double size = 1.0;
    for (int d = q / 2; d >= 1; d /= 2) {
        size /= 2;
        for (int r = 0; r < q; r++)
            if (acc_flow(a, r, r ^ d))
                return RL_ERR_INVALID_ARG;
        sim_phase_t *p = add_phase(s, halves, size, s->coll == RL_SIM_ALL_GATHER ? 0 : size / halves);
        if (!p)
            return RL_ERR_INTERNAL;
        if (acc_close(a, p))
            return RL_ERR_INVALID_ARG;
    }
    return RL_OK;
}

/* Double binary tree over rank positions: tree 0 is a heap (parent (i-1)/2),
 * tree 1 mirrors it (even n) or shifts it by one (odd n). Both trees carry
 * half the data; every edge carries it up and down at once, pipelined. */
/* The double binary tree of coll/dbt.c over the positions of order: every
 * edge of both trees carries its tree's half both ways at once (pipelined,
 * the up and down streams overlap). */
static rl_status_t sim_tree(rl_sim_t *s, acc_t *a, const int *order)
{
    int n = s->nranks;
    if (s->coll != RL_SIM_ALL_REDUCE)
        return RL_ERR_INVALID_ARG;
    for (int tr = 0; tr < 2; tr++)
        for (int pos = 0; pos < n; pos++) {
            int v = rl_btree_v(tr, pos, n), p = rl_btree_parent(v, n);
            if (!p)
                continue;
            int c = order ? order[pos] : pos, par = rl_btree_pos(tr, p, n);
            par = order ? order[par] : par;
            if (acc_flow(a, c, par) || acc_flow(a, par, c))
                return RL_ERR_INVALID_ARG;
        }
    int depth = 0;
    while ((1 << depth) < n + 1)
        depth++;
    s->tree_depth = 2 * depth;
    sim_phase_t *p = add_phase(s, 1, 0.5, 1.0);
    if (!p)
        return RL_ERR_INTERNAL;
    return acc_close(a, p) ? RL_ERR_INVALID_ARG : RL_OK;
}

/* Hierarchical: ring reduce-scatter inside each host, one ring per local
 * index across hosts (all-reduce of 1/m of the data), ring all-gather inside. */
static rl_status_t sim_hier(rl_sim_t *s, acc_t *a, rl_topo_t *t, const rl_topo_plan_t *pl)
{
    int n = s->nranks;
    int *idx = malloc(sizeof(int) * (size_t)t->nhosts), *cnt = calloc((size_t)t->nhosts, sizeof(int));
    int *hosts = malloc(sizeof(int) * (size_t)n), *local = malloc(sizeof(int) * (size_t)n);
    rl_status_t st = idx && cnt && hosts && local ? RL_OK : RL_ERR_NO_MEMORY;
    int nh = 0, m = 0;
    /* host order and local index from the plan's first ring */
    for (int i = 0; st == RL_OK && i < n; i++) {
        int r = pl->order[i], h = t->place[r].host;
        if (cnt[h] == 0) {
            idx[h] = nh;
            hosts[nh++] = h;
        }
        local[r] = cnt[h]++;
    }
    for (int i = 0; st == RL_OK && i < nh; i++) {
        if (i == 0)
            m = cnt[hosts[0]];
        else if (cnt[hosts[i]] != m)
            st = RL_ERR_INVALID_ARG; /* needs the same number of ranks on every host */
    }
    int *at = st == RL_OK ? malloc(sizeof(int) * (size_t)nh * (size_t)m) : NULL; /* at[i * m + j]: rank */
    if (st == RL_OK && !at)
        st = RL_ERR_NO_MEMORY;
    for (int r = 0; st == RL_OK && r < n; r++)
        at[(size_t)idx[t->place[r].host] * m + local[r]] = r;
    if (st == RL_OK && m > 1) { /* intra-host ring, all hosts at once */
        for (int i = 0; i < nh && st == RL_OK; i++)
            for (int j = 0; j < m; j++)
                if (acc_flow(a, at[(size_t)i * m + j], at[(size_t)i * m + (j + 1) % m]))
                    st = RL_ERR_NO_MEMORY;
        sim_phase_t *p = st == RL_OK ? add_phase(s, 2.0 * (m - 1), 1.0 / m, 0.5 / m) : NULL;
        if (p && acc_close(a, p))
            st = RL_ERR_INVALID_ARG;
    }
    if (st == RL_OK && nh > 1) { /* one ring per local index across hosts, all at once */
        for (int j = 0; j < m && st == RL_OK; j++)
            for (int i = 0; i < nh; i++)
                if (acc_flow(a, at[(size_t)i * m + j], at[(size_t)((i + 1) % nh) * m + j]))
                    st = RL_ERR_NO_MEMORY;
        sim_phase_t *p = st == RL_OK ? add_phase(s, 2.0 * (nh - 1), 1.0 / ((double)m * nh), 0.5 / ((double)m * nh)) : NULL;
        if (p && acc_close(a, p))
            st = RL_ERR_INVALID_ARG;
    }
    free(at);
    free(idx);
    free(cnt);
    free(hosts);
    free(local);
    return st;
}

/* One DCQCN trajectory per distinct busiest link of the phases (with
 * flows beyond the link's share; a link with one flow never queues). The
 * feedback delay is the path's round trip. */
static rl_status_t sim_dcqcn(rl_sim_t *s, char *err, size_t errlen)
{
    for (int i = 0; i < s->nph; i++) {
        sim_phase_t *p = &s->ph[i];
        p->cc = -1;
        if (!(p->flows > 1 + 1e-9))
            continue;
        double gbps = p->gbps * s->prm.eff, delay = 2 * p->lat_us;
        for (int j = 0; j < i && p->cc < 0; j++)
            if (s->ph[j].cc >= 0 && s->ph[j].flows == p->flows && s->ph[j].gbps == p->gbps && s->ph[j].lat_us == p->lat_us)
                p->cc = s->ph[j].cc;
        if (p->cc >= 0)
            continue;
        rl_status_t st = rl_dcqcn_create(&s->prm.dc, p->flows, gbps, delay, &s->cc[s->ncc]);
        if (st != RL_OK) {
            snprintf(err, errlen, "sim: DCQCN parameters out of range (or out of memory)");
            return st;
        }
        p->cc = s->ncc++;
    }
    return RL_OK;
}

rl_status_t rl_sim_create(rl_topo_t *t, rl_sim_algo_t algo, rl_sim_coll_t coll, const rl_sim_params_t *prm,
                          rl_sim_t **out, char *err, size_t errlen)
{
    rl_sim_t *s = calloc(1, sizeof(*s));
    acc_t a;
    if (!s || acc_init(&a, t)) {
        free(s);
        snprintf(err, errlen, "sim: out of memory");
        return RL_ERR_NO_MEMORY;
    }
    s->prm = *prm;
    if (!(s->prm.eff > 0 && s->prm.eff <= 1))
        s->prm.eff = 0.95;
    s->algo = algo;
    s->coll = coll;
    s->nranks = t->nranks;
    rl_status_t st = RL_OK;
    rl_topo_plan_t pl = {0};
    if (t->nranks < 2) {
        st = RL_OK;
    } else if (algo == RL_SIM_RING) {
        int *id = malloc(sizeof(int) * (size_t)t->nranks);
        st = id ? RL_OK : RL_ERR_NO_MEMORY;
        for (int i = 0; id && i < t->nranks; i++)
            id[i] = i;
        if (id)
            st = sim_rings(s, &a, id, 1);
        free(id);
    } else if (algo == RL_SIM_HIER && coll != RL_SIM_ALL_REDUCE) {
        snprintf(err, errlen, "sim: hier models all_reduce only");
        st = RL_ERR_INVALID_ARG;
    } else if (algo == RL_SIM_PLANNED || algo == RL_SIM_HIER) {
        st = rl_topo_plan(t, algo == RL_SIM_PLANNED ? prm->nrings : 1, &pl, err, errlen);
        if (st == RL_OK)
            st = algo == RL_SIM_PLANNED ? sim_rings(s, &a, pl.order, pl.nrings) : sim_hier(s, &a, t, &pl);
        if (st == RL_ERR_INVALID_ARG && algo == RL_SIM_HIER)
            snprintf(err, errlen, "sim: hier needs the same number of ranks on every host");
        rl_topo_plan_free(&pl);
    } else if (algo == RL_SIM_PTREE) {
        st = rl_topo_plan(t, 1, &pl, err, errlen);
        if (st == RL_OK)
            st = sim_tree(s, &a, pl.order);
        if (st == RL_ERR_INVALID_ARG)
            snprintf(err, errlen, "sim: ptree models all_reduce only");
        rl_topo_plan_free(&pl);
    } else if (algo == RL_SIM_TREE) {
        st = sim_tree(s, &a, NULL);
        if (st == RL_ERR_INVALID_ARG)
            snprintf(err, errlen, "sim: tree models all_reduce only");
    } else {
        st = sim_rhd(s, &a);
        if (st == RL_ERR_INVALID_ARG)
            snprintf(err, errlen, "sim: rhd all_gather/reduce_scatter need a power-of-two rank count");
    }
    acc_free(&a);
    if (st == RL_OK && s->prm.dcqcn)
        st = sim_dcqcn(s, err, errlen);
    if (st != RL_OK) {
        if (st == RL_ERR_INVALID_ARG && !err[0])
            snprintf(err, errlen, "sim: some ranks cannot reach each other");
        rl_sim_destroy(s);
        return st;
    }
    *out = s;
    return RL_OK;
}

static double phase_time_us(const rl_sim_t *s, const sim_phase_t *p, double bytes)
{
    double b = p->frac * bytes;
    double wire = s->prm.dcqcn && p->cc >= 0 ? rl_dcqcn_time_us(s->cc[p->cc], b)
                                             : b * 8 * p->util / (s->prm.eff * 1e3);
    double us = s->prm.alpha_us + p->lat_us + wire;
    if (s->prm.gamma_gbps > 0)
        us += p->reduce * bytes * 8 / (s->prm.gamma_gbps * 1e3);
    return us;
}

void rl_sim_time(const rl_sim_t *s, double bytes, rl_sim_result_t *r)
{
    memset(r, 0, sizeof(*r));
    r->worst = -1;
    double us = 0;
    for (int i = 0; i < s->nph; i++) {
        const sim_phase_t *p = &s->ph[i];
        if (s->algo == RL_SIM_TREE) { /* pipeline of chunks through 2 x depth stages */
            double best = INFINITY;
            for (int c = 1; c <= (s->prm.chunks > 0 ? s->prm.chunks : 4096); c *= 2) {
                if (s->prm.chunks > 0 && c != s->prm.chunks && c * 2 <= s->prm.chunks)
                    continue;
                sim_phase_t q = *p;
                q.frac = p->frac / c;
                q.reduce = p->reduce / c;
                double tt = (c + s->tree_depth - 1) * phase_time_us(s, &q, bytes);
                best = tt < best ? tt : best;
            }
            us += best;
        } else {
            us += p->count * phase_time_us(s, p, bytes);
        }
        if (p->util > r->phase_util) {
            r->phase_util = p->util;
            r->worst = p->worst;
        }
        double pk = s->prm.dcqcn && p->cc >= 0 ? rl_dcqcn_peak_queue_kb(s->cc[p->cc], p->frac * bytes) : 0;
        r->peak_queue_kb = pk > r->peak_queue_kb ? pk : r->peak_queue_kb;
    }
    int n = s->nranks;
    r->time_us = us;
    r->algbw = us > 0 ? bytes / (us * 1e3) : 0;
    double f = s->coll == RL_SIM_ALL_REDUCE ? 2.0 * (n - 1) / n : (double)(n - 1) / n;
    r->busbw = r->algbw * f;
}

void rl_sim_destroy(rl_sim_t *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->ncc; i++)
        rl_dcqcn_destroy(s->cc[i]);
    free(s);
}

/* Progressive filling: raise every unfrozen flow's rate together until a
 * resource fills, freeze the flows through it, repeat. */
void rl_sim_maxmin(int nres, const double *cap, int nflows, const int *off, const rl_sim_hop_t *hops, double *rate)
{
    double *left = malloc(sizeof(double) * (size_t)nres), *w = calloc((size_t)nres, sizeof(double));
    unsigned char *frozen = calloc((size_t)nflows + 1, 1);
    if (!left || !w || !frozen) {
        free(left);
        free(w);
        free(frozen);
        for (int f = 0; f < nflows; f++)
            rate[f] = 0;
        return;
    }
    memcpy(left, cap, sizeof(double) * (size_t)nres);
    int active = nflows;
    double level = 0;
    for (int f = 0; f < nflows; f++) {
        rate[f] = 0;
        for (int k = off[f]; k < off[f + 1]; k++)
            w[hops[k].res] += hops[k].frac;
    }
    while (active > 0) {
        double inc = INFINITY;
        for (int r = 0; r < nres; r++)
            if (w[r] > 1e-12 && left[r] / w[r] < inc)
                inc = left[r] / w[r];
        if (!isfinite(inc))
            break; /* flows that cross nothing: unbounded */
        level += inc;
        for (int r = 0; r < nres; r++)
            left[r] -= inc * w[r];
        for (int f = 0; f < nflows; f++) {
            if (frozen[f])
                continue;
            int full = 0;
            for (int k = off[f]; k < off[f + 1] && !full; k++)
                full = left[hops[k].res] <= 1e-9 * cap[hops[k].res];
            if (full) {
                frozen[f] = 1;
                rate[f] = level;
                active--;
                for (int k = off[f]; k < off[f + 1]; k++)
                    w[hops[k].res] -= hops[k].frac;
            }
        }
    }
    for (int f = 0; f < nflows; f++)
        if (!frozen[f])
            rate[f] = INFINITY;
    free(left);
    free(w);
    free(frozen);
}
