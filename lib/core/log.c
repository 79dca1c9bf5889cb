#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

int rl_log_level_cur = RL_LOG_WARN;
static FILE *log_out;
static int log_rank = -1;
static char log_host[64];
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static const char *const level_names[] = {"none", "error", "warn", "info", "debug", "trace"};

int rl_log_parse_level(const char *s, rl_log_level_t *out)
{
    for (int i = 0; i <= RL_LOG_TRACE; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (rl_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

/* Expand %h (host) and %p (pid) in a RINGLET_LOG_FILE pattern. */
static void expand_path(const char *pat, char *out, size_t len)
{
    size_t o = 0;
    for (const char *p = pat; *p && o + 1 < len; p++) {
        if (p[0] == '%' && (p[1] == 'h' || p[1] == 'p')) {
            int n = p[1] == 'h' ? snprintf(out + o, len - o, "%s", log_host)
                                : snprintf(out + o, len - o, "%d", (int)getpid());
            o += n > 0 ? (size_t)n : 0;
            p++;
        } else {
            out[o++] = *p;
        }
    }
    out[o < len ? o : len - 1] = '\0';
}

static void log_init_once(void)
{
    gethostname(log_host, sizeof(log_host) - 1);
    log_out = stderr;
    const char *lvl = getenv("RINGLET_LOG_LEVEL");
    rl_log_level_t l;
    if (lvl && *lvl) {
        if (rl_log_parse_level(lvl, &l) == 0)
            rl_log_level_cur = (int)l;
        else
            fprintf(stderr, "ringlet: ignoring RINGLET_LOG_LEVEL=%s (use error|warn|info|debug|trace)\n", lvl);
    }
    const char *file = getenv("RINGLET_LOG_FILE");
    if (file && *file) {
        char path[512];
        expand_path(file, path, sizeof(path));
        FILE *f = fopen(path, "a");
        if (f) {
            setvbuf(f, NULL, _IOLBF, 0);
            log_out = f;
        } else {
            fprintf(stderr, "ringlet: cannot open RINGLET_LOG_FILE %s, logging to stderr\n", path);
        }
    }
}

void rl_log_init(void) { pthread_once(&log_once, log_init_once); }

void rl_log_set_rank(int rank) { log_rank = rank; }

void rl_log_write(rl_log_level_t lvl, const char *file, int line, const char *fmt, ...)
{
    rl_log_init();
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* One fprintf per line so lines from threads do not interleave. */
    fprintf(log_out, "%s:%d:%d %ld.%06ld ringlet %s %s:%d %s\n", log_host, (int)getpid(), log_rank,
            (long)ts.tv_sec, ts.tv_nsec / 1000, level_names[lvl], base, line, msg);
}
