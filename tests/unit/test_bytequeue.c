/* Unit tests for src/lib/bytequeue.c: reserve/commit/consume round trips, a partial consume and
 * the front moved away only when the end has no room, growth by doubling from 64 KiB, growth
 * past the limit refused with CK_E_TOO_LARGE and nothing changed, reset keeping the buffer, large
 * appends, free, and sending to a non-blocking socket (a full socket, the rest later, every
 * byte in order; a send error keeps the bytes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/bytequeue.h"

static void test_reserve_commit_consume(void **state)
{
    (void)state;
    ck_bytequeue q;
    ck_bytequeue_init(&q, 1u << 20);
    assert_null(q.buf);                              /* nothing allocated until used */
    assert_int_equal(ck_bytequeue_pending(&q), 0);
    ck_error *e = NULL;
    char *p = ck_bytequeue_reserve(&q, 5, &e);
    assert_non_null(p);
    assert_null(e);
    assert_int_equal(q.cap, CK_BYTEQUEUE_FIRST);
    memcpy(p, "hello", 5);
    assert_int_equal(ck_bytequeue_pending(&q), 0);   /* reserved is not pending */
    ck_bytequeue_commit(&q, 5);
    assert_int_equal(ck_bytequeue_pending(&q), 5);
    assert_memory_equal(ck_bytequeue_data(&q), "hello", 5);
    /* a reserve larger than what is then committed: only the commit counts */
    p = ck_bytequeue_reserve(&q, 100, &e);
    assert_non_null(p);
    assert_ptr_equal(p, q.buf + 5);
    memcpy(p, " world", 6);
    ck_bytequeue_commit(&q, 6);
    assert_int_equal(ck_bytequeue_pending(&q), 11);
    assert_memory_equal(ck_bytequeue_data(&q), "hello world", 11);
    ck_bytequeue_consume(&q, 11);
    assert_int_equal(ck_bytequeue_pending(&q), 0);
    /* emptied: the next reserve starts at the buffer's start again */
    p = ck_bytequeue_reserve(&q, 1, &e);
    assert_ptr_equal(p, q.buf);
    assert_int_equal(q.off, 0);
    ck_bytequeue_free(&q);
    assert_null(q.buf);
    assert_int_equal(q.cap, 0);
    assert_int_equal(q.limit, 1u << 20);             /* reusable after free */
}

static void test_partial_consume_and_move(void **state)
{
    (void)state;
    ck_bytequeue q;
    ck_bytequeue_init(&q, 1u << 20);
    char big[CK_BYTEQUEUE_FIRST];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 7);
    assert_int_equal(ck_bytequeue_append(&q, big, sizeof big - 10, NULL), 0);
    ck_bytequeue_consume(&q, 1000);                  /* partial: the rest stays in order */
    assert_int_equal(ck_bytequeue_pending(&q), sizeof big - 1010);
    assert_memory_equal(ck_bytequeue_data(&q), big + 1000, 100);
    /* 10 more fit at the end: nothing moves */
    char *buf = q.buf;
    assert_int_equal(ck_bytequeue_append(&q, "0123456789", 10, NULL), 0);
    assert_int_equal(q.off, 1000);
    assert_ptr_equal(q.buf, buf);
    /* 500 more do not fit at the end but do once the taken front is gone: moved, not grown */
    char more[500];
    memset(more, 'm', sizeof more);
    assert_int_equal(ck_bytequeue_append(&q, more, sizeof more, NULL), 0);
    assert_int_equal(q.off, 0);
    assert_int_equal(q.cap, CK_BYTEQUEUE_FIRST);
    assert_int_equal(ck_bytequeue_pending(&q), sizeof big - 1010 + 10 + 500);
    assert_memory_equal(ck_bytequeue_data(&q), big + 1000, sizeof big - 1010);
    assert_memory_equal(ck_bytequeue_data(&q) + sizeof big - 1010, "0123456789", 10);
    assert_memory_equal(ck_bytequeue_data(&q) + sizeof big - 1000, more, sizeof more);
    ck_bytequeue_free(&q);
}

static void test_growth_and_limit(void **state)
{
    (void)state;
    ck_bytequeue q;
    ck_bytequeue_init(&q, 4 * CK_BYTEQUEUE_FIRST);
    ck_error *e = NULL;
    assert_non_null(ck_bytequeue_reserve(&q, CK_BYTEQUEUE_FIRST + 1, &e));
    assert_int_equal(q.cap, 2 * CK_BYTEQUEUE_FIRST);   /* doubled from 64 KiB */
    ck_bytequeue_commit(&q, CK_BYTEQUEUE_FIRST + 1);
    /* up to the limit exactly: allowed */
    assert_non_null(ck_bytequeue_reserve(&q, 3 * CK_BYTEQUEUE_FIRST - 1, &e));
    assert_null(e);
    assert_int_equal(q.cap, 4 * CK_BYTEQUEUE_FIRST);
    ck_bytequeue_commit(&q, 3 * CK_BYTEQUEUE_FIRST - 1);
    assert_int_equal(ck_bytequeue_pending(&q), 4 * CK_BYTEQUEUE_FIRST);
    /* one byte past it: refused, nothing changed */
    char *buf = q.buf;
    assert_null(ck_bytequeue_reserve(&q, 1, &e));
    assert_non_null(e);
    assert_int_equal(e->code, CK_E_TOO_LARGE);
    ck_error_free(e);
    e = NULL;
    assert_int_equal(ck_bytequeue_append(&q, "x", 1, &e), -1);
    assert_non_null(e);
    assert_int_equal(e->code, CK_E_TOO_LARGE);
    ck_error_free(e);
    assert_null(ck_bytequeue_reserve(&q, SIZE_MAX, NULL));   /* no overflow; NULL err allowed */
    assert_ptr_equal(q.buf, buf);
    assert_int_equal(ck_bytequeue_pending(&q), 4 * CK_BYTEQUEUE_FIRST);
    /* once the front is taken, the same byte fits without growing */
    ck_bytequeue_consume(&q, 1);
    assert_int_equal(ck_bytequeue_append(&q, "x", 1, NULL), 0);
    assert_int_equal(q.cap, 4 * CK_BYTEQUEUE_FIRST);
    ck_bytequeue_free(&q);
}

static void test_limit_between_doublings(void **state)
{
    (void)state;
    /* a limit that is not 64 KiB times a power of two: growth stops at the last doubling
     * under it, as the relay's and the pump's own copies did */
    ck_bytequeue q;
    ck_bytequeue_init(&q, 3 * CK_BYTEQUEUE_FIRST);
    assert_int_equal(ck_bytequeue_append(&q, "a", 1, NULL), 0);
    assert_non_null(ck_bytequeue_reserve(&q, 2 * CK_BYTEQUEUE_FIRST - 1, NULL));
    assert_int_equal(q.cap, 2 * CK_BYTEQUEUE_FIRST);
    assert_null(ck_bytequeue_reserve(&q, 2 * CK_BYTEQUEUE_FIRST, NULL));
    assert_int_equal(q.cap, 2 * CK_BYTEQUEUE_FIRST);
    ck_bytequeue_free(&q);
}

static void test_reset_keeps_buffer(void **state)
{
    (void)state;
    ck_bytequeue q;
    ck_bytequeue_init(&q, 1u << 20);
    assert_int_equal(ck_bytequeue_append(&q, "abcdef", 6, NULL), 0);
    ck_bytequeue_consume(&q, 2);
    char *buf = q.buf;
    ck_bytequeue_reset(&q);
    assert_int_equal(ck_bytequeue_pending(&q), 0);
    assert_ptr_equal(q.buf, buf);
    assert_int_equal(q.cap, CK_BYTEQUEUE_FIRST);
    assert_int_equal(ck_bytequeue_append(&q, "xy", 2, NULL), 0);
    assert_memory_equal(ck_bytequeue_data(&q), "xy", 2);
    assert_int_equal(ck_bytequeue_append(&q, NULL, 0, NULL), 0);   /* nothing: no change */
    assert_int_equal(ck_bytequeue_pending(&q), 2);
    ck_bytequeue_free(&q);
}

static void test_large_appends(void **state)
{
    (void)state;
    ck_bytequeue q;
    ck_bytequeue_init(&q, 64u << 20);
    size_t piece = 3u << 20;   /* 3 MiB pieces: 64 KiB -> 4 MiB -> 8 MiB -> 16 MiB */
    char *data = malloc(piece);
    assert_non_null(data);
    size_t total = 0;
    for (int i = 0; i < 5; i++) {
        memset(data, 'a' + i, piece);
        assert_int_equal(ck_bytequeue_append(&q, data, piece, NULL), 0);
        total += piece;
    }
    assert_int_equal(ck_bytequeue_pending(&q), total);
    assert_int_equal(q.cap, 16u << 20);
    /* taken in odd pieces, every byte in order */
    size_t at = 0;
    while (ck_bytequeue_pending(&q)) {
        size_t n = ck_bytequeue_pending(&q) < 1000003 ? ck_bytequeue_pending(&q) : 1000003;
        const char *d = ck_bytequeue_data(&q);
        assert_int_equal(d[0], 'a' + (int)(at / piece));
        assert_int_equal(d[n - 1], 'a' + (int)((at + n - 1) / piece));
        ck_bytequeue_consume(&q, n);
        at += n;
    }
    assert_int_equal(at, total);
    free(data);
    ck_bytequeue_free(&q);
}

static void test_send_to_socket(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    ck_bytequeue q;
    ck_bytequeue_init(&q, 8u << 20);
    unsigned sends = 0;
    assert_int_equal(ck_bytequeue_send(&q, sv[0], &sends, NULL), 1);   /* empty: no send */
    assert_int_equal(sends, 0);
    size_t total = 4u << 20;   /* far more than a unix socket buffers */
    char *data = malloc(total);
    assert_non_null(data);
    for (size_t i = 0; i < total; i++)
        data[i] = (char)(i * 13 + i / 1000);
    assert_int_equal(ck_bytequeue_append(&q, data, total, NULL), 0);
    assert_int_equal(ck_bytequeue_send(&q, sv[0], &sends, NULL), 0);   /* the socket is full */
    assert_true(sends >= 1);
    assert_true(ck_bytequeue_pending(&q) > 0);
    assert_true(ck_bytequeue_pending(&q) < total);
    char *got = malloc(total);
    assert_non_null(got);
    size_t at = 0;
    int rc = 0;
    while (at < total) {
        ssize_t n = read(sv[1], got + at, total - at);
        assert_true(n > 0);
        at += (size_t)n;
        if (rc != 1)
            rc = ck_bytequeue_send(&q, sv[0], &sends, NULL);
    }
    assert_int_equal(rc, 1);
    assert_int_equal(ck_bytequeue_pending(&q), 0);
    assert_int_equal(q.off, 0);   /* reset once all was sent */
    assert_memory_equal(got, data, total);
    /* the peer gone: an error, the bytes kept */
    close(sv[1]);
    assert_int_equal(ck_bytequeue_append(&q, "tail", 4, NULL), 0);
    ck_error *e = NULL;
    assert_int_equal(ck_bytequeue_send(&q, sv[0], &sends, &e), -1);
    assert_non_null(e);
    assert_int_equal(e->code, CK_E_IO);
    ck_error_free(e);
    assert_int_equal(ck_bytequeue_pending(&q), 4);
    close(sv[0]);
    free(got);
    free(data);
    ck_bytequeue_free(&q);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);   /* (send uses MSG_NOSIGNAL; in case a platform ignores it) */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserve_commit_consume),
        cmocka_unit_test(test_partial_consume_and_move),
        cmocka_unit_test(test_growth_and_limit),
        cmocka_unit_test(test_limit_between_doublings),
        cmocka_unit_test(test_reset_keeps_buffer),
        cmocka_unit_test(test_large_appends),
        cmocka_unit_test(test_send_to_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
