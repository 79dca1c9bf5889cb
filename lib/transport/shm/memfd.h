/*
 * Sealed memfd segments handed to the other processes of one host over
 * abstract Unix sockets with random names: what the native shm transport
 * does per connection (shm.c) and the direct intra-host collectives per
 * rank (coll/direct.c). Nothing gets a name in /dev/shm, so nothing
 * outlives a killed process; only a process told the 128-bit name (through
 * the bootstrap) can connect, and a receiver checks the sender's uid, the
 * seals and the size before it maps anything.
 */
#ifndef RL_SHM_MEMFD_H
#define RL_SHM_MEMFD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RL_MEMFD_TOKEN 16

/* A memfd of len bytes mapped read-write here, then sealed: nobody can
 * shrink or grow it or map it writable again. 0, or -1 with errno. */
int rl_memfd_create(const char *name, size_t len, int *fd, void **map);
/* Listen (non-blocking) on an abstract socket named by a fresh random
 * token: the socket, or -1 with errno. */
int rl_memfd_listen(uint8_t token[RL_MEMFD_TOKEN]);
/* Connect to the socket named token and send msg with fd attached: 0 sent,
 * 1 the socket's queue is full (try again), -1 with errno (unreachable:
 * another host or network namespace, or gone). */
int rl_memfd_send(const uint8_t token[RL_MEMFD_TOKEN], const void *msg, size_t len, int fd);
/* One message of exactly len bytes with one fd from connected socket s,
 * from a process of this uid: 1 (fd and the sender's pid set; fd is -1 if
 * the message was malformed or foreign, and then was closed), 0 nothing
 * yet. */
int rl_memfd_recv(int s, void *msg, size_t len, uid_t uid, int *fd, pid_t *pid);
/* NULL if fd is a memfd sealed against shrinking and growing, of exactly
 * len bytes; else why not. */
const char *rl_memfd_check(int fd, size_t len);
/* This kernel's boot id (zeros if unreadable) and random bytes (0, or -1). */
void rl_memfd_boot_id(uint8_t out[16]);
int rl_memfd_random(void *p, size_t n);

#endif
