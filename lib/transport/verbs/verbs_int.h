/* verbs backend internals, shared by verbs.c (QPs, data path) and cm.c
 * (connection set-up through librdmacm). Never included outside this folder. */
#ifndef RL_VERBS_INT_H
#define RL_VERBS_INT_H

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "transport/transport.h"

#define VB_MAX_QPS 16
#define VB_MAX_DEVS 8 /* devices per rank (RINGLET_IB_HCA entries) */
#define VB_SEND_WR 256
#define VB_RECV_WR 128
#define VB_CQE 8192
#define VB_INLINE 64
#define VB_SIGNAL_EVERY 16 /* a signalled write at least every 16 (see vb_write_imm) */
#define VB_BLOB_MAGIC 0x52564231u /* "RVB1" */

/* One device (RINGLET_IB_HCA lists up to VB_MAX_DEVS): its own context,
 * protection domain and completion queue. A connection lives on one. */
typedef struct {
    struct ibv_context *ctx;
    struct ibv_pd *pd;
    struct ibv_comp_channel *chan;
    struct ibv_cq *cq;
    uint8_t port;
    int gid_index;
    union ibv_gid gid;
    struct ibv_port_attr pattr;
    int armed;
    int cm_owned;                       /* ctx is rdma_cm's (never closed by us) */
    struct rdma_cm_id *listener;        /* rdmacm: this device's */
    struct sockaddr_storage cm_addr;    /* where it listens */
    char name[72];                      /* "rxe0:1" */
} vb_dev_t;

struct rl_tp {
    int rank;
    int use_cm;                         /* RINGLET_IB_CM=rdmacm */
    struct rdma_event_channel *cm_chan; /* every device's listener and connection */
    int ndev;
    vb_dev_t dev[VB_MAX_DEVS];
    int nchan_dev;                      /* channels < nchan_dev use chan_dev[], others round-robin */
    uint8_t chan_dev[RL_MAX_CHANNELS];
    const rl_config_t *cfg;
    int nqps;
    int max_inline;
    rl_tp_conn_t **conns; /* for QPN -> connection lookups */
    int nconns, capconns;
    int wc_failed;                      /* a completion error was reported */
    char desc[192];
    char err[320];
};

/* One posted write. wr_id is the write's sequence number on its QP; its
 * slot is seq % VB_SEND_WR. */
typedef struct {
    void *ctx;          /* the caller's, or vb_fence */
    rl_status_t status; /* once completed */
    int signalled;
} vb_slot_t;

/* Per QP, sequence numbers (wrapping uint32): reported <= completed <= posted. */
typedef struct {
    vb_slot_t *slot;    /* VB_SEND_WR */
    uint32_t posted, completed, reported;
    int sig_out;        /* signalled writes not completed */
    int unsig_run;      /* unsignalled writes since the last signalled one */
    uint64_t raddr;     /* target of the last write: a fence writes 0 bytes there */
    uint32_t rkey;
} vb_sq_t;

struct rl_tp_conn {
    rl_tp_t *tp;
    int d;                          /* index of its device in tp->dev */
    vb_dev_t *dev;
    int peer;
    int nqp, next_qp;
    struct ibv_qp *qp[VB_MAX_QPS];
    vb_sq_t sq[VB_MAX_QPS];
    uint32_t psn;
    uint32_t token;                 /* k-th connection to this peer (rdmacm matching) */
    uint8_t nonce[16];              /* rdmacm: what the peer must present to connect (via the bootstrap) */
    uint8_t peer_nonce[16];         /* rdmacm: what this side presents to the peer */
    struct rdma_cm_id *cmid[VB_MAX_QPS];
    int cm_state[VB_MAX_QPS];       /* VB_CM_* */
};

enum { VB_CM_IDLE, VB_CM_ADDR, VB_CM_ROUTING, VB_CM_ROUTE, VB_CM_CONNECTING, VB_CM_UP, VB_CM_FAILED };

/* Registered on every device: a connection uses its own device's keys. */
struct rl_tp_mr {
    const rl_tp_t *tp; /* for the device of channel 0 (vb_mr_remote) */
    int ndev;
    struct ibv_mr *mr[VB_MAX_DEVS];
};

/* The out-of-band connection record (little-endian, fixed size). */
typedef struct {
    uint32_t magic;
    uint32_t nqp;
    uint32_t qpn[VB_MAX_QPS];
    uint32_t psn;
    uint16_t lid;
    uint8_t mtu; /* enum ibv_mtu */
    uint8_t link_layer;
    uint8_t gid[16];
} vb_blob_t;

#define VB_CM_MAGIC 0x52564331u /* "RVC1" */

/* What a rank publishes for one rdmacm connection (fixed layout). */
typedef struct {
    uint32_t magic;
    uint32_t nqp;
    int32_t rank;
    uint32_t token;
    uint8_t addr[sizeof(struct sockaddr_in6)];
    uint32_t addrlen;
    /* A secret for this connection: it travels only through the (keyed)
     * bootstrap, and a connection request must carry it to be accepted. */
    uint8_t nonce[16];
} cm_blob_t;

/* blob.c: validate connection data that came from a peer (through rank 0).
 * No device needed, so the fuzzer runs them as they are. */
rl_status_t vb_blob_decode(const void *blob, size_t len, int nqp, vb_blob_t *out, char *err, size_t errlen);
rl_status_t vb_cm_blob_decode(const void *blob, size_t len, int peer, int nqp, cm_blob_t *out,
                              struct sockaddr_storage *dst, char *err, size_t errlen);

/* Bytes from the kernel's random source (getrandom): PSNs and connection
 * secrets must not be predictable. Nonzero on failure. */
int vb_random(void *buf, size_t len);
rl_status_t vb_err(rl_tp_t *tp, rl_status_t st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
rl_status_t vb_post_recvs(rl_tp_conn_t *c, int q, int n);
/* One RINGLET_IB_HCA entry: device name and port (0: first active one). */
typedef struct {
    char name[64];
    int port;
} vb_hca_t;

/* blob.c: split RINGLET_IB_HCA ("rxe0:1,rxe1:1"; "" gives 0 entries) into
 * at most max entries; rejects empty entries, bad ports and duplicates
 * (RL_ERR_CONFIG, message naming the entry). No device needed. */
rl_status_t vb_hca_parse(const char *spec, vb_hca_t *out, int max, int *n, char *err, size_t errlen);

rl_status_t vb_pick_gid(rl_tp_t *tp, vb_dev_t *dev, int want);
void vb_qp_init_attr(rl_tp_t *tp, vb_dev_t *dev, struct ibv_qp_init_attr *ia);

/* cm.c */
rl_status_t vb_cm_open(rl_tp_t *tp);
void vb_cm_close(rl_tp_t *tp);
rl_status_t vb_cm_conn_create(rl_tp_conn_t *c, void *blob, size_t *len);
rl_status_t vb_cm_conn_establish(rl_tp_conn_t *c, const void *blob, size_t len, int64_t deadline);
void vb_cm_conn_destroy(rl_tp_conn_t *c);

#endif
