/* txguard.h - a transaction no commit but its owner's can end.
 *
 * SQLite rolls a transaction back by itself after some errors (out of
 * memory, I/O, disk full) in the middle of a statement.  Code that missed
 * such an error would carry on in autocommit mode, each later write
 * committing on its own: half a batch, or half a pull page, applied.  So
 * while a guard is active no commit may happen at all: its commit hook
 * turns any commit into a rollback (the statement fails), its rollback
 * hook notes SQLite's own rollbacks, and the owner clears `active` just
 * before its own COMMIT, after checking txguard_lost().  The server's
 * store (store_begin .. store_end) and the tablet (client_tx_begin ..
 * client_tx_end) use it.
 */
#ifndef ES_TXGUARD_H
#define ES_TXGUARD_H

#include "sqlite.h"

struct txguard {
    int active;      /* between the owner's BEGIN and its COMMIT */
    int broken;      /* a commit or rollback not the owner's happened meanwhile */
};

/* Installs the hooks on db (once, at open; they replace any others). */
void txguard_install(sqlite3 *db, struct txguard *g);
/* After the owner's BEGIN succeeded. */
void txguard_begin(struct txguard *g);
/* 1 if the transaction is no longer whole: broken, or SQLite is back in
 * autocommit mode. */
int  txguard_lost(const struct txguard *g, sqlite3 *db);

#endif
