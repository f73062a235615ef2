/* faultvfs.c - storage fault injection for SQLite; see faultvfs.h.
 *
 * Every tracked file (main database, rollback journal, WAL) is known by
 * path, with its size at its last successful xSync.  Each write first saves
 * the bytes it overwrites that lie within that size (an undo record); a
 * truncate below that size saves the bytes it drops.  A successful xSync
 * forgets the file's undo records and takes its current size as durable.
 * Power loss replays the undo records newest first through a fresh
 * descriptor and cuts each file back to its durable size.
 */
#define _POSIX_C_SOURCE 200809L
#include "faultvfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>

struct fv_file {
    sqlite3_file  base;
    sqlite3_file *real;          /* the wrapped unix file, right after us */
    int           tracked;       /* index into paths, or -1 */
    int           pad_;
};

struct fv_path {
    char          name[512];
    sqlite3_int64 synced_size;
    int           used;
};

struct fv_undo {
    int            path;
    sqlite3_int64  off;
    int            len;
    unsigned char *old;
};

#define FV_PATHS 64

static sqlite3_vfs   fv_vfs;
static sqlite3_vfs  *real_vfs;
static struct fv_path paths[FV_PATHS];
static struct fv_undo *undo;
static size_t        nundo, capundo;
static enum fv_mode  mode;
static long          target, nwrites, nsyncs;
static int           fired, dead;

static int find_path(const char *name, int create)
{
    int free_slot = -1;
    for (int i = 0; i < FV_PATHS; i++) {
        if (paths[i].used && strcmp(paths[i].name, name) == 0)
            return i;
        if (!paths[i].used && free_slot < 0)
            free_slot = i;
    }
    if (!create || free_slot < 0 || strlen(name) >= sizeof paths[0].name)
        return -1;
    paths[free_slot].used = 1;
    paths[free_slot].synced_size = 0;
    strcpy(paths[free_slot].name, name);
    return free_slot;
}

static int path_has_undo(int path)
{
    for (size_t i = 0; i < nundo; i++)
        if (undo[i].path == path)
            return 1;
    return 0;
}

static void drop_undo(int path)
{
    size_t k = 0;
    for (size_t i = 0; i < nundo; i++) {
        if (undo[i].path == path)
            free(undo[i].old);
        else
            undo[k++] = undo[i];
    }
    nundo = k;
}

static void forget_all(void)
{
    for (size_t i = 0; i < nundo; i++)
        free(undo[i].old);
    free(undo);
    undo = NULL;
    nundo = capundo = 0;
    memset(paths, 0, sizeof paths);
}

/* Saves the current bytes of [off, off + amt) that lie below the file's
 * durable size. */
static int save_undo(struct fv_file *f, sqlite3_int64 off, sqlite3_int64 amt)
{
    sqlite3_int64 synced = paths[f->tracked].synced_size;
    if (off >= synced || amt <= 0)
        return SQLITE_OK;
    if (off + amt > synced)
        amt = synced - off;
    if (nundo == capundo) {
        size_t cap = capundo ? 2 * capundo : 64;
        struct fv_undo *p = realloc(undo, cap * sizeof *p);
        if (p == NULL)
            return SQLITE_IOERR_NOMEM;
        undo = p;
        capundo = cap;
    }
    unsigned char *old = malloc((size_t)amt);
    if (old == NULL)
        return SQLITE_IOERR_NOMEM;
    int rc = f->real->pMethods->xRead(f->real, old, (int)amt, off);
    if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ) {
        free(old);
        return rc;
    }
    undo[nundo].path = f->tracked;
    undo[nundo].off = off;
    undo[nundo].len = (int)amt;
    undo[nundo].old = old;
    nundo++;
    return SQLITE_OK;
}

void fv_power_cut(void)
{
    for (size_t i = nundo; i-- > 0;) {
        int fd = open(paths[undo[i].path].name, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            continue;                     /* deleted since: deletion is durable */
        ssize_t w = pwrite(fd, undo[i].old, (size_t)undo[i].len, (off_t)undo[i].off);
        (void)w;
        close(fd);
    }
    for (int i = 0; i < FV_PATHS; i++) {
        struct stat sb;
        if (!paths[i].used || stat(paths[i].name, &sb) != 0)
            continue;
        if (sb.st_size > paths[i].synced_size && truncate(paths[i].name,
                                                          (off_t)paths[i].synced_size) != 0)
            continue;
    }
    for (size_t i = 0; i < nundo; i++)
        free(undo[i].old);
    nundo = 0;
    dead = 1;
}

/* ---- I/O methods ---- */

static int fv_close(sqlite3_file *pf)
{
    struct fv_file *f = (struct fv_file *)pf;
    return f->real->pMethods->xClose(f->real);
}

static int fv_read(sqlite3_file *pf, void *buf, int amt, sqlite3_int64 off)
{
    struct fv_file *f = (struct fv_file *)pf;
    if (dead && f->tracked >= 0)
        return SQLITE_IOERR_READ;
    return f->real->pMethods->xRead(f->real, buf, amt, off);
}

static int fv_write(sqlite3_file *pf, const void *buf, int amt, sqlite3_int64 off)
{
    struct fv_file *f = (struct fv_file *)pf;
    if (f->tracked < 0)
        return f->real->pMethods->xWrite(f->real, buf, amt, off);
    if (dead)
        return SQLITE_IOERR_WRITE;
    long n = ++nwrites;
    if (mode == FV_FAIL_WRITE && n == target) {
        fired = 1;
        return SQLITE_IOERR_WRITE;
    }
    if (mode == FV_FULL && n >= target) {
        fired = 1;
        return SQLITE_FULL;
    }
    if (mode == FV_CUT_WRITE && n == target) {
        fired = 1;
        fv_power_cut();
        return SQLITE_IOERR_WRITE;
    }
    int rc = save_undo(f, off, amt);
    if (rc != SQLITE_OK)
        return rc;
    return f->real->pMethods->xWrite(f->real, buf, amt, off);
}

static int fv_truncate(sqlite3_file *pf, sqlite3_int64 size)
{
    struct fv_file *f = (struct fv_file *)pf;
    if (f->tracked < 0)
        return f->real->pMethods->xTruncate(f->real, size);
    if (dead)
        return SQLITE_IOERR_TRUNCATE;
    sqlite3_int64 cur = 0;
    int rc = f->real->pMethods->xFileSize(f->real, &cur);
    if (rc == SQLITE_OK && size < cur)
        rc = save_undo(f, size, cur - size);
    if (rc != SQLITE_OK)
        return rc;
    return f->real->pMethods->xTruncate(f->real, size);
}

static int fv_sync(sqlite3_file *pf, int flags)
{
    struct fv_file *f = (struct fv_file *)pf;
    if (f->tracked < 0)
        return f->real->pMethods->xSync(f->real, flags);
    if (dead)
        return SQLITE_IOERR_FSYNC;
    long n = ++nsyncs;
    if (mode == FV_FAIL_SYNC && n == target) {
        fired = 1;
        return SQLITE_IOERR_FSYNC;
    }
    if (mode == FV_CUT_SYNC && n == target) {
        fired = 1;
        fv_power_cut();
        return SQLITE_IOERR_FSYNC;
    }
    int rc = f->real->pMethods->xSync(f->real, flags);
    if (rc == SQLITE_OK) {
        sqlite3_int64 size = 0;
        drop_undo(f->tracked);
        if (f->real->pMethods->xFileSize(f->real, &size) == SQLITE_OK)
            paths[f->tracked].synced_size = size;
    }
    return rc;
}

static int fv_file_size(sqlite3_file *pf, sqlite3_int64 *size)
{
    struct fv_file *f = (struct fv_file *)pf;
    if (dead && f->tracked >= 0)
        return SQLITE_IOERR_FSTAT;
    return f->real->pMethods->xFileSize(f->real, size);
}

static int fv_lock(sqlite3_file *pf, int lock)
{
    struct fv_file *f = (struct fv_file *)pf;
    return f->real->pMethods->xLock(f->real, lock);
}

static int fv_unlock(sqlite3_file *pf, int lock)
{
    struct fv_file *f = (struct fv_file *)pf;
    return f->real->pMethods->xUnlock(f->real, lock);
}

static int fv_check_reserved(sqlite3_file *pf, int *out)
{
    struct fv_file *f = (struct fv_file *)pf;
    return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int fv_file_control(sqlite3_file *pf, int op, void *arg)
{
    struct fv_file *f = (struct fv_file *)pf;
    return f->real->pMethods->xFileControl(f->real, op, arg);
}

static int fv_sector_size(sqlite3_file *pf)
{
    struct fv_file *f = (struct fv_file *)pf;
    return f->real->pMethods->xSectorSize(f->real);
}

static int fv_device_characteristics(sqlite3_file *pf)
{
    struct fv_file *f = (struct fv_file *)pf;
    return f->real->pMethods->xDeviceCharacteristics(f->real);
}

static int fv_shm_map(sqlite3_file *pf, int pg, int pgsz, int extend, void volatile **pp)
{
    struct fv_file *f = (struct fv_file *)pf;
    return f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, pp);
}

static int fv_shm_lock(sqlite3_file *pf, int off, int n, int flags)
{
    struct fv_file *f = (struct fv_file *)pf;
    return f->real->pMethods->xShmLock(f->real, off, n, flags);
}

static void fv_shm_barrier(sqlite3_file *pf)
{
    struct fv_file *f = (struct fv_file *)pf;
    f->real->pMethods->xShmBarrier(f->real);
}

static int fv_shm_unmap(sqlite3_file *pf, int del)
{
    struct fv_file *f = (struct fv_file *)pf;
    return f->real->pMethods->xShmUnmap(f->real, del);
}

/* No memory-mapped pages: every read goes through fv_read. */
static int fv_fetch(sqlite3_file *pf, sqlite3_int64 off, int amt, void **pp)
{
    (void)pf;
    (void)off;
    (void)amt;
    *pp = NULL;
    return SQLITE_OK;
}

static int fv_unfetch(sqlite3_file *pf, sqlite3_int64 off, void *p)
{
    (void)pf;
    (void)off;
    (void)p;
    return SQLITE_OK;
}

static const sqlite3_io_methods fv_methods = {
    3, fv_close, fv_read, fv_write, fv_truncate, fv_sync, fv_file_size, fv_lock, fv_unlock,
    fv_check_reserved, fv_file_control, fv_sector_size, fv_device_characteristics,
    fv_shm_map, fv_shm_lock, fv_shm_barrier, fv_shm_unmap, fv_fetch, fv_unfetch
};

/* ---- VFS methods ---- */

static int fv_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *pf, int flags, int *out)
{
    struct fv_file *f = (struct fv_file *)pf;
    (void)vfs;
    f->base.pMethods = NULL;
    f->real = (sqlite3_file *)(f + 1);
    f->tracked = -1;
    int track = name != NULL &&
                (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_WAL));
    if (dead && track)
        return SQLITE_CANTOPEN;
    int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out);
    if (rc != SQLITE_OK)
        return rc;
    if (track) {
        f->tracked = find_path(name, 1);
        if (f->tracked >= 0 && !path_has_undo(f->tracked)) {
            sqlite3_int64 size = 0;
            if (f->real->pMethods->xFileSize(f->real, &size) == SQLITE_OK)
                paths[f->tracked].synced_size = size;
        }
    }
    f->base.pMethods = &fv_methods;
    return SQLITE_OK;
}

static int fv_delete(sqlite3_vfs *vfs, const char *name, int dirsync)
{
    (void)vfs;
    int p = find_path(name, 0);
    if (dead && p >= 0)
        return SQLITE_IOERR_DELETE;
    if (p >= 0) {
        drop_undo(p);
        paths[p].used = 0;
    }
    return real_vfs->xDelete(real_vfs, name, dirsync);
}

static int fv_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int fv_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static void *fv_dlopen(sqlite3_vfs *vfs, const char *name)
{
    (void)vfs;
    return real_vfs->xDlOpen(real_vfs, name);
}

static void fv_dlerror(sqlite3_vfs *vfs, int n, char *msg)
{
    (void)vfs;
    real_vfs->xDlError(real_vfs, n, msg);
}

static void (*fv_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
    (void)vfs;
    return real_vfs->xDlSym(real_vfs, h, sym);
}

static void fv_dlclose(sqlite3_vfs *vfs, void *h)
{
    (void)vfs;
    real_vfs->xDlClose(real_vfs, h);
}

static int fv_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return real_vfs->xRandomness(real_vfs, n, out);
}

static int fv_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return real_vfs->xSleep(real_vfs, us);
}

static int fv_current_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return real_vfs->xCurrentTime(real_vfs, out);
}

static int fv_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return real_vfs->xGetLastError(real_vfs, n, out);
}

static int fv_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void)vfs;
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

int fv_register(void)
{
    if (real_vfs != NULL)
        return 0;
    real_vfs = sqlite3_vfs_find(NULL);
    if (real_vfs == NULL || real_vfs->iVersion < 2)
        return -1;
    memset(&fv_vfs, 0, sizeof fv_vfs);
    fv_vfs.iVersion = 2;
    fv_vfs.szOsFile = (int)sizeof(struct fv_file) + real_vfs->szOsFile;
    fv_vfs.mxPathname = real_vfs->mxPathname;
    fv_vfs.zName = "faultvfs";
    fv_vfs.xOpen = fv_open;
    fv_vfs.xDelete = fv_delete;
    fv_vfs.xAccess = fv_access;
    fv_vfs.xFullPathname = fv_full_pathname;
    fv_vfs.xDlOpen = fv_dlopen;
    fv_vfs.xDlError = fv_dlerror;
    fv_vfs.xDlSym = fv_dlsym;
    fv_vfs.xDlClose = fv_dlclose;
    fv_vfs.xRandomness = fv_randomness;
    fv_vfs.xSleep = fv_sleep;
    fv_vfs.xCurrentTime = fv_current_time;
    fv_vfs.xGetLastError = fv_last_error;
    fv_vfs.xCurrentTimeInt64 = fv_current_time64;
    return sqlite3_vfs_register(&fv_vfs, 1) == SQLITE_OK ? 0 : -1;
}

void fv_arm(enum fv_mode m, long n)
{
    mode = m;
    target = n;
    nwrites = nsyncs = 0;
    fired = 0;
}

void fv_disarm(void)      { mode = FV_OFF; }
long fv_writes(void)      { return nwrites; }
long fv_syncs(void)       { return nsyncs; }
int  fv_fired(void)       { return fired; }
int  fv_dead(void)        { return dead; }

void fv_revive(void)
{
    forget_all();
    dead = 0;
    mode = FV_OFF;
}

const char *fv_mode_name(enum fv_mode m)
{
    static const char *const names[] = { "off", "fail-write", "disk-full", "fail-sync",
                                         "power-cut-at-write", "power-cut-at-sync" };
    return (unsigned)m < sizeof names / sizeof names[0] ? names[m] : "?";
}
