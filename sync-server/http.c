/* http.c - the sync server's HTTP face: routes, limits, error replies.
 *
 * Handlers are thin: read a bounded body, call auth/push/pull, reply.  No
 * document root is configured, so CivetWeb serves no files and never runs
 * its directory code.  Bodies are capped from Content-Length before a byte
 * is read; requests with both Transfer-Encoding and Content-Length, or
 * without a length, are refused.
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <civetweb.h>
#include <cjson/cJSON.h>

#include "auth.h"
#include "eldersync.h"
#include "envelope.h"
#include "log.h"
#include "pull.h"
#include "push.h"
#include "schema.h"
#include "util.h"

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
    default:              return 500;
    }
}

static void send_reply(struct mg_connection *conn, int status, const char *type,
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
    send_reply(conn, status, "application/json", s ? s : "{}", s ? strlen(s) : 2, extra);
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

/* Reads the whole body, within the configured cap.  On refusal the reply is
 * already sent and NULL is returned. */
static uint8_t *read_body(struct mg_connection *conn, struct server *srv, size_t *len)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
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
        send_reply(conn, 411, "application/json", msg, sizeof msg - 1, "Connection: close\r\n");
        return NULL;
    }
    if ((uint64_t)ri->content_length > srv->cfg.max_body_bytes) {
        char d[96];
        snprintf(d, sizeof d, "the body may be at most %zu bytes", srv->cfg.max_body_bytes);
        fail(conn, SYNC_ETOOBIG, "too_large", d, "Connection: close\r\n");
        return NULL;
    }
    size_t n = (size_t)ri->content_length, got = 0;
    uint8_t *p = malloc(n ? n : 1);
    if (p == NULL) {
        fail(conn, SYNC_ENOMEM, "internal", "out of memory", "Connection: close\r\n");
        return NULL;
    }
    while (got < n) {
        int r = mg_read(conn, p + got, n - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got != n) {
        free(p);
        fail(conn, SYNC_EPROTO, "truncated", "the body is shorter than its Content-Length",
             "Connection: close\r\n");
        return NULL;
    }
    *len = n;
    return p;
}

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
    send_reply(conn, 200, "application/json", body, strlen(body), NULL);
    return 200;
}

static int handle_enroll(struct mg_connection *conn, void *cb)
{
    struct server *srv = cb;
    struct outcome o;
    size_t len;
    outcome_init(&o);
    if (!method_is(conn, "POST"))
        return fail(conn, SYNC_EINVAL, "method", "use POST", "Allow: POST\r\n");
    uint8_t *body = read_body(conn, srv, &len);
    if (body == NULL)
        return 400;
    char *reply = NULL;
    int rc = auth_enroll(srv, (const char *)body, len, &reply, &o);
    free(body);
    if (rc != SYNC_OK)
        return send_outcome(conn, &o, NULL);
    send_reply(conn, 200, "application/json", reply, strlen(reply), NULL);
    cJSON_free(reply);
    return 200;
}

/* Push and pull: authenticate the envelope, run the request, seal the reply. */
static int handle_envelope(struct mg_connection *conn, struct server *srv, int kind)
{
    struct outcome o;
    struct env_header h;
    struct device dev;
    uint8_t rx[32], tx[32], *pt = NULL, *reply = NULL, *sealed = NULL;
    size_t len = 0, ptlen = 0, replylen = 0, sealedlen = 0;
    outcome_init(&o);
    if (!method_is(conn, "POST"))
        return fail(conn, SYNC_EINVAL, "method", "use POST", "Allow: POST\r\n");
    uint8_t *body = read_body(conn, srv, &len);
    if (body == NULL)
        return 400;
    int rc;
    if (env_peek(body, len, &h) != SYNC_OK || h.kind != kind)
        rc = outcome_set(&o, SYNC_EPROTO, "bad_envelope", "the body is not a %s envelope",
                         kind == ENV_PUSH ? "push" : "pull");
    else if ((rc = auth_device(srv, h.device_id, &dev, &o)) != SYNC_OK)
        ;
    else if (auth_session_keys(srv, &dev, rx, tx) != SYNC_OK ||
             env_open(body, len, kind, rx, &h, &pt, &ptlen) != SYNC_OK)
        rc = outcome_set(&o, SYNC_ECRYPTO, "authentication_failed",
                         "the envelope did not authenticate");
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
        send_reply(conn, 200, "application/octet-stream", sealed, sealedlen, NULL);
        status = 200;
    } else {
        status = send_outcome(conn, &o, NULL);
    }
    memset(rx, 0, sizeof rx);
    memset(tx, 0, sizeof tx);
    free(body);
    free(pt);
    free(reply);
    free(sealed);
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

static int handle_other(struct mg_connection *conn, void *cb)
{
    (void)cb;
    return fail(conn, SYNC_ENOTFOUND, "not_found", "no such endpoint", NULL);
}

static int log_message(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    log_warn("civetweb: %s", message);
    return 1;
}

int http_start(struct server *srv, int *port, char *err, size_t errlen)
{
    char threads[16], timeout[16];
    snprintf(threads, sizeof threads, "%d", srv->cfg.num_threads);
    snprintf(timeout, sizeof timeout, "%d", srv->cfg.request_timeout_ms);
    const char *options[] = {
        "listening_ports", srv->cfg.listen,
        "num_threads", threads,
        "request_timeout_ms", timeout,
        "max_request_size", "16384",           /* headers only */
        "enable_keep_alive", "yes",
        "keep_alive_timeout_ms", "5000",
        NULL
    };
    struct mg_callbacks cbs;
    memset(&cbs, 0, sizeof cbs);
    cbs.log_message = log_message;
    mg_init_library(0);
    srv->mg = mg_start(&cbs, srv, options);
    if (srv->mg == NULL) {
        snprintf(err, errlen, "cannot listen on %s (in use, or not a local address?)",
                 srv->cfg.listen);
        return SYNC_EIO;
    }
    mg_set_request_handler(srv->mg, "/v1/health$", handle_health, srv);
    mg_set_request_handler(srv->mg, "/v1/enroll$", handle_enroll, srv);
    mg_set_request_handler(srv->mg, "/v1/push$", handle_push, srv);
    mg_set_request_handler(srv->mg, "/v1/pull$", handle_pull, srv);
    mg_set_request_handler(srv->mg, "/", handle_other, srv);
    struct mg_server_port ports[4];
    int n = mg_get_server_ports(srv->mg, 4, ports);
    *port = n > 0 ? ports[0].port : 0;
    return SYNC_OK;
}

void http_stop(struct server *srv)
{
    if (srv->mg)
        mg_stop(srv->mg);
    srv->mg = NULL;
}
