/*
 * Pipelined ring all-reduce (reduce-scatter then all-gather) and ring
 * all-gather over the transport table.
 *
 * An operation on one channel is a sequence of units: ring step s, chunk k,
 * unit u = s * nchunks + k. Sending unit u needs unit u - nchunks received
 * (the data it forwards), so chunks flow round the ring in a pipeline.
 * Reduce-scatter units land in the receiver's staging slots (a credit per
 * slot keeps a sender from overwriting one still in use); all-gather units
 * are written straight into the receiver's output buffer, whose address it
 * announced in its control record. Nobody sends data for an operation before
 * the receiver's control record for it arrived, which also checks that both
 * ranks called the same operation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/comm.h"
#include "core/log.h"

enum { CTX_DATA = 1, CTX_CTRL = 2, CTX_CREDIT = 3 };

static void *mkctx(int kind, int ch) { return (void *)(uintptr_t)((unsigned)kind << 8 | (unsigned)ch); }

static int is_chain(const struct rl_request *r) { return r->coll == RL_COLL_BROADCAST || r->coll == RL_COLL_REDUCE; }
/* All-reduce and barrier share one algorithm. */
static int is_ar(const struct rl_request *r) { return r->coll == RL_COLL_ALL_REDUCE || r->coll == RL_COLL_BARRIER; }
static int reduces(const struct rl_request *r) { return r->fn != NULL; }

static uint64_t mod(int64_t a, int n) { return (uint64_t)(((a % n) + n) % n); }

/* Bytes a peer may write straight into this rank's output. */
static size_t direct_bytes(const struct rl_comm *c, const struct rl_request *r)
{
    switch (r->coll) {
    case RL_COLL_ALL_REDUCE:
    case RL_COLL_BARRIER:
    case RL_COLL_BROADCAST: return r->count * r->esize;
    case RL_COLL_ALL_GATHER: return r->count * r->esize * (size_t)c->nranks;
    default: return 0; /* reduce-scatter and reduce go through staging */
    }
}

/* One unit of an operation on one channel, seen from the sender (src,
 * peer_off) or the receiver (dst = in (op) staging slot). */
typedef struct {
    uint64_t len;      /* elements; 0: nothing moves */
    int token;         /* a zero-length write that only signals */
    int staged;        /* through the receiver's staging slots */
    const char *src;   /* send */
    rl_tp_mr_t *smr;
    uint64_t peer_off; /* send, direct: byte offset into the receiver's output */
    char *dst;         /* receive, staged */
    const char *in;
    int last;          /* receive: the reduction is complete (avg scales it) */
} unit_t;

static rl_tp_mr_t *mr_of(rl_regent_t *e) { return e ? e->mr : NULL; }

/* Ring all-reduce: reduce-scatter steps 0..n-2 through staging, then
 * all-gather steps written straight into the receiver's output. */
static void unit_allreduce(struct rl_comm *c, struct rl_request *r, rl_opch_t *o, rl_chan_t *ch, uint64_t s,
                           uint64_t k, int send, unit_t *u)
{
    int n = c->nranks, p = ch->pos;
    int64_t bpos;
    if (s < (uint64_t)(n - 1)) {
        bpos = send ? p - (int64_t)s : p - (int64_t)s - 1;
        u->staged = 1;
        u->last = !send && s == (uint64_t)(n - 2);
    } else {
        int64_t t = (int64_t)s - (n - 1);
        bpos = send ? p + 1 - t : p - t;
    }
    uint64_t boff, blen, coff;
    rl_split(o->g.len, (uint64_t)n, mod(bpos, n), &boff, &blen);
    rl_split(blen, o->g.nchunks, k, &coff, &u->len);
    uint64_t off = (o->g.lo + boff + coff) * r->esize;
    int from_input = send && s == 0;
    u->src = (from_input ? r->in : r->out) + off;
    u->smr = mr_of(from_input ? r->in_reg : r->out_reg);
    u->peer_off = off;
    u->dst = r->out + off;
    u->in = r->in + off;
}

/* Ring all-gather: block of the rank at ring position p - s goes out at step
 * s, straight into the receiver's output. */
static void unit_allgather(struct rl_comm *c, struct rl_request *r, rl_opch_t *o, rl_chan_t *ch, uint64_t s,
                           uint64_t k, int send, unit_t *u)
{
    int n = c->nranks;
    int owner = c->order[mod(send ? ch->pos - (int64_t)s : ch->pos - (int64_t)s - 1, n)];
    uint64_t coff;
    rl_split(o->g.len, o->g.nchunks, k, &coff, &u->len);
    uint64_t off = ((uint64_t)owner * r->count + o->g.lo + coff) * r->esize;
    int from_input = send && s == 0;
    u->src = from_input ? r->in + (o->g.lo + coff) * r->esize : r->out + off;
    u->smr = mr_of(from_input ? r->in_reg : r->out_reg);
    u->peer_off = off;
}

/* Ring reduce-scatter: at step s a rank sends its partial sum of the block
 * owned by ring position p - s - 1, so that after n - 1 steps it holds the
 * full reduction of its own block. Partial sums live in scratch. */
static void unit_reducescatter(struct rl_comm *c, struct rl_request *r, rl_opch_t *o, rl_chan_t *ch, uint64_t s,
                               uint64_t k, int send, unit_t *u)
{
    int n = c->nranks;
    int owner = c->order[mod(send ? ch->pos - (int64_t)s - 1 : ch->pos - (int64_t)s - 2, n)];
    uint64_t coff;
    rl_split(o->g.len, o->g.nchunks, k, &coff, &u->len);
    uint64_t off = ((uint64_t)owner * r->count + o->g.lo + coff) * r->esize;
    u->staged = 1;
    if (send) {
        u->src = (s == 0 ? r->in : c->scratch) + off;
        u->smr = mr_of(s == 0 ? r->in_reg : c->scratch_ent);
        return;
    }
    u->last = s == (uint64_t)(n - 2);
    u->dst = u->last ? r->out + (o->g.lo + coff) * r->esize : c->scratch + off;
    u->in = r->in + off;
}

/* Broadcast and reduce run along the ring as a chain: cpos 0 starts it,
 * cpos n-1 ends it and then sends a zero-length token back to cpos 0 (its
 * ring successor), so no rank runs more than one operation ahead of the
 * ranks whose mailboxes it writes. Unit k is chunk k. */
static void unit_chain(struct rl_comm *c, struct rl_request *r, rl_opch_t *o, uint64_t k, int send, unit_t *u)
{
    int n = c->nranks, first = r->cpos == 0, last = r->cpos == n - 1;
    if ((send && last) || (!send && first)) {
        u->token = 1;
        return;
    }
    uint64_t coff;
    rl_split(o->g.len, o->g.nchunks, k, &coff, &u->len);
    uint64_t off = (o->g.lo + coff) * r->esize;
    if (r->coll == RL_COLL_BROADCAST) {
        u->src = (first ? r->in : r->out) + off;
        u->smr = mr_of(first ? r->in_reg : r->out_reg);
        u->peer_off = off;
        return;
    }
    u->staged = 1;
    u->src = (first ? r->in : c->scratch) + off;
    u->smr = mr_of(first ? r->in_reg : c->scratch_ent);
    u->last = last;
    u->dst = (last ? r->out : c->scratch) + off;
    u->in = r->in + off;
}

static void unit_geom(struct rl_comm *c, struct rl_request *r, rl_opch_t *o, rl_chan_t *ch, uint64_t u, int send,
                      unit_t *out)
{
    memset(out, 0, sizeof(*out));
    uint64_t nc = o->g.nchunks, s = u / nc, k = u % nc;
    if (is_chain(r))
        unit_chain(c, r, o, u, send, out);
    else if (is_ar(r))
        unit_allreduce(c, r, o, ch, s, k, send, out);
    else if (r->coll == RL_COLL_ALL_GATHER)
        unit_allgather(c, r, o, ch, s, k, send, out);
    else
        unit_reducescatter(c, r, o, ch, s, k, send, out);
}

/* Before sending unit u, the units it forwards must have been received. */
static uint64_t recv_needed(const struct rl_request *r, const rl_opch_t *o, uint64_t u)
{
    if (is_chain(r))
        return r->cpos == 0 ? 0 : (u < o->nrecv ? u + 1 : o->nrecv);
    return u >= o->g.nchunks ? u - o->g.nchunks + 1 : 0;
}

static void set_geometry(struct rl_comm *c, struct rl_request *r, int chi)
{
    rl_opch_t *o = &r->ch[chi];
    int n = c->nranks;
    uint64_t lo, len;
    rl_split(r->count, (uint64_t)c->nch, (uint64_t)chi, &lo, &len);
    o->g.nranks = n;
    o->g.lo = lo;
    o->g.len = len;
    uint64_t maxblk = len, min_chunks = (uint64_t)c->depth;
    if (is_ar(r)) {
        o->g.steps = 2 * (uint64_t)(n - 1);
        maxblk = (len + (uint64_t)n - 1) / (uint64_t)n;
    } else if (is_chain(r)) {
        /* a chain fills in n - 1 hops: more, smaller chunks shorten that */
        o->g.steps = 1;
        min_chunks = (uint64_t)c->depth + (uint64_t)n;
    } else {
        o->g.steps = (uint64_t)(n - 1);
    }
    o->empty = maxblk == 0;
    o->g.nchunks = rl_geom_nchunks_min(maxblk, r->esize, c->chunk_bytes, min_chunks, c->min_chunk_bytes,
                                       o->g.steps, RL_IMM_INDEX_MAX);
    o->g.units = o->empty ? 1 : o->g.steps * o->g.nchunks;
    o->nsend = o->nrecv = o->g.units;
    if (is_chain(r) && !o->empty) {
        o->nsend = r->cpos == n - 1 ? 1 : o->g.nchunks;
        o->nrecv = r->cpos == 0 ? 1 : o->g.nchunks;
    }
}

static rl_status_t post_ctrl(struct rl_comm *c, struct rl_request *r, int chi)
{
    rl_chan_t *ch = &c->ch[chi];
    rl_ctrl_t rec = {
        .seq = r->seq, .coll = r->coll, .dtype = r->dtype, .op = r->op, .rank = c->rank, .root = r->root,
        .count = r->count,
    };
    size_t outlen = direct_bytes(c, r);
    if (r->out_reg && outlen) {
        rl_rkey_t rk;
        c->ops->mr_remote(r->out_reg->mr, r->out, &rk);
        rec.out_addr = rk.addr;
        rec.out_key = rk.key;
        rec.out_len = outlen;
    }
    unsigned slot = (unsigned)(r->seq % RL_MBOX_SLOTS);
    uint8_t *buf = ch->ctrl_tx + slot * RL_CTRL_WIRE_SIZE;
    rl_ctrl_encode(&rec, buf);
    uint32_t imm = rl_imm_encode(RL_IMM_CTRL, (unsigned)chi, r->seq, slot);
    rl_status_t st = c->ops->write_imm(ch->to_prev, buf, RL_CTRL_WIRE_SIZE, ch->ctrl_tx_mr,
                                       ch->prev_mbox.addr + slot * RL_CTRL_WIRE_SIZE, ch->prev_mbox.key, imm,
                                       mkctx(CTX_CTRL, chi));
    if (st == RL_OK) {
        r->ch[chi].ctrl_sent = 1;
        r->ch[chi].inflight++;
    }
    return st;
}

static void describe_call(char *buf, size_t len, int rank, uint32_t coll, uint64_t count, uint32_t dtype,
                          uint32_t op, int root)
{
    int pos = snprintf(buf, len, "rank %d called %s(count=%llu, %s", rank, rl_coll_name(coll),
                       (unsigned long long)count, rl_dtype_name((rl_dtype_t)dtype));
    if (pos < 0 || (size_t)pos >= len)
        return;
    if (coll == RL_COLL_ALL_REDUCE || coll == RL_COLL_REDUCE_SCATTER || coll == RL_COLL_REDUCE)
        pos += snprintf(buf + pos, len - (size_t)pos, ", %s", rl_op_name((rl_op_t)op));
    if ((size_t)pos < len && (coll == RL_COLL_BROADCAST || coll == RL_COLL_REDUCE))
        pos += snprintf(buf + pos, len - (size_t)pos, ", root %d", root);
    if ((size_t)pos < len)
        snprintf(buf + pos, len - (size_t)pos, ")");
}

/* Take next's control record for this operation out of the mailbox and
 * check that it called the same operation. */
static rl_status_t take_peer_ctrl(struct rl_comm *c, struct rl_request *r, int chi)
{
    rl_chan_t *ch = &c->ch[chi];
    unsigned slot = (unsigned)(r->seq % RL_MBOX_SLOTS);
    if (!ch->mbox_full[slot])
        return RL_INPROGRESS;
    rl_ctrl_t rec;
    if (rl_ctrl_decode(ch->mbox + slot * RL_CTRL_WIRE_SIZE, c->nranks, &rec) != RL_OK ||
        rec.rank != ch->next || rec.seq != r->seq) {
        rl_comm_fail(c, RL_ERR_PROTOCOL, "rank %d: malformed control record from rank %d for operation %llu",
                     c->rank, ch->next, (unsigned long long)r->seq);
        return RL_ERR_PROTOCOL;
    }
    ch->mbox_full[slot] = 0;
    if (rec.coll != (uint32_t)r->coll || rec.count != r->count || rec.dtype != (uint32_t)r->dtype ||
        (reduces(r) && rec.op != (uint32_t)r->op) || (is_chain(r) && rec.root != r->root)) {
        char mine[160], theirs[160];
        describe_call(mine, sizeof(mine), c->rank, r->coll, r->count, r->dtype, r->op, r->root);
        describe_call(theirs, sizeof(theirs), rec.rank, rec.coll, rec.count, rec.dtype, rec.op, rec.root);
        rl_comm_fail(c, RL_ERR_MISMATCH, "operation %llu differs between ranks: %s, %s", (unsigned long long)r->seq,
                     mine, theirs);
        return RL_ERR_MISMATCH;
    }
    /* only a rank that writes into next's output needs its size */
    int writes = !is_chain(r) || (r->coll == RL_COLL_BROADCAST && r->cpos < c->nranks - 1);
    size_t need = writes ? direct_bytes(c, r) : 0;
    if (need && rec.out_len < need) {
        rl_comm_fail(c, RL_ERR_PROTOCOL, "rank %d announced an output buffer of %llu bytes, %zu needed",
                     rec.rank, (unsigned long long)rec.out_len, need);
        return RL_ERR_PROTOCOL;
    }
    r->ch[chi].peer = rec;
    r->ch[chi].have_peer = 1;
    return RL_OK;
}

static void send_credits(struct rl_comm *c, rl_chan_t *ch)
{
    while (ch->credit_owed > 0) {
        uint32_t imm = rl_imm_encode(RL_IMM_CREDIT, (unsigned)ch->id, 0, (uint32_t)ch->credit_owed);
        rl_status_t st = c->ops->write_imm(ch->to_prev, NULL, 0, NULL, ch->prev_mbox.addr, ch->prev_mbox.key, imm,
                                           mkctx(CTX_CREDIT, ch->id));
        if (st == RL_ERR_AGAIN)
            return;
        if (st != RL_OK) {
            rl_comm_fail(c, st, "rank %d: returning credits to rank %d failed: %s", c->rank, ch->prev,
                         c->ops->last_error(c->tp));
            return;
        }
        ch->ctl_inflight++;
        ch->credit_owed = 0;
    }
}

/* Process received units in order. Returns nonzero if anything moved. */
static int recv_units(struct rl_comm *c, struct rl_request *r, int chi)
{
    rl_chan_t *ch = &c->ch[chi];
    rl_opch_t *o = &r->ch[chi];
    int moved = 0;
    while (o->recvd < o->nrecv) {
        unit_t u;
        if (o->empty)
            u = (unit_t){.token = 1};
        else
            unit_geom(c, r, o, ch, o->recvd, 0, &u);
        if (u.len && u.staged) {
            unsigned slot = (unsigned)(ch->rx_chunks % (uint64_t)c->depth);
            if (!ch->slot_full[slot])
                break;
            r->fn(u.dst, u.in, ch->stage + (size_t)slot * c->chunk_bytes, u.len);
            if (u.last && r->op == RL_AVG)
                rl_reduce_scale(u.dst, u.len, r->dtype, c->nranks);
            ch->slot_full[slot] = 0;
            ch->rx_chunks++;
            ch->credit_owed++;
        } else if ((u.len || u.token) && !o->arrived[o->recvd]) {
            break;
        }
        o->recvd++;
        moved = 1;
        if (o->step_ns && o->recvd % o->g.nchunks == 0)
            o->step_ns[o->recvd / o->g.nchunks - 1] = rl_now_ns();
    }
    /* Credits go back in batches of half the slots: fewer tiny writes,
     * and the sender never holds fewer than depth/2 free slots. */
    if (ch->credit_owed >= (c->depth + 1) / 2)
        send_credits(c, ch);
    return moved;
}

static int send_units(struct rl_comm *c, struct rl_request *r, int chi)
{
    rl_chan_t *ch = &c->ch[chi];
    rl_opch_t *o = &r->ch[chi];
    int moved = 0, cap = 2 * c->depth;
    while (o->sent < o->nsend && o->inflight < cap) {
        unit_t u;
        if (o->empty)
            u = (unit_t){.token = 1};
        else
            unit_geom(c, r, o, ch, o->sent, 1, &u);
        /* a token closes the chain: it goes once everything arrived */
        uint64_t need = u.token && !o->empty ? o->nrecv : recv_needed(r, o, o->sent);
        if (o->recvd < need)
            break; /* the data to forward has not arrived yet */
        if (u.len == 0 && !u.token) {
            o->sent++;
            continue;
        }
        size_t bytes = u.len * r->esize;
        uint64_t raddr, rkey;
        uint32_t imm;
        if (u.staged) {
            if (ch->credits == 0)
                break;
            unsigned slot = (unsigned)(ch->tx_chunks % (uint64_t)c->depth);
            raddr = ch->next_stage.addr + (uint64_t)slot * c->chunk_bytes;
            rkey = ch->next_stage.key;
            imm = rl_imm_encode(RL_IMM_STAGE, (unsigned)chi, r->seq, slot);
        } else if (u.token) {
            raddr = ch->next_stage.addr;
            rkey = ch->next_stage.key;
            imm = rl_imm_encode(RL_IMM_DIRECT, (unsigned)chi, r->seq, 0);
        } else {
            raddr = o->peer.out_addr + u.peer_off;
            rkey = o->peer.out_key;
            imm = rl_imm_encode(RL_IMM_DIRECT, (unsigned)chi, r->seq, (uint32_t)o->sent);
        }
        rl_status_t st = c->ops->write_imm(ch->to_next, u.token ? NULL : u.src, bytes, u.token ? NULL : u.smr, raddr,
                                           rkey, imm, mkctx(CTX_DATA, chi));
        if (st == RL_ERR_AGAIN)
            break;
        if (st != RL_OK) {
            rl_comm_fail(c, st, "rank %d: write to rank %d failed: %s", c->rank, ch->next,
                         c->ops->last_error(c->tp));
            break;
        }
        if (u.staged) {
            ch->credits--;
            ch->tx_chunks++;
        }
        o->inflight++;
        o->sent++;
        moved = 1;
    }
    return moved;
}

/* Scratch for partial results: grown between operations, never exposed. */
rl_status_t rl_ring_scratch(struct rl_comm *c, size_t len)
{
    if (len <= c->scratch_len)
        return RL_OK;
    if (c->scratch_ent) {
        c->ops->mr_dereg(c->scratch_ent->mr);
        free(c->scratch_ent);
        c->scratch_ent = NULL;
    }
    free(c->scratch);
    c->scratch_len = 0;
    len = (len + 4095) & ~(size_t)4095;
    void *p = NULL;
    rl_regent_t *e = calloc(1, sizeof(*e));
    if (!e || posix_memalign(&p, 4096, len)) {
        free(e);
        c->scratch = NULL;
        return RL_ERR_NO_MEMORY;
    }
    c->scratch = p;
    /* peers write into it too: halving-doubling receives its halves here */
    unsigned access = RL_ACCESS_LOCAL | RL_ACCESS_REMOTE_WRITE;
    rl_status_t st = c->ops->mr_reg(c->tp, p, len, access, &e->mr);
    if (st != RL_OK) {
        free(e);
        return st;
    }
    e->base = p;
    e->len = len;
    e->access = access;
    e->pinned = 1; /* owned by the communicator, not by the cache */
    c->scratch_ent = e;
    c->scratch_len = len;
    return RL_OK;
}

static rl_status_t barrier_buffer(struct rl_comm *c, struct rl_request *r)
{
    if (!c->bar_ent) {
        rl_regent_t *e = calloc(1, sizeof(*e));
        void *p = NULL;
        if (!e || posix_memalign(&p, 4096, 4096)) {
            free(e);
            return RL_ERR_NO_MEMORY;
        }
        memset(p, 0, 4096);
        rl_status_t st = c->ops->mr_reg(c->tp, p, 4096, RL_ACCESS_LOCAL | RL_ACCESS_REMOTE_WRITE, &e->mr);
        if (st != RL_OK) {
            free(p);
            free(e);
            return st;
        }
        e->base = p;
        e->len = 4096;
        e->pinned = 1;
        c->bar_ent = e;
    }
    r->in = r->out = c->bar_ent->base;
    r->in_reg = r->out_reg = c->bar_ent;
    c->bar_ent->refs += 2;
    return RL_OK;
}

void rl_ring_free_buffers(struct rl_comm *c)
{
    rl_regent_t *ents[2] = {c->scratch_ent, c->bar_ent};
    for (int i = 0; i < 2; i++) {
        if (!ents[i])
            continue;
        c->ops->mr_dereg(ents[i]->mr);
        free(ents[i]->base);
        free(ents[i]);
    }
    if (!c->scratch_ent)
        free(c->scratch);
    c->scratch = NULL;
    c->scratch_ent = c->bar_ent = NULL;
    c->scratch_len = 0;
}

/* Bytes of input and output, and the access each side needs. */
static void buffer_needs(const struct rl_comm *c, const struct rl_request *r, size_t *inb, size_t *outb,
                         unsigned *out_access, size_t *scratch)
{
    size_t blk = r->count * r->esize, n = (size_t)c->nranks;
    int root = r->root == c->rank;
    *inb = blk;
    *outb = blk;
    *out_access = RL_ACCESS_LOCAL | RL_ACCESS_REMOTE_WRITE;
    *scratch = 0;
    switch (r->coll) {
    case RL_COLL_ALL_GATHER: *outb = blk * n; break;
    case RL_COLL_REDUCE_SCATTER:
        *inb = blk * n;
        *out_access = 0; /* written locally at the last step, never sent */
        *scratch = blk * n;
        break;
    case RL_COLL_BROADCAST:
        if (root) {
            *out_access = 0;
        } else {
            *inb = 0;
        }
        break;
    case RL_COLL_REDUCE:
        if (root)
            *out_access = 0;
        else
            *outb = 0, *scratch = blk;
        break;
    default: break;
    }
}

static rl_status_t start(struct rl_comm *c, struct rl_request *r)
{
    if (r->coll == RL_COLL_BARRIER && c->nranks > 1) {
        rl_status_t st = barrier_buffer(c, r);
        if (st != RL_OK)
            return st;
        memset(r->out, 0, r->esize); /* the sum stays n: no overflow */
    }
    size_t inb, outb, scratch;
    unsigned out_access;
    buffer_needs(c, r, &inb, &outb, &out_access, &scratch);
    int root = r->root == c->rank;
    /* The output already holding this rank's own data before data moves. */
    const char *own = NULL;
    char *own_dst = NULL;
    if (r->coll == RL_COLL_ALL_GATHER) {
        own = r->in, own_dst = r->out + (size_t)c->rank * inb;
    } else if (r->coll == RL_COLL_BROADCAST && root) {
        own = r->in, own_dst = r->out;
    }
    if (c->nranks == 1) {
        /* nothing to exchange: every collective copies its input; avg over
         * one rank is the value */
        if (r->coll != RL_COLL_BARRIER && r->in != r->out && r->count)
            memmove(r->out, r->in, r->count * r->esize);
        return RL_OK;
    }
    if (own && own != own_dst && r->count)
        memcpy(own_dst, own, r->count * r->esize);
    rl_status_t st;
    if (r->coll != RL_COLL_BARRIER && r->count) {
        if (inb && (st = rl_reg_acquire(c, r->in, inb, RL_ACCESS_LOCAL, &r->in_reg)) != RL_OK)
            return st;
        if (outb && out_access && (st = rl_reg_acquire(c, r->out, outb, out_access, &r->out_reg)) != RL_OK)
            return st;
        if (scratch && (st = rl_ring_scratch(c, scratch)) != RL_OK)
            return st;
    }
    if (is_chain(r)) {
        int proot = 0;
        for (int i = 0; i < c->nranks; i++)
            if (c->order[i] == r->root)
                proot = i;
        int shift = r->coll == RL_COLL_REDUCE ? 1 : 0;
        r->cpos = (int)mod((int64_t)c->ch[0].pos - proot - shift, c->nranks);
    }
    for (int i = 0; i < c->nch; i++) {
        set_geometry(c, r, i);
        uint64_t slots = r->ch[i].nrecv > r->ch[i].nsend ? r->ch[i].nrecv : r->ch[i].nsend;
        r->ch[i].arrived = calloc(slots ? slots : 1, 1);
        if (!r->ch[i].arrived)
            return RL_ERR_NO_MEMORY;
        /* per-step times feed the cost model (latency + size/bandwidth
         * per step); kept only when someone reads them */
        if (i == 0 && rl_log_level_cur >= RL_LOG_DEBUG && !is_chain(r) && !r->ch[i].empty)
            r->ch[i].step_ns = calloc(r->ch[i].g.steps, sizeof(int64_t));
    }
    return RL_INPROGRESS;
}

/* Debug log: the operation's time and how long each ring step took here
 * (channel 0), so per-step latency and bandwidth can be fitted. */
static void log_steps(struct rl_comm *c, struct rl_request *r)
{
    rl_opch_t *o = &r->ch[0];
    if (!o->step_ns)
        return;
    char buf[512];
    int pos = 0;
    int64_t prev = r->start_ns;
    for (uint64_t s = 0; s < o->g.steps && pos < (int)sizeof(buf) - 16; s++) {
        pos += snprintf(buf + pos, sizeof(buf) - (size_t)pos, "%s%.1f", s ? " " : "",
                        (double)(o->step_ns[s] - prev) / 1e3);
        prev = o->step_ns[s];
    }
    RL_DEBUG("%s #%llu: %zu elements of %s, %d ranks, %d channel(s), %llu chunks/step: %.1f us; step times (us, "
             "channel 0): %s",
             rl_coll_name(r->coll), (unsigned long long)r->seq, r->count, rl_dtype_name(r->dtype), c->nranks, c->nch,
             (unsigned long long)o->g.nchunks, (double)(rl_now_ns() - r->start_ns) / 1e3, buf);
}

/* A ring control record for operation r, which this rank runs by another
 * algorithm: the ranks called different operations. */
static void check_foreign_ctrl(struct rl_comm *c, const struct rl_request *r)
{
    if (!r || r->algo == RL_ALGO_RING)
        return;
    unsigned slot = (unsigned)(r->seq % RL_MBOX_SLOTS);
    for (int i = 0; i < c->nch && c->failed == RL_OK; i++) {
        rl_ctrl_t rec;
        if (!c->ch[i].mbox_full[slot] ||
            rl_ctrl_decode(c->ch[i].mbox + slot * RL_CTRL_WIRE_SIZE, c->nranks, &rec) != RL_OK || rec.seq != r->seq)
            continue;
        char mine[160], theirs[160];
        describe_call(mine, sizeof(mine), c->rank, r->coll, r->count, r->dtype, r->op, r->root);
        describe_call(theirs, sizeof(theirs), rec.rank, rec.coll, rec.count, rec.dtype, rec.op, rec.root);
        rl_comm_fail(c, RL_ERR_MISMATCH, "operation %llu differs between ranks: %s, %s", (unsigned long long)r->seq,
                     mine, theirs);
    }
}

int rl_allreduce_trivial(struct rl_comm *c, struct rl_request *r)
{
    if (c->nranks > 1 && r->count > 0)
        return 0;
    if (r->in != r->out && r->count)
        memmove(r->out, r->in, r->count * r->esize);
    r->status = RL_OK;
    return 1;
}

int rl_ring_advance(struct rl_comm *c, struct rl_request *r)
{
    if (!r->started) {
        rl_rd_check_foreign(c, r);
        check_foreign_ctrl(c, r);
        if (c->failed != RL_OK)
            return 1;
    }
    if (r->algo == RL_ALGO_RHD)
        return rl_rhd_advance(c, r);
    if (r->algo == RL_ALGO_RD)
        return rl_rd_advance(c, r);
    if (!r->started) {
        r->started = 1;
        r->last_progress = r->start_ns = rl_now_ns();
        rl_status_t st = start(c, r);
        if (st != RL_INPROGRESS) {
            if (st != RL_OK)
                rl_comm_fail(c, st, "rank %d: starting %s failed: %s", c->rank, rl_coll_name(r->coll),
                             c->ops ? c->ops->last_error(c->tp) : rl_strerror(st));
            else
                r->status = RL_OK;
            return 1;
        }
    }
    int all_done = 1, moved = 0;
    for (int i = 0; i < c->nch && c->failed == RL_OK; i++) {
        rl_opch_t *o = &r->ch[i];
        if (o->done)
            continue;
        if (!o->ctrl_sent) {
            rl_status_t st = post_ctrl(c, r, i);
            if (st != RL_OK && st != RL_ERR_AGAIN) {
                rl_comm_fail(c, st, "rank %d: sending the control record to rank %d failed: %s", c->rank,
                             c->ch[i].prev, c->ops->last_error(c->tp));
                break;
            }
            moved |= st == RL_OK;
        }
        if (!o->have_peer) {
            rl_status_t st = take_peer_ctrl(c, r, i);
            if (st != RL_OK) {
                all_done = 0;
                continue;
            }
            moved = 1;
        }
        moved |= recv_units(c, r, i);
        moved |= send_units(c, r, i);
        moved |= recv_units(c, r, i);
        if (o->ctrl_sent && o->sent == o->nsend && o->recvd == o->nrecv && o->inflight == 0)
            o->done = 1;
        else
            all_done = 0;
    }
    if (moved)
        r->last_progress = rl_now_ns();
    if (c->failed != RL_OK)
        return 1;
    if (all_done) {
        r->status = RL_OK;
        log_steps(c, r);
    }
    return all_done;
}

void rl_ring_release(struct rl_comm *c, struct rl_request *r)
{
    if (c && r->algo == RL_ALGO_RHD)
        rl_rhd_release(c, r);
    for (int i = 0; i < RL_MAX_CHANNELS; i++) {
        free(r->ch[i].arrived);
        free(r->ch[i].step_ns);
        r->ch[i].arrived = NULL;
        r->ch[i].step_ns = NULL;
    }
    if (c) {
        rl_reg_release(c, r->in_reg);
        rl_reg_release(c, r->out_reg);
    }
    r->in_reg = r->out_reg = NULL;
}

/* Whether unit `index` of the running operation may arrive as a direct
 * write (or token) on this channel. */
static int direct_ok(struct rl_comm *c, struct rl_request *r, rl_chan_t *ch, rl_opch_t *o, uint32_t index)
{
    if (!o->arrived || index >= o->nrecv || o->arrived[index])
        return 0;
    if (o->empty)
        return 1;
    unit_t u;
    unit_geom(c, r, o, ch, index, 0, &u);
    return u.token ? index == 0 : !u.staged && u.len > 0;
}

void rl_ring_handle_imm(struct rl_comm *c, uint32_t imm)
{
    rl_imm_t d;
    if (rl_imm_decode(imm, c->nch, &d) != RL_OK) {
        rl_comm_fail(c, RL_ERR_PROTOCOL, "rank %d: received an immediate 0x%08x for a channel that does not exist",
                     c->rank, imm);
        return;
    }
    rl_chan_t *ch = &c->ch[d.channel];
    struct rl_request *r = c->head;
    switch (d.kind) {
    case RL_IMM_CTRL:
        if (d.index >= RL_MBOX_SLOTS || ch->mbox_full[d.index])
            goto bad;
        ch->mbox_full[d.index] = 1;
        check_foreign_ctrl(c, r);
        return;
    case RL_IMM_CREDIT:
        if (d.index == 0 || ch->credits + (int)d.index > c->depth)
            goto bad;
        ch->credits += (int)d.index;
        return;
    case RL_IMM_STAGE:
        /* Only the running operation's data can arrive: the sender waited
         * for our control record, which we send when the operation starts. */
        if (!r || !r->started || d.tag != (r->seq & RL_IMM_TAG_MASK) || d.index >= (uint32_t)c->depth ||
            ch->slot_full[d.index] || !reduces(r))
            goto bad;
        ch->slot_full[d.index] = (uint8_t)(d.tag + 1);
        return;
    case RL_IMM_DIRECT:
        if (!r || !r->started || d.tag != (r->seq & RL_IMM_TAG_MASK) ||
            !direct_ok(c, r, ch, &r->ch[d.channel], d.index))
            goto bad;
        r->ch[d.channel].arrived[d.index] = 1;
        return;
    }
bad:
    rl_comm_fail(c, RL_ERR_PROTOCOL,
                 "rank %d: unexpected message from a ring neighbour on channel %u (kind %d, index %u, tag %u; "
                 "prev rank %d, next rank %d)",
                 c->rank, d.channel, (int)d.kind, d.index, d.tag, ch->prev, ch->next);
}

void rl_ring_send_done(struct rl_comm *c, void *ctx, rl_status_t st)
{
    unsigned v = (unsigned)(uintptr_t)ctx;
    int kind = (int)(v >> 8), chi = (int)(v & 0xff);
    if (chi >= c->nch || kind < CTX_DATA || kind > CTX_CREDIT) {
        rl_comm_fail(c, RL_ERR_INTERNAL, "rank %d: completion with an unknown context %p", c->rank, ctx);
        return;
    }
    rl_chan_t *ch = &c->ch[chi];
    if (st != RL_OK) {
        rl_comm_transport_failure(c, kind == CTX_CREDIT ? ch->prev : ch->next);
        return;
    }
    if (kind == CTX_CREDIT) {
        ch->ctl_inflight--;
        return;
    }
    if (c->head && c->head->ch[chi].inflight > 0)
        c->head->ch[chi].inflight--;
}

void rl_ring_describe_wait(struct rl_comm *c, struct rl_request *r, char *buf, size_t len)
{
    if (r->algo == RL_ALGO_RHD) {
        rl_rhd_describe_wait(c, r, buf, len);
        return;
    }
    if (r->algo == RL_ALGO_RD) {
        rl_rd_describe_wait(c, r, buf, len);
        return;
    }
    for (int i = 0; i < c->nch; i++) {
        rl_opch_t *o = &r->ch[i];
        rl_chan_t *ch = &c->ch[i];
        if (o->done)
            continue;
        const char *name = rl_coll_name(r->coll);
        if (!o->have_peer)
            snprintf(buf, len, "waiting for rank %d to start operation %llu (%s; its control record has not come)",
                     ch->next, (unsigned long long)r->seq, name);
        else if (o->recvd < o->nrecv)
            snprintf(buf, len, "waiting for data from rank %d: %s operation %llu, channel %d, unit %llu of %llu",
                     ch->prev, name, (unsigned long long)r->seq, i, (unsigned long long)o->recvd,
                     (unsigned long long)o->nrecv);
        else if (o->sent < o->nsend)
            snprintf(buf, len, "waiting for rank %d to free a staging slot (operation %llu, channel %d)", ch->next,
                     (unsigned long long)r->seq, i);
        else
            snprintf(buf, len, "waiting for rank %d to acknowledge %d writes (operation %llu, channel %d)",
                     ch->next, o->inflight, (unsigned long long)r->seq, i);
        return;
    }
    snprintf(buf, len, "operation %llu has not started", (unsigned long long)r->seq);
}
