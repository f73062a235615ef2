/* pcrypt.c - sealing personal values and blind indexes; see pcrypt.h. */
#include "pcrypt.h"

#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "eldersync.h"
#include "util.h"

/* table NUL column NUL pk */
static uint8_t *make_ad(const char *table, const char *column, const uint8_t *pk, size_t pklen,
                        size_t *adlen)
{
    size_t t = strlen(table) + 1, c = strlen(column) + 1;
    uint8_t *ad = es_malloc(t + c + pklen + 1);
    if (ad == NULL)
        return NULL;
    memcpy(ad, table, t);
    memcpy(ad + t, column, c);
    if (pklen)
        memcpy(ad + t + c, pk, pklen);
    *adlen = t + c + pklen;
    return ad;
}

/* The synthetic nonce: BLAKE2b-192 keyed with the data key, personalised
 * for this use (so it is a different function of the key from anything
 * else keyed by it), of the associated data's length, the associated data
 * and the plaintext.  A value is then a function of (key, table, column,
 * row, plaintext): two different plaintexts of one cell get different
 * nonces (a collision is a 2^-96 birthday event), and the same plaintext
 * gets the same bytes, which is what lets a pull carry the plaintext and
 * the tablet rebuild the exact sealed value (docs/ARCHITECTURE.md,
 * "Deterministic sealing"). */
static void synthetic_nonce(uint8_t nonce[24], const uint8_t key[32], const uint8_t *ad,
                            size_t adlen, const uint8_t *pt, size_t ptlen)
{
    static const uint8_t personal[crypto_generichash_blake2b_PERSONALBYTES] = "es.pv.nonce.v1";
    uint8_t len[8];
    crypto_generichash_blake2b_state h;
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)((uint64_t)adlen >> (8 * i));
    crypto_generichash_blake2b_init_salt_personal(&h, key, 32, 24, NULL, personal);
    crypto_generichash_blake2b_update(&h, len, sizeof len);
    crypto_generichash_blake2b_update(&h, ad, adlen);
    crypto_generichash_blake2b_update(&h, pt, ptlen);
    crypto_generichash_blake2b_final(&h, nonce, 24);
    sodium_memzero(&h, sizeof h);
}

int pv_seal(const uint8_t key[32], uint32_t key_id, const char *table, const char *column,
            const uint8_t *pk, size_t pklen, const uint8_t *pt, size_t ptlen,
            uint8_t **out, size_t *outlen)
{
    size_t adlen;
    *out = NULL;
    *outlen = 0;
    uint8_t *ad = make_ad(table, column, pk, pklen, &adlen);
    uint8_t *ct = es_malloc(PV_OVERHEAD + ptlen);
    if (ad == NULL || ct == NULL) {
        es_free(ad);
        es_free(ct);
        return SYNC_ENOMEM;
    }
    ct[0] = PV_VERSION;
    be32_put(ct + 1, key_id);
    synthetic_nonce(ct + 5, key, ad, adlen, pt, ptlen);
    unsigned long long n = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(ct + PV_HDRBYTES, &n, pt, ptlen, ad, adlen, NULL,
                                               ct + 5, key);
    es_free(ad);
    *out = ct;
    *outlen = PV_HDRBYTES + (size_t)n;
    return SYNC_OK;
}

int pv_is_sealed(const uint8_t *ct, size_t ctlen, uint32_t *key_id)
{
    if (ct == NULL || ctlen < PV_OVERHEAD || ct[0] != PV_VERSION)
        return 0;
    if (key_id)
        *key_id = be32_get(ct + 1);
    return 1;
}

int pv_open(const uint8_t key[32], const char *table, const char *column,
            const uint8_t *pk, size_t pklen, const uint8_t *ct, size_t ctlen,
            uint8_t **pt, size_t *ptlen)
{
    return pv_open_ex(key, table, column, pk, pklen, ct, ctlen, pt, ptlen, NULL);
}

int pv_open_ex(const uint8_t key[32], const char *table, const char *column,
               const uint8_t *pk, size_t pklen, const uint8_t *ct, size_t ctlen,
               uint8_t **pt, size_t *ptlen, int *synthetic)
{
    size_t adlen;
    *pt = NULL;
    *ptlen = 0;
    if (!pv_is_sealed(ct, ctlen, NULL))
        return SYNC_ECRYPTO;
    uint8_t *ad = make_ad(table, column, pk, pklen, &adlen);
    uint8_t *p = es_malloc(ctlen - PV_OVERHEAD + 1);
    if (ad == NULL || p == NULL) {
        es_free(ad);
        es_free(p);
        return SYNC_ENOMEM;
    }
    unsigned long long n = 0;
    int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(p, &n, NULL, ct + PV_HDRBYTES,
                                                        ctlen - PV_HDRBYTES, ad, adlen, ct + 5, key);
    if (rc == 0 && synthetic) {
        uint8_t nonce[24];
        synthetic_nonce(nonce, key, ad, adlen, p, (size_t)n);
        *synthetic = memcmp(nonce, ct + 5, sizeof nonce) == 0;   /* public bytes */
    }
    es_free(ad);
    if (rc != 0) {
        es_free(p);
        return SYNC_ECRYPTO;
    }
    p[n] = '\0';
    *pt = p;
    *ptlen = (size_t)n;
    return SYNC_OK;
}

void pv_blind(uint8_t out[PV_BIDXBYTES], const uint8_t key[32], const uint8_t *v, size_t n)
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, key, 32, PV_BIDXBYTES);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = v[i];
        if (c == ' ' || c == '-' || c == '\t')
            continue;
        if (c >= 'a' && c <= 'z')
            c = (uint8_t)(c - 32);
        crypto_generichash_update(&h, &c, 1);
    }
    crypto_generichash_final(&h, out, PV_BIDXBYTES);
}
