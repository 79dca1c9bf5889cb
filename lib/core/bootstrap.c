#include "core/bootstrap.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"

#define RL_BOOT_GRACE_NS 1000000000LL

struct rl_boot {
    int rank, nranks;
    int fd;       /* non-root: socket to rank 0 */
    int *fds;     /* root: socket per rank, -1 when gone */
    int *bye;     /* root: rank left normally */
    void **early; /* root: a rank's all-gather contribution that came
                     while rank 0 was still busy with an operation */
    uint32_t *early_len;
    rl_status_t failed;
    char failmsg[256];
    uint16_t version; /* spoken on the wire */
    int have_key;
    rl_auth_key_t key;
    const uint64_t *seq;   /* collectives this rank has started (rl_boot_watch) */
    uint64_t root_leave;   /* non-root: rank 0 left after this many, else UINT64_MAX */
    uint64_t min_leave;    /* root: fewest collectives of a rank that left */
    int min_leave_rank;
    int probing;           /* root: a liveness probe is out */
    int heard;             /* non-root: messages read from rank 0 */
    int64_t last_probe;    /* non-root: when rank 0 last probed us */
    int64_t probe_dl;
    char *reported;        /* root: answered the probe */
    uint64_t *rep_seq;     /* root: collectives each has started */
    int *rep_wait;         /* root: the rank each one's expired wait waited on, -1 */
    int waits_on;          /* this rank's expired wait waited on it, -1 */
    int (*wait_fn)(void *); /* else what it waits on now (rl_boot_wait_source) */
    void *wait_arg;
    struct pollfd *pfd;    /* root: one per rank */
};

/* ---- wire encoding (explicit little-endian, validated on decode) ---- */

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void rl_boot_hdr_encode(const rl_boot_hdr_t *h, uint8_t out[16])
{
    put32(out, h->magic);
    put32(out + 4, (uint32_t)h->version | (uint32_t)h->type << 16);
    put32(out + 8, (uint32_t)h->rank);
    put32(out + 12, h->len);
}

rl_status_t rl_boot_hdr_decode(const uint8_t in[16], int nranks, uint32_t max_len, rl_boot_hdr_t *h,
                               char *err, size_t errlen)
{
    rl_boot_hdr_t d;
    d.magic = get32(in);
    uint32_t vt = get32(in + 4);
    d.version = (uint16_t)vt;
    d.type = (uint16_t)(vt >> 16);
    d.rank = (int32_t)get32(in + 8);
    d.len = get32(in + 12);
    if (d.magic != RL_BOOT_MAGIC) {
        snprintf(err, errlen, "bootstrap: bad magic 0x%08x (not a ringlet peer)", d.magic);
        return RL_ERR_PROTOCOL;
    }
    if (d.type < 1 || d.type > RL_BOOT_TYPE_MAX) {
        snprintf(err, errlen, "bootstrap: unknown message type %u", d.type);
        return RL_ERR_PROTOCOL;
    }
    if (d.len > max_len) {
        snprintf(err, errlen, "bootstrap: message of %u bytes exceeds the limit %u", d.len, max_len);
        return RL_ERR_PROTOCOL;
    }
    if (d.rank < -1 || d.rank >= nranks) {
        snprintf(err, errlen, "bootstrap: rank %d out of range [0, %d)", d.rank, nranks);
        return RL_ERR_PROTOCOL;
    }
    *h = d;
    return RL_OK;
}

rl_status_t rl_boot_status_decode(const void *buf, size_t len, rl_boot_status_msg_t *m)
{
    if (len != sizeof(*m))
        return RL_ERR_PROTOCOL;
    const uint8_t *p = buf;
    m->status = (int32_t)get32(p);
    m->rank = (int32_t)get32(p + 4);
    memcpy(m->msg, p + 8, sizeof(m->msg));
    m->msg[sizeof(m->msg) - 1] = '\0';
    if (m->status > 1 || m->status < -64)
        return RL_ERR_PROTOCOL;
    return RL_OK;
}

rl_status_t rl_boot_hello_decode(const void *buf, size_t len, rl_boot_hello_t *m)
{
    if (len != sizeof(*m))
        return RL_ERR_PROTOCOL;
    const uint8_t *p = buf;
    m->nranks = get32(p);
    m->protocol = get32(p + 4);
    if (m->nranks < 1 || m->nranks > (1u << 20))
        return RL_ERR_PROTOCOL;
    return RL_OK;
}

size_t rl_boot_auth_len(int type)
{
    switch (type) {
    case RL_BOOT_AUTH_CHALLENGE: return RL_AUTH_NONCE_BYTES;
    case RL_BOOT_AUTH_RESPONSE: return RL_AUTH_NONCE_BYTES + RL_AUTH_MAC_BYTES;
    case RL_BOOT_AUTH_PROOF: return RL_AUTH_MAC_BYTES;
    default: return 0;
    }
}

rl_status_t rl_boot_auth_decode(int type, const void *buf, size_t len, rl_boot_auth_msg_t *m)
{
    size_t want = rl_boot_auth_len(type);
    if (!want || len != want)
        return RL_ERR_PROTOCOL;
    const uint8_t *p = buf;
    memset(m, 0, sizeof(*m));
    if (type != RL_BOOT_AUTH_PROOF) {
        memcpy(m->nonce, p, RL_AUTH_NONCE_BYTES);
        p += RL_AUTH_NONCE_BYTES;
    }
    if (type != RL_BOOT_AUTH_CHALLENGE)
        memcpy(m->mac, p, RL_AUTH_MAC_BYTES);
    return RL_OK;
}

static void status_encode(const rl_boot_status_msg_t *m, uint8_t *p)
{
    put32(p, (uint32_t)m->status);
    put32(p + 4, (uint32_t)m->rank);
    memcpy(p + 8, m->msg, sizeof(m->msg));
}

/* ---- socket I/O with deadlines ----
 * Every socket is non-blocking: a peer that stops reading (or a black-holed
 * address) costs at most the deadline, never what the kernel decides. */

static rl_status_t io_full(int fd, void *buf, size_t len, int64_t deadline, int writing)
{
    char *p = buf;
    while (len) {
        ssize_t n = writing ? send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT) : recv(fd, p, len, MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == 0 && !writing)
            return RL_ERR_PEER_FAILED; /* EOF: the other side is gone */
        if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return RL_ERR_PEER_FAILED; /* reset */
        struct pollfd pfd = {.fd = fd, .events = writing ? POLLOUT : POLLIN};
        int pr = poll(&pfd, 1, rl_ms_left(deadline));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0)
            return RL_ERR_TIMEOUT;
        if (pr < 0)
            return RL_ERR_BOOTSTRAP;
    }
    return RL_OK;
}

static rl_status_t send_msg_v(int fd, uint16_t version, int type, int rank, const void *payload, uint32_t len,
                              int64_t deadline)
{
    rl_boot_hdr_t h = {RL_BOOT_MAGIC, version, (uint16_t)type, rank, len};
    uint8_t hdr[16];
    rl_boot_hdr_encode(&h, hdr);
    rl_status_t st = io_full(fd, hdr, sizeof(hdr), deadline, 1);
    if (st == RL_OK && len)
        st = io_full(fd, (void *)payload, len, deadline, 1);
    return st;
}

static rl_status_t send_msg(int fd, int type, int rank, const void *payload, uint32_t len, int64_t deadline)
{
    return send_msg_v(fd, RL_PROTOCOL_VERSION, type, rank, payload, len, deadline);
}

static rl_status_t send_status(int fd, int type, rl_status_t status, int rank, const char *msg, int64_t deadline)
{
    rl_boot_status_msg_t m = {.status = status, .rank = rank};
    snprintf(m.msg, sizeof(m.msg), "%s", msg ? msg : "");
    uint8_t buf[sizeof(m)];
    status_encode(&m, buf);
    return send_msg(fd, type, rank, buf, sizeof(buf), deadline);
}

static rl_status_t send_u64(int fd, int type, int rank, uint64_t v, int64_t deadline)
{
    uint8_t buf[8];
    put32(buf, (uint32_t)v);
    put32(buf + 4, (uint32_t)(v >> 32));
    return send_msg(fd, type, rank, buf, sizeof(buf), deadline);
}

static uint64_t my_seq(const rl_boot_t *b);

static int waiting_on(const rl_boot_t *b)
{
    int w = b->waits_on >= 0 ? b->waits_on : b->wait_fn ? b->wait_fn(b->wait_arg) : -1;
    return w >= 0 && w < b->nranks ? w : -1;
}

/* A report: collectives started, and the rank an expired wait waited on
 * (-1: none, or not known). */
static rl_status_t send_report(rl_boot_t *b, int64_t deadline)
{
    uint8_t buf[12];
    uint64_t v = my_seq(b);
    put32(buf, (uint32_t)v);
    put32(buf + 4, (uint32_t)(v >> 32));
    put32(buf + 8, (uint32_t)(waiting_on(b) + 1));
    return send_msg(b->fd, RL_BOOT_REPORT, b->rank, buf, sizeof(buf), deadline);
}

/* Untrusted: a wait on a rank outside the group counts as none. */
static int get_report(const rl_boot_t *b, const void *pl, uint32_t len, uint64_t *seq, int *waits_on)
{
    if (len != 12)
        return -1;
    const uint8_t *p = pl;
    *seq = (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
    uint32_t w = get32(p + 8);
    *waits_on = w >= 1 && w <= (uint32_t)b->nranks ? (int)w - 1 : -1;
    return 0;
}

static int get_u64(const void *pl, uint32_t len, uint64_t *v)
{
    if (len != 8)
        return -1;
    const uint8_t *p = pl;
    *v = (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
    return 0;
}

/* Read one message; *payload is malloc'ed (NULL when empty). */
static rl_status_t recv_msg(int fd, int nranks, uint32_t max_len, rl_boot_hdr_t *h, void **payload,
                            int64_t deadline, char *err, size_t errlen)
{
    uint8_t hdr[16];
    *payload = NULL;
    rl_status_t st = io_full(fd, hdr, sizeof(hdr), deadline, 0);
    if (st != RL_OK) {
        snprintf(err, errlen, "%s", st == RL_ERR_TIMEOUT ? "timed out reading a bootstrap message"
                                                         : "connection closed");
        return st;
    }
    if ((st = rl_boot_hdr_decode(hdr, nranks, max_len, h, err, errlen)) != RL_OK)
        return st;
    if (h->len) {
        *payload = malloc(h->len);
        if (!*payload)
            return RL_ERR_NO_MEMORY;
        if ((st = io_full(fd, *payload, h->len, deadline, 0)) != RL_OK) {
            free(*payload);
            *payload = NULL;
            snprintf(err, errlen, st == RL_ERR_TIMEOUT ? "timed out inside a bootstrap message"
                                                       : "connection closed inside a message");
            return st;
        }
    }
    return RL_OK;
}

static int split_addr(const char *addr, char *host, size_t hlen, char *port, size_t plen)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || !colon[1])
        return -1;
    size_t n = (size_t)(colon - addr);
    if (addr[0] == '[' && n >= 2 && addr[n - 1] == ']') {
        addr++;
        n -= 2;
    }
    if (n >= hlen || strlen(colon + 1) >= plen)
        return -1;
    memcpy(host, addr, n);
    host[n] = '\0';
    snprintf(port, plen, "%s", colon + 1);
    return 0;
}

/* getaddrinfo would take "99999" modulo 65536 and "0" as "any port": the
 * first reaches a stranger's port, the second one nobody can know. */
static rl_status_t check_port(const char *addr, const char *port, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    long v = strtol(port, &end, 10);
    if (errno || end == port || *end || port[0] == '-' || port[0] == '+' || v < 1 || v > 65535) {
        snprintf(err, errlen,
                 "bootstrap address \"%s\": port \"%s\" is not a number in 1..65535 (0 would bind a random "
                 "port the other ranks cannot know; set RINGLET_ADDR=host:port)",
                 addr, port);
        return RL_ERR_CONFIG;
    }
    return RL_OK;
}

static void tune_socket(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---- rank 0 ---- */

static rl_status_t root_listen(const char *host, const char *port, int *out, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc) {
        snprintf(err, errlen, "cannot resolve %s:%s: %s", host, port, gai_strerror(rc));
        return RL_ERR_BOOTSTRAP;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "rank 0 cannot listen on %s:%s: %s", host, port, strerror(saved));
        return RL_ERR_BOOTSTRAP;
    }
    *out = fd;
    return RL_OK;
}

static void peer_name(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host));
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
    }
    snprintf(buf, len, "%s port %d", host, port);
}

/*
 * Admission. Every connection is a pending joiner until it has said hello
 * (and, with a key, proven it holds the key); all pending joiners are served
 * at once by one poll loop, each with its own short deadline, and at most
 * RL_BOOT_MAX_PENDING of them are held: when full, the oldest is dropped
 * (a real joiner speaks within a round trip and retries when dropped), so
 * idle or flooding connections cannot keep the real ranks out.
 *
 * A hello that is malformed, from another protocol or for another group size
 * is refused and the group goes on (a stranger). A claim to a rank that
 * fails authentication, or a second claim to a rank already admitted, ends
 * the formation at once with the cause sent to every rank that joined: it is
 * a misconfigured member (or an attacker) and waiting out the deadline would
 * only hide why. Refusals never tell the peer the group's size.
 */
#define RL_BOOT_HELLO_NS 3000000000LL
#define RL_BOOT_MAX_PENDING 128
#define RL_BOOT_WHO 56

typedef struct {
    int fd;
    int authing; /* challenge sent, waiting for the response */
    int rank;
    uint32_t claimed; /* group size the joiner was started with */
    int64_t dl;
    size_t got;
    rl_boot_hdr_t h;
    uint8_t buf[16 + sizeof(rl_boot_status_msg_t)];
    rl_auth_ctx_t ctx;
    char who[RL_BOOT_WHO];
} pend_t;

typedef struct {
    pend_t *p;
    int n;
    int need, silent, evicted, refused;
    char (*who)[RL_BOOT_WHO]; /* where each admitted rank came from */
} admit_t;

enum { P_KEEP, P_DROP, P_ADMITTED, P_FATAL };

static int64_t short_dl(void) { return rl_now_ns() + 200000000LL; }

/* Refuse a stranger: it learns why, never the group's size. */
static int refuse(const pend_t *p, rl_status_t st, const char *to_peer, const char *logged)
{
    RL_WARN("bootstrap: refused a connection from %s: %s", p->who, logged);
    send_status(p->fd, RL_BOOT_HELLO_ACK, st, p->h.rank, to_peer, short_dl());
    return P_DROP;
}

/* A claim that ends the formation: tell the claimant, set the cause. */
static int fatal(const pend_t *p, rl_status_t st, const char *why, rl_status_t *out, char *err, size_t errlen)
{
    RL_ERROR("bootstrap: refused a connection from %s: %s", p->who, why);
    send_status(p->fd, RL_BOOT_HELLO_ACK, st, p->rank, why, short_dl());
    snprintf(err, errlen, "%s", why);
    *out = st;
    return P_FATAL;
}

static int admit(rl_boot_t *b, admit_t *a, pend_t *p, rl_status_t *out, char *err, size_t errlen)
{
    char why[RL_BOOT_MSG_MAX];
    if (b->fds[p->rank] >= 0) {
        snprintf(why, sizeof(why),
                 "rank %d joined twice (from %s and from %s): two processes claim the same rank%s", p->rank,
                 a->who[p->rank], p->who, b->have_key ? "" : "; without RINGLET_AUTH_KEY anyone can claim one");
        return fatal(p, RL_ERR_BOOTSTRAP, why, out, err, errlen);
    }
    if (send_status(p->fd, RL_BOOT_HELLO_ACK, RL_OK, p->rank, "", short_dl()) != RL_OK)
        return P_DROP;
    b->fds[p->rank] = p->fd;
    snprintf(a->who[p->rank], RL_BOOT_WHO, "%s", p->who);
    a->need--;
    return P_ADMITTED;
}

static int on_hello(rl_boot_t *b, admit_t *a, pend_t *p, const void *pl, rl_status_t *out, char *err,
                    size_t errlen)
{
    rl_boot_hello_t hello;
    char why[RL_BOOT_MSG_MAX];
    if (p->h.type != RL_BOOT_HELLO) {
        snprintf(why, sizeof(why), "expected a hello, got message type %u", p->h.type);
        return refuse(p, RL_ERR_PROTOCOL, why, why);
    }
    if (p->h.version != RL_PROTOCOL_VERSION) {
        snprintf(why, sizeof(why), "rank %d speaks ringlet protocol %u, rank 0 speaks %u", p->h.rank, p->h.version,
                 RL_PROTOCOL_VERSION);
        return refuse(p, RL_ERR_VERSION, why, why);
    }
    if (rl_boot_hello_decode(pl, p->h.len, &hello) != RL_OK || p->h.rank < 1) {
        snprintf(why, sizeof(why), "malformed hello (rank %d, %u bytes)", p->h.rank, p->h.len);
        return refuse(p, RL_ERR_PROTOCOL, why, why);
    }
    p->rank = p->h.rank;
    p->claimed = hello.nranks;
    if (b->have_key) {
        /* The MAC binds the size the joiner claims: a member started with
         * another size is told so once it has proven itself. */
        p->ctx = (rl_auth_ctx_t){.rank = p->rank, .nranks = (int32_t)p->claimed, .version = RL_PROTOCOL_VERSION};
        rl_auth_nonce(p->ctx.root_nonce);
        if (send_msg(p->fd, RL_BOOT_AUTH_CHALLENGE, 0, p->ctx.root_nonce, RL_AUTH_NONCE_BYTES, short_dl()) != RL_OK)
            return P_DROP;
        p->authing = 1;
        return P_KEEP;
    }
    if (p->claimed != (uint32_t)b->nranks) {
        char logged[RL_BOOT_MSG_MAX];
        snprintf(logged, sizeof(logged), "rank %d believes the group has %u ranks, rank 0 has %d", p->rank,
                 p->claimed, b->nranks);
        snprintf(why, sizeof(why), "rank %d was started for a group of %u ranks, which is not rank 0's", p->rank,
                 p->claimed);
        return refuse(p, RL_ERR_MISMATCH, why, logged);
    }
    return admit(b, a, p, out, err, errlen);
}

static int on_auth(rl_boot_t *b, admit_t *a, pend_t *p, const void *pl, rl_status_t *out, char *err,
                   size_t errlen)
{
    char why[RL_BOOT_MSG_MAX];
    rl_boot_status_msg_t sm;
    rl_boot_auth_msg_t m;
    if (p->h.type == RL_BOOT_ABORT && rl_boot_status_decode(pl, p->h.len, &sm) == RL_OK) {
        snprintf(why, sizeof(why), "rank %d (from %s) was refused: it has no RINGLET_AUTH_KEY, rank 0 has one",
                 p->rank, p->who);
        return fatal(p, RL_ERR_AUTH, why, out, err, errlen);
    }
    if (p->h.type != RL_BOOT_AUTH_RESPONSE || rl_boot_auth_decode(p->h.type, pl, p->h.len, &m) != RL_OK) {
        snprintf(why, sizeof(why), "rank %d did not answer the authentication challenge", p->rank);
        return refuse(p, RL_ERR_AUTH, why, why);
    }
    memcpy(p->ctx.rank_nonce, m.nonce, RL_AUTH_NONCE_BYTES);
    if (!rl_auth_verify(&b->key, RL_AUTH_RANK, &p->ctx, m.mac)) {
        snprintf(why, sizeof(why),
                 "rank %d (from %s) was refused: wrong key (it holds a different RINGLET_AUTH_KEY)", p->rank, p->who);
        return fatal(p, RL_ERR_AUTH, why, out, err, errlen);
    }
    uint8_t mac[RL_AUTH_MAC_BYTES];
    rl_auth_mac(&b->key, RL_AUTH_ROOT, &p->ctx, mac);
    if (send_msg(p->fd, RL_BOOT_AUTH_PROOF, 0, mac, sizeof(mac), short_dl()) != RL_OK)
        return P_DROP;
    if (p->claimed != (uint32_t)b->nranks) {
        snprintf(why, sizeof(why), "rank %d believes the group has %u ranks, rank 0 has %d", p->rank, p->claimed,
                 b->nranks);
        return fatal(p, RL_ERR_MISMATCH, why, out, err, errlen);
    }
    return admit(b, a, p, out, err, errlen);
}

/* Read what a pending joiner sent; act on a complete message. */
static int pend_read(rl_boot_t *b, admit_t *a, pend_t *p, rl_status_t *out, char *err, size_t errlen)
{
    size_t want = p->got < 16 ? 16 : 16 + p->h.len;
    ssize_t n = recv(p->fd, p->buf + p->got, want - p->got, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return P_KEEP;
    if (n <= 0) {
        if (p->authing)
            RL_WARN("bootstrap: %s (claiming rank %d) left during authentication", p->who, p->rank);
        return P_DROP;
    }
    p->got += (size_t)n;
    if (p->got == 16) {
        char why[RL_BOOT_MSG_MAX];
        rl_status_t st = rl_boot_hdr_decode(p->buf, b->nranks, sizeof(rl_boot_status_msg_t), &p->h, why, sizeof(why));
        if (st != RL_OK) {
            p->h.rank = -1;
            /* the decoder's words may give the group size away: log them only */
            return refuse(p, st, st == RL_ERR_VERSION ? "other protocol version" : "malformed bootstrap message", why);
        }
    }
    if (p->got < 16 || p->got < 16 + p->h.len)
        return P_KEEP;
    p->got = 0;
    a->refused++;
    int r = p->authing ? on_auth(b, a, p, p->buf + 16, out, err, errlen)
                       : on_hello(b, a, p, p->buf + 16, out, err, errlen);
    if (r != P_DROP)
        a->refused--;
    return r;
}

static void pend_remove(admit_t *a, int i, int close_it)
{
    if (close_it)
        close(a->p[i].fd);
    a->p[i] = a->p[--a->n];
}

static void pend_add(admit_t *a, int fd)
{
    if (a->n == RL_BOOT_MAX_PENDING) {
        int oldest = 0;
        for (int i = 1; i < a->n; i++)
            if (a->p[i].dl < a->p[oldest].dl)
                oldest = i;
        pend_remove(a, oldest, 1);
        a->evicted++;
    }
    pend_t *p = &a->p[a->n++];
    memset(p, 0, sizeof(*p));
    p->fd = fd;
    p->rank = -1;
    p->dl = rl_now_ns() + RL_BOOT_HELLO_NS;
    tune_socket(fd);
    peer_name(fd, p->who, sizeof(p->who));
}

static void missing_ranks(const rl_boot_t *b, const admit_t *a, char *err, size_t errlen)
{
    int pos = snprintf(err, errlen, "bootstrap deadline expired: rank 0 still waits for rank(s)");
    for (int r = 1, shown = 0; r < b->nranks && shown < 16 && pos < (int)errlen; r++) {
        if (b->fds[r] < 0) {
            pos += snprintf(err + pos, errlen - (size_t)pos, " %d", r);
            shown++;
        }
    }
    if (pos < (int)errlen && (a->silent || a->evicted || a->refused))
        snprintf(err + pos, errlen - (size_t)pos,
                 " (meanwhile %d connection(s) said nothing, %d were dropped to make room, %d were refused)",
                 a->silent, a->evicted, a->refused);
}

static rl_status_t root_accept_all(rl_boot_t *b, int lfd, int64_t deadline, char *err, size_t errlen)
{
    admit_t a = {.need = b->nranks - 1};
    a.p = calloc(RL_BOOT_MAX_PENDING, sizeof(*a.p));
    a.who = calloc((size_t)b->nranks, sizeof(*a.who));
    struct pollfd *pfd = calloc(RL_BOOT_MAX_PENDING + 1, sizeof(*pfd));
    rl_status_t st = a.p && a.who && pfd ? RL_OK : RL_ERR_NO_MEMORY;
    while (st == RL_OK && a.need > 0) {
        int64_t now = rl_now_ns(), wake = deadline;
        for (int i = a.n - 1; i >= 0; i--) {
            if (a.p[i].dl <= now) {
                RL_INFO("bootstrap: dropped %s: no hello within %lld ms", a.p[i].who, RL_BOOT_HELLO_NS / 1000000);
                pend_remove(&a, i, 1);
                a.silent++;
            } else if (a.p[i].dl < wake) {
                wake = a.p[i].dl;
            }
        }
        if (now >= deadline) {
            missing_ranks(b, &a, err, errlen);
            st = RL_ERR_TIMEOUT;
            break;
        }
        pfd[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (int i = 0; i < a.n; i++)
            pfd[i + 1] = (struct pollfd){.fd = a.p[i].fd, .events = POLLIN};
        int pr = poll(pfd, (nfds_t)a.n + 1, rl_ms_left(wake));
        if (pr <= 0)
            continue;
        /* Downwards, so that removing (swap with the last) skips nothing. */
        for (int i = a.n - 1; i >= 0 && st == RL_OK; i--) {
            if (!pfd[i + 1].revents)
                continue;
            int r = pend_read(b, &a, &a.p[i], &st, err, errlen);
            if (r != P_KEEP)
                pend_remove(&a, i, r != P_ADMITTED);
        }
        for (int k = 0; st == RL_OK && (pfd[0].revents & POLLIN) && k < 64; k++) {
            int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd < 0)
                break;
            pend_add(&a, fd);
        }
    }
    for (int i = 0; a.p && i < a.n; i++) {
        /* a joiner that said hello hears why, at once (a refusal names
         * no secret; who is still missing is told only to the proven) */
        if (st != RL_OK && a.p[i].rank >= 0 && (!a.p[i].authing || st != RL_ERR_TIMEOUT))
            send_status(a.p[i].fd, RL_BOOT_HELLO_ACK, st, a.p[i].rank, err, short_dl());
        close(a.p[i].fd);
    }
    free(a.p);
    free(a.who);
    free(pfd);
    return st;
}

/* ---- other ranks ---- */

/* One connection attempt, bounded by the deadline (a black-holed address
 * never answers; the kernel alone would retry SYNs for minutes). */
static int connect_one(const struct addrinfo *ai, int64_t deadline, int *err_out)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        *err_out = errno;
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return fd;
    if (errno != EINPROGRESS) {
        *err_out = errno;
        close(fd);
        return -1;
    }
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int pr;
    do
        pr = poll(&p, 1, rl_ms_left(deadline));
    while (pr < 0 && errno == EINTR);
    int e = 0;
    socklen_t l = sizeof(e);
    if (pr > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) == 0 && e == 0)
        return fd;
    *err_out = pr == 0 ? ETIMEDOUT : pr < 0 ? errno : e;
    close(fd);
    return -1;
}

static rl_status_t rank_connect(rl_boot_t *b, const char *host, const char *port, int64_t deadline,
                                char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int last = 0;
    while (rl_now_ns() < deadline) {
        struct addrinfo *res = NULL;
        int rc = getaddrinfo(host, port, &hints, &res);
        if (rc) {
            snprintf(err, errlen, "cannot resolve %s:%s: %s", host, port, gai_strerror(rc));
            return RL_ERR_BOOTSTRAP;
        }
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            int fd = connect_one(ai, deadline, &last);
            if (fd >= 0) {
                freeaddrinfo(res);
                tune_socket(fd);
                b->fd = fd;
                return RL_OK;
            }
        }
        freeaddrinfo(res);
        usleep(50000); /* rank 0 may not be listening yet */
    }
    if (last == ETIMEDOUT)
        snprintf(err, errlen,
                 "cannot reach rank 0 at %s:%s: no answer to the connection attempt within the deadline "
                 "(RINGLET_TIMEOUT_MS): the address is unreachable or its packets are dropped",
                 host, port);
    else
        snprintf(err, errlen, "cannot reach rank 0 at %s:%s before the deadline: %s", host, port,
                 last ? strerror(last) : "timed out");
    return RL_ERR_TIMEOUT;
}

/* Answer rank 0's challenge and check its proof. */
static rl_status_t rank_auth(rl_boot_t *b, const void *challenge, uint32_t clen, int64_t deadline, char *err,
                             size_t errlen)
{
    rl_boot_auth_msg_t m;
    rl_auth_ctx_t ctx = {.rank = b->rank, .nranks = b->nranks, .version = RL_PROTOCOL_VERSION};
    if (!b->have_key) {
        /* Say so: rank 0 then tells the group why it cannot form. */
        send_status(b->fd, RL_BOOT_ABORT, RL_ERR_AUTH, b->rank, "no RINGLET_AUTH_KEY", short_dl());
        snprintf(err, errlen, "rank 0 requires authentication: set RINGLET_AUTH_KEY or RINGLET_AUTH_KEY_FILE");
        return RL_ERR_AUTH;
    }
    if (rl_boot_auth_decode(RL_BOOT_AUTH_CHALLENGE, challenge, clen, &m) != RL_OK) {
        snprintf(err, errlen, "rank 0 sent a malformed authentication challenge");
        return RL_ERR_PROTOCOL;
    }
    memcpy(ctx.root_nonce, m.nonce, RL_AUTH_NONCE_BYTES);
    rl_auth_nonce(ctx.rank_nonce);
    uint8_t resp[RL_AUTH_NONCE_BYTES + RL_AUTH_MAC_BYTES];
    memcpy(resp, ctx.rank_nonce, RL_AUTH_NONCE_BYTES);
    rl_auth_mac(&b->key, RL_AUTH_RANK, &ctx, resp + RL_AUTH_NONCE_BYTES);
    if (send_msg(b->fd, RL_BOOT_AUTH_RESPONSE, b->rank, resp, sizeof(resp), deadline) != RL_OK) {
        snprintf(err, errlen, "rank 0 closed the connection during authentication");
        return RL_ERR_BOOTSTRAP;
    }
    rl_boot_hdr_t h;
    void *pl = NULL;
    rl_status_t st = recv_msg(b->fd, b->nranks, sizeof(rl_boot_status_msg_t), &h, &pl, deadline, err, errlen);
    if (st != RL_OK) {
        if (st == RL_ERR_PEER_FAILED)
            snprintf(err, errlen, "rank 0 closed the connection during authentication");
        return st == RL_ERR_PEER_FAILED ? RL_ERR_BOOTSTRAP : st;
    }
    rl_boot_status_msg_t sm;
    if (h.type == RL_BOOT_HELLO_ACK && rl_boot_status_decode(pl, h.len, &sm) == RL_OK && sm.status != RL_OK) {
        snprintf(err, errlen, "rank 0 refused rank %d: %s", b->rank, sm.msg);
        st = (rl_status_t)sm.status;
    } else if (h.type != RL_BOOT_AUTH_PROOF || rl_boot_auth_decode(h.type, pl, h.len, &m) != RL_OK) {
        snprintf(err, errlen, "rank 0 answered the authentication with a malformed message");
        st = RL_ERR_PROTOCOL;
    } else if (!rl_auth_verify(&b->key, RL_AUTH_ROOT, &ctx, m.mac)) {
        snprintf(err, errlen, "rank 0 failed authentication (it holds a different RINGLET_AUTH_KEY): not joining");
        st = RL_ERR_AUTH;
    }
    free(pl);
    return st;
}

/* Say hello and wait for the answer. *retry: rank 0 closed without a word
 * (it dropped us to make room, or is restarting): connect again. */
static rl_status_t rank_hello(rl_boot_t *b, int64_t deadline, int *retry, char *err, size_t errlen)
{
    uint8_t hello[sizeof(rl_boot_hello_t)];
    put32(hello, (uint32_t)b->nranks);
    put32(hello + 4, b->version);
    *retry = 0;
    rl_status_t st = send_msg_v(b->fd, b->version, RL_BOOT_HELLO, b->rank, hello, sizeof(hello), deadline);
    if (st != RL_OK) {
        snprintf(err, errlen, "sending hello to rank 0 failed");
        *retry = st == RL_ERR_PEER_FAILED;
        return RL_ERR_BOOTSTRAP;
    }
    int authed = 0;
    for (;;) {
        rl_boot_hdr_t h;
        void *pl = NULL;
        st = recv_msg(b->fd, b->nranks, sizeof(rl_boot_status_msg_t), &h, &pl, deadline, err, errlen);
        if (st != RL_OK) {
            if (st == RL_ERR_PEER_FAILED) {
                snprintf(err, errlen, "rank 0 closed the connection during hello");
                *retry = !authed;
            }
            return st == RL_ERR_PEER_FAILED ? RL_ERR_BOOTSTRAP : st;
        }
        if (h.type == RL_BOOT_AUTH_CHALLENGE && !authed) {
            st = rank_auth(b, pl, h.len, deadline, err, errlen);
            free(pl);
            if (st != RL_OK)
                return st;
            authed = 1;
            continue;
        }
        rl_boot_status_msg_t m;
        if (h.type != RL_BOOT_HELLO_ACK || rl_boot_status_decode(pl, h.len, &m) != RL_OK) {
            free(pl);
            snprintf(err, errlen, "rank 0 answered hello with a malformed message");
            return RL_ERR_PROTOCOL;
        }
        free(pl);
        if (m.status != RL_OK) {
            snprintf(err, errlen, "rank 0 refused rank %d: %s", b->rank, m.msg);
            return (rl_status_t)m.status;
        }
        if (h.version != b->version) {
            snprintf(err, errlen, "rank 0 speaks protocol %u, this rank %u", h.version, b->version);
            return RL_ERR_VERSION;
        }
        if (b->have_key && !authed) {
            snprintf(err, errlen, "rank 0 did not authenticate itself (it has no RINGLET_AUTH_KEY): not joining");
            return RL_ERR_AUTH;
        }
        return RL_OK;
    }
}

static rl_status_t rank_join(rl_boot_t *b, const char *host, const char *port, int64_t deadline, char *err,
                             size_t errlen)
{
    for (;;) {
        rl_status_t st = rank_connect(b, host, port, deadline, err, errlen);
        if (st != RL_OK)
            return st;
        int retry = 0;
        st = rank_hello(b, deadline, &retry, err, errlen);
        if (st == RL_OK || !retry || rl_now_ns() + 100000000LL >= deadline)
            return st;
        close(b->fd);
        b->fd = -1;
        usleep(20000);
    }
}

rl_status_t rl_boot_create(int rank, int nranks, const char *addr, int64_t deadline, rl_boot_t **out,
                           char *err, size_t errlen)
{
    return rl_boot_create_opts(rank, nranks, addr, NULL, deadline, out, err, errlen);
}

/* Rank 0 gave up on forming the group: tell the ranks that did join why,
 * so their error names the real cause (e.g. the rank that never came). */
static void root_abort_joined(rl_boot_t *b, rl_status_t st, const char *msg)
{
    int64_t dl = rl_deadline_ms(500);
    for (int r = 1; b->fds && r < b->nranks; r++)
        if (b->fds[r] >= 0)
            send_status(b->fds[r], RL_BOOT_ABORT, st, 0, msg, dl);
}

rl_status_t rl_boot_create_opts(int rank, int nranks, const char *addr, const rl_boot_opts_t *opts,
                                int64_t deadline, rl_boot_t **out, char *err, size_t errlen)
{
    if (nranks < 1 || rank < 0 || rank >= nranks) {
        snprintf(err, errlen, "rank %d out of range for a group of %d", rank, nranks);
        return RL_ERR_INVALID_ARG;
    }
    rl_boot_t *b = calloc(1, sizeof(*b));
    if (b)
        b->waits_on = -1;
    if (!b)
        return RL_ERR_NO_MEMORY;
    b->rank = rank;
    b->nranks = nranks;
    b->fd = -1;
    b->root_leave = UINT64_MAX;
    b->min_leave = UINT64_MAX;
    b->version = opts && opts->version ? opts->version : RL_PROTOCOL_VERSION;
    if (opts && opts->key) {
        b->key = *opts->key;
        b->have_key = 1;
    }
    int lfd = opts && opts->have_listen_fd ? opts->listen_fd : -1;
    if (nranks == 1 || rank != 0) {
        if (lfd >= 0)
            close(lfd);
        lfd = -1;
    }
    if (nranks == 1) {
        *out = b;
        return RL_OK;
    }
    char host[256], port[32];
    if (!addr || split_addr(addr, host, sizeof(host), port, sizeof(port))) {
        snprintf(err, errlen, "bootstrap address \"%s\" is not host:port (set RINGLET_ADDR)", addr ? addr : "");
        if (lfd >= 0)
            close(lfd);
        free(b);
        return RL_ERR_CONFIG;
    }
    rl_status_t st = check_port(addr, port, err, errlen);
    if (st != RL_OK) {
        if (lfd >= 0)
            close(lfd);
        free(b);
        return st;
    }
    if (rank == 0) {
        b->fds = malloc(sizeof(int) * (size_t)nranks);
        b->bye = calloc((size_t)nranks, sizeof(int));
        b->early = calloc((size_t)nranks, sizeof(void *));
        b->early_len = calloc((size_t)nranks, sizeof(uint32_t));
        b->reported = calloc((size_t)nranks, 1);
        b->rep_seq = calloc((size_t)nranks, sizeof(uint64_t));
        b->rep_wait = malloc(sizeof(int) * (size_t)nranks);
        b->pfd = calloc((size_t)nranks, sizeof(struct pollfd));
        if (!b->fds || !b->bye || !b->early || !b->early_len || !b->reported || !b->rep_seq || !b->rep_wait ||
            !b->pfd) {
            st = RL_ERR_NO_MEMORY;
            if (lfd >= 0)
                close(lfd);
            goto fail;
        }
        for (int i = 0; i < nranks; i++)
            b->fds[i] = -1;
        if (lfd < 0 && (st = root_listen(host, port, &lfd, err, errlen)) != RL_OK)
            goto fail;
        st = root_accept_all(b, lfd, deadline, err, errlen);
        close(lfd);
        if (st != RL_OK)
            root_abort_joined(b, st, err);
    } else {
        st = rank_join(b, host, port, deadline, err, errlen);
    }
    if (st != RL_OK)
        goto fail;
    *out = b;
    return RL_OK;
fail:
    rl_boot_destroy(b, 0);
    return st;
}

rl_status_t rl_boot_listen_child(rl_boot_t *b, int *fd, char *addr, size_t addrlen, char *err, size_t errlen)
{
    /* the local end of a socket of this group is an address peers reach */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int via = b->rank ? b->fd : -1;
    for (int r = 1; b->rank == 0 && b->fds && r < b->nranks && via < 0; r++)
        via = b->fds[r];
    if (via < 0 || getsockname(via, (struct sockaddr *)&ss, &sl) != 0) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        memset(&ss, 0, sizeof(ss));
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sl = sizeof(*in);
    }
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = 0;
    else if (ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = 0;
    int s = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0); /* as root_listen's */
    char ip[INET6_ADDRSTRLEN] = "?";
    void *a = ss.ss_family == AF_INET6 ? (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                                       : (void *)&((struct sockaddr_in *)&ss)->sin_addr;
    inet_ntop(ss.ss_family, a, ip, sizeof(ip));
    if (s < 0 || bind(s, (struct sockaddr *)&ss, sl) != 0 || listen(s, 1024) != 0 ||
        getsockname(s, (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(err, errlen, "rank %d cannot listen on %s for a sub-group: %s", b->rank, ip, strerror(errno));
        if (s >= 0)
            close(s);
        return RL_ERR_BOOTSTRAP;
    }
    int port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    snprintf(addr, addrlen, ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, port);
    *fd = s;
    return RL_OK;
}

void rl_boot_watch(rl_boot_t *b, const uint64_t *ops_started)
{
    if (b)
        b->seq = ops_started;
}

static uint64_t my_seq(const rl_boot_t *b) { return b->seq ? *b->seq : 0; }

static void set_failed(rl_boot_t *b, rl_status_t st, const char *msg)
{
    if (b->failed == RL_OK) {
        b->failed = st;
        snprintf(b->failmsg, sizeof(b->failmsg), "%s", msg);
    }
}

/* Root: tell every live rank except `skip` that the group failed. One
 * deadline for all: a rank that stopped reading costs it once. */
static void root_broadcast_abort(rl_boot_t *b, rl_status_t st, int failed_rank, const char *msg, int skip)
{
    int64_t dl = rl_deadline_ms(1000);
    for (int r = 1; r < b->nranks; r++) {
        if (r != skip && b->fds[r] >= 0 && !b->bye[r])
            send_status(b->fds[r], RL_BOOT_ABORT, st, failed_rank, msg, dl);
    }
}

static void root_fail(rl_boot_t *b, rl_status_t st, int failed_rank, const char *msg, int skip)
{
    if (b->failed != RL_OK)
        return;
    set_failed(b, st, msg);
    root_broadcast_abort(b, st, failed_rank, msg, skip);
}

/*
 * Who stalls a timed-out operation. A rank whose wait expired reports to
 * rank 0 how many collectives it has started; rank 0 then probes every rank
 * (each answers from its progress loop, every 2 ms while it waits) and after
 * RL_BOOT_PROBE_MS names, on every rank alike, the ones that did not answer
 * (stopped, hung, or not calling into ringlet), else the ones that have not
 * started the collective the others wait in.
 */
#define RL_BOOT_PROBE_MS 1000

static void probe_start(rl_boot_t *b)
{
    if (b->probing)
        return;
    b->probing = 1;
    b->probe_dl = rl_deadline_ms(RL_BOOT_PROBE_MS);
    for (int r = 0; r < b->nranks; r++)
        b->rep_wait[r] = b->reported[r] ? b->rep_wait[r] : -1;
    b->reported[0] = 1;
    b->rep_seq[0] = my_seq(b);
    b->rep_wait[0] = waiting_on(b);
    int64_t dl = rl_deadline_ms(200);
    for (int r = 1; r < b->nranks; r++)
        if (b->fds[r] >= 0 && !b->bye[r] && !b->reported[r])
            send_msg(b->fds[r], RL_BOOT_PROBE, 0, NULL, 0, dl);
}

/* Everyone answers and runs the same collective: the data path stopped.
 * Name it from the waits that expired: two ranks waiting for each other
 * point at the link between them. */
static void wait_verdict(rl_boot_t *b, uint64_t seq)
{
    char msg[256];
    int pos = snprintf(msg, sizeof(msg), "every rank answers and is in collective #%llu, but its data stopped moving",
                       (unsigned long long)seq);
    for (int r = 0; r < b->nranks; r++) {
        int w = b->reported[r] ? b->rep_wait[r] : -1;
        if (w >= 0 && w != r && b->reported[w] && b->rep_wait[w] == r && r < w) {
            snprintf(msg + pos, sizeof(msg) - (size_t)pos,
                     ": rank %d and rank %d wait for each other (is the link between them cut or lossy?)", r, w);
            root_fail(b, RL_ERR_TIMEOUT, -1, msg, -1);
            return;
        }
    }
    int listed = 0;
    for (int r = 0; r < b->nranks && pos < (int)sizeof(msg) - 40 && listed < 4; r++) {
        int w = b->reported[r] ? b->rep_wait[r] : -1;
        if (w >= 0)
            pos += snprintf(msg + pos, sizeof(msg) - (size_t)pos, "%s rank %d waits for rank %d", listed++ ? "," : ":",
                            r, w);
    }
    if (pos < (int)sizeof(msg))
        snprintf(msg + pos, sizeof(msg) - (size_t)pos, " (a cut or lossy link?)");
    root_fail(b, RL_ERR_TIMEOUT, -1, msg, -1);
}

static void probe_verdict(rl_boot_t *b)
{
    char msg[256];
    int pos = 0, silent = 0, first = -1;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int r = 0; r < b->nranks; r++) {
        if (r && (b->fds[r] < 0 || b->bye[r]))
            continue;
        if (!b->reported[r]) {
            silent++;
            if (first < 0)
                first = r;
            continue;
        }
        lo = b->rep_seq[r] < lo ? b->rep_seq[r] : lo;
        hi = b->rep_seq[r] > hi ? b->rep_seq[r] : hi;
    }
    if (silent) {
        pos = snprintf(msg, sizeof(msg), "rank %d is not responding", first);
        for (int r = first + 1; r < b->nranks && pos < (int)sizeof(msg); r++)
            if (!b->reported[r] && b->fds[r] >= 0 && !b->bye[r])
                pos += snprintf(msg + pos, sizeof(msg) - (size_t)pos, ", nor rank %d", r);
        if (pos < (int)sizeof(msg))
            snprintf(msg + pos, sizeof(msg) - (size_t)pos,
                     ": no answer to a liveness probe within %d ms (stopped, hung, or not calling into ringlet)",
                     RL_BOOT_PROBE_MS);
        root_fail(b, RL_ERR_TIMEOUT, first, msg, -1);
        return;
    }
    if (lo < hi) {
        for (int r = b->nranks - 1; r >= 0; r--)
            if (b->reported[r] && b->rep_seq[r] == lo)
                first = r;
        int w = b->rep_wait[first];
        if (w >= 0 && w < b->nranks && b->reported[w] && b->rep_seq[w] > lo) {
            /* it waits for data from a rank that already finished that collective */
            snprintf(msg, sizeof(msg),
                     "rank %d waits in collective #%llu for data from rank %d, which finished it: data between "
                     "them was lost (is the link between rank %d and rank %d cut or lossy?)",
                     first, (unsigned long long)lo, w, first < w ? first : w, first < w ? w : first);
            root_fail(b, RL_ERR_TIMEOUT, -1, msg, -1);
            return;
        }
        pos = snprintf(msg, sizeof(msg), "rank %d has not started the collective the others wait in", first);
        for (int r = first + 1; r < b->nranks && pos < (int)sizeof(msg); r++)
            if (b->reported[r] && b->rep_seq[r] == lo)
                pos += snprintf(msg + pos, sizeof(msg) - (size_t)pos, ", nor has rank %d", r);
        if (pos < (int)sizeof(msg))
            snprintf(msg + pos, sizeof(msg) - (size_t)pos, " (it started %llu, others up to %llu)",
                     (unsigned long long)lo, (unsigned long long)hi);
        root_fail(b, RL_ERR_TIMEOUT, first, msg, -1);
        return;
    }
    wait_verdict(b, hi);
}

static void probe_check(rl_boot_t *b)
{
    if (!b->probing || b->failed != RL_OK)
        return;
    int all = 1;
    for (int r = 1; r < b->nranks && all; r++)
        all = b->reported[r] || b->fds[r] < 0 || b->bye[r];
    if (all || rl_now_ns() >= b->probe_dl)
        probe_verdict(b);
}

static void leave_check(rl_boot_t *b)
{
    if (b->failed != RL_OK || !b->seq)
        return;
    char msg[256];
    if (b->rank == 0 && b->min_leave < *b->seq) {
        snprintf(msg, sizeof(msg),
                 "rank %d failed: it left the group (rl_comm_destroy or process exit) after %llu collectives, "
                 "while rank 0 started collective #%llu",
                 b->min_leave_rank, (unsigned long long)b->min_leave, (unsigned long long)*b->seq);
        root_fail(b, RL_ERR_PEER_FAILED, b->min_leave_rank, msg, -1);
    } else if (b->rank != 0 && b->root_leave < *b->seq) {
        snprintf(msg, sizeof(msg),
                 "rank 0 failed: it left the group (rl_comm_destroy or process exit) after %llu collectives, "
                 "while rank %d started collective #%llu",
                 (unsigned long long)b->root_leave, b->rank, (unsigned long long)*b->seq);
        set_failed(b, RL_ERR_PEER_FAILED, msg);
        send_status(b->fd, RL_BOOT_ABORT, RL_ERR_PEER_FAILED, 0, msg, rl_deadline_ms(200));
    }
}

/* Root: a control message that may come at any time. 1 when handled. */
static int root_ctl(rl_boot_t *b, int r, const rl_boot_hdr_t *h, const void *pl)
{
    uint64_t v;
    if (h->type == RL_BOOT_LEAVE && get_u64(pl, h->len, &v) == 0) {
        if (v < b->min_leave) {
            b->min_leave = v;
            b->min_leave_rank = r;
        }
        return 1;
    }
    int waits_on = -1;
    if (h->type == RL_BOOT_REPORT && get_report(b, pl, h->len, &v, &waits_on) == 0) {
        if (b->failed == RL_OK && v > b->min_leave) {
            /* it waits in a collective a rank that left never started */
            char msg[256];
            snprintf(msg, sizeof(msg),
                     "rank %d failed: it left the group (rl_comm_destroy or process exit) after %llu collectives, "
                     "while rank %d started collective #%llu",
                     b->min_leave_rank, (unsigned long long)b->min_leave, r, (unsigned long long)v);
            root_fail(b, RL_ERR_PEER_FAILED, b->min_leave_rank, msg, -1);
        }
        if (b->failed == RL_OK) {
            int first = !b->reported[r];
            b->reported[r] = 1;
            b->rep_seq[r] = v;
            b->rep_wait[r] = waits_on;
            probe_start(b); /* a rank timed out: find out who stalls it */
            if (first) /* "heard you": it then knows rank 0 is alive and waits for the verdict */
                send_msg(b->fds[r], RL_BOOT_PROBE, 0, NULL, 0, rl_deadline_ms(200));
        }
        return 1;
    }
    return 0;
}

/* Handle one control message or EOF from `r` (rank 0 side). */
static void root_handle(rl_boot_t *b, int r, int64_t deadline)
{
    rl_boot_hdr_t h;
    void *pl = NULL;
    char err[160], msg[256];
    rl_status_t st = recv_msg(b->fds[r], b->nranks, 1u << 20, &h, &pl, deadline, err, sizeof(err));
    rl_boot_status_msg_t m;
    if (st == RL_OK && h.type == RL_BOOT_BYE) {
        b->bye[r] = 1;
    } else if (st == RL_OK && root_ctl(b, r, &h, pl)) {
        /* noted */
    } else if (st == RL_OK && h.type == RL_BOOT_GATHER && !b->early[r]) {
        b->early[r] = pl; /* this rank is ahead of us: keep it for the all-gather */
        b->early_len[r] = h.len;
        pl = NULL;
    } else if (st == RL_OK && h.type == RL_BOOT_ABORT && rl_boot_status_decode(pl, h.len, &m) == RL_OK) {
        snprintf(msg, sizeof(msg), "%s", m.msg);
        root_fail(b, m.status < 0 ? (rl_status_t)m.status : RL_ERR_ABORTED, m.rank, msg, r);
    } else {
        snprintf(msg, sizeof(msg), "rank %d failed: %s", r,
                 st == RL_OK ? "it sent an unexpected control message"
                 : st == RL_ERR_PEER_FAILED ? "its control connection closed (the process exited or was killed)"
                                            : err);
        root_fail(b, RL_ERR_PEER_FAILED, r, msg, r);
        close(b->fds[r]);
        b->fds[r] = -1;
    }
    free(pl);
}

/* Root: one poll over every rank's socket, handling what came. */
static void root_pump(rl_boot_t *b, int timeout_ms)
{
    int n = 0;
    for (int r = 1; r < b->nranks; r++)
        b->pfd[n++] = (struct pollfd){.fd = b->fds[r] >= 0 && !b->bye[r] ? b->fds[r] : -1, .events = POLLIN};
    if (poll(b->pfd, (nfds_t)n, timeout_ms) <= 0)
        return;
    for (int r = 1; r < b->nranks && b->failed == RL_OK; r++)
        if (b->pfd[r - 1].revents && b->fds[r] >= 0)
            root_handle(b, r, rl_deadline_ms(1000));
}

/* Non-root: a message from rank 0 outside an all-gather. 1 when it was
 * one that may come at any time (and was handled). */
static int rank_ctl(rl_boot_t *b, const rl_boot_hdr_t *h, const void *pl)
{
    uint64_t v;
    if (h->type == RL_BOOT_PROBE) {
        b->last_probe = rl_now_ns();
        send_report(b, rl_deadline_ms(200));
        return 1;
    }
    if (h->type == RL_BOOT_LEAVE && get_u64(pl, h->len, &v) == 0) {
        b->root_leave = v;
        return 1;
    }
    return 0;
}

static void rank_read(rl_boot_t *b)
{
    rl_boot_hdr_t h;
    void *pl = NULL;
    char e[160];
    rl_status_t st = recv_msg(b->fd, b->nranks, sizeof(rl_boot_status_msg_t), &h, &pl, rl_deadline_ms(1000), e,
                              sizeof(e));
    rl_boot_status_msg_t m;
    b->heard += st == RL_OK;
    if (st == RL_OK && rank_ctl(b, &h, pl))
        ;
    else if (st == RL_OK && h.type == RL_BOOT_ABORT && rl_boot_status_decode(pl, h.len, &m) == RL_OK)
        set_failed(b, m.status < 0 ? (rl_status_t)m.status : RL_ERR_ABORTED, m.msg);
    else
        set_failed(b, RL_ERR_PEER_FAILED,
                   st == RL_ERR_PEER_FAILED ? "rank 0 failed: its control connection closed (the process exited or "
                                              "was killed)"
                                            : "rank 0 failed: control connection lost");
    free(pl);
}

rl_status_t rl_boot_check(rl_boot_t *b, char *err, size_t errlen)
{
    if (b->failed == RL_OK && b->nranks > 1) {
        if (b->rank == 0) {
            root_pump(b, 0);
            probe_check(b);
        } else if (b->fd >= 0) {
            struct pollfd pfd = {.fd = b->fd, .events = POLLIN};
            while (b->failed == RL_OK && poll(&pfd, 1, 0) > 0)
                rank_read(b);
        }
        leave_check(b);
    }
    if (b->failed != RL_OK)
        snprintf(err, errlen, "%s", b->failmsg);
    return b->failed;
}

rl_status_t rl_boot_stalled(rl_boot_t *b, int waits_on, char *err, size_t errlen)
{
    if (!b || b->nranks == 1 || b->failed != RL_OK)
        return RL_OK;
    b->waits_on = waits_on >= 0 && waits_on < b->nranks ? waits_on : -1;
    if (b->rank == 0 && b->rep_wait) /* a probe another rank's report started did not know it yet */
        b->rep_wait[0] = waiting_on(b);
    if (b->rank == 0) {
        probe_start(b);
        while (b->failed == RL_OK) {
            root_pump(b, 5);
            probe_check(b);
        }
    } else {
        /* Rank 0 acknowledges a report at once (a probe) and gives its
         * verdict within RL_BOOT_PROBE_MS; silence means rank 0 stalls. A
         * probe answered just before counts: rank 0 already knew of us
         * (and does not acknowledge twice). */
        b->heard = rl_now_ns() - b->last_probe < RL_BOOT_PROBE_MS * 1000000LL;
        send_report(b, rl_deadline_ms(200));
        int64_t ack_dl = rl_deadline_ms(RL_BOOT_PROBE_MS), dl = rl_deadline_ms(RL_BOOT_PROBE_MS + 1500);
        struct pollfd pfd = {.fd = b->fd, .events = POLLIN};
        while (b->failed == RL_OK && rl_now_ns() < (b->heard ? dl : ack_dl)) {
            if (poll(&pfd, 1, rl_ms_left(b->heard ? dl : ack_dl)) > 0)
                rank_read(b);
        }
        if (b->failed == RL_OK) {
            char msg[200];
            if (b->heard)
                snprintf(msg, sizeof(msg), "rank 0 answers but gave no verdict within %d ms of this rank's report",
                         RL_BOOT_PROBE_MS + 1500);
            else
                snprintf(msg, sizeof(msg),
                         "rank 0 is not responding: no answer within %d ms to this rank's report (stopped, hung, "
                         "or not calling into ringlet)",
                         RL_BOOT_PROBE_MS);
            set_failed(b, RL_ERR_TIMEOUT, msg);
        }
    }
    snprintf(err, errlen, "%s", b->failmsg);
    return b->failed;
}

void rl_boot_wait_source(rl_boot_t *b, int (*waits_on)(void *arg), void *arg)
{
    if (!b)
        return;
    b->wait_fn = waits_on;
    b->wait_arg = arg;
}

void rl_boot_leaving(rl_boot_t *b)
{
    if (!b || b->nranks == 1 || b->failed != RL_OK)
        return;
    int64_t dl = rl_deadline_ms(200);
    if (b->rank != 0) {
        send_u64(b->fd, RL_BOOT_LEAVE, b->rank, my_seq(b), dl);
        return;
    }
    if (my_seq(b) < b->min_leave) { /* rank 0 left too: a later report may say who waits for it */
        b->min_leave = my_seq(b);
        b->min_leave_rank = 0;
    }
    for (int r = 1; r < b->nranks; r++)
        if (b->fds[r] >= 0 && !b->bye[r])
            send_u64(b->fds[r], RL_BOOT_LEAVE, 0, my_seq(b), dl);
}

/* Non-root side of an all-gather: send ours, wait for everyone's. */
static rl_status_t rank_allgather(rl_boot_t *b, const void *mine, size_t len, void *all, int64_t deadline,
                                  char *err, size_t errlen)
{
    /* A send that fails may mean rank 0 already gave up on the group
     * and closed; its ABORT, explaining why, may still be waiting to be
     * read: look for it briefly before blaming rank 0. */
    rl_status_t sst = send_msg(b->fd, RL_BOOT_GATHER, b->rank, mine, (uint32_t)len, deadline);
    if (sst != RL_OK)
        deadline = rl_now_ns() + 500000000LL - RL_BOOT_GRACE_NS;
    /* An ABORT may come instead of the result: allow for its size. */
    uint32_t max = (uint32_t)(len * (size_t)b->nranks);
    if (max < sizeof(rl_boot_status_msg_t))
        max = sizeof(rl_boot_status_msg_t);
    for (;;) {
        rl_boot_hdr_t h;
        void *pl = NULL;
        /* Rank 0 sees the whole group and explains a failure (e.g. which
         * rank never came) at the deadline: wait a little longer for that. */
        rl_status_t st = recv_msg(b->fd, b->nranks, max, &h, &pl, deadline + RL_BOOT_GRACE_NS, err, errlen);
        if (st == RL_OK && h.type == RL_BOOT_RESULT && h.len == len * (size_t)b->nranks) {
            memcpy(all, pl, h.len);
            free(pl);
            return RL_OK;
        }
        if (st == RL_OK && rank_ctl(b, &h, pl)) {
            free(pl);
            continue;
        }
        rl_boot_status_msg_t m;
        if (st == RL_OK && h.type == RL_BOOT_ABORT && rl_boot_status_decode(pl, h.len, &m) == RL_OK) {
            snprintf(err, errlen, "%s", m.msg);
            st = m.status < 0 ? (rl_status_t)m.status : RL_ERR_ABORTED;
        } else if (st == RL_OK) {
            snprintf(err, errlen, "rank 0 sent an unexpected bootstrap message (type %u, %u bytes)", h.type, h.len);
            st = RL_ERR_PROTOCOL;
        } else if (sst == RL_ERR_TIMEOUT) {
            snprintf(err, errlen, "rank 0 stopped reading: sending this rank's all-gather part timed out");
            st = RL_ERR_TIMEOUT;
        } else if (sst != RL_OK) {
            snprintf(err, errlen, "rank 0 failed: sending to it failed during all-gather");
            st = RL_ERR_PEER_FAILED;
        } else if (st == RL_ERR_PEER_FAILED) {
            snprintf(err, errlen, "rank 0 failed: connection closed during all-gather");
        } else if (st == RL_ERR_TIMEOUT) {
            snprintf(err, errlen, "bootstrap all-gather timed out waiting for rank 0");
        }
        free(pl);
        set_failed(b, st, err);
        return st;
    }
}

/* Root: one message from r during an all-gather. */
static rl_status_t root_gather_one(rl_boot_t *b, int r, size_t len, void *all, char *got, int64_t deadline,
                                   char *err, size_t errlen)
{
    rl_boot_hdr_t h;
    void *pl = NULL;
    char e[160];
    uint32_t max = (uint32_t)len > sizeof(rl_boot_status_msg_t) ? (uint32_t)len : sizeof(rl_boot_status_msg_t);
    rl_status_t rs = recv_msg(b->fds[r], b->nranks, max, &h, &pl, deadline, e, sizeof(e));
    rl_status_t st = RL_OK;
    rl_boot_status_msg_t m;
    if (rs == RL_OK && h.type == RL_BOOT_GATHER && h.len == len && h.rank == r && !got[r]) {
        memcpy((char *)all + (size_t)r * len, pl, len);
        got[r] = 1;
    } else if (rs == RL_OK && (h.type == RL_BOOT_LEAVE || h.type == RL_BOOT_REPORT) && root_ctl(b, r, &h, pl)) {
        /* a rank leaving (destroy's barrier), or a report: it may name a
         * rank that left before another started a collective */
        if (b->failed != RL_OK) {
            snprintf(err, errlen, "%s", b->failmsg);
            free(pl);
            return b->failed;
        }
    } else if (rs == RL_OK && h.type == RL_BOOT_ABORT && rl_boot_status_decode(pl, h.len, &m) == RL_OK) {
        /* the rank gave up (e.g. its transport failed to open), or found
         * another rank failed (e.g. rank 0 left): pass its words on */
        if (m.rank == r)
            snprintf(err, errlen, "rank %d failed: %s", r, m.msg);
        else
            snprintf(err, errlen, "%s", m.msg);
        st = m.status < 0 && m.status >= RL_ERR_INTERNAL ? (rl_status_t)m.status : RL_ERR_PEER_FAILED;
    } else if (rs == RL_OK) {
        snprintf(err, errlen, "rank %d sent an unexpected message (type %u, %u bytes) during all-gather", r, h.type,
                 h.len);
        st = RL_ERR_PROTOCOL;
    } else {
        snprintf(err, errlen, "rank %d failed during bootstrap all-gather: %s", r, e);
        st = RL_ERR_PEER_FAILED;
    }
    free(pl);
    if (st != RL_OK)
        root_fail(b, st, r, err, r);
    return st;
}

/* Root: send the result to every rank at once, so that one rank that
 * stopped reading neither delays the others nor outlives the deadline. */
static rl_status_t root_send_result(rl_boot_t *b, const void *all, size_t total, int64_t deadline, char *err,
                                    size_t errlen)
{
    size_t *sent = calloc((size_t)b->nranks, sizeof(size_t));
    if (!sent)
        return RL_ERR_NO_MEMORY;
    uint8_t hdr[16];
    rl_boot_hdr_t h = {RL_BOOT_MAGIC, RL_PROTOCOL_VERSION, RL_BOOT_RESULT, 0, (uint32_t)total};
    rl_boot_hdr_encode(&h, hdr);
    size_t want = 16 + total;
    int left = b->nranks - 1, failed = -1;
    rl_status_t st = RL_OK;
    /* A rank that fails mid-send does not stop the others' sends: a rank
     * left with half a result would read the abort that follows as the
     * rest of it. The abort goes out once every message is whole. */
    while (left > 0) {
        int n = 0;
        for (int r = 1; r < b->nranks; r++) {
            b->pfd[r - 1] = (struct pollfd){.fd = sent[r] < want ? b->fds[r] : -1, .events = POLLOUT};
            n++;
        }
        int pr = poll(b->pfd, (nfds_t)n, rl_ms_left(deadline));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0) {
            int first = 0, skip = failed;
            for (int r = 1; r < b->nranks && !first; r++)
                first = sent[r] < want ? r : 0;
            if (st == RL_OK) {
                snprintf(err, errlen,
                         "rank %d failed: it stopped reading (the bootstrap all-gather result could not be sent to "
                         "it before the deadline: a hung or stopped process?)",
                         first);
                st = RL_ERR_TIMEOUT;
                failed = first;
            }
            root_fail(b, st, failed, err, skip);
            free(sent);
            return st;
        }
        for (int r = 1; r < b->nranks; r++) {
            if (!b->pfd[r - 1].revents || sent[r] >= want)
                continue;
            const uint8_t *src = sent[r] < 16 ? hdr + sent[r] : (const uint8_t *)all + (sent[r] - 16);
            size_t chunk = sent[r] < 16 ? 16 - sent[r] : want - sent[r];
            ssize_t k = send(b->fds[r], src, chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (k > 0) {
                sent[r] += (size_t)k;
                left -= sent[r] == want;
            } else if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                if (st == RL_OK) {
                    snprintf(err, errlen, "rank %d failed: sending the all-gather result failed: %s", r,
                             strerror(errno));
                    st = RL_ERR_PEER_FAILED;
                    failed = r;
                }
                sent[r] = want;
                left--;
            }
        }
    }
    if (st != RL_OK)
        root_fail(b, st, failed, err, failed);
    free(sent);
    return st;
}

static rl_status_t root_allgather(rl_boot_t *b, size_t len, void *all, int64_t deadline, char *err, size_t errlen)
{
    int left = b->nranks - 1;
    char *got = calloc((size_t)b->nranks, 1);
    if (!got)
        return RL_ERR_NO_MEMORY;
    rl_status_t st = RL_OK;
    for (int r = 1; r < b->nranks; r++) {
        if (!b->early[r])
            continue;
        if (b->early_len[r] != len) {
            snprintf(err, errlen, "rank %d sent %u bytes to a bootstrap all-gather of %zu", r, b->early_len[r], len);
            st = RL_ERR_PROTOCOL;
        } else {
            memcpy((char *)all + (size_t)r * len, b->early[r], len);
            got[r] = 1;
            left--;
        }
        free(b->early[r]);
        b->early[r] = NULL;
    }
    if (st != RL_OK)
        root_fail(b, st, 0, err, -1);
    while (left > 0 && st == RL_OK) {
        for (int r = 1; r < b->nranks; r++)
            b->pfd[r - 1] = (struct pollfd){.fd = got[r] ? -1 : b->fds[r], .events = POLLIN};
        int pr = poll(b->pfd, (nfds_t)(b->nranks - 1), rl_ms_left(deadline));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            int pos = snprintf(err, errlen, "bootstrap all-gather timed out; rank 0 waits for rank(s)");
            for (int r = 1; r < b->nranks && pos < (int)errlen; r++)
                if (!got[r])
                    pos += snprintf(err + pos, errlen - (size_t)pos, " %d", r);
            st = RL_ERR_TIMEOUT;
            root_fail(b, st, 0, err, -1);
            break;
        }
        for (int r = 1; r < b->nranks && st == RL_OK; r++) {
            if (!(b->pfd[r - 1].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            st = root_gather_one(b, r, len, all, got, deadline, err, errlen);
            if (st == RL_OK && got[r] && b->pfd[r - 1].fd >= 0) {
                left--;
                b->pfd[r - 1].fd = -1;
            }
        }
    }
    free(got);
    if (st != RL_OK)
        return st;
    return root_send_result(b, all, len * (size_t)b->nranks, deadline, err, errlen);
}

rl_status_t rl_boot_allgather(rl_boot_t *b, const void *mine, size_t len, void *all, int64_t deadline,
                              char *err, size_t errlen)
{
    if (b->failed != RL_OK) {
        snprintf(err, errlen, "%s", b->failmsg);
        return b->failed;
    }
    if ((uint64_t)len * (uint64_t)b->nranks > RL_BOOT_MAX_PAYLOAD) {
        snprintf(err, errlen, "bootstrap all-gather of %zu bytes per rank is too large", len);
        return RL_ERR_INVALID_ARG;
    }
    memcpy((char *)all + (size_t)b->rank * len, mine, len);
    if (b->nranks == 1)
        return RL_OK;
    return b->rank == 0 ? root_allgather(b, len, all, deadline, err, errlen)
                        : rank_allgather(b, mine, len, all, deadline, err, errlen);
}

void rl_boot_abort(rl_boot_t *b, rl_status_t why, int failed_rank, const char *msg)
{
    if (!b)
        return;
    int first = b->failed == RL_OK;
    set_failed(b, why, msg);
    if (!first || b->nranks == 1)
        return;
    if (b->rank == 0)
        root_broadcast_abort(b, why, failed_rank, msg, -1);
    else if (b->fd >= 0)
        send_status(b->fd, RL_BOOT_ABORT, why, failed_rank, msg, rl_deadline_ms(1000));
}

void rl_boot_destroy(rl_boot_t *b, int64_t deadline)
{
    if (!b)
        return;
    if (b->rank != 0 && b->fd >= 0) {
        if (b->failed == RL_OK)
            send_msg(b->fd, RL_BOOT_BYE, b->rank, NULL, 0, deadline > rl_now_ns() ? deadline : rl_deadline_ms(100));
        close(b->fd);
    }
    if (b->rank == 0 && b->fds) {
        /* Wait for each rank's BYE (or its close) before closing, so that a
         * rank still finishing its last operation is not told we failed. */
        for (int r = 1; r < b->nranks; r++) {
            while (b->fds[r] >= 0 && !b->bye[r] && b->failed == RL_OK && rl_now_ns() < deadline) {
                struct pollfd pfd = {.fd = b->fds[r], .events = POLLIN};
                if (poll(&pfd, 1, rl_ms_left(deadline)) <= 0)
                    break;
                root_handle(b, r, deadline);
            }
        }
        for (int r = 1; r < b->nranks; r++)
            if (b->fds[r] >= 0)
                close(b->fds[r]);
    }
    for (int r = 0; b->early && r < b->nranks; r++)
        free(b->early[r]);
    free(b->early);
    free(b->early_len);
    free(b->fds);
    free(b->bye);
    free(b->reported);
    free(b->rep_seq);
    free(b->rep_wait);
    free(b->pfd);
    rl_auth_wipe(&b->key, sizeof(b->key));
    free(b);
}
