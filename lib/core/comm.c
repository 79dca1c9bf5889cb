/* Communicator: bootstrap, transport set-up, progress, failure, teardown. */
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/comm.h"
#include "core/launch.h"
#include "core/log.h"
#include "topo/topo.h"

#define HOSTNAME_MAX 64

/* What each rank tells the others before the transport opens. */
typedef struct {
    char host[HOSTNAME_MAX];
    char name[HOSTNAME_MAX]; /* what a fabric file calls the host: RINGLET_HOST_ID, else the host name */
    uint64_t order_hash;
    uint32_t nch, depth;
    uint64_t chunk_bytes, min_chunk_bytes;
    char transport[32];
    char intra[8];     /* RINGLET_INTRA_TRANSPORT: ranks must route alike */
    uint64_t sel_hash; /* the resolved algorithm table and model: ranks must pick alike */
} host_rec_t;

void rl_comm_fail(struct rl_comm *c, rl_status_t st, const char *fmt, ...)
{
    if (c->failed != RL_OK)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
    va_end(ap);
    /* An expired wait blames the rank it waited on, which may be waiting
     * too: ask the group who stalls it, so that every rank names the same. */
    if (st == RL_ERR_TIMEOUT && c->boot && c->nranks > 1) {
        char verdict[256], local[512];
        rl_status_t vs = rl_boot_stalled(c->boot, c->stall_peer, verdict, sizeof(verdict));
        c->stall_peer = -1;
        if (vs != RL_OK) {
            snprintf(local, sizeof(local), "%s", c->errmsg);
            snprintf(c->errmsg, sizeof(c->errmsg), "rank %d: %.250s (here: %.200s)", c->rank, verdict, local);
            st = vs;
        }
    }
    c->failed = st;
    RL_ERROR("%s (%s)", c->errmsg, rl_status_name(st));
    /* Nothing may move once the operations end: their buffers go back to
     * the caller, and their registrations are released below. */
    for (int i = 0; i < c->ntp; i++)
        if (c->tps[i].ops->quiesce)
            c->tps[i].ops->quiesce(c->tps[i].tp);
    for (struct rl_request *r = c->head; r; r = r->next) {
        r->status = st;
        rl_request_release(c, r);
    }
    for (int i = 0; i < rl_algo_count(); i++)
        if (rl_algo_at(i)->comm_fail && c->algo_state[i])
            rl_algo_at(i)->comm_fail(c, st);
    /* Peers must not wait for us: tell them through rank 0. */
    if (c->boot)
        rl_boot_abort(c->boot, st, c->rank, c->errmsg);
}

static void pop_head(struct rl_comm *c)
{
    struct rl_request *r = c->head;
    c->head = r->next;
    if (!c->head)
        c->tail = NULL;
    r->next = NULL;
    rl_request_release(c, r);
    r->comm = NULL; /* finished: the request no longer needs the communicator */
}

/* A completion error often means a peer died, and the transport may not
 * know which: give rank 0's failure report a moment (bounded) to arrive, so
 * the error names the rank that failed rather than only the symptom. */
static void transport_failure(struct rl_comm *c, int tpi, int peer)
{
    char symptom[256], msg[256];
    snprintf(symptom, sizeof(symptom), "%s", c->tps[tpi].ops->last_error(c->tps[tpi].tp));
    int64_t until = rl_now_ns() + 300000000LL;
    while (c->nranks > 1 && rl_now_ns() < until) {
        if (rl_boot_check(c->boot, msg, sizeof(msg)) != RL_OK) {
            rl_comm_fail(c, RL_ERR_PEER_FAILED, "rank %d: %s (seen here as: %s)", c->rank, msg, symptom);
            return;
        }
        usleep(5000);
    }
    if (peer >= 0)
        rl_comm_fail(c, RL_ERR_PEER_FAILED, "rank %d: transport error with rank %d: %s", c->rank, peer, symptom);
    else
        rl_comm_fail(c, RL_ERR_PEER_FAILED, "rank %d: transport error with a peer the transport cannot name: %s",
                     c->rank, symptom);
}

/* A send completion in error: the peer's route names the transport. */
void rl_comm_transport_failure(struct rl_comm *c, int peer)
{
    transport_failure(c, peer >= 0 && peer < c->nranks ? rl_route(c, peer) : c->err_tpi, peer);
}

/* Advance the head operation; nonzero when it finished (or failed). */
static int advance(struct rl_comm *c, struct rl_request *r)
{
    if (!r->started) {
        /* a peer's message for this operation that another algorithm
         * owns: the ranks called different operations */
        for (int i = 0; i < c->n_foreign && c->failed == RL_OK; i++)
            if (c->hk_foreign[i] != r->algo && RL_ALGO_STATE(c, c->hk_foreign[i]))
                c->hk_foreign[i]->foreign(c, r);
        if (c->failed != RL_OK)
            return 1;
        r->started = 1;
        r->start_ns = rl_log_level_cur >= RL_LOG_DEBUG ? rl_now_ns() : 0; /* for step traces only */
        rl_status_t st = r->algo->start(c, r);
        if (st == RL_OK) {
            r->status = RL_OK;
            return 1;
        }
        if (st != RL_INPROGRESS) {
            rl_comm_fail(c, st, "rank %d: starting %s (%s) failed: %s", c->rank, rl_coll_name(r->coll), r->algo->name,
                         c->ntp ? rl_comm_tp_error(c) : rl_strerror(st));
            return 1;
        }
    }
    return r->algo->progress(c, r);
}

static void poll_transport(struct rl_comm *c, int tpi)
{
    rl_tp_cqe_t ev[16];
    const rl_tport_t *t = &c->tps[tpi];
    for (int round = 0; round < 8; round++) {
        int n = 0;
        rl_status_t st = t->ops->poll(t->tp, ev, 16, &n);
        if (st != RL_OK) {
            rl_comm_fail(c, st, "rank %d: polling %s completions failed: %s", c->rank, t->ops->name,
                         t->ops->last_error(t->tp));
            return;
        }
        c->nevents += (uint64_t)n;
        for (int i = 0; i < n && c->failed == RL_OK; i++) {
            if (ev[i].kind == RL_CQE_SEND) {
                rl_compl_t *k = ev[i].ctx;
                k->fn(c, k, ev[i].status);
            } else if (ev[i].status != RL_OK) {
                transport_failure(c, tpi, ev[i].peer);
            } else {
                rl_imm_fn fn = c->imm_fn[rl_imm_class(ev[i].imm)];
                if (fn)
                    fn(c, ev[i].imm);
                else
                    rl_comm_fail(c, RL_ERR_PROTOCOL, "rank %d: unexpected immediate 0x%08x (no one handles its kind)",
                                 c->rank, ev[i].imm);
            }
        }
        if (n < 16 || c->failed != RL_OK)
            return;
    }
}

/* Failures rank 0 relayed, every 2-6 ms (a syscall per rank; the coarse
 * clock, since this runs on every progress call). Checked before
 * completions are taken: an operation that starts after a failure was
 * relayed fails, even if a transport fast enough (native shm) could finish
 * it in its first progress call from data sent before the failure. */
static void boot_check_due(struct rl_comm *c)
{
    if (c->nranks < 2 || c->failed != RL_OK)
        return;
    int64_t now = rl_coarse_ns();
    if (now < c->next_boot_check)
        return;
    c->next_boot_check = now + 2000000;
    char msg[256];
    rl_status_t st = rl_boot_check(c->boot, msg, sizeof(msg));
    if (st != RL_OK)
        rl_comm_fail(c, st, "rank %d: %s", c->rank, msg);
}

rl_status_t rl_comm_progress(struct rl_comm *c)
{
    if (c->failed != RL_OK)
        return c->failed;
    if (atomic_load(&c->abort_flag)) {
        rl_comm_fail(c, RL_ERR_ABORTED, "rank %d: rl_comm_abort() was called", c->rank);
        return c->failed;
    }
    boot_check_due(c);
    if (c->failed != RL_OK)
        return c->failed;
    /* contexts and immediates do not depend on the transport; the last one
     * (shm when it is open) never blocks and is taken first */
    for (int i = c->ntp - 1; i >= 0 && c->failed == RL_OK; i--)
        poll_transport(c, i);
    while (c->head && c->failed == RL_OK && advance(c, c->head))
        pop_head(c);
    for (int i = 0; i < c->n_progress && c->failed == RL_OK; i++)
        if (RL_ALGO_STATE(c, c->hk_progress[i]))
            c->hk_progress[i]->comm_progress(c);
    /* a collective built on point-to-point messages can take its next step
     * now rather than after the next yield */
    while (c->head && c->head->algo->on_p2p && c->failed == RL_OK && advance(c, c->head))
        pop_head(c);
    return c->failed;
}

int rl_comm_poll_head(struct rl_comm *c)
{
    struct rl_request *r = c->head;
    if (!r || !r->started || !r->algo->self_driven || c->failed != RL_OK)
        return 0;
    if (r->algo->progress(c, r))
        pop_head(c);
    return 1;
}

static void comm_err(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void comm_err(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

/* rank, size and address: explicit options, then RINGLET_*, then torchrun's. */
static rl_status_t resolve_identity(const rl_comm_opts_t *o, rl_config_t *cfg, char *err, size_t len)
{
    if (o && o->nranks > 0) {
        cfg->rank = o->rank;
        cfg->size = o->nranks;
    }
    if (o && o->addr)
        snprintf(cfg->addr, sizeof(cfg->addr), "%s", o->addr);
    if (o && o->timeout_ms > 0)
        cfg->timeout_ms = o->timeout_ms;
    const char *r = getenv("RANK"), *w = getenv("WORLD_SIZE");
    if (cfg->rank < 0 && r)
        cfg->rank = atoi(r);
    if (cfg->size < 0 && w)
        cfg->size = atoi(w);
    if (!cfg->addr[0]) {
        const char *ma = getenv("MASTER_ADDR"), *mp = getenv("MASTER_PORT");
        if (ma && mp)
            snprintf(cfg->addr, sizeof(cfg->addr), "%s:%d", ma, atoi(mp) + 1);
    }
    if (cfg->size < 1) {
        comm_err(err, len, "group size unknown: set RINGLET_SIZE (or WORLD_SIZE), or pass opts.nranks");
        return RL_ERR_CONFIG;
    }
    if (cfg->rank < 0 || cfg->rank >= cfg->size) {
        comm_err(err, len, "rank %d is not in [0, %d): set RINGLET_RANK (or RANK)", cfg->rank, cfg->size);
        return RL_ERR_CONFIG;
    }
    if (cfg->size > 1 && !cfg->addr[0]) {
        comm_err(err, len, "rank 0's address unknown: set RINGLET_ADDR=host:port (or MASTER_ADDR/MASTER_PORT)");
        return RL_ERR_CONFIG;
    }
    return RL_OK;
}

static uint64_t hash_order(const int *order, int n)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++) /* n: every ring's entries */
        h = (h ^ (uint64_t)order[i]) * 1099511628211ull;
    return h;
}

/* For the bootstrap's liveness reports: the rank the oldest running
 * operation waits on (operations finish in issue order), or -1. */
static int current_wait(void *arg)
{
    struct rl_comm *c = arg;
    struct rl_request *r = c->head;
    if (!r || !r->started || c->failed != RL_OK || !r->algo || !r->algo->describe_wait)
        return -1;
    char buf[256];
    int saved = c->stall_peer;
    c->stall_peer = -1;
    r->algo->describe_wait(c, r, buf, sizeof(buf));
    int w = c->stall_peer;
    c->stall_peer = saved;
    return w;
}

/* RINGLET_TOPO_FILE's bytes, hashed: ranks must plan on one fabric. */
static rl_status_t topo_file_hash(struct rl_comm *c, char *err, size_t len)
{
    if (strcmp(c->cfg.topo_place, "auto") && strcmp(c->cfg.topo_place, "hosts")) {
        snprintf(err, len, "RINGLET_TOPO_PLACE=%s: expected auto, hosts or file", c->cfg.topo_place);
        return RL_ERR_CONFIG;
    }
    FILE *f = fopen(c->cfg.topo_file, "rb");
    if (!f) {
        snprintf(err, len, "RINGLET_TOPO_FILE %s: cannot open it", c->cfg.topo_file);
        return RL_ERR_CONFIG;
    }
    uint64_t h = 1469598103934665603ull;
    int ch;
    while ((ch = getc(f)) != EOF)
        h = (h ^ (uint64_t)ch) * 1099511628211ull;
    fclose(f);
    c->topo_hash = h ^ (uint64_t)c->cfg.topo_rings ^ ((uint64_t)c->cfg.topo_place[0] << 8);
    for (int i = 0; i < c->nranks; i++) /* rank order until planned */
        c->order[i] = i;
    return RL_OK;
}

static int cmp_host(const void *a, const void *b, void *arg)
{
    const host_rec_t *all = arg;
    int x = *(const int *)a, y = *(const int *)b, d = strcmp(all[x].host, all[y].host);
    return d ? d : x - y;
}

/* Number the hosts (in the order of their identities, the same on every
 * rank) in O(n log n); note whether every host has as many ranks (the
 * hierarchical algorithms need it). */
static void number_hosts(struct rl_comm *c, const host_rec_t *all)
{
    int n = c->nranks, *idx = malloc(sizeof(int) * (size_t)n);
    c->nhosts = 0;
    c->ranks_per_host = 0;
    if (!idx)
        return;
    for (int r = 0; r < n; r++)
        idx[r] = r;
    qsort_r(idx, (size_t)n, sizeof(int), cmp_host, (void *)all);
    int uniform = 1, run = 0, first = 0;
    for (int i = 0; i < n; i++) {
        if (i && strcmp(all[idx[i]].host, all[idx[i - 1]].host)) {
            uniform &= !first || run == first;
            first = first ? first : run;
            c->nhosts++;
            run = 0;
        }
        c->host_of[idx[i]] = c->nhosts;
        run++;
    }
    uniform &= !first || run == first;
    c->nhosts++;
    c->ranks_per_host = uniform ? n / c->nhosts : 0;
    free(idx);
}

/* The NIC of each of this rank's channels from RINGLET_TOPO_FILE, placed
 * as the plan was (names: by host, NULL: as the file says). Every input
 * is what the ring plan was made from (file bytes and settings hashed,
 * host names exchanged), so the two ends of a hop choose alike. Only a
 * rank whose host has several NICs gets one; the transport applies it in
 * pin_chan_nics. */
static void plan_chan_nics(struct rl_comm *c, const char *const *names)
{
    char why[256] = "";
    if (!(c->chan_nic = calloc((size_t)c->nch, sizeof(*c->chan_nic))))
        return;
    if (rl_topo_chan_devs_file(c->cfg.topo_file, c->nranks, names, c->rank, c->nch, c->chan_nic, why,
                               sizeof(why)) == RL_OK) {
        c->nchan_nic = c->nch;
        return;
    }
    RL_DEBUG("RINGLET_TOPO_FILE: no NIC per channel: %s", why);
    free(c->chan_nic);
    c->chan_nic = NULL;
}

/* Hand the plan's NIC per channel to the network transport; when it cannot
 * take them (no device by one of the names, or one device), it keeps its
 * round-robin. */
static void pin_chan_nics(struct rl_comm *c)
{
    rl_tport_t *t = &c->tps[0];
    char why[256] = "the transport picks its own device";
    if (!c->nchan_nic)
        return;
    if (t->ops->pin_channels && t->ops->pin_channels(t->tp, (const char(*)[32])c->chan_nic, c->nchan_nic, why,
                                                     sizeof(why))) {
        char list[256] = "";
        for (int i = 0, pos = 0; i < c->nchan_nic && pos < (int)sizeof(list); i++)
            pos += snprintf(list + pos, sizeof(list) - (size_t)pos, "%s%d:%s", i ? "," : "", i, c->chan_nic[i]);
        RL_INFO("rank %d: channel NICs from RINGLET_TOPO_FILE (channel:device) %s", c->rank, list);
        return;
    }
    RL_INFO("rank %d: RINGLET_TOPO_FILE names a NIC per channel, but %s: channels round-robin over the devices",
            c->rank, why);
}

/* RINGLET_TOPO_FILE with the ranks where they run: every rank has every
 * rank's host name now, so all plan alike. */
static rl_status_t plan_on_hosts(struct rl_comm *c, const host_rec_t *all, char *err, size_t len)
{
    const char **names = malloc(sizeof(char *) * (size_t)c->nranks);
    if (!names)
        return RL_ERR_NO_MEMORY;
    for (int r = 0; r < c->nranks; r++)
        names[r] = all[r].name;
    char desc[512];
    int want = c->cfg.topo_rings ? c->cfg.topo_rings : RL_MAX_CHANNELS, missing = -1;
    const char *how = "where the ranks run";
    rl_status_t st = rl_topo_ring_order_hosts(c->cfg.topo_file, c->nranks, names, want, c->order, &c->nrings,
                                              &missing, desc, sizeof(desc), err, len);
    if (st == RL_ERR_CONFIG && missing >= 0 && !strcmp(c->cfg.topo_place, "auto")) {
        how = "as the file places them (it does not name every rank's host)";
        st = rl_topo_ring_order_file(c->cfg.topo_file, c->nranks, want, c->order, &c->nrings, desc, sizeof(desc),
                                     err, len);
    }
    if (st == RL_OK && c->nch < c->nrings)
        c->nch = c->nrings;
    if (st == RL_OK)
        plan_chan_nics(c, missing >= 0 ? NULL : names);
    free(names);
    if (st != RL_OK)
        return st;
    if (c->rank == 0)
        RL_INFO("ring orders from RINGLET_TOPO_FILE %s, ranks placed %s; %d channels", desc, how, c->nch);
    return RL_OK;
}

static rl_status_t exchange_hosts(struct rl_comm *c, int *all_local, int64_t dl, char *err, size_t len)
{
    host_rec_t mine = {.order_hash = c->topo_deferred ? c->topo_hash : hash_order(c->order, c->nranks * c->nrings),
                       .nch = (uint32_t)c->nch,
                       .depth = (uint32_t)c->depth, .chunk_bytes = c->chunk_bytes,
                       .min_chunk_bytes = c->min_chunk_bytes};
    rl_launch_host_id(&c->cfg, mine.host, sizeof(mine.host));
    if (c->cfg.host_id[0])
        snprintf(mine.name, sizeof(mine.name), "%s", c->cfg.host_id);
    else if (gethostname(mine.name, sizeof(mine.name) - 1) != 0)
        mine.name[0] = '\0';
    snprintf(mine.transport, sizeof(mine.transport), "%s", c->cfg.transport);
    snprintf(mine.intra, sizeof(mine.intra), "%s", c->cfg.intra_transport);
    mine.sel_hash = c->sel.hash;
    host_rec_t *all = calloc((size_t)c->nranks, sizeof(*all));
    if (!all)
        return RL_ERR_NO_MEMORY;
    rl_status_t st = rl_boot_allgather(c->boot, &mine, sizeof(mine), all, dl, err, len);
    *all_local = 1;
    c->local_ranks = 0;
    if (st == RL_OK && !(c->host_of = calloc((size_t)c->nranks, sizeof(int))))
        st = RL_ERR_NO_MEMORY;
    for (int r = 0; st == RL_OK && r < c->nranks; r++) {
        all[r].host[HOSTNAME_MAX - 1] = '\0';
        all[r].name[HOSTNAME_MAX - 1] = '\0';
        all[r].transport[sizeof(all[r].transport) - 1] = '\0';
        all[r].intra[sizeof(all[r].intra) - 1] = '\0';
        if (strcmp(all[r].host, mine.host))
            *all_local = 0;
        else
            c->local_ranks++;
        if (all[r].order_hash != mine.order_hash || all[r].nch != mine.nch || all[r].depth != mine.depth ||
            all[r].chunk_bytes != mine.chunk_bytes || all[r].min_chunk_bytes != mine.min_chunk_bytes || strcmp(all[r].transport, mine.transport) ||
            strcmp(all[r].intra, mine.intra)) {
            comm_err(err, len,
                     "rank %d and rank %d disagree on RINGLET_RING_ORDER (or RINGLET_TOPO_FILE's plan), RINGLET_NCHANNELS, "
                     "RINGLET_PIPELINE_DEPTH, RINGLET_CHUNK_BYTES, RINGLET_TRANSPORT or RINGLET_INTRA_TRANSPORT "
                     "(%s+%s/%u/%u/%llu vs %s+%s/%u/%u/%llu)",
                     c->rank, r, mine.transport, mine.intra, mine.nch, mine.depth,
                     (unsigned long long)mine.chunk_bytes, all[r].transport, all[r].intra, all[r].nch, all[r].depth,
                     (unsigned long long)all[r].chunk_bytes);
            st = RL_ERR_MISMATCH;
        } else if (all[r].sel_hash != mine.sel_hash) {
            /* else they would pick different algorithms for one call */
            comm_err(err, len,
                     "rank %d and rank %d resolved different algorithm tables or cost models (RINGLET_ALGOS, "
                     "RINGLET_ALLREDUCE_ALGO, RINGLET_RD_MAX_BYTES, RINGLET_RHD_MAX_BYTES, RINGLET_P2P or "
                     "RINGLET_TUNE_FILE differ; hash %016llx vs %016llx)",
                     c->rank, r, (unsigned long long)mine.sel_hash, (unsigned long long)all[r].sel_hash);
            st = RL_ERR_MISMATCH;
        }
    }
    if (st == RL_OK)
        number_hosts(c, all);
    if (st == RL_OK && c->topo_deferred)
        st = plan_on_hosts(c, all, err, len);
    free(all);
    return st;
}

/* Busy-polling only pays when every rank has a core: with more ranks than
 * cores a spinning rank steals the core of the rank it waits for. */
static rl_status_t set_spin(struct rl_comm *c, char *err, size_t len)
{
    const char *w = c->cfg.wait;
    if (strcmp(w, "auto") && strcmp(w, "event") && strcmp(w, "yield")) {
        comm_err(err, len, "RINGLET_WAIT=%s: use auto, event or yield", w);
        return RL_ERR_CONFIG;
    }
    cpu_set_t set;
    int cores = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    c->oversubscribed = c->local_ranks > cores;
    int soft = 0; /* the most conservative of the open transports decides */
    for (int i = 0; i < c->ntp; i++)
        soft |= c->tps[i].ops->cpu_driven && c->tps[i].ops->cpu_driven(c->tps[i].tp);
    c->spin_ns = c->cfg.spin_us >= 0 ? (int64_t)c->cfg.spin_us * 1000 : c->oversubscribed || soft ? 0 : 50000LL;
    c->spin_cur = c->spin_ns;
    c->spin_fixed = c->cfg.spin_us >= 0;
    /* auto: software RDMA (rxe, siw) moves the data on this host's CPUs, and
     * in the SoftRoCE VM a wake-up from the completion channel per message
     * cost more than yielding (5 boots, 2 and 4 ranks: sleeping on the
     * channel took 1.2-1.4x the time at 4-16 KiB, the same from 256 KiB).
     * A NIC needs no CPU, so there the channel. */
    c->wait_events = !strcmp(w, "event") || (!strcmp(w, "auto") && !soft);
    if (c->rank == 0)
        RL_INFO("%d ranks on this host, %d cores%s: waits %s, then %s", c->local_ranks, cores,
                soft ? ", software RDMA device" : "", c->spin_ns ? "spin (adaptive, up to 50 us)" : "do not spin",
                c->wait_events ? "sleep on the completion channel where there is one, else yield"
                               : "yield the CPU between polls");
    return RL_OK;
}

/* RINGLET_TRANSPORT names one backend; "auto" takes the first that opens
 * (verbs when an RDMA device is up, else libfabric). */
static rl_status_t open_network(struct rl_comm *c, int all_local, char *err, size_t len)
{
    rl_tp_params_t p = {.rank = c->rank, .nranks = c->nranks, .all_local = all_local, .cfg = &c->cfg};
    rl_tport_t *t = &c->tps[0];
    rl_status_t st;
    if (strcmp(c->cfg.transport, "auto") != 0) {
        t->ops = rl_transport_find(c->cfg.transport);
        if (!t->ops) {
            comm_err(err, len, "RINGLET_TRANSPORT=%s is not built in (available: %s)", c->cfg.transport,
                     rl_transport_list());
            return RL_ERR_UNSUPPORTED;
        }
        if ((st = t->ops->open(&p, &t->tp, err, len)) == RL_OK)
            c->ntp = 1;
        return st;
    }
    st = RL_ERR_UNSUPPORTED;
    comm_err(err, len, "no transport built in");
    for (int i = 0; (t->ops = rl_transport_at(i)) != NULL; i++) {
        char why[256];
        st = t->ops->open(&p, &t->tp, why, sizeof(why));
        if (st == RL_OK) {
            c->ntp = 1;
            return RL_OK;
        }
        RL_INFO("transport %s unavailable: %s", t->ops->name, why);
        comm_err(err, len, "no transport could open; last: %s: %s", t->ops->name, why);
    }
    return st;
}

/* Whether this rank reaches its local peers through native shm rather
 * than the network transport (RINGLET_INTRA_TRANSPORT). Every input is the
 * same on every rank of one host (host records, settings), so both ends of
 * a local pair decide alike and remote pairs never use it. */
static int want_intra(const struct rl_comm *c)
{
    if (c->local_ranks < 2 || !strcmp(c->tps[0].ops->name, "shm") || !strcmp(c->cfg.intra_transport, "none"))
        return 0;
    return !strcmp(c->cfg.intra_transport, "shm") || c->nhosts > 1;
}

/* Open ringlet's shm for the local peers as transport 1 and route them
 * through it. */
static rl_status_t open_intra(struct rl_comm *c, char *err, size_t len)
{
    rl_tport_t *t = &c->tps[1];
    /* all_local: every rank it will connect to is on this host */
    rl_tp_params_t p = {.rank = c->rank, .nranks = c->nranks, .all_local = 1, .cfg = &c->cfg};
    char why[256] = "";
    t->ops = rl_transport_find("shm");
    rl_status_t st = t->ops ? t->ops->open(&p, &t->tp, why, sizeof(why)) : RL_ERR_UNSUPPORTED;
    if (st != RL_OK) {
        comm_err(err, len, "rank %d: native shm for the %d ranks on this host cannot open: %s "
                 "(RINGLET_INTRA_TRANSPORT=none routes them through %s)",
                 c->rank, c->local_ranks, t->ops ? why : "not built in", c->tps[0].ops->name);
        return st;
    }
    c->ntp = 2;
    for (int r = 0; r < c->nranks; r++)
        if (r != c->rank && c->host_of[r] == c->host_of[c->rank])
            c->route[r] = 1;
    t->npeers = c->local_ranks - 1;
    c->tps[0].npeers -= t->npeers;
    return RL_OK;
}

/* The network transport, which routes every rank, then shm for the ranks
 * of this host when RINGLET_INTRA_TRANSPORT says so. */
static rl_status_t open_transport(struct rl_comm *c, int all_local, char *err, size_t len)
{
    if (strcmp(c->cfg.intra_transport, "auto") && strcmp(c->cfg.intra_transport, "shm") &&
        strcmp(c->cfg.intra_transport, "none")) {
        comm_err(err, len, "RINGLET_INTRA_TRANSPORT=%s: use auto, shm or none", c->cfg.intra_transport);
        return RL_ERR_CONFIG;
    }
    rl_status_t st = open_network(c, all_local, err, len);
    if (st != RL_OK)
        return st;
    if (!(c->route = calloc((size_t)c->nranks, 1)))
        return RL_ERR_NO_MEMORY;
    c->tps[0].npeers = c->nranks - 1;
    return want_intra(c) ? open_intra(c, err, len) : RL_OK;
}

/* "ofi:tcp/... (2 peers) + shm:memfd/... (1 peer on this host)": the
 * network transport first, which the cost model matches by prefix. */
static void describe(struct rl_comm *c)
{
    const rl_tport_t *t = c->tps;
    if (c->ntp == 1) {
        snprintf(c->desc, sizeof(c->desc), "%s", t[0].ops->describe(t[0].tp));
        return;
    }
    snprintf(c->desc, sizeof(c->desc), "%s (%d peer%s) + %s (%d on this host)", t[0].ops->describe(t[0].tp),
             t[0].npeers, t[0].npeers == 1 ? "" : "s", t[1].ops->describe(t[1].tp), t[1].npeers);
}

/* What went through each transport (RINGLET_LOG_LEVEL=info): shows, in
 * tests too, that a mixed communicator really uses both. */
static void log_traffic(const struct rl_comm *c)
{
    if (rl_log_level_cur < RL_LOG_INFO || !c->ntp)
        return;
    char buf[256] = "";
    size_t pos = 0;
    for (int i = 0; i < c->ntp && pos < sizeof(buf); i++)
        pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos, "%s%s %llu writes %llu B", i ? ", " : "",
                                c->tps[i].ops->name, (unsigned long long)c->tps[i].writes,
                                (unsigned long long)c->tps[i].bytes);
    RL_INFO("rank %d traffic: %s", c->rank, buf);
}

/* A cached registration is safe only if no open transport pins pages. */
static int pins_memory(const struct rl_comm *c)
{
    int pins = 0;
    for (int i = 0; i < c->ntp; i++)
        pins |= c->tps[i].ops->pins_memory && c->tps[i].ops->pins_memory(c->tps[i].tp);
    return pins;
}

/* Staging per channel is capped: chunks past this give nothing (a 1 MiB
 * all-reduce never needs more), while RINGLET_CHUNK_BYTES=1G x depth 4 used
 * to allocate and zero 4 GiB per rank. Every rank computes the same. */
#define RL_STAGE_MAX_BYTES (256u << 20)

static void cap_staging(struct rl_comm *c)
{
    size_t want = (size_t)c->depth * c->chunk_bytes;
    if (want <= RL_STAGE_MAX_BYTES)
        return;
    size_t chunk = (RL_STAGE_MAX_BYTES / (size_t)c->depth) & ~(size_t)63;
    if (c->rank == 0)
        RL_WARN("RINGLET_CHUNK_BYTES=%zu x RINGLET_PIPELINE_DEPTH=%d would need %zu MiB of staging per channel: "
                "chunks of %zu KiB instead (staging is capped at %u MiB)",
                c->chunk_bytes, c->depth, want >> 20, chunk >> 10, RL_STAGE_MAX_BYTES >> 20);
    c->chunk_bytes = chunk;
    if (c->min_chunk_bytes > chunk)
        c->min_chunk_bytes = chunk;
}

static void comm_free(struct rl_comm *c)
{
    if (c->ntp) {
        rl_algos_teardown(c);
        rl_comm_scratch_free(c);
    }
    rl_shalloc_cleanup(c);
    rl_reg_cleanup(c);
    for (int i = 0; i < c->n_req_cache; i++)
        free(c->req_cache[i]);
    free(c->group);
    for (int i = c->ntp - 1; i >= 0; i--)
        c->tps[i].ops->close(c->tps[i].tp);
    c->ntp = 0;
    free(c->route);
    free(c->order);
    free(c->chan_nic);
    free(c->host_of);
    *(volatile uint32_t *)&c->magic = 0; /* volatile: a store before free() is otherwise dropped */
    free(c);
}

/* Why the last rl_comm_create() of this thread failed: there is no
 * communicator to hold the message. */
static _Thread_local char create_err[512 + 32]; /* "rl_comm_create: " + err[512] */

rl_status_t rl_comm_create(const rl_comm_opts_t *opts, rl_comm_t *out)
{
    return rl_comm_create_listen(opts, -1, out);
}

rl_status_t rl_comm_create_listen(const rl_comm_opts_t *opts, int listen_fd, rl_comm_t *out)
{
    if (!out) {
        snprintf(create_err, sizeof(create_err), "rl_comm_create: the output pointer is NULL");
        return RL_ERR_INVALID_ARG;
    }
    rl_log_init();
    create_err[0] = '\0';
    if (opts && opts->struct_size != sizeof(rl_comm_opts_t) && opts->struct_size < offsetof(rl_comm_opts_t, timeout_ms)) {
        snprintf(create_err, sizeof(create_err),
                 "rl_comm_create: opts.struct_size is %zu; set it to sizeof(rl_comm_opts_t)", opts->struct_size);
        RL_ERROR("%s", create_err);
        return RL_ERR_INVALID_ARG;
    }
    if (opts && (opts->nranks < 0 || opts->timeout_ms < 0)) {
        snprintf(create_err, sizeof(create_err),
                 "rl_comm_create: opts.nranks %d, opts.timeout_ms %d: both must be 0 (from the environment) or positive",
                 opts->nranks, opts->timeout_ms);
        RL_ERROR("%s", create_err);
        if (listen_fd >= 0)
            close(listen_fd);
        return RL_ERR_INVALID_ARG;
    }
    struct rl_comm *c = calloc(1, sizeof(*c));
    if (!c) {
        if (listen_fd >= 0)
            close(listen_fd);
        return RL_ERR_NO_MEMORY;
    }
    c->magic = RL_COMM_MAGIC;
    char err[512] = "";
    rl_status_t st = rl_config_load(&c->cfg, err, sizeof(err));
    if (st == RL_OK)
        st = rl_launch_resolve(opts, &c->cfg, err, sizeof(err));
    if (st == RL_OK)
        st = resolve_identity(opts, &c->cfg, err, sizeof(err));
    if (st != RL_OK)
        goto fail;
    c->rank = c->cfg.rank;
    c->nranks = c->cfg.size;
    c->nch = c->cfg.nchannels;
    c->depth = c->cfg.pipeline_depth;
    c->chunk_bytes = (c->cfg.chunk_bytes + 63) & ~(size_t)63;
    c->min_chunk_bytes = c->cfg.min_chunk_bytes < c->chunk_bytes ? c->cfg.min_chunk_bytes : c->chunk_bytes;
    rl_log_set_rank(c->rank);
    cap_staging(c);
    c->nrings = 1;
    c->stall_peer = -1;
    c->order = malloc(sizeof(int) * (size_t)c->nranks * RL_MAX_CHANNELS);
    if (!c->order) {
        st = RL_ERR_NO_MEMORY;
        goto fail;
    }
    if (opts && opts->ring_order) {
        char buf[1024] = "";
        for (int i = 0, pos = 0; i < c->nranks && pos < (int)sizeof(buf); i++)
            pos += snprintf(buf + pos, sizeof(buf) - (size_t)pos, "%s%d", i ? "," : "", opts->ring_order[i]);
        st = rl_parse_ring_order(buf, c->nranks, c->order, err, sizeof(err));
    } else if (c->cfg.topo_file[0] && !c->cfg.ring_order[0] && strcmp(c->cfg.topo_place, "file")) {
        /* planned once every rank's host is known (exchange_hosts); until
         * then the file's bytes stand for the plan in the agreement check */
        c->topo_deferred = 1;
        st = topo_file_hash(c, err, sizeof(err));
    } else if (c->cfg.topo_file[0] && !c->cfg.ring_order[0]) {
        char desc[512];
        int want = c->cfg.topo_rings ? c->cfg.topo_rings : RL_MAX_CHANNELS;
        st = rl_topo_ring_order_file(c->cfg.topo_file, c->nranks, want, c->order, &c->nrings, desc, sizeof(desc),
                                     err, sizeof(err));
        if (st == RL_OK && c->nch < c->nrings)
            c->nch = c->nrings; /* a channel per planned ring, at least */
        if (st == RL_OK)
            plan_chan_nics(c, NULL);
        if (st == RL_OK && c->rank == 0)
            RL_INFO("ring orders from RINGLET_TOPO_FILE %s; %d channels", desc, c->nch);
    } else {
        st = rl_parse_ring_order(c->cfg.ring_order, c->nranks, c->order, err, sizeof(err));
    }
    if (st != RL_OK)
        goto fail;
    int64_t dl = rl_deadline_ms(c->cfg.timeout_ms);
    rl_auth_key_t key;
    int have_key = 0;
    st = rl_auth_load(&c->cfg, &key, &have_key, err, sizeof(err));
    rl_auth_wipe(c->cfg.auth_key, sizeof(c->cfg.auth_key)); /* the derived key is all we keep */
    if (st != RL_OK)
        goto fail;
    rl_boot_opts_t bo = {.key = have_key ? &key : NULL, .have_listen_fd = listen_fd >= 0, .listen_fd = listen_fd};
    listen_fd = -1; /* the bootstrap owns it now */
    st = rl_boot_create_opts(c->rank, c->nranks, c->cfg.addr, &bo, dl, &c->boot, err, sizeof(err));
    rl_auth_wipe(&key, sizeof(key));
    if (st != RL_OK)
        goto fail;
    rl_boot_watch(c->boot, &c->next_seq);
    rl_boot_wait_source(c->boot, current_wait, c);
    if ((st = rl_select_build(c, err, sizeof(err))) != RL_OK) {
        rl_boot_abort(c->boot, st, c->rank, err);
        goto fail;
    }
    if (c->nranks == 1) {
        snprintf(c->desc, sizeof(c->desc), "none (1 rank)");
        *out = c;
        return RL_OK;
    }
    int all_local = 0;
    if ((st = exchange_hosts(c, &all_local, dl, err, sizeof(err))) != RL_OK) {
        rl_boot_abort(c->boot, st, c->rank, err);
        goto fail;
    }
    if ((st = open_transport(c, all_local, err, sizeof(err))) != RL_OK) {
        rl_boot_abort(c->boot, st, c->rank, err);
        goto fail;
    }
    pin_chan_nics(c);
    describe(c);
    rl_model_pick(c);
    if ((st = rl_algos_setup(c, dl, err, sizeof(err))) != RL_OK) {
        rl_boot_abort(c->boot, st, c->rank, err);
        goto fail;
    }
    if ((st = set_spin(c, err, sizeof(err))) != RL_OK) {
        rl_boot_abort(c->boot, st, c->rank, err);
        goto fail;
    }
    if (c->cfg.reg_cache < 0)
        c->cfg.reg_cache = !pins_memory(c);
    if (rl_log_level_cur >= RL_LOG_INFO) { /* every rank: each names its own device and neighbours */
        char what[512] = "";
        size_t pos = 0;
        for (int i = 0; i < rl_algo_count() && pos < sizeof(what) - 2; i++)
            if (rl_algo_at(i)->describe_comm && (c->algo_state[i] || !rl_algo_at(i)->comm_setup)) {
                pos += (size_t)snprintf(what + pos, sizeof(what) - pos, ", ");
                if (pos < sizeof(what))
                    rl_algo_at(i)->describe_comm(c, what + pos, sizeof(what) - pos);
                pos = strlen(what);
            }
        RL_INFO("communicator of %d ranks over %s%s; cost model: %s", c->nranks, c->desc, what, c->sel.model_src);
    }
    *out = c;
    return RL_OK;
fail:
    if (listen_fd >= 0)
        close(listen_fd);
    RL_ERROR("rl_comm_create: %s (%s)", err, rl_status_name(st));
    snprintf(create_err, sizeof(create_err), "rl_comm_create: %s", err);
    if (c->boot)
        rl_boot_destroy(c->boot, 0);
    comm_free(c);
    return st;
}

rl_status_t rl_comm_abort(rl_comm_t c)
{
    if (!rl_comm_ok(c))
        return RL_ERR_INVALID_ARG;
    atomic_store(&c->abort_flag, 1);
    return RL_OK;
}

/* Wait, bounded, for our own credit writes to land so that peers see them
 * before we tear the transport down. */
static int comm_busy(struct rl_comm *c)
{
    int busy = c->head != NULL;
    for (int i = 0; i < rl_algo_count(); i++)
        if (rl_algo_at(i)->busy && c->algo_state[i])
            busy |= rl_algo_at(i)->busy(c);
    return busy;
}

static void drain(struct rl_comm *c, int64_t dl)
{
    for (;;) {
        int busy = comm_busy(c);
        if (!busy || c->failed != RL_OK || rl_now_ns() > dl)
            return;
        rl_comm_progress(c);
        sched_yield();
    }
}

rl_status_t rl_comm_destroy(rl_comm_t c)
{
    if (!rl_comm_ok(c))
        return RL_ERR_INVALID_ARG;
    int64_t dl = rl_deadline_ms(c->cfg.timeout_ms);
    /* An abort no operation has seen yet: fail now, which tells the peers,
     * rather than wait for them in the final barrier below. */
    if (c->failed == RL_OK && atomic_load(&c->abort_flag))
        rl_comm_progress(c);
    if (c->ntp && c->failed == RL_OK) {
        rl_boot_leaving(c->boot); /* a peer still in a collective we never start fails now */
        drain(c, dl);
        /* Nobody closes its endpoint while a peer may still write to it. */
        if (c->failed == RL_OK && !comm_busy(c)) {
            char err[256];
            int32_t z = 0, *all = calloc((size_t)c->nranks, sizeof(int32_t));
            if (all && rl_boot_allgather(c->boot, &z, sizeof(z), all, dl, err, sizeof(err)) != RL_OK)
                RL_WARN("rl_comm_destroy: final barrier failed: %s", err);
            free(all);
        }
    }
    while (c->head) {
        struct rl_request *r = c->head;
        if (r->status == RL_INPROGRESS)
            r->status = RL_ERR_ABORTED;
        pop_head(c);
        r->comm = NULL;
    }
    /* requests of a group never closed belong to the communicator */
    for (int i = 0; i < c->ngroup; i++) {
        c->group[i]->comm = NULL;
        rl_request_free(c->group[i]);
    }
    c->ngroup = 0;
    rl_boot_destroy(c->boot, dl);
    c->boot = NULL;
    log_traffic(c);
    comm_free(c);
    return RL_OK;
}

rl_status_t rl_comm_rank(rl_comm_t c, int *rank)
{
    if (!rl_comm_ok(c) || !rank)
        return RL_ERR_INVALID_ARG;
    *rank = c->rank;
    return RL_OK;
}

rl_status_t rl_comm_size(rl_comm_t c, int *n)
{
    if (!rl_comm_ok(c) || !n)
        return RL_ERR_INVALID_ARG;
    *n = c->nranks;
    return RL_OK;
}

const char *rl_comm_last_error(rl_comm_t c) { return rl_comm_ok(c) ? c->errmsg : create_err; }

const char *rl_comm_transport(rl_comm_t c) { return rl_comm_ok(c) ? c->desc : ""; }
