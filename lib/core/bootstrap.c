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

/* ---- socket I/O with deadlines ---- */

static rl_status_t io_full(int fd, void *buf, size_t len, int64_t deadline, int writing)
{
    char *p = buf;
    while (len) {
        struct pollfd pfd = {.fd = fd, .events = writing ? POLLOUT : POLLIN};
        int pr = poll(&pfd, 1, rl_ms_left(deadline));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0)
            return RL_ERR_TIMEOUT;
        if (pr < 0)
            return RL_ERR_BOOTSTRAP;
        ssize_t n = writing ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return RL_ERR_PEER_FAILED; /* EOF or reset: the other side is gone */
        p += n;
        len -= (size_t)n;
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
            snprintf(err, errlen, "connection closed inside a message");
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
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0)
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

/* Challenge a joiner that said hello as `rank`, check its answer, prove
 * ourselves in turn. Nothing of the group's has been sent to it before this
 * succeeds. */
static rl_status_t root_auth(rl_boot_t *b, int fd, int rank, int64_t dl, char *why, size_t wlen)
{
    rl_auth_ctx_t ctx = {.rank = rank, .nranks = b->nranks, .version = RL_PROTOCOL_VERSION};
    rl_auth_nonce(ctx.root_nonce);
    if (send_msg(fd, RL_BOOT_AUTH_CHALLENGE, 0, ctx.root_nonce, RL_AUTH_NONCE_BYTES, dl) != RL_OK) {
        snprintf(why, wlen, "rank %d went away before the authentication challenge", rank);
        return RL_ERR_AUTH;
    }
    rl_boot_hdr_t h = {0};
    void *pl = NULL;
    char e[64];
    rl_boot_auth_msg_t m;
    rl_status_t st = recv_msg(fd, b->nranks, 64, &h, &pl, dl, e, sizeof(e));
    if (st != RL_OK || h.type != RL_BOOT_AUTH_RESPONSE || rl_boot_auth_decode(h.type, pl, h.len, &m) != RL_OK) {
        snprintf(why, wlen, "rank %d did not answer the authentication challenge (%s): it lacks RINGLET_AUTH_KEY?",
                 rank, st != RL_OK ? e : "wrong message");
        free(pl);
        return RL_ERR_AUTH;
    }
    free(pl);
    memcpy(ctx.rank_nonce, m.nonce, RL_AUTH_NONCE_BYTES);
    if (!rl_auth_verify(&b->key, RL_AUTH_RANK, &ctx, m.mac)) {
        snprintf(why, wlen, "rank %d failed authentication (it holds a different RINGLET_AUTH_KEY)", rank);
        return RL_ERR_AUTH;
    }
    uint8_t mac[RL_AUTH_MAC_BYTES];
    rl_auth_mac(&b->key, RL_AUTH_ROOT, &ctx, mac);
    if (send_msg(fd, RL_BOOT_AUTH_PROOF, 0, mac, sizeof(mac), dl) != RL_OK) {
        snprintf(why, wlen, "rank %d went away during authentication", rank);
        return RL_ERR_AUTH;
    }
    return RL_OK;
}

/* Validate one HELLO; answer it. Returns the rank it joined as, or -1. */
static int root_admit(rl_boot_t *b, int fd, const char *who, int64_t deadline)
{
    rl_boot_hdr_t h = {0};
    void *pl = NULL;
    char why[RL_BOOT_MSG_MAX];
    int64_t dl = rl_now_ns() + 5000000000LL < deadline ? rl_now_ns() + 5000000000LL : deadline;
    rl_status_t st = recv_msg(fd, b->nranks, 64, &h, &pl, dl, why, sizeof(why));
    rl_boot_hello_t hello;
    int joined = -1;
    if (st == RL_OK && h.type != RL_BOOT_HELLO) {
        st = RL_ERR_PROTOCOL;
        snprintf(why, sizeof(why), "expected a hello, got message type %u", h.type);
    } else if (st == RL_OK && h.version != RL_PROTOCOL_VERSION) {
        st = RL_ERR_VERSION;
        snprintf(why, sizeof(why), "rank %d speaks ringlet protocol %u, rank 0 speaks %u", h.rank, h.version,
                 RL_PROTOCOL_VERSION);
    } else if (st == RL_OK && (rl_boot_hello_decode(pl, h.len, &hello) != RL_OK || h.rank < 1)) {
        st = RL_ERR_PROTOCOL;
        snprintf(why, sizeof(why), "malformed hello (rank %d, %u bytes)", h.rank, h.len);
    } else if (st == RL_OK && hello.nranks != (uint32_t)b->nranks) {
        st = RL_ERR_MISMATCH;
        snprintf(why, sizeof(why), "rank %d believes the group has %u ranks, rank 0 has %d", h.rank,
                 hello.nranks, b->nranks);
    } else if (st == RL_OK && b->have_key) {
        st = root_auth(b, fd, h.rank, dl, why, sizeof(why));
    }
    /* Only an authenticated joiner learns which ranks are taken. */
    if (st == RL_OK && b->fds[h.rank] >= 0) {
        st = RL_ERR_BOOTSTRAP;
        snprintf(why, sizeof(why), "rank %d joined twice (a second process claims the same rank)", h.rank);
    }
    if (st == RL_OK)
        joined = h.rank;
    free(pl);
    if (joined < 0) {
        if (st == RL_ERR_AUTH)
            RL_ERROR("bootstrap: refused a connection from %s: %s", who, why);
        else
            RL_WARN("bootstrap: refused a connection from %s: %s", who, why);
        if (st != RL_ERR_TIMEOUT && st != RL_ERR_PEER_FAILED)
            send_status(fd, RL_BOOT_HELLO_ACK, st, h.rank, why, dl);
        return -1;
    }
    if (send_status(fd, RL_BOOT_HELLO_ACK, RL_OK, joined, "", deadline) != RL_OK)
        return -1;
    return joined;
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

static rl_status_t root_accept_all(rl_boot_t *b, int lfd, int64_t deadline, char *err, size_t errlen)
{
    int need = b->nranks - 1;
    while (need > 0) {
        struct pollfd pfd = {.fd = lfd, .events = POLLIN};
        int pr = poll(&pfd, 1, rl_ms_left(deadline));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            int pos = snprintf(err, errlen, "bootstrap deadline expired: rank 0 still waits for rank(s)");
            for (int r = 1, shown = 0; r < b->nranks && shown < 16; r++) {
                if (b->fds[r] < 0 && pos < (int)errlen) {
                    pos += snprintf(err + pos, errlen - (size_t)pos, " %d", r);
                    shown++;
                }
            }
            return RL_ERR_TIMEOUT;
        }
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        tune_socket(fd);
        char who[INET6_ADDRSTRLEN + 16];
        peer_name(fd, who, sizeof(who));
        int r = root_admit(b, fd, who, deadline);
        if (r < 0) {
            close(fd);
            continue;
        }
        b->fds[r] = fd;
        need--;
    }
    return RL_OK;
}

/* ---- other ranks ---- */

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
            int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
            if (fd < 0)
                continue;
            if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
                freeaddrinfo(res);
                tune_socket(fd);
                b->fd = fd;
                return RL_OK;
            }
            last = errno;
            close(fd);
        }
        freeaddrinfo(res);
        usleep(50000); /* rank 0 may not be listening yet */
    }
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

static rl_status_t rank_hello(rl_boot_t *b, int64_t deadline, char *err, size_t errlen)
{
    uint8_t hello[sizeof(rl_boot_hello_t)];
    put32(hello, (uint32_t)b->nranks);
    put32(hello + 4, b->version);
    rl_status_t st = send_msg_v(b->fd, b->version, RL_BOOT_HELLO, b->rank, hello, sizeof(hello), deadline);
    if (st != RL_OK) {
        snprintf(err, errlen, "sending hello to rank 0 failed");
        return RL_ERR_BOOTSTRAP;
    }
    int authed = 0;
    for (;;) {
        rl_boot_hdr_t h;
        void *pl = NULL;
        st = recv_msg(b->fd, b->nranks, sizeof(rl_boot_status_msg_t), &h, &pl, deadline, err, errlen);
        if (st != RL_OK) {
            if (st == RL_ERR_PEER_FAILED)
                snprintf(err, errlen, "rank 0 closed the connection during hello");
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
    if (!b)
        return RL_ERR_NO_MEMORY;
    b->rank = rank;
    b->nranks = nranks;
    b->fd = -1;
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
    rl_status_t st;
    if (rank == 0) {
        b->fds = malloc(sizeof(int) * (size_t)nranks);
        b->bye = calloc((size_t)nranks, sizeof(int));
        b->early = calloc((size_t)nranks, sizeof(void *));
        b->early_len = calloc((size_t)nranks, sizeof(uint32_t));
        if (!b->fds || !b->bye || !b->early || !b->early_len) {
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
        st = rank_connect(b, host, port, deadline, err, errlen);
        if (st == RL_OK)
            st = rank_hello(b, deadline, err, errlen);
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
    int s = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    char ip[INET6_ADDRSTRLEN] = "?";
    void *a = ss.ss_family == AF_INET6 ? (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                                       : (void *)&((struct sockaddr_in *)&ss)->sin_addr;
    inet_ntop(ss.ss_family, a, ip, sizeof(ip));
    if (s < 0 || bind(s, (struct sockaddr *)&ss, sl) != 0 || listen(s, 128) != 0 ||
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

static void set_failed(rl_boot_t *b, rl_status_t st, const char *msg)
{
    if (b->failed == RL_OK) {
        b->failed = st;
        snprintf(b->failmsg, sizeof(b->failmsg), "%s", msg);
    }
}

/* Root: tell every live rank except `skip` that the group failed. */
static void root_broadcast_abort(rl_boot_t *b, rl_status_t st, int failed_rank, const char *msg, int skip)
{
    int64_t dl = rl_deadline_ms(1000);
    for (int r = 1; r < b->nranks; r++) {
        if (r != skip && b->fds[r] >= 0 && !b->bye[r])
            send_status(b->fds[r], RL_BOOT_ABORT, st, failed_rank, msg, dl);
    }
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
    } else if (st == RL_OK && h.type == RL_BOOT_GATHER && !b->early[r]) {
        b->early[r] = pl; /* this rank is ahead of us: keep it for the all-gather */
        b->early_len[r] = h.len;
        pl = NULL;
    } else if (st == RL_OK && h.type == RL_BOOT_ABORT && rl_boot_status_decode(pl, h.len, &m) == RL_OK) {
        snprintf(msg, sizeof(msg), "%s", m.msg);
        set_failed(b, m.status < 0 ? (rl_status_t)m.status : RL_ERR_ABORTED, msg);
        root_broadcast_abort(b, b->failed, m.rank, msg, r);
    } else {
        snprintf(msg, sizeof(msg), "rank %d failed: %s", r,
                 st == RL_OK ? "it sent an unexpected control message"
                 : st == RL_ERR_PEER_FAILED ? "its control connection closed (the process exited or was killed)"
                                            : err);
        set_failed(b, RL_ERR_PEER_FAILED, msg);
        root_broadcast_abort(b, RL_ERR_PEER_FAILED, r, msg, r);
        close(b->fds[r]);
        b->fds[r] = -1;
    }
    free(pl);
}

rl_status_t rl_boot_check(rl_boot_t *b, char *err, size_t errlen)
{
    if (b->failed == RL_OK && b->nranks > 1) {
        if (b->rank == 0) {
            for (int r = 1; r < b->nranks; r++) {
                if (b->fds[r] < 0 || b->bye[r])
                    continue;
                struct pollfd pfd = {.fd = b->fds[r], .events = POLLIN};
                if (poll(&pfd, 1, 0) > 0)
                    root_handle(b, r, rl_deadline_ms(1000));
            }
        } else if (b->fd >= 0) {
            struct pollfd pfd = {.fd = b->fd, .events = POLLIN};
            if (poll(&pfd, 1, 0) > 0) {
                rl_boot_hdr_t h;
                void *pl = NULL;
                char e[160];
                rl_status_t st = recv_msg(b->fd, b->nranks, sizeof(rl_boot_status_msg_t), &h, &pl,
                                          rl_deadline_ms(1000), e, sizeof(e));
                rl_boot_status_msg_t m;
                if (st == RL_OK && h.type == RL_BOOT_ABORT && rl_boot_status_decode(pl, h.len, &m) == RL_OK)
                    set_failed(b, m.status < 0 ? (rl_status_t)m.status : RL_ERR_ABORTED, m.msg);
                else
                    set_failed(b, RL_ERR_PEER_FAILED, "rank 0 failed: control connection lost");
                free(pl);
            }
        }
    }
    if (b->failed != RL_OK)
        snprintf(err, errlen, "%s", b->failmsg);
    return b->failed;
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
    rl_status_t st;
    if (b->rank != 0) {
        /* A send that fails may mean rank 0 already gave up on the group
         * and closed; its ABORT, explaining why, may still be waiting to be
         * read: look for it briefly before blaming rank 0. */
        int send_failed = send_msg(b->fd, RL_BOOT_GATHER, b->rank, mine, (uint32_t)len, deadline) != RL_OK;
        if (send_failed)
            deadline = rl_now_ns() + 500000000LL - RL_BOOT_GRACE_NS;
        rl_boot_hdr_t h;
        void *pl = NULL;
        /* An ABORT may come instead of the result: allow for its size. */
        uint32_t max = (uint32_t)(len * (size_t)b->nranks);
        if (max < sizeof(rl_boot_status_msg_t))
            max = sizeof(rl_boot_status_msg_t);
        /* Rank 0 sees the whole group and explains a failure (e.g. which
         * rank never came) at the deadline: wait a little longer for that. */
        st = recv_msg(b->fd, b->nranks, max, &h, &pl, deadline + RL_BOOT_GRACE_NS, err, errlen);
        if (st == RL_OK && h.type == RL_BOOT_RESULT && h.len == len * (size_t)b->nranks) {
            memcpy(all, pl, h.len);
            free(pl);
            return RL_OK;
        }
        rl_boot_status_msg_t m;
        if (st == RL_OK && h.type == RL_BOOT_ABORT && rl_boot_status_decode(pl, h.len, &m) == RL_OK) {
            snprintf(err, errlen, "%s", m.msg);
            st = m.status < 0 ? (rl_status_t)m.status : RL_ERR_ABORTED;
        } else if (st == RL_OK) {
            snprintf(err, errlen, "rank 0 sent an unexpected bootstrap message (type %u, %u bytes)", h.type, h.len);
            st = RL_ERR_PROTOCOL;
        } else if (send_failed) {
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
    /* Root: collect from every rank, in whatever order they come. */
    int left = b->nranks - 1;
    char *got = calloc((size_t)b->nranks, 1);
    struct pollfd *pfd = calloc((size_t)b->nranks, sizeof(*pfd));
    if (!got || !pfd) {
        free(got);
        free(pfd);
        return RL_ERR_NO_MEMORY;
    }
    st = RL_OK;
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
    if (st != RL_OK) {
        set_failed(b, st, err);
        root_broadcast_abort(b, st, 0, err, -1);
    }
    while (left > 0 && st == RL_OK) {
        for (int r = 1; r < b->nranks; r++)
            pfd[r] = (struct pollfd){.fd = got[r] ? -1 : b->fds[r], .events = POLLIN};
        int pr = poll(pfd + 1, (nfds_t)(b->nranks - 1), rl_ms_left(deadline));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            int pos = snprintf(err, errlen, "bootstrap all-gather timed out; rank 0 waits for rank(s)");
            for (int r = 1; r < b->nranks && pos < (int)errlen; r++)
                if (!got[r])
                    pos += snprintf(err + pos, errlen - (size_t)pos, " %d", r);
            st = RL_ERR_TIMEOUT;
            break;
        }
        for (int r = 1; r < b->nranks && st == RL_OK; r++) {
            if (!(pfd[r].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            rl_boot_hdr_t h;
            void *pl = NULL;
            char e[160];
            rl_status_t rs = recv_msg(b->fds[r], b->nranks, (uint32_t)len > sizeof(rl_boot_status_msg_t) ? (uint32_t)len : sizeof(rl_boot_status_msg_t),
                                      &h, &pl, deadline, e, sizeof(e));
            if (rs == RL_OK && h.type == RL_BOOT_GATHER && h.len == len && h.rank == r) {
                memcpy((char *)all + (size_t)r * len, pl, len);
                got[r] = 1;
                left--;
            } else {
                rl_boot_status_msg_t m;
                if (rs == RL_OK && h.type == RL_BOOT_ABORT && h.rank == r &&
                    rl_boot_status_decode(pl, h.len, &m) == RL_OK) {
                    /* the rank gave up (e.g. its transport failed to open):
                     * pass its own words on */
                    snprintf(err, errlen, "rank %d failed: %s", r, m.msg);
                    st = m.status < 0 && m.status >= RL_ERR_INTERNAL ? (rl_status_t)m.status : RL_ERR_PEER_FAILED;
                } else {
                    if (rs == RL_OK)
                        snprintf(err, errlen,
                                 "rank %d sent an unexpected message (type %u, %u bytes) during all-gather", r,
                                 h.type, h.len);
                    else
                        snprintf(err, errlen, "rank %d failed during bootstrap all-gather: %s", r, e);
                    st = rs == RL_OK ? RL_ERR_PROTOCOL : RL_ERR_PEER_FAILED;
                }
                set_failed(b, st, err);
                root_broadcast_abort(b, st, r, err, r);
            }
            free(pl);
        }
    }
    free(got);
    free(pfd);
    if (st != RL_OK) {
        if (st == RL_ERR_TIMEOUT) {
            set_failed(b, st, err);
            root_broadcast_abort(b, st, 0, err, -1);
        }
        return st;
    }
    for (int r = 1; r < b->nranks; r++) {
        if (send_msg(b->fds[r], RL_BOOT_RESULT, 0, all, (uint32_t)(len * (size_t)b->nranks), deadline) != RL_OK) {
            snprintf(err, errlen, "rank %d failed: sending the all-gather result failed", r);
            set_failed(b, RL_ERR_PEER_FAILED, err);
            root_broadcast_abort(b, RL_ERR_PEER_FAILED, r, err, r);
            return RL_ERR_PEER_FAILED;
        }
    }
    return RL_OK;
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
    rl_auth_wipe(&b->key, sizeof(b->key));
    free(b);
}
