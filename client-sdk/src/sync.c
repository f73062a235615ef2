/* sync.c - push the outbox and pull the server's rows by undo/replay.
 *
 * Push: outbox entries are packed into a batch with the next batch_seq; the
 * batch's exact bytes are kept in pending_batch and resent until the server
 * acknowledges them, so a batch_seq always names one content.
 *
 * Pull: each page is applied in one transaction: undo every outbox entry
 * (newest first), apply the server's rows (server wins), drop the entries
 * the server has confirmed, replay the rest under a fresh session.  A
 * replayed change that no longer applies cleanly (its row left our scope,
 * or it conflicts) moves to the entry's forward part: pushed as it is, so
 * the server decides and records the conflict, but never applied here.
 * Payload formats: docs/PROTOCOL.md.
 */
#include "client.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <cjson/cJSON.h>

#include "changeset.h"
#include "envelope.h"
#include "pcrypt.h"
#include "rowval.h"
#include "schema.h"
#include "transport.h"
#include "util.h"

#define BATCH_MAX_ENTRIES 500
#define BATCH_MAX_BYTES   (1u << 20)
#define PULL_MAX_BYTES    (256u << 10)
#define REPLY_MAX_BYTES   (64u << 20)
#define SEALED_KEYBYTES   (crypto_box_SEALBYTES + 32)

int client_http_error(struct sync_client *c, int http, const uint8_t *body, size_t len);

/* The county revoked this tablet (lost or stolen): destroy its keys, so it
 * can neither sync nor, once data keys exist, read what it holds. */
static void shred_keys(struct sync_client *c)
{
    vault_destroy(c);
    meta_set_int(c, "revoked", 1);
    c->enrolled = 0;
}

int client_http_error(struct sync_client *c, int http, const uint8_t *body, size_t len)
{
    cJSON *j = body ? cJSON_ParseWithLength((const char *)body, len) : NULL;
    const char *e = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "error"));
    const char *d = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "detail"));
    if (http == 401 && e && strcmp(e, "revoked") == 0) {
        shred_keys(c);
        c->revoked = 1;
        cJSON_Delete(j);
        return client_fail(c, SYNC_EAUTH, "this tablet was revoked by the county; its keys "
                           "have been destroyed and it can no longer sync");
    }
    int status = http == 401 ? SYNC_EAUTH
               : http == 403 ? SYNC_EFORBIDDEN
               : http == 409 ? SYNC_ECONFLICT
               : http == 413 ? SYNC_ETOOBIG
               : http == 422 ? SYNC_ESCHEMA
               : http == 429 || http == 503 ? SYNC_EBUSY
               : http >= 500 ? SYNC_ESERVER : SYNC_EPROTO;
    client_fail(c, status, "server refused the request (HTTP %d %s)%s%s", http,
                e ? e : "error", d ? ": " : "", d ? d : "");
    cJSON_Delete(j);
    return status;
}

/* One enveloped request, on one of the client's kept connections: the
 * transport may send it twice if that connection turned out closed before
 * any byte of the reply (transport.h), which is safe for both kinds: a
 * push is idempotent by batch_seq (the server answers a replayed batch
 * with the ack it stored), a pull only reads.
 *
 * req_start() seals and sends it, on this thread or (async) on a thread of
 * its own, which touches nothing of the client but the connection it is
 * given; req_finish() waits for the reply and opens it.  Every request
 * passes the test hooks once each, on the caller's thread.  On HTTP 200
 * *pt holds the opened reply (es_free()).  Otherwise *http and *err_body
 * (es_free()) describe the refusal. */
struct req {
    const char       *path;
    int               kind;
    uint64_t          seq;
    uint8_t          *env;
    size_t            envlen;
    struct http_conn *conn;
    const char       *url;
    int               timeout_ms;
    int               down;          /* the before_send hook said "network down" */
    int               async;         /* a thread is sending it */
    pthread_t         thread;
    int               rc;
    struct http_response r;
    char              errbuf[256];
};

static void req_send(struct req *q)
{
    q->rc = http_post_on(q->conn, q->url, q->path, NULL, q->env, q->envlen, q->timeout_ms,
                         REPLY_MAX_BYTES, &q->r, q->errbuf, sizeof q->errbuf);
}

static void *req_thread(void *arg)
{
    req_send(arg);
    return NULL;
}

static int req_start(struct sync_client *c, const char *path, int kind, uint64_t seq,
                     const uint8_t *body, size_t len, struct http_conn *conn, int async,
                     struct req *q)
{
    struct env_header h = { ENV_VERSION, kind, {0}, seq };
    memset(q, 0, sizeof *q);
    q->path = path;
    q->kind = kind;
    q->seq = seq;
    q->conn = conn;
    q->url = c->server_url;
    q->timeout_ms = c->timeout_ms;
    memcpy(h.device_id, c->device_id, 16);
    int rc = env_seal(&h, c->tx, body, len, &q->env, &q->envlen);
    if (rc != SYNC_OK)
        return client_fail(c, rc, "cannot seal the request");
    if (c->hooks.before_send && c->hooks.before_send(c->hooks.ctx, path) == 1)
        q->down = 1;
    else if (async && pthread_create(&q->thread, NULL, req_thread, q) == 0)
        q->async = 1;
    else
        req_send(q);                  /* also when no thread could be started */
    return SYNC_OK;
}

/* Waits for a request's reply and throws it away (the caller failed). */
static void req_abandon(struct req *q)
{
    if (q->async)
        pthread_join(q->thread, NULL);
    q->async = 0;
    http_response_free(&q->r);
    es_free(q->env);
    q->env = NULL;
}

static int req_finish(struct sync_client *c, struct req *q, uint8_t **pt, size_t *ptlen,
                      int *http, uint8_t **err_body, size_t *err_len)
{
    *pt = NULL;
    *ptlen = 0;
    *http = 0;
    *err_body = NULL;
    *err_len = 0;
    if (q->async)
        pthread_join(q->thread, NULL);
    q->async = 0;
    if (q->down) {
        es_free(q->env);
        return client_fail(c, SYNC_ENET, "network down (simulated)");
    }
    int rc = q->rc;
    if (rc == SYNC_OK) {
        c->bytes_up += (int64_t)q->r.sent;
        c->bytes_down += (int64_t)q->r.len;
    }
    int fault = rc == SYNC_OK && c->hooks.after_reply ? c->hooks.after_reply(c->hooks.ctx, q->path)
                                                      : 0;
    if (fault == 2) {                         /* duplicate the request */
        http_response_free(&q->r);
        req_send(q);
        rc = q->rc;
    }
    es_free(q->env);
    q->env = NULL;
    if (rc != SYNC_OK)
        return client_fail(c, rc, "%s", q->errbuf);
    if (fault == 1) {
        http_response_free(&q->r);
        return client_fail(c, SYNC_ENET, "reply lost (simulated)");
    }
    *http = q->r.status;
    if (q->r.status != 200) {
        *err_body = q->r.body;
        *err_len = q->r.len;
        return SYNC_OK;
    }
    struct env_header rh;
    rc = env_open(q->r.body, q->r.len, q->kind + 2, c->rx, &rh, pt, ptlen);
    http_response_free(&q->r);
    if (rc != SYNC_OK || rh.batch_seq != q->seq || memcmp(rh.device_id, c->device_id, 16) != 0) {
        es_free(*pt);
        *pt = NULL;
        return client_fail(c, SYNC_ECRYPTO, "the server's reply failed authentication");
    }
    return SYNC_OK;
}

/* One request on c->conn, on this thread. */
static int request(struct sync_client *c, const char *path, int kind, uint64_t seq,
                   const uint8_t *body, size_t len, uint8_t **pt, size_t *ptlen,
                   int *http, uint8_t **err_body, size_t *err_len)
{
    struct req q;
    int rc = req_start(c, path, kind, seq, body, len, &c->conn, 0, &q);
    if (rc != SYNC_OK) {
        *pt = NULL;
        *err_body = NULL;
        return rc;
    }
    return req_finish(c, &q, pt, ptlen, http, err_body, err_len);
}

/* ---- push --------------------------------------------------------------- */

static int step_done(struct sync_client *c, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st) == SQLITE_DONE ? SYNC_OK
           : client_fail(c, SYNC_EIO, "local database: %s", sqlite3_errmsg(c->db));
    sqlite3_finalize(st);
    return rc;
}

static void put_blob(struct buf *b, const void *p, size_t n)
{
    buf_be32(b, (uint32_t)n);
    buf_append(b, p, n);
}

/* Packs unsent entries into a new pending batch.  Returns 1 if one was
 * made, 0 if there was nothing to send. */
static int make_batch(struct sync_client *c)
{
    int64_t seq = 1;
    long n = 0;
    struct buf b = {0};
    sqlite3_stmt *sel = NULL, *upd = NULL, *ins = NULL;
    int rc = client_tx_begin(c);
    if (rc != SYNC_OK)
        return rc;
    meta_get_int(c, "next_batch_seq", &seq);
    buf_be32(&b, (uint32_t)schema_version());
    buf_be64(&b, (uint64_t)(c->hooks.clock_ms ? c->hooks.clock_ms(c->hooks.ctx) : now_ms()));
    buf_be32(&b, 0);                              /* entry count, set below */
    if (sqlite3_prepare_v2(c->db, "SELECT id, changeset, forward FROM outbox WHERE "
                           "state = 'pending' AND batch_seq IS NULL ORDER BY id", -1,
                           &sel, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db, "UPDATE outbox SET batch_seq = ?1 WHERE id = ?2", -1,
                           &upd, NULL) != SQLITE_OK) {
        rc = client_fail(c, SYNC_EIO, "outbox: %s", sqlite3_errmsg(c->db));
        goto out;
    }
    while (n < BATCH_MAX_ENTRIES && b.len < BATCH_MAX_BYTES && sqlite3_step(sel) == SQLITE_ROW) {
        buf_be64(&b, (uint64_t)sqlite3_column_int64(sel, 0));
        put_blob(&b, sqlite3_column_blob(sel, 1), (size_t)sqlite3_column_bytes(sel, 1));
        put_blob(&b, sqlite3_column_blob(sel, 2), (size_t)sqlite3_column_bytes(sel, 2));
        sqlite3_bind_int64(upd, 1, seq);
        sqlite3_bind_int64(upd, 2, sqlite3_column_int64(sel, 0));
        if (sqlite3_step(upd) != SQLITE_DONE) {
            rc = client_fail(c, SYNC_EIO, "outbox: %s", sqlite3_errmsg(c->db));
            goto out;
        }
        sqlite3_reset(upd);
        n++;
    }
    if (n == 0 || b.oom) {
        rc = b.oom ? client_fail(c, SYNC_ENOMEM, "out of memory") : SYNC_OK;
        goto out;
    }
    be32_put(b.p + 12, (uint32_t)n);
    /* Sign the batch so the server, and any later audit, can prove this
     * device recorded it. */
    uint8_t sig[ENV_SIGBYTES];
    env_batch_sign(sig, c->sign_sk, c->device_id, (uint64_t)seq, b.p, b.len, NULL);
    buf_append(&b, sig, sizeof sig);
    if (b.oom) {
        rc = client_fail(c, SYNC_ENOMEM, "out of memory");
        goto out;
    }
    if (sqlite3_prepare_v2(c->db, "INSERT INTO pending_batch (batch_seq, payload, created_at) "
                           "VALUES (?1, ?2, ?3)", -1, &ins, NULL) != SQLITE_OK) {
        rc = client_fail(c, SYNC_EIO, "outbox: %s", sqlite3_errmsg(c->db));
        goto out;
    }
    sqlite3_bind_int64(ins, 1, seq);
    sqlite3_bind_blob(ins, 2, b.p, (int)b.len, SQLITE_STATIC);
    sqlite3_bind_int64(ins, 3, now_ms());
    rc = step_done(c, ins);
    ins = NULL;
    if (rc == SYNC_OK)
        rc = meta_set_int(c, "next_batch_seq", seq + 1);
out:
    sqlite3_finalize(sel);
    sqlite3_finalize(upd);
    sqlite3_finalize(ins);
    buf_free(&b);
    rc = client_tx_end(c, rc);
    return rc == SYNC_OK ? n > 0 : rc;
}

static int exec_int(struct sync_client *c, const char *sql, int64_t a, int64_t b)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
        return client_fail(c, SYNC_EIO, "local database: %s", sqlite3_errmsg(c->db));
    sqlite3_bind_int64(st, 1, a);
    if (sqlite3_bind_parameter_count(st) >= 2)
        sqlite3_bind_int64(st, 2, b);
    return step_done(c, st);
}

/* The server refused one entry of batch seq: keep it aside for review and
 * put the rest back for the next batch, which reuses seq (the server
 * recorded nothing under it). */
static int quarantine(struct sync_client *c, int64_t seq, int64_t entry, const char *error,
                      const char *detail)
{
    sqlite3_stmt *st = NULL;
    int rc = client_tx_begin(c);
    if (rc != SYNC_OK)
        return rc;
    if (sqlite3_prepare_v2(c->db, "UPDATE outbox SET state = 'quarantined', error = ?1, "
                           "detail = ?2, batch_seq = NULL WHERE id = ?3 AND batch_seq = ?4 "
                           "AND state = 'pending'", -1, &st, NULL) != SQLITE_OK) {
        rc = client_fail(c, SYNC_EIO, "outbox: %s", sqlite3_errmsg(c->db));
    } else {
        sqlite3_bind_text(st, 1, error, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, detail, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 3, entry);
        sqlite3_bind_int64(st, 4, seq);
        rc = step_done(c, st);
    }
    if (rc == SYNC_OK && sqlite3_changes(c->db) != 1)
        rc = client_fail(c, SYNC_EPROTO, "server refused entry %lld, which is not in batch %lld",
                         (long long)entry, (long long)seq);
    if (rc == SYNC_OK)
        rc = exec_int(c, "UPDATE outbox SET batch_seq = NULL WHERE batch_seq = ?1",
                      seq, 0);
    if (rc == SYNC_OK)
        rc = exec_int(c, "DELETE FROM pending_batch WHERE batch_seq = ?1", seq, 0);
    if (rc == SYNC_OK)
        rc = meta_set_int(c, "next_batch_seq", seq);
    return client_tx_end(c, rc);
}

/* Member `name` of a server reply as a whole number in [0, hi]; 1 and
 * *out set, or 0 (absent, not a number, a fraction, out of range). */
static int reply_int(const cJSON *j, const char *name, int64_t hi, int64_t *out)
{
    return num_to_i64(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, name)), 0, hi,
                      out);
}

static int acked(struct sync_client *c, int64_t seq, const uint8_t *pt, size_t len,
                 struct sync_stats *stats)
{
    cJSON *j = cJSON_ParseWithLength((const char *)pt, len);
    int64_t ack;
    if (!reply_int(j, "batch_seq", (int64_t)9e15, &ack) || ack != seq) {
        cJSON_Delete(j);
        return client_fail(c, SYNC_EPROTO, "malformed push acknowledgement");
    }
    if (stats) {
        stats->batches++;
        int64_t n;
        if (reply_int(j, "entries", INT32_MAX, &n))
            stats->pushed += (long)n;
        if (reply_int(j, "conflicts", INT32_MAX, &n))
            stats->conflicts += (long)n;
    }
    cJSON_Delete(j);
    int rc = client_tx_begin(c);
    if (rc == SYNC_OK)
        rc = exec_int(c, "DELETE FROM pending_batch WHERE batch_seq = ?1", seq, 0);
    if (rc == SYNC_OK)
        rc = meta_set_int(c, "acked_seq", seq);
    return client_tx_end(c, rc);
}

/* Sends the pending batch (making one if needed).  1: a batch was settled
 * (acknowledged or an entry quarantined), 0: nothing to send. */
static int push_once(struct sync_client *c, struct sync_stats *stats)
{
    sqlite3_stmt *st = NULL;
    int rc = SYNC_OK;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (sqlite3_prepare_v2(c->db, "SELECT batch_seq, payload FROM pending_batch "
                               "ORDER BY batch_seq LIMIT 1", -1, &st, NULL) != SQLITE_OK)
            return client_fail(c, SYNC_EIO, "outbox: %s", sqlite3_errmsg(c->db));
        if (sqlite3_step(st) == SQLITE_ROW)
            break;
        sqlite3_finalize(st);
        st = NULL;
        if (attempt == 1 || (rc = make_batch(c)) <= 0)
            return rc;
    }
    int64_t seq = sqlite3_column_int64(st, 0);
    uint8_t *pt = NULL, *eb = NULL;
    size_t ptlen = 0, eblen = 0;
    int http = 0;
    rc = request(c, "/v1/push", ENV_PUSH, (uint64_t)seq, sqlite3_column_blob(st, 1),
                 (size_t)sqlite3_column_bytes(st, 1), &pt, &ptlen, &http, &eb, &eblen);
    sqlite3_finalize(st);
    if (rc != SYNC_OK)
        return rc;
    if (http == 200) {
        rc = acked(c, seq, pt, ptlen, stats);
        es_free(pt);
        return rc == SYNC_OK ? 1 : rc;
    }
    cJSON *j = cJSON_ParseWithLength((const char *)eb, eblen);
    int64_t entry;
    if (reply_int(j, "entry", INT32_MAX, &entry) && (http == 400 || http == 403 || http == 422)) {
        const char *e = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "error"));
        const char *d = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "detail"));
        rc = quarantine(c, seq, entry, e ? e : "refused", d ? d : "");
        if (rc == SYNC_OK && stats)
            stats->quarantined++;
        rc = rc == SYNC_OK ? 1 : rc;
    } else {
        rc = client_http_error(c, http, eb, eblen);
    }
    cJSON_Delete(j);
    es_free(eb);
    return rc;
}

static int check_enrolled(struct sync_client *c)
{
    return client_require_keys(c);
}

static void count_bytes(struct sync_client *c, struct sync_stats *stats, int64_t up,
                        int64_t down)
{
    if (stats) {
        stats->bytes_up += c->bytes_up - up;
        stats->bytes_down += c->bytes_down - down;
    }
}

/* The end of a public sync call: the connection stays open for the next
 * call only if the app asked for that (sync_client_set_keepalive). */
static int end_call(struct sync_client *c, int rc)
{
    if (c->keepalive_ms <= 0)
        http_conn_reset(&c->conn);
    return rc;
}

static int push_all(struct sync_client *c, struct sync_stats *stats)
{
    int rc;
    int64_t up = c->bytes_up, down = c->bytes_down;
    if ((rc = check_enrolled(c)) != SYNC_OK)
        return rc;
    while ((rc = push_once(c, stats)) == 1)
        ;
    count_bytes(c, stats, up, down);
    return rc;
}

/* ---- pull: undo / apply / replay --------------------------------------- */

static int undo_conflict(void *ctx, int type, sqlite3_changeset_iter *it)
{
    (void)ctx;
    (void)it;
    /* The inverse of our own change: make the row what it was before. */
    return type == SQLITE_CHANGESET_DATA || type == SQLITE_CHANGESET_CONFLICT
         ? SQLITE_CHANGESET_REPLACE : SQLITE_CHANGESET_OMIT;
}

struct page_ctx {
    long anomalies;           /* server rows that could not be applied */
};

static int page_conflict(void *ctx, int type, sqlite3_changeset_iter *it)
{
    struct page_ctx *p = ctx;
    (void)it;
    /* Server wins: upserts replace, tombstones delete whatever is here. */
    if (type == SQLITE_CHANGESET_DATA || type == SQLITE_CHANGESET_CONFLICT)
        return SQLITE_CHANGESET_REPLACE;
    if (type != SQLITE_CHANGESET_NOTFOUND)
        p->anomalies++;
    return SQLITE_CHANGESET_OMIT;
}

struct replay_ctx {
    struct sync_client *c;
    struct cs_writer    fwd;
    char                table[64];
    int                 forward_ok;  /* entry not yet sent: keep what conflicts */
};

/* 1 if every column the change sets already holds that value. */
static int already_applied(sqlite3_changeset_iter *it, int op, int ncol)
{
    for (int i = 0; i < ncol; i++) {
        sqlite3_value *nv = NULL, *cur = NULL;
        if (op == SQLITE_DELETE)
            return 0;
        if (sqlite3changeset_new(it, i, &nv) != SQLITE_OK || nv == NULL)
            continue;                         /* unchanged column */
        if (sqlite3changeset_conflict(it, i, &cur) != SQLITE_OK || cur == NULL)
            return 0;
        struct cs_value a, b;
        rowval_from_sqlite(&a, nv);
        rowval_from_sqlite(&b, cur);
        if (!rowval_eq(&a, &b))
            return 0;
    }
    return 1;
}

static void forward_change(struct replay_ctx *r, sqlite3_changeset_iter *it)
{
    const char *tab;
    int ncol, op, indirect;
    struct cs_value oldv[POL_MAXCOL], newv[POL_MAXCOL];
    sqlite3changeset_op(it, &tab, &ncol, &op, &indirect);
    const struct pol_table *t = policy_table(r->c->pol, tab);
    if (t == NULL || ncol != t->ncol)
        return;
    if (strcmp(r->table, tab) != 0) {
        cs_writer_table(&r->fwd, tab, ncol, t->pk);
        snprintf(r->table, sizeof r->table, "%s", tab);
    }
    for (int i = 0; i < ncol; i++) {
        sqlite3_value *v = NULL;
        if (op != SQLITE_INSERT && sqlite3changeset_old(it, i, &v) == SQLITE_OK)
            rowval_from_sqlite(&oldv[i], v);
        else
            rowval_from_sqlite(&oldv[i], NULL);
        v = NULL;
        if (op != SQLITE_DELETE && sqlite3changeset_new(it, i, &v) == SQLITE_OK)
            rowval_from_sqlite(&newv[i], v);
        else
            rowval_from_sqlite(&newv[i], NULL);
    }
    cs_writer_change(&r->fwd, op, indirect, op == SQLITE_INSERT ? NULL : oldv,
                     op == SQLITE_DELETE ? NULL : newv);
}

static int replay_conflict(void *ctx, int type, sqlite3_changeset_iter *it)
{
    struct replay_ctx *r = ctx;
    const char *tab;
    int ncol, op, indirect;
    sqlite3changeset_op(it, &tab, &ncol, &op, &indirect);
    if ((type == SQLITE_CHANGESET_DATA || type == SQLITE_CHANGESET_CONFLICT) &&
        already_applied(it, op, ncol))
        return SQLITE_CHANGESET_OMIT;
    if (type != SQLITE_CHANGESET_FOREIGN_KEY && r->forward_ok)
        forward_change(r, it);
    return SQLITE_CHANGESET_OMIT;
}

static int undo_all(struct sync_client *c)
{
    sqlite3_stmt *st = NULL;
    int rc = SYNC_OK;
    if (sqlite3_prepare_v2(c->db, "SELECT changeset FROM outbox WHERE (state = 'pending' "
                           "OR (state = 'quarantined' AND undone = 0)) AND changeset IS NOT "
                           "NULL ORDER BY id DESC", -1, &st, NULL) != SQLITE_OK)
        return client_fail(c, SYNC_EIO, "outbox: %s", sqlite3_errmsg(c->db));
    while (rc == SYNC_OK && sqlite3_step(st) == SQLITE_ROW) {
        int n = sqlite3_column_bytes(st, 0);
        if (n > 0 && sqlite3changeset_apply_v2(c->db, n, (void *)sqlite3_column_blob(st, 0),
                       NULL, undo_conflict, c, NULL, NULL,
                       SQLITE_CHANGESETAPPLY_INVERT | SQLITE_CHANGESETAPPLY_NOSAVEPOINT) != SQLITE_OK)
            rc = client_fail(c, SYNC_EIO, "undo: %s", sqlite3_errmsg(c->db));
    }
    sqlite3_finalize(st);
    return rc;
}

static int replay_one(struct sync_client *c, int64_t id)
{
    sqlite3_stmt *st = NULL;
    sqlite3_session *s = NULL;
    struct replay_ctx r = { .c = c };
    uint8_t *fwd = NULL;
    size_t fwdlen = 0;
    void *local = NULL;
    int nlocal = 0, rc;
    cs_writer_init(&r.fwd);
    if (sqlite3_prepare_v2(c->db, "SELECT changeset, forward, batch_seq IS NULL FROM outbox "
                           "WHERE id = ?1", -1, &st, NULL) != SQLITE_OK ||
        (sqlite3_bind_int64(st, 1, id), sqlite3_step(st)) != SQLITE_ROW) {
        rc = client_fail(c, SYNC_EIO, "outbox: %s", sqlite3_errmsg(c->db));
        goto out;
    }
    r.forward_ok = sqlite3_column_int(st, 2);
    rc = client_session(c, &s);
    int n = sqlite3_column_bytes(st, 0);
    if (rc == SYNC_OK && n > 0 &&
        sqlite3changeset_apply_v2(c->db, n, (void *)sqlite3_column_blob(st, 0), NULL,
                                  replay_conflict, &r, NULL, NULL,
                                  SQLITE_CHANGESETAPPLY_NOSAVEPOINT) != SQLITE_OK)
        rc = client_fail(c, SYNC_EIO, "replay: %s", sqlite3_errmsg(c->db));
    if (rc == SYNC_OK && sqlite3session_changeset(s, &nlocal, &local) != SQLITE_OK)
        rc = client_fail(c, SYNC_ENOMEM, "replay: cannot read the session");
    if (rc == SYNC_OK && cs_writer_finish(&r.fwd, &fwd, &fwdlen) != SYNC_OK)
        rc = client_fail(c, SYNC_ENOMEM, "replay: out of memory");
    if (rc != SYNC_OK)
        goto out;
    struct buf all = {0};                 /* forward = old forward ++ new */
    buf_append(&all, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1));
    buf_append(&all, fwd, fwdlen);
    sqlite3_finalize(st);
    st = NULL;
    if (all.oom)
        rc = client_fail(c, SYNC_ENOMEM, "replay: out of memory");
    else if (sqlite3_prepare_v2(c->db, "UPDATE outbox SET changeset = ?1, forward = ?2 "
                                "WHERE id = ?3", -1, &st, NULL) != SQLITE_OK)
        rc = client_fail(c, SYNC_EIO, "outbox: %s", sqlite3_errmsg(c->db));
    else {
        if (nlocal > 0)
            sqlite3_bind_blob(st, 1, local, nlocal, SQLITE_STATIC);
        if (all.len > 0)
            sqlite3_bind_blob(st, 2, all.p, (int)all.len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, id);
        rc = step_done(c, st);
        st = NULL;
    }
    buf_free(&all);
out:
    sqlite3_finalize(st);
    if (s)                         /* SQLite 3.40's delete does not accept NULL */
        sqlite3session_delete(s);
    sqlite3_free(local);
    es_free(fwd);
    cs_writer_reset(&r.fwd);
    return rc;
}

static int replay_all(struct sync_client *c)
{
    sqlite3_stmt *st = NULL;
    int64_t *ids = NULL;
    size_t n = 0, cap = 0;
    int rc = SYNC_OK;
    if (sqlite3_prepare_v2(c->db, "SELECT id FROM outbox WHERE state = 'pending' ORDER BY id",
                           -1, &st, NULL) != SQLITE_OK)
        return client_fail(c, SYNC_EIO, "outbox: %s", sqlite3_errmsg(c->db));
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            int64_t *p = es_realloc(ids, cap * sizeof *ids);
            if (p == NULL) {
                rc = client_fail(c, SYNC_ENOMEM, "out of memory");
                break;
            }
            ids = p;
        }
        ids[n++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    for (size_t i = 0; rc == SYNC_OK && i < n; i++)
        rc = replay_one(c, ids[i]);
    es_free(ids);
    return rc;
}

struct page {
    int64_t  cursor, acked_seq, confirmed_seq;
    uint64_t hlc;
    int      more;
    const uint8_t *cs;
    size_t   cslen, nchanges;
    int      opened;          /* personal values may travel opened (pcrypt.h) */
    cJSON   *json;            /* owned: the reply header (keys) */
};

static int parse_page(struct sync_client *c, const uint8_t *pt, size_t len, struct page *pg)
{
    memset(pg, 0, sizeof *pg);
    pg->json = NULL;
    if (len < 4 || be32_get(pt) > len - 4)
        return client_fail(c, SYNC_EPROTO, "malformed pull reply");
    size_t jlen = be32_get(pt);
    cJSON *j = cJSON_ParseWithLength((const char *)pt + 4, jlen);
    const char *hlc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "hlc"));
    /* Absent acknowledgements mean none (0); anything else must be a count. */
    if (!reply_int(j, "cursor", (int64_t)9e15, &pg->cursor) || hlc == NULL ||
        (cJSON_GetObjectItemCaseSensitive(j, "acked_seq") &&
         !reply_int(j, "acked_seq", (int64_t)9e15, &pg->acked_seq)) ||
        (cJSON_GetObjectItemCaseSensitive(j, "confirmed_seq") &&
         !reply_int(j, "confirmed_seq", (int64_t)9e15, &pg->confirmed_seq))) {
        cJSON_Delete(j);
        return client_fail(c, SYNC_EPROTO, "malformed pull reply");
    }
    cJSON *k;
    cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(j, "keys")) {
        const char *sealed = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(k, "sealed"));
        int64_t id;
        if (!reply_int(k, "id", (int64_t)9e15, &id) || sealed == NULL ||
            strlen(sealed) != 2 * SEALED_KEYBYTES) {
            cJSON_Delete(j);
            return client_fail(c, SYNC_EPROTO, "malformed key in pull reply");
        }
    }
    pg->more = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "more"));
    pg->opened = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "opened"));
    pg->hlc = strtoull(hlc, NULL, 10);
    pg->json = j;
    pg->cs = pt + 4 + jlen;
    pg->cslen = len - 4 - jlen;
    struct cs_limits lim = { 0, 0, 1u << 24, POL_MAXCOL };
    struct cs_error e;
    if (cs_validate(pg->cs, pg->cslen, policy_cs_lookup, c->pol, &lim, &pg->nchanges, &e) != SYNC_OK) {
        cJSON_Delete(pg->json);
        pg->json = NULL;
        return client_fail(c, SYNC_EPROTO, "server sent a malformed changeset: %s", e.msg);
    }
    return SYNC_OK;
}

/* Keeps the data keys the server sent, still sealed to this device. */
static int store_keys(struct sync_client *c, cJSON *json)
{
    cJSON *k;
    int rc = SYNC_OK;
    cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(json, "keys")) {
        uint8_t sealed[SEALED_KEYBYTES];
        sqlite3_stmt *st = NULL;
        hex_decode(sealed, sizeof sealed,
                   cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(k, "sealed")));
        if (sqlite3_prepare_v2(c->db, "INSERT OR REPLACE INTO data_keys (key_id, sealed) "
                               "VALUES (?1, ?2)", -1, &st, NULL) != SQLITE_OK)
            return client_fail(c, SYNC_EIO, "data_keys: %s", sqlite3_errmsg(c->db));
        sqlite3_bind_int64(st, 1, (int64_t)cJSON_GetNumberValue(
                               cJSON_GetObjectItemCaseSensitive(k, "id")));
        sqlite3_bind_blob(st, 2, sealed, sizeof sealed, SQLITE_TRANSIENT);
        if ((rc = step_done(c, st)) != SYNC_OK)
            break;
    }
    return rc;
}

/* Runs a one-parameter count query; 0 if it fails. */
static long count_int(struct sync_client *c, const char *sql, int64_t a)
{
    sqlite3_stmt *st = NULL;
    long n = 0;
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, a);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = (long)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return n;
}

/* Seals the opened personal values of a page (pcrypt.h) again, with the
 * key they name, into *out: the same bytes the server holds, since sealing
 * is deterministic.  The rest of the page is copied as it is. */
static int reseal_page(struct sync_client *c, const struct page *pg, uint8_t **out,
                       size_t *outlen)
{
    struct cs_iter *it = es_malloc(sizeof *it);
    struct cs_writer w;
    const char *section = NULL;
    int rc = SYNC_OK, more;
    uint8_t key[32];
    *out = NULL;
    *outlen = 0;
    if (it == NULL)
        return client_fail(c, SYNC_ENOMEM, "not enough memory to read the pull page");
    cs_writer_init(&w);
    cs_iter_init(it, pg->cs, pg->cslen);
    while (rc == SYNC_OK && (more = cs_iter_next(it)) == 1) {
        const struct pol_table *t = policy_table(c->pol, it->table);
        uint8_t *sealed[2][POL_MAXCOL] = {{0}};
        struct cs_value *recs[2] = { it->old, it->new_ };
        if (it->table != section) {
            cs_writer_table(&w, it->table, it->ncol, it->pk);
            section = it->table;
        }
        for (int r = 0; t && t->personal && rc == SYNC_OK && r < 2; r++) {
            /* an UPDATE's new record leaves the key undefined */
            struct cs_value *v = recs[r], *pk = &it->old[t->id_col];
            if (it->op == CS_INSERT)
                pk = &it->new_[t->id_col];
            for (int i = 0; rc == SYNC_OK && i < t->ncol; i++) {
                if (!((t->personal >> i) & 1) || v[i].type != CS_BLOB ||
                    v[i].n < PV_OPENED_HDR || v[i].p[0] != PV_OPENED)
                    continue;
                uint32_t kid = be32_get(v[i].p + 1);
                size_t n = 0;
                if (pk->type != CS_BLOB || kid == 0 || client_cached_key(c, kid, key) != SYNC_OK) {
                    rc = client_fail(c, SYNC_EPROTO, "the server sent %s.%s under data key %u, "
                                     "which this tablet cannot use", t->name, t->cols[i],
                                     (unsigned)kid);
                    break;
                }
                rc = pv_seal(key, kid, t->name, t->cols[i], pk->p, pk->n, v[i].p + PV_OPENED_HDR,
                             v[i].n - PV_OPENED_HDR, &sealed[r][i], &n);
                sodium_memzero(key, sizeof key);
                if (rc != SYNC_OK) {
                    rc = client_fail(c, rc, "not enough memory to seal personal data");
                    break;
                }
                v[i].p = sealed[r][i];
                v[i].n = n;
            }
        }
        if (rc == SYNC_OK)
            cs_writer_change(&w, it->op, it->indirect, it->old, it->new_);
        for (int r = 0; r < 2; r++)
            for (int i = 0; t && i < t->ncol; i++)
                es_free(sealed[r][i]);
    }
    if (rc == SYNC_OK && more < 0)
        rc = client_fail(c, SYNC_EPROTO, "server sent a malformed changeset");
    sodium_memzero(key, sizeof key);
    es_free(it);
    if (rc == SYNC_OK && (rc = cs_writer_finish(&w, out, outlen)) != SYNC_OK)
        rc = client_fail(c, rc, "not enough memory to read the pull page");
    cs_writer_reset(&w);
    return rc;
}

static int apply_page(struct sync_client *c, const struct page *pg)
{
    struct page_ctx p = {0};
    uint8_t *cs = NULL;
    size_t cslen = pg->cslen;
    int rc = client_sql(c, "PRAGMA foreign_keys = OFF");
    if (rc == SYNC_OK)
        rc = client_tx_begin(c);
    if (rc != SYNC_OK)
        return rc;
    /* Keys first: the first page brings the keys its opened values need. */
    if ((rc = store_keys(c, pg->json)) == SYNC_OK)
        client_keys_changed(c);
    if (rc == SYNC_OK && pg->opened && pg->cslen > 0)
        rc = reseal_page(c, pg, &cs, &cslen);
    if (rc != SYNC_OK) {
        es_free(cs);
        return client_tx_end(c, rc);
    }
    long confirm = count_int(c, "SELECT count(*) FROM outbox WHERE state = 'pending' AND "
                                "batch_seq <= ?1", pg->confirmed_seq);
    long shelve = count_int(c, "SELECT count(*) FROM outbox WHERE state = 'quarantined' AND "
                               "undone = ?1", 0);
    if (pg->nchanges > 0 || confirm > 0 || shelve > 0) {
        rc = undo_all(c);
        if (rc == SYNC_OK && cslen > 0 &&
            sqlite3changeset_apply_v2(c->db, (int)cslen, cs ? cs : (void *)pg->cs, NULL,
                                      page_conflict, &p, NULL, NULL,
                                      SQLITE_CHANGESETAPPLY_NOSAVEPOINT) != SQLITE_OK)
            rc = client_fail(c, SYNC_EIO, "apply: %s", sqlite3_errmsg(c->db));
        if (rc == SYNC_OK)
            rc = exec_int(c, "DELETE FROM outbox WHERE state = 'pending' AND batch_seq <= ?1",
                          pg->confirmed_seq, 0);
        if (rc == SYNC_OK)
            rc = replay_all(c);
        if (rc == SYNC_OK)
            rc = client_sql(c, "UPDATE outbox SET undone = 1 WHERE state = 'quarantined'");
    }
    es_free(cs);
    /* The reply to a push may have been lost after the server applied it. */
    if (rc == SYNC_OK)
        rc = exec_int(c, "DELETE FROM pending_batch WHERE batch_seq <= ?1", pg->acked_seq, 0);
    hlc_observe(&c->hlc, pg->hlc);
    if (rc == SYNC_OK) rc = meta_set_int(c, "cursor", pg->cursor);
    if (rc == SYNC_OK) rc = meta_set_int(c, "hlc", (int64_t)c->hlc.last);
    if (rc == SYNC_OK) rc = meta_set_int(c, "last_sync", now_ms());
    return client_tx_end(c, rc);
}

/* The pull request for the page after cursor, sent (see req_start).  It
 * names the newest data key the tablet holds (-1: none), and asks for
 * opened personal values only if every data key it holds opens, so it can
 * seal them again under whichever key the server names; a damaged key
 * leaves them sealed, as before opened pages. */
static int pull_start(struct sync_client *c, int64_t cursor, struct http_conn *conn, int async,
                      struct req *q)
{
    char req[160];
    sqlite3_stmt *st = NULL;
    uint8_t key[32];
    int64_t have_key = -1;
    int open = 1, step = SQLITE_ERROR;
    if (sqlite3_prepare_v2(c->db, "SELECT key_id FROM data_keys", -1, &st, NULL) == SQLITE_OK)
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            int64_t id = sqlite3_column_int64(st, 0);
            if (id > have_key)
                have_key = id;
            if (id > 0 && open && client_cached_key(c, id, key) != SYNC_OK)
                open = 0;
        }
    if (step != SQLITE_DONE) {             /* unreadable: keys above 0 again, sealed values */
        have_key = 0;
        open = 0;
    }
    sqlite3_finalize(st);
    sodium_memzero(key, sizeof key);
    snprintf(req, sizeof req, "{\"cursor\":%lld,\"max_bytes\":%u,\"schema_version\":%d,"
             "\"have_key\":%lld,\"open_personal\":%s}", (long long)cursor, PULL_MAX_BYTES,
             schema_version(), (long long)have_key, open ? "true" : "false");
    return req_start(c, "/v1/pull", ENV_PULL, 0, (const uint8_t *)req, strlen(req), conn, async,
                     q);
}

/* Pulls until the server has no more.  While a page is applied, the next
 * one is already asked for on the other connection, so the server builds
 * it while the tablet writes this one (a pull only reads on the server:
 * a page fetched for nothing, because this one failed, costs nothing).
 * That request carries the key state from before this page, so a first
 * page's keys may come twice; the tablet keeps them once. */
static int pull_pages(struct sync_client *c, struct sync_stats *stats)
{
    int64_t cursor = 0;
    struct req q[2];                    /* q[i] goes on conns[i]; a thread holds &q[i] */
    struct http_conn *conns[2] = { &c->conn, &c->conn2 };
    int cur = 0, rc;
    meta_get_int(c, "cursor", &cursor);
    rc = pull_start(c, cursor, conns[cur], 0, &q[cur]);
    while (rc == SYNC_OK) {
        uint8_t *pt = NULL, *eb = NULL;
        size_t ptlen = 0, eblen = 0;
        int http = 0, fetching = 0;
        rc = req_finish(c, &q[cur], &pt, &ptlen, &http, &eb, &eblen);
        if (rc != SYNC_OK)
            break;
        if (http != 200) {
            rc = client_http_error(c, http, eb, eblen);
            es_free(eb);
            break;
        }
        struct page pg;
        rc = parse_page(c, pt, ptlen, &pg);
        if (rc == SYNC_OK && pg.more &&
            pull_start(c, pg.cursor, conns[!cur], 1, &q[!cur]) == SYNC_OK)
            fetching = 1;
        if (rc == SYNC_OK)
            rc = apply_page(c, &pg);
        cJSON_Delete(pg.json);
        sodium_memzero(pt, ptlen);          /* opened personal values */
        es_free(pt);
        if (rc == SYNC_OK && stats) {
            stats->pulled += (long)pg.nchanges;
            stats->cursor = pg.cursor;
        }
        if (rc != SYNC_OK || !pg.more) {
            if (fetching)
                req_abandon(&q[!cur]);
            break;
        }
        cur = !cur;
        if (!fetching)
            rc = pull_start(c, pg.cursor, conns[cur], 0, &q[cur]);
    }
    http_conn_reset(&c->conn2);
    return rc;
}

int sync_push(struct sync_client *c, struct sync_stats *stats)
{
    return end_call(c, push_all(c, stats));
}

static int pull_all(struct sync_client *c, struct sync_stats *stats)
{
    int rc;
    int64_t up = c->bytes_up, down = c->bytes_down;
    if ((rc = check_enrolled(c)) != SYNC_OK)
        return rc;
    rc = pull_pages(c, stats);
    count_bytes(c, stats, up, down);
    return rc;
}

int sync_pull(struct sync_client *c, struct sync_stats *stats)
{
    return end_call(c, pull_all(c, stats));
}

/* Push, then pull: on one connection. */
int sync_run(struct sync_client *c, struct sync_stats *stats)
{
    if (stats)
        memset(stats, 0, sizeof *stats);
    int rc = push_all(c, stats);
    if (rc == SYNC_OK)
        rc = pull_all(c, stats);
    return end_call(c, rc);
}
