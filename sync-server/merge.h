/* merge.h - the per-policy conflict handler for applying a device's
 * changeset on the server, and the conflict records it leaves. */
#ifndef SRV_MERGE_H
#define SRV_MERGE_H

#include "server.h"

struct merge_ctx {
    struct server       *srv;
    const struct device *dev;
    int64_t              batch_seq;
    long                 conflicts;    /* records written */
    long                 calls;        /* handler invocations */
    int                  fk_failed;    /* a foreign key was left dangling */
    int                  forbidden;    /* an insert met a row outside the scope */
    int                  failed;       /* storage error inside the handler */
};

/* sqlite3changeset_apply_v2 conflict callback; ctx is a struct merge_ctx.
 *   append:  identical duplicate -> no-op; other differences -> recorded
 *   lww:     columns nobody else changed apply; the same column changed on
 *            both sides -> newer HLC wins, the loser is recorded
 *   state:   as lww, but the state column takes the furthest legal state
 *   domain uniqueness (duplicate meal claim, second cash handout) ->
 *            omitted and recorded as duplicate_claim
 *   foreign key -> abort the batch
 *   an insert whose id exists in another scope -> abort (forbidden) */
int merge_conflict(void *ctx, int type, sqlite3_changeset_iter *it);

/* "INSERT INTO "table" VALUES (?, ..., ?)" for ncol columns into sql (n
 * bytes): the whole row in table order, as a changeset carries it.  0, or
 * -1 if it does not fit. */
int merge_insert_sql(char *sql, size_t n, const char *table, int ncol);

/* Writes a conflict record of `kind` for row pk of t (scopev: its scope
 * value, for the supervisors who may see it); winner / loser: JSON objects
 * or NULL.  Sets m->failed if it cannot. */
struct cJSON;
void merge_note(struct merge_ctx *m, const struct pol_table *t, const struct cs_value *pk,
                const struct cs_value *scopev, const char *kind, struct cJSON *winner,
                struct cJSON *loser);

#endif
