/* test_keepalive.c - a tablet's kept-alive HTTP connection (transport.h).
 *
 * The tablets talk to a real server through a loopback TCP proxy in this
 * test that counts the connections it accepts and can break one exchange
 * on a connection already used: drop a new request without passing it on
 * (the server closing an idle connection just as a request arrives), or
 * cut a reply after k bytes (k = 0: the server got the request and the
 * connection ended before any byte of the reply).
 *
 *  - one_connection: with keep-alive, two syncs (push + pull each) use one
 *    TCP connection; by default one sync_run uses one and closes it.
 *  - server_restart: the server is restarted between two syncs; the second
 *    succeeds on a new connection.
 *  - idle_closed_by_server: header_timeout_ms 300; the server shuts the
 *    idle connection; the next sync succeeds on a new connection.
 *  - stale_retried_once: the kept connection ends before any reply byte,
 *    once before the server saw the request and once after it applied it:
 *    each push is sent once more on a fresh connection and succeeds; every
 *    meal is on the server once.
 *  - no_retry_after_partial_reply: a reply cut after 1..k bytes on a reused
 *    connection gives SYNC_ENET with no second attempt (no new connection);
 *    the next sync settles it; every meal once.
 *  - pages_fetched_ahead: a pull of many pages asks for the next page on a
 *    second connection while it applies the current one: two connections
 *    in all, every row once, the tablet equal to the server; a page fetched
 *    ahead whose reply is cut fails the sync after the pages before it,
 *    and the next sync pulls the rest.
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

#include "client.h"
#include "eldersync.h"
#include "ids.h"
#include "sqlite.h"
#include "support.h"
#include "test.h"
#include "transport.h"

/* ---- the proxy ---------------------------------------------------------- */

struct kproxy {
    int         lfd, port, upstream;
    pthread_t   th;
    atomic_int  stop, active;
    atomic_long conns;            /* connections accepted */
    atomic_int  drop_request;     /* 1: drop the next request on a used connection */
    atomic_long cut_reply;        /* >= 0: cut the next reply on a used connection
                                   * after that many bytes; -1: none */
};

struct relay_arg {
    struct kproxy *px;
    int            cfd;
};

/* Where the server -> client stream is: in the head of a reply, or in
 * its body (left bytes to go).  The server always sends a Content-Length. */
struct down {
    char      head[4096];
    size_t    nhead;
    int       in_body;
    long long left;
    long      pos;                /* bytes of this reply passed so far */
    long      cut;                /* -1: none, else cut at this many */
    int       started;            /* a byte of this reply has gone by */
};

/* Tracks one server byte; 1 when it ends a reply. */
static int down_byte(struct down *d, char ch)
{
    if (d->in_body)
        return --d->left == 0;
    if (d->nhead < sizeof d->head - 1)
        d->head[d->nhead++] = ch;
    d->head[d->nhead] = '\0';
    if (d->nhead < 4 || memcmp(d->head + d->nhead - 4, "\r\n\r\n", 4) != 0)
        return 0;
    d->in_body = 1;
    d->left = 0;
    for (const char *p = d->head; *p; p++)
        if (strncasecmp(p, "\r\nContent-Length:", 17) == 0)
            d->left = strtoll(p + 17, NULL, 10);
    return d->left == 0;
}

static void *relay_main(void *arg)
{
    struct relay_arg *ra = arg;
    struct kproxy *px = ra->px;
    int cfd = ra->cfd, ufd = loopback_connect(px->upstream);
    free(ra);
    long requests = 0;            /* requests begun on this connection */
    int  req_open = 0;            /* a request was sent, its reply not complete */
    struct down d;
    memset(&d, 0, sizeof d);
    d.cut = -1;
    while (ufd >= 0 && !atomic_load(&px->stop)) {
        struct pollfd pf[2] = { { cfd, POLLIN, 0 }, { ufd, POLLIN, 0 } };
        if (poll(pf, 2, 100) < 0)
            break;
        char buf[16384];
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = recv(cfd, buf, sizeof buf, 0);
            if (r <= 0)
                break;
            if (!req_open) {      /* a new request begins */
                req_open = 1;
                requests++;
                int one = 1;
                if (requests > 1 && atomic_compare_exchange_strong(&px->drop_request, &one, 0))
                    break;        /* dropped: both sides see the connection end */
            }
            if (send(ufd, buf, (size_t)r, MSG_NOSIGNAL) != r)
                break;
        }
        if (pf[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = recv(ufd, buf, sizeof buf, 0);
            if (r <= 0)
                break;
            size_t out = 0;
            int cut = 0;
            for (ssize_t i = 0; i < r && !cut; i++) {
                if (!d.started) {
                    d.started = 1;
                    long k = atomic_load(&px->cut_reply);
                    if (requests > 1 && k >= 0 &&
                        atomic_compare_exchange_strong(&px->cut_reply, &k, -1))
                        d.cut = k;
                }
                if (d.cut >= 0 && d.pos >= d.cut) {
                    cut = 1;
                    break;
                }
                out++;
                d.pos++;
                if (down_byte(&d, buf[i])) {          /* reply complete */
                    memset(&d, 0, sizeof d);
                    d.cut = -1;
                    req_open = 0;
                }
            }
            if (out > 0 && send(cfd, buf, out, MSG_NOSIGNAL) != (ssize_t)out)
                break;
            if (cut || (d.cut >= 0 && d.pos >= d.cut))
                break;
        }
    }
    shutdown(cfd, SHUT_RDWR);
    close(cfd);
    if (ufd >= 0) {
        shutdown(ufd, SHUT_RDWR);
        close(ufd);
    }
    atomic_fetch_sub(&px->active, 1);
    return NULL;
}

static void *proxy_main(void *arg)
{
    struct kproxy *px = arg;
    while (!atomic_load(&px->stop)) {
        struct pollfd pf = { px->lfd, POLLIN, 0 };
        if (poll(&pf, 1, 100) <= 0)
            continue;
        int cfd = accept(px->lfd, NULL, NULL);
        if (cfd < 0)
            continue;
        atomic_fetch_add(&px->conns, 1);
        struct relay_arg *ra = malloc(sizeof *ra);
        ASSERT_NOT_NULL(ra);
        ra->px = px;
        ra->cfd = cfd;
        pthread_t th;
        atomic_fetch_add(&px->active, 1);
        ASSERT_EQ(pthread_create(&th, NULL, relay_main, ra), 0);
        pthread_detach(th);
    }
    return NULL;
}

static void proxy_start(struct kproxy *px, int upstream)
{
    memset(px, 0, sizeof *px);
    px->upstream = upstream;
    atomic_store(&px->cut_reply, -1);
    px->lfd = loopback_listen(&px->port);
    ASSERT_EQ(pthread_create(&px->th, NULL, proxy_main, px), 0);
}

static void proxy_stop(struct kproxy *px)
{
    atomic_store(&px->stop, 1);
    pthread_join(px->th, NULL);
    while (atomic_load(&px->active) > 0) {      /* relays see stop within 100 ms */
        struct timespec ts = { 0, 10000000 };
        nanosleep(&ts, NULL);
    }
    close(px->lfd);
}

/* ---- fixture ------------------------------------------------------------ */

struct fix {
    char          dir[128], db[192], url[64];
    struct county cty;
    struct srv_proc srv;
    struct kproxy px;
    struct sync_client *c;
    uint8_t     (*ids)[16];
    size_t        nids;
};

/* A server (config json, or NULL), the proxy, and one hall tablet enrolled
 * through the proxy. */
static void fix_start(struct fix *f, const char *name, const char *json)
{
    char path[256], code[64], err[256];
    memset(f, 0, sizeof *f);
    test_dir(f->dir, sizeof f->dir, name);
    snprintf(f->db, sizeof f->db, "%s/county.db", f->dir);
    county_seed(f->db, &f->cty);
    if (json)
        srv_start_config(&f->srv, f->dir, f->db, json);
    else
        srv_start(&f->srv, f->dir, f->db);
    proxy_start(&f->px, f->srv.port);
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d", f->px.port);
    snprintf(path, sizeof path, "%s/hall0.db", f->dir);
    srv_code(&f->srv, "hall", f->cty.hall[0], code, sizeof code);
    ASSERT_EQ(sync_client_open(&f->c, path, err, sizeof err), SYNC_OK);
    ASSERT_EQ(sync_enroll(f->c, f->url, code, TEST_PIN), SYNC_OK);
    ASSERT_EQ(sync_run(f->c, NULL), SYNC_OK);
}

static void fix_stop(struct fix *f)
{
    sync_client_close(f->c);
    proxy_stop(&f->px);
    srv_stop(&f->srv);
    free(f->ids);
}

/* Records one meal on the tablet; its id is kept for check_once. */
static void meal(struct fix *f)
{
    char sql[512], a[36], b[36], x[36];
    uint8_t id[16];
    id_new(id);
    snprintf(sql, sizeof sql, "INSERT INTO meal_logs (id, senior_id, hall_id, service_date, "
             "meal_period, mode, served_at, price_paid_fen, subsidy_fen) VALUES (%s, %s, %s, "
             "'2026-11-30', 'lunch', 'dine_in', 1, 1000, 0)", xid(id, a),
             xid(f->cty.senior[f->cty.hall_twp[0]][f->nids % NSENIOR], b),
             xid(f->cty.hall[0], x));
    ASSERT_EQ(sync_exec(f->c, sql), SYNC_OK);
    f->ids = realloc(f->ids, (f->nids + 1) * sizeof *f->ids);
    ASSERT_NOT_NULL(f->ids);
    memcpy(f->ids[f->nids++], id, 16);
}

/* Every meal written is on the server exactly once, batches have no gaps,
 * and nothing waits on the tablet. */
static void check_once(struct fix *f)
{
    char sql[128], hex[36];
    for (size_t i = 0; i < f->nids; i++) {
        snprintf(sql, sizeof sql, "SELECT count(*) FROM meal_logs WHERE id = %s",
                 xid(f->ids[i], hex));
        ASSERT_EQ(server_count(f->db, sql), 1);
    }
    ASSERT_EQ(server_count(f->db, "SELECT count(*) FROM meal_logs"), (long)f->nids);
    ASSERT_EQ(server_count(f->db, "SELECT count(*) FROM devices d WHERE last_batch_seq != "
                                  "(SELECT count(*) FROM batches b WHERE b.device_id = d.id)"),
              0);
    struct sync_status_info si;
    ASSERT_EQ(sync_status(f->c, &si), SYNC_OK);
    ASSERT_EQ(si.pending, 0);
    ASSERT_EQ(si.unsent, 0);
}

/* ---- tests -------------------------------------------------------------- */

static void test_one_connection(void)
{
    struct fix f;
    fix_start(&f, "ka_one", NULL);

    /* Default: the push and the pull of one sync share a connection, which
     * is closed when sync_run returns. */
    long p0 = atomic_load(&f.px.conns), o0 = f.c->conn.opened, r0 = f.c->conn.reused;
    meal(&f);
    struct sync_stats st;
    ASSERT_EQ(sync_run(f.c, &st), SYNC_OK);
    ASSERT_EQ(st.batches, 1);
    ASSERT_EQ(atomic_load(&f.px.conns) - p0, 1);
    ASSERT_EQ(f.c->conn.opened - o0, 1);
    ASSERT_EQ(f.c->conn.reused - r0, 1);             /* the pull after the push */
    ASSERT_EQ(f.c->conn.fd, -1);
    meal(&f);
    ASSERT_EQ(sync_run(f.c, NULL), SYNC_OK);
    ASSERT_EQ(atomic_load(&f.px.conns) - p0, 2);

    /* Kept alive: two syncs (push and pull each), one TCP connection. */
    sync_client_set_keepalive(f.c, 2000);
    p0 = atomic_load(&f.px.conns);
    o0 = f.c->conn.opened;
    r0 = f.c->conn.reused;
    for (int k = 0; k < 2; k++) {
        meal(&f);
        ASSERT_EQ(sync_run(f.c, &st), SYNC_OK);
        ASSERT_EQ(st.batches, 1);
    }
    ASSERT_EQ(atomic_load(&f.px.conns) - p0, 1);     /* counted where it is accepted */
    ASSERT_EQ(f.c->conn.opened - o0, 1);
    ASSERT_EQ(f.c->conn.reused - r0, 3);
    ASSERT_EQ(f.c->conn.retried, 0);
    ASSERT(f.c->conn.fd >= 0);
    /* Turning it off closes it. */
    sync_client_set_keepalive(f.c, 0);
    ASSERT_EQ(f.c->conn.fd, -1);
    check_once(&f);
    printf("one_connection: 2 syncs on 1 kept connection (3 requests reused it); "
           "without keep-alive 1 connection per sync\n");
    fix_stop(&f);
}

static void test_server_restart(void)
{
    struct fix f;
    fix_start(&f, "ka_restart", NULL);
    sync_client_set_keepalive(f.c, 2000);
    meal(&f);
    ASSERT_EQ(sync_run(f.c, NULL), SYNC_OK);
    ASSERT(f.c->conn.fd >= 0);
    long o0 = f.c->conn.opened;
    srv_stop(&f.srv);
    srv_restart(&f.srv);
    meal(&f);
    int rc = sync_run(f.c, NULL);
    if (rc != SYNC_OK)
        fprintf(stderr, "  after restart: %s\n", sync_client_errmsg(f.c));
    ASSERT_EQ(rc, SYNC_OK);
    ASSERT_EQ(f.c->conn.opened - o0, 1);             /* the old one was not used */
    check_once(&f);
    printf("server_restart: the sync after a restart succeeded on a new connection "
           "(%ld retried)\n", f.c->conn.retried);
    fix_stop(&f);
}

static void test_idle_closed_by_server(void)
{
    struct fix f;
    fix_start(&f, "ka_idle", "{\"header_timeout_ms\": 300}");
    sync_client_set_keepalive(f.c, 2000);
    meal(&f);
    ASSERT_EQ(sync_run(f.c, NULL), SYNC_OK);
    ASSERT(f.c->conn.fd >= 0);
    /* Wait until the server's gate shuts the idle connection (the proxy
     * passes the close on): the socket reads end-of-file. */
    struct pollfd pf = { f.c->conn.fd, POLLIN, 0 };
    ASSERT_EQ(poll(&pf, 1, 30000), 1);
    long o0 = f.c->conn.opened;
    meal(&f);
    ASSERT_EQ(sync_run(f.c, NULL), SYNC_OK);
    ASSERT_EQ(f.c->conn.opened - o0, 1);
    check_once(&f);
    printf("idle_closed_by_server: the server shut the idle connection; the next sync "
           "succeeded on a new one\n");
    fix_stop(&f);
}

static void test_stale_retried_once(void)
{
    struct fix f;
    fix_start(&f, "ka_stale", NULL);
    sync_client_set_keepalive(f.c, 2000);
    meal(&f);
    ASSERT_EQ(sync_run(f.c, NULL), SYNC_OK);

    /* The connection ends as the next request arrives; the server never
     * sees it. */
    long p0 = atomic_load(&f.px.conns), t0 = f.c->conn.retried;
    meal(&f);
    atomic_store(&f.px.drop_request, 1);
    ASSERT_EQ(sync_run(f.c, NULL), SYNC_OK);
    ASSERT_EQ(atomic_load(&f.px.drop_request), 0);    /* it did happen */
    ASSERT_EQ(f.c->conn.retried - t0, 1);
    ASSERT_EQ(atomic_load(&f.px.conns) - p0, 1);
    check_once(&f);

    /* The server applies the push, and the connection ends before any
     * byte of its reply: resent on a new connection, acknowledged from the
     * stored ack, applied once. */
    p0 = atomic_load(&f.px.conns);
    t0 = f.c->conn.retried;
    long b0 = server_count(f.db, "SELECT count(*) FROM batches");
    meal(&f);
    meal(&f);
    atomic_store(&f.px.cut_reply, 0);
    ASSERT_EQ(sync_push(f.c, NULL), SYNC_OK);
    ASSERT_EQ(atomic_load(&f.px.cut_reply), -1);
    ASSERT_EQ(f.c->conn.retried - t0, 1);
    ASSERT_EQ(atomic_load(&f.px.conns) - p0, 1);
    ASSERT_EQ(server_count(f.db, "SELECT count(*) FROM batches") - b0, 1);
    ASSERT_EQ(sync_run(f.c, NULL), SYNC_OK);
    check_once(&f);
    printf("stale_retried_once: a request dropped and a reply lost before its first byte "
           "on the kept connection: each resent once on a new one, applied once\n");
    fix_stop(&f);
}

static void test_no_retry_after_partial_reply(void)
{
    struct fix f;
    fix_start(&f, "ka_partial", NULL);
    sync_client_set_keepalive(f.c, 2000);
    static const long cut_at[] = { 1, 7, 60, 150 };     /* status line, headers, body */
    for (size_t i = 0; i < sizeof cut_at / sizeof cut_at[0]; i++) {
        meal(&f);
        ASSERT_EQ(sync_run(f.c, NULL), SYNC_OK);        /* a used connection */
        ASSERT(f.c->conn.fd >= 0);
        for (int kind = 0; kind < 2; kind++) {
            long p0 = atomic_load(&f.px.conns), t0 = f.c->conn.retried;
            long b0 = server_count(f.db, "SELECT count(*) FROM batches");
            if (kind == 0)
                meal(&f);
            atomic_store(&f.px.cut_reply, cut_at[i]);
            int rc = kind == 0 ? sync_push(f.c, NULL) : sync_pull(f.c, NULL);
            ASSERT_EQ(atomic_load(&f.px.cut_reply), -1);  /* the cut happened */
            if (rc != SYNC_ENET)
                fprintf(stderr, "  %s cut at %ld: %s\n", kind ? "pull" : "push", cut_at[i],
                        sync_client_errmsg(f.c));
            ASSERT_EQ(rc, SYNC_ENET);
            ASSERT_EQ(f.c->conn.retried - t0, 0);         /* not sent again */
            ASSERT_EQ(atomic_load(&f.px.conns) - p0, 0);  /* no second connection */
            ASSERT_EQ(f.c->conn.fd, -1);                  /* and not reused */
            ASSERT_EQ(server_count(f.db, "SELECT count(*) FROM batches") - b0, kind == 0);
            ASSERT_EQ(sync_run(f.c, NULL), SYNC_OK);      /* settles it */
            check_once(&f);
        }
    }
    printf("no_retry_after_partial_reply: replies cut after 1..150 bytes on a kept connection: "
           "SYNC_ENET, no second attempt, settled by the next sync, each meal once\n");
    fix_stop(&f);
}

/* count meals of hall 0 written on the server, as another tablet's */
static void server_meals(struct fix *f, int count)
{
    char sql[1024], s[36], h[36];
    snprintf(sql, sizeof sql, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
             "WHERE i < %d) INSERT INTO meal_logs (id, senior_id, hall_id, service_date, "
             "meal_period, mode, served_at, price_paid_fen, subsidy_fen) SELECT uuid7(), %s, %s, "
             "'2026-11-30', 'lunch', 'dine_in', i, 1000, 0 FROM n", count,
             xid(f->cty.senior[f->cty.hall_twp[0]][0], s), xid(f->cty.hall[0], h));
    srv_exec(&f->srv, sql);
}

static void same_as_server(struct fix *f)
{
    uint8_t mine[32], want[32];
    ASSERT_EQ(sync_content_hash(f->c, mine), SYNC_OK);
    proj_hash(f->db, "hall", f->cty.twp[f->cty.hall_twp[0]], f->cty.hall[0], want);
    ASSERT_MEM_EQ(mine, want, 32);
}

static void test_pages_fetched_ahead(void)
{
    struct fix f;
    fix_start(&f, "ka_pages", "{\"pull_max_bytes\": 4096}");
    server_meals(&f, 400);
    long p0 = atomic_load(&f.px.conns), o0 = f.c->conn.opened, r0 = f.c->conn.reused;
    long q0 = f.c->conn2.opened, s0 = f.c->conn2.reused;
    struct sync_stats st;
    ASSERT_EQ(sync_run(f.c, &st), SYNC_OK);
    ASSERT_EQ(st.pulled, 400);
    ASSERT_EQ(atomic_load(&f.px.conns) - p0, 2);
    ASSERT_EQ(f.c->conn.opened - o0, 1);
    ASSERT_EQ(f.c->conn2.opened - q0, 1);
    long pages = 1 + (f.c->conn.reused - r0) + 1 + (f.c->conn2.reused - s0);
    ASSERT_GE(pages, 6);
    ASSERT_EQ(f.c->conn.fd, -1);
    ASSERT_EQ(f.c->conn2.fd, -1);
    same_as_server(&f);

    /* The third page is fetched ahead on the first connection, its second
     * request there: cut its reply. */
    server_meals(&f, 400);
    atomic_store(&f.px.cut_reply, 20);
    ASSERT_EQ(sync_run(f.c, &st), SYNC_ENET);
    ASSERT_EQ(atomic_load(&f.px.cut_reply), -1);     /* the cut happened */
    ASSERT(st.pulled > 0 && st.pulled < 400);        /* the pages before it stay */
    long first = st.pulled;
    ASSERT_EQ(f.c->conn2.fd, -1);
    ASSERT_EQ(sync_run(f.c, &st), SYNC_OK);
    ASSERT_EQ(first + st.pulled, 400);
    same_as_server(&f);
    ASSERT_EQ(server_count(f.db, "SELECT count(*) FROM meal_logs"), 800);
    printf("pages_fetched_ahead: 400 rows in %ld pages over 2 connections; a page fetched "
           "ahead and cut: %ld rows kept, the rest by the next sync\n", pages, first);
    fix_stop(&f);
}

int main(void)
{
    static const struct test_case tests[] = {
        TEST(test_one_connection),
        TEST(test_server_restart),
        TEST(test_idle_closed_by_server),
        TEST(test_stale_retried_once),
        TEST(test_no_retry_after_partial_reply),
        TEST(test_pages_fetched_ahead),
        { NULL, NULL }
    };
    return test_run_all("test_keepalive", tests);
}
