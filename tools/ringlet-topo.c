/* ringlet-topo: write fabric descriptions and plan rings on them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "topo/topo.h"

static const char *usage_main =
    "usage: ringlet-topo gen fat-tree|rail|torus|dragonfly|switch [options] --ranks N -o FILE\n"
    "       ringlet-topo import slurm topology.conf [--gbps G] [--nccl-xml FILE] -o FILE\n"
    "       ringlet-topo plan FILE [--rings K] [--json OUT]\n"
    "\n"
    "Fabric files are ringlet's JSON (hosts with NICs, switches with tiers, links\n"
    "with Gb/s and latency, placement of ranks on hosts and NICs).\n"
    "`ringlet-topo gen --help` and `ringlet-topo plan --help` list the options.\n";

static const char *usage_gen =
    "usage: ringlet-topo gen KIND [options] --ranks N -o FILE\n"
    "  KIND: fat-tree (k-ary Clos), rail (rail-optimized: one leaf per rail per\n"
    "        unit), torus, dragonfly, switch (every host on one switch)\n"
    "common:\n"
    "  --ranks N            ranks (default 64)\n"
    "  --ranks-per-host R   ranks per host (default 1; rail: one per rail)\n"
    "  --nics-per-host M    NICs per host (fat-tree, dragonfly, switch; default 1)\n"
    "  --gbps G             link speed in Gb/s (default 400)\n"
    "  --lat-ns L           link latency (default 500)\n"
    "  --intra-gbps G       bandwidth inside a host, shared by its ranks (default 3600)\n"
    "  --oversub X          leaf down:up ports (fat-tree, rail; default 1)\n"
    "  --shuffle SEED       place hosts in a random order (a scheduler's allocation)\n"
    "  -o FILE              output (- for stdout)\n"
    "fat-tree: --tiers 2|3 (default 2), --radix K (default: smallest that fits)\n"
    "rail:     --rails R (default 8), --hosts-per-leaf H (default 32),\n"
    "          --nccl-xml FILE (NICs, rails and planes of a host from NCCL's topology XML)\n"
    "torus:    --dims AxB or AxBxC (one host per node)\n"
    "dragonfly: --routers A (per group, default 4), --hosts-per-router P (2),\n"
    "          --globals H (global links per router, 2), --groups G (default: enough)\n";

static const char *usage_plan =
    "usage: ringlet-topo plan FILE [--rings K] [--json OUT]\n"
    "Plans rings (Hamiltonian cycles over the ranks) on the fabric in FILE and\n"
    "prints the most-loaded link for the rank-order ring, the planned rings and\n"
    "the lower bound, as load / Gb/s (ring traffic through the link over its\n"
    "speed; 1/load is the rate each ring flow gets there).\n"
    "  --rings K    at most K rings (default: one per rail, 2d on a dD torus)\n"
    "  --order      print each ring on a line as RINGLET_RING_ORDER wants it (ring 0\n"
    "               first, the one RINGLET_RING_ORDER would take), nothing else\n"
    "  --nics       print only the NIC of each channel (channel i runs on ring i\n"
    "               mod K), as rl_comm_create pins them with RINGLET_TOPO_FILE on\n"
    "               hosts of several NICs (nothing on one-NIC fabrics)\n"
    "  --json OUT   also write the plan and its loads as JSON\n";

static int die(const char *msg)
{
    fprintf(stderr, "ringlet-topo: %s\n", msg);
    return 1;
}

static int parse_dims(const char *s, rl_topo_gen_t *g)
{
    g->ndims = 0;
    while (*s && g->ndims < 3) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 2 || v > 4096)
            return -1;
        g->dims[g->ndims++] = (int)v;
        s = end;
        if (*s == 'x' || *s == 'X')
            s++;
        else if (*s)
            return -1;
    }
    return *s || g->ndims < 2 ? -1 : 0;
}

static int num_arg(int argc, char **argv, int *i, double lo, double hi, double *out)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "ringlet-topo: %s needs a value\n", argv[*i]);
        return -1;
    }
    char *end;
    double v = strtod(argv[++*i], &end);
    if (*end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "ringlet-topo: %s %s: expected a number in [%g, %g]\n", argv[*i - 1], argv[*i], lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int cmd_gen(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage_gen, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *kind = argv[1], *out = NULL, *xml = NULL;
    rl_topo_gen_t g;
    rl_topo_gen_defaults(&g);
    rl_topo_nic_tmpl_t tmpl[64];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        double v = 0;
        int bad = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_gen, stdout);
            return 0;
        } else if (!strcmp(a, "-o") && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(a, "--dims") && i + 1 < argc) {
            if (parse_dims(argv[++i], &g))
                return die("--dims: expected AxB or AxBxC, each in [2, 4096]");
        } else if (!strcmp(a, "--nccl-xml") && i + 1 < argc) {
            xml = argv[++i];
        } else if (!strcmp(a, "--ranks")) {
            bad = num_arg(argc, argv, &i, 1, 1 << 22, &v) || (g.ranks = (int)v, 0);
        } else if (!strcmp(a, "--ranks-per-host")) {
            bad = num_arg(argc, argv, &i, 1, 1024, &v) || (g.ranks_per_host = (int)v, 0);
        } else if (!strcmp(a, "--nics-per-host")) {
            bad = num_arg(argc, argv, &i, 1, 64, &v) || (g.nics_per_host = (int)v, 0);
        } else if (!strcmp(a, "--gbps")) {
            bad = num_arg(argc, argv, &i, 1e-3, 1e6, &g.gbps);
        } else if (!strcmp(a, "--lat-ns")) {
            bad = num_arg(argc, argv, &i, 0, 1e9, &g.lat_ns);
        } else if (!strcmp(a, "--intra-gbps")) {
            bad = num_arg(argc, argv, &i, 1e-3, 1e7, &g.intra_gbps);
        } else if (!strcmp(a, "--oversub")) {
            bad = num_arg(argc, argv, &i, 1, 1024, &g.oversub);
        } else if (!strcmp(a, "--shuffle")) {
            bad = num_arg(argc, argv, &i, 1, 1e15, &v) || (g.shuffle = (uint64_t)v, 0);
        } else if (!strcmp(a, "--tiers")) {
            bad = num_arg(argc, argv, &i, 2, 3, &v) || (g.tiers = (int)v, 0);
        } else if (!strcmp(a, "--radix")) {
            bad = num_arg(argc, argv, &i, 4, 4096, &v) || (g.radix = (int)v, 0);
        } else if (!strcmp(a, "--rails")) {
            bad = num_arg(argc, argv, &i, 1, 64, &v) || (g.rails = (int)v, 0);
        } else if (!strcmp(a, "--hosts-per-leaf")) {
            bad = num_arg(argc, argv, &i, 1, 1 << 16, &v) || (g.hosts_per_leaf = (int)v, 0);
        } else if (!strcmp(a, "--routers")) {
            bad = num_arg(argc, argv, &i, 1, 1024, &v) || (g.routers = (int)v, 0);
        } else if (!strcmp(a, "--hosts-per-router")) {
            bad = num_arg(argc, argv, &i, 1, 1024, &v) || (g.hosts_per_router = (int)v, 0);
        } else if (!strcmp(a, "--globals")) {
            bad = num_arg(argc, argv, &i, 1, 1024, &v) || (g.globals = (int)v, 0);
        } else if (!strcmp(a, "--groups")) {
            bad = num_arg(argc, argv, &i, 1, 1 << 20, &v) || (g.groups = (int)v, 0);
        } else {
            fprintf(stderr, "ringlet-topo gen: unknown or incomplete option %s (see --help)\n", a);
            return 2;
        }
        if (bad)
            return 2;
    }
    if (!out)
        return die("gen: -o FILE is required");
    char err[512] = "";
    if (xml) {
        char *text;
        size_t len;
        if (rl_read_file(xml, &text, &len, err, sizeof(err)) != RL_OK)
            return die(err);
        rl_status_t st = rl_topo_parse_nccl(text, len, xml, tmpl, 64, &g.n_nic_tmpl, err, sizeof(err));
        free(text);
        if (st != RL_OK)
            return die(err);
        g.nic_tmpl = tmpl;
    }
    rl_topo_t t;
    rl_status_t st;
    if (!strcmp(kind, "fat-tree"))
        st = rl_topo_gen_fat_tree(&g, &t, err, sizeof(err));
    else if (!strcmp(kind, "rail"))
        st = rl_topo_gen_rail(&g, &t, err, sizeof(err));
    else if (!strcmp(kind, "torus"))
        st = rl_topo_gen_torus(&g, &t, err, sizeof(err));
    else if (!strcmp(kind, "dragonfly"))
        st = rl_topo_gen_dragonfly(&g, &t, err, sizeof(err));
    else if (!strcmp(kind, "switch"))
        st = rl_topo_gen_switch(&g, &t, err, sizeof(err));
    else
        return fprintf(stderr, "ringlet-topo gen: unknown kind %s (see --help)\n", kind), 2;
    if (st == RL_OK)
        st = rl_topo_save(&t, out, err, sizeof(err));
    if (st == RL_OK && strcmp(out, "-"))
        printf("%s: %s: %d ranks, %d hosts, %d switches, %d links\n", out, t.name, t.nranks, t.nhosts, t.nsw, t.nlinks);
    rl_topo_free(&t);
    return st == RL_OK ? 0 : die(err[0] ? err : "out of memory");
}

static int cmd_import(int argc, char **argv)
{
    if (argc < 3 || !strcmp(argv[1], "--help") || strcmp(argv[1], "slurm")) {
        fputs(usage_main, argc < 3 ? stderr : stdout);
        return argc < 3 ? 2 : strcmp(argv[1], "--help") ? 2 : 0;
    }
    const char *in = argv[2], *out = NULL;
    double gbps = 100;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--gbps")) {
            if (num_arg(argc, argv, &i, 1e-3, 1e6, &gbps))
                return 2;
        } else
            return fprintf(stderr, "ringlet-topo import: unknown option %s\n", argv[i]), 2;
    }
    if (!out)
        return die("import: -o FILE is required");
    char err[512], *text;
    size_t len;
    if (rl_read_file(in, &text, &len, err, sizeof(err)) != RL_OK)
        return die(err);
    rl_topo_t t;
    rl_status_t st = rl_topo_parse_slurm(text, len, in, gbps, &t, err, sizeof(err));
    free(text);
    if (st != RL_OK)
        return die(err);
    st = rl_topo_save(&t, out, err, sizeof(err));
    if (st == RL_OK && strcmp(out, "-"))
        printf("%s: %d hosts, %d switches, %d links\n", out, t.nhosts, t.nsw, t.nlinks);
    rl_topo_free(&t);
    return st == RL_OK ? 0 : die(err);
}

/* The double binary tree all-reduce runs over the first ring's order:
 * its load on the plan's order against rank order. */
static void print_trees(rl_topo_t *t, const rl_topo_plan_t *p)
{
    int *ident = malloc(sizeof(int) * (size_t)t->nranks);
    rl_topo_loads_t lp = {0}, lr = {0};
    for (int i = 0; ident && i < t->nranks; i++)
        ident[i] = i;
    if (ident && t->nranks > 1 && rl_topo_tree_loads(t, p->order, &lp) == RL_OK &&
        rl_topo_tree_loads(t, ident, &lr) == RL_OK) {
        char w1[300], w2[300];
        rl_topo_res_name(t, lp.argmax, w1, sizeof(w1));
        rl_topo_res_name(t, lr.argmax, w2, sizeof(w2));
        printf("# trees (double binary, each carrying half, over ring 0's order): max load/Gb/s, link hops\n");
        printf("%-12s %14.6g %16s %12.1f  %s\n", "tree-rank", lr.max_util, "", lr.hops, w2);
        printf("%-12s %14.6g %16s %12.1f  %s\n", "tree-planned", lp.max_util, "", lp.hops, w1);
    }
    rl_topo_loads_free(&lp);
    rl_topo_loads_free(&lr);
    free(ident);
}

static int cmd_plan(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage_plan, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *in = argv[1], *json = NULL;
    int rings = 0, order_only = 0, nics_only = 0;
    for (int i = 2; i < argc; i++) {
        double v;
        if (!strcmp(argv[i], "--json") && i + 1 < argc)
            json = argv[++i];
        else if (!strcmp(argv[i], "--order"))
            order_only = 1;
        else if (!strcmp(argv[i], "--nics"))
            nics_only = 1;
        else if (!strcmp(argv[i], "--rings")) {
            if (num_arg(argc, argv, &i, 1, 16, &v))
                return 2;
            rings = (int)v;
        } else
            return fprintf(stderr, "ringlet-topo plan: unknown option %s (see --help)\n", argv[i]), 2;
    }
    char err[512] = "";
    rl_topo_t t;
    struct timespec t0, t1, c0, c1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (rl_topo_load(in, &t, err, sizeof(err)) != RL_OK)
        return die(err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    double load_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    rl_topo_plan_t p;
    rl_status_t st = rl_topo_plan(&t, rings, &p, err, sizeof(err));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    double plan_s = (double)(t0.tv_sec - t1.tv_sec) + (double)(t0.tv_nsec - t1.tv_nsec) * 1e-9;
    double plan_cpu = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) * 1e-9;
    if (st == RL_OK) {
        if (nics_only) {
            rl_topo_chan_print(&t, &p, stdout);
        } else if (order_only) {
            for (int k = 0; k < p.nrings; k++) {
                for (int i = 0; i < p.nranks; i++)
                    printf("%s%d", i ? "," : "", p.order[(size_t)k * (size_t)p.nranks + (size_t)i]);
                printf("\n");
            }
        } else {
            rl_topo_plan_print(&t, &p, stdout);
            print_trees(&t, &p);
            printf("# read in %.3f s, planned and evaluated in %.3f s (%.3f s CPU)\n", load_s, plan_s, plan_cpu);
        }
        if (json)
            st = rl_topo_plan_json(&t, &p, json, err, sizeof(err));
        rl_topo_plan_free(&p);
    }
    rl_topo_free(&t);
    return st == RL_OK ? 0 : die(err);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(usage_main, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "gen"))
        return cmd_gen(argc - 1, argv + 1);
    if (!strcmp(argv[1], "plan"))
        return cmd_plan(argc - 1, argv + 1);
    if (!strcmp(argv[1], "import"))
        return cmd_import(argc - 1, argv + 1);
    fprintf(stderr, "ringlet-topo: unknown command %s\n%s", argv[1], usage_main);
    return 2;
}
