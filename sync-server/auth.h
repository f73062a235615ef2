/* auth.h - device identity: enrollment codes, enrollment, device lookup
 * and the per-device envelope keys. */
#ifndef SRV_AUTH_H
#define SRV_AUTH_H

#include <stddef.h>
#include "server.h"

#define AUTH_CODE_LEN 19          /* XXXX-XXXX-XXXX-XXXX */

/* Issues a one-time code for role and scope (hex id of a township, or of a
 * dining hall for the hall role).  code gets AUTH_CODE_LEN + 1 bytes. */
int auth_code_new(struct server *srv, const char *role, const char *scope_hex,
                  char code[AUTH_CODE_LEN + 1], struct outcome *o);

/* Handles an enrollment request body (JSON).  On success *reply is the
 * JSON reply (cJSON_free() it). */
int auth_enroll(struct server *srv, const char *body, size_t len, char **reply,
                struct outcome *o);

/* Looks a device up.  Unknown or revoked devices give SYNC_EAUTH. */
int auth_device(struct server *srv, const uint8_t id[16], struct device *dev,
                struct outcome *o);

/* Revokes an active device (hex id): its next request gets 401 "revoked",
 * which tells the tablet to destroy its keys.  SYNC_ENOTFOUND if there is
 * no such active device.  actor: who, for the audit log. */
int auth_revoke(struct server *srv, const char *device_hex, const char *actor,
                struct outcome *o);

/* Envelope keys for talking to dev: rx opens its requests, tx seals replies. */
int auth_session_keys(const struct server *srv, const struct device *dev,
                      uint8_t rx[32], uint8_t tx[32]);

#endif
