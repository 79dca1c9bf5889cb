/*
 * The transport operations table. Algorithms see only these types; verbs and
 * libfabric types stay inside their backend folder. A backend provides
 * RDMA WRITE with 32-bit immediate data, memory registration and one
 * completion queue; receives for immediates are the backend's business.
 */
#ifndef RL_TRANSPORT_H
#define RL_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include "ringlet.h"
#include "core/config.h"

typedef struct rl_tp rl_tp_t;           /* device/domain, CQ: one per comm */
typedef struct rl_tp_conn rl_tp_conn_t; /* connection to one peer */
typedef struct rl_tp_mr rl_tp_mr_t;     /* registered region */

/* How a peer names a registered region: add an offset to addr. */
typedef struct {
    uint64_t addr;
    uint64_t key;
} rl_rkey_t;

enum { RL_ACCESS_LOCAL = 1, RL_ACCESS_REMOTE_WRITE = 2 };

typedef enum { RL_CQE_SEND = 1, RL_CQE_RECV_IMM = 2 } rl_cqe_kind_t;

typedef struct {
    rl_cqe_kind_t kind;
    rl_status_t status; /* RL_OK, or the error (message in ops->last_error) */
    void *ctx;          /* RL_CQE_SEND: the ctx given to write_imm */
    uint32_t imm;       /* RL_CQE_RECV_IMM: immediate data */
    int peer;           /* rank it concerns, -1 if the backend cannot tell */
} rl_tp_cqe_t;

typedef struct {
    int rank, nranks;
    int all_local;               /* every rank it will connect to is on this host */
    const rl_config_t *cfg;
} rl_tp_params_t;

#define RL_TP_BLOB_MAX 192

typedef struct rl_tp_ops {
    size_t size; /* sizeof(rl_tp_ops_t): the table may grow */
    const char *name;
    /* Open the device/domain and the completion queue. */
    rl_status_t (*open)(const rl_tp_params_t *p, rl_tp_t **tp, char *err, size_t errlen);
    void (*close)(rl_tp_t *tp);
    /* "ofi:tcp;ofi_rxm", "verbs:rxe0:1" */
    const char *(*describe)(rl_tp_t *tp);
    /* Start a connection to `peer` for channel `chan` (0 for point to point;
     * a backend with several devices picks one by it); the blob goes to the
     * peer through the bootstrap. The peer's blob then completes it in
     * conn_establish. */
    rl_status_t (*conn_create)(rl_tp_t *tp, int peer, int chan, rl_tp_conn_t **c, void *blob, size_t *len);
    rl_status_t (*conn_establish)(rl_tp_conn_t *c, const void *blob, size_t len, int64_t deadline_ns);
    void (*conn_destroy)(rl_tp_conn_t *c);
    /* Register with the least access needed (RL_ACCESS_*). */
    rl_status_t (*mr_reg)(rl_tp_t *tp, void *buf, size_t len, unsigned access, rl_tp_mr_t **mr);
    void (*mr_dereg)(rl_tp_mr_t *mr);
    /* Name of `ptr` (inside mr) for the peer at the other end of `to`, the
     * connection it will write through; NULL: for any connection of
     * channel 0 (keys published to every rank at once). */
    void (*mr_remote)(rl_tp_mr_t *mr, const rl_tp_conn_t *to, const void *ptr, rl_rkey_t *rk);
    /* RDMA write of [src, src+len) to the peer's raddr with immediate data.
     * len may be 0 (src/smr NULL). RL_ERR_AGAIN: queue full, poll and retry. */
    rl_status_t (*write_imm)(rl_tp_conn_t *c, const void *src, size_t len, rl_tp_mr_t *smr,
                             uint64_t raddr, uint64_t rkey, uint32_t imm, void *ctx);
    /* Optional: RDMA write without immediate data; completes like write_imm
     * at the sender and raises nothing at the receiver. */
    rl_status_t (*write)(rl_tp_conn_t *c, const void *src, size_t len, rl_tp_mr_t *smr, uint64_t raddr,
                         uint64_t rkey, void *ctx);
    /* Up to max completions; never blocks. */
    rl_status_t (*poll)(rl_tp_t *tp, rl_tp_cqe_t *out, int max, int *n);
    /* Optional: block until a completion may be there or timeout_ms passed
     * (a completion channel); NULL means the caller yields instead. The
     * first call may return at once after arming: poll again, then call. */
    rl_status_t (*wait)(rl_tp_t *tp, int timeout_ms);
    /* Nonzero when registrations pin physical pages (verbs, efa...): a
     * cached registration would then outlive a free()d buffer and point
     * at its old pages, so unregistered buffers are registered per call. */
    int (*pins_memory)(rl_tp_t *tp);
    /* Optional: nonzero when the device's data movement runs on this
     * host's CPUs (software RDMA such as rxe or siw), so waits should not
     * busy-poll. */
    int (*cpu_driven)(rl_tp_t *tp);
    /* Message for the last error this backend reported. */
    const char *(*last_error)(rl_tp_t *tp);
    /* Optional: stop all data movement at once, after a failure or before
     * teardown: what is posted is cancelled and peers can no longer write
     * here, so registrations and buffers can then be released safely.
     * Afterwards writes fail, poll reports nothing, and only close, the
     * conn/mr destructors and describe/last_error may be called. */
    void (*quiesce)(rl_tp_t *tp);
    /* Optional, before any conn_create: channel i (< nch) runs on the
     * device called names[i] instead of the backend's own choice. Returns
     * 0, keeping its own choice, with why, unless every name is one of its
     * devices. */
    int (*pin_channels)(rl_tp_t *tp, const char (*names)[32], int nch, char *why, size_t whylen);
} rl_tp_ops_t;

/* The backend called `name`, or NULL. */
const rl_tp_ops_t *rl_transport_find(const char *name);
/* The i-th compiled-in backend in order of preference for "auto"; NULL past
 * the end. */
const rl_tp_ops_t *rl_transport_at(int i);
/* Names of the compiled-in backends, comma separated. */
const char *rl_transport_list(void);

#endif
