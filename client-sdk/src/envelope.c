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
#include <zlib.h>

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

static int version_of(const struct env_header *h)
{
    return h->version >= ENV_VERSION_MIN && h->version <= ENV_VERSION ? h->version : ENV_VERSION;
}

static void header_encode(uint8_t out[ENV_HDRBYTES], const struct env_header *h)
{
    out[0] = ENV_MAGIC0;
    out[1] = ENV_MAGIC1;
    out[2] = (uint8_t)version_of(h);
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
    if (buf[2] < ENV_VERSION_MIN || buf[2] > ENV_VERSION || !kind_valid(buf[3]))
        return SYNC_EPROTO;
    h->version = buf[2];
    h->kind = buf[3];
    memcpy(h->device_id, buf + 4, 16);
    h->batch_seq = be64_get(buf + 20);
    return SYNC_OK;
}

/* ---- version 2: compression before encryption ------------------------- */

#define ENC_STORED   0
#define ENC_DEFLATE  1
#define COMPRESS_MIN 64              /* shorter messages never pay */

/* Raw deflate of pt into out (capacity cap); its length, or 0 if it does
 * not fit or fails.  Small messages get the best ratio; large pull pages a
 * fast level (a 1 MiB page would otherwise cost tens of milliseconds). */
static size_t deflate_into(const uint8_t *pt, size_t ptlen, uint8_t *out, size_t cap)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    int level = ptlen <= (64u << 10) ? 9 : ptlen <= (256u << 10) ? 6 : 1;
    if (deflateInit2(&z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return 0;
    z.next_in = (Bytef *)pt;
    z.avail_in = (uInt)ptlen;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    size_t n = rc == Z_STREAM_END ? (size_t)z.total_out : 0;
    deflateEnd(&z);
    return n;
}

/* The version-2 message for pt: encoding byte, then pt or its deflate. */
static uint8_t *encode_v2(const uint8_t *pt, size_t ptlen, size_t *outlen)
{
    uint8_t *m = es_malloc(ptlen + 1);
    if (m == NULL)
        return NULL;
    size_t n = 0;
    if (ptlen >= COMPRESS_MIN && ptlen <= ENV_MAX_PLAIN && ptlen - 5 <= UINT32_MAX)
        n = deflate_into(pt, ptlen, m + 5, ptlen - 5);   /* must beat stored */
    if (n > 0) {
        m[0] = ENC_DEFLATE;
        be32_put(m + 1, (uint32_t)ptlen);
        *outlen = n + 5;
    } else {
        m[0] = ENC_STORED;
        if (ptlen)
            memcpy(m + 1, pt, ptlen);
        *outlen = ptlen + 1;
    }
    return m;
}

/* Decodes a version-2 message in place of *m (malloc'd); SYNC_EPROTO if it
 * does not decode. */
static int decode_v2(uint8_t **m, size_t *mlen)
{
    uint8_t *p = *m;
    size_t n = *mlen;
    if (n >= 1 && p[0] == ENC_STORED) {
        memmove(p, p + 1, n - 1);
        *mlen = n - 1;
        return SYNC_OK;
    }
    if (n < 5 || p[0] != ENC_DEFLATE)
        return SYNC_EPROTO;
    uint32_t plain = be32_get(p + 1);
    if (plain > ENV_MAX_PLAIN)
        return SYNC_EPROTO;
    uint8_t *out = es_malloc(plain ? plain : 1);
    if (out == NULL)
        return SYNC_ENOMEM;
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -15) != Z_OK) {
        es_free(out);
        return SYNC_ENOMEM;
    }
    z.next_in = p + 5;
    z.avail_in = (uInt)(n - 5);
    z.next_out = out;
    z.avail_out = plain;
    int rc = inflate(&z, Z_FINISH);
    int ok = rc == Z_STREAM_END && z.total_out == plain && z.avail_in == 0;
    inflateEnd(&z);
    if (!ok) {
        es_free(out);
        return SYNC_EPROTO;
    }
    es_free(p);
    *m = out;
    *mlen = plain;
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
    if (ptlen > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX - 1
        || ptlen > SIZE_MAX - ENV_OVERHEAD - 1)
        return SYNC_ETOOBIG;

    uint8_t *enc = NULL;
    if (version_of(h) >= 2) {
        enc = encode_v2(pt, ptlen, &ptlen);
        if (enc == NULL)
            return SYNC_ENOMEM;
        pt = enc;
    }
    size_t total = ptlen + ENV_OVERHEAD;
    uint8_t *p = es_malloc(total);
    if (p == NULL) {
        es_free(enc);
        return SYNC_ENOMEM;
    }

    header_encode(p, h);
    randombytes_buf(p + ENV_HDRBYTES, ENV_NONCEBYTES);

    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(
        p + ENV_BODY_OFF, &clen, pt, ptlen, p, ENV_HDRBYTES, NULL,
        p + ENV_HDRBYTES, key);
    es_free(enc);
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
    /* es_malloc(0) may return NULL; success must always be non-NULL. */
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
    if (hdr.version >= 2 && (rc = decode_v2(&m, &mlen)) != SYNC_OK) {
        es_free(m);
        return rc;
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
