/* audit.h - the hash-chained audit log. */
#ifndef SRV_AUDIT_H
#define SRV_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include "server.h"

/* Appends an entry inside the caller's transaction (store_begin), so the
 * entry commits or rolls back with what it records.  device may be NULL.
 * detail is a JSON object without personal data.  Returns SYNC_OK or
 * SYNC_EIO. */
int audit_append(struct server *srv, const char *kind, const uint8_t *device, const char *actor,
                 const char *detail);

/* The same in a transaction of its own, for events with nothing else to
 * commit (a refusal, an issued code). */
int audit_record(struct server *srv, const char *kind, const uint8_t *device, const char *actor,
                 const char *detail);

/* Checks every link of the chain.  Returns SYNC_OK with *count entries, or
 * SYNC_ESCHEMA with *bad the id of the first entry whose hash or link does
 * not hold, and a sentence in msg. */
int audit_verify(sqlite3 *db, long *count, int64_t *bad, char *msg, size_t msglen);

#endif
