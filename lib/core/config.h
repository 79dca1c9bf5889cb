/* Configuration: one table of RINGLET_* variables drives parsing and listing. */
#ifndef RL_CONFIG_H
#define RL_CONFIG_H

#include <stddef.h>
#include <stdio.h>
#include "ringlet.h"

/* 15: the immediate's channel value 15 marks point-to-point traffic */
#define RL_MAX_CHANNELS 15

typedef struct {
    int rank, size;            /* -1 when unset */
    char addr[256];            /* host:port of rank 0 */
    char launcher[16];         /* auto | torchrun | pmix | slurm */
    char boot_if[64];          /* interface rank 0 publishes through PMIx */
    int timeout_ms;
    char transport[32];        /* auto | ofi | verbs */
    char intra_transport[8];   /* auto | shm | none: peers on this host */
    char ofi_provider[64];     /* auto | tcp | shm | ... */
    char shm_cma[8];           /* auto | on | off: libfabric shm's single-copy path */
    size_t chunk_bytes;
    size_t min_chunk_bytes;
    int pipeline_depth;
    int nchannels;
    char ring_order[1024];     /* "" or comma list */
    int topo_rings;            /* 0: every planned ring */
    char topo_place[8];        /* auto, hosts, file */
    char topo_file[256];       /* fabric file: ring order from lib/topo's planner */
    int reg_cache;             /* bool */
    int reg_cache_entries;
    int spin_us;               /* busy-poll time before yielding in waits */
    char p2p[16];              /* auto | on | off: connections between every pair */
    char wait[16];             /* auto | event | yield: how a long wait gives the CPU up */
    char allreduce_algo[16];   /* auto | ring | rhd */
    size_t rhd_max_bytes;      /* auto: halving-doubling up to this size */
    size_t rd_max_bytes;       /* auto: eager recursive doubling up to this size */
    char algos[512];           /* selection table: coll:lo-hi:algo,...;coll:... */
    char tune_file[256];       /* cost-model parameters (ringlet-tune) */
    char reduce_isa[16];       /* read by lib/reduce at first use */
    char log_level[16];
    char log_file[256];
    char auth_key[256];        /* shared secret for the bootstrap; "" = none */
    char auth_key_file[256];   /* file holding it (preferred: not in the environment) */
    char host_id[64];          /* "" = boot id + network namespace */
    /* verbs */
    char ib_hca[256];
    int ib_gid_index;          /* -1 = auto */
    char ib_cm[16];            /* oob | rdmacm */
    char ib_addr[64];          /* rdmacm: IP of this rank's RDMA interface */
    int ib_tc, ib_sl, ib_timeout, ib_retry_cnt, ib_mtu, ib_qps_per_peer;
} rl_config_t;

typedef enum { RL_CFG_INT, RL_CFG_SIZE, RL_CFG_BOOL, RL_CFG_STRING } rl_cfg_type_t;

typedef struct {
    const char *name;     /* without the RINGLET_ prefix */
    const char *dflt;
    const char *help;
    rl_cfg_type_t type;
    size_t offset;
    size_t len;           /* string capacity */
    long long min, max;   /* numeric bounds */
} rl_config_field_t;

extern const rl_config_field_t rl_config_fields[];
extern const size_t rl_config_nfields;

/* Fill cfg with defaults overridden by the environment. On a bad value,
 * returns RL_ERR_CONFIG and writes a message naming the variable to err. */
rl_status_t rl_config_load(rl_config_t *cfg, char *err, size_t errlen);
/* Parse one field's value into cfg (used by load and by tests). */
rl_status_t rl_config_set(rl_config_t *cfg, const rl_config_field_t *f, const char *val,
                          char *err, size_t errlen);
/* Parse "512K", "4M", "1G", "123" into bytes; -1 on error. */
int rl_parse_size(const char *s, size_t *out);
/* Parse a ring order "0,2,1,3" into a permutation of n ranks. */
rl_status_t rl_parse_ring_order(const char *s, int n, int *order, char *err, size_t errlen);

#endif
