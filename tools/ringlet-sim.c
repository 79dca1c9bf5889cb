/* ringlet-sim: predict a collective's time and bus bandwidth on a fabric. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "topo/topo.h"

static const char *usage =
    "usage: ringlet-sim FILE [--algo ring|planned|tree|ptree|rhd|hier] [--coll all_reduce|all_gather|reduce_scatter]\n"
    "                   [-b MIN] [-e MAX] [-f FACTOR] [--alpha-us A] [--eff E] [--gamma-gbps G]\n"
    "                   [--rings K] [--chunks C] [--cc fair|dcqcn [--dc NAME=VALUE]...] [--json OUT]\n"
    "Flow-level prediction on the fabric in FILE (ringlet-topo's JSON): each step\n"
    "of the algorithm is a set of flows with max-min fair rates on the links they\n"
    "share (ideal ECMP over minimal paths); a step costs alpha + path latency +\n"
    "bytes / (eff x fair rate). Identical steps are computed once.\n"
    "  --algo       ring (rank order), planned (ringlet-topo's rings), tree (double\n"
    "               binary tree over rank order, pipelined), ptree (the same over the\n"
    "               planned first ring's order, as ringlet runs it with RINGLET_TOPO_FILE),\n"
    "               rhd (halving-doubling), hier (ring inside hosts, one ring per local\n"
    "               rank across hosts); default planned\n"
    "  --coll       all_reduce (default); all_gather, reduce_scatter for ring/planned/rhd\n"
    "  -b, -e, -f   sizes from MIN to MAX bytes, times FACTOR (default 1M, 1G, 2; K/M/G)\n"
    "  --alpha-us   per-message latency in us (default 5)\n"
    "  --eff        fraction of a link's rate a flow's payload gets (default 0.95)\n"
    "  --gamma-gbps reduction speed per rank in Gb/s (default: free)\n"
    "  --rings K    planned: at most K rings; --chunks C: tree pipeline chunks (default: best)\n"
    "  --cc         fair: every flow has its max-min share from the first byte (default);\n"
    "               dcqcn: a step's flows start at line rate and follow DCQCN's fluid\n"
    "               model on the step's busiest link (ECN ramp 5-200 KB, Pmax 1%, g 1/256,\n"
    "               CNP 50 us, timers 55 us, byte counter 10 MB, R_AI 40 Mb/s, F 5; the\n"
    "               feedback delay is the path's round trip: the parameters the DCQCN\n"
    "               paper evaluated at 40 Gb/s); adds a peakq(KB) column. A what-if model:\n"
    "               only the fair model is checked against measurement (tools/fabric-lab)\n"
    "  --dc N=V     a DCQCN parameter: kmin_kb, kmax_kb, pmax, g, cnp_us, alpha_us,\n"
    "               timer_us, byte_kb, rai_mbps, fast_steps, pkt_bytes (repeatable)\n"
    "  --json OUT   rows as JSON, for tools/plot-bench\n"
    "Output: nccl-tests columns size, count (float32), time (us), algbw and busbw (GB/s).\n";

static int parse_size(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v <= 0)
        return -1;
    if (*end == 'K' || *end == 'k')
        v *= 1024, end++;
    else if (*end == 'M' || *end == 'm')
        v *= 1 << 20, end++;
    else if (*end == 'G' || *end == 'g')
        v *= 1 << 30, end++;
    if (*end || v > 1e15)
        return -1;
    *out = v;
    return 0;
}

static double now_s(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    const char *file = NULL, *json = NULL, *collname = "all_reduce";
    rl_sim_algo_t algo = RL_SIM_PLANNED;
    rl_sim_coll_t coll = RL_SIM_ALL_REDUCE;
    double minb = 1 << 20, maxb = 1 << 30, factor = 2;
    rl_sim_params_t prm;
    rl_sim_defaults(&prm);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (a[0] != '-') {
            if (file) {
                fprintf(stderr, "ringlet-sim: one fabric file only (%s, %s)\n", file, a);
                return 2;
            }
            file = a;
            continue;
        }
        if (!v) {
            fprintf(stderr, "ringlet-sim: %s needs a value (see --help)\n", a);
            return 2;
        }
        i++;
        int bad = 0;
        if (!strcmp(a, "--algo"))
            bad = rl_sim_algo_parse(v, &algo);
        else if (!strcmp(a, "--coll")) {
            collname = v;
            if (!strcmp(v, "all_reduce"))
                coll = RL_SIM_ALL_REDUCE;
            else if (!strcmp(v, "all_gather"))
                coll = RL_SIM_ALL_GATHER;
            else if (!strcmp(v, "reduce_scatter"))
                coll = RL_SIM_REDUCE_SCATTER;
            else
                bad = 1;
        } else if (!strcmp(a, "-b"))
            bad = parse_size(v, &minb);
        else if (!strcmp(a, "-e"))
            bad = parse_size(v, &maxb);
        else if (!strcmp(a, "-f"))
            bad = !((factor = strtod(v, &end)) > 1) || *end;
        else if (!strcmp(a, "--alpha-us"))
            bad = !((prm.alpha_us = strtod(v, &end)) >= 0) || *end;
        else if (!strcmp(a, "--eff"))
            bad = !((prm.eff = strtod(v, &end)) > 0 && prm.eff <= 1) || *end;
        else if (!strcmp(a, "--gamma-gbps"))
            bad = !((prm.gamma_gbps = strtod(v, &end)) >= 0) || *end;
        else if (!strcmp(a, "--rings"))
            bad = (prm.nrings = atoi(v)) < 1 || prm.nrings > 16;
        else if (!strcmp(a, "--chunks"))
            bad = (prm.chunks = atoi(v)) < 1 || prm.chunks > 65536;
        else if (!strcmp(a, "--cc"))
            bad = !strcmp(v, "dcqcn") ? (prm.dcqcn = 1, 0) : strcmp(v, "fair") ? 1 : (prm.dcqcn = 0, 0);
        else if (!strcmp(a, "--dc")) {
            char name[32];
            const char *eq = strchr(v, '=');
            bad = !eq || eq == v || (size_t)(eq - v) >= sizeof(name);
            if (!bad) {
                memcpy(name, v, (size_t)(eq - v));
                name[eq - v] = '\0';
                double x = strtod(eq + 1, &end);
                bad = end == eq + 1 || *end || rl_dcqcn_set(&prm.dc, name, x);
            }
        } else if (!strcmp(a, "--json"))
            json = v;
        else {
            fprintf(stderr, "ringlet-sim: unknown option %s (see --help)\n", a);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "ringlet-sim: bad value for %s: %s (see --help)\n", a, v);
            return 2;
        }
    }
    if (!file || minb > maxb) {
        fprintf(stderr, "ringlet-sim: %s\n%s", file ? "-b is above -e" : "no fabric file", usage);
        return 2;
    }
    char err[512] = "";
    rl_topo_t t;
    double w0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
    if (rl_topo_load(file, &t, err, sizeof(err)) != RL_OK) {
        fprintf(stderr, "ringlet-sim: %s\n", err);
        return 1;
    }
    double w1 = now_s(CLOCK_MONOTONIC), c1 = now_s(CLOCK_PROCESS_CPUTIME_ID);
    rl_sim_t *s;
    if (rl_sim_create(&t, algo, coll, &prm, &s, err, sizeof(err)) != RL_OK) {
        fprintf(stderr, "ringlet-sim: %s\n", err);
        rl_topo_free(&t);
        return 1;
    }
    FILE *jf = json ? (strcmp(json, "-") ? fopen(json, "w") : stdout) : NULL;
    if (json && !jf) {
        fprintf(stderr, "ringlet-sim: cannot write %s\n", json);
        return 1;
    }
    printf("# ringlet-sim: %s, %s, %s, %d ranks; alpha %g us, eff %g%s\n", t.name, rl_sim_algo_name(algo), collname,
           t.nranks, prm.alpha_us, prm.eff, prm.dcqcn ? ", DCQCN transient" : "");
    printf("#%11s %12s %8s %6s %12s %10s %10s %s %s\n", "size(B)", "count", "type", "redop", "time(us)", "algbw",
           "busbw", prm.dcqcn ? " peakq(KB)" : "", " busiest link");
    if (jf)
    {
        fprintf(jf, "{\"collective\": \"%s\", \"transport\": \"sim:%s\", \"algo\": \"%s\", \"nranks\": %d, \"fabric\": ",
                collname, rl_sim_algo_name(algo), rl_sim_algo_name(algo), t.nranks);
        rl_topo_json_str(jf, t.name);
        fprintf(jf, ", \"rows\": [");
    }
    int first = 1;
    for (double b = minb; b <= maxb * (1 + 1e-9); b *= factor) {
        rl_sim_result_t r;
        rl_sim_time(s, b, &r);
        char worst[300];
        rl_topo_res_name(&t, r.worst, worst, sizeof(worst));
        char pq[32] = "";
        if (prm.dcqcn)
            snprintf(pq, sizeof(pq), " %10.1f", r.peak_queue_kb);
        printf("%12.0f %12.0f %8s %6s %12.2f %10.3f %10.3f%s  %s\n", b, b / 4, "float", "sum", r.time_us, r.algbw,
               r.busbw, pq, worst);
        if (jf)
            fprintf(jf, "%s\n {\"size\": %.0f, \"count\": %.0f, \"type\": \"float\", \"redop\": \"sum\", "
                        "\"oop\": {\"time_us\": %.4f, \"algbw\": %.6f, \"busbw\": %.6f, \"wrong\": 0}, "
                        "\"ip\": {\"time_us\": %.4f, \"algbw\": %.6f, \"busbw\": %.6f, \"wrong\": 0}}",
                    first ? "" : ",", b, b / 4, r.time_us, r.algbw, r.busbw, r.time_us, r.algbw, r.busbw);
        first = 0;
    }
    double w2 = now_s(CLOCK_MONOTONIC), c2 = now_s(CLOCK_PROCESS_CPUTIME_ID);
    printf("# read %.3f s, simulated %.3f s (CPU %.3f s + %.3f s)\n", w1 - w0, w2 - w1, c1 - c0, c2 - c1);
    if (jf) {
        fprintf(jf, "\n]}\n");
        if (jf != stdout)
            fclose(jf);
    }
    rl_sim_destroy(s);
    rl_topo_free(&t);
    return 0;
}
