/*
 * float16 / bfloat16 conversions against references computed another way:
 * decoding by the textbook formula with ldexp(), encoding by rounding in
 * double arithmetic (nearbyint() on the value scaled to the target's ulp).
 */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "reduce/reduce.h"

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static float ffrom(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* Value of a binary format with `mbits` fraction bits and exponent bias
 * `bias`, `ebits` exponent bits; NaN for NaNs. */
static double decode(uint32_t v, int ebits, int mbits, int bias)
{
    uint32_t man = v & ((1u << mbits) - 1);
    uint32_t exp = (v >> mbits) & ((1u << ebits) - 1);
    int neg = (v >> (mbits + ebits)) & 1;
    double x;
    if (exp == (1u << ebits) - 1)
        x = man ? NAN : INFINITY;
    else if (exp == 0)
        x = ldexp((double)man, 1 - bias - mbits);
    else
        x = ldexp(1.0 + ldexp((double)man, -mbits), (int)exp - bias);
    return neg ? -x : x;
}

/* |x| rounded to a format with `mbits` fraction bits, minimum normal
 * exponent emin, ties to even; INFINITY when it rounds above `maxval`. */
static double round_to(double x, int mbits, int emin, double maxval)
{
    double ax = fabs(x);
    if (ax == 0)
        return 0;
    int e;
    frexp(ax, &e); /* ax in [2^(e-1), 2^e) */
    int qe = (e - 1 > emin ? e - 1 : emin) - mbits;
    double r = nearbyint(ldexp(ax, -qe)) * ldexp(1.0, qe);
    return r > maxval ? INFINITY : r;
}

#define HALF_MAX 65504.0
#define BF16_MAX 0x1.FEp127

static void check_half_encode(float f)
{
    uint16_t h = rl_float_to_half(f);
    if (isnan(f)) {
        cr_assert((h & 0x7C00) == 0x7C00 && (h & 0x3FF) && (h & 0x200), "NaN %08x -> %04x", fbits(f), h);
        return;
    }
    double want = round_to((double)f, 10, -14, HALF_MAX);
    double got = fabs(decode(h, 5, 10, 15));
    cr_assert(got == want && (h >> 15) == (fbits(f) >> 31), "float %a (%08x) -> half %04x (%a), want %a", f,
              fbits(f), h, got, want);
}

static void check_bf16_encode(float f)
{
    uint16_t b = rl_float_to_bf16(f);
    if (isnan(f)) {
        cr_assert((b & 0x7F80) == 0x7F80 && (b & 0x7F) && (b & 0x40), "NaN %08x -> %04x", fbits(f), b);
        return;
    }
    double want = round_to((double)f, 7, -126, BF16_MAX);
    double got = fabs(decode(b, 8, 7, 127));
    cr_assert(got == want && (b >> 15) == (fbits(f) >> 31), "float %a (%08x) -> bf16 %04x (%a), want %a", f,
              fbits(f), b, got, want);
}

Test(half, decode_all_65536)
{
    for (uint32_t h = 0; h <= 0xFFFF; h++) {
        float f = rl_half_to_float((uint16_t)h);
        double want = decode(h, 5, 10, 15);
        if (isnan(want)) {
            /* NaN stays a NaN: sign and payload kept, made quiet. */
            cr_assert(isnan(f) && fbits(f) == (((h & 0x8000u) << 16) | 0x7FC00000u | ((h & 0x3FFu) << 13)),
                      "half %04x -> %08x", h, fbits(f));
        } else {
            cr_assert((double)f == want && !signbit(f) == !signbit(want), "half %04x -> %a want %a", h, f, want);
        }
    }
}

Test(half, round_trip_all_65536)
{
    for (uint32_t h = 0; h <= 0xFFFF; h++) {
        uint16_t back = rl_float_to_half(rl_half_to_float((uint16_t)h));
        int nan = (h & 0x7C00) == 0x7C00 && (h & 0x3FF);
        uint16_t want = nan ? (uint16_t)(h | 0x200) : (uint16_t)h;
        cr_assert_eq(back, want, "half %04x -> %04x, want %04x", h, back, want);
    }
}

Test(half, bf16_decode_and_round_trip_all_65536)
{
    for (uint32_t b = 0; b <= 0xFFFF; b++) {
        float f = rl_bf16_to_float((uint16_t)b);
        double want = decode(b, 8, 7, 127);
        int nan = isnan(want);
        if (nan)
            cr_assert(isnan(f) && fbits(f) == b << 16, "bf16 %04x -> %08x", b, fbits(f));
        else
            cr_assert((double)f == want && !signbit(f) == !signbit(want), "bf16 %04x -> %a want %a", b, f, want);
        uint16_t back = rl_float_to_bf16(f);
        cr_assert_eq(back, nan ? (uint16_t)(b | 0x40) : (uint16_t)b, "bf16 %04x -> %04x", b, back);
    }
}

/* Named rounding cases, with the expected bits written out. */
Test(half, encode_cases)
{
    static const struct {
        float f;
        uint16_t h;
    } cases[] = {
        {0.0f, 0x0000},
        {-0.0f, 0x8000},
        {1.0f, 0x3C00},
        {-2.0f, 0xC000},
        {0x1.002p0f, 0x3C00},             /* 1 + 2^-11: tie, to even (down) */
        {0x1.006p0f, 0x3C02},             /* 1 + 3*2^-11: tie, to even (up) */
        {0x1.002002p0f, 0x3C01},          /* just above the tie */
        {0x1.001FFEp0f, 0x3C00},          /* just below the tie */
        {65504.0f, 0x7BFF},               /* largest finite */
        {65519.996f, 0x7BFF},             /* below the overflow tie */
        {65520.0f, 0x7C00},               /* tie between 65504 and 2^16: to inf */
        {-65520.0f, 0xFC00},
        {65536.0f, 0x7C00},
        {FLT_MAX, 0x7C00},
        {INFINITY, 0x7C00},
        {-INFINITY, 0xFC00},
        {0x1p-14f, 0x0400},               /* smallest normal */
        {0x1.ffcp-15f, 0x0400},           /* 2^-14 - 2^-25: tie 0x3ff/0x400 -> even */
        {0x1.ff8p-15f, 0x03FF},           /* largest subnormal */
        {0x1p-24f, 0x0001},               /* smallest subnormal */
        {0x1p-25f, 0x0000},               /* tie 0/1 -> 0 */
        {0x1.000002p-25f, 0x0001},        /* just above */
        {0x1.8p-24f, 0x0002},             /* 1.5 * 2^-24: tie 1/2 -> 2 */
        {0x1.4p-23f, 0x0002},             /* 2.5 * 2^-24: tie 2/3 -> 2 */
        {-0x1p-26f, 0x8000},              /* underflow keeps the sign */
        {0x1p-149f, 0x0000},              /* float subnormal */
        {0.1f, 0x2E66},
        {3.14159265f, 0x4248},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint16_t h = rl_float_to_half(cases[i].f);
        cr_assert_eq(h, cases[i].h, "%a -> %04x, want %04x", cases[i].f, h, cases[i].h);
        check_half_encode(cases[i].f);
    }
}

Test(half, bf16_encode_cases)
{
    static const struct {
        float f;
        uint16_t b;
    } cases[] = {
        {0.0f, 0x0000},      {-0.0f, 0x8000},         {1.0f, 0x3F80},
        {0x1.01p0f, 0x3F80}, /* 1 + 2^-8: tie, to even (down) */
        {0x1.03p0f, 0x3F82}, /* 1 + 3*2^-8: tie, to even (up) */
        {0x1.010002p0f, 0x3F81},
        {0x1.FEp127f, 0x7F7F}, /* largest finite bfloat16 */
        {0x1.FF0000p127f, 0x7F80}, /* tie with 2^128: to even = inf */
        {0x1.FEFFFEp127f, 0x7F7F},
        {FLT_MAX, 0x7F80},   {INFINITY, 0x7F80},      {-INFINITY, 0xFF80},
        {0x1p-126f, 0x0080}, /* smallest normal */
        {0x1p-133f, 0x0001}, /* smallest subnormal */
        {0x1p-134f, 0x0000}, /* tie 0/1 -> 0 */
        {0x1.8p-133f, 0x0002}, /* tie 1/2 -> 2 */
        {0x1p-149f, 0x0000},
        {-0x1p-149f, 0x8000},
        {3.14159265f, 0x4049},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint16_t b = rl_float_to_bf16(cases[i].f);
        cr_assert_eq(b, cases[i].b, "%a -> %04x, want %04x", cases[i].f, b, cases[i].b);
        check_bf16_encode(cases[i].f);
    }
}

Test(half, encode_nan)
{
    static const uint32_t nans[] = {0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FA00000, 0xFF802000, 0x7FFFFFFF};
    for (size_t i = 0; i < sizeof(nans) / sizeof(nans[0]); i++) {
        float f = ffrom(nans[i]);
        uint16_t h = rl_float_to_half(f), b = rl_float_to_bf16(f);
        /* Quiet NaN, sign kept, top payload bits kept. */
        cr_assert_eq(h, (uint16_t)(((nans[i] >> 16) & 0x8000) | 0x7E00 | ((nans[i] & 0x7FFFFF) >> 13)), "%08x", nans[i]);
        cr_assert_eq(b, (uint16_t)((nans[i] >> 16) | 0x40), "%08x", nans[i]);
    }
}

/* Every float whose low 13 bits sit at or next to a half rounding boundary,
 * for every exponent and sign, plus a stride through all 2^32 patterns. */
Test(half, encode_sweep, .timeout = 120)
{
    static const uint32_t lows[] = {0x0000, 0x0001, 0x0FFF, 0x1000, 0x1001, 0x1FFF};
    for (uint32_t top = 0; top < (1u << 19); top++) {
        for (size_t j = 0; j < sizeof(lows) / sizeof(lows[0]); j++) {
            float f = ffrom((top << 13) | lows[j]);
            check_half_encode(f);
        }
    }
    for (uint64_t u = 0; u < (1ull << 32); u += 4099)
        check_half_encode(ffrom((uint32_t)u));
}

/* In the half subnormal range the rounding point moves down the mantissa:
 * every float from 2^-26 to 2^-14 (both signs), with a stride of 7. */
Test(half, encode_subnormal_range, .timeout = 120)
{
    for (uint32_t u = 0x32800000u; u < 0x38800000u; u += 7) {
        check_half_encode(ffrom(u));
        check_half_encode(ffrom(u | 0x80000000u));
    }
}

Test(half, bf16_encode_sweep, .timeout = 120)
{
    static const uint32_t lows[] = {0x0000, 0x0001, 0x7FFF, 0x8000, 0x8001, 0xFFFF};
    for (uint32_t top = 0; top < (1u << 16); top++) {
        for (size_t j = 0; j < sizeof(lows) / sizeof(lows[0]); j++)
            check_bf16_encode(ffrom((top << 16) | lows[j]));
    }
    for (uint64_t u = 0; u < (1ull << 32); u += 4099)
        check_bf16_encode(ffrom((uint32_t)u));
}
