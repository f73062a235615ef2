/* test_demo.c - the demo county: sizes, valid resident IDs, meal rules
 * (one subsidy per senior and period a day, prices, local vs UTC dates),
 * retrofit workflow, campaign handouts, foreign keys, refusal on a filled
 * database, rollback on failure, determinism for a seed.
 *
 * The database is built here from schema/schema.sql (and server.sql) read
 * from disk; run from the repository root. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "demo.h"
#include "eldersync.h"
#include "test.h"

#define TODAY "2024-11-20"

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *p = NULL;
    size_t len = 0, cap = 0, n;
    char chunk[4096];
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            char *q = realloc(p, cap);
            if (q == NULL) {
                free(p);
                fclose(f);
                return NULL;
            }
            p = q;
        }
        memcpy(p + len, chunk, n);
        len += n;
    }
    fclose(f);
    if (p != NULL)
        p[len] = '\0';
    return p;
}

static void exec_file(sqlite3 *db, const char *path)
{
    char *sql = read_file(path);
    ASSERT_NOT_NULL(sql);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "  %s: %s\n", path, msg ? msg : "?");
    sqlite3_free(msg);
    free(sql);
    ASSERT_EQ(rc, SQLITE_OK);
}

static sqlite3 *new_db(void)
{
    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL), SQLITE_OK);
    exec_file(db, "schema/schema.sql");
    exec_file(db, "schema/server.sql");
    return db;
}

static sqlite3 *demo_db(uint64_t seed, const char *today)
{
    sqlite3 *db = new_db();
    char err[256];
    int rc = demo_init(db, seed, today, err, sizeof err);
    if (rc != SYNC_OK)
        fprintf(stderr, "  demo_init: %d %s\n", rc, err);
    ASSERT_EQ(rc, SYNC_OK);
    return db;
}

static int64_t q_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fprintf(stderr, "  %s\n  -> %s\n", sql, sqlite3_errmsg(db));
    ASSERT_NOT_NULL(st);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Shared fixture: one demo county for the read-only checks. */
static sqlite3 *shared;
static sqlite3 *county(void)
{
    if (shared == NULL)
        shared = demo_db(42, TODAY);
    return shared;
}

static int id_card_valid(const char *s)
{
    static const int w[17] = { 7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2 };
    if (s == NULL || strlen(s) != 18)
        return 0;
    int sum = 0;
    for (int i = 0; i < 17; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        sum += (s[i] - '0') * w[i];
    }
    return s[17] == "10X98765432"[sum % 11];
}

static void test_reference_data(void)
{
    sqlite3 *db = county();
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM townships"), 6);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM townships WHERE length(code) = 12"
                        " AND code GLOB '530124[0-9][0-9][0-9]000'"), 6);
    /* 4..6 villages per township, codes under the township's. */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM (SELECT township_id, count(*) n FROM villages"
                        " GROUP BY township_id) WHERE n BETWEEN 4 AND 6"), 6);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM villages v JOIN townships t"
                        " ON t.id = v.township_id WHERE substr(v.code, 1, 9) <> substr(t.code, 1, 9)"
                        " OR length(v.code) <> 12"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(DISTINCT code) = count(*) FROM villages"), 1);
    int64_t halls = q_int(db, "SELECT count(*) FROM dining_halls");
    ASSERT_GE(halls, 3);
    ASSERT_LE(halls, 4);
    ASSERT_EQ(q_int(db, "SELECT count(DISTINCT township_id) FROM dining_halls"), halls);
    ASSERT_GE(q_int(db, "SELECT count(*) FROM dining_halls WHERE delivers = 1"), 1);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM dining_halls WHERE name LIKE '%长者餐厅'"), halls);
    /* Every id is a 16-byte UUIDv7. */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM seniors WHERE length(id) <> 16"
                        " OR substr(hex(id), 13, 1) <> '7'"), 0);
}

static void test_seniors(void)
{
    sqlite3 *db = county();
    int64_t n = q_int(db, "SELECT count(*) FROM seniors");
    ASSERT_GE(n, 1800);
    ASSERT_LE(n, 2200);
    ASSERT_EQ(q_int(db, "SELECT count(DISTINCT id_card) FROM seniors"), n);
    /* Ages 60..104 by year; centenarians are exactly the 100+. */
    ASSERT_EQ(q_int(db, "SELECT min(2024 - birth_year) FROM seniors"), 60);
    ASSERT_LE(q_int(db, "SELECT max(2024 - birth_year) FROM seniors"), 104);
    int64_t cent = q_int(db, "SELECT count(*) FROM seniors WHERE category = 'centenarian'");
    ASSERT_GE(cent, 5);
    ASSERT_LE(cent, 12);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM seniors WHERE 2024 - birth_year >= 100"), cent);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM seniors WHERE category = 'advanced_age'"
                        " AND 2024 - birth_year NOT BETWEEN 80 AND 99"), 0);
    ASSERT_GE(q_int(db, "SELECT count(*) FROM seniors WHERE category = 'advanced_age'"), 150);
    ASSERT_GE(q_int(db, "SELECT count(*) FROM seniors WHERE category = 'concentrated_care'"), 10);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM seniors WHERE category = 'concentrated_care'"
                        " AND poverty_status IS NOT 'extreme_poverty'"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM seniors WHERE category NOT IN"
                        " ('centenarian', 'advanced_age', 'concentrated_care', 'ordinary')"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM seniors WHERE gender NOT IN ('F', 'M')"
                        " OR gender IS NULL"), 0);
    int64_t poor = q_int(db, "SELECT count(*) FROM seniors WHERE poverty_status IS NOT NULL");
    ASSERT_GE(poor * 100, n * 6);
    ASSERT_LE(poor * 100, n * 16);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM seniors WHERE poverty_status NOT IN"
                        " ('low_income', 'extreme_poverty')"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM seniors WHERE subsidy_level NOT IN (0, 1, 2)"
                        " OR subsidy_level IS NULL"), 0);
    /* Phones: ~70%, 11 digits starting 13/15/18. */
    int64_t phones = q_int(db, "SELECT count(*) FROM seniors WHERE phone IS NOT NULL");
    ASSERT_GE(phones * 100, n * 55);
    ASSERT_LE(phones * 100, n * 85);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM seniors WHERE phone IS NOT NULL AND NOT"
                        " (length(phone) = 11 AND phone GLOB '1[358][0-9][0-9][0-9][0-9]"
                        "[0-9][0-9][0-9][0-9][0-9]')"), 0);
    ASSERT_GT(q_int(db, "SELECT count(*) FROM seniors WHERE health_notes IS NOT NULL"), n / 4);
    /* Village belongs to the senior's township; address names the township. */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM seniors s JOIN villages v ON v.id = s.village_id"
                        " WHERE v.township_id <> s.township_id"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM seniors s JOIN townships t ON t.id = s.township_id"
                        " WHERE instr(s.address, t.name) <> 1"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM seniors WHERE length(name) NOT BETWEEN 2 AND 3"), 0);

    /* Resident IDs: valid check digit, county region, birth date matching
     * birth_year, sex digit matching gender. */
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT id_card, birth_year, gender FROM seniors", -1, &st,
                                 NULL), SQLITE_OK);
    int rows = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *idc = (const char *)sqlite3_column_text(st, 0);
        int by = sqlite3_column_int(st, 1);
        const char *g = (const char *)sqlite3_column_text(st, 2);
        ASSERT(id_card_valid(idc));
        ASSERT(strncmp(idc, "530124", 6) == 0);
        char year[8];
        snprintf(year, sizeof year, "%04d", by);
        ASSERT(strncmp(idc + 6, year, 4) == 0);
        int mm = (idc[10] - '0') * 10 + (idc[11] - '0');
        int dd = (idc[12] - '0') * 10 + (idc[13] - '0');
        ASSERT(mm >= 1 && mm <= 12 && dd >= 1 && dd <= 31);
        ASSERT_EQ((idc[16] - '0') % 2, g[0] == 'M' ? 1 : 0);
        rows++;
    }
    sqlite3_finalize(st);
    ASSERT_EQ(rows, n);
    /* Birth dates are real dates (SQLite normalises, so compare). */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM seniors WHERE date(substr(id_card, 7, 4) || '-' ||"
                        " substr(id_card, 11, 2) || '-' || substr(id_card, 13, 2)) IS NOT"
                        " substr(id_card, 7, 4) || '-' || substr(id_card, 11, 2) || '-' ||"
                        " substr(id_card, 13, 2)"), 0);
    /* Seniors at the 60/80/100 boundary have had their birthday already. */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM seniors WHERE 2024 - birth_year IN (60, 80, 100)"
                        " AND substr(id_card, 11, 4) > '1120'"), 0);
}

static void test_check_digit_helper(void)
{
    /* The GB 11643 example number. */
    ASSERT(id_card_valid("11010519491231002X"));
    ASSERT(!id_card_valid("110105194912310021"));
    ASSERT(!id_card_valid("11010519491231002"));
}

static void test_meals(void)
{
    sqlite3 *db = county();
    int64_t meals = q_int(db, "SELECT count(*) FROM meal_logs");
    ASSERT_GT(meals, 3 * 14 * 60);
    /* One subsidised meal per senior, day and period. */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM (SELECT senior_id FROM meal_logs"
                        " WHERE subsidy_fen > 0 AND void_of IS NULL"
                        " GROUP BY senior_id, service_date, meal_period HAVING count(*) > 1)"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM (SELECT senior_id FROM meal_logs"
                        " GROUP BY senior_id, service_date, meal_period HAVING count(*) > 1)"), 0);
    /* Paid + subsidy = the hall's price; subsidy follows the senior's level. */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM meal_logs m JOIN dining_halls h ON h.id = m.hall_id"
                        " WHERE m.price_paid_fen + m.subsidy_fen <> h.meal_price_fen"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM meal_logs m JOIN seniors s ON s.id = m.senior_id"
                        " WHERE m.subsidy_fen <> CASE s.subsidy_level WHEN 0 THEN 0"
                        " WHEN 1 THEN 300 ELSE 500 END"), 0);
    ASSERT_GT(q_int(db, "SELECT count(*) FROM meal_logs WHERE subsidy_fen > 0"), meals / 3);
    /* A hall serves its own township's seniors; delivery only if it delivers. */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM meal_logs m JOIN dining_halls h ON h.id = m.hall_id"
                        " JOIN seniors s ON s.id = m.senior_id WHERE s.township_id <> h.township_id"),
              0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM meal_logs m JOIN dining_halls h ON h.id = m.hall_id"
                        " WHERE m.mode = 'delivery' AND h.delivers = 0"), 0);
    int64_t delivered = q_int(db, "SELECT count(*) FROM meal_logs m JOIN dining_halls h"
                                  " ON h.id = m.hall_id WHERE h.delivers = 1 AND m.mode = 'delivery'");
    int64_t at_delivering = q_int(db, "SELECT count(*) FROM meal_logs m JOIN dining_halls h"
                                      " ON h.id = m.hall_id WHERE h.delivers = 1");
    ASSERT_GE(delivered * 100, at_delivering * 5);
    ASSERT_LE(delivered * 100, at_delivering * 30);
    /* The 14 days up to and including today. */
    ASSERT_EQ(q_int(db, "SELECT count(DISTINCT service_date) FROM meal_logs"), 14);
    ASSERT_EQ(q_int(db, "SELECT min(service_date) = '2024-11-07' AND max(service_date) = '"
                        TODAY "' FROM meal_logs"), 1);
    /* 60..150 lunches per hall per day. */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM (SELECT count(*) n FROM meal_logs"
                        " WHERE meal_period = 'lunch' GROUP BY hall_id, service_date)"
                        " WHERE n NOT BETWEEN 60 AND 150"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(DISTINCT hall_id || service_date) FROM meal_logs"
                        " WHERE meal_period = 'lunch'"),
              14 * q_int(db, "SELECT count(*) FROM dining_halls"));
    /* Lunch 11:30-12:30 local = 03:30-04:30 UTC on the same date. */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM meal_logs WHERE meal_period = 'lunch' AND"
                        " (date(served_at / 1000, 'unixepoch') <> service_date OR"
                        "  time(served_at / 1000, 'unixepoch') NOT BETWEEN '03:30:00' AND '04:30:00')"),
              0);
    /* Breakfast 07:00-08:00 local = 23:00-24:00 UTC of the previous day. */
    ASSERT_GT(q_int(db, "SELECT count(*) FROM meal_logs WHERE meal_period = 'breakfast'"), 14 * 5);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM meal_logs WHERE meal_period = 'breakfast' AND"
                        " (date(served_at / 1000, 'unixepoch') <> date(service_date, '-1 day') OR"
                        "  time(served_at / 1000, 'unixepoch') < '23:00:00')"), 0);
    /* And the local date of every meal is its service_date. */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM meal_logs WHERE"
                        " date(served_at / 1000 + 8 * 3600, 'unixepoch') <> service_date"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM meal_logs WHERE meal_period = 'breakfast'"
                        " AND mode <> 'dine_in'"), 0);
}

static void test_retrofits(void)
{
    sqlite3 *db = county();
    int64_t n = q_int(db, "SELECT count(*) FROM retrofit_cases");
    ASSERT_GE(n, 100);
    ASSERT_LE(n, 200);
    ASSERT_GE(q_int(db, "SELECT count(DISTINCT status) FROM retrofit_cases"), 5);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM retrofit_cases WHERE status NOT IN (SELECT value"
                        " FROM sync_states WHERE tbl = 'retrofit_cases')"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM retrofit_cases WHERE target_year <> 2024"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(DISTINCT senior_id) FROM retrofit_cases"), n);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM retrofit_cases c JOIN seniors s"
                        " ON s.id = c.senior_id WHERE s.township_id <> c.township_id"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM retrofit_cases"
                        " WHERE estimated_cost_fen NOT BETWEEN 300000 AND 800000"), 0);
    /* Money fields follow the workflow. */
    const char *ranked = "(SELECT rank FROM sync_states WHERE tbl = 'retrofit_cases'"
                         " AND value = c.status)";
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM retrofit_cases c WHERE"
             " (approved_amount_fen IS NOT NULL) <> (%s >= 3)", ranked);
    ASSERT_EQ(q_int(db, sql), 0);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM retrofit_cases c WHERE"
             " (final_cost_fen IS NOT NULL) <> (%s >= 5) OR"
             " (accepted_date IS NOT NULL) <> (%s >= 5) OR"
             " (assessed_date IS NOT NULL) <> (%s >= 2)", ranked, ranked, ranked);
    ASSERT_EQ(q_int(db, sql), 0);
    /* Dates in order and not after today. */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM retrofit_cases WHERE applied_date IS NULL"
                        " OR applied_date > '" TODAY "' OR assessed_date < applied_date"
                        " OR accepted_date < assessed_date OR accepted_date > '" TODAY "'"), 0);
    /* 2..6 distinct items per case adding up to the estimate. */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM (SELECT c.id FROM retrofit_cases c"
                        " LEFT JOIN retrofit_items i ON i.case_id = c.id GROUP BY c.id"
                        " HAVING count(i.id) NOT BETWEEN 2 AND 6"
                        " OR count(DISTINCT i.item_kind) <> count(i.id)"
                        " OR sum(i.cost_fen) <> c.estimated_cost_fen)"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM retrofit_items WHERE item_kind NOT IN"
                        " ('grab_bar', 'non_slip_floor', 'door_widening', 'lighting', 'alarm',"
                        " 'toilet_seat') OR cost_fen <= 0"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM retrofit_items i JOIN retrofit_cases c"
                        " ON c.id = i.case_id WHERE i.township_id <> c.township_id"), 0);
    /* done: never before works, always from accepted; accepted iff accepted/paid. */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM retrofit_items i JOIN retrofit_cases c"
                        " ON c.id = i.case_id WHERE"
                        " (c.status IN ('applied', 'assessed', 'approved') AND i.done = 1) OR"
                        " (c.status IN ('accepted', 'paid') AND (i.done = 0 OR i.accepted = 0)) OR"
                        " (c.status NOT IN ('accepted', 'paid') AND i.accepted = 1)"), 0);
}

static void test_campaign_and_visits(void)
{
    sqlite3 *db = county();
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM campaigns"), 1);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM campaigns WHERE name = '重阳节走访慰问'"
                        " AND start_date = '2024-10-01' AND end_date = '2024-10-31'"
                        " AND must_visit = 'centenarian advanced_age_poor extreme_poverty'"
                        " AND cash_fen = 20000"), 1);
    /* Cash at most once per senior per campaign, of the campaign's amount. */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM (SELECT senior_id FROM visit_handouts"
                        " WHERE kind = 'cash' GROUP BY senior_id, campaign_id"
                        " HAVING count(*) > 1)"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM visit_handouts h JOIN campaigns c"
                        " ON c.id = h.campaign_id WHERE h.kind = 'cash'"
                        " AND h.amount_fen <> c.cash_fen"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM visit_handouts WHERE kind = 'cash'"
                        " AND campaign_id IS NULL"), 0);
    ASSERT_GT(q_int(db, "SELECT count(*) FROM visit_handouts WHERE kind = 'goods'"
                        " AND goods IS NOT NULL AND goods_value_fen > 0"), 20);
    /* Welfare visits go to the campaign's list only: centenarians and the
     * poor (poverty_status is sealed, but present only for the poor). */
    int64_t listed = q_int(db, "SELECT count(*) FROM seniors"
                               " WHERE category = 'centenarian' OR poverty_status IS NOT NULL");
    int64_t cents = q_int(db, "SELECT count(*) FROM seniors WHERE category = 'centenarian'");
    int64_t visited = q_int(db, "SELECT count(DISTINCT senior_id) FROM visits v WHERE"
                                " kind = 'welfare' AND campaign_id IS NOT NULL");
    ASSERT_GT(visited, cents);
    ASSERT_LT(visited, listed);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM visits v JOIN seniors s ON s.id = v.senior_id"
                        " WHERE v.kind = 'welfare' AND s.category <> 'centenarian'"
                        " AND s.poverty_status IS NULL"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM visits v WHERE kind = 'welfare' AND NOT EXISTS"
                        " (SELECT 1 FROM visit_handouts h WHERE h.visit_id = v.id"
                        " AND h.kind = 'cash')"), 0);
    /* Every centenarian was visited. */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM seniors s WHERE category = 'centenarian' AND"
                        " NOT EXISTS (SELECT 1 FROM visits v WHERE v.senior_id = s.id"
                        " AND v.kind = 'welfare')"), 0);
    /* Visits fall within the campaign, local date = service_date. */
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM visits v JOIN campaigns c ON c.id = v.campaign_id"
                        " WHERE v.service_date NOT BETWEEN c.start_date AND c.end_date"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM visits WHERE"
                        " date(visited_at / 1000 + 8 * 3600, 'unixepoch') <> service_date"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM visits WHERE visitor NOT LIKE '% %'"), 0);
    /* Home services in the last four weeks. */
    ASSERT_GT(q_int(db, "SELECT count(*) FROM visits WHERE kind = 'cleaning'"), 50);
    ASSERT_GT(q_int(db, "SELECT count(*) FROM visits WHERE kind = 'bathing'"), 20);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM visits WHERE kind IN ('cleaning', 'bathing')"
                        " AND (service_date > '" TODAY "' OR service_date < '2024-10-24'"
                        " OR campaign_id IS NOT NULL)"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM visit_handouts h JOIN visits v ON v.id = h.visit_id"
                        " WHERE h.senior_id <> v.senior_id OR h.township_id <> v.township_id"),
              0);
}

static void test_foreign_keys(void)
{
    sqlite3 *db = county();
    ASSERT_EQ(q_int(db, "PRAGMA foreign_keys"), 1);
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    ASSERT_STR_EQ((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
}

static void test_second_run_refused(void)
{
    sqlite3 *db = county();
    int64_t before = q_int(db, "SELECT count(*) FROM seniors");
    char err[256] = "";
    ASSERT_EQ(demo_init(db, 42, TODAY, err, sizeof err), SYNC_EINVAL);
    ASSERT(err[0] != '\0');
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM seniors"), before);
    ASSERT(sqlite3_get_autocommit(db));         /* no transaction left open */
}

static void test_bad_arguments(void)
{
    sqlite3 *db = new_db();
    char err[256];
    const char *bad[] = { NULL, "", "2024-13-01", "2023-02-29", "2024-11-2", "2024/11/20",
                          "20x4-11-20", "2024-11-200", "1960-01-01" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        ASSERT_EQ(demo_init(db, 1, bad[i], err, sizeof err), SYNC_EINVAL);
        ASSERT(err[0] != '\0');
    }
    ASSERT_EQ(demo_init(NULL, 1, TODAY, err, sizeof err), SYNC_EINVAL);
    ASSERT_EQ(demo_init(db, 1, TODAY, NULL, 0), SYNC_OK);   /* err may be NULL */
    ASSERT_EQ(demo_init(db, 1, TODAY, NULL, 0), SYNC_EINVAL);
    sqlite3_close(db);

    /* Inside the caller's transaction: joined, left open, and the caller's
     * rollback undoes everything. */
    db = new_db();
    ASSERT_EQ(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    ASSERT_EQ(demo_init(db, 1, TODAY, err, sizeof err), SYNC_OK);
    ASSERT(!sqlite3_get_autocommit(db));
    ASSERT_EQ(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    ASSERT_EQ(demo_init(db, 1, TODAY, err, sizeof err), SYNC_OK);   /* nothing was left */
    sqlite3_close(db);
}

static void test_rollback_on_failure(void)
{
    /* A trigger makes the first meal fail after townships, seniors etc.
     * were inserted: everything must be rolled back. */
    sqlite3 *db = new_db();
    ASSERT_EQ(sqlite3_exec(db, "CREATE TRIGGER no_meals BEFORE INSERT ON meal_logs"
                               " BEGIN SELECT RAISE(ABORT, 'kitchen closed'); END",
                           NULL, NULL, NULL), SQLITE_OK);
    char err[256] = "";
    ASSERT_EQ(demo_init(db, 7, TODAY, err, sizeof err), SYNC_EIO);
    ASSERT(strstr(err, "kitchen closed") != NULL);
    ASSERT(sqlite3_get_autocommit(db));
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM townships"), 0);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM seniors"), 0);
    /* And it can then succeed. */
    ASSERT_EQ(sqlite3_exec(db, "DROP TRIGGER no_meals", NULL, NULL, NULL), SQLITE_OK);
    ASSERT_EQ(demo_init(db, 7, TODAY, err, sizeof err), SYNC_OK);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM townships"), 6);
    sqlite3_close(db);
}

/* Everything that does not depend on the random ids. */
static const char *const FINGERPRINT[] = {
    "SELECT count(*) FROM townships",
    "SELECT count(*) FROM villages",
    "SELECT count(*) FROM dining_halls",
    "SELECT count(*) FROM seniors",
    "SELECT count(*) FROM meal_logs",
    "SELECT count(*) FROM retrofit_cases",
    "SELECT count(*) FROM retrofit_items",
    "SELECT count(*) FROM visits",
    "SELECT count(*) FROM visit_handouts",
    "SELECT sum(price_paid_fen) FROM meal_logs",
    "SELECT sum(served_at % 1000003) FROM meal_logs",
    "SELECT sum(estimated_cost_fen) + sum(coalesce(final_cost_fen, 0)) FROM retrofit_cases",
    "SELECT sum(unicode(substr(id_card, 15, 1)) * birth_year) FROM seniors",
    "SELECT count(*) FROM seniors WHERE phone IS NOT NULL",
    "SELECT sum(length(name) + length(address)) FROM seniors",
};
#define N_FP ((int)(sizeof FINGERPRINT / sizeof FINGERPRINT[0]))

static void fingerprint(sqlite3 *db, int64_t out[N_FP])
{
    for (int i = 0; i < N_FP; i++)
        out[i] = q_int(db, FINGERPRINT[i]);
}

static void test_deterministic(void)
{
    int64_t a[N_FP], b[N_FP], c[N_FP];
    sqlite3 *db = demo_db(42, TODAY);
    fingerprint(db, a);
    sqlite3_close(db);
    fingerprint(county(), b);
    ASSERT_MEM_EQ(a, b, sizeof a);
    /* The same id-card list too (order-free comparison). */
    db = demo_db(42, TODAY);
    sqlite3_stmt *st = NULL;
    const char *ordered = "SELECT group_concat(x, ',') FROM (SELECT id_card || name || address"
                          " || coalesce(phone, '') x FROM seniors ORDER BY 1)";
    ASSERT_EQ(sqlite3_prepare_v2(db, ordered, -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    char *mine = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    ASSERT_EQ(sqlite3_prepare_v2(county(), ordered, -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    ASSERT_STR_EQ(mine, (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    free(mine);
    sqlite3_close(db);

    /* Another seed: another county. */
    db = demo_db(43, TODAY);
    fingerprint(db, c);
    sqlite3_close(db);
    ASSERT(memcmp(a, c, sizeof a) != 0);
}

static void test_campaign_year(void)
{
    /* Before October: last year's campaign. */
    sqlite3 *db = demo_db(5, "2025-03-05");
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM campaigns WHERE start_date = '2024-10-01'"
                        " AND end_date = '2024-10-31'"), 1);
    ASSERT_EQ(q_int(db, "SELECT min(service_date) = '2025-02-20' FROM meal_logs"), 1);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM retrofit_cases WHERE target_year <> 2025"), 0);
    ASSERT_EQ(q_int(db, "SELECT min(2025 - birth_year) FROM seniors"), 60);
    sqlite3_close(db);

    /* During October: this year's, visits only up to today. */
    db = demo_db(6, "2024-10-03");
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM campaigns WHERE start_date = '2024-10-01'"), 1);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM visits WHERE service_date > '2024-10-03'"), 0);
    ASSERT_GT(q_int(db, "SELECT count(*) FROM visits WHERE kind = 'welfare'"), 50);
    sqlite3_close(db);

    /* New Year's Day and a leap day: meals span the year boundary / Feb. */
    db = demo_db(8, "2025-01-01");
    ASSERT_EQ(q_int(db, "SELECT min(service_date) = '2024-12-19' FROM meal_logs"), 1);
    ASSERT_EQ(q_int(db, "SELECT count(*) FROM seniors WHERE 2025 - birth_year IN (60, 80, 100)"
                        " AND substr(id_card, 11, 4) <> '0101'"), 0);
    sqlite3_close(db);
    db = demo_db(9, "2024-02-29");
    ASSERT_EQ(q_int(db, "SELECT max(service_date) = '2024-02-29' FROM meal_logs"), 1);
    sqlite3_close(db);
}

static void test_print_scopes(void)
{
    sqlite3 *db = county();
    FILE *f = tmpfile();
    ASSERT_NOT_NULL(f);
    demo_print_scopes(db, f);
    rewind(f);
    char line[512];
    int townships = 0, halls = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        char hex[64];
        if (strncmp(line, "township ", 9) == 0) {
            ASSERT_EQ(sscanf(line + 9, "%63s", hex), 1);
            ASSERT_EQ(strlen(hex), 32);
            ASSERT(strstr(line, "镇") != NULL || strstr(line, "乡") != NULL);
            ASSERT_EQ(halls, 0);                 /* townships first */
            townships++;
        } else if (strncmp(line, "hall ", 5) == 0) {
            ASSERT_EQ(sscanf(line + 5, "%63s", hex), 1);
            ASSERT_EQ(strlen(hex), 32);
            ASSERT(strstr(line, "长者餐厅 (township ") != NULL);
            ASSERT(line[strlen(line) - 2] == ')');
            halls++;
        } else {
            ASSERT(0 && "unexpected line");
        }
        /* The hex id is a real row id. */
        char sql[160];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE id = x'%s'",
                 line[0] == 't' ? "townships" : "dining_halls", hex);
        ASSERT_EQ(q_int(db, sql), 1);
    }
    fclose(f);
    ASSERT_EQ(townships, 6);
    ASSERT_EQ(halls, q_int(db, "SELECT count(*) FROM dining_halls"));
    demo_print_scopes(db, NULL);                 /* no-op, no crash */
}

static void test_speed(void)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sqlite3 *db = demo_db(77, TODAY);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    sqlite3_close(db);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    fprintf(stderr, "  demo_init (in-memory, incl. schema): %.0f ms\n", ms);
    ASSERT_LT(ms, 10000.0);     /* generous: sanitizer builds are slower */
}

static void test_teardown(void)
{
    if (shared != NULL)
        sqlite3_close(shared);
    shared = NULL;
}

static const struct test_case tests[] = {
    TEST(test_check_digit_helper),
    TEST(test_reference_data),
    TEST(test_seniors),
    TEST(test_meals),
    TEST(test_retrofits),
    TEST(test_campaign_and_visits),
    TEST(test_foreign_keys),
    TEST(test_second_run_refused),
    TEST(test_bad_arguments),
    TEST(test_rollback_on_failure),
    TEST(test_deterministic),
    TEST(test_campaign_year),
    TEST(test_print_scopes),
    TEST(test_speed),
    TEST(test_teardown),
    { NULL, NULL },
};

int main(void)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "test_demo: sodium_init failed\n");
        return 1;
    }
    return test_run_all("test_demo", tests);
}
