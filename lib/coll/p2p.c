/*
 * Point-to-point send/recv over one connection per pair of ranks,
 * receiver-driven and zero-copy.
 *
 * The receiver registers its buffer and writes a clear-to-send (CTS) record
 * (sequence number, count, dtype, buffer address, key, length) into the
 * sender's mailbox for that peer; the sender checks it against its own call
 * and writes the data straight into the receiver's buffer in chunks, each
 * with an immediate naming the sender and the pair's sequence tag, which the
 * receiver counts.
 *
 * Matching by tag: the record carries the receive's tag. The sender takes
 * records from its mailbox in the order the receives were posted and keeps
 * them until a send of that tag takes one: a send meets the earliest
 * record of its tag, and sends of one tag take records in the order they
 * were posted, so messages of one (peer, tag) keep their order while other
 * tags pass them. Data immediates carry the receive's sequence number (the
 * record's), which names the receive whatever order sends run in.
 *
 * Flow control: a receive takes mailbox slot seq % RL_P2P_SLOTS at the
 * sender and keeps it until its data has all arrived, which implies the
 * sender consumed the record; so a slot is never overwritten early.
 * Sends to one peer write one at a time, so their completions need no tag.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/comm.h"
#include "core/log.h"

static void *p2p_ctx(int kind, int space, int peer)
{
    return (void *)(uintptr_t)((uintptr_t)peer << 13 | (uintptr_t)space << 12 | (uintptr_t)kind << 8);
}
static int ctx_peer(void *ctx) { return (int)((uintptr_t)ctx >> 13); }
static int ctx_space(void *ctx) { return (int)(((uintptr_t)ctx >> 12) & 1); }
/* Mailbox slot of a pair's message seq in a space. */
static unsigned mslot(int space, uint64_t seq) { return (unsigned)space * RL_P2P_SLOTS + (unsigned)(seq % RL_P2P_SLOTS); }

/* What each rank publishes for one peer at set-up. */
typedef struct {
    char backend[16];
    uint32_t len;
    uint8_t blob[RL_TP_BLOB_MAX];
    rl_rkey_t mbox;
    rl_rkey_t land; /* where eager all-reduce messages to me go */
} peer_rec_t;

static rl_status_t peer_setup(struct rl_comm *c, int p, peer_rec_t *rec)
{
    rl_peer_t *pe = &c->peers[p];
    size_t mlen = RL_P2P_SPACES * RL_P2P_SLOTS * RL_CTRL_WIRE_SIZE;
    if (posix_memalign((void **)&pe->mbox, 4096, 4096) || posix_memalign((void **)&pe->ctrl_tx, 4096, 4096))
        return RL_ERR_NO_MEMORY;
    memset(pe->mbox, 0, mlen);
    memset(pe->ctrl_tx, 0, mlen);
    rl_status_t st;
    if ((st = c->ops->mr_reg(c->tp, pe->mbox, mlen, RL_ACCESS_REMOTE_WRITE, &pe->mbox_mr)) != RL_OK ||
        (st = c->ops->mr_reg(c->tp, pe->ctrl_tx, mlen, RL_ACCESS_LOCAL, &pe->ctrl_tx_mr)) != RL_OK)
        return st;
    snprintf(rec->backend, sizeof(rec->backend), "%s", c->ops->name);
    c->ops->mr_remote(pe->mbox_mr, pe->mbox, &rec->mbox);
    size_t l = RL_TP_BLOB_MAX;
    if ((st = c->ops->conn_create(c->tp, p, &pe->conn, rec->blob, &l)) != RL_OK)
        return st;
    rec->len = (uint32_t)l;
    return RL_OK;
}

static int p2p_wanted(const struct rl_comm *c)
{
    if (!strcmp(c->cfg.p2p, "on"))
        return 1;
    if (!strcmp(c->cfg.p2p, "off"))
        return 0;
    return c->nranks <= 64;
}

rl_status_t rl_p2p_connect(struct rl_comm *c, int64_t dl, char *err, size_t len)
{
    if (strcmp(c->cfg.p2p, "on") && strcmp(c->cfg.p2p, "off") && strcmp(c->cfg.p2p, "auto")) {
        snprintf(err, len, "RINGLET_P2P=%s: use on, off or auto", c->cfg.p2p);
        rl_boot_abort(c->boot, RL_ERR_CONFIG, c->rank, err);
        return RL_ERR_CONFIG;
    }
    const char *algo = c->cfg.allreduce_algo;
    if (strcmp(algo, "auto") && strcmp(algo, "ring") && strcmp(algo, "rhd") && strcmp(algo, "rd")) {
        snprintf(err, len, "RINGLET_ALLREDUCE_ALGO=%s: use auto, ring, rhd or rd", algo);
        rl_boot_abort(c->boot, RL_ERR_CONFIG, c->rank, err);
        return RL_ERR_CONFIG;
    }
    if (!p2p_wanted(c) || c->nranks > RL_IMM_P2P_RANK_MAX + 1)
        return RL_OK;
    int n = c->nranks;
    c->peers = calloc((size_t)n, sizeof(rl_peer_t));
    peer_rec_t *mine = calloc((size_t)n, sizeof(peer_rec_t));
    peer_rec_t *all = calloc((size_t)n * (size_t)n, sizeof(peer_rec_t));
    rl_status_t st = c->peers && mine && all ? RL_OK : RL_ERR_NO_MEMORY;
    rl_rkey_t land = {0};
    if (st == RL_OK && (st = rl_rd_setup(c, &land)) != RL_OK)
        snprintf(err, len, "rank %d: setting up eager all-reduce slots failed: %s", c->rank, c->ops->last_error(c->tp));
    for (int p = 0; p < n && st == RL_OK; p++)
        mine[p].land = land;
    for (int p = 0; p < n && st == RL_OK; p++)
        if (p != c->rank && (st = peer_setup(c, p, &mine[p])) != RL_OK)
            snprintf(err, len, "rank %d: setting up the connection to rank %d failed: %s", c->rank, p,
                     c->ops->last_error(c->tp));
    if (st != RL_OK)
        rl_boot_abort(c->boot, st, c->rank, err);
    else
        st = rl_boot_allgather(c->boot, mine, (size_t)n * sizeof(peer_rec_t), all, dl, err, len);
    /* in increasing peer order on every rank, so that connection modes in
     * which both ends wait for each other cannot deadlock */
    for (int p = 0; p < n && st == RL_OK; p++) {
        if (p == c->rank)
            continue;
        peer_rec_t *rec = &all[(size_t)p * (size_t)n + (size_t)c->rank];
        if (rec->len > RL_TP_BLOB_MAX || strncmp(rec->backend, c->ops->name, sizeof(rec->backend))) {
            snprintf(err, len, "rank %d: malformed point-to-point connection data from rank %d", c->rank, p);
            st = RL_ERR_PROTOCOL;
            break;
        }
        c->peers[p].peer_mbox = rec->mbox;
        c->peers[p].peer_land = rec->land;
        if (c->land && !rec->land.addr && !rec->land.key) {
            /* every rank derives the eager path from the same settings */
            snprintf(err, len, "rank %d: rank %d offers no eager all-reduce slots", c->rank, p);
            st = RL_ERR_PROTOCOL;
            break;
        }
        if ((st = c->ops->conn_establish(c->peers[p].conn, rec->blob, rec->len, dl)) != RL_OK)
            snprintf(err, len, "rank %d: connecting to rank %d for send/recv failed: %s", c->rank, p,
                     c->ops->last_error(c->tp));
    }
    free(mine);
    free(all);
    if (st != RL_OK) {
        rl_boot_abort(c->boot, st, c->rank, err);
        return st;
    }
    int32_t ok = 0, *oks = calloc((size_t)n, sizeof(int32_t));
    if (!oks)
        return RL_ERR_NO_MEMORY;
    st = rl_boot_allgather(c->boot, &ok, sizeof(ok), oks, dl, err, len);
    free(oks);
    return st;
}

void rl_p2p_teardown(struct rl_comm *c)
{
    rl_rd_teardown(c);
    if (!c->peers)
        return;
    for (int p = 0; p < c->nranks; p++) {
        rl_peer_t *pe = &c->peers[p];
        if (pe->conn)
            c->ops->conn_destroy(pe->conn);
        if (pe->mbox_mr)
            c->ops->mr_dereg(pe->mbox_mr);
        if (pe->ctrl_tx_mr)
            c->ops->mr_dereg(pe->ctrl_tx_mr);
        free(pe->mbox);
        free(pe->ctrl_tx);
    }
    free(c->peers);
    c->peers = NULL;
}

static uint64_t chunks_of(const struct rl_comm *c, uint64_t bytes)
{
    return bytes ? (bytes + c->chunk_bytes - 1) / c->chunk_bytes : 1;
}

rl_status_t rl_p2p_new(struct rl_comm *c, int space, int is_send, const void *buf, size_t count, rl_dtype_t dtype,
                       int peer, struct rl_request **out)
{
    return rl_p2p_new_tag(c, space, is_send, buf, count, dtype, peer, 0, out);
}

rl_status_t rl_p2p_new_tag(struct rl_comm *c, int space, int is_send, const void *buf, size_t count,
                           rl_dtype_t dtype, int peer, uint32_t tag, struct rl_request **out)
{
    struct rl_request *r = calloc(1, sizeof(*r));
    if (!r)
        return RL_ERR_NO_MEMORY;
    r->comm = c;
    r->coll = RL_COLL_SENDRECV;
    r->space = space;
    r->is_send = is_send;
    r->in = is_send ? buf : NULL;
    r->out = is_send ? NULL : (void *)buf;
    r->count = count;
    r->dtype = dtype;
    r->esize = rl_dtype_size(dtype);
    r->peer = peer;
    r->ptag = tag;
    r->status = RL_INPROGRESS;
    r->last_progress = rl_now_ns();
    rl_p2p_post(c, r);
    *out = r;
    return RL_OK;
}

rl_status_t rl_p2p_post(struct rl_comm *c, struct rl_request *r)
{
    rl_peer_t *pe = &c->peers[r->peer];
    r->pseq = r->is_send ? pe->send_seq[r->space]++ : pe->recv_seq[r->space]++;
    r->nchunks = chunks_of(c, r->count * r->esize);
    r->next = NULL;
    if (c->p2p_tail)
        c->p2p_tail->next = r;
    else
        c->p2p_head = r;
    c->p2p_tail = r;
    return RL_OK;
}

void rl_p2p_unlink(struct rl_comm *c, struct rl_request *r)
{
    struct rl_request **pp = &c->p2p_head, *prev = NULL;
    while (*pp && *pp != r) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = r->next;
    if (c->p2p_tail == r)
        c->p2p_tail = prev;
    r->next = NULL;
}

static void release(struct rl_comm *c, struct rl_request *r)
{
    rl_reg_release(c, r->in_reg);
    rl_reg_release(c, r->out_reg);
    r->in_reg = r->out_reg = NULL;
}

/* Receive: register, then tell the sender where to write. */
static int recv_post_cts(struct rl_comm *c, struct rl_request *r)
{
    rl_peer_t *pe = &c->peers[r->peer];
    unsigned slot = mslot(r->space, r->pseq);
    /* In order: a later receive whose slot frees first must not announce
     * itself before an earlier one, whose sender reads that slot first. */
    if (r->pseq != pe->cts_next[r->space] || pe->rx_busy[r->space][r->pseq % RL_P2P_SLOTS])
        return 0;
    size_t bytes = r->count * r->esize;
    rl_status_t st;
    if (bytes && !r->out_reg &&
        (st = rl_reg_acquire(c, r->out, bytes, RL_ACCESS_LOCAL | RL_ACCESS_REMOTE_WRITE, &r->out_reg)) != RL_OK) {
        rl_comm_fail(c, st, "rank %d: registering the receive buffer for rank %d failed: %s", c->rank, r->peer,
                     c->ops->last_error(c->tp));
        return 0;
    }
    rl_ctrl_t rec = {.seq = r->pseq, .coll = RL_COLL_SENDRECV, .dtype = r->dtype, .tag = r->ptag,
                     .rank = c->rank, .count = r->count};
    if (bytes) {
        rl_rkey_t rk;
        c->ops->mr_remote(r->out_reg->mr, r->out, &rk);
        rec.out_addr = rk.addr;
        rec.out_key = rk.key;
        rec.out_len = bytes;
    }
    uint8_t *buf = pe->ctrl_tx + slot * RL_CTRL_WIRE_SIZE;
    rl_ctrl_encode(&rec, buf);
    st = c->ops->write_imm(pe->conn, buf, RL_CTRL_WIRE_SIZE, pe->ctrl_tx_mr,
                           pe->peer_mbox.addr + slot * RL_CTRL_WIRE_SIZE, pe->peer_mbox.key,
                           rl_imm_p2p_encode(RL_P2P_CTS, r->space, c->rank, r->pseq),
                           p2p_ctx(RL_CTX_P2P_CTS, r->space, r->peer));
    if (st == RL_ERR_AGAIN)
        return 0;
    if (st != RL_OK) {
        rl_comm_fail(c, st, "rank %d: sending clear-to-send to rank %d failed: %s", c->rank, r->peer,
                     c->ops->last_error(c->tp));
        return 0;
    }
    pe->ctl_inflight++;
    pe->cts_next[r->space]++;
    pe->rx_busy[r->space][r->pseq % RL_P2P_SLOTS] = 1;
    r->cts_sent = 1;
    return 1;
}

/* Send side: take the peer's new clear-to-send records from the mailbox,
 * in the order it posted them; false (and the communicator failed) on a
 * malformed one. */
static int collect_cts(struct rl_comm *c, rl_peer_t *pe, int peer, int space)
{
    for (;;) {
        unsigned s = (unsigned)(pe->cts_seen[space] % RL_P2P_SLOTS);
        if (!pe->mbox_full[space][s])
            return 1;
        rl_ctrl_t rec;
        if (pe->cts_valid[space][s] ||
            rl_ctrl_decode(pe->mbox + mslot(space, pe->cts_seen[space]) * RL_CTRL_WIRE_SIZE, c->nranks, &rec) !=
                RL_OK ||
            rec.coll != RL_COLL_SENDRECV || rec.rank != peer || rec.seq != pe->cts_seen[space]) {
            rl_comm_fail(c, RL_ERR_PROTOCOL, "rank %d: malformed clear-to-send record from rank %d (receive %llu)",
                         c->rank, peer, (unsigned long long)pe->cts_seen[space]);
            return 0;
        }
        pe->mbox_full[space][s] = 0;
        pe->cts[space][s] = rec;
        pe->cts_valid[space][s] = 1;
        pe->cts_seen[space]++;
    }
}

/* Send: take the earliest record of this send's tag and check it matches.
 * Sends are visited in the order posted, so the first send of a tag meets
 * the first receive of that tag. */
static int send_take_cts(struct rl_comm *c, struct rl_request *r)
{
    rl_peer_t *pe = &c->peers[r->peer];
    if (!collect_cts(c, pe, r->peer, r->space))
        return 0;
    rl_ctrl_t *rec = NULL;
    unsigned best = 0;
    for (unsigned s = 0; s < RL_P2P_SLOTS; s++) {
        rl_ctrl_t *x = &pe->cts[r->space][s];
        if (pe->cts_valid[r->space][s] && x->tag == r->ptag && (!rec || x->seq < rec->seq)) {
            rec = x;
            best = s;
        }
    }
    if (!rec)
        return 0;
    pe->cts_valid[r->space][best] = 0;
    size_t bytes = r->count * r->esize;
    if (rec->count != r->count || rec->dtype != (uint32_t)r->dtype) {
        rl_comm_fail(c, RL_ERR_MISMATCH,
                     "send %llu (tag %u) from rank %d to rank %d: the sender passes %zu x %s, the receiver expects "
                     "%llu x %s",
                     (unsigned long long)r->pseq, r->ptag, c->rank, r->peer, r->count, rl_dtype_name(r->dtype),
                     (unsigned long long)rec->count, rl_dtype_name((rl_dtype_t)rec->dtype));
        return 0;
    }
    if (bytes && rec->out_len < bytes) {
        rl_comm_fail(c, RL_ERR_PROTOCOL, "rank %d announced a receive buffer of %llu bytes, %zu needed", r->peer,
                     (unsigned long long)rec->out_len, bytes);
        return 0;
    }
    r->cts_seq = rec->seq;
    r->raddr = rec->out_addr;
    r->rkey = rec->out_key;
    r->out_len = rec->out_len;
    r->have_cts = 1;
    return 1;
}

static int send_chunks(struct rl_comm *c, struct rl_request *r)
{
    rl_peer_t *pe = &c->peers[r->peer];
    size_t bytes = r->count * r->esize;
    int moved = 0;
    if (bytes && !r->in_reg) {
        rl_status_t st = rl_reg_acquire(c, r->in, bytes, RL_ACCESS_LOCAL, &r->in_reg);
        if (st != RL_OK) {
            rl_comm_fail(c, st, "rank %d: registering the send buffer for rank %d failed: %s", c->rank, r->peer,
                         c->ops->last_error(c->tp));
            return 0;
        }
    }
    while (r->posted < r->nchunks && pe->send_inflight[r->space] < 2 * c->depth) {
        uint64_t off = r->posted * c->chunk_bytes;
        size_t len = bytes ? (bytes - off < c->chunk_bytes ? bytes - off : c->chunk_bytes) : 0;
        /* an empty message is a zero-length write aimed at the peer's
         * mailbox: a region that exists, unlike its empty buffer */
        uint64_t raddr = bytes ? r->raddr + off : pe->peer_mbox.addr, rkey = bytes ? r->rkey : pe->peer_mbox.key;
        rl_status_t st = c->ops->write_imm(pe->conn, len ? r->in + off : NULL, len, len ? r->in_reg->mr : NULL, raddr,
                                           rkey, rl_imm_p2p_encode(RL_P2P_DATA, r->space, c->rank, r->cts_seq),
                                           p2p_ctx(RL_CTX_P2P_DATA, r->space, r->peer));
        if (st == RL_ERR_AGAIN)
            break;
        if (st != RL_OK) {
            rl_comm_fail(c, st, "rank %d: write to rank %d failed: %s", c->rank, r->peer, c->ops->last_error(c->tp));
            break;
        }
        pe->send_inflight[r->space]++;
        r->posted++;
        moved = 1;
    }
    return moved;
}

/* Advance one request; nonzero when it finished. */
static int advance(struct rl_comm *c, struct rl_request *r)
{
    rl_peer_t *pe = &c->peers[r->peer];
    int moved = 0;
    if (r->is_send) {
        if (!r->have_cts)
            moved |= send_take_cts(c, r);
        if (r->have_cts && !r->writing && !pe->send_active[r->space])
            r->writing = pe->send_active[r->space] = 1;
        if (r->writing)
            moved |= send_chunks(c, r);
        if (moved)
            r->last_progress = rl_now_ns();
        if (r->writing && r->posted == r->nchunks && pe->send_inflight[r->space] == 0) {
            pe->send_active[r->space] = 0;
            return 1;
        }
        return 0;
    }
    if (!r->cts_sent && recv_post_cts(c, r))
        r->last_progress = rl_now_ns();
    if (r->cts_sent && r->arrived == r->nchunks) {
        pe->rx_busy[r->space][r->pseq % RL_P2P_SLOTS] = 0;
        return 1;
    }
    return 0;
}

void rl_p2p_progress(struct rl_comm *c)
{
    struct rl_request *r = c->p2p_head;
    while (r && c->failed == RL_OK) {
        struct rl_request *nx = r->next;
        if (advance(c, r)) {
            rl_p2p_unlink(c, r);
            release(c, r);
            r->status = RL_OK;
            r->comm = NULL;
        }
        r = nx;
    }
}

void rl_p2p_handle_imm(struct rl_comm *c, uint32_t imm)
{
    rl_p2p_imm_t d;
    if (!c->peers || rl_imm_p2p_decode(imm, c->nranks, &d) != RL_OK || d.rank == c->rank) {
        rl_comm_fail(c, RL_ERR_PROTOCOL, "rank %d: malformed point-to-point immediate 0x%08x", c->rank, imm);
        return;
    }
    rl_peer_t *pe = &c->peers[d.rank];
    if (d.kind == RL_P2P_EAGER) {
        rl_rd_handle_imm(c, d.rank, d.tag, d.space);
        return;
    }
    if (d.kind == RL_P2P_CTS) {
        unsigned slot = d.tag % RL_P2P_SLOTS;
        if (pe->mbox_full[d.space][slot])
            goto bad;
        pe->mbox_full[d.space][slot] = 1;
        return;
    }
    for (struct rl_request *r = c->p2p_head; r; r = r->next) {
        if (r->is_send || r->peer != d.rank || r->space != d.space || !r->cts_sent ||
            (r->pseq & RL_IMM_TAG_MASK) != d.tag)
            continue;
        if (r->arrived >= r->nchunks)
            goto bad;
        r->arrived++;
        return;
    }
bad:
    rl_comm_fail(c, RL_ERR_PROTOCOL, "rank %d: unexpected point-to-point message from rank %d (kind %d, tag %u)",
                 c->rank, d.rank, (int)d.kind, d.tag);
}

void rl_p2p_send_done(struct rl_comm *c, void *ctx, rl_status_t st)
{
    int peer = ctx_peer(ctx), kind = rl_ctx_kind(ctx), space = ctx_space(ctx);
    if (!c->peers || peer >= c->nranks) {
        rl_comm_fail(c, RL_ERR_INTERNAL, "rank %d: completion with an unknown context %p", c->rank, ctx);
        return;
    }
    if (st != RL_OK) {
        rl_comm_transport_failure(c, peer);
        return;
    }
    rl_peer_t *pe = &c->peers[peer];
    if (kind == RL_CTX_P2P_EAGER && c->eager_inflight > 0) {
        c->eager_inflight--;
        c->eager_tx_busy[(uintptr_t)ctx & 0xf][((uintptr_t)ctx >> 4) & 1] = 0;
    }
    else if (kind == RL_CTX_P2P_CTS && pe->ctl_inflight > 0)
        pe->ctl_inflight--;
    else if (kind == RL_CTX_P2P_DATA && pe->send_inflight[space] > 0)
        pe->send_inflight[space]--;
}

int rl_p2p_busy(struct rl_comm *c)
{
    if (!c->peers)
        return 0;
    if (c->p2p_head || c->eager_inflight)
        return 1;
    for (int p = 0; p < c->nranks; p++)
        if (c->peers[p].ctl_inflight || c->peers[p].send_inflight[0] || c->peers[p].send_inflight[1])
            return 1;
    return 0;
}

void rl_p2p_describe_wait(struct rl_comm *c, struct rl_request *r, char *buf, size_t len)
{
    (void)c;
    if (r->is_send && !r->have_cts)
        snprintf(buf, len,
                 "send %llu (tag %u) to rank %d: rank %d has not announced a receive of that tag (not posted, or "
                 "behind %d earlier receives)",
                 (unsigned long long)r->pseq, r->ptag, r->peer, r->peer, RL_P2P_SLOTS);
    else if (r->is_send && !r->writing)
        snprintf(buf, len, "send %llu to rank %d waits for another send to it", (unsigned long long)r->pseq,
                 r->peer);
    else if (r->is_send)
        snprintf(buf, len, "send %llu to rank %d: %llu of %llu chunks written, waiting for completions",
                 (unsigned long long)r->pseq, r->peer, (unsigned long long)r->posted, (unsigned long long)r->nchunks);
    else if (!r->cts_sent)
        snprintf(buf, len, "receive %llu from rank %d waits for an earlier receive from it",
                 (unsigned long long)r->pseq, r->peer);
    else
        snprintf(buf, len, "receive %llu from rank %d: %llu of %llu chunks arrived (has rank %d posted the send?)",
                 (unsigned long long)r->pseq, r->peer, (unsigned long long)r->arrived,
                 (unsigned long long)r->nchunks, r->peer);
}
