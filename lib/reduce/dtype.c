/* Element types and operators: sizes, names and parsing (public API). */
#include <stddef.h>
#include <strings.h>

#include "ringlet.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[RL_DTYPE_COUNT] = {
    [RL_INT8] = {"int8", 1},       [RL_UINT8] = {"uint8", 1},
    [RL_INT32] = {"int32", 4},     [RL_UINT32] = {"uint32", 4},
    [RL_INT64] = {"int64", 8},     [RL_UINT64] = {"uint64", 8},
    [RL_FLOAT16] = {"float16", 2}, [RL_BFLOAT16] = {"bfloat16", 2},
    [RL_FLOAT32] = {"float32", 4}, [RL_FLOAT64] = {"float64", 8},
    [RL_FP8_E4M3] = {"fp8_e4m3", 1}, [RL_FP8_E5M2] = {"fp8_e5m2", 1},
};

static const char *const op_names[RL_OP_COUNT] = {
    [RL_SUM] = "sum", [RL_PROD] = "prod", [RL_MIN] = "min", [RL_MAX] = "max", [RL_AVG] = "avg",
    [RL_BAND] = "band", [RL_BOR] = "bor", [RL_BXOR] = "bxor",
};

/* Other spellings accepted by rl_dtype_parse(), as common elsewhere. */
static const struct {
    const char *name;
    rl_dtype_t dtype;
} dtype_aliases[] = {
    {"char", RL_INT8},     {"int", RL_INT32},        {"uint", RL_UINT32},   {"long", RL_INT64},
    {"half", RL_FLOAT16},  {"fp16", RL_FLOAT16},     {"bf16", RL_BFLOAT16}, {"float", RL_FLOAT32},
    {"fp32", RL_FLOAT32},  {"double", RL_FLOAT64},   {"fp64", RL_FLOAT64},
    {"e4m3", RL_FP8_E4M3}, {"e5m2", RL_FP8_E5M2},
};

size_t rl_dtype_size(rl_dtype_t dtype)
{
    return (unsigned)dtype < RL_DTYPE_COUNT ? dtypes[dtype].size : 0;
}

const char *rl_dtype_name(rl_dtype_t dtype)
{
    return (unsigned)dtype < RL_DTYPE_COUNT ? dtypes[dtype].name : NULL;
}

const char *rl_op_name(rl_op_t op)
{
    return (unsigned)op < RL_OP_COUNT ? op_names[op] : NULL;
}

rl_status_t rl_dtype_parse(const char *name, rl_dtype_t *dtype)
{
    if (!name || !dtype)
        return RL_ERR_INVALID_ARG;
    for (int i = 0; i < RL_DTYPE_COUNT; i++) {
        if (strcasecmp(name, dtypes[i].name) == 0) {
            *dtype = (rl_dtype_t)i;
            return RL_OK;
        }
    }
    for (size_t i = 0; i < sizeof(dtype_aliases) / sizeof(dtype_aliases[0]); i++) {
        if (strcasecmp(name, dtype_aliases[i].name) == 0) {
            *dtype = dtype_aliases[i].dtype;
            return RL_OK;
        }
    }
    return RL_ERR_INVALID_ARG;
}

rl_status_t rl_op_parse(const char *name, rl_op_t *op)
{
    if (!name || !op)
        return RL_ERR_INVALID_ARG;
    for (int i = 0; i < RL_OP_COUNT; i++) {
        if (strcasecmp(name, op_names[i]) == 0) {
            *op = (rl_op_t)i;
            return RL_OK;
        }
    }
    return RL_ERR_INVALID_ARG;
}
