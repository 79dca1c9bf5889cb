/*
 * An rdmacm intruder (runs in the SoftRoCE VM, see cm_intruder.sh): connects
 * to a rank's rdmacm listener with a request that claims to be rank 0's
 * first connection (magic, rank 0, token 0, QP 0) but does not carry the
 * secret that the listening rank published through the bootstrap. Such a
 * request must be rejected; before the secret existed it was accepted and
 * took the real rank's place.
 *
 *   cm_intruder IP PORT SRC_IP [ATTEMPTS [QP]]
 *
 * SRC_IP is the address of another rxe device in the VM (the peers' routes
 * go out through each device's own veth; a destination address of this
 * same machine would otherwise resolve to the loopback, where no device is).
 *
 * Prints one line per attempt (rejected, established, unreachable, no
 * answer) and a summary; exits 1 if any attempt was established.
 */
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rdma/rdma_cma.h>

typedef struct {
    uint32_t magic, rank, token, qp;
    uint8_t nonce[16];
} hello_t;

static int wait_event(struct rdma_event_channel *ch, int ms, enum rdma_cm_event_type *type)
{
    struct pollfd p = {.fd = ch->fd, .events = POLLIN};
    if (poll(&p, 1, ms) <= 0)
        return -1;
    struct rdma_cm_event *ev;
    if (rdma_get_cm_event(ch, &ev))
        return -1;
    *type = ev->event;
    rdma_ack_cm_event(ev);
    return 0;
}

/* One forged connection request; returns the final event or -1. */
static int attempt(struct sockaddr_in *src, struct sockaddr_in *dst, uint32_t qp)
{
    struct rdma_event_channel *ch = rdma_create_event_channel();
    struct rdma_cm_id *id = NULL;
    enum rdma_cm_event_type t = RDMA_CM_EVENT_ADDR_ERROR;
    int result = -1;
    struct ibv_pd *pd = NULL;
    struct ibv_cq *cq = NULL;
    if (!ch || rdma_create_id(ch, &id, NULL, RDMA_PS_TCP))
        goto out;
    result = -2;
    if (rdma_resolve_addr(id, (struct sockaddr *)src, (struct sockaddr *)dst, 2000) || wait_event(ch, 3000, &t) ||
        t != RDMA_CM_EVENT_ADDR_RESOLVED)
        goto out;
    result = -3;
    if (rdma_resolve_route(id, 2000) || wait_event(ch, 3000, &t) || t != RDMA_CM_EVENT_ROUTE_RESOLVED)
        goto out;
    result = -4;
    pd = ibv_alloc_pd(id->verbs);
    cq = pd ? ibv_create_cq(id->verbs, 16, NULL, NULL, 0) : NULL;
    struct ibv_qp_init_attr ia = {.send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_RC,
                                  .cap = {.max_send_wr = 4, .max_recv_wr = 4, .max_send_sge = 1, .max_recv_sge = 1}};
    if (!cq || rdma_create_qp(id, pd, &ia))
        goto out;
    hello_t h = {.magic = 0x52564331u, .rank = 0, .token = 0, .qp = qp}; /* no secret: zeros */
    struct rdma_conn_param cp = {.private_data = &h, .private_data_len = sizeof(h), .responder_resources = 1,
                                 .initiator_depth = 1, .retry_count = 7, .rnr_retry_count = 7};
    result = -5;
    if (rdma_connect(id, &cp))
        goto out;
    result = -6;
    if (wait_event(ch, 2000, &t))
        goto out;
    result = (int)t;
out:
    if (id && id->qp)
        rdma_destroy_qp(id);
    if (cq)
        ibv_destroy_cq(cq);
    if (pd)
        ibv_dealloc_pd(pd);
    if (id)
        rdma_destroy_id(id);
    if (ch)
        rdma_destroy_event_channel(ch);
    return result;
}

int main(int argc, char **argv)
{
    if (argc < 4 || !strcmp(argv[1], "--help")) {
        printf("usage: cm_intruder IP PORT SRC_IP [ATTEMPTS [QP]]\n"
               "Forged rdmacm connection requests (rank 0's, without the bootstrap secret) to a rank's listener.\n");
        return argc < 4 ? 2 : 0;
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    struct sockaddr_in src = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1 || inet_pton(AF_INET, argv[3], &src.sin_addr) != 1) {
        fprintf(stderr, "cm_intruder: %s or %s is not an IPv4 address\n", argv[1], argv[3]);
        return 2;
    }
    int n = argc > 4 ? atoi(argv[4]) : 20, rejected = 0, established = 0, other = 0;
    uint32_t qp = argc > 5 ? (uint32_t)atoi(argv[5]) : 0;
    static const char *steps[] = {"", "no event channel", "address not resolved", "route not resolved",
                                  "no QP", "rdma_connect failed", "no answer (the rank is not serving requests)"};
    for (int i = 0; i < n; i++) {
        int t = attempt(&src, &dst, qp);
        if (t == RDMA_CM_EVENT_REJECTED)
            rejected++;
        else if (t == RDMA_CM_EVENT_ESTABLISHED || t == RDMA_CM_EVENT_CONNECT_RESPONSE)
            established++;
        else
            other++;
        printf("cm_intruder: attempt %d: %s\n", i, t < 0 ? steps[-t] : rdma_event_str((enum rdma_cm_event_type)t));
        fflush(stdout);
    }
    printf("cm_intruder: %d attempts: %d rejected, %d established, %d other\n", n, rejected, established, other);
    return established != 0;
}
