#include <criterion/criterion.h>

#include "coll/geom.h"
#include "coll/wire.h"

/* The parts of a split tile the range exactly, in order, sizes within one. */
Test(geom, split_tiles_the_range)
{
    const uint64_t lens[] = {0, 1, 2, 5, 7, 64, 1031, 1000003};
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++)
        for (uint64_t n = 1; n <= 9; n++) {
            uint64_t next = 0, mn = UINT64_MAX, mx = 0;
            for (uint64_t i = 0; i < n; i++) {
                uint64_t off, part;
                rl_split(lens[l], n, i, &off, &part);
                cr_assert_eq(off, next, "len %llu n %llu part %llu", (unsigned long long)lens[l],
                             (unsigned long long)n, (unsigned long long)i);
                next = off + part;
                mn = part < mn ? part : mn;
                mx = part > mx ? part : mx;
            }
            cr_assert_eq(next, lens[l]);
            cr_assert_leq(mx - mn, 1);
        }
}

Test(geom, chunks_respect_the_chunk_size)
{
    /* 1 MiB block of floats, 256 KiB chunks -> 4 chunks. */
    cr_assert_eq(rl_geom_nchunks(1 << 18, 4, 256 << 10, 6, RL_IMM_INDEX_MAX), 4);
    /* Not a multiple: rounds up. */
    cr_assert_eq(rl_geom_nchunks((1 << 18) + 1, 4, 256 << 10, 6, RL_IMM_INDEX_MAX), 5);
    /* Empty block still has one (empty) chunk. */
    cr_assert_eq(rl_geom_nchunks(0, 4, 4096, 2, RL_IMM_INDEX_MAX), 1);
    /* Element bigger than the chunk: one element per chunk. */
    cr_assert_eq(rl_geom_nchunks(10, 8, 4, 2, RL_IMM_INDEX_MAX), 10);
}

Test(geom, unit_count_never_overflows_the_immediate)
{
    uint64_t steps = 8;
    uint64_t nc = rl_geom_nchunks(1ull << 40, 1, 4096, steps, RL_IMM_INDEX_MAX);
    cr_assert_leq(nc * steps, RL_IMM_INDEX_MAX);
    cr_assert_geq(nc, 1);
}

Test(geom, small_blocks_are_cut_finer_to_pipeline)
{
    /* 1 MiB block of floats, 512 KiB chunks: 2 by size, 4 to fill the pipeline. */
    cr_assert_eq(rl_geom_nchunks_min(1 << 18, 4, 512 << 10, 4, 64 << 10, 6, RL_IMM_INDEX_MAX), 4);
    /* 128 KiB block: only two 64 KiB chunks fit the floor. */
    cr_assert_eq(rl_geom_nchunks_min(1 << 15, 4, 512 << 10, 4, 64 << 10, 6, RL_IMM_INDEX_MAX), 2);
    /* Below the floor: one chunk. */
    cr_assert_eq(rl_geom_nchunks_min(1 << 12, 4, 512 << 10, 4, 64 << 10, 6, RL_IMM_INDEX_MAX), 1);
    /* Large blocks are cut by the chunk size alone. */
    cr_assert_eq(rl_geom_nchunks_min(1 << 22, 4, 512 << 10, 4, 64 << 10, 6, RL_IMM_INDEX_MAX), 32);
    /* Empty block. */
    cr_assert_eq(rl_geom_nchunks_min(0, 4, 512 << 10, 4, 64 << 10, 6, RL_IMM_INDEX_MAX), 1);
}
