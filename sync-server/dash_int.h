/* dash_int.h - what the dashboard's files share (not for other modules). */
#ifndef SRV_DASH_INT_H
#define SRV_DASH_INT_H

#include <stdint.h>
#include <cjson/cJSON.h>
#include "ratelimit.h"
#include "server.h"

struct mg_connection;

enum dash_role { DASH_COUNTY_ADMIN = 1, DASH_COUNTY_SUPERVISOR, DASH_TOWNSHIP_SUPERVISOR };

struct dash {
    struct server   *srv;
    struct ratelimit by_name, by_ip;     /* login attempts */
    pthread_mutex_t  dummy_lock;
    char             dummy_hash[128];    /* verified for unknown names */
};

struct dash_user {
    int64_t        id;
    char           name[65];
    enum dash_role role;
    uint8_t        township[16];         /* township supervisors only */
    int            scoped;
    char           csrf[64];
};

const char *dash_role_name(enum dash_role r);

/* Checks the request's session (and, for POST, its X-CSRF-Token).  On
 * failure the error reply is sent and -1 returned. */
int  dash_session(struct dash *d, struct mg_connection *conn, struct dash_user *u);

/* Auth routes: /api/login, /api/logout, /api/me.  1 if handled. */
int  dash_auth_route(struct dash *d, struct mg_connection *conn, const char *path);
/* Data routes under /api/ (a session is already checked). */
int  dash_api_route(struct dash *d, struct mg_connection *conn, const char *path,
                    const struct dash_user *u);

/* Sends j as a 200 JSON reply and deletes it. */
int  dash_json(struct mg_connection *conn, cJSON *j);
/* Writes the user's JSON object into parent under "user". */
void dash_user_json(struct dash *d, cJSON *parent, const struct dash_user *u);

/* The page and its assets, compiled in.  1 if path named one (sent). */
int  dash_asset(struct mg_connection *conn, const char *path);

/* An enrollment QR code as an SVG document (malloc'd), or NULL. */
char *dash_qr_svg(const char *text);

#endif
