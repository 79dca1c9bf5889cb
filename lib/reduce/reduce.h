/* Reduction kernels: one place maps (dtype, op) to a kernel. */
#ifndef RL_REDUCE_H
#define RL_REDUCE_H

#include <stddef.h>
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

#endif
