/* pvsql.h - SQL functions that seal and open personal values:
 *
 *   es_enc(table, column, pk, value)  plaintext -> sealed BLOB with the
 *                                     active key (NULL and already sealed
 *                                     values pass through)
 *   es_dec(table, column, pk, value)  sealed -> TEXT (other values pass)
 *   es_bidx(value)                    blind index (key id 0), NULL -> NULL
 *   es_key_id(value)                  key id of a sealed value, else NULL
 *
 * Registered on the tablet's and the server's connections with a key
 * provider, so both sides share one format (pcrypt.h).
 */
#ifndef ES_PVSQL_H
#define ES_PVSQL_H

#include <stdint.h>
#include "sqlite.h"

struct pv_keys {
    /* Fills key for id (0: blind-index key); SYNC_OK or an error. */
    int     (*get)(void *ctx, int64_t id, uint8_t key[32]);
    /* The key id new values are sealed with; 0 if there is none yet. */
    int64_t (*active)(void *ctx);
    void     *ctx;
};

/* keys must outlive the connection.  Returns SQLITE_OK or an error. */
int pvsql_register(sqlite3 *db, const struct pv_keys *keys);

#endif
