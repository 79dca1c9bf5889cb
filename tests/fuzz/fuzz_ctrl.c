/* libFuzzer target: control record decode (64 bytes from a ring neighbour). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coll/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size != RL_CTRL_WIRE_SIZE + 1)
        return 0;
    int nranks = 1 + data[0] % 128;
    uint8_t in[RL_CTRL_WIRE_SIZE], again[RL_CTRL_WIRE_SIZE];
    memcpy(in, data + 1, sizeof(in));
    rl_ctrl_t c;
    if (rl_ctrl_decode(in, nranks, &c) != RL_OK)
        return 0;
    /* Accepted means in range, and nothing the encoder would not write; a
     * clear-to-send record has a tag and no op, any other no tag. */
    if (c.rank < 0 || c.rank >= nranks || c.coll < 1 || c.coll > RL_COLL_MAX || c.dtype >= RL_DTYPE_COUNT ||
        c.op >= RL_OP_COUNT || c.out_addr + c.out_len < c.out_addr ||
        (c.coll == RL_COLL_SENDRECV ? c.op != 0 : c.tag != 0))
        abort();
    rl_ctrl_encode(&c, again);
    if (memcmp(in, again, sizeof(in)))
        abort();
    return 0;
}
