/*
 * Multi-process correctness check, run as one rank under ringlet-run.
 * Every rank can compute every rank's input from a formula, so each checks
 * its result element by element against a reference it computes alone, by a
 * plain loop over ranks in reverse order, with no ringlet code involved.
 * Inputs are small integers (and +-1, 2 for products) so every reduction
 * order gives the exact same answer in every datatype.
 *
 * Covers all-reduce, reduce-scatter, reduce and broadcast (rotating and
 * every root), all-gather and barrier, in-place and out-of-place, blocking
 * and non-blocking, every dtype and op, counts 0, 1, n-1, a prime and more.
 *
 *   coll_check [--big] [--quick] [--large BYTES] [--mismatch] [--mismatch-algo] [--mismatch-p2p] [--digest] [--register]
 *              [--mixed-zero]
 *     --mixed-zero  blocking all-reduces whose counts alternate with 0 (empty
 *                gradient buckets) across the eager, halving-doubling and ring sizes
 *     --register every all-reduce and all-gather buffer registered first
 *     --big      four dtypes at 8 MiB too
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

static int is_float(rl_dtype_t dt) { return dt == RL_FLOAT16 || dt == RL_BFLOAT16 || dt == RL_FLOAT32 || dt == RL_FLOAT64; }

/* bfloat16 of a float that bfloat16 holds exactly (small integers): the
 * top half of its bits. Independent of ringlet's rounding conversion. */
static uint16_t bf16_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}
static float float_of_bf16(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* float16 bits of a float, mantissa truncated (exact for the small
 * integers the checks use); and back, exactly. Written out here so the
 * test depends neither on ringlet's conversions nor on compiler support
 * for _Float16. */
static uint16_t f16_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    int e = (int)((u >> 23) & 0xff) - 127 + 15;
    uint32_t m = u & 0x7fffffu;
    if (((u >> 23) & 0xff) == 0)
        return sign; /* zero (float subnormals are far below half's range) */
    if (e >= 31)
        return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) /* half subnormal */
        return e < -10 ? sign : (uint16_t)(sign | ((m | 0x800000u) >> (14 - e)));
    return (uint16_t)(sign | (uint32_t)e << 10 | m >> 13);
}
static float float_of_f16(uint16_t h)
{
    int e = (h >> 10) & 0x1f;
    float m = (float)(h & 0x3ff);
    float v = e == 0 ? ldexpf(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf(m + 1024.0f, e - 25);
    return h & 0x8000 ? -v : v;
}

/* Store v (a small integer) as element i of dt. */
static void put(void *buf, size_t i, rl_dtype_t dt, int64_t v)
{
    switch (dt) {
    case RL_INT8: ((int8_t *)buf)[i] = (int8_t)v; break;
    case RL_UINT8: ((uint8_t *)buf)[i] = (uint8_t)v; break;
    case RL_INT32: ((int32_t *)buf)[i] = (int32_t)v; break;
    case RL_UINT32: ((uint32_t *)buf)[i] = (uint32_t)v; break;
    case RL_INT64: ((int64_t *)buf)[i] = v; break;
    case RL_UINT64: ((uint64_t *)buf)[i] = (uint64_t)v; break;
    case RL_FLOAT16: ((uint16_t *)buf)[i] = f16_of((float)v); break;
    case RL_BFLOAT16: ((uint16_t *)buf)[i] = bf16_of((float)v); break;
    case RL_FLOAT32: ((float *)buf)[i] = (float)v; break;
    case RL_FLOAT64: ((double *)buf)[i] = (double)v; break;
    default: abort();
    }
}

static double getd(const void *buf, size_t i, rl_dtype_t dt)
{
    switch (dt) {
    case RL_INT8: return ((const int8_t *)buf)[i];
    case RL_UINT8: return ((const uint8_t *)buf)[i];
    case RL_INT32: return ((const int32_t *)buf)[i];
    case RL_UINT32: return ((const uint32_t *)buf)[i];
    case RL_INT64: return (double)((const int64_t *)buf)[i];
    case RL_UINT64: return (double)((const uint64_t *)buf)[i];
    case RL_FLOAT16: return float_of_f16(((const uint16_t *)buf)[i]);
    case RL_BFLOAT16: return float_of_bf16(((const uint16_t *)buf)[i]);
    case RL_FLOAT32: return ((const float *)buf)[i];
    case RL_FLOAT64: return ((const double *)buf)[i];
    default: abort();
    }
}

#define FOLD(T, a, b, op)                                                                                    \
    ((op) == RL_SUM ? (T)((a) + (b)) : (op) == RL_PROD ? (T)((a) * (b)) : (op) == RL_MIN ? ((b) < (a) ? (b) : (a)) \
                                                                                          : ((b) > (a) ? (b) : (a)))

/* Element i of the reduction over all ranks, in dt's own arithmetic (so
 * unsigned types wrap as C defines), folded in reverse rank order by a plain
 * loop: no ringlet code involved. Written into ref[i]. */
static void ref_reduce(void *ref, size_t i, rl_dtype_t dt, rl_op_t op)
{
    rl_op_t fop = op == RL_AVG ? RL_SUM : op;
#define REF_CASE(DT, T)                                                                                      \
    case DT: {                                                                                               \
        T acc = (T)gen(nranks - 1, i, fop);                                                                  \
        for (int r = nranks - 2; r >= 0; r--) {                                                              \
            T v = (T)gen(r, i, fop);                                                                         \
            acc = FOLD(T, acc, v, fop);                                                                      \
        }                                                                                                    \
        if (op == RL_AVG)                                                                                    \
            acc = (T)(acc / (T)nranks);                                                                      \
        ((T *)ref)[i] = acc;                                                                                 \
        return;                                                                                              \
    }
    switch (dt) {
        REF_CASE(RL_INT8, int8_t)
        REF_CASE(RL_UINT8, uint8_t)
        REF_CASE(RL_INT32, int32_t)
        REF_CASE(RL_UINT32, uint32_t)
        REF_CASE(RL_INT64, int64_t)
        REF_CASE(RL_UINT64, uint64_t)
        REF_CASE(RL_FLOAT32, float)
        REF_CASE(RL_FLOAT64, double)
    case RL_FLOAT16:
    case RL_BFLOAT16: {
        /* every partial result is a small integer: float holds it exactly */
        float acc = (float)gen(nranks - 1, i, fop);
        for (int r = nranks - 2; r >= 0; r--)
            acc = FOLD(float, acc, (float)gen(r, i, fop), fop);
        /* avg is compared with a tolerance against avg_want() instead */
        if (op == RL_AVG)
            acc = 0.0f;
        ((uint16_t *)ref)[i] = dt == RL_FLOAT16 ? f16_of(acc) : bf16_of(acc);
        return;
    }
    default: abort();
    }
#undef REF_CASE
}

/* Exact match, except avg, which rounds: within a few units in the last
 * place of the type. */
static int same_elem(const void *got, const void *want, size_t i, rl_dtype_t dt, rl_op_t op, double avg_want)
{
    size_t es = rl_dtype_size(dt);
    if (op != RL_AVG)
        return memcmp((const char *)got + i * es, (const char *)want + i * es, es) == 0;
    double g = getd(got, i, dt);
    double tol = dt == RL_FLOAT64 ? 1e-12 : dt == RL_FLOAT32 ? 1e-6 : dt == RL_FLOAT16 ? 2e-3 : 1.6e-2;
    return fabs(g - avg_want) <= tol * (fabs(avg_want) > 1 ? fabs(avg_want) : 1);
}

static double avg_want(size_t i)
{
    double s = 0;
    for (int r = 0; r < nranks; r++)
        s += (double)gen(r, i, RL_SUM);
    return s / nranks;
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

/* Compare n elements of got (a reduction result for input index base+i)
 * with the reference. */
static size_t check_reduced(const char *what, const void *got, size_t n, size_t base, rl_dtype_t dt, rl_op_t op,
                            size_t count, int inplace)
{
    size_t es = rl_dtype_size(dt), bad = 0, first = 0;
    double g = 0, w = 0;
    char *ref = malloc(es * (base + n) + 1);
    for (size_t i = 0; i < n; i++) {
        ref_reduce(ref, base + i, dt, op);
        double aw = op == RL_AVG ? avg_want(base + i) : 0;
        if (!same_elem((const char *)got - base * es, ref, base + i, dt, op, aw) && !bad++) {
            first = i;
            g = getd(got, i, dt);
            w = op == RL_AVG ? aw : getd(ref, base + i, dt);
        }
    }
    free(ref);
    report(what, count, dt, rl_op_name(op), inplace, bad, first, g, w);
    return bad;
}

static int guard_ok(const char *buf, size_t from, unsigned char pat)
{
    for (size_t i = from; i < from + 64; i++)
        if ((unsigned char)buf[i] != pat)
            return 0;
    return 1;
}

static void guard_report(const char *what, size_t count, rl_dtype_t dt, int inplace)
{
    failures++;
    fprintf(stderr, "rank %d: %s count=%zu %s %s: wrote past the end of the output\n", rank, what, count,
            rl_dtype_name(dt), inplace ? "in-place" : "out-of-place");
}

static void finish(rl_comm_t comm, rl_status_t st, rl_request_t req)
{
    if (req) {
        st = rl_wait(req, -1);
        rl_request_free(req);
    }
    CHECK(st);
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
    rl_request_t req = NULL;
    rl_status_t st = nonblocking ? rl_iall_reduce(comm, in, dst, count, dt, op, &req) : rl_all_reduce(comm, in, dst, count, dt, op);
    finish(comm, st, req);
    check_reduced(rin ? "all_reduce(registered)" : "all_reduce", dst, count, 0, dt, op, count, inplace);
    if (!inplace && !guard_ok(out, count * es, 0xA5))
        guard_report("all_reduce", count, dt, inplace);
    if (rin)
        CHECK(rl_mem_deregister(comm, rin));
    if (rout)
        CHECK(rl_mem_deregister(comm, rout));
    free(in);
    free(out);
}

static void check_reduce_scatter(rl_comm_t comm, size_t count, rl_dtype_t dt, rl_op_t op, int inplace,
                                 int nonblocking)
{
    size_t es = rl_dtype_size(dt), n = (size_t)nranks;
    char *in = malloc(count * es * n + 64), *out = malloc(count * es + 64);
    for (size_t i = 0; i < count * n; i++)
        put(in, i, dt, gen(rank, i, op));
    memset(out, 0xA5, count * es + 64);
    memset(in + count * es * n, 0xA5, 64);
    char *dst = inplace ? in + (size_t)rank * count * es : out;
    rl_request_t req = NULL;
    rl_status_t st = nonblocking ? rl_ireduce_scatter(comm, in, dst, count, dt, op, &req) : rl_reduce_scatter(comm, in, dst, count, dt, op);
    finish(comm, st, req);
    check_reduced("reduce_scatter", dst, count, (size_t)rank * count, dt, op, count, inplace);
    if (!guard_ok(inplace ? in : out, inplace ? count * es * n : count * es, 0xA5))
        guard_report("reduce_scatter", count, dt, inplace);
    free(in);
    free(out);
}

static void check_reduce(rl_comm_t comm, size_t count, rl_dtype_t dt, rl_op_t op, int root, int inplace,
                         int nonblocking)
{
    size_t es = rl_dtype_size(dt);
    char *in = malloc(count * es + 1), *out = malloc(count * es + 64);
    for (size_t i = 0; i < count; i++)
        put(in, i, dt, gen(rank, i, op));
    memset(out, 0xA5, count * es + 64);
    /* non-roots pass no output at all */
    char *dst = rank != root ? NULL : inplace ? in : out;
    rl_request_t req = NULL;
    rl_status_t st = nonblocking ? rl_ireduce(comm, in, dst, count, dt, op, root, &req) : rl_reduce(comm, in, dst, count, dt, op, root);
    finish(comm, st, req);
    if (rank == root) {
        check_reduced("reduce", dst, count, 0, dt, op, count, inplace);
        if (!inplace && !guard_ok(out, count * es, 0xA5))
            guard_report("reduce", count, dt, inplace);
    }
    /* the input is only read, on every rank */
    char *w = malloc(es + 1);
    size_t touched = 0;
    for (size_t i = 0; i < count && !(inplace && rank == root); i++) {
        put(w, 0, dt, gen(rank, i, op));
        touched += memcmp(in + i * es, w, es) != 0;
    }
    free(w);
    if (touched) {
        failures++;
        fprintf(stderr, "rank %d: reduce(root %d) changed %zu elements of its input\n", rank, root, touched);
    }
    free(in);
    free(out);
}

static void check_broadcast(rl_comm_t comm, size_t count, rl_dtype_t dt, int root, int inplace, int nonblocking)
{
    size_t es = rl_dtype_size(dt);
    char *in = malloc(count * es + 1), *out = malloc(count * es + 64);
    memset(out, 0xA5, count * es + 64);
    char *src = rank == root ? (inplace ? out : in) : NULL;
    if (src)
        for (size_t i = 0; i < count; i++)
            put(src, i, dt, gen(root, i, RL_SUM) * 2 + root);
    rl_request_t req = NULL;
    rl_status_t st = nonblocking ? rl_ibroadcast(comm, src, out, count, dt, root, &req) : rl_broadcast(comm, src, out, count, dt, root);
    finish(comm, st, req);
    char *want = malloc(count * es + 1);
    for (size_t i = 0; i < count; i++)
        put(want, i, dt, gen(root, i, RL_SUM) * 2 + root);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < count; i++)
        if (memcmp(out + i * es, want + i * es, es) && !bad++)
            first = i;
    char what[32];
    snprintf(what, sizeof(what), "broadcast(root %d)", root);
    report(what, count, dt, "-", inplace, bad, first, bad ? getd(out, first, dt) : 0,
           bad ? getd(want, first, dt) : 0);
    if (!guard_ok(out, count * es, 0xA5))
        guard_report(what, count, dt, inplace);
    free(want);
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
    char *w = malloc(es + 1);
    for (int r = nranks - 1; r >= 0; r--) {
        for (size_t i = 0; i < count; i++) {
            size_t k = (size_t)r * count + i;
            put(w, 0, dt, gen(r, i, RL_SUM) * 3 + r);
            if (memcmp(out + k * es, w, es) && !bad++) {
                first = k;
                got = getd(out, k, dt);
                want = getd(w, 0, dt);
            }
        }
    }
    free(w);
    if (!guard_ok(out, count * es * (size_t)nranks, 0x5A))
        guard_report("all_gather", count, dt, inplace);
    report(reg ? "all_gather(registered)" : "all_gather", count, dt, "-", inplace, bad, first, got, want);
    if (reg)
        CHECK(rl_mem_deregister(comm, reg));
    free(in);
    free(out);
}

/* A barrier must not return before every rank entered it: rank r sleeps r
 * times 20 ms first; nobody may leave before the last one arrived. */
static double realtime_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* No rank may leave the barrier before the last one entered it. Ranks
 * enter at staggered times; each compares its own exit with the latest
 * entry over all ranks, on the clock they share (one host, or one VM),
 * so scheduling delays before the barrier cannot make it look early. */
static void check_barrier(rl_comm_t comm)
{
    CHECK(rl_barrier(comm)); /* line up */
    struct timespec d = {0, (long)(nranks - 1 - rank) * 20000000L};
    nanosleep(&d, NULL);
    double entered = realtime_ms();
    CHECK(rl_barrier(comm));
    double left = realtime_ms(), last_in = entered;
    CHECK(rl_all_reduce(comm, &last_in, &last_in, 1, RL_FLOAT64, RL_MAX));
    if (left < last_in) {
        failures++;
        fprintf(stderr, "rank %d: barrier returned %.3f ms before the last rank entered it\n", rank, last_in - left);
    }
    for (int i = 0; i < 50; i++) /* many in a row: no drift, no overflow */
        CHECK(rl_barrier(comm));
}

/* Value of element i of the block rank `from` sends to rank `to`. */
static int64_t p2p_val(int from, int to, size_t i) { return (int64_t)((from * 31 + to * 7 + (int)(i % 97)) % 101) - 50; }

static size_t check_block(const char *what, const char *buf, size_t count, rl_dtype_t dt, int from, int to)
{
    size_t es = rl_dtype_size(dt), bad = 0, first = 0;
    char w[16];
    for (size_t i = 0; i < count; i++) {
        put(w, 0, dt, p2p_val(from, to, i));
        if (memcmp(buf + i * es, w, es) && !bad++)
            first = i;
    }
    if (bad) {
        failures++;
        fprintf(stderr, "rank %d: %s count=%zu %s: block from rank %d: %zu wrong elements, first at %zu\n", rank,
                what, count, rl_dtype_name(dt), from, bad, first);
    }
    return bad;
}

static void check_all_to_all(rl_comm_t comm, size_t count, rl_dtype_t dt, int nonblocking)
{
    size_t es = rl_dtype_size(dt), n = (size_t)nranks, blk = count * es;
    char *in = malloc(blk * n + 1), *out = malloc(blk * n + 64);
    for (int to = 0; to < nranks; to++)
        for (size_t i = 0; i < count; i++)
            put(in + (size_t)to * blk, i, dt, p2p_val(rank, to, i));
    memset(out, 0xA5, blk * n + 64);
    rl_request_t req = NULL;
    rl_status_t st = nonblocking ? rl_iall_to_all(comm, in, out, count, dt, &req)
                                 : rl_all_to_all(comm, in, out, count, dt);
    finish(comm, st, req);
    for (int from = 0; from < nranks; from++)
        check_block("all_to_all", out + (size_t)from * blk, count, dt, from, rank);
    if (!guard_ok(out, blk * n, 0xA5))
        guard_report("all_to_all", count, dt, 0);
    free(in);
    free(out);
}

/* Pipeline-style exchange in a group: every rank sends to the next and
 * receives from the previous, with blocking calls that would deadlock
 * outside a group. Then many messages in flight between one pair (more
 * than the clear-to-send slots), and blocking ping-pong with rank 0. */
static void check_send_recv(rl_comm_t comm, size_t count, rl_dtype_t dt)
{
    if (nranks == 1)
        return;
    size_t es = rl_dtype_size(dt);
    int next = (rank + 1) % nranks, prev = (rank + nranks - 1) % nranks;
    char *tx = malloc(count * es + 1), *rx = malloc(count * es + 64);
    for (size_t i = 0; i < count; i++)
        put(tx, i, dt, p2p_val(rank, next, i));
    memset(rx, 0xA5, count * es + 64);
    CHECK(rl_group_start(comm));
    CHECK(rl_send(comm, tx, count, dt, next));
    CHECK(rl_recv(comm, rx, count, dt, prev));
    CHECK(rl_group_end(comm));
    check_block("send/recv(group)", rx, count, dt, prev, rank);
    if (!guard_ok(rx, count * es, 0xA5))
        guard_report("send/recv", count, dt, 0);

    enum { MANY = 11 };
    rl_request_t reqs[2 * MANY];
    char *many_tx = malloc(MANY * count * es + 1), *many_rx = malloc(MANY * count * es + 1);
    for (int k = 0; k < MANY; k++)
        for (size_t i = 0; i < count; i++)
            put(many_tx + (size_t)k * count * es, i, dt, p2p_val(rank + k, next, i));
    for (int k = 0; k < MANY; k++)
        CHECK(rl_irecv(comm, many_rx + (size_t)k * count * es, count, dt, prev, &reqs[k]));
    for (int k = 0; k < MANY; k++)
        CHECK(rl_isend(comm, many_tx + (size_t)k * count * es, count, dt, next, &reqs[MANY + k]));
    for (int k = 2 * MANY - 1; k >= 0; k--) { /* any order */
        CHECK(rl_wait(reqs[k], -1));
        rl_request_free(reqs[k]);
    }
    for (int k = 0; k < MANY; k++)
        check_block("isend/irecv(many)", many_rx + (size_t)k * count * es, count, dt, prev + k, rank);

    if (rank == 0) {
        for (int p = 1; p < nranks; p++) {
            for (size_t i = 0; i < count; i++)
                put(tx, i, dt, p2p_val(0, p, i));
            CHECK(rl_send(comm, tx, count, dt, p));
            CHECK(rl_recv(comm, rx, count, dt, p));
            check_block("send/recv(ping-pong)", rx, count, dt, p, 0);
        }
    } else {
        CHECK(rl_recv(comm, rx, count, dt, 0));
        check_block("send/recv(ping-pong)", rx, count, dt, 0, rank);
        for (size_t i = 0; i < count; i++)
            put(tx, i, dt, p2p_val(rank, 0, i));
        CHECK(rl_send(comm, tx, count, dt, 0));
    }
    free(many_tx);
    free(many_rx);
    free(tx);
    free(rx);
}

/* Ranks disagree on the count: every rank must get an error, none may hang.
 * With `far`, the last rank's count is large enough for another algorithm
 * than the others' (eager vs halving-doubling or ring), which must be
 * caught as quickly. */
static int run_mismatch(rl_comm_t comm, int far)
{
    size_t count = 1000 + (rank == nranks - 1 ? (far ? 200000 : 1) : 0);
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

/* Random inputs, so results depend on the order of reduction: print a hash
 * of every rank's outputs. Runs with other chunk sizes and pipeline depths
 * must print the same hashes (bitwise-identical results). */
static int run_digest(rl_comm_t comm)
{
    const rl_dtype_t dts[] = {RL_FLOAT32, RL_BFLOAT16, RL_FLOAT16, RL_FLOAT64};
    const size_t count = 100003;
    uint64_t h = 1469598103934665603ull;
    for (int d = 0; d < 4; d++) {
        size_t es = rl_dtype_size(dts[d]);
        char *in = malloc(count * es * (size_t)nranks), *out = malloc(count * es * (size_t)nranks);
        uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(rank + 1);
        for (size_t i = 0; i < count * (size_t)nranks; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            double v = (double)(x >> 11) / 9007199254740992.0 * 2.0 - 1.0;
            switch (dts[d]) {
            case RL_FLOAT32: ((float *)in)[i] = (float)v; break;
            case RL_FLOAT64: ((double *)in)[i] = v; break;
            case RL_FLOAT16: ((uint16_t *)in)[i] = f16_of((float)v); break;
            default: ((uint16_t *)in)[i] = bf16_of((float)v); break; /* truncation is fine here */
            }
        }
        CHECK(rl_all_reduce(comm, in, out, count, dts[d], d % 2 ? RL_AVG : RL_SUM));
        for (size_t i = 0; i < count * es; i++)
            h = (h ^ (unsigned char)out[i]) * 1099511628211ull;
        CHECK(rl_reduce_scatter(comm, in, out, count, dts[d], RL_SUM));
        for (size_t i = 0; i < count * es; i++)
            h = (h ^ (unsigned char)out[i]) * 1099511628211ull;
        CHECK(rl_reduce(comm, in, out, count, dts[d], RL_SUM, 1 % nranks));
        if (rank == 1 % nranks)
            for (size_t i = 0; i < count * es; i++)
                h = (h ^ (unsigned char)out[i]) * 1099511628211ull;
        free(in);
        free(out);
    }
    printf("digest rank %d: %016llx\n", rank, (unsigned long long)h);
    return 0;
}

/* Empty all-reduces between real ones of every algorithm's size, blocking,
 * back to back: an empty call must not let a rank run two operations ahead
 * of a partner whose landing slots it writes. */
static void run_mixed_zero(rl_comm_t comm)
{
    const size_t counts[] = {43, 0, 0, 1031, 0, 43, 0, 50000, 0, 1, 0, 0, 0, 300000, 0};
    const rl_dtype_t dts[] = {RL_UINT8, RL_INT32, RL_UINT8, RL_INT32, RL_INT32, RL_UINT8, RL_INT8, RL_FLOAT32,
                              RL_INT32, RL_INT64, RL_UINT8, RL_INT32, RL_FLOAT64, RL_FLOAT32, RL_UINT8};
    size_t n = sizeof(counts) / sizeof(counts[0]);
    /* tight: nothing between the calls gives the slower rank time to catch up */
    uint8_t v[43], want[43];
    for (size_t i = 0; i < 43; i++)
        want[i] = (uint8_t)((size_t)nranks * (i + 1));
    /* eager operations with operations between them that do not make the
     * eager partners wait for each other (a tree broadcast, a scatter) */
    for (int iter = 0; iter < 500; iter++) {
        int32_t a = rank, b = iter, sc[64], mine = -1;
        for (int q = 0; q < nranks && q < 64; q++)
            sc[q] = q * 7 + iter;
        CHECK(rl_all_reduce(comm, &a, &a, 1, RL_INT32, RL_SUM));
        CHECK(rl_broadcast(comm, rank == iter % nranks ? &b : NULL, &b, 1, RL_INT32, iter % nranks));
        if (nranks <= 64)
            CHECK(rl_scatter(comm, sc, &mine, 1, RL_INT32, 0));
        CHECK(rl_barrier(comm));
        if (a != nranks * (nranks - 1) / 2 || b != iter || (nranks <= 64 && mine != rank * 7 + iter)) {
            failures++;
            fprintf(stderr, "rank %d: eager/tree/scatter round %d gave %d %d %d\n", rank, iter, (int)a, (int)b,
                    (int)mine);
            break;
        }
    }
    for (int iter = 0; iter < 2000; iter++) {
        for (size_t i = 0; i < 43; i++)
            v[i] = (uint8_t)(i + 1);
        CHECK(rl_all_reduce(comm, v, v, 43, RL_UINT8, RL_SUM));
        CHECK(rl_all_reduce(comm, v, v, 0, RL_UINT8, RL_SUM));
        if (memcmp(v, want, sizeof(v))) {
            failures++;
            fprintf(stderr, "rank %d: all-reduce of 43 uint8 wrong at iteration %d\n", rank, iter);
            break;
        }
    }
    for (int iter = 0; iter < 20; iter++)
        for (size_t k = 0; k < n; k++)
            check_all_reduce(comm, counts[k], dts[k], RL_SUM, (int)((iter + k) % 2), 0);
}

/* A send and its receive disagree on the count: both sides get an error. */
static int run_mismatch_p2p(rl_comm_t comm)
{
    if (nranks < 2)
        return 0;
    int32_t buf[16] = {0};
    rl_status_t st = RL_OK;
    if (rank == 0)
        st = rl_send(comm, buf, 10, RL_INT32, 1);
    else if (rank == 1)
        st = rl_recv(comm, buf, 11, RL_INT32, 0);
    else
        st = rl_barrier(comm); /* the others hear of it too */
    if (st == RL_OK) {
        fprintf(stderr, "rank %d: mismatched send/recv went undetected\n", rank);
        return 1;
    }
    printf("rank %d: mismatch reported: %s: %s\n", rank, rl_status_name(st), rl_comm_last_error(comm));
    return (st == RL_ERR_MISMATCH || st == RL_ERR_PEER_FAILED) ? 0 : 1;
}

int main(int argc, char **argv)
{
    int big = 0, quick = 0, mismatch = 0, mismatch_p2p = 0, digest = 0, far = 0, mixed_zero = 0;
    size_t large = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--big"))
            big = 1;
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--mismatch"))
            mismatch = 1;
        else if (!strcmp(argv[i], "--mismatch-p2p"))
            mismatch_p2p = 1;
        else if (!strcmp(argv[i], "--mismatch-algo"))
            mismatch = far = 1;
        else if (!strcmp(argv[i], "--register"))
            register_all = 1;
        else if (!strcmp(argv[i], "--digest"))
            digest = 1;
        else if (!strcmp(argv[i], "--mixed-zero"))
            mixed_zero = 1;
        else if (!strcmp(argv[i], "--large") && i + 1 < argc)
            large = strtoull(argv[++i], NULL, 0);
        else {
            fprintf(stderr, "usage: coll_check [--big] [--quick] [--large BYTES] [--mismatch] [--mismatch-algo] [--mismatch-p2p] [--digest] [--register] [--mixed-zero]\n");
            return 2;
        }
    }
    rl_comm_t comm = NULL;
    CHECK(rl_comm_create(NULL, &comm));
    CHECK(rl_comm_rank(comm, &rank));
    CHECK(rl_comm_size(comm, &nranks));
    if (mismatch || mismatch_p2p || digest) {
        int rc = mismatch ? run_mismatch(comm, far) : mismatch_p2p ? run_mismatch_p2p(comm) : run_digest(comm);
        rl_comm_destroy(comm);
        return rc;
    }
    if (mixed_zero) {
        run_mixed_zero(comm);
        CHECK(rl_comm_destroy(comm));
        if (failures)
            fprintf(stderr, "rank %d: %ld checks FAILED\n", rank, failures);
        else
            printf("rank %d: all mixed-zero checks passed (%d ranks)\n", rank, nranks);
        return failures != 0;
    }
    const rl_dtype_t all_dts[] = {RL_FLOAT32, RL_INT32, RL_BFLOAT16, RL_UINT8, RL_FLOAT64, RL_INT64,
                                  RL_FLOAT16, RL_INT8,    RL_UINT32, RL_UINT64};
    const rl_op_t all_ops[] = {RL_SUM, RL_PROD, RL_MIN, RL_MAX, RL_AVG};
    size_t counts[8];
    int nc = 0;
    counts[nc++] = 0;
    counts[nc++] = 1;
    counts[nc++] = (size_t)nranks - 1;
    counts[nc++] = 1031; /* prime */
    if (!quick)
        counts[nc++] = 65537 * 3; /* several chunks per block, prime-ish */
    int ndt = quick ? 4 : 10;
    for (int c = 0; c < nc; c++) {
        for (int d = 0; d < ndt; d++) {
            rl_dtype_t dt = all_dts[d];
            for (int o = 0; o < 5; o++) {
                rl_op_t op = all_ops[o];
                if (op == RL_AVG && !is_float(dt))
                    continue;
                int v = c + d + o; /* vary the remaining choices over the matrix */
                for (int ip = 0; ip < 2; ip++) {
                    check_all_reduce(comm, counts[c], dt, op, ip, (v + ip) % 2);
                    check_reduce_scatter(comm, counts[c], dt, op, ip, (v + ip + 1) % 2);
                    check_reduce(comm, counts[c], dt, op, (v + ip) % nranks, ip, (v + ip) % 2);
                }
            }
            for (int ip = 0; ip < 2; ip++) {
                check_all_gather(comm, counts[c], dt, ip, NULL);
                check_broadcast(comm, counts[c], dt, (c + d + ip) % nranks, ip, (d + ip) % 2);
            }
        }
    }
    /* every root */
    for (int root = 0; root < nranks; root++)
        for (int ip = 0; ip < 2; ip++) {
            check_broadcast(comm, 4099, RL_FLOAT32, root, ip, ip);
            check_reduce(comm, 4099, RL_INT32, RL_SUM, root, ip, !ip);
            check_reduce(comm, 3, RL_FLOAT64, RL_MAX, root, ip, ip);
        }
    check_all_gather(comm, 4099, RL_INT32, 0, (rl_mem_t *)1);
    check_barrier(comm);
    for (int c = 0; c < nc; c++)
        for (int d = 0; d < ndt; d += 3) {
            check_all_to_all(comm, counts[c], all_dts[d], (c + d) % 2);
            check_send_recv(comm, counts[c], all_dts[d]);
        }
    /* a group mixing collectives and point-to-point */
    {
        int32_t a = rank, b = 0;
        CHECK(rl_group_start(comm));
        CHECK(rl_all_reduce(comm, &a, &a, 1, RL_INT32, RL_SUM));
        CHECK(rl_broadcast(comm, rank == 0 ? &b : NULL, &b, 1, RL_INT32, 0));
        CHECK(rl_barrier(comm));
        CHECK(rl_group_end(comm));
        if (a != nranks * (nranks - 1) / 2 || b != 0) {
            failures++;
            fprintf(stderr, "rank %d: grouped collectives gave %d and %d\n", rank, (int)a, (int)b);
        }
    }
    if (big) {
        /* At least 8 MiB per buffer, not divisible by the rank count. */
        for (int d = 0; d < 4; d++) {
            rl_dtype_t dt = all_dts[d];
            size_t count = (8u << 20) / rl_dtype_size(dt) + 7;
            for (int o = 0; o < 5; o++)
                if (all_ops[o] != RL_AVG || is_float(dt))
                    check_all_reduce(comm, count, dt, all_ops[o], o % 2, o % 2);
            for (int ip = 0; ip < 2; ip++) {
                check_all_gather(comm, count / (size_t)nranks + 1, dt, ip, NULL);
                check_reduce_scatter(comm, count / (size_t)nranks + 1, dt, all_ops[d], ip, ip);
                check_broadcast(comm, count, dt, (d + ip) % nranks, ip, ip);
                check_reduce(comm, count, dt, all_ops[d], (d + ip + 1) % nranks, ip, !ip);
            }
            check_all_to_all(comm, count / (size_t)nranks + 1, dt, d % 2);
        }
    }
    if (large) {
        size_t count = large / sizeof(float) + 3;
        for (int ip = 0; ip < 2; ip++) {
            check_all_reduce(comm, count, RL_FLOAT32, RL_SUM, ip, ip);
            check_all_gather(comm, count / (size_t)nranks + 1, RL_FLOAT32, ip, NULL);
            check_reduce_scatter(comm, count / (size_t)nranks + 1, RL_FLOAT32, RL_SUM, ip, ip);
            check_broadcast(comm, count, RL_FLOAT32, nranks - 1, ip, ip);
            check_reduce(comm, count, RL_FLOAT32, RL_SUM, nranks / 2, ip, ip);
        }
        check_all_to_all(comm, count / (size_t)nranks + 1, RL_FLOAT32, 0);
        check_send_recv(comm, count / 8 + 1, RL_INT32);
    }
    CHECK(rl_comm_destroy(comm));
    if (failures) {
        fprintf(stderr, "rank %d: %ld checks FAILED\n", rank, failures);
        return 1;
    }
    printf("rank %d: all checks passed (%d ranks, transport checked%s)\n", rank, nranks, big ? ", big sizes" : "");
    return 0;
}
