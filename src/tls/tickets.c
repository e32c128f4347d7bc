/*
 * Session ticket keys (RFC 5077 tickets in TLS 1.2, PSK tickets in TLS 1.3), shared by every
 * listener of the process so that a config reload or a certificate rotation does not cost the
 * clients a full handshake.
 *
 * A ring of NKEYS keys; `gen` counts rotations and gen % NKEYS is the key that encrypts new
 * tickets. The main thread rotates every hour (reload.c's timer) by filling slot gen + 1 and then
 * publishing it; tickets under the two previous keys are still accepted, and renewed. The slot
 * being filled is three generations old: no handshake reads it (one would have to stall for an
 * hour between loading `gen` and reading the key).
 *
 * Tickets are AES-256-CBC + HMAC-SHA256, as OpenSSL's own, through the OpenSSL 3 EVP_MAC callback.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/log.h"
#include "tls/tls_int.h"

#define NKEYS 4
#define ACCEPTED 3                  /* the current key and two previous ones */
#define ROTATE_MS (3600u * 1000u)

struct ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
};

static struct ticket_key keys[NKEYS];
static atomic_uint gen;
static EVP_CIPHER *cipher;          /* fetched once: respects FIPS mode's default properties */
static uint64_t rotated_ms;         /* main thread */

static int fill(struct ticket_key *k)
{
    return RAND_bytes(k->name, sizeof(k->name)) == 1 && RAND_priv_bytes(k->aes, sizeof(k->aes)) == 1 &&
                   RAND_priv_bytes(k->hmac, sizeof(k->hmac)) == 1
               ? 0
               : -1;
}

int tls_tickets_init(void)
{
    if (cipher != NULL)
        return 0;
    if ((cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL)) == NULL)
        return -1;
    if (fill(&keys[0]) != 0) {
        EVP_CIPHER_free(cipher);
        cipher = NULL;
        return -1;
    }
    atomic_store(&gen, 0);
    return 0;
}

void tls_tickets_free(void)
{
    EVP_CIPHER_free(cipher);
    cipher = NULL;
    OPENSSL_cleanse(keys, sizeof(keys));
    rotated_ms = 0;
}

void tls_tickets_rotate(void)
{
    unsigned next = atomic_load(&gen) + 1;

    if (cipher == NULL || fill(&keys[next % NKEYS]) != 0) {
        gy_warn("TLS: cannot make a new session ticket key; keeping the current one");
        return;
    }
    atomic_store_explicit(&gen, next, memory_order_release);
}

void tls_tickets_tick(uint64_t now_ms)
{
    if (rotated_ms == 0) {
        rotated_ms = now_ms;
    } else if (now_ms - rotated_ms >= ROTATE_MS) {
        tls_tickets_rotate();
        rotated_ms = now_ms;
    }
}

static int hmac_init(EVP_MAC_CTX *h, const struct ticket_key *k)
{
    OSSL_PARAM params[3];

    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, sizeof(k->hmac));
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    return EVP_MAC_CTX_set_params(h, params) == 1 ? 0 : -1;
}

int tls_ticket_cb(SSL *s, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *ctx, EVP_MAC_CTX *hctx,
                  int enc)
{
    unsigned g = atomic_load_explicit(&gen, memory_order_acquire);
    const struct ticket_key *k;

    if (cipher == NULL)
        return enc ? -1 : 0;
    if (enc) {
        k = &keys[g % NKEYS];
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(cipher)) != 1)
            return -1;
        memcpy(key_name, k->name, sizeof(k->name));
        if (EVP_EncryptInit_ex(ctx, cipher, NULL, k->aes, iv) != 1 || hmac_init(hctx, k) != 0)
            return -1;
        return 1;
    }
    for (unsigned i = 0; i < ACCEPTED && i <= g; i++) {
        k = &keys[(g - i) % NKEYS];
        if (memcmp(key_name, k->name, sizeof(k->name)) != 0)
            continue;
        if (EVP_DecryptInit_ex(ctx, cipher, NULL, k->aes, iv) != 1 || hmac_init(hctx, k) != 0)
            return -1;
        /* 2: accepted, and a new ticket is issued under the current key. TLS 1.3 tickets are
         * single-use for clients, and OpenSSL sends none after a resumption unless asked: always
         * renew them, or a client falls back to a full handshake every few connections. */
        return i == 0 && SSL_version(s) != TLS1_3_VERSION ? 1 : 2;
    }
    return 0; /* unknown key: a full handshake */
}
