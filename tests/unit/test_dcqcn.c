/* lib/topo/dcqcn.c: the DCQCN fluid model of a step's flows on one link. */
#include <criterion/criterion.h>
#include <math.h>

#include "topo/topo.h"

static rl_dcqcn_t *model(const rl_dcqcn_params_t *p, double n, double gbps)
{
    rl_dcqcn_t *d = NULL;
    cr_assert_eq(rl_dcqcn_create(p, n, gbps, 4, &d), RL_OK);
    return d;
}

static double ideal_us(double n, double gbps, double bytes) { return n * bytes / (gbps * 1e3 / 8); }

/* A flow alone at line rate never queues: the link's rate, exactly. */
Test(dcqcn, one_flow_is_the_line_rate)
{
    rl_dcqcn_params_t p;
    rl_dcqcn_defaults(&p);
    rl_dcqcn_t *d = model(&p, 1, 100);
    for (double b = 4096; b < 1e10; b *= 7) {
        cr_assert_float_eq(rl_dcqcn_time_us(d, b), ideal_us(1, 100, b), 1e-6 * ideal_us(1, 100, b), "%g B", b);
        cr_assert_float_eq(rl_dcqcn_peak_queue_kb(d, b), 0, 1e-12);
    }
    rl_dcqcn_destroy(d);
}

/* Several flows can never beat their fair share of the link, and a message
 * sent before the first marks reach the senders takes exactly that share
 * (the link is busy throughout, the queue absorbs the excess). */
Test(dcqcn, never_faster_than_the_link)
{
    rl_dcqcn_params_t p;
    rl_dcqcn_defaults(&p);
    for (double n = 2; n <= 64; n *= 2) {
        rl_dcqcn_t *d = model(&p, n, 400);
        for (double b = 1024; b < 4e9; b *= 3)
            cr_assert_geq(rl_dcqcn_time_us(d, b), ideal_us(n, 400, b) * (1 - 1e-9), "n %g, %g B", n, b);
        double early = 64 << 10; /* 64 KiB per flow ends within the first CNP interval */
        cr_assert_float_eq(rl_dcqcn_time_us(d, early), ideal_us(n, 400, early), 1e-3 * ideal_us(n, 400, early));
        cr_assert_gt(rl_dcqcn_peak_queue_kb(d, early), 0, "n %g flows at line rate queue", n);
        rl_dcqcn_destroy(d);
    }
}

/* At the 40 Gb/s the DCQCN paper evaluated with these parameters, the
 * flows converge to the whole link (its measured finding); the queue of the
 * transient grows with the number of flows. */
Test(dcqcn, converges_at_40g)
{
    rl_dcqcn_params_t p;
    rl_dcqcn_defaults(&p);
    double last_peak = 0;
    for (double n = 2; n <= 64; n *= 2) {
        rl_dcqcn_t *d = model(&p, n, 40);
        double b = 1 << 30, util = ideal_us(n, 40, b) / rl_dcqcn_time_us(d, b);
        cr_assert_geq(util, 0.95, "n %g: %.3f of the link", n, util);
        cr_assert_leq(util, 1 + 1e-9);
        double peak = rl_dcqcn_peak_queue_kb(d, b);
        cr_assert_gt(peak, last_peak, "n %g: peak queue %g KB", n, peak);
        last_peak = peak;
        rl_dcqcn_destroy(d);
    }
}

/* A CNP interval 10x longer lets the queue grow 10x longer before the
 * first cut: the peak grows, which a model ignoring the interval would miss. */
Test(dcqcn, slower_feedback_deeper_queue)
{
    rl_dcqcn_params_t fast, slow;
    rl_dcqcn_defaults(&fast);
    rl_dcqcn_defaults(&slow);
    cr_assert_eq(rl_dcqcn_set(&fast, "cnp_us", 5), 0);
    cr_assert_eq(rl_dcqcn_set(&slow, "cnp_us", 50), 0);
    rl_dcqcn_t *a = model(&fast, 8, 100), *b = model(&slow, 8, 100);
    cr_assert_gt(rl_dcqcn_peak_queue_kb(b, 1e9), 2 * rl_dcqcn_peak_queue_kb(a, 1e9));
    rl_dcqcn_destroy(a);
    rl_dcqcn_destroy(b);
}

Test(dcqcn, bad_parameters_are_refused)
{
    rl_dcqcn_params_t p;
    rl_dcqcn_defaults(&p);
    cr_assert_eq(rl_dcqcn_set(&p, "nope", 1), -1);
    cr_assert_eq(rl_dcqcn_set(&p, "pmax", 2), -1);
    cr_assert_eq(rl_dcqcn_set(&p, "fast_steps", 2.5), -1);
    cr_assert_eq(rl_dcqcn_set(&p, "cnp_us", NAN), -1);
    rl_dcqcn_t *d = NULL;
    cr_assert_eq(rl_dcqcn_create(&p, 0, 100, 4, &d), RL_ERR_INVALID_ARG);
    cr_assert_eq(rl_dcqcn_create(&p, 2, -1, 4, &d), RL_ERR_INVALID_ARG);
    p.kmax_kb = p.kmin_kb;
    cr_assert_eq(rl_dcqcn_create(&p, 2, 100, 4, &d), RL_ERR_INVALID_ARG);
    cr_assert_null(d);
}

/* Through the simulator: on one switch (every flow alone on its links) the
 * DCQCN run equals the fair one; behind a 2:1 uplink the rank-order ring's
 * steps share it and the model reports their queue. */
Test(dcqcn, simulator_uses_it_on_shared_links)
{
    char err[256];
    rl_topo_gen_t g;
    rl_topo_gen_defaults(&g);
    g.ranks = 16;
    rl_topo_t t;
    cr_assert_eq(rl_topo_gen_switch(&g, &t, err, sizeof(err)), RL_OK, "%s", err);
    rl_sim_params_t fair, dc;
    rl_sim_defaults(&fair);
    rl_sim_defaults(&dc);
    dc.dcqcn = 1;
    rl_sim_t *a, *b;
    cr_assert_eq(rl_sim_create(&t, RL_SIM_RING, RL_SIM_ALL_REDUCE, &fair, &a, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert_eq(rl_sim_create(&t, RL_SIM_RING, RL_SIM_ALL_REDUCE, &dc, &b, err, sizeof(err)), RL_OK, "%s", err);
    rl_sim_result_t ra, rb;
    rl_sim_time(a, 1 << 28, &ra);
    rl_sim_time(b, 1 << 28, &rb);
    cr_assert_float_eq(ra.time_us, rb.time_us, 1e-9 * ra.time_us);
    cr_assert_float_eq(rb.peak_queue_kb, 0, 1e-12);
    rl_sim_destroy(a);
    rl_sim_destroy(b);
    rl_topo_free(&t);

    rl_topo_gen_defaults(&g);
    g.ranks = 64;
    g.oversub = 2;
    g.shuffle = 3;
    cr_assert_eq(rl_topo_gen_fat_tree(&g, &t, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert_eq(rl_sim_create(&t, RL_SIM_RING, RL_SIM_ALL_REDUCE, &fair, &a, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert_eq(rl_sim_create(&t, RL_SIM_RING, RL_SIM_ALL_REDUCE, &dc, &b, err, sizeof(err)), RL_OK, "%s", err);
    rl_sim_time(a, 1 << 28, &ra);
    rl_sim_time(b, 1 << 28, &rb);
    cr_assert_geq(rb.time_us, ra.time_us * (1 - 1e-9));
    cr_assert_gt(rb.peak_queue_kb, 0);
    rl_sim_destroy(a);
    rl_sim_destroy(b);
    rl_topo_free(&t);
}
