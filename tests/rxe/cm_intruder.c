/*
 * An rdmacm intruder (runs in the SoftRoCE VM, see cm_intruder.sh): connects
 * to a rank's rdmacm listener with a request that claims to be rank 0's
 * first connection (magic, rank 0, token 0, QP 0) but does not carry the
 * secret that the listening rank published through the bootstrap. Such a
 * request must be rejected; before the secret existed it was accepted and
 * took the real rank's place.
 *
 *   cm_intruder IP PORT [ATTEMPTS]
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
static int attempt(struct sockaddr_in *dst)
{
    struct rdma_event_channel *ch = rdma_create_event_channel();
    struct rdma_cm_id *id = NULL;
    enum rdma_cm_event_type t = RDMA_CM_EVENT_ADDR_ERROR;
    int result = -1;
    struct ibv_pd *pd = NULL;
    struct ibv_cq *cq = NULL;
    if (!ch || rdma_create_id(ch, &id, NULL, RDMA_PS_TCP))
        goto out;
    if (rdma_resolve_addr(id, NULL, (struct sockaddr *)dst, 2000) || wait_event(ch, 3000, &t) ||
        t != RDMA_CM_EVENT_ADDR_RESOLVED)
        goto out;
    if (rdma_resolve_route(id, 2000) || wait_event(ch, 3000, &t) || t != RDMA_CM_EVENT_ROUTE_RESOLVED)
        goto out;
    pd = ibv_alloc_pd(id->verbs);
    cq = pd ? ibv_create_cq(id->verbs, 16, NULL, NULL, 0) : NULL;
    struct ibv_qp_init_attr ia = {.send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_RC,
                                  .cap = {.max_send_wr = 4, .max_recv_wr = 4, .max_send_sge = 1, .max_recv_sge = 1}};
    if (!cq || rdma_create_qp(id, pd, &ia))
        goto out;
    hello_t h = {.magic = 0x52564331u, .rank = 0, .token = 0, .qp = 0}; /* no secret: zeros */
    struct rdma_conn_param cp = {.private_data = &h, .private_data_len = sizeof(h), .responder_resources = 1,
                                 .initiator_depth = 1, .retry_count = 7, .rnr_retry_count = 7};
    if (rdma_connect(id, &cp) || wait_event(ch, 5000, &t))
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
    if (argc < 3 || !strcmp(argv[1], "--help")) {
        printf("usage: cm_intruder IP PORT [ATTEMPTS]\n"
               "Forged rdmacm connection requests (rank 0's, without the bootstrap secret) to a rank's listener.\n");
        return argc < 3 ? 2 : 0;
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
        fprintf(stderr, "cm_intruder: %s is not an IPv4 address\n", argv[1]);
        return 2;
    }
    int n = argc > 3 ? atoi(argv[3]) : 20, rejected = 0, established = 0, other = 0;
    for (int i = 0; i < n; i++) {
        int t = attempt(&dst);
        if (t == RDMA_CM_EVENT_REJECTED)
            rejected++;
        else if (t == RDMA_CM_EVENT_ESTABLISHED || t == RDMA_CM_EVENT_CONNECT_RESPONSE)
            established++;
        else
            other++;
        printf("cm_intruder: attempt %d: %s\n", i, t < 0 ? "no answer" : rdma_event_str((enum rdma_cm_event_type)t));
        fflush(stdout);
    }
    printf("cm_intruder: %d attempts: %d rejected, %d established, %d other\n", n, rejected, established, other);
    return established != 0;
}
