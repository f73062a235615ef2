/* demo_day.c - a day's work in the demo county, done by simulated tablets
 * through the real protocol (docs/DASHBOARD.md, "Demo").
 *
 * Each tablet is a real SDK client with its own database under dir: it
 * enrolls with a one-time code, pulls its scope, writes as its user would
 * (SQL through sync_exec, so the session extension records it) and syncs
 * over HTTP.  The day includes what a supervisor must see: a meal claimed
 * twice by a hall's two tablets, and a senior's phone number changed by two
 * caregivers offline.
 */
#include "demo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "eldersync.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define DEMO_PIN "2468"

struct day {
    struct server *srv;
    const char    *url, *dir;
    char           today[11];
    int64_t        day_ms;            /* local midnight of today, in UTC ms */
    char          *err;
    size_t         errlen;
    int            tablets;
};

static int fail_tablet(struct day *d, struct sync_client *c, const char *what, const char *name)
{
    snprintf(d->err, d->errlen, "%s %s: %s", what, name, c ? sync_client_errmsg(c) : "no client");
    return SYNC_ERROR;
}

/* Opens a fresh tablet database and enrolls it for role and scope (hex). */
static int tablet(struct day *d, const char *name, const char *role, const char *scope,
                  struct sync_client **out)
{
    char path[512], code[AUTH_CODE_LEN + 1], err[256];
    struct outcome o;
    *out = NULL;
    snprintf(path, sizeof path, "%s/%s.db", d->dir, name);
    unlink(path);
    for (const char *sfx = "-wal"; sfx; sfx = strcmp(sfx, "-wal") == 0 ? "-shm" : NULL) {
        char p2[520];
        snprintf(p2, sizeof p2, "%s%s", path, sfx);
        unlink(p2);
    }
    outcome_init(&o);
    if (auth_code_new(d->srv, role, scope, code, &o) != SYNC_OK) {
        snprintf(d->err, d->errlen, "enrollment code for %s: %s", name, o.detail);
        return SYNC_ERROR;
    }
    if (sync_client_open(out, path, err, sizeof err) != SYNC_OK) {
        snprintf(d->err, d->errlen, "open %s: %s", path, err);
        return SYNC_ERROR;
    }
    /* The server may still be starting: retry while nothing answers. */
    int rc = SYNC_EIO;
    for (int i = 0; i < 50 && (rc = sync_enroll(*out, d->url, code, DEMO_PIN)) == SYNC_EIO; i++)
        usleep(200000);
    if (rc != SYNC_OK)
        return fail_tablet(d, *out, "enroll", name);
    struct sync_stats s;
    if (sync_run(*out, &s) != SYNC_OK)
        return fail_tablet(d, *out, "first sync of", name);
    d->tablets++;
    return SYNC_OK;
}

static int exec(struct day *d, struct sync_client *c, const char *name, const char *sql)
{
    return sync_exec(c, sql) == SYNC_OK ? SYNC_OK : fail_tablet(d, c, "work on", name);
}

static int run(struct day *d, struct sync_client *c, const char *name)
{
    struct sync_stats s;
    return sync_run(c, &s) == SYNC_OK ? SYNC_OK : fail_tablet(d, c, "sync of", name);
}

static int first_text(void *ctx, int ncol, const char *const *values, const char *const *names)
{
    (void)names;
    if (ncol > 0 && values[0] && ((char *)ctx)[0] == '\0')
        snprintf(ctx, 65, "%s", values[0]);
    return 0;
}

/* ---- the work ------------------------------------------------------------ */

#define SUBSIDY "(CASE s.subsidy_level WHEN 2 THEN 500 WHEN 1 THEN 300 ELSE 0 END)"

/* Lunch at one hall: the counter logs the diners, the delivery tablet the
 * meals it takes out -- and, offline, one subsidised senior the counter
 * also logged (a duplicate claim for the merge to catch). */
static int hall_lunch(struct day *d, const char *hall, const char *twp, int price, int delivers,
                      int n)
{
    char name[64], name2[64], sql[2048], senior[65] = "";
    struct sync_client *counter = NULL, *van = NULL;
    snprintf(name, sizeof name, "hall-%.8s-counter", hall);
    snprintf(name2, sizeof name2, "hall-%.8s-delivery", hall);
    int rc = tablet(d, name, "hall", hall, &counter);
    if (rc == SYNC_OK) {
        snprintf(sql, sizeof sql,
            "INSERT INTO meal_logs (id, senior_id, hall_id, service_date, meal_period, mode,"
            " served_at, price_paid_fen, subsidy_fen)"
            " SELECT uuid7(), s.id, x'%s', '%s', 'lunch', 'dine_in',"
            "  %lld + abs(random() %% 5400000), max(%d - " SUBSIDY ", 0), " SUBSIDY
            " FROM seniors s WHERE s.township_id = x'%s' AND s.deleted = 0"
            " AND s.category <> 'concentrated_care' ORDER BY random() LIMIT %d",
            hall, d->today, (long long)(d->day_ms + 11 * 3600000LL), price, twp, n);
        rc = exec(d, counter, name, sql);
    }
    if (rc == SYNC_OK && delivers) {
        rc = tablet(d, name2, "hall", hall, &van);
        if (rc == SYNC_OK)
            rc = sync_query(counter, "SELECT lower(hex(m.senior_id)) FROM meal_logs m"
                            " WHERE m.subsidy_fen > 0 ORDER BY m.served_at DESC LIMIT 1",
                            first_text, senior) == SYNC_OK ? SYNC_OK
                 : fail_tablet(d, counter, "query on", name);
        if (rc == SYNC_OK) {
            snprintf(sql, sizeof sql,
                "INSERT INTO meal_logs (id, senior_id, hall_id, service_date, meal_period, mode,"
                " served_at, price_paid_fen, subsidy_fen)"
                " SELECT uuid7(), s.id, x'%s', '%s', 'lunch', 'delivery',"
                "  %lld + abs(random() %% 3600000), max(%d - " SUBSIDY ", 0), " SUBSIDY
                " FROM seniors s WHERE s.township_id = x'%s' AND s.deleted = 0"
                " AND s.category <> 'concentrated_care' AND (s.id = x'%s' OR NOT EXISTS"
                "  (SELECT 1 FROM meal_logs m WHERE m.senior_id = s.id"
                "   AND m.service_date = '%s' AND m.meal_period = 'lunch'))"
                " ORDER BY s.id = x'%s' DESC, random() LIMIT %d",
                hall, d->today, (long long)(d->day_ms + 11 * 3600000LL), price, twp, senior,
                d->today, senior, 8 + n / 8);
            rc = exec(d, van, name2, sql);
        }
    }
    /* The counter syncs first; the van's copy of the shared meal is refused. */
    if (rc == SYNC_OK)
        rc = run(d, counter, name);
    if (rc == SYNC_OK && van)
        rc = run(d, van, name2);
    sync_client_close(counter);
    sync_client_close(van);
    return rc;
}

/* Home services in one township, and one senior's phone number changed by
 * two caregivers who were both offline (an lww conflict). */
static int caregivers(struct day *d, const char *twp, int conflict)
{
    char name[64], name2[64], sql[2048], senior[65] = "";
    struct sync_client *a = NULL, *b = NULL;
    snprintf(name, sizeof name, "caregiver-%.8s-a", twp);
    snprintf(name2, sizeof name2, "caregiver-%.8s-b", twp);
    int rc = tablet(d, name, "caregiver", twp, &a);
    static const char *const kinds[] = { "cleaning", "bathing", "welfare" };
    for (int k = 0; rc == SYNC_OK && k < 3; k++) {
        snprintf(sql, sizeof sql,
            "INSERT INTO visits (id, township_id, senior_id, kind, visitor, visited_at,"
            " service_date, location, notes)"
            " SELECT uuid7(), s.township_id, s.id, '%s', '护理员 王芳', %lld + abs(random() %% 28800000),"
            " '%s', 'home', '%s' FROM seniors s WHERE s.township_id = x'%s' AND s.deleted = 0"
            " AND s.category <> 'concentrated_care' ORDER BY random() LIMIT %d",
            kinds[k], (long long)(d->day_ms + 8 * 3600000LL), d->today,
            k == 0 ? "打扫卫生，更换床单" : k == 1 ? "协助洗浴，精神良好" : "上门问候，了解近况",
            twp, k == 2 ? 2 : 4);
        rc = exec(d, a, name, sql);
    }
    if (rc == SYNC_OK && conflict) {
        rc = tablet(d, name2, "caregiver", twp, &b);
        if (rc == SYNC_OK)
            rc = sync_query(a, "SELECT lower(hex(id)) FROM seniors WHERE deleted = 0"
                            " AND category = 'centenarian' ORDER BY id LIMIT 1",
                            first_text, senior) == SYNC_OK ? SYNC_OK
                 : fail_tablet(d, a, "query on", name);
        if (rc == SYNC_OK && senior[0]) {
            snprintf(sql, sizeof sql, "UPDATE seniors SET phone = '13907710001' WHERE id = x'%s'",
                     senior);
            rc = exec(d, a, name, sql);
            if (rc == SYNC_OK) {
                snprintf(sql, sizeof sql, "UPDATE seniors SET phone = '13907710002'"
                         " WHERE id = x'%s'", senior);
                rc = exec(d, b, name2, sql);
            }
        }
    }
    if (rc == SYNC_OK)
        rc = run(d, a, name);
    if (rc == SYNC_OK && b)
        rc = run(d, b, name2);
    sync_client_close(a);
    sync_client_close(b);
    return rc;
}

/* An inspector's day: assess two applications, accept one finished job. */
static int inspector(struct day *d, const char *twp)
{
    char name[64], sql[2048];
    struct sync_client *c = NULL;
    snprintf(name, sizeof name, "inspector-%.8s", twp);
    int rc = tablet(d, name, "inspector", twp, &c);
    if (rc == SYNC_OK) {
        snprintf(sql, sizeof sql,
            "UPDATE retrofit_cases SET status = 'assessed', assessed_date = '%s',"
            " estimated_cost_fen = 320000 + abs(random() %% 300000)"
            " WHERE id IN (SELECT id FROM retrofit_cases WHERE status = 'applied'"
            " AND deleted = 0 ORDER BY applied_date LIMIT 2)", d->today);
        rc = exec(d, c, name, sql);
    }
    if (rc == SYNC_OK) {
        snprintf(sql, sizeof sql,
            "INSERT INTO retrofit_items (id, case_id, township_id, item_kind, description,"
            " cost_fen) SELECT uuid7(), id, township_id, 'grab_bar', '卫生间扶手', 45000"
            " FROM retrofit_cases WHERE assessed_date = '%s'", d->today);
        rc = exec(d, c, name, sql);
    }
    if (rc == SYNC_OK) {
        snprintf(sql, sizeof sql,
            "UPDATE retrofit_cases SET status = 'accepted', accepted_date = '%s',"
            " final_cost_fen = coalesce(approved_amount_fen, estimated_cost_fen)"
            " WHERE id IN (SELECT id FROM retrofit_cases WHERE status = 'works'"
            " AND deleted = 0 ORDER BY assessed_date LIMIT 1)", d->today);
        rc = exec(d, c, name, sql);
    }
    if (rc == SYNC_OK)
        rc = run(d, c, name);
    sync_client_close(c);
    return rc;
}

struct scope_row { char id[33], twp[33]; int price, delivers; };

static int load_scopes(struct server *srv, const char *sql, struct scope_row *rows, int max)
{
    sqlite3_stmt *st = NULL;
    int n = 0;
    pthread_mutex_lock(&srv->lock);
    if (sqlite3_prepare_v2(srv->db, sql, -1, &st, NULL) == SQLITE_OK) {
        while (n < max && sqlite3_step(st) == SQLITE_ROW) {
            snprintf(rows[n].id, sizeof rows[n].id, "%s", sqlite3_column_text(st, 0));
            snprintf(rows[n].twp, sizeof rows[n].twp, "%s", sqlite3_column_text(st, 1));
            rows[n].price = sqlite3_column_int(st, 2);
            rows[n].delivers = sqlite3_column_int(st, 3);
            n++;
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&srv->lock);
    return n;
}

int demo_day(struct server *srv, const char *url, const char *dir, char *err, size_t errlen)
{
    struct day d = { .srv = srv, .url = url, .dir = dir, .err = err, .errlen = errlen };
    int64_t local = now_ms() + (int64_t)srv->cfg.utc_offset_min * 60000;
    time_t t = (time_t)(local / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(d.today, sizeof d.today, "%Y-%m-%d", &tm);
    d.day_ms = local - local % 86400000 - (int64_t)srv->cfg.utc_offset_min * 60000;
    struct scope_row halls[16], twps[16];
    int nh = load_scopes(srv, "SELECT lower(hex(id)), lower(hex(township_id)), meal_price_fen,"
                              " delivers FROM dining_halls WHERE deleted = 0 ORDER BY name",
                         halls, 16);
    int nt = load_scopes(srv, "SELECT lower(hex(id)), lower(hex(id)), 0, 0 FROM townships"
                              " WHERE deleted = 0 ORDER BY name", twps, 16);
    int rc = nh > 0 && nt > 0 ? SYNC_OK : SYNC_ENOTFOUND;
    if (rc != SYNC_OK)
        snprintf(err, errlen, "the database holds no demo county (run demo-init)");
    for (int i = 0; rc == SYNC_OK && i < nh; i++)
        rc = hall_lunch(&d, halls[i].id, halls[i].twp, halls[i].price, i == 0 || halls[i].delivers,
                        70 + 10 * (i % 4));
    for (int i = 0; rc == SYNC_OK && i < nt; i++)
        rc = caregivers(&d, twps[i].id, i == 0);
    for (int i = 0; rc == SYNC_OK && i < nt; i += 2)
        rc = inspector(&d, twps[i].id);
    if (rc == SYNC_OK)
        log_info("demo day %s: %d tablets enrolled, worked and synced", d.today, d.tablets);
    return rc;
}
