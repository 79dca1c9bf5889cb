#include "coll/geom.h"

void rl_split(uint64_t len, uint64_t n, uint64_t i, uint64_t *off, uint64_t *part)
{
    uint64_t base = len / n, rem = len % n;
    *off = base * i + (i < rem ? i : rem);
    *part = base + (i < rem ? 1 : 0);
}

uint64_t rl_geom_nchunks(uint64_t max_block_elems, size_t esize, size_t chunk_bytes, uint64_t steps,
                         uint64_t max_units)
{
    return rl_geom_nchunks_min(max_block_elems, esize, chunk_bytes, 1, 1, steps, max_units);
}

uint64_t rl_geom_nchunks_min(uint64_t max_block_elems, size_t esize, size_t chunk_bytes, uint64_t min_chunks,
                             size_t min_chunk_bytes, uint64_t steps, uint64_t max_units)
{
    uint64_t per = chunk_bytes / esize;
    if (per == 0)
        per = 1;
    uint64_t n = (max_block_elems + per - 1) / per;
    /* A block smaller than the pipeline would go round the ring as one
     * chunk per step with nothing overlapping: cut it finer, down to
     * min_chunk_bytes, so that `min_chunks` chunks are in flight. */
    uint64_t floor_elems = min_chunk_bytes / esize ? min_chunk_bytes / esize : 1;
    if (n < min_chunks) {
        uint64_t fine = max_block_elems / floor_elems;
        n = fine < min_chunks ? (fine > n ? fine : n) : min_chunks;
    }
    if (n == 0)
        n = 1;
    if (steps && n * steps > max_units)
        n = max_units / steps; /* bigger chunks rather than an index overflow */
    return n ? n : 1;
}
