/* ratelimit.h - token buckets keyed by bytes (a device id, a client address).
 *
 * A bucket holds at most `burst` tokens and refills at `rate` tokens a
 * second; a request takes one token or is refused.  The table is fixed in
 * size (RATELIMIT_SLOTS buckets, allocated once), so a flood of new keys
 * costs no memory: a new key takes a free slot near its hash, else the
 * one there whose bucket is fullest (a full bucket tells no more than a
 * missing one, so drained buckets are the last to go).  Keys are hashed
 * with SipHash under a random per-table key, so clients cannot aim at one
 * another's slots.  Time is CLOCK_MONOTONIC.  Thread-safe: one mutex per
 * table. */
#ifndef SRV_RATELIMIT_H
#define SRV_RATELIMIT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_SLOTS 4096     /* a power of two */
#define RATELIMIT_PROBE 8        /* slots looked at per key */

struct ratelimit_slot;

struct ratelimit {
    pthread_mutex_t        lock;
    double                 rate;      /* tokens a second; 0: off */
    double                 burst;     /* bucket size */
    uint8_t                hkey[16];  /* SipHash key */
    struct ratelimit_slot *slots;     /* RATELIMIT_SLOTS, NULL when off */
};

/* rate or burst <= 0 turns the limiter off (every take is allowed).
 * Returns 0, or -1 when out of memory. */
int  ratelimit_init(struct ratelimit *rl, double rate_per_s, double burst);
void ratelimit_free(struct ratelimit *rl);
int  ratelimit_enabled(const struct ratelimit *rl);

/* Takes a token for key (n bytes, any length).  Returns 1 if allowed, or
 * 0 with *retry_after_s (may be NULL) set to the seconds until a token is
 * there again. */
int  ratelimit_take(struct ratelimit *rl, const void *key, size_t n, double *retry_after_s);
/* The same at a given time (seconds on any monotonic clock), for tests. */
int  ratelimit_take_at(struct ratelimit *rl, const void *key, size_t n, double now_s,
                       double *retry_after_s);

#endif
