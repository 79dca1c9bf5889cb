/*
 * Multi-process tests of the newer API: ringlet-run starts N real processes
 * of api_check over a real libfabric provider (tcp, shm); every rank checks
 * what it received byte by byte against its own reference.
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
             RINGLET_RUN, n, provider, env, API_CHECK, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ringlet's own shared-memory transport (RINGLET_TRANSPORT=shm). */
static int run_native_shm(int n, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "%s -n %d --timeout 300 --env RINGLET_TRANSPORT=shm --env RINGLET_TIMEOUT_MS=60000 -- %s %s </dev/null",
             RINGLET_RUN, n, API_CHECK, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

Test(api_native_shm, ranks_5, .timeout = 600) { cr_assert_eq(run_native_shm(5, ""), 0); }
Test(api_native_shm, ranks_2, .timeout = 600) { cr_assert_eq(run_native_shm(2, "--quick"), 0); }

#define API_TEST(prov, n, args)                                                                              \
    Test(api_##prov, ranks_##n, .timeout = 600)                                                             \
    {                                                                                                        \
        cr_assert_eq(run_env(#prov, n, "", args), 0, "api_check failed on %s with %d ranks", #prov, n);      \
    }

/* 1-8 ranks, odd counts among them; the full matrix on some, --quick on
 * the rest to bound the run time. */
API_TEST(tcp, 1, "--quick")
API_TEST(tcp, 2, "")
API_TEST(tcp, 3, "--quick")
API_TEST(tcp, 5, "")
API_TEST(shm, 1, "")
API_TEST(shm, 3, "")
API_TEST(shm, 4, "--quick")
API_TEST(shm, 7, "--quick")
API_TEST(shm, 8, "--quick")

/* Small chunks and one staging slot: every message of the patterns is
 * many chunks, and all-reduce on the children waits for credits. */
Test(api_variants, small_chunks_shm_5_ranks, .timeout = 600)
{
    cr_assert_eq(run_env("shm", 5, "--env RINGLET_CHUNK_BYTES=4K --env RINGLET_MIN_CHUNK_BYTES=1K "
                                   "--env RINGLET_PIPELINE_DEPTH=1", "--quick"), 0);
}

/* The split alone on 5 ranks over tcp, with a ring order on the parent
 * (which the children must not inherit). */
Test(api_variants, split_tcp_5_ranks_ring_order, .timeout = 300)
{
    cr_assert_eq(run_env("tcp", 5, "--env RINGLET_RING_ORDER=4,2,0,3,1", "--split-only"), 0);
}

/* A receiver expecting another count than its sender sends: all ranks get
 * an error, nobody hangs until the deadline. */
Test(api_mismatch, all_to_allv_counts_shm_3_ranks, .timeout = 120)
{
    cr_assert_eq(run_env("shm", 3, "", "--mismatch-a2av"), 0);
}
Test(api_mismatch, all_to_allv_counts_tcp_4_ranks, .timeout = 120)
{
    cr_assert_eq(run_env("tcp", 4, "", "--mismatch-a2av"), 0);
}

/* The bitwise and fp8 reductions on each all-reduce algorithm: by default
 * small counts run eager recursive doubling, mid ones halving-doubling on
 * 4 and 8 ranks and the ring elsewhere; here the ring for every size on a
 * power-of-two group. */
Test(api_variants, ring_everywhere_tcp_4_ranks, .timeout = 600)
{
    cr_assert_eq(run_env("tcp", 4, "--env RINGLET_ALLREDUCE_ALGO=ring", "--quick"), 0);
}

/* The new benchmarks run and check their results ("Out of bounds values :
 * 0 OK"), and the others take the new dtypes and ops. */
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
    cr_assert_eq(st, 0, "%s %s exited with %d", prog, args, st);
    cr_assert(ok && rows >= 2, "%s %s: %d rows, ok=%d", prog, args, rows, ok);
}

Test(api_bench, new_programs_and_dtypes, .timeout = 300)
{
    bench_smoke("alltoallv_perf", "-z 0");
    bench_smoke("alltoallv_perf", "-d fp8_e5m2");
    bench_smoke("gather_perf", "-r 2");
    bench_smoke("scatter_perf", "-r 1 -z 0 -d fp8_e4m3");
    bench_smoke("all_reduce_perf", "-d fp8_e4m3 -o all");
    bench_smoke("all_reduce_perf", "-d fp8_e5m2 -o avg");
    bench_smoke("all_reduce_perf", "-d int32 -o bxor");
    bench_smoke("reduce_scatter_perf", "-d uint8 -o band");
    bench_smoke("reduce_perf", "-d int64 -o bor -r 1");
}
