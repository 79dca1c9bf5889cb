/*
 * Shared segments: one sealed memfd per rank, mapped read-only by the other
 * ranks of its host. coll/direct.c keeps one per rank for its slots;
 * rl_mem_alloc (core/mem.c) makes one per allocation.
 *
 * Hand-over (collective over the communicator, every rank the same rounds):
 *  1. every rank announces its segment (length, pid, the random name of an
 *     abstract socket it listens on, boot id) through the bootstrap;
 *  2. it queues its fd at each same-host peer's socket (the kernel holds it
 *     until accepted); the group ANDs whether all went;
 *  3. it accepts its same-host peers' fds, checks each sender's uid and pid
 *     against the announcement and the fd's seals and size, maps it
 *     read-only; the group ANDs again.
 * Then the socket is closed: nobody can connect any more, nothing has a
 * name in /dev/shm, and the memory goes when the last process holding a
 * mapping exits (kill -9 included). A peer that cannot be reached (another
 * network namespace, another build) leaves the segment unshared on every
 * rank alike; a rank that cannot make its segment fails the call on every
 * rank.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/comm.h"
#include "core/log.h"
#include "transport/shm/memfd.h"

#define SHSEG_MAGIC 0x53534c52u /* "RLSS" */
#define SHSEG_VERSION 1

/* What each rank announces through the bootstrap. */
typedef struct {
    uint32_t magic, version;
    int32_t rank, pid;
    uint64_t id;       /* which segment: the same on every rank */
    uint64_t len;      /* of the memfd */
    uint64_t user_len; /* what the caller uses of it (<= len) */
    uint8_t token[RL_MEMFD_TOKEN];
    uint8_t boot_id[16];
    int32_t ok; /* this rank made its segment */
    int32_t pad;
} blob_t;

/* What travels with the fd. */
typedef struct {
    uint32_t magic, version;
    int32_t from, to;
    uint64_t id;
} fdmsg_t;

static int same_host(const struct rl_comm *c, int q) { return c->host_of && c->host_of[q] == c->host_of[c->rank]; }

int rl_shseg_open(const char *name, size_t len, rl_shseg_t *s)
{
    *s = (rl_shseg_t){.fd = -1};
    void *p;
    if (rl_memfd_create(name, len, &s->fd, &p))
        return -1;
    s->mine = p;
    s->len = s->user_len = len;
    return 0;
}

/* Whether every same-host peer's announcement is sane and of this kernel. */
static int blobs_ok(const struct rl_comm *c, const blob_t *all)
{
    const blob_t *me = &all[c->rank];
    for (int q = 0; q < c->nranks; q++) {
        const blob_t *b = &all[q];
        if (q == c->rank || !same_host(c, q))
            continue;
        if (b->magic != SHSEG_MAGIC || b->version != SHSEG_VERSION || b->rank != q || b->pid <= 0 ||
            b->id != me->id || b->user_len > b->len || memcmp(b->boot_id, me->boot_id, sizeof(b->boot_id))) {
            RL_INFO("rank %d: rank %d's shared-segment record does not match (another build or kernel): segment "
                    "%llu not shared", c->rank, q, (unsigned long long)me->id);
            return 0;
        }
    }
    return 1;
}

/* Queue my fd at every same-host peer's socket; 0 when all went. */
static int send_all(const struct rl_comm *c, const blob_t *all, int fd, int64_t dl)
{
    for (int q = 0; q < c->nranks; q++) {
        if (q == c->rank || !same_host(c, q))
            continue;
        fdmsg_t m = {.magic = SHSEG_MAGIC, .version = SHSEG_VERSION, .from = c->rank, .to = q, .id = all[q].id};
        int r;
        while ((r = rl_memfd_send(all[q].token, &m, sizeof(m), fd)) == 1 && rl_now_ns() < dl)
            usleep(200);
        if (r) {
            RL_INFO("rank %d: rank %d's socket is unreachable (%s): shared segment %llu not shared", c->rank, q,
                    r < 0 ? strerror(errno) : "full", (unsigned long long)all[q].id);
            return -1;
        }
    }
    return 0;
}

/* Map one received segment after checking who sent it and what it is. */
static int map_peer(struct rl_comm *c, rl_shseg_t *s, const blob_t *all, const fdmsg_t *m, int fd, pid_t pid)
{
    const char *why = NULL;
    if (m->magic != SHSEG_MAGIC || m->version != SHSEG_VERSION || m->to != c->rank || m->from < 0 ||
        m->from >= c->nranks || m->from == c->rank || !same_host(c, m->from) || m->id != all[c->rank].id)
        why = "a malformed message";
    else if (s->peer[m->from].base)
        why = "a second segment";
    else if (pid != all[m->from].pid)
        why = "a segment from another process than the one it announced";
    else
        why = rl_memfd_check(fd, (size_t)all[m->from].len);
    void *p = why ? MAP_FAILED : mmap(NULL, (size_t)all[m->from].len, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        RL_WARN("rank %d: refused %s (pid %d)", c->rank, why ? why : strerror(errno), (int)pid);
        return -1;
    }
    s->peer[m->from].base = p;
    s->peer[m->from].map_len = (size_t)all[m->from].len;
    return 0;
}

/* Take the fds the same-host peers queued (they were all sent before the
 * bootstrap round that precedes this, so they are there). */
static int recv_all(struct rl_comm *c, rl_shseg_t *s, const blob_t *all, int lfd, int64_t dl)
{
    int want = 0, got = 0;
    for (int q = 0; q < c->nranks; q++)
        want += q != c->rank && same_host(c, q);
    while (got < want) {
        int k = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (k < 0) {
            if (rl_now_ns() > dl)
                return -1;
            usleep(100);
            continue;
        }
        fdmsg_t m;
        int fd = -1, r;
        pid_t pid = -1;
        while ((r = rl_memfd_recv(k, &m, sizeof(m), getuid(), &fd, &pid)) == 0 && rl_now_ns() < dl)
            usleep(100);
        close(k);
        if (r <= 0 || fd < 0) {
            RL_WARN("rank %d: refused a malformed or foreign connection on its socket", c->rank);
            continue; /* a stranger: the real peers' messages are queued too */
        }
        if (map_peer(c, s, all, &m, fd, pid))
            return -1;
        got++;
    }
    return 0;
}

rl_status_t rl_comm_agree(struct rl_comm *c, int *flag, int64_t dl, char *err, size_t len)
{
    int32_t mine = *flag, *all = calloc((size_t)c->nranks, sizeof(int32_t));
    if (!all)
        return RL_ERR_NO_MEMORY;
    rl_status_t st = rl_boot_allgather(c->boot, &mine, sizeof(mine), all, dl, err, len);
    for (int q = 0; st == RL_OK && q < c->nranks; q++)
        *flag &= all[q] == 1;
    free(all);
    return st;
}

/* Every rank's announcement, or why the call fails on all of them. */
static rl_status_t announce(struct rl_comm *c, rl_shseg_t *s, uint64_t id, int ok, blob_t *all, int *lfd,
                            int64_t dl, char *err, size_t len)
{
    blob_t mine = {.magic = SHSEG_MAGIC, .version = SHSEG_VERSION, .rank = c->rank, .pid = (int32_t)getpid(),
                   .id = id, .len = s->len, .user_len = s->user_len, .ok = ok};
    rl_memfd_boot_id(mine.boot_id);
    if (ok && (*lfd = rl_memfd_listen(mine.token)) < 0) {
        RL_INFO("rank %d: abstract socket: %s: shared segment %llu not shared", c->rank, strerror(errno),
                (unsigned long long)id);
        mine.ok = 2; /* made, but cannot hand it over */
    }
    rl_status_t st = rl_boot_allgather(c->boot, &mine, sizeof(mine), all, dl, err, len);
    for (int q = 0; st == RL_OK && q < c->nranks; q++)
        if (!all[q].ok) {
            snprintf(err, len, "rank %d could not create its shared segment of %llu bytes", q,
                     (unsigned long long)all[q].len);
            st = RL_ERR_NO_MEMORY;
        }
    return st;
}

rl_status_t rl_shseg_share(struct rl_comm *c, rl_shseg_t *s, uint64_t id, int ok, int64_t dl, char *err,
                           size_t len)
{
    s->id = id;
    s->shared = 0;
    s->peer = calloc((size_t)c->nranks, sizeof(*s->peer));
    blob_t *all = calloc((size_t)c->nranks, sizeof(blob_t));
    if (!s->peer || !all) {
        free(all);
        snprintf(err, len, "rank %d: out of memory", c->rank);
        ok = 0; /* the others must not wait for this rank */
    }
    rl_status_t st = RL_OK;
    int lfd = -1, good = ok;
    if (c->nranks > 1 && all) {
        st = announce(c, s, id, ok, all, &lfd, dl, err, len);
        good = st == RL_OK && blobs_ok(c, all) && all[c->rank].ok == 1;
        for (int q = 0; st == RL_OK && q < c->nranks; q++)
            good &= all[q].ok == 1 || !same_host(c, q);
        good = good && !send_all(c, all, s->fd, dl);
        if (st == RL_OK)
            st = rl_comm_agree(c, &good, dl, err, len);
        /* only after a successful round: a failed peer sends nothing, and
         * waiting for it would last until the deadline */
        good = st == RL_OK && good && !recv_all(c, s, all, lfd, dl);
        if (st == RL_OK)
            st = rl_comm_agree(c, &good, dl, err, len);
    } else if (!all) {
        st = RL_ERR_NO_MEMORY;
    }
    if (lfd >= 0)
        close(lfd);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    if (st == RL_OK && !ok) {
        snprintf(err, len, "rank %d could not create its shared segment of %zu bytes", c->rank, s->len);
        st = RL_ERR_NO_MEMORY;
    }
    for (int q = 0; st == RL_OK && q < c->nranks; q++) {
        if (q == c->rank) {
            s->peer[q] = (rl_shpeer_t){.base = s->mine, .map_len = s->len, .len = s->user_len, .pid = getpid()};
        } else if (good && same_host(c, q)) {
            s->peer[q].map_len = (size_t)all[q].len;
            s->peer[q].len = (size_t)all[q].user_len;
            s->peer[q].pid = all[q].pid;
        } else if (s->peer[q].base) {
            munmap((void *)s->peer[q].base, s->peer[q].map_len);
            s->peer[q] = (rl_shpeer_t){0};
        }
    }
    s->shared = st == RL_OK && good;
    free(all);
    return st;
}

void rl_shseg_close(struct rl_comm *c, rl_shseg_t *s)
{
    for (int q = 0; s->peer && q < c->nranks; q++)
        if (q != c->rank && s->peer[q].base)
            munmap((void *)s->peer[q].base, s->peer[q].map_len);
    if (s->mine)
        munmap(s->mine, s->len);
    if (s->fd >= 0)
        close(s->fd);
    free(s->peer);
    *s = (rl_shseg_t){.fd = -1};
}
