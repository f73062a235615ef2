/* store.h - the server database: open, pragmas, schema, bookkeeping
 * triggers, server keys.  The only place that opens the county file. */
#ifndef SRV_STORE_H
#define SRV_STORE_H

#include <stddef.h>
#include "server.h"

/* Opens (creating if needed) srv->cfg.db, applies the schema and installs
 * the row-version triggers generated from sync_tables, loads srv->pol and
 * the key file (creating it, mode 0600, if absent).  Returns SYNC_OK or an
 * error with a message in err.  Undo with store_close(). */
int  store_open(struct server *srv, char *err, size_t errlen);
void store_close(struct server *srv);

/* Runs sql with no result rows.  Returns SYNC_OK or SYNC_EIO. */
int  store_exec(sqlite3 *db, const char *sql);

/* The current version counter (the newest vseq). */
int64_t store_counter(sqlite3 *db);



/* A prepared statement for sql, compiled once per connection and reset
 * for reuse (bindings cleared).  Call with srv->lock held.  The statement
 * belongs to the cache: do not finalize it.  NULL if sql does not compile. */
sqlite3_stmt *store_stmt(struct server *srv, const char *sql);

/* BEGIN IMMEDIATE; and COMMIT (status SYNC_OK) or ROLLBACK (otherwise).
 * store_end returns status, or SYNC_EIO if the commit failed. */
int store_begin(sqlite3 *db);
int store_end(sqlite3 *db, int status);
#endif
