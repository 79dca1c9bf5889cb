/*
 * Reduction kernels: every dtype x op, on every ISA this CPU has, against a
 * reference written here (wide integer arithmetic; floats decoded to double
 * by formula, combined in double, rounded back with nearbyint), plus bitwise
 * agreement between ISAs, split invariance, NaN/zero semantics, avg scaling,
 * dispatch and the dtype/op names.
 *
 * The reference stores integers by copying the low bytes of a uint64_t, so
 * it assumes a little-endian host (as do the kernels' users).
 */
#include <cpuid.h>
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#include "reduce/reduce.h"

__extension__ typedef unsigned __int128 u128;

/* ---- test data ---------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* fn: "finite" as OCP E4M3: no infinities, the all-ones exponent holds
 * numbers except all-ones mantissa (NaN), overflow saturates. */
typedef struct {
    int ebits, mbits, bias, fn;
} ffmt_t;

static const ffmt_t fmts[RL_DTYPE_COUNT] = {
    [RL_FLOAT16] = {5, 10, 15, 0},
    [RL_BFLOAT16] = {8, 7, 127, 0},
    [RL_FLOAT32] = {8, 23, 127, 0},
    [RL_FLOAT64] = {11, 52, 1023, 0},
    [RL_FP8_E4M3] = {4, 3, 7, 1},
    [RL_FP8_E5M2] = {5, 2, 15, 0},
};

static int is_float(rl_dtype_t dt) { return fmts[dt].ebits != 0; }
static int is_signed(rl_dtype_t dt) { return dt == RL_INT8 || dt == RL_INT32 || dt == RL_INT64; }

static uint64_t get_bits(const void *p, size_t i, size_t es)
{
    uint64_t v = 0;
    memcpy(&v, (const char *)p + i * es, es);
    return v;
}

static void put_bits(void *p, size_t i, size_t es, uint64_t v) { memcpy((char *)p + i * es, &v, es); }

static uint64_t emax_of(const ffmt_t *f) { return (1ull << f->ebits) - 1; }

static uint64_t make_float(const ffmt_t *f, uint64_t sign, uint64_t exp, uint64_t man)
{
    return sign << (f->ebits + f->mbits) | exp << f->mbits | (man & ((1ull << f->mbits) - 1));
}

/* Random value of a float format: mostly numbers of similar size (so sums
 * round and cancel), some random bit patterns, subnormals and specials. */
static uint64_t rand_float(const ffmt_t *f)
{
    uint64_t r = rnd(), s = r & 1, sel = (r >> 1) % 16, m = rnd();
    uint64_t emax = emax_of(f);
    switch (sel) {
    case 0: case 1: case 2: case 3: case 4: case 5: case 6: case 7:
        return make_float(f, s, (uint64_t)f->bias - 6 + (r >> 8) % 12, m);
    case 8: case 9:
        return rnd() >> (63 - f->ebits - f->mbits); /* random bits of the width */
    case 10:
        return make_float(f, s, 0, m); /* subnormal (or zero) */
    case 11:
        return make_float(f, s, emax - 1 - (r >> 8) % 2, m); /* huge */
    case 12:
        return make_float(f, s, 0, 0);       /* +-0 */
    case 13:
        return make_float(f, s, emax, 0);    /* +-inf */
    case 14:
        return make_float(f, s, emax, m | 1); /* NaN, quiet or signaling */
    default:
        return make_float(f, s, 1, (r >> 8) % 4); /* near the smallest normal */
    }
}

static void fill(rl_dtype_t dt, void *buf, size_t n)
{
    size_t es = rl_dtype_size(dt);
    for (size_t i = 0; i < n; i++)
        put_bits(buf, i, es, is_float(dt) ? rand_float(&fmts[dt]) : rnd());
}

/* b: fresh values, with some elements equal to a's or its negation, to hit
 * equal operands (min/max of +-0) and exact cancellation. */
static void fill_b(rl_dtype_t dt, void *b, const void *a, size_t n)
{
    size_t es = rl_dtype_size(dt);
    fill(dt, b, n);
    if (!is_float(dt))
        return;
    uint64_t signbit = 1ull << (es * 8 - 1);
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rnd() % 8;
        if (r == 0)
            put_bits(b, i, es, get_bits(a, i, es));
        else if (r == 1)
            put_bits(b, i, es, get_bits(a, i, es) ^ signbit);
    }
}

/* ---- reference ---------------------------------------------------------- */

static double decode(const ffmt_t *f, uint64_t v)
{
    uint64_t man = v & ((1ull << f->mbits) - 1);
    uint64_t exp = (v >> f->mbits) & emax_of(f);
    double x;
    if (f->fn && exp == emax_of(f) && man == (1ull << f->mbits) - 1)
        x = NAN;
    else if (f->fn && exp == emax_of(f))
        x = ldexp(1.0 + ldexp((double)man, -f->mbits), (int)exp - f->bias);
    else if (exp == emax_of(f))
        x = man ? NAN : INFINITY;
    else if (exp == 0)
        x = ldexp((double)man, 1 - f->bias - f->mbits);
    else
        x = ldexp(1.0 + ldexp((double)man, -f->mbits), (int)exp - f->bias);
    return (v >> (f->ebits + f->mbits)) & 1 ? -x : x;
}

/* Round x (not NaN) to the format, ties to even, and return its bits. */
static uint64_t encode(const ffmt_t *f, double x)
{
    uint64_t sign = signbit(x) ? 1 : 0;
    int emin = 1 - f->bias, emax = (int)emax_of(f) - 1 - f->bias;
    double ax = fabs(x);
    if (f->fn) { /* saturate: the largest is all ones but the mantissa's last bit */
        double maxfn = ldexp(2.0 - ldexp(2.0, -f->mbits), emax + 1);
        if (ax >= maxfn || isinf(ax))
            return make_float(f, sign, emax_of(f), (1ull << f->mbits) - 2);
        emax++;
    }
    if (isinf(ax))
        return make_float(f, sign, emax_of(f), 0);
    if (ax == 0)
        return make_float(f, sign, 0, 0);
    int e;
    frexp(ax, &e);
    int qe = (e - 1 > emin ? e - 1 : emin) - f->mbits;
    double r = nearbyint(ldexp(ax, -qe)) * ldexp(1.0, qe);
    double maxval = ldexp(2.0 - ldexp(1.0, -f->mbits), emax);
    if (r > maxval)
        return make_float(f, sign, emax_of(f), 0);
    if (r == 0)
        return make_float(f, sign, 0, 0);
    frexp(r, &e);
    if (e - 1 < emin)
        return make_float(f, sign, 0, (uint64_t)ldexp(r, f->bias - 1 + f->mbits));
    return make_float(f, sign, (uint64_t)(e - 1 + f->bias), (uint64_t)((ldexp(r, -(e - 1)) - 1.0) * ldexp(1.0, f->mbits)));
}

static uint64_t canonical_nan(const ffmt_t *f)
{
    if (f->fn)
        return make_float(f, 0, emax_of(f), (1ull << f->mbits) - 1);
    return make_float(f, 0, emax_of(f), 1ull << (f->mbits - 1));
}

static uint64_t ref_float(rl_dtype_t dt, rl_op_t op, uint64_t a, uint64_t b)
{
    const ffmt_t *f = &fmts[dt];
    double x = decode(f, a), y = decode(f, b);
    if (op == RL_MIN || op == RL_MAX) {
        if (isnan(x))
            return a;
        if (isnan(y))
            return b;
        if (x == y && x == 0) /* -0 below +0 */
            return (signbit(x) != 0) == (op == RL_MIN) ? a : b;
        if (x == y)
            return a;
        return (x < y) == (op == RL_MIN) ? a : b;
    }
    /* float64: double arithmetic is the definition. Narrower types: the
     * double result is exact or rounded to 53 bits, then rounded again to at
     * most 24 bits; 53 >= 2*24 + 2, so that equals one correct rounding. */
    double r = op == RL_SUM ? x + y : x * y;
    if (isnan(r))
        return canonical_nan(f);
    return encode(f, r);
}

static uint64_t ref_int(rl_dtype_t dt, rl_op_t op, uint64_t a, uint64_t b)
{
    size_t bits = rl_dtype_size(dt) * 8;
    uint64_t mask = bits == 64 ? ~0ull : (1ull << bits) - 1;
    /* Sign-extend to 64 bits for the signed types. */
    int64_t sa = (int64_t)(a << (64 - bits)) >> (64 - bits);
    int64_t sb = (int64_t)(b << (64 - bits)) >> (64 - bits);
    switch (op) {
    case RL_SUM:
        return (a + b) & mask;
    case RL_PROD:
        return (uint64_t)((u128)a * (u128)b) & mask;
    case RL_MIN:
        return is_signed(dt) ? (sa < sb ? a : b) : (a < b ? a : b);
    case RL_BAND:
        return a & b;
    case RL_BOR:
        return a | b;
    case RL_BXOR:
        return a ^ b;
    default:
        return is_signed(dt) ? (sa > sb ? a : b) : (a > b ? a : b);
    }
}

static void reference(rl_dtype_t dt, rl_op_t op, void *d, const void *a, const void *b, size_t n)
{
    size_t es = rl_dtype_size(dt);
    for (size_t i = 0; i < n; i++) {
        uint64_t x = get_bits(a, i, es), y = get_bits(b, i, es);
        put_bits(d, i, es, is_float(dt) ? ref_float(dt, op, x, y) : ref_int(dt, op, x, y));
    }
}

/* ---- helpers ------------------------------------------------------------ */

static const rl_op_t ops[] = {RL_SUM, RL_PROD, RL_MIN, RL_MAX, RL_BAND, RL_BOR, RL_BXOR};
#define NOPS 7

/* Which ops a dtype has, as documented in ringlet.h (not asked of the
 * library): bitwise ones for integers only; avg (not in ops[]) for floats. */
static int op_ok(int dt, rl_op_t op)
{
    return !(op == RL_BAND || op == RL_BOR || op == RL_BXOR) || !is_float((rl_dtype_t)dt);
}

/* ISAs of this CPU, lowest first. */
static int isa_list(const char **names)
{
    int n = 0;
    for (int i = 0; i <= (int)rl_reduce_isa_max(); i++)
        names[n++] = rl_reduce_isa_name((rl_isa_t)i);
    return n;
}

static void use_isa(const char *name)
{
    cr_assert_eq(rl_reduce_force_isa(name), 0, "cannot force %s", name);
    cr_assert_str_eq(rl_reduce_isa(), name);
}

static void expect_same(rl_dtype_t dt, rl_op_t op, const char *what, const void *got, const void *want, size_t n)
{
    size_t es = rl_dtype_size(dt);
    for (size_t i = 0; i < n; i++) {
        uint64_t g = get_bits(got, i, es), w = get_bits(want, i, es);
        cr_assert_eq(g, w, "%s %s %s n=%zu: element %zu is %#llx, want %#llx", what, rl_dtype_name(dt),
                     rl_op_name(op), n, i, (unsigned long long)g, (unsigned long long)w);
    }
}

enum { ALIAS_NONE, ALIAS_A, ALIAS_B };

/* One kernel call checked against the reference, with guards around dst.
 * off = 1 shifts every pointer by one element (misaligned vectors). */
static void run_case(rl_dtype_t dt, rl_op_t op, size_t n, size_t off, int alias, const char *isa)
{
    size_t es = rl_dtype_size(dt), guard = 16;
    size_t len = (n + off + 2 * guard) * es;
    char *ba = malloc(len), *bb = malloc(len), *bd = malloc(len);
    void *a0 = malloc(n * es + 1), *b0 = malloc(n * es + 1), *want = malloc(n * es + 1);
    cr_assert(ba && bb && bd && a0 && b0 && want);
    memset(ba, 0xA5, len);
    memset(bb, 0xA5, len);
    memset(bd, 0xA5, len);
    char *a = ba + (guard + off) * es, *b = bb + (guard + off) * es, *d = bd + (guard + off) * es;
    fill(dt, a, n);
    fill_b(dt, b, a, n);
    memcpy(a0, a, n * es);
    memcpy(b0, b, n * es);
    reference(dt, op, want, a0, b0, n);

    char *dst = alias == ALIAS_A ? a : alias == ALIAS_B ? b : d;
    char *base = alias == ALIAS_A ? ba : alias == ALIAS_B ? bb : bd;
    rl_reduce_fn fn = rl_reduce_lookup(dt, op);
    cr_assert(fn);
    fn(dst, a, b, n);

    char what[64];
    snprintf(what, sizeof(what), "%s off=%zu alias=%d", isa, off, alias);
    expect_same(dt, op, what, dst, want, n);
    for (size_t i = 0; i < (guard + off) * es; i++)
        cr_assert_eq((unsigned char)base[i], 0xA5, "%s: write before dst", what);
    for (size_t i = (guard + off + n) * es; i < len; i++)
        cr_assert_eq((unsigned char)base[i], 0xA5, "%s: write after dst", what);
    if (alias != ALIAS_A)
        expect_same(dt, op, "input a changed", a, a0, n);
    if (alias != ALIAS_B)
        expect_same(dt, op, "input b changed", b, b0, n);
    free(ba), free(bb), free(bd), free(a0), free(b0), free(want);
}

static void all_cases(rl_dtype_t dt)
{
    static const size_t sizes[] = {0, 1, 7, 31, 33, 1000, 4097};
    const char *isas[RL_ISA_COUNT];
    int nisa = isa_list(isas);
    for (int k = 0; k < nisa; k++) {
        use_isa(isas[k]);
        for (size_t o = 0; o < NOPS; o++)
            for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]) && op_ok(dt, ops[o]); s++)
                for (size_t off = 0; off < 2; off++)
                    for (int alias = ALIAS_NONE; alias <= ALIAS_B; alias++)
                        run_case(dt, ops[o], sizes[s], off, alias, isas[k]);
    }
}

/* ---- kernels against the reference -------------------------------------- */

Test(reduce, int8) { all_cases(RL_INT8); }
Test(reduce, uint8) { all_cases(RL_UINT8); }
Test(reduce, int32) { all_cases(RL_INT32); }
Test(reduce, uint32) { all_cases(RL_UINT32); }
Test(reduce, int64) { all_cases(RL_INT64); }
Test(reduce, uint64) { all_cases(RL_UINT64); }
Test(reduce, float16) { all_cases(RL_FLOAT16); }
Test(reduce, bfloat16) { all_cases(RL_BFLOAT16); }
Test(reduce, float32) { all_cases(RL_FLOAT32); }
Test(reduce, float64) { all_cases(RL_FLOAT64); }

/* The streaming-store path (dst aligned by a portable head, then
 * non-temporal stores), forced on for every size. */
Test(reduce, streaming_stores, .timeout = 120)
{
    static const size_t sizes[] = {1, 7, 33, 100, 1000, 4097};
    const char *isas[RL_ISA_COUNT];
    int nisa = isa_list(isas);
    rl_reduce_set_stream_bytes(1);
    cr_assert_eq(rl_reduce_stream_bytes, 1);
    for (int k = 0; k < nisa; k++) {
        use_isa(isas[k]);
        for (int dt = 0; dt < RL_DTYPE_COUNT; dt++)
            for (size_t o = 0; o < NOPS; o++)
                for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]) && op_ok(dt, ops[o]); s++)
                    for (size_t off = 0; off < 2; off++)
                        for (int alias = ALIAS_NONE; alias <= ALIAS_B; alias++)
                            run_case((rl_dtype_t)dt, ops[o], sizes[s], off, alias, isas[k]);
    }
}

/* ---- bitwise agreement between ISAs ------------------------------------- */

/* Large random inputs through every ISA: all outputs identical to generic. */
Test(reduce, isa_agreement, .timeout = 120)
{
    const char *isas[RL_ISA_COUNT];
    int nisa = isa_list(isas);
    size_t n = 100003;
    for (int dt = 0; dt < RL_DTYPE_COUNT; dt++) {
        size_t es = rl_dtype_size((rl_dtype_t)dt);
        void *a = malloc(n * es), *b = malloc(n * es), *d0 = malloc(n * es), *d = malloc(n * es);
        cr_assert(a && b && d0 && d);
        fill((rl_dtype_t)dt, a, n);
        fill_b((rl_dtype_t)dt, b, a, n);
        for (size_t o = 0; o < NOPS; o++) {
            if (!op_ok(dt, ops[o]))
                continue;
            use_isa("generic");
            rl_reduce_lookup((rl_dtype_t)dt, ops[o])(d0, a, b, n);
            for (int k = 1; k < nisa; k++) {
                use_isa(isas[k]);
                rl_reduce_lookup((rl_dtype_t)dt, ops[o])(d, a, b, n);
                cr_assert(memcmp(d, d0, n * es) == 0, "%s differs from generic: %s %s", isas[k],
                          rl_dtype_name((rl_dtype_t)dt), rl_op_name(ops[o]));
            }
        }
        free(a), free(b), free(d0), free(d);
    }
}

/* Every 16-bit pattern against several rotations of every pattern, every
 * op, every ISA, against the reference. */
static void all_patterns(rl_dtype_t dt)
{
    static const size_t rot[] = {1, 3, 1000, 12345, 32768, 65535};
    const char *isas[RL_ISA_COUNT];
    int nisa = isa_list(isas);
    size_t n = 65536;
    uint16_t *a = malloc(n * 2), *b = malloc(n * 2), *d = malloc(n * 2), *want = malloc(n * 2);
    cr_assert(a && b && d && want);
    for (size_t i = 0; i < n; i++)
        a[i] = (uint16_t)i;
    for (size_t r = 0; r < sizeof(rot) / sizeof(rot[0]); r++) {
        for (size_t i = 0; i < n; i++)
            b[i] = (uint16_t)((i + rot[r]) * 40503u); /* a permutation */
        for (size_t o = 0; o < NOPS; o++) {
            if (!op_ok(dt, ops[o]))
                continue;
            reference(dt, ops[o], want, a, b, n);
            for (int k = 0; k < nisa; k++) {
                use_isa(isas[k]);
                rl_reduce_lookup(dt, ops[o])(d, a, b, n);
                expect_same(dt, ops[o], isas[k], d, want, n);
            }
        }
    }
    free(a), free(b), free(d), free(want);
}

Test(reduce, float16_all_patterns, .timeout = 120) { all_patterns(RL_FLOAT16); }
Test(reduce, bfloat16_all_patterns, .timeout = 120) { all_patterns(RL_BFLOAT16); }

/* [0,n) in one call equals [0,k) then [k,n), on every ISA. */
Test(reduce, split_invariance)
{
    static const size_t cuts[] = {1, 5, 13, 64, 500, 999};
    const char *isas[RL_ISA_COUNT];
    int nisa = isa_list(isas);
    size_t n = 1000;
    for (int dt = 0; dt < RL_DTYPE_COUNT; dt++) {
        size_t es = rl_dtype_size((rl_dtype_t)dt);
        char *a = malloc(n * es), *b = malloc(n * es), *d0 = malloc(n * es), *d = malloc(n * es);
        cr_assert(a && b && d0 && d);
        fill((rl_dtype_t)dt, a, n);
        fill_b((rl_dtype_t)dt, b, a, n);
        for (int k = 0; k < nisa; k++) {
            use_isa(isas[k]);
            for (size_t o = 0; o < NOPS; o++) {
                if (!op_ok(dt, ops[o]))
                    continue;
                rl_reduce_fn fn = rl_reduce_lookup((rl_dtype_t)dt, ops[o]);
                fn(d0, a, b, n);
                for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
                    size_t cut = cuts[c];
                    fn(d, a, b, cut);
                    fn(d + cut * es, a + cut * es, b + cut * es, n - cut);
                    cr_assert(memcmp(d, d0, n * es) == 0, "%s %s %s split at %zu", isas[k],
                              rl_dtype_name((rl_dtype_t)dt), rl_op_name(ops[o]), cut);
                }
            }
        }
        free(a), free(b), free(d0), free(d);
    }
}

/* ---- documented semantics, spelled out ---------------------------------- */

/* Runs (a op b) for one pair as element 37 of 64 (inside the vector path on
 * every ISA) and as a 1-element call (the scalar path); both must give want. */
static void check_pair(rl_dtype_t dt, rl_op_t op, uint64_t x, uint64_t y, uint64_t want)
{
    size_t es = rl_dtype_size(dt), n = 64;
    char a[64 * 8], b[64 * 8], d[64 * 8];
    for (size_t i = 0; i < n; i++) {
        put_bits(a, i, es, x);
        put_bits(b, i, es, y);
    }
    rl_reduce_fn fn = rl_reduce_lookup(dt, op);
    fn(d, a, b, n);
    uint64_t got = get_bits(d, 37, es);
    cr_assert_eq(got, want, "%s %s %s(%#llx, %#llx) = %#llx, want %#llx", rl_reduce_isa(), rl_dtype_name(dt),
                 rl_op_name(op), (unsigned long long)x, (unsigned long long)y, (unsigned long long)got,
                 (unsigned long long)want);
    fn(d, a, b, 1);
    cr_assert_eq(get_bits(d, 0, es), want, "scalar path, %s %s", rl_dtype_name(dt), rl_op_name(op));
}

Test(reduce, nan_and_signed_zero)
{
    static const rl_dtype_t fdt[] = {RL_FLOAT16, RL_BFLOAT16, RL_FLOAT32, RL_FLOAT64};
    const char *isas[RL_ISA_COUNT];
    int nisa = isa_list(isas);
    for (int k = 0; k < nisa; k++) {
        use_isa(isas[k]);
        for (size_t t = 0; t < 4; t++) {
            rl_dtype_t dt = fdt[t];
            const ffmt_t *f = &fmts[dt];
            uint64_t em = emax_of(f), qbit = 1ull << (f->mbits - 1);
            uint64_t pz = 0, nz = make_float(f, 1, 0, 0), one = make_float(f, 0, (uint64_t)f->bias, 0);
            uint64_t inf = make_float(f, 0, em, 0), ninf = make_float(f, 1, em, 0);
            uint64_t qnan = make_float(f, 1, em, qbit | 5), snan = make_float(f, 0, em, 3);
            uint64_t canon = make_float(f, 0, em, qbit);
            /* min/max: a NaN wins (its bits unchanged, even signaling), a's first. */
            check_pair(dt, RL_MIN, qnan, one, qnan);
            check_pair(dt, RL_MIN, one, qnan, qnan);
            check_pair(dt, RL_MAX, snan, one, snan);
            check_pair(dt, RL_MAX, one, snan, snan);
            check_pair(dt, RL_MIN, snan, qnan, snan);
            check_pair(dt, RL_MAX, qnan, snan, qnan);
            check_pair(dt, RL_MIN, ninf, qnan, qnan);
            /* -0 < +0, whatever the order. */
            check_pair(dt, RL_MIN, pz, nz, nz);
            check_pair(dt, RL_MIN, nz, pz, nz);
            check_pair(dt, RL_MAX, pz, nz, pz);
            check_pair(dt, RL_MAX, nz, pz, pz);
            check_pair(dt, RL_MIN, inf, one, one);
            check_pair(dt, RL_MAX, ninf, one, one);
            /* sum/prod: any NaN result is the canonical quiet NaN. */
            check_pair(dt, RL_SUM, inf, ninf, canon);
            check_pair(dt, RL_SUM, qnan, one, canon);
            check_pair(dt, RL_SUM, one, snan, canon);
            check_pair(dt, RL_SUM, snan, qnan, canon);
            check_pair(dt, RL_PROD, inf, pz, canon);
            check_pair(dt, RL_PROD, qnan, snan, canon);
            check_pair(dt, RL_SUM, inf, one, inf);
            check_pair(dt, RL_SUM, nz, nz, nz);
            check_pair(dt, RL_SUM, nz, pz, pz);
            check_pair(dt, RL_PROD, nz, one, nz);
        }
    }
}

Test(reduce, half_rounding_in_kernels)
{
    const char *isas[RL_ISA_COUNT];
    int nisa = isa_list(isas);
    for (int k = 0; k < nisa; k++) {
        use_isa(isas[k]);
        check_pair(RL_FLOAT16, RL_SUM, 0x7BFF, 0x4800, 0x7BFF);  /* 65504 + 8: below the tie */
        check_pair(RL_FLOAT16, RL_SUM, 0x7BFF, 0x4C00, 0x7C00);  /* 65504 + 16: tie, to even = inf */
        check_pair(RL_FLOAT16, RL_SUM, 0x3C00, 0x1000, 0x3C00);  /* 1 + 2^-11: tie to even */
        check_pair(RL_FLOAT16, RL_SUM, 0x3C01, 0x1000, 0x3C02);  /* tie up to even */
        check_pair(RL_FLOAT16, RL_PROD, 0x0001, 0x3800, 0x0000); /* 2^-24 * 0.5: tie to 0 */
        check_pair(RL_FLOAT16, RL_PROD, 0x0003, 0x3800, 0x0002); /* 1.5 * 2^-24: tie to 2 */
        check_pair(RL_FLOAT16, RL_SUM, 0x03FF, 0x0001, 0x0400);  /* subnormal to normal */
        check_pair(RL_BFLOAT16, RL_SUM, 0x3F80, 0x3B80, 0x3F80); /* 1 + 2^-8: tie to even */
        check_pair(RL_BFLOAT16, RL_SUM, 0x3F81, 0x3B80, 0x3F82);
        check_pair(RL_BFLOAT16, RL_SUM, 0x7F7F, 0x7B00, 0x7F80); /* max + half ulp: inf */
        check_pair(RL_BFLOAT16, RL_PROD, 0x0001, 0x3F00, 0x0000); /* subnormal tie to 0 */
        check_pair(RL_FLOAT32, RL_SUM, 0x00000001, 0x80000002, 0x80000001); /* subnormals kept */
    }
}

Test(reduce, integer_wraparound)
{
    const char *isas[RL_ISA_COUNT];
    int nisa = isa_list(isas);
    for (int k = 0; k < nisa; k++) {
        use_isa(isas[k]);
        check_pair(RL_INT8, RL_SUM, 0x7F, 0x01, 0x80);
        check_pair(RL_INT8, RL_PROD, 0x80, 0xFF, 0x80); /* -128 * -1 */
        check_pair(RL_UINT8, RL_PROD, 0xFF, 0xFF, 0x01);
        check_pair(RL_INT8, RL_MIN, 0x80, 0x7F, 0x80);
        check_pair(RL_UINT8, RL_MIN, 0x80, 0x7F, 0x7F);
        check_pair(RL_INT32, RL_SUM, 0x7FFFFFFF, 1, 0x80000000);
        check_pair(RL_INT32, RL_PROD, 0x80000000, 0xFFFFFFFF, 0x80000000);
        check_pair(RL_UINT32, RL_MAX, 0xFFFFFFFF, 1, 0xFFFFFFFF);
        check_pair(RL_INT32, RL_MAX, 0xFFFFFFFF, 1, 1);
        check_pair(RL_INT64, RL_SUM, INT64_MAX, 1, (uint64_t)INT64_MIN);
        check_pair(RL_INT64, RL_PROD, (uint64_t)INT64_MIN, ~0ull, (uint64_t)INT64_MIN);
        check_pair(RL_UINT64, RL_PROD, 0xFFFFFFFF00000001ull, 0x123456789ull, 0x123456789ull * 0xFFFFFFFF00000001ull);
        check_pair(RL_INT64, RL_MIN, (uint64_t)INT64_MIN, 5, (uint64_t)INT64_MIN);
        check_pair(RL_UINT64, RL_MIN, 1ull << 63, 5, 5);
        check_pair(RL_UINT64, RL_MAX, 1ull << 63, 5, 1ull << 63);
    }
}

/* ---- avg ---------------------------------------------------------------- */

Test(reduce, avg_scale)
{
    static const rl_dtype_t fdt[] = {RL_FLOAT16, RL_BFLOAT16, RL_FLOAT32, RL_FLOAT64};
    static const int divisors[] = {1, 2, 3, 7, 8, 1000};
    size_t n = 1037;
    for (size_t t = 0; t < 4; t++) {
        rl_dtype_t dt = fdt[t];
        size_t es = rl_dtype_size(dt);
        const ffmt_t *f = &fmts[dt];
        cr_assert_eq(rl_reduce_lookup(dt, RL_AVG), rl_reduce_lookup(dt, RL_SUM));
        char *buf = malloc(n * es), *orig = malloc(n * es);
        cr_assert(buf && orig);
        for (size_t v = 0; v < sizeof(divisors) / sizeof(divisors[0]); v++) {
            fill(dt, orig, n);
            memcpy(buf, orig, n * es);
            cr_assert_eq(rl_reduce_scale(buf, n, dt, divisors[v]), RL_OK);
            for (size_t i = 0; i < n; i++) {
                double x = decode(f, get_bits(orig, i, es));
                uint64_t got = get_bits(buf, i, es);
                if (isnan(x)) {
                    cr_assert(isnan(decode(f, got)), "NaN / %d", divisors[v]);
                    continue;
                }
                /* double quotient rounded again: 53 >= 2p+2 for p <= 24; for
                 * float64 the division itself is the reference. */
                uint64_t want = encode(f, x / divisors[v]);
                cr_assert_eq(got, want, "%s %#llx / %d = %#llx, want %#llx", rl_dtype_name(dt),
                             (unsigned long long)get_bits(orig, i, es), divisors[v], (unsigned long long)got,
                             (unsigned long long)want);
            }
        }
        free(buf), free(orig);
    }
}

/* A 3-rank average the way a collective does it: sum, sum, scale. */
Test(reduce, avg_end_to_end)
{
    float r0[5] = {1, 2, 3, -4, 0.5f}, r1[5] = {2, 2, 3, 4, 0.25f}, r2[5] = {3, 2, 3, 0, 0.25f}, acc[5];
    rl_reduce_fn sum = rl_reduce_lookup(RL_FLOAT32, RL_AVG);
    sum(acc, r0, r1, 5);
    sum(acc, acc, r2, 5);
    cr_assert_eq(rl_reduce_scale(acc, 5, RL_FLOAT32, 3), RL_OK);
    float want[5] = {2, 2, 3, 0, 1.0f / 3.0f};
    cr_assert(memcmp(acc, want, sizeof(acc)) == 0);
}

Test(reduce, scale_errors)
{
    int32_t iv[4] = {1, 2, 3, 4};
    float fv[4] = {1, 2, 3, 4};
    cr_assert_eq(rl_reduce_scale(iv, 4, RL_INT32, 2), RL_ERR_INVALID_ARG);
    cr_assert_eq(rl_reduce_scale(iv, 4, RL_UINT8, 2), RL_ERR_INVALID_ARG);
    cr_assert_eq(rl_reduce_scale(fv, 4, RL_FLOAT32, 0), RL_ERR_INVALID_ARG);
    cr_assert_eq(rl_reduce_scale(fv, 4, RL_FLOAT32, -2), RL_ERR_INVALID_ARG);
    cr_assert_eq(rl_reduce_scale(fv, 4, RL_DTYPE_COUNT, 2), RL_ERR_INVALID_ARG);
    cr_assert_eq(rl_reduce_scale(NULL, 0, RL_FLOAT32, 2), RL_OK);
    cr_assert_eq(iv[0], 1);
    cr_assert_eq(fv[0], 1.0f);
}

/* ---- table and dispatch ------------------------------------------------- */

Test(reduce, supported_pairs)
{
    for (int dt = 0; dt < RL_DTYPE_COUNT; dt++) {
        for (int op = 0; op < RL_OP_COUNT; op++) {
            int want = op == RL_AVG ? is_float((rl_dtype_t)dt) : op_ok(dt, (rl_op_t)op);
            cr_assert_eq(rl_reduce_supported((rl_dtype_t)dt, (rl_op_t)op), want, "%d %d", dt, op);
            cr_assert_eq(rl_reduce_lookup((rl_dtype_t)dt, (rl_op_t)op) != NULL, want, "%d %d", dt, op);
        }
    }
    cr_assert_null(rl_reduce_lookup(RL_INT32, RL_AVG));
    cr_assert_null(rl_reduce_lookup(RL_DTYPE_COUNT, RL_SUM));
    cr_assert_null(rl_reduce_lookup(RL_FLOAT32, RL_OP_COUNT));
    cr_assert_null(rl_reduce_lookup((rl_dtype_t)-1, RL_SUM));
    cr_assert_null(rl_reduce_lookup(RL_FLOAT32, (rl_op_t)-1));
    cr_assert_not(rl_reduce_supported((rl_dtype_t)-1, RL_SUM));
    cr_assert_not(rl_reduce_supported(RL_FLOAT32, (rl_op_t)99));
}

/* What the CPU reports, asked independently of the library. */
static const char *cpu_best(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return "avx512";
    unsigned a, b, c, d;
    if (__builtin_cpu_supports("avx2") && __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C))
        return "avx2";
    return "generic";
}

Test(reduce, dispatch_default)
{
    unsetenv("RINGLET_REDUCE_ISA");
    const char *isa = rl_reduce_isa();
    cr_assert_str_eq(isa, rl_reduce_isa_name(rl_reduce_isa_max()));
    /* Fails only if the build left out an ISA this CPU has. */
    cr_assert_str_eq(isa, cpu_best(), "dispatched to %s, the CPU has %s", isa, cpu_best());
}

Test(reduce, dispatch_env_lower)
{
    setenv("RINGLET_REDUCE_ISA", "GENERIC", 1);
    cr_assert_str_eq(rl_reduce_isa(), "generic");
}

Test(reduce, dispatch_env_invalid)
{
    setenv("RINGLET_REDUCE_ISA", "sse9", 1);
    cr_assert_str_eq(rl_reduce_isa(), rl_reduce_isa_name(rl_reduce_isa_max()));
}

Test(reduce, force_isa)
{
    rl_isa_t max = rl_reduce_isa_max();
    cr_assert_eq(rl_reduce_force_isa("bogus"), -1);
    cr_assert_eq(rl_reduce_force_isa(NULL), -1);
    for (int i = 0; i < RL_ISA_COUNT; i++) {
        int rc = rl_reduce_force_isa(rl_reduce_isa_name((rl_isa_t)i));
        cr_assert_eq(rc, i <= (int)max ? 0 : -1, "%s", rl_reduce_isa_name((rl_isa_t)i));
        cr_assert_str_eq(rl_reduce_isa(), rl_reduce_isa_name((rl_isa_t)(i <= (int)max ? i : (int)max)));
    }
    cr_assert_null(rl_reduce_isa_name(RL_ISA_COUNT));
}

/* A kernel looked up before a switch keeps working; a new lookup follows. */
Test(reduce, force_isa_lookup_changes)
{
    if (rl_reduce_isa_max() == RL_ISA_GENERIC)
        cr_skip_test("only the generic ISA on this CPU");
    use_isa("generic");
    rl_reduce_fn g = rl_reduce_lookup(RL_FLOAT32, RL_SUM);
    use_isa(rl_reduce_isa_name(rl_reduce_isa_max()));
    rl_reduce_fn v = rl_reduce_lookup(RL_FLOAT32, RL_SUM);
    cr_assert_neq(g, v);
    cr_assert_eq(g, rl_reduce_generic(RL_FLOAT32, RL_SUM));
}

#define NTHREADS 8
static rl_reduce_fn thread_fn[NTHREADS];
static const char *thread_isa[NTHREADS];

static int first_use(void *arg)
{
    int i = (int)(intptr_t)arg;
    thread_fn[i] = rl_reduce_lookup(RL_BFLOAT16, RL_SUM);
    thread_isa[i] = rl_reduce_isa();
    return 0;
}

/* First use from several threads at once: one initialisation, one answer. */
Test(reduce, concurrent_first_use)
{
    thrd_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        cr_assert_eq(thrd_create(&t[i], first_use, (void *)(intptr_t)i), thrd_success);
    for (int i = 0; i < NTHREADS; i++)
        thrd_join(t[i], NULL);
    for (int i = 1; i < NTHREADS; i++) {
        cr_assert_eq(thread_fn[i], thread_fn[0]);
        cr_assert_str_eq(thread_isa[i], thread_isa[0]);
    }
    cr_assert_not_null(thread_fn[0]);
}

/* ---- dtype and op names ------------------------------------------------- */

Test(reduce, dtype_names)
{
    static const size_t sizes[RL_DTYPE_COUNT] = {1, 1, 4, 4, 8, 8, 2, 2, 4, 8, 1, 1};
    for (int dt = 0; dt < RL_DTYPE_COUNT; dt++) {
        cr_assert_eq(rl_dtype_size((rl_dtype_t)dt), sizes[dt]);
        const char *name = rl_dtype_name((rl_dtype_t)dt);
        cr_assert_not_null(name);
        rl_dtype_t back;
        cr_assert_eq(rl_dtype_parse(name, &back), RL_OK);
        cr_assert_eq((int)back, dt);
    }
    cr_assert_str_eq(rl_dtype_name(RL_BFLOAT16), "bfloat16");
    cr_assert_eq(rl_dtype_size(RL_DTYPE_COUNT), 0);
    cr_assert_eq(rl_dtype_size((rl_dtype_t)-1), 0);
    cr_assert_null(rl_dtype_name(RL_DTYPE_COUNT));
    static const struct {
        const char *s;
        rl_dtype_t dt;
    } alias[] = {{"float", RL_FLOAT32}, {"double", RL_FLOAT64}, {"int", RL_INT32},
                 {"half", RL_FLOAT16},  {"bf16", RL_BFLOAT16},  {"FLOAT32", RL_FLOAT32}};
    for (size_t i = 0; i < sizeof(alias) / sizeof(alias[0]); i++) {
        rl_dtype_t dt = RL_DTYPE_COUNT;
        cr_assert_eq(rl_dtype_parse(alias[i].s, &dt), RL_OK, "%s", alias[i].s);
        cr_assert_eq(dt, alias[i].dt, "%s", alias[i].s);
    }
    rl_dtype_t untouched = RL_INT8;
    cr_assert_eq(rl_dtype_parse("float128", &untouched), RL_ERR_INVALID_ARG);
    cr_assert_eq(rl_dtype_parse("", &untouched), RL_ERR_INVALID_ARG);
    cr_assert_eq(rl_dtype_parse(NULL, &untouched), RL_ERR_INVALID_ARG);
    cr_assert_eq(untouched, RL_INT8);
}

Test(reduce, op_names)
{
    static const char *const names[RL_OP_COUNT] = {"sum", "prod", "min", "max", "avg", "band", "bor", "bxor"};
    for (int op = 0; op < RL_OP_COUNT; op++) {
        cr_assert_str_eq(rl_op_name((rl_op_t)op), names[op]);
        rl_op_t back;
        cr_assert_eq(rl_op_parse(names[op], &back), RL_OK);
        cr_assert_eq((int)back, op);
    }
    cr_assert_null(rl_op_name(RL_OP_COUNT));
    rl_op_t untouched = RL_MAX;
    cr_assert_eq(rl_op_parse("mean", &untouched), RL_ERR_INVALID_ARG);
    cr_assert_eq(rl_op_parse(NULL, &untouched), RL_ERR_INVALID_ARG);
    cr_assert_eq(untouched, RL_MAX);
}

/* ---- fp8 (OCP E4M3 / E5M2) ---------------------------------------------- */

/* A code's value straight from the OCP tables' formulas, written out per
 * format (not through decode()). */
static double ocp_value(rl_dtype_t dt, unsigned v)
{
    int s = v >> 7, e4 = (v >> 3) & 15, m3 = v & 7, e5 = (v >> 2) & 31, m2 = v & 3;
    double x;
    if (dt == RL_FP8_E4M3) {
        if (e4 == 15 && m3 == 7)
            return NAN;
        x = e4 ? (1 + m3 / 8.0) * pow(2, e4 - 7) : m3 / 8.0 * pow(2, -6);
    } else {
        if (e5 == 31)
            return m2 ? NAN : s ? -INFINITY : INFINITY;
        x = e5 ? (1 + m2 / 4.0) * pow(2, e5 - 15) : m2 / 4.0 * pow(2, -14);
    }
    return s ? -x : x;
}

/* Nearest code by searching every code (ties to the even code), with the
 * overflow rule of each format: E4M3 saturates at 448, E5M2 goes to
 * infinity from 61440 on. */
static unsigned nearest_code(rl_dtype_t dt, double x)
{
    if (isnan(x))
        return dt == RL_FP8_E4M3 ? 0x7F : 0x7E;
    unsigned sign = signbit(x) ? 0x80 : 0;
    double ax = fabs(x);
    if (dt == RL_FP8_E4M3 && ax >= 448)
        return sign | 0x7E;
    if (dt == RL_FP8_E5M2 && ax >= 61440)
        return sign | 0x7C;
    unsigned best = 0;
    double bd = INFINITY;
    for (unsigned c = 0; c < 128; c++) {
        double v = ocp_value(dt, c);
        if (isnan(v) || isinf(v))
            continue;
        double d = fabs(v - ax);
        if (d < bd || (d == bd && !(c & 1))) {
            bd = d;
            best = c;
        }
    }
    return sign | best;
}

static const rl_dtype_t fp8s[] = {RL_FP8_E4M3, RL_FP8_E5M2};

Test(fp8, decode_every_code)
{
    for (int k = 0; k < 2; k++) {
        for (unsigned v = 0; v < 256; v++) {
            double want = ocp_value(fp8s[k], v);
            float got = fp8s[k] == RL_FP8_E4M3 ? rl_fp8_e4m3_to_float((uint8_t)v) : rl_fp8_e5m2_to_float((uint8_t)v);
            if (isnan(want))
                cr_assert(isnan(got), "%s %#x: want NaN, got %g", rl_dtype_name(fp8s[k]), v, got);
            else
                cr_assert(got == want && !signbit(got) == !signbit(want), "%s %#x: got %g want %g",
                          rl_dtype_name(fp8s[k]), v, got, want);
        }
    }
    /* the specials the spec names */
    cr_assert_eq(rl_fp8_e4m3_to_float(0x7E), 448.0f);
    cr_assert_eq(rl_fp8_e4m3_to_float(0x01), 0x1p-9f);
    cr_assert_eq(rl_fp8_e5m2_to_float(0x7B), 57344.0f);
    cr_assert(isinf(rl_fp8_e5m2_to_float(0xFC)) && rl_fp8_e5m2_to_float(0xFC) < 0);
    cr_assert_eq(rl_fp8_e5m2_to_float(0x01), 0x1p-16f);
}

static uint8_t to_fp8(rl_dtype_t dt, float f)
{
    return dt == RL_FP8_E4M3 ? rl_float_to_fp8_e4m3(f) : rl_float_to_fp8_e5m2(f);
}

static float from_fp8(rl_dtype_t dt, unsigned v)
{
    return dt == RL_FP8_E4M3 ? rl_fp8_e4m3_to_float((uint8_t)v) : rl_fp8_e5m2_to_float((uint8_t)v);
}

/* Every code round-trips; every midpoint between neighbours goes to the
 * even one, a hair off it to the nearer one. */
Test(fp8, round_trip_and_ties)
{
    for (int k = 0; k < 2; k++) {
        rl_dtype_t dt = fp8s[k];
        for (unsigned v = 0; v < 256; v++) {
            float f = from_fp8(dt, v);
            if (f != f)
                cr_assert(from_fp8(dt, to_fp8(dt, f)) != from_fp8(dt, to_fp8(dt, f)), "NaN stays NaN");
            else
                cr_assert_eq(to_fp8(dt, f), v, "%s %#x does not round-trip", rl_dtype_name(dt), v);
        }
        for (unsigned v = 0; v < 0x7E; v++) {
            float lo = from_fp8(dt, v), hi = from_fp8(dt, v + 1);
            if (hi != hi || isinf(hi))
                continue;
            float mid = (lo + hi) / 2; /* exact in float */
            unsigned even = v & 1 ? v + 1 : v;
            cr_assert_eq(to_fp8(dt, mid), even, "%s tie %g between %#x and %#x", rl_dtype_name(dt), mid, v, v + 1);
            cr_assert_eq(to_fp8(dt, -mid), even | 0x80, "%s tie %g", rl_dtype_name(dt), -mid);
            cr_assert_eq(to_fp8(dt, nextafterf(mid, 0)), v, "%s below %g", rl_dtype_name(dt), mid);
            cr_assert_eq(to_fp8(dt, nextafterf(mid, INFINITY)), v + 1, "%s above %g", rl_dtype_name(dt), mid);
        }
    }
}

Test(fp8, overflow_underflow_and_nan)
{
    /* E4M3 saturates (infinity too) */
    cr_assert_eq(rl_float_to_fp8_e4m3(464.0f), 0x7E);
    cr_assert_eq(rl_float_to_fp8_e4m3(480.0f), 0x7E);
    cr_assert_eq(rl_float_to_fp8_e4m3(1e30f), 0x7E);
    cr_assert_eq(rl_float_to_fp8_e4m3(-INFINITY), 0xFE);
    cr_assert_eq(rl_float_to_fp8_e4m3(NAN) & 0x7F, 0x7F);
    /* E5M2 rounds to infinity from the midpoint 61440 up */
    cr_assert_eq(rl_float_to_fp8_e5m2(61439.0f), 0x7B);
    cr_assert_eq(rl_float_to_fp8_e5m2(61440.0f), 0x7C);
    cr_assert_eq(rl_float_to_fp8_e5m2(-1e30f), 0xFC);
    cr_assert_eq(rl_float_to_fp8_e5m2(INFINITY), 0x7C);
    cr_assert((rl_float_to_fp8_e5m2(NAN) & 0x7F) > 0x7C);
    /* below half the smallest subnormal: signed zero; half of it is a tie to 0 */
    cr_assert_eq(rl_float_to_fp8_e4m3(0x1p-10f), 0x00);
    cr_assert_eq(rl_float_to_fp8_e4m3(nextafterf(0x1p-10f, 1)), 0x01);
    cr_assert_eq(rl_float_to_fp8_e4m3(-0x1p-30f), 0x80);
    cr_assert_eq(rl_float_to_fp8_e5m2(0x1p-17f), 0x00);
    cr_assert_eq(rl_float_to_fp8_e5m2(0x1.8p-16f), 0x02); /* 1.5 units: tie to 2 */
    cr_assert_eq(rl_float_to_fp8_e5m2(0x1p-149f), 0x00);
    /* the largest subnormal rounds up into the smallest normal */
    cr_assert_eq(rl_float_to_fp8_e4m3(0x1.fp-7f), 0x08);
}

/* Every pair of codes, every op, every ISA: the result is the nearest code
 * (found by search) to the exact result (double arithmetic is exact here). */
Test(fp8, every_pair_every_op, .timeout = 120)
{
    const char *isas[RL_ISA_COUNT];
    int nisa = isa_list(isas);
    size_t n = 65536;
    uint8_t *a = malloc(n), *b = malloc(n), *d = malloc(n), *want = malloc(n);
    cr_assert(a && b && d && want);
    for (size_t i = 0; i < n; i++)
        a[i] = (uint8_t)i, b[i] = (uint8_t)(i >> 8);
    for (int k = 0; k < 2; k++) {
        rl_dtype_t dt = fp8s[k];
        for (size_t o = 0; o < 4; o++) {
            for (size_t i = 0; i < n; i++) {
                double x = ocp_value(dt, a[i]), y = ocp_value(dt, b[i]);
                if (ops[o] == RL_SUM || ops[o] == RL_PROD) {
                    want[i] = (uint8_t)nearest_code(dt, ops[o] == RL_SUM ? x + y : x * y);
                } else if (isnan(x) || isnan(y)) {
                    want[i] = isnan(x) ? a[i] : b[i];
                } else if (x == y) { /* -0 below +0; equal numbers have equal codes otherwise */
                    want[i] = (signbit(x) != 0) == (ops[o] == RL_MIN) ? a[i] : b[i];
                } else {
                    want[i] = (x < y) == (ops[o] == RL_MIN) ? a[i] : b[i];
                }
            }
            for (int isa = 0; isa < nisa; isa++) {
                use_isa(isas[isa]);
                rl_reduce_lookup(dt, ops[o])(d, a, b, n);
                for (size_t i = 0; i < n; i++)
                    cr_assert_eq(d[i], want[i], "%s %s %s: %#x op %#x = %#x, want %#x", isas[isa],
                                 rl_dtype_name(dt), rl_op_name(ops[o]), a[i], b[i], d[i], want[i]);
            }
        }
    }
    free(a), free(b), free(d), free(want);
}

Test(fp8, avg_divides_then_rounds_once)
{
    for (int k = 0; k < 2; k++) {
        rl_dtype_t dt = fp8s[k];
        uint8_t v[256];
        for (unsigned c = 0; c < 256; c++)
            v[c] = (uint8_t)c;
        cr_assert_eq(rl_reduce_scale(v, 256, dt, 3), RL_OK);
        for (unsigned c = 0; c < 256; c++) {
            double x = ocp_value(dt, c);
            if (isnan(x))
                continue;
            unsigned w = nearest_code(dt, x / 3);
            cr_assert_eq(v[c], w, "%s %#x / 3 = %#x, want %#x", rl_dtype_name(dt), c, v[c], w);
        }
    }
}
