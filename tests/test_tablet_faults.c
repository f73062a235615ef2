/* test_tablet_faults.c - what the network and the clock do to a tablet.
 *
 *  - net_cut_every_phase: the tablet talks to the server through a
 *    loopback TCP proxy in this test that cuts the connection at a chosen
 *    point: as it connects, after k bytes of the request (in the request
 *    line, the headers, the body, one byte short of the end), once the
 *    whole request is through but before any reply byte (waiting), and
 *    after m bytes of the reply (status line, headers, body, one byte
 *    short).  Pushes and pulls are cut at every point.  Each cut sync
 *    fails as "network" and changes nothing it should not; the next clean
 *    sync settles it.  At the end every meal is on the server exactly
 *    once, batch sequences have no gaps, and the tablet equals the
 *    server's projection of its hall.
 *  - offline_days: the server is down while a tablet records
 *    ES_OFFLINE_WRITES meals (default 2,000; `make campaign`: 10,000) over
 *    "days", each its own
 *    local transaction, trying to sync now and then (server unreachable).
 *    The server comes back; one sync sends everything in chunks (batches
 *    of at most 500 entries), a hall mate pulls it in pages; nothing lost
 *    or doubled, both tablets converge.
 *  - clock_skew: caregivers whose clocks read 1970 and a year ahead edit
 *    the same seniors as a caregiver with a good clock, before and after
 *    seeing each other's edits.  An edit made after seeing another wins
 *    whatever the clocks say; of two concurrent edits the 1970 one loses;
 *    the year-ahead one wins but its stamp is clamped to the server's
 *    limit, so a later edit beats it; the server records each device's
 *    skew (devices.clock_skew_ms) and the clamps (devices.clamped_hlcs);
 *    everyone converges.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "eldersync.h"
#include "ids.h"
#include "sqlite.h"
#include "support.h"
#include "test.h"
#include "util.h"

/* ---- helpers ------------------------------------------------------------ */

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

struct ids {
    uint8_t (*id)[16];
    size_t  n, cap;
};

static void ids_add(struct ids *l, const uint8_t id[16])
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->id = realloc(l->id, l->cap * sizeof *l->id);
        ASSERT_NOT_NULL(l->id);
    }
    memcpy(l->id[l->n++], id, 16);
}

/* Records one meal at hall h on date; its id goes to l. */
static void meal(struct sync_client *c, const struct county *cty, int h, const char *date,
                 struct ids *l)
{
    char sql[512], a[36], b[36], x[36];
    uint8_t id[16];
    id_new(id);
    snprintf(sql, sizeof sql, "INSERT INTO meal_logs (id, senior_id, hall_id, service_date, "
             "meal_period, mode, served_at, price_paid_fen, subsidy_fen) VALUES (%s, %s, %s, "
             "'%s', 'lunch', 'dine_in', 1, 1000, 0)", xid(id, a),
             xid(cty->senior[cty->hall_twp[h]][l->n % NSENIOR], b), xid(cty->hall[h], x), date);
    int rc = sync_exec(c, sql);
    if (rc != SYNC_OK)
        fprintf(stderr, "  exec: %s\n", sync_client_errmsg(c));
    ASSERT_EQ(rc, SYNC_OK);
    ids_add(l, id);
}

/* Each id in l is on the server exactly once; batches 1..last per device;
 * meal rows on the server == want. */
static void check_exactly_once(const char *db, const struct ids *l, long want)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    long bad = 0;
    ASSERT_EQ(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(h, 10000);
    ASSERT_EQ(sqlite3_prepare_v2(h, "SELECT count(*) FROM meal_logs WHERE id = ?1", -1, &st,
                                 NULL), SQLITE_OK);
    for (size_t i = 0; i < l->n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_blob(st, 1, l->id[i], 16, SQLITE_STATIC);
        ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
        bad += sqlite3_column_int64(st, 0) != 1;
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    if (bad)
        fprintf(stderr, "  %ld of %zu meals not on the server exactly once\n", bad, l->n);
    ASSERT_EQ(bad, 0);
    ASSERT_EQ(server_count(db, "SELECT count(*) FROM meal_logs"), want);
    /* batch_seq 1..last, no gaps, no doubles */
    ASSERT_EQ(server_count(db, "SELECT count(*) FROM devices d WHERE last_batch_seq != "
                               "(SELECT count(*) FROM batches b WHERE b.device_id = d.id) OR "
                               "last_batch_seq != (SELECT coalesce(max(batch_seq), 0) FROM "
                               "batches b WHERE b.device_id = d.id)"), 0);
    ASSERT_EQ(server_count(db, "SELECT coalesce(sum(nchanges), 0) FROM batches"),
              server_count(db, "SELECT count(*) FROM meal_logs"));
}

static void check_converged(struct sync_client *c, const char *db, const struct county *cty,
                            int h)
{
    uint8_t mine[32], want[32];
    struct sync_status_info si;
    ASSERT_EQ(sync_status(c, &si), SYNC_OK);
    ASSERT_EQ(si.pending, 0);
    ASSERT_EQ(si.quarantined, 0);
    ASSERT_EQ(sync_content_hash(c, mine), SYNC_OK);
    proj_hash(db, "hall", cty->twp[cty->hall_twp[h]], cty->hall[h], want);
    ASSERT_MEM_EQ(mine, want, 32);
}

/* ---- the cutting proxy --------------------------------------------------- */

enum cut_dir { CUT_NONE, CUT_CONNECT, CUT_UP, CUT_DOWN };

struct proxy {
    int             lfd, port, upstream;
    pthread_t       th;
    atomic_int      stop;
    pthread_mutex_t mu;
    /* the next connection's cut; reset to CUT_NONE once used */
    enum cut_dir    dir;
    long            at;          /* bytes let through; < 0: that many short of the end */
    long            cuts, conns;
};

/* The total length of an HTTP message whose head is in buf[0..n), or -1
 * while the head is incomplete. */
static long message_len(const char *buf, size_t n)
{
    const char *end = NULL;
    for (size_t i = 0; i + 3 < n; i++)
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0) {
            end = buf + i + 4;
            break;
        }
    if (end == NULL)
        return -1;
    long cl = 0;
    for (const char *p = buf; p + 16 < end; p++)
        if (strncasecmp(p, "\r\nContent-Length:", 17) == 0) {
            cl = strtol(p + 17, NULL, 10);
            break;
        }
    return (long)(end - buf) + cl;
}

/* Relays one connection, cutting it as armed.  Byte offsets are counted
 * per direction; "-k" offsets are resolved once the message's head (with
 * its Content-Length) has gone by. */
static void relay(struct proxy *px, int cfd, enum cut_dir dir, long at)
{
    if (dir == CUT_CONNECT) {                  /* accepted, then gone */
        pthread_mutex_lock(&px->mu);
        px->cuts++;
        pthread_mutex_unlock(&px->mu);
        close(cfd);
        return;
    }
    int ufd = loopback_connect(px->upstream);
    if (ufd < 0) {
        close(cfd);
        return;
    }
    char head[2][8192];
    size_t headn[2] = { 0, 0 };
    long passed[2] = { 0, 0 }, limit[2] = { -1, -1 };
    int d_cut = dir == CUT_UP ? 0 : dir == CUT_DOWN ? 1 : -1;
    if (d_cut >= 0 && at >= 0)
        limit[d_cut] = at;
    int fds[2] = { cfd, ufd };                 /* 0: client -> server, 1: server -> client */
    for (;;) {
        if (d_cut >= 0 && limit[d_cut] >= 0 && passed[d_cut] >= limit[d_cut])
            break;                             /* the cut */
        struct pollfd pf[2] = { { cfd, POLLIN, 0 }, { ufd, POLLIN, 0 } };
        if (poll(pf, 2, 200) < 0)
            break;
        if (atomic_load(&px->stop))
            break;
        int eof = 0;
        for (int d = 0; d < 2; d++) {
            if (!(pf[d].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[4096];
            size_t want = sizeof buf;
            if (d == d_cut && limit[d] >= 0 && (size_t)(limit[d] - passed[d]) < want)
                want = (size_t)(limit[d] - passed[d]);
            ssize_t r = recv(fds[d], buf, want, 0);
            if (r <= 0) {
                eof = 1;
                break;
            }
            if (headn[d] < sizeof head[d]) {
                size_t k = (size_t)r < sizeof head[d] - headn[d] ? (size_t)r
                                                                   : sizeof head[d] - headn[d];
                memcpy(head[d] + headn[d], buf, k);
                headn[d] += k;
            }
            if (d == d_cut && at < 0 && limit[d] < 0) {
                long total = message_len(head[d], headn[d]);
                if (total >= 0)
                    limit[d] = total + at;     /* at < 0: short of the end */
            }
            /* Pass on only up to the limit (the message may have come in
             * one read before its length was known). */
            size_t out = (size_t)r;
            if (d == d_cut && limit[d] >= 0 && passed[d] + (long)out > limit[d])
                out = (size_t)(limit[d] > passed[d] ? limit[d] - passed[d] : 0);
            if (out > 0 && send(fds[1 - d], buf, out, MSG_NOSIGNAL) != (ssize_t)out) {
                eof = 1;
                break;
            }
            passed[d] += (long)out;
            if (d == d_cut && limit[d] >= 0 && passed[d] >= limit[d])
                break;
        }
        if (eof)
            break;
    }
    if (d_cut >= 0) {
        pthread_mutex_lock(&px->mu);
        px->cuts++;
        pthread_mutex_unlock(&px->mu);
    }
    /* The cut: both sides see the connection end. */
    shutdown(cfd, SHUT_RDWR);
    shutdown(ufd, SHUT_RDWR);
    close(cfd);
    close(ufd);
}

static void *proxy_main(void *arg)
{
    struct proxy *px = arg;
    while (!atomic_load(&px->stop)) {
        struct pollfd pf = { px->lfd, POLLIN, 0 };
        if (poll(&pf, 1, 100) <= 0)
            continue;
        int cfd = accept(px->lfd, NULL, NULL);
        if (cfd < 0)
            continue;
        pthread_mutex_lock(&px->mu);
        enum cut_dir dir = px->dir;
        long at = px->at;
        px->dir = CUT_NONE;
        px->conns++;
        pthread_mutex_unlock(&px->mu);
        relay(px, cfd, dir, at);
    }
    return NULL;
}

static void proxy_start(struct proxy *px, int upstream)
{
    memset(px, 0, sizeof *px);
    pthread_mutex_init(&px->mu, NULL);
    px->upstream = upstream;
    px->lfd = loopback_listen(&px->port);
    ASSERT_EQ(pthread_create(&px->th, NULL, proxy_main, px), 0);
}

static void proxy_stop(struct proxy *px)
{
    atomic_store(&px->stop, 1);
    pthread_join(px->th, NULL);
    close(px->lfd);
    pthread_mutex_destroy(&px->mu);
}

static void proxy_arm(struct proxy *px, enum cut_dir dir, long at)
{
    pthread_mutex_lock(&px->mu);
    px->dir = dir;
    px->at = at;
    pthread_mutex_unlock(&px->mu);
}

static long proxy_cuts(struct proxy *px)
{
    pthread_mutex_lock(&px->mu);
    long n = px->cuts;
    pthread_mutex_unlock(&px->mu);
    return n;
}

/* ---- net_cut_every_phase --------------------------------------------------- */

struct cut { enum cut_dir dir; long at; const char *phase; };

static const struct cut cuts[] = {
    { CUT_CONNECT, 0,    "connect" },
    { CUT_UP,      0,    "sending: nothing sent" },
    { CUT_UP,      5,    "sending: request line" },
    { CUT_UP,      60,   "sending: headers" },
    { CUT_UP,      200,  "sending: body" },
    { CUT_UP,      -1,   "sending: one byte short" },
    { CUT_DOWN,    0,    "waiting: request delivered, no reply" },
    { CUT_DOWN,    7,    "reading: status line" },
    { CUT_DOWN,    60,   "reading: headers" },
    { CUT_DOWN,    250,  "reading: body" },
    { CUT_DOWN,    -1,   "reading: one byte short" },
};
#define NCUTS (sizeof cuts / sizeof cuts[0])

static void test_net_cut_every_phase(void)
{
    char dir[128], db[192], path[256], code[64], err[256];
    struct county cty;
    struct srv_proc srv;
    struct proxy px;
    struct ids ids = {0};
    test_dir(dir, sizeof dir, "netcut");
    snprintf(db, sizeof db, "%s/county.db", dir);
    county_seed(db, &cty);
    srv_start(&srv, dir, db);
    proxy_start(&px, srv.port);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", px.port);

    /* Enrolled through the proxy: every later request goes through it. */
    snprintf(path, sizeof path, "%s/hall0.db", dir);
    srv_code(&srv, "hall", cty.hall[0], code, sizeof code);
    struct sync_client *c = NULL;
    ASSERT_EQ(sync_client_open(&c, path, err, sizeof err), SYNC_OK);
    ASSERT_EQ(sync_enroll(c, url, code, TEST_PIN), SYNC_OK);
    ASSERT_EQ(sync_run(c, NULL), SYNC_OK);
    /* A hall mate writes straight to the server, so pulls carry rows. */
    struct sync_client *mate = tablet_new(&srv, "mate", "hall", cty.hall[0]);
    ASSERT_EQ(sync_run(mate, NULL), SYNC_OK);

    long failed = 0, settled = 0;
    for (int kind = 0; kind < 2; kind++) {            /* 0: pushes, 1: pulls */
        for (size_t i = 0; i < NCUTS; i++) {
            for (int k = 0; k < 3; k++)
                meal(kind == 0 ? c : mate, &cty, 0, "2026-11-30", &ids);
            if (kind == 1)
                ASSERT_EQ(sync_run(mate, NULL), SYNC_OK);
            long before = proxy_cuts(&px);
            proxy_arm(&px, cuts[i].dir, cuts[i].at);
            int rc = kind == 0 ? sync_push(c, NULL) : sync_pull(c, NULL);
            ASSERT_EQ(proxy_cuts(&px), before + 1);   /* the cut did happen */
            if (rc != SYNC_ENET)
                fprintf(stderr, "  %s %s: %s (%s)\n", kind ? "pull" : "push", cuts[i].phase,
                        sync_strerror(rc), sync_client_errmsg(c));
            /* The SDK saw a network failure; never anything else. */
            ASSERT_EQ(rc, SYNC_ENET);
            failed++;
            /* The next clean sync settles it (a push the server applied but
             * whose reply was cut is acknowledged by the stored ack). */
            rc = sync_run(c, NULL);
            if (rc != SYNC_OK)
                fprintf(stderr, "  after %s %s: %s\n", kind ? "pull" : "push", cuts[i].phase,
                        sync_client_errmsg(c));
            ASSERT_EQ(rc, SYNC_OK);
            settled++;
            struct sync_status_info si;
            ASSERT_EQ(sync_status(c, &si), SYNC_OK);
            ASSERT_EQ(si.unsent, 0);
        }
    }
    ASSERT_EQ(sync_run(mate, NULL), SYNC_OK);
    ASSERT_EQ(sync_run(c, NULL), SYNC_OK);
    check_exactly_once(db, &ids, (long)ids.n);
    check_converged(c, db, &cty, 0);
    check_converged(mate, db, &cty, 0);
    ASSERT_EQ(server_count(db, "SELECT count(*) FROM conflicts"), 0);
    printf("net_cut: %zu cut points x push and pull: %ld syncs cut (all SYNC_ENET), %ld settled "
           "by the next sync; %zu meals, each on the server once; converged\n", NCUTS, failed,
           settled, ids.n);
    sync_client_close(c);
    sync_client_close(mate);
    proxy_stop(&px);
    srv_stop(&srv);
    free(ids.id);
}

/* ---- offline_days ----------------------------------------------------------- */

static atomic_long g_pull_requests;

static int count_pulls(void *ctx, const char *path)
{
    (void)ctx;
    if (strcmp(path, "/v1/pull") == 0)
        atomic_fetch_add(&g_pull_requests, 1);
    return 0;
}

static void test_offline_days(void)
{
    char dir[128], db[192];
    struct county cty;
    struct srv_proc srv;
    struct ids ids = {0};
    const char *e = getenv("ES_OFFLINE_WRITES");
    long nwrites = e && *e ? atol(e) : 2000;      /* make campaign: 10,000 */
    test_dir(dir, sizeof dir, "offline");
    snprintf(db, sizeof db, "%s/county.db", dir);
    county_seed(db, &cty);
    srv_start(&srv, dir, db);
    struct sync_client *c = tablet_new(&srv, "hall0", "hall", cty.hall[0]);
    struct sync_client *mate = tablet_new(&srv, "mate", "hall", cty.hall[0]);
    ASSERT_EQ(sync_run(c, NULL), SYNC_OK);
    ASSERT_EQ(sync_run(mate, NULL), SYNC_OK);

    /* The server goes away for "days". */
    srv_stop(&srv);
    long tries = 0;
    for (long i = 0; i < nwrites; i++) {
        char date[40];
        snprintf(date, sizeof date, "2026-11-%02ld", 1 + (i * 28) / nwrites);   /* 28 days */
        meal(c, &cty, 0, date, &ids);
        if (i % 1000 == 999) {                        /* the tablet tries, and fails */
            ASSERT_EQ(sync_run(c, NULL), SYNC_ENET);
            tries++;
        }
    }
    struct sync_status_info si;
    ASSERT_EQ(sync_status(c, &si), SYNC_OK);
    ASSERT_EQ(si.pending, nwrites);

    srv_restart(&srv);
    struct sync_stats st;
    int rc = sync_run(c, &st);
    if (rc != SYNC_OK)
        fprintf(stderr, "  sync after the outage: %s\n", sync_client_errmsg(c));
    ASSERT_EQ(rc, SYNC_OK);
    ASSERT_EQ(st.pushed, nwrites);
    ASSERT_GE(st.batches, (nwrites + 499) / 500);      /* chunks of at most 500 entries */
    ASSERT_EQ(sync_status(c, &si), SYNC_OK);
    ASSERT_EQ(si.pending, 0);
    /* The hall mate pulls it all, in pages. */
    struct sync_test_hooks h = { count_pulls, NULL, NULL, NULL };
    sync_client_set_test_hooks(mate, &h);
    struct sync_stats ms;
    ASSERT_EQ(sync_run(mate, &ms), SYNC_OK);
    ASSERT_GE(ms.pulled, nwrites);
    long pages = atomic_load(&g_pull_requests);
    if (nwrites >= 5000)
        ASSERT_GE(pages, 2);
    ASSERT_EQ(sync_run(c, NULL), SYNC_OK);
    check_exactly_once(db, &ids, nwrites);
    check_converged(c, db, &cty, 0);
    check_converged(mate, db, &cty, 0);
    printf("offline: %ld meals over 28 days with the server down (%ld failed sync attempts); "
           "one sync pushed them in %ld batches (%lld bytes up); the hall mate pulled %ld rows "
           "in %ld pages; each meal on the server once; both converged\n", nwrites, tries,
           st.batches, (long long)st.bytes_up, ms.pulled, pages);
    sync_client_close(c);
    sync_client_close(mate);
    srv_stop(&srv);
    free(ids.id);
}

/* ---- clock_skew ----------------------------------------------------------------- */

struct clock { int64_t skew_ms; };

static int64_t skewed_clock(void *ctx)
{
    const struct clock *k = ctx;
    return now_ms() + k->skew_ms;
}

static void set_field(struct sync_client *c, const uint8_t senior[16], const char *col,
                      const char *val)
{
    char sql[256], x[36];
    snprintf(sql, sizeof sql, "UPDATE seniors SET %s = '%s' WHERE id = %s", col, val,
             xid(senior, x));
    int rc = sync_exec(c, sql);
    if (rc != SYNC_OK)
        fprintf(stderr, "  exec: %s\n", sync_client_errmsg(c));
    ASSERT_EQ(rc, SYNC_OK);
}

static int grab(void *ctx, int ncol, const char *const *vals, const char *const *names)
{
    (void)names;
    snprintf(ctx, 64, "%s", ncol > 0 && vals[0] ? vals[0] : "(null)");
    return 0;
}

static void get_field(struct sync_client *c, const uint8_t senior[16], const char *col,
                      char out[64])
{
    char sql[256], x[36];
    snprintf(sql, sizeof sql, "SELECT %s FROM seniors WHERE id = %s", col, xid(senior, x));
    out[0] = '\0';
    ASSERT_EQ(sync_query(c, sql, grab, out), SYNC_OK);
}

static long device_num(const char *db, struct sync_client *c, const char *col)
{
    struct sync_status_info si;
    char sql[160];
    ASSERT_EQ(sync_status(c, &si), SYNC_OK);
    snprintf(sql, sizeof sql, "SELECT %s FROM devices WHERE hex(id) = upper('%s')", col,
             si.device_id);
    return server_count(db, sql);
}

static void sync_ok(struct sync_client *c)
{
    int rc = sync_run(c, NULL);
    if (rc != SYNC_OK)
        fprintf(stderr, "  sync: %s\n", sync_client_errmsg(c));
    ASSERT_EQ(rc, SYNC_OK);
}

static void test_clock_skew(void)
{
    char dir[128], db[192], v[64];
    struct county cty;
    struct srv_proc srv;
    static struct clock k_old, k_good, k_ahead;
    test_dir(dir, sizeof dir, "skew");
    snprintf(db, sizeof db, "%s/county.db", dir);
    county_seed(db, &cty);
    srv_start(&srv, dir, db);
    k_old.skew_ms = -now_ms() + 86400000;             /* 2 January 1970 */
    k_good.skew_ms = 0;
    k_ahead.skew_ms = 365LL * 86400000;               /* a year ahead */
    struct sync_client *old = tablet_new(&srv, "old", "caregiver", cty.twp[0]);
    struct sync_client *good = tablet_new(&srv, "good", "caregiver", cty.twp[0]);
    struct sync_client *ahead = tablet_new(&srv, "ahead", "caregiver", cty.twp[0]);
    struct sync_test_hooks h_old = { NULL, NULL, skewed_clock, &k_old };
    struct sync_test_hooks h_good = { NULL, NULL, skewed_clock, &k_good };
    struct sync_test_hooks h_ahead = { NULL, NULL, skewed_clock, &k_ahead };
    sync_client_set_test_hooks(old, &h_old);
    sync_client_set_test_hooks(good, &h_good);
    sync_client_set_test_hooks(ahead, &h_ahead);
    sync_ok(old);
    sync_ok(good);
    sync_ok(ahead);
    const uint8_t *s1 = cty.senior[0][1], *s2 = cty.senior[0][2], *s3 = cty.senior[0][3];

    /* 1. Seen, then edited: good edits, old pulls it and edits after.  The
     * 1970 clock does not matter: old's stamp is above what it has seen. */
    set_field(good, s1, "phone", "good-1");
    sync_ok(good);
    sync_ok(old);
    get_field(old, s1, "phone", v);
    ASSERT_STR_EQ(v, "good-1");
    set_field(old, s1, "phone", "old-after");
    sync_ok(old);
    sync_ok(good);
    get_field(good, s1, "phone", v);
    ASSERT_STR_EQ(v, "old-after");

    /* 2. Concurrent: old (1970) and good edit the same column unseen; the
     * good clock's edit, made later, wins; the 1970 value is kept as the
     * conflict's loser. */
    long conflicts0 = server_count(db, "SELECT count(*) FROM conflicts");
    set_field(old, s2, "address", "old-concurrent");
    sleep_ms(5);
    set_field(good, s2, "address", "good-concurrent");
    sync_ok(old);
    sync_ok(good);
    sync_ok(old);
    get_field(old, s2, "address", v);
    ASSERT_STR_EQ(v, "good-concurrent");
    get_field(good, s2, "address", v);
    ASSERT_STR_EQ(v, "good-concurrent");
    ASSERT_EQ(server_count(db, "SELECT count(*) FROM conflicts"), conflicts0 + 1);
    conflict_value(db, s2, "lww", "loser", "address", v, sizeof v);
    ASSERT_STR_EQ(v, "old-concurrent");

    /* 3. A year ahead: ahead's concurrent edit wins over good's, but the
     * server clamps its stamp to max_clock_ahead_ms (5 min) past its own
     * clock and counts it. */
    set_field(good, s3, "address", "good-first");
    set_field(ahead, s3, "address", "ahead-concurrent");
    sync_ok(good);
    sync_ok(ahead);
    sync_ok(good);
    get_field(good, s3, "address", v);
    ASSERT_STR_EQ(v, "ahead-concurrent");
    ASSERT_GE(device_num(db, ahead, "clamped_hlcs"), 1);
    ASSERT_EQ(device_num(db, good, "clamped_hlcs"), 0);
    ASSERT_EQ(device_num(db, old, "clamped_hlcs"), 0);
    char sql[200], x[36];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM seniors WHERE id = %s AND (hlc >> 16) <= "
             "%lld", xid(s3, x), (long long)(now_ms() + 5 * 60 * 1000 + 60000));
    ASSERT_EQ(server_count(db, sql), 1);              /* not a year ahead on the server */
    /* ... so good, having seen it, overrides it at once (no waiting a year). */
    set_field(good, s3, "address", "good-after");
    sync_ok(good);
    sync_ok(ahead);
    get_field(ahead, s3, "address", v);
    ASSERT_STR_EQ(v, "good-after");

    /* The server recorded each device's skew (last push). */
    long sk_old = device_num(db, old, "clock_skew_ms / 1000");
    long sk_good = device_num(db, good, "clock_skew_ms / 1000");
    long sk_ahead = device_num(db, ahead, "clock_skew_ms / 1000");
    ASSERT_LT(sk_old, -(long)(now_ms() / 1000) + 86400 + 600);
    ASSERT_GT(sk_old, -(long)(now_ms() / 1000) + 86400 - 600);
    ASSERT_LT(sk_good < 0 ? -sk_good : sk_good, 600);
    ASSERT_GT(sk_ahead, 365L * 86400 - 600);
    ASSERT_LT(sk_ahead, 365L * 86400 + 600);

    /* Everyone converges. */
    sync_ok(old);
    sync_ok(good);
    sync_ok(ahead);
    uint8_t want[32], got[32];
    proj_hash(db, "caregiver", cty.twp[0], NULL, want);
    struct sync_client *all[3] = { old, good, ahead };
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(sync_content_hash(all[i], got), SYNC_OK);
        ASSERT_MEM_EQ(got, want, 32);
    }
    printf("clock_skew: skew recorded %+ld s (1970), %+ld s (good), %+ld s (a year ahead); "
           "clamped stamps: %ld; seen-then-edited won, concurrent 1970 edit lost (kept as "
           "conflict), year-ahead edit won but clamped, later edit beat it; converged\n",
           sk_old, sk_good, sk_ahead, device_num(db, ahead, "clamped_hlcs"));
    for (int i = 0; i < 3; i++)
        sync_client_close(all[i]);
    srv_stop(&srv);
}

int main(void)
{
    static const struct test_case tests[] = {
        TEST(test_net_cut_every_phase),
        TEST(test_offline_days),
        TEST(test_clock_skew),
        { NULL, NULL }
    };
    if (sodium_init() < 0)
        return 1;
    return test_run_all("test_tablet_faults", tests);
}
