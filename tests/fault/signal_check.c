/*
 * A process that created a communicator over libfabric dies of its signals
 * as any process would (issue 13 item 9, issue 14 item 4): libfabric's psm
 * provider brings in libinfinipath, whose handlers turned SIGTERM, SIGSEGV
 * and SIGABRT into exit(1).
 *
 *   signal_check [--provider tcp|shm]     the driver
 *   signal_check --rank R N ADDR          one rank (started by the driver)
 *
 * For each of SIGTERM (sent by the driver), SIGSEGV (a real invalid write)
 * and SIGABRT (abort()), the driver starts two ranks, waits until both have
 * created their communicator and run an all-reduce, makes rank 1 receive
 * the signal, and checks that it was killed by that signal (a shell shows
 * 143 for SIGTERM). Each rank also reports the handlers it finds for these
 * signals after rl_comm_create: libfabric's shm provider installs some that
 * remove its shared memory and then re-raise the signal, which is fine:
 * only the way the process ends is checked.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ringlet.h"

static const int sigs[] = {SIGTERM, SIGSEGV, SIGABRT, SIGBUS, SIGILL, SIGINT};
static volatile int *volatile bad_ptr; /* NULL: a real invalid write */

static int rank_main(int rank, int n, const char *addr, const char *provider)
{
    setenv("RINGLET_TRANSPORT", "ofi", 1);
    setenv("RINGLET_OFI_PROVIDER", provider, 1);
    rl_comm_opts_t o = {.struct_size = sizeof(o), .rank = rank, .nranks = n, .addr = addr, .timeout_ms = 20000};
    rl_comm_t comm;
    if (rl_comm_create(&o, &comm) != RL_OK) {
        printf("rank %d: create failed: %s\n", rank, rl_comm_last_error(NULL));
        return 2;
    }
    int x = 1;
    if (rl_all_reduce(comm, &x, &x, 1, RL_INT32, RL_SUM) != RL_OK || x != n) {
        printf("rank %d: all-reduce failed\n", rank);
        return 2;
    }
    int foreign = 0;
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        struct sigaction sa;
        sigaction(sigs[i], NULL, &sa);
        if (sa.sa_handler != SIG_DFL)
            foreign++;
    }
    printf("ready %d %d\n", rank, foreign);
    fflush(stdout);
    char cmd[32] = "";
    if (!fgets(cmd, sizeof(cmd), stdin))
        return 0;
    if (!strncmp(cmd, "segv", 4))
        bad_ptr[2] = 1;
    if (!strncmp(cmd, "abort", 5))
        abort();
    pause(); /* SIGTERM comes from the driver */
    return 0;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof(sa);
    int port = -1;
    if (fd >= 0 && !bind(fd, (struct sockaddr *)&sa, sizeof(sa)) && !getsockname(fd, (struct sockaddr *)&sa, &l))
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

typedef struct {
    pid_t pid;
    FILE *to, *from;
} child_t;

static int start(child_t *ch, const char *self, int rank, const char *addr, const char *provider)
{
    int in[2], out[2];
    if (pipe(in) || pipe(out))
        return -1;
    ch->pid = fork();
    if (ch->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        struct rlimit no_core = {0, 0}; /* the segfault case must not write a core */
        setrlimit(RLIMIT_CORE, &no_core);
        /* under AddressSanitizer (tools/check) its own SIGSEGV handler
         * would end the rank with exit(1): leave the signal alone */
        const char *ao = getenv("ASAN_OPTIONS");
        char opts[512];
        snprintf(opts, sizeof(opts), "%s%shandle_segv=0", ao ? ao : "", ao && *ao ? ":" : "");
        setenv("ASAN_OPTIONS", opts, 1);
        char r[16];
        snprintf(r, sizeof(r), "%d", rank);
        execl(self, self, "--rank", r, "2", addr, provider, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    ch->to = fdopen(in[1], "w");
    ch->from = fdopen(out[0], "r");
    return ch->pid > 0 ? 0 : -1;
}

/* One case: rank 1 gets sig (sent, or provoked by cmd); 0 if it died of it. */
static int one_case(const char *self, const char *provider, int sig, const char *cmd)
{
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", free_port());
    child_t ch[2];
    for (int r = 0; r < 2; r++)
        if (start(&ch[r], self, r, addr, provider))
            return 1;
    int bad = 0;
    for (int r = 0; r < 2; r++) {
        char line[256];
        int rk = -1, foreign = 1;
        while (fgets(line, sizeof(line), ch[r].from))
            if (sscanf(line, "ready %d %d", &rk, &foreign) == 2)
                break;
            else
                fputs(line, stdout);
        if (rk != r) {
            printf("%s: rank %d never got ready\n", strsignal(sig), r);
            bad = 1;
        } else if (r == 1 && foreign) {
            printf("%-8s %s: rank 1 has handlers for %d of the %zu signals watched\n", provider, strsignal(sig),
                   foreign, sizeof(sigs) / sizeof(sigs[0]));
        }
    }
    if (!bad) {
        if (cmd) {
            fprintf(ch[1].to, "%s\n", cmd);
            fflush(ch[1].to);
        } else {
            kill(ch[1].pid, sig);
        }
    }
    int st = 0;
    if (bad)
        kill(ch[1].pid, SIGKILL);
    waitpid(ch[1].pid, &st, 0);
    kill(ch[0].pid, SIGKILL);
    waitpid(ch[0].pid, NULL, 0);
    int died = WIFSIGNALED(st) && WTERMSIG(st) == sig;
    printf("%-8s %s: rank 1 %s %d%s\n", provider, strsignal(sig), WIFSIGNALED(st) ? "killed by signal" : "exited with",
           WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), died ? " (ok)" : " (WRONG)");
    for (int r = 0; r < 2; r++) {
        fclose(ch[r].to);
        fclose(ch[r].from);
    }
    return bad || !died;
}

int main(int argc, char **argv)
{
    if (argc >= 6 && !strcmp(argv[1], "--rank"))
        return rank_main(atoi(argv[2]), atoi(argv[3]), argv[4], argv[5]);
    const char *provider = "tcp";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--provider") && i + 1 < argc) {
            provider = argv[++i];
        } else {
            printf("usage: signal_check [--provider tcp|shm]\n"
                   "Ranks that created a libfabric communicator must die of SIGTERM, SIGSEGV and SIGABRT.\n");
            return strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? 2 : 0;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    alarm(100); /* never hang: a rank that ignores its signal ends the run */
    int fails = one_case(argv[0], provider, SIGTERM, NULL);
    fails += one_case(argv[0], provider, SIGSEGV, "segv");
    fails += one_case(argv[0], provider, SIGABRT, "abort");
    printf("signal_check: %s\n", fails ? "FAIL" : "ok");
    return fails != 0;
}
