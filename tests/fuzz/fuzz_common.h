/* fuzz_common.h - shared by the libFuzzer targets and the corpus generator.
 *
 * A county like tests/support.c's county_seed() (3 townships, halls H0 and
 * H1 in T0 and H2 in T1, 24 seniors and 4 retrofit cases per township, one
 * cash campaign), but with FIXED ids, so that the seed corpora written by
 * gen_corpus refer to rows that exist in the databases the fuzzers build.
 * A few extra rows (a meal, a visit per township, a handout) give updates,
 * deletes and conflicting inserts something to hit.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "server.h"
#include "sqlite.h"

#define FZ_NTWP    3
#define FZ_NHALL   3
#define FZ_NSENIOR 24
#define FZ_NCASE   4

enum { FZ_DEV_HALL, FZ_DEV_CAREGIVER, FZ_DEV_INSPECTOR, FZ_NDEV };

struct fz_county {
    uint8_t twp[FZ_NTWP][16];
    uint8_t hall[FZ_NHALL][16];
    int     hall_twp[FZ_NHALL];
    uint8_t senior[FZ_NTWP][FZ_NSENIOR][16];
    uint8_t rcase[FZ_NTWP][FZ_NCASE][16];
    uint8_t visit[FZ_NTWP][16];
    uint8_t meal[16];             /* one meal of H0 */
    uint8_t handout[16];          /* one cash handout in T0 */
    uint8_t campaign[16];
    uint8_t dev[FZ_NDEV][16];     /* hall (H0), caregiver (T0), inspector (T0) */
    uint8_t sign_pk[FZ_NDEV][32]; /* the devices' Ed25519 keys, from fixed seeds */
    uint8_t sign_sk[FZ_NDEV][64];
    uint8_t kx_pk[FZ_NDEV][32];   /* key-exchange keys, from fixed seeds (pulls seal */
    uint8_t kx_sk[FZ_NDEV][32];   /* the county's data keys to them) */
};

/* Fills c with the fixed ids and keys (calls sodium_init). */
void fz_county_ids(struct fz_county *c);
/* x'..' literal of a 16-byte id into out (36 bytes). */
const char *fz_xid(const uint8_t id[16], char out[36]);
/* Inserts the county rows (not the devices) with plain SQL; 0 or -1.  On
 * the server call it between store_begin and store_end. */
int fz_seed_rows(sqlite3 *db, const struct fz_county *c);
/* Inserts the three devices into the server's devices table; 0 or -1. */
int fz_seed_devices(sqlite3 *db, const struct fz_county *c);
/* The struct device for device k (last_batch_seq left 0). */
void fz_device(const struct fz_county *c, int k, struct device *dev);

/* Runs sql; on failure prints it with the error and returns -1. */
int fz_exec(sqlite3 *db, const char *sql);

#endif
