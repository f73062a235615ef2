/* keyring.c - data keys for the personal columns.
 *
 * The keys live in the keyring table, each wrapped by the master key from
 * the server's key file, so a copied database alone opens nothing.  A
 * tablet gets them sealed to its own X25519 key; the tablet keeps that
 * key behind the caregiver's PIN.
 */
#include "keyring.h"

#include <stdio.h>
#include <time.h>
#include <string.h>
#include <sodium.h>
#include <cjson/cJSON.h>

#include "audit.h"
#include "eldersync.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define WRAPPED (crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + KEYRING_KEYBYTES)

int64_t keyring_active(struct server *srv)
{
    sqlite3_stmt *st = store_stmt(srv, "SELECT coalesce(max(key_id), 0) FROM keyring");
    int64_t id = -1;                     /* unreadable (out of memory, I/O) */
    if (st && sqlite3_step(st) == SQLITE_ROW)
        id = sqlite3_column_int64(st, 0);
    if (st)
        sqlite3_reset(st);
    return id;
}

/* Inside the caller's transaction: a fresh key under the next id. */
static int add_key(struct server *srv, int64_t *id)
{
    uint8_t key[KEYRING_KEYBYTES], wrapped[WRAPPED];
    int64_t active = keyring_active(srv);
    if (active < 0)
        return SYNC_EIO;
    *id = active + 1;
    crypto_secretbox_keygen(key);
    randombytes_buf(wrapped, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(wrapped + crypto_secretbox_NONCEBYTES, key, sizeof key, wrapped,
                          srv->keys.master);
    sodium_memzero(key, sizeof key);
    sqlite3_stmt *st = store_stmt(srv, "INSERT INTO keyring (key_id, wrapped, created_at) "
                                       "VALUES (?1, ?2, ?3)");
    if (st == NULL)
        return SYNC_EIO;
    sqlite3_bind_int64(st, 1, *id);
    sqlite3_bind_blob(st, 2, wrapped, sizeof wrapped, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_ms());
    int rc = sqlite3_step(st) == SQLITE_DONE ? SYNC_OK : SYNC_EIO;
    sqlite3_reset(st);
    return rc;
}

int keyring_ensure(struct server *srv)
{
    int64_t active = keyring_active(srv), id;
    if (active > 0)
        return SYNC_OK;
    if (active < 0)
        return SYNC_EIO;
    int rc = store_begin(srv);
    if (rc == SYNC_OK)
        rc = store_end(srv, add_key(srv, &id));
    return rc;
}

int keyring_rotate(struct server *srv, int64_t *id)
{
    char detail[64];
    pthread_mutex_lock(&srv->lock);
    int rc = store_begin(srv);
    if (rc == SYNC_OK) {
        rc = add_key(srv, id);
        snprintf(detail, sizeof detail, "{\"key_id\":%lld}", (long long)*id);
        if (rc == SYNC_OK)
            rc = audit_append(srv, "rotate_key", NULL, "admin", detail);
        rc = store_end(srv, rc);
    }
    pthread_mutex_unlock(&srv->lock);
    if (rc == SYNC_OK)
        log_info("started data key %lld", (long long)*id);
    return rc;
}

/* Unwraps key id with the statement "SELECT wrapped FROM keyring WHERE
 * key_id = ?1" prepared on either connection. */
static int unwrap(const struct server *srv, sqlite3_stmt *st, int64_t id,
                  uint8_t key[KEYRING_KEYBYTES])
{
    int rc = SYNC_ENOTFOUND, step;
    if (st == NULL)
        return SYNC_EIO;
    sqlite3_bind_int64(st, 1, id);
    if ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const uint8_t *w = sqlite3_column_blob(st, 0);
        rc = sqlite3_column_bytes(st, 0) == WRAPPED &&
             crypto_secretbox_open_easy(key, w + crypto_secretbox_NONCEBYTES,
                                        WRAPPED - crypto_secretbox_NONCEBYTES, w,
                                        srv->keys.master) == 0 ? SYNC_OK : SYNC_ECRYPTO;
    } else if (step != SQLITE_DONE) {
        rc = SYNC_EIO;                 /* a failed read is not a missing key */
    }
    sqlite3_reset(st);
    return rc;
}

#define WRAPPED_SQL "SELECT wrapped FROM keyring WHERE key_id = ?1"

int keyring_get(struct server *srv, int64_t id, uint8_t key[KEYRING_KEYBYTES])
{
    return unwrap(srv, store_stmt(srv, WRAPPED_SQL), id, key);
}

int keyring_get_reader(struct server *srv, struct store_reader *r, int64_t id,
                       uint8_t key[KEYRING_KEYBYTES])
{
    return unwrap(srv, store_reader_stmt(r, WRAPPED_SQL), id, key);
}

static int add_sealed(cJSON *keys, const struct device *dev, int64_t id, const uint8_t *key)
{
    uint8_t sealed[crypto_box_SEALBYTES + KEYRING_KEYBYTES];
    char hex[2 * sizeof sealed + 1];
    if (crypto_box_seal(sealed, key, KEYRING_KEYBYTES, dev->kx_pk) != 0)
        return -1;
    hex_encode(hex, sealed, sizeof sealed);
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || !cJSON_AddNumberToObject(o, "id", (double)id) ||
        !cJSON_AddStringToObject(o, "sealed", hex)) {
        cJSON_Delete(o);
        return -1;
    }
    cJSON_AddItemToArray(keys, o);
    return 0;
}

int keyring_for_device(struct server *srv, const struct device *dev, int64_t have, cJSON *keys)
{
    int n = 0;
    uint8_t key[KEYRING_KEYBYTES];
    if (have < 0) {
        if (add_sealed(keys, dev, 0, srv->keys.blind) != 0)
            return -1;
        n++;
    }
    int64_t active = keyring_active(srv);
    if (active < 0)
        return -1;
    for (int64_t id = have < 1 ? 1 : have + 1; id <= active; id++) {
        int rc = keyring_get(srv, id, key);
        if (rc == SYNC_OK)
            rc = add_sealed(keys, dev, id, key) == 0 ? SYNC_OK : SYNC_ERROR;
        sodium_memzero(key, sizeof key);
        if (rc != SYNC_OK)
            return -1;
        n++;
    }
    return n;
}

static int pv_get(void *ctx, int64_t id, uint8_t key[KEYRING_KEYBYTES])
{
    struct server *srv = ctx;
    if (id == 0) {
        memcpy(key, srv->keys.blind, KEYRING_KEYBYTES);
        return SYNC_OK;
    }
    for (int i = 0; i < srv->nkeycache; i++) {
        if (srv->keycache[i].id == id) {
            memcpy(key, srv->keycache[i].key, KEYRING_KEYBYTES);
            return SYNC_OK;
        }
    }
    int rc = keyring_get(srv, id, key);
    if (rc == SYNC_OK && srv->nkeycache < 8) {
        srv->keycache[srv->nkeycache].id = id;
        memcpy(srv->keycache[srv->nkeycache].key, key, KEYRING_KEYBYTES);
        srv->nkeycache++;
    }
    return rc;
}

static int64_t pv_active(void *ctx)
{
    return keyring_active(ctx);
}

int keyring_register_sql(struct server *srv)
{
    srv->pv.get = pv_get;
    srv->pv.active = pv_active;
    srv->pv.ctx = srv;
    return pvsql_register(srv->db, &srv->pv) == SQLITE_OK ? SYNC_OK : SYNC_ERROR;
}

int keyring_seal_plaintext(struct server *srv)
{
    for (int i = 0; i < srv->pol->ntables; i++) {
        const struct pol_table *t = &srv->pol->tables[i];
        if (!t->personal)
            continue;
        struct buf b = {0}, w = {0};
        char part[256];
        int n;
        n = snprintf(part, sizeof part, "UPDATE \"%s\" SET ", t->name);
        buf_append(&b, part, (size_t)n);
        int first = 1;
        for (int c = 0; c < t->ncol; c++) {
            if (!((t->personal >> c) & 1))
                continue;
            const char *col = t->cols[c];
            n = snprintf(part, sizeof part, "%s\"%s\" = es_enc('%s', '%s', id, \"%s\")",
                         first ? "" : ", ", col, t->name, col, col);
            buf_append(&b, part, (size_t)n);
            if (t->bidx[c] >= 0) {
                n = snprintf(part, sizeof part, ", \"%s\" = CASE WHEN es_key_id(\"%s\") IS NULL "
                             "THEN es_bidx(\"%s\") ELSE \"%s\" END", t->cols[t->bidx[c]], col,
                             col, t->cols[t->bidx[c]]);
                buf_append(&b, part, (size_t)n);
            }
            n = snprintf(part, sizeof part, "%s(\"%s\" IS NOT NULL AND es_key_id(\"%s\") IS NULL)",
                         first ? " WHERE " : " OR ", col, col);
            buf_append(&w, part, (size_t)n);
            first = 0;
        }
        buf_append(&b, w.p, w.len);
        buf_byte(&b, 0);
        int rc = b.oom || w.oom ? SYNC_ENOMEM : store_exec(srv->db, (const char *)b.p);
        buf_free(&b);
        buf_free(&w);
        if (rc != SYNC_OK)
            return rc;
    }
    return SYNC_OK;
}

int keyring_reseal_step(struct server *srv, int limit, long *done)
{
    int64_t active = keyring_active(srv);
    int rc = active < 0 ? SYNC_EIO : store_begin(srv);
    *done = 0;
    for (int i = 0; rc == SYNC_OK && i < srv->pol->ntables; i++) {
        const struct pol_table *t = &srv->pol->tables[i];
        if (!t->personal)
            continue;
        struct buf set = {0}, where = {0};
        char part[320];
        int n;
        for (int c = 0; c < t->ncol; c++) {
            if (!((t->personal >> c) & 1))
                continue;
            n = snprintf(part, sizeof part, "%s\"%s\" = es_reseal('%s', '%s', id, \"%s\")",
                         set.len ? ", " : "", t->cols[c], t->name, t->cols[c], t->cols[c]);
            buf_append(&set, part, (size_t)n);
            n = snprintf(part, sizeof part, "%ses_key_id(\"%s\") < %lld", where.len ? " OR " : "",
                         t->cols[c], (long long)active);
            buf_append(&where, part, (size_t)n);
        }
        struct buf sql = {0};
        n = snprintf(part, sizeof part, "UPDATE \"%s\" SET ", t->name);
        buf_append(&sql, part, (size_t)n);
        buf_append(&sql, set.p, set.len);
        n = snprintf(part, sizeof part, " WHERE id IN (SELECT id FROM \"%s\" WHERE ", t->name);
        buf_append(&sql, part, (size_t)n);
        buf_append(&sql, where.p, where.len);
        n = snprintf(part, sizeof part, " LIMIT %d)", limit);
        buf_append(&sql, part, (size_t)n);
        buf_byte(&sql, 0);
        rc = sql.oom || set.oom || where.oom ? SYNC_ENOMEM : store_exec(srv->db, (const char *)sql.p);
        if (rc == SYNC_OK)
            *done += sqlite3_changes(srv->db);
        buf_free(&sql);
        buf_free(&set);
        buf_free(&where);
    }
    return store_end(srv, rc);
}

static void *resealer(void *arg)
{
    struct server *srv = arg;
    while (!srv->stopping) {
        long done = 0;
        pthread_mutex_lock(&srv->lock);
        int rc = keyring_reseal_step(srv, 200, &done);
        pthread_mutex_unlock(&srv->lock);
        if (rc != SYNC_OK)
            log_warn("re-sealing personal data failed; will retry");
        else if (done > 0)
            log_info("re-sealed %ld rows under the newest key", done);
        /* Busy: yield briefly to syncs.  Idle: look again in a while. */
        for (int i = 0; i < (done > 0 ? 1 : 40) && !srv->stopping; i++) {
            struct timespec ts = { 0, 50 * 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

int keyring_start_resealer(struct server *srv)
{
    srv->stopping = 0;
    if (pthread_create(&srv->resealer, NULL, resealer, srv) != 0)
        return SYNC_ERROR;
    srv->resealer_on = 1;
    return SYNC_OK;
}

void keyring_stop_resealer(struct server *srv)
{
    if (!srv->resealer_on)
        return;
    srv->stopping = 1;
    pthread_join(srv->resealer, NULL);
    srv->resealer_on = 0;
}
