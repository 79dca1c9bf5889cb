/*
 * rl_mem_alloc / rl_mem_free, one rank of a group (start it with
 * ringlet-run): all-reduces on shared allocations of different sizes per
 * rank, in place and out of place, checked element by element against a
 * reference computed here from the fill formula; a rank with a malloc'ed
 * send buffer and one whose call exceeds its allocation (both: every rank
 * copies); alloc/free cycles; wrong pointers to rl_mem_free; ranks freeing
 * different allocations (RL_ERR_MISMATCH, the communicator stays usable).
 * Rank 0 prints how many all-reduces could read in place ("zero-copy
 * candidates: K"), for the driver to compare with the library's count.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringlet.h"

static int rank, nranks, failures;

#define CHECK(cond, ...)                                                                                       \
    do {                                                                                                      \
        if (!(cond)) {                                                                                        \
            fprintf(stderr, "rank %d: ", rank);                                                               \
            fprintf(stderr, __VA_ARGS__);                                                                     \
            fprintf(stderr, "\n");                                                                            \
            failures++;                                                                                       \
        }                                                                                                     \
    } while (0)

/* Small integers: every sum and product below is exact in every type. */
static int64_t val(int r, size_t i, uint32_t salt) { return (int64_t)(((uint64_t)(r + 1) * (i % 89 + 1) + salt) % 7) - 3; }

typedef struct {
    rl_dtype_t dt;
    rl_op_t op;
} kind_t;

static const kind_t kinds[] = {{RL_FLOAT32, RL_SUM}, {RL_INT32, RL_MAX}, {RL_FLOAT64, RL_SUM}, {RL_UINT8, RL_BXOR},
                               {RL_INT64, RL_MIN}};

static void put(void *buf, rl_dtype_t dt, size_t i, int64_t v)
{
    switch (dt) {
    case RL_FLOAT32: ((float *)buf)[i] = (float)v; break;
    case RL_FLOAT64: ((double *)buf)[i] = (double)v; break;
    case RL_INT32: ((int32_t *)buf)[i] = (int32_t)v; break;
    case RL_INT64: ((int64_t *)buf)[i] = v; break;
    default: ((uint8_t *)buf)[i] = (uint8_t)v; break;
    }
}

static int64_t get(const void *buf, rl_dtype_t dt, size_t i)
{
    switch (dt) {
    case RL_FLOAT32: return (int64_t)((const float *)buf)[i];
    case RL_FLOAT64: return (int64_t)((const double *)buf)[i];
    case RL_INT32: return ((const int32_t *)buf)[i];
    case RL_INT64: return ((const int64_t *)buf)[i];
    default: return ((const uint8_t *)buf)[i];
    }
}

static int64_t expect(const kind_t *k, size_t i, uint32_t salt)
{
    int64_t acc = val(0, i, salt);
    if (k->dt == RL_UINT8)
        acc = (uint8_t)acc;
    for (int r = 1; r < nranks; r++) {
        int64_t v = val(r, i, salt);
        switch (k->op) {
        case RL_SUM: acc += v; break;
        case RL_MAX: acc = v > acc ? v : acc; break;
        case RL_MIN: acc = v < acc ? v : acc; break;
        default: acc = (uint8_t)acc ^ (uint8_t)v; break;
        }
    }
    return acc;
}

/* One all-reduce from in to out (in == out: in place), checked. */
static void run(rl_comm_t comm, const kind_t *k, void *in, void *out, size_t count, uint32_t salt, const char *what)
{
    for (size_t i = 0; i < count; i++)
        put(in, k->dt, i, val(rank, i, salt));
    if (in != out)
        memset(out, 0x5a, count * rl_dtype_size(k->dt));
    rl_status_t st = rl_all_reduce(comm, in, out, count, k->dt, k->op);
    CHECK(st == RL_OK, "%s: all_reduce(%zu %s %s): %s: %s", what, count, rl_dtype_name(k->dt), rl_op_name(k->op),
          rl_status_name(st), rl_comm_last_error(comm));
    if (st != RL_OK)
        exit(1);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < count; i++) {
        if (get(out, k->dt, i) != expect(k, i, salt)) {
            if (!bad++)
                first = i;
        }
    }
    CHECK(!bad, "%s: all_reduce(%zu %s %s): %zu wrong elements, first at %zu: %lld, expected %lld", what, count,
          rl_dtype_name(k->dt), rl_op_name(k->op), bad, first, (long long)get(out, k->dt, first),
          (long long)expect(k, first, salt));
}

static size_t small_max(void) { return nranks <= 2 ? 4096 : 16384; }

int main(int argc, char **argv)
{
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            quick = 1;
        } else {
            printf("usage: shalloc_check [--quick]   (every rank; start with ringlet-run)\n"
                   "  all-reduces on rl_mem_alloc buffers checked element by element, in place and out of\n"
                   "  place, fallbacks, alloc/free cycles and rl_mem_free errors; exit 0 when all pass\n");
            return strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? 2 : 0;
        }
    }
    rl_comm_t comm;
    rl_status_t st = rl_comm_create(NULL, &comm);
    if (st != RL_OK) {
        fprintf(stderr, "rl_comm_create: %s: %s\n", rl_status_name(st), rl_comm_last_error(NULL));
        return 1;
    }
    rl_comm_rank(comm, &rank);
    rl_comm_size(comm, &nranks);
    size_t counts[] = {1, 17, 1031, 5001, 65537, 1000003};
    int ncounts = quick ? 5 : 6;
    size_t maxb = counts[ncounts - 1] * 8;
    /* sizes differ per rank */
    size_t slen = maxb + (size_t)rank * 8192 + (size_t)rank * 7, rlen = maxb + (size_t)rank * 3;
    void *sbuf = NULL, *rbuf = NULL;
    st = rl_mem_alloc(comm, slen, &sbuf);
    CHECK(st == RL_OK && sbuf, "rl_mem_alloc(%zu): %s: %s", slen, rl_status_name(st), rl_comm_last_error(comm));
    st = rl_mem_alloc(comm, rlen, &rbuf);
    CHECK(st == RL_OK && rbuf, "rl_mem_alloc(%zu): %s: %s", rlen, rl_status_name(st), rl_comm_last_error(comm));
    if (!sbuf || !rbuf)
        return 1;
    CHECK(((uintptr_t)sbuf & 4095) == 0, "rl_mem_alloc returned %p, not page-aligned", sbuf);
    for (size_t i = 0; i < slen; i++)
        if (((uint8_t *)sbuf)[i]) {
            CHECK(0, "rl_mem_alloc: byte %zu is not zero", i);
            break;
        }
    int candidates = 0;
    uint32_t salt = 0;
    for (int c = 0; c < ncounts; c++) {
        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
            const kind_t *kd = &kinds[k];
            size_t bytes = counts[c] * rl_dtype_size(kd->dt);
            run(comm, kd, sbuf, rbuf, counts[c], ++salt, "shared, out of place");
            run(comm, kd, rbuf, rbuf, counts[c], ++salt, "shared, in place");
            /* the same offsets into the allocations, inside on every rank */
            if (bytes + 4096 <= maxb)
                run(comm, kd, (char *)sbuf + 4096, (char *)rbuf + 64, counts[c], ++salt, "shared, at offsets");
            candidates += (bytes > small_max()) * (2 + (bytes + 4096 <= maxb));
        }
    }
    /* The last rank's send buffer is malloc'ed: every rank copies. */
    const kind_t f32 = {RL_FLOAT32, RL_SUM};
    size_t big = 70001;
    void *heap = malloc(big * 4);
    run(comm, &f32, rank == nranks - 1 ? heap : sbuf, rbuf, big, ++salt, "one rank's send buffer malloc'ed");
    /* Rank 0's call is larger than its allocation (40000 B, 40404 used,
     * inside the mapped page): it copies, so every rank does. */
    void *small = NULL;
    st = rl_mem_alloc(comm, rank == 0 ? 40000 : 50000, &small);
    CHECK(st == RL_OK, "rl_mem_alloc: %s", rl_comm_last_error(comm));
    if (small)
        run(comm, &f32, small, rbuf, 10101, ++salt, "rank 0's call exceeds its allocation");
    /* rl_mem_free refuses what rl_mem_alloc did not return */
    st = rl_mem_free(comm, heap);
    CHECK(st == RL_ERR_INVALID_ARG, "rl_mem_free(malloc'ed) returned %s", rl_status_name(st));
    st = rl_mem_free(comm, (char *)sbuf + 8);
    CHECK(st == RL_ERR_INVALID_ARG && strstr(rl_comm_last_error(comm), "rl_mem_free"),
          "rl_mem_free(inside an allocation) returned %s: %s", rl_status_name(st), rl_comm_last_error(comm));
    free(heap);
    st = rl_mem_free(comm, small);
    CHECK(st == RL_OK, "rl_mem_free: %s: %s", rl_status_name(st), rl_comm_last_error(comm));
    st = rl_mem_free(comm, small);
    CHECK(st == RL_ERR_INVALID_ARG, "rl_mem_free twice returned %s", rl_status_name(st));
    /* alloc/free cycles, zero bytes on one rank among them */
    for (int cyc = 0; cyc < 3; cyc++) {
        void *a = NULL, *b = NULL;
        size_t la = 300000 + (size_t)cyc * 65536 + (size_t)rank * 4096;
        CHECK(rl_mem_alloc(comm, la, &a) == RL_OK, "cycle %d: rl_mem_alloc: %s", cyc, rl_comm_last_error(comm));
        CHECK(rl_mem_alloc(comm, rank == 1 ? 0 : 1000, &b) == RL_OK && b, "cycle %d: rl_mem_alloc(0): %s", cyc,
              rl_comm_last_error(comm));
        if (a) {
            run(comm, &f32, a, rbuf, 70000 + (size_t)cyc * 1000, ++salt, "alloc/free cycle");
            run(comm, &f32, a, a, 75000, ++salt, "alloc/free cycle, in place");
            candidates += 1 + (75000 * 4 > small_max());
        }
        CHECK(rl_mem_free(comm, b) == RL_OK, "cycle %d: rl_mem_free: %s", cyc, rl_comm_last_error(comm));
        CHECK(rl_mem_free(comm, a) == RL_OK, "cycle %d: rl_mem_free: %s", cyc, rl_comm_last_error(comm));
    }
    /* The ranks free different allocations: RL_ERR_MISMATCH everywhere,
     * freed anyway, and the communicator still works. */
    if (nranks > 1) {
        void *x = NULL, *y = NULL;
        rl_mem_alloc(comm, 4096, &x);
        rl_mem_alloc(comm, 4096, &y);
        st = rl_mem_free(comm, rank % 2 ? x : y);
        CHECK(st == RL_ERR_MISMATCH && strstr(rl_comm_last_error(comm), "same order"),
              "rl_mem_free of different allocations returned %s: %s", rl_status_name(st), rl_comm_last_error(comm));
        st = rl_mem_free(comm, rank % 2 ? y : x);
        CHECK(st == RL_ERR_MISMATCH, "second rl_mem_free of different allocations returned %s", rl_status_name(st));
        run(comm, &f32, sbuf, rbuf, 100000, ++salt, "after a mismatched free");
        candidates++;
    }
    CHECK(rl_mem_free(comm, sbuf) == RL_OK, "rl_mem_free: %s", rl_comm_last_error(comm));
    CHECK(rl_mem_free(comm, rbuf) == RL_OK, "rl_mem_free: %s", rl_comm_last_error(comm));
    int64_t bad = failures;
    st = rl_all_reduce(comm, &bad, &bad, 1, RL_INT64, RL_SUM);
    if (rank == 0 && st == RL_OK)
        printf("zero-copy candidates: %d\n", nranks > 1 ? candidates : 0);
    rl_comm_destroy(comm);
    if (st != RL_OK || bad) {
        fprintf(stderr, "rank %d: %lld failures in the group\n", rank, (long long)bad);
        return 1;
    }
    printf("rank %d: shalloc checks passed\n", rank);
    return 0;
}
