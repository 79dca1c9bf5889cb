/*
 * Registrations: the user's (rl_mem_register) and a small cache of the ones
 * ringlet makes for buffers it was handed unregistered. A cached entry covers
 * whole pages and is found again by address range.
 *
 * A cache keyed by virtual address cannot see a buffer freed and another
 * mapped at the same address. Where registrations do not pin pages
 * (libfabric tcp, shm) a stale entry still names the right memory, so the
 * cache is on; where they pin (verbs), unregistered buffers are registered
 * for each call and released after it (RINGLET_REG_CACHE=1 overrides that
 * for programs that never free buffers they hand to ringlet).
 *
 * Whatever the cache setting, a buffer peers write into (an all-gather's or
 * a receive's output) is registered for exactly its bytes and only while
 * the operation runs: a page-rounded registration kept in the cache would
 * leave remote-writable the malloc headers and neighbours around it, and the
 * buffer itself once the program reuses or frees it.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/comm.h"
#include "core/log.h"

rl_status_t rl_mr_reg(struct rl_comm *c, void *buf, size_t len, unsigned access, rl_mr_t *mr)
{
    *mr = (rl_mr_t){{NULL}};
    for (int i = 0; i < c->ntp; i++) {
        rl_status_t st = c->tps[i].ops->mr_reg(c->tps[i].tp, buf, len, access, &mr->m[i]);
        if (st != RL_OK) {
            mr->m[i] = NULL;
            rl_mr_dereg(c, mr);
            return rl_tp_failed(c, i, st);
        }
    }
    return RL_OK;
}

void rl_mr_dereg(struct rl_comm *c, rl_mr_t *mr)
{
    for (int i = 0; i < RL_MAX_TP; i++) {
        if (mr->m[i])
            c->tps[i].ops->mr_dereg(mr->m[i]);
        mr->m[i] = NULL;
    }
}

static void reg_free(struct rl_comm *c, rl_regent_t *e)
{
    rl_mr_dereg(c, &e->mr);
    free(e);
}

static void unlink_ent(struct rl_comm *c, rl_regent_t *e)
{
    for (rl_regent_t **pp = &c->regs; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            c->nregs--;
            return;
        }
    }
}

/* Drop the least recently used idle cached entry once over the limit. */
static void evict(struct rl_comm *c)
{
    while (c->nregs > c->cfg.reg_cache_entries) {
        rl_regent_t *victim = NULL;
        for (rl_regent_t *e = c->regs; e; e = e->next)
            if (!e->pinned && e->refs == 0 && (!victim || e->used < victim->used))
                victim = e;
        if (!victim)
            return;
        unlink_ent(c, victim);
        reg_free(c, victim);
    }
}

static rl_status_t reg_new(struct rl_comm *c, const void *ptr, size_t len, unsigned access, int align,
                           rl_regent_t **out)
{
    rl_regent_t *e = calloc(1, sizeof(*e));
    if (!e)
        return RL_ERR_NO_MEMORY;
    uintptr_t lo = (uintptr_t)ptr, hi = lo + len;
    if (align) {
        uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
        lo &= ~(pg - 1);
        hi = (hi + pg - 1) & ~(pg - 1);
    }
    e->base = (char *)lo;
    e->len = hi - lo;
    e->access = access;
    rl_status_t st = rl_mr_reg(c, e->base, e->len, access, &e->mr);
    if (st != RL_OK) {
        /* Page rounding can reach an unmapped or read-only neighbour page. */
        if (align)
            st = rl_mr_reg(c, (void *)ptr, len, access, &e->mr), e->base = (char *)ptr, e->len = len;
        if (st != RL_OK) {
            free(e);
            return st;
        }
    }
    *out = e;
    return RL_OK;
}

rl_status_t rl_reg_acquire(struct rl_comm *c, const void *ptr, size_t len, unsigned access, rl_regent_t **out)
{
    const char *p = ptr;
    for (rl_regent_t *e = c->regs; e; e = e->next) {
        if (p >= e->base && p + len <= e->base + e->len && (e->access & access) == access) {
            e->refs++;
            e->used = ++c->reg_clock;
            *out = e;
            return RL_OK;
        }
    }
    rl_regent_t *e;
    int cache = c->cfg.reg_cache > 0 && !(access & RL_ACCESS_REMOTE_WRITE);
    rl_status_t st = reg_new(c, ptr, len, access, cache, &e);
    if (st != RL_OK)
        return st;
    e->refs = 1;
    e->used = ++c->reg_clock;
    e->cached = cache;
    if (e->cached) {
        e->next = c->regs;
        c->regs = e;
        c->nregs++;
        evict(c);
    }
    *out = e;
    return RL_OK;
}

void rl_reg_release(struct rl_comm *c, rl_regent_t *e)
{
    if (!e)
        return;
    e->refs--;
    if (!e->cached && !e->pinned && e->refs == 0)
        reg_free(c, e);
}

void rl_reg_cleanup(struct rl_comm *c)
{
    while (c->regs) {
        rl_regent_t *e = c->regs;
        c->regs = e->next;
        if (e->pinned)
            RL_WARN("rl_comm_destroy: a buffer registered with rl_mem_register was never deregistered");
        reg_free(c, e);
    }
    c->nregs = 0;
}

/*
 * Whether [lo, lo + len) is mapped readable and writable memory of this
 * process, from /proc/self/maps (sorted by address). Peers write into a
 * registered buffer, so verbs refuses anything else; libfabric tcp and shm
 * would accept any range, and the first write would fault far from the
 * call that caused it. Nonzero when it is; why says what is wrong if not.
 */
static int range_writable(uintptr_t lo, size_t len, char *why, size_t whylen)
{
    uintptr_t hi = lo + len, at = lo;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return 1; /* cannot tell: leave it to the provider */
    char line[512];
    while (at < hi && fgets(line, sizeof(line), f)) {
        uintptr_t a, b;
        char perms[8] = "";
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s", &a, &b, perms) != 3 || b <= at)
            continue;
        if (a > at)
            break; /* a hole before this mapping */
        if (perms[0] != 'r' || perms[1] != 'w') {
            snprintf(why, whylen, "%#" PRIxPTR " is in a mapping without read-write access (%s)", at, perms);
            fclose(f);
            return 0;
        }
        at = b;
    }
    fclose(f);
    if (at < hi)
        snprintf(why, whylen, "%#" PRIxPTR " is not mapped", at);
    return at >= hi;
}

rl_status_t rl_mem_register(rl_comm_t c, void *buf, size_t len, rl_mem_t *mem)
{
    if (!rl_comm_ok(c) || !buf || !len || !mem)
        return RL_ERR_INVALID_ARG;
    char why[160] = "";
    if (len > UINTPTR_MAX - (uintptr_t)buf) {
        snprintf(c->errmsg, sizeof(c->errmsg), "rl_mem_register(%p, %zu): the range wraps around the address space",
                 buf, len);
        return RL_ERR_INVALID_ARG;
    }
    if (!range_writable((uintptr_t)buf, len, why, sizeof(why))) {
        snprintf(c->errmsg, sizeof(c->errmsg), "rl_mem_register(%p, %zu): not writable memory of this process: %s",
                 buf, len, why);
        return RL_ERR_INVALID_ARG;
    }
    struct rl_mem *m = calloc(1, sizeof(*m));
    if (!m)
        return RL_ERR_NO_MEMORY;
    m->comm = c;
    if (c->ntp) {
        rl_status_t st = reg_new(c, buf, len, RL_ACCESS_LOCAL | RL_ACCESS_REMOTE_WRITE, 0, &m->ent);
        if (st != RL_OK) {
            snprintf(c->errmsg, sizeof(c->errmsg), "rl_mem_register(%p, %zu): %s", buf, len, rl_comm_tp_error(c));
            free(m);
            return st;
        }
        m->ent->pinned = 1;
        m->ent->next = c->regs;
        c->regs = m->ent;
        c->nregs++;
    }
    *mem = m;
    return RL_OK;
}

rl_status_t rl_mem_deregister(rl_comm_t c, rl_mem_t m)
{
    if (!rl_comm_ok(c) || !m || m->comm != c)
        return RL_ERR_INVALID_ARG;
    if (m->ent) {
        if (m->ent->refs > 0) {
            snprintf(c->errmsg, sizeof(c->errmsg), "rl_mem_deregister: the buffer is in use by a running operation");
            return RL_ERR_INVALID_ARG;
        }
        unlink_ent(c, m->ent);
        reg_free(c, m->ent);
    }
    free(m);
    return RL_OK;
}

/* Scratch for partial results: grown between operations. */
rl_status_t rl_comm_scratch(struct rl_comm *c, size_t len)
{
    if (len <= c->scratch_len)
        return RL_OK;
    if (c->scratch_ent) {
        rl_mr_dereg(c, &c->scratch_ent->mr);
        free(c->scratch_ent);
        c->scratch_ent = NULL;
    }
    free(c->scratch);
    c->scratch_len = 0;
    len = (len + 4095) & ~(size_t)4095;
    void *p = NULL;
    rl_regent_t *e = calloc(1, sizeof(*e));
    if (!e || posix_memalign(&p, 4096, len)) {
        free(e);
        c->scratch = NULL;
        return RL_ERR_NO_MEMORY;
    }
    c->scratch = p;
    /* peers write into it too: halving-doubling receives its halves here */
    unsigned access = RL_ACCESS_LOCAL | RL_ACCESS_REMOTE_WRITE;
    rl_status_t st = rl_mr_reg(c, p, len, access, &e->mr);
    if (st != RL_OK) {
        free(e);
        return st;
    }
    e->base = p;
    e->len = len;
    e->access = access;
    e->pinned = 1; /* owned by the communicator, not by the cache */
    c->scratch_ent = e;
    c->scratch_len = len;
    return RL_OK;
}

void rl_comm_scratch_free(struct rl_comm *c)
{
    if (c->scratch_ent) {
        rl_mr_dereg(c, &c->scratch_ent->mr);
        free(c->scratch_ent);
    }
    free(c->scratch);
    c->scratch = NULL;
    c->scratch_ent = NULL;
    c->scratch_len = 0;
}

/* ------------------------------------------------------------ shared allocations */

const rl_shseg_t *rl_shalloc_find(const struct rl_comm *c, const void *p, size_t len, size_t *off)
{
    uintptr_t a = (uintptr_t)p;
    for (const rl_shalloc_t *s = c->shallocs; s; s = s->next) {
        uintptr_t lo = (uintptr_t)s->seg.mine;
        if (s->seg.shared && a >= lo && a - lo <= s->seg.user_len && len <= s->seg.user_len - (a - lo)) {
            *off = a - lo;
            return &s->seg;
        }
    }
    return NULL;
}

const rl_shseg_t *rl_shalloc_by_id(const struct rl_comm *c, uint64_t id)
{
    for (const rl_shalloc_t *s = c->shallocs; s; s = s->next)
        if (s->seg.id == id)
            return s->seg.shared ? &s->seg : NULL;
    return NULL;
}

static void shalloc_free(struct rl_comm *c, rl_shalloc_t *s)
{
    if (s->ent) {
        unlink_ent(c, s->ent);
        reg_free(c, s->ent);
    }
    rl_shseg_close(c, &s->seg);
    free(s);
}

rl_status_t rl_mem_alloc(rl_comm_t c, size_t len, void **ptr)
{
    if (!rl_comm_ok(c))
        return RL_ERR_INVALID_ARG;
    if (!ptr || len > ((size_t)1 << 47)) {
        snprintf(c->errmsg, sizeof(c->errmsg), "rl_mem_alloc(%zu): %s", len,
                 ptr ? "larger than 2^47 bytes" : "the output pointer is NULL");
        return RL_ERR_INVALID_ARG;
    }
    if (c->failed != RL_OK)
        return c->failed;
    rl_shalloc_t *s = calloc(1, sizeof(*s));
    if (!s)
        return RL_ERR_NO_MEMORY;
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), maplen = len ? (len + pg - 1) & ~(pg - 1) : pg;
    int ok = !rl_shseg_open("ringlet-alloc", maplen, &s->seg);
    if (!ok)
        s->seg = (rl_shseg_t){.fd = -1, .len = maplen};
    s->seg.user_len = len;
    /* registered before it is shared: a rank whose registration fails
     * fails the call on every rank, as one without memory does */
    if (ok && c->ntp && reg_new(c, s->seg.mine, maplen, RL_ACCESS_LOCAL | RL_ACCESS_REMOTE_WRITE, 0, &s->ent) != RL_OK)
        ok = 0;
    char err[256] = "";
    rl_status_t st = rl_shseg_share(c, &s->seg, c->shalloc_ids + 1, ok, rl_deadline_ms(c->cfg.timeout_ms), err,
                                    sizeof(err));
    c->shalloc_ids++; /* every rank counts the call, failed or not */
    if (st != RL_OK) {
        snprintf(c->errmsg, sizeof(c->errmsg), "rl_mem_alloc(%zu): rank %d: %s", len, c->rank, err);
        if (s->ent)
            reg_free(c, s->ent);
        s->ent = NULL;
        rl_shseg_close(c, &s->seg);
        free(s);
        return st;
    }
    if (s->ent) {
        s->ent->pinned = 1;
        s->ent->next = c->regs;
        c->regs = s->ent;
        c->nregs++;
    }
    s->next = c->shallocs;
    c->shallocs = s;
    RL_DEBUG("rl_mem_alloc: rank %d: allocation %llu, %zu bytes, %s", c->rank, (unsigned long long)s->seg.id, len,
             s->seg.shared ? "mapped by the ranks of this host" : "not shared");
    *ptr = s->seg.mine;
    return RL_OK;
}

/* Whether a queued or running operation reads or writes [lo, lo + len). */
static int in_use(const struct rl_comm *c, const uint8_t *lo, size_t len)
{
    for (const struct rl_request *r = c->head; r; r = r->next)
        if ((r->in && (const uint8_t *)r->in >= lo && (const uint8_t *)r->in < lo + len) ||
            (r->out && (const uint8_t *)r->out >= lo && (const uint8_t *)r->out < lo + len))
            return 1;
    return 0;
}

rl_status_t rl_mem_free(rl_comm_t c, void *ptr)
{
    if (!rl_comm_ok(c))
        return RL_ERR_INVALID_ARG;
    rl_shalloc_t **pp = &c->shallocs;
    while (*pp && (*pp)->seg.mine != ptr)
        pp = &(*pp)->next;
    rl_shalloc_t *s = *pp;
    if (!s || !ptr) {
        snprintf(c->errmsg, sizeof(c->errmsg), "rl_mem_free(%p): not a pointer rl_mem_alloc returned on this "
                 "communicator (or freed already)", ptr);
        return RL_ERR_INVALID_ARG;
    }
    if ((s->ent && s->ent->refs > 0) || in_use(c, s->seg.mine, s->seg.len)) {
        snprintf(c->errmsg, sizeof(c->errmsg), "rl_mem_free(%p): an operation still uses the buffer", ptr);
        return RL_ERR_INVALID_ARG;
    }
    *pp = s->next;
    uint64_t id = s->seg.id;
    shalloc_free(c, s);
    /* Collective: every rank frees the same allocation. Nothing else needs
     * it: an operation reading peers' buffers in place ends only once every
     * peer is done with them, and a peer's mapping outlives our unmap. */
    if (c->nranks < 2 || c->failed != RL_OK)
        return RL_OK;
    uint64_t *all = calloc((size_t)c->nranks, sizeof(uint64_t));
    char err[256] = "";
    if (!all)
        return RL_ERR_NO_MEMORY;
    rl_status_t st = rl_boot_allgather(c->boot, &id, sizeof(id), all, rl_deadline_ms(c->cfg.timeout_ms), err,
                                       sizeof(err));
    if (st != RL_OK)
        snprintf(c->errmsg, sizeof(c->errmsg), "rl_mem_free: rank %d: %s", c->rank, err);
    for (int q = 0; st == RL_OK && q < c->nranks; q++)
        if (all[q] != id) {
            snprintf(c->errmsg, sizeof(c->errmsg), "rl_mem_free: rank %d freed allocation %llu, rank %d allocation "
                     "%llu (the calls must come in the same order on every rank)", c->rank,
                     (unsigned long long)id, q, (unsigned long long)all[q]);
            st = RL_ERR_MISMATCH;
        }
    free(all);
    return st;
}

void rl_shalloc_cleanup(struct rl_comm *c)
{
    if (c->shallocs)
        RL_WARN("rl_comm_destroy: rank %d: a buffer from rl_mem_alloc was never freed", c->rank);
    while (c->shallocs) {
        rl_shalloc_t *s = c->shallocs;
        c->shallocs = s->next;
        shalloc_free(c, s);
    }
}
