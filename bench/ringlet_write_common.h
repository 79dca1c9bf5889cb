/*
 * Shared part of the perftest-style point-to-point benchmarks
 * (ringlet_write_bw, ringlet_write_lat): options, the control socket between
 * server and client, and the set-up of one connection through ringlet's
 * transport table (lib/transport/transport.h), whichever backend opens.
 *
 * The server is started with no address and waits; the client is given the
 * server's address. The client's run shape (sizes, iterations, duration,
 * QPs, window) is sent to the server, which follows it, so only the device
 * options need to be given to both.
 */
#ifndef RINGLET_BENCH_WRITE_COMMON_H
#define RINGLET_BENCH_WRITE_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"
#include "transport/transport.h"

typedef enum { PT_BW = 1, PT_LAT = 2 } pt_kind_t;

#define PT_MAX_SIZE (1ull << 30)
#define PT_MAX_SIZES 32

typedef struct {
    pt_kind_t kind;
    const char *prog;
    const char *server;     /* client: the server's address; NULL: be the server */
    char dev[200];          /* -d */
    int ib_port;            /* -i, 0: any */
    int gid_index;          /* -x, -1: RINGLET_IB_GID_INDEX */
    size_t size;            /* -s */
    int all_sizes;          /* -a */
    long iters;             /* -n */
    int duration;           /* -D seconds; 0: -n iterations */
    int qps;                /* -q, 0: RINGLET_IB_QPS_PER_PEER */
    int tx_depth;           /* -t */
    int imm_every;          /* --imm-every: 1 in N writes carries an immediate */
    int gbits;              /* --report_gbits */
    int port;               /* -p */
    int rdmacm;             /* -R */
    char transport[32];     /* -T, "": RINGLET_TRANSPORT */
    const char *json;       /* --json */
} pt_opts_t;

/* One connection and its registered buffer. */
typedef struct {
    pt_opts_t o;
    int sock;               /* control socket to the peer */
    int is_server;
    rl_config_t cfg;
    const rl_tp_ops_t *ops;
    rl_tp_t *tp;
    rl_tp_conn_t *conn;
    void *buf;              /* registered, size_t buf_len bytes */
    size_t buf_len;
    rl_tp_mr_t *mr;
    rl_rkey_t peer;         /* the peer's buffer */
    size_t sizes[PT_MAX_SIZES];
    int nsizes;
    long sends_done, recvs_done; /* completions seen by pt_poll */
    uint32_t last_imm;
    int64_t timeout_ns;     /* longest wait without progress */
    int64_t spin_ns;        /* busy-poll this long, then sleep on the CQ */
    int64_t idle_since;     /* first empty poll of the current run, 0: busy */
} pt_t;

/* Parse argv. Returns 0 to run, 1 after --help, 2 on a usage error. */
int pt_parse(pt_opts_t *o, pt_kind_t kind, int argc, char **argv);
/* Control connection, run-shape exchange, transport, buffer, connection.
 * Returns 0 or prints why and returns 1. */
int pt_setup(pt_t *p);
void pt_teardown(pt_t *p);
/* Drain completions (never blocks). Returns 0, or 1 after printing a
 * completion error. */
int pt_poll(pt_t *p);
/* One write of len bytes at offset 0 to the peer's buffer; retries while
 * the send queue is full (polling). Returns 0 or 1 (printed). */
/* A write of len bytes to the peer's buffer, with immediate data unless
 * with_imm is 0 (and the transport has plain writes). */
int pt_write(pt_t *p, size_t len, uint32_t imm, int with_imm);
/* Control messages: a tag and two values. Returns 0 or 1 (printed). */
int pt_send_ctl(pt_t *p, uint32_t tag, uint64_t a, uint64_t b);
int pt_recv_ctl(pt_t *p, uint32_t want_tag, uint64_t *a, uint64_t *b, int64_t deadline_ns);
/* Whether a control message is waiting (poll with no timeout). */
int pt_ctl_ready(pt_t *p);
/* The pattern byte the client writes for size index k; checked by the server. */
static inline unsigned char pt_pattern(int k) { return (unsigned char)(0x5a ^ (k * 37 + 1)); }
/* Check the first and last byte of a received size. Returns 0 or 1 (printed). */
int pt_check_data(pt_t *p, int k, size_t len);
/* Median / percentile of sorted v[0..n). */
double pt_percentile(const double *v, size_t n, double p);
/* The header lines perftest prints before its table. */
void pt_print_banner(const pt_t *p, const char *title);

/* What a program adds to the shared skeleton: the client's table (it ends
 * with pt_client_bye), the server's column header and one size served. */
typedef struct {
    pt_kind_t kind;
    const char *title;
    int (*run_client)(pt_t *p);
    const char *server_header;
    int (*server_size)(pt_t *p, int k);
} pt_program_t;
/* Client: tell the server the run is over and wait for its answer. */
int pt_client_bye(pt_t *p);
/* Parse, set up, run as client or server, tear down; the exit status. */
int pt_main(const pt_program_t *prog, int argc, char **argv);

#endif
