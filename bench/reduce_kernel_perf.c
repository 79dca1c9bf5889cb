/*
 * reduce_kernel_perf: speed of one reduction kernel call (dst = a op b) on
 * one core, next to memcpy of the same buffer size, measured in the same run
 * (kernel and memcpy iterations alternate, so both see the same machine).
 *
 * Byte conventions (stated in --help and in the header line):
 *   kernel GB/s = 3 * bytes / time   (reads a and b, writes dst)
 *   memcpy GB/s = 2 * bytes / time   (reads src, writes dst)
 * where `bytes` is the size of one buffer (count * element size). bw_ratio
 * is kernel GB/s over memcpy GB/s; time_ratio is kernel time over memcpy
 * time for the same element count. Times are medians over the iterations.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reduce/reduce.h"
#include "ringlet.h"

typedef struct {
    size_t min_bytes, max_bytes;
    double factor;
    int iters, warmup;
    int dtypes[RL_DTYPE_COUNT], ndtypes;
    int ops[RL_OP_COUNT], nops;
    const char *isa;
    const char *json;
} opts_t;

typedef struct {
    rl_dtype_t dtype;
    rl_op_t op;
    size_t bytes, count;
    double kernel_us, memcpy_us;
} row_t;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: reduce_kernel_perf [options]\n"
            "  -b BYTES   smallest buffer size (default 4K; K/M/G suffixes)\n"
            "  -e BYTES   largest buffer size (default 64M)\n"
            "  -f FACTOR  size multiplier between steps (default 4)\n"
            "  -n ITERS   timed iterations per size (default 20)\n"
            "  -w ITERS   untimed warm-up iterations (default 3)\n"
            "  -d LIST    dtypes, comma list or \"all\" (default float32,bfloat16);\n"
            "             int8 uint8 int32 uint32 int64 uint64 float16 bfloat16 float32\n"
            "             float64 fp8_e4m3 fp8_e5m2\n"
            "  -o LIST    ops: sum,prod,min,max,band,bor,bxor or \"all\" (default sum);\n"
            "             pairs a dtype does not have (bitwise on floats) are skipped\n"
            "  -i ISA     force generic|avx2|avx512 (default: what the CPU supports)\n"
            "  --json FILE  also write the results as JSON\n"
            "  -h, --help\n"
            "BYTES is the size of one buffer (count * element size).\n"
            "kernel GB/s counts 3*BYTES per call (reads a and b, writes dst);\n"
            "memcpy GB/s counts 2*BYTES per call (reads src, writes dst), same BYTES.\n"
            "bw_ratio = kernel GB/s / memcpy GB/s; time_ratio = kernel time / memcpy time.\n"
            "Times are medians over the timed iterations; one thread.\n");
}

static int parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -1;
    switch (*end) {
    case 'k': case 'K': v *= 1024.0; end++; break;
    case 'm': case 'M': v *= 1024.0 * 1024.0; end++; break;
    case 'g': case 'G': v *= 1024.0 * 1024.0 * 1024.0; end++; break;
    default: break;
    }
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end)
        return -1;
    *out = (size_t)v;
    return 0;
}

static int parse_int(const char *s, int lo, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > 1000000)
        return -1;
    *out = (int)v;
    return 0;
}

/* Comma list of names; "all" takes every value below `count`. */
static int parse_list(const char *s, int count, int is_op, int *vals, int *n)
{
    *n = 0;
    if (strcmp(s, "all") == 0) {
        for (int i = 0; i < count; i++)
            if (!is_op || i != RL_AVG) /* avg is the sum kernel, then a division */
                vals[(*n)++] = i;
        return 0;
    }
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int v;
        if (is_op) {
            rl_op_t op;
            if (rl_op_parse(tok, &op) != RL_OK || op == RL_AVG)
                return -1;
            v = (int)op;
        } else {
            rl_dtype_t dt;
            if (rl_dtype_parse(tok, &dt) != RL_OK)
                return -1;
            v = (int)dt;
        }
        if (*n >= count)
            return -1;
        vals[(*n)++] = v;
    }
    return *n ? 0 : -1;
}

static int parse_opts(int argc, char **argv, opts_t *o)
{
    static const struct option longopts[] = {
        {"json", required_argument, NULL, 'J'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    *o = (opts_t){.min_bytes = 4096, .max_bytes = 64u << 20, .factor = 4, .iters = 20, .warmup = 3};
    parse_list("float32,bfloat16", RL_DTYPE_COUNT, 0, o->dtypes, &o->ndtypes);
    parse_list("sum", RL_OP_COUNT, 1, o->ops, &o->nops);
    int c;
    while ((c = getopt_long(argc, argv, "b:e:f:n:w:d:o:i:h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'b': bad = parse_size(optarg, &o->min_bytes); break;
        case 'e': bad = parse_size(optarg, &o->max_bytes); break;
        case 'f': o->factor = strtod(optarg, NULL); bad = !(o->factor > 1.0); break;
        case 'n': bad = parse_int(optarg, 1, &o->iters); break;
        case 'w': bad = parse_int(optarg, 0, &o->warmup); break;
        case 'd': bad = parse_list(optarg, RL_DTYPE_COUNT, 0, o->dtypes, &o->ndtypes); break;
        case 'o': bad = parse_list(optarg, RL_OP_COUNT, 1, o->ops, &o->nops); break;
        case 'i': o->isa = optarg; break;
        case 'J': o->json = optarg; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
        if (bad) {
            fprintf(stderr, "reduce_kernel_perf: bad value for -%c: %s\n", c == 'J' ? 'J' : c, optarg);
            return -1;
        }
    }
    if (optind < argc || o->min_bytes > o->max_bytes || o->max_bytes == 0) {
        usage(stderr);
        return -1;
    }
    return 0;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Ordinary finite values (no NaN/inf/subnormal): what training data is. */
static void fill(rl_dtype_t dt, void *buf, size_t count, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < count; i++) {
        x = x * 1664525u + 1013904223u;
        float f = (float)(x >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
        switch (dt) {
        case RL_FLOAT16: ((uint16_t *)buf)[i] = rl_float_to_half(f); break;
        case RL_BFLOAT16: ((uint16_t *)buf)[i] = rl_float_to_bf16(f); break;
        case RL_FLOAT32: ((float *)buf)[i] = f; break;
        case RL_FLOAT64: ((double *)buf)[i] = f; break;
        case RL_FP8_E4M3: ((uint8_t *)buf)[i] = rl_float_to_fp8_e4m3(f); break;
        case RL_FP8_E5M2: ((uint8_t *)buf)[i] = rl_float_to_fp8_e5m2(f); break;
        default: memcpy((char *)buf + i * rl_dtype_size(dt), &x, rl_dtype_size(dt)); break;
        }
    }
}

static void run_row(const opts_t *o, row_t *r, char *a, char *b, char *d)
{
    rl_reduce_fn fn = rl_reduce_lookup(r->dtype, r->op);
    fill(r->dtype, a, r->count, 1);
    fill(r->dtype, b, r->count, 2);
    double *tk = malloc(sizeof(double) * (size_t)o->iters), *tm = malloc(sizeof(double) * (size_t)o->iters);
    if (!tk || !tm) {
        fprintf(stderr, "reduce_kernel_perf: out of memory\n");
        exit(1);
    }
    for (int i = 0; i < o->warmup + o->iters; i++) {
        double t0 = now_us();
        fn(d, a, b, r->count);
        double t1 = now_us();
        memcpy(d, a, r->bytes);
        double t2 = now_us();
        if (i >= o->warmup) {
            tk[i - o->warmup] = t1 - t0;
            tm[i - o->warmup] = t2 - t1;
        }
    }
    r->kernel_us = median(tk, o->iters);
    r->memcpy_us = median(tm, o->iters);
    free(tk);
    free(tm);
}

static double gbps(double bytes, double us) { return us > 0 ? bytes / us / 1e3 : 0; }

static void print_row(const row_t *r)
{
    double kg = gbps(3.0 * (double)r->bytes, r->kernel_us), mg = gbps(2.0 * (double)r->bytes, r->memcpy_us);
    printf("%-9s %-5s %12zu %12zu %11.2f %9.2f %11.2f %9.2f %9.3f %9.3f\n", rl_dtype_name(r->dtype),
           rl_op_name(r->op), r->bytes, r->count, r->kernel_us, kg, r->memcpy_us, mg, mg > 0 ? kg / mg : 0,
           r->memcpy_us > 0 ? r->kernel_us / r->memcpy_us : 0);
}

static int write_json(const opts_t *o, const row_t *rows, size_t n)
{
    FILE *f = fopen(o->json, "w");
    if (!f) {
        fprintf(stderr, "reduce_kernel_perf: cannot write %s: %s\n", o->json, strerror(errno));
        return -1;
    }
    fprintf(f, "{\n  \"benchmark\": \"reduce_kernel_perf\",\n  \"isa\": \"%s\",\n", rl_reduce_isa());
    fprintf(f, "  \"iters\": %d,\n  \"warmup\": %d,\n", o->iters, o->warmup);
    fprintf(f, "  \"convention\": \"bytes = one buffer; kernel GB/s = 3*bytes/median time; "
               "memcpy GB/s = 2*bytes/median time\",\n  \"results\": [\n");
    for (size_t i = 0; i < n; i++) {
        const row_t *r = &rows[i];
        double kg = gbps(3.0 * (double)r->bytes, r->kernel_us), mg = gbps(2.0 * (double)r->bytes, r->memcpy_us);
        fprintf(f,
                "    {\"dtype\": \"%s\", \"op\": \"%s\", \"bytes\": %zu, \"count\": %zu, \"kernel_us\": %.3f, "
                "\"kernel_gbps\": %.3f, \"memcpy_us\": %.3f, \"memcpy_gbps\": %.3f, \"bw_ratio\": %.4f, "
                "\"time_ratio\": %.4f}%s\n",
                rl_dtype_name(r->dtype), rl_op_name(r->op), r->bytes, r->count, r->kernel_us, kg, r->memcpy_us,
                mg, mg > 0 ? kg / mg : 0, r->memcpy_us > 0 ? r->kernel_us / r->memcpy_us : 0,
                i + 1 < n ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    return fclose(f) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    opts_t o;
    if (parse_opts(argc, argv, &o) != 0)
        return 2;
    if (o.isa && rl_reduce_force_isa(o.isa) != 0) {
        fprintf(stderr, "reduce_kernel_perf: ISA %s is unknown or not supported here (max %s)\n", o.isa,
                rl_reduce_isa_name(rl_reduce_isa_max()));
        return 2;
    }
    size_t cap = o.max_bytes + 64;
    char *a = aligned_alloc(64, (cap + 63) / 64 * 64), *b = aligned_alloc(64, (cap + 63) / 64 * 64),
         *d = aligned_alloc(64, (cap + 63) / 64 * 64);
    if (!a || !b || !d) {
        fprintf(stderr, "reduce_kernel_perf: cannot allocate 3 x %zu bytes\n", cap);
        return 1;
    }
    /* Fault every page in before timing. */
    memset(a, 0, cap);
    memset(b, 0, cap);
    memset(d, 0, cap);

    size_t nsizes = 0;
    for (double s = (double)o.min_bytes; s <= (double)o.max_bytes; s *= o.factor)
        nsizes++;
    row_t *rows = calloc(nsizes * (size_t)o.ndtypes * (size_t)o.nops + 1, sizeof(*rows));
    if (!rows)
        return 1;
    size_t nrows = 0;

    printf("# reduce_kernel_perf: isa %s, %d iterations (+%d warm-up), median times, one thread\n",
           rl_reduce_isa(), o.iters, o.warmup);
    printf("# bytes = one buffer; kernel GB/s = 3*bytes/time (2 reads + 1 write); memcpy GB/s = 2*bytes/time "
           "(1 read + 1 write)\n");
    printf("# bw_ratio = kernel GB/s / memcpy GB/s; time_ratio = kernel time / memcpy time (same count)\n");
    printf("%-9s %-5s %12s %12s %11s %9s %11s %9s %9s %9s\n", "# dtype", "op", "bytes", "count", "kernel_us",
           "GB/s", "memcpy_us", "GB/s", "bw_ratio", "t_ratio");
    for (int di = 0; di < o.ndtypes; di++) {
        for (int oi = 0; oi < o.nops; oi++) {
            rl_dtype_t dt = (rl_dtype_t)o.dtypes[di];
            size_t es = rl_dtype_size(dt);
            if (!rl_reduce_supported(dt, (rl_op_t)o.ops[oi]))
                continue;
            for (double s = (double)o.min_bytes; s <= (double)o.max_bytes; s *= o.factor) {
                row_t *r = &rows[nrows];
                r->dtype = dt;
                r->op = (rl_op_t)o.ops[oi];
                r->count = (size_t)s / es;
                r->bytes = r->count * es;
                if (r->count == 0)
                    continue;
                run_row(&o, r, a, b, d);
                print_row(r);
                fflush(stdout);
                nrows++;
            }
        }
    }
    int rc = o.json ? write_json(&o, rows, nrows) : 0;
    free(rows);
    free(a);
    free(b);
    free(d);
    return rc ? 1 : 0;
}
