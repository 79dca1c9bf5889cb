/*
 * Several transports in one communicator: emulated hosts (RINGLET_HOST_ID
 * per rank), libfabric tcp between them, ringlet's own shm inside each.
 * coll_check checks every collective element by element against its own
 * reference; the traffic line each rank logs at destroy (RINGLET_LOG_LEVEL
 * =info) shows which transports carried its writes, and the communicator's
 * description which ones it opened.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define MAXR 16

typedef struct {
    int seen[MAXR];                     /* a traffic line came from the rank */
    unsigned long long ofi[MAXR], shm[MAXR]; /* writes through each */
    int mixed[MAXR];                    /* its description names both transports */
    int passed[MAXR];                   /* coll_check's final line */
} runinfo_t;

/* Rank r claims host r / per (consecutive ranks share a host), or r % hosts
 * with interleave. Returns the exit status of the group. */
static int run_hosts(int n, int per, int interleave, const char *env, const char *args, runinfo_t *ri)
{
    char cmd[2048];
    const char *place = interleave ? "%" : "/";
    snprintf(cmd, sizeof(cmd),
             "%s -n %d --timeout 400 --env RINGLET_TRANSPORT=ofi --env RINGLET_OFI_PROVIDER=tcp "
             "--env RINGLET_TIMEOUT_MS=60000 --env RINGLET_LOG_LEVEL=info %s -- "
             "sh -c 'RINGLET_HOST_ID=host$((RINGLET_RANK %s %d)) exec %s %s' </dev/null 2>&1",
             RINGLET_RUN, n, env, place, per, COLL_CHECK, args);
    memset(ri, 0, sizeof(*ri));
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    char line[4096];
    while (fgets(line, sizeof(line), p)) {
        int r;
        if (sscanf(line, "[%d]", &r) != 1 || r < 0 || r >= MAXR)
            continue;
        const char *t = strstr(line, " traffic: ");
        if (t) {
            ri->seen[r] = 1;
            const char *o = strstr(t, "ofi "), *s = strstr(t, "shm ");
            if (o)
                ri->ofi[r] = strtoull(o + 4, NULL, 10);
            if (s)
                ri->shm[r] = strtoull(s + 4, NULL, 10);
        }
        if (strstr(line, "communicator of") && strstr(line, "ofi:") && strstr(line, " + shm:"))
            ri->mixed[r] = 1;
        if (strstr(line, "checks passed"))
            ri->passed[r] = 1;
    }
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Every rank passed; a rank with a local peer wrote through both
 * transports, one alone on its host only through tcp. */
static void expect_routes(const runinfo_t *ri, int n, const int *local_peers)
{
    for (int r = 0; r < n; r++) {
        cr_expect(ri->passed[r], "rank %d did not pass its checks", r);
        cr_expect(ri->seen[r], "rank %d logged no traffic line", r);
        cr_expect(ri->ofi[r] > 0, "rank %d wrote nothing through tcp", r);
        if (local_peers[r]) {
            cr_expect(ri->shm[r] > 0, "rank %d has %d local peers but wrote nothing through shm", r,
                      local_peers[r]);
            cr_expect(ri->mixed[r], "rank %d's communicator does not describe both transports", r);
        } else {
            cr_expect(ri->shm[r] == 0 && !ri->mixed[r], "rank %d is alone on its host but opened shm", r);
        }
    }
}

/* Ring neighbours on the same host and on another: both kinds of channel. */
Test(multi, hosts_2_x_2_ranks, .timeout = 600)
{
    runinfo_t ri;
    cr_assert_eq(run_hosts(4, 2, 0, "", "", &ri), 0, "coll_check failed on 2 hosts x 2 ranks");
    expect_routes(&ri, 4, (int[]){1, 1, 1, 1});
}

Test(multi, hosts_3_x_2_ranks, .timeout = 600)
{
    runinfo_t ri;
    cr_assert_eq(run_hosts(6, 2, 0, "", "--quick", &ri), 0, "coll_check failed on 3 hosts x 2 ranks");
    expect_routes(&ri, 6, (int[]){1, 1, 1, 1, 1, 1});
}

/* 2 + 1: rank 2 is alone on its host and opens no shm. */
Test(multi, hosts_uneven_2_plus_1, .timeout = 600)
{
    runinfo_t ri;
    cr_assert_eq(run_hosts(3, 2, 0, "", "--big", &ri), 0, "coll_check failed on 2 + 1 ranks");
    expect_routes(&ri, 3, (int[]){1, 1, 0});
}

/* Hosts interleaved (0,2 | 1,3): no ring neighbour is local, the
 * point-to-point pairs 0-2 and 1-3 are; hierarchical all-reduce. */
Test(multi, hier_interleaved_2_x_2_ranks, .timeout = 600)
{
    runinfo_t ri;
    cr_assert_eq(run_hosts(4, 2, 1, "--env RINGLET_ALGOS=all_reduce:0-:hier", "--quick", &ri), 0,
                 "coll_check failed with the hierarchical all-reduce");
    expect_routes(&ri, 4, (int[]){1, 1, 1, 1});
}

/* Three rings in another order (0,2,3,1: the local hops run 2 -> 3 and
 * 1 -> 0, against the default's direction) with small chunks, so channels
 * > 0 and pipelined chunks run over both transports. */
Test(multi, channels_3_ring_order_2_x_2_ranks, .timeout = 600)
{
    runinfo_t ri;
    cr_assert_eq(run_hosts(4, 2, 0,
                           "--env RINGLET_NCHANNELS=3 --env RINGLET_RING_ORDER=0,2,3,1 --env RINGLET_CHUNK_BYTES=8K "
                           "--env RINGLET_MIN_CHUNK_BYTES=1K",
                           "--quick --large 1000003", &ri),
                 0, "coll_check failed with 3 channels");
    expect_routes(&ri, 4, (int[]){1, 1, 1, 1});
}

/* An odd group: 5 ranks as 2 + 2 + 1. */
Test(multi, hosts_5_ranks_2_2_1, .timeout = 600)
{
    runinfo_t ri;
    cr_assert_eq(run_hosts(5, 2, 0, "", "--quick", &ri), 0, "coll_check failed on 2 + 2 + 1 ranks");
    expect_routes(&ri, 5, (int[]){1, 1, 1, 1, 0});
}

/* Empty all-reduces between eager, tree and ring ones across the two
 * transports. */
Test(multi, mixed_zero_2_x_2_ranks, .timeout = 600)
{
    runinfo_t ri;
    cr_assert_eq(run_hosts(4, 2, 0, "", "--mixed-zero", &ri), 0, "coll_check --mixed-zero failed");
    expect_routes(&ri, 4, (int[]){1, 1, 1, 1});
}

/* RINGLET_INTRA_TRANSPORT=none: the old single-transport communicator. */
Test(multi, intra_none_keeps_one_transport, .timeout = 600)
{
    runinfo_t ri;
    cr_assert_eq(run_hosts(4, 2, 0, "--env RINGLET_INTRA_TRANSPORT=none", "--quick", &ri), 0);
    expect_routes(&ri, 4, (int[]){0, 0, 0, 0});
}

/* Ranks that route differently fail at creation with a clear error. */
Test(multi, intra_setting_mismatch_fails, .timeout = 300)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "%s -n 4 --timeout 120 --env RINGLET_TRANSPORT=ofi --env RINGLET_OFI_PROVIDER=tcp "
             "--env RINGLET_TIMEOUT_MS=20000 -- sh -c 'RINGLET_HOST_ID=host$((RINGLET_RANK / 2)) "
             "RINGLET_INTRA_TRANSPORT=$([ $RINGLET_RANK = 1 ] && echo none || echo shm) exec %s --quick' "
             "</dev/null 2>&1 | grep -c RINGLET_INTRA_TRANSPORT",
             RINGLET_RUN, COLL_CHECK);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    int hits = 0;
    cr_assert_eq(fscanf(p, "%d", &hits), 1);
    pclose(p);
    cr_expect_geq(hits, 1, "no rank named RINGLET_INTRA_TRANSPORT in its error");
}
