/* test.h - a tiny libuv-style test harness.
 *
 * A test is a void function; ASSERT* macros check a condition and, on
 * failure, print where and why and abandon the current test (longjmp back to
 * the runner, so they work from helper functions at any depth too).  The
 * runner prints "<prog>: N passed, M failed" and returns the exit status.
 *
 *     static void test_foo(void) { ASSERT_EQ(1 + 1, 2); }
 *     static const struct test_case tests[] = { TEST(test_foo), { NULL, NULL } };
 *     int main(void) { return test_run_all("test_foo", tests); }
 *
 * A failed test may leak what it allocated; that is accepted.
 */
#ifndef ES_TEST_H
#define ES_TEST_H

#include <inttypes.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct test_case {
    const char *name;
    void      (*fn)(void);
};
#define TEST(fn) { #fn, fn }

/* Weak: one buffer shared by every object of a test binary (support.c
 * asserts too). */
__attribute__((weak)) jmp_buf test_jmp_;

static inline void test_fail_(const char *file, int line, const char *what)
{
    fprintf(stderr, "  %s:%d: assertion failed: %s\n", file, line, what);
    longjmp(test_jmp_, 1);
}

static inline void test_fail_cmp_(const char *file, int line, const char *a, const char *op,
                                  const char *b, intmax_t va, intmax_t vb)
{
    fprintf(stderr, "  %s:%d: assertion failed: %s %s %s (%jd vs %jd)\n",
            file, line, a, op, b, va, vb);
    longjmp(test_jmp_, 1);
}

#define ASSERT(expr)                                                        \
    do {                                                                    \
        if (!(expr))                                                        \
            test_fail_(__FILE__, __LINE__, #expr);                          \
    } while (0)

/* Integer comparisons; both sides are evaluated once, as intmax_t. */
#define ASSERT_CMP_(a, op, b)                                               \
    do {                                                                    \
        intmax_t va_ = (intmax_t)(a), vb_ = (intmax_t)(b);                  \
        if (!(va_ op vb_))                                                  \
            test_fail_cmp_(__FILE__, __LINE__, #a, #op, #b, va_, vb_);      \
    } while (0)
#define ASSERT_EQ(a, b) ASSERT_CMP_(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_CMP_(a, !=, b)
#define ASSERT_LT(a, b) ASSERT_CMP_(a, <, b)
#define ASSERT_LE(a, b) ASSERT_CMP_(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_CMP_(a, >, b)
#define ASSERT_GE(a, b) ASSERT_CMP_(a, >=, b)

#define ASSERT_NULL(p)     ASSERT((p) == NULL)
#define ASSERT_NOT_NULL(p) ASSERT((p) != NULL)
#define ASSERT_STR_EQ(a, b) ASSERT(strcmp((a), (b)) == 0)
#define ASSERT_MEM_EQ(a, b, n) ASSERT(memcmp((a), (b), (n)) == 0)

/* Runs every test up to the { NULL, NULL } terminator; returns 0 if all
 * passed, 1 otherwise. */
static inline int test_run_all(const char *prog, const struct test_case *tests)
{
    /* volatile: they must survive the longjmp out of a failed test. */
    volatile int passed = 0, failed = 0;
    for (const struct test_case *volatile t = tests; t->fn != NULL; t++) {
        if (setjmp(test_jmp_) == 0) {
            t->fn();
            passed++;
        } else {
            fprintf(stderr, "FAIL %s\n", t->name);
            failed++;
        }
    }
    printf("%s: %d passed, %d failed\n", prog, passed, failed);
    fflush(stdout);     /* before a leak checker's exit hides it */
    return failed == 0 ? 0 : 1;
}

#endif
