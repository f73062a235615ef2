/* eldersync.c - the command-line tablet: people, demos and black-box tests
 * use it.  Every command is one call into libeldersync.
 *
 *   eldersync --db FILE enroll --server URL --code CODE
 *   eldersync --db FILE exec "SQL"       one captured local write transaction
 *   eldersync --db FILE query "SQL"      read-only; rows tab-separated
 *   eldersync --db FILE sync             push, then pull until done; one JSON line
 *   eldersync --db FILE status           identity, outbox, cursor, last sync
 *   eldersync --db FILE unlock           check the caregiver's PIN
 *
 * The PIN comes from ELDERSYNC_PIN or is asked for on the terminal; every
 * command but status unlocks the tablet's keys with it first.
 *
 * Exit status: 0 success, 1 failure, 2 usage, 3 server unreachable,
 * 4 device not authorised (revoked, unknown, wrong PIN), 5 refused by the
 * server, 6 locked (no PIN given).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "eldersync.h"

static int usage(void)
{
    fprintf(stderr,
        "usage: eldersync --db FILE COMMAND\n"
        "  enroll --server URL --code CODE   register this tablet with the county server\n"
        "  exec \"SQL\"                        run one local write transaction (synced later)\n"
        "  query \"SQL\"                       run read-only SQL; rows are tab-separated\n"
        "  sync                              push local writes, pull the server's changes\n"
        "  status                            show identity, pending writes and last sync\n"
        "  unlock                            check the PIN (ELDERSYNC_PIN or typed)\n");
    return 2;
}

/* The caregiver's PIN: ELDERSYNC_PIN, else typed on the terminal without
 * echo.  Returns buf, or NULL if there is no way to ask. */
static const char *read_pin(const char *prompt, char *buf, size_t n)
{
    const char *env = getenv("ELDERSYNC_PIN");
    if (env && *env) {
        snprintf(buf, n, "%s", env);
        return buf;
    }
    FILE *tty = fopen("/dev/tty", "r+");
    if (tty == NULL)
        return NULL;
    struct termios old, quiet;
    int fd = fileno(tty), echo_off = tcgetattr(fd, &old) == 0;
    if (echo_off) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    fputs(prompt, tty);
    fflush(tty);
    const char *got = fgets(buf, (int)n, tty);
    if (echo_off)
        tcsetattr(fd, TCSAFLUSH, &old);
    fputs("\n", tty);
    fclose(tty);
    if (got == NULL)
        return NULL;
    buf[strcspn(buf, "\r\n")] = '\0';
    return buf;
}

static int unlock(struct sync_client *c)
{
    char pin[128];
    struct sync_status_info s;
    sync_status(c, &s);
    if (!s.enrolled || s.revoked)
        return SYNC_OK;                 /* the command itself says what is wrong */
    if (read_pin("PIN: ", pin, sizeof pin) == NULL) {
        fprintf(stderr, "eldersync: the tablet is locked: set ELDERSYNC_PIN or run in a terminal\n");
        return SYNC_ELOCKED;
    }
    int rc = sync_unlock(c, pin);
    memset(pin, 0, sizeof pin);
    return rc;
}

static int exit_code(int rc)
{
    switch (rc) {
    case SYNC_OK:         return 0;
    case SYNC_ENET:       return 3;
    case SYNC_EAUTH:      return 4;
    case SYNC_EFORBIDDEN: return 5;
    case SYNC_ELOCKED:    return 6;
    default:              return 1;
    }
}

static void put_field(const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '\t': fputs("\\t", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        default:   putchar(*s); break;
        }
    }
}

static int print_row(void *ctx, int ncol, const char *const *vals, const char *const *names)
{
    (void)ctx;
    (void)names;
    for (int i = 0; i < ncol; i++) {
        if (i)
            putchar('\t');
        if (vals[i])
            put_field(vals[i]);
    }
    putchar('\n');
    return 0;
}

static int print_quarantined(void *ctx, int ncol, const char *const *vals, const char *const *names)
{
    (void)ctx;
    (void)names;
    if (ncol == 3)
        printf("  entry %s: %s: %s\n", vals[0], vals[1] ? vals[1] : "", vals[2] ? vals[2] : "");
    return 0;
}

static void print_time(const char *label, int64_t ms)
{
    char buf[32] = "never";
    if (ms > 0) {
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    printf("%-16s %s\n", label, buf);
}

static int cmd_status(struct sync_client *c)
{
    struct sync_status_info s;
    int rc = sync_status(c, &s);
    if (rc != SYNC_OK)
        return rc;
    if (!s.enrolled) {
        printf("%-16s %s\n", "enrolled", "no (run: eldersync --db FILE enroll ...)");
    } else {
        printf("%-16s %s\n", "device_id", s.device_id);
        printf("%-16s %s\n", "role", s.role);
        printf("%-16s %s\n", "township_id", s.township_id);
        if (s.hall_id[0])
            printf("%-16s %s\n", "hall_id", s.hall_id);
        printf("%-16s %s\n", "server", s.server_url);
        if (s.revoked)
            printf("%-16s %s\n", "revoked", "yes: keys destroyed, this tablet cannot sync");
        if (s.wiped)
            printf("%-16s %s\n", "wiped", "yes: too many wrong PINs, keys destroyed");
        printf("%-16s %d\n", "pin_failures", s.pin_failures);
    }
    printf("%-16s %ld\n", "pending", s.pending);
    printf("%-16s %ld\n", "unsent", s.unsent);
    printf("%-16s %ld\n", "quarantined", s.quarantined);
    printf("%-16s %lld\n", "cursor", (long long)s.cursor);
    print_time("last_sync", s.last_sync_ms);
    printf("%-16s %d\n", "schema_version", s.schema_version);
    if (s.quarantined > 0)
        sync_query(c, "SELECT id, error, detail FROM outbox WHERE state = 'quarantined' "
                      "ORDER BY id", print_quarantined, NULL);
    return SYNC_OK;
}

static int cmd_sync(struct sync_client *c)
{
    struct sync_stats st;
    int rc = sync_run(c, &st);
    if (rc != SYNC_OK)
        return rc;
    printf("{\"pushed\":%ld,\"batches\":%ld,\"pulled\":%ld,\"conflicts\":%ld,"
           "\"quarantined\":%ld,\"cursor\":%lld}\n", st.pushed, st.batches, st.pulled,
           st.conflicts, st.quarantined, (long long)st.cursor);
    return SYNC_OK;
}

int main(int argc, char **argv)
{
    const char *db = NULL;
    int i = 1;
    if (argc > 2 && strcmp(argv[1], "--db") == 0) {
        db = argv[2];
        i = 3;
    }
    if (db == NULL || i >= argc)
        return usage();
    const char *cmd = argv[i++];
    int nargs = argc - i;
    char err[512];
    struct sync_client *c = NULL;
    int rc = sync_client_open(&c, db, err, sizeof err);
    if (rc != SYNC_OK) {
        fprintf(stderr, "eldersync: %s\n", err);
        return exit_code(rc);
    }
    if (strcmp(cmd, "enroll") == 0) {
        const char *url = NULL, *code = NULL;
        for (int k = i; k + 1 < argc; k += 2) {
            if (strcmp(argv[k], "--server") == 0)
                url = argv[k + 1];
            else if (strcmp(argv[k], "--code") == 0)
                code = argv[k + 1];
        }
        if (url == NULL || code == NULL || nargs != 4) {
            sync_client_close(c);
            return usage();
        }
        char pin[128], again[128];
        if (read_pin("Choose the caregiver's PIN: ", pin, sizeof pin) == NULL) {
            fprintf(stderr, "eldersync: enroll needs a PIN: set ELDERSYNC_PIN or run in a terminal\n");
            sync_client_close(c);
            return 1;
        }
        if (getenv("ELDERSYNC_PIN") == NULL &&
            (read_pin("Repeat the PIN: ", again, sizeof again) == NULL || strcmp(pin, again) != 0)) {
            fprintf(stderr, "eldersync: the PINs do not match\n");
            sync_client_close(c);
            return 1;
        }
        rc = sync_enroll(c, url, code, pin);
        memset(pin, 0, sizeof pin);
        if (rc == SYNC_OK) {
            struct sync_status_info s;
            sync_status(c, &s);
            printf("enrolled as %s, device %s\n", s.role, s.device_id);
        }
    } else if (strcmp(cmd, "exec") == 0 && nargs == 1) {
        if ((rc = unlock(c)) == SYNC_OK)
            rc = sync_exec(c, argv[i]);
    } else if (strcmp(cmd, "query") == 0 && nargs == 1) {
        if ((rc = unlock(c)) == SYNC_OK)
            rc = sync_query(c, argv[i], print_row, NULL);
    } else if (strcmp(cmd, "sync") == 0 && nargs == 0) {
        if ((rc = unlock(c)) == SYNC_OK)
            rc = cmd_sync(c);
    } else if (strcmp(cmd, "unlock") == 0 && nargs == 0) {
        if ((rc = unlock(c)) == SYNC_OK)
            printf("unlocked\n");
    } else if (strcmp(cmd, "status") == 0 && nargs == 0) {
        rc = cmd_status(c);
    } else {
        sync_client_close(c);
        return usage();
    }
    if (rc != SYNC_OK)
        fprintf(stderr, "eldersync: %s: %s\n", cmd, sync_client_errmsg(c));
    sync_client_close(c);
    fflush(stdout);
    return exit_code(rc);
}
