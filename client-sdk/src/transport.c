/* transport.c - blocking HTTP/1.1 POST/GET over CivetWeb's client API;
 * see transport.h.
 *
 * Each call opens one connection, sends the request with Content-Length
 * and "Connection: close", waits for the response headers within the
 * caller's deadline, and reads the body by the response's Content-Length
 * (or until the server closes).  Every failure on the way is reported as
 * SYNC_ENET with the host and port in the message, because the person
 * reading it is usually a care worker whose tablet "does not sync".
 */
#define _POSIX_C_SOURCE 200809L
#include "transport.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <civetweb.h>

#include "eldersync.h"
#include "util.h"

#define MAX_HOST     255
#define MAX_PATH     1024
#define MAX_CTYPE    128
#define IO_CHUNK     65536          /* bytes per mg_write/mg_read call */

struct target {
    char host[MAX_HOST + 1];        /* as passed to mg_connect_client */
    int  port;
    int  ipv6;                      /* host was a [bracketed] literal */
};

/* ---- small helpers ---------------------------------------------------- */

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static void lib_init(void)
{
    mg_init_library(0);
}

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

/* ---- connecting and sending ------------------------------------------ */

/* Turns CivetWeb's "connect(1.2.3.4:80): error Connection refused" into
 * "connection refused"; other texts pass through. */
static const char *connect_reason(char *ebuf)
{
    char *r = strstr(ebuf, "error ");
    r = r ? r + 6 : ebuf;
    if (*r == '\0')
        return "unknown error";
    r[0] = (char)tolower((unsigned char)r[0]);
    return r;
}

static struct mg_connection *open_conn(const struct target *t, char *errbuf,
                                       size_t errlen)
{
    char ebuf[256] = "";
    struct mg_connection *c =
        mg_connect_client(t->host, t->port, 0, ebuf, sizeof ebuf);
    if (c == NULL)
        errf(errbuf, errlen, "cannot connect to %s:%d: %s", t->host, t->port,
             connect_reason(ebuf));
    return c;
}

static int write_all(struct mg_connection *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        size_t n = len < IO_CHUNK ? len : IO_CHUNK;
        if (mg_write(c, p, n) != (int)n)
            return -1;
        p += n;
        len -= n;
    }
    return 0;
}

static int send_request(struct mg_connection *c, const struct target *t,
                        const char *method, const char *path,
                        const char *ctype, const void *body, size_t len,
                        size_t *sent)
{
    char head[MAX_HOST + MAX_PATH + MAX_CTYPE + 256];
    int n;
    const char *lb = t->ipv6 ? "[" : "", *rb = t->ipv6 ? "]" : "";

    if (ctype != NULL)
        n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: %s%s%s:%d\r\n"
                     "User-Agent: eldersync\r\nConnection: close\r\n"
                     "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                     method, path, lb, t->host, rb, t->port, ctype, len);
    else
        n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: %s%s%s:%d\r\n"
                     "User-Agent: eldersync\r\nConnection: close\r\n\r\n",
                     method, path, lb, t->host, rb, t->port);
    if (n < 0 || (size_t)n >= sizeof head)
        return -1;                      /* cannot happen: inputs are capped */
    if (write_all(c, head, (size_t)n) != 0)
        return -1;
    *sent = (size_t)n + len;
    return len > 0 ? write_all(c, body, len) : 0;
}

/* ---- reading the response -------------------------------------------- */

/* The value of a response header, or NULL. */
static const char *find_header(const struct mg_response_info *ri,
                               const char *name)
{
    for (int i = 0; i < ri->num_headers; i++) {
        const struct mg_header *hd = &ri->http_headers[i];
        if (hd->name && hd->value && strcasecmp(hd->name, name) == 0)
            return hd->value;
    }
    return NULL;
}

/* Body with a Content-Length: exactly cl bytes or SYNC_ENET. */
static int read_sized(struct mg_connection *c, const struct target *t,
                      size_t cl, int64_t deadline, struct http_response *resp,
                      char *errbuf, size_t errlen)
{
    if (cl == 0)
        return SYNC_OK;
    uint8_t *p = es_malloc(cl);
    if (p == NULL)
        return SYNC_ENOMEM;
    size_t got = 0;
    while (got < cl) {
        if (mono_ms() > deadline) {
            errf(errbuf, errlen, "timed out reading the reply from %s:%d "
                 "(%zu of %zu bytes)", t->host, t->port, got, cl);
            es_free(p);
            return SYNC_ENET;
        }
        size_t want = cl - got < IO_CHUNK ? cl - got : IO_CHUNK;
        int n = mg_read(c, p + got, want);
        if (n <= 0) {
            errf(errbuf, errlen, "connection to %s:%d cut after %zu of %zu "
                 "reply bytes", t->host, t->port, got, cl);
            es_free(p);
            return SYNC_ENET;
        }
        got += (size_t)n;
    }
    resp->body = p;
    resp->len = cl;
    return SYNC_OK;
}

/* Body without a Content-Length: chunked, or delimited by the server
 * closing.  CivetWeb's mg_read() returns 0 after the last chunk but -1 at
 * the end of a close-delimited body, so only a chunked body can be told
 * apart from a cut connection; a close-delimited one simply ends.  (Sync
 * payloads are sealed envelopes, so a cut one still fails to open.) */
static int read_to_end(struct mg_connection *c, const struct target *t,
                       int chunked, size_t max_body, int64_t deadline,
                       struct http_response *resp, char *errbuf,
                       size_t errlen)
{
    struct buf b = {0};
    uint8_t chunk[4096];

    for (;;) {
        if (mono_ms() > deadline) {
            errf(errbuf, errlen, "timed out reading the reply from %s:%d",
                 t->host, t->port);
            buf_free(&b);
            return SYNC_ENET;
        }
        int n = mg_read(c, chunk, sizeof chunk);
        if (n == 0 || (n < 0 && !chunked))
            break;                      /* end of body */
        if (n < 0) {
            errf(errbuf, errlen, "connection to %s:%d cut while reading the "
                 "reply", t->host, t->port);
            buf_free(&b);
            return SYNC_ENET;
        }
        if ((size_t)n > max_body - b.len) {
            errf(errbuf, errlen, "reply from %s:%d is larger than %zu bytes",
                 t->host, t->port, max_body);
            buf_free(&b);
            return SYNC_ETOOBIG;
        }
        buf_append(&b, chunk, (size_t)n);
        if (b.oom)
            return SYNC_ENOMEM;
    }
    resp->body = buf_take(&b, &resp->len);
    return SYNC_OK;
}

static int read_response(struct mg_connection *c, const struct target *t,
                         int64_t deadline, size_t max_body,
                         struct http_response *resp, char *errbuf,
                         size_t errlen)
{
    char ebuf[256] = "";
    int64_t left = deadline - mono_ms();
    if (left <= 0 || mg_get_response(c, ebuf, sizeof ebuf, (int)left) < 0) {
        /* CivetWeb times the wait on its own clock ("No data received");
         * allow a few ms of rounding when telling a timeout from a close. */
        if (mono_ms() >= deadline - 5)
            errf(errbuf, errlen, "no reply from %s:%d in time (server busy "
                 "or network down)", t->host, t->port);
        else
            errf(errbuf, errlen, "bad or no reply from %s:%d: %s", t->host,
                 t->port, ebuf[0] ? ebuf : "connection closed");
        return SYNC_ENET;
    }

    const struct mg_response_info *ri = mg_get_response_info(c);
    if (ri == NULL) {
        errf(errbuf, errlen, "bad reply from %s:%d", t->host, t->port);
        return SYNC_ENET;
    }
    resp->status = ri->status_code;
    const char *ra = find_header(ri, "Retry-After");
    if (ra != NULL)
        snprintf(resp->retry_after, sizeof resp->retry_after, "%s", ra);

    if (ri->content_length < 0) {
        const char *te = find_header(ri, "Transfer-Encoding");
        int chunked = te != NULL && strcasecmp(te, "chunked") == 0;
        return read_to_end(c, t, chunked, max_body, deadline, resp, errbuf,
                           errlen);
    }
    if ((unsigned long long)ri->content_length > max_body) {
        errf(errbuf, errlen, "reply from %s:%d has %lld bytes, limit is %zu",
             t->host, t->port, ri->content_length, max_body);
        return SYNC_ETOOBIG;
    }
    return read_sized(c, t, (size_t)ri->content_length, deadline, resp,
                      errbuf, errlen);
}

/* ---- public ------------------------------------------------------------ */

static int request(const char *method, const char *url, const char *path,
                   const char *ctype, const void *body, size_t len,
                   int timeout_ms, size_t max_body, struct http_response *resp,
                   char *errbuf, size_t errlen)
{
    struct target t;

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

    pthread_once(&lib_once, lib_init);
    int64_t deadline = mono_ms() + timeout_ms;

    struct mg_connection *c = open_conn(&t, errbuf, errlen);
    if (c == NULL)
        return SYNC_ENET;

    int rc;
    size_t sent = 0;
    if (send_request(c, &t, method, path, ctype, body, len, &sent) != 0) {
        errf(errbuf, errlen, "connection to %s:%d cut while sending the "
             "request", t.host, t.port);
        rc = SYNC_ENET;
    } else {
        rc = read_response(c, &t, deadline, max_body, resp, errbuf, errlen);
        resp->sent = sent;
    }
    mg_close_connection(c);
    if (rc != SYNC_OK)
        http_response_free(resp);
    return rc;
}

int http_post(const char *url, const char *path, const char *content_type,
              const void *body, size_t len, int timeout_ms, size_t max_body,
              struct http_response *resp, char *errbuf, size_t errlen)
{
    /* Every POST carries a Content-Type; envelopes are opaque bytes. */
    if (content_type == NULL)
        content_type = "application/octet-stream";
    return request("POST", url, path, content_type, body, len, timeout_ms,
                   max_body, resp, errbuf, errlen);
}

int http_get(const char *url, const char *path, int timeout_ms,
             size_t max_body, struct http_response *resp, char *errbuf,
             size_t errlen)
{
    return request("GET", url, path, NULL, NULL, 0, timeout_ms, max_body,
                   resp, errbuf, errlen);
}

void http_response_free(struct http_response *r)
{
    if (r == NULL)
        return;
    es_free(r->body);
    memset(r, 0, sizeof *r);
}
