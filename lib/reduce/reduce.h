/* Reduction kernels: one place maps (dtype, op) to a kernel.
 *
 * Semantics (identical on every instruction set, bit for bit):
 * - Elementwise only, so a result never depends on how [0, n) is split.
 * - Integers: sum and prod wrap around modulo 2^bits (two's complement).
 * - Floating types: IEEE arithmetic, round-to-nearest-even, no fused
 *   multiply-add, subnormals kept (the kernels never set FTZ/DAZ).
 * - float16/bfloat16 sum/prod: both inputs are widened to float exactly, the
 *   float result is rounded once to the narrow type (this equals the exactly
 *   rounded result: float has more than 2p+2 bits for both types).
 * - Float min/max follow IEEE 754-2019 minimum/maximum: a NaN in either input
 *   gives a NaN (not the other number, unlike fminf/fmaxf), and -0 < +0.
 *   Which NaN: a's if a is a NaN, else b's; min/max copy the NaN's bits as
 *   they are, sum/prod return a quiet NaN.
 * - fp8 (E4M3, E5M2): decoded to float exactly, computed in float, rounded
 *   once to nearest even; E4M3 saturates at +-448, E5M2 overflows to
 *   infinity (fp8.c says why).
 * - Bitwise and/or/xor: integer types only, on the bits.
 */
#ifndef RL_REDUCE_H
#define RL_REDUCE_H

#include <stddef.h>
#include <stdint.h>
#include "ringlet.h"

/* dst[i] = a[i] op b[i] for i < n elements. dst may alias a or b exactly
 * (not partially). Elements are of the kernel's dtype. */
typedef void (*rl_reduce_fn)(void *dst, const void *a, const void *b, size_t n);

/* The kernel for (dtype, op) on this CPU, or NULL if the pair is unsupported
 * (RL_AVG maps to the sum kernel: the caller divides with rl_reduce_scale()). */
rl_reduce_fn rl_reduce_lookup(rl_dtype_t dtype, rl_op_t op);

/* buf[i] = buf[i] / divisor, for floating types (RL_AVG's final step). */
rl_status_t rl_reduce_scale(void *buf, size_t n, rl_dtype_t dtype, int divisor);

/* Whether (dtype, op) is a valid combination (RL_AVG: floating types only). */
int rl_reduce_supported(rl_dtype_t dtype, rl_op_t op);

/* Name of the instruction set the kernels were dispatched to ("avx512",
 * "avx2", "generic"), chosen once at first use; RINGLET_REDUCE_ISA may force
 * a lower one. */
const char *rl_reduce_isa(void);

/* IEEE half and bfloat16 conversions, round-to-nearest-even, NaN and infinity
 * kept (a NaN stays a NaN). */
float rl_half_to_float(uint16_t h);
uint16_t rl_float_to_half(float f);
float rl_bf16_to_float(uint16_t b);
uint16_t rl_float_to_bf16(float f);
/* OCP fp8 conversions, round-to-nearest-even; E4M3 saturates to +-448
 * (infinity too), E5M2 rounds overflow to infinity; NaN stays NaN. */
float rl_fp8_e4m3_to_float(uint8_t v);
float rl_fp8_e5m2_to_float(uint8_t v);
uint8_t rl_float_to_fp8_e4m3(float f);
uint8_t rl_float_to_fp8_e5m2(float f);


/* ---- Internal: lib/reduce and its tests only ---------------------------- */

/* Instruction sets in increasing order; a kernel table per ISA. */
typedef enum { RL_ISA_GENERIC, RL_ISA_AVX2, RL_ISA_AVX512, RL_ISA_COUNT } rl_isa_t;

/* Kernels indexed [dtype][op] (never RL_AVG, which runs the sum kernel);
 * NULL where a file has none. */
typedef rl_reduce_fn rl_reduce_table_t[RL_DTYPE_COUNT][RL_OP_COUNT];

/* Portable C kernels: integers, float32, float64 (kernels_generic.c). */
extern const rl_reduce_table_t rl_reduce_generic_table;
/* Portable C kernels for float16 and bfloat16 (half.c). */
extern const rl_reduce_table_t rl_reduce_half_table;
/* Portable C kernels for fp8 E4M3 and E5M2 (fp8.c); rl_reduce_fp8_init()
 * must have run before they are called (rl_reduce_lookup sees to it). */
extern const rl_reduce_table_t rl_reduce_fp8_table;
void rl_reduce_fp8_init(void);
/* Portable fp8 avg step (fp8.c): buf[i] = buf[i] / divisor. */
void rl_reduce_fp8_scale(void *buf, size_t n, rl_dtype_t dtype, int divisor);
/* Vector kernels; only linked when the compiler can target them. Their tails
 * (fewer elements than a vector) run the portable kernel. */
extern const rl_reduce_table_t rl_reduce_avx2_table;
extern const rl_reduce_table_t rl_reduce_avx512_table;

/* The portable kernel for (dtype, op) (op != RL_AVG), never NULL for a
 * supported pair: used for vector tails and as the reference ISA. */
rl_reduce_fn rl_reduce_generic(rl_dtype_t dtype, rl_op_t op);

/* Portable float16/bfloat16 avg step (half.c): buf[i] = buf[i] / divisor. */
void rl_reduce_half_scale(void *buf, size_t n, rl_dtype_t dtype, int divisor);

/* Vector kernels write dst with streaming (non-temporal) stores, then an
 * sfence, when one call writes at least this many bytes: such outputs do not
 * fit in the cache anyway and regular stores would first read every line.
 * Results are identical; only cache behaviour changes. Set at initialisation
 * to half the last-level cache (8 MiB if unknown); SIZE_MAX means never. */
extern size_t rl_reduce_stream_bytes;
/* Override it (tests, benchmarks; not while kernels run in other threads).
 * Returns the previous value. */
size_t rl_reduce_set_stream_bytes(size_t bytes);

/* Highest ISA this CPU (and this build) supports. */
rl_isa_t rl_reduce_isa_max(void);
/* Switch every later rl_reduce_lookup() to the ISA called `name` ("generic",
 * "avx2", "avx512"). Returns 0, or -1 if the name is unknown or the ISA is
 * above rl_reduce_isa_max(). For tests and benchmarks; kernels already
 * looked up keep working. */
int rl_reduce_force_isa(const char *name);
/* "generic", "avx2", "avx512"; NULL for an unknown value. */
const char *rl_reduce_isa_name(rl_isa_t isa);

#endif
