/* The libfabric watchdog: a call that never returns ends the process with
 * a message; calls that come and go, however many, do not. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "transport/ofi/watchdog.h"

/* Run body in a child with stderr captured; its exit status and output. */
static int in_child(void (*body)(void), char *out, size_t len)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        body();
        _exit(0);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t n;
    while (got + 1 < len && (n = read(fds[0], out + got, len - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void stuck_call(void)
{
    static rl_ofi_watchdog_t w;
    rl_ofi_watchdog_start(&w, 7, 300, "a test provider");
    rl_ofi_enter(&w);
    sleep(5); /* the call that never returns */
    rl_ofi_leave(&w);
    rl_ofi_watchdog_stop(&w);
}

static void busy_calls(void)
{
    static rl_ofi_watchdog_t w;
    rl_ofi_watchdog_start(&w, 7, 300, "a test provider");
    for (int i = 0; i < 100; i++) {
        rl_ofi_enter(&w);
        usleep(10000); /* each call far shorter than the limit */
        rl_ofi_leave(&w);
    }
    rl_ofi_watchdog_stop(&w);
}

Test(watchdog, a_call_that_never_returns_ends_the_process, .timeout = 30)
{
    char out[2048];
    cr_assert_eq(in_child(stuck_call, out, sizeof(out)), 1, "exit status; stderr: %s", out);
    cr_assert(strstr(out, "rank 7") && strstr(out, "a test provider"), "message: %s", out);
}

Test(watchdog, calls_that_return_are_left_alone, .timeout = 30)
{
    char out[2048];
    cr_assert_eq(in_child(busy_calls, out, sizeof(out)), 0, "stderr: %s", out);
}
