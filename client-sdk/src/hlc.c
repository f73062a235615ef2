/* hlc.c - hybrid logical clock; see hlc.h.
 *
 * The clock keeps only the largest stamp seen.  When the wall clock is ahead
 * of it, the new stamp takes the wall time with counter 0; otherwise it
 * keeps the old ms and bumps the counter, borrowing the next ms when the
 * 8-bit counter is full.  Either way the result is above `last` no matter
 * which node byte `last` carried, because ms and counter sit above it.
 */
#include "hlc.h"

#include <stddef.h>

#include "util.h"

#define HLC_CTR_MAX 0xffu

void hlc_init(struct hlc *c, uint64_t last, uint8_t node)
{
    c->last = last;
    c->node = node;
    c->clock_ms = NULL;
    c->clock_ctx = NULL;
}

static int64_t wall_ms(const struct hlc *c)
{
    return c->clock_ms ? c->clock_ms(c->clock_ctx) : now_ms();
}

uint64_t hlc_now(struct hlc *c)
{
    int64_t wall = wall_ms(c);
    int64_t ms = hlc_ms(c->last);
    unsigned ctr = hlc_counter(c->last);

    if (wall > HLC_MS_MAX)
        wall = HLC_MS_MAX;  /* a broken clock must not wrap the field */

    if (wall > ms) {
        ms = wall;
        ctr = 0;
    } else if (ctr < HLC_CTR_MAX) {
        ctr++;              /* clock behind or same ms: count */
    } else if (ms < HLC_MS_MAX) {
        ms++;               /* counter full within this ms: borrow the next */
        ctr = 0;
    } else {
        return c->last;     /* end of the range; see hlc.h */
    }
    c->last = hlc_make(ms, ctr, c->node);
    return c->last;
}

void hlc_observe(struct hlc *c, uint64_t remote)
{
    if (remote > c->last)
        c->last = remote;
}

uint8_t hlc_node_from_id(const uint8_t device_id[16])
{
    uint8_t n = 0;
    for (int i = 0; i < 16; i++)
        n ^= device_id[i];
    return n;
}

int64_t hlc_ms(uint64_t h)
{
    return (int64_t)(h >> 16);
}

unsigned hlc_counter(uint64_t h)
{
    return (unsigned)(h >> 8) & HLC_CTR_MAX;
}

uint8_t hlc_node(uint64_t h)
{
    return (uint8_t)h;
}

uint64_t hlc_make(int64_t ms, unsigned counter, uint8_t node)
{
    if (ms < 0)
        ms = 0;
    if (ms > HLC_MS_MAX)
        ms = HLC_MS_MAX;
    return (uint64_t)ms << 16 | (uint64_t)(counter & HLC_CTR_MAX) << 8 | node;
}
