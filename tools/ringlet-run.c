/*
 * ringlet-run: start N local processes of one command as a ringlet group.
 *
 *   ringlet-run -n N [options] [--] CMD ARGS...
 *
 * Rank i gets RINGLET_RANK=i, RINGLET_SIZE=N, RINGLET_LOCAL_RANK=i and
 * RINGLET_ADDR=127.0.0.1:PORT (plus RINGLET_IB_HCA from RINGLET_HCA_LIST).
 * Every rank's stdout/stderr goes through a pipe and is printed a whole line
 * at a time with a "[i] " prefix. The first rank to fail takes the others
 * down (SIGTERM, then SIGKILL after a grace period) and decides the exit
 * status. Each rank runs in its own process group so its descendants are
 * killed with it, and has PR_SET_PDEATHSIG so nothing outlives a launcher
 * killed with SIGKILL.
 *
 * No dependency on the library. Defining RINGLET_RUN_NO_MAIN turns this file
 * into an includable unit (tests/unit/test_launcher_args.c does that) that
 * exposes rr_parse_args() and rr_main().
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#define RR_MAX_RANKS 4096
#define RR_LINE_MAX (64 * 1024) /* longer lines are split, never interleaved */
#define RR_EXIT_USAGE 2
#define RR_EXIT_TIMEOUT 124
#define RR_LINGER_MS 1000 /* output drain after the last rank exits */

typedef struct {
    int nranks;           /* -n */
    int port;             /* --port, 0 = pick a free one */
    int prefix;           /* --prefix / --no-prefix */
    int only_rank;        /* --only-rank, -1 = all */
    int grace_ms;         /* --grace-ms */
    double timeout_s;     /* --timeout / RINGLET_RUN_TIMEOUT, 0 = none */
    int torch;            /* --torch: torchrun's variables too */
    int nenv;             /* --env K=V count */
    char **env;           /* points into argv */
    char **cmd;           /* CMD ARGS..., NULL-terminated (argv's tail) */
} rr_opts_t;

enum { RR_PARSE_OK = 0, RR_PARSE_HELP = 1, RR_PARSE_ERROR = -1 };

static const char rr_usage_text[] =
    "usage: ringlet-run -n N [options] [--] CMD [ARGS...]\n"
    "\n"
    "Start N local processes of CMD as one ringlet group. Rank i gets\n"
    "RINGLET_RANK=i RINGLET_SIZE=N RINGLET_LOCAL_RANK=i RINGLET_ADDR=127.0.0.1:PORT,\n"
    "and RINGLET_IB_HCA=<entry i mod len> when RINGLET_HCA_LIST=\"dev:port,...\" is set,\n"
    "RINGLET_HOST_ID=<entry i mod len> when RINGLET_HOST_ID_LIST=\"a,b,...\" is set and\n"
    "RINGLET_HOST_ID is not (emulated hosts: tools/rxe-vm sets one per rxe device).\n"
    "With --torch, also what torchrun gives its workers: RANK=i WORLD_SIZE=N\n"
    "LOCAL_RANK=i LOCAL_WORLD_SIZE=N MASTER_ADDR=127.0.0.1 MASTER_PORT=<another free\n"
    "port> (torch's store; ringlet keeps RINGLET_ADDR's), so init_process_group()'s\n"
    "env:// works without torchrun.\n"
    "\n"
    "options:\n"
    "  -n, --np N          number of ranks (1..4096, required)\n"
    "  --port P            rendezvous port (default: a free port picked by the launcher)\n"
    "  --env K=V           set K=V in every rank (repeatable; wins over the variables above)\n"
    "  --prefix            prefix every output line with \"[rank] \" (default)\n"
    "  --no-prefix         print output lines as they are\n"
    "  --torch             set torchrun's variables too (see above)\n"
    "  --only-rank R       print only rank R's stdout (stderr of all ranks is kept)\n"
    "  --timeout SEC       kill all ranks after SEC seconds and exit 124 (default 0 =\n"
    "                      none; also RINGLET_RUN_TIMEOUT)\n"
    "  --grace-ms MS       time between SIGTERM and SIGKILL when stopping ranks (3000)\n"
    "  -h, --help          print this help\n"
    "\n"
    "Exit status: 0 when every rank exits 0; otherwise the first failing rank's exit\n"
    "status (128+signal if it was killed), 124 on timeout, 2 for bad arguments.\n"
    "Ranks get /dev/null as stdin.\n";

/* ---------------------------------------------------------------- parsing */

static void rr_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void rr_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Whole-string decimal integer in [lo, hi]. */
static int rr_parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;
    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Non-negative seconds, fractions allowed ("2.5"). */
static int rr_parse_seconds(const char *s, double *out)
{
    char *end;
    double v;
    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !(v >= 0.0) || v > 1e9)
        return -1;
    *out = v;
    return 0;
}

/*
 * Match argv[*i] against a long option that takes a value, in the forms
 * "--name VALUE" and "--name=VALUE" (or "-n VALUE" / "-nVALUE" for a short
 * one). Returns 1 and sets *val on a match, 0 when it is another option, -1
 * when the value is missing.
 */
static int rr_opt_value(int argc, char **argv, int *i, const char *name,
                        const char **val)
{
    const char *a = argv[*i];
    size_t len = strlen(name);
    int is_short = name[0] == '-' && name[1] != '-';

    if (strncmp(a, name, len) != 0)
        return 0;
    if (a[len] == '\0') {
        if (*i + 1 >= argc)
            return -1;
        *val = argv[++*i];
        return 1;
    }
    if (a[len] == '=' && !is_short) {
        *val = a + len + 1;
        return 1;
    }
    if (is_short) {
        *val = a + len;
        return 1;
    }
    return 0;
}

/*
 * Parse the launcher's arguments. env_timeout is RINGLET_RUN_TIMEOUT's value
 * (NULL when unset); --timeout wins over it. Options stop at "--" or at the
 * first argument that does not start with '-', so CMD keeps its own flags.
 * On RR_PARSE_ERROR a message is left in err.
 */
int rr_parse_args(int argc, char **argv, const char *env_timeout, rr_opts_t *o,
                  char *err, size_t errlen)
{
    int i, have_n = 0, have_timeout = 0;
    long v;

    memset(o, 0, sizeof(*o));
    o->prefix = 1;
    o->only_rank = -1;
    o->grace_ms = 3000;
    o->env = calloc((size_t)(argc > 0 ? argc : 1), sizeof(char *));
    if (o->env == NULL) {
        rr_errf(err, errlen, "out of memory");
        return RR_PARSE_ERROR;
    }

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        int m;

        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0')
            break;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            return RR_PARSE_HELP;
        if (strcmp(a, "--prefix") == 0) {
            o->prefix = 1;
            continue;
        }
        if (strcmp(a, "--no-prefix") == 0) {
            o->prefix = 0;
            continue;
        }
        if (strcmp(a, "--torch") == 0) {
            o->torch = 1;
            continue;
        }
        if ((m = rr_opt_value(argc, argv, &i, "-n", &val)) != 0 ||
            (m = rr_opt_value(argc, argv, &i, "--np", &val)) != 0) {
            if (m < 0)
                goto missing;
            if (rr_parse_int(val, 1, RR_MAX_RANKS, &v) != 0) {
                rr_errf(err, errlen, "-n wants a rank count in 1..%d, got '%s'",
                        RR_MAX_RANKS, val);
                return RR_PARSE_ERROR;
            }
            o->nranks = (int)v;
            have_n = 1;
            continue;
        }
        if ((m = rr_opt_value(argc, argv, &i, "--port", &val)) != 0) {
            if (m < 0)
                goto missing;
            if (rr_parse_int(val, 1, 65535, &v) != 0) {
                rr_errf(err, errlen, "--port wants 1..65535, got '%s'", val);
                return RR_PARSE_ERROR;
            }
            o->port = (int)v;
            continue;
        }
        if ((m = rr_opt_value(argc, argv, &i, "--env", &val)) != 0) {
            const char *eq;
            if (m < 0)
                goto missing;
            eq = strchr(val, '=');
            if (eq == NULL || eq == val) {
                rr_errf(err, errlen, "--env wants KEY=VALUE, got '%s'", val);
                return RR_PARSE_ERROR;
            }
            o->env[o->nenv++] = (char *)val;
            continue;
        }
        if ((m = rr_opt_value(argc, argv, &i, "--only-rank", &val)) != 0) {
            if (m < 0)
                goto missing;
            if (rr_parse_int(val, 0, RR_MAX_RANKS - 1, &v) != 0) {
                rr_errf(err, errlen, "--only-rank wants a rank number, got '%s'", val);
                return RR_PARSE_ERROR;
            }
            o->only_rank = (int)v;
            continue;
        }
        if ((m = rr_opt_value(argc, argv, &i, "--grace-ms", &val)) != 0) {
            if (m < 0)
                goto missing;
            if (rr_parse_int(val, 0, 3600 * 1000, &v) != 0) {
                rr_errf(err, errlen, "--grace-ms wants milliseconds >= 0, got '%s'", val);
                return RR_PARSE_ERROR;
            }
            o->grace_ms = (int)v;
            continue;
        }
        if ((m = rr_opt_value(argc, argv, &i, "--timeout", &val)) != 0) {
            if (m < 0)
                goto missing;
            if (rr_parse_seconds(val, &o->timeout_s) != 0) {
                rr_errf(err, errlen, "--timeout wants seconds >= 0, got '%s'", val);
                return RR_PARSE_ERROR;
            }
            have_timeout = 1;
            continue;
        }
        rr_errf(err, errlen, "unknown option '%s' (try --help)", a);
        return RR_PARSE_ERROR;
    }

    if (!have_n) {
        rr_errf(err, errlen, "missing -n N (number of ranks)");
        return RR_PARSE_ERROR;
    }
    if (i >= argc) {
        rr_errf(err, errlen, "missing command to run");
        return RR_PARSE_ERROR;
    }
    if (o->only_rank >= o->nranks) {
        rr_errf(err, errlen, "--only-rank %d is not a rank of -n %d", o->only_rank,
                o->nranks);
        return RR_PARSE_ERROR;
    }
    if (!have_timeout && env_timeout != NULL && *env_timeout != '\0' &&
        rr_parse_seconds(env_timeout, &o->timeout_s) != 0) {
        rr_errf(err, errlen, "RINGLET_RUN_TIMEOUT wants seconds >= 0, got '%s'",
                env_timeout);
        return RR_PARSE_ERROR;
    }
    o->cmd = argv + i;
    return RR_PARSE_OK;

missing:
    rr_errf(err, errlen, "option '%s' needs a value", argv[i]);
    return RR_PARSE_ERROR;
}

void rr_opts_free(rr_opts_t *o)
{
    free(o->env);
    o->env = NULL;
}

/*
 * Entry i (mod the entry count) of a comma list such as "rxe0:1,rxe1:1",
 * copied into out. Empty entries are skipped. Returns -1 when the list has no
 * entry or it does not fit.
 */
int rr_hca_entry(const char *list, int i, char *out, size_t outlen)
{
    int n = 0, want;
    const char *p;

    for (p = list; *p != '\0';) {
        size_t len = strcspn(p, ",");
        if (len > 0)
            n++;
        p += len;
        if (*p == ',')
            p++;
    }
    if (n == 0)
        return -1;
    want = i % n;
    for (p = list; *p != '\0';) {
        size_t len = strcspn(p, ",");
        if (len > 0 && want-- == 0) {
            if (len >= outlen)
                return -1;
            memcpy(out, p, len);
            out[len] = '\0';
            return 0;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    return -1;
}

/* ---------------------------------------------------------------- running */

typedef struct {
    int fd;          /* read end, -1 after EOF */
    int out_fd;      /* where lines go: 1 or 2 */
    int show;        /* 0 = read and drop (--only-rank) */
    size_t len;      /* bytes pending in buf (no newline yet) */
    char buf[RR_LINE_MAX];
} rr_stream_t;

typedef struct {
    pid_t pid;       /* also its process group id; 0 = not started */
    int running;
    int status;      /* waitpid status once reaped */
    rr_stream_t out, err;
} rr_rank_t;

static int rr_sig_pipe[2] = {-1, -1};

static void rr_on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (write(rr_sig_pipe[1], &b, 1) < 0) {
        /* pipe full: a wake-up is already pending */
    }
    errno = saved;
}

static int64_t rr_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Set when our stdout or stderr reader went away (EPIPE). */
static int rr_output_gone;

static void rr_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EPIPE)
                rr_output_gone = 1;
            return; /* the reader is gone: drop the output */
        }
        p += w;
        n -= (size_t)w;
    }
}

static void rr_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A launcher message on stderr, written with one write(). */
static void rr_msg(const char *fmt, ...)
{
    char line[1024];
    int n;
    va_list ap;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    rr_write_all(2, line, (size_t)n);
}

/* Emit one line (without its newline) with the rank prefix, in one write. */
static void rr_emit_line(const rr_opts_t *o, int rank, rr_stream_t *s,
                         const char *line, size_t len)
{
    char head[32];
    size_t hl = 0;
    char *out;

    if (!s->show)
        return;
    if (o->prefix)
        hl = (size_t)snprintf(head, sizeof(head), "[%d] ", rank);
    out = malloc(hl + len + 1);
    if (out == NULL) {
        /* Fallback: still whole lines, only not in one write. */
        rr_write_all(s->out_fd, head, hl);
        rr_write_all(s->out_fd, line, len);
        rr_write_all(s->out_fd, "\n", 1);
        return;
    }
    memcpy(out, head, hl);
    memcpy(out + hl, line, len);
    out[hl + len] = '\n';
    rr_write_all(s->out_fd, out, hl + len + 1);
    free(out);
}

/*
 * One read (so a rank that prints without pause cannot starve the others or
 * the signal handling); print the complete lines. Returns 0, or -1 at EOF.
 */
static int rr_drain(const rr_opts_t *o, int rank, rr_stream_t *s)
{
    for (;;) {
        ssize_t r = read(s->fd, s->buf + s->len, sizeof(s->buf) - s->len);
        size_t start = 0, k;

        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            r = 0; /* treat other errors as EOF */
        }
        if (r == 0) {
            if (s->len > 0)
                rr_emit_line(o, rank, s, s->buf, s->len);
            s->len = 0;
            close(s->fd);
            s->fd = -1;
            return -1;
        }
        for (k = s->len; k < s->len + (size_t)r; k++) {
            if (s->buf[k] == '\n') {
                rr_emit_line(o, rank, s, s->buf + start, k - start);
                start = k + 1;
            }
        }
        s->len += (size_t)r;
        if (start > 0) {
            memmove(s->buf, s->buf + start, s->len - start);
            s->len -= start;
        } else if (s->len == sizeof(s->buf)) {
            /* A line longer than the buffer: print what we have as a line. */
            rr_emit_line(o, rank, s, s->buf, s->len);
            s->len = 0;
        }
        return 0;
    }
}

/* Bind port 0 on 127.0.0.1 to learn a free port. */
static int rr_free_port(void)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static void rr_setenv_int(const char *k, long v)
{
    char b[32];
    snprintf(b, sizeof(b), "%ld", v);
    setenv(k, b, 1);
}

/* In the child, after fork(): never returns. */
static void rr_child(const rr_opts_t *o, int rank, int port, int torch_port, pid_t parent,
                     int out_w, int err_w)
{
    char addr[64], hca[256];
    const char *hca_list = getenv("RINGLET_HCA_LIST");
    sigset_t none;
    int null_fd, k;

    /* Own process group so the launcher can kill the rank's whole tree. */
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) /* the launcher died before prctl() */
        _exit(127);

    signal(SIGPIPE, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0 && null_fd != 0) {
        dup2(null_fd, 0);
        close(null_fd);
    }
    if (dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
        _exit(127);

    rr_setenv_int("RINGLET_RANK", rank);
    rr_setenv_int("RINGLET_SIZE", o->nranks);
    rr_setenv_int("RINGLET_LOCAL_RANK", rank);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    setenv("RINGLET_ADDR", addr, 1);
    if (hca_list != NULL && rr_hca_entry(hca_list, rank, hca, sizeof(hca)) == 0)
        setenv("RINGLET_IB_HCA", hca, 1);
    if (o->torch) { /* all ranks on this host, as torchrun --standalone */
        rr_setenv_int("RANK", rank);
        rr_setenv_int("WORLD_SIZE", o->nranks);
        rr_setenv_int("LOCAL_RANK", rank);
        rr_setenv_int("LOCAL_WORLD_SIZE", o->nranks);
        setenv("MASTER_ADDR", "127.0.0.1", 1);
        rr_setenv_int("MASTER_PORT", torch_port);
    }
    for (k = 0; k < o->nenv; k++)
        putenv(o->env[k]);
    const char *host_list = getenv("RINGLET_HOST_ID_LIST"); /* after --env: it may set the list */
    if (host_list != NULL && !getenv("RINGLET_HOST_ID") && rr_hca_entry(host_list, rank, hca, sizeof(hca)) == 0)
        setenv("RINGLET_HOST_ID", hca, 1);

    execvp(o->cmd[0], o->cmd);
    {
        char m[512];
        int n = snprintf(m, sizeof(m), "ringlet-run: cannot run '%s': %s\n",
                         o->cmd[0], strerror(errno));
        if (n > 0)
            rr_write_all(2, m, (size_t)n < sizeof(m) ? (size_t)n : sizeof(m) - 1);
    }
    _exit(errno == ENOENT ? 127 : 126);
}

static const char *rr_signame(int sig, char *buf, size_t len)
{
    const char *abbr = sigabbrev_np(sig);
    if (abbr != NULL)
        snprintf(buf, len, "SIG%s", abbr);
    else
        snprintf(buf, len, "%d", sig);
    return buf;
}

static void rr_kill_all(rr_rank_t *ranks, int n, int sig)
{
    for (int i = 0; i < n; i++)
        if (ranks[i].running)
            kill(-ranks[i].pid, sig);
}

/* Make sure fds 0-2 are open, so our pipes never land on them. */
static void rr_fix_std_fds(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) < 0) {
            int nf = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
            if (nf >= 0 && nf != fd) {
                dup2(nf, fd);
                close(nf);
            }
        }
    }
}

typedef struct {
    rr_rank_t *ranks;
    int nrunning;
    int exit_code;        /* -1 until decided */
    int stopping;         /* SIGTERM sent to the group */
    int64_t kill_at;      /* when to escalate to SIGKILL, -1 = not armed */
    int64_t deadline;     /* --timeout, -1 = none */
} rr_state_t;

static void rr_begin_stop(const rr_opts_t *o, rr_state_t *st, int sig)
{
    if (!st->stopping) {
        st->stopping = 1;
        rr_kill_all(st->ranks, o->nranks, sig);
        st->kill_at = rr_now_ms() + o->grace_ms;
    }
}

/* Reap finished ranks; report and react to the first failure. */
static void rr_reap(const rr_opts_t *o, rr_state_t *st)
{
    for (;;) {
        int status, i;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        char sb[32];

        if (pid <= 0)
            return;
        for (i = 0; i < o->nranks; i++)
            if (st->ranks[i].pid == pid && st->ranks[i].running)
                break;
        if (i == o->nranks)
            continue;
        st->ranks[i].running = 0;
        st->ranks[i].status = status;
        st->nrunning--;
        /* Whatever the rank left behind in its group goes with it. */
        kill(-pid, SIGKILL);

        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            continue;
        if (st->stopping)
            continue; /* a consequence of our own SIGTERM/SIGKILL */
        if (WIFEXITED(status)) {
            rr_msg("ringlet-run: rank %d exited with status %d", i, WEXITSTATUS(status));
            st->exit_code = WEXITSTATUS(status);
        } else if (WIFSIGNALED(status)) {
            rr_msg("ringlet-run: rank %d killed by signal %s", i,
                   rr_signame(WTERMSIG(status), sb, sizeof(sb)));
            st->exit_code = 128 + WTERMSIG(status);
        }
        rr_begin_stop(o, st, SIGTERM);
    }
}

static void rr_on_timeout(const rr_opts_t *o, rr_state_t *st)
{
    char list[4096];
    size_t used = 0;

    list[0] = '\0';
    for (int i = 0; i < o->nranks && used < sizeof(list) - 16; i++)
        if (st->ranks[i].running)
            used += (size_t)snprintf(list + used, sizeof(list) - used, " %d", i);
    rr_msg("ringlet-run: timeout after %g s; ranks still running:%s", o->timeout_s,
           list);
    st->exit_code = RR_EXIT_TIMEOUT;
    rr_begin_stop(o, st, SIGTERM);
}

/* Handle signals delivered to the launcher (read from the self-pipe). */
static void rr_on_launcher_signals(const rr_opts_t *o, rr_state_t *st)
{
    unsigned char sigs[64];
    ssize_t n;

    while ((n = read(rr_sig_pipe[0], sigs, sizeof(sigs))) > 0) {
        for (ssize_t k = 0; k < n; k++) {
            int sig = sigs[k];
            char sb[32];
            if (sig == SIGCHLD)
                continue; /* reaped below */
            if (st->stopping) {
                /* Asked again: do not wait for the grace period. */
                rr_kill_all(st->ranks, o->nranks, SIGKILL);
                continue;
            }
            rr_msg("ringlet-run: got %s, stopping all ranks",
                   rr_signame(sig, sb, sizeof(sb)));
            if (st->exit_code < 0)
                st->exit_code = 128 + sig;
            st->stopping = 1;
            rr_kill_all(st->ranks, o->nranks, sig);
            st->kill_at = rr_now_ms() + o->grace_ms;
        }
    }
}

static int rr_install_signals(void)
{
    struct sigaction sa;
    int sigs[] = {SIGCHLD, SIGINT, SIGTERM, SIGHUP};

    if (pipe2(rr_sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = rr_on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t k = 0; k < sizeof(sigs) / sizeof(sigs[0]); k++)
        if (sigaction(sigs[k], &sa, NULL) != 0)
            return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int rr_run(const rr_opts_t *o)
{
    rr_state_t st = {.exit_code = -1, .kill_at = -1, .deadline = -1};
    struct pollfd *pfd;
    rr_rank_t **pfd_rank;
    int port = o->port, torch_port = 0, i, open_streams = 0;
    int64_t linger_until = -1;
    pid_t self = getpid();

    if (port == 0 && (port = rr_free_port()) < 0) {
        rr_msg("ringlet-run: cannot find a free TCP port: %s", strerror(errno));
        return 1;
    }
    /* torch's store gets a port of its own, never ringlet's */
    for (i = 0; o->torch && (torch_port == 0 || torch_port == port); i++) {
        if (i == 8 || (torch_port = rr_free_port()) < 0) {
            rr_msg("ringlet-run: cannot find a free TCP port for MASTER_PORT: %s", strerror(errno));
            return 1;
        }
    }
    st.ranks = calloc((size_t)o->nranks, sizeof(rr_rank_t));
    pfd = calloc((size_t)(2 * o->nranks + 1), sizeof(*pfd));
    pfd_rank = calloc((size_t)(2 * o->nranks + 1), sizeof(*pfd_rank));
    if (st.ranks == NULL || pfd == NULL || pfd_rank == NULL) {
        rr_msg("ringlet-run: out of memory");
        return 1;
    }
    /* Descendants orphaned by a rank come back to us and get reaped (our
     * waitpid(-1) loop skips pids that are not ranks). */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (rr_install_signals() != 0) {
        rr_msg("ringlet-run: cannot set up signal handling: %s", strerror(errno));
        return 1;
    }
    if (o->timeout_s > 0)
        st.deadline = rr_now_ms() + (int64_t)(o->timeout_s * 1000.0 + 0.5);

    for (i = 0; i < o->nranks; i++) {
        rr_rank_t *r = &st.ranks[i];
        int po[2], pe[2];
        pid_t pid;

        if (st.stopping)
            break; /* e.g. a signal arrived during start-up */
        if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0) {
            rr_msg("ringlet-run: pipe: %s", strerror(errno));
            st.exit_code = 1;
            rr_begin_stop(o, &st, SIGTERM);
            break;
        }
        pid = fork();
        if (pid < 0) {
            rr_msg("ringlet-run: fork: %s", strerror(errno));
            close(po[0]); close(po[1]); close(pe[0]); close(pe[1]);
            st.exit_code = 1;
            rr_begin_stop(o, &st, SIGTERM);
            break;
        }
        if (pid == 0)
            rr_child(o, i, port, torch_port, self, po[1], pe[1]);
        setpgid(pid, pid); /* also done by the child: no race either way */
        close(po[1]);
        close(pe[1]);
        fcntl(po[0], F_SETFL, O_NONBLOCK);
        fcntl(pe[0], F_SETFL, O_NONBLOCK);
        r->pid = pid;
        r->running = 1;
        st.nrunning++;
        r->out = (rr_stream_t){.fd = po[0], .out_fd = 1,
                               .show = o->only_rank < 0 || o->only_rank == i};
        r->err = (rr_stream_t){.fd = pe[0], .out_fd = 2, .show = 1};
        open_streams += 2;
    }

    while (st.nrunning > 0 || open_streams > 0) {
        int nfds = 0, timeout = -1, rc;
        int64_t now = rr_now_ms();

        if (st.nrunning > 0) {
            if (st.deadline >= 0 && !st.stopping && now >= st.deadline)
                rr_on_timeout(o, &st);
            if (st.kill_at >= 0 && now >= st.kill_at) {
                rr_kill_all(st.ranks, o->nranks, SIGKILL);
                st.kill_at = -1;
            }
            if (st.deadline >= 0 && !st.stopping)
                timeout = (int)(st.deadline - now);
            if (st.kill_at >= 0 && (timeout < 0 || st.kill_at - now < timeout))
                timeout = (int)(st.kill_at - now);
        } else {
            /* Every rank is reaped and its group killed; an open stream
             * belongs to a process that left its group. Read what it has
             * for a moment, then stop listening. */
            if (linger_until < 0)
                linger_until = now + RR_LINGER_MS;
            if (now >= linger_until)
                break;
            timeout = (int)(linger_until - now);
        }

        pfd[nfds].fd = rr_sig_pipe[0];
        pfd[nfds].events = POLLIN;
        pfd_rank[nfds++] = NULL;
        for (i = 0; i < o->nranks; i++) {
            rr_stream_t *ss[2] = {&st.ranks[i].out, &st.ranks[i].err};
            for (int k = 0; k < 2; k++) {
                if (st.ranks[i].pid == 0 || ss[k]->fd < 0)
                    continue;
                pfd[nfds].fd = ss[k]->fd;
                pfd[nfds].events = POLLIN;
                pfd_rank[nfds++] = &st.ranks[i];
            }
        }

        rc = poll(pfd, (nfds_t)nfds, timeout);
        if (rc < 0 && errno != EINTR) {
            rr_msg("ringlet-run: poll: %s", strerror(errno));
            st.exit_code = 1;
            rr_kill_all(st.ranks, o->nranks, SIGKILL);
            break;
        }
        for (int k = 0; rc > 0 && k < nfds; k++) {
            rr_rank_t *r = pfd_rank[k];
            if (pfd[k].revents == 0 || r == NULL)
                continue;
            int rank = (int)(r - st.ranks);
            rr_stream_t *s = pfd[k].fd == r->out.fd ? &r->out : &r->err;
            if (rr_drain(o, rank, s) < 0)
                open_streams--;
        }
        rr_on_launcher_signals(o, &st);
        if (rr_output_gone && !st.stopping) {
            /* Like a pipeline stage that got SIGPIPE: nobody reads us. */
            if (st.exit_code < 0)
                st.exit_code = 128 + SIGPIPE;
            rr_begin_stop(o, &st, SIGTERM);
        }
        rr_reap(o, &st);
    }

    for (i = 0; i < o->nranks; i++) {
        if (st.ranks[i].out.fd >= 0)
            close(st.ranks[i].out.fd);
        if (st.ranks[i].err.fd >= 0)
            close(st.ranks[i].err.fd);
    }
    free(pfd_rank);
    free(pfd);
    free(st.ranks);
    return st.exit_code < 0 ? 0 : st.exit_code;
}

int rr_main(int argc, char **argv)
{
    rr_opts_t o;
    char err[512];
    int rc;

    rr_fix_std_fds();
    rc = rr_parse_args(argc, argv, getenv("RINGLET_RUN_TIMEOUT"), &o, err, sizeof(err));
    if (rc == RR_PARSE_HELP) {
        fputs(rr_usage_text, stdout);
        rr_opts_free(&o);
        return 0;
    }
    if (rc != RR_PARSE_OK) {
        fprintf(stderr, "ringlet-run: %s\n", err);
        fprintf(stderr, "usage: ringlet-run -n N [options] [--] CMD [ARGS...] (see --help)\n");
        rr_opts_free(&o);
        return RR_EXIT_USAGE;
    }
    rc = rr_run(&o);
    rr_opts_free(&o);
    return rc;
}

#ifndef RINGLET_RUN_NO_MAIN
int main(int argc, char **argv)
{
    return rr_main(argc, argv);
}
#endif
