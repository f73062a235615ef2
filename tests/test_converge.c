/* test_converge.c - twenty tablets edit offline and every one converges.
 *
 * Caregivers, inspectors and hall clerks in three townships and three halls
 * make random offline edits, many aimed at the same rows and columns, while
 * the county moves seniors between townships and approves cases.  Syncs run
 * in random order over real HTTP with requests failing, replies lost,
 * requests duplicated and clocks skewed (one tablet in 1970, one a year
 * ahead).  After the tablets quiesce: each tablet's content hash equals the
 * server's projection of its scope, every acknowledged insert is on the
 * server (or kept as a recorded conflict), and no tablet holds a row
 * outside its scope.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "support.h"
#include "test.h"
#include "util.h"

#define NTAB    20
#define ROUNDS  6
#define MAXIDS  4096

struct tablet {
    struct sync_client *c;
    const char *role;
    int         twp, hall;            /* hall -1 for township roles */
    int64_t     skew_ms;
    uint64_t    rng;
    long        fail_send, lost, dup;
    /* inserts made since the last acknowledged sync, then acknowledged */
    uint8_t     unacked[256][16];
    char        unacked_tbl[256][16];
    int         nunacked;
};

static struct county cty;
static struct srv_proc srv;
static struct tablet tab[NTAB];
static uint8_t acked_ids[MAXIDS][16];
static char acked_tbl[MAXIDS][16];
static int nacked;
static int faults_on = 1;
static uint64_t seed = 77;

static int64_t tablet_clock(void *ctx)
{
    struct tablet *t = ctx;
    return now_ms() + t->skew_ms;
}

static int before_send(void *ctx, const char *path)
{
    struct tablet *t = ctx;
    (void)path;
    if (faults_on && rnd_below(&t->rng, 100) < 8) {
        t->fail_send++;
        return 1;
    }
    return 0;
}

static int after_reply(void *ctx, const char *path)
{
    struct tablet *t = ctx;
    (void)path;
    unsigned r = faults_on ? rnd_below(&t->rng, 100) : 100;
    if (r < 12) {
        t->lost++;
        return 1;
    }
    if (r < 20) {
        t->dup++;
        return 2;
    }
    return 0;
}

struct idlist { uint8_t id[512][16]; int n; };

static int collect(void *ctx, int ncol, const char *const *vals, const char *const *names)
{
    struct idlist *l = ctx;
    (void)names;
    if (ncol >= 1 && vals[0] && l->n < 512 && hex_decode(l->id[l->n], 16, vals[0]) == 0)
        l->n++;
    return 0;
}

/* A random local row of table (optionally filtered); 0 if none. */
static int pick(struct tablet *t, const char *sql, uint8_t out[16])
{
    static struct idlist l;
    l.n = 0;
    ASSERT_EQ(sync_query(t->c, sql, collect, &l), SYNC_OK);
    if (l.n == 0)
        return 0;
    memcpy(out, l.id[rnd_below(&t->rng, (unsigned)l.n)], 16);
    return 1;
}

static void track(struct tablet *t, const char *tbl, const uint8_t id[16])
{
    ASSERT(t->nunacked < 256);
    memcpy(t->unacked[t->nunacked], id, 16);
    snprintf(t->unacked_tbl[t->nunacked], 16, "%s", tbl);
    t->nunacked++;
}

/* 1 if the write committed, 0 if the tablet refused it as a duplicate. */
static int run(struct tablet *t, const char *sql)
{
    int rc = sync_exec(t->c, sql);
    if (rc == SYNC_OK)
        return 1;
    /* Only a local uniqueness clash is an expected refusal here. */
    if (strstr(sync_client_errmsg(t->c), "UNIQUE") == NULL)
        fprintf(stderr, "  exec (%s): %s\n  sql: %s\n", t->role, sync_client_errmsg(t->c), sql);
    ASSERT(strstr(sync_client_errmsg(t->c), "UNIQUE") != NULL);
    return 0;
}

static void caregiver_edit(struct tablet *t)
{
    char sql[1024], a[36], b[36], c[36], d[36], e[36];
    uint8_t s[16], id[16], vid[16];
    static const char *notes[] = { "hypertension", "diabetes", "walks with a cane", "lives alone" };
    switch (rnd_below(&t->rng, 6)) {
    case 0:
    case 1:
        if (!pick(t, "SELECT hex(id) FROM seniors WHERE deleted = 0", s))
            return;
        snprintf(sql, sizeof sql, "UPDATE seniors SET %s = '%u' WHERE id = %s",
                 rnd_below(&t->rng, 2) ? "phone" : "address", rnd_below(&t->rng, 1000), xid(s, a));
        run(t, sql);
        return;
    case 2:
        if (!pick(t, "SELECT hex(id) FROM seniors", s))
            return;
        snprintf(sql, sizeof sql, "UPDATE seniors SET health_notes = '%s' WHERE id = %s",
                 notes[rnd_below(&t->rng, 4)], xid(s, a));
        run(t, sql);
        return;
    case 3:
        id_new(id);
        snprintf(sql, sizeof sql, "INSERT INTO seniors (id, township_id, name, category) VALUES "
                 "(%s, %s, 'New senior', 'ordinary')", xid(id, a), xid(cty.twp[t->twp], b));
        if (run(t, sql))
            track(t, "seniors", id);
        return;
    case 4:
        if (!pick(t, "SELECT hex(id) FROM seniors", s))
            return;
        id_new(vid);
        id_new(id);
        snprintf(sql, sizeof sql,
                 "INSERT INTO visits (id, township_id, senior_id, campaign_id, kind, visitor, "
                 "visited_at, service_date) VALUES (%s, %s, %s, %s, 'welfare', 'staff', %lld, "
                 "'2026-10-11');"
                 "INSERT INTO visit_handouts (id, visit_id, township_id, senior_id, campaign_id, "
                 "kind, amount_fen) VALUES (%s, %s, %s, %s, %s, 'cash', 20000)",
                 xid(vid, a), xid(cty.twp[t->twp], b), xid(s, c), xid(cty.campaign, d),
                 (long long)now_ms(), xid(id, e), a, b, c, d);
        if (run(t, sql)) {
            track(t, "visits", vid);
            track(t, "visit_handouts", id);
        }
        return;
    default:
        if (!pick(t, "SELECT hex(id) FROM visits WHERE deleted = 0", vid))
            return;
        if (rnd_below(&t->rng, 3))
            snprintf(sql, sizeof sql, "UPDATE visits SET notes = 'note %u' WHERE id = %s",
                     rnd_below(&t->rng, 100), xid(vid, a));
        else
            snprintf(sql, sizeof sql, "UPDATE visits SET deleted = 1 WHERE id = %s", xid(vid, a));
        run(t, sql);
        return;
    }
}

static void inspector_edit(struct tablet *t)
{
    char sql[768], a[36], b[36], c[36];
    uint8_t k[16], id[16];
    static const char *states[] = { "assessed", "works", "accepted" };
    static const char *kinds[] = { "grab_bar", "non_slip_floor", "door_widening", "lighting" };
    switch (rnd_below(&t->rng, 4)) {
    case 0:
        if (!pick(t, "SELECT hex(id) FROM retrofit_cases", k))
            return;
        snprintf(sql, sizeof sql, "UPDATE retrofit_cases SET status = '%s' WHERE id = %s",
                 states[rnd_below(&t->rng, 3)], xid(k, a));
        run(t, sql);
        return;
    case 1:
        if (!pick(t, "SELECT hex(id) FROM retrofit_cases", k))
            return;
        snprintf(sql, sizeof sql, "UPDATE retrofit_cases SET notes = 'visit %u', "
                 "estimated_cost_fen = %u WHERE id = %s", rnd_below(&t->rng, 50),
                 300000 + 1000 * rnd_below(&t->rng, 300), xid(k, a));
        run(t, sql);
        return;
    case 2:
        if (!pick(t, "SELECT hex(id) FROM retrofit_cases", k))
            return;
        id_new(id);
        snprintf(sql, sizeof sql, "INSERT INTO retrofit_items (id, case_id, township_id, "
                 "item_kind, cost_fen) VALUES (%s, %s, %s, '%s', %u)", xid(id, a), xid(k, b),
                 xid(cty.twp[t->twp], c), kinds[rnd_below(&t->rng, 4)],
                 10000 * (1 + rnd_below(&t->rng, 30)));
        if (run(t, sql))
            track(t, "retrofit_items", id);
        return;
    default:
        if (!pick(t, "SELECT hex(id) FROM retrofit_items", id))
            return;
        snprintf(sql, sizeof sql, "UPDATE retrofit_items SET cost_fen = %u, done = %u WHERE id = %s",
                 10000 * (1 + rnd_below(&t->rng, 30)), rnd_below(&t->rng, 2), xid(id, a));
        run(t, sql);
        return;
    }
}

static void hall_edit(struct tablet *t)
{
    char sql[768], a[36], b[36], c[36];
    uint8_t s[16], id[16];
    static const char *periods[] = { "breakfast", "lunch", "dinner" };
    if (!pick(t, "SELECT hex(id) FROM seniors WHERE deleted = 0", s))
        return;
    id_new(id);
    unsigned subsidised = rnd_below(&t->rng, 4) != 0;
    snprintf(sql, sizeof sql, "INSERT INTO meal_logs (id, senior_id, hall_id, service_date, "
             "meal_period, mode, served_at, price_paid_fen, subsidy_fen) VALUES (%s, %s, %s, "
             "'2026-11-%02u', '%s', '%s', %lld, %u, %u)", xid(id, a), xid(s, b),
             xid(cty.hall[t->hall], c), 28 + rnd_below(&t->rng, 2), periods[rnd_below(&t->rng, 3)],
             rnd_below(&t->rng, 5) ? "dine_in" : "delivery", (long long)now_ms(),
             subsidised ? 700 : 1000, subsidised ? 300 : 0);
    if (sync_exec(t->c, sql) == SYNC_OK)
        track(t, "meal_logs", id);
    else
        ASSERT(strstr(sync_client_errmsg(t->c), "UNIQUE") != NULL);
}

/* County-side changes: seniors move township, cases are approved. */
static void county_edit(uint64_t *rng)
{
    char sql[512], a[36], b[36];
    int from = (int)rnd_below(rng, 2), to = 1 - from;
    snprintf(sql, sizeof sql, "UPDATE seniors SET township_id = %s, subsidy_level = %u WHERE id = %s",
             xid(cty.twp[to], a), rnd_below(rng, 3),
             xid(cty.senior[from][8 + rnd_below(rng, 8)], b));
    srv_exec(&srv, sql);
    snprintf(sql, sizeof sql, "UPDATE retrofit_cases SET status = 'approved', approved_amount_fen "
             "= 500000 WHERE id = %s AND status IN ('applied', 'assessed')",
             xid(cty.rcase[rnd_below(rng, NTWP)][rnd_below(rng, NCASE)], a));
    srv_exec(&srv, sql);
}

struct blobs { char *hex; size_t len; };

static int gather(void *ctx, int ncol, const char *const *vals, const char *const *names)
{
    struct blobs *b = ctx;
    (void)names;
    for (int i = 0; i < ncol; i++) {
        size_t n = vals[i] ? strlen(vals[i]) : 0;
        char *p = realloc(b->hex, b->len + n + 2);
        ASSERT_NOT_NULL(p);
        b->hex = p;
        memcpy(b->hex + b->len, vals[i] ? vals[i] : "", n);
        b->len += n;
        b->hex[b->len++] = '|';
        b->hex[b->len] = '\0';
    }
    return 0;
}

/* The tablet's unacknowledged inserts are acknowledged by a successful
 * sync, except those in entries the server refused (quarantined: kept on
 * the tablet for review, not on the server). */
static long quarantined_inserts;

static void ack(struct tablet *t)
{
    struct blobs q = { NULL, 0 };
    ASSERT_EQ(sync_query(t->c, "SELECT hex(changeset), hex(forward) FROM outbox WHERE "
                               "state = 'quarantined'", gather, &q), SYNC_OK);
    for (int i = 0; i < t->nunacked; i++) {
        char hex[33];
        hex_encode(hex, t->unacked[i], 16);
        for (char *p = hex; *p; p++)
            *p = (char)(*p >= 'a' ? *p - 32 : *p);
        if (q.hex && strstr(q.hex, hex)) {
            quarantined_inserts++;
            continue;
        }
        ASSERT(nacked < MAXIDS);
        memcpy(acked_ids[nacked], t->unacked[i], 16);
        memcpy(acked_tbl[nacked], t->unacked_tbl[i], 16);
        nacked++;
    }
    t->nunacked = 0;
    free(q.hex);
}

static void setup_tablets(void)
{
    static const struct { const char *role; int twp, hall; } plan[NTAB] = {
        { "caregiver", 0, -1 }, { "caregiver", 0, -1 }, { "caregiver", 0, -1 },
        { "caregiver", 1, -1 }, { "caregiver", 1, -1 }, { "caregiver", 1, -1 },
        { "caregiver", 2, -1 }, { "caregiver", 2, -1 },
        { "inspector", 0, -1 }, { "inspector", 0, -1 }, { "inspector", 1, -1 },
        { "inspector", 1, -1 }, { "inspector", 2, -1 },
        { "hall", 0, 0 }, { "hall", 0, 0 }, { "hall", 0, 0 }, { "hall", 0, 1 },
        { "hall", 0, 1 }, { "hall", 1, 2 }, { "hall", 1, 2 },
    };
    for (int i = 0; i < NTAB; i++) {
        struct tablet *t = &tab[i];
        char name[32];
        memset(t, 0, sizeof *t);
        t->role = plan[i].role;
        t->twp = plan[i].twp;
        t->hall = plan[i].hall;
        t->rng = seed * 1000 + (uint64_t)i;
        /* Skewed clocks: one tablet in 1970, one a year ahead, others +-1 h. */
        t->skew_ms = i == 4 ? -now_ms() + 1000 : i == 15 ? 365LL * 86400000
                   : ((int64_t)(i % 3) - 1) * 3600000;
        snprintf(name, sizeof name, "tab%02d", i);
        t->c = tablet_new(&srv, name, t->role, t->hall >= 0 ? cty.hall[t->hall] : cty.twp[t->twp]);
        struct sync_test_hooks h = { before_send, after_reply, tablet_clock, t };
        sync_client_set_test_hooks(t->c, &h);
    }
}

static void quiesce(void)
{
    faults_on = 0;
    for (int pass = 0; pass < 3; pass++) {
        for (int i = 0; i < NTAB; i++) {
            int rc = sync_run(tab[i].c, NULL);
            if (rc != SYNC_OK)
                fprintf(stderr, "  quiesce tab%02d: %s\n", i, sync_client_errmsg(tab[i].c));
            ASSERT_EQ(rc, SYNC_OK);
            ack(&tab[i]);
        }
    }
}

static void check_converged(void)
{
    for (int i = 0; i < NTAB; i++) {
        struct tablet *t = &tab[i];
        uint8_t a[32], b[32];
        ASSERT_EQ(sync_content_hash(t->c, a), SYNC_OK);
        proj_hash(srv.db, t->role, cty.twp[t->twp], t->hall >= 0 ? cty.hall[t->hall] : NULL, b);
        if (memcmp(a, b, 32) != 0)
            fprintf(stderr, "  tab%02d (%s) diverged from the server\n", i, t->role);
        ASSERT_MEM_EQ(a, b, 32);
        struct sync_status_info st;
        ASSERT_EQ(sync_status(t->c, &st), SYNC_OK);
        ASSERT_EQ(st.pending, 0);
    }
}

static int count_rows(void *ctx, int ncol, const char *const *vals, const char *const *names)
{
    (void)ncol;
    (void)names;
    *(long *)ctx = atol(vals[0]);
    return 0;
}

static void check_scope(void)
{
    for (int i = 0; i < NTAB; i++) {
        struct tablet *t = &tab[i];
        char sql[256], x[36];
        long n = -1;
        xid(cty.twp[t->twp], x);
        snprintf(sql, sizeof sql, "SELECT (SELECT count(*) FROM seniors WHERE township_id != %s) + "
                 "(SELECT count(*) FROM townships WHERE id != %s)", x, x);
        ASSERT_EQ(sync_query(t->c, sql, count_rows, &n), SYNC_OK);
        ASSERT_EQ(n, 0);
        if (t->hall >= 0) {
            snprintf(sql, sizeof sql, "SELECT count(*) FROM meal_logs WHERE hall_id != %s",
                     xid(cty.hall[t->hall], x));
            ASSERT_EQ(sync_query(t->c, sql, count_rows, &n), SYNC_OK);
            ASSERT_EQ(n, 0);
        } else {
            ASSERT_EQ(sync_query(t->c, "SELECT count(*) FROM meal_logs", count_rows, &n), SYNC_OK);
            ASSERT_EQ(n, 0);
        }
    }
}

static void check_acknowledged(void)
{
    long kept = 0, lost_to_conflict = 0;
    for (int i = 0; i < nacked; i++) {
        char sql[320], x[36];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%.15s\" WHERE id = %s", acked_tbl[i],
                 xid(acked_ids[i], x));
        if (server_count(srv.db, sql) == 1) {
            kept++;
            continue;
        }
        snprintf(sql, sizeof sql, "SELECT count(*) FROM conflicts WHERE pk = %s AND loser IS NOT NULL",
                 xid(acked_ids[i], x));
        long n = server_count(srv.db, sql);
        if (n < 1)
            fprintf(stderr, "  acknowledged %s row lost\n", acked_tbl[i]);
        ASSERT_GE(n, 1);
        lost_to_conflict++;
    }
    printf("converge: %d acknowledged inserts: %ld kept, %ld kept as conflict records; "
           "%ld refused and quarantined\n", nacked, kept, lost_to_conflict, quarantined_inserts);
}

static void test_twenty_tablets_converge(void)
{
    uint64_t rng = seed;
    setup_tablets();
    faults_on = 0;
    for (int i = 0; i < NTAB; i++)                     /* initial sync */
        ASSERT_EQ(sync_run(tab[i].c, NULL), SYNC_OK);
    faults_on = 1;
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < NTAB; i++) {
            struct tablet *t = &tab[i];
            int edits = 1 + (int)rnd_below(&t->rng, 4);
            for (int e = 0; e < edits; e++) {
                if (strcmp(t->role, "caregiver") == 0)
                    caregiver_edit(t);
                else if (strcmp(t->role, "inspector") == 0)
                    inspector_edit(t);
                else
                    hall_edit(t);
            }
        }
        county_edit(&rng);
        /* Sync in a random order; a tablet may sync twice or not at all,
         * and sometimes only pulls (so unsent writes are replayed). */
        for (int k = 0; k < 2 * NTAB; k++) {
            struct tablet *t = &tab[rnd_below(&rng, NTAB)];
            if (rnd_below(&rng, 3) == 0)
                sync_pull(t->c, NULL);
            else if (sync_run(t->c, NULL) == SYNC_OK)
                ack(t);
        }
    }
    quiesce();
    check_converged();
    check_scope();
    check_acknowledged();
    long f = 0, l = 0, d = 0, q = 0;
    for (int i = 0; i < NTAB; i++) {
        struct sync_status_info st;
        sync_status(tab[i].c, &st);
        f += tab[i].fail_send;
        l += tab[i].lost;
        d += tab[i].dup;
        q += st.quarantined;
    }
    printf("converge: %d tablets, %d rounds; %ld failed sends, %ld lost replies, %ld duplicated "
           "requests; %ld conflicts recorded, %ld entries quarantined, %ld clocks clamped\n", NTAB,
           ROUNDS, f, l, d, server_count(srv.db, "SELECT count(*) FROM conflicts"), q,
           server_count(srv.db, "SELECT sum(clamped_hlcs) FROM devices"));
    ASSERT_GT(f + l + d, 0);
    for (int i = 0; i < NTAB; i++)
        sync_client_close(tab[i].c);
}

int main(void)
{
    static const struct test_case tests[] = {
        TEST(test_twenty_tablets_converge),
        { NULL, NULL }
    };
    char dir[128], db[192];
    if (getenv("ES_SEED"))                 /* explore other interleavings */
        seed = strtoull(getenv("ES_SEED"), NULL, 10);
    test_dir(dir, sizeof dir, "converge");
    snprintf(db, sizeof db, "%s/county.db", dir);
    county_seed(db, &cty);
    srv_start(&srv, dir, db);
    int rc = test_run_all("test_converge", tests);
    srv_stop(&srv);
    return rc;
}
