/* txguard.c - see txguard.h. */
#include "txguard.h"

static int commit_guard(void *ctx)
{
    struct txguard *g = ctx;
    if (g->active)
        g->broken = 1;
    return g->active;            /* non-zero: the commit becomes a rollback */
}

static void rollback_guard(void *ctx)
{
    struct txguard *g = ctx;
    if (g->active)
        g->broken = 1;
}

void txguard_install(sqlite3 *db, struct txguard *g)
{
    sqlite3_commit_hook(db, commit_guard, g);
    sqlite3_rollback_hook(db, rollback_guard, g);
}

void txguard_begin(struct txguard *g)
{
    g->active = 1;
    g->broken = 0;
}

int txguard_lost(const struct txguard *g, sqlite3 *db)
{
    return g->broken || sqlite3_get_autocommit(db);
}
