/* DCQCN fluid model: the transient of n synchronized flows that start at
 * line rate on one bottleneck link.
 *
 * The max-min model of sim.c gives each flow its fair share from the first
 * byte. DCQCN reaches that share only after the queue has grown past the
 * ECN threshold and the senders have cut and recovered their rates, so a
 * step's flows may first overfill the queue and then leave the link idle.
 * This integrates the fluid form of the algorithm (as in the DCQCN and
 * DCQCN-stability papers) for one representative flow, the flows being
 * identical:
 *   queue       q' = n Rc - C                       (q >= 0)
 *   marking     p  = RED ramp of q: 0 below Kmin, Pmax at Kmax, 1 above
 *   CNPs        a flow gets one per CNP interval that saw a marked packet
 *   on a CNP    Rt = Rc, Rc = Rc (1 - alpha / 2)
 *   alpha       every alpha interval: alpha = (1 - g) alpha + g [CNP seen]
 *   increase    each timer or byte-counter period without a CNP:
 *               Rc = (Rc + Rt) / 2, and past F such periods Rt += R_AI
 * Event frequencies are expectations over the packets of an interval, and
 * senders see p one feedback delay late. Flows send until their bytes are
 * out; the phase ends when the queue has drained. One integration with an
 * endless backlog serves every message size: before its senders stop a
 * flow of any size follows the same trajectory. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "topo/topo.h"

#define DC_DT_US 0.05        /* Euler step */
#define DC_SAMPLE_US 1.0     /* spacing of the recorded trajectory */
#define DC_HORIZON_US 20000. /* after this, the mean of the last quarter is extrapolated */

void rl_dcqcn_defaults(rl_dcqcn_params_t *p)
{
    /* the defaults the DCQCN paper evaluated, with 4 KiB RoCE packets */
    *p = (rl_dcqcn_params_t){.kmin_kb = 5,
                             .kmax_kb = 200,
                             .pmax = 0.01,
                             .g = 1.0 / 256,
                             .cnp_us = 50,
                             .alpha_us = 55,
                             .timer_us = 55,
                             .byte_kb = 10240,
                             .rai_mbps = 40,
                             .fast_steps = 5,
                             .pkt_bytes = 4096};
}

int rl_dcqcn_set(rl_dcqcn_params_t *p, const char *name, double v)
{
    struct {
        const char *name;
        double *at;
        double lo, hi;
    } f[] = {{"kmin_kb", &p->kmin_kb, 0, 1e9},   {"kmax_kb", &p->kmax_kb, 1e-3, 1e9}, {"pmax", &p->pmax, 0, 1},
             {"g", &p->g, 0, 1},                  {"cnp_us", &p->cnp_us, 0.1, 1e6},    {"alpha_us", &p->alpha_us, 0.1, 1e6},
             {"timer_us", &p->timer_us, 0.1, 1e6}, {"byte_kb", &p->byte_kb, 1, 1e9},   {"rai_mbps", &p->rai_mbps, 0, 1e6},
             {"pkt_bytes", &p->pkt_bytes, 64, 65536}};
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        if (!strcmp(name, f[i].name)) {
            if (!(v >= f[i].lo && v <= f[i].hi))
                return -1;
            *f[i].at = v;
            return 0;
        }
    if (!strcmp(name, "fast_steps") && v >= 1 && v <= 1000 && v == (int)v) {
        p->fast_steps = (int)v;
        return 0;
    }
    return -1;
}

struct rl_dcqcn {
    double n, cap, delay_us; /* flows, link bytes/us, feedback delay */
    int ns;                  /* samples recorded */
    double *sent, *queue;    /* per flow bytes sent, queue bytes, every DC_SAMPLE_US */
    double *peak;            /* the deepest queue up to each sample */
    double tail_rate, tail_queue;
};

static double mark_prob(const rl_dcqcn_params_t *p, double q)
{
    double lo = p->kmin_kb * 1024, hi = p->kmax_kb * 1024;
    if (q <= lo)
        return 0;
    if (q > hi)
        return 1;
    return p->pmax * (q - lo) / (hi - lo);
}

/* Probability that none of k packets is marked. */
static double unmarked(double pm, double k) { return pm <= 0 ? 1 : pm >= 1 ? 0 : exp(k * log1p(-pm)); }

rl_status_t rl_dcqcn_create(const rl_dcqcn_params_t *prm, double nflows, double gbps, double delay_us,
                            rl_dcqcn_t **out)
{
    *out = NULL;
    if (!(nflows > 0) || !(gbps > 0) || !(delay_us >= 0) || !(prm->pkt_bytes > 0) || !(prm->kmax_kb > prm->kmin_kb))
        return RL_ERR_INVALID_ARG;
    rl_dcqcn_t *d = calloc(1, sizeof(*d));
    int cap_s = (int)(DC_HORIZON_US / DC_SAMPLE_US) + 2, nd = (int)ceil(delay_us / DC_DT_US) + 1;
    double *hist = calloc((size_t)nd, sizeof(double));
    if (d) {
        d->sent = malloc(sizeof(double) * (size_t)cap_s);
        d->queue = malloc(sizeof(double) * (size_t)cap_s);
        d->peak = malloc(sizeof(double) * (size_t)cap_s);
    }
    if (!d || !hist || !d->sent || !d->queue || !d->peak) {
        free(hist);
        rl_dcqcn_destroy(d);
        return RL_ERR_NO_MEMORY;
    }
    d->n = nflows;
    d->cap = gbps * 1e3 / 8;
    d->delay_us = delay_us;
    double line = d->cap, rc = line, rt = line, alpha = 1, q = 0, sent = 0;
    double rai = prm->rai_mbps / 8, pkt = prm->pkt_bytes, bytes_per = prm->byte_kb * 1024;
    int steps_per_sample = (int)lround(DC_SAMPLE_US / DC_DT_US), h = 0;
    d->sent[0] = d->queue[0] = d->peak[0] = 0;
    d->ns = 1;
    double qmax = 0;
    for (long step = 1; d->ns < cap_s; step++) {
        double pm = hist[h]; /* marked one feedback delay ago */
        hist[h] = mark_prob(prm, q);
        h = (h + 1) % nd;
        double per_pkt = rc / pkt; /* packets per us */
        double cnp = (1 - unmarked(pm, prm->cnp_us * per_pkt)) / prm->cnp_us;
        double timer = unmarked(pm, prm->timer_us * per_pkt) / prm->timer_us;
        double bytec = rc / bytes_per * unmarked(pm, bytes_per / pkt);
        double add = timer * unmarked(pm, (prm->fast_steps - 1) * prm->timer_us * per_pkt) +
                     bytec * unmarked(pm, (prm->fast_steps - 1) * bytes_per / pkt);
        double drc = -cnp * rc * alpha / 2 + (timer + bytec) * (rt - rc) / 2;
        double drt = -cnp * (rt - rc) + rai * add;
        double da = prm->g / prm->alpha_us * ((1 - unmarked(pm, prm->alpha_us * per_pkt)) - alpha);
        rc += drc * DC_DT_US;
        rt += drt * DC_DT_US;
        alpha += da * DC_DT_US;
        rt = rt > line ? line : rt;
        rc = rc > rt ? rt : rc < line * 1e-4 ? line * 1e-4 : rc;
        alpha = alpha < 0 ? 0 : alpha > 1 ? 1 : alpha;
        q += (d->n * rc - d->cap) * DC_DT_US;
        q = q < 0 ? 0 : q;
        qmax = q > qmax ? q : qmax;
        sent += rc * DC_DT_US;
        if (step % steps_per_sample == 0) {
            d->sent[d->ns] = sent;
            d->peak[d->ns] = qmax;
            d->queue[d->ns++] = q;
        }
    }
    /* past the horizon: the mean sending rate and queue of the last quarter */
    int a = d->ns * 3 / 4, b = d->ns - 1;
    d->tail_rate = (d->sent[b] - d->sent[a]) / ((b - a) * DC_SAMPLE_US);
    double qs = 0;
    for (int i = a; i <= b; i++)
        qs += d->queue[i];
    d->tail_queue = qs / (b - a + 1);
    free(hist);
    *out = d;
    return RL_OK;
}

/* The sample where a flow's sent bytes reach bytes (ns - 1 past the
 * trajectory) and the fraction of the way to the next one. */
static int sample_of(const rl_dcqcn_t *d, double bytes, double *frac)
{
    const double *s = d->sent;
    if (bytes > s[d->ns - 1]) {
        *frac = 0;
        return d->ns - 1;
    }
    int lo = 0, hi = d->ns - 1; /* s[lo] < bytes <= s[hi] */
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (s[mid] < bytes)
            lo = mid;
        else
            hi = mid;
    }
    *frac = (bytes - s[lo]) / (s[hi] - s[lo]);
    return lo;
}

double rl_dcqcn_time_us(const rl_dcqcn_t *d, double bytes)
{
    if (!(bytes > 0))
        return 0;
    double f, ts, qs;
    int i = sample_of(d, bytes, &f);
    if (bytes > d->sent[d->ns - 1]) {
        ts = i * DC_SAMPLE_US + (bytes - d->sent[i]) / d->tail_rate;
        qs = d->tail_queue;
    } else {
        ts = (i + f) * DC_SAMPLE_US;
        qs = d->queue[i] + f * (d->queue[i + 1] - d->queue[i]);
    }
    /* the senders stop; what they left in the queue drains at the link's
     * rate (and no extrapolation may beat the link itself) */
    double t = ts + qs / d->cap, floor_us = d->n * bytes / d->cap;
    return t > floor_us ? t : floor_us;
}

double rl_dcqcn_peak_queue_kb(const rl_dcqcn_t *d, double bytes)
{
    double f;
    int i = sample_of(d, bytes, &f);
    return (i + 1 < d->ns ? d->peak[i + 1] : d->peak[i]) / 1024;
}

void rl_dcqcn_destroy(rl_dcqcn_t *d)
{
    if (!d)
        return;
    free(d->sent);
    free(d->queue);
    free(d->peak);
    free(d);
}
