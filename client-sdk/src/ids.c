/* ids.c - UUIDv7-style ids, monotonic within the process; see ids.h.
 *
 * Ordering comes from (ms, counter) alone: the counter occupies rand_a and
 * is re-seeded with a random value whenever a new millisecond starts, so
 * ids stay hard to guess while still sorting in creation order.  The seed
 * keeps the counter's top bit clear, leaving at least 2048 ids per ms before
 * it overflows; on overflow we borrow the next millisecond rather than
 * break ordering.  A wall clock that steps back is treated as "still the
 * last millisecond we used" for the same reason.
 */
#define _POSIX_C_SOURCE 200809L
#include "ids.h"

#include <pthread.h>
#include <string.h>

#include <sodium.h>

#include "eldersync.h"
#include "util.h"

#define MS_MAX     ((INT64_C(1) << 48) - 1)
#define CTR_MAX    0xfff
#define CTR_SEED   0x800    /* seeds are < this: half the range is headroom */

static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t id_last_ms = -1;   /* ms field of the last id; -1: none yet */
static unsigned id_ctr;           /* rand_a of the last id */

/* Picks the (ms, counter) pair for the next id; call with id_lock held. */
static void next_slot(int64_t *ms, unsigned *ctr)
{
    int64_t now = now_ms();
    if (now < 0)
        now = 0;                  /* clock before 1970: clamp, stay ordered */
    if (now > MS_MAX)
        now = MS_MAX;

    if (now > id_last_ms) {
        id_last_ms = now;
        id_ctr = randombytes_uniform(CTR_SEED);
    } else if (id_ctr < CTR_MAX) {
        id_ctr++;                 /* same (or earlier) ms: count up */
    } else if (id_last_ms < MS_MAX) {
        id_last_ms++;             /* counter exhausted: borrow the next ms */
        id_ctr = randombytes_uniform(CTR_SEED);
    }
    /* else: year 10889 with 4096 ids in the last ms -- nothing left to
     * count with; repeat the slot rather than wrap to 1970. */
    *ms = id_last_ms;
    *ctr = id_ctr;
}

void id_new(uint8_t out[ID_BYTES])
{
    int64_t ms;
    unsigned ctr;

    /* Random tail first, outside the lock: it does not affect ordering. */
    randombytes_buf(out + 8, 8);

    pthread_mutex_lock(&id_lock);
    next_slot(&ms, &ctr);
    pthread_mutex_unlock(&id_lock);

    for (int i = 0; i < 6; i++)
        out[i] = (uint8_t)((uint64_t)ms >> (40 - 8 * i));
    out[6] = (uint8_t)(0x70 | (ctr >> 8));
    out[7] = (uint8_t)(ctr & 0xff);
    out[8] = (uint8_t)(0x80 | (out[8] & 0x3f));
}

int64_t id_time_ms(const uint8_t id[ID_BYTES])
{
    uint64_t ms = 0;
    for (int i = 0; i < 6; i++)
        ms = ms << 8 | id[i];
    return (int64_t)ms;
}

static void sql_uuid7(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    uint8_t id[ID_BYTES];
    (void)argc;
    (void)argv;
    id_new(id);
    sqlite3_result_blob(ctx, id, ID_BYTES, SQLITE_TRANSIENT);
}

int ids_register_sql(sqlite3 *db)
{
    /* Not SQLITE_DETERMINISTIC: every call must yield a new id.
     * SQLITE_INNOCUOUS: no side effects, so schema defaults and triggers
     * may call it even with trusted_schema=OFF. */
    int rc = sqlite3_create_function_v2(db, "uuid7", 0,
                                        SQLITE_UTF8 | SQLITE_INNOCUOUS, NULL,
                                        sql_uuid7, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        return SYNC_OK;
    return rc == SQLITE_NOMEM ? SYNC_ENOMEM : SYNC_ERROR;
}
