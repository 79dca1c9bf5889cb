/* Fabric descriptions, ring planning and flow-level simulation.
 * Nothing here touches the data path: the communicator only asks for a
 * ring order (rl_topo_plan), the tools do the rest.
 *
 * A fabric is a graph. Nodes are switches (ids 0..nsw-1) and NICs (ids
 * nsw..nsw+nnics-1); every NIC belongs to a host and has exactly one link,
 * to a switch. Links are full duplex: undirected link l is the directed
 * links 2l (a -> b) and 2l+1 (b -> a), each with the link's Gb/s. Ranks
 * sit on (host, NIC). Traffic between two ranks of one host crosses the
 * host's own interconnect (intra_gbps), never the fabric. */
#ifndef RL_TOPO_H
#define RL_TOPO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ringlet.h"

#define RL_TOPO_NAME 64

typedef struct {
    char name[RL_TOPO_NAME];
    int tier; /* 1 = leaf (NICs attach), higher = further up */
} rl_topo_switch_t;

typedef struct {
    char dev[32];
    int host, rail, plane;
    double gbps;
    int link; /* the NIC's link (undirected id) */
} rl_topo_nic_t;

typedef struct {
    char name[RL_TOPO_NAME];
    double intra_gbps; /* each rank's rate into the host's own interconnect (NVLink, shared memory) */
    int first_nic, nnics;
    int nranks;        /* ranks placed here (rl_topo_finish) */
} rl_topo_host_t;

typedef struct {
    int a, b; /* node ids */
    double gbps, lat_ns;
} rl_topo_link_t;

typedef struct {
    int host, nic; /* nic: global NIC index */
} rl_topo_place_t;

typedef struct rl_topo_route rl_topo_route_t;

typedef struct {
    char name[128];
    int nsw, nhosts, nnics, nlinks, nranks;
    rl_topo_switch_t *sw;
    rl_topo_host_t *hosts;
    rl_topo_nic_t *nics;
    rl_topo_link_t *links;
    rl_topo_place_t *place;
    int torus[3], ntorus; /* switch i is the torus node of linear index i (x fastest) */
    /* derived (rl_topo_finish): out-links of each node as directed link ids */
    int *adj_off, *adj;
    rl_topo_route_t *route;
    int caps[4]; /* capacities of sw, hosts, nics, links while building */
} rl_topo_t;

/* ---- building and files ---- */
void rl_topo_init(rl_topo_t *t, const char *name);
void rl_topo_free(rl_topo_t *t);
int rl_topo_add_switch(rl_topo_t *t, const char *name, int tier);
int rl_topo_add_host(rl_topo_t *t, const char *name, double intra_gbps);
/* Adds a NIC to the host added last (NICs of one host are contiguous). */
int rl_topo_add_nic(rl_topo_t *t, int host, const char *dev, int rail, int plane, double gbps);
int rl_topo_add_link(rl_topo_t *t, int a, int b, double gbps, double lat_ns);
static inline int rl_topo_nic_node(const rl_topo_t *t, int nic) { return t->nsw + nic; }
/* ranks_per_host ranks per host in host order, NIC (local rank % nnics);
 * shuffle != 0: hosts in a random order seeded by shuffle (a scheduler's allocation). */
rl_status_t rl_topo_place_block(rl_topo_t *t, int nranks, int ranks_per_host, uint64_t shuffle);
/* Checks the graph (every NIC on one link to a switch, no self-loops,
 * positive speeds, placement in range) and builds adjacency. */
rl_status_t rl_topo_finish(rl_topo_t *t, char *err, size_t errlen);

rl_status_t rl_topo_parse_json(const char *text, size_t len, const char *file, rl_topo_t *t, char *err, size_t errlen);
rl_status_t rl_topo_load(const char *path, rl_topo_t *t, char *err, size_t errlen);
rl_status_t rl_topo_save(const rl_topo_t *t, const char *path, char *err, size_t errlen);
/* Slurm topology.conf: switches and their nodes; every node a host with
 * nics_per_host NICs of gbps. */
rl_status_t rl_topo_parse_slurm(const char *text, size_t len, const char *file, double gbps, rl_topo_t *t, char *err,
                                size_t errlen);
/* NCCL topology XML: the NICs of one host (<net name= speed= rail= plane=>). */
typedef struct {
    char dev[32];
    int rail, plane;
    double gbps;
} rl_topo_nic_tmpl_t;
rl_status_t rl_topo_parse_nccl(const char *text, size_t len, const char *file, rl_topo_nic_tmpl_t *nics, int max,
                               int *n, char *err, size_t errlen);
/* Writes s as a JSON string (quotes, backslashes and control bytes escaped). */
void rl_topo_json_str(FILE *f, const char *s);
rl_status_t rl_read_file(const char *path, char **text, size_t *len, char *err, size_t errlen);

/* ---- generators ---- */
typedef struct {
    int tiers;           /* fat tree: 2 or 3 */
    int radix;           /* switch ports; 0 = smallest even radix that fits */
    double oversub;      /* leaf down:up ports */
    double gbps, lat_ns; /* every fabric link */
    double intra_gbps;   /* inside a host */
    int ranks, ranks_per_host, nics_per_host;
    int rails;           /* rail-optimized: NICs (rails) per host */
    int hosts_per_leaf;  /* rail-optimized: hosts per scalable unit */
    int dims[3], ndims;  /* torus */
    int groups, routers, hosts_per_router, globals; /* dragonfly */
    uint64_t shuffle;    /* placement: 0 = hosts in order, else seed of a random host order */
    const rl_topo_nic_tmpl_t *nic_tmpl; /* rail: NICs per host from NCCL XML */
    int n_nic_tmpl;
} rl_topo_gen_t;
void rl_topo_gen_defaults(rl_topo_gen_t *g);
rl_status_t rl_topo_gen_fat_tree(const rl_topo_gen_t *g, rl_topo_t *t, char *err, size_t errlen);
rl_status_t rl_topo_gen_rail(const rl_topo_gen_t *g, rl_topo_t *t, char *err, size_t errlen);
rl_status_t rl_topo_gen_torus(const rl_topo_gen_t *g, rl_topo_t *t, char *err, size_t errlen);
rl_status_t rl_topo_gen_dragonfly(const rl_topo_gen_t *g, rl_topo_t *t, char *err, size_t errlen);
rl_status_t rl_topo_gen_switch(const rl_topo_gen_t *g, rl_topo_t *t, char *err, size_t errlen);

/* ---- routing and link loads ---- */
/* Routing: minimal paths, a flow split evenly over equal next hops at
 * every switch (ideal ECMP). Resources are the 2 x nlinks directed links,
 * then one per host: its interconnect between its own ranks. */
typedef struct {
    int src, dst; /* ranks */
    double w;     /* amount (flows, or bytes) */
} rl_topo_flow_t;
/* Adds each flow's w x share to load[resource] (nres entries), w x links
 * crossed to *hops, and raises *max_lat_ns to the slowest path's latency.
 * RL_ERR_INVALID_ARG if some pair cannot reach each other. */
rl_status_t rl_topo_flow_loads(rl_topo_t *t, const rl_topo_flow_t *f, int n, double *load, double *hops,
                               double *max_lat_ns);
/* Loads: for each directed link, sum over flows of weight x frac. */
typedef struct {
    double *load;      /* 2 * nlinks, then nhosts entries for hosts' interconnects */
    double max_util;   /* max over resources of load / Gb/s */
    int argmax;        /* resource of max_util */
    double hops;       /* sum over flows of weight x hops */
    double max_lat_ns; /* longest flow latency */
} rl_topo_loads_t;
int rl_topo_nres(const rl_topo_t *t);
double rl_topo_res_gbps(const rl_topo_t *t, int res);
void rl_topo_res_name(const rl_topo_t *t, int res, char *buf, size_t len);
/* Loads of nrings rings (order: nrings x nranks), each ring carrying weight 1/nrings. */
rl_status_t rl_topo_ring_loads(rl_topo_t *t, const int *order, int nrings, rl_topo_loads_t *out);
/* Loads of the double binary tree (topo/btree.h) over the positions of
 * order, each tree's edges carrying its half (0.5) both ways. */
rl_status_t rl_topo_tree_loads(rl_topo_t *t, const int *order, rl_topo_loads_t *out);
void rl_topo_loads_free(rl_topo_loads_t *l);
/* Lower bound on max_util of any set of rings carrying weight 1 in all:
 * every cut around one host, or around the hosts under one switch, is crossed. */
double rl_topo_ring_bound(const rl_topo_t *t, int *which, char *why, size_t whylen);

/* ---- planner ---- */
typedef struct {
    int nrings, nranks;
    int *order;          /* nrings x nranks */
    char method[64];
    double util, util_rank_order, util_bound; /* max load / Gb/s */
    double hops, hops_rank_order;
    int worst, worst_rank_order;              /* the most-loaded resources */
    uint64_t hash;
} rl_topo_plan_t;
/* max_rings: 0 = as many as the fabric gives (rails, torus cycles). */
rl_status_t rl_topo_plan(rl_topo_t *t, int max_rings, rl_topo_plan_t *p, char *err, size_t errlen);
void rl_topo_plan_free(rl_topo_plan_t *p);
uint64_t rl_topo_hash_order(const int *order, int n, int nrings);
/* For rl_comm_create: plan at most max_rings (> 0) rings on the fabric in
 * path (which must place exactly nranks ranks) into orders (max_rings x
 * nranks) and their count into *nrings; desc gets a one-line summary. */
rl_status_t rl_topo_ring_order_file(const char *path, int nranks, int max_rings, int *orders, int *nrings, char *desc,
                                    size_t desclen, char *err, size_t errlen);
/* The same with the ranks placed where they run: rank r on the host named
 * names[r], on its NIC (local index mod the host's NICs), local indices in
 * rank order. A host the file lacks: RL_ERR_CONFIG naming it and the
 * rank, with *missing = that rank (else -1). */
rl_status_t rl_topo_ring_order_hosts(const char *path, int nranks, const char *const *names, int max_rings,
                                     int *orders, int *nrings, int *missing, char *desc, size_t desclen, char *err,
                                     size_t errlen);
/* Place rank r on the host named names[r] (NIC by local index); -1, or the
 * first rank whose host the fabric lacks. */
int rl_topo_place_hosts(rl_topo_t *t, int nranks, const char *const *names);
void rl_topo_plan_print(const rl_topo_t *t, const rl_topo_plan_t *p, FILE *out);
/* The NIC (global index) of each of nch channels of rank on t (placed,
 * finished) into nic[nch]: channel i runs on ring i mod K and takes, of the
 * host's NICs in rail order, those the rank owns (position p of the host's
 * m ranks by rail: every m-th from p; its own NIC if the host has no more
 * NICs than ranks), number (i / m) mod owned: the same rail at both ends of
 * a hop between hosts that have the same rails. Returns the number owned,
 * or -1 with why when the rank's host has fewer than 2 NICs. */
int rl_topo_chan_nics(const rl_topo_t *t, int rank, int nch, int *nic, char *why, size_t whylen);
/* The same from the fabric in path, placed by host names (NULL: as the file
 * places them): dev[i] gets channel i's NIC's device name. RL_ERR_CONFIG
 * with why when it does not apply (one NIC, a host the file lacks...). */
rl_status_t rl_topo_chan_devs_file(const char *path, int nranks, const char *const *names, int rank, int nch,
                                   char (*dev)[32], char *why, size_t whylen);
/* Channels that give every NIC one: nrings x the most NICs a rank owns (at most 64). */
int rl_topo_chan_count(const rl_topo_t *t, int nrings);
/* "channel i (ring k) NICs: dev/railR,..." per channel, when some host has several NICs. */
void rl_topo_chan_print(const rl_topo_t *t, const rl_topo_plan_t *p, FILE *out);
rl_status_t rl_topo_plan_json(const rl_topo_t *t, const rl_topo_plan_t *p, const char *path, char *err,
                              size_t errlen);

/* ---- DCQCN fluid model (dcqcn.c) ---- */
typedef struct {
    double kmin_kb, kmax_kb, pmax; /* ECN marking ramp of the switch queue */
    double g;                      /* alpha's gain */
    double cnp_us, alpha_us;       /* CNP interval, alpha update interval */
    double timer_us, byte_kb;      /* rate-increase timer and byte counter */
    double rai_mbps;               /* additive increase */
    int fast_steps;                /* increase periods before the additive stage */
    double pkt_bytes;
} rl_dcqcn_params_t;
typedef struct rl_dcqcn rl_dcqcn_t;
void rl_dcqcn_defaults(rl_dcqcn_params_t *p);
/* Sets the field called name (kmin_kb, kmax_kb, pmax, g, cnp_us, alpha_us,
 * timer_us, byte_kb, rai_mbps, fast_steps, pkt_bytes); -1: unknown name or
 * value out of range. */
int rl_dcqcn_set(rl_dcqcn_params_t *p, const char *name, double v);
/* Integrates nflows identical flows that start at line rate (gbps, the
 * link's) on one link of gbps, senders seeing marks delay_us late. */
rl_status_t rl_dcqcn_create(const rl_dcqcn_params_t *p, double nflows, double gbps, double delay_us,
                            rl_dcqcn_t **out);
/* Time until every flow's bytes have crossed the link, us. */
double rl_dcqcn_time_us(const rl_dcqcn_t *d, double bytes);
/* The deepest the queue gets while flows of that many bytes send, KiB. */
double rl_dcqcn_peak_queue_kb(const rl_dcqcn_t *d, double bytes);
void rl_dcqcn_destroy(rl_dcqcn_t *d);

/* ---- simulator ---- */
/* tree: the double binary tree over rank order; ptree: over the planned
 * first ring's order, as ringlet runs it with RINGLET_TOPO_FILE */
typedef enum { RL_SIM_RING, RL_SIM_PLANNED, RL_SIM_TREE, RL_SIM_RHD, RL_SIM_HIER, RL_SIM_PTREE } rl_sim_algo_t;
typedef enum { RL_SIM_ALL_REDUCE, RL_SIM_ALL_GATHER, RL_SIM_REDUCE_SCATTER } rl_sim_coll_t;
typedef struct {
    double alpha_us;   /* per message (software, NIC) */
    double eff;        /* fraction of a link's rate a flow's payload gets */
    double gamma_gbps; /* reduction speed per rank, 0 = free */
    int nrings;        /* planned: rings (0 = planner's) */
    int chunks;        /* tree: pipeline chunks */
    int dcqcn;         /* 1: a step's flows follow DCQCN's transient (dcqcn below), 0: fair from the start */
    rl_dcqcn_params_t dc;
} rl_sim_params_t;
typedef struct {
    double time_us, algbw, busbw; /* GB/s = 1e9 B/s */
    double phase_util;            /* max link load / Gb/s in the busiest phase */
    int worst;                    /* its resource */
    double peak_queue_kb;         /* dcqcn: the deepest queue of any step */
} rl_sim_result_t;
typedef struct rl_sim rl_sim_t;
void rl_sim_defaults(rl_sim_params_t *p);
/* Prepares one algorithm on a fabric: routes and rates of every distinct
 * phase, computed once; rl_sim_time is then cheap per size. */
rl_status_t rl_sim_create(rl_topo_t *t, rl_sim_algo_t algo, rl_sim_coll_t coll, const rl_sim_params_t *prm,
                          rl_sim_t **out, char *err, size_t errlen);
void rl_sim_time(const rl_sim_t *s, double bytes, rl_sim_result_t *r);
void rl_sim_destroy(rl_sim_t *s);
/* Max-min fair rates (progressive filling) of nflows flows over resources
 * of capacity cap[]: flow f crosses hops[off[f]..off[f+1]). */
typedef struct {
    int res;
    double frac;
} rl_sim_hop_t;
void rl_sim_maxmin(int nres, const double *cap, int nflows, const int *off, const rl_sim_hop_t *hops, double *rate);
const char *rl_sim_algo_name(rl_sim_algo_t a);
int rl_sim_algo_parse(const char *s, rl_sim_algo_t *a);

#endif
