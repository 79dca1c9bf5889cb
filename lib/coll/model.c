/* Cost-model parameters: tuning files and built-in estimates. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll/model.h"
#include "core/comm.h"

/* Rough figures for when nothing was measured (ringlet-tune measures the
 * real ones): a few microseconds per message in shared memory, tens over
 * TCP, bandwidth of a few GB/s, reduction at about memory speed. */
static const rl_tune_entry_t builtin[] = {
    {"shm:", 0, {0.5, 1.0 / 4000, 1.0 / 8000}},
    {"ofi:shm", 0, {3.0, 1.0 / 4000, 1.0 / 8000}},
    {"ofi:tcp", 0, {30.0, 1.0 / 1500, 1.0 / 8000}},
    {"verbs", 0, {8.0, 1.0 / 3000, 1.0 / 8000}},
    {"", 0, {10.0, 1.0 / 2000, 1.0 / 8000}},
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
        int got = sscanf(p, "%31s %d %lf %lf %lf %1s", e.transport, &e.nranks, &e.m.alpha_us, &e.m.beta_us_per_b,
                         &e.m.gamma_us_per_b, extra);
        if (got != 5 || e.nranks < 1 || !(e.m.alpha_us >= 0) || !(e.m.beta_us_per_b >= 0) ||
            !(e.m.gamma_us_per_b >= 0) || e.m.alpha_us > 1e7 || e.m.beta_us_per_b > 1e3 || e.m.gamma_us_per_b > 1e3) {
            snprintf(err, len,
                     "RINGLET_TUNE_FILE=%s line %d: expected \"transport nranks alpha_us beta_us_per_byte "
                     "gamma_us_per_byte\" with non-negative numbers",
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
               "# a reduction bytes x gamma (microseconds)\n"
               "# transport nranks alpha_us beta_us_per_byte gamma_us_per_byte\n");
    for (int i = 0; i < t->n; i++)
        fprintf(f, "%s %d %.4f %.9f %.9f\n", t->e[i].transport, t->e[i].nranks, t->e[i].m.alpha_us,
                t->e[i].m.beta_us_per_b, t->e[i].m.gamma_us_per_b);
    return ferror(f) ? -1 : 0;
}

static size_t prefix_len(const char *entry, const char *transport)
{
    size_t n = strlen(entry);
    return strncmp(entry, transport, n) == 0 ? n + 1 : 0; /* +1: "" matches, less than any real prefix */
}

rl_model_t rl_tune_pick(const rl_tune_t *t, const char *transport, int nranks, char *src, size_t srclen)
{
    const rl_tune_entry_t *best = NULL;
    size_t best_p = 0;
    int best_d = 0;
    for (int i = 0; t && i < t->n; i++) {
        size_t p = prefix_len(t->e[i].transport, transport);
        int d = abs(t->e[i].nranks - nranks);
        if (p && (!best || p > best_p || (p == best_p && d < best_d)))
            best = &t->e[i], best_p = p, best_d = d;
    }
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

void rl_model_pick(struct rl_comm *c)
{
    c->sel.model = rl_tune_pick(&c->sel.tune, c->desc, c->nranks, c->sel.model_src, sizeof(c->sel.model_src));
}

uint64_t rl_model_hash(const struct rl_comm *c, uint64_t h)
{
    for (int i = 0; i < c->sel.tune.n; i++) {
        const rl_tune_entry_t *e = &c->sel.tune.e[i];
        char buf[128];
        int n = snprintf(buf, sizeof(buf), "%s %d %a %a %a;", e->transport, e->nranks, e->m.alpha_us,
                         e->m.beta_us_per_b, e->m.gamma_us_per_b);
        for (int k = 0; k < n && k < (int)sizeof(buf); k++)
            h = (h ^ (unsigned char)buf[k]) * 1099511628211ull;
    }
    return h;
}
