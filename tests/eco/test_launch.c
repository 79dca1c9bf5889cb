/* Launcher parsing: Slurm hostlists and the per-step rendezvous port. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/launch.h"

static const char *first(const char *list)
{
    static char out[64];
    return rl_launch_first_host(list, out, sizeof(out)) ? NULL : out;
}

Test(launch, first_host_of_hostlists)
{
    cr_assert_str_eq(first("node07"), "node07");
    cr_assert_str_eq(first("a1,b2"), "a1");
    cr_assert_str_eq(first("node[07-09,12]"), "node07");
    cr_assert_str_eq(first("node[12,07-09]"), "node12");
    cr_assert_str_eq(first("rack[3-4]-n[01-08],x"), "rack3-n01");
    cr_assert_str_eq(first("gpu[001-004].cluster"), "gpu001.cluster");
}

Test(launch, malformed_hostlists_are_refused)
{
    cr_assert_null(first(""));
    cr_assert_null(first(NULL));
    cr_assert_null(first("node[01-02"));
    cr_assert_null(first("node]"));
    cr_assert_null(first(",node1"));
    char small[4];
    cr_assert_eq(rl_launch_first_host("node01", small, sizeof(small)), -1);
}

Test(launch, slurm_port_in_range_and_distinct_per_step_and_comm)
{
    for (unsigned long job = 0; job < 5000; job += 7) {
        int p = rl_launch_slurm_port(job, 0, 0);
        cr_assert(p >= 12000 && p < 32000, "port %d", p);
        cr_assert_neq(p, rl_launch_slurm_port(job, 1, 0));
        cr_assert_neq(p, rl_launch_slurm_port(job, 0, 1));
    }
    cr_assert_eq(rl_launch_slurm_port(1234, 5, 2), rl_launch_slurm_port(1234, 5, 2));
}
