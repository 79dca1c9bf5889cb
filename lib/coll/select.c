/*
 * Which algorithm runs a call. Each collective has a list of size ranges,
 * built once at communicator creation from RINGLET_ALGOS over defaults that
 * the older variables (RINGLET_ALLREDUCE_ALGO, RINGLET_RD_MAX_BYTES,
 * RINGLET_RHD_MAX_BYTES) shape. For a call, the first entry whose range
 * covers its size and whose algorithm is usable wins; "auto" entries take
 * the cheapest usable algorithm under the cost model; the collective's base
 * algorithm (ring, chain, pairwise) is the last resort, so a call always
 * runs. Ranks must resolve the same table: its hash is compared at
 * creation.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll/model.h"
#include "core/comm.h"

/* The algorithm every call of a collective can fall back to. */
static const rl_algo_t *base_algo(rl_coll_t k)
{
    switch (k) {
    case RL_COLL_BROADCAST:
    case RL_COLL_REDUCE: return &rl_algo_chain;
    case RL_COLL_ALLTOALL: return &rl_algo_pairwise;
    case RL_COLL_ALLTOALLV: return &rl_algo_pairwise_v;
    case RL_COLL_GATHER:
    case RL_COLL_SCATTER: return &rl_algo_linear;
    case RL_COLL_SENDRECV: return &rl_algo_p2p;
    default: return &rl_algo_ring;
    }
}

static rl_coll_t coll_by_name(const char *s, size_t len)
{
    for (int k = 1; k < RL_COLL_COUNT; k++) {
        const char *n = rl_coll_name((uint32_t)k);
        if (strlen(n) == len && !strncmp(n, s, len) && k != RL_COLL_SENDRECV)
            return (rl_coll_t)k;
    }
    return (rl_coll_t)0;
}

static void add(rl_sel_list_t *l, uint64_t lo, uint64_t hi, const rl_algo_t *a)
{
    if (l->n < RL_SEL_MAX)
        l->r[l->n++] = (rl_sel_range_t){.lo = lo, .hi = hi, .algo = a ? rl_algo_index(a) : -1};
}

/* A default for communicators whose local peers go through ringlet's shm
 * and the others through the network. */
static void add_multi(rl_sel_list_t *l, uint64_t lo, uint64_t hi, const rl_algo_t *a)
{
    add(l, lo, hi, a);
    if (l->n)
        l->r[l->n - 1].multi = 1;
}

/* Today's choices, from the older variables. */
static rl_status_t defaults(struct rl_comm *c, char *err, size_t len)
{
    rl_select_t *t = &c->sel;
    const char *ar = c->cfg.allreduce_algo;
    rl_sel_list_t *l = &t->per[RL_COLL_ALL_REDUCE], *b = &t->per[RL_COLL_BARRIER];
    if (!strcmp(ar, "auto")) {
        /* several ranks per host, shm inside and a slower network between
         * (SoftRoCE VM, 2 emulated hosts x 2 ranks, 3 rounds in one boot):
         * hier took 0.71-0.84x the time of rd/rhd at 64 KiB-4 MiB and
         * 0.69-0.77x the ring's; with one transport for all it moves the
         * flat algorithms' bytes and did not reliably gain (tcp emulation) */
        add_multi(l, 64 << 10, UINT64_MAX, &rl_algo_hier);
        /* usable only when every rank is on one host; with two ranks the
         * eager and ring paths move medium and large messages faster
         * (measured on native shm: direct 0.68-1.22 us against 0.75-1.31
         * up to 2 KiB, then 1.3-1.5x slower from 8 KiB) */
        add(l, 0, c->nranks == 2 ? 4096 : UINT64_MAX, &rl_algo_direct);
        add(b, 0, UINT64_MAX, &rl_algo_direct);
        add(l, 0, c->cfg.rd_max_bytes, &rl_algo_rd);
        add(l, 0, c->cfg.rhd_max_bytes, &rl_algo_rhd);
        add(b, 0, UINT64_MAX, &rl_algo_rd);
    } else if (!strcmp(ar, "rd")) {
        add(l, 0, c->cfg.rd_max_bytes, &rl_algo_rd);
        add(b, 0, UINT64_MAX, &rl_algo_rd);
    } else if (!strcmp(ar, "rhd")) {
        add(l, 0, UINT64_MAX, &rl_algo_rhd);
    } else if (strcmp(ar, "ring")) {
        snprintf(err, len, "RINGLET_ALLREDUCE_ALGO=%s: use auto, ring, rhd or rd", ar);
        return RL_ERR_CONFIG;
    }
    /* measured at 8 ranks on libfabric shm and tcp (tools/algo-bench): the
     * binomial tree beat the chain at every size up to 256 KiB (1.1-1.55x),
     * Bruck's all-to-all beat pairwise exchange up to 4 KiB (1.01-1.6x) */
    add(&t->per[RL_COLL_BROADCAST], 0, 256 << 10, &rl_algo_tree);
    add(&t->per[RL_COLL_ALLTOALL], 0, 4 << 10, &rl_algo_bruck_a2a);
    return RL_OK;
}

static rl_status_t bad(char *err, size_t len, const char *what, const char *s, size_t n)
{
    snprintf(err, len, "%s in \"%.*s\"", what, (int)(n > 120 ? 120 : n), s);
    return RL_ERR_CONFIG;
}

static int parse_bytes(const char *s, size_t n, uint64_t *out)
{
    char buf[32];
    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    size_t v;
    if (rl_parse_size(buf, &v) != 0)
        return -1;
    *out = v;
    return 0;
}

/* "lo-hi:algo" or "lo-:algo" */
static rl_status_t parse_range(rl_coll_t k, const char *s, size_t n, rl_sel_list_t *l, char *err, size_t len)
{
    const char *colon = memchr(s, ':', n), *dash = memchr(s, '-', n);
    if (!colon || !dash || dash > colon)
        return bad(err, len, "expected lo-hi:algorithm", s, n);
    uint64_t lo, hi = UINT64_MAX;
    if (parse_bytes(s, (size_t)(dash - s), &lo) || (dash + 1 < colon && parse_bytes(dash + 1, (size_t)(colon - dash - 1), &hi)) ||
        hi < lo)
        return bad(err, len, "bad size range", s, n);
    char name[32];
    size_t nl = n - (size_t)(colon + 1 - s);
    if (nl == 0 || nl >= sizeof(name))
        return bad(err, len, "bad algorithm name", s, n);
    memcpy(name, colon + 1, nl);
    name[nl] = '\0';
    const rl_algo_t *a = NULL;
    if (strcmp(name, "auto")) {
        a = rl_algo_find(name, k);
        if (!a) {
            char what[320];
            int pos = snprintf(what, sizeof(what), "%s has no algorithm \"%s\" (have: auto", rl_coll_name(k), name);
            for (int i = 0; i < rl_algo_count() && pos < (int)sizeof(what) - 40; i++)
                if (rl_algo_at(i)->colls & RL_COLL_BIT(k))
                    pos += snprintf(what + pos, sizeof(what) - (size_t)pos, ", %s", rl_algo_at(i)->name);
            snprintf(what + pos, sizeof(what) - (size_t)pos, ")");
            return bad(err, len, what, s, n);
        }
    }
    if (l->n >= RL_SEL_MAX)
        return bad(err, len, "too many ranges", s, n);
    add(l, lo, hi, a);
    return RL_OK;
}

/* "coll:range,range;coll:range" replaces each named collective's list. */
static rl_status_t parse_table(struct rl_comm *c, const char *s, char *err, size_t len)
{
    if (!strcmp(s, "auto")) {
        for (int k = 1; k < RL_COLL_COUNT; k++) {
            c->sel.per[k].n = 0;
            add(&c->sel.per[k], 0, UINT64_MAX, NULL);
        }
        return RL_OK;
    }
    while (*s) {
        size_t n = strcspn(s, ";");
        const char *colon = memchr(s, ':', n);
        rl_coll_t k = colon ? coll_by_name(s, (size_t)(colon - s)) : (rl_coll_t)0;
        if (!k)
            return bad(err, len, "unknown collective (all_reduce, all_gather, reduce_scatter, broadcast, reduce, "
                                 "barrier, all_to_all)", s, n);
        rl_sel_list_t *l = &c->sel.per[k];
        l->n = 0;
        const char *p = colon + 1, *end = s + n;
        while (p < end) {
            size_t m = strcspn(p, ",;");
            if (p + m > end)
                m = (size_t)(end - p);
            rl_status_t st = parse_range(k, p, m, l, err, len);
            if (st != RL_OK)
                return st;
            p += m + (p + m < end);
        }
        s += n + (s[n] == ';');
    }
    return RL_OK;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

rl_status_t rl_select_build(struct rl_comm *c, char *err, size_t len)
{
    memset(&c->sel, 0, sizeof(c->sel));
    rl_status_t st = defaults(c, err, len);
    if (st == RL_OK && c->cfg.algos[0] && (st = parse_table(c, c->cfg.algos, err, len)) != RL_OK) {
        char what[384];
        snprintf(what, sizeof(what), "%s", err);
        snprintf(err, len, "RINGLET_ALGOS=%.100s: %s", c->cfg.algos, what);
    }
    if (st == RL_OK)
        st = rl_model_load(c, err, len);
    if (st != RL_OK)
        return st;
    uint64_t h = 1469598103934665603ull;
    for (int k = 1; k < RL_COLL_COUNT; k++)
        for (int i = 0; i < c->sel.per[k].n; i++) {
            const rl_sel_range_t *e = &c->sel.per[k].r[i];
            int64_t v[5] = {k, (int64_t)e->lo, (int64_t)e->hi, e->algo, e->multi};
            h = fnv(h, v, sizeof(v));
        }
    c->sel.hash = rl_model_hash(c, h);
    return RL_OK;
}

/* The cheapest usable algorithm for the call under the model. */
static const rl_algo_t *cheapest(const struct rl_comm *c, const rl_call_t *call)
{
    const rl_algo_t *best = NULL;
    double best_t = 0;
    for (int i = 0; i < rl_algo_count(); i++) {
        const rl_algo_t *a = rl_algo_at(i);
        if (!(a->colls & RL_COLL_BIT(call->coll)) || !a->cost || !a->usable(c, call))
            continue;
        double t = a->cost(c, call, rl_model_for(c, a, call->bytes));
        if (!best || t < best_t)
            best = a, best_t = t;
    }
    return best;
}

const rl_algo_t *rl_select(const struct rl_comm *c, const rl_call_t *call)
{
    const rl_sel_list_t *l = &c->sel.per[call->coll];
    for (int i = 0; i < l->n; i++) {
        const rl_sel_range_t *e = &l->r[i];
        if (call->bytes < e->lo || call->bytes > e->hi || (e->multi && c->ntp < 2))
            continue;
        const rl_algo_t *a = e->algo < 0 ? cheapest(c, call) : rl_algo_at(e->algo);
        if (a && a->usable(c, call))
            return a;
    }
    return base_algo(call->coll);
}

static void print_list(FILE *out, const rl_sel_list_t *l, rl_coll_t k)
{
    fprintf(out, "%s:", rl_coll_name(k));
    for (int i = 0; i < l->n; i++) {
        char lo[24], hi[24] = "";
        snprintf(lo, sizeof(lo), "%llu", (unsigned long long)l->r[i].lo);
        if (l->r[i].hi != UINT64_MAX)
            snprintf(hi, sizeof(hi), "%llu", (unsigned long long)l->r[i].hi);
        fprintf(out, "%s%s-%s:%s%s", i ? "," : "", lo, hi, l->r[i].algo < 0 ? "auto" : rl_algo_at(l->r[i].algo)->name,
                l->r[i].multi ? "(with shm inside hosts)" : "");
    }
    fprintf(out, "%sthen %s\n", l->n ? ", " : " ", base_algo(k)->name);
}

rl_status_t rl_select_explain(FILE *out, int nranks, const char *transport, const uint64_t *sizes, int nsizes,
                              char *err, size_t len)
{
    struct rl_comm *c = calloc(1, sizeof(*c));
    if (!c)
        return RL_ERR_NO_MEMORY;
    rl_status_t st = rl_config_load(&c->cfg, err, len);
    c->nranks = nranks;
    c->chunk_bytes = c->cfg.chunk_bytes;
    c->depth = c->cfg.pipeline_depth;
    if (st == RL_OK)
        st = rl_select_build(c, err, len);
    if (st != RL_OK) {
        free(c);
        return st;
    }
    snprintf(c->desc, sizeof(c->desc), "%s", transport);
    c->nhosts = !strncmp(transport, "shm", 3) ? 1 : 0; /* native shm: every rank on one host; else unknown */
    rl_model_pick(c);
    const rl_model_t *m = &c->sel.model;
    fprintf(out, "== algorithm selection for %d ranks over %s (table hash %016llx)\n", nranks, transport,
            (unsigned long long)c->sel.hash);
    fprintf(out,
            "cost model (%s): alpha %.2f us/eager message, %.2f us/rendezvous message, beta %.3f ns/byte "
            "(%.2f GB/s), gamma %.3f ns/byte\n",
            c->sel.model_src, m->alpha_us, m->alpha_rdv_us, m->beta_us_per_b * 1e3,
            m->beta_us_per_b > 0 ? 1e-3 / m->beta_us_per_b : 0, m->gamma_us_per_b * 1e3);
    static const uint64_t dflt[] = {8, 4096, 65536, 1 << 20, 16 << 20, 64 << 20};
    if (!sizes || nsizes <= 0)
        sizes = dflt, nsizes = (int)(sizeof(dflt) / sizeof(dflt[0]));
    static const rl_coll_t colls[] = {RL_COLL_ALL_REDUCE, RL_COLL_ALL_GATHER, RL_COLL_REDUCE_SCATTER,
                                      RL_COLL_BROADCAST,  RL_COLL_REDUCE,     RL_COLL_BARRIER,
                                      RL_COLL_ALLTOALL,   RL_COLL_ALLTOALLV,  RL_COLL_GATHER,
                                      RL_COLL_SCATTER};
    for (size_t ci = 0; ci < sizeof(colls) / sizeof(colls[0]); ci++) {
        rl_coll_t k = colls[ci];
        print_list(out, &c->sel.per[k], k);
        fprintf(out, "  %-10s", "us");
        for (int si = 0; si < nsizes; si++)
            fprintf(out, " %10llu", (unsigned long long)sizes[si]);
        fprintf(out, "   (bytes per rank; * = chosen, - = not usable)\n");
        for (int i = 0; i < rl_algo_count(); i++) {
            const rl_algo_t *a = rl_algo_at(i);
            if (!(a->colls & RL_COLL_BIT(k)) || !a->cost)
                continue;
            fprintf(out, "  %-10s", a->name);
            for (int si = 0; si < nsizes; si++) {
                rl_call_t call = {.coll = k, .count = sizes[si] / 4, .dtype = RL_FLOAT32, .bytes = sizes[si]};
                if (k == RL_COLL_BARRIER)
                    call.bytes = 4, call.count = 1;
                if (!a->usable(c, &call)) {
                    fprintf(out, " %10s", "-");
                    continue;
                }
                fprintf(out, " %9.1f%s", a->cost(c, &call, rl_model_for(c, a, call.bytes)), rl_select(c, &call) == a ? "*" : " ");
            }
            fprintf(out, "\n");
        }
    }
    free(c);
    return RL_OK;
}
