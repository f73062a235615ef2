/* test_authz.c - the authorisation matrix, generated from the declarations.
 *
 * The sync declarations are loaded from the server database (policy_load on
 * a read-only connection) and walked: every synced table x INSERT, UPDATE,
 * DELETE x the three roles -- a caregiver and an inspector of township T0
 * and the hall device of hall H0 (in T0).  No synced table is named here:
 * a table added to schema.sql is covered by the next run.
 *
 *   the role lacks the right (mask bit clear)       -> 403 forbidden_table
 *   the role has it: one request per violation, each -> 403 and its name:
 *     (a) a row of another township / hall: UPDATE or DELETE of one, or an
 *         INSERT whose scope column names one            out_of_scope
 *     (b) an UPDATE moving an own row's scope key out     out_of_scope
 *     (c) an INSERT reusing the id of another scope's row with the scope
 *         column set to the device's own                  out_of_scope
 *     (d) every protected column: INSERT non-NULL, UPDATE protected_column
 *     (e) every state the role may not set, and an undeclared one
 *                                                         illegal_state
 *     (f) every foreign key pointing at a row of another township (when the
 *         referenced table is township or hall scoped)    out_of_scope
 *     and a positive control (200) per allowed (table, op, role), so the
 *     refusals are shown not to be blanket refusals; state tables also get
 *     a legal state move as a second positive control.
 *   every server-only table (sqlite_schema minus sync_tables) x op x role,
 *   with the real column count and primary key  -> 403 forbidden_table
 *
 * Every refusal is checked for: the HTTP status, the JSON "error" name, the
 * server's content hash (unchanged), the device's batch_seq (not advanced),
 * no conflict recorded, a new `rejections` row with the device id, batch_seq
 * and error, and a new audit_log 'rejection' entry of the device naming the
 * error.  Positive controls must be accepted and change what they claim.
 *
 * Valid rows are built from PRAGMA table_info and the column definitions in
 * sqlite_schema: each column's definition is replayed into a one-column
 * probe table in memory, so its own CHECK / NOT NULL picks the candidate
 * value (meal_period 'breakfast', service_date '2024-11-20', ...).  Foreign
 * keys take an existing row of the right scope; rows missing in some scope
 * (a visit in T1, a meal in H1, ...) are created server-side at setup with
 * `sync-server exec`, from the same builder.
 *
 * A failing cell does not stop the matrix: every case runs under its own
 * setjmp, prints what it expected and what it got, and the test function of
 * its kind fails at the end.  AUTHZ_VERBOSE=1 lists every case.  A 429
 * from the server's rate limiter is waited out (Retry-After) and the same
 * request resent: it was refused before anything was read.
 *
 * Some violations are refused by two checks: a scope column is itself a
 * foreign key to the township or hall table, so (b) and the INSERT form of
 * (a) are also caught by the reference check.  Only the error name is
 * asserted, not which check fired.
 */
#include <ctype.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "changeset.h"
#include "client.h"
#include "pcrypt.h"
#include "eldersync.h"
#include "envelope.h"
#include "hlc.h"
#include "ids.h"
#include "policy.h"
#include "rowval.h"
#include "schema.h"
#include "sqlite.h"
#include "support.h"
#include "test.h"
#include "transport.h"
#include "util.h"

#define TIMEOUT_MS  5000
#define REPLY_MAX   (1u << 20)
#define NROLES      3
#define MAXTBL      32
#define ARENA       (1u << 16)
#define NOPS        3

static const int OPS[NOPS] = { CS_INSERT, CS_UPDATE, CS_DELETE };

enum kind { K_ROLE, K_SCOPE_ROW, K_SCOPE_KEY, K_PK_MOVE, K_PROTECTED, K_STATE, K_REF,
            K_SERVER, K_POSITIVE, NKINDS };
static const char *const kind_names[NKINDS] = {
    "forbidden_table (role)", "(a) row in another scope", "(b) scope key moved",
    "(c) id of another scope's row", "(d) protected column", "(e) illegal state",
    "(f) foreign key out of scope", "server-only table", "positive control"
};

struct role_dev {
    const char         *name;
    unsigned            bit;
    int                 twp;        /* township index in F.c */
    int                 hall;       /* hall index, -1 for a township device */
    struct sync_client *c;
    struct ident        id;
};

/* A scope: a township, a hall (with its township) or the county. */
struct skey {
    int  scope;                     /* enum pol_scope */
    int  twp, hall;                 /* indices into F.c; -1 if none */
    char label[12];
};

/* What a valid value of one column looks like. */
struct colmeta {
    int  aff;                       /* CS_INT, CS_REAL, CS_TEXT or CS_BLOB */
    int  notnull;
    int  probe;                     /* 1: probe table p_<t>_<c> exists */
    int  nlit;
    char lit[8][40];                /* string literals of its definition */
};

/* A row of values; text and blobs live in the arena. */
struct rowbuf {
    struct cs_value v[POL_MAXCOL];
    size_t          used;
    uint8_t         arena[ARENA];
};

struct casespec {
    struct role_dev       *d;
    int                    kind;
    const char            *table;
    int                    ncol;
    const uint8_t         *pk;
    int                    op;
    const struct cs_value *old, *new_;
    const char            *error;   /* NULL: a positive control, 200 expected */
    char                   desc[256];
    char                   check[1024];   /* optional: must yield 1 afterwards */
    int                    check_keys;    /* check needs es_dec (personal data) */
};

static struct {
    uint8_t          key[32];          /* the county's data key, for sealing */
    int64_t          key_id;
    int              tried, up;
    char             dir[128];
    char             db[192];
    struct county    c;
    struct srv_proc  p;
    sqlite3         *ro;            /* read-only connection to the server db */
    sqlite3         *probe;         /* in-memory probe tables */
    struct policy   *pol;
    struct role_dev  dev[NROLES];
    struct colmeta   cm[MAXTBL][POL_MAXCOL];
    int              hall_tbl, hall_twp_col;
    unsigned         hlc_ctr;
    long             uniq;
    int64_t          entry;
    long             cases, refusals, positives, skipped, failed, na, throttled;
    long             by_kind[NKINDS];
    int              nserver;
    int              verbose;
} F;

static const struct pol_table *T(int ti) { return &F.pol->tables[ti]; }

static const char *op_name(int op)
{
    return op == CS_INSERT ? "INSERT" : op == CS_UPDATE ? "UPDATE" : "DELETE";
}

static unsigned op_mask(const struct pol_table *t, int op)
{
    return op == CS_INSERT ? t->insert_roles : op == CS_UPDATE ? t->update_roles
                                                                : t->delete_roles;
}

/* ---- queries on the server database ------------------------------------ */

static long q_long(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static long q_long(const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    ASSERT(n > 0 && (size_t)n < sizeof sql);
    sqlite3_stmt *st = NULL;
    long v = -1;
    if (sqlite3_prepare_v2(F.ro, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = (long)sqlite3_column_int64(st, 0);
    else
        fprintf(stderr, "  query failed: %s\n    %s\n", sqlite3_errmsg(F.ro), sql);
    sqlite3_finalize(st);
    return v;
}

/* The first column of the first row if it is a 16-byte blob: 0, else -1. */
static int q_id(uint8_t out[16], const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int q_id(uint8_t out[16], const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    ASSERT(n > 0 && (size_t)n < sizeof sql);
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(F.ro, sql, -1, &st, NULL) != SQLITE_OK)
        fprintf(stderr, "  query failed: %s\n    %s\n", sqlite3_errmsg(F.ro), sql);
    else if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 16) {
        memcpy(out, sqlite3_column_blob(st, 0), 16);
        rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

static uint64_t next_seq(const struct role_dev *d)
{
    char x[36];
    long last = q_long("SELECT last_batch_seq FROM devices WHERE id = %s", xid(d->id.dev, x));
    ASSERT_GE(last, 0);
    return (uint64_t)last + 1;
}

/* An SQL literal for v. */
static void lit(char *out, size_t n, const struct cs_value *v)
{
    size_t k = 0;
    switch (v->type) {
    case CS_INT:
        snprintf(out, n, "%lld", (long long)v->i);
        return;
    case CS_REAL:
        snprintf(out, n, "%.17g", v->r);
        return;
    case CS_TEXT:
        ASSERT(n >= 2 * v->n + 3);
        out[k++] = '\'';
        for (size_t i = 0; i < v->n; i++) {
            if (v->p[i] == '\'')
                out[k++] = '\'';
            out[k++] = (char)v->p[i];
        }
        out[k++] = '\'';
        out[k] = '\0';
        return;
    case CS_BLOB:
        ASSERT(n >= 2 * v->n + 4);
        out[0] = 'x';
        out[1] = '\'';
        hex_encode(out + 2, v->p, v->n);
        strcat(out, "'");
        return;
    default:
        snprintf(out, n, "NULL");
        return;
    }
}

/* ---- rows ------------------------------------------------------------- */

static struct rowbuf *rb_new(void)
{
    struct rowbuf *r = calloc(1, sizeof *r);     /* every value CS_UNDEF */
    ASSERT_NOT_NULL(r);
    return r;
}

static void rb_clear(struct rowbuf *r)
{
    memset(r->v, 0, sizeof r->v);
    r->used = 0;
}

static void rb_put(struct rowbuf *r, int i, const struct cs_value *src)
{
    struct cs_value v = *src;
    ASSERT(i >= 0 && i < POL_MAXCOL);
    if (v.type == CS_TEXT || v.type == CS_BLOB) {
        ASSERT(v.n <= ARENA - r->used);
        if (v.n)
            memcpy(r->arena + r->used, src->p, v.n);
        v.p = r->arena + r->used;
        r->used += v.n;
    }
    r->v[i] = v;
}

static void rb_blob(struct rowbuf *r, int i, const uint8_t *p, size_t n)
{
    struct cs_value v = { .type = CS_BLOB, .p = p, .n = n };
    rb_put(r, i, &v);
}

static void rb_text(struct rowbuf *r, int i, const char *s)
{
    struct cs_value v = { .type = CS_TEXT, .p = (const uint8_t *)s, .n = strlen(s) };
    rb_put(r, i, &v);
}

static void rb_int(struct rowbuf *r, int i, int64_t x)
{
    struct cs_value v = { .type = CS_INT, .i = x };
    rb_put(r, i, &v);
}

static void rb_null(struct rowbuf *r, int i)
{
    struct cs_value v = { .type = CS_NULL };
    rb_put(r, i, &v);
}

static void rb_fresh_id(struct rowbuf *r, int i)
{
    uint8_t id[16];
    id_new(id);
    rb_blob(r, i, id, 16);
}

/* Reads the first row of `SELECT * FROM table WHERE where` into r; 0 if
 * there is one.  *ncol (may be NULL) gets the column count. */
static int fetch_where(const char *table, const char *where, struct rowbuf *r, int *ncol)
{
    char sql[512];
    sqlite3_stmt *st = NULL;
    int rc = -1;
    snprintf(sql, sizeof sql, "SELECT * FROM \"%s\" WHERE %s LIMIT 1", table, where);
    ASSERT_EQ(sqlite3_prepare_v2(F.ro, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW) {
        int n = sqlite3_column_count(st);
        ASSERT_LE(n, POL_MAXCOL);
        rb_clear(r);
        for (int i = 0; i < n; i++) {
            struct cs_value v;
            rowval_column(&v, st, i);
            rb_put(r, i, &v);
        }
        if (ncol)
            *ncol = n;
        rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

static int fetch_id(const struct pol_table *t, const uint8_t id[16], struct rowbuf *r)
{
    char where[64], x[36];
    snprintf(where, sizeof where, "id = %s", xid(id, x));
    return fetch_where(t->name, where, r, NULL);
}

static uint64_t hlc_next(void)
{
    return hlc_make(now_ms(), F.hlc_ctr++ & 0xff, 0x5a);
}

/* ---- scopes ------------------------------------------------------------ */

static struct skey key_twp(int i)
{
    struct skey k = { SCOPE_TOWNSHIP, i, -1, "" };
    snprintf(k.label, sizeof k.label, "T%d", i);
    return k;
}

static struct skey key_hall(int h)
{
    struct skey k = { SCOPE_HALL, F.c.hall_twp[h], h, "" };
    snprintf(k.label, sizeof k.label, "H%d", h);
    return k;
}

static struct skey key_county(void)
{
    struct skey k = { SCOPE_COUNTY, -1, -1, "county" };
    return k;
}

static const uint8_t *key_value(const struct skey *k)
{
    return k->scope == SCOPE_HALL ? F.c.hall[k->hall] : F.c.twp[k->twp];
}

/* The device's own scope for rows of t. */
static struct skey own_key(const struct role_dev *d, const struct pol_table *t)
{
    if (t->scope == SCOPE_COUNTY)
        return key_county();
    if (t->scope == SCOPE_TOWNSHIP)
        return key_twp(d->twp);
    if (d->hall >= 0)
        return key_hall(d->hall);
    for (int h = 0; h < NHALL; h++)
        if (F.c.hall_twp[h] == d->twp)
            return key_hall(h);
    ASSERT(0);
    return key_county();
}

/* Scopes of t outside the device's: another township; for hall tables every
 * hall the device does not cover (a hall device: the other halls of its
 * township too). */
static int other_keys(const struct role_dev *d, const struct pol_table *t, struct skey *out)
{
    int n = 0;
    if (t->scope == SCOPE_TOWNSHIP) {
        for (int i = 0; i < NTWP && n == 0; i++)
            if (i != d->twp)
                out[n++] = key_twp(i);
    } else if (t->scope == SCOPE_HALL) {
        for (int h = 0; h < NHALL; h++)
            if (d->hall >= 0 ? h != d->hall : F.c.hall_twp[h] != d->twp)
                out[n++] = key_hall(h);
    }
    return n;
}

/* A scope of referenced table r in another township than the device's. */
static int foreign_key_scope(const struct role_dev *d, const struct pol_table *r, struct skey *k)
{
    if (r->scope == SCOPE_TOWNSHIP) {
        for (int i = 0; i < NTWP; i++)
            if (i != d->twp) {
                *k = key_twp(i);
                return 0;
            }
    } else if (r->scope == SCOPE_HALL) {
        for (int h = 0; h < NHALL; h++)
            if (F.c.hall_twp[h] != d->twp) {
                *k = key_hall(h);
                return 0;
            }
    }
    return -1;
}

/* The first live row of t in scope k: 0 and its id, or -1. */
static int find_row(const struct pol_table *t, const struct skey *k, uint8_t id[16])
{
    char where[400], a[36];
    const char *sc = t->cols[t->scope_col];
    const struct pol_table *h = T(F.hall_tbl);
    if (t->scope == SCOPE_COUNTY)
        snprintf(where, sizeof where, "1");
    else if (k->twp < 0)
        return -1;
    else if (t->scope == SCOPE_TOWNSHIP)
        snprintf(where, sizeof where, "\"%s\" = %s", sc, xid(F.c.twp[k->twp], a));
    else if (k->hall >= 0)
        snprintf(where, sizeof where, "\"%s\" = %s", sc, xid(F.c.hall[k->hall], a));
    else
        snprintf(where, sizeof where, "\"%s\" IN (SELECT id FROM \"%s\" WHERE \"%s\" = %s)", sc,
                 h->name, h->cols[F.hall_twp_col], xid(F.c.twp[k->twp], a));
    if (t->deleted_col >= 0)
        return q_id(id, "SELECT id FROM \"%s\" WHERE %s AND \"%s\" = 0 ORDER BY id LIMIT 1",
                    t->name, where, t->cols[t->deleted_col]);
    return q_id(id, "SELECT id FROM \"%s\" WHERE %s ORDER BY id LIMIT 1", t->name, where);
}

/* The first row of t in scope k, read whole. */
static int target_row(const struct pol_table *t, const struct skey *k, struct rowbuf *cur)
{
    uint8_t id[16];
    if (find_row(t, k, id) != 0)
        return -1;
    return fetch_id(t, id, cur);
}

/* ---- valid values from the column definitions ------------------------- */

static int affinity(const char *decl)
{
    char u[64];
    size_t i;
    for (i = 0; decl[i] && i < sizeof u - 1; i++)
        u[i] = (char)toupper((unsigned char)decl[i]);
    u[i] = '\0';
    if (strstr(u, "INT"))
        return CS_INT;
    if (strstr(u, "CHAR") || strstr(u, "CLOB") || strstr(u, "TEXT"))
        return CS_TEXT;
    if (u[0] == '\0' || strstr(u, "BLOB"))
        return CS_BLOB;
    if (strstr(u, "REAL") || strstr(u, "FLOA") || strstr(u, "DOUB"))
        return CS_REAL;
    return CS_INT;
}

/* One segment of a CREATE TABLE body: a column definition becomes a
 * one-column probe table; its string literals become candidate values. */
static void coldef(int ti, const char *seg, size_t len)
{
    char name[64];
    size_t k = 0;
    while (len && isspace((unsigned char)*seg)) {
        seg++;
        len--;
    }
    if (len && (*seg == '"' || *seg == '`' || *seg == '[')) {
        char close = *seg == '[' ? ']' : *seg;
        for (size_t i = 1; i < len && seg[i] != close && k < sizeof name - 1; i++)
            name[k++] = seg[i];
    } else {
        for (size_t i = 0; i < len && (isalnum((unsigned char)seg[i]) || seg[i] == '_') &&
                           k < sizeof name - 1; i++)
            name[k++] = seg[i];
    }
    name[k] = '\0';
    int c = policy_col(T(ti), name);
    if (c < 0)
        return;                                      /* a table constraint */
    struct colmeta *m = &F.cm[ti][c];
    char *ddl = sqlite3_mprintf("CREATE TABLE p_%d_%d (%.*s)", ti, c, (int)len, seg);
    ASSERT_NOT_NULL(ddl);
    m->probe = sqlite3_exec(F.probe, ddl, NULL, NULL, NULL) == SQLITE_OK;
    if (!m->probe)
        printf("  note: no probe for %s.%s: %s\n", T(ti)->name, name, sqlite3_errmsg(F.probe));
    sqlite3_free(ddl);
    for (size_t i = 0; i < len; i++) {
        if (seg[i] != '\'')
            continue;
        char s[40];
        size_t n = 0, j = i + 1;
        for (; j < len; j++) {
            if (seg[j] == '\'') {
                if (j + 1 < len && seg[j + 1] == '\'')
                    j++;
                else
                    break;
            }
            if (n < sizeof s - 1)
                s[n++] = seg[j];
        }
        s[n] = '\0';
        if (m->nlit < (int)(sizeof m->lit / sizeof m->lit[0]) && n < sizeof s - 1)
            snprintf(m->lit[m->nlit++], sizeof m->lit[0], "%s", s);
        i = j;
    }
}

static void load_colmeta(int ti)
{
    const struct pol_table *t = T(ti);
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(sqlite3_prepare_v2(F.ro, "SELECT type, \"notnull\" FROM pragma_table_info(?1) "
                                 "ORDER BY cid", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
    for (int c = 0; c < t->ncol && sqlite3_step(st) == SQLITE_ROW; c++) {
        const char *ty = (const char *)sqlite3_column_text(st, 0);
        F.cm[ti][c].aff = affinity(ty ? ty : "");
        F.cm[ti][c].notnull = sqlite3_column_int(st, 1);
    }
    sqlite3_finalize(st);

    char *sql = NULL;
    ASSERT_EQ(sqlite3_prepare_v2(F.ro, "SELECT sql FROM sqlite_schema WHERE type = 'table' AND "
                                 "name = ?1", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        sql = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    ASSERT_NOT_NULL(sql);
    /* Strip comments, keeping quoted text. */
    size_t n = strlen(sql), w = 0;
    char q = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = sql[i];
        if (q) {
            if (ch == q)
                q = 0;
        } else if (ch == '\'' || ch == '"' || ch == '`') {
            q = ch;
        } else if (ch == '-' && sql[i + 1] == '-') {
            while (i < n && sql[i] != '\n')
                i++;
            ch = ' ';
        } else if (ch == '/' && sql[i + 1] == '*') {
            for (i += 2; i + 1 < n && !(sql[i] == '*' && sql[i + 1] == '/'); i++)
                ;
            i++;
            ch = ' ';
        }
        sql[w++] = ch;
    }
    sql[w] = '\0';
    /* Split the body at top-level commas. */
    char *p = strchr(sql, '(');
    ASSERT_NOT_NULL(p);
    const char *seg = p + 1;
    int depth = 0;
    q = 0;
    for (const char *s = p + 1; *s; s++) {
        if (q) {
            if (*s == q)
                q = 0;
        } else if (*s == '\'' || *s == '"' || *s == '`') {
            q = *s;
        } else if (*s == '(') {
            depth++;
        } else if (*s == ')' && depth > 0) {
            depth--;
        } else if (depth == 0 && (*s == ',' || *s == ')')) {
            coldef(ti, seg, (size_t)(s - seg));
            if (*s == ')')
                break;
            seg = s + 1;
        }
    }
    free(sql);
}

static int probe_ok(int ti, int c, const struct cs_value *v)
{
    char sql[64];
    sqlite3_stmt *st = NULL;
    int ok = 0;
    if (!F.cm[ti][c].probe)
        return 1;
    snprintf(sql, sizeof sql, "INSERT INTO p_%d_%d VALUES (?1)", ti, c);
    if (sqlite3_prepare_v2(F.probe, sql, -1, &st, NULL) == SQLITE_OK) {
        rowval_bind(st, 1, v);
        ok = sqlite3_step(st) == SQLITE_DONE;
    }
    sqlite3_finalize(st);
    snprintf(sql, sizeof sql, "DELETE FROM p_%d_%d", ti, c);
    sqlite3_exec(F.probe, sql, NULL, NULL, NULL);
    return ok;
}

/* A valid non-NULL value for plain column c of table ti, into r->v[c].
 * mode 0: the plainest valid value (0 before 1, so no partial unique index
 * on "amount > 0" is hit).  mode 1: a value different from cur (NULL or
 * undefined cur: any non-NULL, non-zero first).  0, or -1 if none fits. */
static int plain_value(int ti, int c, const struct cs_value *cur, int mode, struct rowbuf *r)
{
    const struct colmeta *m = &F.cm[ti][c];
    const char *name = T(ti)->cols[c];
    int have = cur && cur->type != CS_UNDEF && cur->type != CS_NULL;
    struct cs_value cand[24];
    char texts[24][48];
    uint8_t id[16];
    int n = 0;
    memset(cand, 0, sizeof cand);
    switch (m->aff) {
    case CS_INT: {
        static const int64_t plain[] = { 0, 1, 2, 100, INT64_C(1732071600000) };
        static const int64_t other[] = { 1, 2, 100, 0, INT64_C(1732071600000) };
        if (mode && have && cur->type == CS_INT) {
            cand[n].type = CS_INT;
            cand[n++].i = cur->i + 1;
        }
        for (int i = 0; i < 5; i++) {
            cand[n].type = CS_INT;
            cand[n++].i = mode ? other[i] : plain[i];
        }
        break;
    }
    case CS_REAL: {
        static const double plain[] = { 0.0, 1.0, 2.5 }, other[] = { 1.0, 2.5, 0.0 };
        for (int i = 0; i < 3; i++) {
            cand[n].type = CS_REAL;
            cand[n++].r = mode ? other[i] : plain[i];
        }
        break;
    }
    case CS_TEXT: {
        int nt = 0;
        if (mode)
            snprintf(texts[nt++], sizeof texts[0], "authz-%ld", ++F.uniq);
        for (int i = 0; i < m->nlit && nt < 16; i++)
            snprintf(texts[nt++], sizeof texts[0], "%s", m->lit[i]);
        if (strstr(name, "date"))
            snprintf(texts[nt++], sizeof texts[0], "2024-11-20");
        snprintf(texts[nt++], sizeof texts[0], "authz");
        snprintf(texts[nt++], sizeof texts[0], "2024-11-20");
        snprintf(texts[nt++], sizeof texts[0], "2024-11-21");
        snprintf(texts[nt++], sizeof texts[0], "x");
        for (int i = 0; i < nt; i++) {
            cand[n].type = CS_TEXT;
            cand[n].p = (const uint8_t *)texts[i];
            cand[n++].n = strlen(texts[i]);
        }
        break;
    }
    default:
        id_new(id);
        cand[n].type = CS_BLOB;
        cand[n].p = id;
        cand[n++].n = 16;
        break;
    }
    for (int i = 0; i < n; i++) {
        if (mode && have && rowval_eq(&cand[i], cur))
            continue;
        if (probe_ok(ti, c, &cand[i])) {
            rb_put(r, c, &cand[i]);
            return 0;
        }
    }
    return -1;
}

static const struct pol_state *first_state(const struct pol_table *t, unsigned role)
{
    for (int i = 0; i < t->nstates; i++)         /* loaded in rank order */
        if (role == 0 || (t->states[i].roles & role))
            return &t->states[i];
    return NULL;
}

/* A valid new row of table ti in scope k: a fresh id, the scope key,
 * existing rows of scope k for NOT NULL foreign keys, NULL for protected
 * and other nullable columns, the first state role may set (role 0: the
 * first state).  0, or -1 with the reason in why. */
static int build_row(int ti, const struct skey *k, unsigned role, struct rowbuf *r, char *why,
                     size_t wn)
{
    const struct pol_table *t = T(ti);
    rb_clear(r);
    for (int c = 0; c < t->ncol; c++) {
        const struct colmeta *m = &F.cm[ti][c];
        if (c == t->id_col) {
            rb_fresh_id(r, c);
        } else if (c == t->scope_col && t->scope != SCOPE_COUNTY) {
            rb_blob(r, c, key_value(k), 16);
        } else if (c == t->hlc_col) {
            rb_int(r, c, (int64_t)hlc_next());
        } else if (c == t->deleted_col) {
            rb_int(r, c, 0);
        } else if (c == t->state_col) {
            const struct pol_state *s = first_state(t, role);
            if (s == NULL) {
                snprintf(why, wn, "no state of %s.%s may be set by this role", t->name, t->cols[c]);
                return -1;
            }
            rb_text(r, c, s->value);
        } else if ((t->protected_ >> c) & 1) {
            if (m->notnull) {
                snprintf(why, wn, "protected column %s is NOT NULL", t->cols[c]);
                return -1;
            }
            rb_null(r, c);
        } else if (t->ref[c] >= 0 && m->notnull) {
            uint8_t id[16];
            if (find_row(T(t->ref[c]), k, id) != 0) {
                snprintf(why, wn, "no %s row in %s for %s.%s", T(t->ref[c])->name, k->label,
                         t->name, t->cols[c]);
                return -1;
            }
            rb_blob(r, c, id, 16);
        } else if (!m->notnull) {
            rb_null(r, c);
        } else if (plain_value(ti, c, NULL, 0, r) != 0) {
            snprintf(why, wn, "no valid value found for %s.%s", t->name, t->cols[c]);
            return -1;
        }
    }
    return 0;
}

/* Last resort for a forbidden_table case: id, scope key, NULLs. */
static void minimal_row(int ti, const struct skey *k, struct rowbuf *r)
{
    const struct pol_table *t = T(ti);
    rb_clear(r);
    for (int c = 0; c < t->ncol; c++)
        rb_null(r, c);
    rb_fresh_id(r, t->id_col);
    if (t->scope != SCOPE_COUNTY && t->scope_col != t->id_col)
        rb_blob(r, t->scope_col, key_value(k), 16);
}

/* A column an ordinary edit changes, from column `from` on: not the id,
 * scope, clock, deletion flag, state, a protected column or a foreign key. */
static int plain_col(const struct pol_table *t, int from)
{
    for (int c = from; c < t->ncol; c++)
        if (c != t->id_col && c != t->scope_col && c != t->hlc_col && c != t->deleted_col &&
            c != t->state_col && !((t->protected_ >> c) & 1) && t->ref[c] < 0)
            return c;
    return -1;
}

/* Completes an UPDATE of row cur whose new value of col is already in nw:
 * the key and col's current value in o, a newer clock in both. */
static void finish_update(const struct pol_table *t, const struct rowbuf *cur, int col,
                          struct rowbuf *o, struct rowbuf *nw)
{
    rb_put(o, t->id_col, &cur->v[t->id_col]);
    rb_put(o, col, &cur->v[col]);
    if (t->hlc_col >= 0 && col != t->hlc_col) {
        rb_put(o, t->hlc_col, &cur->v[t->hlc_col]);
        rb_int(nw, t->hlc_col, (int64_t)hlc_next());
    }
}

/* An ordinary edit of cur (the plain column, else the clock). *col gets
 * the changed column.  0, or -1 if the table has nothing to change. */
static int benign_update(int ti, const struct rowbuf *cur, struct rowbuf *o, struct rowbuf *nw,
                         int *col)
{
    const struct pol_table *t = T(ti);
    for (int c = plain_col(t, 0); c >= 0; c = plain_col(t, c + 1)) {
        if (plain_value(ti, c, &cur->v[c], 1, nw) == 0) {
            finish_update(t, cur, c, o, nw);
            *col = c;
            return 0;
        }
    }
    if (t->hlc_col < 0)
        return -1;
    rb_int(nw, t->hlc_col, (int64_t)hlc_next());
    finish_update(t, cur, t->hlc_col, o, nw);
    *col = t->hlc_col;
    return 0;
}

/* ---- the tablets' identities and requests ------------------------------ */


/* dir/<name>.db's identity, from its vault. */
static void load_ident(const char *name, struct ident *id)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s.db", F.dir, name);
    tablet_ident(path, id);
}

/* u32 schema_version | u64 device ms | u32 n = 1 | u64 entry | u32 len |
 * local changeset | u32 0 (no forward part), signed and sealed. */
static uint8_t *push_env(const struct ident *id, uint64_t seq, uint64_t entry, const uint8_t *cs,
                         size_t cslen, size_t *envlen)
{
    struct buf b = {0};
    struct env_header h;
    uint8_t *out = NULL;
    buf_be32(&b, (uint32_t)schema_version());
    buf_be64(&b, (uint64_t)now_ms());
    buf_be32(&b, 1);
    buf_be64(&b, entry);
    buf_be32(&b, (uint32_t)cslen);
    buf_append(&b, cs, cslen);
    buf_be32(&b, 0);
    size_t n = b.len;
    uint8_t sig[ENV_SIGBYTES];
    ASSERT(!b.oom);
    env_batch_sign(sig, id->sign_sk, id->dev, seq, b.p, n, NULL);
    buf_append(&b, sig, sizeof sig);
    ASSERT(!b.oom);
    memset(&h, 0, sizeof h);
    h.version = ENV_VERSION;
    h.kind = ENV_PUSH;
    memcpy(h.device_id, id->dev, 16);
    h.batch_seq = seq;
    int rc = env_seal(&h, id->tx, b.p, b.len, &out, envlen);
    buf_free(&b);
    ASSERT_EQ(rc, SYNC_OK);
    return out;
}

/* ---- one case ----------------------------------------------------------- */

static void do_case(const struct casespec *k)
{
    struct cs_writer w;
    struct http_response r;
    uint8_t *cs = NULL, h0[32], h1[32];
    size_t cslen = 0, n = 0;
    char err[256], got[64] = "", body[320] = "", x[36];
    const struct role_dev *d = k->d;

    /* Personal values travel sealed, as the SDK sends them. */
    struct cs_value nw[CS_MAX_COLUMNS];
    uint8_t *sealed[CS_MAX_COLUMNS] = { 0 };
    const struct pol_table *pt = policy_table(F.pol, k->table);
    if (k->op != CS_DELETE)
        memcpy(nw, k->new_, sizeof(struct cs_value) * (size_t)k->ncol);
    for (int c = 0; pt && k->op != CS_DELETE && c < k->ncol && c < pt->ncol; c++) {
        const struct cs_value *pk = k->op == CS_INSERT ? &k->new_[pt->id_col] : &k->old[pt->id_col];
        size_t slen = 0;
        if (!((pt->personal >> c) & 1) || nw[c].type != CS_TEXT)
            continue;
        ASSERT_EQ(pv_seal(F.key, (uint32_t)F.key_id, pt->name, pt->cols[c], pk->p, pk->n, nw[c].p,
                          nw[c].n, &sealed[c], &slen), SYNC_OK);
        nw[c].type = CS_BLOB;
        nw[c].p = sealed[c];
        nw[c].n = slen;
    }
    cs_writer_init(&w);
    cs_writer_table(&w, k->table, k->ncol, k->pk);
    cs_writer_change(&w, k->op, 0, k->op == CS_INSERT ? NULL : k->old,
                     k->op == CS_DELETE ? NULL : nw);
    ASSERT_EQ(cs_writer_finish(&w, &cs, &cslen), SYNC_OK);
    for (int c = 0; c < k->ncol; c++)
        free(sealed[c]);
    ASSERT_NOT_NULL(cs);

    uint64_t seq = next_seq(d);
    server_hash(F.db, h0);
    long rej0 = q_long("SELECT coalesce(max(id), 0) FROM rejections");
    long aud0 = q_long("SELECT coalesce(max(id), 0) FROM audit_log");
    long conf0 = q_long("SELECT count(*) FROM conflicts");
    uint8_t *env = push_env(&d->id, seq, (uint64_t)++F.entry, cs, cslen, &n);
    free(cs);
    int rc;
    for (int tries = 0;; tries++) {
        rc = http_post(F.p.url, "/v1/push", NULL, env, n, TIMEOUT_MS, REPLY_MAX, &r, err,
                       sizeof err);
        if (rc != SYNC_OK || r.status != 429 || tries == 20)
            break;
        /* Rate limited before anything was read: wait as told, resend. */
        double wait = atof(r.retry_after);
        http_response_free(&r);
        F.throttled++;
        struct timespec ts = { 0, 100000000 };
        if (wait > 0.1)
            ts = (struct timespec){ (time_t)(wait < 3 ? wait : 3), 0 };
        nanosleep(&ts, NULL);
    }
    free(env);
    if (rc != SYNC_OK)
        fprintf(stderr, "  %s: POST failed: %s (%s)\n", k->desc, sync_strerror(rc), err);
    ASSERT_EQ(rc, SYNC_OK);
    int status = r.status;
    if (status != 200 && r.body) {
        cJSON *j = cJSON_ParseWithLength((const char *)r.body, r.len);
        const char *e = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "error"));
        snprintf(got, sizeof got, "%s", e ? e : "");
        cJSON_Delete(j);
        snprintf(body, sizeof body, "%.*s", (int)(r.len < 300 ? r.len : 300),
                 (const char *)r.body);
    }
    http_response_free(&r);
    server_hash(F.db, h1);
    uint64_t after = next_seq(d);
    long conf1 = q_long("SELECT count(*) FROM conflicts");

    if (k->error) {
        if (status != 403 || strcmp(got, k->error) != 0)
            fprintf(stderr, "  %s:\n    expected 403 %s, got %d %s\n", k->desc, k->error, status,
                    status == 200 ? "(accepted)" : body);
        ASSERT_EQ(status, 403);
        ASSERT_STR_EQ(got, k->error);
        if (memcmp(h0, h1, 32) != 0)
            fprintf(stderr, "  %s: the server's content changed\n", k->desc);
        ASSERT_MEM_EQ(h0, h1, 32);
        ASSERT_EQ(after, seq);
        ASSERT_EQ(conf1, conf0);
        long nrej = q_long("SELECT count(*) FROM rejections WHERE id > %ld AND device_id = %s AND "
                           "batch_seq = %llu AND http_status = 403 AND error = '%s'", rej0,
                           xid(d->id.dev, x), (unsigned long long)seq, k->error);
        long naud = q_long("SELECT count(*) FROM audit_log WHERE id > %ld AND kind = 'rejection' "
                           "AND device_id = %s AND detail LIKE '%%\"error\":\"%s\"%%'", aud0,
                           xid(d->id.dev, x), k->error);
        if (nrej != 1 || naud != 1)
            fprintf(stderr, "  %s: refusal logged %ld times in rejections, %ld in audit_log\n",
                    k->desc, nrej, naud);
        ASSERT_EQ(nrej, 1);
        ASSERT_EQ(naud, 1);
    } else {
        if (status != 200)
            fprintf(stderr, "  %s:\n    positive control refused: %d %s\n", k->desc, status, body);
        ASSERT_EQ(status, 200);
        ASSERT_EQ(after, seq + 1);
        ASSERT(memcmp(h0, h1, 32) != 0);
        if (conf1 != conf0)
            fprintf(stderr, "  %s: the positive control recorded a conflict\n", k->desc);
        ASSERT_EQ(conf1, conf0);
    }
    if (k->check[0]) {
        long v = k->check_keys ? server_count(F.db, k->check) : q_long("%s", k->check);
        if (v != 1)
            fprintf(stderr, "  %s: check failed (%ld): %s\n", k->desc, v, k->check);
        ASSERT_EQ(v, 1);
    }
}

/* Runs one case; a failed assertion fails the case, not the walk. */
static void run_case(const struct casespec *k)
{
    jmp_buf saved;
    F.cases++;
    F.by_kind[k->kind]++;
    if (k->error)
        F.refusals++;
    else
        F.positives++;
    if (F.verbose)
        printf("  case %ld: %s -> %s\n", F.cases, k->desc, k->error ? k->error : "200");
    memcpy(saved, test_jmp_, sizeof saved);
    if (setjmp(test_jmp_) == 0) {
        do_case(k);
    } else {
        F.failed++;
        fprintf(stderr, "  FAILED case: %s\n", k->desc);
    }
    memcpy(test_jmp_, saved, sizeof saved);
}

static void spec_init(struct casespec *k, struct role_dev *d, int kind, const struct pol_table *t,
                      int op, const char *error)
{
    memset(k, 0, sizeof *k);
    k->d = d;
    k->kind = kind;
    k->table = t->name;
    k->ncol = t->ncol;
    k->pk = t->pk;
    k->op = op;
    k->error = error;
}

static void skip(const struct role_dev *d, const struct pol_table *t, int op, const char *what,
                 const char *why)
{
    F.skipped++;
    printf("  skip: [%s] %s %s %s: %s\n", d->name, op_name(op), t->name, what, why);
}

/* Three scratch rows per generator. */
struct bufs { struct rowbuf *cur, *o, *nw; };

static void bufs_new(struct bufs *b)
{
    b->cur = rb_new();
    b->o = rb_new();
    b->nw = rb_new();
}

static void bufs_clear(struct bufs *b)
{
    rb_clear(b->cur);
    rb_clear(b->o);
    rb_clear(b->nw);
}

static void bufs_free(struct bufs *b)
{
    free(b->cur);
    free(b->o);
    free(b->nw);
}

/* ---- generators, one per kind ------------------------------------------ */

/* The role lacks the right: one case with an otherwise valid change. */
static void gen_forbidden(int ti, int op, struct role_dev *d)
{
    const struct pol_table *t = T(ti);
    struct skey own = own_key(d, t);
    struct casespec k;
    struct bufs b;
    char why[160];
    int col;
    bufs_new(&b);
    spec_init(&k, d, K_ROLE, t, op, "forbidden_table");
    if (op == CS_INSERT) {
        if (build_row(ti, &own, 0, b.nw, why, sizeof why) != 0)
            minimal_row(ti, &own, b.nw);
        k.new_ = b.nw->v;
    } else {
        if (target_row(t, &own, b.cur) != 0)
            minimal_row(ti, &own, b.cur);
        if (op == CS_DELETE) {
            k.old = b.cur->v;
        } else {
            if (benign_update(ti, b.cur, b.o, b.nw, &col) != 0) {
                int any = t->id_col == 0 ? 1 : 0;           /* any change will do */
                ASSERT_LT(any, t->ncol);
                rb_null(b.nw, any);
                finish_update(t, b.cur, any, b.o, b.nw);
            }
            k.old = b.o->v;
            k.new_ = b.nw->v;
        }
    }
    snprintf(k.desc, sizeof k.desc, "[%s] %s %s (%s): the role may not", d->name, op_name(op),
             t->name, own.label);
    run_case(&k);
    bufs_free(&b);
}

/* (a), (b), (c). */
static void gen_scope(int ti, int op, struct role_dev *d)
{
    const struct pol_table *t = T(ti);
    struct skey own = own_key(d, t), oth[NTWP + NHALL];
    struct casespec k;
    struct bufs b;
    char why[160];
    uint8_t id[16];
    int col;
    bufs_new(&b);
    if (t->scope == SCOPE_COUNTY) {
        /* County rows lie in no device's scope: any write is out of scope. */
        spec_init(&k, d, K_SCOPE_ROW, t, op, "out_of_scope");
        snprintf(k.desc, sizeof k.desc, "[%s] %s %s: (a) a county row", d->name, op_name(op),
                 t->name);
        if (op == CS_INSERT && build_row(ti, &own, d->bit, b.nw, why, sizeof why) != 0) {
            skip(d, t, op, "(a)", why);
        } else if (op != CS_INSERT && target_row(t, &own, b.cur) != 0) {
            skip(d, t, op, "(a)", "no county row");
        } else if (op == CS_UPDATE && benign_update(ti, b.cur, b.o, b.nw, &col) != 0) {
            skip(d, t, op, "(a)", "nothing to update");
        } else {
            k.new_ = b.nw->v;
            k.old = op == CS_UPDATE ? b.o->v : b.cur->v;
            run_case(&k);
        }
        bufs_free(&b);
        return;
    }
    int no = other_keys(d, t, oth);
    if (no == 0)
        skip(d, t, op, "(a)", "no scope outside the device's");
    for (int i = 0; i < no; i++) {
        const struct skey *ok = &oth[i];
        /* (a) a row of another scope */
        bufs_clear(&b);
        spec_init(&k, d, K_SCOPE_ROW, t, op, "out_of_scope");
        if (op == CS_INSERT) {
            if (build_row(ti, &own, d->bit, b.nw, why, sizeof why) != 0) {
                skip(d, t, op, "(a)", why);
            } else if (t->scope_col != t->id_col || i == 0) {
                if (t->scope_col != t->id_col)
                    rb_blob(b.nw, t->scope_col, key_value(ok), 16);
                k.new_ = b.nw->v;
                snprintf(k.desc, sizeof k.desc, "[%s] INSERT %s: (a) %s = %s", d->name, t->name,
                         t->cols[t->scope_col], t->scope_col != t->id_col ? ok->label : "new");
                run_case(&k);
            }
        } else if (target_row(t, ok, b.cur) != 0) {
            skip(d, t, op, "(a)", "no row in the other scope");
        } else if (op == CS_DELETE) {
            k.old = b.cur->v;
            snprintf(k.desc, sizeof k.desc, "[%s] DELETE %s: (a) a row of %s", d->name, t->name,
                     ok->label);
            run_case(&k);
        } else if (benign_update(ti, b.cur, b.o, b.nw, &col) != 0) {
            skip(d, t, op, "(a)", "nothing to update");
        } else {
            k.old = b.o->v;
            k.new_ = b.nw->v;
            snprintf(k.desc, sizeof k.desc, "[%s] UPDATE %s: (a) %s of a row of %s", d->name,
                     t->name, t->cols[col], ok->label);
            run_case(&k);
        }
        /* (b) an own row's scope key moved out */
        if (op == CS_UPDATE && t->scope_col != t->id_col) {
            bufs_clear(&b);
            spec_init(&k, d, K_SCOPE_KEY, t, op, "out_of_scope");
            if (target_row(t, &own, b.cur) != 0) {
                skip(d, t, op, "(b)", "no row in the device's scope");
            } else {
                rb_blob(b.nw, t->scope_col, key_value(ok), 16);
                finish_update(t, b.cur, t->scope_col, b.o, b.nw);
                k.old = b.o->v;
                k.new_ = b.nw->v;
                snprintf(k.desc, sizeof k.desc, "[%s] UPDATE %s: (b) %s %s -> %s", d->name,
                         t->name, t->cols[t->scope_col], own.label, ok->label);
                run_case(&k);
            }
        }
        /* (c) an own-scope insert reusing another scope's id */
        if (op == CS_INSERT && t->scope_col != t->id_col) {
            bufs_clear(&b);
            spec_init(&k, d, K_PK_MOVE, t, op, "out_of_scope");
            if (find_row(t, ok, id) != 0) {
                skip(d, t, op, "(c)", "no row in the other scope");
            } else if (build_row(ti, &own, d->bit, b.nw, why, sizeof why) != 0) {
                skip(d, t, op, "(c)", why);
            } else {
                rb_blob(b.nw, t->id_col, id, 16);
                k.new_ = b.nw->v;
                snprintf(k.desc, sizeof k.desc, "[%s] INSERT %s: (c) id of a row of %s, %s = %s",
                         d->name, t->name, ok->label, t->cols[t->scope_col], own.label);
                run_case(&k);
            }
        }
    }
    bufs_free(&b);
}

/* (d) */
static void gen_protected(int ti, int op, struct role_dev *d)
{
    const struct pol_table *t = T(ti);
    struct skey own = own_key(d, t);
    struct casespec k;
    struct bufs b;
    char why[160];
    if (op == CS_DELETE)
        return;
    bufs_new(&b);
    for (int c = 0; c < t->ncol; c++) {
        if (!((t->protected_ >> c) & 1) || c == t->id_col)
            continue;
        bufs_clear(&b);
        spec_init(&k, d, K_PROTECTED, t, op, "protected_column");
        if (op == CS_INSERT) {
            if (build_row(ti, &own, d->bit, b.nw, why, sizeof why) != 0) {
                skip(d, t, op, "(d)", why);
                continue;
            }
        } else if (target_row(t, &own, b.cur) != 0) {
            skip(d, t, op, "(d)", "no row in the device's scope");
            continue;
        }
        uint8_t id[16];
        if (t->ref[c] >= 0) {
            if (find_row(T(t->ref[c]), &own, id) != 0) {
                skip(d, t, op, "(d)", "no row to refer to");
                continue;
            }
            rb_blob(b.nw, c, id, 16);
        } else if (plain_value(ti, c, op == CS_UPDATE ? &b.cur->v[c] : NULL, 1, b.nw) != 0) {
            skip(d, t, op, "(d)", "no valid value for the protected column");
            continue;
        }
        if (op == CS_UPDATE) {
            finish_update(t, b.cur, c, b.o, b.nw);
            k.old = b.o->v;
        }
        k.new_ = b.nw->v;
        char v[96];
        lit(v, sizeof v, &b.nw->v[c]);
        snprintf(k.desc, sizeof k.desc, "[%s] %s %s: (d) protected %s = %s", d->name,
                 op_name(op), t->name, t->cols[c], v);
        run_case(&k);
    }
    bufs_free(&b);
}

/* (e), and a legal state move as a positive control. */
static void gen_states(int ti, int op, struct role_dev *d)
{
    const struct pol_table *t = T(ti);
    struct skey own = own_key(d, t);
    struct casespec k;
    struct bufs b;
    char why[160], x[36];
    int sc = t->state_col;
    if (op == CS_DELETE || sc < 0)
        return;
    bufs_new(&b);
    for (int s = 0; s <= t->nstates; s++) {
        const char *val = "authz_undeclared";
        if (s < t->nstates) {
            if (t->states[s].roles & d->bit)
                continue;
            val = t->states[s].value;
        } else {
            ASSERT_NULL(policy_state(t, (const uint8_t *)val, strlen(val)));
        }
        bufs_clear(&b);
        spec_init(&k, d, K_STATE, t, op, "illegal_state");
        if (op == CS_INSERT) {
            if (build_row(ti, &own, d->bit, b.nw, why, sizeof why) != 0) {
                skip(d, t, op, "(e)", why);
                continue;
            }
            rb_text(b.nw, sc, val);
        } else {
            if (target_row(t, &own, b.cur) != 0) {
                skip(d, t, op, "(e)", "no row in the device's scope");
                continue;
            }
            rb_text(b.nw, sc, val);
            finish_update(t, b.cur, sc, b.o, b.nw);
            k.old = b.o->v;
        }
        k.new_ = b.nw->v;
        snprintf(k.desc, sizeof k.desc, "[%s] %s %s: (e) %s = '%s'%s", d->name, op_name(op),
                 t->name, t->cols[sc], val, s < t->nstates ? "" : " (undeclared)");
        run_case(&k);
    }
    /* The next state up that the role may set must be accepted. */
    if (op == CS_UPDATE && target_row(t, &own, b.cur) == 0) {
        const struct cs_value *cv = &b.cur->v[sc];
        const struct pol_state *now = cv->type == CS_TEXT ? policy_state(t, cv->p, cv->n) : NULL;
        for (int s = 0; now && s < t->nstates; s++) {
            if (t->states[s].rank <= now->rank || !(t->states[s].roles & d->bit))
                continue;
            rb_clear(b.o);
            rb_clear(b.nw);
            spec_init(&k, d, K_POSITIVE, t, op, NULL);
            rb_text(b.nw, sc, t->states[s].value);
            finish_update(t, b.cur, sc, b.o, b.nw);
            k.old = b.o->v;
            k.new_ = b.nw->v;
            snprintf(k.check, sizeof k.check, "SELECT count(*) FROM \"%s\" WHERE id = %s AND "
                     "\"%s\" = '%s'", t->name, xid(b.cur->v[t->id_col].p, x), t->cols[sc],
                     t->states[s].value);
            snprintf(k.desc, sizeof k.desc, "[%s] UPDATE %s: (e+) %s '%s' -> '%s'", d->name,
                     t->name, t->cols[sc], now->value, t->states[s].value);
            run_case(&k);
            break;
        }
    }
    bufs_free(&b);
}

/* (f) */
static void gen_refs(int ti, int op, struct role_dev *d)
{
    const struct pol_table *t = T(ti);
    struct skey own = own_key(d, t), fk;
    struct casespec k;
    struct bufs b;
    char why[160];
    uint8_t fid[16];
    if (op == CS_DELETE)
        return;
    bufs_new(&b);
    for (int c = 0; c < t->ncol; c++) {
        if (t->ref[c] < 0 || c == t->scope_col || c == t->id_col)
            continue;
        const struct pol_table *r = T(t->ref[c]);
        if (r->scope == SCOPE_COUNTY) {
            F.na++;                      /* every device may see county rows */
            continue;
        }
        if (foreign_key_scope(d, r, &fk) != 0 || find_row(r, &fk, fid) != 0) {
            skip(d, t, op, "(f)", "no row of another township to refer to");
            continue;
        }
        bufs_clear(&b);
        spec_init(&k, d, K_REF, t, op, "out_of_scope");
        if (op == CS_INSERT) {
            if (build_row(ti, &own, d->bit, b.nw, why, sizeof why) != 0) {
                skip(d, t, op, "(f)", why);
                continue;
            }
            rb_blob(b.nw, c, fid, 16);
        } else {
            if (target_row(t, &own, b.cur) != 0) {
                skip(d, t, op, "(f)", "no row in the device's scope");
                continue;
            }
            rb_blob(b.nw, c, fid, 16);
            finish_update(t, b.cur, c, b.o, b.nw);
            k.old = b.o->v;
        }
        k.new_ = b.nw->v;
        snprintf(k.desc, sizeof k.desc, "[%s] %s %s: (f) %s -> a %s row of %s", d->name,
                 op_name(op), t->name, t->cols[c], r->name, fk.label);
        run_case(&k);
    }
    bufs_free(&b);
}

/* SQL INSERT for a server-side fixture row. */
static void append_insert(struct buf *sql, const struct pol_table *t, const struct rowbuf *r)
{
    char v[1024];
    snprintf(v, sizeof v, "INSERT INTO \"%s\" (", t->name);
    buf_append(sql, v, strlen(v));
    for (int c = 0; c < t->ncol; c++) {
        snprintf(v, sizeof v, "%s\"%s\"", c ? ", " : "", t->cols[c]);
        buf_append(sql, v, strlen(v));
    }
    buf_append(sql, ") VALUES (", 10);
    for (int c = 0; c < t->ncol; c++) {
        if (c)
            buf_append(sql, ", ", 2);
        lit(v, sizeof v, &r->v[c]);
        buf_append(sql, v, strlen(v));
    }
    buf_append(sql, ");\n", 3);
}

/* One positive control per allowed (table, op, role). */
static void gen_positive(int ti, int op, struct role_dev *d)
{
    const struct pol_table *t = T(ti);
    struct skey own = own_key(d, t);
    struct casespec k;
    struct bufs b;
    char why[160], x[36], a[36], v[600];
    int col;
    if (t->scope == SCOPE_COUNTY) {
        skip(d, t, op, "positive", "county rows are outside every device's scope");
        return;
    }
    if (op != CS_UPDATE && t->scope_col == t->id_col) {
        skip(d, t, op, "positive", "the row is a scope itself");
        return;
    }
    bufs_new(&b);
    spec_init(&k, d, K_POSITIVE, t, op, NULL);
    if (op == CS_INSERT) {
        if (build_row(ti, &own, d->bit, b.nw, why, sizeof why) != 0) {
            skip(d, t, op, "positive", why);
        } else {
            k.new_ = b.nw->v;
            snprintf(k.check, sizeof k.check, "SELECT count(*) FROM \"%s\" WHERE id = %s AND "
                     "\"%s\" = %s", t->name, xid(b.nw->v[t->id_col].p, x),
                     t->cols[t->scope_col], xid(key_value(&own), a));
            snprintf(k.desc, sizeof k.desc, "[%s] INSERT %s: positive, a valid row of %s",
                     d->name, t->name, own.label);
            run_case(&k);
        }
    } else if (op == CS_UPDATE) {
        if (target_row(t, &own, b.cur) != 0) {
            skip(d, t, op, "positive", "no row in the device's scope");
        } else if (plain_col(t, 0) < 0) {
            skip(d, t, op, "positive", "no column a tablet may change");
        } else if (benign_update(ti, b.cur, b.o, b.nw, &col) != 0) {
            skip(d, t, op, "positive", "no valid new value");
        } else {
            k.old = b.o->v;
            k.new_ = b.nw->v;
            lit(v, sizeof v, &b.nw->v[col]);
            if ((t->personal >> col) & 1) {       /* sealed on the server: open it there */
                snprintf(k.check, sizeof k.check, "SELECT count(*) FROM \"%s\" WHERE id = %s AND "
                         "es_dec('%s', '%s', id, \"%s\") IS %s", t->name,
                         xid(b.cur->v[t->id_col].p, x), t->name, t->cols[col], t->cols[col], v);
                k.check_keys = 1;
            } else {
                snprintf(k.check, sizeof k.check, "SELECT count(*) FROM \"%s\" WHERE id = %s AND "
                         "\"%s\" IS %s", t->name, xid(b.cur->v[t->id_col].p, x), t->cols[col], v);
            }
            snprintf(k.desc, sizeof k.desc, "[%s] UPDATE %s: positive, %s of a row of %s",
                     d->name, t->name, t->cols[col], own.label);
            run_case(&k);
        }
    } else {
        /* A throwaway row made by the county, then deleted by the tablet. */
        if (build_row(ti, &own, 0, b.cur, why, sizeof why) != 0) {
            skip(d, t, op, "positive", why);
        } else {
            struct buf sql = {0};
            append_insert(&sql, t, b.cur);
            buf_byte(&sql, 0);
            ASSERT(!sql.oom);
            srv_exec(&F.p, (const char *)sql.p);
            buf_free(&sql);
            ASSERT_EQ(fetch_id(t, b.cur->v[t->id_col].p, b.o), 0);
            k.old = b.o->v;
            snprintf(k.check, sizeof k.check, "SELECT count(*) = 0 FROM \"%s\" WHERE id = %s",
                     t->name, xid(b.o->v[t->id_col].p, x));
            snprintf(k.desc, sizeof k.desc, "[%s] DELETE %s: positive, a row of %s", d->name,
                     t->name, own.label);
            run_case(&k);
        }
    }
    bufs_free(&b);
}

typedef void (*gen_fn)(int ti, int op, struct role_dev *d);

/* Every synced table x op x role: allowed() where the role has the right,
 * forbidden() where it has not. */
static void walk(gen_fn allowed, gen_fn forbidden)
{
    for (int ti = 0; ti < F.pol->ntables; ti++)
        for (int o = 0; o < NOPS; o++)
            for (int i = 0; i < NROLES; i++) {
                struct role_dev *d = &F.dev[i];
                gen_fn fn = (op_mask(T(ti), OPS[o]) & d->bit) ? allowed : forbidden;
                if (fn)
                    fn(ti, OPS[o], d);
            }
}

/* ---- server-only tables ------------------------------------------------- */

static void server_value(struct rowbuf *r, int c, int aff, int unique)
{
    char s[48];
    switch (aff) {
    case CS_INT:
        rb_int(r, c, unique ? 1000000000 + ++F.uniq : 1);
        break;
    case CS_REAL: {
        struct cs_value v = { .type = CS_REAL, .r = 1.0 };
        rb_put(r, c, &v);
        break;
    }
    case CS_TEXT:
        if (unique)
            snprintf(s, sizeof s, "authz-%ld", ++F.uniq);
        else
            snprintf(s, sizeof s, "authz");
        rb_text(r, c, s);
        break;
    default:
        rb_fresh_id(r, c);
        break;
    }
}

/* WHERE clause matching row r on the primary key columns. */
static void pk_where(char *out, size_t n, int ncol, const uint8_t *pk, char cols[][48],
                     const struct rowbuf *r)
{
    size_t k = 0;
    char v[300];
    out[0] = '\0';
    for (int c = 0; c < ncol; c++) {
        if (!pk[c])
            continue;
        lit(v, sizeof v, &r->v[c]);
        k += (size_t)snprintf(out + k, n - k, "%s\"%s\" IS %s", k ? " AND " : "", cols[c], v);
        ASSERT_LT(k, n);
    }
    if (k == 0)
        snprintf(out, n, "0");
}

static void gen_server_table(const char *name)
{
    char cols[POL_MAXCOL][48], where[700], v[300];
    int aff[POL_MAXCOL], ncol = 0;
    uint8_t pk[POL_MAXCOL];
    sqlite3_stmt *st = NULL;
    struct casespec k;
    struct bufs b;
    struct pol_table fake;           /* for spec_init: name, ncol, pk */

    ASSERT_EQ(sqlite3_prepare_v2(F.ro, "SELECT name, type, pk FROM pragma_table_info(?1) "
                                 "ORDER BY cid", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        ASSERT_LT(ncol, POL_MAXCOL);
        const char *ty = (const char *)sqlite3_column_text(st, 1);
        snprintf(cols[ncol], sizeof cols[0], "%s", (const char *)sqlite3_column_text(st, 0));
        aff[ncol] = affinity(ty ? ty : "");
        pk[ncol] = (uint8_t)sqlite3_column_int(st, 2);
        ncol++;
    }
    sqlite3_finalize(st);
    ASSERT_GT(ncol, 0);
    memset(&fake, 0, sizeof fake);
    snprintf(fake.name, sizeof fake.name, "%.63s", name);
    fake.ncol = ncol;
    memcpy(fake.pk, pk, sizeof pk);
    int upd = 0;                                 /* the first non-key column */
    for (int c = 0; c < ncol; c++)
        if (!pk[c]) {
            upd = c;
            break;
        }

    bufs_new(&b);
    for (int o = 0; o < NOPS; o++) {
        for (int i = 0; i < NROLES; i++) {
            struct role_dev *d = &F.dev[i];
            int op = OPS[o], exists = 0;
            bufs_clear(&b);
            spec_init(&k, d, K_SERVER, &fake, op, "forbidden_table");
            if (op != CS_INSERT && fetch_where(name, "1", b.cur, NULL) == 0)
                exists = 1;
            if (!exists)
                for (int c = 0; c < ncol; c++)
                    server_value(b.cur, c, aff[c], pk[c] != 0);
            pk_where(where, sizeof where, ncol, pk, cols, b.cur);
            if (op == CS_INSERT) {
                k.new_ = b.cur->v;
                snprintf(k.check, sizeof k.check, "SELECT count(*) = 0 FROM \"%s\" WHERE %s",
                         fake.name, where);
            } else if (op == CS_DELETE) {
                k.old = b.cur->v;
                snprintf(k.check, sizeof k.check, "SELECT count(*) %s FROM \"%s\" WHERE %s",
                         exists ? "= 1" : "= 0", fake.name, where);
            } else {
                for (int c = 0; c < ncol; c++)
                    if (pk[c])
                        rb_put(b.o, c, &b.cur->v[c]);
                rb_put(b.o, upd, &b.cur->v[upd]);
                const struct cs_value *cv = &b.cur->v[upd];
                if (cv->type == CS_INT)
                    rb_int(b.nw, upd, cv->i + 1);
                else if (cv->type == CS_TEXT)
                    rb_text(b.nw, upd, cv->n == 5 && memcmp(cv->p, "authz", 5) == 0 ? "authz2"
                                                                                     : "authz");
                else
                    server_value(b.nw, upd, aff[upd], 1);
                k.old = b.o->v;
                k.new_ = b.nw->v;
                lit(v, sizeof v, cv);
                if (exists)
                    snprintf(k.check, sizeof k.check, "SELECT count(*) FROM \"%s\" WHERE %s AND "
                             "\"%s\" IS %s", fake.name, where, cols[upd], v);
                else
                    snprintf(k.check, sizeof k.check, "SELECT count(*) = 0 FROM \"%s\" WHERE %s",
                             fake.name, where);
            }
            snprintf(k.desc, sizeof k.desc, "[%s] %s %s: server-only table%s", d->name,
                     op_name(op), fake.name,
                     op == CS_INSERT || exists ? "" : " (no row to target)");
            run_case(&k);
        }
    }
    bufs_free(&b);
}

/* ---- setup ------------------------------------------------------------- */

/* Creates, server-side, a row of every scoped table in every township and
 * hall that has none yet (a visit in T1, a meal in H1, ...).  Rows that
 * depend on others come in later passes. */
static void make_fixtures(void)
{
    struct rowbuf *r = rb_new();
    char why[160];
    for (int pass = 0; pass <= F.pol->ntables; pass++) {
        struct buf sql = {0};
        int n = 0;
        for (int ti = 0; ti < F.pol->ntables; ti++) {
            const struct pol_table *t = T(ti);
            struct skey keys[NTWP + NHALL];
            int nk = 0;
            uint8_t id[16];
            if (t->scope != SCOPE_COUNTY && t->scope_col == t->id_col)
                continue;                        /* its rows are the scopes */
            if (t->scope == SCOPE_COUNTY)
                keys[nk++] = key_county();
            else if (t->scope == SCOPE_TOWNSHIP)
                for (int i = 0; i < NTWP; i++)
                    keys[nk++] = key_twp(i);
            else
                for (int h = 0; h < NHALL; h++)
                    keys[nk++] = key_hall(h);
            for (int i = 0; i < nk; i++) {
                if (find_row(t, &keys[i], id) == 0 || build_row(ti, &keys[i], 0, r, why,
                                                                sizeof why) != 0)
                    continue;
                append_insert(&sql, t, r);
                n++;
            }
        }
        if (n == 0) {
            buf_free(&sql);
            break;
        }
        buf_byte(&sql, 0);
        ASSERT(!sql.oom);
        srv_exec(&F.p, (const char *)sql.p);
        buf_free(&sql);
    }
    free(r);
}

static void fixture(void)
{
    static const char *const names[NROLES] = { "caregiver", "inspector", "hall" };
    char err[256];
    if (F.up)
        return;
    ASSERT(!F.tried);                  /* setup failed before: do not retry */
    F.tried = 1;
    F.verbose = getenv("AUTHZ_VERBOSE") != NULL;
    test_dir(F.dir, sizeof F.dir, "authz");
    snprintf(F.db, sizeof F.db, "%s/server.db", F.dir);
    county_seed(F.db, &F.c);
    srv_start(&F.p, F.dir, F.db);
    ASSERT_EQ(F.c.hall_twp[0], 0);
    for (int i = 0; i < NROLES; i++) {
        struct role_dev *d = &F.dev[i];
        d->name = names[i];
        d->bit = role_bit(names[i]);
        ASSERT(d->bit != 0);
        d->twp = 0;
        d->hall = d->bit == ROLE_HALL ? 0 : -1;
        d->c = tablet_new(&F.p, names[i], names[i], d->hall >= 0 ? F.c.hall[0] : F.c.twp[0]);
        load_ident(names[i], &d->id);
    }
    ASSERT_EQ(sync_run(F.dev[0].c, NULL), SYNC_OK);       /* receives the data keys */
    F.key_id = F.dev[0].c->active_key;
    ASSERT_EQ(client_data_key(F.dev[0].c, F.key_id, F.key), SYNC_OK);
    ASSERT_EQ(sqlite3_open_v2(F.db, &F.ro, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(F.ro, 10000);
    int rc = policy_load(F.ro, &F.pol, err, sizeof err);
    if (rc != SYNC_OK)
        fprintf(stderr, "  policy_load: %s\n", err);
    ASSERT_EQ(rc, SYNC_OK);
    ASSERT_GT(F.pol->ntables, 0);
    ASSERT_LE(F.pol->ntables, MAXTBL);
    ASSERT_EQ(sqlite3_open(":memory:", &F.probe), SQLITE_OK);
    for (int ti = 0; ti < F.pol->ntables; ti++)
        load_colmeta(ti);
    /* The hall table (hall scoped, keyed by its own id) and its township. */
    F.hall_tbl = F.hall_twp_col = -1;
    for (int ti = 0; ti < F.pol->ntables; ti++)
        if (T(ti)->scope == SCOPE_HALL && T(ti)->scope_col == T(ti)->id_col)
            F.hall_tbl = ti;
    ASSERT_GE(F.hall_tbl, 0);
    for (int c = 0; c < T(F.hall_tbl)->ncol; c++) {
        int r = T(F.hall_tbl)->ref[c];
        if (r >= 0 && T(r)->scope == SCOPE_TOWNSHIP && T(r)->scope_col == T(r)->id_col)
            F.hall_twp_col = c;
    }
    ASSERT_GE(F.hall_twp_col, 0);
    make_fixtures();
    F.up = 1;
}

/* ---- tests --------------------------------------------------------------- */

#define MATRIX_TEST(fn, allowed, forbidden)                                  \
    static void fn(void)                                                    \
    {                                                                       \
        fixture();                                                          \
        long f0 = F.failed;                                                 \
        walk(allowed, forbidden);                                           \
        ASSERT_EQ(F.failed, f0);                                            \
    }

MATRIX_TEST(test_role_forbidden, NULL, gen_forbidden)
MATRIX_TEST(test_scope, gen_scope, NULL)
MATRIX_TEST(test_protected, gen_protected, NULL)
MATRIX_TEST(test_states, gen_states, NULL)
MATRIX_TEST(test_refs, gen_refs, NULL)
MATRIX_TEST(test_positive, gen_positive, NULL)

static void test_server_only(void)
{
    char names[64][64];
    int n = 0;
    sqlite3_stmt *st = NULL;
    fixture();
    long f0 = F.failed;
    ASSERT_EQ(sqlite3_prepare_v2(F.ro, "SELECT name FROM sqlite_schema WHERE type = 'table' "
                                 "ORDER BY name", -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW && n < 64) {
        const char *s = (const char *)sqlite3_column_text(st, 0);
        if (s && policy_table(F.pol, s) == NULL)
            snprintf(names[n++], sizeof names[0], "%s", s);
    }
    sqlite3_finalize(st);
    F.nserver = n;
    ASSERT_GT(n, 0);
    for (int i = 0; i < n; i++)
        gen_server_table(names[i]);
    ASSERT_EQ(F.failed, f0);
}

static void test_summary(void)
{
    fixture();
    printf("authz: %ld cases (%ld refusals, %ld positive controls, %ld skipped) over %d tables "
           "(%d synced, %d server-only) x 3 ops x 3 roles\n", F.cases, F.refusals, F.positives,
           F.skipped, F.pol->ntables + F.nserver, F.pol->ntables, F.nserver);
    printf("authz: by kind:");
    for (int i = 0; i < NKINDS; i++)
        printf("%s %s %ld", i ? "," : "", kind_names[i], F.by_kind[i]);
    printf("; %ld references to county tables n/a; %ld requests rate-limited and resent; "
           "%ld cases failed\n", F.na, F.throttled, F.failed);
    fflush(stdout);
    ASSERT_GT(F.by_kind[K_ROLE], 0);
    ASSERT_GT(F.by_kind[K_SERVER], 0);
    ASSERT_GT(F.by_kind[K_POSITIVE], 0);
}

static const struct test_case tests[] = {
    TEST(test_role_forbidden),
    TEST(test_scope),
    TEST(test_protected),
    TEST(test_states),
    TEST(test_refs),
    TEST(test_positive),
    TEST(test_server_only),
    TEST(test_summary),
    { NULL, NULL }
};

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (sodium_init() < 0)
        return 1;
    int rc = test_run_all("test_authz", tests);
    if (F.p.pid > 0)
        srv_stop(&F.p);
    for (int i = 0; i < NROLES; i++)
        sync_client_close(F.dev[i].c);
    policy_free(F.pol);
    sqlite3_close(F.ro);
    sqlite3_close(F.probe);
    return rc;
}
