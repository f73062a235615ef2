/* ratelimit.c - fixed-size token-bucket tables (see ratelimit.h). */
#include "ratelimit.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

struct ratelimit_slot {
    uint8_t id[crypto_shorthash_siphashx24_BYTES];   /* keyed hash of the key */
    int     used;
    double  tokens;
    double  last;          /* when tokens was last brought up to date */
};

int ratelimit_init(struct ratelimit *rl, double rate_per_s, double burst)
{
    memset(rl, 0, sizeof *rl);
    pthread_mutex_init(&rl->lock, NULL);
    if (!(rate_per_s > 0) || !(burst > 0))
        return 0;                                    /* off */
    if (sodium_init() < 0)
        return -1;
    rl->slots = es_calloc(RATELIMIT_SLOTS, sizeof *rl->slots);
    if (rl->slots == NULL)
        return -1;
    rl->rate = rate_per_s;
    rl->burst = burst;
    randombytes_buf(rl->hkey, sizeof rl->hkey);
    return 0;
}

void ratelimit_free(struct ratelimit *rl)
{
    es_free(rl->slots);
    rl->slots = NULL;
    pthread_mutex_destroy(&rl->lock);
}

int ratelimit_enabled(const struct ratelimit *rl)
{
    return rl->slots != NULL;
}

/* A bucket's tokens at now (refilled, not stored). */
static double level(const struct ratelimit *rl, const struct ratelimit_slot *s, double now)
{
    double t = s->tokens + (now > s->last ? (now - s->last) * rl->rate : 0);
    return t < rl->burst ? t : rl->burst;
}

/* The key's slot: the one holding it, else a free one, else the one of the
 * RATELIMIT_PROBE slots from its hash on whose bucket is fullest (a full
 * bucket tells no more than a missing one; a drained one is kept), the
 * stalest among equals.  A new key starts with a full bucket. */
static struct ratelimit_slot *find_slot(struct ratelimit *rl, const uint8_t *id, double now)
{
    uint64_t h;
    memcpy(&h, id, sizeof h);
    struct ratelimit_slot *pick = NULL;
    double pick_level = 0;
    for (unsigned i = 0; i < RATELIMIT_PROBE; i++) {
        struct ratelimit_slot *s = &rl->slots[(h + i) & (RATELIMIT_SLOTS - 1)];
        if (s->used && memcmp(s->id, id, sizeof s->id) == 0)
            return s;
        if (pick != NULL && !pick->used)
            continue;                                /* keep the first free slot */
        double l = s->used ? level(rl, s, now) : 0;
        if (pick == NULL || !s->used || l > pick_level ||
            (l == pick_level && s->last < pick->last)) {
            pick = s;
            pick_level = l;
        }
    }
    memcpy(pick->id, id, sizeof pick->id);
    pick->used = 1;
    pick->tokens = rl->burst;
    pick->last = now;
    return pick;
}

int ratelimit_take_at(struct ratelimit *rl, const void *key, size_t n, double now_s,
                      double *retry_after_s)
{
    uint8_t id[crypto_shorthash_siphashx24_BYTES];
    if (retry_after_s)
        *retry_after_s = 0;
    if (rl->slots == NULL)
        return 1;
    crypto_shorthash_siphashx24(id, key, n, rl->hkey);
    int ok;
    pthread_mutex_lock(&rl->lock);
    struct ratelimit_slot *s = find_slot(rl, id, now_s);
    if (now_s > s->last) {                       /* refill */
        s->tokens += (now_s - s->last) * rl->rate;
        if (s->tokens > rl->burst)
            s->tokens = rl->burst;
        s->last = now_s;
    }
    if (s->tokens >= 1.0) {
        s->tokens -= 1.0;
        ok = 1;
    } else {
        if (retry_after_s)
            *retry_after_s = (1.0 - s->tokens) / rl->rate;
        ok = 0;
    }
    pthread_mutex_unlock(&rl->lock);
    return ok;
}

int ratelimit_take(struct ratelimit *rl, const void *key, size_t n, double *retry_after_s)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ratelimit_take_at(rl, key, n, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9,
                             retry_after_s);
}
