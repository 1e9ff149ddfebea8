/* Unit tests for client/workqueue: dedup, in-flight re-queue, delays, rate limiting, shutdown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "client/workqueue.h"
#include "lib/util.h"

static void test_dedup_and_order(void **state)
{
    ck_workqueue *q = ck_workqueue_new();
    ck_workqueue_add(q, "a");
    ck_workqueue_add(q, "b");
    ck_workqueue_add(q, "a");
    assert_int_equal(ck_workqueue_len(q), 2);
    char *k = ck_workqueue_get(q);
    assert_string_equal(k, "a");
    ck_workqueue_done(q, k);
    free(k);
    k = ck_workqueue_get(q);
    assert_string_equal(k, "b");
    ck_workqueue_done(q, k);
    free(k);
    assert_int_equal(ck_workqueue_len(q), 0);
    ck_workqueue_free(q);
}

static void test_requeue_while_processing(void **state)
{
    ck_workqueue *q = ck_workqueue_new();
    ck_workqueue_add(q, "a");
    char *k = ck_workqueue_get(q);
    ck_workqueue_add(q, "a");            /* in flight: must not be handed to a second worker */
    assert_int_equal(ck_workqueue_len(q), 0);
    ck_workqueue_done(q, k);             /* now it is queued again */
    assert_int_equal(ck_workqueue_len(q), 1);
    free(k);
    k = ck_workqueue_get(q);
    assert_string_equal(k, "a");
    ck_workqueue_done(q, k);
    free(k);
    ck_workqueue_free(q);
}

static void test_delay(void **state)
{
    ck_workqueue *q = ck_workqueue_new();
    int64_t t0 = ck_now_ns();
    ck_workqueue_add_after(q, "late", 100);
    ck_workqueue_add_after(q, "early", 20);
    char *k = ck_workqueue_get(q);
    assert_string_equal(k, "early");
    assert_true(ck_now_ns() - t0 >= 20 * 1000000LL);
    ck_workqueue_done(q, k);
    free(k);
    k = ck_workqueue_get(q);
    assert_string_equal(k, "late");
    assert_true(ck_now_ns() - t0 >= 100 * 1000000LL);
    ck_workqueue_done(q, k);
    free(k);
    ck_workqueue_free(q);
}

static void test_rate_limit(void **state)
{
    ck_workqueue *q = ck_workqueue_new();
    for (int i = 0; i < 4; i++) {
        ck_workqueue_add_rate_limited(q, "x");
        char *k = ck_workqueue_get(q);
        assert_string_equal(k, "x");
        ck_workqueue_done(q, k);
        free(k);
    }
    assert_int_equal(ck_workqueue_retries(q, "x"), 4);
    ck_workqueue_forget(q, "x");
    assert_int_equal(ck_workqueue_retries(q, "x"), 0);
    ck_workqueue_free(q);
}

static void *getter(void *arg)
{
    return ck_workqueue_get(arg);
}

static void test_shutdown_wakes(void **state)
{
    ck_workqueue *q = ck_workqueue_new();
    pthread_t t;
    pthread_create(&t, NULL, getter, q);
    ck_workqueue_shutdown(q);
    void *res = (void *)1;
    pthread_join(t, &res);
    assert_null(res);
    ck_workqueue_add(q, "ignored");
    assert_int_equal(ck_workqueue_len(q), 0);
    ck_workqueue_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dedup_and_order),
        cmocka_unit_test(test_requeue_while_processing),
        cmocka_unit_test(test_delay),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_shutdown_wakes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
