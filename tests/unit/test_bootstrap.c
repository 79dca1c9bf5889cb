/* Bootstrap between threads of one process over real loopback sockets. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
    int rank, nranks, timeout_ms, gather;
    int delay_ms; /* start late, so that refusals happen before the group is complete */
    rl_status_t st;
    char err[256];
    int all[8];
    int64_t t_end;
} job_t;

static void *member(void *arg)
{
    job_t *j = arg;
    rl_boot_t *b = NULL;
    usleep((useconds_t)j->delay_ms * 1000);
    j->st = rl_boot_create(j->rank, j->nranks, addr, rl_deadline_ms(j->timeout_ms), &b, j->err, sizeof(j->err));
    if (j->st == RL_OK && j->gather) {
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
    for (int i = 0; i < n; i++) {
        pthread_create(&t[i], NULL, member, &jobs[i]);
        if (i == 0)
            usleep(20000);
    }
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
}

TestSuite(bootstrap, .init = pick_port, .timeout = 30);

Test(bootstrap, three_ranks_all_gather)
{
    job_t j[3];
    for (int i = 0; i < 3; i++)
        j[i] = (job_t){.rank = i, .nranks = 3, .timeout_ms = 5000, .gather = 1};
    run_jobs(j, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(j[i].st, RL_OK, "rank %d: %s", i, j[i].err);
        for (int r = 0; r < 3; r++)
            cr_assert_eq(j[i].all[r], 100 + r);
    }
}

Test(bootstrap, missing_rank_hits_the_deadline_and_is_named)
{
    job_t j[2] = {{.rank = 0, .nranks = 3, .timeout_ms = 700},
                  {.rank = 1, .nranks = 3, .timeout_ms = 3000, .gather = 1}};
    int64_t t0 = rl_now_ns();
    run_jobs(j, 2);
    cr_assert_eq(j[0].st, RL_ERR_TIMEOUT, "%s", rl_status_name(j[0].st));
    cr_assert(strstr(j[0].err, "rank(s) 2"), "%s", j[0].err);
    /* The rank that did join hears the cause from rank 0, not a bare EOF. */
    cr_assert_eq(j[1].st, RL_ERR_TIMEOUT, "%s: %s", rl_status_name(j[1].st), j[1].err);
    cr_assert(strstr(j[1].err, "rank(s) 2"), "%s", j[1].err);
    cr_assert_lt(rl_now_ns() - t0, 5000000000LL, "the deadline was not kept");
}

/* Without a key a squatter can claim a rank first; the real rank's claim
 * then fails the whole group at once, saying so, rather than leaving the
 * squatter in and the real rank out. */
Test(bootstrap, duplicate_rank_fails_the_group_at_once)
{
    job_t j[3] = {{.rank = 0, .nranks = 3, .timeout_ms = 6000, .gather = 1},
                  {.rank = 1, .nranks = 3, .timeout_ms = 6000, .gather = 1},
                  {.rank = 1, .nranks = 3, .timeout_ms = 6000, .gather = 1, .delay_ms = 100}};
    int64_t t0 = rl_now_ns();
    run_jobs(j, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(j[i].st, RL_ERR_BOOTSTRAP, "job %d: %s: %s", i, rl_status_name(j[i].st), j[i].err);
        cr_assert(strstr(j[i].err, "rank 1 joined twice"), "job %d: %s", i, j[i].err);
        cr_assert_lt(j[i].t_end - t0, 2000000000LL, "job %d took %.0f ms", i, (double)(j[i].t_end - t0) / 1e6);
    }
}

Test(bootstrap, size_mismatch_is_refused)
{
    job_t j[3] = {{.rank = 0, .nranks = 2, .timeout_ms = 1500},
                  {.rank = 1, .nranks = 4, .timeout_ms = 1500},
                  {.rank = 1, .nranks = 2, .timeout_ms = 1500, .delay_ms = 300}};
    run_jobs(j, 3);
    cr_assert_eq(j[1].st, RL_ERR_MISMATCH, "%s: %s", rl_status_name(j[1].st), j[1].err);
    cr_assert_eq(j[0].st, RL_OK, "%s", j[0].err);
    cr_assert_eq(j[2].st, RL_OK, "%s", j[2].err);
}

/* A raw client: send a 16-byte header, read the answer's status (and,
 * with msg, its message). */
static char last_refusal[RL_BOOT_MSG_MAX];
static int32_t raw_hello_n(uint16_t version, int32_t rank, uint32_t len, uint8_t claimed);
static int32_t raw_hello(uint16_t version, int32_t rank, uint32_t len) { return raw_hello_n(version, rank, len, 2); }
static int32_t raw_hello_n(uint16_t version, int32_t rank, uint32_t len, uint8_t claimed)
{
    int port = atoi(strchr(addr, ':') + 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < 100 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)); i++)
        usleep(10000);
    rl_boot_hdr_t h = {RL_BOOT_MAGIC, version, RL_BOOT_HELLO, rank, len};
    uint8_t buf[16 + 8] = {0};
    rl_boot_hdr_encode(&h, buf);
    buf[16] = claimed; /* nranks */
    buf[20] = 1;
    send(fd, buf, 16 + (len <= 8 ? len : 8), 0);
    uint8_t ans[16 + sizeof(rl_boot_status_msg_t)];
    size_t got = 0;
    while (got < sizeof(ans)) {
        ssize_t n = recv(fd, ans + got, sizeof(ans) - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (got < sizeof(ans))
        return 1; /* closed without an answer */
    rl_boot_status_msg_t m;
    cr_assert_eq(rl_boot_status_decode(ans + 16, sizeof(m), &m), RL_OK);
    snprintf(last_refusal, sizeof(last_refusal), "%s", m.msg);
    return m.status;
}

static void *root_only(void *arg)
{
    job_t *j = arg;
    member(j);
    return NULL;
}

Test(bootstrap, strangers_are_refused_and_the_group_still_forms)
{
    job_t root = {.rank = 0, .nranks = 2, .timeout_ms = 4000};
    pthread_t t;
    pthread_create(&t, NULL, root_only, &root);
    usleep(50000);
    cr_assert_eq(raw_hello(99, 1, 8), RL_ERR_VERSION);
    cr_assert_eq(raw_hello(RL_PROTOCOL_VERSION, 7, 8), RL_ERR_PROTOCOL, "rank out of range");
    cr_assert_eq(raw_hello(RL_PROTOCOL_VERSION, 1, 3), RL_ERR_PROTOCOL, "short hello");
    job_t one = {.rank = 1, .nranks = 2, .timeout_ms = 4000};
    member(&one);
    pthread_join(t, NULL);
    cr_assert_eq(one.st, RL_OK, "%s", one.err);
    cr_assert_eq(root.st, RL_OK, "%s", root.err);
}

/* ---- deadlines the kernel must not decide ---- */

static int port_of(const char *a) { return atoi(strchr(a, ':') + 1); }

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < 200 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)); i++)
        usleep(10000);
    return fd;
}

Test(bootstrap, ports_outside_1_to_65535_are_config_errors)
{
    const char *bad[] = {"127.0.0.1:99999", "127.0.0.1:0", "127.0.0.1:-5", "127.0.0.1:http", "127.0.0.1:65536"};
    for (int rank = 0; rank < 2; rank++) {
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            rl_boot_t *b = NULL;
            char err[256] = "";
            int64_t t0 = rl_now_ns();
            rl_status_t st = rl_boot_create(rank, 2, bad[i], rl_deadline_ms(3000), &b, err, sizeof(err));
            cr_assert_eq(st, RL_ERR_CONFIG, "rank %d, %s: %s: %s", rank, bad[i], rl_status_name(st), err);
            cr_assert(strstr(err, "1..65535"), "%s", err);
            cr_assert_lt(rl_now_ns() - t0, 100000000LL, "a bad port is refused at once");
            cr_assert_null(b);
        }
    }
}

/* A listener whose accept queue is full drops SYNs: a black hole, as an
 * address behind a DROP rule, without privileges. */
Test(bootstrap, black_holed_rendezvous_fails_within_the_deadline)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(lfd, 0), 0);
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    int fill[4];
    for (int i = 0; i < 4; i++) { /* fill the queue; later SYNs are dropped */
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&sa, sizeof(sa));
    }
    usleep(100000);
    char a[64];
    snprintf(a, sizeof(a), "127.0.0.1:%d", ntohs(sa.sin_port));
    rl_boot_t *b = NULL;
    char err[256] = "";
    int64_t t0 = rl_now_ns();
    rl_status_t st = rl_boot_create(1, 2, a, rl_deadline_ms(1000), &b, err, sizeof(err));
    double ms = (double)(rl_now_ns() - t0) / 1e6;
    cr_assert_eq(st, RL_ERR_TIMEOUT, "%s: %s", rl_status_name(st), err);
    cr_assert(strstr(err, "no answer to the connection attempt"), "%s", err);
    cr_assert_lt(ms, 1500, "took %.0f ms against a 1000 ms deadline", ms);
    fprintf(stderr, "black-holed rendezvous: failed after %.0f ms (deadline 1000 ms)\n", ms);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}

typedef struct {
    size_t len;
    int timeout_ms;
    rl_status_t st;
    char err[256];
    double ms;
} big_root_t;

static void *big_root(void *arg)
{
    big_root_t *j = arg;
    rl_boot_t *b = NULL;
    int64_t t0 = rl_now_ns();
    j->st = rl_boot_create(0, 2, addr, rl_deadline_ms(j->timeout_ms), &b, j->err, sizeof(j->err));
    char *mine = calloc(1, j->len), *all = calloc(2, j->len);
    if (j->st == RL_OK)
        j->st = rl_boot_allgather(b, mine, j->len, all, rl_deadline_ms(j->timeout_ms), j->err, sizeof(j->err));
    j->ms = (double)(rl_now_ns() - t0) / 1e6;
    rl_boot_destroy(b, 0);
    free(mine);
    free(all);
    return NULL;
}

/* Rank 1 joins, sends its part and never reads: rank 0's send of the
 * result must end at the deadline, saying that rank 1 stopped reading. */
Test(bootstrap, member_that_never_reads_fails_within_the_deadline)
{
    big_root_t j = {.len = 4u << 20, .timeout_ms = 1500};
    pthread_t t;
    pthread_create(&t, NULL, big_root, &j);
    int fd = raw_connect(port_of(addr));
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    rl_boot_hdr_t h = {RL_BOOT_MAGIC, RL_PROTOCOL_VERSION, RL_BOOT_HELLO, 1, 8};
    uint8_t hello[24] = {0};
    rl_boot_hdr_encode(&h, hello);
    hello[16] = 2;
    hello[20] = RL_PROTOCOL_VERSION;
    cr_assert_eq(send(fd, hello, sizeof(hello), 0), (ssize_t)sizeof(hello));
    uint8_t ack[16 + sizeof(rl_boot_status_msg_t)];
    size_t got = 0;
    while (got < sizeof(ack)) {
        ssize_t n = recv(fd, ack + got, sizeof(ack) - got, 0);
        cr_assert_gt(n, 0, "rank 0 closed before its answer");
        got += (size_t)n;
    }
    rl_boot_hdr_t g = {RL_BOOT_MAGIC, RL_PROTOCOL_VERSION, RL_BOOT_GATHER, 1, (uint32_t)j.len};
    uint8_t gh[16];
    rl_boot_hdr_encode(&g, gh);
    char *part = calloc(1, j.len);
    cr_assert_eq(send(fd, gh, 16, 0), 16);
    for (size_t off = 0; off < j.len;) {
        ssize_t n = send(fd, part + off, j.len - off, 0);
        cr_assert_gt(n, 0);
        off += (size_t)n;
    }
    pthread_join(t, NULL); /* ... and never read */
    cr_assert_eq(j.st, RL_ERR_TIMEOUT, "%s: %s", rl_status_name(j.st), j.err);
    cr_assert(strstr(j.err, "rank 1") && strstr(j.err, "stopped reading"), "%s", j.err);
    cr_assert_lt(j.ms, 2000, "rank 0 took %.0f ms against a 1500 ms deadline", j.ms);
    fprintf(stderr, "member that never reads: rank 0 failed after %.0f ms (deadline 1500 ms)\n", j.ms);
    free(part);
    close(fd);
}

/* ---- admission under idle connections and floods ---- */

typedef struct {
    int port, held, stop;
    int fds[400];
    long opened;
} flood_t;

/* Hold `held` silent connections, then open and drop connections (some
 * sending a byte of garbage) as fast as it can until told to stop. */
static void *flood(void *arg)
{
    flood_t *f = arg;
    for (int i = 0; i < f->held; i++)
        f->fds[i] = raw_connect(f->port);
    while (!__atomic_load_n(&f->stop, __ATOMIC_RELAXED)) {
        int fd = raw_connect(f->port);
        if (f->opened % 3 == 0)
            send(fd, "x", 1, MSG_NOSIGNAL);
        close(fd);
        f->opened++;
    }
    for (int i = 0; i < f->held; i++)
        close(f->fds[i]);
    return NULL;
}

static double form_group(int n, flood_t *f)
{
    job_t j[8];
    for (int i = 0; i < n; i++)
        j[i] = (job_t){.rank = i, .nranks = n, .timeout_ms = 10000, .gather = 1, .delay_ms = i ? 300 : 0};
    pthread_t t;
    int64_t t0 = rl_now_ns();
    if (f) {
        f->port = port_of(addr);
        pthread_create(&t, NULL, flood, f);
    }
    run_jobs(j, n);
    double ms = (double)(rl_now_ns() - t0) / 1e6;
    if (f) {
        __atomic_store_n(&f->stop, 1, __ATOMIC_RELAXED);
        pthread_join(t, NULL);
    }
    for (int i = 0; i < n; i++) {
        cr_assert_eq(j[i].st, RL_OK, "rank %d: %s: %s", i, rl_status_name(j[i].st), j[i].err);
        for (int r = 0; r < n; r++)
            cr_assert_eq(j[i].all[r], 100 + r);
    }
    return ms;
}

Test(bootstrap, silent_connections_and_a_flood_do_not_delay_the_group, .timeout = 60)
{
    double quiet = form_group(5, NULL);
    pick_port();
    flood_t *f = calloc(1, sizeof(*f));
    f->held = 300; /* more than rank 0 holds pending: the oldest are dropped */
    double loud = form_group(5, f);
    fprintf(stderr, "bootstrap flood: 5 ranks formed in %.0f ms quiet, %.0f ms with %d silent connections and "
                    "%ld more opened meanwhile\n",
            quiet, loud, f->held, f->opened);
    cr_assert_lt(loud, quiet + 1000, "the flood delayed the group: %.0f ms vs %.0f ms", loud, quiet);
    free(f);
}

/* An unauthenticated peer learns why it was refused, never the group's
 * size (rank 0 logs the details). */
Test(bootstrap, refusals_do_not_reveal_the_group_size)
{
    job_t root = {.rank = 0, .nranks = 7, .timeout_ms = 3000};
    pthread_t t;
    pthread_create(&t, NULL, root_only, &root);
    usleep(50000);
    cr_assert_eq(raw_hello_n(RL_PROTOCOL_VERSION, 9, 8, 2), RL_ERR_PROTOCOL, "rank out of range");
    cr_assert_null(strchr(last_refusal, '7'), "the refusal gives the size away: %s", last_refusal);
    cr_assert_eq(raw_hello_n(RL_PROTOCOL_VERSION, 1, 8, 3), RL_ERR_MISMATCH, "wrong size");
    cr_assert_null(strchr(last_refusal, '7'), "the refusal gives the size away: %s", last_refusal);
    cr_assert(strstr(last_refusal, "3 ranks"), "it is told what it claimed: %s", last_refusal);
    pthread_join(t, NULL);
}

#include "core/config.h"
#include "core/launch.h"

Test(bootstrap, host_identity_is_boot_id_and_network_namespace)
{
    rl_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    char id[64], boot[64] = "", ns[64] = "";
    rl_launch_host_id(&cfg, id, sizeof(id));
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(boot, sizeof(boot), f));
    fclose(f);
    boot[strcspn(boot, "\n")] = '\0';
    ssize_t n = readlink("/proc/self/ns/net", ns, sizeof(ns) - 1);
    cr_assert_gt(n, 0);
    ns[n] = '\0';
    char want[128];
    snprintf(want, sizeof(want), "%s/%.*s", boot, (int)(strlen(ns) - 6), ns + 5); /* net:[123] -> 123 */
    cr_assert_str_eq(id, want);
    snprintf(cfg.host_id, sizeof(cfg.host_id), "rack4-node17");
    rl_launch_host_id(&cfg, id, sizeof(id));
    cr_assert_str_eq(id, "rack4-node17", "RINGLET_HOST_ID wins");
}

/* ---- liveness and departures, with op counters as a communicator has ---- */

typedef struct {
    int rank, nranks;
    uint64_t seq; /* collectives started */
    int role;     /* 0: wait timed out (rl_boot_stalled); 1: leave + barrier; 2: silent (stopped);
                     3: healthy, polling rl_boot_check as a waiting rank does */
    rl_status_t st;
    char err[256];
    double ms;
    volatile int *stop;
    int waits_on; /* role 0: the rank its expired wait waited on (-1: none; 0 stands for -1 unless set_wait) */
    int set_wait;
} live_t;

static void *live_member(void *arg)
{
    live_t *j = arg;
    rl_boot_t *b = NULL;
    j->st = rl_boot_create(j->rank, j->nranks, addr, rl_deadline_ms(5000), &b, j->err, sizeof(j->err));
    if (j->st != RL_OK)
        return NULL;
    rl_boot_watch(b, &j->seq);
    int z = 0, all[8];
    j->st = rl_boot_allgather(b, &z, sizeof(z), all, rl_deadline_ms(5000), j->err, sizeof(j->err));
    int64_t t0 = rl_now_ns();
    if (j->st == RL_OK && j->role == 0) {
        usleep(100000);
        j->st = rl_boot_stalled(b, j->set_wait ? j->waits_on : -1, j->err, sizeof(j->err));
    } else if (j->st == RL_OK && j->role == 1) {
        rl_boot_leaving(b);
        j->st = rl_boot_allgather(b, &z, sizeof(z), all, rl_deadline_ms(4000), j->err, sizeof(j->err));
    } else if (j->st == RL_OK && j->role == 2) {
        while (!*j->stop)
            usleep(10000);
    } else if (j->st == RL_OK) {
        while ((j->st = rl_boot_check(b, j->err, sizeof(j->err))) == RL_OK && rl_now_ns() - t0 < 4000000000LL)
            usleep(2000);
    }
    j->ms = (double)(rl_now_ns() - t0) / 1e6;
    rl_boot_destroy(b, 0);
    return NULL;
}

static void run_live(live_t *j, int n)
{
    pthread_t t[8];
    volatile int stop = 0;
    for (int i = 0; i < n; i++) {
        j[i].rank = i;
        j[i].nranks = n;
        j[i].stop = &stop;
        pthread_create(&t[i], NULL, live_member, &j[i]);
    }
    for (int i = 0; i < n; i++) {
        if (j[i].role == 2)
            continue;
        pthread_join(t[i], NULL);
    }
    stop = 1;
    for (int i = 0; i < n; i++)
        if (j[i].role == 2)
            pthread_join(t[i], NULL);
}

/* Rank 2 stops answering; ranks 0 and 1 time out, rank 3 still waits: all
 * three name rank 2, none names the rank it happened to wait on. */
Test(bootstrap, a_silent_rank_is_named_alike_by_everyone_who_waits)
{
    live_t j[4] = {{.seq = 7, .role = 0}, {.seq = 7, .role = 0}, {.seq = 7, .role = 2}, {.seq = 7, .role = 3}};
    run_live(j, 4);
    for (int i = 0; i < 4; i++) {
        if (i == 2)
            continue;
        cr_assert_eq(j[i].st, RL_ERR_TIMEOUT, "rank %d: %s: %s", i, rl_status_name(j[i].st), j[i].err);
        cr_assert(strstr(j[i].err, "rank 2 is not responding"), "rank %d: %s", i, j[i].err);
        cr_assert_lt(j[i].ms, 2500, "rank %d took %.0f ms", i, j[i].ms);
    }
}

/* Everyone answers, but rank 1 has started one collective fewer: it is the
 * one the others wait for. */
Test(bootstrap, the_rank_behind_is_named)
{
    live_t j[3] = {{.seq = 8, .role = 0}, {.seq = 7, .role = 3}, {.seq = 8, .role = 3}};
    run_live(j, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(j[i].st, RL_ERR_TIMEOUT, "rank %d: %s: %s", i, rl_status_name(j[i].st), j[i].err);
        cr_assert(strstr(j[i].err, "rank 1 has not started"), "rank %d: %s", i, j[i].err);
    }
}

/* Everyone answers and runs collective 9, ranks 1 and 2 time out waiting
 * for each other (a cut link between them): every rank names both. */
Test(bootstrap, two_ranks_waiting_for_each_other_are_named)
{
    live_t j[4] = {{.seq = 9, .role = 3},
                   {.seq = 9, .role = 0, .waits_on = 2, .set_wait = 1},
                   {.seq = 9, .role = 0, .waits_on = 1, .set_wait = 1},
                   {.seq = 9, .role = 3}};
    run_live(j, 4);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(j[i].st, RL_ERR_TIMEOUT, "rank %d: %s: %s", i, rl_status_name(j[i].st), j[i].err);
        cr_assert(strstr(j[i].err, "rank 1 and rank 2 wait for each other"), "rank %d: %s", i, j[i].err);
    }
}

/* Rank 1 leaves (destroy) after 7 collectives while rank 0 and 2 have
 * started an 8th: they fail at once naming it, and rank 1 is not kept
 * waiting in its final barrier. */
Test(bootstrap, a_rank_that_leaves_early_fails_the_others_at_once)
{
    live_t j[3] = {{.seq = 8, .role = 3}, {.seq = 7, .role = 1}, {.seq = 8, .role = 3}};
    run_live(j, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(j[i].st, RL_ERR_PEER_FAILED, "rank %d: %s: %s", i, rl_status_name(j[i].st), j[i].err);
        cr_assert(strstr(j[i].err, "rank 1 failed: it left"), "rank %d: %s", i, j[i].err);
        cr_assert_lt(j[i].ms, 500, "rank %d took %.0f ms", i, j[i].ms);
    }
}

/* Rank 0 leaves after 7 while rank 2 has started an 8th. */
Test(bootstrap, rank_0_leaving_early_fails_the_others_at_once)
{
    live_t j[3] = {{.seq = 7, .role = 1}, {.seq = 8, .role = 3}, {.seq = 8, .role = 3}};
    run_live(j, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(j[i].st, RL_ERR_PEER_FAILED, "rank %d: %s: %s", i, rl_status_name(j[i].st), j[i].err);
        cr_assert(strstr(j[i].err, "rank 0 failed: it left"), "rank %d: %s", i, j[i].err);
        cr_assert_lt(j[i].ms, 500, "rank %d took %.0f ms", i, j[i].ms);
    }
}

/* Rank 0 and rank 1 leave after 7 (alike: no failure between them) while
 * rank 2 has started an 8th and times out: its report names a rank that
 * left, rather than blaming rank 0 for not answering. */
Test(bootstrap, a_rank_waiting_for_ranks_that_left_names_one)
{
    live_t j[3] = {{.seq = 7, .role = 1}, {.seq = 7, .role = 1}, {.seq = 8, .role = 0}};
    run_live(j, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(j[i].st, RL_ERR_PEER_FAILED, "rank %d: %s: %s", i, rl_status_name(j[i].st), j[i].err);
        cr_assert(strstr(j[i].err, "failed: it left"), "rank %d: %s", i, j[i].err);
        cr_assert_lt(j[i].ms, 1500, "rank %d took %.0f ms", i, j[i].ms);
    }
}
