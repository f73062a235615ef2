/* transport.c - blocking HTTP/1.1 POST/GET on plain POSIX sockets, one
 * request at a time, optionally on a kept-alive connection; see
 * transport.h.
 *
 * Why not CivetWeb's client API (mg_connect_client + mg_get_response),
 * which this file used until the connection was kept alive: CivetWeb 1.15
 * does answer a second request on one client connection (checked: three
 * GETs on one mg_connect_client connection each got their own reply), but
 * the API cannot tell what reusing a connection safely needs:
 *  - whether any byte of the reply arrived before the connection ended:
 *    mg_get_response() returns -1 alike for a close, a reset, a timeout and
 *    a half-read head, and that decides whether a request may be resent;
 *  - whether an idle connection is still open: it hands out no socket to
 *    poll before reuse;
 *  - a bound on the connect and on each read (CivetWeb waits up to 30 s).
 * What the server and the tablets speak is small: a request with a
 * Content-Length body, a reply sized by Content-Length (chunked and
 * close-delimited replies are read too, and end the connection).
 *
 * Every failure is reported as SYNC_ENET with the host and port in the
 * message, because the person reading it is usually a care worker whose
 * tablet "does not sync".
 */
#define _POSIX_C_SOURCE 200809L
#include "transport.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "eldersync.h"
#include "util.h"

#define MAX_HOST     255
#define MAX_PATH     1024
#define MAX_CTYPE    128
#define MAX_LINE     8192           /* one status or header line */
#define MAX_HEAD     16384          /* all of the reply's head */

struct target {
    char host[MAX_HOST + 1];        /* without [brackets] */
    int  port;
    int  ipv6;                      /* host was a [bracketed] literal */
};

/* ---- small helpers ---------------------------------------------------- */

static void errf(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (errbuf == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

/* Deadlines use the monotonic clock so a wall-clock jump cannot stretch
 * or cut them. */
static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Printable ASCII without spaces: safe to put in a request line/header
 * (no header injection through CR/LF). */
static int is_token(const char *s, size_t max, int allow_space)
{
    size_t n = 0;
    for (; *s; s++, n++) {
        unsigned char ch = (unsigned char)*s;
        if (n >= max || ch < 0x20 || ch > 0x7e || (ch == ' ' && !allow_space))
            return 0;
    }
    return n > 0;
}

/* "Connection refused" -> "connection refused". */
static void lower_first(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src);
    dst[0] = (char)tolower((unsigned char)dst[0]);
}

/* Waits until fd is ready for events or the deadline passes.  1: ready,
 * 0: timed out, -1: poll failed. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            return 0;
        struct pollfd pf = { fd, events, 0 };
        int r = poll(&pf, 1, left > 60000 ? 60000 : (int)left);
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

/* ---- URL parsing ------------------------------------------------------- */

static int parse_port(const char *s, const char *end, int *port)
{
    long v = 0;
    if (s == end)
        return -1;
    for (; s < end; s++) {
        if (!isdigit((unsigned char)*s))
            return -1;
        v = v * 10 + (*s - '0');
        if (v > 65535)
            return -1;
    }
    if (v == 0)
        return -1;
    *port = (int)v;
    return 0;
}

/* "http://host[:port][/]" or "http://[v6addr][:port][/]". */
static int parse_url(const char *url, struct target *t)
{
    static const char scheme[] = "http://";
    if (url == NULL || strncasecmp(url, scheme, sizeof scheme - 1) != 0)
        return -1;
    const char *p = url + sizeof scheme - 1;
    const char *end = p + strlen(p);
    if (end > p && end[-1] == '/')
        end--;

    const char *host = p, *host_end;
    if (*p == '[') {
        host = p + 1;
        host_end = memchr(host, ']', (size_t)(end - host));
        if (host_end == NULL)
            return -1;
        p = host_end + 1;
        t->ipv6 = 1;
    } else {
        host_end = p;
        while (host_end < end && *host_end != ':' && *host_end != '/')
            host_end++;
        p = host_end;
        t->ipv6 = 0;
    }
    size_t hlen = (size_t)(host_end - host);
    if (hlen == 0 || hlen > MAX_HOST)
        return -1;
    memcpy(t->host, host, hlen);
    t->host[hlen] = '\0';
    if (!is_token(t->host, MAX_HOST, 0) || strchr(t->host, '@'))
        return -1;                      /* no userinfo, no control chars */

    t->port = 80;
    if (p < end && *p == ':')
        return parse_port(p + 1, end, &t->port);
    return p == end ? 0 : -1;           /* anything else: a path, junk */
}

/* ---- connecting ------------------------------------------------------- */

/* One address, non-blocking, within the deadline.  The socket or -1 with
 * *why set (an errno value, or ETIMEDOUT). */
static int connect_addr(const struct addrinfo *ai, int64_t deadline, int *why)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
    if (fd < 0) {
        *why = errno;
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            *why = errno;
            close(fd);
            return -1;
        }
        int w = wait_fd(fd, POLLOUT, deadline), err = 0;
        socklen_t sl = sizeof err;
        if (w <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0 || err != 0) {
            *why = w == 0 ? ETIMEDOUT : err != 0 ? err : errno;
            close(fd);
            return -1;
        }
    }
    /* Each request goes out in one write: no reason to wait for an ACK
     * before its last segment. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int open_fd(const struct target *t, int64_t deadline, char *errbuf, size_t errlen)
{
    char port[8], why_s[128];
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(port, sizeof port, "%d", t->port);
    int g = getaddrinfo(t->host, port, &hints, &res);
    if (g != 0) {
        lower_first(why_s, sizeof why_s, gai_strerror(g));
        errf(errbuf, errlen, "cannot connect to %s:%d: %s", t->host, t->port, why_s);
        return -1;
    }
    int fd = -1, why = ECONNREFUSED;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next)
        fd = connect_addr(ai, deadline, &why);
    freeaddrinfo(res);
    if (fd < 0) {
        if (why == ETIMEDOUT)
            snprintf(why_s, sizeof why_s, "timed out");
        else
            lower_first(why_s, sizeof why_s, strerror(why));
        errf(errbuf, errlen, "cannot connect to %s:%d: %s", t->host, t->port, why_s);
    }
    return fd;
}

/* ---- sending ------------------------------------------------------------ */

enum { SEND_OK = 0, SEND_CUT = -1, SEND_TIMEOUT = -2 };

/* Head and body in one writev-style call (and more while the socket
 * takes partial writes). */
static int send_all(int fd, const char *head, size_t hlen, const void *body, size_t blen,
                    int64_t deadline)
{
    struct iovec iov[2] = { { (void *)head, hlen }, { (void *)body, blen } };
    int n = blen > 0 ? 2 : 1, i = 0;
    while (i < n) {
        struct msghdr m;
        memset(&m, 0, sizeof m);
        m.msg_iov = iov + i;
        m.msg_iovlen = (size_t)(n - i);
        ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return SEND_CUT;
            int r = wait_fd(fd, POLLOUT, deadline);
            if (r <= 0)
                return r == 0 ? SEND_TIMEOUT : SEND_CUT;
            continue;
        }
        size_t left = (size_t)w;
        while (i < n && left >= iov[i].iov_len)
            left -= iov[i++].iov_len;
        if (i < n) {
            iov[i].iov_base = (char *)iov[i].iov_base + left;
            iov[i].iov_len -= left;
        }
    }
    return SEND_OK;
}

/* ---- reading ------------------------------------------------------------ */

enum { RD_OK = 0, RD_EOF, RD_TIMEOUT, RD_ERR };

/* A buffered reader on the socket.  got counts every reply byte received,
 * which is what decides whether a request may be resent. */
struct rd {
    int     fd;
    int64_t deadline;
    char    buf[MAX_LINE];
    size_t  pos, end;
    size_t  got;
    int     state;                  /* RD_*: why the last read returned nothing */
};

/* Reads what is there (waiting for it within the deadline) into dst.
 * > 0: bytes, 0: see r->state. */
static size_t rd_recv(struct rd *r, void *dst, size_t n)
{
    for (;;) {
        ssize_t k = recv(r->fd, dst, n, 0);
        if (k > 0) {
            r->got += (size_t)k;
            return (size_t)k;
        }
        if (k == 0) {
            r->state = RD_EOF;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            /* A reset is the server (or the network) ending it. */
            r->state = errno == ECONNRESET ? RD_EOF : RD_ERR;
            return 0;
        }
        int w = wait_fd(r->fd, POLLIN, r->deadline);
        if (w <= 0) {
            r->state = w == 0 ? RD_TIMEOUT : RD_ERR;
            return 0;
        }
    }
}

static int rd_fill(struct rd *r)
{
    if (r->pos > 0) {
        memmove(r->buf, r->buf + r->pos, r->end - r->pos);
        r->end -= r->pos;
        r->pos = 0;
    }
    if (r->end == sizeof r->buf)
        return -1;
    size_t k = rd_recv(r, r->buf + r->end, sizeof r->buf - r->end);
    r->end += k;
    return k > 0 ? 0 : -1;
}

/* One line without its CR LF.  0, or -1 (too long: state RD_ERR). */
static int rd_line(struct rd *r, char *line, size_t cap)
{
    for (;;) {
        char *nl = memchr(r->buf + r->pos, '\n', r->end - r->pos);
        if (nl != NULL) {
            size_t n = (size_t)(nl - (r->buf + r->pos));
            if (n > 0 && nl[-1] == '\r')
                n--;
            if (n >= cap) {
                r->state = RD_ERR;
                return -1;
            }
            memcpy(line, r->buf + r->pos, n);
            line[n] = '\0';
            r->pos = (size_t)(nl - r->buf) + 1;
            return 0;
        }
        if (r->end - r->pos >= cap) {
            r->state = RD_ERR;
            return -1;
        }
        if (rd_fill(r) != 0)
            return -1;
    }
}

/* Up to n body bytes: what is buffered first, then straight from the
 * socket.  > 0: bytes, 0: see r->state. */
static size_t rd_some(struct rd *r, void *dst, size_t n)
{
    if (r->pos < r->end) {
        size_t k = r->end - r->pos < n ? r->end - r->pos : n;
        memcpy(dst, r->buf + r->pos, k);
        r->pos += k;
        return k;
    }
    return rd_recv(r, dst, n);
}

/* What the head of a reply said. */
struct head {
    int       status;
    int       http11;
    long long clen;                 /* -1: none */
    int       chunked;              /* Transfer-Encoding: chunked */
    int       te;                   /* any Transfer-Encoding */
    int       close;                /* Connection: close */
};

static int parse_status(const char *line, struct head *h)
{
    if (strncmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' && line[7] != '1') ||
        line[8] != ' ' || !isdigit((unsigned char)line[9]) ||
        !isdigit((unsigned char)line[10]) || !isdigit((unsigned char)line[11]) ||
        (line[12] != ' ' && line[12] != '\0'))
        return -1;
    h->http11 = line[7] == '1';
    h->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    return h->status >= 100 ? 0 : -1;
}

/* Parses one "Name: value" line into h.  -1: malformed. */
static int parse_header(char *line, struct head *h, struct http_response *resp)
{
    char *colon = strchr(line, ':');
    if (colon == NULL || colon == line)
        return -1;
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t vn = strlen(v);
    while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
        v[--vn] = '\0';
    if (strcasecmp(line, "Content-Length") == 0) {
        long long n = 0;
        if (*v == '\0')
            return -1;
        for (const char *p = v; *p; p++) {
            if (!isdigit((unsigned char)*p) || n > (1LL << 50))
                return -1;
            n = n * 10 + (*p - '0');
        }
        if (h->clen >= 0 && h->clen != n)
            return -1;                  /* two different lengths */
        h->clen = n;
    } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
        h->te = 1;
        h->chunked = strcasecmp(v, "chunked") == 0;
    } else if (strcasecmp(line, "Connection") == 0) {
        for (const char *p = v; *p; p++)      /* a token list, e.g. "close" */
            if (strncasecmp(p, "close", 5) == 0)
                h->close = 1;
    } else if (strcasecmp(line, "Retry-After") == 0) {
        snprintf(resp->retry_after, sizeof resp->retry_after, "%s", v);
    }
    return 0;
}

/* Reads the head of the reply (skipping 1xx).  0, or -1 with r->state. */
static int read_head(struct rd *r, struct head *h, struct http_response *resp)
{
    char line[MAX_LINE];
    for (;;) {
        size_t total = 0;
        memset(h, 0, sizeof *h);
        h->clen = -1;
        if (rd_line(r, line, sizeof line) != 0)
            return -1;
        if (parse_status(line, h) != 0) {
            r->state = RD_ERR;
            return -1;
        }
        for (;;) {
            if (rd_line(r, line, sizeof line) != 0)
                return -1;
            total += strlen(line) + 2;
            if (line[0] == '\0')
                break;
            if (total > MAX_HEAD || parse_header(line, h, resp) != 0) {
                r->state = RD_ERR;
                return -1;
            }
        }
        if (h->status >= 200)
            return 0;
        resp->retry_after[0] = '\0';    /* an interim reply: the real one follows */
    }
}

/* Body with a Content-Length: exactly cl bytes or SYNC_ENET. */
static int read_sized(struct rd *r, const struct target *t, size_t cl,
                      struct http_response *resp, char *errbuf, size_t errlen)
{
    if (cl == 0)
        return SYNC_OK;
    uint8_t *p = es_malloc(cl);
    if (p == NULL)
        return SYNC_ENOMEM;
    size_t got = 0;
    while (got < cl) {
        size_t n = rd_some(r, p + got, cl - got);
        if (n == 0) {
            if (r->state == RD_TIMEOUT)
                errf(errbuf, errlen, "timed out reading the reply from %s:%d "
                     "(%zu of %zu bytes)", t->host, t->port, got, cl);
            else
                errf(errbuf, errlen, "connection to %s:%d cut after %zu of %zu "
                     "reply bytes", t->host, t->port, got, cl);
            es_free(p);
            return SYNC_ENET;
        }
        got += n;
    }
    resp->body = p;
    resp->len = cl;
    return SYNC_OK;
}

static int append_capped(struct buf *b, const void *p, size_t n, size_t max_body,
                         const struct target *t, char *errbuf, size_t errlen)
{
    if (n > max_body - b->len) {
        errf(errbuf, errlen, "reply from %s:%d is larger than %zu bytes",
             t->host, t->port, max_body);
        return SYNC_ETOOBIG;
    }
    buf_append(b, p, n);
    return b->oom ? SYNC_ENOMEM : SYNC_OK;
}

/* A chunked body: every chunk, to the last (zero) one and its trailers. */
static int read_chunked(struct rd *r, const struct target *t, size_t max_body,
                        struct buf *b, char *errbuf, size_t errlen)
{
    char line[MAX_LINE];
    uint8_t tmp[4096];
    for (;;) {
        if (rd_line(r, line, sizeof line) != 0)
            goto cut;
        char *end;
        errno = 0;
        unsigned long long n = strtoull(line, &end, 16);
        if (end == line || errno != 0 || (*end != '\0' && *end != ';' && *end != ' ')) {
            errf(errbuf, errlen, "bad chunked reply from %s:%d", t->host, t->port);
            return SYNC_ENET;
        }
        if (n == 0)
            break;
        if (n > max_body - b->len)
            return append_capped(b, NULL, max_body + 1 - b->len, max_body, t, errbuf, errlen);
        while (n > 0) {
            size_t k = rd_some(r, tmp, n < sizeof tmp ? (size_t)n : sizeof tmp);
            if (k == 0)
                goto cut;
            int rc = append_capped(b, tmp, k, max_body, t, errbuf, errlen);
            if (rc != SYNC_OK)
                return rc;
            n -= k;
        }
        if (rd_line(r, line, sizeof line) != 0)          /* the chunk's CR LF */
            goto cut;
    }
    do {                                                 /* trailers, then "" */
        if (rd_line(r, line, sizeof line) != 0)
            goto cut;
    } while (line[0] != '\0');
    return SYNC_OK;
cut:
    if (r->state == RD_TIMEOUT)
        errf(errbuf, errlen, "timed out reading the reply from %s:%d", t->host, t->port);
    else
        errf(errbuf, errlen, "connection to %s:%d cut while reading the reply",
             t->host, t->port);
    return SYNC_ENET;
}

/* Body without a Content-Length: chunked, or delimited by the server
 * closing.  A close-delimited body cannot be told apart from a cut one;
 * sync payloads are sealed envelopes, so a cut one still fails to open. */
static int read_to_end(struct rd *r, const struct target *t, int chunked, size_t max_body,
                       struct http_response *resp, char *errbuf, size_t errlen)
{
    struct buf b = {0};
    int rc = SYNC_OK;
    if (chunked) {
        rc = read_chunked(r, t, max_body, &b, errbuf, errlen);
    } else {
        uint8_t tmp[4096];
        size_t n;
        while (rc == SYNC_OK && (n = rd_some(r, tmp, sizeof tmp)) > 0)
            rc = append_capped(&b, tmp, n, max_body, t, errbuf, errlen);
        if (rc == SYNC_OK && r->state == RD_TIMEOUT) {
            errf(errbuf, errlen, "timed out reading the reply from %s:%d", t->host, t->port);
            rc = SYNC_ENET;
        }
    }
    if (rc == SYNC_ENOMEM)
        errf(errbuf, errlen, "out of memory");
    if (rc != SYNC_OK) {
        buf_free(&b);
        return rc;
    }
    resp->body = buf_take(&b, &resp->len);
    return SYNC_OK;
}

/* Reads the whole reply.  *reusable: the connection is at a clean message
 * boundary and the server did not end it. */
static int read_response(struct rd *r, const struct target *t, size_t max_body,
                         struct http_response *resp, int *reusable, char *errbuf,
                         size_t errlen)
{
    struct head h;
    *reusable = 0;
    if (read_head(r, &h, resp) != 0) {
        if (r->state == RD_TIMEOUT)
            errf(errbuf, errlen, "no reply from %s:%d in time (server busy or network down)",
                 t->host, t->port);
        else
            errf(errbuf, errlen, "bad or no reply from %s:%d: %s", t->host, t->port,
                 r->state == RD_EOF ? "connection closed" : "malformed reply");
        return SYNC_ENET;
    }
    resp->status = h.status;
    if (h.status == 204 || h.status == 304)
        h.clen = 0;                     /* never a body */
    int rc;
    if (h.te || h.clen < 0) {
        rc = read_to_end(r, t, h.chunked, max_body, resp, errbuf, errlen);
        return rc;                      /* never reused: see transport.h */
    }
    if ((unsigned long long)h.clen > max_body) {
        errf(errbuf, errlen, "reply from %s:%d has %lld bytes, limit is %zu",
             t->host, t->port, h.clen, max_body);
        return SYNC_ETOOBIG;
    }
    rc = read_sized(r, t, (size_t)h.clen, resp, errbuf, errlen);
    if (rc == SYNC_ENOMEM)
        errf(errbuf, errlen, "out of memory");
    *reusable = rc == SYNC_OK && h.http11 && !h.close && r->pos == r->end;
    return rc;
}

/* ---- the connection ------------------------------------------------------ */

void http_conn_init(struct http_conn *hc, int idle_max_ms)
{
    memset(hc, 0, sizeof *hc);
    hc->fd = -1;
    hc->idle_max_ms = idle_max_ms;
}

void http_conn_reset(struct http_conn *hc)
{
    if (hc == NULL || hc->fd < 0)
        return;
    close(hc->fd);
    hc->fd = -1;
}

/* Whether hc's open connection may carry the next request to t: same
 * server, idle less than the bound, and nothing arrived on it while idle
 * (readable now means the server closed it, or sent what nobody asked
 * for).  Otherwise it is closed. */
static int conn_usable(struct http_conn *hc, const struct target *t)
{
    if (hc->fd < 0)
        return 0;
    struct pollfd pf = { hc->fd, POLLIN, 0 };
    if (hc->port != t->port || strcmp(hc->host, t->host) != 0 ||
        mono_ms() - hc->idle_since >= hc->idle_max_ms ||
        poll(&pf, 1, 0) != 0) {
        http_conn_reset(hc);
        return 0;
    }
    return 1;
}

/* ---- one exchange ---------------------------------------------------------- */

enum { X_DONE, X_STALE };

/* Sends the request on fd and reads the reply.  X_STALE: the connection
 * was found closed before a byte of the reply came (*rc is SYNC_ENET and
 * errbuf says so); the caller may resend on a fresh one. */
static int exchange(int fd, const struct target *t, const char *head, size_t hlen,
                    const void *body, size_t len, int64_t deadline, size_t max_body,
                    struct http_response *resp, int *reusable, int *rc, char *errbuf,
                    size_t errlen)
{
    *reusable = 0;
    int s = send_all(fd, head, hlen, body, len, deadline);
    if (s != SEND_OK) {
        if (s == SEND_TIMEOUT)
            errf(errbuf, errlen, "timed out sending the request to %s:%d", t->host, t->port);
        else
            errf(errbuf, errlen, "connection to %s:%d cut while sending the request",
                 t->host, t->port);
        *rc = SYNC_ENET;
        return s == SEND_CUT ? X_STALE : X_DONE;
    }
    resp->sent = hlen + len;
    struct rd *r = es_malloc(sizeof *r);
    if (r == NULL) {
        errf(errbuf, errlen, "out of memory");
        *rc = SYNC_ENOMEM;
        return X_DONE;
    }
    r->fd = fd;
    r->deadline = deadline;
    r->pos = r->end = r->got = 0;
    r->state = RD_OK;
    *rc = read_response(r, t, max_body, resp, reusable, errbuf, errlen);
    int stale = *rc == SYNC_ENET && r->got == 0 && r->state == RD_EOF;
    es_free(r);
    return stale ? X_STALE : X_DONE;
}

static int request(struct http_conn *hc, const char *method, const char *url,
                   const char *path, const char *ctype, const void *body, size_t len,
                   int timeout_ms, size_t max_body, struct http_response *resp,
                   char *errbuf, size_t errlen)
{
    struct target t;
    struct http_conn once;

    if (resp == NULL)
        return SYNC_EINVAL;
    memset(resp, 0, sizeof *resp);
    errf(errbuf, errlen, "%s", "");
    if (parse_url(url, &t) != 0) {
        errf(errbuf, errlen, "bad server URL \"%s\": expected "
             "http://host[:port]", url ? url : "(null)");
        return SYNC_EINVAL;
    }
    if (path == NULL || path[0] != '/' || !is_token(path, MAX_PATH, 0)
        || (ctype != NULL && !is_token(ctype, MAX_CTYPE, 1))
        || (body == NULL && len > 0) || timeout_ms <= 0) {
        errf(errbuf, errlen, "bad HTTP request arguments");
        return SYNC_EINVAL;
    }
    if (hc == NULL) {
        http_conn_init(&once, 0);
        hc = &once;
    }
    int keep = hc->idle_max_ms > 0;

    char head[MAX_HOST + MAX_PATH + MAX_CTYPE + 256];
    const char *lb = t.ipv6 ? "[" : "", *rb = t.ipv6 ? "]" : "";
    const char *conn_hdr = keep ? "" : "Connection: close\r\n";
    int n;
    if (ctype != NULL)
        n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nUser-Agent: eldersync\r\n%s"
                     "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                     method, path, lb, t.host, rb, t.port, conn_hdr, ctype, len);
    else
        n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nUser-Agent: eldersync\r\n%s\r\n",
                     method, path, lb, t.host, rb, t.port, conn_hdr);
    if (n < 0 || (size_t)n >= sizeof head)
        return SYNC_EINVAL;             /* cannot happen: inputs are capped */

    int64_t deadline = mono_ms() + timeout_ms;
    int rc = SYNC_ENET, reusable = 0;
    /* At most two attempts, the second only after a reused connection
     * turned out to be closed by the server (its keep-alive or idle
     * timeout, a restart) before any byte of the reply: then the server
     * either never got the request, or got it and ended the connection
     * without answering.  Sending it again is safe for what the SDK sends:
     * a push is idempotent by batch_seq (the server answers a replayed
     * batch with the ack it stored), a pull only reads.  Never after a byte
     * of the reply arrived, a timeout, or on a fresh connection: those are
     * the network's or the server's trouble, for the caller to see. */
    for (int attempt = 0; attempt < 2; attempt++) {
        int reused = conn_usable(hc, &t);
        if (!reused) {
            hc->fd = open_fd(&t, deadline, errbuf, errlen);
            if (hc->fd < 0) {
                rc = SYNC_ENET;
                break;
            }
            hc->opened++;
            snprintf(hc->host, sizeof hc->host, "%s", t.host);
            hc->port = t.port;
        } else {
            hc->reused++;
        }
        int x = exchange(hc->fd, &t, head, (size_t)n, body, len, deadline, max_body, resp,
                         &reusable, &rc, errbuf, errlen);
        if (rc != SYNC_OK || !reusable || !keep)
            http_conn_reset(hc);
        else
            hc->idle_since = mono_ms();
        if (x != X_STALE || !reused)
            break;
        hc->retried++;
        http_response_free(resp);
    }
    if (rc != SYNC_OK)
        http_response_free(resp);
    return rc;
}

int http_post_on(struct http_conn *hc, const char *url, const char *path,
                 const char *content_type, const void *body, size_t len,
                 int timeout_ms, size_t max_body, struct http_response *resp,
                 char *errbuf, size_t errlen)
{
    /* Every POST carries a Content-Type; envelopes are opaque bytes. */
    if (content_type == NULL)
        content_type = "application/octet-stream";
    return request(hc, "POST", url, path, content_type, body, len, timeout_ms,
                   max_body, resp, errbuf, errlen);
}

int http_get_on(struct http_conn *hc, const char *url, const char *path,
                int timeout_ms, size_t max_body, struct http_response *resp,
                char *errbuf, size_t errlen)
{
    return request(hc, "GET", url, path, NULL, NULL, 0, timeout_ms, max_body,
                   resp, errbuf, errlen);
}

int http_post(const char *url, const char *path, const char *content_type,
              const void *body, size_t len, int timeout_ms, size_t max_body,
              struct http_response *resp, char *errbuf, size_t errlen)
{
    return http_post_on(NULL, url, path, content_type, body, len, timeout_ms, max_body,
                        resp, errbuf, errlen);
}

int http_get(const char *url, const char *path, int timeout_ms,
             size_t max_body, struct http_response *resp, char *errbuf,
             size_t errlen)
{
    return http_get_on(NULL, url, path, timeout_ms, max_body, resp, errbuf, errlen);
}

void http_response_free(struct http_response *r)
{
    if (r == NULL)
        return;
    es_free(r->body);
    memset(r, 0, sizeof *r);
}
