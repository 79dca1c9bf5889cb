/*
 * float16 and bfloat16: conversions and the portable kernels.
 *
 * The conversions work on bits (no dependence on the FP rounding mode or
 * FTZ/DAZ) and match the x86 F16C instructions bit for bit, NaNs included:
 * half -> float sets the quiet bit and keeps the payload; float -> half sets
 * the quiet bit and keeps the payload's top 9 bits. bfloat16 -> float is
 * exact (NaNs untouched), float -> bfloat16 quiets NaNs.
 */
#include <stdint.h>
#include <string.h>

#include "reduce/reduce.h"
#include "reduce/bits.h"

static inline uint32_t half_to_bits(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu;
    uint32_t man = h & 0x3FFu;
    if (exp == 0x1F)
        return sign | 0x7F800000u | (man ? 0x00400000u | (man << 13) : 0);
    if (exp == 0) {
        /* Zero or subnormal: man * 2^-24, exact in float (a normal float). */
        return sign | f32_bits((float)man * 0x1p-24f);
    }
    return sign | ((exp + 112) << 23) | (man << 13);
}

/* Round mag (a float's bits without the sign, finite, below 2^-14) to a
 * multiple of 2^-24, ties to even; the result is the half's bits. */
static inline uint16_t half_round_small(uint32_t mag)
{
    uint32_t exp = mag >> 23;
    if (exp < 102) /* below 2^-25: rounds to zero (2^-25 itself is a tie to 0) */
        return 0;
    uint32_t m = (mag & 0x7FFFFFu) | 0x800000u; /* value = m * 2^(exp-150) */
    uint32_t shift = 126 - exp;                 /* 14..24 */
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (q & 1)))
        q++;
    return (uint16_t)q; /* q == 0x400 is the smallest normal, as it should */
}

static inline uint16_t half_from_bits(uint32_t f)
{
    uint16_t sign = (uint16_t)((f >> 16) & 0x8000u);
    uint32_t mag = f & 0x7FFFFFFFu;
    if (mag > 0x7F800000u) /* NaN */
        return sign | 0x7E00u | (uint16_t)((mag & 0x7FFFFFu) >> 13);
    if (mag >= 0x477FF000u) /* >= 65520 (incl. inf): ties to even go up */
        return sign | 0x7C00u;
    if (mag >= 0x38800000u) { /* normal half: round at bit 13, rebias */
        uint32_t r = mag + 0xFFFu + ((mag >> 13) & 1u);
        return sign | (uint16_t)((r - 0x38000000u) >> 13);
    }
    return sign | half_round_small(mag);
}

static inline uint16_t bf16_from_bits(uint32_t f)
{
    if ((f & 0x7FFFFFFFu) > 0x7F800000u)
        return (uint16_t)((f >> 16) | 0x40u);
    return (uint16_t)((f + 0x7FFFu + ((f >> 16) & 1u)) >> 16);
}

float rl_half_to_float(uint16_t h) { return f32_from(half_to_bits(h)); }
uint16_t rl_float_to_half(float f) { return half_from_bits(f32_bits(f)); }
float rl_bf16_to_float(uint16_t b) { return f32_from((uint32_t)b << 16); }
uint16_t rl_float_to_bf16(float f) { return bf16_from_bits(f32_bits(f)); }

/* ---- kernels ------------------------------------------------------------ */

#define CANON_NAN_F32 0x7FC00000u /* what sum/prod give for any NaN result */

static inline uint32_t canon_f32(float r)
{
    return r != r ? CANON_NAN_F32 : f32_bits(r);
}

static inline float h_get(uint16_t h) { return f32_from(half_to_bits(h)); }
static inline float bf_get(uint16_t b) { return f32_from((uint32_t)b << 16); }

/* Order key: sign-magnitude bits -> two's complement, so -0 < +0. */
static inline int16_t key16(uint16_t v)
{
    return (int16_t)(v & 0x8000u ? v ^ 0x7FFFu : v);
}

/* min/max on the bits, NaNs (exp all ones, man != 0) pass through. */
static inline uint16_t min16(uint16_t a, uint16_t b, uint16_t inf)
{
    if ((a & 0x7FFFu) > inf)
        return a;
    if ((b & 0x7FFFu) > inf)
        return b;
    return key16(a) <= key16(b) ? a : b;
}

static inline uint16_t max16(uint16_t a, uint16_t b, uint16_t inf)
{
    if ((a & 0x7FFFu) > inf)
        return a;
    if ((b & 0x7FFFu) > inf)
        return b;
    return key16(a) >= key16(b) ? a : b;
}

#define HALF_KERNEL(name, expr)                                                \
    static void name(void *dst, const void *a, const void *b, size_t n)        \
    {                                                                          \
        uint16_t *d = dst;                                                     \
        const uint16_t *x = a, *y = b;                                         \
        for (size_t i = 0; i < n; i++) {                                       \
            uint16_t p = x[i], q = y[i];                                       \
            d[i] = (expr);                                                     \
        }                                                                      \
    }

HALF_KERNEL(f16_sum, half_from_bits(canon_f32(h_get(p) + h_get(q))))
HALF_KERNEL(f16_prod, half_from_bits(canon_f32(h_get(p) * h_get(q))))
HALF_KERNEL(f16_min, min16(p, q, 0x7C00u))
HALF_KERNEL(f16_max, max16(p, q, 0x7C00u))
HALF_KERNEL(bf16_sum, bf16_from_bits(canon_f32(bf_get(p) + bf_get(q))))
HALF_KERNEL(bf16_prod, bf16_from_bits(canon_f32(bf_get(p) * bf_get(q))))
HALF_KERNEL(bf16_min, min16(p, q, 0x7F80u))
HALF_KERNEL(bf16_max, max16(p, q, 0x7F80u))

const rl_reduce_table_t rl_reduce_half_table = {
    [RL_FLOAT16] = {[RL_SUM] = f16_sum, [RL_PROD] = f16_prod, [RL_MIN] = f16_min, [RL_MAX] = f16_max},
    [RL_BFLOAT16] = {[RL_SUM] = bf16_sum, [RL_PROD] = bf16_prod, [RL_MIN] = bf16_min, [RL_MAX] = bf16_max},
};

void rl_reduce_half_scale(void *buf, size_t n, rl_dtype_t dtype, int divisor)
{
    uint16_t *p = buf;
    float div = (float)divisor;
    if (dtype == RL_FLOAT16) {
        for (size_t i = 0; i < n; i++)
            p[i] = half_from_bits(f32_bits(h_get(p[i]) / div));
    } else {
        for (size_t i = 0; i < n; i++)
            p[i] = bf16_from_bits(f32_bits(bf_get(p[i]) / div));
    }
}
