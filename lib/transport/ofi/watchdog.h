/*
 * A call into libfabric that never returns. libfabric's shm provider keeps
 * spin locks in memory it shares with the peers; a peer killed while holding
 * one leaves every other rank spinning inside the provider, where no
 * deadline of ringlet's can reach it. The watchdog thread notices a call
 * that has not returned within the communicator's timeout and ends the
 * process with an error that says so, rather than let the job hang.
 */
#ifndef RL_OFI_WATCHDOG_H
#define RL_OFI_WATCHDOG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct {
    /* odd while the owning thread is inside libfabric; each enter and leave
     * bumps it, so a value seen twice means no call came or went */
    atomic_uint_fast64_t calls;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running, stop;
    int rank;
    int limit_ms;
    char what[64];
} rl_ofi_watchdog_t;

/* Start watching: calls that last longer than limit_ms end the process
 * (status 1) with a message naming this rank and `what`. */
int rl_ofi_watchdog_start(rl_ofi_watchdog_t *w, int rank, int limit_ms, const char *what);
void rl_ofi_watchdog_stop(rl_ofi_watchdog_t *w);

/* Around each libfabric call of the owning thread, the only writer: a
 * plain load and store, no locked instruction on the data path. */
static inline void rl_ofi_bump(rl_ofi_watchdog_t *w)
{
    atomic_store_explicit(&w->calls, atomic_load_explicit(&w->calls, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}
static inline void rl_ofi_enter(rl_ofi_watchdog_t *w) { rl_ofi_bump(w); }
static inline void rl_ofi_leave(rl_ofi_watchdog_t *w) { rl_ofi_bump(w); }

#endif
