/* test_wakeset: slots are handed out lowest first and reused, pages are added as sessions come,
 * a drain services exactly the owners that asked (once each, however often they asked), and
 * marks from many threads at once are never lost. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "net/wakeset.h"
#include "steno/status.h"

typedef struct owner {
    uint32_t slot;
    atomic_uint_fast64_t *word;
    uint64_t mask;
    unsigned called;
} owner;

static void count(void *o, void *ctx)
{
    ((owner *)o)->called++;
    (*(unsigned *)ctx)++;
}

static void test_slots_lowest_first_and_reused(void **state)
{
    (void)state;
    steno__wakeset w;
    steno__wakeset_init(&w, NULL);
    uint32_t s[5];
    for (uint32_t i = 0; i < 5; i++) {
        assert_int_equal(steno__wakeset_take(&w, &s[i]), STENO_OK);
        assert_int_equal(s[i], i);
    }
    steno__wakeset_give(&w, 2);
    uint32_t again;
    assert_int_equal(steno__wakeset_take(&w, &again), STENO_OK);
    assert_int_equal(again, 2);
    assert_int_equal(atomic_load(&w.npages), 1);
    steno__wakeset_free(&w);
}

/* Three pages filled, then every slot given back: the free stack holds them all (it once had
 * room only for what was free when the last page came, and overflowed at 10,000 sessions). */
static void test_every_slot_of_every_page_can_be_free_at_once(void **state)
{
    (void)state;
    steno__wakeset w;
    steno__wakeset_init(&w, NULL);
    const uint32_t n = 3 * STENO__WAKESET_PAGE_SLOTS;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t slot;
        assert_int_equal(steno__wakeset_take(&w, &slot), STENO_OK);
        assert_int_equal(slot, i);
    }
    assert_int_equal(atomic_load(&w.npages), 3);
    for (uint32_t i = 0; i < n; i++)
        steno__wakeset_give(&w, n - 1 - i);
    assert_true(w.capfree >= n);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t slot;
        assert_int_equal(steno__wakeset_take(&w, &slot), STENO_OK);
    }
    assert_int_equal(atomic_load(&w.npages), 3); /* no page added: all were reused */
    steno__wakeset_free(&w);
}

static void test_drain_calls_each_marked_bound_owner_once(void **state)
{
    (void)state;
    steno__wakeset w;
    steno__wakeset_init(&w, NULL);
    /* 5,000 owners: two pages */
    enum { N = 5000 };
    static owner o[N];
    memset(o, 0, sizeof o);
    for (uint32_t i = 0; i < N; i++) {
        assert_int_equal(steno__wakeset_take(&w, &o[i].slot), STENO_OK);
        assert_int_equal(o[i].slot, i);
        o[i].word = steno__wakeset_word(&w, o[i].slot, &o[i].mask);
        steno__wakeset_bind(&w, o[i].slot, &o[i]);
    }
    assert_int_equal(atomic_load(&w.npages), 2);
    unsigned n = 0;
    assert_int_equal(steno__wakeset_drain(&w, count, &n), 0);
    /* some ask, some ask three times, the last one of the second page asks too */
    const uint32_t ask[] = {0, 63, 64, 4095, 4096, 4999, 1234};
    for (size_t k = 0; k < sizeof ask / sizeof ask[0]; k++)
        for (int rep = 0; rep < (k % 2 ? 3 : 1); rep++)
            steno__wakeset_mark(o[ask[k]].word, o[ask[k]].mask);
    n = 0;
    assert_int_equal(steno__wakeset_drain(&w, count, &n), 7);
    assert_int_equal(n, 7);
    for (size_t k = 0; k < sizeof ask / sizeof ask[0]; k++)
        assert_int_equal(o[ask[k]].called, 1);
    /* drained: nothing left */
    n = 0;
    assert_int_equal(steno__wakeset_drain(&w, count, &n), 0);
    /* an unbound slot's mark is dropped */
    steno__wakeset_bind(&w, 10, NULL);
    steno__wakeset_mark(o[10].word, o[10].mask);
    assert_int_equal(steno__wakeset_drain(&w, count, &n), 0);
    assert_int_equal(o[10].called, 0);
    steno__wakeset_free(&w);
}

/* Four threads mark their owners again and again while the drain runs; after the last mark
 * and a final drain, every owner has been called at least once and never more often than it
 * marked (under TSan this also proves the marks and drains are race-free). */
enum { THREADS = 4, PER = 100, ROUNDS = 2000 };
static owner g_o[THREADS * PER];
static atomic_uint marks[THREADS * PER];

static void *marker(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg;
    for (int r = 0; r < ROUNDS; r++)
        for (unsigned i = t * PER; i < (t + 1) * PER; i++) {
            atomic_fetch_add(&marks[i], 1);
            steno__wakeset_mark(g_o[i].word, g_o[i].mask);
        }
    return NULL;
}

static void test_concurrent_marks_are_never_lost(void **state)
{
    (void)state;
    steno__wakeset w;
    steno__wakeset_init(&w, NULL);
    for (uint32_t i = 0; i < THREADS * PER; i++) {
        assert_int_equal(steno__wakeset_take(&w, &g_o[i].slot), STENO_OK);
        g_o[i].word = steno__wakeset_word(&w, g_o[i].slot, &g_o[i].mask);
        steno__wakeset_bind(&w, g_o[i].slot, &g_o[i]);
        atomic_init(&marks[i], 0);
    }
    pthread_t th[THREADS];
    for (unsigned t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, marker, (void *)(uintptr_t)t), 0);
    unsigned n = 0, drains = 0;
    for (int k = 0; k < 2000; k++, drains++)
        steno__wakeset_drain(&w, count, &n);
    for (unsigned t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    steno__wakeset_drain(&w, count, &n);
    for (unsigned i = 0; i < THREADS * PER; i++) {
        assert_true(g_o[i].called >= 1);
        assert_true(g_o[i].called <= atomic_load(&marks[i]));
        assert_true(g_o[i].called <= drains + 1);
    }
    steno__wakeset_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_lowest_first_and_reused),
        cmocka_unit_test(test_every_slot_of_every_page_can_be_free_at_once),
        cmocka_unit_test(test_drain_calls_each_marked_bound_owner_once),
        cmocka_unit_test(test_concurrent_marks_are_never_lost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
