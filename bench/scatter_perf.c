/*
 * scatter_perf: nccl-tests-style scatter benchmark (rl_scatter).
 *   ringlet-run -n 4 --only-rank 0 ./scatter_perf -b 8 -e 64M -f 2 -r 0
 * As nccl-tests' scatter: size(B) and count describe the root's whole send
 * buffer (nranks blocks); each rank receives count / nranks elements.
 * algbw = size / time and busbw = algbw * (n-1)/n (the root sends n-1 of
 * the n blocks). In-place: the root's own block stays where it is.
 */
#include "common.h"

static double sc_bus_factor(int nranks) { return nranks > 0 ? (double)(nranks - 1) / nranks : 0.0; }

static void sc_shape(bench_row_t *row, size_t req_bytes)
{
    row->recv_count = req_bytes / (row->esize * (size_t)row->nranks);
    row->send_count = row->recv_count * (size_t)row->nranks;
    row->count = row->send_count;
    row->bytes = row->send_count * row->esize;
}

static void *sc_in_place_input(const bench_row_t *row, void *recvbuf)
{
    (void)row;
    return recvbuf;
}

static void *sc_in_place_output(const bench_row_t *row, void *recvbuf)
{
    if (row->rank != row->root)
        return recvbuf;
    return (char *)recvbuf + (size_t)row->root * row->recv_count * row->esize;
}

static rl_status_t sc_start(const bench_row_t *row, const void *sendbuf, void *recvbuf, rl_request_t *req,
                            const char **fn)
{
    const void *in = row->rank == row->root ? sendbuf : NULL; /* significant on the root only */
    if (req == NULL) {
        *fn = "rl_scatter";
        return rl_scatter(row->comm, in, recvbuf, row->recv_count, row->dtype, row->root);
    }
    *fn = "rl_iscatter";
    return rl_iscatter(row->comm, in, recvbuf, row->recv_count, row->dtype, row->root, req);
}

/* Element i of the root's block for rank `to`. */
static double sc_value(const bench_row_t *row, int to, size_t i)
{
    return bench_value(row->dtype, RL_MAX, row->nranks, (to * 3 + row->root) % row->nranks, i + (size_t)to);
}

/* Only the root's input matters: the others leave their buffer alone, so
 * a scatter that delivered nothing is caught. */
static void sc_fill(const bench_row_t *row, void *buf)
{
    if (row->rank != row->root)
        return;
    for (int to = 0; to < row->nranks; to++)
        for (size_t i = 0; i < row->recv_count; i++)
            bench_store(row->dtype, buf, (size_t)to * row->recv_count + i, sc_value(row, to, i));
}

static size_t sc_check(const bench_row_t *row, const void *recvbuf)
{
    size_t wrong = 0;
    for (size_t i = 0; i < row->recv_count; i++)
        if (bench_load(row->dtype, recvbuf, i) != sc_value(row, row->rank, i))
            wrong++;
    return wrong;
}

static const bench_coll_t scatter_coll = {
    .name = "scatter",
    .has_root = 1,
    .bus_formula = "(n-1)/n",
    .bus_factor = sc_bus_factor,
    .shape = sc_shape,
    .in_place_input = sc_in_place_input,
    .in_place_output = sc_in_place_output,
    .start = sc_start,
    .fill = sc_fill,
    .check = sc_check,
};

int main(int argc, char **argv) { return bench_main(&scatter_coll, argc, argv); }
