/* rowhash.h - a content hash over synced rows, equal on a tablet and on the
 * server's projection of the same scope when the two have converged. */
#ifndef ES_ROWHASH_H
#define ES_ROWHASH_H

#include <stddef.h>
#include <stdint.h>
#include "sqlite.h"
#include "policy.h"

/* Writes an SQL condition limiting table t to one scope into buf (empty:
 * every row).  Return 0, or 1 to leave the table out. */
typedef int (*rowhash_filter_fn)(void *ctx, const struct pol_table *t, char *buf, size_t n);

/* BLAKE2b-256 over every row (ordered by id) of every synced table that one
 * of `roles` may read, filtered by filter (NULL: all rows).  Returns SYNC_OK
 * or SYNC_EIO. */
int rowhash_compute(sqlite3 *db, const struct policy *pol, unsigned roles,
                    rowhash_filter_fn filter, void *ctx, uint8_t out[32]);

#endif
