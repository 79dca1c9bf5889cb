/*
 * Options, control socket and transport set-up shared by ringlet_write_bw
 * and ringlet_write_lat. See ringlet_write_common.h.
 */
#include "ringlet_write_common.h"

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"

#define PT_MAGIC 0x52574231u /* "RWB1" */
#define PT_VERSION 1

/* ------------------------------------------------------------- options */

static void usage(FILE *out, const pt_opts_t *o)
{
    int bw = o->kind == PT_BW;
    fprintf(out,
            "usage: %s [options]             server: waits for one client\n"
            "       %s [options] SERVER      client: connects to the server (host or IP)\n"
            "\n"
            "%s\n"
            "through ringlet's transport layer (RINGLET_TRANSPORT: verbs, ofi, shm; auto =\n"
            "verbs if an RDMA port is up, else libfabric), like perftest's %s.\n"
            "The client's sizes, iterations, duration, QPs and window are used by both\n"
            "sides; -d/-i/-x/-R/-T are each side's own. Other RINGLET_* variables\n"
            "(RINGLET_IB_*, RINGLET_OFI_PROVIDER, RINGLET_TIMEOUT_MS) apply as usual.\n"
            "\n"
            "  -d, --ib-dev DEV       RDMA device, e.g. rxe0 (default RINGLET_IB_HCA / first active)\n"
            "  -i, --ib-port N        device port (default: first active)\n"
            "  -x, --gid-index N      GID index (default RINGLET_IB_GID_INDEX / auto)\n"
            "  -R, --rdma_cm          connect with librdmacm (RINGLET_IB_CM=rdmacm)\n"
            "  -T, --transport NAME   verbs, ofi or shm (default RINGLET_TRANSPORT)\n"
            "  -s, --size N           message size in bytes, K/M/G suffixes (default %s)\n"
            "  -a, --all              sizes 2, 4, ... 8M\n"
            "  -n, --iters N          iterations per size (default %d)\n"
            "  -D, --duration SEC     run each size for SEC seconds instead of -n\n"
            "  -q, --qp N             QPs, messages striped over them (verbs; default 1)\n"
            "%s"
            "      --report_gbits     report Gb/s (1e9 bits) instead of MB/sec (2^20 bytes)\n"
            "  -p, --port N           TCP port of the control connection (default 18515)\n"
            "      --json FILE        also write the results as JSON (client)\n"
            "  -F                     accepted and ignored (perftest compatibility)\n"
            "  -h, --help             this text\n"
            "\n"
            "%s",
            o->prog, o->prog,
            bw ? "RDMA write bandwidth: the client keeps a window of writes with immediate\n"
                 "outstanding to the server's registered buffer"
               : "RDMA write latency: ping-pong of writes with immediate data between\n"
                 "client and server; half the round trip is reported",
            bw ? "ib_write_bw" : "ib_write_lat", bw ? "65536" : "2", bw ? 5000 : 1000,
            bw ? "  -t, --tx-depth N       writes outstanding (default 128)\n"
                 "  --imm-every N          client: only every Nth write carries an immediate, the rest\n"
                 "                         are plain RDMA writes, as ib_write_bw's (default 1: every\n"
                 "                         write, as ringlet's collectives send chunks)\n" : "",
            bw ? "Columns: #bytes #iterations BW peak[MB/sec] BW average[MB/sec] MsgRate[Mpps].\n"
                 "Average = bytes / (first post .. last completion); peak = the best rate of\n"
                 "tx-depth consecutive writes, from the first's post to the last's completion.\n"
                 "MB = 2^20 bytes. Waits: the client busy-polls, the server sleeps on the\n"
                 "completion channel (RINGLET_SPIN_US sets both sides' spin time).\n"
               : "Columns: #bytes #iterations t_min t_max t_typical(median) t_avg t_stdev\n"
                 "99% 99.9% percentile, in usec, each half of a measured round trip.\n");
}

static int parse_num(const char *s, long lo, long hi, long *out)
{
    char *end;
    if (!s || !*s)
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_bytes(const char *s, size_t *out)
{
    if (rl_parse_size(s, out) || *out < 1 || *out > PT_MAX_SIZE)
        return -1;
    return 0;
}

int pt_parse(pt_opts_t *o, pt_kind_t kind, int argc, char **argv)
{
    *o = (pt_opts_t){.kind = kind, .prog = argv[0], .gid_index = -1, .size = kind == PT_BW ? 65536 : 2,
                     .iters = kind == PT_BW ? 5000 : 1000, .tx_depth = 128, .imm_every = 1, .port = 18515};
    const char *p = strrchr(argv[0], '/');
    if (p)
        o->prog = p + 1;
    enum { OPT_GBITS = 256, OPT_JSON, OPT_IMM };
    static const struct option lopts[] = {
        {"ib-dev", required_argument, NULL, 'd'}, {"ib-port", required_argument, NULL, 'i'},
        {"gid-index", required_argument, NULL, 'x'}, {"rdma_cm", no_argument, NULL, 'R'},
        {"transport", required_argument, NULL, 'T'}, {"size", required_argument, NULL, 's'},
        {"all", no_argument, NULL, 'a'}, {"iters", required_argument, NULL, 'n'},
        {"duration", required_argument, NULL, 'D'}, {"qp", required_argument, NULL, 'q'},
        {"tx-depth", required_argument, NULL, 't'}, {"report_gbits", no_argument, NULL, OPT_GBITS},
        {"port", required_argument, NULL, 'p'}, {"json", required_argument, NULL, OPT_JSON},
        {"imm-every", required_argument, NULL, OPT_IMM},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    const char *bad = NULL;
    int c;
    long v;
    optind = 1;
    opterr = 0;
    while (!bad && (c = getopt_long(argc, argv, ":d:i:x:RT:s:an:D:q:t:p:Fh", lopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            if (strlen(optarg) >= sizeof(o->dev) - 8 || strchr(optarg, ','))
                bad = "-d wants one device name";
            else
                snprintf(o->dev, sizeof(o->dev), "%s", optarg);
            break;
        case 'i': if (parse_num(optarg, 1, 255, &v)) bad = "-i wants a port number 1..255"; else o->ib_port = (int)v; break;
        case 'x': if (parse_num(optarg, 0, 65535, &v)) bad = "-x wants a GID index"; else o->gid_index = (int)v; break;
        case 'R': o->rdmacm = 1; break;
        case 'T':
            if (strcmp(optarg, "verbs") && strcmp(optarg, "ofi") && strcmp(optarg, "shm") && strcmp(optarg, "auto"))
                bad = "-T wants verbs, ofi, shm or auto";
            else
                snprintf(o->transport, sizeof(o->transport), "%s", optarg);
            break;
        case 's': if (parse_bytes(optarg, &o->size)) bad = "-s wants a size from 1 byte to 1G"; break;
        case 'a': o->all_sizes = 1; break;
        case 'n': if (parse_num(optarg, 1, 100000000, &v)) bad = "-n wants 1..100000000"; else o->iters = v; break;
        case 'D': if (parse_num(optarg, 1, 3600, &v)) bad = "-D wants 1..3600 seconds"; else o->duration = (int)v; break;
        case 'q': if (parse_num(optarg, 1, 16, &v)) bad = "-q wants 1..16"; else o->qps = (int)v; break;
        case 't':
            if (kind != PT_BW || parse_num(optarg, 1, 4096, &v))
                bad = kind == PT_BW ? "-t wants 1..4096" : "-t applies to the bandwidth test only";
            else
                o->tx_depth = (int)v;
            break;
        case 'p': if (parse_num(optarg, 1, 65535, &v)) bad = "-p wants a TCP port"; else o->port = (int)v; break;
        case OPT_GBITS: o->gbits = 1; break;
        case OPT_JSON: o->json = optarg; break;
        case OPT_IMM:
            if (kind != PT_BW || parse_num(optarg, 1, 1 << 20, &v))
                bad = kind == PT_BW ? "--imm-every wants 1..1048576" : "--imm-every applies to the bandwidth test only";
            else
                o->imm_every = (int)v;
            break;
        case 'F': break;
        case 'h': usage(stdout, o); return 1;
        case ':': bad = "an option is missing its value"; break;
        default: bad = "unknown option"; break;
        }
    }
    if (!bad && optind < argc)
        o->server = argv[optind++];
    if (!bad && optind < argc)
        bad = "more than one server address";
    if (bad) {
        fprintf(stderr, "%s: %s (see --help)\n", o->prog, bad);
        return 2;
    }
    return 0;
}

/* ------------------------------------------------------ control socket */

static int io_all(pt_t *p, void *buf, size_t len, int writing, int64_t deadline)
{
    char *b = buf;
    while (len) {
        struct pollfd pfd = {.fd = p->sock, .events = writing ? POLLOUT : POLLIN};
        int ms = rl_ms_left(deadline);
        int r = poll(&pfd, 1, ms > 1000 ? 1000 : ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0) {
            if (rl_now_ns() >= deadline) {
                fprintf(stderr, "%s: the peer did not %s in time (control connection)\n", p->o.prog,
                        writing ? "read" : "answer");
                return 1;
            }
            continue;
        }
        ssize_t n = writing ? send(p->sock, b, len, MSG_NOSIGNAL) : recv(p->sock, b, len, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            fprintf(stderr, "%s: control connection to the peer lost%s%s\n", p->o.prog, n ? ": " : " (peer exited)",
                    n ? strerror(errno) : "");
            return 1;
        }
        b += n;
        len -= (size_t)n;
    }
    return 0;
}

typedef struct {
    uint32_t tag, pad;
    uint64_t a, b;
} pt_ctl_t;

int pt_send_ctl(pt_t *p, uint32_t tag, uint64_t a, uint64_t b)
{
    pt_ctl_t m = {.tag = htole32(tag), .a = htole64(a), .b = htole64(b)};
    return io_all(p, &m, sizeof(m), 1, rl_now_ns() + p->timeout_ns);
}

int pt_recv_ctl(pt_t *p, uint32_t want_tag, uint64_t *a, uint64_t *b, int64_t deadline)
{
    pt_ctl_t m;
    if (io_all(p, &m, sizeof(m), 0, deadline))
        return 1;
    if (le32toh(m.tag) != want_tag) {
        fprintf(stderr, "%s: unexpected control message %u from the peer (wanted %u)\n", p->o.prog, le32toh(m.tag),
                want_tag);
        return 1;
    }
    *a = le64toh(m.a);
    *b = le64toh(m.b);
    return 0;
}

int pt_ctl_ready(pt_t *p)
{
    struct pollfd pfd = {.fd = p->sock, .events = POLLIN};
    return poll(&pfd, 1, 0) > 0;
}

static int ctl_listen(pt_t *p, int64_t deadline)
{
    int ls = socket(AF_INET6, SOCK_STREAM, 0), v6only = 0, one = 1;
    if (ls < 0) {
        fprintf(stderr, "%s: socket: %s\n", p->o.prog, strerror(errno));
        return 1;
    }
    setsockopt(ls, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)p->o.port),
                             .sin6_addr = in6addr_any};
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 1)) {
        fprintf(stderr, "%s: cannot listen on TCP port %d: %s\n", p->o.prog, p->o.port, strerror(errno));
        close(ls);
        return 1;
    }
    printf("# %s server: waiting for a client on TCP port %d\n", p->o.prog, p->o.port);
    fflush(stdout);
    struct pollfd pfd = {.fd = ls, .events = POLLIN};
    while (poll(&pfd, 1, 200) <= 0) {
        if (rl_now_ns() >= deadline) {
            fprintf(stderr, "%s: no client connected within the deadline (RINGLET_TIMEOUT_MS)\n", p->o.prog);
            close(ls);
            return 1;
        }
    }
    p->sock = accept(ls, NULL, NULL);
    close(ls);
    if (p->sock < 0) {
        fprintf(stderr, "%s: accept: %s\n", p->o.prog, strerror(errno));
        return 1;
    }
    return 0;
}

/* Connect, retrying while the server is not up yet. */
static int ctl_connect(pt_t *p, int64_t deadline)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", p->o.port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(p->o.server, port, &hints, &res);
    if (rc) {
        fprintf(stderr, "%s: cannot resolve %s: %s\n", p->o.prog, p->o.server, gai_strerror(rc));
        return 1;
    }
    int err = 0;
    for (;;) {
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            int s = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
            if (s >= 0 && connect(s, ai->ai_addr, ai->ai_addrlen) == 0) {
                p->sock = s;
                freeaddrinfo(res);
                return 0;
            }
            err = errno;
            if (s >= 0)
                close(s);
        }
        if (rl_now_ns() >= deadline)
            break;
        usleep(100000);
    }
    freeaddrinfo(res);
    fprintf(stderr, "%s: cannot connect to %s port %d: %s\n", p->o.prog, p->o.server, p->o.port, strerror(err));
    return 1;
}

/* --------------------------------------------------- run-shape exchange */

/* What the client sends first (little-endian, fixed). */
typedef struct {
    uint32_t magic, version, kind, all_sizes;
    uint64_t size, iters;
    uint32_t duration, qps, tx_depth, pad;
    char host[64];
} pt_hello_t;

static void fill_sizes(pt_t *p)
{
    p->nsizes = 0;
    if (p->o.all_sizes)
        for (size_t s = 2; s <= (8u << 20); s *= 2)
            p->sizes[p->nsizes++] = s;
    else
        p->sizes[p->nsizes++] = p->o.size;
}

static int exchange_shape(pt_t *p, int64_t deadline, int *same_host)
{
    pt_hello_t h = {.magic = htole32(PT_MAGIC), .version = htole32(PT_VERSION), .kind = htole32(p->o.kind),
                    .all_sizes = htole32((uint32_t)p->o.all_sizes), .size = htole64(p->o.size),
                    .iters = htole64((uint64_t)p->o.iters), .duration = htole32((uint32_t)p->o.duration),
                    .qps = htole32((uint32_t)p->o.qps), .tx_depth = htole32((uint32_t)p->o.tx_depth)};
    gethostname(h.host, sizeof(h.host) - 1);
    pt_hello_t r;
    if (io_all(p, &h, sizeof(h), 1, deadline) || io_all(p, &r, sizeof(r), 0, deadline))
        return 1;
    r.host[sizeof(r.host) - 1] = '\0';
    *same_host = !strcmp(r.host, h.host);
    if (le32toh(r.magic) != PT_MAGIC || le32toh(r.version) != PT_VERSION) {
        fprintf(stderr, "%s: the peer is not a ringlet_write benchmark of this version\n", p->o.prog);
        return 1;
    }
    if (le32toh(r.kind) != (uint32_t)p->o.kind) {
        fprintf(stderr, "%s: the peer runs the %s test, this side the %s test\n", p->o.prog,
                le32toh(r.kind) == PT_BW ? "bandwidth" : "latency", p->o.kind == PT_BW ? "bandwidth" : "latency");
        return 1;
    }
    if (p->is_server) {
        /* The client's shape wins; it came from the network: bound it. */
        uint64_t size = le64toh(r.size), iters = le64toh(r.iters);
        uint32_t dur = le32toh(r.duration), qps = le32toh(r.qps), depth = le32toh(r.tx_depth);
        if (size < 1 || size > PT_MAX_SIZE || iters < 1 || iters > 100000000 || dur > 3600 || qps > 16 ||
            depth < 1 || depth > 4096) {
            fprintf(stderr, "%s: the client sent an invalid run shape\n", p->o.prog);
            return 1;
        }
        p->o.size = size;
        p->o.iters = (long)iters;
        p->o.duration = (int)dur;
        p->o.qps = (int)qps;
        p->o.tx_depth = (int)depth;
        p->o.all_sizes = le32toh(r.all_sizes) != 0;
    }
    fill_sizes(p);
    return 0;
}

/* ------------------------------------------------------------ transport */

typedef struct {
    uint32_t magic, blob_len;
    uint64_t addr, key, len;
    char backend[32];
    uint8_t blob[RL_TP_BLOB_MAX];
} pt_conn_msg_t;

static rl_status_t open_tp(pt_t *p, int same_host, char *err, size_t errlen)
{
    rl_tp_params_t tpp = {.rank = p->is_server ? 0 : 1, .nranks = 2, .all_local = same_host, .cfg = &p->cfg};
    if (strcmp(p->cfg.transport, "auto")) {
        p->ops = rl_transport_find(p->cfg.transport);
        if (!p->ops) {
            snprintf(err, errlen, "transport %s is not built in (available: %s)", p->cfg.transport,
                     rl_transport_list());
            return RL_ERR_UNSUPPORTED;
        }
        return p->ops->open(&tpp, &p->tp, err, errlen);
    }
    rl_status_t st = RL_ERR_UNSUPPORTED;
    snprintf(err, errlen, "no transport built in");
    for (int i = 0; (p->ops = rl_transport_at(i)) != NULL; i++)
        if ((st = p->ops->open(&tpp, &p->tp, err, errlen)) == RL_OK)
            break;
    return st;
}

static int load_config(pt_t *p)
{
    char err[256];
    if (rl_config_load(&p->cfg, err, sizeof(err)) != RL_OK) {
        fprintf(stderr, "%s: %s\n", p->o.prog, err);
        return 1;
    }
    if (p->o.dev[0]) {
        if (p->o.ib_port)
            snprintf(p->cfg.ib_hca, sizeof(p->cfg.ib_hca), "%s:%d", p->o.dev, p->o.ib_port);
        else
            snprintf(p->cfg.ib_hca, sizeof(p->cfg.ib_hca), "%s", p->o.dev);
    }
    if (p->o.gid_index >= 0)
        p->cfg.ib_gid_index = p->o.gid_index;
    if (p->o.rdmacm)
        snprintf(p->cfg.ib_cm, sizeof(p->cfg.ib_cm), "rdmacm");
    if (p->o.transport[0])
        snprintf(p->cfg.transport, sizeof(p->cfg.transport), "%s", p->o.transport);
    p->timeout_ns = (int64_t)p->cfg.timeout_ms * 1000000;
    return 0;
}

static int connect_peer(pt_t *p, int64_t deadline)
{
    pt_conn_msg_t m = {.magic = htole32(PT_MAGIC)}, r;
    size_t bl = sizeof(m.blob);
    rl_status_t st = p->ops->conn_create(p->tp, p->is_server ? 1 : 0, 0, &p->conn, m.blob, &bl);
    if (st != RL_OK) {
        fprintf(stderr, "%s: connection set-up: %s\n", p->o.prog, p->ops->last_error(p->tp));
        return 1;
    }
    rl_rkey_t rk;
    p->ops->mr_remote(p->mr, p->conn, p->buf, &rk);
    m.blob_len = htole32((uint32_t)bl);
    m.addr = htole64(rk.addr);
    m.key = htole64(rk.key);
    m.len = htole64(p->buf_len);
    snprintf(m.backend, sizeof(m.backend), "%s", p->ops->name);
    if (io_all(p, &m, sizeof(m), 1, deadline) || io_all(p, &r, sizeof(r), 0, deadline))
        return 1;
    r.backend[sizeof(r.backend) - 1] = '\0';
    if (le32toh(r.magic) != PT_MAGIC || le32toh(r.blob_len) > sizeof(r.blob)) {
        fprintf(stderr, "%s: malformed connection data from the peer\n", p->o.prog);
        return 1;
    }
    if (strcmp(r.backend, p->ops->name)) {
        fprintf(stderr, "%s: the peer uses transport %s, this side %s: set the same RINGLET_TRANSPORT / -T\n",
                p->o.prog, r.backend, p->ops->name);
        return 1;
    }
    /* The peer's buffer must hold the largest size we will write there. */
    if (le64toh(r.len) < p->sizes[p->nsizes - 1]) {
        fprintf(stderr, "%s: the peer's buffer (%llu B) is smaller than the largest size\n", p->o.prog,
                (unsigned long long)le64toh(r.len));
        return 1;
    }
    p->peer.addr = le64toh(r.addr);
    p->peer.key = le64toh(r.key);
    st = p->ops->conn_establish(p->conn, r.blob, le32toh(r.blob_len), deadline);
    if (st != RL_OK) {
        fprintf(stderr, "%s: connecting to the peer: %s\n", p->o.prog, p->ops->last_error(p->tp));
        return 1;
    }
    /* Both sides connected before anyone writes. */
    uint64_t a, b;
    if (pt_send_ctl(p, 1, 0, 0) || pt_recv_ctl(p, 1, &a, &b, deadline))
        return 1;
    return 0;
}

int pt_setup(pt_t *p)
{
    p->sock = -1;
    p->is_server = p->o.server == NULL;
    if (load_config(p))
        return 1;
    if (p->o.qps)
        p->cfg.ib_qps_per_peer = p->o.qps;
    int64_t deadline = rl_now_ns() + p->timeout_ns;
    int same_host = 0;
    if ((p->is_server ? ctl_listen(p, deadline) : ctl_connect(p, deadline)) ||
        exchange_shape(p, rl_now_ns() + p->timeout_ns, &same_host))
        return 1;
    /* Like perftest: the bandwidth server has nothing to do but keep
     * receives posted, so it sleeps; the other waits spin. */
    int sleeper = p->is_server && p->o.kind == PT_BW;
    p->spin_ns = p->cfg.spin_us >= 0 ? (int64_t)p->cfg.spin_us * 1000 : sleeper ? 0 : 1000000000LL;
    if (p->o.qps) /* the server follows the client */
        p->cfg.ib_qps_per_peer = p->o.qps;
    char err[400];
    if (open_tp(p, same_host, err, sizeof(err)) != RL_OK) {
        fprintf(stderr, "%s: cannot open a transport: %s\n", p->o.prog, err);
        p->tp = NULL;
        return 1;
    }
    p->buf_len = p->sizes[p->nsizes - 1];
    if (posix_memalign(&p->buf, 4096, p->buf_len)) {
        p->buf = NULL;
        fprintf(stderr, "%s: out of memory for %zu bytes\n", p->o.prog, p->buf_len);
        return 1;
    }
    memset(p->buf, 0, p->buf_len);
    /* Write targets need remote write; the bandwidth client only reads. */
    unsigned acc = p->is_server || p->o.kind == PT_LAT ? RL_ACCESS_REMOTE_WRITE : RL_ACCESS_LOCAL;
    if (p->ops->mr_reg(p->tp, p->buf, p->buf_len, acc, &p->mr) != RL_OK) {
        p->mr = NULL;
        fprintf(stderr, "%s: registering %zu bytes: %s\n", p->o.prog, p->buf_len, p->ops->last_error(p->tp));
        return 1;
    }
    return connect_peer(p, rl_now_ns() + p->timeout_ns);
}

void pt_teardown(pt_t *p)
{
    if (p->conn)
        p->ops->conn_destroy(p->conn);
    if (p->mr)
        p->ops->mr_dereg(p->mr);
    if (p->tp)
        p->ops->close(p->tp);
    free(p->buf);
    if (p->sock >= 0)
        close(p->sock);
    p->conn = NULL;
    p->mr = NULL;
    p->tp = NULL;
    p->buf = NULL;
    p->sock = -1;
}

/* ------------------------------------------------------------ data path */

/* Nothing completed: keep spinning for spin_ns, then sleep on the
 * completion channel (briefly: deadlines are checked by the callers). On a
 * software device (rxe) a spinning process takes the CPU the device's own
 * packet processing needs. */
static void idle(pt_t *p)
{
    int64_t now = rl_now_ns();
    if (!p->idle_since) {
        p->idle_since = now;
        return;
    }
    if (now - p->idle_since < p->spin_ns)
        return;
    if (p->ops->wait)
        p->ops->wait(p->tp, 10);
    else
        sched_yield();
}

int pt_poll(pt_t *p)
{
    rl_tp_cqe_t ev[32];
    int n = 0;
    rl_status_t st = p->ops->poll(p->tp, ev, 32, &n);
    if (st != RL_OK) {
        fprintf(stderr, "%s: polling completions: %s\n", p->o.prog, p->ops->last_error(p->tp));
        return 1;
    }
    if (n == 0) {
        idle(p);
        return 0;
    }
    p->idle_since = 0;
    for (int i = 0; i < n; i++) {
        if (ev[i].status != RL_OK) {
            fprintf(stderr, "%s: %s\n", p->o.prog, p->ops->last_error(p->tp));
            return 1;
        }
        if (ev[i].kind == RL_CQE_SEND) {
            p->sends_done++;
        } else {
            p->recvs_done++;
            p->last_imm = ev[i].imm;
        }
    }
    return 0;
}

int pt_write(pt_t *p, size_t len, uint32_t imm, int with_imm)
{
    int64_t deadline = 0;
    if (!p->ops->write)
        with_imm = 1;
    for (;;) {
        rl_status_t st = with_imm ? p->ops->write_imm(p->conn, p->buf, len, p->mr, p->peer.addr, p->peer.key, imm, NULL)
                                  : p->ops->write(p->conn, p->buf, len, p->mr, p->peer.addr, p->peer.key, NULL);
        if (st == RL_OK)
            return 0;
        if (st != RL_ERR_AGAIN) {
            fprintf(stderr, "%s: write of %zu bytes: %s\n", p->o.prog, len, p->ops->last_error(p->tp));
            return 1;
        }
        if (!deadline)
            deadline = rl_now_ns() + p->timeout_ns;
        else if (rl_now_ns() > deadline) {
            fprintf(stderr, "%s: the send queue stayed full for %d ms\n", p->o.prog, p->cfg.timeout_ms);
            return 1;
        }
        if (pt_poll(p))
            return 1;
    }
}

int pt_check_data(pt_t *p, int k, size_t len)
{
    const unsigned char *b = p->buf;
    unsigned char want = pt_pattern(k);
    if (b[0] != want || b[len - 1] != want) {
        fprintf(stderr, "%s: wrong data after %zu-byte writes: first byte 0x%02x, last 0x%02x, want 0x%02x\n",
                p->o.prog, len, b[0], b[len - 1], want);
        return 1;
    }
    return 0;
}

double pt_percentile(const double *v, size_t n, double q)
{
    if (!n)
        return 0;
    size_t i = (size_t)ceil(q * (double)n);
    return v[i ? (i > n ? n - 1 : i - 1) : 0];
}

void pt_print_banner(const pt_t *p, const char *title)
{
    printf("---------------------------------------------------------------------------------------\n");
    printf("                    %s\n", title);
    printf(" Transport      : %s\n", p->ops->describe(p->tp));
    printf(" Number of qps  : %d\n", p->cfg.ib_qps_per_peer);
    if (p->o.kind == PT_BW)
        printf(" TX depth       : %d\n", p->o.tx_depth);
    if (p->o.kind == PT_BW && !p->is_server)
        printf(" Immediates     : 1 in %d writes%s\n", p->o.imm_every,
               p->o.imm_every == 1 ? " (as collectives send chunks)" : "");
    if (p->o.duration)
        printf(" Duration       : %d s per size\n", p->o.duration);
    printf(" Role           : %s\n", p->is_server ? "server" : "client");
    printf("---------------------------------------------------------------------------------------\n");
}

enum { CTL_BYE = 12 }; /* the end of a run, both ways */

int pt_client_bye(pt_t *p)
{
    uint64_t a, b;
    return pt_send_ctl(p, CTL_BYE, 0, 0) || pt_recv_ctl(p, CTL_BYE, &a, &b, rl_now_ns() + p->timeout_ns);
}

static int run_server(pt_t *p, const pt_program_t *prog)
{
    printf("%s\n", prog->server_header);
    for (int k = 0; k < p->nsizes; k++) {
        if (prog->server_size(p, k))
            return 1;
        fflush(stdout);
    }
    uint64_t a, b;
    return pt_recv_ctl(p, CTL_BYE, &a, &b, rl_now_ns() + p->timeout_ns) || pt_send_ctl(p, CTL_BYE, 0, 0);
}

int pt_main(const pt_program_t *prog, int argc, char **argv)
{
    pt_t p = {0};
    int rc = pt_parse(&p.o, prog->kind, argc, argv);
    if (rc)
        return rc == 1 ? 0 : 2;
    rc = pt_setup(&p);
    if (!rc) {
        pt_print_banner(&p, prog->title);
        rc = p.is_server ? run_server(&p, prog) : prog->run_client(&p);
    }
    pt_teardown(&p);
    return rc ? 1 : 0;
}
