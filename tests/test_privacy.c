/* test_privacy.c - no plaintext personal data in any file.
 *
 * The demo county is created, tablets of every role sync it and record new
 * seniors and visits; then the raw bytes of every database file, WAL files
 * included, on the server and on every tablet are searched for the seeded
 * names, ID-card numbers, phone numbers and addresses.  None may appear.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sodium.h>

#include "ids.h"
#include "store.h"
#include "support.h"
#include "test.h"
#include "util.h"

#define MAXNEEDLES 12000

static char *needle[MAXNEEDLES];
static int nneedles;

static void add_needle(const char *s)
{
    if (s == NULL || strlen(s) < 6 || nneedles == MAXNEEDLES)   /* >= 2 CJK characters */
        return;
    needle[nneedles++] = strdup(s);
}

/* The seeded plaintext, read through the server's own keys. */
static void collect(const char *db)
{
    struct server s;
    char err[256];
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.lock, NULL);
    config_load(&s.cfg, NULL, err, sizeof err);
    snprintf(s.cfg.db, sizeof s.cfg.db, "%s", db);
    config_finish(&s.cfg);
    ASSERT_EQ(store_open(&s, err, sizeof err), SYNC_OK);
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(sqlite3_prepare_v2(s.db,
        "SELECT es_dec('seniors', 'name', id, name), es_dec('seniors', 'id_card', id, id_card), "
        "es_dec('seniors', 'phone', id, phone), es_dec('seniors', 'address', id, address), "
        "es_key_id(name), es_key_id(id_card) FROM seniors UNION ALL "
        "SELECT es_dec('visits', 'visitor', id, visitor), es_dec('visits', 'notes', id, notes), "
        "es_dec('visits', 'location', id, location), NULL, es_key_id(visitor), 1 FROM visits",
        -1, &st, NULL), SQLITE_OK);
    long rows = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        ASSERT(sqlite3_column_int(st, 4) > 0 && sqlite3_column_int(st, 5) > 0);   /* sealed */
        for (int i = 0; i < 4; i++)
            add_needle((const char *)sqlite3_column_text(st, i));
        rows++;
    }
    sqlite3_finalize(st);
    ASSERT_GE(rows, 1800);
    store_close(&s);
    pthread_mutex_destroy(&s.lock);
}

/* Needles hashed by their first 6 bytes, so a file is scanned once. */
#define BUCKETS 65536
static int head[BUCKETS], next_[MAXNEEDLES];

static unsigned h6(const uint8_t *p)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 6; i++)
        h = (h ^ p[i]) * 16777619u;
    return h % BUCKETS;
}

static void index_needles(void)
{
    for (int i = 0; i < BUCKETS; i++)
        head[i] = -1;
    for (int k = 0; k < nneedles; k++) {
        unsigned b = h6((const uint8_t *)needle[k]);
        next_[k] = head[b];
        head[b] = k;
    }
}

static long scan_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)len + 1);
    ASSERT_NOT_NULL(buf);
    ASSERT_EQ(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    long found = 0;
    for (long i = 0; i + 6 <= len; i++) {
        for (int k = head[h6(buf + i)]; k >= 0; k = next_[k]) {
            size_t n = strlen(needle[k]);
            if (i + (long)n <= len && memcmp(buf + i, needle[k], n) == 0) {
                if (found++ < 3)
                    fprintf(stderr, "  plaintext found in %s at %ld\n", path, i);
            }
        }
    }
    free(buf);
    return found;
}

static char bindir[256] = "build/release";

/* Adds the secret keys of the server (key file) and of one tablet, raw and
 * in hex, to the needles: no log may carry key material either. */
static void add_key_needles(const char *dir, const char *db)
{
    char path[400], hex[2 * 224 + 1];
    uint8_t raw[224];
    snprintf(path, sizeof path, "%s.key", db);
    FILE *f = fopen(path, "rb");
    ASSERT_NOT_NULL(f);
    ASSERT_EQ(fread(raw, 1, sizeof raw, f), sizeof raw);
    fclose(f);
    static const int secret[][2] = { { 32, 32 }, { 96, 32 }, { 160, 32 }, { 192, 32 } };
    for (int i = 0; i < 4; i++) {
        hex_encode(hex, raw + secret[i][0], (size_t)secret[i][1]);
        add_needle(hex);
        hex[16] = '\0';                          /* a prefix is enough to find a leak */
        add_needle(hex);
    }
    struct ident id;
    snprintf(path, sizeof path, "%s/t00.db", dir);
    tablet_ident(path, &id);
    hex_encode(hex, id.kx_sk, 32);
    add_needle(hex);
    hex_encode(hex, id.sign_sk, 32);
    add_needle(hex);
}

/* Runs the CLI on a tablet with its output into a file for the scan. */
static void cli(const char *dir, const char *args, const char *outname)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/eldersync --db %s/t00.db %s > %s/%s 2>&1", bindir, dir, args,
             dir, outname);
    ASSERT_EQ(system(cmd), 0);
}

static void test_no_plaintext_anywhere(void)
{
    char dir[128], db[192];
    struct srv_proc p;
    test_dir(dir, sizeof dir, "privacy");
    snprintf(db, sizeof db, "%s/county.db", dir);
    memset(&p, 0, sizeof p);
    snprintf(p.dir, sizeof p.dir, "%s", dir);
    snprintf(p.db, sizeof p.db, "%s", db);
    snprintf(p.log, sizeof p.log, "%s/server.log", dir);
    char out[8192];
    const char *init[] = { "demo-init", NULL };
    ASSERT_EQ(srv_run(&p, init, out, sizeof out), 0);
    collect(db);
    ASSERT_GE(nneedles, 4000);
    srv_start(&p, dir, db);

    /* One tablet per township (caregiver), per hall, and two inspectors. */
    uint8_t id[16];
    char *line = out, name[32];
    int n = 0;
    struct sync_client *tabs[16];
    while (line && *line && n < 14) {
        char kind[16], hex[40];
        if (sscanf(line, "%15s %39s", kind, hex) == 2 && hex_decode(id, 16, hex) == 0) {
            int hall = strcmp(kind, "hall") == 0;
            snprintf(name, sizeof name, "t%02d", n);
            tabs[n] = tablet_new(&p, name, hall ? "hall" : "caregiver", id);
            ASSERT_EQ(sync_run(tabs[n], NULL), SYNC_OK);
            n++;
            if (!hall && n < 3) {
                snprintf(name, sizeof name, "t%02d", n);
                tabs[n] = tablet_new(&p, name, "inspector", id);
                ASSERT_EQ(sync_run(tabs[n], NULL), SYNC_OK);
                n++;
            }
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    ASSERT_GE(n, 9);
    /* New personal data written on a tablet travels and rests sealed. */
    struct sync_status_info st;
    ASSERT_EQ(sync_status(tabs[0], &st), SYNC_OK);
    char sql[512];
    uint8_t sid[16];
    id_new(sid);
    char x[36];
    snprintf(sql, sizeof sql, "INSERT INTO seniors (id, township_id, name, id_card, phone, address, "
             "health_notes) VALUES (%s, x'%s', '欧阳测试老人', '530124192801019999', '13912345678', "
             "'测试乡 测试村 9组 99号', '测试病历记录')", xid(sid, x), st.township_id);
    ASSERT_EQ(sync_exec(tabs[0], sql), SYNC_OK);
    add_needle("欧阳测试老人");
    add_needle("530124192801019999");
    add_needle("13912345678");
    add_needle("测试乡 测试村 9组 99号");
    add_needle("测试病历记录");
    for (int i = 0; i < n; i++)
        ASSERT_EQ(sync_run(tabs[i], NULL), SYNC_OK);
    ASSERT_EQ(sync_run(tabs[0], NULL), SYNC_OK);
    /* The app still reads it in clear. */
    long rows = 0;
    ASSERT_EQ(sync_query(tabs[0], "SELECT 1 FROM seniors WHERE name = '欧阳测试老人' AND "
                                  "id_card = '530124192801019999'", NULL, NULL), SYNC_OK);
    (void)rows;
    for (int i = 0; i < n; i++)
        sync_client_close(tabs[i]);
    /* The CLI's own output: sync, status, unlock. */
    snprintf(sql, sizeof sql, "UPDATE seniors SET phone = '13700001234' WHERE name = "
             "'欧阳测试老人'");
    char args[600];
    snprintf(args, sizeof args, "exec \"%s\"", sql);
    cli(dir, args, "cli-exec.out");
    add_needle("13700001234");
    cli(dir, "sync", "cli-sync.out");
    cli(dir, "status", "cli-status.out");
    cli(dir, "unlock", "cli-unlock.out");
    srv_stop(&p);
    add_key_needles(dir, db);

    /* Every file of every database, WAL and shared-memory files included. */
    index_needles();
    long files = 0, found = 0;
    DIR *d = opendir(dir);
    ASSERT_NOT_NULL(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strstr(e->d_name, ".db") == NULL && strstr(e->d_name, ".log") == NULL &&
            strstr(e->d_name, ".out") == NULL)
            continue;
        char path[400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        found += scan_file(path);
        files++;
    }
    closedir(d);
    printf("privacy: %d tablets; %ld files (databases, WAL, server log, CLI output) scanned for "
           "%d seeded values and key material: %ld found\n", n, files, nneedles, found);
    ASSERT_GE(files, 15);
    ASSERT_EQ(found, 0);
}

/* A buffer marked secret (pull pages with opened personal values) grows
 * by copying into a new block and wiping the old one, never by realloc();
 * what it holds must be exactly what was appended, and running out of
 * memory mid-growth must fail it cleanly like any other buffer. */
static int fail_at;
static int fail_nth(void *ctx)
{
    (void)ctx;
    return --fail_at == 0;
}

static void test_secret_buffer(void)
{
    uint8_t chunk[700], expect[700 * 40];
    for (int round = 0; round < 2; round++) {
        struct buf b = { .secret = 1 };
        fail_at = round == 0 ? -1 : 4;          /* round 1: the 4th allocation fails */
        es_alloc_set_fail_hook(fail_nth, NULL);
        for (int i = 0; i < 40; i++) {
            randombytes_buf(chunk, sizeof chunk);
            memcpy(expect + (size_t)i * sizeof chunk, chunk, sizeof chunk);
            buf_append(&b, chunk, sizeof chunk);
        }
        es_alloc_set_fail_hook(NULL, NULL);
        if (round == 0) {
            ASSERT_EQ(b.oom, 0);
            ASSERT_EQ(b.len, sizeof expect);
            ASSERT(memcmp(b.p, expect, sizeof expect) == 0);
        } else {
            ASSERT_EQ(b.oom, 1);                 /* freed (wiped), later appends no-ops */
            ASSERT(b.p == NULL);
            ASSERT_EQ(b.len, 0);
        }
        buf_free(&b);
        ASSERT(b.p == NULL);
    }
}

int main(int argc, char **argv)
{
    static const struct test_case tests[] = {
        TEST(test_no_plaintext_anywhere),
        TEST(test_secret_buffer),
        { NULL, NULL }
    };
    (void)argc;
    if (getenv("ES_BUILD_DIR"))
        snprintf(bindir, sizeof bindir, "%s", getenv("ES_BUILD_DIR"));
    else {                                    /* build/x/tests/test_privacy -> build/x */
        snprintf(bindir, sizeof bindir, "%s", argv[0]);
        for (int k = 0; k < 2; k++) {
            char *slash = strrchr(bindir, '/');
            if (slash)
                *slash = '\0';
        }
    }
    if (sodium_init() < 0)
        return 1;
    int rc = test_run_all("test_privacy", tests);
    for (int i = 0; i < nneedles; i++)
        free(needle[i]);
    return rc;
}
