/*
 * Shared driver for the nccl-tests-style benchmarks. See common.h.
 *
 * Timing: each timed iteration is measured on every rank with
 * CLOCK_MONOTONIC; after the loop one RL_MAX all-reduce gives, per iteration,
 * the slowest rank's time, and the reported time is the median of those over
 * the iterations (nccl-tests reports the mean of one timed loop instead; the
 * median of maxima is steadier on a shared, CPU-bound transport like rxe).
 */
#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------- options */

int bench_parse_size(const char *s, size_t *out)
{
    char *end;
    unsigned long long v, mul = 1;

    if (s == NULL || *s == '\0' || *s == '-')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s)
        return -1;
    switch (*end) {
    case '\0': break;
    case 'k': case 'K': mul = 1ULL << 10; end++; break;
    case 'm': case 'M': mul = 1ULL << 20; end++; break;
    case 'g': case 'G': mul = 1ULL << 30; end++; break;
    default: return -1;
    }
    if (*end == 'B' || *end == 'b') /* "4KB" */
        end++;
    if (*end != '\0' || (v != 0 && mul > SIZE_MAX / v))
        return -1;
    *out = (size_t)(v * mul);
    return 0;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;
    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

void bench_usage(FILE *out, const char *prog, const bench_coll_t *coll)
{
    fprintf(out,
            "usage: %s [options]   (one process per rank; start with ringlet-run)\n"
            "\n"
            "Measures %s over the sizes min, min*f, ... up to max. Every rank\n"
            "calls rl_comm_create(NULL, ...): RINGLET_RANK/SIZE/ADDR come from\n"
            "ringlet-run, other RINGLET_* variables configure the library\n"
            "(ringlet-info lists them). Rank 0 prints the table.\n"
            "\n"
            "  -b, --minbytes N      smallest size in bytes, K/M/G suffixes (default 32M)\n"
            "  -e, --maxbytes N      largest size in bytes (default 32M)\n"
            "  -f, --stepfactor F    multiply the size by F each step (default 2)\n"
            "  -i, --stepbytes N     add N bytes each step instead of -f\n"
            "  -n, --iters N         timed iterations per size (default 20)\n"
            "  -w, --warmup_iters N  untimed warm-up iterations (default 5)\n"
            "  -c, --check 0|1       check results, #wrong column (default 1)\n"
            "  -d, --datatype T      float32 (default), float64, float16, bfloat16,\n"
            "                        fp8_e4m3, fp8_e5m2, int8, uint8, int32, uint32,\n"
            "                        int64, uint64, or all\n",
            prog, coll->name);
    if (coll->has_op)
        fprintf(out, "  -o, --op OP           sum (default), prod, min, max, avg (floating types),\n"
                     "                        band, bor, bxor (integer types), or all\n");
    if (coll->has_root)
        fprintf(out, "  -r, --root R          root rank (default 0)\n");
    fprintf(out,
            "  -z, --blocking 0|1    1: blocking calls (default); 0: rl_i*() + rl_wait()\n"
            "  -R, --register 0|1    register buffers with rl_mem_register (default 1)\n"
            "  -A, --alloc A         malloc (default) or shared: buffers from rl_mem_alloc, in\n"
            "                        the host's shared memory and registered (-R ignored); on one\n"
            "                        host the direct all-reduce then reads the peers' buffers in\n"
            "                        place (2 ranks: with RINGLET_ALGOS=all_reduce:0-:direct)\n"
            "  -J, --json FILE       also write the results as JSON (rank 0)\n"
            "  -h, --help            this help\n"
            "\n"
            "time(us) is the median over the timed iterations of the slowest rank's\n"
            "time for that iteration. GB/s = 1e9 bytes/s. Exit status 1 if any\n"
            "result is wrong or any call fails, 2 for bad options.\n");
}

static void set_err(char *err, size_t errlen, const char *what, const char *val)
{
    snprintf(err, errlen, "invalid %s '%s'", what, val ? val : "");
}

int bench_parse_args(bench_opts_t *o, const bench_coll_t *coll, int argc,
                     char **argv, char *err, size_t errlen)
{
    static const struct option longopts[] = {
        {"minbytes", required_argument, NULL, 'b'},
        {"maxbytes", required_argument, NULL, 'e'},
        {"stepfactor", required_argument, NULL, 'f'},
        {"stepbytes", required_argument, NULL, 'i'},
        {"iters", required_argument, NULL, 'n'},
        {"warmup_iters", required_argument, NULL, 'w'},
        {"check", required_argument, NULL, 'c'},
        {"datatype", required_argument, NULL, 'd'},
        {"op", required_argument, NULL, 'o'},
        {"blocking", required_argument, NULL, 'z'},
        {"register", required_argument, NULL, 'R'},
        {"alloc", required_argument, NULL, 'A'},
        {"json", required_argument, NULL, 'J'},
        {"root", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, have_i = 0, have_f = 0;
    long v;

    memset(o, 0, sizeof(*o));
    o->min_bytes = o->max_bytes = 32u << 20;
    o->step_factor = 2;
    o->iters = 20;
    o->warmup = 5;
    o->check = 1;
    o->dtype = RL_FLOAT32;
    o->op = RL_SUM;
    o->blocking = 1;
    o->reg = 1;

    opterr = 0;
    optind = 0; /* glibc: full re-initialisation, so this can be called again */
    while ((c = getopt_long(argc, argv, ":b:e:f:i:n:w:c:d:o:z:R:A:J:r:h", longopts,
                            NULL)) != -1) {
        switch (c) {
        case 'b':
            if (bench_parse_size(optarg, &o->min_bytes) != 0)
                return set_err(err, errlen, "-b size", optarg), -1;
            break;
        case 'e':
            if (bench_parse_size(optarg, &o->max_bytes) != 0)
                return set_err(err, errlen, "-e size", optarg), -1;
            break;
        case 'f':
            if (parse_long(optarg, 2, 1L << 20, &v) != 0)
                return set_err(err, errlen, "-f factor (integer >= 2)", optarg), -1;
            o->step_factor = (size_t)v;
            have_f = 1;
            break;
        case 'i':
            if (bench_parse_size(optarg, &o->step_bytes) != 0 || o->step_bytes == 0)
                return set_err(err, errlen, "-i increment (bytes > 0)", optarg), -1;
            have_i = 1;
            break;
        case 'n':
            if (parse_long(optarg, 1, 1L << 24, &v) != 0)
                return set_err(err, errlen, "-n iterations (>= 1)", optarg), -1;
            o->iters = (int)v;
            break;
        case 'w':
            if (parse_long(optarg, 0, 1L << 24, &v) != 0)
                return set_err(err, errlen, "-w warm-up iterations (>= 0)", optarg), -1;
            o->warmup = (int)v;
            break;
        case 'c':
        case 'z':
        case 'R':
            if (parse_long(optarg, 0, 1, &v) != 0)
                return set_err(err, errlen, c == 'c' ? "-c (0 or 1)"
                                          : c == 'z' ? "-z (0 or 1)" : "-R (0 or 1)",
                               optarg), -1;
            *(c == 'c' ? &o->check : c == 'z' ? &o->blocking : &o->reg) = (int)v;
            break;
        case 'd':
            if (strcmp(optarg, "all") == 0) {
                o->all_dtypes = 1;
            } else if (rl_dtype_parse(optarg, &o->dtype) != RL_OK) {
                return set_err(err, errlen, "-d datatype", optarg), -1;
            }
            break;
        case 'o':
            if (strcmp(optarg, "all") == 0) {
                o->all_ops = 1;
            } else if (rl_op_parse(optarg, &o->op) != RL_OK) {
                return set_err(err, errlen, "-o op", optarg), -1;
            }
            break;
        case 'A':
            if (strcmp(optarg, "shared") && strcmp(optarg, "malloc"))
                return set_err(err, errlen, "-A (malloc or shared)", optarg), -1;
            o->shared = !strcmp(optarg, "shared");
            break;
        case 'J':
            o->json_path = optarg;
            break;
        case 'r': {
            char *end;
            errno = 0;
            v = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || v < 0 || v > INT32_MAX)
                return set_err(err, errlen, "-r root (a rank >= 0)", optarg), -1;
            o->root = (int)v;
            break;
        }
        case 'h':
            return 1;
        case ':':
            snprintf(err, errlen, "option '%s' needs a value", argv[optind - 1]);
            return -1;
        default:
            snprintf(err, errlen, "unknown option '%s'", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if (have_i && have_f) {
        snprintf(err, errlen, "-f and -i exclude each other");
        return -1;
    }
    if (o->min_bytes > o->max_bytes) {
        snprintf(err, errlen, "-b %zu is larger than -e %zu", o->min_bytes, o->max_bytes);
        return -1;
    }
    if (!coll->has_op) {
        o->all_ops = 0; /* -o means nothing here; accepted for shared scripts */
        o->op = RL_SUM;
    } else if (!o->all_dtypes && !o->all_ops && o->op == RL_AVG &&
               !bench_dtype_is_float(o->dtype)) {
        snprintf(err, errlen, "-o avg needs a floating-point -d, not %s",
                 rl_dtype_name(o->dtype));
        return -1;
    } else if (!o->all_dtypes && !o->all_ops && o->op >= RL_BAND &&
               bench_dtype_is_float(o->dtype)) {
        snprintf(err, errlen, "-o %s needs an integer -d, not %s", rl_op_name(o->op),
                 rl_dtype_name(o->dtype));
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------- values and types */

int bench_dtype_is_float(rl_dtype_t dtype)
{
    return dtype == RL_FLOAT16 || dtype == RL_BFLOAT16 || dtype == RL_FLOAT32 ||
           dtype == RL_FLOAT64 || dtype == RL_FP8_E4M3 || dtype == RL_FP8_E5M2;
}

static int dtype_is_unsigned(rl_dtype_t dtype)
{
    return dtype == RL_UINT8 || dtype == RL_UINT32 || dtype == RL_UINT64;
}

static uint16_t float_to_half(float f)
{
    uint32_t x, sign, absx, mant, rem, h;
    int exp;

    memcpy(&x, &f, sizeof(x));
    sign = (x >> 16) & 0x8000u;
    absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) /* inf, NaN (kept quiet) */
        return (uint16_t)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0));
    if (absx >= 0x477ff000u) /* rounds to >= 65520: infinity */
        return (uint16_t)(sign | 0x7c00u);
    if (absx < 0x38800000u) { /* below 2^-14: subnormal half (unit 2^-24) */
        float a;
        memcpy(&a, &absx, sizeof(a));
        return (uint16_t)(sign | (uint32_t)lrintf(a * 16777216.0f));
    }
    mant = absx & 0x7fffffu;
    exp = (int)(absx >> 23) - 127 + 15;
    h = ((uint32_t)exp << 10) | (mant >> 13);
    rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++; /* round to nearest even; a carry into the exponent is right */
    return (uint16_t)(sign | h);
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = ((uint32_t)h & 0x8000u) << 16, x;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    float f;

    if (exp == 0) {
        f = ldexpf((float)mant, -24);
        return sign ? -f : f;
    }
    if (exp == 31)
        x = sign | 0x7f800000u | (mant << 13);
    else
        x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    memcpy(&f, &x, sizeof(f));
    return f;
}

static uint16_t float_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof(x));
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

static float bf16_to_float(uint16_t b)
{
    uint32_t x = (uint32_t)b << 16;
    float f;
    memcpy(&f, &x, sizeof(f));
    return f;
}

/* OCP fp8 (E4M3: mbits 3, bias 7, saturating at 448; E5M2: mbits 2, bias
 * 15, overflow to infinity), round to nearest even; written out here, as
 * the half conversions above, so the check does not trust the library's. */
static uint8_t float_to_fp8(float f, int mbits, int bias)
{
    uint32_t x, absx, sign;
    memcpy(&x, &f, sizeof(x));
    sign = (x >> 24) & 0x80u;
    absx = x & 0x7fffffffu;
    int e4m3 = mbits == 3;
    if (absx > 0x7f800000u)
        return (uint8_t)(sign | (e4m3 ? 0x7fu : 0x7eu));
    float a;
    memcpy(&a, &absx, sizeof(a));
    if (e4m3 && a >= 448.0f)
        return (uint8_t)(sign | 0x7eu);
    if (!e4m3 && a >= 61440.0f)
        return (uint8_t)(sign | 0x7cu);
    /* a = q * 2^(e - mbits) with q rounded to nearest even */
    int e;
    frexpf(a, &e);
    e -= 1;
    if (e < 1 - bias)
        e = 1 - bias; /* subnormal: fixed unit */
    float q = nearbyintf(ldexpf(a, mbits - e));
    if (q >= (float)(2 << mbits)) /* rounded up into the next binade */
        q /= 2, e++;
    if (q < (float)(1 << mbits)) /* subnormal (or zero) */
        return (uint8_t)(sign | (uint32_t)q);
    return (uint8_t)(sign | (uint32_t)(e + bias) << mbits | ((uint32_t)q - (1u << mbits)));
}

static float fp8_to_float(uint8_t v, int mbits, int bias)
{
    int e = (v & 0x7f) >> mbits, m = v & ((1 << mbits) - 1);
    float f;
    if (mbits == 3 && e == 15 && m == 7)
        return NAN;
    if (mbits == 2 && e == 31)
        f = m ? NAN : INFINITY;
    else
        f = e ? ldexpf((float)(m + (1 << mbits)), e - bias - mbits) : ldexpf((float)m, 1 - bias - mbits);
    return v & 0x80 ? -f : f;
}

void bench_store(rl_dtype_t dtype, void *buf, size_t i, double v)
{
    switch (dtype) {
    case RL_INT8: ((int8_t *)buf)[i] = (int8_t)v; break;
    case RL_UINT8: ((uint8_t *)buf)[i] = (uint8_t)v; break;
    case RL_INT32: ((int32_t *)buf)[i] = (int32_t)v; break;
    case RL_UINT32: ((uint32_t *)buf)[i] = (uint32_t)v; break;
    case RL_INT64: ((int64_t *)buf)[i] = (int64_t)v; break;
    case RL_UINT64: ((uint64_t *)buf)[i] = (uint64_t)v; break;
    case RL_FLOAT16: ((uint16_t *)buf)[i] = float_to_half((float)v); break;
    case RL_BFLOAT16: ((uint16_t *)buf)[i] = float_to_bf16((float)v); break;
    case RL_FLOAT32: ((float *)buf)[i] = (float)v; break;
    case RL_FLOAT64: ((double *)buf)[i] = v; break;
    case RL_FP8_E4M3: ((uint8_t *)buf)[i] = float_to_fp8((float)v, 3, 7); break;
    case RL_FP8_E5M2: ((uint8_t *)buf)[i] = float_to_fp8((float)v, 2, 15); break;
    default: break;
    }
}

double bench_load(rl_dtype_t dtype, const void *buf, size_t i)
{
    switch (dtype) {
    case RL_INT8: return ((const int8_t *)buf)[i];
    case RL_UINT8: return ((const uint8_t *)buf)[i];
    case RL_INT32: return ((const int32_t *)buf)[i];
    case RL_UINT32: return ((const uint32_t *)buf)[i];
    case RL_INT64: return (double)((const int64_t *)buf)[i];
    case RL_UINT64: return (double)((const uint64_t *)buf)[i];
    case RL_FLOAT16: return half_to_float(((const uint16_t *)buf)[i]);
    case RL_BFLOAT16: return bf16_to_float(((const uint16_t *)buf)[i]);
    case RL_FLOAT32: return ((const float *)buf)[i];
    case RL_FLOAT64: return ((const double *)buf)[i];
    case RL_FP8_E4M3: return fp8_to_float(((const uint8_t *)buf)[i], 3, 7);
    case RL_FP8_E5M2: return fp8_to_float(((const uint8_t *)buf)[i], 2, 15);
    default: return NAN;
    }
}

/* Largest magnitude a sum may reach and stay exact (and in range). */
static long sum_limit(rl_dtype_t dtype)
{
    switch (dtype) {
    case RL_INT8: return 127;
    case RL_UINT8: return 255;
    case RL_BFLOAT16: return 256;  /* 8-bit significand */
    case RL_FLOAT16: return 2048;  /* 11-bit significand */
    case RL_FP8_E4M3: return 16;   /* 4-bit significand */
    case RL_FP8_E5M2: return 8;    /* 3-bit significand */
    default: return 1L << 30;
    }
}

double bench_value(rl_dtype_t dtype, rl_op_t op, int nranks, int r, size_t i)
{
    int uns = dtype_is_unsigned(dtype);
    size_t ur = (size_t)r;

    if (op == RL_SUM || op == RL_AVG) {
        /* Values in [-a, a] ([0, a] unsigned) with nranks * a <= limit, so
         * every partial sum, in any order, is exact. */
        long a = sum_limit(dtype) / (nranks > 0 ? nranks : 1);
        size_t m;
        if (a > (uns ? 10 : 5))
            a = uns ? 10 : 5;
        if (a < 1)
            a = 1;
        m = uns ? (size_t)a + 1 : 2 * (size_t)a + 1;
        return (double)((ur * 7 + (i % m) * 13) % m) - (uns ? 0.0 : (double)a);
    }
    if (op == RL_PROD) {
        /* Mostly +-1; only ranks 0..7 contribute a 2 (and, for floats, a
         * 1/2), at most twice each per element, so any partial product is
         * +-2^k with |k| <= 2. */
        double v = 1.0;
        if (r < 8 && (ur + i) % 4 == 0)
            v = 2.0;
        else if (r < 8 && (ur + i) % 4 == 2 && bench_dtype_is_float(dtype))
            v = 0.5;
        if (!uns && (ur * 5 + (i % 7) * 3) % 7 == 0)
            v = -v;
        return v;
    }
    /* min, max: anything in range. */
    return (double)((ur * 7 + (i % 11) * 13) % 11) - (uns ? 0.0 : 5.0);
}

double bench_expected(rl_dtype_t dtype, rl_op_t op, int nranks, size_t i)
{
    double acc = bench_value(dtype, op, nranks, 0, i);
    for (int r = 1; r < nranks; r++) {
        double v = bench_value(dtype, op, nranks, r, i);
        switch (op) {
        case RL_SUM:
        case RL_AVG: acc += v; break;
        case RL_PROD: acc *= v; break;
        case RL_MIN: acc = v < acc ? v : acc; break;
        case RL_MAX: acc = v > acc ? v : acc; break;
        /* small integers: two's complement bits as the element type has them */
        case RL_BAND: acc = (double)((int64_t)acc & (int64_t)v); break;
        case RL_BOR: acc = (double)((int64_t)acc | (int64_t)v); break;
        case RL_BXOR: acc = (double)((int64_t)acc ^ (int64_t)v); break;
        default: break;
        }
    }
    return op == RL_AVG ? acc / nranks : acc;
}

int bench_value_ok(rl_dtype_t dtype, rl_op_t op, double got, double want)
{
    double eps;
    if (op != RL_AVG)
        return got == want;
    /* sum / n is rounded at least once in the element type, maybe twice. */
    switch (dtype) {
    case RL_FLOAT16: eps = 0x1p-10; break;
    case RL_BFLOAT16: eps = 0x1p-7; break;
    case RL_FP8_E4M3: eps = 0x1p-3; break;
    case RL_FP8_E5M2: eps = 0x1p-2; break;
    case RL_FLOAT32: eps = 0x1p-23; break;
    default: eps = 0x1p-52; break;
    }
    return fabs(got - want) <= 2.0 * eps * fmax(fabs(want), 1.0);
}

/* ------------------------------------------------------------ printing */

#define BLOCK_FMT "  %7s  %6s  %6s  %6s"

void bench_print_table_header(FILE *out)
{
    fprintf(out, "#%51s  %-33s%-33s\n", "", "          out-of-place", "            in-place");
    fprintf(out, "#%11s  %12s  %8s  %6s  %6s" BLOCK_FMT BLOCK_FMT "\n", "size", "count",
            "type", "redop", "root", "time", "algbw", "busbw", "#wrong", "time", "algbw",
            "busbw", "#wrong");
    fprintf(out, "#%11s  %12s  %8s  %6s  %6s" BLOCK_FMT BLOCK_FMT "\n", "(B)",
            "(elements)", "", "", "", "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)",
            "(GB/s)", "");
}

static void print_block(FILE *out, const bench_result_t *r)
{
    char wrong[32];
    if (r->time_us < 0) {
        fprintf(out, BLOCK_FMT, "N/A", "N/A", "N/A", "N/A");
        return;
    }
    const char *tfmt = r->time_us < 1e4 ? "  %7.2f" : r->time_us < 1e5 ? "  %7.1f" : "  %7.0f";
    if (r->wrong < 0)
        snprintf(wrong, sizeof(wrong), "N/A");
    else
        snprintf(wrong, sizeof(wrong), "%lld", r->wrong);
    fprintf(out, tfmt, r->time_us);
    fprintf(out, "  %6.2f  %6.2f  %6s", r->algbw, r->busbw, wrong);
}

void bench_print_row(FILE *out, const bench_row_t *row, const bench_coll_t *coll,
                     const bench_result_t *oop, const bench_result_t *ip)
{
    fprintf(out, "%12zu  %12zu  %8s  %6s  %6d", row->bytes, row->count,
            rl_dtype_name(row->dtype), coll->has_op ? rl_op_name(row->op) : "none",
            coll->has_root ? row->root : -1);
    print_block(out, oop);
    print_block(out, ip);
    fputc('\n', out);
}

void bench_bandwidth(const bench_coll_t *coll, size_t bytes, int nranks,
                     double time_us, double *algbw, double *busbw)
{
    *algbw = time_us > 0 ? (double)bytes / time_us / 1e3 : 0.0;
    *busbw = *algbw * coll->bus_factor(nranks);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, size_t n)
{
    if (n == 0)
        return 0.0;
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ------------------------------------------------------------- running */

typedef struct {
    const bench_coll_t *coll;
    const bench_opts_t *opts;
    const char *prog;
    rl_comm_t comm;
    int rank, nranks;
    void *sendbuf, *recvbuf;
    size_t buf_bytes;
    double *times;
} bench_ctx_t;

typedef struct {
    bench_row_t row;
    bench_result_t oop, ip;
} bench_record_t;

static bench_ctx_t *g_ctx; /* for bench_die() */

/* Report a failed rl_ call and leave: peers learn it through the abort. */
static void bench_die(const char *fn, rl_status_t st) __attribute__((noreturn));
static void bench_die(const char *fn, rl_status_t st)
{
    const char *detail = g_ctx && g_ctx->comm ? rl_comm_last_error(g_ctx->comm) : "";
    fflush(stdout);
    fprintf(stderr, "%s: rank %d: %s failed: %s (%s)%s%s\n",
            g_ctx ? g_ctx->prog : "bench", g_ctx ? g_ctx->rank : -1, fn, rl_strerror(st),
            rl_status_name(st), detail && *detail ? ": " : "", detail ? detail : "");
    if (g_ctx && g_ctx->comm) {
        rl_comm_abort(g_ctx->comm);
        rl_comm_destroy(g_ctx->comm);
    }
    exit(1);
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static void run_once(const bench_ctx_t *c, const bench_row_t *row, const void *in,
                     void *out)
{
    rl_request_t req = NULL;
    const char *fn = "?";
    rl_status_t st = c->coll->start(row, in, out, row->blocking ? NULL : &req, &fn);

    if (st != RL_OK)
        bench_die(fn, st);
    if (!row->blocking) {
        st = rl_wait(req, -1);
        rl_request_free(req);
        if (st != RL_OK)
            bench_die("rl_wait", st);
    }
}

static void barrier(const bench_ctx_t *c)
{
    rl_status_t st = rl_barrier(c->comm);
    if (st != RL_OK)
        bench_die("rl_barrier", st);
}

/* Time one case (out-of-place or in-place) and check it. */
static void run_case(const bench_ctx_t *c, const bench_row_t *row, int in_place,
                     bench_result_t *res)
{
    void *in = in_place ? c->coll->in_place_input(row, c->recvbuf) : c->sendbuf;
    void *out = in_place && c->coll->in_place_output ? c->coll->in_place_output(row, c->recvbuf) : c->recvbuf;
    const bench_opts_t *o = c->opts;
    rl_status_t st;

    c->coll->fill(row, in);
    barrier(c);
    for (int k = 0; k < o->warmup; k++)
        run_once(c, row, in, out);
    for (int k = 0; k < o->iters; k++) {
        double t0 = now_us();
        run_once(c, row, in, out);
        c->times[k] = now_us() - t0;
    }
    st = rl_all_reduce(c->comm, c->times, c->times, (size_t)o->iters, RL_FLOAT64, RL_MAX);
    if (st != RL_OK)
        bench_die("rl_all_reduce (timing)", st);
    res->time_us = bench_median(c->times, (size_t)o->iters);
    bench_bandwidth(c->coll, row->bytes, c->nranks, res->time_us, &res->algbw, &res->busbw);

    res->wrong = -1;
    if (o->check) {
        uint64_t wrong;
        memset(out, 0xa5, row->recv_count * row->esize);
        c->coll->fill(row, in); /* in-place runs overwrote the input */
        run_once(c, row, in, out);
        wrong = c->coll->check(row, out);
        st = rl_all_reduce(c->comm, &wrong, &wrong, 1, RL_UINT64, RL_SUM);
        if (st != RL_OK)
            bench_die("rl_all_reduce (#wrong)", st);
        res->wrong = (long long)wrong;
    }
}

static char *join_args(int argc, char **argv)
{
    size_t len = 1;
    char *s;
    for (int i = 0; i < argc; i++)
        len += strlen(argv[i]) + 1;
    s = calloc(len, 1);
    if (s == NULL)
        return NULL;
    for (int i = 0; i < argc; i++) {
        if (i > 0)
            strcat(s, " ");
        strcat(s, argv[i]);
    }
    return s;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void json_result(FILE *f, const bench_result_t *r)
{
    if (r->time_us < 0) {
        fputs("null", f);
        return;
    }
    fprintf(f, "{\"time_us\": %.3f, \"algbw\": %.6f, \"busbw\": %.6f, \"wrong\": ",
            r->time_us, r->algbw, r->busbw);
    if (r->wrong < 0)
        fputs("null}", f);
    else
        fprintf(f, "%lld}", r->wrong);
}

static int write_json(const bench_ctx_t *c, const char *cmdline, const bench_record_t *recs,
                      size_t nrecs, long long oob, double avg_busbw)
{
    const bench_opts_t *o = c->opts;
    FILE *f = fopen(o->json_path, "w");
    char date[64];
    time_t t = time(NULL);
    struct tm tm;

    if (f == NULL) {
        fprintf(stderr, "%s: cannot write %s: %s\n", c->prog, o->json_path, strerror(errno));
        return -1;
    }
    gmtime_r(&t, &tm);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm);
    fputs("{\n  \"collective\": ", f);
    json_str(f, c->coll->name);
    fputs(",\n  \"ringlet_version\": ", f);
    json_str(f, rl_version());
    fputs(",\n  \"date\": ", f);
    json_str(f, date);
    fputs(",\n  \"command\": ", f);
    json_str(f, cmdline);
    fprintf(f, ",\n  \"nranks\": %d,\n  \"transport\": ", c->nranks);
    json_str(f, rl_comm_transport(c->comm));
    fputs(",\n  \"dtype\": ", f);
    json_str(f, o->all_dtypes ? "all" : rl_dtype_name(o->dtype));
    fputs(",\n  \"op\": ", f);
    json_str(f, !c->coll->has_op ? "none" : o->all_ops ? "all" : rl_op_name(o->op));
    fprintf(f, ",\n  \"iters\": %d,\n  \"warmup_iters\": %d,\n  \"check\": %d,\n"
               "  \"blocking\": %d,\n  \"register\": %d,\n  \"alloc\": \"%s\",\n",
            o->iters, o->warmup, o->check, o->blocking, o->reg, o->shared ? "shared" : "malloc");
    fputs("  \"time_stat\": \"median over iterations of the per-iteration max over ranks\",\n"
          "  \"bandwidth_unit\": \"GB/s (1e9 bytes/s)\",\n  \"rows\": [", f);
    for (size_t k = 0; k < nrecs; k++) {
        const bench_record_t *r = &recs[k];
        fprintf(f, "%s\n    {\"size\": %zu, \"count\": %zu, \"type\": ", k ? "," : "",
                r->row.bytes, r->row.count);
        json_str(f, rl_dtype_name(r->row.dtype));
        fputs(", \"redop\": ", f);
        json_str(f, c->coll->has_op ? rl_op_name(r->row.op) : "none");
        fprintf(f, ", \"root\": %d, \"oop\": ", c->coll->has_root ? r->row.root : -1);
        json_result(f, &r->oop);
        fputs(", \"ip\": ", f);
        json_result(f, &r->ip);
        fputc('}', f);
    }
    fprintf(f, "\n  ],\n  \"out_of_bounds\": %lld,\n  \"avg_busbw\": %.6f,\n  \"ok\": %s\n}\n",
            oob, avg_busbw, oob == 0 ? "true" : "false");
    if (fclose(f) != 0) {
        fprintf(stderr, "%s: cannot write %s: %s\n", c->prog, o->json_path, strerror(errno));
        return -1;
    }
    return 0;
}

static void print_header(const bench_ctx_t *c, const char *cmdline)
{
    const bench_opts_t *o = c->opts;
    char host[256] = "?";

    gethostname(host, sizeof(host) - 1);
    printf("# ringlet %s %s_perf\n", rl_version(), c->coll->name);
    printf("# Command: %s\n", cmdline);
    printf("# nranks: %d  transport: %s\n", c->nranks, rl_comm_transport(c->comm));
    printf("# dtype: %s  op: %s  iters: %d  warmup_iters: %d  check: %d  blocking: %d"
           "  register: %d  alloc: %s\n",
           o->all_dtypes ? "all" : rl_dtype_name(o->dtype),
           !c->coll->has_op ? "none" : o->all_ops ? "all" : rl_op_name(o->op), o->iters,
           o->warmup, o->check, o->blocking, o->reg, o->shared ? "shared" : "malloc");
    if (o->step_bytes)
        printf("# minBytes %zu maxBytes %zu step: %zu(bytes)\n", o->min_bytes, o->max_bytes,
               o->step_bytes);
    else
        printf("# minBytes %zu maxBytes %zu step: %zu(factor)\n", o->min_bytes, o->max_bytes,
               o->step_factor);
    printf("# time(us): median over the %d timed iterations of the slowest rank's time"
           " (CLOCK_MONOTONIC)\n", o->iters);
    printf("# algbw = size / time, busbw = algbw * %s; GB/s = 1e9 bytes/s\n", c->coll->bus_formula);
    printf("#\n# Rank %2d Pid %6d on %s transport %s\n#\n", c->rank, (int)getpid(), host,
           rl_comm_transport(c->comm));
    bench_print_table_header(stdout);
    fflush(stdout);
}

static size_t next_size(const bench_opts_t *o, size_t size)
{
    if (o->step_bytes) {
        if (size > SIZE_MAX - o->step_bytes)
            return 0;
        return size + o->step_bytes;
    }
    if (size == 0)
        return 1;
    if (size > SIZE_MAX / o->step_factor)
        return 0;
    return size * o->step_factor;
}

int bench_main(const bench_coll_t *coll, int argc, char **argv)
{
    bench_opts_t o;
    bench_ctx_t c = {.coll = coll, .opts = &o};
    bench_record_t *recs = NULL;
    size_t nrecs = 0, cap = 0;
    rl_mem_t smem = NULL, rmem = NULL;
    char err[256], *cmdline;
    const char *slash = strrchr(argv[0], '/');
    long long oob = 0;
    double bw_sum = 0;
    int bw_count = 0, rc;
    rl_status_t st;

    c.prog = slash ? slash + 1 : argv[0];
    rc = bench_parse_args(&o, coll, argc, argv, err, sizeof(err));
    if (rc == 1) {
        bench_usage(stdout, c.prog, coll);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "%s: %s (try --help)\n", c.prog, err);
        return 2;
    }
    cmdline = join_args(argc, argv);
    g_ctx = &c;

    st = rl_comm_create(NULL, &c.comm);
    if (st != RL_OK)
        bench_die("rl_comm_create", st);
    if ((st = rl_comm_rank(c.comm, &c.rank)) != RL_OK)
        bench_die("rl_comm_rank", st);
    if ((st = rl_comm_size(c.comm, &c.nranks)) != RL_OK)
        bench_die("rl_comm_size", st);
    if (coll->has_root && o.root >= c.nranks) {
        if (c.rank == 0)
            fprintf(stderr, "%s: -r %d is not a rank of a group of %d\n", c.prog, o.root, c.nranks);
        rl_comm_destroy(c.comm);
        return 2;
    }

    c.buf_bytes = o.max_bytes > 64 ? o.max_bytes : 64;
    c.buf_bytes = (c.buf_bytes + 4095) & ~(size_t)4095;
    c.times = calloc((size_t)o.iters, sizeof(double));
    if (o.shared) {
        if ((st = rl_mem_alloc(c.comm, c.buf_bytes, &c.sendbuf)) != RL_OK ||
            (st = rl_mem_alloc(c.comm, c.buf_bytes, &c.recvbuf)) != RL_OK)
            bench_die("rl_mem_alloc", st);
        o.reg = 0; /* registered already */
    }
    if (c.times == NULL || (!o.shared && (posix_memalign(&c.sendbuf, 4096, c.buf_bytes) != 0 ||
                                          posix_memalign(&c.recvbuf, 4096, c.buf_bytes) != 0))) {
        fprintf(stderr, "%s: rank %d: cannot allocate 2 x %zu bytes\n", c.prog, c.rank,
                c.buf_bytes);
        bench_die("allocation", RL_ERR_NO_MEMORY);
    }
    memset(c.sendbuf, 0, c.buf_bytes);
    memset(c.recvbuf, 0, c.buf_bytes);
    if (o.reg) {
        if ((st = rl_mem_register(c.comm, c.sendbuf, c.buf_bytes, &smem)) != RL_OK)
            bench_die("rl_mem_register (send buffer)", st);
        if ((st = rl_mem_register(c.comm, c.recvbuf, c.buf_bytes, &rmem)) != RL_OK)
            bench_die("rl_mem_register (recv buffer)", st);
    }
    if (c.rank == 0)
        print_header(&c, cmdline ? cmdline : argv[0]);

    for (int d = 0; d < RL_DTYPE_COUNT; d++) {
        rl_dtype_t dtype = o.all_dtypes ? (rl_dtype_t)d : o.dtype;
        if (!o.all_dtypes && d > 0)
            break;
        for (int p = 0; p < RL_OP_COUNT; p++) {
            rl_op_t op = o.all_ops ? (rl_op_t)p : o.op;
            if (!o.all_ops && p > 0)
                break;
            if ((op == RL_AVG && !bench_dtype_is_float(dtype)) || (op >= RL_BAND && bench_dtype_is_float(dtype)))
                continue;
            for (size_t size = o.min_bytes, nx;; size = nx) {
                bench_record_t rec;
                memset(&rec, 0, sizeof(rec));
                rec.row = (bench_row_t){.comm = c.comm, .rank = c.rank, .nranks = c.nranks,
                                        .dtype = dtype, .op = op,
                                        .root = coll->has_root ? o.root : -1,
                                        .esize = rl_dtype_size(dtype),
                                        .blocking = o.blocking};
                coll->shape(&rec.row, size);
                nx = next_size(&o, size);
                if (nx <= size || nx > o.max_bytes)
                    nx = 0; /* this is the last size */
                if (rec.row.count == 0) {
                    if (c.rank == 0)
                        printf("# %zu bytes: less than one %s per rank, skipped\n", size,
                               rl_dtype_name(dtype));
                    if (nx == 0)
                        break;
                    continue;
                }
                run_case(&c, &rec.row, 0, &rec.oop);
                if (coll->in_place_input) {
                    run_case(&c, &rec.row, 1, &rec.ip);
                } else {
                    rec.ip = (bench_result_t){.time_us = -1, .wrong = -1}; /* no in-place form */
                }
                if (rec.oop.wrong > 0)
                    oob += rec.oop.wrong;
                if (rec.ip.wrong > 0)
                    oob += rec.ip.wrong;
                bw_sum += rec.oop.busbw + rec.ip.busbw;
                bw_count += coll->in_place_input ? 2 : 1;
                if (c.rank == 0) {
                    bench_print_row(stdout, &rec.row, coll, &rec.oop, &rec.ip);
                    fflush(stdout);
                }
                if (nrecs == cap) {
                    bench_record_t *nr;
                    cap = cap ? 2 * cap : 32;
                    nr = realloc(recs, cap * sizeof(*recs));
                    if (nr == NULL)
                        bench_die("allocation", RL_ERR_NO_MEMORY);
                    recs = nr;
                }
                recs[nrecs++] = rec;
                if (nx == 0)
                    break;
            }
        }
    }

    rc = oob > 0 ? 1 : 0;
    if (c.rank == 0) {
        double avg = bw_count ? bw_sum / bw_count : 0.0;
        printf("# Out of bounds values : %lld %s%s\n", oob, oob ? "FAILED" : "OK",
               o.check ? "" : " (not checked: -c 0)");
        printf("# Avg bus bandwidth    : %g \n#\n", avg);
        fflush(stdout);
        if (o.json_path && write_json(&c, cmdline ? cmdline : argv[0], recs, nrecs, oob,
                                      avg) != 0)
            rc = 1;
    }

    if (rmem && (st = rl_mem_deregister(c.comm, rmem)) != RL_OK)
        bench_die("rl_mem_deregister", st);
    if (smem && (st = rl_mem_deregister(c.comm, smem)) != RL_OK)
        bench_die("rl_mem_deregister", st);
    if (o.shared && ((st = rl_mem_free(c.comm, c.recvbuf)) != RL_OK || (st = rl_mem_free(c.comm, c.sendbuf)) != RL_OK))
        bench_die("rl_mem_free", st);
    st = rl_comm_destroy(c.comm);
    c.comm = NULL;
    if (st != RL_OK)
        bench_die("rl_comm_destroy", st);
    if (!o.shared) {
        free(c.sendbuf);
        free(c.recvbuf);
    }
    free(c.times);
    free(recs);
    free(cmdline);
    return rc;
}
