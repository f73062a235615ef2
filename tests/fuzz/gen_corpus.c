/* gen_corpus.c - writes the seed corpora of the fuzz targets.
 *
 *   gen_corpus DIR      writes DIR/fuzz_changeset, DIR/fuzz_push, DIR/fuzz_envelope
 *
 * Changesets are recorded by SQLite's own session extension on a database
 * seeded with the fixed-id county of fuzz_common.c (every scenario runs in a
 * savepoint that is rolled back, so each starts from the same rows), plus a
 * few built with cs_writer (pull-style tombstones, odd value types), plus
 * the 20-byte changeset that hangs SQLite 3.40.1.  Push inputs are a device
 * selector byte and a batch payload built from those changesets (or a pull
 * request).  Envelopes are sealed under fuzz_envelope's fixed key.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sodium.h>

#include "changeset.h"
#include "eldersync.h"
#include "envelope.h"
#include "fuzz_common.h"
#include "pcrypt.h"
#include "policy.h"
#include "schema.h"
#include "util.h"

static sqlite3 *db;
static struct policy *pol;
static struct fz_county cty;
static char outdir[512];
static int nfiles;

/* x'..' literals of the county's ids, by short name. */
static char T0[36], T1[36], H0[36], H2[36], S00[36], S01[36], S02[36], S10[36], R00[36],
            R01[36], V0[36], C0[36], M0[36], N1[36], N2[36], N3[36], N4[36];

static void die(const char *what)
{
    fprintf(stderr, "gen_corpus: %s\n", what);
    exit(1);
}

static void write_file(const char *sub, const char *name, const void *p, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", outdir, sub);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        die("mkdir");
    snprintf(path, sizeof path, "%s/%s/%s", outdir, sub, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || (n > 0 && fwrite(p, 1, n, f) != n) || fclose(f) != 0)
        die(path);
    nfiles++;
}

static void check(const uint8_t *cs, size_t n, const char *name)
{
    struct cs_error e;
    if (cs_validate(cs, n, policy_cs_lookup, pol, NULL, NULL, &e) != SYNC_OK) {
        fprintf(stderr, "gen_corpus: %s is rejected: %s\n", name, e.msg);
        exit(1);
    }
}

/* seal(table, column, value): value sealed under key id 1 (the first key
 * a server's keyring issues) with a fixed key, as the SDK's es_enc would.
 * The server checks the sealed layout and key id, not the contents. */
static void fn_seal(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    static const uint8_t key[32] = { 'f', 'u', 'z', 'z' };
    uint8_t *out = NULL;
    size_t n = 0;
    (void)argc;
    if (pv_seal(key, 1, (const char *)sqlite3_value_text(argv[0]),
                (const char *)sqlite3_value_text(argv[1]), NULL, 0, sqlite3_value_text(argv[2]),
                (size_t)sqlite3_value_bytes(argv[2]), &out, &n) != SYNC_OK) {
        sqlite3_result_error(ctx, "pv_seal failed", -1);
        return;
    }
    sqlite3_result_blob(ctx, out, (int)n, free);
}

/* Records what sql does (after an unrecorded pre) as SQLite's changeset. */
static uint8_t *record(const char *pre, const char *sql, int indirect, size_t *len)
{
    sqlite3_session *s = NULL;
    void *out = NULL;
    int n = 0;
    if (fz_exec(db, "SAVEPOINT g") != 0 || (pre && fz_exec(db, pre) != 0))
        die("pre");
    if (sqlite3session_create(db, "main", &s) != SQLITE_OK)
        die("session");
    for (int i = 0; i < pol->ntables; i++)
        if (sqlite3session_attach(s, pol->tables[i].name) != SQLITE_OK)
            die("attach");
    sqlite3session_indirect(s, indirect);
    if (fz_exec(db, sql) != 0)
        die("scenario");
    if (sqlite3session_changeset(s, &n, &out) != SQLITE_OK || n <= 0)
        die("empty changeset");
    sqlite3session_delete(s);
    if (fz_exec(db, "ROLLBACK TO g; RELEASE g") != 0)
        die("rollback");
    uint8_t *copy = malloc((size_t)n);
    if (copy == NULL)
        die("oom");
    memcpy(copy, out, (size_t)n);
    sqlite3_free(out);
    *len = (size_t)n;
    return copy;
}

/* push input: selector byte, then u32 schema_version | u64 ms | u32 n |
 * n x (u64 id | u32 len | local | u32 len | forward), big-endian. */
struct part { const uint8_t *p; size_t n; };
static void write_push(const char *name, int device, const struct part *local,
                       const struct part *fwd, int nentries)
{
    struct buf b = {0};
    buf_byte(&b, (uint8_t)device);
    buf_be32(&b, (uint32_t)schema_version());
    buf_be64(&b, 1764474000000ull);
    buf_be32(&b, (uint32_t)nentries);
    for (int i = 0; i < nentries; i++) {
        buf_be64(&b, (uint64_t)(i + 1));
        buf_be32(&b, (uint32_t)local[i].n);
        buf_append(&b, local[i].p, local[i].n);
        buf_be32(&b, (uint32_t)fwd[i].n);
        buf_append(&b, fwd[i].p, fwd[i].n);
    }
    if (b.oom)
        die("oom");
    write_file("fuzz_push", name, b.p, b.len);
    buf_free(&b);
}

/* fuzz_json: selector byte (< 0x80 enrollment, bit 0 the code: 0 hall,
 * 1 caregiver; >= 0x80 pull, device (s & 3) % 3), then the JSON body.
 * "AAAA-AAAA-AAAA-AAAA" stands for a live code (fuzz_json.c). */
static void json_bodies(void)
{
    static const char kx[] = "8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f";
    static const char sg[] = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    char body[512];
    static const struct { int sel; const char *fmt; } enr[] = {
        { 0, "{\"code\":\"AAAA-AAAA-AAAA-AAAA\",\"kx_pk\":\"%s\",\"sign_pk\":\"%s\","
             "\"app_version\":\"1.0\",\"schema_version\":1}" },
        { 1, "{\"code\":\"aaaaaaaaaaaaaaaa\",\"kx_pk\":\"%s\",\"sign_pk\":\"%s\"}" },
        { 0, "{\"code\":\"ZZZZ-ZZZZ-ZZZZ-ZZZZ\",\"kx_pk\":\"%s\",\"sign_pk\":\"%s\"}" },
        { 1, "{\"code\":\"AAAA-AAAA-AAAA-AAAA\",\"kx_pk\":\"%s\",\"sign_pk\":\"%.10s\"}" },
        { 0, "{\"code\":1,\"kx_pk\":\"%s\",\"sign_pk\":\"%s\",\"schema_version\":1e308}" },
    };
    for (size_t i = 0; i < sizeof enr / sizeof enr[0]; i++) {
        body[0] = (char)enr[i].sel;
        int n = snprintf(body + 1, sizeof body - 1, enr[i].fmt, kx, sg);
        char name[32];
        snprintf(name, sizeof name, "enroll_%zu", i);
        write_file("fuzz_json", name, body, (size_t)n + 1);
    }
    static const char *const bad[] = { "", "[]", "{", "{\"code\":null}", "\"x\"" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        body[0] = 0;
        size_t l = strlen(bad[i]);
        memcpy(body + 1, bad[i], l);
        char name[32];
        snprintf(name, sizeof name, "enroll_bad_%zu", i);
        write_file("fuzz_json", name, body, l + 1);
    }
    static const char *const reqs[] = {
        "{\"cursor\":0}", "{\"cursor\":0,\"have_key\":-1}",
        "{\"cursor\":0,\"max_bytes\":1024,\"schema_version\":1,\"have_key\":0}",
        "{\"cursor\":3,\"max_bytes\":1e300}", "{\"cursor\":-1}", "[1,2,3]",
        "{\"cursor\":1.5}", "{\"cursor\":9e15,\"have_key\":1e15}",
        "{\"cursor\":0,\"have_key\":-1,\"open_personal\":true}", "{\"cursor\":0,\"open_personal\":1}",
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        size_t l = strlen(reqs[i]);
        body[0] = (char)(0x80 + i % 3);
        memcpy(body + 1, reqs[i], l);
        char name[32];
        snprintf(name, sizeof name, "pull_%zu", i);
        write_file("fuzz_json", name, body, l + 1);
    }
}

struct scenario {
    const char *name;
    int         device;     /* FZ_DEV_* that would push it */
    int         indirect;
    char        pre[1024];  /* unrecorded setup (makes old values stale) */
    char        sql[2048];
};

#define SC(...) snprintf(sc->sql, sizeof sc->sql, __VA_ARGS__)
#define PRE(...) snprintf(sc->pre, sizeof sc->pre, __VA_ARGS__)

static int scenarios(struct scenario *all)
{
    struct scenario *sc = all;
    static const char meal_cols[] = "INSERT INTO meal_logs (id, senior_id, hall_id, service_date, "
                                    "meal_period, mode, served_at, price_paid_fen, subsidy_fen, "
                                    "void_of) VALUES ";
    /* dining hall H0 */
    sc->name = "meal_insert"; sc->device = FZ_DEV_HALL;
    SC("%s(%s, %s, %s, '2026-12-01', 'lunch', 'dine_in', 1764560000000, 700, 300, NULL)",
       meal_cols, N1, S01, H0);
    sc++;
    sc->name = "meal_three"; sc->device = FZ_DEV_HALL;
    SC("%s(%s, %s, %s, '2026-12-02', 'breakfast', 'dine_in', 1764640000000, 300, 200, NULL),"
       "(%s, %s, %s, '2026-12-02', 'lunch', 'delivery', 1764650000000, 700, 300, NULL),"
       "(%s, %s, %s, '2026-12-02', 'dinner', 'dine_in', 1764660000000, 700, 0, NULL)",
       meal_cols, N1, S02, H0, N2, S02, H0, N3, S01, H0);
    sc++;
    sc->name = "meal_void"; sc->device = FZ_DEV_HALL;
    SC("%s(%s, %s, %s, '2026-11-30', 'lunch', 'dine_in', 1764480000000, 0, 0, %s)",
       meal_cols, N1, S00, H0, M0);
    sc++;
    sc->name = "meal_dup_claim"; sc->device = FZ_DEV_HALL;
    PRE("DELETE FROM meal_logs WHERE id = %s", M0);
    SC("%s(%s, %s, %s, '2026-11-30', 'lunch', 'dine_in', 1764480000000, 700, 300, NULL)",
       meal_cols, N1, S00, H0);
    sc++;
    sc->name = "meal_other_hall"; sc->device = FZ_DEV_HALL;
    SC("%s(%s, %s, %s, '2026-12-01', 'lunch', 'dine_in', 1764560000000, 700, 300, NULL)",
       meal_cols, N1, S10, H2);
    sc++;
    sc->name = "meal_delete"; sc->device = FZ_DEV_HALL;
    SC("DELETE FROM meal_logs WHERE id = %s", M0);
    sc++;
    sc->name = "meal_update"; sc->device = FZ_DEV_HALL;
    SC("UPDATE meal_logs SET subsidy_fen = 0, price_paid_fen = 1000 WHERE id = %s", M0);
    sc++;
    sc->name = "meal_bad_check"; sc->device = FZ_DEV_HALL;
    SC("PRAGMA ignore_check_constraints = 1;"
       "%s(%s, %s, %s, 'yesterday', 'brunch', 'dine_in', 1764560000000, -5, 300, NULL);"
       "PRAGMA ignore_check_constraints = 0", meal_cols, N1, S01, H0);
    sc++;
    /* caregiver of T0 */
    sc->name = "senior_insert"; sc->device = FZ_DEV_CAREGIVER;
    SC("INSERT INTO seniors (id, township_id, name, id_card, phone, gender, birth_year, category, "
       "hlc) VALUES (%s, %s, seal('seniors', 'name', 'Wang Fang'), seal('seniors', 'id_card', "
       "'530124192601010023'), seal('seniors', 'phone', '13800000000'), 'F', 1926, "
       "'centenarian', %lld)", N1, T0, 1764560000000LL << 16);
    sc++;
    sc->name = "senior_update"; sc->device = FZ_DEV_CAREGIVER;
    SC("UPDATE seniors SET phone = seal('seniors', 'phone', '13900000001'), "
       "address = seal('seniors', 'address', 'No. 3 East Lane'), hlc = %lld "
       "WHERE id = %s", 1764560000000LL << 16, S00);
    sc++;
    sc->name = "senior_update_stale"; sc->device = FZ_DEV_CAREGIVER;
    PRE("UPDATE seniors SET phone = '111', hlc = %lld WHERE id = %s", 1764000000000LL << 16, S01);
    SC("UPDATE seniors SET phone = seal('seniors', 'phone', '222'), "
       "health_notes = seal('seniors', 'health_notes', 'diabetic'), hlc = %lld WHERE id = %s",
       1764560000000LL << 16, S01);
    sc++;
    sc->name = "senior_protected"; sc->device = FZ_DEV_CAREGIVER;
    SC("UPDATE seniors SET subsidy_level = 3, hlc = hlc + 1 WHERE id = %s", S00);
    sc++;
    sc->name = "senior_move"; sc->device = FZ_DEV_CAREGIVER;
    SC("UPDATE seniors SET township_id = %s, hlc = hlc + 1 WHERE id = %s", T1, S02);
    sc++;
    sc->name = "senior_other_twp"; sc->device = FZ_DEV_CAREGIVER;
    SC("UPDATE seniors SET name = seal('seniors', 'name', 'x'), hlc = hlc + 1 WHERE id = %s",
       S10);
    sc++;
    sc->name = "senior_delete"; sc->device = FZ_DEV_CAREGIVER;
    SC("DELETE FROM seniors WHERE id = %s", S02);
    sc++;
    sc->name = "visit_and_handout"; sc->device = FZ_DEV_CAREGIVER;
    SC("INSERT INTO visits (id, township_id, senior_id, campaign_id, kind, visitor, visited_at, "
       "service_date, location, notes, hlc) VALUES (%s, %s, %s, %s, 'welfare', seal('visits', 'visitor', 'w7'), "
       "1764560000000, '2026-12-01', seal('visits', 'location', 'home'), "
       "seal('visits', 'notes', 'fine'), %lld);"
       "INSERT INTO visit_handouts (id, visit_id, township_id, senior_id, campaign_id, kind, "
       "amount_fen, goods, goods_value_fen) VALUES (%s, %s, %s, %s, %s, 'cash', 20000, NULL, 0),"
       "(%s, %s, %s, %s, %s, 'goods', 0, 'rice 5kg', 3500)",
       N1, T0, S01, C0, 1764560000000LL << 16, N2, N1, T0, S01, C0, N3, N1, T0, S01, C0);
    sc++;
    sc->name = "handout_dup_cash"; sc->device = FZ_DEV_CAREGIVER;
    PRE("DELETE FROM visit_handouts");
    SC("INSERT INTO visit_handouts (id, visit_id, township_id, senior_id, campaign_id, kind, "
       "amount_fen) VALUES (%s, %s, %s, %s, %s, 'cash', 20000)", N2, V0, T0, S00, C0);
    sc++;
    sc->name = "visit_update"; sc->device = FZ_DEV_CAREGIVER;
    SC("UPDATE visits SET notes = seal('visits', 'notes', 'needs a walker'), "
       "location = seal('visits', 'location', 'yard'), hlc = %lld WHERE id = %s",
       1764560000000LL << 16, V0);
    sc++;
    sc->name = "visit_delete"; sc->device = FZ_DEV_CAREGIVER;
    SC("DELETE FROM visits WHERE id = %s", V0);
    sc++;
    sc->name = "senior_and_visit_indirect"; sc->device = FZ_DEV_CAREGIVER; sc->indirect = 1;
    SC("INSERT INTO seniors (id, township_id, name, category, hlc) VALUES (%s, %s, seal('seniors', 'name', 'Li Wei'), "
       "'advanced_age', %lld);"
       "INSERT INTO visits (id, township_id, senior_id, kind, visitor, visited_at, service_date, "
       "hlc) VALUES (%s, %s, %s, 'bathing', seal('visits', 'visitor', 'w2'), 1764560000000, '2026-12-01', %lld)",
       N3, T0, 1764560000000LL << 16, N4, T0, N3, 1764560000000LL << 16);
    sc++;
    /* inspector of T0 */
    sc->name = "case_assess"; sc->device = FZ_DEV_INSPECTOR;
    SC("UPDATE retrofit_cases SET status = 'assessed', assessed_date = '2026-12-01', "
       "estimated_cost_fen = 450000, hlc = %lld WHERE id = %s", 1764560000000LL << 16, R00);
    sc++;
    sc->name = "case_approve"; sc->device = FZ_DEV_INSPECTOR;
    SC("UPDATE retrofit_cases SET status = 'approved', hlc = %lld WHERE id = %s",
       1764560000000LL << 16, R00);
    sc++;
    sc->name = "case_stale_state"; sc->device = FZ_DEV_INSPECTOR;
    PRE("UPDATE retrofit_cases SET status = 'works' WHERE id = %s", R01);
    SC("UPDATE retrofit_cases SET status = 'accepted', accepted_date = '2026-12-09', "
       "hlc = %lld WHERE id = %s", 1764560000000LL << 16, R01);
    sc++;
    sc->name = "case_insert_item"; sc->device = FZ_DEV_INSPECTOR;
    SC("INSERT INTO retrofit_cases (id, township_id, senior_id, status, target_year, "
       "applied_date, hlc) VALUES (%s, %s, %s, 'applied', 2027, '2026-12-01', %lld);"
       "INSERT INTO retrofit_items (id, case_id, township_id, item_kind, description, cost_fen, "
       "hlc) VALUES (%s, %s, %s, 'grab_bar', 'bathroom', 12000, %lld)",
       N1, T0, S02, 1764560000000LL << 16, N2, N1, T0, 1764560000000LL << 16);
    sc++;
    sc->name = "case_long_notes"; sc->device = FZ_DEV_INSPECTOR;
    SC("UPDATE retrofit_cases SET notes = replace(hex(zeroblob(150)), '0', 'n') || '\xe6\x89\xb6',"
       " final_cost_fen = 0.5, hlc = %lld WHERE id = %s", 1764560000000LL << 16, R00);
    sc++;
    sc->name = "case_protected"; sc->device = FZ_DEV_INSPECTOR;
    SC("UPDATE retrofit_cases SET approved_amount_fen = 900000, hlc = hlc + 1 WHERE id = %s", R00);
    sc++;
    return (int)(sc - all);
}

/* Changesets that sqlite3session would not write but the server must
 * handle: pull-style tombstones, odd value types, an identical duplicate. */
static void writer_changesets(void)
{
    const struct pol_table *sen = policy_table(pol, "seniors");
    const struct pol_table *meal = policy_table(pol, "meal_logs");
    struct cs_value v[POL_MAXCOL], o[POL_MAXCOL];
    struct cs_writer w;
    uint8_t *p = NULL;
    size_t n = 0;
    if (sen == NULL || meal == NULL)
        die("policy");

    /* tombstone: the key, NULL elsewhere (what pull.c writes) */
    cs_writer_init(&w);
    cs_writer_table(&w, sen->name, sen->ncol, sen->pk);
    memset(v, 0, sizeof v);
    for (int i = 0; i < sen->ncol; i++)
        v[i].type = CS_NULL;
    v[sen->id_col] = (struct cs_value){ .type = CS_BLOB, .p = cty.senior[0][3], .n = 16 };
    cs_writer_change(&w, CS_DELETE, 0, v, NULL);
    if (cs_writer_finish(&w, &p, &n) != SYNC_OK)
        die("writer");
    check(p, n, "w_tombstone");
    write_file("fuzz_changeset", "w_tombstone", p, n);
    free(p);

    /* the seeded meal again, identical (append: no-op duplicate) */
    cs_writer_init(&w);
    cs_writer_table(&w, meal->name, meal->ncol, meal->pk);
    memset(v, 0, sizeof v);
    v[0] = (struct cs_value){ .type = CS_BLOB, .p = cty.meal, .n = 16 };
    v[1] = (struct cs_value){ .type = CS_BLOB, .p = cty.senior[0][0], .n = 16 };
    v[2] = (struct cs_value){ .type = CS_BLOB, .p = cty.hall[0], .n = 16 };
    v[3] = (struct cs_value){ .type = CS_TEXT, .p = (const uint8_t *)"2026-11-30", .n = 10 };
    v[4] = (struct cs_value){ .type = CS_TEXT, .p = (const uint8_t *)"lunch", .n = 5 };
    v[5] = (struct cs_value){ .type = CS_TEXT, .p = (const uint8_t *)"dine_in", .n = 7 };
    v[6] = (struct cs_value){ .type = CS_INT, .i = 1764474000000 };
    v[7] = (struct cs_value){ .type = CS_INT, .i = 700 };
    v[8] = (struct cs_value){ .type = CS_INT, .i = 300 };
    v[9] = (struct cs_value){ .type = CS_NULL };
    cs_writer_change(&w, CS_INSERT, 0, NULL, v);
    /* and one with odd types: REAL price, NaN subsidy, TEXT id of 16 bytes */
    v[0] = (struct cs_value){ .type = CS_TEXT, .p = (const uint8_t *)"0123456789abcdef", .n = 16 };
    v[7] = (struct cs_value){ .type = CS_REAL, .r = 7.5 };
    v[8] = (struct cs_value){ .type = CS_REAL, .r = -0.0 };
    v[9] = (struct cs_value){ .type = CS_BLOB, .p = NULL, .n = 0 };
    cs_writer_change(&w, CS_INSERT, 1, NULL, v);
    if (cs_writer_finish(&w, &p, &n) != SYNC_OK)
        die("writer");
    check(p, n, "w_meal_types");
    write_file("fuzz_changeset", "w_meal_types", p, n);
    struct part loc = { p, n }, none = { NULL, 0 };
    write_push("w_meal_types", FZ_DEV_HALL, &loc, &none, 1);
    free(p);

    /* an UPDATE with extreme integers, written by hand */
    cs_writer_init(&w);
    cs_writer_table(&w, sen->name, sen->ncol, sen->pk);
    memset(v, 0, sizeof v);
    memset(o, 0, sizeof o);
    o[sen->id_col] = (struct cs_value){ .type = CS_BLOB, .p = cty.senior[0][4], .n = 16 };
    int by = policy_col(sen, "birth_year"), hl = policy_col(sen, "hlc");
    o[by] = (struct cs_value){ .type = CS_NULL };
    v[by] = (struct cs_value){ .type = CS_INT, .i = INT64_MIN };
    o[hl] = (struct cs_value){ .type = CS_INT, .i = 1000LL << 16 };
    v[hl] = (struct cs_value){ .type = CS_INT, .i = INT64_MAX };
    cs_writer_change(&w, CS_UPDATE, 0, o, v);
    if (cs_writer_finish(&w, &p, &n) != SYNC_OK)
        die("writer");
    check(p, n, "w_senior_extremes");
    write_file("fuzz_changeset", "w_senior_extremes", p, n);
    loc = (struct part){ p, n };
    write_push("w_senior_extremes", FZ_DEV_CAREGIVER, &loc, &none, 1);
    write_push("w_senior_extremes_fwd", FZ_DEV_CAREGIVER, &none, &loc, 1);
    free(p);
}

static void envelopes(void)
{
    static const uint8_t hang[20] = { 0x54, 0x32, 0x03, 0x03, 0x62, 0x6f, 0x62, 0x01, 0, 0, 0,
                                      0, 0, 0, 0, 0x01, 0, 0, 0, 0x09 };
    uint8_t key[ENV_KEYBYTES];
    for (int i = 0; i < ENV_KEYBYTES; i++)
        key[i] = (uint8_t)i;                 /* fuzz_envelope's fixed key */
    static const char *const pts[] = { "", "hello", "{\"cursor\":0}" };
    for (int kind = ENV_PUSH; kind <= ENV_PULL_REPLY; kind++) {
        for (int k = 0; k < 3; k++) {
            struct env_header h = { ENV_VERSION, kind, { 0 }, kind == ENV_PUSH ? 7 : 0 };
            memcpy(h.device_id, cty.dev[k], 16);
            uint8_t *out = NULL;
            size_t n = 0;
            const uint8_t *pt = k == 2 ? hang : (const uint8_t *)pts[k];
            size_t ptlen = k == 2 ? sizeof hang : strlen(pts[k]);
            if (env_seal(&h, key, pt, ptlen, &out, &n) != SYNC_OK)
                die("seal");
            char name[32];
            snprintf(name, sizeof name, "env_k%d_%d", kind, k);
            write_file("fuzz_envelope", name, out, n);
            free(out);
        }
    }
    /* selector-first inputs for the seal-then-mutate path */
    for (int sel = 0; sel < 32; sel += 5) {
        uint8_t in[16];
        in[0] = (uint8_t)sel;
        memcpy(in + 1, "plaintext-bytes", 15);
        char name[32];
        snprintf(name, sizeof name, "sel_%02d", sel);
        write_file("fuzz_envelope", name, in, sizeof in);
    }
}

int main(int argc, char **argv)
{
    char err[256];
    if (argc != 2)
        die("usage: gen_corpus DIR");
    snprintf(outdir, sizeof outdir, "%s", argv[1]);
    if (sodium_init() < 0)
        die("sodium");
    if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
        schema_apply(db, SCHEMA_SERVER, err, sizeof err) != SYNC_OK ||
        policy_load(db, &pol, err, sizeof err) != SYNC_OK)
        die(err);
    fz_county_ids(&cty);
    if (fz_seed_rows(db, &cty) != 0)
        die("seed");
    if (sqlite3_create_function(db, "seal", 3, SQLITE_UTF8, NULL, fn_seal, NULL, NULL)
        != SQLITE_OK)
        die("seal function");
    uint8_t nid[4][16];
    for (int i = 0; i < 4; i++) {
        memset(nid[i], 0, 16);
        memcpy(nid[i], "FZnew", 5);
        nid[i][5] = (uint8_t)('1' + i);
    }
    fz_xid(cty.twp[0], T0); fz_xid(cty.twp[1], T1); fz_xid(cty.hall[0], H0);
    fz_xid(cty.hall[2], H2); fz_xid(cty.senior[0][0], S00); fz_xid(cty.senior[0][1], S01);
    fz_xid(cty.senior[0][2], S02); fz_xid(cty.senior[1][0], S10); fz_xid(cty.rcase[0][0], R00);
    fz_xid(cty.rcase[0][1], R01); fz_xid(cty.visit[0], V0); fz_xid(cty.campaign, C0);
    fz_xid(cty.meal, M0); fz_xid(nid[0], N1); fz_xid(nid[1], N2); fz_xid(nid[2], N3);
    fz_xid(nid[3], N4);

    static struct scenario all[64];
    int n = scenarios(all);
    static uint8_t *cs[64];
    static size_t len[64];
    for (int i = 0; i < n; i++) {
        char name[80];
        cs[i] = record(all[i].pre[0] ? all[i].pre : NULL, all[i].sql, all[i].indirect, &len[i]);
        check(cs[i], len[i], all[i].name);
        snprintf(name, sizeof name, "s_%s", all[i].name);
        write_file("fuzz_changeset", name, cs[i], len[i]);
        struct part loc = { cs[i], len[i] }, none = { NULL, 0 };
        write_push(name, all[i].device, &loc, &none, 1);
    }
    /* multi-entry batches: local + forward parts, several entries */
    {
        struct part loc[3] = { { cs[0], len[0] }, { cs[2], len[2] }, { NULL, 0 } };
        struct part fwd[3] = { { NULL, 0 }, { cs[1], len[1] }, { cs[0], len[0] } };
        write_push("b_hall_three_entries", FZ_DEV_HALL, loc, fwd, 3);
    }
    /* concatenated changesets (two sections of one table, many tables) */
    {
        struct buf b = {0};
        for (int i = 0; i < n; i++)
            buf_append(&b, cs[i], len[i]);
        check(b.p, b.len, "all");
        write_file("fuzz_changeset", "c_all", b.p, b.len);
        buf_free(&b);
    }
    writer_changesets();
    /* the changeset that hangs SQLite 3.40.1 */
    static const uint8_t hang[20] = { 0x54, 0x32, 0x03, 0x03, 0x62, 0x6f, 0x62, 0x01, 0, 0, 0,
                                      0, 0, 0, 0, 0x01, 0, 0, 0, 0x09 };
    write_file("fuzz_changeset", "hang_sqlite_3_40_1", hang, sizeof hang);
    {
        struct part loc = { hang, sizeof hang }, none = { NULL, 0 };
        write_push("hang_sqlite_3_40_1", FZ_DEV_HALL, &loc, &none, 1);
    }
    /* pull requests (the push target feeds the same bytes to pull_build) */
    static const char *const reqs[] = {
        "{\"cursor\":0}", "{\"cursor\":0,\"max_bytes\":1024,\"schema_version\":1}",
        "{\"cursor\":3,\"max_bytes\":1e300}", "{\"cursor\":-1}", "[1,2,3]",
        "{\"cursor\":0,\"have_key\":-1,\"open_personal\":true}",
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        uint8_t in[128];
        size_t l = strlen(reqs[i]);
        in[0] = (uint8_t)(i % 3);
        memcpy(in + 1, reqs[i], l);
        char name[32];
        snprintf(name, sizeof name, "pull_%zu", i);
        write_file("fuzz_push", name, in, l + 1);
    }
    json_bodies();
    envelopes();
    for (int i = 0; i < n; i++)
        free(cs[i]);
    policy_free(pol);
    sqlite3_close(db);
    printf("gen_corpus: %d files under %s\n", nfiles, outdir);
    return 0;
}
