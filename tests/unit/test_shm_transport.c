/*
 * The native shm transport through its operations table, both ends in one
 * process (two transports, as two ranks would open them): writes land where
 * the rkey says and the immediate comes after the data; writes larger than
 * a connection's ring are pipelined; and what a peer sends that is not
 * right (a key or range outside the registrations, malformed connection
 * data) is an error naming that peer, never a write to the wrong place.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/config.h"
#include "transport/transport.h"

static const rl_tp_ops_t *ops;
static rl_config_t cfg;
static rl_tp_t *tp[2];
static rl_tp_conn_t *conn[2]; /* conn[0]: rank 0 -> 1, conn[1]: rank 1 -> 0 */

static void open_pair(void)
{
    char err[256];
    ops = rl_transport_find("shm");
    cr_assert_not_null(ops);
    cr_assert_eq(rl_config_load(&cfg, err, sizeof(err)), RL_OK, "%s", err);
    uint8_t blob[2][RL_TP_BLOB_MAX];
    size_t len[2];
    for (int r = 0; r < 2; r++) {
        rl_tp_params_t p = {.rank = r, .nranks = 2, .all_local = 1, .cfg = &cfg};
        cr_assert_eq(ops->open(&p, &tp[r], err, sizeof(err)), RL_OK, "%s", err);
        len[r] = RL_TP_BLOB_MAX;
        cr_assert_eq(ops->conn_create(tp[r], 1 - r, 0, &conn[r], blob[r], &len[r]), RL_OK);
    }
    int64_t dl = rl_deadline_ms(5000);
    for (int r = 0; r < 2; r++)
        cr_assert_eq(ops->conn_establish(conn[r], blob[1 - r], len[1 - r], dl), RL_OK, "%s",
                     ops->last_error(tp[r]));
}

static void close_pair(void)
{
    for (int r = 0; r < 2; r++) {
        if (conn[r])
            ops->conn_destroy(conn[r]);
        if (tp[r])
            ops->close(tp[r]);
        conn[r] = NULL;
        tp[r] = NULL;
    }
}

/* Poll both sides until `want` receive completions arrived at rank 1 (or
 * an error); returns how many arrived, copying them to got. */
static int pump(int want, rl_tp_cqe_t *got, int *sends)
{
    int have = 0;
    int64_t dl = rl_deadline_ms(5000);
    while (have < want && rl_now_ns() < dl) {
        rl_tp_cqe_t ev[16];
        int n = 0;
        cr_assert_eq(ops->poll(tp[0], ev, 16, &n), RL_OK);
        for (int i = 0; i < n; i++)
            if (ev[i].kind == RL_CQE_SEND && sends)
                (*sends)++;
        cr_assert_eq(ops->poll(tp[1], ev, 16, &n), RL_OK);
        for (int i = 0; i < n && have < want; i++)
            if (ev[i].kind == RL_CQE_RECV_IMM)
                got[have++] = ev[i];
    }
    return have;
}

TestSuite(shm_transport, .init = open_pair, .fini = close_pair, .timeout = 30);

Test(shm_transport, writes_land_in_place_and_in_order)
{
    size_t len = 3u << 20; /* three times a connection's ring */
    uint8_t *src = malloc(len), *dst = calloc(1, len + 64);
    for (size_t i = 0; i < len; i++)
        src[i] = (uint8_t)(i * 7 + 3);
    rl_tp_mr_t *smr, *dmr;
    cr_assert_eq(ops->mr_reg(tp[0], src, len, RL_ACCESS_LOCAL, &smr), RL_OK);
    cr_assert_eq(ops->mr_reg(tp[1], dst, len + 64, RL_ACCESS_REMOTE_WRITE, &dmr), RL_OK);
    rl_rkey_t rk;
    ops->mr_remote(dmr, NULL, dst + 64, &rk);
    /* a small one, a zero-length one, then the large one */
    cr_assert_eq(ops->write_imm(conn[0], src, 40, smr, rk.addr, rk.key, 11, (void *)1), RL_OK);
    cr_assert_eq(ops->write_imm(conn[0], NULL, 0, NULL, rk.addr, rk.key, 12, (void *)2), RL_OK);
    cr_assert_eq(ops->write_imm(conn[0], src, len, smr, rk.addr, rk.key, 13, (void *)3), RL_OK);
    rl_tp_cqe_t got[3];
    int sends = 0;
    cr_assert_eq(pump(3, got, &sends), 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(got[i].status, RL_OK);
        cr_assert_eq(got[i].imm, 11u + (unsigned)i, "immediates in order");
        cr_assert_eq(got[i].peer, 0);
    }
    cr_assert(!memcmp(dst + 64, src, len), "data in place");
    for (int i = 0; i < 64; i++)
        cr_assert_eq(dst[i], 0, "nothing written before the target");
    rl_tp_cqe_t ev[16];
    int n = 0;
    for (int64_t dl = rl_deadline_ms(2000); sends < 3 && rl_now_ns() < dl;) {
        ops->poll(tp[0], ev, 16, &n);
        sends += n;
    }
    cr_assert_eq(sends, 3, "every write completes at the sender");
    ops->mr_dereg(smr);
    ops->mr_dereg(dmr);
    free(src);
    free(dst);
}

static void expect_refused(uint64_t raddr_off, size_t len, int wrong_key, int deregister)
{
    uint8_t src[256] = {1}, *dst = calloc(1, 4096);
    rl_tp_mr_t *dmr;
    cr_assert_eq(ops->mr_reg(tp[1], dst, 1024, RL_ACCESS_REMOTE_WRITE, &dmr), RL_OK);
    rl_rkey_t rk;
    ops->mr_remote(dmr, NULL, dst, &rk);
    if (deregister)
        ops->mr_dereg(dmr);
    cr_assert_eq(ops->write_imm(conn[0], src, len, NULL, rk.addr + raddr_off, rk.key + (wrong_key ? 1 : 0), 5,
                                NULL),
                 RL_OK);
    rl_tp_cqe_t got;
    cr_assert_eq(pump(1, &got, NULL), 1);
    cr_assert_eq(got.status, RL_ERR_PROTOCOL, "refused, not delivered");
    cr_assert_eq(got.peer, 0, "names the peer");
    cr_assert(strstr(ops->last_error(tp[1]), "rank 0"), "%s", ops->last_error(tp[1]));
    for (int i = 0; i < 4096; i++)
        cr_assert_eq(dst[i], 0, "nothing written");
    if (!deregister)
        ops->mr_dereg(dmr);
    free(dst);
}

Test(shm_transport, write_past_the_region_is_refused) { expect_refused(1000, 100, 0, 0); }
Test(shm_transport, write_before_the_region_is_refused) { expect_refused((uint64_t)-8, 16, 0, 0); }
Test(shm_transport, unknown_key_is_refused) { expect_refused(0, 16, 1, 0); }
Test(shm_transport, deregistered_region_is_refused) { expect_refused(0, 16, 0, 1); }

Test(shm_transport, local_only_region_is_refused)
{
    uint8_t src[16] = {1}, dst[64] = {0};
    rl_tp_mr_t *dmr;
    cr_assert_eq(ops->mr_reg(tp[1], dst, sizeof(dst), RL_ACCESS_LOCAL, &dmr), RL_OK);
    rl_rkey_t rk;
    ops->mr_remote(dmr, NULL, dst, &rk);
    cr_assert_eq(ops->write_imm(conn[0], src, 16, NULL, rk.addr, rk.key, 5, NULL), RL_OK);
    rl_tp_cqe_t got;
    cr_assert_eq(pump(1, &got, NULL), 1);
    cr_assert_eq(got.status, RL_ERR_PROTOCOL);
    cr_assert_eq(dst[0], 0);
    ops->mr_dereg(dmr);
}

/* Connection data is network input too. */
Test(shm_transport, malformed_connection_data_is_refused, .init = NULL, .fini = NULL)
{
    char err[256];
    ops = rl_transport_find("shm");
    cr_assert_eq(rl_config_load(&cfg, err, sizeof(err)), RL_OK);
    rl_tp_params_t p = {.rank = 0, .nranks = 2, .all_local = 1, .cfg = &cfg};
    rl_tp_t *t;
    cr_assert_eq(ops->open(&p, &t, err, sizeof(err)), RL_OK, "%s", err);
    uint8_t blob[RL_TP_BLOB_MAX], bad[RL_TP_BLOB_MAX];
    size_t len = sizeof(blob);
    rl_tp_conn_t *c;
    cr_assert_eq(ops->conn_create(t, 1, 0, &c, blob, &len), RL_OK);
    int64_t dl = rl_deadline_ms(1000);
    cr_assert_eq(ops->conn_establish(c, blob, len - 1, dl), RL_ERR_PROTOCOL, "short");
    memcpy(bad, blob, len);
    bad[0] ^= 1;
    cr_assert_eq(ops->conn_establish(c, bad, len, dl), RL_ERR_PROTOCOL, "magic");
    /* our own blob claims rank 0, but this connection leads to rank 1 */
    cr_assert_eq(ops->conn_establish(c, blob, len, dl), RL_ERR_PROTOCOL, "rank");
    ops->conn_destroy(c);
    ops->close(t);
    p.all_local = 0;
    cr_assert_eq(ops->open(&p, &t, err, sizeof(err)), RL_ERR_UNSUPPORTED, "refuses ranks on other hosts");
}
