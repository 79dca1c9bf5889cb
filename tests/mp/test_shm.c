/*
 * The collective checks of test_mp.c on ringlet's own shared-memory
 * transport (lib/transport/shm): real processes through ringlet-run, every
 * rank checking every element against its own reference, 1-8 ranks
 * including odd counts, plus the variants that stress its queues (tiny
 * chunks, one staging slot, several channels, messages far larger than a
 * connection's ring).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static int run_env(int n, const char *env, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "%s -n %d --timeout 300 --env RINGLET_TRANSPORT=shm --env RINGLET_TIMEOUT_MS=60000 %s -- %s %s "
             "</dev/null",
             RINGLET_RUN, n, env, COLL_CHECK, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define SHM_TEST(n, args)                                                                                    \
    Test(native_shm, ranks_##n, .timeout = 600)                                                             \
    {                                                                                                        \
        cr_assert_eq(run_env(n, "", args), 0, "coll_check failed on native shm with %d ranks", n);          \
    }

SHM_TEST(1, "--quick")
SHM_TEST(2, "")
SHM_TEST(3, "--big")
SHM_TEST(4, "")
SHM_TEST(5, "")
SHM_TEST(6, "--quick")
SHM_TEST(7, "")
SHM_TEST(8, "--quick")

/* Chunks far smaller than a slot, a single staging slot (every chunk waits
 * for a credit), three channels and a permuted ring. */
Test(native_shm, ring_order_channels_and_credits, .timeout = 300)
{
    cr_assert_eq(run_env(5,
                         "--env RINGLET_RING_ORDER=3,0,4,2,1 --env RINGLET_NCHANNELS=3 "
                         "--env RINGLET_CHUNK_BYTES=4K --env RINGLET_PIPELINE_DEPTH=1",
                         ""),
                 0);
}

/* Chunks of 4 MiB: each write spans four connection rings' worth of slots
 * and must be pipelined through them; no registration cache. */
Test(native_shm, writes_larger_than_the_ring, .timeout = 300)
{
    cr_assert_eq(run_env(3, "--env RINGLET_CHUNK_BYTES=4M --env RINGLET_REG_CACHE=0", "--big"), 0);
}

Test(native_shm, halving_doubling_and_eager, .timeout = 300)
{
    cr_assert_eq(run_env(4, "--env RINGLET_ALLREDUCE_ALGO=rhd", "--quick"), 0);
    cr_assert_eq(run_env(3, "--env RINGLET_ALLREDUCE_ALGO=rd --env RINGLET_RD_MAX_BYTES=2M", ""), 0);
}

Test(native_shm, mismatch_is_reported, .timeout = 120)
{
    cr_assert_eq(run_env(4, "", "--mismatch"), 0);
    cr_assert_eq(run_env(3, "", "--mismatch-p2p"), 0);
}

/* The direct shared-memory all-reduce and barrier (lib/coll/direct.c)
 * forced for every size: one fan-in up to 4 KiB, chunked reduce-then-copy
 * above (--big: 8 MiB + 7 elements, not divisible by the rank count; the
 * full run has every dtype and op). One rank falls back (not usable). */
static int run_direct(int n, const char *args)
{
    return run_env(n, "--env 'RINGLET_ALGOS=all_reduce:0-:direct;barrier:0-:direct'", args);
}
Test(direct, ranks_1, .timeout = 300) { cr_assert_eq(run_direct(1, "--quick"), 0); }
Test(direct, ranks_2, .timeout = 600) { cr_assert_eq(run_direct(2, ""), 0); }
Test(direct, ranks_3, .timeout = 600) { cr_assert_eq(run_direct(3, "--big"), 0); }
Test(direct, ranks_4, .timeout = 600) { cr_assert_eq(run_direct(4, ""), 0); }
Test(direct, ranks_5, .timeout = 600) { cr_assert_eq(run_direct(5, "--big"), 0); }
Test(direct, ranks_8, .timeout = 600) { cr_assert_eq(run_direct(8, "--quick"), 0); }
/* Its broadcast and all-gather (up to 16 KiB per rank; larger calls fall
 * back to chain and ring) when asked for. */
Test(direct, broadcast_all_gather_5_ranks, .timeout = 600)
{
    cr_assert_eq(run_env(5, "--env 'RINGLET_ALGOS=broadcast:0-:direct;all_gather:0-:direct'", ""), 0);
}
Test(direct, mismatch_is_reported, .timeout = 120)
{
    cr_assert_eq(run_direct(4, "--mismatch"), 0);
    cr_assert_eq(run_direct(3, "--mismatch-algo"), 0);
    cr_assert_eq(run_direct(4, "--mixed-zero"), 0);
}
