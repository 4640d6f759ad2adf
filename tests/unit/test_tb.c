/* Unit tests: the translation-block cache's bookkeeping. Blocks here carry no code (the
 * cache only sizes and frees it); what matters is which pages hold which blocks, that
 * invalidation and flushes find them, and that flushing and teardown cost what the guest
 * used, not the RAM size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "accel/tcg/tb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct tb *new_tb(uint64_t phys_pc)
{
    struct tb *tb = calloc(1, sizeof(*tb));
    assert_non_null(tb);
    tb->pc = tb->phys_pc = phys_pc;
    tb->size = 16;
    return tb;
}

static long vm_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_insert_lookup_invalidate(void **state)
{
    (void)state;
    struct tb_cache cache;
    assert_int_equal(tb_cache_init(&cache, 16), 0);
    struct tb *a = new_tb(0x1000), *b = new_tb(0x1ff8);
    assert_int_equal(tb_insert(&cache, a, 1, SIZE_MAX), 0);
    assert_int_equal(tb_insert(&cache, b, 1, 2), 0); /* spans pages 1 and 2 */
    assert_ptr_equal(tb_lookup(&cache, NULL, 0x1000, 0x1000, 0, 0, 0), a);
    assert_ptr_equal(tb_lookup(&cache, NULL, 0x1ff8, 0x1ff8, 0, 0, 0), b);
    assert_true(tb_page_has_code(&cache, 2));
    assert_int_equal(tb_invalidate_page(&cache, 2), 1);
    assert_false(tb_page_has_code(&cache, 2));
    assert_true(tb_page_has_code(&cache, 1)); /* a stays; b left page 1's list too */
    assert_null(tb_lookup(&cache, NULL, 0x1ff8, 0x1ff8, 0, 0, 0));
    assert_int_equal(tb_invalidate_page(&cache, 1), 1);
    assert_int_equal(tb_insert(&cache, new_tb(0x5000), 99, SIZE_MAX), -1); /* beyond RAM */
    tb_reap(&cache);
    tb_cache_destroy(&cache);
}

/* A 1 TiB guest (2^28 pages, a 4 GiB page array) with code on a few pages: flushes and
 * teardown touch only those (before: every page, ~28 s and GBs of RSS at exit). */
static void test_flush_and_destroy_scale_with_use(void **state)
{
    (void)state;
    const size_t nr_pages = (size_t)1 << 28;
    long rss0 = vm_rss_kb();
    struct tb_cache cache;
    if (tb_cache_init(&cache, nr_pages) < 0) {
        skip(); /* no 4 GiB of address space here */
        return;
    }
    /* Timed without init and teardown: under ASan, calloc and free of 4 GiB cost seconds
     * of shadow poisoning. Teardown is held to the RSS bound. */
    double t0 = now_s();
    for (int round = 0; round < 100; round++) {
        const size_t pages[] = {0, 12345, nr_pages / 2, nr_pages - 2};
        for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++)
            assert_int_equal(
                tb_insert(&cache, new_tb((uint64_t)pages[i] << 12), pages[i], pages[i] + 1), 0);
        assert_true(tb_page_has_code(&cache, nr_pages - 1));
        tb_flush(&cache);
        assert_false(tb_page_has_code(&cache, nr_pages - 1));
        assert_false(tb_page_has_code(&cache, 12345));
        tb_reap(&cache);
    }
    double secs = now_s() - t0;
    tb_cache_destroy(&cache);
    long grown = vm_rss_kb() - rss0;
    printf("1 TiB cache: 100 flushes in %.3f s, RSS +%ld KiB after teardown\n", secs, grown);
    assert_true(secs < 2.0);
    assert_true(grown < 64 * 1024);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_lookup_invalidate),
        cmocka_unit_test(test_flush_and_destroy_scale_with_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
