/* push.c - apply a device's uploaded batch to the server database.
 *
 * Input is a decrypted batch (format: docs/PROTOCOL.md, "push payload"):
 * outbox entries, each a local changeset and a forward changeset.  One
 * transaction per batch; merge.c rules on each conflict.  Nothing here knows
 * about HTTP.  Order matters and is the design: every structural check runs
 * before any sqlite3changeset_* call sees the bytes, and every change is
 * authorised against the rows as they are on the server, never against the
 * old values the device claims.
 */
#include "push.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <cjson/cJSON.h>

#include "audit.h"
#include "changeset.h"
#include "envelope.h"
#include "eldersync.h"
#include "log.h"
#include "http.h"
#include "keyring.h"
#include "pcrypt.h"
#include "merge.h"
#include "hlc.h"
#include "rowval.h"
#include "schema.h"
#include "scope.h"
#include "store.h"
#include "util.h"

#define MAX_ENTRIES        10000
#define MAX_CHANGES        200000
#define MAX_VALUE_BYTES    (1u << 20)

struct entry {
    int64_t        id;
    const uint8_t *cs[2];       /* local part, forward part */
    size_t         len[2];
};

struct batch {
    int      schema_version;
    int64_t  device_ms;
    size_t   n;
    struct entry *e;
};

static int parse_batch(const uint8_t *p, size_t len, struct batch *b, struct outcome *o)
{
    memset(b, 0, sizeof *b);
    if (len < 16)
        return outcome_set(o, SYNC_EPROTO, "bad_payload", "batch shorter than its header");
    b->schema_version = (int)be32_get(p);
    b->device_ms = (int64_t)be64_get(p + 4);
    uint32_t n = be32_get(p + 12);
    if (n == 0 || n > MAX_ENTRIES)
        return outcome_set(o, n ? SYNC_ETOOBIG : SYNC_EPROTO, "bad_payload",
                           "a batch holds 1 to %d entries, not %u", MAX_ENTRIES, n);
    b->e = es_calloc(n, sizeof *b->e);
    if (b->e == NULL)
        return outcome_set(o, SYNC_ENOMEM, "internal", "out of memory");
    size_t pos = 16;
    for (uint32_t i = 0; i < n; i++) {
        if (len - pos < 8)
            goto short_;
        b->e[i].id = (int64_t)be64_get(p + pos);
        pos += 8;
        for (int k = 0; k < 2; k++) {
            if (len - pos < 4)
                goto short_;
            size_t l = be32_get(p + pos);
            pos += 4;
            if (l > len - pos)
                goto short_;
            b->e[i].cs[k] = p + pos;
            b->e[i].len[k] = l;
            pos += l;
        }
    }
    if (pos != len)
        return outcome_set(o, SYNC_EPROTO, "bad_payload", "%zu bytes after the last entry",
                           len - pos);
    b->n = n;
    return SYNC_OK;
short_:
    return outcome_set(o, SYNC_EPROTO, "bad_payload", "batch is truncated");
}

/* Table lookup for the validator that also notices the server's own
 * tables (devices, batches, audit_log, ...): writing those is forbidden,
 * not merely unknown. */
struct lookup_ctx {
    const struct server *srv;
    int                  server_only;
    char                 name[64];
};

static int lookup_table(void *ctx, const char *name, struct cs_table_info *info)
{
    struct lookup_ctx *l = ctx;
    if (policy_cs_lookup(l->srv->pol, name, info) == 0)
        return 0;
    for (int i = 0; i < l->srv->nserver_tables; i++) {
        if (strcmp(l->srv->server_tables[i], name) == 0) {
            l->server_only = 1;
            snprintf(l->name, sizeof l->name, "%s", name);
        }
    }
    return -1;
}

static int validate_all(struct server *srv, const struct batch *b, size_t *nchanges,
                        struct outcome *o)
{
    struct cs_limits lim = { MAX_CHANGES, 0, MAX_VALUE_BYTES, POL_MAXCOL };
    *nchanges = 0;
    for (size_t i = 0; i < b->n; i++) {
        for (int k = 0; k < 2; k++) {
            struct cs_error e;
            struct lookup_ctx lc = { srv, 0, "" };
            size_t nc = 0;
            int rc = cs_validate(b->e[i].cs[k], b->e[i].len[k], lookup_table, &lc, &lim, &nc, &e);
            if (rc != SYNC_OK && lc.server_only) {
                o->entry = b->e[i].id;
                return outcome_set(o, SYNC_EFORBIDDEN, "forbidden_table",
                                   "%s belongs to the server; no tablet may write it", lc.name);
            }
            if (rc != SYNC_OK) {
                o->entry = b->e[i].id;
                const char *name = rc == SYNC_ETOOBIG ? "too_large"
                                 : rc != SYNC_ESCHEMA ? "bad_changeset"
                                 : strstr(e.msg, "unknown table") ? "unknown_table"
                                 : strstr(e.msg, "columns") ? "column_count" : "schema_mismatch";
                return outcome_set(o, rc, name, "entry %lld: %s", (long long)b->e[i].id, e.msg);
            }
            *nchanges += nc;
            if (*nchanges > MAX_CHANGES)
                return outcome_set(o, SYNC_ETOOBIG, "too_large", "more than %d changes in one batch",
                                   MAX_CHANGES);
        }
    }
    return SYNC_OK;
}

/* The scope value of table t's row pk as it is on the server, copied into
 * buf; 0 if the row exists, -1 if not. */
static int current_scope(struct server *srv, const struct pol_table *t, const struct cs_value *pk,
                         uint8_t buf[16], struct cs_value *out)
{
    char sql[160];
    int rc = -1;
    snprintf(sql, sizeof sql, "SELECT \"%s\" FROM \"%s\" WHERE id = ?1", t->cols[t->scope_col],
             t->name);
    sqlite3_stmt *st = store_stmt(srv, sql);
    if (st == NULL)
        return -1;
    rowval_bind(st, 1, pk);
    if (sqlite3_step(st) == SQLITE_ROW) {
        rowval_column(out, st, 0);
        if (out->type == CS_BLOB || out->type == CS_TEXT) {
            size_t n = out->n < 16 ? out->n : 16;    /* ids are 16 bytes */
            memcpy(buf, out->p, n);
            out->p = buf;
            out->n = n;
        }
        rc = 0;
    }
    sqlite3_reset(st);
    return rc;
}

static const char *op_verb(int op)
{
    return op == CS_INSERT ? "insert into" : op == CS_UPDATE ? "update" : "delete from";
}

static const char *scope_noun(const struct pol_table *t)
{
    return t->scope == SCOPE_HALL ? "dining hall" : "township";
}

/* One batch's authorisation state: the rows already found visible, so a
 * lunch batch of 60 meals looks its hall up once. */
#define REF_SLOTS 256
struct authz {
    struct server       *srv;
    const struct device *dev;
    int64_t              active_key;   /* newest data key id */
    struct { uint8_t id[16]; int tbl; } seen[REF_SLOTS];   /* tbl 0: empty */
};

/* Rows a change points at (a meal's senior, a visit's senior, an item's
 * case) must be rows the device may see: a tablet cannot spend another
 * township's campaign cash or attach work to another township's case. */
static int authorise_refs(struct authz *az, const struct pol_table *t, const struct cs_iter *it,
                          struct outcome *o)
{
    struct server *srv = az->srv;
    for (int i = 0; i < t->ncol; i++) {
        const struct cs_value *v = &it->new_[i];
        if (t->ref[i] < 0 || v->type != CS_BLOB || v->n != 16)
            continue;
        unsigned slot = (unsigned)(v->p[15] ^ v->p[13] << 1 ^ v->p[11] << 2) % REF_SLOTS;
        if (az->seen[slot].tbl == t->ref[i] + 1 && memcmp(az->seen[slot].id, v->p, 16) == 0)
            continue;
        const struct pol_table *r = &srv->pol->tables[t->ref[i]];
        uint8_t buf[16];
        struct cs_value rs;
        if (current_scope(srv, r, v, buf, &rs) != 0)
            continue;                     /* dangling: the foreign key refuses it */
        if (!scope_visible(srv, az->dev, r, &rs))
            return outcome_set(o, SYNC_EFORBIDDEN, "out_of_scope",
                               "%s.%s refers to a %s row of another %s", t->name, t->cols[i],
                               r->name, scope_noun(r));
        memcpy(az->seen[slot].id, v->p, 16);
        az->seen[slot].tbl = t->ref[i] + 1;
    }
    return SYNC_OK;
}

/* Checks one change against the device's role and scope, using the rows as
 * they are on the server, never the old values the change claims. */
static int authorise_change(struct authz *az, const struct cs_iter *it, struct outcome *o)
{
    struct server *srv = az->srv;
    const struct device *dev = az->dev;
    const struct pol_table *t = policy_table(srv->pol, it->table);
    unsigned roles = it->op == CS_INSERT ? t->insert_roles
                   : it->op == CS_UPDATE ? t->update_roles : t->delete_roles;
    if (!(roles & dev->role))
        return outcome_set(o, SYNC_EFORBIDDEN, "forbidden_table", "role %s may not %s %s",
                           role_name(dev->role), op_verb(it->op), t->name);
    const struct cs_value *pk = it->op == CS_INSERT ? &it->new_[t->id_col] : &it->old[t->id_col];
    if (pk->type != CS_BLOB || pk->n != 16)
        return outcome_set(o, SYNC_EPROTO, "bad_id", "%s: ids are 16-byte blobs", t->name);
    /* An insert over an existing row is checked when it conflicts (merge.c),
     * which spares every new row a lookup. */
    uint8_t buf[16];
    struct cs_value cur;
    if (it->op != CS_INSERT && current_scope(srv, t, pk, buf, &cur) == 0 &&
        !scope_contains(srv, dev, t, &cur))
        return outcome_set(o, SYNC_EFORBIDDEN, "out_of_scope",
                           "%s: the row belongs to another %s", t->name, scope_noun(t));
    const struct cs_value *next = it->op == CS_DELETE ? NULL : &it->new_[t->scope_col];
    if (next && next->type != CS_UNDEF && !scope_contains(srv, dev, t, next))
        return outcome_set(o, SYNC_EFORBIDDEN, "out_of_scope",
                           "%s: %s would put the row outside this device's %s", t->name,
                           t->cols[t->scope_col], scope_noun(t));
    for (int i = 0; it->op != CS_DELETE && i < t->ncol; i++) {
        const struct cs_value *v = &it->new_[i];
        if (((t->protected_ >> i) & 1) && v->type != CS_UNDEF &&
            (it->op == CS_UPDATE || v->type != CS_NULL))
            return outcome_set(o, SYNC_EFORBIDDEN, "protected_column",
                               "%s.%s is set by the county, not by a tablet", t->name, t->cols[i]);
        if (i == t->state_col && v->type != CS_UNDEF) {
            const struct pol_state *s = v->type == CS_TEXT ? policy_state(t, v->p, v->n) : NULL;
            if (s == NULL)
                return outcome_set(o, SYNC_EFORBIDDEN, "illegal_state", "%s.%s: unknown state",
                                   t->name, t->cols[i]);
            if (!(s->roles & dev->role))
                return outcome_set(o, SYNC_EFORBIDDEN, "illegal_state",
                                   "role %s may not set %s.%s to '%s'", role_name(dev->role),
                                   t->name, t->cols[i], s->value);
        }
    }
    int rc = it->op == CS_DELETE ? SYNC_OK : authorise_refs(az, t, it, o);
    /* Personal data rests sealed: a tablet sends it sealed, under a key the
     * county issued. */
    for (int i = 0; rc == SYNC_OK && it->op != CS_DELETE && i < t->ncol; i++) {
        const struct cs_value *v = &it->new_[i];
        uint32_t kid;
        if (((t->personal >> i) & 1) && v->type != CS_UNDEF && v->type != CS_NULL &&
            (v->type != CS_BLOB || !pv_is_sealed(v->p, v->n, &kid) || kid == 0 ||
             (int64_t)kid > az->active_key))
            rc = outcome_set(o, SYNC_ESCHEMA, "unsealed_personal",
                             "%s.%s holds personal data and must arrive sealed", t->name,
                             t->cols[i]);
    }
    return rc;
}

/* New versions for every row a changeset touched.  Without conflicts an
 * insert created exactly the row it carries, so its scope is known; after
 * a conflict (or for updates) the row is read back. */
/* The same person registered twice (in two townships, say, while both
 * tablets were offline) shows as two rows with one blind index: record it
 * for a supervisor, without anyone reading the ID number. */
static void check_duplicates(struct server *srv, struct merge_ctx *m, const struct pol_table *t,
                             const struct cs_iter *it)
{
    const struct cs_value *pk = it->op == CS_INSERT ? &it->new_[t->id_col] : &it->old[t->id_col];
    for (int i = 0; i < t->ncol; i++) {
        int b = t->bidx[i];
        if (b < 0 || it->new_[b].type != CS_BLOB)
            continue;
        char sql[192];
        snprintf(sql, sizeof sql, "SELECT id, \"%s\" FROM \"%s\" WHERE \"%s\" = ?1 AND id != ?2 "
                 "LIMIT 1", t->cols[t->scope_col], t->name, t->cols[b]);
        sqlite3_stmt *st = store_stmt(srv, sql);
        if (st == NULL)
            continue;
        rowval_bind(st, 1, &it->new_[b]);
        rowval_bind(st, 2, pk);
        if (sqlite3_step(st) == SQLITE_ROW) {
            struct cs_value other;
            rowval_column(&other, st, 0);
            cJSON *w = cJSON_CreateObject(), *l = cJSON_CreateObject();
            cJSON *wi = rowval_json(&other), *li = rowval_json(pk);
            int ok = w && l && wi && li;
            if (ok && cJSON_AddItemToObject(w, "id", wi))
                wi = NULL;
            else
                ok = 0;
            if (ok && cJSON_AddItemToObject(l, "id", li))
                li = NULL;
            else
                ok = 0;
            if (ok && cJSON_AddStringToObject(l, "column", t->cols[i]) == NULL)
                ok = 0;
            cJSON_Delete(wi);
            cJSON_Delete(li);
            if (ok)
                merge_note(m, t, pk, it->op == CS_INSERT ? &it->new_[t->scope_col] : NULL,
                           "duplicate_person", w, l);
            else
                m->failed = 1;               /* out of memory: fail, do not lose the note */
            cJSON_Delete(w);
            cJSON_Delete(l);
        }
        sqlite3_reset(st);
    }
}

static int touch_part(struct server *srv, struct merge_ctx *m, const uint8_t *cs, size_t len,
                      int clean, struct outcome *o)
{
    struct cs_iter it;
    struct store_part part = {0};
    int more, rc = SYNC_OK;
    cs_iter_init(&it, cs, len);
    while (rc == SYNC_OK && (more = cs_iter_next(&it)) == 1) {
        const struct pol_table *t = policy_table(srv->pol, it.table);
        int ins = it.op == CS_INSERT;
        rc = store_touch(srv, t, ins ? &it.new_[t->id_col] : &it.old[t->id_col],
                         ins && clean ? &it.new_[t->scope_col] : NULL, &part);
        if (rc == SYNC_OK && it.op != CS_DELETE)
            check_duplicates(srv, m, t, &it);
    }
    if (rc == SYNC_OK && m->failed)
        rc = SYNC_EIO;
    return rc == SYNC_OK ? SYNC_OK : outcome_set(o, rc, "storage", "cannot record row versions");
}

/* Authorises every change of one changeset against the rows as they are
 * now; adds its changes to *nchanges and notes a table whose triggers
 * guard a state column in *guarded. */
static int authorise_part(struct authz *az, const uint8_t *cs, size_t len, int64_t *max_hlc,
                          long *nchanges, int *guarded, struct outcome *o)
{
    struct server *srv = az->srv;
    struct cs_iter it;
    int more;
    cs_iter_init(&it, cs, len);
    while ((more = cs_iter_next(&it)) == 1) {
        int rc = authorise_change(az, &it, o);
        if (rc != SYNC_OK)
            return rc;
        const struct pol_table *t = policy_table(srv->pol, it.table);
        if (t->hlc_col >= 0 && it.new_[t->hlc_col].type == CS_INT && it.new_[t->hlc_col].i > *max_hlc)
            *max_hlc = it.new_[t->hlc_col].i;
        *guarded |= t->state_col >= 0;
        (*nchanges)++;
    }
    if (more < 0)
        return outcome_set(o, SYNC_EPROTO, "bad_changeset", "changeset walk failed");
    return SYNC_OK;
}

/* Most pushes carry new rows only (meals, visits, handouts).  Those are
 * inserted here with our own cached statements: without a failing insert
 * there is no conflict for the merge policies to decide.  The session
 * module's apply prepares its statements on every call and runs PRAGMA
 * defer_foreign_keys twice, which expires every statement prepared on the
 * connection, so ours were compiled again after every push (17 % of the
 * server's CPU in BENCH=pushes).  If any insert fails (the id is already
 * here, a constraint, a foreign key not satisfied in this order) the
 * attempt is rolled back and the changeset goes through the session apply
 * and merge.c as before.  Returns 1 when applied, 0 when nothing was
 * changed (use the session apply), or SYNC_EIO. */
static int insert_all(struct server *srv, const uint8_t *cs, size_t len)
{
    struct cs_iter it;
    int more;
    cs_iter_init(&it, cs, len);
    while ((more = cs_iter_next(&it)) == 1)
        if (it.op != CS_INSERT)
            return 0;
    if (more < 0 || store_run(srv, "SAVEPOINT inserts") != SYNC_OK)
        return more < 0 ? 0 : SYNC_EIO;
    char sql[64 + CS_MAX_NAME + 3 * CS_MAX_COLUMNS];
    const char *table = NULL;
    int ok = 1;
    cs_iter_init(&it, cs, len);
    while (ok && (more = cs_iter_next(&it)) == 1) {
        if (it.table != table) {            /* a new table section */
            table = it.table;
            if (merge_insert_sql(sql, sizeof sql, table, it.ncol) != 0)
                break;                      /* cannot happen: ncol and name are capped */
        }
        sqlite3_stmt *st = store_stmt(srv, sql);
        if (st == NULL)
            break;
        for (int i = 0; i < it.ncol; i++)
            rowval_bind(st, i + 1, &it.new_[i]);
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_reset(st);
    }
    if (ok && more == 0)
        return store_run(srv, "RELEASE inserts") == SYNC_OK ? 1 : SYNC_EIO;
    if (store_run(srv, "ROLLBACK TO inserts") != SYNC_OK ||
        store_run(srv, "RELEASE inserts") != SYNC_OK)
        return SYNC_EIO;
    return 0;
}

/* Applies an authorised changeset of nchanges changes with the merge
 * policies, then records the versions of the rows it touched. */
static int apply_cs(struct server *srv, const uint8_t *cs, size_t len, long nchanges,
                    int guarded, struct merge_ctx *m, struct outcome *o)
{
    long calls = m->calls;
    srv->track = 0;               /* versions are written below, not by triggers */
    /* With tracking off the row-version triggers do nothing, yet SQLite
     * still runs each one's program per row (about a tenth of an insert).
     * A large changeset without state columns is applied with triggers off
     * on this connection; turning them off or on again expires the prepared
     * statements, which only pays for large changesets. */
    int triggers_off = nchanges >= 500 && !guarded;
    if (triggers_off)
        sqlite3_db_config(srv->db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, (int *)NULL);
    int rc = insert_all(srv, cs, len);
    if (rc == 0)
        rc = sqlite3changeset_apply_v2(srv->db, (int)len, (void *)cs, NULL, merge_conflict, m,
                                       NULL, NULL, SQLITE_CHANGESETAPPLY_NOSAVEPOINT);
    else
        rc = rc == 1 ? SQLITE_OK : SQLITE_ERROR;
    if (triggers_off)
        sqlite3_db_config(srv->db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 1, (int *)NULL);
    srv->track = 1;
    if (m->forbidden)
        return outcome_set(o, SYNC_EFORBIDDEN, "out_of_scope",
                           "an inserted id belongs to a row of another township or hall");
    if (m->fk_failed)
        return outcome_set(o, SYNC_ESCHEMA, "foreign_key",
                           "a row refers to a senior, hall, case or visit the server does not have");
    if (rc != SQLITE_OK || m->failed)
        return outcome_set(o, SYNC_EIO, "storage", "applying the batch failed");
    return touch_part(srv, m, cs, len, m->calls == calls, o);
}

/* Applies every entry of a batch, in order, as one changeset.  Each
 * sqlite3changeset_apply_v2 call prepares its own statements and, through
 * the PRAGMA defer_foreign_keys it runs, expires every statement prepared
 * on the connection, so a lunch of 60 one-meal entries applied one by one
 * paid that 60 times.  The entries' changesets are authorised one by one
 * (a refusal names its entry), then concatenated: a changeset is a list of
 * table sections, so the bytes of several in a row are one changeset whose
 * changes apply in the same order.  If the merge refuses a change (an id of
 * another scope, a dangling foreign key), the combined apply is rolled
 * back and the entries are applied one by one to name the entry. */
static int apply_batch(struct authz *az, const struct batch *b, struct merge_ctx *m,
                       int64_t *max_hlc, struct outcome *o)
{
    struct server *srv = az->srv;
    long total = 0;
    int guarded = 0, entries = 0, rc = SYNC_OK;
    int64_t entry = -1;                   /* the one entry, if only one has changes */
    struct buf all = {0};
    for (size_t i = 0; rc == SYNC_OK && i < b->n; i++) {
        if (b->e[i].len[0] + b->e[i].len[1] > 0) {
            entries++;
            entry = b->e[i].id;
        }
        for (int k = 0; rc == SYNC_OK && k < 2; k++) {
            if (b->e[i].len[k] == 0)
                continue;
            rc = authorise_part(az, b->e[i].cs[k], b->e[i].len[k], max_hlc, &total, &guarded, o);
            if (rc != SYNC_OK) {
                o->entry = b->e[i].id;
                break;
            }
            buf_append(&all, b->e[i].cs[k], b->e[i].len[k]);
        }
    }
    if (rc == SYNC_OK && all.oom)
        rc = outcome_set(o, SYNC_ENOMEM, "internal", "out of memory");
    if (rc != SYNC_OK || entries == 0) {
        buf_free(&all);
        return rc;
    }
    if (entries == 1) {                   /* the entry is known: no savepoint */
        rc = apply_cs(srv, all.p, all.len, total, guarded, m, o);
        buf_free(&all);
        if (rc != SYNC_OK)
            o->entry = entry;
        return rc;
    }
    /* A savepoint makes SQLite copy each page the apply changes once more
     * (its sub-journal), so only batches of several entries take one. */
    struct merge_ctx m0 = *m;
    struct outcome o0 = *o;
    int64_t vseq = srv->vseq;
    if (store_run(srv, "SAVEPOINT entries") != SYNC_OK) {
        buf_free(&all);
        return outcome_set(o, SYNC_EIO, "storage", "cannot start applying the batch");
    }
    rc = apply_cs(srv, all.p, all.len, total, guarded, m, o);
    buf_free(&all);
    int by_entry = (m->forbidden || m->fk_failed) && !m->failed &&
                   !sqlite3_get_autocommit(srv->db);
    if (by_entry) {
        if (store_run(srv, "ROLLBACK TO entries") != SYNC_OK)
            by_entry = 0;                  /* rc stands: the batch fails */
        srv->vseq = vseq;
    }
    if (!sqlite3_get_autocommit(srv->db) && store_run(srv, "RELEASE entries") != SYNC_OK &&
        rc == SYNC_OK)
        rc = outcome_set(o, SYNC_EIO, "storage", "cannot finish applying the batch");
    if (!by_entry)
        return rc;
    *m = m0;
    *o = o0;
    rc = SYNC_OK;
    for (size_t i = 0; rc == SYNC_OK && i < b->n; i++) {
        for (int k = 0; rc == SYNC_OK && k < 2; k++) {
            long n = 0;
            int g = 0;
            if (b->e[i].len[k] == 0)
                continue;
            rc = authorise_part(az, b->e[i].cs[k], b->e[i].len[k], max_hlc, &n, &g, o);
            if (rc == SYNC_OK)
                rc = apply_cs(srv, b->e[i].cs[k], b->e[i].len[k], n, g, m, o);
            if (rc != SYNC_OK)
                o->entry = b->e[i].id;
        }
    }
    return rc;
}

/* Clamps clocks that run too far ahead of the server's. */
static int clamp_hlcs(struct server *srv, int64_t limit, long *clamped)
{
    *clamped = 0;
    for (int i = 0; i < srv->pol->ntables; i++) {
        const struct pol_table *t = &srv->pol->tables[i];
        if (t->hlc_col < 0)
            continue;
        char sql[160];
        sqlite3_stmt *st = NULL;
        snprintf(sql, sizeof sql, "UPDATE \"%s\" SET hlc = ?1 WHERE hlc > ?1", t->name);
        if (sqlite3_prepare_v2(srv->db, sql, -1, &st, NULL) != SQLITE_OK)
            return SYNC_EIO;
        sqlite3_bind_int64(st, 1, limit);
        int ok = sqlite3_step(st) == SQLITE_DONE;
        *clamped += sqlite3_changes(srv->db);
        sqlite3_finalize(st);
        if (!ok)
            return SYNC_EIO;
    }
    return SYNC_OK;
}

/* Replay check inside the transaction.  Returns 1 if the batch is new, 0 if
 * it was applied before (*ack is the stored acknowledgement), or an error. */
static int check_seq(struct server *srv, const struct device *dev, uint64_t seq,
                     const uint8_t hash[32], char **ack, struct outcome *o)
{
    sqlite3_stmt *st = store_stmt(srv, "SELECT last_batch_seq FROM devices WHERE id = ?1");
    int64_t last = 0;
    if (st == NULL)
        return outcome_set(o, SYNC_EIO, "storage", "cannot read the device");
    sqlite3_bind_blob(st, 1, dev->id, 16, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        last = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (step != SQLITE_ROW)                 /* the device row exists: an error */
        return outcome_set(o, SYNC_EIO, "storage", "cannot read the device");
    if (seq == (uint64_t)last + 1)
        return 1;
    o->expected_seq = last + 1;
    if (seq > (uint64_t)last + 1)
        return outcome_set(o, SYNC_ECONFLICT, "seq_gap",
                           "batch_seq %llu skips ahead; the server expects %lld",
                           (unsigned long long)seq, (long long)last + 1);
    st = store_stmt(srv, "SELECT content_hash, ack FROM batches WHERE device_id = ?1 "
                         "AND batch_seq = ?2");
    if (st == NULL)
        return outcome_set(o, SYNC_EIO, "storage", "cannot read batches");
    sqlite3_bind_blob(st, 1, dev->id, 16, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (int64_t)seq);
    int rc;
    step = sqlite3_step(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        sqlite3_finalize(st);
        return outcome_set(o, SYNC_EIO, "storage", "cannot read batches");
    }
    if (step == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32 &&
        sodium_memcmp(sqlite3_column_blob(st, 0), hash, 32) == 0) {
        const char *stored = (const char *)sqlite3_column_text(st, 1);
        *ack = stored ? es_strdup(stored) : NULL;    /* NULL text: out of memory */
        rc = *ack ? 0 : outcome_set(o, SYNC_ENOMEM, "internal", "out of memory");
    } else {
        rc = outcome_set(o, SYNC_ECONFLICT, "seq_old",
                         "batch_seq %llu was already used for different content; the server "
                         "expects %lld", (unsigned long long)seq, (long long)last + 1);
    }
    sqlite3_reset(st);
    return rc;
}

static int record_batch(struct server *srv, const struct device *dev, uint64_t seq,
                        const uint8_t hash[32], const uint8_t *raw, size_t rawlen,
                        size_t nchanges, const char *ack, const struct batch *b, long clamped)
{
    int64_t now = now_ms();
    int rc = SYNC_EIO;
    sqlite3_stmt *st = store_stmt(srv, "INSERT INTO batches (device_id, batch_seq, content_hash, "
                                       "received_at, vseq, nchanges, ack, raw, signature) VALUES "
                                       "(?1, ?2, ?3, ?4, ?8, ?5, ?6, ?7, ?9)");
    if (st) {
        sqlite3_bind_blob(st, 1, dev->id, 16, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)seq);
        sqlite3_bind_blob(st, 3, hash, 32, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, now);
        sqlite3_bind_int64(st, 5, (int64_t)nchanges);
        sqlite3_bind_text(st, 6, ack, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 7, raw, (int)(rawlen - ENV_SIGBYTES), SQLITE_STATIC);
        sqlite3_bind_int64(st, 8, srv->vseq);
        sqlite3_bind_blob(st, 9, raw + rawlen - ENV_SIGBYTES, ENV_SIGBYTES, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SYNC_OK : SYNC_EIO;
        sqlite3_reset(st);
    }
    if (rc != SYNC_OK)
        return rc;
    rc = SYNC_EIO;
    st = store_stmt(srv, "UPDATE devices SET last_batch_seq = ?2, last_seen = ?3, "
                         "clock_skew_ms = ?4, schema_version = ?5, "
                         "clamped_hlcs = clamped_hlcs + ?6 WHERE id = ?1");
    if (st) {
        sqlite3_bind_blob(st, 1, dev->id, 16, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)seq);
        sqlite3_bind_int64(st, 3, now);
        /* The device's clock is its own claim: keep the skew, saturated. */
        int64_t skew;
        if (__builtin_sub_overflow(b->device_ms, now, &skew))
            skew = b->device_ms < 0 ? INT64_MIN : INT64_MAX;
        sqlite3_bind_int64(st, 4, skew);
        sqlite3_bind_int(st, 5, b->schema_version);
        sqlite3_bind_int64(st, 6, clamped);
        rc = sqlite3_step(st) == SQLITE_DONE ? SYNC_OK : SYNC_EIO;
        sqlite3_reset(st);
    }
    return rc;
}

/* The refusal's record and audit entry, inside the caller's transaction. */
static int record_rejection_tx(struct server *srv, const struct device *dev, uint64_t seq,
                               const struct outcome *o, int http)
{
    sqlite3_stmt *st = store_stmt(srv, "INSERT INTO rejections (at, device_id, batch_seq, "
                                       "http_status, error, detail, entry_id) VALUES "
                                       "(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    if (st == NULL)
        return SYNC_EIO;
    sqlite3_bind_int64(st, 1, now_ms());
    sqlite3_bind_blob(st, 2, dev->id, 16, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (int64_t)seq);
    sqlite3_bind_int(st, 4, http);
    sqlite3_bind_text(st, 5, o->error, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, o->detail, -1, SQLITE_STATIC);
    if (o->entry >= 0)
        sqlite3_bind_int64(st, 7, o->entry);
    int rc = sqlite3_step(st) == SQLITE_DONE ? SYNC_OK : SYNC_EIO;
    sqlite3_reset(st);
    char detail[160];
    snprintf(detail, sizeof detail, "{\"batch_seq\":%llu,\"http\":%d,\"error\":\"%s\",\"entry\":%lld}",
             (unsigned long long)seq, http, o->error, (long long)o->entry);
    if (rc == SYNC_OK)
        rc = audit_append(srv, "rejection", dev->id, "device", detail);
    return rc;
}

static void record_rejection(struct server *srv, const struct device *dev, uint64_t seq,
                             const struct outcome *o, int http)
{
    if (store_begin(srv) != SYNC_OK)
        return;
    store_end(srv, record_rejection_tx(srv, dev, seq, o, http));
}

static char *make_ack(uint64_t seq, size_t entries, size_t changes, long conflicts)
{
    char buf[160];
    snprintf(buf, sizeof buf, "{\"batch_seq\":%llu,\"entries\":%zu,\"changes\":%zu,"
             "\"conflicts\":%ld}", (unsigned long long)seq, entries, changes, conflicts);
    return es_strdup(buf);
}

/* Everything between BEGIN and COMMIT. */
static int push_tx(struct server *srv, const struct device *dev, uint64_t seq,
                   const uint8_t *pt, size_t ptlen, const uint8_t hash[32],
                   const struct batch *b, size_t nchanges, char **ack, struct outcome *o)
{
    int rc = check_seq(srv, dev, seq, hash, ack, o);
    if (rc <= 0)
        return rc;
    struct merge_ctx m = { srv, dev, (int64_t)seq, 0, 0, 0, 0, 0 };
    int64_t max_hlc = 0;
    struct authz *az = es_calloc(1, sizeof *az);
    if (az == NULL)
        return outcome_set(o, SYNC_ENOMEM, "internal", "out of memory");
    az->srv = srv;
    az->dev = dev;
    az->active_key = keyring_active(srv);
    if (az->active_key < 0) {
        es_free(az);
        return outcome_set(o, SYNC_EIO, "storage", "cannot read the keyring");
    }
    rc = apply_batch(az, b, &m, &max_hlc, o);
    es_free(az);
    if (rc != SYNC_OK)
        return rc;
    long clamped = 0;
    int64_t limit = (int64_t)hlc_make(now_ms() + srv->cfg.max_clock_ahead_ms, 0, 0);
    if (max_hlc > limit && clamp_hlcs(srv, limit, &clamped) != SYNC_OK)
        return outcome_set(o, SYNC_EIO, "storage", "cannot clamp clocks");
    if (clamped > 0)
        log_warn("device %02x%02x%02x%02x...: %ld clocks ahead of the server clamped",
                 dev->id[0], dev->id[1], dev->id[2], dev->id[3], clamped);
    *ack = make_ack(seq, b->n, nchanges, m.conflicts);
    if (*ack == NULL)
        return outcome_set(o, SYNC_ENOMEM, "internal", "out of memory");
    rc = record_batch(srv, dev, seq, hash, pt, ptlen, nchanges, *ack, b, clamped);
    if (rc == SYNC_OK) {
        char detail[400], hhex[65], shex[129];
        hex_encode(hhex, hash, 32);
        hex_encode(shex, pt + ptlen - ENV_SIGBYTES, ENV_SIGBYTES);
        snprintf(detail, sizeof detail, "{\"batch_seq\":%llu,\"entries\":%zu,\"changes\":%zu,"
                 "\"conflicts\":%ld,\"hash\":\"%s\",\"signature\":\"%s\"}",
                 (unsigned long long)seq, b->n, nchanges, m.conflicts, hhex, shex);
        rc = audit_append(srv, "batch", dev->id, "device", detail);
    }
    if (rc != SYNC_OK)
        return outcome_set(o, rc, "storage", "cannot record the batch");
    return SYNC_OK;
}

/* One batch as a job of a group commit (store.c). */
struct push_job {
    struct store_job     job;
    const struct device *dev;
    uint64_t             seq;
    const uint8_t       *pt;
    size_t               ptlen;
    const uint8_t       *hash;
    const struct batch  *b;
    size_t               nchanges;
    char               **ack;
    struct outcome      *o;
    int                  recorded;     /* the refusal is recorded */
};

static int push_job_run(struct server *srv, void *arg)
{
    struct push_job *p = arg;
    int rc = push_tx(srv, p->dev, p->seq, p->pt, p->ptlen, p->hash, p->b, p->nchanges, p->ack,
                     p->o);
    if (rc != SYNC_OK) {
        es_free(*p->ack);
        *p->ack = NULL;
    }
    return rc;
}

/* A refused batch was rolled back alone; its record commits with the
 * round.  Sequence conflicts are not recorded (a lost reply is normal). */
static void push_job_refused(struct server *srv, void *arg, int rc)
{
    struct push_job *p = arg;
    if (rc != SYNC_ECONFLICT &&
        record_rejection_tx(srv, p->dev, p->seq, p->o, http_status_for(rc)) == SYNC_OK)
        p->recorded = 1;
}

int push_apply(struct server *srv, const struct device *dev, uint64_t batch_seq,
               const uint8_t *pt, size_t ptlen, char **ack, struct outcome *o)
{
    struct batch b;
    uint8_t hash[32];
    size_t nchanges = 0;
    int rc, recorded = 0;
    *ack = NULL;
    memset(&b, 0, sizeof b);
    /* The signature comes first: nothing unsigned is even parsed. */
    if (ptlen < ENV_SIGBYTES)
        rc = outcome_set(o, SYNC_EPROTO, "bad_payload", "the batch has no signature");
    else if (env_batch_verify(pt + ptlen - ENV_SIGBYTES, dev->sign_pk, dev->id, batch_seq, pt,
                              ptlen - ENV_SIGBYTES, hash) != SYNC_OK)
        rc = outcome_set(o, SYNC_ECRYPTO, "bad_signature",
                         "the batch is not signed by this device's key");
    else
        rc = parse_batch(pt, ptlen - ENV_SIGBYTES, &b, o);
    if (rc == SYNC_OK && b.schema_version != schema_version())
        rc = outcome_set(o, SYNC_ESCHEMA, "schema_version",
                         "the tablet has schema version %d, the server %d; update the app",
                         b.schema_version, schema_version());
    if (rc == SYNC_OK)
        rc = validate_all(srv, &b, &nchanges, o);
    if (rc == SYNC_OK) {
        /* Batches from several devices share a transaction and one durable
         * commit; this one is acknowledged only after that commit. */
        struct push_job pj = { { NULL, push_job_run, push_job_refused, NULL, 0, 0, 0 },
                               dev, batch_seq, pt, ptlen, hash, &b, nchanges, ack, o, 0 };
        pj.job.arg = &pj;
        rc = store_group(srv, &pj.job);
        recorded = pj.recorded;
        if (rc == SYNC_EBUSY && o->status == SYNC_OK)
            outcome_set(o, SYNC_EBUSY, "busy", "the database is busy; retry");
        if (rc == SYNC_EIO && o->status == SYNC_OK)
            outcome_set(o, SYNC_EIO, "storage", "the commit failed");
        if (rc != SYNC_OK && o->status == SYNC_OK)
            outcome_set(o, rc, "storage", "the batch was not applied");
    }
    if (rc != SYNC_OK) {
        es_free(*ack);
        *ack = NULL;
        if (rc != SYNC_ECONFLICT && !recorded) {
            pthread_mutex_lock(&srv->lock);
            record_rejection(srv, dev, batch_seq, o, http_status_for(rc));
            pthread_mutex_unlock(&srv->lock);
        }
        log_warn("device %02x%02x%02x%02x... batch %llu refused: %s (%s)", dev->id[0],
                 dev->id[1], dev->id[2], dev->id[3], (unsigned long long)batch_seq, o->error,
                 o->detail);
    }
    es_free(b.e);
    return rc;
}
