/*
 * Latency-optimal all-reduce for small messages: recursive doubling with
 * eager writes (and the barrier, a one-element all-reduce).
 *
 * At level k a rank and its partner (virtual rank ^ 2^k) write their whole
 * partial result straight into each other's landing slot and reduce what
 * arrives: log2(n) steps of one message each, with no clear-to-send
 * handshake, because every rank owns a landing slot per step and per
 * operation parity that only its partner of that step writes. A slot is
 * never overwritten early: the partner can only start operation seq + 2
 * after this rank sent its data for seq + 1, which it does after consuming
 * the slot of seq. Groups that are not a power of two fold the first
 * 2 * (n - 2^m) ranks in pairs first and hand the result back at the end.
 *
 * Each message starts with a control record (the call and the step), which
 * the receiver checks against its own call, so ranks that called different
 * operations fail with RL_ERR_MISMATCH instead of mixing data.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/comm.h"
#include "core/log.h"

enum { PH_FOLD, PH_LEVELS, PH_UNFOLD, PH_WAIT_UNFOLD, PH_DONE };

static int floor_log2(int n)
{
    int m = 0;
    while ((2 << m) <= n)
        m++;
    return m;
}

/* Landing slots: (step, parity); steps 0..m-1 are the levels, m the fold,
 * m + 1 the result handed back. */
static size_t slot_bytes(const struct rl_comm *c) { return RL_CTRL_WIRE_SIZE + ((c->cfg.rd_max_bytes + 63) & ~(size_t)63); }
static int nsteps(int n) { return floor_log2(n) + 2; }

int rl_rd_usable(const struct rl_comm *c, size_t bytes)
{
    if (!c->land || bytes > c->cfg.rd_max_bytes || c->nranks < 2)
        return 0;
    return !strcmp(c->cfg.allreduce_algo, "auto") || !strcmp(c->cfg.allreduce_algo, "rd");
}

rl_status_t rl_rd_setup(struct rl_comm *c, rl_rkey_t *land_key)
{
    memset(land_key, 0, sizeof(*land_key));
    if (!c->cfg.rd_max_bytes || c->nranks < 2 || nsteps(c->nranks) > (int)RL_IMM_TAG_MASK + 1)
        return RL_OK;
    size_t slot = slot_bytes(c), steps = (size_t)nsteps(c->nranks);
    size_t land_len = steps * 2 * slot, tx_len = steps * 2 * slot;
    if (posix_memalign((void **)&c->land, 4096, land_len) || posix_memalign((void **)&c->eager_tx, 4096, tx_len))
        return RL_ERR_NO_MEMORY;
    memset(c->land, 0, land_len);
    memset(c->eager_tx, 0, tx_len);
    rl_status_t st;
    if ((st = c->ops->mr_reg(c->tp, c->land, land_len, RL_ACCESS_LOCAL | RL_ACCESS_REMOTE_WRITE, &c->land_mr)) !=
            RL_OK ||
        (st = c->ops->mr_reg(c->tp, c->eager_tx, tx_len, RL_ACCESS_LOCAL, &c->eager_tx_mr)) != RL_OK)
        return st;
    c->ops->mr_remote(c->land_mr, c->land, land_key);
    return RL_OK;
}

void rl_rd_teardown(struct rl_comm *c)
{
    if (c->land_mr)
        c->ops->mr_dereg(c->land_mr);
    if (c->eager_tx_mr)
        c->ops->mr_dereg(c->eager_tx_mr);
    free(c->land);
    free(c->eager_tx);
    c->land = c->eager_tx = NULL;
    c->land_mr = c->eager_tx_mr = NULL;
}

/* The real rank of virtual rank v among the 2^m that run the levels. */
static int real_rank(int v, int rem) { return v < rem ? 2 * v + 1 : v + rem; }

static rl_status_t send_step(struct rl_comm *c, struct rl_request *r, int step, int peer, const char *src)
{
    size_t bytes = r->count * r->esize, slot = slot_bytes(c);
    int par = (int)(r->seq & 1);
    if (c->eager_tx_busy[step][par])
        return RL_ERR_AGAIN; /* the write of two operations ago from this staging */
    uint8_t *tx = (uint8_t *)c->eager_tx + ((size_t)step * 2 + (size_t)par) * slot;
    rl_ctrl_t hdr = {.seq = r->seq, .coll = r->coll, .dtype = r->dtype, .op = r->op, .rank = c->rank,
                     .root = step, .count = r->count, .out_len = bytes};
    rl_ctrl_encode(&hdr, tx);
    if (bytes)
        memcpy(tx + RL_CTRL_WIRE_SIZE, src, bytes);
    size_t at = ((size_t)step * 2 + (size_t)par) * slot;
    rl_rkey_t *k = &c->peers[peer].peer_land;
    rl_status_t st = c->ops->write_imm(c->peers[peer].conn, tx, RL_CTRL_WIRE_SIZE + bytes, c->eager_tx_mr,
                                       k->addr + at, k->key,
                                       rl_imm_p2p_encode(RL_P2P_EAGER, par, c->rank, (uint64_t)step),
                                       (void *)(uintptr_t)((uintptr_t)peer << 13 | (uintptr_t)RL_CTX_P2P_EAGER << 8 |
                                                           (uintptr_t)par << 4 | (uintptr_t)step));
    if (st == RL_OK) {
        c->eager_inflight++;
        c->eager_tx_busy[step][par] = 1;
    }
    return st;
}

static void fail_mismatch(struct rl_comm *c, const struct rl_request *r, const rl_ctrl_t *h)
{
    rl_comm_fail(c, RL_ERR_MISMATCH,
                 "operation %llu differs between ranks: rank %d called %s(count=%zu, %s, %s), rank %d called "
                 "%s(count=%llu, %s, %s)",
                 (unsigned long long)r->seq, c->rank, rl_coll_name(r->coll), r->count, rl_dtype_name(r->dtype),
                 rl_op_name(r->op), h->rank, rl_coll_name(h->coll), (unsigned long long)h->count,
                 rl_dtype_name((rl_dtype_t)h->dtype), rl_op_name((rl_op_t)h->op));
}

/* The data of step `step` from `peer`, checked against this call; NULL
 * while it has not arrived (or after a failure). */
static const char *take_step(struct rl_comm *c, struct rl_request *r, int step, int peer)
{
    int par = (int)(r->seq & 1);
    if (!c->land_full[step][par])
        return NULL;
    const uint8_t *slot = (const uint8_t *)c->land + ((size_t)step * 2 + (size_t)par) * slot_bytes(c);
    rl_ctrl_t h;
    if (c->land_from[step][par] != peer || rl_ctrl_decode(slot, c->nranks, &h) != RL_OK || h.rank != peer ||
        h.root != step || h.seq != r->seq) {
        rl_comm_fail(c, RL_ERR_PROTOCOL, "rank %d: malformed eager message from rank %d (operation %llu, step %d)",
                     c->rank, c->land_from[step][par], (unsigned long long)r->seq, step);
        return NULL;
    }
    if (h.coll != (uint32_t)r->coll || h.count != r->count || h.dtype != (uint32_t)r->dtype ||
        h.op != (uint32_t)r->op || h.out_len != r->count * r->esize) {
        fail_mismatch(c, r, &h);
        return NULL;
    }
    c->land_full[step][par] = 0;
    return (const char *)slot + RL_CTRL_WIRE_SIZE;
}

static void start(struct rl_comm *c, struct rl_request *r)
{
    int n = c->nranks, m = floor_log2(n), rem = n - (1 << m);
    r->rd.m = m;
    r->rd.level = 0;
    r->rd.cur = r->in;
    if (c->rank < 2 * rem)
        r->rd.vrank = c->rank % 2 ? c->rank / 2 : -1;
    else
        r->rd.vrank = c->rank - rem;
    r->rd.phase = c->rank < 2 * rem ? PH_FOLD : PH_LEVELS;
}

static void finish_levels(struct rl_comm *c, struct rl_request *r)
{
    size_t bytes = r->count * r->esize;
    if (r->rd.cur != r->out && bytes)
        memmove(r->out, r->rd.cur, bytes);
    r->rd.cur = r->out;
    if (r->op == RL_AVG)
        rl_reduce_scale(r->out, r->count, r->dtype, c->nranks);
}

/* One move of the state machine; nonzero if it moved. */
static int step(struct rl_comm *c, struct rl_request *r)
{
    int n = c->nranks, m = r->rd.m, rem = n - (1 << m);
    const char *got;
    rl_status_t st = RL_OK;
    switch (r->rd.phase) {
    case PH_FOLD:
        if (r->rd.vrank < 0) { /* even: hand my input to rank + 1 */
            if ((st = send_step(c, r, m, c->rank + 1, r->in)) == RL_OK)
                r->rd.phase = PH_WAIT_UNFOLD;
            break;
        }
        if (!(got = take_step(c, r, m, c->rank - 1)))
            return 0;
        if (r->count)
            r->fn(r->out, r->in, got, r->count);
        r->rd.cur = r->out;
        r->rd.phase = PH_LEVELS;
        break;
    case PH_LEVELS: {
        int peer = real_rank(r->rd.vrank ^ (1 << r->rd.level), rem), sent_now = 0;
        if (!r->rd.sent) {
            if ((st = send_step(c, r, r->rd.level, peer, r->rd.cur)) != RL_OK)
                break;
            r->rd.sent = sent_now = 1;
        }
        if (!(got = take_step(c, r, r->rd.level, peer)))
            return sent_now;
        if (r->count)
            r->fn(r->out, r->rd.cur, got, r->count);
        r->rd.cur = r->out;
        r->rd.sent = 0;
        if (++r->rd.level == m) {
            finish_levels(c, r);
            r->rd.phase = c->rank < 2 * rem ? PH_UNFOLD : PH_DONE;
        }
        break;
    }
    case PH_UNFOLD:
        if ((st = send_step(c, r, m + 1, c->rank - 1, r->out)) == RL_OK)
            r->rd.phase = PH_DONE;
        break;
    case PH_WAIT_UNFOLD:
        if (!(got = take_step(c, r, m + 1, c->rank + 1)))
            return 0;
        if (r->count)
            memcpy(r->out, got, r->count * r->esize);
        r->rd.phase = PH_DONE;
        break;
    default: return 0;
    }
    if (st == RL_ERR_AGAIN)
        return 0;
    if (st != RL_OK) {
        rl_comm_fail(c, st, "rank %d: eager all-reduce write failed: %s", c->rank, c->ops->last_error(c->tp));
        return 0;
    }
    return 1;
}

int rl_rd_advance(struct rl_comm *c, struct rl_request *r)
{
    if (!r->started) {
        r->started = 1;
        r->last_progress = r->start_ns = rl_now_ns();
        /* An empty call on several ranks still sends its header-only
         * messages: every operation must reach each partner, or a rank
         * could run two operations ahead and write into a landing slot of
         * the same parity that its partner has not consumed yet. */
        if (c->nranks == 1 && rl_allreduce_trivial(c, r))
            return 1;
        start(c, r);
    }
    while (c->failed == RL_OK && r->rd.phase != PH_DONE && step(c, r))
        r->last_progress = rl_now_ns();
    if (c->failed != RL_OK)
        return 1;
    /* Done when the result is in place: the user's buffers are never
     * written from, and a later operation waits for a step's staging. */
    if (r->rd.phase == PH_DONE) {
        r->status = RL_OK;
        return 1;
    }
    return 0;
}

void rl_rd_check_foreign(struct rl_comm *c, const struct rl_request *r)
{
    if (!c->land || !r || r->algo == RL_ALGO_RD)
        return;
    int par = (int)(r->seq & 1);
    for (int s = 0; s < nsteps(c->nranks) && c->failed == RL_OK; s++) {
        rl_ctrl_t h;
        const uint8_t *slot = (const uint8_t *)c->land + ((size_t)s * 2 + (size_t)par) * slot_bytes(c);
        if (c->land_full[s][par] && rl_ctrl_decode(slot, c->nranks, &h) == RL_OK && h.seq == r->seq)
            fail_mismatch(c, r, &h);
    }
}

void rl_rd_handle_imm(struct rl_comm *c, int from, unsigned step, int parity)
{
    if (!c->land || (int)step >= nsteps(c->nranks) || c->land_full[step][parity]) {
        rl_comm_fail(c, RL_ERR_PROTOCOL, "rank %d: unexpected eager message from rank %d (step %u)", c->rank, from,
                     step);
        return;
    }
    c->land_full[step][parity] = 1;
    c->land_from[step][parity] = from;
    rl_rd_check_foreign(c, c->head);
}

void rl_rd_describe_wait(struct rl_comm *c, struct rl_request *r, char *buf, size_t len)
{
    int rem = c->nranks - (1 << r->rd.m);
    const char *name = rl_coll_name(r->coll);
    unsigned long long seq = (unsigned long long)r->seq;
    switch (r->rd.phase) {
    case PH_FOLD: snprintf(buf, len, "%s %llu (eager) waits for rank %d's data", name, seq, c->rank - 1); break;
    case PH_LEVELS:
        snprintf(buf, len, "%s %llu (eager) waits for rank %d's data at level %d", name, seq,
                 real_rank(r->rd.vrank ^ (1 << r->rd.level), rem), r->rd.level);
        break;
    case PH_WAIT_UNFOLD:
        snprintf(buf, len, "%s %llu (eager) waits for the result from rank %d", name, seq, c->rank + 1);
        break;
    default: snprintf(buf, len, "%s %llu (eager) waits for its writes to complete", name, seq); break;
    }
}
