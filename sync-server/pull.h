/* pull.h - the rows a device may see that changed after its cursor. */
#ifndef SRV_PULL_H
#define SRV_PULL_H

#include <stddef.h>
#include "server.h"

/* Answers a pull request (JSON: cursor, max_bytes, schema_version) for dev.
 * *reply (free()) is: u32 big-endian JSON length, the JSON (cursor, more,
 * acked_seq, confirmed_seq, hlc, rows), then a changeset of upserts
 * (INSERTs of whole rows) and tombstones (DELETEs with NULL non-key
 * values), chunked at a vseq boundary once max_bytes is reached. */
int pull_build(struct server *srv, const struct device *dev, const uint8_t *req, size_t len,
               uint8_t **reply, size_t *replylen, struct outcome *o);

#endif
