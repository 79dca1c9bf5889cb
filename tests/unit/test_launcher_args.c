/*
 * ringlet-run: argument parsing, the HCA list, and whole runs of small shell
 * commands (normal, failing, killed, hanging, output handling).
 *
 * The launcher is one file with no library dependency; it is compiled into
 * this test with its main() left out.
 */
#define RINGLET_RUN_NO_MAIN 1
#include "../../tools/ringlet-run.c"

#include <criterion/criterion.h>

/* ------------------------------------------------------------ parse_args */

/* The parser keeps pointers into argv (as main's argv lives for the whole
 * program), so the test's argv must outlive the assertion macro's block:
 * copy each compound literal into static storage. */
static char *argv_store[8][64];
static unsigned argv_slot;
static char **keep_argv(char **v)
{
    char **dst = argv_store[argv_slot++ % 8];
    int i = 0;
    for (; v[i] && i < 63; i++)
        dst[i] = v[i];
    dst[i] = NULL;
    return dst;
}
#define ARGV(...) keep_argv((char *[]){"ringlet-run", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"ringlet-run", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(o, env, ...)                                                     \
    rr_parse_args(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), env, o, err, sizeof(err))

Test(launcher_args, defaults)
{
    rr_opts_t o;
    char err[256] = "";
    cr_assert_eq(PARSE(&o, NULL, "-n", "4", "./app", "-x", "1"), RR_PARSE_OK, "%s", err);
    cr_assert_eq(o.nranks, 4);
    cr_assert_eq(o.port, 0);
    cr_assert_eq(o.prefix, 1);
    cr_assert_eq(o.only_rank, -1);
    cr_assert_eq(o.grace_ms, 3000);
    cr_assert_float_eq(o.timeout_s, 0.0, 1e-12);
    cr_assert_eq(o.nenv, 0);
    cr_assert_eq(o.torch, 0);
    cr_assert_str_eq(o.cmd[0], "./app");
    cr_assert_str_eq(o.cmd[1], "-x"); /* the command keeps its own flags */
    cr_assert_str_eq(o.cmd[2], "1");
    cr_assert_null(o.cmd[3]);
    rr_opts_free(&o);
}

Test(launcher_args, all_options_and_forms)
{
    rr_opts_t o;
    char err[256] = "";
    cr_assert_eq(PARSE(&o, "7", "-n8", "--port=5000", "--env", "A=1", "--env=B=x=y",
                       "--no-prefix", "--torch", "--only-rank", "3", "--grace-ms=250",
                       "--timeout", "2.5", "--", "-cmd-starting-with-dash"),
                 RR_PARSE_OK, "%s", err);
    cr_assert_eq(o.nranks, 8);
    cr_assert_eq(o.port, 5000);
    cr_assert_eq(o.nenv, 2);
    cr_assert_str_eq(o.env[0], "A=1");
    cr_assert_str_eq(o.env[1], "B=x=y");
    cr_assert_eq(o.prefix, 0);
    cr_assert_eq(o.torch, 1);
    cr_assert_eq(o.only_rank, 3);
    cr_assert_eq(o.grace_ms, 250);
    cr_assert_float_eq(o.timeout_s, 2.5, 1e-12); /* --timeout wins over env */
    cr_assert_str_eq(o.cmd[0], "-cmd-starting-with-dash");
    rr_opts_free(&o);

    cr_assert_eq(PARSE(&o, "1.5", "--np", "1", "--no-prefix", "--prefix", "true"),
                 RR_PARSE_OK, "%s", err);
    cr_assert_eq(o.nranks, 1);
    cr_assert_eq(o.prefix, 1);
    cr_assert_float_eq(o.timeout_s, 1.5, 1e-12); /* from RINGLET_RUN_TIMEOUT */
    rr_opts_free(&o);
}

Test(launcher_args, help)
{
    rr_opts_t o;
    char err[256] = "";
    cr_assert_eq(PARSE(&o, NULL, "--help"), RR_PARSE_HELP);
    rr_opts_free(&o);
    cr_assert_eq(PARSE(&o, NULL, "-n", "2", "-h", "true"), RR_PARSE_HELP);
    rr_opts_free(&o);
}

static void expect_error(int rc, rr_opts_t *o, const char *err, const char *needle)
{
    cr_assert_eq(rc, RR_PARSE_ERROR);
    cr_assert(strstr(err, needle) != NULL, "message '%s' lacks '%s'", err, needle);
    rr_opts_free(o);
}

Test(launcher_args, errors)
{
    rr_opts_t o;
    char err[256];
    expect_error(PARSE(&o, NULL, "true"), &o, err, "missing -n");
    expect_error(PARSE(&o, NULL, "-n", "2"), &o, err, "missing command");
    expect_error(PARSE(&o, NULL, "-n"), &o, err, "needs a value");
    expect_error(PARSE(&o, NULL, "-n", "0", "true"), &o, err, "rank count");
    expect_error(PARSE(&o, NULL, "-n", "4097", "true"), &o, err, "rank count");
    expect_error(PARSE(&o, NULL, "-n", "3x", "true"), &o, err, "rank count");
    expect_error(PARSE(&o, NULL, "-n", "2", "--port", "70000", "true"), &o, err, "--port");
    expect_error(PARSE(&o, NULL, "-n", "2", "--env", "NOEQUALS", "true"), &o, err, "KEY=VALUE");
    expect_error(PARSE(&o, NULL, "-n", "2", "--env", "=v", "true"), &o, err, "KEY=VALUE");
    expect_error(PARSE(&o, NULL, "-n", "2", "--only-rank", "2", "true"), &o, err, "not a rank");
    expect_error(PARSE(&o, NULL, "-n", "2", "--timeout", "-1", "true"), &o, err, "--timeout");
    expect_error(PARSE(&o, NULL, "-n", "2", "--timeout", "soon", "true"), &o, err, "--timeout");
    expect_error(PARSE(&o, NULL, "-n", "2", "--grace-ms", "-5", "true"), &o, err, "--grace-ms");
    expect_error(PARSE(&o, NULL, "-n", "2", "--frobnicate", "true"), &o, err, "unknown option");
    expect_error(PARSE(&o, "abc", "-n", "2", "true"), &o, err, "RINGLET_RUN_TIMEOUT");
}

Test(launcher_args, hca_list)
{
    char b[32];
    cr_assert_eq(rr_hca_entry("rxe0:1,rxe1:1", 0, b, sizeof(b)), 0);
    cr_assert_str_eq(b, "rxe0:1");
    cr_assert_eq(rr_hca_entry("rxe0:1,rxe1:1", 3, b, sizeof(b)), 0);
    cr_assert_str_eq(b, "rxe1:1");
    cr_assert_eq(rr_hca_entry(",a,,b,", 1, b, sizeof(b)), 0); /* empties skipped */
    cr_assert_str_eq(b, "b");
    cr_assert_eq(rr_hca_entry("solo", 5, b, sizeof(b)), 0);
    cr_assert_str_eq(b, "solo");
    cr_assert_eq(rr_hca_entry("", 0, b, sizeof(b)), -1);
    cr_assert_eq(rr_hca_entry(",,", 0, b, sizeof(b)), -1);
    cr_assert_eq(rr_hca_entry("averyveryverylongdevicename:1", 0, b, 8), -1);
}

/* ------------------------------------------------------------ whole runs */

typedef struct {
    int code;      /* rr_main's return value */
    char *out;     /* its stdout */
    char *err;     /* its stderr */
} run_result_t;

static char *slurp(FILE *f)
{
    long n;
    char *s;
    fflush(f);
    n = lseek(fileno(f), 0, SEEK_END);
    cr_assert_geq(n, 0);
    s = malloc((size_t)n + 1);
    cr_assert_not_null(s);
    cr_assert_eq(pread(fileno(f), s, (size_t)n, 0), n);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* Run rr_main in a child with stdout/stderr captured and no stdin. */
static run_result_t run_launcher(char **argv)
{
    run_result_t r;
    FILE *out = tmpfile(), *errf = tmpfile();
    int argc = 0, status;
    pid_t pid;

    cr_assert(out && errf);
    while (argv[argc] != NULL)
        argc++;
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(0);
        dup2(fileno(out), 1);
        dup2(fileno(errf), 2);
        _exit(rr_main(argc, argv));
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "launcher did not exit normally");
    r.code = WEXITSTATUS(status);
    r.out = slurp(out);
    r.err = slurp(errf);
    return r;
}

static int count_lines(const char *s, const char *prefix)
{
    int n = 0;
    size_t pl = strlen(prefix);
    for (const char *p = s; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        if (strncmp(p, prefix, pl) == 0)
            n++;
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    return n;
}

static void free_result(run_result_t *r)
{
    free(r->out);
    free(r->err);
}

Test(launcher_run, normal, .timeout = 30)
{
    run_result_t r = run_launcher(ARGV(
        "-n", "3", "--env", "EXTRA=42", "sh", "-c",
        "echo \"r=$RINGLET_RANK s=$RINGLET_SIZE l=$RINGLET_LOCAL_RANK e=$EXTRA "
        "a=${RINGLET_ADDR%:*}\"; echo to-stderr >&2"));
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "[0] r=0 s=3 l=0 e=42 a=127.0.0.1\n"), "%s", r.out);
    cr_assert(strstr(r.out, "[1] r=1 s=3 l=1 e=42 a=127.0.0.1\n"), "%s", r.out);
    cr_assert(strstr(r.out, "[2] r=2 s=3 l=2 e=42 a=127.0.0.1\n"), "%s", r.out);
    cr_assert_eq(count_lines(r.err, "["), 3, "%s", r.err);
    free_result(&r);
}

Test(launcher_run, one_rank_no_prefix_and_stdin_closed, .timeout = 30)
{
    run_result_t r = run_launcher(ARGV("-n", "1", "--no-prefix", "sh", "-c",
                                       "cat; printf 'no newline'"));
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "no newline\n"); /* a last partial line is completed */
    free_result(&r);
}

Test(launcher_run, failing_rank, .timeout = 30)
{
    run_result_t r = run_launcher(ARGV(
        "-n", "3", "--grace-ms", "500", "sh", "-c",
        "if [ $RINGLET_RANK = 1 ]; then exit 7; fi; exec sleep 30"));
    cr_assert_eq(r.code, 7);
    cr_assert(strstr(r.err, "ringlet-run: rank 1 exited with status 7"), "%s", r.err);
    free_result(&r);
}

Test(launcher_run, killed_rank, .timeout = 30)
{
    run_result_t r = run_launcher(ARGV(
        "-n", "2", "sh", "-c",
        "if [ $RINGLET_RANK = 0 ]; then kill -KILL $$; fi; exec sleep 30"));
    cr_assert_eq(r.code, 128 + SIGKILL);
    cr_assert(strstr(r.err, "rank 0 killed by signal SIGKILL"), "%s", r.err);
    free_result(&r);
}

Test(launcher_run, term_ignored_needs_kill, .timeout = 30)
{
    /* Rank 1 fails; rank 0 ignores SIGTERM and must be SIGKILLed after the
     * grace period. */
    run_result_t r = run_launcher(ARGV(
        "-n", "2", "--grace-ms", "200", "sh", "-c",
        "if [ $RINGLET_RANK = 1 ]; then sleep 0.2; exit 3; fi; "
        "trap '' TERM; sleep 30"));
    cr_assert_eq(r.code, 3, "%s", r.err);
    free_result(&r);
}

Test(launcher_run, timeout, .timeout = 30)
{
    run_result_t r = run_launcher(ARGV(
        "-n", "3", "--timeout", "0.5", "--grace-ms", "200", "sh", "-c",
        "if [ $RINGLET_RANK = 1 ]; then exit 0; fi; exec sleep 30"));
    cr_assert_eq(r.code, 124);
    cr_assert(strstr(r.err, "ranks still running: 0 2"), "%s", r.err);
    free_result(&r);
}

Test(launcher_run, only_rank, .timeout = 30)
{
    run_result_t r = run_launcher(ARGV(
        "-n", "3", "--only-rank", "2", "sh", "-c",
        "echo out$RINGLET_RANK; echo err$RINGLET_RANK >&2"));
    cr_assert_eq(r.code, 0);
    cr_assert_str_eq(r.out, "[2] out2\n");
    cr_assert_eq(count_lines(r.err, "["), 3, "%s", r.err);
    free_result(&r);
}

Test(launcher_run, big_outputs_do_not_interleave, .timeout = 60)
{
    run_result_t r = run_launcher(ARGV(
        "-n", "4", "--no-prefix", "sh", "-c",
        "i=0; while [ $i -lt 3000 ]; do "
        "echo \"R$RINGLET_RANK-0123456789012345678901234567890123456789-$RINGLET_RANK\"; "
        "i=$((i+1)); done"));
    int per_rank[4] = {0};
    cr_assert_eq(r.code, 0);
    for (char *p = r.out, *nl; *p != '\0'; p = nl + 1) {
        int a, b;
        char mid[64];
        nl = strchr(p, '\n');
        cr_assert_not_null(nl);
        *nl = '\0';
        cr_assert_eq(sscanf(p, "R%d-%40[0-9]-%d", &a, mid, &b), 3, "torn line '%s'", p);
        cr_assert_eq(a, b, "torn line '%s'", p);
        cr_assert_eq(strlen(p), strlen("R0-0123456789012345678901234567890123456789-0"));
        per_rank[a]++;
    }
    for (int i = 0; i < 4; i++)
        cr_assert_eq(per_rank[i], 3000);
    free_result(&r);
}

Test(launcher_run, command_not_found, .timeout = 30)
{
    run_result_t r = run_launcher(ARGV("-n", "2", "/nonexistent/ringlet-app"));
    cr_assert_eq(r.code, 127);
    cr_assert(strstr(r.err, "cannot run '/nonexistent/ringlet-app'"), "%s", r.err);
    free_result(&r);
}

Test(launcher_run, bad_args_exit_2, .timeout = 30)
{
    run_result_t r = run_launcher(ARGV("-n", "two", "true"));
    cr_assert_eq(r.code, 2);
    cr_assert(strstr(r.err, "rank count"), "%s", r.err);
    free_result(&r);
}
