/*
 * Shared allocations (rl_mem_alloc / rl_mem_free) through real processes:
 * shalloc_check on every rank checks its results element by element; here
 * the driver also checks, from the library's own count at destroy
 * (RINGLET_LOG_LEVEL=info), that every all-reduce on shared buffers of a
 * one-host group read the peers' buffers in place (and none otherwise),
 * over ringlet's shm and over libfabric tcp, and on emulated hosts
 * (RINGLET_HOST_ID) where the calls fall back to the network algorithms.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define MAXR 16

typedef struct {
    int candidates;      /* rank 0: all-reduces that could read in place */
    long inplace[MAXR];  /* per rank, from its log line; -1: none */
    int passed[MAXR];
} info_t;

/* host: "" one host; else the shell expression giving RINGLET_HOST_ID. */
static int run(int n, const char *env, const char *host, const char *args, info_t *in)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "%s -n %d --timeout 400 --env RINGLET_TIMEOUT_MS=60000 --env RINGLET_LOG_LEVEL=info %s -- "
             "sh -c '%s exec %s %s' </dev/null 2>&1",
             RINGLET_RUN, n, env, host, SHALLOC_CHECK, args);
    memset(in, 0, sizeof(*in));
    in->candidates = -1;
    for (int r = 0; r < MAXR; r++)
        in->inplace[r] = -1;
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    char line[4096];
    while (fgets(line, sizeof(line), p)) {
        int r;
        const char *t;
        if (sscanf(line, "[%d]", &r) != 1 || r < 0 || r >= MAXR)
            continue;
        if ((t = strstr(line, "zero-copy candidates: ")))
            in->candidates = atoi(t + 22);
        if ((t = strstr(line, "direct: ")) && strstr(t, "read in place"))
            in->inplace[r] = atol(t + 8);
        if (strstr(line, "shalloc checks passed"))
            in->passed[r] = 1;
        if (strstr(line, "wrong") || strstr(line, "failures") || strstr(line, "returned"))
            fputs(line, stderr);
    }
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* zc: every rank read every candidate in place; else none did. */
static void expect_run(int n, const char *env, const char *host, const char *args, int zc)
{
    info_t in;
    cr_assert_eq(run(n, env, host, args, &in), 0, "shalloc_check failed on %d ranks (%s %s)", n, env, host);
    cr_assert_geq(in.candidates, 0, "rank 0 printed no candidate count");
    for (int r = 0; r < n; r++) {
        cr_expect(in.passed[r], "rank %d did not pass", r);
        if (zc)
            cr_expect_eq(in.inplace[r], in.candidates, "rank %d read %ld all-reduces in place, %d could", r,
                         in.inplace[r], in.candidates);
        else
            cr_expect(in.inplace[r] <= 0, "rank %d read %ld all-reduces in place where none should", r,
                      in.inplace[r]);
    }
}

#define SHM "--env RINGLET_TRANSPORT=shm"
#define DIRECT "--env RINGLET_ALGOS=all_reduce:0-:direct"

Test(shalloc, shm_1_rank, .timeout = 300) { expect_run(1, SHM, "", "", 0); }
/* two ranks: direct only up to 4 KiB by default, so asked for above */
Test(shalloc, shm_2_ranks_direct, .timeout = 300) { expect_run(2, SHM " " DIRECT, "", "", 1); }
Test(shalloc, shm_2_ranks_default, .timeout = 300) { expect_run(2, SHM, "", "--quick", 0); }
Test(shalloc, shm_3_ranks, .timeout = 300) { expect_run(3, SHM, "", "", 1); }
Test(shalloc, shm_4_ranks, .timeout = 300) { expect_run(4, SHM, "", "--quick", 1); }
Test(shalloc, shm_5_ranks, .timeout = 300) { expect_run(5, SHM, "", "", 1); }
/* libfabric tcp on one host: direct still runs through its own segments */
Test(shalloc, tcp_one_host_3_ranks, .timeout = 300)
{
    expect_run(3, "--env RINGLET_TRANSPORT=ofi --env RINGLET_OFI_PROVIDER=tcp", "", "--quick", 1);
}
/* Emulated hosts: tcp between them, ringlet's shm inside; the
 * allocations are registered with both and the network algorithms run. */
Test(shalloc, tcp_hosts_2_x_2, .timeout = 400)
{
    expect_run(4, "--env RINGLET_TRANSPORT=ofi --env RINGLET_OFI_PROVIDER=tcp",
               "RINGLET_HOST_ID=host$((RINGLET_RANK / 2))", "--quick", 0);
}
Test(shalloc, tcp_hosts_2_plus_1, .timeout = 400)
{
    expect_run(3, "--env RINGLET_TRANSPORT=ofi --env RINGLET_OFI_PROVIDER=tcp",
               "RINGLET_HOST_ID=host$((RINGLET_RANK / 2))", "", 0);
}
