/* dash.h - the supervisors' dashboard: accounts, sessions, the JSON API
 * and the page, all served by the sync server (docs/DASHBOARD.md). */
#ifndef SRV_DASH_H
#define SRV_DASH_H

#include <stddef.h>
#include "server.h"

struct dash;
struct mg_context;

/* The dashboard's state for one server (login rate limits).  NULL when
 * out of memory.  dash_free(NULL) is a no-op. */
struct dash *dash_new(struct server *srv);
void         dash_free(struct dash *d);
/* Registers "/" on mg: the page, /assets/, /api/, and 404 for the rest. */
void         dash_routes(struct dash *d, struct mg_context *mg);

/* Creates a dashboard account.  role: county_admin | county_supervisor |
 * township_supervisor (scope_hex: its township id, required; otherwise
 * NULL).  Returns SYNC_OK, or an error with a sentence in err. */
int dash_add_user(struct server *srv, const char *name, const char *role, const char *scope_hex,
                  const char *password, char *err, size_t errlen);

#endif
