/*
 * ringlet_write_lat: RDMA write latency between two processes through
 * ringlet's transport table, perftest-style (ib_write_lat): a ping-pong of
 * writes with immediate data (the immediate is the iteration number, echoed
 * back and checked); half of each round trip is one sample. Run the server
 * with no address, the client with the server's address; --help says more.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "ringlet_write_common.h"

#define END_IMM 0xffffffffu /* client -> server: this size is over */

typedef struct {
    size_t bytes;
    long iters;
    double tmin, tmax, typical, avg, stdev, p99, p999;
} lat_row_t;

/* Poll until one more immediate arrives. Returns 0 or 1 (printed). */
static int wait_imm(pt_t *p, uint32_t *imm)
{
    long want = p->recvs_done + 1;
    int64_t deadline = rl_now_ns() + p->timeout_ns;
    for (unsigned spin = 0; p->recvs_done < want; spin++) {
        if (pt_poll(p))
            return 1;
        if ((spin & 1023) == 0 && rl_now_ns() > deadline) {
            fprintf(stderr, "%s: the peer did not answer for %d ms\n", p->o.prog, p->cfg.timeout_ms);
            return 1;
        }
    }
    *imm = p->last_imm;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void stats(double *v, long n, lat_row_t *r)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    double sum = 0, sq = 0;
    for (long i = 0; i < n; i++)
        sum += v[i];
    double avg = sum / (double)n;
    for (long i = 0; i < n; i++)
        sq += (v[i] - avg) * (v[i] - avg);
    r->tmin = v[0];
    r->tmax = v[n - 1];
    r->typical = pt_percentile(v, (size_t)n, 0.5);
    r->avg = avg;
    r->stdev = sqrt(sq / (double)n);
    r->p99 = pt_percentile(v, (size_t)n, 0.99);
    r->p999 = pt_percentile(v, (size_t)n, 0.999);
}

static int client_size(pt_t *p, int k, lat_row_t *row)
{
    size_t len = p->sizes[k];
    long warm = p->o.duration ? 100 : (p->o.iters / 10 < 100 ? p->o.iters / 10 : 100);
    long cap = p->o.duration ? 4096 : p->o.iters, n = 0;
    double *v = malloc((size_t)cap * sizeof(*v));
    if (!v)
        return 1;
    memset(p->buf, pt_pattern(k), len);
    int64_t stop = rl_now_ns() + (int64_t)p->o.duration * 1000000000LL;
    int rc = 0;
    for (uint32_t i = 0;; i++) {
        if (p->o.duration ? (i >= warm && rl_now_ns() >= stop) : n >= p->o.iters)
            break;
        if (n == cap) {
            double *nv = realloc(v, (size_t)cap * 2 * sizeof(*v));
            if (!nv) {
                rc = 1;
                break;
            }
            v = nv;
            cap *= 2;
        }
        uint32_t got;
        int64_t t0 = rl_now_ns();
        if ((rc = pt_write(p, len, i, 1)) != 0 || (rc = wait_imm(p, &got)) != 0)
            break;
        int64_t t1 = rl_now_ns();
        if (got != i) {
            fprintf(stderr, "%s: the server echoed immediate %u for %u\n", p->o.prog, got, i);
            rc = 1;
            break;
        }
        if (i >= warm)
            v[n++] = (double)(t1 - t0) / 2e3;
    }
    /* The server checks that the data arrived (its echo writes our own
     * pattern back, so checking here would prove nothing). */
    uint32_t end = 0;
    if (!rc)
        rc = pt_write(p, 0, END_IMM, 1) || wait_imm(p, &end);
    if (!rc && end != END_IMM) {
        fprintf(stderr, "%s: the server answered the end of size %zu with %u\n", p->o.prog, len, end);
        rc = 1;
    }
    if (!rc && n == 0) {
        fprintf(stderr, "%s: no timed iteration\n", p->o.prog);
        rc = 1;
    }
    if (!rc) {
        row->bytes = len;
        row->iters = n;
        stats(v, n, row);
    }
    free(v);
    return rc;
}

static int server_check(pt_t *p, int k)
{
    int bad = pt_check_data(p, k, p->sizes[k]);
    printf(" %-10zu data %s\n", p->sizes[k], bad ? "WRONG" : "checked");
    return bad;
}

/* Echo every write until the client ends the size. */
static int server_size(pt_t *p, int k)
{
    size_t len = p->sizes[k];
    for (uint32_t expect = 0;; expect++) {
        uint32_t imm;
        if (wait_imm(p, &imm))
            return 1;
        if (imm == END_IMM) { /* check, then answer: the client's next size overwrites the buffer */
            int bad = server_check(p, k);
            return pt_write(p, 0, END_IMM, 1) || bad;
        }
        if (imm != expect) {
            fprintf(stderr, "%s: size %zu: immediate %u arrived, expected %u\n", p->o.prog, len, imm, expect);
            return 1;
        }
        if (pt_write(p, len, imm, 1))
            return 1;
    }
}

static int write_json(const pt_t *p, const lat_row_t *r, int n)
{
    FILE *f = fopen(p->o.json, "w");
    if (!f) {
        fprintf(stderr, "%s: cannot write %s\n", p->o.prog, p->o.json);
        return 1;
    }
    fprintf(f, "{\"test\": \"ringlet_write_lat\", \"transport\": \"%s\", \"unit\": \"usec\", \"results\": [",
            p->ops->describe(p->tp));
    for (int i = 0; i < n; i++)
        fprintf(f, "%s\n  {\"bytes\": %zu, \"iterations\": %ld, \"t_min\": %.3f, \"t_max\": %.3f, "
                   "\"t_typical\": %.3f, \"t_avg\": %.3f, \"t_stdev\": %.3f, \"p99\": %.3f, \"p99_9\": %.3f}",
                i ? "," : "", r[i].bytes, r[i].iters, r[i].tmin, r[i].tmax, r[i].typical, r[i].avg, r[i].stdev,
                r[i].p99, r[i].p999);
    fprintf(f, "\n]}\n");
    return fclose(f) ? 1 : 0;
}

static int run_client(pt_t *p)
{
    lat_row_t rows[PT_MAX_SIZES];
    printf(" #bytes #iterations    t_min[usec]    t_max[usec]  t_typical[usec]    t_avg[usec]    t_stdev[usec]"
           "   99%% percentile[usec]   99.9%% percentile[usec]\n");
    for (int k = 0; k < p->nsizes; k++) {
        if (client_size(p, k, &rows[k]))
            return 1;
        lat_row_t *r = &rows[k];
        printf(" %-7zu %-10ld %-14.2f %-14.2f %-16.2f %-14.2f %-16.2f %-22.2f %.2f\n", r->bytes, r->iters, r->tmin,
               r->tmax, r->typical, r->avg, r->stdev, r->p99, r->p999);
        fflush(stdout);
    }
    if (pt_client_bye(p))
        return 1;
    return p->o.json ? write_json(p, rows, p->nsizes) : 0;
}

int main(int argc, char **argv)
{
    static const pt_program_t prog = {PT_LAT, "RDMA_Write Latency Test (ringlet transport)", run_client, " #bytes     echoed", server_size};
    return pt_main(&prog, argc, argv);
}
