/* RINGLET_IB_HCA lists: what the verbs backend accepts before it looks for
 * any device, and the messages that name a bad entry. */
#include <criterion/criterion.h>
#include <string.h>

#include "transport/verbs/verbs_int.h"

static rl_status_t parse(const char *spec, vb_hca_t *h, int *n, char *err)
{
    return vb_hca_parse(spec, h, VB_MAX_DEVS, n, err, 256);
}

Test(verbs_hca, lists)
{
    vb_hca_t h[VB_MAX_DEVS];
    int n = -1;
    char err[256];
    cr_assert_eq(parse("", h, &n, err), RL_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(parse("rxe0:1", h, &n, err), RL_OK, "%s", err);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(h[0].name, "rxe0");
    cr_assert_eq(h[0].port, 1);
    cr_assert_eq(parse("mlx5_0:1,mlx5_1,mlx5_0:2", h, &n, err), RL_OK, "%s", err);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(h[1].name, "mlx5_1");
    cr_assert_eq(h[1].port, 0); /* the first active port */
    cr_assert_eq(h[2].port, 2);
}

Test(verbs_hca, bad_entries_are_named)
{
    vb_hca_t h[VB_MAX_DEVS];
    int n;
    char err[256];
    struct {
        const char *spec, *want;
    } bad[] = {
        {"rxe0:1,,rxe1:1", "entry 2 is empty"},
        {"rxe0:1,", "entry 2 is empty"},
        {"rxe0:0", "entry 1 (rxe0:0)"},
        {"rxe0:1,rxe1:256", "entry 2 (rxe1:256)"},
        {"rxe0:x", "port must be a number"},
        {":1", "no device name"},
        {"rxe0:1,rxe1:1,rxe0:1", "entry 3 (rxe0:1) repeats device rxe0 of entry 1"},
        {"rxe0,rxe0:1", "repeats device rxe0"},
        {"a,b,c,d,e,f,g,h,i", "more than 8 devices"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        cr_assert_eq(parse(bad[i].spec, h, &n, err), RL_ERR_CONFIG, "%s accepted", bad[i].spec);
        cr_assert(strstr(err, bad[i].want), "%s: \"%s\" lacks \"%s\"", bad[i].spec, err, bad[i].want);
    }
}
