/*
 * ringlet: collective operations over RDMA (verbs) and libfabric.
 *
 * Conventions
 * - Every handle is opaque and owned by the caller from its create call until
 *   the matching destroy/free call.
 * - Every call returns rl_status_t; outputs are written only on success.
 * - A communicator is used by one thread at a time, except rl_comm_abort(),
 *   which may be called from any thread.
 * - Configuration comes from RINGLET_* environment variables (see
 *   `ringlet-info` or rl_config_print()); options passed in code win.
 */
#ifndef RINGLET_H
#define RINGLET_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RL_VERSION_MAJOR 0
#define RL_VERSION_MINOR 1
#define RL_VERSION_PATCH 0
/* Wire protocol version: ranks with different values refuse to connect. */
#define RL_PROTOCOL_VERSION 4

/* One list gives the enum, the names and the messages (they cannot drift). */
#define RL_STATUS_MAP(X)                                                       \
    X(RL_OK, 0, "success")                                                     \
    X(RL_INPROGRESS, 1, "operation still in progress")                         \
    X(RL_ERR_INVALID_ARG, -1, "invalid argument")                              \
    X(RL_ERR_NO_MEMORY, -2, "out of memory")                                   \
    X(RL_ERR_UNSUPPORTED, -3, "not supported")                                 \
    X(RL_ERR_TIMEOUT, -4, "deadline expired")                                  \
    X(RL_ERR_PEER_FAILED, -5, "a peer rank failed")                            \
    X(RL_ERR_TRANSPORT, -6, "transport error")                                 \
    X(RL_ERR_BOOTSTRAP, -7, "bootstrap failed")                                \
    X(RL_ERR_MISMATCH, -8, "arguments differ between ranks")                   \
    X(RL_ERR_PROTOCOL, -9, "malformed or unexpected message from a peer")      \
    X(RL_ERR_VERSION, -10, "peer runs an incompatible ringlet version")        \
    X(RL_ERR_ABORTED, -11, "communicator aborted")                             \
    X(RL_ERR_AUTH, -12, "authentication failed")                               \
    X(RL_ERR_CONFIG, -13, "invalid configuration")                             \
    X(RL_ERR_AGAIN, -14, "resource temporarily unavailable")                   \
    X(RL_ERR_INTERNAL, -15, "internal error")

typedef enum {
#define RL_STATUS_ENUM_(name, value, msg) name = value,
    RL_STATUS_MAP(RL_STATUS_ENUM_)
#undef RL_STATUS_ENUM_
} rl_status_t;

/* Human-readable message for a status; never NULL. */
const char *rl_strerror(rl_status_t status);
/* Symbolic name of a status ("RL_ERR_TIMEOUT"); never NULL. */
const char *rl_status_name(rl_status_t status);

/* Element types. The numbering is part of the ABI and the wire protocol. */
typedef enum {
    RL_INT8 = 0,
    RL_UINT8 = 1,
    RL_INT32 = 2,
    RL_UINT32 = 3,
    RL_INT64 = 4,
    RL_UINT64 = 5,
    RL_FLOAT16 = 6,
    RL_BFLOAT16 = 7,
    RL_FLOAT32 = 8,
    RL_FLOAT64 = 9,
    /* OCP 8-bit floats (reduced in float, rounded to nearest even):
     * E4M3 has no infinity, max 448, NaN 0x7f/0xff; overflow saturates to
     * +-448. E5M2 is IEEE-like (inf, NaN); overflow rounds to infinity. */
    RL_FP8_E4M3 = 10,
    RL_FP8_E5M2 = 11,
    RL_DTYPE_COUNT
} rl_dtype_t;

/* Reduction operators. RL_AVG is defined for floating types only; the
 * bitwise RL_BAND, RL_BOR, RL_BXOR for integer types only (anything else is
 * RL_ERR_INVALID_ARG). The numbering is part of the ABI and the protocol. */
typedef enum {
    RL_SUM = 0,
    RL_PROD = 1,
    RL_MIN = 2,
    RL_MAX = 3,
    RL_AVG = 4,
    RL_BAND = 5,
    RL_BOR = 6,
    RL_BXOR = 7,
    RL_OP_COUNT
} rl_op_t;

/* Size in bytes of one element, or 0 for an unknown type. */
size_t rl_dtype_size(rl_dtype_t dtype);
/* "float32", "int64", ...; NULL for an unknown type. */
const char *rl_dtype_name(rl_dtype_t dtype);
/* "sum", "prod", ...; NULL for an unknown op. */
const char *rl_op_name(rl_op_t op);
/* Parse a name from rl_dtype_name()/rl_op_name() (also "float", "double",
 * "int", "half", "bf16"). */
rl_status_t rl_dtype_parse(const char *name, rl_dtype_t *dtype);
rl_status_t rl_op_parse(const char *name, rl_op_t *op);

typedef struct rl_comm *rl_comm_t;       /* a group of ranks */
typedef struct rl_mem *rl_mem_t;         /* a registered buffer */
typedef struct rl_request *rl_request_t; /* a non-blocking operation */

/*
 * Options for rl_comm_create(). Zero-initialise, set struct_size, then set
 * what you need; a zero/NULL field means "take it from the environment".
 */
typedef struct {
    size_t struct_size;    /* sizeof(rl_comm_opts_t), for ABI growth */
    int rank;              /* this rank, used when nranks > 0 */
    int nranks;            /* group size; 0 = RINGLET_SIZE / WORLD_SIZE */
    const char *addr;      /* "host:port" of rank 0's rendezvous */
    const int *ring_order; /* nranks ranks in ring order; NULL = identity */
    int timeout_ms;        /* bootstrap/connect/wait deadline; 0 = env */
} rl_comm_opts_t;

/*
 * Create a communicator; collective over all nranks processes. With opts NULL
 * everything comes from RINGLET_RANK/RINGLET_SIZE/RINGLET_ADDR, or torchrun's
 * RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT (ringlet then uses MASTER_PORT+1,
 * leaving MASTER_PORT to torch's own store). The caller owns *comm.
 */
rl_status_t rl_comm_create(const rl_comm_opts_t *opts, rl_comm_t *comm);
/* Free the communicator and everything it owns. Not collective, but peers
 * still running operations with this rank will see it as failed. */
rl_status_t rl_comm_destroy(rl_comm_t comm);
/* Fail every pending and future operation with RL_ERR_ABORTED and tell the
 * peers. Safe from any thread; rl_comm_destroy() must still be called. */
rl_status_t rl_comm_abort(rl_comm_t comm);
/*
 * Split comm into sub-communicators, collective over every rank of comm:
 * ranks passing the same color >= 0 form one, ranked by (key, parent rank).
 * color < 0: this rank joins none and *newcomm = NULL. The child is formed
 * through comm's bootstrap (no new address needed), has its own connections
 * and is destroyed with rl_comm_destroy() (before or after its parent).
 */
rl_status_t rl_comm_split(rl_comm_t comm, int color, int key, rl_comm_t *newcomm);
rl_status_t rl_comm_rank(rl_comm_t comm, int *rank);
rl_status_t rl_comm_size(rl_comm_t comm, int *nranks);
/* Detailed message of the last error on this communicator (which rank, which
 * peer, what failed); "" when there was none. Valid until the next call.
 * With comm NULL: why the last rl_comm_create() in this thread failed. */
const char *rl_comm_last_error(rl_comm_t comm);
/* Name of the transport in use, e.g. "ofi:tcp;ofi_rxm" or "verbs:rxe0:1". */
const char *rl_comm_transport(rl_comm_t comm);

/*
 * Register [buf, buf+len) for zero-copy use in collectives. Buffers that were
 * not registered still work (ringlet registers and caches them itself). The
 * caller owns *mem and must deregister it before freeing the buffer.
 */
rl_status_t rl_mem_register(rl_comm_t comm, void *buf, size_t len, rl_mem_t *mem);
rl_status_t rl_mem_deregister(rl_comm_t comm, rl_mem_t mem);

/*
 * Allocate len bytes (0 allowed; sizes may differ between ranks) in shared
 * memory that the other ranks of this host map read-only, registered with
 * every transport of comm (as rl_mem_register does). Collective: every rank
 * calls rl_mem_alloc and rl_mem_free in the same order. On a one-host
 * communicator, collectives whose buffers all lie in such allocations on
 * every rank read the peers' data in place (an all-reduce: each rank
 * reduces its slice from every rank's send buffer into its receive buffer,
 * the others copy it from there); other buffers take the copying path.
 * *ptr is page-aligned and zeroed; it stays valid until rl_mem_free.
 */
rl_status_t rl_mem_alloc(rl_comm_t comm, size_t len, void **ptr);
/* Free what rl_mem_alloc returned (collective, same order on every rank);
 * RL_ERR_INVALID_ARG for another pointer or one an unfinished operation
 * uses (nothing is freed then), RL_ERR_MISMATCH if ranks freed different
 * allocations (freed here anyway). */
rl_status_t rl_mem_free(rl_comm_t comm, void *ptr);

/*
 * All-reduce `count` elements: recvbuf = op over ranks of sendbuf. In-place
 * when sendbuf == recvbuf. Collective: every rank passes the same count,
 * dtype and op.
 */
rl_status_t rl_all_reduce(rl_comm_t comm, const void *sendbuf, void *recvbuf,
                          size_t count, rl_dtype_t dtype, rl_op_t op);
/*
 * All-gather: recvbuf holds nranks blocks of `sendcount` elements, block i
 * from rank i. In-place when sendbuf == recvbuf + rank * sendcount * size.
 */
rl_status_t rl_all_gather(rl_comm_t comm, const void *sendbuf, void *recvbuf,
                          size_t sendcount, rl_dtype_t dtype);

/*
 * Reduce-scatter: sendbuf holds nranks blocks of `recvcount` elements;
 * recvbuf (recvcount elements) = op over ranks of block `rank`. In-place
 * when recvbuf == sendbuf + rank * recvcount * size.
 */
rl_status_t rl_reduce_scatter(rl_comm_t comm, const void *sendbuf, void *recvbuf,
                              size_t recvcount, rl_dtype_t dtype, rl_op_t op);
/*
 * Broadcast `count` elements from root's sendbuf into every rank's recvbuf
 * (root's too; in-place when they are the same). sendbuf is read on the root
 * only and may be NULL elsewhere.
 */
rl_status_t rl_broadcast(rl_comm_t comm, const void *sendbuf, void *recvbuf,
                         size_t count, rl_dtype_t dtype, int root);
/*
 * Reduce to root: root's recvbuf = op over ranks of sendbuf. recvbuf is
 * written on the root only and may be NULL elsewhere.
 */
rl_status_t rl_reduce(rl_comm_t comm, const void *sendbuf, void *recvbuf,
                      size_t count, rl_dtype_t dtype, rl_op_t op, int root);
/* Return once every rank has entered the barrier. */
rl_status_t rl_barrier(rl_comm_t comm);

/*
 * All-to-all: block j (count elements) of sendbuf goes to rank j, which
 * stores it as block `rank` of its recvbuf. Not in place: the buffers must
 * not overlap. Uses the point-to-point connections (RINGLET_P2P).
 */
rl_status_t rl_all_to_all(rl_comm_t comm, const void *sendbuf, void *recvbuf,
                          size_t count, rl_dtype_t dtype);

/*
 * All-to-allv: sendcounts[j] elements at sendbuf + sdispls[j] elements go to
 * rank j, which stores them at its recvbuf + rdispls[rank] elements; this
 * rank receives recvcounts[i] elements from rank i. Counts and displacements
 * are in elements (nranks entries each); recvcounts[i] must equal rank i's
 * sendcounts[rank] (RL_ERR_MISMATCH otherwise). The buffers must not overlap,
 * nor may two receive blocks. The four arrays are copied at the call.
 */
rl_status_t rl_all_to_allv(rl_comm_t comm, const void *sendbuf, const size_t *sendcounts,
                           const size_t *sdispls, void *recvbuf, const size_t *recvcounts,
                           const size_t *rdispls, rl_dtype_t dtype);
/*
 * Gather to root: root's recvbuf holds nranks blocks of `count` elements,
 * block i from rank i (root's own too; in-place when sendbuf == recvbuf +
 * root * count * size). recvbuf is significant on the root only.
 */
rl_status_t rl_gather(rl_comm_t comm, const void *sendbuf, void *recvbuf, size_t count,
                      rl_dtype_t dtype, int root);
/*
 * Scatter from root: block i (count elements) of root's sendbuf lands in
 * rank i's recvbuf. sendbuf is significant on the root only (in-place there
 * when recvbuf == sendbuf + root * count * size).
 */
rl_status_t rl_scatter(rl_comm_t comm, const void *sendbuf, void *recvbuf, size_t count,
                       rl_dtype_t dtype, int root);

/*
 * Point-to-point: send `count` elements to rank `peer`, or receive them from
 * it. Between a pair, sends and receives match in the order posted; the
 * counts and dtypes must agree (RL_ERR_MISMATCH otherwise). A blocking send
 * returns once the data is in the receiver's buffer, so two ranks that send
 * to each other must use the non-blocking forms or a group.
 */
rl_status_t rl_send(rl_comm_t comm, const void *buf, size_t count, rl_dtype_t dtype, int peer);
rl_status_t rl_recv(rl_comm_t comm, void *buf, size_t count, rl_dtype_t dtype, int peer);
/*
 * The same with a tag: a send meets the earliest receive from its sender
 * posted with its tag, so messages of one (peer, tag) keep their order and
 * other tags pass them. The tag-less calls use tag 0. At most 4 receives
 * from one peer are announced at a time (in the order posted): a blocking
 * send whose receive is a fifth, behind receives that wait on later sends,
 * waits for them (use the non-blocking forms).
 */
rl_status_t rl_send_tag(rl_comm_t comm, const void *buf, size_t count, rl_dtype_t dtype, int peer, uint32_t tag);
rl_status_t rl_recv_tag(rl_comm_t comm, void *buf, size_t count, rl_dtype_t dtype, int peer, uint32_t tag);

/*
 * Groups: between rl_group_start() and rl_group_end(), blocking calls
 * (collectives, send, recv) only start their operation; rl_group_end()
 * waits for all of them and returns the first error. Ranks issuing the same
 * calls in the same order cannot deadlock, e.g. a send to the next stage and
 * a receive from the previous one. Groups nest; only the outermost end waits.
 */
rl_status_t rl_group_start(rl_comm_t comm);
rl_status_t rl_group_end(rl_comm_t comm);

/* Non-blocking forms: the buffers must stay untouched until the request
 * completes. Operations on one communicator run in the order issued. The
 * caller owns *req and frees it with rl_request_free(). */
rl_status_t rl_iall_reduce(rl_comm_t comm, const void *sendbuf, void *recvbuf,
                           size_t count, rl_dtype_t dtype, rl_op_t op,
                           rl_request_t *req);
rl_status_t rl_iall_gather(rl_comm_t comm, const void *sendbuf, void *recvbuf,
                           size_t sendcount, rl_dtype_t dtype, rl_request_t *req);

rl_status_t rl_ireduce_scatter(rl_comm_t comm, const void *sendbuf, void *recvbuf,
                               size_t recvcount, rl_dtype_t dtype, rl_op_t op,
                               rl_request_t *req);
rl_status_t rl_ibroadcast(rl_comm_t comm, const void *sendbuf, void *recvbuf,
                          size_t count, rl_dtype_t dtype, int root, rl_request_t *req);
rl_status_t rl_ireduce(rl_comm_t comm, const void *sendbuf, void *recvbuf, size_t count,
                       rl_dtype_t dtype, rl_op_t op, int root, rl_request_t *req);
rl_status_t rl_ibarrier(rl_comm_t comm, rl_request_t *req);
rl_status_t rl_iall_to_all(rl_comm_t comm, const void *sendbuf, void *recvbuf, size_t count,
                           rl_dtype_t dtype, rl_request_t *req);
rl_status_t rl_iall_to_allv(rl_comm_t comm, const void *sendbuf, const size_t *sendcounts,
                            const size_t *sdispls, void *recvbuf, const size_t *recvcounts,
                            const size_t *rdispls, rl_dtype_t dtype, rl_request_t *req);
rl_status_t rl_igather(rl_comm_t comm, const void *sendbuf, void *recvbuf, size_t count,
                       rl_dtype_t dtype, int root, rl_request_t *req);
rl_status_t rl_iscatter(rl_comm_t comm, const void *sendbuf, void *recvbuf, size_t count,
                        rl_dtype_t dtype, int root, rl_request_t *req);
rl_status_t rl_isend(rl_comm_t comm, const void *buf, size_t count, rl_dtype_t dtype,
                     int peer, rl_request_t *req);
rl_status_t rl_irecv(rl_comm_t comm, void *buf, size_t count, rl_dtype_t dtype, int peer,
                     rl_request_t *req);
rl_status_t rl_isend_tag(rl_comm_t comm, const void *buf, size_t count, rl_dtype_t dtype, int peer,
                         uint32_t tag, rl_request_t *req);
rl_status_t rl_irecv_tag(rl_comm_t comm, void *buf, size_t count, rl_dtype_t dtype, int peer,
                         uint32_t tag, rl_request_t *req);

/* Make progress; RL_INPROGRESS while running, else the operation's status. */
rl_status_t rl_test(rl_request_t req);
/* Wait up to timeout_ms. RL_ERR_TIMEOUT then leaves the request running;
 * any other result is final. timeout_ms < 0: up to the communicator's
 * RINGLET_TIMEOUT_MS, after which the communicator fails as in a blocking
 * call (the error names the rank that stalls the group). */
rl_status_t rl_wait(rl_request_t req, int timeout_ms);
/* Release a request. A request still running is cancelled, which fails the
 * communicator (peers cannot be told to skip half an operation). */
void rl_request_free(rl_request_t req);

/* Print every RINGLET_* setting with its value, default and help text. */
void rl_config_print(FILE *out);

/* "0.1.0" */
const char *rl_version(void);

#ifdef __cplusplus
}
#endif
#endif /* RINGLET_H */
