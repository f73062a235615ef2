/* demo.c - the fake demo county; see demo.h.
 *
 * Everything is drawn from one splitmix64 stream in a fixed order, so a seed
 * always yields the same county.  The ids are the only exception (id_new()
 * is time-ordered and random), and nothing drawn here depends on them: all
 * generation works on in-memory arrays, never on rows read back in id order.
 *
 * Local dates are days since 1970-01-01 in the county's calendar; the
 * county is on UTC+8 with no DST, so local midnight of day D is the instant
 * D * 86400000 - 8 h.
 */
#include "demo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "eldersync.h"
#include "ids.h"
#include "util.h"

#define DAY_MS      INT64_C(86400000)
#define HOUR_MS     INT64_C(3600000)
#define MIN_MS      INT64_C(60000)
#define UTC_OFFSET  (8 * HOUR_MS)          /* Asia/Shanghai */

#define N_TOWNSHIPS   6
#define MAX_VILLAGES  6
#define MAX_HALLS     4
#define MAX_SENIORS   2200
#define MEAL_DAYS     14
#define ID_SET_SIZE   8192                 /* power of two, > 2 * MAX_SENIORS */

#define CASH_FEN      20000                /* ¥200 per Double Ninth visit */

/* ------------------------------------------------------------------------
 * Random numbers: splitmix64
 * ------------------------------------------------------------------------ */
struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform in [0, n); n > 0.  Multiply-shift: the bias is negligible here. */
static int rng_below(struct rng *r, int n)
{
    return (int)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

static int rng_range(struct rng *r, int lo, int hi)   /* inclusive */
{
    return lo + rng_below(r, hi - lo + 1);
}

static int rng_pct(struct rng *r, int pct)
{
    return rng_below(r, 100) < pct;
}

static void shuffle(struct rng *r, int *a, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = rng_below(r, i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* ------------------------------------------------------------------------
 * Calendar (proleptic Gregorian, days since 1970-01-01)
 * ------------------------------------------------------------------------ */
static int64_t days_from_civil(int y, int m, int d)
{
    int64_t yy = y - (m <= 2);
    int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
    int64_t yoe = yy - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int mm = (int)(mp < 10 ? mp + 3 : mp - 9);
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = mm;
    *y = (int)(yoe + era * 400 + (mm <= 2));
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int y, int m)
{
    static const int md[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    return m == 2 && is_leap(y) ? 29 : md[m - 1];
}

/* Strict "YYYY-MM-DD" with a real calendar date; years 1971..9999. */
static int parse_date(const char *s, int64_t *days)
{
    if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return -1;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return -1;
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int m = (s[5] - '0') * 10 + (s[6] - '0');
    int d = (s[8] - '0') * 10 + (s[9] - '0');
    if (y < 1971 || m < 1 || m > 12 || d < 1 || d > month_days(y, m))
        return -1;
    *days = days_from_civil(y, m, d);
    return 0;
}

/* out: at least 11 bytes. */
static void fmt_date(char *out, size_t n, int64_t days)
{
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(out, n, "%04d-%02d-%02d", y % 10000, m, d);
}

/* The UTC instant of local time `ms_of_day` on local day `days`. */
static int64_t local_ms(int64_t days, int64_t ms_of_day)
{
    return days * DAY_MS + ms_of_day - UTC_OFFSET;
}

/* ------------------------------------------------------------------------
 * Fixed reference data
 * ------------------------------------------------------------------------ */
#define COUNTY_REGION "530124"         /* first 6 digits of every code */

static const struct {
    const char *name;
    const char *code;                   /* 12-digit statistical code */
    int         weight;                 /* share of the county's seniors */
    const char *villages[MAX_VILLAGES]; /* the first 4..6 are used */
} TOWNSHIPS[N_TOWNSHIPS] = {
    { "城关镇", COUNTY_REGION "101000", 24,
      { "城南社区", "城北社区", "新华社区", "西街村", "桥头村", "大营村" } },
    { "东坝乡", COUNTY_REGION "201000", 15,
      { "东坝村", "中坝村", "红岩村", "松林村", "马鞍村", "小河村" } },
    { "石门乡", COUNTY_REGION "202000", 14,
      { "石门村", "上坝村", "下坝村", "白岩村", "核桃村", "水井村" } },
    { "青山镇", COUNTY_REGION "102000", 17,
      { "青山社区", "柳树村", "新田村", "杨家村", "长坡村", "茶园村" } },
    { "河口乡", COUNTY_REGION "203000", 13,
      { "河口村", "沙坝村", "渡口村", "龙井村", "梨园村", "大湾村" } },
    { "龙潭镇", COUNTY_REGION "103000", 17,
      { "龙潭社区", "青龙村", "马街村", "中和村", "大坪村", "新村村" } },
};

static const char *const STREETS[] = { "人民路", "文化路", "建设路", "新街", "团结巷", "北门街" };

static const char *const SURNAMES_COMMON[] = {
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴",
};
static const char *const SURNAMES_OTHER[] = {
    "徐", "孙", "胡", "朱", "高", "林", "何", "郭", "马", "罗",
    "梁", "宋", "郑", "谢", "韩", "唐", "冯", "于", "董", "段",
    "曹", "袁", "邓", "许", "傅", "沈", "曾", "彭", "吕", "苏",
    "蒋", "蔡", "贾", "丁", "魏", "薛", "叶", "余", "潘", "杜",
};
static const char *const GIVEN_M[] = {
    "国", "建", "明", "德", "福", "贵", "富", "华", "文", "志",
    "永", "金", "宝", "学", "兴", "成", "发", "荣", "昌", "泉",
    "山", "林", "忠", "清", "正", "树", "海", "春", "生", "有",
};
static const char *const GIVEN_F[] = {
    "秀", "英", "兰", "芳", "珍", "桂", "凤", "菊", "梅", "淑",
    "玉", "琼", "翠", "莲", "花", "芬", "群", "香", "珠", "娥",
    "美", "云", "霞", "琴", "素", "月", "彩", "银", "春", "仙",
};
static const char *const GIVEN_STAFF[] = {
    "伟", "敏", "静", "磊", "强", "军", "洋", "勇", "艳", "杰",
    "娟", "涛", "超", "霞", "平", "刚", "丽", "婷", "鹏", "燕",
};

static const char *const HEALTH[] = {
    "高血压", "糖尿病", "行动不便", "冠心病", "慢性支气管炎",
    "听力下降", "白内障", "关节炎", "轻度认知障碍", "脑梗后遗症",
};
#define HEALTH_MOBILITY_A 2                 /* 行动不便 */
#define HEALTH_MOBILITY_B 9                 /* 脑梗后遗症 */

static const char *const PHONE_PREFIX[] = {
    "130", "131", "132", "133", "135", "136", "137", "138", "139",
    "150", "151", "152", "153", "157", "158", "159",
    "180", "181", "182", "183", "187", "188", "189",
};

static const struct {
    const char *name;                   /* 长者餐厅 name after the township */
    int         price_fen;
} HALL_KINDS[MAX_HALLS] = {
    { "中心长者餐厅", 1000 },
    { "幸福长者餐厅", 800 },
    { "夕阳红长者餐厅", 1200 },
    { "康乐长者餐厅", 1000 },
};

static const int SUBSIDY_FEN[3] = { 0, 300, 500 };

static const struct {
    const char *goods;
    int         value_fen;
} GOODS[] = {
    { "米 10kg, 油 5L", 15000 },
    { "米 10kg, 油 5L, 月饼 1盒", 18000 },
    { "牛奶 1箱, 挂面 5kg", 9000 },
    { "棉被 1床", 20000 },
    { "油 5L, 重阳糕 1盒", 11000 },
};

static const char *const WELFARE_NOTES[] = {
    "老人身体状况良好，已签收慰问金",
    "家属代收，老人在家休息",
    "老人卧床，子女在旁照料",
    "了解近况，提醒按时服药",
    "老人精神不错，询问了低保政策",
};

static const struct {
    const char *kind;
    int         weight;                 /* typical share of a case's cost */
    const char *description;
} ITEM_KINDS[] = {
    { "grab_bar",       2, "卫生间、床边安装扶手" },
    { "non_slip_floor", 5, "卫生间、厨房地面防滑处理" },
    { "door_widening",  4, "拓宽卫生间门洞至 80cm，去除门槛" },
    { "lighting",       1, "卧室至卫生间安装感应夜灯" },
    { "alarm",          2, "安装紧急呼叫报警器" },
    { "toilet_seat",    2, "蹲便改坐便，加装助力架" },
};
#define N_ITEM_KINDS ((int)(sizeof ITEM_KINDS / sizeof ITEM_KINDS[0]))

static const char *const CASE_NOTES[] = {
    "独居，卫生间无扶手", "曾在浴室跌倒", "使用轮椅", "夜间如厕不便", "子女外出务工",
};

enum { ST_APPLIED, ST_ASSESSED, ST_APPROVED, ST_WORKS, ST_ACCEPTED, ST_PAID, N_STATUSES };
static const char *const STATUS_NAMES[N_STATUSES] = {
    "applied", "assessed", "approved", "works", "accepted", "paid",
};
static const int STATUS_WEIGHT[N_STATUSES] = { 18, 20, 22, 30, 25, 35 };
/* Days since application, by status: [lo, hi]. */
static const int STATUS_AGE[N_STATUSES][2] = {
    { 0, 30 }, { 20, 90 }, { 40, 120 }, { 60, 150 }, { 100, 200 }, { 130, 240 },
};

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ------------------------------------------------------------------------
 * Generation state
 * ------------------------------------------------------------------------ */
enum { CAT_ORDINARY, CAT_ADVANCED, CAT_CENTENARIAN, CAT_CARE };
static const char *const CATEGORY_NAMES[] = {
    "ordinary", "advanced_age", "centenarian", "concentrated_care",
};
enum { POV_NONE, POV_LOW, POV_EXTREME };
static const char *const POVERTY_NAMES[] = { NULL, "low_income", "extreme_poverty" };

struct d_township {
    uint8_t id[ID_BYTES];
    int     nvillages;
    uint8_t village_id[MAX_VILLAGES][ID_BYTES];
    char    officials[3][32];           /* 民政办 staff: welfare visits */
    char    carers[2][32];              /* home-service workers */
};

struct d_senior {
    uint8_t id[ID_BYTES];
    int     tw, village;
    int     age;                        /* today's year - birth_year */
    int     category, poverty, subsidy_level;
    int     mobility;                   /* health notes say 行动不便 etc. */
    char    address[96];
};

struct d_hall {
    uint8_t id[ID_BYTES];
    int     tw;
    int     price_fen;
    int     delivers;
    int     breakfast;
};

enum {
    S_TOWNSHIP, S_VILLAGE, S_HALL, S_CAMPAIGN, S_SENIOR, S_MEAL, S_CASE,
    S_ITEM, S_VISIT, S_HANDOUT, S_COUNT
};
static const char *const STMT_SQL[S_COUNT] = {
    "INSERT INTO townships (id, code, name) VALUES (?1, ?2, ?3)",
    "INSERT INTO villages (id, township_id, code, name) VALUES (?1, ?2, ?3, ?4)",
    "INSERT INTO dining_halls (id, township_id, name, meal_price_fen, delivers)"
    " VALUES (?1, ?2, ?3, ?4, ?5)",
    "INSERT INTO campaigns (id, name, start_date, end_date, must_visit, cash_fen)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    "INSERT INTO seniors (id, township_id, village_id, name, id_card, phone,"
    " address, gender, birth_year, category, poverty_status, health_notes,"
    " subsidy_level) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    "INSERT INTO meal_logs (id, senior_id, hall_id, service_date, meal_period,"
    " mode, served_at, price_paid_fen, subsidy_fen)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    "INSERT INTO retrofit_cases (id, township_id, senior_id, status, target_year,"
    " applied_date, assessed_date, accepted_date, estimated_cost_fen,"
    " approved_amount_fen, final_cost_fen, notes)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    "INSERT INTO retrofit_items (id, case_id, township_id, item_kind, description,"
    " cost_fen, done, accepted) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    "INSERT INTO visits (id, township_id, senior_id, campaign_id, kind, visitor,"
    " visited_at, service_date, location, notes)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    "INSERT INTO visit_handouts (id, visit_id, township_id, senior_id, campaign_id,"
    " kind, amount_fen, goods, goods_value_fen)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
};

struct demo {
    sqlite3      *db;
    struct rng    r;
    char         *err;
    size_t        errlen;
    int64_t       today;                /* local day number */
    int           year, month, day;
    struct d_township tw[N_TOWNSHIPS];
    struct d_hall hall[MAX_HALLS];
    int           nhalls;
    struct d_senior *s;
    int           ns;
    uint64_t     *id_set;               /* ID-card keys already used */
    uint8_t       campaign_id[ID_BYTES];
    sqlite3_stmt *st[S_COUNT];
};

static void set_err(char *err, size_t errlen, const char *msg, const char *detail)
{
    if (err == NULL || errlen == 0)
        return;
    if (detail != NULL)
        snprintf(err, errlen, "%s: %s", msg, detail);
    else
        snprintf(err, errlen, "%s", msg);
}

static int db_fail(struct demo *d, const char *what)
{
    set_err(d->err, d->errlen, what, sqlite3_errmsg(d->db));
    return SYNC_EIO;
}

/* ------------------------------------------------------------------------
 * Statement helpers
 * ------------------------------------------------------------------------ */
static void bind_id(sqlite3_stmt *st, int i, const uint8_t *id)
{
    if (id == NULL)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_blob(st, i, id, ID_BYTES, SQLITE_TRANSIENT);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s == NULL)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
}

/* Steps an INSERT bound by the caller, then resets it for reuse. */
static int run(struct demo *d, int which)
{
    sqlite3_stmt *st = d->st[which];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        char what[64];
        snprintf(what, sizeof what, "demo: insert #%d failed", which);
        return db_fail(d, what);
    }
    return SYNC_OK;
}

/* ------------------------------------------------------------------------
 * Names, ID numbers, phones
 * ------------------------------------------------------------------------ */
static void make_name(struct rng *r, char *out, size_t n, const char *const *given,
                      int ngiven, int two_pct)
{
    const char *sur = rng_pct(r, 60)
        ? SURNAMES_COMMON[rng_below(r, N_OF(SURNAMES_COMMON))]
        : SURNAMES_OTHER[rng_below(r, N_OF(SURNAMES_OTHER))];
    const char *g1 = given[rng_below(r, ngiven)];
    if (rng_pct(r, two_pct))
        snprintf(out, n, "%s%s%s", sur, g1, given[rng_below(r, ngiven)]);
    else
        snprintf(out, n, "%s%s", sur, g1);
}

/* GB 11643 check character of the first 17 digits. */
static char id_check_char(const char *s17)
{
    static const int w[17] = { 7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2 };
    int sum = 0;
    for (int i = 0; i < 17; i++)
        sum += (s17[i] - '0') * w[i];
    return "10X98765432"[sum % 11];
}

/* Claims key in the open-addressing set; 0 if it was new, -1 if taken. */
static int id_set_claim(uint64_t *set, uint64_t key)
{
    uint64_t h = key * UINT64_C(0x9e3779b97f4a7c15);
    for (size_t i = (size_t)(h >> 51) & (ID_SET_SIZE - 1);; i = (i + 1) & (ID_SET_SIZE - 1)) {
        if (set[i] == key)
            return -1;
        if (set[i] == 0) {
            set[i] = key;
            return 0;
        }
    }
}

/* A birth date in birth_year; with `clamp`, on or before today's month/day
 * so that the senior has already reached the age the year difference says. */
static void birth_date(struct demo *d, int by, int clamp, int *bm, int *bd)
{
    int m = rng_range(&d->r, 1, 12);
    int dd = rng_range(&d->r, 1, month_days(by, m));
    if (clamp && (m > d->month || (m == d->month && dd > d->day))) {
        m = rng_range(&d->r, 1, d->month);
        int lim = m == d->month ? d->day : month_days(by, m);
        if (lim > month_days(by, m))
            lim = month_days(by, m);         /* today is 29 Feb */
        dd = rng_range(&d->r, 1, lim);
    }
    *bm = m;
    *bd = dd;
}

/* 18-character resident ID: region, birth date, sequence (odd for men),
 * check character.  Unique within this run. */
static void make_id_card(struct demo *d, int by, int bm, int bd, int male, char out[19])
{
    for (;;) {
        int seq = rng_below(&d->r, 500) * 2 + (male ? 1 : 0);
        uint64_t key = ((uint64_t)by * 10000 + (uint64_t)(bm * 100 + bd)) * 1000 + (uint64_t)seq + 1;
        if (id_set_claim(d->id_set, key) != 0)
            continue;
        char s[32];
        snprintf(s, sizeof s, "%s%04d%02d%02d%03d", COUNTY_REGION, by % 10000, bm % 100,
                 bd % 100, seq % 1000);
        memcpy(out, s, 17);
        out[17] = id_check_char(s);
        out[18] = '\0';
        return;
    }
}

/* ------------------------------------------------------------------------
 * Townships, villages, halls, campaign
 * ------------------------------------------------------------------------ */
static int gen_townships(struct demo *d)
{
    int rc;
    for (int t = 0; t < N_TOWNSHIPS; t++) {
        struct d_township *tw = &d->tw[t];
        id_new(tw->id);
        sqlite3_stmt *st = d->st[S_TOWNSHIP];
        bind_id(st, 1, tw->id);
        bind_text(st, 2, TOWNSHIPS[t].code);
        bind_text(st, 3, TOWNSHIPS[t].name);
        if ((rc = run(d, S_TOWNSHIP)) != SYNC_OK)
            return rc;

        tw->nvillages = rng_range(&d->r, 4, MAX_VILLAGES);
        int ncommunity = 0, nvillage = 0;
        for (int v = 0; v < tw->nvillages; v++) {
            const char *name = TOWNSHIPS[t].villages[v];
            /* Residents' committees number from 001, villages from 201. */
            int suffix = strstr(name, "社区") ? 1 + ncommunity++ : 201 + nvillage++;
            char code[32];
            snprintf(code, sizeof code, "%.9s%03d", TOWNSHIPS[t].code, suffix);
            id_new(tw->village_id[v]);
            st = d->st[S_VILLAGE];
            bind_id(st, 1, tw->village_id[v]);
            bind_id(st, 2, tw->id);
            bind_text(st, 3, code);
            bind_text(st, 4, name);
            if ((rc = run(d, S_VILLAGE)) != SYNC_OK)
                return rc;
        }
        for (int i = 0; i < 3; i++)
            make_name(&d->r, tw->officials[i], sizeof tw->officials[i], GIVEN_STAFF,
                      N_OF(GIVEN_STAFF), 50);
        for (int i = 0; i < 2; i++)
            make_name(&d->r, tw->carers[i], sizeof tw->carers[i], GIVEN_F, N_OF(GIVEN_F), 70);
    }
    return SYNC_OK;
}

static int gen_halls(struct demo *d)
{
    /* The county seat always has the central hall; the others go to
     * distinct townships, so a senior can only eat at one hall. */
    int order[N_TOWNSHIPS - 1];
    for (int i = 0; i < N_TOWNSHIPS - 1; i++)
        order[i] = i + 1;
    shuffle(&d->r, order, N_TOWNSHIPS - 1);
    d->nhalls = rng_range(&d->r, 3, MAX_HALLS);
    for (int h = 0; h < d->nhalls; h++) {
        struct d_hall *hl = &d->hall[h];
        hl->tw = h == 0 ? 0 : order[h - 1];
        hl->price_fen = HALL_KINDS[h].price_fen;
        hl->delivers = h == 0 ? 1 : rng_pct(&d->r, 50);
        hl->breakfast = h == 0 ? 1 : rng_pct(&d->r, 35);
        id_new(hl->id);
        char name[96];
        snprintf(name, sizeof name, "%s%s", TOWNSHIPS[hl->tw].name, HALL_KINDS[h].name);
        sqlite3_stmt *st = d->st[S_HALL];
        bind_id(st, 1, hl->id);
        bind_id(st, 2, d->tw[hl->tw].id);
        bind_text(st, 3, name);
        sqlite3_bind_int(st, 4, hl->price_fen);
        sqlite3_bind_int(st, 5, hl->delivers);
        int rc = run(d, S_HALL);
        if (rc != SYNC_OK)
            return rc;
    }
    return SYNC_OK;
}

/* The Double Ninth seniors' month: October of this year once it has begun,
 * else last year's. */
static void campaign_span(const struct demo *d, int64_t *start, int64_t *end)
{
    int y = d->month >= 10 ? d->year : d->year - 1;
    *start = days_from_civil(y, 10, 1);
    *end = days_from_civil(y, 10, 31);
}

static int gen_campaign(struct demo *d)
{
    int64_t start, end;
    char s[16], e[16];
    campaign_span(d, &start, &end);
    fmt_date(s, sizeof s, start);
    fmt_date(e, sizeof e, end);
    id_new(d->campaign_id);
    sqlite3_stmt *st = d->st[S_CAMPAIGN];
    bind_id(st, 1, d->campaign_id);
    bind_text(st, 2, "重阳节走访慰问");
    bind_text(st, 3, s);
    bind_text(st, 4, e);
    bind_text(st, 5, "centenarian advanced_age_poor extreme_poverty");
    sqlite3_bind_int(st, 6, CASH_FEN);
    return run(d, S_CAMPAIGN);
}

/* ------------------------------------------------------------------------
 * Seniors
 * ------------------------------------------------------------------------ */
static int pick_township(struct rng *r)
{
    int total = 0;
    for (int t = 0; t < N_TOWNSHIPS; t++)
        total += TOWNSHIPS[t].weight;
    int x = rng_below(r, total);
    for (int t = 0; t < N_TOWNSHIPS; t++) {
        if (x < TOWNSHIPS[t].weight)
            return t;
        x -= TOWNSHIPS[t].weight;
    }
    return 0;
}

/* Rural age structure of the 60+ population, in completed decades. */
static int pick_age(struct rng *r)
{
    int x = rng_below(r, 1000);
    if (x < 550)
        return rng_range(r, 60, 69);
    if (x < 850)
        return rng_range(r, 70, 79);
    if (x < 975)
        return rng_range(r, 80, 89);
    return rng_range(r, 90, 99);
}

static int gen_senior(struct demo *d, struct d_senior *p, int centenarian)
{
    struct rng *r = &d->r;
    p->tw = pick_township(r);
    const struct d_township *tw = &d->tw[p->tw];
    p->village = rng_below(r, tw->nvillages);
    p->age = centenarian ? rng_range(r, 100, 104) : pick_age(r);

    int female_pct = p->age >= 100 ? 80 : p->age >= 80 ? 60 : 52;
    int male = !rng_pct(r, female_pct);

    /* Poverty is commoner in old age; concentrated care (集中供养) is for
     * extreme-poverty seniors living in the township care home. */
    p->poverty = POV_NONE;
    p->category = CAT_ORDINARY;
    if (!centenarian && rng_pct(r, 3)) {
        p->category = CAT_CARE;
        p->poverty = POV_EXTREME;
    } else {
        int x = rng_below(r, 100);
        int low = p->age >= 80 ? 10 : 6;
        if (x < 2)
            p->poverty = POV_EXTREME;
        else if (x < 2 + low)
            p->poverty = POV_LOW;
        if (p->age >= 100)
            p->category = CAT_CENTENARIAN;
        else if (p->age >= 80)
            p->category = CAT_ADVANCED;
    }
    /* Meal subsidy tiers: the poor and the 80+ get the most, the 70s
     * a little, the 60s pay in full unless disabled (a few). */
    p->subsidy_level = p->poverty != POV_NONE || p->age >= 80 ? 2
                     : p->age >= 70 ? 1
                     : rng_pct(r, 8) ? 1 : 0;

    char name[32];
    if (male)
        make_name(r, name, sizeof name, GIVEN_M, N_OF(GIVEN_M), 75);
    else
        make_name(r, name, sizeof name, GIVEN_F, N_OF(GIVEN_F), 75);

    int by = d->year - p->age, bm, bd;
    birth_date(d, by, p->age == 60 || p->age == 80 || p->age == 100, &bm, &bd);
    char id_card[19];
    make_id_card(d, by, bm, bd, male, id_card);

    char phone[16];
    int has_phone = rng_pct(r, p->age >= 85 ? 50 : 74);
    if (has_phone)
        snprintf(phone, sizeof phone, "%s%04d%04d", PHONE_PREFIX[rng_below(r, N_OF(PHONE_PREFIX))],
                 rng_below(r, 10000), rng_below(r, 10000));

    const char *village = TOWNSHIPS[p->tw].villages[p->village];
    if (p->category == CAT_CARE)
        snprintf(p->address, sizeof p->address, "%s 中心敬老院 %d号房", TOWNSHIPS[p->tw].name,
                 rng_range(r, 101, 124));
    else if (strstr(village, "社区"))
        snprintf(p->address, sizeof p->address, "%s %s %s %d号", TOWNSHIPS[p->tw].name, village,
                 STREETS[rng_below(r, N_OF(STREETS))], rng_range(r, 1, 180));
    else
        snprintf(p->address, sizeof p->address, "%s %s %d组 %d号", TOWNSHIPS[p->tw].name, village,
                 rng_range(r, 1, 12), rng_range(r, 1, 60));

    char health[64] = "";
    p->mobility = 0;
    if (rng_pct(r, p->age >= 80 ? 70 : 45)) {
        int a = rng_below(r, N_OF(HEALTH));
        int b = rng_pct(r, 35) ? rng_below(r, N_OF(HEALTH)) : a;
        if (b == a)
            snprintf(health, sizeof health, "%s", HEALTH[a]);
        else
            snprintf(health, sizeof health, "%s、%s", HEALTH[a], HEALTH[b]);
        p->mobility = a == HEALTH_MOBILITY_A || a == HEALTH_MOBILITY_B ||
                      b == HEALTH_MOBILITY_A || b == HEALTH_MOBILITY_B;
    }

    id_new(p->id);
    sqlite3_stmt *st = d->st[S_SENIOR];
    bind_id(st, 1, p->id);
    bind_id(st, 2, tw->id);
    bind_id(st, 3, tw->village_id[p->village]);
    bind_text(st, 4, name);
    bind_text(st, 5, id_card);
    bind_text(st, 6, has_phone ? phone : NULL);
    bind_text(st, 7, p->address);
    bind_text(st, 8, male ? "M" : "F");
    sqlite3_bind_int(st, 9, by);
    bind_text(st, 10, CATEGORY_NAMES[p->category]);
    bind_text(st, 11, POVERTY_NAMES[p->poverty]);
    bind_text(st, 12, health[0] ? health : NULL);
    sqlite3_bind_int(st, 13, p->subsidy_level);
    return run(d, S_SENIOR);
}

static int gen_seniors(struct demo *d)
{
    d->ns = rng_range(&d->r, 1900, 2100);
    int ncent = rng_range(&d->r, 7, 9);
    for (int i = 0; i < d->ns; i++) {
        /* Centenarians spread through the list rather than bunched. */
        int cent = i % (d->ns / ncent) == 0 && i / (d->ns / ncent) < ncent;
        int rc = gen_senior(d, &d->s[i], cent);
        if (rc != SYNC_OK)
            return rc;
    }
    return SYNC_OK;
}

/* ------------------------------------------------------------------------
 * Meals
 * ------------------------------------------------------------------------ */
static int insert_meal(struct demo *d, const struct d_hall *h, const struct d_senior *p,
                       const char *date, const char *period, int delivery, int64_t at)
{
    int subsidy = SUBSIDY_FEN[p->subsidy_level];
    sqlite3_stmt *st = d->st[S_MEAL];
    uint8_t id[ID_BYTES];
    id_new(id);
    bind_id(st, 1, id);
    bind_id(st, 2, p->id);
    bind_id(st, 3, h->id);
    bind_text(st, 4, date);
    bind_text(st, 5, period);
    bind_text(st, 6, delivery ? "delivery" : "dine_in");
    sqlite3_bind_int64(st, 7, at);
    sqlite3_bind_int(st, 8, h->price_fen - subsidy);
    sqlite3_bind_int(st, 9, subsidy);
    return run(d, S_MEAL);
}

/* Picks n distinct entries of a[0..len) into a[0..n) (partial shuffle). */
static void pick_prefix(struct rng *r, int *a, int len, int n)
{
    for (int i = 0; i < n && i < len - 1; i++) {
        int j = i + rng_below(r, len - i);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

static int gen_meals_hall(struct demo *d, const struct d_hall *h, int *pool, int *order,
                          int *border, unsigned char *deliv)
{
    struct rng *r = &d->r;
    /* The hall's regulars: seniors of its township living at home. */
    int n = 0;
    for (int i = 0; i < d->ns; i++)
        if (d->s[i].tw == h->tw && d->s[i].category != CAT_CARE)
            pool[n++] = i;
    shuffle(r, pool, n);
    int npool = rng_range(r, 160, 220);
    if (npool > n)
        npool = n;
    for (int i = 0; i < npool; i++) {
        const struct d_senior *p = &d->s[pool[i]];
        deliv[i] = (unsigned char)(h->delivers && rng_pct(r, p->mobility ? 45 : 10));
    }
    /* Breakfast regulars live close by: the first ones of the pool. */
    int nbpool = npool < 60 ? npool : 60;
    int lunch_base = rng_range(r, 75, 135);
    int breakfast_base = rng_range(r, 15, 35);

    for (int64_t day = d->today - (MEAL_DAYS - 1); day <= d->today; day++) {
        char date[16];
        fmt_date(date, sizeof date, day);

        int nl = lunch_base + rng_range(r, -15, 15);
        nl = nl < 60 ? 60 : nl > 150 ? 150 : nl;
        if (nl > npool)
            nl = npool;
        for (int i = 0; i < npool; i++)
            order[i] = i;
        pick_prefix(r, order, npool, nl);
        for (int i = 0; i < nl; i++) {
            int k = order[i];
            int64_t at = local_ms(day, 11 * HOUR_MS + 30 * MIN_MS) + rng_below(r, (int)HOUR_MS);
            int rc = insert_meal(d, h, &d->s[pool[k]], date, "lunch", deliv[k], at);
            if (rc != SYNC_OK)
                return rc;
        }

        if (!h->breakfast)
            continue;
        int nb = breakfast_base + rng_range(r, -5, 5);
        if (nb > nbpool)
            nb = nbpool;
        for (int i = 0; i < nbpool; i++)
            border[i] = i;
        pick_prefix(r, border, nbpool, nb);
        for (int i = 0; i < nb; i++) {
            /* 07:00-07:59 local = 23:00-23:59 UTC of the previous day. */
            int64_t at = local_ms(day, 7 * HOUR_MS) + rng_below(r, (int)HOUR_MS);
            int rc = insert_meal(d, h, &d->s[pool[border[i]]], date, "breakfast", 0, at);
            if (rc != SYNC_OK)
                return rc;
        }
    }
    return SYNC_OK;
}

static int gen_meals(struct demo *d)
{
    int *pool = es_malloc(sizeof(int) * 3 * (size_t)d->ns);
    unsigned char *deliv = es_malloc((size_t)d->ns);
    if (pool == NULL || deliv == NULL) {
        es_free(pool);
        es_free(deliv);
        set_err(d->err, d->errlen, "demo: out of memory", NULL);
        return SYNC_ENOMEM;
    }
    int rc = SYNC_OK;
    for (int h = 0; h < d->nhalls && rc == SYNC_OK; h++)
        rc = gen_meals_hall(d, &d->hall[h], pool, pool + d->ns, pool + 2 * d->ns, deliv);
    es_free(pool);
    es_free(deliv);
    return rc;
}

/* ------------------------------------------------------------------------
 * Visits and handouts
 * ------------------------------------------------------------------------ */
static int insert_visit(struct demo *d, const struct d_senior *p, const uint8_t *campaign,
                        const char *kind, const char *visitor, int64_t day, int64_t at,
                        const char *notes, uint8_t visit_id[ID_BYTES])
{
    char date[16];
    fmt_date(date, sizeof date, day);
    id_new(visit_id);
    sqlite3_stmt *st = d->st[S_VISIT];
    bind_id(st, 1, visit_id);
    bind_id(st, 2, d->tw[p->tw].id);
    bind_id(st, 3, p->id);
    bind_id(st, 4, campaign);
    bind_text(st, 5, kind);
    bind_text(st, 6, visitor);
    sqlite3_bind_int64(st, 7, at);
    bind_text(st, 8, date);
    bind_text(st, 9, p->address);
    bind_text(st, 10, notes);
    return run(d, S_VISIT);
}

static int insert_handout(struct demo *d, const struct d_senior *p, const uint8_t *visit_id,
                          const char *kind, int amount_fen, const char *goods, int goods_fen)
{
    uint8_t id[ID_BYTES];
    id_new(id);
    sqlite3_stmt *st = d->st[S_HANDOUT];
    bind_id(st, 1, id);
    bind_id(st, 2, visit_id);
    bind_id(st, 3, d->tw[p->tw].id);
    bind_id(st, 4, p->id);
    bind_id(st, 5, d->campaign_id);
    bind_text(st, 6, kind);
    sqlite3_bind_int(st, 7, amount_fen);
    bind_text(st, 8, goods);
    sqlite3_bind_int(st, 9, goods_fen);
    return run(d, S_HANDOUT);
}

static int gen_welfare_visits(struct demo *d)
{
    struct rng *r = &d->r;
    int64_t start, end;
    campaign_span(d, &start, &end);
    if (end > d->today)
        end = d->today;
    for (int i = 0; i < d->ns; i++) {
        const struct d_senior *p = &d->s[i];
        /* The campaign's list: centenarians, advanced-age poor and
         * extreme-poverty seniors (its must_visit).  Every centenarian is
         * visited; ~70% of the others by the month's end. */
        int cent = p->category == CAT_CENTENARIAN;
        int must = cent || (p->category == CAT_ADVANCED && p->poverty != POV_NONE) ||
                   p->poverty == POV_EXTREME;
        if (!must || (!cent && !rng_pct(r, 70)))
            continue;
        const struct d_township *tw = &d->tw[p->tw];
        char visitor[64];
        if (cent)
            snprintf(visitor, sizeof visitor, "县民政局 %s", tw->officials[0]);
        else
            snprintf(visitor, sizeof visitor, "民政办 %s", tw->officials[rng_below(r, 3)]);
        int64_t day = start + rng_below(r, (int)(end - start + 1));
        int64_t at = local_ms(day, 9 * HOUR_MS) + (int64_t)rng_below(r, 8 * 60) * MIN_MS;
        uint8_t vid[ID_BYTES];
        int rc = insert_visit(d, p, d->campaign_id, "welfare", visitor, day, at,
                              WELFARE_NOTES[rng_below(r, N_OF(WELFARE_NOTES))], vid);
        if (rc == SYNC_OK)
            rc = insert_handout(d, p, vid, "cash", CASH_FEN, NULL, 0);
        if (rc == SYNC_OK && (cent || rng_pct(r, 40))) {
            int g = rng_below(r, N_OF(GOODS));
            rc = insert_handout(d, p, vid, "goods", 0, GOODS[g].goods, GOODS[g].value_fen);
        }
        if (rc != SYNC_OK)
            return rc;
    }
    return SYNC_OK;
}

/* Home services over the last four weeks for frail seniors living at home:
 * cleaning every one or two weeks, bathing weekly. */
static int gen_service_visits(struct demo *d)
{
    struct rng *r = &d->r;
    int *cand = es_malloc(sizeof(int) * (size_t)d->ns);
    if (cand == NULL) {
        set_err(d->err, d->errlen, "demo: out of memory", NULL);
        return SYNC_ENOMEM;
    }
    int n = 0;
    for (int i = 0; i < d->ns; i++) {
        const struct d_senior *p = &d->s[i];
        if (p->category != CAT_CARE && (p->age >= 80 || p->mobility || p->poverty != POV_NONE))
            cand[n++] = i;
    }
    shuffle(r, cand, n);
    int ncleaning = n < 60 ? n : 60;
    int nbathing = n - ncleaning < 25 ? n - ncleaning : 25;
    int rc = SYNC_OK;
    for (int k = 0; k < ncleaning + nbathing && rc == SYNC_OK; k++) {
        const struct d_senior *p = &d->s[cand[k]];
        int bathing = k >= ncleaning;
        int every = bathing ? 7 : rng_pct(r, 50) ? 7 : 14;
        const char *carer = d->tw[p->tw].carers[rng_below(r, 2)];
        char visitor[64];
        snprintf(visitor, sizeof visitor, "护理员 %s", carer);
        for (int64_t day = d->today - 27 + rng_below(r, every); day <= d->today && rc == SYNC_OK;
             day += every) {
            int64_t at = local_ms(day, 8 * HOUR_MS + 30 * MIN_MS) +
                         (int64_t)rng_below(r, 9 * 60) * MIN_MS;
            uint8_t vid[ID_BYTES];
            rc = insert_visit(d, p, NULL, bathing ? "bathing" : "cleaning", visitor, day, at,
                              bathing ? "协助洗浴，皮肤无异常" : "打扫卧室、厨房，清洗衣物",
                              vid);
        }
    }
    es_free(cand);
    return rc;
}

/* ------------------------------------------------------------------------
 * Home retrofits
 * ------------------------------------------------------------------------ */
static int pick_status(struct rng *r)
{
    int total = 0;
    for (int s = 0; s < N_STATUSES; s++)
        total += STATUS_WEIGHT[s];
    int x = rng_below(r, total);
    for (int s = 0; s < N_STATUSES; s++) {
        if (x < STATUS_WEIGHT[s])
            return s;
        x -= STATUS_WEIGHT[s];
    }
    return ST_APPLIED;
}

static int gen_case(struct demo *d, const struct d_senior *p, int status)
{
    struct rng *r = &d->r;
    const uint8_t *tw_id = d->tw[p->tw].id;

    int64_t applied = d->today - rng_range(r, STATUS_AGE[status][0], STATUS_AGE[status][1]);
    int64_t assessed = applied + rng_range(r, 7, 20);
    if (assessed > d->today)
        assessed = d->today;
    int64_t accepted = assessed + rng_range(r, 30, 90);
    if (accepted > d->today)
        accepted = d->today;
    char ad[16], sd[16], cd[16];
    fmt_date(ad, sizeof ad, applied);
    fmt_date(sd, sizeof sd, assessed);
    fmt_date(cd, sizeof cd, accepted);

    /* Estimate in whole yuan; the county caps its approval at ¥6,000. */
    int64_t estimate = (int64_t)rng_range(r, 3000, 8000) * 100;
    int64_t approved = estimate / 1000 * 1000;
    if (approved > 600000)
        approved = 600000;
    int64_t final_cost = estimate * rng_range(r, 90, 105) / 100;

    uint8_t case_id[ID_BYTES];
    id_new(case_id);
    sqlite3_stmt *st = d->st[S_CASE];
    bind_id(st, 1, case_id);
    bind_id(st, 2, tw_id);
    bind_id(st, 3, p->id);
    bind_text(st, 4, STATUS_NAMES[status]);
    sqlite3_bind_int(st, 5, d->year);
    bind_text(st, 6, ad);
    bind_text(st, 7, status >= ST_ASSESSED ? sd : NULL);
    bind_text(st, 8, status >= ST_ACCEPTED ? cd : NULL);
    sqlite3_bind_int64(st, 9, estimate);
    if (status >= ST_APPROVED)
        sqlite3_bind_int64(st, 10, approved);
    if (status >= ST_ACCEPTED)
        sqlite3_bind_int64(st, 11, final_cost);
    bind_text(st, 12, rng_pct(r, 40) ? CASE_NOTES[rng_below(r, N_OF(CASE_NOTES))] : NULL);
    int rc = run(d, S_CASE);
    if (rc != SYNC_OK)
        return rc;

    /* 2..6 distinct kinds sharing the estimate by typical weight. */
    int kinds[N_ITEM_KINDS], w[N_ITEM_KINDS];
    for (int k = 0; k < N_ITEM_KINDS; k++)
        kinds[k] = k;
    shuffle(r, kinds, N_ITEM_KINDS);
    int nitems = rng_range(r, 2, 6);
    int64_t wsum = 0;
    for (int k = 0; k < nitems; k++) {
        w[k] = ITEM_KINDS[kinds[k]].weight * rng_range(r, 50, 150);
        wsum += w[k];
    }
    int64_t left = estimate;
    for (int k = 0; k < nitems; k++) {
        int64_t cost = k == nitems - 1 ? left : estimate * w[k] / wsum / 100 * 100;
        left -= cost;
        int done = status >= ST_ACCEPTED || (status == ST_WORKS && rng_pct(r, 60));
        uint8_t item_id[ID_BYTES];
        id_new(item_id);
        st = d->st[S_ITEM];
        bind_id(st, 1, item_id);
        bind_id(st, 2, case_id);
        bind_id(st, 3, tw_id);
        bind_text(st, 4, ITEM_KINDS[kinds[k]].kind);
        bind_text(st, 5, ITEM_KINDS[kinds[k]].description);
        sqlite3_bind_int64(st, 6, cost);
        sqlite3_bind_int(st, 7, done);
        sqlite3_bind_int(st, 8, status >= ST_ACCEPTED);
        if ((rc = run(d, S_ITEM)) != SYNC_OK)
            return rc;
    }
    return SYNC_OK;
}

static int gen_retrofits(struct demo *d)
{
    struct rng *r = &d->r;
    int *cand = es_malloc(sizeof(int) * (size_t)d->ns);
    if (cand == NULL) {
        set_err(d->err, d->errlen, "demo: out of memory", NULL);
        return SYNC_ENOMEM;
    }
    /* Frail, old or poor seniors at home first, then everyone else at home;
     * one case per senior. */
    int n = 0, npri;
    for (int i = 0; i < d->ns; i++) {
        const struct d_senior *p = &d->s[i];
        if (p->category != CAT_CARE && (p->age >= 80 || p->mobility || p->poverty != POV_NONE))
            cand[n++] = i;
    }
    npri = n;
    for (int i = 0; i < d->ns; i++) {
        const struct d_senior *p = &d->s[i];
        if (p->category != CAT_CARE && !(p->age >= 80 || p->mobility || p->poverty != POV_NONE))
            cand[n++] = i;
    }
    shuffle(r, cand, npri);
    shuffle(r, cand + npri, n - npri);
    int ncases = rng_range(r, 140, 160);
    if (ncases > n)
        ncases = n;
    int rc = SYNC_OK;
    for (int k = 0; k < ncases && rc == SYNC_OK; k++) {
        /* The first six cover every status; the rest follow the weights. */
        int status = k < N_STATUSES ? k : pick_status(r);
        rc = gen_case(d, &d->s[cand[k]], status);
    }
    es_free(cand);
    return rc;
}

/* ------------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------------ */
static int generate(struct demo *d)
{
    int rc;
    if ((rc = gen_townships(d)) != SYNC_OK)
        return rc;
    if ((rc = gen_halls(d)) != SYNC_OK)
        return rc;
    if ((rc = gen_campaign(d)) != SYNC_OK)
        return rc;
    if ((rc = gen_seniors(d)) != SYNC_OK)
        return rc;
    if ((rc = gen_meals(d)) != SYNC_OK)
        return rc;
    if ((rc = gen_welfare_visits(d)) != SYNC_OK)
        return rc;
    if ((rc = gen_service_visits(d)) != SYNC_OK)
        return rc;
    return gen_retrofits(d);
}

/* SYNC_OK if townships is empty, SYNC_EINVAL if not, SYNC_EIO on failure. */
static int check_empty(struct demo *d)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(d->db, "SELECT EXISTS (SELECT 1 FROM townships)", -1, &st, NULL) !=
        SQLITE_OK)
        return db_fail(d, "demo: cannot read townships");
    int rc = sqlite3_step(st);
    int exists = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return db_fail(d, "demo: cannot read townships");
    if (exists) {
        set_err(d->err, d->errlen, "demo: the database already has townships; refusing", NULL);
        return SYNC_EINVAL;
    }
    return SYNC_OK;
}

int demo_init(sqlite3 *db, uint64_t seed, const char *today, char *err, size_t errlen)
{
    struct demo d;
    memset(&d, 0, sizeof d);
    d.db = db;
    d.err = err;
    d.errlen = errlen;
    d.r.s = seed;
    if (err != NULL && errlen > 0)
        err[0] = '\0';

    if (db == NULL) {
        set_err(err, errlen, "demo: no database", NULL);
        return SYNC_EINVAL;
    }
    if (parse_date(today, &d.today) != 0) {
        set_err(err, errlen, "demo: today must be a date YYYY-MM-DD", NULL);
        return SYNC_EINVAL;
    }
    civil_from_days(d.today, &d.year, &d.month, &d.day);
    int own = sqlite3_get_autocommit(db);   /* else join the caller's */
    if (sodium_init() < 0) {
        set_err(err, errlen, "demo: libsodium failed to initialise", NULL);
        return SYNC_ERROR;
    }

    d.s = es_calloc(MAX_SENIORS, sizeof *d.s);
    d.id_set = es_calloc(ID_SET_SIZE, sizeof *d.id_set);
    if (d.s == NULL || d.id_set == NULL) {
        es_free(d.s);
        es_free(d.id_set);
        set_err(err, errlen, "demo: out of memory", NULL);
        return SYNC_ENOMEM;
    }

    int rc;
    if (own && sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        rc = db_fail(&d, "demo: cannot begin");
        goto out;
    }
    rc = check_empty(&d);
    for (int i = 0; i < S_COUNT && rc == SYNC_OK; i++)
        if (sqlite3_prepare_v3(db, STMT_SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &d.st[i], NULL) !=
            SQLITE_OK)
            rc = db_fail(&d, "demo: cannot prepare");
    if (rc == SYNC_OK)
        rc = generate(&d);
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(d.st[i]);
    if (own && rc == SYNC_OK && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = db_fail(&d, "demo: cannot commit");
    if (own && rc != SYNC_OK && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
out:
    es_free(d.s);
    es_free(d.id_set);
    return rc;
}

static void print_row_id(FILE *f, const char *what, sqlite3_stmt *st)
{
    const void *blob = sqlite3_column_blob(st, 0);
    int n = sqlite3_column_bytes(st, 0);
    char hex[2 * 64 + 1] = "";
    if (blob != NULL && n > 0)
        hex_encode(hex, blob, (size_t)(n > 64 ? 64 : n));
    const unsigned char *name = sqlite3_column_text(st, 1);
    fprintf(f, "%s %s %s", what, hex, name ? (const char *)name : "?");
}

void demo_print_scopes(sqlite3 *db, void *file)
{
    FILE *f = file;
    sqlite3_stmt *st = NULL;
    if (db == NULL || f == NULL)
        return;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, name FROM townships WHERE deleted = 0"
                           " ORDER BY code, name", -1, &st, NULL) != SQLITE_OK)
        return;
    while (sqlite3_step(st) == SQLITE_ROW) {
        print_row_id(f, "township", st);
        fputc('\n', f);
    }
    sqlite3_finalize(st);

    if (sqlite3_prepare_v2(db,
                           "SELECT h.id, h.name, t.name FROM dining_halls h"
                           " JOIN townships t ON t.id = h.township_id"
                           " WHERE h.deleted = 0 ORDER BY t.code, h.name", -1, &st,
                           NULL) != SQLITE_OK)
        return;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *tname = sqlite3_column_text(st, 2);
        print_row_id(f, "hall", st);
        fprintf(f, " (township %s)\n", tname ? (const char *)tname : "?");
    }
    sqlite3_finalize(st);
}
