/* pushfix.h - an in-process server with a seeded county and two signed
 * batches from its hall tablet, for the storage-fault and out-of-memory
 * campaigns (test_storage.c, test_oom.c).
 *
 * The county is fuzz_common.c's fixed-id county (devices included), so the
 * hall device's keys are known and batches can be signed here.  Batch 1
 * inserts two meals as two outbox entries (applied as one changeset,
 * push.c), batch 2 one meal as one entry. */
#ifndef TEST_PUSHFIX_H
#define TEST_PUSHFIX_H

#include <stddef.h>
#include <stdint.h>
#include "fuzz_common.h"
#include "server.h"

struct pushfix {
    char             dir[128];
    char             template_db[192];   /* the seeded county, closed */
    struct fz_county cty;
    struct device    dev;                /* the hall tablet of H0 */
    uint8_t         *batch[2];           /* signed payloads for batch_seq 1, 2 */
    size_t           len[2];
};

/* Creates dir/template.db (+ .key) and the two batches. */
void pf_init(struct pushfix *f, const char *name);
void pf_free(struct pushfix *f);
/* Copies the template (database and key file) to db, removing any -wal
 * and -shm of db. */
void pf_copy(const struct pushfix *f, const char *db);
/* Copies a file byte for byte (asserts). */
void pf_copy_file(const char *from, const char *to);
/* Opens srv on db (store_open); returns SYNC_OK or the error. */
int  pf_open(struct server *srv, const char *db);
/* Pushes batch k (0 or 1) with batch_seq k + 1.  *ack: free(). */
int  pf_push(struct pushfix *f, struct server *srv, int k, char **ack, struct outcome *o);
/* The state of a closed county file: hash of the synced rows, the hall
 * device's last_batch_seq, and whether PRAGMA integrity_check says ok. */
void pf_state(const char *db, uint8_t hash[32], int64_t *seq, int *intact);

#endif
