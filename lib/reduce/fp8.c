/*
 * OCP 8-bit floating point (OFP8, "OCP 8-bit Floating Point Specification"
 * rev 1.0): conversions and the portable kernels.
 *
 * E4M3: sign, 4 exponent bits (bias 7), 3 mantissa bits. No infinities;
 *   S.1111.111 is NaN, so the largest number is S.1111.110 = +-448.
 *   Subnormals m * 2^-9.
 * E5M2: sign, 5 exponent bits (bias 15), 2 mantissa bits, IEEE-like:
 *   S.11111.00 is infinity, S.11111.{01,10,11} NaN, largest 57344.
 *   Subnormals m * 2^-16.
 *
 * float -> fp8 rounds to nearest, ties to even, on the bits (independent of
 * the FP environment). Overflow, as the spec allows either per format:
 * - E4M3 saturates: anything beyond 448, infinities included, becomes +-448.
 *   This is the usual choice in ML (Transformer Engine, PyTorch's
 *   float8_e4m3fn casts in training recipes): E4M3 holds activations and
 *   weights with little headroom, and a sum that overflows by a hair should
 *   stay a large number, not turn into NaN, the only other code it has.
 * - E5M2 does not saturate: values from 61440 up (the midpoint between
 *   57344 and 2^16, a tie that goes to the even "2^16") round to infinity,
 *   as IEEE arithmetic does; E5M2 holds gradients, where an infinity must
 *   stay visible.
 * NaN in gives NaN out: sum/prod return the canonical positive NaN (E4M3
 * 0x7F, E5M2 0x7E); min/max return the NaN operand's bits (a's first), as
 * for the other floating types (reduce.h).
 *
 * Reductions decode both operands to float exactly, compute in float and
 * round once to fp8. float has 24 bits, more than 2p+2 for p = 3 or 4, so
 * the double rounding (exact -> float -> fp8) equals one correct rounding.
 */
#include <stdint.h>
#include <string.h>
#include <threads.h>

#include "reduce/bits.h"
#include "reduce/reduce.h"

/* ---- conversions -------------------------------------------------------- */

/* A fp8 code's value: sign, exponent field, mantissa field of mbits bits,
 * bias; the caller handled NaN and infinity. */
static inline float fp8_finite(uint8_t v, int mbits, int bias)
{
    unsigned e = (v & 0x7Fu) >> mbits, m = v & ((1u << mbits) - 1);
    uint32_t mag;
    if (e == 0) /* m * 2^(1 - bias - mbits): exact, and a normal float */
        mag = f32_bits((float)m * f32_from((uint32_t)(127 + 1 - bias - mbits) << 23));
    else
        mag = (e + 127u - (unsigned)bias) << 23 | m << (23 - mbits);
    return f32_from((uint32_t)(v & 0x80u) << 24 | mag);
}

float rl_fp8_e4m3_to_float(uint8_t v)
{
    if ((v & 0x7Fu) == 0x7Fu)
        return f32_from((uint32_t)(v & 0x80u) << 24 | 0x7FC00000u);
    return fp8_finite(v, 3, 7);
}

float rl_fp8_e5m2_to_float(uint8_t v)
{
    if ((v & 0x7Cu) == 0x7Cu) /* exponent all ones */
        return f32_from((uint32_t)(v & 0x80u) << 24 | ((v & 3u) ? 0x7FC00000u : 0x7F800000u));
    return fp8_finite(v, 2, 15);
}

/* Round mag (a finite float's bits without the sign) to a code with mbits
 * mantissa bits and the given bias, ties to even; mag must be below the
 * format's overflow threshold (the caller checked). */
static inline uint8_t fp8_round(uint32_t mag, int mbits, int bias)
{
    uint32_t exp = mag >> 23;
    uint32_t min_normal_exp = (uint32_t)(127 + 1 - bias);
    if (exp >= min_normal_exp) {
        /* keep mbits of the mantissa; a carry into the exponent is right */
        unsigned drop = 23u - (unsigned)mbits;
        uint32_t r = mag + ((1u << (drop - 1)) - 1) + ((mag >> drop) & 1u);
        return (uint8_t)((r >> drop) - ((127u - (unsigned)bias) << mbits));
    }
    /* subnormal: q units of 2^(1 - bias - mbits); value = m * 2^(exp - 150) */
    unsigned shift = (unsigned)(150 - (int)exp + 1 - bias - mbits);
    if (exp == 0 || shift > 25)
        return 0; /* below half the smallest subnormal (a tie there goes to 0) */
    uint32_t m = (mag & 0x7FFFFFu) | 0x800000u;
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u)))
        q++;
    return (uint8_t)q; /* q == 1 << mbits is the smallest normal, as it should */
}

uint8_t rl_float_to_fp8_e4m3(float f)
{
    uint32_t u = f32_bits(f), mag = u & 0x7FFFFFFFu;
    uint8_t sign = (uint8_t)(u >> 24 & 0x80u);
    if (mag > 0x7F800000u)
        return sign | 0x7Fu;
    if (mag >= 0x43E00000u) /* >= 448, infinity included: saturate */
        return sign | 0x7Eu;
    return sign | fp8_round(mag, 3, 7);
}

uint8_t rl_float_to_fp8_e5m2(float f)
{
    uint32_t u = f32_bits(f), mag = u & 0x7FFFFFFFu;
    uint8_t sign = (uint8_t)(u >> 24 & 0x80u);
    if (mag > 0x7F800000u)
        return sign | 0x7Eu;
    if (mag >= 0x47700000u) /* >= 61440: rounds to infinity */
        return sign | 0x7Cu;
    return sign | fp8_round(mag, 2, 15);
}

/* ---- kernels ------------------------------------------------------------ */

/* Sum and product are table look-ups: 256 x 256 results per format and
 * op (256 KiB in all, built once from the functions above before any
 * kernel is handed out), about ten times faster than decoding, adding and
 * rounding each element, and identical to it by construction. */
static float lut[2][256];
static uint8_t pair[2][2][65536]; /* [E5M2?][prod?][a << 8 | b] */
static once_flag lut_once = ONCE_FLAG_INIT;

static uint8_t op_scalar(int e5, int prod, uint8_t p, uint8_t q)
{
    float r = prod ? lut[e5][p] * lut[e5][q] : lut[e5][p] + lut[e5][q];
    if (r != r)
        return e5 ? 0x7Eu : 0x7Fu; /* canonical NaN */
    return e5 ? rl_float_to_fp8_e5m2(r) : rl_float_to_fp8_e4m3(r);
}

static void lut_build(void)
{
    for (int v = 0; v < 256; v++) {
        lut[0][v] = rl_fp8_e4m3_to_float((uint8_t)v);
        lut[1][v] = rl_fp8_e5m2_to_float((uint8_t)v);
    }
    for (int e5 = 0; e5 < 2; e5++)
        for (int prod = 0; prod < 2; prod++)
            for (unsigned i = 0; i < 65536; i++)
                pair[e5][prod][i] = op_scalar(e5, prod, (uint8_t)(i >> 8), (uint8_t)i);
}

void rl_reduce_fp8_init(void) { call_once(&lut_once, lut_build); }

/* min/max without branches (operand signs are random in real data, and a
 * mispredicted branch per element costs more than all of this): order keys
 * map sign-magnitude to two's complement, so -0 < +0; a NaN operand wins,
 * a's first. Plain selects, which the compiler turns into vector code. */
static inline uint8_t nan43(uint8_t v) { return (v & 0x7Fu) == 0x7Fu; }
static inline uint8_t nan52(uint8_t v) { return (v & 0x7Fu) > 0x7Cu; }
static inline int8_t key8(uint8_t v) { return (int8_t)(v ^ ((uint8_t)((int8_t)v >> 7) & 0x7Fu)); }

#define MINMAX(name, isnan_, cmp)                                              \
    static inline uint8_t name(uint8_t a, uint8_t b)                           \
    {                                                                          \
        uint8_t r = key8(a) cmp key8(b) ? a : b;                               \
        r = isnan_(b) ? b : r;                                                 \
        return isnan_(a) ? a : r;                                              \
    }
MINMAX(min43, nan43, <=)
MINMAX(max43, nan43, >=)
MINMAX(min52, nan52, <=)
MINMAX(max52, nan52, >=)

static inline uint8_t sum43(uint8_t p, uint8_t q) { return pair[0][0][p << 8 | q]; }
static inline uint8_t prod43(uint8_t p, uint8_t q) { return pair[0][1][p << 8 | q]; }
static inline uint8_t sum52(uint8_t p, uint8_t q) { return pair[1][0][p << 8 | q]; }
static inline uint8_t prod52(uint8_t p, uint8_t q) { return pair[1][1][p << 8 | q]; }

#define FP8_KERNEL(name, fn)                                                   \
    static void name(void *dst, const void *a, const void *b, size_t n)        \
    {                                                                          \
        uint8_t *d = dst;                                                      \
        const uint8_t *x = a, *y = b;                                          \
        for (size_t i = 0; i < n; i++)                                         \
            d[i] = fn(x[i], y[i]);                                             \
    }

FP8_KERNEL(e4m3_sum, sum43)
FP8_KERNEL(e4m3_prod, prod43)
FP8_KERNEL(e4m3_min, min43)
FP8_KERNEL(e4m3_max, max43)
FP8_KERNEL(e5m2_sum, sum52)
FP8_KERNEL(e5m2_prod, prod52)
FP8_KERNEL(e5m2_min, min52)
FP8_KERNEL(e5m2_max, max52)

const rl_reduce_table_t rl_reduce_fp8_table = {
    [RL_FP8_E4M3] = {[RL_SUM] = e4m3_sum, [RL_PROD] = e4m3_prod, [RL_MIN] = e4m3_min, [RL_MAX] = e4m3_max},
    [RL_FP8_E5M2] = {[RL_SUM] = e5m2_sum, [RL_PROD] = e5m2_prod, [RL_MIN] = e5m2_min, [RL_MAX] = e5m2_max},
};

void rl_reduce_fp8_scale(void *buf, size_t n, rl_dtype_t dtype, int divisor)
{
    uint8_t *p = buf;
    float div = (float)divisor;
    rl_reduce_fp8_init();
    for (size_t i = 0; i < n; i++) {
        if (dtype == RL_FP8_E4M3)
            p[i] = rl_float_to_fp8_e4m3(lut[0][p[i]] / div);
        else
            p[i] = rl_float_to_fp8_e5m2(lut[1][p[i]] / div);
    }
}
