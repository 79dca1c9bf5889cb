/*
 * Native shared-memory backend for ranks on one host (no libfabric).
 *
 * Memory: every connection owns one memfd segment (never a name in
 * /dev/shm, so nothing outlives a killed process). The segment holds this
 * side's outbound ring of slots and the cache line where this side
 * publishes how many of the peer's slots it has consumed. The owner seals
 * the memfd (no shrink, no grow, no new writable mapping) and passes it
 * over an abstract Unix socket named by a random token that only the
 * bootstrap carried; the peer checks the sender's credentials and the
 * seals and maps it read-only. So each process writes only its own memory
 * and a peer can neither truncate a mapping under us (SIGBUS) nor scribble
 * on our rings.
 *
 * Queues: single producer, single consumer, no locks. A slot is published
 * by storing its sequence number (release) after its header and payload;
 * the consumer copies the payload into the registered region the header
 * names (copy-in, copy-out through pipelined slots), then releases the slot
 * by advancing its consumed count. write_imm of len bytes becomes
 * ceil(len / payload) slots; the immediate rides on the last one and is
 * delivered (RL_CQE_RECV_IMM) after its data is in place. The sender's
 * completion (RL_CQE_SEND) comes when the last byte has been copied into
 * the ring: the source may then be reused, and the data stays readable in
 * the peer's mapping even if this process exits.
 *
 * Everything read from a peer's segment is treated as network input: the
 * header is read once into locals, lengths are bounded by the slot, keys
 * and addresses must fall inside a live registration with remote write,
 * and the peer's consumed count must lie within what was produced.
 *
 * Liveness: a pidfd per peer, polled about every millisecond; an exited
 * peer becomes a completion error naming its rank, and no lock exists that
 * it could have held.
 *
 * Fds travel lazily: conn_establish only connects to the peer's socket and
 * queues its own fd there (the kernel holds it until accepted), and poll
 * accepts and maps what has arrived. No side waits for the other inside
 * conn_establish, so the order in which ranks establish cannot deadlock.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "transport/shm/memfd.h"
#include "transport/transport.h"

#define SHM_MAGIC 0x4d534c52u /* "RLSM" */
#define SHM_VERSION 1
#define SHM_NSLOTS 64u
#define SHM_PAYLOAD 16384u
#define SHM_STRIDE (64u + SHM_PAYLOAD)
/* Payloads up to this start right after the 32-byte slot header, so a
 * 64-byte control record costs two cache lines; larger ones start on the
 * next line, aligned. */
#define SHM_NEAR_MAX 4096u
#define SHM_SEG_HDR 128u
#define SHM_MAX_OPS 4096
#define SHM_CQ_EXTRA 256 /* room for error completions beyond the sends */
#define SHM_LIVENESS_NS 1000000LL
#define SHM_LEN_MASK 0xffffffu
#define SHM_F_IMM 1u

/* Geometry a peer may announce: bounded so a peer cannot make us map or
 * index absurd sizes. */
#define SHM_MIN_SLOTS 2u
#define SHM_MAX_SLOTS 4096u
#define SHM_MIN_STRIDE (64u + SHM_NEAR_MAX)
#define SHM_MAX_STRIDE (64u + (4u << 20))

typedef struct {
    _Atomic uint64_t seq; /* index + 1 once published */
    _Atomic uint64_t raddr;
    _Atomic uint64_t rkey;
    _Atomic uint32_t lenflags; /* len in the low 24 bits, SHM_F_* above */
    _Atomic uint32_t imm;
} slot_hdr_t;

typedef struct {
    uint32_t magic, version, nslots, stride; /* line 0: for debugging only */
    char pad0[48];
    _Atomic uint64_t consumed; /* line 1: peer's slots this side consumed */
    char pad1[56];
} seg_hdr_t;

_Static_assert(sizeof(slot_hdr_t) == 32, "slot header is half a cache line");
_Static_assert(sizeof(seg_hdr_t) == SHM_SEG_HDR, "segment header is two lines");

/* Connection data carried through the bootstrap. */
typedef struct {
    uint32_t magic;
    uint16_t version, pad;
    int32_t pid, rank;
    uint32_t nslots, stride;
    uint64_t tag;       /* this connection, as the fd message names it */
    uint8_t token[16];  /* the sender's socket name */
    uint8_t boot_id[16];
} blob_t;

/* What travels with the fd. */
typedef struct {
    uint32_t magic, version;
    uint64_t dst_tag, src_tag;
} fdmsg_t;

typedef struct op {
    struct op *next;
    void *ctx;
    const uint8_t *src;
    size_t len, off;
    uint64_t raddr, rkey;
    uint32_t imm;
    int has_imm;
} op_t;

struct rl_tp_mr {
    rl_tp_t *tp;
    uintptr_t base;
    size_t len;
    unsigned access;
    uint32_t idx, gen;
};

typedef struct {
    rl_tp_mr_t *mr; /* NULL when free */
    uint32_t gen;
    uint32_t next_free;
} mr_slot_t;

struct rl_tp_conn {
    rl_tp_t *tp;
    int peer, index;
    uint64_t tag, peer_tag;
    int established, broken;
    /* mine: outbound slots and my consumed count of the peer's */
    int memfd;
    uint8_t *seg;
    size_t seg_len;
    /* the peer's, mapped read-only */
    const uint8_t *pseg;
    size_t pseg_len;
    uint32_t pnslots, pstride;
    pid_t peer_pid;
    int rx_fd;            /* received, not yet mapped */
    pid_t rx_pid;         /* the sender's pid per the kernel */
    uint64_t rx_src_tag;
    /* transmit */
    uint64_t head, tail_cache;
    op_t *q_head, *q_tail;
    /* receive */
    uint64_t rx_head;
};

struct rl_tp {
    int rank, nranks;
    pid_t pid;
    uid_t uid;
    int lfd;
    uint8_t token[16], boot_id[16];
    rl_tp_conn_t **conns;
    int nconns, cap_conns, unmapped, rr;
    int *pend;
    int npend, cap_pend;
    int *pidfd;   /* per rank, -1 if none */
    char *dead;   /* per rank: reported */
    mr_slot_t *mrs;
    uint32_t nmrs, cap_mrs, free_mr;
    rl_tp_cqe_t *cq;
    unsigned cq_cap, cq_head, cq_tail;
    int outstanding;
    op_t *ops, *free_ops;
    int64_t next_live;
    unsigned polls;
    int quiesced; /* after quiesce: nothing moves, writes fail */
    char desc[64];
    char err[256];
};

#define SHM_NO_FREE 0xffffffffu

static rl_status_t shm_err(rl_tp_t *tp, rl_status_t st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static rl_status_t shm_err(rl_tp_t *tp, rl_status_t st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tp->err, sizeof(tp->err), fmt, ap);
    va_end(ap);
    RL_DEBUG("shm: %s", tp->err);
    return st;
}

static size_t seg_bytes(uint32_t nslots, uint32_t stride)
{
    size_t n = SHM_SEG_HDR + (size_t)nslots * stride;
    return (n + 4095) & ~(size_t)4095;
}

static seg_hdr_t *my_hdr(rl_tp_conn_t *c) { return (seg_hdr_t *)c->seg; }
static const seg_hdr_t *peer_hdr(rl_tp_conn_t *c) { return (const seg_hdr_t *)c->pseg; }

/* ------------------------------------------------------------ completions */

static void cq_push(rl_tp_t *tp, rl_tp_cqe_t e)
{
    if (tp->cq_tail - tp->cq_head >= tp->cq_cap)
        return; /* only error reports can overflow: one per peer suffices */
    tp->cq[tp->cq_tail++ % tp->cq_cap] = e;
}

/* A broken connection: every queued write completes with the error, and
 * one receive error names the peer (comm's failure path takes it). */
static void conn_break(rl_tp_conn_t *c, rl_status_t st)
{
    rl_tp_t *tp = c->tp;
    if (c->broken)
        return;
    c->broken = 1;
    if (c->established && !c->pseg)
        tp->unmapped--;
    for (op_t *o = c->q_head; o;) {
        op_t *nx = o->next;
        cq_push(tp, (rl_tp_cqe_t){.kind = RL_CQE_SEND, .status = st, .ctx = o->ctx, .peer = c->peer});
        o->next = tp->free_ops;
        tp->free_ops = o;
        o = nx;
    }
    c->q_head = c->q_tail = NULL;
    cq_push(tp, (rl_tp_cqe_t){.kind = RL_CQE_RECV_IMM, .status = st, .peer = c->peer});
}

/* ------------------------------------------------------------ fd passing */

static rl_tp_conn_t *conn_by_tag(rl_tp_t *tp, uint64_t tag)
{
    for (int i = 0; i < tp->nconns; i++)
        if (tp->conns[i] && tp->conns[i]->tag == tag)
            return tp->conns[i];
    return NULL;
}

/* Map the peer's segment once its fd is here and the connection knows
 * what to expect; anything off is a broken connection. */
static void try_map(rl_tp_conn_t *c)
{
    rl_tp_t *tp = c->tp;
    if (c->rx_fd < 0 || !c->established || c->broken || c->pseg)
        return;
    int fd = c->rx_fd;
    c->rx_fd = -1;
    size_t want = seg_bytes(c->pnslots, c->pstride);
    const char *why = NULL;
    if (c->rx_src_tag != c->peer_tag)
        why = "an fd for another connection";
    else if (c->rx_pid != c->peer_pid)
        why = "an fd from a process other than the one it announced";
    else
        why = rl_memfd_check(fd, want);
    if (why) {
        close(fd);
        shm_err(tp, RL_ERR_PROTOCOL, "rank %d (pid %d) sent %s", c->peer, (int)c->peer_pid, why);
        conn_break(c, RL_ERR_PROTOCOL);
        return;
    }
    void *p = mmap(NULL, want, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        shm_err(tp, RL_ERR_TRANSPORT, "mapping rank %d's segment: %s", c->peer, strerror(errno));
        conn_break(c, RL_ERR_TRANSPORT);
        return;
    }
    c->pseg = p;
    c->pseg_len = want;
    tp->unmapped--;
}

static void take_fd(rl_tp_t *tp, const fdmsg_t *m, int fd, pid_t pid)
{
    rl_tp_conn_t *c = m->magic == SHM_MAGIC && m->version == SHM_VERSION ? conn_by_tag(tp, m->dst_tag) : NULL;
    if (!c || c->rx_fd >= 0 || c->pseg) {
        RL_WARN("shm: rank %d: dropped an fd message that names no connection here (pid %d)", tp->rank, (int)pid);
        close(fd);
        return;
    }
    c->rx_fd = fd;
    c->rx_pid = pid;
    c->rx_src_tag = m->src_tag;
    try_map(c);
}

/* 1: done with this socket; 0: nothing yet. */
static int read_fd_msg(rl_tp_t *tp, int s)
{
    fdmsg_t m;
    int fd;
    pid_t pid;
    int r = rl_memfd_recv(s, &m, sizeof(m), tp->uid, &fd, &pid);
    if (r == 0)
        return 0;
    if (fd >= 0)
        take_fd(tp, &m, fd, pid);
    else if (r > 0)
        RL_WARN("shm: rank %d: refused a malformed or foreign connection on its socket", tp->rank);
    return 1;
}

static void accept_pending(rl_tp_t *tp)
{
    for (;;) {
        int s = accept4(tp->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (s < 0)
            break;
        if (tp->npend == tp->cap_pend) {
            int cap = tp->cap_pend ? 2 * tp->cap_pend : 16;
            int *p = realloc(tp->pend, sizeof(int) * (size_t)cap);
            if (!p) {
                close(s);
                break;
            }
            tp->pend = p;
            tp->cap_pend = cap;
        }
        tp->pend[tp->npend++] = s;
    }
    for (int i = 0; i < tp->npend;) {
        if (read_fd_msg(tp, tp->pend[i])) {
            close(tp->pend[i]);
            tp->pend[i] = tp->pend[--tp->npend];
        } else {
            i++;
        }
    }
}

/* Queue this side's segment at the peer's socket; the kernel keeps it
 * until the peer accepts, so this never waits for the peer to act. */
static rl_status_t send_fd(rl_tp_conn_t *c, const blob_t *b, int64_t deadline)
{
    rl_tp_t *tp = c->tp;
    fdmsg_t m = {.magic = SHM_MAGIC, .version = SHM_VERSION, .dst_tag = c->peer_tag, .src_tag = c->tag};
    for (;;) {
        int r = rl_memfd_send(b->token, &m, sizeof(m), c->memfd);
        if (r == 0)
            return RL_OK;
        if (r < 0 && errno == EIO)
            return shm_err(tp, RL_ERR_TRANSPORT, "sending the segment to rank %d: short write", c->peer);
        if (r < 0)
            return shm_err(tp, RL_ERR_UNSUPPORTED,
                           "rank %d's shared-memory socket is unreachable (%s): not on this host or not in this "
                           "network namespace",
                           c->peer, strerror(errno));
        if (rl_now_ns() > deadline)
            return shm_err(tp, RL_ERR_TIMEOUT, "rank %d's shared-memory socket stayed full", c->peer);
        accept_pending(tp); /* ours may be the full one the peer waits on */
        usleep(200);
    }
}

/* ------------------------------------------------------------ open/close */

static void shm_tp_close(rl_tp_t *tp)
{
    if (!tp)
        return;
    if (tp->lfd >= 0)
        close(tp->lfd);
    for (int i = 0; i < tp->npend; i++)
        close(tp->pend[i]);
    for (int r = 0; tp->pidfd && r < tp->nranks; r++)
        if (tp->pidfd[r] >= 0)
            close(tp->pidfd[r]);
    for (uint32_t i = 0; i < tp->nmrs; i++)
        free(tp->mrs[i].mr);
    free(tp->pend);
    free(tp->pidfd);
    free(tp->dead);
    free(tp->mrs);
    free(tp->conns);
    free(tp->cq);
    free(tp->ops);
    free(tp);
}

static rl_status_t shm_tp_open(const rl_tp_params_t *p, rl_tp_t **out, char *err, size_t errlen)
{
    if (!p->all_local) {
        snprintf(err, errlen, "shm needs every rank on this host (some run elsewhere)");
        return RL_ERR_UNSUPPORTED;
    }
    rl_tp_t *tp = calloc(1, sizeof(*tp));
    if (!tp)
        return RL_ERR_NO_MEMORY;
    tp->lfd = -1;
    tp->rank = p->rank;
    tp->nranks = p->nranks;
    tp->pid = getpid();
    tp->uid = getuid();
    tp->cq_cap = SHM_MAX_OPS + SHM_CQ_EXTRA;
    tp->free_mr = SHM_NO_FREE;
    tp->pidfd = malloc(sizeof(int) * (size_t)p->nranks);
    tp->dead = calloc((size_t)p->nranks, 1);
    tp->cq = calloc(tp->cq_cap, sizeof(rl_tp_cqe_t));
    tp->ops = calloc(SHM_MAX_OPS, sizeof(op_t));
    rl_status_t st = RL_ERR_NO_MEMORY;
    if (!tp->pidfd || !tp->dead || !tp->cq || !tp->ops)
        goto fail;
    for (int r = 0; r < p->nranks; r++)
        tp->pidfd[r] = -1;
    for (int i = 0; i < SHM_MAX_OPS; i++) {
        tp->ops[i].next = tp->free_ops;
        tp->free_ops = &tp->ops[i];
    }
    rl_memfd_boot_id(tp->boot_id);
    st = RL_ERR_TRANSPORT;
    if ((tp->lfd = rl_memfd_listen(tp->token)) < 0) {
        shm_err(tp, st, "abstract socket: %s", strerror(errno));
        goto fail;
    }
    snprintf(tp->desc, sizeof(tp->desc), "shm:memfd/%ux%uK", SHM_NSLOTS, SHM_PAYLOAD / 1024);
    RL_INFO("shm: native shared memory, %u slots of %u B per connection", SHM_NSLOTS, SHM_PAYLOAD);
    *out = tp;
    return RL_OK;
fail:
    snprintf(err, errlen, "%s", tp->err[0] ? tp->err : "out of memory");
    shm_tp_close(tp);
    return st;
}

static const char *shm_describe(rl_tp_t *tp) { return tp->desc; }

/* ------------------------------------------------------------ connections */

static rl_status_t conn_segment(rl_tp_conn_t *c)
{
    rl_tp_t *tp = c->tp;
    c->seg_len = seg_bytes(SHM_NSLOTS, SHM_STRIDE);
    void *p;
    if (rl_memfd_create("ringlet-shm", c->seg_len, &c->memfd, &p))
        return shm_err(tp, RL_ERR_TRANSPORT, "memfd: %s", strerror(errno));
    c->seg = p;
    seg_hdr_t *h = my_hdr(c);
    h->magic = SHM_MAGIC;
    h->version = SHM_VERSION;
    h->nslots = SHM_NSLOTS;
    h->stride = SHM_STRIDE;
    return RL_OK;
}

static void conn_free(rl_tp_conn_t *c)
{
    if (c->seg)
        munmap(c->seg, c->seg_len);
    if (c->pseg)
        munmap((void *)c->pseg, c->pseg_len);
    if (c->memfd >= 0)
        close(c->memfd);
    if (c->rx_fd >= 0)
        close(c->rx_fd);
    free(c);
}

static rl_status_t shm_conn_create(rl_tp_t *tp, int peer, int chan, rl_tp_conn_t **out, void *blob, size_t *len)
{
    (void)chan;
    if (*len < sizeof(blob_t) || peer < 0 || peer >= tp->nranks)
        return RL_ERR_INTERNAL;
    if (tp->nconns == tp->cap_conns) {
        int cap = tp->cap_conns ? 2 * tp->cap_conns : 16;
        rl_tp_conn_t **n = realloc(tp->conns, sizeof(*n) * (size_t)cap);
        if (!n)
            return RL_ERR_NO_MEMORY;
        tp->conns = n;
        tp->cap_conns = cap;
    }
    rl_tp_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return RL_ERR_NO_MEMORY;
    c->tp = tp;
    c->peer = peer;
    c->memfd = c->rx_fd = -1;
    rl_status_t st = conn_segment(c);
    if (st == RL_OK && rl_memfd_random(&c->tag, sizeof(c->tag)))
        st = shm_err(tp, RL_ERR_TRANSPORT, "getrandom: %s", strerror(errno));
    if (st != RL_OK) {
        conn_free(c);
        return st;
    }
    blob_t b = {.magic = SHM_MAGIC, .version = SHM_VERSION, .pid = (int32_t)tp->pid, .rank = tp->rank,
                .nslots = SHM_NSLOTS, .stride = SHM_STRIDE, .tag = c->tag};
    memcpy(b.token, tp->token, sizeof(b.token));
    memcpy(b.boot_id, tp->boot_id, sizeof(b.boot_id));
    memcpy(blob, &b, sizeof(b));
    *len = sizeof(b);
    c->index = tp->nconns;
    tp->conns[tp->nconns++] = c;
    *out = c;
    return RL_OK;
}

static void watch_peer(rl_tp_t *tp, int peer, pid_t pid)
{
    if (tp->pidfd[peer] >= 0)
        return;
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0)
        tp->pidfd[peer] = fd;
    else if (errno == ESRCH)
        tp->dead[peer] = 1; /* reported by the next poll */
    else
        RL_DEBUG("shm: pidfd_open(%d): %s; rank %d's liveness rests on the bootstrap", (int)pid, strerror(errno),
                 peer);
}

static rl_status_t shm_conn_establish(rl_tp_conn_t *c, const void *blob, size_t len, int64_t deadline)
{
    rl_tp_t *tp = c->tp;
    blob_t b;
    if (len != sizeof(b))
        return shm_err(tp, RL_ERR_PROTOCOL, "rank %d sent %zu bytes of connection data, expected %zu", c->peer, len,
                       sizeof(b));
    memcpy(&b, blob, sizeof(b));
    if (b.magic != SHM_MAGIC || b.version != SHM_VERSION)
        return shm_err(tp, RL_ERR_PROTOCOL, "rank %d's connection data is not shm version %d", c->peer, SHM_VERSION);
    if (b.rank != c->peer || b.pid <= 0 || b.nslots < SHM_MIN_SLOTS || b.nslots > SHM_MAX_SLOTS ||
        b.stride < SHM_MIN_STRIDE || b.stride > SHM_MAX_STRIDE || b.stride % 64)
        return shm_err(tp, RL_ERR_PROTOCOL, "rank %d's connection data is malformed (rank %d, pid %d, %u x %u)",
                       c->peer, b.rank, b.pid, b.nslots, b.stride);
    if (memcmp(b.boot_id, tp->boot_id, sizeof(b.boot_id)))
        return shm_err(tp, RL_ERR_UNSUPPORTED, "rank %d runs under another kernel (boot id differs): not on this host",
                       c->peer);
    c->peer_tag = b.tag;
    c->peer_pid = b.pid;
    c->pnslots = b.nslots;
    c->pstride = b.stride;
    watch_peer(tp, c->peer, b.pid);
    rl_status_t st = send_fd(c, &b, deadline);
    if (st != RL_OK)
        return st;
    close(c->memfd); /* the peer's queued message holds the file now */
    c->memfd = -1;
    c->established = 1;
    tp->unmapped++;
    accept_pending(tp);
    try_map(c);
    return RL_OK;
}

static void shm_conn_destroy(rl_tp_conn_t *c)
{
    if (!c)
        return;
    rl_tp_t *tp = c->tp;
    for (op_t *o = c->q_head; o;) {
        op_t *nx = o->next;
        o->next = tp->free_ops;
        tp->free_ops = o;
        tp->outstanding--;
        o = nx;
    }
    if (c->established && !c->broken && !c->pseg)
        tp->unmapped--;
    tp->conns[c->index] = tp->conns[--tp->nconns];
    tp->conns[c->index]->index = c->index;
    conn_free(c);
}

/* ------------------------------------------------------------ registrations */

static rl_status_t shm_mr_reg(rl_tp_t *tp, void *buf, size_t len, unsigned access, rl_tp_mr_t **out)
{
    rl_tp_mr_t *m = calloc(1, sizeof(*m));
    if (!m)
        return RL_ERR_NO_MEMORY;
    uint32_t idx = tp->free_mr;
    if (idx == SHM_NO_FREE) {
        if (tp->nmrs == tp->cap_mrs) {
            uint32_t cap = tp->cap_mrs ? 2 * tp->cap_mrs : 64;
            mr_slot_t *n = realloc(tp->mrs, sizeof(*n) * cap);
            if (!n) {
                free(m);
                return RL_ERR_NO_MEMORY;
            }
            tp->mrs = n;
            tp->cap_mrs = cap;
        }
        idx = tp->nmrs++;
        tp->mrs[idx].gen = 0;
    } else {
        tp->free_mr = tp->mrs[idx].next_free;
    }
    tp->mrs[idx].gen++;
    tp->mrs[idx].mr = m;
    *m = (rl_tp_mr_t){.tp = tp, .base = (uintptr_t)buf, .len = len, .access = access, .idx = idx,
                      .gen = tp->mrs[idx].gen};
    *out = m;
    return RL_OK;
}

static void shm_mr_dereg(rl_tp_mr_t *m)
{
    if (!m)
        return;
    rl_tp_t *tp = m->tp;
    tp->mrs[m->idx].mr = NULL;
    tp->mrs[m->idx].next_free = tp->free_mr;
    tp->free_mr = m->idx;
    free(m);
}

static void shm_mr_remote(rl_tp_mr_t *m, const rl_tp_conn_t *to, const void *ptr, rl_rkey_t *rk)
{
    (void)to;
    rk->addr = (uint64_t)(uintptr_t)ptr;
    rk->key = ((uint64_t)m->gen << 32) | (uint64_t)(m->idx + 1);
}

/* Where [raddr, raddr+len) lands here, or NULL if no live registration
 * with remote write holds all of it. */
static uint8_t *mr_target(rl_tp_t *tp, uint64_t raddr, uint64_t rkey, size_t len)
{
    uint64_t idx = (rkey & 0xffffffffu) - 1;
    if (idx >= tp->nmrs)
        return NULL;
    rl_tp_mr_t *m = tp->mrs[idx].mr;
    if (!m || m->gen != (uint32_t)(rkey >> 32) || !(m->access & RL_ACCESS_REMOTE_WRITE))
        return NULL;
    if (raddr < m->base || len > m->len || raddr - m->base > m->len - len)
        return NULL;
    return (uint8_t *)(uintptr_t)raddr;
}

/* ------------------------------------------------------------ data path */

static uint8_t *slot_at(uint8_t *seg, uint64_t i, uint32_t nslots, uint32_t stride)
{
    return seg + SHM_SEG_HDR + (size_t)(i % nslots) * stride;
}

static size_t payload_off(size_t len) { return len <= SHM_NEAR_MAX ? sizeof(slot_hdr_t) : 64; }

/* Room for one more slot; the peer's consumed count is checked, as it
 * comes from another process. */
static int tx_room(rl_tp_conn_t *c)
{
    if (c->head - c->tail_cache < SHM_NSLOTS)
        return 1;
    if (!c->pseg)
        return 0;
    uint64_t t = atomic_load_explicit((_Atomic uint64_t *)&peer_hdr(c)->consumed, memory_order_acquire);
    if (t < c->tail_cache || t > c->head) {
        shm_err(c->tp, RL_ERR_PROTOCOL, "rank %d claims to have consumed %llu slots of %llu sent", c->peer,
                (unsigned long long)t, (unsigned long long)c->head);
        conn_break(c, RL_ERR_PROTOCOL);
        return 0;
    }
    c->tail_cache = t;
    return c->head - t < SHM_NSLOTS;
}

static void tx_slot(rl_tp_conn_t *c, const uint8_t *src, size_t len, uint64_t raddr, uint64_t rkey, uint32_t flags,
                    uint32_t imm)
{
    uint8_t *s = slot_at(c->seg, c->head, SHM_NSLOTS, SHM_STRIDE);
    slot_hdr_t *h = (slot_hdr_t *)s;
    if (len)
        memcpy(s + payload_off(len), src, len);
    atomic_store_explicit(&h->raddr, raddr, memory_order_relaxed);
    atomic_store_explicit(&h->rkey, rkey, memory_order_relaxed);
    atomic_store_explicit(&h->lenflags, (uint32_t)len | flags << 24, memory_order_relaxed);
    atomic_store_explicit(&h->imm, imm, memory_order_relaxed);
    atomic_store_explicit(&h->seq, c->head + 1, memory_order_release);
    c->head++;
}

/* Copy what fits of op into the ring; 1 when all of it is in. */
static int tx_op(rl_tp_conn_t *c, op_t *o)
{
    do {
        if (!tx_room(c))
            return 0;
        size_t f = o->len - o->off < SHM_PAYLOAD ? o->len - o->off : SHM_PAYLOAD;
        int last = o->off + f == o->len;
        tx_slot(c, o->src + o->off, f, o->raddr + o->off, o->rkey, last && o->has_imm ? SHM_F_IMM : 0, o->imm);
        o->off += f;
    } while (o->off < o->len);
    return 1;
}

static void tx_progress(rl_tp_conn_t *c)
{
    rl_tp_t *tp = c->tp;
    while (c->q_head && !c->broken && tx_op(c, c->q_head)) {
        op_t *o = c->q_head;
        c->q_head = o->next;
        if (!c->q_head)
            c->q_tail = NULL;
        cq_push(tp, (rl_tp_cqe_t){.kind = RL_CQE_SEND, .status = RL_OK, .ctx = o->ctx, .peer = c->peer});
        o->next = tp->free_ops;
        tp->free_ops = o;
    }
}

static rl_status_t post(rl_tp_conn_t *c, const void *src, size_t len, uint64_t raddr, uint64_t rkey, int has_imm,
                        uint32_t imm, void *ctx)
{
    rl_tp_t *tp = c->tp;
    if (tp->quiesced)
        return shm_err(tp, RL_ERR_TRANSPORT, "write to rank %d after the transport was stopped", c->peer);
    if (tp->outstanding >= SHM_MAX_OPS)
        return RL_ERR_AGAIN;
    if (len && !src)
        return shm_err(tp, RL_ERR_INVALID_ARG, "write of %zu bytes without a source", len);
    tp->outstanding++;
    rl_tp_cqe_t done = {.kind = RL_CQE_SEND, .status = RL_OK, .ctx = ctx, .peer = c->peer};
    if (c->broken) {
        done.status = RL_ERR_PEER_FAILED;
        cq_push(tp, done);
        return RL_OK;
    }
    op_t tmp = {.ctx = ctx, .src = src, .len = len, .raddr = raddr, .rkey = rkey, .imm = imm, .has_imm = has_imm};
    if (!len && !has_imm) {
        cq_push(tp, done); /* nothing for the peer to see */
        return RL_OK;
    }
    if (!c->q_head && tx_op(c, &tmp)) {
        cq_push(tp, done);
        return RL_OK;
    }
    op_t *o = tp->free_ops; /* outstanding < SHM_MAX_OPS: never NULL */
    tp->free_ops = o->next;
    *o = tmp;
    o->next = NULL;
    if (c->q_tail)
        c->q_tail->next = o;
    else
        c->q_head = o;
    c->q_tail = o;
    return RL_OK;
}

static rl_status_t shm_write_imm(rl_tp_conn_t *c, const void *src, size_t len, rl_tp_mr_t *smr, uint64_t raddr,
                                 uint64_t rkey, uint32_t imm, void *ctx)
{
    (void)smr;
    return post(c, src, len, raddr, rkey, 1, imm, ctx);
}

static rl_status_t shm_write(rl_tp_conn_t *c, const void *src, size_t len, rl_tp_mr_t *smr, uint64_t raddr,
                             uint64_t rkey, void *ctx)
{
    (void)smr;
    return post(c, src, len, raddr, rkey, 0, 0, ctx);
}

/* Consume what the peer published, up to max immediates. */
static int rx_conn(rl_tp_conn_t *c, rl_tp_cqe_t *out, int max)
{
    rl_tp_t *tp = c->tp;
    int k = 0;
    while (k < max) {
        uint8_t *s = slot_at((uint8_t *)c->pseg, c->rx_head, c->pnslots, c->pstride);
        slot_hdr_t *h = (slot_hdr_t *)s;
        if (atomic_load_explicit(&h->seq, memory_order_acquire) != c->rx_head + 1)
            break;
        /* read once: the peer could change the slot while we look */
        uint64_t raddr = atomic_load_explicit(&h->raddr, memory_order_relaxed);
        uint64_t rkey = atomic_load_explicit(&h->rkey, memory_order_relaxed);
        uint32_t lf = atomic_load_explicit(&h->lenflags, memory_order_relaxed);
        uint32_t imm = atomic_load_explicit(&h->imm, memory_order_relaxed);
        size_t len = lf & SHM_LEN_MASK;
        uint32_t flags = lf >> 24;
        if ((flags & ~SHM_F_IMM) || payload_off(len) + len > c->pstride) {
            shm_err(tp, RL_ERR_PROTOCOL, "rank %d published a malformed slot (len %zu, flags 0x%x)", c->peer, len,
                    flags);
            conn_break(c, RL_ERR_PROTOCOL);
            break;
        }
        if (len) {
            uint8_t *dst = mr_target(tp, raddr, rkey, len);
            if (!dst) {
                shm_err(tp, RL_ERR_PROTOCOL,
                        "rank %d wrote %zu bytes at 0x%llx with key 0x%llx, outside any region registered here",
                        c->peer, len, (unsigned long long)raddr, (unsigned long long)rkey);
                conn_break(c, RL_ERR_PROTOCOL);
                break;
            }
            memcpy(dst, s + payload_off(len), len);
        }
        c->rx_head++;
        atomic_store_explicit(&my_hdr(c)->consumed, c->rx_head, memory_order_release);
        if (flags & SHM_F_IMM)
            out[k++] = (rl_tp_cqe_t){.kind = RL_CQE_RECV_IMM, .status = RL_OK, .imm = imm, .peer = c->peer};
    }
    return k;
}

/* Peers that exited break their connections. */
static void check_peers(rl_tp_t *tp)
{
    struct pollfd pf[64];
    int who[64], n = 0;
    for (int r = 0; r < tp->nranks; r++) {
        if (tp->dead[r] == 1) {
            tp->dead[r] = 2;
            shm_err(tp, RL_ERR_PEER_FAILED, "local peer rank %d is gone (its process had exited)", r);
            for (int i = 0; i < tp->nconns; i++)
                if (tp->conns[i]->peer == r)
                    conn_break(tp->conns[i], RL_ERR_PEER_FAILED);
        }
    }
    for (int r0 = 0; r0 < tp->nranks; r0 += n, n = 0) {
        for (int r = r0; r < tp->nranks && n < 64; r++, n++) {
            pf[n] = (struct pollfd){.fd = tp->dead[r] ? -1 : tp->pidfd[r], .events = POLLIN};
            who[n] = r;
        }
        if (poll(pf, (nfds_t)n, 0) <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            int r = who[i];
            tp->dead[r] = 2;
            shm_err(tp, RL_ERR_PEER_FAILED, "local peer rank %d exited", r);
            RL_INFO("shm: rank %d: %s", tp->rank, tp->err);
            for (int j = 0; j < tp->nconns; j++)
                if (tp->conns[j]->peer == r)
                    conn_break(tp->conns[j], RL_ERR_PEER_FAILED);
        }
    }
}

static int cq_pop(rl_tp_t *tp, rl_tp_cqe_t *out, int max)
{
    int k = 0;
    while (k < max && tp->cq_head != tp->cq_tail) {
        rl_tp_cqe_t e = tp->cq[tp->cq_head++ % tp->cq_cap];
        if (e.kind == RL_CQE_SEND)
            tp->outstanding--;
        out[k++] = e;
    }
    return k;
}

static rl_status_t shm_poll(rl_tp_t *tp, rl_tp_cqe_t *out, int max, int *n)
{
    int k = 0;
    *n = 0;
    if (tp->quiesced)
        return RL_OK;
    if ((++tp->polls & 63) == 0) {
        int64_t now = rl_coarse_ns();
        if (now >= tp->next_live) {
            tp->next_live = now + SHM_LIVENESS_NS;
            check_peers(tp);
        }
    }
    if (tp->unmapped > 0 || tp->npend > 0)
        accept_pending(tp);
    for (int i = 0; i < tp->nconns; i++)
        if (tp->conns[i]->q_head)
            tx_progress(tp->conns[i]);
    k += cq_pop(tp, out, max);
    int nc = tp->nconns;
    for (int j = 0; j < nc && k < max; j++) {
        rl_tp_conn_t *c = tp->conns[(tp->rr + j) % nc];
        if (c->pseg && !c->broken)
            k += rx_conn(c, out + k, max - k);
    }
    if (nc)
        tp->rr = (tp->rr + 1) % nc;
    k += cq_pop(tp, out + k, max - k); /* errors found while receiving */
    *n = k;
    return RL_OK;
}

/* Peers never write into this process (we copy out of their rings when we
 * poll), so stopping is local: queued writes are dropped before they read
 * a source buffer that goes back to the caller, and polls stop copying
 * into registered regions. */
static void shm_quiesce(rl_tp_t *tp)
{
    tp->quiesced = 1;
    for (int i = 0; i < tp->nconns; i++) {
        rl_tp_conn_t *c = tp->conns[i];
        for (op_t *o = c->q_head; o;) {
            op_t *nx = o->next;
            o->next = tp->free_ops;
            tp->free_ops = o;
            o = nx;
        }
        c->q_head = c->q_tail = NULL;
    }
}

static const char *shm_last_error(rl_tp_t *tp) { return tp->err; }

static int shm_pins_memory(rl_tp_t *tp)
{
    (void)tp;
    return 0;
}

const rl_tp_ops_t rl_tp_shm_ops = {
    .size = sizeof(rl_tp_ops_t),
    .name = "shm",
    .open = shm_tp_open,
    .close = shm_tp_close,
    .describe = shm_describe,
    .conn_create = shm_conn_create,
    .conn_establish = shm_conn_establish,
    .conn_destroy = shm_conn_destroy,
    .mr_reg = shm_mr_reg,
    .mr_dereg = shm_mr_dereg,
    .mr_remote = shm_mr_remote,
    .write_imm = shm_write_imm,
    .write = shm_write,
    .poll = shm_poll,
    .pins_memory = shm_pins_memory,
    .last_error = shm_last_error,
    .quiesce = shm_quiesce,
};
