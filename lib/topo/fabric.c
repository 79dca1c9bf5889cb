/* Fabric model: building, checking, the JSON format, routing and link loads. */
#include "topo/btree.h"
#include "topo/topo.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "topo/json.h"

/* ---------------------------------------------------------------- building */

static int grow(void **p, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return 0;
    int c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, (size_t)c * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

void rl_topo_init(rl_topo_t *t, const char *name)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name ? name : "fabric");
}

struct rl_topo_route {
    int *off, *nb, *dl; /* switch-to-switch adjacency: neighbour and directed link */
    int *dist, *queue;  /* the current destination's BFS (cached or scratch) */
    double *amount, *lat_to;
    int *sdist, *squeue; /* scratch; sdist is DIST_INF but for squeue[0 .. stouched) */
    double *slat;
    int stouched;
    char **cache;       /* per destination switch: dist, queue, lat_to in one block */
    int *creached;
    size_t cached_bytes;
};

static void route_free(rl_topo_t *t)
{
    rl_topo_route_t *r = t->route;
    if (!r)
        return;
    free(r->off);
    free(r->nb);
    free(r->dl);
    free(r->sdist);
    free(r->squeue);
    free(r->amount);
    free(r->slat);
    if (r->cache)
        for (int i = 0; i < t->nsw; i++)
            free(r->cache[i]);
    free(r->cache);
    free(r->creached);
    free(r);
    t->route = NULL;
}

void rl_topo_free(rl_topo_t *t)
{
    route_free(t);
    free(t->sw);
    free(t->hosts);
    free(t->nics);
    free(t->links);
    free(t->place);
    free(t->adj_off);
    free(t->adj);
    memset(t, 0, sizeof(*t));
}

int rl_topo_add_switch(rl_topo_t *t, const char *name, int tier)
{
    if (t->nnics || grow((void **)&t->sw, &t->caps[0], t->nsw + 1, sizeof(*t->sw)))
        return -1; /* switches come first: NIC node ids follow them */
    rl_topo_switch_t *s = &t->sw[t->nsw];
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->tier = tier;
    return t->nsw++;
}

int rl_topo_add_host(rl_topo_t *t, const char *name, double intra_gbps)
{
    if (grow((void **)&t->hosts, &t->caps[1], t->nhosts + 1, sizeof(*t->hosts)))
        return -1;
    rl_topo_host_t *h = &t->hosts[t->nhosts];
    snprintf(h->name, sizeof(h->name), "%s", name);
    h->intra_gbps = intra_gbps;
    h->first_nic = t->nnics;
    h->nnics = 0;
    return t->nhosts++;
}

int rl_topo_add_nic(rl_topo_t *t, int host, const char *dev, int rail, int plane, double gbps)
{
    if (host != t->nhosts - 1 || grow((void **)&t->nics, &t->caps[2], t->nnics + 1, sizeof(*t->nics)))
        return -1;
    rl_topo_nic_t *n = &t->nics[t->nnics];
    snprintf(n->dev, sizeof(n->dev), "%s", dev);
    n->host = host;
    n->rail = rail;
    n->plane = plane;
    n->gbps = gbps;
    n->link = -1;
    t->hosts[host].nnics++;
    return t->nnics++;
}

int rl_topo_add_link(rl_topo_t *t, int a, int b, double gbps, double lat_ns)
{
    if (grow((void **)&t->links, &t->caps[3], t->nlinks + 1, sizeof(*t->links)))
        return -1;
    t->links[t->nlinks] = (rl_topo_link_t){a, b, gbps, lat_ns};
    return t->nlinks++;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

rl_status_t rl_topo_place_block(rl_topo_t *t, int nranks, int ranks_per_host, uint64_t shuffle)
{
    if (nranks < 1 || ranks_per_host < 1 || (long long)t->nhosts * ranks_per_host < nranks)
        return RL_ERR_INVALID_ARG;
    int *hosts = malloc(sizeof(int) * (size_t)t->nhosts);
    rl_topo_place_t *p = malloc(sizeof(*p) * (size_t)nranks);
    if (!hosts || !p) {
        free(hosts);
        free(p);
        return RL_ERR_NO_MEMORY;
    }
    for (int i = 0; i < t->nhosts; i++)
        hosts[i] = i;
    if (shuffle) { /* Fisher-Yates: an allocation that ignores the switch tree */
        uint64_t s = shuffle;
        for (int i = t->nhosts - 1; i > 0; i--) {
            int j = (int)(splitmix(&s) % (uint64_t)(i + 1));
            int x = hosts[i];
            hosts[i] = hosts[j];
            hosts[j] = x;
        }
    }
    for (int r = 0; r < nranks; r++) {
        int h = hosts[r / ranks_per_host];
        const rl_topo_host_t *H = &t->hosts[h];
        p[r].host = h;
        p[r].nic = H->nnics ? H->first_nic + (r % ranks_per_host) % H->nnics : -1;
    }
    free(hosts);
    free(t->place);
    t->place = p;
    t->nranks = nranks;
    return RL_OK;
}

static rl_status_t ferr(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return RL_ERR_INVALID_ARG;
}

rl_status_t rl_topo_finish(rl_topo_t *t, char *err, size_t errlen)
{
    int nn = t->nsw + t->nnics;
    for (int i = 0; i < t->nnics; i++)
        t->nics[i].link = -1;
    for (int l = 0; l < t->nlinks; l++) {
        rl_topo_link_t *L = &t->links[l];
        if (L->a < 0 || L->a >= nn || L->b < 0 || L->b >= nn || L->a == L->b)
            return ferr(err, errlen, "link %d: bad or identical ends", l);
        if (!(L->gbps > 0) || !(L->lat_ns >= 0))
            return ferr(err, errlen, "link %d: Gb/s must be > 0 and latency >= 0", l);
        for (int e = 0; e < 2; e++) {
            int n = e ? L->b : L->a, o = e ? L->a : L->b;
            if (n < t->nsw)
                continue;
            rl_topo_nic_t *N = &t->nics[n - t->nsw];
            if (o >= t->nsw)
                return ferr(err, errlen, "link %d joins two NICs (%s, %s): a NIC links to a switch", l, N->dev,
                            t->nics[o - t->nsw].dev);
            if (N->link >= 0)
                return ferr(err, errlen, "NIC %s of host %s has two links: give it one link, to its switch", N->dev,
                            t->hosts[N->host].name);
            N->link = l;
        }
    }
    for (int i = 0; i < t->nnics; i++)
        if (t->nics[i].link < 0)
            return ferr(err, errlen, "NIC %s of host %s has no link", t->nics[i].dev, t->hosts[t->nics[i].host].name);
    for (int h = 0; h < t->nhosts; h++)
        t->hosts[h].nranks = 0;
    for (int r = 0; r < t->nranks; r++) {
        rl_topo_place_t *p = &t->place[r];
        if (p->host < 0 || p->host >= t->nhosts || p->nic < 0 || p->nic >= t->nnics || t->nics[p->nic].host != p->host)
            return ferr(err, errlen, "placement of rank %d: no such host or NIC", r);
        t->hosts[p->host].nranks++;
    }
    free(t->adj_off);
    free(t->adj);
    t->adj_off = calloc((size_t)nn + 1, sizeof(int));
    t->adj = malloc(sizeof(int) * (size_t)(2 * t->nlinks + 1));
    if (!t->adj_off || !t->adj)
        return RL_ERR_NO_MEMORY;
    for (int l = 0; l < t->nlinks; l++) {
        t->adj_off[t->links[l].a + 1]++;
        t->adj_off[t->links[l].b + 1]++;
    }
    for (int i = 0; i < nn; i++)
        t->adj_off[i + 1] += t->adj_off[i];
    int *fill = malloc(sizeof(int) * (size_t)(nn + 1));
    if (!fill)
        return RL_ERR_NO_MEMORY;
    memcpy(fill, t->adj_off, sizeof(int) * (size_t)nn);
    for (int l = 0; l < t->nlinks; l++) {
        t->adj[fill[t->links[l].a]++] = 2 * l;
        t->adj[fill[t->links[l].b]++] = 2 * l + 1;
    }
    free(fill);
    route_free(t);
    return RL_OK;
}

/* ---------------------------------------------------------------- names */

typedef struct {
    const char **key;
    int *val;
    size_t cap;
} namemap_t;

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static int map_init(namemap_t *m, size_t n)
{
    m->cap = 16;
    while (m->cap < 2 * n + 16)
        m->cap *= 2;
    m->key = calloc(m->cap, sizeof(*m->key));
    m->val = calloc(m->cap, sizeof(*m->val));
    return m->key && m->val ? 0 : -1;
}

static void map_free(namemap_t *m)
{
    free(m->key);
    free(m->val);
}

/* Returns 1 if the key was there already (val untouched). key must outlive the map. */
static int map_put(namemap_t *m, const char *key, int val)
{
    size_t i = fnv(key) & (m->cap - 1);
    while (m->key[i]) {
        if (!strcmp(m->key[i], key))
            return 1;
        i = (i + 1) & (m->cap - 1);
    }
    m->key[i] = key;
    m->val[i] = val;
    return 0;
}

static int map_get(const namemap_t *m, const char *key)
{
    size_t i = fnv(key) & (m->cap - 1);
    while (m->key[i]) {
        if (!strcmp(m->key[i], key))
            return m->val[i];
        i = (i + 1) & (m->cap - 1);
    }
    return -1;
}

/* ---------------------------------------------------------------- JSON in */

typedef struct {
    const rl_json_t *d;
    char *err;
    size_t len;
} jctx_t;

static rl_status_t jerr(jctx_t *c, int v, const char *path, const char *fmt, ...)
{
    int n = snprintf(c->err, c->len, "%s:%d: %s: ", c->d->file, v >= 0 ? c->d->v[v].line : 0, path);
    if (n >= 0 && (size_t)n < c->len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err + n, c->len - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return RL_ERR_INVALID_ARG;
}

/* Member key of object o: type t required (or missing allowed when opt). Returns index or -1. */
static int jmem(jctx_t *c, int o, const char *path, const char *key, rl_jtype_t t, int opt, rl_status_t *st)
{
    int v = rl_json_get(c->d, o, key);
    if (v < 0) {
        if (!opt)
            *st = jerr(c, o, path, "missing key \"%s\"", key);
        return -1;
    }
    if (c->d->v[v].type != t) {
        static const char *names[] = {"null", "a boolean", "a number", "a string", "an array", "an object"};
        *st = jerr(c, v, path, "\"%s\" must be %s", key, names[t]);
        return -1;
    }
    return v;
}

static int jnum(jctx_t *c, int o, const char *path, const char *key, double lo, double hi, double dflt, int opt,
                double *out, rl_status_t *st)
{
    int v = jmem(c, o, path, key, RL_JNUM, opt, st);
    if (v < 0) {
        *out = dflt;
        return *st == RL_OK ? 0 : -1;
    }
    double x = c->d->v[v].num;
    if (!(x >= lo && x <= hi)) {
        *st = jerr(c, v, path, "\"%s\" is %g, must be in [%g, %g]", key, x, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

static int jint(jctx_t *c, int o, const char *path, const char *key, int lo, int hi, int dflt, int opt, int *out,
                rl_status_t *st)
{
    double x;
    if (jnum(c, o, path, key, lo, hi, dflt, opt, &x, st))
        return -1;
    if (x != floor(x)) {
        *st = jerr(c, rl_json_get(c->d, o, key), path, "\"%s\" must be an integer", key);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static const char *jstr(jctx_t *c, int o, const char *path, const char *key, size_t max, rl_status_t *st)
{
    int v = jmem(c, o, path, key, RL_JSTR, 0, st);
    if (v < 0)
        return NULL;
    const rl_jval_t *s = &c->d->v[v];
    if (s->len == 0 || s->len >= max || strlen(s->str) != s->len || strchr(s->str, '/')) {
        *st = jerr(c, v, path, "\"%s\" must be a name of 1 to %zu characters without '/' or NUL", key, max - 1);
        return NULL;
    }
    return s->str;
}

static rl_status_t load_hosts(jctx_t *c, int root, rl_topo_t *t, namemap_t *nics)
{
    rl_status_t st = RL_OK;
    int hs = jmem(c, root, "fabric", "hosts", RL_JARR, 0, &st);
    if (hs < 0)
        return st;
    char path[96];
    int i = 0;
    for (int h = c->d->v[hs].first; h >= 0; h = c->d->v[h].next, i++) {
        snprintf(path, sizeof(path), "hosts[%d]", i);
        if (c->d->v[h].type != RL_JOBJ)
            return jerr(c, h, path, "must be an object");
        const char *name = jstr(c, h, path, "name", RL_TOPO_NAME, &st);
        double intra;
        if (!name || jnum(c, h, path, "intra_gbps", 1e-6, 1e9, 1000, 1, &intra, &st))
            return st;
        int host = rl_topo_add_host(t, name, intra);
        int ns = jmem(c, h, path, "nics", RL_JARR, 0, &st);
        if (host < 0 || ns < 0)
            return host < 0 ? RL_ERR_NO_MEMORY : st;
        if (c->d->v[ns].count < 1)
            return jerr(c, ns, path, "\"nics\" is empty: a host needs at least one NIC");
        int k = 0;
        for (int n = c->d->v[ns].first; n >= 0; n = c->d->v[n].next, k++) {
            char np[128];
            snprintf(np, sizeof(np), "%s.nics[%d]", path, k);
            if (c->d->v[n].type != RL_JOBJ)
                return jerr(c, n, np, "must be an object");
            const char *dev = jstr(c, n, np, "dev", 32, &st);
            int rail, plane;
            double gbps;
            if (!dev || jint(c, n, np, "rail", 0, 1 << 20, 0, 1, &rail, &st) ||
                jint(c, n, np, "plane", 0, 1 << 20, 0, 1, &plane, &st) ||
                jnum(c, n, np, "gbps", 1e-6, 1e9, 0, 0, &gbps, &st))
                return st;
            int id = rl_topo_add_nic(t, host, dev, rail, plane, gbps);
            if (id < 0)
                return RL_ERR_NO_MEMORY;
            char *full = malloc(strlen(name) + strlen(dev) + 2);
            if (!full)
                return RL_ERR_NO_MEMORY;
            sprintf(full, "%s/%s", name, dev);
            if (map_put(nics, full, id)) {
                free(full);
                return jerr(c, n, np, "NIC \"%s\" appears twice on host \"%s\"", dev, name);
            }
        }
    }
    return RL_OK;
}

static rl_status_t load_switches(jctx_t *c, int root, rl_topo_t *t, namemap_t *sws, namemap_t *hosts)
{
    rl_status_t st = RL_OK;
    int ss = jmem(c, root, "fabric", "switches", RL_JARR, 0, &st);
    if (ss < 0)
        return st;
    char path[64];
    int i = 0;
    for (int s = c->d->v[ss].first; s >= 0; s = c->d->v[s].next, i++) {
        snprintf(path, sizeof(path), "switches[%d]", i);
        if (c->d->v[s].type != RL_JOBJ)
            return jerr(c, s, path, "must be an object");
        const char *name = jstr(c, s, path, "name", RL_TOPO_NAME, &st);
        int tier;
        if (!name || jint(c, s, path, "tier", 1, 16, 1, 0, &tier, &st))
            return st;
        if (map_get(hosts, name) >= 0)
            return jerr(c, s, path, "\"%s\" is already a host's name", name);
        if (rl_topo_add_switch(t, name, tier) < 0)
            return RL_ERR_NO_MEMORY;
        if (map_put(sws, name, i))
            return jerr(c, s, path, "switch \"%s\" appears twice", name);
    }
    return RL_OK;
}

/* "leaf0" (a switch) or "host/dev" (a NIC): node id or -1. */
static int node_of(const rl_topo_t *t, const namemap_t *sws, const namemap_t *nics, const char *s)
{
    int id = strchr(s, '/') ? map_get(nics, s) : map_get(sws, s);
    return id < 0 ? -1 : strchr(s, '/') ? t->nsw + id : id;
}

static rl_status_t load_links(jctx_t *c, int root, rl_topo_t *t, const namemap_t *sws, const namemap_t *nics)
{
    rl_status_t st = RL_OK;
    int ls = jmem(c, root, "fabric", "links", RL_JARR, 0, &st);
    if (ls < 0)
        return st;
    char path[64];
    int i = 0;
    for (int l = c->d->v[ls].first; l >= 0; l = c->d->v[l].next, i++) {
        snprintf(path, sizeof(path), "links[%d]", i);
        if (c->d->v[l].type != RL_JOBJ)
            return jerr(c, l, path, "must be an object");
        int ends[2];
        for (int e = 0; e < 2; e++) {
            const char *key = e ? "b" : "a";
            int v = jmem(c, l, path, key, RL_JSTR, 0, &st);
            if (v < 0)
                return st;
            ends[e] = node_of(t, sws, nics, c->d->v[v].str);
            if (ends[e] < 0)
                return jerr(c, v, path, "\"%s\": no switch or host/NIC named \"%.80s\"", key, c->d->v[v].str);
        }
        double gbps, lat;
        if (jnum(c, l, path, "gbps", 1e-6, 1e9, 0, 0, &gbps, &st) ||
            jnum(c, l, path, "lat_ns", 0, 1e12, 500, 1, &lat, &st))
            return st;
        if (ends[0] == ends[1])
            return jerr(c, l, path, "both ends are the same node");
        if (rl_topo_add_link(t, ends[0], ends[1], gbps, lat) < 0)
            return RL_ERR_NO_MEMORY;
    }
    return RL_OK;
}

static rl_status_t load_placement(jctx_t *c, int root, rl_topo_t *t, const namemap_t *hosts, const namemap_t *nics)
{
    int p = rl_json_get(c->d, root, "placement");
    rl_status_t st = RL_OK;
    if (p < 0 || c->d->v[p].type == RL_JOBJ) {
        int rph = 1, nranks = t->nhosts;
        if (p >= 0 && (jint(c, p, "placement", "ranks_per_host", 1, 1 << 16, 1, 1, &rph, &st) ||
                       jint(c, p, "placement", "ranks", 1, 1 << 24, t->nhosts * rph, 1, &nranks, &st)))
            return st;
        if ((long long)rph * t->nhosts < nranks || t->nhosts == 0)
            return jerr(c, p, "placement", "%d ranks do not fit on %d hosts of %d ranks", nranks, t->nhosts, rph);
        return rl_topo_place_block(t, nranks, rph, 0);
    }
    if (c->d->v[p].type != RL_JARR || c->d->v[p].count < 1)
        return jerr(c, p, "placement", "must be {\"ranks_per_host\": N} or a non-empty array of [host, nic]");
    int n = c->d->v[p].count;
    t->place = malloc(sizeof(*t->place) * (size_t)n);
    if (!t->place)
        return RL_ERR_NO_MEMORY;
    t->nranks = n;
    int r = 0;
    char path[64];
    for (int e = c->d->v[p].first; e >= 0; e = c->d->v[e].next, r++) {
        snprintf(path, sizeof(path), "placement[%d]", r);
        const rl_jval_t *E = &c->d->v[e];
        if (E->type != RL_JARR || E->count != 2 || c->d->v[E->first].type != RL_JSTR ||
            c->d->v[c->d->v[E->first].next].type != RL_JSTR)
            return jerr(c, e, path, "must be [\"host\", \"nic\"] (rank %d)", r);
        const char *hn = c->d->v[E->first].str, *dn = c->d->v[c->d->v[E->first].next].str;
        int h = map_get(hosts, hn);
        if (h < 0)
            return jerr(c, e, path, "no host named \"%.64s\"", hn);
        char full[2 * RL_TOPO_NAME + 2];
        snprintf(full, sizeof(full), "%s/%s", hn, dn);
        int nic = strlen(dn) < 32 ? map_get(nics, full) : -1;
        if (nic < 0)
            return jerr(c, e, path, "host \"%.64s\" has no NIC \"%.32s\"", hn, dn);
        t->place[r] = (rl_topo_place_t){h, nic};
    }
    return RL_OK;
}

static rl_status_t load_torus(jctx_t *c, int root, rl_topo_t *t)
{
    rl_status_t st = RL_OK;
    int o = jmem(c, root, "fabric", "torus", RL_JARR, 1, &st);
    if (o < 0)
        return st;
    const rl_jval_t *T = &c->d->v[o];
    if (T->count < 2 || T->count > 3)
        return jerr(c, o, "torus", "must list 2 or 3 dimensions");
    long long prod = 1;
    int i = 0;
    for (int e = T->first; e >= 0; e = c->d->v[e].next, i++) {
        double x = c->d->v[e].num;
        if (c->d->v[e].type != RL_JNUM || x != floor(x) || x < 2 || x > 4096)
            return jerr(c, e, "torus", "dimension %d must be an integer in [2, 4096]", i);
        t->torus[i] = (int)x;
        prod *= (int)x;
    }
    t->ntorus = T->count;
    if (prod != t->nsw)
        return jerr(c, o, "torus", "dimensions give %lld nodes, the fabric has %d switches", prod, t->nsw);
    return RL_OK;
}

static rl_status_t load_doc(jctx_t *c, rl_topo_t *t)
{
    int root = 0;
    rl_status_t st = RL_OK;
    if (c->d->v[root].type != RL_JOBJ)
        return jerr(c, root, "fabric", "the document must be an object");
    int version;
    if (jint(c, root, "fabric", "ringlet_fabric", 1, 1, 1, 0, &version, &st))
        return st;
    int nm = jmem(c, root, "fabric", "name", RL_JSTR, 1, &st);
    if (st != RL_OK)
        return st;
    if (nm >= 0)
        snprintf(t->name, sizeof(t->name), "%s", c->d->v[nm].str);
    namemap_t hosts = {0}, sws = {0}, nics = {0};
    int hs = rl_json_get(c->d, root, "hosts"), ss = rl_json_get(c->d, root, "switches");
    size_t nh = hs >= 0 ? (size_t)c->d->v[hs].count : 0, ns = ss >= 0 ? (size_t)c->d->v[ss].count : 0;
    if (map_init(&hosts, nh) || map_init(&sws, ns) || map_init(&nics, 8 * nh)) {
        st = RL_ERR_NO_MEMORY;
        goto out;
    }
    if ((st = load_hosts(c, root, t, &nics)) != RL_OK)
        goto out;
    for (int h = 0; h < t->nhosts; h++)
        if (map_put(&hosts, t->hosts[h].name, h)) {
            st = jerr(c, hs, "hosts", "host \"%s\" appears twice", t->hosts[h].name);
            goto out;
        }
    /* switches first in node ids: NICs were added already, so renumber after */
    rl_topo_t tmp;
    rl_topo_init(&tmp, t->name);
    st = load_switches(c, root, &tmp, &sws, &hosts);
    t->sw = tmp.sw;
    t->nsw = tmp.nsw;
    t->caps[0] = tmp.caps[0];
    if (st == RL_OK)
        st = load_links(c, root, t, &sws, &nics);
    if (st == RL_OK)
        st = load_placement(c, root, t, &hosts, &nics);
    if (st == RL_OK)
        st = load_torus(c, root, t);
out:
    for (size_t i = 0; nics.key && i < nics.cap; i++)
        free((void *)nics.key[i]);
    map_free(&hosts);
    map_free(&sws);
    map_free(&nics);
    return st;
}

rl_status_t rl_topo_parse_json(const char *text, size_t len, const char *file, rl_topo_t *t, char *err, size_t errlen)
{
    rl_topo_init(t, file);
    rl_json_t d;
    rl_status_t st = rl_json_parse(text, len, file, &d, err, errlen);
    if (st != RL_OK)
        return st;
    jctx_t c = {&d, err, errlen};
    st = load_doc(&c, t);
    rl_json_free(&d);
    if (st == RL_OK) {
        char e2[256];
        st = rl_topo_finish(t, e2, sizeof(e2));
        if (st != RL_OK)
            snprintf(err, errlen, "%s: %s", file ? file : "<fabric>", e2);
    } else if (st == RL_ERR_NO_MEMORY) {
        snprintf(err, errlen, "%s: out of memory", file ? file : "<fabric>");
    }
    if (st != RL_OK)
        rl_topo_free(t);
    return st;
}

rl_status_t rl_read_file(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return RL_ERR_INVALID_ARG;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        char *b = cap < ((size_t)1 << 31) ? realloc(buf, cap * 2) : NULL;
        if (!b) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = b;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        snprintf(err, errlen, "%s: %s", path, bad ? "read error" : "too large or out of memory");
        return RL_ERR_INVALID_ARG;
    }
    *text = buf;
    *len = n;
    return RL_OK;
}

rl_status_t rl_topo_load(const char *path, rl_topo_t *t, char *err, size_t errlen)
{
    char *text;
    size_t len;
    rl_status_t st = rl_read_file(path, &text, &len, err, errlen);
    if (st != RL_OK)
        return st;
    st = rl_topo_parse_json(text, len, path, t, err, errlen);
    free(text);
    return st;
}

/* ---------------------------------------------------------------- JSON out */

void rl_topo_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void node_name(const rl_topo_t *t, int n, char *buf, size_t len)
{
    if (n < t->nsw)
        snprintf(buf, len, "%s", t->sw[n].name);
    else
        snprintf(buf, len, "%s/%s", t->hosts[t->nics[n - t->nsw].host].name, t->nics[n - t->nsw].dev);
}

static int placement_is_block(const rl_topo_t *t, int *rph)
{
    *rph = t->nhosts ? (t->nranks + t->nhosts - 1) / t->nhosts : 1;
    for (int r = 0; r < t->nranks; r++) {
        const rl_topo_host_t *H = &t->hosts[r / *rph];
        if (t->place[r].host != r / *rph || t->place[r].nic != H->first_nic + (r % *rph) % H->nnics)
            return 0;
    }
    return 1;
}

rl_status_t rl_topo_save(const rl_topo_t *t, const char *path, char *err, size_t errlen)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "w") : stdout;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return RL_ERR_INVALID_ARG;
    }
    fprintf(f, "{\"ringlet_fabric\": 1, \"name\": ");
    rl_topo_json_str(f, t->name);
    fprintf(f, ",\n");
    if (t->ntorus) {
        fprintf(f, "\"torus\": [%d, %d", t->torus[0], t->torus[1]);
        if (t->ntorus == 3)
            fprintf(f, ", %d", t->torus[2]);
        fprintf(f, "],\n");
    }
    fprintf(f, "\"hosts\": [\n");
    for (int h = 0; h < t->nhosts; h++) {
        const rl_topo_host_t *H = &t->hosts[h];
        fprintf(f, " {\"name\": ");
        rl_topo_json_str(f, H->name);
        fprintf(f, ", \"intra_gbps\": %.17g, \"nics\": [", H->intra_gbps);
        for (int i = 0; i < H->nnics; i++) {
            const rl_topo_nic_t *N = &t->nics[H->first_nic + i];
            fprintf(f, "%s{\"dev\": ", i ? ", " : "");
            rl_topo_json_str(f, N->dev);
            fprintf(f, ", \"rail\": %d, \"plane\": %d, \"gbps\": %.17g}", N->rail, N->plane, N->gbps);
        }
        fprintf(f, "]}%s\n", h + 1 < t->nhosts ? "," : "");
    }
    fprintf(f, "],\n\"switches\": [\n");
    for (int s = 0; s < t->nsw; s++)
    {
        fprintf(f, " {\"name\": ");
        rl_topo_json_str(f, t->sw[s].name);
        fprintf(f, ", \"tier\": %d}%s\n", t->sw[s].tier, s + 1 < t->nsw ? "," : "");
    }
    fprintf(f, "],\n\"links\": [\n");
    for (int l = 0; l < t->nlinks; l++) {
        char a[2 * RL_TOPO_NAME + 2], b[2 * RL_TOPO_NAME + 2];
        node_name(t, t->links[l].a, a, sizeof(a));
        node_name(t, t->links[l].b, b, sizeof(b));
        fprintf(f, " {\"a\": ");
        rl_topo_json_str(f, a);
        fprintf(f, ", \"b\": ");
        rl_topo_json_str(f, b);
        fprintf(f, ", \"gbps\": %.17g, \"lat_ns\": %.17g}%s\n", t->links[l].gbps, t->links[l].lat_ns,
                l + 1 < t->nlinks ? "," : "");
    }
    int rph;
    if (placement_is_block(t, &rph)) {
        fprintf(f, "],\n\"placement\": {\"ranks_per_host\": %d, \"ranks\": %d}\n}\n", rph, t->nranks);
    } else {
        fprintf(f, "],\n\"placement\": [\n");
        for (int r = 0; r < t->nranks; r++)
        {
            fprintf(f, " [");
            rl_topo_json_str(f, t->hosts[t->place[r].host].name);
            fprintf(f, ", ");
            rl_topo_json_str(f, t->nics[t->place[r].nic].dev);
            fprintf(f, "]%s\n", r + 1 < t->nranks ? "," : "");
        }
        fprintf(f, "]\n}\n");
    }
    int bad = ferror(f);
    if (f != stdout)
        bad |= fclose(f);
    else
        fflush(f);
    if (bad) {
        snprintf(err, errlen, "%s: write error", path);
        return RL_ERR_INVALID_ARG;
    }
    return RL_OK;
}

/* ---------------------------------------------------------------- routing */

#define DIST_INF 0x7FFFFFFF

static int link_dst(const rl_topo_t *t, int dl)
{
    const rl_topo_link_t *L = &t->links[dl >> 1];
    return dl & 1 ? L->a : L->b;
}

/* Switch-only adjacency (neighbour, directed link), built on first use. */
static rl_topo_route_t *route_get(rl_topo_t *t)
{
    if (t->route)
        return t->route;
    rl_topo_route_t *r = calloc(1, sizeof(*r));
    size_t n = (size_t)t->nsw + 1;
    if (!r)
        return NULL;
    t->route = r;
    r->off = calloc(n, sizeof(int));
    r->nb = malloc(sizeof(int) * (size_t)(2 * t->nlinks + 1));
    r->dl = malloc(sizeof(int) * (size_t)(2 * t->nlinks + 1));
    r->sdist = malloc(sizeof(int) * n);
    r->squeue = malloc(sizeof(int) * n);
    r->amount = calloc(n, sizeof(double));
    r->slat = malloc(sizeof(double) * n);
    r->cache = calloc(n, sizeof(char *));
    r->creached = calloc(n, sizeof(int));
    if (!r->off || !r->nb || !r->dl || !r->sdist || !r->squeue || !r->amount || !r->slat || !r->cache || !r->creached) {
        route_free(t);
        return NULL;
    }
    for (int u = 0; u < t->nsw; u++)
        r->sdist[u] = DIST_INF;
    int k = 0;
    for (int u = 0; u < t->nsw; u++) {
        r->off[u] = k;
        for (int j = t->adj_off[u]; j < t->adj_off[u + 1]; j++) {
            int v = link_dst(t, t->adj[j]);
            if (v < t->nsw) {
                r->nb[k] = v;
                r->dl[k++] = t->adj[j];
            }
        }
    }
    r->off[t->nsw] = k;
    return r;
}

typedef struct {
    int sa, sb;
    double w;
} sw_flow_t;

static int cmp_sb(const void *a, const void *b)
{
    const sw_flow_t *x = a, *y = b;
    return x->sb != y->sb ? x->sb - y->sb : x->sa - y->sa;
}

static int is_source(const sw_flow_t *sf, int m, int v)
{
    int lo = 0, hi = m - 1; /* sf sorted by sa */
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (sf[mid].sa == v)
            return 1;
        if (sf[mid].sa < v)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return 0;
}

/* BFS from dst over switches; queue holds the nodes by distance. Also the
 * latency of the slowest minimal path from each switch to dst. The BFS
 * stops once the level of the farthest source (sa of sf[0 .. m), one
 * destination's flows) is complete: the loads need nothing farther, and a
 * ring's neighbour hops then cost a small ball instead of the whole fabric
 * (N BFS of N switches made a 32768-node torus plan take 45 s). Complete
 * BFS results are kept per destination up to ROUTE_CACHE_MAX bytes:
 * algorithms with many phases (halving-doubling) reach the same
 * destinations again and again. */
#define ROUTE_CACHE_MAX ((size_t)512 << 20)
static int bfs_to(const rl_topo_t *t, rl_topo_route_t *r, int dst, const sw_flow_t *sf, int m)
{
    if (r->cache[dst]) {
        r->dist = (int *)r->cache[dst];
        r->queue = r->dist + t->nsw;
        r->lat_to = (double *)(void *)(r->queue + t->nsw);
        return r->creached[dst];
    }
    r->dist = r->sdist;
    r->queue = r->squeue;
    r->lat_to = r->slat;
    for (int i = 0; i < r->stouched; i++) /* back to all DIST_INF */
        r->dist[r->queue[i]] = DIST_INF;
    int need = 0;
    for (int k = 0; k < m; k++)
        need += k == 0 || sf[k].sa != sf[k - 1].sa;
    int head = 0, tail = 0, found = is_source(sf, m, dst);
    r->dist[dst] = 0;
    r->lat_to[dst] = 0;
    r->queue[tail++] = dst;
    while (head < tail && found < need) {
        for (int level_end = tail; head < level_end; head++) {
            int u = r->queue[head];
            for (int k = r->off[u]; k < r->off[u + 1]; k++) {
                int v = r->nb[k];
                double lat = t->links[r->dl[k] >> 1].lat_ns + r->lat_to[u];
                if (r->dist[v] == DIST_INF) {
                    r->dist[v] = r->dist[u] + 1;
                    r->lat_to[v] = lat;
                    r->queue[tail++] = v;
                    found += is_source(sf, m, v);
                } else if (r->dist[v] == r->dist[u] + 1 && lat > r->lat_to[v]) {
                    r->lat_to[v] = lat;
                }
            }
        }
    }
    r->stouched = tail;
    size_t bytes = (size_t)t->nsw * (2 * sizeof(int) + sizeof(double)); /* 8-byte aligned: 2 ints per switch */
    char *blk = head == tail && r->cached_bytes + bytes <= ROUTE_CACHE_MAX ? malloc(bytes) : NULL;
    if (blk) { /* complete: keep it */
        memcpy(blk, r->dist, sizeof(int) * (size_t)t->nsw);
        memcpy(blk + sizeof(int) * (size_t)t->nsw, r->queue, sizeof(int) * (size_t)t->nsw);
        memcpy(blk + 2 * sizeof(int) * (size_t)t->nsw, r->lat_to, sizeof(double) * (size_t)t->nsw);
        r->cache[dst] = blk;
        r->creached[dst] = tail;
        r->cached_bytes += bytes;
    }
    return tail;
}

/* Loads of many flows at once. Flows are grouped by destination switch:
 * one BFS per destination, then the flows' amounts flow down the minimal-
 * path DAG from the farthest switches in, split evenly over next hops. */
rl_status_t rl_topo_flow_loads(rl_topo_t *t, const rl_topo_flow_t *f, int n, double *load, double *hops,
                               double *max_lat_ns)
{
    rl_topo_route_t *r = route_get(t);
    sw_flow_t *sf = malloc(sizeof(*sf) * (size_t)(n ? n : 1));
    if (!r || !sf) {
        free(sf);
        return RL_ERR_NO_MEMORY;
    }
    int m = 0;
    double lat_nic_max = 0;
    for (int i = 0; i < n; i++) {
        const rl_topo_place_t *pa = &t->place[f[i].src], *pb = &t->place[f[i].dst];
        if (pa->host == pb->host) {
            load[2 * t->nlinks + pa->host] += f[i].w;
            continue;
        }
        int la = t->nics[pa->nic].link, lb = t->nics[pb->nic].link;
        int na = rl_topo_nic_node(t, pa->nic), nb = rl_topo_nic_node(t, pb->nic);
        int dla = 2 * la + (t->links[la].a == na ? 0 : 1), dlb = 2 * lb + (t->links[lb].a == nb ? 1 : 0);
        load[dla] += f[i].w;
        load[dlb] += f[i].w;
        *hops += 2 * f[i].w;
        double lat = t->links[la].lat_ns + t->links[lb].lat_ns;
        lat_nic_max = lat > lat_nic_max ? lat : lat_nic_max;
        sf[m++] = (sw_flow_t){link_dst(t, dla), t->links[lb].a == nb ? t->links[lb].b : t->links[lb].a, f[i].w};
    }
    qsort(sf, (size_t)m, sizeof(*sf), cmp_sb);
    double maxlat = 0;
    rl_status_t st = RL_OK;
    for (int i = 0; i < m && st == RL_OK;) {
        int sb = sf[i].sb, j = i;
        int reached = 0, far = 0;
        for (; j < m && sf[j].sb == sb; j++)
            ;
        if (sf[i].sa == sb && sf[j - 1].sa == sb) { /* all under one switch */
            i = j;
            continue;
        }
        reached = bfs_to(t, r, sb, sf + i, j - i);
        for (int k = i; k < j; k++) {
            if (r->dist[sf[k].sa] == DIST_INF) {
                st = RL_ERR_INVALID_ARG;
                break;
            }
            r->amount[sf[k].sa] += sf[k].w;
            far = r->dist[sf[k].sa] > far ? r->dist[sf[k].sa] : far;
            maxlat = r->lat_to[sf[k].sa] > maxlat ? r->lat_to[sf[k].sa] : maxlat;
        }
        for (int q = reached - 1; q > 0; q--) { /* farthest first */
            int u = r->queue[q];
            double a = r->amount[u];
            if (a == 0 || r->dist[u] > far)
                continue;
            r->amount[u] = 0;
            int cnt = 0, du = r->dist[u] - 1;
            for (int k = r->off[u]; k < r->off[u + 1]; k++)
                cnt += r->dist[r->nb[k]] == du;
            double share = a / cnt;
            for (int k = r->off[u]; k < r->off[u + 1]; k++)
                if (r->dist[r->nb[k]] == du) {
                    load[r->dl[k]] += share;
                    r->amount[r->nb[k]] += share;
                }
            *hops += a;
        }
        r->amount[sb] = 0;
        i = j;
    }
    if (st != RL_OK)
        for (int i = 0; i < t->nsw; i++)
            r->amount[i] = 0;
    free(sf);
    if (max_lat_ns) {
        double l = maxlat + lat_nic_max;
        *max_lat_ns = l > *max_lat_ns ? l : *max_lat_ns;
    }
    return st;
}

int rl_topo_nres(const rl_topo_t *t) { return 2 * t->nlinks + t->nhosts; }

double rl_topo_res_gbps(const rl_topo_t *t, int res)
{
    if (res < 2 * t->nlinks) { /* a NIC's link runs at the slower of the NIC and the link */
        const rl_topo_link_t *L = &t->links[res >> 1];
        int nic = L->a >= t->nsw ? L->a - t->nsw : L->b >= t->nsw ? L->b - t->nsw : -1;
        return nic >= 0 && t->nics[nic].gbps < L->gbps ? t->nics[nic].gbps : L->gbps;
    }
    const rl_topo_host_t *H = &t->hosts[res - 2 * t->nlinks];
    return H->intra_gbps * (H->nranks > 0 ? H->nranks : 1); /* an interconnect each rank reaches at intra_gbps */
}

void rl_topo_res_name(const rl_topo_t *t, int res, char *buf, size_t len)
{
    if (res < 0) {
        snprintf(buf, len, "-");
    } else if (res < 2 * t->nlinks) {
        char a[2 * RL_TOPO_NAME + 2], b[2 * RL_TOPO_NAME + 2];
        const rl_topo_link_t *L = &t->links[res >> 1];
        node_name(t, res & 1 ? L->b : L->a, a, sizeof(a));
        node_name(t, res & 1 ? L->a : L->b, b, sizeof(b));
        snprintf(buf, len, "%s -> %s", a, b);
    } else {
        snprintf(buf, len, "inside %s", t->hosts[res - 2 * t->nlinks].name);
    }
}


/* Routes the nf flows of f (freed here) into out: loads, hops, latency and
 * the busiest resource. */
static rl_status_t loads_of(rl_topo_t *t, rl_topo_flow_t *f, int nf, rl_topo_loads_t *out)
{
    int nres = rl_topo_nres(t);
    rl_status_t st = rl_topo_flow_loads(t, f, nf, out->load, &out->hops, &out->max_lat_ns);
    free(f);
    if (st != RL_OK) {
        rl_topo_loads_free(out);
        return st;
    }
    out->argmax = -1;
    for (int r = 0; r < nres; r++) {
        double u = out->load[r] / rl_topo_res_gbps(t, r);
        if (u > out->max_util) {
            out->max_util = u;
            out->argmax = r;
        }
    }
    return RL_OK;
}

/* Zeroed loads and room for nflows flows; NULL when out of memory. */
static rl_topo_flow_t *loads_init(rl_topo_t *t, size_t nflows, rl_topo_loads_t *out)
{
    memset(out, 0, sizeof(*out));
    out->load = calloc((size_t)rl_topo_nres(t), sizeof(double));
    rl_topo_flow_t *f = malloc(sizeof(*f) * nflows + 1);
    if (!out->load || !f) {
        free(f);
        rl_topo_loads_free(out);
        return NULL;
    }
    return f;
}

rl_status_t rl_topo_ring_loads(rl_topo_t *t, const int *order, int nrings, rl_topo_loads_t *out)
{
    int n = t->nranks, nf = 0;
    rl_topo_flow_t *f = loads_init(t, (size_t)n * (size_t)nrings, out);
    if (!f)
        return RL_ERR_NO_MEMORY;
    for (int k = 0; k < nrings && n > 1; k++)
        for (int i = 0; i < n; i++)
            f[nf++] = (rl_topo_flow_t){order[(size_t)k * n + i], order[(size_t)k * n + (i + 1) % n], 1.0 / nrings};
    return loads_of(t, f, nf, out);
}

/* Both trees of coll/dbt.c over the positions of order: each edge carries
 * its tree's half of the data up and down. */
rl_status_t rl_topo_tree_loads(rl_topo_t *t, const int *order, rl_topo_loads_t *out)
{
    int n = t->nranks, nf = 0;
    rl_topo_flow_t *f = loads_init(t, (size_t)n * 4, out);
    if (!f)
        return RL_ERR_NO_MEMORY;
    for (int tr = 0; tr < 2; tr++)
        for (int pos = 0; pos < n; pos++) {
            int v = rl_btree_v(tr, pos, n), p = rl_btree_parent(v, n);
            if (!p)
                continue;
            int a = order[pos], b = order[rl_btree_pos(tr, p, n)];
            f[nf++] = (rl_topo_flow_t){a, b, 0.5};
            f[nf++] = (rl_topo_flow_t){b, a, 0.5};
        }
    return loads_of(t, f, nf, out);
}

void rl_topo_loads_free(rl_topo_loads_t *l)
{
    free(l->load);
    l->load = NULL;
}

/* Out-capacity of a cut: hosts (all their NICs), and the hosts that hang
 * entirely below one switch (the switch's links to anything outside). */
double rl_topo_ring_bound(const rl_topo_t *t, int *which, char *why, size_t whylen)
{
    double best = 0;
    int *ranks_on = calloc((size_t)t->nhosts, sizeof(int)), hosts_used = 0;
    if (!ranks_on)
        return 0;
    for (int r = 0; r < t->nranks; r++)
        hosts_used += ranks_on[t->place[r].host]++ == 0;
    if (why && whylen)
        why[0] = '\0';
    if (which)
        *which = -1;
    for (int h = 0; h < t->nhosts && hosts_used > 1; h++) {
        if (!ranks_on[h])
            continue;
        double cap = 0;
        for (int i = 0; i < t->hosts[h].nnics; i++)
            cap += rl_topo_res_gbps(t, 2 * t->nics[t->hosts[h].first_nic + i].link);
        if (1.0 / cap > best) {
            best = 1.0 / cap;
            if (why)
                snprintf(why, whylen, "host %s: %g Gb/s out", t->hosts[h].name, cap);
        }
    }
    /* switch cuts: hosts all of whose NICs hang off switch s */
    for (int s = 0; s < t->nsw; s++) {
        int inside = 0;
        double cap = 0;
        for (int k = t->adj_off[s]; k < t->adj_off[s + 1]; k++) {
            int v = link_dst(t, t->adj[k]);
            if (v < t->nsw) {
                cap += t->links[t->adj[k] >> 1].gbps;
                continue;
            }
            const rl_topo_host_t *H = &t->hosts[t->nics[v - t->nsw].host];
            int all_here = 1;
            for (int i = 0; i < H->nnics; i++) {
                int l = t->nics[H->first_nic + i].link;
                all_here &= t->links[l].a == s || t->links[l].b == s;
            }
            if (all_here && ranks_on[H - t->hosts])
                inside += v - t->nsw == H->first_nic; /* count each host once */
            else
                cap += rl_topo_res_gbps(t, t->adj[k]);
        }
        if (inside > 0 && inside < hosts_used && 1.0 / cap > best) {
            best = 1.0 / cap;
            if (which)
                *which = s;
            if (why)
                snprintf(why, whylen, "%d hosts under %s: %g Gb/s out", inside, t->sw[s].name, cap);
        }
    }
    free(ranks_on);
    return best;
}
