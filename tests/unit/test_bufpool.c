/* Unit tests for src/lib/bufpool.c: buffers are recycled up to `keep`, counted while out, freed
 * when the pool is closed (idle ones at once, the rest when they come back, the pool with the
 * last of them: ASan runs report any leak or use after free), and released from other threads
 * as httpd's I/O thread does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <string.h>
#include <cmocka.h>

#include "lib/bufpool.h"

static void test_recycle_and_keep(void **state)
{
    ck_bufpool *p = ck_bufpool_new(4096, 2);
    assert_int_equal(ck_bufpool_size(p), 4096);
    void *a = ck_bufpool_get(p), *b = ck_bufpool_get(p), *c = ck_bufpool_get(p);
    assert_true(((uintptr_t)a & 15) == 0);
    memset(a, 1, 4096);
    memset(c, 3, 4096);
    assert_int_equal(ck_bufpool_outstanding(p), 3);
    ck_bufpool_release(a);
    ck_bufpool_release(b);
    ck_bufpool_release(c);   /* beyond keep: freed */
    assert_int_equal(ck_bufpool_outstanding(p), 0);
    void *d = ck_bufpool_get(p), *e = ck_bufpool_get(p);
    assert_true((d == a || d == b) && (e == a || e == b) && d != e);   /* recycled */
    ck_bufpool_release(d);
    ck_bufpool_release(e);
    ck_bufpool_release(NULL);
    ck_bufpool_close(p);
}

static void test_close_with_buffers_out(void **state)
{
    ck_bufpool *p = ck_bufpool_new(1 << 16, 4);
    void *a = ck_bufpool_get(p), *b = ck_bufpool_get(p);
    ck_bufpool_release(a);      /* idle: freed by close */
    ck_bufpool_close(p);
    memset(b, 7, 1 << 16);      /* still ours after the close */
    ck_bufpool_release(b);      /* the last reference: buffer and pool freed */
}

static void *releaser(void *arg)
{
    void **bufs = arg;
    for (int i = 0; i < 100; i++)
        ck_bufpool_release(bufs[i]);
    return NULL;
}

static void test_release_from_threads(void **state)
{
    ck_bufpool *p = ck_bufpool_new(256, 4);
    for (int round = 0; round < 20; round++) {
        void *bufs[2][100];
        for (int t = 0; t < 2; t++)
            for (int i = 0; i < 100; i++)
                bufs[t][i] = ck_bufpool_get(p);
        pthread_t th[2];
        for (int t = 0; t < 2; t++)
            assert_int_equal(pthread_create(&th[t], NULL, releaser, bufs[t]), 0);
        for (int t = 0; t < 2; t++)
            pthread_join(th[t], NULL);
        assert_int_equal(ck_bufpool_outstanding(p), 0);
    }
    ck_bufpool_close(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recycle_and_keep),
        cmocka_unit_test(test_close_with_buffers_out),
        cmocka_unit_test(test_release_from_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
