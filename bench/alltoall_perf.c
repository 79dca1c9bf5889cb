/*
 * alltoall_perf: nccl-tests-style all-to-all benchmark.
 *   ringlet-run -n 4 --only-rank 0 ./alltoall_perf -b 8 -e 64M -f 2
 * As in nccl-tests, size(B) and count describe each rank's whole send
 * buffer (nranks blocks, one per destination). algbw = size / time and
 * busbw = algbw * (n-1)/n. There is no in-place form (N/A columns).
 */
#include "common.h"

static double a2a_bus_factor(int nranks) { return nranks > 0 ? (double)(nranks - 1) / nranks : 0.0; }

static void a2a_shape(bench_row_t *row, size_t req_bytes)
{
    size_t per = req_bytes / (row->esize * (size_t)row->nranks);
    row->send_count = row->recv_count = per * (size_t)row->nranks;
    row->count = row->send_count;
    row->bytes = row->send_count * row->esize;
}

static rl_status_t a2a_start(const bench_row_t *row, const void *sendbuf, void *recvbuf, rl_request_t *req,
                             const char **fn)
{
    size_t per = row->send_count / (size_t)row->nranks;
    if (req == NULL) {
        *fn = "rl_all_to_all";
        return rl_all_to_all(row->comm, sendbuf, recvbuf, per, row->dtype);
    }
    *fn = "rl_iall_to_all";
    return rl_iall_to_all(row->comm, sendbuf, recvbuf, per, row->dtype, req);
}

/* Element i of the block rank `from` sends to rank `to`: distinct per pair
 * and exact in every type. */
static double a2a_value(const bench_row_t *row, int from, int to, size_t i)
{
    return bench_value(row->dtype, RL_MAX, row->nranks, (from * 7 + to) % row->nranks, i + (size_t)from);
}

static void a2a_fill(const bench_row_t *row, void *buf)
{
    size_t per = row->send_count / (size_t)row->nranks;
    for (int to = 0; to < row->nranks; to++)
        for (size_t i = 0; i < per; i++)
            bench_store(row->dtype, buf, (size_t)to * per + i, a2a_value(row, row->rank, to, i));
}

static size_t a2a_check(const bench_row_t *row, const void *recvbuf)
{
    size_t per = row->recv_count / (size_t)row->nranks, wrong = 0;
    for (int from = 0; from < row->nranks; from++)
        for (size_t i = 0; i < per; i++)
            if (bench_load(row->dtype, recvbuf, (size_t)from * per + i) != a2a_value(row, from, row->rank, i))
                wrong++;
    return wrong;
}

static const bench_coll_t alltoall_coll = {
    .name = "alltoall",
    .bus_formula = "(n-1)/n",
    .bus_factor = a2a_bus_factor,
    .shape = a2a_shape,
    .start = a2a_start,
    .fill = a2a_fill,
    .check = a2a_check,
};

int main(int argc, char **argv) { return bench_main(&alltoall_coll, argc, argv); }
