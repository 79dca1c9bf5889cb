/*
 * libFuzzer target: the receive side of the ring data path. A communicator
 * with a running all-reduce or all-gather is built in memory (no transport:
 * immediates are all a peer controls on the receive side), then the input's
 * immediates are handed to rl_ring_handle_imm as if they had arrived. A
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

/* The same geometry ring.c gives an operation (set_geometry). */
static void geometry(struct rl_comm *c, struct rl_request *r, int chi)
{
    rl_opch_t *o = &r->ch[chi];
    int n = c->nranks, ar = r->coll == RL_COLL_ALL_REDUCE;
    uint64_t lo, len;
    rl_split(r->count, (uint64_t)c->nch, (uint64_t)chi, &lo, &len);
    o->g.nranks = n;
    o->g.lo = lo;
    o->g.len = len;
    o->g.steps = ar ? 2 * (uint64_t)(n - 1) : (uint64_t)(n - 1);
    uint64_t maxblk = ar ? (len + (uint64_t)n - 1) / (uint64_t)n : len;
    o->empty = maxblk == 0;
    o->g.nchunks = rl_geom_nchunks_min(maxblk, r->esize, c->chunk_bytes, (uint64_t)c->depth, c->min_chunk_bytes,
                                       o->g.steps, RL_IMM_INDEX_MAX);
    o->g.units = o->empty ? 1 : o->g.steps * o->g.nchunks;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t size)
{
    if (size < 8)
        return 0;
    static struct rl_comm c;
    static struct rl_request r;
    int order[8];
    memset(&c, 0, sizeof(c));
    memset(&r, 0, sizeof(r));
    c.nranks = 2 + d[0] % 4;
    c.rank = d[1] % c.nranks;
    c.nch = 1 + d[2] % 3;
    c.depth = 1 + d[3] % 4;
    c.chunk_bytes = 4096;
    c.min_chunk_bytes = 256;
    for (int i = 0; i < c.nranks; i++)
        order[i] = i;
    c.order = order;
    r.comm = &c;
    r.coll = (d[4] & 1) ? RL_COLL_ALL_GATHER : RL_COLL_ALL_REDUCE;
    r.count = (size_t)d[5] * 37;
    r.dtype = RL_FLOAT32;
    r.esize = 4;
    r.seq = d[6];
    r.status = RL_INPROGRESS;
    r.started = 1;
    c.head = c.tail = &r;
    for (int i = 0; i < c.nch; i++) {
        rl_chan_t *ch = &c.ch[i];
        ch->id = i;
        ch->pos = c.rank;
        ch->prev = (c.rank + c.nranks - 1) % c.nranks;
        ch->next = (c.rank + 1) % c.nranks;
        ch->credits = d[7] % (c.depth + 1);
        ch->slot_full = calloc((size_t)c.depth, 1);
        geometry(&c, &r, i);
        /* exact-size arrays: ASan reports any index past them */
        r.ch[i].arrived = calloc(r.ch[i].g.units, 1);
    }
    for (size_t off = 8; off + 4 <= size && c.failed == RL_OK; off += 4) {
        uint32_t imm = (uint32_t)d[off] | (uint32_t)d[off + 1] << 8 | (uint32_t)d[off + 2] << 16 |
                       (uint32_t)d[off + 3] << 24;
        rl_ring_handle_imm(&c, imm);
        for (int i = 0; i < c.nch; i++)
            if (c.ch[i].credits < 0 || c.ch[i].credits > c.depth)
                abort();
    }
    for (int i = 0; i < c.nch; i++) {
        free(c.ch[i].slot_full);
        free(r.ch[i].arrived); /* NULL once rl_comm_fail released the request */
    }
    return 0;
}
