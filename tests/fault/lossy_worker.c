/*
 * One rank for tests/fault/lossy_destroy.sh: 1 MiB all-reduces over a lossy
 * link until one fails (or --iters pass), checking every element, then
 * rl_comm_destroy. Exit 0 when destroy returned (whatever the collectives
 * did), 1 on a wrong result, 2 if the communicator could not be created.
 *
 *   lossy_worker [--iters N] [--count N] [--wait-ms MS] [--print-rss]
 *
 * With --wait-ms each all-reduce is started with rl_iall_reduce and waited
 * for with rl_wait(MS): a timeout leaves it running, and the request is
 * freed and the communicator destroyed with writes still posted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringlet.h"

int main(int argc, char **argv)
{
    int iters = 1000, wait_ms = -1, print_rss = 0;
    size_t count = 262144; /* 1 MiB of float32 */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--print-rss"))
            print_rss = 1;
        else if (!strcmp(argv[i], "--wait-ms") && i + 1 < argc)
            wait_ms = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--count") && i + 1 < argc)
            count = (size_t)atol(argv[++i]);
        else {
            printf("usage: lossy_worker [--iters N] [--count N] [--wait-ms MS] [--print-rss]\n"
                   "1 MiB all-reduces until one fails, then rl_comm_destroy (see lossy_destroy.sh)\n");
            return strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? 2 : 0;
        }
    }
    rl_comm_t comm;
    rl_status_t st = rl_comm_create(NULL, &comm);
    if (st != RL_OK) {
        printf("create failed: %s: %s\n", rl_status_name(st), rl_comm_last_error(NULL));
        return 2;
    }
    int rank, n;
    rl_comm_rank(comm, &rank);
    rl_comm_size(comm, &n);
    float *buf = malloc(count * sizeof(float));
    int it = 0, wrong = 0;
    for (; it < iters && st == RL_OK; it++) {
        for (size_t i = 0; i < count; i++)
            buf[i] = (float)((rank + (int)(i % 7) + it) % 5);
        if (wait_ms < 0) {
            st = rl_all_reduce(comm, buf, buf, count, RL_FLOAT32, RL_SUM);
        } else {
            rl_request_t req;
            st = rl_iall_reduce(comm, buf, buf, count, RL_FLOAT32, RL_SUM, &req);
            if (st == RL_OK) {
                st = rl_wait(req, wait_ms);
                rl_request_free(req); /* a timed-out one aborts the communicator */
            }
        }
        for (size_t i = 0; st == RL_OK && i < count && !wrong; i++) {
            float want = 0;
            for (int r = 0; r < n; r++)
                want += (float)((r + (int)(i % 7) + it) % 5);
            wrong = buf[i] != want;
        }
    }
    printf("rank %d: %d iterations, last %s%s%s\n", rank, it, rl_status_name(st), st ? ": " : "",
           st ? rl_comm_last_error(comm) : "");
    fflush(stdout);
    free(buf); /* as a program would after an error: ringlet must not touch it again */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rl_comm_destroy(comm);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("rank %d: destroy returned after %.0f ms\n", rank,
           (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    if (print_rss) { /* peak resident memory, for tests/fault/staging_check.sh */
        FILE *f = fopen("/proc/self/status", "r");
        char line[256];
        while (f && fgets(line, sizeof(line), f))
            if (!strncmp(line, "VmHWM:", 6))
                printf("rank %d: peak %s", rank, line);
        if (f)
            fclose(f);
    }
    return wrong ? 1 : 0;
}
