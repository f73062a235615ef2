/* policy.h - the sync declarations of schema.sql, loaded into memory.
 *
 * Both the server and the SDK load sync_tables / sync_states from their own
 * database (both ran the same schema.sql) and the column layout from
 * PRAGMA table_info, so the C code never repeats the schema.
 */
#ifndef ES_POLICY_H
#define ES_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include "sqlite.h"
#include "changeset.h"

#define POL_MAXCOL 64

enum pol_kind  { POL_APPEND, POL_LWW, POL_STATE };
enum pol_scope { SCOPE_COUNTY, SCOPE_TOWNSHIP, SCOPE_HALL };

/* Device roles, as bits so a table's role lists are masks. */
#define ROLE_CAREGIVER  1u
#define ROLE_HALL       2u
#define ROLE_INSPECTOR  4u

struct pol_state {
    char     value[32];
    int      rank;
    unsigned roles;          /* roles that may move a row into this state */
};

struct pol_table {
    char      name[64];
    int       kind;          /* enum pol_kind */
    int       scope;         /* enum pol_scope */
    int       ncol;
    char      cols[POL_MAXCOL][48];
    uint8_t   pk[POL_MAXCOL];/* changeset pk bytes: 1-based key position or 0 */
    int       id_col;        /* the single-column primary key */
    int       scope_col;
    int       hlc_col;       /* -1 if the table has none */
    int       deleted_col;   /* -1 if none */
    int       state_col;     /* -1 unless kind == POL_STATE */
    unsigned  read_roles, insert_roles, update_roles, delete_roles;
    uint64_t  personal;      /* bit i: column i holds personal data */
    uint64_t  protected_;    /* bit i: only the county may set column i */
    int       ref[POL_MAXCOL];/* synced table column i refers to (index), or -1 */
    int       bidx[POL_MAXCOL];/* column holding column i's blind index, or -1 */
    int       nstates;
    struct pol_state states[16];
};

struct policy {
    int              ntables;
    struct pol_table tables[32];
};

/* Loads the declarations.  *out is released with policy_free(); NULL on
 * error.  Returns SYNC_OK, SYNC_ESCHEMA (declarations inconsistent with the
 * tables: detail in err) or SYNC_ENOMEM / SYNC_EIO. */
int  policy_load(sqlite3 *db, struct policy **out, char *err, size_t errlen);
void policy_free(struct policy *p);

/* NULL if name is not a synced table. */
const struct pol_table *policy_table(const struct policy *p, const char *name);
int policy_col(const struct pol_table *t, const char *col);   /* -1 if absent */

/* cs_lookup_fn for cs_validate(): ctx is a const struct policy *. */
int policy_cs_lookup(void *ctx, const char *name, struct cs_table_info *info);

/* Role names <-> bits.  role_bit() returns 0 for an unknown name. */
unsigned    role_bit(const char *name);
const char *role_name(unsigned bit);

/* The declared state matching a text value, or NULL. */
const struct pol_state *policy_state(const struct pol_table *t,
                                     const uint8_t *value, size_t n);

#endif
