/*
 * libfabric backend: one RDM endpoint per communicator, RMA writes carrying
 * remote CQ data, honouring the provider's mr_mode bits.
 */
#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

#include "core/log.h"
#include "transport/ofi/watchdog.h"
#include "transport/transport.h"

/*
 * libfabric is loaded at the first communicator that needs it, not linked:
 * Debian's libfabric links the psm provider's libinfinipath, whose
 * constructor installs SIGSEGV, SIGBUS, SIGILL, SIGABRT, SIGINT and SIGTERM
 * handlers that print a backtrace and exit(1), so a ringlet process died of
 * no signal (SIGTERM gave status 1, not 143; no core dump; under
 * torch.multiprocessing.spawn a hang in exit handlers). It honours
 * IPATH_NO_BACKTRACE, read in that constructor: ringlet sets it (if unset)
 * before loading libfabric, and puts back any signal disposition that
 * changed across the load, whoever changed it.
 */
static const int ofi_watched_sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGABRT, SIGINT, SIGTERM, SIGFPE, SIGQUIT};
#define OFI_NSIGS (sizeof(ofi_watched_sigs) / sizeof(ofi_watched_sigs[0]))

static struct {
    int (*getinfo)(uint32_t, const char *, const char *, uint64_t, const struct fi_info *, struct fi_info **);
    void (*freeinfo)(struct fi_info *);
    struct fi_info *(*dupinfo)(const struct fi_info *);
    int (*fabric)(struct fi_fabric_attr *, struct fid_fabric **, void *);
    const char *(*strerror)(int);
    char err[256];
    int ok;
} lf;
static pthread_once_t lf_once = PTHREAD_ONCE_INIT;

static void lf_load(void)
{
    struct sigaction before[OFI_NSIGS];
    for (size_t i = 0; i < OFI_NSIGS; i++)
        sigaction(ofi_watched_sigs[i], NULL, &before[i]);
    setenv("IPATH_NO_BACKTRACE", "1", 0);
    void *h = dlopen("libfabric.so.1", RTLD_NOW | RTLD_LOCAL);
    for (size_t i = 0; i < OFI_NSIGS; i++) {
        struct sigaction now;
        sigaction(ofi_watched_sigs[i], NULL, &now);
        if (now.sa_handler != before[i].sa_handler || now.sa_flags != before[i].sa_flags) {
            sigaction(ofi_watched_sigs[i], &before[i], NULL);
            RL_INFO("libfabric's libraries changed the handler of signal %d: put back", ofi_watched_sigs[i]);
        }
    }
    if (!h) {
        snprintf(lf.err, sizeof(lf.err), "cannot load libfabric: %s", dlerror());
        return;
    }
    *(void **)&lf.getinfo = dlsym(h, "fi_getinfo");
    *(void **)&lf.freeinfo = dlsym(h, "fi_freeinfo");
    *(void **)&lf.dupinfo = dlsym(h, "fi_dupinfo");
    *(void **)&lf.fabric = dlsym(h, "fi_fabric");
    *(void **)&lf.strerror = dlsym(h, "fi_strerror");
    lf.ok = lf.getinfo && lf.freeinfo && lf.dupinfo && lf.fabric && lf.strerror;
    if (!lf.ok)
        snprintf(lf.err, sizeof(lf.err), "libfabric.so.1 lacks fi_getinfo/fi_freeinfo/fi_dupinfo/fi_fabric/fi_strerror");
}

/* Calls into the loaded library (the rest of its API is inline, through
 * the objects' operation tables). */
#define fi_getinfo lf.getinfo
#define fi_freeinfo lf.freeinfo
#define fi_dupinfo lf.dupinfo
#define fi_fabric lf.fabric
#define fi_strerror lf.strerror

/* Receives kept posted when the provider needs one per remote CQ datum. */
#define OFI_RX_POSTED 256
#define OFI_RX_SENTINEL 16
#define OFI_CQ_SIZE 4096
#define OFI_RECV_CTX ((void *)(uintptr_t)0x52454356u)

/* mr_mode bits ringlet knows how to honour. */
#define OFI_MR_MODES (FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY | FI_MR_ENDPOINT)

struct rl_tp {
    struct fi_info *info;
    struct fid_fabric *fabric;
    struct fid_domain *domain;
    struct fid_av *av;
    struct fid_cq *cq;
    struct fid_ep *ep;
    char name[RL_TP_BLOB_MAX];
    size_t namelen;
    int rx_cq_data; /* FI_RX_CQ_DATA: each CQ datum consumes a receive */
    int have_source; /* FI_SOURCE: completions name the sender's address */
    /* The group members this endpoint knows (one AV entry per distinct
     * address): an immediate from any other address is an outsider's. */
    struct ofi_member {
        fi_addr_t addr;
        int rank;
        size_t len;
        uint8_t name[RL_TP_BLOB_MAX];
    } *members;
    int nmembers, capmembers;
    uint64_t foreign; /* immediates and messages dropped as not from a member */
    int64_t tx_out;   /* writes posted and not completed */
    int timeout_ms;
    int leaked;       /* the endpoint could not be closed safely: left open */
    char desc[96];
    char err[256];
    rl_ofi_watchdog_t wd; /* shm: calls that never return end the process */
};

/* A libfabric call on the data path, watched (see watchdog.h). */
#define OFI_CALL(tp, call) (rl_ofi_enter(&(tp)->wd), ofi_ret_ = (call), rl_ofi_leave(&(tp)->wd), ofi_ret_)

struct rl_tp_conn {
    rl_tp_t *tp;
    int peer;
    fi_addr_t addr;
};

struct rl_tp_mr {
    rl_tp_t *tp;
    struct fid_mr *mr; /* NULL for a local-only region the provider needs no MR for */
    void *base;
    void *desc;
};

static rl_status_t ofi_fail(rl_tp_t *tp, int ret, const char *what)
{
    snprintf(tp->err, sizeof(tp->err), "libfabric %s: %s (%d)", what, fi_strerror(-ret), ret);
    RL_DEBUG("%s", tp->err);
    return ret == -FI_EAGAIN ? RL_ERR_AGAIN : RL_ERR_TRANSPORT;
}

/* The pid namespace's inode: pids in shm region names mean something only
 * inside their namespace (containers may share /dev/shm). */
static unsigned long pidns_id(void)
{
    struct stat st;
    return stat("/proc/self/ns/pid", &st) == 0 ? (unsigned long)st.st_ino : 0;
}

/* When process pid started (seconds since the epoch), or -1 if it is gone. */
static long long proc_start(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return kill((pid_t)pid, 0) == 0 || errno == EPERM ? 0 : -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long ticks = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
                     &ticks) != 1)
        return 0;
    FILE *s = fopen("/proc/stat", "r");
    long long btime = 0;
    char line[256];
    while (s && fgets(line, sizeof(line), s))
        if (sscanf(line, "btime %lld", &btime) == 1)
            break;
    if (s)
        fclose(s);
    long hz = sysconf(_SC_CLK_TCK);
    return btime + (long long)(ticks / (unsigned long long)(hz > 0 ? hz : 100));
}

/*
 * libfabric's shm keeps a region file in /dev/shm per endpoint and removes
 * it on close; a process killed with kill -9 leaves its 16 MiB behind for
 * good. Peers map the region by name, possibly late, so it cannot be
 * unlinked early; instead each start sweeps the files ringlet named (the
 * name holds pid namespace, pid and creation time) whose process is gone,
 * or is another process that reused the pid after the file was made.
 */
static void shm_sweep(unsigned long ns)
{
    DIR *d = opendir("/dev/shm");
    struct dirent *e;
    int removed = 0;
    while (d && (e = readdir(d))) {
        unsigned long fns;
        long pid, nsec;
        long long sec;
        if (sscanf(e->d_name, "ringlet.%lu.%ld.%lld.%ld", &fns, &pid, &sec, &nsec) != 4 || fns != ns ||
            pid == (long)getpid())
            continue;
        char path[512];
        struct stat st;
        snprintf(path, sizeof(path), "/dev/shm/%s", e->d_name);
        if (stat(path, &st) || st.st_uid != geteuid())
            continue;
        long long started = proc_start(pid);
        if ((started < 0 || started > sec + 1) && unlink(path) == 0)
            removed++;
    }
    if (d)
        closedir(d);
    if (removed)
        RL_INFO("shm: removed %d region file(s) in /dev/shm left by processes that are gone", removed);
}

static struct fi_info *ofi_hints(const char *prov, int with_source)
{
    struct fi_info *h = fi_dupinfo(NULL); /* fi_allocinfo, without linking libfabric */
    if (!h)
        return NULL;
    /* FI_SOURCE lets poll tell a member's immediate from an outsider's. */
    h->caps = FI_RMA | FI_WRITE | FI_REMOTE_WRITE | (with_source ? FI_SOURCE : 0);
    h->mode = FI_RX_CQ_DATA;
    h->ep_attr->type = FI_EP_RDM;
    h->domain_attr->mr_mode = OFI_MR_MODES;
    h->domain_attr->threading = FI_THREAD_DOMAIN;
    h->tx_attr->op_flags = FI_COMPLETION;
    if (prov)
        h->fabric_attr->prov_name = strdup(prov);
    if (prov && !strcmp(prov, "shm")) {
        /* shm names its shared-memory region after the pid unless told
         * otherwise; a region left by a killed process then makes a later
         * process with the same pid fail (EBUSY). A name with the start
         * time in it cannot collide. */
        char name[128];
        struct timespec ts;
        unsigned long ns = pidns_id();
        if (with_source)
            shm_sweep(ns); /* once per start: the first try asks for FI_SOURCE */
        clock_gettime(CLOCK_REALTIME, &ts);
        /* fixed width: every rank's address has the same length */
        snprintf(name, sizeof(name), "fi_shm://ringlet.%010lu.%010ld.%012lld.%09ld", ns, (long)getpid(),
                 (long long)ts.tv_sec, ts.tv_nsec);
        h->addr_format = FI_ADDR_STR;
        h->src_addr = strdup(name);
        h->src_addrlen = h->src_addr ? strlen(name) + 1 : 0;
    }
    return h;
}

/* The first usable entry; with all ranks local prefer the loopback domain
 * so traffic never leaves the host. */
static struct fi_info *ofi_pick(struct fi_info *list, int all_local)
{
    struct fi_info *best = NULL;
    for (struct fi_info *i = list; i; i = i->next) {
        if (i->domain_attr->cq_data_size < 4 || (i->domain_attr->mr_mode & ~OFI_MR_MODES & ~FI_MR_BASIC))
            continue;
        if (!best)
            best = i;
        if (all_local && i->domain_attr->name && !strcmp(i->domain_attr->name, "lo"))
            return i;
    }
    return best;
}

/* Whether the CPU says it runs under a hypervisor (the cpuinfo flag). */
static int under_hypervisor(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[4096];
    int yes = 0;
    while (f && !yes && fgets(line, sizeof(line), f))
        yes = !strncmp(line, "flags", 5) && strstr(line, " hypervisor");
    if (f)
        fclose(f);
    return yes;
}

/*
 * Provider settings ringlet measured to matter, given as defaults through
 * the provider's own variables: libfabric reads them when it loads its
 * providers (the process's first fi_getinfo), and a value the user set is
 * never replaced. Measured here (4 ranks, all_reduce_perf beside
 * tools/compare-mpi): shm without CMA moved 1-64 MiB 1.5-2x faster in a
 * VM, as did Open MPI's vader without single-copy; tcp without the prefetch
 * buffer, which copies received data once more, was faster at 1-16 MiB.
 */
static void ofi_default_env(const rl_config_t *cfg)
{
    if (!getenv("FI_SHM_DISABLE_CMA")) {
        int off = !strcmp(cfg->shm_cma, "off") || (!strcmp(cfg->shm_cma, "auto") && under_hypervisor());
        if (off) {
            setenv("FI_SHM_DISABLE_CMA", "1", 0);
            RL_INFO("shm: large messages through shared memory, not CMA (RINGLET_SHM_CMA=%s)", cfg->shm_cma);
        }
    }
    setenv("FI_TCP_PREFETCH_RBUF_SIZE", "0", 0);
}

static rl_status_t ofi_getinfo(const rl_tp_params_t *p, rl_tp_t *tp)
{
    if (strcmp(p->cfg->shm_cma, "auto") && strcmp(p->cfg->shm_cma, "on") && strcmp(p->cfg->shm_cma, "off")) {
        snprintf(tp->err, sizeof(tp->err), "RINGLET_SHM_CMA=%s: use auto, on or off", p->cfg->shm_cma);
        return RL_ERR_CONFIG;
    }
    ofi_default_env(p->cfg);
    const char *want = p->cfg->ofi_provider;
    const char *tries[3] = {NULL, NULL, NULL};
    if (strcmp(want, "auto") != 0) {
        tries[0] = want;
    } else if (p->all_local) {
        tries[0] = "shm";
        tries[1] = "tcp";
    } else {
        tries[0] = "tcp";
        tries[1] = NULL;
    }
    int last = 0;
    for (int t = 0, src = 1; t < 3 && (t == 0 || tries[t]); src = !src, t += src) {
        struct fi_info *hints = ofi_hints(tries[t], src);
        struct fi_info *list = NULL;
        if (!hints)
            return RL_ERR_NO_MEMORY;
        last = fi_getinfo(FI_VERSION(1, 9), NULL, NULL, 0, hints, &list);
        fi_freeinfo(hints);
        if (last && src)
            continue; /* the same provider without FI_SOURCE */
        if (last == 0) {
            struct fi_info *pick = ofi_pick(list, p->all_local);
            if (pick) {
                tp->info = fi_dupinfo(pick);
                fi_freeinfo(list);
                return tp->info ? RL_OK : RL_ERR_NO_MEMORY;
            }
            fi_freeinfo(list);
            last = -FI_ENODATA;
        }
        if (!tries[t])
            break;
    }
    snprintf(tp->err, sizeof(tp->err),
             "no libfabric provider %s offers RDM endpoints with RMA writes and remote CQ data (%s)",
             strcmp(want, "auto") ? want : "(auto: shm, tcp)", fi_strerror(-last));
    return RL_ERR_UNSUPPORTED;
}

static rl_status_t ofi_post_recvs(rl_tp_t *tp, int n)
{
    for (int i = 0; i < n; i++) {
        ssize_t ofi_ret_;
        int ret = (int)OFI_CALL(tp, fi_recv(tp->ep, NULL, 0, NULL, FI_ADDR_UNSPEC, OFI_RECV_CTX));
        if (ret)
            return ofi_fail(tp, ret, "fi_recv");
    }
    return RL_OK;
}

/*
 * Stop the endpoint. libfabric 1.17's tcp (rxm) crashes in fi_close(ep)
 * after a failure on a lossy link (SIGSEGV at 0x20 in 1-2 of 4 ranks: its
 * close-time flush of the connections switches on a field of a NULL
 * completion context, `cmpl $0x14,0x20(%rbp)` with rbp 0), even with every
 * buffer and registration still alive and none of our writes left posted:
 * what the peers still had in flight is enough. So after a failure an rxm
 * endpoint is abandoned instead: never driven again, which on these
 * providers means no byte moves into or out of ringlet's buffers (there is
 * no data progress without our calls), and left open: a leak of one
 * endpoint per failed communicator, which cannot crash. Other providers
 * (shm) are closed at once; a clean teardown (after the final barrier,
 * nothing in flight) drains what is still posted, bounded, and closes.
 */
static void ofi_drain(rl_tp_t *tp)
{
    ssize_t ofi_ret_;
    struct fi_cq_data_entry ent[32];
    int bound = tp->timeout_ms < 2000 ? tp->timeout_ms : 2000;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int64_t ms = 0; tp->tx_out > 0 && ms <= bound;) {
        ssize_t got = OFI_CALL(tp, fi_cq_read(tp->cq, ent, 32));
        if (got == -FI_EAVAIL) {
            struct fi_cq_err_entry e = {0};
            if (fi_cq_readerr(tp->cq, &e, 0) > 0 && e.op_context != OFI_RECV_CTX && !(e.flags & FI_REMOTE_CQ_DATA))
                tp->tx_out--;
        }
        for (ssize_t i = 0; i < got; i++)
            if (!(ent[i].flags & FI_REMOTE_CQ_DATA) && ent[i].op_context != OFI_RECV_CTX)
                tp->tx_out--;
        if (got <= 0)
            sched_yield();
        clock_gettime(CLOCK_MONOTONIC, &t);
        ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
    }
}

static void ofi_quiesce(rl_tp_t *tp)
{
    if (!tp || !tp->ep)
        return;
    if (!strstr(tp->info->fabric_attr->prov_name, "ofi_rxm")) {
        ssize_t ofi_ret_;
        (void)OFI_CALL(tp, fi_close(&tp->ep->fid));
        tp->ep = NULL;
        return;
    }
    tp->leaked = 1;
    tp->ep = NULL;
    RL_DEBUG("libfabric %s: endpoint abandoned after a failure (closing it could crash the provider)", tp->desc);
}

static void ofi_close(rl_tp_t *tp)
{
    if (!tp)
        return;
    if (tp->ep) {
        ofi_drain(tp);
        if (tp->tx_out > 0) {
            RL_WARN("libfabric %s: %lld write(s) still posted at teardown: the endpoint is left open",
                    tp->desc, (long long)tp->tx_out);
            ofi_quiesce(tp);
        } else {
            ssize_t ofi_ret_;
            (void)OFI_CALL(tp, fi_close(&tp->ep->fid));
            tp->ep = NULL;
        }
    }
    rl_ofi_watchdog_stop(&tp->wd);
    if (tp->leaked) {
        /* cq, av, domain and fabric are bound to the open endpoint */
        free(tp->members);
        free(tp);
        return;
    }
    if (tp->av)
        fi_close(&tp->av->fid);
    if (tp->cq)
        fi_close(&tp->cq->fid);
    if (tp->domain)
        fi_close(&tp->domain->fid);
    if (tp->fabric)
        fi_close(&tp->fabric->fid);
    if (tp->info)
        fi_freeinfo(tp->info);
    free(tp->members);
    free(tp);
}

static rl_status_t ofi_open(const rl_tp_params_t *p, rl_tp_t **out, char *err, size_t errlen)
{
    pthread_once(&lf_once, lf_load);
    if (!lf.ok) {
        snprintf(err, errlen, "%s", lf.err);
        return RL_ERR_UNSUPPORTED;
    }
    rl_tp_t *tp = calloc(1, sizeof(*tp));
    if (!tp)
        return RL_ERR_NO_MEMORY;
    rl_status_t st = ofi_getinfo(p, tp);
    int ret = 0;
    const char *what = NULL;
    if (st != RL_OK)
        goto fail;
    tp->rx_cq_data = (tp->info->mode & FI_RX_CQ_DATA) != 0;
    tp->have_source = (tp->info->caps & FI_SOURCE) != 0;
    tp->timeout_ms = p->cfg->timeout_ms;
    struct fi_cq_attr cq_attr = {.size = OFI_CQ_SIZE, .format = FI_CQ_FORMAT_DATA, .wait_obj = FI_WAIT_NONE};
    struct fi_av_attr av_attr = {.type = FI_AV_TABLE};
    if ((ret = fi_fabric(tp->info->fabric_attr, &tp->fabric, NULL))) { what = "fi_fabric"; goto fail_ret; }
    if ((ret = fi_domain(tp->fabric, tp->info, &tp->domain, NULL))) { what = "fi_domain"; goto fail_ret; }
    /* No wait object: tcp's (through ofi_rxm) was seen to sleep through
     * arrivals for milliseconds, and shm has none. Waits poll and yield. */
    if ((ret = fi_cq_open(tp->domain, &cq_attr, &tp->cq, NULL))) { what = "fi_cq_open"; goto fail_ret; }
    if ((ret = fi_av_open(tp->domain, &av_attr, &tp->av, NULL))) { what = "fi_av_open"; goto fail_ret; }
    if ((ret = fi_endpoint(tp->domain, tp->info, &tp->ep, NULL))) { what = "fi_endpoint"; goto fail_ret; }
    if ((ret = fi_ep_bind(tp->ep, &tp->cq->fid, FI_TRANSMIT | FI_RECV))) { what = "fi_ep_bind(cq)"; goto fail_ret; }
    if ((ret = fi_ep_bind(tp->ep, &tp->av->fid, 0))) { what = "fi_ep_bind(av)"; goto fail_ret; }
    if ((ret = fi_enable(tp->ep))) { what = "fi_enable"; goto fail_ret; }
    tp->namelen = sizeof(tp->name);
    if ((ret = fi_getname(&tp->ep->fid, tp->name, &tp->namelen))) { what = "fi_getname"; goto fail_ret; }
    /* Without FI_RX_CQ_DATA no receive is needed, but a few stay posted
     * anyway: ringlet sends no messages, so whatever lands in one came from
     * outside the group and is dropped and logged (else it would wait in
     * the provider's unexpected-message queue forever). */
    if ((st = ofi_post_recvs(tp, tp->rx_cq_data ? OFI_RX_POSTED : OFI_RX_SENTINEL)) != RL_OK)
        goto fail;
    snprintf(tp->desc, sizeof(tp->desc), "ofi:%s/%s", tp->info->fabric_attr->prov_name,
             tp->info->domain_attr->name);
    if (strstr(tp->info->fabric_attr->prov_name, "shm") &&
        rl_ofi_watchdog_start(&tp->wd, p->rank, p->cfg->timeout_ms > 1000 ? p->cfg->timeout_ms : 1000,
                              "libfabric's shm provider"))
        RL_WARN("rank %d: could not start the libfabric watchdog thread", p->rank);
    RL_INFO("libfabric provider %s domain %s mr_mode 0x%x cq_data_size %zu%s", tp->info->fabric_attr->prov_name,
            tp->info->domain_attr->name, (unsigned)tp->info->domain_attr->mr_mode,
            tp->info->domain_attr->cq_data_size,
            tp->have_source ? "" : "; no FI_SOURCE: immediates from outside the group cannot be told apart");
    *out = tp;
    return RL_OK;
fail_ret:
    st = ofi_fail(tp, ret, what);
    if (st == RL_ERR_AGAIN)
        st = RL_ERR_TRANSPORT;
fail:
    snprintf(err, errlen, "%s", tp->err);
    ofi_close(tp);
    return st;
}

static const char *ofi_describe(rl_tp_t *tp) { return tp->desc; }

static rl_status_t ofi_conn_create(rl_tp_t *tp, int peer, int chan, rl_tp_conn_t **c, void *blob, size_t *len)
{
    (void)chan;
    if (*len < tp->namelen)
        return RL_ERR_INTERNAL;
    rl_tp_conn_t *conn = calloc(1, sizeof(*conn));
    if (!conn)
        return RL_ERR_NO_MEMORY;
    conn->tp = tp;
    conn->peer = peer;
    conn->addr = FI_ADDR_NOTAVAIL;
    memcpy(blob, tp->name, tp->namelen);
    *len = tp->namelen;
    *c = conn;
    return RL_OK;
}

static rl_status_t ofi_conn_establish(rl_tp_conn_t *c, const void *blob, size_t len, int64_t deadline)
{
    (void)deadline;
    /* The address comes from the network: its length must be the one this
     * provider uses before libfabric parses it. */
    if (len != c->tp->namelen) {
        snprintf(c->tp->err, sizeof(c->tp->err), "rank %d sent an endpoint address of %zu bytes, expected %zu",
                 c->peer, len, c->tp->namelen);
        return RL_ERR_PROTOCOL;
    }
    rl_tp_t *tp = c->tp;
    for (int i = 0; i < tp->nmembers; i++) {
        if (tp->members[i].len == len && !memcmp(tp->members[i].name, blob, len)) {
            if (tp->members[i].rank != c->peer) {
                snprintf(tp->err, sizeof(tp->err), "ranks %d and %d sent the same endpoint address",
                         tp->members[i].rank, c->peer);
                return RL_ERR_PROTOCOL;
            }
            c->addr = tp->members[i].addr; /* one AV entry per member: FI_SOURCE names it */
            return RL_OK;
        }
    }
    if (tp->nmembers == tp->capmembers) {
        int cap = tp->capmembers ? 2 * tp->capmembers : 8;
        struct ofi_member *m = realloc(tp->members, sizeof(*m) * (size_t)cap);
        if (!m)
            return RL_ERR_NO_MEMORY;
        tp->members = m;
        tp->capmembers = cap;
    }
    int ret = fi_av_insert(tp->av, blob, 1, &c->addr, 0, NULL);
    if (ret != 1) {
        snprintf(tp->err, sizeof(tp->err), "fi_av_insert for rank %d failed (%d)", c->peer, ret);
        return RL_ERR_TRANSPORT;
    }
    struct ofi_member *m = &tp->members[tp->nmembers++];
    m->addr = c->addr;
    m->rank = c->peer;
    m->len = len;
    memcpy(m->name, blob, len);
    return RL_OK;
}

/* The rank behind a completion's source address, or -1 for an outsider. */
static int ofi_member_rank(const rl_tp_t *tp, fi_addr_t src)
{
    if (src == FI_ADDR_NOTAVAIL || src == FI_ADDR_UNSPEC)
        return -1;
    for (int i = 0; i < tp->nmembers; i++)
        if (tp->members[i].addr == src)
            return tp->members[i].rank;
    return -1;
}

/* Something reached this endpoint from outside the group: it is dropped,
 * and logged (the first time, then at every power of two) so an attack
 * shows in the ranks' logs. */
static void ofi_foreign(rl_tp_t *tp, const char *what)
{
    tp->foreign++;
    if ((tp->foreign & (tp->foreign - 1)) == 0)
        RL_WARN("libfabric %s: dropped %s from an endpoint that is not a member of the group "
                "(%llu so far): someone outside the group is writing to this rank",
                tp->desc, what, (unsigned long long)tp->foreign);
}

static void ofi_conn_destroy(rl_tp_conn_t *c) { free(c); }

/* A key no one outside can guess, as wide as the provider's keys. */
static int ofi_random_key(rl_tp_t *tp, uint64_t *key)
{
    size_t ks = tp->info->domain_attr->mr_key_size;
    uint64_t v = 0;
    ssize_t got;
    do
        got = getrandom(&v, sizeof(v), 0);
    while (got < 0 && errno == EINTR);
    if (got != (ssize_t)sizeof(v))
        return -FI_EIO;
    if (ks > 0 && ks < 8)
        v &= (1ull << (8 * ks)) - 1;
    *key = v;
    return 0;
}

static rl_status_t ofi_mr_reg(rl_tp_t *tp, void *buf, size_t len, unsigned access, rl_tp_mr_t **out)
{
    rl_tp_mr_t *m = calloc(1, sizeof(*m));
    if (!m)
        return RL_ERR_NO_MEMORY;
    m->tp = tp;
    m->base = buf;
    uint64_t mode = tp->info->domain_attr->mr_mode;
    if (!(access & RL_ACCESS_REMOTE_WRITE) && !(mode & FI_MR_LOCAL)) {
        *out = m; /* the provider needs no registration for a write source */
        return RL_OK;
    }
    uint64_t acc = 0;
    if (access & RL_ACCESS_LOCAL)
        acc |= FI_WRITE;
    if (access & RL_ACCESS_REMOTE_WRITE)
        acc |= FI_REMOTE_WRITE;
    /* Where ringlet chooses the key, it is random: a counter would let
     * anyone who reaches the endpoint guess it. A collision with a key in
     * use is refused by the provider; draw again. */
    int ret = -FI_ENOKEY;
    for (int tries = 0; ret == -FI_ENOKEY && tries < 8; tries++) {
        uint64_t key = 0;
        if (!(mode & FI_MR_PROV_KEY) && (ret = ofi_random_key(tp, &key)) != 0)
            break;
        ret = fi_mr_reg(tp->domain, buf, len, acc, 0, key, 0, &m->mr, NULL);
    }
    if (ret)
        goto fail;
    if (mode & FI_MR_ENDPOINT) {
        if ((ret = fi_mr_bind(m->mr, &tp->ep->fid, 0)) || (ret = fi_mr_enable(m->mr)))
            goto fail;
    }
    m->desc = fi_mr_desc(m->mr);
    *out = m;
    return RL_OK;
fail:
    if (m->mr)
        fi_close(&m->mr->fid);
    free(m);
    ofi_fail(tp, ret, "fi_mr_reg");
    return RL_ERR_TRANSPORT;
}

static void ofi_mr_dereg(rl_tp_mr_t *m)
{
    if (m && m->mr)
        fi_close(&m->mr->fid);
    free(m);
}

static void ofi_mr_remote(rl_tp_mr_t *m, const rl_tp_conn_t *to, const void *ptr, rl_rkey_t *rk)
{
    (void)to;
    uint64_t off = (uint64_t)((const char *)ptr - (const char *)m->base);
    rk->key = m->mr ? fi_mr_key(m->mr) : 0;
    rk->addr = (m->tp->info->domain_attr->mr_mode & FI_MR_VIRT_ADDR) ? (uint64_t)(uintptr_t)ptr : off;
}

static rl_status_t ofi_quiesced(rl_tp_conn_t *c)
{
    snprintf(c->tp->err, sizeof(c->tp->err), "write to rank %d after the endpoint was closed", c->peer);
    return RL_ERR_TRANSPORT;
}

static rl_status_t ofi_write_imm(rl_tp_conn_t *c, const void *src, size_t len, rl_tp_mr_t *smr,
                                 uint64_t raddr, uint64_t rkey, uint32_t imm, void *ctx)
{
    if (!c->tp->ep)
        return ofi_quiesced(c);
    ssize_t ofi_ret_,
        ret = OFI_CALL(c->tp, fi_writedata(c->tp->ep, src, len, smr ? smr->desc : NULL, imm, c->addr, raddr, rkey, ctx));
    if (ret == 0) {
        c->tp->tx_out++;
        return RL_OK;
    }
    if (ret == -FI_EAGAIN) {
        /* Manual-progress providers need the CQ driven before room frees. */
        (void)OFI_CALL(c->tp, fi_cq_read(c->tp->cq, NULL, 0));
        return RL_ERR_AGAIN;
    }
    rl_status_t st = ofi_fail(c->tp, (int)ret, "fi_writedata");
    snprintf(c->tp->err + strlen(c->tp->err), sizeof(c->tp->err) - strlen(c->tp->err), " to rank %d", c->peer);
    return st;
}

static rl_status_t ofi_write(rl_tp_conn_t *c, const void *src, size_t len, rl_tp_mr_t *smr, uint64_t raddr,
                             uint64_t rkey, void *ctx)
{
    if (!c->tp->ep)
        return ofi_quiesced(c);
    ssize_t ofi_ret_, ret = OFI_CALL(c->tp, fi_write(c->tp->ep, src, len, smr ? smr->desc : NULL, c->addr, raddr, rkey, ctx));
    if (ret == 0) {
        c->tp->tx_out++;
        return RL_OK;
    }
    if (ret == -FI_EAGAIN) {
        (void)OFI_CALL(c->tp, fi_cq_read(c->tp->cq, NULL, 0));
        return RL_ERR_AGAIN;
    }
    rl_status_t st = ofi_fail(c->tp, (int)ret, "fi_write");
    snprintf(c->tp->err + strlen(c->tp->err), sizeof(c->tp->err) - strlen(c->tp->err), " to rank %d", c->peer);
    return st;
}

static rl_status_t ofi_poll(rl_tp_t *tp, rl_tp_cqe_t *out, int max, int *n)
{
    struct fi_cq_data_entry ent[32];
    fi_addr_t src[32];
    *n = 0;
    if (!tp->ep)
        return RL_OK; /* quiesced */
    if (max > 32)
        max = 32;
    ssize_t ofi_ret_, got = tp->have_source ? OFI_CALL(tp, fi_cq_readfrom(tp->cq, ent, (size_t)max, src))
                                            : OFI_CALL(tp, fi_cq_read(tp->cq, ent, (size_t)max));
    if (got == -FI_EAGAIN)
        return RL_OK;
    if (got == -FI_EAVAIL) {
        struct fi_cq_err_entry e = {0};
        if (fi_cq_readerr(tp->cq, &e, 0) < 0)
            return ofi_fail(tp, -FI_EIO, "fi_cq_readerr");
        if (e.op_context == OFI_RECV_CTX && e.err == FI_ETRUNC && !(e.flags & FI_REMOTE_CQ_DATA)) {
            /* ringlet sends no messages: a message that overflowed a
             * receive came from outside the group */
            ofi_foreign(tp, "a message");
            return ofi_post_recvs(tp, 1);
        }
        snprintf(tp->err, sizeof(tp->err), "completion error: %s (provider: %s)", fi_strerror(e.err),
                 fi_cq_strerror(tp->cq, e.prov_errno, e.err_data, NULL, 0));
        out[0] = (rl_tp_cqe_t){.kind = (e.flags & FI_REMOTE_CQ_DATA) || e.op_context == OFI_RECV_CTX
                                           ? RL_CQE_RECV_IMM : RL_CQE_SEND,
                               .status = RL_ERR_TRANSPORT, .ctx = e.op_context, .peer = -1};
        if (out[0].kind == RL_CQE_SEND)
            tp->tx_out--;
        *n = 1;
        return RL_OK;
    }
    if (got < 0)
        return ofi_fail(tp, (int)got, "fi_cq_read");
    int k = 0, reposts = 0;
    for (ssize_t i = 0; i < got; i++) {
        if (ent[i].flags & FI_REMOTE_CQ_DATA) {
            int peer = tp->have_source ? ofi_member_rank(tp, src[i]) : -1;
            if (tp->rx_cq_data)
                reposts++;
            if (tp->have_source && peer < 0) {
                ofi_foreign(tp, "an immediate");
                continue;
            }
            out[k++] = (rl_tp_cqe_t){.kind = RL_CQE_RECV_IMM, .imm = (uint32_t)ent[i].data, .peer = peer};
        } else if (ent[i].op_context == OFI_RECV_CTX) {
            /* ringlet sends no messages: someone else did. Keep the pool full. */
            if (tp->have_source && ofi_member_rank(tp, src[i]) < 0)
                ofi_foreign(tp, "a message");
            reposts++;
        } else {
            out[k++] = (rl_tp_cqe_t){.kind = RL_CQE_SEND, .ctx = ent[i].op_context, .peer = -1};
            tp->tx_out--;
        }
    }
    *n = k;
    return reposts ? ofi_post_recvs(tp, reposts) : RL_OK;
}

static const char *ofi_last_error(rl_tp_t *tp) { return tp->err; }

/* tcp, shm and udp keep no pinned pages behind a registration; the
 * hardware providers (verbs, efa, psm*, cxi...) do. */
static int ofi_pins_memory(rl_tp_t *tp)
{
    const char *p = tp->info->fabric_attr->prov_name;
    return !(strstr(p, "tcp") || strstr(p, "shm") || strstr(p, "udp") || strstr(p, "sockets"));
}

const rl_tp_ops_t rl_tp_ofi_ops = {
    .size = sizeof(rl_tp_ops_t),
    .name = "ofi",
    .open = ofi_open,
    .close = ofi_close,
    .describe = ofi_describe,
    .conn_create = ofi_conn_create,
    .conn_establish = ofi_conn_establish,
    .conn_destroy = ofi_conn_destroy,
    .mr_reg = ofi_mr_reg,
    .mr_dereg = ofi_mr_dereg,
    .mr_remote = ofi_mr_remote,
    .write_imm = ofi_write_imm,
    .write = ofi_write,
    .poll = ofi_poll,
    .pins_memory = ofi_pins_memory,
    .last_error = ofi_last_error,
    .quiesce = ofi_quiesce,
};
