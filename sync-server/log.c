/* log.c - timestamped operator log lines on stderr; see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int log_level = 2;

void log_set_level(int level)
{
    log_level = level;
}

void log_msg(const char *level, const char *func, const char *fmt, ...)
{
    int rank = strcmp(level, "error") == 0 ? 0 : strcmp(level, "warn") == 0 ? 1 : 2;
    if (rank > log_level)
        return;
    char stamp[32], line[1024];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s %s %s: %s\n", stamp, level, func, line);
}
