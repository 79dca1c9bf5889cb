/*
 * Multi-process check of the newer API, run as one rank under ringlet-run:
 * all-to-allv, gather and scatter (every root, uneven and zero counts,
 * in-place, blocking and non-blocking, guard bytes around every block),
 * argument validation, bitwise and fp8 all-reduce, and rl_comm_split.
 *
 * Every rank derives every other rank's data from formulas, so it checks
 * each byte or element it receives against a reference computed here by
 * plain loops, with no ringlet code involved (not even ringlet's fp8
 * conversions: the fp8 reference decodes codes by the OCP formulas).
 *
 *   api_check [--quick] [--mismatch-a2av] [--split-only]
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringlet.h"

static int rank, nranks, quick;
static long failures;

#define CHECK(call)                                                                                          \
    do {                                                                                                     \
        rl_status_t st_ = (call);                                                                            \
        if (st_ != RL_OK) {                                                                                  \
            fprintf(stderr, "rank %d: line %d: %s -> %s: %s\n", rank, __LINE__, #call, rl_status_name(st_),  \
                    rl_comm_last_error(comm));                                                               \
            exit(1);                                                                                         \
        }                                                                                                    \
    } while (0)

#define FAIL(...)                                                                                            \
    do {                                                                                                     \
        failures++;                                                                                          \
        fprintf(stderr, "rank %d: ", rank);                                                                  \
        fprintf(stderr, __VA_ARGS__);                                                                        \
        fputc('\n', stderr);                                                                                 \
    } while (0)

#define GUARD 0xA5

/* Byte i of what rank `from` sends rank `to` in test case `tc`. */
static uint8_t pat(int from, int to, size_t i, int tc)
{
    return (uint8_t)((size_t)from * 73 + (size_t)to * 151 + i * 7 + (i >> 9) * 13 + (size_t)tc * 31 + 1);
}

static void finish(rl_comm_t comm, rl_status_t st, rl_request_t req)
{
    if (req) {
        st = rl_wait(req, -1);
        rl_request_free(req);
    }
    CHECK(st);
}

/* Bytes [from, to) of buf that differ from the pattern of block (src -> dst). */
static size_t check_bytes(const uint8_t *buf, size_t len, int src, int dst, int tc, size_t *first)
{
    size_t bad = 0;
    for (size_t i = 0; i < len; i++)
        if (buf[i] != pat(src, dst, i, tc) && !bad++)
            *first = i;
    return bad;
}

static size_t check_guard(const uint8_t *buf, size_t from, size_t to)
{
    size_t bad = 0;
    for (size_t i = from; i < to; i++)
        bad += buf[i] != GUARD;
    return bad;
}

/* ---- all-to-allv ---- */

/* Elements rank `from` sends rank `to` in case tc: uneven, often zero. */
static size_t a2av_count(int from, int to, int tc, size_t scale)
{
    size_t v = ((size_t)from * 5 + (size_t)to * 3 + (size_t)tc) % 7;
    if (v == 2 || v == 5)
        return 0;
    return v * scale + (size_t)(from + to) % 3;
}

/* Block order in a buffer: reversed for sends, rotated for receives, with
 * a gap of `gap` elements between blocks that must stay untouched. */
static void layout(const size_t *counts, int rotate, size_t gap, size_t *displs, size_t *total)
{
    size_t off = gap;
    for (int k = 0; k < nranks; k++) {
        int j = rotate ? (k + rank) % nranks : nranks - 1 - k;
        displs[j] = off;
        off += counts[j] + gap;
    }
    *total = off;
}

static void check_a2av(rl_comm_t comm, rl_dtype_t dt, int tc, size_t scale, int nonblocking)
{
    size_t es = rl_dtype_size(dt), n = (size_t)nranks, stot, rtot;
    size_t *sc = calloc(n, sizeof(size_t)), *sd = calloc(n, sizeof(size_t));
    size_t *rc = calloc(n, sizeof(size_t)), *rd = calloc(n, sizeof(size_t));
    for (int j = 0; j < nranks; j++) {
        sc[j] = a2av_count(rank, j, tc, scale);
        rc[j] = a2av_count(j, rank, tc, scale);
    }
    layout(sc, 0, 3, sd, &stot);
    layout(rc, 1, 5, rd, &rtot);
    uint8_t *in = malloc(stot * es + 1), *out = malloc(rtot * es + 1);
    memset(in, 0x11, stot * es);
    for (int j = 0; j < nranks; j++)
        for (size_t b = 0; b < sc[j] * es; b++)
            in[sd[j] * es + b] = pat(rank, j, b, tc);
    memset(out, GUARD, rtot * es);
    rl_request_t req = NULL;
    rl_status_t st = nonblocking ? rl_iall_to_allv(comm, in, sc, sd, out, rc, rd, dt, &req)
                                 : rl_all_to_allv(comm, in, sc, sd, out, rc, rd, dt);
    finish(comm, st, req);
    /* every block, and every byte outside the blocks untouched */
    uint8_t *mark = calloc(rtot * es + 1, 1);
    for (int j = 0; j < nranks; j++) {
        size_t first = 0, bad = check_bytes(out + rd[j] * es, rc[j] * es, j, rank, tc, &first);
        if (bad)
            FAIL("all_to_allv case %d %s: block from rank %d (%zu elements): %zu wrong bytes, first at %zu", tc,
                 rl_dtype_name(dt), j, rc[j], bad, first);
        memset(mark + rd[j] * es, 1, rc[j] * es);
    }
    size_t outside = 0;
    for (size_t b = 0; b < rtot * es; b++)
        outside += !mark[b] && out[b] != GUARD;
    if (outside)
        FAIL("all_to_allv case %d %s: %zu bytes written outside the receive blocks", tc, rl_dtype_name(dt), outside);
    free(mark), free(in), free(out), free(sc), free(sd), free(rc), free(rd);
}

/* ---- gather and scatter ---- */

static void check_gather(rl_comm_t comm, size_t count, rl_dtype_t dt, int root, int inplace, int nonblocking,
                         int tc)
{
    size_t es = rl_dtype_size(dt), blk = count * es, n = (size_t)nranks;
    uint8_t *all = malloc(blk * n + 64), *mine = malloc(blk + 1);
    memset(all, GUARD, blk * n + 64);
    int me_root = rank == root;
    uint8_t *src = me_root && inplace ? all + (size_t)rank * blk : mine;
    for (size_t b = 0; b < blk; b++)
        src[b] = pat(rank, root, b, tc);
    rl_request_t req = NULL;
    /* non-roots pass no receive buffer at all */
    void *dst = me_root ? all : NULL;
    rl_status_t st = nonblocking ? rl_igather(comm, src, dst, count, dt, root, &req)
                                 : rl_gather(comm, src, dst, count, dt, root);
    finish(comm, st, req);
    if (me_root) {
        for (int j = 0; j < nranks; j++) {
            size_t first = 0, bad = check_bytes(all + (size_t)j * blk, blk, j, root, tc, &first);
            if (bad)
                FAIL("gather(root %d) count=%zu %s %s: block of rank %d: %zu wrong bytes, first at %zu", root, count,
                     rl_dtype_name(dt), inplace ? "in-place" : "out-of-place", j, bad, first);
        }
        if (check_guard(all, blk * n, blk * n + 64))
            FAIL("gather(root %d) count=%zu: wrote past the end", root, count);
    }
    free(all), free(mine);
}

static void check_scatter(rl_comm_t comm, size_t count, rl_dtype_t dt, int root, int inplace, int nonblocking,
                          int tc)
{
    size_t es = rl_dtype_size(dt), blk = count * es, n = (size_t)nranks;
    int me_root = rank == root;
    uint8_t *all = malloc(blk * n + 1), *mine = malloc(blk + 64);
    memset(mine, GUARD, blk + 64);
    if (me_root)
        for (int j = 0; j < nranks; j++)
            for (size_t b = 0; b < blk; b++)
                all[(size_t)j * blk + b] = pat(root, j, b, tc);
    uint8_t *dst = me_root && inplace ? all + (size_t)rank * blk : mine;
    rl_request_t req = NULL;
    const void *src = me_root ? all : NULL; /* only the root's is read */
    rl_status_t st = nonblocking ? rl_iscatter(comm, src, dst, count, dt, root, &req)
                                 : rl_scatter(comm, src, dst, count, dt, root);
    finish(comm, st, req);
    size_t first = 0, bad = check_bytes(dst, blk, root, rank, tc, &first);
    if (bad)
        FAIL("scatter(root %d) count=%zu %s %s: %zu wrong bytes, first at %zu", root, count, rl_dtype_name(dt),
             inplace ? "in-place" : "out-of-place", bad, first);
    if (dst == mine && check_guard(mine, blk, blk + 64))
        FAIL("scatter(root %d) count=%zu: wrote past the end", root, count);
    /* the root's other blocks are only read */
    for (int j = 0; me_root && j < nranks; j++)
        if (j != rank && check_bytes(all + (size_t)j * blk, blk, root, j, tc, &first))
            FAIL("scatter(root %d): changed its send block %d", root, j);
    free(all), free(mine);
}

/* One gather per root inside one group: every rank is a root and a
 * sender at once, and nothing deadlocks. */
static void check_group_gathers(rl_comm_t comm, int tc)
{
    size_t blk = 777, n = (size_t)nranks;
    uint8_t *src = malloc(blk * n), *dst = malloc(blk * n + 64);
    memset(dst, GUARD, blk * n + 64);
    for (int root = 0; root < nranks; root++)
        for (size_t b = 0; b < blk; b++)
            src[(size_t)root * blk + b] = pat(rank, root, b, tc);
    CHECK(rl_group_start(comm));
    for (int root = 0; root < nranks; root++)
        CHECK(rl_gather(comm, src + (size_t)root * blk, root == rank ? dst : NULL, blk, RL_UINT8, root));
    CHECK(rl_group_end(comm));
    for (int j = 0; j < nranks; j++) {
        size_t first = 0, bad = check_bytes(dst + (size_t)j * blk, blk, j, rank, tc, &first);
        if (bad)
            FAIL("grouped gathers: block of rank %d: %zu wrong bytes, first at %zu", j, bad, first);
    }
    if (check_guard(dst, blk * n, blk * n + 64))
        FAIL("grouped gathers: wrote past the end");
    free(src), free(dst);
}

/* ---- argument validation: local errors, the communicator stays usable ---- */

static void expect_err(rl_comm_t comm, rl_status_t got, rl_status_t want, const char *what, const char *needle)
{
    const char *msg = rl_comm_last_error(comm);
    if (got != want)
        FAIL("%s: got %s, want %s (%s)", what, rl_status_name(got), rl_status_name(want), msg);
    else if (needle && !strstr(msg, needle))
        FAIL("%s: message \"%s\" does not mention \"%s\"", what, msg, needle);
}

static void check_validation(rl_comm_t comm)
{
    size_t n = (size_t)nranks;
    size_t *c1 = calloc(n, sizeof(size_t)), *d1 = calloc(n, sizeof(size_t));
    size_t *c2 = calloc(n, sizeof(size_t)), *d2 = calloc(n, sizeof(size_t));
    char buf[64] = {0}, obuf[64] = {0};
    rl_request_t req = NULL;
    expect_err(comm, rl_all_to_allv(comm, buf, NULL, d1, obuf, c2, d2, RL_INT8), RL_ERR_INVALID_ARG,
               "a2av NULL sendcounts", "sendcounts is NULL");
    expect_err(comm, rl_all_to_allv(comm, buf, c1, d1, obuf, c2, NULL, RL_INT8), RL_ERR_INVALID_ARG,
               "a2av NULL rdispls", "rdispls is NULL");
    expect_err(comm, rl_all_to_allv(comm, buf, c1, d1, obuf, c2, d2, (rl_dtype_t)99), RL_ERR_INVALID_ARG,
               "a2av bad dtype", "unknown datatype");
    c1[n - 1] = 1, d1[n - 1] = SIZE_MAX;
    expect_err(comm, rl_all_to_allv(comm, buf, c1, d1, obuf, c2, d2, RL_INT32), RL_ERR_INVALID_ARG,
               "a2av displacement overflow", "sdispls");
    c1[n - 1] = (SIZE_MAX / 8) + 1, d1[n - 1] = 0;
    expect_err(comm, rl_all_to_allv(comm, buf, c1, d1, obuf, c2, d2, RL_INT64), RL_ERR_INVALID_ARG,
               "a2av count overflow", "sendcounts");
    c1[n - 1] = 0;
    c1[rank] = 2, c2[rank] = 3;
    expect_err(comm, rl_all_to_allv(comm, buf, c1, d1, obuf, c2, d2, RL_INT8), RL_ERR_INVALID_ARG,
               "a2av self count", "sends itself");
    c1[rank] = 0, c2[rank] = 0;
    if (n > 1) {
        int a = (rank + 1) % nranks, b = (rank + 2) % nranks;
        c2[a] = 4, d2[a] = 0;
        c2[b] = 4, d2[b] = 2;
        if (nranks >= 3)
            expect_err(comm, rl_all_to_allv(comm, buf, c1, d1, obuf, c2, d2, RL_INT8), RL_ERR_INVALID_ARG,
                       "a2av overlapping receive blocks", "overlap");
        c2[b] = 0, d2[b] = 0;
        expect_err(comm, rl_all_to_allv(comm, buf, c1, d1, NULL, c2, d2, RL_INT8), RL_ERR_INVALID_ARG,
                   "a2av NULL recvbuf", "NULL receive buffer");
        c1[a] = 4, d1[a] = 0;
        expect_err(comm, rl_all_to_allv(comm, buf, c1, d1, buf + 2, c2, d2, RL_INT8), RL_ERR_INVALID_ARG,
                   "a2av overlapping buffers", "overlap");
        c2[a] = 0, c1[a] = 0;
    }
    expect_err(comm, rl_iall_to_allv(comm, buf, c1, d1, obuf, c2, d2, RL_INT8, NULL), RL_ERR_INVALID_ARG,
               "a2av NULL request", "request pointer");
    expect_err(comm, rl_gather(comm, buf, obuf, 1, RL_INT8, nranks), RL_ERR_INVALID_ARG, "gather root = nranks",
               "root");
    expect_err(comm, rl_scatter(comm, buf, obuf, 1, RL_INT8, -1), RL_ERR_INVALID_ARG, "scatter root -1", "root");
    expect_err(comm, rl_gather(comm, NULL, obuf, 1, RL_INT8, 0), RL_ERR_INVALID_ARG, "gather NULL send", "NULL");
    if (rank == 0) {
        expect_err(comm, rl_gather(comm, buf, NULL, 1, RL_INT8, 0), RL_ERR_INVALID_ARG, "gather NULL recv on root",
                   "root");
        expect_err(comm, rl_scatter(comm, NULL, obuf, 1, RL_INT8, 0), RL_ERR_INVALID_ARG,
                   "scatter NULL send on root", "root");
        if (n > 1)
            expect_err(comm, rl_gather(comm, buf + 1, buf, 2, RL_INT8, 0), RL_ERR_INVALID_ARG,
                       "gather overlapping buffers", "overlap");
    }
    expect_err(comm, rl_scatter(comm, buf, obuf, SIZE_MAX / 2, RL_INT32, 0), RL_ERR_INVALID_ARG,
               "scatter count too large", "too large");
    expect_err(comm, rl_igather(comm, buf, obuf, 1, RL_INT8, 0, NULL), RL_ERR_INVALID_ARG, "gather NULL request",
               "request pointer");
    expect_err(comm, rl_all_reduce(comm, buf, obuf, 2, RL_FLOAT32, RL_BXOR), RL_ERR_INVALID_ARG,
               "bxor on float32", "integer");
    expect_err(comm, rl_all_reduce(comm, buf, obuf, 2, RL_FP8_E4M3, RL_BAND), RL_ERR_INVALID_ARG,
               "band on fp8", "integer");
    expect_err(comm, rl_reduce(comm, buf, obuf, 2, RL_BFLOAT16, RL_BOR, 0), RL_ERR_INVALID_ARG, "bor on bfloat16",
               "integer");
    expect_err(comm, rl_all_reduce(comm, buf, obuf, 2, RL_INT32, (rl_op_t)RL_OP_COUNT), RL_ERR_INVALID_ARG,
               "op out of range", NULL);
    expect_err(comm, rl_comm_split(comm, 0, 0, NULL), RL_ERR_INVALID_ARG, "split NULL output", "NULL");
    (void)req;
    free(c1), free(d1), free(c2), free(d2);
}

/* A receiver that expects another count than its sender sends: both fail
 * with RL_ERR_MISMATCH, the others hear of it by their next call at the
 * latest, nobody waits for the deadline. */
static int run_mismatch_a2av(rl_comm_t comm)
{
    size_t n = (size_t)nranks;
    size_t *sc = calloc(n, sizeof(size_t)), *sd = calloc(n, sizeof(size_t));
    size_t *rc = calloc(n, sizeof(size_t)), *rd = calloc(n, sizeof(size_t));
    for (size_t j = 0; j < n; j++)
        sc[j] = rc[j] = 4, sd[j] = rd[j] = 8 * j;
    if (rank == 1)
        rc[0] = 5; /* rank 0 sends it 4 */
    int32_t in[8 * 64], out[8 * 64];
    memset(in, 0, sizeof(in));
    rl_status_t st = nranks <= 64 ? rl_all_to_allv(comm, in, sc, sd, out, rc, rd, RL_INT32) : RL_OK;
    free(sc), free(sd), free(rc), free(rd);
    /* ranks outside the mismatched pair may finish their own exchanges;
     * they hear of the failure at their next call */
    if (st == RL_OK && rank > 1)
        st = rl_barrier(comm);
    if (st == RL_OK) {
        fprintf(stderr, "rank %d: mismatched all_to_allv counts went undetected\n", rank);
        return 1;
    }
    printf("rank %d: mismatch reported: %s: %s\n", rank, rl_status_name(st), rl_comm_last_error(comm));
    return st == RL_ERR_MISMATCH || st == RL_ERR_PEER_FAILED ? 0 : 1;
}

/* ---- bitwise and fp8 reductions ---- */

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Rank r's element i for a bitwise op: random bits, denser in ones for
 * and (so the result is not all zeros), sparser for or. */
static uint64_t bits_of(int r, size_t i, rl_op_t op)
{
    uint64_t a = mix((uint64_t)r * 0x9E3779B97F4A7C15ull + i), b = mix(a + 1);
    return op == RL_BAND ? a | b : op == RL_BOR ? a & b : a;
}

/* An OCP fp8 code's value, from the spec's formulas. */
static double fp8_formula(rl_dtype_t dt, unsigned v)
{
    int s = v >> 7;
    double x;
    if (dt == RL_FP8_E4M3) {
        int e = (v >> 3) & 15, m = v & 7;
        if (e == 15 && m == 7)
            return NAN;
        x = e ? (1 + m / 8.0) * pow(2, e - 7) : m / 8.0 * pow(2, -6);
    } else {
        int e = (v >> 2) & 31, m = v & 3;
        if (e == 31)
            return m ? NAN : s ? -INFINITY : INFINITY;
        x = e ? (1 + m / 4.0) * pow(2, e - 15) : m / 4.0 * pow(2, -14);
    }
    return s ? -x : x;
}

static double fp8_tab[2][256];

static double fp8_value(rl_dtype_t dt, unsigned v) { return fp8_tab[dt == RL_FP8_E5M2][v & 255]; }

static void fp8_tables(void)
{
    for (unsigned v = 0; v < 256; v++) {
        fp8_tab[0][v] = fp8_formula(RL_FP8_E4M3, v);
        fp8_tab[1][v] = fp8_formula(RL_FP8_E5M2, v);
    }
}

/* The code nearest x, by search over all codes (ties to even); the few
 * values the checks produce are remembered (the search is slow under
 * sanitizers). */
static uint8_t fp8_search(rl_dtype_t dt, double x);
static uint8_t fp8_code(rl_dtype_t dt, double x)
{
    static struct {
        double x;
        int dt, used;
        uint8_t code;
    } memo[256];
    uint64_t bits;
    memcpy(&bits, &x, sizeof(bits));
    unsigned h = (unsigned)((bits * 0x9E3779B97F4A7C15ull) >> 56) ^ (unsigned)dt;
    h &= 255;
    if (memo[h].used && memo[h].dt == (int)dt && !memcmp(&memo[h].x, &x, sizeof(x)))
        return memo[h].code;
    uint8_t code = fp8_search(dt, x);
    memo[h].x = x, memo[h].dt = (int)dt, memo[h].used = 1, memo[h].code = code;
    return code;
}

static uint8_t fp8_search(rl_dtype_t dt, double x)
{
    unsigned sign = signbit(x) ? 0x80 : 0, best = 0;
    double bd = INFINITY;
    for (unsigned c = 0; c < 128; c++) {
        double v = fp8_value(dt, c), d = fabs(v - fabs(x));
        if (!isnan(v) && !isinf(v) && (d < bd || (d == bd && !(c & 1))))
            bd = d, best = c;
    }
    return (uint8_t)(sign | best);
}

/* Rank r's fp8 element i for op, as a code: small integers, so that every
 * partial sum and product is exact in fp8 (|sum| <= 16 for E4M3 and 8 for
 * E5M2 on up to 8 ranks, products are powers of two up to 2^8); any
 * finite code for min and max. */
static uint8_t fp8_in(rl_dtype_t dt, int r, size_t i, rl_op_t op)
{
    static uint8_t small[2][5]; /* codes of -2..2 */
    int k = dt == RL_FP8_E5M2;
    if (!small[k][4])
        for (int v = -2; v <= 2; v++)
            small[k][v + 2] = fp8_code(dt, v);
    uint64_t h = mix((uint64_t)r * 1000003u + i * 7919u + (uint64_t)op);
    if (op == RL_PROD)
        return small[k][h % 5 == 0 ? 4 : h % 5 == 1 ? 1 : 3];
    if (op == RL_MIN || op == RL_MAX) {
        double v = fp8_value(dt, (unsigned)(h % 256));
        return isnan(v) || isinf(v) ? small[k][h % 3 + 2] : (uint8_t)(h % 256);
    }
    int span = dt == RL_FP8_E4M3 ? 5 : 3; /* -2..2 or -1..1 */
    return small[k][(int)(h % (unsigned)span) - span / 2 + 2];
}

static double fp8_ref(rl_dtype_t dt, size_t i, rl_op_t op)
{
    rl_op_t fop = op == RL_AVG ? RL_SUM : op;
    double acc = fp8_value(dt, fp8_in(dt, nranks - 1, i, fop));
    for (int r = nranks - 2; r >= 0; r--) {
        double v = fp8_value(dt, fp8_in(dt, r, i, fop));
        acc = fop == RL_SUM ? acc + v : fop == RL_PROD ? acc * v : fop == RL_MIN ? fmin(acc, v) : fmax(acc, v);
    }
    return op == RL_AVG ? acc / nranks : acc;
}

/* Element i's input and reference for (dt, op), as bytes. */
static void red_in(rl_dtype_t dt, rl_op_t op, int r, size_t i, void *dst)
{
    size_t es = rl_dtype_size(dt);
    if (dt == RL_FP8_E4M3 || dt == RL_FP8_E5M2) {
        *(uint8_t *)dst = fp8_in(dt, r, i, op == RL_AVG ? RL_SUM : op);
        return;
    }
    uint64_t v = bits_of(r, i, op);
    memcpy(dst, &v, es); /* little-endian: the low bytes */
}

static int red_same(rl_dtype_t dt, rl_op_t op, size_t i, const uint8_t *got)
{
    size_t es = rl_dtype_size(dt);
    if (dt == RL_FP8_E4M3 || dt == RL_FP8_E5M2) {
        double w = fp8_ref(dt, i, op);
        /* min/max of +-0 may pick either zero by bits; compare values there */
        if (op == RL_MIN || op == RL_MAX)
            return fp8_value(dt, *got) == w;
        return *got == fp8_code(dt, w);
    }
    uint64_t acc = bits_of(nranks - 1, i, op);
    for (int r = nranks - 2; r >= 0; r--) {
        uint64_t v = bits_of(r, i, op);
        acc = op == RL_BAND ? acc & v : op == RL_BOR ? acc | v : acc ^ v;
    }
    return memcmp(got, &acc, es) == 0;
}

static void check_red(rl_comm_t comm, int which, rl_dtype_t dt, rl_op_t op, size_t count, int inplace, int nb)
{
    static const char *const names[] = {"all_reduce", "reduce", "reduce_scatter"};
    size_t es = rl_dtype_size(dt), n = (size_t)nranks;
    size_t nin = which == 2 ? count * n : count;
    uint8_t *in = malloc(nin * es + 64), *out = malloc(nin * es + 64);
    for (size_t i = 0; i < nin; i++)
        red_in(dt, op, rank, i, in + i * es);
    memset(out, GUARD, nin * es + 64);
    int root = (int)(count % n);
    uint8_t *dst = inplace ? (which == 2 ? in + (size_t)rank * count * es : in) : out;
    rl_request_t req = NULL;
    rl_status_t st;
    if (which == 0)
        st = nb ? rl_iall_reduce(comm, in, dst, count, dt, op, &req) : rl_all_reduce(comm, in, dst, count, dt, op);
    else if (which == 1)
        st = nb ? rl_ireduce(comm, in, dst, count, dt, op, root, &req) : rl_reduce(comm, in, dst, count, dt, op, root);
    else
        st = nb ? rl_ireduce_scatter(comm, in, dst, count, dt, op, &req)
                : rl_reduce_scatter(comm, in, dst, count, dt, op);
    finish(comm, st, req);
    if (which == 1 && rank != root) {
        free(in), free(out);
        return;
    }
    size_t base = which == 2 ? (size_t)rank * count : 0, bad = 0, first = 0;
    for (size_t i = 0; i < count; i++)
        if (!red_same(dt, op, base + i, dst + i * es) && !bad++)
            first = i;
    if (bad)
        FAIL("%s count=%zu %s %s %s: %zu wrong elements, first at %zu (got %#x)", names[which], count,
             rl_dtype_name(dt), rl_op_name(op), inplace ? "in-place" : "out-of-place", bad, first,
             (unsigned)dst[first * es]);
    if (!inplace && check_guard(out, count * es, count * es + 64))
        FAIL("%s count=%zu %s: wrote past the end", names[which], count, rl_dtype_name(dt));
    free(in), free(out);
}

static void check_reductions(rl_comm_t comm)
{
    const rl_dtype_t ints[] = {RL_INT8, RL_UINT8, RL_INT32, RL_UINT32, RL_INT64, RL_UINT64};
    const rl_op_t bitops[] = {RL_BAND, RL_BOR, RL_BXOR};
    const rl_op_t fops[] = {RL_SUM, RL_PROD, RL_MIN, RL_MAX, RL_AVG};
    /* small (eager), mid (halving-doubling on 4/8 ranks), several chunks (ring) */
    size_t counts[] = {0, 1, (size_t)nranks + 2, 1031, 100003, 600001};
    int nc = quick ? 4 : 6, k = 0;
    for (int c = 0; c < nc; c++) {
        /* the large counts (several chunks, other algorithms) once per
         * dtype, op rotating; the small ones for every op */
        int big = counts[c] > 10000;
        for (int d = 0; d < 6; d++, k++)
            for (int o = 0; o < 3; o++)
                if (!big || o == k % 3)
                    check_red(comm, (k + o) % 3, ints[d], bitops[o], counts[c], (k + o) % 2, (k + o + c) % 2);
        for (int d = 0; d < 2; d++)
            for (int o = 0; o < 5; o++, k++)
                for (int which = 0; which < 3; which++)
                    if (!big || which == k % 3)
                        check_red(comm, which, d ? RL_FP8_E5M2 : RL_FP8_E4M3, fops[o], counts[c],
                                  (k + which) % 2, (k + which + 1) % 2);
    }
}

/* ---- rl_comm_split ---- */

/* Split by parity with reversed keys: child rank = position from the top.
 * All-reduce, all-gather (the parent ranks in child order) and a gather on
 * each child; a rank with color < 0 gets no communicator; the parent still
 * works after the children are gone. */
static void check_split(rl_comm_t comm)
{
    int color = rank % 2, want_size = 0, want_rank = 0;
    for (int r = 0; r < nranks; r++) {
        if (r % 2 != color)
            continue;
        want_size++;
        if (r > rank)
            want_rank++; /* keys reversed: higher parent ranks come first */
    }
    rl_comm_t child = NULL;
    CHECK(rl_comm_split(comm, color, -rank, &child));
    if (!child) {
        FAIL("rl_comm_split gave no communicator for color %d", color);
        return;
    }
    int cr = -1, cn = -1;
    CHECK(rl_comm_rank(child, &cr));
    CHECK(rl_comm_size(child, &cn));
    if (cr != want_rank || cn != want_size)
        FAIL("split color %d: rank %d of %d, want %d of %d", color, cr, cn, want_rank, want_size);
    size_t count = quick ? 1031 : 70001;
    int64_t *v = malloc(count * 8), *s = malloc(count * 8);
    for (size_t i = 0; i < count; i++)
        v[i] = (int64_t)rank * 1000003 + (int64_t)i;
    rl_comm_t comm_save = comm;
    comm = child; /* CHECK reports the child's error */
    CHECK(rl_all_reduce(child, v, s, count, RL_INT64, RL_SUM));
    size_t bad = 0;
    for (size_t i = 0; i < count; i++) {
        int64_t w = 0;
        for (int r = nranks - 1; r >= 0; r--)
            if (r % 2 == color)
                w += (int64_t)r * 1000003 + (int64_t)i;
        bad += s[i] != w;
    }
    if (bad)
        FAIL("split color %d: all_reduce: %zu wrong elements", color, bad);
    int32_t me = rank, *ranks = malloc(sizeof(int32_t) * (size_t)cn);
    CHECK(rl_all_gather(child, &me, ranks, 1, RL_INT32));
    for (int k = 0; k < cn; k++) {
        /* child rank k is the k-th highest parent rank of this color */
        int want = -1, seen = 0;
        for (int r = nranks - 1; r >= 0; r--)
            if (r % 2 == color && seen++ == k)
                want = r;
        if (ranks[k] != want)
            FAIL("split color %d: child rank %d is parent rank %d, want %d", color, k, ranks[k], want);
    }
    /* a second level: split the child in halves, one rank opting out */
    rl_comm_t grand = NULL;
    int gcolor = cr == 0 ? -1 : cr % 2;
    CHECK(rl_comm_split(child, gcolor, cr, &grand));
    if (gcolor < 0 && grand)
        FAIL("split with color -1 returned a communicator");
    if (gcolor >= 0) {
        if (!grand) {
            FAIL("nested split gave no communicator");
        } else {
            int gn = 0, x = 1;
            CHECK(rl_comm_size(grand, &gn));
            comm = grand;
            CHECK(rl_all_reduce(grand, &x, &x, 1, RL_INT32, RL_SUM));
            if (x != gn)
                FAIL("nested split: all_reduce of ones gave %d on %d ranks", x, gn);
        }
    }
    comm = comm_save;
    /* destroy the child before the grandchild: they are independent */
    CHECK(rl_comm_destroy(child));
    if (grand)
        CHECK(rl_comm_destroy(grand));
    int32_t one = 1;
    CHECK(rl_all_reduce(comm, &one, &one, 1, RL_INT32, RL_SUM));
    if (one != nranks)
        FAIL("parent all_reduce after split: %d", one);
    /* every rank opts out: nobody gets a communicator, nobody hangs */
    child = (rl_comm_t)&one;
    CHECK(rl_comm_split(comm, -1, 0, &child));
    if (child)
        FAIL("split with color -1 everywhere returned a communicator");
    free(v), free(s), free(ranks);
}

int main(int argc, char **argv)
{
    int mismatch = 0, split_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--mismatch-a2av"))
            mismatch = 1;
        else if (!strcmp(argv[i], "--split-only"))
            split_only = 1;
        else {
            fprintf(stderr, "usage: api_check [--quick] [--mismatch-a2av] [--split-only]\n"
                            "  multi-process check of all_to_allv, gather, scatter, bitwise and fp8\n"
                            "  all-reduce and rl_comm_split; run under ringlet-run\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    fp8_tables();
    rl_comm_t comm = NULL;
    CHECK(rl_comm_create(NULL, &comm));
    CHECK(rl_comm_rank(comm, &rank));
    CHECK(rl_comm_size(comm, &nranks));
    if (mismatch) {
        int rc = run_mismatch_a2av(comm);
        rl_comm_destroy(comm);
        return rc;
    }
    if (!split_only) {
        check_validation(comm);
        const rl_dtype_t dts[] = {RL_INT8, RL_FLOAT32, RL_FP8_E4M3, RL_BFLOAT16, RL_FP8_E5M2, RL_FLOAT64, RL_UINT64};
        int ndt = quick ? 3 : 7;
        const size_t scales[] = {0, 1, 13, 4099, 65537};
        int nsc = quick ? 4 : 5;
        int tc = 0;
        /* the largest sizes on three dtypes (one of each width class) */
        for (int s = 0; s < nsc; s++)
            for (int d = 0; d < ndt; d++, tc++)
                if (scales[s] < 10000 || d % 3 == 0)
                    check_a2av(comm, dts[d], tc, scales[s], tc % 2);
        size_t counts[] = {0, 1, (size_t)nranks - 1, 1031, 65537 * 3};
        int nc = quick ? 4 : 5;
        for (int c = 0; c < nc; c++)
            for (int d = 0; d < ndt; d++, tc++)
                for (int root = 0; root < nranks && (counts[c] < 10000 || d % 3 == 0); root++) {
                    int ip = (root + c + d) % 2, nb = (root + d) % 2;
                    check_gather(comm, counts[c], dts[d], root, ip, nb, tc);
                    check_scatter(comm, counts[c], dts[d], root, !ip, !nb, tc);
                }
        check_group_gathers(comm, tc);
        check_reductions(comm);
    }
    check_split(comm);
    CHECK(rl_comm_destroy(comm));
    if (failures) {
        fprintf(stderr, "rank %d: %ld checks FAILED\n", rank, failures);
        return 1;
    }
    printf("rank %d: all api checks passed (%d ranks)\n", rank, nranks);
    return 0;
}
