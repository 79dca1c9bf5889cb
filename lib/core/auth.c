#include "core/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

#ifdef RL_HAVE_SODIUM
#include <sodium.h>

int rl_auth_available(void) { return 1; }

rl_status_t rl_auth_derive(const void *secret, size_t len, rl_auth_key_t *key)
{
    if (sodium_init() < 0)
        return RL_ERR_INTERNAL;
    /* Secrets are text of any length; the MAC wants exactly its key size.
     * The domain string keeps this key apart from any other use of it. */
    static const char domain[] = "ringlet bootstrap auth v1";
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof(key->key));
    crypto_generichash_update(&st, (const unsigned char *)domain, sizeof(domain));
    crypto_generichash_update(&st, secret, len);
    crypto_generichash_final(&st, key->key, sizeof(key->key));
    sodium_memzero(&st, sizeof(st));
    return RL_OK;
}

void rl_auth_nonce(uint8_t out[RL_AUTH_NONCE_BYTES]) { randombytes_buf(out, RL_AUTH_NONCE_BYTES); }

/* The MAC input, in a fixed byte layout independent of struct padding. */
static size_t auth_message(rl_auth_role_t role, const rl_auth_ctx_t *c, uint8_t *m)
{
    size_t n = 0;
    memcpy(m + n, role == RL_AUTH_ROOT ? "RLroot" : "RLrank", 6);
    n += 6;
    memcpy(m + n, c->root_nonce, RL_AUTH_NONCE_BYTES);
    n += RL_AUTH_NONCE_BYTES;
    memcpy(m + n, c->rank_nonce, RL_AUTH_NONCE_BYTES);
    n += RL_AUTH_NONCE_BYTES;
    uint32_t v[3] = {(uint32_t)c->rank, (uint32_t)c->nranks, c->version};
    for (int i = 0; i < 3; i++)
        for (int b = 0; b < 4; b++)
            m[n++] = (uint8_t)(v[i] >> (8 * b));
    return n;
}

void rl_auth_mac(const rl_auth_key_t *key, rl_auth_role_t role, const rl_auth_ctx_t *ctx,
                 uint8_t mac[RL_AUTH_MAC_BYTES])
{
    uint8_t m[6 + 2 * RL_AUTH_NONCE_BYTES + 12];
    size_t n = auth_message(role, ctx, m);
    crypto_auth(mac, m, n, key->key);
}

int rl_auth_verify(const rl_auth_key_t *key, rl_auth_role_t role, const rl_auth_ctx_t *ctx,
                   const uint8_t mac[RL_AUTH_MAC_BYTES])
{
    uint8_t m[6 + 2 * RL_AUTH_NONCE_BYTES + 12];
    size_t n = auth_message(role, ctx, m);
    return crypto_auth_verify(mac, m, n, key->key) == 0;
}

void rl_auth_wipe(void *p, size_t len) { sodium_memzero(p, len); }

#else /* built without libsodium: a configured key is an error, never ignored */

int rl_auth_available(void) { return 0; }
rl_status_t rl_auth_derive(const void *secret, size_t len, rl_auth_key_t *key)
{
    (void)secret;
    (void)len;
    (void)key;
    return RL_ERR_UNSUPPORTED;
}
void rl_auth_nonce(uint8_t out[RL_AUTH_NONCE_BYTES]) { memset(out, 0, RL_AUTH_NONCE_BYTES); }
void rl_auth_mac(const rl_auth_key_t *key, rl_auth_role_t role, const rl_auth_ctx_t *ctx,
                 uint8_t mac[RL_AUTH_MAC_BYTES])
{
    (void)key;
    (void)role;
    (void)ctx;
    memset(mac, 0, RL_AUTH_MAC_BYTES);
}
int rl_auth_verify(const rl_auth_key_t *key, rl_auth_role_t role, const rl_auth_ctx_t *ctx,
                   const uint8_t mac[RL_AUTH_MAC_BYTES])
{
    (void)key;
    (void)role;
    (void)ctx;
    (void)mac;
    return 0;
}
void rl_auth_wipe(void *p, size_t len)
{
    volatile uint8_t *v = p;
    while (len--)
        *v++ = 0;
}
#endif

/* Read the secret file; a trailing newline is not part of the secret. */
static rl_status_t read_secret(const char *path, uint8_t *buf, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "RINGLET_AUTH_KEY_FILE=%s: %s", path, strerror(errno));
        return RL_ERR_CONFIG;
    }
    struct stat sb;
    if (fstat(fd, &sb) == 0 && (sb.st_mode & (S_IRWXG | S_IRWXO)))
        RL_WARN("RINGLET_AUTH_KEY_FILE=%s is readable by group or others (mode %03o): chmod 600 it", path,
                (unsigned)(sb.st_mode & 0777));
    size_t n = 0;
    ssize_t r;
    while (n < RL_AUTH_SECRET_MAX && (r = read(fd, buf + n, RL_AUTH_SECRET_MAX - n)) > 0)
        n += (size_t)r;
    char extra;
    int too_long = n == RL_AUTH_SECRET_MAX && read(fd, &extra, 1) > 0;
    close(fd);
    if (too_long) {
        snprintf(err, errlen, "RINGLET_AUTH_KEY_FILE=%s: longer than %d bytes", path, RL_AUTH_SECRET_MAX);
        return RL_ERR_CONFIG;
    }
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    *len = n;
    return RL_OK;
}

rl_status_t rl_auth_load(const rl_config_t *cfg, rl_auth_key_t *key, int *have, char *err, size_t errlen)
{
    *have = 0;
    if (!cfg->auth_key[0] && !cfg->auth_key_file[0])
        return RL_OK;
    if (cfg->auth_key[0] && cfg->auth_key_file[0]) {
        snprintf(err, errlen, "set RINGLET_AUTH_KEY or RINGLET_AUTH_KEY_FILE, not both");
        return RL_ERR_CONFIG;
    }
    if (!rl_auth_available()) {
        snprintf(err, errlen, "RINGLET_AUTH_KEY%s is set but ringlet was built without libsodium",
                 cfg->auth_key_file[0] ? "_FILE" : "");
        return RL_ERR_UNSUPPORTED;
    }
    uint8_t secret[RL_AUTH_SECRET_MAX];
    size_t len = strlen(cfg->auth_key);
    rl_status_t st = RL_OK;
    if (cfg->auth_key[0])
        memcpy(secret, cfg->auth_key, len);
    else
        st = read_secret(cfg->auth_key_file, secret, &len, err, errlen);
    if (st == RL_OK && len == 0) {
        snprintf(err, errlen, "RINGLET_AUTH_KEY_FILE=%s holds an empty secret", cfg->auth_key_file);
        st = RL_ERR_CONFIG;
    }
    if (st == RL_OK)
        st = rl_auth_derive(secret, len, key);
    rl_auth_wipe(secret, sizeof(secret));
    if (st == RL_OK)
        *have = 1;
    return st;
}
