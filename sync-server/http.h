/* http.h - CivetWeb routes, body limits and the status -> HTTP table. */
#ifndef SRV_HTTP_H
#define SRV_HTTP_H

#include <stddef.h>
#include "server.h"

/* Starts listening on srv->cfg.listen.  *port gets the bound port (useful
 * with port 0).  Returns SYNC_OK or SYNC_EIO with err filled. */
int  http_start(struct server *srv, int *port, char *err, size_t errlen);
void http_stop(struct server *srv);

/* The HTTP status for a SYNC_* outcome; the only such table. */
int  http_status_for(int sync_status);

#endif
