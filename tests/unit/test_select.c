/*
 * The selection table: defaults reproduce the choices the older variables
 * made, RINGLET_ALGOS overrides them per collective and size, an unusable
 * choice falls back to the next candidate, "auto" follows the cost model,
 * and ranks with different tables get different hashes. Built on a
 * communicator in memory (no transport): selection depends only on the
 * settings and the group.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coll/model.h"
#include "core/comm.h"

static struct rl_comm *comm_with(int nranks, const char *env)
{
    static const char *vars[] = {"RINGLET_ALGOS", "RINGLET_ALLREDUCE_ALGO", "RINGLET_RD_MAX_BYTES",
                                 "RINGLET_RHD_MAX_BYTES", "RINGLET_P2P", "RINGLET_TUNE_FILE"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", env ? env : "");
    for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
        char *eq = strchr(tok, '=');
        cr_assert(eq);
        *eq = '\0';
        setenv(tok, eq + 1, 1);
    }
    struct rl_comm *c = calloc(1, sizeof(*c));
    char err[512];
    cr_assert_eq(rl_config_load(&c->cfg, err, sizeof(err)), RL_OK, "%s", err);
    c->nranks = nranks;
    c->chunk_bytes = c->cfg.chunk_bytes;
    c->depth = c->cfg.pipeline_depth;
    rl_status_t st = rl_select_build(c, err, sizeof(err));
    cr_assert_eq(st, RL_OK, "%s", err);
    snprintf(c->desc, sizeof(c->desc), "ofi:tcp;ofi_rxm");
    rl_model_pick(c);
    return c;
}

static const char *pick(struct rl_comm *c, rl_coll_t k, size_t bytes)
{
    rl_call_t call = {.coll = k, .count = bytes / 4, .dtype = RL_FLOAT32, .bytes = bytes};
    return rl_select(c, &call)->name;
}

Test(select, defaults_are_the_older_choices)
{
    struct rl_comm *c = comm_with(8, NULL);
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, 8), "rd");
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, 64 << 10), "rd"); /* RD_MAX_BYTES is inclusive */
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, (64 << 10) + 4), "rhd");
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, 16 << 20), "rhd");
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, (16 << 20) + 4), "ring");
    cr_assert_str_eq(pick(c, RL_COLL_BARRIER, 4), "rd");
    cr_assert_str_eq(pick(c, RL_COLL_ALL_GATHER, 4), "ring");
    cr_assert_str_eq(pick(c, RL_COLL_BROADCAST, 4), "tree");
    cr_assert_str_eq(pick(c, RL_COLL_BROADCAST, 256 << 10), "tree");
    cr_assert_str_eq(pick(c, RL_COLL_BROADCAST, (256 << 10) + 4), "chain");
    cr_assert_str_eq(pick(c, RL_COLL_REDUCE, 4), "chain");
    cr_assert_str_eq(pick(c, RL_COLL_ALLTOALL, 4), "bruck");
    cr_assert_str_eq(pick(c, RL_COLL_ALLTOALL, 8 << 10), "pairwise");
    free(c);
}

/* Every rank on one host: the direct shared-memory algorithm comes first
 * (a communicator without a bootstrap stands for one whose set-up agreed;
 * a real one also needs every rank to have mapped every segment). */
Test(select, one_host_uses_direct)
{
    struct rl_comm *c = comm_with(4, NULL);
    c->nhosts = 1;
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, 8), "direct");
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, 64 << 20), "direct");
    cr_assert_str_eq(pick(c, RL_COLL_BARRIER, 4), "direct");
    cr_assert_str_eq(pick(c, RL_COLL_BROADCAST, 4), "tree"); /* direct only when asked for */
    c->nhosts = 2;
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, 8), "rd");
    free(c);
    /* two ranks: direct for small messages only */
    c = comm_with(2, NULL);
    c->nhosts = 1;
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, 4096), "direct");
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, 8192), "rd");
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, 1 << 20), "ring");
    free(c);
    c = comm_with(4, "RINGLET_ALLREDUCE_ALGO=rd");
    c->nhosts = 1;
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, 8), "rd"); /* an explicit choice stays */
    free(c);
}

Test(select, unusable_choices_fall_back)
{
    /* halving-doubling needs a power of two: 6 ranks fall back to the ring */
    struct rl_comm *c = comm_with(6, NULL);
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, 1 << 20), "ring");
    free(c);
    /* no point-to-point connections: neither eager nor halving-doubling */
    c = comm_with(8, "RINGLET_P2P=off");
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, 8), "ring");
    cr_assert_str_eq(pick(c, RL_COLL_BARRIER, 4), "ring");
    cr_assert_str_eq(pick(c, RL_COLL_BROADCAST, 4), "chain");
    free(c);
    c = comm_with(1, NULL);
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, 8), "ring");
    free(c);
}

Test(select, older_variables_map_onto_the_table)
{
    struct rl_comm *c = comm_with(8, "RINGLET_ALLREDUCE_ALGO=ring");
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, 8), "ring");
    cr_assert_str_eq(pick(c, RL_COLL_BARRIER, 4), "ring");
    free(c);
    c = comm_with(8, "RINGLET_ALLREDUCE_ALGO=rhd");
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, 8), "rhd");
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, 1 << 30), "rhd");
    free(c);
    c = comm_with(8, "RINGLET_ALLREDUCE_ALGO=rd RINGLET_RD_MAX_BYTES=1K");
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, 1024), "rd");
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, 2048), "ring");
    free(c);
    c = comm_with(8, "RINGLET_RHD_MAX_BYTES=1M");
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, 2 << 20), "ring");
    free(c);
}

Test(select, table_overrides_per_collective)
{
    struct rl_comm *c = comm_with(8, "RINGLET_ALGOS=all_reduce:0-1K:rd,1K-4M:ring,4M-:rhd;barrier:0-:ring");
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, 512), "rd");
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, 1024), "rd"); /* both ends included, first wins */
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, 2048), "ring");
    cr_assert_str_eq(pick(c, RL_COLL_ALL_REDUCE, 8 << 20), "rhd");
    cr_assert_str_eq(pick(c, RL_COLL_BARRIER, 4), "ring");
    free(c);
}

Test(select, auto_takes_the_cheapest_by_the_model)
{
    struct rl_comm *c = comm_with(8, "RINGLET_ALGOS=auto");
    rl_call_t small = {.coll = RL_COLL_ALL_REDUCE, .bytes = 8}, big = {.coll = RL_COLL_ALL_REDUCE, .bytes = 64 << 20};
    const rl_algo_t *s = rl_select(c, &small), *b = rl_select(c, &big);
    /* whatever it picks is the minimum over the usable candidates */
    for (int i = 0; i < rl_algo_count(); i++) {
        const rl_algo_t *a = rl_algo_at(i);
        if (!(a->colls & RL_COLL_BIT(RL_COLL_ALL_REDUCE)))
            continue;
        if (a->usable(c, &small))
            cr_assert_leq(s->cost(c, &small, &c->sel.model), a->cost(c, &small, &c->sel.model));
        if (a->usable(c, &big))
            cr_assert_leq(b->cost(c, &big, &c->sel.model), a->cost(c, &big, &c->sel.model));
    }
    cr_assert_str_eq(s->name, "rd");  /* log2(n) messages beat 2(n-1) at 8 bytes */
    cr_assert_str_neq(b->name, "rd"); /* and it cannot carry 64 MiB */
    free(c);
}

Test(select, different_tables_hash_differently)
{
    struct rl_comm *a = comm_with(4, NULL), *b = comm_with(4, "RINGLET_ALLREDUCE_ALGO=ring"),
                   *d = comm_with(4, "RINGLET_ALGOS=all_reduce:0-:direct,0-64K:rd,0-16M:rhd"), *e = comm_with(4, NULL);
    cr_assert_neq(a->sel.hash, b->sel.hash);
    /* the defaults also hold hier for communicators with ringlet's shm
     * inside hosts, which a written table cannot say */
    cr_assert_neq(a->sel.hash, d->sel.hash);
    cr_assert_eq(a->sel.hash, e->sel.hash);
    free(a), free(b), free(d), free(e);
}

static void bad_table(const char *algos, const char *want)
{
    setenv("RINGLET_ALGOS", algos, 1);
    struct rl_comm c;
    memset(&c, 0, sizeof(c));
    char err[512] = "";
    cr_assert_eq(rl_config_load(&c.cfg, err, sizeof(err)), RL_OK);
    c.nranks = 4;
    cr_assert_eq(rl_select_build(&c, err, sizeof(err)), RL_ERR_CONFIG, "%s accepted", algos);
    cr_assert(strstr(err, want), "'%s' does not say '%s'", err, want);
    unsetenv("RINGLET_ALGOS");
}

Test(select, bad_tables_are_named_errors)
{
    bad_table("broadcast:0-:bruck", "broadcast has no algorithm \"bruck\"");
    bad_table("broadcast:0-:nosuch", "RINGLET_ALGOS=broadcast:0-:nosuch");
    bad_table("all_gather:0-:rhd", "all_gather has no algorithm \"rhd\"");
    bad_table("all_reduce:4M-1M:ring", "bad size range");
    bad_table("all_reduce:0-:", "bad algorithm name");
    bad_table("all_reduce", "unknown collective");
    bad_table("allreduce:0-:ring", "unknown collective");
    bad_table("all_reduce:0:ring", "expected lo-hi:algorithm");
    bad_table("all_reduce:0-1K:ring,1K-2K:ring,2K-3K:ring,3K-4K:ring,4K-5K:ring,5K-6K:ring,6K-7K:ring,7K-8K:ring,8K-:ring",
              "too many ranges");
}

Test(select, tuning_files)
{
    char path[] = "/tmp/rl_tune_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# comment\nofi:tcp 2 40 0.001 0.0002\nofi:tcp 8 60 0.002 0.0002\nofi:shm 4 2 0.0001 0.0001\n");
    fclose(f);
    rl_tune_t t;
    char err[256], src[160];
    cr_assert_eq(rl_tune_read(path, &t, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert_eq(t.n, 3);
    rl_model_t m = rl_tune_pick(&t, "ofi:tcp;ofi_rxm", 7, src, sizeof(src));
    cr_assert_float_eq(m.alpha_us, 60, 1e-9); /* nearest group size */
    m = rl_tune_pick(&t, "ofi:shm", 64, src, sizeof(src));
    cr_assert_float_eq(m.alpha_us, 2, 1e-9);
    m = rl_tune_pick(&t, "verbs:rxe0:1", 4, src, sizeof(src));
    cr_assert(strstr(src, "built-in"), "%s", src);
    /* the same file in two communicators: one hash; another file: another */
    setenv("RINGLET_TUNE_FILE", path, 1);
    struct rl_comm *a = comm_with(4, NULL);
    f = fopen(path, "w");
    fprintf(f, "ofi:tcp 2 41 0.001 0.0002\n");
    fclose(f);
    char env[300];
    snprintf(env, sizeof(env), "RINGLET_TUNE_FILE=%s", path);
    struct rl_comm *b = comm_with(4, env);
    cr_assert_neq(a->sel.hash, b->sel.hash);
    f = fopen(path, "w");
    fprintf(f, "ofi:tcp 2 40 0.001\n");
    fclose(f);
    cr_assert_eq(rl_tune_read(path, &t, err, sizeof(err)), RL_ERR_CONFIG);
    cr_assert(strstr(err, "line 1"), "%s", err);
    /* the rendezvous latency: a sixth column, or alpha when a file has five */
    f = fopen(path, "w");
    fprintf(f, "ofi:tcp 2 40 0.001 0.0002 55\nofi:shm 2 3 0.001 0.0002\n");
    fclose(f);
    cr_assert_eq(rl_tune_read(path, &t, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert_float_eq(t.e[0].m.alpha_rdv_us, 55, 1e-9);
    cr_assert_float_eq(t.e[1].m.alpha_rdv_us, 3, 1e-9);
    f = fopen(path, "w");
    fprintf(f, "ofi:tcp 2 40 0.001 0.0002 -1\n");
    fclose(f);
    cr_assert_eq(rl_tune_read(path, &t, err, sizeof(err)), RL_ERR_CONFIG);
    /* an algorithm's own line: for it alone, and only a real all-reduce algorithm */
    f = fopen(path, "w");
    fprintf(f, "ofi:tcp 4 10 0.001 0.0002 15\nofi:tcp 4 10 0.004 0.0002 25 ring\n");
    fclose(f);
    snprintf(env, sizeof(env), "RINGLET_TUNE_FILE=%s", path);
    struct rl_comm *d = comm_with(4, env);
    cr_assert_float_eq(rl_model_for(d, &rl_algo_ring, 0)->alpha_rdv_us, 25, 1e-9);
    cr_assert_float_eq(rl_model_for(d, &rl_algo_ring, 0)->beta_us_per_b, 0.004, 1e-12);
    cr_assert_float_eq(rl_model_for(d, &rl_algo_rhd, 0)->alpha_rdv_us, 15, 1e-9);
    cr_assert_float_eq(d->sel.model.alpha_rdv_us, 15, 1e-9);
    cr_assert(strstr(d->sel.model_src, "1 algorithm calibrated alone"), "%s", d->sel.model_src);
    uint64_t with_ring = d->sel.hash;
    f = fopen(path, "w");
    fprintf(f, "ofi:tcp 4 10 0.001 0.0002 15\nofi:tcp 4 10 0.004 0.0002 25 rhd\n");
    fclose(f);
    struct rl_comm *e = comm_with(4, env);
    cr_assert_neq(e->sel.hash, with_ring); /* which algorithm a line is for counts in the hash */
    f = fopen(path, "w");
    fprintf(f, "ofi:tcp 4 10 0.001 0.0002 15 nosuch\n");
    fclose(f);
    cr_assert_eq(rl_tune_read(path, &t, err, sizeof(err)), RL_ERR_CONFIG);
    cr_assert(strstr(err, "\"nosuch\" is no all-reduce algorithm"), "%s", err);
    free(d), free(e);
    unlink(path);
    cr_assert_eq(rl_tune_read(path, &t, err, sizeof(err)), RL_ERR_CONFIG);
    free(a), free(b);
}

/* Points made by the cost functions themselves from a known model: the
 * fit must give that model back, both latencies apart. */
static void fit_from(struct rl_comm *c, const char *const *names, int nnames, const rl_model_t *truth, rl_model_t *got)
{
    rl_fit_point_t pts[64];
    int n = 0;
    for (int a = 0; a < nnames; a++) {
        const rl_algo_t *al = rl_algo_find(names[a], RL_COLL_ALL_REDUCE);
        cr_assert(al, "%s", names[a]);
        for (size_t b = 16; b <= (8u << 20); b *= 16) {
            rl_call_t call = {.coll = RL_COLL_ALL_REDUCE, .count = b / 4, .dtype = RL_FLOAT32, .bytes = b};
            pts[n++] = (rl_fit_point_t){al, b, al->cost(c, &call, truth)};
        }
    }
    *got = (rl_model_t){.gamma_us_per_b = truth->gamma_us_per_b};
    rl_model_fit(c, pts, n, got, 0);
}

Test(select, fit_recovers_both_latencies)
{
    struct rl_comm *c = comm_with(4, NULL);
    const rl_model_t truth = {.alpha_us = 3, .alpha_rdv_us = 7.5, .beta_us_per_b = 0.001, .gamma_us_per_b = 0.0002};
    static const char *const all[] = {"rd", "rhd", "ring", "dbt"};
    rl_model_t m;
    fit_from(c, all, 4, &truth, &m);
    cr_assert_float_eq(m.alpha_us, 3, 1e-6, "%g", m.alpha_us);
    cr_assert_float_eq(m.alpha_rdv_us, 7.5, 1e-6, "%g", m.alpha_rdv_us);
    cr_assert_float_eq(m.beta_us_per_b, 0.001, 1e-9, "%g", m.beta_us_per_b);
    /* no eager algorithm measured: the eager latency takes the other's */
    static const char *const rdv[] = {"ring", "rhd"};
    fit_from(c, rdv, 2, &truth, &m);
    cr_assert_float_eq(m.alpha_rdv_us, 7.5, 1e-6, "%g", m.alpha_rdv_us);
    cr_assert_float_eq(m.alpha_us, m.alpha_rdv_us, 1e-12);
    free(c);
}

/* Size bands: an algorithm's lines from larger sizes hold from there up to
 * its next one; they survive a write and a read, and count in the hash. */
Test(select, tune_file_size_bands)
{
    char path[] = "/tmp/rl_tune_bandsXXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    FILE *f = fopen(path, "w");
    fprintf(f, "ofi:tcp 4 10 0.001 0.0002 15\n"
               "ofi:tcp 4 10 0.004 0.0002 25 ring\n"
               "ofi:tcp 4 10 0.016 0.0002 25 ring 8388608\n"
               "ofi:tcp 4 10 0.008 0.0002 25 ring 1048576\n");
    fclose(f);
    char env[128], err[256];
    snprintf(env, sizeof(env), "RINGLET_TUNE_FILE=%s", path);
    struct rl_comm *d = comm_with(4, env);
    cr_assert_float_eq(rl_model_for(d, &rl_algo_ring, 0)->beta_us_per_b, 0.004, 1e-12);
    cr_assert_float_eq(rl_model_for(d, &rl_algo_ring, (1u << 20) - 1)->beta_us_per_b, 0.004, 1e-12);
    cr_assert_float_eq(rl_model_for(d, &rl_algo_ring, 1u << 20)->beta_us_per_b, 0.008, 1e-12);
    cr_assert_float_eq(rl_model_for(d, &rl_algo_ring, (8u << 20) - 1)->beta_us_per_b, 0.008, 1e-12);
    cr_assert_float_eq(rl_model_for(d, &rl_algo_ring, 64u << 20)->beta_us_per_b, 0.016, 1e-12);
    cr_assert_float_eq(rl_model_for(d, &rl_algo_rhd, 64u << 20)->beta_us_per_b, 0.001, 1e-12);
    cr_assert(strstr(d->sel.model_src, "(3 size bands)"), "%s", d->sel.model_src);
    rl_tune_t t;
    cr_assert_eq(rl_tune_read(path, &t, err, sizeof(err)), RL_OK, "%s", err);
    f = fopen(path, "w");
    cr_assert_eq(rl_tune_write(f, &t), 0);
    fclose(f);
    rl_tune_t back;
    cr_assert_eq(rl_tune_read(path, &back, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert_eq(back.n, 4);
    cr_assert_eq(back.e[2].from_bytes, 8388608u);
    cr_assert_eq(back.e[3].from_bytes, 1048576u);
    cr_assert_str_eq(back.e[3].algo, "ring");
    /* a band of its own changes the hash */
    f = fopen(path, "w");
    fprintf(f, "ofi:tcp 4 10 0.001 0.0002 15\nofi:tcp 4 10 0.004 0.0002 25 ring\n"
               "ofi:tcp 4 10 0.016 0.0002 25 ring 4194304\nofi:tcp 4 10 0.008 0.0002 25 ring 1048576\n");
    fclose(f);
    struct rl_comm *e = comm_with(4, env);
    cr_assert_neq(e->sel.hash, d->sel.hash);
    f = fopen(path, "w");
    fprintf(f, "ofi:tcp 4 10 0.001 0.0002 15 ring 12x\n");
    fclose(f);
    cr_assert_eq(rl_tune_read(path, &t, err, sizeof(err)), RL_ERR_CONFIG);
    free(d), free(e);
    unlink(path);
}

/* A band's fit keeps the latencies it is given and finds beta alone. */
Test(select, fit_beta_only_keeps_latencies)
{
    struct rl_comm *c = comm_with(4, NULL);
    const rl_model_t truth = {.alpha_us = 3, .alpha_rdv_us = 7.5, .beta_us_per_b = 0.002, .gamma_us_per_b = 0.0002};
    const rl_algo_t *ring = rl_algo_find("ring", RL_COLL_ALL_REDUCE);
    rl_fit_point_t pts[3];
    for (int i = 0; i < 3; i++) {
        size_t b = (size_t)1 << (20 + 2 * i);
        rl_call_t call = {.coll = RL_COLL_ALL_REDUCE, .count = b / 4, .dtype = RL_FLOAT32, .bytes = b};
        pts[i] = (rl_fit_point_t){ring, b, ring->cost(c, &call, &truth)};
    }
    rl_model_t m = {.alpha_us = 3, .alpha_rdv_us = 7.5, .gamma_us_per_b = 0.0002};
    rl_model_fit(c, pts, 3, &m, 1);
    cr_assert_float_eq(m.beta_us_per_b, 0.002, 1e-9, "%g", m.beta_us_per_b);
    cr_assert_float_eq(m.alpha_rdv_us, 7.5, 1e-12);
    cr_assert_float_eq(m.alpha_us, 3, 1e-12);
    /* wrong latencies given: they stay, and beta absorbs what it can */
    m = (rl_model_t){.alpha_us = 0, .alpha_rdv_us = 0, .gamma_us_per_b = 0.0002};
    rl_model_fit(c, pts, 3, &m, 1);
    cr_assert_eq(m.alpha_rdv_us, 0);
    cr_assert(m.beta_us_per_b > 0.002, "%g", m.beta_us_per_b);
    free(c);
}

/* Every table's id is its place in the registry: RL_ALGO_STATE indexes by
 * it, so a wrong one would hand an algorithm another's state. */
Test(select, registry_ids_are_positions)
{
    cr_assert_eq(rl_algo_count(), RL_ALGO_NIDS);
    for (int i = 0; i < rl_algo_count(); i++) {
        cr_assert_eq(rl_algo_at(i)->id, i, "%s", rl_algo_at(i)->name);
        cr_assert_eq(rl_algo_index(rl_algo_at(i)), i, "%s", rl_algo_at(i)->name);
    }
    /* a table the registry does not hold has no index */
    static const rl_algo_t stray = {.name = "stray", .id = 0};
    cr_assert_eq(rl_algo_index(&stray), -1);
}
