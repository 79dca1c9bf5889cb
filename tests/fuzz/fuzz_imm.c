/*
 * libFuzzer target: the receive side of the ring data path. A communicator
 * with a running all-reduce or all-gather is built in memory (no transport:
 * immediates are all a peer controls on the receive side), then the input's
 * immediates are handed to the ring algorithm as if they had arrived. A
 * peer must never make it index outside the staging slots, mailboxes or
 * arrival map, or overflow the credit count; the first bad one fails the
 * communicator.
 *
 * Input: 8 bytes of shape (ranks, rank, channels, depth, collective,
 * count, seq, credits), then immediates, 4 bytes each.
 */
#include <stdlib.h>
#include <string.h>

#include "core/comm.h"
#include "core/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("RINGLET_LOG_LEVEL", "none", 1);
    rl_log_init();
    return 0;
}

struct rl_request *rl_ring_fuzz_begin(struct rl_comm *c, rl_coll_t coll, size_t count, uint64_t seq, int credits);
int rl_ring_fuzz_imm(struct rl_comm *c, uint32_t imm);
void rl_ring_fuzz_end(struct rl_comm *c, struct rl_request *r);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t size)
{
    if (size < 8)
        return 0;
    static struct rl_comm c;
    int order[8];
    memset(&c, 0, sizeof(c));
    c.nranks = 2 + d[0] % 4;
    c.rank = d[1] % c.nranks;
    c.nch = 1 + d[2] % 3;
    c.depth = 1 + d[3] % 4;
    c.chunk_bytes = 4096;
    c.min_chunk_bytes = 256;
    for (int i = 0; i < c.nranks; i++)
        order[i] = i;
    c.order = order;
    struct rl_request *r = rl_ring_fuzz_begin(&c, (d[4] & 1) ? RL_COLL_ALL_GATHER : RL_COLL_ALL_REDUCE,
                                              (size_t)d[5] * 37, d[6], d[7]);
    if (!r)
        abort();
    for (size_t off = 8; off + 4 <= size && c.failed == RL_OK; off += 4) {
        uint32_t imm = (uint32_t)d[off] | (uint32_t)d[off + 1] << 8 | (uint32_t)d[off + 2] << 16 |
                       (uint32_t)d[off + 3] << 24;
        if (!rl_ring_fuzz_imm(&c, imm))
            abort();
    }
    rl_ring_fuzz_end(&c, r);
    return 0;
}
