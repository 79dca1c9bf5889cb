/*
 * AVX2 + F16C kernels (built with -mavx2 -mf16c; called only after
 * reduce.c checked the CPU). Every kernel computes exactly what the
 * portable kernel computes (reduce.h), a vector at a time; the last partial
 * vector runs the portable kernel.
 */
#include <immintrin.h>
#include <stdint.h>

#include "reduce/reduce.h"

typedef __m256i V;
#define W 32 /* bytes per vector */
/* Streaming loop: prefetch the inputs this far ahead (measured: one core
 * keeps more DRAM reads in flight than the hardware prefetcher alone). */
#define PF 2048

static inline V ld(const char *p) { return _mm256_loadu_si256((const __m256i *)(const void *)p); }
static inline void st(char *p, V v) { _mm256_storeu_si256((__m256i *)(void *)p, v); }
static inline void st_nt(char *p, V v) { _mm256_stream_si256((__m256i *)(void *)p, v); }

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

/* 8-bit multiply: even and odd bytes through 16-bit multiplies (the low byte
 * of a product only depends on the low bytes of the factors). */
static inline V mul8(V p, V q)
{
    V lo = _mm256_mullo_epi16(p, q);
    V hi = _mm256_mullo_epi16(_mm256_srli_epi16(p, 8), _mm256_srli_epi16(q, 8));
    return _mm256_or_si256(_mm256_and_si256(lo, _mm256_set1_epi16(0xFF)), _mm256_slli_epi16(hi, 8));
}

/* 64-bit multiply mod 2^64: lo*lo + ((hi*lo + lo*hi) << 32). */
static inline V mul64(V p, V q)
{
    V lolo = _mm256_mul_epu32(p, q);
    V cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(p, 32), q),
                               _mm256_mul_epu32(p, _mm256_srli_epi64(q, 32)));
    return _mm256_add_epi64(lolo, _mm256_slli_epi64(cross, 32));
}

static inline V min_i64(V p, V q) { return _mm256_blendv_epi8(p, q, _mm256_cmpgt_epi64(p, q)); }
static inline V max_i64(V p, V q) { return _mm256_blendv_epi8(q, p, _mm256_cmpgt_epi64(p, q)); }

static inline V gt_u64(V p, V q)
{
    V bias = _mm256_set1_epi64x(INT64_MIN);
    return _mm256_cmpgt_epi64(_mm256_xor_si256(p, bias), _mm256_xor_si256(q, bias));
}

static inline V min_u64(V p, V q) { return _mm256_blendv_epi8(p, q, gt_u64(p, q)); }
static inline V max_u64(V p, V q) { return _mm256_blendv_epi8(q, p, gt_u64(p, q)); }

VKERNEL(i8_sum, 1, RL_INT8, RL_SUM, _mm256_add_epi8)
VKERNEL(i8_prod, 1, RL_INT8, RL_PROD, mul8)
VKERNEL(i8_min, 1, RL_INT8, RL_MIN, _mm256_min_epi8)
VKERNEL(i8_max, 1, RL_INT8, RL_MAX, _mm256_max_epi8)
VKERNEL(u8_sum, 1, RL_UINT8, RL_SUM, _mm256_add_epi8)
VKERNEL(u8_prod, 1, RL_UINT8, RL_PROD, mul8)
VKERNEL(u8_min, 1, RL_UINT8, RL_MIN, _mm256_min_epu8)
VKERNEL(u8_max, 1, RL_UINT8, RL_MAX, _mm256_max_epu8)
VKERNEL(i32_sum, 4, RL_INT32, RL_SUM, _mm256_add_epi32)
VKERNEL(i32_prod, 4, RL_INT32, RL_PROD, _mm256_mullo_epi32)
VKERNEL(i32_min, 4, RL_INT32, RL_MIN, _mm256_min_epi32)
VKERNEL(i32_max, 4, RL_INT32, RL_MAX, _mm256_max_epi32)
VKERNEL(u32_sum, 4, RL_UINT32, RL_SUM, _mm256_add_epi32)
VKERNEL(u32_prod, 4, RL_UINT32, RL_PROD, _mm256_mullo_epi32)
VKERNEL(u32_min, 4, RL_UINT32, RL_MIN, _mm256_min_epu32)
VKERNEL(u32_max, 4, RL_UINT32, RL_MAX, _mm256_max_epu32)
VKERNEL(i64_sum, 8, RL_INT64, RL_SUM, _mm256_add_epi64)
VKERNEL(i64_prod, 8, RL_INT64, RL_PROD, mul64)
VKERNEL(i64_min, 8, RL_INT64, RL_MIN, min_i64)
VKERNEL(i64_max, 8, RL_INT64, RL_MAX, max_i64)
VKERNEL(u64_sum, 8, RL_UINT64, RL_SUM, _mm256_add_epi64)
VKERNEL(u64_prod, 8, RL_UINT64, RL_PROD, mul64)
VKERNEL(u64_min, 8, RL_UINT64, RL_MIN, min_u64)
VKERNEL(u64_max, 8, RL_UINT64, RL_MAX, max_u64)

/* Bitwise ops: the same instruction for every width; the width only
 * decides which portable kernel runs the tail. */
#define BITWISE(tag, es, dt)                                                   \
    VKERNEL(tag##_band, es, dt, RL_BAND, _mm256_and_si256)                     \
    VKERNEL(tag##_bor, es, dt, RL_BOR, _mm256_or_si256)                        \
    VKERNEL(tag##_bxor, es, dt, RL_BXOR, _mm256_xor_si256)
BITWISE(i8, 1, RL_INT8)
BITWISE(u8, 1, RL_UINT8)
BITWISE(i32, 4, RL_INT32)
BITWISE(u32, 4, RL_UINT32)
BITWISE(i64, 8, RL_INT64)
BITWISE(u64, 8, RL_UINT64)

/* ---- float32 / float64 -------------------------------------------------- */

/* NaN results of sum/prod become the canonical quiet NaN; min/max: a NaN
 * operand wins (p first), equal operands give p|q (min) or p&q (max), which
 * orders -0 below +0. min_ps(p, q) is p < q ? p : q, max_ps p > q ? p : q. */
static inline __m256 canon_ps(__m256 r)
{
    return _mm256_blendv_ps(r, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FC00000)), _mm256_cmp_ps(r, r, _CMP_UNORD_Q));
}

static inline __m256d canon_pd(__m256d r)
{
    return _mm256_blendv_pd(r, _mm256_castsi256_pd(_mm256_set1_epi64x(0x7FF8000000000000)),
                            _mm256_cmp_pd(r, r, _CMP_UNORD_Q));
}

static inline __m256 fl(V v) { return _mm256_castsi256_ps(v); }
static inline __m256d db(V v) { return _mm256_castsi256_pd(v); }

static inline V sum_f32(V p, V q) { return _mm256_castps_si256(canon_ps(_mm256_add_ps(fl(p), fl(q)))); }
static inline V prod_f32(V p, V q) { return _mm256_castps_si256(canon_ps(_mm256_mul_ps(fl(p), fl(q)))); }

static inline V min_f32(V p, V q)
{
    __m256 a = fl(p), b = fl(q);
    __m256 m = _mm256_min_ps(a, b);
    m = _mm256_or_ps(m, _mm256_and_ps(_mm256_cmp_ps(a, b, _CMP_EQ_OQ), a));
    return _mm256_castps_si256(_mm256_blendv_ps(m, a, _mm256_cmp_ps(a, a, _CMP_UNORD_Q)));
}

static inline V max_f32(V p, V q)
{
    __m256 a = fl(p), b = fl(q);
    __m256 m = _mm256_max_ps(a, b);
    m = _mm256_blendv_ps(m, _mm256_and_ps(m, a), _mm256_cmp_ps(a, b, _CMP_EQ_OQ));
    return _mm256_castps_si256(_mm256_blendv_ps(m, a, _mm256_cmp_ps(a, a, _CMP_UNORD_Q)));
}

static inline V sum_f64(V p, V q) { return _mm256_castpd_si256(canon_pd(_mm256_add_pd(db(p), db(q)))); }
static inline V prod_f64(V p, V q) { return _mm256_castpd_si256(canon_pd(_mm256_mul_pd(db(p), db(q)))); }

static inline V min_f64(V p, V q)
{
    __m256d a = db(p), b = db(q);
    __m256d m = _mm256_min_pd(a, b);
    m = _mm256_or_pd(m, _mm256_and_pd(_mm256_cmp_pd(a, b, _CMP_EQ_OQ), a));
    return _mm256_castpd_si256(_mm256_blendv_pd(m, a, _mm256_cmp_pd(a, a, _CMP_UNORD_Q)));
}

static inline V max_f64(V p, V q)
{
    __m256d a = db(p), b = db(q);
    __m256d m = _mm256_max_pd(a, b);
    m = _mm256_blendv_pd(m, _mm256_and_pd(m, a), _mm256_cmp_pd(a, b, _CMP_EQ_OQ));
    return _mm256_castpd_si256(_mm256_blendv_pd(m, a, _mm256_cmp_pd(a, a, _CMP_UNORD_Q)));
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

/* 16 narrow values per vector: widen each 128-bit half to 8 floats, apply
 * the float op, round back (canonical NaN -> 0x7E00 / 0x7FC0). */
static inline __m256 h_lo(V v) { return _mm256_cvtph_ps(_mm256_castsi256_si128(v)); }
static inline __m256 h_hi(V v) { return _mm256_cvtph_ps(_mm256_extracti128_si256(v, 1)); }

static inline V h_pack(__m256 lo, __m256 hi)
{
    return _mm256_set_m128i(_mm256_cvtps_ph(hi, _MM_FROUND_TO_NEAREST_INT),
                            _mm256_cvtps_ph(lo, _MM_FROUND_TO_NEAREST_INT));
}

/* bfloat16 without shuffles: the even elements of a vector widen to floats
 * by a shift, the odd ones by masking off the low half of each 32-bit lane;
 * after the op each float is rounded in place (ties to even, as the portable
 * kernel) and the two halves are interleaved back by one word blend. The
 * inputs of bf_round are never a non-canonical NaN (canon_ps ran first);
 * the canonical one rounds to 0x7FC0. */
static inline __m256 bf_even(V v) { return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)); }
static inline __m256 bf_odd(V v) { return _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32((int)0xFFFF0000u))); }

static inline V bf_round(__m256 f)
{
    V u = _mm256_castps_si256(f);
    V odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    return _mm256_add_epi32(u, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7FFF)));
}

static inline V bf_pack(__m256 even, __m256 odd)
{
    return _mm256_blend_epi16(_mm256_srli_epi32(bf_round(even), 16), bf_round(odd), 0xAA);
}

static inline V sum_f16(V p, V q)
{
    return h_pack(canon_ps(_mm256_add_ps(h_lo(p), h_lo(q))), canon_ps(_mm256_add_ps(h_hi(p), h_hi(q))));
}

static inline V prod_f16(V p, V q)
{
    return h_pack(canon_ps(_mm256_mul_ps(h_lo(p), h_lo(q))), canon_ps(_mm256_mul_ps(h_hi(p), h_hi(q))));
}

static inline V sum_bf16(V p, V q)
{
    return bf_pack(canon_ps(_mm256_add_ps(bf_even(p), bf_even(q))), canon_ps(_mm256_add_ps(bf_odd(p), bf_odd(q))));
}

static inline V prod_bf16(V p, V q)
{
    return bf_pack(canon_ps(_mm256_mul_ps(bf_even(p), bf_even(q))), canon_ps(_mm256_mul_ps(bf_odd(p), bf_odd(q))));
}

/* min/max on the bits: sign-magnitude -> two's complement key orders -0
 * below +0; |v| > inf marks a NaN, which wins (p first). */
static inline V key16(V v) { return _mm256_xor_si256(v, _mm256_srli_epi16(_mm256_srai_epi16(v, 15), 1)); }

static inline V isnan16(V v, short inf)
{
    return _mm256_cmpgt_epi16(_mm256_and_si256(v, _mm256_set1_epi16(0x7FFF)), _mm256_set1_epi16(inf));
}

static inline V minmax16(V p, V q, short inf, int is_max)
{
    V kp = key16(p), kq = key16(q);
    V take_q = is_max ? _mm256_cmpgt_epi16(kq, kp) : _mm256_cmpgt_epi16(kp, kq);
    V r = _mm256_blendv_epi8(p, q, take_q);
    r = _mm256_blendv_epi8(r, q, isnan16(q, inf));
    return _mm256_blendv_epi8(r, p, isnan16(p, inf));
}

static inline V min_f16(V p, V q) { return minmax16(p, q, 0x7C00, 0); }
static inline V max_f16(V p, V q) { return minmax16(p, q, 0x7C00, 1); }
static inline V min_bf16(V p, V q) { return minmax16(p, q, 0x7F80, 0); }
static inline V max_bf16(V p, V q) { return minmax16(p, q, 0x7F80, 1); }

/* fp8 min/max, the same on bytes: a NaN is |v| > lim (E4M3: 0x7E, its
 * largest number; E5M2: 0x7C, infinity). */
static inline V key8(V v)
{
    V neg = _mm256_cmpgt_epi8(_mm256_setzero_si256(), v);
    return _mm256_xor_si256(v, _mm256_and_si256(neg, _mm256_set1_epi8(0x7F)));
}

static inline V isnan8(V v, char lim)
{
    return _mm256_cmpgt_epi8(_mm256_and_si256(v, _mm256_set1_epi8(0x7F)), _mm256_set1_epi8(lim));
}

static inline V minmax8(V p, V q, char lim, int is_max)
{
    V kp = key8(p), kq = key8(q);
    V take_q = is_max ? _mm256_cmpgt_epi8(kq, kp) : _mm256_cmpgt_epi8(kp, kq);
    V r = _mm256_blendv_epi8(p, q, take_q);
    r = _mm256_blendv_epi8(r, q, isnan8(q, lim));
    return _mm256_blendv_epi8(r, p, isnan8(p, lim));
}

static inline V min_e4m3(V p, V q) { return minmax8(p, q, 0x7E, 0); }
static inline V max_e4m3(V p, V q) { return minmax8(p, q, 0x7E, 1); }
static inline V min_e5m2(V p, V q) { return minmax8(p, q, 0x7C, 0); }
static inline V max_e5m2(V p, V q) { return minmax8(p, q, 0x7C, 1); }

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

const rl_reduce_table_t rl_reduce_avx2_table = {
    [RL_INT8] = IROW(i8),       [RL_UINT8] = IROW(u8),       [RL_INT32] = IROW(i32),     [RL_UINT32] = IROW(u32),
    [RL_INT64] = IROW(i64),     [RL_UINT64] = IROW(u64),     [RL_FLOAT16] = ROW(f16),   [RL_BFLOAT16] = ROW(bf16),
    [RL_FLOAT32] = ROW(f32),   [RL_FLOAT64] = ROW(f64),
    /* fp8 sum/prod: the portable table look-up (reduce.c fills the gaps) */
    [RL_FP8_E4M3] = {[RL_MIN] = e4m3_min, [RL_MAX] = e4m3_max},
    [RL_FP8_E5M2] = {[RL_MIN] = e5m2_min, [RL_MAX] = e5m2_max},
};
