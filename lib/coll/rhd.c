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

#include "core/clock.h"
#include "core/comm.h"
#include "core/log.h"

static int log2_exact(int n)
{
    int m = 0;
    while ((1 << m) < n)
        m++;
    return (1 << m) == n ? m : -1;
}

int rl_rhd_usable(const struct rl_comm *c, size_t bytes)
{
    if (!c->peers || c->nranks < 4 || log2_exact(c->nranks) < 0)
        return 0;
    if (!strcmp(c->cfg.allreduce_algo, "ring"))
        return 0;
    if (!strcmp(c->cfg.allreduce_algo, "rhd"))
        return 1;
    return bytes <= c->cfg.rhd_max_bytes;
}

static rl_status_t sub_post(struct rl_comm *c, struct rl_request *r, int is_send, const char *buf, uint64_t count,
                            int peer, struct rl_request **out)
{
    rl_status_t st = rl_p2p_new(c, RL_P2P_COLL, is_send, buf, count, r->dtype, peer, out);
    if (st == RL_OK)
        (*out)->internal = 1; /* the communicator frees it if the all-reduce fails */
    return st;
}

static void sub_free(struct rl_comm *c, struct rl_request **s)
{
    if (!*s)
        return;
    if ((*s)->comm) {
        rl_p2p_unlink(c, *s);
        rl_ring_release(c, *s);
    }
    free(*s);
    *s = NULL;
}

/* The range a rank keeps at step k of the halving, and its partner's. */
static void halves(const struct rl_request *r, int rank, int k, uint64_t *keep_lo, uint64_t *keep_len,
                   uint64_t *give_lo, uint64_t *give_len)
{
    uint64_t lo = r->hd.seg_lo[k], len = r->hd.seg_len[k], off0, len0, off1, len1;
    rl_split(len, 2, 0, &off0, &len0);
    rl_split(len, 2, 1, &off1, &len1);
    int upper = (rank & (r->hd.n >> (k + 1))) != 0;
    *keep_lo = lo + (upper ? off1 : off0);
    *keep_len = upper ? len1 : len0;
    *give_lo = lo + (upper ? off0 : off1);
    *give_len = upper ? len0 : len1;
}

/* Post step s's send and receive. Steps 0..m-1 halve, m..2m-1 double. */
static rl_status_t post_step(struct rl_comm *c, struct rl_request *r)
{
    int m = r->hd.m, s = r->hd.step;
    int k = s < m ? s : 2 * m - 1 - s;
    int partner = c->rank ^ (r->hd.n >> (k + 1));
    uint64_t keep_lo, keep_len, give_lo, give_len;
    halves(r, c->rank, k, &keep_lo, &keep_len, &give_lo, &give_len);
    size_t es = r->esize;
    rl_status_t st;
    if (s < m) {
        /* the first step reads the input; later ones the partial sums */
        const char *src = (s == 0 ? r->in : r->out) + give_lo * es;
        if ((st = sub_post(c, r, 0, c->scratch, keep_len, partner, &r->hd.recv)) != RL_OK ||
            (st = sub_post(c, r, 1, src, give_len, partner, &r->hd.send)) != RL_OK)
            return st;
    } else {
        /* doubling: my finished range out, the partner's finished range in */
        if ((st = sub_post(c, r, 0, r->out + give_lo * es, give_len, partner, &r->hd.recv)) != RL_OK ||
            (st = sub_post(c, r, 1, r->out + keep_lo * es, keep_len, partner, &r->hd.send)) != RL_OK)
            return st;
    }
    return RL_OK;
}

static rl_status_t start(struct rl_comm *c, struct rl_request *r)
{
    r->hd.n = c->nranks;
    r->hd.m = log2_exact(c->nranks);
    r->hd.seg_lo[0] = 0;
    r->hd.seg_len[0] = r->count;
    for (int k = 0; k + 1 < r->hd.m; k++) {
        uint64_t klo, klen, glo, glen;
        halves(r, c->rank, k, &klo, &klen, &glo, &glen);
        r->hd.seg_lo[k + 1] = klo;
        r->hd.seg_len[k + 1] = klen;
    }
    /* the largest half received while halving is the first one */
    size_t need = ((r->count + 1) / 2) * r->esize;
    rl_status_t st = rl_ring_scratch(c, need);
    if (st != RL_OK)
        return st;
    return post_step(c, r);
}

/* Advance; nonzero when finished (or failed). */
int rl_rhd_advance(struct rl_comm *c, struct rl_request *r)
{
    if (!r->started) {
        r->started = 1;
        r->last_progress = r->start_ns = rl_now_ns();
        if (c->nranks == 1 || r->count == 0) {
            if (r->in != r->out && r->count)
                memmove(r->out, r->in, r->count * r->esize);
            r->status = RL_OK;
            return 1;
        }
        rl_status_t st = start(c, r);
        if (st != RL_OK) {
            rl_comm_fail(c, st, "rank %d: starting all_reduce (halving-doubling) failed", c->rank);
            return 1;
        }
    }
    while (c->failed == RL_OK && r->hd.send && r->hd.recv && r->hd.send->status == RL_OK &&
           r->hd.recv->status == RL_OK) {
        int m = r->hd.m, s = r->hd.step;
        if (s < m) {
            uint64_t keep_lo, keep_len, give_lo, give_len;
            halves(r, c->rank, s, &keep_lo, &keep_len, &give_lo, &give_len);
            size_t es = r->esize;
            char *dst = r->out + keep_lo * es;
            r->fn(dst, (s == 0 ? r->in : r->out) + keep_lo * es, c->scratch, keep_len);
            if (s == m - 1 && r->op == RL_AVG)
                rl_reduce_scale(dst, keep_len, r->dtype, c->nranks);
        }
        sub_free(c, &r->hd.send);
        sub_free(c, &r->hd.recv);
        r->last_progress = rl_now_ns();
        if (++r->hd.step == 2 * m) {
            r->status = RL_OK;
            return 1;
        }
        rl_status_t st = post_step(c, r);
        if (st != RL_OK) {
            rl_comm_fail(c, st, "rank %d: all_reduce (halving-doubling) step %d failed", c->rank, r->hd.step);
            return 1;
        }
    }
    return c->failed != RL_OK;
}

void rl_rhd_release(struct rl_comm *c, struct rl_request *r)
{
    if (c->failed == RL_OK) {
        sub_free(c, &r->hd.send);
        sub_free(c, &r->hd.recv);
        return;
    }
    /* After a failure this runs inside the failure path, which may be
     * walking the point-to-point list: leave the messages still on it there
     * (the communicator frees them when destroyed); finished ones left the
     * list and go now. */
    struct rl_request **subs[2] = {&r->hd.send, &r->hd.recv};
    for (int i = 0; i < 2; i++) {
        if (*subs[i] && !(*subs[i])->comm)
            free(*subs[i]);
        *subs[i] = NULL;
    }
}

void rl_rhd_describe_wait(struct rl_comm *c, struct rl_request *r, char *buf, size_t len)
{
    struct rl_request *s = r->hd.recv && r->hd.recv->status == RL_INPROGRESS ? r->hd.recv : r->hd.send;
    if (s && s->status == RL_INPROGRESS)
        rl_p2p_describe_wait(c, s, buf, len);
    else
        snprintf(buf, len, "all_reduce %llu (halving-doubling) at step %d", (unsigned long long)r->seq, r->hd.step);
}
