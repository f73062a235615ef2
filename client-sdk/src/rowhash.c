/* rowhash.c - canonical content hash of synced rows; see rowhash.h. */
#include "rowhash.h"

#include <stdio.h>
#include <string.h>
#include <sodium.h>
#include "eldersync.h"
#include "util.h"

static void hash_value(crypto_generichash_state *h, sqlite3_stmt *st, int i)
{
    uint8_t tag = (uint8_t)sqlite3_column_type(st, i), n8[8];
    crypto_generichash_update(h, &tag, 1);
    switch (tag) {
    case SQLITE_INTEGER:
        be64_put(n8, (uint64_t)sqlite3_column_int64(st, i));
        crypto_generichash_update(h, n8, 8);
        break;
    case SQLITE_FLOAT: {
        double d = sqlite3_column_double(st, i);
        uint64_t u;
        memcpy(&u, &d, 8);
        be64_put(n8, u);
        crypto_generichash_update(h, n8, 8);
        break;
    }
    case SQLITE_TEXT:
    case SQLITE_BLOB: {
        const void *p = tag == SQLITE_TEXT ? (const void *)sqlite3_column_text(st, i)
                                           : sqlite3_column_blob(st, i);
        size_t n = (size_t)sqlite3_column_bytes(st, i);
        be64_put(n8, n);
        crypto_generichash_update(h, n8, 8);
        if (n)
            crypto_generichash_update(h, p, n);
        break;
    }
    default:
        break;
    }
}

int rowhash_compute(sqlite3 *db, const struct policy *pol, unsigned roles,
                    rowhash_filter_fn filter, void *ctx, uint8_t out[32])
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    for (int i = 0; i < pol->ntables; i++) {
        const struct pol_table *t = &pol->tables[i];
        char where[512] = "", sql[768];
        if (!(t->read_roles & roles))
            continue;
        if (filter && filter(ctx, t, where, sizeof where) != 0)
            continue;
        snprintf(sql, sizeof sql, "SELECT * FROM main.\"%s\"%s%s ORDER BY id", t->name,
                 where[0] ? " WHERE " : "", where);
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
            return SYNC_EIO;
        crypto_generichash_update(&h, (const uint8_t *)t->name, strlen(t->name) + 1);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            for (int c = 0; c < sqlite3_column_count(st); c++)
                hash_value(&h, st, c);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            return SYNC_EIO;
    }
    crypto_generichash_final(&h, out, 32);
    return SYNC_OK;
}
