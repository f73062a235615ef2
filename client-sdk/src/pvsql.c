/* pvsql.c - es_enc / es_dec / es_bidx / es_key_id; see pvsql.h. */
#include "pvsql.h"

#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "eldersync.h"
#include "pcrypt.h"
#include "util.h"

static void fn_enc(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    const struct pv_keys *k = sqlite3_user_data(ctx);
    uint8_t key[32], *out = NULL;
    size_t outlen = 0;
    (void)argc;
    sqlite3_value *v = argv[3];
    if (sqlite3_value_type(v) == SQLITE_NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    if (sqlite3_value_type(v) == SQLITE_BLOB &&
        pv_is_sealed(sqlite3_value_blob(v), (size_t)sqlite3_value_bytes(v), NULL)) {
        sqlite3_result_value(ctx, v);               /* sealed already */
        return;
    }
    int64_t id = k->active(k->ctx);
    if (id <= 0 || k->get(k->ctx, id, key) != SYNC_OK) {
        sqlite3_result_error(ctx, "no data key to protect personal data yet: sync first", -1);
        return;
    }
    const uint8_t *pt = sqlite3_value_text(v);
    int rc = pv_seal(key, (uint32_t)id, (const char *)sqlite3_value_text(argv[0]),
                     (const char *)sqlite3_value_text(argv[1]), sqlite3_value_blob(argv[2]),
                     (size_t)sqlite3_value_bytes(argv[2]), pt, (size_t)sqlite3_value_bytes(v),
                     &out, &outlen);
    sodium_memzero(key, sizeof key);
    if (rc != SYNC_OK) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    sqlite3_result_blob(ctx, out, (int)outlen, es_free);
}

static void fn_dec(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    const struct pv_keys *k = sqlite3_user_data(ctx);
    uint8_t key[32], *pt = NULL;
    size_t ptlen = 0;
    uint32_t id;
    (void)argc;
    sqlite3_value *v = argv[3];
    const uint8_t *ct = sqlite3_value_type(v) == SQLITE_BLOB ? sqlite3_value_blob(v) : NULL;
    size_t ctlen = (size_t)sqlite3_value_bytes(v);
    if (!pv_is_sealed(ct, ctlen, &id)) {
        sqlite3_result_value(ctx, v);
        return;
    }
    if (k->get(k->ctx, id, key) != SYNC_OK) {
        sqlite3_result_error(ctx, "a data key is missing or locked: unlock and sync", -1);
        return;
    }
    int rc = pv_open(key, (const char *)sqlite3_value_text(argv[0]),
                     (const char *)sqlite3_value_text(argv[1]), sqlite3_value_blob(argv[2]),
                     (size_t)sqlite3_value_bytes(argv[2]), ct, ctlen, &pt, &ptlen);
    sodium_memzero(key, sizeof key);
    if (rc != SYNC_OK) {
        sqlite3_result_error(ctx, "a personal value does not authenticate", -1);
        return;
    }
    sqlite3_result_text(ctx, (const char *)pt, (int)ptlen, es_free);
}

static void fn_bidx(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    const struct pv_keys *k = sqlite3_user_data(ctx);
    uint8_t key[32], out[PV_BIDXBYTES];
    (void)argc;
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    if (k->get(k->ctx, 0, key) != SYNC_OK) {
        sqlite3_result_error(ctx, "no blind-index key yet: sync first", -1);
        return;
    }
    pv_blind(out, key, sqlite3_value_text(argv[0]), (size_t)sqlite3_value_bytes(argv[0]));
    sodium_memzero(key, sizeof key);
    sqlite3_result_blob(ctx, out, sizeof out, SQLITE_TRANSIENT);
}

/* es_reseal(table, column, pk, value): a value sealed under an older key,
 * sealed again under the active key (key rotation); others pass. */
static void fn_reseal(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    const struct pv_keys *k = sqlite3_user_data(ctx);
    uint8_t key[32], *pt = NULL, *out = NULL;
    size_t ptlen = 0, outlen = 0;
    uint32_t id;
    (void)argc;
    sqlite3_value *v = argv[3];
    const uint8_t *ct = sqlite3_value_type(v) == SQLITE_BLOB ? sqlite3_value_blob(v) : NULL;
    size_t ctlen = (size_t)sqlite3_value_bytes(v);
    int64_t active = k->active(k->ctx);
    if (!pv_is_sealed(ct, ctlen, &id) || (int64_t)id >= active) {
        sqlite3_result_value(ctx, v);
        return;
    }
    const char *t = (const char *)sqlite3_value_text(argv[0]);
    const char *c = (const char *)sqlite3_value_text(argv[1]);
    const uint8_t *pk = sqlite3_value_blob(argv[2]);
    size_t pklen = (size_t)sqlite3_value_bytes(argv[2]);
    int rc = k->get(k->ctx, id, key);
    if (rc == SYNC_OK)
        rc = pv_open(key, t, c, pk, pklen, ct, ctlen, &pt, &ptlen);
    if (rc == SYNC_OK)
        rc = k->get(k->ctx, active, key);
    if (rc == SYNC_OK)
        rc = pv_seal(key, (uint32_t)active, t, c, pk, pklen, pt, ptlen, &out, &outlen);
    sodium_memzero(key, sizeof key);
    if (pt) {
        sodium_memzero(pt, ptlen);
        es_free(pt);
    }
    if (rc != SYNC_OK) {
        sqlite3_result_error(ctx, "cannot re-seal a personal value", -1);
        return;
    }
    sqlite3_result_blob(ctx, out, (int)outlen, es_free);
}

static void fn_key_id(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    uint32_t id;
    (void)argc;
    if (sqlite3_value_type(argv[0]) == SQLITE_BLOB &&
        pv_is_sealed(sqlite3_value_blob(argv[0]), (size_t)sqlite3_value_bytes(argv[0]), &id))
        sqlite3_result_int64(ctx, id);
    else
        sqlite3_result_null(ctx);
}

int pvsql_register(sqlite3 *db, const struct pv_keys *keys)
{
    void *k = (void *)keys;
    int rc = sqlite3_create_function(db, "es_enc", 4, SQLITE_UTF8, k, fn_enc, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(db, "es_dec", 4, SQLITE_UTF8 | SQLITE_DETERMINISTIC, k,
                                     fn_dec, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(db, "es_bidx", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, k,
                                     fn_bidx, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(db, "es_reseal", 4, SQLITE_UTF8, k, fn_reseal, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(db, "es_key_id", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
                                     fn_key_id, NULL, NULL);
    return rc;
}
