/* test_jsonscan - the shared lexer's skippers: where they stop, and that they never read past
 * the end (each text is copied into an exact-size heap block, so ASan sees an overread). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/jsonscan.h"

/* -1: NULL expected; else the offset the skipper returns */
static const struct { const char *text; long skip; } skips[] = {
    {"\"abc\",", 5}, {"\"a\\\"b\"}", 6}, {"\"a\\\\\"x", 5}, {"\"abc", -1}, {"\"a\\\"", -1},
    {"{\"k\":[1,{\"x\":\"}\"}]} ,", 19}, {"[[[]]", -1}, {"[]]", 2}, {"{\"k\":\"", -1},
    {"123,", 3}, {"true}", 4}, {"-1.5e3 ", 6}, {"null\t", 4}, {",", -1}, {"", -1}, {"x", 1},
};

static const char *dup_exact(const char *s, size_t n)
{
    char *c = malloc(n ? n : 1);
    assert_non_null(c);
    memcpy(c, s, n);
    return c;
}

static void test_skip(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof skips / sizeof skips[0]; i++) {
        size_t n = strlen(skips[i].text);
        const char *t = dup_exact(skips[i].text, n);
        const char *e = ck_jsonscan_skip(t, t + n);
        if (skips[i].skip < 0 ? e != NULL : (!e || e - t != skips[i].skip))
            fail_msg("%zu %s: got %ld", i, skips[i].text, e ? (long)(e - t) : -1L);
        free((void *)t);
    }
}

static void test_ws_and_string(void **state)
{
    (void)state;
    const char *t = dup_exact(" \t\r\n", 4);
    assert_ptr_equal(ck_jsonscan_ws(t, t + 4), t + 4);
    free((void *)t);
    t = dup_exact(" x", 2);
    assert_ptr_equal(ck_jsonscan_ws(t, t + 2), t + 1);
    free((void *)t);
    t = dup_exact("\"\\\\\\\"\"", 6);          /* "\\\"" : backslash, quote */
    assert_ptr_equal(ck_jsonscan_string(t, t + 6), t + 6);
    assert_null(ck_jsonscan_string(t, t + 5));
    free((void *)t);
}

static void test_value(void **state)
{
    (void)state;
    static const struct { const char *text; const char *want; } cases[] = {
        {"{\"a\":[1,-2,true,false,null],\"b\":\"x\\ny\"}", "{\"a\":[1,-2,true,false,null],\"b\":\"x\\ny\"}"},
        {"\"caf\xc3\xa9\"", "\"caf\xc3\xa9\""},
        {"1.5", NULL}, {"\"\\u0041\"", NULL}, {"\"\xff\"", NULL}, {"[1,]", NULL}, {"[1", NULL},
        {"1234567890123456789", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].text);
        const char *t = dup_exact(cases[i].text, n);
        ck_jsonscan l = {.p = t, .end = t + n};
        json_t *v = ck_jsonscan_value(&l);
        ck_jsonscan_done(&l);
        if (!cases[i].want) {
            assert_null(v);
        } else {
            assert_non_null(v);
            assert_ptr_equal(l.p, t + n);
            char *d = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            assert_string_equal(d, cases[i].want);
            free(d);
            json_decref(v);
        }
        free((void *)t);
    }
    /* nesting past the bound is declined, not recursed into */
    size_t deep = CK_JSONSCAN_MAX_DEPTH + 10;
    char *t = malloc(2 * deep);
    assert_non_null(t);
    memset(t, '[', deep);
    memset(t + deep, ']', deep);
    ck_jsonscan l = {.p = t, .end = t + 2 * deep};
    assert_null(ck_jsonscan_value(&l));
    assert_int_equal(l.depth, 0);
    assert_ptr_equal(ck_jsonscan_skip(t, t + 2 * deep), t + 2 * deep);
    ck_jsonscan_done(&l);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_skip),
        cmocka_unit_test(test_ws_and_string),
        cmocka_unit_test(test_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
