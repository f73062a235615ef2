/* keyring.h - the county's data keys: create, rotate, unwrap, and seal
 * them to a device. */
#ifndef SRV_KEYRING_H
#define SRV_KEYRING_H

#include <stddef.h>
#include <stdint.h>
#include "server.h"

#define KEYRING_KEYBYTES 32

/* Creates key 1 if the keyring is empty.  Returns SYNC_OK or SYNC_EIO. */
int keyring_ensure(struct server *srv);

/* Starts a new data key; *id gets its key id.  New writes use it; older
 * keys stay for reading.  Audited.  Call without srv->lock held. */
int keyring_rotate(struct server *srv, int64_t *id);

/* The newest key id (0 if none, -1 if it cannot be read). Call with
 * srv->lock held. */
int64_t keyring_active(struct server *srv);

/* Unwraps key id into key.  Returns SYNC_OK, SYNC_ENOTFOUND or
 * SYNC_ECRYPTO.  Call with srv->lock held. */
int keyring_get(struct server *srv, int64_t id, uint8_t key[KEYRING_KEYBYTES]);

/* keyring_get on a read connection, inside the reader's transaction: for
 * pulls, which do not take srv->lock. */
struct store_reader;
int keyring_get_reader(struct server *srv, struct store_reader *r, int64_t id,
                       uint8_t key[KEYRING_KEYBYTES]);

/* Appends to the JSON array `keys` ({"id":N,"sealed":"hex"}) every key the
 * device does not have yet (ids above have), each sealed to the device's
 * kx public key (crypto_box_seal), and the blind-index key as id 0 when
 * have < 0.  Returns the number added, or -1.  srv->lock held. */
struct cJSON;
int keyring_for_device(struct server *srv, const struct device *dev, int64_t have,
                       struct cJSON *keys);

/* Registers es_enc / es_dec / es_bidx / es_key_id on srv->db with the
 * keyring as key provider (keys unwrapped once and cached). */
int keyring_register_sql(struct server *srv);

/* Seals every plaintext personal value and fills missing blind indexes,
 * inside the caller's transaction: after county-side writes (demo-init,
 * exec) so plaintext never commits.  Returns SYNC_OK or SYNC_EIO. */
int keyring_seal_plaintext(struct server *srv);

/* Re-seals up to `limit` rows per table still sealed under an older key,
 * in one short transaction (call with srv->lock held).  *left gets how
 * many such rows remained before this step.  Row versions bump, so the
 * tablets pull the new values. */
int keyring_reseal_step(struct server *srv, int limit, long *done);

/* A background thread that re-seals old values after a rotation, a few
 * hundred rows at a time so syncs are never held up for long. */
int  keyring_start_resealer(struct server *srv);
void keyring_stop_resealer(struct server *srv);

#endif
