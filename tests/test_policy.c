/* test_policy.c - each conflict policy, end to end through the server.
 *
 * Two or three tablets edit offline, sync in a chosen order, and the test
 * checks what the server kept, what it recorded as a conflict, and that
 * every tablet ends up holding exactly the server's rows for its scope.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "support.h"
#include "test.h"
#include "util.h"

static struct county cty;
static struct srv_proc srv;
static char dir[128];

struct fake_clock { int64_t ms; };
static int64_t fake_ms(void *ctx) { return ((struct fake_clock *)ctx)->ms; }

static void sync_ok(struct sync_client *c)
{
    struct sync_stats st;
    int rc = sync_run(c, &st);
    if (rc != SYNC_OK)
        fprintf(stderr, "  sync: %s\n", sync_client_errmsg(c));
    ASSERT_EQ(rc, SYNC_OK);
}

static void exec_ok(struct sync_client *c, const char *sql)
{
    int rc = sync_exec(c, sql);
    if (rc != SYNC_OK)
        fprintf(stderr, "  exec: %s\n", sync_client_errmsg(c));
    ASSERT_EQ(rc, SYNC_OK);
}

static void converged(struct sync_client *c, const char *role, int twp, const uint8_t *hall)
{
    uint8_t a[32], b[32];
    ASSERT_EQ(sync_content_hash(c, a), SYNC_OK);
    proj_hash(srv.db, role, cty.twp[twp], hall, b);
    ASSERT_MEM_EQ(a, b, 32);
}

static long count(const char *fmt, const uint8_t id[16])
{
    char sql[512], x[36];
    snprintf(sql, sizeof sql, fmt, xid(id, x));
    return server_count(srv.db, sql);
}

/* A batch whose reply is lost is resent and applied once. */
static int drop_first_push(void *ctx, const char *path)
{
    int *n = ctx;
    return strcmp(path, "/v1/push") == 0 && (*n)++ == 0 ? 1 : 0;
}

static void test_append_duplicate_is_idempotent(void)
{
    struct sync_client *h = tablet_new(&srv, "append", "hall", cty.hall[0]);
    uint8_t id[16];
    char sql[512], a[36], b[36], c[36];
    int drops = 0;
    id_new(id);
    sync_ok(h);                                        /* the hall learns its seniors */
    snprintf(sql, sizeof sql, "INSERT INTO meal_logs (id, senior_id, hall_id, service_date, "
             "meal_period, mode, served_at, price_paid_fen, subsidy_fen) VALUES (%s, %s, %s, "
             "'2026-11-02', 'lunch', 'dine_in', 1, 1000, 0)", xid(id, a), xid(cty.senior[0][1], b),
             xid(cty.hall[0], c));
    exec_ok(h, sql);
    struct sync_test_hooks hooks = { NULL, drop_first_push, NULL, &drops };
    sync_client_set_test_hooks(h, &hooks);
    ASSERT_EQ(sync_run(h, NULL), SYNC_ENET);          /* applied, reply lost */
    ASSERT_EQ(count("SELECT count(*) FROM meal_logs WHERE id = %s", id), 1);
    sync_ok(h);                                        /* resent: same seq, same bytes */
    ASSERT_EQ(count("SELECT count(*) FROM meal_logs WHERE id = %s", id), 1);
    ASSERT_EQ(server_count(srv.db, "SELECT count(*) FROM conflicts"), 0);
    struct sync_status_info st;
    sync_status(h, &st);
    ASSERT_EQ(st.pending, 0);
    ASSERT_EQ(st.next_batch_seq, 2);
    converged(h, "hall", 0, cty.hall[0]);
    sync_client_close(h);
}

static void test_lww_same_column_newer_hlc_wins(void)
{
    struct fake_clock ca = { now_ms() }, cb = { now_ms() + 60000 };
    struct sync_client *a = tablet_new(&srv, "lwwA", "caregiver", cty.twp[0]);
    struct sync_client *b = tablet_new(&srv, "lwwB", "caregiver", cty.twp[0]);
    struct sync_test_hooks ha = { NULL, NULL, fake_ms, &ca }, hb = { NULL, NULL, fake_ms, &cb };
    sync_client_set_test_hooks(a, &ha);
    sync_client_set_test_hooks(b, &hb);
    sync_ok(a);
    sync_ok(b);
    char sql[256], x[36];
    const uint8_t *s = cty.senior[0][2];
    snprintf(sql, sizeof sql, "UPDATE seniors SET phone = '13900000001' WHERE id = %s", xid(s, x));
    exec_ok(b, sql);                                   /* later clock */
    snprintf(sql, sizeof sql, "UPDATE seniors SET phone = '13900000002' WHERE id = %s", xid(s, x));
    exec_ok(a, sql);
    sync_ok(b);
    sync_ok(a);                                        /* arrives last, but older */
    ASSERT_EQ(count("SELECT count(*) FROM seniors WHERE id = %s AND "
                    "es_dec('seniors', 'phone', id, phone) = '13900000001'", s), 1);
    ASSERT_EQ(count("SELECT count(*) FROM conflicts WHERE pk = %s AND kind = 'lww'", s), 1);
    /* The record keeps both values, sealed like every personal value; the
     * county can open them. */
    char v[64];
    conflict_value(srv.db, s, "lww", "loser", "phone", v, sizeof v);
    ASSERT_STR_EQ(v, "13900000002");
    conflict_value(srv.db, s, "lww", "winner", "phone", v, sizeof v);
    ASSERT_STR_EQ(v, "13900000001");
    ASSERT_EQ(count("SELECT count(*) FROM conflicts WHERE pk = %s AND loser LIKE '%%1390000%%'", s), 0);
    sync_ok(b);
    converged(a, "caregiver", 0, NULL);
    converged(b, "caregiver", 0, NULL);
    sync_client_close(a);
    sync_client_close(b);
}

static void test_lww_different_columns_both_survive(void)
{
    struct sync_client *a = tablet_new(&srv, "colA", "caregiver", cty.twp[0]);
    struct sync_client *b = tablet_new(&srv, "colB", "caregiver", cty.twp[0]);
    sync_ok(a);
    sync_ok(b);
    char sql[256], x[36];
    const uint8_t *s = cty.senior[0][3];
    snprintf(sql, sizeof sql, "UPDATE seniors SET phone = '13700000003' WHERE id = %s", xid(s, x));
    exec_ok(a, sql);
    snprintf(sql, sizeof sql, "UPDATE seniors SET address = 'Village 3, No. 7' WHERE id = %s",
             xid(s, x));
    exec_ok(b, sql);
    sync_ok(a);
    sync_ok(b);
    sync_ok(a);
    ASSERT_EQ(count("SELECT count(*) FROM seniors WHERE id = %s AND "
                    "es_dec('seniors', 'phone', id, phone) = '13700000003' AND "
                    "es_dec('seniors', 'address', id, address) = 'Village 3, No. 7'", s), 1);
    ASSERT_EQ(count("SELECT count(*) FROM conflicts WHERE pk = %s", s), 0);
    converged(a, "caregiver", 0, NULL);
    converged(b, "caregiver", 0, NULL);
    sync_client_close(a);
    sync_client_close(b);
}

static void test_state_only_moves_forward(void)
{
    struct sync_client *a = tablet_new(&srv, "stA", "inspector", cty.twp[1]);
    struct sync_client *b = tablet_new(&srv, "stB", "inspector", cty.twp[1]);
    sync_ok(a);
    sync_ok(b);
    char sql[256], x[36];
    const uint8_t *k = cty.rcase[1][0];
    srv_exec(&srv, (snprintf(sql, sizeof sql, "UPDATE retrofit_cases SET status = 'approved' "
                             "WHERE id = %s", xid(k, x)), sql));
    sync_ok(a);
    sync_ok(b);
    snprintf(sql, sizeof sql, "UPDATE retrofit_cases SET status = 'works' WHERE id = %s", xid(k, x));
    exec_ok(a, sql);
    /* b is behind: it still thinks the case is merely assessed-able. */
    snprintf(sql, sizeof sql, "UPDATE retrofit_cases SET status = 'assessed', notes = 'measured "
             "doorway' WHERE id = %s", xid(k, x));
    exec_ok(b, sql);
    sync_ok(a);
    sync_ok(b);
    ASSERT_EQ(count("SELECT count(*) FROM retrofit_cases WHERE id = %s AND status = 'works'", k), 1);
    ASSERT_EQ(count("SELECT count(*) FROM conflicts WHERE pk = %s AND kind = 'state_regression'", k), 1);
    /* An outright step back, with nothing concurrent, is refused as well. */
    sync_ok(a);
    snprintf(sql, sizeof sql, "UPDATE retrofit_cases SET status = 'assessed' WHERE id = %s", xid(k, x));
    exec_ok(a, sql);
    sync_ok(a);
    ASSERT_EQ(count("SELECT count(*) FROM retrofit_cases WHERE id = %s AND status = 'works'", k), 1);
    ASSERT_EQ(count("SELECT count(*) FROM conflicts WHERE pk = %s AND kind = 'state_regression'", k), 2);
    sync_ok(b);
    converged(a, "inspector", 1, NULL);
    converged(b, "inspector", 1, NULL);
    sync_client_close(a);
    sync_client_close(b);
}

static void meal_sql(char *sql, size_t n, const uint8_t id[16], const uint8_t senior[16],
                     const uint8_t hall[16])
{
    char a[36], b[36], c[36];
    snprintf(sql, n, "INSERT INTO meal_logs (id, senior_id, hall_id, service_date, meal_period, "
             "mode, served_at, price_paid_fen, subsidy_fen) VALUES (%s, %s, %s, '2026-11-03', "
             "'lunch', 'dine_in', 1, 700, 300)", xid(id, a), xid(senior, b), xid(hall, c));
}

static void test_double_meal_claim_applies_once(void)
{
    struct sync_client *a = tablet_new(&srv, "mealA", "hall", cty.hall[0]);
    struct sync_client *b = tablet_new(&srv, "mealB", "hall", cty.hall[1]);
    uint8_t ia[16], ib[16];
    char sql[512];
    id_new(ia);
    id_new(ib);
    sync_ok(a);
    sync_ok(b);
    meal_sql(sql, sizeof sql, ia, cty.senior[0][5], cty.hall[0]);
    exec_ok(a, sql);
    meal_sql(sql, sizeof sql, ib, cty.senior[0][5], cty.hall[1]);
    exec_ok(b, sql);
    sync_ok(a);
    sync_ok(b);
    ASSERT_EQ(count("SELECT count(*) FROM meal_logs WHERE id = %s", ia), 1);
    ASSERT_EQ(count("SELECT count(*) FROM meal_logs WHERE id = %s", ib), 0);
    /* The losing claim can be read back in full. */
    char hex[33], q[256];
    hex_encode(hex, ib, 16);
    snprintf(q, sizeof q, "SELECT count(*) FROM conflicts WHERE kind = 'duplicate_claim' AND "
             "tbl = 'meal_logs' AND pk = x'%s' AND loser LIKE '%%\"subsidy_fen\":300%%' AND "
             "loser LIKE '%%%s%%'", hex, hex);
    ASSERT_EQ(server_count(srv.db, q), 1);
    sync_ok(b);                                        /* b drops its losing row */
    converged(a, "hall", 0, cty.hall[0]);
    converged(b, "hall", 0, cty.hall[1]);
    sync_client_close(a);
    sync_client_close(b);
}

/* New rows go in with the server's own INSERTs (push.c insert_all); one
 * refused row in the middle of a changeset sends the whole changeset back
 * to the session apply and the merge policies, and the rows around it land
 * exactly once, each with one row version. */
static void test_refused_claim_between_new_meals(void)
{
    struct sync_client *a = tablet_new(&srv, "midA", "hall", cty.hall[0]);
    struct sync_client *b = tablet_new(&srv, "midB", "hall", cty.hall[1]);
    uint8_t claim[16], ids[3][16];
    char sql[1600], one[512];
    sync_ok(a);
    sync_ok(b);
    id_new(claim);
    meal_sql(one, sizeof one, claim, cty.senior[0][9], cty.hall[0]);
    exec_ok(a, one);
    sync_ok(a);
    sql[0] = '\0';
    const uint8_t *senior[3] = { cty.senior[0][10], cty.senior[0][9], cty.senior[0][11] };
    for (int i = 0; i < 3; i++) {                    /* the middle one claims senior 9 again */
        id_new(ids[i]);
        meal_sql(one, sizeof one, ids[i], senior[i], cty.hall[1]);
        strcat(sql, one);
        strcat(sql, ";");
    }
    exec_ok(b, sql);
    long conflicts0 = server_count(srv.db, "SELECT count(*) FROM conflicts");
    sync_ok(b);
    for (int i = 0; i < 3; i += 2) {
        ASSERT_EQ(count("SELECT count(*) FROM meal_logs WHERE id = %s", ids[i]), 1);
        ASSERT_EQ(count("SELECT count(*) FROM row_versions WHERE tbl = 'meal_logs' AND pk = %s",
                        ids[i]), 1);
    }
    ASSERT_EQ(count("SELECT count(*) FROM meal_logs WHERE id = %s", ids[1]), 0);
    ASSERT_EQ(count("SELECT count(*) FROM conflicts WHERE kind = 'duplicate_claim' AND pk = %s",
                    ids[1]), 1);
    ASSERT_EQ(server_count(srv.db, "SELECT count(*) FROM conflicts"), conflicts0 + 1);
    ASSERT_EQ(count("SELECT count(*) FROM meal_logs WHERE id = %s", claim), 1);
    sync_ok(b);
    converged(a, "hall", 0, cty.hall[0]);
    converged(b, "hall", 0, cty.hall[1]);
    sync_client_close(a);
    sync_client_close(b);
}

static void test_double_cash_handout_applies_once(void)
{
    struct sync_client *a = tablet_new(&srv, "cashA", "caregiver", cty.twp[2]);
    struct sync_client *b = tablet_new(&srv, "cashB", "caregiver", cty.twp[2]);
    sync_ok(a);
    sync_ok(b);
    uint8_t va[16], vb[16], ha[16], hb[16];
    char sql[1024], s[36], t[36], v[36], h[36], cp[36];
    struct sync_client *tab[2] = { a, b };
    uint8_t *vid[2] = { va, vb }, *hid[2] = { ha, hb };
    for (int i = 0; i < 2; i++) {
        id_new(vid[i]);
        id_new(hid[i]);
        snprintf(sql, sizeof sql,
                 "INSERT INTO visits (id, township_id, senior_id, campaign_id, kind, visitor, "
                 "visited_at, service_date) VALUES (%s, %s, %s, %s, 'welfare', 'staff %d', 1, "
                 "'2026-10-11');"
                 "INSERT INTO visit_handouts (id, visit_id, township_id, senior_id, campaign_id, "
                 "kind, amount_fen) VALUES (%s, %s, %s, %s, %s, 'cash', 20000)",
                 xid(vid[i], v), xid(cty.twp[2], t), xid(cty.senior[2][7], s),
                 xid(cty.campaign, cp), i, xid(hid[i], h), v, t, s, cp);
        exec_ok(tab[i], sql);
    }
    sync_ok(a);
    sync_ok(b);
    sync_ok(a);
    ASSERT_EQ(count("SELECT count(*) FROM visit_handouts WHERE senior_id = %s AND kind = 'cash'",
                    cty.senior[2][7]), 1);
    ASSERT_EQ(count("SELECT sum(amount_fen) FROM visit_handouts WHERE senior_id = %s",
                    cty.senior[2][7]), 20000);
    ASSERT_EQ(count("SELECT count(*) FROM conflicts WHERE kind = 'duplicate_claim' AND pk = %s", hb), 1);
    ASSERT_EQ(count("SELECT count(*) FROM visits WHERE id = %s", vb), 1);   /* the visit stays */
    converged(a, "caregiver", 2, NULL);
    converged(b, "caregiver", 2, NULL);
    sync_client_close(a);
    sync_client_close(b);
}

/* The same ID-card number registered in two townships while both tablets
 * were offline: the server finds it by the blind index, without reading
 * the number, and keeps a record for a supervisor. */
static void test_same_person_twice_is_found(void)
{
    struct sync_client *a = tablet_new(&srv, "dupA", "caregiver", cty.twp[0]);
    struct sync_client *b = tablet_new(&srv, "dupB", "caregiver", cty.twp[1]);
    sync_ok(a);
    sync_ok(b);
    uint8_t ia[16], ib[16];
    char sql[512], x[36], t[36];
    id_new(ia);
    id_new(ib);
    snprintf(sql, sizeof sql, "INSERT INTO seniors (id, township_id, name, id_card) VALUES "
             "(%s, %s, 'Wang Fang', '53012419300101002X')", xid(ia, x), xid(cty.twp[0], t));
    exec_ok(a, sql);
    snprintf(sql, sizeof sql, "INSERT INTO seniors (id, township_id, name, id_card) VALUES "
             "(%s, %s, 'Wang  Fang', '530124 19300101 002x')", xid(ib, x), xid(cty.twp[1], t));
    exec_ok(b, sql);
    sync_ok(a);
    sync_ok(b);
    ASSERT_EQ(count("SELECT count(*) FROM conflicts WHERE kind = 'duplicate_person' AND pk = %s", ib), 1);
    char q[256], ha[33];
    hex_encode(ha, ia, 16);
    snprintf(q, sizeof q, "SELECT count(*) FROM conflicts WHERE kind = 'duplicate_person' AND "
             "winner LIKE '%%%s%%'", ha);
    ASSERT_EQ(server_count(srv.db, q), 1);
    /* Both rows stay (a supervisor decides), the number itself is sealed. */
    ASSERT_EQ(count("SELECT count(*) FROM seniors WHERE id = %s AND es_key_id(id_card) > 0 AND "
                    "id_card_bidx IS NOT NULL", ib), 1);
    ASSERT_EQ(server_count(srv.db, "SELECT count(*) FROM seniors WHERE id_card LIKE '%0101002%'"), 0);
    /* A different number is no duplicate. */
    sync_client_close(a);
    sync_client_close(b);
}

/* A visit whose senior moved to another township keeps its reference;
 * editing the visit's notes on the tablet (which no longer holds that
 * senior) must still work: only the columns that change are written. */
static void test_edit_row_whose_reference_left(void)
{
    struct sync_client *a = tablet_new(&srv, "moved", "caregiver", cty.twp[2]);
    sync_ok(a);
    uint8_t vid[16];
    char sql[768], v[36], t[36], s[36], cp[36];
    id_new(vid);
    snprintf(sql, sizeof sql, "INSERT INTO visits (id, township_id, senior_id, campaign_id, kind, "
             "visitor, visited_at, service_date) VALUES (%s, %s, %s, %s, 'welfare', 'staff', 1, "
             "'2026-10-12')", xid(vid, v), xid(cty.twp[2], t), xid(cty.senior[2][20], s),
             xid(cty.campaign, cp));
    exec_ok(a, sql);
    sync_ok(a);
    snprintf(sql, sizeof sql, "UPDATE seniors SET township_id = %s WHERE id = %s",
             xid(cty.twp[1], t), xid(cty.senior[2][20], s));
    srv_exec(&srv, sql);
    sync_ok(a);                                  /* the senior leaves this tablet */
    snprintf(sql, sizeof sql, "UPDATE visits SET notes = 'follow-up in spring' WHERE id = %s",
             xid(vid, v));
    exec_ok(a, sql);
    sync_ok(a);
    ASSERT_EQ(count("SELECT count(*) FROM visits WHERE id = %s AND "
                    "es_dec('visits', 'notes', id, notes) = 'follow-up in spring'", vid), 1);
    converged(a, "caregiver", 2, NULL);
    sync_client_close(a);
}

static int first_value(void *ctx, int ncol, const char *const *vals, const char *const *names)
{
    (void)names;
    snprintf(ctx, 64, "%s", ncol > 0 && vals[0] ? vals[0] : "(null)");
    return 0;
}

/* A county day is the local calendar day: breakfast at 07:30 in
 * Asia/Shanghai is 23:30 UTC the day before, and its service date is the
 * local one.  The tablet learns the county's offset at enrollment. */
static void test_local_service_date(void)
{
    struct sync_client *h = tablet_new(&srv, "calendar", "hall", cty.hall[0]);
    char out[64];
    ASSERT_EQ(sync_query(h, "SELECT local_date(1795995000000)", first_value, out), SYNC_OK);
    ASSERT_STR_EQ(out, "2026-11-30");                  /* 2026-11-29T23:30Z */
    ASSERT_EQ(sync_query(h, "SELECT local_date(1795995000000 - 27000001)", first_value, out), SYNC_OK);
    ASSERT_STR_EQ(out, "2026-11-29");                  /* 23:59:59.999 local */
    ASSERT_EQ(sync_query(h, "SELECT local_date(951782400000)", first_value, out), SYNC_OK);
    ASSERT_STR_EQ(out, "2000-02-29");                  /* leap day, 08:00 local */
    ASSERT_EQ(sync_query(h, "SELECT length(local_date())", first_value, out), SYNC_OK);
    ASSERT_STR_EQ(out, "10");
    sync_client_close(h);
}

/* A first sync larger than one page arrives in several pages, and the
 * tablet ends with exactly the server's rows. */
static int count_pulls(void *ctx, const char *path)
{
    if (strcmp(path, "/v1/pull") == 0)
        (*(int *)ctx)++;
    return 0;
}

static void test_initial_sync_in_pages(void)
{
    char sql[1024], h[36], s[36];
    snprintf(sql, sizeof sql,
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000) "
             "INSERT INTO meal_logs (id, senior_id, hall_id, service_date, meal_period, mode, "
             "served_at, price_paid_fen, subsidy_fen) SELECT uuid7(), %s, %s, "
             "'2025-' || printf('%%02d', 1 + i %% 12) || '-01', 'lunch', 'dine_in', i, 1000, 0 "
             "FROM n", xid(cty.senior[1][0], s), xid(cty.hall[2], h));
    srv_exec(&srv, sql);
    int pulls = 0;
    struct sync_test_hooks hooks = { NULL, count_pulls, NULL, &pulls };
    char path[256], code[64], err[256];
    struct sync_client *c = NULL;
    snprintf(path, sizeof path, "%s/pages.db", dir);
    srv_code(&srv, "hall", cty.hall[2], code, sizeof code);
    ASSERT_EQ(sync_client_open(&c, path, err, sizeof err), SYNC_OK);
    sync_client_set_test_hooks(c, &hooks);
    ASSERT_EQ(sync_enroll(c, srv.url, code, TEST_PIN), SYNC_OK);
    struct sync_stats st;
    ASSERT_EQ(sync_run(c, &st), SYNC_OK);
    ASSERT_GE(pulls, 2);
    ASSERT_GE(st.pulled, 4000);
    converged(c, "hall", 1, cty.hall[2]);
    sync_client_close(c);
}

int main(void)
{
    static const struct test_case tests[] = {
        TEST(test_append_duplicate_is_idempotent),
        TEST(test_lww_same_column_newer_hlc_wins),
        TEST(test_lww_different_columns_both_survive),
        TEST(test_state_only_moves_forward),
        TEST(test_double_meal_claim_applies_once),
        TEST(test_refused_claim_between_new_meals),
        TEST(test_double_cash_handout_applies_once),
        TEST(test_same_person_twice_is_found),
        TEST(test_edit_row_whose_reference_left),
        TEST(test_local_service_date),
        TEST(test_initial_sync_in_pages),
        { NULL, NULL }
    };
    char db[192];
    test_dir(dir, sizeof dir, "policy");
    snprintf(db, sizeof db, "%s/county.db", dir);
    county_seed(db, &cty);
    srv_start(&srv, dir, db);
    int rc = test_run_all("test_policy", tests);
    srv_stop(&srv);
    return rc;
}
