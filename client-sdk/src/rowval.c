/* rowval.c - conversions between changeset values, SQLite values and JSON. */
#include "rowval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "util.h"

static void from_parts(struct cs_value *out, int type, sqlite3_int64 i, double r,
                       const void *p, int n)
{
    memset(out, 0, sizeof *out);
    switch (type) {
    case SQLITE_INTEGER: out->type = CS_INT; out->i = i; break;
    case SQLITE_FLOAT:   out->type = CS_REAL; out->r = r; break;
    case SQLITE_TEXT:    out->type = CS_TEXT; out->p = p; out->n = (size_t)n; break;
    case SQLITE_BLOB:    out->type = CS_BLOB; out->p = p; out->n = (size_t)n; break;
    default:             out->type = CS_NULL; break;
    }
    if ((out->type == CS_TEXT || out->type == CS_BLOB) && out->p == NULL)
        out->p = (const uint8_t *)"";
}

/* Each value is read only as its own type: asking SQLite for a TEXT
 * value's integer or double parses the text (most of a pull's row cost). */
void rowval_from_sqlite(struct cs_value *out, sqlite3_value *v)
{
    if (v == NULL) {
        memset(out, 0, sizeof *out);
        out->type = CS_UNDEF;
        return;
    }
    int type = sqlite3_value_type(v);
    switch (type) {
    case SQLITE_INTEGER: from_parts(out, type, sqlite3_value_int64(v), 0, NULL, 0); break;
    case SQLITE_FLOAT:   from_parts(out, type, 0, sqlite3_value_double(v), NULL, 0); break;
    case SQLITE_TEXT:
    case SQLITE_BLOB: {              /* the pointer first, then its length */
        const void *p = type == SQLITE_TEXT ? (const void *)sqlite3_value_text(v)
                                            : sqlite3_value_blob(v);
        from_parts(out, type, 0, 0, p, sqlite3_value_bytes(v));
        break;
    }
    default:             from_parts(out, type, 0, 0, NULL, 0); break;
    }
}

void rowval_column(struct cs_value *out, sqlite3_stmt *st, int i)
{
    int type = sqlite3_column_type(st, i);
    switch (type) {
    case SQLITE_INTEGER: from_parts(out, type, sqlite3_column_int64(st, i), 0, NULL, 0); break;
    case SQLITE_FLOAT:   from_parts(out, type, 0, sqlite3_column_double(st, i), NULL, 0); break;
    case SQLITE_TEXT:
    case SQLITE_BLOB: {
        const void *p = type == SQLITE_TEXT ? (const void *)sqlite3_column_text(st, i)
                                            : sqlite3_column_blob(st, i);
        from_parts(out, type, 0, 0, p, sqlite3_column_bytes(st, i));
        break;
    }
    default:             from_parts(out, type, 0, 0, NULL, 0); break;
    }
}

int rowval_bind(sqlite3_stmt *st, int i, const struct cs_value *v)
{
    switch (v->type) {
    case CS_INT:  return sqlite3_bind_int64(st, i, v->i);
    case CS_REAL: return sqlite3_bind_double(st, i, v->r);
    case CS_TEXT: return sqlite3_bind_text(st, i, (const char *)v->p, (int)v->n, SQLITE_TRANSIENT);
    case CS_BLOB: return sqlite3_bind_blob(st, i, v->p, (int)v->n, SQLITE_TRANSIENT);
    default:      return sqlite3_bind_null(st, i);
    }
}

int rowval_eq(const struct cs_value *a, const struct cs_value *b)
{
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case CS_INT:  return a->i == b->i;
    case CS_REAL: return memcmp(&a->r, &b->r, sizeof a->r) == 0;
    case CS_TEXT:
    case CS_BLOB: return a->n == b->n && (a->n == 0 || memcmp(a->p, b->p, a->n) == 0);
    default:      return 1;
    }
}

cJSON *rowval_json(const struct cs_value *v)
{
    switch (v->type) {
    case CS_INT:
        if (v->i > 9007199254740992LL || v->i < -9007199254740992LL) {
            char d[24];    /* beyond a double's exact range: keep every digit */
            snprintf(d, sizeof d, "%lld", (long long)v->i);
            return cJSON_CreateString(d);
        }
        return cJSON_CreateNumber((double)v->i);
    case CS_REAL: return cJSON_CreateNumber(v->r);
    case CS_TEXT: {
        char *s = es_malloc(v->n + 1);
        if (s == NULL)
            return NULL;
        memcpy(s, v->p, v->n);
        s[v->n] = '\0';
        cJSON *j = cJSON_CreateString(s);
        es_free(s);
        return j;
    }
    case CS_BLOB: {
        char *h = es_malloc(2 * v->n + 1);
        if (h == NULL)
            return NULL;
        hex_encode(h, v->p, v->n);
        cJSON *o = cJSON_CreateObject();
        if (o && !cJSON_AddStringToObject(o, "hex", h)) {
            cJSON_Delete(o);
            o = NULL;
        }
        es_free(h);
        return o;
    }
    default:      return cJSON_CreateNull();
    }
}
