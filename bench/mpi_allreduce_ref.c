/*
 * Reference: MPI_Allreduce timed the way bench/all_reduce_perf times ringlet
 * (median over iterations of the slowest rank), so the two can be compared in
 * one sitting by tools/compare-mpi. Built with mpicc, not part of the library.
 *   mpi_allreduce_ref MIN_BYTES MAX_BYTES ITERS WARMUP
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, n;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    size_t lo = argc > 1 ? strtoull(argv[1], NULL, 0) : 1u << 20;
    size_t hi = argc > 2 ? strtoull(argv[2], NULL, 0) : 64u << 20;
    int iters = argc > 3 ? atoi(argv[3]) : 10, warm = argc > 4 ? atoi(argv[4]) : 3;
    float *in = malloc(hi), *out = malloc(hi);
    double *ts = malloc(sizeof(double) * (size_t)iters);
    for (size_t i = 0; i < hi / sizeof(float); i++)
        in[i] = (float)(i % 7);
    if (!rank)
        printf("# MPI_Allreduce float32 sum, %d ranks; median of the slowest rank over %d iterations\n"
               "# %12s %12s %10s %10s\n", n, iters, "size(B)", "time(us)", "algbw", "busbw");
    for (size_t b = lo; b <= hi; b *= 2) {
        int count = (int)(b / sizeof(float));
        /* as bench/common.c times ringlet: one barrier, warm-up, then the
         * iterations back to back, each timed on every rank; afterwards the
         * slowest rank's time per iteration */
        MPI_Barrier(MPI_COMM_WORLD);
        for (int it = -warm; it < iters; it++) {
            double t0 = MPI_Wtime();
            MPI_Allreduce(in, out, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            if (it >= 0)
                ts[it] = MPI_Wtime() - t0;
        }
        MPI_Allreduce(MPI_IN_PLACE, ts, iters, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        qsort(ts, (size_t)iters, sizeof(double), cmp);
        double med = iters % 2 ? ts[iters / 2] : (ts[iters / 2 - 1] + ts[iters / 2]) / 2;
        double alg = (double)b / med / 1e9;
        if (!rank)
            printf("  %12zu %12.1f %10.3f %10.3f\n", b, med * 1e6, alg, alg * 2.0 * (n - 1) / n);
    }
    free(in);
    free(out);
    free(ts);
    MPI_Finalize();
    return 0;
}
