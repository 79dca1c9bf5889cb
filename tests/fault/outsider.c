/*
 * Outsider RMA attack: a keyed group (RINGLET_AUTH_KEY) runs all-reduces and
 * all-gathers over libfabric tcp, checking every element, while a process
 * that holds no key and never went through the bootstrap finds the ranks'
 * libfabric ports (their listening sockets in /proc) and opens its own tcp
 * endpoint to brute-force registration keys and offsets with fi_write,
 * fi_writedata (with and without data) and fi_send.
 *
 *   outsider [--ranks N] [--iters N] [--writes-only] [--expect-clean]   the driver
 *   outsider --victim ITERS                             one rank (under ringlet-run)
 *
 * The driver prints the iterations, the wrong results, what the attacker
 * posted, and how many attack reports the ranks logged. With --expect-clean
 * it exits 0 only if every rank finished every iteration with no wrong
 * element and no error, no rank crashed, and the attack was logged.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include "ringlet.h"

#define MAX_RANKS 8
#define MAX_PORTS 64

/* ---------------------------------------------------------------- victim */

static int64_t ref_in(int r, size_t i, int it) { return (int64_t)((r * 31 + (int)(i % 1009) * 7 + it) % 97) - 48; }

/* One iteration: all-reduce (int32 sum, out of place) of a size that cycles
 * through the eager, ring and large paths, and an all-gather; buffers are
 * malloc'd each time so the registration cache sees recycled heap. */
static long victim_iter(rl_comm_t comm, int rank, int n, int it)
{
    static const size_t counts[] = {1, 43, 1000, 16411, 262147, 70001};
    size_t cnt = counts[it % 6];
    int32_t *in = malloc(cnt * 4), *out = malloc(cnt * 4), *ag = malloc(cnt * 4 * (size_t)n);
    long wrong = 0;
    if (!in || !out || !ag) {
        fprintf(stderr, "rank %d: out of memory\n", rank);
        exit(3);
    }
    for (size_t i = 0; i < cnt; i++)
        in[i] = (int32_t)ref_in(rank, i, it);
    rl_status_t st = rl_all_reduce(comm, in, out, cnt, RL_INT32, RL_SUM);
    if (st == RL_OK)
        st = rl_all_gather(comm, in, ag, cnt, RL_INT32);
    if (st != RL_OK) {
        printf("rank %d error at iteration %d: %s: %s\n", rank, it, rl_status_name(st), rl_comm_last_error(comm));
        fflush(stdout);
        exit(4);
    }
    for (size_t i = 0; i < cnt; i++) {
        int64_t want = 0;
        for (int r = n - 1; r >= 0; r--)
            want += ref_in(r, i, it);
        if (out[i] != (int32_t)want && wrong++ == 0)
            printf("rank %d iteration %d: all-reduce element %zu is %d, expected %" PRId64 "\n", rank, it, i, out[i],
                   want);
    }
    for (int r = 0; r < n; r++)
        for (size_t i = 0; i < cnt; i++)
            if (ag[(size_t)r * cnt + i] != (int32_t)ref_in(r, i, it) && wrong++ == 0)
                printf("rank %d iteration %d: all-gather element %zu of rank %d is wrong\n", rank, it, i, r);
    free(in);
    free(out);
    free(ag);
    return wrong != 0;
}

static int victim(int iters)
{
    rl_comm_t comm;
    if (rl_comm_create(NULL, &comm) != RL_OK) {
        printf("rank ? create failed: %s\n", rl_comm_last_error(NULL));
        return 2;
    }
    int rank, n;
    rl_comm_rank(comm, &rank);
    rl_comm_size(comm, &n);
    printf("rank %d outsider-victim pid %d\n", rank, (int)getpid());
    fflush(stdout);
    /* Give the attacker time to find the ports and start. */
    struct timespec ts = {1, 0};
    nanosleep(&ts, NULL);
    long wrong = 0;
    for (int it = 0; it < iters; it++)
        wrong += victim_iter(comm, rank, n, it);
    printf("rank %d done iterations %d wrong %ld\n", rank, iters, wrong);
    fflush(stdout);
    rl_comm_destroy(comm);
    return 0;
}

/* -------------------------------------------------------------- attacker */

/* Listening TCP ports owned by pid (IPv4 and IPv6 tables). */
static int listening_ports(int pid, int *ports, int max)
{
    unsigned long inodes[256];
    int ni = 0, np = 0;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)) && ni < 256) {
        char lp[320], tgt[64];
        snprintf(lp, sizeof(lp), "%s/%s", path, e->d_name);
        ssize_t l = readlink(lp, tgt, sizeof(tgt) - 1);
        if (l > 0) {
            tgt[l] = '\0';
            unsigned long ino;
            if (sscanf(tgt, "socket:[%lu]", &ino) == 1)
                inodes[ni++] = ino;
        }
    }
    if (d)
        closedir(d);
    const char *tabs[2] = {"/proc/net/tcp", "/proc/net/tcp6"};
    for (int t = 0; t < 2; t++) {
        FILE *f = fopen(tabs[t], "r");
        char line[512];
        while (f && fgets(line, sizeof(line), f)) {
            char local[128];
            unsigned st;
            unsigned long ino;
            if (sscanf(line, " %*d: %127s %*s %x %*s %*s %*s %*s %*s %lu", local, &st, &ino) != 3 || st != 0x0A)
                continue;
            char *colon = strrchr(local, ':');
            int port = colon ? (int)strtol(colon + 1, NULL, 16) : 0;
            for (int i = 0; i < ni; i++)
                if (inodes[i] == ino && np < max)
                    ports[np++] = port;
        }
        if (f)
            fclose(f);
    }
    return np;
}

typedef struct {
    uint64_t posted, ok_data, ok_empty, ok_send, errors, targets;
} attack_stats_t;

static volatile sig_atomic_t stop_attack;
static int writes_only; /* fi_write only: silent corruption, no protocol noise */
static void on_term(int s) { (void)s; stop_attack = 1; }

static uint64_t rnd64(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof(v), 0) != sizeof(v))
        v = (uint64_t)rand() << 32 ^ (uint64_t)rand();
    return v;
}

/* Each posted operation: what it was and where, to count what was
 * accepted. */
enum { K_PROBE = 1, K_DATA = 2, K_EMPTY = 3, K_SEND = 4 };
typedef struct {
    int kind, target;
    uint64_t key;
} op_ctx_t;

typedef struct {
    fi_addr_t addr;
} target_t;

static void reap(struct fid_cq *cq, attack_stats_t *s, int *inflight)
{
    struct fi_cq_entry ent[32];
    ssize_t got = fi_cq_read(cq, ent, 32);
    if (got > 0) {
        for (ssize_t i = 0; i < got; i++) {
            op_ctx_t *c = ent[i].op_context;
            if (c->kind == K_PROBE || c->kind == K_DATA)
                s->ok_data++;
            else if (c->kind == K_EMPTY)
                s->ok_empty++;
            else if (c->kind == K_SEND)
                s->ok_send++;
            free(c);
        }
        *inflight -= (int)got;
    } else if (got == -FI_EAVAIL) {
        struct fi_cq_err_entry e = {0};
        if (fi_cq_readerr(cq, &e, 0) > 0) {
            s->errors++;
            free(e.op_context);
            (*inflight)--;
        }
    }
}

/* One RMA write, with or without remote CQ data. */
static ssize_t rma_write(struct fid_ep *ep, const void *buf, size_t len, fi_addr_t to, uint64_t off, uint64_t key,
                        int with_imm, uint32_t imm, void *ctx)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct fi_rma_iov rma = {.addr = off, .len = len, .key = key};
    struct fi_msg_rma m = {.msg_iov = len ? &iov : NULL, .iov_count = len ? 1 : 0, .addr = to, .rma_iov = &rma,
                           .rma_iov_count = 1, .context = ctx, .data = imm};
    return fi_writemsg(ep, &m, FI_COMPLETION | (with_imm ? FI_REMOTE_CQ_DATA : 0));
}

/* The attacker's own endpoint; a failed RMA makes the provider drop the
 * connection and cancel everything queued on it, so after a failure the
 * attacker opens a fresh endpoint, as a real one would. */
typedef struct {
    struct fi_info *info;
    struct fid_fabric *fab;
    struct fid_domain *dom;
    struct fid_cq *cq;
    struct fid_av *av;
    struct fid_ep *ep;
} aep_t;

static void aep_close(aep_t *a)
{
    if (a->ep)
        fi_close(&a->ep->fid);
    if (a->av)
        fi_close(&a->av->fid);
    if (a->cq)
        fi_close(&a->cq->fid);
    a->ep = NULL, a->av = NULL, a->cq = NULL;
}

static int aep_open(aep_t *a, const int *ports, int np, target_t *tg)
{
    struct fi_cq_attr ca = {.size = 1024, .format = FI_CQ_FORMAT_CONTEXT};
    struct fi_av_attr aa = {.type = FI_AV_TABLE};
    if (fi_cq_open(a->dom, &ca, &a->cq, NULL) || fi_av_open(a->dom, &aa, &a->av, NULL) ||
        fi_endpoint(a->dom, a->info, &a->ep, NULL) || fi_ep_bind(a->ep, &a->cq->fid, FI_TRANSMIT | FI_RECV) ||
        fi_ep_bind(a->ep, &a->av->fid, 0) || fi_enable(a->ep))
        return -1;
    for (int i = 0; i < np; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ports[i])};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fi_av_insert(a->av, &sa, 1, &tg[i].addr, 0, NULL) != 1)
            tg[i].addr = FI_ADDR_NOTAVAIL;
    }
    return 0;
}

static int attack(const int *pids, int npids, int boot_port, int seconds, attack_stats_t *s)
{
    int ports[MAX_PORTS], np = 0;
    for (int i = 0; i < npids; i++) {
        int found[MAX_PORTS], got = listening_ports(pids[i], found, MAX_PORTS);
        for (int k = 0; k < got && np < MAX_PORTS; k++)
            if (found[k] != boot_port)
                ports[np++] = found[k];
    }
    if (np == 0) {
        fprintf(stderr, "attacker: found no libfabric port of the ranks\n");
        return 1;
    }
    for (int i = 0; i < np; i++)
        fprintf(stderr, "attacker: target 127.0.0.1:%d\n", ports[i]);
    aep_t a = {0};
    struct fi_info *hints = fi_allocinfo();
    hints->caps = FI_RMA | FI_WRITE | FI_MSG | FI_SEND;
    hints->ep_attr->type = FI_EP_RDM;
    hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY;
    hints->fabric_attr->prov_name = strdup("tcp");
    hints->addr_format = FI_SOCKADDR_IN;
    int ret = fi_getinfo(FI_VERSION(1, 9), "127.0.0.1", "0", FI_SOURCE, hints, &a.info);
    fi_freeinfo(hints);
    target_t tg[MAX_PORTS] = {{0}};
    if (ret || fi_fabric(a.info->fabric_attr, &a.fab, NULL) || fi_domain(a.fab, a.info, &a.dom, NULL) ||
        aep_open(&a, ports, np, tg)) {
        fprintf(stderr, "attacker: cannot open a tcp endpoint\n");
        return 1;
    }
    s->targets = (uint64_t)np;
    static char junk[1 << 16];
    memset(junk, 0x5a, sizeof(junk));
    signal(SIGTERM, on_term);
    time_t end = time(NULL) + seconds;
    int inflight = 0;
    uint64_t reconnects = 0;
    /* A write to a wrong key makes the target drop the connection: each
     * fresh endpoint first sends messages, which need no key. */
    int fresh = writes_only ? 0 : 4 * np;
    for (uint64_t op = 0; !stop_attack && time(NULL) < end; op++) {
        uint64_t errs = s->errors;
        reap(a.cq, s, &inflight);
        int t = (int)(op % (uint64_t)np);
        int probe = (op / (uint64_t)np) % 8 == 0;
        while (inflight >= 16 && !stop_attack && s->errors == errs)
            reap(a.cq, s, &inflight);
        if (s->errors != errs) {
            for (int spin = 0; spin < 100000 && inflight > 0; spin++)
                reap(a.cq, s, &inflight);
            aep_close(&a);
            inflight = 0;
            reconnects++;
            if (aep_open(&a, ports, np, tg)) {
                fprintf(stderr, "attacker: cannot reopen its endpoint\n");
                break;
            }
            fresh = writes_only ? 0 : 4 * np;
            continue;
        }
        if (tg[t].addr == FI_ADDR_NOTAVAIL)
            continue;
        uint64_t r = rnd64();
        op_ctx_t *c = calloc(1, sizeof(*c));
        c->target = t;
        ssize_t rc;
        /* Every 8th write goes to a random 64-bit key; the others cycle
         * through the small keys a counter hands out, at random offsets in
         * the first MiB. (libfabric tcp completes an RMA at the initiator
         * when it is sent, and has no delivery-complete for it: a wrong key
         * shows only as the connection being dropped.) */
        if (fresh > 0) {
            fresh--;
            c->kind = K_SEND;
            rc = fi_send(a.ep, junk, 64, NULL, tg[t].addr, c);
        } else if (probe) {
            c->kind = K_PROBE;
            c->key = r;
            rc = rma_write(a.ep, junk, 64, tg[t].addr, (r >> 8) % 4096 * 64, c->key, 0, 0, c);
        } else {
            c->key = 1 + (op / (uint64_t)np) % 16;
            uint64_t off = ((r >> 8) % 16384) * 64;
            size_t len = (size_t)64 << ((r >> 24) % 8);
            uint32_t imm = (uint32_t)(r >> 32);
            switch (writes_only ? 2 : (int)((op / (uint64_t)np) % 8)) {
            case 1:
                c->kind = K_EMPTY;
                rc = rma_write(a.ep, NULL, 0, tg[t].addr, off, c->key, 1, imm, c);
                break;
            case 5:
                c->kind = K_SEND;
                rc = fi_send(a.ep, junk, 64, NULL, tg[t].addr, c);
                break;
            case 3:
                c->kind = K_DATA;
                rc = rma_write(a.ep, junk, len, tg[t].addr, off, c->key, 1, imm, c);
                break;
            default:
                c->kind = K_DATA;
                rc = rma_write(a.ep, junk, len, tg[t].addr, off, c->key, 0, 0, c);
                break;
            }
        }
        if (rc == 0) {
            s->posted++;
            inflight++;
        } else {
            free(c);
            if (rc != -FI_EAGAIN)
                s->errors++;
        }
    }
    for (int spin = 0; spin < 200000 && inflight > 0; spin++)
        reap(a.cq, s, &inflight);
    fprintf(stderr, "attacker: %" PRIu64 " fresh endpoints after failures\n", reconnects);
    aep_close(&a);
    fi_close(&a.dom->fid);
    fi_close(&a.fab->fid);
    fi_freeinfo(a.info);
    return 0;
}

/* ---------------------------------------------------------------- driver */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof(sa);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &l) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static void usage(void)
{
    printf("usage: outsider [--ranks N] [--iters N] [--writes-only] [--expect-clean]\n"
           "       outsider --victim ITERS\n\n"
           "A keyed ringlet group over libfabric tcp runs checked all-reduces and all-gathers\n"
           "while an outsider without the key brute-forces RMA keys and offsets on the ranks'\n"
           "libfabric ports. Prints iterations, wrong results, and what the attacker got in.\n"
           "  --ranks N        group size (2)\n"
           "  --iters N        iterations per rank (800)\n"
           "  --writes-only    the attacker sends only fi_write (no immediates, no messages)\n"
           "  --expect-clean   exit 0 only if no result was wrong, no rank failed or crashed\n"
           "                   and the ranks logged the attack\n");
}

int main(int argc, char **argv)
{
    int ranks = 2, iters = 800, expect_clean = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--victim") && i + 1 < argc)
            return victim(atoi(argv[++i]));
        if (!strcmp(argv[i], "--ranks") && i + 1 < argc)
            ranks = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--writes-only"))
            writes_only = 1;
        else if (!strcmp(argv[i], "--expect-clean"))
            expect_clean = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage();
            return 0;
        } else {
            fprintf(stderr, "outsider: unknown argument %s (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (ranks < 2 || ranks > MAX_RANKS || iters < 1) {
        fprintf(stderr, "outsider: --ranks must be 2..%d and --iters positive\n", MAX_RANKS);
        return 2;
    }
    int port = free_port();
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "%s -n %d --port %d --timeout 600 --env RINGLET_TRANSPORT=ofi --env RINGLET_OFI_PROVIDER=tcp "
             "--env RINGLET_AUTH_KEY=outsider-test-secret --env RINGLET_TIMEOUT_MS=60000 -- %s --victim %d 2>&1",
             RINGLET_RUN, ranks, port, argv[0], iters);
    int pfd[2];
    if (pipe(pfd))
        return 1;
    FILE *p = popen(cmd, "r");
    if (!p)
        return 1;
    int pids[MAX_RANKS], npids = 0, done = 0, errors = 0, crashed = 0;
    long wrong = 0, logged = 0;
    pid_t attacker = -1;
    char line[2048];
    while (fgets(line, sizeof(line), p)) {
        int r, pid, it;
        long w;
        if (strstr(line, "outsider-victim pid") && sscanf(line, "[%*d] rank %d outsider-victim pid %d", &r, &pid) == 2 &&
            npids < MAX_RANKS) {
            pids[npids++] = pid;
            if (npids == ranks) {
                attacker = fork();
                if (attacker == 0) {
                    close(pfd[0]);
                    attack_stats_t s = {0};
                    int rc = attack(pids, npids, port, 3600, &s);
                    if (write(pfd[1], &s, sizeof(s)) != sizeof(s))
                        rc = 1;
                    _exit(rc);
                }
            }
            continue;
        }
        if (sscanf(line, "[%*d] rank %d done iterations %d wrong %ld", &r, &it, &w) == 3) {
            done++;
            wrong += w;
            continue;
        }
        if (strstr(line, "not a member of the group") || strstr(line, "outsider"))
            logged++;
        if (strstr(line, "error at iteration"))
            errors++;
        if (strstr(line, "killed by") || strstr(line, "signal") || strstr(line, "munmap_chunk") ||
            strstr(line, "Segmentation"))
            crashed++;
        if (logged < 20 || !strstr(line, "not a member"))
            fputs(line, stdout);
    }
    int st = pclose(p);
    close(pfd[1]);
    attack_stats_t s = {0};
    int ast = -1;
    if (attacker > 0) {
        kill(attacker, SIGTERM);
        if (read(pfd[0], &s, sizeof(s)) != sizeof(s))
            fprintf(stderr, "outsider: no statistics from the attacker\n");
        waitpid(attacker, &ast, 0);
    }
    printf("outsider: %d ranks x %d iterations: ranks done %d, wrong results %ld, errors %d, crashes %d, "
           "group exit %d\n",
           ranks, iters, done, wrong, errors, crashed, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    printf("outsider: attacker on %" PRIu64 " ports: posted %" PRIu64 ", completed at the attacker: data writes %" PRIu64
           ", empty writedata %" PRIu64 ", sends %" PRIu64 ", failed %" PRIu64 "; attack log lines %ld\n",
           s.targets, s.posted, s.ok_data, s.ok_empty, s.ok_send, s.errors, logged);
    if (!expect_clean)
        return 0;
    /* libfabric tcp completes an RMA at the initiator once sent, so the
     * attacker cannot tell what landed: the ranks' results are the check. */
    int ok = done == ranks && wrong == 0 && errors == 0 && crashed == 0 && st == 0 && s.posted > 0 && logged > 0;
    printf("outsider: %s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
