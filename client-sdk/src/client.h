/* client.h - the tablet client's internals, shared by client.c (local
 * database, capture, identity) and sync.c (push, pull).  Not public. */
#ifndef ES_CLIENT_H
#define ES_CLIENT_H

#include <stdarg.h>
#include <stdint.h>
#include "eldersync.h"
#include "sqlite.h"
#include "policy.h"
#include "hlc.h"
#include "pvsql.h"
#include "transport.h"
#include "txguard.h"

struct sync_client {
    sqlite3          *db;
    struct policy    *pol;
    struct hlc        hlc;
    char              err[512];
    int               enrolled;
    int               revoked;          /* keys destroyed on the county's order */
    int               unlocked;         /* kx_sk / sign_sk below are valid */
    uint8_t           kx_sk[32];        /* device keys, in memory once unlocked */
    uint8_t           sign_sk[64];
    uint8_t           device_id[16];
    unsigned          role;
    uint8_t           township[16];
    uint8_t           hall[16];
    int               has_hall;
    char              server_url[256];
    uint8_t           rx[32], tx[32];   /* envelope session keys */
    int               timeout_ms;
    struct http_conn  conn;             /* kept across the requests of a sync */
    struct http_conn  conn2;            /* a pull's next page, fetched meanwhile */
    int               keepalive_ms;     /* > 0: and between syncs, idle < this */
    int               utc_offset_min;   /* the county's calendar */
    int64_t           bytes_up, bytes_down;  /* totals since open */
    struct sync_test_hooks hooks;
    const char       *deny_reason;      /* set by the exec authorizer */
    struct pv_keys    pv;               /* key provider for es_enc / es_dec */
    int64_t           active_key;       /* newest data key id held, 0: none */
    struct { int64_t id; int loaded; uint8_t key[32]; } keycache[8];
    sqlite3_stmt     *vstmt[32][2];     /* insert / delete behind the views */
    int               in_row_write;     /* inside es_row_*(): authorised already */
    struct txguard    txg;              /* client_tx_begin .. client_tx_end */
    char              deny_buf[160];
};

/* Formats the client's error message and returns status. */
int client_fail(struct sync_client *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* sync_meta access.  Getters return SYNC_ENOTFOUND when the key is absent. */
int meta_get_int(struct sync_client *c, const char *key, int64_t *out);
int meta_set_int(struct sync_client *c, const char *key, int64_t v);
int meta_get_blob(struct sync_client *c, const char *key, uint8_t *out, size_t n);
int meta_get_text(struct sync_client *c, const char *key, char *out, size_t n);
int meta_set_blob(struct sync_client *c, const char *key, const void *p, size_t n);
int meta_set_text(struct sync_client *c, const char *key, const char *s);

/* Runs a statement with no result rows; SYNC_EIO with the message set. */
int client_sql(struct sync_client *c, const char *sql);

/* BEGIN IMMEDIATE, and the end of that transaction: COMMIT if rc is
 * SYNC_OK and the transaction is still whole, else ROLLBACK (keeping the
 * error message).  Returns the outcome.  In between no other commit can
 * happen (txguard.h); a transaction SQLite rolled back by itself ends in
 * SYNC_EIO. */
int client_tx_begin(struct sync_client *c);
int client_tx_end(struct sync_client *c, int rc);

/* Opens the county data key `id` (0: the blind-index key) the server
 * sealed to this device.  SYNC_ENOTFOUND if the tablet does not have it
 * yet, SYNC_ECRYPTO if it does not open. */
int client_data_key(struct sync_client *c, int64_t id, uint8_t key[32]);

/* client_data_key through the tablet's small cache of opened keys. */
int client_cached_key(struct sync_client *c, int64_t id, uint8_t key[32]);

/* Re-reads the newest data key id after keys arrived. */
void client_keys_changed(struct sync_client *c);

/* SYNC_OK if the keys are unlocked, else SYNC_ELOCKED / SYNC_EAUTH with a
 * message saying what to do. */
int client_require_keys(struct sync_client *c);

/* vault.c: the PIN-wrapped device keys in sync_meta. */
int  vault_create(struct sync_client *c, const char *pin);  /* from c->kx_sk, c->sign_sk */
int  vault_open(struct sync_client *c, const char *pin);
void vault_destroy(struct sync_client *c);                  /* and the data keys */

/* Attaches every synced table to a new session. */
int client_session(struct sync_client *c, sqlite3_session **out);

#endif
