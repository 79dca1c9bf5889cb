#include "transport/ofi/watchdog.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

enum { TICK_MS = 250 };

static void *watch(void *arg)
{
    rl_ofi_watchdog_t *w = arg;
    uint_fast64_t seen = 0;
    int stuck_ms = 0;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += TICK_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        int rc = pthread_cond_timedwait(&w->cv, &w->mu, &until);
        if (w->stop || (rc != 0 && rc != ETIMEDOUT))
            break;
        uint_fast64_t now = atomic_load_explicit(&w->calls, memory_order_relaxed);
        stuck_ms = (now & 1) && now == seen ? stuck_ms + TICK_MS : 0;
        seen = now;
        if (stuck_ms > w->limit_ms) {
            RL_ERROR("rank %d: a call into %s has not returned for %d ms: a peer process probably died holding "
                     "one of the provider's locks in shared memory, which nothing can release. Exiting (status 1) "
                     "rather than hang; the other ranks report the failed peer",
                     w->rank, w->what, stuck_ms);
            fflush(NULL);
            _exit(1);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int rl_ofi_watchdog_start(rl_ofi_watchdog_t *w, int rank, int limit_ms, const char *what)
{
    atomic_init(&w->calls, 0);
    w->rank = rank;
    w->limit_ms = limit_ms;
    w->stop = 0;
    snprintf(w->what, sizeof(w->what), "%s", what);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, watch, w)) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        return -1;
    }
    w->running = 1;
    return 0;
}

void rl_ofi_watchdog_stop(rl_ofi_watchdog_t *w)
{
    if (!w->running)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    w->running = 0;
}
