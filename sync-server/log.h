/* log.h - one-line operator log on stderr.  Never pass personal data or key
 * material: log ids, counts, table names and error codes only. */
#ifndef SRV_LOG_H
#define SRV_LOG_H

void log_msg(const char *level, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 0 = errors only, 1 = warnings, 2 = info (default). */
void log_set_level(int level);

#define log_info(...)  log_msg("info", __func__, __VA_ARGS__)
#define log_warn(...)  log_msg("warn", __func__, __VA_ARGS__)
#define log_error(...) log_msg("error", __func__, __VA_ARGS__)

#endif
