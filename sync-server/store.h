/* store.h - the server database: open, pragmas, schema, bookkeeping
 * triggers, server keys.  The only place that opens the county file. */
#ifndef SRV_STORE_H
#define SRV_STORE_H

#include <stddef.h>
#include "server.h"
#include "changeset.h"

/* Opens (creating if needed) srv->cfg.db, applies the schema and installs
 * the row-version triggers generated from sync_tables, loads srv->pol and
 * the key file (creating it, mode 0600, if absent).  Returns SYNC_OK or an
 * error with a message in err.  Undo with store_close(). */
int  store_open(struct server *srv, char *err, size_t errlen);
void store_close(struct server *srv);
/* SQLite's process-wide settings for the server; call before any other
 * SQLite call (the server's main and the bench do). */
void store_sqlite_config(void);

/* Runs sql with no result rows.  Returns SYNC_OK or SYNC_EIO. */
int  store_exec(sqlite3 *db, const char *sql);

/* The current version counter (the newest vseq); -1 if it cannot be read
 * (out of memory, I/O error). */
int64_t store_counter(sqlite3 *db);



/* A prepared statement for sql, compiled once per connection and reset
 * for reuse (bindings cleared).  Call with srv->lock held.  The statement
 * belongs to the cache: do not finalize it.  NULL if sql does not compile. */
sqlite3_stmt *store_stmt(struct server *srv, const char *sql);
/* Runs one statement without parameters through store_stmt (SAVEPOINT,
 * RELEASE, ...); SYNC_OK or SYNC_EIO. */
int store_run(struct server *srv, const char *sql);

/* Every write to synced tables happens between these two: BEGIN IMMEDIATE
 * and load the version counter; then save it and COMMIT (status SYNC_OK) or
 * ROLLBACK (otherwise).  store_end returns status, or SYNC_EIO if the
 * commit failed.  Outside them the bookkeeping triggers refuse to run, so
 * nothing can change a synced row without a new version. */
int store_begin(struct server *srv);
int store_end(struct server *srv, int status);
/* Rolls back the open transaction, if any, with a statement prepared at
 * open.  With no memory left at all even that can fail (SQLite may need to
 * reload pages); store_begin then rolls back first, so a leftover
 * transaction never commits and never blocks the next write. */
void store_rollback(struct server *srv);

/* Group commit.  Writes that arrive together (pushes from several devices,
 * pulls noting a device's last sync) share one transaction and one durable
 * COMMIT: the first writer to find no round running leads rounds of up to
 * group_commit_max jobs until its own job is done; the others wait for
 * theirs.  Each job runs in its own SAVEPOINT, so a refused job is rolled
 * back alone and the rest of the group commits.  A job's rc is final only
 * after the COMMIT: if the COMMIT fails every job of the round gets
 * SYNC_EIO (nothing of it was applied). */
struct store_job {
    struct store_job *next;
    /* Inside the shared transaction (srv->lock held): SYNC_OK keeps the
     * job's writes, anything else rolls them back. */
    int  (*run)(struct server *srv, void *arg);
    /* After a refusal was rolled back, still inside the transaction: may
     * write a record of it (rejections).  May be NULL. */
    void (*refused)(struct server *srv, void *arg, int rc);
    void  *arg;
    int    rc;
    int    done;
    int    detached;                 /* malloc'd; the round frees it */
};
/* Runs job in the next round and waits for its COMMIT; returns job->rc. */
int  store_group(struct server *srv, struct store_job *job);
/* A read connection for work that writes nothing (pulls, device lookups),
 * so it does not wait for srv->lock while a commit is in progress: WAL
 * readers see the last committed state.  Up to STORE_READERS, opened on
 * first use; waits for a free one.  NULL if none can be opened.  Give it
 * back with store_reader_put().  Statements from store_reader_stmt() are
 * cached per connection like store_stmt(). */
struct store_reader *store_reader_get(struct server *srv);
void store_reader_put(struct server *srv, struct store_reader *r);
sqlite3_stmt *store_reader_stmt(struct store_reader *r, const char *sql);

/* Queues a malloc'd job without waiting for it (the round frees it); if no
 * round is running, runs one now. */
void store_group_detached(struct server *srv, struct store_job *job);

/* Records that row pk of t changed, for the push path (which turns the
 * triggers off while SQLite applies a changeset): the row's entry in the
 * scope it is in now gets a new version, entries in other scopes become
 * tombstones, and if the row is gone every entry becomes a tombstone.
 * scope: the row's scope value if the caller knows it and the row is new
 * (no other entries can exist), NULL to read it from the row.  part: the
 * partition (township, hall) last recorded in row_partitions by this
 * caller, zeroed before its first call; valid for one changeset (it must
 * not outlive a savepoint that may roll back). */
struct store_part {
    uint8_t twp[16], hall[16];
    int     ntwp, nhall, known;
};
int store_touch(struct server *srv, const struct pol_table *t, const struct cs_value *pk,
                const struct cs_value *scope, struct store_part *part);
#endif
