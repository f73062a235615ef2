/* auth.c - enrollment codes, enrollment and device lookup.
 *
 * A code is 80 random bits in Crockford base32; only its BLAKE2b hash is
 * stored, so a copied database does not reveal usable codes.  Each code
 * enrolls one device, before it expires.
 */
#include "auth.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sodium.h>
#include <cjson/cJSON.h>

#include "eldersync.h"
#include "audit.h"
#include "envelope.h"
#include "ids.h"
#include "log.h"
#include "store.h"
#include "util.h"

static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* Upper-case, drop dashes and spaces; 0 on success. */
static int normalise_code(const char *in, char out[17])
{
    size_t n = 0;
    for (; in && *in; in++) {
        if (*in == '-' || *in == ' ')
            continue;
        char ch = (char)toupper((unsigned char)*in);
        if (strchr(b32, ch) == NULL || ch == '\0' || n == 16)
            return -1;
        out[n++] = ch;
    }
    out[n] = '\0';
    return n == 16 ? 0 : -1;
}

static void code_hash(const char norm[17], uint8_t out[32])
{
    crypto_generichash(out, 32, (const uint8_t *)norm, 16, NULL, 0);
}

/* Resolves a scope key for role into township and hall ids. */
static int resolve_scope(struct server *srv, unsigned role, const uint8_t key[16],
                         uint8_t twp[16], uint8_t hall[16], int *has_hall)
{
    sqlite3_stmt *st = NULL;
    const char *sql = role == ROLE_HALL
        ? "SELECT township_id FROM dining_halls WHERE id = ?1 AND deleted = 0"
        : "SELECT id FROM townships WHERE id = ?1 AND deleted = 0";
    int ok = 0;
    if (sqlite3_prepare_v2(srv->db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_blob(st, 1, key, 16, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 16) {
            memcpy(twp, sqlite3_column_blob(st, 0), 16);
            ok = 1;
        }
    }
    sqlite3_finalize(st);
    *has_hall = role == ROLE_HALL;
    memcpy(hall, role == ROLE_HALL ? key : (const uint8_t *)"", role == ROLE_HALL ? 16 : 0);
    return ok ? 0 : -1;
}

int auth_code_new(struct server *srv, const char *role, const char *scope_hex,
                  char code[AUTH_CODE_LEN + 1], struct outcome *o)
{
    uint8_t key[16], twp[16], hall[16], rnd[10], hash[32];
    int has_hall;
    unsigned bit = role_bit(role);
    if (bit == 0)
        return outcome_set(o, SYNC_EINVAL, "bad_role",
                           "unknown role '%s' (use caregiver, hall or inspector)", role ? role : "");
    if (hex_decode(key, 16, scope_hex) != 0)
        return outcome_set(o, SYNC_EINVAL, "bad_scope",
                           "scope must be a 32-hex-digit township or dining hall id");
    pthread_mutex_lock(&srv->lock);
    int found = resolve_scope(srv, bit, key, twp, hall, &has_hall);
    pthread_mutex_unlock(&srv->lock);
    if (found != 0)
        return outcome_set(o, SYNC_EINVAL, "bad_scope", "no %s with id %s",
                           bit == ROLE_HALL ? "dining hall" : "township", scope_hex);
    /* 80 bits -> 16 base32 characters, grouped by four. */
    randombytes_buf(rnd, sizeof rnd);
    char norm[17];
    for (int i = 0; i < 16; i++) {
        int bitpos = i * 5, byte = bitpos / 8, shift = bitpos % 8;
        unsigned v = (unsigned)rnd[byte] << 8 | (byte + 1 < 10 ? rnd[byte + 1] : 0);
        norm[i] = b32[(v >> (11 - shift)) & 31];
    }
    norm[16] = '\0';
    snprintf(code, AUTH_CODE_LEN + 1, "%.4s-%.4s-%.4s-%.4s", norm, norm + 4, norm + 8, norm + 12);
    code_hash(norm, hash);
    char detail[160];
    snprintf(detail, sizeof detail, "{\"role\":\"%s\",\"scope\":\"%s\"}", role_name(bit),
             scope_hex);
    int64_t now = now_ms();
    pthread_mutex_lock(&srv->lock);
    int rc = store_begin(srv);
    sqlite3_stmt *st = rc == SYNC_OK ? store_stmt(srv, "INSERT INTO enroll_codes (code_hash, "
                           "role, township_id, hall_id, created_at, expires_at) VALUES "
                           "(?1, ?2, ?3, ?4, ?5, ?6)") : NULL;
    if (st) {
        sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, role_name(bit), -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, twp, 16, SQLITE_STATIC);
        sqlite3_bind_blob(st, 4, hall, has_hall ? 16 : 0, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, now);
        sqlite3_bind_int64(st, 6, now + (int64_t)srv->cfg.enroll_code_ttl_s * 1000);
        rc = sqlite3_step(st) == SQLITE_DONE ? SYNC_OK : SYNC_EIO;
        sqlite3_reset(st);
    } else if (rc == SYNC_OK) {
        rc = SYNC_EIO;
    }
    if (rc == SYNC_OK)
        rc = audit_append(srv, "enroll_code", NULL, "admin", detail);
    rc = store_end(srv, rc);
    pthread_mutex_unlock(&srv->lock);
    sodium_memzero(norm, sizeof norm);
    if (rc != SYNC_OK)
        return outcome_set(o, rc, "storage", "cannot store the code");
    log_info("issued an enrollment code for role %s", role_name(bit));
    return SYNC_OK;
}

static int json_key(cJSON *j, const char *name, uint8_t out[32])
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, name));
    return s && hex_decode(out, 32, s) == 0 ? 0 : -1;
}

/* Claims the code inside the caller's transaction and creates the device. */
static int enroll_tx(struct server *srv, const uint8_t hash[32], const uint8_t kx[32],
                     const uint8_t sig[32], cJSON *req, cJSON *reply, struct outcome *o)
{
    sqlite3_stmt *st = NULL;
    uint8_t dev[16], twp[16], hall[16];
    char role[16], hex[65];
    int nhall;
    int64_t now = now_ms();
    if (sqlite3_prepare_v2(srv->db, "SELECT role, township_id, hall_id, expires_at, used_at "
                           "FROM enroll_codes WHERE code_hash = ?1", -1, &st, NULL) != SQLITE_OK)
        return outcome_set(o, SYNC_EIO, "storage", "cannot read enrollment codes");
    sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return outcome_set(o, SYNC_EAUTH, "bad_code", "unknown enrollment code");
    }
    int used = sqlite3_column_type(st, 4) != SQLITE_NULL;
    int expired = sqlite3_column_int64(st, 3) < now;
    snprintf(role, sizeof role, "%s", (const char *)sqlite3_column_text(st, 0));
    memcpy(twp, sqlite3_column_blob(st, 1), 16);
    nhall = sqlite3_column_bytes(st, 2) == 16 ? 16 : 0;
    if (nhall)
        memcpy(hall, sqlite3_column_blob(st, 2), 16);
    sqlite3_finalize(st);
    if (used)
        return outcome_set(o, SYNC_EAUTH, "code_used", "this enrollment code was already used");
    if (expired)
        return outcome_set(o, SYNC_EAUTH, "code_expired", "this enrollment code has expired");
    id_new(dev);
    const char *app = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "app_version"));
    double sv = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(req, "schema_version"));
    int rc = SYNC_EIO;
    if (sqlite3_prepare_v2(srv->db, "INSERT INTO devices (id, role, township_id, hall_id, kx_pk, "
                           "sign_pk, enrolled_at, app_version, schema_version) VALUES "
                           "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_blob(st, 1, dev, 16, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, role, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, twp, 16, SQLITE_STATIC);
        sqlite3_bind_blob(st, 4, hall, nhall, SQLITE_STATIC);
        sqlite3_bind_blob(st, 5, kx, 32, SQLITE_STATIC);
        sqlite3_bind_blob(st, 6, sig, 32, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, now);
        if (app && strlen(app) < 64)
            sqlite3_bind_text(st, 8, app, -1, SQLITE_STATIC);
        if (sv == sv && sv >= 0 && sv < 1e6)
            sqlite3_bind_int(st, 9, (int)sv);
        if (sqlite3_step(st) == SQLITE_DONE)
            rc = SYNC_OK;
    }
    sqlite3_finalize(st);
    if (rc == SYNC_OK && sqlite3_prepare_v2(srv->db, "UPDATE enroll_codes SET used_at = ?1, "
                         "device_id = ?2 WHERE code_hash = ?3", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, now);
        sqlite3_bind_blob(st, 2, dev, 16, SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, hash, 32, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SYNC_OK : SYNC_EIO;
        sqlite3_finalize(st);
    }
    if (rc != SYNC_OK)
        return outcome_set(o, rc, "storage", "cannot store the device");
    hex_encode(hex, dev, 16);
    cJSON_AddStringToObject(reply, "device_id", hex);
    cJSON_AddStringToObject(reply, "role", role);
    hex_encode(hex, twp, 16);
    cJSON_AddStringToObject(reply, "township_id", hex);
    if (nhall) {
        hex_encode(hex, hall, 16);
        cJSON_AddStringToObject(reply, "hall_id", hex);
    }
    hex_encode(hex, srv->keys.kx_pk, 32);
    cJSON_AddStringToObject(reply, "server_kx_pk", hex);
    hex_encode(hex, srv->keys.sign_pk, 32);
    cJSON_AddStringToObject(reply, "server_sign_pk", hex);
    cJSON_AddStringToObject(reply, "timezone", srv->cfg.timezone);
    cJSON_AddNumberToObject(reply, "utc_offset_minutes", srv->cfg.utc_offset_min);
    cJSON_AddNumberToObject(reply, "max_pin_failures", srv->cfg.max_pin_failures);
    char detail[160], twphex[33];
    hex_encode(twphex, twp, 16);
    snprintf(detail, sizeof detail, "{\"role\":\"%s\",\"township_id\":\"%s\"}", role, twphex);
    if (audit_append(srv, "enroll", dev, "device", detail) != SYNC_OK)
        return outcome_set(o, SYNC_EIO, "storage", "cannot record the enrollment");
    log_info("enrolled device %.8s... as %s", cJSON_GetStringValue(
             cJSON_GetObjectItemCaseSensitive(reply, "device_id")), role);
    return SYNC_OK;
}

int auth_enroll(struct server *srv, const char *body, size_t len, char **reply,
                struct outcome *o)
{
    uint8_t kx[32], sig[32], hash[32];
    char norm[17];
    *reply = NULL;
    cJSON *req = cJSON_ParseWithLength(body, len);
    if (!cJSON_IsObject(req)) {
        cJSON_Delete(req);
        return outcome_set(o, SYNC_EPROTO, "bad_json", "the request body is not a JSON object");
    }
    int rc;
    const char *code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "code"));
    if (json_key(req, "kx_pk", kx) || json_key(req, "sign_pk", sig))
        rc = outcome_set(o, SYNC_EPROTO, "bad_request",
                         "kx_pk and sign_pk must be 64 hex digits each");
    else if (normalise_code(code, norm) != 0)
        rc = outcome_set(o, SYNC_EAUTH, "bad_code", "the enrollment code is malformed");
    else {
        code_hash(norm, hash);
        cJSON *out = cJSON_CreateObject();
        pthread_mutex_lock(&srv->lock);
        rc = store_begin(srv);
        if (rc == SYNC_OK) {
            rc = enroll_tx(srv, hash, kx, sig, req, out, o);
            rc = store_end(srv, rc);
        } else
            outcome_set(o, rc, "storage", "database busy");
        pthread_mutex_unlock(&srv->lock);
        if (rc == SYNC_OK && (*reply = cJSON_PrintUnformatted(out)) == NULL)
            rc = outcome_set(o, SYNC_ENOMEM, "internal", "out of memory");
        cJSON_Delete(out);
    }
    cJSON_Delete(req);
    return rc;
}

int auth_device(struct server *srv, const uint8_t id[16], struct device *dev,
                struct outcome *o)
{
    memset(dev, 0, sizeof *dev);
    int rc = SYNC_EAUTH;
    /* On a read connection: every request looks its device up, and none
     * should wait for a commit in progress. */
    struct store_reader *r = store_reader_get(srv);
    if (r == NULL)
        return outcome_set(o, SYNC_EBUSY, "busy", "the database is busy; retry");
    sqlite3_stmt *st = store_reader_stmt(r, "SELECT role, township_id, hall_id, status, "
                                            "last_batch_seq, kx_pk, sign_pk FROM devices "
                                            "WHERE id = ?1");
    if (st) {
        sqlite3_bind_blob(st, 1, id, 16, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            memcpy(dev->id, id, 16);
            dev->role = role_bit((const char *)sqlite3_column_text(st, 0));
            memcpy(dev->township, sqlite3_column_blob(st, 1), 16);
            dev->has_hall = sqlite3_column_bytes(st, 2) == 16;
            if (dev->has_hall)
                memcpy(dev->hall, sqlite3_column_blob(st, 2), 16);
            dev->revoked = strcmp((const char *)sqlite3_column_text(st, 3), "active") != 0;
            dev->last_batch_seq = sqlite3_column_int64(st, 4);
            memcpy(dev->kx_pk, sqlite3_column_blob(st, 5), 32);
            memcpy(dev->sign_pk, sqlite3_column_blob(st, 6), 32);
            rc = SYNC_OK;
        }
        sqlite3_reset(st);
    }
    store_reader_put(srv, r);
    if (rc != SYNC_OK)
        return outcome_set(o, SYNC_EAUTH, "unknown_device", "this device is not enrolled");
    if (dev->revoked)
        return outcome_set(o, SYNC_EAUTH, "revoked", "this device has been revoked");
    return SYNC_OK;
}

int auth_session_keys(const struct server *srv, const struct device *dev,
                      uint8_t rx[32], uint8_t tx[32])
{
    return env_server_keys(rx, tx, srv->keys.kx_pk, srv->keys.kx_sk, dev->kx_pk);
}

int auth_revoke(struct server *srv, const char *device_hex, const char *actor,
                struct outcome *o)
{
    uint8_t id[16];
    if (hex_decode(id, 16, device_hex) != 0)
        return outcome_set(o, SYNC_EINVAL, "bad_device", "a device id is 32 hex digits");
    pthread_mutex_lock(&srv->lock);
    int rc = store_begin(srv), changed = 0;
    sqlite3_stmt *st = rc == SYNC_OK ? store_stmt(srv, "UPDATE devices SET status = 'revoked' "
                                                       "WHERE id = ?1 AND status = 'active'") : NULL;
    if (st) {
        sqlite3_bind_blob(st, 1, id, 16, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SYNC_OK : SYNC_EIO;
        changed = sqlite3_changes(srv->db);
        sqlite3_reset(st);
    } else if (rc == SYNC_OK) {
        rc = SYNC_EIO;
    }
    if (rc == SYNC_OK && changed)
        rc = audit_append(srv, "revoke", id, actor, "{}");
    rc = store_end(srv, rc);
    pthread_mutex_unlock(&srv->lock);
    if (rc != SYNC_OK)
        return outcome_set(o, rc, "storage", "cannot revoke the device");
    if (!changed)
        return outcome_set(o, SYNC_ENOTFOUND, "unknown_device",
                           "no active device %s (see: sync-server devices)", device_hex);
    log_info("revoked device %.8s...", device_hex);
    return SYNC_OK;
}
