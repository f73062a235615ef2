/* pcrypt.h - personal values encrypted at rest, and blind indexes.
 *
 * A sealed value is a BLOB:
 *     0xE1 (version) | key id (u32, big-endian) | 24-byte nonce |
 *     XChaCha20-Poly1305-IETF ciphertext and tag
 * with associated data  table NUL column NUL primary key, so a value cannot
 * be moved to another row or column.  Tablet and server use the same code.
 *
 * The nonce is synthetic: derived from the key, the associated data and the
 * plaintext (see pcrypt.c), so sealing is deterministic.  Inside an
 * encrypted pull a value may travel opened, as a BLOB
 *     0xE2 (PV_OPENED) | key id (u32, big-endian) | plaintext
 * and the tablet seals it again into the very bytes the server holds.
 */
#ifndef ES_PCRYPT_H
#define ES_PCRYPT_H

#include <stddef.h>
#include <stdint.h>

#define PV_VERSION   0xE1
#define PV_OPENED    0xE2
#define PV_OPENED_HDR (1 + 4)
#define PV_HDRBYTES  (1 + 4 + 24)
#define PV_OVERHEAD  (PV_HDRBYTES + 16)
#define PV_BIDXBYTES 16

/* Seals pt.  *out is malloc'd (free()); NULL on failure (SYNC_ENOMEM). */
int pv_seal(const uint8_t key[32], uint32_t key_id, const char *table, const char *column,
            const uint8_t *pk, size_t pklen, const uint8_t *pt, size_t ptlen,
            uint8_t **out, size_t *outlen);

/* Opens a sealed value with key.  *pt is malloc'd and NUL-terminated (free()).
 * SYNC_ECRYPTO if it does not authenticate. */
int pv_open(const uint8_t key[32], const char *table, const char *column,
            const uint8_t *pk, size_t pklen, const uint8_t *ct, size_t ctlen,
            uint8_t **pt, size_t *ptlen);

/* pv_open, and *synthetic = 1 if ct's nonce is the one pv_seal derives for
 * this plaintext (so pv_seal rebuilds ct from the plaintext), else 0.
 * Values sealed before nonces were synthetic had random nonces: 0. */
int pv_open_ex(const uint8_t key[32], const char *table, const char *column,
               const uint8_t *pk, size_t pklen, const uint8_t *ct, size_t ctlen,
               uint8_t **pt, size_t *ptlen, int *synthetic);

/* 1 and *key_id if ct has the sealed-value layout, else 0. */
int pv_is_sealed(const uint8_t *ct, size_t ctlen, uint32_t *key_id);

/* Blind index of a value: keyed BLAKE2b-128 of its normalised form (ASCII
 * upper-cased, spaces and dashes dropped), so the server can find the same
 * ID-card number twice without reading it. */
void pv_blind(uint8_t out[PV_BIDXBYTES], const uint8_t key[32], const uint8_t *v, size_t n);

#endif
