/* The registry of algorithms, and what they share. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll/algo.h"
#include "core/comm.h"
#include "core/log.h"

#define RL_ALGO_DECL_(id) extern const rl_algo_t rl_algo_##id;
RL_ALGOS(RL_ALGO_DECL_)
#undef RL_ALGO_DECL_

/* The list itself is RL_ALGOS in coll/algo.h. */
static const rl_algo_t *const algos[] = {
#define RL_ALGO_REF_(id) &rl_algo_##id,
    RL_ALGOS(RL_ALGO_REF_)
#undef RL_ALGO_REF_
};
#define NALGOS ((int)(sizeof(algos) / sizeof(algos[0])))
_Static_assert(NALGOS <= RL_ALGO_MAX, "raise RL_ALGO_MAX");
_Static_assert(NALGOS == RL_ALGO_NIDS, "one registry id per algorithm");

int rl_algo_count(void) { return NALGOS; }

const rl_algo_t *rl_algo_at(int i) { return i >= 0 && i < NALGOS ? algos[i] : NULL; }

const rl_algo_t *rl_algo_find(const char *name, rl_coll_t coll)
{
    for (int i = 0; i < NALGOS; i++)
        if (!strcmp(algos[i]->name, name) && (algos[i]->colls & RL_COLL_BIT(coll)))
            return algos[i];
    return NULL;
}

int rl_algo_index(const rl_algo_t *a)
{
    if (a && a->id >= 0 && a->id < NALGOS && algos[a->id] == a)
        return a->id;
    for (int i = 0; i < NALGOS; i++)
        if (algos[i] == a)
            return i;
    return -1;
}

rl_status_t rl_algos_setup(struct rl_comm *c, int64_t dl, char *err, size_t len)
{
    for (int i = 0; i < NALGOS; i++)
        if (algos[i]->id != i) { /* a table whose .id is not its RL_ALGOS name */
            snprintf(err, len, "rank %d: algorithm %s has registry id %d, not %d", c->rank, algos[i]->name,
                     algos[i]->id, i);
            return RL_ERR_INTERNAL;
        }
    for (int i = 0; i < NALGOS; i++) {
        if (!algos[i]->comm_setup)
            continue;
        rl_status_t st = algos[i]->comm_setup(c, dl, err, len);
        if (st != RL_OK) {
            if (!err[0])
                snprintf(err, len, "rank %d: setting up %s failed: %s", c->rank, algos[i]->name, rl_strerror(st));
            return st;
        }
    }
    c->n_foreign = c->n_progress = 0;
    for (int i = 0; i < NALGOS; i++) {
        if (!c->algo_state[i])
            continue;
        if (algos[i]->foreign)
            c->hk_foreign[c->n_foreign++] = algos[i];
        if (algos[i]->comm_progress)
            c->hk_progress[c->n_progress++] = algos[i];
    }
    return RL_OK;
}

void rl_algos_teardown(struct rl_comm *c)
{
    for (int i = NALGOS - 1; i >= 0; i--)
        if (algos[i]->comm_teardown && c->algo_state[i])
            algos[i]->comm_teardown(c);
}

void rl_comm_route_imm(struct rl_comm *c, rl_imm_class_t cls, rl_imm_fn fn) { c->imm_fn[cls] = fn; }

struct rl_request *rl_request_alloc(struct rl_comm *c, const rl_algo_t *a)
{
    size_t need = sizeof(struct rl_request) + a->state_size;
    struct rl_request *r = NULL;
    for (int i = c->n_req_cache - 1; i >= 0 && !r; i--)
        if (c->req_cache[i]->alloc_size >= need) {
            r = c->req_cache[i];
            c->req_cache[i] = c->req_cache[--c->n_req_cache];
        }
    if (r) {
        size_t cap = r->alloc_size;
        memset(r, 0, need);
        r->alloc_size = cap;
    } else {
        size_t cap = need < RL_REQ_MIN_ALLOC ? RL_REQ_MIN_ALLOC : need;
        if (!(r = calloc(1, cap)))
            return NULL;
        r->alloc_size = cap;
    }
    r->magic = RL_REQ_MAGIC;
    r->comm = c;
    r->algo = a;
    return r;
}

int rl_coll_trivial(struct rl_comm *c, struct rl_request *r)
{
    if (c->nranks > 1 && r->count > 0)
        return 0;
    if (r->in != r->out && r->count)
        memmove(r->out, r->in, r->count * r->esize);
    return 1;
}

void rl_describe_call(char *buf, size_t len, int rank, uint32_t coll, uint64_t count, uint32_t dtype, uint32_t op,
                      int root)
{
    int pos = snprintf(buf, len, "rank %d called %s(count=%llu, %s", rank, rl_coll_name(coll),
                       (unsigned long long)count, rl_dtype_name((rl_dtype_t)dtype));
    if (pos < 0 || (size_t)pos >= len)
        return;
    if (coll == RL_COLL_ALL_REDUCE || coll == RL_COLL_REDUCE_SCATTER || coll == RL_COLL_REDUCE)
        pos += snprintf(buf + pos, len - (size_t)pos, ", %s", rl_op_name((rl_op_t)op));
    if ((size_t)pos < len && (coll == RL_COLL_BROADCAST || coll == RL_COLL_REDUCE || coll == RL_COLL_GATHER ||
                              coll == RL_COLL_SCATTER))
        pos += snprintf(buf + pos, len - (size_t)pos, ", root %d", root);
    if ((size_t)pos < len)
        snprintf(buf + pos, len - (size_t)pos, ")");
}

void rl_fail_mismatch(struct rl_comm *c, const struct rl_request *r, const rl_ctrl_t *h)
{
    char mine[160], theirs[160];
    rl_describe_call(mine, sizeof(mine), c->rank, r->coll, r->count, r->dtype, r->op, r->root);
    rl_describe_call(theirs, sizeof(theirs), h->rank, h->coll, h->count, h->dtype, h->op, h->root);
    rl_comm_fail(c, RL_ERR_MISMATCH, "operation %llu differs between ranks: %s, %s", (unsigned long long)r->seq,
                 mine, theirs);
}

rl_status_t rl_comm_sync(struct rl_comm *c, int64_t dl, char *err, size_t len)
{
    int32_t ok = 0, *oks = calloc((size_t)c->nranks, sizeof(int32_t));
    if (!oks)
        return RL_ERR_NO_MEMORY;
    rl_status_t st = rl_boot_allgather(c->boot, &ok, sizeof(ok), oks, dl, err, len);
    free(oks);
    return st;
}
