/* test_crash.c - crash consistency: processes killed with SIGKILL at random
 * moments must neither lose an acknowledged write nor apply one twice.
 *
 *   tablet_kill   eldersync CLI processes (exec / sync) on one tablet file
 *                 are SIGKILLed mid-run; afterwards every write that
 *                 committed is on the tablet and on the server, every write
 *                 that may have committed is on both or on neither, and the
 *                 tablet file is intact with an empty outbox.
 *   server_kill   in-process tablets (ES_KILL_TABLETS, default 8), driven
 *                 by up to 8 threads, write, push and pull while a helper
 *                 thread SIGKILLs the sync server at random moments (until
 *                 ES_KILL_MIN, default 30, landed during a request and
 *                 ES_KILL_OPS pushes and pulls completed); the server is
 *                 restarted on the same port each time.  Every
 *                 acknowledged write survives, every write lands exactly
 *                 once, batch sequences have no gaps, nothing conflicts,
 *                 every file passes integrity_check, and every tablet
 *                 converges to the server's projection.  `make campaign`
 *                 runs it with 50 tablets, 200 kills, 10,000 operations.
 *
 * The build directory (for the eldersync CLI) is $ES_BUILD_DIR, else the
 * parent of the directory holding this binary (build/release/tests/..).
 * Run from the repository root.  The PRNG seed is printed; set
 * ES_CRASH_SEED to replay a run.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "eldersync.h"
#include "ids.h"
#include "sqlite.h"
#include "support.h"
#include "test.h"
#include "util.h"

#define MIN_KILLS        50       /* tablet_kill */
#define TABLET_ITER_CAP  600
#define SERVICE_DATE     "2026-11-30"

static char     g_build[1024];     /* e.g. build/release */
static char     g_cli[1100];      /* g_build/eldersync */
static uint64_t g_seed;

/* Servers still running if a test is abandoned; stopped by main. */
static struct srv_proc g_srv1, g_srv2;

/* ---- small helpers ------------------------------------------------------ */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_us(unsigned us)
{
    struct timespec ts = { (time_t)(us / 1000000u), (long)(us % 1000000u) * 1000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Build dir: $ES_BUILD_DIR, else dirname(dirname(argv0)). */
static void find_build_dir(const char *argv0)
{
    const char *env = getenv("ES_BUILD_DIR");
    if (env && *env) {
        snprintf(g_build, sizeof g_build, "%s", env);
    } else {
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s", argv0 ? argv0 : "");
        char *slash = strrchr(tmp, '/');
        if (slash == NULL) {                       /* run from inside tests/ */
            snprintf(g_build, sizeof g_build, "..");
        } else {
            *slash = '\0';                         /* .../tests */
            slash = strrchr(tmp, '/');
            if (slash == NULL)
                snprintf(g_build, sizeof g_build, "%s/..", tmp);
            else {
                *slash = '\0';
                snprintf(g_build, sizeof g_build, "%s", tmp[0] ? tmp : "/");
            }
        }
    }
    snprintf(g_cli, sizeof g_cli, "%s/eldersync", g_build);
}

/* Removes a flat scratch directory (only after a passing test). */
static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

struct idlist {
    uint8_t (*id)[16];
    size_t  n, cap;
};

static void ids_push(struct idlist *l, const uint8_t id[16])
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        void *p = realloc(l->id, cap * sizeof *l->id);
        ASSERT_NOT_NULL(p);
        l->id = p;
        l->cap = cap;
    }
    memcpy(l->id[l->n++], id, 16);
}

static void ids_free(struct idlist *l)
{
    free(l->id);
    memset(l, 0, sizeof *l);
}

/* A read-write handle on any database file (tablet or server). */
static sqlite3 *db_open(const char *path)
{
    sqlite3 *h = NULL;
    ASSERT_EQ(sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(h, 10000);
    return h;
}

static int64_t q_int(sqlite3 *h, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
        fprintf(stderr, "  %s\n  -> %s\n", sql, sqlite3_errmsg(h));
    ASSERT_NOT_NULL(st);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        fprintf(stderr, "  %s\n  -> %s\n", sql, sqlite3_errmsg(h));
    ASSERT_EQ(rc, SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void assert_integrity(sqlite3 *h, const char *what)
{
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    const char *r = (const char *)sqlite3_column_text(st, 0);
    if (r == NULL || strcmp(r, "ok") != 0)
        fprintf(stderr, "  integrity_check on %s: %s\n", what, r ? r : "(null)");
    int ok = r != NULL && strcmp(r, "ok") == 0;
    sqlite3_finalize(st);
    ASSERT(ok);
}

/* 1 if PRAGMA integrity_check says ok (else prints what it says). */
static int integrity_ok(sqlite3 *h, const char *what)
{
    sqlite3_stmt *st = NULL;
    int ok = 0;
    if (sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        ok = r != NULL && strcmp(r, "ok") == 0;
        if (!ok)
            fprintf(stderr, "  integrity_check on %s: %s\n", what, r ? r : "(null)");
    }
    sqlite3_finalize(st);
    return ok;
}

/* Batch sequences: exactly 1..last_batch_seq for every device, and each
 * change was applied by exactly one batch (sum of nchanges = meal rows,
 * for tests that only ever insert meals). */
static void assert_batches(sqlite3 *h, int ndev_want)
{
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(sqlite3_prepare_v2(h, "SELECT d.last_batch_seq, count(b.batch_seq), "
                                 "coalesce(min(b.batch_seq), 0), coalesce(max(b.batch_seq), 0), "
                                 "hex(d.id) FROM devices d LEFT JOIN batches b ON "
                                 "b.device_id = d.id GROUP BY d.id", -1, &st, NULL), SQLITE_OK);
    int ndev = 0, gaps = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t last = sqlite3_column_int64(st, 0), cnt = sqlite3_column_int64(st, 1);
        int64_t mn = sqlite3_column_int64(st, 2), mx = sqlite3_column_int64(st, 3);
        ndev++;
        if (cnt != last || mx != last || (last > 0 && mn != 1)) {
            fprintf(stderr, "  device %s: last_batch_seq %lld but %lld batches %lld..%lld\n",
                    sqlite3_column_text(st, 4), (long long)last, (long long)cnt,
                    (long long)mn, (long long)mx);
            gaps++;
        }
    }
    sqlite3_finalize(st);
    ASSERT_EQ(ndev, ndev_want);
    ASSERT_EQ(gaps, 0);
    ASSERT_EQ(q_int(h, "SELECT count(*) FROM batches WHERE device_id NOT IN "
                       "(SELECT id FROM devices)"), 0);
    int64_t nchanges = q_int(h, "SELECT coalesce(sum(nchanges), 0) FROM batches");
    int64_t meals = q_int(h, "SELECT count(*) FROM meal_logs");
    if (nchanges != meals)
        fprintf(stderr, "  batches carried %lld changes for %lld meal rows\n",
                (long long)nchanges, (long long)meals);
    ASSERT_EQ(nchanges, meals);
}

/* How many meal_logs rows have this id. */
struct id_probe {
    sqlite3      *h;
    sqlite3_stmt *st;
};

static void probe_open(struct id_probe *p, const char *path)
{
    p->h = db_open(path);
    p->st = NULL;
    ASSERT_EQ(sqlite3_prepare_v2(p->h, "SELECT count(*) FROM meal_logs WHERE id = ?1", -1,
                                 &p->st, NULL), SQLITE_OK);
}

static int64_t probe(struct id_probe *p, const uint8_t id[16])
{
    sqlite3_reset(p->st);
    sqlite3_bind_blob(p->st, 1, id, 16, SQLITE_STATIC);
    ASSERT_EQ(sqlite3_step(p->st), SQLITE_ROW);
    return sqlite3_column_int64(p->st, 0);
}

static void probe_close(struct id_probe *p)
{
    sqlite3_finalize(p->st);
    sqlite3_close(p->h);
    p->st = NULL;
    p->h = NULL;
}

/* Appends n meal INSERTs with fresh ids to sql; the ids go to out. */
static void meal_sql(char *sql, size_t cap, int n, const struct county *c, int hall,
                     uint64_t *rs, struct idlist *out)
{
    size_t len = 0;
    sql[0] = '\0';
    int twp = c->hall_twp[hall];
    for (int k = 0; k < n; k++) {
        uint8_t id[16];
        char a[36], b[36], h[36];
        id_new(id);
        ids_push(out, id);
        int w = snprintf(sql + len, cap - len,
                         "INSERT INTO meal_logs (id, senior_id, hall_id, service_date, "
                         "meal_period, mode, served_at, price_paid_fen, subsidy_fen) VALUES "
                         "(%s, %s, %s, '" SERVICE_DATE "', 'lunch', 'dine_in', 1, 1000, 0);",
                         xid(id, a), xid(c->senior[twp][rnd_below(rs, NSENIOR)], b),
                         xid(c->hall[hall], h));
        ASSERT(w > 0 && (size_t)w < cap - len);
        len += (size_t)w;
    }
}

/* ---- tablet_kill -------------------------------------------------------- */

static pid_t spawn_cli(const char *db, const char *log, const char *cmd, const char *arg)
{
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        int err = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
        }
        /* stderr to a log, so sanitizer reports of a child are not lost */
        dup2(err >= 0 ? err : nul, 2);
        if (arg)
            execl(g_cli, g_cli, "--db", db, cmd, arg, (char *)NULL);
        else
            execl(g_cli, g_cli, "--db", db, cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Runs the CLI to completion; its exit status (-1 if it died). */
static int run_cli(const char *db, const char *log, const char *cmd, const char *arg)
{
    int status = 0;
    pid_t pid = spawn_cli(db, log, cmd, arg);
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The number of sanitizer report lines in a log (a few are printed). */
static int log_has_sanitizer_report(const char *log)
{
    FILE *f = fopen(log, "r");
    char line[1024];
    int bad = 0;
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, "AddressSanitizer") || strstr(line, "LeakSanitizer") ||
            strstr(line, "runtime error:")) {
            if (bad < 5)
                fprintf(stderr, "  child: %s", line);
            bad++;
        }
    }
    fclose(f);
    return bad;
}

enum { W_COMMITTED, W_MAYBE, W_FAILED };

static void test_tablet_kill(void)
{
    char dir[128], db[192], tab[256], log[256], sql[8192];
    struct county c;
    uint64_t rs = g_seed ^ 0x7461626c65746b31ull;
    double t0 = mono_s();
    test_dir(dir, sizeof dir, "crash-tablet");
    snprintf(db, sizeof db, "%s/county.db", dir);
    snprintf(tab, sizeof tab, "%s/hall0.db", dir);
    snprintf(log, sizeof log, "%s/cli.log", dir);
    fprintf(stderr, "tablet_kill: seed %llu, scratch %s\n", (unsigned long long)g_seed, dir);
    county_seed(db, &c);
    srv_start(&g_srv1, dir, db);

    struct sync_client *t = tablet_new(&g_srv1, "hall0", "hall", c.hall[0]);
    ASSERT_EQ(sync_run(t, NULL), SYNC_OK);           /* seniors, for the foreign keys */
    sync_client_close(t);

    /* Calibrate: how long an uninterrupted exec and sync take here (ASan is
     * slower); kills are spread over 0..max(25 ms, that time). */
    struct idlist warm = {0};
    double te = mono_s();
    meal_sql(sql, sizeof sql, 2, &c, 0, &rs, &warm);
    ASSERT_EQ(run_cli(tab, log, "exec", sql), 0);
    te = mono_s() - te;
    double ts = mono_s();
    ASSERT_EQ(run_cli(tab, log, "sync", NULL), 0);
    ts = mono_s() - ts;
    unsigned span_exec = (unsigned)(te * 1e6 * 1.2), span_sync = (unsigned)(ts * 1e6 * 1.2);
    if (span_exec < 25000)
        span_exec = 25000;
    if (span_sync < 25000)
        span_sync = 25000;

    struct idlist ids = {0};
    unsigned char *what = NULL;       /* W_* per id in ids */
    size_t what_cap = 0;
    for (size_t i = 0; i < warm.n; i++)
        ids_push(&ids, warm.id[i]);
    what = calloc(ids.cap, 1);
    what_cap = ids.cap;
    ASSERT_NOT_NULL(what);
    memset(what, W_COMMITTED, ids.n);
    ids_free(&warm);

    /* Kills that landed at 0 ms mostly hit a child that had not started
     * yet; they count for variety but not towards MIN_KILLS. */
    long killed = 0, killed_delay0 = 0, killed_exec = 0, killed_sync = 0;
    long exec_ok = 0, exec_fail = 0, sync_ok = 0, sync_fail = 0, full_syncs = 0;
    int iter;
    for (iter = 0; killed - killed_delay0 < MIN_KILLS; iter++) {
        if (iter >= TABLET_ITER_CAP)
            fprintf(stderr, "  only %ld kills landed in %d runs\n", killed, iter);
        ASSERT_LT(iter, TABLET_ITER_CAP);
        unsigned r = rnd_below(&rs, 100);
        if (r < 6) {                                  /* a sync left to finish */
            int rc = run_cli(tab, log, "sync", NULL);
            if (rc != 0)
                fprintf(stderr, "  iteration %d: uninterrupted sync exited %d\n", iter, rc);
            ASSERT_EQ(rc, 0);
            full_syncs++;
            continue;
        }
        int is_exec = r < 70;
        size_t first = ids.n;
        if (is_exec) {
            int n = rnd_below(&rs, 3) == 0 ? 2 + (int)rnd_below(&rs, 4) : 1;
            meal_sql(sql, sizeof sql, n, &c, 0, &rs, &ids);
            if (what_cap < ids.cap) {
                unsigned char *p = realloc(what, ids.cap);
                ASSERT_NOT_NULL(p);
                what = p;
                what_cap = ids.cap;
            }
        }
        unsigned span = is_exec ? span_exec : span_sync;
        unsigned delay = rnd_below(&rs, 8) == 0 ? 0 : rnd_below(&rs, span + 1);
        pid_t pid = spawn_cli(tab, log, is_exec ? "exec" : "sync", is_exec ? sql : NULL);
        if (delay)
            sleep_us(delay);
        kill(pid, SIGKILL);
        int status = 0;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        int state;
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
            killed++;
            killed_delay0 += delay == 0;
            killed_exec += is_exec;
            killed_sync += !is_exec;
            state = W_MAYBE;
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            state = W_COMMITTED;
            if (is_exec)
                exec_ok++;
            else
                sync_ok++;
        } else {
            state = W_FAILED;
            if (is_exec)
                exec_fail++;
            else
                sync_fail++;
            fprintf(stderr, "  iteration %d: %s exited with status 0x%x\n", iter,
                    is_exec ? "exec" : "sync", status);
        }
        for (size_t i = first; i < ids.n; i++)
            what[i] = (unsigned char)state;
    }

    /* Two syncs to completion. */
    for (int k = 0; k < 2; k++) {
        int rc = run_cli(tab, log, "sync", NULL);
        if (rc != 0)
            fprintf(stderr, "  final sync %d exited %d\n", k + 1, rc);
        ASSERT_EQ(rc, 0);
    }

    struct id_probe pt, ps;
    probe_open(&pt, tab);
    probe_open(&ps, db);
    long n_committed = 0, n_maybe = 0, maybe_present = 0, n_failed = 0, bad = 0;
    for (size_t i = 0; i < ids.n; i++) {
        int64_t on_tab = probe(&pt, ids.id[i]), on_srv = probe(&ps, ids.id[i]);
        char hx[36];
        int ok;
        switch (what[i]) {
        case W_COMMITTED:
            n_committed++;
            ok = on_tab == 1 && on_srv == 1;
            break;
        case W_MAYBE:
            n_maybe++;
            maybe_present += on_tab == 1;
            ok = (on_tab == 1 && on_srv == 1) || (on_tab == 0 && on_srv == 0);
            break;
        default:
            n_failed++;                    /* "on any error nothing is changed" */
            ok = on_tab == 0 && on_srv == 0;
            break;
        }
        if (!ok && bad++ < 10)
            fprintf(stderr, "  id %s (%s): tablet %lld, server %lld\n", xid(ids.id[i], hx),
                    what[i] == W_COMMITTED ? "committed" : what[i] == W_MAYBE ? "maybe"
                    : "failed", (long long)on_tab, (long long)on_srv);
    }
    probe_close(&pt);
    probe_close(&ps);
    if (bad)
        fprintf(stderr, "  %ld ids in the wrong place\n", bad);
    ASSERT_EQ(bad, 0);

    sqlite3 *h = db_open(tab);
    ASSERT_EQ(q_int(h, "SELECT count(*) - count(DISTINCT id) FROM meal_logs"), 0);
    int64_t tab_meals = q_int(h, "SELECT count(*) FROM meal_logs");
    assert_integrity(h, "the tablet");
    int64_t pending = q_int(h, "SELECT count(*) FROM outbox WHERE state = 'pending'");
    int64_t quarantined = q_int(h, "SELECT count(*) FROM outbox WHERE state = 'quarantined'");
    int64_t pbatch = q_int(h, "SELECT count(*) FROM pending_batch");
    sqlite3_close(h);
    if (pending || quarantined || pbatch)
        fprintf(stderr, "  outbox: %lld pending, %lld quarantined; %lld pending batches\n",
                (long long)pending, (long long)quarantined, (long long)pbatch);
    ASSERT_EQ(pending, 0);
    ASSERT_EQ(quarantined, 0);
    ASSERT_EQ(pbatch, 0);

    h = db_open(db);
    ASSERT_EQ(q_int(h, "SELECT count(*) - count(DISTINCT id) FROM meal_logs"), 0);
    int64_t srv_meals = q_int(h, "SELECT count(*) FROM meal_logs");
    int64_t conflicts = q_int(h, "SELECT count(*) FROM conflicts");
    int64_t rejections = q_int(h, "SELECT count(*) FROM rejections");
    int64_t batches = q_int(h, "SELECT count(*) FROM batches");
    ASSERT_EQ(srv_meals, tab_meals);              /* nothing else on either side */
    ASSERT_EQ(srv_meals, (int64_t)(n_committed + maybe_present));
    ASSERT_EQ(conflicts, 0);
    ASSERT_EQ(rejections, 0);
    assert_batches(h, 1);
    sqlite3_close(h);

    /* The tablet holds exactly its projection of the server. */
    char err[256];
    uint8_t mine[32], want[32];
    (void)err;
    t = tablet_open(tab);
    int hrc = sync_content_hash(t, mine);
    sync_client_close(t);
    ASSERT_EQ(hrc, SYNC_OK);
    proj_hash(db, "hall", c.twp[c.hall_twp[0]], c.hall[0], want);
    ASSERT_MEM_EQ(mine, want, 32);

    srv_stop(&g_srv1);
    ASSERT_EQ(log_has_sanitizer_report(log), 0);
    ASSERT_EQ(log_has_sanitizer_report(g_srv1.log), 0);
    free(what);
    printf("tablet_kill: seed %llu, %d runs, %ld killed mid-run (%ld exec, %ld sync, %ld at "
           "0 ms; an exec takes %.1f ms, a sync %.1f ms), exec ok %ld / failed %ld, sync ok %ld / "
           "failed %ld, %ld uninterrupted syncs; ids: %ld committed, %ld maybe (%ld "
           "landed), %ld failed; %lld meals, %lld batches; %.1f s\n",
           (unsigned long long)g_seed, iter, killed, killed_exec, killed_sync, killed_delay0,
           te * 1e3, ts * 1e3, exec_ok, exec_fail, sync_ok, sync_fail, full_syncs,
           n_committed, n_maybe, maybe_present, n_failed, (long long)srv_meals,
           (long long)batches, mono_s() - t0);
    fflush(stdout);
    ids_free(&ids);
    rm_dir(dir);
}

/* ---- server_kill -------------------------------------------------------- */

/* Set while one of a tablet's requests is between sending and its reply
 * (the tablet's struct tab is the hooks' ctx).  The killer counts a kill
 * "during a request" if any tablet's flag is set. */
struct tab;
static struct tab *g_tabs;
static int         g_ntab;
static int any_in_request(void);

/* The killer: once armed with a pid and a delay, waits that long and
 * SIGKILLs the pid.  It never reaps: the main thread does (srv_kill), so the
 * pid cannot be reused under it. */
struct killer {
    pthread_t       th;
    int             running;
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    pid_t           pid;          /* > 0: armed */
    unsigned        delay_us;
    int             stop;
    int             fired;        /* the armed pid was killed, not yet reaped */
    long            kills, inflight;
};

static struct killer g_killer = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cv = PTHREAD_COND_INITIALIZER,
};

static void *killer_main(void *arg)
{
    struct killer *k = arg;
    pthread_mutex_lock(&k->mu);
    for (;;) {
        while (!k->stop && k->pid <= 0)
            pthread_cond_wait(&k->cv, &k->mu);
        if (k->stop)
            break;
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_nsec += (long)k->delay_us * 1000L;
        dl.tv_sec += dl.tv_nsec / 1000000000L;
        dl.tv_nsec %= 1000000000L;
        int rc = 0;
        while (!k->stop && k->pid > 0 && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&k->cv, &k->mu, &dl);
        if (k->stop)
            break;
        if (k->pid > 0) {
            int busy = any_in_request();
            kill(k->pid, SIGKILL);
            k->pid = 0;
            k->fired = 1;
            k->kills++;
            k->inflight += busy;
        }
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

static void killer_arm(struct killer *k, pid_t pid, unsigned delay_us)
{
    pthread_mutex_lock(&k->mu);
    k->pid = pid;
    k->delay_us = delay_us;
    k->fired = 0;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

/* 1 if the killer fired since it was armed (and is now disarmed). */
static int killer_fired(struct killer *k)
{
    pthread_mutex_lock(&k->mu);
    int f = k->fired;
    k->fired = 0;
    pthread_mutex_unlock(&k->mu);
    return f;
}

/* Stops the thread; 1 if it had killed the server without a reap since. */
static int killer_stop(struct killer *k)
{
    if (!k->running)
        return 0;
    pthread_mutex_lock(&k->mu);
    k->stop = 1;
    k->pid = 0;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->th, NULL);
    k->running = 0;
    int f = k->fired;
    k->fired = 0;
    return f;
}

/* Reaps a server the killer shot; it must have died of that SIGKILL, not
 * of something of its own before. */
static void reap_killed(struct srv_proc *p)
{
    int status = 0;
    ASSERT_EQ(waitpid(p->pid, &status, 0), p->pid);
    p->pid = 0;
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
        fprintf(stderr, "  the server ended with status 0x%x before it was killed\n", status);
    ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

struct tab {
    struct sync_client *c;
    int                 idx, hall;
    uint64_t            rng;
    atomic_int          in_request;
    struct idlist       ids;      /* committed locally, in order */
    size_t              acked;    /* ids[0..acked) were acknowledged by a push */
};

static int hook_before_send(void *ctx, const char *path)
{
    (void)path;
    atomic_store(&((struct tab *)ctx)->in_request, 1);
    return 0;
}

static int hook_after_reply(void *ctx, const char *path)
{
    (void)path;
    atomic_store(&((struct tab *)ctx)->in_request, 0);
    return 0;
}

static int any_in_request(void)
{
    for (int i = 0; i < g_ntab; i++)
        if (atomic_load(&g_tabs[i].in_request))
            return 1;
    return 0;
}

static int env_int(const char *name, int def)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : def;
}

/* The campaign's shared counters; workers write them under g_mu. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int      g_done;
static long            g_pushes, g_push_ok, g_pulls, g_pull_ok, g_other_err, g_exec_err, g_busy;
static const struct county *g_cty;

/* Like meal_sql, without ASSERTs (it runs on worker threads): n meal
 * INSERTs with fresh ids, the ids appended to out.  -1 if out of memory. */
static int meal_sql_mt(char *sql, size_t cap, int n, int hall, uint64_t *rs,
                       struct idlist *out)
{
    size_t len = 0;
    int twp = g_cty->hall_twp[hall];
    sql[0] = '\0';
    for (int k = 0; k < n; k++) {
        uint8_t id[16];
        char a[36], b[36], h[36];
        if (out->n == out->cap) {
            size_t c = out->cap ? 2 * out->cap : 256;
            void *p = realloc(out->id, c * sizeof *out->id);
            if (p == NULL)
                return -1;
            out->id = p;
            out->cap = c;
        }
        id_new(id);
        memcpy(out->id[out->n++], id, 16);
        len += (size_t)snprintf(sql + len, cap - len,
                                "INSERT INTO meal_logs (id, senior_id, hall_id, service_date, "
                                "meal_period, mode, served_at, price_paid_fen, subsidy_fen) VALUES "
                                "(%s, %s, %s, '" SERVICE_DATE "', 'lunch', 'dine_in', 1, 1000, 0);",
                                xid(id, a), xid(g_cty->senior[twp][rnd_below(rs, NSENIOR)], b),
                                xid(g_cty->hall[hall], h));
    }
    return 0;
}

struct worker {
    pthread_t th;
    int       first, step;        /* tablets first, first + step, ... */
};

/* One worker drives its tablets in turn: a few writes, then a push, a
 * pull or both.  No ASSERTs: it records, the main thread judges. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char sql[2048];
    while (!atomic_load(&g_done)) {
        for (int i = w->first; i < g_ntab && !atomic_load(&g_done); i += w->step) {
            struct tab *t = &g_tabs[i];
            int nw = (int)rnd_below(&t->rng, 3);
            for (int k = 0; k < nw; k++) {
                size_t before = t->ids.n;
                if (meal_sql_mt(sql, sizeof sql, 1 + (int)rnd_below(&t->rng, 2), t->hall,
                                &t->rng, &t->ids) != 0 || sync_exec(t->c, sql) != SYNC_OK) {
                    t->ids.n = before;               /* not committed */
                    pthread_mutex_lock(&g_mu);
                    if (g_exec_err++ < 5)
                        fprintf(stderr, "  tablet %d: exec: %s\n", i, sync_client_errmsg(t->c));
                    pthread_mutex_unlock(&g_mu);
                }
            }
            size_t upto = t->ids.n;
            unsigned r = rnd_below(&t->rng, 4);       /* push, push, run, pull */
            int rc, push = r < 3, pull = r >= 2;
            rc = r < 2 ? sync_push(t->c, NULL) : r == 2 ? sync_run(t->c, NULL)
                                                        : sync_pull(t->c, NULL);
            atomic_store(&t->in_request, 0);
            if (rc == SYNC_OK && push)
                t->acked = upto;
            pthread_mutex_lock(&g_mu);
            g_pushes += push;
            g_pulls += pull;
            if (rc == SYNC_OK) {
                g_push_ok += push;
                g_pull_ok += pull;
            } else if (rc == SYNC_EBUSY) {
                g_busy++;                            /* 503: the server is starting */
            } else if (rc != SYNC_ENET && g_other_err++ < 10) {
                /* A killed server cuts connections (SYNC_ENET); anything
                 * else is worth seeing, and must not stop the sync. */
                fprintf(stderr, "  tablet %d: %s: %s\n", i, sync_strerror(rc),
                        sync_client_errmsg(t->c));
            }
            pthread_mutex_unlock(&g_mu);
            if (rc == SYNC_ENET || rc == SYNC_EBUSY)
                sleep_us(5000 + rnd_below(&t->rng, 20000));   /* the server is down */
        }
    }
    return NULL;
}

static int64_t count_id(struct id_probe *p, const uint8_t id[16]) { return probe(p, id); }

/* Server kill campaign.  ES_KILL_TABLETS tablets (default 8) in the three
 * halls, driven by up to 8 threads, write meals and push and pull while
 * the killer SIGKILLs the server at random moments; the server is
 * restarted on the same port each time, and killed again 0 ..
 * ES_KILL_SPAN_MS later (default: twice a push, at least 100 ms).  It goes
 * on until ES_KILL_MIN kills (default 30) have landed during a request
 * and ES_KILL_OPS pushes and pulls (default 0) have completed. */
static void test_server_kill(void)
{
    char dir[128], db[192], name[32];
    struct county c;
    uint64_t rs = g_seed ^ 0x7365727665726b31ull;
    double t0 = mono_s();
    g_ntab = env_int("ES_KILL_TABLETS", 8);
    int min_kills = env_int("ES_KILL_MIN", 30);
    long min_ops = env_int("ES_KILL_OPS", 0);
    int kill_cap = 8 * min_kills + 400;
    int nthreads = g_ntab < 8 ? g_ntab : 8;
    ASSERT_GE(g_ntab, 1);
    g_tabs = calloc((size_t)g_ntab, sizeof *g_tabs);
    ASSERT_NOT_NULL(g_tabs);
    g_cty = &c;
    test_dir(dir, sizeof dir, "crash-server");
    snprintf(db, sizeof db, "%s/county.db", dir);
    fprintf(stderr, "server_kill: seed %llu, scratch %s\n", (unsigned long long)g_seed, dir);
    county_seed(db, &c);
    /* Every tablet comes from 127.0.0.1: the address limits are off. */
    srv_start_config(&g_srv2, dir, db, "{\"ip_rate_per_s\": 0, \"conns_per_ip\": 0}\n");

    for (int i = 0; i < g_ntab; i++) {
        struct tab *t = &g_tabs[i];
        snprintf(name, sizeof name, "tab%d", i);
        t->idx = i;
        t->hall = i % NHALL;          /* several tablets share each hall */
        t->rng = g_seed * 1000003u + (uint64_t)i;
        t->c = tablet_new(&g_srv2, name, "hall", c.hall[t->hall]);
        ASSERT_EQ(sync_run(t->c, NULL), SYNC_OK);
        struct sync_test_hooks hooks = { hook_before_send, hook_after_reply, NULL, t };
        sync_client_set_test_hooks(t->c, &hooks);
    }

    /* Calibrate: a write and a push per tablet, uninterrupted.  Kills come
     * 0..max(30 ms, twice the slowest) after each (re)start, so that a slow
     * build (ASan) still sees pushes complete between kills. */
    double push_s = 0;
    char sql[2048];
    for (int i = 0; i < g_ntab; i++) {
        double d = mono_s();
        ASSERT_EQ(meal_sql_mt(sql, sizeof sql, 1, g_tabs[i].hall, &rs, &g_tabs[i].ids), 0);
        ASSERT_EQ(sync_exec(g_tabs[i].c, sql), SYNC_OK);
        ASSERT_EQ(sync_push(g_tabs[i].c, NULL), SYNC_OK);
        d = mono_s() - d;
        if (d > push_s)
            push_s = d;
        g_tabs[i].acked = g_tabs[i].ids.n;
    }
    unsigned span = (unsigned)(push_s * 2e6);
    if (span < 100000)
        span = 100000;
    if (env_int("ES_KILL_SPAN_MS", 0) > 0)           /* longer lives: more work between kills */
        span = (unsigned)env_int("ES_KILL_SPAN_MS", 0) * 1000u;

    g_killer.stop = 0;
    g_killer.pid = 0;
    g_killer.fired = 0;
    g_killer.kills = g_killer.inflight = 0;
    ASSERT_EQ(pthread_create(&g_killer.th, NULL, killer_main, &g_killer), 0);
    g_killer.running = 1;
    killer_arm(&g_killer, g_srv2.pid, rnd_below(&rs, span + 1));

    struct worker *w = calloc((size_t)nthreads, sizeof *w);
    ASSERT_NOT_NULL(w);
    atomic_store(&g_done, 0);
    for (int k = 0; k < nthreads; k++) {
        w[k].first = k;
        w[k].step = nthreads;
        ASSERT_EQ(pthread_create(&w[k].th, NULL, worker_main, &w[k]), 0);
    }
    int restarts = 0;
    double down_s = 0;
    long kills = 0, inflight = 0, ops_ok = 0;
    for (;;) {
        pthread_mutex_lock(&g_killer.mu);
        kills = g_killer.kills;
        inflight = g_killer.inflight;
        pthread_mutex_unlock(&g_killer.mu);
        pthread_mutex_lock(&g_mu);
        ops_ok = g_push_ok + g_pull_ok;
        pthread_mutex_unlock(&g_mu);
        if ((inflight >= min_kills && ops_ok >= min_ops) || kills >= kill_cap)
            break;
        if (killer_fired(&g_killer)) {
            double d = mono_s();
            reap_killed(&g_srv2);
            srv_restart(&g_srv2);
            down_s += mono_s() - d;
            restarts++;
            killer_arm(&g_killer, g_srv2.pid, rnd_below(&rs, span + 1));
        } else {
            sleep_us(1000);
        }
    }
    atomic_store(&g_done, 1);
    for (int k = 0; k < nthreads; k++)
        pthread_join(w[k].th, NULL);
    free(w);
    if (killer_stop(&g_killer)) {
        reap_killed(&g_srv2);
        srv_restart(&g_srv2);
        restarts++;
    } else {
        int status = 0;
        if (waitpid(g_srv2.pid, &status, WNOHANG) == g_srv2.pid) {
            fprintf(stderr, "  the server died on its own (status 0x%x)\n", status);
            g_srv2.pid = 0;
            ASSERT(0);
        }
    }
    if (kills >= kill_cap)
        fprintf(stderr, "  only %ld of %ld kills landed during a request\n", inflight, kills);
    ASSERT_LT(kills, kill_cap);

    /* 1. Acknowledged writes survived every kill (checked before the final
     * sync pushes the rest). */
    struct id_probe ps;
    long n_acked = 0, n_written = 0, lost = 0;
    probe_open(&ps, db);
    for (int i = 0; i < g_ntab; i++) {
        n_written += (long)g_tabs[i].ids.n;
        for (size_t k = 0; k < g_tabs[i].acked; k++) {
            n_acked++;
            int64_t n = count_id(&ps, g_tabs[i].ids.id[k]);
            char hx[36];
            if (n != 1 && lost++ < 10)
                fprintf(stderr, "  acknowledged id %s (tablet %d, write %zu) on the server "
                        "%lld times\n", xid(g_tabs[i].ids.id[k], hx), i, k, (long long)n);
        }
    }
    probe_close(&ps);

    /* Sync everyone to completion, twice round so each tablet also has the
     * last writes of its hall's other tablets. */
    long final_fail = 0;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < g_ntab; i++) {
            int rc = SYNC_ERROR;
            for (int attempt = 0; attempt < 20 && rc != SYNC_OK; attempt++) {
                rc = sync_run(g_tabs[i].c, NULL);
                if (rc != SYNC_OK) {
                    fprintf(stderr, "  final sync of tablet %d: %s: %s\n", i, sync_strerror(rc),
                            sync_client_errmsg(g_tabs[i].c));
                    sleep_us(100000);
                }
            }
            final_fail += rc != SYNC_OK;
        }
    }

    /* 2. Every write exactly once: none missing, none applied twice. */
    probe_open(&ps, db);
    long missing = 0, twice = 0;
    for (int i = 0; i < g_ntab; i++) {
        for (size_t k = 0; k < g_tabs[i].ids.n; k++) {
            int64_t n = count_id(&ps, g_tabs[i].ids.id[k]);
            missing += n == 0;
            twice += n > 1;
        }
    }
    probe_close(&ps);

    /* 3. Converged: nothing pending, each tablet equals the server's
     * projection of its hall. */
    long diverged = 0, pending = 0;
    for (int i = 0; i < g_ntab; i++) {
        struct sync_status_info si;
        ASSERT_EQ(sync_status(g_tabs[i].c, &si), SYNC_OK);
        pending += si.pending + si.quarantined;
        uint8_t mine[32], want[32];
        ASSERT_EQ(sync_content_hash(g_tabs[i].c, mine), SYNC_OK);
        proj_hash(db, "hall", c.twp[c.hall_twp[g_tabs[i].hall]], c.hall[g_tabs[i].hall], want);
        if (memcmp(mine, want, 32) != 0) {
            diverged++;
            fprintf(stderr, "  tablet %d (hall %d) does not match the server's projection\n",
                    i, g_tabs[i].hall);
        }
    }

    /* 4. Integrity of every file; batches: 1..last for every device, each
     * change carried by exactly one batch. */
    srv_stop(&g_srv2);
    ASSERT_EQ(log_has_sanitizer_report(g_srv2.log), 0);
    long integrity_fail = 0;
    sqlite3 *h = db_open(db);
    integrity_fail += integrity_ok(h, "the server") == 0;
    int64_t meals = q_int(h, "SELECT count(*) FROM meal_logs");
    int64_t conflicts = q_int(h, "SELECT count(*) FROM conflicts");
    int64_t nbatches = q_int(h, "SELECT count(*) FROM batches");
    int64_t rejections = q_int(h, "SELECT count(*) FROM rejections");
    assert_batches(h, g_ntab);
    sqlite3_close(h);
    for (int i = 0; i < g_ntab; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/tab%d.db", dir, i);
        sync_client_close(g_tabs[i].c);
        g_tabs[i].c = NULL;
        h = db_open(path);
        integrity_fail += integrity_ok(h, path) == 0;
        sqlite3_close(h);
        ids_free(&g_tabs[i].ids);
    }

    printf("server_kill: seed %llu, %d tablets, %d threads; %ld kills (%ld during a request; "
           "a write and push take %.1f ms), %d restarts (%.1f s down); pushes %ld ok / %ld, "
           "pulls %ld ok / %ld, %ld busy (server starting), %ld other errors; ids: %ld written, %ld acknowledged; %lld "
           "batches, %lld rejections, %lld conflicts; acknowledged lost %ld, missing %ld, "
           "applied twice %ld, integrity_check failures %ld, tablets not converged %ld "
           "(%ld entries pending, %ld final syncs failed); %.1f s\n",
           (unsigned long long)g_seed, g_ntab, nthreads, kills, inflight, push_s * 1e3,
           restarts, down_s, g_push_ok, g_pushes, g_pull_ok, g_pulls, g_busy, g_other_err, n_written,
           n_acked, (long long)nbatches, (long long)rejections, (long long)conflicts, lost,
           missing, twice, integrity_fail, diverged, pending, final_fail, mono_s() - t0);
    fflush(stdout);
    ASSERT_EQ(lost, 0);
    ASSERT_EQ(missing, 0);
    ASSERT_EQ(twice, 0);
    ASSERT_EQ(integrity_fail, 0);
    ASSERT_EQ(diverged, 0);
    ASSERT_EQ(pending, 0);
    ASSERT_EQ(final_fail, 0);
    ASSERT_EQ(meals, n_written);
    ASSERT_EQ(conflicts, 0);
    ASSERT_EQ(g_exec_err, 0);
    ASSERT_EQ(g_other_err, 0);
    ASSERT_GE(inflight, min_kills);
    ASSERT_GE(g_push_ok + g_pull_ok, min_ops);
    free(g_tabs);
    g_tabs = NULL;
    g_ntab = 0;
    rm_dir(dir);
}

static const struct test_case tests[] = {
    TEST(test_tablet_kill),
    TEST(test_server_kill),
    { NULL, NULL }
};

int main(int argc, char **argv)
{
    (void)argc;
    find_build_dir(argv[0]);
    const char *s = getenv("ES_CRASH_SEED");
    g_seed = s && *s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    if (sodium_init() < 0) {
        fprintf(stderr, "test_crash: libsodium failed to initialise\n");
        return 1;
    }
    if (access(g_cli, X_OK) != 0) {
        fprintf(stderr, "test_crash: no CLI at %s (set ES_BUILD_DIR)\n", g_cli);
        return 1;
    }
    int rc = test_run_all("test_crash", tests);
    /* A failed test may have left its killer thread or a server running. */
    if (killer_stop(&g_killer) || g_srv2.pid > 0)
        srv_kill(&g_srv2);
    if (g_srv1.pid > 0)
        srv_kill(&g_srv1);
    return rc;
}
