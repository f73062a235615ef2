/* faultvfs.h - a test VFS that wraps the default one (unix) and injects
 * storage faults into the files SQLite keeps (main database, rollback
 * journal, WAL; temporary files pass through untouched).
 *
 *   fv_register() registers it as the default VFS, so every connection the
 *   process opens afterwards -- the server's store, the tablet SDK -- goes
 *   through it without any change to their open calls.
 *
 * Faults (fv_arm), counted from the moment of arming:
 *   FV_FAIL_WRITE n  the nth xWrite returns SQLITE_IOERR_WRITE, writing
 *                    nothing; later writes succeed.
 *   FV_FULL n        the nth and every later xWrite return SQLITE_FULL
 *                    (a disk that stays full) until fv_disarm.
 *   FV_FAIL_SYNC n   the nth xSync returns SQLITE_IOERR_FSYNC and does not
 *                    make anything durable (as after a failed fsync, the
 *                    writes since the last good sync stay at risk).
 *   FV_CUT_WRITE n   power loss instead of the nth xWrite;
 *   FV_CUT_SYNC n    power loss instead of the nth xSync.
 *
 * Power loss (also fv_power_cut): every byte written to a tracked file since
 * its last successful xSync is put back as it was at that sync, and the
 * file is cut back to its size at that sync -- what a disk that honours
 * fsync and nothing more would hold.  From then on the "machine is off":
 * every read, write, sync, truncate, delete and open fails with an I/O
 * error until fv_revive(), which the caller uses once it has closed every
 * connection (the process "reboots").
 *
 * Model limits: a file's creation and deletion count as durable at once
 * (SQLite syncs the directory for those); a failed write writes nothing
 * (no torn sectors); shared memory (-shm) is not tracked -- SQLite rebuilds
 * it from the WAL when the first connection opens the file again.
 * Not thread-safe: for single-threaded in-process tests.
 */
#ifndef TEST_FAULTVFS_H
#define TEST_FAULTVFS_H

enum fv_mode { FV_OFF, FV_FAIL_WRITE, FV_FULL, FV_FAIL_SYNC, FV_CUT_WRITE, FV_CUT_SYNC };

/* Registers "faultvfs" as the default VFS (once); 0 or -1. */
int  fv_register(void);
/* Resets the counters and arms mode at the nth operation (n >= 1).
 * FV_OFF with any n only counts. */
void fv_arm(enum fv_mode mode, long n);
void fv_disarm(void);                 /* stops injecting; counters kept */
long fv_writes(void);                 /* xWrite calls on tracked files since fv_arm */
long fv_syncs(void);                  /* xSync calls on tracked files since fv_arm */
int  fv_fired(void);                  /* the armed fault happened */
void fv_power_cut(void);              /* power loss now */
int  fv_dead(void);                   /* after a power loss, until fv_revive */
void fv_revive(void);
const char *fv_mode_name(enum fv_mode m);

#endif
