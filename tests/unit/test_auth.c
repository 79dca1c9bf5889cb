/*
 * Authenticated bootstrap, between threads of one process over real
 * loopback sockets: the right key joins, a wrong or missing key is refused
 * with RL_ERR_AUTH (on both sides of the handshake), a key file works, and a
 * rank speaking another protocol version is refused with RL_ERR_VERSION.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/auth.h"
#include "core/bootstrap.h"
#include "core/clock.h"

static char addr[64];

static void pick_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    getsockname(fd, (struct sockaddr *)&sa, &len);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sa.sin_port));
    close(fd);
}

typedef struct {
    int rank, nranks, timeout_ms, delay_ms;
    const char *secret; /* NULL: no key */
    uint16_t version;
    rl_status_t st;
    char err[256];
    int all[4];
    int64_t t_end; /* when create + all-gather returned */
} job_t;

static void *member(void *arg)
{
    job_t *j = arg;
    usleep((useconds_t)j->delay_ms * 1000);
    rl_auth_key_t key;
    if (j->secret)
        cr_assert_eq(rl_auth_derive(j->secret, strlen(j->secret), &key), RL_OK);
    rl_boot_opts_t o = {.key = j->secret ? &key : NULL, .version = j->version};
    rl_boot_t *b = NULL;
    j->st = rl_boot_create_opts(j->rank, j->nranks, addr, &o, rl_deadline_ms(j->timeout_ms), &b, j->err,
                                sizeof(j->err));
    if (j->st == RL_OK) {
        int mine = 100 + j->rank;
        j->st = rl_boot_allgather(b, &mine, sizeof(mine), j->all, rl_deadline_ms(j->timeout_ms), j->err,
                                  sizeof(j->err));
    }
    j->t_end = rl_now_ns();
    if (b)
        rl_boot_destroy(b, rl_deadline_ms(2000));
    return NULL;
}

static void run_jobs(job_t *jobs, int n)
{
    pthread_t t[8];
    for (int i = 0; i < n; i++)
        pthread_create(&t[i], NULL, member, &jobs[i]);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
}

TestSuite(auth, .init = pick_port, .timeout = 30);

Test(auth, right_key_joins)
{
    job_t j[3];
    for (int i = 0; i < 3; i++)
        j[i] = (job_t){.rank = i, .nranks = 3, .timeout_ms = 5000, .secret = "s3cret", .delay_ms = i ? 20 : 0};
    run_jobs(j, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(j[i].st, RL_OK, "rank %d: %s", i, j[i].err);
        for (int r = 0; r < 3; r++)
            cr_assert_eq(j[i].all[r], 100 + r);
    }
}

/* Rank 2 has joined; a rank 1 without the right key is refused, and rank 0
 * and rank 2 hear why at once (naming rank 1 and the cause) instead of
 * waiting out the deadline: it is a misconfigured member or an impostor,
 * and either way the group cannot form. */
static void refused_fails_the_group(const char *intruder_secret, const char *expect, const char *cause)
{
    job_t j[3] = {{.rank = 0, .nranks = 3, .timeout_ms = 8000, .secret = "s3cret"},
                  {.rank = 1, .nranks = 3, .timeout_ms = 8000, .secret = intruder_secret, .delay_ms = 300},
                  {.rank = 2, .nranks = 3, .timeout_ms = 8000, .secret = "s3cret", .delay_ms = 20}};
    int64_t t0 = rl_now_ns();
    run_jobs(j, 3);
    cr_assert_eq(j[1].st, RL_ERR_AUTH, "intruder: %s: %s", rl_status_name(j[1].st), j[1].err);
    cr_assert(strstr(j[1].err, expect), "%s", j[1].err);
    cr_assert_eq(j[1].all[0], 0, "the intruder learned nothing of the group");
    cr_assert_eq(j[1].all[2], 0);
    for (int i = 0; i < 3; i += 2) {
        cr_assert_eq(j[i].st, RL_ERR_AUTH, "rank %d: %s: %s", i, rl_status_name(j[i].st), j[i].err);
        cr_assert(strstr(j[i].err, "rank 1") && strstr(j[i].err, cause), "rank %d: %s", i, j[i].err);
        cr_assert_lt(j[i].t_end - t0, 2000000000LL, "rank %d heard of the refusal only after %.0f ms", i,
                     (double)(j[i].t_end - t0) / 1e6);
    }
}

Test(auth, wrong_key_fails_the_group_at_once)
{
    refused_fails_the_group("guess", "different RINGLET_AUTH_KEY", "wrong key");
}

Test(auth, no_key_fails_the_group_at_once)
{
    refused_fails_the_group(NULL, "requires authentication", "no RINGLET_AUTH_KEY");
}

/* A member started with another group size proves its key and is then
 * told the size; without a key it would only learn that it differs. */
Test(auth, size_mismatch_after_authentication_fails_the_group)
{
    job_t j[2] = {{.rank = 0, .nranks = 2, .timeout_ms = 5000, .secret = "s3cret"},
                  {.rank = 1, .nranks = 3, .timeout_ms = 5000, .secret = "s3cret", .delay_ms = 20}};
    run_jobs(j, 2);
    cr_assert_eq(j[1].st, RL_ERR_MISMATCH, "%s: %s", rl_status_name(j[1].st), j[1].err);
    cr_assert(strstr(j[1].err, "rank 0 has 2"), "%s", j[1].err);
    cr_assert_eq(j[0].st, RL_ERR_MISMATCH, "%s: %s", rl_status_name(j[0].st), j[0].err);
}

Test(auth, rank_refuses_a_root_without_key)
{
    job_t j[2] = {{.rank = 0, .nranks = 2, .timeout_ms = 1500},
                  {.rank = 1, .nranks = 2, .timeout_ms = 1500, .secret = "s3cret", .delay_ms = 20}};
    run_jobs(j, 2);
    cr_assert_eq(j[1].st, RL_ERR_AUTH, "%s: %s", rl_status_name(j[1].st), j[1].err);
    cr_assert(strstr(j[1].err, "did not authenticate"), "%s", j[1].err);
    cr_assert_neq(j[0].st, RL_OK, "rank 0 must not think the group formed");
}

Test(auth, other_protocol_version_is_refused)
{
    job_t j[3] = {{.rank = 0, .nranks = 2, .timeout_ms = 5000},
                  {.rank = 1, .nranks = 2, .timeout_ms = 5000, .version = RL_PROTOCOL_VERSION + 1, .delay_ms = 20},
                  {.rank = 1, .nranks = 2, .timeout_ms = 5000, .delay_ms = 400}};
    run_jobs(j, 3);
    cr_assert_eq(j[1].st, RL_ERR_VERSION, "%s: %s", rl_status_name(j[1].st), j[1].err);
    cr_assert(strstr(j[1].err, "protocol"), "%s", j[1].err);
    cr_assert_eq(j[0].st, RL_OK, "%s", j[0].err);
    cr_assert_eq(j[2].st, RL_OK, "%s", j[2].err);
}

Test(auth, key_file)
{
    char path[] = "/tmp/ringlet-key-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "s3cret\n", 7), 7);
    close(fd);
    rl_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.auth_key_file, sizeof(cfg.auth_key_file), "%s", path);
    rl_auth_key_t a, b;
    int have = 0;
    char err[256] = "";
    cr_assert_eq(rl_auth_load(&cfg, &a, &have, err, sizeof(err)), RL_OK, "%s", err);
    cr_assert_eq(have, 1);
    cr_assert_eq(rl_auth_derive("s3cret", 6, &b), RL_OK);
    cr_assert_eq(memcmp(a.key, b.key, sizeof(a.key)), 0, "the newline is not part of the secret");
    snprintf(cfg.auth_key, sizeof(cfg.auth_key), "x");
    cr_assert_eq(rl_auth_load(&cfg, &a, &have, err, sizeof(err)), RL_ERR_CONFIG, "both set");
    cfg.auth_key[0] = '\0';
    fd = open(path, O_WRONLY | O_TRUNC);
    cr_assert_eq(write(fd, "\n", 1), 1);
    close(fd);
    cr_assert_eq(rl_auth_load(&cfg, &a, &have, err, sizeof(err)), RL_ERR_CONFIG, "empty secret");
    unlink(path);
    cr_assert_eq(rl_auth_load(&cfg, &a, &have, err, sizeof(err)), RL_ERR_CONFIG, "missing file");
    cr_assert(strstr(err, path), "%s", err);
    memset(&cfg, 0, sizeof(cfg));
    cr_assert_eq(rl_auth_load(&cfg, &a, &have, err, sizeof(err)), RL_OK);
    cr_assert_eq(have, 0, "no key configured");
}

Test(auth, macs_bind_role_nonces_and_rank)
{
    rl_auth_key_t k, k2;
    rl_auth_derive("s3cret", 6, &k);
    rl_auth_derive("s3cres", 6, &k2);
    rl_auth_ctx_t c = {.rank = 1, .nranks = 2, .version = 1};
    rl_auth_nonce(c.root_nonce);
    rl_auth_nonce(c.rank_nonce);
    uint8_t mac[RL_AUTH_MAC_BYTES];
    rl_auth_mac(&k, RL_AUTH_RANK, &c, mac);
    cr_assert(rl_auth_verify(&k, RL_AUTH_RANK, &c, mac));
    cr_assert_not(rl_auth_verify(&k2, RL_AUTH_RANK, &c, mac), "other key");
    cr_assert_not(rl_auth_verify(&k, RL_AUTH_ROOT, &c, mac), "a rank's proof is not rank 0's");
    rl_auth_ctx_t d = c;
    d.rank = 2;
    cr_assert_not(rl_auth_verify(&k, RL_AUTH_RANK, &d, mac), "other rank");
    d = c;
    d.root_nonce[5] ^= 1;
    cr_assert_not(rl_auth_verify(&k, RL_AUTH_RANK, &d, mac), "other challenge (replay)");
}
