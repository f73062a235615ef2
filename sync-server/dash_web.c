/* dash_web.c - the dashboard page and its assets, compiled into the server
 * from sync-server/web/ (web/embed.sh), so nothing is read from disk and
 * nothing comes from the internet: county intranets are often offline. */
#include "dash_int.h"

#include <stdio.h>
#include <string.h>
#include <civetweb.h>

#include "http.h"

struct dash_file { const char *name, *type; const unsigned char *data; size_t len; };
extern const struct dash_file dash_files[];

/* Scripts and styles only from this server; no framing, no plugins. */
#define PAGE_HEADERS \
    "Content-Security-Policy: default-src 'self'; img-src 'self' data:; " \
    "style-src 'self'; script-src 'self'; object-src 'none'; " \
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'\r\n" \
    "X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n"

int dash_asset(struct mg_connection *conn, const char *path)
{
    const char *name;
    if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0)
        name = "index.html";
    else if (strncmp(path, "/assets/", 8) == 0)
        name = path + 8;
    else
        return 0;
    if (strcmp(mg_get_request_info(conn)->request_method, "GET") != 0)
        return 0;
    for (const struct dash_file *f = dash_files; f->name; f++) {
        if (strcmp(f->name, name) == 0) {
            http_reply(conn, 200, f->type, f->data, f->len, PAGE_HEADERS);
            return 1;
        }
    }
    return 0;
}
