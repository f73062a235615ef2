/* schema.h - the embedded schema files and ordered migrations.
 *
 * The schema/ SQL files are compiled in by schema/embed.sh, so the server and every
 * tablet run exactly the same definitions.  Nothing here knows about sync.
 */
#ifndef ES_SCHEMA_H
#define ES_SCHEMA_H

#include <stddef.h>
#include "sqlite.h"

struct schema_migration {
    int         version;     /* PRAGMA user_version after applying */
    const char *sql;
};

extern const char schema_schema_sql[];
extern const char schema_server_sql[];
extern const char schema_tablet_sql[];
extern const struct schema_migration schema_migrations[]; /* {0, 0}-terminated */

enum schema_side { SCHEMA_SERVER, SCHEMA_TABLET };

/* The version this build writes: schema.sql's, raised by every migration. */
int schema_version(void);

/* Brings db to schema_version(): a database with no tables gets schema.sql
 * and the side's own file; then each migration above PRAGMA user_version
 * runs, in order, each in its own transaction.  Returns SYNC_OK,
 * SYNC_ESCHEMA if the file is newer than this build or is not an eldersync
 * database, or SYNC_EIO; detail in err. */
int schema_apply(sqlite3 *db, enum schema_side side, char *err, size_t errlen);

/* The same with an explicit {0, 0}-terminated migration list (tests). */
int schema_apply_list(sqlite3 *db, enum schema_side side, const struct schema_migration *list,
                      char *err, size_t errlen);

#endif
