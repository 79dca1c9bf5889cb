#include <criterion/criterion.h>
#include <string.h>

#include "coll/wire.h"
#include "core/config.h"

Test(wire, immediates_round_trip)
{
    const rl_imm_kind_t kinds[] = {RL_IMM_STAGE, RL_IMM_DIRECT, RL_IMM_CREDIT, RL_IMM_CTRL};
    for (int k = 0; k < 4; k++)
        for (unsigned ch = 0; ch < 16; ch += 5)
            for (uint64_t seq = 0; seq < 40; seq += 7)
                for (uint32_t idx = 0; idx <= RL_IMM_INDEX_MAX; idx += RL_IMM_INDEX_MAX / 3) {
                    rl_imm_t d;
                    uint32_t imm = rl_imm_encode(kinds[k], ch, seq, idx);
                    cr_assert_eq(rl_imm_decode(imm, 16, &d), RL_OK);
                    cr_assert_eq(d.kind, kinds[k]);
                    cr_assert_eq(d.channel, ch);
                    cr_assert_eq(d.tag, seq & RL_IMM_TAG_MASK);
                    cr_assert_eq(d.index, idx);
                }
}

Test(wire, immediate_for_a_missing_channel_is_refused)
{
    rl_imm_t d = {0};
    uint32_t imm = rl_imm_encode(RL_IMM_STAGE, 3, 0, 1);
    cr_assert_eq(rl_imm_decode(imm, 3, &d), RL_ERR_PROTOCOL);
    cr_assert_eq(rl_imm_decode(imm, 4, &d), RL_OK);
}

static rl_ctrl_t sample(void)
{
    return (rl_ctrl_t){.seq = 0x123456789aull, .coll = RL_COLL_ALL_GATHER, .dtype = RL_INT64, .op = RL_MAX,
                       .rank = 3, .root = 2, .count = 77777, .out_addr = 0xdeadbeef000ull, .out_key = 42, .out_len = 4096};
}

Test(wire, control_record_round_trip)
{
    uint8_t buf[RL_CTRL_WIRE_SIZE];
    rl_ctrl_t c = sample(), d;
    rl_ctrl_encode(&c, buf);
    cr_assert_eq(rl_ctrl_decode(buf, 4, &d), RL_OK);
    cr_assert(c.seq == d.seq && c.coll == d.coll && c.dtype == d.dtype && c.op == d.op && c.rank == d.rank &&
              c.root == d.root && c.count == d.count && c.out_addr == d.out_addr && c.out_key == d.out_key &&
              c.out_len == d.out_len);
}

/* A clear-to-send record carries any 32-bit tag where collectives carry
 * the op; other records decode with tag 0. */
Test(wire, clear_to_send_tag_round_trip)
{
    uint8_t buf[RL_CTRL_WIRE_SIZE];
    rl_ctrl_t c = sample(), d;
    c.coll = RL_COLL_SENDRECV;
    c.op = 0;
    c.root = 0;
    c.tag = 0xfffffff7u;
    rl_ctrl_encode(&c, buf);
    cr_assert_eq(rl_ctrl_decode(buf, 4, &d), RL_OK);
    cr_assert_eq(d.tag, 0xfffffff7u);
    cr_assert_eq(d.op, 0);
    c = sample();
    c.tag = 77; /* not encoded outside a clear-to-send */
    rl_ctrl_encode(&c, buf);
    cr_assert_eq(rl_ctrl_decode(buf, 4, &d), RL_OK);
    cr_assert_eq(d.tag, 0);
    cr_assert_eq(d.op, RL_MAX);
}

Test(wire, control_record_validation)
{
    uint8_t buf[RL_CTRL_WIRE_SIZE];
    rl_ctrl_t c = sample(), d;
    rl_ctrl_encode(&c, buf);
    cr_assert_eq(rl_ctrl_decode(buf, 3, &d), RL_ERR_PROTOCOL, "rank 3 is out of a group of 3");
    uint8_t bad[RL_CTRL_WIRE_SIZE];
    memcpy(bad, buf, sizeof(bad));
    bad[0] ^= 1;
    cr_assert_eq(rl_ctrl_decode(bad, 4, &d), RL_ERR_PROTOCOL, "magic");
    c.dtype = RL_DTYPE_COUNT;
    rl_ctrl_encode(&c, bad);
    cr_assert_eq(rl_ctrl_decode(bad, 4, &d), RL_ERR_PROTOCOL, "dtype");
    c = sample();
    c.coll = 9;
    rl_ctrl_encode(&c, bad);
    cr_assert_eq(rl_ctrl_decode(bad, 4, &d), RL_ERR_PROTOCOL, "coll");
    c = sample();
    c.rank = -1;
    rl_ctrl_encode(&c, bad);
    cr_assert_eq(rl_ctrl_decode(bad, 4, &d), RL_ERR_PROTOCOL, "negative rank");
    c = sample();
    c.root = 4;
    rl_ctrl_encode(&c, bad);
    cr_assert_eq(rl_ctrl_decode(bad, 4, &d), RL_ERR_PROTOCOL, "root outside the group");
    c.root = -3;
    rl_ctrl_encode(&c, bad);
    cr_assert_eq(rl_ctrl_decode(bad, 4, &d), RL_ERR_PROTOCOL, "negative root");
}

Test(wire, collective_names)
{
    cr_assert_str_eq(rl_coll_name(RL_COLL_REDUCE_SCATTER), "reduce_scatter");
    cr_assert_str_eq(rl_coll_name(RL_COLL_BARRIER), "barrier");
    cr_assert_str_eq(rl_coll_name(0), "?");
    cr_assert_str_eq(rl_coll_name(RL_COLL_ALLTOALL), "all_to_all");
    cr_assert_str_eq(rl_coll_name(RL_COLL_SCATTER), "scatter");
    cr_assert_str_eq(rl_coll_name(RL_COLL_COUNT), "?");
}

Test(wire, p2p_immediates)
{
    rl_p2p_imm_t d;
    uint32_t imm = rl_imm_p2p_encode(RL_P2P_CTS, RL_P2P_USER, 777, 0x123);
    cr_assert(rl_imm_is_p2p(imm));
    cr_assert_eq(rl_imm_p2p_decode(imm, 778, &d), RL_OK);
    cr_assert(d.kind == RL_P2P_CTS && d.space == RL_P2P_USER && d.rank == 777 && d.tag == 3);
    cr_assert_eq(rl_imm_p2p_decode(imm, 777, &d), RL_ERR_PROTOCOL, "rank outside the group");
    imm = rl_imm_p2p_encode(RL_P2P_DATA, RL_P2P_COLL, 5, 9);
    cr_assert_eq(rl_imm_p2p_decode(imm, 6, &d), RL_OK);
    cr_assert(d.kind == RL_P2P_DATA && d.space == RL_P2P_COLL && d.rank == 5 && d.tag == 9);
    cr_assert_eq(rl_imm_p2p_decode(imm & ~(3u << 30), 1000, &d), RL_ERR_PROTOCOL, "wrong imm kind");
    imm = rl_imm_p2p_encode(RL_P2P_EAGER, 1, RL_IMM_P2P_RANK_MAX, 17);
    cr_assert_eq(rl_imm_p2p_decode(imm, RL_IMM_P2P_RANK_MAX + 1, &d), RL_OK);
    cr_assert(d.kind == RL_P2P_EAGER && d.space == 1 && d.rank == RL_IMM_P2P_RANK_MAX && d.tag == 1);
    cr_assert_eq(rl_imm_p2p_decode(imm | 3u << 5, RL_IMM_P2P_RANK_MAX + 1, &d), RL_ERR_PROTOCOL,
                 "p2p kind 3 does not exist");
    /* ring immediates never look like point-to-point ones */
    cr_assert(!rl_imm_is_p2p(rl_imm_encode(RL_IMM_STAGE, RL_MAX_CHANNELS - 1, 5, 7)));
    cr_assert_eq(rl_imm_p2p_decode(rl_imm_encode(RL_IMM_CTRL, 3, 5, 1), 8, &d), RL_ERR_PROTOCOL);
}
