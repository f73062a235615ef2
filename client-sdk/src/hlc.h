/* hlc.h - hybrid logical clock stamping every change for conflict ordering.
 *
 * A stamp is 64 bits: high 48 = physical ms since the epoch, next 8 = a
 * logical counter, low 8 = the node byte (a tie-breaker derived from the
 * device id).  Stamps compare as plain integers.  hlc_now() never goes
 * backwards, whatever the wall clock does (tablets' clocks get reset to
 * 1970 after a flat battery), and stays ahead of every stamp observed from
 * other nodes.
 *
 * One struct hlc is not thread-safe: the owner serialises access.
 */
#ifndef ES_HLC_H
#define ES_HLC_H

#include <stdint.h>

#define HLC_MS_MAX ((INT64_C(1) << 48) - 1)

struct hlc {
    uint64_t last;                      /* largest stamp issued or observed */
    uint8_t  node;
    int64_t (*clock_ms)(void *ctx);     /* NULL => now_ms() */
    void    *clock_ctx;
};

/* Starts from a persisted stamp (0 for a fresh clock) with the real clock. */
void hlc_init(struct hlc *c, uint64_t last, uint8_t node);

/* A stamp strictly greater than every value returned or observed before.
 * (The only exception is the end of the 48-bit ms range, year 10889, which
 * a peer could force with a garbage stamp: then the maximum repeats rather
 * than wrapping to 1970.  Validate remote stamps before hlc_observe().) */
uint64_t hlc_now(struct hlc *c);

/* Takes in a stamp from elsewhere: the next hlc_now() is > remote. */
void hlc_observe(struct hlc *c, uint64_t remote);

/* The node byte for a device: all 16 id bytes folded with XOR, so the
 * random part of a UUIDv7 device id decides it. */
uint8_t hlc_node_from_id(const uint8_t device_id[16]);

int64_t  hlc_ms(uint64_t h);
unsigned hlc_counter(uint64_t h);
uint8_t  hlc_node(uint64_t h);
/* ms is clamped into [0, HLC_MS_MAX]; counter keeps its low 8 bits. */
uint64_t hlc_make(int64_t ms, unsigned counter, uint8_t node);

#endif
