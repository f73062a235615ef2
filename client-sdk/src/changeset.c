/* changeset.c - strict changeset validator, iterator and writer; see changeset.h.
 *
 * One parser serves both the validator and the iterator, so what the
 * iterator reads is exactly what the validator checked.  The parser handles
 * structure (bounds, varints, type bytes, op and indirect bytes); the
 * validator adds the rules that need the schema or whole records (primary
 * key layout, defined/undefined/NULL columns, limits).
 *
 * Safety argument, in short: every read is preceded by a check against
 * it->len - it->pos (pos <= len is an invariant, so that never underflows),
 * every step of the parser consumes at least one byte or stops, and the work
 * per step is bounded by the bytes it consumes -- hence O(len) overall.
 */
#include "changeset.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "eldersync.h"

#if defined(__GNUC__)
#define CS_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CS_PRINTF(a, b)
#endif

/* What the parser found at the current position. */
enum { EV_END = 0, EV_CHANGE = 1, EV_TABLE = 2 };

/* cs_limits with the defaults filled in. */
struct limits {
    size_t max_changes, max_tables, max_value_bytes;
    int    max_columns;
};

/* Room for a table name in an error message, after truncation. */
#define SHOWN_NAME 48

static int fail(struct cs_error *err, int code, size_t off, const char *fmt, ...) CS_PRINTF(4, 5);

/* Records an error in *err (if any) and returns code, so callers can write
 * "return fail(...)". */
static int fail(struct cs_error *err, int code, size_t off, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        err->code = code;
        err->offset = off;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Copies a table name for an error message: names come from the peer, so
 * cut them short and replace anything that is not printable ASCII (a name
 * may hold control characters meant for a terminal or a log parser). */
static const char *show_name(char out[SHOWN_NAME], const char *name)
{
    size_t i = 0;
    for (; name[i] != '\0' && i < SHOWN_NAME - 4; i++) {
        unsigned char c = (unsigned char)name[i];
        out[i] = (c >= 0x20 && c < 0x7f && c != '\'') ? (char)c : '?';
    }
    if (name[i] != '\0') {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
    return out;
}

/* ---- low-level decoding ---------------------------------------------- */

/* Bytes SQLite's encoder (and buf_varint) uses for v. */
static size_t varint_size(uint64_t v)
{
    if (v >> 56)
        return 9;
    size_t n = 1;
    while (v >>= 7)
        n++;
    return n;
}

/* Reads a SQLite varint at *pos.  Returns 0 and advances *pos, -1 if the
 * buffer ends first, or -2 if the encoding is not the shortest one (SQLite
 * never writes those; refusing them keeps one byte string per value). */
static int get_varint(const uint8_t *buf, size_t len, size_t *pos, uint64_t *out)
{
    size_t p = *pos;
    uint64_t v = 0;
    for (int i = 0; i < 9; i++) {
        if (p >= len)
            return -1;
        uint8_t c = buf[p++];
        if (i == 8) {               /* the ninth byte carries 8 bits */
            v = v << 8 | c;
            break;
        }
        v = v << 7 | (c & 0x7f);
        if (!(c & 0x80))
            break;
    }
    if (varint_size(v) != p - *pos)
        return -2;
    *pos = p;
    *out = v;
    return 0;
}

/* Two's complement reinterpretation without implementation-defined casts. */
static int64_t u64_to_i64(uint64_t u)
{
    if (u <= (uint64_t)INT64_MAX)
        return (int64_t)u;
    return -(int64_t)(UINT64_MAX - u) - 1;
}

static void clear_values(struct cs_value *v, int from, int to)
{
    for (int i = from; i < to; i++)
        memset(&v[i], 0, sizeof v[i]);   /* type 0 == CS_UNDEF */
}

/* ---- parser (shared by validator and iterator) ------------------------ */

/* Parses the table name at it->pos: 1..CS_MAX_NAME bytes and a NUL, looking
 * no further than CS_MAX_NAME + 1 bytes. */
static int parse_name(struct cs_iter *it, size_t hdr, const char **name, struct cs_error *err)
{
    size_t avail = it->len - it->pos;
    size_t scan = avail < CS_MAX_NAME + 1 ? avail : CS_MAX_NAME + 1;
    const uint8_t *start = it->buf + it->pos;
    const uint8_t *nul = memchr(start, 0, scan);
    if (nul == NULL && scan == avail)
        return fail(err, SYNC_EPROTO, hdr, "truncated table name in header at offset %zu", hdr);
    if (nul == NULL)
        return fail(err, SYNC_EPROTO, hdr, "table name longer than %d bytes at offset %zu",
                    CS_MAX_NAME, hdr);
    if (nul == start)
        return fail(err, SYNC_EPROTO, hdr, "empty table name at offset %zu", hdr);
    *name = (const char *)start;
    it->pos += (size_t)(nul - start) + 1;
    return 0;
}

/* Parses a 'T' table header at it->pos and makes it the current table. */
static int parse_header(struct cs_iter *it, const struct limits *lim, struct cs_error *err)
{
    size_t hdr = it->pos;
    uint64_t ncol;
    const char *name = NULL;

    it->pos++;                                      /* the 'T' */
    int r = get_varint(it->buf, it->len, &it->pos, &ncol);
    if (r != 0)
        return fail(err, SYNC_EPROTO, hdr, "%s column count in table header at offset %zu",
                    r == -1 ? "truncated" : "overlong", hdr);
    if (ncol == 0)
        return fail(err, SYNC_EPROTO, hdr, "table header at offset %zu has no columns", hdr);
    if (ncol > (uint64_t)lim->max_columns)
        return fail(err, SYNC_ETOOBIG, hdr, "table header at offset %zu: %" PRIu64
                    " columns, limit %d", hdr, ncol, lim->max_columns);
    if (ncol > it->len - it->pos)
        return fail(err, SYNC_EPROTO, hdr, "truncated table header at offset %zu", hdr);
    const uint8_t *pk = it->buf + it->pos;
    it->pos += (size_t)ncol;
    if ((r = parse_name(it, hdr, &name, err)) != 0)
        return r;

    /* Entries past the new column count keep the "unused entries are
     * CS_UNDEF" promise; clearing them costs no more than the bytes the
     * previous header consumed. */
    if (it->ncol > (int)ncol) {
        clear_values(it->old, (int)ncol, it->ncol);
        clear_values(it->new_, (int)ncol, it->ncol);
    }
    it->table = name;
    it->ncol = (int)ncol;
    it->pk = pk;
    return EV_TABLE;
}

/* Parses one value at it->pos into *v. */
static int parse_value(struct cs_iter *it, struct cs_value *v, const struct limits *lim,
                       struct cs_error *err)
{
    size_t at = it->pos;
    uint64_t n;

    if (at >= it->len)
        return fail(err, SYNC_EPROTO, at, "truncated record at offset %zu", at);
    memset(v, 0, sizeof *v);
    v->type = it->buf[it->pos++];
    switch (v->type) {
    case CS_UNDEF:
    case CS_NULL:
        return 0;
    case CS_INT:
    case CS_REAL:
        if (it->len - it->pos < 8)
            return fail(err, SYNC_EPROTO, at, "truncated value at offset %zu", at);
        n = be64_get(it->buf + it->pos);
        it->pos += 8;
        if (v->type == CS_INT)
            v->i = u64_to_i64(n);
        else
            memcpy(&v->r, &n, sizeof v->r);  /* any bit pattern, as SQLite */
        return 0;
    case CS_TEXT:
    case CS_BLOB: {
        int r = get_varint(it->buf, it->len, &it->pos, &n);
        if (r != 0 || n > it->len - it->pos)
            return fail(err, SYNC_EPROTO, at, "%s value at offset %zu",
                        r == -2 ? "overlong length of" : "truncated", at);
        if (lim->max_value_bytes != 0 && n > lim->max_value_bytes)
            return fail(err, SYNC_ETOOBIG, at, "value of %" PRIu64 " bytes at offset %zu,"
                        " limit %zu", n, at, lim->max_value_bytes);
        v->p = it->buf + it->pos;
        v->n = (size_t)n;
        it->pos += (size_t)n;
        return 0;
    }
    default:
        return fail(err, SYNC_EPROTO, at, "bad value type 0x%02x at offset %zu", v->type, at);
    }
}

static int parse_record(struct cs_iter *it, struct cs_value *rec, const struct limits *lim,
                        struct cs_error *err)
{
    for (int i = 0; i < it->ncol; i++) {
        int r = parse_value(it, &rec[i], lim, err);
        if (r != 0)
            return r;
    }
    return 0;
}

/* Parses one change (op, indirect, record(s)) of the current table. */
static int parse_change(struct cs_iter *it, const struct limits *lim, struct cs_error *err)
{
    size_t at = it->pos;
    int op = it->buf[at];

    if (it->table == NULL)
        return fail(err, SYNC_EPROTO, at, "expected table header at offset %zu", at);
    if (op != CS_INSERT && op != CS_UPDATE && op != CS_DELETE)
        return fail(err, SYNC_EPROTO, at, "unexpected byte 0x%02x at offset %zu"
                    " (expected op or table header)", op, at);
    /* Only reachable if a caller scribbled on the public fields. */
    if (it->ncol < 1 || it->ncol > CS_MAX_COLUMNS)
        return fail(err, SYNC_EPROTO, at, "iterator state corrupted");
    if (it->len - at < 2)
        return fail(err, SYNC_EPROTO, at, "truncated change at offset %zu", at);
    if (it->buf[at + 1] > 1)
        return fail(err, SYNC_EPROTO, at, "bad indirect flag 0x%02x at offset %zu",
                    it->buf[at + 1], at + 1);
    it->op = op;
    it->indirect = it->buf[at + 1];
    it->pos += 2;

    int r = 0;
    if (op == CS_INSERT)
        clear_values(it->old, 0, it->ncol);
    else
        r = parse_record(it, it->old, lim, err);
    if (r != 0)
        return r;
    if (op == CS_DELETE)
        clear_values(it->new_, 0, it->ncol);
    else
        r = parse_record(it, it->new_, lim, err);
    return r != 0 ? r : EV_CHANGE;
}

/* Parses whatever is at it->pos: a table header, a change, or the end. */
static int parse_next(struct cs_iter *it, const struct limits *lim, struct cs_error *err)
{
    if (it->pos >= it->len)
        return EV_END;
    switch (it->buf[it->pos]) {
    case 'T':
        return parse_header(it, lim, err);
    case 'P':
        return fail(err, SYNC_EPROTO, it->pos, "patchset not accepted (offset %zu)", it->pos);
    default:
        return parse_change(it, lim, err);
    }
}

/* ---- iterator --------------------------------------------------------- */

void cs_iter_init(struct cs_iter *it, const uint8_t *buf, size_t len)
{
    memset(it, 0, sizeof *it);
    it->buf = buf;
    it->len = buf != NULL ? len : 0;
}

int cs_iter_next(struct cs_iter *it)
{
    static const struct limits dflt = { 0, 0, 0, CS_MAX_COLUMNS };

    if (it->failed != 0)
        return it->failed;
    if (it->pos > it->len) {
        it->failed = SYNC_EPROTO;
        return it->failed;
    }
    for (;;) {
        int ev = parse_next(it, &dflt, NULL);
        if (ev == EV_TABLE)
            continue;                   /* headers consume input: terminates */
        if (ev == EV_CHANGE)
            return 1;
        if (ev < 0)
            it->failed = ev;
        return ev;
    }
}

/* ---- validator -------------------------------------------------------- */

/* Primary key bytes must be 0 or a position 1..ncol, and the positions used
 * must be exactly 1..k for some k >= 1.  SQLite's changegroup compares these
 * bytes verbatim, so they must also match the schema exactly (checked by the
 * caller). */
static int check_pk(const struct cs_iter *it, size_t hdr, struct cs_error *err)
{
    uint8_t seen[CS_MAX_COLUMNS + 1] = { 0 };
    int k = 0, max = 0;
    for (int i = 0; i < it->ncol; i++) {
        int p = it->pk[i];
        if (p == 0)
            continue;
        if (p > it->ncol || seen[p])
            return fail(err, SYNC_EPROTO, hdr, "bad primary key flags in table header at"
                        " offset %zu", hdr);
        seen[p] = 1;
        k++;
        if (p > max)
            max = p;
    }
    /* k distinct positions, all <= max: they are 1..k exactly iff max == k. */
    if (k == 0 || max != k)
        return fail(err, SYNC_EPROTO, hdr, "%s in table header at offset %zu",
                    k == 0 ? "no primary key" : "gap in primary key positions", hdr);
    return 0;
}

static int check_table(const struct cs_iter *it, cs_lookup_fn lookup, void *ctx, size_t hdr,
                       struct cs_error *err)
{
    char shown[SHOWN_NAME];
    struct cs_table_info info = { 0, NULL };

    int r = check_pk(it, hdr, err);
    if (r != 0)
        return r;
    if (lookup == NULL || lookup(ctx, it->table, &info) != 0)
        return fail(err, SYNC_ESCHEMA, hdr, "unknown table '%s'", show_name(shown, it->table));
    if (info.ncol != it->ncol)
        return fail(err, SYNC_ESCHEMA, hdr, "table %s: %d columns, expected %d",
                    show_name(shown, it->table), it->ncol, info.ncol);
    if (info.pk == NULL || memcmp(info.pk, it->pk, (size_t)it->ncol) != 0)
        return fail(err, SYNC_ESCHEMA, hdr, "table %s: primary key differs from schema",
                    show_name(shown, it->table));
    return 0;
}

/* A key value SQLite would read as NULL: NULL itself, or a NaN real
 * (SQLite 3.40 stores a NaN as NULL when it reads the record). */
static int null_key(const struct cs_value *v)
{
    return v->type == CS_NULL || (v->type == CS_REAL && v->r != v->r);
}

/* INSERT and DELETE carry the whole row: every column defined, no NULL key
 * (SQLite cannot locate a row by a NULL key). */
static int check_full_record(const struct cs_iter *it, const struct cs_value *rec, size_t at,
                             struct cs_error *err)
{
    char shown[SHOWN_NAME];
    const char *what = it->op == CS_INSERT ? "INSERT" : "DELETE";
    for (int i = 0; i < it->ncol; i++) {
        if (rec[i].type == CS_UNDEF)
            return fail(err, SYNC_EPROTO, at, "table %s: %s at offset %zu leaves column %d"
                        " undefined", show_name(shown, it->table), what, at, i);
        if (it->pk[i] != 0 && null_key(&rec[i]))
            return fail(err, SYNC_EPROTO, at, "table %s: %s at offset %zu has NULL key"
                        " column %d", show_name(shown, it->table), what, at, i);
    }
    return 0;
}

/* UPDATE: old key defined and not NULL, new key undefined (key changes are
 * DELETE + INSERT in a changeset), each other column defined in both records
 * or in neither, and at least one of them defined. */
static int check_update(const struct cs_iter *it, size_t at, struct cs_error *err)
{
    char shown[SHOWN_NAME];
    const char *problem = NULL;
    int col = 0, changed = 0;

    for (int i = 0; i < it->ncol && problem == NULL; i++) {
        int o = it->old[i].type, n = it->new_[i].type;
        col = i;
        if (it->pk[i] != 0 && (o == CS_UNDEF || null_key(&it->old[i])))
            problem = "undefined or NULL old key";
        else if (it->pk[i] != 0 && n != CS_UNDEF)
            problem = "defined new key";
        else if (it->pk[i] == 0 && (o == CS_UNDEF) != (n == CS_UNDEF))
            problem = "old and new records disagree on";
        else if (it->pk[i] == 0 && n != CS_UNDEF)
            changed++;
    }
    if (problem != NULL)
        return fail(err, SYNC_EPROTO, at, "table %s: UPDATE at offset %zu: %s column %d",
                    show_name(shown, it->table), at, problem, col);
    if (changed == 0)
        return fail(err, SYNC_EPROTO, at, "table %s: UPDATE at offset %zu changes no column",
                    show_name(shown, it->table), at);
    return 0;
}

static void resolve_limits(const struct cs_limits *in, struct limits *out)
{
    memset(out, 0, sizeof *out);
    out->max_columns = CS_MAX_COLUMNS;
    if (in == NULL)
        return;
    out->max_changes = in->max_changes;
    out->max_tables = in->max_tables;
    out->max_value_bytes = in->max_value_bytes;
    if (in->max_columns > 0 && in->max_columns < CS_MAX_COLUMNS)
        out->max_columns = in->max_columns;
}

int cs_validate(const uint8_t *buf, size_t len, cs_lookup_fn lookup, void *ctx,
                const struct cs_limits *lim, size_t *nchanges, struct cs_error *err)
{
    struct limits L;
    struct cs_iter it;          /* ~20 KB: the parser's scratch records */
    size_t nch = 0, ntab = 0;

    if (err != NULL)
        memset(err, 0, sizeof *err);
    if (buf == NULL && len != 0)
        return fail(err, SYNC_EPROTO, 0, "no buffer");
    resolve_limits(lim, &L);
    cs_iter_init(&it, buf, len);
    for (;;) {
        size_t at = it.pos;
        int r = parse_next(&it, &L, err);
        if (r == EV_END)
            break;
        if (r == EV_TABLE) {
            if (++ntab > L.max_tables && L.max_tables != 0)
                return fail(err, SYNC_ETOOBIG, at, "more than %zu table sections", L.max_tables);
            r = check_table(&it, lookup, ctx, at, err);
        } else if (r == EV_CHANGE) {
            if (++nch > L.max_changes && L.max_changes != 0)
                return fail(err, SYNC_ETOOBIG, at, "more than %zu changes", L.max_changes);
            r = it.op == CS_UPDATE ? check_update(&it, at, err)
              : check_full_record(&it, it.op == CS_INSERT ? it.new_ : it.old, at, err);
        }
        if (r != 0)
            return r;
    }
    if (nchanges != NULL)
        *nchanges = nch;
    return SYNC_OK;
}

/* ---- writer ----------------------------------------------------------- */

void cs_writer_init(struct cs_writer *w)
{
    memset(w, 0, sizeof *w);
}

void cs_writer_table(struct cs_writer *w, const char *name, int ncol, const uint8_t *pk)
{
    if (name == NULL || name[0] == '\0' || pk == NULL || ncol < 1 || ncol > CS_MAX_COLUMNS) {
        w->misuse = 1;
        return;
    }
    buf_byte(&w->b, 'T');
    buf_varint(&w->b, (uint64_t)ncol);
    buf_append(&w->b, pk, (size_t)ncol);
    buf_append(&w->b, name, strlen(name) + 1);   /* with the NUL */
    w->ncol = ncol;
    w->in_table = 1;
}

/* Whether a record can be encoded; checked before writing anything so that a
 * refused change leaves no half-written bytes. */
static int record_ok(const struct cs_value *rec, int ncol)
{
    if (rec == NULL)
        return 0;
    for (int i = 0; i < ncol; i++) {
        if (rec[i].type < CS_UNDEF || rec[i].type > CS_NULL)
            return 0;
        if ((rec[i].type == CS_TEXT || rec[i].type == CS_BLOB) && rec[i].p == NULL
            && rec[i].n != 0)
            return 0;
    }
    return 1;
}

static void write_record(struct buf *b, const struct cs_value *rec, int ncol)
{
    for (int i = 0; i < ncol; i++) {
        const struct cs_value *v = &rec[i];
        uint64_t u;
        buf_byte(b, (uint8_t)v->type);
        switch (v->type) {
        case CS_INT:
            buf_be64(b, (uint64_t)v->i);        /* modular: two's complement */
            break;
        case CS_REAL:
            memcpy(&u, &v->r, sizeof u);
            buf_be64(b, u);
            break;
        case CS_TEXT:
        case CS_BLOB:
            buf_varint(b, (uint64_t)v->n);
            buf_append(b, v->p, v->n);
            break;
        default:                                /* UNDEF, NULL: no payload */
            break;
        }
    }
}

void cs_writer_change(struct cs_writer *w, int op, int indirect,
                      const struct cs_value *old, const struct cs_value *new_)
{
    int need_old = op == CS_UPDATE || op == CS_DELETE;
    int need_new = op == CS_UPDATE || op == CS_INSERT;

    if (!w->in_table || (!need_old && !need_new)
        || (need_old && !record_ok(old, w->ncol)) || (need_new && !record_ok(new_, w->ncol))) {
        w->misuse = 1;
        return;
    }
    buf_byte(&w->b, (uint8_t)op);
    buf_byte(&w->b, indirect ? 1 : 0);
    if (need_old)
        write_record(&w->b, old, w->ncol);
    if (need_new)
        write_record(&w->b, new_, w->ncol);
}

int cs_writer_finish(struct cs_writer *w, uint8_t **out, size_t *len)
{
    int rc = SYNC_OK;
    *out = NULL;
    *len = 0;
    if (w->misuse)
        rc = SYNC_EINVAL;
    else if (w->b.oom)
        rc = SYNC_ENOMEM;
    else
        *out = buf_take(&w->b, len);
    cs_writer_reset(w);
    return rc;
}

void cs_writer_reset(struct cs_writer *w)
{
    if (w == NULL)
        return;
    buf_free(&w->b);
    memset(w, 0, sizeof *w);
}
