#include <criterion/criterion.h>
#include <string.h>

#include "core/bootstrap.h"

Test(bootstrap_msg, header_round_trip)
{
    rl_boot_hdr_t h = {RL_BOOT_MAGIC, RL_PROTOCOL_VERSION, RL_BOOT_GATHER, 3, 1234}, d;
    uint8_t buf[16];
    char err[128];
    rl_boot_hdr_encode(&h, buf);
    cr_assert_eq(rl_boot_hdr_decode(buf, 4, 4096, &d, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert_eq(d.magic, h.magic);
    cr_assert_eq(d.version, h.version);
    cr_assert_eq(d.type, h.type);
    cr_assert_eq(d.rank, 3);
    cr_assert_eq(d.len, 1234);
}

Test(bootstrap_msg, header_validation)
{
    uint8_t buf[16];
    char err[128];
    rl_boot_hdr_t d;
    rl_boot_hdr_t h = {RL_BOOT_MAGIC, RL_PROTOCOL_VERSION, RL_BOOT_GATHER, 3, 1234};
    rl_boot_hdr_encode(&h, buf);
    cr_assert_eq(rl_boot_hdr_decode(buf, 3, 4096, &d, err, sizeof(err)), RL_ERR_PROTOCOL, "rank out of range");
    cr_assert_eq(rl_boot_hdr_decode(buf, 4, 1000, &d, err, sizeof(err)), RL_ERR_PROTOCOL, "too long");
    cr_assert(strstr(err, "exceeds"), "%s", err);
    h.type = 0;
    rl_boot_hdr_encode(&h, buf);
    cr_assert_eq(rl_boot_hdr_decode(buf, 4, 4096, &d, err, sizeof(err)), RL_ERR_PROTOCOL, "type 0");
    h.type = RL_BOOT_TYPE_MAX + 1;
    rl_boot_hdr_encode(&h, buf);
    cr_assert_eq(rl_boot_hdr_decode(buf, 4, 4096, &d, err, sizeof(err)), RL_ERR_PROTOCOL, "type too big");
    memcpy(buf, "GET / HTTP/1.1\r\n", 16);
    cr_assert_eq(rl_boot_hdr_decode(buf, 4, 4096, &d, err, sizeof(err)), RL_ERR_PROTOCOL, "not ringlet");
    cr_assert(strstr(err, "magic"), "%s", err);
}

Test(bootstrap_msg, status_payload_is_length_checked)
{
    rl_boot_status_msg_t m;
    uint8_t buf[sizeof(m) + 1];
    memset(buf, 'x', sizeof(buf));
    cr_assert_eq(rl_boot_status_decode(buf, sizeof(m) - 1, &m), RL_ERR_PROTOCOL);
    memset(buf, 0, sizeof(buf));
    memset(buf + 8, 'x', sizeof(m) - 8); /* no terminator in the message */
    cr_assert_eq(rl_boot_status_decode(buf, sizeof(m), &m), RL_OK);
    cr_assert_eq(strlen(m.msg), sizeof(m.msg) - 1);
}
