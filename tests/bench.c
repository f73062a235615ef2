/* bench.c - eldersync's benchmark figures (make bench).  Prints a table and
 * the same figures as one JSON line (docs/PERFORMANCE.md explains each).
 * Ratios are measured side by side in one run; nothing here is a pass/fail
 * test.  BENCH=part,part runs only some parts (seal, merge, initial, wire,
 * pushes, conn, fleet).
 *
 *   merge rate       the full push path for one 100,000-row meal changeset
 *                    against plain prepared INSERTs of the same rows (best
 *                    of 3 alternating rounds each)
 *   small pushes     sealed 50-row batches over HTTP: 8 devices at once, one
 *                    device back to back, one tablet through the SDK
 *   connection cost  server CPU per health check on a new connection each
 *                    against one kept connection
 *   sync latency     200 tablets, each sync a push of 20 rows then a pull,
 *                    offered at 500 syncs/s (open loop): p50, p99
 *   sync throughput  the same tablets in a closed loop
 *   initial sync     a new caregiver tablet in a township of 10,000 seniors
 *                    and 100,000 history rows: time, bytes per row
 *   bytes/meal       a 60-meal lunch batch on the wire, HTTP headers
 *                    included, against the same records as JSON
 *   tablet write     one meal through sync_exec against the same INSERT on
 *                    a plain connection with the same durability
 *   server memory    peak RSS of the server with 500 tablets syncing
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include <sodium.h>

#include "changeset.h"
#include "envelope.h"
#include "ids.h"
#include "keyring.h"
#include "pcrypt.h"
#include "policy.h"
#include "push.h"
#include "rowval.h"
#include "schema.h"
#include "store.h"
#include "support.h"
#include "transport.h"
#include "test.h"
#include "util.h"

#define MERGE_ROWS   merge_rows
static int merge_rows = 100000;     /* BENCH_MERGE_ROWS overrides (profiling) */
#define SMALL_PUSHES 100
#define SMALL_ROWS   50
#define LUNCH        60
#define LUNCHES      10            /* lunches logged meal by meal */
#define COMMIT_MODE  "WAL, synchronous=FULL, one fsync per commit"

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct meal {
    uint8_t id[16];
    int     day;
};

static struct county cty;
static double merge_push_s, merge_plain_s, small_per_s, bytes_meal, json_meal, lunch_cpu_ms;

static void meal_values(struct cs_value v[10], const struct meal *m, char *date)
{
    memset(v, 0, 10 * sizeof v[0]);
    snprintf(date, 11, "2026-%02u-%02u", 1 + (unsigned)(m->day / 28) % 12, 1 + (unsigned)m->day % 28);
    v[0] = (struct cs_value){ .type = CS_BLOB, .p = m->id, .n = 16 };
    v[1] = (struct cs_value){ .type = CS_BLOB, .p = cty.senior[0][m->day % NSENIOR], .n = 16 };
    v[2] = (struct cs_value){ .type = CS_BLOB, .p = cty.hall[0], .n = 16 };
    v[3] = (struct cs_value){ .type = CS_TEXT, .p = (const uint8_t *)date, .n = 10 };
    v[4] = (struct cs_value){ .type = CS_TEXT, .p = (const uint8_t *)"lunch", .n = 5 };
    v[5] = (struct cs_value){ .type = CS_TEXT, .p = (const uint8_t *)"dine_in", .n = 7 };
    v[6] = (struct cs_value){ .type = CS_INT, .i = 1764474000000 + m->day };
    v[7] = (struct cs_value){ .type = CS_INT, .i = 1000 };
    v[8] = (struct cs_value){ .type = CS_INT, .i = 0 };
    v[9] = (struct cs_value){ .type = CS_NULL };
}

static int bind_meal(sqlite3_stmt *st, const struct meal *m)
{
    struct cs_value v[10];
    char date[11];
    meal_values(v, m, date);
    for (int i = 0; i < 10; i++)
        rowval_bind(st, i + 1, &v[i]);
    return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

static double plain_inserts(const char *path, const struct meal *meals, int n)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char err[256];
    ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    ASSERT_EQ(store_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; "
                             "PRAGMA foreign_keys = ON; PRAGMA cache_size = -65536"), SYNC_OK);
    ASSERT_EQ(store_exec(db, schema_schema_sql), SYNC_OK);
    /* The same referenced rows, so the foreign keys are checked alike. */
    ASSERT_EQ(store_exec(db, "PRAGMA foreign_keys = OFF"), SYNC_OK);
    char sql[512], a[36], b[36];
    snprintf(sql, sizeof sql, "INSERT INTO townships (id, name) VALUES (%s, 'T0');"
             "INSERT INTO dining_halls (id, township_id, name, meal_price_fen) VALUES (%s, %s, 'H0', 1000)",
             xid(cty.twp[0], a), xid(cty.hall[0], b), a);
    ASSERT_EQ(store_exec(db, sql), SYNC_OK);
    for (int s = 0; s < NSENIOR; s++) {
        snprintf(sql, sizeof sql, "INSERT INTO seniors (id, township_id, name) VALUES (%s, %s, 'x')",
                 xid(cty.senior[0][s], a), xid(cty.twp[0], b));
        ASSERT_EQ(store_exec(db, sql), SYNC_OK);
    }
    ASSERT_EQ(store_exec(db, "PRAGMA foreign_keys = ON"), SYNC_OK);
    (void)err;
    double t0 = mono();
    ASSERT_EQ(store_exec(db, "BEGIN"), SYNC_OK);
    ASSERT_EQ(sqlite3_prepare_v2(db, "INSERT INTO meal_logs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                                 "?8, ?9, ?10)", -1, &st, NULL), SQLITE_OK);
    for (int i = 0; i < n; i++) {
        ASSERT_EQ(bind_meal(st, &meals[i]), 0);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    ASSERT_EQ(store_exec(db, "COMMIT"), SYNC_OK);
    double dt = mono() - t0;
    sqlite3_close(db);
    return dt;
}

static void bench_merge_once(double *push_s, double *plain_s)
{
    char dir[128], db[192], plain[192], err[256];
    test_dir(dir, sizeof dir, "bench");
    snprintf(db, sizeof db, "%s/county.db", dir);
    snprintf(plain, sizeof plain, "%s/plain.db", dir);
    county_seed(db, &cty);
    struct meal *meals = calloc(MERGE_ROWS, sizeof *meals);
    ASSERT_NOT_NULL(meals);
    for (int i = 0; i < MERGE_ROWS; i++) {
        id_new(meals[i].id);
        meals[i].day = i % 300;
    }
    /* The batch a hall tablet would send: one entry, one changeset. */
    struct cs_writer w;
    cs_writer_init(&w);
    static const uint8_t pk[10] = { 1 };
    cs_writer_table(&w, "meal_logs", 10, pk);
    for (int i = 0; i < MERGE_ROWS; i++) {
        struct cs_value v[10];
        char date[11];
        meal_values(v, &meals[i], date);
        cs_writer_change(&w, CS_INSERT, 0, NULL, v);
    }
    uint8_t *cs = NULL;
    size_t cslen = 0;
    ASSERT_EQ(cs_writer_finish(&w, &cs, &cslen), SYNC_OK);
    struct buf b = {0};
    buf_be32(&b, (uint32_t)schema_version());
    buf_be64(&b, (uint64_t)now_ms());
    buf_be32(&b, 1);
    buf_be64(&b, 1);
    buf_be32(&b, (uint32_t)cslen);
    buf_append(&b, cs, cslen);
    buf_be32(&b, 0);
    ASSERT(!b.oom);
    uint8_t sign_pk[32], sign_sk[64], sig[ENV_SIGBYTES], devid[16];
    crypto_sign_keypair(sign_pk, sign_sk);
    id_new(devid);
    env_batch_sign(sig, sign_sk, devid, 1, b.p, b.len, NULL);
    buf_append(&b, sig, sizeof sig);
    ASSERT(!b.oom);

    struct server srv;
    memset(&srv, 0, sizeof srv);
    pthread_mutex_init(&srv.lock, NULL);
    config_load(&srv.cfg, NULL, err, sizeof err);
    snprintf(srv.cfg.db, sizeof srv.cfg.db, "%s", db);
    config_finish(&srv.cfg);
    ASSERT_EQ(store_open(&srv, err, sizeof err), SYNC_OK);
    struct device dev;
    memset(&dev, 0, sizeof dev);
    memcpy(dev.id, devid, 16);
    memcpy(dev.sign_pk, sign_pk, 32);
    dev.role = ROLE_HALL;
    memcpy(dev.township, cty.twp[0], 16);
    memcpy(dev.hall, cty.hall[0], 16);
    dev.has_hall = 1;
    char sql[512], a[36], t[36], h[36];
    snprintf(sql, sizeof sql, "INSERT INTO devices (id, role, township_id, hall_id, kx_pk, sign_pk, "
             "enrolled_at) VALUES (%s, 'hall', %s, %s, zeroblob(32), zeroblob(32), 0)",
             xid(dev.id, a), xid(cty.twp[0], t), xid(cty.hall[0], h));
    ASSERT_EQ(store_exec(srv.db, sql), SYNC_OK);

    struct outcome o;
    outcome_init(&o);
    char *ack = NULL;
    double t0 = mono();
    int rc = push_apply(&srv, &dev, 1, b.p, b.len, &ack, &o);
    *push_s = mono() - t0;
    if (rc != SYNC_OK)
        fprintf(stderr, "  push_apply: %s: %s\n", o.error, o.detail);
    ASSERT_EQ(rc, SYNC_OK);
    free(ack);
    ASSERT_EQ(server_count(db, "SELECT count(*) FROM meal_logs"), MERGE_ROWS);
    store_close(&srv);
    *plain_s = plain_inserts(plain, meals, MERGE_ROWS);
    buf_free(&b);
    free(cs);
    free(meals);
}

/* Best of 3 rounds, merge and plain alternating on fresh databases: the
 * machine's load swings within seconds, and the fastest round of each is
 * the one least disturbed by it. */
static void bench_merge(void)
{
    merge_push_s = merge_plain_s = INFINITY;
    for (int k = 0; k < 3; k++) {
        double a, b;
        bench_merge_once(&a, &b);
        if (a < merge_push_s)
            merge_push_s = a;
        if (b < merge_plain_s)
            merge_plain_s = b;
    }
}

/* ---- a county with more halls, tablets, raw pushes ----------------------- */

/* An in-process server on db, for seeding before the real one starts. */
static void seed_open(struct server *srv, const char *db)
{
    char err[256];
    memset(srv, 0, sizeof *srv);
    pthread_mutex_init(&srv->lock, NULL);
    config_load(&srv->cfg, NULL, err, sizeof err);
    snprintf(srv->cfg.db, sizeof srv->cfg.db, "%s", db);
    config_finish(&srv->cfg);
    ASSERT_EQ(store_open(srv, err, sizeof err), SYNC_OK);
    ASSERT_EQ(store_begin(srv), SYNC_OK);
}

static void seed_close(struct server *srv)
{
    ASSERT_EQ(keyring_seal_plaintext(srv), SYNC_OK);
    ASSERT_EQ(store_end(srv, SYNC_OK), SYNC_OK);
    store_close(srv);
    pthread_mutex_destroy(&srv->lock);
}

#define MAXHALLS 256
static uint8_t halls[MAXHALLS][16];   /* the county's halls, seeded ones first */
static int     hall_twp[MAXHALLS];
static int     nhalls;

/* Adds halls until there are n, spread over the townships. */
static void add_halls(const char *db, int n)
{
    struct server srv;
    char sql[256], a[36], b[36];
    nhalls = 0;
    for (int h = 0; h < NHALL; h++, nhalls++) {
        memcpy(halls[h], cty.hall[h], 16);
        hall_twp[h] = cty.hall_twp[h];
    }
    seed_open(&srv, db);
    for (; nhalls < n; nhalls++) {
        id_new(halls[nhalls]);
        hall_twp[nhalls] = nhalls % NTWP;
        snprintf(sql, sizeof sql, "INSERT INTO dining_halls (id, township_id, name, "
                 "meal_price_fen) VALUES (%s, %s, 'H%d', 1000)", xid(halls[nhalls], a),
                 xid(cty.twp[hall_twp[nhalls]], b), nhalls);
        ASSERT_EQ(store_exec(srv.db, sql), SYNC_OK);
    }
    seed_close(&srv);
}

/* n unsubsidised lunches at hall h as INSERT statements (no daily limit). */
static void meals_sql(char *sql, size_t cap, int h, int n, int salt)
{
    size_t used = 0;
    char a[36], s[36], hh[36];
    sql[0] = '\0';
    for (int k = 0; k < n; k++) {
        uint8_t id[16];
        id_new(id);
        used += (size_t)snprintf(sql + used, cap - used, "INSERT INTO meal_logs (id, senior_id, "
                 "hall_id, service_date, meal_period, mode, served_at, price_paid_fen, "
                 "subsidy_fen) VALUES (%s, %s, %s, '2026-11-30', 'lunch', 'dine_in', %lld, "
                 "1000, 0);", xid(id, a), xid(cty.senior[hall_twp[h]][(k + salt) % NSENIOR], s),
                 xid(halls[h], hh), (long long)now_ms());
        ASSERT(used < cap);
    }
}

/* A sealed push envelope of n meals at hall h, as a tablet would send it. */
static uint8_t *push_envelope(const struct ident *id, uint64_t seq, int h, int n, size_t *len)
{
    struct cs_writer w;
    static const uint8_t pk[10] = { 1 };
    cs_writer_init(&w);
    cs_writer_table(&w, "meal_logs", 10, pk);
    for (int i = 0; i < n; i++) {
        struct meal m;
        struct cs_value v[10];
        char date[11];
        id_new(m.id);
        m.day = 330;
        meal_values(v, &m, date);
        v[1].p = cty.senior[hall_twp[h]][i % NSENIOR];
        v[2].p = halls[h];
        v[8].i = 0;
        cs_writer_change(&w, CS_INSERT, 0, NULL, v);
    }
    uint8_t *cs = NULL, sig[ENV_SIGBYTES], *env = NULL;
    size_t cslen = 0;
    ASSERT_EQ(cs_writer_finish(&w, &cs, &cslen), SYNC_OK);
    struct buf b = {0};
    buf_be32(&b, (uint32_t)schema_version());
    buf_be64(&b, (uint64_t)now_ms());
    buf_be32(&b, 1);
    buf_be64(&b, seq);
    buf_be32(&b, (uint32_t)cslen);
    buf_append(&b, cs, cslen);
    buf_be32(&b, 0);
    env_batch_sign(sig, id->sign_sk, id->dev, seq, b.p, b.len, NULL);
    buf_append(&b, sig, sizeof sig);
    ASSERT(!b.oom);
    struct env_header hd = { ENV_VERSION, ENV_PUSH, {0}, seq };
    memcpy(hd.device_id, id->dev, 16);
    ASSERT_EQ(env_seal(&hd, id->tx, b.p, b.len, &env, len), SYNC_OK);
    buf_free(&b);
    free(cs);
    return env;
}

/* ---- small pushes: raw 50-row envelopes from several devices at once ------ */

#define PUSH_DEVS   8
#define PUSH_EACH   60

struct pusher {
    const char *url;
    uint8_t    *env[PUSH_EACH];
    size_t      len[PUSH_EACH];
    int         n, failed;
};

/* Each device pushes its batches back to back on one kept-alive
 * connection, as a tablet's sync does (BENCH_ONESHOT=1: a connection per
 * push, as before keep-alive). */
static void *pusher_main(void *arg)
{
    struct pusher *p = arg;
    struct http_conn conn;
    const char *oneshot = getenv("BENCH_ONESHOT");
    int keep = oneshot == NULL || strcmp(oneshot, "1") != 0;
    http_conn_init(&conn, HTTP_IDLE_MAX_MS);
    for (int i = 0; i < p->n; i++) {
        struct http_response r;
        char err[256];
        if (http_post_on(keep ? &conn : NULL, p->url, "/v1/push", NULL, p->env[i], p->len[i],
                         30000, 1 << 20, &r, err, sizeof err) != SYNC_OK || r.status != 200)
            p->failed++;
        http_response_free(&r);
    }
    http_conn_reset(&conn);
    return NULL;
}

/* Pushes/s with ndev devices pushing their batches back to back at once. */
static double push_round(struct pusher *ps, int ndev)
{
    pthread_t th[PUSH_DEVS];
    double t0 = mono();
    for (int d = 0; d < ndev; d++)
        ASSERT_EQ(pthread_create(&th[d], NULL, pusher_main, &ps[d]), 0);
    int total = 0, failed = 0;
    for (int d = 0; d < ndev; d++) {
        pthread_join(th[d], NULL);
        total += ps[d].n;
        failed += ps[d].failed;
    }
    double dt = mono() - t0;
    if (failed)
        fprintf(stderr, "  %d of %d pushes failed\n", failed, total);
    ASSERT_EQ(failed, 0);
    return total / dt;
}

static double push1_per_s, pushn_per_s, push_cpu_ms;

/* CPU seconds (user + system) a process has used so far. */
static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');            /* fields after the command name */
    unsigned long ut = 0, st = 0;
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                            &ut, &st) != 2)
        return NAN;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void bench_pushes(const struct srv_proc *srv)
{
    struct pusher ps[PUSH_DEVS];
    struct ident id[PUSH_DEVS];
    int hall[PUSH_DEVS];
    memset(ps, 0, sizeof ps);
    for (int d = 0; d < PUSH_DEVS; d++) {
        char name[32], path[256];
        hall[d] = d % nhalls;
        snprintf(name, sizeof name, "pusher%d", d);
        sync_client_close(tablet_new(srv, name, "hall", halls[hall[d]]));
        snprintf(path, sizeof path, "%s/%s.db", srv->dir, name);
        tablet_ident(path, &id[d]);
        ps[d].url = srv->url;
    }
    /* One device alone: every push waits for its own commit. */
    for (int i = 0; i < PUSH_EACH; i++)
        ps[0].env[i] = push_envelope(&id[0], (uint64_t)i + 1, hall[0], SMALL_ROWS, &ps[0].len[i]);
    ps[0].n = PUSH_EACH;
    push1_per_s = push_round(ps, 1);
    for (int i = 0; i < PUSH_EACH; i++)
        free(ps[0].env[i]);
    /* All devices at once. */
    for (int d = 0; d < PUSH_DEVS; d++) {
        uint64_t base = d == 0 ? PUSH_EACH : 0;
        for (int i = 0; i < PUSH_EACH; i++)
            ps[d].env[i] = push_envelope(&id[d], base + (uint64_t)i + 1, hall[d], SMALL_ROWS,
                                         &ps[d].len[i]);
        ps[d].n = PUSH_EACH;
    }
    double cpu0 = proc_cpu_s(srv->pid);
    pushn_per_s = push_round(ps, PUSH_DEVS);
    push_cpu_ms = (proc_cpu_s(srv->pid) - cpu0) * 1e3 / (PUSH_DEVS * PUSH_EACH);
    for (int d = 0; d < PUSH_DEVS; d++)
        for (int i = 0; i < PUSH_EACH; i++)
            free(ps[d].env[i]);
}

/* ---- what a connection costs the server ------------------------------------ */

#define CONN_REQS   2000
#define CONN_ROUNDS 3

static double conn_new_us = NAN, conn_kept_us = NAN;

/* Server CPU per GET /v1/health (the cheapest request: the connection is
 * most of it), a new connection each against one kept connection;
 * alternating rounds, the lowest of each (least disturbed by the machine's
 * other work).  A sync_run saves one connection since keep-alive. */
static void bench_conn(const struct srv_proc *srv)
{
    for (int round = 0; round < CONN_ROUNDS; round++) {
        for (int keep = 0; keep < 2; keep++) {
            struct http_conn hc;
            http_conn_init(&hc, HTTP_IDLE_MAX_MS);
            double cpu0 = proc_cpu_s(srv->pid);
            for (int i = 0; i < CONN_REQS; i++) {
                struct http_response r;
                char err[256];
                ASSERT_EQ(http_get_on(keep ? &hc : NULL, srv->url, "/v1/health", 30000, 4096,
                                      &r, err, sizeof err), SYNC_OK);
                ASSERT_EQ(r.status, 200);
                http_response_free(&r);
            }
            double us = (proc_cpu_s(srv->pid) - cpu0) * 1e6 / CONN_REQS;
            http_conn_reset(&hc);
            double *best = keep ? &conn_kept_us : &conn_new_us;
            if (isnan(*best) || us < *best)
                *best = us;
        }
    }
}

/* ---- many tablets: latency (open loop), throughput (closed loop), RSS ----- */

#define FLEET       500
#define SYNC_TABS   200
#define SYNC_ROWS   20
#define OPEN_RATE   500.0
#define OPEN_SYNCS  1500
#define OPEN_WORKERS 64
#define CLOSED_S    4.0

struct tab {
    struct sync_client *c;
    int                 hall;
    pthread_mutex_t     mu;
    int                 salt;
};

static struct tab fleet[FLEET];
static double lat_p50_ms, lat_p99_ms, lat_max_ms, open_achieved, closed_per_s, sync_cpu_ms,
              tablet_sync_cpu_ms;
static long   rss_peak_kb, sync_fail;

/* Writes SYNC_ROWS meals on tablet t (not timed: the tablet logs them
 * before it syncs). */
static int tab_write(struct tab *t)
{
    static __thread char sql[SYNC_ROWS * 420];
    meals_sql(sql, sizeof sql, t->hall, SYNC_ROWS, t->salt++);
    return sync_exec(t->c, sql);
}

static struct {
    pthread_mutex_t mu;
    long            next;
    double          t0;
    double         *lat;
} open_q = { PTHREAD_MUTEX_INITIALIZER, 0, 0, NULL };

static void sleep_until(double t)
{
    double d = t - mono();
    if (d > 0) {
        struct timespec ts = { (time_t)d, (long)((d - (double)(time_t)d) * 1e9) };
        nanosleep(&ts, NULL);
    }
}

static void sync_failed(struct tab *t)
{
    long n = __sync_fetch_and_add(&sync_fail, 1);
    if (n < 5)
        fprintf(stderr, "  sync failed: %s\n", sync_client_errmsg(t->c));
}

static void *open_worker(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&open_q.mu);
        long i = open_q.next++;
        pthread_mutex_unlock(&open_q.mu);
        if (i >= OPEN_SYNCS)
            return NULL;
        double sched = open_q.t0 + (double)i / OPEN_RATE;
        struct tab *t = &fleet[i % SYNC_TABS];
        sleep_until(sched);
        pthread_mutex_lock(&t->mu);
        int rc = sync_run(t->c, NULL);
        open_q.lat[i] = (mono() - sched) * 1e3;      /* from when it was due */
        if (rc != SYNC_OK) {
            sync_failed(t);
            open_q.lat[i] = 1e9;
        }
        tab_write(t);                                  /* the next 20 rows */
        pthread_mutex_unlock(&t->mu);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static struct {
    volatile int stop;
    long         done;
} closed_q;

static void *closed_worker(void *arg)
{
    struct tab *t = arg;
    while (!closed_q.stop) {
        if (sync_run(t->c, NULL) != SYNC_OK)
            sync_failed(t);
        else
            __sync_fetch_and_add(&closed_q.done, 1);
        tab_write(t);
    }
    return NULL;
}

static void *fleet_worker(void *arg)
{
    struct tab *t = arg;
    for (int k = 0; k < 2; k++) {
        if (tab_write(t) != SYNC_OK || sync_run(t->c, NULL) != SYNC_OK)
            sync_failed(t);
    }
    return NULL;
}

static long peak_rss_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

static void bench_fleet(const struct srv_proc *srv)
{
    static pthread_t th[FLEET];
    double t_enroll = mono();
    for (int i = 0; i < FLEET; i++) {
        char name[32];
        snprintf(name, sizeof name, "tab%d", i);
        fleet[i].hall = NHALL + i % (nhalls - NHALL);
        fleet[i].c = tablet_new(srv, name, "hall", halls[fleet[i].hall]);
        /* BENCH_KEEPALIVE=ms: keep each tablet's connection between syncs
         * (default: one connection per sync_run, closed at its end). */
        if (getenv("BENCH_KEEPALIVE"))
            sync_client_set_keepalive(fleet[i].c, atoi(getenv("BENCH_KEEPALIVE")));
        pthread_mutex_init(&fleet[i].mu, NULL);
        ASSERT_EQ(sync_run(fleet[i].c, NULL), SYNC_OK);       /* keys, first page */
        ASSERT_EQ(tab_write(&fleet[i]), SYNC_OK);
    }
    printf("  %d tablets enrolled in %.1f s\n", FLEET, mono() - t_enroll);

    /* Open loop: syncs are due at a fixed rate whatever the server does;
     * a late start counts in the latency (no coordinated omission). */
    pthread_t ow[OPEN_WORKERS];
    open_q.lat = calloc(OPEN_SYNCS, sizeof *open_q.lat);
    ASSERT_NOT_NULL(open_q.lat);
    open_q.next = 0;
    open_q.t0 = mono() + 0.05;
    for (int i = 0; i < OPEN_WORKERS; i++)
        ASSERT_EQ(pthread_create(&ow[i], NULL, open_worker, NULL), 0);
    for (int i = 0; i < OPEN_WORKERS; i++)
        pthread_join(ow[i], NULL);
    double span = mono() - open_q.t0;
    open_achieved = OPEN_SYNCS / span;
    qsort(open_q.lat, OPEN_SYNCS, sizeof *open_q.lat, cmp_double);
    lat_p50_ms = open_q.lat[OPEN_SYNCS / 2];
    lat_p99_ms = open_q.lat[OPEN_SYNCS * 99 / 100];
    lat_max_ms = open_q.lat[OPEN_SYNCS - 1];
    free(open_q.lat);

    /* Closed loop: each of the 200 tablets syncs again as soon as it is
     * answered (writing its next 20 rows in between). */
    closed_q.stop = 0;
    closed_q.done = 0;
    for (int i = 0; i < SYNC_TABS; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, closed_worker, &fleet[i]), 0);
    double t0 = mono(), cpu0 = proc_cpu_s(srv->pid), tcpu0 = proc_cpu_s(getpid());
    long done0 = closed_q.done;
    sleep_until(t0 + CLOSED_S);
    long done = closed_q.done - done0;
    double dt = mono() - t0;
    sync_cpu_ms = (proc_cpu_s(srv->pid) - cpu0) * 1e3 / (double)done;
    /* This process is the 200 tablets (their SQLite, fsyncs, sockets):
     * what a sync costs the other end, on the same 2 cores. */
    tablet_sync_cpu_ms = (proc_cpu_s(getpid()) - tcpu0) * 1e3 / (double)done;
    closed_q.stop = 1;
    for (int i = 0; i < SYNC_TABS; i++)
        pthread_join(th[i], NULL);
    closed_per_s = (double)done / dt;

    /* All 500 tablets syncing at once, twice each: the server's peak RSS. */
    for (int i = 0; i < FLEET; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, fleet_worker, &fleet[i]), 0);
    for (int i = 0; i < FLEET; i++)
        pthread_join(th[i], NULL);
    rss_peak_kb = peak_rss_kb(srv->pid);
    for (int i = 0; i < FLEET; i++) {
        sync_client_close(fleet[i].c);
        pthread_mutex_destroy(&fleet[i].mu);
    }
}

/* ---- bytes per meal, tablet write cost ------------------------------------ */

static double write_sdk_us, write_plain_us;
#define WRITES 200

static double plain_write_us(const char *dir)
{
    char path[256], sql[1024];
    sqlite3 *db = NULL;
    snprintf(path, sizeof path, "%s/plainwrite.db", dir);
    ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    ASSERT_EQ(store_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL"), SYNC_OK);
    ASSERT_EQ(store_exec(db, schema_schema_sql), SYNC_OK);
    char a[36], b[36];
    snprintf(sql, sizeof sql, "INSERT INTO townships (id, name) VALUES (%s, 'T0');"
             "INSERT INTO dining_halls (id, township_id, name, meal_price_fen) VALUES (%s, %s, 'H0', 1000)",
             xid(cty.twp[0], a), xid(cty.hall[0], b), a);
    ASSERT_EQ(store_exec(db, sql), SYNC_OK);
    for (int s = 0; s < NSENIOR; s++) {
        snprintf(sql, sizeof sql, "INSERT INTO seniors (id, township_id, name) VALUES (%s, %s, 'x')",
                 xid(cty.senior[0][s], a), xid(cty.twp[0], b));
        ASSERT_EQ(store_exec(db, sql), SYNC_OK);
    }
    ASSERT_EQ(store_exec(db, "PRAGMA foreign_keys = ON"), SYNC_OK);
    double t = 0;
    for (int i = 0; i < WRITES; i++) {
        meals_sql(sql, sizeof sql, 0, 1, i);
        double t0 = mono();
        ASSERT_EQ(store_exec(db, sql), SYNC_OK);
        t += mono() - t0;
    }
    sqlite3_close(db);
    return t * 1e6 / WRITES;
}

static void bench_wire(const struct srv_proc *srv)
{
    struct sync_client *c = tablet_new(srv, "hall", "hall", cty.hall[0]);
    ASSERT_EQ(sync_run(c, NULL), SYNC_OK);

    /* bytes per meal: one realistic lunch batch of 60 subsidised meals */
    static char sql[LUNCH * 420];
    size_t used = 0;
    cJSON *arr = cJSON_CreateArray();
    for (int k = 0; k < LUNCH; k++) {
        uint8_t id[16];
        char a[36], s[36], h[36], hex[33];
        id_new(id);
        /* NSENIOR seniors cannot each eat 60 subsidised lunches: spread days. */
        used += (size_t)snprintf(sql + used, sizeof sql - used, "INSERT INTO meal_logs (id, "
                 "senior_id, hall_id, service_date, meal_period, mode, served_at, price_paid_fen, "
                 "subsidy_fen) VALUES (%s, %s, %s, '2026-11-%02d', 'lunch', 'dine_in', %lld, 700, "
                 "300);", xid(id, a), xid(cty.senior[0][k % NSENIOR], s), xid(cty.hall[0], h),
                 28 + k / NSENIOR, (long long)now_ms() + k * 7000);
        cJSON *m = cJSON_CreateObject();
        hex_encode(hex, id, 16);
        cJSON_AddStringToObject(m, "id", hex);
        hex_encode(hex, cty.senior[0][k % NSENIOR], 16);
        cJSON_AddStringToObject(m, "senior_id", hex);
        hex_encode(hex, cty.hall[0], 16);
        cJSON_AddStringToObject(m, "hall_id", hex);
        cJSON_AddStringToObject(m, "service_date", "2026-11-30");
        cJSON_AddStringToObject(m, "meal_period", "lunch");
        cJSON_AddStringToObject(m, "mode", "dine_in");
        cJSON_AddNumberToObject(m, "served_at", (double)now_ms());
        cJSON_AddNumberToObject(m, "price_paid_fen", 700);
        cJSON_AddNumberToObject(m, "subsidy_fen", 300);
        cJSON_AddItemToArray(arr, m);
    }
    char *json = cJSON_PrintUnformatted(arr);
    json_meal = (double)strlen(json) / LUNCH;
    cJSON_free(json);
    cJSON_Delete(arr);
    ASSERT_EQ(sync_exec(c, sql), SYNC_OK);
    struct sync_stats st;
    memset(&st, 0, sizeof st);
    ASSERT_EQ(sync_push(c, &st), SYNC_OK);
    bytes_meal = (double)st.bytes_up / LUNCH;

    /* One small push through the SDK, as a tablet does it (its own commit). */
    double total = 0;
    for (int i = 0; i < SMALL_PUSHES; i++) {
        meals_sql(sql, sizeof sql, 0, SMALL_ROWS, i);
        ASSERT_EQ(sync_exec(c, sql), SYNC_OK);
        double t0 = mono();
        ASSERT_EQ(sync_push(c, NULL), SYNC_OK);
        total += mono() - t0;
    }
    small_per_s = SMALL_PUSHES / total;

    /* Tablet write cost: one meal through the SDK against the same INSERT
     * on a plain connection with the same schema and durability. */
    double t = 0;
    for (int i = 0; i < WRITES; i++) {
        meals_sql(sql, sizeof sql, 0, 1, i);
        double t0 = mono();
        ASSERT_EQ(sync_exec(c, sql), SYNC_OK);
        t += mono() - t0;
    }
    write_sdk_us = t * 1e6 / WRITES;
    write_plain_us = plain_write_us(srv->dir);

    /* A lunch logged meal by meal, as a clerk does it: LUNCH outbox entries
     * in one push.  The server's CPU time for the push alone. */
    double cpu = 0;
    for (int l = 0; l < LUNCHES; l++) {
        for (int i = 0; i < LUNCH; i++) {
            meals_sql(sql, sizeof sql, 0, 1, 1000 + l * LUNCH + i);
            ASSERT_EQ(sync_exec(c, sql), SYNC_OK);
        }
        double cpu0 = proc_cpu_s(srv->pid);
        ASSERT_EQ(sync_push(c, NULL), SYNC_OK);
        cpu += proc_cpu_s(srv->pid) - cpu0;
    }
    lunch_cpu_ms = cpu * 1e3 / LUNCHES;
    sync_client_close(c);
}

/* ---- initial sync of a big township --------------------------------------- */

#define BIG_SENIORS 10000
#define BIG_MEALS   60000
#define BIG_VISITS  30000
#define BIG_HANDOUT 5000
#define BIG_CASES   1000
#define BIG_ITEMS   4000

static double init_s, init_bytes_row, init_srv_cpu_s, init_tab_cpu_s;

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
static long   init_rows, init_bytes;

static void bench_initial(void)
{
    char dir[128], db[192], sql[1024], a[36], b[36], c[36], d[36];
    struct srv_proc srv;
    struct server s;
    test_dir(dir, sizeof dir, "benchinit");
    snprintf(db, sizeof db, "%s/county.db", dir);
    county_seed(db, &cty);
    static uint8_t sen[BIG_SENIORS][16], vis[BIG_VISITS][16], cas[BIG_CASES][16];
    static const char *const fam[] = { "王", "李", "张", "刘", "陈", "杨", "黄", "赵" };
    static const char *const giv[] = { "秀英", "桂英", "淑珍", "建国", "玉兰", "德明" };
    uint64_t rs = 42;
    seed_open(&s, db);
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(sqlite3_prepare_v2(s.db, "INSERT INTO seniors (id, township_id, name, id_card, "
              "phone, address, gender, birth_year, category) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
              "?8, 'ordinary')", -1, &st, NULL), SQLITE_OK);
    for (int i = 0; i < BIG_SENIORS; i++) {
        id_new(sen[i]);
        char name[32], card[24], phone[16], addr[64];
        snprintf(name, sizeof name, "%s%s", fam[rnd_below(&rs, 8)], giv[rnd_below(&rs, 6)]);
        snprintf(card, sizeof card, "5301241%03u%08u", 930 + rnd_below(&rs, 40), (unsigned)i);
        snprintf(phone, sizeof phone, "139%08u", rnd_below(&rs, 100000000));
        snprintf(addr, sizeof addr, "%u组%u号", 1 + rnd_below(&rs, 12), 1 + rnd_below(&rs, 80));
        sqlite3_bind_blob(st, 1, sen[i], 16, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, cty.twp[0], 16, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, card, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 5, phone, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 6, addr, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 7, i % 2 ? "F" : "M", -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 8, 1930 + (int)rnd_below(&rs, 30));
        ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    for (int i = 0; i < BIG_MEALS; i++) {
        uint8_t id[16];
        id_new(id);
        snprintf(sql, sizeof sql, "INSERT INTO meal_logs (id, senior_id, hall_id, service_date, "
                 "meal_period, mode, served_at, price_paid_fen, subsidy_fen) VALUES (%s, %s, %s, "
                 "'2026-%02d-%02d', 'lunch', 'dine_in', %lld, 700, 0)", xid(id, a),
                 xid(sen[rnd_below(&rs, BIG_SENIORS)], b), xid(cty.hall[0], c),
                 1 + i / 6000, 1 + i % 28, 1764474000000LL + i * 1000LL);
        ASSERT_EQ(store_exec(s.db, sql), SYNC_OK);
    }
    /* Visit notes vary as a caregiver's do: a few visitors and places, a
     * blood pressure and one of a handful of remarks (sealed per value, so
     * only pulls that carry them opened let the compressor see repeats). */
    static const char *const who[] = { "李桂兰", "张丽", "王建华", "赵敏", "陈晓燕", "刘洋" };
    static const char *const loc[] = { "家中", "村委会", "卫生室", "子女家", "日间照料中心" };
    static const char *const rem[] = { "身体良好", "腿脚不便，需助行器", "独居，情绪稳定",
                                       "血糖偏高，已提醒复查", "屋顶漏雨，已上报", "睡眠差",
                                       "药品充足", "家属在场", "需要上门理发", "听力下降" };
    for (int i = 0; i < BIG_VISITS; i++) {
        id_new(vis[i]);
        snprintf(sql, sizeof sql, "INSERT INTO visits (id, township_id, senior_id, campaign_id, "
                 "kind, visitor, visited_at, service_date, location, notes) VALUES (%s, %s, %s, "
                 "%s, 'routine', '%s', %lld, '2026-%02d-%02d', '%s', '血压%u/%u，%s')",
                 xid(vis[i], a), xid(cty.twp[0], b), xid(sen[i % BIG_SENIORS], c),
                 i % 4 ? "NULL" : xid(cty.campaign, d), who[rnd_below(&rs, 6)],
                 1764474000000LL + i * 1000LL, 1 + i / 3000, 1 + i % 28, loc[rnd_below(&rs, 5)],
                 100 + rnd_below(&rs, 70), 60 + rnd_below(&rs, 35), rem[rnd_below(&rs, 10)]);
        ASSERT_EQ(store_exec(s.db, sql), SYNC_OK);
    }
    for (int i = 0; i < BIG_HANDOUT; i++) {
        uint8_t id[16];
        id_new(id);
        snprintf(sql, sizeof sql, "INSERT INTO visit_handouts (id, visit_id, township_id, "
                 "senior_id, kind, amount_fen, goods, goods_value_fen) VALUES (%s, %s, %s, %s, "
                 "'goods', 0, 'rice 5kg', 3000)", xid(id, a), xid(vis[i * 4], b),
                 xid(cty.twp[0], c), xid(sen[(i * 4) % BIG_SENIORS], d));
        ASSERT_EQ(store_exec(s.db, sql), SYNC_OK);
    }
    for (int i = 0; i < BIG_CASES; i++) {
        id_new(cas[i]);
        snprintf(sql, sizeof sql, "INSERT INTO retrofit_cases (id, township_id, senior_id, "
                 "target_year, estimated_cost_fen) VALUES (%s, %s, %s, 2026, 350000)",
                 xid(cas[i], a), xid(cty.twp[0], b), xid(sen[i * 7], c));
        ASSERT_EQ(store_exec(s.db, sql), SYNC_OK);
    }
    for (int i = 0; i < BIG_ITEMS; i++) {
        uint8_t id[16];
        id_new(id);
        snprintf(sql, sizeof sql, "INSERT INTO retrofit_items (id, case_id, township_id, "
                 "item_kind, cost_fen) VALUES (%s, %s, %s, 'grab_bar', 12000)", xid(id, a),
                 xid(cas[i % BIG_CASES], b), xid(cty.twp[0], c));
        ASSERT_EQ(store_exec(s.db, sql), SYNC_OK);
    }
    seed_close(&s);
    srv_start_config(&srv, dir, db, "{\"device_rate_per_s\": 0, \"ip_rate_per_s\": 0}");
    struct sync_client *tab = tablet_new(&srv, "carer", "caregiver", cty.twp[0]);
    struct sync_stats stt;
    double t0 = mono(), scpu0 = proc_cpu_s(srv.pid), tcpu0 = thread_cpu_s();
    ASSERT_EQ(sync_run(tab, &stt), SYNC_OK);
    init_s = mono() - t0;
    init_tab_cpu_s = thread_cpu_s() - tcpu0;
    init_srv_cpu_s = proc_cpu_s(srv.pid) - scpu0;
    init_rows = stt.pulled;
    init_bytes = (long)(stt.bytes_up + stt.bytes_down);
    init_bytes_row = (double)init_bytes / (double)init_rows;
    sync_client_close(tab);
    srv_stop(&srv);
}

/* The cost of protecting one personal value: seal and open a name. */
static double seal_us, open_us;

static void bench_seal(void)
{
    uint8_t key[32], id[16], *ct = NULL, *pt = NULL;
    size_t ctlen = 0, ptlen = 0;
    const char *name = "欧阳秀英";
    const int n = 200000;
    randombytes_buf(key, sizeof key);
    id_new(id);
    double t0 = mono();
    for (int i = 0; i < n; i++) {
        free(ct);
        ASSERT_EQ(pv_seal(key, 1, "seniors", "name", id, 16, (const uint8_t *)name, strlen(name),
                          &ct, &ctlen), SYNC_OK);
    }
    double t1 = mono();
    for (int i = 0; i < n; i++) {
        free(pt);
        ASSERT_EQ(pv_open(key, "seniors", "name", id, 16, ct, ctlen, &pt, &ptlen), SYNC_OK);
    }
    double t2 = mono();
    free(ct);
    free(pt);
    seal_us = (t1 - t0) * 1e6 / n;
    open_us = (t2 - t1) * 1e6 / n;
}

/* The 1-minute load average: how busy the machine was while it ran. */
static double load_avg(void)
{
    double l = NAN;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f && fscanf(f, "%lf", &l) != 1)
        l = NAN;
    if (f)
        fclose(f);
    return l;
}

/* BENCH=merge,initial,wire,pushes,conn,fleet,seal runs only those parts (the
 * others print nan); unset: everything. */
static int want(const char *part)
{
    const char *only = getenv("BENCH");
    return only == NULL || *only == '\0' || strstr(only, part) != NULL;
}

static void bench_all(void)
{
    char dir[128], db[192];
    struct srv_proc srv;
    merge_push_s = merge_plain_s = small_per_s = bytes_meal = json_meal = lunch_cpu_ms = NAN;
    push_cpu_ms = sync_cpu_ms = tablet_sync_cpu_ms = NAN;
    push1_per_s = pushn_per_s = lat_p50_ms = lat_p99_ms = lat_max_ms = NAN;
    open_achieved = closed_per_s = init_s = init_bytes_row = init_srv_cpu_s = init_tab_cpu_s = NAN;
    write_sdk_us = write_plain_us = seal_us = open_us = NAN;
    if (want("seal"))
        bench_seal();
    if (getenv("BENCH_MERGE_ROWS"))
        merge_rows = atoi(getenv("BENCH_MERGE_ROWS"));
    if (want("merge"))
        bench_merge();
    if (want("initial"))
        bench_initial();
    if (want("wire") || want("pushes") || want("fleet") || want("conn")) {
        test_dir(dir, sizeof dir, "benchhttp");
        snprintf(db, sizeof db, "%s/county.db", dir);
        county_seed(db, &cty);
        add_halls(db, NHALL + 100);
        /* Measuring throughput, not the flood guard: limits off (every
         * tablet here has the address 127.0.0.1).
         * BENCH_CONFIG adds settings, e.g. "\"group_commit_max\": 1". */
        char cfg[512];
        const char *extra = getenv("BENCH_CONFIG");
        snprintf(cfg, sizeof cfg, "{\"device_rate_per_s\": 0, \"ip_rate_per_s\": 0, "
                 "\"conns_per_ip\": 0%s%s}",
                 extra && *extra ? ", " : "", extra ? extra : "");
        srv_start_config(&srv, dir, db, cfg);
        if (want("wire"))
            bench_wire(&srv);
        if (want("conn"))
            bench_conn(&srv);
        if (want("pushes"))
            bench_pushes(&srv);
        if (want("fleet"))
            bench_fleet(&srv);
        srv_stop(&srv);
    }

    double push_rate = MERGE_ROWS / merge_push_s, plain_rate = MERGE_ROWS / merge_plain_s;
    printf("\n%-40s %16s %12s\n", "figure", "value", "target");
    printf("%-40s %16.2f\n", "machine load average (1 min) at the end", load_avg());
    printf("%-40s %12.0f r/s\n", "merge rate, full push path", push_rate);
    printf("%-40s %12.0f r/s\n", "  plain prepared INSERTs, same run", plain_rate);
    printf("%-40s %15.2fx %12s\n", "  merge / plain", push_rate / plain_rate, ">= 0.6x");
    printf("%-40s %14.0f/s %12s\n", "50-row pushes, 8 devices at once", pushn_per_s, ">= 1000/s");
    printf("%-40s %13.2f ms\n", "  server CPU per push (user+sys)", push_cpu_ms);
    printf("%-40s %14.0f/s\n", "  = pushes/s on 2 idle cores, at most", 2e3 / push_cpu_ms);
    printf("%-40s %14.0f/s\n", "  one device, back to back", push1_per_s);
    printf("%-40s %14.0f/s\n", "  one tablet through the SDK", small_per_s);
    printf("%-40s %13.2f ms\n", "  server CPU, 60 meals logged one by one", lunch_cpu_ms);
    printf("%-40s %16s\n", "  commit mode", COMMIT_MODE);
    printf("%-40s %13.1f ms %12s\n", "sync latency p50 (200 tablets, 500/s)", lat_p50_ms, "");
    printf("%-40s %13.1f ms %12s\n", "sync latency p99", lat_p99_ms, "<= 20 ms");
    printf("%-40s %13.1f ms\n", "  max", lat_max_ms);
    printf("%-40s %14.0f/s\n", "  rate achieved (offered 500/s)", open_achieved);
    printf("%-40s %14.0f/s %12s\n", "sync throughput (200 tablets, closed)", closed_per_s,
           ">= 2000/s");
    printf("%-40s %13.2f ms\n", "  server CPU per sync (user+sys)", sync_cpu_ms);
    printf("%-40s %14.0f/s\n", "  = syncs/s on 2 idle cores, at most", 2e3 / sync_cpu_ms);
    printf("%-40s %13.2f ms\n", "  tablets' CPU per sync (this process)", tablet_sync_cpu_ms);
    printf("%-40s %14.0f/s\n", "  = syncs/s on 2 cores shared with them",
           2e3 / (sync_cpu_ms + tablet_sync_cpu_ms));
    printf("%-40s %14.2f s %12s\n", "initial sync, 10k seniors + 100k rows", init_s, "<= 2 s");
    printf("%-40s %14.2f s\n", "  server CPU (user+sys)", init_srv_cpu_s);
    printf("%-40s %14.2f s\n", "  tablet CPU (its thread)", init_tab_cpu_s);
    printf("%-40s %14ld B\n", "  bytes on the wire", init_bytes);
    printf("%-40s %16ld\n", "  rows received (caregiver's share)", init_rows);
    printf("%-40s %14.1f B %12s\n", "  bytes per row", init_bytes_row, "<= 60 B");
    printf("%-40s %14.1f B %12s\n", "bytes per meal (60-meal lunch batch)", bytes_meal, "<= 40 B");
    printf("%-40s %14.1f B\n", "  same records as JSON", json_meal);
    printf("%-40s %13.0f us\n", "tablet write: one meal through the SDK", write_sdk_us);
    printf("%-40s %13.0f us\n", "  same INSERT, plain connection", write_plain_us);
    printf("%-40s %15.2fx %12s\n", "  SDK / plain", write_sdk_us / write_plain_us, "<= 1.5x");
    printf("%-40s %13.1f MB %12s\n", "server peak RSS, 500 tablets syncing",
           (double)rss_peak_kb / 1024, "<= 100 MB");
    printf("%-40s %16ld\n", "  failed syncs (all phases)", sync_fail);
    printf("%-40s %13.0f us\n", "server CPU per request, new connection", conn_new_us);
    printf("%-40s %13.0f us\n", "  same, on one kept connection", conn_kept_us);
    printf("%-40s %13.2f us\n", "seal one personal value", seal_us);
    printf("%-40s %13.2f us\n", "open one personal value", open_us);
    printf("%-40s %14d B\n", "  bytes added per sealed value", PV_OVERHEAD);
    printf("{\"merge_rows_per_s\":%.0f,\"plain_rows_per_s\":%.0f,\"merge_ratio\":%.3f,"
           "\"pushes_per_s\":%.1f,\"pushes_one_device_per_s\":%.1f,\"pushes_sdk_per_s\":%.1f,"
           "\"commit_mode\":\"%s\",\"sync_p50_ms\":%.2f,\"sync_p99_ms\":%.2f,"
           "\"sync_max_ms\":%.2f,\"open_loop_achieved_per_s\":%.1f,\"syncs_per_s\":%.1f,"
           "\"initial_sync_s\":%.3f,\"initial_sync_bytes\":%ld,\"initial_sync_rows\":%ld,"
           "\"initial_bytes_per_row\":%.1f,\"bytes_per_meal\":%.1f,\"json_bytes_per_meal\":%.1f,"
           "\"write_sdk_us\":%.0f,\"write_plain_us\":%.0f,\"write_ratio\":%.2f,"
           "\"server_peak_rss_mb\":%.1f,\"failed_syncs\":%ld,\"seal_us\":%.2f,\"open_us\":%.2f,"
           "\"server_cpu_ms_per_push\":%.3f,\"server_cpu_ms_per_sync\":%.3f,"
           "\"server_cpu_ms_per_lunch_push\":%.2f,\"load_avg\":%.2f,"
           "\"server_cpu_us_per_request_new_conn\":%.1f,"
           "\"server_cpu_us_per_request_kept_conn\":%.1f,"
           "\"initial_sync_server_cpu_s\":%.3f,\"initial_sync_tablet_cpu_s\":%.3f,"
           "\"tablets_cpu_ms_per_sync\":%.3f}\n",
           push_rate, plain_rate, push_rate / plain_rate, pushn_per_s, push1_per_s, small_per_s,
           COMMIT_MODE, lat_p50_ms, lat_p99_ms, lat_max_ms, open_achieved, closed_per_s, init_s,
           init_bytes, init_rows, init_bytes_row, bytes_meal, json_meal, write_sdk_us,
           write_plain_us, write_sdk_us / write_plain_us, (double)rss_peak_kb / 1024, sync_fail,
           seal_us, open_us, push_cpu_ms, sync_cpu_ms, lunch_cpu_ms, load_avg(), conn_new_us,
           conn_kept_us, init_srv_cpu_s, init_tab_cpu_s, tablet_sync_cpu_ms);
}

int main(void)
{
    static const struct test_case cases[] = { TEST(bench_all), { NULL, NULL } };
    store_sqlite_config();          /* the server's settings for the in-process merge */
    return test_run_all("bench", cases);
}
