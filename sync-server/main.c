/* main.c - sync-server: argument parsing and the operator commands.
 *
 *   sync-server --config FILE [--listen HOST:PORT] [--db FILE]           serve
 *   sync-server --config FILE enroll-code --role ROLE --scope KEY        one-time code
 *   sync-server --config FILE demo-init [--db FILE]                      demo county
 *   sync-server --config FILE scopes                                     township / hall ids
 *   sync-server --config FILE exec "SQL"                                 a county-side change
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "demo.h"
#include "eldersync.h"
#include "http.h"
#include "log.h"
#include "server.h"
#include "store.h"

static int usage(void)
{
    fprintf(stderr,
        "usage: sync-server --config FILE [--listen HOST:PORT] [--db FILE] [COMMAND]\n"
        "commands:\n"
        "  (none)                                serve the sync API\n"
        "  enroll-code --role ROLE --scope KEY   print a one-time enrollment code\n"
        "                                        ROLE: caregiver | inspector (KEY: township id)\n"
        "                                              hall (KEY: dining hall id)\n"
        "  demo-init [--db FILE]                 create the demo county database\n"
        "  scopes                                list township and dining hall ids\n"
        "  exec \"SQL\"                            apply a county-side change (synced to tablets)\n");
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
    printf("eldersync sync server listening on http://127.0.0.1:%d (database %s)\n", port,
           srv->cfg.db);
    fflush(stdout);
    sigwait(&set, &sig);
    log_info("signal %d: stopping", sig);
    http_stop(srv);
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

static int cmd_demo_init(struct server *srv)
{
    char err[256], today[11];
    local_date(srv->cfg.utc_offset_min, today);
    int rc = store_begin(srv);
    if (rc == SYNC_OK)
        rc = store_end(srv, demo_init(srv->db, 20261130, today, err, sizeof err));
    if (rc != SYNC_OK) {
        fprintf(stderr, "sync-server: demo-init: %s\n", err);
        return 1;
    }
    printf("created the demo county in %s\n", srv->cfg.db);
    demo_print_scopes(srv->db, stdout);
    return 0;
}

static int cmd_exec(struct server *srv, const char *sql)
{
    char *msg = NULL;
    int rc = store_begin(srv);
    if (rc == SYNC_OK && sqlite3_exec(srv->db, sql, NULL, NULL, &msg) != SQLITE_OK)
        rc = SYNC_EINVAL;
    if (rc == SYNC_EINVAL)
        fprintf(stderr, "sync-server: exec: %s\n", msg ? msg : sqlite3_errmsg(srv->db));
    sqlite3_free(msg);
    rc = store_end(srv, rc);
    if (rc == SYNC_OK)
        printf("%d row(s) changed\n", sqlite3_total_changes(srv->db));
    return rc == SYNC_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *config = NULL, *listen = NULL, *db = NULL;
    int i;
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
    if (cmd && strcmp(cmd, "enroll-code") && strcmp(cmd, "demo-init") &&
        strcmp(cmd, "scopes") && strcmp(cmd, "exec"))
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
    } else
        rc = cargc == 1 ? cmd_exec(&srv, cargv[0]) : usage();
    store_close(&srv);
    pthread_mutex_destroy(&srv.lock);
    return rc;
}
