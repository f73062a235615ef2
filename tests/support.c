/* support.c - scratch dirs, seeded counties, server processes, tablets. */
#include "support.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "auth.h"
#include "client.h"
#include "ids.h"
#include "keyring.h"
#include "log.h"
#include "policy.h"
#include "rowhash.h"
#include "scope.h"
#include "server.h"
#include "store.h"
#include "test.h"
#include "util.h"

#ifndef ES_BUILD_DIR
#define ES_BUILD_DIR "build/release"
#endif
#define SERVER_BIN ES_BUILD_DIR "/sync-server"

uint64_t rnd_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

unsigned rnd_below(uint64_t *s, unsigned n)
{
    return n ? (unsigned)(rnd_next(s) % n) : 0;
}

const char *xid(const uint8_t id[16], char buf[36])
{
    char hex[33];
    hex_encode(hex, id, 16);
    snprintf(buf, 36, "x'%s'", hex);
    return buf;
}

void test_dir(char *dir, size_t n, const char *name)
{
    snprintf(dir, n, "/tmp/eldersync-%s-XXXXXX", name);
    ASSERT_NOT_NULL(mkdtemp(dir));
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "  seed: %s\n", msg);
        sqlite3_free(msg);
        ASSERT(0);
    }
}

void county_seed(const char *db, struct county *c)
{
    struct server srv;
    char err[256], sql[512], a[36], b[36];
    memset(&srv, 0, sizeof srv);
    pthread_mutex_init(&srv.lock, NULL);
    config_load(&srv.cfg, NULL, err, sizeof err);
    snprintf(srv.cfg.db, sizeof srv.cfg.db, "%s", db);
    config_finish(&srv.cfg);
    if (store_open(&srv, err, sizeof err) != SYNC_OK) {
        fprintf(stderr, "  store_open: %s\n", err);
        ASSERT(0);
    }
    ASSERT_EQ(store_begin(&srv), SYNC_OK);
    for (int t = 0; t < NTWP; t++) {
        id_new(c->twp[t]);
        snprintf(sql, sizeof sql, "INSERT INTO townships (id, code, name) VALUES (%s, '53012410%d', 'T%d')",
                 xid(c->twp[t], a), t, t);
        exec_ok(srv.db, sql);
    }
    static const int hall_twp[NHALL] = { 0, 0, 1 };
    for (int h = 0; h < NHALL; h++) {
        id_new(c->hall[h]);
        c->hall_twp[h] = hall_twp[h];
        snprintf(sql, sizeof sql, "INSERT INTO dining_halls (id, township_id, name, meal_price_fen) "
                 "VALUES (%s, %s, 'H%d', 1000)", xid(c->hall[h], a), xid(c->twp[hall_twp[h]], b), h);
        exec_ok(srv.db, sql);
    }
    id_new(c->campaign);
    snprintf(sql, sizeof sql, "INSERT INTO campaigns (id, name, start_date, end_date, must_visit, "
             "cash_fen) VALUES (%s, 'Double Ninth', '2026-10-01', '2026-12-31', 'centenarian', 20000)",
             xid(c->campaign, a));
    exec_ok(srv.db, sql);
    for (int t = 0; t < NTWP; t++) {
        for (int s = 0; s < NSENIOR; s++) {
            id_new(c->senior[t][s]);
            snprintf(sql, sizeof sql, "INSERT INTO seniors (id, township_id, name, id_card, category) "
                     "VALUES (%s, %s, 'Senior %d-%d', '5301241930010100%02d', 'centenarian')",
                     xid(c->senior[t][s], a), xid(c->twp[t], b), t, s, s);
            exec_ok(srv.db, sql);
        }
        for (int k = 0; k < NCASE; k++) {
            id_new(c->rcase[t][k]);
            snprintf(sql, sizeof sql, "INSERT INTO retrofit_cases (id, township_id, senior_id, "
                     "target_year) VALUES (%s, %s, %s, 2026)", xid(c->rcase[t][k], a),
                     xid(c->twp[t], b), xid(c->senior[t][k], err));
            exec_ok(srv.db, sql);
        }
    }
    ASSERT_EQ(keyring_seal_plaintext(&srv), SYNC_OK);     /* names, ID numbers sealed */
    ASSERT_EQ(store_end(&srv, SYNC_OK), SYNC_OK);
    store_close(&srv);
    pthread_mutex_destroy(&srv.lock);
}

/* Reads the "listening on http://127.0.0.1:PORT" line from the child. */
static int read_port(int fd)
{
    char line[512];
    size_t n = 0;
    struct pollfd pf = { fd, POLLIN, 0 };
    while (n < sizeof line - 1 && poll(&pf, 1, 15000) > 0) {
        ssize_t r = read(fd, line + n, sizeof line - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        line[n] = '\0';
        char *p = strstr(line, "127.0.0.1:");
        if (p && strchr(p, ' '))
            return atoi(p + 10);
    }
    return -1;
}

/* Runs argv (found on PATH) with standard output into a pipe (*out, the
 * read end) and standard error appended to the server log. */
static pid_t run_child(const struct srv_proc *p, char *const argv[], int *out)
{
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        FILE *log = fopen(p->log, "a");
        if (log)
            dup2(fileno(log), 2);
        close(fds[0]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    *out = fds[0];
    return pid;
}

static int spawn(struct srv_proc *p, int port)
{
    int fd;
    char listen[64];
    pid_t pid;
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    {
        char *args[16];
        int k = 0;
        if (getenv("ES_VALGRIND")) {     /* make valgrind: the server too */
            args[k++] = "valgrind";
            args[k++] = "-q";
            args[k++] = "--error-exitcode=99";
            args[k++] = "--leak-check=full";
            args[k++] = "--errors-for-leak-kinds=definite";
        }
        args[k++] = SERVER_BIN;
        if (p->config[0]) {
            args[k++] = "--config";
            args[k++] = p->config;
        }
        args[k++] = "--db";
        args[k++] = p->db;
        args[k++] = "--listen";
        args[k++] = listen;
        args[k] = NULL;
        pid = run_child(p, args, &fd);
    }
    int got = read_port(fd);
    close(fd);
    if (got <= 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    p->pid = pid;
    p->port = got;
    snprintf(p->url, sizeof p->url, "http://127.0.0.1:%d", got);
    return 0;
}

void srv_start(struct srv_proc *p, const char *dir, const char *db)
{
    memset(p, 0, sizeof *p);
    snprintf(p->dir, sizeof p->dir, "%s", dir);
    snprintf(p->db, sizeof p->db, "%s", db);
    snprintf(p->log, sizeof p->log, "%s/server.log", dir);
    ASSERT_EQ(spawn(p, 0), 0);
}

void srv_start_config(struct srv_proc *p, const char *dir, const char *db, const char *json)
{
    memset(p, 0, sizeof *p);
    snprintf(p->dir, sizeof p->dir, "%s", dir);
    snprintf(p->db, sizeof p->db, "%s", db);
    snprintf(p->log, sizeof p->log, "%s/server.log", dir);
    snprintf(p->config, sizeof p->config, "%s/server.json", dir);
    FILE *f = fopen(p->config, "w");
    ASSERT_NOT_NULL(f);
    fputs(json, f);
    fclose(f);
    ASSERT_EQ(spawn(p, 0), 0);
}

void srv_restart(struct srv_proc *p)
{
    for (int i = 0; i < 100; i++) {
        if (spawn(p, p->port) == 0)
            return;
        usleep(50000);                /* the port may linger briefly */
    }
    ASSERT(0);
}

static int reap(struct srv_proc *p, int sig)
{
    int status = 0;
    if (p->pid > 0) {
        kill(p->pid, sig);
        waitpid(p->pid, &status, 0);
    }
    p->pid = 0;
    return status;
}

void srv_stop(struct srv_proc *p)
{
    /* A clean stop exits 0 (under valgrind: no memory errors, no leaks). */
    int status = reap(p, SIGTERM);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "  server did not stop cleanly (status %d); see %s\n", status, p->log);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

void srv_kill(struct srv_proc *p) { reap(p, SIGKILL); }

/* Runs the server binary with args; out gets its standard output. */
static int run_cmd(const struct srv_proc *p, char *const argv[], char *out, size_t n)
{
    int fd;
    pid_t pid = run_child(p, argv, &fd);
    size_t got = 0;
    ssize_t r;
    while (got < n - 1 && (r = read(fd, out + got, n - 1 - got)) > 0)
        got += (size_t)r;
    out[got] = '\0';
    close(fd);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void srv_code(const struct srv_proc *p, const char *role, const uint8_t scope[16], char *code,
              size_t n)
{
    char hex[33];
    hex_encode(hex, scope, 16);
    char *argv[] = { SERVER_BIN, "--db", (char *)p->db, "enroll-code", "--role", (char *)role,
                     "--scope", hex, NULL };
    ASSERT_EQ(run_cmd(p, argv, code, n), 0);
    code[strcspn(code, "\n")] = '\0';
    ASSERT_EQ(strlen(code), 19);
}

int srv_run(const struct srv_proc *p, const char *const *args, char *out, size_t n)
{
    char *argv[16] = { SERVER_BIN, "--db", (char *)p->db };
    int k = 3;
    for (int i = 0; args[i] && k < 15; i++)
        argv[k++] = (char *)args[i];
    argv[k] = NULL;
    return run_cmd(p, argv, out, n);
}

static void test_env(void);

int srv_add_user(const struct srv_proc *p, const char *name, const char *role,
                 const uint8_t *twp, const char *password)
{
    char hex[33], out[256];
    int in[2];
    test_env();
    char *argv[12] = { SERVER_BIN, "--db", (char *)p->db, "add-user", "--name", (char *)name,
                       "--role", (char *)role, NULL };
    if (twp) {
        hex_encode(hex, twp, 16);
        argv[8] = "--scope";
        argv[9] = hex;
        argv[10] = NULL;
    }
    /* The password goes in on stdin, as an operator would pipe it. */
    ASSERT_EQ(pipe(in), 0);
    int saved = dup(0);
    dup2(in[0], 0);
    close(in[0]);
    ASSERT_EQ(write(in[1], password, strlen(password)), (ssize_t)strlen(password));
    ASSERT_EQ(write(in[1], "\n", 1), 1);
    close(in[1]);
    int rc = run_cmd(p, argv, out, sizeof out);
    dup2(saved, 0);
    close(saved);
    return rc;
}

void srv_exec(const struct srv_proc *p, const char *sql)
{
    char out[256];
    char *argv[] = { SERVER_BIN, "--db", (char *)p->db, "exec", (char *)sql, NULL };
    ASSERT_EQ(run_cmd(p, argv, out, sizeof out), 0);
}

static void test_env(void)
{
    setenv("ELDERSYNC_KDF", "light", 0);
    setenv("ELDERSYNC_PIN", TEST_PIN, 0);
}

struct sync_client *tablet_open(const char *path)
{
    struct sync_client *c = NULL;
    char err[256];
    test_env();
    if (sync_client_open(&c, path, err, sizeof err) != SYNC_OK) {
        fprintf(stderr, "  open %s: %s\n", path, err);
        ASSERT(0);
    }
    int rc = sync_unlock(c, TEST_PIN);
    if (rc != SYNC_OK && rc != SYNC_EAUTH)        /* a revoked tablet stays closed */
        fprintf(stderr, "  unlock %s: %s\n", path, sync_client_errmsg(c));
    return c;
}

void tablet_ident(const char *path, struct ident *id)
{
    struct sync_client *c = tablet_open(path);
    ASSERT(c->unlocked);
    memcpy(id->dev, c->device_id, 16);
    memcpy(id->rx, c->rx, 32);
    memcpy(id->tx, c->tx, 32);
    memcpy(id->sign_sk, c->sign_sk, 64);
    memcpy(id->kx_sk, c->kx_sk, 32);
    sync_client_close(c);
}

struct sync_client *tablet_new(const struct srv_proc *p, const char *name, const char *role,
                               const uint8_t scope[16])
{
    test_env();
    char path[256], code[64], err[256];
    struct sync_client *c = NULL;
    snprintf(path, sizeof path, "%s/%s.db", p->dir, name);
    srv_code(p, role, scope, code, sizeof code);
    if (sync_client_open(&c, path, err, sizeof err) != SYNC_OK) {
        fprintf(stderr, "  open %s: %s\n", path, err);
        ASSERT(0);
    }
    if (sync_enroll(c, p->url, code, TEST_PIN) != SYNC_OK) {
        fprintf(stderr, "  enroll %s: %s\n", name, sync_client_errmsg(c));
        ASSERT(0);
    }
    return c;
}

struct sync_client *tablet_enroll(const struct srv_proc *p, const char *name, const char *code)
{
    char path[256], err[256];
    struct sync_client *c = NULL;
    test_env();
    snprintf(path, sizeof path, "%s/%s.db", p->dir, name);
    if (sync_client_open(&c, path, err, sizeof err) != SYNC_OK) {
        fprintf(stderr, "  open %s: %s\n", path, err);
        return NULL;
    }
    if (sync_enroll(c, p->url, code, TEST_PIN) != SYNC_OK) {
        fprintf(stderr, "  enroll %s: %s\n", name, sync_client_errmsg(c));
        sync_client_close(c);
        return NULL;
    }
    return c;
}

long srv_rss_kb(const struct srv_proc *p)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)p->pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

static sqlite3 *open_ro(const char *db, struct policy **pol)
{
    sqlite3 *h = NULL;
    char err[256];
    ASSERT_EQ(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(h, 10000);
    ASSERT_EQ(policy_load(h, pol, err, sizeof err), SYNC_OK);
    return h;
}

void proj_hash(const char *db, const char *role, const uint8_t twp[16], const uint8_t *hall,
               uint8_t out[32])
{
    struct policy *pol = NULL;
    sqlite3 *h = open_ro(db, &pol);
    struct device dev;
    memset(&dev, 0, sizeof dev);
    dev.role = role_bit(role);
    memcpy(dev.township, twp, 16);
    if (hall) {
        memcpy(dev.hall, hall, 16);
        dev.has_hall = 1;
    }
    ASSERT_EQ(rowhash_compute(h, pol, dev.role, scope_filter, &dev, out), SYNC_OK);
    policy_free(pol);
    sqlite3_close(h);
}

void server_hash(const char *db, uint8_t out[32])
{
    struct policy *pol = NULL;
    sqlite3 *h = open_ro(db, &pol);
    ASSERT_EQ(rowhash_compute(h, pol, ~0u, NULL, NULL, out), SYNC_OK);
    policy_free(pol);
    sqlite3_close(h);
}

static void open_server(struct server *srv, const char *db)
{
    char err[256];
    memset(srv, 0, sizeof *srv);
    pthread_mutex_init(&srv->lock, NULL);
    config_load(&srv->cfg, NULL, err, sizeof err);
    snprintf(srv->cfg.db, sizeof srv->cfg.db, "%s", db);
    config_finish(&srv->cfg);
    if (store_open(srv, err, sizeof err) != SYNC_OK) {
        fprintf(stderr, "  open %s: %s\n", db, err);
        ASSERT(0);
    }
}

void conflict_value(const char *db, const uint8_t pk[16], const char *kind, const char *side,
                    const char *col, char *out, size_t n)
{
    struct server srv;
    sqlite3_stmt *st = NULL;
    char sql[256], path[64];
    open_server(&srv, db);
    snprintf(path, sizeof path, "$.%s.hex", col);
    snprintf(sql, sizeof sql, "SELECT tbl, json_extract(%s, ?2) FROM conflicts WHERE pk = ?1 "
             "AND kind = ?3", strcmp(side, "winner") == 0 ? "winner" : "loser");
    ASSERT_EQ(sqlite3_prepare_v2(srv.db, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_blob(st, 1, pk, 16, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    char tbl[64];
    const char *hex = (const char *)sqlite3_column_text(st, 1);
    ASSERT_NOT_NULL(hex);
    snprintf(tbl, sizeof tbl, "%s", (const char *)sqlite3_column_text(st, 0));
    size_t len = strlen(hex) / 2;
    uint8_t *blob = malloc(len + 1);
    ASSERT_NOT_NULL(blob);
    ASSERT_EQ(hex_decode(blob, len, hex), 0);
    sqlite3_finalize(st);
    ASSERT_EQ(sqlite3_prepare_v2(srv.db, "SELECT es_dec(?1, ?2, ?3, ?4)", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, tbl, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, col, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, pk, 16, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, blob, (int)len, SQLITE_STATIC);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    free(blob);
    store_close(&srv);
    pthread_mutex_destroy(&srv.lock);
}

void srv_codes(const struct srv_proc *p, const char *role, const uint8_t scope[16], int n,
               char (*codes)[24])
{
    struct server srv;
    struct outcome o;
    char hex[33];
    hex_encode(hex, scope, 16);
    open_server(&srv, p->db);
    log_set_level(0);                  /* one "issued a code" line each is noise here */
    for (int i = 0; i < n; i++) {
        outcome_init(&o);
        int rc = auth_code_new(&srv, role, hex, codes[i], &o);
        if (rc != SYNC_OK)
            fprintf(stderr, "  enroll code: %s\n", o.detail);
        ASSERT_EQ(rc, SYNC_OK);
    }
    store_close(&srv);
    pthread_mutex_destroy(&srv.lock);
}

long server_count(const char *db, const char *sql)
{
    /* Through the server's own open, so es_dec() can read personal values. */
    struct server srv;
    sqlite3_stmt *st = NULL;
    long n = -1;
    open_server(&srv, db);
    if (sqlite3_prepare_v2(srv.db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = (long)sqlite3_column_int64(st, 0);
    else
        fprintf(stderr, "  server_count: %s\n", sqlite3_errmsg(srv.db));
    sqlite3_finalize(st);
    store_close(&srv);
    pthread_mutex_destroy(&srv.lock);
    return n;
}

int loopback_listen(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(fd >= 0);
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ASSERT_EQ(listen(fd, 16), 0);
    ASSERT_EQ(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

int loopback_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}
