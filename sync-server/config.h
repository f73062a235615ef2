/* config.h - the server's JSON configuration (see config/server.json). */
#ifndef SRV_CONFIG_H
#define SRV_CONFIG_H

#include <stddef.h>
#include <stdint.h>

struct config {
    char    listen[64];          /* host:port; loopback by default */
    char    db[512];
    char    key_file[512];       /* default: <db>.key */
    char    timezone[64];        /* the county's calendar, by name (display) */
    int     utc_offset_min;      /* ... and its offset: a county "day" is a
                                    local day (Asia/Shanghai: +480, no DST) */
    size_t  max_body_bytes;      /* larger requests get 413 unread */
    size_t  pull_max_bytes;      /* upper bound a tablet may ask per page */
    int     num_threads;         /* CivetWeb workers: one per open request */
    int     request_timeout_ms;  /* headers, then the body, must arrive within */
    int     header_timeout_ms;   /* a new connection's first request line and
                                    headers must arrive within (capped by
                                    request_timeout_ms) */
    int     conns_per_ip;        /* workers one client address may hold at
                                    once; 0: no cap */
    double  device_rate_per_s;   /* token buckets per device (push, pull) ... */
    double  device_burst;
    double  ip_rate_per_s;       /* ... and per client address (every request); */
    double  ip_burst;            /* a rate or burst of 0 turns that limit off */
    int     enroll_code_ttl_s;
    int64_t max_clock_ahead_ms;  /* HLCs further ahead are clamped */
    int     log_level;
    int     max_pin_failures;    /* wrong PINs in a row before a tablet wipes its keys */
    int     group_commit_max;    /* writes sharing one commit at most (1: a commit each) */
    /* The dashboard (docs/DASHBOARD.md). */
    int     session_ttl_s;       /* a login lasts at most this long ... */
    int     session_idle_s;      /* ... and ends after this long unused */
    double  login_rate_per_min;  /* login attempts per account and per address */
    double  login_burst;
    int     retrofit_target;     /* retrofits the county must complete a year */
    int     retrofit_overdue_days; /* a case this long in one step is overdue */
};

/* Fills defaults, then reads path (NULL: defaults only).  Returns 0, or -1
 * with a message in err. */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);
/* Recomputes derived values (key_file) after --db overrides. */
void config_finish(struct config *cfg);

#endif
