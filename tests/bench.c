/* bench.c - eldersync's benchmark figures (make bench).  Prints a table and
 * the same figures as one JSON line.  Ratios are measured side by side in
 * one run; nothing here is a pass/fail test.
 *
 *   merge rate     the full push path (validate, authorise, apply with the
 *                  conflict handler, row versions, batch record, durable
 *                  commit) for one 100,000-row meal changeset, against plain
 *                  prepared INSERTs of the same rows into the same schema
 *   small pushes   50-row batches through the SDK over HTTP on loopback
 *   bytes/meal     a 60-meal lunch batch on the wire, HTTP headers included,
 *                  against the same records as JSON
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>

#include <sodium.h>

#include "changeset.h"
#include "envelope.h"
#include "ids.h"
#include "pcrypt.h"
#include "policy.h"
#include "push.h"
#include "rowval.h"
#include "schema.h"
#include "store.h"
#include "support.h"
#include "test.h"
#include "util.h"

#define MERGE_ROWS   100000
#define SMALL_PUSHES 300
#define SMALL_ROWS   50
#define LUNCH        60

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct meal {
    uint8_t id[16];
    int     day;
};

static struct county cty;
static double merge_push_s, merge_plain_s, small_per_s, bytes_meal, json_meal;

static void meal_values(struct cs_value v[10], const struct meal *m, char *date)
{
    memset(v, 0, 10 * sizeof v[0]);
    snprintf(date, 11, "2026-%02u-%02u", 1 + (unsigned)(m->day / 28) % 12, 1 + (unsigned)m->day % 28);
    v[0] = (struct cs_value){ .type = CS_BLOB, .p = m->id, .n = 16 };
    v[1] = (struct cs_value){ .type = CS_BLOB, .p = cty.senior[0][m->day % NSENIOR], .n = 16 };
    v[2] = (struct cs_value){ .type = CS_BLOB, .p = cty.hall[0], .n = 16 };
    v[3] = (struct cs_value){ .type = CS_TEXT, .p = (const uint8_t *)date, .n = 10 };
    v[4] = (struct cs_value){ .type = CS_TEXT, .p = (const uint8_t *)"lunch", .n = 5 };
    v[5] = (struct cs_value){ .type = CS_TEXT, .p = (const uint8_t *)"dine_in", .n = 7 };
    v[6] = (struct cs_value){ .type = CS_INT, .i = 1764474000000 + m->day };
    v[7] = (struct cs_value){ .type = CS_INT, .i = 1000 };
    v[8] = (struct cs_value){ .type = CS_INT, .i = 0 };
    v[9] = (struct cs_value){ .type = CS_NULL };
}

static int bind_meal(sqlite3_stmt *st, const struct meal *m)
{
    struct cs_value v[10];
    char date[11];
    meal_values(v, m, date);
    for (int i = 0; i < 10; i++)
        rowval_bind(st, i + 1, &v[i]);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

static double plain_inserts(const char *path, const struct meal *meals, int n)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char err[256];
    ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    ASSERT_EQ(store_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; "
                             "PRAGMA foreign_keys = ON; PRAGMA cache_size = -65536"), SYNC_OK);
    ASSERT_EQ(store_exec(db, schema_schema_sql), SYNC_OK);
    /* The same referenced rows, so the foreign keys are checked alike. */
    ASSERT_EQ(store_exec(db, "PRAGMA foreign_keys = OFF"), SYNC_OK);
    char sql[512], a[36], b[36];
    snprintf(sql, sizeof sql, "INSERT INTO townships (id, name) VALUES (%s, 'T0');"
             "INSERT INTO dining_halls (id, township_id, name, meal_price_fen) VALUES (%s, %s, 'H0', 1000)",
             xid(cty.twp[0], a), xid(cty.hall[0], b), a);
    ASSERT_EQ(store_exec(db, sql), SYNC_OK);
    for (int s = 0; s < NSENIOR; s++) {
        snprintf(sql, sizeof sql, "INSERT INTO seniors (id, township_id, name) VALUES (%s, %s, 'x')",
                 xid(cty.senior[0][s], a), xid(cty.twp[0], b));
        ASSERT_EQ(store_exec(db, sql), SYNC_OK);
    }
    ASSERT_EQ(store_exec(db, "PRAGMA foreign_keys = ON"), SYNC_OK);
    (void)err;
    double t0 = mono();
    ASSERT_EQ(store_exec(db, "BEGIN"), SYNC_OK);
    ASSERT_EQ(sqlite3_prepare_v2(db, "INSERT INTO meal_logs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                                 "?8, ?9, ?10)", -1, &st, NULL), SQLITE_OK);
    for (int i = 0; i < n; i++) {
        ASSERT_EQ(bind_meal(st, &meals[i]), 0);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    ASSERT_EQ(store_exec(db, "COMMIT"), SYNC_OK);
    double dt = mono() - t0;
    sqlite3_close(db);
    return dt;
}

static void bench_merge(void)
{
    char dir[128], db[192], plain[192], err[256];
    test_dir(dir, sizeof dir, "bench");
    snprintf(db, sizeof db, "%s/county.db", dir);
    snprintf(plain, sizeof plain, "%s/plain.db", dir);
    county_seed(db, &cty);
    struct meal *meals = calloc(MERGE_ROWS, sizeof *meals);
    ASSERT_NOT_NULL(meals);
    for (int i = 0; i < MERGE_ROWS; i++) {
        id_new(meals[i].id);
        meals[i].day = i % 300;
    }
    /* The batch a hall tablet would send: one entry, one changeset. */
    struct cs_writer w;
    cs_writer_init(&w);
    static const uint8_t pk[10] = { 1 };
    cs_writer_table(&w, "meal_logs", 10, pk);
    for (int i = 0; i < MERGE_ROWS; i++) {
        struct cs_value v[10];
        char date[11];
        meal_values(v, &meals[i], date);
        cs_writer_change(&w, CS_INSERT, 0, NULL, v);
    }
    uint8_t *cs = NULL;
    size_t cslen = 0;
    ASSERT_EQ(cs_writer_finish(&w, &cs, &cslen), SYNC_OK);
    struct buf b = {0};
    buf_be32(&b, (uint32_t)schema_version());
    buf_be64(&b, (uint64_t)now_ms());
    buf_be32(&b, 1);
    buf_be64(&b, 1);
    buf_be32(&b, (uint32_t)cslen);
    buf_append(&b, cs, cslen);
    buf_be32(&b, 0);
    ASSERT(!b.oom);
    uint8_t sign_pk[32], sign_sk[64], sig[ENV_SIGBYTES], devid[16];
    crypto_sign_keypair(sign_pk, sign_sk);
    id_new(devid);
    env_batch_sign(sig, sign_sk, devid, 1, b.p, b.len, NULL);
    buf_append(&b, sig, sizeof sig);
    ASSERT(!b.oom);

    struct server srv;
    memset(&srv, 0, sizeof srv);
    pthread_mutex_init(&srv.lock, NULL);
    config_load(&srv.cfg, NULL, err, sizeof err);
    snprintf(srv.cfg.db, sizeof srv.cfg.db, "%s", db);
    config_finish(&srv.cfg);
    ASSERT_EQ(store_open(&srv, err, sizeof err), SYNC_OK);
    struct device dev;
    memset(&dev, 0, sizeof dev);
    memcpy(dev.id, devid, 16);
    memcpy(dev.sign_pk, sign_pk, 32);
    dev.role = ROLE_HALL;
    memcpy(dev.township, cty.twp[0], 16);
    memcpy(dev.hall, cty.hall[0], 16);
    dev.has_hall = 1;
    char sql[512], a[36], t[36], h[36];
    snprintf(sql, sizeof sql, "INSERT INTO devices (id, role, township_id, hall_id, kx_pk, sign_pk, "
             "enrolled_at) VALUES (%s, 'hall', %s, %s, zeroblob(32), zeroblob(32), 0)",
             xid(dev.id, a), xid(cty.twp[0], t), xid(cty.hall[0], h));
    ASSERT_EQ(store_exec(srv.db, sql), SYNC_OK);

    struct outcome o;
    outcome_init(&o);
    char *ack = NULL;
    double t0 = mono();
    int rc = push_apply(&srv, &dev, 1, b.p, b.len, &ack, &o);
    merge_push_s = mono() - t0;
    if (rc != SYNC_OK)
        fprintf(stderr, "  push_apply: %s: %s\n", o.error, o.detail);
    ASSERT_EQ(rc, SYNC_OK);
    free(ack);
    ASSERT_EQ(server_count(db, "SELECT count(*) FROM meal_logs"), MERGE_ROWS);
    store_close(&srv);
    merge_plain_s = plain_inserts(plain, meals, MERGE_ROWS);
    buf_free(&b);
    free(cs);
    free(meals);
}

static void meal_sql(char *sql, size_t n, const uint8_t id[16], int k)
{
    char a[36], s[36], h[36];
    snprintf(sql, n, "INSERT INTO meal_logs (id, senior_id, hall_id, service_date, meal_period, "
             "mode, served_at, price_paid_fen, subsidy_fen) VALUES (%s, %s, %s, '2026-11-30', "
             "'lunch', 'dine_in', %lld, 700, 300);", xid(id, a), xid(cty.senior[0][k % NSENIOR], s),
             xid(cty.hall[0], h), (long long)now_ms());
}

static void bench_http(void)
{
    char dir[128], db[192];
    struct srv_proc srv;
    test_dir(dir, sizeof dir, "benchhttp");
    snprintf(db, sizeof db, "%s/county.db", dir);
    county_seed(db, &cty);
    /* Measuring throughput, not the flood guard: limits off. */
    srv_start_config(&srv, dir, db, "{\"device_rate_per_s\": 0, \"ip_rate_per_s\": 0}");
    struct sync_client *c = tablet_new(&srv, "hall", "hall", cty.hall[0]);
    ASSERT_EQ(sync_run(c, NULL), SYNC_OK);

    /* bytes per meal: one realistic lunch batch of 60 subsidised meals */
    static char sql[LUNCH * 400];
    size_t used = 0;
    cJSON *arr = cJSON_CreateArray();
    for (int k = 0; k < LUNCH && k < NSENIOR * 3; k++) {
        uint8_t id[16];
        id_new(id);
        meal_sql(sql + used, sizeof sql - used, id, k);
        used += strlen(sql + used);
        char hex[33];
        cJSON *m = cJSON_CreateObject();
        hex_encode(hex, id, 16);
        cJSON_AddStringToObject(m, "id", hex);
        hex_encode(hex, cty.senior[0][k % NSENIOR], 16);
        cJSON_AddStringToObject(m, "senior_id", hex);
        hex_encode(hex, cty.hall[0], 16);
        cJSON_AddStringToObject(m, "hall_id", hex);
        cJSON_AddStringToObject(m, "service_date", "2026-11-30");
        cJSON_AddStringToObject(m, "meal_period", "lunch");
        cJSON_AddStringToObject(m, "mode", "dine_in");
        cJSON_AddNumberToObject(m, "served_at", (double)now_ms());
        cJSON_AddNumberToObject(m, "price_paid_fen", 700);
        cJSON_AddNumberToObject(m, "subsidy_fen", 300);
        cJSON_AddItemToArray(arr, m);
    }
    char *json = cJSON_PrintUnformatted(arr);
    json_meal = (double)strlen(json) / LUNCH;
    cJSON_free(json);
    cJSON_Delete(arr);
    /* NSENIOR seniors cannot each eat 60 subsidised lunches: spread days. */
    for (char *p = sql; (p = strstr(p, "2026-11-30")) != NULL; p += 10)
        p[8] = (char)('1' + (p - sql) % 3), p[9] = '0' + (char)((p - sql) % 7);
    ASSERT_EQ(sync_exec(c, sql), SYNC_OK);
    struct sync_stats st;
    memset(&st, 0, sizeof st);
    ASSERT_EQ(sync_push(c, &st), SYNC_OK);
    bytes_meal = (double)st.bytes_up / LUNCH;

    /* small pushes: 50-row batches, each its own durable commit */
    double total = 0;
    for (int i = 0; i < SMALL_PUSHES; i++) {
        used = 0;
        for (int k = 0; k < SMALL_ROWS; k++) {
            uint8_t id[16];
            id_new(id);
            meal_sql(sql + used, sizeof sql - used, id, k);
            used += strlen(sql + used);
        }
        for (char *p = sql; (p = strstr(p, "300);")) != NULL; p += 5)
            memcpy(p, "0);  ", 5);                 /* unsubsidised: no daily limit */
        ASSERT_EQ(sync_exec(c, sql), SYNC_OK);
        double t0 = mono();
        ASSERT_EQ(sync_push(c, NULL), SYNC_OK);
        total += mono() - t0;
    }
    small_per_s = SMALL_PUSHES / total;
    sync_client_close(c);
    srv_stop(&srv);
}

/* The cost of protecting one personal value: seal and open a name. */
static double seal_us, open_us;

static void bench_seal(void)
{
    uint8_t key[32], id[16], *ct = NULL, *pt = NULL;
    size_t ctlen = 0, ptlen = 0;
    const char *name = "欧阳秀英";
    const int n = 200000;
    randombytes_buf(key, sizeof key);
    id_new(id);
    double t0 = mono();
    for (int i = 0; i < n; i++) {
        free(ct);
        ASSERT_EQ(pv_seal(key, 1, "seniors", "name", id, 16, (const uint8_t *)name, strlen(name),
                          &ct, &ctlen), SYNC_OK);
    }
    double t1 = mono();
    for (int i = 0; i < n; i++) {
        free(pt);
        ASSERT_EQ(pv_open(key, "seniors", "name", id, 16, ct, ctlen, &pt, &ptlen), SYNC_OK);
    }
    double t2 = mono();
    free(ct);
    free(pt);
    seal_us = (t1 - t0) * 1e6 / n;
    open_us = (t2 - t1) * 1e6 / n;
}

static void bench_all(void)
{
    bench_seal();
    bench_merge();
    bench_http();
    double push_rate = MERGE_ROWS / merge_push_s, plain_rate = MERGE_ROWS / merge_plain_s;
    printf("\n%-34s %14s %14s\n", "figure", "value", "target");
    printf("%-34s %11.0f r/s %14s\n", "merge rate, full push path", push_rate, "");
    printf("%-34s %11.0f r/s %14s\n", "plain prepared INSERTs", plain_rate, "");
    printf("%-34s %13.2fx %14s\n", "merge / plain", push_rate / plain_rate, ">= 0.5x");
    printf("%-34s %11.0f /s  %14s\n", "50-row pushes over HTTP", small_per_s, "");
    printf("%-34s %14s\n", "  commit mode", "WAL, synchronous=FULL, fsync per batch");
    printf("%-34s %12.1f B %14s\n", "bytes per meal on the wire", bytes_meal, "");
    printf("%-34s %12.1f B %14s\n", "  same records as JSON", json_meal, "");
    printf("%-34s %10.2f us %14s\n", "seal one personal value", seal_us, "");
    printf("%-34s %10.2f us %14s\n", "open one personal value", open_us, "");
    printf("%-34s %12d B %14s\n", "  bytes added per sealed value", PV_OVERHEAD, "");
    printf("{\"merge_rows_per_s\":%.0f,\"plain_rows_per_s\":%.0f,\"merge_ratio\":%.3f,"
           "\"pushes_per_s\":%.1f,\"bytes_per_meal\":%.1f,\"json_bytes_per_meal\":%.1f,"
           "\"seal_us\":%.2f,\"open_us\":%.2f}\n",
           push_rate, plain_rate, push_rate / plain_rate, small_per_s, bytes_meal, json_meal,
           seal_us, open_us);
}

int main(void)
{
    static const struct test_case cases[] = { TEST(bench_all), { NULL, NULL } };
    return test_run_all("bench", cases);
}
