/* dash_auth.c - dashboard accounts, logins, sessions and CSRF.
 *
 * A login sets an HttpOnly, SameSite=Strict cookie holding 32 random
 * bytes; the database keeps only their BLAKE2b-256 hash, so a copy of the
 * database opens no session.  Each session has its own random CSRF token,
 * which every POST must echo in X-CSRF-Token.  Logins are rate-limited per
 * account name and per client address, and an unknown name costs the same
 * password-hash work as a known one.
 */
#include "dash.h"
#include "dash_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <civetweb.h>
#include <cjson/cJSON.h>

#include "audit.h"
#include "eldersync.h"
#include "http.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define LOGIN_BODY_MAX 4096
#define TOKEN_BYTES    32
#define TOUCH_MS       60000     /* last_seen is written at most once a minute */

static const char *const ROLE_NAMES[] = {
    NULL, "county_admin", "county_supervisor", "township_supervisor"
};

const char *dash_role_name(enum dash_role r)
{
    return r >= DASH_COUNTY_ADMIN && r <= DASH_TOWNSHIP_SUPERVISOR ? ROLE_NAMES[r] : "?";
}

static enum dash_role role_from(const char *s)
{
    for (int r = DASH_COUNTY_ADMIN; s && r <= DASH_TOWNSHIP_SUPERVISOR; r++)
        if (strcmp(s, ROLE_NAMES[r]) == 0)
            return (enum dash_role)r;
    return 0;
}

/* Argon2id at interactive limits; ELDERSYNC_KDF=light (tests) at the minimum. */
static int hash_password(const char *pw, char out[crypto_pwhash_STRBYTES])
{
    const char *kdf = getenv("ELDERSYNC_KDF");
    int light = kdf && strcmp(kdf, "light") == 0;
    return crypto_pwhash_str(out, pw, strlen(pw),
                             light ? crypto_pwhash_OPSLIMIT_MIN : crypto_pwhash_OPSLIMIT_INTERACTIVE,
                             light ? crypto_pwhash_MEMLIMIT_MIN : crypto_pwhash_MEMLIMIT_INTERACTIVE);
}

/* A name: 1-64 bytes, no control characters or spaces at either end. */
static int name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 64 || s[0] == ' ' || s[n - 1] == ' ')
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

int dash_add_user(struct server *srv, const char *name, const char *role, const char *scope_hex,
                  const char *password, char *err, size_t errlen)
{
    char hash[crypto_pwhash_STRBYTES];
    uint8_t twp[16];
    enum dash_role r = role_from(role);
    if (!name_ok(name)) {
        snprintf(err, errlen, "a user name is 1-64 characters, without control characters");
        return SYNC_EINVAL;
    }
    if (r == 0) {
        snprintf(err, errlen, "unknown role '%s' (use county_admin, county_supervisor or "
                 "township_supervisor)", role ? role : "");
        return SYNC_EINVAL;
    }
    if ((r == DASH_TOWNSHIP_SUPERVISOR) != (scope_hex != NULL)) {
        snprintf(err, errlen, r == DASH_TOWNSHIP_SUPERVISOR
                 ? "a township_supervisor needs --scope TOWNSHIP_ID"
                 : "only a township_supervisor has a --scope");
        return SYNC_EINVAL;
    }
    if (scope_hex && hex_decode(twp, 16, scope_hex) != 0) {
        snprintf(err, errlen, "--scope must be a 32-hex-digit township id");
        return SYNC_EINVAL;
    }
    size_t pwlen = password ? strlen(password) : 0;
    if (pwlen < 8 || pwlen > 256) {
        snprintf(err, errlen, "a password is 8-256 characters");
        return SYNC_EINVAL;
    }
    if (hash_password(password, hash) != 0) {
        snprintf(err, errlen, "out of memory while hashing the password");
        return SYNC_ENOMEM;
    }
    pthread_mutex_lock(&srv->lock);
    int rc = store_begin(srv), found = 0;
    sqlite3_stmt *st;
    if (rc == SYNC_OK && scope_hex) {
        st = store_stmt(srv, "SELECT 1 FROM townships WHERE id = ?1 AND deleted = 0");
        if (st == NULL)
            rc = SYNC_EIO;
        else {
            sqlite3_bind_blob(st, 1, twp, 16, SQLITE_STATIC);
            found = sqlite3_step(st) == SQLITE_ROW;
            sqlite3_reset(st);
            if (!found) {
                snprintf(err, errlen, "no township %s (see: sync-server scopes)", scope_hex);
                rc = SYNC_ENOTFOUND;
            }
        }
    }
    if (rc == SYNC_OK) {
        st = store_stmt(srv, "INSERT INTO dash_users (name, role, township_id, pw_hash, "
                             "created_at) VALUES (?1, ?2, ?3, ?4, ?5)");
        if (st == NULL)
            rc = SYNC_EIO;
        else {
            sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, ROLE_NAMES[r], -1, SQLITE_STATIC);
            if (scope_hex)
                sqlite3_bind_blob(st, 3, twp, 16, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, hash, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 5, now_ms());
            int s = sqlite3_step(st);
            sqlite3_reset(st);
            if (s == SQLITE_CONSTRAINT) {
                snprintf(err, errlen, "a user named '%s' exists already", name);
                rc = SYNC_ECONFLICT;
            } else if (s != SQLITE_DONE) {
                snprintf(err, errlen, "cannot store the user: %s", sqlite3_errmsg(srv->db));
                rc = SYNC_EIO;
            }
        }
    }
    if (rc == SYNC_OK) {
        char detail[160];
        snprintf(detail, sizeof detail, "{\"role\":\"%s\"}", ROLE_NAMES[r]);
        rc = audit_append(srv, "dash_user_added", NULL, "admin", detail);
    }
    rc = store_end(srv, rc);
    pthread_mutex_unlock(&srv->lock);
    sodium_memzero(hash, sizeof hash);
    return rc;
}

/* ---- sessions ------------------------------------------------------------ */

static void token_hash(const char *token, uint8_t out[32])
{
    crypto_generichash(out, 32, (const uint8_t *)token, strlen(token), NULL, 0);
}

static void random_token(char *out, size_t n)
{
    uint8_t raw[TOKEN_BYTES];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(out, n, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
}

static void actor_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "dash:%s", name);
}

/* Fills u from a row of (id, name, role, township_id). */
static void user_from_row(struct dash_user *u, sqlite3_stmt *st, int col)
{
    memset(u, 0, sizeof *u);
    u->id = sqlite3_column_int64(st, col);
    snprintf(u->name, sizeof u->name, "%s", (const char *)sqlite3_column_text(st, col + 1));
    u->role = role_from((const char *)sqlite3_column_text(st, col + 2));
    u->scoped = sqlite3_column_bytes(st, col + 3) == 16;
    if (u->scoped)
        memcpy(u->township, sqlite3_column_blob(st, col + 3), 16);
}

int dash_session(struct dash *d, struct mg_connection *conn, struct dash_user *u)
{
    struct server *srv = d->srv;
    const char *cookies = mg_get_header(conn, "Cookie");
    char token[128];
    uint8_t h[32];
    if (cookies == NULL || mg_get_cookie(cookies, "es_session", token, sizeof token) <= 0)
        return http_error(conn, 401, "no_session", "log in first", NULL), -1;
    token_hash(token, h);
    sodium_memzero(token, sizeof token);
    int64_t now = now_ms(), last = 0;
    int found = 0;
    pthread_mutex_lock(&srv->lock);
    sqlite3_stmt *st = store_stmt(srv,
        "SELECT u.id, u.name, u.role, u.township_id, s.csrf, s.last_seen FROM dash_sessions s"
        " JOIN dash_users u ON u.id = s.user_id"
        " WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND s.last_seen > ?3");
    if (st) {
        sqlite3_bind_blob(st, 1, h, 32, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        sqlite3_bind_int64(st, 3, now - (int64_t)srv->cfg.session_idle_s * 1000);
        if (sqlite3_step(st) == SQLITE_ROW) {
            user_from_row(u, st, 0);
            snprintf(u->csrf, sizeof u->csrf, "%s", (const char *)sqlite3_column_text(st, 4));
            last = sqlite3_column_int64(st, 5);
            found = 1;
        }
        sqlite3_reset(st);
    }
    if (found && now - last > TOUCH_MS &&
        (st = store_stmt(srv, "UPDATE dash_sessions SET last_seen = ?2 WHERE token_hash = ?1"))) {
        sqlite3_bind_blob(st, 1, h, 32, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        sqlite3_step(st);
        sqlite3_reset(st);
    }
    pthread_mutex_unlock(&srv->lock);
    if (!found)
        return http_error(conn, 401, "no_session", "the session is unknown or has expired; "
                          "log in again", NULL), -1;
    if (strcmp(mg_get_request_info(conn)->request_method, "GET") != 0) {
        const char *t = mg_get_header(conn, "X-CSRF-Token");
        size_t n = strlen(u->csrf);
        if (t == NULL || strlen(t) != n || sodium_memcmp(t, u->csrf, n) != 0)
            return http_error(conn, 403, "csrf", "this request needs the session's "
                              "X-CSRF-Token header", NULL), -1;
    }
    return 0;
}

void dash_user_json(struct dash *d, cJSON *parent, const struct dash_user *u)
{
    cJSON *o = cJSON_AddObjectToObject(parent, "user");
    cJSON_AddStringToObject(o, "name", u->name);
    cJSON_AddStringToObject(o, "role", dash_role_name(u->role));
    if (!u->scoped) {
        cJSON_AddNullToObject(o, "township_id");
        cJSON_AddNullToObject(o, "township");
        return;
    }
    char hex[33];
    hex_encode(hex, u->township, 16);
    cJSON_AddStringToObject(o, "township_id", hex);
    struct server *srv = d->srv;
    pthread_mutex_lock(&srv->lock);
    sqlite3_stmt *st = store_stmt(srv, "SELECT name FROM townships WHERE id = ?1");
    if (st) {
        sqlite3_bind_blob(st, 1, u->township, 16, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            cJSON_AddStringToObject(o, "township", (const char *)sqlite3_column_text(st, 0));
        sqlite3_reset(st);
    }
    pthread_mutex_unlock(&srv->lock);
    if (!cJSON_GetObjectItemCaseSensitive(o, "township"))
        cJSON_AddNullToObject(o, "township");
}

int dash_json(struct mg_connection *conn, cJSON *j)
{
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (s == NULL)
        return http_error(conn, 500, "internal", "out of memory", NULL);
    http_reply(conn, 200, "application/json; charset=utf-8", s, strlen(s), NULL);
    cJSON_free(s);
    return 200;
}

static int reply_user(struct dash *d, struct mg_connection *conn, const struct dash_user *u,
                      const char *cookie)
{
    cJSON *j = cJSON_CreateObject();
    dash_user_json(d, j, u);
    cJSON_AddStringToObject(j, "csrf", u->csrf);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (s == NULL)
        return http_error(conn, 500, "internal", "out of memory", NULL);
    http_reply(conn, 200, "application/json; charset=utf-8", s, strlen(s), cookie);
    cJSON_free(s);
    return 200;
}

static void client_key(struct mg_connection *conn, char *out, size_t n)
{
    snprintf(out, n, "%s", mg_get_request_info(conn)->remote_addr);
}

static int refuse_login(struct mg_connection *conn, const char *whose, double retry)
{
    char extra[48], detail[96];
    snprintf(extra, sizeof extra, "Retry-After: %ld\r\n", (long)retry + 1);
    snprintf(detail, sizeof detail, "too many login attempts %s; wait and try again", whose);
    return http_error(conn, 429, "rate_limited", detail, extra);
}

static int login(struct dash *d, struct mg_connection *conn)
{
    struct server *srv = d->srv;
    size_t len;
    char ip[64], actor[80];
    double retry = 0;
    client_key(conn, ip, sizeof ip);
    if (!ratelimit_take(&d->by_ip, ip, strlen(ip), &retry))
        return refuse_login(conn, "from this address", retry);
    uint8_t *body = http_body(conn, LOGIN_BODY_MAX, &len);
    if (body == NULL)
        return 400;
    cJSON *req = cJSON_ParseWithLength((const char *)body, len);
    sodium_memzero(body, len);
    es_free(body);
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "name"));
    char *pw = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "password"));
    if (!cJSON_IsObject(req) || name == NULL || pw == NULL || !name_ok(name) ||
        strlen(pw) > 256) {
        if (pw)
            sodium_memzero(pw, strlen(pw));
        cJSON_Delete(req);
        return http_error(conn, 400, "bad_request", "send {\"name\": ..., \"password\": ...}",
                          NULL);
    }
    if (!ratelimit_take(&d->by_name, name, strlen(name), &retry)) {
        sodium_memzero(pw, strlen(pw));
        cJSON_Delete(req);
        return refuse_login(conn, "for this account", retry);
    }
    struct dash_user u;
    char hash[crypto_pwhash_STRBYTES] = "";
    int known = 0;
    pthread_mutex_lock(&srv->lock);
    sqlite3_stmt *st = store_stmt(srv, "SELECT id, name, role, township_id, pw_hash "
                                       "FROM dash_users WHERE name = ?1");
    if (st) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) {
            user_from_row(&u, st, 0);
            snprintf(hash, sizeof hash, "%s", (const char *)sqlite3_column_text(st, 4));
            known = 1;
        }
        sqlite3_reset(st);
    }
    pthread_mutex_unlock(&srv->lock);
    /* Unknown names verify against a dummy hash: the same work, the same answer. */
    pthread_mutex_lock(&d->dummy_lock);
    if (d->dummy_hash[0] == '\0') {
        char rnd[64];
        random_token(rnd, sizeof rnd);
        hash_password(rnd, d->dummy_hash);
    }
    if (!known)
        snprintf(hash, sizeof hash, "%s", d->dummy_hash);
    pthread_mutex_unlock(&d->dummy_lock);
    int ok = crypto_pwhash_str_verify(hash, pw, strlen(pw)) == 0 && known;
    sodium_memzero(pw, strlen(pw));
    actor_of(actor, sizeof actor, name);
    cJSON_Delete(req);
    if (!ok) {
        pthread_mutex_lock(&srv->lock);
        audit_record(srv, "dash_login_failed", NULL, actor, "{}");
        pthread_mutex_unlock(&srv->lock);
        return http_error(conn, 401, "bad_credentials", "wrong user name or password", NULL);
    }
    char token[64], cookie[256];
    uint8_t h[32];
    random_token(token, sizeof token);
    random_token(u.csrf, sizeof u.csrf);
    token_hash(token, h);
    int64_t now = now_ms();
    pthread_mutex_lock(&srv->lock);
    int rc = store_begin(srv);
    st = rc == SYNC_OK ? store_stmt(srv, "INSERT INTO dash_sessions (token_hash, user_id, csrf, "
                                         "created_at, expires_at, last_seen) VALUES "
                                         "(?1, ?2, ?3, ?4, ?5, ?4)") : NULL;
    if (st) {
        sqlite3_bind_blob(st, 1, h, 32, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, u.id);
        sqlite3_bind_text(st, 3, u.csrf, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, now);
        sqlite3_bind_int64(st, 5, now + (int64_t)srv->cfg.session_ttl_s * 1000);
        rc = sqlite3_step(st) == SQLITE_DONE ? SYNC_OK : SYNC_EIO;
        sqlite3_reset(st);
    } else if (rc == SYNC_OK) {
        rc = SYNC_EIO;
    }
    /* Old sessions go as new ones come: the table holds only live ones. */
    if (rc == SYNC_OK && (st = store_stmt(srv, "DELETE FROM dash_sessions WHERE expires_at <= ?1 "
                                               "OR last_seen <= ?2"))) {
        sqlite3_bind_int64(st, 1, now);
        sqlite3_bind_int64(st, 2, now - (int64_t)srv->cfg.session_idle_s * 1000);
        rc = sqlite3_step(st) == SQLITE_DONE ? SYNC_OK : SYNC_EIO;
        sqlite3_reset(st);
    }
    if (rc == SYNC_OK)
        rc = audit_append(srv, "dash_login", NULL, actor, "{}");
    rc = store_end(srv, rc);
    pthread_mutex_unlock(&srv->lock);
    if (rc != SYNC_OK) {
        sodium_memzero(token, sizeof token);
        return http_error(conn, 503, "storage", "cannot record the session; try again", NULL);
    }
    snprintf(cookie, sizeof cookie, "Set-Cookie: es_session=%s; Path=/; HttpOnly; "
             "SameSite=Strict; Max-Age=%d\r\n", token, srv->cfg.session_ttl_s);
    sodium_memzero(token, sizeof token);
    int status = reply_user(d, conn, &u, cookie);
    sodium_memzero(cookie, sizeof cookie);
    return status;
}

static int logout(struct dash *d, struct mg_connection *conn)
{
    struct server *srv = d->srv;
    struct dash_user u;
    char actor[80];
    if (dash_session(d, conn, &u) != 0)
        return 401;
    pthread_mutex_lock(&srv->lock);
    int rc = store_begin(srv);
    sqlite3_stmt *st = rc == SYNC_OK ? store_stmt(srv, "DELETE FROM dash_sessions WHERE "
                                                       "user_id = ?1 AND csrf = ?2") : NULL;
    if (st) {
        sqlite3_bind_int64(st, 1, u.id);
        sqlite3_bind_text(st, 2, u.csrf, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SYNC_OK : SYNC_EIO;
        sqlite3_reset(st);
    } else if (rc == SYNC_OK) {
        rc = SYNC_EIO;
    }
    actor_of(actor, sizeof actor, u.name);
    if (rc == SYNC_OK)
        rc = audit_append(srv, "dash_logout", NULL, actor, "{}");
    rc = store_end(srv, rc);
    pthread_mutex_unlock(&srv->lock);
    if (rc != SYNC_OK)
        return http_error(conn, 503, "storage", "cannot end the session; try again", NULL);
    static const char body[] = "{\"status\":\"logged_out\"}";
    http_reply(conn, 200, "application/json", body, sizeof body - 1,
               "Set-Cookie: es_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0\r\n");
    return 200;
}

int dash_auth_route(struct dash *d, struct mg_connection *conn, const char *path)
{
    const char *m = mg_get_request_info(conn)->request_method;
    int post = strcmp(m, "POST") == 0, get = strcmp(m, "GET") == 0;
    if (strcmp(path, "login") == 0)
        return post ? login(d, conn)
                    : http_error(conn, 405, "method", "use POST", "Allow: POST\r\n");
    if (strcmp(path, "logout") == 0)
        return post ? logout(d, conn)
                    : http_error(conn, 405, "method", "use POST", "Allow: POST\r\n");
    if (strcmp(path, "me") == 0) {
        struct dash_user u;
        if (!get)
            return http_error(conn, 405, "method", "use GET", "Allow: GET\r\n");
        if (dash_session(d, conn, &u) != 0)
            return 401;
        return reply_user(d, conn, &u, NULL);
    }
    return 0;
}

/* ---- routes and state ---------------------------------------------------- */

static int handle(struct mg_connection *conn, void *cb)
{
    struct dash *d = cb;
    const char *uri = mg_get_request_info(conn)->local_uri;
    if (strncmp(uri, "/api/", 5) != 0)
        return dash_asset(conn, uri) ? 200
             : http_error(conn, 404, "not_found", "no such endpoint", NULL);
    const char *path = uri + 5;
    int status = dash_auth_route(d, conn, path);
    if (status)
        return status;
    struct dash_user u;
    if (dash_session(d, conn, &u) != 0)
        return 401;
    return dash_api_route(d, conn, path, &u);
}

struct dash *dash_new(struct server *srv)
{
    struct dash *d = es_calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->srv = srv;
    const struct config *c = &srv->cfg;
    pthread_mutex_init(&d->dummy_lock, NULL);
    if (ratelimit_init(&d->by_name, c->login_rate_per_min / 60.0, c->login_burst) != 0 ||
        ratelimit_init(&d->by_ip, c->login_rate_per_min / 60.0, c->login_burst) != 0) {
        dash_free(d);
        return NULL;
    }
    return d;
}

void dash_free(struct dash *d)
{
    if (d == NULL)
        return;
    ratelimit_free(&d->by_name);
    ratelimit_free(&d->by_ip);
    pthread_mutex_destroy(&d->dummy_lock);
    sodium_memzero(d->dummy_hash, sizeof d->dummy_hash);
    es_free(d);
}

void dash_routes(struct dash *d, struct mg_context *mg)
{
    /* CivetWeb tries exact URIs, then "uri/..." prefixes, then patterns:
     * "/" is the page and also the catch-all (404) for every other path. */
    mg_set_request_handler(mg, "/", handle, d);
}
