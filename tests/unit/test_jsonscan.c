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
        /* numbers: integers built here; reals, exponents and leading zeros left to jansson */
        {"-12", "-12"}, {"-0", "0"}, {"[0,-7]", "[0,-7]"}, {"01", NULL}, {"-", NULL},
        {"-x", NULL}, {"1e5", NULL}, {"1E+2", NULL}, {"-0.0e-0", NULL},
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

/* Syntax errors in Go's encoding/json words (upstream's apiserver reads apiVersion and kind with
 * it, so these are the messages of a create with a bad body).  NULL: valid JSON. */
static void test_go_errors(void **state)
{
    static const struct { const char *text; const char *want; } cases[] = {
        {"{}", NULL}, {" [1, -2.5e+3, \"\\u00e9\", true, false, null] ", NULL}, {"0", NULL},
        {"\"\xff\"", NULL},   /* Go's scanner does not check UTF-8 */
        {"", "unexpected end of JSON input"},
        {"   ", "unexpected end of JSON input"},
        {"{\"a\":", "unexpected end of JSON input"},
        {"{\"a\":1", "unexpected end of JSON input"},
        {"[1,2", "unexpected end of JSON input"},
        {"\"abc", "unexpected end of JSON input"},
        {"-", "invalid character ' ' in numeric literal"},
        {"1.", "invalid character ' ' after decimal point in numeric literal"},
        {"{\"a\" 1}", "invalid character '1' after object key"},
        {"{\"a\":1 \"b\":2}", "invalid character '\"' after object key:value pair"},
        {"[1 2]", "invalid character '2' after array element"},
        {"{\"a\":1,}", "invalid character '}' looking for beginning of object key string"},
        {"{'a':1}", "invalid character '\\'' looking for beginning of object key string"},
        {"[,]", "invalid character ',' looking for beginning of value"},
        {"{\"a\":1} x", "invalid character 'x' after top-level value"},
        {"{\"a\":tru}", "invalid character '}' in literal true (expecting 'e')"},
        {"nul", "invalid character ' ' in literal null (expecting 'l')"},
        {"fals3", "invalid character '3' in literal false (expecting 'e')"},
        {"{\"a\":-x}", "invalid character 'x' in numeric literal"},
        {"{\"a\":1.e5}", "invalid character 'e' after decimal point in numeric literal"},
        {"{\"a\":1e}", "invalid character '}' in exponent of numeric literal"},
        {"{\"a\":01}", "invalid character '1' after object key:value pair"},
        {"{\"a\":\"\\q\"}", "invalid character 'q' in string escape code"},
        {"{\"a\":\"\\u12g4\"}", "invalid character 'g' in \\u hexadecimal character escape"},
        {"{\"a\":\"x\ny\"}", "invalid character '\\n' in string literal"},
        {"{\"a\":\"x\x01\"}", "invalid character '\\x01' in string literal"},
        {"\x7f", "invalid character '\\x7f' looking for beginning of value"},
        {"\\", "invalid character '\\\\' looking for beginning of value"},
        {"\xc3\xa9", "invalid character '\xc3\x83' looking for beginning of value"},
        {"\x85", "invalid character '\\u0085' looking for beginning of value"},
        {"\xad", "invalid character '\\u00ad' looking for beginning of value"},
        {"[[[[", "unexpected end of JSON input"},
        /* numbers at the edges, as encoding/json's scanner (state0/state1/stateDot0/stateE...) */
        {"-0.0e-0", NULL}, {"0e0", NULL}, {"1E+5", NULL}, {"1e-0", NULL}, {"0.5E10", NULL},
        {"[-0,0.0,1e1,1.5e+2]", NULL}, {"1e999999999999999999", NULL},   /* grammar only */
        {"123456789012345678901234567890", NULL}, {"-123456789.123456789e-999", NULL},
        {"00", "invalid character '0' after top-level value"},
        {"-01", "invalid character '1' after top-level value"},
        {"01.5", "invalid character '1' after top-level value"},
        {"[00]", "invalid character '0' after array element"},
        {"--1", "invalid character '-' in numeric literal"},
        {"-.5", "invalid character '.' in numeric literal"},
        {"[-]", "invalid character ']' in numeric literal"},
        {"-Infinity", "invalid character 'I' in numeric literal"},
        {".5", "invalid character '.' looking for beginning of value"},
        {"+1", "invalid character '+' looking for beginning of value"},
        {"NaN", "invalid character 'N' looking for beginning of value"},
        {"0.", "invalid character ' ' after decimal point in numeric literal"},
        {"[0.]", "invalid character ']' after decimal point in numeric literal"},
        {"1.5.2", "invalid character '.' after top-level value"},
        {"0.e1", "invalid character 'e' after decimal point in numeric literal"},
        {"1e", "invalid character ' ' in exponent of numeric literal"},
        {"1E+", "invalid character ' ' in exponent of numeric literal"},
        {"1.5e-", "invalid character ' ' in exponent of numeric literal"},
        {"1e+-5", "invalid character '-' in exponent of numeric literal"},
        {"1ee5", "invalid character 'e' in exponent of numeric literal"},
        {"[1E]", "invalid character ']' in exponent of numeric literal"},
        {"1e5.5", "invalid character '.' after top-level value"},
        {"1e5e5", "invalid character 'e' after top-level value"},
        {"0.1e1.", "invalid character '.' after top-level value"},
        {"0x10", "invalid character 'x' after top-level value"},
        {"]", "invalid character ']' looking for beginning of value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].text);
        const char *t = dup_exact(cases[i].text, n);
        char out[160];
        bool bad = ck_jsonscan_go_error(t, t + n, out, sizeof out);
        if (bad != (cases[i].want != NULL) || (bad && strcmp(out, cases[i].want)))
            fail_msg("case %zu (%s): got %s, want %s", i, cases[i].text, bad ? out : "valid",
                     cases[i].want ? cases[i].want : "valid");
        free((void *)t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_skip),
        cmocka_unit_test(test_ws_and_string),
        cmocka_unit_test(test_value),
        cmocka_unit_test(test_go_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
