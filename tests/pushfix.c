/* pushfix.c - see pushfix.h. */
#include "pushfix.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eldersync.h"
#include "envelope.h"
#include "push.h"
#include "schema.h"
#include "store.h"
#include "support.h"
#include "test.h"
#include "util.h"

int pf_open(struct server *srv, const char *db)
{
    char err[256];
    memset(srv, 0, sizeof *srv);
    pthread_mutex_init(&srv->lock, NULL);
    config_load(&srv->cfg, NULL, err, sizeof err);
    snprintf(srv->cfg.db, sizeof srv->cfg.db, "%s", db);
    config_finish(&srv->cfg);
    int rc = store_open(srv, err, sizeof err);
    if (rc != SYNC_OK)
        srv->db = NULL;
    return rc;
}

void pf_copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    char buf[65536];
    size_t n;
    ASSERT_NOT_NULL(in);
    ASSERT_NOT_NULL(out);
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        ASSERT_EQ(fwrite(buf, 1, n, out), n);
    fclose(in);
    ASSERT_EQ(fclose(out), 0);
}

void pf_copy(const struct pushfix *f, const char *db)
{
    char a[256], b[256];
    pf_copy_file(f->template_db, db);
    snprintf(a, sizeof a, "%s.key", f->template_db);
    snprintf(b, sizeof b, "%s.key", db);
    pf_copy_file(a, b);
    snprintf(b, sizeof b, "%s-wal", db);
    unlink(b);
    snprintf(b, sizeof b, "%s-shm", db);
    unlink(b);
}

/* What sql does, as SQLite's session extension records it (then undone). */
static uint8_t *record(struct server *srv, const char *sql, size_t *len)
{
    sqlite3_session *s = NULL;
    void *out = NULL;
    int n = 0;
    ASSERT_EQ(store_exec(srv->db, "SAVEPOINT rec"), SYNC_OK);
    ASSERT_EQ(sqlite3session_create(srv->db, "main", &s), SQLITE_OK);
    for (int i = 0; i < srv->pol->ntables; i++)
        ASSERT_EQ(sqlite3session_attach(s, srv->pol->tables[i].name), SQLITE_OK);
    srv->track = 0;                      /* the bookkeeping triggers stay quiet */
    ASSERT_EQ(store_exec(srv->db, sql), SYNC_OK);
    srv->track = 1;
    ASSERT_EQ(sqlite3session_changeset(s, &n, &out), SQLITE_OK);
    ASSERT_GT(n, 0);
    sqlite3session_delete(s);
    ASSERT_EQ(store_exec(srv->db, "ROLLBACK TO rec; RELEASE rec"), SYNC_OK);
    uint8_t *copy = malloc((size_t)n);
    ASSERT_NOT_NULL(copy);
    memcpy(copy, out, (size_t)n);
    sqlite3_free(out);
    *len = (size_t)n;
    return copy;
}

/* u32 schema_version | u64 device ms | u32 n | n times (u64 entry | u32 len
 * | cs | u32 0, no forward part), then the device's signature.  Entry ids
 * are seq * 10 + i. */
static uint8_t *make_batch(struct pushfix *f, uint64_t seq, uint8_t *const *cs,
                           const size_t *n, int entries, size_t *len)
{
    struct buf b = {0};
    buf_be32(&b, (uint32_t)schema_version());
    buf_be64(&b, 1764474000000ull);
    buf_be32(&b, (uint32_t)entries);
    for (int i = 0; i < entries; i++) {
        buf_be64(&b, seq * 10 + (uint64_t)i);
        buf_be32(&b, (uint32_t)n[i]);
        buf_append(&b, cs[i], n[i]);
        buf_be32(&b, 0);
    }
    ASSERT(!b.oom);
    uint8_t sig[ENV_SIGBYTES];
    ASSERT_EQ(env_batch_sign(sig, f->cty.sign_sk[FZ_DEV_HALL], f->dev.id, seq, b.p, b.len, NULL),
              SYNC_OK);
    buf_append(&b, sig, sizeof sig);
    ASSERT(!b.oom);
    return buf_take(&b, len);
}

void pf_init(struct pushfix *f, const char *name)
{
    struct server srv;
    char sql[1024], m[36], s[36], h[36];
    memset(f, 0, sizeof *f);
    test_dir(f->dir, sizeof f->dir, name);
    snprintf(f->template_db, sizeof f->template_db, "%s/template.db", f->dir);
    fz_county_ids(&f->cty);
    fz_device(&f->cty, FZ_DEV_HALL, &f->dev);
    ASSERT_EQ(pf_open(&srv, f->template_db), SYNC_OK);
    ASSERT_EQ(store_begin(&srv), SYNC_OK);
    ASSERT_EQ(fz_seed_rows(srv.db, &f->cty), 0);
    ASSERT_EQ(fz_seed_devices(srv.db, &f->cty), 0);
    ASSERT_EQ(store_end(&srv, SYNC_OK), SYNC_OK);
    /* Batch 1: two entries (a lunch is logged meal by meal), batch 2: one. */
    for (int k = 0, meal = 0; k < 2; k++) {
        uint8_t *cs[2];
        size_t n[2];
        int entries = k == 0 ? 2 : 1;
        for (int i = 0; i < entries; i++, meal++) {
            uint8_t id[16];
            memcpy(id, f->cty.meal, 16);
            id[14] = (uint8_t)(0x40 + meal);      /* new meal ids next to the seeded one */
            snprintf(sql, sizeof sql, "INSERT INTO meal_logs (id, senior_id, hall_id, "
                     "service_date, meal_period, mode, served_at, price_paid_fen, subsidy_fen) "
                     "VALUES (%s, %s, %s, '2026-12-0%d', 'lunch', 'dine_in', %lld, 700, 300)",
                     fz_xid(id, m), fz_xid(f->cty.senior[0][1 + meal], s),
                     fz_xid(f->cty.hall[0], h), 1 + meal, 1764560000000LL + meal);
            cs[i] = record(&srv, sql, &n[i]);
        }
        f->batch[k] = make_batch(f, (uint64_t)k + 1, cs, n, entries, &f->len[k]);
        for (int i = 0; i < entries; i++)
            free(cs[i]);
    }
    store_close(&srv);
}

void pf_free(struct pushfix *f)
{
    char path[256];
    for (int k = 0; k < 2; k++)
        free(f->batch[k]);
    static const char *const files[] = { "template.db", "template.db.key", "template.db-wal",
                                         "template.db-shm" };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", f->dir, files[i]);
        unlink(path);
    }
}

int pf_push(struct pushfix *f, struct server *srv, int k, char **ack, struct outcome *o)
{
    outcome_init(o);
    return push_apply(srv, &f->dev, (uint64_t)k + 1, f->batch[k], f->len[k], ack, o);
}

void pf_state(const char *db, uint8_t hash[32], int64_t *seq, int *intact)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    *intact = sqlite3_step(st) == SQLITE_ROW &&
              strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
    sqlite3_finalize(st);
    ASSERT_EQ(sqlite3_prepare_v2(h, "SELECT last_batch_seq FROM devices WHERE role = 'hall'", -1,
                                 &st, NULL), SQLITE_OK);
    *seq = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(h);
    server_hash(db, hash);
}
