/* Which NIC each channel of a rank uses, from the fabric and the placement.
 *
 * Channel i runs on planned ring i mod K. The planner (plan.c) walks the m
 * ranks of a host in the order of their placed NICs' rails and crosses to
 * the next host between ranks of the same position in that order, so the
 * rank at position p of every host carries the hops between hosts of the
 * same rings. A rank owns the host's NICs at positions q = p mod m of the
 * host's NICs sorted by rail (its own NIC when the host has no more NICs
 * than ranks), and channel i takes owned NIC number (i / m) mod owned. Both
 * ends of a hop between hosts compute this from the same position and the
 * same channel, so on hosts with the same rails they pick the same rail,
 * and the channels share a rank's NICs evenly. */
#include <stdlib.h>
#include <string.h>

#include "topo/topo.h"

static int cmp_nic_rail(const void *a, const void *b, void *arg)
{
    const rl_topo_t *t = arg;
    int x = *(const int *)a, y = *(const int *)b;
    int rx = t->nics[x].rail, ry = t->nics[y].rail;
    return rx != ry ? (rx < ry ? -1 : 1) : x - y;
}

int rl_topo_chan_nics(const rl_topo_t *t, int rank, int nch, int *nic, char *why, size_t whylen)
{
    if (rank < 0 || rank >= t->nranks || nch < 1) {
        snprintf(why, whylen, "rank %d or %d channels out of range", rank, nch);
        return -1;
    }
    const rl_topo_place_t *me = &t->place[rank];
    const rl_topo_host_t *h = &t->hosts[me->host];
    if (h->nnics < 2) {
        snprintf(why, whylen, "host %s has %d NIC in the fabric", h->name, h->nnics);
        return -1;
    }
    /* my position among the host's ranks ordered by (placed NIC's rail, rank) */
    int m = 0, pos = 0, myrail = t->nics[me->nic].rail;
    for (int r = 0; r < t->nranks; r++) {
        if (t->place[r].host != me->host)
            continue;
        m++;
        int rr = t->nics[t->place[r].nic].rail;
        pos += rr < myrail || (rr == myrail && r < rank);
    }
    int nn = h->nnics, *sorted = malloc(sizeof(int) * (size_t)nn), owned = 0;
    if (!sorted) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    for (int q = 0; q < nn; q++)
        sorted[q] = h->first_nic + q;
    qsort_r(sorted, (size_t)nn, sizeof(int), cmp_nic_rail, (void *)t);
    for (int q = 0; q < nn; q++) /* compact the owned NICs to the front */
        if (nn <= m ? t->place[rank].nic == sorted[q] : q % m == pos)
            sorted[owned++] = sorted[q];
    for (int i = 0; i < nch; i++)
        nic[i] = sorted[(i / m) % owned];
    free(sorted);
    return owned;
}

int rl_topo_chan_count(const rl_topo_t *t, int nrings)
{
    int *m = calloc((size_t)(t->nhosts ? t->nhosts : 1), sizeof(int)), per = 1;
    if (!m)
        return nrings;
    for (int r = 0; r < t->nranks; r++)
        m[t->place[r].host]++;
    for (int h = 0; h < t->nhosts; h++)
        if (m[h] && t->hosts[h].nnics > m[h]) {
            int own = (t->hosts[h].nnics + m[h] - 1) / m[h];
            per = own > per ? own : per;
        }
    free(m);
    int n = nrings * per;
    return n > 64 ? 64 : n;
}

void rl_topo_chan_print(const rl_topo_t *t, const rl_topo_plan_t *p, FILE *out)
{
    int multi = 0;
    for (int h = 0; h < t->nhosts; h++)
        multi |= t->hosts[h].nnics > 1;
    if (!multi || p->nrings < 1)
        return;
    int nch = rl_topo_chan_count(t, p->nrings), show = p->nranks <= 64 ? p->nranks : 16;
    int *nic = malloc(sizeof(int) * (size_t)nch * (size_t)show);
    if (!nic)
        return;
    char why[128];
    for (int r = 0; r < show; r++)
        if (rl_topo_chan_nics(t, r, nch, nic + (size_t)r * nch, why, sizeof(why)) < 0)
            for (int i = 0; i < nch; i++) /* a one-NIC host: every channel on its NIC */
                nic[(size_t)r * nch + i] = t->place[r].nic;
    fprintf(out, "# NIC of each channel (channel i runs on ring i mod %d), rank 0 first:\n", p->nrings);
    for (int i = 0; i < nch; i++) {
        fprintf(out, "channel %d (ring %d) NICs:", i, i % p->nrings);
        for (int r = 0; r < show; r++) {
            const rl_topo_nic_t *n = &t->nics[nic[(size_t)r * nch + i]];
            fprintf(out, "%s%s/rail%d", r ? "," : " ", n->dev, n->rail);
        }
        fprintf(out, "%s\n", show < p->nranks ? ",..." : "");
    }
    free(nic);
}

rl_status_t rl_topo_chan_devs_file(const char *path, int nranks, const char *const *names, int rank, int nch,
                                   char (*dev)[32], char *why, size_t whylen)
{
    rl_topo_t t;
    char e[400];
    if (rl_topo_load(path, &t, e, sizeof(e)) != RL_OK) {
        snprintf(why, whylen, "%s", e);
        return RL_ERR_CONFIG;
    }
    rl_status_t st = RL_ERR_CONFIG;
    int *nic = malloc(sizeof(int) * (size_t)(nch > 0 ? nch : 1));
    if (!nic)
        st = RL_ERR_NO_MEMORY;
    else if (names && rl_topo_place_hosts(&t, nranks, names) >= 0)
        snprintf(why, whylen, "the file lacks a rank's host");
    else if (t.nranks != nranks)
        snprintf(why, whylen, "the file places %d ranks, the group has %d", t.nranks, nranks);
    else if (names && rl_topo_finish(&t, e, sizeof(e)) != RL_OK)
        snprintf(why, whylen, "%s", e);
    else if (rl_topo_chan_nics(&t, rank, nch, nic, why, whylen) >= 0) {
        for (int i = 0; i < nch; i++)
            snprintf(dev[i], sizeof(dev[i]), "%s", t.nics[nic[i]].dev);
        st = RL_OK;
    }
    free(nic);
    rl_topo_free(&t);
    return st;
}
