/* store.c - open the county database and keep its bookkeeping in place.
 *
 * Row versions are maintained by triggers generated here from sync_tables,
 * so every change -- a tablet's batch, a merge done inside the conflict
 * handler, an admin correction -- bumps the version of the rows it touched
 * in the scope they are now in, and leaves a tombstone in a scope they left.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "eldersync.h"
#include "ids.h"
#include "keyring.h"
#include "log.h"
#include "schema.h"
#include "rowval.h"
#include "scope.h"
#include "util.h"

void outcome_init(struct outcome *o)
{
    memset(o, 0, sizeof *o);
    o->entry = -1;
    o->expected_seq = -1;
}

int outcome_set(struct outcome *o, int status, const char *error, const char *fmt, ...)
{
    va_list ap;
    o->status = status;
    snprintf(o->error, sizeof o->error, "%s", error);
    va_start(ap, fmt);
    vsnprintf(o->detail, sizeof o->detail, fmt, ap);
    va_end(ap);
    return status;
}

int store_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return SYNC_OK;
    log_error("%s", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return SYNC_EIO;
}

int64_t store_counter(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, "SELECT v FROM sync_counter", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* SQL for a row's township and hall from the row alias (NEW or OLD). */
static void scope_exprs(const struct pol_table *t, const char *row, char *twp, size_t tn,
                        char *hall, size_t hn)
{
    const char *col = t->cols[t->scope_col];
    switch (t->scope) {
    case SCOPE_COUNTY:
        snprintf(twp, tn, "x''");
        snprintf(hall, hn, "x''");
        break;
    case SCOPE_TOWNSHIP:
        snprintf(twp, tn, "coalesce(%s.\"%s\", x'')", row, col);
        snprintf(hall, hn, "x''");
        break;
    default:
        snprintf(twp, tn, "coalesce((SELECT township_id FROM dining_halls WHERE id = %s.\"%s\"), x'')",
                 row, col);
        snprintf(hall, hn, "coalesce(%s.\"%s\", x'')", row, col);
        break;
    }
}

/* The row-version triggers.  A trigger stays in the database file, so a
 * definition that changes gets a new name and the old one is dropped:
 * rv_ (before row_partitions) became rv2_ for inserts and updates. */
static int install_triggers(sqlite3 *db, const struct pol_table *t)
{
    char twp[192], hall[96], sql[4096];
    scope_exprs(t, "NEW", twp, sizeof twp, hall, sizeof hall);
    int n = snprintf(sql, sizeof sql,
        "DROP TRIGGER IF EXISTS rv_%1$s_ins;"
        "DROP TRIGGER IF EXISTS rv_%1$s_upd;"
        "CREATE TRIGGER IF NOT EXISTS rv2_%1$s_ins AFTER INSERT ON \"%1$s\" WHEN es_track() BEGIN"
        " INSERT INTO row_versions (tbl, pk, township_id, hall_id, vseq, deleted)"
        " VALUES ('%1$s', NEW.id, %2$s, %3$s, es_vseq(), 0)"
        " ON CONFLICT (tbl, pk, township_id, hall_id) DO UPDATE SET vseq = excluded.vseq, deleted = 0;"
        " INSERT OR IGNORE INTO row_partitions VALUES (%2$s, %3$s);"
        " END;"
        "CREATE TRIGGER IF NOT EXISTS rv2_%1$s_upd AFTER UPDATE ON \"%1$s\" WHEN es_track() BEGIN"
        " UPDATE row_versions SET deleted = 1, vseq = es_vseq()"
        "  WHERE tbl = '%1$s' AND pk = OLD.id AND deleted = 0"
        "  AND NOT (township_id = %2$s AND hall_id = %3$s);"
        " INSERT INTO row_versions (tbl, pk, township_id, hall_id, vseq, deleted)"
        " VALUES ('%1$s', NEW.id, %2$s, %3$s, es_vseq(), 0)"
        " ON CONFLICT (tbl, pk, township_id, hall_id) DO UPDATE SET vseq = excluded.vseq, deleted = 0;"
        " INSERT OR IGNORE INTO row_partitions VALUES (%2$s, %3$s);"
        " END;"
        "CREATE TRIGGER IF NOT EXISTS rv_%1$s_del AFTER DELETE ON \"%1$s\" WHEN es_track() BEGIN"
        " UPDATE row_versions SET deleted = 1, vseq = es_vseq() WHERE tbl = '%1$s' AND pk = OLD.id;"
        " END;",
        t->name, twp, hall);
    if (n < 0 || (size_t)n >= sizeof sql)
        return SYNC_ERROR;                /* a cut trigger would version nothing */
    int rc = store_exec(db, sql);
    if (rc != SYNC_OK || t->state_col < 0)
        return rc;
    /* A state column only moves forward, whoever writes it. */
    const char *col = t->cols[t->state_col];
    snprintf(sql, sizeof sql,
        "CREATE TRIGGER IF NOT EXISTS state_%1$s_forward BEFORE UPDATE OF \"%2$s\" ON \"%1$s\""
        " WHEN NEW.\"%2$s\" IS NOT OLD.\"%2$s\" BEGIN"
        " SELECT RAISE(ABORT, 'state regression') WHERE"
        "  coalesce((SELECT rank FROM sync_states WHERE tbl = '%1$s' AND col = '%2$s'"
        "            AND value = NEW.\"%2$s\"), -1) <="
        "  coalesce((SELECT rank FROM sync_states WHERE tbl = '%1$s' AND col = '%2$s'"
        "            AND value = OLD.\"%2$s\"), -1);"
        " END;", t->name, col);
    return store_exec(db, sql);
}

/* es_vseq(): the next version number.  The counter lives in memory during
 * a transaction and in sync_counter between them (store_begin/store_end),
 * so a row change costs no counter update. */
static void fn_vseq(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    struct server *srv = sqlite3_user_data(ctx);
    (void)argc;
    (void)argv;
    if (!srv->txg.active) {
        sqlite3_result_error(ctx, "synced tables are written only inside store_begin()", -1);
        return;
    }
    sqlite3_result_int64(ctx, ++srv->vseq);
}

static void fn_track(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    struct server *srv = sqlite3_user_data(ctx);
    (void)argc;
    (void)argv;
    sqlite3_result_int(ctx, srv->track);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The key file holds kx_pk | kx_sk | sign_pk | sign_sk | master | blind
 * (224 bytes), mode 0600. */
static int load_keys(struct server *srv, char *err, size_t errlen)
{
    struct server_keys *k = &srv->keys;
    uint8_t raw[224];
    const char *path = srv->cfg.key_file;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, raw, sizeof raw);
        close(fd);
        if (n != (ssize_t)sizeof raw) {
            snprintf(err, errlen, "key file %s is damaged (%zd bytes)", path, n);
            return SYNC_EIO;
        }
    } else if (errno == ENOENT) {
        crypto_kx_keypair(raw, raw + 32);
        crypto_sign_keypair(raw + 64, raw + 96);
        randombytes_buf(raw + 160, 64);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || write_all(fd, raw, sizeof raw) != 0 || fsync(fd) != 0) {
            snprintf(err, errlen, "cannot write key file %s: %s", path, strerror(errno));
            if (fd >= 0)
                close(fd);
            sodium_memzero(raw, sizeof raw);
            return SYNC_EIO;
        }
        close(fd);
        log_info("created server key file");
    } else {
        snprintf(err, errlen, "cannot read key file %s: %s", path, strerror(errno));
        return SYNC_EIO;
    }
    memcpy(k->kx_pk, raw, 32);
    memcpy(k->kx_sk, raw + 32, 32);
    memcpy(k->sign_pk, raw + 64, 32);
    memcpy(k->sign_sk, raw + 96, 64);
    memcpy(k->master, raw + 160, 32);
    memcpy(k->blind, raw + 192, 32);
    sodium_memzero(raw, sizeof raw);
    return SYNC_OK;
}

/* Names of the tables that exist here but are not synced. */
static int load_server_tables(struct server *srv, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(srv->db, "SELECT name FROM sqlite_schema WHERE type = 'table' "
                           "ORDER BY name", -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot list tables: %s", sqlite3_errmsg(srv->db));
        return SYNC_EIO;
    }
    srv->nserver_tables = 0;
    while (sqlite3_step(st) == SQLITE_ROW && srv->nserver_tables < 32) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (name && policy_table(srv->pol, name) == NULL)
            snprintf(srv->server_tables[srv->nserver_tables++], sizeof srv->server_tables[0],
                     "%s", name);
    }
    sqlite3_finalize(st);
    return SYNC_OK;
}

/* What a pull reads (pull.c, scan()): a device's partitions (township,
 * hall) of row_versions, each in vseq order.  The index covers the scan (an
 * entry of a WITHOUT ROWID table's index holds the primary key too, and
 * deleted is here), so a pull never looks a version up in the table, and a
 * hall's tablet never walks the other halls' meals.  row_partitions lists
 * the partitions there are, for devices that read a whole township; every
 * writer of row_versions adds to it (the row-version triggers, and
 * store_touch once per partition per changeset).  The
 * server's own (not part of the schema version tablets share), and run on
 * every open, so databases made before it get it too; it replaced the
 * index row_versions_pull (township_id, vseq). */
static const char pull_sql[] =
    "DROP INDEX IF EXISTS row_versions_pull;"
    "CREATE INDEX IF NOT EXISTS row_versions_hall ON row_versions "
    "  (township_id, hall_id, vseq, deleted);"
    "CREATE TABLE IF NOT EXISTS row_partitions ("
    "  township_id BLOB NOT NULL, hall_id BLOB NOT NULL,"
    "  PRIMARY KEY (township_id, hall_id)) WITHOUT ROWID;"
    "INSERT INTO row_partitions SELECT DISTINCT township_id, hall_id FROM row_versions"
    "  WHERE NOT EXISTS (SELECT 1 FROM row_partitions);";

void store_sqlite_config(void)
{
    /* Memory statistics (nothing here reads them) take a global mutex on
     * every allocation, shared by all worker threads: off, the push path
     * runs 11 % fewer instructions (docs/PERFORMANCE.md). */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    /* Each batch of a group commit runs in a savepoint, whose sub-journal
     * keeps the original of every page the batch changes.  SQLite spills
     * it to a temporary file past 64 KiB, which a 50-row push passed: two
     * pwrite() calls per page, 85 % of the server's writes.  Up to 16 MiB
     * (the write connection's only) it now stays in memory. */
    sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, 16 << 20);
}

int store_open(struct server *srv, char *err, size_t errlen)
{
    const char *path = srv->cfg.db;
    if (!srv->group_ready) {
        pthread_mutex_init(&srv->group_lock, NULL);
        pthread_cond_init(&srv->group_done, NULL);
        srv->group_head = srv->group_tail = NULL;
        srv->group_leader = 0;
        pthread_cond_init(&srv->reader_free, NULL);
        srv->free_readers = NULL;
        srv->nreaders = 0;
        srv->group_ready = 1;
    }
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        return SYNC_ERROR;
    }
    if (sqlite3_open_v2(path, &srv->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                        SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path,
                 srv->db ? sqlite3_errmsg(srv->db) : "out of memory");
        store_close(srv);
        return SYNC_EIO;
    }
    sqlite3_busy_timeout(srv->db, 10000);
    txguard_install(srv->db, &srv->txg);     /* no commit but store_end's (txguard.h) */
    /* WAL + synchronous=FULL: an acknowledged batch survives power loss. */
    int rc = store_exec(srv->db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                                 "PRAGMA foreign_keys = ON; PRAGMA cache_size = -65536");
    srv->track = 1;
    if (rc == SYNC_OK && (ids_register_sql(srv->db) != SYNC_OK ||
        sqlite3_create_function(srv->db, "es_vseq", 0, SQLITE_UTF8, srv, fn_vseq, NULL,
                                NULL) != SQLITE_OK ||
        sqlite3_create_function(srv->db, "es_track", 0, SQLITE_UTF8, srv, fn_track, NULL,
                                NULL) != SQLITE_OK))
        rc = SYNC_ERROR;
    if (rc != SYNC_OK)
        snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(srv->db));
    if (rc == SYNC_OK)
        rc = schema_apply(srv->db, SCHEMA_SERVER, err, errlen);
    if (rc == SYNC_OK && store_exec(srv->db, pull_sql) != SYNC_OK) {
        snprintf(err, errlen, "cannot index row versions: %s", sqlite3_errmsg(srv->db));
        rc = SYNC_EIO;
    }
    if (rc == SYNC_OK)
        rc = policy_load(srv->db, &srv->pol, err, errlen);
    for (int i = 0; rc == SYNC_OK && i < srv->pol->ntables; i++)
        if ((rc = install_triggers(srv->db, &srv->pol->tables[i])) != SYNC_OK)
            snprintf(err, errlen, "cannot install triggers: %s", sqlite3_errmsg(srv->db));
    /* After the schema is in place, so the statement never needs
     * preparing again. */
    if (rc == SYNC_OK && sqlite3_prepare_v3(srv->db, "ROLLBACK", -1, SQLITE_PREPARE_PERSISTENT,
                                            &srv->rollback, NULL) != SQLITE_OK)
        rc = SYNC_ERROR;
    if (rc == SYNC_OK)
        rc = load_server_tables(srv, err, errlen);
    if (rc == SYNC_OK)
        rc = load_keys(srv, err, errlen);
    if (rc == SYNC_OK && keyring_register_sql(srv) != SYNC_OK) {
        snprintf(err, errlen, "cannot register the personal-data functions");
        rc = SYNC_ERROR;
    }
    if (rc == SYNC_OK && keyring_ensure(srv) != SYNC_OK) {
        snprintf(err, errlen, "cannot create the first data key");
        rc = SYNC_EIO;
    }
    if (rc != SYNC_OK)
        store_close(srv);
    return rc;
}

sqlite3_stmt *store_stmt(struct server *srv, const char *sql)
{
    for (int i = 0; i < srv->nstmts; i++) {
        if (strcmp(srv->stmts[i].sql, sql) == 0) {
            sqlite3_reset(srv->stmts[i].st);
            sqlite3_clear_bindings(srv->stmts[i].st);
            return srv->stmts[i].st;
        }
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(srv->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        log_error("cannot prepare a statement: %s", sqlite3_errmsg(srv->db));
        return NULL;
    }
    if (srv->nstmts == STORE_STMTS) {        /* full: drop the oldest */
        sqlite3_finalize(srv->stmts[0].st);
        es_free(srv->stmts[0].sql);
        memmove(&srv->stmts[0], &srv->stmts[1], sizeof srv->stmts[0] * (STORE_STMTS - 1));
        srv->nstmts--;
    }
    char *copy = es_strdup(sql);
    if (copy == NULL) {
        sqlite3_finalize(st);
        return NULL;
    }
    srv->stmts[srv->nstmts].sql = copy;
    srv->stmts[srv->nstmts].st = st;
    srv->nstmts++;
    return st;
}

void store_close(struct server *srv)
{
    for (int i = 0; i < srv->nstmts; i++) {
        sqlite3_finalize(srv->stmts[i].st);
        es_free(srv->stmts[i].sql);
    }
    srv->nstmts = 0;
    sqlite3_finalize(srv->rollback);
    srv->rollback = NULL;
    sodium_memzero(srv->keycache, sizeof srv->keycache);
    srv->nkeycache = 0;
    sqlite3_close_v2(srv->db);
    srv->db = NULL;
    policy_free(srv->pol);
    srv->pol = NULL;
    sodium_memzero(&srv->keys, sizeof srv->keys);
    for (int i = 0; i < srv->nreaders; i++) {
        struct store_reader *r = &srv->readers[i];
        for (int k = 0; k < r->nstmts; k++) {
            sqlite3_finalize(r->stmts[k].st);
            es_free(r->stmts[k].sql);
        }
        r->nstmts = 0;
        sqlite3_close_v2(r->db);
        r->db = NULL;
    }
    srv->nreaders = 0;
    srv->free_readers = NULL;
    if (srv->group_ready) {
        pthread_cond_destroy(&srv->reader_free);
        pthread_cond_destroy(&srv->group_done);
        pthread_mutex_destroy(&srv->group_lock);
        srv->group_ready = 0;
    }
}

/* Runs a cached statement without parameters or result rows. */
int store_run(struct server *srv, const char *sql)
{
    sqlite3_stmt *st = store_stmt(srv, sql);
    if (st == NULL)
        return SYNC_EIO;
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SYNC_OK : SYNC_EIO;
}

int store_begin(struct server *srv)
{
    /* A rollback that failed for want of memory left a transaction open;
     * end it now, or no write could ever start again. */
    if (!sqlite3_get_autocommit(srv->db)) {
        log_warn("rolling back a transaction left open by an earlier failure");
        store_rollback(srv);
    }
    if (store_run(srv, "BEGIN IMMEDIATE") != SYNC_OK)
        return SYNC_EBUSY;
    /* A counter that cannot be read must not restart at 0: versions would
     * go backwards and tablets past them would never pull the rows. */
    srv->vseq = store_counter(srv->db);
    if (srv->vseq < 0) {
        store_rollback(srv);
        return SYNC_EIO;
    }
    txguard_begin(&srv->txg);
    srv->hall_memo_n = -1;
    return SYNC_OK;
}

int store_end(struct server *srv, int status)
{
    srv->txg.active = 0;
    srv->track = 1;
    if (status == SYNC_OK && txguard_lost(&srv->txg, srv->db)) {
        log_error("the transaction was rolled back under us");
        status = SYNC_EIO;               /* SQLite gave up on it after an error */
    }
    if (status == SYNC_OK) {
        sqlite3_stmt *st = store_stmt(srv, "UPDATE sync_counter SET v = ?1");
        if (st == NULL)
            status = SYNC_EIO;
        else {
            sqlite3_bind_int64(st, 1, srv->vseq);
            if (sqlite3_step(st) != SQLITE_DONE)
                status = SYNC_EIO;
            sqlite3_reset(st);
        }
        if (status == SYNC_OK && store_run(srv, "COMMIT") == SYNC_OK)
            return SYNC_OK;
        if (status == SYNC_OK) {
            log_error("commit failed: %s", sqlite3_errmsg(srv->db));
            status = SYNC_EIO;
        }
    }
    store_rollback(srv);
    return status;
}

/* ---- read connections ------------------------------------------------------ */

static int reader_open(struct server *srv, struct store_reader *r)
{
    memset(r, 0, sizeof *r);
    if (sqlite3_open_v2(srv->cfg.db, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        sqlite3_close_v2(r->db);
        r->db = NULL;
        return SYNC_EIO;
    }
    sqlite3_busy_timeout(r->db, 10000);
    /* It only reads (query_only guards that), a modest cache bounds memory. */
    if (store_exec(r->db, "PRAGMA query_only = ON; PRAGMA cache_size = -2048") != SYNC_OK) {
        sqlite3_close_v2(r->db);
        r->db = NULL;
        return SYNC_EIO;
    }
    return SYNC_OK;
}

struct store_reader *store_reader_get(struct server *srv)
{
    struct store_reader *r = NULL;
    pthread_mutex_lock(&srv->group_lock);
    while (r == NULL) {
        if (srv->free_readers) {
            r = srv->free_readers;
            srv->free_readers = r->next;
        } else if (srv->nreaders < STORE_READERS) {
            r = &srv->readers[srv->nreaders];
            if (reader_open(srv, r) != SYNC_OK) {
                log_error("cannot open a read connection to %s", srv->cfg.db);
                r = NULL;
                break;
            }
            srv->nreaders++;
        } else {
            pthread_cond_wait(&srv->reader_free, &srv->group_lock);
        }
    }
    pthread_mutex_unlock(&srv->group_lock);
    return r;
}

void store_reader_put(struct server *srv, struct store_reader *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&srv->group_lock);
    r->next = srv->free_readers;
    srv->free_readers = r;
    pthread_cond_signal(&srv->reader_free);
    pthread_mutex_unlock(&srv->group_lock);
}

sqlite3_stmt *store_reader_stmt(struct store_reader *r, const char *sql)
{
    for (int i = 0; i < r->nstmts; i++) {
        if (strcmp(r->stmts[i].sql, sql) == 0) {
            sqlite3_reset(r->stmts[i].st);
            sqlite3_clear_bindings(r->stmts[i].st);
            return r->stmts[i].st;
        }
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(r->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        log_error("cannot prepare a statement: %s", sqlite3_errmsg(r->db));
        return NULL;
    }
    if (r->nstmts == READER_STMTS) {         /* full: drop the oldest */
        sqlite3_finalize(r->stmts[0].st);
        es_free(r->stmts[0].sql);
        memmove(&r->stmts[0], &r->stmts[1], sizeof r->stmts[0] * (READER_STMTS - 1));
        r->nstmts--;
    }
    char *copy = es_strdup(sql);
    if (copy == NULL) {
        sqlite3_finalize(st);
        return NULL;
    }
    r->stmts[r->nstmts].sql = copy;
    r->stmts[r->nstmts].st = st;
    r->nstmts++;
    return st;
}

/* ---- group commit ---------------------------------------------------------- */

/* One round: up to group_commit_max jobs from the queue in one transaction,
 * each in its own savepoint, then one COMMIT.  Called and returns with
 * group_lock held; holds srv->lock (not group_lock) while it works. */
static void group_round(struct server *srv)
{
    struct store_job *list = srv->group_head, *last = list, *j;
    int max = srv->cfg.group_commit_max > 0 ? srv->cfg.group_commit_max : 1;
    for (int n = 1; n < max && last->next; n++)
        last = last->next;
    srv->group_head = last->next;
    if (srv->group_head == NULL)
        srv->group_tail = NULL;
    last->next = NULL;
    pthread_mutex_unlock(&srv->group_lock);

    pthread_mutex_lock(&srv->lock);
    int rc = store_begin(srv);
    for (j = list; j; j = j->next) {
        if (rc != SYNC_OK) {
            j->rc = rc;
            continue;
        }
        int64_t vseq = srv->vseq;
        if (store_run(srv, "SAVEPOINT grp") != SYNC_OK) {
            j->rc = SYNC_EIO;
            continue;
        }
        j->rc = j->run(srv, j->arg);
        srv->track = 1;
        if (j->rc != SYNC_OK) {
            store_run(srv, "ROLLBACK TO grp");
            srv->vseq = vseq;                 /* its versions were never used */
        }
        store_run(srv, "RELEASE grp");
        if (sqlite3_get_autocommit(srv->db)) {
            /* SQLite rolled the whole transaction back (I/O error, out of
             * memory): nothing of this round survives. */
            srv->txg.active = 0;
            rc = SYNC_EIO;
            for (struct store_job *k = list; k != j->next; k = k->next)
                if (k->rc == SYNC_OK)
                    k->rc = SYNC_EIO;
            continue;
        }
        if (j->rc != SYNC_OK && j->refused)
            j->refused(srv, j->arg, j->rc);
    }
    if (rc == SYNC_OK && store_end(srv, SYNC_OK) != SYNC_OK)
        for (j = list; j; j = j->next)
            if (j->rc == SYNC_OK)
                j->rc = SYNC_EIO;
    pthread_mutex_unlock(&srv->lock);

    pthread_mutex_lock(&srv->group_lock);
    while (list) {
        j = list;
        list = list->next;
        if (j->detached)
            es_free(j);
        else
            j->done = 1;
    }
    pthread_cond_broadcast(&srv->group_done);
}

static void group_enqueue(struct server *srv, struct store_job *job)
{
    job->next = NULL;
    job->done = 0;
    job->rc = SYNC_EIO;
    if (srv->group_tail)
        srv->group_tail->next = job;
    else
        srv->group_head = job;
    srv->group_tail = job;
}

int store_group(struct server *srv, struct store_job *job)
{
    job->detached = 0;
    pthread_mutex_lock(&srv->group_lock);
    group_enqueue(srv, job);
    while (!job->done) {
        if (!srv->group_leader) {
            /* Lead until our own job is through, then hand over. */
            srv->group_leader = 1;
            while (!job->done)
                group_round(srv);
            srv->group_leader = 0;
            pthread_cond_broadcast(&srv->group_done);
            break;
        }
        pthread_cond_wait(&srv->group_done, &srv->group_lock);
    }
    pthread_mutex_unlock(&srv->group_lock);
    return job->rc;
}

void store_group_detached(struct server *srv, struct store_job *job)
{
    pthread_mutex_lock(&srv->group_lock);
    group_enqueue(srv, job);
    if (srv->group_leader) {
        job->detached = 1;                 /* the running rounds take it */
    } else {
        job->detached = 0;
        srv->group_leader = 1;
        while (!job->done)
            group_round(srv);
        srv->group_leader = 0;
        pthread_cond_broadcast(&srv->group_done);
        es_free(job);
    }
    pthread_mutex_unlock(&srv->group_lock);
}

void store_rollback(struct server *srv)
{
    if (sqlite3_get_autocommit(srv->db))
        return;
    if (srv->rollback) {
        sqlite3_step(srv->rollback);
        sqlite3_reset(srv->rollback);
    }
    if (!sqlite3_get_autocommit(srv->db))
        sqlite3_exec(srv->db, "ROLLBACK", NULL, NULL, NULL);
}

/* (township, hall) of a row of t whose scope column holds v. */
static void row_scope(struct server *srv, const struct pol_table *t, const struct cs_value *v,
                      uint8_t twp[16], int *ntwp, uint8_t hall[16], int *nhall)
{
    if (t->scope == SCOPE_HALL && v->type == CS_BLOB && v->n == 16 && srv->hall_memo_n >= 0 &&
        memcmp(v->p, srv->hall_memo, 16) == 0) {
        *ntwp = srv->hall_memo_n;
        memcpy(twp, srv->hall_memo_twp, 16);
    } else {
        *ntwp = scope_township(srv, t, v, twp);
        if (t->scope == SCOPE_HALL && v->type == CS_BLOB && v->n == 16 && *ntwp >= 0) {
            memcpy(srv->hall_memo, v->p, 16);
            memcpy(srv->hall_memo_twp, twp, 16);
            srv->hall_memo_n = *ntwp;
        }
    }
    if (*ntwp < 0)
        *ntwp = 0;
    *nhall = 0;
    if (t->scope == SCOPE_HALL && v->type == CS_BLOB && v->n == 16) {
        memcpy(hall, v->p, 16);
        *nhall = 16;
    }
}

/* One row_versions statement: ?1 table, ?2 pk, ?3 township, ?4 hall,
 * ?5 a new version number (a statement may leave ?3 and ?4 unused). */
static int version_stmt(struct server *srv, const char *sql, const struct pol_table *t,
                        const struct cs_value *pk, const uint8_t *twp, int ntwp,
                        const uint8_t *hall, int nhall)
{
    sqlite3_stmt *st = store_stmt(srv, sql);
    if (st == NULL)
        return SYNC_EIO;
    sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
    rowval_bind(st, 2, pk);
    sqlite3_bind_blob(st, 3, twp, ntwp, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, hall, nhall, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, ++srv->vseq);
    int rc = sqlite3_step(st) == SQLITE_DONE ? SYNC_OK : SYNC_EIO;
    sqlite3_reset(st);
    return rc;
}

int store_touch(struct server *srv, const struct pol_table *t, const struct cs_value *pk,
                const struct cs_value *scope, struct store_part *part)
{
    char sql[160];
    uint8_t buf[16], twp[16], hall[16];
    int ntwp = 0, nhall = 0, exists = 1, fresh = scope != NULL;
    struct cs_value cur;
    if (scope == NULL) {
        snprintf(sql, sizeof sql, "SELECT \"%s\" FROM \"%s\" WHERE id = ?1",
                 t->cols[t->scope_col], t->name);
        sqlite3_stmt *st = store_stmt(srv, sql);
        if (st == NULL)
            return SYNC_EIO;
        rowval_bind(st, 1, pk);
        exists = sqlite3_step(st) == SQLITE_ROW;
        if (exists) {
            rowval_column(&cur, st, 0);
            if (cur.type == CS_BLOB && cur.n == 16) {
                memcpy(buf, cur.p, 16);
                cur.p = buf;
            } else {
                cur.type = CS_NULL;
            }
        }
        sqlite3_reset(st);
        scope = &cur;
    }
    if (!exists)                      /* gone: a tombstone in every scope */
        return version_stmt(srv, "UPDATE row_versions SET deleted = 1, vseq = ?5 "
                                 "WHERE tbl = ?1 AND pk = ?2 AND deleted = 0",
                            t, pk, twp, 0, hall, 0);
    row_scope(srv, t, scope, twp, &ntwp, hall, &nhall);
    if (!fresh && version_stmt(srv, "UPDATE row_versions SET deleted = 1, vseq = ?5 WHERE tbl = ?1 "
                               "AND pk = ?2 AND deleted = 0 AND NOT (township_id = ?3 AND "
                               "hall_id = ?4)", t, pk, twp, ntwp, hall, nhall) != SYNC_OK)
        return SYNC_EIO;
    if (version_stmt(srv, "INSERT INTO row_versions (tbl, pk, township_id, hall_id, vseq, "
                     "deleted) VALUES (?1, ?2, ?3, ?4, ?5, 0) ON CONFLICT (tbl, pk, "
                     "township_id, hall_id) DO UPDATE SET vseq = excluded.vseq, deleted = 0",
                     t, pk, twp, ntwp, hall, nhall) != SYNC_OK)
        return SYNC_EIO;
    if (part->known && part->ntwp == ntwp && part->nhall == nhall &&
        memcmp(part->twp, twp, (size_t)ntwp) == 0 && memcmp(part->hall, hall, (size_t)nhall) == 0)
        return SYNC_OK;
    sqlite3_stmt *st = store_stmt(srv, "INSERT OR IGNORE INTO row_partitions VALUES (?1, ?2)");
    if (st == NULL)
        return SYNC_EIO;
    sqlite3_bind_blob(st, 1, twp, ntwp, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, hall, nhall, SQLITE_STATIC);
    int rc = sqlite3_step(st) == SQLITE_DONE ? SYNC_OK : SYNC_EIO;
    sqlite3_reset(st);
    if (rc != SYNC_OK)
        return rc;
    memcpy(part->twp, twp, (size_t)ntwp);
    memcpy(part->hall, hall, (size_t)nhall);
    part->ntwp = ntwp;
    part->nhall = nhall;
    part->known = 1;
    return SYNC_OK;
}
