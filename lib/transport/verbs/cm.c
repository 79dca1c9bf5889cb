/*
 * Connection set-up through librdmacm (RINGLET_IB_CM=rdmacm): address and
 * route resolution, RoCE v2 GID chosen by IP, QPs moved to RTS by the CM.
 * Every rank listens on its RDMA interface; of each pair, the lower rank
 * connects and the higher accepts. Connection requests are served from the
 * one event loop whenever any connection is being established, so the ring
 * cannot deadlock on the order in which ranks connect.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "transport/verbs/verbs_int.h"

#define VB_CM_RESOLVE_MS 2000

/* Private data on a connection request: who asks, for which QP, and the
 * secret the passive side published for this connection through the
 * bootstrap (32 bytes: RDMA_PS_TCP requests carry up to 56). */
typedef struct {
    uint32_t magic;
    int32_t rank;
    uint32_t token;
    uint32_t qp;
    uint8_t nonce[16];
} cm_hello_t;

/* Compare secrets in time that does not depend on where they differ. */
static int nonce_equal(const uint8_t *a, const uint8_t *b)
{
    uint8_t d = 0;
    for (int i = 0; i < 16; i++)
        d |= (uint8_t)(a[i] ^ b[i]);
    return d == 0;
}

/* The IPv4 address in an IPv4-mapped GID (::ffff:a.b.c.d). */
static int gid_to_ip(const union ibv_gid *g, struct sockaddr_storage *ss)
{
    static const uint8_t v4map[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(g->raw, v4map, 12))
        return -1;
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    memset(ss, 0, sizeof(*ss));
    in->sin_family = AF_INET;
    memcpy(&in->sin_addr, g->raw + 12, 4);
    return 0;
}

static socklen_t ss_len(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

/* Listen on one device's address: RINGLET_IB_ADDR (one device only), else
 * the IPv4 in its GID. */
static rl_status_t listen_dev(rl_tp_t *tp, vb_dev_t *dev)
{
    struct sockaddr_storage ss;
    if (tp->cfg->ib_addr[0]) {
        struct addrinfo hints = {.ai_flags = AI_NUMERICHOST}, *res = NULL;
        if (getaddrinfo(tp->cfg->ib_addr, NULL, &hints, &res) || !res)
            return vb_err(tp, RL_ERR_CONFIG, "RINGLET_IB_ADDR=%s is not a numeric IP address", tp->cfg->ib_addr);
        memset(&ss, 0, sizeof(ss));
        memcpy(&ss, res->ai_addr, res->ai_addrlen);
        freeaddrinfo(res);
    } else if (gid_to_ip(&dev->gid, &ss)) {
        return vb_err(tp, RL_ERR_CONFIG,
                      "%s: rdmacm needs an IP address: GID %d is not IPv4-mapped; set RINGLET_IB_ADDR%s", dev->name,
                      dev->gid_index, tp->ndev > 1 ? " (one device only) or RINGLET_IB_GID_INDEX" : "");
    }
    char ip[64];
    inet_ntop(ss.ss_family, ss.ss_family == AF_INET ? (void *)&((struct sockaddr_in *)&ss)->sin_addr
                                                    : (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr,
              ip, sizeof(ip));
    if (rdma_create_id(tp->cm_chan, &dev->listener, NULL, RDMA_PS_TCP))
        return vb_err(tp, RL_ERR_TRANSPORT, "rdma_create_id: %s", strerror(errno));
    if (rdma_bind_addr(dev->listener, (struct sockaddr *)&ss) || rdma_listen(dev->listener, 64))
        return vb_err(tp, RL_ERR_TRANSPORT, "rdmacm cannot listen on %s: %s", ip, strerror(errno));
    /* QPs are created on rdma_cm's own device contexts: take the context
     * rdma_cm opened for our device, so the PD and CQ live on it. (A
     * listener bound to a loopback address has no device yet.) */
    const char *want = ibv_get_device_name(dev->ctx->device);
    struct ibv_context *cmctx = NULL;
    int nd = 0;
    struct ibv_context **devs = rdma_get_devices(&nd);
    for (int i = 0; devs && i < nd; i++)
        if (!strcmp(ibv_get_device_name(devs[i]->device), want))
            cmctx = devs[i];
    if (devs)
        rdma_free_devices(devs);
    if (!cmctx)
        return vb_err(tp, RL_ERR_TRANSPORT, "rdmacm does not know device %s", want);
    if (dev->listener->verbs && dev->listener->verbs != cmctx)
        return vb_err(tp, RL_ERR_CONFIG, "rdmacm: %s belongs to device %s, not %s: set RINGLET_IB_HCA or RINGLET_IB_ADDR",
                      ip, ibv_get_device_name(dev->listener->verbs->device), want);
    ibv_close_device(dev->ctx);
    dev->ctx = cmctx;
    dev->cm_owned = 1;
    ibv_query_port(dev->ctx, dev->port, &dev->pattr);
    memcpy(&dev->cm_addr, rdma_get_local_addr(dev->listener), sizeof(dev->cm_addr));
    RL_INFO("rdmacm listening on %s port %u (%s)", ip, ntohs(rdma_get_src_port(dev->listener)), dev->name);
    return RL_OK;
}

/* One event channel; a listener per device, each on that device's own
 * address, so that a peer's connection request for a channel arrives on
 * the device that channel uses here. */
rl_status_t vb_cm_open(rl_tp_t *tp)
{
    if (tp->cfg->ib_addr[0] && tp->ndev > 1)
        return vb_err(tp, RL_ERR_CONFIG, "RINGLET_IB_ADDR names one address, RINGLET_IB_HCA %d devices: leave it "
                      "unset (each device listens on the IPv4 address in its GID)", tp->ndev);
    tp->cm_chan = rdma_create_event_channel();
    if (!tp->cm_chan)
        return vb_err(tp, RL_ERR_TRANSPORT, "rdma_create_event_channel: %s", strerror(errno));
    fcntl(tp->cm_chan->fd, F_SETFL, fcntl(tp->cm_chan->fd, F_GETFL) | O_NONBLOCK);
    rl_status_t st = RL_OK;
    for (int d = 0; d < tp->ndev && st == RL_OK; d++)
        st = listen_dev(tp, &tp->dev[d]);
    return st;
}

/* After the PDs and CQs: the contexts belong to rdma_cm. */
void vb_cm_close(rl_tp_t *tp)
{
    for (int d = 0; d < tp->ndev; d++) {
        if (tp->dev[d].listener)
            rdma_destroy_id(tp->dev[d].listener);
        tp->dev[d].listener = NULL;
        tp->dev[d].ctx = NULL;
    }
    if (tp->cm_chan)
        rdma_destroy_event_channel(tp->cm_chan);
    tp->cm_chan = NULL;
}

rl_status_t vb_cm_conn_create(rl_tp_conn_t *c, void *blob, size_t *len)
{
    if (*len < sizeof(cm_blob_t))
        return RL_ERR_INTERNAL;
    cm_blob_t b = {.magic = VB_CM_MAGIC, .nqp = (uint32_t)c->nqp, .rank = c->tp->rank, .token = c->token};
    socklen_t l = ss_len(&c->dev->cm_addr);
    memcpy(b.addr, &c->dev->cm_addr, l);
    b.addrlen = l;
    memcpy(b.nonce, c->nonce, sizeof(b.nonce));
    memcpy(blob, &b, sizeof(b));
    *len = sizeof(b);
    return RL_OK;
}

static rl_status_t make_qp(rl_tp_conn_t *c, int q, struct rdma_cm_id *id)
{
    if (id->verbs != c->dev->ctx)
        return vb_err(c->tp, RL_ERR_TRANSPORT, "rdmacm routed rank %d through device %s, not %s", c->peer,
                      id->verbs ? ibv_get_device_name(id->verbs->device) : "(none)",
                      ibv_get_device_name(c->dev->ctx->device));
    struct ibv_qp_init_attr ia;
    vb_qp_init_attr(c->tp, c->dev, &ia);
    if (rdma_create_qp(id, c->dev->pd, &ia))
        return vb_err(c->tp, RL_ERR_TRANSPORT, "rdma_create_qp for rank %d: %s", c->peer, strerror(errno));
    c->cmid[q] = id;
    c->qp[q] = id->qp;
    return vb_post_recvs(c, q, VB_RECV_WR);
}

static struct rdma_conn_param conn_param(rl_tp_t *tp, const cm_hello_t *h)
{
    return (struct rdma_conn_param){.private_data = h, .private_data_len = h ? sizeof(*h) : 0,
                                    .responder_resources = 1, .initiator_depth = 1,
                                    .retry_count = (uint8_t)tp->cfg->ib_retry_cnt, .rnr_retry_count = 7};
}

/* A connection request from a peer: validate it (it came from the network),
 * find the connection it is for, accept it. */
static void on_request(rl_tp_t *tp, struct rdma_cm_event *ev)
{
    cm_hello_t h = {.rank = -1};
    const char *why = NULL;
    rl_tp_conn_t *c = NULL;
    if (!ev->param.conn.private_data || ev->param.conn.private_data_len < sizeof(h)) {
        why = "no ringlet private data";
    } else {
        memcpy(&h, ev->param.conn.private_data, sizeof(h));
        for (int i = 0; i < tp->nconns && !c; i++)
            if (tp->conns[i]->peer == h.rank && tp->conns[i]->token == h.token)
                c = tp->conns[i];
        if (h.magic != VB_CM_MAGIC)
            why = "bad magic";
        else if (!c)
            why = "no such connection";
        else if (!nonce_equal(h.nonce, c->nonce))
            why = "wrong connection secret: the requester did not get this rank's data through the bootstrap";
        else if (h.qp >= (uint32_t)c->nqp || c->cmid[h.qp])
            why = "bad or duplicate QP index";
    }
    if (why || make_qp(c, (int)h.qp, ev->id) != RL_OK) {
        RL_WARN("rdmacm: rejected a connection request (claiming rank %d): %s", h.rank, why ? why : c->tp->err);
        if (c && !why) {
            c->cmid[h.qp] = NULL;
            c->qp[h.qp] = NULL;
            rdma_destroy_qp(ev->id);
        }
        rdma_reject(ev->id, NULL, 0);
        return;
    }
    ev->id->context = c;
    c->cm_state[h.qp] = VB_CM_CONNECTING;
    struct rdma_conn_param p = conn_param(tp, NULL);
    if (rdma_accept(ev->id, &p)) {
        c->cm_state[h.qp] = VB_CM_FAILED;
        vb_err(tp, RL_ERR_TRANSPORT, "rdma_accept from rank %d: %s", c->peer, strerror(errno));
    }
}

static int qp_of(rl_tp_conn_t *c, struct rdma_cm_id *id)
{
    for (int q = 0; q < c->nqp; q++)
        if (c->cmid[q] == id)
            return q;
    return -1;
}

/* Handle one CM event if there is one; wait at most ms. */
static void pump(rl_tp_t *tp, int ms)
{
    struct pollfd pfd = {.fd = tp->cm_chan->fd, .events = POLLIN};
    if (poll(&pfd, 1, ms) <= 0)
        return;
    struct rdma_cm_event *ev;
    if (rdma_get_cm_event(tp->cm_chan, &ev))
        return;
    if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST) {
        on_request(tp, ev);
        rdma_ack_cm_event(ev);
        return;
    }
    rl_tp_conn_t *c = ev->id->context;
    int q = c ? qp_of(c, ev->id) : -1;
    if (q >= 0) {
        switch (ev->event) {
        case RDMA_CM_EVENT_ADDR_RESOLVED:
            c->cm_state[q] = VB_CM_ADDR;
            break;
        case RDMA_CM_EVENT_ROUTE_RESOLVED:
            c->cm_state[q] = VB_CM_ROUTE;
            break;
        case RDMA_CM_EVENT_ESTABLISHED:
            c->cm_state[q] = VB_CM_UP;
            break;
        case RDMA_CM_EVENT_DISCONNECTED:
            break; /* a peer leaving: its failure reaches us through the CQ and the bootstrap */
        default:
            c->cm_state[q] = VB_CM_FAILED;
            vb_err(tp, RL_ERR_TRANSPORT, "rdmacm: connection to rank %d failed: %s (status %d)", c->peer,
                   rdma_event_str(ev->event), ev->status);
            break;
        }
    }
    rdma_ack_cm_event(ev);
}

rl_status_t vb_cm_conn_establish(rl_tp_conn_t *c, const void *blob, size_t len, int64_t deadline)
{
    rl_tp_t *tp = c->tp;
    cm_blob_t b;
    struct sockaddr_storage dst;
    char why[200];
    if (vb_cm_blob_decode(blob, len, c->peer, c->nqp, &b, &dst, why, sizeof(why)) != RL_OK)
        return vb_err(tp, RL_ERR_PROTOCOL, "%s", why);
    memcpy(c->peer_nonce, b.nonce, sizeof(c->peer_nonce));
    int active = tp->rank < c->peer;
    for (int q = 0; active && q < c->nqp; q++) {
        struct rdma_cm_id *id;
        if (rdma_create_id(tp->cm_chan, &id, c, RDMA_PS_TCP))
            return vb_err(tp, RL_ERR_TRANSPORT, "rdma_create_id: %s", strerror(errno));
        c->cmid[q] = id;
        /* From our own address, so that rdma_cm picks our device even for
         * loopback destinations. */
        struct sockaddr_storage src = c->dev->cm_addr;
        if (src.ss_family == AF_INET)
            ((struct sockaddr_in *)&src)->sin_port = 0;
        else
            ((struct sockaddr_in6 *)&src)->sin6_port = 0;
        if (rdma_resolve_addr(id, (struct sockaddr *)&src, (struct sockaddr *)&dst, VB_CM_RESOLVE_MS))
            return vb_err(tp, RL_ERR_TRANSPORT, "rdma_resolve_addr for rank %d: %s", c->peer, strerror(errno));
    }
    /* Drive every QP of this connection to UP, serving requests meanwhile. */
    for (;;) {
        int up = 0;
        for (int q = 0; q < c->nqp; q++) {
            struct rdma_cm_id *id = c->cmid[q];
            switch (c->cm_state[q]) {
            case VB_CM_FAILED:
                return RL_ERR_TRANSPORT;
            case VB_CM_UP:
                up++;
                break;
            case VB_CM_ADDR:
                c->cm_state[q] = VB_CM_ROUTING;
                if (rdma_resolve_route(id, VB_CM_RESOLVE_MS))
                    return vb_err(tp, RL_ERR_TRANSPORT, "rdma_resolve_route to rank %d: %s", c->peer,
                                  strerror(errno));
                break;
            case VB_CM_ROUTE: {
                rl_status_t st = make_qp(c, q, id);
                if (st != RL_OK)
                    return st;
                cm_hello_t h = {.magic = VB_CM_MAGIC, .rank = tp->rank, .token = c->token, .qp = (uint32_t)q};
                memcpy(h.nonce, c->peer_nonce, sizeof(h.nonce));
                struct rdma_conn_param p = conn_param(tp, &h);
                c->cm_state[q] = VB_CM_CONNECTING;
                if (rdma_connect(id, &p))
                    return vb_err(tp, RL_ERR_TRANSPORT, "rdma_connect to rank %d: %s", c->peer, strerror(errno));
                break;
            }
            default:
                break;
            }
        }
        if (up == c->nqp)
            return RL_OK;
        if (rl_now_ns() > deadline)
            return vb_err(tp, RL_ERR_TIMEOUT, "rdmacm: connecting to rank %d timed out (%d of %d QPs up)", c->peer,
                          up, c->nqp);
        pump(tp, 10);
    }
}

void vb_cm_conn_destroy(rl_tp_conn_t *c)
{
    for (int q = 0; q < c->nqp; q++) {
        if (!c->cmid[q])
            continue;
        if (c->qp[q])
            rdma_destroy_qp(c->cmid[q]);
        rdma_destroy_id(c->cmid[q]);
        c->cmid[q] = NULL;
        c->qp[q] = NULL;
    }
}
