#ifndef RL_CLOCK_H
#define RL_CLOCK_H
#include <stdint.h>
#include <time.h>

/* Monotonic nanoseconds: every deadline in ringlet is one of these. */
static inline int64_t rl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The same clock at the kernel tick's resolution (a few ms) for a fifth of
 * the cost: for periodic checks on the data path, never for timing. */
static inline int64_t rl_coarse_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline int64_t rl_deadline_ms(int ms) { return rl_now_ns() + (int64_t)ms * 1000000LL; }

/* Milliseconds left before a deadline, clamped to [0, INT32_MAX]. */
static inline int rl_ms_left(int64_t deadline)
{
    int64_t left = (deadline - rl_now_ns() + 999999) / 1000000;
    return left < 0 ? 0 : left > 0x7fffffff ? 0x7fffffff : (int)left;
}
#endif
