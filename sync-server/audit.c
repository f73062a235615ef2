/* audit.c - an append-only log whose entries are chained by BLAKE2b.
 *
 * Each entry's hash covers the previous entry's hash and every field of the
 * entry, each length-prefixed, so editing, deleting or reordering any entry
 * breaks the chain at that entry.  The log proves what the server accepted
 * and from whom (batches carry the device's Ed25519 signature); it holds no
 * personal data.
 */
#include "audit.h"

#include <stdio.h>
#include <string.h>
#include <sodium.h>

#include "eldersync.h"
#include "log.h"
#include "store.h"
#include "util.h"

static void put_field(crypto_generichash_state *h, const void *p, size_t n)
{
    uint8_t len[8];
    be64_put(len, n);
    crypto_generichash_update(h, len, 8);
    if (n)
        crypto_generichash_update(h, p, n);
}

static void entry_hash(uint8_t out[32], const uint8_t prev[32], int64_t id, int64_t at,
                       const char *kind, const uint8_t *dev, size_t devlen, const char *actor,
                       const char *detail)
{
    crypto_generichash_state h;
    uint8_t num[16];
    crypto_generichash_init(&h, (const uint8_t *)"eldersync-audit", 15, 32);
    crypto_generichash_update(&h, prev, 32);
    be64_put(num, (uint64_t)id);
    be64_put(num + 8, (uint64_t)at);
    crypto_generichash_update(&h, num, 16);
    put_field(&h, kind, strlen(kind));
    put_field(&h, dev, devlen);
    put_field(&h, actor, strlen(actor));
    put_field(&h, detail, strlen(detail));
    crypto_generichash_final(&h, out, 32);
}

int audit_append(struct server *srv, const char *kind, const uint8_t *device, const char *actor,
                 const char *detail)
{
    uint8_t prev[32] = {0}, hash[32];
    int64_t id = 1, at = now_ms();
    sqlite3_stmt *st = store_stmt(srv, "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1");
    if (st == NULL)
        return SYNC_EIO;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW && sqlite3_column_bytes(st, 1) == 32) {
        id = sqlite3_column_int64(st, 0) + 1;
        memcpy(prev, sqlite3_column_blob(st, 1), 32);
    }
    sqlite3_reset(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return SYNC_EIO;                /* never restart the chain on a failed read */
    entry_hash(hash, prev, id, at, kind, device, device ? 16 : 0, actor, detail);
    st = store_stmt(srv, "INSERT INTO audit_log (id, at, kind, device_id, actor, detail, "
                         "prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    if (st == NULL)
        return SYNC_EIO;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, at);
    sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
    if (device)
        sqlite3_bind_blob(st, 4, device, 16, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, detail, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 7, prev, 32, SQLITE_STATIC);
    sqlite3_bind_blob(st, 8, hash, 32, SQLITE_STATIC);
    int rc = sqlite3_step(st) == SQLITE_DONE ? SYNC_OK : SYNC_EIO;
    sqlite3_reset(st);
    if (rc != SYNC_OK)
        log_error("cannot append to the audit log: %s", sqlite3_errmsg(srv->db));
    return rc;
}

int audit_record(struct server *srv, const char *kind, const uint8_t *device, const char *actor,
                 const char *detail)
{
    int rc = store_begin(srv);
    if (rc == SYNC_OK)
        rc = store_end(srv, audit_append(srv, kind, device, actor, detail));
    return rc;
}

int audit_verify(sqlite3 *db, long *count, int64_t *bad, char *msg, size_t msglen)
{
    sqlite3_stmt *st = NULL;
    uint8_t prev[32] = {0}, hash[32];
    int64_t expect = 1;
    *count = 0;
    *bad = 0;
    if (sqlite3_prepare_v2(db, "SELECT id, at, kind, device_id, actor, detail, prev_hash, hash "
                           "FROM audit_log ORDER BY id", -1, &st, NULL) != SQLITE_OK) {
        snprintf(msg, msglen, "cannot read the audit log: %s", sqlite3_errmsg(db));
        return SYNC_EIO;
    }
    int rc = SYNC_OK;
    while (rc == SYNC_OK && sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *kind = (const char *)sqlite3_column_text(st, 2);
        const char *actor = (const char *)sqlite3_column_text(st, 4);
        const char *detail = (const char *)sqlite3_column_text(st, 5);
        const uint8_t *dev = sqlite3_column_blob(st, 3);
        size_t devlen = (size_t)sqlite3_column_bytes(st, 3);
        if (id != expect)
            snprintf(msg, msglen, "entry %lld is missing (found %lld next)", (long long)expect,
                     (long long)id);
        else if (sqlite3_column_bytes(st, 6) != 32 || memcmp(sqlite3_column_blob(st, 6), prev, 32))
            snprintf(msg, msglen, "entry %lld does not link to the entry before it", (long long)id);
        else {
            entry_hash(hash, prev, id, sqlite3_column_int64(st, 1), kind ? kind : "", dev, devlen,
                       actor ? actor : "", detail ? detail : "");
            if (sqlite3_column_bytes(st, 7) != 32 || memcmp(sqlite3_column_blob(st, 7), hash, 32)) {
                snprintf(msg, msglen, "entry %lld was altered (its hash does not match)",
                         (long long)id);
            } else {
                memcpy(prev, hash, 32);
                expect++;
                (*count)++;
                continue;
            }
        }
        *bad = expect;
        rc = SYNC_ESCHEMA;
    }
    sqlite3_finalize(st);
    if (rc == SYNC_OK)
        snprintf(msg, msglen, "audit log intact: %ld entries", *count);
    return rc;
}
