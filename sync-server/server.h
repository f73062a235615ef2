/* server.h - the state one county's server holds: configuration, the
 * database connection, the sync declarations and the server's keys.
 *
 * No globals: one process could serve several county files, each with its
 * own struct server.
 */
#ifndef SRV_SERVER_H
#define SRV_SERVER_H

#include <pthread.h>
#include <stdint.h>
#include "config.h"
#include "policy.h"
#include "sqlite.h"
#include "pvsql.h"
#include "txguard.h"

struct server_keys {
    uint8_t kx_pk[32], kx_sk[32];
    uint8_t sign_pk[32], sign_sk[64];
    uint8_t master[32];      /* wraps the data keys in the keyring table */
    uint8_t blind[32];       /* the county's blind-index key (key id 0) */
};

#define STORE_STMTS 128
#define STORE_READERS 4      /* read-only connections for pulls and lookups */
#define READER_STMTS 48

/* A read connection (store.c): WAL lets it read while the writer commits. */
struct store_reader {
    sqlite3             *db;
    struct {
        char         *sql;
        sqlite3_stmt *st;
    } stmts[READER_STMTS];
    int                  nstmts;
    struct store_reader *next;    /* in the free list */
};

struct server {
    struct config       cfg;
    sqlite3            *db;      /* guarded by lock: writes are serial anyway */
    struct {                     /* prepared statements, by SQL text */
        char         *sql;
        sqlite3_stmt *st;
    } stmts[STORE_STMTS];
    int                 nstmts;
    char                server_tables[32][48];   /* the server's own tables */
    int                 nserver_tables;
    int64_t             vseq;     /* last version number handed out */
    struct txguard      txg;      /* store_begin .. store_end (txguard.h) */
    sqlite3_stmt       *rollback; /* "ROLLBACK", prepared at open: works without memory */
    int                 track;    /* 0 while push.c writes versions itself */
    pthread_mutex_t     lock;
    struct policy      *pol;
    struct server_keys  keys;
    struct mg_context  *mg;
    struct pv_keys      pv;           /* es_enc / es_dec on this connection */
    pthread_t           resealer;     /* re-seals under the newest key */
    int                 resealer_on;
    volatile int        stopping;
    struct { int64_t id; uint8_t key[32]; } keycache[8];
    int                 nkeycache;
    /* Group commit (store.c): writes waiting to share one transaction. */
    pthread_mutex_t     group_lock;
    pthread_cond_t      group_done;
    struct store_job   *group_head, *group_tail;
    int                 group_leader;     /* a thread is running rounds */
    int                 group_ready;      /* lock and cond initialised */
    /* Read connections, opened on first use (store_reader_get). */
    struct store_reader  readers[STORE_READERS];
    struct store_reader *free_readers;
    int                  nreaders;
    pthread_cond_t       reader_free;
    /* store_touch's last hall -> township lookup, valid for one transaction
     * (a batch of meals names one hall). */
    uint8_t             hall_memo[16], hall_memo_twp[16];
    int                 hall_memo_n;      /* township bytes; -1: empty */
};

/* A device as the server knows it. */
struct device {
    uint8_t  id[16];
    unsigned role;           /* ROLE_* bit */
    uint8_t  township[16];
    uint8_t  hall[16];
    int      has_hall;
    int      revoked;
    int64_t  last_batch_seq;
    uint8_t  kx_pk[32];
    uint8_t  sign_pk[32];
};

/* The outcome of a request, free of HTTP: status is a SYNC_* code; error is
 * a stable machine-readable name, detail a sentence for a person.  entry is
 * the tablet's outbox entry that caused a refusal (-1: none). */
struct outcome {
    int     status;
    char    error[40];
    char    detail[256];
    int64_t entry;
    int64_t expected_seq;    /* for sequence conflicts, else -1 */
};

void outcome_init(struct outcome *o);
/* Sets status, error and detail; returns status. */
int  outcome_set(struct outcome *o, int status, const char *error, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
