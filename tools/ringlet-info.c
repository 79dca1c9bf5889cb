/*
 * ringlet-info: what ringlet would see on this host. RDMA devices (ports,
 * state, link layer, MTU, GIDs with their RoCE version), the libfabric
 * providers fi_getinfo() offers, and every RINGLET_* variable with its
 * current value, default and help, listed from the same table the library
 * parses (lib/core/config.c), so the two cannot drift.
 */
#include <arpa/inet.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <stdlib.h>

#include "core/comm.h"
#include "core/config.h"
#include "ringlet.h"
#include "topo/topo.h"

#ifdef RL_HAVE_VERBS
#include <infiniband/verbs.h>
#endif
#ifdef RL_HAVE_OFI
#include <rdma/fabric.h>
#endif

static const char usage_text[] =
    "usage: ringlet-info [--devices] [--providers] [--config] [--algos [--ranks N] [--transport T] [--sizes LIST]]\n"
    "                    [--topo FILE] [-h|--help]\n"
    "\n"
    "Print what ringlet sees on this host, to check a set-up or to attach to a\n"
    "bug report. With no option, prints every section:\n"
    "\n"
    "  --devices    RDMA (verbs) devices: each port's state, link layer, active\n"
    "               MTU, and its GID table (index, value, type IB / RoCE v1 /\n"
    "               RoCE v2, network interface). Says so when there are none.\n"
    "  --providers  libfabric providers fi_getinfo() returns (provider, fabric,\n"
    "               domain, endpoint type) and whether each supports FI_RMA.\n"
    "  --config     every RINGLET_* variable: value in this environment, default\n"
    "               and description; the library parses the same table.\n"
    "  --algos      the algorithm table this environment resolves (RINGLET_ALGOS and\n"
    "               the older variables), and the cost model's predicted time of\n"
    "               each candidate at a few sizes, for N ranks (default\n"
    "               RINGLET_SIZE, else 4) over transport T (ofi:tcp, ofi:shm,\n"
    "               verbs; default ofi:tcp), with RINGLET_TUNE_FILE's parameters, at\n"
    "               LIST (bytes per rank, e.g. 8,4K,1M; default 8 B to 64 MiB)\n"
    "  --topo FILE  the ring plan rl_comm_create uses with RINGLET_TOPO_FILE=FILE:\n"
    "               rings, and the most-loaded link of rank order, plan and bound\n"
    "  -h, --help   this help\n"
    "\n"
    "Exit status 0; 2 for a bad option. Nothing is changed on the host.\n";

#ifdef RL_HAVE_VERBS
static const char *port_state(enum ibv_port_state s)
{
    switch (s) {
    case IBV_PORT_DOWN: return "DOWN";
    case IBV_PORT_INIT: return "INIT";
    case IBV_PORT_ARMED: return "ARMED";
    case IBV_PORT_ACTIVE: return "ACTIVE";
    default: return "?";
    }
}

static const char *link_layer(uint8_t l)
{
    return l == IBV_LINK_LAYER_ETHERNET ? "Ethernet" : l == IBV_LINK_LAYER_INFINIBAND ? "InfiniBand" : "unspecified";
}

static const char *gid_type(uint32_t t)
{
    switch (t) {
    case IBV_GID_TYPE_IB: return "IB";
    case IBV_GID_TYPE_ROCE_V1: return "RoCE v1";
    case IBV_GID_TYPE_ROCE_V2: return "RoCE v2";
    default: return "?";
    }
}

static void print_gids(struct ibv_context *ctx, uint8_t port, int nent)
{
    int shown = 0;
    for (int i = 0; i < nent; i++) {
        struct ibv_gid_entry e;
        if (ibv_query_gid_ex(ctx, port, (uint32_t)i, &e, 0))
            continue; /* an empty slot of the table */
        char s[INET6_ADDRSTRLEN], ifname[IF_NAMESIZE] = "-";
        inet_ntop(AF_INET6, e.gid.raw, s, sizeof(s));
        if (e.ndev_ifindex && !if_indextoname(e.ndev_ifindex, ifname))
            snprintf(ifname, sizeof(ifname), "#%u", e.ndev_ifindex);
        printf("      gid %-3d %-40s %-8s %s\n", i, s, gid_type(e.gid_type), ifname);
        shown++;
    }
    if (!shown)
        printf("      no GIDs\n");
}

static void print_port(struct ibv_context *ctx, uint8_t p)
{
    struct ibv_port_attr pa;
    if (ibv_query_port(ctx, p, &pa)) {
        printf("    port %u: cannot query\n", p);
        return;
    }
    printf("    port %u: %s, link layer %s, active MTU %d, max MTU %d, %d GID entries\n", p,
           port_state(pa.state), link_layer(pa.link_layer), 128 << ((int)pa.active_mtu - 1),
           128 << ((int)pa.max_mtu - 1), pa.gid_tbl_len);
    print_gids(ctx, p, pa.gid_tbl_len);
}

static void print_devices(void)
{
    printf("== RDMA devices (verbs)\n");
    int n = 0;
    struct ibv_device **list = ibv_get_device_list(&n);
    if (!list || n == 0) {
        printf("  no RDMA devices on this host (ringlet will use libfabric; SoftRoCE: tools/rxe-vm)\n");
        if (list)
            ibv_free_device_list(list);
        return;
    }
    for (int i = 0; i < n; i++) {
        struct ibv_context *ctx = ibv_open_device(list[i]);
        if (!ctx) {
            printf("  %s: cannot open\n", ibv_get_device_name(list[i]));
            continue;
        }
        struct ibv_device_attr da;
        if (ibv_query_device(ctx, &da) == 0) {
            printf("  %s: %d port(s), fw %s, max QPs %d, max MR size %llu\n", ibv_get_device_name(list[i]),
                   da.phys_port_cnt, da.fw_ver[0] ? da.fw_ver : "-", da.max_qp,
                   (unsigned long long)da.max_mr_size);
            for (uint8_t p = 1; p <= da.phys_port_cnt; p++)
                print_port(ctx, p);
        }
        ibv_close_device(ctx);
    }
    ibv_free_device_list(list);
}
#else
static void print_devices(void)
{
    printf("== RDMA devices (verbs)\n  ringlet was built without verbs support\n");
}
#endif

#ifdef RL_HAVE_OFI
/* fi_getinfo returns one entry per provider x address; show one line per
 * provider and endpoint type, with the domains it covers. */
typedef struct {
    char prov[64], ep[8], domains[256];
    int rma;
} prov_row_t;

static void add_domain(prov_row_t *r, const char *dom)
{
    size_t n = strlen(dom), have = strlen(r->domains);
    for (const char *p = r->domains; (p = strstr(p, dom)); p += n)
        if ((p == r->domains || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
            return;
    if (have + n + 3 < sizeof(r->domains))
        snprintf(r->domains + have, sizeof(r->domains) - have, "%s%s", have ? ", " : "", dom);
}

static void print_providers(void)
{
    printf("== libfabric providers (fi_getinfo, libfabric %u.%u)\n", FI_MAJOR(fi_version()),
           FI_MINOR(fi_version()));
    struct fi_info *list = NULL;
    int rc = fi_getinfo(FI_VERSION(1, 9), NULL, NULL, 0, NULL, &list);
    if (rc || !list) {
        printf("  none (%s)\n", rc ? fi_strerror(-rc) : "empty list");
        return;
    }
    static prov_row_t rows[64];
    int nrows = 0;
    for (struct fi_info *i = list; i; i = i->next) {
        const char *ep = i->ep_attr->type == FI_EP_RDM ? "rdm" : i->ep_attr->type == FI_EP_MSG ? "msg"
                         : i->ep_attr->type == FI_EP_DGRAM ? "dgram" : "?";
        int k = 0;
        while (k < nrows && (strcmp(rows[k].prov, i->fabric_attr->prov_name) || strcmp(rows[k].ep, ep)))
            k++;
        if (k == nrows) {
            if (nrows == (int)(sizeof(rows) / sizeof(rows[0])))
                continue;
            memset(&rows[k], 0, sizeof(rows[k]));
            snprintf(rows[k].prov, sizeof(rows[k].prov), "%s", i->fabric_attr->prov_name);
            snprintf(rows[k].ep, sizeof(rows[k].ep), "%s", ep);
            nrows++;
        }
        rows[k].rma |= (i->caps & FI_RMA) != 0;
        add_domain(&rows[k], i->domain_attr->name ? i->domain_attr->name : "-");
    }
    fi_freeinfo(list);
    printf("  %-22s %-6s %-4s %s\n", "provider", "ep", "rma", "domains");
    for (int k = 0; k < nrows; k++)
        printf("  %-22s %-6s %-4s %s\n", rows[k].prov, rows[k].ep, rows[k].rma ? "yes" : "no", rows[k].domains);
}
#else
static void print_providers(void)
{
    printf("== libfabric providers\n  ringlet was built without libfabric support\n");
}
#endif

static void print_config(void)
{
    printf("== RINGLET_* settings (value in this environment, default, description)\n");
    rl_config_print(stdout);
}

/* Same planner and same file as rl_comm_create with RINGLET_TOPO_FILE. */
static int print_topo(const char *path)
{
    char err[512];
    rl_topo_t t;
    if (rl_topo_load(path, &t, err, sizeof(err)) != RL_OK) {
        fprintf(stderr, "ringlet-info: %s\n", err);
        return 1;
    }
    rl_topo_plan_t p;
    int rc = 0;
    printf("== ring plan for RINGLET_TOPO_FILE=%s\n", path);
    if (rl_topo_plan(&t, 0, &p, err, sizeof(err)) == RL_OK) {
        rl_topo_plan_print(&t, &p, stdout);
        printf("# rl_comm_create takes ring 0 (RINGLET_RING_ORDER, if set, wins)\n");
        rl_topo_plan_free(&p);
    } else {
        fprintf(stderr, "ringlet-info: %s\n", err);
        rc = 1;
    }
    rl_topo_free(&t);
    return rc;
}

int main(int argc, char **argv)
{
    int dev = 0, prov = 0, cfg = 0, algos = 0, ranks = getenv("RINGLET_SIZE") ? atoi(getenv("RINGLET_SIZE")) : 4;
    const char *transport = "ofi:tcp", *topo = NULL;
    uint64_t sizes[32];
    int nsizes = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--topo") && i + 1 < argc)
            topo = argv[++i];
        else if (!strcmp(argv[i], "--algos"))
            algos = 1;
        else if (!strcmp(argv[i], "--ranks") && i + 1 < argc)
            ranks = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--transport") && i + 1 < argc)
            transport = argv[++i];
        else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
            for (char *tok = strtok(argv[++i], ","); tok && nsizes < 32; tok = strtok(NULL, ",")) {
                size_t v;
                if (rl_parse_size(tok, &v) != 0) {
                    fprintf(stderr, "ringlet-info: bad size %s in --sizes\n", tok);
                    return 2;
                }
                sizes[nsizes++] = v;
            }
        }
        else if (!strcmp(argv[i], "--devices"))
            dev = 1;
        else if (!strcmp(argv[i], "--providers"))
            prov = 1;
        else if (!strcmp(argv[i], "--config"))
            cfg = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else {
            fprintf(stderr, "ringlet-info: unknown option %s (try --help)\n", argv[i]);
            return 2;
        }
    }
    if (ranks < 1 || ranks > (1 << 20)) {
        fprintf(stderr, "ringlet-info: --ranks must be in [1, %d]\n", 1 << 20);
        return 2;
    }
    if (topo && !dev && !prov && !cfg && !algos)
        return print_topo(topo);
    if (!dev && !prov && !cfg && !algos)
        dev = prov = cfg = algos = 1;
    char host[256] = "?";
    gethostname(host, sizeof(host) - 1);
    printf("ringlet %s on %s; transports built in: shm%s%s\n", rl_version(), host,
#ifdef RL_HAVE_VERBS
           " verbs",
#else
           "",
#endif
#ifdef RL_HAVE_OFI
           " ofi"
#else
           ""
#endif
    );
    const char *intra = getenv("RINGLET_INTRA_TRANSPORT");
    intra = intra && *intra ? intra : "auto";
    printf("peers on the same host: %s (RINGLET_INTRA_TRANSPORT=%s); a communicator then describes itself as "
           "\"<network transport> (N peers) + shm:... (M on this host)\"\n",
           !strcmp(intra, "none") ? "through RINGLET_TRANSPORT like the others"
           : !strcmp(intra, "shm") ? "ringlet's shm"
                                   : "ringlet's shm when the group spans several hosts, else RINGLET_TRANSPORT",
           intra);
    if (dev)
        print_devices();
    if (prov)
        print_providers();
    if (cfg)
        print_config();
    if (algos) {
        char err[512];
        if (rl_select_explain(stdout, ranks, transport, sizes, nsizes, err, sizeof(err)) != RL_OK) {
            fprintf(stderr, "ringlet-info: %s\n", err);
            return 1;
        }
    }
    return topo ? print_topo(topo) : 0;
}
