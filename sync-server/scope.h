/* scope.h - which rows a device may see and write.
 *
 * A township device (caregiver, inspector) covers its township and the
 * halls in it; a hall device covers its hall and that hall's township.
 * County rows are read by everyone and written by no tablet.
 */
#ifndef SRV_SCOPE_H
#define SRV_SCOPE_H

#include <stddef.h>
#include "server.h"
#include "changeset.h"

/* Callers hold srv->lock. */

/* 1 if a row of t whose scope column holds v lies in dev's scope, else 0.
 * County rows lie in no device's scope (no tablet writes them). */
int scope_contains(struct server *srv, const struct device *dev, const struct pol_table *t,
                   const struct cs_value *v);
/* 1 if dev may see such a row: its scope, or a county row. */
int scope_visible(struct server *srv, const struct device *dev, const struct pol_table *t,
                  const struct cs_value *v);

/* The township a row of t with scope value v belongs to: 16 bytes, or 0
 * bytes for county rows.  Returns the length written, -1 if unknown. */
int scope_township(struct server *srv, const struct pol_table *t, const struct cs_value *v,
                   uint8_t out[16]);

/* rowhash_filter_fn: ctx is a const struct device *.  The projection of
 * the county database that the device should hold, built from the rows'
 * own columns (not from row_versions), so it checks the pull machinery. */
int scope_filter(void *ctx, const struct pol_table *t, char *buf, size_t n);

#endif
