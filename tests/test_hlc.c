/* test_hlc.c - hybrid logical clock: layout, monotonicity under a wall
 * clock that jumps back, observing remote stamps, counter overflow.
 *
 * Every test drives the clock through an injected fake, so nothing here
 * depends on the machine's real time except test_real_clock. */
#include <stdint.h>

#include "hlc.h"
#include "test.h"
#include "util.h"

#define T0 INT64_C(1700000000000)   /* Nov 2023, in ms */

struct fake_clock {
    int64_t ms;
};

static int64_t fake_ms(void *ctx)
{
    return ((struct fake_clock *)ctx)->ms;
}

static void init_fake(struct hlc *c, struct fake_clock *fc, uint64_t last,
                      uint8_t node)
{
    hlc_init(c, last, node);
    c->clock_ms = fake_ms;
    c->clock_ctx = fc;
}

static void test_layout(void)
{
    uint64_t h = hlc_make(T0, 0x12, 0xab);
    ASSERT_EQ(h >> 16, T0);
    ASSERT_EQ((h >> 8) & 0xff, 0x12);
    ASSERT_EQ(h & 0xff, 0xab);
    ASSERT_EQ(hlc_ms(h), T0);
    ASSERT_EQ(hlc_counter(h), 0x12);
    ASSERT_EQ(hlc_node(h), 0xab);

    /* Counter keeps its low 8 bits; ms is clamped into 48 bits. */
    ASSERT_EQ(hlc_counter(hlc_make(T0, 0x1ff, 0)), 0xff);
    ASSERT_EQ(hlc_ms(hlc_make(T0, 0x1ff, 0)), T0);
    ASSERT_EQ(hlc_make(-5, 1, 2), hlc_make(0, 1, 2));
    ASSERT_EQ(hlc_ms(hlc_make(INT64_MAX, 0, 0)), HLC_MS_MAX);

    /* Stamps order by ms, then counter, then node. */
    ASSERT(hlc_make(T0, 0, 0) > hlc_make(T0 - 1, 255, 255));
    ASSERT(hlc_make(T0, 1, 0) > hlc_make(T0, 0, 255));
    ASSERT(hlc_make(T0, 1, 1) > hlc_make(T0, 1, 0));
}

static void test_node_bits(void)
{
    struct fake_clock fc = { T0 };
    struct hlc c;
    init_fake(&c, &fc, 0, 0x5a);

    for (int i = 0; i < 600; i++) {
        uint64_t h = hlc_now(&c);
        ASSERT_EQ(hlc_node(h), 0x5a);
    }
    /* After observing a stamp of another node, ours still carry our byte. */
    hlc_observe(&c, hlc_make(T0 + 100, 3, 0xff));
    uint64_t h = hlc_now(&c);
    ASSERT_EQ(hlc_node(h), 0x5a);
    ASSERT_EQ(hlc_ms(h), T0 + 100);
    ASSERT_EQ(hlc_counter(h), 4);

    uint8_t id[16] = { 0 };
    ASSERT_EQ(hlc_node_from_id(id), 0);
    id[3] = 0x0f;
    id[15] = 0xf1;
    ASSERT_EQ(hlc_node_from_id(id), 0xfe);
}

static void test_advances_with_clock(void)
{
    struct fake_clock fc = { T0 };
    struct hlc c;
    init_fake(&c, &fc, 0, 1);

    uint64_t a = hlc_now(&c);
    ASSERT_EQ(a, hlc_make(T0, 0, 1));
    uint64_t b = hlc_now(&c);               /* same ms: counter */
    ASSERT_EQ(b, hlc_make(T0, 1, 1));
    fc.ms = T0 + 7;
    uint64_t d = hlc_now(&c);               /* clock moved: counter resets */
    ASSERT_EQ(d, hlc_make(T0 + 7, 0, 1));
}

static void test_clock_jumps_back(void)
{
    struct fake_clock fc = { T0 };
    struct hlc c;
    init_fake(&c, &fc, 0, 9);

    uint64_t prev = 0;
    for (int i = 0; i < 5; i++) {
        uint64_t h = hlc_now(&c);
        ASSERT(h > prev);
        prev = h;
    }
    /* Flat battery: the tablet wakes up in 1970, then even before it. */
    int64_t backs[] = { 0, 1000, -1, INT64_MIN, T0 - 60000 };
    for (size_t k = 0; k < sizeof backs / sizeof backs[0]; k++) {
        fc.ms = backs[k];
        for (int i = 0; i < 300; i++) {
            uint64_t h = hlc_now(&c);
            ASSERT(h > prev);
            ASSERT_GE(hlc_ms(h), T0);
            prev = h;
        }
    }
    /* Once the clock is right again, stamps follow it. */
    fc.ms = T0 + 3600000;
    uint64_t h = hlc_now(&c);
    ASSERT(h > prev);
    ASSERT_EQ(h, hlc_make(T0 + 3600000, 0, 9));
}

static void test_restart_from_persisted(void)
{
    /* A clock reloaded with the last stamp from disk must stay above it
     * even when the wall clock now reads earlier. */
    uint64_t persisted = hlc_make(T0 + 5000, 17, 2);
    struct fake_clock fc = { T0 };
    struct hlc c;
    init_fake(&c, &fc, persisted, 2);
    uint64_t h = hlc_now(&c);
    ASSERT(h > persisted);
    ASSERT_EQ(h, hlc_make(T0 + 5000, 18, 2));
}

static void test_observe_far_future(void)
{
    struct fake_clock fc = { T0 };
    struct hlc c;
    init_fake(&c, &fc, 0, 4);
    uint64_t mine = hlc_now(&c);

    /* A peer whose clock is ten years fast. */
    int64_t future = T0 + INT64_C(10) * 365 * 24 * 3600 * 1000;
    uint64_t remote = hlc_make(future, 200, 0xee);
    hlc_observe(&c, remote);
    uint64_t h = hlc_now(&c);
    ASSERT(h > remote);
    ASSERT(h > mine);
    ASSERT_EQ(hlc_ms(h), future);
    ASSERT_EQ(hlc_counter(h), 201);

    /* Older remote stamps change nothing. */
    hlc_observe(&c, hlc_make(T0, 0, 0));
    uint64_t h2 = hlc_now(&c);
    ASSERT(h2 > h);
    ASSERT_EQ(h2, hlc_make(future, 202, 4));
}

static void test_observe_then_now_strict(void)
{
    /* next hlc_now() > remote, whatever the remote's node byte. */
    struct fake_clock fc = { T0 };
    struct hlc c;
    init_fake(&c, &fc, 0, 0);
    for (unsigned ctr = 0; ctr < 256; ctr += 51) {
        uint64_t remote = hlc_make(T0, ctr, 0xff);
        hlc_observe(&c, remote);
        ASSERT(hlc_now(&c) > remote);
    }
}

static void test_counter_overflow(void)
{
    struct fake_clock fc = { T0 };
    struct hlc c;
    init_fake(&c, &fc, 0, 3);

    for (unsigned i = 0; i <= 255; i++) {
        uint64_t h = hlc_now(&c);
        ASSERT_EQ(hlc_ms(h), T0);
        ASSERT_EQ(hlc_counter(h), i);
    }
    /* The 257th stamp in one ms borrows the next ms. */
    uint64_t h = hlc_now(&c);
    ASSERT_EQ(h, hlc_make(T0 + 1, 0, 3));

    /* A burst far beyond 256 per ms stays strictly increasing. */
    uint64_t prev = h;
    for (int i = 0; i < 10000; i++) {
        uint64_t x = hlc_now(&c);
        ASSERT(x > prev);
        ASSERT_EQ(hlc_node(x), 3);
        prev = x;
    }
    /* The wall clock catches up past the borrowed ms: back to wall time. */
    fc.ms = hlc_ms(prev) + 1;
    ASSERT_EQ(hlc_now(&c), hlc_make(fc.ms, 0, 3));
}

static void test_end_of_range(void)
{
    /* A garbage remote stamp at the very top must not wrap us to 1970. */
    struct fake_clock fc = { T0 };
    struct hlc c;
    init_fake(&c, &fc, 0, 1);
    hlc_observe(&c, hlc_make(HLC_MS_MAX, 254, 0));
    uint64_t a = hlc_now(&c);
    ASSERT_EQ(a, hlc_make(HLC_MS_MAX, 255, 1));
    uint64_t b = hlc_now(&c);
    ASSERT(b >= a);
    ASSERT_EQ(hlc_ms(b), HLC_MS_MAX);

    /* A wall clock beyond 48 bits is clamped, not wrapped. */
    struct hlc d;
    fc.ms = INT64_MAX;
    init_fake(&d, &fc, 0, 1);
    ASSERT_EQ(hlc_ms(hlc_now(&d)), HLC_MS_MAX);
}

static void test_real_clock(void)
{
    struct hlc c;
    hlc_init(&c, 0, 7);
    ASSERT_NULL(c.clock_ms);
    int64_t before = now_ms();
    uint64_t h = hlc_now(&c);
    int64_t after = now_ms();
    ASSERT_GE(hlc_ms(h), before);
    ASSERT_LE(hlc_ms(h), after);
    ASSERT(hlc_now(&c) > h);
}

static const struct test_case tests[] = {
    TEST(test_layout),
    TEST(test_node_bits),
    TEST(test_advances_with_clock),
    TEST(test_clock_jumps_back),
    TEST(test_restart_from_persisted),
    TEST(test_observe_far_future),
    TEST(test_observe_then_now_strict),
    TEST(test_counter_overflow),
    TEST(test_end_of_range),
    TEST(test_real_clock),
    { NULL, NULL }
};

int main(void)
{
    return test_run_all("test_hlc", tests);
}
