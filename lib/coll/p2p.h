/* The point-to-point service (coll/p2p.c): the user's send/recv and the
 * messages of algorithms built on them (halving-doubling, all-to-all). */
#ifndef RL_P2P_H
#define RL_P2P_H

#include "core/comm.h"

/* Nonzero when the communicator has a connection to every peer
 * (RINGLET_P2P). */
int rl_p2p_enabled(const struct rl_comm *c);
/* The connection to peer (rl_p2p_enabled() must hold). */
const rl_conn_t *rl_p2p_conn(struct rl_comm *c, int peer);
/* A send or receive of count elements at buf in a matching space
 * (RL_P2P_USER/COLL), queued; progress does the rest. */
rl_status_t rl_p2p_new(struct rl_comm *c, int space, int is_send, const void *buf, size_t count, rl_dtype_t dtype,
                       int peer, struct rl_request **out);
/* The same with a tag: a send meets the earliest receive of its tag. */
rl_status_t rl_p2p_new_tag(struct rl_comm *c, int space, int is_send, const void *buf, size_t count,
                           rl_dtype_t dtype, int peer, uint32_t tag, struct rl_request **out);
/* A message of an algorithm's own, in the collectives' matching space: the
 * communicator frees it if the operation fails. reg, if not NULL, is a
 * registration of the operation's covering buf, which it then shares (no
 * registration of its own); count 0 sends or receives an empty message. */
rl_status_t rl_p2p_coll(struct rl_comm *c, int is_send, const void *buf, size_t count, rl_dtype_t dtype, int peer,
                        rl_regent_t *reg, struct rl_request **out);
/* An algorithm's own message it no longer needs: off the queue and freed.
 * After a failure, one still queued is left to the communicator. */
void rl_p2p_drop(struct rl_comm *c, struct rl_request **msg);
/* Nonzero when every one of n messages (NULL ones skipped) has completed. */
int rl_p2p_all_ok(struct rl_request *const *msgs, int n);
/* rl_p2p_drop() of each of n messages (NULL ones skipped). */
void rl_p2p_drop_all(struct rl_comm *c, struct rl_request **msgs, int n);
/* What the first of n messages still running waits for, into buf; 0 when
 * none runs (the caller then says where its operation stands). */
int rl_p2p_describe_running(struct rl_comm *c, struct rl_request *const *msgs, int n, char *buf, size_t len);

#endif
