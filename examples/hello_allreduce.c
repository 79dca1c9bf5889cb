/*
 * hello_allreduce: the smallest complete ringlet program, built outside the
 * source tree against an installed ringlet:
 *
 *   cc hello_allreduce.c $(pkg-config --cflags --libs ringlet) -o hello_allreduce
 *   ringlet-run -n 3 -- ./hello_allreduce
 *
 * Every rank contributes rank+1 (and i for element i), sums with
 * rl_all_reduce, gathers every rank's id with rl_all_gather, and checks both
 * against what it computes alone. Exit status 0 only if every value is right.
 */
#include <stdio.h>
#include <stdlib.h>

#include <ringlet.h>

#define N 100000

static int fail(rl_comm_t comm, const char *what, rl_status_t st)
{
    fprintf(stderr, "hello_allreduce: %s: %s: %s\n", what, rl_strerror(st),
            comm ? rl_comm_last_error(comm) : "");
    return 1;
}

int main(void)
{
    rl_comm_t comm;
    rl_status_t st = rl_comm_create(NULL, &comm); /* rank, size, address from the launcher */
    if (st != RL_OK)
        return fail(NULL, "rl_comm_create", st);
    int rank, size;
    rl_comm_rank(comm, &rank);
    rl_comm_size(comm, &size);

    float *x = malloc(N * sizeof(float));
    int32_t *ids = malloc((size_t)size * sizeof(int32_t));
    if (!x || !ids)
        return 1;
    for (int i = 0; i < N; i++)
        x[i] = (float)(rank + 1) + (float)(i % 7);
    if ((st = rl_all_reduce(comm, x, x, N, RL_FLOAT32, RL_SUM)) != RL_OK)
        return fail(comm, "rl_all_reduce", st);
    int32_t me = rank * 10;
    if ((st = rl_all_gather(comm, &me, ids, 1, RL_INT32)) != RL_OK)
        return fail(comm, "rl_all_gather", st);

    long wrong = 0;
    for (int i = 0; i < N; i++)
        wrong += x[i] != (float)(size * (size + 1) / 2 + size * (i % 7));
    for (int r = 0; r < size; r++)
        wrong += ids[r] != r * 10;
    printf("rank %d of %d over %s: sum[0] = %g, %ld wrong\n", rank, size, rl_comm_transport(comm),
           (double)x[0], wrong);
    free(x);
    free(ids);
    rl_comm_destroy(comm);
    return wrong != 0;
}
