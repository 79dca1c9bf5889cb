/*
 * Tagged point-to-point, one process per rank (under ringlet-run, 2+ ranks):
 * every rank sends to the next and receives from the previous, with
 * receives posted in another order than the sends. Each payload encodes
 * (sender, tag, message index), so a receive that gets another tag's or
 * another position's data is caught element by element.
 *   tag_check [--quick]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringlet.h"

static int rank, nranks, failures;

#define CHECK(x)                                                                                             \
    do {                                                                                                     \
        rl_status_t st_ = (x);                                                                               \
        if (st_ != RL_OK) {                                                                                  \
            fprintf(stderr, "rank %d: %s failed: %s: %s\n", rank, #x, rl_status_name(st_),                 \
                    rl_comm_last_error(comm));                                                              \
            exit(1);                                                                                         \
        }                                                                                                    \
    } while (0)

static int32_t val(int from, uint32_t tag, int k, size_t i)
{
    return (int32_t)((uint32_t)from * 1000003u + tag * 7919u + (uint32_t)k * 104729u + (uint32_t)i);
}

static int32_t *payload(int from, uint32_t tag, int k, size_t n)
{
    int32_t *b = malloc(n * sizeof(int32_t) + 4);
    for (size_t i = 0; i < n; i++)
        b[i] = val(from, tag, k, i);
    return b;
}

static void expect(const char *what, const int32_t *b, int from, uint32_t tag, int k, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (b[i] != val(from, tag, k, i)) {
            /* say whose message this was, if it was one of ours */
            fprintf(stderr, "rank %d: %s: receive (tag %u, #%d, %zu elements) from rank %d wrong at %zu: %d\n",
                    rank, what, tag, k, n, from, i, b[i]);
            failures++;
            return;
        }
    }
}

static void wait_all(rl_comm_t comm, rl_request_t *r, int n)
{
    for (int i = n - 1; i >= 0; i--) { /* any order */
        CHECK(rl_wait(r[i], -1));
        rl_request_free(r[i]);
    }
}

/* The case: isend tags 1 and 2, irecv tags 2 then 1, equal sizes. */
static void swapped(rl_comm_t comm, int next, int prev, size_t n)
{
    int32_t *s1 = payload(rank, 1, 0, n), *s2 = payload(rank, 2, 0, n);
    int32_t *r1 = calloc(n + 1, 4), *r2 = calloc(n + 1, 4);
    rl_request_t q[4];
    CHECK(rl_irecv_tag(comm, r2, n, RL_INT32, prev, 2, &q[0]));
    CHECK(rl_irecv_tag(comm, r1, n, RL_INT32, prev, 1, &q[1]));
    CHECK(rl_isend_tag(comm, s1, n, RL_INT32, next, 1, &q[2]));
    CHECK(rl_isend_tag(comm, s2, n, RL_INT32, next, 2, &q[3]));
    wait_all(comm, q, 4);
    expect("swapped tags", r1, prev, 1, 0, n);
    expect("swapped tags", r2, prev, 2, 0, n);
    free(s1), free(s2), free(r1), free(r2);
}

/* Several messages per tag, tags interleaved on the sender, receives of
 * tag B before those of tag A; sizes differ per tag and message. More
 * receives than clear-to-send slots are outstanding. */
static void interleaved(rl_comm_t comm, int next, int prev, size_t n)
{
    enum { K = 3 };
    const uint32_t A = 5, B = 0xfffffff0u;
    int32_t *sa[K], *sb[K], *ra[K], *rb[K];
    rl_request_t q[4 * K];
    int nq = 0;
    for (int k = 0; k < K; k++) {
        size_t nb = n / 2 + 3 * (size_t)k;
        rb[k] = calloc(nb + 1, 4);
        CHECK(rl_irecv_tag(comm, rb[k], nb, RL_INT32, prev, B, &q[nq++]));
    }
    for (int k = 0; k < K; k++) {
        ra[k] = calloc(n + (size_t)k + 1, 4);
        CHECK(rl_irecv_tag(comm, ra[k], n + (size_t)k, RL_INT32, prev, A, &q[nq++]));
    }
    for (int k = 0; k < K; k++) {
        sa[k] = payload(rank, A, k, n + (size_t)k);
        sb[k] = payload(rank, B, k, n / 2 + 3 * (size_t)k);
        CHECK(rl_isend_tag(comm, sa[k], n + (size_t)k, RL_INT32, next, A, &q[nq++]));
        CHECK(rl_isend_tag(comm, sb[k], n / 2 + 3 * (size_t)k, RL_INT32, next, B, &q[nq++]));
    }
    wait_all(comm, q, nq);
    for (int k = 0; k < K; k++) {
        expect("interleaved tags", ra[k], prev, A, k, n + (size_t)k);
        expect("interleaved tags", rb[k], prev, B, k, n / 2 + 3 * (size_t)k);
        free(sa[k]), free(sb[k]), free(ra[k]), free(rb[k]);
    }
}

/* A send whose receive is posted later must not hold back a later send of
 * another tag: isend tag 1 then tag 2; the receiver waits for tag 2 with a
 * blocking receive before it posts tag 1's. */
static void later_tag_first(rl_comm_t comm, int next, int prev, size_t n)
{
    int32_t *s1 = payload(rank, 1, 0, n), *s2 = payload(rank, 2, 0, n);
    int32_t *r1 = calloc(n + 1, 4), *r2 = calloc(n + 1, 4);
    rl_request_t q[2];
    CHECK(rl_isend_tag(comm, s1, n, RL_INT32, next, 1, &q[0]));
    CHECK(rl_isend_tag(comm, s2, n, RL_INT32, next, 2, &q[1]));
    CHECK(rl_recv_tag(comm, r2, n, RL_INT32, prev, 2));
    expect("later tag first", r2, prev, 2, 0, n);
    CHECK(rl_recv_tag(comm, r1, n, RL_INT32, prev, 1));
    expect("later tag first", r1, prev, 1, 0, n);
    wait_all(comm, q, 2);
    free(s1), free(s2), free(r1), free(r2);
}

/* Tag-less calls are tag 0 and meet tagged ones of tag 0 only. */
static void tagless(rl_comm_t comm, int next, int prev, size_t n)
{
    int32_t *s0 = payload(rank, 0, 0, n), *s9 = payload(rank, 9, 0, n);
    int32_t *r0 = calloc(n + 1, 4), *r9 = calloc(n + 1, 4);
    rl_request_t q[4];
    CHECK(rl_irecv_tag(comm, r9, n, RL_INT32, prev, 9, &q[0]));
    CHECK(rl_irecv(comm, r0, n, RL_INT32, prev, &q[1]));
    CHECK(rl_isend_tag(comm, s0, n, RL_INT32, next, 0, &q[2]));
    CHECK(rl_isend_tag(comm, s9, n, RL_INT32, next, 9, &q[3]));
    wait_all(comm, q, 4);
    expect("tag-less vs tag 0", r0, prev, 0, 0, n);
    expect("tag-less vs tag 0", r9, prev, 9, 0, n);
    free(s0), free(s9), free(r0), free(r9);
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    if (argc > 1 && !quick) {
        fprintf(stderr, "usage: tag_check [--quick] (under ringlet-run, 2 or more ranks)\n");
        return 2;
    }
    rl_comm_t comm = NULL;
    CHECK(rl_comm_create(NULL, &comm));
    CHECK(rl_comm_rank(comm, &rank));
    CHECK(rl_comm_size(comm, &nranks));
    if (nranks < 2) {
        fprintf(stderr, "tag_check needs 2 or more ranks\n");
        return 2;
    }
    int next = (rank + 1) % nranks, prev = (rank + nranks - 1) % nranks;
    /* empty, one element, and several chunks (not a multiple of anything) */
    size_t sizes[] = {0, 1, 1031, quick ? 5003 : 300007};
    for (int s = 0; s < 4; s++) {
        swapped(comm, next, prev, sizes[s]);
        interleaved(comm, next, prev, sizes[s]);
        later_tag_first(comm, next, prev, sizes[s]);
        tagless(comm, next, prev, sizes[s]);
        CHECK(rl_barrier(comm));
    }
    if (failures) {
        fprintf(stderr, "rank %d: %d tagged receives got the wrong data\n", rank, failures);
        return 1;
    }
    printf("rank %d of %d: tagged send/recv ok\n", rank, nranks);
    return rl_comm_destroy(comm) == RL_OK ? 0 : 1;
}
