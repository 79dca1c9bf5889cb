/*
 * Multi-process collective tests: ringlet-run starts N real processes of
 * coll_check over a real libfabric provider; every rank checks every
 * element against its own reference and exits non-zero on any mismatch.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static int run_env(const char *provider, int n, const char *env, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "%s -n %d --timeout 300 --env RINGLET_TRANSPORT=ofi --env RINGLET_OFI_PROVIDER=%s "
             "--env RINGLET_TIMEOUT_MS=60000 %s -- %s %s </dev/null",
             RINGLET_RUN, n, provider, env, COLL_CHECK, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int run(const char *provider, int n, const char *args) { return run_env(provider, n, "", args); }

#define COLL_TEST(prov, n, args)                                                                             \
    Test(prov, ranks_##n, .timeout = 600)                                                                   \
    {                                                                                                        \
        cr_assert_eq(run(#prov, n, args), 0, "coll_check failed on %s with %d ranks", #prov, n);             \
    }

/* Every run covers every collective; the full dtype x op matrix and the
 * 8 MiB sizes are spread over the configurations to bound the run time. */
COLL_TEST(tcp, 1, "--quick")
COLL_TEST(tcp, 2, "")
COLL_TEST(tcp, 3, "--big")
COLL_TEST(tcp, 4, "--quick")
COLL_TEST(tcp, 5, "--quick")
COLL_TEST(shm, 1, "--quick")
COLL_TEST(shm, 2, "--quick")
COLL_TEST(shm, 3, "")
COLL_TEST(shm, 4, "--big")
COLL_TEST(shm, 5, "")

/* Ranks that disagree on the count all get an error, and nobody hangs. */
Test(mismatch, tcp_3_ranks, .timeout = 120)
{
    cr_assert_eq(run("tcp", 3, "--mismatch"), 0);
}
Test(mismatch, shm_4_ranks, .timeout = 120)
{
    cr_assert_eq(run("shm", 4, "--mismatch"), 0);
}

/* Counts so far apart that ranks run different algorithms (eager on some,
 * halving-doubling or ring on the other): a mismatch at once, not a timeout. */
Test(mismatch, algorithms_shm_4_ranks, .timeout = 120)
{
    cr_assert_eq(run("shm", 4, "--mismatch-algo"), 0);
}
Test(mismatch, algorithms_tcp_3_ranks, .timeout = 120)
{
    cr_assert_eq(run("tcp", 3, "--mismatch-algo"), 0);
}
Test(mismatch, halving_doubling_against_ring_shm_4_ranks, .timeout = 120)
{
    cr_assert_eq(run_env("shm", 4, "--env RINGLET_RD_MAX_BYTES=0 --env RINGLET_RHD_MAX_BYTES=64K", "--mismatch-algo"),
                 0);
}

Test(mismatch, send_recv_counts_tcp_3_ranks, .timeout = 120)
{
    cr_assert_eq(run("tcp", 3, "--mismatch-p2p"), 0);
}

/* The direct shared-memory all-reduce (lib/coll/direct.c) does not use the
 * transport: over libfabric shm (and tcp) on one host it runs too. */
Test(variants, direct_all_reduce_2_ranks_shm, .timeout = 600)
{
    cr_assert_eq(run_env("shm", 2, "--env 'RINGLET_ALGOS=all_reduce:0-:direct;barrier:0-:direct'", "--big"), 0);
}
Test(variants, direct_all_reduce_5_ranks_shm, .timeout = 600)
{
    cr_assert_eq(run_env("shm", 5, "--env 'RINGLET_ALGOS=all_reduce:0-:direct;barrier:0-:direct'", ""), 0);
}
Test(variants, direct_all_reduce_3_ranks_tcp, .timeout = 600)
{
    cr_assert_eq(run_env("tcp", 3, "--env 'RINGLET_ALGOS=all_reduce:0-:direct;barrier:0-:direct'", "--quick"), 0);
}

/* Run a group, mark each rank whose "[r] rank" output line match()
 * accepts; pclose's status. */
static int run_marking(const char *cmd, int n, int (*match)(int rank, const char *line), int *marked)
{
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    char line[1024];
    while (fgets(line, sizeof(line), p)) {
        int r;
        if (sscanf(line, "[%d] rank", &r) == 1 && r >= 0 && r < n && match(r, line))
            marked[r] = 1;
    }
    return pclose(p);
}

static int names_rank_2(int r, const char *line)
{
    return strstr(line, "rl_comm_create(") && strstr(line, r == 2 ? "bogus" : "rank 2 failed");
}

/* One rank cannot open its transport: every rank's rl_comm_create fails
 * promptly with a message naming that rank (failed ranks linger two seconds
 * so the launcher does not stop the others before they report). */
Test(create, one_rank_fails_to_open_its_transport, .timeout = 120)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "%s -n 3 --timeout 60 --env RINGLET_TRANSPORT=ofi --env RINGLET_OFI_PROVIDER=shm -- sh -c "
             "'if [ \"$RINGLET_RANK\" = 2 ]; then export RINGLET_OFI_PROVIDER=bogus; fi; %s --quick; rc=$?; "
             "[ $rc = 0 ] || sleep 2; exit $rc' 2>&1 </dev/null",
             RINGLET_RUN, COLL_CHECK);
    int named[3] = {0};
    cr_assert_neq(run_marking(cmd, 3, names_rank_2, named), 0, "the group must fail");
    cr_assert(named[0] && named[1] && named[2], "every rank names rank 2 and the cause: %d %d %d", named[0],
              named[1], named[2]);
}

static int algo_mismatch(int r, const char *line)
{
    (void)r;
    return strstr(line, "RL_ERR_MISMATCH") && strstr(line, "RINGLET_ALLREDUCE_ALGO");
}

/* Ranks configured to pick different all-reduce algorithms would wait for
 * each other's different messages: creation refuses that on every rank. */
Test(create, ranks_disagree_on_the_algorithm, .timeout = 120)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "%s -n 2 --timeout 60 --env RINGLET_TRANSPORT=ofi --env RINGLET_OFI_PROVIDER=shm -- sh -c "
             "'if [ \"$RINGLET_RANK\" = 1 ]; then export RINGLET_ALLREDUCE_ALGO=ring; fi; %s --quick; rc=$?; "
             "[ $rc = 0 ] || sleep 1; exit $rc' 2>&1 </dev/null",
             RINGLET_RUN, COLL_CHECK);
    int seen[2] = {0};
    cr_assert_neq(run_marking(cmd, 2, algo_mismatch, seen), 0);
    cr_assert(seen[0] && seen[1], "both ranks report the mismatch: %d %d", seen[0], seen[1]);
}

/* Every nccl-tests-style program runs, checks its results and reports
 * "Out of bounds values : 0 OK". */
static void bench_smoke(const char *prog, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "%s -n 3 --only-rank 0 --no-prefix --timeout 120 --env RINGLET_TRANSPORT=ofi "
             "--env RINGLET_OFI_PROVIDER=shm -- %s/%s -b 1K -e 1M -f 32 -n 3 -w 1 %s </dev/null",
             RINGLET_RUN, BENCH_DIR, prog, args);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "popen %s", cmd);
    char line[512];
    int ok = 0, rows = 0;
    while (fgets(line, sizeof(line), p)) {
        if (strstr(line, "Out of bounds values : 0 OK"))
            ok = 1;
        else if (line[0] != '#')
            rows++;
    }
    int st = pclose(p);
    cr_assert_eq(st, 0, "%s exited with %d", prog, st);
    cr_assert(ok && rows >= 2, "%s: %d rows, ok=%d", prog, rows, ok);
}

Test(bench, every_program_runs_and_checks)
{
    bench_smoke("all_reduce_perf", "-d all -o sum");
    bench_smoke("all_gather_perf", "-z 0");
    bench_smoke("reduce_scatter_perf", "-o max");
    bench_smoke("broadcast_perf", "-r 2");
    bench_smoke("reduce_perf", "-r 1 -d bfloat16 -o avg");
    bench_smoke("alltoall_perf", "-z 0");
    bench_smoke("sendrecv_perf", "");
}

/* Both all-reduce algorithms on a power-of-two group, forced for every
 * size (auto uses halving-doubling up to RINGLET_RHD_MAX_BYTES). */
Test(variants, allreduce_halving_doubling_8_ranks, .timeout = 300)
{
    cr_assert_eq(run_env("shm", 8, "--env RINGLET_ALLREDUCE_ALGO=rhd", "--quick"), 0);
}
Test(variants, allreduce_ring_4_ranks, .timeout = 300)
{
    cr_assert_eq(run_env("tcp", 4, "--env RINGLET_ALLREDUCE_ALGO=ring", "--quick"), 0);
}

/* libfabric shm's two paths for large messages: one cross-process copy
 * (CMA) and two through shared memory. RINGLET_SHM_CMA=auto picks one per
 * host, so each is also run on purpose. */
Test(variants, shm_with_cma_4_ranks, .timeout = 300)
{
    cr_assert_eq(run_env("shm", 4, "--env RINGLET_SHM_CMA=on", ""), 0);
}
Test(variants, shm_without_cma_4_ranks, .timeout = 300)
{
    cr_assert_eq(run_env("shm", 4, "--env RINGLET_SHM_CMA=off", ""), 0);
}

/* A bad value is a named configuration error, not a crash. */
static const char *bad_value;
static int names_bad_value(int r, const char *line)
{
    (void)r;
    return strstr(line, bad_value) != NULL;
}
static void bad_setting(const char *setting)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "%s -n 2 --timeout 60 --env RINGLET_TRANSPORT=ofi --env RINGLET_OFI_PROVIDER=shm --env %s -- %s "
             "--quick 2>&1 </dev/null",
             RINGLET_RUN, setting, COLL_CHECK);
    int named[2] = {0};
    bad_value = setting;
    cr_assert_neq(run_marking(cmd, 2, names_bad_value, named), 0, "coll_check succeeded with %s", setting);
    cr_assert(named[0] || named[1], "no rank named the bad value %s", setting);
}
Test(create, bad_shm_cma_value, .timeout = 120) { bad_setting("RINGLET_SHM_CMA=maybe"); }
Test(create, bad_allreduce_algo_value, .timeout = 120) { bad_setting("RINGLET_ALLREDUCE_ALGO=tree"); }
Test(create, bad_algos_table, .timeout = 120) { bad_setting("RINGLET_ALGOS=broadcast:0-:nosuch"); }

/* The eager all-reduce with slots large enough for every size coll_check
 * uses but its 8 MiB one, on groups that fold (3, 5) and one that does not. */
Test(variants, eager_allreduce_3_ranks, .timeout = 300)
{
    cr_assert_eq(run_env("shm", 3, "--env RINGLET_ALLREDUCE_ALGO=rd --env RINGLET_RD_MAX_BYTES=2M", ""), 0);
}
Test(variants, eager_allreduce_5_ranks_tcp, .timeout = 300)
{
    cr_assert_eq(run_env("tcp", 5, "--env RINGLET_ALLREDUCE_ALGO=rd --env RINGLET_RD_MAX_BYTES=2M", "--quick"), 0);
}
Test(variants, eager_allreduce_4_ranks, .timeout = 300)
{
    cr_assert_eq(run_env("shm", 4, "--env RINGLET_RD_MAX_BYTES=2M", "--quick"), 0);
}

/* Algorithms that are not defaults, forced through the selection table:
 * every collective still runs (the others on their defaults). */
Test(variants, tree_broadcast_reduce_5_ranks_shm, .timeout = 300)
{
    cr_assert_eq(run_env("shm", 5, "--env RINGLET_ALGOS='broadcast:0-:tree;reduce:0-:tree'", "--quick"), 0);
}
Test(variants, tree_broadcast_reduce_8_ranks_tcp, .timeout = 300)
{
    cr_assert_eq(run_env("tcp", 8, "--env RINGLET_ALGOS='broadcast:0-:tree;reduce:0-:tree'", "--quick"), 0);
}
Test(variants, bruck_all_gather_3_ranks_tcp, .timeout = 300)
{
    cr_assert_eq(run_env("tcp", 3, "--env RINGLET_ALGOS=all_gather:0-:bruck", "--quick"), 0);
}
Test(variants, bruck_all_gather_6_ranks_shm, .timeout = 300)
{
    cr_assert_eq(run_env("shm", 6, "--env RINGLET_ALGOS=all_gather:0-:bruck", "--quick"), 0);
}
Test(variants, dbt_all_reduce_6_ranks_shm, .timeout = 300)
{
    cr_assert_eq(run_env("shm", 6, "--env RINGLET_ALGOS=all_reduce:0-:dbt", "--quick"), 0);
}
/* small chunks: a 3 MB all-reduce pipelines in 64 chunks per tree */
Test(variants, dbt_all_reduce_3_ranks_tcp_pipelined, .timeout = 300)
{
    cr_assert_eq(run_env("tcp", 3, "--env RINGLET_ALGOS=all_reduce:0-:dbt --env RINGLET_CHUNK_BYTES=4096",
                         "--quick --large 3000000"), 0);
}
Test(variants, bruck_all_to_all_5_ranks_tcp, .timeout = 300)
{
    cr_assert_eq(run_env("tcp", 5, "--env RINGLET_ALGOS=all_to_all:0-:bruck", "--quick"), 0);
}
/* Emulated hosts: rank r claims host r % hosts (RINGLET_HOST_ID), so the
 * hierarchical all-reduce has several ranks on each of several hosts. */
static int run_hosts(int n, int hosts, const char *env, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "%s -n %d --timeout 300 --env RINGLET_TRANSPORT=ofi --env RINGLET_OFI_PROVIDER=tcp "
             "--env RINGLET_TIMEOUT_MS=60000 %s -- sh -c 'RINGLET_HOST_ID=host$((RINGLET_RANK %% %d)) exec %s %s' "
             "</dev/null",
             RINGLET_RUN, n, env, hosts, COLL_CHECK, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
Test(variants, hier_all_reduce_2_hosts_x_2_ranks, .timeout = 300)
{
    cr_assert_eq(run_hosts(4, 2, "--env RINGLET_ALGOS=all_reduce:0-:hier", "--quick"), 0);
}
Test(variants, hier_all_reduce_3_hosts_x_2_ranks, .timeout = 300)
{
    cr_assert_eq(run_hosts(6, 3, "--env RINGLET_ALGOS=all_reduce:0-:hier", "--quick"), 0);
}
/* The hierarchical all-gather, reduce-scatter and broadcast beside the all-reduce: hosts
 * hold ranks r % hosts, so a host's ranks are not contiguous in the output;
 * odd host counts and odd ranks per host. */
#define HIER_ALL "--env 'RINGLET_ALGOS=all_gather:0-:hier;broadcast:0-:hier;all_reduce:0-:hier;reduce_scatter:0-:hier'"
Test(variants, hier_collectives_2_hosts_x_2_ranks, .timeout = 300)
{
    cr_assert_eq(run_hosts(4, 2, HIER_ALL, "--quick"), 0);
}
Test(variants, hier_collectives_3_hosts_x_2_ranks, .timeout = 300)
{
    cr_assert_eq(run_hosts(6, 3, HIER_ALL, "--quick"), 0);
}
Test(variants, hier_collectives_2_hosts_x_3_ranks, .timeout = 300)
{
    cr_assert_eq(run_hosts(6, 2, HIER_ALL, "--quick --large 300000"), 0);
}
Test(variants, auto_everywhere_4_ranks_shm, .timeout = 300)
{
    cr_assert_eq(run_env("shm", 4, "--env RINGLET_ALGOS=auto", "--quick"), 0);
}

/* Frameworks issue empty all-reduces (empty gradient buckets) between real
 * ones; an empty call used to let a rank's eager messages land in slots its
 * partner had not consumed (RL_ERR_PROTOCOL "unexpected eager message"). */
Test(variants, empty_allreduces_between_eager_2_ranks, .timeout = 300)
{
    cr_assert_eq(run("shm", 2, "--mixed-zero"), 0);
}
Test(variants, empty_allreduces_between_algorithms_4_ranks, .timeout = 300)
{
    cr_assert_eq(run("shm", 4, "--mixed-zero"), 0);
}
/* with the tree broadcast forced: a leaf finishes it without its eager partner */
Test(variants, eager_between_trees_and_scatters_4_ranks_shm, .timeout = 300)
{
    cr_assert_eq(run_env("shm", 4, "--env RINGLET_ALGOS=broadcast:0-:tree", "--mixed-zero"), 0);
}
Test(variants, empty_allreduces_3_ranks_tcp, .timeout = 300)
{
    cr_assert_eq(run("tcp", 3, "--mixed-zero"), 0);
}

/* Each rank's digest line of a coll_check --digest run, sorted. */
static void digests(const char *env, char *out, size_t len)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "%s -n 3 --no-prefix --timeout 120 --env RINGLET_TRANSPORT=ofi --env RINGLET_OFI_PROVIDER=shm %s -- "
             "%s --digest </dev/null | grep '^digest' | sort",
             RINGLET_RUN, env, COLL_CHECK);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    cr_assert_eq(pclose(p), 0, "%s", cmd);
}

/* Same inputs, same ranks: bitwise the same results whatever the chunk
 * size or pipeline depth. */
Test(determinism, chunk_size_and_depth, .timeout = 300)
{
    char a[512], b[512], c[512];
    digests("", a, sizeof(a));
    digests("--env RINGLET_CHUNK_BYTES=4K --env RINGLET_MIN_CHUNK_BYTES=1K --env RINGLET_PIPELINE_DEPTH=1", b,
            sizeof(b));
    digests("--env RINGLET_CHUNK_BYTES=96K --env RINGLET_PIPELINE_DEPTH=7", c, sizeof(c));
    cr_assert(strstr(a, "digest rank 2"), "no digests: '%s'", a);
    cr_assert_str_eq(a, b);
    cr_assert_str_eq(a, c);
}

/* The ring is an input: a permutation, several channels, tiny chunks and a
 * single staging slot (every chunk waits for a credit), no registration
 * cache. */
Test(variants, ring_order_channels_and_credits, .timeout = 300)
{
    cr_assert_eq(run_env("shm", 5,
                         "--env RINGLET_RING_ORDER=3,0,4,2,1 --env RINGLET_NCHANNELS=3 "
                         "--env RINGLET_CHUNK_BYTES=4K --env RINGLET_PIPELINE_DEPTH=1",
                         ""),
                 0);
}

Test(variants, tcp_two_channels_no_reg_cache, .timeout = 300)
{
    cr_assert_eq(run_env("tcp", 3, "--env RINGLET_NCHANNELS=2 --env RINGLET_REG_CACHE=0 --env RINGLET_RING_ORDER=2,1,0",
                         "--quick"),
                 0);
}
