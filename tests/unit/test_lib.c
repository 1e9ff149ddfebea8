/* Unit tests for lib/util, lib/error and lib/flags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/base64.h"
#include "lib/error.h"
#include "lib/flags.h"
#include "lib/util.h"

static void test_buf_limit(void **state)
{
    ck_buf b;
    ck_buf_init(&b, 8);
    assert_int_equal(ck_buf_addstr(&b, "hello"), 0);
    assert_int_equal(ck_buf_addstr(&b, "abc"), 0);
    assert_int_equal(ck_buf_addstr(&b, "x"), -1);   /* past the limit: refused, not grown */
    assert_string_equal(b.data, "helloabc");
    ck_buf_free(&b);
}

static void test_error_table(void **state)
{
    assert_int_equal(ck_error_http_status(CK_E_NOT_FOUND), 404);
    assert_string_equal(ck_error_reason(CK_E_EXISTS), "AlreadyExists");
    assert_int_equal(ck_error_http_status(CK_E_EXPIRED), 410);
    ck_error *e = NULL;
    assert_int_equal(ck_error_set(&e, CK_E_CONFLICT, "key %s", "a"), -1);
    ck_error_wrap(&e, "update");
    assert_string_equal(e->msg, "update: key a");
    assert_int_equal(e->code, CK_E_CONFLICT);
    /* passed up: into the caller's out-parameter, or freed when there is none (ASan: no leak) */
    ck_error *up = NULL;
    assert_int_equal(ck_error_pass(&up, e), -1);
    assert_ptr_equal(up, e);
    e = NULL;                     /* up owns it now (ck_error_set would free an old *e) */
    ck_error_set(&e, CK_E_INTERNAL, "dropped");
    assert_int_equal(ck_error_pass(NULL, e), -1);
    ck_error_free(up);
}

static void test_duration(void **state)
{
    assert_int_equal(ck_parse_duration_ms("10s"), 10000);
    assert_int_equal(ck_parse_duration_ms("1m30s"), 90000);
    assert_int_equal(ck_parse_duration_ms("250ms"), 250);
    assert_int_equal(ck_parse_duration_ms("abc"), -1);
    assert_int_equal(ck_parse_duration_ms(""), -1);
    /* out of range or NaN: refused before the double -> long cast (undefined behaviour) */
    assert_int_equal(ck_parse_duration_ms("1e300h"), -1);
    assert_int_equal(ck_parse_duration_ms("nans"), -1);
    assert_int_equal(ck_parse_duration_ms("infs"), -1);
    assert_int_equal(ck_parse_duration_ms("-5s"), -1);
    assert_int_equal(ck_parse_duration_ms("999999999h999999999h"), -1);
    assert_int_equal(ck_parse_duration_ms("24h"), 86400000);
}

static void test_rfc3339(void **state)
{
    char out[32];
    ck_rfc3339(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00Z");
    int64_t t;
    assert_int_equal(ck_parse_rfc3339("2026-11-25T16:50:52Z", &t), 0);
    ck_rfc3339(t, out);
    assert_string_equal(out, "2026-11-25T16:50:52Z");
    assert_int_equal(ck_parse_rfc3339("2026-11-25T17:50:52+01:00", &t), 0);
    ck_rfc3339(t, out);
    assert_string_equal(out, "2026-11-25T16:50:52Z");
    assert_int_equal(ck_parse_rfc3339("yesterday", &t), -1);
}

static void test_utf8(void **state)
{
    static const struct { const char *in; bool valid; const char *clean; } cases[] = {
        {"plain", true, "plain"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", true, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"a\xff" "b", false, "a\xef\xbf\xbd" "b"},
        {"\xc0\xaf", false, "\xef\xbf\xbd\xef\xbf\xbd"},                 /* overlong '/' */
        {"\xe2\x82", false, "\xef\xbf\xbd\xef\xbf\xbd"},                 /* truncated */
        {"\xed\xa0\x80", false, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate */
        {"\xf4\x90\x80\x80", false,
         "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},          /* > U+10FFFF */
        {"", true, ""},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        assert_int_equal(ck_utf8_valid(cases[i].in, strlen(cases[i].in)), cases[i].valid);
        cleanup_free char *c = ck_utf8_sanitize(cases[i].in);
        assert_string_equal(c, cases[i].clean);
        assert_true(ck_utf8_valid(c, strlen(c)));
    }
}

/* RFC 4648 vectors in the URL alphabet, unpadded; decoding rejects the standard alphabet. */
static void test_b64url(void **state)
{
    (void)state;
    static const struct { const char *plain, *enc; } cases[] = {
        {"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"}, {"foob", "Zm9vYg"},
        {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}, {"\xfb\xff", "-_8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_buf b;
        ck_buf_init(&b, 0);
        assert_int_equal(ck_b64url_encode(&b, cases[i].plain, strlen(cases[i].plain)), 0);
        char *enc = ck_buf_steal(&b);
        assert_string_equal(enc, cases[i].enc);
        free(enc);
        size_t n = 99;
        unsigned char *dec = ck_b64url_decode(cases[i].enc, strlen(cases[i].enc), &n);
        assert_non_null(dec);
        assert_int_equal(n, strlen(cases[i].plain));
        assert_memory_equal(dec, cases[i].plain, n);
        assert_int_equal(dec[n], 0);
        free(dec);
    }
    size_t n;
    unsigned char *dec = ck_b64url_decode("Zm8=", 4, &n);   /* padding tolerated */
    assert_non_null(dec);
    assert_int_equal(n, 2);
    free(dec);
    assert_null(ck_b64url_decode("+/8", 3, &n));
    assert_null(ck_b64url_decode("Zm 8", 4, &n));
    assert_null(ck_b64url_decode("Zm\0", 3, &n));
    ck_buf small;
    ck_buf_init(&small, 3);
    assert_int_equal(ck_b64url_encode(&small, "foobar", 6), -1);
    ck_buf_free(&small);
}

/* RFC 4648 vectors in the standard alphabet, padded; bad input is refused. */
static void test_b64_std(void **state)
{
    (void)state;
    static const struct { const char *plain, *enc; } cases[] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}, {"\xfb\xff", "+/8="},
        {"user:pa:ss", "dXNlcjpwYTpzcw=="},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *enc = ck_b64_encode(cases[i].plain, strlen(cases[i].plain));
        assert_string_equal(enc, cases[i].enc);
        free(enc);
        size_t n = 99;
        unsigned char *dec = ck_b64_decode(cases[i].enc, &n);
        assert_non_null(dec);
        assert_int_equal(n, strlen(cases[i].plain));
        assert_memory_equal(dec, cases[i].plain, n);
        assert_int_equal(dec[n], 0);
        free(dec);
    }
    size_t n;
    assert_null(ck_b64_decode("Zm9", &n));      /* not a multiple of 4 */
    assert_null(ck_b64_decode("Zm-_", &n));     /* URL alphabet */
}

/* kubeconfig "*-data" fields and etcd's gateway: either alphabet, whitespace, padding optional */
static void test_b64_lenient(void **state)
{
    (void)state;
    static const struct { const char *enc; const char *plain; size_t len; } ok[] = {
        {"", "", 0}, {"Zg==", "f", 1}, {"Zg", "f", 1}, {"Zm9v\nYmFy\n", "foobar", 6},
        {" Zm9v Yg ", "foob", 4}, {"+/8=", "\xfb\xff", 2}, {"-_8", "\xfb\xff", 2},
        {"AAE=", "\0\1", 2},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        size_t n = 99;
        unsigned char *dec = ck_b64_decode_lenient(ok[i].enc, strlen(ok[i].enc), &n);
        assert_non_null(dec);
        assert_int_equal(n, ok[i].len);
        assert_memory_equal(dec, ok[i].plain, n);
        assert_int_equal(dec[n], 0);
        free(dec);
    }
    static const char *bad[] = {"Zm9v!", "Z", "Zm9vY", "Zm\x80v"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n;
        assert_null(ck_b64_decode_lenient(bad[i], strlen(bad[i]), &n));
    }
}

/* the value checks of string flags (their error lines go to stderr) */
static void test_flag_values(void **state)
{
    (void)state;
    static const struct { int kind; const char *v; bool good; } cases[] = {
        {0, "127.0.0.1", true}, {0, "::1", true}, {0, "fd00::10", true}, {0, "bogus", false},
        {0, "", false}, {0, "127.0.0.1/8", false}, {0, "1.2.3.256", false},
        {1, "10.244.0.0/16", true}, {1, "fd00::/64", true}, {1, "10.96.0.0/12,fd00:96::/108", true},
        {1, "10.0.0.0/33", false}, {1, "fd00::/129", false}, {1, "10.0.0.0", false},
        {1, "10.0.0.0/", false}, {1, "10.0.0.0/-1", false}, {1, "10.0.0.0/8x", false},
        {1, "bogus/8", false}, {1, "10.0.0.0/8,", false}, {1, ",10.0.0.0/8", false},
        {1, "10.0.0.0/8,10.1.0.0/16,10.2.0.0/16", false},
        {1, "1111:2222:3333:4444:5555:6666:7777:8888:9999/64", false},
        {2, "4", true}, {2, "500m", true}, {2, "32Gi", true}, {2, "0", true}, {2, "abc", false},
        {2, "4Zz", false}, {2, "-1", false}, {2, "", false},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        bool got = cases[i].kind == 0   ? ck_flags_check_ip("t", "f", cases[i].v)
                   : cases[i].kind == 1 ? ck_flags_check_cidrs("t", "f", cases[i].v)
                                        : ck_flags_check_quantity("t", "f", cases[i].v);
        if (got != cases[i].good)
            fail_msg("check %d of \"%s\": got %d", cases[i].kind, cases[i].v, got);
    }
}

static void test_flags(void **state)
{
    char *name = NULL;
    long port = 0;
    bool flag = false;
    ck_flag flags[] = {
        {"name", CK_FLAG_STRING, &name, "a name"},
        {"port", CK_FLAG_INT, &port, "a port"},
        {"on", CK_FLAG_BOOL, &flag, "a switch"},
    };
    char *argv[] = {"x", "pos1", "--name=a", "--port", "42", "--on", "pos2", NULL};
    int n = ck_flags_parse("x", "test", 7, argv, flags, 3);
    assert_int_equal(n, 2);
    assert_string_equal(argv[0], "pos1");
    assert_string_equal(argv[1], "pos2");
    assert_string_equal(name, "a");
    assert_int_equal(port, 42);
    assert_true(flag);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_limit),
        cmocka_unit_test(test_error_table),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_flag_values),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_b64_std),
        cmocka_unit_test(test_b64_lenient),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
