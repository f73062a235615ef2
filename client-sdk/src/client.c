/* client.c - the tablet's local database: open, identity, captured writes,
 * queries and status.  Push and pull live in sync.c.
 *
 * Every write goes through sync_exec(): one transaction that runs the
 * app's SQL under a fresh session and stores the session's changeset in the
 * outbox before COMMIT, so a crash can neither lose a committed write nor
 * leave an outbox entry for a write that did not commit.
 */
#include "client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <cjson/cJSON.h>

#include "changeset.h"
#include "envelope.h"
#include "ids.h"
#include "rowhash.h"
#include "pcrypt.h"
#include "rowval.h"
#include "schema.h"
#include "transport.h"
#include "util.h"

#define APP_VERSION "eldersync-sdk/0.1"

const char *sync_strerror(int status)
{
    switch (status) {
    case SYNC_OK:           return "ok";
    case SYNC_ENOMEM:       return "out of memory";
    case SYNC_EIO:          return "local storage error";
    case SYNC_EPROTO:       return "protocol error";
    case SYNC_ECRYPTO:      return "authentication failed";
    case SYNC_ENET:         return "network error";
    case SYNC_EAUTH:        return "device not authorised";
    case SYNC_EFORBIDDEN:   return "forbidden";
    case SYNC_ECONFLICT:    return "batch sequence conflict";
    case SYNC_EINVAL:       return "invalid argument";
    case SYNC_ETOOBIG:      return "too big";
    case SYNC_ESERVER:      return "server error";
    case SYNC_ENOTENROLLED: return "not enrolled";
    case SYNC_EBUSY:        return "busy";
    case SYNC_ESCHEMA:      return "schema mismatch";
    case SYNC_ENOTFOUND:    return "not found";
    case SYNC_ELOCKED:      return "locked";
    default:                return "error";
    }
}

void sync_free(void *p)
{
    es_free(p);
}

int client_fail(struct sync_client *c, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return status;
}

const char *sync_client_errmsg(const struct sync_client *c)
{
    return c ? c->err : "no client";
}

int client_sql(struct sync_client *c, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return SYNC_OK;
    client_fail(c, SYNC_EIO, "local database: %s", msg ? msg : sqlite3_errmsg(c->db));
    sqlite3_free(msg);
    return SYNC_EIO;
}

/* ---- sync_meta ---------------------------------------------------------- */

static int meta_step(struct sync_client *c, const char *key, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v2(c->db, "SELECT value FROM sync_meta WHERE key = ?1", -1, st,
                           NULL) != SQLITE_OK)
        return client_fail(c, SYNC_EIO, "sync_meta: %s", sqlite3_errmsg(c->db));
    sqlite3_bind_text(*st, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(*st) != SQLITE_ROW) {
        sqlite3_finalize(*st);
        *st = NULL;
        return SYNC_ENOTFOUND;
    }
    return SYNC_OK;
}

int meta_get_int(struct sync_client *c, const char *key, int64_t *out)
{
    sqlite3_stmt *st;
    int rc = meta_step(c, key, &st);
    if (rc == SYNC_OK)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}

int meta_get_blob(struct sync_client *c, const char *key, uint8_t *out, size_t n)
{
    sqlite3_stmt *st;
    int rc = meta_step(c, key, &st);
    if (rc == SYNC_OK) {
        if ((size_t)sqlite3_column_bytes(st, 0) != n)
            rc = client_fail(c, SYNC_EIO, "sync_meta: %s has the wrong size", key);
        else
            memcpy(out, sqlite3_column_blob(st, 0), n);
    }
    sqlite3_finalize(st);
    return rc;
}

int meta_get_text(struct sync_client *c, const char *key, char *out, size_t n)
{
    sqlite3_stmt *st;
    int rc = meta_step(c, key, &st);
    if (rc == SYNC_OK) {
        const char *s = (const char *)sqlite3_column_text(st, 0);
        snprintf(out, n, "%s", s ? s : "");
    }
    sqlite3_finalize(st);
    return rc;
}

static int meta_set(struct sync_client *c, const char *key, int type, int64_t i,
                     const void *p, size_t n)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, "INSERT OR REPLACE INTO sync_meta (key, value) "
                           "VALUES (?1, ?2)", -1, &st, NULL) != SQLITE_OK)
        return client_fail(c, SYNC_EIO, "sync_meta: %s", sqlite3_errmsg(c->db));
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (type == SQLITE_INTEGER)
        sqlite3_bind_int64(st, 2, i);
    else if (type == SQLITE_BLOB)
        sqlite3_bind_blob(st, 2, p, (int)n, SQLITE_TRANSIENT);
    else
        sqlite3_bind_text(st, 2, p, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st) == SQLITE_DONE ? SYNC_OK
           : client_fail(c, SYNC_EIO, "sync_meta: %s", sqlite3_errmsg(c->db));
    sqlite3_finalize(st);
    return rc;
}

int meta_set_int(struct sync_client *c, const char *key, int64_t v)
{
    return meta_set(c, key, SQLITE_INTEGER, v, NULL, 0);
}

int meta_set_blob(struct sync_client *c, const char *key, const void *p, size_t n)
{
    return meta_set(c, key, SQLITE_BLOB, 0, p, n);
}

int meta_set_text(struct sync_client *c, const char *key, const char *s)
{
    return meta_set(c, key, SQLITE_TEXT, 0, s, 0);
}

/* ---- open / identity ---------------------------------------------------- */

static int install_views(struct sync_client *c);

/* local_date([ms]): the county's calendar date of an instant (default now),
 * 'YYYY-MM-DD'.  Breakfast at 07:30 in Asia/Shanghai is 23:30 UTC the day
 * before; its service_date is the local day. */
static void fn_local_date(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    struct sync_client *c = sqlite3_user_data(ctx);
    int64_t ms = argc > 0 ? sqlite3_value_int64(argv[0])
               : c->hooks.clock_ms ? c->hooks.clock_ms(c->hooks.ctx) : now_ms();
    if (argc > 0 && sqlite3_value_type(argv[0]) == SQLITE_NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    int64_t days = (ms / 1000 + (int64_t)c->utc_offset_min * 60);
    days = (days >= 0 ? days : days - 86399) / 86400;    /* floor */
    /* civil date from days since 1970-01-01 (Howard Hinnant's algorithm) */
    int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = yoe + era * 400 + (m <= 2);
    char out[48];
    snprintf(out, sizeof out, "%04lld-%02lld-%02lld", (long long)y, (long long)m, (long long)d);
    sqlite3_result_text(ctx, out, -1, SQLITE_TRANSIENT);
}

/* Loads the identity if the database is enrolled.  The keys stay locked
 * until sync_unlock(). */
static int load_identity(struct sync_client *c)
{
    char role[16];
    int64_t hlc_last = 0;
    c->enrolled = 0;
    c->unlocked = 0;
    int rc = meta_get_blob(c, "device_id", c->device_id, 16);
    if (rc == SYNC_ENOTFOUND)
        return SYNC_OK;
    if (rc == SYNC_OK) rc = meta_get_text(c, "role", role, sizeof role);
    if (rc == SYNC_OK) rc = meta_get_blob(c, "township_id", c->township, 16);
    if (rc == SYNC_OK) rc = meta_get_text(c, "server_url", c->server_url, sizeof c->server_url);
    if (rc != SYNC_OK)
        return client_fail(c, SYNC_EIO, "tablet identity is incomplete; re-enroll");
    c->has_hall = meta_get_blob(c, "hall_id", c->hall, 16) == SYNC_OK;
    c->role = role_bit(role);
    int64_t revoked = 0;
    if (meta_get_int(c, "revoked", &revoked) == SYNC_OK && revoked) {
        c->revoked = 1;                  /* identity kept for status, keys gone */
        return SYNC_OK;
    }
    int64_t off = 480;
    meta_get_int(c, "utc_offset_min", &off);
    c->utc_offset_min = (int)off;
    meta_get_int(c, "hlc", &hlc_last);
    hlc_init(&c->hlc, (uint64_t)hlc_last, hlc_node_from_id(c->device_id));
    if (c->hooks.clock_ms) {
        c->hlc.clock_ms = c->hooks.clock_ms;
        c->hlc.clock_ctx = c->hooks.ctx;
    }
    c->enrolled = 1;
    return SYNC_OK;
}

/* With the device keys in memory: the envelope session keys. */
static int session_keys(struct sync_client *c)
{
    uint8_t srv_pk[32], kx_pk[32];
    if (meta_get_blob(c, "server_kx_pk", srv_pk, 32) != SYNC_OK ||
        meta_get_blob(c, "kx_pk", kx_pk, 32) != SYNC_OK)
        return client_fail(c, SYNC_EAUTH, "tablet keys are missing; re-enroll");
    if (env_device_keys(c->rx, c->tx, kx_pk, c->kx_sk, srv_pk) != SYNC_OK)
        return client_fail(c, SYNC_ECRYPTO, "cannot derive session keys");
    return SYNC_OK;
}

int client_require_keys(struct sync_client *c)
{
    if (c->revoked)
        return client_fail(c, SYNC_EAUTH, "this tablet was revoked by the county; its keys "
                           "have been destroyed and it can no longer sync");
    if (!c->enrolled)
        return client_fail(c, SYNC_ENOTENROLLED, "this tablet is not enrolled yet: run "
                           "`eldersync --db FILE enroll --server URL --code CODE` first");
    if (!c->unlocked)
        return client_fail(c, SYNC_ELOCKED, "the tablet is locked: unlock it with the "
                           "caregiver's PIN (`eldersync unlock`, or ELDERSYNC_PIN)");
    return SYNC_OK;
}

int sync_unlock(struct sync_client *c, const char *pin)
{
    if (c->revoked || !c->enrolled)
        return client_require_keys(c);
    if (c->unlocked)
        return SYNC_OK;
    int rc = vault_open(c, pin);
    if (rc == SYNC_OK && (rc = session_keys(c)) != SYNC_OK)
        vault_destroy(c);
    return rc;
}

int client_tx_begin(struct sync_client *c)
{
    int rc = client_sql(c, "BEGIN IMMEDIATE");
    if (rc == SYNC_OK)
        txguard_begin(&c->txg);
    return rc;
}

int client_tx_end(struct sync_client *c, int rc)
{
    if (rc == SYNC_OK && txguard_lost(&c->txg, c->db))
        rc = client_fail(c, SYNC_EIO, "local database: the transaction was rolled back by an "
                         "out-of-memory or storage error");
    c->txg.active = 0;
    if (rc == SYNC_OK && (rc = client_sql(c, "COMMIT")) == SYNC_OK)
        return rc;
    char keep[sizeof c->err];
    memcpy(keep, c->err, sizeof keep);
    if (!sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    memcpy(c->err, keep, sizeof keep);
    return rc;
}

int sync_client_open(struct sync_client **out, const char *db_path,
                     char *errbuf, size_t errlen)
{
    char dummy[8];
    if (errbuf == NULL || errlen == 0) {
        errbuf = dummy;
        errlen = sizeof dummy;
    }
    *out = NULL;
    if (sodium_init() < 0) {
        snprintf(errbuf, errlen, "libsodium failed to initialise");
        return SYNC_ERROR;
    }
    struct sync_client *c = es_calloc(1, sizeof *c);
    if (c == NULL)
        return SYNC_ENOMEM;
    c->timeout_ms = 30000;
    http_conn_init(&c->conn, HTTP_IDLE_MAX_MS);
    http_conn_init(&c->conn2, HTTP_IDLE_MAX_MS);
    int rc = SYNC_EIO;
    if (sqlite3_open_v2(db_path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                        NULL) != SQLITE_OK) {
        snprintf(errbuf, errlen, "cannot open %s: %s", db_path,
                 c->db ? sqlite3_errmsg(c->db) : "out of memory");
        goto fail;
    }
    txguard_install(c->db, &c->txg);
    sqlite3_busy_timeout(c->db, 5000);
    /* WAL + synchronous=FULL: a committed write survives power loss. */
    c->utc_offset_min = 480;
    if (client_sql(c, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; "
                      "PRAGMA foreign_keys = ON") != SYNC_OK ||
        ids_register_sql(c->db) != SQLITE_OK ||
        sqlite3_create_function(c->db, "local_date", 0, SQLITE_UTF8, c, fn_local_date,
                                NULL, NULL) != SQLITE_OK ||
        sqlite3_create_function(c->db, "local_date", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, c,
                                fn_local_date, NULL, NULL) != SQLITE_OK) {
        snprintf(errbuf, errlen, "%s: %s", db_path, c->err);
        goto fail;
    }
    rc = schema_apply(c->db, SCHEMA_TABLET, errbuf, errlen);
    if (rc == SYNC_OK)
        rc = policy_load(c->db, &c->pol, errbuf, errlen);
    if (rc == SYNC_OK)
        rc = load_identity(c);
    if (rc == SYNC_OK)
        rc = install_views(c);
    if (rc != SYNC_OK) {
        if (c->err[0])
            snprintf(errbuf, errlen, "%s", c->err);
        goto fail;
    }
    *out = c;
    return SYNC_OK;
fail:
    sync_client_close(c);
    return rc;
}

void sync_client_close(struct sync_client *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < 32; i++)
        for (int k = 0; k < 2; k++)
            sqlite3_finalize(c->vstmt[i][k]);
    http_conn_reset(&c->conn);
    http_conn_reset(&c->conn2);
    sqlite3_close_v2(c->db);
    policy_free(c->pol);
    sodium_memzero(c->keycache, sizeof c->keycache);
    sodium_memzero(c->rx, sizeof c->rx);
    sodium_memzero(c->tx, sizeof c->tx);
    sodium_memzero(c->kx_sk, sizeof c->kx_sk);
    sodium_memzero(c->sign_sk, sizeof c->sign_sk);
    es_free(c);
}

void sync_client_set_keepalive(struct sync_client *c, int idle_ms)
{
    c->keepalive_ms = idle_ms > 0 ? idle_ms : 0;
    c->conn.idle_max_ms = idle_ms > 0 ? idle_ms : HTTP_IDLE_MAX_MS;
    if (idle_ms <= 0)
        http_conn_reset(&c->conn);
}

void sync_client_set_test_hooks(struct sync_client *c, const struct sync_test_hooks *h)
{
    memset(&c->hooks, 0, sizeof c->hooks);
    if (h)
        c->hooks = *h;
    c->hlc.clock_ms = c->hooks.clock_ms;
    c->hlc.clock_ctx = c->hooks.ctx;
}

/* ---- enrollment --------------------------------------------------------- */

static int json_hex(cJSON *o, const char *key, uint8_t *out, size_t n)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
    return s && hex_decode(out, n, s) == 0 ? 0 : -1;
}

static int store_identity(struct sync_client *c, cJSON *r, const char *url, const char *pin,
                          const uint8_t kx_pk[32], const uint8_t kx_sk[32],
                          const uint8_t sign_pk[32], const uint8_t sign_sk[64])
{
    uint8_t dev[16], twp[16], hall[16], srv[32];
    const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "role"));
    int has_hall = json_hex(r, "hall_id", hall, 16) == 0;
    if (json_hex(r, "device_id", dev, 16) || json_hex(r, "township_id", twp, 16) ||
        json_hex(r, "server_kx_pk", srv, 32) || role_bit(role) == 0)
        return client_fail(c, SYNC_EPROTO, "enrollment reply is malformed");
    int rc = client_tx_begin(c);
    if (rc == SYNC_OK) rc = meta_set_blob(c, "device_id", dev, 16);
    if (rc == SYNC_OK) rc = meta_set_text(c, "role", role);
    if (rc == SYNC_OK) rc = meta_set_blob(c, "township_id", twp, 16);
    if (rc == SYNC_OK && has_hall) rc = meta_set_blob(c, "hall_id", hall, 16);
    if (rc == SYNC_OK) rc = meta_set_text(c, "server_url", url);
    if (rc == SYNC_OK) rc = meta_set_blob(c, "server_kx_pk", srv, 32);
    if (rc == SYNC_OK) rc = meta_set_blob(c, "kx_pk", kx_pk, 32);
    if (rc == SYNC_OK) rc = meta_set_blob(c, "sign_pk", sign_pk, 32);
    memcpy(c->kx_sk, kx_sk, 32);
    memcpy(c->sign_sk, sign_sk, 64);
    if (rc == SYNC_OK) rc = vault_create(c, pin);
    cJSON *maxf = cJSON_GetObjectItemCaseSensitive(r, "max_pin_failures");
    if (rc == SYNC_OK)
        rc = meta_set_int(c, "pin_max_failures", cJSON_IsNumber(maxf) && maxf->valuedouble >= 1 &&
                          maxf->valuedouble <= 100 ? (int64_t)maxf->valuedouble : 5);
    cJSON *off = cJSON_GetObjectItemCaseSensitive(r, "utc_offset_minutes");
    if (rc == SYNC_OK && cJSON_IsNumber(off) && off->valuedouble >= -720 && off->valuedouble <= 840)
        rc = meta_set_int(c, "utc_offset_min", (int64_t)off->valuedouble);
    if (rc == SYNC_OK) rc = meta_set_int(c, "cursor", 0);
    if (rc == SYNC_OK) rc = meta_set_int(c, "next_batch_seq", 1);
    rc = client_tx_end(c, rc);
    if (rc != SYNC_OK) {
        sodium_memzero(c->kx_sk, sizeof c->kx_sk);
        sodium_memzero(c->sign_sk, sizeof c->sign_sk);
        return rc;
    }
    rc = load_identity(c);
    if (rc == SYNC_OK) {
        c->unlocked = 1;                      /* enrolled just now, with the PIN */
        rc = session_keys(c);
    }
    return rc;
}

/* Maps an HTTP error reply {"error":..., "detail":...} to a status. */
int client_http_error(struct sync_client *c, int http, const uint8_t *body, size_t len);

int sync_enroll(struct sync_client *c, const char *server_url, const char *code,
                const char *pin)
{
    uint8_t kx_pk[32], kx_sk[32], sign_pk[32], sign_sk[64];
    char hex[129], errbuf[256];
    if (c->enrolled)
        return client_fail(c, SYNC_EINVAL, "this tablet database is already enrolled "
                           "(device %s); use a new --db file to enroll again",
                           (hex_encode(hex, c->device_id, 16), hex));
    if (server_url == NULL || code == NULL || *code == '\0')
        return client_fail(c, SYNC_EINVAL, "enroll needs --server URL and --code CODE");
    if (pin == NULL || strlen(pin) < 4)                /* before the code is spent */
        return client_fail(c, SYNC_EINVAL, "choose a PIN of at least 4 characters "
                           "(ELDERSYNC_PIN, or typed at the prompt)");
    crypto_kx_keypair(kx_pk, kx_sk);
    crypto_sign_keypair(sign_pk, sign_sk);
    cJSON *req = cJSON_CreateObject();
    hex_encode(hex, kx_pk, 32);
    cJSON_AddStringToObject(req, "kx_pk", hex);
    hex_encode(hex, sign_pk, 32);
    cJSON_AddStringToObject(req, "sign_pk", hex);
    cJSON_AddStringToObject(req, "code", code);
    cJSON_AddStringToObject(req, "app_version", APP_VERSION);
    cJSON_AddNumberToObject(req, "schema_version", schema_version());
    char *body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    int rc = SYNC_ENOMEM;
    if (body == NULL)
        goto out;
    struct http_response resp;
    rc = http_post(server_url, "/v1/enroll", "application/json", body, strlen(body),
                   c->timeout_ms, 1 << 16, &resp, errbuf, sizeof errbuf);
    cJSON_free(body);
    if (rc != SYNC_OK) {
        rc = client_fail(c, rc, "%s", errbuf);
        goto out;
    }
    if (resp.status != 200) {
        rc = client_http_error(c, resp.status, resp.body, resp.len);
        http_response_free(&resp);
        goto out;
    }
    cJSON *r = cJSON_ParseWithLength((const char *)resp.body, resp.len);
    http_response_free(&resp);
    rc = r ? store_identity(c, r, server_url, pin, kx_pk, kx_sk, sign_pk, sign_sk)
           : client_fail(c, SYNC_EPROTO, "enrollment reply is not JSON");
    cJSON_Delete(r);
out:
    sodium_memzero(kx_sk, sizeof kx_sk);
    sodium_memzero(sign_sk, sizeof sign_sk);
    return rc;
}

int client_data_key(struct sync_client *c, int64_t id, uint8_t key[32])
{
    uint8_t pk[32];
    sqlite3_stmt *st = NULL;
    int rc = client_require_keys(c);
    if (rc != SYNC_OK)
        return rc;
    if (meta_get_blob(c, "kx_pk", pk, 32) != SYNC_OK)
        return client_fail(c, SYNC_EAUTH, "this tablet has no device key");
    if (sqlite3_prepare_v2(c->db, "SELECT sealed FROM data_keys WHERE key_id = ?1", -1, &st,
                           NULL) != SQLITE_OK)
        return client_fail(c, SYNC_EIO, "data_keys: %s", sqlite3_errmsg(c->db));
    sqlite3_bind_int64(st, 1, id);
    rc = SYNC_ENOTFOUND;
    if (sqlite3_step(st) == SQLITE_ROW)
        rc = sqlite3_column_bytes(st, 0) == (int)crypto_box_SEALBYTES + 32 &&
             crypto_box_seal_open(key, sqlite3_column_blob(st, 0),
                                  (unsigned long long)sqlite3_column_bytes(st, 0), pk, c->kx_sk) == 0
           ? SYNC_OK : SYNC_ECRYPTO;
    sqlite3_finalize(st);
    return rc;
}

/* ---- personal data: key provider and decrypting views ------------------- */

static int pv_get(void *ctx, int64_t id, uint8_t key[32])
{
    struct sync_client *c = ctx;
    int free_slot = -1;
    for (int i = 0; i < 8; i++) {
        if (c->keycache[i].loaded && c->keycache[i].id == id) {
            memcpy(key, c->keycache[i].key, 32);
            return SYNC_OK;
        }
        if (!c->keycache[i].loaded && free_slot < 0)
            free_slot = i;
    }
    int rc = client_data_key(c, id, key);
    if (rc == SYNC_OK && free_slot >= 0) {
        c->keycache[free_slot].id = id;
        memcpy(c->keycache[free_slot].key, key, 32);
        c->keycache[free_slot].loaded = 1;
    }
    return rc;
}

int client_cached_key(struct sync_client *c, int64_t id, uint8_t key[32])
{
    return pv_get(c, id, key);
}

static int64_t pv_active(void *ctx)
{
    return ((struct sync_client *)ctx)->active_key;
}

void client_keys_changed(struct sync_client *c)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, "SELECT coalesce(max(key_id), 0) FROM data_keys", -1, &st,
                           NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        c->active_key = sqlite3_column_int64(st, 0);   /* unreadable: keep the last known */
    sqlite3_finalize(st);
}

/* The value a column gets when an INSERT leaves it out: views have no
 * defaults, so the write statement supplies the table's. */
static void column_default(sqlite3 *db, const struct pol_table *t, int col, char *out, size_t n)
{
    sqlite3_stmt *st = NULL;
    snprintf(out, n, "NULL");
    if (sqlite3_prepare_v2(db, "SELECT dflt_value FROM pragma_table_info(?1, 'main') WHERE cid = ?2",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, col);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
            snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
}

/* Appends printf-style text to a growing SQL string. */
static void sql_add(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sql_add(struct buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        buf_append(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* The column whose blind index column i holds, or -1. */
static int bidx_source(const struct pol_table *t, int i)
{
    for (int k = 0; k < t->ncol; k++)
        if (t->bidx[k] == i)
            return k;
    return -1;
}

/* A TEMP view shadowing table t that opens personal columns, and INSTEAD
 * OF triggers that hand writes to es_row_*(), which seal personal values
 * and write main.t with statements prepared here.  (A TEMP trigger cannot
 * name main.t itself, and unqualified it would mean the view.)  App SQL
 * reads and writes plaintext; the file holds only sealed values.  Sync
 * never sees the view: changesets are applied to main.t. */
static void view_sql(const struct pol_table *t, struct buf *b)
{
    const char *n = t->name;
    sql_add(b, "CREATE TEMP VIEW \"%s\" AS SELECT ", n);
    for (int i = 0; i < t->ncol; i++) {
        const char *c = t->cols[i];
        if ((t->personal >> i) & 1)
            sql_add(b, "%ses_dec('%s', '%s', id, \"%s\") AS \"%s\"", i ? ", " : "", n, c, c, c);
        else
            sql_add(b, "%s\"%s\"", i ? ", " : "", c);
    }
    sql_add(b, " FROM main.\"%s\";\n", n);
    sql_add(b, "CREATE TEMP TRIGGER \"es_v_%s_ins\" INSTEAD OF INSERT ON \"%s\" BEGIN "
               "SELECT es_row_insert('%s'", n, n, n);
    for (int i = 0; i < t->ncol; i++)
        sql_add(b, ", NEW.\"%s\"", t->cols[i]);
    sql_add(b, "); END;\n");
    sql_add(b, "CREATE TEMP TRIGGER \"es_v_%s_upd\" INSTEAD OF UPDATE ON \"%s\" BEGIN "
               "SELECT es_row_update('%s', OLD.id", n, n, n);
    for (int i = 0; i < t->ncol; i++)
        sql_add(b, ", NEW.\"%s\" IS NOT OLD.\"%s\", NEW.\"%s\"", t->cols[i], t->cols[i], t->cols[i]);
    sql_add(b, "); END;\n");
    sql_add(b, "CREATE TEMP TRIGGER \"es_v_%s_del\" INSTEAD OF DELETE ON \"%s\" BEGIN "
               "SELECT es_row_delete('%s', OLD.id); END;\n", n, n, n);
}

/* The write statements behind the views, prepared before any app SQL. */
static int prepare_writes(struct sync_client *c, int ti)
{
    const struct pol_table *t = &c->pol->tables[ti];
    struct buf b = {0};
    char dflt[128];
    sql_add(&b, "INSERT INTO main.\"%s\" VALUES (", t->name);
    for (int i = 0; i < t->ncol; i++) {
        column_default(c->db, t, i, dflt, sizeof dflt);
        sql_add(&b, "%scoalesce(?%d, %s)", i ? ", " : "", i + 1, dflt);
    }
    sql_add(&b, ")");
    buf_byte(&b, 0);
    int rc = b.oom ? SQLITE_NOMEM : sqlite3_prepare_v3(c->db, (const char *)b.p, -1,
                                   SQLITE_PREPARE_PERSISTENT, &c->vstmt[ti][0], NULL);
    buf_free(&b);
    sql_add(&b, "DELETE FROM main.\"%s\" WHERE id = ?1", t->name);
    buf_byte(&b, 0);
    if (rc == SQLITE_OK)
        rc = b.oom ? SQLITE_NOMEM : sqlite3_prepare_v3(c->db, (const char *)b.p, -1,
                                   SQLITE_PREPARE_PERSISTENT, &c->vstmt[ti][1], NULL);
    buf_free(&b);
    return rc == SQLITE_OK ? SYNC_OK : client_fail(c, SYNC_EIO, "cannot prepare the write for "
                                                   "%s: %s", t->name, sqlite3_errmsg(c->db));
}

/* Binds value v of column i of t for row pk: sealed if personal, a blind
 * index if i holds one (of src), as is otherwise.  0, or -1 with ctx's
 * error set. */
static int bind_column(sqlite3_context *ctx, struct sync_client *c, sqlite3_stmt *st, int slot,
                       const struct pol_table *t, int i, sqlite3_value *pk, sqlite3_value *v,
                       sqlite3_value *src)
{
    uint8_t key[32];
    if (src != NULL) {                        /* the blind index of column src */
        if (sqlite3_value_type(src) == SQLITE_NULL)
            return sqlite3_bind_null(st, slot) == SQLITE_OK ? 0 : -1;
        uint8_t bidx[PV_BIDXBYTES];
        if (pv_get(c, 0, key) != SYNC_OK) {
            sqlite3_result_error(ctx, "no blind-index key yet: sync first", -1);
            return -1;
        }
        pv_blind(bidx, key, sqlite3_value_text(src), (size_t)sqlite3_value_bytes(src));
        sodium_memzero(key, sizeof key);
        return sqlite3_bind_blob(st, slot, bidx, sizeof bidx, SQLITE_TRANSIENT) == SQLITE_OK ? 0 : -1;
    }
    if (!((t->personal >> i) & 1) || sqlite3_value_type(v) == SQLITE_NULL)
        return sqlite3_bind_value(st, slot, v) == SQLITE_OK ? 0 : -1;
    uint8_t *out = NULL;
    size_t outlen = 0;
    if (c->active_key <= 0 || pv_get(c, c->active_key, key) != SYNC_OK) {
        sqlite3_result_error(ctx, "no data key to protect personal data yet: sync first", -1);
        return -1;
    }
    int rc = pv_seal(key, (uint32_t)c->active_key, t->name, t->cols[i], sqlite3_value_blob(pk),
                     (size_t)sqlite3_value_bytes(pk), sqlite3_value_text(v),
                     (size_t)sqlite3_value_bytes(v), &out, &outlen);
    sodium_memzero(key, sizeof key);
    if (rc != SYNC_OK) {
        sqlite3_result_error_nomem(ctx);
        return -1;
    }
    return sqlite3_bind_blob(st, slot, out, (int)outlen, es_free) == SQLITE_OK ? 0 : -1;
}

static const struct pol_table *view_table(sqlite3_context *ctx, struct sync_client *c,
                                          sqlite3_value *name, int *ti)
{
    const struct pol_table *t = policy_table(c->pol, (const char *)sqlite3_value_text(name));
    if (t == NULL || !t->personal) {
        sqlite3_result_error(ctx, "es_row_*: not a table with personal columns", -1);
        return NULL;
    }
    *ti = (int)(t - c->pol->tables);
    return t;
}

/* Steps a write statement; reports its error as the function's.  The
 * authorizer already checked the app's statement against the view; a
 * re-prepare of ours must not be judged again column by column. */
static void finish_write(sqlite3_context *ctx, struct sync_client *c, sqlite3_stmt *st, int ok)
{
    c->in_row_write = 1;
    int step = ok ? sqlite3_step(st) : SQLITE_DONE;
    c->in_row_write = 0;
    if (ok && step != SQLITE_DONE) {
        sqlite3_result_error(ctx, sqlite3_errmsg(c->db), -1);
        sqlite3_result_error_code(ctx, sqlite3_extended_errcode(c->db));
    } else if (ok) {
        sqlite3_result_null(ctx);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static void fn_row_insert(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    struct sync_client *c = sqlite3_user_data(ctx);
    int ti;
    const struct pol_table *t = view_table(ctx, c, argv[0], &ti);
    if (t == NULL || argc != t->ncol + 1)
        return;
    sqlite3_stmt *st = c->vstmt[ti][0];
    int ok = 1;
    for (int i = 0; ok && i < t->ncol; i++) {
        int src = bidx_source(t, i);
        ok = bind_column(ctx, c, st, i + 1, t, i, argv[1 + t->id_col], argv[1 + i],
                         src >= 0 ? argv[1 + src] : NULL) == 0;
    }
    finish_write(ctx, c, st, ok);
}

static void fn_row_update(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    struct sync_client *c = sqlite3_user_data(ctx);
    int ti;
    const struct pol_table *t = view_table(ctx, c, argv[0], &ti);
    if (t == NULL || argc != 2 * t->ncol + 2)
        return;
    int ok = 1;
    for (int i = 0; i < t->ncol; i++) {
        int county = ((t->protected_ >> i) & 1) || i == t->id_col || bidx_source(t, i) >= 0;
        if (county && sqlite3_value_int(argv[2 + 2 * i])) {
            snprintf(c->deny_buf, sizeof c->deny_buf, i == t->id_col ? "%s.%s may not be changed"
                     : "%s.%s is set by the county and may not be changed on a tablet",
                     t->name, t->cols[i]);
            c->deny_reason = c->deny_buf;
            sqlite3_result_error(ctx, c->deny_buf, -1);
            return;
        }
    }
    /* SET only the columns that change: SQLite checks the foreign keys of
     * every column in SET, and an untouched reference may point at a row
     * that has left this tablet's scope. */
    struct buf sql = {0};
    int slot[POL_MAXCOL], n = 0;
    sql_add(&sql, "UPDATE main.\"%s\" SET ", t->name);
    for (int i = 0; i < t->ncol; i++) {
        int src = bidx_source(t, i);
        slot[i] = 0;
        if (i == t->id_col || !sqlite3_value_int(argv[2 + 2 * (src >= 0 ? src : i)]))
            continue;
        slot[i] = ++n;
        sql_add(&sql, "%s\"%s\" = ?%d", n > 1 ? ", " : "", t->cols[i], n);
    }
    if (n == 0) {                                 /* nothing changes */
        buf_free(&sql);
        sqlite3_result_null(ctx);
        return;
    }
    sql_add(&sql, " WHERE id = ?%d", n + 1);
    buf_byte(&sql, 0);
    sqlite3_stmt *st = NULL;
    c->in_row_write = 1;                          /* the app's statement was authorised */
    int rc = sql.oom ? SQLITE_NOMEM : sqlite3_prepare_v2(c->db, (const char *)sql.p, -1, &st, NULL);
    c->in_row_write = 0;
    buf_free(&sql);
    if (rc != SQLITE_OK) {
        sqlite3_result_error(ctx, sqlite3_errmsg(c->db), -1);
        return;
    }
    for (int i = 0; ok && i < t->ncol; i++) {
        int src = bidx_source(t, i);
        if (slot[i])
            ok = bind_column(ctx, c, st, slot[i], t, i, argv[1], argv[3 + 2 * i],
                             src >= 0 ? argv[3 + 2 * src] : NULL) == 0;
    }
    sqlite3_bind_value(st, n + 1, argv[1]);
    finish_write(ctx, c, st, ok);
    sqlite3_finalize(st);
}

static void fn_row_delete(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    struct sync_client *c = sqlite3_user_data(ctx);
    int ti;
    const struct pol_table *t = view_table(ctx, c, argv[0], &ti);
    if (t == NULL || argc != 2)
        return;
    sqlite3_bind_value(c->vstmt[ti][1], 1, argv[1]);
    finish_write(ctx, c, c->vstmt[ti][1], 1);
}

static int install_views(struct sync_client *c)
{
    c->pv.get = pv_get;
    c->pv.active = pv_active;
    c->pv.ctx = c;
    if (pvsql_register(c->db, &c->pv) != SQLITE_OK)
        return client_fail(c, SYNC_ERROR, "cannot register the personal-data functions");
    if (sqlite3_create_function(c->db, "es_row_insert", -1, SQLITE_UTF8, c, fn_row_insert,
                                NULL, NULL) != SQLITE_OK ||
        sqlite3_create_function(c->db, "es_row_update", -1, SQLITE_UTF8, c, fn_row_update,
                                NULL, NULL) != SQLITE_OK ||
        sqlite3_create_function(c->db, "es_row_delete", 2, SQLITE_UTF8, c, fn_row_delete,
                                NULL, NULL) != SQLITE_OK)
        return client_fail(c, SYNC_ERROR, "cannot register the personal-data functions");
    struct buf b = {0};
    for (int i = 0; i < c->pol->ntables; i++)
        if (c->pol->tables[i].personal)
            view_sql(&c->pol->tables[i], &b);
    buf_byte(&b, 0);
    if (b.oom)
        return client_fail(c, SYNC_ENOMEM, "out of memory");
    int rc = client_sql(c, (const char *)b.p);
    buf_free(&b);
    /* After the views exist, so no schema change forces a re-prepare. */
    for (int i = 0; rc == SYNC_OK && i < c->pol->ntables; i++)
        if (c->pol->tables[i].personal)
            rc = prepare_writes(c, i);
    client_keys_changed(c);
    return rc;
}

/* ---- captured writes ---------------------------------------------------- */

int client_session(struct sync_client *c, sqlite3_session **out)
{
    *out = NULL;
    sqlite3_session *s = NULL;
    if (sqlite3session_create(c->db, "main", &s) != SQLITE_OK)
        return client_fail(c, SYNC_ENOMEM, "cannot create a session");
    for (int i = 0; i < c->pol->ntables; i++) {
        if (sqlite3session_attach(s, c->pol->tables[i].name) != SQLITE_OK) {
            sqlite3session_delete(s);
            return client_fail(c, SYNC_EIO, "cannot record table %s", c->pol->tables[i].name);
        }
    }
    *out = s;
    return SYNC_OK;
}

/* Authorizer for app SQL: plain DML on synced tables, as the role allows. */
static int exec_authorizer(void *ctx, int action, const char *a1, const char *a2,
                           const char *db, const char *trigger)
{
    struct sync_client *c = ctx;
    (void)trigger;
    unsigned need = 0;
    if (c->in_row_write)
        return SQLITE_OK;
    const char *verb = NULL;
    switch (action) {
    case SQLITE_SELECT: case SQLITE_READ: case SQLITE_FUNCTION: case SQLITE_RECURSIVE:
        return SQLITE_OK;
    case SQLITE_PRAGMA:
        /* The session reads a table's layout the first time it records a
         * change to it; reading layouts is harmless. */
        if (a1 && (strcmp(a1, "table_info") == 0 || strcmp(a1, "table_xinfo") == 0))
            return SQLITE_OK;
        break;
    case SQLITE_INSERT: verb = "insert into"; break;
    case SQLITE_UPDATE: verb = "update"; break;
    case SQLITE_DELETE: verb = "delete from"; break;
    default:
        break;
    }
    if (verb == NULL) {
        c->deny_reason = "only INSERT, UPDATE and SELECT statements on synced "
                         "tables are allowed (no DDL, PRAGMA, ATTACH or transaction control)";
        return SQLITE_DENY;
    }
    const struct pol_table *t = a1 ? policy_table(c->pol, a1) : NULL;
    if (t == NULL) {
        snprintf(c->deny_buf, sizeof c->deny_buf, "%s is not a synced table", a1 ? a1 : "?");
        c->deny_reason = c->deny_buf;
        return SQLITE_DENY;
    }
    need = action == SQLITE_INSERT ? t->insert_roles
         : action == SQLITE_UPDATE ? t->update_roles : t->delete_roles;
    if (!(need & c->role)) {
        snprintf(c->deny_buf, sizeof c->deny_buf, "role %s may not %s %s%s", role_name(c->role),
                 verb, t->name, action == SQLITE_DELETE && (t->update_roles & c->role)
                 ? " (rows are never deleted: set deleted = 1)" : "");
        c->deny_reason = c->deny_buf;
        return SQLITE_DENY;
    }
    /* An UPDATE of a personal-data view (schema "temp") reports every
     * column; es_row_update() checks the ones that really change. */
    int view = db && strcmp(db, "temp") == 0;
    if (action == SQLITE_UPDATE && a2 && !view) {
        int col = policy_col(t, a2);
        if (col >= 0 && ((t->protected_ >> col) & 1)) {
            snprintf(c->deny_buf, sizeof c->deny_buf,
                     "%s.%s is set by the county and may not be changed on a tablet", t->name, a2);
            c->deny_reason = c->deny_buf;
            return SQLITE_DENY;
        }
        if (col == t->id_col) {
            snprintf(c->deny_buf, sizeof c->deny_buf, "%s.id may not be changed", t->name);
            c->deny_reason = c->deny_buf;
            return SQLITE_DENY;
        }
    }
    return SQLITE_OK;
}

/* Stamps every inserted or updated row of a mutable table with one HLC
 * value for the whole transaction. */
static int stamp_hlc(struct sync_client *c, sqlite3_session *s)
{
    int n = 0;
    void *cs = NULL;
    if (sqlite3session_changeset(s, &n, &cs) != SQLITE_OK)
        return client_fail(c, SYNC_ENOMEM, "cannot read the session");
    uint64_t stamp = hlc_now(&c->hlc);
    struct cs_iter it;
    cs_iter_init(&it, cs, (size_t)n);
    int rc = SYNC_OK, more;
    while (rc == SYNC_OK && (more = cs_iter_next(&it)) == 1) {
        const struct pol_table *t = policy_table(c->pol, it.table);
        if (t == NULL || t->hlc_col < 0 || it.op == CS_DELETE)
            continue;
        char sql[160];
        snprintf(sql, sizeof sql, "UPDATE main.\"%s\" SET hlc = ?1 WHERE id = ?2", t->name);
        sqlite3_stmt *st = NULL;
        const struct cs_value *id = it.op == CS_INSERT ? &it.new_[t->id_col] : &it.old[t->id_col];
        if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
            rc = client_fail(c, SYNC_EIO, "stamp: %s", sqlite3_errmsg(c->db));
        else {
            sqlite3_bind_int64(st, 1, (sqlite3_int64)stamp);
            rowval_bind(st, 2, id);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = client_fail(c, SYNC_EIO, "stamp: %s", sqlite3_errmsg(c->db));
        }
        sqlite3_finalize(st);
    }
    sqlite3_free(cs);
    if (rc == SYNC_OK)
        rc = meta_set_int(c, "hlc", (int64_t)c->hlc.last);
    return rc;
}

static int exec_body(struct sync_client *c, sqlite3_session *s, const char *sql)
{
    char *msg = NULL;
    c->deny_reason = NULL;
    sqlite3_set_authorizer(c->db, exec_authorizer, c);
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);
    sqlite3_set_authorizer(c->db, NULL, NULL);
    if (rc != SQLITE_OK) {
        int status = c->deny_reason ? SYNC_EFORBIDDEN : SYNC_EINVAL;
        client_fail(c, status, "%s", c->deny_reason ? c->deny_reason
                    : msg ? msg : sqlite3_errmsg(c->db));
        sqlite3_free(msg);
        return status;
    }
    if (sqlite3session_isempty(s)) {
        /* Empty may also mean the session failed on its first change (out
         * of memory in its pre-update hook): the write would then commit
         * with no outbox entry and never sync.  Generating the (empty)
         * changeset reports such a failure. */
        int n0 = 0;
        void *cs0 = NULL;
        int src = sqlite3session_changeset(s, &n0, &cs0);
        sqlite3_free(cs0);
        if (src != SQLITE_OK)
            return client_fail(c, SYNC_ENOMEM, "cannot record the change: out of memory");
        return SYNC_OK;
    }
    rc = stamp_hlc(c, s);
    if (rc != SYNC_OK)
        return rc;
    int n = 0;
    void *cs = NULL;
    if (sqlite3session_changeset(s, &n, &cs) != SQLITE_OK)
        return client_fail(c, SYNC_ENOMEM, "cannot read the session");
    sqlite3_stmt *st = NULL;
    rc = SYNC_OK;
    if (n > 0) {
        if (sqlite3_prepare_v2(c->db, "INSERT INTO outbox (created_at, changeset) "
                               "VALUES (?1, ?2)", -1, &st, NULL) != SQLITE_OK)
            rc = client_fail(c, SYNC_EIO, "outbox: %s", sqlite3_errmsg(c->db));
        else {
            sqlite3_bind_int64(st, 1, now_ms());
            sqlite3_bind_blob(st, 2, cs, n, SQLITE_STATIC);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = client_fail(c, SYNC_EIO, "outbox: %s", sqlite3_errmsg(c->db));
        }
        sqlite3_finalize(st);
    }
    sqlite3_free(cs);
    return rc;
}

int sync_exec(struct sync_client *c, const char *sql)
{
    int rc0 = client_require_keys(c);
    if (rc0 != SYNC_OK)
        return rc0;
    if (sql == NULL)
        return client_fail(c, SYNC_EINVAL, "no SQL given");
    sqlite3_session *s = NULL;
    int rc = client_sql(c, "PRAGMA foreign_keys = ON");
    if (rc == SYNC_OK)
        rc = client_tx_begin(c);
    if (rc != SYNC_OK)
        return rc;
    rc = client_session(c, &s);
    if (rc == SYNC_OK)
        rc = exec_body(c, s, sql);
    if (s)                         /* SQLite 3.40's delete does not accept NULL */
        sqlite3session_delete(s);
    return client_tx_end(c, rc);
}

/* ---- queries ------------------------------------------------------------ */

static char *column_text(sqlite3_stmt *st, int i)
{
    int type = sqlite3_column_type(st, i);
    if (type == SQLITE_NULL)
        return NULL;
    if (type == SQLITE_BLOB) {
        size_t n = (size_t)sqlite3_column_bytes(st, i);
        char *h = es_malloc(2 * n + 1);
        if (h)
            hex_encode(h, sqlite3_column_blob(st, i), n);
        return h;
    }
    const char *s = (const char *)sqlite3_column_text(st, i);
    return es_strdup(s ? s : "");
}

static int query_one(struct sync_client *c, sqlite3_stmt *st, sync_row_fn fn, void *ctx)
{
    int ncol = sqlite3_column_count(st), rc, stop = 0;
    char **vals = es_calloc((size_t)ncol + 1, sizeof *vals);
    const char **names = es_calloc((size_t)ncol + 1, sizeof *names);
    if (vals == NULL || names == NULL) {
        es_free(vals);
        es_free(names);
        return client_fail(c, SYNC_ENOMEM, "out of memory");
    }
    for (int i = 0; i < ncol; i++)
        names[i] = sqlite3_column_name(st, i);
    while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < ncol; i++)
            vals[i] = column_text(st, i);
        stop = fn ? fn(ctx, ncol, (const char *const *)vals, names) : 0;
        for (int i = 0; i < ncol; i++) {
            es_free(vals[i]);
            vals[i] = NULL;
        }
    }
    es_free(vals);
    es_free(names);
    if (!stop && rc != SQLITE_DONE)
        return client_fail(c, SYNC_EINVAL, "query: %s", sqlite3_errmsg(c->db));
    return SYNC_OK;
}

int sync_query(struct sync_client *c, const char *sql, sync_row_fn fn, void *ctx)
{
    const char *tail = sql;
    int rc = SYNC_OK;
    if (sql == NULL)
        return client_fail(c, SYNC_EINVAL, "no SQL given");
    if ((c->enrolled || c->revoked) && (rc = client_require_keys(c)) != SYNC_OK)
        return rc;
    while (rc == SYNC_OK && tail && *tail) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(c->db, tail, -1, &st, &tail) != SQLITE_OK)
            return client_fail(c, SYNC_EINVAL, "query: %s", sqlite3_errmsg(c->db));
        if (st == NULL)
            break;                           /* trailing whitespace or comment */
        if (!sqlite3_stmt_readonly(st)) {
            sqlite3_finalize(st);
            return client_fail(c, SYNC_EINVAL, "query is read-only; use exec to write");
        }
        rc = query_one(c, st, fn, ctx);
        sqlite3_finalize(st);
    }
    return rc;
}

/* ---- status ------------------------------------------------------------- */

static long count(struct sync_client *c, const char *sql)
{
    sqlite3_stmt *st = NULL;
    long n = 0;
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

int sync_status(struct sync_client *c, struct sync_status_info *out)
{
    memset(out, 0, sizeof *out);
    out->schema_version = schema_version();
    out->pending = count(c, "SELECT count(*) FROM outbox WHERE state = 'pending'");
    out->unsent = count(c, "SELECT count(*) FROM outbox WHERE state = 'pending' "
                           "AND batch_seq IS NULL");
    out->quarantined = count(c, "SELECT count(*) FROM outbox WHERE state = 'quarantined'");
    out->revoked = c->revoked;
    out->locked = c->enrolled && !c->unlocked;
    int64_t v = 0;
    if (meta_get_int(c, "pin_failures", &v) == SYNC_OK)
        out->pin_failures = (int)v;
    if (meta_get_int(c, "wiped", &v) == SYNC_OK)
        out->wiped = (int)v;
    if (!c->enrolled && !c->revoked)
        return SYNC_OK;
    out->enrolled = 1;
    hex_encode(out->device_id, c->device_id, 16);
    snprintf(out->role, sizeof out->role, "%s", role_name(c->role));
    hex_encode(out->township_id, c->township, 16);
    if (c->has_hall)
        hex_encode(out->hall_id, c->hall, 16);
    snprintf(out->server_url, sizeof out->server_url, "%s", c->server_url);
    meta_get_int(c, "cursor", &out->cursor);
    meta_get_int(c, "last_sync", &out->last_sync_ms);
    meta_get_int(c, "next_batch_seq", &out->next_batch_seq);
    return SYNC_OK;
}

int sync_content_hash(struct sync_client *c, uint8_t out[32])
{
    int rc = rowhash_compute(c->db, c->pol, c->role ? c->role : ~0u, NULL, NULL, out);
    return rc == SYNC_OK ? rc : client_fail(c, rc, "content hash: %s", sqlite3_errmsg(c->db));
}
