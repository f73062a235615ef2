/* http.h - CivetWeb routes, body limits and the status -> HTTP table. */
#ifndef SRV_HTTP_H
#define SRV_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include "server.h"

/* Starts listening on srv->cfg.listen.  *port gets the bound port (useful
 * with port 0).  Returns SYNC_OK or SYNC_EIO with err filled. */
int  http_start(struct server *srv, int *port, char *err, size_t errlen);
void http_stop(struct server *srv);

/* The HTTP status for a SYNC_* outcome; the only such table. */
int  http_status_for(int sync_status);

/* For other request handlers (the dashboard).  http_reply sends a whole
 * response; extra is more header lines, each ending in CRLF (or NULL).
 * http_error sends {"error", "detail"} with an HTTP status and returns it.
 * http_body reads the request body like the sync routes do (cap bytes at
 * most, Content-Length required, request_timeout_ms); NULL means the
 * refusal has been sent. */
struct mg_connection;
void     http_reply(struct mg_connection *conn, int status, const char *type,
                    const void *body, size_t len, const char *extra);
int      http_error(struct mg_connection *conn, int status, const char *error,
                    const char *detail, const char *extra);
uint8_t *http_body(struct mg_connection *conn, size_t cap, size_t *len);

#endif
