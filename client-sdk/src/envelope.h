/* envelope.h - the encrypted wire envelope around every push/pull body.
 *
 * Shared by the tablet library and the server.  Each HTTP body is one
 * envelope: a small clear header followed by XChaCha20-Poly1305-IETF
 * ciphertext under crypto_kx session keys:
 *
 *   offset  0   2 bytes  magic "ES"
 *           2   1 byte   envelope version (1 or 2, see below)
 *           3   1 byte   kind (enum env_kind)
 *           4  16 bytes  device id
 *          20   8 bytes  batch_seq, big-endian (0 for pulls)
 *          28  24 bytes  random nonce
 *          52   ...      ciphertext || 16-byte tag
 *
 * Bytes 0..27 are the associated data, so the header is authenticated
 * although it travels in clear (the server needs the device id to pick the
 * key before it can decrypt).
 *
 * Version 1: the ciphertext holds the message itself.  Version 2: it holds
 * one encoding byte, then 0 = the message as is, 1 = the message's length
 * (u32, big-endian) and its zlib (deflate) compression: compressed before
 * it is encrypted, used only when that is shorter.  A reply is sealed in
 * the version of its request, so a version-1 tablet keeps working.
 *
 * Callers must have called sodium_init() once.  Functions return SYNC_OK or
 * a negative SYNC_E* code from eldersync.h.
 */
#ifndef ES_ENVELOPE_H
#define ES_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#define ENV_VERSION     2           /* what this side sends */
#define ENV_VERSION_MIN 1           /* oldest still accepted */
#define ENV_HDRBYTES    28
#define ENV_NONCEBYTES  24
#define ENV_TAGBYTES    16
#define ENV_OVERHEAD    (ENV_HDRBYTES + ENV_NONCEBYTES + ENV_TAGBYTES)
#define ENV_KEYBYTES    32

enum env_kind {
    ENV_PUSH       = 1,
    ENV_PULL       = 2,
    ENV_PUSH_REPLY = 3,
    ENV_PULL_REPLY = 4
};

struct env_header {
    int      version;       /* 1 or 2; env_seal() treats anything else as ENV_VERSION */
    int      kind;          /* enum env_kind */
    uint8_t  device_id[16];
    uint64_t batch_seq;     /* 0 for pulls */
};

/* Parses the clear header only -- nothing is authenticated yet, so use the
 * result just to choose a key.  SYNC_EPROTO if buf is shorter than the
 * smallest possible envelope (ENV_OVERHEAD), the magic is wrong, the version
 * is not ENV_VERSION_MIN..ENV_VERSION or the kind is unknown. */
int env_peek(const uint8_t *buf, size_t len, struct env_header *h);

/* Seals pt under key with a fresh random nonce, in h->version (version 2
 * compresses pt when that pays).  *out is malloc'd (release with free())
 * and holds at most ptlen + ENV_OVERHEAD (+ 1 in version 2) bytes; on failure *out is NULL
 * and *outlen 0.  SYNC_EINVAL for an unknown kind or pt NULL with ptlen > 0,
 * SYNC_ETOOBIG past the cipher's message limit, SYNC_ENOMEM. */
int env_seal(const struct env_header *h, const uint8_t key[ENV_KEYBYTES],
             const uint8_t *pt, size_t ptlen, uint8_t **out, size_t *outlen);

/* Checks the header (SYNC_EPROTO, also when its kind is not `kind`), then
 * authenticates and decrypts.  Any authentication failure is SYNC_ECRYPTO
 * with no further detail.  On success *pt is malloc'd (free()) -- a 1-byte
 * allocation when *ptlen is 0, so success is always a non-NULL *pt -- and
 * *h (if h is not NULL) holds the now-authenticated header.  On failure *pt
 * is NULL, *ptlen 0 and *h zeroed.  A version-2 message that does not
 * decode (unknown encoding, bad deflate stream, length over ENV_MAX_PLAIN)
 * is SYNC_EPROTO. */
#define ENV_MAX_PLAIN   (64u << 20)
int env_open(const uint8_t *buf, size_t len, int kind,
             const uint8_t key[ENV_KEYBYTES], struct env_header *h,
             uint8_t **pt, size_t *ptlen);

/* Session keys with crypto_kx: the device is the kx client, the server is
 * the kx server.  rx decrypts what the peer sends, tx encrypts what we send,
 * so the device's tx equals the server's rx and vice versa.  SYNC_ECRYPTO
 * (outputs zeroed) if the peer's public key is unacceptable. */
int env_device_keys(uint8_t rx[ENV_KEYBYTES], uint8_t tx[ENV_KEYBYTES],
                    const uint8_t dev_pk[32], const uint8_t dev_sk[32],
                    const uint8_t srv_pk[32]);
int env_server_keys(uint8_t rx[ENV_KEYBYTES], uint8_t tx[ENV_KEYBYTES],
                    const uint8_t srv_pk[32], const uint8_t srv_sk[32],
                    const uint8_t dev_pk[32]);

/* Batch signatures.  A push plaintext is the batch payload followed by
 * ENV_SIGBYTES of Ed25519 signature by the device's signing key over
 *     "ES-batch-v1" || batch_seq (u64, big-endian) || device id || BLAKE2b-256(payload)
 * so the server (and any later audit) can prove which device recorded a
 * batch.  Both write the payload hash to hash (may be NULL).  Sign returns
 * SYNC_OK; verify returns SYNC_OK or SYNC_ECRYPTO. */
#define ENV_SIGBYTES 64
int env_batch_sign(uint8_t sig[ENV_SIGBYTES], const uint8_t sk[64], const uint8_t dev[16],
                   uint64_t seq, const uint8_t *payload, size_t len, uint8_t hash[32]);
int env_batch_verify(const uint8_t sig[ENV_SIGBYTES], const uint8_t pk[32], const uint8_t dev[16],
                     uint64_t seq, const uint8_t *payload, size_t len, uint8_t hash[32]);

#endif
