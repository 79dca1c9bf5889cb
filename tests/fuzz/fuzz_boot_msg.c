/*
 * libFuzzer target: every bootstrap decoder (header, status, hello,
 * authentication messages) on arbitrary bytes. The first byte picks the
 * group size and length limit the header is checked against.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/bootstrap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int nranks = 1 + data[0] % 64;
    data++;
    size--;
    if (size >= 16) {
        rl_boot_hdr_t h;
        char err[128];
        uint8_t hdr[16];
        memcpy(hdr, data, 16);
        if (rl_boot_hdr_decode(hdr, nranks, 1u << 20, &h, err, sizeof(err)) == RL_OK) {
            /* What was accepted is within the limits the caller asked for. */
            if (h.len > (1u << 20) || h.rank < -1 || h.rank >= nranks || h.type < 1 || h.type > RL_BOOT_TYPE_MAX)
                abort();
            uint8_t again[16];
            rl_boot_hdr_encode(&h, again);
            if (memcmp(again, hdr, 16))
                abort();
        }
        data += 16;
        size -= 16;
    }
    /* The payload as every kind of message (on the heap, exact size, so
     * ASan sees any read past it). */
    uint8_t *p = malloc(size ? size : 1);
    memcpy(p, data, size);
    rl_boot_status_msg_t m;
    if (rl_boot_status_decode(p, size, &m) == RL_OK && strlen(m.msg) >= sizeof(m.msg))
        abort();
    rl_boot_hello_t hello;
    rl_boot_hello_decode(p, size, &hello);
    rl_boot_auth_msg_t a;
    for (int t = RL_BOOT_AUTH_CHALLENGE; t <= RL_BOOT_AUTH_PROOF; t++)
        rl_boot_auth_decode(t, p, size, &a);
    free(p);
    return 0;
}
