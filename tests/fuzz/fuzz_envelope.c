/* fuzz_envelope.c - libFuzzer target for the wire envelope (envelope.c).
 *
 * Each input is used twice:
 *   1. as a received envelope: env_peek, then env_open for every kind under
 *      a fixed key.  Opening may only succeed for a well-formed header of
 *      that kind, and then the header must equal env_peek's and the
 *      plaintext length must be len - ENV_OVERHEAD; every failure must leave
 *      *pt NULL, *ptlen 0 and the header zeroed.
 *   2. as "selector byte, plaintext": seal the plaintext, apply the mutation
 *      the selector names, and open.  Unmutated envelopes must round-trip
 *      exactly; every mutation must be refused with the right code.
 * Envelopes sealed under the fixed key (the seed corpus has some) open in
 * step 1, so the fuzzer also gets to mutate authentic envelopes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "eldersync.h"
#include "envelope.h"

#define FAIL(...) do { fprintf(stderr, "fuzz_envelope: " __VA_ARGS__); fputc('\n', stderr); \
                       abort(); } while (0)

static uint8_t key[ENV_KEYBYTES], other_key[ENV_KEYBYTES];

static int zeroed(const struct env_header *h)
{
    static const struct env_header z;
    return memcmp(h, &z, sizeof z) == 0;
}

/* Opens buf as kind; returns the code after checking the output contract. */
static int open_checked(const uint8_t *buf, size_t len, int kind, const uint8_t *k,
                        uint8_t **pt, size_t *ptlen, struct env_header *h)
{
    memset(h, 0xa5, sizeof *h);
    *pt = (uint8_t *)1;
    *ptlen = 12345;
    int rc = env_open(buf, len, kind, k, h, pt, ptlen);
    if (rc == SYNC_OK) {
        /* version 1 carries the plaintext as is; version 2 an encoding
         * byte and maybe a deflate stream, bounded by ENV_MAX_PLAIN */
        if (*pt == NULL || len < ENV_OVERHEAD ||
            (h->version == 1 && *ptlen != len - ENV_OVERHEAD) ||
            (h->version != 1 && *ptlen > ENV_MAX_PLAIN))
            FAIL("env_open succeeded with pt %p, ptlen %zu for %zu bytes", (void *)*pt, *ptlen,
                 len);
        if (h->kind != kind || h->version < ENV_VERSION_MIN || h->version > ENV_VERSION)
            FAIL("env_open succeeded with header kind %d version %d", h->kind, h->version);
    } else {
        if (rc != SYNC_EPROTO && rc != SYNC_ECRYPTO)
            FAIL("env_open returned %d", rc);
        if (*pt != NULL || *ptlen != 0 || !zeroed(h))
            FAIL("env_open failed (%d) but left output behind", rc);
    }
    return rc;
}

static void as_envelope(const uint8_t *data, size_t size)
{
    struct env_header peek, h;
    int prc = env_peek(data, size, &peek);
    if (prc != SYNC_OK && (prc != SYNC_EPROTO || !zeroed(&peek)))
        FAIL("env_peek returned %d", prc);
    for (int kind = 0; kind <= ENV_PULL_REPLY + 1; kind++) {
        uint8_t *pt;
        size_t ptlen;
        int rc = open_checked(data, size, kind, key, &pt, &ptlen, &h);
        if (rc == SYNC_OK) {
            if (prc != SYNC_OK || peek.kind != kind || memcmp(&peek, &h, sizeof h) != 0)
                FAIL("env_open accepted what env_peek did not describe");
            free(pt);
        } else if (rc == SYNC_ECRYPTO && (prc != SYNC_OK || peek.kind != kind)) {
            FAIL("env_open got to decryption with a bad header");
        }
    }
}

/* Mutations of a sealed envelope, chosen by bits 2..4 of the selector. */
enum { M_NONE, M_FLIP, M_TRUNC, M_APPEND, M_KIND, M_WRONG_KIND, M_WRONG_KEY, M_SEQ };

static void seal_mutate(const uint8_t *data, size_t size)
{
    if (size < 1)
        return;
    uint8_t sel = data[0];
    const uint8_t *pt = data + 1;
    size_t ptlen = size - 1;
    struct env_header h = { 0, ENV_PUSH + (sel & 3), { 0 }, 0 };
    for (int i = 0; i < 16; i++)
        h.device_id[i] = (uint8_t)(sel * 31 + i);
    h.batch_seq = ptlen > 0 ? (uint64_t)pt[0] << 32 | sel : sel;
    uint8_t *env = NULL;
    size_t n = 0;
    if (env_seal(&h, key, pt, ptlen, &env, &n) != SYNC_OK)
        FAIL("env_seal failed for %zu bytes", ptlen);
    if (n > ptlen + ENV_OVERHEAD + 1)      /* version 2: at most one encoding byte more */
        FAIL("env_seal wrote %zu bytes for %zu", n, ptlen);
    /* a position derived from the plaintext, so the fuzzer can steer it */
    size_t pos = ptlen >= 2 ? ((size_t)pt[ptlen - 1] << 8 | pt[ptlen - 2]) % n : sel % n;
    int mut = (sel >> 2) & 7, kind = h.kind, want = SYNC_ECRYPTO;
    const uint8_t *k = key;
    uint8_t *buf = malloc(n + 1);          /* exact size below, for ASan */
    if (buf == NULL)
        FAIL("oom");
    memcpy(buf, env, n);
    size_t len = n;
    switch (mut) {
    case M_NONE:
        want = SYNC_OK;
        break;
    case M_FLIP:
        buf[pos] ^= (uint8_t)(1u << (sel >> 5));
        /* magic, version or kind bytes: the clear header check refuses it */
        if (pos < 4)
            want = SYNC_EPROTO;
        break;
    case M_TRUNC:
        len = pos;
        if (len < ENV_OVERHEAD)
            want = SYNC_EPROTO;
        break;
    case M_APPEND:
        buf[n] = sel;
        len = n + 1;
        break;
    case M_KIND:                           /* rewrite the kind in the header */
        buf[3] = (uint8_t)(ENV_PUSH + ((kind - ENV_PUSH + 1 + (sel >> 5) % 3) & 3));
        kind = buf[3];
        break;
    case M_WRONG_KIND:
        kind = ENV_PUSH + ((kind - ENV_PUSH + 1) & 3);
        want = SYNC_EPROTO;
        break;
    case M_WRONG_KEY:
        k = other_key;
        break;
    case M_SEQ:
        buf[20 + (sel >> 5)] ^= 0x01;       /* batch_seq bytes */
        break;
    }
    uint8_t *exact = malloc(len ? len : 1);
    if (exact == NULL)
        FAIL("oom");
    memcpy(exact, buf, len);
    uint8_t *out = NULL;
    size_t outlen = 0;
    struct env_header got;
    int rc = open_checked(exact, len, kind, k, &out, &outlen, &got);
    if (rc != want)
        FAIL("mutation %d at %zu (selector 0x%02x, %zu bytes): env_open gave %d, expected %d",
             mut, pos, sel, ptlen, rc, want);
    if (rc == SYNC_OK) {
        if (outlen != ptlen || (ptlen > 0 && memcmp(out, pt, ptlen) != 0))
            FAIL("round trip changed the plaintext");
        if (got.kind != h.kind || got.batch_seq != h.batch_seq ||
            memcmp(got.device_id, h.device_id, 16) != 0)
            FAIL("round trip changed the header");
        free(out);
    }
    free(exact);
    free(buf);
    free(env);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        if (sodium_init() < 0)
            FAIL("sodium_init");
        for (int i = 0; i < ENV_KEYBYTES; i++) {
            key[i] = (uint8_t)i;
            other_key[i] = (uint8_t)(i ^ 0x80);
        }
        ready = 1;
    }
    as_envelope(data, size);
    seal_mutate(data, size);
    return 0;
}
