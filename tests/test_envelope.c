/* test_envelope.c - the wire envelope (seal/open, tampering), UUIDv7 ids
 * and the HTTP transport against an in-process CivetWeb server on
 * 127.0.0.1 with an OS-chosen port. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <civetweb.h>
#include <sodium.h>

#include "eldersync.h"
#include "envelope.h"
#include "ids.h"
#include "test.h"
#include "transport.h"
#include "util.h"

/* ==== envelope ========================================================= */

/* Both ends of one device<->server pairing. */
struct pair {
    uint8_t dev_pk[32], dev_sk[32], srv_pk[32], srv_sk[32];
    uint8_t dev_rx[32], dev_tx[32], srv_rx[32], srv_tx[32];
};

static void make_pair(struct pair *p)
{
    crypto_kx_keypair(p->dev_pk, p->dev_sk);
    crypto_kx_keypair(p->srv_pk, p->srv_sk);
    ASSERT_EQ(env_device_keys(p->dev_rx, p->dev_tx, p->dev_pk, p->dev_sk,
                              p->srv_pk), SYNC_OK);
    ASSERT_EQ(env_server_keys(p->srv_rx, p->srv_tx, p->srv_pk, p->srv_sk,
                              p->dev_pk), SYNC_OK);
}

static struct env_header push_header(uint64_t seq)
{
    struct env_header h = { .version = ENV_VERSION, .kind = ENV_PUSH,
                            .batch_seq = seq };
    for (int i = 0; i < 16; i++)
        h.device_id[i] = (uint8_t)(0xa0 + i);
    return h;
}

static const uint8_t msg[] = "three changes for resident 42";

/* A sealed push of msg from the device; caller frees *env. */
static void seal_push(const struct pair *p, uint64_t seq, uint8_t **env,
                      size_t *len)
{
    struct env_header h = push_header(seq);
    ASSERT_EQ(env_seal(&h, p->dev_tx, msg, sizeof msg, env, len), SYNC_OK);
    ASSERT_NOT_NULL(*env);
    /* version 2: one encoding byte; msg is too short to compress */
    ASSERT_EQ(*len, sizeof msg + ENV_OVERHEAD + 1);
}

/* Opens as the server would; returns the status, frees any plaintext. */
static int try_open(const struct pair *p, const uint8_t *env, size_t len,
                    int kind)
{
    struct env_header h;
    uint8_t *pt = (uint8_t *)"not touched";
    size_t ptlen = 99;
    int rc = env_open(env, len, kind, p->srv_rx, &h, &pt, &ptlen);
    if (rc != SYNC_OK) {
        ASSERT_NULL(pt);
        ASSERT_EQ(ptlen, 0);
    }
    free(pt);
    return rc;
}

static void test_kx_keys_match(void)
{
    struct pair p;
    make_pair(&p);
    ASSERT_MEM_EQ(p.dev_tx, p.srv_rx, 32);
    ASSERT_MEM_EQ(p.dev_rx, p.srv_tx, 32);
    ASSERT(memcmp(p.dev_rx, p.dev_tx, 32) != 0);

    /* An all-zero (low-order) server key is refused, outputs wiped. */
    uint8_t zero[32] = { 0 }, rx[32], tx[32];
    memset(rx, 0x55, sizeof rx);
    memset(tx, 0x55, sizeof tx);
    ASSERT_EQ(env_device_keys(rx, tx, p.dev_pk, p.dev_sk, zero), SYNC_ECRYPTO);
    ASSERT_MEM_EQ(rx, zero, 32);
    ASSERT_MEM_EQ(tx, zero, 32);
}

static void test_roundtrip_both_ways(void)
{
    struct pair p;
    make_pair(&p);
    uint8_t *env, *pt;
    size_t len, ptlen;
    seal_push(&p, 77, &env, &len);

    /* Wire layout. */
    ASSERT_EQ(env[0], 'E');
    ASSERT_EQ(env[1], 'S');
    ASSERT_EQ(env[2], ENV_VERSION);
    ASSERT_EQ(env[3], ENV_PUSH);
    ASSERT_EQ(be64_get(env + 20), 77);

    struct env_header h;
    ASSERT_EQ(env_peek(env, len, &h), SYNC_OK);
    ASSERT_EQ(h.kind, ENV_PUSH);
    ASSERT_EQ(h.version, ENV_VERSION);
    ASSERT_EQ(h.batch_seq, 77);
    ASSERT_EQ(h.device_id[15], 0xaf);

    memset(&h, 0, sizeof h);
    ASSERT_EQ(env_open(env, len, ENV_PUSH, p.srv_rx, &h, &pt, &ptlen), SYNC_OK);
    ASSERT_EQ(ptlen, sizeof msg);
    ASSERT_MEM_EQ(pt, msg, sizeof msg);
    ASSERT_EQ(h.batch_seq, 77);
    ASSERT_EQ(h.kind, ENV_PUSH);
    struct env_header want = push_header(77);
    ASSERT_MEM_EQ(h.device_id, want.device_id, 16);
    free(pt);
    free(env);

    /* The reply travels the other way under the other key. */
    struct env_header rh = push_header(77);
    rh.kind = ENV_PUSH_REPLY;
    static const uint8_t ack[] = "ok";
    ASSERT_EQ(env_seal(&rh, p.srv_tx, ack, sizeof ack, &env, &len), SYNC_OK);
    ASSERT_EQ(env_open(env, len, ENV_PUSH_REPLY, p.dev_rx, NULL, &pt, &ptlen),
              SYNC_OK);
    ASSERT_EQ(ptlen, sizeof ack);
    ASSERT_MEM_EQ(pt, ack, sizeof ack);
    free(pt);
    free(env);
}

static void test_fresh_nonce_each_seal(void)
{
    struct pair p;
    make_pair(&p);
    uint8_t *a, *b;
    size_t la, lb;
    seal_push(&p, 1, &a, &la);
    seal_push(&p, 1, &b, &lb);
    ASSERT_EQ(la, lb);
    ASSERT(memcmp(a + ENV_HDRBYTES, b + ENV_HDRBYTES, ENV_NONCEBYTES) != 0);
    ASSERT(memcmp(a + ENV_HDRBYTES + ENV_NONCEBYTES,
                  b + ENV_HDRBYTES + ENV_NONCEBYTES,
                  la - ENV_HDRBYTES - ENV_NONCEBYTES) != 0);
    free(a);
    free(b);
}

static void test_wrong_key(void)
{
    struct pair p, other;
    make_pair(&p);
    make_pair(&other);
    uint8_t *env, *pt;
    size_t len, ptlen;
    seal_push(&p, 5, &env, &len);

    ASSERT_EQ(env_open(env, len, ENV_PUSH, other.srv_rx, NULL, &pt, &ptlen),
              SYNC_ECRYPTO);
    ASSERT_NULL(pt);
    /* The device's own receive key is the wrong direction. */
    ASSERT_EQ(env_open(env, len, ENV_PUSH, p.dev_rx, NULL, &pt, &ptlen),
              SYNC_ECRYPTO);
    ASSERT_NULL(pt);
    free(env);
}

static void test_every_bit_flip(void)
{
    struct pair p;
    make_pair(&p);
    uint8_t *env;
    size_t len;
    seal_push(&p, 9, &env, &len);

    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            env[i] ^= (uint8_t)(1u << bit);
            int rc = try_open(&p, env, len, ENV_PUSH);
            env[i] ^= (uint8_t)(1u << bit);
            if (i < 4)      /* magic, version, kind: rejected unparsed */
                ASSERT(rc == SYNC_EPROTO || rc == SYNC_ECRYPTO);
            else            /* device id, seq, nonce, ciphertext, tag */
                ASSERT_EQ(rc, SYNC_ECRYPTO);
        }
    }
    ASSERT_EQ(try_open(&p, env, len, ENV_PUSH), SYNC_OK);   /* restored */
    free(env);
}

static void test_every_truncation(void)
{
    struct pair p;
    make_pair(&p);
    uint8_t *env;
    size_t len;
    seal_push(&p, 9, &env, &len);

    for (size_t n = 0; n < len; n++) {
        int rc = try_open(&p, env, n, ENV_PUSH);
        ASSERT_EQ(rc, n < ENV_OVERHEAD ? SYNC_EPROTO : SYNC_ECRYPTO);
    }
    /* One byte too many is as bad as one too few. */
    uint8_t *longer = malloc(len + 1);
    ASSERT_NOT_NULL(longer);
    memcpy(longer, env, len);
    longer[len] = 0;
    ASSERT_EQ(try_open(&p, longer, len + 1, ENV_PUSH), SYNC_ECRYPTO);
    ASSERT_EQ(try_open(&p, NULL, 0, ENV_PUSH), SYNC_EPROTO);
    free(longer);
    free(env);
}

static void test_kind_mismatch(void)
{
    struct pair p;
    make_pair(&p);
    uint8_t *env;
    size_t len;
    seal_push(&p, 3, &env, &len);
    ASSERT_EQ(try_open(&p, env, len, ENV_PULL), SYNC_EPROTO);
    ASSERT_EQ(try_open(&p, env, len, ENV_PUSH_REPLY), SYNC_EPROTO);

    /* Relabelling the kind in the header is caught by the tag. */
    env[3] = ENV_PULL;
    ASSERT_EQ(try_open(&p, env, len, ENV_PULL), SYNC_ECRYPTO);
    free(env);
}

static void test_header_tampering(void)
{
    struct pair p;
    make_pair(&p);
    uint8_t *env;
    size_t len;
    seal_push(&p, 41, &env, &len);

    /* Replaying the batch under the next sequence number. */
    be64_put(env + 20, 42);
    ASSERT_EQ(try_open(&p, env, len, ENV_PUSH), SYNC_ECRYPTO);
    be64_put(env + 20, 41);

    /* Moving it to another device. */
    env[4] ^= 0x01;
    ASSERT_EQ(try_open(&p, env, len, ENV_PUSH), SYNC_ECRYPTO);
    env[4] ^= 0x01;

    /* Swapping in another envelope's nonce. */
    uint8_t *other;
    size_t olen;
    seal_push(&p, 41, &other, &olen);
    memcpy(env + ENV_HDRBYTES, other + ENV_HDRBYTES, ENV_NONCEBYTES);
    ASSERT_EQ(try_open(&p, env, len, ENV_PUSH), SYNC_ECRYPTO);
    free(other);
    free(env);
}

static void test_peek_rejects(void)
{
    struct pair p;
    make_pair(&p);
    uint8_t *env;
    size_t len;
    struct env_header h;
    seal_push(&p, 1, &env, &len);

    env[0] = 'X';
    ASSERT_EQ(env_peek(env, len, &h), SYNC_EPROTO);
    env[0] = 'E';
    env[2] = ENV_VERSION + 1;
    ASSERT_EQ(env_peek(env, len, &h), SYNC_EPROTO);
    env[2] = ENV_VERSION;
    env[3] = 0;
    ASSERT_EQ(env_peek(env, len, &h), SYNC_EPROTO);
    env[3] = 5;
    ASSERT_EQ(env_peek(env, len, &h), SYNC_EPROTO);
    env[3] = ENV_PUSH;
    ASSERT_EQ(env_peek(env, ENV_OVERHEAD - 1, &h), SYNC_EPROTO);
    ASSERT_EQ(env_peek(env, len, &h), SYNC_OK);
    free(env);
}

/* Version 2 compresses what pays, and still reads and writes version 1. */
static void test_versions_and_compression(void)
{
    struct pair p;
    make_pair(&p);
    static uint8_t big[20000];
    for (size_t i = 0; i < sizeof big; i++)          /* a changeset-like repetition */
        big[i] = (uint8_t)("meal_logs lunch dine_in 2026-11-30 "[i % 35] ^ (i % 97 == 0));
    struct env_header h = push_header(3);
    uint8_t *env, *pt;
    size_t len, ptlen;
    ASSERT_EQ(env_seal(&h, p.dev_tx, big, sizeof big, &env, &len), SYNC_OK);
    ASSERT_EQ(env[2], 2);
    ASSERT(len < sizeof big / 4);                    /* compressed before encryption */
    struct env_header got;
    ASSERT_EQ(env_open(env, len, ENV_PUSH, p.srv_rx, &got, &pt, &ptlen), SYNC_OK);
    ASSERT_EQ(got.version, 2);
    ASSERT_EQ(ptlen, sizeof big);
    ASSERT(memcmp(pt, big, sizeof big) == 0);
    free(pt);
    free(env);
    /* Every size class of the compressor's window (9 to 15 bits) and of its
     * level reads back byte for byte. */
    static const size_t sizes[] = { 64, 100, 511, 512, 513, 1025, 3000, 4097, 9000,
                                    16385, 33000, 70000, 300000 };
    uint64_t x = 88172645463325252u;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        uint8_t *m = malloc(sizes[k]);
        ASSERT_NOT_NULL(m);
        for (size_t i = 0; i < sizes[k]; i++) {    /* text with some noise */
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            m[i] = x % 5 == 0 ? (uint8_t)(x >> 24) : (uint8_t)"lunch dine_in 2026-11-30 "[i % 25];
        }
        ASSERT_EQ(env_seal(&h, p.dev_tx, m, sizes[k], &env, &len), SYNC_OK);
        ASSERT_EQ(env_open(env, len, ENV_PUSH, p.srv_rx, &got, &pt, &ptlen), SYNC_OK);
        ASSERT_EQ(ptlen, sizes[k]);
        ASSERT(memcmp(pt, m, sizes[k]) == 0);
        free(pt);
        free(env);
        free(m);
    }
    /* A version-1 peer: sealed and opened as before, no encoding byte. */
    h.version = 1;
    ASSERT_EQ(env_seal(&h, p.dev_tx, big, sizeof big, &env, &len), SYNC_OK);
    ASSERT_EQ(env[2], 1);
    ASSERT_EQ(len, sizeof big + ENV_OVERHEAD);
    ASSERT_EQ(env_open(env, len, ENV_PUSH, p.srv_rx, &got, &pt, &ptlen), SYNC_OK);
    ASSERT_EQ(got.version, 1);
    ASSERT_EQ(ptlen, sizeof big);
    ASSERT(memcmp(pt, big, sizeof big) == 0);
    free(pt);
    free(env);
    /* The version is authenticated: relabelling 1 as 2 fails to open. */
    ASSERT_EQ(env_seal(&h, p.dev_tx, msg, sizeof msg, &env, &len), SYNC_OK);
    env[2] = 2;
    ASSERT_EQ(env_open(env, len, ENV_PUSH, p.srv_rx, &got, &pt, &ptlen), SYNC_ECRYPTO);
    free(env);
    /* Authentic version-2 bytes that do not decode are refused. */
    static const uint8_t bad[][8] = { { 7, 'x' }, { 1, 0, 0, 0, 9, 0xff, 0xff, 0xff },
                                      { 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0 } };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct env_header h2 = push_header(3);
        /* a v2 envelope by hand: header, nonce, AEAD over bad[i] as it is */
        size_t rawlen = ENV_OVERHEAD + sizeof bad[i];
        uint8_t *raw = malloc(rawlen);
        ASSERT_NOT_NULL(raw);
        raw[0] = 'E';
        raw[1] = 'S';
        raw[2] = 2;
        raw[3] = ENV_PUSH;
        memcpy(raw + 4, h2.device_id, 16);
        be64_put(raw + 20, h2.batch_seq);
        randombytes_buf(raw + 28, 24);
        unsigned long long clen = 0;
        crypto_aead_xchacha20poly1305_ietf_encrypt(raw + 52, &clen, bad[i], sizeof bad[i], raw,
                                                   28, NULL, raw + 28, p.dev_tx);
        ASSERT_EQ(env_open(raw, rawlen, ENV_PUSH, p.srv_rx, &got, &pt, &ptlen), SYNC_EPROTO);
        free(raw);
    }
}

static void test_empty_plaintext(void)
{
    struct pair p;
    make_pair(&p);
    struct env_header h = { .kind = ENV_PULL };
    uint8_t *env, *pt;
    size_t len, ptlen;
    ASSERT_EQ(env_seal(&h, p.dev_tx, NULL, 0, &env, &len), SYNC_OK);
    ASSERT_EQ(len, ENV_OVERHEAD + 1);
    ASSERT_EQ(env_open(env, len, ENV_PULL, p.srv_rx, &h, &pt, &ptlen), SYNC_OK);
    ASSERT_NOT_NULL(pt);
    ASSERT_EQ(ptlen, 0);
    ASSERT_EQ(h.batch_seq, 0);
    free(pt);
    free(env);
}

static void test_seal_bad_args(void)
{
    uint8_t key[32] = { 0 }, *out = (uint8_t *)"x";
    size_t outlen = 5;
    struct env_header h = { .kind = 7 };
    ASSERT_EQ(env_seal(&h, key, msg, sizeof msg, &out, &outlen), SYNC_EINVAL);
    ASSERT_NULL(out);
    ASSERT_EQ(outlen, 0);
    h.kind = ENV_PUSH;
    ASSERT_EQ(env_seal(&h, key, NULL, 3, &out, &outlen), SYNC_EINVAL);
    ASSERT_NULL(out);
}

/* ==== ids ============================================================== */

#define N_IDS 10000

static void check_id_bits(const uint8_t id[ID_BYTES])
{
    ASSERT_EQ(id[6] >> 4, 7);           /* version 7 */
    ASSERT_EQ(id[8] >> 6, 2);           /* variant 10 */
}

static void test_ids_increasing(void)
{
    static uint8_t ids[N_IDS][ID_BYTES];
    int64_t before = now_ms();
    for (int i = 0; i < N_IDS; i++)
        id_new(ids[i]);
    int64_t after = now_ms();

    for (int i = 0; i < N_IDS; i++) {
        check_id_bits(ids[i]);
        if (i > 0)
            ASSERT_LT(memcmp(ids[i - 1], ids[i], ID_BYTES), 0);
    }
    ASSERT_GE(id_time_ms(ids[0]), before);
    /* A burst may borrow a few ms ahead, never many. */
    ASSERT_LE(id_time_ms(ids[N_IDS - 1]), after + N_IDS / 2048 + 1);
}

#define ID_THREADS 4
#define ID_PER_THREAD 2500

static uint8_t thread_ids[ID_THREADS * ID_PER_THREAD][ID_BYTES];

static void *id_worker(void *arg)
{
    uint8_t (*out)[ID_BYTES] = arg;
    for (int i = 0; i < ID_PER_THREAD; i++)
        id_new(out[i]);
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, ID_BYTES);
}

static void test_ids_threads_unique(void)
{
    pthread_t th[ID_THREADS];
    for (int t = 0; t < ID_THREADS; t++)
        ASSERT_EQ(pthread_create(&th[t], NULL, id_worker,
                                 thread_ids[t * ID_PER_THREAD]), 0);
    for (int t = 0; t < ID_THREADS; t++)
        pthread_join(th[t], NULL);

    /* Each thread's own sequence is increasing... */
    for (int i = 0; i < ID_THREADS * ID_PER_THREAD; i++)
        if (i % ID_PER_THREAD != 0)
            ASSERT_LT(memcmp(thread_ids[i - 1], thread_ids[i], ID_BYTES), 0);
    /* ...and nothing repeats across threads. */
    qsort(thread_ids, ID_THREADS * ID_PER_THREAD, ID_BYTES, cmp_id);
    for (int i = 1; i < ID_THREADS * ID_PER_THREAD; i++)
        ASSERT_LT(memcmp(thread_ids[i - 1], thread_ids[i], ID_BYTES), 0);
}

static void test_ids_sql(void)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
    ASSERT_EQ(ids_register_sql(db), SYNC_OK);

    uint8_t before[ID_BYTES], got[2][ID_BYTES];
    id_new(before);
    /* Two rows in one statement: non-deterministic, so not cached. */
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT uuid7(), typeof(uuid7()) "
                                 "FROM (SELECT 1 UNION ALL SELECT 2)",
                                 -1, &st, NULL), SQLITE_OK);
    for (int r = 0; r < 2; r++) {
        ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
        ASSERT_EQ(sqlite3_column_bytes(st, 0), ID_BYTES);
        ASSERT_STR_EQ((const char *)sqlite3_column_text(st, 1), "blob");
        memcpy(got[r], sqlite3_column_blob(st, 0), ID_BYTES);
        check_id_bits(got[r]);
    }
    ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    ASSERT_LT(memcmp(before, got[0], ID_BYTES), 0);
    ASSERT_LT(memcmp(got[0], got[1], ID_BYTES), 0);

    /* Usable as a column default, as the schema does. */
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(id BLOB PRIMARY KEY "
                           "DEFAULT (uuid7()), v); INSERT INTO t(v) "
                           "VALUES (1), (2);", NULL, NULL, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(DISTINCT id), "
                                 "min(length(id)) FROM t", -1, &st, NULL),
              SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    ASSERT_EQ(sqlite3_column_int(st, 0), 2);
    ASSERT_EQ(sqlite3_column_int(st, 1), ID_BYTES);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* ==== transport ========================================================= */

static struct mg_context *srv;
static char srv_url[64];
static struct pair srv_pair;        /* keys for the /envelope handler */

/* Reads the whole request body; NULL with *n 0 when empty. */
static uint8_t *read_request_body(struct mg_connection *c, size_t *n)
{
    const struct mg_request_info *ri = mg_get_request_info(c);
    struct buf b = {0};
    uint8_t chunk[8192];
    long long left = ri->content_length;
    while (left > 0) {
        int r = mg_read(c, chunk, left < (long long)sizeof chunk
                                      ? (size_t)left : sizeof chunk);
        if (r <= 0)
            break;
        buf_append(&b, chunk, (size_t)r);
        left -= r;
    }
    return buf_take(&b, n);
}

static void reply(struct mg_connection *c, int status, const char *extra,
                  const void *body, size_t len)
{
    mg_printf(c, "HTTP/1.1 %d X\r\nContent-Type: application/octet-stream\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n%s\r\n",
              status, len, extra ? extra : "");
    if (len > 0)
        mg_write(c, body, len);
}

static int h_echo(struct mg_connection *c, void *cb)
{
    (void)cb;
    size_t n;
    uint8_t *body = read_request_body(c, &n);
    reply(c, 200, NULL, body, n);
    free(body);
    return 200;
}

static int h_busy(struct mg_connection *c, void *cb)
{
    (void)cb;
    reply(c, 503, "Retry-After: 7\r\n", "busy", 4);
    return 503;
}

/* No Content-Length: the body ends when the server closes. */
static int h_noclen(struct mg_connection *c, void *cb)
{
    (void)cb;
    const struct mg_request_info *ri = mg_get_request_info(c);
    int n = ri->query_string ? atoi(ri->query_string) : 0;
    mg_printf(c, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    for (int i = 0; i < n; i++)
        mg_write(c, "0123456789", 10);
    return 200;
}

static int h_chunked(struct mg_connection *c, void *cb)
{
    (void)cb;
    mg_printf(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                 "Connection: close\r\n\r\n");
    for (int i = 0; i < 300; i++)
        mg_send_chunk(c, "0123456789", 10);
    mg_send_chunk(c, "", 0);
    return 200;
}

static int h_short(struct mg_connection *c, void *cb)
{
    (void)cb;
    mg_printf(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
                 "Connection: close\r\n\r\nonly ten b");
    return 200;
}

static int h_slow(struct mg_connection *c, void *cb)
{
    (void)cb;
    struct timespec ts = { 1, 200000000 };
    nanosleep(&ts, NULL);
    reply(c, 200, NULL, "late", 4);
    return 200;
}

/* A miniature push endpoint: open the device's envelope, answer with a
 * sealed reply carrying the plaintext length. */
static int h_envelope(struct mg_connection *c, void *cb)
{
    (void)cb;
    size_t n, ptlen, outlen;
    uint8_t *body = read_request_body(c, &n), *pt, *out;
    struct env_header h;
    if (env_open(body, n, ENV_PUSH, srv_pair.srv_rx, &h, &pt, &ptlen)
        != SYNC_OK) {
        free(body);
        reply(c, 400, NULL, NULL, 0);
        return 400;
    }
    uint8_t ack[8];
    be64_put(ack, ptlen);
    h.kind = ENV_PUSH_REPLY;
    if (env_seal(&h, srv_pair.srv_tx, ack, sizeof ack, &out, &outlen)
        == SYNC_OK)
        reply(c, 200, NULL, out, outlen);
    free(out);
    free(pt);
    free(body);
    return 200;
}

static void server_start(void)
{
    const char *opts[] = { "listening_ports", "127.0.0.1:0",
                           "num_threads", "4", NULL };
    mg_init_library(0);
    srv = mg_start(NULL, NULL, opts);
    ASSERT_NOT_NULL(srv);
    mg_set_request_handler(srv, "/echo", h_echo, NULL);
    mg_set_request_handler(srv, "/busy", h_busy, NULL);
    mg_set_request_handler(srv, "/noclen", h_noclen, NULL);
    mg_set_request_handler(srv, "/chunked", h_chunked, NULL);
    mg_set_request_handler(srv, "/short", h_short, NULL);
    mg_set_request_handler(srv, "/slow", h_slow, NULL);
    mg_set_request_handler(srv, "/envelope", h_envelope, NULL);
    struct mg_server_port ports[2];
    ASSERT_EQ(mg_get_server_ports(srv, 2, ports), 1);
    snprintf(srv_url, sizeof srv_url, "http://127.0.0.1:%d", ports[0].port);
}

static void test_http_start_server(void)
{
    server_start();
}

static void test_http_post_echo(void)
{
    struct http_response r;
    char err[256];
    static const char body[] = "hello, tablet";
    ASSERT_EQ(http_post(srv_url, "/echo", "application/octet-stream", body,
                        sizeof body, 5000, 1 << 20, &r, err, sizeof err),
              SYNC_OK);
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(r.len, sizeof body);
    ASSERT_MEM_EQ(r.body, body, sizeof body);
    ASSERT_STR_EQ(r.retry_after, "");
    http_response_free(&r);
    ASSERT_NULL(r.body);
}

static void test_http_post_large(void)
{
    size_t n = 3 * 1024 * 1024 + 17;      /* several write/read chunks */
    uint8_t *body = malloc(n);
    ASSERT_NOT_NULL(body);
    randombytes_buf(body, n);
    struct http_response r;
    char err[256];
    ASSERT_EQ(http_post(srv_url, "/echo", NULL, body, n, 10000, n, &r,
                        err, sizeof err), SYNC_OK);
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(r.len, n);
    ASSERT_MEM_EQ(r.body, body, n);
    http_response_free(&r);

    /* The same reply with a limit one byte short. */
    ASSERT_EQ(http_post(srv_url, "/echo", NULL, body, n, 10000, n - 1, &r,
                        err, sizeof err), SYNC_ETOOBIG);
    ASSERT_NULL(r.body);
    free(body);
}

static void test_http_get_and_status(void)
{
    struct http_response r;
    char err[256];
    ASSERT_EQ(http_get(srv_url, "/echo", 5000, 1024, &r, err, sizeof err),
              SYNC_OK);
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(r.len, 0);
    http_response_free(&r);

    /* HTTP errors are not transport errors; Retry-After is passed up. */
    ASSERT_EQ(http_post(srv_url, "/busy", NULL, "x", 1, 5000, 1024, &r, err,
                        sizeof err), SYNC_OK);
    ASSERT_EQ(r.status, 503);
    ASSERT_STR_EQ(r.retry_after, "7");
    ASSERT_EQ(r.len, 4);
    http_response_free(&r);

    ASSERT_EQ(http_get(srv_url, "/nothing-here", 5000, 4096, &r, err,
                       sizeof err), SYNC_OK);
    ASSERT_EQ(r.status, 404);
    ASSERT_GT(r.len, 0);                    /* CivetWeb's error text */
    http_response_free(&r);
}

static void test_http_body_until_close(void)
{
    struct http_response r;
    char err[256];
    ASSERT_EQ(http_get(srv_url, "/noclen?500", 5000, 5000, &r, err,
                       sizeof err), SYNC_OK);
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(r.len, 5000);
    ASSERT_MEM_EQ(r.body + 4990, "0123456789", 10);
    http_response_free(&r);

    ASSERT_EQ(http_get(srv_url, "/noclen?500", 5000, 4999, &r, err,
                       sizeof err), SYNC_ETOOBIG);
    ASSERT_NULL(r.body);

    ASSERT_EQ(http_get(srv_url, "/chunked", 5000, 3000, &r, err, sizeof err),
              SYNC_OK);
    ASSERT_EQ(r.len, 3000);
    ASSERT_MEM_EQ(r.body + 2990, "0123456789", 10);
    http_response_free(&r);
    ASSERT_EQ(http_get(srv_url, "/chunked", 5000, 2999, &r, err, sizeof err),
              SYNC_ETOOBIG);
}

static void test_http_short_body(void)
{
    struct http_response r;
    char err[256];
    ASSERT_EQ(http_get(srv_url, "/short", 5000, 1024, &r, err, sizeof err),
              SYNC_ENET);
    ASSERT_NULL(r.body);
    ASSERT(strstr(err, "10 of 100") != NULL);
}

static void test_http_timeout(void)
{
    struct http_response r;
    char err[256];
    int64_t t0 = now_ms();
    ASSERT_EQ(http_get(srv_url, "/slow", 300, 1024, &r, err, sizeof err),
              SYNC_ENET);
    ASSERT_LT(now_ms() - t0, 1100);
    ASSERT(strstr(err, "in time") != NULL);
}

static void test_http_envelope_exchange(void)
{
    make_pair(&srv_pair);
    uint8_t *env, *pt;
    size_t len, ptlen;
    seal_push(&srv_pair, 12, &env, &len);

    struct http_response r;
    char err[256];
    ASSERT_EQ(http_post(srv_url, "/envelope", NULL, env, len, 5000, 4096, &r,
                        err, sizeof err), SYNC_OK);
    free(env);
    ASSERT_EQ(r.status, 200);
    struct env_header h;
    ASSERT_EQ(env_open(r.body, r.len, ENV_PUSH_REPLY, srv_pair.dev_rx, &h,
                       &pt, &ptlen), SYNC_OK);
    ASSERT_EQ(ptlen, 8);
    ASSERT_EQ(be64_get(pt), sizeof msg);
    ASSERT_EQ(h.batch_seq, 12);
    free(pt);
    http_response_free(&r);
}

static void test_http_stop_server(void)
{
    mg_stop(srv);
    srv = NULL;
}

/* A loopback port that was just free and is now closed. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(fd >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    ASSERT_EQ(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ASSERT_EQ(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void test_http_refused(void)
{
    char url[64], want[128], err[256];
    int port = closed_port();
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    snprintf(want, sizeof want, "cannot connect to 127.0.0.1:%d: "
             "connection refused", port);
    struct http_response r;
    ASSERT_EQ(http_post(url, "/v1/push", NULL, "x", 1, 2000, 1024, &r, err,
                        sizeof err), SYNC_ENET);
    ASSERT_STR_EQ(err, want);
    ASSERT_NULL(r.body);
}

static void test_http_bad_args(void)
{
    struct http_response r;
    char err[256];
    const char *bad_urls[] = {
        "https://127.0.0.1:8080", "ftp://h", "127.0.0.1:8080", "http://",
        "http://h:0", "http://h:65536", "http://h:80x", "http://h/v1",
        "http://u@h:80", "http://[::1", NULL
    };
    for (int i = 0; bad_urls[i]; i++)
        ASSERT_EQ(http_get(bad_urls[i], "/", 1000, 10, &r, err, sizeof err),
                  SYNC_EINVAL);
    ASSERT(strstr(err, "http://host") != NULL);
    ASSERT_EQ(http_get(NULL, "/", 1000, 10, &r, err, sizeof err), SYNC_EINVAL);

    /* Paths and content types that could smuggle headers. */
    ASSERT_EQ(http_get("http://h", "/a\r\nX: y", 1000, 10, &r, err,
                       sizeof err), SYNC_EINVAL);
    ASSERT_EQ(http_get("http://h", "no-slash", 1000, 10, &r, err, sizeof err),
              SYNC_EINVAL);
    ASSERT_EQ(http_post("http://h", "/", "a\nb", "x", 1, 1000, 10, &r, err,
                        sizeof err), SYNC_EINVAL);
    ASSERT_EQ(http_get("http://h", "/", 0, 10, &r, err, sizeof err),
              SYNC_EINVAL);
}

static const struct test_case tests[] = {
    TEST(test_kx_keys_match),
    TEST(test_roundtrip_both_ways),
    TEST(test_fresh_nonce_each_seal),
    TEST(test_wrong_key),
    TEST(test_every_bit_flip),
    TEST(test_every_truncation),
    TEST(test_kind_mismatch),
    TEST(test_header_tampering),
    TEST(test_peek_rejects),
    TEST(test_empty_plaintext),
    TEST(test_versions_and_compression),
    TEST(test_seal_bad_args),
    TEST(test_ids_increasing),
    TEST(test_ids_threads_unique),
    TEST(test_ids_sql),
    TEST(test_http_start_server),
    TEST(test_http_post_echo),
    TEST(test_http_post_large),
    TEST(test_http_get_and_status),
    TEST(test_http_body_until_close),
    TEST(test_http_short_body),
    TEST(test_http_timeout),
    TEST(test_http_envelope_exchange),
    TEST(test_http_stop_server),
    TEST(test_http_refused),
    TEST(test_http_bad_args),
    { NULL, NULL }
};

int main(void)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "test_envelope: sodium_init failed\n");
        return 1;
    }
    return test_run_all("test_envelope", tests);
}
