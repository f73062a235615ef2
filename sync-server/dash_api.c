/* dash_api.c - the dashboard's JSON API: views, CSV exports and actions
 * (docs/DASHBOARD.md).
 *
 * Every view is computed from the county database by SQL when asked, under
 * the server lock, so the figures are the merged data as it is now.  Scope
 * is applied in one place (view_scope): a township supervisor's township
 * is bound into every query; asking for another one is refused before any
 * SQL runs.  Personal values are opened (es_dec) only for the columns a
 * page shows: senior names in the unvisited list and disputed values in
 * the conflict queue.
 */
#include "dash_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <civetweb.h>
#include <cjson/cJSON.h>

#include "audit.h"
#include "auth.h"
#include "eldersync.h"
#include "hlc.h"
#include "http.h"
#include "keyring.h"
#include "log.h"
#include "rowval.h"
#include "store.h"
#include "util.h"

#define ACTION_BODY_MAX 65536
#define DAY_MS          86400000LL

/* One request's parameters, checked. */
struct view {
    struct dash            *d;
    struct server          *srv;
    struct mg_connection   *conn;
    const struct dash_user *u;
    uint8_t  twp[16];        /* township filter */
    int      has_twp;
    int      year, month;    /* the period asked for */
    char     mstart[11], mend[11];     /* [start, end) of the month, YYYY-MM-DD */
    char     pstart[11];               /* previous month's start */
    char     ystart[11], yend[11];     /* the year */
    char     today[16];
    char     table[32];      /* CSV table, or "" */
    int      csv;
};

/* ---- small helpers ------------------------------------------------------- */

static void local_date(const struct server *srv, int64_t ms, int *y, int *m, int *dd)
{
    int64_t days = (ms + (int64_t)srv->cfg.utc_offset_min * 60000) / DAY_MS;
    /* civil_from_days (H. Hinnant) */
    int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    *dd = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

static void ym_date(char out[11], int y, int m)
{
    while (m > 12) { m -= 12; y++; }
    while (m < 1)  { m += 12; y--; }
    snprintf(out, 11, "%04d-%02d-01", (y % 10000 + 10000) % 10000, m % 100);
}

static void bind_twp(sqlite3_stmt *st, int i, const struct view *v)
{
    if (v->has_twp)
        sqlite3_bind_blob(st, i, v->twp, 16, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void bind_txt(sqlite3_stmt *st, int i, const char *s)
{
    sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
}

static cJSON *col_json(sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: return cJSON_CreateNumber((double)sqlite3_column_int64(st, i));
    case SQLITE_FLOAT:   return cJSON_CreateNumber(sqlite3_column_double(st, i));
    case SQLITE_TEXT:    return cJSON_CreateString((const char *)sqlite3_column_text(st, i));
    case SQLITE_BLOB: {
        int n = sqlite3_column_bytes(st, i);
        char *h = es_malloc((size_t)n * 2 + 1);
        cJSON *j = NULL;
        if (h) {
            hex_encode(h, sqlite3_column_blob(st, i), (size_t)n);
            j = cJSON_CreateString(h);
            es_free(h);
        }
        return j;
    }
    default:             return cJSON_CreateNull();
    }
}

/* Each result row as an object keyed by the column names. */
static int rows_into(sqlite3_stmt *st, cJSON *arr)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON *o = cJSON_CreateObject();
        for (int i = 0; i < sqlite3_column_count(st); i++)
            cJSON_AddItemToObject(o, sqlite3_column_name(st, i), col_json(st, i));
        cJSON_AddItemToArray(arr, o);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* The first row as an object (empty object when there is none). */
static int row_into(sqlite3_stmt *st, cJSON *obj)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        for (int i = 0; i < sqlite3_column_count(st); i++)
            cJSON_AddItemToObject(obj, sqlite3_column_name(st, i), col_json(st, i));
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static int64_t one_int(sqlite3_stmt *st)
{
    int64_t v = 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return v;
}

/* ---- parameters and scope ------------------------------------------------ */

static int get_param(struct mg_connection *conn, const char *name, char *out, size_t n)
{
    const char *qs = mg_get_request_info(conn)->query_string;
    out[0] = '\0';
    if (qs == NULL)
        return 0;
    int r = mg_get_var(qs, strlen(qs), name, out, n);
    if (r == -2) {               /* too long */
        out[0] = '\0';
        return -1;
    }
    return r >= 0 ? 1 : 0;
}

/* Reads township, month, year, format and table; applies the user's scope.
 * On refusal the reply is sent and -1 returned. */
static int view_scope(struct view *v)
{
    char buf[80];
    int y, m, dd;
    local_date(v->srv, now_ms(), &y, &m, &dd);
    snprintf(v->today, sizeof v->today, "%04d-%02d-%02d", (y % 10000 + 10000) % 10000,
             m % 100, dd % 100);
    v->year = y;
    v->month = m;
    if (get_param(v->conn, "township", buf, sizeof buf) < 0 ||
        (buf[0] && hex_decode(v->twp, 16, buf) != 0))
        return http_error(v->conn, 400, "bad_request", "township must be a 32-hex-digit id",
                          NULL), -1;
    v->has_twp = buf[0] != '\0';
    if (v->u->scoped) {
        if (v->has_twp && sodium_memcmp(v->twp, v->u->township, 16) != 0)
            return http_error(v->conn, 403, "forbidden_scope",
                              "a township supervisor sees only their own township", NULL), -1;
        memcpy(v->twp, v->u->township, 16);
        v->has_twp = 1;
    }
    if (get_param(v->conn, "month", buf, sizeof buf) < 0)
        buf[0] = '?';
    if (buf[0]) {
        char tail;
        if (strlen(buf) != 7 || sscanf(buf, "%4d-%2d%c", &y, &m, &tail) != 2 || buf[4] != '-' ||
            y < 2000 || y > 2999 || m < 1 || m > 12)
            return http_error(v->conn, 400, "bad_request", "month must be YYYY-MM", NULL), -1;
        v->year = y;
        v->month = m;
    }
    if (get_param(v->conn, "year", buf, sizeof buf) < 0)
        buf[0] = '?';
    if (buf[0]) {
        char tail;
        if (strlen(buf) != 4 || sscanf(buf, "%4d%c", &y, &tail) != 1 || y < 2000 || y > 2999)
            return http_error(v->conn, 400, "bad_request", "year must be YYYY", NULL), -1;
        v->year = y;
    }
    ym_date(v->mstart, v->year, v->month);
    ym_date(v->mend, v->year, v->month + 1);
    ym_date(v->pstart, v->year, v->month - 1);
    ym_date(v->ystart, v->year, 1);
    ym_date(v->yend, v->year + 1, 1);
    if (get_param(v->conn, "format", buf, sizeof buf) < 0 ||
        (buf[0] && strcmp(buf, "csv") != 0 && strcmp(buf, "json") != 0))
        return http_error(v->conn, 400, "bad_request", "format is json or csv", NULL), -1;
    v->csv = strcmp(buf, "csv") == 0;
    if (get_param(v->conn, "table", v->table, sizeof v->table) < 0)
        return http_error(v->conn, 400, "bad_request", "no such table", NULL), -1;
    return 0;
}

/* ---- CSV ----------------------------------------------------------------- */

static void csv_field(struct buf *b, const cJSON *j)
{
    char num[32];
    const char *s = "";
    if (cJSON_IsNumber(j)) {
        double d = cJSON_GetNumberValue(j);
        int64_t i;
        if (num_to_i64(d, -(int64_t)9e15, (int64_t)9e15, &i))
            snprintf(num, sizeof num, "%lld", (long long)i);
        else
            snprintf(num, sizeof num, "%.6g", d);
        buf_append(b, num, strlen(num));
        return;
    }
    if (cJSON_IsString(j))
        s = j->valuestring;
    else if (cJSON_IsBool(j))
        s = cJSON_IsTrue(j) ? "true" : "false";
    /* A cell a spreadsheet would run as a formula starts with a quote. */
    int formula = s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' ||
                  s[0] == '\r';
    int quote = formula || strpbrk(s, ",\"\r\n") != NULL;
    if (quote)
        buf_byte(b, '"');
    if (formula)
        buf_byte(b, '\'');
    for (; *s; s++) {
        if (*s == '"')
            buf_byte(b, '"');
        buf_byte(b, (uint8_t)*s);
    }
    if (quote)
        buf_byte(b, '"');
}

/* rows: an array of flat objects; the header is the first row's keys. */
static int send_csv(struct view *v, const char *view, const char *table, const cJSON *rows)
{
    struct buf b = {0};
    buf_append(&b, "\xef\xbb\xbf", 3);           /* BOM: spreadsheets then read UTF-8 */
    const cJSON *first = cJSON_GetArrayItem(rows, 0), *c, *r;
    int k = 0;
    cJSON_ArrayForEach(c, first) {
        if (k++)
            buf_byte(&b, ',');
        cJSON name = { .type = cJSON_String, .valuestring = c->string };
        csv_field(&b, &name);
    }
    buf_append(&b, "\r\n", 2);
    cJSON_ArrayForEach(r, rows) {
        k = 0;
        cJSON_ArrayForEach(c, r) {
            if (k++)
                buf_byte(&b, ',');
            if (!cJSON_IsObject(c) && !cJSON_IsArray(c))
                csv_field(&b, c);
        }
        buf_append(&b, "\r\n", 2);
    }
    size_t len;
    uint8_t *p = buf_take(&b, &len);
    if (p == NULL)
        return http_error(v->conn, 500, "internal", "out of memory", NULL);
    char extra[160], period[16];
    if (strcmp(view, "retrofits") == 0)
        snprintf(period, sizeof period, "%04d", v->year);
    else
        snprintf(period, sizeof period, "%04d-%02d", v->year, v->month);
    snprintf(extra, sizeof extra, "Content-Disposition: attachment; "
             "filename=\"eldersync-%s-%s-%s.csv\"\r\n", view, table, period);
    http_reply(v->conn, 200, "text/csv; charset=utf-8", p, len, extra);
    es_free(p);
    return 200;
}

/* Answers a view: JSON, or the CSV of one of its tables (tables: names,
 * each the key of an array in j; the first is the default). */
static int answer(struct view *v, const char *view, cJSON *j, const char *const *tables)
{
    if (j == NULL) {
        return http_error(v->conn, 500, "internal", "the figures could not be read", NULL);
    }
    if (!v->csv) {
        if (v->table[0]) {
            cJSON_Delete(j);
            return http_error(v->conn, 400, "bad_request", "table= goes with format=csv", NULL);
        }
        return dash_json(v->conn, j);
    }
    const char *t = v->table[0] ? v->table : tables[0];
    for (int i = 0; tables[i]; i++) {
        if (strcmp(tables[i], t) == 0) {
            const cJSON *rows = cJSON_GetObjectItemCaseSensitive(j, t);
            if (!cJSON_IsArray(rows))
                rows = cJSON_GetObjectItemCaseSensitive(j, "rows");
            int status = send_csv(v, view, t, rows);
            cJSON_Delete(j);
            return status;
        }
    }
    cJSON_Delete(j);
    char d[160];
    snprintf(d, sizeof d, "no table '%.40s' in this view", t);
    return http_error(v->conn, 400, "bad_request", d, NULL);
}

/* Runs sql (params: ?1 township filter, ?2..?n the strings in args) and
 * adds its rows under key. */
/* sql with ?1 bound to the township filter and ?2..?n to the strings in
 * args (NULL-terminated, may be NULL).  NULL if it does not compile. */
static sqlite3_stmt *view_stmt(struct view *v, const char *sql, const char *const *args)
{
    sqlite3_stmt *st = store_stmt(v->srv, sql);
    if (st == NULL)
        return NULL;
    bind_twp(st, 1, v);
    for (int i = 0; args && args[i]; i++)
        bind_txt(st, i + 2, args[i]);
    return st;
}

/* The rows of sql under key (an array), or its first row (an object). */
static int add_rows(struct view *v, cJSON *j, const char *key, const char *sql,
                    const char *const *args)
{
    sqlite3_stmt *st = view_stmt(v, sql, args);
    return st ? rows_into(st, cJSON_AddArrayToObject(j, key)) : -1;
}

static int add_row(struct view *v, cJSON *j, const char *key, const char *sql,
                   const char *const *args)
{
    sqlite3_stmt *st = view_stmt(v, sql, args);
    return st ? row_into(st, cJSON_AddObjectToObject(j, key)) : -1;
}

static int64_t count_sql(struct view *v, const char *sql, const char *const *args)
{
    sqlite3_stmt *st = view_stmt(v, sql, args);
    return st ? one_int(st) : -1;
}

/* Conditions two views share (the list and the overview's count).
 * Duplicate meal claims with ?2 <= service_date < ?3, of conflicts c: */
#define DUPLICATE_CLAIMS \
    " c.kind = 'duplicate_claim' AND c.tbl = 'meal_logs'" \
    " AND (?1 IS NULL OR c.township_id = ?1)" \
    " AND json_extract(c.loser, '$.service_date') >= ?2" \
    " AND json_extract(c.loser, '$.service_date') < ?3"
/* A retrofit case c waiting in one step: since its last dated step, the
 * days to ?2 (today); overdue when over ?3. */
#define CASE_SINCE   "coalesce(c.assessed_date, c.applied_date)"
#define CASE_WAITING "CAST(julianday(?2) - julianday(" CASE_SINCE ") AS INTEGER)"
#define CASE_OVERDUE \
    " c.deleted = 0 AND c.status IN ('applied', 'assessed', 'works')" \
    " AND (?1 IS NULL OR c.township_id = ?1) AND " CASE_WAITING " > CAST(?3 AS INTEGER)"
/* The campaign a page shows when none is asked for. */
#define LATEST_CAMPAIGN \
    "SELECT id, name, start_date, end_date, must_visit FROM campaigns WHERE deleted = 0" \
    " ORDER BY start_date DESC LIMIT 1"

/* ---- meals --------------------------------------------------------------- */

/* Meals that count: not voided and not void entries, in the filter's halls.
 * ?1 township or NULL, ?2 first day, ?3 day after the last. */
#define MEALS_CTE \
    "WITH m AS (SELECT ml.* FROM meal_logs ml JOIN dining_halls h ON h.id = ml.hall_id" \
    " WHERE ml.service_date >= ?2 AND ml.service_date < ?3 AND ml.void_of IS NULL" \
    " AND (?1 IS NULL OR h.township_id = ?1)" \
    " AND NOT EXISTS (SELECT 1 FROM meal_logs x WHERE x.void_of = ml.id)) "

static const char *const MEAL_TABLES[] = { "halls", "days", "hall_days", "duplicates", NULL };

static int month_label(char out[8], const char *date)
{
    return snprintf(out, 8, "%.7s", date);
}

static cJSON *view_meals(struct view *v)
{
    const char *range[] = { v->mstart, v->mend, NULL };
    char start12[11], mlabel[8];
    ym_date(start12, v->year, v->month - 11);
    const char *range12[] = { start12, v->mend, NULL };
    cJSON *j = cJSON_CreateObject();
    month_label(mlabel, v->mstart);
    cJSON_AddStringToObject(j, "month", mlabel);
    int bad = add_row(v, j, "totals", MEALS_CTE
        "SELECT count(*) AS meals, coalesce(sum(mode = 'dine_in'), 0) AS dine_in,"
        " coalesce(sum(mode = 'delivery'), 0) AS delivery,"
        " coalesce(sum(subsidy_fen), 0) AS subsidy_fen,"
        " coalesce(sum(price_paid_fen), 0) AS paid_fen FROM m", range);
    bad |= add_rows(v, j, "days", MEALS_CTE
        "SELECT service_date AS date, sum(mode = 'dine_in') AS dine_in,"
        " sum(mode = 'delivery') AS delivery, sum(subsidy_fen) AS subsidy_fen"
        " FROM m GROUP BY service_date ORDER BY service_date", range);
    bad |= add_rows(v, j, "halls",
        "WITH m AS (SELECT ml.* FROM meal_logs ml WHERE ml.service_date >= ?2"
        " AND ml.service_date < ?3 AND ml.void_of IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM meal_logs x WHERE x.void_of = ml.id)) "
        "SELECT lower(hex(h.id)) AS hall_id, h.name AS name, t.name AS township,"
        " count(m.id) AS meals, coalesce(sum(m.mode = 'dine_in'), 0) AS dine_in,"
        " coalesce(sum(m.mode = 'delivery'), 0) AS delivery,"
        " coalesce(sum(m.subsidy_fen), 0) AS subsidy_fen"
        " FROM dining_halls h JOIN townships t ON t.id = h.township_id"
        " LEFT JOIN m ON m.hall_id = h.id"
        " WHERE h.deleted = 0 AND (?1 IS NULL OR h.township_id = ?1)"
        " GROUP BY h.id ORDER BY t.name, h.name", range);
    bad |= add_rows(v, j, "hall_days", MEALS_CTE
        "SELECT lower(hex(hall_id)) AS hall_id, service_date AS date, count(*) AS meals"
        " FROM m GROUP BY hall_id, service_date ORDER BY service_date, hall_id", range);
    bad |= add_rows(v, j, "months", MEALS_CTE
        "SELECT substr(service_date, 1, 7) AS month, count(*) AS meals,"
        " sum(subsidy_fen) AS subsidy_fen FROM m GROUP BY 1 ORDER BY 1", range12);
    bad |= add_rows(v, j, "duplicates",
        "SELECT c.id AS conflict_id, c.created_at AS at, h.name AS hall,"
        " json_extract(c.loser, '$.service_date') AS date,"
        " json_extract(c.loser, '$.meal_period') AS period, c.status AS status"
        " FROM conflicts c LEFT JOIN dining_halls h"
        "  ON lower(hex(h.id)) = json_extract(c.loser, '$.hall_id.hex')"
        " WHERE" DUPLICATE_CLAIMS " ORDER BY c.id", range);
    if (bad) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

/* ---- retrofits ----------------------------------------------------------- */

static const char *const RETRO_TABLES[] = { "townships", "funnel", "overdue", NULL };

static cJSON *view_retrofits(struct view *v)
{
    char year[8], days[12];
    snprintf(year, sizeof year, "%d", v->year);
    snprintf(days, sizeof days, "%d", v->srv->cfg.retrofit_overdue_days);
    const char *args[] = { year, NULL };
    const char *over[] = { v->today, days, NULL };
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "year", v->year);
    cJSON_AddNumberToObject(j, "target", v->srv->cfg.retrofit_target);
    int bad = add_rows(v, j, "funnel",
        "SELECT s.value AS status, (SELECT count(*) FROM retrofit_cases c"
        "  JOIN sync_states cs ON cs.tbl = 'retrofit_cases' AND cs.col = 'status'"
        "   AND cs.value = c.status"
        "  WHERE c.deleted = 0 AND c.target_year = CAST(?2 AS INTEGER)"
        "  AND (?1 IS NULL OR c.township_id = ?1) AND cs.rank >= s.rank) AS count"
        " FROM sync_states s WHERE s.tbl = 'retrofit_cases' AND s.col = 'status'"
        " ORDER BY s.rank", args);
    bad |= add_rows(v, j, "townships",
        "SELECT lower(hex(t.id)) AS township_id, t.name AS name,"
        " coalesce(sum(c.status = 'applied'), 0) AS applied,"
        " coalesce(sum(c.status = 'assessed'), 0) AS assessed,"
        " coalesce(sum(c.status = 'approved'), 0) AS approved,"
        " coalesce(sum(c.status = 'works'), 0) AS works,"
        " coalesce(sum(c.status = 'accepted'), 0) AS accepted,"
        " coalesce(sum(c.status = 'paid'), 0) AS paid"
        " FROM townships t LEFT JOIN retrofit_cases c ON c.township_id = t.id"
        "  AND c.deleted = 0 AND c.target_year = CAST(?2 AS INTEGER)"
        " WHERE t.deleted = 0 AND (?1 IS NULL OR t.id = ?1)"
        " GROUP BY t.id ORDER BY t.name", args);
    bad |= add_rows(v, j, "overdue",
        "SELECT lower(hex(c.id)) AS case_id, t.name AS township, c.status AS status,"
        " " CASE_SINCE " AS since, " CASE_WAITING " AS days"
        " FROM retrofit_cases c JOIN townships t ON t.id = c.township_id"
        " WHERE" CASE_OVERDUE " ORDER BY days DESC", over);
    bad |= add_row(v, j, "costs",
        "SELECT coalesce(sum(estimated_cost_fen), 0) AS estimated_fen,"
        " coalesce(sum(approved_amount_fen), 0) AS approved_fen,"
        " coalesce(sum(final_cost_fen), 0) AS final_fen FROM retrofit_cases"
        " WHERE deleted = 0 AND target_year = CAST(?2 AS INTEGER)"
        " AND (?1 IS NULL OR township_id = ?1)", args);
    if (bad) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

/* ---- visits -------------------------------------------------------------- */

static const char *const VISIT_TABLES[] = { "unvisited", "townships", "kinds", NULL };

/* Who a campaign must visit, from its must_visit words (docs/DASHBOARD.md):
 * returns the reason a senior is on the list, or NULL. */
static const char *must_reason(const char *must_visit, const char *category, const char *poverty)
{
    char words[256];
    snprintf(words, sizeof words, "%s", must_visit ? must_visit : "");
    const char *reason = NULL;
    for (char *save = NULL, *w = strtok_r(words, " ", &save); w && !reason;
         w = strtok_r(NULL, " ", &save)) {
        if (category && strcmp(w, category) == 0)
            reason = strcmp(category, "centenarian") == 0 ? "centenarian" : category;
        else if (strcmp(w, "extreme_poverty") == 0 && poverty &&
                 strcmp(poverty, "extreme_poverty") == 0)
            reason = "extreme_poverty";
        else if (strcmp(w, "advanced_age_poor") == 0 && poverty && category &&
                 strcmp(category, "advanced_age") == 0)
            reason = "advanced_age_poor";
    }
    return reason;
}

struct tally { char key[40]; char name[96]; int must, visited; };

static struct tally *tally_at(struct tally *t, int *n, int max, const char *key, const char *name)
{
    for (int i = 0; i < *n; i++)
        if (strcmp(t[i].key, key) == 0)
            return &t[i];
    if (*n == max)
        return NULL;
    snprintf(t[*n].key, sizeof t[*n].key, "%s", key);
    snprintf(t[*n].name, sizeof t[*n].name, "%s", name ? name : "");
    t[*n].must = t[*n].visited = 0;
    return &t[(*n)++];
}

/* The latest campaign, or the one asked for: fills id (16 bytes) and j. */
static int pick_campaign(struct view *v, cJSON *j, uint8_t id[16], char *must, size_t mn)
{
    char buf[80];
    int asked = get_param(v->conn, "campaign", buf, sizeof buf);
    if (asked < 0 || (asked > 0 && hex_decode(id, 16, buf) != 0))
        return http_error(v->conn, 400, "bad_request", "campaign must be a 32-hex-digit id",
                          NULL), -1;
    sqlite3_stmt *st = store_stmt(v->srv, asked > 0
        ? "SELECT id, name, start_date, end_date, must_visit FROM campaigns WHERE id = ?1"
        : LATEST_CAMPAIGN);
    if (st == NULL)
        return http_error(v->conn, 500, "internal", "cannot read campaigns", NULL), -1;
    if (asked > 0)
        sqlite3_bind_blob(st, 1, id, 16, SQLITE_TRANSIENT);
    cJSON *c = cJSON_AddObjectToObject(j, "campaign");
    int found = 0;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 16) {
        memcpy(id, sqlite3_column_blob(st, 0), 16);
        cJSON_AddItemToObject(c, "id", col_json(st, 0));
        cJSON_AddItemToObject(c, "name", col_json(st, 1));
        cJSON_AddItemToObject(c, "start_date", col_json(st, 2));
        cJSON_AddItemToObject(c, "end_date", col_json(st, 3));
        snprintf(must, mn, "%s", sqlite3_column_text(st, 4) ? (const char *)sqlite3_column_text(st, 4) : "");
        found = 1;
    }
    sqlite3_reset(st);
    if (!found && asked > 0)
        return http_error(v->conn, 404, "not_found", "no such campaign", NULL), -1;
    return found;
}

/* Coverage of the campaign: j gets coverage and unvisited.  With
 * names = 0 nothing personal beyond poverty status is opened. */
static int coverage(struct view *v, cJSON *j, const uint8_t camp[16], const char *must, int names)
{
    sqlite3_stmt *st = store_stmt(v->srv,
        "SELECT s.id, s.category, es_dec('seniors', 'poverty_status', s.id, s.poverty_status),"
        " lower(hex(s.township_id)), t.name, vl.name,"
        " EXISTS (SELECT 1 FROM visits x WHERE x.senior_id = s.id AND x.deleted = 0"
        "  AND x.campaign_id = ?2),"
        " CASE WHEN ?3 THEN es_dec('seniors', 'name', s.id, s.name) END"
        " FROM seniors s JOIN townships t ON t.id = s.township_id"
        " LEFT JOIN villages vl ON vl.id = s.village_id"
        " WHERE s.deleted = 0 AND (?1 IS NULL OR s.township_id = ?1)"
        " ORDER BY t.name, vl.name");
    if (st == NULL)
        return -1;
    bind_twp(st, 1, v);
    sqlite3_bind_blob(st, 2, camp, 16, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, names);
    struct tally cats[8], twps[64];
    int ncats = 0, ntwps = 0, must_n = 0, visited_n = 0, rc;
    cJSON *unv = cJSON_AddArrayToObject(j, "unvisited");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *reason = must_reason(must, (const char *)sqlite3_column_text(st, 1),
                                         (const char *)sqlite3_column_text(st, 2));
        if (reason == NULL)
            continue;
        int seen = sqlite3_column_int(st, 6);
        struct tally *c = tally_at(cats, &ncats, 8, reason, reason);
        struct tally *t = tally_at(twps, &ntwps, 64, (const char *)sqlite3_column_text(st, 3),
                                   (const char *)sqlite3_column_text(st, 4));
        must_n++;
        visited_n += seen;
        if (c) { c->must++; c->visited += seen; }
        if (t) { t->must++; t->visited += seen; }
        if (!seen && names) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToObject(o, "senior_id", col_json(st, 0));
            cJSON_AddItemToObject(o, "name", col_json(st, 7));
            cJSON_AddItemToObject(o, "township", col_json(st, 4));
            cJSON_AddItemToObject(o, "village", col_json(st, 5));
            cJSON_AddStringToObject(o, "category", reason);
            cJSON_AddItemToArray(unv, o);
        }
    }
    sqlite3_reset(st);
    cJSON *cov = cJSON_AddObjectToObject(j, "coverage");
    cJSON_AddNumberToObject(cov, "must", must_n);
    cJSON_AddNumberToObject(cov, "visited", visited_n);
    cJSON *ca = cJSON_AddArrayToObject(cov, "categories");
    for (int i = 0; i < ncats; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "category", cats[i].key);
        cJSON_AddNumberToObject(o, "must", cats[i].must);
        cJSON_AddNumberToObject(o, "visited", cats[i].visited);
        cJSON_AddItemToArray(ca, o);
    }
    cJSON *ta = cJSON_AddArrayToObject(cov, "townships");
    for (int i = 0; i < ntwps; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "township_id", twps[i].key);
        cJSON_AddStringToObject(o, "name", twps[i].name);
        cJSON_AddNumberToObject(o, "must", twps[i].must);
        cJSON_AddNumberToObject(o, "visited", twps[i].visited);
        cJSON_AddItemToArray(ta, o);
    }
    /* The CSV table "townships" is the coverage by township. */
    cJSON_AddItemReferenceToObject(j, "townships", ta);
    return rc == SQLITE_DONE ? 0 : -1;
}

static cJSON *view_visits(struct view *v, int *refused)
{
    uint8_t camp[16] = {0};
    char must[256] = "", mlabel[8];
    cJSON *j = cJSON_CreateObject();
    month_label(mlabel, v->mstart);
    cJSON_AddStringToObject(j, "month", mlabel);
    int found = pick_campaign(v, j, camp, must, sizeof must);
    if (found < 0) {
        *refused = 1;
        cJSON_Delete(j);
        return NULL;
    }
    int bad = coverage(v, j, camp, must, 1);
    sqlite3_stmt *st = store_stmt(v->srv,
        "SELECT coalesce(sum(CASE WHEN kind = 'cash' THEN amount_fen END), 0) AS cash_fen,"
        " coalesce(sum(CASE WHEN kind = 'goods' THEN goods_value_fen END), 0) AS goods_value_fen,"
        " coalesce(sum(kind = 'goods'), 0) AS goods_count FROM visit_handouts"
        " WHERE campaign_id = ?2 AND (?1 IS NULL OR township_id = ?1)");
    if (st) {
        bind_twp(st, 1, v);
        sqlite3_bind_blob(st, 2, camp, 16, SQLITE_STATIC);
        bad |= row_into(st, cJSON_AddObjectToObject(j, "handouts"));
    } else {
        bad = 1;
    }
    const char *range[] = { v->mstart, v->mend, NULL };
    bad |= add_rows(v, j, "kinds",
        "SELECT kind, count(*) AS count FROM visits WHERE deleted = 0"
        " AND service_date >= ?2 AND service_date < ?3 AND (?1 IS NULL OR township_id = ?1)"
        " GROUP BY kind ORDER BY count DESC", range);
    bad |= add_rows(v, j, "days",
        "SELECT service_date AS date, kind, count(*) AS count FROM visits WHERE deleted = 0"
        " AND service_date >= ?2 AND service_date < ?3 AND (?1 IS NULL OR township_id = ?1)"
        " GROUP BY service_date, kind ORDER BY service_date, kind", range);
    if (bad) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

/* ---- overview and report ------------------------------------------------- */

/* The month's (or any range's) headline figures into o. */
static int figures(struct view *v, cJSON *o, const char *from, const char *to)
{
    const char *range[] = { from, to, NULL };
    cJSON *t = cJSON_CreateObject();
    int bad = add_row(v, t, "m", MEALS_CTE
        "SELECT count(*) AS meals, coalesce(sum(subsidy_fen), 0) AS subsidy_fen FROM m", range);
    bad |= add_row(v, t, "v",
        "SELECT count(*) AS visits, count(DISTINCT senior_id) AS seniors_visited FROM visits"
        " WHERE deleted = 0 AND service_date >= ?2 AND service_date < ?3"
        " AND (?1 IS NULL OR township_id = ?1)", range);
    bad |= add_row(v, t, "h",
        "SELECT coalesce(sum(CASE WHEN h.kind = 'cash' THEN h.amount_fen END), 0) AS cash_fen,"
        " coalesce(sum(CASE WHEN h.kind = 'goods' THEN h.goods_value_fen END), 0)"
        "  AS goods_value_fen FROM visit_handouts h JOIN visits x ON x.id = h.visit_id"
        " WHERE x.deleted = 0 AND x.service_date >= ?2 AND x.service_date < ?3"
        " AND (?1 IS NULL OR h.township_id = ?1)", range);
    bad |= add_row(v, t, "r",
        "SELECT count(*) AS retrofits_accepted FROM retrofit_cases WHERE deleted = 0"
        " AND accepted_date >= ?2 AND accepted_date < ?3"
        " AND status IN ('accepted', 'paid') AND (?1 IS NULL OR township_id = ?1)", range);
    /* flatten */
    const cJSON *part, *f;
    cJSON_ArrayForEach(part, t)
        cJSON_ArrayForEach(f, part)
            cJSON_AddItemToObject(o, f->string, cJSON_Duplicate(f, 1));
    cJSON_Delete(t);
    return bad;
}

static const char *const OVERVIEW_TABLES[] = { "figures", NULL };
static const char *const FIGURES[] = {
    "meals", "subsidy_fen", "visits", "seniors_visited", "cash_fen", "goods_value_fen",
    "retrofits_accepted", NULL
};

static cJSON *view_overview(struct view *v)
{
    char mlabel[8], plabel[8];
    cJSON *j = cJSON_CreateObject();
    month_label(mlabel, v->mstart);
    month_label(plabel, v->pstart);
    cJSON_AddStringToObject(j, "month", mlabel);
    cJSON_AddStringToObject(j, "prev_month", plabel);
    cJSON *fig = cJSON_AddObjectToObject(j, "figures"), *prev = cJSON_AddObjectToObject(j, "prev");
    int bad = figures(v, fig, v->mstart, v->mend) | figures(v, prev, v->pstart, v->mstart);
    cJSON *rows = cJSON_AddArrayToObject(j, "rows");
    for (int i = 0; FIGURES[i]; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "figure", FIGURES[i]);
        cJSON_AddItemToObject(r, "month",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(fig, FIGURES[i]), 1));
        cJSON_AddItemToObject(r, "prev_month",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(prev, FIGURES[i]), 1));
        cJSON_AddItemToArray(rows, r);
    }
    /* What needs attention. */
    char days[12], stale[24];
    snprintf(days, sizeof days, "%d", v->srv->cfg.retrofit_overdue_days);
    snprintf(stale, sizeof stale, "%lld", (long long)(now_ms() - 3 * DAY_MS));
    const char *over[] = { v->today, days, NULL }, *st_args[] = { stale, NULL };
    const char *range[] = { v->mstart, v->mend, NULL };
    int64_t n[5];
    n[0] = count_sql(v, "SELECT count(*) FROM conflicts WHERE status = 'open'"
                        " AND (?1 IS NULL OR township_id = ?1)", NULL);
    n[1] = count_sql(v, "SELECT count(*) FROM retrofit_cases c WHERE" CASE_OVERDUE, over);
    n[2] = -1;
    uint8_t camp[16];
    char must[256] = "";
    cJSON *tmp = cJSON_CreateObject();
    sqlite3_stmt *st = store_stmt(v->srv, LATEST_CAMPAIGN);
    if (st && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 16) {
        memcpy(camp, sqlite3_column_blob(st, 0), 16);
        snprintf(must, sizeof must, "%s", sqlite3_column_text(st, 4) ? (const char *)sqlite3_column_text(st, 4) : "");
        sqlite3_reset(st);
        if (coverage(v, tmp, camp, must, 0) == 0) {
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(tmp, "coverage");
            n[2] = (int64_t)(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(c, "must")) -
                             cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(c, "visited")));
        }
    } else if (st) {
        sqlite3_reset(st);
        n[2] = 0;
    }
    cJSON_Delete(tmp);
    n[3] = count_sql(v, "SELECT count(*) FROM devices WHERE status = 'active'"
                        " AND coalesce(last_sync, enrolled_at) < CAST(?2 AS INTEGER)"
                        " AND (?1 IS NULL OR township_id = ?1)", st_args);
    n[4] = count_sql(v, "SELECT count(*) FROM conflicts c WHERE" DUPLICATE_CLAIMS, range);
    static const char *const kinds[] = { "open_conflicts", "overdue_retrofits",
                                         "unvisited_must_visit", "stale_devices",
                                         "duplicate_claims" };
    cJSON *att = cJSON_AddArrayToObject(j, "attention");
    for (int i = 0; i < 5; i++) {
        bad |= n[i] < 0;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "kind", kinds[i]);
        cJSON_AddNumberToObject(o, "count", (double)n[i]);
        cJSON_AddItemToArray(att, o);
    }
    if (bad) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static const char *const REPORT_TABLES[] = { "report", NULL };

static void report_part(struct view *v, cJSON *o, const char *from, const char *to)
{
    cJSON *f = cJSON_CreateObject();
    figures(v, f, from, to);
    static const char *const keep[] = { "meals", "subsidy_fen", "seniors_visited", "cash_fen",
                                        "goods_value_fen", "visits", NULL };
    for (int i = 0; keep[i]; i++)
        cJSON_AddItemToObject(o, keep[i],
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(f, keep[i]), 1));
    cJSON_Delete(f);
    const char *range[] = { from, to, NULL };
    cJSON_AddNumberToObject(o, "retrofits_completed", (double)count_sql(v,
        "SELECT count(*) FROM retrofit_cases WHERE deleted = 0"
        " AND status IN ('accepted', 'paid') AND accepted_date >= ?2 AND accepted_date < ?3"
        " AND (?1 IS NULL OR township_id = ?1)", range));
    cJSON_AddNumberToObject(o, "retrofit_target", v->srv->cfg.retrofit_target);
}

static cJSON *view_report(struct view *v)
{
    char mlabel[8];
    cJSON *j = cJSON_CreateObject();
    month_label(mlabel, v->mstart);
    cJSON *period = cJSON_AddObjectToObject(j, "period");
    cJSON_AddStringToObject(period, "month", mlabel);
    cJSON_AddNumberToObject(period, "year", v->year);
    cJSON *m = cJSON_AddObjectToObject(j, "month"), *y = cJSON_AddObjectToObject(j, "year");
    report_part(v, m, v->mstart, v->mend);
    report_part(v, y, v->ystart, v->mend);        /* the year to the end of the month */
    cJSON *rows = cJSON_AddArrayToObject(j, "report");
    const cJSON *f;
    cJSON_ArrayForEach(f, m) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "figure", f->string);
        cJSON_AddItemToObject(r, "month", cJSON_Duplicate(f, 1));
        cJSON_AddItemToObject(r, "year_to_date",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(y, f->string), 1));
        cJSON_AddItemToArray(rows, r);
    }
    return j;
}

/* ---- devices ------------------------------------------------------------- */

static const char *const DEVICE_TABLES[] = { "devices", NULL };

static cJSON *view_devices(struct view *v)
{
    cJSON *j = cJSON_CreateObject();
    if (add_rows(v, j, "devices",
        "SELECT lower(hex(d.id)) AS device_id, d.role AS role, t.name AS township,"
        " h.name AS hall, d.status AS status, d.enrolled_at AS enrolled_at,"
        " d.last_sync AS last_sync, d.app_version AS app_version,"
        " d.schema_version AS schema_version, d.clock_skew_ms AS clock_skew_ms,"
        " (SELECT count(*) FROM conflicts c WHERE c.device_id = d.id AND c.status = 'open')"
        "  AS open_conflicts"
        " FROM devices d LEFT JOIN townships t ON t.id = d.township_id"
        " LEFT JOIN dining_halls h ON h.id = d.hall_id"
        " WHERE (?1 IS NULL OR d.township_id = ?1) ORDER BY d.status, d.enrolled_at", NULL)) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static const char *const SCOPE_TABLES[] = { "townships", "halls", NULL };

static cJSON *view_scopes(struct view *v)
{
    cJSON *j = cJSON_CreateObject();
    int bad = add_rows(v, j, "townships", "SELECT lower(hex(id)) AS id, name FROM townships"
                       " WHERE deleted = 0 AND (?1 IS NULL OR id = ?1) ORDER BY name", NULL);
    bad |= add_rows(v, j, "halls", "SELECT lower(hex(id)) AS id, name,"
                    " lower(hex(township_id)) AS township_id FROM dining_halls"
                    " WHERE deleted = 0 AND (?1 IS NULL OR township_id = ?1) ORDER BY name", NULL);
    if (bad) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

/* ---- conflicts ----------------------------------------------------------- */

static const char *const CONFLICT_TABLES[] = { "conflicts", NULL };

/* A value as a supervisor reads it: personal columns opened, ids as hex. */
static cJSON *open_value(struct server *srv, const struct pol_table *t, int col,
                         const uint8_t *pk, int pklen, const cJSON *v)
{
    const char *hex = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v, "hex"));
    if (hex == NULL)
        return cJSON_Duplicate(v, 1);
    if (!((t->personal >> col) & 1))
        return cJSON_CreateString(hex);
    size_t n = strlen(hex) / 2;
    uint8_t *raw = es_malloc(n ? n : 1);
    cJSON *out = NULL;
    if (raw && hex_decode(raw, n, hex) == 0) {
        sqlite3_stmt *st = store_stmt(srv, "SELECT es_dec(?1, ?2, ?3, ?4)");
        if (st) {
            sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, t->cols[col], -1, SQLITE_STATIC);
            sqlite3_bind_blob(st, 3, pk, pklen, SQLITE_STATIC);
            sqlite3_bind_blob(st, 4, raw, (int)n, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_ROW)
                out = col_json(st, 0);
            sqlite3_reset(st);
        }
    }
    es_free(raw);
    return out ? out : cJSON_CreateString("(sealed)");
}

/* The row's current value of col, opened. */
static cJSON *current_value(struct server *srv, const struct pol_table *t, int col,
                            const uint8_t *pk, int pklen)
{
    char sql[256];
    if ((t->personal >> col) & 1)
        snprintf(sql, sizeof sql, "SELECT es_dec('%s', '%s', id, \"%s\") FROM \"%s\" WHERE id = ?1",
                 t->name, t->cols[col], t->cols[col], t->name);
    else
        snprintf(sql, sizeof sql, "SELECT \"%s\" FROM \"%s\" WHERE id = ?1", t->cols[col], t->name);
    sqlite3_stmt *st = store_stmt(srv, sql);
    cJSON *out = NULL;
    if (st) {
        sqlite3_bind_blob(st, 1, pk, pklen, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            out = col_json(st, 0);
        sqlite3_reset(st);
    }
    return out ? out : cJSON_CreateNull();
}

static const char *const *actions_for(const char *kind, const char *tbl)
{
    static const char *const merge[] = { "keep", "apply", NULL };
    static const char *const claim[] = { "keep", "accept_unsubsidised", NULL };
    static const char *const ack[] = { "keep", NULL };
    if (strcmp(kind, "duplicate_claim") == 0 && strcmp(tbl, "meal_logs") == 0)
        return claim;
    if (strcmp(kind, "lww") == 0 || strcmp(kind, "state_regression") == 0 ||
        strcmp(kind, "insert_exists") == 0 || strcmp(kind, "not_applied") == 0)
        return merge;
    return ack;
}

#define CONFLICT_SELECT \
    "SELECT c.id, c.created_at, c.kind, c.tbl, c.pk, t.name, lower(hex(c.device_id))," \
    " c.winner, c.loser, c.status, c.resolved_at, c.resolved_by, c.resolution, c.township_id" \
    " FROM conflicts c LEFT JOIN townships t ON t.id = c.township_id"

/* One conflict as the review queue shows it. */
static cJSON *conflict_json(struct server *srv, sqlite3_stmt *st)
{
    cJSON *o = cJSON_CreateObject();
    const char *kind = (const char *)sqlite3_column_text(st, 2);
    const char *tbl = (const char *)sqlite3_column_text(st, 3);
    const uint8_t *pk = sqlite3_column_blob(st, 4);
    int pklen = sqlite3_column_bytes(st, 4);
    uint8_t pkc[64];
    if (pklen > (int)sizeof pkc)
        pklen = sizeof pkc;
    if (pk)
        memcpy(pkc, pk, (size_t)pklen);
    cJSON_AddItemToObject(o, "id", col_json(st, 0));
    cJSON_AddItemToObject(o, "created_at", col_json(st, 1));
    cJSON_AddStringToObject(o, "kind", kind);
    cJSON_AddStringToObject(o, "table", tbl);
    cJSON_AddItemToObject(o, "row_id", col_json(st, 4));
    cJSON_AddItemToObject(o, "township", col_json(st, 5));
    cJSON_AddItemToObject(o, "device_id", col_json(st, 6));
    cJSON_AddItemToObject(o, "status", col_json(st, 9));
    cJSON_AddItemToObject(o, "resolved_at", col_json(st, 10));
    cJSON_AddItemToObject(o, "resolved_by", col_json(st, 11));
    const char *res = (const char *)sqlite3_column_text(st, 12);
    cJSON_AddItemToObject(o, "resolution", res ? cJSON_Parse(res) : cJSON_CreateNull());
    cJSON *w = sqlite3_column_text(st, 7) ? cJSON_Parse((const char *)sqlite3_column_text(st, 7)) : NULL;
    cJSON *l = sqlite3_column_text(st, 8) ? cJSON_Parse((const char *)sqlite3_column_text(st, 8)) : NULL;
    const struct pol_table *t = policy_table(srv->pol, tbl);
    cJSON *cols = cJSON_AddArrayToObject(o, "columns");
    for (int i = 0; t && i < t->ncol; i++) {
        const cJSON *wv = cJSON_GetObjectItemCaseSensitive(w, t->cols[i]);
        const cJSON *lv = cJSON_GetObjectItemCaseSensitive(l, t->cols[i]);
        if (!wv && !lv)
            continue;
        if (i == t->hlc_col)
            continue;
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "name", t->cols[i]);
        cJSON_AddBoolToObject(c, "personal", (t->personal >> i) & 1);
        cJSON_AddItemToObject(c, "current", current_value(srv, t, i, pkc, pklen));
        cJSON_AddItemToObject(c, "winner", wv ? open_value(srv, t, i, pkc, pklen, wv)
                                               : cJSON_CreateNull());
        cJSON_AddItemToObject(c, "loser", lv ? open_value(srv, t, i, pkc, pklen, lv)
                                              : cJSON_CreateNull());
        cJSON_AddItemToArray(cols, c);
    }
    cJSON *acts = cJSON_AddArrayToObject(o, "actions");
    for (const char *const *a = actions_for(kind, tbl); *a; a++)
        cJSON_AddItemToArray(acts, cJSON_CreateString(*a));
    /* Whom it is about: the senior's name, opened, so the supervisor
     * need not look an id up. */
    uint8_t sid[16];
    int has_sid = 0;
    if (strcmp(tbl, "seniors") == 0 && pklen == 16) {
        memcpy(sid, pkc, 16);
        has_sid = 1;
    } else {
        const char *hex = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(l ? l : w, "senior_id"), "hex"));
        has_sid = hex && hex_decode(sid, 16, hex) == 0;
        if (!has_sid) {          /* not in the record: the row itself */
            char sql[160];
            snprintf(sql, sizeof sql, "SELECT senior_id FROM \"%s\" WHERE id = ?1", tbl);
            if (t && policy_col(t, "senior_id") >= 0) {
                sqlite3_stmt *q = store_stmt(srv, sql);
                if (q) {
                    sqlite3_bind_blob(q, 1, pkc, pklen, SQLITE_STATIC);
                    if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_bytes(q, 0) == 16) {
                        memcpy(sid, sqlite3_column_blob(q, 0), 16);
                        has_sid = 1;
                    }
                    sqlite3_reset(q);
                }
            }
        }
    }
    if (has_sid) {
        sqlite3_stmt *q = store_stmt(srv, "SELECT lower(hex(id)), es_dec('seniors', 'name', id, name)"
                                          " FROM seniors WHERE id = ?1");
        if (q) {
            sqlite3_bind_blob(q, 1, sid, 16, SQLITE_STATIC);
            if (sqlite3_step(q) == SQLITE_ROW) {
                cJSON *sub = cJSON_AddObjectToObject(o, "senior");
                cJSON_AddItemToObject(sub, "id", col_json(q, 0));
                cJSON_AddItemToObject(sub, "name", col_json(q, 1));
            }
            sqlite3_reset(q);
        }
    }
    cJSON_Delete(w);
    cJSON_Delete(l);
    return o;
}

static cJSON *view_conflicts(struct view *v, int *refused)
{
    char status[16];
    if (get_param(v->conn, "status", status, sizeof status) < 0 ||
        (status[0] && strcmp(status, "open") != 0 && strcmp(status, "resolved") != 0)) {
        *refused = 1;
        http_error(v->conn, 400, "bad_request", "status is open or resolved", NULL);
        return NULL;
    }
    sqlite3_stmt *st = store_stmt(v->srv, CONFLICT_SELECT
        " WHERE c.status = ?2 AND (?1 IS NULL OR c.township_id = ?1)"
        " ORDER BY c.id DESC LIMIT 500");
    if (st == NULL)
        return NULL;
    bind_twp(st, 1, v);
    bind_txt(st, 2, status[0] ? status : "open");
    /* conflict_json runs statements of its own: collect the rows first. */
    int64_t ids[500];
    int n = 0;
    while (n < 500 && sqlite3_step(st) == SQLITE_ROW)
        ids[n++] = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    cJSON *j = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(j, "conflicts");
    for (int i = 0; i < n; i++) {
        sqlite3_stmt *one = NULL;
        if (sqlite3_prepare_v2(v->srv->db, CONFLICT_SELECT " WHERE c.id = ?1", -1, &one,
                               NULL) != SQLITE_OK)
            break;
        sqlite3_bind_int64(one, 1, ids[i]);
        if (sqlite3_step(one) == SQLITE_ROW)
            cJSON_AddItemToArray(arr, conflict_json(v->srv, one));
        sqlite3_finalize(one);
    }
    return j;
}

/* Binds a value the supervisor chose for column col. */
static int bind_choice(sqlite3_stmt *st, int i, const cJSON *val)
{
    if (cJSON_IsNull(val))
        return sqlite3_bind_null(st, i) == SQLITE_OK ? 0 : -1;
    if (cJSON_IsString(val))
        return sqlite3_bind_text(st, i, val->valuestring, -1, SQLITE_TRANSIENT) == SQLITE_OK ? 0 : -1;
    if (cJSON_IsNumber(val)) {
        int64_t n;
        if (!num_to_i64(cJSON_GetNumberValue(val), -(int64_t)9e15, (int64_t)9e15, &n))
            return -1;
        return sqlite3_bind_int64(st, i, n) == SQLITE_OK ? 0 : -1;
    }
    return -1;
}

struct resolve_req {
    int64_t     id;
    const char *action;
    const cJSON *values;
};

/* Inside store_begin: applies the action.  Returns an HTTP status (200 ok),
 * with error/detail for a refusal. */
static int resolve_tx(struct view *v, const struct resolve_req *r, char *error, char *detail,
                      size_t dn, cJSON *record)
{
    struct server *srv = v->srv;
    sqlite3_stmt *st = store_stmt(srv, "SELECT kind, tbl, pk, township_id, status, winner, loser"
                                       " FROM conflicts WHERE id = ?1");
    if (st == NULL)
        return 500;
    sqlite3_bind_int64(st, 1, r->id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        snprintf(error, 40, "not_found");
        snprintf(detail, dn, "no conflict %lld", (long long)r->id);
        return 404;
    }
    char kind[40], tbl[64];
    uint8_t pk[64], twp[16];
    snprintf(kind, sizeof kind, "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(tbl, sizeof tbl, "%s", (const char *)sqlite3_column_text(st, 1));
    int pklen = sqlite3_column_bytes(st, 2);
    if (pklen > (int)sizeof pk)
        pklen = sizeof pk;
    memcpy(pk, sqlite3_column_blob(st, 2), (size_t)pklen);
    int has_twp = sqlite3_column_bytes(st, 3) == 16;
    if (has_twp)
        memcpy(twp, sqlite3_column_blob(st, 3), 16);
    int open = strcmp((const char *)sqlite3_column_text(st, 4), "open") == 0;
    cJSON *w = sqlite3_column_text(st, 5) ? cJSON_Parse((const char *)sqlite3_column_text(st, 5)) : NULL;
    cJSON *l = sqlite3_column_text(st, 6) ? cJSON_Parse((const char *)sqlite3_column_text(st, 6)) : NULL;
    sqlite3_reset(st);
    int status = 200;
    const struct pol_table *t = policy_table(srv->pol, tbl);
    if (v->u->scoped && (!has_twp || sodium_memcmp(twp, v->u->township, 16) != 0)) {
        snprintf(error, 40, "forbidden_scope");
        snprintf(detail, dn, "this conflict belongs to another township");
        status = 403;
    } else if (!open) {
        snprintf(error, 40, "already_resolved");
        snprintf(detail, dn, "conflict %lld was resolved already", (long long)r->id);
        status = 409;
    } else {
        const char *const *acts = actions_for(kind, tbl);
        int allowed = 0;
        for (; *acts; acts++)
            allowed |= strcmp(*acts, r->action) == 0;
        if (!allowed || t == NULL) {
            snprintf(error, 40, "bad_request");
            snprintf(detail, dn, "action '%.32s' does not apply to a %s conflict", r->action, kind);
            status = 400;
        }
    }
    cJSON_AddStringToObject(record, "action", r->action);
    if (status == 200 && strcmp(r->action, "apply") == 0) {
        /* UPDATE t SET <disputed columns>, hlc = <newer than any> WHERE id */
        char sql[2048];
        int ncols = 0;
        const cJSON *val;
        size_t n = (size_t)snprintf(sql, sizeof sql, "UPDATE \"%s\" SET ", t->name);
        cJSON *set = cJSON_AddObjectToObject(record, "columns");
        cJSON_ArrayForEach(val, r->values) {
            int c = policy_col(t, val->string);
            if (c < 0 || c == t->id_col || c == t->hlc_col || c == t->scope_col ||
                (!cJSON_GetObjectItemCaseSensitive(w, val->string) &&
                 !cJSON_GetObjectItemCaseSensitive(l, val->string)) || ncols == POL_MAXCOL) {
                snprintf(error, 40, "bad_request");
                snprintf(detail, dn, "'%.48s' is not a disputed column of this conflict",
                         val->string);
                status = 400;
                break;
            }
            if ((t->personal >> c) & 1)
                n += (size_t)snprintf(sql + n, sizeof sql - n, "%s\"%s\" = es_enc('%s', '%s', ?%d, ?%d)",
                                      ncols ? ", " : "", t->cols[c], t->name, t->cols[c],
                                      POL_MAXCOL + 2, ncols + 1);
            else
                n += (size_t)snprintf(sql + n, sizeof sql - n, "%s\"%s\" = ?%d",
                                      ncols ? ", " : "", t->cols[c], ncols + 1);
            ncols++;
            cJSON_AddItemToArray(set, cJSON_CreateString(t->cols[c]));   /* names, never values */
        }
        if (status == 200 && ncols == 0) {
            snprintf(error, 40, "bad_request");
            snprintf(detail, dn, "apply needs values: {column: value} for the disputed columns");
            status = 400;
        }
        if (status == 200 && t->hlc_col >= 0)
            n += (size_t)snprintf(sql + n, sizeof sql - n,
                                  ", hlc = max(hlc + 1, ?%d)", POL_MAXCOL + 1);
        snprintf(sql + n, sizeof sql - n, " WHERE id = ?%d", POL_MAXCOL + 2);
        sqlite3_stmt *up = NULL;
        if (status == 200 && sqlite3_prepare_v2(srv->db, sql, -1, &up, NULL) != SQLITE_OK)
            status = 500;
        int k = 0;
        cJSON_ArrayForEach(val, r->values) {
            if (status != 200 || k >= ncols)
                break;
            if (bind_choice(up, k + 1, val) != 0) {
                snprintf(error, 40, "bad_request");
                snprintf(detail, dn, "'%.48s': a value is a string, an integer or null",
                         val->string);
                status = 400;
            }
            k++;
        }
        if (status == 200) {
            sqlite3_bind_int64(up, POL_MAXCOL + 1, (sqlite3_int64)hlc_make(now_ms(), 0, 0));
            sqlite3_bind_blob(up, POL_MAXCOL + 2, pk, pklen, SQLITE_STATIC);
            if (sqlite3_step(up) != SQLITE_DONE) {
                snprintf(error, 40, "rejected");
                snprintf(detail, dn, "the database refused the change: %.120s",
                         sqlite3_errmsg(srv->db));
                status = 422;
            } else if (sqlite3_changes(srv->db) != 1) {
                snprintf(error, 40, "not_found");
                snprintf(detail, dn, "the row of this conflict no longer exists");
                status = 404;
            }
        }
        sqlite3_finalize(up);
    } else if (status == 200 && strcmp(r->action, "accept_unsubsidised") == 0) {
        /* The refused meal, recorded without its subsidy. */
        char sql[1024];
        size_t n = (size_t)snprintf(sql, sizeof sql, "INSERT INTO \"%s\" (", t->name);
        for (int i = 0; i < t->ncol; i++)
            n += (size_t)snprintf(sql + n, sizeof sql - n, "%s\"%s\"", i ? ", " : "", t->cols[i]);
        n += (size_t)snprintf(sql + n, sizeof sql - n, ") VALUES (");
        for (int i = 0; i < t->ncol; i++)
            n += (size_t)snprintf(sql + n, sizeof sql - n, "%s?%d", i ? ", " : "", i + 1);
        snprintf(sql + n, sizeof sql - n, ")");
        sqlite3_stmt *ins = NULL;
        if (sqlite3_prepare_v2(srv->db, sql, -1, &ins, NULL) != SQLITE_OK)
            status = 500;
        for (int i = 0; status == 200 && i < t->ncol; i++) {
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(l, t->cols[i]);
            const char *hex = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "hex"));
            if (strcmp(t->cols[i], "subsidy_fen") == 0)
                sqlite3_bind_int(ins, i + 1, 0);
            else if (hex) {
                uint8_t b[64];
                size_t bl = strlen(hex) / 2;
                if (bl > sizeof b || hex_decode(b, bl, hex) != 0)
                    status = 500;
                else
                    sqlite3_bind_blob(ins, i + 1, b, (int)bl, SQLITE_TRANSIENT);
            } else if (x && bind_choice(ins, i + 1, x) != 0) {
                status = 500;
            }
        }
        if (status == 200 && sqlite3_step(ins) != SQLITE_DONE) {
            snprintf(error, 40, "rejected");
            snprintf(detail, dn, "the database refused the meal: %.120s", sqlite3_errmsg(srv->db));
            status = 422;
        }
        sqlite3_finalize(ins);
    }
    if (status == 200) {
        char *rec = cJSON_PrintUnformatted(record);
        st = store_stmt(srv, "UPDATE conflicts SET status = 'resolved', resolved_at = ?2,"
                             " resolved_by = ?3, resolution = ?4 WHERE id = ?1");
        if (st && rec) {
            sqlite3_bind_int64(st, 1, r->id);
            sqlite3_bind_int64(st, 2, now_ms());
            sqlite3_bind_text(st, 3, v->u->name, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, rec, -1, SQLITE_STATIC);
            status = sqlite3_step(st) == SQLITE_DONE ? 200 : 500;
            sqlite3_reset(st);
        } else {
            status = 500;
        }
        char actor[80], det[160];
        snprintf(actor, sizeof actor, "dash:%s", v->u->name);
        snprintf(det, sizeof det, "{\"conflict\":%lld,\"action\":\"%s\"}", (long long)r->id,
                 r->action);
        if (status == 200 && audit_append(srv, "conflict_resolved", NULL, actor, det) != SYNC_OK)
            status = 500;
        cJSON_free(rec);
    }
    if (status == 500) {
        snprintf(error, 40, "internal");
        snprintf(detail, dn, "the resolution could not be stored");
    }
    cJSON_Delete(w);
    cJSON_Delete(l);
    return status;
}

static int can_resolve(const struct dash_user *u)
{
    return u->role == DASH_COUNTY_ADMIN || u->role == DASH_COUNTY_SUPERVISOR ||
           u->role == DASH_TOWNSHIP_SUPERVISOR;
}

static cJSON *read_json_body(struct view *v)
{
    size_t len;
    uint8_t *body = http_body(v->conn, ACTION_BODY_MAX, &len);
    if (body == NULL)
        return NULL;
    cJSON *j = cJSON_ParseWithLength((const char *)body, len);
    es_free(body);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        http_error(v->conn, 400, "bad_request", "the body must be a JSON object", NULL);
        return NULL;
    }
    return j;
}

static int action_resolve(struct view *v, const char *idtext)
{
    char *end = NULL;
    long long id = strtoll(idtext, &end, 10);
    if (end == idtext || strcmp(end, "/resolve") != 0 || id <= 0)
        return http_error(v->conn, 404, "not_found", "no such endpoint", NULL);
    if (!can_resolve(v->u))
        return http_error(v->conn, 403, "forbidden_role", "this role may not resolve conflicts",
                          NULL);
    cJSON *req = read_json_body(v);
    if (req == NULL)
        return 400;
    struct resolve_req r = {
        .id = id,
        .action = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "action")),
        .values = cJSON_GetObjectItemCaseSensitive(req, "values"),
    };
    if (r.action == NULL || (r.values && !cJSON_IsObject(r.values))) {
        cJSON_Delete(req);
        return http_error(v->conn, 400, "bad_request",
                          "send {\"action\": \"keep\" | \"apply\" | \"accept_unsubsidised\", "
                          "\"values\": {...}}", NULL);
    }
    char error[40] = "", detail[256] = "";
    cJSON *record = cJSON_CreateObject();
    pthread_mutex_lock(&v->srv->lock);
    int status = store_begin(v->srv) == SYNC_OK ? 0 : 503;
    if (status == 0) {
        status = resolve_tx(v, &r, error, detail, sizeof detail, record);
        if (store_end(v->srv, status == 200 ? SYNC_OK : SYNC_EINVAL) != SYNC_OK && status == 200)
            status = 503;
    }
    pthread_mutex_unlock(&v->srv->lock);
    char action[24];
    snprintf(action, sizeof action, "%s", r.action);     /* r.action lives in req */
    cJSON_Delete(record);
    cJSON_Delete(req);
    if (status == 503)
        return http_error(v->conn, 503, "storage", "the database is busy; try again", NULL);
    if (status != 200)
        return http_error(v->conn, status, error, detail, NULL);
    log_info("conflict %lld resolved (%s)", id, action);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "id", (double)id);
    cJSON_AddStringToObject(j, "status", "resolved");
    return dash_json(v->conn, j);
}

/* ---- enrollment codes and revocation ------------------------------------- */

static int action_enroll_code(struct view *v)
{
    if (v->u->role == DASH_COUNTY_SUPERVISOR)
        return http_error(v->conn, 403, "forbidden_role",
                          "only an admin or a township supervisor issues enrollment codes", NULL);
    cJSON *req = read_json_body(v);
    if (req == NULL)
        return 400;
    const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "role"));
    const char *scope = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "scope"));
    uint8_t key[16], twp[16];
    int status = 0;
    if (role == NULL || scope == NULL || hex_decode(key, 16, scope) != 0) {
        status = http_error(v->conn, 400, "bad_request",
                            "send {\"role\": \"hall\" | \"caregiver\" | \"inspector\", "
                            "\"scope\": \"<32-hex-digit id>\"}", NULL);
    } else if (v->u->scoped) {
        /* The scope must lie in the supervisor's township. */
        int in = 0;
        pthread_mutex_lock(&v->srv->lock);
        sqlite3_stmt *st = store_stmt(v->srv, strcmp(role, "hall") == 0
            ? "SELECT township_id FROM dining_halls WHERE id = ?1"
            : "SELECT id FROM townships WHERE id = ?1");
        if (st) {
            sqlite3_bind_blob(st, 1, key, 16, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 16) {
                memcpy(twp, sqlite3_column_blob(st, 0), 16);
                in = sodium_memcmp(twp, v->u->township, 16) == 0;
            }
            sqlite3_reset(st);
        }
        pthread_mutex_unlock(&v->srv->lock);
        if (!in)
            status = http_error(v->conn, 403, "forbidden_scope",
                                "a township supervisor issues codes for their township only",
                                NULL);
    }
    if (status) {
        cJSON_Delete(req);
        return status;
    }
    char code[AUTH_CODE_LEN + 1], text[64];
    struct outcome o;
    outcome_init(&o);
    int rc = auth_code_new(v->srv, role, scope, code, &o);
    cJSON_Delete(req);
    if (rc != SYNC_OK)
        return http_error(v->conn, http_status_for(rc), o.error, o.detail, NULL);
    snprintf(text, sizeof text, "eldersync:enroll?code=%s", code);
    char *svg = dash_qr_svg(text);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "code", code);
    cJSON_AddNumberToObject(j, "expires_at",
                            (double)(now_ms() + (int64_t)v->srv->cfg.enroll_code_ttl_s * 1000));
    if (svg)
        cJSON_AddStringToObject(j, "qr_svg", svg);
    else
        cJSON_AddNullToObject(j, "qr_svg");
    es_free(svg);
    sodium_memzero(code, sizeof code);
    return dash_json(v->conn, j);
}

static int action_revoke(struct view *v, const char *rest)
{
    char hex[33];
    if (strlen(rest) != 32 + 7 || strcmp(rest + 32, "/revoke") != 0)
        return http_error(v->conn, 404, "not_found", "no such endpoint", NULL);
    if (v->u->role != DASH_COUNTY_ADMIN)
        return http_error(v->conn, 403, "forbidden_role", "only an admin revokes devices", NULL);
    memcpy(hex, rest, 32);
    hex[32] = '\0';
    struct outcome o;
    outcome_init(&o);
    char actor[80];
    snprintf(actor, sizeof actor, "dash:%s", v->u->name);
    int rc = auth_revoke(v->srv, hex, actor, &o);
    if (rc != SYNC_OK)
        return http_error(v->conn, http_status_for(rc) == 401 ? 400 : http_status_for(rc),
                          rc == SYNC_ENOTFOUND ? "not_found" : o.error, o.detail, NULL);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "device_id", hex);
    cJSON_AddStringToObject(j, "status", "revoked");
    return dash_json(v->conn, j);
}

/* ---- routing ------------------------------------------------------------- */

int dash_api_route(struct dash *d, struct mg_connection *conn, const char *path,
                   const struct dash_user *u)
{
    struct view v = { .d = d, .srv = d->srv, .conn = conn, .u = u };
    const char *m = mg_get_request_info(conn)->request_method;
    int get = strcmp(m, "GET") == 0, post = strcmp(m, "POST") == 0;
    if (post) {
        if (view_scope(&v) != 0)
            return 400;
        if (strncmp(path, "conflicts/", 10) == 0)
            return action_resolve(&v, path + 10);
        if (strcmp(path, "enroll-codes") == 0)
            return action_enroll_code(&v);
        if (strncmp(path, "devices/", 8) == 0)
            return action_revoke(&v, path + 8);
        return http_error(conn, 404, "not_found", "no such endpoint", NULL);
    }
    static const char *const views[] = { "overview", "meals", "retrofits", "visits", "devices",
                                         "conflicts", "report", "scopes", NULL };
    int which = -1;
    for (int i = 0; views[i]; i++)
        if (strcmp(path, views[i]) == 0)
            which = i;
    if (which < 0)
        return http_error(conn, 404, "not_found", "no such endpoint", NULL);
    if (!get)
        return http_error(conn, 405, "method", "use GET", "Allow: GET\r\n");
    if (view_scope(&v) != 0)
        return 400;
    cJSON *j = NULL;
    int refused = 0;
    const char *const *tables = NULL;
    pthread_mutex_lock(&d->srv->lock);
    switch (which) {
    case 0: j = view_overview(&v);            tables = OVERVIEW_TABLES; break;
    case 1: j = view_meals(&v);               tables = MEAL_TABLES; break;
    case 2: j = view_retrofits(&v);           tables = RETRO_TABLES; break;
    case 3: j = view_visits(&v, &refused);    tables = VISIT_TABLES; break;
    case 4: j = view_devices(&v);             tables = DEVICE_TABLES; break;
    case 5: j = view_conflicts(&v, &refused); tables = CONFLICT_TABLES; break;
    case 6: j = view_report(&v);              tables = REPORT_TABLES; break;
    default: j = view_scopes(&v);             tables = SCOPE_TABLES; break;
    }
    pthread_mutex_unlock(&d->srv->lock);
    if (refused)
        return 400;
    if (which == 5 && v.csv && j) {
        /* The conflict queue as flat rows. */
        cJSON *rows = cJSON_AddArrayToObject(j, "rows"), *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(j, "conflicts")) {
            cJSON *r = cJSON_CreateObject();
            static const char *const keep[] = { "id", "created_at", "kind", "table", "township",
                                                "device_id", "status", "resolved_by", NULL };
            for (int i = 0; keep[i]; i++)
                cJSON_AddItemToObject(r, keep[i],
                    cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(c, keep[i]), 1));
            cJSON_AddItemToArray(rows, r);
        }
        cJSON_DeleteItemFromObject(j, "conflicts");
    }
    return answer(&v, views[which], j, tables);
}
