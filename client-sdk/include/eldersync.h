/* eldersync.h - the one public header of libeldersync, the tablet library.
 *
 * A tablet keeps its own SQLite database.  Every local write goes through
 * sync_exec(), which records it with the session extension and stores the
 * changeset in the outbox in the same transaction.  sync_run() pushes the
 * outbox to the county server and pulls what this tablet may see.
 *
 * Conventions: functions return SYNC_OK (0) or a negative SYNC_E* code; the
 * human-readable detail of the last failure is sync_client_errmsg().  Memory
 * the library hands out is released with sync_free().  One thread per client
 * handle at a time.
 */
#ifndef ELDERSYNC_H
#define ELDERSYNC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum sync_status {
    SYNC_OK          = 0,
    SYNC_ERROR       = -1,  /* unexpected internal failure */
    SYNC_ENOMEM      = -2,
    SYNC_EIO         = -3,  /* local storage failed */
    SYNC_EPROTO      = -4,  /* malformed data from the peer */
    SYNC_ECRYPTO     = -5,  /* authentication failed; no detail by design */
    SYNC_ENET        = -6,  /* server unreachable or connection cut */
    SYNC_EAUTH       = -7,  /* device unknown or revoked (HTTP 401) */
    SYNC_EFORBIDDEN  = -8,  /* write refused by authorisation (HTTP 403) */
    SYNC_ECONFLICT   = -9,  /* batch sequence out of order (HTTP 409) */
    SYNC_EINVAL      = -10, /* bad argument or SQL */
    SYNC_ETOOBIG     = -11, /* over a size limit (HTTP 413) */
    SYNC_ESERVER     = -12, /* server-side failure (HTTP 5xx) */
    SYNC_ENOTENROLLED= -13, /* database has no device identity yet */
    SYNC_EBUSY       = -14, /* rate-limited or database locked; retry later */
    SYNC_ESCHEMA     = -15, /* unknown table or column layout */
    SYNC_ENOTFOUND   = -16,
    SYNC_ELOCKED     = -17  /* keys locked: unlock with the caregiver's PIN */
};

/* A short English name for a status code; never NULL, static storage. */
const char *sync_strerror(int status);

/* Releases memory the library handed out.  NULL is a no-op. */
void sync_free(void *p);

struct sync_client;                                       /* opaque */

/*
 * sync_client_open - open (creating if needed) a tablet database.
 *
 * Creates the schema on a new file and migrates an older one.  On success
 * *out is a handle to release with sync_client_close(); on failure *out is
 * NULL and the status says why (SYNC_EIO, SYNC_ESCHEMA for a file newer
 * than this library).  errbuf (may be NULL) receives a message.
 */
int  sync_client_open(struct sync_client **out, const char *db_path,
                      char *errbuf, size_t errlen);
void sync_client_close(struct sync_client *c);            /* NULL: no-op */

/* The message for the last failure on c; valid until the next call on c. */
const char *sync_client_errmsg(const struct sync_client *c);

/*
 * sync_enroll - register this tablet with the server using a one-time code.
 *
 * Generates the device's key pairs, sends the public halves with the code
 * and stores the identity, role and scope the server assigns.  Fails with
 * SYNC_EINVAL if the database is already enrolled, SYNC_EAUTH if the code
 * is unknown, used or expired, SYNC_ENET if the server is unreachable.
 * pin (at least 4 characters) locks the device keys from now on.  Set the
 * environment variable ELDERSYNC_KDF=light only in tests: it makes the PIN
 * cheap to guess.
 */
int  sync_enroll(struct sync_client *c, const char *server_url, const char *code,
                 const char *pin);

/*
 * sync_unlock - open the tablet's keys with the caregiver's PIN.
 *
 * The device keys (and through them the county's data keys) are kept
 * wrapped by a key derived from the PIN with Argon2id, so a stolen tablet
 * that is switched off reveals nothing.  Until unlocked, exec, query and
 * sync fail with SYNC_ELOCKED.  A wrong PIN gives SYNC_EAUTH with the
 * attempts left; after the county's limit of wrong PINs in a row the keys
 * are destroyed (the tablet must be enrolled again).
 */
int  sync_unlock(struct sync_client *c, const char *pin);

/*
 * sync_exec - run SQL as one local write transaction, captured for sync.
 *
 * The statements run inside one transaction together with the recording of
 * their changeset in the outbox: either both commit or neither does.  Only
 * synced tables may be written, and only as this device's role allows
 * (SYNC_EFORBIDDEN otherwise, naming the table).  Mutable rows are stamped
 * with the hybrid logical clock.  SQL functions: uuid7() makes a new id.
 * On any error nothing is changed.  Works offline.
 */
int  sync_exec(struct sync_client *c, const char *sql);

/* Row callback for sync_query(): values are text (blobs as lower-case hex,
 * NULL as a NULL pointer).  Return non-zero to stop. */
typedef int (*sync_row_fn)(void *ctx, int ncol, const char *const *values,
                           const char *const *names);

/* Runs read-only SQL (SYNC_EINVAL if it would write). */
int  sync_query(struct sync_client *c, const char *sql, sync_row_fn fn, void *ctx);

struct sync_stats {
    long    pushed;          /* outbox entries the server acknowledged */
    long    batches;         /* batches acknowledged */
    long    pulled;          /* rows received */
    long    conflicts;       /* conflicts the server recorded for our batches */
    long    quarantined;     /* entries the server refused */
    int64_t cursor;
    int64_t bytes_up;        /* request bytes sent, HTTP headers included */
    int64_t bytes_down;      /* reply bodies received */
};

/*
 * sync_run - push the outbox, then pull until the server has nothing more.
 *
 * Safe to interrupt at any point: a batch is resent with the same batch_seq
 * and the same bytes until the server acknowledges it, and the server
 * applies each batch once.  An entry the server refuses is quarantined
 * (kept, shown by sync_status, undone locally) and the rest still syncs.
 * stats may be NULL.  SYNC_EAUTH: the device was revoked or is unknown.
 */
int  sync_run(struct sync_client *c, struct sync_stats *stats);
int  sync_push(struct sync_client *c, struct sync_stats *stats);
int  sync_pull(struct sync_client *c, struct sync_stats *stats);

/*
 * sync_client_set_keepalive - keep the HTTP connection open between syncs.
 *
 * The requests of one sync_run / sync_push / sync_pull always share one
 * connection (a stale one is retried once on a fresh connection, which is
 * safe: pushes are idempotent by batch_seq, pulls only read).  By default
 * (idle_ms 0) it is closed when the call returns, because the server gives
 * every open connection one of its worker threads, idle or not.  idle_ms >
 * 0 keeps it for the next call while it has been idle less than idle_ms;
 * keep that below the server's header_timeout_ms (default 5000), e.g.
 * 2000.  Worth it only for a tablet that syncs again within seconds.
 */
void sync_client_set_keepalive(struct sync_client *c, int idle_ms);

struct sync_status_info {
    int     enrolled;
    int     revoked;         /* the county revoked it; its keys are destroyed */
    int     locked;          /* keys not unlocked with the PIN in this session */
    int     pin_failures;    /* wrong PINs in a row */
    int     wiped;           /* too many wrong PINs: keys destroyed */
    char    device_id[33];
    char    role[16];
    char    township_id[33];
    char    hall_id[33];     /* "" for township roles */
    char    server_url[256];
    long    pending;         /* outbox entries not yet confirmed */
    long    unsent;          /* of those, not yet in a batch */
    long    quarantined;
    int64_t cursor;
    int64_t last_sync_ms;    /* 0 = never */
    int64_t next_batch_seq;
    int     schema_version;
};
int  sync_status(struct sync_client *c, struct sync_status_info *out);

/* Hash of every synced row this tablet holds (BLAKE2b-256), for checking
 * convergence against the server's projection of the same scope. */
int  sync_content_hash(struct sync_client *c, uint8_t out[32]);

/* Fault injection for tests (not for apps). */
struct sync_test_hooks {
    /* Called around each request; return 1 from before_send to fail the
     * request as if the network were down, 1 from after_reply to drop the
     * server's reply (the request was processed), 2 to send it twice. */
    int     (*before_send)(void *ctx, const char *path);
    int     (*after_reply)(void *ctx, const char *path);
    int64_t (*clock_ms)(void *ctx);    /* the tablet's wall clock */
    void    *ctx;
};
void sync_client_set_test_hooks(struct sync_client *c, const struct sync_test_hooks *h);

#ifdef __cplusplus
}
#endif
#endif
