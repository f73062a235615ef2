/* test_schema.c - creating and migrating databases from the embedded
 * schema, and the declarations loaded from it. */
#include <stdio.h>
#include <string.h>

#include "eldersync.h"
#include "policy.h"
#include "schema.h"
#include "test.h"

static int query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static sqlite3 *mem(void)
{
    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
    return db;
}

static void test_new_database_gets_current_version(void)
{
    char err[256];
    sqlite3 *db = mem();
    ASSERT_EQ(schema_apply(db, SCHEMA_TABLET, err, sizeof err), SYNC_OK);
    ASSERT_EQ(query_int(db, "PRAGMA user_version"), schema_version());
    ASSERT_EQ(query_int(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'outbox'"), 1);
    ASSERT_EQ(query_int(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'devices'"), 0);
    ASSERT_EQ(schema_apply(db, SCHEMA_TABLET, err, sizeof err), SYNC_OK);   /* idempotent */
    sqlite3_close(db);
}

static void test_migrations_run_in_order_once(void)
{
    char err[256];
    static const struct schema_migration none[] = { { 0, 0 } };
    static const struct schema_migration list[] = {
        { 2, "ALTER TABLE seniors ADD COLUMN dialect TEXT" },
        { 3, "CREATE INDEX seniors_dialect ON seniors (dialect)" },
        { 0, 0 }
    };
    sqlite3 *db = mem();
    ASSERT_EQ(schema_apply_list(db, SCHEMA_SERVER, none, err, sizeof err), SYNC_OK);
    ASSERT_EQ(query_int(db, "PRAGMA user_version"), 1);
    ASSERT_EQ(schema_apply_list(db, SCHEMA_SERVER, list, err, sizeof err), SYNC_OK);
    ASSERT_EQ(query_int(db, "PRAGMA user_version"), 3);
    ASSERT_EQ(query_int(db, "SELECT count(*) FROM pragma_table_info('seniors') "
                            "WHERE name = 'dialect'"), 1);
    ASSERT_EQ(schema_apply_list(db, SCHEMA_SERVER, list, err, sizeof err), SYNC_OK);
    ASSERT_EQ(query_int(db, "PRAGMA user_version"), 3);
    /* An older build refuses a newer file instead of corrupting it. */
    ASSERT_EQ(schema_apply_list(db, SCHEMA_SERVER, none, err, sizeof err), SYNC_ESCHEMA);
    ASSERT(strstr(err, "newer") != NULL);
    sqlite3_close(db);
}

static void test_failed_migration_changes_nothing(void)
{
    char err[256];
    static const struct schema_migration bad[] = {
        { 2, "ALTER TABLE seniors ADD COLUMN a TEXT; ALTER TABLE no_such ADD COLUMN b" },
        { 0, 0 }
    };
    static const struct schema_migration none[] = { { 0, 0 } };
    sqlite3 *db = mem();
    ASSERT_EQ(schema_apply_list(db, SCHEMA_TABLET, none, err, sizeof err), SYNC_OK);
    ASSERT_EQ(schema_apply_list(db, SCHEMA_TABLET, bad, err, sizeof err), SYNC_EIO);
    ASSERT(strstr(err, "migration 2") != NULL);
    ASSERT_EQ(query_int(db, "PRAGMA user_version"), 1);
    ASSERT_EQ(query_int(db, "SELECT count(*) FROM pragma_table_info('seniors') WHERE name = 'a'"), 0);
    sqlite3_close(db);
}

static void test_foreign_database_refused(void)
{
    char err[256];
    sqlite3 *db = mem();
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE other (x)", NULL, NULL, NULL), SQLITE_OK);
    ASSERT_EQ(schema_apply(db, SCHEMA_TABLET, err, sizeof err), SYNC_ESCHEMA);
    sqlite3_close(db);
}

/* The declarations match the tables, and every synced table keys on a
 * NOT NULL 16-byte id and is covered by a role that reads it. */
static void test_declarations(void)
{
    char err[256];
    struct policy *p = NULL;
    sqlite3 *db = mem();
    ASSERT_EQ(schema_apply(db, SCHEMA_SERVER, err, sizeof err), SYNC_OK);
    ASSERT_EQ(policy_load(db, &p, err, sizeof err), SYNC_OK);
    ASSERT_EQ(p->ntables, 10);
    for (int i = 0; i < p->ntables; i++) {
        const struct pol_table *t = &p->tables[i];
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT \"notnull\" FROM pragma_table_info('%s') WHERE pk = 1",
                 t->name);
        ASSERT_EQ(query_int(db, sql), 1);
        ASSERT(t->read_roles != 0);
        ASSERT((t->insert_roles & ~t->read_roles) == 0);   /* you read what you write */
        ASSERT(t->kind == POL_APPEND || t->hlc_col >= 0);
    }
    const struct pol_table *s = policy_table(p, "seniors");
    ASSERT_NOT_NULL(s);
    ASSERT(s->personal & (1ull << policy_col(s, "id_card")));
    ASSERT(s->protected_ & (1ull << policy_col(s, "subsidy_level")));
    ASSERT_EQ(s->ref[policy_col(s, "township_id")], (int)(policy_table(p, "townships") - p->tables));
    const struct pol_table *rc = policy_table(p, "retrofit_cases");
    ASSERT_EQ(rc->kind, POL_STATE);
    ASSERT_EQ(rc->nstates, 6);
    ASSERT_NOT_NULL(policy_state(rc, (const uint8_t *)"works", 5));
    ASSERT_NULL(policy_state(rc, (const uint8_t *)"demolished", 10));
    policy_free(p);
    sqlite3_close(db);
}

int main(void)
{
    static const struct test_case tests[] = {
        TEST(test_new_database_gets_current_version),
        TEST(test_migrations_run_in_order_once),
        TEST(test_failed_migration_changes_nothing),
        TEST(test_foreign_database_refused),
        TEST(test_declarations),
        { NULL, NULL }
    };
    return test_run_all("test_schema", tests);
}
