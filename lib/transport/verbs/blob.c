/* Connection data from peers: everything here came from the network. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/verbs/verbs_int.h"

rl_status_t vb_blob_decode(const void *blob, size_t len, int nqp, vb_blob_t *out, char *err, size_t errlen)
{
    vb_blob_t b;
    if (len != sizeof(b)) {
        snprintf(err, errlen, "sent %zu bytes of QP data, expected %zu", len, sizeof(b));
        return RL_ERR_PROTOCOL;
    }
    memcpy(&b, blob, sizeof(b));
    if (b.magic != VB_BLOB_MAGIC || b.nqp != (uint32_t)nqp) {
        snprintf(err, errlen, "sent malformed QP data (or uses a different RINGLET_IB_QPS_PER_PEER: %u vs %d)",
                 b.nqp, nqp);
        return RL_ERR_PROTOCOL;
    }
    /* QP numbers and PSNs are 24-bit fields on the wire of InfiniBand. */
    int bad = b.mtu < IBV_MTU_256 || b.mtu > IBV_MTU_4096 || b.psn > 0xffffff ||
              b.link_layer > IBV_LINK_LAYER_ETHERNET;
    for (int q = 0; q < nqp && q < VB_MAX_QPS; q++)
        bad |= b.qpn[q] > 0xffffff || b.qpn[q] == 0;
    if (bad) {
        snprintf(err, errlen, "sent malformed QP data (MTU %u, PSN 0x%x, link layer %u)", b.mtu, b.psn,
                 b.link_layer);
        return RL_ERR_PROTOCOL;
    }
    *out = b;
    return RL_OK;
}

rl_status_t vb_cm_blob_decode(const void *blob, size_t len, int peer, int nqp, cm_blob_t *out,
                              struct sockaddr_storage *dst, char *err, size_t errlen)
{
    cm_blob_t b;
    if (len != sizeof(b)) {
        snprintf(err, errlen, "rank %d sent %zu bytes of rdmacm data, expected %zu", peer, len, sizeof(b));
        return RL_ERR_PROTOCOL;
    }
    memcpy(&b, blob, sizeof(b));
    if (b.magic != VB_CM_MAGIC || b.rank != peer || b.nqp != (uint32_t)nqp || b.addrlen > sizeof(b.addr) ||
        b.addrlen < sizeof(struct sockaddr_in)) {
        snprintf(err, errlen, "rank %d sent malformed rdmacm data (or a different RINGLET_IB_QPS_PER_PEER)", peer);
        return RL_ERR_PROTOCOL;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, b.addr, b.addrlen);
    /* The family must match the length, or rdma_cm reads past what we hold. */
    if (!(ss.ss_family == AF_INET && b.addrlen == sizeof(struct sockaddr_in)) &&
        !(ss.ss_family == AF_INET6 && b.addrlen == sizeof(struct sockaddr_in6))) {
        snprintf(err, errlen, "rank %d sent an rdmacm address of family %u and %u bytes", peer,
                 (unsigned)ss.ss_family, b.addrlen);
        return RL_ERR_PROTOCOL;
    }
    *out = b;
    *dst = ss;
    return RL_OK;
}

/* Not network input, but a user's: every mistake names the entry. */
rl_status_t vb_hca_parse(const char *spec, vb_hca_t *out, int max, int *n, char *err, size_t errlen)
{
    *n = 0;
    if (!spec || !*spec)
        return RL_OK;
    const char *p = spec;
    for (int k = 1;; k++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char entry[128];
        if (len == 0 || len >= sizeof(entry)) {
            snprintf(err, errlen, "RINGLET_IB_HCA=%s: entry %d is %s (expected device[:port],...)", spec, k,
                     len ? "too long" : "empty");
            return RL_ERR_CONFIG;
        }
        memcpy(entry, p, len);
        entry[len] = '\0';
        if (*n == max) {
            snprintf(err, errlen, "RINGLET_IB_HCA=%s: more than %d devices", spec, max);
            return RL_ERR_CONFIG;
        }
        vb_hca_t h = {.port = 0};
        char *colon = strchr(entry, ':');
        if (colon) {
            *colon = '\0';
            char *e;
            long port = strtol(colon + 1, &e, 10);
            if (e == colon + 1 || *e || port < 1 || port > 255) {
                snprintf(err, errlen, "RINGLET_IB_HCA entry %d (%s:%s): the port must be a number from 1 to 255", k,
                         entry, colon + 1);
                return RL_ERR_CONFIG;
            }
            h.port = (int)port;
        }
        if (!entry[0] || strlen(entry) >= sizeof(h.name)) {
            snprintf(err, errlen, "RINGLET_IB_HCA entry %d (%.*s): %s device name", k, (int)len, p,
                     entry[0] ? "too long a" : "no");
            return RL_ERR_CONFIG;
        }
        memcpy(h.name, entry, strlen(entry) + 1);
        for (int i = 0; i < *n; i++)
            if (!strcmp(out[i].name, h.name) && (out[i].port == h.port || !out[i].port || !h.port)) {
                snprintf(err, errlen, "RINGLET_IB_HCA entry %d (%.*s) repeats device %s of entry %d: list each "
                         "device:port once (with a port on both if they differ)", k, (int)len, p, h.name, i + 1);
                return RL_ERR_CONFIG;
            }
        out[(*n)++] = h;
        if (!end)
            return RL_OK;
        p = end + 1;
    }
}
