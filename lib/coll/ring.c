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
#include <sys/mman.h>

#include "core/clock.h"
#include "core/comm.h"
#include "core/log.h"

enum { CTX_DATA = 0, CTX_CTRL = 1, CTX_CREDIT = 2, CTX_KINDS };

typedef struct {
    rl_compl_t base;
    int kind, ch;
} ring_cpl_t;

/* One ring: its neighbours, connections, staging slots and mailboxes. */
typedef struct {
    int id;
    const int *order; /* its ring: one of the communicator's (planned rings) */
    int pos, prev, next;
    rl_conn_t to_prev, to_next; /* the same connection when prev == next (to_next.tc == to_prev.tc) */
    /* receive side: prev writes chunks into stage, next writes control
     * records into mbox */
    char *stage;
    rl_mr_t stage_mr;
    uint8_t *slot_full; /* [depth]: op tag + 1 of the chunk in the slot */
    uint64_t rx_chunks;
    uint8_t *mbox;
    rl_mr_t mbox_mr;
    uint8_t mbox_full[RL_MBOX_SLOTS];
    /* send side */
    rl_rkey_t next_stage, prev_mbox;
    uint8_t *ctrl_tx;
    rl_mr_t ctrl_tx_mr;
    uint64_t tx_chunks;
    int credits;     /* free staging slots at next */
    int credit_owed; /* credits for prev not yet posted (queue was full) */
    int ctl_inflight;
    ring_cpl_t cpl[CTX_KINDS];
} rl_chan_t;

/* The communicator's rings and the barrier's one-element buffer. */
typedef struct {
    rl_chan_t ch[RL_MAX_CHANNELS];
    rl_regent_t *bar_ent;
} ring_t;

/* Per-channel progress of one operation. */
typedef struct {
    rl_geom_t g;
    uint64_t nsend, nrecv; /* units this rank sends and receives */
    uint64_t sent, recvd;  /* units */
    uint8_t *arrived;     /* direct units that landed, by unit */
    int inflight;         /* data and control writes not completed */
    int ctrl_sent, have_peer, done;
    rl_ctrl_t peer;       /* next's control record */
    int empty;            /* no elements: one zero-length token each way */
    int cpos;             /* broadcast/reduce: this rank's place on the channel's chain, 0 first */
    int64_t *step_ns;     /* when each ring step's last chunk was received */
} rl_opch_t;

/* One operation's state. */
typedef struct {
    rl_opch_t ch[RL_MAX_CHANNELS];
} op_t;

static ring_t *S(const struct rl_comm *c) { return RL_ALGO_STATE(c, &rl_algo_ring); }
static op_t *P(const struct rl_request *r) { return RL_PRIV(r, op_t); }
/* Ring and chain share the channels, the control records and this code. */
static int on_ring(const struct rl_request *r) { return r->algo == &rl_algo_ring || r->algo == &rl_algo_chain; }

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
    const rl_mr_t *smr;
    uint64_t peer_off; /* send, direct: byte offset into the receiver's output */
    char *dst;         /* receive, staged */
    const char *in;
    int last;          /* receive: the reduction is complete (avg scales it) */
} unit_t;

static const rl_mr_t *mr_of(rl_regent_t *e) { return e ? &e->mr : NULL; }

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
    int owner = ch->order[mod(send ? ch->pos - (int64_t)s : ch->pos - (int64_t)s - 1, n)];
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
    int owner = ch->order[mod(send ? ch->pos - (int64_t)s - 1 : ch->pos - (int64_t)s - 2, n)];
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
    int n = c->nranks, first = o->cpos == 0, last = o->cpos == n - 1;
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
        return o->cpos == 0 ? 0 : (u < o->nrecv ? u + 1 : o->nrecv);
    return u >= o->g.nchunks ? u - o->g.nchunks + 1 : 0;
}

static void set_geometry(struct rl_comm *c, struct rl_request *r, int chi)
{
    rl_opch_t *o = &P(r)->ch[chi];
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
        o->nsend = o->cpos == n - 1 ? 1 : o->g.nchunks;
        o->nrecv = o->cpos == 0 ? 1 : o->g.nchunks;
    }
}

static rl_status_t post_ctrl(struct rl_comm *c, struct rl_request *r, int chi)
{
    rl_chan_t *ch = &S(c)->ch[chi];
    rl_ctrl_t rec = {
        .seq = r->seq, .coll = r->coll, .dtype = r->dtype, .op = r->op, .rank = c->rank, .root = r->root,
        .count = r->count,
    };
    size_t outlen = direct_bytes(c, r);
    if (r->out_reg && outlen) {
        rl_rkey_t rk;
        rl_mr_remote(c, &r->out_reg->mr, &ch->to_prev, r->out, &rk);
        rec.out_addr = rk.addr;
        rec.out_key = rk.key;
        rec.out_len = outlen;
    }
    unsigned slot = (unsigned)(r->seq % RL_MBOX_SLOTS);
    uint8_t *buf = ch->ctrl_tx + slot * RL_CTRL_WIRE_SIZE;
    rl_ctrl_encode(&rec, buf);
    uint32_t imm = rl_imm_encode(RL_IMM_CTRL, (unsigned)chi, r->seq, slot);
    rl_status_t st = rl_conn_write_imm(c, &ch->to_prev, buf, RL_CTRL_WIRE_SIZE, &ch->ctrl_tx_mr,
                                       ch->prev_mbox.addr + slot * RL_CTRL_WIRE_SIZE, ch->prev_mbox.key, imm,
                                       &ch->cpl[CTX_CTRL].base);
    if (st == RL_OK) {
        P(r)->ch[chi].ctrl_sent = 1;
        P(r)->ch[chi].inflight++;
    }
    return st;
}

/* Take next's control record for this operation out of the mailbox and
 * check that it called the same operation. */
static rl_status_t take_peer_ctrl(struct rl_comm *c, struct rl_request *r, int chi)
{
    rl_chan_t *ch = &S(c)->ch[chi];
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
        rl_describe_call(mine, sizeof(mine), c->rank, r->coll, r->count, r->dtype, r->op, r->root);
        rl_describe_call(theirs, sizeof(theirs), rec.rank, rec.coll, rec.count, rec.dtype, rec.op, rec.root);
        rl_comm_fail(c, RL_ERR_MISMATCH, "operation %llu differs between ranks: %s, %s", (unsigned long long)r->seq,
                     mine, theirs);
        return RL_ERR_MISMATCH;
    }
    /* only a rank that writes into next's output needs its size */
    int writes = !is_chain(r) || (r->coll == RL_COLL_BROADCAST && P(r)->ch[chi].cpos < c->nranks - 1);
    size_t need = writes ? direct_bytes(c, r) : 0;
    if (need && rec.out_len < need) {
        rl_comm_fail(c, RL_ERR_PROTOCOL, "rank %d announced an output buffer of %llu bytes, %zu needed",
                     rec.rank, (unsigned long long)rec.out_len, need);
        return RL_ERR_PROTOCOL;
    }
    P(r)->ch[chi].peer = rec;
    P(r)->ch[chi].have_peer = 1;
    return RL_OK;
}

static void send_credits(struct rl_comm *c, rl_chan_t *ch)
{
    while (ch->credit_owed > 0) {
        uint32_t imm = rl_imm_encode(RL_IMM_CREDIT, (unsigned)ch->id, 0, (uint32_t)ch->credit_owed);
        rl_status_t st = rl_conn_write_imm(c, &ch->to_prev, NULL, 0, NULL, ch->prev_mbox.addr, ch->prev_mbox.key,
                                           imm, &ch->cpl[CTX_CREDIT].base);
        if (st == RL_ERR_AGAIN)
            return;
        if (st != RL_OK) {
            rl_comm_fail(c, st, "rank %d: returning credits to rank %d failed: %s", c->rank, ch->prev,
                         rl_comm_tp_error(c));
            return;
        }
        ch->ctl_inflight++;
        ch->credit_owed = 0;
    }
}

/* Process received units in order. Returns nonzero if anything moved. */
static int recv_units(struct rl_comm *c, struct rl_request *r, int chi)
{
    rl_chan_t *ch = &S(c)->ch[chi];
    rl_opch_t *o = &P(r)->ch[chi];
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
    rl_chan_t *ch = &S(c)->ch[chi];
    rl_opch_t *o = &P(r)->ch[chi];
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
        rl_status_t st = rl_conn_write_imm(c, &ch->to_next, u.token ? NULL : u.src, bytes, u.token ? NULL : u.smr,
                                           raddr, rkey, imm, &ch->cpl[CTX_DATA].base);
        if (st == RL_ERR_AGAIN)
            break;
        if (st != RL_OK) {
            rl_comm_fail(c, st, "rank %d: write to rank %d failed: %s", c->rank, ch->next,
                         rl_comm_tp_error(c));
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

static rl_status_t barrier_buffer(struct rl_comm *c, struct rl_request *r)
{
    if (!S(c)->bar_ent) {
        rl_regent_t *e = calloc(1, sizeof(*e));
        void *p = NULL;
        if (!e || posix_memalign(&p, 4096, 4096)) {
            free(e);
            return RL_ERR_NO_MEMORY;
        }
        memset(p, 0, 4096);
        rl_status_t st = rl_mr_reg(c, p, 4096, RL_ACCESS_LOCAL | RL_ACCESS_REMOTE_WRITE, &e->mr);
        if (st != RL_OK) {
            free(p);
            free(e);
            return st;
        }
        e->base = p;
        e->len = 4096;
        e->pinned = 1;
        S(c)->bar_ent = e;
    }
    r->in = r->out = S(c)->bar_ent->base;
    r->in_reg = r->out_reg = S(c)->bar_ent;
    S(c)->bar_ent->refs += 2;
    return RL_OK;
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
        if (scratch && (st = rl_comm_scratch(c, scratch)) != RL_OK)
            return st;
    }
    for (int i = 0; is_chain(r) && i < c->nch; i++) {
        const rl_chan_t *ch = &S(c)->ch[i];
        int proot = 0;
        for (int k = 0; k < c->nranks; k++)
            if (ch->order[k] == r->root)
                proot = k;
        int shift = r->coll == RL_COLL_REDUCE ? 1 : 0;
        P(r)->ch[i].cpos = (int)mod((int64_t)ch->pos - proot - shift, c->nranks);
    }
    for (int i = 0; i < c->nch; i++) {
        set_geometry(c, r, i);
        uint64_t slots = P(r)->ch[i].nrecv > P(r)->ch[i].nsend ? P(r)->ch[i].nrecv : P(r)->ch[i].nsend;
        P(r)->ch[i].arrived = calloc(slots ? slots : 1, 1);
        if (!P(r)->ch[i].arrived)
            return RL_ERR_NO_MEMORY;
        /* per-step times feed the cost model (latency + size/bandwidth
         * per step); kept only when someone reads them */
        if (i == 0 && rl_log_level_cur >= RL_LOG_DEBUG && !is_chain(r) && !P(r)->ch[i].empty)
            P(r)->ch[i].step_ns = calloc(P(r)->ch[i].g.steps, sizeof(int64_t));
    }
    return RL_INPROGRESS;
}

/* Debug log: the operation's time and how long each ring step took here
 * (channel 0), so per-step latency and bandwidth can be fitted. */
static void log_steps(struct rl_comm *c, struct rl_request *r)
{
    rl_opch_t *o = &P(r)->ch[0];
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
    if (!r || on_ring(r) || !S(c))
        return;
    unsigned slot = (unsigned)(r->seq % RL_MBOX_SLOTS);
    for (int i = 0; i < c->nch && c->failed == RL_OK; i++) {
        rl_ctrl_t rec;
        if (!S(c)->ch[i].mbox_full[slot] ||
            rl_ctrl_decode(S(c)->ch[i].mbox + slot * RL_CTRL_WIRE_SIZE, c->nranks, &rec) != RL_OK || rec.seq != r->seq)
            continue;
        char mine[160], theirs[160];
        rl_describe_call(mine, sizeof(mine), c->rank, r->coll, r->count, r->dtype, r->op, r->root);
        rl_describe_call(theirs, sizeof(theirs), rec.rank, rec.coll, rec.count, rec.dtype, rec.op, rec.root);
        rl_comm_fail(c, RL_ERR_MISMATCH, "operation %llu differs between ranks: %s, %s", (unsigned long long)r->seq,
                     mine, theirs);
    }
}

static int progress(struct rl_comm *c, struct rl_request *r)
{
    int all_done = 1;
    for (int i = 0; i < c->nch && c->failed == RL_OK; i++) {
        rl_opch_t *o = &P(r)->ch[i];
        if (o->done)
            continue;
        if (!o->ctrl_sent) {
            rl_status_t st = post_ctrl(c, r, i);
            if (st != RL_OK && st != RL_ERR_AGAIN) {
                rl_comm_fail(c, st, "rank %d: sending the control record to rank %d failed: %s", c->rank,
                             S(c)->ch[i].prev, rl_comm_tp_error(c));
                break;
            }
        }
        if (!o->have_peer) {
            rl_status_t st = take_peer_ctrl(c, r, i);
            if (st != RL_OK) {
                all_done = 0;
                continue;
            }
        }
        recv_units(c, r, i);
        send_units(c, r, i);
        recv_units(c, r, i);
        if (o->ctrl_sent && o->sent == o->nsend && o->recvd == o->nrecv && o->inflight == 0)
            o->done = 1;
        else
            all_done = 0;
    }
    if (c->failed != RL_OK)
        return 1;
    if (all_done) {
        r->status = RL_OK;
        log_steps(c, r);
    }
    return all_done;
}

static void release(struct rl_comm *c, struct rl_request *r)
{
    (void)c;
    for (int i = 0; i < RL_MAX_CHANNELS; i++) {
        free(P(r)->ch[i].arrived);
        free(P(r)->ch[i].step_ns);
        P(r)->ch[i].arrived = NULL;
        P(r)->ch[i].step_ns = NULL;
    }
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

static void handle_imm(struct rl_comm *c, uint32_t imm)
{
    rl_imm_t d;
    if (rl_imm_decode(imm, c->nch, &d) != RL_OK) {
        rl_comm_fail(c, RL_ERR_PROTOCOL, "rank %d: received an immediate 0x%08x for a channel that does not exist",
                     c->rank, imm);
        return;
    }
    rl_chan_t *ch = &S(c)->ch[d.channel];
    struct rl_request *r = c->head && on_ring(c->head) ? c->head : NULL;
    switch (d.kind) {
    case RL_IMM_CTRL:
        if (d.index >= RL_MBOX_SLOTS || ch->mbox_full[d.index])
            goto bad;
        ch->mbox_full[d.index] = 1;
        check_foreign_ctrl(c, c->head);
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
            !direct_ok(c, r, ch, &P(r)->ch[d.channel], d.index))
            goto bad;
        P(r)->ch[d.channel].arrived[d.index] = 1;
        return;
    }
bad:
    rl_comm_fail(c, RL_ERR_PROTOCOL,
                 "rank %d: unexpected message from a ring neighbour on channel %u (kind %d, index %u, tag %u; "
                 "prev rank %d, next rank %d)",
                 c->rank, d.channel, (int)d.kind, d.index, d.tag, ch->prev, ch->next);
}

static void send_done(struct rl_comm *c, rl_compl_t *self, rl_status_t st)
{
    ring_cpl_t *k = RL_CONTAINER_OF(self, ring_cpl_t, base);
    rl_chan_t *ch = &S(c)->ch[k->ch];
    if (st != RL_OK) {
        /* data goes to next; control records and credits to prev (the
         * peer's route also names the transport that failed) */
        rl_comm_transport_failure(c, k->kind == CTX_DATA ? ch->next : ch->prev);
        return;
    }
    if (k->kind == CTX_CREDIT) {
        ch->ctl_inflight--;
        return;
    }
    if (c->head && on_ring(c->head) && P(c->head)->ch[k->ch].inflight > 0)
        P(c->head)->ch[k->ch].inflight--;
}

static void describe_wait(struct rl_comm *c, struct rl_request *r, char *buf, size_t len)
{
    for (int i = 0; i < c->nch; i++) {
        rl_opch_t *o = &P(r)->ch[i];
        rl_chan_t *ch = &S(c)->ch[i];
        if (o->done)
            continue;
        const char *name = rl_coll_name(r->coll);
        c->stall_peer = !o->have_peer || o->recvd >= o->nrecv ? ch->next : ch->prev;
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

/* What each rank publishes at set-up, per channel: the blobs for the connections to prev and next, and the
 * remote names of the staging slots and mailbox. */
typedef struct {
    /* the backends of the connections to prev and next: both ends must
     * agree on what "auto" and the routes picked */
    char backend_prev[16], backend_next[16];
    uint32_t len_prev, len_next;
    uint8_t blob_prev[RL_TP_BLOB_MAX], blob_next[RL_TP_BLOB_MAX];
    rl_rkey_t stage, mbox;
} chan_rec_t;

static void *alloc_pages(size_t len)
{
    void *p = NULL;
    if (posix_memalign(&p, 4096, len ? len : 1))
        return NULL;
    memset(p, 0, len);
    return p;
}

/* Staging is mapped, not malloc'd and zeroed: pages a peer never writes
 * (slots past the chunk size an operation really uses) cost no memory. */
static size_t stage_len(const struct rl_comm *c) { return (size_t)c->depth * c->chunk_bytes; }

static char *stage_alloc(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static rl_status_t chan_setup(struct rl_comm *c, int i, chan_rec_t *rec, char *why, size_t whylen)
{
    rl_chan_t *ch = &S(c)->ch[i];
    int n = c->nranks;
    int me = -1;
    ch->order = c->order + (size_t)(i % c->nrings) * (size_t)n;
    for (int k = 0; k < n; k++)
        if (ch->order[k] == c->rank)
            me = k;
    ch->id = i;
    ch->pos = me;
    ch->prev = ch->order[(me + n - 1) % n];
    ch->next = ch->order[(me + 1) % n];
    ch->credits = c->depth;
    for (int k = 0; k < CTX_KINDS; k++)
        ch->cpl[k] = (ring_cpl_t){.base.fn = send_done, .kind = k, .ch = i};
    ch->stage = stage_alloc(stage_len(c));
    ch->mbox = alloc_pages(RL_MBOX_SLOTS * RL_CTRL_WIRE_SIZE);
    ch->ctrl_tx = alloc_pages(RL_MBOX_SLOTS * RL_CTRL_WIRE_SIZE);
    ch->slot_full = calloc((size_t)c->depth, 1);
    if (!ch->stage || !ch->mbox || !ch->ctrl_tx || !ch->slot_full) {
        snprintf(why, whylen, "cannot allocate %zu bytes of staging (RINGLET_PIPELINE_DEPTH=%d x chunk %zu B)%s",
                 stage_len(c), c->depth, c->chunk_bytes, ch->stage ? " or the mailboxes" : "");
        return RL_ERR_NO_MEMORY;
    }
    rl_status_t st;
    if ((st = rl_mr_reg(c, ch->stage, stage_len(c), RL_ACCESS_REMOTE_WRITE, &ch->stage_mr)) ||
        (st = rl_mr_reg(c, ch->mbox, RL_MBOX_SLOTS * RL_CTRL_WIRE_SIZE, RL_ACCESS_REMOTE_WRITE, &ch->mbox_mr)) ||
        (st = rl_mr_reg(c, ch->ctrl_tx, RL_MBOX_SLOTS * RL_CTRL_WIRE_SIZE, RL_ACCESS_LOCAL, &ch->ctrl_tx_mr)))
        return st;
    size_t l = RL_TP_BLOB_MAX;
    if ((st = rl_conn_create(c, ch->prev, i, &ch->to_prev, rec->blob_prev, &l)) != RL_OK)
        return st;
    rec->len_prev = (uint32_t)l;
    /* prev and next may be reached through different transports: each
     * record names the one of its connection */
    snprintf(rec->backend_prev, sizeof(rec->backend_prev), "%s", rl_conn_ops(c, &ch->to_prev)->name);
    /* prev writes chunks into the staging through its connection to us
     * (our to_prev), next writes control records into the mailbox through
     * its own (our to_next): each key is for the transport of its writer */
    rl_mr_remote(c, &ch->stage_mr, &ch->to_prev, ch->stage, &rec->stage);
    if (ch->next == ch->prev) {
        ch->to_next = ch->to_prev;
        memcpy(rec->blob_next, rec->blob_prev, l);
        rec->len_next = (uint32_t)l;
        memcpy(rec->backend_next, rec->backend_prev, sizeof(rec->backend_next));
    } else {
        l = RL_TP_BLOB_MAX;
        if ((st = rl_conn_create(c, ch->next, i, &ch->to_next, rec->blob_next, &l)) != RL_OK)
            return st;
        rec->len_next = (uint32_t)l;
        snprintf(rec->backend_next, sizeof(rec->backend_next), "%s", rl_conn_ops(c, &ch->to_next)->name);
    }
    rl_mr_remote(c, &ch->mbox_mr, &ch->to_next, ch->mbox, &rec->mbox);
    return RL_OK;
}

static rl_status_t setup(struct rl_comm *c, int64_t dl, char *err, size_t len)
{
    ring_t *rs = calloc(1, sizeof(*rs));
    if (!rs)
        return RL_ERR_NO_MEMORY;
    RL_ALGO_STATE(c, &rl_algo_ring) = rs;
    rl_comm_route_imm(c, RL_IMMC_RING, handle_imm);
    size_t rlen = sizeof(chan_rec_t) * (size_t)c->nch;
    chan_rec_t *mine = calloc(1, rlen), *all = calloc((size_t)c->nranks, rlen);
    rl_status_t st = (mine && all) ? RL_OK : RL_ERR_NO_MEMORY;
    for (int i = 0; i < c->nch && st == RL_OK; i++) {
        char why[200] = "";
        st = chan_setup(c, i, &mine[i], why, sizeof(why));
        if (st != RL_OK)
            snprintf(err, len, "rank %d: setting up channel %d failed: %s", c->rank, i,
                     st == RL_ERR_NO_MEMORY ? why : rl_comm_tp_error(c));
    }
    if (st != RL_OK)
        rl_boot_abort(c->boot, st, c->rank, err);
    else
        st = rl_boot_allgather(c->boot, mine, rlen, all, dl, err, len);
    for (int i = 0; i < c->nch && st == RL_OK; i++) {
        rl_chan_t *ch = &S(c)->ch[i];
        chan_rec_t *nx = (chan_rec_t *)((char *)all + (size_t)ch->next * rlen) + i;
        chan_rec_t *pv = (chan_rec_t *)((char *)all + (size_t)ch->prev * rlen) + i;
        const char *tn = rl_conn_ops(c, &ch->to_next)->name, *tp = rl_conn_ops(c, &ch->to_prev)->name;
        if (strncmp(nx->backend_prev, tn, sizeof(nx->backend_prev)) ||
            strncmp(pv->backend_next, tp, sizeof(pv->backend_next))) {
            snprintf(err, len,
                     "rank %d reaches rank %d through transport %s and rank %d through %s, but they use %.15s and %.15s: "
                     "set RINGLET_TRANSPORT (and RINGLET_INTRA_TRANSPORT) alike",
                     c->rank, ch->next, tn, ch->prev, tp, nx->backend_prev, pv->backend_next);
            st = RL_ERR_MISMATCH;
            break;
        }
        if (nx->len_prev > RL_TP_BLOB_MAX || pv->len_next > RL_TP_BLOB_MAX) {
            snprintf(err, len, "rank %d: malformed connection data from rank %d or %d", c->rank, ch->next, ch->prev);
            st = RL_ERR_PROTOCOL;
            break;
        }
        ch->next_stage = nx->stage;
        ch->prev_mbox = pv->mbox;
        st = rl_conn_establish(c, &ch->to_next, nx->blob_prev, nx->len_prev, dl);
        if (st == RL_OK && ch->to_prev.tc != ch->to_next.tc)
            st = rl_conn_establish(c, &ch->to_prev, pv->blob_next, pv->len_next, dl);
        if (st != RL_OK)
            snprintf(err, len, "rank %d: connecting channel %d to ranks %d/%d failed: %s", c->rank, i, ch->prev,
                     ch->next, rl_comm_tp_error(c));
    }
    free(mine);
    free(all);
    /* Everyone connected before anyone writes. */
    if (st != RL_OK) {
        rl_boot_abort(c->boot, st, c->rank, err);
        return st;
    }
    return rl_comm_sync(c, dl, err, len);
}

static void chan_teardown(struct rl_comm *c, rl_chan_t *ch)
{
    if (c->ntp) {
        if (ch->to_next.tc != ch->to_prev.tc)
            rl_conn_destroy(c, &ch->to_next);
        rl_conn_destroy(c, &ch->to_prev);
        rl_mr_dereg(c, &ch->stage_mr);
        rl_mr_dereg(c, &ch->mbox_mr);
        rl_mr_dereg(c, &ch->ctrl_tx_mr);
    }
    if (ch->stage)
        munmap(ch->stage, stage_len(c));
    free(ch->mbox);
    free(ch->ctrl_tx);
    free(ch->slot_full);
    memset(ch, 0, sizeof(*ch));
}

static void teardown(struct rl_comm *c)
{
    ring_t *rs = S(c);
    if (!rs)
        return;
    for (int i = 0; i < RL_MAX_CHANNELS; i++)
        chan_teardown(c, &rs->ch[i]);
    if (rs->bar_ent) {
        rl_mr_dereg(c, &rs->bar_ent->mr);
        free(rs->bar_ent->base);
        free(rs->bar_ent);
    }
    free(rs);
    RL_ALGO_STATE(c, &rl_algo_ring) = NULL;
}

static int always(const struct rl_comm *c, const rl_call_t *call)
{
    (void)c, (void)call;
    return 1;
}

/* Per-step cost of a ring or chain step moving b bytes in k pipelined
 * chunks: each chunk is a message. */
static double ring_cost(const struct rl_comm *c, const rl_call_t *call, const rl_model_t *m)
{
    double n = c->nranks, b = (double)call->bytes, f = (n - 1) / n;
    switch (call->coll) {
    case RL_COLL_ALL_GATHER: return (n - 1) * (m->alpha_rdv_us + b * m->beta_us_per_b);
    case RL_COLL_REDUCE_SCATTER: return (n - 1) * (m->alpha_rdv_us + b * (m->beta_us_per_b + m->gamma_us_per_b));
    default: /* all-reduce, barrier: reduce-scatter then all-gather */
        return 2 * (n - 1) * m->alpha_rdv_us + 2 * f * b * m->beta_us_per_b + f * b * m->gamma_us_per_b;
    }
}

/* A pipelined chain: the first chunk takes n - 1 hops, the other k - 1
 * follow one chunk time apart. */
static double chain_cost(const struct rl_comm *c, const rl_call_t *call, const rl_model_t *m)
{
    double n = c->nranks, b = (double)call->bytes;
    double k = b > (double)c->chunk_bytes ? b / (double)c->chunk_bytes : 1;
    double per = m->alpha_rdv_us + b / k * (m->beta_us_per_b + (call->coll == RL_COLL_REDUCE ? m->gamma_us_per_b : 0));
    return (n - 2 + k) * per + m->alpha_rdv_us; /* and the closing token */
}

/* Every rank logs its own neighbours. */
static void describe_comm(struct rl_comm *c, char *buf, size_t len)
{
    char ord[384];
    int pos = 0;
    int nshow = c->nrings > 1 ? c->nch : 1; /* each channel's own ring, as it runs */
    for (int k = 0; k < nshow && pos < (int)sizeof(ord) - 16; k++)
        for (int i = 0; i < c->nranks && pos < (int)sizeof(ord) - 16; i++)
            pos += snprintf(ord + pos, sizeof(ord) - (size_t)pos, "%s%d", i ? "," : k ? " | " : "",
                            S(c)->ch[k].order[i]);
    snprintf(buf, len, "ring%s %s (prev %d, next %d), %d channel(s), chunk %zu B, depth %d", c->nrings > 1 ? "s" : "",
             ord, S(c)->ch[0].prev, S(c)->ch[0].next, c->nch, c->chunk_bytes, c->depth);
}

static int busy(struct rl_comm *c)
{
    ring_t *rs = S(c);
    for (int i = 0; rs && i < c->nch; i++)
        if (rs->ch[i].ctl_inflight > 0) /* credits still owed matter to no one now */
            return 1;
    return 0;
}

const rl_algo_t rl_algo_ring = {
    .id = RL_ALGO_ID_ring,
    .name = "ring",
    .desc = "pipelined ring: reduce-scatter then all-gather in 2(n-1) steps, chunks through staging slots",
    .colls = RL_COLL_BIT(RL_COLL_ALL_REDUCE) | RL_COLL_BIT(RL_COLL_ALL_GATHER) |
             RL_COLL_BIT(RL_COLL_REDUCE_SCATTER) | RL_COLL_BIT(RL_COLL_BARRIER),
    .state_size = sizeof(op_t),
    .comm_setup = setup,
    .comm_teardown = teardown,
    .usable = always,
    .cost = ring_cost,
    .start = start,
    .progress = progress,
    .release = release,
    .describe_wait = describe_wait,
    .foreign = check_foreign_ctrl,
    .busy = busy,
    .describe_comm = describe_comm,
};

const rl_algo_t rl_algo_chain = {
    .id = RL_ALGO_ID_chain,
    .name = "chain",
    .desc = "pipelined chain along the ring from or to the root, closed by a token",
    .colls = RL_COLL_BIT(RL_COLL_BROADCAST) | RL_COLL_BIT(RL_COLL_REDUCE),
    .state_size = sizeof(op_t),
    .usable = always,
    .cost = chain_cost,
    .start = start,
    .progress = progress,
    .release = release,
    .describe_wait = describe_wait,
};

/* ---- for the receive-side fuzz target (tests/fuzz/fuzz_imm.c): a ring
 * state and a running operation built in memory, without a transport ---- */
struct rl_request *rl_ring_fuzz_begin(struct rl_comm *c, rl_coll_t coll, size_t count, uint64_t seq, int credits)
{
    ring_t *rs = calloc(1, sizeof(*rs));
    struct rl_request *r = rl_request_alloc(c, &rl_algo_ring);
    if (!rs || !r) {
        free(rs);
        free(r);
        return NULL;
    }
    RL_ALGO_STATE(c, &rl_algo_ring) = rs;
    r->coll = coll;
    r->count = count;
    r->dtype = RL_FLOAT32;
    r->esize = 4;
    r->seq = seq;
    r->status = RL_INPROGRESS;
    r->started = 1;
    /* real buffers: the unit geometry points into them (never written here) */
    char *buf = calloc(count * 4 * (size_t)c->nranks + 1, 1);
    if (!buf) {
        free(rs);
        free(r);
        return NULL;
    }
    r->in = r->out = buf;
    c->head = c->tail = r;
    for (int i = 0; i < c->nch; i++) {
        rl_chan_t *ch = &rs->ch[i];
        ch->id = i;
        ch->order = c->order;
        ch->pos = c->rank;
        ch->prev = (c->rank + c->nranks - 1) % c->nranks;
        ch->next = (c->rank + 1) % c->nranks;
        ch->credits = credits % (c->depth + 1);
        ch->slot_full = calloc((size_t)c->depth, 1);
        set_geometry(c, r, i);
        /* exact-size arrays: ASan reports any index past them */
        P(r)->ch[i].arrived = calloc(P(r)->ch[i].g.units, 1);
    }
    return r;
}

/* Hand one immediate to the ring as if it had arrived; nonzero while the
 * credit counts stay within the staging slots. */
int rl_ring_fuzz_imm(struct rl_comm *c, uint32_t imm)
{
    handle_imm(c, imm);
    for (int i = 0; i < c->nch; i++)
        if (S(c)->ch[i].credits < 0 || S(c)->ch[i].credits > c->depth)
            return 0;
    return 1;
}

void rl_ring_fuzz_end(struct rl_comm *c, struct rl_request *r)
{
    ring_t *rs = S(c);
    for (int i = 0; i < c->nch; i++)
        free(rs->ch[i].slot_full);
    release(c, r);
    free(r->out);
    free(r);
    free(rs);
    RL_ALGO_STATE(c, &rl_algo_ring) = NULL;
}
