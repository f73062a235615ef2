/* config.c - read the server configuration file. */
#include "config.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

static void defaults(struct config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen, sizeof c->listen, "127.0.0.1:8080");
    snprintf(c->db, sizeof c->db, "var/county.db");
    snprintf(c->timezone, sizeof c->timezone, "Asia/Shanghai");
    c->max_body_bytes = 8u << 20;
    c->pull_max_bytes = 1u << 20;
    c->num_threads = 16;
    c->request_timeout_ms = 15000;
    c->header_timeout_ms = 5000;
    c->conns_per_ip = 4;
    c->device_rate_per_s = 20;
    c->device_burst = 100;
    c->ip_rate_per_s = 200;
    c->ip_burst = 400;
    c->enroll_code_ttl_s = 7 * 24 * 3600;
    c->max_clock_ahead_ms = 5 * 60 * 1000;
    c->log_level = 2;
    c->utc_offset_min = 480;
    c->max_pin_failures = 5;
    c->group_commit_max = 64;
    c->session_ttl_s = 8 * 3600;
    c->session_idle_s = 3600;
    c->login_rate_per_min = 10;
    c->login_burst = 10;
    c->retrofit_target = 120;
    c->retrofit_overdue_days = 30;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *p = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 > cap) {
            cap = cap ? 2 * cap : 8192;
            char *q = es_realloc(p, cap);
            if (q == NULL || cap > (1u << 20)) {
                es_free(q ? q : p);
                fclose(f);
                return NULL;
            }
            p = q;
        }
        size_t r = fread(p + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    p[n] = '\0';
    *len = n;
    return p;
}

static int get_str(cJSON *j, const char *key, char *out, size_t n)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (v == NULL)
        return 0;
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= n)
        return -1;
    snprintf(out, n, "%s", v->valuestring);
    return 0;
}

static int get_num(cJSON *j, const char *key, double lo, double hi, double *out)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (v == NULL)
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi)
        return -1;
    *out = v->valuedouble;
    return 0;
}

int config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
    defaults(cfg);
    if (path == NULL)
        return 0;
    size_t len = 0;
    char *text = read_file(path, &len);
    if (text == NULL) {
        snprintf(err, errlen, "cannot read config file %s", path);
        return -1;
    }
    cJSON *j = cJSON_ParseWithLength(text, len);
    es_free(text);
    if (!cJSON_IsObject(j)) {
        snprintf(err, errlen, "%s is not a JSON object", path);
        cJSON_Delete(j);
        return -1;
    }
    double body = (double)cfg->max_body_bytes, pull = (double)cfg->pull_max_bytes,
           thr = cfg->num_threads, tmo = cfg->request_timeout_ms,
           htmo = cfg->header_timeout_ms, cpi = cfg->conns_per_ip,
           ttl = cfg->enroll_code_ttl_s, ahead = (double)cfg->max_clock_ahead_ms,
           lvl = cfg->log_level, off = cfg->utc_offset_min,
           drate = cfg->device_rate_per_s, dburst = cfg->device_burst,
           irate = cfg->ip_rate_per_s, iburst = cfg->ip_burst, pinf = cfg->max_pin_failures,
           group = cfg->group_commit_max,
           sttl = cfg->session_ttl_s, sidle = cfg->session_idle_s,
           lrate = cfg->login_rate_per_min, lburst = cfg->login_burst,
           rtarget = cfg->retrofit_target, rover = cfg->retrofit_overdue_days;
    const char *bad = NULL;
    if (get_str(j, "listen", cfg->listen, sizeof cfg->listen)) bad = "listen";
    else if (get_str(j, "db", cfg->db, sizeof cfg->db)) bad = "db";
    else if (get_str(j, "key_file", cfg->key_file, sizeof cfg->key_file)) bad = "key_file";
    else if (get_str(j, "timezone", cfg->timezone, sizeof cfg->timezone)) bad = "timezone";
    else if (get_num(j, "max_body_bytes", 1024, 1 << 30, &body)) bad = "max_body_bytes";
    else if (get_num(j, "pull_max_bytes", 4096, 1 << 28, &pull)) bad = "pull_max_bytes";
    else if (get_num(j, "num_threads", 1, 1024, &thr)) bad = "num_threads";
    else if (get_num(j, "request_timeout_ms", 100, 600000, &tmo)) bad = "request_timeout_ms";
    else if (get_num(j, "header_timeout_ms", 100, 600000, &htmo)) bad = "header_timeout_ms";
    else if (get_num(j, "conns_per_ip", 0, 1024, &cpi)) bad = "conns_per_ip";
    else if (get_num(j, "enroll_code_ttl_s", 60, 365 * 86400.0, &ttl)) bad = "enroll_code_ttl_s";
    else if (get_num(j, "max_clock_ahead_ms", 0, 365 * 86400000.0, &ahead)) bad = "max_clock_ahead_ms";
    else if (get_num(j, "log_level", 0, 2, &lvl)) bad = "log_level";
    else if (get_num(j, "utc_offset_minutes", -720, 840, &off)) bad = "utc_offset_minutes";
    else if (get_num(j, "max_pin_failures", 1, 100, &pinf)) bad = "max_pin_failures";
    else if (get_num(j, "group_commit_max", 1, 4096, &group)) bad = "group_commit_max";
    else if (get_num(j, "device_rate_per_s", 0, 1e6, &drate)) bad = "device_rate_per_s";
    else if (get_num(j, "device_burst", 0, 1e6, &dburst) || (dburst > 0 && dburst < 1))
        bad = "device_burst";
    else if (get_num(j, "ip_rate_per_s", 0, 1e6, &irate)) bad = "ip_rate_per_s";
    else if (get_num(j, "ip_burst", 0, 1e6, &iburst) || (iburst > 0 && iburst < 1))
        bad = "ip_burst";
    else if (get_num(j, "session_ttl_s", 60, 30 * 86400.0, &sttl)) bad = "session_ttl_s";
    else if (get_num(j, "session_idle_s", 60, 30 * 86400.0, &sidle)) bad = "session_idle_s";
    else if (get_num(j, "login_rate_per_min", 0, 1e6, &lrate)) bad = "login_rate_per_min";
    else if (get_num(j, "login_burst", 0, 1e6, &lburst) || (lburst > 0 && lburst < 1))
        bad = "login_burst";
    else if (get_num(j, "retrofit_target", 0, 1e7, &rtarget)) bad = "retrofit_target";
    else if (get_num(j, "retrofit_overdue_days", 1, 3650, &rover)) bad = "retrofit_overdue_days";
    cJSON_Delete(j);
    if (bad) {
        snprintf(err, errlen, "%s: bad value for \"%s\"", path, bad);
        return -1;
    }
    cfg->max_body_bytes = (size_t)body;
    cfg->pull_max_bytes = (size_t)pull;
    cfg->num_threads = (int)thr;
    cfg->request_timeout_ms = (int)tmo;
    cfg->header_timeout_ms = (int)htmo;
    cfg->conns_per_ip = (int)cpi;
    cfg->enroll_code_ttl_s = (int)ttl;
    cfg->max_clock_ahead_ms = (int64_t)ahead;
    cfg->log_level = (int)lvl;
    cfg->utc_offset_min = (int)off;
    cfg->max_pin_failures = (int)pinf;
    cfg->group_commit_max = (int)group;
    cfg->device_rate_per_s = drate;
    cfg->device_burst = dburst;
    cfg->ip_rate_per_s = irate;
    cfg->ip_burst = iburst;
    cfg->session_ttl_s = (int)sttl;
    cfg->session_idle_s = (int)sidle;
    cfg->login_rate_per_min = lrate;
    cfg->login_burst = lburst;
    cfg->retrofit_target = (int)rtarget;
    cfg->retrofit_overdue_days = (int)rover;
    return 0;
}

void config_finish(struct config *cfg)
{
    if (cfg->key_file[0] == '\0')
        snprintf(cfg->key_file, sizeof cfg->key_file, "%.500s.key", cfg->db);
}
