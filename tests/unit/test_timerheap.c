/* test_timerheap: the engine's timers fire in deadline order (ties in setting order), move and
 * cancel from anywhere in the heap, and agree with a plain reference model over random runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "timerheap.h"

static steno__timerheap heap_with(uint32_t room)
{
    steno__timerheap h;
    steno__timerheap_init(&h, NULL);
    assert_int_equal(steno__timerheap_reserve(&h, room), STENO_OK);
    return h;
}

static void test_fires_in_deadline_order_ties_first_set_first(void **state)
{
    (void)state;
    steno__timerheap h = heap_with(6);
    steno__tnode n[6];
    memset(n, 0, sizeof n);
    const uint64_t due[6] = {50, 10, 30, 10, 70, 30};
    for (int i = 0; i < 6; i++)
        assert_int_equal(steno__timerheap_set(&h, &n[i], due[i]), STENO_OK);
    assert_int_equal(steno__timerheap_count(&h), 6);
    assert_ptr_equal(steno__timerheap_peek(&h), &n[1]);
    /* nothing is due before the earliest deadline */
    assert_null(steno__timerheap_pop_due(&h, 9));
    const int want[6] = {1, 3, 2, 5, 0, 4};
    for (int k = 0; k < 6; k++) {
        steno__tnode *t = steno__timerheap_pop_due(&h, 100);
        assert_ptr_equal(t, &n[want[k]]);
        assert_false(steno__tnode_pending(t));
    }
    assert_null(steno__timerheap_pop_due(&h, UINT64_MAX));
    assert_null(steno__timerheap_peek(&h));
    steno__timerheap_free(&h);
}

static void test_set_again_moves_and_cancel_removes_anywhere(void **state)
{
    (void)state;
    steno__timerheap h = heap_with(5);
    steno__tnode n[5];
    memset(n, 0, sizeof n);
    for (int i = 0; i < 5; i++)
        steno__timerheap_set(&h, &n[i], (uint64_t)(i + 1) * 10);
    /* the earliest moves to the back, a late one to the front */
    steno__timerheap_set(&h, &n[0], 100);
    steno__timerheap_set(&h, &n[4], 5);
    assert_int_equal(steno__timerheap_count(&h), 5);
    assert_ptr_equal(steno__timerheap_peek(&h), &n[4]);
    /* cancel from the middle, and twice (the second is a no-op) */
    steno__tnode_cancel(&n[2]);
    steno__tnode_cancel(&n[2]);
    assert_false(steno__tnode_pending(&n[2]));
    assert_int_equal(steno__timerheap_count(&h), 4);
    const int want[4] = {4, 1, 3, 0};
    for (int k = 0; k < 4; k++)
        assert_ptr_equal(steno__timerheap_pop_due(&h, 1000), &n[want[k]]);
    /* a node that was never set cancels as a no-op */
    steno__tnode idle;
    memset(&idle, 0, sizeof idle);
    steno__tnode_cancel(&idle);
    steno__timerheap_free(&h);
}

static void test_full_heap_refuses_a_new_node_but_moves_a_pending_one(void **state)
{
    (void)state;
    steno__timerheap h = heap_with(1);
    /* reserve rounds the room up (16 at first): fill all of it */
    steno__tnode n[17];
    memset(n, 0, sizeof n);
    for (uint32_t i = 0; i < h.cap; i++)
        assert_int_equal(steno__timerheap_set(&h, &n[i], 10 + i), STENO_OK);
    assert_int_equal(steno__timerheap_set(&h, &n[16], 1), STENO_ERR_FULL);
    assert_false(steno__tnode_pending(&n[16]));
    assert_int_equal(steno__timerheap_set(&h, &n[3], 1), STENO_OK);
    assert_ptr_equal(steno__timerheap_peek(&h), &n[3]);
    steno__timerheap_free(&h);
    /* freeing leaves every node not pending, so a late cancel is harmless */
    assert_false(steno__tnode_pending(&n[3]));
    steno__tnode_cancel(&n[3]);
}

static void test_reserve_grows_keeping_pending_nodes(void **state)
{
    (void)state;
    steno__timerheap h = heap_with(2);
    steno__tnode n[40];
    memset(n, 0, sizeof n);
    steno__timerheap_set(&h, &n[0], 7);
    steno__timerheap_set(&h, &n[1], 3);
    assert_int_equal(steno__timerheap_reserve(&h, 38), STENO_OK);
    assert_true(h.cap >= 40);
    for (int i = 2; i < 40; i++)
        assert_int_equal(steno__timerheap_set(&h, &n[i], 100 - (uint64_t)i), STENO_OK);
    assert_ptr_equal(steno__timerheap_pop_due(&h, 1000), &n[1]);
    assert_ptr_equal(steno__timerheap_pop_due(&h, 1000), &n[0]);
    steno__timerheap_unreserve(&h, 1000);
    assert_int_equal(h.reserved, 0);
    steno__timerheap_free(&h);
}

/* Allocations fail on request, to prove reserve leaves the heap as it was. */
static int fail_alloc;
static void *t_alloc(void *u, size_t n)
{
    (void)u;
    return fail_alloc ? NULL : test_malloc(n);
}
static void t_free(void *u, void *p)
{
    (void)u;
    test_free(p);
}

static void test_reserve_failure_changes_nothing(void **state)
{
    (void)state;
    steno_allocator a = {t_alloc, t_free, NULL};
    steno__timerheap h;
    steno__timerheap_init(&h, &a);
    assert_int_equal(steno__timerheap_reserve(&h, 3), STENO_OK);
    steno__tnode n[3];
    memset(n, 0, sizeof n);
    for (int i = 0; i < 3; i++)
        steno__timerheap_set(&h, &n[i], (uint64_t)i);
    uint32_t cap = h.cap, reserved = h.reserved;
    fail_alloc = 1;
    assert_int_equal(steno__timerheap_reserve(&h, 100), STENO_ERR_NOMEM);
    fail_alloc = 0;
    assert_int_equal(h.cap, cap);
    assert_int_equal(h.reserved, reserved);
    assert_int_equal(steno__timerheap_count(&h), 3);
    assert_ptr_equal(steno__timerheap_pop_due(&h, 10), &n[0]);
    assert_int_equal(steno__timerheap_reserve(&h, UINT32_MAX), STENO_ERR_NOMEM);
    steno__timerheap_free(&h);
}

/*
 * Random schedules against a reference model (an array scanned for the
 * smallest (due, seq)): 300 nodes, 200,000 operations of set, move, cancel and
 * pop, the heap property checked throughout.
 */
#define RN 300
static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void check_heap(const steno__timerheap *h)
{
    for (uint32_t i = 0; i < h->n; i++) {
        assert_int_equal(h->v[i]->pos, i + 1);
        assert_ptr_equal(h->v[i]->heap, h);
        if (i > 0) {
            const steno__tnode *p = h->v[(i - 1) / 2], *c = h->v[i];
            assert_true(p->due < c->due || (p->due == c->due && p->seq < c->seq));
        }
    }
}

static void test_random_schedules_match_a_reference_model(void **state)
{
    (void)state;
    steno__timerheap h = heap_with(RN);
    steno__tnode n[RN];
    memset(n, 0, sizeof n);
    bool pend[RN] = {false};
    uint64_t now = 0;
    for (int op = 0; op < 200000; op++) {
        int i = (int)(next() % RN);
        switch (next() % 4) {
        case 0:
        case 1: /* set or move; small deadlines make ties common */
            assert_int_equal(steno__timerheap_set(&h, &n[i], now + next() % 50), STENO_OK);
            pend[i] = true;
            break;
        case 2:
            steno__tnode_cancel(&n[i]);
            pend[i] = false;
            break;
        default: { /* advance the clock and fire what is due, in the model's order */
            now += next() % 20;
            for (;;) {
                int best = -1;
                for (int k = 0; k < RN; k++)
                    if (pend[k] && n[k].due <= now &&
                        (best < 0 || n[k].due < n[best].due ||
                         (n[k].due == n[best].due && n[k].seq < n[best].seq)))
                        best = k;
                steno__tnode *t = steno__timerheap_pop_due(&h, now);
                if (best < 0) {
                    assert_null(t);
                    break;
                }
                assert_ptr_equal(t, &n[best]);
                pend[best] = false;
            }
        }
        }
        if (op % 997 == 0)
            check_heap(&h);
        uint32_t want = 0;
        for (int k = 0; k < RN; k++)
            want += pend[k];
        assert_int_equal(steno__timerheap_count(&h), want);
    }
    check_heap(&h);
    steno__timerheap_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fires_in_deadline_order_ties_first_set_first),
        cmocka_unit_test(test_set_again_moves_and_cancel_removes_anywhere),
        cmocka_unit_test(test_full_heap_refuses_a_new_node_but_moves_a_pending_one),
        cmocka_unit_test(test_reserve_grows_keeping_pending_nodes),
        cmocka_unit_test(test_reserve_failure_changes_nothing),
        cmocka_unit_test(test_random_schedules_match_a_reference_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
