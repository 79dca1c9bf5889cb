/*
 * rdma-core verbs backend: RC queue pairs, RDMA WRITE WITH IMMEDIATE,
 * receives posted only to catch immediates, one CQ with a completion channel
 * for blocking waits. Connections are set up out of band: QPN, PSN, LID, GID
 * and MTU travel through ringlet's bootstrap (as InfiniBand fabrics without
 * IPoIB need), so no IP route between the NICs is required.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/log.h"
#include "transport/transport.h"

#include "transport/verbs/verbs_int.h"

rl_status_t vb_err(rl_tp_t *tp, rl_status_t st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tp->err, sizeof(tp->err), fmt, ap);
    va_end(ap);
    RL_DEBUG("%s", tp->err);
    return st;
}

int vb_random(void *buf, size_t len)
{
    for (size_t done = 0; done < len;) {
        ssize_t got = getrandom((char *)buf + done, len - done, 0);
        if (got < 0 && errno != EINTR)
            return -1;
        if (got > 0)
            done += (size_t)got;
    }
    return 0;
}

static int mtu_bytes(enum ibv_mtu m) { return 128 << ((int)m - 1); }

static enum ibv_mtu mtu_enum(int bytes)
{
    enum ibv_mtu m = IBV_MTU_256;
    while (m < IBV_MTU_4096 && mtu_bytes(m) < bytes)
        m++;
    return m;
}

/* Names of the devices there are, for an error message. */
static void device_names(struct ibv_device **list, int n, char *buf, size_t len)
{
    size_t pos = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && pos < len; i++)
        pos += (size_t)snprintf(buf + pos, len - pos, "%s%s", i ? ", " : "", ibv_get_device_name(list[i]));
}

/* Open one port: want->name "" takes the first device with an active port,
 * want->port 0 the device's first active port. */
static rl_status_t open_port(rl_tp_t *tp, vb_dev_t *dev, const vb_hca_t *want, struct ibv_device **list, int n)
{
    int found = 0;
    for (int i = 0; i < n; i++) {
        const char *name = ibv_get_device_name(list[i]);
        if (want->name[0] && strcmp(name, want->name))
            continue;
        found = 1;
        struct ibv_context *ctx = ibv_open_device(list[i]);
        struct ibv_device_attr da;
        if (!ctx || ibv_query_device(ctx, &da)) {
            if (ctx)
                ibv_close_device(ctx);
            continue;
        }
        if (want->port > da.phys_port_cnt) {
            ibv_close_device(ctx);
            return vb_err(tp, RL_ERR_CONFIG, "RINGLET_IB_HCA entry %s:%d: %s has %d port%s", want->name,
                          want->port, name, da.phys_port_cnt, da.phys_port_cnt == 1 ? "" : "s");
        }
        for (int p = 1; p <= da.phys_port_cnt; p++) {
            struct ibv_port_attr pa;
            if ((want->port && p != want->port) || ibv_query_port(ctx, (uint8_t)p, &pa) ||
                pa.state != IBV_PORT_ACTIVE)
                continue;
            dev->ctx = ctx;
            dev->port = (uint8_t)p;
            dev->pattr = pa;
            snprintf(dev->name, sizeof(dev->name), "%s:%d", name, p);
            return RL_OK;
        }
        ibv_close_device(ctx);
    }
    if (want->name[0] && !found) {
        char have[160];
        device_names(list, n, have, sizeof(have));
        return vb_err(tp, RL_ERR_CONFIG, "RINGLET_IB_HCA entry %s%s%.0d: no such RDMA device (there are: %s)",
                      want->name, want->port ? ":" : "", want->port, have);
    }
    if (want->name[0] && want->port)
        return vb_err(tp, RL_ERR_UNSUPPORTED, "RINGLET_IB_HCA entry %s:%d: the port is not active", want->name,
                      want->port);
    return vb_err(tp, RL_ERR_UNSUPPORTED, "no RDMA device %s with an active port", want->name);
}

/* Open every device RINGLET_IB_HCA lists ("rxe0:1,rxe1:1"; "": the first
 * device with an active port). */
static rl_status_t open_devices(rl_tp_t *tp, const char *spec)
{
    vb_hca_t want[VB_MAX_DEVS];
    int nwant = 0;
    rl_status_t st = vb_hca_parse(spec, want, VB_MAX_DEVS, &nwant, tp->err, sizeof(tp->err));
    if (st != RL_OK)
        return st;
    if (nwant == 0) {
        want[0] = (vb_hca_t){.port = 0};
        nwant = 1;
    }
    int n = 0;
    struct ibv_device **list = ibv_get_device_list(&n);
    if (!list || n == 0) {
        if (list)
            ibv_free_device_list(list);
        return vb_err(tp, RL_ERR_UNSUPPORTED,
                      "no RDMA devices (ibv_get_device_list found none: no rdma_rxe/NIC driver or /dev/infiniband)");
    }
    for (int d = 0; d < nwant && st == RL_OK; d++) {
        st = open_port(tp, &tp->dev[d], &want[d], list, n);
        if (st == RL_OK)
            tp->ndev = d + 1;
    }
    ibv_free_device_list(list);
    return st;
}

/* RoCE v2 GID: prefer an IPv4-mapped one (routable), else any RoCE v2 one
 * (link-local, as rxe on a bare veth has). InfiniBand: index 0. */
rl_status_t vb_pick_gid(rl_tp_t *tp, vb_dev_t *dev, int want)
{
    if (want < 0 && dev->pattr.link_layer != IBV_LINK_LAYER_ETHERNET)
        want = 0;
    if (want < 0) {
        int best = -1, best_score = 0;
        for (int i = 0; i < dev->pattr.gid_tbl_len; i++) {
            struct ibv_gid_entry e;
            if (ibv_query_gid_ex(dev->ctx, dev->port, (uint32_t)i, &e, 0))
                continue;
            if (e.gid_type != IBV_GID_TYPE_ROCE_V2)
                continue;
            static const uint8_t v4map[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
            int score = !memcmp(e.gid.raw, v4map, 12) ? 3 : (e.gid.raw[0] == 0xfe && e.gid.raw[1] == 0x80) ? 1 : 2;
            if (score > best_score) {
                best = i;
                best_score = score;
            }
        }
        if (best < 0)
            return vb_err(tp, RL_ERR_TRANSPORT, "%s: no RoCE v2 GID; set RINGLET_IB_GID_INDEX", dev->name);
        want = best;
    }
    if (ibv_query_gid(dev->ctx, dev->port, want, &dev->gid))
        return vb_err(tp, RL_ERR_TRANSPORT, "%s: cannot read GID index %d", dev->name, want);
    dev->gid_index = want;
    return RL_OK;
}

static void vb_close(rl_tp_t *tp)
{
    if (!tp)
        return;
    for (int d = 0; d < VB_MAX_DEVS; d++) {
        vb_dev_t *dev = &tp->dev[d];
        if (dev->cq)
            ibv_destroy_cq(dev->cq);
        if (dev->chan)
            ibv_destroy_comp_channel(dev->chan);
        if (dev->pd)
            ibv_dealloc_pd(dev->pd);
        if (dev->ctx && !dev->cm_owned)
            ibv_close_device(dev->ctx);
    }
    if (tp->use_cm)
        vb_cm_close(tp);
    free(tp->conns);
    free(tp);
}

/* PD and CQ (with its completion channel) of one device; logs what it found. */
static rl_status_t dev_setup(rl_tp_t *tp, vb_dev_t *dev)
{
    if (!(dev->pd = ibv_alloc_pd(dev->ctx)))
        return vb_err(tp, RL_ERR_TRANSPORT, "%s: ibv_alloc_pd: %s", dev->name, strerror(errno));
    if (!(dev->chan = ibv_create_comp_channel(dev->ctx)))
        return vb_err(tp, RL_ERR_TRANSPORT, "%s: ibv_create_comp_channel: %s", dev->name, strerror(errno));
    if (!(dev->cq = ibv_create_cq(dev->ctx, VB_CQE, NULL, dev->chan, 0)))
        return vb_err(tp, RL_ERR_TRANSPORT, "%s: ibv_create_cq(%d): %s", dev->name, VB_CQE, strerror(errno));
    char gs[64];
    inet_ntop(AF_INET6, dev->gid.raw, gs, sizeof(gs));
    RL_INFO("verbs:%s: link %s, active MTU %d, GID index %d (%s)", dev->name,
            dev->pattr.link_layer == IBV_LINK_LAYER_ETHERNET ? "Ethernet (RoCE)" : "InfiniBand",
            mtu_bytes(dev->pattr.active_mtu), dev->gid_index, gs);
    return RL_OK;
}

/* "verbs:rxe0:1/gid0" or, with several devices, "verbs:rxe0:1/gid0+rxe1:1/gid0" */
static void set_desc(rl_tp_t *tp)
{
    size_t pos = (size_t)snprintf(tp->desc, sizeof(tp->desc), "verbs:");
    for (int d = 0; d < tp->ndev && pos < sizeof(tp->desc); d++)
        pos += (size_t)snprintf(tp->desc + pos, sizeof(tp->desc) - pos, "%s%s%s/gid%d", d ? "+" : "",
                                tp->dev[d].name, tp->use_cm ? "/rdmacm" : "", tp->dev[d].gid_index);
}

static rl_status_t vb_open(const rl_tp_params_t *p, rl_tp_t **out, char *err, size_t errlen)
{
    rl_tp_t *tp = calloc(1, sizeof(*tp));
    if (!tp)
        return RL_ERR_NO_MEMORY;
    tp->cfg = p->cfg;
    tp->rank = p->rank;
    tp->nqps = p->cfg->ib_qps_per_peer;
    rl_status_t st = RL_OK;
    if (!strcmp(p->cfg->ib_cm, "rdmacm"))
        tp->use_cm = 1;
    else if (strcmp(p->cfg->ib_cm, "oob"))
        st = vb_err(tp, RL_ERR_CONFIG, "RINGLET_IB_CM=%s: expected oob or rdmacm", p->cfg->ib_cm);
    if (st == RL_OK)
        st = open_devices(tp, p->cfg->ib_hca);
    for (int d = 0; d < tp->ndev && st == RL_OK; d++)
        st = vb_pick_gid(tp, &tp->dev[d], p->cfg->ib_gid_index);
    if (st == RL_OK && tp->use_cm)
        st = vb_cm_open(tp); /* rdma_cm owns the device contexts from here on */
    for (int d = 0; d < tp->ndev && st == RL_OK; d++)
        st = dev_setup(tp, &tp->dev[d]);
    if (st != RL_OK) {
        snprintf(err, errlen, "%s", tp->err);
        vb_close(tp);
        return st;
    }
    tp->max_inline = VB_INLINE;
    set_desc(tp);
    *out = tp;
    return RL_OK;
}

static const char *vb_describe(rl_tp_t *tp) { return tp->desc; }

rl_status_t vb_post_recvs(rl_tp_conn_t *c, int q, int n)
{
    for (int i = 0; i < n; i++) {
        /* No scatter list: a write-with-immediate needs a receive only to
         * deliver its immediate. */
        struct ibv_recv_wr wr = {.wr_id = (uint64_t)q, .num_sge = 0}, *bad;
        int rc = ibv_post_recv(c->qp[q], &wr, &bad);
        if (rc)
            return vb_err(c->tp, RL_ERR_TRANSPORT, "ibv_post_recv on QP 0x%x (rank %d): %s", c->qp[q]->qp_num,
                          c->peer, strerror(rc));
    }
    return RL_OK;
}

static rl_status_t track_conn(rl_tp_t *tp, rl_tp_conn_t *c)
{
    if (tp->nconns == tp->capconns) {
        int cap = tp->capconns ? tp->capconns * 2 : 8;
        rl_tp_conn_t **n = realloc(tp->conns, sizeof(*n) * (size_t)cap);
        if (!n)
            return RL_ERR_NO_MEMORY;
        tp->conns = n;
        tp->capconns = cap;
    }
    tp->conns[tp->nconns++] = c;
    return RL_OK;
}

void vb_qp_init_attr(rl_tp_t *tp, vb_dev_t *dev, struct ibv_qp_init_attr *ia)
{
    *ia = (struct ibv_qp_init_attr){
        .send_cq = dev->cq, .recv_cq = dev->cq, .qp_type = IBV_QPT_RC, .sq_sig_all = 0,
        .cap = {.max_send_wr = VB_SEND_WR, .max_recv_wr = VB_RECV_WR, .max_send_sge = 1, .max_recv_sge = 1,
                .max_inline_data = (uint32_t)tp->max_inline},
    };
}

static void vb_conn_destroy(rl_tp_conn_t *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->tp->nconns; i++) {
        if (c->tp->conns[i] == c) {
            c->tp->conns[i] = c->tp->conns[--c->tp->nconns];
            break;
        }
    }
    if (c->tp->use_cm)
        vb_cm_conn_destroy(c);
    else
        for (int q = 0; q < c->nqp; q++)
            if (c->qp[q])
                ibv_destroy_qp(c->qp[q]);
    for (int q = 0; q < c->nqp; q++)
        free(c->sq[q].slot);
    free(c);
}

static rl_status_t vb_conn_create(rl_tp_t *tp, int peer, int chan, rl_tp_conn_t **out, void *blob, size_t *len)
{
    if (*len < sizeof(vb_blob_t) || chan < 0)
        return RL_ERR_INTERNAL;
    rl_tp_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return RL_ERR_NO_MEMORY;
    c->tp = tp;
    /* Channels round-robin over the devices unless the plan pinned them
     * (vb_pin_channels); each end picks its own by the channel, and its
     * blob names the QPs and GID of that device. */
    c->d = chan < tp->nchan_dev ? tp->chan_dev[chan] : chan % tp->ndev;
    c->dev = &tp->dev[c->d];
    c->peer = peer;
    c->nqp = tp->nqps;
    /* A random PSN: an RC QP takes only packets in its PSN window, so a
     * spoofer must guess it as well as the QPN and the rkey. */
    if (vb_random(&c->psn, sizeof(c->psn)) || vb_random(c->nonce, sizeof(c->nonce))) {
        free(c);
        return vb_err(tp, RL_ERR_TRANSPORT, "getrandom: %s", strerror(errno));
    }
    c->psn &= 0xffffff;
    for (int i = 0; i < tp->nconns; i++)
        c->token += tp->conns[i]->peer == peer;
    for (int q = 0; q < c->nqp; q++) {
        if (!(c->sq[q].slot = calloc(VB_SEND_WR, sizeof(vb_slot_t)))) {
            vb_conn_destroy(c);
            return RL_ERR_NO_MEMORY;
        }
    }
    if (tp->use_cm) {
        rl_status_t cst = track_conn(tp, c);
        if (cst == RL_OK)
            cst = vb_cm_conn_create(c, blob, len);
        if (cst != RL_OK) {
            vb_conn_destroy(c);
            return cst;
        }
        *out = c;
        return RL_OK;
    }
    vb_dev_t *dev = c->dev;
    vb_blob_t b = {.magic = VB_BLOB_MAGIC, .nqp = (uint32_t)c->nqp, .psn = c->psn, .lid = dev->pattr.lid,
                   .mtu = (uint8_t)dev->pattr.active_mtu, .link_layer = dev->pattr.link_layer};
    memcpy(b.gid, dev->gid.raw, 16);
    rl_status_t st = track_conn(tp, c);
    for (int q = 0; q < c->nqp && st == RL_OK; q++) {
        struct ibv_qp_init_attr ia;
        vb_qp_init_attr(tp, dev, &ia);
        c->qp[q] = ibv_create_qp(dev->pd, &ia);
        if (!c->qp[q]) {
            st = vb_err(tp, RL_ERR_TRANSPORT, "%s: ibv_create_qp for rank %d: %s", dev->name, peer, strerror(errno));
            break;
        }
        struct ibv_qp_attr a = {.qp_state = IBV_QPS_INIT, .pkey_index = 0, .port_num = dev->port,
                                .qp_access_flags = IBV_ACCESS_REMOTE_WRITE};
        int rc = ibv_modify_qp(c->qp[q], &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
        if (rc) {
            st = vb_err(tp, RL_ERR_TRANSPORT, "%s: QP 0x%x to INIT: %s", dev->name, c->qp[q]->qp_num, strerror(rc));
            break;
        }
        if ((st = vb_post_recvs(c, q, VB_RECV_WR)) != RL_OK)
            break;
        b.qpn[q] = c->qp[q]->qp_num;
    }
    if (st != RL_OK) {
        vb_conn_destroy(c);
        return st;
    }
    memcpy(blob, &b, sizeof(b));
    *len = sizeof(b);
    *out = c;
    return RL_OK;
}

static rl_status_t vb_conn_establish(rl_tp_conn_t *c, const void *blob, size_t len, int64_t deadline)
{
    rl_tp_t *tp = c->tp;
    vb_dev_t *dev = c->dev;
    if (tp->use_cm)
        return vb_cm_conn_establish(c, blob, len, deadline);
    vb_blob_t b;
    char why[200];
    if (vb_blob_decode(blob, len, c->nqp, &b, why, sizeof(why)) != RL_OK)
        return vb_err(tp, RL_ERR_PROTOCOL, "rank %d: %s", c->peer, why);
    if (b.link_layer != dev->pattr.link_layer)
        return vb_err(tp, RL_ERR_TRANSPORT, "rank %d is on %s, this rank on %s: they cannot connect", c->peer,
                      b.link_layer == IBV_LINK_LAYER_ETHERNET ? "RoCE" : "InfiniBand",
                      dev->pattr.link_layer == IBV_LINK_LAYER_ETHERNET ? "RoCE" : "InfiniBand");
    enum ibv_mtu mtu = dev->pattr.active_mtu < b.mtu ? dev->pattr.active_mtu : (enum ibv_mtu)b.mtu;
    if (tp->cfg->ib_mtu > 0 && mtu_enum(tp->cfg->ib_mtu) < mtu)
        mtu = mtu_enum(tp->cfg->ib_mtu);
    for (int q = 0; q < c->nqp; q++) {
        struct ibv_qp_attr a = {
            .qp_state = IBV_QPS_RTR, .path_mtu = mtu, .dest_qp_num = b.qpn[q], .rq_psn = b.psn,
            .max_dest_rd_atomic = 1, .min_rnr_timer = 12,
            .ah_attr = {.dlid = b.lid, .sl = (uint8_t)tp->cfg->ib_sl, .port_num = dev->port},
        };
        if (dev->pattr.link_layer == IBV_LINK_LAYER_ETHERNET || b.lid == 0) {
            a.ah_attr.is_global = 1;
            memcpy(a.ah_attr.grh.dgid.raw, b.gid, 16);
            a.ah_attr.grh.sgid_index = (uint8_t)dev->gid_index;
            a.ah_attr.grh.hop_limit = 64;
            a.ah_attr.grh.traffic_class = (uint8_t)tp->cfg->ib_tc;
        }
        int rc = ibv_modify_qp(c->qp[q], &a,
                               IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                                   IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
        if (rc)
            return vb_err(tp, RL_ERR_TRANSPORT, "%s: QP 0x%x to rank %d: RTR failed: %s (GID index %d, MTU %d)",
                          dev->name, c->qp[q]->qp_num, c->peer, strerror(rc), dev->gid_index, mtu_bytes(mtu));
        struct ibv_qp_attr s = {.qp_state = IBV_QPS_RTS, .timeout = (uint8_t)tp->cfg->ib_timeout,
                                .retry_cnt = (uint8_t)tp->cfg->ib_retry_cnt, .rnr_retry = 7, .sq_psn = c->psn,
                                .max_rd_atomic = 1};
        rc = ibv_modify_qp(c->qp[q], &s,
                           IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
                               IBV_QP_MAX_QP_RD_ATOMIC);
        if (rc)
            return vb_err(tp, RL_ERR_TRANSPORT, "QP 0x%x to rank %d: RTS failed: %s", c->qp[q]->qp_num, c->peer,
                          strerror(rc));
    }
    return RL_OK;
}

static void vb_mr_dereg(rl_tp_mr_t *m)
{
    for (int d = 0; m && d < m->ndev; d++)
        if (m->mr[d])
            ibv_dereg_mr(m->mr[d]);
    free(m);
}

/* On every device at once: a region's user may write or be written through
 * a connection of any channel. */
static rl_status_t vb_mr_reg(rl_tp_t *tp, void *buf, size_t len, unsigned access, rl_tp_mr_t **out)
{
    rl_tp_mr_t *m = calloc(1, sizeof(*m));
    if (!m)
        return RL_ERR_NO_MEMORY;
    m->tp = tp;
    /* A write source needs no access flag; a write target needs both. */
    int acc = (access & RL_ACCESS_REMOTE_WRITE) ? IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE : 0;
    for (; m->ndev < tp->ndev; m->ndev++) {
        m->mr[m->ndev] = ibv_reg_mr(tp->dev[m->ndev].pd, buf, len, acc);
        if (!m->mr[m->ndev]) {
            int e = errno;
            const char *dev = tp->dev[m->ndev].name;
            vb_mr_dereg(m);
            return vb_err(tp, RL_ERR_TRANSPORT, "%s: ibv_reg_mr(%zu bytes): %s%s", dev, len, strerror(e),
                          e == ENOMEM || e == EPERM ? " (check ulimit -l, the locked-memory limit)" : "");
        }
    }
    *out = m;
    return RL_OK;
}

/* The key of the device the peer's writes arrive on: that of `to`, or of
 * device 0 for keys published to every rank (their writers use channel 0,
 * whose connections are on device 0 at both ends). */
static void vb_mr_remote(rl_tp_mr_t *m, const rl_tp_conn_t *to, const void *ptr, rl_rkey_t *rk)
{
    /* NULL: for channel 0's connections, on the device that channel runs on */
    int d = to ? to->d : m->tp->nchan_dev > 0 ? m->tp->chan_dev[0] : 0;
    rk->addr = (uint64_t)(uintptr_t)ptr;
    rk->key = m->mr[d < m->ndev ? d : 0]->rkey;
}

/*
 * Send completions. Signalling every write costs rxe (and NICs) a CQE per
 * write; perftest signals one in 100. Here a write is signalled when its QP
 * has no signalled write in flight (so a lone write completes at once) or
 * after VB_SIGNAL_EVERY - 1 unsignalled ones. RC completes in order, so a
 * signalled completion also completes every earlier write of its QP: each
 * is reported to the caller as its own RL_CQE_SEND. Writes left without a
 * signalled one behind them get a signalled zero-length RDMA WRITE (a fence,
 * no immediate: the peer sees nothing) posted from vb_poll. After an error
 * the QP flushes every write, signalled or not, with its own completion.
 */
static char vb_fence_ctx;
#define VB_FENCE ((void *)&vb_fence_ctx)

static int seq_le(uint32_t a, uint32_t b) { return (int32_t)(b - a) >= 0; }

static rl_status_t post_write(rl_tp_conn_t *c, int q, const void *src, size_t len, rl_tp_mr_t *smr, uint64_t raddr,
                              uint32_t rkey, int with_imm, uint32_t imm, void *ctx, int sig)
{
    vb_sq_t *sq = &c->sq[q];
    struct ibv_sge sge = {.addr = (uint64_t)(uintptr_t)src, .length = (uint32_t)len,
                          .lkey = smr ? smr->mr[c->d]->lkey : 0};
    struct ibv_send_wr wr = {
        .wr_id = sq->posted, .sg_list = len ? &sge : NULL, .num_sge = len ? 1 : 0,
        .opcode = with_imm ? IBV_WR_RDMA_WRITE_WITH_IMM : IBV_WR_RDMA_WRITE,
        .send_flags = sig ? IBV_SEND_SIGNALED : 0, .imm_data = htobe32(imm),
        .wr.rdma = {.remote_addr = raddr, .rkey = rkey},
    }, *bad;
    if (len && len <= (size_t)c->tp->max_inline)
        wr.send_flags |= IBV_SEND_INLINE;
    int rc = ibv_post_send(c->qp[q], &wr, &bad);
    if (rc == ENOMEM)
        return RL_ERR_AGAIN;
    if (rc)
        return vb_err(c->tp, RL_ERR_TRANSPORT, "ibv_post_send on QP 0x%x to rank %d: %s", c->qp[q]->qp_num,
                      c->peer, strerror(rc));
    sq->slot[sq->posted % VB_SEND_WR] = (vb_slot_t){.ctx = ctx, .signalled = sig};
    sq->posted++;
    sq->raddr = raddr;
    sq->rkey = rkey;
    if (sig) {
        sq->sig_out++;
        sq->unsig_run = 0;
    } else {
        sq->unsig_run++;
    }
    return RL_OK;
}

/* Chunks are striped round-robin over the peer's QPs. */
static rl_status_t vb_write_any(rl_tp_conn_t *c, const void *src, size_t len, rl_tp_mr_t *smr, uint64_t raddr,
                                uint64_t rkey, int with_imm, uint32_t imm, void *ctx)
{
    if (len > 0xffffffffu)
        return vb_err(c->tp, RL_ERR_INVALID_ARG, "write of %zu bytes exceeds the verbs limit", len);
    int q = c->next_qp;
    vb_sq_t *sq = &c->sq[q];
    /* One slot stays free for a fence. */
    if (sq->posted - sq->reported >= VB_SEND_WR - 1)
        return RL_ERR_AGAIN;
    int sig = sq->sig_out == 0 || sq->unsig_run + 1 >= VB_SIGNAL_EVERY;
    rl_status_t st = post_write(c, q, src, len, smr, raddr, (uint32_t)rkey, with_imm, imm, ctx, sig);
    if (st == RL_OK)
        c->next_qp = (q + 1) % c->nqp;
    return st;
}

static rl_status_t vb_write_imm(rl_tp_conn_t *c, const void *src, size_t len, rl_tp_mr_t *smr, uint64_t raddr,
                                uint64_t rkey, uint32_t imm, void *ctx)
{
    return vb_write_any(c, src, len, smr, raddr, rkey, 1, imm, ctx);
}

static rl_status_t vb_write(rl_tp_conn_t *c, const void *src, size_t len, rl_tp_mr_t *smr, uint64_t raddr,
                            uint64_t rkey, void *ctx)
{
    return vb_write_any(c, src, len, smr, raddr, rkey, 0, 0, ctx);
}

/* QP numbers are per device. */
static rl_tp_conn_t *find_qp(rl_tp_t *tp, int d, uint32_t qpn, int *q)
{
    for (int i = 0; i < tp->nconns; i++)
        for (int k = 0; k < tp->conns[i]->nqp && tp->conns[i]->d == d; k++)
            if (tp->conns[i]->qp[k] && tp->conns[i]->qp[k]->qp_num == qpn) {
                *q = k;
                return tp->conns[i];
            }
    return NULL;
}

/* A send completion for write `seq`: it and every earlier write are done. */
static void complete_to(vb_sq_t *sq, uint32_t seq, rl_status_t st)
{
    if (!seq_le(sq->completed, seq) || (int32_t)(sq->posted - seq) <= 0)
        return; /* not outstanding: already retired, or not ours */
    for (uint32_t s = sq->completed; s != seq + 1; s++) {
        vb_slot_t *sl = &sq->slot[s % VB_SEND_WR];
        sl->status = s == seq ? st : RL_OK;
        if (sl->signalled)
            sq->sig_out--;
    }
    sq->completed = seq + 1;
}

/* Hand completed writes to the caller, in order, as room allows. */
static int report_done(rl_tp_t *tp, rl_tp_cqe_t *out, int n, int max)
{
    for (int i = 0; i < tp->nconns && n < max; i++) {
        rl_tp_conn_t *c = tp->conns[i];
        for (int q = 0; q < c->nqp && n < max; q++) {
            vb_sq_t *sq = &c->sq[q];
            while (sq->reported != sq->completed && n < max) {
                vb_slot_t *sl = &sq->slot[sq->reported++ % VB_SEND_WR];
                if (sl->ctx != VB_FENCE || sl->status != RL_OK)
                    out[n++] = (rl_tp_cqe_t){.kind = RL_CQE_SEND, .status = sl->status,
                                             .ctx = sl->ctx == VB_FENCE ? NULL : sl->ctx, .peer = c->peer};
            }
        }
    }
    return n;
}

/* Writes with no signalled write behind them would never be reported. */
static void post_fences(rl_tp_t *tp)
{
    for (int i = 0; i < tp->nconns; i++) {
        rl_tp_conn_t *c = tp->conns[i];
        for (int q = 0; q < c->nqp; q++) {
            vb_sq_t *sq = &c->sq[q];
            if (sq->sig_out == 0 && sq->completed != sq->posted && c->qp[q] &&
                sq->posted - sq->reported < VB_SEND_WR)
                (void)post_write(c, q, NULL, 0, NULL, sq->raddr, sq->rkey, 0, 0, VB_FENCE, 1);
        }
    }
}

static void wc_error(rl_tp_t *tp, const struct ibv_wc *wc, rl_tp_conn_t *c, int is_recv)
{
    /* After the first error the QP flushes every other request with
     * WR_FLUSH_ERR: keep the message of the error that caused it. */
    if (wc->status != IBV_WC_WR_FLUSH_ERR || !tp->wc_failed)
        vb_err(tp, RL_ERR_PEER_FAILED, "%s completion error on QP 0x%x (%s %d): %s (status %d, vendor 0x%x)%s",
               is_recv ? "receive" : "send", wc->qp_num, c ? "to rank" : "unknown QP, rank", c ? c->peer : -1,
               ibv_wc_status_str(wc->status), (int)wc->status, wc->vendor_err,
               wc->status == IBV_WC_RETRY_EXC_ERR ? ": the peer did not answer; check that it is alive, "
                                                   "and RINGLET_IB_GID_INDEX / RINGLET_IB_TC on RoCE" : "");
    tp->wc_failed = 1;
}

/* Turn one device's work completions into the caller's. */
static rl_status_t take_wcs(rl_tp_t *tp, int d, const struct ibv_wc *wc, int got, rl_tp_cqe_t *out, int *n)
{
    for (int i = 0; i < got; i++) {
        int q = 0;
        rl_tp_conn_t *c = find_qp(tp, d, wc[i].qp_num, &q);
        int is_recv = (wc[i].opcode & IBV_WC_RECV) != 0;
        if (wc[i].status != IBV_WC_SUCCESS)
            wc_error(tp, &wc[i], c, is_recv);
        if (!c) {
            /* A QP already destroyed: only an error matters (it cannot name a write). */
            if (wc[i].status != IBV_WC_SUCCESS)
                out[(*n)++] = (rl_tp_cqe_t){.kind = RL_CQE_RECV_IMM, .status = RL_ERR_PEER_FAILED, .peer = -1};
            continue;
        }
        if (is_recv) {
            if (wc[i].status != IBV_WC_SUCCESS) {
                out[(*n)++] = (rl_tp_cqe_t){.kind = RL_CQE_RECV_IMM, .status = RL_ERR_PEER_FAILED, .peer = c->peer};
            } else if (wc[i].opcode == IBV_WC_RECV_RDMA_WITH_IMM) {
                out[(*n)++] = (rl_tp_cqe_t){.kind = RL_CQE_RECV_IMM, .imm = be32toh(wc[i].imm_data), .peer = c->peer};
                rl_status_t st = vb_post_recvs(c, q, 1);
                if (st != RL_OK)
                    return st;
            }
        } else {
            complete_to(&c->sq[q], (uint32_t)wc[i].wr_id,
                        wc[i].status == IBV_WC_SUCCESS ? RL_OK : RL_ERR_PEER_FAILED);
        }
    }
    return RL_OK;
}

static rl_status_t vb_poll(rl_tp_t *tp, rl_tp_cqe_t *out, int max, int *n)
{
    struct ibv_wc wc[32];
    *n = report_done(tp, out, 0, max);
    for (int d = 0; d < tp->ndev; d++) {
        /* a receive completion becomes one output; sends are reported below */
        int room = max - *n;
        if (room > 32)
            room = 32;
        int got = room > 0 ? ibv_poll_cq(tp->dev[d].cq, room, wc) : 0;
        if (got < 0)
            return vb_err(tp, RL_ERR_TRANSPORT, "%s: ibv_poll_cq failed", tp->dev[d].name);
        rl_status_t st = take_wcs(tp, d, wc, got, out, n);
        if (st != RL_OK)
            return st;
    }
    *n = report_done(tp, out, *n, max);
    post_fences(tp);
    return RL_OK;
}

/* Block until a CQ has something or timeout_ms passes. Every CQ must be
 * armed before sleeping, or a completion on an unarmed one would not wake
 * us: arming returns at once so that the caller polls again first. */
static rl_status_t vb_wait(rl_tp_t *tp, int timeout_ms)
{
    int armed_now = 0;
    for (int d = 0; d < tp->ndev; d++) {
        if (tp->dev[d].armed)
            continue;
        if (ibv_req_notify_cq(tp->dev[d].cq, 0))
            return vb_err(tp, RL_ERR_TRANSPORT, "%s: ibv_req_notify_cq failed", tp->dev[d].name);
        tp->dev[d].armed = 1;
        armed_now = 1;
    }
    if (armed_now)
        return RL_OK; /* poll once more before sleeping: a completion may have raced the arm */
    struct pollfd pfd[VB_MAX_DEVS];
    for (int d = 0; d < tp->ndev; d++)
        pfd[d] = (struct pollfd){.fd = tp->dev[d].chan->fd, .events = POLLIN};
    if (poll(pfd, (nfds_t)tp->ndev, timeout_ms) <= 0)
        return RL_OK;
    for (int d = 0; d < tp->ndev; d++) {
        struct ibv_cq *cq;
        void *cctx;
        if ((pfd[d].revents & POLLIN) && ibv_get_cq_event(tp->dev[d].chan, &cq, &cctx) == 0) {
            ibv_ack_cq_events(cq, 1);
            tp->dev[d].armed = 0;
        }
    }
    return RL_OK;
}

static const char *vb_last_error(rl_tp_t *tp) { return tp->err; }

static int vb_pins_memory(rl_tp_t *tp)
{
    (void)tp;
    return 1;
}

/* rxe and siw do the RDMA work in host kernel threads: a rank busy-polling
 * for completions takes the CPU the transfer itself needs. */
static int vb_cpu_driven(rl_tp_t *tp)
{
    for (int d = 0; d < tp->ndev; d++) {
        const char *name = ibv_get_device_name(tp->dev[d].ctx->device);
        if (name && (!strncmp(name, "rxe", 3) || !strncmp(name, "siw", 3)))
            return 1;
    }
    return 0;
}

static int vb_pin_channels(rl_tp_t *tp, const char (*names)[32], int nch, char *why, size_t whylen)
{
    uint8_t pick[RL_MAX_CHANNELS];
    if (nch > RL_MAX_CHANNELS)
        nch = RL_MAX_CHANNELS;
    for (int i = 0; i < nch; i++) {
        int d = 0;
        for (; d < tp->ndev; d++) { /* by device name, without the port */
            const char *dn = ibv_get_device_name(tp->dev[d].ctx->device);
            if (dn && !strcmp(dn, names[i]))
                break;
        }
        if (d == tp->ndev) {
            snprintf(why, whylen, "channel %d's NIC %s is not among RINGLET_IB_HCA's devices", i, names[i]);
            return 0;
        }
        pick[i] = (uint8_t)d;
    }
    memcpy(tp->chan_dev, pick, (size_t)nch);
    tp->nchan_dev = nch;
    return 1;
}

const rl_tp_ops_t rl_tp_verbs_ops = {
    .size = sizeof(rl_tp_ops_t),
    .name = "verbs",
    .open = vb_open,
    .close = vb_close,
    .describe = vb_describe,
    .conn_create = vb_conn_create,
    .conn_establish = vb_conn_establish,
    .conn_destroy = vb_conn_destroy,
    .mr_reg = vb_mr_reg,
    .mr_dereg = vb_mr_dereg,
    .mr_remote = vb_mr_remote,
    .write_imm = vb_write_imm,
    .write = vb_write,
    .poll = vb_poll,
    .wait = vb_wait,
    .pins_memory = vb_pins_memory,
    .cpu_driven = vb_cpu_driven,
    .last_error = vb_last_error,
    .pin_channels = vb_pin_channels,
};
