/*
 * sendrecv_perf: nccl-tests-style send/recv benchmark.
 *   ringlet-run -n 4 --only-rank 0 ./sendrecv_perf -b 8 -e 64M -f 2
 * Every rank sends size bytes to rank + 1 and receives as much from
 * rank - 1 at the same time (one group). algbw = size / time and busbw =
 * algbw (factor 1), as in nccl-tests. There is no in-place form.
 */
#include "common.h"

static double sr_bus_factor(int nranks) { return nranks > 0 ? 1.0 : 0.0; }

static void sr_shape(bench_row_t *row, size_t req_bytes)
{
    row->count = req_bytes / row->esize;
    row->send_count = row->recv_count = row->count;
    row->bytes = row->count * row->esize;
}

static rl_status_t sr_start(const bench_row_t *row, const void *sendbuf, void *recvbuf, rl_request_t *req,
                            const char **fn)
{
    int next = (row->rank + 1) % row->nranks, prev = (row->rank + row->nranks - 1) % row->nranks;
    if (row->nranks == 1) {
        /* nobody to talk to: nccl-tests copies to itself */
        *fn = "rl_all_gather";
        return req ? rl_iall_gather(row->comm, sendbuf, recvbuf, row->count, row->dtype, req)
                   : rl_all_gather(row->comm, sendbuf, recvbuf, row->count, row->dtype);
    }
    if (req == NULL) {
        *fn = "rl_send/rl_recv (group)";
        rl_status_t st = rl_group_start(row->comm);
        if (st == RL_OK)
            st = rl_send(row->comm, sendbuf, row->count, row->dtype, next);
        if (st == RL_OK)
            st = rl_recv(row->comm, recvbuf, row->count, row->dtype, prev);
        rl_status_t end = rl_group_end(row->comm);
        return st != RL_OK ? st : end;
    }
    /* -z 0: rl_isend and rl_irecv; the driver waits for one request, so
     * the send is waited for here (after the receive was posted) and the
     * receive by the driver */
    *fn = "rl_isend/rl_irecv";
    rl_request_t s;
    rl_status_t st = rl_isend(row->comm, sendbuf, row->count, row->dtype, next, &s);
    if (st != RL_OK)
        return st;
    st = rl_irecv(row->comm, recvbuf, row->count, row->dtype, prev, req);
    rl_status_t ws = rl_wait(s, -1);
    rl_request_free(s);
    return st != RL_OK ? st : ws;
}

static double sr_value(const bench_row_t *row, int r, size_t i) { return bench_value(row->dtype, RL_MAX, row->nranks, r, i); }

static void sr_fill(const bench_row_t *row, void *buf)
{
    for (size_t i = 0; i < row->send_count; i++)
        bench_store(row->dtype, buf, i, sr_value(row, row->rank, i));
}

static size_t sr_check(const bench_row_t *row, const void *recvbuf)
{
    int prev = (row->rank + row->nranks - 1) % row->nranks;
    size_t wrong = 0;
    for (size_t i = 0; i < row->recv_count; i++)
        if (bench_load(row->dtype, recvbuf, i) != sr_value(row, prev, i))
            wrong++;
    return wrong;
}

static const bench_coll_t sendrecv_coll = {
    .name = "sendrecv",
    .bus_formula = "1",
    .bus_factor = sr_bus_factor,
    .shape = sr_shape,
    .start = sr_start,
    .fill = sr_fill,
    .check = sr_check,
};

int main(int argc, char **argv) { return bench_main(&sendrecv_coll, argc, argv); }
