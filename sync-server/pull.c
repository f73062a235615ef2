/* pull.c - encode the state of changed rows in a device's scope.
 *
 * A pull is the current state of rows, not a replay of other devices'
 * changesets: a row edited a hundred times ships once, and rows that moved
 * in or out of the scope arrive whole or as tombstones.  Range scans of
 * row_versions find them (see scan()).  Nothing here knows
 * about HTTP or encryption.
 */
#include "pull.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <cjson/cJSON.h>

#include "changeset.h"
#include "eldersync.h"
#include "hlc.h"
#include "keyring.h"
#include "pcrypt.h"
#include "rowval.h"
#include "schema.h"
#include "store.h"
#include "util.h"

struct page {
    struct cs_writer w[32];      /* one section per table, joined at the end */
    int      started[32];
    size_t   bytes;
    long     rows;
    int64_t  max_hlc;
    int      open;               /* personal values travel opened (see open_personal()) */
    struct { int64_t id; int rc; uint8_t key[KEYRING_KEYBYTES]; } keys[8];
    int      nkeys;
};

static int parse_request(const uint8_t *req, size_t len, size_t cap, int64_t *cursor,
                         size_t *max_bytes, int64_t *have_key, int *open, struct outcome *o)
{
    cJSON *j = cJSON_ParseWithLength((const char *)req, len);
    cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "cursor");
    cJSON *op = cJSON_GetObjectItemCaseSensitive(j, "open_personal");
    cJSON *hk = cJSON_GetObjectItemCaseSensitive(j, "have_key");
    /* Absent: the tablet asks for no keys. -1: it has none yet. */
    if (!num_to_i64(cJSON_GetNumberValue(hk), -1, (int64_t)1e15, have_key))
        *have_key = INT64_MAX;
    cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "max_bytes");
    cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "schema_version");
    int64_t sv = schema_version();
    int rc = SYNC_OK;
    if (!cJSON_IsObject(j) || !num_to_i64(cJSON_GetNumberValue(c), 0, (int64_t)9e15, cursor))
        rc = outcome_set(o, SYNC_EPROTO, "bad_request", "pull needs a non-negative integer cursor");
    else if (op != NULL && !cJSON_IsBool(op))
        rc = outcome_set(o, SYNC_EPROTO, "bad_request", "open_personal must be true or false");
    else if (v != NULL && !num_to_i64(cJSON_GetNumberValue(v), 0, INT32_MAX, &sv))
        rc = outcome_set(o, SYNC_EPROTO, "bad_request", "schema_version must be a whole number");
    else if (sv != schema_version())
        rc = outcome_set(o, SYNC_ESCHEMA, "schema_version",
                         "the tablet has schema version %lld, the server %d; update the app",
                         (long long)sv, schema_version());
    else {
        *open = cJSON_IsTrue(op);
        *max_bytes = cap;
        int64_t mb;
        if (num_to_i64(cJSON_GetNumberValue(m), 1024, (int64_t)cap - 1, &mb))
            *max_bytes = (size_t)mb;
    }
    cJSON_Delete(j);
    return rc;
}

/* Data key id for this page, unwrapped once per page from the reader's
 * snapshot (pulls do not take srv->lock, which guards srv's key cache). */
static int page_key(struct server *srv, struct store_reader *r, struct page *pg, int64_t id,
                    const uint8_t **key)
{
    for (int i = 0; i < pg->nkeys; i++)
        if (pg->keys[i].id == id) {
            *key = pg->keys[i].key;
            return pg->keys[i].rc;
        }
    if (pg->nkeys == (int)(sizeof pg->keys / sizeof pg->keys[0]))
        return SYNC_ENOTFOUND;         /* more keys than that in one page: send sealed */
    int rc = keyring_get_reader(srv, r, id, pg->keys[pg->nkeys].key);
    if (rc == SYNC_EIO)                /* not remembered: the pull fails and is retried */
        return rc;
    pg->keys[pg->nkeys].id = id;
    pg->keys[pg->nkeys].rc = rc;
    *key = pg->keys[pg->nkeys++].key;
    return rc;
}

/* Replaces the personal values of a row by their opened form (pcrypt.h)
 * where the tablet can seal them again into the same bytes: sealed with a
 * synthetic nonce under a key the tablet holds (every device gets every
 * data key).  The page travels in the device's envelope.  Values sealed
 * with a random nonce (before synthetic nonces) or that do not open go
 * as they are.  opened[] gets the buffers to wipe and free. */
static int open_personal(struct server *srv, struct store_reader *r, struct page *pg,
                         const struct pol_table *t, struct cs_value *vals, uint8_t **opened)
{
    const struct cs_value *pk = &vals[t->id_col];
    if (pk->type != CS_BLOB)
        return SYNC_OK;
    for (int c = 0; c < t->ncol; c++) {
        struct cs_value *v = &vals[c];
        uint32_t kid;
        const uint8_t *key;
        if (!((t->personal >> c) & 1) || v->type != CS_BLOB ||
            !pv_is_sealed(v->p, v->n, &kid) || kid == 0)
            continue;
        int rc = page_key(srv, r, pg, kid, &key);
        if (rc == SYNC_EIO)
            return rc;
        if (rc != SYNC_OK)
            continue;
        uint8_t *pt = NULL;
        size_t ptlen = 0;
        int synthetic = 0;
        rc = pv_open_ex(key, t->name, t->cols[c], pk->p, pk->n, v->p, v->n, &pt, &ptlen,
                        &synthetic);
        if (rc == SYNC_ENOMEM)
            return rc;
        if (rc == SYNC_OK && synthetic) {
            if ((opened[c] = es_malloc(PV_OPENED_HDR + ptlen)) == NULL) {
                sodium_memzero(pt, ptlen);
                es_free(pt);
                return SYNC_ENOMEM;
            }
            opened[c][0] = PV_OPENED;
            be32_put(opened[c] + 1, kid);
            memcpy(opened[c] + PV_OPENED_HDR, pt, ptlen);
            v->p = opened[c];
            v->n = PV_OPENED_HDR + ptlen;
        }
        if (pt) {
            sodium_memzero(pt, ptlen);
            es_free(pt);
        }
    }
    return SYNC_OK;
}

/* Adds one row (or its tombstone) of table index ti to the page. */
static int add_row(struct server *srv, struct store_reader *r, struct page *pg, int ti,
                   const void *pk, int pklen, int deleted)
{
    const struct pol_table *t = &srv->pol->tables[ti];
    struct cs_value vals[POL_MAXCOL];
    uint8_t *opened[POL_MAXCOL] = {0};
    sqlite3_stmt *st = NULL;
    char sql[160];
    int found = 0, rc = SYNC_OK;
    if (!deleted) {
        snprintf(sql, sizeof sql, "SELECT * FROM \"%s\" WHERE id = ?1", t->name);
        if ((st = store_reader_stmt(r, sql)) == NULL)
            return SYNC_EIO;
        sqlite3_bind_blob(st, 1, pk, pklen, SQLITE_STATIC);
        int step = sqlite3_step(st);
        if (step != SQLITE_ROW && step != SQLITE_DONE) {
            sqlite3_reset(st);       /* a failed read is not a deleted row */
            return SYNC_EIO;
        }
        if (step == SQLITE_ROW && sqlite3_column_count(st) == t->ncol) {
            found = 1;
            for (int i = 0; i < t->ncol; i++)
                rowval_column(&vals[i], st, i);
            if (t->hlc_col >= 0 && vals[t->hlc_col].type == CS_INT &&
                vals[t->hlc_col].i > pg->max_hlc)
                pg->max_hlc = vals[t->hlc_col].i;
        }
    }
    if (!found) {                 /* tombstone: the key, NULL elsewhere */
        for (int i = 0; i < t->ncol; i++)
            vals[i].type = CS_NULL;
        vals[t->id_col].type = CS_BLOB;
        vals[t->id_col].p = pk;
        vals[t->id_col].n = (size_t)pklen;
    }
    if (found && pg->open && t->personal)
        rc = open_personal(srv, r, pg, t, vals, opened);
    if (rc == SYNC_OK) {
        if (!pg->started[ti]) {
            cs_writer_table(&pg->w[ti], t->name, t->ncol, t->pk);
            pg->started[ti] = 1;
        }
        size_t before = pg->w[ti].b.len;
        cs_writer_change(&pg->w[ti], found ? CS_INSERT : CS_DELETE, 0, found ? NULL : vals,
                         found ? vals : NULL);
        pg->bytes += pg->w[ti].b.len - before;
        pg->rows++;
        rc = pg->w[ti].b.oom ? SYNC_ENOMEM : SYNC_OK;
    }
    for (int i = 0; i < t->ncol; i++)
        if (opened[i]) {
            sodium_memzero(opened[i], vals[i].n);
            es_free(opened[i]);
        }
    if (st)
        sqlite3_reset(st);
    return rc;
}

/* One integer from a cached statement with a device id (?1) and an
 * optional integer (?2); def if there is no row, -1 if it cannot be read
 * (the values go to the tablet, which forgets outbox entries and resends
 * batches by them: a failed read must fail the pull, not say 0). */
static int64_t query_int(struct store_reader *r, const char *sql, const struct device *dev,
                         int64_t arg, int64_t def)
{
    sqlite3_stmt *st = store_reader_stmt(r, sql);
    if (st == NULL)
        return -1;
    sqlite3_bind_blob(st, 1, dev->id, 16, SQLITE_STATIC);
    if (sqlite3_bind_parameter_count(st) >= 2)
        sqlite3_bind_int64(st, 2, arg);
    int step = sqlite3_step(st);
    int64_t v = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : step == SQLITE_DONE ? def : -1;
    sqlite3_reset(st);
    return v;
}

/* The device's last sync, written by the next group commit (store.c) with
 * whatever pushes are in flight, so a pull costs no commit of its own when
 * the server is busy. */
struct sync_note {
    struct store_job job;
    uint8_t          id[16];
    int64_t          at;
};

static int note_run(struct server *srv, void *arg)
{
    struct sync_note *n = arg;
    sqlite3_stmt *st = store_stmt(srv, "UPDATE devices SET last_sync = max(coalesce(last_sync, 0), "
                                       "?2), last_seen = max(coalesce(last_seen, 0), ?2) "
                                       "WHERE id = ?1");
    if (st == NULL)
        return SYNC_EIO;
    sqlite3_bind_blob(st, 1, n->id, 16, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, n->at);
    int rc = sqlite3_step(st) == SQLITE_DONE ? SYNC_OK : SYNC_EIO;
    sqlite3_reset(st);
    return rc;
}

static void note_sync(struct server *srv, const struct device *dev)
{
    struct sync_note *n = es_calloc(1, sizeof *n);
    if (n == NULL)
        return;
    n->job.run = note_run;
    n->job.arg = n;
    memcpy(n->id, dev->id, 16);
    n->at = now_ms();
    store_group_detached(srv, &n->job);
}

/* The versions a device may receive after a cursor, in vseq order: one
 * range of the index (township_id, hall_id, vseq, deleted) per partition
 * the device reads, joined by UNION ALL, which SQLite merges without a
 * sort, so a page stops early (an IN list would sort every remaining
 * version on every page).  A hall's tablet reads its township's own rows
 * and its hall's, and never walks the other halls' meals; a device
 * without a hall reads every partition of its township (row_partitions).
 * Both read the county's rows.  ?1 township, ?2 cursor, ?3 head, ?4...
 * halls. */
#define MAX_ARMS 256               /* beyond: one range and a sort */
#define VERSIONS "SELECT tbl, pk, vseq, deleted FROM row_versions WHERE "
#define AFTER    " AND vseq > ?2 AND vseq <= ?3"

struct part {
    uint8_t hall[16];
    int     n;                     /* 0: the township's own rows */
};

/* The halls whose partitions of dev's township it reads; -1 on error. */
static long device_parts(struct store_reader *r, const struct device *dev, struct part **out)
{
    struct part *p = NULL;
    long n = 0, cap = 0;
    if (dev->has_hall) {
        if ((p = es_calloc(2, sizeof *p)) == NULL)
            return -1;
        memcpy(p[1].hall, dev->hall, 16);
        p[1].n = 16;
        *out = p;
        return 2;
    }
    sqlite3_stmt *st = store_reader_stmt(r, "SELECT hall_id FROM row_partitions "
                                            "WHERE township_id = ?1");
    if (st == NULL)
        return -1;
    sqlite3_bind_blob(st, 1, dev->township, 16, SQLITE_STATIC);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            struct part *g = es_realloc(p, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *p);
            if (g == NULL)
                break;
            p = g;
        }
        int len = sqlite3_column_bytes(st, 0);
        p[n].n = len < 16 ? len : 16;
        if (p[n].n)
            memcpy(p[n].hall, sqlite3_column_blob(st, 0), (size_t)p[n].n);
        n++;
    }
    sqlite3_reset(st);
    if (step != SQLITE_DONE) {
        es_free(p);
        return -1;
    }
    *out = p;
    return n;
}

static sqlite3_stmt *scan_stmt(struct store_reader *r, const struct device *dev)
{
    struct part *parts = NULL;
    long n = device_parts(r, dev, &parts);
    if (n < 0)
        return NULL;
    struct buf sql = {0};
    char arm[160];
    for (long i = 0; n <= MAX_ARMS && i < n; i++) {
        snprintf(arm, sizeof arm, VERSIONS "township_id = ?1 AND hall_id = ?%ld" AFTER
                 " UNION ALL ", i + 4);
        buf_append(&sql, arm, strlen(arm));
    }
    if (n > MAX_ARMS) {
        static const char all[] = VERSIONS "township_id = ?1" AFTER " UNION ALL ";
        buf_append(&sql, all, sizeof all - 1);
    }
    static const char county[] = VERSIONS "township_id = x'' AND hall_id = x''" AFTER
                                 " ORDER BY vseq";
    buf_append(&sql, county, sizeof county);            /* with its NUL */
    sqlite3_stmt *st = sql.oom ? NULL : store_reader_stmt(r, (const char *)sql.p);
    for (long i = 0; st && n <= MAX_ARMS && i < n; i++)
        sqlite3_bind_blob(st, (int)i + 4, parts[i].hall, parts[i].n, SQLITE_TRANSIENT);
    if (st)
        sqlite3_bind_blob(st, 1, dev->township, 16, SQLITE_STATIC);
    buf_free(&sql);
    es_free(parts);
    return st;
}

/* Scans row_versions after cursor; sets *next and *more. */
static int scan(struct server *srv, struct store_reader *r, const struct device *dev,
                int64_t cursor, size_t max_bytes, struct page *pg, int64_t *next, int *more)
{
    int64_t head = store_counter(r->db), last = cursor;
    *more = 0;
    if (head < 0)
        return SYNC_EIO;
    sqlite3_stmt *st = scan_stmt(r, dev);
    if (st == NULL)
        return SYNC_EIO;
    sqlite3_bind_int64(st, 2, cursor);
    sqlite3_bind_int64(st, 3, head);
    int rc = SYNC_OK, step;
    while (rc == SYNC_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t vseq = sqlite3_column_int64(st, 2);
        if (pg->bytes >= max_bytes && vseq != last) {
            *more = 1;                   /* stop at a vseq boundary */
            break;
        }
        last = vseq;
        const struct pol_table *t = policy_table(srv->pol, (const char *)sqlite3_column_text(st, 0));
        if (t == NULL || !(t->read_roles & dev->role))
            continue;
        rc = add_row(srv, r, pg, (int)(t - srv->pol->tables), sqlite3_column_blob(st, 1),
                     sqlite3_column_bytes(st, 1), sqlite3_column_int(st, 3));
    }
    if (rc == SYNC_OK && !*more && step != SQLITE_DONE)
        rc = SYNC_EIO;
    sqlite3_reset(st);
    *next = *more ? last : head;
    return rc;
}

static int assemble(struct server *srv, struct page *pg, const char *json, uint8_t **reply,
                    size_t *replylen)
{
    struct buf b = { .secret = pg->open };     /* opened personal values */
    size_t jlen = strlen(json);
    buf_be32(&b, (uint32_t)jlen);
    buf_append(&b, json, jlen);
    for (int i = 0; i < srv->pol->ntables; i++) {
        uint8_t *p = NULL;
        size_t n = 0;
        if (!pg->started[i])
            continue;
        if (cs_writer_finish(&pg->w[i], &p, &n) != SYNC_OK) {
            buf_free(&b);
            return SYNC_ENOMEM;
        }
        buf_append(&b, p, n);
        if (pg->open && p)          /* opened personal values */
            sodium_memzero(p, n);
        es_free(p);
    }
    *reply = buf_take(&b, replylen);
    return *reply ? SYNC_OK : SYNC_ENOMEM;
}

int pull_build(struct server *srv, const struct device *dev, const uint8_t *req, size_t len,
               uint8_t **reply, size_t *replylen, struct outcome *o)
{
    int64_t cursor = 0, next = 0, have_key = INT64_MAX;
    size_t max_bytes = 0;
    int more = 0;
    *reply = NULL;
    *replylen = 0;
    cJSON *keys = cJSON_CreateArray();
    if (keys == NULL)
        return outcome_set(o, SYNC_ENOMEM, "internal", "out of memory");
    int open = 0;
    int rc = parse_request(req, len, srv->cfg.pull_max_bytes, &cursor, &max_bytes, &have_key,
                           &open, o);
    if (rc != SYNC_OK) {
        cJSON_Delete(keys);
        return rc;
    }
    struct page *pg = es_calloc(1, sizeof *pg);
    if (pg == NULL) {
        cJSON_Delete(keys);
        return outcome_set(o, SYNC_ENOMEM, "internal", "out of memory");
    }
    pg->open = open;
    for (int i = 0; i < srv->pol->ntables; i++) {
        cs_writer_init(&pg->w[i]);
        pg->w[i].b.secret = open;             /* grows without stale copies */
    }
    /* A read connection: the pull does not wait for a commit in progress. */
    struct store_reader *r = store_reader_get(srv);
    int64_t acked = 0, confirmed = 0, active = 0;
    /* A COMMIT and ROLLBACK that both failed (out of memory) left the
     * connection's last snapshot open: end it, or BEGIN fails for good. */
    if (r && !sqlite3_get_autocommit(r->db))
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    rc = r == NULL ? SYNC_EBUSY : store_exec(r->db, "BEGIN");     /* one consistent snapshot */
    if (rc == SYNC_OK) {
        rc = scan(srv, r, dev, cursor, max_bytes, pg, &next, &more);
        if (rc == SYNC_OK) {
            confirmed = query_int(r, "SELECT max(batch_seq) FROM batches WHERE device_id = ?1 "
                                     "AND vseq <= ?2", dev, next, 0);
            acked = query_int(r, "SELECT last_batch_seq FROM devices WHERE id = ?1", dev, 0, -1);
            active = query_int(r, "SELECT coalesce(max(key_id), 0) FROM keyring WHERE ?1 IS "
                                  "NOT NULL", dev, 0, 0);
            if (confirmed < 0 || acked < 0 || active < 0)
                rc = SYNC_EIO;
        }
        /* A read transaction left open would pin this connection's snapshot. */
        if (sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
            sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    }
    store_reader_put(srv, r);
    /* Data keys this tablet lacks, sealed to its device key (rare: the
     * first sync and after a rotation; keys are only ever added).  A
     * failure here is the server's (memory, storage), not a failed
     * authentication: SYNC_ECRYPTO would answer 401 "not authorised". */
    if (rc == SYNC_OK && have_key != INT64_MAX && (have_key < 0 || active > have_key)) {
        pthread_mutex_lock(&srv->lock);
        if (keyring_for_device(srv, dev, have_key, keys) < 0)
            rc = SYNC_EIO;
        pthread_mutex_unlock(&srv->lock);
    }
    if (rc == SYNC_OK)                /* sync health for the dashboard */
        note_sync(srv, dev);
    if (rc == SYNC_OK) {
        uint64_t hlc = hlc_make(now_ms(), 0, 0);
        if ((uint64_t)pg->max_hlc > hlc)
            hlc = (uint64_t)pg->max_hlc;
        char hlcs[24];
        snprintf(hlcs, sizeof hlcs, "%llu", (unsigned long long)hlc);
        cJSON *j = cJSON_CreateObject();
        char *json = NULL;
        if (j && cJSON_AddNumberToObject(j, "cursor", (double)next) &&
            cJSON_AddBoolToObject(j, "more", more) &&
            cJSON_AddNumberToObject(j, "acked_seq", (double)acked) &&
            cJSON_AddNumberToObject(j, "confirmed_seq", (double)confirmed) &&
            cJSON_AddStringToObject(j, "hlc", hlcs) &&
            cJSON_AddNumberToObject(j, "rows", (double)pg->rows) &&
            (!pg->open || cJSON_AddBoolToObject(j, "opened", 1))) {
            int ok = 1;
            if (cJSON_GetArraySize(keys) > 0) {
                ok = cJSON_AddItemToObject(j, "keys", keys);   /* fails: keys stay ours */
                if (ok)
                    keys = NULL;
            }
            if (ok)
                json = cJSON_PrintUnformatted(j);
        }
        cJSON_Delete(j);
        rc = json ? assemble(srv, pg, json, reply, replylen) : SYNC_ENOMEM;
        cJSON_free(json);
    }
    for (int i = 0; i < srv->pol->ntables; i++)
        cs_writer_reset(&pg->w[i]);           /* wipes a secret buffer */
    sodium_memzero(pg->keys, sizeof pg->keys);
    es_free(pg);
    cJSON_Delete(keys);
    if (rc != SYNC_OK && o->status == SYNC_OK)
        outcome_set(o, rc, rc == SYNC_ENOMEM ? "internal" : "storage", "cannot build the page");
    return rc;
}
