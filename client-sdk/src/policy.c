/* policy.c - load sync_tables / sync_states and the column layout. */
#include "policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "eldersync.h"
#include "util.h"

static const char *const role_names[] = { "caregiver", "hall", "inspector" };

unsigned role_bit(const char *name)
{
    for (unsigned i = 0; i < sizeof role_names / sizeof role_names[0]; i++)
        if (name && strcmp(name, role_names[i]) == 0)
            return 1u << i;
    return 0;
}

const char *role_name(unsigned bit)
{
    for (unsigned i = 0; i < sizeof role_names / sizeof role_names[0]; i++)
        if (bit == 1u << i)
            return role_names[i];
    return "unknown";
}

/* Copies the next space-separated word of *p into word (n bytes) and
 * advances *p.  Returns its length, 0 at the end, -1 if it does not fit. */
static int next_word(const char **p, char *word, size_t n)
{
    while (**p == ' ')
        (*p)++;
    size_t len = strcspn(*p, " ");
    if (len >= n)
        return -1;
    memcpy(word, *p, len);
    word[len] = '\0';
    *p += len;
    return (int)len;
}

/* Space-separated role list -> mask; -1 names an unknown role. */
static long roles_mask(const char *list)
{
    unsigned mask = 0, b;
    char word[32];
    const char *p = list ? list : "";
    int n;
    while ((n = next_word(&p, word, sizeof word)) > 0) {
        if ((b = role_bit(word)) == 0)
            return -1;
        mask |= b;
    }
    return n < 0 ? -1 : (long)mask;
}

int policy_col(const struct pol_table *t, const char *col)
{
    for (int i = 0; i < t->ncol; i++)
        if (strcmp(t->cols[i], col) == 0)
            return i;
    return -1;
}

/* Space-separated column list -> bit mask over t's columns. */
static int cols_mask(const struct pol_table *t, const char *list, uint64_t *out,
                     char *err, size_t errlen)
{
    char word[48];
    const char *p = list ? list : "";
    int n, c;
    *out = 0;
    while ((n = next_word(&p, word, sizeof word)) != 0) {
        if (n < 0 || (c = policy_col(t, word)) < 0) {
            snprintf(err, errlen, "sync_tables: %s has no column '%.40s'", t->name,
                     n < 0 ? p : word);
            return SYNC_ESCHEMA;
        }
        *out |= (uint64_t)1 << c;
    }
    return SYNC_OK;
}

static int load_columns(sqlite3 *db, struct pol_table *t, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int nkey = 0;
    if (sqlite3_prepare_v2(db, "SELECT name, pk FROM pragma_table_info(?1, 'main') ORDER BY cid",
                           -1, &st, NULL) != SQLITE_OK)
        goto io;
    sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
    t->ncol = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (t->ncol == POL_MAXCOL) {
            snprintf(err, errlen, "table %s has too many columns", t->name);
            sqlite3_finalize(st);
            return SYNC_ESCHEMA;
        }
        snprintf(t->cols[t->ncol], sizeof t->cols[0], "%s",
                 (const char *)sqlite3_column_text(st, 0));
        t->pk[t->ncol] = (uint8_t)sqlite3_column_int(st, 1);
        if (t->pk[t->ncol]) {
            nkey++;
            t->id_col = t->ncol;
        }
        t->ncol++;
    }
    sqlite3_finalize(st);
    if (t->ncol == 0 || nkey != 1 || strcmp(t->cols[t->id_col], "id") != 0) {
        snprintf(err, errlen, "synced table %s must exist with primary key 'id'", t->name);
        return SYNC_ESCHEMA;
    }
    return SYNC_OK;
io:
    snprintf(err, errlen, "table_info: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return SYNC_EIO;
}

static int parse_kind(const char *s)
{
    return strcmp(s, "append") == 0 ? POL_APPEND
         : strcmp(s, "lww") == 0    ? POL_LWW : POL_STATE;
}

static int parse_scope(const char *s)
{
    return strcmp(s, "county") == 0   ? SCOPE_COUNTY
         : strcmp(s, "township") == 0 ? SCOPE_TOWNSHIP : SCOPE_HALL;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? s : "";
}

static int load_table(sqlite3 *db, sqlite3_stmt *st, struct pol_table *t,
                      char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", col_text(st, 0));
    t->kind = parse_kind(col_text(st, 1));
    t->scope = parse_scope(col_text(st, 2));
    int rc = load_columns(db, t, err, errlen);
    if (rc != SYNC_OK)
        return rc;
    t->scope_col = policy_col(t, col_text(st, 3));
    t->hlc_col = policy_col(t, "hlc");
    t->deleted_col = policy_col(t, "deleted");
    t->state_col = sqlite3_column_type(st, 10) == SQLITE_NULL ? -1
                 : policy_col(t, col_text(st, 10));
    long r[4];
    for (int i = 0; i < 4; i++)
        r[i] = roles_mask(col_text(st, 4 + i));
    if (t->scope_col < 0 || r[0] < 0 || r[1] < 0 || r[2] < 0 || r[3] < 0 ||
        (t->kind != POL_APPEND && t->hlc_col < 0) ||
        (t->kind == POL_STATE) != (t->state_col >= 0)) {
        snprintf(err, errlen, "sync_tables: bad declaration for %s", t->name);
        return SYNC_ESCHEMA;
    }
    t->read_roles = (unsigned)r[0];
    t->insert_roles = (unsigned)r[1];
    t->update_roles = (unsigned)r[2];
    t->delete_roles = (unsigned)r[3];
    uint64_t blind = 0;
    rc = cols_mask(t, col_text(st, 8), &t->personal, err, errlen);
    if (rc == SYNC_OK)
        rc = cols_mask(t, col_text(st, 9), &t->protected_, err, errlen);
    if (rc == SYNC_OK)
        rc = cols_mask(t, col_text(st, 11), &blind, err, errlen);
    for (int i = 0; rc == SYNC_OK && i < t->ncol; i++) {
        char name[64];
        t->bidx[i] = -1;
        if (!((blind >> i) & 1))
            continue;
        snprintf(name, sizeof name, "%s_bidx", t->cols[i]);
        if (!((t->personal >> i) & 1) || (t->bidx[i] = policy_col(t, name)) < 0) {
            snprintf(err, errlen, "sync_tables: %s.%s needs a personal column and %s", t->name,
                     t->cols[i], name);
            rc = SYNC_ESCHEMA;
        }
    }
    return rc;
}

static int load_states(sqlite3 *db, struct policy *p, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT tbl, col, value, rank, roles FROM sync_states "
                           "ORDER BY tbl, rank", -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "sync_states: %s", sqlite3_errmsg(db));
        return SYNC_EIO;
    }
    int rc = SYNC_OK;
    while (rc == SYNC_OK && sqlite3_step(st) == SQLITE_ROW) {
        struct pol_table *t = (struct pol_table *)policy_table(p, col_text(st, 0));
        long roles = roles_mask(col_text(st, 4));
        if (t == NULL || t->state_col < 0 || strcmp(t->cols[t->state_col], col_text(st, 1)) ||
            t->nstates == (int)(sizeof t->states / sizeof t->states[0]) || roles < 0) {
            snprintf(err, errlen, "sync_states: bad row for %s", col_text(st, 0));
            rc = SYNC_ESCHEMA;
            break;
        }
        struct pol_state *s = &t->states[t->nstates++];
        snprintf(s->value, sizeof s->value, "%s", col_text(st, 2));
        s->rank = sqlite3_column_int(st, 3);
        s->roles = (unsigned)roles;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Which synced table each column refers to, from the foreign keys. */
static int load_refs(sqlite3 *db, struct policy *p, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT \"from\", \"table\" FROM pragma_foreign_key_list(?1, 'main')",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "foreign_key_list: %s", sqlite3_errmsg(db));
        return SYNC_EIO;
    }
    for (int i = 0; i < p->ntables; i++) {
        struct pol_table *t = &p->tables[i];
        for (int c = 0; c < POL_MAXCOL; c++)
            t->ref[c] = -1;
        sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
        while (sqlite3_step(st) == SQLITE_ROW) {
            int c = policy_col(t, col_text(st, 0));
            const struct pol_table *r = policy_table(p, col_text(st, 1));
            if (c >= 0 && r)
                t->ref[c] = (int)(r - p->tables);
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return SYNC_OK;
}

int policy_load(sqlite3 *db, struct policy **out, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = SYNC_OK;
    *out = NULL;
    struct policy *p = es_calloc(1, sizeof *p);
    if (p == NULL)
        return SYNC_ENOMEM;
    if (sqlite3_prepare_v2(db, "SELECT name, policy, scope, scope_column, read_roles, "
                           "insert_roles, update_roles, delete_roles, personal, "
                           "protected, state_column, blind FROM sync_tables ORDER BY name",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "sync_tables: %s", sqlite3_errmsg(db));
        es_free(p);
        return SYNC_EIO;
    }
    while (rc == SYNC_OK && sqlite3_step(st) == SQLITE_ROW) {
        if (p->ntables == (int)(sizeof p->tables / sizeof p->tables[0])) {
            snprintf(err, errlen, "too many synced tables");
            rc = SYNC_ESCHEMA;
            break;
        }
        rc = load_table(db, st, &p->tables[p->ntables], err, errlen);
        if (rc == SYNC_OK)
            p->ntables++;
    }
    sqlite3_finalize(st);
    if (rc == SYNC_OK)
        rc = load_states(db, p, err, errlen);
    if (rc == SYNC_OK)
        rc = load_refs(db, p, err, errlen);
    if (rc != SYNC_OK) {
        es_free(p);
        return rc;
    }
    *out = p;
    return SYNC_OK;
}

void policy_free(struct policy *p)
{
    es_free(p);
}

const struct pol_table *policy_table(const struct policy *p, const char *name)
{
    if (name == NULL)                /* e.g. sqlite3_column_text out of memory */
        return NULL;
    for (int i = 0; i < p->ntables; i++)
        if (strcmp(p->tables[i].name, name) == 0)
            return &p->tables[i];
    return NULL;
}

int policy_cs_lookup(void *ctx, const char *name, struct cs_table_info *info)
{
    const struct pol_table *t = policy_table(ctx, name);
    if (t == NULL)
        return -1;
    info->ncol = t->ncol;
    info->pk = t->pk;
    return 0;
}

const struct pol_state *policy_state(const struct pol_table *t,
                                     const uint8_t *value, size_t n)
{
    for (int i = 0; i < t->nstates; i++)
        if (strlen(t->states[i].value) == n && memcmp(t->states[i].value, value, n) == 0)
            return &t->states[i];
    return NULL;
}
