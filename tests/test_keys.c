/* test_keys.c - the county's data keys reach each tablet sealed to its
 * device key, and a rotation reaches them at their next sync. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>
#include <cjson/cJSON.h>

#include "changeset.h"
#include "client.h"
#include "envelope.h"
#include "keyring.h"
#include "pcrypt.h"
#include "transport.h"
#include "util.h"
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

/* Waits until the server's background re-sealing after a rotation is
 * done (every personal value under the newest key), so a test that
 * compares bytes does not race it.  Returns the newest key id. */
static long settle_resealing(void)
{
    long newest = server_count(srv.db, "SELECT max(key_id) FROM keyring"), left = -1;
    char q[640];
    snprintf(q, sizeof q, "SELECT (SELECT count(*) FROM seniors WHERE es_key_id(name) < %1$ld OR "
             "es_key_id(id_card) < %1$ld OR es_key_id(phone) < %1$ld OR es_key_id(address) < "
             "%1$ld OR es_key_id(poverty_status) < %1$ld OR es_key_id(health_notes) < %1$ld) + "
             "(SELECT count(*) FROM visits WHERE es_key_id(visitor) < %1$ld OR "
             "es_key_id(location) < %1$ld OR es_key_id(notes) < %1$ld)", newest);
    for (int i = 0; i < 600 && left != 0; i++) {
        left = server_count(srv.db, q);
        if (left)
            usleep(50000);
    }
    ASSERT_EQ(left, 0);
    return newest;
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
    /* b cannot seal opened values again, so it asks for them sealed and
     * still receives the server's exact bytes. */
    settle_resealing();
    char x[36];
    snprintf(sql, sizeof sql, "UPDATE seniors SET name = 'Changed For B' WHERE id = %s",
             xid(cty.senior[1][2], x));
    srv_exec(&srv, sql);
    int rc = sync_run(b, NULL);
    if (rc != SYNC_OK)
        fprintf(stderr, "  sync: %s\n", sync_client_errmsg(b));
    ASSERT_EQ(rc, SYNC_OK);
    uint8_t mine[32], want[32];
    ASSERT_EQ(sync_content_hash(b, mine), SYNC_OK);
    proj_hash(srv.db, "caregiver", cty.twp[1], NULL, want);
    ASSERT_MEM_EQ(mine, want, 32);
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

/* pv_seal derives its nonce: the same value of the same cell seals to the
 * same bytes; anything else differs; pv_open_ex tells the two kinds apart. */
static void test_sealing_is_deterministic(void)
{
    uint8_t key[32], other[32], pk[16], pk2[16];
    uint8_t *a = NULL, *b = NULL, *pt = NULL;
    size_t an = 0, bn = 0, ptn = 0;
    randombytes_buf(key, sizeof key);
    randombytes_buf(other, sizeof other);
    randombytes_buf(pk, sizeof pk);
    memcpy(pk2, pk, 16);
    pk2[15] ^= 1;
    const uint8_t *v = (const uint8_t *)"王秀英";
    size_t vn = strlen("王秀英");
    ASSERT_EQ(pv_seal(key, 3, "seniors", "name", pk, 16, v, vn, &a, &an), SYNC_OK);
    ASSERT_EQ(pv_seal(key, 3, "seniors", "name", pk, 16, v, vn, &b, &bn), SYNC_OK);
    ASSERT_EQ(an, PV_OVERHEAD + vn);
    ASSERT_EQ(an, bn);
    ASSERT_MEM_EQ(a, b, an);
    ASSERT_EQ(be32_get(a + 1), 3);
    /* another row, column, value or key: another nonce */
    struct { const uint8_t *k; const char *col; const uint8_t *pk; const char *v; } var[] = {
        { key, "name", pk2, "王秀英" }, { key, "phone", pk, "王秀英" },
        { key, "name", pk, "王秀兰" }, { other, "name", pk, "王秀英" },
    };
    for (size_t i = 0; i < sizeof var / sizeof var[0]; i++) {
        free(b);
        ASSERT_EQ(pv_seal(var[i].k, 3, "seniors", var[i].col, var[i].pk, 16,
                          (const uint8_t *)var[i].v, strlen(var[i].v), &b, &bn), SYNC_OK);
        ASSERT(memcmp(a + 5, b + 5, 24) != 0);
    }
    int synthetic = -1;
    ASSERT_EQ(pv_open_ex(key, "seniors", "name", pk, 16, a, an, &pt, &ptn, &synthetic), SYNC_OK);
    ASSERT_EQ(synthetic, 1);
    ASSERT_EQ(ptn, vn);
    ASSERT_MEM_EQ(pt, v, vn);
    free(pt);
    /* A value sealed with a random nonce (as before) opens, and is not synthetic. */
    uint8_t ad[64];
    size_t adn = 0;
    memcpy(ad, "seniors\0name\0", 13);
    memcpy(ad + 13, pk, 16);
    adn = 29;
    a[0] = PV_VERSION;
    randombytes_buf(a + 5, 24);
    unsigned long long cn = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(a + PV_HDRBYTES, &cn, v, vn, ad, adn, NULL, a + 5,
                                               key);
    ASSERT_EQ(pv_open_ex(key, "seniors", "name", pk, 16, a, an, &pt, &ptn, &synthetic), SYNC_OK);
    ASSERT_EQ(synthetic, 0);
    ASSERT_MEM_EQ(pt, v, vn);
    free(pt);
    a[an - 1] ^= 1;                                          /* and a forged one does not open */
    ASSERT_EQ(pv_open_ex(key, "seniors", "name", pk, 16, a, an, &pt, &ptn, &synthetic),
              SYNC_ECRYPTO);
    free(a);
    free(b);
}

/* The server's bytes of column col of row id, into out (at most cap). */
static size_t server_blob(const char *table, const char *col, const uint8_t id[16], uint8_t *out,
                          size_t cap)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char sql[160];
    size_t n = 0;
    snprintf(sql, sizeof sql, "SELECT \"%s\" FROM \"%s\" WHERE id = ?1", col, table);
    ASSERT_EQ(sqlite3_open_v2(srv.db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_blob(st, 1, id, 16, SQLITE_STATIC);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    n = (size_t)sqlite3_column_bytes(st, 0);
    ASSERT(n <= cap);
    memcpy(out, sqlite3_column_blob(st, 0), n);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* One raw pull from cursor 0 by the tablet at path: the page's JSON
 * header (cJSON_Delete it) and the value of seniors.name (column col) of
 * the rows want[0..1], copied into got[i] (lengths in gotn[i]). */
static cJSON *raw_pull(const char *path, const char *req, int col, uint8_t want[2][16],
                       uint8_t got[2][256], size_t gotn[2])
{
    struct ident id;
    struct env_header h;
    struct http_response r;
    uint8_t *env = NULL, *pt = NULL;
    size_t n = 0, ptn = 0;
    char err[256];
    tablet_ident(path, &id);
    memset(&h, 0, sizeof h);
    h.version = ENV_VERSION;
    h.kind = ENV_PULL;
    memcpy(h.device_id, id.dev, 16);
    ASSERT_EQ(env_seal(&h, id.tx, (const uint8_t *)req, strlen(req), &env, &n), SYNC_OK);
    ASSERT_EQ(http_post(srv.url, "/v1/pull", NULL, env, n, 10000, 64u << 20, &r, err, sizeof err),
              SYNC_OK);
    free(env);
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(env_open(r.body, r.len, ENV_PULL_REPLY, id.rx, NULL, &pt, &ptn), SYNC_OK);
    http_response_free(&r);
    size_t jlen = be32_get(pt);
    cJSON *j = cJSON_ParseWithLength((const char *)pt + 4, jlen);
    ASSERT_NOT_NULL(j);
    static struct cs_iter it;
    cs_iter_init(&it, pt + 4 + jlen, ptn - 4 - jlen);
    gotn[0] = gotn[1] = 0;
    while (cs_iter_next(&it) == 1) {
        if (strcmp(it.table, "seniors") != 0 || it.op != CS_INSERT)
            continue;
        for (int i = 0; i < 2; i++)
            if (it.new_[0].type == CS_BLOB && it.new_[0].n == 16 &&
                memcmp(it.new_[0].p, want[i], 16) == 0) {
                ASSERT_EQ(it.new_[col].type, CS_BLOB);
                ASSERT(it.new_[col].n <= 256);
                memcpy(got[i], it.new_[col].p, it.new_[col].n);
                gotn[i] = it.new_[col].n;
            }
    }
    free(pt);
    ASSERT(gotn[0] > 0 && gotn[1] > 0);
    return j;
}

/* A tablet that asks for it gets personal values opened inside its
 * encrypted page and seals them again into the server's exact bytes; a
 * value sealed with a random nonce (before synthetic nonces) travels
 * sealed; a tablet that does not ask gets every value sealed. */
static void test_pull_opens_personal_values(void)
{
    struct sync_client *a = tablet_new(&srv, "openA", "caregiver", cty.twp[1]);
    char path[256], sql[512], x[36];
    snprintf(path, sizeof path, "%s/openA.db", srv.dir);
    uint8_t key[32], want[2][16], got[2][256], server[2][256], ad[64];
    size_t gotn[2], servern[2];
    ASSERT_EQ(sync_run(a, NULL), SYNC_OK);
    /* Under the newest key, so the re-sealing after an earlier test's
     * rotation leaves the planted value alone. */
    long kid = settle_resealing();
    server_key(kid, key);
    memcpy(want[0], cty.senior[1][0], 16);
    memcpy(want[1], cty.senior[1][1], 16);
    /* senior 0's name as an older server sealed it: a random nonce */
    const char *old = "Old Sealing";
    uint8_t legacy[PV_OVERHEAD + 16];
    legacy[0] = PV_VERSION;
    be32_put(legacy + 1, (uint32_t)kid);
    randombytes_buf(legacy + 5, 24);
    memcpy(ad, "seniors\0name\0", 13);
    memcpy(ad + 13, want[0], 16);
    crypto_aead_xchacha20poly1305_ietf_encrypt(legacy + PV_HDRBYTES, NULL, (const uint8_t *)old,
                                               strlen(old), ad, 29, NULL, legacy + 5, key);
    size_t legacyn = PV_OVERHEAD + strlen(old);
    char hex[2 * sizeof legacy + 1];
    hex_encode(hex, legacy, legacyn);
    snprintf(sql, sizeof sql, "UPDATE seniors SET name = x'%s' WHERE id = %s", hex,
             xid(want[0], x));
    srv_exec(&srv, sql);
    for (int i = 0; i < 2; i++)
        servern[i] = server_blob("seniors", "name", want[i], server[i], sizeof server[i]);
    ASSERT_EQ(servern[0], legacyn);
    ASSERT_MEM_EQ(server[0], legacy, legacyn);
    int col = (int)server_count(srv.db, "SELECT cid FROM pragma_table_info('seniors') "
                                        "WHERE name = 'name'");
    ASSERT_GE(col, 1);

    cJSON *j = raw_pull(path, "{\"cursor\":0,\"open_personal\":true}", col, want, got, gotn);
    ASSERT(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "opened")));
    cJSON_Delete(j);
    ASSERT_EQ(gotn[0], servern[0]);                           /* random nonce: as it is */
    ASSERT_MEM_EQ(got[0], server[0], servern[0]);
    ASSERT_EQ(got[1][0], PV_OPENED);                          /* synthetic: opened */
    ASSERT_EQ(be32_get(got[1] + 1), kid);
    uint8_t *re = NULL, *pt = NULL;
    size_t ren = 0, ptn = 0;
    ASSERT_EQ(pv_open(key, "seniors", "name", want[1], 16, server[1], servern[1], &pt, &ptn),
              SYNC_OK);
    ASSERT_EQ(gotn[1], PV_OPENED_HDR + ptn);
    ASSERT_MEM_EQ(got[1] + PV_OPENED_HDR, pt, ptn);
    ASSERT_EQ(pv_seal(key, (uint32_t)kid, "seniors", "name", want[1], 16, got[1] + PV_OPENED_HDR,
                      gotn[1] - PV_OPENED_HDR, &re, &ren), SYNC_OK);
    ASSERT_EQ(ren, servern[1]);
    ASSERT_MEM_EQ(re, server[1], ren);                        /* the very same bytes */
    free(re);
    free(pt);

    j = raw_pull(path, "{\"cursor\":0}", col, want, got, gotn);
    ASSERT_NULL(cJSON_GetObjectItemCaseSensitive(j, "opened"));
    cJSON_Delete(j);
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(gotn[i], servern[i]);
        ASSERT_MEM_EQ(got[i], server[i], servern[i]);
    }

    /* Through the SDK: the tablet holds the server's bytes, both kinds. */
    ASSERT_EQ(sync_run(a, NULL), SYNC_OK);
    uint8_t mine[32], proj[32];
    ASSERT_EQ(sync_content_hash(a, mine), SYNC_OK);
    proj_hash(srv.db, "caregiver", cty.twp[1], NULL, proj);
    ASSERT_MEM_EQ(mine, proj, 32);
    char name[128];
    snprintf(sql, sizeof sql, "SELECT name FROM seniors WHERE id = %s", xid(want[0], x));
    ASSERT_EQ(sync_query(a, sql, first, name), SYNC_OK);
    ASSERT_STR_EQ(name, old);
    sync_client_close(a);
}

int main(void)
{
    static const struct test_case tests[] = {
        TEST(test_tablet_receives_keys_and_rotation),
        TEST(test_sealed_keys_are_per_device),
        TEST(test_sealing_is_deterministic),
        TEST(test_pull_opens_personal_values),
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
