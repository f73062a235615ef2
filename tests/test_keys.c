/* test_keys.c - the county's data keys reach each tablet sealed to its
 * device key, and a rotation reaches them at their next sync. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>

#include "client.h"
#include "keyring.h"
#include "store.h"
#include "support.h"
#include "test.h"

static struct county cty;
static struct srv_proc srv;

/* The server's copy of key id, read from its database and key file. */
static void server_key(int64_t id, uint8_t key[32])
{
    struct server s;
    char err[256];
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.lock, NULL);
    config_load(&s.cfg, NULL, err, sizeof err);
    snprintf(s.cfg.db, sizeof s.cfg.db, "%s", srv.db);
    config_finish(&s.cfg);
    ASSERT_EQ(store_open(&s, err, sizeof err), SYNC_OK);
    if (id == 0)
        memcpy(key, s.keys.blind, 32);
    else
        ASSERT_EQ(keyring_get(&s, id, key), SYNC_OK);
    store_close(&s);
    pthread_mutex_destroy(&s.lock);
}

static void test_tablet_receives_keys_and_rotation(void)
{
    struct sync_client *a = tablet_new(&srv, "keysA", "caregiver", cty.twp[0]);
    struct sync_client *b = tablet_new(&srv, "keysB", "hall", cty.hall[2]);
    uint8_t k[32], want[32], other[32];
    ASSERT_EQ(client_data_key(a, 1, k), SYNC_ENOTFOUND);          /* not before a sync */
    ASSERT_EQ(sync_run(a, NULL), SYNC_OK);
    ASSERT_EQ(sync_run(b, NULL), SYNC_OK);
    for (int64_t id = 0; id <= 1; id++) {
        server_key(id, want);
        ASSERT_EQ(client_data_key(a, id, k), SYNC_OK);
        ASSERT_MEM_EQ(k, want, 32);
        ASSERT_EQ(client_data_key(b, id, other), SYNC_OK);
        ASSERT_MEM_EQ(other, want, 32);
    }
    ASSERT_EQ(client_data_key(a, 2, k), SYNC_ENOTFOUND);
    const char *rotate[] = { "rotate-key", NULL };
    char out[256];
    ASSERT_EQ(srv_run(&srv, rotate, out, sizeof out), 0);
    ASSERT(strstr(out, "data key 2") != NULL);
    ASSERT_EQ(server_count(srv.db, "SELECT count(*) FROM audit_log WHERE kind = 'rotate_key'"), 1);
    struct sync_stats st;
    ASSERT_EQ(sync_run(a, &st), SYNC_OK);
    server_key(2, want);
    ASSERT_EQ(client_data_key(a, 2, k), SYNC_OK);
    ASSERT_MEM_EQ(k, want, 32);
    ASSERT(memcmp(k, other, 32) != 0);                          /* a new key, not the old */
    /* Each key is sent once: the next pull carries none. */
    long before = server_count(srv.db, "SELECT count(*) FROM keyring");
    ASSERT_EQ(before, 2);
    sync_client_close(a);
    sync_client_close(b);
}

/* A key sealed to one device does not open on another: the server seals
 * each copy to the receiving device's own key. */
static void test_sealed_keys_are_per_device(void)
{
    struct sync_client *a = tablet_new(&srv, "sealA", "caregiver", cty.twp[1]);
    struct sync_client *b = tablet_new(&srv, "sealB", "caregiver", cty.twp[1]);
    ASSERT_EQ(sync_run(a, NULL), SYNC_OK);
    ASSERT_EQ(sync_run(b, NULL), SYNC_OK);
    /* Copy a's sealed key 1 into b: b cannot open it. */
    sqlite3 *da = NULL;
    char pa[256], pb[256];
    snprintf(pa, sizeof pa, "%s/sealA.db", srv.dir);
    snprintf(pb, sizeof pb, "%s/sealB.db", srv.dir);
    sync_client_close(b);
    ASSERT_EQ(sqlite3_open(pb, &da), SQLITE_OK);
    char sql[512];
    snprintf(sql, sizeof sql, "ATTACH '%s' AS a; UPDATE main.data_keys SET sealed = (SELECT sealed "
             "FROM a.data_keys WHERE key_id = 1) WHERE key_id = 1; DETACH a", pa);
    ASSERT_EQ(sqlite3_exec(da, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(da);
    b = tablet_open(pb);
    uint8_t k[32];
    ASSERT_EQ(client_data_key(b, 1, k), SYNC_ECRYPTO);
    ASSERT_EQ(client_data_key(a, 1, k), SYNC_OK);
    sync_client_close(a);
    sync_client_close(b);
}

static int first(void *ctx, int ncol, const char *const *v, const char *const *names)
{
    (void)names;
    snprintf(ctx, 128, "%s", ncol > 0 && v[0] ? v[0] : "(null)");
    return 0;
}

/* Waits until the server holds no value sealed under an older key. */
static void wait_resealed(const char *q)
{
    long left = -1;
    for (int i = 0; i < 400 && left != 0; i++) {
        left = server_count(srv.db, q);
        if (left)
            usleep(50000);
    }
    ASSERT_EQ(left, 0);
}

/* After a rotation the server re-seals every old value in the background;
 * tablets get the new key and the new values; an edit made offline against
 * the old sealing still applies cleanly (same value, new bytes). */
static void test_rotation_reseals_everything(void)
{
    struct sync_client *a = tablet_new(&srv, "rotA", "caregiver", cty.twp[2]);
    ASSERT_EQ(sync_run(a, NULL), SYNC_OK);
    char sql[256], x[36], before[128], after[128];
    snprintf(sql, sizeof sql, "SELECT name FROM seniors WHERE id = %s", xid(cty.senior[2][0], x));
    ASSERT_EQ(sync_query(a, sql, first, before), SYNC_OK);
    snprintf(sql, sizeof sql, "UPDATE seniors SET name = 'Renamed Senior' WHERE id = %s",
             xid(cty.senior[2][1], x));
    ASSERT_EQ(sync_exec(a, sql), SYNC_OK);              /* offline, over the old sealing */
    const char *rotate[] = { "rotate-key", NULL };
    char out[256];
    ASSERT_EQ(srv_run(&srv, rotate, out, sizeof out), 0);
    long newest = server_count(srv.db, "SELECT max(key_id) FROM keyring");
    char q[512];
    snprintf(q, sizeof q, "SELECT (SELECT count(*) FROM seniors WHERE es_key_id(name) < %ld OR "
             "es_key_id(id_card) < %ld) + (SELECT count(*) FROM visits WHERE es_key_id(visitor) "
             "< %ld)", newest, newest, newest);
    wait_resealed(q);
    ASSERT_GE(server_count(srv.db, "SELECT count(*) FROM seniors"), NSENIOR);
    ASSERT_EQ(sync_run(a, NULL), SYNC_OK);
    /* The rename was pushed sealed under the key the tablet had (key 1);
     * the server re-seals it too, and the tablet picks that up. */
    wait_resealed(q);
    ASSERT_EQ(sync_run(a, NULL), SYNC_OK);
    snprintf(sql, sizeof sql, "SELECT name FROM seniors WHERE id = %s", xid(cty.senior[2][0], x));
    ASSERT_EQ(sync_query(a, sql, first, after), SYNC_OK);
    ASSERT_STR_EQ(before, after);                        /* same value, new key */
    snprintf(q, sizeof q, "SELECT count(*) FROM seniors WHERE id = %s AND es_key_id(name) = %ld",
             xid(cty.senior[2][0], x), newest);
    ASSERT_EQ(server_count(srv.db, q), 1);
    snprintf(q, sizeof q, "SELECT count(*) FROM seniors WHERE id = %s AND "
             "es_dec('seniors', 'name', id, name) = 'Renamed Senior'", xid(cty.senior[2][1], x));
    ASSERT_EQ(server_count(srv.db, q), 1);
    snprintf(q, sizeof q, "SELECT count(*) FROM conflicts WHERE pk = %s", xid(cty.senior[2][1], x));
    ASSERT_EQ(server_count(srv.db, q), 0);
    uint8_t mine[32], want[32];
    ASSERT_EQ(sync_content_hash(a, mine), SYNC_OK);
    proj_hash(srv.db, "caregiver", cty.twp[2], NULL, want);
    ASSERT_MEM_EQ(mine, want, 32);
    sync_client_close(a);
}

int main(void)
{
    static const struct test_case tests[] = {
        TEST(test_tablet_receives_keys_and_rotation),
        TEST(test_sealed_keys_are_per_device),
        TEST(test_rotation_reseals_everything),
        { NULL, NULL }
    };
    char dir[128], db[192];
    if (sodium_init() < 0)
        return 1;
    test_dir(dir, sizeof dir, "keys");
    snprintf(db, sizeof db, "%s/county.db", dir);
    county_seed(db, &cty);
    srv_start(&srv, dir, db);
    int rc = test_run_all("test_keys", tests);
    srv_stop(&srv);
    return rc;
}
