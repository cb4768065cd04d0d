/* test_alloc: the allocator hooks, and secrets wiped before their memory is freed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"

/* A custom allocator that looks at each block as it is freed. */
typedef struct spy {
    int allocs, frees;
    size_t last_size;
    int freed_nonzero; /* bytes of the freed block (its first last_size) that were not zero */
} spy;

static void *spy_alloc(void *opaque, size_t size)
{
    spy *s = opaque;
    s->allocs++;
    s->last_size = size;
    return malloc(size);
}

static void spy_free(void *opaque, void *p)
{
    spy *s = opaque;
    s->frees++;
    s->freed_nonzero = 0;
    for (size_t i = 0; i + 1 < s->last_size; i++) /* the terminator is 0 anyway */
        s->freed_nonzero += ((unsigned char *)p)[i] != 0;
    free(p);
}

static void test_custom_allocator_used(void **state)
{
    (void)state;
    spy s = {0};
    steno_allocator a = {.alloc_fn = spy_alloc, .free_fn = spy_free, .opaque = &s};
    void *p = steno__calloc(&a, 4, 8);
    assert_non_null(p);
    assert_int_equal(s.allocs, 1);
    steno__free(&a, p);
    assert_int_equal(s.frees, 1);
    assert_null(steno__calloc(&a, SIZE_MAX / 2, 4)); /* overflow: refused */
}

static void test_free_secret_wipes_before_free(void **state)
{
    (void)state;
    spy s = {0};
    steno_allocator a = {.alloc_fn = spy_alloc, .free_fn = spy_free, .opaque = &s};
    static const char key[] = "Token sk-0123456789abcdef";
    char *k = steno__alloc(&a, sizeof key);
    assert_non_null(k);
    memcpy(k, key, sizeof key);
    steno__free_secret(&a, k);
    assert_int_equal(s.frees, 1);
    assert_int_equal(s.freed_nonzero, 0);

    /* the control: a plain free leaves the bytes (so the spy can see a leak) */
    k = steno__alloc(&a, sizeof key);
    memcpy(k, key, sizeof key);
    steno__free(&a, k);
    assert_true(s.freed_nonzero > 0);
    steno__free_secret(&a, NULL); /* nothing to do */
}

static void test_wipe(void **state)
{
    (void)state;
    char buf[64];
    memset(buf, 'k', sizeof buf);
    steno__wipe(buf + 8, 16);
    for (size_t i = 0; i < sizeof buf; i++)
        assert_int_equal(buf[i], i >= 8 && i < 24 ? 0 : 'k');
    steno__wipe(NULL, 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_custom_allocator_used),
        cmocka_unit_test(test_free_secret_wipes_before_free),
        cmocka_unit_test(test_wipe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
