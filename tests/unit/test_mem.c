/* rl_mem_register checks the range before any provider sees it (1-rank
 * comm: no provider at all, so only the check can refuse). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ringlet.h"

static rl_comm_t comm;

static void setup(void)
{
    rl_comm_opts_t o = {.struct_size = sizeof(o), .rank = 0, .nranks = 1};
    cr_assert_eq(rl_comm_create(&o, &comm), RL_OK);
}
static void teardown(void) { cr_assert_eq(rl_comm_destroy(comm), RL_OK); }

TestSuite(mem, .init = setup, .fini = teardown);

static void refused(void *buf, size_t len, const char *what)
{
    rl_mem_t m = NULL;
    cr_assert_eq(rl_mem_register(comm, buf, len, &m), RL_ERR_INVALID_ARG, "%s was accepted", what);
    cr_assert_null(m, "%s: the output was set", what);
    cr_assert(strstr(rl_comm_last_error(comm), "rl_mem_register("), "%s: message '%s'", what,
              rl_comm_last_error(comm));
}

Test(mem, ranges_that_cannot_be_written)
{
    char buf[64];
    refused(buf, SIZE_MAX, "(buf, SIZE_MAX)");
    refused((void *)16, 4096, "((void *)16, 4096)");
    long pg = sysconf(_SC_PAGESIZE);
    char *ro = mmap(NULL, (size_t)pg * 3, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(ro, MAP_FAILED);
    cr_assert_eq(mprotect(ro + pg, (size_t)pg, PROT_READ), 0);
    refused(ro + pg, 16, "a read-only page");
    refused(ro, (size_t)pg * 2, "a range reaching into a read-only page");
    cr_assert_eq(munmap(ro + pg, (size_t)pg), 0);
    refused(ro, (size_t)pg * 3, "a range over an unmapped hole");
    munmap(ro, (size_t)pg);
    munmap(ro + 2 * pg, (size_t)pg);
}

Test(mem, writable_ranges_are_accepted)
{
    size_t len = 3u << 20;
    char *heap = malloc(len);
    cr_assert(heap);
    rl_mem_t m;
    cr_assert_eq(rl_mem_register(comm, heap, len, &m), RL_OK, "%s", rl_comm_last_error(comm));
    cr_assert_eq(rl_mem_deregister(comm, m), RL_OK);
    char stack[100];
    cr_assert_eq(rl_mem_register(comm, stack + 1, sizeof(stack) - 1, &m), RL_OK, "%s", rl_comm_last_error(comm));
    cr_assert_eq(rl_mem_deregister(comm, m), RL_OK);
    free(heap);
}

/* rl_mem_alloc on one rank: zeroed, page-aligned, writable memory that
 * rl_mem_free takes back once; other pointers are refused; outputs are set
 * only on success. */
Test(mem, shared_alloc_and_free)
{
    void *p = NULL, *z = NULL;
    cr_assert_eq(rl_mem_alloc(comm, 10000, &p), RL_OK, "%s", rl_comm_last_error(comm));
    cr_assert(p && ((uintptr_t)p & 4095) == 0);
    for (int i = 0; i < 10000; i++)
        cr_assert_eq(((unsigned char *)p)[i], 0, "byte %d is not zero", i);
    memset(p, 0x7f, 10000);
    cr_assert_eq(rl_mem_alloc(comm, 0, &z), RL_OK, "%s", rl_comm_last_error(comm));
    cr_assert(z && z != p);
    float one = 1, out = 0;
    cr_assert_eq(rl_all_reduce(comm, &one, &out, 1, RL_FLOAT32, RL_SUM), RL_OK);
    cr_assert_eq(rl_mem_free(comm, (char *)p + 4096), RL_ERR_INVALID_ARG);
    cr_assert(strstr(rl_comm_last_error(comm), "rl_mem_free("), "%s", rl_comm_last_error(comm));
    cr_assert_eq(rl_mem_free(comm, NULL), RL_ERR_INVALID_ARG);
    cr_assert_eq(rl_mem_free(comm, p), RL_OK);
    cr_assert_eq(rl_mem_free(comm, p), RL_ERR_INVALID_ARG, "a second free was accepted");
    cr_assert_eq(rl_mem_free(comm, z), RL_OK);
    void *q = (void *)1;
    cr_assert_eq(rl_mem_alloc(comm, 10, NULL), RL_ERR_INVALID_ARG);
    cr_assert_eq(rl_mem_alloc(comm, (size_t)1 << 50, &q), RL_ERR_INVALID_ARG);
    cr_assert_eq(q, (void *)1, "the output was set on failure");
    cr_assert_eq(rl_mem_alloc(NULL, 10, &q), RL_ERR_INVALID_ARG);
}
