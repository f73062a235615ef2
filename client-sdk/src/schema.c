/* schema.c - create and migrate eldersync databases from the embedded files. */
#include "schema.h"

#include <stdio.h>
#include "eldersync.h"

static int list_version(const struct schema_migration *list)
{
    int v = 1;
    for (const struct schema_migration *m = list; m->sql; m++)
        if (m->version > v)
            v = m->version;
    return v;
}

int schema_version(void)
{
    return list_version(schema_migrations);
}

static int query_int(sqlite3 *db, const char *sql, int *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        *out = sqlite3_column_int(st, 0);
    else if (rc == SQLITE_OK)
        rc = sqlite3_errcode(db);
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : -1;
}

static int run(sqlite3 *db, const char *sql, const char *what, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return SYNC_OK;
    snprintf(err, errlen, "%s: %s", what, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return SYNC_EIO;
}

static int create(sqlite3 *db, enum schema_side side, char *err, size_t errlen)
{
    int rc = run(db, "BEGIN IMMEDIATE", "begin", err, errlen);
    if (rc == SYNC_OK)
        rc = run(db, schema_schema_sql, "schema.sql", err, errlen);
    if (rc == SYNC_OK)
        rc = run(db, side == SCHEMA_SERVER ? schema_server_sql : schema_tablet_sql,
                 side == SCHEMA_SERVER ? "server.sql" : "tablet.sql", err, errlen);
    if (rc == SYNC_OK)
        rc = run(db, "COMMIT", "commit", err, errlen);
    return rc;
}

int schema_apply(sqlite3 *db, enum schema_side side, char *err, size_t errlen)
{
    return schema_apply_list(db, side, schema_migrations, err, errlen);
}

int schema_apply_list(sqlite3 *db, enum schema_side side, const struct schema_migration *list,
                      char *err, size_t errlen)
{
    int ntables = 0, version = 0, rc;
    if (query_int(db, "SELECT count(*) FROM sqlite_schema", &ntables) != 0 ||
        query_int(db, "PRAGMA user_version", &version) != 0) {
        snprintf(err, errlen, "cannot read database: %s", sqlite3_errmsg(db));
        return SYNC_EIO;
    }
    if (ntables == 0) {
        rc = create(db, side, err, errlen);
        if (rc != SYNC_OK)
            return rc;
        version = 1;
    } else if (version < 1) {
        snprintf(err, errlen, "not an eldersync database (user_version 0)");
        return SYNC_ESCHEMA;
    }
    if (version > list_version(list)) {
        snprintf(err, errlen, "database schema version %d is newer than this "
                 "build (%d); upgrade the software", version, list_version(list));
        return SYNC_ESCHEMA;
    }
    for (const struct schema_migration *m = list; m->sql; m++) {
        if (m->version <= version)
            continue;
        char what[64], setv[64];
        snprintf(what, sizeof what, "migration %d", m->version);
        snprintf(setv, sizeof setv, "PRAGMA user_version = %d", m->version);
        rc = run(db, "BEGIN IMMEDIATE", what, err, errlen);
        if (rc == SYNC_OK)
            rc = run(db, m->sql, what, err, errlen);
        if (rc == SYNC_OK)
            rc = run(db, setv, what, err, errlen);
        if (rc == SYNC_OK)
            rc = run(db, "COMMIT", what, err, errlen);
        if (rc != SYNC_OK)
            return rc;
        version = m->version;
    }
    return SYNC_OK;
}
