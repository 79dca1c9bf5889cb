/*
 * (dtype, op) -> kernel, with the instruction set chosen once at first use.
 *
 * One merged table per ISA is built at initialisation (the best kernel each
 * ISA has, falling back to the portable one); afterwards a lookup is a read
 * of an atomic ISA index and of a table that no longer changes.
 * RINGLET_REDUCE_ISA may lower the choice, never raise it above the CPU.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <threads.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "core/log.h"
#include "reduce/reduce.h"

/* Which vector files the build linked in (set by lib/reduce/meson.build). */
#ifndef RL_REDUCE_HAVE_AVX2
#define RL_REDUCE_HAVE_AVX2 0
#endif
#ifndef RL_REDUCE_HAVE_AVX512
#define RL_REDUCE_HAVE_AVX512 0
#endif

static const char *const isa_names[RL_ISA_COUNT] = {
    [RL_ISA_GENERIC] = "generic", [RL_ISA_AVX2] = "avx2", [RL_ISA_AVX512] = "avx512"};

size_t rl_reduce_stream_bytes = SIZE_MAX; /* until init() sizes it */

static once_flag init_once = ONCE_FLAG_INIT;
static rl_reduce_table_t tables[RL_ISA_COUNT]; /* written once, in init */
static rl_isa_t isa_max = RL_ISA_GENERIC;      /* written once, in init */
static atomic_int isa_cur = RL_ISA_GENERIC;

static int is_fp8(rl_dtype_t dtype) { return dtype == RL_FP8_E4M3 || dtype == RL_FP8_E5M2; }

static int is_float(rl_dtype_t dtype)
{
    return dtype == RL_FLOAT16 || dtype == RL_BFLOAT16 || dtype == RL_FLOAT32 || dtype == RL_FLOAT64 ||
           is_fp8(dtype);
}

static int is_bitwise(rl_op_t op) { return op == RL_BAND || op == RL_BOR || op == RL_BXOR; }

#if defined(__x86_64__) || defined(__i386__)
/* clang does not know "f16c" in __builtin_cpu_supports: ask CPUID leaf 1. */
static int cpu_has_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

static rl_isa_t detect_cpu(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (RL_REDUCE_HAVE_AVX512 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return RL_ISA_AVX512;
    if (RL_REDUCE_HAVE_AVX2 && __builtin_cpu_supports("avx2") && cpu_has_f16c())
        return RL_ISA_AVX2;
#endif
    return RL_ISA_GENERIC;
}

static const rl_reduce_table_t *isa_table(rl_isa_t isa)
{
#if RL_REDUCE_HAVE_AVX512
    if (isa == RL_ISA_AVX512)
        return &rl_reduce_avx512_table;
#endif
#if RL_REDUCE_HAVE_AVX2
    if (isa == RL_ISA_AVX2)
        return &rl_reduce_avx2_table;
#endif
    (void)isa;
    return NULL;
}

static int parse_isa(const char *name, rl_isa_t *isa)
{
    for (int i = 0; i < RL_ISA_COUNT; i++) {
        if (strcasecmp(name, isa_names[i]) == 0) {
            *isa = (rl_isa_t)i;
            return 0;
        }
    }
    return -1;
}

/* Half the last-level cache: with two inputs and an output of that size the
 * working set is 1.5x the cache, so a regular store would only evict. */
static size_t stream_threshold(void)
{
    long llc = -1;
#ifdef _SC_LEVEL3_CACHE_SIZE
    llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (llc <= 0)
        llc = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    return llc > 0 ? (size_t)llc / 2 : (size_t)8 << 20;
}

static void init(void)
{
    rl_reduce_stream_bytes = stream_threshold();
    rl_reduce_fp8_init();
    isa_max = detect_cpu();
    for (int isa = RL_ISA_GENERIC; isa <= (int)isa_max; isa++) {
        for (int d = 0; d < RL_DTYPE_COUNT; d++) {
            for (int o = 0; o < RL_OP_COUNT; o++) {
                if (o == RL_AVG)
                    continue;
                const rl_reduce_table_t *t = isa_table((rl_isa_t)isa);
                rl_reduce_fn fn = t ? (*t)[d][o] : NULL;
                tables[isa][d][o] = fn ? fn : isa > 0 ? tables[isa - 1][d][o] : rl_reduce_generic((rl_dtype_t)d, (rl_op_t)o);
            }
        }
    }
    rl_isa_t cur = isa_max;
    const char *env = getenv("RINGLET_REDUCE_ISA");
    if (env && *env) {
        rl_isa_t want;
        if (parse_isa(env, &want) != 0)
            RL_WARN("ignoring RINGLET_REDUCE_ISA=%s (use generic|avx2|avx512)", env);
        else if (want > isa_max)
            RL_WARN("RINGLET_REDUCE_ISA=%s is not available on this CPU, using %s", env, isa_names[isa_max]);
        else
            cur = want;
    }
    atomic_store(&isa_cur, (int)cur);
    RL_DEBUG("reduce kernels: %s (cpu supports up to %s), streaming stores from %zu bytes", isa_names[cur],
             isa_names[isa_max], rl_reduce_stream_bytes);
}

rl_reduce_fn rl_reduce_generic(rl_dtype_t dtype, rl_op_t op)
{
    if ((unsigned)dtype >= RL_DTYPE_COUNT || (unsigned)op >= RL_OP_COUNT || op == RL_AVG)
        return NULL;
    rl_reduce_fn fn = rl_reduce_generic_table[dtype][op];
    if (!fn)
        fn = rl_reduce_half_table[dtype][op];
    return fn ? fn : rl_reduce_fp8_table[dtype][op];
}

int rl_reduce_supported(rl_dtype_t dtype, rl_op_t op)
{
    if ((unsigned)dtype >= RL_DTYPE_COUNT || (unsigned)op >= RL_OP_COUNT)
        return 0;
    if (is_bitwise(op))
        return !is_float(dtype);
    return op != RL_AVG || is_float(dtype);
}

rl_reduce_fn rl_reduce_lookup(rl_dtype_t dtype, rl_op_t op)
{
    if (!rl_reduce_supported(dtype, op))
        return NULL;
    call_once(&init_once, init);
    return tables[atomic_load(&isa_cur)][dtype][op == RL_AVG ? RL_SUM : op];
}

rl_status_t rl_reduce_scale(void *buf, size_t n, rl_dtype_t dtype, int divisor)
{
    if (!is_float(dtype) || divisor <= 0 || (n && !buf))
        return RL_ERR_INVALID_ARG;
    if (dtype == RL_FLOAT32) {
        float *p = buf, div = (float)divisor;
        for (size_t i = 0; i < n; i++)
            p[i] = p[i] / div;
    } else if (dtype == RL_FLOAT64) {
        double *p = buf, div = (double)divisor;
        for (size_t i = 0; i < n; i++)
            p[i] = p[i] / div;
    } else if (is_fp8(dtype)) {
        rl_reduce_fp8_scale(buf, n, dtype, divisor);
    } else {
        rl_reduce_half_scale(buf, n, dtype, divisor);
    }
    return RL_OK;
}

const char *rl_reduce_isa(void)
{
    call_once(&init_once, init);
    return isa_names[atomic_load(&isa_cur)];
}

rl_isa_t rl_reduce_isa_max(void)
{
    call_once(&init_once, init);
    return isa_max;
}

int rl_reduce_force_isa(const char *name)
{
    rl_isa_t want;
    call_once(&init_once, init);
    if (!name || parse_isa(name, &want) != 0 || want > isa_max)
        return -1;
    atomic_store(&isa_cur, (int)want);
    return 0;
}

size_t rl_reduce_set_stream_bytes(size_t bytes)
{
    call_once(&init_once, init);
    size_t old = rl_reduce_stream_bytes;
    rl_reduce_stream_bytes = bytes;
    return old;
}

const char *rl_reduce_isa_name(rl_isa_t isa)
{
    return (unsigned)isa < RL_ISA_COUNT ? isa_names[isa] : NULL;
}
