/* test_audit.c - signed batches, the hash-chained audit log, revocation
 * and the device list, through the real server commands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "client.h"
#include "envelope.h"
#include "sqlite.h"
#include "support.h"
#include "test.h"
#include "transport.h"
#include "util.h"

static struct county cty;
static struct srv_proc srv;
static char dir[128];

static void exec_sync(struct sync_client *c, const char *sql)
{
    ASSERT_EQ(sync_exec(c, sql), SYNC_OK);
    ASSERT_EQ(sync_run(c, NULL), SYNC_OK);
}

static void test_batches_are_signed_and_audited(void)
{
    struct sync_client *c = tablet_new(&srv, "signer", "caregiver", cty.twp[0]);
    ASSERT_EQ(sync_run(c, NULL), SYNC_OK);           /* learn the township's seniors */
    char sql[256], x[36];
    snprintf(sql, sizeof sql, "UPDATE seniors SET phone = '1' WHERE id = %s", xid(cty.senior[0][0], x));
    exec_sync(c, sql);
    struct sync_status_info st;
    sync_status(c, &st);
    char q[512];
    /* The batch keeps the device's signature, and the audit entry names
     * the same changeset hash and signature. */
    snprintf(q, sizeof q, "SELECT count(*) FROM batches b JOIN audit_log a ON a.device_id = "
             "b.device_id AND a.kind = 'batch' AND a.detail LIKE '%%' || lower(hex(b.signature)) "
             "|| '%%' AND a.detail LIKE '%%' || lower(hex(b.content_hash)) || '%%' "
             "WHERE b.device_id = x'%s' AND length(b.signature) = 64", st.device_id);
    ASSERT_EQ(server_count(srv.db, q), 1);
    /* An auditor can check the stored signature with the device's key. */
    sqlite3 *db = NULL;
    sqlite3_stmt *stm = NULL;
    ASSERT_EQ(sqlite3_open_v2(srv.db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    snprintf(q, sizeof q, "SELECT b.raw, b.signature, d.sign_pk, b.batch_seq, d.id FROM batches b "
             "JOIN devices d ON d.id = b.device_id WHERE d.id = x'%s'", st.device_id);
    ASSERT_EQ(sqlite3_prepare_v2(db, q, -1, &stm, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(stm), SQLITE_ROW);
    ASSERT_EQ(env_batch_verify(sqlite3_column_blob(stm, 1), sqlite3_column_blob(stm, 2),
                               sqlite3_column_blob(stm, 4), (uint64_t)sqlite3_column_int64(stm, 3),
                               sqlite3_column_blob(stm, 0), (size_t)sqlite3_column_bytes(stm, 0),
                               NULL), SYNC_OK);
    sqlite3_finalize(stm);
    sqlite3_close(db);
    const char *args[] = { "audit-verify", NULL };
    char out[256];
    ASSERT_EQ(srv_run(&srv, args, out, sizeof out), 0);
    ASSERT(strstr(out, "intact") != NULL);
    sync_client_close(c);
}

/* A batch signed with another key is refused, even inside a valid
 * envelope: the envelope proves the channel, the signature the device. */
static void test_foreign_signature_refused(void)
{
    struct sync_client *c = tablet_new(&srv, "forger", "hall", cty.hall[0]);
    ASSERT_EQ(sync_run(c, NULL), SYNC_OK);
    /* Swap the unlocked signing key for a stranger's. */
    uint8_t pk[32];
    crypto_sign_keypair(pk, c->sign_sk);
    char sql[512], a[36], b[36], h[36];
    uint8_t id[16];
    randombytes_buf(id, 16);
    snprintf(sql, sizeof sql, "INSERT INTO meal_logs (id, senior_id, hall_id, service_date, "
             "meal_period, mode, served_at, price_paid_fen, subsidy_fen) VALUES (%s, %s, %s, "
             "'2026-11-20', 'lunch', 'dine_in', 1, 1000, 0)", xid(id, a), xid(cty.senior[0][0], b),
             xid(cty.hall[0], h));
    ASSERT_EQ(sync_exec(c, sql), SYNC_OK);
    uint8_t before[32], after[32];
    server_hash(srv.db, before);
    ASSERT_EQ(sync_run(c, NULL), SYNC_EAUTH);
    ASSERT(strstr(sync_client_errmsg(c), "bad_signature") != NULL);
    server_hash(srv.db, after);
    ASSERT_MEM_EQ(before, after, 32);
    ASSERT_GE(server_count(srv.db, "SELECT count(*) FROM audit_log WHERE kind = 'rejection' "
                                   "AND detail LIKE '%bad_signature%'"), 1);
    sync_client_close(c);
}

static void test_tampering_is_found(void)
{
    const char *args[] = { "audit-verify", NULL };
    char out[256];
    long n = server_count(srv.db, "SELECT count(*) FROM audit_log");
    ASSERT_GE(n, 5);
    ASSERT_EQ(srv_run(&srv, args, out, sizeof out), 0);
    /* Edit entry 3 behind the server's back: the chain breaks there. */
    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open(srv.db, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    ASSERT_EQ(sqlite3_exec(db, "UPDATE audit_log SET detail = '{}' WHERE id = 3", NULL, NULL, NULL),
              SQLITE_OK);
    ASSERT_EQ(srv_run(&srv, args, out, sizeof out), 1);
    ASSERT(strstr(out, "entry 3") != NULL);
    ASSERT(strstr(out, "altered") != NULL);
    sqlite3_close(db);
}

static void test_deleted_entry_is_found(void)
{
    const char *args[] = { "audit-verify", NULL };
    char out[256];
    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open(srv.db, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    ASSERT_EQ(sqlite3_exec(db, "DELETE FROM audit_log WHERE id = 2", NULL, NULL, NULL), SQLITE_OK);
    ASSERT_EQ(srv_run(&srv, args, out, sizeof out), 1);
    ASSERT(strstr(out, "entry 2") != NULL);
    sqlite3_close(db);
}

static void swap_entries(sqlite3 *db, long a, long b)
{
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE audit_log SET id = -1 WHERE id = %ld; "
             "UPDATE audit_log SET id = %ld WHERE id = %ld; UPDATE audit_log SET id = %ld WHERE id = -1",
             a, a, b, b);
    ASSERT_EQ(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
}

/* Two entries trading places break the chain at the first of them; put
 * back, the log verifies again. */
static void test_reordered_entries_are_found(void)
{
    const char *args[] = { "audit-verify", NULL };
    char out[256], want[32];
    ASSERT_EQ(srv_run(&srv, args, out, sizeof out), 0);
    long n = server_count(srv.db, "SELECT max(id) FROM audit_log");
    ASSERT_GE(n, 6);
    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open(srv.db, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    swap_entries(db, n - 3, n - 2);
    ASSERT_EQ(srv_run(&srv, args, out, sizeof out), 1);
    snprintf(want, sizeof want, "entry %ld ", n - 3);
    ASSERT(strstr(out, want) != NULL);
    swap_entries(db, n - 3, n - 2);
    ASSERT_EQ(srv_run(&srv, args, out, sizeof out), 0);
    sqlite3_close(db);
}

static int has_line(const char *text, const char *a, const char *b)
{
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        const char *e = strchr(l, '\n');
        size_t n = e ? (size_t)(e - l) : strlen(l);
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)(n < 511 ? n : 511), l);
        if (strstr(line, a) && strstr(line, b))
            return 1;
    }
    return 0;
}

static void test_revoke_and_list_devices(void)
{
    struct sync_client *c = tablet_new(&srv, "lost", "inspector", cty.twp[1]);
    ASSERT_EQ(sync_run(c, NULL), SYNC_OK);
    struct sync_status_info st;
    sync_status(c, &st);
    char out[8192], twp[33];
    const char *list[] = { "devices", NULL };
    hex_encode(twp, cty.twp[1], 16);
    for (char *q = twp; *q; q++)
        *q = (char)(*q >= 'a' ? *q - 32 : *q);       /* the listing prints upper-case hex */
    char upper_id[33];
    snprintf(upper_id, sizeof upper_id, "%s", st.device_id);
    for (char *q = upper_id; *q; q++)
        *q = (char)(*q >= 'a' ? *q - 32 : *q);
    ASSERT_EQ(srv_run(&srv, list, out, sizeof out), 0);
    ASSERT(has_line(out, upper_id, "inspector\t"));
    ASSERT(has_line(out, upper_id, twp));
    ASSERT(has_line(out, upper_id, "\tactive\t"));
    const char *revoke[] = { "revoke", st.device_id, NULL };
    ASSERT_EQ(srv_run(&srv, revoke, out, sizeof out), 0);
    ASSERT(strstr(out, "revoked") != NULL);
    ASSERT_EQ(srv_run(&srv, revoke, out, sizeof out), 1);        /* not active any more */
    const char *bad[] = { "revoke", "nothex", NULL };
    ASSERT_EQ(srv_run(&srv, bad, out, sizeof out), 1);
    char q[256];
    snprintf(q, sizeof q, "SELECT count(*) FROM devices WHERE id = x'%s' AND status = 'revoked'",
             st.device_id);
    ASSERT_EQ(server_count(srv.db, q), 1);
    snprintf(q, sizeof q, "SELECT count(*) FROM audit_log WHERE kind = 'revoke' AND device_id = x'%s'",
             st.device_id);
    ASSERT_EQ(server_count(srv.db, q), 1);
    ASSERT_EQ(sync_run(c, NULL), SYNC_EAUTH);
    sync_status(c, &st);
    ASSERT_EQ(st.revoked, 1);
    ASSERT_EQ(srv_run(&srv, list, out, sizeof out), 0);
    ASSERT(has_line(out, upper_id, "\trevoked\t"));
    sync_client_close(c);
}

int main(void)
{
    static const struct test_case tests[] = {
        TEST(test_batches_are_signed_and_audited),
        TEST(test_foreign_signature_refused),
        TEST(test_revoke_and_list_devices),
        TEST(test_reordered_entries_are_found),
        TEST(test_tampering_is_found),
        TEST(test_deleted_entry_is_found),
        { NULL, NULL }
    };
    char db[192];
    if (sodium_init() < 0)
        return 1;
    test_dir(dir, sizeof dir, "audit");
    snprintf(db, sizeof db, "%s/county.db", dir);
    county_seed(db, &cty);
    srv_start(&srv, dir, db);
    int rc = test_run_all("test_audit", tests);
    srv_stop(&srv);
    return rc;
}
