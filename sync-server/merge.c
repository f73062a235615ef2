/* merge.c - decide each conflict by the table's declared policy.
 *
 * Nothing is dropped silently: whenever a device's value does not survive,
 * a row in `conflicts` keeps it (with the value that won) for a supervisor.
 * Merges that keep some of the incoming columns are written with our own
 * UPDATE, so the row-version triggers see them like any other change.
 */
#include "merge.h"

#include <stdio.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "eldersync.h"
#include "log.h"
#include "pcrypt.h"
#include "rowval.h"
#include "scope.h"
#include "util.h"

/* Appends column values to a JSON object by name.  Out of memory fails
 * the merge (m->failed): a conflict record must not lose a side silently. */
static void json_put(struct merge_ctx *m, cJSON *obj, const struct pol_table *t, int col,
                     const struct cs_value *v)
{
    cJSON *j = rowval_json(v);
    if (obj == NULL || j == NULL || !cJSON_AddItemToObject(obj, t->cols[col], j)) {
        cJSON_Delete(j);
        m->failed = 1;
    }
}

void merge_note(struct merge_ctx *m, const struct pol_table *t, const struct cs_value *pk,
                const struct cs_value *scopev, const char *kind, cJSON *winner, cJSON *loser)
{
    sqlite3_stmt *st = NULL;
    uint8_t twp[16];
    int ntwp = scopev ? scope_township(m->srv, t, scopev, twp) : -1;
    char *w = winner ? cJSON_PrintUnformatted(winner) : NULL;
    char *l = loser ? cJSON_PrintUnformatted(loser) : NULL;
    if (sqlite3_prepare_v2(m->srv->db, "INSERT INTO conflicts (created_at, device_id, batch_seq, "
                           "tbl, pk, township_id, kind, winner, loser) VALUES "
                           "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", -1, &st, NULL) != SQLITE_OK) {
        m->failed = 1;
    } else {
        sqlite3_bind_int64(st, 1, now_ms());
        sqlite3_bind_blob(st, 2, m->dev->id, 16, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, m->batch_seq);
        sqlite3_bind_text(st, 4, t->name, -1, SQLITE_STATIC);
        rowval_bind(st, 5, pk);
        if (ntwp >= 0)
            sqlite3_bind_blob(st, 6, twp, ntwp, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, kind, -1, SQLITE_STATIC);
        if (w)
            sqlite3_bind_text(st, 8, w, -1, SQLITE_STATIC);
        if (l)
            sqlite3_bind_text(st, 9, l, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            m->failed = 1;
        else
            m->conflicts++;
    }
    sqlite3_finalize(st);
    cJSON_free(w);
    cJSON_free(l);
    if (m->failed)
        log_error("cannot record a %s conflict on %s: %s", kind, t->name,
                  sqlite3_errmsg(m->srv->db));
}

struct change {
    const struct pol_table *t;
    int op;
    struct cs_value old[POL_MAXCOL], new_[POL_MAXCOL], cur[POL_MAXCOL];
};

static void read_change(struct change *c, sqlite3_changeset_iter *it, int with_current)
{
    for (int i = 0; i < c->t->ncol; i++) {
        sqlite3_value *v = NULL;
        rowval_from_sqlite(&c->old[i], c->op != SQLITE_INSERT &&
                           sqlite3changeset_old(it, i, &v) == SQLITE_OK ? v : NULL);
        v = NULL;
        rowval_from_sqlite(&c->new_[i], c->op != SQLITE_DELETE &&
                           sqlite3changeset_new(it, i, &v) == SQLITE_OK ? v : NULL);
        v = NULL;
        rowval_from_sqlite(&c->cur[i], with_current &&
                           sqlite3changeset_conflict(it, i, &v) == SQLITE_OK ? v : NULL);
    }
}

static int state_rank(const struct pol_table *t, const struct cs_value *v)
{
    const struct pol_state *s = v->type == CS_TEXT ? policy_state(t, v->p, v->n) : NULL;
    return s ? s->rank : -1;
}

/* For personal columns: two sealed values may differ in bytes yet hold the
 * same value (a rotation re-sealed one).  Compares what they hold. */
static int same_value(struct merge_ctx *m, const struct pol_table *t, int col,
                      const struct cs_value *pk, const struct cs_value *a, const struct cs_value *b)
{
    if (rowval_eq(a, b))
        return 1;
    uint32_t ka, kb;
    if (!((t->personal >> col) & 1) || a->type != CS_BLOB || b->type != CS_BLOB ||
        !pv_is_sealed(a->p, a->n, &ka) || !pv_is_sealed(b->p, b->n, &kb))
        return 0;
    uint8_t key[32], *pa = NULL, *pb = NULL;
    size_t na = 0, nb = 0;
    int same = 0;
    struct server *srv = m->srv;
    if (srv->pv.get(srv->pv.ctx, ka, key) == SYNC_OK &&
        pv_open(key, t->name, t->cols[col], pk->p, pk->n, a->p, a->n, &pa, &na) == SYNC_OK &&
        srv->pv.get(srv->pv.ctx, kb, key) == SYNC_OK &&
        pv_open(key, t->name, t->cols[col], pk->p, pk->n, b->p, b->n, &pb, &nb) == SYNC_OK)
        same = na == nb && sodium_memcmp(pa, pb, na) == 0;
    sodium_memzero(key, sizeof key);
    if (pa)
        sodium_memzero(pa, na);
    if (pb)
        sodium_memzero(pb, nb);
    es_free(pa);
    es_free(pb);
    return same;
}

/* Writes the merged columns with one UPDATE. */
static void write_merge(struct merge_ctx *m, const struct change *c, const int *take, int ntake)
{
    char sql[4096];
    size_t n = (size_t)snprintf(sql, sizeof sql, "UPDATE \"%s\" SET ", c->t->name);
    for (int k = 0; k < ntake && n < sizeof sql; k++)
        n += (size_t)snprintf(sql + n, sizeof sql - n, "%s\"%s\" = ?%d", k ? ", " : "",
                              c->t->cols[take[k]], k + 1);
    if (n < sizeof sql)
        snprintf(sql + n, sizeof sql - n, " WHERE id = ?%d", ntake + 1);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(m->srv->db, sql, -1, &st, NULL) != SQLITE_OK) {
        m->failed = 1;
        return;
    }
    for (int k = 0; k < ntake; k++)
        rowval_bind(st, k + 1, &c->new_[take[k]]);
    rowval_bind(st, ntake + 1, &c->old[c->t->id_col]);
    if (sqlite3_step(st) != SQLITE_DONE) {
        log_error("merge update on %s failed: %s", c->t->name, sqlite3_errmsg(m->srv->db));
        m->failed = 1;
    }
    sqlite3_finalize(st);
}

/* DATA conflict on an UPDATE of an lww or state row: merge column by column. */
static void merge_update(struct merge_ctx *m, struct change *c)
{
    const struct pol_table *t = c->t;
    int take[POL_MAXCOL], ntake = 0, lost = 0;
    int64_t in_hlc = c->new_[t->hlc_col].type == CS_INT ? c->new_[t->hlc_col].i
                   : c->old[t->hlc_col].i;
    int64_t cur_hlc = c->cur[t->hlc_col].type == CS_INT ? c->cur[t->hlc_col].i : 0;
    int incoming_wins = in_hlc > cur_hlc;
    cJSON *winner = cJSON_CreateObject(), *loser = cJSON_CreateObject();
    const char *kind = "lww";
    const struct cs_value *pk = &c->old[t->id_col];
    for (int i = 0; i < t->ncol; i++) {
        if (c->new_[i].type == CS_UNDEF || i == t->hlc_col ||
            same_value(m, t, i, pk, &c->cur[i], &c->new_[i]))
            continue;
        /* nobody else changed it (a re-sealed value is not a change) */
        int mine_only = same_value(m, t, i, pk, &c->cur[i], &c->old[i]);
        if (i == t->state_col) {
            if (state_rank(t, &c->new_[i]) > state_rank(t, &c->cur[i])) {
                take[ntake++] = i;
            } else {
                kind = "state_regression";
                json_put(m, winner, t, i, &c->cur[i]);
                json_put(m, loser, t, i, &c->new_[i]);
                lost++;
            }
            continue;
        }
        if (mine_only || incoming_wins) {
            take[ntake++] = i;
            if (!mine_only) {
                json_put(m, winner, t, i, &c->new_[i]);
                json_put(m, loser, t, i, &c->cur[i]);
                lost++;
            }
        } else {
            json_put(m, winner, t, i, &c->cur[i]);
            json_put(m, loser, t, i, &c->new_[i]);
            lost++;
        }
    }
    if (ntake > 0 && incoming_wins)
        take[ntake++] = t->hlc_col;
    if (ntake > 0)
        write_merge(m, c, take, ntake);
    if (lost > 0)
        merge_note(m, t, &c->old[t->id_col], &c->cur[t->scope_col], kind, winner, loser);
    cJSON_Delete(winner);
    cJSON_Delete(loser);
}

int merge_insert_sql(char *sql, size_t n, const char *table, int ncol)
{
    size_t k = (size_t)snprintf(sql, n, "INSERT INTO \"%s\" VALUES (", table);
    for (int i = 0; i < ncol && k < n; i++)
        k += (size_t)snprintf(sql + k, n - k, "%s?", i ? ", " : "");
    if (k < n)
        k += (size_t)snprintf(sql + k, n - k, ")");
    return k < n ? 0 : -1;
}

/* Which constraint an INSERT breaks.  The session module resets its
 * statement before calling us, so the extended code is gone; replay the
 * insert in a savepoint to learn it, then undo. */
static int probe_insert(struct merge_ctx *m, const struct change *c)
{
    char sql[1024];
    sqlite3_stmt *st = NULL;
    int ext = SQLITE_CONSTRAINT;
    if (merge_insert_sql(sql, sizeof sql, c->t->name, c->t->ncol) != 0 ||
        sqlite3_exec(m->srv->db, "SAVEPOINT probe", NULL, NULL, NULL) != SQLITE_OK)
        return ext;
    if (sqlite3_prepare_v2(m->srv->db, sql, -1, &st, NULL) == SQLITE_OK) {
        for (int i = 0; i < c->t->ncol; i++)
            rowval_bind(st, i + 1, &c->new_[i]);
        if (sqlite3_step(st) != SQLITE_DONE)
            ext = sqlite3_extended_errcode(m->srv->db);
    }
    sqlite3_finalize(st);
    sqlite3_exec(m->srv->db, "ROLLBACK TO probe; RELEASE probe", NULL, NULL, NULL);
    return ext;
}

static cJSON *row_json(struct merge_ctx *m, const struct change *c, const struct cs_value *vals)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        m->failed = 1;
    for (int i = 0; o && i < c->t->ncol; i++)
        if (vals[i].type != CS_UNDEF)
            json_put(m, o, c->t, i, &vals[i]);
    return o;
}

static int same_row(const struct change *c)
{
    for (int i = 0; i < c->t->ncol; i++)
        if (!rowval_eq(&c->new_[i], &c->cur[i]))
            return 0;
    return 1;
}

int merge_conflict(void *ctx, int type, sqlite3_changeset_iter *it)
{
    struct merge_ctx *m = ctx;
    const char *tab;
    int ncol, op, indirect;
    struct change c;
    m->calls++;
    if (type == SQLITE_CHANGESET_FOREIGN_KEY) {
        m->fk_failed = 1;
        return SQLITE_CHANGESET_ABORT;
    }
    sqlite3changeset_op(it, &tab, &ncol, &op, &indirect);
    c.t = policy_table(m->srv->pol, tab);
    c.op = op;
    if (c.t == NULL || ncol != c.t->ncol) {
        m->failed = 1;
        return SQLITE_CHANGESET_ABORT;
    }
    int with_current = type == SQLITE_CHANGESET_DATA || type == SQLITE_CHANGESET_CONFLICT;
    read_change(&c, it, with_current);
    const struct cs_value *pk = op == SQLITE_INSERT ? &c.new_[c.t->id_col] : &c.old[c.t->id_col];
    const struct cs_value *scopev = op == SQLITE_INSERT ? &c.new_[c.t->scope_col]
                                  : with_current ? &c.cur[c.t->scope_col] : NULL;
    cJSON *a = NULL, *b = NULL;
    switch (type) {
    case SQLITE_CHANGESET_DATA:
        if (op == SQLITE_UPDATE && c.t->kind != POL_APPEND) {
            merge_update(m, &c);
            break;
        }
        merge_note(m, c.t, pk, scopev, "not_applied", a = row_json(m, &c, c.cur), b = row_json(m, &c, c.old));
        break;
    case SQLITE_CHANGESET_NOTFOUND:
        merge_note(m, c.t, pk, scopev, "not_found", NULL,
               b = row_json(m, &c, op == SQLITE_DELETE ? c.old : c.new_));
        break;
    case SQLITE_CHANGESET_CONFLICT:
        /* push.c authorised the insert's own scope; the row already here
         * must be in the device's scope too, or its values would leak into
         * a conflict record the device's supervisors can read. */
        if (!scope_contains(m->srv, m->dev, c.t, &c.cur[c.t->scope_col])) {
            m->forbidden = 1;
            return SQLITE_CHANGESET_ABORT;
        }
        if (!same_row(&c))
            merge_note(m, c.t, pk, scopev, "insert_exists", a = row_json(m, &c, c.cur),
                   b = row_json(m, &c, c.new_));
        break;
    case SQLITE_CHANGESET_CONSTRAINT: {
        int ext = sqlite3_extended_errcode(m->srv->db);
        if (ext != SQLITE_CONSTRAINT_TRIGGER && op == SQLITE_INSERT)
            ext = probe_insert(m, &c);
        const char *kind = ext == SQLITE_CONSTRAINT_TRIGGER ? "state_regression"
                         : ext == SQLITE_CONSTRAINT_UNIQUE && op == SQLITE_INSERT
                           ? "duplicate_claim" : "constraint";
        merge_note(m, c.t, pk, scopev, kind, NULL, b = row_json(m, &c, op == SQLITE_DELETE ? c.old : c.new_));
        break;
    }
    default:
        break;
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
    return m->failed ? SQLITE_CHANGESET_ABORT : SQLITE_CHANGESET_OMIT;
}
