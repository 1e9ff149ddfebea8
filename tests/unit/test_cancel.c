/* Unit tests for lib/cancel: a fire ends a recv blocked on the attached socket at once (and only
 * that socket), a fire before the attach is not missed, a cancel sleep ends early when fired and
 * runs its course when not, a NULL cancel never fires. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/cancel.h"
#include "lib/util.h"

typedef struct blocked {
    ck_cancel *c;
    int fd;
    ssize_t got;
    int64_t ended_ns;
} blocked;

static void *recv_main(void *arg)
{
    blocked *b = arg;
    char buf[16];
    b->got = recv(b->fd, buf, sizeof buf, 0);
    b->ended_ns = ck_now_ns();
    return NULL;
}

static void test_fire_ends_blocked_recv(void **state)
{
    (void)state;
    int sv[2], other[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, other), 0);
    ck_cancel c;
    ck_cancel_init(&c);
    assert_false(ck_cancel_fired(&c));
    assert_int_equal(ck_cancel_attach(&c, sv[0]), 0);
    blocked b = {.c = &c, .fd = sv[0], .got = -2};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, recv_main, &b), 0);
    usleep(100 * 1000);
    assert_int_equal(b.ended_ns, 0);             /* nothing to read: still blocked */
    int64_t t0 = ck_now_ns();
    ck_cancel_fire(&c);
    pthread_join(th, NULL);
    assert_int_equal(b.got, 0);                  /* EOF from the shutdown */
    assert_true(b.ended_ns - t0 < 100000000LL);
    assert_true(ck_cancel_fired(&c));
    ck_cancel_fire(&c);                          /* again: harmless */
    ck_cancel_detach(&c);
    /* another socket, never attached, is untouched */
    assert_int_equal(send(other[1], "x", 1, 0), 1);
    char ch;
    assert_int_equal(recv(other[0], &ch, 1, 0), 1);
    /* attaching after the fire fails: the waiter must not block */
    assert_int_equal(ck_cancel_attach(&c, other[0]), -1);
    assert_int_equal(send(other[1], "y", 1, 0), 1);
    assert_int_equal(recv(other[0], &ch, 1, 0), 1);
    ck_cancel_destroy(&c);
    close(sv[0]);
    close(sv[1]);
    close(other[0]);
    close(other[1]);
}

static void *fire_later(void *arg)
{
    usleep(100 * 1000);
    ck_cancel_fire(arg);
    return NULL;
}

static void test_sleep(void **state)
{
    (void)state;
    ck_cancel c;
    ck_cancel_init(&c);
    int64_t t0 = ck_now_ns();
    assert_false(ck_cancel_sleep(&c, 120));      /* not fired: the whole time */
    assert_true(ck_now_ns() - t0 >= 120000000LL);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fire_later, &c), 0);
    t0 = ck_now_ns();
    assert_true(ck_cancel_sleep(&c, 10000));     /* fired after ~100 ms: wakes then */
    assert_true(ck_now_ns() - t0 < 5000000000LL);
    pthread_join(th, NULL);
    t0 = ck_now_ns();
    assert_true(ck_cancel_sleep(&c, 10000));     /* already fired: no wait */
    assert_true(ck_now_ns() - t0 < 50000000LL);
    ck_cancel_destroy(&c);
}

static void test_null(void **state)
{
    (void)state;
    assert_false(ck_cancel_fired(NULL));
    assert_int_equal(ck_cancel_attach(NULL, 3), 0);
    ck_cancel_detach(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fire_ends_blocked_recv),
        cmocka_unit_test(test_sleep),
        cmocka_unit_test(test_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
