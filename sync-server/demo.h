/* demo.h - a realistic, entirely fake demo county for trying eldersync out.
 *
 * Six townships with their villages, about 2,000 seniors, three or four
 * dining halls with two weeks of meals, the Double Ninth (重阳) visiting
 * campaign with its cash and goods handouts, recent cleaning and bathing
 * visits, and about 150 home-retrofit cases spread over the workflow.
 * Every name, ID number, phone number and address is invented.
 */
#ifndef SRV_DEMO_H
#define SRV_DEMO_H

#include <stddef.h>
#include <stdint.h>

#include "sqlite.h"

/* Fills an empty county database (created with schema.sql + server.sql,
 * triggers installed by the caller) with the demo county.  `today` is the
 * county's local date "YYYY-MM-DD" (Asia/Shanghai, UTC+8): meals cover the
 * 14 days up to and including it.  The same seed gives the same data except
 * for the ids, which come from id_new() (sodium_init() is called here too).
 *
 * One transaction: its own (BEGIN IMMEDIATE ... COMMIT, ROLLBACK on any
 * error), or the caller's if one is open (the caller then commits or rolls
 * back).  Returns SYNC_OK; SYNC_EINVAL for a bad argument or a townships
 * table that already has rows; SYNC_EIO if SQLite failed.  err (may be NULL) receives a message. */
int demo_init(sqlite3 *db, uint64_t seed, const char *today, char *err,
              size_t errlen);

/* Prints to `file` (a FILE *) one line per township, then one per dining
 * hall, for operators picking enrollment scopes:
 *     township <32 hex id> <name>
 *     hall <32 hex id> <name> (township <name>)
 * Deleted rows are skipped; prints nothing more if a query fails. */
void demo_print_scopes(sqlite3 *db, void *file);

struct server;
/* A day's work by simulated tablets (demo_day.c): each enrolls at url with a
 * code issued by srv, pulls, works as a hall clerk, caregiver or inspector
 * would, and syncs over HTTP.  Tablet databases go to dir (PIN 2468).
 * Returns SYNC_OK, or an error with a sentence in err. */
int demo_day(struct server *srv, const char *url, const char *dir, char *err, size_t errlen);

#endif
