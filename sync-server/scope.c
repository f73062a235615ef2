/* scope.c - scope checks for authorisation and projections; see scope.h. */
#include "scope.h"

#include <stdio.h>
#include <string.h>
#include "store.h"
#include "util.h"

static int is_id(const struct cs_value *v)
{
    return v->type == CS_BLOB && v->n == 16;
}

static int hall_township(struct server *srv, const uint8_t *hall, uint8_t out[16])
{
    sqlite3_stmt *st = store_stmt(srv, "SELECT township_id FROM dining_halls WHERE id = ?1");
    int rc = -1;
    if (st) {
        sqlite3_bind_blob(st, 1, hall, 16, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 16) {
            memcpy(out, sqlite3_column_blob(st, 0), 16);
            rc = 16;
        }
        sqlite3_reset(st);
    }
    return rc;
}

int scope_township(struct server *srv, const struct pol_table *t, const struct cs_value *v,
                   uint8_t out[16])
{
    if (t->scope == SCOPE_COUNTY)
        return 0;
    if (!is_id(v))
        return -1;
    if (t->scope == SCOPE_TOWNSHIP) {
        memcpy(out, v->p, 16);
        return 16;
    }
    return hall_township(srv, v->p, out);
}

int scope_contains(struct server *srv, const struct device *dev, const struct pol_table *t,
                   const struct cs_value *v)
{
    uint8_t twp[16];
    if (t->scope == SCOPE_COUNTY || !is_id(v))
        return 0;
    if (t->scope == SCOPE_TOWNSHIP)
        return memcmp(v->p, dev->township, 16) == 0;
    if (dev->has_hall)
        return memcmp(v->p, dev->hall, 16) == 0;
    return hall_township(srv, v->p, twp) == 16 && memcmp(twp, dev->township, 16) == 0;
}

int scope_visible(struct server *srv, const struct device *dev, const struct pol_table *t,
                  const struct cs_value *v)
{
    return t->scope == SCOPE_COUNTY || scope_contains(srv, dev, t, v);
}

int scope_filter(void *ctx, const struct pol_table *t, char *buf, size_t n)
{
    const struct device *dev = ctx;
    char twp[33], hall[33];
    const char *col = t->cols[t->scope_col];
    hex_encode(twp, dev->township, 16);
    hex_encode(hall, dev->hall, 16);
    if (!(t->read_roles & dev->role))
        return 1;
    switch (t->scope) {
    case SCOPE_COUNTY:
        buf[0] = '\0';
        break;
    case SCOPE_TOWNSHIP:
        snprintf(buf, n, "\"%s\" = x'%s'", col, twp);
        break;
    default:
        if (dev->has_hall)
            snprintf(buf, n, "\"%s\" = x'%s'", col, hall);
        else
            snprintf(buf, n, "\"%s\" IN (SELECT id FROM dining_halls WHERE township_id = x'%s')",
                     col, twp);
        break;
    }
    return 0;
}
