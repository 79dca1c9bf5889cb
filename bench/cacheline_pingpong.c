/*
 * cacheline_pingpong: the hardware's floor for a small collective between
 * two processes on this host. Two processes (fork) each publish a counter in
 * a cache line of their own in shared memory and wait for the other's, the
 * pattern of a two-rank 8-byte all-reduce by one fan-in (ringlet's direct
 * algorithm, Open MPI's vader fastboxes). No library is involved: whatever
 * an all-reduce costs beyond this round is software.
 *
 * Prints the median over --rounds rounds of the time per exchange, each
 * round --iters exchanges, with the two processes pinned to two different
 * CPUs when there are two (--same-cpu: both on the first, waits yielding
 * the CPU, to see what oversubscription costs).
 */
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    _Alignas(64) _Atomic long seq;
} line_t;

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void pin(int cpu)
{
    cpu_set_t all, one;
    if (sched_getaffinity(0, sizeof(all), &all) != 0)
        return;
    for (int i = 0, seen = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &all) && seen++ == cpu) {
            CPU_ZERO(&one);
            CPU_SET(i, &one);
            sched_setaffinity(0, sizeof(one), &one);
            return;
        }
}

static int yield_wait; /* --same-cpu: a spinning waiter would keep the CPU from the peer for a whole slice */

/* One process's side: publish k, wait for the other's k, iters times. */
static void exchange(line_t *mine, line_t *theirs, long from, long iters)
{
    for (long k = from; k < from + iters; k++) {
        atomic_store_explicit(&mine->seq, k, memory_order_release);
        while (atomic_load_explicit(&theirs->seq, memory_order_acquire) < k)
            if (yield_wait)
                sched_yield();
    }
}

int main(int argc, char **argv)
{
    long iters = 200000;
    int rounds = 7, same = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = atol(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--same-cpu"))
            same = yield_wait = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: cacheline_pingpong [--iters N] [--rounds R] [--same-cpu]\n"
                   "Two processes publish a counter each in their own cache line of shared memory\n"
                   "and wait for the other's (a two-rank 8 B all-reduce's fan-in, without any\n"
                   "library): the median over R rounds (default 7) of N exchanges (default 200000)\n"
                   "of the time per exchange, the floor under any intra-host small collective.\n"
                   "  --same-cpu  both processes on one CPU (oversubscribed: waits yield the CPU)\n");
            return 0;
        } else {
            fprintf(stderr, "cacheline_pingpong: bad option %s (try --help)\n", argv[i]);
            return 2;
        }
    }
    if (iters < 1 || iters > 100000000 || rounds < 1 || rounds > 101) {
        fprintf(stderr, "cacheline_pingpong: --iters in [1, 1e8], --rounds in [1, 101]\n");
        return 2;
    }
    line_t *l = mmap(NULL, 2 * sizeof(line_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (l == MAP_FAILED) {
        perror("cacheline_pingpong: mmap");
        return 1;
    }
    long total = iters * (rounds + 1); /* one warm-up round */
    pid_t kid = fork();
    if (kid < 0) {
        perror("cacheline_pingpong: fork");
        return 1;
    }
    if (kid == 0) {
        pin(same ? 0 : 1);
        exchange(&l[1], &l[0], 1, total);
        _exit(0);
    }
    pin(0);
    double *t = calloc((size_t)rounds, sizeof(double));
    exchange(&l[0], &l[1], 1, iters);
    for (int r = 0; r < rounds; r++) {
        double t0 = now_ns();
        exchange(&l[0], &l[1], 1 + iters * (r + 1), iters);
        t[r] = (now_ns() - t0) / (double)iters;
    }
    int status = 0;
    waitpid(kid, &status, 0);
    qsort(t, (size_t)rounds, sizeof(double), cmp);
    printf("# cacheline_pingpong: %s, %d rounds of %ld exchanges\n", same ? "one CPU" : "two CPUs", rounds, iters);
    printf("ns per exchange: median %.1f  min %.1f  max %.1f\n", t[rounds / 2], t[0], t[rounds - 1]);
    free(t);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
