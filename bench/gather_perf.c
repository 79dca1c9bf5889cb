/*
 * gather_perf: nccl-tests-style gather benchmark (rl_gather).
 *   ringlet-run -n 4 --only-rank 0 ./gather_perf -b 8 -e 64M -f 2 -r 0
 * As nccl-tests' gather: size(B) and count describe the root's whole
 * receive buffer (nranks blocks); each rank sends count / nranks elements.
 * algbw = size / time and busbw = algbw * (n-1)/n (the root receives n-1
 * of the n blocks). In-place: the root's block already sits in its place.
 */
#include "common.h"

static double ga_bus_factor(int nranks) { return nranks > 0 ? (double)(nranks - 1) / nranks : 0.0; }

static void ga_shape(bench_row_t *row, size_t req_bytes)
{
    row->send_count = req_bytes / (row->esize * (size_t)row->nranks);
    row->recv_count = row->send_count * (size_t)row->nranks;
    row->count = row->recv_count;
    row->bytes = row->recv_count * row->esize;
}

static void *ga_in_place_input(const bench_row_t *row, void *recvbuf)
{
    return (char *)recvbuf + (size_t)row->root * row->send_count * row->esize;
}

static rl_status_t ga_start(const bench_row_t *row, const void *sendbuf, void *recvbuf, rl_request_t *req,
                            const char **fn)
{
    void *out = row->rank == row->root ? recvbuf : NULL; /* significant on the root only */
    if (req == NULL) {
        *fn = "rl_gather";
        return rl_gather(row->comm, sendbuf, out, row->send_count, row->dtype, row->root);
    }
    *fn = "rl_igather";
    return rl_igather(row->comm, sendbuf, out, row->send_count, row->dtype, row->root, req);
}

static double ga_value(const bench_row_t *row, int r, size_t i)
{
    return bench_value(row->dtype, RL_MAX, row->nranks, r, i);
}

static void ga_fill(const bench_row_t *row, void *buf)
{
    for (size_t i = 0; i < row->send_count; i++)
        bench_store(row->dtype, buf, i, ga_value(row, row->rank, i));
}

static size_t ga_check(const bench_row_t *row, const void *recvbuf)
{
    size_t wrong = 0;
    if (row->rank != row->root)
        return 0;
    for (int r = 0; r < row->nranks; r++) {
        const char *block = (const char *)recvbuf + (size_t)r * row->send_count * row->esize;
        for (size_t i = 0; i < row->send_count; i++)
            if (bench_load(row->dtype, block, i) != ga_value(row, r, i))
                wrong++;
    }
    return wrong;
}

static const bench_coll_t gather_coll = {
    .name = "gather",
    .has_root = 1,
    .bus_formula = "(n-1)/n",
    .bus_factor = ga_bus_factor,
    .shape = ga_shape,
    .in_place_input = ga_in_place_input,
    .start = ga_start,
    .fill = ga_fill,
    .check = ga_check,
};

int main(int argc, char **argv) { return bench_main(&gather_coll, argc, argv); }
