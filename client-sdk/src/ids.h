/* ids.h - globally unique, time-ordered 16-byte ids (UUIDv7 layout).
 *
 *   bytes 0..5   unix time in ms, big-endian (48 bits)
 *   byte  6      version nibble 7 | top 4 bits of rand_a
 *   byte  7      low 8 bits of rand_a
 *   byte  8      variant bits 10 | 6 random bits
 *   bytes 9..15  random
 *
 * rand_a (12 bits) is a per-process counter seeded randomly each new
 * millisecond, so ids from one process compare strictly increasing with
 * memcmp() even within one millisecond or when the wall clock steps back.
 * Thread-safe.  Randomness comes from libsodium: call sodium_init() first.
 */
#ifndef ES_IDS_H
#define ES_IDS_H

#include <stdint.h>

#include "sqlite.h"      /* sqlite3.h with the session API declared */

#define ID_BYTES 16

/* A new id, strictly greater (memcmp) than every id this process made. */
void id_new(uint8_t out[ID_BYTES]);

/* The unix-ms timestamp stored in an id's first 48 bits. */
int64_t id_time_ms(const uint8_t id[ID_BYTES]);

/* Registers uuid7() on db: no arguments, returns a new id as a 16-byte
 * BLOB (non-deterministic, safe to use in schema defaults and triggers).
 * SYNC_OK, or SYNC_ENOMEM / SYNC_ERROR if SQLite refused. */
int ids_register_sql(sqlite3 *db);

#endif
