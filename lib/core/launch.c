/*
 * Rank, size and rendezvous address from the launcher, for rl_comm_create.
 *
 * Order (first match wins; RINGLET_RANK/SIZE/ADDR and rl_comm_opts_t always
 * win over all of these, field by field):
 *   1. torchrun: RANK and WORLD_SIZE set. comm.c reads them together with
 *      MASTER_ADDR and MASTER_PORT (+1); nothing to do here. torchrun comes
 *      first because its workers inherit the PMIx/Slurm variables of the
 *      torchrun process itself, which describe the wrong group.
 *   2. PMIx (Open MPI's mpirun, srun --mpi=pmix): PMIX_RANK/PMIX_NAMESPACE
 *      set. Rank from PMIx_Init, size from PMIX_JOB_SIZE; rank 0 picks a free
 *      port, publishes "ip:port" with PMIx_Put + Commit, everyone Fences with
 *      data collection and reads it with PMIx_Get. No RINGLET_ADDR needed.
 *   3. Slurm's srun: SLURM_PROCID and SLURM_STEP_NUM_TASKS set (srun sets the
 *      latter, a batch script alone does not). Rendezvous rule: task 0 runs on
 *      the first node of SLURM_STEP_NODELIST (true for srun's default block
 *      and cyclic distributions) and listens on a port every task derives
 *      from SLURM_JOB_ID and SLURM_STEP_ID. Other layouts: set RINGLET_ADDR.
 * A process started by mpirun in a build without PMIx gets rank and size
 * from OMPI_COMM_WORLD_RANK/SIZE and must be given RINGLET_ADDR.
 */
#include "core/launch.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"

#ifdef RL_HAVE_PMIX
#include <pmix.h>
#endif

/* Communicators are created in the same order on every rank, so a per-process
 * count tells them apart (PMIx key, Slurm port) without any exchange. */
static atomic_uint launch_seq;

__attribute__((format(printf, 3, 4))) static void lerr(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

/* Strict non-negative integer from the environment; -1 if unset or bad. */
static long env_long(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return -1;
    char *end;
    long x = strtol(v, &end, 10);
    return (*end || x < 0) ? -1 : x;
}

int rl_launch_first_host(const char *list, char *out, size_t len)
{
    size_t o = 0;
    const char *p = list;
    if (!p || !*p || len == 0)
        return -1;
    while (*p && *p != ',') {
        if (*p == '[') {
            /* "[07-09,12]": the first element of a range list is its first host. */
            p++;
            while (*p && *p != '-' && *p != ',' && *p != ']') {
                if (o + 1 >= len)
                    return -1;
                out[o++] = *p++;
            }
            while (*p && *p != ']')
                p++;
            if (*p != ']')
                return -1;
            p++;
            continue;
        }
        if (*p == ']' || o + 1 >= len)
            return -1;
        out[o++] = *p++;
    }
    out[o] = '\0';
    return o ? 0 : -1;
}

int rl_launch_slurm_port(unsigned long job_id, unsigned long step_id, unsigned seq)
{
    /* 12000-31999: below Linux's ephemeral range (32768-60999), so a port
     * is not taken by some outgoing connection; steps of one job differ. */
    return 12000 + (int)((job_id * 97 + step_id * 16 + seq) % 20000);
}

static rl_status_t from_slurm(rl_config_t *cfg, char *err, size_t len)
{
    long procid = env_long("SLURM_PROCID"), ntasks = env_long("SLURM_STEP_NUM_TASKS");
    if (procid < 0 || ntasks < 1) {
        lerr(err, len, "RINGLET_LAUNCHER=slurm but SLURM_PROCID/SLURM_STEP_NUM_TASKS are unset or invalid");
        return RL_ERR_CONFIG;
    }
    if (cfg->rank < 0)
        cfg->rank = (int)procid;
    if (cfg->size < 0)
        cfg->size = (int)ntasks;
    rl_log_set_rank(cfg->rank);
    unsigned seq = atomic_fetch_add(&launch_seq, 1);
    if (cfg->addr[0] || cfg->size == 1)
        return RL_OK;
    const char *nodes = getenv("SLURM_STEP_NODELIST");
    if (!nodes)
        nodes = getenv("SLURM_JOB_NODELIST");
    char first[200];
    if (!nodes || rl_launch_first_host(nodes, first, sizeof(first))) {
        lerr(err, len, "Slurm: cannot find task 0's node in SLURM_STEP_NODELIST \"%s\"; set RINGLET_ADDR",
             nodes ? nodes : "");
        return RL_ERR_CONFIG;
    }
    const char *me = getenv("SLURMD_NODENAME");
    if (cfg->rank == 0 && me && strcmp(me, first)) {
        lerr(err, len, "Slurm: task 0 runs on %s, not on the step's first node %s (a non-default "
             "--distribution?): set RINGLET_ADDR", me, first);
        return RL_ERR_CONFIG;
    }
    long job = env_long("SLURM_JOB_ID"), step = env_long("SLURM_STEP_ID");
    int port = rl_launch_slurm_port(job < 0 ? 0 : (unsigned long)job, step < 0 ? 0 : (unsigned long)step, seq);
    /* Task 0 listens on every interface: its own name may resolve to a
     * loopback address (Debian's 127.0.1.1). */
    snprintf(cfg->addr, sizeof(cfg->addr), "%s:%d", cfg->rank == 0 ? "0.0.0.0" : first, port);
    RL_INFO("launcher: slurm, task %d of %d, rendezvous %s:%d", cfg->rank, cfg->size, first, port);
    return RL_OK;
}

#ifdef RL_HAVE_PMIX
/* IPv4 address rank 0 publishes: RINGLET_BOOT_IF's, loopback when every
 * rank is on this host, else the first non-loopback interface that is up. */
static rl_status_t pick_ip(const rl_config_t *cfg, int all_local, char *ip, size_t len, char *err, size_t errlen)
{
    if (all_local && !cfg->boot_if[0]) {
        snprintf(ip, len, "127.0.0.1");
        return RL_OK;
    }
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs)) {
        lerr(err, errlen, "PMIx bootstrap: getifaddrs failed");
        return RL_ERR_BOOTSTRAP;
    }
    int found = 0;
    for (struct ifaddrs *i = ifs; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || !(i->ifa_flags & IFF_UP))
            continue;
        if (cfg->boot_if[0] ? strcmp(i->ifa_name, cfg->boot_if) != 0 : (i->ifa_flags & IFF_LOOPBACK) != 0)
            continue;
        found = inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, ip, (socklen_t)len) != NULL;
    }
    freeifaddrs(ifs);
    if (!found) {
        lerr(err, errlen, "PMIx bootstrap: no IPv4 address on %s%s (set RINGLET_BOOT_IF or RINGLET_ADDR)",
             cfg->boot_if[0] ? "interface " : "any non-loopback interface that is up", cfg->boot_if);
        return RL_ERR_BOOTSTRAP;
    }
    return RL_OK;
}

/* A port free right now on ip; rank 0's bootstrap binds it moments later. */
static int free_port(const char *ip)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t al = sizeof(a);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static uint32_t pmix_u32(const pmix_proc_t *proc, const char *key, uint32_t dflt)
{
    pmix_value_t *v = NULL;
    uint32_t out = dflt;
    if (PMIx_Get(proc, key, NULL, 0, &v) == PMIX_SUCCESS && v) {
        if (v->type == PMIX_UINT32)
            out = v->data.uint32;
        PMIX_VALUE_RELEASE(v);
    }
    return out;
}

/* Rank 0 publishes its address; everyone fences (collecting data) and reads it. */
static rl_status_t pmix_exchange(const pmix_proc_t *me, const rl_config_t *cfg, int all_local, char *addr,
                                 size_t alen, char *err, size_t errlen)
{
    char key[64], val[128] = "";
    snprintf(key, sizeof(key), "ringlet.boot.%u", atomic_fetch_add(&launch_seq, 1));
    rl_status_t st = RL_OK;
    if (me->rank == 0) {
        char ip[INET_ADDRSTRLEN];
        if ((st = pick_ip(cfg, all_local, ip, sizeof(ip), err, errlen)) != RL_OK)
            return st; /* the others time out in the fence; PMIx reports no error for us */
        int port = free_port(ip);
        if (port < 0) {
            lerr(err, errlen, "PMIx bootstrap: no free TCP port on %s", ip);
            return RL_ERR_BOOTSTRAP;
        }
        snprintf(val, sizeof(val), "%s:%d", ip, port);
        pmix_value_t v;
        PMIX_VALUE_LOAD(&v, val, PMIX_STRING);
        pmix_status_t rc = PMIx_Put(PMIX_GLOBAL, key, &v);
        PMIX_VALUE_DESTRUCT(&v);
        if (rc != PMIX_SUCCESS || (rc = PMIx_Commit()) != PMIX_SUCCESS) {
            lerr(err, errlen, "PMIx_Put/Commit of the rendezvous address failed: %s", PMIx_Error_string(rc));
            return RL_ERR_BOOTSTRAP;
        }
    }
    int tmo = (cfg->timeout_ms + 999) / 1000;
    bool collect = true;
    pmix_info_t info[2];
    PMIX_INFO_LOAD(&info[0], PMIX_COLLECT_DATA, &collect, PMIX_BOOL);
    PMIX_INFO_LOAD(&info[1], PMIX_TIMEOUT, &tmo, PMIX_INT);
    pmix_status_t rc = PMIx_Fence(NULL, 0, info, 2);
    if (rc != PMIX_SUCCESS) {
        lerr(err, errlen, "PMIx_Fence failed: %s (did every rank call rl_comm_create?)", PMIx_Error_string(rc));
        st = RL_ERR_BOOTSTRAP;
    } else if (me->rank != 0) {
        pmix_proc_t root;
        PMIX_LOAD_PROCID(&root, me->nspace, 0);
        pmix_value_t *v = NULL;
        rc = PMIx_Get(&root, key, &info[1], 1, &v);
        if (rc != PMIX_SUCCESS || !v || v->type != PMIX_STRING || !v->data.string ||
            strlen(v->data.string) >= sizeof(val)) {
            lerr(err, errlen, "PMIx_Get of rank 0's address failed: %s",
                 rc != PMIX_SUCCESS ? PMIx_Error_string(rc) : "malformed value");
            st = RL_ERR_BOOTSTRAP;
        } else {
            snprintf(val, sizeof(val), "%s", v->data.string);
        }
        if (v)
            PMIX_VALUE_RELEASE(v);
    }
    PMIX_INFO_DESTRUCT(&info[0]);
    PMIX_INFO_DESTRUCT(&info[1]);
    if (st == RL_OK)
        snprintf(addr, alen, "%s", val);
    return st;
}

static rl_status_t from_pmix(rl_config_t *cfg, char *err, size_t len)
{
    pmix_proc_t me;
    pmix_status_t rc = PMIx_Init(&me, NULL, 0);
    if (rc != PMIX_SUCCESS) {
        lerr(err, len, "PMIx_Init failed: %s (not started by a PMIx launcher? set RINGLET_LAUNCHER)",
             PMIx_Error_string(rc));
        return RL_ERR_BOOTSTRAP;
    }
    pmix_proc_t job;
    PMIX_LOAD_PROCID(&job, me.nspace, PMIX_RANK_WILDCARD);
    uint32_t size = pmix_u32(&job, PMIX_JOB_SIZE, 0), local = pmix_u32(&job, PMIX_LOCAL_SIZE, 0);
    rl_status_t st = RL_OK;
    if (size == 0 || size > (1u << 20) || me.rank >= size) {
        lerr(err, len, "PMIx: no valid job size for this process");
        st = RL_ERR_BOOTSTRAP;
    } else {
        if (cfg->rank < 0)
            cfg->rank = (int)me.rank;
        if (cfg->size < 0)
            cfg->size = (int)size;
        rl_log_set_rank(cfg->rank);
        if (!cfg->addr[0] && cfg->size > 1)
            st = pmix_exchange(&me, cfg, local == size, cfg->addr, sizeof(cfg->addr), err, len);
        if (st == RL_OK)
            RL_INFO("launcher: pmix (namespace %s), rank %u of %u (%u on this host), rendezvous %s", me.nspace,
                    me.rank, size, local, cfg->addr);
    }
    /* Init/Finalize are reference counted: an MPI program keeps its own. */
    PMIx_Finalize(NULL, 0);
    return st;
}
#endif

#ifndef RL_HAVE_PMIX
/* Open MPI without PMIx support in this build: identity only. */
static rl_status_t from_ompi_env(rl_config_t *cfg, char *err, size_t len)
{
    long r = env_long("OMPI_COMM_WORLD_RANK"), n = env_long("OMPI_COMM_WORLD_SIZE");
    if (cfg->rank < 0 && r >= 0)
        cfg->rank = (int)r;
    if (cfg->size < 0 && n > 0)
        cfg->size = (int)n;
    if (!cfg->addr[0] && cfg->size > 1) {
        lerr(err, len, "started by a PMIx launcher but ringlet was built without PMIx (libpmix-dev): "
             "set RINGLET_ADDR=host:port");
        return RL_ERR_CONFIG;
    }
    return RL_OK;
}
#endif

rl_status_t rl_launch_resolve(const rl_comm_opts_t *opts, rl_config_t *cfg, char *err, size_t len)
{
    if (opts && opts->nranks > 0)
        return RL_OK; /* the caller said who we are */
    if (cfg->rank >= 0 && cfg->size > 0 && (cfg->addr[0] || cfg->size == 1))
        return RL_OK; /* RINGLET_RANK/SIZE/ADDR (ringlet-run) */
    const char *l = cfg->launcher;
    int is_auto = !strcmp(l, "auto");
    int torch = getenv("RANK") && getenv("WORLD_SIZE");
    int pmix = getenv("PMIX_RANK") && getenv("PMIX_NAMESPACE");
    int slurm = getenv("SLURM_PROCID") && getenv("SLURM_STEP_NUM_TASKS");
    if (!is_auto && strcmp(l, "torchrun") && strcmp(l, "pmix") && strcmp(l, "slurm")) {
        lerr(err, len, "RINGLET_LAUNCHER=%s: expected auto, torchrun, pmix or slurm", l);
        return RL_ERR_CONFIG;
    }
    if (!strcmp(l, "torchrun") || (is_auto && torch))
        return RL_OK; /* comm.c reads RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT */
    if (!strcmp(l, "pmix") || (is_auto && pmix)) {
#ifdef RL_HAVE_PMIX
        return from_pmix(cfg, err, len);
#else
        return from_ompi_env(cfg, err, len);
#endif
    }
    if (!strcmp(l, "slurm") || (is_auto && slurm))
        return from_slurm(cfg, err, len);
    return RL_OK; /* nothing found: comm.c explains what to set */
}

void rl_launch_host_id(const rl_config_t *cfg, char *out, size_t len)
{
    if (cfg->host_id[0]) {
        snprintf(out, len, "%s", cfg->host_id);
        return;
    }
    char boot[64] = "", ns[64] = "";
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        if (!fgets(boot, sizeof(boot), f))
            boot[0] = '\0';
        fclose(f);
    }
    boot[strcspn(boot, "\n")] = '\0';
    if (!boot[0]) /* no /proc: the host name is the best there is */
        gethostname(boot, sizeof(boot) - 1);
    ssize_t n = readlink("/proc/self/ns/net", ns, sizeof(ns) - 1); /* "net:[4026531840]" */
    ns[n > 0 ? n : 0] = '\0';
    const char *ino = strchr(ns, '[');
    snprintf(out, len, "%.40s/%.20s", boot, ino ? ino + 1 : ns);
    out[strcspn(out, "]")] = '\0';
}
