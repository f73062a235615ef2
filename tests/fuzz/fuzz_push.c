/* fuzz_push.c - libFuzzer target for the server's push path (push_apply)
 * and pull request parsing (pull_build), in-process.
 *
 * Setup (once): a county database in a fresh temporary directory (under
 * /dev/shm when it exists), created with config_load + store_open like
 * tests/support.c's county_seed, seeded with fuzz_common.c's fixed-id
 * county, and three enrolled devices: a hall tablet of H0 and a caregiver
 * and an inspector tablet of T0.
 *
 * Input: one selector byte, then a decrypted batch payload (unsigned).
 *   bits 0-1  device: 0 hall, 1 caregiver, 2 inspector, 3 hall
 *   bits 2-4  7: reuse the device's last batch_seq (replay path); otherwise
 *             last_batch_seq + 1, read from the database
 *   bits 5-7  all set: pass the bytes as they are (exercises the signature
 *             check); clear: append the device's Ed25519 batch signature
 *             (env_batch_sign) so the payload reaches the parser
 * Checks:
 *   - push_apply returns SYNC_OK with a JSON ack whose batch_seq matches, or
 *     a refusal: a negative code, no ack, and an error name;
 *   - a push never leaves a transaction open, and the device's
 *     last_batch_seq moves by one exactly when a new batch was accepted;
 *   - after an accepted batch, every synced row has exactly one live row
 *     version, in the scope it is in now (what pulls rely on);
 *   - after an accepted batch, a pull from the counter before it must build,
 *     and its changeset must pass cs_validate with the tablet's limits
 *     (a tablet refuses a page it cannot validate, so sync would stall);
 *   - the remaining bytes, read as a pull request JSON, go to pull_build:
 *     SYNC_OK with a well-formed reply, or a refusal with an error name;
 *   - every 1000 inputs, PRAGMA integrity_check and foreign_key_check must
 *     be clean.  Then the database is restored from a snapshot taken after
 *     seeding, so it does not grow without bound.
 *
 * Environment:
 *   FUZZ_RESET_EVERY=N   restore the snapshot every N inputs (default 1000;
 *                        1 makes every input start from the seeded county,
 *                        which is what to use when reproducing a crash)
 *   FUZZ_VERBOSE=1       print each outcome
 *   FUZZ_LOG=level       server log level (default: silent)
 *   FUZZ_IGNORE_SKEW=1   skip inputs that hit the known clock_skew overflow
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "changeset.h"
#include "eldersync.h"
#include "envelope.h"
#include "fuzz_common.h"
#include "log.h"
#include "pull.h"
#include "push.h"
#include "store.h"
#include "util.h"

#define FAIL(...) do { fprintf(stderr, "fuzz_push: " __VA_ARGS__); fputc('\n', stderr); \
                       abort(); } while (0)

static struct server srv;
static struct fz_county cty;
static struct device devs[FZ_NDEV];
static sqlite3 *snapshot;         /* the seeded database, in memory */
static char dir[256];
static long inputs, reset_every = 1000;
static int verbose, ignore_skew;

static void cleanup(void)
{
    char path[512];
    store_close(&srv);
    sqlite3_close(snapshot);
    static const char *const files[] = { "county.db", "county.db-wal", "county.db-shm",
                                         "county.db.key" };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static int64_t query_int(const char *sql, const uint8_t *id)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(srv.db, sql, -1, &st, NULL) != SQLITE_OK)
        FAIL("prepare %s: %s", sql, sqlite3_errmsg(srv.db));
    if (id)
        sqlite3_bind_blob(st, 1, id, 16, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void copy_db(sqlite3 *to, sqlite3 *from)
{
    sqlite3_backup *b = sqlite3_backup_init(to, "main", from, "main");
    if (b == NULL)
        FAIL("backup_init: %s", sqlite3_errmsg(to));
    int rc = sqlite3_backup_step(b, -1);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE)
        FAIL("backup_step: %d %s", rc, sqlite3_errmsg(to));
}

static void init(void)
{
    char err[256];
    const char *e;
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    ignore_skew = getenv("FUZZ_IGNORE_SKEW") != NULL;
    log_set_level((e = getenv("FUZZ_LOG")) ? atoi(e) : -1);
    if ((e = getenv("FUZZ_RESET_EVERY")) != NULL && atol(e) > 0)
        reset_every = atol(e);
    snprintf(dir, sizeof dir, "%s/eldersync-fuzz-push-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (mkdtemp(dir) == NULL)
        FAIL("mkdtemp");
    memset(&srv, 0, sizeof srv);
    pthread_mutex_init(&srv.lock, NULL);
    config_load(&srv.cfg, NULL, err, sizeof err);
    snprintf(srv.cfg.db, sizeof srv.cfg.db, "%s/county.db", dir);
    config_finish(&srv.cfg);
    if (store_open(&srv, err, sizeof err) != SYNC_OK)
        FAIL("store_open: %s", err);
    atexit(cleanup);
    /* Speed only: an fsync per batch buys nothing here. */
    if (store_exec(srv.db, "PRAGMA synchronous = OFF") != SYNC_OK)
        FAIL("pragma");
    fz_county_ids(&cty);
    if (store_begin(&srv) != SYNC_OK || fz_seed_rows(srv.db, &cty) != 0 ||
        fz_seed_devices(srv.db, &cty) != 0 || store_end(&srv, SYNC_OK) != SYNC_OK)
        FAIL("seed");
    for (int k = 0; k < FZ_NDEV; k++)
        fz_device(&cty, k, &devs[k]);
    if (sqlite3_open(":memory:", &snapshot) != SQLITE_OK)
        FAIL("snapshot");
    copy_db(snapshot, srv.db);
}

static void check_clean(void)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(srv.db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK)
        FAIL("integrity_check: %s", sqlite3_errmsg(srv.db));
    int rc = sqlite3_step(st);
    const char *r = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    if (r == NULL || strcmp(r, "ok") != 0)
        FAIL("integrity_check after %ld inputs: %s", inputs, r ? r : sqlite3_errmsg(srv.db));
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(srv.db, "PRAGMA foreign_key_check", -1, &st, NULL) != SQLITE_OK)
        FAIL("foreign_key_check: %s", sqlite3_errmsg(srv.db));
    if (sqlite3_step(st) == SQLITE_ROW)
        FAIL("foreign_key_check after %ld inputs: table %s rowid %lld refers to a missing %s row",
             inputs, sqlite3_column_text(st, 0), (long long)sqlite3_column_int64(st, 1),
             sqlite3_column_text(st, 2));
    sqlite3_finalize(st);
}

static void check_refusal(const char *what, int rc, const struct outcome *o)
{
    if (rc >= 0 || rc < SYNC_ENOTFOUND)
        FAIL("%s returned %d", what, rc);
    if (o->error[0] == '\0')
        FAIL("%s refused (%d) without an error name", what, rc);
    if (o->status != rc && !(o->status != SYNC_OK && rc == SYNC_EIO))
        FAIL("%s returned %d but the outcome says %d (%s)", what, rc, o->status, o->error);
    if (memchr(o->detail, 0, sizeof o->detail) == NULL)
        FAIL("%s: detail not terminated", what);
}

/* Row versions must describe the rows exactly: every synced row has one
 * live entry, in the scope it is in now (as store.c's triggers compute
 * it), and no live entry is left anywhere else -- or pulls would miss the
 * row, or keep showing it to a scope it left. */
static void check_versions(void)
{
    for (int i = 0; i < srv.pol->ntables; i++) {
        const struct pol_table *t = &srv.pol->tables[i];
        const char *col = t->cols[t->scope_col];
        char twp[256], hall[128], sql[1024];
        switch (t->scope) {
        case SCOPE_COUNTY:
            snprintf(twp, sizeof twp, "x''");
            snprintf(hall, sizeof hall, "x''");
            break;
        case SCOPE_TOWNSHIP:
            snprintf(twp, sizeof twp, "coalesce(r.\"%s\", x'')", col);
            snprintf(hall, sizeof hall, "x''");
            break;
        default:
            snprintf(twp, sizeof twp, "coalesce((SELECT township_id FROM dining_halls WHERE "
                     "id = r.\"%s\"), x'')", col);
            snprintf(hall, sizeof hall, "coalesce(r.\"%s\", x'')", col);
            break;
        }
        for (int way = 0; way < 2; way++) {
            if (way == 0)
                snprintf(sql, sizeof sql, "SELECT hex(r.id) FROM \"%s\" r WHERE NOT EXISTS "
                         "(SELECT 1 FROM row_versions v WHERE v.tbl = '%s' AND v.pk = r.id AND "
                         "v.deleted = 0 AND v.township_id = %s AND v.hall_id = %s)",
                         t->name, t->name, twp, hall);
            else
                snprintf(sql, sizeof sql, "SELECT hex(v.pk) FROM row_versions v WHERE v.tbl = "
                         "'%s' AND v.deleted = 0 AND NOT EXISTS (SELECT 1 FROM \"%s\" r WHERE "
                         "r.id = v.pk AND v.township_id = %s AND v.hall_id = %s)",
                         t->name, t->name, twp, hall);
            sqlite3_stmt *st = NULL;
            if (sqlite3_prepare_v2(srv.db, sql, -1, &st, NULL) != SQLITE_OK)
                FAIL("check_versions: %s", sqlite3_errmsg(srv.db));
            if (sqlite3_step(st) == SQLITE_ROW)
                FAIL("%s row %s %s", t->name, sqlite3_column_text(st, 0),
                     way == 0 ? "has no live row version in its current scope"
                              : "has a live row version in a scope it is not in (or is gone)");
            sqlite3_finalize(st);
        }
    }
}

/* Checks a pull reply (u32 JSON length, JSON, changeset): the JSON must be
 * an object with a cursor and, if validate_cs, the changeset must pass the
 * validator with the tablet's limits. */
static void check_pull_reply(const uint8_t *reply, size_t len, int validate_cs)
{
    if (len < 4)
        FAIL("pull reply of %zu bytes", len);
    uint32_t jl = be32_get(reply);
    if (jl > len - 4)
        FAIL("pull reply JSON length %u of %zu bytes", jl, len);
    cJSON *j = cJSON_ParseWithLength((const char *)reply + 4, jl);
    if (!cJSON_IsObject(j) || !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "cursor")))
        FAIL("pull reply JSON is not an object with a cursor: %.*s", (int)jl, reply + 4);
    cJSON_Delete(j);
    if (!validate_cs)
        return;
    struct cs_limits lim = { 0, 0, 1u << 24, POL_MAXCOL };   /* the tablet's (sync.c) */
    struct cs_error e;
    size_t n = 0;
    int rc = cs_validate(reply + 4 + jl, len - 4 - jl, policy_cs_lookup, srv.pol, &lim, &n, &e);
    if (rc != SYNC_OK)
        FAIL("a pull page after an accepted push does not validate: %s", e.msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        init();
        ready = 1;
    }
    if (size < 1 || size > (8u << 20))
        return 0;
    if (reset_every == 1 || (inputs > 0 && inputs % reset_every == 0)) {
        if (reset_every > 1 || inputs % 1000 == 0)
            check_clean();
        copy_db(srv.db, snapshot);
    } else if (inputs > 0 && inputs % 1000 == 0) {
        check_clean();
    }
    inputs++;

    /* Known finding (README.md): a device clock near INT64_MIN overflows
     * device_ms - now in push.c's record_batch.  FUZZ_IGNORE_SKEW=1 skips
     * such inputs so a run can look for something else. */
    if (ignore_skew && size >= 13) {
        int64_t dms = (int64_t)be64_get(data + 5);
        if (dms < 0 && dms < INT64_MIN + now_ms())
            return 0;
    }
    int k = data[0] & 3;
    if (k == 3)
        k = FZ_DEV_HALL;
    struct device *dev = &devs[k];
    const uint8_t *pt = data + 1;
    size_t ptlen = size - 1;
    int64_t last = query_int("SELECT last_batch_seq FROM devices WHERE id = ?1", dev->id);
    if (last < 0)
        FAIL("device row missing");
    dev->last_batch_seq = last;
    int replay = ((data[0] >> 2) & 7) == 7;
    uint64_t seq = replay ? (uint64_t)last : (uint64_t)last + 1;
    int64_t before = store_counter(srv.db);

    /* The signed plaintext: payload || signature (exact size, for ASan). */
    int raw = (data[0] & 0xe0) == 0xe0;
    size_t slen = raw ? ptlen : ptlen + ENV_SIGBYTES;
    uint8_t *signed_pt = malloc(slen ? slen : 1);
    if (signed_pt == NULL)
        FAIL("oom");
    if (ptlen > 0)
        memcpy(signed_pt, pt, ptlen);
    if (!raw)
        env_batch_sign(signed_pt + ptlen, cty.sign_sk[k], dev->id, seq, pt, ptlen, NULL);

    struct outcome o;
    char *ack = (char *)1;
    outcome_init(&o);
    int rc = push_apply(&srv, dev, seq, signed_pt, slen, &ack, &o);
    free(signed_pt);
    if (!sqlite3_get_autocommit(srv.db))
        FAIL("push_apply left a transaction open (rc %d, %s)", rc, o.error);
    if (srv.txg.active || srv.track != 1)
        FAIL("push_apply left txg.active %d, track %d", srv.txg.active, srv.track);
    int64_t now = query_int("SELECT last_batch_seq FROM devices WHERE id = ?1", dev->id);
    if (verbose)
        fprintf(stderr, "device %d seq %llu%s: push %d %s %s (entry %lld)\n", k,
                (unsigned long long)seq, raw ? " unsigned" : "", rc,
                rc == SYNC_OK ? "ok" : o.error, rc == SYNC_OK ? ack : o.detail,
                (long long)o.entry);
    if (rc == SYNC_OK) {
        cJSON *j = ack ? cJSON_Parse(ack) : NULL;
        cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "batch_seq");
        if (!cJSON_IsNumber(s) || (uint64_t)s->valuedouble != seq)
            FAIL("accepted without a proper ack: %s", ack ? ack : "(null)");
        cJSON_Delete(j);
        free(ack);
        if (now != (int64_t)seq)
            FAIL("accepted batch %llu but last_batch_seq is %lld", (unsigned long long)seq,
                 (long long)now);
        if (!replay) {           /* what the push changed must pull and validate */
            check_versions();
            char req[64];
            uint8_t *reply = NULL;
            size_t rlen = 0;
            struct outcome po;
            outcome_init(&po);
            snprintf(req, sizeof req, "{\"cursor\":%lld}", (long long)before);
            int prc = pull_build(&srv, dev, (const uint8_t *)req, strlen(req), &reply, &rlen, &po);
            if (prc != SYNC_OK)
                FAIL("pull after an accepted push: %d %s %s", prc, po.error, po.detail);
            check_pull_reply(reply, rlen, 1);
            free(reply);
        }
    } else {
        if (ack != NULL)
            FAIL("refused (%d) but *ack is %p", rc, (void *)ack);
        check_refusal("push_apply", rc, &o);
        if (now != last)
            FAIL("refused batch moved last_batch_seq from %lld to %lld", (long long)last,
                 (long long)now);
    }

    /* The same bytes as a pull request. */
    uint8_t *reply = (uint8_t *)1;
    size_t rlen = 1;
    struct outcome po;
    outcome_init(&po);
    rc = pull_build(&srv, dev, pt, ptlen, &reply, &rlen, &po);
    if (!sqlite3_get_autocommit(srv.db))
        FAIL("pull_build left a transaction open");
    if (verbose)
        fprintf(stderr, "  pull %d %s %zu bytes\n", rc, po.error, rlen);
    if (rc == SYNC_OK) {
        check_pull_reply(reply, rlen, 0);
        free(reply);
    } else {
        if (reply != NULL || rlen != 0)
            FAIL("pull_build refused (%d) but left a reply", rc);
        check_refusal("pull_build", rc, &po);
    }
    return 0;
}
