/* support.h - helpers for tests that need a county, a running server and
 * tablets.  Servers run as child processes on 127.0.0.1 with an
 * OS-chosen port and are stopped by PID. */
#ifndef TEST_SUPPORT_H
#define TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "eldersync.h"

#define NTWP     3
#define NHALL    3
#define NSENIOR  24
#define NCASE    4

/* A small county seeded by county_seed(): townships T0..T2; halls H0, H1 in
 * T0 and H2 in T1; NSENIOR seniors and NCASE retrofit cases per township;
 * one cash campaign. */
struct county {
    uint8_t twp[NTWP][16];
    uint8_t hall[NHALL][16];
    int     hall_twp[NHALL];
    uint8_t senior[NTWP][NSENIOR][16];
    uint8_t rcase[NTWP][NCASE][16];
    uint8_t campaign[16];
};

struct srv_proc {
    pid_t pid;
    int   port;
    char  dir[128];          /* scratch directory of this test */
    char  db[192];
    char  url[64];
    char  log[192];
    char  config[192];       /* "" : built-in defaults */
};

/* A fresh scratch directory under /tmp; dir gets its path. */
void test_dir(char *dir, size_t n, const char *name);
/* Creates db and fills it with the county above (in-process, server schema). */
void county_seed(const char *db, struct county *c);
/* Starts sync-server on db; fills p.  Aborts the test on failure. */
void srv_start(struct srv_proc *p, const char *dir, const char *db);
/* The same with a config file holding json (e.g. limits turned off). */
void srv_start_config(struct srv_proc *p, const char *dir, const char *db, const char *json);
/* Restarts on the same port after srv_kill/srv_stop. */
void srv_restart(struct srv_proc *p);
void srv_stop(struct srv_proc *p);     /* SIGTERM, wait */
void srv_kill(struct srv_proc *p);     /* SIGKILL, wait */
/* Runs `sync-server enroll-code`; code gets the one-line code. */
void srv_code(const struct srv_proc *p, const char *role, const uint8_t scope[16], char *code,
              size_t n);
/* n one-time codes at once, issued in this process on the server's
 * database (the server may be running): codes[i] gets each. */
void srv_codes(const struct srv_proc *p, const char *role, const uint8_t scope[16], int n,
               char (*codes)[24]);
/* Runs `sync-server --db DB <args...>` (NULL-terminated); out gets its
 * standard output.  Returns the exit status. */
int srv_run(const struct srv_proc *p, const char *const *args, char *out, size_t n);
/* Runs `sync-server add-user` with the password on stdin (twp: the
 * township of a township_supervisor, else NULL).  Returns the exit status. */
int srv_add_user(const struct srv_proc *p, const char *name, const char *role,
                 const uint8_t *twp, const char *password);
/* Runs `sync-server exec SQL` against the server's database. */
void srv_exec(const struct srv_proc *p, const char *sql);
/* The PIN every test tablet is enrolled with.  Tests set ELDERSYNC_PIN
 * (for CLI children) and ELDERSYNC_KDF=light (a cheap PIN hash). */
#define TEST_PIN "2468"
/* Opens an enrolled tablet database and unlocks it with TEST_PIN. */
struct sync_client *tablet_open(const char *path);
/* A tablet's identity for tests that craft raw requests: device id, the
 * envelope session keys and the signing key, from its unlocked vault. */
struct ident {
    uint8_t dev[16];
    uint8_t rx[32], tx[32];
    uint8_t sign_sk[64];
    uint8_t kx_sk[32];
};
void tablet_ident(const char *path, struct ident *id);
/* Opens dir/<name>.db and enrolls it with role and scope. */
struct sync_client *tablet_new(const struct srv_proc *p, const char *name, const char *role,
                               const uint8_t scope[16]);
/* Opens dir/<name>.db and enrolls it with a code from srv_codes.  Returns
 * NULL (with a message on stderr) on failure: safe off the main thread. */
struct sync_client *tablet_enroll(const struct srv_proc *p, const char *name, const char *code);
/* The server process's resident set, kB (VmRSS); -1 if unknown. */
long srv_rss_kb(const struct srv_proc *p);
/* The server's projection hash for a device of role/township/hall (hall
 * NULL for township roles), computed independently of row_versions. */
void proj_hash(const char *db, const char *role, const uint8_t twp[16], const uint8_t *hall,
               uint8_t out[32]);
/* Hash of every synced row on the server (role mask all, no filter). */
void server_hash(const char *db, uint8_t out[32]);
/* count(*) of a query with no parameters on the server database. */
long server_count(const char *db, const char *sql);
/* Opens a sealed personal value kept in a conflict record: column `col`
 * of side ("winner"/"loser") of the conflict of `kind` on row pk, into out
 * as text.  Asserts that it exists and opens. */
void conflict_value(const char *db, const uint8_t pk[16], const char *kind, const char *side,
                    const char *col, char *out, size_t n);
/* x'...' literal for an id, into a caller buffer of 36 bytes. */
const char *xid(const uint8_t id[16], char buf[36]);
/* A TCP socket listening on 127.0.0.1 at a port the OS picks (*port gets
 * it); aborts the test on failure.  For the tests' relaying proxies. */
int loopback_listen(int *port);
/* A socket connected to 127.0.0.1:port, or -1. */
int loopback_connect(int port);
/* Small deterministic PRNG. */
uint64_t rnd_next(uint64_t *s);
unsigned rnd_below(uint64_t *s, unsigned n);

#endif
