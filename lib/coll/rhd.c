/*
 * Recursive halving-doubling all-reduce (Rabenseifner's algorithm) for
 * groups whose size is a power of two.
 *
 * Reduce-scatter by recursive halving: at step k a rank and its partner
 * (rank ^ n/2^(k+1)) each keep one half of their current range, send the
 * other half and reduce what they receive into the half they keep. After
 * log2(n) steps each rank holds the reduction of 1/n of the data. The
 * all-gather runs the same steps backwards, exchanging whole ranges.
 *
 * It moves the same bytes as the ring (2(n-1)/n of the buffer per rank) in
 * 2 log2(n) steps instead of 2(n-1), which pays for medium sizes, where the
 * per-step cost dominates. Messages go through the point-to-point layer in
 * its collective matching space, so they never meet the user's send/recv.
 */
#include <stdlib.h>
#include <string.h>

#include "coll/p2p.h"
#include "core/clock.h"
#include "core/comm.h"
#include "core/log.h"

/* One operation's state. */
typedef struct {
    int n, m, step;
    uint64_t seg_lo[21], seg_len[21]; /* the range halving step k splits */
    uint64_t scr_off[21];             /* where halving step k's data lands in scratch */
    int64_t step_ns[42];              /* when each step finished (debug log) */
    struct rl_request *send, *recv[42]; /* every step's receive is posted at the start */
} hd_t;

static hd_t *H(const struct rl_request *r) { return RL_PRIV(r, hd_t); }

static int log2_exact(int n)
{
    int m = 0;
    while ((1 << m) < n)
        m++;
    return (1 << m) == n ? m : -1;
}

static int usable(const struct rl_comm *c, const rl_call_t *call)
{
    (void)call;
    return rl_p2p_enabled(c) && c->nranks >= 4 && log2_exact(c->nranks) >= 0;
}

/* 2 log2(n) messages; the ring's bytes, 2(n-1)/n of the buffer, moved and
 * (n-1)/n reduced. */
static double cost(const struct rl_comm *c, const rl_call_t *call, const rl_model_t *m)
{
    int n = c->nranks, lg = log2_exact(n);
    double f = (double)(n - 1) / n, b = (double)call->bytes;
    return 2 * lg * m->alpha_rdv_us + 2 * f * b * m->beta_us_per_b + f * b * m->gamma_us_per_b;
}

/* A message of this all-reduce. It uses the all-reduce's registrations
 * (reg), so no step registers memory of its own. */
static rl_status_t sub_post(struct rl_comm *c, struct rl_request *r, int is_send, const char *buf, uint64_t count,
                            int peer, rl_regent_t *reg, struct rl_request **out)
{
    return rl_p2p_coll(c, is_send, buf, count, r->dtype, peer, reg, out);
}

static void sub_free(struct rl_comm *c, struct rl_request **s) { rl_p2p_drop(c, s); }

/* The range a rank keeps at step k of the halving, and its partner's. */
static void halves(const struct rl_request *r, int rank, int k, uint64_t *keep_lo, uint64_t *keep_len,
                   uint64_t *give_lo, uint64_t *give_len)
{
    uint64_t lo = H(r)->seg_lo[k], len = H(r)->seg_len[k], off0, len0, off1, len1;
    rl_split(len, 2, 0, &off0, &len0);
    rl_split(len, 2, 1, &off1, &len1);
    int upper = (rank & (H(r)->n >> (k + 1))) != 0;
    *keep_lo = lo + (upper ? off1 : off0);
    *keep_len = upper ? len1 : len0;
    *give_lo = lo + (upper ? off0 : off1);
    *give_len = upper ? len0 : len1;
}

static int level_of(const struct rl_request *r, int s) { return s < H(r)->m ? s : 2 * H(r)->m - 1 - s; }
static int partner_of(struct rl_comm *c, const struct rl_request *r, int s)
{
    return c->rank ^ (H(r)->n >> (level_of(r, s) + 1));
}

/* Where halving step k's data from the partner lands: the first step of an
 * out-of-place call receives straight into the output range it reduces into
 * (one buffer fewer for the caches to hold), the others into scratch. */
static char *halving_dst(struct rl_comm *c, const struct rl_request *r, int k)
{
    if (k == 0 && r->in != r->out) {
        uint64_t keep_lo, keep_len, give_lo, give_len;
        halves(r, c->rank, 0, &keep_lo, &keep_len, &give_lo, &give_len);
        return r->out + keep_lo * r->esize;
    }
    return c->scratch + H(r)->scr_off[k] * r->esize;
}

/* Every receive is posted when the operation starts, so each clear-to-send
 * is already at the partner when it reaches that step: a step costs one
 * message, not a handshake and then a message. This is safe because every
 * step receives into its own place: halving step k into its own part of
 * scratch, doubling into the range this rank gave away, which the partner
 * only sends once it consumed what this rank sent from there. Receives from
 * one partner are posted in step order, the order its sends come in. */
static rl_status_t post_recvs(struct rl_comm *c, struct rl_request *r)
{
    size_t es = r->esize;
    for (int s = 0; s < 2 * H(r)->m; s++) {
        int k = level_of(r, s);
        uint64_t keep_lo, keep_len, give_lo, give_len;
        halves(r, c->rank, k, &keep_lo, &keep_len, &give_lo, &give_len);
        rl_status_t st = s < H(r)->m
                             ? sub_post(c, r, 0, keep_len ? halving_dst(c, r, k) : NULL, keep_len, partner_of(c, r, s),
                                        s == 0 && r->in != r->out ? r->out_reg : c->scratch_ent, &H(r)->recv[s])
                             : sub_post(c, r, 0, r->out + give_lo * es, give_len, partner_of(c, r, s), r->out_reg,
                                        &H(r)->recv[s]);
        if (st != RL_OK)
            return st;
    }
    return RL_OK;
}

/* Post step s's send. Steps 0..m-1 halve, m..2m-1 double. */
static rl_status_t post_send(struct rl_comm *c, struct rl_request *r)
{
    int s = H(r)->step;
    uint64_t keep_lo, keep_len, give_lo, give_len;
    halves(r, c->rank, level_of(r, s), &keep_lo, &keep_len, &give_lo, &give_len);
    size_t es = r->esize;
    if (s < H(r)->m) /* the first step reads the input; later ones the partial sums */
        return sub_post(c, r, 1, (s == 0 ? r->in : r->out) + give_lo * es, give_len, partner_of(c, r, s),
                        s == 0 ? r->in_reg : r->out_reg, &H(r)->send);
    /* doubling: my finished range out */
    return sub_post(c, r, 1, r->out + keep_lo * es, keep_len, partner_of(c, r, s), r->out_reg, &H(r)->send);
}

static rl_status_t begin(struct rl_comm *c, struct rl_request *r)
{
    H(r)->n = c->nranks;
    H(r)->m = log2_exact(c->nranks);
    H(r)->seg_lo[0] = 0;
    H(r)->seg_len[0] = r->count;
    uint64_t scr = 0;
    for (int k = 0; k < H(r)->m; k++) {
        uint64_t klo, klen, glo, glen;
        halves(r, c->rank, k, &klo, &klen, &glo, &glen);
        H(r)->scr_off[k] = scr;
        if (k > 0 || r->in == r->out)
            scr += klen;
        H(r)->seg_lo[k + 1] = klo;
        H(r)->seg_len[k + 1] = klen;
    }
    size_t bytes = r->count * r->esize;
    rl_status_t st;
    if ((st = rl_comm_scratch(c, scr * r->esize)) != RL_OK ||
        (st = rl_reg_acquire(c, r->in, bytes, RL_ACCESS_LOCAL, &r->in_reg)) != RL_OK ||
        (st = rl_reg_acquire(c, r->out, bytes, RL_ACCESS_LOCAL | RL_ACCESS_REMOTE_WRITE, &r->out_reg)) != RL_OK ||
        (st = post_recvs(c, r)) != RL_OK)
        return st;
    return post_send(c, r);
}

/* Debug log: each step's time here, as the ring logs its steps, so that
 * per-step latency and bandwidth can be fitted for the cost model. */
static void log_steps(struct rl_comm *c, struct rl_request *r)
{
    if (rl_log_level_cur < RL_LOG_DEBUG)
        return;
    char buf[512];
    int pos = 0;
    int64_t prev = r->start_ns;
    for (int s = 0; s < 2 * H(r)->m && pos < (int)sizeof(buf) - 16; s++) {
        pos += snprintf(buf + pos, sizeof(buf) - (size_t)pos, "%s%.1f", s ? " " : "",
                        (double)(H(r)->step_ns[s] - prev) / 1e3);
        prev = H(r)->step_ns[s];
    }
    RL_DEBUG("all_reduce #%llu (halving-doubling): %zu elements of %s, %d ranks: %.1f us; step times (us): %s",
             (unsigned long long)r->seq, r->count, rl_dtype_name(r->dtype), c->nranks,
             (double)(prev - r->start_ns) / 1e3, buf);
}

static rl_status_t start(struct rl_comm *c, struct rl_request *r)
{
    if (rl_coll_trivial(c, r))
        return RL_OK;
    rl_status_t st = begin(c, r);
    return st == RL_OK ? RL_INPROGRESS : st;
}

/* Advance; nonzero when finished (or failed). */
static int progress(struct rl_comm *c, struct rl_request *r)
{
    for (;;) {
        int m = H(r)->m, s = H(r)->step;
        struct rl_request *rv = H(r)->recv[s];
        if (c->failed != RL_OK || !H(r)->send || H(r)->send->status != RL_OK || rv->status != RL_OK)
            break;
        if (s < m && r->count) {
            uint64_t keep_lo, keep_len, give_lo, give_len;
            halves(r, c->rank, s, &keep_lo, &keep_len, &give_lo, &give_len);
            size_t es = r->esize;
            char *dst = r->out + keep_lo * es;
            if (keep_len)
                r->fn(dst, (s == 0 ? r->in : r->out) + keep_lo * es, halving_dst(c, r, s), keep_len);
            if (keep_len && s == m - 1 && r->op == RL_AVG)
                rl_reduce_scale(dst, keep_len, r->dtype, c->nranks);
        }
        sub_free(c, &H(r)->send);
        sub_free(c, &H(r)->recv[s]);
        H(r)->step_ns[s] = rl_now_ns();
        if (++H(r)->step == 2 * m) {
            r->status = RL_OK;
            log_steps(c, r);
            return 1;
        }
        rl_status_t st = post_send(c, r);
        if (st != RL_OK) {
            rl_comm_fail(c, st, "rank %d: all_reduce (halving-doubling) step %d failed", c->rank, H(r)->step);
            return 1;
        }
    }
    return c->failed != RL_OK;
}

static void each_sub(struct rl_request *r, void (*fn)(struct rl_comm *, struct rl_request **), struct rl_comm *c)
{
    fn(c, &H(r)->send);
    for (int s = 0; s < 2 * H(r)->m; s++)
        fn(c, &H(r)->recv[s]);
}

/* After a failure this runs inside the failure path, which may be walking
 * the point-to-point queue: messages still on it stay there (the
 * communicator frees them when destroyed). */
static void release(struct rl_comm *c, struct rl_request *r)
{
    if (c)
        each_sub(r, sub_free, c);
}

static void describe_wait(struct rl_comm *c, struct rl_request *r, char *buf, size_t len)
{
    struct rl_request *w[2] = {H(r)->step < 2 * H(r)->m ? H(r)->recv[H(r)->step] : NULL, H(r)->send};
    if (!rl_p2p_describe_running(c, w, 2, buf, len))
        snprintf(buf, len, "all_reduce %llu (halving-doubling) at step %d", (unsigned long long)r->seq, H(r)->step);
}

const rl_algo_t rl_algo_rhd = {
    .id = RL_ALGO_ID_rhd,
    .name = "rhd",
    .desc = "recursive halving-doubling (Rabenseifner): the ring's bytes in 2 log2(n) steps; powers of two",
    .colls = RL_COLL_BIT(RL_COLL_ALL_REDUCE),
    .state_size = sizeof(hd_t),
    .usable = usable,
    .cost = cost,
    .start = start,
    .progress = progress,
    .release = release,
    .describe_wait = describe_wait,
    .on_p2p = 1,
};
