/*
 * AVX-512 (F, BW, VL, DQ) kernels, called only after reduce.c checked the
 * CPU. Every kernel computes exactly what the portable kernel computes
 * (reduce.h), 64 bytes at a time; the last partial vector runs the portable
 * kernel.
 */
#include <immintrin.h>
#include <stdint.h>

#include "reduce/reduce.h"

typedef __m512i V;
#define W 64 /* bytes per vector */
/* Streaming loop: prefetch the inputs this far ahead (measured: one core
 * keeps more DRAM reads in flight than the hardware prefetcher alone). */
#define PF 2048

static inline V ld(const char *p) { return _mm512_loadu_si512((const void *)p); }
static inline void st(char *p, V v) { _mm512_storeu_si512((void *)p, v); }
static inline void st_nt(char *p, V v) { _mm512_stream_si512((void *)p, v); }

/* One kernel: `vop(p, q)` on whole vectors, the rest by the portable kernel.
 * Large calls align dst to a cache line (portable kernel for the head) and
 * stream the stores (see rl_reduce_stream_bytes). */
#define VKERNEL(name, esize, dt, op, vop)                                      \
    static void name(void *dst, const void *a, const void *b, size_t n)        \
    {                                                                          \
        char *d = dst;                                                         \
        const char *x = a, *y = b;                                             \
        const size_t per = W / (esize);                                        \
        size_t i = 0;                                                          \
        if (n * (esize) >= rl_reduce_stream_bytes && (uintptr_t)d % (esize) == 0) { \
            i = (64 - (uintptr_t)d % 64) % 64 / (esize);                       \
            i = i < n ? i : n;                                                 \
            if (i)                                                             \
                rl_reduce_generic(dt, op)(d, x, y, i);                         \
            for (; i + per <= n; i += per) {                                   \
                size_t off = i * (esize);                                      \
                _mm_prefetch(x + off + PF, _MM_HINT_T0);                      \
                _mm_prefetch(y + off + PF, _MM_HINT_T0);                      \
                st_nt(d + off, vop(ld(x + off), ld(y + off)));                 \
            }                                                                  \
            _mm_sfence();                                                      \
        } else {                                                               \
            for (; i + per <= n; i += per) {                                   \
                size_t off = i * (esize);                                      \
                st(d + off, vop(ld(x + off), ld(y + off)));                    \
            }                                                                  \
        }                                                                      \
        if (i < n)                                                             \
            rl_reduce_generic(dt, op)(d + i * (esize), x + i * (esize),        \
                                      y + i * (esize), n - i);                 \
    }

/* ---- integers ----------------------------------------------------------- */

/* 8-bit multiply through 16-bit multiplies of the even and odd bytes. */
static inline V mul8(V p, V q)
{
    V lo = _mm512_mullo_epi16(p, q);
    V hi = _mm512_mullo_epi16(_mm512_srli_epi16(p, 8), _mm512_srli_epi16(q, 8));
    return _mm512_or_si512(_mm512_and_si512(lo, _mm512_set1_epi16(0xFF)), _mm512_slli_epi16(hi, 8));
}

VKERNEL(i8_sum, 1, RL_INT8, RL_SUM, _mm512_add_epi8)
VKERNEL(i8_prod, 1, RL_INT8, RL_PROD, mul8)
VKERNEL(i8_min, 1, RL_INT8, RL_MIN, _mm512_min_epi8)
VKERNEL(i8_max, 1, RL_INT8, RL_MAX, _mm512_max_epi8)
VKERNEL(u8_sum, 1, RL_UINT8, RL_SUM, _mm512_add_epi8)
VKERNEL(u8_prod, 1, RL_UINT8, RL_PROD, mul8)
VKERNEL(u8_min, 1, RL_UINT8, RL_MIN, _mm512_min_epu8)
VKERNEL(u8_max, 1, RL_UINT8, RL_MAX, _mm512_max_epu8)
VKERNEL(i32_sum, 4, RL_INT32, RL_SUM, _mm512_add_epi32)
VKERNEL(i32_prod, 4, RL_INT32, RL_PROD, _mm512_mullo_epi32)
VKERNEL(i32_min, 4, RL_INT32, RL_MIN, _mm512_min_epi32)
VKERNEL(i32_max, 4, RL_INT32, RL_MAX, _mm512_max_epi32)
VKERNEL(u32_sum, 4, RL_UINT32, RL_SUM, _mm512_add_epi32)
VKERNEL(u32_prod, 4, RL_UINT32, RL_PROD, _mm512_mullo_epi32)
VKERNEL(u32_min, 4, RL_UINT32, RL_MIN, _mm512_min_epu32)
VKERNEL(u32_max, 4, RL_UINT32, RL_MAX, _mm512_max_epu32)
VKERNEL(i64_sum, 8, RL_INT64, RL_SUM, _mm512_add_epi64)
VKERNEL(i64_prod, 8, RL_INT64, RL_PROD, _mm512_mullo_epi64)
VKERNEL(i64_min, 8, RL_INT64, RL_MIN, _mm512_min_epi64)
VKERNEL(i64_max, 8, RL_INT64, RL_MAX, _mm512_max_epi64)
VKERNEL(u64_sum, 8, RL_UINT64, RL_SUM, _mm512_add_epi64)
VKERNEL(u64_prod, 8, RL_UINT64, RL_PROD, _mm512_mullo_epi64)
VKERNEL(u64_min, 8, RL_UINT64, RL_MIN, _mm512_min_epu64)
VKERNEL(u64_max, 8, RL_UINT64, RL_MAX, _mm512_max_epu64)

/* Bitwise ops: the same instruction for every width; the width only
 * decides which portable kernel runs the tail. */
#define BITWISE(tag, es, dt)                                                   \
    VKERNEL(tag##_band, es, dt, RL_BAND, _mm512_and_si512)                     \
    VKERNEL(tag##_bor, es, dt, RL_BOR, _mm512_or_si512)                        \
    VKERNEL(tag##_bxor, es, dt, RL_BXOR, _mm512_xor_si512)
BITWISE(i8, 1, RL_INT8)
BITWISE(u8, 1, RL_UINT8)
BITWISE(i32, 4, RL_INT32)
BITWISE(u32, 4, RL_UINT32)
BITWISE(i64, 8, RL_INT64)
BITWISE(u64, 8, RL_UINT64)

/* ---- float32 / float64 -------------------------------------------------- */

/* As in the AVX2 file: canonical NaN for sum/prod; min/max let a NaN win
 * (p first) and give p|q / p&q for equal operands (-0 < +0). */
static inline __m512 canon_ps(__m512 r)
{
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(r, r, _CMP_UNORD_Q), r,
                                _mm512_castsi512_ps(_mm512_set1_epi32(0x7FC00000)));
}

static inline __m512d canon_pd(__m512d r)
{
    return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(r, r, _CMP_UNORD_Q), r,
                                _mm512_castsi512_pd(_mm512_set1_epi64(0x7FF8000000000000)));
}

static inline __m512 fl(V v) { return _mm512_castsi512_ps(v); }
static inline __m512d db(V v) { return _mm512_castsi512_pd(v); }

static inline V sum_f32(V p, V q) { return _mm512_castps_si512(canon_ps(_mm512_add_ps(fl(p), fl(q)))); }
static inline V prod_f32(V p, V q) { return _mm512_castps_si512(canon_ps(_mm512_mul_ps(fl(p), fl(q)))); }
static inline V sum_f64(V p, V q) { return _mm512_castpd_si512(canon_pd(_mm512_add_pd(db(p), db(q)))); }
static inline V prod_f64(V p, V q) { return _mm512_castpd_si512(canon_pd(_mm512_mul_pd(db(p), db(q)))); }

static inline V min_f32(V p, V q)
{
    V m = _mm512_castps_si512(_mm512_min_ps(fl(p), fl(q)));
    m = _mm512_mask_or_epi32(m, _mm512_cmp_ps_mask(fl(p), fl(q), _CMP_EQ_OQ), m, p);
    return _mm512_mask_blend_epi32(_mm512_cmp_ps_mask(fl(p), fl(p), _CMP_UNORD_Q), m, p);
}

static inline V max_f32(V p, V q)
{
    V m = _mm512_castps_si512(_mm512_max_ps(fl(p), fl(q)));
    m = _mm512_mask_and_epi32(m, _mm512_cmp_ps_mask(fl(p), fl(q), _CMP_EQ_OQ), m, p);
    return _mm512_mask_blend_epi32(_mm512_cmp_ps_mask(fl(p), fl(p), _CMP_UNORD_Q), m, p);
}

static inline V min_f64(V p, V q)
{
    V m = _mm512_castpd_si512(_mm512_min_pd(db(p), db(q)));
    m = _mm512_mask_or_epi64(m, _mm512_cmp_pd_mask(db(p), db(q), _CMP_EQ_OQ), m, p);
    return _mm512_mask_blend_epi64(_mm512_cmp_pd_mask(db(p), db(p), _CMP_UNORD_Q), m, p);
}

static inline V max_f64(V p, V q)
{
    V m = _mm512_castpd_si512(_mm512_max_pd(db(p), db(q)));
    m = _mm512_mask_and_epi64(m, _mm512_cmp_pd_mask(db(p), db(q), _CMP_EQ_OQ), m, p);
    return _mm512_mask_blend_epi64(_mm512_cmp_pd_mask(db(p), db(p), _CMP_UNORD_Q), m, p);
}

VKERNEL(f32_sum, 4, RL_FLOAT32, RL_SUM, sum_f32)
VKERNEL(f32_prod, 4, RL_FLOAT32, RL_PROD, prod_f32)
VKERNEL(f32_min, 4, RL_FLOAT32, RL_MIN, min_f32)
VKERNEL(f32_max, 4, RL_FLOAT32, RL_MAX, max_f32)
VKERNEL(f64_sum, 8, RL_FLOAT64, RL_SUM, sum_f64)
VKERNEL(f64_prod, 8, RL_FLOAT64, RL_PROD, prod_f64)
VKERNEL(f64_min, 8, RL_FLOAT64, RL_MIN, min_f64)
VKERNEL(f64_max, 8, RL_FLOAT64, RL_MAX, max_f64)

/* ---- float16 / bfloat16 ------------------------------------------------- */

/* 32 narrow values per vector: two halves of 16 floats each. */
static inline __m256i lo256(V v) { return _mm512_castsi512_si256(v); }
static inline __m256i hi256(V v) { return _mm512_extracti64x4_epi64(v, 1); }

static inline __m512 h_lo(V v) { return _mm512_cvtph_ps(lo256(v)); }
static inline __m512 h_hi(V v) { return _mm512_cvtph_ps(hi256(v)); }

static inline V join(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }

static inline V h_pack(__m512 lo, __m512 hi)
{
    return join(_mm512_cvtps_ph(lo, _MM_FROUND_TO_NEAREST_INT), _mm512_cvtps_ph(hi, _MM_FROUND_TO_NEAREST_INT));
}

/* fp8 E5M2 sum/prod: an E5M2 code is the top byte of an IEEE half, so
 * bytes widen to halves by a shift, the op runs in float, F16C rounds to
 * half (ties to even, overflow to infinity) and the half's low byte is
 * rounded away, ties to even. Rounding twice equals rounding once here:
 * 24 >= 2*11 + 2 and 11 >= 2*3 + 2 for sums and products of E5M2 numbers
 * (and E5M2's subnormal range is half's normal one, with 8 more bits).
 * A NaN result is the canonical 0x7E, as the portable kernel gives. */
static inline V e5_widen(__m256i b) { return _mm512_slli_epi16(_mm512_cvtepu8_epi16(b), 8); }

static inline __m256i e5_narrow(V h)
{
    V lsb = _mm512_and_si512(_mm512_srli_epi16(h, 8), _mm512_set1_epi16(1));
    V r = _mm512_srli_epi16(_mm512_add_epi16(_mm512_add_epi16(h, _mm512_set1_epi16(0x7F)), lsb), 8);
    __mmask32 nan = _mm512_cmpgt_epu16_mask(_mm512_and_si512(h, _mm512_set1_epi16(0x7FFF)), _mm512_set1_epi16(0x7C00));
    return _mm512_cvtepi16_epi8(_mm512_mask_mov_epi16(r, nan, _mm512_set1_epi16(0x7E)));
}

static inline __m256i e5_half_op(__m256i p, __m256i q, int mul)
{
    V hp = e5_widen(p), hq = e5_widen(q);
    __m512 lo = mul ? _mm512_mul_ps(h_lo(hp), h_lo(hq)) : _mm512_add_ps(h_lo(hp), h_lo(hq));
    __m512 hi = mul ? _mm512_mul_ps(h_hi(hp), h_hi(hq)) : _mm512_add_ps(h_hi(hp), h_hi(hq));
    return e5_narrow(h_pack(lo, hi));
}

static inline V sum_e5m2(V p, V q) { return join(e5_half_op(lo256(p), lo256(q), 0), e5_half_op(hi256(p), hi256(q), 0)); }
static inline V prod_e5m2(V p, V q) { return join(e5_half_op(lo256(p), lo256(q), 1), e5_half_op(hi256(p), hi256(q), 1)); }

/* fp8 E4M3 sum/prod, 16 codes at a time through float: decoded exactly
 * (normal codes by moving bits, subnormal ones m * 2^-9 by a conversion,
 * 0x7F/0xFF to NaN), the op in float (exact for sums, rounded once for
 * products: float holds 8 significant bits and the exponent range), then
 * rounded to E4M3 as the portable code does: NaN to 0x7F, >= 448 saturates,
 * normal results by adding half an ulp (ties to even) on the bits,
 * subnormal ones by converting |x| * 2^9 to an integer, ties to even. */
static inline __m512 e4_decode(__m128i b)
{
    V v = _mm512_cvtepu8_epi32(b);
    V e = _mm512_and_si512(_mm512_srli_epi32(v, 3), _mm512_set1_epi32(15));
    V m = _mm512_and_si512(v, _mm512_set1_epi32(7));
    V sign = _mm512_slli_epi32(_mm512_and_si512(v, _mm512_set1_epi32(0x80)), 24);
    V normal = _mm512_or_si512(_mm512_slli_epi32(_mm512_add_epi32(e, _mm512_set1_epi32(120)), 23),
                               _mm512_slli_epi32(m, 20));
    __m512 sub = _mm512_mul_ps(_mm512_cvtepi32_ps(m), _mm512_set1_ps(0x1p-9f));
    __mmask16 is_sub = _mm512_cmpeq_epi32_mask(e, _mm512_setzero_si512());
    __mmask16 is_nan = _mm512_cmpeq_epi32_mask(_mm512_and_si512(v, _mm512_set1_epi32(0x7F)), _mm512_set1_epi32(0x7F));
    V mag = _mm512_mask_mov_epi32(normal, is_sub, _mm512_castps_si512(sub));
    mag = _mm512_mask_mov_epi32(mag, is_nan, _mm512_set1_epi32(0x7FC00000));
    return _mm512_castsi512_ps(_mm512_or_si512(mag, sign));
}

static inline __m128i e4_encode(__m512 f)
{
    V u = _mm512_castps_si512(f);
    V mag = _mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF));
    V sign = _mm512_and_si512(_mm512_srli_epi32(u, 24), _mm512_set1_epi32(0x80));
    V lsb = _mm512_and_si512(_mm512_srli_epi32(mag, 20), _mm512_set1_epi32(1));
    V r = _mm512_add_epi32(_mm512_add_epi32(mag, _mm512_set1_epi32(0x7FFFF)), lsb);
    V normal = _mm512_sub_epi32(_mm512_srli_epi32(r, 20), _mm512_set1_epi32(120 << 3));
    __m512 a = _mm512_castsi512_ps(mag);
    V sub = _mm512_cvt_roundps_epi32(_mm512_mul_ps(a, _mm512_set1_ps(512.0f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __mmask16 is_sub = _mm512_cmplt_epi32_mask(mag, _mm512_set1_epi32(0x3C800000)); /* below 2^-6 */
    V code = _mm512_mask_mov_epi32(normal, is_sub, sub);
    code = _mm512_mask_mov_epi32(code, _mm512_cmpge_epi32_mask(mag, _mm512_set1_epi32(0x43E00000)), _mm512_set1_epi32(0x7E));
    code = _mm512_or_si512(code, sign);
    __mmask16 is_nan = _mm512_cmpgt_epi32_mask(mag, _mm512_set1_epi32(0x7F800000));
    code = _mm512_mask_mov_epi32(code, is_nan, _mm512_set1_epi32(0x7F));
    return _mm512_cvtepi32_epi8(code);
}

static inline V e4_op(V p, V q, int mul)
{
    __m128i out[4];
    for (int k = 0; k < 4; k++) {
        __m128i pk = _mm512_extracti32x4_epi32(p, 0), qk = _mm512_extracti32x4_epi32(q, 0);
        switch (k) { /* the lane index must be a constant */
        case 1: pk = _mm512_extracti32x4_epi32(p, 1), qk = _mm512_extracti32x4_epi32(q, 1); break;
        case 2: pk = _mm512_extracti32x4_epi32(p, 2), qk = _mm512_extracti32x4_epi32(q, 2); break;
        case 3: pk = _mm512_extracti32x4_epi32(p, 3), qk = _mm512_extracti32x4_epi32(q, 3); break;
        default: break;
        }
        __m512 a = e4_decode(pk), b = e4_decode(qk);
        out[k] = e4_encode(mul ? _mm512_mul_ps(a, b) : _mm512_add_ps(a, b));
    }
    V r = _mm512_castsi128_si512(out[0]);
    r = _mm512_inserti32x4(r, out[1], 1);
    r = _mm512_inserti32x4(r, out[2], 2);
    return _mm512_inserti32x4(r, out[3], 3);
}

static inline V sum_e4m3(V p, V q) { return e4_op(p, q, 0); }
static inline V prod_e4m3(V p, V q) { return e4_op(p, q, 1); }

/* bfloat16 without shuffles (see the AVX2 file): even elements widen by a
 * shift, odd ones by a mask, rounded in place, re-interleaved by a blend. */
static inline __m512 bf_even(V v) { return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)); }
static inline __m512 bf_odd(V v) { return _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int)0xFFFF0000u))); }

static inline V bf_round(__m512 f)
{
    V u = _mm512_castps_si512(f);
    V odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    return _mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF)));
}

static inline V bf_pack(__m512 even, __m512 odd)
{
    return _mm512_mask_blend_epi16(0xAAAAAAAAu, _mm512_srli_epi32(bf_round(even), 16), bf_round(odd));
}

static inline V sum_f16(V p, V q)
{
    return h_pack(canon_ps(_mm512_add_ps(h_lo(p), h_lo(q))), canon_ps(_mm512_add_ps(h_hi(p), h_hi(q))));
}

static inline V prod_f16(V p, V q)
{
    return h_pack(canon_ps(_mm512_mul_ps(h_lo(p), h_lo(q))), canon_ps(_mm512_mul_ps(h_hi(p), h_hi(q))));
}

static inline V sum_bf16(V p, V q)
{
    return bf_pack(canon_ps(_mm512_add_ps(bf_even(p), bf_even(q))), canon_ps(_mm512_add_ps(bf_odd(p), bf_odd(q))));
}

static inline V prod_bf16(V p, V q)
{
    return bf_pack(canon_ps(_mm512_mul_ps(bf_even(p), bf_even(q))), canon_ps(_mm512_mul_ps(bf_odd(p), bf_odd(q))));
}

/* min/max on the bits (see the AVX2 file): key orders -0 below +0, a NaN
 * (|v| > inf) wins, p first. */
static inline V key16(V v) { return _mm512_xor_si512(v, _mm512_srli_epi16(_mm512_srai_epi16(v, 15), 1)); }

static inline __mmask32 isnan16(V v, short inf)
{
    return _mm512_cmpgt_epi16_mask(_mm512_and_si512(v, _mm512_set1_epi16(0x7FFF)), _mm512_set1_epi16(inf));
}

static inline V minmax16(V p, V q, short inf, int is_max)
{
    V kp = key16(p), kq = key16(q);
    __mmask32 take_q = is_max ? _mm512_cmpgt_epi16_mask(kq, kp) : _mm512_cmpgt_epi16_mask(kp, kq);
    V r = _mm512_mask_blend_epi16(take_q, p, q);
    r = _mm512_mask_blend_epi16(isnan16(q, inf), r, q);
    return _mm512_mask_blend_epi16(isnan16(p, inf), r, p);
}

/* fp8 min/max on bytes: a NaN is |v| > lim (E4M3 0x7E, E5M2 0x7C). */
static inline V key8(V v)
{
    __mmask64 neg = _mm512_cmpgt_epi8_mask(_mm512_setzero_si512(), v);
    return _mm512_xor_si512(v, _mm512_maskz_mov_epi8(neg, _mm512_set1_epi8(0x7F)));
}

static inline __mmask64 isnan8(V v, char lim)
{
    return _mm512_cmpgt_epi8_mask(_mm512_and_si512(v, _mm512_set1_epi8(0x7F)), _mm512_set1_epi8(lim));
}

static inline V minmax8(V p, V q, char lim, int is_max)
{
    V kp = key8(p), kq = key8(q);
    __mmask64 take_q = is_max ? _mm512_cmpgt_epi8_mask(kq, kp) : _mm512_cmpgt_epi8_mask(kp, kq);
    V r = _mm512_mask_blend_epi8(take_q, p, q);
    r = _mm512_mask_blend_epi8(isnan8(q, lim), r, q);
    return _mm512_mask_blend_epi8(isnan8(p, lim), r, p);
}

static inline V min_e4m3(V p, V q) { return minmax8(p, q, 0x7E, 0); }
static inline V max_e4m3(V p, V q) { return minmax8(p, q, 0x7E, 1); }
static inline V min_e5m2(V p, V q) { return minmax8(p, q, 0x7C, 0); }
static inline V max_e5m2(V p, V q) { return minmax8(p, q, 0x7C, 1); }

static inline V min_f16(V p, V q) { return minmax16(p, q, 0x7C00, 0); }
static inline V max_f16(V p, V q) { return minmax16(p, q, 0x7C00, 1); }
static inline V min_bf16(V p, V q) { return minmax16(p, q, 0x7F80, 0); }
static inline V max_bf16(V p, V q) { return minmax16(p, q, 0x7F80, 1); }

VKERNEL(e4m3_sum, 1, RL_FP8_E4M3, RL_SUM, sum_e4m3)
VKERNEL(e4m3_prod, 1, RL_FP8_E4M3, RL_PROD, prod_e4m3)
VKERNEL(e5m2_sum, 1, RL_FP8_E5M2, RL_SUM, sum_e5m2)
VKERNEL(e5m2_prod, 1, RL_FP8_E5M2, RL_PROD, prod_e5m2)
VKERNEL(e4m3_min, 1, RL_FP8_E4M3, RL_MIN, min_e4m3)
VKERNEL(e4m3_max, 1, RL_FP8_E4M3, RL_MAX, max_e4m3)
VKERNEL(e5m2_min, 1, RL_FP8_E5M2, RL_MIN, min_e5m2)
VKERNEL(e5m2_max, 1, RL_FP8_E5M2, RL_MAX, max_e5m2)
VKERNEL(f16_sum, 2, RL_FLOAT16, RL_SUM, sum_f16)
VKERNEL(f16_prod, 2, RL_FLOAT16, RL_PROD, prod_f16)
VKERNEL(f16_min, 2, RL_FLOAT16, RL_MIN, min_f16)
VKERNEL(f16_max, 2, RL_FLOAT16, RL_MAX, max_f16)
VKERNEL(bf16_sum, 2, RL_BFLOAT16, RL_SUM, sum_bf16)
VKERNEL(bf16_prod, 2, RL_BFLOAT16, RL_PROD, prod_bf16)
VKERNEL(bf16_min, 2, RL_BFLOAT16, RL_MIN, min_bf16)
VKERNEL(bf16_max, 2, RL_BFLOAT16, RL_MAX, max_bf16)

#define ROW(tag) {[RL_SUM] = tag##_sum, [RL_PROD] = tag##_prod, [RL_MIN] = tag##_min, [RL_MAX] = tag##_max}
#define IROW(tag)                                                                                                  \
    {[RL_SUM] = tag##_sum, [RL_PROD] = tag##_prod, [RL_MIN] = tag##_min, [RL_MAX] = tag##_max,                     \
     [RL_BAND] = tag##_band, [RL_BOR] = tag##_bor, [RL_BXOR] = tag##_bxor}

const rl_reduce_table_t rl_reduce_avx512_table = {
    [RL_INT8] = IROW(i8),       [RL_UINT8] = IROW(u8),       [RL_INT32] = IROW(i32),     [RL_UINT32] = IROW(u32),
    [RL_INT64] = IROW(i64),     [RL_UINT64] = IROW(u64),     [RL_FLOAT16] = ROW(f16),   [RL_BFLOAT16] = ROW(bf16),
    [RL_FLOAT32] = ROW(f32),   [RL_FLOAT64] = ROW(f64),
    [RL_FP8_E4M3] = {[RL_SUM] = e4m3_sum, [RL_PROD] = e4m3_prod, [RL_MIN] = e4m3_min, [RL_MAX] = e4m3_max},
    [RL_FP8_E5M2] = {[RL_SUM] = e5m2_sum, [RL_PROD] = e5m2_prod, [RL_MIN] = e5m2_min, [RL_MAX] = e5m2_max},
};
