/*
 * reduce_scatter_perf: nccl-tests-style reduce-scatter benchmark.
 *   ringlet-run -n 4 --only-rank 0 ./reduce_scatter_perf -b 8 -e 64M -f 2
 * As in nccl-tests, size(B) and count describe each rank's whole input
 * (nranks blocks); each rank receives count / nranks elements. algbw =
 * size / time and busbw = algbw * (n-1)/n.
 */
#include "common.h"

static double rs_bus_factor(int nranks) { return nranks > 0 ? (double)(nranks - 1) / nranks : 0.0; }

static void rs_shape(bench_row_t *row, size_t req_bytes)
{
    row->recv_count = req_bytes / (row->esize * (size_t)row->nranks);
    row->send_count = row->recv_count * (size_t)row->nranks;
    row->count = row->send_count;
    row->bytes = row->send_count * row->esize;
}

/* In place, the buffer holds the whole input and this rank's block of it
 * is the output. */
static void *rs_in_place_input(const bench_row_t *row, void *recvbuf)
{
    (void)row;
    return recvbuf;
}

static void *rs_in_place_output(const bench_row_t *row, void *recvbuf)
{
    return (char *)recvbuf + (size_t)row->rank * row->recv_count * row->esize;
}

static rl_status_t rs_start(const bench_row_t *row, const void *sendbuf, void *recvbuf, rl_request_t *req,
                            const char **fn)
{
    if (req == NULL) {
        *fn = "rl_reduce_scatter";
        return rl_reduce_scatter(row->comm, sendbuf, recvbuf, row->recv_count, row->dtype, row->op);
    }
    *fn = "rl_ireduce_scatter";
    return rl_ireduce_scatter(row->comm, sendbuf, recvbuf, row->recv_count, row->dtype, row->op, req);
}

static void rs_fill(const bench_row_t *row, void *buf)
{
    for (size_t i = 0; i < row->send_count; i++)
        bench_store(row->dtype, buf, i, bench_value(row->dtype, row->op, row->nranks, row->rank, i));
}

/* Output element i is element rank * recv_count + i of the reduction. */
static size_t rs_check(const bench_row_t *row, const void *recvbuf)
{
    size_t wrong = 0, base = (size_t)row->rank * row->recv_count;
    for (size_t i = 0; i < row->recv_count; i++) {
        double want = bench_expected(row->dtype, row->op, row->nranks, base + i);
        if (!bench_value_ok(row->dtype, row->op, bench_load(row->dtype, recvbuf, i), want))
            wrong++;
    }
    return wrong;
}

static const bench_coll_t reduce_scatter_coll = {
    .name = "reduce_scatter",
    .has_op = 1,
    .bus_formula = "(n-1)/n",
    .bus_factor = rs_bus_factor,
    .shape = rs_shape,
    .in_place_input = rs_in_place_input,
    .in_place_output = rs_in_place_output,
    .start = rs_start,
    .fill = rs_fill,
    .check = rs_check,
};

int main(int argc, char **argv) { return bench_main(&reduce_scatter_coll, argc, argv); }
