/*
 * What travels on the data path: 32-bit immediates and the control record a
 * rank writes into its ring predecessor's mailbox at the start of each
 * operation. Everything decoded here came from the network: decoders
 * validate, callers trust only decoded values.
 */
#ifndef RL_WIRE_H
#define RL_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include "ringlet.h"

/* Immediate: [31:30] kind, [29:26] channel, [25:22] op sequence tag,
 * [21:0] index (staging slot, unit number, credit count or mailbox slot). */
typedef enum {
    RL_IMM_STAGE = 0,  /* a chunk landed in staging slot `index` */
    RL_IMM_DIRECT = 1, /* unit `index` was written straight into my output */
    RL_IMM_CREDIT = 2, /* `index` staging slots were freed at the receiver */
    RL_IMM_CTRL = 3,   /* a control record landed in mailbox slot `index` */
} rl_imm_kind_t;

#define RL_IMM_INDEX_BITS 22
#define RL_IMM_INDEX_MAX ((1u << RL_IMM_INDEX_BITS) - 1)
#define RL_IMM_TAG_MASK 0xfu

typedef struct {
    rl_imm_kind_t kind;
    unsigned channel;
    unsigned tag;
    uint32_t index;
} rl_imm_t;

uint32_t rl_imm_encode(rl_imm_kind_t kind, unsigned channel, uint64_t seq, uint32_t index);
/* Validates the channel against nchannels. */
rl_status_t rl_imm_decode(uint32_t imm, int nchannels, rl_imm_t *out);

/*
 * Point-to-point immediates use the channel value RL_IMM_P2P_CHANNEL:
 * [25:7] the sender's rank, [6:5] kind, [4] space, [3:0] the pair's sequence
 * tag. An eager all-reduce message (RL_P2P_EAGER) carries its step in the
 * tag and the operation's parity in the space bit.
 * (Ring channels are 0..RL_IMM_P2P_CHANNEL-1.)
 */
#define RL_IMM_P2P_CHANNEL 15u
#define RL_IMM_P2P_RANK_MAX ((1 << 19) - 1)
typedef enum { RL_P2P_DATA = 0, RL_P2P_CTS = 1, RL_P2P_EAGER = 2 } rl_p2p_kind_t;
/* Two matching spaces, so that the point-to-point messages collectives
 * make never match the user's sends and receives. */
enum { RL_P2P_USER = 0, RL_P2P_COLL = 1, RL_P2P_SPACES = 2 };

typedef struct {
    rl_p2p_kind_t kind;
    int space;
    int rank;
    unsigned tag;
} rl_p2p_imm_t;

int rl_imm_is_p2p(uint32_t imm);
/* Who handles an immediate: the communicator routes each class through
 * one table (ring channels, point-to-point messages, eager slots). */
typedef enum { RL_IMMC_RING = 0, RL_IMMC_P2P = 1, RL_IMMC_EAGER = 2, RL_IMMC_COUNT } rl_imm_class_t;
rl_imm_class_t rl_imm_class(uint32_t imm);
uint32_t rl_imm_p2p_encode(rl_p2p_kind_t kind, int space, int rank, uint64_t seq);
/* Validates the kind and that the rank is in [0, nranks). */
rl_status_t rl_imm_p2p_decode(uint32_t imm, int nranks, rl_p2p_imm_t *out);

/* Collective kinds as they appear on the wire. */
typedef enum {
    RL_COLL_ALL_REDUCE = 1,
    RL_COLL_ALL_GATHER = 2,
    RL_COLL_REDUCE_SCATTER = 3,
    RL_COLL_BROADCAST = 4,
    RL_COLL_REDUCE = 5,
    RL_COLL_BARRIER = 6,
    RL_COLL_SENDRECV = 7, /* a receiver's clear-to-send record */
    RL_COLL_MAX = 7,
    RL_COLL_ALLTOALL = 8, /* local only: a group of sends and receives */
    RL_COLL_ALLTOALLV = 9, /* local only, as all-to-all (coll/a2av.c) */
    RL_COLL_GATHER = 10,   /* local only */
    RL_COLL_SCATTER = 11,  /* local only */
    RL_COLL_COUNT
} rl_coll_t;

/* "all_reduce", "broadcast", ...; "?" for an unknown kind. */
const char *rl_coll_name(uint32_t coll);

#define RL_MBOX_SLOTS 4
#define RL_CTRL_MAGIC 0x524c4354u /* "RLCT" */

/* Control record: "for operation seq, here is what I was asked to do and
 * where my output buffer is". 64 bytes, little-endian, fixed layout; a
 * clear-to-send record (coll RL_COLL_SENDRECV) carries the receive's tag
 * where collectives carry the op (protocol version 4). */
typedef struct {
    uint64_t seq;
    uint32_t coll;
    uint32_t dtype;
    uint32_t op;       /* 0 in a clear-to-send record, whose word holds the tag */
    uint32_t tag;      /* clear-to-send: the receive's tag; else 0 */
    int32_t rank;
    int32_t root;      /* broadcast/reduce: the root; else 0 */
    uint64_t count;
    uint64_t out_addr; /* remote name of the receiver's output buffer */
    uint64_t out_key;
    uint64_t out_len;  /* bytes the peer may write there */
} rl_ctrl_t;

#define RL_CTRL_WIRE_SIZE 64
void rl_ctrl_encode(const rl_ctrl_t *c, uint8_t out[RL_CTRL_WIRE_SIZE]);
rl_status_t rl_ctrl_decode(const uint8_t in[RL_CTRL_WIRE_SIZE], int nranks, rl_ctrl_t *out);

#endif
