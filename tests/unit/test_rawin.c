/* Unit tests for src/lib/rawin.c over a non-blocking pipe: one read(2) per wake (a short read
 * stops further reads until the owner sets may_read), pieces handed out in order, EAGAIN as "none
 * now", EOF only once the buffer is empty, a bad fd as an error, and the BIO callbacks' retry
 * flags and EOF answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/rawin.h"

static void nonblocking_pipe(int p[2])
{
    assert_int_equal(pipe(p), 0);
    fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
}

static void test_take_pieces_and_wakes(void **state)
{
    (void)state;
    int p[2];
    nonblocking_pipe(p);
    ck_rawin in;
    ck_rawin_init(&in, 8);
    char got[16];
    assert_int_equal(ck_rawin_take(&in, p[0], got, sizeof got), -1);   /* empty: EAGAIN */
    assert_false(in.may_read);
    assert_int_equal(write(p[1], "abcdefghijkl", 12), 12);
    assert_int_equal(ck_rawin_take(&in, p[0], got, sizeof got), -1);   /* no wake yet */
    in.may_read = true;
    assert_int_equal(ck_rawin_take(&in, p[0], got, 3), 3);             /* a full read of 8 */
    assert_memory_equal(got, "abc", 3);
    assert_true(in.may_read);                                           /* full: may read on */
    assert_int_equal(ck_rawin_take(&in, p[0], got, sizeof got), 5);
    assert_memory_equal(got, "defgh", 5);
    assert_int_equal(ck_rawin_take(&in, p[0], got, sizeof got), 4);    /* short read of 4 */
    assert_memory_equal(got, "ijkl", 4);
    assert_false(in.may_read);
    assert_int_equal(in.reads, 3);   /* EAGAIN, 8, 4 */
    close(p[1]);
    assert_int_equal(ck_rawin_take(&in, p[0], got, sizeof got), -1);   /* EOF not seen yet */
    in.may_read = true;
    assert_int_equal(ck_rawin_take(&in, p[0], got, sizeof got), 0);
    assert_true(in.eof);
    assert_int_equal(ck_rawin_take(&in, p[0], got, sizeof got), 0);    /* and stays */
    close(p[0]);
    ck_rawin_free(&in);
    assert_null(in.buf);
}

static void test_read_error(void **state)
{
    (void)state;
    ck_rawin in;
    ck_rawin_init(&in, 16);
    char got[4];
    assert_int_equal(ck_rawin_take(&in, -1, got, sizeof got), -2);
    ck_rawin_free(&in);
}

static void test_bio_callbacks(void **state)
{
    (void)state;
    int p[2];
    nonblocking_pipe(p);
    ck_rawin in;
    ck_rawin_init(&in, 64);
    BIO *b = BIO_new(BIO_s_null());
    char got[8];
    assert_int_equal(ck_rawin_bio_read(&in, p[0], b, got, sizeof got), -1);
    assert_true(BIO_should_retry(b) && BIO_should_read(b));
    assert_int_equal(ck_rawin_bio_read(&in, p[0], b, got, 0), 0);
    assert_false(BIO_should_retry(b));
    assert_int_equal(write(p[1], "xy", 2), 2);
    in.may_read = true;
    assert_int_equal(ck_rawin_bio_read(&in, p[0], b, got, sizeof got), 2);
    assert_false(BIO_should_retry(b));
    assert_int_equal(ck_rawin_bio_ctrl(&in, BIO_CTRL_FLUSH), 1);
    assert_int_equal(ck_rawin_bio_ctrl(&in, BIO_CTRL_EOF), 0);
    close(p[1]);
    in.may_read = true;
    assert_int_equal(ck_rawin_bio_read(&in, p[0], b, got, sizeof got), 0);
    assert_int_equal(ck_rawin_bio_ctrl(&in, BIO_CTRL_EOF), 1);
    assert_int_equal(ck_rawin_bio_ctrl(&in, BIO_CTRL_PENDING), 0);
    BIO_free(b);
    close(p[0]);
    ck_rawin_free(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_take_pieces_and_wakes),
        cmocka_unit_test(test_read_error),
        cmocka_unit_test(test_bio_callbacks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
