/* test_oom.c - out-of-memory along the push and pull paths (issue 5,
 * part 3).
 *
 * Every allocation is counted: SQLite's (SQLITE_CONFIG_MALLOC, set before
 * sqlite3_initialize), cJSON's (cJSON_InitHooks) and the project's own
 * (es_malloc & co., util.h).  For every N from 1 to the number of
 * allocations a fault-free run makes, the path runs again with allocation
 * N failing -- once ("transient"), or N and every later one ("persistent")
 * -- and must end cleanly:
 *   - push_apply: SYNC_OK with an ack, or a negative status with an error
 *     name and no ack; no transaction left open; the county afterwards is
 *     exactly the old state (nothing applied, last_batch_seq unchanged) or
 *     exactly the new one; integrity_check ok; resending the batch then
 *     succeeds and gives the new state;
 *   - pull_build: SYNC_OK with a reply whose JSON names the right acked_seq
 *     and whose changeset passes the tablet's validator, or a refusal with
 *     an error name and no reply; synced data unchanged either way;
 *   - SQLite's heap is back to where it started once the store is closed
 *     (no leak inside SQLite); leaks of our own and cJSON's memory are
 *     LeakSanitizer's and valgrind's to find (make test SAN=1, make
 *     valgrind).
 * libsodium allocates nothing on these paths (its sodium_malloc is not
 * used here) and offers no hook, so its allocations are not covered.
 *
 * The tablet's write path (sync_exec, offline, on a tablet enrolled and
 * synced once) is swept the same way: the write and its outbox entry must
 * land together or not at all.  So is its pull (sync_pull of one page
 * whose personal values travel opened and are sealed again): the tablet
 * ends exactly as before the pull, or exactly as a fault-free pull leaves
 * it.
 *
 * ES_OOM_STEP=k tries every kth N (default 1; 3 for the pull sweep, which
 * opens a read connection and so makes ~4,600 allocations; 4 for the
 * tablet sweep, whose runs are slower; valgrind runs use 29).  ES_OOM_STEP=1 is the full sweep
 * the figures in docs/RELIABILITY.md come from.
 */
#include <execinfo.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "changeset.h"
#include "client.h"
#include "eldersync.h"
#include "log.h"
#include "pull.h"
#include "pushfix.h"
#include "store.h"
#include "support.h"
#include "test.h"
#include "util.h"

static long nalloc, fail_at;
static int armed, persistent, fired, fired_cjson;

static int should_fail(void)
{
    if (!armed)
        return 0;
    long n = ++nalloc;
    if (fail_at > 0 && (n == fail_at || (persistent && n > fail_at))) {
        if (!fired && getenv("ES_OOM_TRACE")) {     /* where the failure lands */
            void *bt[24];
            backtrace_symbols_fd(bt, backtrace(bt, 24), 2);
        }
        fired = 1;
        return 1;
    }
    return 0;
}

static int es_hook(void *ctx)
{
    (void)ctx;
    return should_fail();
}

static void *sq_malloc(int n)            { return should_fail() ? NULL : malloc((size_t)n); }
static void  sq_free(void *p)            { free(p); }
static void *sq_realloc(void *p, int n)  { return should_fail() ? NULL : realloc(p, (size_t)n); }
static int   sq_size(void *p)            { return p ? (int)malloc_usable_size(p) : 0; }
static int   sq_roundup(int n)           { return (n + 7) & ~7; }
static int   sq_init(void *x)            { (void)x; return SQLITE_OK; }
static void  sq_shutdown(void *x)        { (void)x; }
static void *cj_malloc(size_t n)
{
    int was = fired;
    if (!should_fail())
        return malloc(n);
    if (!was)
        fired_cjson = 1;             /* the first failure hit cJSON */
    return NULL;
}
static void  cj_free(void *p)            { free(p); }

static void arm(long at, int persist)
{
    nalloc = 0;
    fail_at = at;
    persistent = persist;
    fired = fired_cjson = 0;
    armed = 1;
}

static void disarm(void)
{
    armed = 0;
}

/* ES_OOM_ONLY=N: just that allocation (for reproducing a finding). */
static long first(void)
{
    const char *e = getenv("ES_OOM_ONLY");
    return e && atol(e) > 0 ? atol(e) : 1;
}

/* dflt: the step for make test (the tablet sweep, with a file copy and two
 * PIN unlocks per run, takes every 4th N there; ES_OOM_STEP=1 for all). */
static long step_of(long dflt)
{
    if (getenv("ES_OOM_ONLY"))
        return 1L << 40;
    const char *e = getenv("ES_OOM_STEP");
    if (e && atol(e) > 0)
        return atol(e);
    return getenv("ES_VALGRIND") ? 29 : dflt;
}

static long step(void)
{
    return step_of(1);
}

static long runs_total, failures_injected;

/* ---- push ---- */

struct fixture {
    struct pushfix f;
    char           db[256];
    uint8_t        h0[32], h1[32];
    sqlite3_int64  heap_base;
};

static void setup(struct fixture *x, const char *name)
{
    int64_t seq;
    int intact;
    pf_init(&x->f, name);
    snprintf(x->db, sizeof x->db, "%s/county.db", x->f.dir);
    pf_copy(&x->f, x->db);
    pf_state(x->db, x->h0, &seq, &intact);
    struct server srv;
    char *ack = NULL;
    struct outcome o;
    ASSERT_EQ(pf_open(&srv, x->db), SYNC_OK);
    ASSERT_EQ(pf_push(&x->f, &srv, 0, &ack, &o), SYNC_OK);
    free(ack);
    store_close(&srv);
    pf_state(x->db, x->h1, &seq, &intact);
    ASSERT_EQ(seq, 1);
    x->heap_base = sqlite3_memory_used();
}

static void teardown(struct fixture *x)
{
    char p[300];
    static const char *const sfx[] = { "", "-wal", "-shm", ".key" };
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", x->db, sfx[i]);
        unlink(p);
    }
    pf_free(&x->f);
    rmdir(x->f.dir);
}

/* One push of batch 1 with allocation `at` failing; returns whether the
 * fault was reached. */
static int push_once(struct fixture *x, long at, int persist, long *count)
{
    struct server srv;
    char *ack = (char *)1;
    struct outcome o;
    uint8_t h[32];
    int64_t seq;
    int intact;
    pf_copy(&x->f, x->db);
    ASSERT_EQ(pf_open(&srv, x->db), SYNC_OK);
    arm(at, persist);
    int rc = pf_push(&x->f, &srv, 0, &ack, &o);
    disarm();
    int hit = fired;
    if (count)
        *count = nalloc;
    if (at == 0)
        ASSERT_EQ(rc, SYNC_OK);               /* the fault-free run */
    char acktext[200] = "";
    if (rc == SYNC_OK) {
        ASSERT_NOT_NULL(ack);
        ASSERT(strstr(ack, "\"batch_seq\":1") != NULL);
        snprintf(acktext, sizeof acktext, "%s", ack);
        free(ack);
    } else {
        ASSERT_NULL(ack);
        ASSERT_LT(rc, 0);
        ASSERT(o.error[0] != '\0');
    }
    /* With memory back: no transaction is left open after a single
     * failure (after "every allocation from N fails" even SQLite's own
     * rollback may not get through; store_begin then ends it first). */
    if (!persist && !sqlite3_get_autocommit(srv.db)) {
        fprintf(stderr, "  push, allocation %ld fails: rc %d (%s): a transaction is left "
                "open\n", at, rc, o.error);
        ASSERT(0);
    }
    ASSERT_EQ(srv.txg.active, 0);
    ASSERT_EQ(srv.track, 1);
    pf_state(x->db, h, &seq, &intact);
    if (!intact || seq != (rc == SYNC_OK ? 1 : 0) ||
        memcmp(h, rc == SYNC_OK ? x->h1 : x->h0, 32) != 0) {
        fprintf(stderr, "  push, allocation %ld%s fails: rc %d (%s%s), seq %lld, integrity %d, "
                "state %s\n", at, persist ? " on" : "", rc, o.error, acktext, (long long)seq,
                intact, memcmp(h, x->h0, 32) == 0 ? "old" : memcmp(h, x->h1, 32) == 0 ? "new"
                : "MIXED");
        ASSERT(0);
    }
    if (rc != SYNC_OK) {            /* the tablet resends it, to the same server */
        if (pf_push(&x->f, &srv, 0, &ack, &o) != SYNC_OK) {
            fprintf(stderr, "  push, allocation %ld%s failed: the resend then fails too: %s "
                    "(%s)\n", at, persist ? " on" : "", o.error, o.detail);
            ASSERT(0);
        }
        free(ack);
    }
    store_close(&srv);
    pf_state(x->db, h, &seq, &intact);
    ASSERT(intact);
    ASSERT_EQ(seq, 1);
    ASSERT_MEM_EQ(h, x->h1, 32);
    if (sqlite3_memory_used() != x->heap_base) {
        fprintf(stderr, "  push, allocation %ld%s fails: SQLite heap %lld, was %lld\n", at,
                persist ? " on" : "", (long long)sqlite3_memory_used(),
                (long long)x->heap_base);
        ASSERT(0);
    }
    return hit;
}

static void test_push_oom(void)
{
    struct fixture x;
    long total = 0, ok = 0, refused = 0;
    setup(&x, "oom-push");
    ASSERT_EQ(push_once(&x, 0, 0, &total), 0);
    ASSERT_GT(total, 10);
    for (int i = 0; getenv("ES_OOM_COUNTS") && i < 5; i++) {
        long t2 = 0;
        push_once(&x, 0, 0, &t2);
        fprintf(stderr, "count %ld\n", t2);
    }
    for (int persist = 0; persist < 2; persist++) {
        for (long n = first(); n <= total; n += step()) {
            struct server srv;
            (void)srv;
            long before_ok = ok;
            /* The last few allocations vary from run to run (SQLite's
             * page cache), so only those may be missed. */
            if (!push_once(&x, n, persist, NULL) && n < total - 16) {
                fprintf(stderr, "  push: allocation %ld of %ld never happened\n", n, total);
                ASSERT(0);
            }
            runs_total++;
            failures_injected++;
            (void)before_ok;
        }
    }
    /* Counting outcomes needs the rc: run the transient sweep's tallies
     * separately would double the time; report the allocation count. */
    printf("push path: %ld allocations (SQLite + cJSON + ours); each failed in turn, once and "
           "from there on: no crash, no partial apply, no SQLite leak\n", total);
    (void)ok;
    (void)refused;
    teardown(&x);
}

/* ---- pull ---- */

static int pull_once(struct fixture *x, long at, int persist, long *count)
{
    struct server srv;
    uint8_t *reply = (uint8_t *)1, h[32];
    size_t rlen = 1;
    struct outcome o;
    int64_t seq;
    int intact;
    static const char req[] = "{\"cursor\":0,\"have_key\":-1}";
    ASSERT_EQ(pf_open(&srv, x->db), SYNC_OK);
    outcome_init(&o);
    arm(at, persist);
    int rc = pull_build(&srv, &x->f.dev, (const uint8_t *)req, strlen(req), &reply, &rlen, &o);
    disarm();
    int hit = fired;
    if (count)
        *count = nalloc;
    if (at == 0)
        ASSERT_EQ(rc, SYNC_OK);               /* the fault-free run */
    if (!persist && !sqlite3_get_autocommit(srv.db)) {
        fprintf(stderr, "  pull, allocation %ld fails: rc %d (%s): a transaction is left "
                "open\n", at, rc, o.error);
        ASSERT(0);
    }
    if (rc == SYNC_OK) {
        ASSERT_GT(rlen, 4);
        uint32_t jl = be32_get(reply);
        ASSERT_LE(jl, rlen - 4);
        cJSON *j = cJSON_ParseWithLength((const char *)reply + 4, jl);
        ASSERT_NOT_NULL(j);
        cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "acked_seq");
        if (!cJSON_IsNumber(a) || a->valuedouble != 1) {
            fprintf(stderr, "  pull, allocation %ld%s fails: acked_seq %s in %.*s\n", at,
                    persist ? " on" : "", a ? "wrong" : "missing", (int)jl, reply + 4);
            ASSERT(0);
        }
        ASSERT(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "cursor")));
        cJSON_Delete(j);
        struct cs_limits lim = { 0, 0, 1u << 24, POL_MAXCOL };
        struct cs_error e;
        ASSERT_EQ(cs_validate(reply + 4 + jl, rlen - 4 - jl, policy_cs_lookup, srv.pol, &lim,
                              NULL, &e), SYNC_OK);
        free(reply);
    } else {
        ASSERT_NULL(reply);
        ASSERT_EQ(rlen, 0);
        ASSERT(o.error[0] != '\0');
        /* cJSON cannot tell a failed allocation from a syntax error, so
         * only a failure inside cJSON may come back as bad_request. */
        if ((rc == SYNC_EPROTO && !fired_cjson) || rc == SYNC_ESCHEMA) {
            fprintf(stderr, "  pull, allocation %ld%s fails: refused as the tablet's fault: "
                    "%d %s (%s)\n", at, persist ? " on" : "", rc, o.error, o.detail);
            ASSERT(0);
        }
    }
    /* With memory back, the same server answers the next pull. */
    reply = NULL;
    ASSERT_EQ(pull_build(&srv, &x->f.dev, (const uint8_t *)req, strlen(req), &reply, &rlen, &o),
              SYNC_OK);
    free(reply);
    store_close(&srv);
    pf_state(x->db, h, &seq, &intact);
    ASSERT(intact);
    ASSERT_EQ(seq, 1);
    ASSERT_MEM_EQ(h, x->h1, 32);
    ASSERT_EQ(sqlite3_memory_used(), x->heap_base);
    return hit;
}

static void test_pull_oom(void)
{
    struct fixture x;
    long total = 0;
    setup(&x, "oom-pull");               /* leaves batch 1 applied in x.db */
    ASSERT_EQ(pull_once(&x, 0, 0, &total), 0);
    ASSERT_GT(total, 10);
    for (int persist = 0; persist < 2; persist++)
        for (long n = first(); n <= total; n += step_of(3)) {
            if (!pull_once(&x, n, persist, NULL) && n < total - 16) {
                fprintf(stderr, "  pull: allocation %ld of %ld never happened\n", n, total);
                ASSERT(0);
            }
            runs_total++;
        }
    printf("pull path: %ld allocations; each failed in turn, once and from there on: clean "
           "refusal or a valid page, data unchanged, no SQLite leak\n", total);
    teardown(&x);
}


/* ---- the tablet's write path (sync_exec), offline ---- */

struct tstate {
    uint8_t hash[32];
    long    pending;
    int     intact;
};

static void tablet_state(const char *db, struct tstate *t)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    struct sync_status_info si;
    ASSERT_EQ(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    t->intact = sqlite3_step(st) == SQLITE_ROW &&
                strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
    sqlite3_finalize(st);
    sqlite3_close(h);
    struct sync_client *c = tablet_open(db);
    ASSERT_EQ(sync_content_hash(c, t->hash), SYNC_OK);
    ASSERT_EQ(sync_status(c, &si), SYNC_OK);
    t->pending = si.pending;
    sync_client_close(c);
}

static void tablet_copy(const char *from, const char *to)
{
    char p[300];
    pf_copy_file(from, to);
    snprintf(p, sizeof p, "%s-wal", to);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", to);
    unlink(p);
}

static int64_t fixed_clock(void *ctx)
{
    (void)ctx;
    return 1764560000000LL;
}

/* One tablet operation on a fresh copy of tpl, with allocation `at`
 * failing (0: none): sync_exec(sql) offline, or sync_pull (sql NULL).  The
 * tablet must end exactly in want[0] (on an error) or want[1] (on
 * success): the rows, the pending outbox entries, integrity; no
 * transaction left open after a single failure; SQLite's heap back to
 * heap.  Returns whether the failure was reached. */
static int tablet_once(const char *tpl, const char *db, const char *sql, long at, int persist,
                       const struct tstate want[2], sqlite3_int64 heap, long *count)
{
    static const struct sync_test_hooks hooks = { NULL, NULL, fixed_clock, NULL };
    const char *what = sql ? "sync_exec" : "sync_pull";
    struct tstate got;
    tablet_copy(tpl, db);
    struct sync_client *c = tablet_open(db);
    if (sql)
        sync_client_set_test_hooks(c, &hooks);
    arm(at, persist);
    int rc = sql ? sync_exec(c, sql) : sync_pull(c, NULL);
    disarm();
    int hit = fired;
    if (count)
        *count = nalloc;
    if (at == 0)
        ASSERT_EQ(rc, SYNC_OK);
    if (!persist && !sqlite3_get_autocommit(c->db)) {
        fprintf(stderr, "  %s, allocation %ld fails: rc %d: a transaction is left open\n", what,
                at, rc);
        ASSERT(0);
    }
    if (rc != SYNC_OK)
        ASSERT(sync_client_errmsg(c)[0] != '\0');
    sync_client_close(c);
    tablet_state(db, &got);
    const struct tstate *w = &want[rc == SYNC_OK];
    if (!got.intact || memcmp(got.hash, w->hash, 32) != 0 || got.pending != w->pending) {
        fprintf(stderr, "  %s, allocation %ld%s fails: rc %d, pending %ld (want %ld), "
                "rows %s, integrity %d\n", what, at, persist ? " on" : "", rc, got.pending,
                w->pending, memcmp(got.hash, want[0].hash, 32) == 0 ? "old"
                : memcmp(got.hash, want[1].hash, 32) == 0 ? "new" : "MIXED", got.intact);
        ASSERT(0);
    }
    if (sqlite3_memory_used() != heap) {
        fprintf(stderr, "  %s, allocation %ld%s fails: SQLite heap %lld, was %lld\n", what, at,
                persist ? " on" : "", (long long)sqlite3_memory_used(), (long long)heap);
        ASSERT(0);
    }
    return hit;
}

/* Every allocation of the operation (tablet_once) fails in turn, once and
 * from there on; every step-th N.  Returns how many there are. */
static long tablet_sweep(const char *tpl, const char *db, const char *sql,
                         const struct tstate want[2], long step)
{
    const char *what = sql ? "sync_exec" : "sync_pull";
    sqlite3_int64 heap = sqlite3_memory_used();
    long total = 0;
    ASSERT(!tablet_once(tpl, db, sql, 0, 0, want, heap, &total));
    ASSERT_GT(total, 10);
    for (int persist = 0; persist < 2; persist++)
        for (long n = first(); n <= total; n += step) {
            if (!tablet_once(tpl, db, sql, n, persist, want, heap, NULL) && n < total - 16) {
                fprintf(stderr, "  %s: allocation %ld of %ld never happened\n", what, n, total);
                ASSERT(0);
            }
            runs_total++;
        }
    return total;
}

static void test_tablet_exec_oom(void)
{
    struct srv_proc p;
    struct county cty;
    char dir[128], db[256], tpl[256], sql[512], a[36], b[36], h[36];
    struct tstate want[2];
    test_dir(dir, sizeof dir, "oom-tablet");
    snprintf(db, sizeof db, "%s/county.db", dir);
    county_seed(db, &cty);
    srv_start(&p, dir, db);
    struct sync_client *t = tablet_new(&p, "hall", "hall", cty.hall[0]);
    ASSERT_EQ(sync_run(t, NULL), SYNC_OK);         /* the county's rows and keys */
    sync_client_close(t);
    srv_stop(&p);
    snprintf(tpl, sizeof tpl, "%s/hall.db", dir);
    snprintf(db, sizeof db, "%s/work.db", dir);
    uint8_t id[16] = { 0x01, 0, 0, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 0x42 };
    snprintf(sql, sizeof sql, "INSERT INTO meal_logs (id, senior_id, hall_id, service_date, "
             "meal_period, mode, served_at, price_paid_fen, subsidy_fen) VALUES (%s, %s, %s, "
             "'2026-11-30', 'lunch', 'dine_in', 1764475200000, 700, 300)", xid(id, a),
             xid(cty.senior[0][0], b), xid(cty.hall[0], h));
    tablet_copy(tpl, db);
    tablet_state(db, &want[0]);
    t = tablet_open(db);
    ASSERT_EQ(sync_exec(t, sql), SYNC_OK);
    sync_client_close(t);
    tablet_state(db, &want[1]);
    ASSERT_EQ(want[1].pending, want[0].pending + 1);
    long total = tablet_sweep(tpl, db, sql, want, step_of(4));
    printf("tablet write path (sync_exec): %ld allocations; each failed in turn, once and from "
           "there on: the write and its outbox entry land together or not at all, no SQLite "
           "leak\n", total);
}

static void test_tablet_pull_oom(void)
{
    struct srv_proc p;
    struct county cty;
    char dir[128], db[256], tpl[256], sql[512], a[36], b[36];
    struct tstate want[2];
    test_dir(dir, sizeof dir, "oom-tpull");
    snprintf(db, sizeof db, "%s/county.db", dir);
    county_seed(db, &cty);
    srv_start_config(&p, dir, db, "{\"device_rate_per_s\": 0, \"ip_rate_per_s\": 0}");
    struct sync_client *t = tablet_new(&p, "carer", "caregiver", cty.twp[0]);
    ASSERT_EQ(sync_run(t, NULL), SYNC_OK);         /* the county's rows and keys */
    sync_client_close(t);
    /* What the swept pull brings: personal values (opened on the way). */
    snprintf(sql, sizeof sql, "UPDATE seniors SET name = 'Renamed In The Sweep', phone = "
             "'13900000001' WHERE id = %s; UPDATE seniors SET address = 'Moved' WHERE id = %s",
             xid(cty.senior[0][0], a), xid(cty.senior[0][1], b));
    srv_exec(&p, sql);
    snprintf(tpl, sizeof tpl, "%s/carer.db", dir);
    snprintf(db, sizeof db, "%s/work.db", dir);
    tablet_copy(tpl, db);
    tablet_state(db, &want[0]);
    t = tablet_open(db);
    ASSERT_EQ(sync_pull(t, NULL), SYNC_OK);
    sync_client_close(t);
    tablet_state(db, &want[1]);
    ASSERT(memcmp(want[0].hash, want[1].hash, 32) != 0);
    long total = tablet_sweep(tpl, db, NULL, want, step_of(6));
    srv_stop(&p);
    printf("tablet pull path (sync_pull, personal values opened): %ld allocations; each failed "
           "in turn, once and from there on: the tablet as before the pull or as after it, no "
           "SQLite leak\n", total);
}

/* Regression (found by the push sweep): after an out-of-memory error SQLite
 * had rolled the push's transaction back by itself, the error was missed,
 * and the rest of the batch ran in autocommit mode -- a batch applied in
 * pieces, or acknowledged without its rows.  The store now refuses any
 * commit inside store_begin .. store_end but its own. */
static void test_lost_transaction_never_commits(void)
{
    struct fixture x;
    struct server srv;
    char sql[256], id[36];
    uint8_t h[32];
    int64_t seq;
    int intact;
    setup(&x, "oom-guard");
    ASSERT_EQ(pf_open(&srv, x.db), SYNC_OK);
    snprintf(sql, sizeof sql, "UPDATE meal_logs SET price_paid_fen = 1 WHERE id = %s",
             fz_xid(x.f.cty.meal, id));
    for (int how = 0; how < 2; how++) {
        ASSERT_EQ(store_begin(&srv), SYNC_OK);
        ASSERT_EQ(sqlite3_exec(srv.db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);  /* as SQLite does */
        if (how == 0) {               /* a write on its own would commit at once */
            ASSERT_NE(sqlite3_exec(srv.db, sql, NULL, NULL, NULL), SQLITE_OK);
        } else {                      /* a savepoint opens a fresh transaction */
            ASSERT_EQ(sqlite3_exec(srv.db, "SAVEPOINT p", NULL, NULL, NULL), SQLITE_OK);
            ASSERT_EQ(sqlite3_exec(srv.db, sql, NULL, NULL, NULL), SQLITE_OK);
        }
        ASSERT_EQ(store_end(&srv, SYNC_OK), SYNC_EIO);
        ASSERT(sqlite3_get_autocommit(srv.db));
    }
    ASSERT_EQ(store_begin(&srv), SYNC_OK);          /* and the next one works */
    ASSERT_EQ(store_end(&srv, SYNC_OK), SYNC_OK);
    store_close(&srv);
    pf_state(x.db, h, &seq, &intact);
    ASSERT(intact);
    ASSERT_EQ(seq, 1);
    ASSERT_MEM_EQ(h, x.h1, 32);
    teardown(&x);
}

static const struct test_case tests[] = {
    TEST(test_lost_transaction_never_commits),
    TEST(test_push_oom),
    TEST(test_pull_oom),
    TEST(test_tablet_exec_oom),
    TEST(test_tablet_pull_oom),
    { NULL, NULL }
};

int main(void)
{
    static const sqlite3_mem_methods mem = { sq_malloc, sq_free, sq_realloc, sq_size,
                                             sq_roundup, sq_init, sq_shutdown, NULL };
    cJSON_Hooks hooks = { cj_malloc, cj_free };
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &mem) != SQLITE_OK ||
        sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 1) != SQLITE_OK) {
        fprintf(stderr, "test_oom: sqlite3_config failed\n");
        return 1;
    }
    cJSON_InitHooks(&hooks);
    es_alloc_set_fail_hook(es_hook, NULL);
    log_set_level(getenv("ES_OOM_LOG") ? 3 : -1);
    int rc = test_run_all("test_oom", tests);
    printf("oom: %ld runs with an allocation failing\n", runs_total);
    return rc;
}
