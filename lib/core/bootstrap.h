/*
 * Bootstrap: a TCP star around rank 0. Ranks say hello (version, rank, size),
 * exchange blobs with all-gather, and keep the sockets open as the control
 * channel that carries aborts and peer failures.
 */
#ifndef RL_BOOTSTRAP_H
#define RL_BOOTSTRAP_H

#include <stddef.h>
#include <stdint.h>
#include "core/auth.h"
#include "ringlet.h"

#define RL_BOOT_MAGIC 0x524c4254u /* "RLBT" */
#define RL_BOOT_MAX_PAYLOAD (16u << 20)
#define RL_BOOT_MSG_MAX 200

enum {
    RL_BOOT_HELLO = 1,
    RL_BOOT_HELLO_ACK = 2,
    RL_BOOT_GATHER = 3, /* rank -> root: my contribution */
    RL_BOOT_RESULT = 4, /* root -> rank: everyone's */
    RL_BOOT_ABORT = 5,  /* either way: the group failed */
    RL_BOOT_BYE = 6,    /* rank -> root: leaving normally */
    /* With a shared key, between HELLO and HELLO_ACK: */
    RL_BOOT_AUTH_CHALLENGE = 7, /* root -> rank: root nonce */
    RL_BOOT_AUTH_RESPONSE = 8,  /* rank -> root: rank nonce, rank's MAC */
    RL_BOOT_AUTH_PROOF = 9,     /* root -> rank: root's MAC */
    /* While the group is live (payload: a u64 count of collectives started): */
    RL_BOOT_LEAVE = 10,  /* rank -> root, root -> all: leaving (destroy) after this many */
    RL_BOOT_PROBE = 11,  /* root -> rank: are you alive? (no payload) */
    RL_BOOT_REPORT = 12, /* rank -> root: alive, after this many (or: my wait timed out) */
    RL_BOOT_TYPE_MAX = 12
};

/* Fixed little-endian wire header (16 bytes). */
typedef struct {
    uint32_t magic;
    uint16_t version;
    uint16_t type;
    int32_t rank;
    uint32_t len;
} rl_boot_hdr_t;

typedef struct {
    uint32_t nranks;
    uint32_t protocol;
} rl_boot_hello_t;

/* HELLO_ACK and ABORT: a status, the rank it concerns, and a message. */
typedef struct {
    int32_t status;
    int32_t rank;
    char msg[RL_BOOT_MSG_MAX];
} rl_boot_status_msg_t;

void rl_boot_hdr_encode(const rl_boot_hdr_t *h, uint8_t out[16]);
/* Decode and validate a header: magic, type, length <= max_len, rank in
 * [-1, nranks). Returns RL_ERR_PROTOCOL / RL_ERR_VERSION with a message. */
rl_status_t rl_boot_hdr_decode(const uint8_t in[16], int nranks, uint32_t max_len, rl_boot_hdr_t *h,
                               char *err, size_t errlen);
/* Decode a status message payload (NUL-terminates msg). */
rl_status_t rl_boot_status_decode(const void *buf, size_t len, rl_boot_status_msg_t *m);
/* Decode a HELLO payload. */
rl_status_t rl_boot_hello_decode(const void *buf, size_t len, rl_boot_hello_t *m);

/* The authentication messages: a nonce and/or a MAC, by type. */
typedef struct {
    uint8_t nonce[RL_AUTH_NONCE_BYTES]; /* CHALLENGE, RESPONSE */
    uint8_t mac[RL_AUTH_MAC_BYTES];     /* RESPONSE, PROOF */
} rl_boot_auth_msg_t;
/* Exact length of an authentication message of `type`, 0 if not one. */
size_t rl_boot_auth_len(int type);
rl_status_t rl_boot_auth_decode(int type, const void *buf, size_t len, rl_boot_auth_msg_t *m);

typedef struct rl_boot rl_boot_t;

typedef struct {
    /* Shared key: rank 0 admits only ranks that prove they hold it, and
     * ranks join only a rank 0 that proves it too. NULL = no authentication
     * (a rank with a key then refuses a rank 0 without one, and back). */
    const rl_auth_key_t *key;
    uint16_t version; /* protocol version spoken; 0 = RL_PROTOCOL_VERSION (tests set others) */
    /* Rank 0: a socket already listening (rl_boot_listen_child), taken
     * over and closed, instead of listening on addr's port. */
    int have_listen_fd, listen_fd;
} rl_boot_opts_t;

/* Join the group (rank 0 listens on addr's port). */
rl_status_t rl_boot_create(int rank, int nranks, const char *addr, int64_t deadline, rl_boot_t **b,
                           char *err, size_t errlen);
rl_status_t rl_boot_create_opts(int rank, int nranks, const char *addr, const rl_boot_opts_t *opts,
                                int64_t deadline, rl_boot_t **b, char *err, size_t errlen);
/* Listen on a fresh port of the address this rank reaches its group by,
 * for a sub-group's rendezvous (rl_comm_split): *fd is the listening
 * socket (the caller owns it), addr gets "ip:port" (or "[ip6]:port"). */
rl_status_t rl_boot_listen_child(rl_boot_t *b, int *fd, char *addr, size_t addrlen, char *err, size_t errlen);
/* All-gather `len` bytes from every rank into all[nranks * len]. */
rl_status_t rl_boot_allgather(rl_boot_t *b, const void *mine, size_t len, void *all, int64_t deadline,
                              char *err, size_t errlen);
/* Non-blocking look at the control channel. RL_OK while the group is
 * healthy; else the failure (RL_ERR_PEER_FAILED/ABORTED...) with a message
 * naming the rank. */
rl_status_t rl_boot_check(rl_boot_t *b, char *err, size_t errlen);
/* Watch this counter of collectives started: a rank that left (destroy)
 * after fewer than another rank started fails the group at once, naming it. */
void rl_boot_watch(rl_boot_t *b, const uint64_t *ops_started);
/* Where a liveness report learns which rank this one waits on now (-1:
 * none): every report carries it, so a verdict can name two ranks that
 * wait for each other. */
void rl_boot_wait_source(rl_boot_t *b, int (*waits_on)(void *arg), void *arg);
/* This rank is leaving normally (rl_comm_destroy): tell rank 0 (rank 0:
 * everyone) how many collectives it started. */
void rl_boot_leaving(rl_boot_t *b);
/* This rank's wait timed out: find out through rank 0 who stalls the group
 * (bounded: 1 s if rank 0 is silent, else 2.5 s). Returns the verdict every rank gets alike
 * (RL_ERR_TIMEOUT naming the rank(s) that stopped answering or are behind,
 * RL_ERR_PEER_FAILED...), with its message; RL_OK if the group had already
 * failed (nothing to add). waits_on: the rank the expired wait waited on
 * (-1: none known); the verdict names pairs of ranks waiting for each other. */
rl_status_t rl_boot_stalled(rl_boot_t *b, int waits_on, char *err, size_t errlen);
/* Tell every rank that this group failed (best effort, bounded). */
void rl_boot_abort(rl_boot_t *b, rl_status_t why, int failed_rank, const char *msg);
/* Leave: ranks say BYE; rank 0 waits (until deadline) for every BYE so that
 * nobody mistakes a normal exit for a failure. Frees b. */
void rl_boot_destroy(rl_boot_t *b, int64_t deadline);

#endif
