/* http.c - the sync server's HTTP face: routes, limits, error replies.
 *
 * Handlers are thin: read a bounded body, call auth/push/pull, reply.  No
 * document root is configured, so CivetWeb serves no files and never runs
 * its directory code.  Bodies are capped from Content-Length before a byte
 * is read; requests with both Transfer-Encoding and Content-Length, or
 * without a length, are refused.
 *
 * Hardening (docs/PROTOCOL.md, "HTTP hardening"):
 *  - every request takes a token from its client address's bucket before
 *    anything else (begin_request); push and pull also take one from the
 *    device's bucket once the envelope header names it, before any crypto
 *    or SQL.  An empty bucket answers 429 with Retry-After.
 *  - the body must arrive within request_timeout_ms, or 408.  CivetWeb
 *    1.15 times each mg_read() on its own and restarts the wait on every
 *    byte, so a client that trickles its body could hold a worker for as
 *    long as it likes; a watchdog thread enforces the overall deadline by
 *    shutting down the read side of the socket, which wakes the worker.
 *  - slow clients (slowloris): CivetWeb gives each connection a worker
 *    thread from the moment it is accepted, and hands the application
 *    nothing before the headers are in (its init_connection callback gets
 *    neither the socket nor the address).  So the same watchdog thread
 *    looks at the server's sockets every GATE_TICK_MS: a connection that is
 *    not inside a request (no headers yet, or idle between requests) is
 *    shut once it has waited header_timeout_ms, and beyond conns_per_ip
 *    such connections from one address the newest are shut at once.  One
 *    address can then hold at most conns_per_ip workers doing nothing.
 *
 * No globals: the limiters and the watchdog live in a struct http_state,
 * the CivetWeb user data, made by http_start() and freed by http_stop().
 */
#include "http.h"

#include <sodium.h>
#include <dirent.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <civetweb.h>
#include <cjson/cJSON.h>

#include "auth.h"
#include "dash.h"
#include "eldersync.h"
#include "envelope.h"
#include "log.h"
#include "pull.h"
#include "push.h"
#include "ratelimit.h"
#include "schema.h"
#include "util.h"

/* Refusals of the HTTP layer alone, with no SYNC_* code (eldersync.h is
 * the SDK's): mapped by the one status table below. */
enum {
    HTTP_RATE_LIMITED = -1001,   /* 429 */
    HTTP_TIMEOUT      = -1002    /* 408 */
};

int http_status_for(int s)
{
    switch (s) {
    case SYNC_OK:         return 200;
    case SYNC_EPROTO:     return 400;
    case SYNC_EINVAL:     return 400;
    case SYNC_ECRYPTO:    return 401;
    case SYNC_EAUTH:      return 401;
    case SYNC_EFORBIDDEN: return 403;
    case SYNC_ENOTFOUND:  return 404;
    case SYNC_ECONFLICT:  return 409;
    case SYNC_ETOOBIG:    return 413;
    case SYNC_ESCHEMA:    return 422;
    case SYNC_EBUSY:      return 503;
    case HTTP_TIMEOUT:    return 408;          /* http.c's own codes */
    case HTTP_RATE_LIMITED: return 429;
    default:              return 500;
    }
}

/* ---- body deadlines ------------------------------------------------------ */

/* One armed deadline per worker that is reading a body. */
struct watch {
    int     fd;                  /* the connection's socket; -1: slot free */
    int     fired;               /* its read side was shut down */
    int64_t deadline;            /* CLOCK_MONOTONIC, ms */
};

struct watchdog {
    pthread_mutex_t lock;
    pthread_cond_t  wake;        /* on CLOCK_MONOTONIC */
    pthread_t       thread;
    int             running, stop;
    int             nslots;      /* num_threads: one per worker */
    struct watch   *slots;
    int             warned;      /* "socket not found" logged once */
    int             kicked;      /* a worker took a new connection: scan soon */
};

/* ---- the gate: idle and header-less connections ------------------------ */

#define GATE_TICK_MS 100         /* scans at least this often */
#define GATE_KICK_MS 10          /* and, while connections arrive, this often */

/* What the gate knows of one socket, indexed by descriptor.  A record is
 * tied to its peer (address and port), so a reused descriptor starts a new
 * one. */
struct sockrec {
    uint8_t  ip[16];               /* ip_key() of the peer */
    uint8_t  iplen;
    uint16_t port;                 /* peer port */
    uint8_t  known, busy, shut;    /* busy: between begin_ and end_request */
    int64_t  since;                /* first seen, or its last request ended */
    unsigned seen;                 /* scan generation */
};

struct gate {
    pthread_mutex_t lock;
    struct sockrec *rec;
    int             nrec;
    unsigned        gen;
    int             port;          /* the listening port */
    int             cap;           /* conns_per_ip; 0: no cap */
    int             header_ms;
    long            expired, refused;
};

struct http_state {
    struct server   *srv;
    struct ratelimit dev, ip;
    struct watchdog  wd;
    struct gate      gate;
    atomic_int       ready;       /* every handler is registered */
    struct dash     *dash;       /* the supervisors' dashboard (dash.h) */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void gate_scan(struct gate *g);

static void *watchdog_main(void *arg)
{
    struct watchdog *wd = arg;
    struct http_state *st = (struct http_state *)((char *)wd - offsetof(struct http_state, wd));
    int64_t last_scan = 0;
    pthread_mutex_lock(&wd->lock);
    while (!wd->stop) {
        int64_t now = mono_ms();
        if (now >= last_scan + GATE_TICK_MS || (wd->kicked && now >= last_scan + GATE_KICK_MS)) {
            wd->kicked = 0;
            pthread_mutex_unlock(&wd->lock);        /* the scan takes its own lock */
            gate_scan(&st->gate);
            pthread_mutex_lock(&wd->lock);
            last_scan = now;
            now = mono_ms();
        }
        int64_t next = last_scan + (wd->kicked ? GATE_KICK_MS : GATE_TICK_MS);
        for (int i = 0; i < wd->nslots; i++) {
            struct watch *w = &wd->slots[i];
            if (w->fd < 0 || w->fired)
                continue;
            if (w->deadline <= now) {
                /* The worker's poll() wakes and reads end-of-file; the
                 * socket stays open for the 408.  Safe: the slot is
                 * disarmed (under this lock) before the handler returns,
                 * and CivetWeb closes the socket only after that. */
                shutdown(w->fd, SHUT_RD);
                w->fired = 1;
            } else if (w->deadline < next) {
                next = w->deadline;
            }
        }
        if (next == INT64_MAX) {
            pthread_cond_wait(&wd->wake, &wd->lock);
        } else {
            struct timespec ts = { (time_t)(next / 1000), (long)(next % 1000) * 1000000L };
            pthread_cond_timedwait(&wd->wake, &wd->lock, &ts);
        }
    }
    pthread_mutex_unlock(&wd->lock);
    return NULL;
}

static int watchdog_start(struct watchdog *wd, int nslots)
{
    pthread_condattr_t ca;
    memset(wd, 0, sizeof *wd);
    wd->slots = es_malloc((size_t)nslots * sizeof *wd->slots);
    if (wd->slots == NULL)
        return -1;
    wd->nslots = nslots;
    for (int i = 0; i < nslots; i++)
        wd->slots[i].fd = -1;
    pthread_mutex_init(&wd->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wd->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&wd->thread, NULL, watchdog_main, wd) != 0)
        return -1;
    wd->running = 1;
    return 0;
}

/* After mg_stop(): no worker is left to hold a slot. */
static void watchdog_stop(struct watchdog *wd)
{
    if (wd->running) {
        pthread_mutex_lock(&wd->lock);
        wd->stop = 1;
        pthread_cond_signal(&wd->wake);
        pthread_mutex_unlock(&wd->lock);
        pthread_join(wd->thread, NULL);
        wd->running = 0;
    }
    if (wd->slots) {
        pthread_cond_destroy(&wd->wake);
        pthread_mutex_destroy(&wd->lock);
    }
    es_free(wd->slots);
    wd->slots = NULL;
}

/* Returns the slot, or -1 (no deadline beyond CivetWeb's own timeouts). */
static int watchdog_arm(struct watchdog *wd, int fd, int64_t deadline)
{
    int slot = -1;
    if (fd < 0 || !wd->running)
        return -1;
    pthread_mutex_lock(&wd->lock);
    for (int i = 0; i < wd->nslots && slot < 0; i++) {
        if (wd->slots[i].fd < 0) {
            wd->slots[i].fd = fd;
            wd->slots[i].fired = 0;
            wd->slots[i].deadline = deadline;
            slot = i;
        }
    }
    pthread_cond_signal(&wd->wake);
    pthread_mutex_unlock(&wd->lock);
    return slot;
}

/* Frees the slot; returns whether its deadline fired. */
static int watchdog_disarm(struct watchdog *wd, int slot)
{
    if (slot < 0)
        return 0;
    pthread_mutex_lock(&wd->lock);
    int fired = wd->slots[slot].fired;
    wd->slots[slot].fd = -1;
    pthread_mutex_unlock(&wd->lock);
    return fired;
}

static int sockaddr_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return -1;
}

/* Whether ss is the address a (16 bytes, IPv4 as ::ffff:a.b.c.d). */
static int sockaddr_is(const struct sockaddr_storage *ss, const struct in6_addr *a)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        return IN6_IS_ADDR_V4MAPPED(a) && memcmp(&a->s6_addr[12], &s4->sin_addr, 4) == 0;
    }
    if (ss->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr, a, sizeof *a) == 0;
    return 0;
}

/* A client address as 16 bytes (IPv4 mapped into IPv6).  -1 if unparsable. */
static int parse_addr(const char *s, struct in6_addr *a)
{
    struct in_addr a4;
    if (inet_pton(AF_INET, s, &a4) == 1) {
        memset(a, 0, sizeof *a);
        a->s6_addr[10] = a->s6_addr[11] = 0xff;
        memcpy(&a->s6_addr[12], &a4, 4);
        return 0;
    }
    return inet_pton(AF_INET6, s, a) == 1 ? 0 : -1;
}

/* CivetWeb 1.15 does not hand out a connection's socket, so it is found by
 * its addresses: the one socket whose peer is the client's address and
 * port and whose local port is the server's.  Only the descriptors that
 * are open are tried (/proc/self/fd), so the cost follows the number of
 * connections, not the descriptor limit.  -1 if there is none. */
static int conn_fd(struct watchdog *wd, const struct mg_request_info *ri)
{
    struct in6_addr peer;
    DIR *d = parse_addr(ri->remote_addr, &peer) == 0 ? opendir("/proc/self/fd") : NULL;
    struct dirent *e;
    int found = -1;
    while (d && found < 0 && (e = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end != '\0' || end == e->d_name || fd < 0 || fd > INT32_MAX)
            continue;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getpeername((int)fd, (struct sockaddr *)&ss, &sl) != 0 ||
            sockaddr_port(&ss) != ri->remote_port || !sockaddr_is(&ss, &peer))
            continue;
        sl = sizeof ss;
        if (getsockname((int)fd, (struct sockaddr *)&ss, &sl) == 0 &&
            sockaddr_port(&ss) == ri->server_port)
            found = (int)fd;
    }
    if (d)
        closedir(d);
    if (found >= 0)
        return found;
    pthread_mutex_lock(&wd->lock);
    if (!wd->warned)
        log_warn("cannot find the socket of a connection: body reads are timed by "
                 "CivetWeb only");
    wd->warned = 1;
    pthread_mutex_unlock(&wd->lock);
    return -1;
}

void http_reply(struct mg_connection *conn, int status, const char *type,
                const void *body, size_t len, const char *extra)
{
    /* A refusal sent before the body was read must end the connection,
     * or CivetWeb would wait for (or drain) the unread body. */
    if (extra && strstr(extra, "Connection: close"))
        mg_disable_connection_keep_alive(conn);
    mg_printf(conn, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
              "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%s\r\n",
              status, mg_get_response_code_text(conn, status), type, len, extra ? extra : "");
    if (len)
        mg_write(conn, body, len);
}

static int send_outcome(struct mg_connection *conn, const struct outcome *o, const char *extra)
{
    int status = http_status_for(o->status);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", o->error[0] ? o->error : "error");
    cJSON_AddStringToObject(j, "detail", o->detail);
    if (o->entry >= 0)
        cJSON_AddNumberToObject(j, "entry", (double)o->entry);
    if (o->expected_seq >= 0)
        cJSON_AddNumberToObject(j, "expected_seq", (double)o->expected_seq);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    http_reply(conn, status, "application/json", s ? s : "{}", s ? strlen(s) : 2, extra);
    cJSON_free(s);
    return status;
}

static int fail(struct mg_connection *conn, int status, const char *error, const char *detail,
                const char *extra)
{
    struct outcome o;
    outcome_init(&o);
    outcome_set(&o, status, error, "%s", detail);
    return send_outcome(conn, &o, extra);
}

int http_error(struct mg_connection *conn, int status, const char *error, const char *detail,
               const char *extra)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", error);
    cJSON_AddStringToObject(j, "detail", detail);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    http_reply(conn, status, "application/json", s ? s : "{}", s ? strlen(s) : 2, extra);
    cJSON_free(s);
    return status;
}

/* ---- rate limits --------------------------------------------------------- */

/* 429 rate_limited; Retry-After in whole seconds, at least 1. */
static int refuse_limited(struct mg_connection *conn, const char *whose, double retry_s,
                          int closing)
{
    char extra[64], detail[128];
    long secs = (long)retry_s;
    if ((double)secs < retry_s)
        secs++;
    if (secs < 1)
        secs = 1;
    snprintf(extra, sizeof extra, "Retry-After: %ld\r\n%s", secs,
             closing ? "Connection: close\r\n" : "");
    snprintf(detail, sizeof detail, "too many requests from this %s; retry in %ld s", whose,
             secs);
    return fail(conn, HTTP_RATE_LIMITED, "rate_limited", detail, extra);
}

/* The client address as a bucket key: an IPv4 address, or an IPv6 /64
 * (one subscriber's block). */
static size_t ip_key(const char *addr, uint8_t key[16])
{
    struct in6_addr a;
    if (parse_addr(addr, &a) != 0) {
        size_t n = strnlen(addr, 16);
        memcpy(key, addr, n);
        return n;
    }
    if (IN6_IS_ADDR_V4MAPPED(&a)) {
        memcpy(key, &a.s6_addr[12], 4);
        return 4;
    }
    memcpy(key, a.s6_addr, 8);
    return 8;
}

/* ---- the gate ------------------------------------------------------------ */

static struct sockrec *gate_rec(struct gate *g, int fd)
{
    if (fd >= g->nrec) {
        int n = g->nrec ? g->nrec : 256;
        while (n <= fd)
            n *= 2;
        struct sockrec *r = es_realloc(g->rec, (size_t)n * sizeof *r);
        if (r == NULL)
            return NULL;
        memset(r + g->nrec, 0, (size_t)(n - g->nrec) * sizeof *r);
        g->rec = r;
        g->nrec = n;
    }
    return &g->rec[fd];
}

/* The record of fd for this peer, started afresh if the descriptor now
 * belongs to another connection.  Under g->lock. */
static struct sockrec *gate_find(struct gate *g, int fd, const uint8_t *ip, size_t iplen,
                                 int port, int64_t now)
{
    struct sockrec *r = gate_rec(g, fd);
    if (r == NULL)
        return NULL;
    if (!r->known || r->port != port || r->iplen != iplen || memcmp(r->ip, ip, iplen) != 0) {
        memset(r, 0, sizeof *r);
        memcpy(r->ip, ip, iplen);
        r->iplen = (uint8_t)iplen;
        r->port = (uint16_t)port;
        r->known = 1;
        r->since = now;
    }
    return r;
}

/* A socket waiting for its headers, for the per-address cap. */
struct waiting {
    int      fd;
    uint8_t  ip[16];
    uint8_t  iplen;
    int64_t  since;
};

static int waiting_cmp(const void *a, const void *b)
{
    const struct waiting *x = a, *y = b;
    if (x->iplen != y->iplen)
        return x->iplen < y->iplen ? -1 : 1;
    int c = memcmp(x->ip, y->ip, x->iplen);
    if (c != 0)
        return c;
    return x->since < y->since ? -1 : x->since > y->since ? 1 : x->fd - y->fd;
}

/* Every GATE_TICK_MS, from the watchdog thread: every socket of the
 * server's port that is not inside a request is shut once it has waited
 * header_timeout_ms; of those of one address, all but the conns_per_ip
 * oldest are shut now.  Shutting both directions makes the worker that
 * holds it (or will take it) read end-of-file and close it. */
static void gate_scan(struct gate *g)
{
    struct waiting *w = NULL;
    size_t nw = 0, capw = 0;
    pthread_mutex_lock(&g->lock);
    int port = g->port;
    pthread_mutex_unlock(&g->lock);
    if (port <= 0)
        return;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return;
    int64_t now = mono_ms();
    struct dirent *e;
    pthread_mutex_lock(&g->lock);
    unsigned gen = ++g->gen;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end != '\0' || end == e->d_name || fd < 0 || fd > INT32_MAX)
            continue;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getsockname((int)fd, (struct sockaddr *)&ss, &sl) != 0 || sockaddr_port(&ss) != port)
            continue;
        sl = sizeof ss;
        if (getpeername((int)fd, (struct sockaddr *)&ss, &sl) != 0)
            continue;                             /* the listening socket */
        char addr[INET6_ADDRSTRLEN];
        const void *a = ss.ss_family == AF_INET
                      ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
                      : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
        if (inet_ntop(ss.ss_family, a, addr, sizeof addr) == NULL)
            continue;
        uint8_t ip[16];
        size_t iplen = ip_key(addr, ip);
        struct sockrec *r = gate_find(g, (int)fd, ip, iplen, sockaddr_port(&ss), now);
        if (r == NULL)
            continue;
        r->seen = gen;
        if (r->busy || r->shut)
            continue;
        int unread = 0;
        if (ioctl((int)fd, FIONREAD, &unread) == 0 && unread > 0) {
            /* Bytes the server has not read yet: a request waiting for a
             * worker (a worker reading headers takes every byte that
             * comes).  Not the client's wait: its clock starts again. */
            r->since = now;
            continue;
        }
        if (now - r->since >= g->header_ms) {
            shutdown((int)fd, SHUT_RDWR);
            r->shut = 1;
            g->expired++;
            continue;
        }
        if (g->cap > 0) {
            if (nw == capw) {
                size_t c = capw ? 2 * capw : 64;
                struct waiting *p = es_realloc(w, c * sizeof *p);
                if (p == NULL)
                    continue;
                w = p;
                capw = c;
            }
            w[nw].fd = (int)fd;
            memcpy(w[nw].ip, ip, iplen);
            w[nw].iplen = (uint8_t)iplen;
            w[nw].since = r->since;
            nw++;
        }
    }
    closedir(d);
    for (int fd = 0; fd < g->nrec; fd++)
        if (g->rec[fd].known && g->rec[fd].seen != gen)
            g->rec[fd].known = 0;                 /* closed since */
    /* Per address, oldest first: all but the first cap are shut. */
    long refused = 0;
    if (nw > 0)
        qsort(w, nw, sizeof *w, waiting_cmp);
    for (size_t i = 0, run = 0; i < nw; i++) {
        run = i > 0 && w[i].iplen == w[i - 1].iplen &&
              memcmp(w[i].ip, w[i - 1].ip, w[i].iplen) == 0 ? run + 1 : 0;
        if (run >= (size_t)g->cap) {
            /* Still the socket looked at?  (Closed and reused since, the
             * descriptor would now be another connection's.) */
            struct sockaddr_storage ss;
            socklen_t sl = sizeof ss;
            if (getpeername(w[i].fd, (struct sockaddr *)&ss, &sl) != 0 ||
                sockaddr_port(&ss) != g->rec[w[i].fd].port)
                continue;
            shutdown(w[i].fd, SHUT_RDWR);
            g->rec[w[i].fd].shut = 1;
            refused++;
        }
    }
    long before = g->refused;
    g->refused += refused;
    long after = g->refused;
    pthread_mutex_unlock(&g->lock);
    es_free(w);
    /* Logged when the count passes 1, 2, 4, 8, ...: an attack cannot flood the log. */
    long pow2 = 1;
    while (pow2 <= after / 2)
        pow2 *= 2;
    if (after > 0 && pow2 > before)
        log_warn("%ld idle connections shut so far: more than %d from one address waited "
                 "for their headers at once", after, g->cap);
}

/* begin_request: the connection's headers are in; it is no longer idle. */
static void gate_busy(struct gate *g, const struct mg_request_info *ri, int fd, int busy)
{
    struct in6_addr a;
    uint8_t ip[16];
    if (fd < 0 || parse_addr(ri->remote_addr, &a) != 0)
        return;
    size_t iplen = ip_key(ri->remote_addr, ip);
    pthread_mutex_lock(&g->lock);
    struct sockrec *r = gate_find(g, fd, ip, iplen, ri->remote_port, mono_ms());
    if (r != NULL) {
        r->busy = (uint8_t)busy;
        r->since = mono_ms();          /* after a request: the wait for the next starts */
    }
    pthread_mutex_unlock(&g->lock);
}

/* A worker took a new connection (nothing of it read yet; CivetWeb tells
 * neither its socket nor its address here): ask for a scan soon, so that a
 * connection over its address's cap is shut before it holds the worker
 * long. */
static int init_connection(const struct mg_connection *conn, void **conn_data)
{
    struct http_state *st = mg_get_user_context_data(conn);
    *conn_data = NULL;
    if (st && st->wd.running) {
        pthread_mutex_lock(&st->wd.lock);
        if (!st->wd.kicked) {
            st->wd.kicked = 1;
            pthread_cond_signal(&st->wd.wake);
        }
        pthread_mutex_unlock(&st->wd.lock);
    }
    return 0;
}

/* The connection's socket (see conn_fd), kept in CivetWeb's per-connection
 * data as the value itself (fd + 2; 1: not found; NULL: not looked up),
 * so there is nothing to free. */
static int request_fd(struct mg_connection *conn, struct http_state *st)
{
    intptr_t v = (intptr_t)mg_get_user_connection_data(conn);
    if (v == 0) {
        int fd = conn_fd(&st->wd, mg_get_request_info(conn));
        v = fd >= 0 ? (intptr_t)fd + 2 : 1;
        mg_set_user_connection_data(conn, (void *)v);
    }
    return (int)(v - 2);
}

static void end_request(const struct mg_connection *conn, int status)
{
    struct http_state *st = mg_get_user_context_data(conn);
    const struct mg_request_info *ri = mg_get_request_info(conn);
    intptr_t v = (intptr_t)mg_get_user_connection_data(conn);
    (void)status;
    if (st && ri && v >= 2)
        gate_busy(&st->gate, ri, (int)(v - 2), 0);
}

/* Every request, health checks too, before its handler reads a byte of
 * the body.  0: go on; otherwise the refusal is sent (and the connection
 * closed: its body is unread). */
static int begin_request(struct mg_connection *conn)
{
    struct http_state *st = mg_get_user_context_data(conn);
    const struct mg_request_info *ri = mg_get_request_info(conn);
    uint8_t key[16];
    double retry = 0;
    if (st != NULL)
        gate_busy(&st->gate, ri, request_fd(conn, st), 1);
    /* CivetWeb accepts from mg_start() on, before the handlers are set: a
     * tablet retrying against a restarting server would get 404. */
    if (st != NULL && !atomic_load(&st->ready)) {
        static const char msg[] =
            "{\"error\":\"busy\",\"detail\":\"the server is starting; retry in 1 s\"}";
        http_reply(conn, 503, "application/json", msg, sizeof msg - 1,
                   "Retry-After: 1\r\nConnection: close\r\n");
        return 503;
    }
    if (st == NULL || !ratelimit_enabled(&st->ip))
        return 0;
    size_t n = ip_key(ri->remote_addr, key);
    if (ratelimit_take(&st->ip, key, n, &retry))
        return 0;
    return refuse_limited(conn, "address", retry, 1);
}

/* ---- bodies -------------------------------------------------------------- */

/* Reads the whole body, within cap bytes and request_timeout_ms.
 * On refusal the reply is already sent and NULL is returned. */
static uint8_t *read_body(struct mg_connection *conn, struct http_state *st, size_t cap,
                          size_t *len)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const struct config *cfg = &st->srv->cfg;
    const char *te = mg_get_header(conn, "Transfer-Encoding");
    const char *cl = mg_get_header(conn, "Content-Length");
    *len = 0;
    if (te && cl) {
        fail(conn, SYNC_EPROTO, "ambiguous_length",
             "a request may not carry both Transfer-Encoding and Content-Length",
             "Connection: close\r\n");
        return NULL;
    }
    if (te || ri->content_length < 0) {
        static const char msg[] =
            "{\"error\":\"length_required\",\"detail\":\"send the body with a Content-Length\"}";
        http_reply(conn, 411, "application/json", msg, sizeof msg - 1, "Connection: close\r\n");
        return NULL;
    }
    if ((uint64_t)ri->content_length > cap) {
        char d[96];
        snprintf(d, sizeof d, "the body may be at most %zu bytes", cap);
        fail(conn, SYNC_ETOOBIG, "too_large", d, "Connection: close\r\n");
        return NULL;
    }
    size_t n = (size_t)ri->content_length, got = 0;
    uint8_t *p = es_malloc(n ? n : 1);
    if (p == NULL) {
        fail(conn, SYNC_ENOMEM, "internal", "out of memory", "Connection: close\r\n");
        return NULL;
    }
    int64_t deadline = mono_ms() + cfg->request_timeout_ms;
    int slot = n ? watchdog_arm(&st->wd, request_fd(conn, st), deadline) : -1;
    while (got < n && mono_ms() < deadline) {
        int r = mg_read(conn, p + got, n - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    int fired = watchdog_disarm(&st->wd, slot);
    if (got != n) {
        es_free(p);
        if (fired || mono_ms() >= deadline) {
            char d[96];
            snprintf(d, sizeof d, "the body did not arrive within %d ms",
                     cfg->request_timeout_ms);
            fail(conn, HTTP_TIMEOUT, "timeout", d, "Connection: close\r\n");
        } else {
            fail(conn, SYNC_EPROTO, "truncated", "the body is shorter than its Content-Length",
                 "Connection: close\r\n");
        }
        return NULL;
    }
    if (fired)                     /* complete, but the socket reads no more */
        mg_disable_connection_keep_alive(conn);
    *len = n;
    return p;
}

uint8_t *http_body(struct mg_connection *conn, size_t cap, size_t *len)
{
    return read_body(conn, mg_get_user_context_data(conn), cap, len);
}

/* ---- handlers ------------------------------------------------------------ */

static int method_is(struct mg_connection *conn, const char *m)
{
    return strcmp(mg_get_request_info(conn)->request_method, m) == 0;
}

static int handle_health(struct mg_connection *conn, void *cb)
{
    (void)cb;
    if (!method_is(conn, "GET"))
        return fail(conn, SYNC_EINVAL, "method", "use GET", "Allow: GET\r\n");
    char body[128];
    snprintf(body, sizeof body, "{\"status\":\"ok\",\"schema_version\":%d,\"time_ms\":%lld}",
             schema_version(), (long long)now_ms());
    http_reply(conn, 200, "application/json", body, strlen(body), NULL);
    return 200;
}

static int handle_enroll(struct mg_connection *conn, void *cb)
{
    struct http_state *st = cb;
    struct outcome o;
    size_t len;
    outcome_init(&o);
    if (!method_is(conn, "POST"))
        return fail(conn, SYNC_EINVAL, "method", "use POST", "Allow: POST\r\n");
    uint8_t *body = read_body(conn, st, st->srv->cfg.max_body_bytes, &len);
    if (body == NULL)
        return 400;
    char *reply = NULL;
    int rc = auth_enroll(st->srv, (const char *)body, len, &reply, &o);
    es_free(body);
    if (rc != SYNC_OK)
        return send_outcome(conn, &o, NULL);
    http_reply(conn, 200, "application/json", reply, strlen(reply), NULL);
    cJSON_free(reply);
    return 200;
}

/* Push and pull: authenticate the envelope, run the request, seal the reply.
 * The device's rate limit is taken once the header names it, before any
 * crypto or SQL. */
static int handle_envelope(struct mg_connection *conn, struct http_state *st, int kind)
{
    struct server *srv = st->srv;
    struct outcome o;
    struct env_header h;
    struct device dev;
    uint8_t rx[32], tx[32], *pt = NULL, *reply = NULL, *sealed = NULL;
    size_t len = 0, ptlen = 0, replylen = 0, sealedlen = 0;
    double retry = 0;
    outcome_init(&o);
    if (!method_is(conn, "POST"))
        return fail(conn, SYNC_EINVAL, "method", "use POST", "Allow: POST\r\n");
    uint8_t *body = read_body(conn, st, st->srv->cfg.max_body_bytes, &len);
    if (body == NULL)
        return 400;
    int rc;
    if (env_peek(body, len, &h) != SYNC_OK || h.kind != kind)
        rc = outcome_set(&o, SYNC_EPROTO, "bad_envelope", "the body is not a %s envelope",
                         kind == ENV_PUSH ? "push" : "pull");
    else if (!ratelimit_take(&st->dev, h.device_id, sizeof h.device_id, &retry))
        rc = HTTP_RATE_LIMITED;
    else if ((rc = auth_device(srv, h.device_id, &dev, &o)) != SYNC_OK)
        ;
    else if (auth_session_keys(srv, &dev, rx, tx) != SYNC_OK ||
             (rc = env_open(body, len, kind, rx, &h, &pt, &ptlen)) == SYNC_ECRYPTO)
        rc = outcome_set(&o, SYNC_ECRYPTO, "authentication_failed",
                         "the envelope did not authenticate");
    else if (rc != SYNC_OK)           /* authentic, but its content does not decode */
        rc = outcome_set(&o, rc, rc == SYNC_ENOMEM ? "internal" : "bad_envelope",
                         "the envelope's content does not decode");
    else if (kind == ENV_PUSH) {
        char *ack = NULL;
        rc = push_apply(srv, &dev, h.batch_seq, pt, ptlen, &ack, &o);
        if (rc == SYNC_OK) {
            reply = (uint8_t *)ack;
            replylen = strlen(ack);
        }
    } else {
        rc = pull_build(srv, &dev, pt, ptlen, &reply, &replylen, &o);
    }
    if (rc == SYNC_OK) {
        struct env_header rh = h;
        rh.kind = kind + 2;
        rc = env_seal(&rh, tx, reply, replylen, &sealed, &sealedlen);
        if (rc != SYNC_OK)
            outcome_set(&o, rc, "internal", "cannot seal the reply");
    }
    int status;
    if (rc == SYNC_OK) {
        http_reply(conn, 200, "application/octet-stream", sealed, sealedlen, NULL);
        status = 200;
    } else if (rc == HTTP_RATE_LIMITED) {
        status = refuse_limited(conn, "device", retry, 0);
    } else {
        status = send_outcome(conn, &o, NULL);
    }
    memset(rx, 0, sizeof rx);
    memset(tx, 0, sizeof tx);
    es_free(body);
    es_free(pt);
    if (reply)                         /* a pull page may hold opened personal values */
        sodium_memzero(reply, replylen);
    es_free(reply);
    es_free(sealed);
    return status;
}

static int handle_push(struct mg_connection *conn, void *cb)
{
    return handle_envelope(conn, cb, ENV_PUSH);
}

static int handle_pull(struct mg_connection *conn, void *cb)
{
    return handle_envelope(conn, cb, ENV_PULL);
}

static int log_message(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    log_warn("civetweb: %s", message);
    return 1;
}

static void state_free(struct http_state *st)
{
    if (st == NULL)
        return;
    watchdog_stop(&st->wd);
    dash_free(st->dash);
    ratelimit_free(&st->dev);
    ratelimit_free(&st->ip);
    es_free(st->gate.rec);
    pthread_mutex_destroy(&st->gate.lock);
    es_free(st);
}

int http_start(struct server *srv, int *port, char *err, size_t errlen)
{
    const struct config *cfg = &srv->cfg;
    char threads[16], timeout[16], keepalive[16];
    snprintf(threads, sizeof threads, "%d", cfg->num_threads);
    snprintf(timeout, sizeof timeout, "%d", cfg->request_timeout_ms);
    /* An idle kept-alive connection holds a worker too: no longer than a
     * request may take. */
    snprintf(keepalive, sizeof keepalive, "%d",
             cfg->request_timeout_ms < 5000 ? cfg->request_timeout_ms : 5000);
    const char *options[] = {
        "listening_ports", cfg->listen,
        "num_threads", threads,
        "request_timeout_ms", timeout,         /* headers; each read and write */
        "max_request_size", "16384",           /* headers only */
        "enable_keep_alive", "yes",
        "keep_alive_timeout_ms", keepalive,
        /* A reply goes out as two writes (head, then body).  On a kept-alive
         * connection Nagle would hold the body back until the client ACKs
         * the head, which its delayed ACK puts off by up to 40 ms. */
        "tcp_nodelay", "1",
        /* A county's tablets sync in waves (500 at once in bench): room for
         * them in the accept queue and the kernel backlog rather than
         * refused connects.  Queued connections hold no worker. */
        "connection_queue", "256",
        "listen_backlog", "1024",
        NULL
    };
    /* Every connection is a descriptor: a flood of them should meet the
     * gate, not the soft limit (often 1024, far below the hard one). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct http_state *st = es_calloc(1, sizeof *st);
    if (st == NULL) {
        snprintf(err, errlen, "out of memory");
        return SYNC_ENOMEM;
    }
    st->srv = srv;
    pthread_mutex_init(&st->gate.lock, NULL);
    st->gate.cap = cfg->conns_per_ip;
    st->gate.header_ms = cfg->header_timeout_ms < cfg->request_timeout_ms
                       ? cfg->header_timeout_ms : cfg->request_timeout_ms;
    int bad = ratelimit_init(&st->dev, cfg->device_rate_per_s, cfg->device_burst) != 0;
    bad |= ratelimit_init(&st->ip, cfg->ip_rate_per_s, cfg->ip_burst) != 0;
    if (bad || watchdog_start(&st->wd, cfg->num_threads) != 0 ||
        (st->dash = dash_new(srv)) == NULL) {
        state_free(st);
        snprintf(err, errlen, "cannot set up the HTTP limits (out of memory?)");
        return SYNC_ENOMEM;
    }
    struct mg_callbacks cbs;
    memset(&cbs, 0, sizeof cbs);
    cbs.log_message = log_message;
    cbs.begin_request = begin_request;
    cbs.end_request = end_request;
    cbs.init_connection = init_connection;
    mg_init_library(0);
    srv->mg = mg_start(&cbs, st, options);
    if (srv->mg == NULL) {
        state_free(st);
        snprintf(err, errlen, "cannot listen on %s (in use, or not a local address?)",
                 cfg->listen);
        return SYNC_EIO;
    }
    mg_set_request_handler(srv->mg, "/v1/health$", handle_health, st);
    mg_set_request_handler(srv->mg, "/v1/enroll$", handle_enroll, st);
    mg_set_request_handler(srv->mg, "/v1/push$", handle_push, st);
    mg_set_request_handler(srv->mg, "/v1/pull$", handle_pull, st);
    dash_routes(st->dash, srv->mg);          /* "/": the page, and 404 for the rest */
    atomic_store(&st->ready, 1);
    struct mg_server_port ports[4];
    int n = mg_get_server_ports(srv->mg, 4, ports);
    *port = n > 0 ? ports[0].port : 0;
    pthread_mutex_lock(&st->gate.lock);
    st->gate.port = *port;                    /* the gate starts looking */
    pthread_mutex_unlock(&st->gate.lock);
    return SYNC_OK;
}

void http_stop(struct server *srv)
{
    if (srv->mg == NULL)
        return;
    struct http_state *st = mg_get_user_data(srv->mg);
    mg_stop(srv->mg);              /* joins the workers: nothing uses st after */
    srv->mg = NULL;
    state_free(st);
}
