/*
 * Fault injection: real rank processes over a real transport, and a driver
 * that breaks them on purpose and checks that every survivor ends with the
 * right error, promptly, and exits cleanly.
 *
 *   fault_inject [options]            (the driver; --help lists them)
 *   fault_inject --worker MODE        (one rank; started by the driver)
 *
 * Scenarios:
 *   kill    ranks loop over all-reduce and all-gather of random sizes; the
 *           driver kill -9s a random rank at a random moment. Every survivor
 *           must return RL_ERR_PEER_FAILED naming the killed rank within
 *           --bound-ms, then destroy its communicator and exit 0.
 *   absent  the last rank never starts: every other rank must fail
 *           rl_comm_create with RL_ERR_TIMEOUT naming it, soon after the
 *           RINGLET_TIMEOUT_MS deadline.
 *   abort   rank 1 blocks in rl_wait on an all-reduce the others have not
 *           called yet; another thread calls rl_comm_abort(): the wait ends
 *           with RL_ERR_ABORTED, the others hear of it, all exit 0.
 *   auth    rank 0 holds a key; a process without it, then one with another
 *           key, claim rank 1 while rank 2 has joined: each is refused
 *           (RL_ERR_AUTH) and rank 0 and rank 2 fail at once naming rank 1
 *           and the cause; then the real ranks (one through
 *           RINGLET_AUTH_KEY_FILE) join, past a stranger rank 0 refuses and
 *           logs, and compute.
 *   stop    SIGSTOP a rank (each position in turn) inside the loop: every
 *           survivor fails with RL_ERR_TIMEOUT naming the stopped rank ("rank
 *           N is not responding"), the same rank on all, within the timeout
 *           (RINGLET_TIMEOUT_MS=5000) plus --bound-ms; after SIGCONT the
 *           stopped rank fails and exits 0.
 *   exit    a rank leaves inside the loop without a word (each position in
 *           turn, cycling through exit(1), _exit(1), and rl_comm_destroy()
 *           then exit(0) as atexit handlers or destructors do): every
 *           survivor fails with RL_ERR_PEER_FAILED naming it within 1.5 s.
 *
 * The driver is a child subreaper: any process a trial leaves behind is
 * reaped by it and counted as a leak. Exit status 0 only if every trial of
 * every scenario passed. Under AddressSanitizer a rank that leaks exits
 * non-zero, so "exits cleanly" includes "frees everything".
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "ringlet.h"

#define MAX_RANKS 16
#define READY_MS 30000 /* communicator creation, generous for SoftRoCE under TCG */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* splitmix64: the same sequence in every rank for the same seed. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ------------------------------------------------------------------ worker */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

/* "ERR <status> <t_ns> <message>": one line, the message last. */
static void report_error(rl_comm_t comm, rl_status_t st)
{
    int64_t t = now_ns();
    char msg[600];
    snprintf(msg, sizeof(msg), "%s", comm ? rl_comm_last_error(comm) : "");
    for (char *p = msg; *p; p++)
        if (*p == '\n')
            *p = ' ';
    say("ERR %s %" PRId64 " %s\n", rl_status_name(st), t, msg);
}

/* FAULT_ALLOC=shared: the loop's buffers come from rl_mem_alloc (the
 * direct all-reduce then reads the peers' buffers in place). */
static void *shared_in, *shared_out;

static void free_shared(rl_comm_t comm)
{
    if (shared_in && rl_mem_free(comm, shared_in) != RL_OK)
        fprintf(stderr, "rl_mem_free: %s\n", rl_comm_last_error(comm));
    if (shared_out && rl_mem_free(comm, shared_out) != RL_OK)
        fprintf(stderr, "rl_mem_free: %s\n", rl_comm_last_error(comm));
    shared_in = shared_out = NULL;
}

static int finish(rl_comm_t comm, rl_status_t st)
{
    report_error(comm, st);
    free_shared(comm);
    rl_comm_destroy(comm);
    say("DESTROYED %" PRId64 "\n", now_ns());
    return 0;
}

/* Collectives of random sizes until one fails (which the driver causes). */
static int work_loop(rl_comm_t comm, int rank, int nranks)
{
    const char *seed_s = getenv("FAULT_SEED");
    uint64_t seed = seed_s ? strtoull(seed_s, NULL, 0) : 1;
    size_t maxcount = 1 << 18;
    const char *mc = getenv("FAULT_MAX_COUNT"); /* --max-count: the driver's environment */
    if (mc && strtoull(mc, NULL, 0) > 0 && strtoull(mc, NULL, 0) < maxcount)
        maxcount = (size_t)strtoull(mc, NULL, 0);
    const char *alloc = getenv("FAULT_ALLOC");
    int shared = alloc && !strcmp(alloc, "shared");
    float *in, *out;
    if (shared) {
        /* collective: a kill inside it must fail it like any collective */
        rl_status_t ast = rl_mem_alloc(comm, maxcount * sizeof(float), &shared_in);
        if (ast == RL_OK)
            ast = rl_mem_alloc(comm, maxcount * sizeof(float) * (size_t)nranks, &shared_out);
        if (ast != RL_OK)
            return finish(comm, ast);
        in = shared_in;
        out = shared_out;
    } else {
        in = malloc(maxcount * sizeof(float));
        out = malloc(maxcount * sizeof(float) * (size_t)nranks);
    }
    if (!in || !out)
        return 3;
    int64_t give_up = now_ns() + 120000000000LL;
    /* FAULT_EXIT=how:rank:ms: that rank leaves without a word ms after it
     * is ready, in the middle of the loop */
    char how[16] = "";
    int exit_rank = -1, exit_ms = 0;
    const char *ex = getenv("FAULT_EXIT");
    if (ex)
        sscanf(ex, "%15[^:]:%d:%d", how, &exit_rank, &exit_ms);
    int64_t exit_at = now_ns() + (int64_t)exit_ms * 1000000LL;
    rl_status_t st = RL_OK;
    for (uint64_t i = 0; st == RL_OK && now_ns() < give_up; i++) {
        if (rank == exit_rank && now_ns() >= exit_at) {
            say("EXITING %" PRId64 "\n", now_ns());
            if (!strcmp(how, "_exit"))
                _exit(1);
            if (!strcmp(how, "destroy")) {
                rl_comm_destroy(comm); /* frees the shared buffers too (rl_mem_free is collective) */
                exit(0);
            }
            exit(1);
        }
        /* Log-uniform sizes from 1 element to 1 MiB, the same on every rank. */
        size_t count = (size_t)1 << (rng_next(&seed) % 19);
        count += rng_next(&seed) % count;
        if (count > maxcount)
            count = maxcount;
        int kind = (int)(rng_next(&seed) % 3);
        for (size_t k = 0; k < count; k++)
            in[k] = (float)(rank + 1);
        if (kind == 0) {
            st = rl_all_reduce(comm, in, out, count, RL_FLOAT32, RL_SUM);
            if (st == RL_OK && out[count - 1] != (float)(nranks * (nranks + 1) / 2)) {
                fprintf(stderr, "rank %d: wrong all-reduce result\n", rank);
                return 4;
            }
        } else if (kind == 1) {
            st = rl_all_gather(comm, in, out, count / (size_t)nranks + 1, RL_FLOAT32);
        } else {
            rl_request_t req;
            st = rl_iall_reduce(comm, in, in, count, RL_FLOAT32, RL_MAX, &req);
            if (st == RL_OK) {
                st = rl_wait(req, -1);
                rl_request_free(req);
            }
        }
    }
    if (!shared) {
        free(in);
        free(out);
    }
    if (st == RL_OK) {
        say("NOERR\n");
        free_shared(comm);
        rl_comm_destroy(comm);
        return 5;
    }
    return finish(comm, st);
}

static void *abort_later(void *arg)
{
    usleep(300000);
    say("ABORTING %" PRId64 "\n", now_ns());
    rl_comm_abort((rl_comm_t)arg);
    return NULL;
}

/* Rank 1 waits on an operation nobody else started; a thread aborts it. */
static int abort_case(rl_comm_t comm, int rank)
{
    float x[1024] = {0};
    if (rank != 1)
        usleep(1500000);
    pthread_t t;
    if (rank == 1)
        pthread_create(&t, NULL, abort_later, comm);
    rl_request_t req;
    rl_status_t st = rl_iall_reduce(comm, x, x, 1024, RL_FLOAT32, RL_SUM, &req);
    if (st == RL_OK) {
        st = rl_wait(req, -1);
        rl_request_free(req);
    }
    if (rank == 1)
        pthread_join(t, NULL);
    if (st == RL_OK) {
        say("NOERR\n");
        rl_comm_destroy(comm);
        return 5;
    }
    return finish(comm, st);
}

static int auth_case(rl_comm_t comm, int rank, int nranks)
{
    for (int i = 0; i < 3; i++) {
        double v = rank + 1;
        rl_status_t st = rl_all_reduce(comm, &v, &v, 1, RL_FLOAT64, RL_SUM);
        if (st != RL_OK)
            return finish(comm, st);
        if (v != nranks * (nranks + 1) / 2.0)
            return 4;
    }
    rl_comm_destroy(comm);
    say("OK\n");
    return 0;
}

static int worker(const char *mode)
{
    rl_comm_t comm = NULL;
    rl_status_t st = rl_comm_create(NULL, &comm);
    if (st != RL_OK) {
        int64_t t = now_ns();
        /* No communicator: its message went to the log (stderr). */
        say("ERR %s %" PRId64 " (rl_comm_create)\n", rl_status_name(st), t);
        return 0;
    }
    int rank, nranks;
    rl_comm_rank(comm, &rank);
    rl_comm_size(comm, &nranks);
    say("READY %" PRId64 "\n", now_ns());
    if (!strcmp(mode, "loop"))
        return work_loop(comm, rank, nranks);
    if (!strcmp(mode, "abort"))
        return abort_case(comm, rank);
    return auth_case(comm, rank, nranks);
}

/* ------------------------------------------------------------------ driver */

typedef struct {
    const char *backend;
    int nranks, trials, bound_ms, max_delay_ms, verbose;
    int hosts; /* > 0: emulated hosts (RINGLET_HOST_ID), ranks in blocks */
    uint64_t seed;
    char self[4096];
    char hca_list[512];
} opts_t;

typedef struct {
    pid_t pid;
    int out;            /* read end of its stdout */
    char log[64];       /* its stderr */
    char buf[2048];
    size_t len;
    int ready, destroyed, exited, code;
    char status[64];
    int64_t t_ready, t_err, t_exit;
    char msg[700];
} rank_t;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    return ntohs(sa.sin_port);
}

/* "dev:port" entry i of a comma list, as ringlet-run hands them out. */
static void hca_entry(const char *list, int i, char *out, size_t len)
{
    int n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    i %= n;
    const char *p = list;
    while (i-- > 0)
        p = strchr(p, ',') + 1;
    size_t k = strcspn(p, ",");
    snprintf(out, len, "%.*s", (int)(k < len ? k : len - 1), p);
}

static void start_rank(const opts_t *o, rank_t *r, int rank, int nranks, int port, const char *mode,
                       const char *const *extra_env)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC)) {
        perror("pipe");
        exit(1);
    }
    snprintf(r->log, sizeof(r->log), "/tmp/fault-%d-%d.log", (int)getpid(), rank);
    pid_t pid = fork();
    if (pid == 0) {
        char v[64];
        dup2(pfd[1], 1);
        int lfd = open(r->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
        if (lfd >= 0)
            dup2(lfd, 2);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        snprintf(v, sizeof(v), "%d", rank);
        setenv("RINGLET_RANK", v, 1);
        snprintf(v, sizeof(v), "%d", nranks);
        setenv("RINGLET_SIZE", v, 1);
        snprintf(v, sizeof(v), "127.0.0.1:%d", port);
        setenv("RINGLET_ADDR", v, 1);
        if (!strcmp(o->backend, "verbs")) {
            setenv("RINGLET_TRANSPORT", "verbs", 1);
            if (o->hca_list[0]) {
                hca_entry(o->hca_list, rank, v, sizeof(v));
                setenv("RINGLET_IB_HCA", v, 1);
            }
        } else if (!strcmp(o->backend, "native-shm")) {
            setenv("RINGLET_TRANSPORT", "shm", 1); /* ringlet's own, lib/transport/shm */
        } else {
            setenv("RINGLET_TRANSPORT", "ofi", 1);
            setenv("RINGLET_OFI_PROVIDER", o->backend, 1);
        }
        if (o->hosts > 0) { /* consecutive ranks share a host: a mixed shm + network communicator */
            snprintf(v, sizeof(v), "host%d", rank / ((nranks + o->hosts - 1) / o->hosts));
            setenv("RINGLET_HOST_ID", v, 1);
        }
        for (int i = 0; extra_env && extra_env[i]; i++)
            putenv((char *)extra_env[i]);
        execl(o->self, o->self, "--worker", mode, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    memset(r, 0, sizeof(*r));
    snprintf(r->log, sizeof(r->log), "/tmp/fault-%d-%d.log", (int)getpid(), rank);
    r->pid = pid;
    r->out = pfd[0];
}

static void parse_line(rank_t *r, char *line)
{
    if (!strncmp(line, "READY ", 6)) {
        r->ready = 1;
        r->t_ready = strtoll(line + 6, NULL, 10);
    } else if (!strncmp(line, "ERR ", 4)) {
        char *p = line + 4, *sp = strchr(p, ' ');
        if (!sp)
            return;
        snprintf(r->status, sizeof(r->status), "%.*s", (int)(sp - p), p);
        r->t_err = strtoll(sp + 1, &p, 10);
        snprintf(r->msg, sizeof(r->msg), "%s", *p ? p + 1 : "");
    } else if (!strncmp(line, "EXITING ", 8)) {
        r->t_exit = strtoll(line + 8, NULL, 10);
    } else if (!strncmp(line, "DESTROYED", 9) || !strcmp(line, "OK")) {
        r->destroyed = 1;
    } else if (!strcmp(line, "NOERR")) {
        snprintf(r->status, sizeof(r->status), "RL_OK");
    }
}

/* Read whatever the ranks printed; returns when `until` says so or at the
 * deadline. until: 0 = all ready, 1 = all streams closed, 2 = one pass. */
static void pump(rank_t *rk, int n, int until, int64_t deadline)
{
    for (;;) {
        struct pollfd p[MAX_RANKS];
        int open_ = 0, ready = 0;
        for (int i = 0; i < n; i++) {
            p[i] = (struct pollfd){.fd = rk[i].out, .events = POLLIN};
            open_ += rk[i].out >= 0;
            ready += rk[i].ready || rk[i].out < 0;
        }
        if ((until == 0 && ready == n) || (until == 1 && open_ == 0))
            return;
        int64_t left = (deadline - now_ns()) / 1000000;
        if (left <= 0)
            return;
        if (poll(p, (nfds_t)n, (int)(left < 200 ? left : 200)) <= 0) {
            if (until == 2)
                return;
            continue;
        }
        for (int i = 0; i < n; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            rank_t *r = &rk[i];
            ssize_t got = read(r->out, r->buf + r->len, sizeof(r->buf) - 1 - r->len);
            if (got <= 0) {
                close(r->out);
                r->out = -1;
                continue;
            }
            r->len += (size_t)got;
            r->buf[r->len] = '\0';
            char *nl;
            while ((nl = strchr(r->buf, '\n'))) {
                *nl = '\0';
                parse_line(r, r->buf);
                r->len -= (size_t)(nl + 1 - r->buf);
                memmove(r->buf, nl + 1, r->len + 1);
            }
            if (r->len == sizeof(r->buf) - 1)
                r->len = 0; /* an absurd line: drop it */
        }
        if (until == 2)
            return;
    }
}

/* Reap the ranks (kill what is left at the deadline) and any process they
 * left behind (we are the subreaper). Returns the number of leaked ones. */
static int reap(rank_t *rk, int n, int64_t deadline)
{
    for (int i = 0; i < n; i++) {
        rank_t *r = &rk[i];
        while (!r->exited) {
            int status;
            pid_t p = waitpid(r->pid, &status, WNOHANG);
            if (p == r->pid) {
                r->exited = 1;
                r->code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            } else if (now_ns() > deadline) {
                if (getenv("FAULT_GDB")) { /* where did it hang? */
                    char cmd[128];
                    snprintf(cmd, sizeof(cmd), "gdb -p %d -batch -ex 'thread apply all bt' 2>/dev/null | grep '^#'",
                             (int)r->pid);
                    fflush(stdout);
                    if (system(cmd) < 0)
                        perror("gdb");
                }
                kill(r->pid, SIGKILL);
                waitpid(r->pid, &status, 0);
                r->exited = 1;
                r->code = -1; /* hung */
            } else {
                usleep(10000);
            }
        }
        if (r->out >= 0)
            close(r->out);
        r->out = -1;
    }
    int leaked = 0;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        leaked++;
    return leaked;
}

static void show_log(const rank_t *r, int rank)
{
    fflush(stdout);
    char line[1024];
    FILE *f = fopen(r->log, "r");
    if (!f)
        return;
    int k = 0;
    while (fgets(line, sizeof(line), f) && k++ < 20)
        printf("    [%d] %s", rank, line);
    fclose(f);
}

static int file_has(const char *path, const char *needle)
{
    char line[2048];
    int n = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

static void cleanup_logs(rank_t *rk, int n)
{
    for (int i = 0; i < n; i++)
        unlink(rk[i].log);
}

typedef struct {
    int trials, survivors, correct, leaks;
    double worst_ms;
} tally_t;

/* One kill trial. Returns 0 if every survivor behaved. */
static int kill_trial(const opts_t *o, int trial, uint64_t *rng, tally_t *t)
{
    int n = o->nranks, port = free_port();
    rank_t rk[MAX_RANKS];
    char seed[64];
    snprintf(seed, sizeof(seed), "FAULT_SEED=%" PRIu64, rng_next(rng));
    const char *env[] = {seed, NULL};
    for (int i = 0; i < n; i++)
        start_rank(o, &rk[i], i, n, port, "loop", env);
    pump(rk, n, 0, now_ns() + READY_MS * 1000000LL);
    int victim = (int)(rng_next(rng) % (uint64_t)n);
    int delay = (int)(rng_next(rng) % (uint64_t)(o->max_delay_ms + 1));
    int ok = 1;
    for (int i = 0; i < n; i++)
        if (!rk[i].ready) {
            printf("trial %d: rank %d never became ready\n", trial, i);
            ok = 0;
        }
    usleep((useconds_t)delay * 1000);
    /* the clock before the kill: a driver preempted right after it (a
     * loaded host) saw survivors report "before" the kill */
    int64_t t_kill = now_ns();
    kill(rk[victim].pid, SIGKILL);
    pump(rk, n, 1, t_kill + (o->bound_ms + 15000) * 1000000LL);
    t->leaks += reap(rk, n, t_kill + (o->bound_ms + 20000) * 1000000LL);
    t->trials++;
    char want[32];
    snprintf(want, sizeof(want), "rank %d failed", victim);
    for (int i = 0; i < n; i++) {
        if (i == victim)
            continue;
        rank_t *r = &rk[i];
        double ms = r->t_err ? (double)(r->t_err - t_kill) / 1e6 : -1;
        int good = !strcmp(r->status, "RL_ERR_PEER_FAILED") && strstr(r->msg, want) && ms >= 0 &&
                   ms <= o->bound_ms && r->destroyed && r->code == 0;
        t->survivors++;
        t->correct += good;
        if (ms > t->worst_ms)
            t->worst_ms = ms;
        if (!good || o->verbose)
            printf("trial %d (kill rank %d after %d ms): rank %d: %s after %.0f ms, exit %d%s: %s\n", trial,
                    victim, delay, i, r->status[0] ? r->status : "no error", ms, r->code,
                    r->destroyed ? "" : ", never destroyed", r->msg);
        if (!good) {
            show_log(r, i);
            ok = 0;
        }
    }
    cleanup_logs(rk, n);
    return ok ? 0 : 1;
}

/* Survivors' verdicts after the victim was stopped or left: each must say
 * `want` with status `status` within bound_ms of t0. */
static int judge(const opts_t *o, const char *what, int trial, rank_t *rk, int n, int victim, int64_t t0,
                 const char *status, const char *want, double bound_ms, tally_t *t)
{
    int ok = 1;
    for (int i = 0; i < n; i++) {
        if (i == victim)
            continue;
        rank_t *r = &rk[i];
        double ms = r->t_err ? (double)(r->t_err - t0) / 1e6 : -1;
        int good = !strcmp(r->status, status) && strstr(r->msg, want) && ms >= 0 && ms <= bound_ms &&
                   r->destroyed && r->code == 0;
        t->survivors++;
        t->correct += good;
        if (ms > t->worst_ms)
            t->worst_ms = ms;
        if (!good || o->verbose)
            printf("%s trial %d (rank %d): rank %d: %s after %.0f ms, exit %d%s: %s\n", what, trial, victim, i,
                   r->status[0] ? r->status : "no error", ms, r->code, r->destroyed ? "" : ", never destroyed",
                   r->msg);
        if (!good) {
            show_log(r, i);
            ok = 0;
        }
    }
    return ok;
}

#define STOP_TIMEOUT_MS 5000 /* it covers rl_comm_create too, slow on a loaded host */

/* SIGSTOP rank `trial % n` mid-loop; survivors must all name it. */
static int stop_trial(const opts_t *o, int trial, uint64_t *rng, tally_t *t)
{
    int n = o->nranks, port = free_port();
    rank_t rk[MAX_RANKS];
    char seed[64], tmo[64];
    snprintf(seed, sizeof(seed), "FAULT_SEED=%" PRIu64, rng_next(rng));
    snprintf(tmo, sizeof(tmo), "RINGLET_TIMEOUT_MS=%d", STOP_TIMEOUT_MS);
    const char *env[] = {seed, tmo, NULL};
    for (int i = 0; i < n; i++)
        start_rank(o, &rk[i], i, n, port, "loop", env);
    pump(rk, n, 0, now_ns() + READY_MS * 1000000LL);
    int victim = trial % n;
    int delay = (int)(rng_next(rng) % (uint64_t)(o->max_delay_ms + 1));
    usleep((useconds_t)delay * 1000);
    int64_t t_stop = now_ns(); /* before the signal, as for kill */
    kill(rk[victim].pid, SIGSTOP);
    /* wait until every survivor has reported (its stream stays open: it is
     * the victim's that we must not wait for) */
    int64_t until = t_stop + (STOP_TIMEOUT_MS + o->bound_ms + 10000) * 1000000LL;
    for (;;) {
        int done = 1;
        for (int i = 0; i < n; i++)
            done &= i == victim || rk[i].out < 0;
        if (done || now_ns() > until)
            break;
        pump(rk, n, 2, now_ns() + 200000000LL);
    }
    kill(rk[victim].pid, SIGCONT);
    pump(rk, n, 1, now_ns() + 5000000000LL);
    t->leaks += reap(rk, n, now_ns() + 5000000000LL);
    t->trials++;
    char want[48];
    snprintf(want, sizeof(want), "rank %d is not responding", victim);
    int ok = judge(o, "stop", trial, rk, n, victim, t_stop, "RL_ERR_TIMEOUT", want, STOP_TIMEOUT_MS + o->bound_ms, t);
    rank_t *v = &rk[victim];
    if (!v->destroyed || v->code != 0) {
        printf("stop trial %d: the stopped rank %d, resumed, exited %d%s\n", trial, victim, v->code,
               v->destroyed ? "" : " without destroying its communicator");
        show_log(v, victim);
        ok = 0;
    }
    cleanup_logs(rk, n);
    return ok ? 0 : 1;
}

/* Rank `trial % n` leaves mid-loop by exit(1), _exit(1) or destroy+exit. */
static int exit_trial(const opts_t *o, int trial, uint64_t *rng, tally_t *t)
{
    static const char *const hows[] = {"exit", "_exit", "destroy"};
    int n = o->nranks, port = free_port();
    rank_t rk[MAX_RANKS];
    int victim = trial % n;
    const char *how = hows[(trial / n) % 3];
    char seed[64], ex[64];
    snprintf(seed, sizeof(seed), "FAULT_SEED=%" PRIu64, rng_next(rng));
    snprintf(ex, sizeof(ex), "FAULT_EXIT=%s:%d:%d", how, victim,
             100 + (int)(rng_next(rng) % (uint64_t)(o->max_delay_ms + 1)));
    const char *env[] = {seed, ex, NULL};
    for (int i = 0; i < n; i++)
        start_rank(o, &rk[i], i, n, port, "loop", env);
    pump(rk, n, 0, now_ns() + READY_MS * 1000000LL);
    int64_t t_start = now_ns();
    pump(rk, n, 1, t_start + (o->max_delay_ms + 20000) * 1000000LL);
    t->leaks += reap(rk, n, now_ns() + 5000000000LL);
    t->trials++;
    /* the victim printed when it left; read the time from its stream */
    int64_t t_exit = rk[victim].t_exit ? rk[victim].t_exit : t_start;
    char want[32], what[32];
    snprintf(want, sizeof(want), "rank %d failed", victim);
    snprintf(what, sizeof(what), "exit (%s)", how);
    int ok = judge(o, what, trial, rk, n, victim, t_exit, "RL_ERR_PEER_FAILED", want, 1500, t);
    cleanup_logs(rk, n);
    return ok ? 0 : 1;
}

static int absent_trial(const opts_t *o, tally_t *t)
{
    int n = o->nranks, port = free_port(), timeout_ms = 2000;
    rank_t rk[MAX_RANKS];
    const char *env[] = {"RINGLET_TIMEOUT_MS=2000", NULL};
    int64_t t0 = now_ns();
    for (int i = 0; i < n - 1; i++)
        start_rank(o, &rk[i], i, n, port, "loop", env);
    pump(rk, n - 1, 1, t0 + (timeout_ms + o->bound_ms + 10000) * 1000000LL);
    t->leaks += reap(rk, n - 1, now_ns() + 5000000000LL);
    t->trials++;
    char want[32];
    snprintf(want, sizeof(want), "rank(s) %d", n - 1);
    int ok = 1;
    for (int i = 0; i < n - 1; i++) {
        rank_t *r = &rk[i];
        double ms = r->t_err ? (double)(r->t_err - t0) / 1e6 - timeout_ms : -1;
        /* rl_comm_create has no communicator to ask: the reason is in the log. */
        int good = !strcmp(r->status, "RL_ERR_TIMEOUT") && file_has(r->log, want) && ms <= o->bound_ms &&
                   r->code == 0;
        t->survivors++;
        t->correct += good;
        if (ms > t->worst_ms)
            t->worst_ms = ms;
        if (!good || o->verbose)
            printf("absent rank %d: rank %d: %s %.0f ms after the deadline, exit %d, log %s \"%s\"\n", n - 1,
                    i, r->status, ms, r->code, file_has(r->log, want) ? "names" : "does NOT name", want);
        if (!good) {
            show_log(r, i);
            ok = 0;
        }
    }
    cleanup_logs(rk, n - 1);
    return ok ? 0 : 1;
}

static int abort_trial(const opts_t *o, tally_t *t)
{
    int n = o->nranks, port = free_port();
    rank_t rk[MAX_RANKS];
    for (int i = 0; i < n; i++)
        start_rank(o, &rk[i], i, n, port, "abort", NULL);
    pump(rk, n, 0, now_ns() + READY_MS * 1000000LL);
    pump(rk, n, 1, now_ns() + (o->bound_ms + 15000) * 1000000LL);
    t->leaks += reap(rk, n, now_ns() + 5000000000LL);
    t->trials++;
    int ok = 1;
    for (int i = 0; i < n; i++) {
        rank_t *r = &rk[i];
        /* rank 1's abort comes 300 ms after it started waiting */
        double ms = r->t_err && r->t_ready ? (double)(r->t_err - r->t_ready) / 1e6 - 300 : -1;
        int good = r->destroyed && r->code == 0 &&
                   (i == 1 ? !strcmp(r->status, "RL_ERR_ABORTED") && ms <= o->bound_ms
                           : (!strcmp(r->status, "RL_ERR_ABORTED") || !strcmp(r->status, "RL_ERR_PEER_FAILED")) &&
                                 strstr(r->msg, "rank 1"));
        t->survivors++;
        t->correct += good;
        if (i == 1 && ms > t->worst_ms)
            t->worst_ms = ms;
        if (!good || o->verbose)
            printf("abort: rank %d: %s (%.0f ms after the abort), exit %d: %s\n", i, r->status, ms, r->code,
                    r->msg);
        if (!good) {
            show_log(r, i);
            ok = 0;
        }
    }
    cleanup_logs(rk, n);
    return ok ? 0 : 1;
}

/* A stranger that speaks no ringlet: rank 0 refuses it and goes on. */
static void stranger(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < 200 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)); i++)
        usleep(10000);
    if (send(fd, "GET / HTTP/1.0\r\n\r\n", 18, MSG_NOSIGNAL) != 18)
        perror("stranger");
    char buf[256];
    while (recv(fd, buf, sizeof(buf), 0) > 0)
        ;
    close(fd);
}

/* Rank 0 and rank 2 hold the key and have joined; an intruder claims
 * rank 1. Both must fail at once with RL_ERR_AUTH naming rank 1 and why. */
static int auth_intruder(const opts_t *o, const char *const *env, const char *cause, tally_t *t)
{
    int port = free_port();
    rank_t rk[3];
    const char *good_env[] = {"RINGLET_AUTH_KEY=fault-secret", "RINGLET_TIMEOUT_MS=8000", NULL};
    start_rank(o, &rk[0], 0, 3, port, "auth", good_env);
    start_rank(o, &rk[2], 2, 3, port, "auth", good_env);
    usleep(1000000); /* rank 2 has joined (or is authenticating) */
    int64_t t0 = now_ns();
    start_rank(o, &rk[1], 1, 3, port, "auth", env);
    pump(rk, 3, 1, now_ns() + 12000000000LL);
    t->leaks += reap(rk, 3, now_ns() + 5000000000LL);
    int ok = 1;
    for (int i = 0; i < 3; i++) {
        rank_t *r = &rk[i];
        double ms = r->t_err ? (double)(r->t_err - t0) / 1e6 : -1;
        /* no communicator: the cause is in the log */
        int good = !strcmp(r->status, "RL_ERR_AUTH") && r->code == 0 &&
                   (i == 1 || (file_has(r->log, "rank 1") && file_has(r->log, cause) && ms <= o->bound_ms));
        t->survivors++;
        t->correct += good;
        if (i != 1 && ms > t->worst_ms)
            t->worst_ms = ms;
        if (!good || o->verbose)
            printf("auth (%s): %s %d: %s after %.0f ms, exit %d\n", cause, i == 1 ? "intruder" : "rank", i,
                   r->status[0] ? r->status : "joined", ms, r->code);
        if (!good) {
            show_log(r, i);
            ok = 0;
        }
    }
    cleanup_logs(rk, 3);
    return ok;
}

static int auth_trial(const opts_t *o, tally_t *t)
{
    int n = o->nranks, port = free_port();
    rank_t rk[MAX_RANKS];
    char keyfile[] = "/tmp/fault-key-XXXXXX";
    int fd = mkstemp(keyfile);
    if (fd < 0 || write(fd, "fault-secret\n", 13) != 13)
        return 1;
    close(fd);
    char kf[128];
    snprintf(kf, sizeof(kf), "RINGLET_AUTH_KEY_FILE=%s", keyfile);
    const char *good_env[] = {"RINGLET_AUTH_KEY=fault-secret", "RINGLET_TIMEOUT_MS=8000", NULL};
    const char *file_env[] = {kf, "RINGLET_TIMEOUT_MS=8000", NULL};
    const char *none_env[] = {"RINGLET_TIMEOUT_MS=8000", NULL};
    const char *bad_env[] = {"RINGLET_AUTH_KEY=guessed", "RINGLET_TIMEOUT_MS=8000", NULL};
    int ok = auth_intruder(o, none_env, "no RINGLET_AUTH_KEY", t);
    ok &= auth_intruder(o, bad_env, "wrong key", t);
    start_rank(o, &rk[0], 0, n, port, "auth", good_env);
    stranger(port);
    for (int i = 1; i < n; i++)
        start_rank(o, &rk[i], i, n, port, "auth", i == 1 ? file_env : good_env);
    pump(rk, n, 1, now_ns() + 20000000000LL);
    t->leaks += reap(rk, n, now_ns() + 5000000000LL);
    unlink(keyfile);
    for (int i = 0; i < n; i++) {
        rank_t *r = &rk[i];
        int good = r->destroyed && r->code == 0 && !r->status[0];
        t->survivors++;
        t->correct += good;
        if (!good || o->verbose)
            printf("auth: rank %d: %s, exit %d\n", i, r->status[0] ? r->status : "joined and computed", r->code);
        if (!good) {
            show_log(r, i);
            ok = 0;
        }
    }
    if (!file_has(rk[0].log, "refused a connection")) {
        printf("auth: rank 0 did not log its refusal of the stranger\n");
        show_log(&rk[0], 0);
        ok = 0;
    }
    t->trials++;
    cleanup_logs(rk, n);
    return ok ? 0 : 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fault_inject [options]\n"
            "  --backend B      tcp, shm (libfabric), native-shm (ringlet's own) or verbs (default tcp)\n"
            "  -n N             ranks (2..%d, default 3)\n"
            "  --hosts H        emulate H hosts (RINGLET_HOST_ID, consecutive ranks on one): the ranks of a\n"
            "                   host talk through ringlet's shm, the others through the backend\n"
            "  --scenario S     kill, stop, exit, absent, abort, auth, a comma list, or all (default kill)\n"
            "  --trials T       kill, stop and exit trials each (default 20)\n"
            "  --bound-ms MS    a survivor must report within MS after the kill, or the stop's timeout\n"
            "                   (RINGLET_TIMEOUT_MS=5000) plus MS (default 3000)\n"
            "  --max-delay-ms D kill at a random moment 0..D ms after all ranks are ready (default 1500)\n"
            "  --seed S         random seed (default: from the clock; printed)\n"
            "  --max-count C    kill, stop, exit: at most C float32 elements per operation (default 262144;\n"
            "                   2: a loop of 8 B all-reduces)\n"
            "  --alloc A        kill, stop, exit: the loop's buffers from malloc (default) or shared\n"
            "                   (rl_mem_alloc: one-host all-reduces read the peers' buffers in place)\n"
            "  -v, --verbose    print every survivor's result\n"
            "  -h, --help       this text\n"
            "verbs: rank i gets entry i of RINGLET_HCA_LIST (as tools/rxe-vm sets it).\n"
            "Last line: backend | trials | survivors correct | worst detection time.\n",
            MAX_RANKS);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--worker"))
        return worker(argv[2]);
    opts_t o = {.backend = "tcp", .nranks = 3, .trials = 20, .bound_ms = 3000, .max_delay_ms = 1500,
                .seed = (uint64_t)now_ns()};
    const char *scenario = "kill";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            o.verbose = 1;
        } else if (v && !strcmp(a, "--backend")) {
            o.backend = argv[++i];
        } else if (v && !strcmp(a, "-n")) {
            o.nranks = atoi(argv[++i]);
        } else if (v && !strcmp(a, "--hosts")) {
            o.hosts = atoi(argv[++i]);
        } else if (v && !strcmp(a, "--scenario")) {
            scenario = argv[++i];
        } else if (v && !strcmp(a, "--trials")) {
            o.trials = atoi(argv[++i]);
        } else if (v && !strcmp(a, "--bound-ms")) {
            o.bound_ms = atoi(argv[++i]);
        } else if (v && !strcmp(a, "--max-delay-ms")) {
            o.max_delay_ms = atoi(argv[++i]);
        } else if (v && !strcmp(a, "--alloc")) {
            if (strcmp(argv[i + 1], "shared") && strcmp(argv[i + 1], "malloc")) {
                usage(stderr);
                return 2;
            }
            setenv("FAULT_ALLOC", argv[++i], 1);
        } else if (v && !strcmp(a, "--max-count")) {
            setenv("FAULT_MAX_COUNT", argv[++i], 1);
        } else if (v && !strcmp(a, "--seed")) {
            o.seed = strtoull(argv[++i], NULL, 0);
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (o.nranks < 2 || o.nranks > MAX_RANKS || o.trials < 0 || o.hosts < 0 || o.hosts > o.nranks || o.bound_ms < 1 || o.max_delay_ms < 0 ||
        (strcmp(o.backend, "tcp") && strcmp(o.backend, "shm") && strcmp(o.backend, "verbs") &&
         strcmp(o.backend, "native-shm"))) {
        usage(stderr);
        return 2;
    }
    ssize_t sl = readlink("/proc/self/exe", o.self, sizeof(o.self) - 1);
    if (sl <= 0)
        return 1;
    o.self[sl] = '\0';
    const char *hl = getenv("RINGLET_HCA_LIST");
    snprintf(o.hca_list, sizeof(o.hca_list), "%s", hl ? hl : "");
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    signal(SIGPIPE, SIG_IGN);
    int all = !strcmp(scenario, "all");
    printf("fault_inject: backend %s, %d ranks, seed %" PRIu64 ", bound %d ms\n", o.backend, o.nranks, o.seed,
           o.bound_ms);
    fflush(stdout);
    uint64_t rng = o.seed;
    int failed = 0;
    struct {
        const char *name;
        tally_t t;
        int run;
    } rows[6] = {{"kill -9", {0}, all || strstr(scenario, "kill") != NULL},
                 {"absent rank", {0}, all || strstr(scenario, "absent") != NULL},
                 {"abort", {0}, all || strstr(scenario, "abort") != NULL},
                 {"auth", {0}, all || strstr(scenario, "auth") != NULL},
                 {"SIGSTOP", {0}, all || strstr(scenario, "stop") != NULL},
                 {"exit", {0}, all || strstr(scenario, "exit") != NULL}};
    int any = 0;
    for (int k = 0; k < 6; k++)
        any |= rows[k].run;
    if (!any) {
        usage(stderr);
        return 2;
    }
    for (int k = 0; rows[0].run && k < o.trials; k++)
        failed |= kill_trial(&o, k, &rng, &rows[0].t);
    for (int k = 0; rows[4].run && k < o.trials; k++)
        failed |= stop_trial(&o, k, &rng, &rows[4].t);
    for (int k = 0; rows[5].run && k < o.trials; k++)
        failed |= exit_trial(&o, k, &rng, &rows[5].t);
    if (rows[1].run)
        failed |= absent_trial(&o, &rows[1].t);
    if (rows[2].run)
        failed |= abort_trial(&o, &rows[2].t);
    if (rows[3].run)
        failed |= auth_trial(&o, &rows[3].t);
    printf("%-8s %-12s %7s %18s %12s %7s\n", "backend", "scenario", "trials", "survivors correct", "worst (ms)",
           "leaked");
    for (int k = 0; k < 6; k++) {
        if (!rows[k].run)
            continue;
        tally_t *t = &rows[k].t;
        failed |= t->leaks != 0;
        char sc[32];
        snprintf(sc, sizeof(sc), "%d/%d", t->correct, t->survivors);
        printf("%-8s %-12s %7d %18s %12.0f %7d\n", o.backend, rows[k].name, t->trials, sc, t->worst_ms, t->leaks);
    }
    printf("fault_inject: %s\n", failed ? "FAILED" : "all survivors correct");
    return failed ? 1 : 0;
}
