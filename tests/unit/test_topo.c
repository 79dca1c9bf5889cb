/* lib/topo: JSON reader, fabric files, generators, readers, planner, simulator. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "topo/json.h"
#include "topo/topo.h"

static char err[512];

/* Speed targets hold for optimised builds; sanitizer and -O0 builds only check results. */
#if defined(__SANITIZE_ADDRESS__) || !defined(__OPTIMIZE__)
#define TIMED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TIMED 0
#else
#define TIMED 1
#endif
#else
#define TIMED 1
#endif

static rl_status_t parse(const char *s, rl_topo_t *t) { return rl_topo_parse_json(s, strlen(s), "f.json", t, err, sizeof(err)); }

/* ---- JSON ---- */

Test(json, values_and_lines)
{
    const char *s = "{\"a\": [1, -2.5e3, true, null],\n \"b\": \"x\\u00e9\\ud83d\\ude00\\n\",\n \"c\": {}}";
    rl_json_t d;
    cr_assert_eq(rl_json_parse(s, strlen(s), "t.json", &d, err, sizeof(err)), RL_OK, "%s", err);
    int a = rl_json_get(&d, 0, "a"), b = rl_json_get(&d, 0, "b");
    cr_assert_eq(d.v[a].count, 4);
    cr_assert_eq(d.v[d.v[d.v[a].first].next].num, -2500);
    cr_assert_eq(d.v[b].line, 2);
    cr_assert_str_eq(d.v[b].str, "x\xc3\xa9\xf0\x9f\x98\x80\n");
    cr_assert_eq(rl_json_get(&d, 0, "zz"), -1);
    rl_json_free(&d);
}

Test(json, rejects_with_file_and_line)
{
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"{\"a\": 1,\n}", "t.json:2: expected a quoted key"},
        {"[1, 2,]", "t.json:1: unexpected ']'"},
        {"{\"a\": 1, \"a\": 2}", "duplicate key \"a\""},
        {"01", "text after the end"},
        {"1.", "no digit after the point"},
        {"\"\\x\"", "bad escape"},
        {"\"\\ud800\"", "without its low half"},
        {"\"a\nb\"", "control character"},
        {"{\"a\" 1}", "expected ':'"},
        {"", "unexpected end"},
        {"[1] x", "text after the end"},
        {"1e999", "out of range"},
        {"{\n\n\"a\": tru}", "t.json:3: unexpected 't'"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rl_json_t d;
        err[0] = '\0';
        cr_assert_eq(rl_json_parse(bad[i].text, strlen(bad[i].text), "t.json", &d, err, sizeof(err)), RL_ERR_INVALID_ARG,
                     "accepted %s", bad[i].text);
        cr_assert(strstr(err, bad[i].want), "%s: got \"%s\", want \"%s\"", bad[i].text, err, bad[i].want);
    }
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    rl_json_t d;
    cr_assert_eq(rl_json_parse(deep, 200, "t.json", &d, err, sizeof(err)), RL_ERR_INVALID_ARG);
    cr_assert(strstr(err, "nested deeper"), "%s", err);
}

/* ---- fabric files ---- */

static const char *two_hosts =
    "{\"ringlet_fabric\": 1, \"name\": \"tiny\",\n"
    " \"hosts\": [{\"name\": \"a\", \"nics\": [{\"dev\": \"n0\", \"gbps\": 100}]},\n"
    "           {\"name\": \"b\", \"nics\": [{\"dev\": \"n0\", \"gbps\": 100, \"rail\": 1}]}],\n"
    " \"switches\": [{\"name\": \"s\", \"tier\": 1}],\n"
    " \"links\": [{\"a\": \"a/n0\", \"b\": \"s\", \"gbps\": 100},\n"
    "           {\"a\": \"b/n0\", \"b\": \"s\", \"gbps\": %s}],\n"
    " \"placement\": [[\"b\", \"n0\"], [\"a\", \"n0\"]]}\n";

Test(fabric, loads_and_names_errors)
{
    char buf[2048];
    rl_topo_t t;
    snprintf(buf, sizeof(buf), two_hosts, "25");
    cr_assert_eq(parse(buf, &t), RL_OK, "%s", err);
    cr_assert_eq(t.nhosts, 2);
    cr_assert_eq(t.nranks, 2);
    cr_assert_eq(t.place[0].host, 1);
    cr_assert_eq(t.nics[1].rail, 1);
    cr_assert_eq(t.links[1].gbps, 25);
    rl_topo_free(&t);
    static const struct {
        const char *val, *want;
    } bad[] = {
        {"-1", "f.json:6: links[1]: \"gbps\" is -1"},
        {"\"fast\"", "f.json:6: links[1]: \"gbps\" must be a number"},
    };
    for (size_t i = 0; i < 2; i++) {
        snprintf(buf, sizeof(buf), two_hosts, bad[i].val);
        cr_assert_eq(parse(buf, &t), RL_ERR_INVALID_ARG);
        cr_assert(strstr(err, bad[i].want), "got %s", err);
    }
    const char *nolink = "{\"ringlet_fabric\": 1, \"hosts\": [{\"name\": \"a\", \"nics\": [{\"dev\": \"n0\", \"gbps\": 1}]}],"
                         "\n\"switches\": [], \"links\": [{\"a\": \"a/n1\", \"b\": \"s\", \"gbps\": 1}]}";
    cr_assert_eq(parse(nolink, &t), RL_ERR_INVALID_ARG);
    cr_assert(strstr(err, "f.json:2: links[0]: \"a\": no switch or host/NIC named \"a/n1\""), "got %s", err);
    const char *noversion = "{\"hosts\": []}";
    cr_assert_eq(parse(noversion, &t), RL_ERR_INVALID_ARG);
    cr_assert(strstr(err, "missing key \"ringlet_fabric\""), "got %s", err);
}

static void same_fabric(const rl_topo_t *a, const rl_topo_t *b)
{
    cr_assert_eq(a->nsw, b->nsw);
    cr_assert_eq(a->nhosts, b->nhosts);
    cr_assert_eq(a->nlinks, b->nlinks);
    cr_assert_eq(a->nranks, b->nranks);
    for (int l = 0; l < a->nlinks; l++)
        cr_assert(a->links[l].a == b->links[l].a && a->links[l].b == b->links[l].b && a->links[l].gbps == b->links[l].gbps);
    for (int r = 0; r < a->nranks; r++)
        cr_assert(a->place[r].host == b->place[r].host && a->place[r].nic == b->place[r].nic);
}

Test(fabric, save_load_round_trip)
{
    rl_topo_gen_t g;
    rl_topo_gen_defaults(&g);
    g.ranks = 96;
    g.shuffle = 3;
    g.oversub = 2;
    rl_topo_t t, u;
    cr_assert_eq(rl_topo_gen_fat_tree(&g, &t, err, sizeof(err)), RL_OK, "%s", err);
    char path[] = "/tmp/rl_topo_rtXXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(rl_topo_save(&t, path, err, sizeof(err)), RL_OK);
    cr_assert_eq(rl_topo_load(path, &u, err, sizeof(err)), RL_OK, "%s", err);
    same_fabric(&t, &u);
    rl_topo_free(&u);
    g.ndims = 2, g.dims[0] = 4, g.dims[1] = 6, g.ranks = 24, g.shuffle = 0;
    rl_topo_free(&t);
    cr_assert_eq(rl_topo_gen_torus(&g, &t, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert_eq(rl_topo_save(&t, path, err, sizeof(err)), RL_OK);
    cr_assert_eq(rl_topo_load(path, &u, err, sizeof(err)), RL_OK, "%s", err);
    same_fabric(&t, &u);
    cr_assert_eq(u.ntorus, 2);
    cr_assert_eq(u.torus[1], 6);
    rl_topo_free(&u);
    rl_topo_free(&t);
    close(fd);
    unlink(path);
}

Test(fabric, ring_order_file_for_comm_create)
{
    rl_topo_gen_t g;
    rl_topo_gen_defaults(&g);
    g.ranks = 12, g.oversub = 3, g.radix = 8, g.shuffle = 4;
    rl_topo_t t;
    cr_assert_eq(rl_topo_gen_fat_tree(&g, &t, err, sizeof(err)), RL_OK, "%s", err);
    char path[] = "/tmp/rl_topo_ofXXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert_eq(rl_topo_save(&t, path, err, sizeof(err)), RL_OK);
    rl_topo_plan_t p;
    cr_assert_eq(rl_topo_plan(&t, 0, &p, err, sizeof(err)), RL_OK, "%s", err);
    int order[12], nrings = 0;
    char desc[512];
    cr_assert_eq(rl_topo_ring_order_file(path, 12, 1, order, &nrings, desc, sizeof(desc), err, sizeof(err)), RL_OK,
                 "%s", err);
    cr_assert_eq(nrings, 1);
    cr_assert_arr_eq(order, p.order, sizeof(order));
    cr_assert(strstr(desc, path), "%s", desc);
    cr_assert_eq(rl_topo_ring_order_file(path, 13, 1, order, &nrings, desc, sizeof(desc), err, sizeof(err)),
                 RL_ERR_CONFIG);
    cr_assert(strstr(err, "places 12 ranks, the group has 13"), "%s", err);
    cr_assert_eq(
        rl_topo_ring_order_file("/nonexistent/f.json", 12, 1, order, &nrings, desc, sizeof(desc), err, sizeof(err)),
        RL_ERR_CONFIG);
    cr_assert(strstr(err, "RINGLET_TOPO_FILE: /nonexistent/f.json"), "%s", err);
    rl_topo_plan_free(&p);
    rl_topo_free(&t);
    /* a rail fabric plans a ring per rail: the communicator gets them all,
     * or as many as it asks for */
    rl_topo_gen_defaults(&g);
    g.rails = 4, g.ranks_per_host = 4, g.ranks = 16, g.shuffle = 3;
    cr_assert_eq(rl_topo_gen_rail(&g, &t, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert_eq(rl_topo_save(&t, path, err, sizeof(err)), RL_OK);
    cr_assert_eq(rl_topo_plan(&t, 0, &p, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert_eq(p.nrings, 4);
    int orders[8 * 16];
    cr_assert_eq(rl_topo_ring_order_file(path, 16, 8, orders, &nrings, desc, sizeof(desc), err, sizeof(err)), RL_OK,
                 "%s", err);
    cr_assert_eq(nrings, 4, "%s", desc);
    cr_assert_arr_eq(orders, p.order, sizeof(int) * 4 * 16);
    cr_assert(strstr(desc, "4 rings"), "%s", desc);
    cr_assert_eq(rl_topo_ring_order_file(path, 16, 2, orders, &nrings, desc, sizeof(desc), err, sizeof(err)), RL_OK,
                 "%s", err);
    cr_assert_eq(nrings, 2);
    rl_topo_plan_free(&p);
    rl_topo_free(&t);
    unlink(path);
}

/* ---- readers ---- */

Test(readers, slurm)
{
    const char *conf = "# two leaves\nSwitchName=s0 Nodes=n[0-3]\nSwitchName=s1 Nodes=n[4-5],m07 LinkSpeed=50\n"
                       "SwitchName=top Switches=s[0-1]\n";
    rl_topo_t t;
    cr_assert_eq(rl_topo_parse_slurm(conf, strlen(conf), "topology.conf", 100, &t, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert_eq(t.nsw, 3);
    cr_assert_eq(t.nhosts, 7);
    cr_assert_str_eq(t.hosts[6].name, "m07");
    cr_assert_eq(t.sw[2].tier, 2);
    cr_assert_eq(t.nlinks, 7 + 2);
    cr_assert_eq(t.nics[5].gbps, 50);
    rl_topo_plan_t p;
    cr_assert_eq(rl_topo_plan(&t, 0, &p, err, sizeof(err)), RL_OK, "%s", err);
    rl_topo_plan_free(&p);
    rl_topo_free(&t);
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"SwitchName=s0 Nodes=n[0-3\n", "topology.conf:1: Nodes=n[0-3: bad hostlist"},
        {"SwitchName=s0 Nodes=a\nSwitchName=s1 Switches=s9\n", "topology.conf:2: Switches=: no switch named s9"},
        {"SwitchName=s0 Nodes=a\nSwitchName=s1 Nodes=a\n", "node a is listed twice"},
        {"\nNodes=a\n", "topology.conf:2: missing SwitchName"},
        {"SwitchName=s0 Nodez=a\n", "topology.conf:1: unknown key Nodez"},
        {"SwitchName=s0 Switches=s0\n", "loop"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        cr_assert_eq(rl_topo_parse_slurm(bad[i].text, strlen(bad[i].text), "topology.conf", 100, &t, err, sizeof(err)),
                     RL_ERR_INVALID_ARG, "accepted %s", bad[i].text);
        cr_assert(strstr(err, bad[i].want) || (strstr(bad[i].want, "loop") && strstr(err, "itself")), "got %s", err);
    }
}

Test(readers, nccl_xml)
{
    const char *xml = "<system version=\"1\">\n <cpu numaid=\"0\">\n  <nic>\n"
                      "   <net name=\"mlx5_0\" dev=\"0\" speed=\"400000\" port=\"1\" rail=\"0\" plane=\"1\"/>\n"
                      "   <net name=\"mlx5_1\" dev=\"1\" speed=\"200000\" rail=\"3\"/>\n  </nic>\n </cpu>\n</system>\n";
    rl_topo_nic_tmpl_t n[8];
    int cnt;
    cr_assert_eq(rl_topo_parse_nccl(xml, strlen(xml), "t.xml", n, 8, &cnt, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert_eq(cnt, 2);
    cr_assert_str_eq(n[1].dev, "mlx5_1");
    cr_assert_eq(n[0].gbps, 400);
    cr_assert_eq(n[0].plane, 1);
    cr_assert_eq(n[1].rail, 3);
    const char *bad = "<system>\n<net name=\"x\" rail=\"1\"/></system>";
    cr_assert_eq(rl_topo_parse_nccl(bad, strlen(bad), "t.xml", n, 8, &cnt, err, sizeof(err)), RL_ERR_INVALID_ARG);
    cr_assert(strstr(err, "t.xml:2: <net name=\"x\">: speed="), "got %s", err);
}

/* ---- planner ---- */

static int is_permutation(const int *o, int n)
{
    char *seen = calloc((size_t)n, 1);
    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
        ok = o[i] >= 0 && o[i] < n && !seen[o[i]];
        if (ok)
            seen[o[i]] = 1;
    }
    free(seen);
    return ok;
}

/* Sum of loads on directed links from tier-1 switches to tier-2 ones. */
static double uplink_load(const rl_topo_t *t, const double *load)
{
    double up = 0;
    for (int l = 0; l < t->nlinks; l++) {
        const rl_topo_link_t *L = &t->links[l];
        if (L->a < t->nsw && L->b < t->nsw)
            up += t->sw[L->a].tier < t->sw[L->b].tier ? load[2 * l] : load[2 * l + 1];
    }
    return up;
}

Test(plan, two_leaf_clos_crosses_spine_twice)
{
    /* 2 leaves x 4 hosts, ranks alternate between the leaves: rank order crosses every time */
    rl_topo_gen_t g;
    rl_topo_gen_defaults(&g);
    g.ranks = 8;
    g.radix = 6;
    g.oversub = 2; /* 4 hosts and 2 uplinks per leaf */
    rl_topo_t t;
    cr_assert_eq(rl_topo_gen_fat_tree(&g, &t, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert_eq(t.nsw, 2 + 2);
    for (int r = 0; r < 8; r++)
        t.place[r] = (rl_topo_place_t){(r % 2) * 4 + r / 2, (r % 2) * 4 + r / 2};
    cr_assert_eq(rl_topo_finish(&t, err, sizeof(err)), RL_OK);
    rl_topo_plan_t p;
    cr_assert_eq(rl_topo_plan(&t, 0, &p, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert_eq(p.nrings, 1);
    cr_assert(is_permutation(p.order, 8));
    rl_topo_loads_t lp, lr;
    int ident[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    cr_assert_eq(rl_topo_ring_loads(&t, p.order, 1, &lp), RL_OK);
    cr_assert_eq(rl_topo_ring_loads(&t, ident, 1, &lr), RL_OK);
    /* planned: one flow up from each leaf = the spine crossed exactly twice */
    cr_assert_float_eq(uplink_load(&t, lp.load), 2.0, 1e-12);
    cr_assert_float_eq(uplink_load(&t, lr.load), 8.0, 1e-12);
    /* 2 uplinks of 400 Gb/s per leaf: a crossing spreads 1/2 on each; the NICs carry 1 */
    cr_assert_float_eq(p.util, 1.0 / 400, 1e-15);
    cr_assert_float_eq(p.util_rank_order, 4.0 / (2 * 400), 1e-15); /* 4 crossings up per leaf over 2 uplinks */
    cr_assert_float_eq(p.util_bound, 1.0 / 400, 1e-15);
    rl_topo_loads_free(&lp);
    rl_topo_loads_free(&lr);
    rl_topo_plan_free(&p);
    rl_topo_free(&t);
}

Test(plan, oversubscribed_clos_hits_bound)
{
    rl_topo_gen_t g;
    rl_topo_gen_defaults(&g);
    g.ranks = 200;
    g.oversub = 4;
    g.tiers = 3;
    g.shuffle = 11;
    rl_topo_t t;
    cr_assert_eq(rl_topo_gen_fat_tree(&g, &t, err, sizeof(err)), RL_OK, "%s", err);
    rl_topo_plan_t p;
    cr_assert_eq(rl_topo_plan(&t, 0, &p, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert(is_permutation(p.order, t.nranks));
    cr_assert_float_eq(p.util, p.util_bound, 1e-12, "plan %g bound %g", p.util, p.util_bound);
    cr_assert_gt(p.util_rank_order, 2 * p.util, "rank order %g plan %g", p.util_rank_order, p.util);
    rl_topo_plan_free(&p);
    rl_topo_free(&t);
}

static int torus_adjacent(const rl_topo_t *t, int ra, int rb)
{
    int a = t->nics[t->place[ra].nic].link, b = t->nics[t->place[rb].nic].link;
    int sa = t->links[a].a < t->nsw ? t->links[a].a : t->links[a].b;
    int sb = t->links[b].a < t->nsw ? t->links[b].a : t->links[b].b;
    for (int l = 0; l < t->nlinks; l++)
        if ((t->links[l].a == sa && t->links[l].b == sb) || (t->links[l].a == sb && t->links[l].b == sa))
            return 1;
    return 0;
}

static void torus_gen(const int *dims, rl_topo_t *t)
{
    rl_topo_gen_t g;
    rl_topo_gen_defaults(&g);
    g.ndims = dims[2] ? 3 : 2;
    memcpy(g.dims, dims, sizeof(g.dims));
    g.ranks = dims[0] * dims[1] * (dims[2] ? dims[2] : 1);
    cr_assert_eq(rl_topo_gen_torus(&g, t, err, sizeof(err)), RL_OK, "%s", err);
}

/* Every directed torus link carries exactly one of the 2d rings. */
static void torus_links_once(rl_topo_t *t, const rl_topo_plan_t *p, int nd, const char *name)
{
    rl_topo_loads_t l;
    cr_assert_eq(rl_topo_ring_loads(t, p->order, p->nrings, &l), RL_OK);
    for (int k = 0; k < t->nlinks; k++)
        if (t->links[k].a < t->nsw && t->links[k].b < t->nsw)
            for (int s = 0; s < 2; s++)
                cr_assert_float_eq(l.load[2 * k + s], 1.0 / (2 * nd), 1e-12, "%s: link %d dir %d: %g", name, k, s,
                                   l.load[2 * k + s]);
    cr_assert_float_eq(p->util, p->util_bound, 1e-12, "%s: plan %g bound %g", name, p->util, p->util_bound);
    rl_topo_loads_free(&l);
}

Test(plan, torus_edge_disjoint_cycles)
{
    /* exact: d edge-disjoint Hamiltonian cycles + reverses, so every directed link carries
     * one ring; 3x3x2 has a 2-cycle (one link per pair), so Gray codes: 2 of them, 4 rings */
    static const struct {
        int dims[3], rings, exact;
    } cases[] = {{{6, 6, 0}, 4, 1},  {{5, 5, 0}, 4, 1},  {{4, 6, 0}, 4, 1},  {{3, 4, 0}, 4, 1},  {{6, 4, 0}, 4, 1},
                 {{5, 3, 0}, 4, 1},  {{3, 7, 0}, 4, 1},  {{3, 3, 0}, 4, 1},  {{8, 5, 0}, 4, 1},  {{4, 9, 0}, 4, 1},
                 {{4, 3, 4}, 6, 1},  {{4, 4, 4}, 6, 1},  {{3, 3, 3}, 6, 1},  {{5, 4, 3}, 6, 1},  {{3, 4, 6}, 6, 1},
                 {{5, 5, 3}, 6, 1},  {{3, 3, 2}, 4, 0}};
    for (size_t d = 0; d < sizeof(cases) / sizeof(cases[0]); d++) {
        const int *dims = cases[d].dims, nd = dims[2] ? 3 : 2;
        char name[32];
        snprintf(name, sizeof(name), "%dx%dx%d", dims[0], dims[1], dims[2]);
        rl_topo_t t;
        torus_gen(dims, &t);
        rl_topo_plan_t p, p2;
        cr_assert_eq(rl_topo_plan(&t, 0, &p, err, sizeof(err)), RL_OK, "%s", err);
        cr_assert_eq(p.nrings, cases[d].rings, "%s: %d rings (%s)", name, p.nrings, p.method);
        int n = t.nranks;
        for (int c = 0; c < p.nrings; c++) {
            cr_assert(is_permutation(p.order + c * n, n));
            for (int i = 0; i < n; i++)
                cr_assert(torus_adjacent(&t, p.order[c * n + i], p.order[c * n + (i + 1) % n]), "%s: ring %d step %d",
                          name, c, i);
        }
        if (cases[d].exact) {
            cr_assert(strstr(p.method, "edge-disjoint Hamiltonian"), "%s: %s", name, p.method);
            torus_links_once(&t, &p, nd, name);
        }
        cr_assert_eq(rl_topo_plan(&t, 0, &p2, err, sizeof(err)), RL_OK, "%s", err); /* every rank plans alike */
        cr_assert_eq(p2.nrings, p.nrings);
        cr_assert_eq(memcmp(p.order, p2.order, sizeof(int) * (size_t)n * (size_t)p.nrings), 0, "%s: plans differ", name);
        rl_topo_plan_free(&p2);
        rl_topo_plan_free(&p);
        rl_topo_free(&t);
    }
}

/* Sizes where the search runs its long phases (32x24: staircase start; 16x16x8: hundreds of
 * exact moves; 4x63: one dimension odd, many dead ends; 4x4x64: from layers), without a
 * timing assert. */
Test(plan, torus_edge_disjoint_cycles_large)
{
    static const int cases[][3] = {{32, 24, 0}, {16, 16, 8}, {4, 63, 0}, {4, 4, 64}};
    for (size_t d = 0; d < sizeof(cases) / sizeof(cases[0]); d++) {
        const int nd = cases[d][2] ? 3 : 2;
        char name[32];
        snprintf(name, sizeof(name), "%dx%dx%d", cases[d][0], cases[d][1], cases[d][2]);
        rl_topo_t t;
        torus_gen(cases[d], &t);
        rl_topo_plan_t p;
        cr_assert_eq(rl_topo_plan(&t, 0, &p, err, sizeof(err)), RL_OK, "%s", err);
        cr_assert_eq(p.nrings, 2 * nd, "%s: %d rings (%s)", name, p.nrings, p.method);
        for (int c = 0; c < p.nrings; c++)
            cr_assert(is_permutation(p.order + c * t.nranks, t.nranks));
        torus_links_once(&t, &p, nd, name); /* with the permutations: only torus neighbours follow each other */
        rl_topo_plan_free(&p);
        rl_topo_free(&t);
    }
}

Test(plan, rails_aligned_one_ring_per_rail)
{
    rl_topo_gen_t g;
    rl_topo_gen_defaults(&g);
    g.rails = 4;
    g.hosts_per_leaf = 4;
    g.ranks = 4 * 10;
    g.shuffle = 5;
    rl_topo_t t;
    cr_assert_eq(rl_topo_gen_rail(&g, &t, err, sizeof(err)), RL_OK, "%s", err);
    rl_topo_plan_t p;
    cr_assert_eq(rl_topo_plan(&t, 0, &p, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert_eq(p.nrings, 4);
    int n = t.nranks, cross = 0;
    for (int c = 0; c < p.nrings; c++) {
        cr_assert(is_permutation(p.order + c * n, n));
        for (int i = 0; i < n; i++) {
            int a = p.order[c * n + i], b = p.order[c * n + (i + 1) % n];
            if (t.place[a].host != t.place[b].host) {
                cross++;
                cr_assert_eq(t.nics[t.place[a].nic].rail, t.nics[t.place[b].nic].rail, "ring %d: %d -> %d", c, a, b);
            }
        }
    }
    cr_assert_eq(cross, 4 * 10);
    cr_assert_float_eq(p.util, p.util_bound, 1e-12);
    cr_assert_gt(p.util_rank_order, p.util);
    rl_topo_plan_free(&p);
    rl_topo_free(&t);
}

Test(plan, dragonfly_walk_hits_bound)
{
    rl_topo_gen_t g;
    rl_topo_gen_defaults(&g);
    g.routers = 4, g.hosts_per_router = 2, g.globals = 2, g.ranks = 72, g.shuffle = 5;
    rl_topo_t t;
    cr_assert_eq(rl_topo_gen_dragonfly(&g, &t, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert_eq(t.nsw, 9 * 4);
    rl_topo_plan_t p;
    cr_assert_eq(rl_topo_plan(&t, 0, &p, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert(is_permutation(p.order, t.nranks));
    cr_assert_float_eq(p.util, p.util_bound, 1e-12, "plan %g bound %g", p.util, p.util_bound);
    cr_assert_geq(p.util_rank_order, 2 * p.util);
    rl_topo_plan_free(&p);
    rl_topo_free(&t);
}

Test(plan, fat_tree_32k_ranks_fast, .timeout = 60)
{
    rl_topo_gen_t g;
    rl_topo_gen_defaults(&g);
    g.ranks = 32768;
    g.tiers = 3;
    g.oversub = 2;
    g.shuffle = 1;
    rl_topo_t t;
    cr_assert_eq(rl_topo_gen_fat_tree(&g, &t, err, sizeof(err)), RL_OK, "%s", err);
    clock_t c0 = clock();
    rl_topo_plan_t p;
    cr_assert_eq(rl_topo_plan(&t, 0, &p, err, sizeof(err)), RL_OK, "%s", err);
    double s = (double)(clock() - c0) / CLOCKS_PER_SEC;
    if (TIMED)
        cr_assert_lt(s, 1.0, "planning 32768 ranks took %.2f s of CPU", s);
    cr_assert_float_eq(p.util, p.util_bound, 1e-12);
    cr_assert_gt(p.util_rank_order, 1.5 * p.util);
    rl_topo_plan_free(&p);
    rl_topo_free(&t);
}

/* ---- simulator ---- */

Test(sim, single_switch_is_alpha_beta)
{
    for (int n = 2; n <= 7; n += 5) {
        rl_topo_gen_t g;
        rl_topo_gen_defaults(&g);
        g.ranks = n;
        g.gbps = 100;
        g.lat_ns = 250;
        rl_topo_t t;
        cr_assert_eq(rl_topo_gen_switch(&g, &t, err, sizeof(err)), RL_OK, "%s", err);
        rl_sim_params_t prm;
        rl_sim_defaults(&prm);
        prm.alpha_us = 3;
        prm.eff = 0.9;
        rl_sim_t *s;
        cr_assert_eq(rl_sim_create(&t, RL_SIM_RING, RL_SIM_ALL_REDUCE, &prm, &s, err, sizeof(err)), RL_OK, "%s", err);
        for (double bytes = 1000; bytes < 1e10; bytes *= 7.3) {
            rl_sim_result_t r;
            rl_sim_time(s, bytes, &r);
            /* 2(p-1) steps of alpha + 2 link latencies + (n/p) bytes at eff x link rate */
            double beta_us = 8.0 / (0.9 * 100e3);
            double want = 2.0 * (n - 1) * (3 + 0.5 + bytes / n * beta_us);
            cr_assert_float_eq(r.time_us, want, want * 1e-12, "n %d bytes %g: %g vs %g", n, bytes, r.time_us, want);
            cr_assert_float_eq(r.busbw, bytes / (want * 1e3) * 2 * (n - 1) / n, 1e-9);
        }
        rl_sim_destroy(s);
        cr_assert_eq(rl_sim_create(&t, RL_SIM_RING, RL_SIM_ALL_GATHER, &prm, &s, err, sizeof(err)), RL_OK, "%s", err);
        rl_sim_result_t r;
        rl_sim_time(s, 1e6, &r);
        double want = (n - 1) * (3 + 0.5 + 1e6 / n * 8.0 / (0.9 * 100e3));
        cr_assert_float_eq(r.time_us, want, want * 1e-12);
        rl_sim_destroy(s);
        rl_topo_free(&t);
    }
}

Test(sim, rhd_power_of_two_single_switch)
{
    rl_topo_gen_t g;
    rl_topo_gen_defaults(&g);
    g.ranks = 8;
    g.gbps = 100;
    g.lat_ns = 0;
    rl_topo_t t;
    cr_assert_eq(rl_topo_gen_switch(&g, &t, err, sizeof(err)), RL_OK, "%s", err);
    rl_sim_params_t prm;
    rl_sim_defaults(&prm);
    prm.alpha_us = 2;
    prm.eff = 1;
    rl_sim_t *s;
    cr_assert_eq(rl_sim_create(&t, RL_SIM_RHD, RL_SIM_ALL_REDUCE, &prm, &s, err, sizeof(err)), RL_OK, "%s", err);
    rl_sim_result_t r;
    rl_sim_time(s, 8e6, &r);
    /* Rabenseifner: 2 lg p alpha + 2 n (p-1)/p beta */
    double want = 2 * 3 * 2 + 2 * 8e6 * 7 / 8 * 8 / 100e3;
    cr_assert_float_eq(r.time_us, want, want * 1e-12, "%g vs %g", r.time_us, want);
    rl_sim_destroy(s);
    rl_topo_free(&t);
}

Test(sim, maxmin_progressive_filling)
{
    /* A crosses r0 and r1, B only r0, C only r1; r0 = 10, r1 = 4: A and C
     * fill r1 at 2 each, then B takes the rest of r0: 8 */
    double cap[2] = {10, 4}, rate[3];
    int off[4] = {0, 2, 3, 4};
    rl_sim_hop_t hops[4] = {{0, 1}, {1, 1}, {0, 1}, {1, 1}};
    rl_sim_maxmin(2, cap, 3, off, hops, rate);
    cr_assert_float_eq(rate[0], 2, 1e-12);
    cr_assert_float_eq(rate[1], 8, 1e-12);
    cr_assert_float_eq(rate[2], 2, 1e-12);
}

Test(sim, oversubscribed_ring_predicts_plan_gain)
{
    /* 2 leaves, 1 uplink each (4:1), hosts alternate: rank order crosses 4x per direction */
    rl_topo_gen_t g;
    rl_topo_gen_defaults(&g);
    g.ranks = 8;
    g.radix = 5;
    g.oversub = 4;
    g.lat_ns = 0;
    rl_topo_t t;
    cr_assert_eq(rl_topo_gen_fat_tree(&g, &t, err, sizeof(err)), RL_OK, "%s", err);
    for (int r = 0; r < 8; r++)
        t.place[r] = (rl_topo_place_t){(r % 2) * 4 + r / 2, (r % 2) * 4 + r / 2};
    cr_assert_eq(rl_topo_finish(&t, err, sizeof(err)), RL_OK);
    rl_sim_params_t prm;
    rl_sim_defaults(&prm);
    prm.alpha_us = 0;
    rl_sim_t *ring, *plan;
    cr_assert_eq(rl_sim_create(&t, RL_SIM_RING, RL_SIM_ALL_REDUCE, &prm, &ring, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert_eq(rl_sim_create(&t, RL_SIM_PLANNED, RL_SIM_ALL_REDUCE, &prm, &plan, err, sizeof(err)), RL_OK, "%s", err);
    rl_sim_result_t a, b;
    rl_sim_time(ring, 1e9, &a);
    rl_sim_time(plan, 1e9, &b);
    cr_assert_float_eq(b.busbw / a.busbw, 4.0, 1e-3, "gain %g", b.busbw / a.busbw);
    rl_sim_destroy(ring);
    rl_sim_destroy(plan);
    rl_topo_free(&t);
}

Test(sim, fat_tree_1k_fast, .timeout = 60)
{
    rl_topo_gen_t g;
    rl_topo_gen_defaults(&g);
    g.ranks = 1024;
    g.tiers = 3;
    g.oversub = 2;
    rl_topo_t t;
    cr_assert_eq(rl_topo_gen_fat_tree(&g, &t, err, sizeof(err)), RL_OK, "%s", err);
    rl_sim_params_t prm;
    rl_sim_defaults(&prm);
    for (int a = RL_SIM_RING; a <= RL_SIM_HIER; a++) {
        clock_t c0 = clock();
        rl_sim_t *s;
        cr_assert_eq(rl_sim_create(&t, (rl_sim_algo_t)a, RL_SIM_ALL_REDUCE, &prm, &s, err, sizeof(err)), RL_OK, "%s", err);
        rl_sim_result_t r;
        for (double b = 1024; b <= 1 << 30; b *= 2)
            rl_sim_time(s, b, &r);
        double sec = (double)(clock() - c0) / CLOCKS_PER_SEC;
        if (TIMED)
            cr_assert_lt(sec, 0.1, "%s at 1024 ranks: %.3f s", rl_sim_algo_name((rl_sim_algo_t)a), sec);
        cr_assert_gt(r.busbw, 0);
        rl_sim_destroy(s);
    }
    rl_topo_free(&t);
}

/* Placement by host name: local indices in rank order take the host's NICs
 * in turn; a host the fabric lacks is reported by its rank. */
Test(fabric, place_ranks_by_host_name)
{
    rl_topo_gen_t g;
    rl_topo_gen_defaults(&g);
    g.rails = 2, g.ranks_per_host = 2, g.ranks = 8;
    rl_topo_t t;
    cr_assert_eq(rl_topo_gen_rail(&g, &t, err, sizeof(err)), RL_OK, "%s", err);
    const char *names[] = {"h3", "h0", "h3", "h1", "h0"};
    cr_assert_eq(rl_topo_place_hosts(&t, 5, names), -1);
    cr_assert_eq(t.nranks, 5);
    cr_assert_str_eq(t.hosts[t.place[0].host].name, "h3");
    cr_assert_str_eq(t.hosts[t.place[4].host].name, "h0");
    cr_assert_eq(t.place[0].nic, t.hosts[t.place[0].host].first_nic);     /* first rank on h3: NIC 0 */
    cr_assert_eq(t.place[2].nic, t.hosts[t.place[2].host].first_nic + 1); /* second: NIC 1 */
    cr_assert_eq(rl_topo_finish(&t, err, sizeof(err)), RL_OK, "%s", err);
    const char *bad[] = {"h0", "h1", "h9"};
    cr_assert_eq(rl_topo_place_hosts(&t, 3, bad), 2);
    cr_assert_eq(t.nranks, 5); /* left as it was */
    rl_topo_free(&t);
}

/* ---- NIC per channel ---- */
/* Three hosts (odd), one rank each, two NICs listed against rail order
 * (rail 1 first): channel 0 must take the rail-0 NIC, channel 1 rail 1. */
static const char *two_rails =
    "{\"ringlet_fabric\": 1, \"name\": \"two rails\",\n"
    " \"hosts\": [{\"name\": \"a\", \"nics\": [{\"dev\": \"d1\", \"rail\": 1, \"gbps\": 100}, {\"dev\": \"d0\", \"rail\": 0, \"gbps\": 100}]},\n"
    "           {\"name\": \"b\", \"nics\": [{\"dev\": \"d1\", \"rail\": 1, \"gbps\": 100}, {\"dev\": \"d0\", \"rail\": 0, \"gbps\": 100}]},\n"
    "           {\"name\": \"c\", \"nics\": [{\"dev\": \"d1\", \"rail\": 1, \"gbps\": 100}, {\"dev\": \"d0\", \"rail\": 0, \"gbps\": 100}]},\n"
    "           {\"name\": \"z\", \"nics\": [{\"dev\": \"d0\", \"gbps\": 100}]}],\n"
    " \"switches\": [{\"name\": \"r0\", \"tier\": 1}, {\"name\": \"r1\", \"tier\": 1}],\n"
    " \"links\": [{\"a\": \"a/d0\", \"b\": \"r0\", \"gbps\": 100}, {\"a\": \"a/d1\", \"b\": \"r1\", \"gbps\": 100},\n"
    "           {\"a\": \"b/d0\", \"b\": \"r0\", \"gbps\": 100}, {\"a\": \"b/d1\", \"b\": \"r1\", \"gbps\": 100},\n"
    "           {\"a\": \"c/d0\", \"b\": \"r0\", \"gbps\": 100}, {\"a\": \"c/d1\", \"b\": \"r1\", \"gbps\": 100},\n"
    "           {\"a\": \"z/d0\", \"b\": \"r0\", \"gbps\": 100}, {\"a\": \"r0\", \"b\": \"r1\", \"gbps\": 100}],\n"
    " \"placement\": [[\"c\", \"d1\"], [\"a\", \"d1\"], [\"b\", \"d0\"], [\"z\", \"d0\"]]}\n";

Test(chan, nic_per_channel_follows_rails_not_listing_order)
{
    rl_topo_t t;
    cr_assert_eq(parse(two_rails, &t), RL_OK, "%s", err);
    cr_assert_eq(rl_topo_finish(&t, err, sizeof(err)), RL_OK, "%s", err);
    int nic[5];
    char why[128];
    for (int r = 0; r < 3; r++) {
        cr_assert_eq(rl_topo_chan_nics(&t, r, 5, nic, why, sizeof(why)), 2, "rank %d: %s", r, why);
        for (int i = 0; i < 5; i++) {
            cr_assert_eq(t.nics[nic[i]].host, t.place[r].host, "rank %d channel %d: another host's NIC", r, i);
            cr_assert_eq(t.nics[nic[i]].rail, i % 2, "rank %d channel %d on rail %d", r, i, t.nics[nic[i]].rail);
        }
    }
    cr_assert_eq(rl_topo_chan_nics(&t, 3, 2, nic, why, sizeof(why)), -1); /* host z has one NIC */
    cr_assert(strstr(why, "z"), "%s", why);
    cr_assert_eq(rl_topo_chan_count(&t, 1), 2);
    rl_topo_free(&t);

    /* the same through the file, placed by host names as rl_comm_create does */
    char path[] = "/tmp/rl_chan_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, two_rails, strlen(two_rails)), (ssize_t)strlen(two_rails));
    close(fd);
    const char *names[] = {"b", "a", "c"};
    char dev[3][32];
    cr_assert_eq(rl_topo_chan_devs_file(path, 3, names, 1, 3, dev, why, sizeof(why)), RL_OK, "%s", why);
    cr_assert_str_eq(dev[0], "d0");
    cr_assert_str_eq(dev[1], "d1");
    cr_assert_str_eq(dev[2], "d0");
    const char *lone[] = {"z", "a", "b"};
    cr_assert_eq(rl_topo_chan_devs_file(path, 3, lone, 0, 2, dev, why, sizeof(why)), RL_ERR_CONFIG);
    const char *unknown[] = {"a", "q", "b"};
    cr_assert_eq(rl_topo_chan_devs_file(path, 3, unknown, 0, 2, dev, why, sizeof(why)), RL_ERR_CONFIG);
    unlink(path);
}

/* Two ranks on hosts of four rails (shuffled hosts): every hop between
 * hosts that the plan keeps on one rail has the same rail at both ends in
 * every channel, and the
 * channels of a rank use each of the NICs it owns equally often. */
Test(chan, hops_between_hosts_stay_on_one_rail)
{
    rl_topo_gen_t g;
    rl_topo_gen_defaults(&g);
    g.rails = 4, g.ranks_per_host = 2, g.ranks = 2 * 7, g.hosts_per_leaf = 4, g.shuffle = 3;
    rl_topo_t t;
    cr_assert_eq(rl_topo_gen_rail(&g, &t, err, sizeof(err)), RL_OK, "%s", err);
    rl_topo_plan_t p;
    cr_assert_eq(rl_topo_plan(&t, 0, &p, err, sizeof(err)), RL_OK, "%s", err);
    int n = t.nranks, nch = rl_topo_chan_count(&t, p.nrings);
    cr_assert_eq(nch, 2 * p.nrings);
    int *nic = malloc(sizeof(int) * (size_t)n * (size_t)nch), used[64] = {0}, aligned = 0;
    char why[128];
    for (int r = 0; r < n; r++)
        cr_assert_eq(rl_topo_chan_nics(&t, r, nch, nic + r * nch, why, sizeof(why)), 2, "%s", why);
    for (int i = 0; i < nch; i++) {
        const int *o = p.order + (i % p.nrings) * n;
        for (int k = 0; k < n; k++) {
            int a = o[k], b = o[(k + 1) % n];
            /* where the plan's own hop stays on a rail (with 7 hosts, all but the one closing the ring) */
            if (t.place[a].host != t.place[b].host &&
                t.nics[t.place[a].nic].rail == t.nics[t.place[b].nic].rail && ++aligned)
                cr_assert_eq(t.nics[nic[a * nch + i]].rail, t.nics[nic[b * nch + i]].rail, "channel %d: %d -> %d", i, a,
                             b);
        }
    }
    cr_assert_eq(aligned, nch * 6, "%d hops between hosts on one rail", aligned);
    for (int i = 0; i < nch; i++)
        used[t.nics[nic[0 * nch + i]].rail]++;
    int owned = 0;
    for (int rail = 0; rail < 4; rail++) {
        cr_assert(used[rail] == 0 || used[rail] == nch / 2, "rail %d used by %d channels of rank 0", rail, used[rail]);
        owned += used[rail] > 0;
    }
    cr_assert_eq(owned, 2);
    free(nic);
    rl_topo_plan_free(&p);
    rl_topo_free(&t);
}
