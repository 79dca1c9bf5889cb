/*
 * alltoallv_perf: nccl-tests-style all-to-allv benchmark (rl_all_to_allv).
 *   ringlet-run -n 4 --only-rank 0 ./alltoallv_perf -b 8 -e 64M -f 2
 * Uneven blocks, as MoE expert dispatch sends: with p = size / (nranks *
 * element size), rank i sends rank j p + p/2 elements when (j - i) mod n is
 * even and below n - n%2, p - p/2 when it is odd, p for the last of an odd
 * group. Every rank then sends and receives exactly n*p elements in
 * total, so size(B) and count describe each rank's whole send (and
 * receive) buffer, as in alltoall_perf. algbw = size / time and busbw =
 * algbw * (n-1)/n. No in-place form (N/A columns).
 */
#include <stdlib.h>

#include "common.h"

static double a2av_bus_factor(int nranks) { return nranks > 0 ? (double)(nranks - 1) / nranks : 0.0; }

static void a2av_shape(bench_row_t *row, size_t req_bytes)
{
    size_t per = req_bytes / (row->esize * (size_t)row->nranks);
    row->send_count = row->recv_count = per * (size_t)row->nranks;
    row->count = row->send_count;
    row->bytes = row->send_count * row->esize;
}

/* Elements rank `from` sends rank `to`. */
static size_t a2av_count(const bench_row_t *row, int from, int to)
{
    size_t per = row->send_count / (size_t)row->nranks;
    int n = row->nranks, k = ((to - from) % n + n) % n;
    if (k >= n - n % 2)
        return per;
    return k % 2 ? per - per / 2 : per + per / 2;
}

/* Counts and displacements of this rank for the current row, kept between
 * iterations (the timed loop should not allocate). */
typedef struct {
    size_t count, n;
    size_t *sc, *sd, *rc, *rd;
} plan_t;

static const plan_t *plan_for(const bench_row_t *row)
{
    static plan_t p;
    size_t n = (size_t)row->nranks;
    if (p.sc && p.count == row->send_count && p.n == n)
        return &p;
    free(p.sc);
    p.sc = calloc(4 * n, sizeof(size_t));
    if (!p.sc) {
        fprintf(stderr, "alltoallv_perf: out of memory\n");
        exit(1);
    }
    p.sd = p.sc + n, p.rc = p.sc + 2 * n, p.rd = p.sc + 3 * n;
    p.count = row->send_count, p.n = n;
    size_t so = 0, ro = 0;
    for (int j = 0; j < row->nranks; j++) {
        p.sc[j] = a2av_count(row, row->rank, j);
        p.rc[j] = a2av_count(row, j, row->rank);
        p.sd[j] = so, so += p.sc[j];
        p.rd[j] = ro, ro += p.rc[j];
    }
    return &p;
}

static rl_status_t a2av_start(const bench_row_t *row, const void *sendbuf, void *recvbuf, rl_request_t *req,
                              const char **fn)
{
    const plan_t *p = plan_for(row);
    if (req == NULL) {
        *fn = "rl_all_to_allv";
        return rl_all_to_allv(row->comm, sendbuf, p->sc, p->sd, recvbuf, p->rc, p->rd, row->dtype);
    }
    *fn = "rl_iall_to_allv";
    return rl_iall_to_allv(row->comm, sendbuf, p->sc, p->sd, recvbuf, p->rc, p->rd, row->dtype, req);
}

static double a2av_value(const bench_row_t *row, int from, int to, size_t i)
{
    return bench_value(row->dtype, RL_MAX, row->nranks, (from * 7 + to) % row->nranks, i + (size_t)from);
}

static void a2av_fill(const bench_row_t *row, void *buf)
{
    const plan_t *p = plan_for(row);
    for (int to = 0; to < row->nranks; to++)
        for (size_t i = 0; i < p->sc[to]; i++)
            bench_store(row->dtype, buf, p->sd[to] + i, a2av_value(row, row->rank, to, i));
}

static size_t a2av_check(const bench_row_t *row, const void *recvbuf)
{
    const plan_t *p = plan_for(row);
    size_t wrong = 0;
    for (int from = 0; from < row->nranks; from++)
        for (size_t i = 0; i < p->rc[from]; i++)
            if (bench_load(row->dtype, recvbuf, p->rd[from] + i) != a2av_value(row, from, row->rank, i))
                wrong++;
    return wrong;
}

static const bench_coll_t alltoallv_coll = {
    .name = "alltoallv",
    .bus_formula = "(n-1)/n",
    .bus_factor = a2av_bus_factor,
    .shape = a2av_shape,
    .start = a2av_start,
    .fill = a2av_fill,
    .check = a2av_check,
};

int main(int argc, char **argv) { return bench_main(&alltoallv_coll, argc, argv); }
