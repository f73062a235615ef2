/* changeset.h - strict reader, validator and writer for SQLite changesets.
 *
 * SQLite's own sqlite3changeset_* code is not safe on hostile input (3.40.1
 * hangs or overflows the heap on some malformed changesets), so every
 * changeset that crosses the network -- on the server and on the tablet --
 * goes through cs_validate() before any sqlite3changeset_* or changegroup
 * call sees it.  The validator accepts only a narrow, well-formed subset of
 * the format (what sqlite3session produces), checks every table against the
 * caller's schema, and runs in time linear in the input size.
 *
 * cs_iter walks an accepted changeset without SQLite; cs_writer builds one
 * (used for server-generated changes such as tombstones).
 *
 * Format recap (see the comment at the top of SQLite's sqlite3session.c):
 *   section := 'T' varint(nCol) pk[nCol] name '\0' change*
 *   change  := op indirect record{1 or 2}
 *   value   := type(0..5) payload
 * Varints are SQLite's: big-endian 7-bit groups, at most 9 bytes.
 */
#ifndef ES_CHANGESET_H
#define ES_CHANGESET_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* The most columns a table may have here: the iterator keeps fixed arrays. */
#define CS_MAX_COLUMNS 256
/* Longest accepted table name, in bytes, excluding the NUL. */
#define CS_MAX_NAME 128

enum cs_op { CS_INSERT = 18, CS_UPDATE = 23, CS_DELETE = 9 };
enum cs_type { CS_UNDEF = 0, CS_INT = 1, CS_REAL = 2, CS_TEXT = 3, CS_BLOB = 4, CS_NULL = 5 };

struct cs_value {            /* borrowed view into the changeset buffer */
    int            type;     /* enum cs_type */
    int64_t        i;        /* CS_INT */
    double         r;        /* CS_REAL */
    const uint8_t *p;        /* CS_TEXT / CS_BLOB bytes (not NUL-terminated) */
    size_t         n;        /* their length */
};

/* What the caller knows about a table: looked up by name during validation. */
struct cs_table_info {
    int            ncol;
    const uint8_t *pk;       /* ncol bytes: 0, or 1-based position in the primary key */
};
/* Return 0 and fill *info if the table is known; return -1 if unknown.
 * name is NUL-terminated (it points into the buffer, which validation has
 * proven contains the NUL). */
typedef int (*cs_lookup_fn)(void *ctx, const char *name, struct cs_table_info *info);

struct cs_limits {
    size_t max_changes;      /* 0 = no limit */
    size_t max_tables;       /* table sections, 0 = no limit */
    size_t max_value_bytes;  /* per text/blob value, 0 = no limit */
    int    max_columns;      /* 0 = 256; values above 256 are treated as 256 */
};

struct cs_error {
    int    code;             /* SYNC_EPROTO (malformed), SYNC_ESCHEMA (unknown
                                table / wrong column count / wrong pk),
                                SYNC_ETOOBIG (over a limit) */
    size_t offset;           /* byte offset where the problem was found */
    char   msg[160];         /* human-readable; never contains value contents.
                                Table names appear truncated, with
                                non-printable bytes replaced by '?'. */
};

/* Walk the whole buffer and check it is a well-formed changeset of known
 * tables. lim may be NULL. On success returns SYNC_OK and, if nchanges is not
 * NULL, stores the number of changes. On failure returns the error code and
 * fills *err (err may be NULL). An empty buffer (len 0) is a valid, empty
 * changeset.  A NULL lookup knows no table, so any section fails with
 * SYNC_ESCHEMA.  Besides the rules in the format, non-canonical (overlong)
 * varints are rejected: SQLite never writes them. */
int cs_validate(const uint8_t *buf, size_t len, cs_lookup_fn lookup, void *ctx,
                const struct cs_limits *lim, size_t *nchanges, struct cs_error *err);

/* Iterator over a buffer that cs_validate() has ACCEPTED.  It still checks
 * bounds and structure cheaply and returns SYNC_EPROTO rather than crash if
 * misused; after an error every further call returns the same error. */
struct cs_iter {
    /* public, valid after cs_iter_next() returned 1: */
    const char    *table;    /* NUL-terminated, points into the buffer */
    int            ncol;
    const uint8_t *pk;       /* ncol pk-position bytes */
    int            op;       /* enum cs_op */
    int            indirect;
    struct cs_value old[CS_MAX_COLUMNS];  /* DELETE/UPDATE: old record; unused entries CS_UNDEF */
    struct cs_value new_[CS_MAX_COLUMNS]; /* INSERT/UPDATE: new record */
    /* private */
    const uint8_t *buf; size_t len, pos;
    int            failed;   /* sticky SYNC_E* once an error was returned */
};
void cs_iter_init(struct cs_iter *it, const uint8_t *buf, size_t len);
/* Returns 1 when a change is available, 0 at the end, negative SYNC_E* on error. */
int  cs_iter_next(struct cs_iter *it);

/* Writer: builds a changeset that SQLite 3.40.1's sqlite3changeset_apply_v2
 * accepts.  It writes what it is given (it does not enforce the validation
 * rules); misuse -- a change before any table, a missing record, a bad type
 * or column count -- makes cs_writer_finish() fail with SYNC_EINVAL. */
struct cs_writer { struct buf b; int ncol; int in_table; int misuse; };
void cs_writer_init(struct cs_writer *w);
/* Starts a table section (writes the 'T' header). pk: ncol position bytes. */
void cs_writer_table(struct cs_writer *w, const char *name, int ncol, const uint8_t *pk);
/* Appends one change to the current section. For CS_INSERT pass new_ (old NULL),
 * for CS_DELETE old (new_ NULL), for CS_UPDATE both. Values of type CS_UNDEF
 * are written as undefined. */
void cs_writer_change(struct cs_writer *w, int op, int indirect,
                      const struct cs_value *old, const struct cs_value *new_);
/* Returns SYNC_OK and hands the bytes to the caller (free() them), SYNC_ENOMEM,
 * or SYNC_EINVAL after misuse.  An empty changeset gives *out == NULL,
 * *len == 0 and SYNC_OK.  Either way the writer is left empty and reusable. */
int  cs_writer_finish(struct cs_writer *w, uint8_t **out, size_t *len);
void cs_writer_reset(struct cs_writer *w);  /* frees, NULL-safe */

#endif
