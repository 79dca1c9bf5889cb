/* Readers for what sites already have: Slurm's topology.conf (a switch
 * tree) and NCCL's topology XML (the NICs of one host). */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "topo/topo.h"

#define SLURM_MAX_LINE 8192
#define SLURM_MAX_EXPAND (1 << 20)

static rl_status_t serr(char *err, size_t len, const char *file, int line, const char *fmt, ...)
{
    int n = snprintf(err, len, "%s:%d: ", file, line);
    if (n >= 0 && (size_t)n < len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, len - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return RL_ERR_INVALID_ARG;
}

typedef struct {
    char name[RL_TOPO_NAME];
    char *nodes, *switches; /* hostlists, unexpanded */
    double gbps;
    int line, tier, id;
} sl_switch_t;

/* Expands one hostlist "n[0-3,7],gpu5" calling fn per name; -1 on a syntax error. */
typedef int (*name_fn)(const char *name, void *arg);

static int expand(const char *list, name_fn fn, void *arg, long *count)
{
    const char *p = list;
    while (*p) {
        const char *e = p;
        int depth = 0;
        while (*e && (depth || *e != ',')) {
            depth += *e == '[' ? 1 : *e == ']' ? -1 : 0;
            if (depth < 0 || depth > 1)
                return -1;
            e++;
        }
        if (depth)
            return -1;
        char item[RL_TOPO_NAME * 2];
        size_t n = (size_t)(e - p);
        if (n == 0 || n >= sizeof(item))
            return -1;
        memcpy(item, p, n);
        item[n] = '\0';
        char *lb = strchr(item, '[');
        if (!lb) {
            if (++*count > SLURM_MAX_EXPAND || fn(item, arg))
                return -1;
        } else {
            char *rb = strchr(lb, ']');
            if (!rb || strchr(rb + 1, '['))
                return -1;
            *lb = *rb = '\0';
            const char *suffix = rb + 1;
            for (char *r = lb + 1; *r;) {
                char *end;
                if (!isdigit((unsigned char)*r))
                    return -1;
                int width = (int)strspn(r, "0123456789");
                long lo = strtol(r, &end, 10), hi = lo;
                if (*end == '-') {
                    if (!isdigit((unsigned char)end[1]))
                        return -1;
                    hi = strtol(end + 1, &end, 10);
                }
                if (hi < lo || hi - lo > SLURM_MAX_EXPAND || lo > 1000000000L || (*end && *end != ','))
                    return -1;
                for (long v = lo; v <= hi; v++) {
                    char nm[RL_TOPO_NAME * 3];
                    snprintf(nm, sizeof(nm), "%s%0*ld%s", item, width, v, suffix);
                    if (strlen(nm) >= RL_TOPO_NAME || ++*count > SLURM_MAX_EXPAND || fn(nm, arg))
                        return -1;
                }
                r = *end ? end + 1 : end;
            }
        }
        p = *e ? e + 1 : e;
        if (*e && !*p)
            return -1; /* trailing comma */
    }
    return 0;
}

typedef struct {
    sl_switch_t *sw;
    int nsw;
    rl_topo_t *t;
    int cur; /* switch being linked */
    double gbps;
    char **hostnames;
    int nhn, caphn;
    int bad; /* name not found */
    char badname[RL_TOPO_NAME];
} sl_ctx_t;

static int find_switch(sl_ctx_t *c, const char *name)
{
    for (int i = 0; i < c->nsw; i++)
        if (!strcmp(c->sw[i].name, name))
            return i;
    return -1;
}

static int link_child_switch(const char *name, void *arg)
{
    sl_ctx_t *c = arg;
    int s = find_switch(c, name);
    if (s < 0 || s == c->cur) {
        c->bad = 1;
        snprintf(c->badname, sizeof(c->badname), "%s", name);
        return -1;
    }
    return rl_topo_add_link(c->t, c->cur, s, c->gbps, 500) < 0 ? -1 : 0;
}

static int collect_host(const char *name, void *arg)
{
    sl_ctx_t *c = arg;
    if (strlen(name) >= RL_TOPO_NAME)
        return -1;
    for (const char *p = name; *p; p++)
        if (*p == '/' || (unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return -1; /* host names become "host/nic" keys: printable ASCII, no '/' */
    if (c->nhn == c->caphn) {
        int cap = c->caphn ? 2 * c->caphn : 64;
        char **h = realloc(c->hostnames, sizeof(*h) * (size_t)cap);
        if (!h)
            return -1;
        c->hostnames = h;
        c->caphn = cap;
    }
    char *s = strdup(name);
    if (!s)
        return -1;
    c->hostnames[c->nhn++] = s;
    return 0;
}

/* Tier = 1 for switches with nodes, else 1 + the highest child's. */
static int tier_of(sl_ctx_t *c, int s, int depth)
{
    if (depth > 64)
        return -1;
    if (c->sw[s].tier)
        return c->sw[s].tier;
    int t = 1;
    if (c->sw[s].switches) {
        char *copy = strdup(c->sw[s].switches), *save = NULL;
        if (!copy)
            return -1;
        /* children named directly (no brackets) are enough to order tiers */
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            int ch = strchr(tok, '[') ? -1 : find_switch(c, tok);
            int ct = ch >= 0 ? tier_of(c, ch, depth + 1) : 1;
            if (ct < 0) {
                free(copy);
                return -1;
            }
            t = ct + 1 > t ? ct + 1 : t;
        }
        free(copy);
    }
    c->sw[s].tier = t > 16 ? 16 : t;
    return c->sw[s].tier;
}

/* One line's Key=Value tokens into s (which owns what it strdup'ed, also on error). */
static rl_status_t slurm_tokens(char *buf, const char *file, int line, sl_switch_t *s, int *any, char *err, size_t errlen)
{
    char *save = NULL;
        for (char *tok = strtok_r(buf, " \t\r", &save); tok; tok = strtok_r(NULL, " \t\r", &save)) {
            char *eq = strchr(tok, '=');
            if (!eq)
                return serr(err, errlen, file, line, "\"%.40s\" is not Key=Value", tok);
            *eq = '\0';
            const char *val = eq + 1;
            *any = 1;
            if (!strcasecmp(tok, "SwitchName")) {
                int ok = *val && strlen(val) < RL_TOPO_NAME && !strchr(val, '/') && !strchr(val, '[');
                for (const char *p = val; ok && *p; p++)
                    ok = (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f;
                if (!ok)
                    return serr(err, errlen, file, line, "SwitchName: 1-63 printable characters, no '/' or '['");
                snprintf(s->name, sizeof(s->name), "%s", val);
            } else if (!strcasecmp(tok, "Nodes") || !strcasecmp(tok, "Switches")) {
                char **dst = !strcasecmp(tok, "Nodes") ? &s->nodes : &s->switches;
                if (!*val || *dst)
                    return serr(err, errlen, file, line, "%s: empty or given twice", tok);
                *dst = strdup(val);
                if (!*dst)
                    return RL_ERR_NO_MEMORY;
            } else if (!strcasecmp(tok, "LinkSpeed")) {
                char *end;
                s->gbps = strtod(val, &end);
                if (*end || !(s->gbps > 0 && s->gbps < 1e9))
                    return serr(err, errlen, file, line, "LinkSpeed: a positive number (taken as Gb/s)");
            } else {
                return serr(err, errlen, file, line, "unknown key %.40s (SwitchName, Switches, Nodes, LinkSpeed)", tok);
            }
        }
    return RL_OK;
}

static rl_status_t slurm_lines(const char *text, size_t len, const char *file, sl_ctx_t *c, char *err, size_t errlen)
{
    int line = 0;
    size_t pos = 0;
    int cap = 0;
    while (pos < len) {
        line++;
        size_t e = pos;
        while (e < len && text[e] != '\n')
            e++;
        if (e - pos >= SLURM_MAX_LINE)
            return serr(err, errlen, file, line, "line longer than %d characters", SLURM_MAX_LINE);
        char buf[SLURM_MAX_LINE];
        if (memchr(text + pos, '\0', e - pos))
            return serr(err, errlen, file, line, "NUL byte");
        memcpy(buf, text + pos, e - pos);
        buf[e - pos] = '\0';
        pos = e + 1;
        char *hash = strchr(buf, '#');
        if (hash)
            *hash = '\0';
        sl_switch_t s = {.line = line};
        int any = 0;
        rl_status_t st = slurm_tokens(buf, file, line, &s, &any, err, errlen);
        if (st != RL_OK) {
            free(s.nodes);
            free(s.switches);
            return st;
        }
        if (!any)
            continue;
        if (!s.name[0]) {
            free(s.nodes);
            free(s.switches);
            return serr(err, errlen, file, line, "missing SwitchName");
        }
        if (find_switch(c, s.name) >= 0) {
            free(s.nodes);
            free(s.switches);
            return serr(err, errlen, file, line, "switch %s defined twice", s.name);
        }
        if (c->nsw == cap) {
            cap = cap ? 2 * cap : 16;
            sl_switch_t *n = realloc(c->sw, sizeof(*n) * (size_t)cap);
            if (!n) {
                free(s.nodes);
                free(s.switches);
                return RL_ERR_NO_MEMORY;
            }
            c->sw = n;
        }
        c->sw[c->nsw++] = s;
    }
    if (!c->nsw)
        return serr(err, errlen, file, line, "no SwitchName lines");
    return RL_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The first name that appears twice, or NULL (sorts a copy: large files stay fast). */
static const char *duplicate_name(char **names, int n)
{
    char **s = malloc(sizeof(*s) * (size_t)(n ? n : 1));
    if (!s)
        return NULL;
    memcpy(s, names, sizeof(*s) * (size_t)n);
    qsort(s, (size_t)n, sizeof(*s), cmp_str);
    const char *d = NULL;
    for (int i = 1; i < n && !d; i++)
        if (!strcmp(s[i - 1], s[i]))
            d = s[i];
    free(s);
    return d;
}

rl_status_t rl_topo_parse_slurm(const char *text, size_t len, const char *file, double gbps, rl_topo_t *t, char *err,
                                size_t errlen)
{
    rl_topo_init(t, file);
    snprintf(t->name, sizeof(t->name), "slurm %s", file);
    sl_ctx_t c = {.t = t, .gbps = gbps > 0 ? gbps : 100};
    rl_status_t st = slurm_lines(text, len, file, &c, err, errlen);
    for (int s = 0; st == RL_OK && s < c.nsw; s++)
        if (tier_of(&c, s, 0) < 0)
            st = serr(err, errlen, file, c.sw[s].line, "switch %s: loop in Switches=", c.sw[s].name);
    for (int s = 0; st == RL_OK && s < c.nsw; s++)
        if (rl_topo_add_switch(t, c.sw[s].name, c.sw[s].tier) < 0)
            st = RL_ERR_NO_MEMORY;
    /* hosts: every node in order of first appearance */
    int *first_sw = NULL;
    for (int s = 0; st == RL_OK && s < c.nsw; s++) {
        if (!c.sw[s].nodes)
            continue;
        long count = 0;
        int before = c.nhn;
        if (expand(c.sw[s].nodes, collect_host, &c, &count))
            st = serr(err, errlen, file, c.sw[s].line, "Nodes=%.60s: bad hostlist (or a name over 63 characters, with '/' or not printable)", c.sw[s].nodes);
        int *f = realloc(first_sw, sizeof(int) * (size_t)(c.nhn + 1));
        if (!f)
            st = RL_ERR_NO_MEMORY;
        else
            first_sw = f;
        for (int i = before; st == RL_OK && i < c.nhn; i++)
            first_sw[i] = s;
    }
    if (st == RL_OK && c.nhn == 0)
        st = serr(err, errlen, file, 1, "no Nodes= anywhere: no hosts");
    if (st == RL_OK && c.nhn > 65536)
        st = serr(err, errlen, file, 1, "more than 65536 nodes");
    const char *dup = st == RL_OK ? duplicate_name(c.hostnames, c.nhn) : NULL;
    if (dup)
        st = serr(err, errlen, file, 1, "node %s is listed twice (under two switches?)", dup);
    for (int i = 0; st == RL_OK && i < c.nhn; i++)
        if (find_switch(&c, c.hostnames[i]) >= 0)
            st = serr(err, errlen, file, c.sw[first_sw[i]].line, "node %s has a switch's name", c.hostnames[i]);
    for (int i = 0; st == RL_OK && i < c.nhn; i++) {
        int h = rl_topo_add_host(t, c.hostnames[i], 1000);
        if (h < 0 || rl_topo_add_nic(t, h, "nic0", 0, 0, c.sw[first_sw[i]].gbps > 0 ? c.sw[first_sw[i]].gbps : c.gbps) < 0)
            st = RL_ERR_NO_MEMORY;
    }
    for (int i = 0; st == RL_OK && i < c.nhn; i++) {
        const sl_switch_t *S = &c.sw[first_sw[i]];
        if (rl_topo_add_link(t, rl_topo_nic_node(t, t->hosts[i].first_nic), first_sw[i], S->gbps > 0 ? S->gbps : c.gbps,
                             500) < 0)
            st = RL_ERR_NO_MEMORY;
    }
    for (int s = 0; st == RL_OK && s < c.nsw; s++) {
        if (!c.sw[s].switches)
            continue;
        c.cur = s;
        c.gbps = c.sw[s].gbps > 0 ? c.sw[s].gbps : gbps > 0 ? gbps : 100;
        long count = 0;
        if (expand(c.sw[s].switches, link_child_switch, &c, &count))
            st = c.bad ? serr(err, errlen, file, c.sw[s].line, "Switches=: no switch named %s (or itself)", c.badname)
                       : serr(err, errlen, file, c.sw[s].line, "Switches=%.60s: bad list", c.sw[s].switches);
    }
    if (st == RL_OK)
        st = rl_topo_place_block(t, t->nhosts, 1, 0);
    if (st == RL_OK) {
        char e2[256];
        if ((st = rl_topo_finish(t, e2, sizeof(e2))) != RL_OK)
            serr(err, errlen, file, 0, "%s", e2);
    }
    for (int i = 0; i < c.nhn; i++)
        free(c.hostnames[i]);
    free(c.hostnames);
    for (int s = 0; s < c.nsw; s++) {
        free(c.sw[s].nodes);
        free(c.sw[s].switches);
    }
    free(c.sw);
    free(first_sw);
    if (st != RL_OK)
        rl_topo_free(t);
    return st;
}

/* ---------------------------------------------------------------- NCCL XML */

/* Whether the tag text [p, e) starts with s (the text need not end in a NUL,
 * so no str* function may look past e). */
static int starts_with(const char *p, const char *e, const char *s)
{
    size_t n = strlen(s);
    return (size_t)(e - p) >= n && !memcmp(p, s, n);
}

/* Value of attribute name in the tag text [p, e), unquoted into buf; 0 if absent. */
static int xml_attr(const char *p, const char *e, const char *name, char *buf, size_t len, int *bad)
{
    size_t n = strlen(name);
    for (const char *q = p; q + n + 2 < e; q++) {
        if ((q == p || isspace((unsigned char)q[-1])) && !memcmp(q, name, n) && q[n] == '=') {
            char quote = q[n + 1];
            if (quote != '"' && quote != '\'') {
                *bad = 1;
                return 0;
            }
            const char *v = q + n + 2, *ve = memchr(v, quote, (size_t)(e - v));
            if (!ve || (size_t)(ve - v) >= len) {
                *bad = 1;
                return 0;
            }
            memcpy(buf, v, (size_t)(ve - v));
            buf[ve - v] = '\0';
            return 1;
        }
    }
    return 0;
}

static int xml_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

rl_status_t rl_topo_parse_nccl(const char *text, size_t len, const char *file, rl_topo_nic_tmpl_t *nics, int max,
                               int *n, char *err, size_t errlen)
{
    *n = 0;
    int line = 1;
    const char *end = text + len;
    int saw_system = 0;
    for (const char *p = text; p < end; p++) {
        if (*p == '\n')
            line++;
        if (*p == '\0')
            return serr(err, errlen, file, line, "NUL byte");
        if (*p != '<')
            continue;
        const char *q = memchr(p, '>', (size_t)(end - p));
        if (!q)
            return serr(err, errlen, file, line, "unterminated tag");
        for (const char *x = p; x < q; x++)
            if (*x == '\n')
                line++;
        if (starts_with(p, q, "<system"))
            saw_system = 1;
        if (starts_with(p, q, "<net") && (isspace((unsigned char)p[4]) || p[4] == '/' || p[4] == '>')) {
            if (*n >= max)
                return serr(err, errlen, file, line, "more than %d <net> elements", max);
            rl_topo_nic_tmpl_t *t = &nics[*n];
            char v[64];
            int bad = 0;
            long x;
            memset(t, 0, sizeof(*t));
            if (!xml_attr(p, q, "name", t->dev, sizeof(t->dev), &bad) || !t->dev[0] || strchr(t->dev, '/'))
                return serr(err, errlen, file, line, "<net>: missing or bad name=");
            if (!xml_attr(p, q, "speed", v, sizeof(v), &bad) || xml_int(v, 1, 100000000, &x))
                return serr(err, errlen, file, line, "<net name=\"%s\">: speed= must be Mb/s in [1, 1e8]", t->dev);
            t->gbps = (double)x / 1000.0;
            t->rail = *n;
            if (xml_attr(p, q, "rail", v, sizeof(v), &bad)) {
                if (xml_int(v, 0, 1 << 16, &x))
                    return serr(err, errlen, file, line, "<net name=\"%s\">: rail= must be in [0, 65536]", t->dev);
                t->rail = (int)x;
            }
            if (xml_attr(p, q, "plane", v, sizeof(v), &bad)) {
                if (xml_int(v, 0, 1 << 16, &x))
                    return serr(err, errlen, file, line, "<net name=\"%s\">: plane= must be in [0, 65536]", t->dev);
                t->plane = (int)x;
            }
            if (bad)
                return serr(err, errlen, file, line, "<net>: an attribute value is not quoted or too long");
            for (int i = 0; i < *n; i++)
                if (!strcmp(nics[i].dev, t->dev))
                    return serr(err, errlen, file, line, "<net name=\"%s\"> appears twice", t->dev);
            (*n)++;
        }
        p = q;
    }
    if (!saw_system)
        return serr(err, errlen, file, line, "no <system> element: not an NCCL topology file");
    if (*n == 0)
        return serr(err, errlen, file, line, "no <net> elements: no NICs");
    return RL_OK;
}
