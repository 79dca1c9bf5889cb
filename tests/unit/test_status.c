#include <criterion/criterion.h>
#include <string.h>

#include "ringlet.h"

Test(status, every_value_has_a_distinct_name_and_message)
{
    const rl_status_t all[] = {
#define X_(name, value, msg) name,
        RL_STATUS_MAP(X_)
#undef X_
    };
    size_t n = sizeof(all) / sizeof(all[0]);
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_neq(rl_strerror(all[i]), "unknown status");
        cr_assert_str_neq(rl_status_name(all[i]), "RL_STATUS_UNKNOWN");
        for (size_t j = 0; j < i; j++) {
            cr_assert_neq(all[i], all[j]);
            cr_assert_str_neq(rl_status_name(all[i]), rl_status_name(all[j]));
        }
    }
    cr_assert_str_eq(rl_status_name(RL_ERR_TIMEOUT), "RL_ERR_TIMEOUT");
}

Test(status, unknown_values_do_not_crash)
{
    cr_assert_str_eq(rl_strerror((rl_status_t)12345), "unknown status");
    cr_assert_str_eq(rl_status_name((rl_status_t)-999), "RL_STATUS_UNKNOWN");
}

Test(status, version_string)
{
    cr_assert_str_eq(rl_version(), "0.1.0");
}
