/* test_pull_scan.c - which row versions a pull reads (sync-server/pull.c,
 * scan()): a hall's tablet reads its township's rows and its own hall's; a
 * device without a hall reads every (township, hall) partition of its
 * township, listed in row_partitions.  Each case ends with the tablet
 * holding exactly the server's projection for its scope, computed from the
 * rows themselves (proj_hash), not from row_versions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "ids.h"
#include "support.h"
#include "test.h"

static struct county cty;
static struct srv_proc srv;
static char dir[128];

static void sync_ok(struct sync_client *c)
{
    struct sync_stats st;
    int rc = sync_run(c, &st);
    if (rc != SYNC_OK)
        fprintf(stderr, "  sync: %s\n", sync_client_errmsg(c));
    ASSERT_EQ(rc, SYNC_OK);
}

static void converged(struct sync_client *c, const char *role, int twp, const uint8_t *hall)
{
    uint8_t a[32], b[32];
    ASSERT_EQ(sync_content_hash(c, a), SYNC_OK);
    proj_hash(srv.db, role, cty.twp[twp], hall, b);
    ASSERT_MEM_EQ(a, b, 32);
}

/* n new halls in township twp, their ids in out (may be NULL). */
static void add_halls(int twp, int n, const char *tag, uint8_t (*out)[16])
{
    for (int i = 0; i < n; i++) {
        uint8_t id[16];
        char sql[320], h[36], t[36];
        id_new(id);
        if (out)
            memcpy(out[i], id, 16);
        snprintf(sql, sizeof sql, "INSERT INTO dining_halls (id, township_id, name, "
                 "meal_price_fen) VALUES (%s, %s, '%s %d', 900)", xid(id, h), xid(cty.twp[twp], t),
                 tag, i);
        srv_exec(&srv, sql);
    }
}

static int first_long(void *ctx, int ncol, const char *const *values, const char *const *names)
{
    (void)names;
    *(long *)ctx = ncol > 0 && values[0] ? strtol(values[0], NULL, 10) : -1;
    return 0;
}

static long tablet_count(struct sync_client *c, const char *sql)
{
    long n = -1;
    ASSERT_EQ(sync_query(c, sql, first_long, &n), SYNC_OK);
    return n;
}

/* A caregiver reads the halls of its township from their own partitions:
 * a hall added later, and a hall moved to another township (a tombstone
 * in the old partition, the row in the new one). */
static void test_township_device_reads_every_partition(void)
{
    struct sync_client *care0 = tablet_new(&srv, "care0", "caregiver", cty.twp[0]);
    struct sync_client *care1 = tablet_new(&srv, "care1", "caregiver", cty.twp[1]);
    struct sync_client *hall0 = tablet_new(&srv, "hall0", "hall", cty.hall[0]);
    sync_ok(care0);
    sync_ok(care1);
    sync_ok(hall0);
    converged(care0, "caregiver", 0, NULL);
    converged(hall0, "hall", 0, cty.hall[0]);
    long before = tablet_count(care0, "SELECT count(*) FROM dining_halls");
    uint8_t added[4][16];
    add_halls(0, 4, "new", added);
    sync_ok(care0);
    sync_ok(hall0);
    converged(care0, "caregiver", 0, NULL);
    converged(hall0, "hall", 0, cty.hall[0]);        /* not the new halls */
    ASSERT_EQ(tablet_count(care0, "SELECT count(*) FROM dining_halls"), before + 4);
    ASSERT_EQ(tablet_count(hall0, "SELECT count(*) FROM dining_halls"), 1);
    char sql[256], h[36], t[36];
    snprintf(sql, sizeof sql, "UPDATE dining_halls SET township_id = %s WHERE id = %s",
             xid(cty.twp[1], t), xid(added[2], h));
    srv_exec(&srv, sql);
    sync_ok(care0);
    sync_ok(care1);
    converged(care0, "caregiver", 0, NULL);
    converged(care1, "caregiver", 1, NULL);
    ASSERT_EQ(tablet_count(care0, "SELECT count(*) FROM dining_halls"), before + 3);
    sync_client_close(care0);
    sync_client_close(care1);
    sync_client_close(hall0);
}

/* More partitions than one compound query takes (MAX_ARMS in pull.c): the
 * scan falls back to one range and a sort, with the same result, also
 * when it is paged. */
static void test_many_partitions(void)
{
    add_halls(2, 300, "many", NULL);
    struct sync_client *care = tablet_new(&srv, "care2", "caregiver", cty.twp[2]);
    sync_ok(care);
    converged(care, "caregiver", 2, NULL);
    ASSERT_GE(tablet_count(care, "SELECT count(*) FROM dining_halls"), 300);
    add_halls(2, 3, "more", NULL);
    sync_ok(care);
    converged(care, "caregiver", 2, NULL);
    sync_client_close(care);
}

static long db_count(const char *sql)
{
    return server_count(srv.db, sql);
}

/* A database made before row_partitions and row_versions_hall (index
 * row_versions_pull) is brought up to date when the server opens it. */
static void test_old_database_upgraded(void)
{
    srv_stop(&srv);
    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open(srv.db, &db), SQLITE_OK);
    /* The first release's trigger kept no partition list. */
    ASSERT_EQ(sqlite3_exec(db, "DROP TABLE row_partitions; DROP INDEX row_versions_hall; "
                               "CREATE INDEX row_versions_pull ON row_versions (township_id, vseq);"
                               "DROP TRIGGER rv2_dining_halls_ins;"
                               "CREATE TRIGGER rv_dining_halls_ins AFTER INSERT ON dining_halls "
                               "WHEN es_track() BEGIN INSERT INTO row_versions (tbl, pk, "
                               "township_id, hall_id, vseq, deleted) VALUES ('dining_halls', "
                               "NEW.id, NEW.township_id, NEW.id, es_vseq(), 0); END",
                           NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    srv_restart(&srv);
    ASSERT_EQ(db_count("SELECT count(*) FROM sqlite_schema WHERE name = 'row_versions_pull'"), 0);
    ASSERT_EQ(db_count("SELECT count(*) FROM sqlite_schema WHERE name = 'row_versions_hall'"), 1);
    ASSERT_EQ(db_count("SELECT count(*) FROM row_partitions"),
              db_count("SELECT count(*) FROM (SELECT DISTINCT township_id, hall_id "
                       "FROM row_versions)"));
    ASSERT_EQ(db_count("SELECT count(*) FROM sqlite_schema WHERE name = 'rv_dining_halls_ins'"),
              0);
    add_halls(0, 2, "after upgrade", NULL);       /* through the triggers (exec) */
    struct sync_client *care = tablet_new(&srv, "care-up", "caregiver", cty.twp[0]);
    struct sync_client *hall = tablet_new(&srv, "hall-up", "hall", cty.hall[1]);
    sync_ok(care);
    sync_ok(hall);
    converged(care, "caregiver", 0, NULL);
    converged(hall, "hall", 0, cty.hall[1]);
    sync_client_close(care);
    sync_client_close(hall);
}

int main(void)
{
    static const struct test_case tests[] = {
        TEST(test_township_device_reads_every_partition),
        TEST(test_many_partitions),
        TEST(test_old_database_upgraded),
        { NULL, NULL }
    };
    char db[192];
    test_dir(dir, sizeof dir, "pullscan");
    snprintf(db, sizeof db, "%s/county.db", dir);
    county_seed(db, &cty);
    srv_start(&srv, dir, db);
    int rc = test_run_all("test_pull_scan", tests);
    srv_stop(&srv);
    return rc;
}
