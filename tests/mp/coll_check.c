/*
 * Multi-process correctness check, run as one rank under ringlet-run.
 * Every rank can compute every rank's input from a formula, so each checks
 * its result element by element against a reference it computes alone, by a
 * plain loop over ranks in reverse order, with no ringlet code involved.
 * Inputs are small integers (and +-1, 2 for products) so every reduction
 * order gives the exact same answer in every datatype.
 *
 *   coll_check [--big] [--quick] [--large BYTES] [--mismatch] [--register]
 *     --big      every dtype and op at 8 MiB too
 *     --register every buffer registered with rl_mem_register first
 *     --quick    fewer counts and dtypes (slow transports: SoftRoCE)
 *     --large B  one float32 sum all-reduce and one all-gather of B bytes
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringlet.h"

static int rank, nranks, register_all;
static long failures;

#define CHECK(call)                                                                                          \
    do {                                                                                                     \
        rl_status_t st_ = (call);                                                                            \
        if (st_ != RL_OK) {                                                                                  \
            fprintf(stderr, "rank %d: %s -> %s: %s\n", rank, #call, rl_status_name(st_),                     \
                    rl_comm_last_error(comm));                                                               \
            exit(1);                                                                                         \
        }                                                                                                    \
    } while (0)

/* Rank r's input element i for an operation. */
static int64_t gen(int r, size_t i, rl_op_t op)
{
    if (op == RL_PROD) {
        unsigned v = (unsigned)((size_t)r * 7 + i * 3) % 11;
        return v == 0 ? 2 : v == 5 ? -1 : 1;
    }
    return (int64_t)(((size_t)r * 37 + i * 13 + 5) % 23) - 11;
}

static int64_t ref_reduce(size_t i, rl_op_t op)
{
    int64_t acc = gen(nranks - 1, i, op);
    for (int r = nranks - 2; r >= 0; r--) {
        int64_t v = gen(r, i, op);
        switch (op) {
        case RL_SUM: acc += v; break;
        case RL_PROD: acc *= v; break;
        case RL_MIN: acc = v < acc ? v : acc; break;
        case RL_MAX: acc = v > acc ? v : acc; break;
        default: abort();
        }
    }
    return acc;
}

static void put(void *buf, size_t i, rl_dtype_t dt, int64_t v)
{
    switch (dt) {
    case RL_FLOAT32: ((float *)buf)[i] = (float)v; break;
    case RL_FLOAT64: ((double *)buf)[i] = (double)v; break;
    case RL_INT32: ((int32_t *)buf)[i] = (int32_t)v; break;
    case RL_INT64: ((int64_t *)buf)[i] = v; break;
    default: abort();
    }
}

static int same(const void *buf, size_t i, rl_dtype_t dt, int64_t v)
{
    switch (dt) {
    case RL_FLOAT32: return ((const float *)buf)[i] == (float)v;
    case RL_FLOAT64: return ((const double *)buf)[i] == (double)v;
    case RL_INT32: return ((const int32_t *)buf)[i] == (int32_t)v;
    case RL_INT64: return ((const int64_t *)buf)[i] == v;
    default: abort();
    }
}

static double getd(const void *buf, size_t i, rl_dtype_t dt)
{
    switch (dt) {
    case RL_FLOAT32: return ((const float *)buf)[i];
    case RL_FLOAT64: return ((const double *)buf)[i];
    case RL_INT32: return ((const int32_t *)buf)[i];
    case RL_INT64: return (double)((const int64_t *)buf)[i];
    default: abort();
    }
}

static void report(const char *what, size_t count, rl_dtype_t dt, const char *op, int inplace, size_t bad,
                   size_t first, double got, double want)
{
    if (!bad)
        return;
    failures++;
    fprintf(stderr, "rank %d: %s count=%zu %s %s %s: %zu wrong elements, first at %zu: got %.17g want %.17g\n", rank,
            what, count, rl_dtype_name(dt), op, inplace ? "in-place" : "out-of-place", bad, first, got, want);
}

static void check_all_reduce(rl_comm_t comm, size_t count, rl_dtype_t dt, rl_op_t op, int inplace, int nonblocking)
{
    size_t es = rl_dtype_size(dt);
    /* Guard bytes after the output catch writes past the end. */
    char *in = malloc(count * es + 1), *out = malloc(count * es + 64);
    for (size_t i = 0; i < count; i++)
        put(in, i, dt, gen(rank, i, op));
    memset(out, 0xA5, count * es + 64);
    void *dst = inplace ? in : out;
    rl_mem_t rin = NULL, rout = NULL;
    if (register_all && count) {
        CHECK(rl_mem_register(comm, in, count * es, &rin));
        if (!inplace)
            CHECK(rl_mem_register(comm, out, count * es, &rout));
    }
    if (nonblocking) {
        rl_request_t req;
        CHECK(rl_iall_reduce(comm, in, dst, count, dt, op, &req));
        rl_status_t st = rl_wait(req, -1);
        rl_request_free(req);
        CHECK(st);
    } else {
        CHECK(rl_all_reduce(comm, in, dst, count, dt, op));
    }
    size_t bad = 0, first = 0;
    double got = 0, want = 0;
    for (size_t i = 0; i < count; i++) {
        int64_t w = ref_reduce(i, op);
        if (!same(dst, i, dt, w)) {
            if (!bad++) {
                first = i;
                got = getd(dst, i, dt);
                want = (double)w;
            }
        }
    }
    if (!inplace)
        for (size_t i = count * es; i < count * es + 64; i++)
            if ((unsigned char)out[i] != 0xA5 && !bad++)
                first = i;
    report(rin ? "all_reduce(registered)" : "all_reduce", count, dt, rl_op_name(op), inplace, bad, first, got, want);
    if (rin)
        CHECK(rl_mem_deregister(comm, rin));
    if (rout)
        CHECK(rl_mem_deregister(comm, rout));
    free(in);
    free(out);
}

static void check_all_gather(rl_comm_t comm, size_t count, rl_dtype_t dt, int inplace, rl_mem_t *regp)
{
    size_t es = rl_dtype_size(dt);
    char *out = malloc(count * es * (size_t)nranks + 64), *in = malloc(count * es + 1);
    memset(out, 0x5A, count * es * (size_t)nranks + 64);
    char *src = inplace ? out + (size_t)rank * count * es : in;
    for (size_t i = 0; i < count; i++)
        put(src, i, dt, gen(rank, i, RL_SUM) * 3 + rank);
    rl_mem_t reg = NULL;
    if ((regp || register_all) && count)
        CHECK(rl_mem_register(comm, out, count * es * (size_t)nranks, &reg));
    CHECK(rl_all_gather(comm, src, out, count, dt));
    size_t bad = 0, first = 0;
    double got = 0, want = 0;
    for (int r = nranks - 1; r >= 0; r--) {
        for (size_t i = 0; i < count; i++) {
            size_t k = (size_t)r * count + i;
            int64_t w = gen(r, i, RL_SUM) * 3 + r;
            if (!same(out, k, dt, w) && !bad++) {
                first = k;
                got = getd(out, k, dt);
                want = (double)w;
            }
        }
    }
    for (size_t i = count * es * (size_t)nranks; i < count * es * (size_t)nranks + 64; i++)
        if ((unsigned char)out[i] != 0x5A && !bad++)
            first = i;
    report(reg ? "all_gather(registered)" : "all_gather", count, dt, "-", inplace, bad, first, got, want);
    if (reg)
        CHECK(rl_mem_deregister(comm, reg));
    free(in);
    free(out);
}

/* Ranks disagree on the count: every rank must get an error, none may hang. */
static int run_mismatch(rl_comm_t comm)
{
    size_t count = 1000 + (rank == nranks - 1 ? 1 : 0);
    float *buf = calloc(count, sizeof(float));
    rl_status_t st = rl_all_reduce(comm, buf, buf, count, RL_FLOAT32, RL_SUM);
    free(buf);
    if (st == RL_OK) {
        fprintf(stderr, "rank %d: mismatched counts went undetected\n", rank);
        return 1;
    }
    printf("rank %d: mismatch reported: %s: %s\n", rank, rl_status_name(st), rl_comm_last_error(comm));
    return (st == RL_ERR_MISMATCH || st == RL_ERR_PEER_FAILED) ? 0 : 1;
}

int main(int argc, char **argv)
{
    int big = 0, quick = 0, mismatch = 0;
    size_t large = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--big"))
            big = 1;
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--mismatch"))
            mismatch = 1;
        else if (!strcmp(argv[i], "--register"))
            register_all = 1;
        else if (!strcmp(argv[i], "--large") && i + 1 < argc)
            large = strtoull(argv[++i], NULL, 0);
        else {
            fprintf(stderr, "usage: coll_check [--big] [--quick] [--large BYTES] [--mismatch] [--register]\n");
            return 2;
        }
    }
    rl_comm_t comm = NULL;
    CHECK(rl_comm_create(NULL, &comm));
    CHECK(rl_comm_rank(comm, &rank));
    CHECK(rl_comm_size(comm, &nranks));
    if (mismatch) {
        int rc = run_mismatch(comm);
        rl_comm_destroy(comm);
        return rc;
    }
    const rl_dtype_t dts[] = {RL_FLOAT32, RL_FLOAT64, RL_INT32, RL_INT64};
    const rl_op_t ops[] = {RL_SUM, RL_PROD, RL_MIN, RL_MAX};
    size_t counts[8];
    int nc = 0;
    counts[nc++] = 0;
    counts[nc++] = 1;
    counts[nc++] = (size_t)nranks - 1;
    counts[nc++] = 1031; /* prime */
    if (!quick)
        counts[nc++] = 65537 * 3; /* several chunks per block, prime-ish */
    int ndt = quick ? 2 : 4;
    for (int c = 0; c < nc; c++)
        for (int d = 0; d < ndt; d++)
            for (int o = 0; o < 4; o++)
                for (int ip = 0; ip < 2; ip++)
                    check_all_reduce(comm, counts[c], dts[d], ops[o], ip, (c + d + o + ip) % 2);
    for (int c = 0; c < nc; c++)
        for (int d = 0; d < ndt; d++)
            for (int ip = 0; ip < 2; ip++)
                check_all_gather(comm, counts[c], dts[d], ip, NULL);
    check_all_gather(comm, 4099, RL_INT32, 0, (rl_mem_t *)1);
    if (big) {
        /* At least 8 MiB per buffer, not divisible by the rank count. */
        for (int d = 0; d < 4; d++) {
            size_t count = (8u << 20) / rl_dtype_size(dts[d]) + 7;
            for (int o = 0; o < 4; o++)
                for (int ip = 0; ip < 2; ip++)
                    check_all_reduce(comm, count, dts[d], ops[o], ip, ip);
            for (int ip = 0; ip < 2; ip++)
                check_all_gather(comm, count / (size_t)nranks + 1, dts[d], ip, NULL);
        }
    }
    if (large) {
        size_t count = large / sizeof(float) + 3;
        for (int ip = 0; ip < 2; ip++) {
            check_all_reduce(comm, count, RL_FLOAT32, RL_SUM, ip, ip);
            check_all_gather(comm, count / (size_t)nranks + 1, RL_FLOAT32, ip, NULL);
        }
    }
    CHECK(rl_comm_destroy(comm));
    if (failures) {
        fprintf(stderr, "rank %d: %ld checks FAILED\n", rank, failures);
        return 1;
    }
    printf("rank %d: all checks passed (%d ranks, transport checked%s)\n", rank, nranks, big ? ", big sizes" : "");
    return 0;
}
