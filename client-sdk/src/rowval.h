/* rowval.h - one column value seen three ways: a changeset value, an SQLite
 * value, and JSON for conflict records.  Shared by the SDK and the server. */
#ifndef ES_ROWVAL_H
#define ES_ROWVAL_H

#include "sqlite.h"
#include "changeset.h"

struct cJSON;

/* A view of v (borrowed: valid while v is).  NULL v gives CS_UNDEF. */
void rowval_from_sqlite(struct cs_value *out, sqlite3_value *v);
/* Binds a changeset value to parameter i; CS_UNDEF binds NULL. */
int  rowval_bind(sqlite3_stmt *st, int i, const struct cs_value *v);
/* Same type and same bytes.  Integers and reals compare by value. */
int  rowval_eq(const struct cs_value *a, const struct cs_value *b);
/* Reads column i of the current row of st. */
void rowval_column(struct cs_value *out, sqlite3_stmt *st, int i);
/* JSON rendering: numbers, strings, blobs as {"hex": "..."}, null.
 * Returns NULL when out of memory.  Caller owns the result. */
struct cJSON *rowval_json(const struct cs_value *v);

#endif
