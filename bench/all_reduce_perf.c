/*
 * all_reduce_perf: nccl-tests-style all-reduce benchmark.
 *   ringlet-run -n 4 --only-rank 0 ./all_reduce_perf -b 8 -e 64M -f 2
 * size(B) and count are the per-rank buffer; algbw = size / time and
 * busbw = algbw * 2(n-1)/n, as in nccl-tests.
 */
#include "common.h"

static double ar_bus_factor(int nranks)
{
    return nranks > 0 ? 2.0 * (nranks - 1) / nranks : 0.0;
}

static void ar_shape(bench_row_t *row, size_t req_bytes)
{
    row->count = req_bytes / row->esize;
    row->send_count = row->recv_count = row->count;
    row->bytes = row->count * row->esize;
}

static void *ar_in_place_input(const bench_row_t *row, void *recvbuf)
{
    (void)row;
    return recvbuf;
}

static rl_status_t ar_start(const bench_row_t *row, const void *sendbuf, void *recvbuf,
                            rl_request_t *req, const char **fn)
{
    if (req == NULL) {
        *fn = "rl_all_reduce";
        return rl_all_reduce(row->comm, sendbuf, recvbuf, row->count, row->dtype, row->op);
    }
    *fn = "rl_iall_reduce";
    return rl_iall_reduce(row->comm, sendbuf, recvbuf, row->count, row->dtype, row->op, req);
}

static void ar_fill(const bench_row_t *row, void *buf)
{
    for (size_t i = 0; i < row->send_count; i++)
        bench_store(row->dtype, buf,
                    i, bench_value(row->dtype, row->op, row->nranks, row->rank, i));
}

static size_t ar_check(const bench_row_t *row, const void *recvbuf)
{
    size_t wrong = 0;
    for (size_t i = 0; i < row->recv_count; i++) {
        double want = bench_expected(row->dtype, row->op, row->nranks, i);
        if (!bench_value_ok(row->dtype, row->op, bench_load(row->dtype, recvbuf, i), want))
            wrong++;
    }
    return wrong;
}

static const bench_coll_t all_reduce_coll = {
    .name = "all_reduce",
    .has_op = 1,
    .bus_formula = "2(n-1)/n",
    .bus_factor = ar_bus_factor,
    .shape = ar_shape,
    .in_place_input = ar_in_place_input,
    .start = ar_start,
    .fill = ar_fill,
    .check = ar_check,
};

int main(int argc, char **argv)
{
    return bench_main(&all_reduce_coll, argc, argv);
}
