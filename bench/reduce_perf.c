/*
 * reduce_perf: nccl-tests-style reduce benchmark.
 *   ringlet-run -n 4 --only-rank 0 ./reduce_perf -b 8 -e 64M -f 2 -r 0
 * size(B) and count are each rank's input; the result lands on the root.
 * algbw = size / time and busbw = algbw (factor 1), as in nccl-tests.
 */
#include "common.h"

static double rd_bus_factor(int nranks) { return nranks > 0 ? 1.0 : 0.0; }

static void rd_shape(bench_row_t *row, size_t req_bytes)
{
    row->count = req_bytes / row->esize;
    row->send_count = row->recv_count = row->count;
    row->bytes = row->count * row->esize;
}

static void *rd_in_place_input(const bench_row_t *row, void *recvbuf)
{
    (void)row;
    return recvbuf;
}

static rl_status_t rd_start(const bench_row_t *row, const void *sendbuf, void *recvbuf, rl_request_t *req,
                            const char **fn)
{
    if (req == NULL) {
        *fn = "rl_reduce";
        return rl_reduce(row->comm, sendbuf, recvbuf, row->count, row->dtype, row->op, row->root);
    }
    *fn = "rl_ireduce";
    return rl_ireduce(row->comm, sendbuf, recvbuf, row->count, row->dtype, row->op, row->root, req);
}

static void rd_fill(const bench_row_t *row, void *buf)
{
    for (size_t i = 0; i < row->send_count; i++)
        bench_store(row->dtype, buf, i, bench_value(row->dtype, row->op, row->nranks, row->rank, i));
}

/* Only the root has a result. */
static size_t rd_check(const bench_row_t *row, const void *recvbuf)
{
    size_t wrong = 0;
    if (row->rank != row->root)
        return 0;
    for (size_t i = 0; i < row->recv_count; i++) {
        double want = bench_expected(row->dtype, row->op, row->nranks, i);
        if (!bench_value_ok(row->dtype, row->op, bench_load(row->dtype, recvbuf, i), want))
            wrong++;
    }
    return wrong;
}

static const bench_coll_t reduce_coll = {
    .name = "reduce",
    .has_op = 1,
    .has_root = 1,
    .bus_formula = "1",
    .bus_factor = rd_bus_factor,
    .shape = rd_shape,
    .in_place_input = rd_in_place_input,
    .start = rd_start,
    .fill = rd_fill,
    .check = rd_check,
};

int main(int argc, char **argv) { return bench_main(&reduce_coll, argc, argv); }
