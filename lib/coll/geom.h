/*
 * Ring geometry: how an operation's elements split into channels, blocks
 * (one per ring position) and pipelined chunks. Pure arithmetic, shared by
 * sender and receiver so both sides agree without talking.
 */
#ifndef RL_GEOM_H
#define RL_GEOM_H

#include <stddef.h>
#include <stdint.h>

/* Part i of n of a range of len elements: [*off, *off + *len), sizes differ
 * by at most one, larger parts first. */
void rl_split(uint64_t len, uint64_t n, uint64_t i, uint64_t *off, uint64_t *part);

typedef struct {
    int nranks;
    uint64_t lo, len;       /* the channel's element range (all-reduce) or per-rank
                               block slice (all-gather) */
    uint64_t nchunks;       /* chunks per block */
    uint64_t steps;         /* ring steps */
    uint64_t units;         /* steps * nchunks */
} rl_geom_t;

/* Chunks per block so that no chunk exceeds chunk_bytes and the unit count
 * fits the immediate's index field. */
uint64_t rl_geom_nchunks(uint64_t max_block_elems, size_t esize, size_t chunk_bytes, uint64_t steps,
                         uint64_t max_units);
/* The same, but with at least min_chunks chunks per block as long as each
 * stays at least min_chunk_bytes (so that small blocks still pipeline). */
uint64_t rl_geom_nchunks_min(uint64_t max_block_elems, size_t esize, size_t chunk_bytes, uint64_t min_chunks,
                             size_t min_chunk_bytes, uint64_t steps, uint64_t max_units);

#endif
