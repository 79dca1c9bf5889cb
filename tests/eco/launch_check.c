/*
 * Payload for the launcher tests: run as one rank under mpirun (PMIx), a
 * Slurm-like or a torchrun-like environment, with no RINGLET_RANK/SIZE/ADDR.
 * Checks that rank and size are the ones the launcher meant (given
 * independently in EXPECT_RANK/EXPECT_SIZE or OMPI_COMM_WORLD_RANK/SIZE),
 * then that two communicators alive at once, and a third created after both
 * are gone, each bootstrap and all-reduce correctly.
 *   launch_check [--any-launcher]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringlet.h"

static int expect(const char *a, const char *b)
{
    const char *v = getenv(a);
    if (!v)
        v = getenv(b);
    return v ? atoi(v) : -1;
}

static int check_comm(rl_comm_t c, int want_rank, int want_size, int tag)
{
    int rank = -1, size = -1;
    rl_comm_rank(c, &rank);
    rl_comm_size(c, &size);
    if (rank != want_rank || size != want_size) {
        fprintf(stderr, "comm %d: rank %d of %d, the launcher says %d of %d\n", tag, rank, size, want_rank,
                want_size);
        return 1;
    }
    double x[1000];
    for (int i = 0; i < 1000; i++)
        x[i] = rank + i + tag;
    rl_status_t st = rl_all_reduce(c, x, x, 1000, RL_FLOAT64, RL_SUM);
    if (st != RL_OK) {
        fprintf(stderr, "comm %d: rl_all_reduce: %s: %s\n", tag, rl_strerror(st), rl_comm_last_error(c));
        return 1;
    }
    for (int i = 0; i < 1000; i++) {
        double want = (double)size * (size - 1) / 2 + (double)size * (i + tag);
        if (x[i] != want) {
            fprintf(stderr, "comm %d: element %d is %g, want %g\n", tag, i, x[i], want);
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    /* --any-launcher: also a small payload under ringlet-run (RINGLET_*). */
    int any = argc > 1 && !strcmp(argv[1], "--any-launcher");
    if (!any && (getenv("RINGLET_RANK") || getenv("RINGLET_SIZE") || getenv("RINGLET_ADDR"))) {
        fprintf(stderr, "launch_check: RINGLET_RANK/SIZE/ADDR must not be set\n");
        return 2;
    }
    int want_rank = expect(any ? "RINGLET_RANK" : "EXPECT_RANK", "OMPI_COMM_WORLD_RANK");
    int want_size = expect(any ? "RINGLET_SIZE" : "EXPECT_SIZE", "OMPI_COMM_WORLD_SIZE");
    rl_comm_t a, b, c;
    rl_status_t st;
    if ((st = rl_comm_create(NULL, &a)) != RL_OK || (st = rl_comm_create(NULL, &b)) != RL_OK) {
        fprintf(stderr, "launch_check: rl_comm_create: %s\n", rl_strerror(st));
        return 1;
    }
    int bad = check_comm(b, want_rank, want_size, 2) + check_comm(a, want_rank, want_size, 1);
    rl_comm_destroy(a);
    rl_comm_destroy(b);
    if ((st = rl_comm_create(NULL, &c)) != RL_OK) {
        fprintf(stderr, "launch_check: third rl_comm_create: %s\n", rl_strerror(st));
        return 1;
    }
    bad += check_comm(c, want_rank, want_size, 3);
    rl_comm_destroy(c);
    printf("launch_check: rank %d of %d: %s (%s)\n", want_rank, want_size, bad ? "FAILED" : "ok",
           getenv("PMIX_RANK") ? "pmix" : getenv("SLURM_PROCID") ? "slurm" : getenv("RANK") ? "torchrun" : "?");
    return bad != 0;
}
