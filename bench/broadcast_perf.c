/*
 * broadcast_perf: nccl-tests-style broadcast benchmark.
 *   ringlet-run -n 4 --only-rank 0 ./broadcast_perf -b 8 -e 64M -f 2 -r 0
 * size(B) and count are the buffer every rank receives; algbw = size / time
 * and busbw = algbw (factor 1), as in nccl-tests.
 */
#include "common.h"

static double bc_bus_factor(int nranks) { return nranks > 0 ? 1.0 : 0.0; }

static void bc_shape(bench_row_t *row, size_t req_bytes)
{
    row->count = req_bytes / row->esize;
    row->send_count = row->recv_count = row->count;
    row->bytes = row->count * row->esize;
}

static void *bc_in_place_input(const bench_row_t *row, void *recvbuf)
{
    (void)row;
    return recvbuf;
}

static rl_status_t bc_start(const bench_row_t *row, const void *sendbuf, void *recvbuf, rl_request_t *req,
                            const char **fn)
{
    if (req == NULL) {
        *fn = "rl_broadcast";
        return rl_broadcast(row->comm, sendbuf, recvbuf, row->count, row->dtype, row->root);
    }
    *fn = "rl_ibroadcast";
    return rl_ibroadcast(row->comm, sendbuf, recvbuf, row->count, row->dtype, row->root, req);
}

/* Every rank writes its own pattern: only the root's may survive, so an
 * in-place broadcast that moved nothing is caught on the other ranks. */
static double bc_value(const bench_row_t *row, int r, size_t i)
{
    return bench_value(row->dtype, RL_MAX, row->nranks, r, i);
}

static void bc_fill(const bench_row_t *row, void *buf)
{
    for (size_t i = 0; i < row->send_count; i++)
        bench_store(row->dtype, buf, i, bc_value(row, row->rank, i));
}

static size_t bc_check(const bench_row_t *row, const void *recvbuf)
{
    size_t wrong = 0;
    for (size_t i = 0; i < row->recv_count; i++)
        if (bench_load(row->dtype, recvbuf, i) != bc_value(row, row->root, i))
            wrong++;
    return wrong;
}

static const bench_coll_t broadcast_coll = {
    .name = "broadcast",
    .has_root = 1,
    .bus_formula = "1",
    .bus_factor = bc_bus_factor,
    .shape = bc_shape,
    .in_place_input = bc_in_place_input,
    .start = bc_start,
    .fill = bc_fill,
    .check = bc_check,
};

int main(int argc, char **argv) { return bench_main(&broadcast_coll, argc, argv); }
