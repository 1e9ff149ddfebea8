/* Unit tests for lib/jsonfilter: the text cut and the tree cut give the same value, malformed text
 * is refused (never read past its end), and the output never outgrows the input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/jsonfilter.h"

static const char pod_spec[] =
    "{\"kind\": true, \"metadata\": {\"*\": true, \"managedFields\": false},"
    " \"spec\": {\"nodeName\": true, \"containers\": {\"name\": true, \"ports\": true}},"
    " \"status\": {\"phase\": true, \"conditions\": {\"type\": true, \"status\": true}}}";

static const struct {
    const char *spec, *in, *want;
} cases[] = {
    /* members kept, dropped, and by "*" */
    {pod_spec,
     "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"a\",\"managedFields\":[{\"x\":{\"y\":[1,2,{}]}}],"
     "\"labels\":{\"app\":\"w\"}},\"spec\":{\"nodeName\":\"n1\",\"containers\":[{\"name\":\"c\",\"image\":\"i\","
     "\"ports\":[{\"containerPort\":80}]},{\"name\":\"d\"}],\"volumes\":[]},\"status\":{\"phase\":\"Running\","
     "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"message\":\"} ] \\\" {\"}],\"podIP\":\"1.2.3.4\"}}",
     "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\",\"labels\":{\"app\":\"w\"}},\"spec\":{\"nodeName\":\"n1\","
     "\"containers\":[{\"name\":\"c\",\"ports\":[{\"containerPort\":80}]},{\"name\":\"d\"}]},\"status\":{\"phase\":"
     "\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}"},
    /* whitespace everywhere, numbers, literals, empty containers */
    {"{\"a\": true, \"b\": {\"c\": true}}",
     " { \"a\" : [ 1 , -2.5e3 , true , null ] , \"z\" : { } , \"b\" : { \"c\" : false , \"d\" : 1 } } ",
     "{\"a\":[ 1 , -2.5e3 , true , null ],\"b\":{\"c\":false}}"},
    /* a spec object against a scalar or an array of scalars keeps them */
    {"{\"a\": {\"x\": true}}", "{\"a\":[1,\"s\",{\"x\":1,\"y\":2}],\"b\":1}", "{\"a\":[1,\"s\",{\"x\":1}]}"},
    /* the watch wrapper: everything but the object's dropped members */
    {"{\"*\": true, \"object\": {\"metadata\": {\"name\": true}}}",
     "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"p\",\"uid\":\"u\"},\"spec\":{}}}",
     "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"p\"}}}"},
    /* a filter that keeps nothing */
    {"{}", "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"}}", "{}"},
    /* an escaped member name is never matched by name: it follows "*" */
    {"{\"*\": false, \"a\": true}", "{\"\\u0061\":1,\"a\":2}", "{\"a\":2}"},
};

static void test_filter_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *spec = json_loads(cases[i].spec, 0, NULL);
        assert_non_null(spec);
        size_t n = 0;
        char *out = ck_json_filter(cases[i].in, strlen(cases[i].in), spec, &n);
        assert_non_null(out);
        assert_int_equal(n, strlen(out));
        assert_true(n <= strlen(cases[i].in));
        assert_string_equal(out, cases[i].want);
        /* the text cut decodes to the same value as the tree cut of the whole text (the
         * escaped-name case aside: the tree cut matches decoded names) */
        json_t *a = json_loads(out, 0, NULL), *b = json_loads(cases[i].in, 0, NULL);
        assert_non_null(a);
        assert_non_null(b);
        ck_json_filter_tree(b, spec);
        if (!strstr(cases[i].in, "\\u0061"))
            assert_true(json_equal(a, b));
        json_decref(a);
        json_decref(b);
        free(out);
        json_decref(spec);
    }
}

static void test_filter_malformed(void **state)
{
    (void)state;
    json_t *spec = json_loads(pod_spec, 0, NULL);
    static const char *const bad[] = {
        "", "{", "{\"kind\"", "{\"kind\":", "{\"kind\":\"Pod\"", "{\"kind\":\"Pod\",}x",
        "{\"metadata\":{\"name\":\"a\\", "{\"spec\":[1,2", "{\"kind\":\"P\"} trailing", "[1,2",
        "{\"managedFields\":[[[[", "{\"kind\" \"Pod\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = 0;
        /* exact-length copies, so a read past the end is caught under ASan */
        size_t len = strlen(bad[i]);
        char *in = malloc(len ? len : 1);
        memcpy(in, bad[i], len);
        assert_null(ck_json_filter(in, len, spec, &n));
        free(in);
    }
    json_decref(spec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_cases),
        cmocka_unit_test(test_filter_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
