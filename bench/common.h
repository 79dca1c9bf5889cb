/*
 * Shared driver for the nccl-tests-style benchmarks (all_reduce_perf,
 * all_gather_perf): options, the size loop, timing, checking, the table and
 * the JSON report. A benchmark program describes its collective in a
 * bench_coll_t and calls bench_main().
 */
#ifndef RINGLET_BENCH_COMMON_H
#define RINGLET_BENCH_COMMON_H

#include <stddef.h>
#include <stdio.h>

#include "ringlet.h"

/* Command-line options (see bench_usage()). */
typedef struct {
    size_t min_bytes;      /* -b */
    size_t max_bytes;      /* -e */
    size_t step_factor;    /* -f, used when step_bytes == 0 */
    size_t step_bytes;     /* -i */
    int iters;             /* -n */
    int warmup;            /* -w */
    int check;             /* -c */
    int all_dtypes;        /* -d all */
    rl_dtype_t dtype;      /* -d */
    int all_ops;           /* -o all */
    rl_op_t op;            /* -o */
    int blocking;          /* -z */
    int reg;               /* -R */
    int shared;            /* -A shared: buffers from rl_mem_alloc */
    int root;              /* -r (rooted collectives) */
    const char *json_path; /* --json */
} bench_opts_t;

/* One benchmark's shape for one row of the table. */
typedef struct {
    rl_comm_t comm;
    int rank, nranks;
    rl_dtype_t dtype;
    rl_op_t op;            /* ignored by collectives without one */
    int root;              /* rooted collectives; else -1 */
    size_t esize;          /* bytes per element */
    size_t count;          /* the "count" column */
    size_t bytes;          /* the "size" column and algbw's byte count */
    size_t send_count;     /* elements each rank passes as its input */
    size_t recv_count;     /* elements in the output buffer */
    int blocking;
} bench_row_t;

typedef struct {
    const char *name;      /* "all_reduce" */
    int has_op;            /* prints redop; -o is meaningful */
    int has_root;          /* prints root; -r is meaningful */
    const char *bus_formula; /* "2(n-1)/n", "(n-1)/n", "1" for the header */
    /* busbw = algbw * bus_factor(nranks) */
    double (*bus_factor)(int nranks);
    /* Fill send/recv counts, count and bytes from the requested size; leaves
     * count 0 when the size is too small for one element per rank. */
    void (*shape)(bench_row_t *row, size_t req_bytes);
    /* Where the input lives for an in-place call, given the output buffer;
     * NULL when the collective has no in-place form (columns show N/A). */
    void *(*in_place_input)(const bench_row_t *row, void *recvbuf);
    /* Optional: where the output lives for an in-place call (default: the
     * output buffer itself). */
    void *(*in_place_output)(const bench_row_t *row, void *recvbuf);
    /* Start (blocking: run) one operation. *fn names the rl_ call. */
    rl_status_t (*start)(const bench_row_t *row, const void *sendbuf,
                         void *recvbuf, rl_request_t *req, const char **fn);
    /* Write this rank's input pattern into buf (send_count elements). */
    void (*fill)(const bench_row_t *row, void *buf);
    /* Number of wrong elements in this rank's output. */
    size_t (*check)(const bench_row_t *row, const void *recvbuf);
} bench_coll_t;

/* Run a benchmark program; returns the process exit status. */
int bench_main(const bench_coll_t *coll, int argc, char **argv);

/* Parse options. Returns 0, 1 for --help, -1 on error (message in err). */
int bench_parse_args(bench_opts_t *o, const bench_coll_t *coll, int argc,
                     char **argv, char *err, size_t errlen);
void bench_usage(FILE *out, const char *prog, const bench_coll_t *coll);
/* "64", "4K", "1M", "2G" (powers of 1024). Returns 0 or -1. */
int bench_parse_size(const char *s, size_t *out);

/* Table pieces, also used by tests. */
void bench_print_table_header(FILE *out);
typedef struct {
    double time_us, algbw, busbw;
    long long wrong; /* < 0: not checked */
} bench_result_t;
void bench_print_row(FILE *out, const bench_row_t *row, const bench_coll_t *coll,
                     const bench_result_t *oop, const bench_result_t *ip);
/* algbw and busbw in GB/s (1e9 B/s) for bytes moved in time_us. */
void bench_bandwidth(const bench_coll_t *coll, size_t bytes, int nranks,
                     double time_us, double *algbw, double *busbw);
/* Median of n values (sorts v). */
double bench_median(double *v, size_t n);

/*
 * Test data, exact in every type. bench_value() is rank r's element i for
 * op (sums of up to the given nranks stay exact, products stay powers of 2
 * of small magnitude); bench_expected() is the reduction over all ranks.
 * Values go through double: every value used is exactly representable.
 */
double bench_value(rl_dtype_t dtype, rl_op_t op, int nranks, int r, size_t i);
double bench_expected(rl_dtype_t dtype, rl_op_t op, int nranks, size_t i);
void bench_store(rl_dtype_t dtype, void *buf, size_t i, double v);
double bench_load(rl_dtype_t dtype, const void *buf, size_t i);
/* Whether got matches want in dtype (exact, or within rounding for RL_AVG). */
int bench_value_ok(rl_dtype_t dtype, rl_op_t op, double got, double want);
int bench_dtype_is_float(rl_dtype_t dtype);

#endif
