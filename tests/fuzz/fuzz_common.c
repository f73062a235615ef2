/* fuzz_common.c - fixed-id county for the fuzzers; see fuzz_common.h. */
#include "fuzz_common.h"

#include <stdio.h>
#include <string.h>
#include <sodium.h>

#include "policy.h"
#include "util.h"

/* "FZ" kind a b, then zeros: easy to spot in a hex dump. */
static void make_id(uint8_t out[16], uint8_t kind, uint8_t a, uint8_t b)
{
    memset(out, 0, 16);
    out[0] = 'F';
    out[1] = 'Z';
    out[2] = kind;
    out[3] = a;
    out[4] = b;
    out[15] = (uint8_t)(kind ^ a ^ b);
}

void fz_county_ids(struct fz_county *c)
{
    static const int hall_twp[FZ_NHALL] = { 0, 0, 1 };
    memset(c, 0, sizeof *c);
    for (int t = 0; t < FZ_NTWP; t++) {
        make_id(c->twp[t], 'T', (uint8_t)t, 0);
        make_id(c->visit[t], 'V', (uint8_t)t, 0);
        for (int s = 0; s < FZ_NSENIOR; s++)
            make_id(c->senior[t][s], 'S', (uint8_t)t, (uint8_t)s);
        for (int k = 0; k < FZ_NCASE; k++)
            make_id(c->rcase[t][k], 'R', (uint8_t)t, (uint8_t)k);
    }
    for (int h = 0; h < FZ_NHALL; h++) {
        make_id(c->hall[h], 'H', (uint8_t)h, 0);
        c->hall_twp[h] = hall_twp[h];
    }
    make_id(c->meal, 'M', 0, 0);
    make_id(c->handout, 'O', 0, 0);
    make_id(c->campaign, 'C', 0, 0);
    if (sodium_init() < 0)
        fprintf(stderr, "fuzz: sodium_init failed\n");
    for (int d = 0; d < FZ_NDEV; d++) {
        uint8_t seed[crypto_sign_SEEDBYTES];
        make_id(c->dev[d], 'D', (uint8_t)d, 0);
        memset(seed, 0, sizeof seed);
        memcpy(seed, c->dev[d], 16);
        crypto_sign_seed_keypair(c->sign_pk[d], c->sign_sk[d], seed);
        seed[31] = 'x';
        crypto_kx_seed_keypair(c->kx_pk[d], c->kx_sk[d], seed);
    }
}

const char *fz_xid(const uint8_t id[16], char out[36])
{
    char hex[33];
    hex_encode(hex, id, 16);
    snprintf(out, 36, "x'%s'", hex);
    return out;
}

int fz_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    fprintf(stderr, "fuzz seed: %s\n  in: %.300s\n", msg ? msg : "?", sql);
    sqlite3_free(msg);
    return -1;
}

int fz_seed_rows(sqlite3 *db, const struct fz_county *c)
{
    char sql[1024], a[36], b[36], d[36], e[36];
    int rc = 0;
    for (int t = 0; t < FZ_NTWP && rc == 0; t++) {
        snprintf(sql, sizeof sql, "INSERT INTO townships (id, code, name) VALUES "
                 "(%s, '53012410%d', 'T%d')", fz_xid(c->twp[t], a), t, t);
        rc = fz_exec(db, sql);
    }
    for (int h = 0; h < FZ_NHALL && rc == 0; h++) {
        snprintf(sql, sizeof sql, "INSERT INTO dining_halls (id, township_id, name, "
                 "meal_price_fen) VALUES (%s, %s, 'H%d', 1000)", fz_xid(c->hall[h], a),
                 fz_xid(c->twp[c->hall_twp[h]], b), h);
        rc = fz_exec(db, sql);
    }
    if (rc == 0) {
        snprintf(sql, sizeof sql, "INSERT INTO campaigns (id, name, start_date, end_date, "
                 "must_visit, cash_fen) VALUES (%s, 'Double Ninth', '2026-10-01', '2026-12-31', "
                 "'centenarian', 20000)", fz_xid(c->campaign, a));
        rc = fz_exec(db, sql);
    }
    for (int t = 0; t < FZ_NTWP && rc == 0; t++) {
        for (int s = 0; s < FZ_NSENIOR && rc == 0; s++) {
            snprintf(sql, sizeof sql, "INSERT INTO seniors (id, township_id, name, id_card, "
                     "category, hlc) VALUES (%s, %s, 'Senior %d-%d', '5301241930010100%02d', "
                     "'centenarian', %lld)", fz_xid(c->senior[t][s], a), fz_xid(c->twp[t], b),
                     t, s, s, 1000LL << 16);
            rc = fz_exec(db, sql);
        }
        for (int k = 0; k < FZ_NCASE && rc == 0; k++) {
            snprintf(sql, sizeof sql, "INSERT INTO retrofit_cases (id, township_id, senior_id, "
                     "target_year, hlc) VALUES (%s, %s, %s, 2026, %lld)", fz_xid(c->rcase[t][k], a),
                     fz_xid(c->twp[t], b), fz_xid(c->senior[t][k], d), 1000LL << 16);
            rc = fz_exec(db, sql);
        }
        if (rc == 0) {
            snprintf(sql, sizeof sql, "INSERT INTO visits (id, township_id, senior_id, "
                     "campaign_id, kind, visitor, visited_at, service_date, notes, hlc) VALUES "
                     "(%s, %s, %s, %s, 'welfare', 'w%d', 1764474000000, '2026-11-30', 'ok', %lld)",
                     fz_xid(c->visit[t], a), fz_xid(c->twp[t], b), fz_xid(c->senior[t][0], d),
                     fz_xid(c->campaign, e), t, 1000LL << 16);
            rc = fz_exec(db, sql);
        }
    }
    if (rc == 0) {
        snprintf(sql, sizeof sql, "INSERT INTO meal_logs (id, senior_id, hall_id, service_date, "
                 "meal_period, mode, served_at, price_paid_fen, subsidy_fen) VALUES (%s, %s, %s, "
                 "'2026-11-30', 'lunch', 'dine_in', 1764474000000, 700, 300)", fz_xid(c->meal, a),
                 fz_xid(c->senior[0][0], b), fz_xid(c->hall[0], d));
        rc = fz_exec(db, sql);
    }
    if (rc == 0) {
        char f[36];
        snprintf(sql, sizeof sql, "INSERT INTO visit_handouts (id, visit_id, township_id, "
                 "senior_id, campaign_id, kind, amount_fen) VALUES (%s, %s, %s, %s, %s, 'cash', "
                 "20000)", fz_xid(c->handout, a), fz_xid(c->visit[0], b), fz_xid(c->twp[0], d),
                 fz_xid(c->senior[0][0], e), fz_xid(c->campaign, f));
        rc = fz_exec(db, sql);
    }
    return rc;
}

int fz_seed_devices(sqlite3 *db, const struct fz_county *c)
{
    static const char *const role[FZ_NDEV] = { "hall", "caregiver", "inspector" };
    char sql[512], a[36], t[36], h[36], pk[65], kx[65];
    for (int k = 0; k < FZ_NDEV; k++) {
        hex_encode(pk, c->sign_pk[k], 32);
        hex_encode(kx, c->kx_pk[k], 32);
        snprintf(sql, sizeof sql, "INSERT INTO devices (id, role, township_id, hall_id, kx_pk, "
                 "sign_pk, enrolled_at) VALUES (%s, '%s', %s, %s, x'%s', x'%s', 0)",
                 fz_xid(c->dev[k], a), role[k], fz_xid(c->twp[0], t),
                 k == FZ_DEV_HALL ? fz_xid(c->hall[0], h) : "x''", kx, pk);
        if (fz_exec(db, sql) != 0)
            return -1;
    }
    return 0;
}

void fz_device(const struct fz_county *c, int k, struct device *dev)
{
    memset(dev, 0, sizeof *dev);
    memcpy(dev->id, c->dev[k], 16);
    memcpy(dev->sign_pk, c->sign_pk[k], 32);
    memcpy(dev->kx_pk, c->kx_pk[k], 32);
    dev->role = k == FZ_DEV_HALL ? ROLE_HALL : k == FZ_DEV_CAREGIVER ? ROLE_CAREGIVER
              : ROLE_INSPECTOR;
    memcpy(dev->township, c->twp[0], 16);
    if (k == FZ_DEV_HALL) {
        memcpy(dev->hall, c->hall[0], 16);
        dev->has_hall = 1;
    }
}
