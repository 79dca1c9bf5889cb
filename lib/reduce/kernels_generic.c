/*
 * Portable kernels for the integer types, float32 and float64. They are the
 * reference every vector kernel must match bit for bit, and the tails of the
 * vector kernels. Integers are computed in the unsigned type of the same
 * width (wrap-around, no signed overflow); float NaN results are described
 * in reduce.h.
 */
#include <stdint.h>
#include <string.h>

#include "reduce/reduce.h"
#include "reduce/bits.h"

#define CANON_NAN_F32 UINT32_C(0x7FC00000)
#define CANON_NAN_F64 UINT64_C(0x7FF8000000000000)

/* Floating min/max: a NaN wins (a's first), -0 < +0 (a|b / a&b of the bits
 * of two equal numbers gives -0 for min and +0 for max). */
static inline float min_f32(float a, float b)
{
    if (a != a || a < b)
        return a;
    return a == b ? f32_from(f32_bits(a) | f32_bits(b)) : b;
}

static inline float max_f32(float a, float b)
{
    if (a != a || a > b)
        return a;
    return a == b ? f32_from(f32_bits(a) & f32_bits(b)) : b;
}

static inline double min_f64(double a, double b)
{
    if (a != a || a < b)
        return a;
    return a == b ? f64_from(f64_bits(a) | f64_bits(b)) : b;
}

static inline double max_f64(double a, double b)
{
    if (a != a || a > b)
        return a;
    return a == b ? f64_from(f64_bits(a) & f64_bits(b)) : b;
}

static inline float canon_f32(float r) { return r != r ? f32_from(CANON_NAN_F32) : r; }
static inline double canon_f64(double r) { return r != r ? f64_from(CANON_NAN_F64) : r; }

#define KERNEL(name, T, expr)                                                  \
    static void name(void *dst, const void *a, const void *b, size_t n)        \
    {                                                                          \
        T *d = dst;                                                            \
        const T *x = a, *y = b;                                                \
        for (size_t i = 0; i < n; i++) {                                       \
            T p = x[i], q = y[i];                                              \
            d[i] = (expr);                                                     \
        }                                                                      \
    }

/* Integers of one width: sum/prod and the bitwise ops in U (unsigned),
 * min/max in S. */
#define INT_KERNELS(tag, S, U)                                                 \
    KERNEL(tag##_sum, U, (U)(p + q))                                           \
    KERNEL(tag##_prod, U, (U)(p * q))                                          \
    KERNEL(tag##_min, S, p < q ? p : q)                                        \
    KERNEL(tag##_max, S, p > q ? p : q)                                        \
    KERNEL(tag##_band, U, (U)(p & q))                                          \
    KERNEL(tag##_bor, U, (U)(p | q))                                           \
    KERNEL(tag##_bxor, U, (U)(p ^ q))

INT_KERNELS(i8, int8_t, uint8_t)
INT_KERNELS(u8, uint8_t, uint8_t)
INT_KERNELS(i32, int32_t, uint32_t)
INT_KERNELS(u32, uint32_t, uint32_t)
INT_KERNELS(i64, int64_t, uint64_t)
INT_KERNELS(u64, uint64_t, uint64_t)

KERNEL(f32_sum, float, canon_f32(p + q))
KERNEL(f32_prod, float, canon_f32(p * q))
KERNEL(f32_min, float, min_f32(p, q))
KERNEL(f32_max, float, max_f32(p, q))
KERNEL(f64_sum, double, canon_f64(p + q))
KERNEL(f64_prod, double, canon_f64(p * q))
KERNEL(f64_min, double, min_f64(p, q))
KERNEL(f64_max, double, max_f64(p, q))

#define ROW(tag) {[RL_SUM] = tag##_sum, [RL_PROD] = tag##_prod, [RL_MIN] = tag##_min, [RL_MAX] = tag##_max}
#define IROW(tag)                                                                                                  \
    {[RL_SUM] = tag##_sum, [RL_PROD] = tag##_prod, [RL_MIN] = tag##_min, [RL_MAX] = tag##_max,                     \
     [RL_BAND] = tag##_band, [RL_BOR] = tag##_bor, [RL_BXOR] = tag##_bxor}

const rl_reduce_table_t rl_reduce_generic_table = {
    [RL_INT8] = IROW(i8),    [RL_UINT8] = IROW(u8),   [RL_INT32] = IROW(i32),
    [RL_UINT32] = IROW(u32), [RL_INT64] = IROW(i64),  [RL_UINT64] = IROW(u64),
    [RL_FLOAT32] = ROW(f32), [RL_FLOAT64] = ROW(f64),
};
