/*
 * all_gather_perf: nccl-tests-style all-gather benchmark.
 *   ringlet-run -n 4 --only-rank 0 ./all_gather_perf -b 8 -e 64M -f 2
 * As in nccl-tests, size(B) and count describe the whole output buffer
 * (nranks blocks); each rank sends count / nranks elements. algbw = size /
 * time and busbw = algbw * (n-1)/n.
 */
#include "common.h"

static double ag_bus_factor(int nranks)
{
    return nranks > 0 ? (double)(nranks - 1) / nranks : 0.0;
}

static void ag_shape(bench_row_t *row, size_t req_bytes)
{
    row->send_count = req_bytes / (row->esize * (size_t)row->nranks);
    row->recv_count = row->send_count * (size_t)row->nranks;
    row->count = row->recv_count;
    row->bytes = row->recv_count * row->esize;
}

static void *ag_in_place_input(const bench_row_t *row, void *recvbuf)
{
    return (char *)recvbuf + (size_t)row->rank * row->send_count * row->esize;
}

static rl_status_t ag_start(const bench_row_t *row, const void *sendbuf, void *recvbuf,
                            rl_request_t *req, const char **fn)
{
    if (req == NULL) {
        *fn = "rl_all_gather";
        return rl_all_gather(row->comm, sendbuf, recvbuf, row->send_count, row->dtype);
    }
    *fn = "rl_iall_gather";
    return rl_iall_gather(row->comm, sendbuf, recvbuf, row->send_count, row->dtype, req);
}

/* Block r of the output must hold rank r's values; the min/max pattern is
 * exact in every type and differs between ranks. */
static double ag_value(const bench_row_t *row, int r, size_t i)
{
    return bench_value(row->dtype, RL_MAX, row->nranks, r, i);
}

static void ag_fill(const bench_row_t *row, void *buf)
{
    for (size_t i = 0; i < row->send_count; i++)
        bench_store(row->dtype, buf, i, ag_value(row, row->rank, i));
}

static size_t ag_check(const bench_row_t *row, const void *recvbuf)
{
    size_t wrong = 0;
    for (int r = 0; r < row->nranks; r++) {
        const char *block = (const char *)recvbuf + (size_t)r * row->send_count * row->esize;
        for (size_t i = 0; i < row->send_count; i++)
            if (bench_load(row->dtype, block, i) != ag_value(row, r, i))
                wrong++;
    }
    return wrong;
}

static const bench_coll_t all_gather_coll = {
    .name = "all_gather",
    .has_op = 0,
    .bus_formula = "(n-1)/n",
    .bus_factor = ag_bus_factor,
    .shape = ag_shape,
    .in_place_input = ag_in_place_input,
    .start = ag_start,
    .fill = ag_fill,
    .check = ag_check,
};

int main(int argc, char **argv)
{
    return bench_main(&all_gather_coll, argc, argv);
}
