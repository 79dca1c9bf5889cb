/* Logging: level-checked macros over one function (RINGLET_LOG_LEVEL/FILE). */
#ifndef RL_LOG_H
#define RL_LOG_H

typedef enum { RL_LOG_NONE, RL_LOG_ERROR, RL_LOG_WARN, RL_LOG_INFO, RL_LOG_DEBUG, RL_LOG_TRACE } rl_log_level_t;

extern int rl_log_level_cur;

/* Read RINGLET_LOG_LEVEL / RINGLET_LOG_FILE once (idempotent, thread-safe). */
void rl_log_init(void);
/* Rank shown in the line prefix; -1 before the rank is known. */
void rl_log_set_rank(int rank);
int rl_log_parse_level(const char *s, rl_log_level_t *out);
void rl_log_write(rl_log_level_t lvl, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define RL_LOG_(lvl, ...)                                                      \
    do {                                                                       \
        if ((int)(lvl) <= rl_log_level_cur)                                    \
            rl_log_write((lvl), __FILE__, __LINE__, __VA_ARGS__);              \
    } while (0)
#define RL_ERROR(...) RL_LOG_(RL_LOG_ERROR, __VA_ARGS__)
#define RL_WARN(...) RL_LOG_(RL_LOG_WARN, __VA_ARGS__)
#define RL_INFO(...) RL_LOG_(RL_LOG_INFO, __VA_ARGS__)
#define RL_DEBUG(...) RL_LOG_(RL_LOG_DEBUG, __VA_ARGS__)
/* Data-path traces cost nothing unless built with -DRL_ENABLE_TRACE. */
#ifdef RL_ENABLE_TRACE
#define RL_TRACE(...) RL_LOG_(RL_LOG_TRACE, __VA_ARGS__)
#else
#define RL_TRACE(...) do { } while (0)
#endif

#endif
