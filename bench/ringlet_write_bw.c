/*
 * ringlet_write_bw: RDMA write bandwidth between two processes through
 * ringlet's transport table, perftest-style (ib_write_bw). Run the server
 * with no address, the client with the server's address; --help says more.
 *
 * Each write carries an immediate (the only write the transport table
 * offers, and what the collectives use), so the server polls its completion
 * queue throughout; per size the client then reports over the control
 * socket how many writes it completed, and the server confirms it received
 * as many and that the data landed.
 */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "ringlet_write_common.h"

enum { CTL_DONE = 10, CTL_ACK = 11 };

typedef struct {
    size_t bytes;
    long iters, total; /* timed writes; all writes, warm-up included */
    long imms;         /* writes with an immediate: what the server counts */
    double peak, avg, mpps; /* peak/avg in the report's unit */
} bw_row_t;

static double to_unit(const pt_t *p, double bytes_per_s)
{
    return p->o.gbits ? bytes_per_s * 8 / 1e9 : bytes_per_s / (1024.0 * 1024.0);
}

/* Untimed writes first: connections that finish setting up on first use
 * (libfabric rxm) and cold caches stay out of the first row. */
static int warm_up(pt_t *p, size_t len, long n)
{
    long target = p->sends_done + n;
    int64_t deadline = rl_now_ns() + p->timeout_ns;
    for (long i = 0; i < n; i++)
        if (pt_write(p, len, 0, 1))
            return 1;
    while (p->sends_done < target) {
        if (pt_poll(p))
            return 1;
        if (rl_now_ns() > deadline) {
            fprintf(stderr, "%s: warm-up writes did not complete in %d ms\n", p->o.prog, p->cfg.timeout_ms);
            return 1;
        }
    }
    return 0;
}

/* The client's timed loop for one size: keep tx_depth writes outstanding. */
static int client_size(pt_t *p, int k, bw_row_t *row)
{
    size_t len = p->sizes[k];
    int depth = p->o.tx_depth;
    long target = p->o.duration ? -1 : p->o.iters;
    /* Post times of the messages from the oldest of the last depth
     * completed to the newest posted: at most 2 * depth. */
    int slots = 2 * depth + 1;
    int64_t *posts = calloc((size_t)slots, sizeof(*posts));
    if (!posts)
        return 1;
    memset(p->buf, pt_pattern(k), len);
    long warm = k == 0 ? (depth < 64 ? depth : 64) : 0;
    if (warm_up(p, len, warm)) {
        free(posts);
        return 1;
    }
    long posted = 0, done0 = p->sends_done;
    double best = 0;
    int64_t t0 = rl_now_ns(), stop = t0 + (int64_t)p->o.duration * 1000000000LL, last = t0;
    int64_t progress = t0 + p->timeout_ns;
    int rc = 0;
    for (;;) {
        long done = p->sends_done - done0;
        int more = target < 0 ? rl_now_ns() < stop : posted < target;
        if (!more && done == posted)
            break;
        while (more && posted - done < depth) {
            posts[posted % slots] = rl_now_ns();
            if ((rc = pt_write(p, len, (uint32_t)posted, (posted + 1) % p->o.imm_every == 0)) != 0)
                goto out;
            posted++;
            more = target < 0 || posted < target;
        }
        if ((rc = pt_poll(p)) != 0)
            goto out;
        long now_done = p->sends_done - done0;
        int64_t now = rl_now_ns();
        /* Peak: depth messages, from the post of the first to the completion
         * of the last (completions arrive in batches; posts do not). */
        if (now_done >= depth && now_done > done) {
            int64_t first = posts[(now_done - depth) % slots];
            if (now > first) {
                double r = (double)depth * (double)len / ((double)(now - first) / 1e9);
                best = r > best ? r : best;
            }
        }
        if (now_done > done) {
            last = now;
            progress = now + p->timeout_ns;
        } else if (now > progress) {
            fprintf(stderr, "%s: no write completed for %d ms (%ld of %ld done)\n", p->o.prog, p->cfg.timeout_ms,
                    now_done, posted);
            rc = 1;
            goto out;
        }
    }
    /* with --imm-every, writes after the last immediate are announced by
     * a zero-length one (untimed) */
    long imms = warm + posted / p->o.imm_every;
    if (posted % p->o.imm_every) {
        long want = p->sends_done + 1;
        if ((rc = pt_write(p, 0, (uint32_t)posted, 1)) != 0)
            goto out;
        int64_t deadline = rl_now_ns() + p->timeout_ns;
        while (p->sends_done < want && rc == 0) {
            rc = pt_poll(p);
            if (rl_now_ns() > deadline) {
                fprintf(stderr, "%s: the closing write did not complete in %d ms\n", p->o.prog, p->cfg.timeout_ms);
                rc = 1;
            }
        }
        if (rc)
            goto out;
        imms++;
    }
    double secs = (double)(last - t0) / 1e9;
    double avg = secs > 0 ? (double)posted * (double)len / secs : 0;
    if (best == 0 || best < avg)
        best = avg; /* too few completions for a window */
    *row = (bw_row_t){.bytes = len, .iters = posted, .total = posted + warm, .imms = imms,
                      .peak = to_unit(p, best), .avg = to_unit(p, avg),
                      .mpps = secs > 0 ? (double)posted / secs / 1e6 : 0};
out:
    free(posts);
    return rc;
}

/* The server's side of one size: count immediates until the client says
 * how many it sent, then check the count and the data. */
static int server_size(pt_t *p, int k)
{
    long recv0 = p->recvs_done;
    uint64_t count = 0, dummy;
    int told = 0;
    int64_t progress = rl_now_ns() + p->timeout_ns;
    for (unsigned spin = 0;; spin++) {
        long before = p->recvs_done;
        if (pt_poll(p))
            return 1;
        int64_t now = rl_now_ns();
        if (p->recvs_done != before)
            progress = now + p->timeout_ns;
        if (!told && (spin % 1024 == 0 || p->recvs_done == before) && pt_ctl_ready(p)) {
            if (pt_recv_ctl(p, CTL_DONE, &count, &dummy, now + p->timeout_ns))
                return 1;
            told = 1;
        }
        if (told && (uint64_t)(p->recvs_done - recv0) >= count)
            break;
        if (now > progress) {
            fprintf(stderr, "%s: size %zu: no write arrived for %d ms (%ld received%s)\n", p->o.prog, p->sizes[k],
                    p->cfg.timeout_ms, p->recvs_done - recv0, told ? "" : ", client silent");
            return 1;
        }
    }
    long got = p->recvs_done - recv0;
    int bad = (uint64_t)got != count || pt_check_data(p, k, p->sizes[k]);
    if (bad && (uint64_t)got != count)
        fprintf(stderr, "%s: size %zu: %ld writes received, the client completed %llu\n", p->o.prog, p->sizes[k],
                got, (unsigned long long)count);
    printf(" %-10zu %-12ld received, data %s\n", p->sizes[k], got, bad ? "WRONG" : "checked");
    if (pt_send_ctl(p, CTL_ACK, (uint64_t)got, (uint64_t)bad))
        return 1;
    return bad;
}

static void print_header(const pt_t *p)
{
    const char *u = p->o.gbits ? "Gb/sec" : "MB/sec";
    printf(" #bytes     #iterations    BW peak[%s]    BW average[%s]   MsgRate[Mpps]\n", u, u);
}

static int write_json(const pt_t *p, const bw_row_t *rows, int n)
{
    FILE *f = fopen(p->o.json, "w");
    if (!f) {
        fprintf(stderr, "%s: cannot write %s\n", p->o.prog, p->o.json);
        return 1;
    }
    fprintf(f, "{\"test\": \"ringlet_write_bw\", \"transport\": \"%s\", \"qps\": %d, \"tx_depth\": %d,\n",
            p->ops->describe(p->tp), p->cfg.ib_qps_per_peer, p->o.tx_depth);
    fprintf(f, " \"unit\": \"%s\", \"results\": [", p->o.gbits ? "Gb/s (1e9 bits)" : "MB/s (2^20 bytes)");
    for (int i = 0; i < n; i++)
        fprintf(f, "%s\n  {\"bytes\": %zu, \"iterations\": %ld, \"bw_peak\": %.4f, \"bw_average\": %.4f, "
                   "\"msg_rate_mpps\": %.6f}",
                i ? "," : "", rows[i].bytes, rows[i].iters, rows[i].peak, rows[i].avg, rows[i].mpps);
    fprintf(f, "\n]}\n");
    return fclose(f) ? 1 : 0;
}

static int run_client(pt_t *p)
{
    bw_row_t rows[PT_MAX_SIZES];
    print_header(p);
    for (int k = 0; k < p->nsizes; k++) {
        uint64_t got, bad;
        if (client_size(p, k, &rows[k]) || pt_send_ctl(p, CTL_DONE, (uint64_t)rows[k].imms, 0) ||
            pt_recv_ctl(p, CTL_ACK, &got, &bad, rl_now_ns() + p->timeout_ns))
            return 1;
        if (bad || got != (uint64_t)rows[k].imms) {
            fprintf(stderr, "%s: size %zu: the server received %llu immediates of %ld%s\n", p->o.prog,
                    rows[k].bytes, (unsigned long long)got, rows[k].imms, bad ? " or wrong data" : "");
            return 1;
        }
        printf(" %-10zu %-14ld %-18.2f %-20.2f %.6f\n", rows[k].bytes, rows[k].iters, rows[k].peak, rows[k].avg,
               rows[k].mpps);
        fflush(stdout);
    }
    if (pt_client_bye(p))
        return 1;
    return p->o.json ? write_json(p, rows, p->nsizes) : 0;
}

int main(int argc, char **argv)
{
    static const pt_program_t prog = {PT_BW, "RDMA_Write BW Test (ringlet transport)", run_client, " #bytes     #writes", server_size};
    return pt_main(&prog, argc, argv);
}
