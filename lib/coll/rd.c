/*
 * Latency-optimal all-reduce for small messages: recursive doubling with
 * eager writes (and the barrier, a one-element all-reduce).
 *
 * At level k a rank and its partner (virtual rank ^ 2^k) write their whole
 * partial result straight into each other's landing slot and reduce what
 * arrives: log2(n) steps of one message each, with no clear-to-send
 * handshake, because every rank owns a landing slot per step and per
 * parity of the eager operations' count that only its partner of that step
 * writes. A slot is never overwritten early: the partner can only start
 * eager operation k + 2 after this rank sent its data for k + 1, which it
 * does after consuming the slot of k (counting eager operations only:
 * other algorithms in between need not make the partners wait). Groups that are not a power of two fold the first
 * 2 * (n - 2^m) ranks in pairs first and hand the result back at the end.
 *
 * Each message starts with a control record (the call and the step), which
 * the receiver checks against its own call, so ranks that called different
 * operations fail with RL_ERR_MISMATCH instead of mixing data.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll/p2p.h"
#include "core/clock.h"
#include "core/comm.h"
#include "core/log.h"

enum { PH_FOLD, PH_LEVELS, PH_UNFOLD, PH_WAIT_UNFOLD, PH_DONE };
#define MAX_STEPS 16 /* the step travels in the immediate's 4-bit tag */

typedef struct {
    rl_compl_t base;
    int step, par, peer;
} rd_cpl_t;

/* The communicator's landing slots peers write, by step and operation
 * parity; what this rank sends is staged per step and parity. */
typedef struct {
    char *land, *eager_tx;
    rl_mr_t land_mr, eager_tx_mr;
    rl_rkey_t *peer_land; /* [nranks]: where my messages to each peer go */
    uint8_t land_full[MAX_STEPS][2];
    int nfull; /* slots landed and not yet taken: none is what every other algorithm's start sees */
    int land_from[MAX_STEPS][2];
    uint64_t nops;                    /* eager operations started: slots go by its parity */
    int inflight;                     /* writes not yet completed, all steps */
    uint8_t tx_busy[MAX_STEPS][2];    /* its staging is still being sent */
    rd_cpl_t cpl[MAX_STEPS][2];
} rd_t;

/* One operation's state. */
typedef struct {
    int m, vrank, level, phase, sent;
    int par;         /* which of the two slot sets: the parity of this eager operation's number */
    const char *cur; /* this rank's partial result so far */
    int32_t bar_word; /* a barrier's one element */
} op_t;

static rd_t *state(const struct rl_comm *c) { return RL_ALGO_STATE(c, &rl_algo_rd); }
static op_t *O(struct rl_request *r) { return RL_PRIV(r, op_t); }

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

/* From the settings and the group alone: set-up makes the slots exactly then. */
static int possible(const struct rl_comm *c)
{
    return c->cfg.rd_max_bytes && c->nranks >= 2 && rl_p2p_enabled(c) && nsteps(c->nranks) <= MAX_STEPS;
}

static int usable(const struct rl_comm *c, const rl_call_t *call)
{
    return possible(c) && call->bytes <= c->cfg.rd_max_bytes;
}

/* log2(n) exchanges of the whole message, each reduced; a group that is
 * not a power of two adds the fold and the hand-back. */
static double cost(const struct rl_comm *c, const rl_call_t *call, const rl_model_t *m)
{
    int n = c->nranks, lg = floor_log2(n), rem = n - (1 << lg);
    double b = (double)call->bytes + RL_CTRL_WIRE_SIZE, red = (double)call->bytes * m->gamma_us_per_b;
    double t = lg * (m->alpha_us + b * m->beta_us_per_b + red);
    if (rem)
        t += 2 * (m->alpha_us + b * m->beta_us_per_b) + red;
    return t;
}

static void send_done(struct rl_comm *c, rl_compl_t *self, rl_status_t st);
static void handle_imm(struct rl_comm *c, uint32_t imm);

static rl_status_t setup(struct rl_comm *c, int64_t dl, char *err, size_t len)
{
    if (!possible(c))
        return RL_OK;
    rd_t *d = calloc(1, sizeof(*d));
    if (!d)
        return RL_ERR_NO_MEMORY;
    RL_ALGO_STATE(c, &rl_algo_rd) = d;
    rl_comm_route_imm(c, RL_IMMC_EAGER, handle_imm);
    size_t slot = slot_bytes(c), steps = (size_t)nsteps(c->nranks);
    size_t land_len = steps * 2 * slot, tx_len = steps * 2 * slot;
    d->peer_land = calloc((size_t)c->nranks, sizeof(rl_rkey_t));
    if (!d->peer_land || posix_memalign((void **)&d->land, 4096, land_len) ||
        posix_memalign((void **)&d->eager_tx, 4096, tx_len)) {
        snprintf(err, len, "rank %d: no memory for the eager all-reduce slots (%zu bytes)", c->rank, land_len);
        return RL_ERR_NO_MEMORY;
    }
    memset(d->land, 0, land_len);
    memset(d->eager_tx, 0, tx_len);
    for (int s = 0; s < MAX_STEPS; s++)
        for (int p = 0; p < 2; p++)
            d->cpl[s][p] = (rd_cpl_t){.base.fn = send_done, .step = s, .par = p, .peer = -1};
    rl_status_t st;
    if ((st = rl_mr_reg(c, d->land, land_len, RL_ACCESS_LOCAL | RL_ACCESS_REMOTE_WRITE, &d->land_mr)) != RL_OK ||
        (st = rl_mr_reg(c, d->eager_tx, tx_len, RL_ACCESS_LOCAL, &d->eager_tx_mr)) != RL_OK) {
        snprintf(err, len, "rank %d: registering the eager all-reduce slots failed: %s", c->rank,
                 rl_comm_tp_error(c));
        rl_boot_abort(c->boot, st, c->rank, err);
        return st;
    }
    /* One key per open transport, published to every rank at once; a
     * sender keeps the one of the transport it reaches us through. */
    rl_rkey_t mine[RL_MAX_TP] = {{0, 0}}, *all = calloc((size_t)c->nranks, sizeof(mine));
    if (!all)
        return RL_ERR_NO_MEMORY;
    for (int t = 0; t < c->ntp; t++)
        rl_mr_remote_any(c, &d->land_mr, t, d->land, &mine[t]);
    st = rl_boot_allgather(c->boot, mine, sizeof(mine), all, dl, err, len);
    for (int p = 0; st == RL_OK && p < c->nranks; p++)
        d->peer_land[p] = all[(size_t)p * RL_MAX_TP + (size_t)rl_route(c, p)];
    free(all);
    return st;
}

static void teardown(struct rl_comm *c)
{
    rd_t *d = state(c);
    if (!d)
        return;
    rl_mr_dereg(c, &d->land_mr);
    rl_mr_dereg(c, &d->eager_tx_mr);
    free(d->land);
    free(d->eager_tx);
    free(d->peer_land);
    free(d);
    RL_ALGO_STATE(c, &rl_algo_rd) = NULL;
}

/* The real rank of virtual rank v among the 2^m that run the levels. */
static int real_rank(int v, int rem) { return v < rem ? 2 * v + 1 : v + rem; }

static rl_status_t send_step(struct rl_comm *c, struct rl_request *r, int step, int peer, const char *src)
{
    rd_t *d = state(c);
    size_t bytes = r->count * r->esize, slot = slot_bytes(c);
    int par = O(r)->par;
    if (d->tx_busy[step][par])
        return RL_ERR_AGAIN; /* the write of two operations ago from this staging */
    uint8_t *tx = (uint8_t *)d->eager_tx + ((size_t)step * 2 + (size_t)par) * slot;
    rl_ctrl_t hdr = {.seq = r->seq, .coll = r->coll, .dtype = r->dtype, .op = r->op, .rank = c->rank,
                     .root = step, .count = r->count, .out_len = bytes};
    rl_ctrl_encode(&hdr, tx);
    if (bytes)
        memcpy(tx + RL_CTRL_WIRE_SIZE, src, bytes);
    size_t at = ((size_t)step * 2 + (size_t)par) * slot;
    rl_rkey_t *k = &d->peer_land[peer];
    d->cpl[step][par].peer = peer;
    rl_status_t st = rl_conn_write_imm(c, rl_p2p_conn(c, peer), tx, RL_CTRL_WIRE_SIZE + bytes, &d->eager_tx_mr,
                                       k->addr + at, k->key,
                                       rl_imm_p2p_encode(RL_P2P_EAGER, par, c->rank, (uint64_t)step),
                                       &d->cpl[step][par].base);
    if (st == RL_OK) {
        d->inflight++;
        d->tx_busy[step][par] = 1;
    }
    return st;
}

/* The data of step `step` from `peer`, checked against this call; NULL
 * while it has not arrived (or after a failure). */
static const char *take_step(struct rl_comm *c, struct rl_request *r, int step, int peer)
{
    rd_t *d = state(c);
    int par = O(r)->par;
    if (!d->land_full[step][par])
        return NULL;
    const uint8_t *slot = (const uint8_t *)d->land + ((size_t)step * 2 + (size_t)par) * slot_bytes(c);
    rl_ctrl_t h;
    if (d->land_from[step][par] != peer || rl_ctrl_decode(slot, c->nranks, &h) != RL_OK || h.rank != peer ||
        h.root != step) {
        rl_comm_fail(c, RL_ERR_PROTOCOL, "rank %d: malformed eager message from rank %d (operation %llu, step %d)",
                     c->rank, d->land_from[step][par], (unsigned long long)r->seq, step);
        return NULL;
    }
    /* another operation's: the ranks called different sequences of calls */
    if (h.seq != r->seq || h.coll != (uint32_t)r->coll || h.count != r->count || h.dtype != (uint32_t)r->dtype ||
        h.op != (uint32_t)r->op || h.out_len != r->count * r->esize) {
        rl_fail_mismatch(c, r, &h);
        return NULL;
    }
    d->land_full[step][par] = 0;
    d->nfull--;
    return (const char *)slot + RL_CTRL_WIRE_SIZE;
}

static void begin(struct rl_comm *c, struct rl_request *r)
{
    int n = c->nranks, m = floor_log2(n), rem = n - (1 << m);
    /* Slots go by the number of eager operations, not by the communicator's
     * sequence: another algorithm in between (a tree broadcast, a scatter)
     * need not make the partners wait for each other, so only eager
     * operations themselves can guarantee a slot was consumed. */
    O(r)->par = (int)(state(c)->nops++ & 1);
    O(r)->m = m;
    O(r)->level = 0;
    O(r)->cur = r->in;
    if (c->rank < 2 * rem)
        O(r)->vrank = c->rank % 2 ? c->rank / 2 : -1;
    else
        O(r)->vrank = c->rank - rem;
    O(r)->phase = c->rank < 2 * rem ? PH_FOLD : PH_LEVELS;
}

static void finish_levels(struct rl_comm *c, struct rl_request *r)
{
    size_t bytes = r->count * r->esize;
    if (O(r)->cur != r->out && bytes)
        memmove(r->out, O(r)->cur, bytes);
    O(r)->cur = r->out;
    if (r->op == RL_AVG)
        rl_reduce_scale(r->out, r->count, r->dtype, c->nranks);
}

/* One move of the state machine; nonzero if it moved. */
static int step(struct rl_comm *c, struct rl_request *r)
{
    int n = c->nranks, m = O(r)->m, rem = n - (1 << m);
    const char *got;
    rl_status_t st = RL_OK;
    switch (O(r)->phase) {
    case PH_FOLD:
        if (O(r)->vrank < 0) { /* even: hand my input to rank + 1 */
            if ((st = send_step(c, r, m, c->rank + 1, r->in)) == RL_OK)
                O(r)->phase = PH_WAIT_UNFOLD;
            break;
        }
        if (!(got = take_step(c, r, m, c->rank - 1)))
            return 0;
        if (r->count)
            r->fn(r->out, r->in, got, r->count);
        O(r)->cur = r->out;
        O(r)->phase = PH_LEVELS;
        break;
    case PH_LEVELS: {
        int peer = real_rank(O(r)->vrank ^ (1 << O(r)->level), rem), sent_now = 0;
        if (!O(r)->sent) {
            if ((st = send_step(c, r, O(r)->level, peer, O(r)->cur)) != RL_OK)
                break;
            O(r)->sent = sent_now = 1;
        }
        if (!(got = take_step(c, r, O(r)->level, peer)))
            return sent_now;
        if (r->count)
            r->fn(r->out, O(r)->cur, got, r->count);
        O(r)->cur = r->out;
        O(r)->sent = 0;
        if (++O(r)->level == m) {
            finish_levels(c, r);
            O(r)->phase = c->rank < 2 * rem ? PH_UNFOLD : PH_DONE;
        }
        break;
    }
    case PH_UNFOLD:
        if ((st = send_step(c, r, m + 1, c->rank - 1, r->out)) == RL_OK)
            O(r)->phase = PH_DONE;
        break;
    case PH_WAIT_UNFOLD:
        if (!(got = take_step(c, r, m + 1, c->rank + 1)))
            return 0;
        if (r->count)
            memcpy(r->out, got, r->count * r->esize);
        O(r)->phase = PH_DONE;
        break;
    default: return 0;
    }
    if (st == RL_ERR_AGAIN)
        return 0;
    if (st != RL_OK) {
        rl_comm_fail(c, st, "rank %d: eager all-reduce write failed: %s", c->rank, rl_comm_tp_error(c));
        return 0;
    }
    return 1;
}

static rl_status_t start(struct rl_comm *c, struct rl_request *r)
{
    if (r->coll == RL_COLL_BARRIER)
        r->in = r->out = (char *)&O(r)->bar_word;
    /* An empty call on several ranks still sends its header-only
     * messages: every operation must reach each partner, or a rank could
     * run two operations ahead and write into a landing slot of the same
     * parity that its partner has not consumed yet. */
    if (c->nranks == 1 && rl_coll_trivial(c, r))
        return RL_OK;
    begin(c, r);
    return RL_INPROGRESS;
}

static int progress(struct rl_comm *c, struct rl_request *r)
{
    while (c->failed == RL_OK && O(r)->phase != PH_DONE && step(c, r))
        ;
    if (c->failed != RL_OK)
        return 1;
    /* Done when the result is in place: the user's buffers are never
     * written from, and a later operation waits for a step's staging. */
    if (O(r)->phase == PH_DONE) {
        r->status = RL_OK;
        return 1;
    }
    return 0;
}

static void foreign(struct rl_comm *c, const struct rl_request *r)
{
    rd_t *d = state(c);
    if (!d || !d->nfull || !r || r->algo == &rl_algo_rd)
        return;
    for (int s = 0; s < nsteps(c->nranks) && c->failed == RL_OK; s++)
        for (int par = 0; par < 2 && c->failed == RL_OK; par++) {
            rl_ctrl_t h;
            const uint8_t *slot = (const uint8_t *)d->land + ((size_t)s * 2 + (size_t)par) * slot_bytes(c);
            if (d->land_full[s][par] && rl_ctrl_decode(slot, c->nranks, &h) == RL_OK && h.seq == r->seq)
                rl_fail_mismatch(c, r, &h);
        }
}

static void handle_imm(struct rl_comm *c, uint32_t imm)
{
    rd_t *d = state(c);
    rl_p2p_imm_t m;
    if (rl_imm_p2p_decode(imm, c->nranks, &m) != RL_OK || m.rank == c->rank) {
        rl_comm_fail(c, RL_ERR_PROTOCOL, "rank %d: malformed eager immediate 0x%08x", c->rank, imm);
        return;
    }
    unsigned step = m.tag;
    int parity = m.space;
    if ((int)step >= nsteps(c->nranks) || d->land_full[step][parity]) {
        rl_comm_fail(c, RL_ERR_PROTOCOL, "rank %d: unexpected eager message from rank %d (step %u)", c->rank, m.rank,
                     step);
        return;
    }
    d->land_full[step][parity] = 1;
    d->nfull++;
    d->land_from[step][parity] = m.rank;
    foreign(c, c->head);
}

static void send_done(struct rl_comm *c, rl_compl_t *self, rl_status_t st)
{
    rd_cpl_t *k = RL_CONTAINER_OF(self, rd_cpl_t, base);
    if (st != RL_OK) {
        rl_comm_transport_failure(c, k->peer);
        return;
    }
    rd_t *d = state(c);
    if (d->inflight > 0)
        d->inflight--;
    d->tx_busy[k->step][k->par] = 0;
}

static int busy(struct rl_comm *c)
{
    rd_t *d = state(c);
    return d && d->inflight;
}

static void release(struct rl_comm *c, struct rl_request *r) { (void)c, (void)r; }

static void describe_wait(struct rl_comm *c, struct rl_request *r, char *buf, size_t len)
{
    int rem = c->nranks - (1 << O(r)->m);
    const char *name = rl_coll_name(r->coll);
    unsigned long long seq = (unsigned long long)r->seq;
    switch (O(r)->phase) {
    case PH_FOLD:
        c->stall_peer = c->rank - 1;
        snprintf(buf, len, "%s %llu (eager) waits for rank %d's data", name, seq, c->rank - 1);
        break;
    case PH_LEVELS:
        c->stall_peer = real_rank(O(r)->vrank ^ (1 << O(r)->level), rem);
        snprintf(buf, len, "%s %llu (eager) waits for rank %d's data at level %d", name, seq, c->stall_peer,
                 O(r)->level);
        break;
    case PH_WAIT_UNFOLD:
        c->stall_peer = c->rank + 1;
        snprintf(buf, len, "%s %llu (eager) waits for the result from rank %d", name, seq, c->rank + 1);
        break;
    default: snprintf(buf, len, "%s %llu (eager) waits for its writes to complete", name, seq); break;
    }
}

const rl_algo_t rl_algo_rd = {
    .id = RL_ALGO_ID_rd,
    .name = "rd",
    .desc = "eager recursive doubling: log2(n) one-way messages into per-step landing slots, no handshake",
    .colls = RL_COLL_BIT(RL_COLL_ALL_REDUCE) | RL_COLL_BIT(RL_COLL_BARRIER),
    .state_size = sizeof(op_t),
    .comm_setup = setup,
    .comm_teardown = teardown,
    .usable = usable,
    .cost = cost,
    .start = start,
    .progress = progress,
    .release = release,
    .describe_wait = describe_wait,
    .foreign = foreign,
    .busy = busy,
};
