/* test_dashboard_ui.c - the supervisors' dashboard in a real browser.
 *
 * A county gets a day's work through the real protocol: dining-hall tablets
 * log meals (one voided, one duplicate claim caught at merge, some last
 * month), caregivers visit seniors and hand over cash and goods, an
 * inspector moves retrofit cases, and two caregivers edit the same senior
 * offline so the server records a conflict.  Dashboard users are added with
 * `sync-server add-user`.  The figures the pages must show are computed here
 * straight from the server database with SQL and written to a JSON file;
 * tests/browser/dashboard.js then drives Debian's chromium (playwright-core,
 * no browser download) through every page and checks them, resolves the
 * conflict, issues an enrollment code, revokes a device, downloads a CSV and
 * tries to cross into another township as a township supervisor.
 *
 * Afterwards this harness checks that what the browser did happened: the
 * tablet that won the conflict receives the supervisor's values at its next
 * sync, the code shown in the page enrolls a new tablet, the revoked tablet
 * is refused.  Screenshots of every page go to build/screenshots/.
 *
 * Skipped, with a message, only when node or /usr/bin/chromium is absent
 * (make test installs both).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "ids.h"
#include "support.h"
#include "test.h"
#include "util.h"

#define CHROMIUM "/usr/bin/chromium"
#define SCRIPT   "tests/browser/dashboard.js"
#define NODE_MODULES "tests/browser/node_modules/playwright-core"
#define SHOTS    "build/screenshots"

static struct county cty;
static struct srv_proc srv;
static char dir[128];
static char month[32], prev_month[32], year[32], today[32], day1[48], prev_day1[48], old_day[32];
static char expect_path[256], result_path[256];
static cJSON *result;

/* Tablets kept across the tests. */
static struct sync_client *care_a, *care_b;
static char spare_dev[33];
static const uint8_t *conflict_senior;

#define LOSER_PHONE   "13900000002"
#define WINNER_PHONE  "13900000001"
#define EDITED_ADDR   "东门村3组7号（督导核实）"

/* ---- small helpers -------------------------------------------------------- */

static void sync_ok(struct sync_client *c)
{
    int rc = sync_run(c, NULL);
    if (rc != SYNC_OK)
        fprintf(stderr, "  sync: %s\n", sync_client_errmsg(c));
    ASSERT_EQ(rc, SYNC_OK);
}

static void exec_ok(struct sync_client *c, const char *sql)
{
    int rc = sync_exec(c, sql);
    if (rc != SYNC_OK)
        fprintf(stderr, "  exec: %s\n  in: %.200s\n", sync_client_errmsg(c), sql);
    ASSERT_EQ(rc, SYNC_OK);
}

static const char *hex(const uint8_t id[16], char out[33])
{
    hex_encode(out, id, 16);
    return out;
}

/* count(*) or sum() of printf-formatted SQL on the server database. */
static long q(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static long q(const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    long n = server_count(srv.db, sql);
    ASSERT(n >= 0);
    return n;
}

/* The county's local calendar (Asia/Shanghai, UTC+8, the server default). */
static void local_dates(void)
{
    time_t now = time(NULL) + 8 * 3600;
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(today, sizeof today, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    snprintf(month, sizeof month, "%04d-%02d", tm.tm_year + 1900, tm.tm_mon + 1);
    snprintf(year, sizeof year, "%04d", tm.tm_year + 1900);
    snprintf(day1, sizeof day1, "%s-01", month);
    int py = tm.tm_year + 1900, pm = tm.tm_mon;          /* tm_mon is 0-based: pm = last month */
    if (pm == 0) {
        pm = 12;
        py--;
    }
    snprintf(prev_month, sizeof prev_month, "%04d-%02d", py, pm);
    snprintf(prev_day1, sizeof prev_day1, "%s-01", prev_month);
    time_t old = now - 60 * 86400;
    gmtime_r(&old, &tm);
    snprintf(old_day, sizeof old_day, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

/* Runs argv with `input` on standard input and standard output/error into
 * log (appended).  Returns the exit status, -1 if it did not exit. */
static int run(char *const argv[], const char *input, const char *log)
{
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        dup2(fds[0], 0);
        close(fds[1]);
        FILE *f = fopen(log, "a");
        if (f) {
            dup2(fileno(f), 1);
            dup2(fileno(f), 2);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[0]);
    if (input) {
        size_t n = strlen(input);
        ASSERT_EQ(write(fds[1], input, n), (ssize_t)n);
    }
    close(fds[1]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void tail_file(const char *path, int lines)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "tail -n %d '%s' >&2", lines, path);
    if (system(cmd) != 0)
        fprintf(stderr, "  (cannot show %s)\n", path);
}

static int tool_present(const char *name)
{
    const char *path = getenv("PATH");
    char buf[1024];
    if (!path)
        return 0;
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, p, name);
        if (access(buf, X_OK) == 0)
            return 1;
        p += n;
        if (*p == ':')
            p++;
    }
    return 0;
}

/* ---- the county's day ---------------------------------------------------- */

static void meal(struct sync_client *h, const uint8_t hall[16], const uint8_t senior[16], const char *date,
                 const char *period, const char *mode, int subsidy, uint8_t out_id[16])
{
    char sql[700], a[36], b[36], c[36];
    uint8_t id[16];
    id_new(id);
    snprintf(sql, sizeof sql, "INSERT INTO meal_logs (id, senior_id, hall_id, service_date, meal_period, "
             "mode, served_at, price_paid_fen, subsidy_fen) VALUES (%s, %s, %s, '%s', '%s', '%s', %lld, "
             "%d, %d)", xid(id, a), xid(senior, b), xid(hall, c), date, period, mode,
             (long long)now_ms(), 1000 - subsidy, subsidy);
    exec_ok(h, sql);
    if (out_id)
        memcpy(out_id, id, 16);
}

static void visit(struct sync_client *cg, int t, int s, const char *kind, int cash_fen, int goods_fen)
{
    char sql[1600], v[36], tw[36], se[36], cp[36], hd[36];
    uint8_t vid[16], hid[16];
    id_new(vid);
    snprintf(sql, sizeof sql, "INSERT INTO visits (id, township_id, senior_id, campaign_id, kind, visitor, "
             "visited_at, service_date, notes) VALUES (%s, %s, %s, %s, '%s', '社工小李', %lld, '%s', "
             "'身体状况良好')", xid(vid, v), xid(cty.twp[t], tw), xid(cty.senior[t][s], se),
             xid(cty.campaign, cp), kind, (long long)now_ms(), today);
    exec_ok(cg, sql);
    if (cash_fen) {
        id_new(hid);
        snprintf(sql, sizeof sql, "INSERT INTO visit_handouts (id, visit_id, township_id, senior_id, "
                 "campaign_id, kind, amount_fen) VALUES (%s, %s, %s, %s, %s, 'cash', %d)",
                 xid(hid, hd), v, tw, se, cp, cash_fen);
        exec_ok(cg, sql);
    }
    if (goods_fen) {
        id_new(hid);
        snprintf(sql, sizeof sql, "INSERT INTO visit_handouts (id, visit_id, township_id, senior_id, "
                 "campaign_id, kind, goods, goods_value_fen) VALUES (%s, %s, %s, %s, %s, 'goods', "
                 "'米面油', %d)", xid(hid, hd), v, tw, se, cp, goods_fen);
        exec_ok(cg, sql);
    }
}

/* Seniors get names a bureau would recognise: family[(s + t) % 8] given[(s * 5 + t) % 9]. */
static const char *const family[] = { "王", "李", "张", "刘", "陈", "杨", "赵", "黄" };
static const char *const given[] = { "秀英", "桂兰", "德明", "玉珍", "建国", "淑芬", "文华", "凤英", "长林" };

static int64_t fake_b_ms(void *ctx) { (void)ctx; return now_ms() + 60000; }

static void test_county_day(void)
{
    char sql[1024], a[36];
    test_dir(dir, sizeof dir, "dashui");
    char db[192];
    snprintf(db, sizeof db, "%s/county.db", dir);
    county_seed(db, &cty);
    srv_start_config(&srv, dir, db, "{ \"retrofit_target\": 10, \"retrofit_overdue_days\": 30 }");
    local_dates();

    /* Names a bureau would recognise, and this year's campaign and cases. */
    static const char *const twp_names[NTWP] = { "城关镇", "龙泉乡", "石桥镇" };
    static const char *const hall_names[NHALL] = { "城关镇幸福食堂", "东街社区助餐点", "龙泉乡长者食堂" };
    for (int t = 0; t < NTWP; t++) {
        snprintf(sql, sizeof sql, "UPDATE townships SET name = '%s' WHERE id = %s", twp_names[t],
                 xid(cty.twp[t], a));
        srv_exec(&srv, sql);
    }
    for (int hh = 0; hh < NHALL; hh++) {
        snprintf(sql, sizeof sql, "UPDATE dining_halls SET name = '%s' WHERE id = %s", hall_names[hh],
                 xid(cty.hall[hh], a));
        srv_exec(&srv, sql);
    }
    {
        /* One exec per township: 24 seniors renamed in one transaction. */
        for (int t = 0; t < NTWP; t++) {
            char big[8192];
            size_t off = 0;
            for (int s = 0; s < NSENIOR; s++)
                off += (size_t)snprintf(big + off, sizeof big - off, "UPDATE seniors SET name = '%s%s' "
                                        "WHERE id = %s;", family[(s + t) % 8], given[(s * 5 + t) % 9],
                                        xid(cty.senior[t][s], a));
            srv_exec(&srv, big);
        }
    }
    snprintf(sql, sizeof sql, "UPDATE campaigns SET name = '%s年重阳节走访慰问', start_date = '%s-01-01', "
             "end_date = '%s-12-31' WHERE id = %s", year, year, year, xid(cty.campaign, a));
    srv_exec(&srv, sql);
    snprintf(sql, sizeof sql, "UPDATE retrofit_cases SET target_year = %s, applied_date = '%s', "
             "estimated_cost_fen = 860000", year, today);
    srv_exec(&srv, sql);
    snprintf(sql, sizeof sql, "UPDATE retrofit_cases SET applied_date = '%s' WHERE id = %s", old_day,
             xid(cty.rcase[0][2], a));
    srv_exec(&srv, sql);                               /* overdue: applied 60 days ago */

    /* Dining halls: H0 and H1 in 城关镇, H2 in 龙泉乡. */
    struct sync_client *h0 = tablet_new(&srv, "hall0", "hall", cty.hall[0]);
    struct sync_client *h1 = tablet_new(&srv, "hall1", "hall", cty.hall[1]);
    struct sync_client *h2 = tablet_new(&srv, "hall2", "hall", cty.hall[2]);
    struct sync_client *spare = tablet_new(&srv, "spare", "hall", cty.hall[2]);
    sync_ok(h0);
    sync_ok(h1);
    sync_ok(h2);
    sync_ok(spare);
    struct sync_status_info st;
    ASSERT_EQ(sync_status(spare, &st), SYNC_OK);
    snprintf(spare_dev, sizeof spare_dev, "%s", st.device_id);
    sync_client_close(spare);
    for (int s = 0; s < 6; s++)
        meal(h0, cty.hall[0], cty.senior[0][s], day1, "lunch", "dine_in", 300, NULL);
    for (int s = 6; s < 9; s++)
        meal(h0, cty.hall[0], cty.senior[0][s], today, "dinner", "delivery", 300, NULL);
    for (int s = 0; s < 3; s++)
        meal(h0, cty.hall[0], cty.senior[0][s], prev_day1, "lunch", "dine_in", 300, NULL);
    /* A mistaken entry and its void: neither counts. */
    uint8_t wrong[16], vid[16];
    meal(h0, cty.hall[0], cty.senior[0][9], today, "lunch", "dine_in", 300, wrong);
    id_new(vid);
    {
        char s2[1024], c1[36], c2[36], c3[36], c4[36];
        snprintf(s2, sizeof s2, "INSERT INTO meal_logs (id, senior_id, hall_id, service_date, meal_period, "
                 "mode, served_at, price_paid_fen, subsidy_fen, void_of) VALUES (%s, %s, %s, '%s', "
                 "'lunch', 'dine_in', %lld, 0, 0, %s)", xid(vid, c1), xid(cty.senior[0][9], c2),
                 xid(cty.hall[0], c3), today, (long long)now_ms(), xid(wrong, c4));
        exec_ok(h0, s2);
    }
    /* Every day of the month so far, and some of last month: a few lunches
     * in each hall, so the daily charts have a shape. */
    int nday = atoi(today + 8);
    for (int d = 1; d <= nday; d++) {
        char date[48];
        snprintf(date, sizeof date, "%s-%02d", month, d);
        for (int k = 0; k < 2 + d % 3; k++)
            meal(h0, cty.hall[0], cty.senior[0][14 + k], date, "lunch", k % 3 == 2 ? "delivery" : "dine_in",
                 300, NULL);
        for (int k = 0; k < 1 + d % 2; k++)
            meal(h2, cty.hall[2], cty.senior[1][14 + k], date, "lunch", k ? "delivery" : "dine_in", 400, NULL);
    }
    for (int d = 1; d <= 28; d += 3) {
        char date[48];
        snprintf(date, sizeof date, "%s-%02d", prev_month, d);
        meal(h0, cty.hall[0], cty.senior[0][20], date, "lunch", "dine_in", 300, NULL);
        meal(h2, cty.hall[2], cty.senior[1][20], date, "lunch", "dine_in", 400, NULL);
    }
    sync_ok(h0);
    for (int s = 10; s < 14; s++)
        meal(h1, cty.hall[1], cty.senior[0][s], today, "lunch", s % 2 ? "delivery" : "dine_in", 300, NULL);
    /* A second subsidised lunch for a senior H0 already fed on day 1. */
    meal(h1, cty.hall[1], cty.senior[0][5], day1, "lunch", "dine_in", 300, NULL);
    sync_ok(h1);
    for (int s = 0; s < 5; s++)
        meal(h2, cty.hall[2], cty.senior[1][s], today, "lunch", s < 3 ? "dine_in" : "delivery", 400, NULL);
    sync_ok(h2);
    ASSERT_EQ(q("SELECT count(*) FROM conflicts WHERE kind = 'duplicate_claim'"), 1);

    /* Caregivers: visits, cash and goods. */
    care_a = tablet_new(&srv, "careA", "caregiver", cty.twp[0]);
    care_b = tablet_new(&srv, "careB", "caregiver", cty.twp[0]);
    struct sync_client *c1 = tablet_new(&srv, "care1", "caregiver", cty.twp[1]);
    sync_ok(care_a);
    sync_ok(care_b);
    sync_ok(c1);
    for (int s = 0; s < 5; s++)
        visit(care_a, 0, s, "welfare", s < 3 ? 20000 : 0, s >= 3 ? 5000 : 0);
    visit(care_b, 0, 5, "cleaning", 0, 0);
    visit(care_b, 0, 6, "cleaning", 0, 0);
    for (int s = 0; s < 3; s++)
        visit(c1, 1, s, "bathing", 0, 0);
    visit(c1, 1, 3, "welfare", 20000, 8000);
    sync_ok(care_a);
    sync_ok(care_b);
    sync_ok(c1);
    sync_client_close(c1);

    /* The conflict: both caregivers change one senior's phone and address
     * offline; B's clock is a minute ahead, so B wins and A's values lose. */
    conflict_senior = cty.senior[0][3];                /* named in test_write_expectations */
    static struct sync_test_hooks hb = { NULL, NULL, fake_b_ms, NULL };
    sync_client_set_test_hooks(care_b, &hb);
    snprintf(sql, sizeof sql, "UPDATE seniors SET phone = '%s', address = '东门村3组7号' WHERE id = %s",
             WINNER_PHONE, xid(conflict_senior, a));
    exec_ok(care_b, sql);
    snprintf(sql, sizeof sql, "UPDATE seniors SET phone = '%s', address = '东门村三组七号' WHERE id = %s",
             LOSER_PHONE, xid(conflict_senior, a));
    exec_ok(care_a, sql);
    sync_ok(care_b);
    sync_ok(care_a);
    sync_ok(care_b);
    ASSERT_EQ(q("SELECT count(*) FROM conflicts WHERE kind = 'lww' AND pk = %s AND status = 'open'",
                xid(conflict_senior, a)), 1);

    /* The inspector: one case assessed, one approved by the county, built
     * and accepted today. */
    struct sync_client *ins = tablet_new(&srv, "insp0", "inspector", cty.twp[0]);
    sync_ok(ins);
    snprintf(sql, sizeof sql, "UPDATE retrofit_cases SET status = 'assessed', assessed_date = '%s' "
             "WHERE id = %s", today, xid(cty.rcase[0][0], a));
    exec_ok(ins, sql);
    snprintf(sql, sizeof sql, "UPDATE retrofit_cases SET status = 'assessed', assessed_date = '%s' "
             "WHERE id = %s", today, xid(cty.rcase[0][1], a));
    exec_ok(ins, sql);
    sync_ok(ins);
    snprintf(sql, sizeof sql, "UPDATE retrofit_cases SET status = 'approved', approved_amount_fen = 800000 "
             "WHERE id = %s", xid(cty.rcase[0][1], a));
    srv_exec(&srv, sql);
    sync_ok(ins);
    snprintf(sql, sizeof sql, "UPDATE retrofit_cases SET status = 'works' WHERE id = %s",
             xid(cty.rcase[0][1], a));
    exec_ok(ins, sql);
    snprintf(sql, sizeof sql, "UPDATE retrofit_cases SET status = 'accepted', accepted_date = '%s', "
             "final_cost_fen = 792050 WHERE id = %s", today, xid(cty.rcase[0][1], a));
    exec_ok(ins, sql);
    sync_ok(ins);
    sync_client_close(ins);
    ASSERT_EQ(q("SELECT count(*) FROM retrofit_cases WHERE status = 'accepted'"), 1);
    sync_client_close(h0);
    sync_client_close(h1);
    sync_client_close(h2);
}

static void test_users(void)
{
    ASSERT_EQ(srv_add_user(&srv, "admin", "county_admin", NULL, "correct horse battery"), 0);
    ASSERT_EQ(srv_add_user(&srv, "lq_sup", "township_supervisor", cty.twp[1], "longquan-2026"), 0);
}

/* ---- expected figures, straight from the database ------------------------ */

/* Meals that count: not a void entry and not voided. */
#define MEALS "FROM meal_logs m JOIN dining_halls d ON d.id = m.hall_id WHERE m.void_of IS NULL AND " \
              "NOT EXISTS (SELECT 1 FROM meal_logs v WHERE v.void_of = m.id)"

/* Figures for a period ("YYYY-MM" or "YYYY") and township filter tw ("" or
 * "AND x.township_id = x'..'" with x the table's alias). */
static cJSON *figures(const char *period, const char *twm, const char *twv)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "meals", (double)q("SELECT count(*) " MEALS " AND m.service_date LIKE '%s-%%' %s",
                                                   period, twm));
    cJSON_AddNumberToObject(o, "subsidy_fen", (double)q("SELECT coalesce(sum(m.subsidy_fen), 0) " MEALS
                                                         " AND m.service_date LIKE '%s-%%' %s", period, twm));
    cJSON_AddNumberToObject(o, "visits", (double)q("SELECT count(*) FROM visits v WHERE v.deleted = 0 AND "
                                                    "v.service_date LIKE '%s-%%' %s", period, twv));
    cJSON_AddNumberToObject(o, "seniors_visited", (double)q("SELECT count(DISTINCT v.senior_id) FROM visits v "
                            "WHERE v.deleted = 0 AND v.service_date LIKE '%s-%%' %s", period, twv));
    cJSON_AddNumberToObject(o, "cash_fen", (double)q("SELECT coalesce(sum(x.amount_fen), 0) FROM visit_handouts x "
                            "JOIN visits v ON v.id = x.visit_id WHERE x.kind = 'cash' AND v.service_date "
                            "LIKE '%s-%%' %s", period, twv));
    cJSON_AddNumberToObject(o, "goods_value_fen", (double)q("SELECT coalesce(sum(x.goods_value_fen), 0) FROM "
                            "visit_handouts x JOIN visits v ON v.id = x.visit_id WHERE x.kind = 'goods' AND "
                            "v.service_date LIKE '%s-%%' %s", period, twv));
    char twr[120] = "";
    if (twv[0])
        snprintf(twr, sizeof twr, "AND r.%s", strstr(twv, "township_id"));
    long acc = q("SELECT count(*) FROM retrofit_cases r WHERE r.deleted = 0 AND r.status IN ('accepted', "
                 "'paid') AND r.accepted_date LIKE '%s-%%' %s", period, twr);
    cJSON_AddNumberToObject(o, "retrofits_accepted", (double)acc);
    cJSON_AddNumberToObject(o, "retrofits_completed", (double)acc);
    return o;
}

static cJSON *scope_expect(const uint8_t *twp)
{
    char x[36], twm[80] = "", twv[80] = "";
    if (twp) {
        snprintf(twm, sizeof twm, "AND d.township_id = %s", xid(twp, x));
        snprintf(twv, sizeof twv, "AND v.township_id = %s", x);
    }
    cJSON *e = cJSON_CreateObject();
    cJSON_AddItemToObject(e, "figures", figures(month, twm, twv));
    cJSON_AddItemToObject(e, "prev", figures(prev_month, twm, twv));
    cJSON_AddItemToObject(e, "year", figures(year, twm, twv));
    /* meals totals and halls */
    cJSON *tot = cJSON_AddObjectToObject(e, "meal_totals");
    cJSON_AddNumberToObject(tot, "dine_in", (double)q("SELECT count(*) " MEALS " AND m.mode = 'dine_in' AND "
                                                      "m.service_date LIKE '%s-%%' %s", month, twm));
    cJSON_AddNumberToObject(tot, "delivery", (double)q("SELECT count(*) " MEALS " AND m.mode = 'delivery' AND "
                                                       "m.service_date LIKE '%s-%%' %s", month, twm));
    cJSON *halls = cJSON_AddArrayToObject(e, "halls");
    for (int hh = 0; hh < NHALL; hh++) {
        if (twp && memcmp(cty.twp[cty.hall_twp[hh]], twp, 16) != 0)
            continue;
        char hx[33], hl[36];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "hall_id", hex(cty.hall[hh], hx));
        xid(cty.hall[hh], hl);
        cJSON_AddNumberToObject(o, "meals", (double)q("SELECT count(*) " MEALS " AND m.hall_id = %s AND "
                                                      "m.service_date LIKE '%s-%%'", hl, month));
        cJSON_AddNumberToObject(o, "dine_in", (double)q("SELECT count(*) " MEALS " AND m.hall_id = %s AND "
                                "m.mode = 'dine_in' AND m.service_date LIKE '%s-%%'", hl, month));
        cJSON_AddNumberToObject(o, "delivery", (double)q("SELECT count(*) " MEALS " AND m.hall_id = %s AND "
                                "m.mode = 'delivery' AND m.service_date LIKE '%s-%%'", hl, month));
        cJSON_AddNumberToObject(o, "subsidy_fen", (double)q("SELECT coalesce(sum(m.subsidy_fen), 0) " MEALS
                                " AND m.hall_id = %s AND m.service_date LIKE '%s-%%'", hl, month));
        cJSON_AddItemToArray(halls, o);
    }
    char twc[80] = "", twr[80] = "";
    if (twp) {
        snprintf(twc, sizeof twc, "AND c.township_id = %s", x);
        snprintf(twr, sizeof twr, "AND r.township_id = %s", x);
    }
    cJSON_AddNumberToObject(e, "duplicates", (double)q("SELECT count(*) FROM conflicts c WHERE c.kind = "
                            "'duplicate_claim' AND c.tbl = 'meal_logs' %s", twc));
    cJSON_AddNumberToObject(e, "open_conflicts", (double)q("SELECT count(*) FROM conflicts c WHERE "
                            "c.status = 'open' %s", twc));
    /* retrofits: cases that reached each status this year */
    cJSON *fun = cJSON_AddObjectToObject(e, "funnel");
    static const char *const stages[] = { "applied", "assessed", "approved", "works", "accepted", "paid" };
    for (int k = 0; k < 6; k++)
        cJSON_AddNumberToObject(fun, stages[k], (double)q("SELECT count(*) FROM retrofit_cases r JOIN sync_states s "
                                "ON s.tbl = 'retrofit_cases' AND s.col = 'status' AND s.value = r.status WHERE "
                                "r.deleted = 0 AND r.target_year = %s AND s.rank >= %d %s", year, k + 1, twr));
    cJSON_AddNumberToObject(e, "overdue", (double)q("SELECT count(*) FROM retrofit_cases r WHERE r.deleted = 0 "
                            "AND r.status IN ('applied', 'assessed', 'works') AND julianday('%s') - julianday("
                            "max(coalesce(r.applied_date, ''), coalesce(r.assessed_date, ''), "
                            "coalesce(r.accepted_date, ''))) > 30 %s", today, twr));
    /* visits: the campaign's must-visit seniors (all centenarians here) */
    char twsn[80] = "";
    if (twp)
        snprintf(twsn, sizeof twsn, "AND s.township_id = %s", x);
    cJSON *cov = cJSON_AddObjectToObject(e, "coverage");
    long must = q("SELECT count(*) FROM seniors s WHERE s.deleted = 0 AND s.category = 'centenarian' %s", twsn);
    long visited = q("SELECT count(DISTINCT v.senior_id) FROM visits v JOIN seniors s ON s.id = v.senior_id "
                     "WHERE v.deleted = 0 AND v.campaign_id IS NOT NULL AND s.category = 'centenarian' %s", twsn);
    cJSON_AddNumberToObject(cov, "must", (double)must);
    cJSON_AddNumberToObject(cov, "visited", (double)visited);
    cJSON *ctw = cJSON_AddObjectToObject(cov, "townships");
    for (int t = 0; t < NTWP; t++) {
        char tx[33], tl[36];
        if (twp && memcmp(cty.twp[t], twp, 16) != 0)
            continue;
        xid(cty.twp[t], tl);
        cJSON *o = cJSON_AddObjectToObject(ctw, hex(cty.twp[t], tx));
        cJSON_AddNumberToObject(o, "must", (double)q("SELECT count(*) FROM seniors s WHERE s.deleted = 0 AND "
                                "s.category = 'centenarian' AND s.township_id = %s", tl));
        cJSON_AddNumberToObject(o, "visited", (double)q("SELECT count(DISTINCT v.senior_id) FROM visits v JOIN "
                                "seniors s ON s.id = v.senior_id WHERE v.deleted = 0 AND v.campaign_id IS NOT "
                                "NULL AND s.category = 'centenarian' AND s.township_id = %s", tl));
    }
    cJSON *kinds = cJSON_AddObjectToObject(e, "kinds");
    static const char *const kk[] = { "welfare", "cleaning", "bathing" };
    for (int k = 0; k < 3; k++)
        cJSON_AddNumberToObject(kinds, kk[k], (double)q("SELECT count(*) FROM visits v WHERE v.deleted = 0 AND "
                                "v.kind = '%s' AND v.service_date LIKE '%s-%%' %s", kk[k], month, twv));
    cJSON *ho = cJSON_AddObjectToObject(e, "handouts");
    cJSON_AddNumberToObject(ho, "cash_fen", (double)q("SELECT coalesce(sum(x.amount_fen), 0) FROM visit_handouts x "
                            "JOIN visits v ON v.id = x.visit_id WHERE x.kind = 'cash' %s", twv));
    cJSON_AddNumberToObject(ho, "goods_value_fen", (double)q("SELECT coalesce(sum(x.goods_value_fen), 0) FROM "
                            "visit_handouts x JOIN visits v ON v.id = x.visit_id WHERE x.kind = 'goods' %s", twv));
    char twd[80] = "";
    if (twp)
        snprintf(twd, sizeof twd, "WHERE township_id = %s", x);
    cJSON_AddNumberToObject(e, "devices", (double)q("SELECT count(*) FROM devices %s", twd));
    return e;
}

static void test_write_expectations(void)
{
    char hx[33];
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "url", srv.url);
    cJSON_AddStringToObject(root, "month", month);
    cJSON_AddStringToObject(root, "prev_month", prev_month);
    cJSON_AddNumberToObject(root, "year", atoi(year));
    cJSON_AddNumberToObject(root, "retrofit_target", 10);
    cJSON *admin = cJSON_AddObjectToObject(root, "admin");
    cJSON_AddStringToObject(admin, "name", "admin");
    cJSON_AddStringToObject(admin, "password", "correct horse battery");
    cJSON *sup = cJSON_AddObjectToObject(root, "supervisor");
    cJSON_AddStringToObject(sup, "name", "lq_sup");
    cJSON_AddStringToObject(sup, "password", "longquan-2026");
    cJSON_AddStringToObject(sup, "township_id", hex(cty.twp[1], hx));
    cJSON_AddStringToObject(sup, "township", "龙泉乡");
    cJSON_AddStringToObject(root, "other_township_id", hex(cty.twp[0], hx));
    cJSON_AddStringToObject(root, "other_hall_id", hex(cty.hall[0], hx));
    cJSON_AddItemToObject(root, "county", scope_expect(NULL));
    cJSON_AddItemToObject(root, "township", scope_expect(cty.twp[1]));
    cJSON *cf = cJSON_AddObjectToObject(root, "conflict");
    cJSON_AddStringToObject(cf, "row_id", hex(conflict_senior, hx));
    char nm[64];
    snprintf(nm, sizeof nm, "%s%s", family[(3 + 0) % 8], given[(3 * 5 + 0) % 9]);   /* senior 3 of T0 */
    cJSON_AddStringToObject(cf, "senior_name", nm);
    cJSON_AddStringToObject(cf, "pick_column", "phone");
    cJSON_AddStringToObject(cf, "pick_value", LOSER_PHONE);
    cJSON_AddStringToObject(cf, "winner_value", WINNER_PHONE);
    cJSON_AddStringToObject(cf, "edit_column", "address");
    cJSON_AddStringToObject(cf, "edit_value", EDITED_ADDR);
    cJSON_AddStringToObject(root, "revoke_device", spare_dev);
    cJSON *en = cJSON_AddObjectToObject(root, "enroll");
    cJSON_AddStringToObject(en, "role", "caregiver");
    cJSON_AddStringToObject(en, "scope", hex(cty.twp[2], hx));
    char *text = cJSON_Print(root);
    snprintf(expect_path, sizeof expect_path, "%s/expect.json", dir);
    FILE *f = fopen(expect_path, "w");
    ASSERT_NOT_NULL(f);
    fputs(text, f);
    fclose(f);
    free(text);
    cJSON_Delete(root);
}

/* ---- the browser ---------------------------------------------------------- */

static void test_browser(void)
{
    char log[256];
    snprintf(log, sizeof log, "%s/browser.log", dir);
    snprintf(result_path, sizeof result_path, "%s/result.json", dir);
    mkdir("build", 0755);
    mkdir(SHOTS, 0755);
    char *argv[] = { "node", SCRIPT, "--expect", expect_path, "--out", result_path, "--shots", SHOTS, NULL };
    int rc = run(argv, NULL, log);
    if (rc != 0) {
        fprintf(stderr, "  browser test exited %d; its log (%s):\n", rc, log);
        tail_file(log, 60);
    }
    /* The checks it ran, whatever the exit status. */
    FILE *f = fopen(result_path, "r");
    ASSERT_NOT_NULL(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    result = cJSON_Parse(buf);
    ASSERT_NOT_NULL(result);
    cJSON *checks = cJSON_GetObjectItem(result, "checks");
    ASSERT(cJSON_IsArray(checks));
    int ok = 0, bad = 0;
    cJSON *c;
    cJSON_ArrayForEach(c, checks) {
        if (cJSON_IsTrue(cJSON_GetObjectItem(c, "ok")))
            ok++;
        else {
            bad++;
            cJSON *nm = cJSON_GetObjectItem(c, "name"), *dt = cJSON_GetObjectItem(c, "detail");
            fprintf(stderr, "  browser check failed: %s: %s\n", cJSON_IsString(nm) ? nm->valuestring : "?",
                    cJSON_IsString(dt) ? dt->valuestring : "");
        }
    }
    printf("  browser: %d checks passed, %d failed (screenshots in %s)\n", ok, bad, SHOTS);
    ASSERT_EQ(bad, 0);
    ASSERT_GE(ok, 40);                                 /* the script really ran its checks */
    ASSERT_EQ(rc, 0);
}

/* The supervisor's resolution syncs to the tablet whose value had won. */
static int first_row(void *ctx, int ncol, const char *const *values, const char *const *names)
{
    (void)names;
    char *out = ctx;
    snprintf(out, 256, "%s|%s", ncol > 0 && values[0] ? values[0] : "", ncol > 1 && values[1] ? values[1] : "");
    return 1;
}

static void test_resolution_reaches_tablet(void)
{
    ASSERT_NOT_NULL(result);
    char sql[256], a[36], got[256] = "";
    ASSERT_EQ(q("SELECT count(*) FROM conflicts WHERE kind = 'lww' AND pk = %s AND status = 'resolved'",
                xid(conflict_senior, a)), 1);
    sync_ok(care_b);
    snprintf(sql, sizeof sql, "SELECT phone, address FROM seniors WHERE id = %s", xid(conflict_senior, a));
    ASSERT_EQ(sync_query(care_b, sql, first_row, got), SYNC_OK);
    ASSERT_STR_EQ(got, LOSER_PHONE "|" EDITED_ADDR);
    sync_ok(care_a);
    got[0] = '\0';
    ASSERT_EQ(sync_query(care_a, sql, first_row, got), SYNC_OK);
    ASSERT_STR_EQ(got, LOSER_PHONE "|" EDITED_ADDR);
    /* and the server's row, opened */
    ASSERT_EQ(q("SELECT count(*) FROM seniors WHERE id = %s AND es_dec('seniors', 'phone', id, phone) = '%s'",
                a, LOSER_PHONE), 1);
    sync_client_close(care_a);
    sync_client_close(care_b);
    care_a = care_b = NULL;
}

/* The code the page showed enrolls a tablet of the role and scope asked for. */
static void test_code_from_page_enrolls(void)
{
    ASSERT_NOT_NULL(result);
    cJSON *code = cJSON_GetObjectItem(result, "enroll_code");
    ASSERT(cJSON_IsString(code));
    char path[256], err[256], hx[33];
    snprintf(path, sizeof path, "%s/newcare.db", dir);
    struct sync_client *c = NULL;
    ASSERT_EQ(sync_client_open(&c, path, err, sizeof err), SYNC_OK);
    int rc = sync_enroll(c, srv.url, code->valuestring, TEST_PIN);
    if (rc != SYNC_OK)
        fprintf(stderr, "  enroll with the page's code: %s\n", sync_client_errmsg(c));
    ASSERT_EQ(rc, SYNC_OK);
    struct sync_status_info st;
    ASSERT_EQ(sync_status(c, &st), SYNC_OK);
    ASSERT_STR_EQ(st.role, "caregiver");
    ASSERT_STR_EQ(st.township_id, hex(cty.twp[2], hx));
    sync_ok(c);
    sync_client_close(c);
}

/* The device revoked in the page can no longer sync. */
static void test_revoked_device_refused(void)
{
    ASSERT_NOT_NULL(result);
    ASSERT_EQ(q("SELECT count(*) FROM devices WHERE id = x'%s' AND status = 'revoked'", spare_dev), 1);
    char path[256];
    snprintf(path, sizeof path, "%s/spare.db", dir);
    struct sync_client *c = tablet_open(path);
    ASSERT_EQ(sync_run(c, NULL), SYNC_EAUTH);
    sync_client_close(c);
}

static void test_stop(void)
{
    if (care_a)
        sync_client_close(care_a);
    if (care_b)
        sync_client_close(care_b);
    cJSON_Delete(result);
    srv_stop(&srv);
}

int main(void)
{
    if (!tool_present("node") || access(CHROMIUM, X_OK) != 0) {
        printf("SKIP test_dashboard_ui: %s is not installed (make test installs chromium and node)\n",
               tool_present("node") ? CHROMIUM : "node");
        printf("test_dashboard_ui: 0 passed, 0 failed\n");
        return 0;
    }
    if (access(NODE_MODULES, R_OK) != 0) {
        fprintf(stderr, "%s missing: run `make test` (it runs npm ci in tests/browser)\n", NODE_MODULES);
        printf("test_dashboard_ui: 0 passed, 1 failed\n");
        return 1;
    }
    static const struct test_case tests[] = {
        TEST(test_county_day),
        TEST(test_users),
        TEST(test_write_expectations),
        TEST(test_browser),
        TEST(test_resolution_reaches_tablet),
        TEST(test_code_from_page_enrolls),
        TEST(test_revoked_device_refused),
        TEST(test_stop),
        { NULL, NULL }
    };
    return test_run_all("test_dashboard_ui", tests);
}
