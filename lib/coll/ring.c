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

static int is_allreduce(const struct rl_request *r) { return r->coll == RL_COLL_ALL_REDUCE; }

static const char *coll_name(uint32_t coll)
{
    return coll == RL_COLL_ALL_REDUCE ? "all_reduce" : coll == RL_COLL_ALL_GATHER ? "all_gather" : "?";
}

static uint64_t mod(int64_t a, int n) { return (uint64_t)(((a % n) + n) % n); }

/* Where unit u's chunk lives, as an element offset into the output (and
 * input, for all-reduce) and a length. send: the block this rank sends. */
typedef struct {
    uint64_t off, len;
    int from_input; /* the first step sends straight from the input */
    int staged;     /* reduce-scatter unit: goes through staging slots */
    int last_rs;    /* final reduce-scatter step: the block is complete */
} unit_t;

static void unit_geom(struct rl_comm *c, struct rl_request *r, rl_opch_t *o, rl_chan_t *ch, uint64_t u,
                      int send, unit_t *out)
{
    int n = c->nranks, p = ch->pos;
    uint64_t nc = o->g.nchunks, s = u / nc, k = u % nc;
    uint64_t boff, blen, coff, clen;
    memset(out, 0, sizeof(*out));
    if (is_allreduce(r)) {
        int64_t bpos;
        if (s < (uint64_t)(n - 1)) {
            bpos = send ? p - (int64_t)s : p - (int64_t)s - 1;
            out->staged = 1;
            out->last_rs = !send && s == (uint64_t)(n - 2);
            out->from_input = send && s == 0;
        } else {
            int64_t t = (int64_t)s - (n - 1);
            bpos = send ? p + 1 - t : p - t;
        }
        rl_split(o->g.len, (uint64_t)n, mod(bpos, n), &boff, &blen);
        rl_split(blen, nc, k, &coff, &clen);
        out->off = o->g.lo + boff + coff;
    } else {
        int64_t bpos = send ? p - (int64_t)s : p - (int64_t)s - 1;
        int owner = c->order[mod(bpos, n)];
        rl_split(o->g.len, nc, k, &coff, &clen);
        out->from_input = send && s == 0;
        out->off = (uint64_t)owner * r->count + o->g.lo + coff;
        if (out->from_input)
            out->off = o->g.lo + coff; /* offset into the input block */
    }
    out->len = clen;
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
    o->g.steps = is_allreduce(r) ? 2 * (uint64_t)(n - 1) : (uint64_t)(n - 1);
    uint64_t maxblk = is_allreduce(r) ? (len + (uint64_t)n - 1) / (uint64_t)n : len;
    o->empty = maxblk == 0;
    o->g.nchunks = rl_geom_nchunks_min(maxblk, r->esize, c->chunk_bytes, (uint64_t)c->depth, c->min_chunk_bytes,
                                       o->g.steps, RL_IMM_INDEX_MAX);
    o->g.units = o->empty ? 1 : o->g.steps * o->g.nchunks;
}

static rl_status_t post_ctrl(struct rl_comm *c, struct rl_request *r, int chi)
{
    rl_chan_t *ch = &c->ch[chi];
    rl_ctrl_t rec = {
        .seq = r->seq, .coll = r->coll, .dtype = r->dtype, .op = r->op, .rank = c->rank, .count = r->count,
    };
    size_t outlen = r->count * r->esize * (is_allreduce(r) ? 1 : (size_t)c->nranks);
    if (r->out_reg) {
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
        (is_allreduce(r) && rec.op != (uint32_t)r->op)) {
        rl_comm_fail(c, RL_ERR_MISMATCH,
                     "operation %llu differs between ranks: rank %d called %s(count=%llu, %s, %s), rank %d "
                     "called %s(count=%llu, %s, %s)",
                     (unsigned long long)r->seq, c->rank, coll_name(r->coll), (unsigned long long)r->count,
                     rl_dtype_name(r->dtype), rl_op_name(r->op), rec.rank, coll_name(rec.coll),
                     (unsigned long long)rec.count, rl_dtype_name((rl_dtype_t)rec.dtype),
                     rl_op_name((rl_op_t)rec.op));
        return RL_ERR_MISMATCH;
    }
    size_t need = r->count * r->esize * (is_allreduce(r) ? 1 : (size_t)c->nranks);
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
    if (o->empty) {
        if (o->recvd == 0 && o->arrived[0]) {
            o->recvd = 1;
            moved = 1;
        }
        return moved;
    }
    while (o->recvd < o->g.units) {
        unit_t u;
        unit_geom(c, r, o, ch, o->recvd, 0, &u);
        if (u.len && u.staged) {
            unsigned slot = (unsigned)(ch->rx_chunks % (uint64_t)c->depth);
            if (!ch->slot_full[slot])
                break;
            r->fn(r->out + u.off * r->esize, r->in + u.off * r->esize, ch->stage + (size_t)slot * c->chunk_bytes,
                  u.len);
            if (u.last_rs && r->op == RL_AVG)
                rl_reduce_scale(r->out + u.off * r->esize, u.len, r->dtype, c->nranks);
            ch->slot_full[slot] = 0;
            ch->rx_chunks++;
            ch->credit_owed++;
        } else if (u.len && !o->arrived[o->recvd]) {
            break;
        }
        o->recvd++;
        moved = 1;
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
    if (o->empty) {
        if (o->sent == 0) {
            uint32_t imm = rl_imm_encode(RL_IMM_DIRECT, (unsigned)chi, r->seq, 0);
            rl_status_t st = c->ops->write_imm(ch->to_next, NULL, 0, NULL, ch->next_stage.addr, ch->next_stage.key,
                                               imm, mkctx(CTX_DATA, chi));
            if (st == RL_OK) {
                o->sent = 1;
                o->inflight++;
                moved = 1;
            } else if (st != RL_ERR_AGAIN) {
                rl_comm_fail(c, st, "rank %d: write to rank %d failed: %s", c->rank, ch->next,
                             c->ops->last_error(c->tp));
            }
        }
        return moved;
    }
    while (o->sent < o->g.units && o->inflight < cap) {
        uint64_t nc = o->g.nchunks;
        if (o->sent >= nc && o->recvd < o->sent - nc + 1)
            break; /* the data to forward has not arrived yet */
        unit_t u;
        unit_geom(c, r, o, ch, o->sent, 1, &u);
        if (u.len == 0) {
            o->sent++;
            continue;
        }
        const char *src;
        rl_tp_mr_t *smr;
        if (u.from_input) {
            src = r->in + u.off * r->esize;
            smr = r->in_reg->mr;
        } else {
            src = r->out + u.off * r->esize;
            smr = r->out_reg->mr;
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
        } else {
            /* Same element offset in the receiver's output. */
            uint64_t doff = u.off;
            if (u.from_input)
                doff = (uint64_t)c->rank * r->count + u.off;
            raddr = o->peer.out_addr + doff * r->esize;
            rkey = o->peer.out_key;
            imm = rl_imm_encode(RL_IMM_DIRECT, (unsigned)chi, r->seq, (uint32_t)o->sent);
        }
        rl_status_t st = c->ops->write_imm(ch->to_next, src, bytes, smr, raddr, rkey, imm, mkctx(CTX_DATA, chi));
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

static rl_status_t start(struct rl_comm *c, struct rl_request *r)
{
    size_t outbytes = r->count * r->esize * (is_allreduce(r) ? 1 : (size_t)c->nranks);
    size_t inbytes = r->count * r->esize;
    if (c->nranks == 1 || r->count == 0) {
        if (c->nranks == 1 && r->in != r->out && inbytes)
            memmove(r->out, r->in, inbytes);
        if (c->nranks == 1)
            return RL_OK; /* nothing to exchange: avg over one rank is the value */
    }
    rl_status_t st;
    if (inbytes && (st = rl_reg_acquire(c, r->in, inbytes, RL_ACCESS_LOCAL, &r->in_reg)) != RL_OK)
        return st;
    if (outbytes && (st = rl_reg_acquire(c, r->out, outbytes, RL_ACCESS_LOCAL | RL_ACCESS_REMOTE_WRITE,
                                         &r->out_reg)) != RL_OK)
        return st;
    if (!is_allreduce(r) && inbytes) {
        char *mine = r->out + (size_t)c->rank * inbytes;
        if (mine != r->in)
            memcpy(mine, r->in, inbytes);
    }
    for (int i = 0; i < c->nch; i++) {
        set_geometry(c, r, i);
        r->ch[i].arrived = calloc(r->ch[i].g.units, 1);
        if (!r->ch[i].arrived)
            return RL_ERR_NO_MEMORY;
    }
    return RL_INPROGRESS;
}

int rl_ring_advance(struct rl_comm *c, struct rl_request *r)
{
    if (!r->started) {
        r->started = 1;
        r->last_progress = rl_now_ns();
        rl_status_t st = start(c, r);
        if (st != RL_INPROGRESS) {
            if (st != RL_OK)
                rl_comm_fail(c, st, "rank %d: starting %s failed: %s", c->rank, coll_name(r->coll),
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
        if (o->ctrl_sent && o->sent == o->g.units && o->recvd == o->g.units && o->inflight == 0)
            o->done = 1;
        else
            all_done = 0;
    }
    if (moved)
        r->last_progress = rl_now_ns();
    if (c->failed != RL_OK)
        return 1;
    if (all_done)
        r->status = RL_OK;
    return all_done;
}

void rl_ring_release(struct rl_comm *c, struct rl_request *r)
{
    for (int i = 0; i < RL_MAX_CHANNELS; i++) {
        free(r->ch[i].arrived);
        r->ch[i].arrived = NULL;
    }
    if (c) {
        rl_reg_release(c, r->in_reg);
        rl_reg_release(c, r->out_reg);
    }
    r->in_reg = r->out_reg = NULL;
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
            ch->slot_full[d.index] || !is_allreduce(r))
            goto bad;
        ch->slot_full[d.index] = (uint8_t)(d.tag + 1);
        return;
    case RL_IMM_DIRECT: {
        if (!r || !r->started || d.tag != (r->seq & RL_IMM_TAG_MASK))
            goto bad;
        rl_opch_t *o = &r->ch[d.channel];
        if (!o->arrived || d.index >= o->g.units || o->arrived[d.index])
            goto bad;
        if (!o->empty) {
            unit_t u;
            unit_geom(c, r, o, ch, d.index, 0, &u);
            if (u.staged || u.len == 0)
                goto bad;
        }
        o->arrived[d.index] = 1;
        return;
    }
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
    for (int i = 0; i < c->nch; i++) {
        rl_opch_t *o = &r->ch[i];
        rl_chan_t *ch = &c->ch[i];
        if (o->done)
            continue;
        if (!o->have_peer)
            snprintf(buf, len, "waiting for rank %d to start operation %llu (%s; its control record has not come)",
                     ch->next, (unsigned long long)r->seq, coll_name(r->coll));
        else if (o->recvd < o->g.units)
            snprintf(buf, len, "waiting for data from rank %d: %s operation %llu, channel %d, unit %llu of %llu",
                     ch->prev, coll_name(r->coll), (unsigned long long)r->seq, i, (unsigned long long)o->recvd,
                     (unsigned long long)o->g.units);
        else if (o->sent < o->g.units)
            snprintf(buf, len, "waiting for rank %d to free a staging slot (operation %llu, channel %d)", ch->next,
                     (unsigned long long)r->seq, i);
        else
            snprintf(buf, len, "waiting for rank %d to acknowledge %d writes (operation %llu, channel %d)",
                     ch->next, o->inflight, (unsigned long long)r->seq, i);
        return;
    }
    snprintf(buf, len, "operation %llu has not started", (unsigned long long)r->seq);
}
