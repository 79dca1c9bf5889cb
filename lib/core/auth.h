/*
 * Shared-secret authentication of the bootstrap (RINGLET_AUTH_KEY or
 * RINGLET_AUTH_KEY_FILE). The secret is hashed into a MAC key; each side
 * proves it holds the key by a MAC over both sides' fresh nonces, so a
 * recorded exchange cannot be replayed and neither side can be tricked into
 * answering the other's challenge. All cryptography is libsodium's.
 */
#ifndef RL_AUTH_H
#define RL_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include "core/config.h"
#include "ringlet.h"

#define RL_AUTH_KEY_BYTES 32
#define RL_AUTH_NONCE_BYTES 32
#define RL_AUTH_MAC_BYTES 32
#define RL_AUTH_SECRET_MAX 4096

typedef struct {
    uint8_t key[RL_AUTH_KEY_BYTES];
} rl_auth_key_t;

/* Which side a MAC speaks for: the two proofs can never be swapped. */
typedef enum { RL_AUTH_ROOT = 1, RL_AUTH_RANK = 2 } rl_auth_role_t;

/* What a MAC binds: both nonces and the identity being claimed. */
typedef struct {
    uint8_t root_nonce[RL_AUTH_NONCE_BYTES];
    uint8_t rank_nonce[RL_AUTH_NONCE_BYTES];
    int32_t rank, nranks;
    uint16_t version;
} rl_auth_ctx_t;

/* Nonzero when authentication is compiled in (libsodium found). */
int rl_auth_available(void);
/* Derive the key from RINGLET_AUTH_KEY / RINGLET_AUTH_KEY_FILE. *have = 0
 * when neither is set. RL_ERR_CONFIG (unreadable file, empty secret) or
 * RL_ERR_UNSUPPORTED (built without libsodium) with a message. */
rl_status_t rl_auth_load(const rl_config_t *cfg, rl_auth_key_t *key, int *have, char *err, size_t errlen);
/* Key from a secret given directly (tests, and the loader above). */
rl_status_t rl_auth_derive(const void *secret, size_t len, rl_auth_key_t *key);
/* Fresh random nonce. */
void rl_auth_nonce(uint8_t out[RL_AUTH_NONCE_BYTES]);
void rl_auth_mac(const rl_auth_key_t *key, rl_auth_role_t role, const rl_auth_ctx_t *ctx,
                 uint8_t mac[RL_AUTH_MAC_BYTES]);
/* Constant-time check of a MAC received from the network. */
int rl_auth_verify(const rl_auth_key_t *key, rl_auth_role_t role, const rl_auth_ctx_t *ctx,
                   const uint8_t mac[RL_AUTH_MAC_BYTES]);
/* Wipe key material. */
void rl_auth_wipe(void *p, size_t len);

#endif
