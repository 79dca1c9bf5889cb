/*
 * ringlet-tune: measure the cost model's parameters on the fabric it runs
 * on and write them to a tuning file (RINGLET_TUNE_FILE).
 *
 * gamma (time per reduced byte) is the float32 sum kernel timed on this
 * host. The two latencies (an eager message, rd's; a rendezvous one, the
 * ring's and point to point's) and beta (per byte) are fitted to
 * all-reduces run with each algorithm forced through RINGLET_ALGOS: every
 * algorithm's cost is linear in the parameters, so the fit is a
 * least-squares solve over all (algorithm, size) points, weighted so that
 * relative errors count alike. Each algorithm is then fitted alone, in size
 * bands (latencies over the small sizes, beta per band: a buffer set in the
 * caches moves faster than one streamed from memory). With --check it then measures every algorithm at
 * other sizes (8 B to --check-max) and prints predicted against measured
 * time, the median absolute error, and how much slower the model's choice
 * is than the fastest measured algorithm.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coll/model.h"
#include "core/comm.h"

static const char usage_text[] =
    "usage: ringlet-tune -o FILE [--seconds S] [--check] [--check-max BYTES] [--check-rounds R] [-v]\n"
    "                    [-h|--help]\n"
    "Run under a launcher, e.g. ringlet-run -n 4 -- ringlet-tune -o tune.txt\n"
    "  -o FILE          tuning file to write; an existing one keeps its entries for\n"
    "                   other transports and group sizes (this one's is replaced)\n"
    "  --seconds S      time budget of the measurement (default 30, at most 60);\n"
    "                   sizes past it are skipped on every rank alike\n"
    "  --check          then measure each algorithm at other sizes and compare with\n"
    "                   the fitted model (median error, cost of the model's choices),\n"
    "                   and print the measured winners as a RINGLET_ALGOS table\n"
    "  --check-max B    largest size --check measures (default 64M)\n"
    "  --check-rounds R --check measures every algorithm R times (1-9, default 3),\n"
    "                   the algorithms' order rotating, and takes each point's median\n"
    "  -v               print every calibration point (algorithm, size, median time)\n"
    "Use it with RINGLET_TUNE_FILE=FILE; ringlet-info --algos shows the result.\n";

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void die(rl_comm_t comm, const char *what, rl_status_t st)
{
    fprintf(stderr, "ringlet-tune: %s: %s: %s\n", what, rl_status_name(st), rl_comm_last_error(comm));
    exit(1);
}

/* Median over 5 batches of the slowest rank's time per all-reduce. */
static double time_allreduce(rl_comm_t comm, float *buf, size_t count, double budget_us)
{
    rl_status_t st;
    for (int i = 0; i < 3; i++) /* warm-up: a new communicator's first calls fault pages in */
        if ((st = rl_all_reduce(comm, buf, buf, count, RL_FLOAT32, RL_SUM)) != RL_OK)
            die(comm, "all_reduce", st);
    double t0 = now_us();
    if ((st = rl_all_reduce(comm, buf, buf, count, RL_FLOAT32, RL_SUM)) != RL_OK)
        die(comm, "all_reduce", st);
    double one = now_us() - t0;
    rl_all_reduce(comm, &one, &one, 1, RL_FLOAT64, RL_MAX); /* every rank runs as many */
    /* then about 2 ms more of it, so the timed batches start warm */
    int warm = (int)(2000 / (one > 1 ? one : 1));
    for (int i = 0; i < (warm > 500 ? 500 : warm); i++)
        if ((st = rl_all_reduce(comm, buf, buf, count, RL_FLOAT32, RL_SUM)) != RL_OK)
            die(comm, "all_reduce", st);
    int iters = (int)(budget_us / 5 / (one > 1 ? one : 1));
    iters = iters < 1 ? 1 : iters > 1000 ? 1000 : iters;
    double batch[5];
    for (int b = 0; b < 5; b++) {
        rl_barrier(comm);
        t0 = now_us();
        for (int i = 0; i < iters; i++)
            if ((st = rl_all_reduce(comm, buf, buf, count, RL_FLOAT32, RL_SUM)) != RL_OK)
                die(comm, "all_reduce", st);
        batch[b] = (now_us() - t0) / iters;
        rl_all_reduce(comm, &batch[b], &batch[b], 1, RL_FLOAT64, RL_MAX);
    }
    qsort(batch, 5, sizeof(double), cmp_double);
    return batch[2];
}

/* gamma: microseconds per byte of the float32 sum kernel, out of cache. */
static double measure_gamma(void)
{
    size_t n = (8u << 20) / sizeof(float);
    float *a = calloc(n, sizeof(float)), *b = calloc(n, sizeof(float)), *d = calloc(n, sizeof(float));
    rl_reduce_fn fn = rl_reduce_lookup(RL_FLOAT32, RL_SUM);
    double t[5];
    for (int k = 0; k < 5; k++) {
        double t0 = now_us();
        fn(d, a, b, n);
        t[k] = (now_us() - t0) / (double)(n * sizeof(float));
    }
    free(a), free(b), free(d);
    qsort(t, 5, sizeof(double), cmp_double);
    return t[2];
}

typedef rl_fit_point_t point_t;

/* Create a communicator whose all-reduce always runs `algo`. */
static rl_comm_t comm_for(const char *algo)
{
    char tab[64];
    snprintf(tab, sizeof(tab), "all_reduce:0-:%s", algo);
    setenv("RINGLET_ALGOS", tab, 1);
    rl_comm_t comm;
    rl_status_t st = rl_comm_create(NULL, &comm);
    if (st != RL_OK)
        die(NULL, "rl_comm_create", st);
    return comm;
}

/* Each algorithm's share of the time budget (every rank stops at the
 * same size: the slowest rank's clock decides). */
static double share_us, deadline_us;

static int past_deadline(rl_comm_t comm)
{
    double late = now_us() > deadline_us;
    rl_all_reduce(comm, &late, &late, 1, RL_FLOAT64, RL_MAX);
    return late > 0;
}

/* Run `algo` at each size it can take, until the deadline; append the points. */
static int measure(const char *algo, const size_t *sizes, int nsizes, double budget_us, point_t *pts, int npts)
{
    rl_comm_t comm = comm_for(algo);
    deadline_us = now_us() + share_us;
    const rl_algo_t *a = rl_algo_find(algo, RL_COLL_ALL_REDUCE);
    float *buf = calloc(sizes[nsizes - 1] / sizeof(float) + 1, sizeof(float));
    for (int i = 0; i < nsizes && !past_deadline(comm); i++) {
        rl_call_t call = {.coll = RL_COLL_ALL_REDUCE, .count = sizes[i] / 4, .dtype = RL_FLOAT32, .bytes = sizes[i]};
        if (rl_select(comm, &call) != a)
            continue; /* not usable here (group size, settings) */
        pts[npts++] = (point_t){a, sizes[i], time_allreduce(comm, buf, sizes[i] / 4, budget_us)};
    }
    free(buf);
    rl_comm_destroy(comm);
    return npts;
}

/* The tuning file's key: the transport's name up to its details; a
 * communicator of several transports describes the network one first
 * ("ofi:tcp;ofi_rxm/eth0 (2 peers) + shm:... (1 on this host)"). */
static void transport_key(rl_comm_t comm, char *key, size_t len)
{
    const char *d = rl_comm_transport(comm);
    size_t n = strcspn(d, "; ");
    if (!strncmp(d, "verbs", 5))
        n = 5;
    else if (!strncmp(d, "shm:", 4))
        n = 4; /* ringlet's own shared memory, whatever its ring geometry */
    snprintf(key, len, "%.*s", (int)n, d);
}

/* Replace the file's entries for (key, nranks), every algorithm's, by ents. */
static void write_file(const char *path, const char *key, int nranks, const rl_tune_entry_t *ents, int n)
{
    rl_tune_t t = {0};
    char err[256];
    FILE *f = fopen(path, "r");
    if (f) {
        fclose(f);
        if (rl_tune_read(path, &t, err, sizeof(err)) != RL_OK) {
            fprintf(stderr, "ringlet-tune: %s (not overwritten)\n", err);
            exit(1);
        }
    }
    int kept = 0;
    for (int k = 0; k < t.n; k++)
        if (!(t.e[k].nranks == nranks && !strcmp(t.e[k].transport, key)))
            t.e[kept++] = t.e[k];
    t.n = kept;
    for (int i = 0; i < n && t.n < RL_TUNE_MAX; i++)
        t.e[t.n++] = ents[i];
    if (!(f = fopen(path, "w")) || rl_tune_write(f, &t) != 0 || fclose(f) != 0) {
        fprintf(stderr, "ringlet-tune: cannot write %s\n", path);
        exit(1);
    }
}

static const char *const algos[] = {"rd", "rhd", "ring", "dbt"};
#define NALG 4
/* Size bands of each algorithm's calibration, from buffer sets that fit
 * the caches to ones that stream from memory (a band's points include both
 * of its ends; on this VM's 32 MiB L3 the cost per byte of a 2-rank ring
 * doubled from 8 to 32 MiB). */
static const size_t band_from[] = {0, 1 << 20, 4 << 20, 16 << 20};
#define NBANDS 4

#define MAX_ROUNDS 9
#define CAL_ROUNDS 3 /* the calibration's rounds (--check has its own) */

/* Every algorithm at every size, rounds times, the algorithms' order
 * rotating from round to round; each point the median of its rounds (a
 * single sitting of one algorithm can catch a passing disturbance that
 * the others miss, and then decide the "fastest"). */
static int measure_rounds(const size_t *sizes, int ns, double budget_us, int rounds, point_t *pts)
{
    static point_t all[MAX_ROUNDS][16 * NALG];
    int n[MAX_ROUNDS] = {0};
    for (int k = 0; k < rounds; k++)
        for (int j = 0; j < NALG; j++)
            n[k] = measure(algos[(j + k) % NALG], sizes, ns, budget_us, all[k], n[k]);
    int np = 0;
    for (int i = 0; i < n[0]; i++) {
        double t[MAX_ROUNDS];
        int m = 0;
        for (int k = 0; k < rounds; k++)
            for (int q = 0; q < n[k]; q++)
                if (all[k][q].algo == all[0][i].algo && all[k][q].bytes == all[0][i].bytes)
                    t[m++] = all[k][q].us;
        qsort(t, (size_t)m, sizeof(double), cmp_double);
        pts[np] = all[0][i];
        pts[np++].us = m % 2 ? t[m / 2] : (t[m / 2 - 1] + t[m / 2]) / 2;
    }
    return np;
}

/* The measured winners as a selection table, for where the model's lines
 * cannot place a crossover (two algorithms closer than the noise between
 * sittings): a range changes hands halfway (geometrically) between sizes. */
static void print_winners(const size_t *sizes, const char *const *won, int ns)
{
    char tab[512];
    int pos = snprintf(tab, sizeof(tab), "all_reduce:0-");
    const char *cur = NULL;
    for (int s = 0; s < ns && pos < (int)sizeof(tab) - 64; s++) {
        if (!won[s] || (cur && !strcmp(cur, won[s])))
            continue;
        if (cur) /* sizes are 4x apart: the midpoint is 2x the last one */
            pos += snprintf(tab + pos, sizeof(tab) - (size_t)pos, "%zu:%s,%zu-", 2 * sizes[s - 1], cur,
                            2 * sizes[s - 1]);
        cur = won[s];
    }
    if (!cur)
        return;
    snprintf(tab + pos, sizeof(tab) - (size_t)pos, ":%s", cur);
    printf("\nthe measured winners as a table: RINGLET_ALGOS=\"%s\"\n", tab);
}

static void check(rl_comm_t probe, size_t max_bytes, double budget_us, int rounds)
{
    size_t sizes[16];
    int ns = 0;
    for (size_t b = 8; b <= max_bytes && ns < 16; b *= 4)
        sizes[ns++] = b;
    point_t pts[16 * NALG];
    int np = measure_rounds(sizes, ns, budget_us, rounds, pts);
    if (probe->rank != 0)
        return;
    double err[16 * NALG], worst = 1;
    int ne = 0, nsl = 0;
    printf("%12s %8s %12s %12s %8s\n", "size(B)", "algo", "measured(us)", "model(us)", "error");
    for (int i = 0; i < np; i++) {
        rl_call_t call = {.coll = RL_COLL_ALL_REDUCE, .count = pts[i].bytes / 4, .dtype = RL_FLOAT32,
                          .bytes = pts[i].bytes};
        double pred = pts[i].algo->cost(probe, &call, rl_model_for(probe, pts[i].algo, pts[i].bytes));
        err[ne++] = fabs(pred - pts[i].us) / pts[i].us;
        printf("%12zu %8s %12.1f %12.1f %7.1f%%\n", pts[i].bytes, pts[i].algo->name, pts[i].us, pred,
               100 * (pred - pts[i].us) / pts[i].us);
    }
    printf("\n%12s %10s %10s %10s\n", "size(B)", "fastest", "model's", "slower by");
    const char *won[16] = {0};
    for (int s = 0; s < ns; s++) {
        const point_t *best = NULL, *chosen = NULL, *cheap = NULL;
        double cheap_t = 0;
        for (int i = 0; i < np; i++) {
            if (pts[i].bytes != sizes[s])
                continue;
            rl_call_t call = {.coll = RL_COLL_ALL_REDUCE, .bytes = sizes[s]};
            double pred = pts[i].algo->cost(probe, &call, rl_model_for(probe, pts[i].algo, pts[i].bytes));
            if (!best || pts[i].us < best->us)
                best = &pts[i];
            if (!cheap || pred < cheap_t)
                cheap = &pts[i], cheap_t = pred;
        }
        chosen = cheap;
        if (!best)
            continue;
        double r = chosen->us / best->us;
        won[s] = best->algo->name;
        nsl++;
        worst = r > worst ? r : worst;
        printf("%12zu %10s %10s %9.1f%%\n", sizes[s], best->algo->name, chosen->algo->name, 100 * (r - 1));
    }
    print_winners(sizes, won, ns);
    qsort(err, (size_t)ne, sizeof(double), cmp_double);
    printf("\nmodel check over %d ranks on %s: median absolute error %.1f%% over %d points; "
           "the model's choice is at most %.1f%% slower than the fastest measured (%d sizes)\n",
           probe->nranks, probe->desc, ne ? 100 * err[ne / 2] : 0, ne, 100 * (worst - 1), nsl);
}

int main(int argc, char **argv)
{
    const char *out = NULL;
    double seconds = 30;
    int do_check = 0, verbose = 0, check_rounds = 3;
    size_t check_max = 64u << 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--check"))
            do_check = 1;
        else if (!strcmp(argv[i], "-v"))
            verbose = 1;
        else if (!strcmp(argv[i], "--check-rounds") && i + 1 < argc && atoi(argv[i + 1]) >= 1 &&
                 atoi(argv[i + 1]) <= MAX_ROUNDS)
            check_rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--check-max") && i + 1 < argc && rl_parse_size(argv[i + 1], &check_max) == 0)
            i++;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else {
            fprintf(stderr, "ringlet-tune: bad option %s (try --help)\n", argv[i]);
            return 2;
        }
    }
    if (!out || !(seconds > 0) || seconds > 60) {
        fprintf(stderr, "ringlet-tune: -o FILE is required and --seconds must be in (0, 60] (try --help)\n");
        return 2;
    }
    unsetenv("RINGLET_TUNE_FILE"); /* measure, do not read */
    double t_start = now_us();
    /* calibration in rounds too: one pass catches a passing disturbance
     * (rd, measured first, once fitted 1.55 us of latency against 0.44) */
    share_us = seconds * 1e6 * 0.9 / (NALG * CAL_ROUNDS);
    double gamma = measure_gamma();
    static const size_t sizes[] = {16, 256, 4096, 65536, 1 << 20, 2 << 20, 4 << 20, 8 << 20, 16 << 20, 32 << 20};
    int ns = (int)(sizeof(sizes) / sizeof(sizes[0]));
    point_t pts[NALG * 16];
    double budget = seconds * 1e6 * 0.8 / (NALG * ns * CAL_ROUNDS);
    int np = measure_rounds(sizes, ns, budget, CAL_ROUNDS, pts);
    rl_comm_t real = comm_for("ring");
    rl_all_reduce(real, &gamma, &gamma, 1, RL_FLOAT64, RL_MAX);
    char key[32];
    transport_key(real, key, sizeof(key));
    /* the cost functions read only the settings and the group: a copy
     * serves once the communicator is gone (one at a time shares the
     * rendezvous address) */
    struct rl_comm *probe = malloc(sizeof(*probe));
    memcpy(probe, real, sizeof(*probe));
    rl_comm_destroy(real);
    if (verbose && probe->rank == 0)
        for (int i = 0; i < np; i++)
            printf("ringlet-tune: calibration %-5s %10zu B %12.2f us\n", pts[i].algo->name, pts[i].bytes, pts[i].us);
    rl_model_t m = {.gamma_us_per_b = gamma};
    rl_model_fit(probe, pts, np, &m, 0);
    /* then each algorithm alone: its protocol's latency and bandwidth, in
     * size bands (latencies from the first, beta per band) */
    rl_tune_entry_t ents[1 + NALG * NBANDS];
    int ne = 0;
    ents[ne++] = (rl_tune_entry_t){.nranks = probe->nranks, .m = m};
    for (int a = 0; a < NALG; a++) {
        rl_model_t base = {.gamma_us_per_b = gamma};
        for (int b = 0; b < NBANDS; b++) {
            size_t lo = band_from[b], hi = b + 1 < NBANDS ? band_from[b + 1] : SIZE_MAX;
            point_t mine[16];
            int k = 0;
            for (int i = 0; i < np && k < 16; i++)
                if (!strcmp(pts[i].algo->name, algos[a]) && pts[i].bytes >= lo && pts[i].bytes <= hi)
                    mine[k++] = pts[i];
            if (k < (b ? 2 : 3)) /* too few sizes: latency from bandwidth, or a band's slope */
                break;
            rl_model_t mb = base;
            rl_model_fit(probe, mine, k, &mb, b > 0);
            if (b == 0)
                base = mb;
            ents[ne] = (rl_tune_entry_t){.nranks = probe->nranks, .m = mb, .from_bytes = lo};
            snprintf(ents[ne++].algo, sizeof(ents[0].algo), "%s", algos[a]);
        }
    }
    for (int i = 0; i < ne; i++)
        snprintf(ents[i].transport, sizeof(ents[i].transport), "%s", key);
    if (probe->rank == 0) {
        write_file(out, key, probe->nranks, ents, ne);
        printf("ringlet-tune: %s, %d ranks: alpha %.2f us eager, %.2f us rendezvous, beta %.4f ns/B (%.2f GB/s), "
               "gamma %.4f ns/B from %d points in %.1f s -> %s\n",
               key, probe->nranks, m.alpha_us, m.alpha_rdv_us, m.beta_us_per_b * 1e3,
               m.beta_us_per_b > 0 ? 1e-3 / m.beta_us_per_b : 0, m.gamma_us_per_b * 1e3, np,
               (now_us() - t_start) / 1e6, out);
        for (int i = 1; i < ne; i++)
            printf("ringlet-tune:   %-5s alone from %5zu KiB: alpha %.2f us eager, %.2f us rendezvous, beta %.4f ns/B "
                   "(%.2f GB/s)\n",
                   ents[i].algo, (size_t)(ents[i].from_bytes >> 10), ents[i].m.alpha_us, ents[i].m.alpha_rdv_us,
                   ents[i].m.beta_us_per_b * 1e3, ents[i].m.beta_us_per_b > 0 ? 1e-3 / ents[i].m.beta_us_per_b : 0);
        fflush(stdout);
    }
    if (do_check) {
        share_us = 600e6; /* the check is not part of the budget */
        probe->sel.tune.n = 0;
        for (int i = 0; i < ne; i++)
            probe->sel.tune.e[probe->sel.tune.n++] = ents[i];
        rl_model_pick(probe); /* as a communicator reading the file would */
        check(probe, check_max, 2e5, check_rounds);
    }
    free(probe);
    return 0;
}
