#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

static const rl_config_field_t *field(const char *name)
{
    for (size_t i = 0; i < rl_config_nfields; i++)
        if (!strcmp(rl_config_fields[i].name, name))
            return &rl_config_fields[i];
    cr_assert_fail("no field %s", name);
    return NULL;
}

Test(config, sizes_with_suffixes)
{
    size_t v;
    cr_assert_eq(rl_parse_size("4096", &v), 0);
    cr_assert_eq(v, 4096);
    cr_assert_eq(rl_parse_size("512K", &v), 0);
    cr_assert_eq(v, 512 * 1024);
    cr_assert_eq(rl_parse_size("4MiB", &v), 0);
    cr_assert_eq(v, 4u << 20);
    cr_assert_eq(rl_parse_size("1g", &v), 0);
    cr_assert_eq(v, 1u << 30);
    cr_assert_neq(rl_parse_size("", &v), 0);
    cr_assert_neq(rl_parse_size("-5", &v), 0);
    cr_assert_neq(rl_parse_size("12Q", &v), 0);
    cr_assert_neq(rl_parse_size("99999999999999999999G", &v), 0);
}

Test(config, defaults_load_and_env_overrides)
{
    rl_config_t c;
    char err[256];
    setenv("RINGLET_CHUNK_BYTES", "1M", 1);
    setenv("RINGLET_PIPELINE_DEPTH", "8", 1);
    cr_assert_eq(rl_config_load(&c, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert_eq(c.chunk_bytes, 1u << 20);
    cr_assert_eq(c.pipeline_depth, 8);
    cr_assert_eq(c.nchannels, 1);
    cr_assert_str_eq(c.transport, "auto");
    unsetenv("RINGLET_CHUNK_BYTES");
    unsetenv("RINGLET_PIPELINE_DEPTH");
}

Test(config, bad_values_name_the_variable)
{
    rl_config_t c;
    char err[256];
    setenv("RINGLET_PIPELINE_DEPTH", "0", 1);
    cr_assert_eq(rl_config_load(&c, err, sizeof(err)), RL_ERR_CONFIG);
    cr_assert(strstr(err, "RINGLET_PIPELINE_DEPTH"), "%s", err);
    setenv("RINGLET_PIPELINE_DEPTH", "4x", 1);
    cr_assert_eq(rl_config_load(&c, err, sizeof(err)), RL_ERR_CONFIG);
    unsetenv("RINGLET_PIPELINE_DEPTH");
    cr_assert_eq(rl_config_set(&c, field("REG_CACHE"), "maybe", err, sizeof(err)), RL_ERR_CONFIG);
    cr_assert_eq(rl_config_set(&c, field("REG_CACHE"), "2", err, sizeof(err)), RL_ERR_CONFIG);
    cr_assert_eq(rl_config_set(&c, field("REG_CACHE"), "0", err, sizeof(err)), RL_OK);
    cr_assert_eq(c.reg_cache, 0);
    cr_assert_eq(rl_config_set(&c, field("CHUNK_BYTES"), "1", err, sizeof(err)), RL_ERR_CONFIG);
    char big[600];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    cr_assert_eq(rl_config_set(&c, field("ADDR"), big, err, sizeof(err)), RL_ERR_CONFIG);
}

Test(config, ring_order_is_a_permutation)
{
    int o[5];
    char err[256];
    cr_assert_eq(rl_parse_ring_order("", 5, o, err, sizeof(err)), RL_OK);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(o[i], i);
    cr_assert_eq(rl_parse_ring_order("4,2, 0,1,3", 5, o, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert_eq(o[0], 4);
    cr_assert_eq(o[2], 0);
    cr_assert_eq(rl_parse_ring_order("0,1,2,3", 5, o, err, sizeof(err)), RL_ERR_CONFIG);
    cr_assert_eq(rl_parse_ring_order("0,1,2,3,3", 5, o, err, sizeof(err)), RL_ERR_CONFIG);
    cr_assert(strstr(err, "twice"), "%s", err);
    cr_assert_eq(rl_parse_ring_order("0,1,2,3,5", 5, o, err, sizeof(err)), RL_ERR_CONFIG);
    cr_assert_eq(rl_parse_ring_order("0,1,2,3,4,0", 5, o, err, sizeof(err)), RL_ERR_CONFIG);
    cr_assert_eq(rl_parse_ring_order("0;1;2;3;4", 5, o, err, sizeof(err)), RL_ERR_CONFIG);
    cr_assert_eq(rl_parse_ring_order("-1,0,1,2,3", 5, o, err, sizeof(err)), RL_ERR_CONFIG);
}

Test(config, channels_follow_the_device_list)
{
    rl_config_t c;
    char err[256];
    setenv("RINGLET_IB_HCA", "rxe0:1,rxe1:1,rxe2:1", 1);
    cr_assert_eq(rl_config_load(&c, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert_eq(c.nchannels, 3);
    setenv("RINGLET_NCHANNELS", "2", 1); /* given: it wins */
    cr_assert_eq(rl_config_load(&c, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert_eq(c.nchannels, 2);
    unsetenv("RINGLET_NCHANNELS");
    setenv("RINGLET_IB_HCA", "rxe0:1", 1);
    cr_assert_eq(rl_config_load(&c, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert_eq(c.nchannels, 1);
    unsetenv("RINGLET_IB_HCA");
}
