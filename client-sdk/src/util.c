/* util.c - growable buffer, big-endian codecs and hex; see util.h. */
#define _POSIX_C_SOURCE 200809L
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

static int (*fail_hook)(void *);
static void *fail_ctx;

void es_alloc_set_fail_hook(int (*fail)(void *ctx), void *ctx)
{
    fail_hook = fail;
    fail_ctx = ctx;
}

static int should_fail(void)
{
    return fail_hook != NULL && fail_hook(fail_ctx);
}

void *es_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n);
}

void *es_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : calloc(n, size);
}

void *es_realloc(void *p, size_t n)
{
    if (n > 0 && should_fail())
        return NULL;
    return realloc(p, n);
}

char *es_strdup(const char *s)
{
    return should_fail() ? NULL : strdup(s);
}

void es_free(void *p)
{
    free(p);
}

static int buf_grow(struct buf *b, size_t n)
{
    if (b->oom)
        return -1;
    if (b->len + n <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) {
        if (cap > SIZE_MAX / 2)
            goto fail;
        cap *= 2;
    }
    uint8_t *p;
    if (b->secret) {                      /* no stale copy left behind */
        p = es_malloc(cap);
        if (p == NULL)
            goto fail;
        if (b->p) {
            memcpy(p, b->p, b->len);
            sodium_memzero(b->p, b->len);
            es_free(b->p);
        }
    } else {
        p = es_realloc(b->p, cap);
        if (p == NULL)
            goto fail;
    }
    b->p = p;
    b->cap = cap;
    return 0;
fail:
    if (b->secret && b->p)
        sodium_memzero(b->p, b->len);
    es_free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 1;
    return -1;
}

void buf_append(struct buf *b, const void *data, size_t n)
{
    if (n == 0 || buf_grow(b, n) != 0)
        return;
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

void buf_byte(struct buf *b, uint8_t v) { buf_append(b, &v, 1); }

void buf_be32(struct buf *b, uint32_t v)
{
    uint8_t t[4];
    be32_put(t, v);
    buf_append(b, t, 4);
}

void buf_be64(struct buf *b, uint64_t v)
{
    uint8_t t[8];
    be64_put(t, v);
    buf_append(b, t, 8);
}

/* SQLite's varint: big-endian groups of 7 bits, high bit = more; the ninth
 * byte, if reached, carries 8 bits. */
void buf_varint(struct buf *b, uint64_t v)
{
    uint8_t t[9];
    int n;
    if (v & ((uint64_t)0xff000000 << 32)) {
        t[8] = (uint8_t)v;
        v >>= 8;
        for (int i = 7; i >= 0; i--) {
            t[i] = (uint8_t)((v & 0x7f) | 0x80);
            v >>= 7;
        }
        buf_append(b, t, 9);
        return;
    }
    uint8_t r[10];
    n = 0;
    do {
        r[n++] = (uint8_t)((v & 0x7f) | 0x80);
        v >>= 7;
    } while (v != 0);
    r[0] &= 0x7f;
    for (int i = 0; i < n; i++)
        t[i] = r[n - 1 - i];
    buf_append(b, t, (size_t)n);
}

void buf_free(struct buf *b)
{
    if (b == NULL)
        return;
    if (b->secret && b->p)
        sodium_memzero(b->p, b->len);
    es_free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

uint8_t *buf_take(struct buf *b, size_t *len)
{
    uint8_t *p = b->oom ? NULL : b->p;
    *len = p ? b->len : 0;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

uint32_t be32_get(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint64_t be64_get(const uint8_t *p)
{
    return (uint64_t)be32_get(p) << 32 | be32_get(p + 4);
}

void be32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void be64_put(uint8_t *p, uint64_t v)
{
    be32_put(p, (uint32_t)(v >> 32));
    be32_put(p + 4, (uint32_t)v);
}

void hex_encode(char *out, const uint8_t *in, size_t n)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int hex_decode(uint8_t *out, size_t n, const char *hex)
{
    if (hex == NULL || strlen(hex) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int num_to_i64(double d, int64_t lo, int64_t hi, int64_t *out)
{
    if (!(d >= (double)lo && d <= (double)hi))   /* false for NaN too */
        return 0;
    int64_t v = (int64_t)d;
    if ((double)v != d)
        return 0;
    *out = v;
    return 1;
}
