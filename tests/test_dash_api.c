/* test_dash_api.c - the dashboard's JSON API over real HTTP: accounts,
 * sessions, CSRF, role and scope on every endpoint, figures against the
 * database after real tablet syncs, CSV exports, conflict resolution that
 * syncs back to a tablet, and bad input that changes nothing. */
#include "test.h"
#include "support.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "util.h"

static struct {
    struct county   c;
    struct srv_proc p;
    char            dir[128], db[192];
} F;

struct resp {
    int   status;
    char  head[4096];
    char *body;
    size_t len;
};

static void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* One request on a fresh connection.  cookie and csrf may be NULL. */
static void req(struct resp *r, const char *method, const char *path, const char *cookie,
                const char *csrf, const char *body)
{
    char head[2048];
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Connection: close\r\n%s%s%s%s%s%s",
                     method, path, cookie ? "Cookie: " : "", cookie ? cookie : "",
                     cookie ? "\r\n" : "", csrf ? "X-CSRF-Token: " : "", csrf ? csrf : "",
                     csrf ? "\r\n" : "");
    if (body || strcmp(method, "POST") == 0)
        n += snprintf(head + n, sizeof head - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n", blen);
    n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(fd >= 0);
    struct timeval tv = { 10, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)F.p.port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ASSERT_EQ(send(fd, head, (size_t)n, MSG_NOSIGNAL), n);
    if (blen)
        ASSERT_EQ(send(fd, body, blen, MSG_NOSIGNAL), (ssize_t)blen);
    size_t cap = 65536, got = 0;
    char *buf = malloc(cap);
    ssize_t k;
    while ((k = recv(fd, buf + got, cap - got - 1, 0)) > 0) {
        got += (size_t)k;
        if (cap - got < 4096)
            buf = realloc(buf, cap *= 2);
    }
    close(fd);
    buf[got] = '\0';
    memset(r, 0, sizeof *r);
    char *end = strstr(buf, "\r\n\r\n");
    ASSERT_NOT_NULL(end);
    r->status = atoi(buf + 9);
    snprintf(r->head, sizeof r->head, "%.*s", (int)(end - buf), buf);
    r->len = got - (size_t)(end + 4 - buf);
    r->body = malloc(r->len + 1);
    memcpy(r->body, end + 4, r->len + 1);
    free(buf);
}

/* Expects status and, for errors, the JSON error name. */
static void expect(const char *method, const char *path, const char *cookie, const char *csrf,
                   const char *body, int status, const char *error)
{
    struct resp r;
    req(&r, method, path, cookie, csrf, body);
    cJSON *j = cJSON_Parse(r.body);
    const char *e = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "error"));
    if (r.status != status || (error && (e == NULL || strcmp(e, error) != 0)))
        fprintf(stderr, "  %s %s: %d %.200s (wanted %d %s)\n", method, path, r.status, r.body,
                status, error ? error : "");
    ASSERT_EQ(r.status, status);
    if (error)
        ASSERT_STR_EQ(e, error);
    cJSON_Delete(j);
    resp_free(&r);
}

/* GET path as JSON (asserting 200). */
static cJSON *get_json(const char *path, const char *cookie)
{
    struct resp r;
    req(&r, "GET", path, cookie, NULL, NULL);
    if (r.status != 200)
        fprintf(stderr, "  GET %s: %d %.200s\n", path, r.status, r.body);
    ASSERT_EQ(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    resp_free(&r);
    ASSERT_NOT_NULL(j);
    return j;
}

struct sess { char cookie[128], csrf[64]; };

static int login(const char *name, const char *pw, struct sess *s)
{
    char body[256];
    struct resp r;
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"password\":\"%s\"}", name, pw);
    req(&r, "POST", "/api/login", NULL, NULL, body);
    int status = r.status;
    if (status == 200) {
        const char *c = strstr(r.head, "Set-Cookie: es_session=");
        ASSERT_NOT_NULL(c);
        ASSERT_NOT_NULL(strstr(c, "HttpOnly"));
        ASSERT_NOT_NULL(strstr(c, "SameSite=Strict"));
        snprintf(s->cookie, sizeof s->cookie, "%.*s", (int)strcspn(c + 12, ";"), c + 12);
        cJSON *j = cJSON_Parse(r.body);
        snprintf(s->csrf, sizeof s->csrf, "%s",
                 cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "csrf")));
        cJSON_Delete(j);
    }
    resp_free(&r);
    return status;
}

static double num(const cJSON *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *x = o;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
        x = cJSON_GetObjectItemCaseSensitive(x, k);
    ASSERT(cJSON_IsNumber(x));
    return cJSON_GetNumberValue(x);
}

static char g_hex[NTWP][33], g_hall_hex[NHALL][33];
static struct sess S_ADMIN, S_SUP, S_T0, S_T1;

/* ---- setup: a county, users, a day's work synced by real tablets -------- */

static void today(char out[11])
{
    time_t t = time(NULL) + 8 * 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

static void meals(struct sync_client *c, int hall, int first, int n, const char *mode,
                  int subsidy)
{
    char sql[1024], a[36], b[36], d[11];
    today(d);
    for (int i = first; i < first + n; i++) {
        snprintf(sql, sizeof sql, "INSERT INTO meal_logs (id, senior_id, hall_id, service_date,"
                 " meal_period, mode, served_at, price_paid_fen, subsidy_fen) VALUES (uuid7(),"
                 " %s, %s, '%s', 'lunch', '%s', %lld, %d, %d)",
                 xid(F.c.senior[F.c.hall_twp[hall]][i], a), xid(F.c.hall[hall], b), d, mode,
                 (long long)now_ms(), 1000 - subsidy, subsidy);
        ASSERT_EQ(sync_exec(c, sql), SYNC_OK);
    }
}

static void sync_ok(struct sync_client *c)
{
    struct sync_stats st;
    if (sync_run(c, &st) != SYNC_OK)
        fprintf(stderr, "  sync: %s\n", sync_client_errmsg(c));
    ASSERT_EQ(sync_run(c, &st), SYNC_OK);
}

static void test_setup(void)
{
    test_dir(F.dir, sizeof F.dir, "dash_api");
    snprintf(F.db, sizeof F.db, "%s/county.db", F.dir);
    county_seed(F.db, &F.c);
    for (int t = 0; t < NTWP; t++)
        hex_encode(g_hex[t], F.c.twp[t], 16);
    for (int h = 0; h < NHALL; h++)
        hex_encode(g_hall_hex[h], F.c.hall[h], 16);
    srv_start_config(&F.p, F.dir, F.db, "{\"login_burst\": 1000, \"login_rate_per_min\": 6000}");
    ASSERT_EQ(srv_add_user(&F.p, "admin", "county_admin", NULL, "admin-password"), 0);
    ASSERT_EQ(srv_add_user(&F.p, "sup", "county_supervisor", NULL, "sup-password"), 0);
    ASSERT_EQ(srv_add_user(&F.p, "t0", "township_supervisor", F.c.twp[0], "t0-password"), 0);
    ASSERT_EQ(srv_add_user(&F.p, "t1", "township_supervisor", F.c.twp[1], "t1-password"), 0);
    /* add-user refuses what it should, and adds nothing then */
    ASSERT(srv_add_user(&F.p, "x", "township_supervisor", NULL, "long-enough") != 0);
    ASSERT(srv_add_user(&F.p, "x", "county_supervisor", F.c.twp[0], "long-enough") != 0);
    ASSERT(srv_add_user(&F.p, "x", "mayor", NULL, "long-enough") != 0);
    ASSERT(srv_add_user(&F.p, "x", "county_admin", NULL, "short") != 0);
    ASSERT(srv_add_user(&F.p, "admin", "county_admin", NULL, "another-password") != 0);
    ASSERT_EQ(server_count(F.db, "SELECT count(*) FROM dash_users"), 4);
    ASSERT_EQ(server_count(F.db, "SELECT count(*) FROM dash_users WHERE pw_hash LIKE '$argon2id$%'"),
              4);

    /* A day's work: meals at H0 (T0) and H2 (T1), then sync. */
    struct sync_client *h0 = tablet_new(&F.p, "h0", "hall", F.c.hall[0]);
    struct sync_client *h2 = tablet_new(&F.p, "h2", "hall", F.c.hall[2]);
    sync_ok(h0);
    sync_ok(h2);
    meals(h0, 0, 0, 6, "dine_in", 300);
    meals(h0, 0, 6, 2, "delivery", 300);
    meals(h2, 2, 0, 3, "dine_in", 500);
    sync_ok(h0);
    sync_ok(h2);
    sync_client_close(h0);
    sync_client_close(h2);

    ASSERT_EQ(login("admin", "admin-password", &S_ADMIN), 200);
    ASSERT_EQ(login("sup", "sup-password", &S_SUP), 200);
    ASSERT_EQ(login("t0", "t0-password", &S_T0), 200);
    ASSERT_EQ(login("t1", "t1-password", &S_T1), 200);
}

/* ---- logins and sessions -------------------------------------------------- */

static void test_login(void)
{
    struct sess s;
    ASSERT_EQ(login("admin", "wrong-password", &s), 401);
    ASSERT_EQ(login("nobody", "admin-password", &s), 401);
    expect("POST", "/api/login", NULL, NULL, "{\"name\":\"admin\",\"password\":\"wrong\"}", 401,
           "bad_credentials");
    expect("POST", "/api/login", NULL, NULL, "not json", 400, "bad_request");
    expect("POST", "/api/login", NULL, NULL, "{\"name\":\"admin\"}", 400, "bad_request");
    expect("POST", "/api/login", NULL, NULL, "{\"name\":7,\"password\":\"x\"}", 400, "bad_request");
    expect("GET", "/api/login", NULL, NULL, NULL, 405, "method");
    /* A body over the login cap is refused unread. */
    char *big = malloc(8192);
    memset(big, 'a', 8191);
    big[8191] = '\0';
    expect("POST", "/api/login", NULL, NULL, big, 413, "too_large");
    free(big);
    /* /api/me names the user; the cookie is stored only as a hash */
    cJSON *me = get_json("/api/me", S_T0.cookie);
    ASSERT_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(me, "user"), "role")), "township_supervisor");
    ASSERT_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(me, "user"), "township_id")), g_hex[0]);
    cJSON_Delete(me);
    char q[512];
    snprintf(q, sizeof q, "SELECT count(*) FROM dash_sessions WHERE instr(token_hash, '%s') > 0"
             " OR instr(csrf, '%s') > 0", S_T0.cookie + 11, S_T0.cookie + 11);
    ASSERT_EQ(server_count(F.db, q), 0);
    /* Failed logins are audited by account name, never the password. */
    ASSERT_GT(server_count(F.db, "SELECT count(*) FROM audit_log WHERE kind = 'dash_login_failed'"
                                 " AND actor = 'dash:admin'"), 0);
    ASSERT_EQ(server_count(F.db, "SELECT count(*) FROM audit_log WHERE detail LIKE '%wrong%'"), 0);
}

static void test_logout(void)
{
    struct sess s;
    ASSERT_EQ(login("sup", "sup-password", &s), 200);
    expect("GET", "/api/me", s.cookie, NULL, NULL, 200, NULL);
    expect("POST", "/api/logout", s.cookie, NULL, "{}", 403, "csrf");
    expect("POST", "/api/logout", s.cookie, s.csrf, "{}", 200, NULL);
    expect("GET", "/api/me", s.cookie, NULL, NULL, 401, "no_session");
    expect("GET", "/api/overview", s.cookie, NULL, NULL, 401, "no_session");
}

/* ---- every endpoint refuses what it must ---------------------------------- */

static const char *const VIEWS[] = {
    "/api/overview", "/api/meals", "/api/retrofits", "/api/visits", "/api/devices",
    "/api/conflicts", "/api/report", "/api/scopes", "/api/me", NULL
};

static void test_refusals(void)
{
    char path[256], body[256];
    struct sess old;
    /* An expired session (and one idle too long) is no session. */
    ASSERT_EQ(login("sup", "sup-password", &old), 200);
    struct sess idle;
    ASSERT_EQ(login("sup", "sup-password", &idle), 200);
    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open(F.db, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE dash_sessions SET expires_at = 1 WHERE csrf = '%s';"
             "UPDATE dash_sessions SET last_seen = 1 WHERE csrf = '%s'", old.csrf, idle.csrf);
    ASSERT_EQ(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    const char *bogus = "es_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for (int i = 0; VIEWS[i]; i++) {
        expect("GET", VIEWS[i], NULL, NULL, NULL, 401, "no_session");
        expect("GET", VIEWS[i], bogus, NULL, NULL, 401, "no_session");
        expect("GET", VIEWS[i], old.cookie, NULL, NULL, 401, "no_session");
        expect("GET", VIEWS[i], idle.cookie, NULL, NULL, 401, "no_session");
        if (strcmp(VIEWS[i], "/api/me") == 0)
            continue;
        /* wrong scope: a township supervisor asking for another township */
        snprintf(path, sizeof path, "%s?township=%s", VIEWS[i], g_hex[1]);
        expect("GET", path, S_T0.cookie, NULL, NULL, 403, "forbidden_scope");
        snprintf(path, sizeof path, "%s?township=%s&format=csv", VIEWS[i], g_hex[1]);
        expect("GET", path, S_T0.cookie, NULL, NULL, 403, "forbidden_scope");
        /* ... its own is fine, as is any for a county role */
        snprintf(path, sizeof path, "%s?township=%s", VIEWS[i], g_hex[0]);
        expect("GET", path, S_T0.cookie, NULL, NULL, 200, NULL);
        snprintf(path, sizeof path, "%s?township=%s", VIEWS[i], g_hex[1]);
        expect("GET", path, S_SUP.cookie, NULL, NULL, 200, NULL);
        /* views do not change state: POST is not a method they take */
        expect("POST", VIEWS[i], S_ADMIN.cookie, S_ADMIN.csrf, "{}", 404, "not_found");
    }
    /* The actions: no session, expired, missing or wrong CSRF, wrong role, wrong scope. */
    struct { const char *path, *body; } acts[3];
    snprintf(body, sizeof body, "{\"role\":\"hall\",\"scope\":\"%s\"}", g_hall_hex[0]);
    char revoke[128];
    snprintf(revoke, sizeof revoke, "/api/devices/%s/revoke", "0123456789abcdef0123456789abcdef");
    acts[0].path = "/api/conflicts/1/resolve"; acts[0].body = "{\"action\":\"keep\"}";
    acts[1].path = "/api/enroll-codes";        acts[1].body = body;
    acts[2].path = revoke;                     acts[2].body = "{}";
    for (int i = 0; i < 3; i++) {
        expect("POST", acts[i].path, NULL, NULL, acts[i].body, 401, "no_session");
        expect("POST", acts[i].path, old.cookie, old.csrf, acts[i].body, 401, "no_session");
        expect("POST", acts[i].path, S_ADMIN.cookie, NULL, acts[i].body, 403, "csrf");
        expect("POST", acts[i].path, S_ADMIN.cookie, S_SUP.csrf, acts[i].body, 403, "csrf");
        expect("POST", acts[i].path, S_ADMIN.cookie, "", acts[i].body, 403, "csrf");
    }
    /* wrong role */
    expect("POST", "/api/enroll-codes", S_SUP.cookie, S_SUP.csrf, body, 403, "forbidden_role");
    expect("POST", revoke, S_SUP.cookie, S_SUP.csrf, "{}", 403, "forbidden_role");
    expect("POST", revoke, S_T0.cookie, S_T0.csrf, "{}", 403, "forbidden_role");
    /* wrong scope: a code for another township's hall */
    snprintf(body, sizeof body, "{\"role\":\"hall\",\"scope\":\"%s\"}", g_hall_hex[2]);
    expect("POST", "/api/enroll-codes", S_T0.cookie, S_T0.csrf, body, 403, "forbidden_scope");
    snprintf(body, sizeof body, "{\"role\":\"caregiver\",\"scope\":\"%s\"}", g_hex[1]);
    expect("POST", "/api/enroll-codes", S_T0.cookie, S_T0.csrf, body, 403, "forbidden_scope");
    /* GETs and actions on unknown paths */
    expect("GET", "/api/nothing", S_ADMIN.cookie, NULL, NULL, 404, "not_found");
    expect("GET", "/api/../v1/health", S_ADMIN.cookie, NULL, NULL, 200, NULL);
    expect("POST", "/api/conflicts/abc/resolve", S_ADMIN.cookie, S_ADMIN.csrf, "{}", 404,
           "not_found");
    expect("POST", revoke, S_ADMIN.cookie, S_ADMIN.csrf, "{}", 404, "not_found");
}

static void test_bad_params(void)
{
    static const char *const bad[] = {
        "/api/meals?month=2026-13", "/api/meals?month=26-01", "/api/meals?month=2026-1x",
        "/api/retrofits?year=99", "/api/overview?township=zz", "/api/meals?format=xml",
        "/api/meals?format=csv&table=nope", "/api/conflicts?status=maybe",
        "/api/visits?campaign=12", "/api/meals?table=halls", NULL
    };
    for (int i = 0; bad[i]; i++)
        expect("GET", bad[i], S_ADMIN.cookie, NULL, NULL, 400, "bad_request");
    expect("GET", "/api/visits?campaign=0123456789abcdef0123456789abcdef", S_ADMIN.cookie, NULL,
           NULL, 404, "not_found");
}

/* ---- figures equal the database ------------------------------------------ */

static void test_figures(void)
{
    char path[256], q[512], d[11];
    today(d);
    cJSON *m = get_json("/api/meals", S_ADMIN.cookie);
    ASSERT_EQ(num(m, "totals.meals"), server_count(F.db, "SELECT count(*) FROM meal_logs"));
    ASSERT_EQ(num(m, "totals.meals"), 11);
    ASSERT_EQ(num(m, "totals.delivery"), 2);
    ASSERT_EQ(num(m, "totals.subsidy_fen"),
              server_count(F.db, "SELECT sum(subsidy_fen) FROM meal_logs"));
    cJSON_Delete(m);
    /* a township supervisor sees only its township's halls and totals */
    m = get_json("/api/meals", S_T1.cookie);
    ASSERT_EQ(num(m, "totals.meals"), 3);
    ASSERT_EQ(num(m, "totals.subsidy_fen"), 1500);
    ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(m, "halls")), 1);
    cJSON_Delete(m);
    snprintf(path, sizeof path, "/api/meals?township=%s", g_hex[0]);
    m = get_json(path, S_SUP.cookie);
    ASSERT_EQ(num(m, "totals.meals"), 8);
    cJSON_Delete(m);
    /* a voided meal and its void entry are not counted */
    snprintf(q, sizeof q, "INSERT INTO meal_logs (id, senior_id, hall_id, service_date,"
             " meal_period, mode, served_at, price_paid_fen, subsidy_fen, void_of)"
             " SELECT uuid7(), senior_id, hall_id, service_date, meal_period, mode, served_at,"
             " 0, 0, id FROM meal_logs WHERE hall_id = x'%s' ORDER BY id LIMIT 1", g_hall_hex[2]);
    srv_exec(&F.p, q);
    m = get_json("/api/meals", S_T1.cookie);
    ASSERT_EQ(num(m, "totals.meals"), 2);
    cJSON_Delete(m);
    /* the overview and the report agree with the meals view */
    cJSON *o = get_json("/api/overview", S_ADMIN.cookie);
    ASSERT_EQ(num(o, "figures.meals"), 10);
    cJSON *rep = get_json("/api/report", S_ADMIN.cookie);
    ASSERT_EQ(num(rep, "month.meals"), 10);
    ASSERT_GE(num(rep, "year.meals"), 10);
    ASSERT_EQ(num(rep, "month.subsidy_fen"), num(o, "figures.subsidy_fen"));
    cJSON_Delete(o);
    cJSON_Delete(rep);
    /* retrofits: the funnel counts cases that reached each step */
    cJSON *r = get_json("/api/retrofits?year=2026", S_ADMIN.cookie);
    const cJSON *f = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "funnel"), 0);
    ASSERT_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "status")), "applied");
    ASSERT_EQ(num(f, "count"), NTWP * NCASE);
    cJSON_Delete(r);
    /* visits: every seeded senior is a centenarian the campaign must visit */
    cJSON *v = get_json("/api/visits", S_T0.cookie);
    ASSERT_EQ(num(v, "coverage.must"), NSENIOR);
    ASSERT_EQ(num(v, "coverage.visited"), 0);
    const cJSON *u = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(v, "unvisited"), 0);
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(u, "name"));
    ASSERT_NOT_NULL(name);
    ASSERT(strncmp(name, "Senior 0-", 9) == 0);          /* opened, and of T0 only */
    cJSON_Delete(v);
    /* devices: the two hall tablets, each in its township's view only */
    cJSON *dv = get_json("/api/devices", S_T1.cookie);
    ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(dv, "devices")), 1);
    cJSON_Delete(dv);
    dv = get_json("/api/devices", S_ADMIN.cookie);
    ASSERT_GE(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(dv, "devices")), 2);
    cJSON_Delete(dv);
}

static void test_csv(void)
{
    struct resp r;
    char path[256];
    req(&r, "GET", "/api/meals?format=csv&table=halls", S_ADMIN.cookie, NULL, NULL);
    ASSERT_EQ(r.status, 200);
    ASSERT_NOT_NULL(strstr(r.head, "Content-Type: text/csv"));
    ASSERT_NOT_NULL(strstr(r.head, "attachment; filename=\"eldersync-meals-halls-"));
    ASSERT(memcmp(r.body, "\xef\xbb\xbf" "hall_id,name,township,meals,", 31) == 0);
    int lines = 0;
    for (size_t i = 0; i < r.len; i++)
        lines += r.body[i] == '\n';
    ASSERT_EQ(lines, 1 + NHALL);
    resp_free(&r);
    /* A cell a spreadsheet would run as a formula is quoted as text. */
    snprintf(path, sizeof path, "UPDATE dining_halls SET name = '=HYPERLINK(\"x\")' WHERE id = x'%s'",
             g_hall_hex[1]);
    srv_exec(&F.p, path);
    req(&r, "GET", "/api/meals?format=csv&table=halls", S_ADMIN.cookie, NULL, NULL);
    ASSERT_NOT_NULL(strstr(r.body, ",\"'=HYPERLINK(\"\"x\"\")\","));
    resp_free(&r);
    /* Each view exports; a township supervisor's export holds its rows only. */
    req(&r, "GET", "/api/meals?format=csv&table=halls", S_T1.cookie, NULL, NULL);
    ASSERT_EQ(r.status, 200);
    ASSERT(strstr(r.body, g_hall_hex[2]) != NULL);
    ASSERT(strstr(r.body, g_hall_hex[0]) == NULL);
    resp_free(&r);
    static const char *const views[] = {
        "overview", "meals", "retrofits", "visits", "devices", "conflicts", "report", NULL
    };
    for (int i = 0; views[i]; i++) {
        snprintf(path, sizeof path, "/api/%s?format=csv", views[i]);
        req(&r, "GET", path, S_SUP.cookie, NULL, NULL);
        ASSERT_EQ(r.status, 200);
        ASSERT_NOT_NULL(strstr(r.head, "text/csv"));
        resp_free(&r);
    }
}

/* ---- conflicts ------------------------------------------------------------ */

/* The open conflict of kind, as the queue shows it. */
static cJSON *find_conflict(const char *cookie, const char *kind)
{
    cJSON *j = get_json("/api/conflicts", cookie), *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(j, "conflicts")) {
        if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "kind")), kind) == 0) {
            cJSON *copy = cJSON_Duplicate(c, 1);
            cJSON_Delete(j);
            return copy;
        }
    }
    cJSON_Delete(j);
    return NULL;
}

struct phone { char v[64]; };
static int read_phone(void *ctx, int ncol, const char *const *values, const char *const *names)
{
    (void)ncol;
    (void)names;
    snprintf(((struct phone *)ctx)->v, 64, "%s", values[0] ? values[0] : "(null)");
    return 0;
}

static void test_resolve_lww(void)
{
    char sql[256], a[36], path[128], body[256];
    struct sync_client *ca = tablet_new(&F.p, "cg_a", "caregiver", F.c.twp[0]);
    struct sync_client *cb = tablet_new(&F.p, "cg_b", "caregiver", F.c.twp[0]);
    sync_ok(ca);
    sync_ok(cb);
    const uint8_t *senior = F.c.senior[0][5];
    snprintf(sql, sizeof sql, "UPDATE seniors SET phone = '13900000001' WHERE id = %s",
             xid(senior, a));
    ASSERT_EQ(sync_exec(ca, sql), SYNC_OK);
    snprintf(sql, sizeof sql, "UPDATE seniors SET phone = '13900000002' WHERE id = %s",
             xid(senior, a));
    ASSERT_EQ(sync_exec(cb, sql), SYNC_OK);
    sync_ok(ca);
    sync_ok(cb);                                /* b's later edit wins; a's is kept */
    ASSERT(find_conflict(S_T1.cookie, "lww") == NULL);       /* not T1's business */
    cJSON *c = find_conflict(S_T0.cookie, "lww");
    ASSERT_NOT_NULL(c);
    const cJSON *col = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(c, "columns"), 0);
    ASSERT_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(col, "name")), "phone");
    ASSERT_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(col, "winner")),
                  "13900000002");
    ASSERT_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(col, "loser")),
                  "13900000001");
    ASSERT_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(col, "current")),
                  "13900000002");
    int id = (int)num(c, "id");
    ASSERT_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(c, "senior"), "name")), "Senior 0-5");
    cJSON_Delete(c);
    snprintf(path, sizeof path, "/api/conflicts/%d/resolve", id);
    /* another township's supervisor may not touch it */
    expect("POST", path, S_T1.cookie, S_T1.csrf, "{\"action\":\"keep\"}", 403, "forbidden_scope");
    /* bad resolutions change nothing */
    uint8_t before[32], after[32];
    server_hash(F.db, before);
    expect("POST", path, S_T0.cookie, S_T0.csrf, "{\"action\":\"explode\"}", 400, "bad_request");
    expect("POST", path, S_T0.cookie, S_T0.csrf, "{\"action\":\"apply\"}", 400, "bad_request");
    expect("POST", path, S_T0.cookie, S_T0.csrf,
           "{\"action\":\"apply\",\"values\":{\"name\":\"Someone Else\"}}", 400, "bad_request");
    expect("POST", path, S_T0.cookie, S_T0.csrf,
           "{\"action\":\"apply\",\"values\":{\"phone\":[1]}}", 400, "bad_request");
    expect("POST", path, S_T0.cookie, S_T0.csrf,
           "{\"action\":\"apply\",\"values\":{\"phone\":1.5}}", 400, "bad_request");
    expect("POST", path, S_T0.cookie, S_T0.csrf, "[]", 400, "bad_request");
    server_hash(F.db, after);
    ASSERT(memcmp(before, after, 32) == 0);
    ASSERT_EQ(server_count(F.db, "SELECT count(*) FROM conflicts WHERE status = 'resolved'"), 0);
    /* the supervisor keeps a's number: the resolution syncs to b */
    snprintf(body, sizeof body, "{\"action\":\"apply\",\"values\":{\"phone\":\"13900000001\"}}");
    expect("POST", path, S_T0.cookie, S_T0.csrf, body, 200, NULL);
    expect("POST", path, S_T0.cookie, S_T0.csrf, body, 409, "already_resolved");
    sync_ok(cb);
    struct phone ph;
    snprintf(sql, sizeof sql, "SELECT phone FROM seniors WHERE id = %s", xid(senior, a));
    ASSERT_EQ(sync_query(cb, sql, read_phone, &ph), SYNC_OK);
    ASSERT_STR_EQ(ph.v, "13900000001");
    sync_ok(ca);
    ASSERT_EQ(sync_query(ca, sql, read_phone, &ph), SYNC_OK);
    ASSERT_STR_EQ(ph.v, "13900000001");
    /* stored sealed, resolved by whom, and audited */
    snprintf(sql, sizeof sql, "SELECT count(*) FROM seniors WHERE id = %s AND typeof(phone) = 'blob'",
             xid(senior, a));
    ASSERT_EQ(server_count(F.db, sql), 1);
    ASSERT_EQ(server_count(F.db, "SELECT count(*) FROM conflicts WHERE status = 'resolved'"
                                 " AND resolved_by = 't0' AND resolution NOT LIKE '%1390%'"), 1);
    ASSERT_EQ(server_count(F.db, "SELECT count(*) FROM audit_log WHERE kind = 'conflict_resolved'"
                                 " AND actor = 'dash:t0'"), 1);
    cJSON *res = get_json("/api/conflicts?status=resolved", S_T0.cookie);
    ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res, "conflicts")), 1);
    cJSON_Delete(res);
    sync_client_close(ca);
    sync_client_close(cb);
}

static void test_resolve_duplicate_claim(void)
{
    struct sync_client *x = tablet_new(&F.p, "h1a", "hall", F.c.hall[1]);
    struct sync_client *y = tablet_new(&F.p, "h1b", "hall", F.c.hall[1]);
    sync_ok(x);
    sync_ok(y);
    meals(x, 1, 20, 1, "dine_in", 300);
    meals(y, 1, 20, 1, "delivery", 300);        /* the same senior's lunch, offline */
    sync_ok(x);
    sync_ok(y);
    long before = server_count(F.db, "SELECT count(*) FROM meal_logs");
    cJSON *m = get_json("/api/meals", S_T0.cookie);
    ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(m, "duplicates")), 1);
    cJSON_Delete(m);
    cJSON *c = find_conflict(S_ADMIN.cookie, "duplicate_claim");
    ASSERT_NOT_NULL(c);
    char path[128];
    snprintf(path, sizeof path, "/api/conflicts/%d/resolve", (int)num(c, "id"));
    ASSERT_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(c, "senior"), "name")), "Senior 0-20");
    cJSON_Delete(c);
    expect("POST", path, S_ADMIN.cookie, S_ADMIN.csrf,
           "{\"action\":\"apply\",\"values\":{\"subsidy_fen\":0}}", 400, "bad_request");
    expect("POST", path, S_ADMIN.cookie, S_ADMIN.csrf, "{\"action\":\"accept_unsubsidised\"}",
           200, NULL);
    ASSERT_EQ(server_count(F.db, "SELECT count(*) FROM meal_logs"), before + 1);
    ASSERT_EQ(server_count(F.db, "SELECT count(*) FROM meal_logs WHERE mode = 'delivery'"
                                 " AND subsidy_fen = 0 AND price_paid_fen = 700"), 1);
    /* ... and the hall's tablets both hold it after their next sync */
    sync_ok(y);
    sync_ok(x);
    uint8_t hx[32], hy[32], hp[32];
    ASSERT_EQ(sync_content_hash(x, hx), SYNC_OK);
    ASSERT_EQ(sync_content_hash(y, hy), SYNC_OK);
    ASSERT(memcmp(hx, hy, 32) == 0);
    proj_hash(F.db, "hall", F.c.twp[0], F.c.hall[1], hp);
    ASSERT(memcmp(hx, hp, 32) == 0);
    sync_client_close(x);
    sync_client_close(y);
}

static void test_enroll_code_and_revoke(void)
{
    char body[256], path[128];
    struct resp r;
    snprintf(body, sizeof body, "{\"role\":\"hall\",\"scope\":\"%s\"}", g_hall_hex[0]);
    req(&r, "POST", "/api/enroll-codes", S_T0.cookie, S_T0.csrf, body);
    ASSERT_EQ(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    resp_free(&r);
    const char *code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "code"));
    const char *svg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "qr_svg"));
    ASSERT_NOT_NULL(code);
    ASSERT_NOT_NULL(svg);
    ASSERT(strncmp(svg, "<svg ", 5) == 0);
    /* the code enrolls a real tablet */
    char path_db[256], err[256];
    struct sync_client *t = NULL;
    snprintf(path_db, sizeof path_db, "%s/qr.db", F.dir);
    ASSERT_EQ(sync_client_open(&t, path_db, err, sizeof err), SYNC_OK);
    ASSERT_EQ(sync_enroll(t, F.p.url, code, TEST_PIN), SYNC_OK);
    cJSON_Delete(j);
    sync_ok(t);
    struct sync_status_info si;
    ASSERT_EQ(sync_status(t, &si), SYNC_OK);
    snprintf(path, sizeof path, "/api/devices/%s/revoke", si.device_id);
    expect("POST", path, S_ADMIN.cookie, S_ADMIN.csrf, "{}", 200, NULL);
    expect("POST", path, S_ADMIN.cookie, S_ADMIN.csrf, "{}", 404, "not_found");
    struct sync_stats st;
    ASSERT(sync_run(t, &st) != SYNC_OK);         /* refused, and it shreds its keys */
    sync_client_close(t);
    expect("POST", "/api/enroll-codes", S_ADMIN.cookie, S_ADMIN.csrf, "{\"role\":\"hall\"}", 400,
           "bad_request");
    snprintf(body, sizeof body, "{\"role\":\"mayor\",\"scope\":\"%s\"}", g_hex[0]);
    expect("POST", "/api/enroll-codes", S_ADMIN.cookie, S_ADMIN.csrf, body, 400, NULL);
}

static void test_login_rate_limit(void)
{
    struct srv_proc p2;
    char dir[128], db[192];
    struct county c2;
    test_dir(dir, sizeof dir, "dash_rate");
    snprintf(db, sizeof db, "%s/county.db", dir);
    county_seed(db, &c2);
    srv_start_config(&p2, dir, db, "{\"login_burst\": 3, \"login_rate_per_min\": 1}");
    ASSERT_EQ(srv_add_user(&p2, "admin", "county_admin", NULL, "admin-password"), 0);
    int saved = F.p.port;
    F.p.port = p2.port;
    struct sess s;
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(login("admin", "wrong-password", &s), 401);
    struct resp r;
    req(&r, "POST", "/api/login", NULL, NULL, "{\"name\":\"admin\",\"password\":\"admin-password\"}");
    ASSERT_EQ(r.status, 429);
    ASSERT_NOT_NULL(strstr(r.head, "Retry-After: "));
    resp_free(&r);
    F.p.port = saved;
    srv_stop(&p2);
}

static void test_page(void)
{
    struct resp r;
    req(&r, "GET", "/", NULL, NULL, NULL);
    ASSERT_EQ(r.status, 200);
    ASSERT_NOT_NULL(strstr(r.head, "text/html"));
    ASSERT_NOT_NULL(strstr(r.head, "Content-Security-Policy: default-src 'self'"));
    ASSERT_NOT_NULL(strstr(r.body, "<html"));
    resp_free(&r);
    expect("GET", "/assets/no-such-file.js", NULL, NULL, NULL, 404, "not_found");
    expect("GET", "/etc/passwd", NULL, NULL, NULL, 404, "not_found");
    expect("GET", "/assets/../../etc/passwd", NULL, NULL, NULL, 404, NULL);
}

static void test_teardown(void)
{
    srv_stop(&F.p);
}

static const struct test_case tests[] = {
    TEST(test_setup),
    TEST(test_login),
    TEST(test_logout),
    TEST(test_refusals),
    TEST(test_bad_params),
    TEST(test_figures),
    TEST(test_csv),
    TEST(test_resolve_lww),
    TEST(test_resolve_duplicate_claim),
    TEST(test_enroll_code_and_revoke),
    TEST(test_login_rate_limit),
    TEST(test_page),
    TEST(test_teardown),
    { NULL, NULL },
};

int main(void)
{
    setenv("ELDERSYNC_KDF", "light", 1);
    return test_run_all("test_dash_api", tests);
}
