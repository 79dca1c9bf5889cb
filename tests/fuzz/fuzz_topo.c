/* libFuzzer target: the fabric readers (ringlet JSON, Slurm topology.conf,
 * NCCL topology XML). The first byte picks the reader; whatever a reader
 * accepts must plan, save and load back to the same fabric. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "topo/topo.h"

static void check_accepted(rl_topo_t *t)
{
    char err[512];
    if (t->nranks > 256 || t->nsw > 256)
        return; /* keep iterations fast */
    rl_topo_plan_t p;
    if (rl_topo_plan(t, 0, &p, err, sizeof(err)) == RL_OK) {
        char *seen = calloc((size_t)t->nranks, 1);
        for (int c = 0; c < p.nrings; c++)
            for (int i = 0; i < t->nranks; i++) {
                int r = p.order[(size_t)c * t->nranks + i];
                if (r < 0 || r >= t->nranks || seen[r] != c)
                    abort(); /* not a permutation */
                seen[r]++;
            }
        free(seen);
        if (!(p.util >= p.util_bound * (1 - 1e-9)))
            abort(); /* beat the lower bound: one of them is wrong */
        rl_topo_plan_free(&p);
    }
    /* rl_topo_save writes a path: go through a temporary file */
    char path[] = "/tmp/fuzz_topoXXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return;
    close(fd);
    rl_topo_t u;
    if (rl_topo_save(t, path, err, sizeof(err)) != RL_OK || rl_topo_load(path, &u, err, sizeof(err)) != RL_OK)
        abort(); /* what we read we must be able to write and read again */
    if (u.nsw != t->nsw || u.nhosts != t->nhosts || u.nlinks != t->nlinks || u.nranks != t->nranks)
        abort();
    rl_topo_free(&u);
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char err[512];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    rl_topo_t t;
    switch (data[0] % 3) {
    case 0:
        if (rl_topo_parse_json(text, len, "fuzz.json", &t, err, sizeof(err)) == RL_OK) {
            check_accepted(&t);
            rl_topo_free(&t);
        }
        break;
    case 1:
        if (rl_topo_parse_slurm(text, len, "topology.conf", 100, &t, err, sizeof(err)) == RL_OK) {
            check_accepted(&t);
            rl_topo_free(&t);
        }
        break;
    default: {
        rl_topo_nic_tmpl_t nics[16];
        int n;
        if (rl_topo_parse_nccl(text, len, "topo.xml", nics, 16, &n, err, sizeof(err)) == RL_OK && (n < 1 || n > 16))
            abort();
        break;
    }
    }
    return 0;
}
