/* test_storage.c - storage faults (issue 5, part 2) through faultvfs.
 *
 * For every write and every fsync along a path, and for each fault kind
 * (failed write, disk full, failed fsync, power loss at that write or
 * fsync), run the path once with the fault at that point, then lose power
 * at the end (everything not fsynced is gone), "reboot" and check:
 *   - PRAGMA integrity_check is ok;
 *   - the data is exactly one of the states the path passes through
 *     between commits (content hash), never a mixture;
 *   - everything that was acknowledged (push_apply or sync_exec returned
 *     SYNC_OK, a pull page applied) is still there;
 *   - a retry after the reboot completes the work.
 * Paths: the server applying two pushed batches then checkpointing
 * (in-process store on faultvfs); a tablet's two local writes (sync_exec);
 * a tablet's first pull from a real server process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eldersync.h"
#include "faultvfs.h"
#include "log.h"
#include "pushfix.h"
#include "store.h"
#include "support.h"
#include "test.h"

static long sweeps, runs;          /* reported at the end */

static const enum fv_mode write_modes[] = { FV_FAIL_WRITE, FV_FULL, FV_CUT_WRITE };
static const enum fv_mode sync_modes[] = { FV_FAIL_SYNC, FV_CUT_SYNC };

/* Step through 1..total; under valgrind every 7th point (and the last). */
static long next_n(long n, long total)
{
    if (getenv("ES_VALGRIND") == NULL || n + 7 > total)
        return n + 1;
    return n + 7;
}

static void rm_db(const char *db)
{
    char p[300];
    unlink(db);
    snprintf(p, sizeof p, "%s-wal", db);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", db);
    unlink(p);
    snprintf(p, sizeof p, "%s.key", db);
    unlink(p);
}

/* ---- server push path ---- */

struct push_run {
    int rc[2];        /* push_apply of batch 1, 2 */
    int fired;
};

static void push_scenario(struct pushfix *f, const char *db, enum fv_mode mode, long n,
                          struct push_run *r)
{
    struct server srv;
    fv_revive();
    pf_copy(f, db);
    ASSERT_EQ(pf_open(&srv, db), SYNC_OK);
    fv_arm(mode, n);
    for (int k = 0; k < 2; k++) {
        char *ack = NULL;
        struct outcome o;
        r->rc[k] = pf_push(f, &srv, k, &ack, &o);
        if (r->rc[k] == SYNC_OK)
            ASSERT_NOT_NULL(ack);
        else
            ASSERT(o.error[0] != '\0');
        free(ack);
    }
    store_exec(srv.db, "PRAGMA wal_checkpoint(TRUNCATE)");
    r->fired = fv_fired();
    fv_power_cut();                     /* whatever was not fsynced is lost */
    store_close(&srv);
    fv_revive();
}

static void test_push_path(void)
{
    struct pushfix f;
    struct push_run r;
    char db[256];
    uint8_t want[3][32], got[32];
    int64_t seq;
    int intact;
    ASSERT_EQ(fv_register(), 0);
    pf_init(&f, "storage-push");
    snprintf(db, sizeof db, "%s/county.db", f.dir);

    /* The states between commits: nothing, batch 1, both. */
    pf_copy(&f, db);
    pf_state(db, want[0], &seq, &intact);
    ASSERT(intact);
    ASSERT_EQ(seq, 0);
    for (int k = 0; k < 2; k++) {
        struct server srv;
        char *ack = NULL;
        struct outcome o;
        ASSERT_EQ(pf_open(&srv, db), SYNC_OK);
        ASSERT_EQ(pf_push(&f, &srv, k, &ack, &o), SYNC_OK);
        free(ack);
        store_close(&srv);
        pf_state(db, want[k + 1], &seq, &intact);
        ASSERT_EQ(seq, k + 1);
    }
    ASSERT(memcmp(want[0], want[1], 32) != 0 && memcmp(want[1], want[2], 32) != 0);

    /* A fault-free run counts the writes and fsyncs of the path. */
    push_scenario(&f, db, FV_OFF, 0, &r);
    ASSERT_EQ(r.rc[0], SYNC_OK);
    ASSERT_EQ(r.rc[1], SYNC_OK);
    long writes = fv_writes(), syncs = fv_syncs();
    ASSERT_GT(writes, 4);
    ASSERT_GT(syncs, 2);
    printf("push path: %ld writes, %ld fsyncs\n", writes, syncs);

    long outcomes[3] = { 0, 0, 0 }, acked_lost = 0;
    for (int pass = 0; pass < 2; pass++) {
        const enum fv_mode *modes = pass == 0 ? write_modes : sync_modes;
        int nmodes = pass == 0 ? 3 : 2;
        long total = pass == 0 ? writes : syncs;
        for (int mi = 0; mi < nmodes; mi++) {
            sweeps++;
            for (long n = 1; n <= total; n = next_n(n, total)) {
                push_scenario(&f, db, modes[mi], n, &r);
                runs++;
                pf_state(db, got, &seq, &intact);
                int which = -1;
                for (int s = 0; s < 3; s++)
                    if (memcmp(got, want[s], 32) == 0)
                        which = s;
                if (!intact || which < 0 || which != seq ||
                    (r.rc[0] == SYNC_OK && which < 1) || (r.rc[1] == SYNC_OK && which < 2)) {
                    fprintf(stderr, "  %s at %ld: pushes %d %d, state %d, seq %lld, "
                            "integrity %s\n", fv_mode_name(modes[mi]), n, r.rc[0], r.rc[1],
                            which, (long long)seq, intact ? "ok" : "FAILED");
                    if ((r.rc[0] == SYNC_OK && which < 1) || (r.rc[1] == SYNC_OK && which < 2))
                        acked_lost++;
                    ASSERT(0);
                }
                ASSERT(r.fired);
                outcomes[which]++;
                /* The tablet resends both batches after the reboot: both are
                 * acknowledged (again) and the county holds both meals once. */
                struct server srv;
                ASSERT_EQ(pf_open(&srv, db), SYNC_OK);
                for (int k = 0; k < 2; k++) {
                    char *ack = NULL;
                    struct outcome o;
                    ASSERT_EQ(pf_push(&f, &srv, k, &ack, &o), SYNC_OK);
                    free(ack);
                }
                store_close(&srv);
                pf_state(db, got, &seq, &intact);
                ASSERT(intact);
                ASSERT_EQ(seq, 2);
                ASSERT_MEM_EQ(got, want[2], 32);
            }
        }
    }
    printf("push path: %ld faulted runs: %ld ended with no batch, %ld with batch 1, %ld with "
           "both; acknowledged batches lost: %ld\n", runs, outcomes[0], outcomes[1], outcomes[2],
           acked_lost);
    rm_db(db);
    pf_free(&f);
    rmdir(f.dir);
}


/* ---- tablet paths (a real server process; the tablet in-process) ---- */

static int64_t fixed_clock(void *ctx)
{
    (void)ctx;
    return 1764560000000LL;
}

static const struct sync_test_hooks clock_hooks = { NULL, NULL, fixed_clock, NULL };

static void tablet_copy(const char *tpl, const char *db)
{
    char p[300];
    pf_copy_file(tpl, db);
    snprintf(p, sizeof p, "%s-wal", db);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", db);
    unlink(p);
}

struct tstate {
    uint8_t hash[32];
    long    pending;
    int64_t cursor;
    int     intact;
};

static void tablet_state(const char *db, struct tstate *t)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    struct sync_status_info si;
    ASSERT_EQ(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    t->intact = sqlite3_step(st) == SQLITE_ROW &&
                strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
    sqlite3_finalize(st);
    sqlite3_close(h);
    struct sync_client *c = tablet_open(db);
    ASSERT_EQ(sync_content_hash(c, t->hash), SYNC_OK);
    ASSERT_EQ(sync_status(c, &si), SYNC_OK);
    t->pending = si.pending;
    t->cursor = si.cursor;
    sync_client_close(c);
}

static int same_state(const struct tstate *a, const struct tstate *b)
{
    return memcmp(a->hash, b->hash, 32) == 0 && a->pending == b->pending &&
           a->cursor == b->cursor;
}

/* The tablet's path: two local writes (what = 'w') or one pull ('p'). */
static void tablet_scenario(const char *tpl, const char *db, char what, char sql[2][512],
                            enum fv_mode mode, long n, int rc[2], int *fired)
{
    fv_revive();
    tablet_copy(tpl, db);
    struct sync_client *c = tablet_open(db);
    sync_client_set_test_hooks(c, &clock_hooks);
    fv_arm(mode, n);
    if (what == 'w') {
        for (int k = 0; k < 2; k++)
            rc[k] = sync_exec(c, sql[k]);
    } else {
        struct sync_stats st;
        rc[0] = sync_pull(c, &st);
        rc[1] = SYNC_ERROR;
    }
    *fired = fv_fired();
    fv_power_cut();
    sync_client_close(c);
    fv_revive();
}

static void sweep_tablet(const char *label, const char *tpl, const char *db, char what,
                         char sql[2][512], const struct tstate *want, int nwant)
{
    int rc[2], fired;
    struct tstate got;
    tablet_scenario(tpl, db, what, sql, FV_OFF, 0, rc, &fired);
    ASSERT_EQ(rc[0], SYNC_OK);
    long writes = fv_writes(), syncs = fv_syncs();
    ASSERT_GT(writes, 0);
    ASSERT_GT(syncs, 0);
    long nruns = 0, outcomes[4] = { 0, 0, 0, 0 };
    for (int pass = 0; pass < 2; pass++) {
        const enum fv_mode *modes = pass == 0 ? write_modes : sync_modes;
        int nmodes = pass == 0 ? 3 : 2;
        long total = pass == 0 ? writes : syncs;
        for (int mi = 0; mi < nmodes; mi++) {
            sweeps++;
            for (long n = 1; n <= total; n = next_n(n, total)) {
                tablet_scenario(tpl, db, what, sql, modes[mi], n, rc, &fired);
                runs++;
                nruns++;
                tablet_state(db, &got);
                int which = -1;
                for (int s = 0; s < nwant; s++)
                    if (same_state(&got, &want[s]))
                        which = s;
                /* states: 0 before, 1 first write (or the pull), 2 both writes,
                 * 3 the second write only (the first failed, the second did not) */
                int lost = (rc[0] == SYNC_OK && which != 1 && which != 2) ||
                           (what == 'w' && rc[1] == SYNC_OK && which != 2 && which != 3);
                if (!got.intact || which < 0 || lost || !fired) {
                    fprintf(stderr, "  %s: %s at %ld: rc %d %d, state %d (pending %ld, cursor "
                            "%lld), integrity %s, fired %d\n", label, fv_mode_name(modes[mi]), n,
                            rc[0], rc[1], which, got.pending, (long long)got.cursor,
                            got.intact ? "ok" : "FAILED", fired);
                    ASSERT(0);
                }
                outcomes[which]++;
                if (what == 'p') {          /* after the reboot, the pull completes */
                    struct sync_stats st;
                    struct sync_client *c = tablet_open(db);
                    ASSERT_EQ(sync_pull(c, &st), SYNC_OK);
                    sync_client_close(c);
                    tablet_state(db, &got);
                    ASSERT(got.intact && same_state(&got, &want[1]));
                }
            }
        }
    }
    printf("%s: %ld writes, %ld fsyncs; %ld faulted runs ending with nothing / the first / "
           "both / the second only: %ld/%ld/%ld/%ld; acknowledged writes lost: 0\n", label,
           writes, syncs, nruns, outcomes[0], outcomes[1], outcomes[2], outcomes[3]);
}

static void test_tablet_paths(void)
{
    struct srv_proc p;
    struct county c;
    char dir[128], db[256], wtpl[256], ptpl[256], sql[2][512], a[36], b[36], h[36];
    struct tstate want[4];
    ASSERT_EQ(fv_register(), 0);
    test_dir(dir, sizeof dir, "storage-tablet");
    snprintf(db, sizeof db, "%s/county.db", dir);
    county_seed(db, &c);
    srv_start_config(&p, dir, db, "{\"device_rate_per_s\": 0, \"ip_rate_per_s\": 0}");

    /* Write template: an enrolled hall tablet after its first sync. */
    struct sync_client *t = tablet_new(&p, "hallw", "hall", c.hall[0]);
    ASSERT_EQ(sync_run(t, NULL), SYNC_OK);
    sync_client_close(t);
    snprintf(wtpl, sizeof wtpl, "%s/hallw.db", dir);
    /* Pull template: enrolled, never synced. */
    t = tablet_new(&p, "hallp", "hall", c.hall[0]);
    sync_client_close(t);
    snprintf(ptpl, sizeof ptpl, "%s/hallp.db", dir);
    snprintf(db, sizeof db, "%s/work.db", dir);

    /* Write path: two meals, each its own sync_exec. */
    for (int k = 0; k < 2; k++) {
        uint8_t id[16];
        memset(id, 0, 16);
        id[0] = 0x01;
        id[6] = 0x70;                      /* a version-7 layout, fixed */
        id[15] = (uint8_t)(k + 1);
        snprintf(sql[k], sizeof sql[k], "INSERT INTO meal_logs (id, senior_id, hall_id, "
                 "service_date, meal_period, mode, served_at, price_paid_fen, subsidy_fen) "
                 "VALUES (%s, %s, %s, '2026-11-30', '%s', 'dine_in', 1764475200000, 700, 300)",
                 xid(id, a), xid(c.senior[0][k], b), xid(c.hall[0], h),
                 k == 0 ? "lunch" : "dinner");
    }
    tablet_copy(wtpl, db);
    tablet_state(db, &want[0]);
    for (int k = 0; k < 2; k++) {
        t = tablet_open(db);
        sync_client_set_test_hooks(t, &clock_hooks);
        if (sync_exec(t, sql[k]) != SYNC_OK)
            fprintf(stderr, "  exec: %s\n", sync_client_errmsg(t));
        sync_client_close(t);
        tablet_state(db, &want[k + 1]);
        ASSERT_EQ(want[k + 1].pending, want[0].pending + k + 1);
    }
    tablet_copy(wtpl, db);
    t = tablet_open(db);
    sync_client_set_test_hooks(t, &clock_hooks);
    ASSERT_EQ(sync_exec(t, sql[1]), SYNC_OK);
    sync_client_close(t);
    tablet_state(db, &want[3]);
    sweep_tablet("tablet write path", wtpl, db, 'w', sql, want, 4);

    /* Pull path: the first pull (one page here) lands whole or not at all. */
    tablet_copy(ptpl, db);
    tablet_state(db, &want[0]);
    t = tablet_open(db);
    struct sync_stats st;
    ASSERT_EQ(sync_pull(t, &st), SYNC_OK);
    ASSERT_GT(st.pulled, 0);
    sync_client_close(t);
    tablet_state(db, &want[1]);
    ASSERT(!same_state(&want[0], &want[1]));
    sweep_tablet("tablet pull path", ptpl, db, 'p', sql, want, 2);

    srv_stop(&p);
}

static const struct test_case tests[] = {
    TEST(test_push_path),
    TEST(test_tablet_paths),
    { NULL, NULL }
};

int main(void)
{
    log_set_level(-1);
    int rc = test_run_all("test_storage", tests);
    printf("storage faults: %ld sweeps, %ld faulted runs\n", sweeps, runs);
    return rc;
}
