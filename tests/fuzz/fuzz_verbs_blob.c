/* libFuzzer target: verbs connection data (oob QP record and rdmacm
 * record) as it arrives from a peer through the bootstrap. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "transport/verbs/verbs_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int nqp = 1 + data[0] % VB_MAX_QPS;
    uint8_t *p = malloc(size - 1 ? size - 1 : 1);
    memcpy(p, data + 1, size - 1);
    char err[256];
    vb_blob_t b;
    if (vb_blob_decode(p, size - 1, nqp, &b, err, sizeof(err)) == RL_OK) {
        if (b.nqp != (uint32_t)nqp || b.psn > 0xffffff)
            abort();
        for (int q = 0; q < nqp; q++)
            if (b.qpn[q] > 0xffffff)
                abort();
    }
    cm_blob_t cb;
    struct sockaddr_storage ss;
    if (vb_cm_blob_decode(p, size - 1, 1, nqp, &cb, &ss, err, sizeof(err)) == RL_OK) {
        if (cb.addrlen > sizeof(cb.addr) || (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
            abort();
    }
    free(p);
    return 0;
}
