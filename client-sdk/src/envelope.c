/* envelope.c - seal and open the encrypted wire envelope; see envelope.h.
 *
 * The header is bound to the ciphertext as associated data, so an attacker
 * can neither edit it (e.g. replay a batch under another batch_seq or device
 * id) nor move a ciphertext into another envelope.  Authentication failures
 * all map to one SYNC_ECRYPTO so the peer learns nothing about why.
 */
#include "envelope.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "eldersync.h"
#include "util.h"

#define ENV_MAGIC0 'E'
#define ENV_MAGIC1 'S'
#define ENV_BODY_OFF (ENV_HDRBYTES + ENV_NONCEBYTES)   /* ciphertext start */

/* Guard against the layout drifting from what libsodium actually uses. */
_Static_assert(ENV_NONCEBYTES == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
               "nonce size");
_Static_assert(ENV_TAGBYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES,
               "tag size");
_Static_assert(ENV_KEYBYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
               "key size");
_Static_assert(ENV_KEYBYTES == crypto_kx_SESSIONKEYBYTES, "kx key size");

static int kind_valid(int kind)
{
    return kind >= ENV_PUSH && kind <= ENV_PULL_REPLY;
}

static void header_encode(uint8_t out[ENV_HDRBYTES], const struct env_header *h)
{
    out[0] = ENV_MAGIC0;
    out[1] = ENV_MAGIC1;
    out[2] = ENV_VERSION;
    out[3] = (uint8_t)h->kind;
    memcpy(out + 4, h->device_id, 16);
    be64_put(out + 20, h->batch_seq);
}

int env_peek(const uint8_t *buf, size_t len, struct env_header *h)
{
    memset(h, 0, sizeof *h);
    /* Anything shorter cannot even hold an empty message's tag. */
    if (buf == NULL || len < ENV_OVERHEAD)
        return SYNC_EPROTO;
    if (buf[0] != ENV_MAGIC0 || buf[1] != ENV_MAGIC1)
        return SYNC_EPROTO;
    if (buf[2] != ENV_VERSION || !kind_valid(buf[3]))
        return SYNC_EPROTO;
    h->version = buf[2];
    h->kind = buf[3];
    memcpy(h->device_id, buf + 4, 16);
    h->batch_seq = be64_get(buf + 20);
    return SYNC_OK;
}

int env_seal(const struct env_header *h, const uint8_t key[ENV_KEYBYTES],
             const uint8_t *pt, size_t ptlen, uint8_t **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (h == NULL || key == NULL || !kind_valid(h->kind)
        || (pt == NULL && ptlen > 0))
        return SYNC_EINVAL;
    if (ptlen > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX
        || ptlen > SIZE_MAX - ENV_OVERHEAD)
        return SYNC_ETOOBIG;

    size_t total = ptlen + ENV_OVERHEAD;
    uint8_t *p = es_malloc(total);
    if (p == NULL)
        return SYNC_ENOMEM;

    header_encode(p, h);
    randombytes_buf(p + ENV_HDRBYTES, ENV_NONCEBYTES);

    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(
        p + ENV_BODY_OFF, &clen, pt, ptlen, p, ENV_HDRBYTES, NULL,
        p + ENV_HDRBYTES, key);
    if (clen != ptlen + ENV_TAGBYTES) {     /* cannot happen; be safe */
        es_free(p);
        return SYNC_ERROR;
    }
    *out = p;
    *outlen = total;
    return SYNC_OK;
}

int env_open(const uint8_t *buf, size_t len, int kind,
             const uint8_t key[ENV_KEYBYTES], struct env_header *h,
             uint8_t **pt, size_t *ptlen)
{
    struct env_header hdr;

    *pt = NULL;
    *ptlen = 0;
    if (h != NULL)
        memset(h, 0, sizeof *h);
    if (key == NULL)
        return SYNC_EINVAL;

    int rc = env_peek(buf, len, &hdr);
    if (rc != SYNC_OK)
        return rc;
    if (hdr.kind != kind)
        return SYNC_EPROTO;

    size_t clen = len - ENV_BODY_OFF;
    size_t mlen = clen - ENV_TAGBYTES;
    /* malloc(0) may return NULL; success must always be non-NULL. */
    uint8_t *m = es_malloc(mlen ? mlen : 1);
    if (m == NULL)
        return SYNC_ENOMEM;

    unsigned long long got = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            m, &got, NULL, buf + ENV_BODY_OFF, clen, buf, ENV_HDRBYTES,
            buf + ENV_HDRBYTES, key) != 0 || got != mlen) {
        sodium_memzero(m, mlen);    /* never leak unauthenticated bytes */
        es_free(m);
        return SYNC_ECRYPTO;
    }
    if (h != NULL)
        *h = hdr;
    *pt = m;
    *ptlen = mlen;
    return SYNC_OK;
}

int env_device_keys(uint8_t rx[ENV_KEYBYTES], uint8_t tx[ENV_KEYBYTES],
                    const uint8_t dev_pk[32], const uint8_t dev_sk[32],
                    const uint8_t srv_pk[32])
{
    if (crypto_kx_client_session_keys(rx, tx, dev_pk, dev_sk, srv_pk) != 0) {
        sodium_memzero(rx, ENV_KEYBYTES);
        sodium_memzero(tx, ENV_KEYBYTES);
        return SYNC_ECRYPTO;
    }
    return SYNC_OK;
}

int env_server_keys(uint8_t rx[ENV_KEYBYTES], uint8_t tx[ENV_KEYBYTES],
                    const uint8_t srv_pk[32], const uint8_t srv_sk[32],
                    const uint8_t dev_pk[32])
{
    if (crypto_kx_server_session_keys(rx, tx, srv_pk, srv_sk, dev_pk) != 0) {
        sodium_memzero(rx, ENV_KEYBYTES);
        sodium_memzero(tx, ENV_KEYBYTES);
        return SYNC_ECRYPTO;
    }
    return SYNC_OK;
}

/* The signed message: domain tag, batch_seq, device id, payload hash. */
static void batch_message(uint8_t msg[11 + 8 + 16 + 32], const uint8_t dev[16], uint64_t seq,
                          const uint8_t *payload, size_t len, uint8_t *hash)
{
    memcpy(msg, "ES-batch-v1", 11);
    be64_put(msg + 11, seq);
    memcpy(msg + 19, dev, 16);
    crypto_generichash(msg + 35, 32, payload, len, NULL, 0);
    if (hash)
        memcpy(hash, msg + 35, 32);
}

int env_batch_sign(uint8_t sig[ENV_SIGBYTES], const uint8_t sk[64], const uint8_t dev[16],
                   uint64_t seq, const uint8_t *payload, size_t len, uint8_t hash[32])
{
    uint8_t msg[67];
    batch_message(msg, dev, seq, payload, len, hash);
    crypto_sign_detached(sig, NULL, msg, sizeof msg, sk);
    return SYNC_OK;
}

int env_batch_verify(const uint8_t sig[ENV_SIGBYTES], const uint8_t pk[32], const uint8_t dev[16],
                     uint64_t seq, const uint8_t *payload, size_t len, uint8_t hash[32])
{
    uint8_t msg[67];
    batch_message(msg, dev, seq, payload, len, hash);
    return crypto_sign_verify_detached(sig, msg, sizeof msg, pk) == 0 ? SYNC_OK : SYNC_ECRYPTO;
}
