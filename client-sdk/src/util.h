/* util.h - small shared helpers: growable byte buffer, big-endian codecs, hex.
 *
 * Internal to libeldersync; the server links the same objects.  Nothing here
 * touches SQLite, the network or keys.
 */
#ifndef ES_UTIL_H
#define ES_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* The project's allocator: every malloc, calloc, realloc, strdup and free
 * in the server and the SDK goes through these, so a test can make the Nth
 * allocation fail (es_alloc_set_fail_hook).  They behave exactly like the C
 * library's (memory from one may be released with free() and vice versa);
 * memory SQLite, cJSON or libsodium hand out is released with their own
 * functions as before. */
void *es_malloc(size_t n);
void *es_calloc(size_t n, size_t size);
void *es_realloc(void *p, size_t n);
char *es_strdup(const char *s);
void  es_free(void *p);
/* For tests only: fail is called before every es_malloc, es_calloc,
 * es_realloc (n > 0) and es_strdup; when it returns non-zero the call
 * fails (returns NULL, realloc leaves p untouched).  NULL removes it.  Not
 * synchronised: set it while no other thread allocates. */
void  es_alloc_set_fail_hook(int (*fail)(void *ctx), void *ctx);

/* Growable byte buffer.  Initialise with struct buf b = {0}.  After a failed
 * append the buffer is freed and marked failed (b->oom = 1); every later
 * append is a no-op, so callers may check once at the end.  Set secret = 1
 * (before the first append) for a buffer that holds plaintext personal
 * data: it then grows by copying and wiping the old block instead of
 * realloc(), which could leave a copy behind in freed memory, and
 * buf_free() wipes it.  buf_take() hands the bytes over unwiped. */
struct buf {
    uint8_t *p;
    size_t   len;
    size_t   cap;
    int      oom;
    int      secret;
};

void buf_append(struct buf *b, const void *data, size_t n);
void buf_byte(struct buf *b, uint8_t v);
void buf_be32(struct buf *b, uint32_t v);
void buf_be64(struct buf *b, uint64_t v);
void buf_varint(struct buf *b, uint64_t v);      /* SQLite varint */
void buf_free(struct buf *b);                    /* wipes a secret buffer; NULL-safe */
/* Transfers ownership of the bytes to the caller (release with free()).
 * Returns NULL if the buffer failed or is empty-and-unallocated. */
uint8_t *buf_take(struct buf *b, size_t *len);

uint32_t be32_get(const uint8_t *p);
uint64_t be64_get(const uint8_t *p);
void     be32_put(uint8_t *p, uint32_t v);
void     be64_put(uint8_t *p, uint64_t v);

/* Lower-case hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void hex_encode(char *out, const uint8_t *in, size_t n);
/* Decodes exactly n bytes from a 2n-char hex string; 0 on success, -1 if the
 * string has another length or a non-hex character. */
int  hex_decode(uint8_t *out, size_t n, const char *hex);

/* Milliseconds since the Unix epoch, from CLOCK_REALTIME. */
int64_t now_ms(void);

/* A JSON number as an integer.  Returns 1 and sets *out when d is a whole
 * number in [lo, hi]; 0 for NaN (cJSON_GetNumberValue of a non-number),
 * infinities, fractions and anything out of range, which C must not convert
 * to an integer type at all.  lo and hi must lie within +-2^53. */
int num_to_i64(double d, int64_t lo, int64_t hi, int64_t *out);

#endif
