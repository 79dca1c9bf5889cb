/* Cost-model parameters: tuning files and built-in estimates. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll/model.h"
#include "core/comm.h"

/* Rough figures for when nothing was measured (ringlet-tune measures the
 * real ones): about a microsecond per message in shared memory, ten over
 * TCP, a rendezvous message 1.5-2x an eager one, bandwidth of a few GB/s,
 * reduction at about memory speed. */
static const rl_tune_entry_t builtin[] = {
    {"shm:", 0, {0.5, 1.0 / 4000, 1.0 / 8000, 1.0}},
    {"ofi:shm", 0, {1.5, 1.0 / 4000, 1.0 / 8000, 3.0}},
    {"ofi:tcp", 0, {10.0, 1.0 / 1500, 1.0 / 8000, 15.0}},
    {"verbs", 0, {8.0, 1.0 / 3000, 1.0 / 8000, 12.0}},
    {"", 0, {10.0, 1.0 / 2000, 1.0 / 8000, 15.0}},
};

rl_status_t rl_tune_read(const char *path, rl_tune_t *t, char *err, size_t len)
{
    memset(t, 0, sizeof(*t));
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, len, "RINGLET_TUNE_FILE=%s: cannot open it", path);
        return RL_ERR_CONFIG;
    }
    char line[256];
    int lineno = 0;
    rl_status_t st = RL_OK;
    while (st == RL_OK && fgets(line, sizeof(line), f)) {
        lineno++;
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '#' || *p == '\0')
            continue;
        rl_tune_entry_t e = {0};
        char extra[2];
        unsigned long long from = 0;
        e.m.alpha_rdv_us = -1;
        int got = sscanf(p, "%31s %d %lf %lf %lf %lf %15s %llu %1s", e.transport, &e.nranks, &e.m.alpha_us,
                         &e.m.beta_us_per_b, &e.m.gamma_us_per_b, &e.m.alpha_rdv_us, e.algo, &from, extra);
        if (got == 5) /* a file from before the two latencies: one for both */
            e.m.alpha_rdv_us = e.m.alpha_us;
        e.from_bytes = from;
        int bad_algo = got >= 7 && !rl_algo_find(e.algo, RL_COLL_ALL_REDUCE);
        if (bad_algo) {
            snprintf(err, len, "RINGLET_TUNE_FILE=%s line %d: \"%s\" is no all-reduce algorithm (ringlet-info --algos)",
                     path, lineno, e.algo);
            st = RL_ERR_CONFIG;
        } else if ((got < 5 || got > 8) || e.nranks < 1 || from > ((uint64_t)1 << 47) || !(e.m.alpha_us >= 0) || !(e.m.beta_us_per_b >= 0) ||
            !(e.m.gamma_us_per_b >= 0) || !(e.m.alpha_rdv_us >= 0) || e.m.alpha_us > 1e7 ||
            e.m.alpha_rdv_us > 1e7 || e.m.beta_us_per_b > 1e3 || e.m.gamma_us_per_b > 1e3) {
            snprintf(err, len,
                     "RINGLET_TUNE_FILE=%s line %d: expected \"transport nranks alpha_us beta_us_per_byte "
                     "gamma_us_per_byte [alpha_rendezvous_us [algorithm [from_bytes]]]\" with non-negative numbers",
                     path, lineno);
            st = RL_ERR_CONFIG;
        } else if (t->n == RL_TUNE_MAX) {
            snprintf(err, len, "RINGLET_TUNE_FILE=%s: more than %d entries", path, RL_TUNE_MAX);
            st = RL_ERR_CONFIG;
        } else {
            t->e[t->n++] = e;
        }
    }
    fclose(f);
    return st;
}

int rl_tune_write(FILE *f, const rl_tune_t *t)
{
    fprintf(f, "# ringlet tuning file (ringlet-tune): a message costs alpha + bytes x beta,\n"
               "# a reduction bytes x gamma (microseconds); alpha for an eager message,\n"
               "# alpha_rendezvous for one that waits for the receiver's clear-to-send\n"
               "# transport nranks alpha_us beta_us_per_byte gamma_us_per_byte alpha_rendezvous_us [algorithm [from_bytes]]\n"
               "# (an algorithm's line is its own calibration, for it alone; with from_bytes,\n"
               "# for its calls of at least that many bytes, up to its next such line)\n");
    for (int i = 0; i < t->n; i++) {
        fprintf(f, "%s %d %.4f %.9f %.9f %.4f%s%s", t->e[i].transport, t->e[i].nranks, t->e[i].m.alpha_us,
                t->e[i].m.beta_us_per_b, t->e[i].m.gamma_us_per_b, t->e[i].m.alpha_rdv_us, t->e[i].algo[0] ? " " : "",
                t->e[i].algo);
        if (t->e[i].algo[0] && t->e[i].from_bytes)
            fprintf(f, " %llu", (unsigned long long)t->e[i].from_bytes);
        fputc('\n', f);
    }
    return ferror(f) ? -1 : 0;
}

static size_t prefix_len(const char *entry, const char *transport)
{
    size_t n = strlen(entry);
    return strncmp(entry, transport, n) == 0 ? n + 1 : 0; /* +1: "" matches, less than any real prefix */
}

/* The entry for (transport, algorithm): the longest transport prefix, then
 * the nearest group size. */
static const rl_tune_entry_t *best_entry(const rl_tune_t *t, const char *transport, int nranks, const char *algo)
{
    const rl_tune_entry_t *best = NULL;
    size_t best_p = 0;
    int best_d = 0;
    for (int i = 0; t && i < t->n; i++) {
        if (strcmp(t->e[i].algo, algo) || t->e[i].from_bytes)
            continue;
        size_t p = prefix_len(t->e[i].transport, transport);
        int d = abs(t->e[i].nranks - nranks);
        if (p && (!best || p > best_p || (p == best_p && d < best_d)))
            best = &t->e[i], best_p = p, best_d = d;
    }
    return best;
}

rl_model_t rl_tune_pick(const rl_tune_t *t, const char *transport, int nranks, char *src, size_t srclen)
{
    const rl_tune_entry_t *best = best_entry(t, transport, nranks, "");
    if (best) {
        if (src)
            snprintf(src, srclen, "tuning file: %s at %d ranks", best->transport, best->nranks);
        return best->m;
    }
    for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++) {
        if (prefix_len(builtin[i].transport, transport)) {
            if (src)
                snprintf(src, srclen, "built-in estimate for %s", builtin[i].transport[0] ? builtin[i].transport : "any transport");
            return builtin[i].m;
        }
    }
    return builtin[0].m; /* not reached: "" matches everything */
}

rl_status_t rl_model_load(struct rl_comm *c, char *err, size_t len)
{
    if (!c->cfg.tune_file[0])
        return RL_OK;
    return rl_tune_read(c->cfg.tune_file, &c->sel.tune, err, len);
}

/* Algorithm a's bands: the entry best_entry picked (from 0 bytes) and the
 * lines of the same transport, group size and algorithm from larger sizes,
 * ascending. */
static int pick_bands(struct rl_comm *c, int i, const rl_tune_entry_t *base)
{
    rl_select_t *s = &c->sel;
    int n = 0;
    s->per_algo[i][n] = base->m;
    s->per_algo_from[i][n++] = 0;
    for (;;) {
        const rl_tune_entry_t *next = NULL;
        for (int k = 0; k < s->tune.n; k++) {
            const rl_tune_entry_t *e = &s->tune.e[k];
            if (e->from_bytes > s->per_algo_from[i][n - 1] && e->nranks == base->nranks &&
                !strcmp(e->algo, base->algo) && !strcmp(e->transport, base->transport) &&
                (!next || e->from_bytes < next->from_bytes))
                next = e;
        }
        if (!next || n == RL_MODEL_BANDS)
            return n;
        s->per_algo[i][n] = next->m;
        s->per_algo_from[i][n++] = next->from_bytes;
    }
}

void rl_model_pick(struct rl_comm *c)
{
    c->sel.model = rl_tune_pick(&c->sel.tune, c->desc, c->nranks, c->sel.model_src, sizeof(c->sel.model_src));
    int own = 0, bands = 0;
    for (int i = 0; i < rl_algo_count() && i < RL_ALGO_MAX; i++) {
        const rl_algo_t *a = rl_algo_at(i);
        const rl_tune_entry_t *e = rl_algo_find(a->name, RL_COLL_ALL_REDUCE) == a
                                       ? best_entry(&c->sel.tune, c->desc, c->nranks, a->name)
                                       : NULL;
        c->sel.per_algo_n[i] = e ? (unsigned char)pick_bands(c, i, e) : 0;
        own += e != NULL;
        bands += c->sel.per_algo_n[i];
    }
    if (own) {
        size_t n = strlen(c->sel.model_src);
        snprintf(c->sel.model_src + n, sizeof(c->sel.model_src) - n, ", %d algorithm%s calibrated alone", own,
                 own == 1 ? "" : "s");
        if (bands > own) {
            n = strlen(c->sel.model_src);
            snprintf(c->sel.model_src + n, sizeof(c->sel.model_src) - n, " (%d size bands)", bands);
        }
    }
}

const rl_model_t *rl_model_for(const struct rl_comm *c, const rl_algo_t *a, size_t bytes)
{
    int i = rl_algo_index(a);
    if (i < 0 || i >= RL_ALGO_MAX || !c->sel.per_algo_n[i])
        return &c->sel.model;
    int b = 0;
    while (b + 1 < c->sel.per_algo_n[i] && c->sel.per_algo_from[i][b + 1] <= bytes)
        b++;
    return &c->sel.per_algo[i][b];
}

uint64_t rl_model_hash(const struct rl_comm *c, uint64_t h)
{
    for (int i = 0; i < c->sel.tune.n; i++) {
        const rl_tune_entry_t *e = &c->sel.tune.e[i];
        char buf[160];
        int n = snprintf(buf, sizeof(buf), "%s %d %a %a %a %a %s %llu;", e->transport, e->nranks, e->m.alpha_us,
                         e->m.beta_us_per_b, e->m.gamma_us_per_b, e->m.alpha_rdv_us, e->algo,
                         (unsigned long long)e->from_bytes);
        for (int k = 0; k < n && k < (int)sizeof(buf); k++)
            h = (h ^ (unsigned char)buf[k]) * 1099511628211ull;
    }
    return h;
}

/* The model's parameters as a vector, in this order. */
enum { P_ALPHA, P_ALPHA_RDV, P_BETA, P_GAMMA, NPAR };

/* The algorithm's cost at a unit model: its coefficient of each parameter. */
static void coeffs(const struct rl_comm *c, const rl_algo_t *a, size_t bytes, double k[NPAR])
{
    rl_call_t call = {.coll = RL_COLL_ALL_REDUCE, .count = bytes / 4, .dtype = RL_FLOAT32, .bytes = bytes};
    const rl_model_t unit[NPAR] = {
        [P_ALPHA] = {.alpha_us = 1}, [P_ALPHA_RDV] = {.alpha_rdv_us = 1},
        [P_BETA] = {.beta_us_per_b = 1}, [P_GAMMA] = {.gamma_us_per_b = 1}};
    for (int i = 0; i < NPAR; i++)
        k[i] = a->cost(c, &call, &unit[i]);
}

/* Solve the normal equations a x = b of the free parameters (Gaussian
 * elimination with partial pivoting); 0 if singular. */
static int solve(int n, double a[NPAR][NPAR], double b[NPAR], double x[NPAR])
{
    for (int col = 0; col < n; col++) {
        int piv = col;
        for (int r = col + 1; r < n; r++)
            if (fabs(a[r][col]) > fabs(a[piv][col]))
                piv = r;
        if (fabs(a[piv][col]) < 1e-300)
            return 0;
        for (int k = 0; k < n; k++) {
            double t = a[col][k];
            a[col][k] = a[piv][k], a[piv][k] = t;
        }
        double t = b[col];
        b[col] = b[piv], b[piv] = t;
        for (int r = col + 1; r < n; r++) {
            double f = a[r][col] / a[col][col];
            for (int k = col; k < n; k++)
                a[r][k] -= f * a[col][k];
            b[r] -= f * b[col];
        }
    }
    for (int r = n - 1; r >= 0; r--) {
        double s = b[r];
        for (int k = r + 1; k < n; k++)
            s -= a[r][k] * x[k];
        x[r] = s / a[r][r];
    }
    return 1;
}

/* Both latencies and beta by least squares weighted so that relative
 * errors count alike, gamma given; a parameter the fit drives negative is
 * pinned at 0 and the others refitted. A latency no measured algorithm
 * uses takes the other's value. */
void rl_model_fit(const struct rl_comm *c, const rl_fit_point_t *p, int n, rl_model_t *m, int beta_only)
{
    int fixed[3] = {0, 0, 0}, used[3] = {0, 0, 0};
    double x[3] = {m->alpha_us, m->alpha_rdv_us, 0};
    for (int i = 0; i < n; i++) {
        double k[NPAR];
        coeffs(c, p[i].algo, p[i].bytes, k);
        for (int j = 0; j < 3; j++)
            used[j] |= k[j] > 0;
    }
    for (int j = 0; j < 3; j++)
        fixed[j] = !used[j] || (beta_only && j != P_BETA);
    if (!beta_only)
        x[P_ALPHA] = x[P_ALPHA_RDV] = 0;
    for (int round = 0; round < 3; round++) {
        int idx[3], nf = 0;
        for (int j = 0; j < 3; j++)
            if (!fixed[j])
                idx[nf++] = j;
        double a[NPAR][NPAR] = {{0}}, b[NPAR] = {0}, y[NPAR] = {0};
        for (int i = 0; i < n; i++) {
            double k[NPAR];
            coeffs(c, p[i].algo, p[i].bytes, k);
            double known = k[P_GAMMA] * m->gamma_us_per_b; /* and the parameters held fixed */
            for (int j = 0; j < 3; j++)
                known += fixed[j] ? k[j] * x[j] : 0;
            double w = 1 / p[i].us, r = (p[i].us - known) * w;
            for (int u = 0; u < nf; u++) {
                for (int v = 0; v < nf; v++)
                    a[u][v] += k[idx[u]] * w * k[idx[v]] * w;
                b[u] += k[idx[u]] * w * r;
            }
        }
        if (nf == 0 || !solve(nf, a, b, y))
            break;
        int worst = -1;
        for (int u = 0; u < nf; u++) {
            x[idx[u]] = y[u];
            if (y[u] < 0 && (worst < 0 || y[u] < x[worst]))
                worst = idx[u];
        }
        if (worst < 0)
            break;
        fixed[worst] = 1, x[worst] = 0;
    }
    for (int j = 0; j < 3; j++)
        x[j] = x[j] < 0 ? 0 : x[j];
    if (!beta_only) {
        m->alpha_us = used[P_ALPHA] ? x[P_ALPHA] : x[P_ALPHA_RDV];
        m->alpha_rdv_us = used[P_ALPHA_RDV] ? x[P_ALPHA_RDV] : x[P_ALPHA];
    }
    m->beta_us_per_b = x[P_BETA];
}

