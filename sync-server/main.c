/* main.c - sync-server: argument parsing and the operator commands.
 *
 *   sync-server --config FILE [--listen HOST:PORT] [--db FILE]           serve
 *   sync-server --config FILE enroll-code --role ROLE --scope KEY        one-time code
 *   sync-server --config FILE demo-init [--db FILE]                      demo county
 *   sync-server --config FILE scopes                                     township / hall ids
 *   sync-server --config FILE devices | revoke DEVICE_ID | audit-verify
 *   sync-server --config FILE exec "SQL"                                 a county-side change
 *   sync-server --config FILE add-user --name N --role R [--scope T]     a dashboard account
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <sqlite3.h>

#include "audit.h"
#include "auth.h"
#include "dash.h"
#include "demo.h"
#include "eldersync.h"
#include "http.h"
#include "keyring.h"
#include "log.h"
#include "server.h"
#include "store.h"
#include "util.h"

static int usage(void)
{
    fprintf(stderr,
        "usage: sync-server --config FILE [--listen HOST:PORT] [--db FILE] [COMMAND]\n"
        "commands:\n"
        "  (none)                                serve the sync API\n"
        "  enroll-code --role ROLE --scope KEY   print a one-time enrollment code\n"
        "                                        ROLE: caregiver | inspector (KEY: township id)\n"
        "                                              hall (KEY: dining hall id)\n"
        "  demo-init [--db FILE]                 create the demo county database and its\n"
        "                                        dashboard accounts (passwords printed)\n"
        "  demo-day --url URL --dir DIR          simulated tablets sync a day's work to URL\n"
        "  scopes                                list township and dining hall ids\n"
        "  devices                               list devices: role, scope, last sync, status\n"
        "  revoke DEVICE_ID                      refuse the device from its next request on\n"
        "  audit-verify                          check the audit log's hash chain\n"
        "  rotate-key                            start a new data key (tablets get it at next sync)\n"
        "  exec \"SQL\"                            apply a county-side change (synced to tablets)\n"
        "  add-user --name NAME --role ROLE [--scope TOWNSHIP_ID]\n"
        "                                        a dashboard account; the password is read\n"
        "                                        from stdin.  ROLE: county_admin |\n"
        "                                        county_supervisor | township_supervisor\n");
    return 2;
}

static const char *opt_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "sync-server: %s needs a value\n", argv[*i]);
        exit(usage());
    }
    return argv[++*i];
}

static int serve(struct server *srv)
{
    sigset_t set;
    int sig, port = 0;
    char err[256];
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);      /* worker threads inherit this */
    signal(SIGPIPE, SIG_IGN);
    if (http_start(srv, &port, err, sizeof err) != SYNC_OK) {
        fprintf(stderr, "sync-server: %s\n", err);
        return 1;
    }
    if (keyring_start_resealer(srv) != SYNC_OK)
        log_warn("cannot start the re-sealing thread");
    printf("eldersync sync server listening on http://127.0.0.1:%d (database %s)\n", port,
           srv->cfg.db);
    fflush(stdout);
    sigwait(&set, &sig);
    log_info("signal %d: stopping", sig);
    http_stop(srv);
    keyring_stop_resealer(srv);
    return 0;
}

static int cmd_enroll_code(struct server *srv, int argc, char **argv)
{
    const char *role = NULL, *scope = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--role") == 0)
            role = opt_value(argc, argv, &i);
        else if (strcmp(argv[i], "--scope") == 0)
            scope = opt_value(argc, argv, &i);
        else
            return usage();
    }
    if (role == NULL || scope == NULL)
        return usage();
    char code[AUTH_CODE_LEN + 1];
    struct outcome o;
    outcome_init(&o);
    if (auth_code_new(srv, role, scope, code, &o) != SYNC_OK) {
        fprintf(stderr, "sync-server: %s\n", o.detail);
        return 1;
    }
    printf("%s\n", code);
    return 0;
}

/* Today in the county's calendar. */
static void local_date(int offset_min, char out[11])
{
    time_t now = time(NULL) + (time_t)offset_min * 60;
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

/* The demo's dashboard accounts, with fresh random passwords printed once. */
static int demo_users(struct server *srv)
{
    static const char *const who[][2] = {
        { "admin", "county_admin" }, { "supervisor", "county_supervisor" },
        { "chengguan", "township_supervisor" },
    };
    char twp[33] = "", pw[32], err[256];
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(srv->db, "SELECT lower(hex(id)) FROM townships WHERE name = '城关镇'",
                           -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        snprintf(twp, sizeof twp, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    printf("\ndashboard accounts (passwords are new with every demo-init):\n");
    for (size_t i = 0; i < sizeof who / sizeof who[0]; i++) {
        static const char alphabet[] = "abcdefghjkmnpqrstuvwxyz23456789";
        for (int k = 0; k < 12; k++)
            pw[k] = alphabet[randombytes_uniform(sizeof alphabet - 1)];
        pw[12] = '\0';
        int scoped = strcmp(who[i][1], "township_supervisor") == 0;
        if (scoped && twp[0] == '\0')
            continue;
        if (dash_add_user(srv, who[i][0], who[i][1], scoped ? twp : NULL, pw, err,
                          sizeof err) != SYNC_OK) {
            fprintf(stderr, "sync-server: demo-init: %s\n", err);
            return 1;
        }
        printf("  %-11s %-12s %s%s\n", who[i][0], pw, who[i][1], scoped ? " (城关镇)" : "");
    }
    sodium_memzero(pw, sizeof pw);
    return 0;
}

/* The demo's history ends yesterday: today's work arrives by sync
 * (demo-day), as it would in the county. */
static int cmd_demo_init(struct server *srv)
{
    char err[256], yesterday[11];
    local_date(srv->cfg.utc_offset_min - 24 * 60, yesterday);
    int rc = store_begin(srv);
    if (rc == SYNC_OK) {
        rc = demo_init(srv->db, 20261130, yesterday, err, sizeof err);
        if (rc == SYNC_OK && (rc = keyring_seal_plaintext(srv)) != SYNC_OK)
            snprintf(err, sizeof err, "cannot seal the personal data");
        rc = store_end(srv, rc);
    }
    if (rc != SYNC_OK) {
        fprintf(stderr, "sync-server: demo-init: %s\n", err);
        return 1;
    }
    printf("created the demo county in %s\n", srv->cfg.db);
    demo_print_scopes(srv->db, stdout);
    return demo_users(srv);
}

static int cmd_demo_day(struct server *srv, int argc, char **argv)
{
    const char *url = NULL, *dir = NULL;
    char err[512];
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--url") == 0 && i + 1 < argc)
            url = argv[++i];
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else
            return usage();
    }
    if (url == NULL || dir == NULL)
        return usage();
    if (demo_day(srv, url, dir, err, sizeof err) != SYNC_OK) {
        fprintf(stderr, "sync-server: demo-day: %s\n", err);
        return 1;
    }
    return 0;
}

/* A county-side change.  The audit records who ran what, by hash: the SQL
 * may hold personal data. */
static int cmd_exec(struct server *srv, const char *sql)
{
    char *msg = NULL, detail[128], hex[65];
    uint8_t h[32];
    int rc = store_begin(srv);
    if (rc == SYNC_OK && sqlite3_exec(srv->db, sql, NULL, NULL, &msg) != SQLITE_OK)
        rc = SYNC_EINVAL;
    if (rc == SYNC_EINVAL)
        fprintf(stderr, "sync-server: exec: %s\n", msg ? msg : sqlite3_errmsg(srv->db));
    sqlite3_free(msg);
    int changed = sqlite3_total_changes(srv->db);
    /* Personal values the SQL wrote in clear are sealed before commit. */
    if (rc == SYNC_OK && keyring_seal_plaintext(srv) != SYNC_OK)
        rc = SYNC_EIO;
    crypto_generichash(h, sizeof h, (const uint8_t *)sql, strlen(sql), NULL, 0);
    hex_encode(hex, h, 32);
    snprintf(detail, sizeof detail, "{\"sql_hash\":\"%s\",\"changes\":%d}", hex, changed);
    if (rc == SYNC_OK)
        rc = audit_append(srv, "admin_exec", NULL, "admin", detail);
    rc = store_end(srv, rc);
    if (rc == SYNC_OK)
        printf("%d row(s) changed\n", changed);
    return rc == SYNC_OK ? 0 : 1;
}

static void print_ms(const char *label, sqlite3_stmt *st, int col)
{
    char buf[32] = "-";
    if (sqlite3_column_type(st, col) != SQLITE_NULL) {
        time_t t = (time_t)(sqlite3_column_int64(st, col) / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    printf("%s%s", label, buf);
}

static int cmd_devices(struct server *srv)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(srv->db, "SELECT hex(id), role, hex(township_id), hex(hall_id), "
                           "status, enrolled_at, last_sync, last_batch_seq, app_version, "
                           "schema_version, clock_skew_ms FROM devices ORDER BY enrolled_at",
                           -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "sync-server: devices: %s\n", sqlite3_errmsg(srv->db));
        return 1;
    }
    printf("device_id\trole\tscope\tstatus\tenrolled\tlast_sync\tbatches\tapp\tschema\tclock_skew_ms\n");
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *hall = (const char *)sqlite3_column_text(st, 3);
        printf("%s\t%s\t%s\t%s", (const char *)sqlite3_column_text(st, 0),
               (const char *)sqlite3_column_text(st, 1),
               hall && *hall ? hall : (const char *)sqlite3_column_text(st, 2),
               (const char *)sqlite3_column_text(st, 4));
        print_ms("\t", st, 5);
        print_ms("\t", st, 6);
        printf("\t%lld\t%s\t%s\t%s\n", (long long)sqlite3_column_int64(st, 7),
               sqlite3_column_text(st, 8) ? (const char *)sqlite3_column_text(st, 8) : "-",
               sqlite3_column_text(st, 9) ? (const char *)sqlite3_column_text(st, 9) : "-",
               sqlite3_column_text(st, 10) ? (const char *)sqlite3_column_text(st, 10) : "-");
    }
    sqlite3_finalize(st);
    return 0;
}

static int cmd_revoke(struct server *srv, const char *id)
{
    struct outcome o;
    outcome_init(&o);
    if (auth_revoke(srv, id, "admin", &o) != SYNC_OK) {
        fprintf(stderr, "sync-server: revoke: %s\n", o.detail);
        return 1;
    }
    printf("revoked %s: its next request is refused and it destroys its keys\n", id);
    return 0;
}

static int cmd_rotate_key(struct server *srv)
{
    int64_t id = 0;
    if (keyring_rotate(srv, &id) != SYNC_OK) {
        fprintf(stderr, "sync-server: rotate-key: cannot store the new key\n");
        return 1;
    }
    printf("data key %lld is now active\n", (long long)id);
    return 0;
}

/* The password is the first line of stdin (a terminal shows what is typed:
 * pipe it in, e.g. from a password manager). */
static int cmd_add_user(struct server *srv, int argc, char **argv)
{
    const char *name = NULL, *role = NULL, *scope = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            name = argv[++i];
        else if (strcmp(argv[i], "--role") == 0 && i + 1 < argc)
            role = argv[++i];
        else if (strcmp(argv[i], "--scope") == 0 && i + 1 < argc)
            scope = argv[++i];
        else
            return usage();
    }
    if (name == NULL || role == NULL)
        return usage();
    char pw[320], err[256];
    if (fgets(pw, sizeof pw, stdin) == NULL) {
        fprintf(stderr, "sync-server: add-user: give the password on stdin\n");
        return 1;
    }
    pw[strcspn(pw, "\r\n")] = '\0';
    int rc = dash_add_user(srv, name, role, scope, pw, err, sizeof err);
    sodium_memzero(pw, sizeof pw);
    if (rc != SYNC_OK) {
        fprintf(stderr, "sync-server: add-user: %s\n", err);
        return 1;
    }
    printf("added %s (%s)\n", name, role);
    return 0;
}

static int cmd_audit_verify(struct server *srv)
{
    long n = 0;
    int64_t bad = 0;
    char msg[256];
    int rc = audit_verify(srv->db, &n, &bad, msg, sizeof msg);
    printf("%s\n", msg);
    return rc == SYNC_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *config = NULL, *listen = NULL, *db = NULL;
    int i;
    store_sqlite_config();                 /* before any other SQLite call */
    for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--config") == 0)
            config = opt_value(argc, argv, &i);
        else if (strcmp(argv[i], "--listen") == 0)
            listen = opt_value(argc, argv, &i);
        else if (strcmp(argv[i], "--db") == 0)
            db = opt_value(argc, argv, &i);
        else
            return usage();
    }
    const char *cmd = i < argc ? argv[i++] : NULL;
    /* Command options may repeat --db / --listen (demo-init --db FILE). */
    int cargc = 0;
    char **cargv = argv + i;
    for (int k = i; k < argc; k++) {
        if (strcmp(argv[k], "--db") == 0 && k + 1 < argc)
            db = argv[++k];
        else if (strcmp(argv[k], "--listen") == 0 && k + 1 < argc)
            listen = argv[++k];
        else
            cargv[cargc++] = argv[k];
    }
    struct server srv;
    char err[512];
    memset(&srv, 0, sizeof srv);
    pthread_mutex_init(&srv.lock, NULL);
    if (config_load(&srv.cfg, config, err, sizeof err) != 0) {
        fprintf(stderr, "sync-server: %s\n", err);
        return 1;
    }
    if (listen)
        snprintf(srv.cfg.listen, sizeof srv.cfg.listen, "%s", listen);
    if (db)
        snprintf(srv.cfg.db, sizeof srv.cfg.db, "%s", db);
    config_finish(&srv.cfg);
    log_set_level(srv.cfg.log_level);
    static const char *const cmds[] = { "enroll-code", "demo-init", "scopes", "exec", "devices",
                                        "revoke", "audit-verify", "rotate-key", "add-user",
                                        "demo-day", NULL };
    int known = cmd == NULL;
    for (int k = 0; cmd && cmds[k]; k++)
        known |= strcmp(cmd, cmds[k]) == 0;
    if (!known)
        return usage();
    if (store_open(&srv, err, sizeof err) != SYNC_OK) {
        fprintf(stderr, "sync-server: %s\n", err);
        return 1;
    }
    int rc;
    if (cmd == NULL)
        rc = serve(&srv);
    else if (strcmp(cmd, "enroll-code") == 0)
        rc = cmd_enroll_code(&srv, cargc, cargv);
    else if (strcmp(cmd, "demo-init") == 0)
        rc = cmd_demo_init(&srv);
    else if (strcmp(cmd, "scopes") == 0) {
        demo_print_scopes(srv.db, stdout);
        rc = 0;
    } else if (strcmp(cmd, "devices") == 0)
        rc = cmd_devices(&srv);
    else if (strcmp(cmd, "revoke") == 0)
        rc = cargc == 1 ? cmd_revoke(&srv, cargv[0]) : usage();
    else if (strcmp(cmd, "audit-verify") == 0)
        rc = cmd_audit_verify(&srv);
    else if (strcmp(cmd, "rotate-key") == 0)
        rc = cmd_rotate_key(&srv);
    else if (strcmp(cmd, "add-user") == 0)
        rc = cmd_add_user(&srv, cargc, cargv);
    else if (strcmp(cmd, "demo-day") == 0)
        rc = cmd_demo_day(&srv, cargc, cargv);
    else
        rc = cargc == 1 ? cmd_exec(&srv, cargv[0]) : usage();
    store_close(&srv);
    pthread_mutex_destroy(&srv.lock);
    return rc;
}
