/* test_lock.c - a stolen tablet is useless without the caregiver's PIN:
 * its keys are wrapped by an Argon2id key from the PIN, wrong PINs are
 * counted, and at the county's limit the keys are destroyed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "client.h"
#include "support.h"
#include "test.h"

static struct county cty;
static struct srv_proc srv;

static int count_cb(void *ctx, int ncol, const char *const *v, const char *const *names)
{
    (void)ncol;
    (void)names;
    *(long *)ctx = atol(v[0]);
    return 0;
}

/* 1 if the file's bytes contain needle. */
static int file_has(const char *path, const uint8_t *needle, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    static uint8_t buf[1 << 22];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(buf + i, needle, n) == 0)
            return 1;
    return 0;
}

static void test_locked_until_pin(void)
{
    struct sync_client *c = tablet_new(&srv, "locked", "caregiver", cty.twp[0]);
    ASSERT_EQ(sync_run(c, NULL), SYNC_OK);
    uint8_t kx_sk[32], sign_sk[64];
    memcpy(kx_sk, c->kx_sk, 32);
    memcpy(sign_sk, c->sign_sk, 64);
    sync_client_close(c);
    char path[256];
    snprintf(path, sizeof path, "%s/locked.db", srv.dir);
    /* The secret keys are nowhere in the files, WAL included. */
    char wal[300];
    snprintf(wal, sizeof wal, "%s-wal", path);
    ASSERT(!file_has(path, kx_sk, 32) && !file_has(wal, kx_sk, 32));
    ASSERT(!file_has(path, sign_sk, 32) && !file_has(wal, sign_sk, 32));

    char err[256];
    ASSERT_EQ(sync_client_open(&c, path, err, sizeof err), SYNC_OK);
    struct sync_status_info st;
    ASSERT_EQ(sync_status(c, &st), SYNC_OK);
    ASSERT_EQ(st.locked, 1);
    long n = -1;
    ASSERT_EQ(sync_run(c, NULL), SYNC_ELOCKED);
    ASSERT_EQ(sync_exec(c, "UPDATE seniors SET phone = '1'"), SYNC_ELOCKED);
    ASSERT_EQ(sync_query(c, "SELECT count(*) FROM seniors", count_cb, &n), SYNC_ELOCKED);
    ASSERT(strstr(sync_client_errmsg(c), "PIN") != NULL);

    ASSERT_EQ(sync_unlock(c, "0000"), SYNC_EAUTH);
    ASSERT(strstr(sync_client_errmsg(c), "4 attempts left") != NULL);
    sync_status(c, &st);
    ASSERT_EQ(st.pin_failures, 1);
    ASSERT_EQ(sync_unlock(c, TEST_PIN), SYNC_OK);
    sync_status(c, &st);
    ASSERT_EQ(st.pin_failures, 0);
    ASSERT_EQ(st.locked, 0);
    ASSERT_EQ(sync_query(c, "SELECT count(*) FROM seniors", count_cb, &n), SYNC_OK);
    ASSERT_EQ(n, NSENIOR);
    ASSERT_EQ(sync_run(c, NULL), SYNC_OK);
    sync_client_close(c);
}

static void test_wrong_pins_destroy_keys(void)
{
    struct sync_client *c = tablet_new(&srv, "guessed", "hall", cty.hall[0]);
    ASSERT_EQ(sync_run(c, NULL), SYNC_OK);
    sync_client_close(c);
    char path[256], err[256];
    snprintf(path, sizeof path, "%s/guessed.db", srv.dir);
    /* Each attempt in a new process lifetime: the count is on disk. */
    for (int i = 1; i <= 5; i++) {
        ASSERT_EQ(sync_client_open(&c, path, err, sizeof err), SYNC_OK);
        ASSERT_EQ(sync_unlock(c, "9999"), SYNC_EAUTH);
        if (i == 5)
            ASSERT(strstr(sync_client_errmsg(c), "destroyed") != NULL);
        sync_client_close(c);
    }
    ASSERT_EQ(sync_client_open(&c, path, err, sizeof err), SYNC_OK);
    ASSERT_EQ(sync_unlock(c, TEST_PIN), SYNC_EAUTH);          /* the right PIN is too late */
    struct sync_status_info st;
    sync_status(c, &st);
    ASSERT_EQ(st.wiped, 1);
    sync_client_close(c);
    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *q = NULL;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM sync_meta WHERE key = 'vault') "
                                 "+ (SELECT count(*) FROM data_keys)", -1, &q, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
    ASSERT_EQ(sqlite3_column_int(q, 0), 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
}

static void test_enroll_needs_a_pin(void)
{
    struct sync_client *c = NULL;
    char path[256], code[64], err[256];
    snprintf(path, sizeof path, "%s/nopin.db", srv.dir);
    srv_code(&srv, "caregiver", cty.twp[1], code, sizeof code);
    ASSERT_EQ(sync_client_open(&c, path, err, sizeof err), SYNC_OK);
    ASSERT_EQ(sync_enroll(c, srv.url, code, "12"), SYNC_EINVAL);     /* too short */
    ASSERT_EQ(sync_enroll(c, srv.url, code, TEST_PIN), SYNC_OK);     /* the code was not spent */
    sync_client_close(c);
}

int main(void)
{
    static const struct test_case tests[] = {
        TEST(test_locked_until_pin),
        TEST(test_wrong_pins_destroy_keys),
        TEST(test_enroll_needs_a_pin),
        { NULL, NULL }
    };
    char dir[128], db[192];
    if (sodium_init() < 0)
        return 1;
    test_dir(dir, sizeof dir, "lock");
    snprintf(db, sizeof db, "%s/county.db", dir);
    county_seed(db, &cty);
    srv_start(&srv, dir, db);
    int rc = test_run_all("test_lock", tests);
    srv_stop(&srv);
    return rc;
}
