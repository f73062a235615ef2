/* transport.h - minimal blocking HTTP/1.1 client for talking to the server.
 *
 * Plain POSIX sockets, plain http:// only (transport.c says why not
 * CivetWeb's client API).  The payloads are already end-to-end encrypted
 * envelopes, so this layer only moves bytes and turns network trouble into
 * SYNC_ENET with a message a person can act on.  HTTP error statuses are
 * not errors here: the caller maps them.
 *
 * Two ways to call it:
 *  - one-shot: http_post() / http_get() open a connection, send one request
 *    with "Connection: close" and close it;
 *  - kept alive: http_post_on() / http_get_on() with a struct http_conn that
 *    the caller owns (one per tablet; never shared between threads).  The
 *    connection is reused for the next request while it has been idle less
 *    than the conn's idle_max_ms, and closed after any error, a timeout, a
 *    reply without Content-Length, or a "Connection: close" from the server.
 *    A request sent on a reused connection that the server had already
 *    closed (send fails, or the connection ends before any byte of the
 *    reply) is sent once more on a fresh connection; never after part of a
 *    reply was read.  Callers must only pass requests that are safe to
 *    deliver twice (push: idempotent by batch_seq; pull: read-only).
 *
 * Timeouts: timeout_ms bounds the whole request - connect, send, the
 * response headers and the body - including a retry.
 */
#ifndef ES_TRANSPORT_H
#define ES_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

struct http_response {
    int      status;            /* HTTP status code, e.g. 200 */
    uint8_t *body;              /* malloc'd; NULL when len is 0 */
    size_t   len;
    char     retry_after[32];   /* Retry-After header value, "" if absent */
    size_t   sent;              /* request bytes written: headers and body */
};

/* A connection kept between requests.  Caller-allocated; http_conn_init()
 * before use, http_conn_reset() to close it.  The counters are for tests
 * and benchmarks. */
struct http_conn {
    int      fd;                /* -1: none open */
    char     host[256];         /* what fd is connected to */
    int      port;
    int64_t  idle_since;        /* CLOCK_MONOTONIC ms at the end of its last reply */
    int      idle_max_ms;       /* reuse only while idle less than this */
    long     opened;            /* connections opened */
    long     reused;            /* requests sent on an already open connection */
    long     retried;           /* requests resent on a fresh one (stale connection) */
};

/* A server closes an idle connection after its header_timeout_ms (default
 * 5000) or keep_alive_timeout; reusing only well below that keeps the
 * common case off a closed socket. */
#define HTTP_IDLE_MAX_MS 2000

/* idle_max_ms <= 0: close the connection after every request. */
void http_conn_init(struct http_conn *hc, int idle_max_ms);
/* Closes the socket if one is open; keeps the settings and counters.
 * NULL-safe. */
void http_conn_reset(struct http_conn *hc);

/* POSTs len bytes of body to url + path, e.g. url "http://127.0.0.1:8080"
 * (an optional trailing '/' is ignored) and path "/v1/push".  Reads at most
 * max_body response bytes.  content_type NULL means
 * "application/octet-stream".
 *
 * Returns SYNC_OK for any HTTP status, with *resp filled (release it with
 * http_response_free()).  Otherwise *resp is empty and errbuf (if errlen >
 * 0) explains:
 *   SYNC_EINVAL   bad url (not http://), path, content type or timeout
 *   SYNC_ENET     cannot connect, connection reset, timeout, short body
 *   SYNC_ETOOBIG  response body longer than max_body
 *   SYNC_ENOMEM */
int http_post(const char *url, const char *path, const char *content_type,
              const void *body, size_t len, int timeout_ms, size_t max_body,
              struct http_response *resp, char *errbuf, size_t errlen);

/* As http_post() without a request body. */
int http_get(const char *url, const char *path, int timeout_ms,
             size_t max_body, struct http_response *resp, char *errbuf,
             size_t errlen);

/* As http_post() / http_get() on the kept connection hc (NULL: one-shot). */
int http_post_on(struct http_conn *hc, const char *url, const char *path,
                 const char *content_type, const void *body, size_t len,
                 int timeout_ms, size_t max_body, struct http_response *resp,
                 char *errbuf, size_t errlen);
int http_get_on(struct http_conn *hc, const char *url, const char *path,
                int timeout_ms, size_t max_body, struct http_response *resp,
                char *errbuf, size_t errlen);

/* Frees resp->body and resets *resp; NULL-safe. */
void http_response_free(struct http_response *r);

#endif
