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

#include "coll/p2p.h"
#include "core/clock.h"
#include "core/log.h"

/* One connection to every other rank, with a mailbox for the
 * clear-to-send records the peer writes. */
#define RL_P2P_SLOTS 4

typedef struct {
    rl_compl_t base;
    int kind, space, peer;
} p2p_cpl_t;
enum { CPL_DATA, CPL_CTS };

typedef struct {
    rl_conn_t conn;
    uint8_t *mbox; /* the peer's CTS records for my sends */
    rl_mr_t mbox_mr;
    uint8_t *ctrl_tx; /* my CTS records for its sends */
    rl_mr_t ctrl_tx_mr;
    rl_rkey_t peer_mbox;
    /* per matching space (RL_P2P_USER, RL_P2P_COLL) */
    uint8_t mbox_full[RL_P2P_SPACES][RL_P2P_SLOTS];
    uint8_t rx_busy[RL_P2P_SPACES][RL_P2P_SLOTS]; /* a receive holds this CTS slot */
    uint64_t send_seq[RL_P2P_SPACES], recv_seq[RL_P2P_SPACES]; /* next to assign */
    uint64_t cts_next[RL_P2P_SPACES];  /* receives announce themselves in order: the next one */
    /* send side: the peer's clear-to-send records, taken from the mailbox
     * in their order and kept until a send of their tag takes them */
    uint64_t cts_seen[RL_P2P_SPACES];
    rl_ctrl_t cts[RL_P2P_SPACES][RL_P2P_SLOTS];
    uint8_t cts_valid[RL_P2P_SPACES][RL_P2P_SLOTS];
    uint8_t send_active[RL_P2P_SPACES]; /* a send is writing: one at a time, its completions need no tag */
    int send_inflight[RL_P2P_SPACES];
    int ctl_inflight;
    p2p_cpl_t cts_cpl, data_cpl[RL_P2P_SPACES];
} peer_t;

typedef struct {
    peer_t *peers;
    struct rl_request *head, *tail; /* queued sends and receives */
} p2p_t;

/* A send's or receive's own state. */
typedef struct {
    int peer, is_send, cts_sent, have_cts, space;
    uint32_t ptag;    /* the user's tag (0 for tag-less calls and collectives) */
    uint64_t cts_seq; /* send: the receive it met (its data immediates name it) */
    int writing;      /* send: the active one to its peer */
    uint64_t pseq, nchunks, posted, arrived;
    uint64_t out_len; /* send: the receiver's buffer size */
    uint64_t raddr, rkey;
} msg_t;

static p2p_t *state(struct rl_comm *c) { return RL_ALGO_STATE(c, &rl_algo_p2p); }
static msg_t *M(struct rl_request *r) { return RL_PRIV(r, msg_t); }
static const msg_t *CM(const struct rl_request *r) { return RL_PRIV(r, const msg_t); }

/* Mailbox slot of a pair's message seq in a space. */
static unsigned mslot(int space, uint64_t seq) { return (unsigned)space * RL_P2P_SLOTS + (unsigned)(seq % RL_P2P_SLOTS); }

/* What each rank publishes for one peer at set-up. */
typedef struct {
    char backend[16];
    uint32_t len;
    uint8_t blob[RL_TP_BLOB_MAX];
    rl_rkey_t mbox;
} peer_rec_t;

static int p2p_wanted(const struct rl_comm *c);

/* From the settings and the group alone, so that every rank (and
 * ringlet-info) answers alike; set-up connects exactly then. */
int rl_p2p_enabled(const struct rl_comm *c)
{
    return c->nranks > 1 && c->nranks <= RL_IMM_P2P_RANK_MAX + 1 && p2p_wanted(c);
}

const rl_conn_t *rl_p2p_conn(struct rl_comm *c, int peer) { return &state(c)->peers[peer].conn; }

static void send_done(struct rl_comm *c, rl_compl_t *self, rl_status_t st);

static rl_status_t peer_setup(struct rl_comm *c, int p, peer_rec_t *rec)
{
    peer_t *pe = &state(c)->peers[p];
    size_t mlen = RL_P2P_SPACES * RL_P2P_SLOTS * RL_CTRL_WIRE_SIZE;
    if (posix_memalign((void **)&pe->mbox, 4096, 4096) || posix_memalign((void **)&pe->ctrl_tx, 4096, 4096))
        return RL_ERR_NO_MEMORY;
    memset(pe->mbox, 0, mlen);
    memset(pe->ctrl_tx, 0, mlen);
    pe->cts_cpl = (p2p_cpl_t){.base.fn = send_done, .kind = CPL_CTS, .peer = p};
    for (int sp = 0; sp < RL_P2P_SPACES; sp++)
        pe->data_cpl[sp] = (p2p_cpl_t){.base.fn = send_done, .kind = CPL_DATA, .space = sp, .peer = p};
    rl_status_t st;
    if ((st = rl_mr_reg(c, pe->mbox, mlen, RL_ACCESS_REMOTE_WRITE, &pe->mbox_mr)) != RL_OK ||
        (st = rl_mr_reg(c, pe->ctrl_tx, mlen, RL_ACCESS_LOCAL, &pe->ctrl_tx_mr)) != RL_OK)
        return st;
    size_t l = RL_TP_BLOB_MAX;
    if ((st = rl_conn_create(c, p, 0, &pe->conn, rec->blob, &l)) != RL_OK)
        return st;
    snprintf(rec->backend, sizeof(rec->backend), "%s", rl_conn_ops(c, &pe->conn)->name);
    rl_mr_remote(c, &pe->mbox_mr, &pe->conn, pe->mbox, &rec->mbox);
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

static void handle_imm(struct rl_comm *c, uint32_t imm);

static rl_status_t setup(struct rl_comm *c, int64_t dl, char *err, size_t len)
{
    if (strcmp(c->cfg.p2p, "on") && strcmp(c->cfg.p2p, "off") && strcmp(c->cfg.p2p, "auto")) {
        snprintf(err, len, "RINGLET_P2P=%s: use on, off or auto", c->cfg.p2p);
        return RL_ERR_CONFIG;
    }
    p2p_t *ps = calloc(1, sizeof(*ps));
    if (!ps)
        return RL_ERR_NO_MEMORY;
    RL_ALGO_STATE(c, &rl_algo_p2p) = ps;
    rl_comm_route_imm(c, RL_IMMC_P2P, handle_imm);
    if (!rl_p2p_enabled(c))
        return RL_OK;
    int n = c->nranks;
    ps->peers = calloc((size_t)n, sizeof(peer_t));
    peer_rec_t *mine = calloc((size_t)n, sizeof(peer_rec_t));
    peer_rec_t *all = calloc((size_t)n * (size_t)n, sizeof(peer_rec_t));
    rl_status_t st = ps->peers && mine && all ? RL_OK : RL_ERR_NO_MEMORY;
    for (int p = 0; p < n && st == RL_OK; p++)
        if (p != c->rank && (st = peer_setup(c, p, &mine[p])) != RL_OK)
            snprintf(err, len, "rank %d: setting up the connection to rank %d failed: %s", c->rank, p,
                     rl_comm_tp_error(c));
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
        const char *mine_tp = rl_conn_ops(c, &ps->peers[p].conn)->name;
        if (rec->len > RL_TP_BLOB_MAX || strncmp(rec->backend, mine_tp, sizeof(rec->backend))) {
            snprintf(err, len,
                     "rank %d: malformed point-to-point connection data from rank %d (its transport %.15s, "
                     "ours %s: set RINGLET_TRANSPORT and RINGLET_INTRA_TRANSPORT alike)",
                     c->rank, p, rec->backend, mine_tp);
            st = RL_ERR_PROTOCOL;
            break;
        }
        ps->peers[p].peer_mbox = rec->mbox;
        if ((st = rl_conn_establish(c, &ps->peers[p].conn, rec->blob, rec->len, dl)) != RL_OK)
            snprintf(err, len, "rank %d: connecting to rank %d for send/recv failed: %s", c->rank, p,
                     rl_comm_tp_error(c));
    }
    free(mine);
    free(all);
    if (st != RL_OK) {
        rl_boot_abort(c->boot, st, c->rank, err);
        return st;
    }
    return rl_comm_sync(c, dl, err, len);
}

/* Messages still queued at destruction: the user's are ended (their owner
 * frees them), the algorithms' own are freed here. */
static void teardown(struct rl_comm *c)
{
    p2p_t *ps = state(c);
    if (!ps)
        return;
    while (ps->head) {
        struct rl_request *r = ps->head;
        ps->head = r->next;
        r->next = NULL;
        if (r->status == RL_INPROGRESS)
            r->status = RL_ERR_ABORTED;
        rl_request_release(c, r);
        r->comm = NULL;
        if (r->internal)
            free(r);
    }
    ps->tail = NULL;
    for (int p = 0; ps->peers && p < c->nranks; p++) {
        peer_t *pe = &ps->peers[p];
        rl_conn_destroy(c, &pe->conn);
        rl_mr_dereg(c, &pe->mbox_mr);
        rl_mr_dereg(c, &pe->ctrl_tx_mr);
        free(pe->mbox);
        free(pe->ctrl_tx);
    }
    free(ps->peers);
    free(ps);
    RL_ALGO_STATE(c, &rl_algo_p2p) = NULL;
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
    struct rl_request *r = rl_request_alloc(c, &rl_algo_p2p);
    if (!r)
        return RL_ERR_NO_MEMORY;
    p2p_t *ps = state(c);
    peer_t *pe = &ps->peers[peer];
    msg_t *m = M(r);
    r->coll = RL_COLL_SENDRECV;
    r->in = is_send ? buf : NULL;
    r->out = is_send ? NULL : (void *)buf;
    r->count = count;
    r->dtype = dtype;
    r->esize = rl_dtype_size(dtype);
    r->status = RL_INPROGRESS;
    m->space = space;
    m->is_send = is_send;
    m->peer = peer;
    m->ptag = tag;
    m->pseq = is_send ? pe->send_seq[space]++ : pe->recv_seq[space]++;
    m->nchunks = chunks_of(c, count * r->esize);
    if (ps->tail)
        ps->tail->next = r;
    else
        ps->head = r;
    ps->tail = r;
    *out = r;
    return RL_OK;
}

rl_status_t rl_p2p_coll(struct rl_comm *c, int is_send, const void *buf, size_t count, rl_dtype_t dtype, int peer,
                        rl_regent_t *reg, struct rl_request **out)
{
    rl_status_t st = rl_p2p_new(c, RL_P2P_COLL, is_send, count ? buf : NULL, count, dtype, peer, out);
    if (st != RL_OK)
        return st;
    (*out)->internal = 1;
    if (reg && count) {
        reg->refs++;
        if (is_send)
            (*out)->in_reg = reg;
        else
            (*out)->out_reg = reg;
    }
    return RL_OK;
}

static void unlink_msg(struct rl_comm *c, struct rl_request *r)
{
    p2p_t *ps = state(c);
    struct rl_request **pp = &ps->head, *prev = NULL;
    while (*pp && *pp != r) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = r->next;
    if (ps->tail == r)
        ps->tail = prev;
    r->next = NULL;
}

/* A message holds nothing but its registrations, which the core releases. */
static void release(struct rl_comm *c, struct rl_request *r) { (void)c, (void)r; }

void rl_p2p_drop(struct rl_comm *c, struct rl_request **msg)
{
    struct rl_request *r = *msg;
    if (!r)
        return;
    *msg = NULL;
    if (r->comm && c->failed != RL_OK)
        return; /* still queued: the failure path walks that queue; destroy frees it */
    if (r->comm) {
        unlink_msg(c, r);
        rl_request_release(c, r);
    }
    free(r);
}

int rl_p2p_all_ok(struct rl_request *const *msgs, int n)
{
    for (int i = 0; i < n; i++)
        if (msgs[i] && msgs[i]->status != RL_OK)
            return 0;
    return 1;
}

void rl_p2p_drop_all(struct rl_comm *c, struct rl_request **msgs, int n)
{
    for (int i = 0; msgs && i < n; i++)
        rl_p2p_drop(c, &msgs[i]);
}

int rl_p2p_describe_running(struct rl_comm *c, struct rl_request *const *msgs, int n, char *buf, size_t len)
{
    for (int i = 0; msgs && i < n; i++) {
        if (msgs[i] && msgs[i]->status == RL_INPROGRESS) {
            msgs[i]->algo->describe_wait(c, msgs[i], buf, len);
            return 1;
        }
    }
    return 0;
}

/* Receive: register, then tell the sender where to write. */
static int recv_post_cts(struct rl_comm *c, struct rl_request *r)
{
    msg_t *m = M(r);
    peer_t *pe = &state(c)->peers[m->peer];
    unsigned slot = mslot(m->space, m->pseq);
    /* In order: a later receive whose slot frees first must not announce
     * itself before an earlier one, whose sender reads that slot first. */
    if (m->pseq != pe->cts_next[m->space] || pe->rx_busy[m->space][m->pseq % RL_P2P_SLOTS])
        return 0;
    size_t bytes = r->count * r->esize;
    rl_status_t st;
    if (bytes && !r->out_reg &&
        (st = rl_reg_acquire(c, r->out, bytes, RL_ACCESS_LOCAL | RL_ACCESS_REMOTE_WRITE, &r->out_reg)) != RL_OK) {
        rl_comm_fail(c, st, "rank %d: registering the receive buffer for rank %d failed: %s", c->rank, m->peer,
                     rl_comm_tp_error(c));
        return 0;
    }
    rl_ctrl_t rec = {.seq = m->pseq, .coll = RL_COLL_SENDRECV, .dtype = r->dtype, .tag = m->ptag,
                     .rank = c->rank, .count = r->count};
    if (bytes) {
        rl_rkey_t rk;
        rl_mr_remote(c, &r->out_reg->mr, &pe->conn, r->out, &rk);
        rec.out_addr = rk.addr;
        rec.out_key = rk.key;
        rec.out_len = bytes;
    }
    uint8_t *buf = pe->ctrl_tx + slot * RL_CTRL_WIRE_SIZE;
    rl_ctrl_encode(&rec, buf);
    st = rl_conn_write_imm(c, &pe->conn, buf, RL_CTRL_WIRE_SIZE, &pe->ctrl_tx_mr,
                           pe->peer_mbox.addr + slot * RL_CTRL_WIRE_SIZE, pe->peer_mbox.key,
                           rl_imm_p2p_encode(RL_P2P_CTS, m->space, c->rank, m->pseq), &pe->cts_cpl.base);
    if (st == RL_ERR_AGAIN)
        return 0;
    if (st != RL_OK) {
        rl_comm_fail(c, st, "rank %d: sending clear-to-send to rank %d failed: %s", c->rank, m->peer,
                     rl_comm_tp_error(c));
        return 0;
    }
    pe->ctl_inflight++;
    pe->cts_next[m->space]++;
    pe->rx_busy[m->space][m->pseq % RL_P2P_SLOTS] = 1;
    m->cts_sent = 1;
    return 1;
}

/* Send side: take the peer's new clear-to-send records from the mailbox,
 * in the order it posted them; false (and the communicator failed) on a
 * malformed one. */
static int collect_cts(struct rl_comm *c, peer_t *pe, int peer, int space)
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
    msg_t *m = M(r);
    peer_t *pe = &state(c)->peers[m->peer];
    if (!collect_cts(c, pe, m->peer, m->space))
        return 0;
    rl_ctrl_t *rec = NULL;
    unsigned best = 0;
    for (unsigned s = 0; s < RL_P2P_SLOTS; s++) {
        rl_ctrl_t *x = &pe->cts[m->space][s];
        if (pe->cts_valid[m->space][s] && x->tag == m->ptag && (!rec || x->seq < rec->seq)) {
            rec = x;
            best = s;
        }
    }
    if (!rec)
        return 0;
    pe->cts_valid[m->space][best] = 0;
    size_t bytes = r->count * r->esize;
    if (rec->count != r->count || rec->dtype != (uint32_t)r->dtype) {
        rl_comm_fail(c, RL_ERR_MISMATCH,
                     "send %llu (tag %u) from rank %d to rank %d: the sender passes %zu x %s, the receiver expects "
                     "%llu x %s",
                     (unsigned long long)m->pseq, m->ptag, c->rank, m->peer, r->count, rl_dtype_name(r->dtype),
                     (unsigned long long)rec->count, rl_dtype_name((rl_dtype_t)rec->dtype));
        return 0;
    }
    if (bytes && rec->out_len < bytes) {
        rl_comm_fail(c, RL_ERR_PROTOCOL, "rank %d announced a receive buffer of %llu bytes, %zu needed", m->peer,
                     (unsigned long long)rec->out_len, bytes);
        return 0;
    }
    m->cts_seq = rec->seq;
    m->raddr = rec->out_addr;
    m->rkey = rec->out_key;
    m->out_len = rec->out_len;
    m->have_cts = 1;
    return 1;
}

static int send_chunks(struct rl_comm *c, struct rl_request *r)
{
    msg_t *m = M(r);
    peer_t *pe = &state(c)->peers[m->peer];
    size_t bytes = r->count * r->esize;
    int moved = 0;
    if (bytes && !r->in_reg) {
        rl_status_t st = rl_reg_acquire(c, r->in, bytes, RL_ACCESS_LOCAL, &r->in_reg);
        if (st != RL_OK) {
            rl_comm_fail(c, st, "rank %d: registering the send buffer for rank %d failed: %s", c->rank, m->peer,
                         rl_comm_tp_error(c));
            return 0;
        }
    }
    while (m->posted < m->nchunks && pe->send_inflight[m->space] < 2 * c->depth) {
        uint64_t off = m->posted * c->chunk_bytes;
        size_t len = bytes ? (bytes - off < c->chunk_bytes ? bytes - off : c->chunk_bytes) : 0;
        /* an empty message is a zero-length write aimed at the peer's
         * mailbox: a region that exists, unlike its empty buffer */
        uint64_t raddr = bytes ? m->raddr + off : pe->peer_mbox.addr, rkey = bytes ? m->rkey : pe->peer_mbox.key;
        rl_status_t st = rl_conn_write_imm(c, &pe->conn, len ? r->in + off : NULL, len, len ? &r->in_reg->mr : NULL,
                                           raddr, rkey, rl_imm_p2p_encode(RL_P2P_DATA, m->space, c->rank, m->cts_seq),
                                           &pe->data_cpl[m->space].base);
        if (st == RL_ERR_AGAIN)
            break;
        if (st != RL_OK) {
            rl_comm_fail(c, st, "rank %d: write to rank %d failed: %s", c->rank, m->peer, rl_comm_tp_error(c));
            break;
        }
        pe->send_inflight[m->space]++;
        m->posted++;
        moved = 1;
    }
    return moved;
}

/* Advance one message; nonzero when it finished. */
static int advance(struct rl_comm *c, struct rl_request *r)
{
    msg_t *m = M(r);
    peer_t *pe = &state(c)->peers[m->peer];
    if (m->is_send) {
        if (!m->have_cts)
            send_take_cts(c, r);
        if (m->have_cts && !m->writing && !pe->send_active[m->space])
            m->writing = pe->send_active[m->space] = 1;
        if (m->writing)
            send_chunks(c, r);
        if (m->writing && m->posted == m->nchunks && pe->send_inflight[m->space] == 0) {
            pe->send_active[m->space] = 0;
            return 1;
        }
        return 0;
    }
    if (!m->cts_sent)
        recv_post_cts(c, r);
    if (m->cts_sent && m->arrived == m->nchunks) {
        pe->rx_busy[m->space][m->pseq % RL_P2P_SLOTS] = 0;
        return 1;
    }
    return 0;
}

static void comm_progress(struct rl_comm *c)
{
    struct rl_request *r = state(c)->head;
    while (r && c->failed == RL_OK) {
        struct rl_request *nx = r->next;
        if (advance(c, r)) {
            unlink_msg(c, r);
            rl_request_release(c, r);
            r->status = RL_OK;
            r->comm = NULL;
        }
        r = nx;
    }
}

static void handle_imm(struct rl_comm *c, uint32_t imm)
{
    rl_p2p_imm_t d;
    p2p_t *ps = state(c);
    if (!ps->peers || rl_imm_p2p_decode(imm, c->nranks, &d) != RL_OK || d.rank == c->rank) {
        rl_comm_fail(c, RL_ERR_PROTOCOL, "rank %d: malformed point-to-point immediate 0x%08x", c->rank, imm);
        return;
    }
    peer_t *pe = &ps->peers[d.rank];
    if (d.kind == RL_P2P_CTS) {
        unsigned slot = d.tag % RL_P2P_SLOTS;
        if (pe->mbox_full[d.space][slot])
            goto bad;
        pe->mbox_full[d.space][slot] = 1;
        return;
    }
    for (struct rl_request *r = ps->head; r; r = r->next) {
        msg_t *m = M(r);
        if (m->is_send || m->peer != d.rank || m->space != d.space || !m->cts_sent ||
            (m->pseq & RL_IMM_TAG_MASK) != d.tag)
            continue;
        if (m->arrived >= m->nchunks)
            goto bad;
        m->arrived++;
        return;
    }
bad:
    rl_comm_fail(c, RL_ERR_PROTOCOL, "rank %d: unexpected point-to-point message from rank %d (kind %d, tag %u)",
                 c->rank, d.rank, (int)d.kind, d.tag);
}

static void send_done(struct rl_comm *c, rl_compl_t *self, rl_status_t st)
{
    p2p_cpl_t *k = RL_CONTAINER_OF(self, p2p_cpl_t, base);
    if (st != RL_OK) {
        rl_comm_transport_failure(c, k->peer);
        return;
    }
    peer_t *pe = &state(c)->peers[k->peer];
    if (k->kind == CPL_CTS && pe->ctl_inflight > 0)
        pe->ctl_inflight--;
    else if (k->kind == CPL_DATA && pe->send_inflight[k->space] > 0)
        pe->send_inflight[k->space]--;
}

static int busy(struct rl_comm *c)
{
    p2p_t *ps = state(c);
    if (!ps || !ps->peers)
        return 0;
    if (ps->head)
        return 1;
    for (int p = 0; p < c->nranks; p++)
        if (ps->peers[p].ctl_inflight || ps->peers[p].send_inflight[0] || ps->peers[p].send_inflight[1])
            return 1;
    return 0;
}

static void comm_fail(struct rl_comm *c, rl_status_t st)
{
    for (struct rl_request *r = state(c)->head; r; r = r->next) {
        r->status = st;
        rl_request_release(c, r);
    }
}

static void describe_wait(struct rl_comm *c, struct rl_request *r, char *buf, size_t len)
{
    const msg_t *m = CM(r);
    c->stall_peer = m->peer;
    if (m->is_send && !m->have_cts)
        snprintf(buf, len,
                 "send %llu (tag %u) to rank %d: rank %d has not announced a receive of that tag (not posted, or "
                 "behind %d earlier receives)",
                 (unsigned long long)m->pseq, m->ptag, m->peer, m->peer, RL_P2P_SLOTS);
    else if (m->is_send && !m->writing)
        snprintf(buf, len, "send %llu to rank %d waits for another send to it", (unsigned long long)m->pseq,
                 m->peer);
    else if (m->is_send)
        snprintf(buf, len, "send %llu to rank %d: %llu of %llu chunks written, waiting for completions",
                 (unsigned long long)m->pseq, m->peer, (unsigned long long)m->posted, (unsigned long long)m->nchunks);
    else if (!m->cts_sent)
        snprintf(buf, len, "receive %llu from rank %d waits for an earlier receive from it",
                 (unsigned long long)m->pseq, m->peer);
    else
        snprintf(buf, len, "receive %llu from rank %d: %llu of %llu chunks arrived (has rank %d posted the send?)",
                 (unsigned long long)m->pseq, m->peer, (unsigned long long)m->arrived,
                 (unsigned long long)m->nchunks, m->peer);
}

static int never(const struct rl_comm *c, const rl_call_t *call)
{
    (void)c, (void)call;
    return 0; /* not chosen per call: send/recv and other algorithms use it */
}

const rl_algo_t rl_algo_p2p = {
    .id = RL_ALGO_ID_p2p,
    .name = "p2p",
    .desc = "send/recv: one connection per pair, receiver-driven clear-to-send, zero copy",
    .colls = RL_COLL_BIT(RL_COLL_SENDRECV),
    .state_size = sizeof(msg_t),
    .comm_setup = setup,
    .comm_teardown = teardown,
    .usable = never,
    .release = release,
    .forget = unlink_msg,
    .describe_wait = describe_wait,
    .comm_progress = comm_progress,
    .busy = busy,
    .comm_fail = comm_fail,
};
