/* transport.h - minimal blocking HTTP/1.1 client for talking to the server.
 *
 * Built on CivetWeb's client API.  One request per connection
 * ("Connection: close"); plain http:// only for now.  The payloads are
 * already end-to-end encrypted envelopes, so this layer only moves bytes
 * and turns network trouble into SYNC_ENET with a message a person can act
 * on.  HTTP error statuses are not errors here: the caller maps them.
 *
 * Timeouts: timeout_ms bounds waiting for the response headers and is
 * checked again between body reads.  CivetWeb 1.15 offers no knob for the
 * TCP connect itself or for a single body read, so a dead peer can add
 * CivetWeb's own limits on top (a refused port fails at once; a silent
 * connection during the body is cut after 30 s without data).
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

/* Frees resp->body and resets *resp; NULL-safe. */
void http_response_free(struct http_response *r);

#endif
