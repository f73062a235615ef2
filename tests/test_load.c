/* test_load.c - many tablets syncing at once against one server.
 *
 * ES_LOAD_TABLETS tablets (default 500; 150 under ASan), one thread each, every one a real
 * SDK tablet in its own dining hall (two tablets a hall), enroll, take
 * their first sync, and then for ES_LOAD_SECONDS (default 4) record
 * meals and sync over loopback HTTP, with a random pause (0 ..
 * ES_LOAD_THINK_MS, default 10000) between syncs, 1 .. ES_LOAD_MEALS
 * (default 3) meals a sync.  Then every tablet syncs
 * once more and the test checks:
 *
 *   - no sync failed, during the load or after (errors: 0);
 *   - every meal any tablet recorded is on the server exactly once, and
 *     the server has no other (lost writes: 0);
 *   - every tablet holds exactly the server's projection of its hall.
 *
 * It prints the sync latency (p50, p99, max) and the server's resident
 * memory after enrollment, after a warm-up (the first ES_LOAD_WARMUP_S
 * seconds of load, default a fifth of the run) and at the end: figures,
 * not assertions (the machine is shared).  `make soak` runs it with 500
 * tablets for SOAK_SECONDS (default 600), a sync every 0-20 s each and
 * 1-10 meals a sync.  The server's SQLite page cache (cache_size, 64 MiB)
 * grows with the database until it is full, so RSS is printed beside the
 * database's size.
 *
 * The server runs with the address limits off (ip_rate_per_s 0,
 * conns_per_ip 0): every tablet here comes from 127.0.0.1, as they would
 * through a reverse proxy.  The device limits and every other default
 * stay.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "eldersync.h"
#include "ids.h"
#include "sqlite.h"
#include "support.h"
#include "test.h"
#include "util.h"

#define PER_HALL 2

/* make test SAN=1: fewer tablets (each is several times slower there). */
#if defined(__SANITIZE_ADDRESS__)
#define DEFAULT_TABLETS 150
#else
#define DEFAULT_TABLETS 500
#endif

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int env_int(const char *name, int def)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : def;
}

struct tab {
    pthread_t           th;
    int                 idx;
    struct sync_client *c;
    char                code[24];
    uint8_t             hall[16], twp[16];
    int                 twp_i;
    uint64_t            rng;
    /* what it recorded */
    uint8_t           (*ids)[16];
    size_t              nids, capids;
    /* sync latencies, ms */
    int32_t            *lat;
    size_t              nlat, caplat;
    long                syncs, errors, enroll_failed;
    char                first_error[200];
};

static struct county     g_c;
static struct srv_proc   g_srv;
static struct tab       *g_tabs;
static int               g_ntab, g_think_ms, g_meals;
static atomic_int        g_go, g_stop, g_ready;

static int push_id(struct tab *t, const uint8_t id[16])
{
    if (t->nids == t->capids) {
        size_t cap = t->capids ? 2 * t->capids : 64;
        void *p = realloc(t->ids, cap * sizeof *t->ids);
        if (p == NULL)
            return -1;
        t->ids = p;
        t->capids = cap;
    }
    memcpy(t->ids[t->nids++], id, 16);
    return 0;
}

static void push_lat(struct tab *t, int64_t ms)
{
    if (t->nlat == t->caplat) {
        size_t cap = t->caplat ? 2 * t->caplat : 64;
        void *p = realloc(t->lat, cap * sizeof *t->lat);
        if (p == NULL)
            return;
        t->lat = p;
        t->caplat = cap;
    }
    t->lat[t->nlat++] = (int32_t)ms;
}

static void note_error(struct tab *t, const char *what)
{
    if (t->errors++ == 0)
        snprintf(t->first_error, sizeof t->first_error, "%s: %s", what,
                 t->c ? sync_client_errmsg(t->c) : "no client");
}

/* One tablet: no ASSERTs here (they would jump across threads). */
static void *tab_main(void *arg)
{
    struct tab *t = arg;
    char name[32], sql[4096], a[36], b[36], h[36];
    snprintf(name, sizeof name, "t%03d", t->idx);
    t->c = tablet_enroll(&g_srv, name, t->code);
    if (t->c == NULL) {
        t->enroll_failed = 1;
        atomic_fetch_add(&g_ready, 1);
        return NULL;
    }
    if (sync_run(t->c, NULL) != SYNC_OK)
        note_error(t, "first sync");
    atomic_fetch_add(&g_ready, 1);
    while (!atomic_load(&g_go))
        sleep_ms(5);
    while (!atomic_load(&g_stop)) {
        int n = 1 + (int)rnd_below(&t->rng, (unsigned)g_meals);
        size_t len = 0;
        for (int k = 0; k < n; k++) {
            uint8_t id[16];
            id_new(id);
            len += (size_t)snprintf(sql + len, sizeof sql - len,
                                    "INSERT INTO meal_logs (id, senior_id, hall_id, service_date, "
                                    "meal_period, mode, served_at, price_paid_fen, subsidy_fen) "
                                    "VALUES (%s, %s, %s, '2026-11-30', 'lunch', 'dine_in', %lld, "
                                    "1000, 0);", xid(id, a),
                                    xid(g_c.senior[t->twp_i][rnd_below(&t->rng, NSENIOR)], b),
                                    xid(t->hall, h), (long long)now_ms());
            if (push_id(t, id) != 0)
                break;
        }
        if (sync_exec(t->c, sql) != SYNC_OK) {
            note_error(t, "exec");
            t->nids -= (size_t)n;           /* nothing of it was recorded */
        }
        int64_t t0 = mono_ms();
        int rc = sync_run(t->c, NULL);
        push_lat(t, mono_ms() - t0);
        t->syncs++;
        if (rc != SYNC_OK)
            note_error(t, "sync");
        if (g_think_ms > 0)
            sleep_ms((int)rnd_below(&t->rng, (unsigned)g_think_ms + 1));
    }
    return NULL;
}

/* The county database's size with its WAL, kB. */
static long db_kb(const char *db)
{
    char path[256];
    struct stat st;
    long kb = 0;
    if (stat(db, &st) == 0)
        kb += (long)(st.st_size / 1024);
    snprintf(path, sizeof path, "%s-wal", db);
    if (stat(path, &st) == 0)
        kb += (long)(st.st_size / 1024);
    return kb;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

/* Adds nhall dining halls, spread over the townships, through the
 * server's exec (so they carry row versions like any county change). */
static void add_halls(int nhall, uint8_t (*hall)[16], int *twp)
{
    size_t cap = (size_t)nhall * 160 + 256, len = 0;
    char *sql = malloc(cap), a[36], b[36];
    ASSERT_NOT_NULL(sql);
    len += (size_t)snprintf(sql, cap, "INSERT INTO dining_halls (id, township_id, name, "
                            "meal_price_fen) VALUES ");
    for (int i = 0; i < nhall; i++) {
        id_new(hall[i]);
        twp[i] = i % NTWP;
        len += (size_t)snprintf(sql + len, cap - len, "%s(%s, %s, 'L%d', 1000)", i ? ", " : "",
                                xid(hall[i], a), xid(g_c.twp[twp[i]], b), i);
    }
    srv_exec(&g_srv, sql);
    free(sql);
}

static void test_many_tablets(void)
{
    char dir[128], db[192];
    g_ntab = env_int("ES_LOAD_TABLETS", DEFAULT_TABLETS);
    int secs = env_int("ES_LOAD_SECONDS", 4);
    int warm = env_int("ES_LOAD_WARMUP_S", secs / 5);
    g_think_ms = env_int("ES_LOAD_THINK_MS", 10000);
    g_meals = env_int("ES_LOAD_MEALS", 3);
    if (g_meals < 1 || g_meals > 12)
        g_meals = 3;
    ASSERT_GE(g_ntab, PER_HALL);
    int nhall = (g_ntab + PER_HALL - 1) / PER_HALL;

    /* Three descriptors a tablet (database, WAL, shared memory), a socket
     * while it syncs, and the server's own. */
    struct rlimit rl;
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rlim_t fds = (rlim_t)g_ntab * 5 + 256;
    if (rl.rlim_cur < fds) {
        rl.rlim_cur = rl.rlim_max < fds ? rl.rlim_max : fds;
        ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    ASSERT_GE((long)rl.rlim_cur, (long)g_ntab * 4 + 64);

    test_dir(dir, sizeof dir, "load");
    snprintf(db, sizeof db, "%s/county.db", dir);
    county_seed(db, &g_c);
    memset(&g_srv, 0, sizeof g_srv);
    snprintf(g_srv.db, sizeof g_srv.db, "%s", db);
    snprintf(g_srv.dir, sizeof g_srv.dir, "%s", dir);
    snprintf(g_srv.log, sizeof g_srv.log, "%s/server.log", dir);
    uint8_t (*hall)[16] = calloc((size_t)nhall, 16);
    int *htwp = calloc((size_t)nhall, sizeof *htwp);
    ASSERT(hall != NULL && htwp != NULL);
    add_halls(nhall, hall, htwp);
    srv_start_config(&g_srv, dir, db, "{\"ip_rate_per_s\": 0, \"conns_per_ip\": 0}\n");

    g_tabs = calloc((size_t)g_ntab, sizeof *g_tabs);
    ASSERT_NOT_NULL(g_tabs);
    for (int h = 0; h < nhall; h++) {
        char codes[PER_HALL][24];
        int n = g_ntab - h * PER_HALL < PER_HALL ? g_ntab - h * PER_HALL : PER_HALL;
        srv_codes(&g_srv, "hall", hall[h], n, codes);
        for (int k = 0; k < n; k++) {
            struct tab *t = &g_tabs[h * PER_HALL + k];
            t->idx = h * PER_HALL + k;
            memcpy(t->code, codes[k], sizeof t->code);
            memcpy(t->hall, hall[h], 16);
            t->twp_i = htwp[h];
            memcpy(t->twp, g_c.twp[htwp[h]], 16);
            t->rng = 0x6c6f6164ull * 1000003u + (uint64_t)t->idx;
        }
    }

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1u << 20);
    int64_t t_enroll = mono_ms();
    for (int i = 0; i < g_ntab; i++)
        ASSERT_EQ(pthread_create(&g_tabs[i].th, &attr, tab_main, &g_tabs[i]), 0);
    pthread_attr_destroy(&attr);
    while (atomic_load(&g_ready) < g_ntab)
        sleep_ms(20);
    t_enroll = mono_ms() - t_enroll;
    long rss_enrolled = srv_rss_kb(&g_srv);

    int64_t t0 = mono_ms();
    atomic_store(&g_go, 1);
    long rss_warm = -1, rss_max = 0, db_warm = 0;
    char series[2048] = "";
    size_t slen = 0;
    int every = secs >= 300 ? 60 : secs >= 30 ? 10 : 1;
    for (int sec = 1; sec <= secs; sec++) {
        sleep_ms((int)(t0 + sec * 1000 - mono_ms() > 0 ? t0 + sec * 1000 - mono_ms() : 0));
        long rss = srv_rss_kb(&g_srv);
        if (rss > rss_max)
            rss_max = rss;
        if (sec == warm) {
            rss_warm = rss;
            db_warm = db_kb(db);
        }
        if (sec % every == 0 && slen < sizeof series - 64)
            slen += (size_t)snprintf(series + slen, sizeof series - slen, " %ds:%ld/%ld", sec,
                                     rss / 1024, db_kb(db) / 1024);
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < g_ntab; i++)
        pthread_join(g_tabs[i].th, NULL);
    int64_t ran_ms = mono_ms() - t0;
    long rss_end = srv_rss_kb(&g_srv);

    /* Errors during the load. */
    long errors = 0, syncs = 0, enroll_failed = 0, written = 0;
    size_t nlat = 0;
    for (int i = 0; i < g_ntab; i++) {
        struct tab *t = &g_tabs[i];
        if (t->errors && errors < 5)
            fprintf(stderr, "  tablet %d: %ld errors, first: %s\n", i, t->errors,
                    t->first_error);
        errors += t->errors;
        syncs += t->syncs;
        enroll_failed += t->enroll_failed;
        written += (long)t->nids;
        nlat += t->nlat;
    }

    /* Every tablet syncs once more: its last writes reach the server. */
    long final_errors = 0;
    for (int i = 0; i < g_ntab; i++) {
        struct tab *t = &g_tabs[i];
        if (t->c == NULL)
            continue;
        if (sync_run(t->c, NULL) != SYNC_OK) {
            if (final_errors++ < 5)
                fprintf(stderr, "  final sync of tablet %d: %s\n", i, sync_client_errmsg(t->c));
        }
    }
    /* ... and once more, so each holds its hall mate's last meals too. */
    for (int i = 0; i < g_ntab; i++)
        if (g_tabs[i].c && sync_run(g_tabs[i].c, NULL) != SYNC_OK)
            final_errors++;

    /* Lost writes: every recorded meal exactly once on the server, and
     * nothing else there. */
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(h, 10000);
    ASSERT_EQ(sqlite3_prepare_v2(h, "SELECT count(*) FROM meal_logs WHERE id = ?1", -1, &st,
                                 NULL), SQLITE_OK);
    long lost = 0;
    for (int i = 0; i < g_ntab; i++) {
        for (size_t k = 0; k < g_tabs[i].nids; k++) {
            sqlite3_reset(st);
            sqlite3_bind_blob(st, 1, g_tabs[i].ids[k], 16, SQLITE_STATIC);
            if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int64(st, 0) != 1)
                lost++;
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    long on_server = server_count(db, "SELECT count(*) FROM meal_logs");

    /* Convergence: each tablet holds the server's projection of its hall. */
    long diverged = 0;
    uint8_t want[32], mine[32];
    for (int hh = 0; hh < nhall; hh++) {
        proj_hash(db, "hall", g_c.twp[htwp[hh]], hall[hh], want);
        for (int k = 0; k < PER_HALL && hh * PER_HALL + k < g_ntab; k++) {
            struct tab *t = &g_tabs[hh * PER_HALL + k];
            if (t->c == NULL || sync_content_hash(t->c, mine) != SYNC_OK ||
                memcmp(mine, want, 32) != 0)
                diverged++;
        }
    }

    int32_t *all = malloc((nlat ? nlat : 1) * sizeof *all);
    ASSERT_NOT_NULL(all);
    size_t m = 0;
    for (int i = 0; i < g_ntab; i++) {
        memcpy(all + m, g_tabs[i].lat, g_tabs[i].nlat * sizeof *all);
        m += g_tabs[i].nlat;
    }
    qsort(all, m, sizeof *all, cmp_i32);
    printf("load: %d tablets (%d halls) for %.1f s, think 0..%d ms; enrolled and first sync in "
           "%.1f s; %ld syncs (%.1f/s), %ld errors, %ld final-sync errors, %ld enrollments "
           "failed; %ld meals written, %ld on the server, %ld lost or doubled; %ld tablets "
           "diverged; sync latency p50 %d ms, p99 %d ms, max %d ms; server RSS %ld kB enrolled, "
           "%ld kB after %d s warm-up (database %ld kB), %ld kB at the end (%+.1f%% since "
           "warm-up; database %ld kB), %ld kB at most; RSS/database MB by time:%s\n",
           g_ntab, nhall, ran_ms / 1e3, g_think_ms, t_enroll / 1e3, syncs,
           syncs / (ran_ms / 1e3), errors, final_errors, enroll_failed, written, on_server, lost,
           diverged, m ? all[m / 2] : -1, m ? all[m * 99 / 100] : -1, m ? all[m - 1] : -1,
           rss_enrolled, rss_warm, warm, db_warm, rss_end,
           rss_warm > 0 ? 100.0 * (double)(rss_end - rss_warm) / (double)rss_warm : 0.0,
           db_kb(db), rss_max, series);
    fflush(stdout);
    free(all);

    ASSERT_EQ(enroll_failed, 0);
    ASSERT_EQ(errors, 0);
    ASSERT_EQ(final_errors, 0);
    ASSERT_EQ(lost, 0);
    ASSERT_EQ(on_server, written);
    ASSERT_EQ(diverged, 0);
    ASSERT_GT(syncs, 0);

    for (int i = 0; i < g_ntab; i++) {
        sync_client_close(g_tabs[i].c);
        free(g_tabs[i].ids);
        free(g_tabs[i].lat);
    }
    free(g_tabs);
    free(hall);
    free(htwp);
    srv_stop(&g_srv);
}

int main(void)
{
    static const struct test_case tests[] = {
        TEST(test_many_tablets),
        { NULL, NULL }
    };
    if (sodium_init() < 0)
        return 1;
    int rc = test_run_all("test_load", tests);
    if (g_srv.pid > 0)
        srv_kill(&g_srv);
    return rc;
}
