#include "coll/wire.h"

#include <string.h>

uint32_t rl_imm_encode(rl_imm_kind_t kind, unsigned channel, uint64_t seq, uint32_t index)
{
    return (uint32_t)kind << 30 | (channel & 0xfu) << 26 | (uint32_t)(seq & RL_IMM_TAG_MASK) << 22 |
           (index & RL_IMM_INDEX_MAX);
}

rl_status_t rl_imm_decode(uint32_t imm, int nchannels, rl_imm_t *out)
{
    rl_imm_t d = {
        .kind = (rl_imm_kind_t)(imm >> 30),
        .channel = (imm >> 26) & 0xfu,
        .tag = (imm >> 22) & RL_IMM_TAG_MASK,
        .index = imm & RL_IMM_INDEX_MAX,
    };
    if ((int)d.channel >= nchannels)
        return RL_ERR_PROTOCOL;
    *out = d;
    return RL_OK;
}

int rl_imm_is_p2p(uint32_t imm) { return ((imm >> 26) & 0xfu) == RL_IMM_P2P_CHANNEL; }

rl_imm_class_t rl_imm_class(uint32_t imm)
{
    if (!rl_imm_is_p2p(imm))
        return RL_IMMC_RING;
    return ((imm >> 5) & 3u) == RL_P2P_EAGER ? RL_IMMC_EAGER : RL_IMMC_P2P;
}

uint32_t rl_imm_p2p_encode(rl_p2p_kind_t kind, int space, int rank, uint64_t seq)
{
    return (uint32_t)RL_IMM_DIRECT << 30 | RL_IMM_P2P_CHANNEL << 26 | ((uint32_t)rank & RL_IMM_P2P_RANK_MAX) << 7 |
           ((uint32_t)kind & 3u) << 5 | ((uint32_t)space & 1u) << 4 | (uint32_t)(seq & RL_IMM_TAG_MASK);
}

rl_status_t rl_imm_p2p_decode(uint32_t imm, int nranks, rl_p2p_imm_t *out)
{
    if (!rl_imm_is_p2p(imm) || (imm >> 30) != RL_IMM_DIRECT)
        return RL_ERR_PROTOCOL;
    unsigned kind = (imm >> 5) & 3u, space = (imm >> 4) & 1u;
    int rank = (int)((imm >> 7) & RL_IMM_P2P_RANK_MAX);
    if (rank >= nranks || kind > RL_P2P_EAGER)
        return RL_ERR_PROTOCOL;
    *out = (rl_p2p_imm_t){.kind = (rl_p2p_kind_t)kind, .space = (int)space, .rank = rank,
                          .tag = imm & RL_IMM_TAG_MASK};
    return RL_OK;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void rl_ctrl_encode(const rl_ctrl_t *c, uint8_t out[RL_CTRL_WIRE_SIZE])
{
    memset(out, 0, RL_CTRL_WIRE_SIZE);
    put64(out, (uint64_t)RL_CTRL_MAGIC | (uint64_t)c->coll << 32);
    put64(out + 8, c->seq);
    uint32_t opword = c->coll == RL_COLL_SENDRECV ? c->tag : c->op;
    put64(out + 16, (uint64_t)c->dtype | (uint64_t)opword << 32);
    put64(out + 24, (uint64_t)(uint32_t)c->rank | (uint64_t)(uint32_t)c->root << 32);
    put64(out + 32, c->count);
    put64(out + 40, c->out_addr);
    put64(out + 48, c->out_key);
    put64(out + 56, c->out_len);
}

rl_status_t rl_ctrl_decode(const uint8_t in[RL_CTRL_WIRE_SIZE], int nranks, rl_ctrl_t *out)
{
    uint64_t w0 = get64(in), w2 = get64(in + 16), w3 = get64(in + 24);
    rl_ctrl_t c = {
        .coll = (uint32_t)(w0 >> 32),
        .seq = get64(in + 8),
        .dtype = (uint32_t)w2,
        .op = (uint32_t)(w2 >> 32),
        .tag = 0,
        .rank = (int32_t)(uint32_t)w3,
        .root = (int32_t)(uint32_t)(w3 >> 32),
        .count = get64(in + 32),
        .out_addr = get64(in + 40),
        .out_key = get64(in + 48),
        .out_len = get64(in + 56),
    };
    if ((uint32_t)w0 != RL_CTRL_MAGIC)
        return RL_ERR_PROTOCOL;
    if (c.coll == RL_COLL_SENDRECV) { /* any 32-bit tag; no op */
        c.tag = c.op;
        c.op = 0;
    }
    if (c.coll < 1 || c.coll > RL_COLL_MAX || c.dtype >= RL_DTYPE_COUNT || c.op >= RL_OP_COUNT)
        return RL_ERR_PROTOCOL;
    if (c.rank < 0 || c.rank >= nranks || c.root < 0 || c.root >= nranks)
        return RL_ERR_PROTOCOL;
    /* The announced output range must not wrap: writes go to out_addr +
     * offset for every offset below out_len. */
    if (c.out_len > UINT64_MAX - c.out_addr)
        return RL_ERR_PROTOCOL;
    *out = c;
    return RL_OK;
}

const char *rl_coll_name(uint32_t coll)
{
    static const char *const names[RL_COLL_COUNT] = {
        "?",         "all_reduce", "all_gather", "reduce_scatter", "broadcast", "reduce",
        "barrier",   "send/recv",  "all_to_all", "all_to_allv",    "gather",    "scatter"};
    return coll < RL_COLL_COUNT ? names[coll] : "?";
}
