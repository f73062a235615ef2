/* fuzz_json.c - libFuzzer target for every JSON request body the server
 * parses: the enrollment request (auth_enroll, the body of POST
 * /v1/enroll, in clear) and the pull request (pull_build, the plaintext of
 * a POST /v1/pull envelope), in-process on the fixed-id county of
 * fuzz_common.c.  (config.c's JSON is the operator's file, not a request;
 * the dashboard's login JSON is not part of this tree yet.)
 *
 * Input: one selector byte, then the JSON body.
 *   selector < 0x80   enrollment.  If the body holds the placeholder
 *                     "AAAA-AAAA-AAAA-AAAA", it is replaced by a real
 *                     enrollment code issued at start-up (selector bit 0:
 *                     a hall code for H0, else a caregiver code for T0),
 *                     so mutated bodies get past the code check.
 *   selector >= 0x80  pull request, as device (selector & 3) % 3: hall,
 *                     caregiver, inspector.
 * Checks:
 *   - enrollment: SYNC_OK with a JSON object reply holding a 32-hex-digit
 *     device_id, the code's role, and the server's keys, and a new row in
 *     devices with the request's keys; or a refusal (negative status, an
 *     error name, no reply) that changes no device;
 *   - pull: SYNC_OK with a reply whose JSON is an object with a cursor and
 *     whose changeset passes the tablet's cs_validate, or a refusal with an
 *     error name and no reply;
 *   - no transaction is left open; every 1000 inputs integrity_check and
 *     foreign_key_check are clean.
 * After a successful enrollment the database is restored from the seeded
 * snapshot (the code is used up); FUZZ_RESET_EVERY=N restores it every N
 * inputs as well (1 for reproducing).  FUZZ_VERBOSE=1 prints outcomes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "auth.h"
#include "changeset.h"
#include "eldersync.h"
#include "fuzz_common.h"
#include "log.h"
#include "pull.h"
#include "store.h"
#include "util.h"

#define FAIL(...) do { fprintf(stderr, "fuzz_json: " __VA_ARGS__); fputc('\n', stderr); \
                       abort(); } while (0)

static const char placeholder[] = "AAAA-AAAA-AAAA-AAAA";

static struct server srv;
static struct fz_county cty;
static struct device devs[FZ_NDEV];
static sqlite3 *snapshot;
static char dir[256], codes[2][AUTH_CODE_LEN + 1];
static long inputs, reset_every;
static int verbose;

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

static long count_devices(void)
{
    sqlite3_stmt *st = NULL;
    long n = -1;
    if (sqlite3_prepare_v2(srv.db, "SELECT count(*) FROM devices", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void init(void)
{
    char err[256], hex[33];
    const char *e;
    struct outcome o;
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    log_set_level((e = getenv("FUZZ_LOG")) ? atoi(e) : -1);
    if ((e = getenv("FUZZ_RESET_EVERY")) != NULL && atol(e) > 0)
        reset_every = atol(e);
    snprintf(dir, sizeof dir, "%s/eldersync-fuzz-json-XXXXXX",
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
    if (store_exec(srv.db, "PRAGMA synchronous = OFF") != SYNC_OK)   /* speed only */
        FAIL("pragma");
    fz_county_ids(&cty);
    if (store_begin(&srv) != SYNC_OK || fz_seed_rows(srv.db, &cty) != 0 ||
        fz_seed_devices(srv.db, &cty) != 0 || store_end(&srv, SYNC_OK) != SYNC_OK)
        FAIL("seed");
    for (int k = 0; k < FZ_NDEV; k++)
        fz_device(&cty, k, &devs[k]);
    outcome_init(&o);
    hex_encode(hex, cty.hall[0], 16);
    if (auth_code_new(&srv, "hall", hex, codes[0], &o) != SYNC_OK)
        FAIL("code: %s", o.detail);
    hex_encode(hex, cty.twp[0], 16);
    if (auth_code_new(&srv, "caregiver", hex, codes[1], &o) != SYNC_OK)
        FAIL("code: %s", o.detail);
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
        FAIL("foreign_key_check after %ld inputs: table %s", inputs, sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
}

static void check_refusal(const char *what, int rc, const struct outcome *o)
{
    if (rc >= 0 || rc < SYNC_ELOCKED)
        FAIL("%s returned %d", what, rc);
    if (o->error[0] == '\0')
        FAIL("%s refused (%d) without an error name", what, rc);
    if (memchr(o->detail, 0, sizeof o->detail) == NULL)
        FAIL("%s: detail not terminated", what);
}

static void enroll(const uint8_t *data, size_t size, int which)
{
    /* The body, with the placeholder replaced by a live code. */
    char *body = malloc(size + 1);
    if (body == NULL)
        FAIL("oom");
    memcpy(body, data, size);
    body[size] = '\0';
    for (size_t i = 0; i + sizeof placeholder - 1 <= size; i++)
        if (memcmp(body + i, placeholder, sizeof placeholder - 1) == 0)
            memcpy(body + i, codes[which], AUTH_CODE_LEN);
    long before = count_devices();
    char *reply = (char *)1;
    struct outcome o;
    outcome_init(&o);
    int rc = auth_enroll(&srv, body, size, &reply, &o);
    if (!sqlite3_get_autocommit(srv.db) || srv.txg.active)
        FAIL("auth_enroll left a transaction open (rc %d)", rc);
    long after = count_devices();
    if (verbose)
        fprintf(stderr, "enroll: %d %s %s\n", rc, rc == SYNC_OK ? "ok" : o.error,
                rc == SYNC_OK ? reply : o.detail);
    if (rc == SYNC_OK) {
        cJSON *j = reply ? cJSON_Parse(reply) : NULL;
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "device_id"));
        const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "role"));
        uint8_t raw[16];
        if (!cJSON_IsObject(j) || id == NULL || hex_decode(raw, 16, id) != 0 || role == NULL ||
            strcmp(role, which == 0 ? "hall" : "caregiver") != 0 ||
            !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "server_kx_pk")) ||
            !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "server_sign_pk")))
            FAIL("enrolled without a proper reply: %s", reply ? reply : "(null)");
        cJSON_Delete(j);
        cJSON_Delete(NULL);
        cJSON_free(reply);
        if (after != before + 1)
            FAIL("enrolled but devices went from %ld to %ld", before, after);
        check_clean();
        copy_db(srv.db, snapshot);          /* the code is used up: start again */
    } else {
        if (reply != NULL)
            FAIL("enrollment refused (%d) but left a reply", rc);
        check_refusal("auth_enroll", rc, &o);
        if (after != before)
            FAIL("refused enrollment changed devices from %ld to %ld", before, after);
    }
    free(body);
}

static void pull(const uint8_t *data, size_t size, int k)
{
    uint8_t *reply = (uint8_t *)1;
    size_t rlen = 1;
    struct outcome o;
    outcome_init(&o);
    int rc = pull_build(&srv, &devs[k], data, size, &reply, &rlen, &o);
    if (!sqlite3_get_autocommit(srv.db))
        FAIL("pull_build left a transaction open");
    if (verbose)
        fprintf(stderr, "pull %d: %d %s %zu bytes\n", k, rc, o.error, rlen);
    if (rc != SYNC_OK) {
        if (reply != NULL || rlen != 0)
            FAIL("pull_build refused (%d) but left a reply", rc);
        check_refusal("pull_build", rc, &o);
        return;
    }
    if (rlen < 4 || be32_get(reply) > rlen - 4)
        FAIL("pull reply of %zu bytes is malformed", rlen);
    uint32_t jl = be32_get(reply);
    cJSON *j = cJSON_ParseWithLength((const char *)reply + 4, jl);
    if (!cJSON_IsObject(j) || !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "cursor")))
        FAIL("pull reply JSON is not an object with a cursor: %.*s", (int)jl, reply + 4);
    cJSON_Delete(j);
    struct cs_limits lim = { 0, 0, 1u << 24, POL_MAXCOL };   /* the tablet's (sync.c) */
    struct cs_error e;
    if (cs_validate(reply + 4 + jl, rlen - 4 - jl, policy_cs_lookup, srv.pol, &lim, NULL, &e) !=
        SYNC_OK)
        FAIL("a pull page does not validate: %s", e.msg);
    free(reply);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        init();
        ready = 1;
    }
    if (size < 1 || size > (1u << 20))
        return 0;
    if (reset_every > 0 && inputs % reset_every == 0)
        copy_db(srv.db, snapshot);
    if (inputs > 0 && inputs % 1000 == 0)
        check_clean();
    inputs++;
    if (data[0] < 0x80)
        enroll(data + 1, size - 1, data[0] & 1);
    else
        pull(data + 1, size - 1, (data[0] & 3) % 3);
    return 0;
}
