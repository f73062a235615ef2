/* test_changeset.c - tests for client-sdk/src/changeset.c.
 *
 * Checks the validator, iterator and writer against SQLite 3.40.1's own
 * session extension: changesets SQLite writes must be accepted and read back
 * identically, changesets we write must apply, and anything we accept after
 * truncation or mutation must be safe to hand to sqlite3changeset_*.
 * Run it under -fsanitize=address,undefined: every buffer given to the
 * validator is an exact-size heap copy, so an over-read is caught.
 */
#define _POSIX_C_SOURCE 200809L
#define SQLITE_ENABLE_SESSION
#define SQLITE_ENABLE_PREUPDATE_HOOK
#include <sqlite3.h>

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "changeset.h"
#include "eldersync.h"
#include "test.h"

/* ---- schema shared by SQLite and the validator's lookup --------------- */

static const char schema_sql[] =
    "CREATE TABLE t1(id INTEGER PRIMARY KEY, x, y);"
    "CREATE TABLE t2(a, b NOT NULL, c NOT NULL, d, PRIMARY KEY(c, b));";

struct table_def {
    const char *name;
    int         ncol;
    uint8_t     pk[4];
};
static const struct table_def schema[] = {
    { "t1", 3, { 1, 0, 0 } },
    { "t2", 4, { 0, 2, 1, 0 } },       /* PRIMARY KEY(c, b): c first, b second */
};
static const uint8_t t1_pk[3] = { 1, 0, 0 };
static const uint8_t t2_pk[4] = { 0, 2, 1, 0 };

static int lookup(void *ctx, const char *name, struct cs_table_info *info)
{
    (void)ctx;
    for (size_t i = 0; i < sizeof schema / sizeof schema[0]; i++) {
        if (strcmp(name, schema[i].name) == 0) {
            info->ncol = schema[i].ncol;
            info->pk = schema[i].pk;
            return 0;
        }
    }
    return -1;
}

/* ---- helpers ---------------------------------------------------------- */

static struct cs_value vi(int64_t i) { struct cs_value v = { CS_INT, i, 0, NULL, 0 }; return v; }
static struct cs_value vr(double r) { struct cs_value v = { CS_REAL, 0, r, NULL, 0 }; return v; }
static struct cs_value vnull(void) { struct cs_value v = { CS_NULL, 0, 0, NULL, 0 }; return v; }
static struct cs_value vundef(void) { struct cs_value v = { CS_UNDEF, 0, 0, NULL, 0 }; return v; }
static struct cs_value vt(const char *s)
{
    struct cs_value v = { CS_TEXT, 0, 0, (const uint8_t *)s, strlen(s) };
    return v;
}
static struct cs_value vb(const void *p, size_t n)
{
    struct cs_value v = { CS_BLOB, 0, 0, p, n };
    return v;
}

/* Exact-size heap copy, so ASan sees any read past the end. */
static uint8_t *dup_exact(const uint8_t *buf, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    ASSERT_NOT_NULL(p);
    if (len)
        memcpy(p, buf, len);
    return p;
}

static sqlite3 *open_db(void)
{
    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, schema_sql, NULL, NULL, NULL), SQLITE_OK);
    return db;
}

static void exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "  sql error: %s\n", msg ? msg : "?");
    sqlite3_free(msg);
    ASSERT_EQ(rc, SQLITE_OK);
}

/* Runs a one-value query and returns its integer. */
static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int validate(const uint8_t *buf, size_t len, const struct cs_limits *lim,
                    size_t *n, struct cs_error *e)
{
    uint8_t *copy = dup_exact(buf, len);
    int rc = cs_validate(copy, len, lookup, NULL, lim, n, e);
    free(copy);
    return rc;
}

/* Asserts that validation gives `code` (and, on failure, that the message
 * contains `needle` if given).  Also drives the iterator over the same bytes,
 * which must not crash whatever they are. */
static void expect(const uint8_t *buf, size_t len, const struct cs_limits *lim, int code,
                   const char *needle)
{
    struct cs_error e;
    size_t n = 999;
    int rc = validate(buf, len, lim, &n, &e);
    if (rc != code)
        fprintf(stderr, "  expected %d, got %d: %s\n", code, rc, rc ? e.msg : "ok");
    ASSERT_EQ(rc, code);
    if (code != SYNC_OK) {
        ASSERT_EQ(e.code, code);
        ASSERT_LE(e.offset, len);
        ASSERT_EQ(n, 999);
        if (needle != NULL && strstr(e.msg, needle) == NULL)
            fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", e.msg, needle);
        ASSERT(needle == NULL || strstr(e.msg, needle) != NULL);
    }
    uint8_t *copy = dup_exact(buf, len);
    struct cs_iter *it = malloc(sizeof *it);
    ASSERT_NOT_NULL(it);
    cs_iter_init(it, copy, len);
    int r;
    while ((r = cs_iter_next(it)) == 1)
        ;
    if (code == SYNC_OK)
        ASSERT_EQ(r, 0);
    free(it);
    free(copy);
}

static uint8_t *finish(struct cs_writer *w, size_t *len)
{
    uint8_t *out = NULL;
    ASSERT_EQ(cs_writer_finish(w, &out, len), SYNC_OK);
    return out;
}

/* Touches everything SQLite exposes for a value, so ASan sees bad reads. */
static void touch_value(sqlite3_value *v)
{
    if (v == NULL)
        return;
    switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER: (void)sqlite3_value_int64(v); break;
    case SQLITE_FLOAT:   (void)sqlite3_value_double(v); break;
    case SQLITE_TEXT:    (void)strlen((const char *)sqlite3_value_text(v)); break;
    case SQLITE_BLOB: {
        const uint8_t *p = sqlite3_value_blob(v);
        int n = sqlite3_value_bytes(v);
        volatile uint8_t sum = 0;
        for (int i = 0; i < n; i++)
            sum = (uint8_t)(sum + p[i]);
        break;
    }
    default: break;
    }
}

/* A full sqlite3changeset walk; for buffers we accepted, SQLite must read
 * them to the end without error. */
static void sqlite_walk(const uint8_t *buf, size_t len)
{
    static uint8_t dummy;
    sqlite3_changeset_iter *si = NULL;
    int rc = sqlite3changeset_start(&si, (int)len, (void *)(len ? buf : &dummy));
    ASSERT_EQ(rc, SQLITE_OK);
    while ((rc = sqlite3changeset_next(si)) == SQLITE_ROW) {
        const char *tab;
        int ncol, op, ind, npk;
        unsigned char *pk;
        sqlite3_value *v;
        ASSERT_EQ(sqlite3changeset_op(si, &tab, &ncol, &op, &ind), SQLITE_OK);
        ASSERT_EQ(sqlite3changeset_pk(si, &pk, &npk), SQLITE_OK);
        for (int i = 0; i < ncol; i++) {
            if (op != SQLITE_INSERT && sqlite3changeset_old(si, i, &v) == SQLITE_OK)
                touch_value(v);
            if (op != SQLITE_DELETE && sqlite3changeset_new(si, i, &v) == SQLITE_OK)
                touch_value(v);
        }
    }
    ASSERT_EQ(rc, SQLITE_DONE);
    ASSERT_EQ(sqlite3changeset_finalize(si), SQLITE_OK);
}

static int omit_conflict(void *ctx, int type, sqlite3_changeset_iter *it)
{
    (void)ctx; (void)type; (void)it;
    return SQLITE_CHANGESET_OMIT;
}

/* What a server does with an accepted changeset: combine and apply it.  The
 * outcome may be an SQL error (a mutated value may not fit the column); only
 * memory safety is being tested. */
static void sqlite_use(sqlite3 *db, const uint8_t *buf, size_t len)
{
    sqlite3_changegroup *g = NULL;
    ASSERT_EQ(sqlite3changegroup_new(&g), SQLITE_OK);
    if (len && sqlite3changegroup_add(g, (int)len, (void *)buf) == SQLITE_OK) {
        int n = 0;
        void *out = NULL;
        if (sqlite3changegroup_output(g, &n, &out) == SQLITE_OK)
            sqlite3_free(out);
    }
    sqlite3changegroup_delete(g);
    if (len)
        (void)sqlite3changeset_apply_v2(db, (int)len, (void *)buf, NULL, omit_conflict, NULL,
                                        NULL, NULL, 0);
}

/* ---- 1. round trip against sqlite3session ---------------------------- */

static void compare_value(const struct cs_value *cv, sqlite3_value *sv)
{
    if (cv->type == CS_UNDEF) {
        ASSERT_NULL(sv);
        return;
    }
    ASSERT_NOT_NULL(sv);
    ASSERT_EQ(sqlite3_value_type(sv), cv->type);  /* SQLite's codes are ours */
    switch (cv->type) {
    case CS_INT:
        ASSERT_EQ(sqlite3_value_int64(sv), cv->i);
        break;
    case CS_REAL: {
        double d = sqlite3_value_double(sv);
        ASSERT_MEM_EQ(&d, &cv->r, sizeof d);
        break;
    }
    case CS_TEXT:
    case CS_BLOB: {
        const void *p = cv->type == CS_TEXT ? (const void *)sqlite3_value_text(sv)
                                            : sqlite3_value_blob(sv);
        ASSERT_EQ(sqlite3_value_bytes(sv), cv->n);
        ASSERT(cv->n == 0 || memcmp(p, cv->p, cv->n) == 0);
        break;
    }
    default:
        break;
    }
}

/* Tallies of what a lock-step walk saw, to check the test data covered the
 * cases it is meant to. */
struct seen {
    int ops[3], indirect, types[6], long_text, changes;
};

static int op_index(int op) { return op == CS_INSERT ? 0 : op == CS_UPDATE ? 1 : 2; }

/* Walks cs_iter and SQLite's iterator in lock step; they must agree. */
static void compare_with_sqlite(const uint8_t *buf, size_t len, struct seen *s)
{
    sqlite3_changeset_iter *si = NULL;
    struct cs_iter *it = malloc(sizeof *it);
    ASSERT_NOT_NULL(it);
    ASSERT_EQ(sqlite3changeset_start(&si, (int)len, (void *)buf), SQLITE_OK);
    cs_iter_init(it, buf, len);
    for (;;) {
        int a = cs_iter_next(it), b = sqlite3changeset_next(si);
        if (b == SQLITE_DONE) {
            ASSERT_EQ(a, 0);
            break;
        }
        ASSERT_EQ(b, SQLITE_ROW);
        ASSERT_EQ(a, 1);
        const char *tab;
        int ncol, op, ind, npk;
        unsigned char *pk;
        ASSERT_EQ(sqlite3changeset_op(si, &tab, &ncol, &op, &ind), SQLITE_OK);
        ASSERT_EQ(sqlite3changeset_pk(si, &pk, &npk), SQLITE_OK);
        ASSERT_STR_EQ(tab, it->table);
        ASSERT_EQ(ncol, it->ncol);
        ASSERT_EQ(npk, it->ncol);
        ASSERT_MEM_EQ(pk, it->pk, (size_t)ncol);
        ASSERT_EQ(op, it->op);
        ASSERT_EQ(ind, it->indirect);
        s->changes++;
        s->ops[op_index(op)]++;
        s->indirect += ind;
        for (int i = 0; i < ncol; i++) {
            sqlite3_value *v = NULL;
            if (op != SQLITE_INSERT) {
                ASSERT_EQ(sqlite3changeset_old(si, i, &v), SQLITE_OK);
                compare_value(&it->old[i], v);
                s->types[it->old[i].type]++;
            }
            if (op != SQLITE_DELETE) {
                ASSERT_EQ(sqlite3changeset_new(si, i, &v), SQLITE_OK);
                compare_value(&it->new_[i], v);
                s->types[it->new_[i].type]++;
                s->long_text += it->new_[i].type == CS_TEXT && it->new_[i].n > 127;
            }
        }
    }
    ASSERT_EQ(sqlite3changeset_finalize(si), SQLITE_OK);
    free(it);
}

/* Records a varied session on t1 and t2 and returns SQLite's changeset
 * (release with sqlite3_free). */
static uint8_t *session_changeset(size_t *len)
{
    sqlite3 *db = open_db();
    sqlite3_session *s = NULL;
    exec(db, "INSERT INTO t1 VALUES(10, 'old', 1.5), (11, 'gone', x'beef'), (12, 'mv', 0);"
             "INSERT INTO t2 VALUES('a0', 1, 'c0', NULL), ('a1', 2, 'c1', 7);");
    ASSERT_EQ(sqlite3session_create(db, "main", &s), SQLITE_OK);
    ASSERT_EQ(sqlite3session_attach(s, NULL), SQLITE_OK);
    exec(db, "INSERT INTO t1 VALUES(1, 42, 'hello'), (2, 3.25, x'00ff10'),"
             " (3, NULL, replace(hex(zeroblob(150)), '0', 'x')), (4, -7, ''),"
             " (5, x'', 9223372036854775807), (6, -9223372036854775808, 1e300),"
             " (7, randomblob(200), -0.5);"
             "UPDATE t1 SET x = 'new', y = NULL WHERE id = 10;"
             "DELETE FROM t1 WHERE id = 11;"
             "UPDATE t1 SET id = 13 WHERE id = 12;");      /* DELETE + INSERT */
    sqlite3session_indirect(s, 1);
    exec(db, "INSERT INTO t2 VALUES(NULL, 5, 'c5', x'01');"
             "UPDATE t2 SET d = 'dd' WHERE c = 'c0' AND b = 1;"
             "DELETE FROM t2 WHERE c = 'c1';");
    int n = 0;
    void *out = NULL;
    ASSERT_EQ(sqlite3session_changeset(s, &n, &out), SQLITE_OK);
    sqlite3session_delete(s);
    sqlite3_close(db);
    ASSERT_GT(n, 0);
    *len = (size_t)n;
    return out;
}

static void test_session_round_trip(void)
{
    size_t len, nchanges = 0;
    uint8_t *buf = session_changeset(&len);
    struct cs_error e;
    int rc = validate(buf, len, NULL, &nchanges, &e);
    if (rc != SYNC_OK)
        fprintf(stderr, "  rejected: %s\n", e.msg);
    ASSERT_EQ(rc, SYNC_OK);
    ASSERT_EQ(nchanges, 14);

    struct seen s;
    memset(&s, 0, sizeof s);
    compare_with_sqlite(buf, len, &s);
    ASSERT_EQ(s.changes, 14);
    ASSERT_EQ(s.ops[0], 9);            /* 7 inserts, the moved row, t2's */
    ASSERT_EQ(s.ops[1], 2);
    ASSERT_EQ(s.ops[2], 3);
    ASSERT_EQ(s.indirect, 3);
    for (int t = CS_UNDEF; t <= CS_NULL; t++)
        ASSERT_GT(s.types[t], 0);
    ASSERT_GT(s.long_text, 0);
    sqlite3_free(buf);
}

/* ---- 2. writer round trip through sqlite3changeset_apply_v2 ---------- */

static int abort_conflict(void *ctx, int type, sqlite3_changeset_iter *it)
{
    (void)type; (void)it;
    (*(int *)ctx)++;
    return SQLITE_CHANGESET_ABORT;
}

static uint8_t *writer_changeset(size_t *len)
{
    static const uint8_t blob[3] = { 0, 0xff, 0x10 };
    struct cs_writer w;
    cs_writer_init(&w);
    cs_writer_table(&w, "t1", 3, t1_pk);
    struct cs_value ins1[3] = { vi(1), vi(42), vt("hello") };
    struct cs_value ins2[3] = { vi(2), vr(2.5), vb(blob, sizeof blob) };
    struct cs_value upd_old[3] = { vi(10), vt("keep"), vundef() };
    struct cs_value upd_new[3] = { vundef(), vt("changed"), vundef() };
    cs_writer_change(&w, CS_INSERT, 0, NULL, ins1);
    cs_writer_change(&w, CS_INSERT, 0, NULL, ins2);
    cs_writer_change(&w, CS_UPDATE, 1, upd_old, upd_new);
    cs_writer_table(&w, "t2", 4, t2_pk);
    struct cs_value ins3[4] = { vnull(), vi(5), vt("c5"), vr(-1.25) };
    struct cs_value del[4] = { vt("a0"), vi(1), vt("c0"), vnull() };
    cs_writer_change(&w, CS_INSERT, 0, NULL, ins3);
    cs_writer_change(&w, CS_DELETE, 0, del, NULL);
    return finish(&w, len);
}

static void test_writer_apply(void)
{
    size_t len, nchanges = 0;
    uint8_t *buf = writer_changeset(&len);
    ASSERT_NOT_NULL(buf);
    ASSERT_EQ(validate(buf, len, NULL, &nchanges, NULL), SYNC_OK);
    ASSERT_EQ(nchanges, 5);
    struct seen s;
    memset(&s, 0, sizeof s);
    compare_with_sqlite(buf, len, &s);
    ASSERT_EQ(s.changes, 5);

    sqlite3 *db = open_db();
    exec(db, "INSERT INTO t1 VALUES(10, 'keep', 1);"
             "INSERT INTO t2 VALUES('a0', 1, 'c0', NULL), ('a1', 2, 'c1', 7);");
    int conflicts = 0;
    ASSERT_EQ(sqlite3changeset_apply_v2(db, (int)len, buf, NULL, abort_conflict, &conflicts,
                                        NULL, NULL, 0), SQLITE_OK);
    ASSERT_EQ(conflicts, 0);
    ASSERT_EQ(query_int(db, "SELECT count(*) FROM t1"), 3);
    ASSERT_EQ(query_int(db, "SELECT x = 42 AND y = 'hello' FROM t1 WHERE id = 1"), 1);
    ASSERT_EQ(query_int(db, "SELECT x = 2.5 AND y = x'00ff10' FROM t1 WHERE id = 2"), 1);
    ASSERT_EQ(query_int(db, "SELECT x = 'changed' AND y = 1 FROM t1 WHERE id = 10"), 1);
    ASSERT_EQ(query_int(db, "SELECT count(*) FROM t2"), 2);
    ASSERT_EQ(query_int(db, "SELECT a IS NULL AND d = -1.25 FROM t2 WHERE c = 'c5' AND b = 5"), 1);
    ASSERT_EQ(query_int(db, "SELECT count(*) FROM t2 WHERE c = 'c0'"), 0);
    sqlite3_close(db);
    free(buf);
}

/* Conflict types in the order the handler saw them. */
struct conflict_log { int n, types[8]; };

static int log_conflict(void *ctx, int type, sqlite3_changeset_iter *it)
{
    struct conflict_log *log = ctx;
    (void)it;
    if (log->n < 8)
        log->types[log->n++] = type;
    /* A tombstone must win over the differing row; a duplicate insert loses. */
    return type == SQLITE_CHANGESET_DATA ? SQLITE_CHANGESET_REPLACE : SQLITE_CHANGESET_OMIT;
}

static void test_writer_conflicts(void)
{
    struct cs_writer w;
    size_t len;
    cs_writer_init(&w);
    cs_writer_table(&w, "t1", 3, t1_pk);
    struct cs_value tomb[3] = { vi(1), vnull(), vnull() };   /* row 1 has values */
    struct cs_value dup[3] = { vi(2), vt("other"), vi(0) };  /* row 2 exists */
    cs_writer_change(&w, CS_DELETE, 0, tomb, NULL);
    cs_writer_change(&w, CS_INSERT, 0, NULL, dup);
    uint8_t *buf = finish(&w, &len);
    ASSERT_EQ(validate(buf, len, NULL, NULL, NULL), SYNC_OK);

    sqlite3 *db = open_db();
    exec(db, "INSERT INTO t1 VALUES(1, 'a', 'b'), (2, 'mine', 9);");
    struct conflict_log log;
    memset(&log, 0, sizeof log);
    ASSERT_EQ(sqlite3changeset_apply_v2(db, (int)len, buf, NULL, log_conflict, &log,
                                        NULL, NULL, 0), SQLITE_OK);
    ASSERT_EQ(log.n, 2);
    ASSERT_EQ(log.types[0], SQLITE_CHANGESET_DATA);
    ASSERT_EQ(log.types[1], SQLITE_CHANGESET_CONFLICT);
    ASSERT_EQ(query_int(db, "SELECT count(*) FROM t1 WHERE id = 1"), 0);
    ASSERT_EQ(query_int(db, "SELECT x = 'mine' FROM t1 WHERE id = 2"), 1);
    sqlite3_close(db);
    free(buf);
}

/* ---- 3. the input that hangs SQLite 3.40.1 --------------------------- */

static void test_hang_seed(void)
{
    static const uint8_t seed[20] = { 0x54, 0x32, 0x03, 0x03, 0x62, 0x6f, 0x62, 0x01, 0x00, 0x00,
                                      0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x09 };
    struct cs_error e;
    int rc = validate(seed, sizeof seed, NULL, NULL, &e);
    ASSERT_LT(rc, 0);
    ASSERT_EQ(rc, SYNC_EPROTO);
    ASSERT_EQ(e.code, SYNC_EPROTO);
    expect(seed, sizeof seed, NULL, SYNC_EPROTO, "truncated");
    /* Never passed to SQLite: that is the point. */
}

/* ---- 4. truncation ---------------------------------------------------- */

/* Offsets at which a prefix of a valid changeset is itself valid: 0, and
 * the end of every table header and every change.  Returns how many. */
static size_t boundaries(const uint8_t *buf, size_t len, uint8_t *is_boundary)
{
    struct cs_iter *it = malloc(sizeof *it);
    size_t n = 1;
    ASSERT_NOT_NULL(it);
    memset(is_boundary, 0, len + 1);
    is_boundary[0] = 1;
    cs_iter_init(it, buf, len);
    while (cs_iter_next(it) == 1) {             /* a change ends at it->pos */
        is_boundary[it->pos] = 1;
        n++;
    }
    ASSERT_EQ(it->pos, len);
    free(it);
    /* A header starts at a boundary with 'T' and ends after its name's NUL.
     * Column counts here are < 128, so the header is 'T' n pk[n] name NUL. */
    for (size_t p = 0; p < len; p++) {
        if (is_boundary[p] && buf[p] == 'T') {
            size_t name = p + 2 + buf[p + 1];
            const uint8_t *nul = memchr(buf + name, 0, len - name);
            ASSERT_NOT_NULL(nul);
            is_boundary[(size_t)(nul - buf) + 1] = 1;
            n++;
        }
    }
    return n;
}

static void check_prefixes(const uint8_t *buf, size_t len)
{
    uint8_t *is_boundary = malloc(len + 1);
    ASSERT_NOT_NULL(is_boundary);
    size_t nb = boundaries(buf, len, is_boundary), accepted = 0;
    for (size_t l = 0; l < len; l++) {
        struct cs_error e;
        uint8_t *copy = dup_exact(buf, l);
        int rc = cs_validate(copy, l, lookup, NULL, NULL, NULL, &e);
        if ((rc == SYNC_OK) != (is_boundary[l] != 0))
            fprintf(stderr, "  prefix %zu: rc %d (%s)\n", l, rc, rc ? e.msg : "ok");
        ASSERT_EQ(rc == SYNC_OK, is_boundary[l] != 0);
        if (rc == SYNC_OK) {
            sqlite_walk(copy, l);
            accepted++;
        } else {
            ASSERT_EQ(rc, SYNC_EPROTO);
        }
        free(copy);
    }
    ASSERT_EQ(accepted + 1, nb);    /* the full length is the last boundary */
    free(is_boundary);
}

static void test_truncation(void)
{
    size_t len;
    uint8_t *buf = session_changeset(&len);
    check_prefixes(buf, len);
    sqlite3_free(buf);
    buf = writer_changeset(&len);
    check_prefixes(buf, len);
    free(buf);
}

/* ---- 5. mutations ----------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)                      /* xorshift64: reproducible */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Validates buf; if accepted, SQLite must be able to walk it (and combine
 * and apply it without crashing).  Either way our iterator must not crash on
 * it.  Returns 1 if accepted. */
static int try_mutant(sqlite3 *db, const uint8_t *buf, size_t len)
{
    uint8_t *copy = dup_exact(buf, len);
    struct cs_error e;
    int rc = cs_validate(copy, len, lookup, NULL, NULL, NULL, &e);
    ASSERT(rc == SYNC_OK || rc == SYNC_EPROTO || rc == SYNC_ESCHEMA || rc == SYNC_ETOOBIG);
    if (rc == SYNC_OK) {
        /* Applying is ~10x the cost of the rest (mostly SQLite preparing
         * statements), so combine and apply only every fourth mutant. */
        static unsigned n_accepted;
        sqlite_walk(copy, len);
        if (n_accepted++ % 4 == 0)
            sqlite_use(db, copy, len);
    }
    static struct cs_iter it;
    cs_iter_init(&it, copy, len);
    int r;
    while ((r = cs_iter_next(&it)) == 1)
        ;
    ASSERT(rc != SYNC_OK || r == 0);
    free(copy);
    return rc == SYNC_OK;
}

static void mutate_all_bytes(sqlite3 *db, const uint8_t *orig, size_t len, size_t *accepted)
{
    static const uint8_t vals[] = { 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x09, 0x12, 0x17,
                                    0x50, 0x54, 0x7f, 0x80, 0x81, 0xff };
    uint8_t *buf = dup_exact(orig, len);
    for (size_t pos = 0; pos < len; pos++) {
        uint8_t extra[3] = { (uint8_t)(orig[pos] ^ 1), (uint8_t)(orig[pos] + 1),
                             (uint8_t)(orig[pos] - 1) };
        for (size_t k = 0; k < sizeof vals + sizeof extra; k++) {
            buf[pos] = k < sizeof vals ? vals[k] : extra[k - sizeof vals];
            if (buf[pos] != orig[pos])
                *accepted += (size_t)try_mutant(db, buf, len);
        }
        buf[pos] = orig[pos];
    }
    free(buf);
}

/* Random multi-byte damage: overwrite, insert and delete bytes. */
static void mutate_random(sqlite3 *db, const uint8_t *orig, size_t len, int rounds,
                          size_t *accepted)
{
    uint8_t *buf = malloc(len + 8);
    ASSERT_NOT_NULL(buf);
    for (int r = 0; r < rounds; r++) {
        size_t n = len;
        memcpy(buf, orig, len);
        int edits = 1 + (int)(rng() % 4);
        for (int e = 0; e < edits && n > 1; e++) {
            size_t pos = (size_t)(rng() % n);
            uint8_t byte = (uint8_t)rng();
            switch (rng() % 3) {
            case 0: buf[pos] = byte; break;
            case 1: memmove(buf + pos + 1, buf + pos, n - pos); buf[pos] = byte; n++; break;
            default: memmove(buf + pos, buf + pos + 1, n - pos - 1); n--; break;
            }
        }
        *accepted += (size_t)try_mutant(db, buf, n);
    }
    free(buf);
}

static void test_mutations(void)
{
    sqlite3 *db = open_db();
    size_t len, accepted = 0;
    uint8_t *buf = session_changeset(&len);
    mutate_all_bytes(db, buf, len, &accepted);
    mutate_random(db, buf, len, 10000, &accepted);
    sqlite3_free(buf);
    buf = writer_changeset(&len);
    mutate_all_bytes(db, buf, len, &accepted);
    mutate_random(db, buf, len, 3000, &accepted);
    free(buf);
    sqlite3_close(db);
    /* Value bytes can change freely, so plenty of mutants are valid; if none
     * were, the SQLite half of this test would have checked nothing. */
    ASSERT_GT(accepted, 1000);
}

/* ---- 6. specific rejections ------------------------------------------ */

/* A one-table changeset for t1 with the given changes (records of 3). */
static uint8_t *t1_changeset(size_t *len, int op, const struct cs_value *old,
                             const struct cs_value *new_)
{
    struct cs_writer w;
    cs_writer_init(&w);
    cs_writer_table(&w, "t1", 3, t1_pk);
    cs_writer_change(&w, op, 0, old, new_);
    return finish(&w, len);
}

static const struct cs_value good_row[3] = {
    { CS_INT, 1, 0, NULL, 0 }, { CS_TEXT, 0, 0, (const uint8_t *)"SECRET-PII", 10 },
    { CS_INT, 7, 0, NULL, 0 },
};

/* 'T' 03 01 00 00 't' '1' 00: the first change of a t1 changeset is at 8. */
#define T1_HDR 8

static void test_reject_schema(void)
{
    static const uint8_t wrong_pk[4] = { 0, 1, 2, 0 };
    static const uint8_t dup_pk[4] = { 0, 1, 1, 0 };
    struct cs_writer w;
    size_t len;
    uint8_t *buf;

    cs_writer_init(&w);
    cs_writer_table(&w, "nope", 3, t1_pk);
    buf = finish(&w, &len);
    expect(buf, len, NULL, SYNC_ESCHEMA, "unknown table 'nope'");
    free(buf);

    static const uint8_t pk4[4] = { 1, 0, 0, 0 };
    cs_writer_table(&w, "t1", 4, pk4);
    buf = finish(&w, &len);
    expect(buf, len, NULL, SYNC_ESCHEMA, "table t1: 4 columns, expected 3");
    free(buf);

    cs_writer_table(&w, "t2", 4, dup_pk);
    buf = finish(&w, &len);
    expect(buf, len, NULL, SYNC_EPROTO, "primary key");
    free(buf);

    cs_writer_table(&w, "t2", 4, wrong_pk);     /* well-formed, not the schema's */
    buf = finish(&w, &len);
    expect(buf, len, NULL, SYNC_ESCHEMA, "primary key differs");
    free(buf);

    /* A NULL lookup knows no tables. */
    buf = t1_changeset(&len, CS_INSERT, NULL, good_row);
    ASSERT_EQ(cs_validate(buf, len, NULL, NULL, NULL, NULL, NULL), SYNC_ESCHEMA);
    free(buf);
}

static void test_reject_header(void)
{
    static const uint8_t patch[] = { 'P', 3, 1, 0, 0, 't', '1', 0 };
    static const uint8_t zero_cols[] = { 'T', 0, 't', '1', 0 };
    static const uint8_t overlong[] = { 'T', 0x80, 3, 1, 0, 0, 't', '1', 0 };
    static const uint8_t too_many[] = { 'T', 0x82, 0x01, 1 };       /* 257 columns */
    static const uint8_t no_key[] = { 'T', 3, 0, 0, 0, 't', '1', 0 };
    static const uint8_t gap[] = { 'T', 3, 2, 0, 0, 't', '1', 0 };
    static const uint8_t big_pos[] = { 'T', 3, 4, 0, 0, 't', '1', 0 };
    static const uint8_t no_nul[] = { 'T', 3, 1, 0, 0, 't', '1' };
    static const uint8_t empty_name[] = { 'T', 3, 1, 0, 0, 0 };
    static const uint8_t change_first[] = { CS_INSERT, 0, 5, 5, 5 };
    static const uint8_t junk_first[] = { 'X' };

    expect(patch, sizeof patch, NULL, SYNC_EPROTO, "patchset not accepted");
    expect(zero_cols, sizeof zero_cols, NULL, SYNC_EPROTO, "no columns");
    expect(overlong, sizeof overlong, NULL, SYNC_EPROTO, "overlong");
    expect(too_many, sizeof too_many, NULL, SYNC_ETOOBIG, "257 columns");
    expect(no_key, sizeof no_key, NULL, SYNC_EPROTO, "no primary key");
    expect(gap, sizeof gap, NULL, SYNC_EPROTO, "gap");
    expect(big_pos, sizeof big_pos, NULL, SYNC_EPROTO, "primary key");
    expect(no_nul, sizeof no_nul, NULL, SYNC_EPROTO, "truncated table name");
    expect(empty_name, sizeof empty_name, NULL, SYNC_EPROTO, "empty table name");
    expect(change_first, sizeof change_first, NULL, SYNC_EPROTO, "expected table header");
    expect(junk_first, sizeof junk_first, NULL, SYNC_EPROTO, NULL);

    /* Names: 128 bytes passes the format check (then is unknown), 129 not. */
    uint8_t name_hdr[3 + 3 + 130];
    struct cs_limits lim = { 0, 0, 0, 0 };
    memcpy(name_hdr, "T\x03\x01\x00\x00", 5);
    memset(name_hdr + 5, 'n', 129);
    name_hdr[5 + 128] = 0;
    expect(name_hdr, 5 + 129, &lim, SYNC_ESCHEMA, "unknown table 'nnnn");
    name_hdr[5 + 128] = 'n';
    name_hdr[5 + 129] = 0;
    expect(name_hdr, 5 + 130, &lim, SYNC_EPROTO, "longer than 128");
}

static void test_reject_changes(void)
{
    size_t len;
    uint8_t *buf = t1_changeset(&len, CS_INSERT, NULL, good_row);
    expect(buf, len, NULL, SYNC_OK, NULL);

    uint8_t *m = dup_exact(buf, len);
    m[T1_HDR] = 0x13;                               /* bad op */
    expect(m, len, NULL, SYNC_EPROTO, "unexpected byte 0x13");
    m[T1_HDR] = CS_INSERT;
    m[T1_HDR + 1] = 2;                              /* indirect must be 0/1 */
    expect(m, len, NULL, SYNC_EPROTO, "indirect");
    m[T1_HDR + 1] = 0;
    m[T1_HDR + 2] = 6;                              /* type byte 6 */
    expect(m, len, NULL, SYNC_EPROTO, "bad value type 0x06");
    m[T1_HDR + 2] = CS_INT;
    m[T1_HDR + 12] = 0x80;                          /* overlong text length */
    expect(m, len, NULL, SYNC_EPROTO, "overlong");
    free(m);

    /* Trailing bytes after the last change. */
    m = malloc(len + 1);
    ASSERT_NOT_NULL(m);
    memcpy(m, buf, len);
    m[len] = 0x00;
    expect(m, len + 1, NULL, SYNC_EPROTO, "unexpected byte 0x00");
    m[len] = CS_DELETE;
    expect(m, len + 1, NULL, SYNC_EPROTO, "truncated change");
    m[len] = 'T';
    expect(m, len + 1, NULL, SYNC_EPROTO, "truncated");
    free(m);
    free(buf);
}

static void expect_t1(int op, const struct cs_value *old, const struct cs_value *new_,
                      int code, const char *needle)
{
    size_t len;
    uint8_t *buf = t1_changeset(&len, op, old, new_);
    expect(buf, len, NULL, code, needle);
    free(buf);
}

static void test_reject_records(void)
{
    struct cs_value undef_col[3] = { vi(1), vundef(), vi(2) };
    struct cs_value null_key[3] = { vnull(), vi(1), vi(2) };
    struct cs_value upd_old[3] = { vi(1), vt("SECRET-PII"), vundef() };
    struct cs_value upd_new[3] = { vundef(), vt("SECRET-NEW"), vundef() };
    struct cs_value key_set[3] = { vi(2), vt("SECRET-NEW"), vundef() };
    struct cs_value old_null_key[3] = { vnull(), vt("SECRET-PII"), vundef() };
    struct cs_value old_undef_key[3] = { vundef(), vt("SECRET-PII"), vundef() };
    struct cs_value mismatch_new[3] = { vundef(), vt("SECRET-NEW"), vi(3) };
    struct cs_value old_only_key[3] = { vi(1), vundef(), vundef() };
    struct cs_value new_nothing[3] = { vundef(), vundef(), vundef() };

    expect_t1(CS_INSERT, NULL, undef_col, SYNC_EPROTO, "INSERT at offset 8 leaves column 1");
    expect_t1(CS_INSERT, NULL, null_key, SYNC_EPROTO, "NULL key");
    expect_t1(CS_DELETE, undef_col, NULL, SYNC_EPROTO, "DELETE at offset 8 leaves column 1");
    expect_t1(CS_DELETE, null_key, NULL, SYNC_EPROTO, "NULL key");
    expect_t1(CS_UPDATE, upd_old, upd_new, SYNC_OK, NULL);
    expect_t1(CS_UPDATE, upd_old, key_set, SYNC_EPROTO, "defined new key column 0");
    expect_t1(CS_UPDATE, old_null_key, upd_new, SYNC_EPROTO, "old key");
    expect_t1(CS_UPDATE, old_undef_key, upd_new, SYNC_EPROTO, "old key");
    expect_t1(CS_UPDATE, upd_old, mismatch_new, SYNC_EPROTO, "disagree on column 2");
    expect_t1(CS_UPDATE, old_only_key, new_nothing, SYNC_EPROTO, "changes no column");

    /* None of those messages may carry a value. */
    size_t len;
    struct cs_error e;
    uint8_t *buf = t1_changeset(&len, CS_UPDATE, upd_old, mismatch_new);
    ASSERT_EQ(validate(buf, len, NULL, NULL, &e), SYNC_EPROTO);
    ASSERT_NULL(strstr(e.msg, "SECRET"));
    free(buf);
}

static void test_limits(void)
{
    struct cs_writer w;
    size_t len, n = 0;
    struct cs_error e;
    uint8_t payload[10] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
    struct cs_value rows[3][3] = {
        { vi(1), vb(payload, 10), vi(0) }, { vi(2), vi(0), vi(0) }, { vi(3), vi(0), vi(0) },
    };
    cs_writer_init(&w);
    cs_writer_table(&w, "t1", 3, t1_pk);
    for (int i = 0; i < 3; i++)
        cs_writer_change(&w, CS_INSERT, 0, NULL, rows[i]);
    cs_writer_table(&w, "t1", 3, t1_pk);            /* a second, empty section */
    uint8_t *buf = finish(&w, &len);

    struct cs_limits lim = { 3, 2, 10, 3 };
    ASSERT_EQ(validate(buf, len, &lim, &n, &e), SYNC_OK);
    ASSERT_EQ(n, 3);
    lim.max_changes = 2;
    expect(buf, len, &lim, SYNC_ETOOBIG, "more than 2 changes");
    lim.max_changes = 0;
    lim.max_value_bytes = 9;
    expect(buf, len, &lim, SYNC_ETOOBIG, "value of 10 bytes");
    ASSERT_EQ(validate(buf, len, &lim, NULL, &e), SYNC_ETOOBIG);
    ASSERT_EQ(e.offset, T1_HDR + 2 + 9);            /* the blob's type byte */
    lim.max_value_bytes = 0;
    lim.max_tables = 1;
    expect(buf, len, &lim, SYNC_ETOOBIG, "more than 1 table");
    lim.max_tables = 0;
    lim.max_columns = 2;
    expect(buf, len, &lim, SYNC_ETOOBIG, "3 columns, limit 2");
    lim.max_columns = 1000;                         /* capped at 256, still fine */
    expect(buf, len, &lim, SYNC_OK, NULL);
    free(buf);
}

/* Empty input, header-only sections, and a name that must be shown safely. */
static void test_edge_cases(void)
{
    size_t n = 7;
    static const uint8_t one = 0;
    ASSERT_EQ(cs_validate(NULL, 0, lookup, NULL, NULL, &n, NULL), SYNC_OK);
    ASSERT_EQ(n, 0);
    ASSERT_EQ(cs_validate(&one, 0, lookup, NULL, NULL, NULL, NULL), SYNC_OK);
    ASSERT_EQ(cs_validate(NULL, 5, lookup, NULL, NULL, NULL, NULL), SYNC_EPROTO);

    struct cs_writer w;
    size_t len;
    cs_writer_init(&w);
    cs_writer_table(&w, "t1", 3, t1_pk);
    cs_writer_table(&w, "t2", 4, t2_pk);
    uint8_t *buf = finish(&w, &len);
    n = 7;
    ASSERT_EQ(validate(buf, len, NULL, &n, NULL), SYNC_OK);
    ASSERT_EQ(n, 0);
    sqlite_walk(buf, len);
    free(buf);

    char evil[120];
    memset(evil, 'A', sizeof evil - 1);
    evil[sizeof evil - 1] = 0;
    memcpy(evil, "\x1b[31m'x\n", 8);
    cs_writer_table(&w, evil, 3, t1_pk);
    buf = finish(&w, &len);
    struct cs_error e;
    ASSERT_EQ(validate(buf, len, NULL, NULL, &e), SYNC_ESCHEMA);
    for (const char *c = e.msg; *c; c++)
        ASSERT(*c >= 0x20 && *c < 0x7f);
    ASSERT_NOT_NULL(strstr(e.msg, "unknown table '?[31m?x?AAA"));
    ASSERT_NOT_NULL(strstr(e.msg, "...'"));
    ASSERT_LT(strlen(e.msg), 80);
    free(buf);
}

/* Big inputs finish promptly (linear time): many sections alternating 256
 * and 1 columns, and many small changes. */
static void test_large(void)
{
    uint8_t pk256[256] = { 1 };
    struct cs_writer w;
    size_t len, n;
    cs_writer_init(&w);
    for (int i = 0; i < 20000; i++)
        cs_writer_table(&w, i % 2 ? "wide" : "t1", i % 2 ? 256 : 3, i % 2 ? pk256 : t1_pk);
    uint8_t *buf = finish(&w, &len);
    struct cs_error e;
    ASSERT_EQ(validate(buf, len, NULL, NULL, &e), SYNC_ESCHEMA);    /* "wide" unknown */
    struct cs_iter *it = malloc(sizeof *it);
    ASSERT_NOT_NULL(it);
    cs_iter_init(it, buf, len);
    ASSERT_EQ(cs_iter_next(it), 0);
    free(buf);

    cs_writer_table(&w, "t1", 3, t1_pk);
    for (int i = 0; i < 200000; i++) {
        struct cs_value row[3] = { vi(i), vnull(), vt("x") };
        cs_writer_change(&w, CS_INSERT, 0, NULL, row);
    }
    buf = finish(&w, &len);
    ASSERT_EQ(validate(buf, len, NULL, &n, NULL), SYNC_OK);
    ASSERT_EQ(n, 200000);
    cs_iter_init(it, buf, len);
    n = 0;
    while (cs_iter_next(it) == 1) {
        ASSERT_EQ(it->new_[0].i, (int64_t)n);
        n++;
    }
    ASSERT_EQ(n, 200000);
    free(it);
    free(buf);
}

/* ---- 7. values -------------------------------------------------------- */

static void test_values(void)
{
    static const int64_t ints[] = { 0, -1, 1, -123456789012345, INT64_MIN, INT64_MAX,
                                    INT64_MIN + 1, 255, -256 };
    double nan_bits;
    uint64_t nb = 0x7ff8000000000123u;
    memcpy(&nan_bits, &nb, sizeof nan_bits);
    const double reals[] = { 3.14159, -0.0, 1e308, -DBL_MAX, 5e-324, DBL_MIN, HUGE_VAL,
                             -HUGE_VAL, nan_bits };
    const size_t nints = sizeof ints / sizeof ints[0], nreals = sizeof reals / sizeof reals[0];
    struct cs_writer w;
    size_t len;

    cs_writer_init(&w);
    cs_writer_table(&w, "t1", 3, t1_pk);
    for (size_t i = 0; i < nints; i++) {
        struct cs_value row[3] = { vi((int64_t)i + 1), vi(ints[i]), vr(reals[i % nreals]) };
        cs_writer_change(&w, CS_INSERT, 0, NULL, row);
    }
    uint8_t *buf = finish(&w, &len);
    ASSERT_EQ(validate(buf, len, NULL, NULL, NULL), SYNC_OK);
    /* INT64_MIN is 80 00 .. 00 on the wire: row 5's x starts at byte 8+2+9+1. */
    static const uint8_t min_wire[8] = { 0x80, 0, 0, 0, 0, 0, 0, 0 };
    size_t row_len = 2 + 9 + 9 + 9;
    ASSERT_MEM_EQ(buf + T1_HDR + 4 * row_len + 2 + 9 + 1, min_wire, 8);

    struct cs_iter *it = malloc(sizeof *it);
    ASSERT_NOT_NULL(it);
    cs_iter_init(it, buf, len);
    for (size_t i = 0; i < nints; i++) {
        ASSERT_EQ(cs_iter_next(it), 1);
        ASSERT_EQ(it->new_[1].type, CS_INT);
        ASSERT(it->new_[1].i == ints[i]);
        ASSERT_EQ(it->new_[2].type, CS_REAL);
        ASSERT_MEM_EQ(&it->new_[2].r, &reals[i % nreals], sizeof(double));
    }
    ASSERT_EQ(cs_iter_next(it), 0);
    free(it);
    sqlite_walk(buf, len);

    /* And through SQLite into a table. */
    sqlite3 *db = open_db();
    ASSERT_EQ(sqlite3changeset_apply_v2(db, (int)len, buf, NULL, omit_conflict, NULL, NULL,
                                        NULL, 0), SQLITE_OK);
    ASSERT_EQ(query_int(db, "SELECT x FROM t1 WHERE id = 5"), INT64_MIN);
    ASSERT_EQ(query_int(db, "SELECT x FROM t1 WHERE id = 6"), INT64_MAX);
    /* A tolerant bound: valgrind parses SQL float literals without long
     * double precision, so an exact 1e308 literal would not compare equal. */
    ASSERT_EQ(query_int(db, "SELECT y > 9.9e307 AND y < 1.1e308 FROM t1 WHERE id = 3"), 1);
    ASSERT_EQ(query_int(db, "SELECT x FROM t1 WHERE id = 4"), -123456789012345);
    sqlite3_close(db);
    free(buf);
}

/* A NaN real in a key column reads as NULL in SQLite 3.40: refused like
 * a NULL key (found by fuzz_changeset; tests/fuzz/regressions). */
static void test_nan_key_refused(void)
{
    double nan;
    uint64_t bits = 0x7ff8000000000000u;
    memcpy(&nan, &bits, sizeof nan);
    struct cs_writer w;
    size_t len;
    struct cs_value row[3] = { vr(nan), vi(1), vi(2) };
    struct cs_value old[3] = { vr(nan), vi(1), { CS_UNDEF, 0, 0, NULL, 0 } };
    struct cs_value nw[3] = { { CS_UNDEF, 0, 0, NULL, 0 }, vi(5), { CS_UNDEF, 0, 0, NULL, 0 } };
    for (int op = 0; op < 3; op++) {
        cs_writer_init(&w);
        cs_writer_table(&w, "t1", 3, t1_pk);
        if (op == 0)
            cs_writer_change(&w, CS_INSERT, 0, NULL, row);
        else if (op == 1)
            cs_writer_change(&w, CS_DELETE, 0, row, NULL);
        else
            cs_writer_change(&w, CS_UPDATE, 0, old, nw);
        uint8_t *buf = finish(&w, &len);
        ASSERT_EQ(validate(buf, len, NULL, NULL, NULL), SYNC_EPROTO);
        free(buf);
    }
}

/* ---- iterator and writer misuse --------------------------------------- */

static void test_misuse(void)
{
    struct cs_iter *it = malloc(sizeof *it);
    ASSERT_NOT_NULL(it);
    cs_iter_init(it, NULL, 10);
    ASSERT_EQ(cs_iter_next(it), 0);

    static const uint8_t bad[] = { 'T', 3, 1, 0, 0, 't', '1', 0, CS_INSERT, 0, 1 };
    cs_iter_init(it, bad, sizeof bad);
    ASSERT_EQ(cs_iter_next(it), SYNC_EPROTO);
    ASSERT_EQ(cs_iter_next(it), SYNC_EPROTO);      /* sticky */
    cs_iter_init(it, bad, 8);
    ASSERT_EQ(cs_iter_next(it), 0);
    it->pos = 100;                                  /* scribbled on */
    ASSERT_EQ(cs_iter_next(it), SYNC_EPROTO);
    free(it);

    struct cs_writer w;
    uint8_t *out = (uint8_t *)&w;
    size_t len = 5;
    cs_writer_init(&w);
    ASSERT_EQ(cs_writer_finish(&w, &out, &len), SYNC_OK);   /* empty */
    ASSERT_NULL(out);
    ASSERT_EQ(len, 0);

    cs_writer_change(&w, CS_INSERT, 0, NULL, good_row);     /* no table yet */
    ASSERT_EQ(cs_writer_finish(&w, &out, &len), SYNC_EINVAL);
    ASSERT_NULL(out);

    struct cs_value bad_type[3] = { vi(1), vi(2), vi(3) };
    bad_type[2].type = 9;
    cs_writer_table(&w, "t1", 3, t1_pk);
    cs_writer_change(&w, CS_INSERT, 0, NULL, bad_type);
    ASSERT_EQ(cs_writer_finish(&w, &out, &len), SYNC_EINVAL);
    cs_writer_table(&w, "t1", 3, t1_pk);
    cs_writer_change(&w, CS_UPDATE, 0, good_row, NULL);     /* missing new record */
    ASSERT_EQ(cs_writer_finish(&w, &out, &len), SYNC_EINVAL);
    cs_writer_table(&w, "t1", 0, t1_pk);
    ASSERT_EQ(cs_writer_finish(&w, &out, &len), SYNC_EINVAL);

    cs_writer_table(&w, "t1", 3, t1_pk);                    /* reusable after errors */
    cs_writer_change(&w, CS_INSERT, 1, NULL, good_row);
    ASSERT_EQ(cs_writer_finish(&w, &out, &len), SYNC_OK);
    ASSERT_NOT_NULL(out);
    ASSERT_EQ(out[T1_HDR + 1], 1);
    free(out);
    cs_writer_reset(&w);
    cs_writer_reset(NULL);
}

static const struct test_case tests[] = {
    TEST(test_session_round_trip),
    TEST(test_writer_apply),
    TEST(test_writer_conflicts),
    TEST(test_hang_seed),
    TEST(test_truncation),
    TEST(test_mutations),
    TEST(test_reject_schema),
    TEST(test_reject_header),
    TEST(test_reject_changes),
    TEST(test_reject_records),
    TEST(test_limits),
    TEST(test_edge_cases),
    TEST(test_large),
    TEST(test_values),
    TEST(test_nan_key_refused),
    TEST(test_misuse),
    { NULL, NULL },
};

int main(void)
{
    return test_run_all("test_changeset", tests);
}
