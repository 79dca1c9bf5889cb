#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define F_(field) offsetof(rl_config_t, field)
#define STR_(name, field, dflt, help) {name, dflt, help, RL_CFG_STRING, F_(field), sizeof(((rl_config_t *)0)->field), 0, 0}
#define INT_(name, field, dflt, lo, hi, help) {name, dflt, help, RL_CFG_INT, F_(field), 0, lo, hi}

const rl_config_field_t rl_config_fields[] = {
    INT_("RANK", rank, "-1", -1, INT_MAX, "Rank of this process (else from the launcher, see RINGLET_LAUNCHER)"),
    INT_("SIZE", size, "-1", -1, 1 << 20, "Number of ranks (else from the launcher, see RINGLET_LAUNCHER)"),
    STR_("ADDR", addr, "", "host:port of rank 0's rendezvous (else MASTER_ADDR:MASTER_PORT+1)"),
    STR_("LAUNCHER", launcher, "auto",
         "Where rank/size/address come from when RINGLET_RANK/SIZE/ADDR are unset: auto (torchrun, "
         "then PMIx, then Slurm's srun), torchrun, pmix or slurm"),
    STR_("BOOT_IF", boot_if, "",
         "Interface whose IPv4 address rank 0 publishes through PMIx (default: 127.0.0.1 when all "
         "ranks share a host, else the first non-loopback interface that is up)"),
    INT_("TIMEOUT_MS", timeout_ms, "30000", 1, INT_MAX,
         "Deadline in ms for bootstrap, connection setup and each wait"),
    STR_("TRANSPORT", transport, "auto", "Transport backend: auto, shm (ringlet's own, all ranks on one host), verbs or ofi; auto: shm when all ranks share a host, else verbs if an RDMA port is up, else ofi"),
    STR_("INTRA_TRANSPORT", intra_transport, "auto",
         "Transport between ranks on one host when the communicator also spans other hosts: shm (ringlet's own "
         "shared memory for the local peers, RINGLET_TRANSPORT for the others), none (RINGLET_TRANSPORT for "
         "every peer), or auto (shm when the group spans several hosts, this host has more than one of its "
         "ranks and RINGLET_TRANSPORT is not shm itself; shm also forces it when every rank is local)"),
    STR_("OFI_PROVIDER", ofi_provider, "auto",
         "libfabric provider (tcp, shm, verbs, efa...); auto: shm when all ranks share a host, else tcp"),
    STR_("SHM_CMA", shm_cma, "auto",
         "libfabric shm: move large messages with one cross-process copy (CMA) that pins pages (on), or with "
         "two pipelined copies through shared memory (off); auto: off under a hypervisor, where pinning was "
         "measured to cost more than the second copy, else on. FI_SHM_DISABLE_CMA, if set, wins"),
    {"CHUNK_BYTES", "512K", "Bytes per pipelined chunk (one network write)", RL_CFG_SIZE,
     F_(chunk_bytes), 0, 4096, 1LL << 30},
    {"MIN_CHUNK_BYTES", "64K",
     "Smallest chunk a block is cut into so that small operations still pipeline", RL_CFG_SIZE,
     F_(min_chunk_bytes), 0, 64, 1LL << 30},
    INT_("PIPELINE_DEPTH", pipeline_depth, "4", 1, 64,
         "Chunks in flight per neighbour (staging slots per connection)"),
    INT_("NCHANNELS", nchannels, "1", 1, RL_MAX_CHANNELS,
         "Rings the data is split over, each with its own connections; unset: 1, or one per device when "
         "RINGLET_IB_HCA lists several"),
    STR_("RING_ORDER", ring_order, "",
         "Ring order as a permutation of ranks, e.g. 0,2,3,1 (default: 0,1,...,n-1)"),
    STR_("TOPO_FILE", topo_file, "",
         "Fabric file (ringlet-topo's JSON, placing every rank): the channels follow the planner's rings, "
         "channel i on ring i mod rings, with at least one channel per ring (RINGLET_RING_ORDER wins if both "
         "are set); see ringlet-topo plan"),
    STR_("TOPO_PLACE", topo_place, "auto",
         "With RINGLET_TOPO_FILE: where the ranks sit for the plan: hosts (each rank on the fabric host named "
         "like its RINGLET_HOST_ID, else its host name, NIC by local index), file (the file's placement), or "
         "auto (hosts when the file names every rank's host, else file)"),
    INT_("TOPO_RINGS", topo_rings, "0", 0, RL_MAX_CHANNELS,
         "With RINGLET_TOPO_FILE: how many of the planner's rings to use; 0: all it plans (at most "
         "the channel limit)"),
    INT_("REG_CACHE", reg_cache, "-1", -1, 1,
         "Cache registrations of buffers the user did not register: 1 yes, 0 no, -1 only where "
         "registrations do not pin pages (a freed and reused buffer would keep stale pages)"),
    INT_("REG_CACHE_ENTRIES", reg_cache_entries, "64", 1, 1 << 16, "Registrations kept in the cache"),
    INT_("SPIN_US", spin_us, "-1", -1, 10000000,
         "Microseconds a wait busy-polls before it sleeps on the completion channel, or yields the CPU (and "
         "naps 20-200 us once nothing completed for 1 ms); -1: adaptive up to 50 (halved after a wait that "
         "outlasts it, doubled after one that does not), 0 when this host has more ranks than cores or the device "
         "is software RDMA (rxe, siw)"),
    STR_("WAIT", wait, "auto",
         "How a wait that stops spinning lets the CPU go: event (sleep on the transport's completion "
         "channel at once, when the communicator has one transport and it has one), yield (yield, then nap "
         "once nothing completed for 1 ms), or auto (yield on software RDMA such as rxe, whose transfers "
         "need this host's CPUs; event otherwise)"),
    STR_("P2P", p2p, "auto",
         "Connect every pair of ranks for send/recv and all-to-all: on, off, or auto (on up to 64 ranks)"),
    STR_("ALLREDUCE_ALGO", allreduce_algo, "auto",
         "All-reduce algorithm: ring, rhd (recursive halving-doubling; power-of-two groups of 4 or more with "
         "RINGLET_P2P connections), rd (eager recursive doubling up to RINGLET_RD_MAX_BYTES, ring above), or "
         "auto (rd up to RINGLET_RD_MAX_BYTES, then rhd up to RINGLET_RHD_MAX_BYTES, then ring)"),
    {"RD_MAX_BYTES", "64K",
     "Largest all-reduce (bytes) sent eagerly by recursive doubling (also the barrier's path); 0: never. "
     "Each rank keeps 4 x (log2(ranks) + 2) slots of this size",
     RL_CFG_SIZE, F_(rd_max_bytes), 0, 0, 1LL << 24},
    {"RHD_MAX_BYTES", "16M", "auto: largest all-reduce (bytes) that uses halving-doubling", RL_CFG_SIZE,
     F_(rhd_max_bytes), 0, 0, 1LL << 50},
    STR_("ALGOS", algos, "",
         "Algorithm per collective and size, overriding the defaults listed by ringlet-info, e.g. "
         "all_reduce:0-64K:rd,64K-16M:rhd,16M-:ring;broadcast:0-:chain. In each range (bytes per rank, both "
         "ends included) the first usable entry wins; auto picks the cheapest by the cost model; the "
         "collective's base algorithm is the last resort. \"auto\" alone: auto everywhere"),
    STR_("TUNE_FILE", tune_file, "",
         "Cost-model parameters (alpha, beta, gamma per transport and group size) written by ringlet-tune; "
         "default: built-in estimates"),
    STR_("REDUCE_ISA", reduce_isa, "auto",
         "Reduction kernels: auto, or force a lower ISA (generic, avx2) than the CPU offers"),
    STR_("LOG_LEVEL", log_level, "warn", "Log level: none, error, warn, info, debug, trace"),
    STR_("LOG_FILE", log_file, "", "Log file (%h host, %p pid); default stderr"),
    STR_("AUTH_KEY", auth_key, "",
         "Shared secret: only processes that know it may join the group (challenge-response, keyed MAC)"),
    STR_("AUTH_KEY_FILE", auth_key_file, "",
         "File holding the shared secret (trailing newline ignored); keeps it out of the environment"),
    STR_("HOST_ID", host_id, "",
         "Identity of this rank's host: ranks with equal ones are neighbours (shm, loopback). Default: the "
         "kernel's boot id and the network namespace, so separate namespaces or containers are separate hosts"),
    STR_("IB_HCA", ib_hca, "",
         "verbs devices and ports, e.g. rxe0:1 or mlx5_0:1,mlx5_1:1 (default: the first active port); with "
         "several, ring channel c uses entry c mod n (each with its own PD and CQ, every registration on "
         "each), point-to-point traffic the first"),
    INT_("IB_GID_INDEX", ib_gid_index, "-1", -1, 1 << 16,
         "GID index (-1: the RoCE v2 GID of the bootstrap's interface, else the first RoCE v2 one)"),
    STR_("IB_CM", ib_cm, "oob", "verbs connection setup: oob (QP data over bootstrap) or rdmacm"),
    STR_("IB_ADDR", ib_addr, "",
         "rdmacm: IP address of this rank's RDMA interface (default: the IPv4 in its RoCE GID)"),
    INT_("IB_TC", ib_tc, "0", 0, 255, "Traffic class for RoCE (DSCP << 2)"),
    INT_("IB_SL", ib_sl, "0", 0, 15, "Service level"),
    INT_("IB_TIMEOUT", ib_timeout, "20", 1, 31, "QP ACK timeout exponent (4.096us * 2^x)"),
    INT_("IB_RETRY_CNT", ib_retry_cnt, "7", 0, 7, "QP transport retry count"),
    INT_("IB_MTU", ib_mtu, "0", 0, 4096, "Path MTU in bytes (0: the port's active MTU)"),
    INT_("IB_QPS_PER_PEER", ib_qps_per_peer, "1", 1, 16, "QPs per peer; chunks are striped over them"),
};
const size_t rl_config_nfields = sizeof(rl_config_fields) / sizeof(rl_config_fields[0]);

int rl_parse_size(const char *s, size_t *out)
{
    if (!s || !*s)
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-')
        return -1;
    unsigned shift = 0;
    switch (toupper((unsigned char)*end)) {
    case 'K': shift = 10; end++; break;
    case 'M': shift = 20; end++; break;
    case 'G': shift = 30; end++; break;
    case '\0': break;
    default: return -1;
    }
    if (*end == 'i' || *end == 'B' || *end == 'b')
        end += (*end == 'i' && (end[1] == 'B' || end[1] == 'b')) ? 2 : 1;
    if (*end)
        return -1;
    if (shift && v > (ULLONG_MAX >> shift))
        return -1;
    *out = (size_t)(v << shift);
    return 0;
}

rl_status_t rl_config_set(rl_config_t *cfg, const rl_config_field_t *f, const char *val,
                          char *err, size_t errlen)
{
    char *dst = (char *)cfg + f->offset;
    switch (f->type) {
    case RL_CFG_STRING:
        if (strlen(val) >= f->len) {
            snprintf(err, errlen, "RINGLET_%s: value longer than %zu characters", f->name, f->len - 1);
            return RL_ERR_CONFIG;
        }
        memcpy(dst, val, strlen(val) + 1);
        return RL_OK;
    case RL_CFG_BOOL: {
        int b;
        if (!strcasecmp(val, "1") || !strcasecmp(val, "yes") || !strcasecmp(val, "true") || !strcasecmp(val, "on"))
            b = 1;
        else if (!strcasecmp(val, "0") || !strcasecmp(val, "no") || !strcasecmp(val, "false") || !strcasecmp(val, "off"))
            b = 0;
        else {
            snprintf(err, errlen, "RINGLET_%s=%s: expected 0/1, yes/no, true/false, on/off", f->name, val);
            return RL_ERR_CONFIG;
        }
        memcpy(dst, &b, sizeof(b));
        return RL_OK;
    }
    case RL_CFG_SIZE: {
        size_t v;
        if (rl_parse_size(val, &v) || (long long)v < f->min || (long long)v > f->max) {
            snprintf(err, errlen, "RINGLET_%s=%s: expected a byte count from %lld to %lld (K/M/G suffixes allowed)",
                     f->name, val, f->min, f->max);
            return RL_ERR_CONFIG;
        }
        memcpy(dst, &v, sizeof(v));
        return RL_OK;
    }
    case RL_CFG_INT: {
        errno = 0;
        char *end;
        long long v = strtoll(val, &end, 10);
        if (errno || end == val || *end || v < f->min || v > f->max) {
            snprintf(err, errlen, "RINGLET_%s=%s: expected an integer from %lld to %lld", f->name, val,
                     f->min, f->max);
            return RL_ERR_CONFIG;
        }
        int iv = (int)v;
        memcpy(dst, &iv, sizeof(iv));
        return RL_OK;
    }
    }
    return RL_ERR_INTERNAL;
}

rl_status_t rl_config_load(rl_config_t *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < rl_config_nfields; i++) {
        const rl_config_field_t *f = &rl_config_fields[i];
        rl_status_t st = rl_config_set(cfg, f, f->dflt, err, errlen);
        if (st != RL_OK)
            return st;
        char var[96];
        snprintf(var, sizeof(var), "RINGLET_%s", f->name);
        const char *v = getenv(var);
        if (v && *v) {
            st = rl_config_set(cfg, f, v, err, errlen);
            if (st != RL_OK)
                return st;
        }
    }
    /* Several devices and no channel count given: a channel per device, so
     * that each carries a share of every ring (entries are comma separated;
     * the verbs backend validates them). */
    const char *nch = getenv("RINGLET_NCHANNELS");
    if (!(nch && *nch) && cfg->ib_hca[0]) {
        int n = 1;
        for (const char *p = cfg->ib_hca; *p; p++)
            n += *p == ',';
        cfg->nchannels = n < RL_MAX_CHANNELS ? n : RL_MAX_CHANNELS;
    }
    return RL_OK;
}

rl_status_t rl_parse_ring_order(const char *s, int n, int *order, char *err, size_t errlen)
{
    if (n <= 0) {
        snprintf(err, errlen, "ring order: invalid group size %d", n);
        return RL_ERR_INVALID_ARG;
    }
    if (!s || !*s) {
        for (int i = 0; i < n; i++)
            order[i] = i;
        return RL_OK;
    }
    unsigned char *seen = calloc((size_t)n, 1);
    if (!seen)
        return RL_ERR_NO_MEMORY;
    rl_status_t st = RL_OK;
    int k = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v >= n) {
            snprintf(err, errlen, "ring order \"%s\": entry %d is not a rank in [0, %d)", s, k, n);
            st = RL_ERR_CONFIG;
            break;
        }
        if (k >= n || seen[v]) {
            snprintf(err, errlen, "ring order \"%s\": %s", s, k >= n ? "more entries than ranks" : "a rank appears twice");
            st = RL_ERR_CONFIG;
            break;
        }
        seen[v] = 1;
        order[k++] = (int)v;
        p = end;
        while (*p == ' ')
            p++;
        if (*p == ',')
            p++;
        else if (*p) {
            snprintf(err, errlen, "ring order \"%s\": expected a comma-separated list of ranks", s);
            st = RL_ERR_CONFIG;
            break;
        }
    }
    if (st == RL_OK && k != n) {
        snprintf(err, errlen, "ring order \"%s\" names %d ranks, the group has %d", s, k, n);
        st = RL_ERR_CONFIG;
    }
    free(seen);
    return st;
}

void rl_config_print(FILE *out)
{
    fprintf(out, "%-28s %-14s %-14s %s\n", "# variable", "value", "default", "description");
    for (size_t i = 0; i < rl_config_nfields; i++) {
        const rl_config_field_t *f = &rl_config_fields[i];
        char var[96];
        snprintf(var, sizeof(var), "RINGLET_%s", f->name);
        const char *v = getenv(var);
        if (v && !strcmp(f->name, "AUTH_KEY"))
            v = "(hidden)"; /* never print the secret */
        fprintf(out, "%-28s %-14s %-14s %s\n", var, v ? v : "(unset)", f->dflt[0] ? f->dflt : "\"\"", f->help);
    }
}
