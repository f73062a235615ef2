/* vault.c - the tablet's secret keys, locked by the caregiver's PIN.
 *
 * sync_meta holds vault = nonce || secretbox(kx_sk || sign_sk) under a key
 * derived from the PIN with Argon2id (salt and limits stored beside it).
 * The county's data keys are sealed to kx_sk, so they too open only after
 * the PIN.  Wrong PINs are counted in the database, so restarting the app
 * does not reset the count; at the county's limit the vault and the data
 * keys are destroyed.
 */
#include "client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#define SECRETS   (32 + 64)
#define VAULT     (crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + SECRETS)
#define SALTBYTES crypto_pwhash_SALTBYTES

static int derive(uint8_t kek[32], const char *pin, const uint8_t salt[SALTBYTES],
                  int64_t ops, int64_t mem)
{
    return crypto_pwhash(kek, 32, pin, strlen(pin), salt, (unsigned long long)ops, (size_t)mem,
                         crypto_pwhash_ALG_ARGON2ID13) == 0 ? SYNC_OK : SYNC_ENOMEM;
}

int vault_create(struct sync_client *c, const char *pin)
{
    uint8_t salt[SALTBYTES], kek[32], secrets[SECRETS], vault[VAULT];
    const char *kdf = getenv("ELDERSYNC_KDF");
    int light = kdf && strcmp(kdf, "light") == 0;       /* tests only */
    int64_t ops = light ? crypto_pwhash_OPSLIMIT_MIN : crypto_pwhash_OPSLIMIT_INTERACTIVE;
    int64_t mem = light ? crypto_pwhash_MEMLIMIT_MIN : crypto_pwhash_MEMLIMIT_INTERACTIVE;
    if (pin == NULL || strlen(pin) < 4)
        return client_fail(c, SYNC_EINVAL, "the PIN must have at least 4 characters");
    randombytes_buf(salt, sizeof salt);
    if (derive(kek, pin, salt, ops, mem) != SYNC_OK)
        return client_fail(c, SYNC_ENOMEM, "not enough memory to derive the PIN key");
    memcpy(secrets, c->kx_sk, 32);
    memcpy(secrets + 32, c->sign_sk, 64);
    randombytes_buf(vault, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(vault + crypto_secretbox_NONCEBYTES, secrets, SECRETS, vault, kek);
    sodium_memzero(kek, sizeof kek);
    sodium_memzero(secrets, sizeof secrets);
    int rc = meta_set_blob(c, "vault", vault, sizeof vault);
    if (rc == SYNC_OK) rc = meta_set_blob(c, "vault_salt", salt, sizeof salt);
    if (rc == SYNC_OK) rc = meta_set_int(c, "vault_ops", ops);
    if (rc == SYNC_OK) rc = meta_set_int(c, "vault_mem", mem);
    if (rc == SYNC_OK) rc = meta_set_int(c, "pin_failures", 0);
    return rc;
}

void vault_destroy(struct sync_client *c)
{
    sqlite3_exec(c->db, "BEGIN IMMEDIATE; DELETE FROM sync_meta WHERE key IN ('vault', "
                        "'vault_salt', 'kx_pk', 'sign_pk', 'server_kx_pk'); DELETE FROM data_keys; "
                        "COMMIT", NULL, NULL, NULL);
    if (!sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    sodium_memzero(c->kx_sk, sizeof c->kx_sk);
    sodium_memzero(c->sign_sk, sizeof c->sign_sk);
    sodium_memzero(c->keycache, sizeof c->keycache);
    sodium_memzero(c->rx, sizeof c->rx);
    sodium_memzero(c->tx, sizeof c->tx);
    c->unlocked = 0;
}

/* Counts a wrong PIN in its own transaction; destroys the keys at the
 * limit.  Returns the status to report. */
static int wrong_pin(struct sync_client *c)
{
    int64_t failures = 0, max = 5;
    meta_get_int(c, "pin_failures", &failures);
    meta_get_int(c, "pin_max_failures", &max);
    failures++;
    meta_set_int(c, "pin_failures", failures);
    if (failures >= max) {
        vault_destroy(c);
        meta_set_int(c, "wiped", 1);
        return client_fail(c, SYNC_EAUTH, "wrong PIN %lld times: the keys on this tablet have "
                           "been destroyed; ask the county for a new enrollment code",
                           (long long)failures);
    }
    return client_fail(c, SYNC_EAUTH, "wrong PIN (%lld attempt%s left before the keys are "
                       "destroyed)", (long long)(max - failures), max - failures == 1 ? "" : "s");
}

int vault_open(struct sync_client *c, const char *pin)
{
    uint8_t salt[SALTBYTES], kek[32], secrets[SECRETS], vault[VAULT];
    int64_t ops = 0, mem = 0, wiped = 0;
    if (meta_get_int(c, "wiped", &wiped) == SYNC_OK && wiped)
        return client_fail(c, SYNC_EAUTH, "the keys on this tablet were destroyed after too many "
                           "wrong PINs; ask the county for a new enrollment code");
    if (meta_get_blob(c, "vault", vault, sizeof vault) != SYNC_OK ||
        meta_get_blob(c, "vault_salt", salt, sizeof salt) != SYNC_OK ||
        meta_get_int(c, "vault_ops", &ops) != SYNC_OK || meta_get_int(c, "vault_mem", &mem) != SYNC_OK)
        return client_fail(c, SYNC_EAUTH, "this tablet has no keys; enroll it");
    if (pin == NULL || *pin == '\0')
        return client_fail(c, SYNC_EINVAL, "no PIN given");
    if (derive(kek, pin, salt, ops, mem) != SYNC_OK)
        return client_fail(c, SYNC_ENOMEM, "not enough memory to derive the PIN key");
    int ok = crypto_secretbox_open_easy(secrets, vault + crypto_secretbox_NONCEBYTES,
                                        VAULT - crypto_secretbox_NONCEBYTES, vault, kek) == 0;
    sodium_memzero(kek, sizeof kek);
    if (!ok)
        return wrong_pin(c);
    memcpy(c->kx_sk, secrets, 32);
    memcpy(c->sign_sk, secrets + 32, 64);
    sodium_memzero(secrets, sizeof secrets);
    c->unlocked = 1;
    return meta_set_int(c, "pin_failures", 0);
}
