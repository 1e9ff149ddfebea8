/* Unit tests for apiserver/codec: JSON with duplicate detection, YAML (YAML 1.1 scalars as
 * sigs.k8s.io/yaml resolves them), content-type dispatch, and hostile inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "apiserver/codec.h"
#include "lib/util.h"

static void assert_json_eq(const json_t *got, const char *want, const char *what)
{
    json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);
    if (!w)
        fail_msg("%s: bad expected JSON %s", what, want);
    if (!json_equal(got, w)) {
        char *g = json_dumps(got, JSON_ENCODE_ANY | JSON_SORT_KEYS | JSON_COMPACT);
        fail_msg("%s: got %s want %s", what, g ? g : "NULL", want);
    }
    json_decref(w);
}

static const struct { const char *yaml, *json; } yaml_cases[] = {
    {"a: 1\nb: two\n", "{\"a\":1,\"b\":\"two\"}"},
    {"a: \"1\"\nb: '2'\n", "{\"a\":\"1\",\"b\":\"2\"}"},
    {"a: true\nb: yes\nc: on\nd: y\ne: False\nf: no\ng: off\nh: N\n",
     "{\"a\":true,\"b\":true,\"c\":true,\"d\":true,\"e\":false,\"f\":false,\"g\":false,\"h\":false}"},
    {"a: null\nb: ~\nc:\nd: Null\n", "{\"a\":null,\"b\":null,\"c\":null,\"d\":null}"},
    {"a: 0x1F\nb: 0o17\nc: 017\nd: 0b101\ne: -12\nf: +7\ng: 1_000\n",
     "{\"a\":31,\"b\":15,\"c\":15,\"d\":5,\"e\":-12,\"f\":7,\"g\":1000}"},
    {"a: 1.5\nb: 1.0\nc: 1e3\nd: .5\ne: -2.25e-1\n", "{\"a\":1.5,\"b\":1,\"c\":1000,\"d\":0.5,\"e\":-0.225}"},
    /* "08" is not octal but matches go-yaml v2's float pattern: 8 */
    {"a: 1.2.3\nb: 08\nc: 2024-01-02\nd: 10.0.0.1\ne: '0x10'\n",
     "{\"a\":\"1.2.3\",\"b\":8,\"c\":\"2024-01-02\",\"d\":\"10.0.0.1\",\"e\":\"0x10\"}"},
    {"a: !!str 123\nb: !!int \"42\"\n", "{\"a\":\"123\",\"b\":42}"},
    {"a: |\n  line1\n  line2\nb: >\n  folded\n  text\n", "{\"a\":\"line1\\nline2\\n\",\"b\":\"folded text\\n\"}"},
    {"- 1\n- [a, b]\n- {x: y}\n", "[1,[\"a\",\"b\"],{\"x\":true}]" /* y is a YAML 1.1 bool */},
    {"base: &b\n  x: 1\n  q: 2\nd:\n  <<: *b\n  q: 3\n", "{\"base\":{\"x\":1,\"q\":2},\"d\":{\"x\":1,\"q\":3}}"},
    {"base: &b {x: 1}\nd:\n  q: 3\n  <<: [*b, {q: 9, z: 4}]\n", "{\"base\":{\"x\":1},\"d\":{\"q\":3,\"x\":1,\"z\":4}}"},
    /* as sigs.k8s.io/yaml: a key spelled y is the bool true */
    {"y: 1\n", "{\"true\":1}"},
    {"a: !!binary aGVsbG8=\n", "{\"a\":\"hello\"}"},
    /* n is false too, also as a key next to a merge */
    {"x: {<<: {m: 1, n: 2}, n: 3}\n", "{\"x\":{\"m\":1,\"false\":3}}"},
    {"v: &v hello\nw: *v\n", "{\"v\":\"hello\",\"w\":\"hello\"}"},
    {"yes: 1\n1: a\n", "{\"true\":1,\"1\":\"a\"}"},
    {"", "null"},
    {"# only a comment\n", "null"},
    {"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: \"v\"\n",
     "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\"},\"data\":{\"k\":\"v\"}}"},
    {"a: 99999999999999999999\n", "{\"a\":1e20}"},
    /* a float out of range stays text, as go-yaml leaves it */
    {"a: 1e400\nb: 0x\nc: +\nd: -0\ne: 12:30\n", "{\"a\":\"1e400\",\"b\":\"0x\",\"c\":\"+\",\"d\":0,\"e\":\"12:30\"}"},
    {"a: \"\\u00e9\"\n", "{\"a\":\"\\u00e9\"}"},
    {"---\na: 1\n---\nb: 2\n", "{\"a\":1}"},
};

static void test_yaml(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(yaml_cases); i++) {
        ck_error *e = NULL;
        json_t *j = ck_yaml_load(yaml_cases[i].yaml, strlen(yaml_cases[i].yaml), &e);
        if (!j)
            fail_msg("case %zu: %s", i, e->msg);
        char what[32];
        snprintf(what, sizeof what, "yaml case %zu", i);
        assert_json_eq(j, yaml_cases[i].json, what);
        json_decref(j);
    }
}

static const struct { const char *yaml, *err; enum ck_error_code code; } yaml_errors[] = {
    {"a: [1, 2\n", "error converting YAML to JSON: yaml: line", CK_E_BAD_REQUEST},
    {"a: b: c\n", "error converting YAML to JSON: yaml: line 1: mapping values are not allowed in this context", CK_E_BAD_REQUEST},
    {"a: *nope\n", "error converting YAML to JSON: yaml: unknown anchor 'nope' referenced", CK_E_BAD_REQUEST},
    {"a: .inf\n", "error converting YAML to JSON: json: unsupported value", CK_E_BAD_REQUEST},
    {"? [a]\n: b\n", "error converting YAML to JSON: yaml: unsupported map key", CK_E_BAD_REQUEST},
    {"{~: c}\n", "error converting YAML to JSON: unsupported map key of type: %!s(<nil>), key: <nil>", CK_E_BAD_REQUEST},
    {"a: !!int abc\n", "error converting YAML to JSON: yaml: cannot decode", CK_E_BAD_REQUEST},
    {"a: \"\xff\"\n", "error converting YAML to JSON: yaml: line", CK_E_BAD_REQUEST},
};

static void test_yaml_errors(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(yaml_errors); i++) {
        ck_error *e = NULL;
        json_t *j = ck_yaml_load(yaml_errors[i].yaml, strlen(yaml_errors[i].yaml), &e);
        if (j)
            fail_msg("case %zu: parsed", i);
        assert_int_equal(e->code, yaml_errors[i].code);
        if (strncmp(e->msg, yaml_errors[i].err, strlen(yaml_errors[i].err)))
            fail_msg("case %zu: got '%s'", i, e->msg);
        ck_error_free(e);
    }
}

static void test_yaml_multi(void **state)
{
    const char *y = "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\n# empty\n"
                    "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n...\n";
    json_t *docs = ck_yaml_load_all(y, strlen(y), NULL);
    assert_non_null(docs);
    assert_int_equal(json_array_size(docs), 2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(docs, 1), "metadata"), "name")), "b");
    json_decref(docs);
}

static void test_billion_laughs(void **state)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    ck_buf_addstr(&b, "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for (int i = 1; i < 12; i++) {
        ck_buf_printf(&b, "a%d: &a%d [", i, i);
        for (int k = 0; k < 10; k++)
            ck_buf_printf(&b, "%s*a%d", k ? ", " : "", i - 1);
        ck_buf_addstr(&b, "]\n");
    }
    ck_error *e = NULL;
    json_t *j = ck_yaml_load(b.data, b.len, &e);
    assert_null(j);
    assert_int_equal(e->code, CK_E_BAD_REQUEST);
    assert_non_null(strstr(e->msg, "excessive aliasing"));
    ck_error_free(e);
    ck_buf_free(&b);
}

static void test_deep(void **state)
{
    size_t depth = 100000;
    char *s = xmalloc(depth * 2 + 1);
    memset(s, '[', depth);
    memset(s + depth, ']', depth);
    s[depth * 2] = 0;
    ck_error *e = NULL;
    assert_null(ck_json_load(s, depth * 2, NULL, &e));
    assert_int_equal(e->code, CK_E_TOO_LARGE);
    ck_error_free(e);
    e = NULL;
    assert_null(ck_yaml_load(s, depth * 2, &e));
    assert_int_equal(e->code, CK_E_TOO_LARGE);
    ck_error_free(e);
    /* unbalanced deep input is refused the same way */
    e = NULL;
    assert_null(ck_json_load(s, depth, NULL, &e));
    ck_error_free(e);
    /* within the limit it parses */
    e = NULL;
    json_t *j = ck_json_load(s + depth - 500, 1000, NULL, &e);
    assert_non_null(j);
    json_decref(j);
    free(s);
}

static const struct { const char *json; const char *dups; } dup_cases[] = {
    {"{\"a\":1,\"b\":2}", "[]"},
    {"{\"a\":1,\"a\":2}", "[\".a\"]"},
    {"{\"metadata\":{\"name\":\"x\",\"labels\":{},\"name\":\"y\"}}", "[\".metadata.name\"]"},
    {"{\"spec\":{\"containers\":[{\"name\":\"a\"},{\"name\":\"b\",\"image\":\"i\",\"name\":\"c\"}]}}",
     "[\".spec.containers[1].name\"]"},
    {"{\"a\\\"b\":1,\"a\\\"b\":1}", "[\".a\\\"b\"]"},
    {"[{\"x\":1,\"x\":1},{\"y\":{\"z\":1,\"z\":2}}]", "[\"[0].x\",\"[1].y.z\"]"},
    /* the same key spelled with and without an escape: compared as written, not reported */
    {"{\"a\\/b\":1,\"a/b\":2}", "[]"},
    /* a duplicate after a \u escape (the one-pass builder declines both) */
    {"{\"\\u0061\":1,\"b\":{\"c\":1,\"c\":2}}", "[\".b.c\"]"},
};

static void test_json_dups(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(dup_cases); i++) {
        json_t *d = json_array();
        ck_error *e = NULL;
        json_t *j = ck_decode_body("application/json; charset=utf-8", dup_cases[i].json, strlen(dup_cases[i].json), d, &e);
        if (!j)
            fail_msg("case %zu: %s", i, e->msg);
        char what[32];
        snprintf(what, sizeof what, "dup case %zu", i);
        assert_json_eq(d, dup_cases[i].dups, what);
        json_decref(j);
        json_decref(d);
    }
    /* last value wins, as Go's decoder does */
    json_t *j = ck_json_load("{\"a\":1,\"a\":2}", 13, NULL, NULL);
    assert_int_equal(json_integer_value(json_object_get(j, "a")), 2);
    json_decref(j);
    const char *esc = "{\"a\\/b\":1,\"a/b\":2}";
    j = ck_json_load(esc, strlen(esc), NULL, NULL);
    assert_int_equal(json_object_size(j), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "a/b")), 2);
    json_decref(j);
    /* nesting past the one-pass builder's 512 levels, within the 1000 limit, still parses */
    char deep[1402];
    memset(deep, '[', 700);
    memset(deep + 700, ']', 700);
    deep[1400] = 0;
    j = ck_json_load(deep, 1400, NULL, NULL);
    assert_non_null(j);
    json_decref(j);
    /* YAML duplicates */
    json_t *d = json_array();
    const char *y = "metadata:\n  name: a\n  name: b\nspec:\n  containers:\n  - name: x\n    name: y\n";
    j = ck_decode_body("application/apply-patch+yaml", y, strlen(y), d, NULL);
    assert_non_null(j);
    assert_json_eq(d, "[\".metadata.name\",\".spec.containers[0].name\"]", "yaml dups");
    json_decref(j);
    json_decref(d);
}

static void test_content_types(void **state)
{
    ck_error *e = NULL;
    json_t *j = ck_decode_body("application/yaml", "a: b\n", 5, NULL, &e);
    assert_json_eq(j, "{\"a\":\"b\"}", "yaml body");
    json_decref(j);
    j = ck_decode_body("application/merge-patch+json", "{\"a\":null}", 10, NULL, &e);
    assert_json_eq(j, "{\"a\":null}", "merge body");
    json_decref(j);
    j = ck_decode_body("application/json-patch+json", "[]", 2, NULL, &e);
    assert_json_eq(j, "[]", "json patch body");
    json_decref(j);
    j = ck_decode_body(NULL, "{}", 2, NULL, &e);
    assert_json_eq(j, "{}", "no content type");
    json_decref(j);
    assert_null(ck_decode_body("text/plain", "x", 1, NULL, &e));
    assert_int_equal(e->code, CK_E_UNSUPPORTED_TYPE);
    assert_string_equal(e->msg, "the body of the request was in an unknown format - accepted media types include: "
                                "application/json, application/yaml, application/vnd.kubernetes.protobuf");
    ck_error_free(e);
    e = NULL;
    assert_null(ck_decode_body("application/json", "{\"a\":", 5, NULL, &e));
    assert_int_equal(e->code, CK_E_BAD_REQUEST);
    assert_non_null(strstr(e->msg, "json parse error"));
    ck_error_free(e);
    e = NULL;
    assert_null(ck_decode_body("application/json", "{\"a\":\"\xff\xfe\"}", 10, NULL, &e));
    assert_int_equal(e->code, CK_E_BAD_REQUEST);
    ck_error_free(e);
    /* a NUL byte after a scalar: jansson dropped it and decoded the rest (found by test_fuzz) */
    static const struct { const char *text; size_t n; const char *msg; } nul[] = {
        {"{\"a\":null\0,\"b\":1}", 17, "invalid character '\\x00' after object key:value pair"},
        {"{\"a\":5\0}", 8, "invalid character '\\x00' after object key:value pair"},
        {"[true\0]", 7, "invalid character '\\x00' after array element"},
        {"{\"a\":1.5\0}", 10, "invalid character '\\x00' after object key:value pair"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(nul); i++) {
        e = NULL;
        json_t *v = ck_decode_body("application/json", nul[i].text, nul[i].n, NULL, &e);
        if (v || !e || !strstr(e->msg, nul[i].msg))
            fail_msg("NUL case %zu: %s", i, e ? e->msg : "decoded");
        ck_error_free(e);
    }
}

static void test_fuzzish(void **state)
{
    /* random bytes and mutated documents must fail cleanly or parse, never crash */
    const char *seed = "apiVersion: v1\nkind: Pod\nmetadata: {name: x, labels: {a: b}}\nspec:\n  containers:\n"
                       "  - name: c\n    image: i\n    args: [\"a\", 'b', &x y, *x]\n";
    size_t n = strlen(seed);
    char *buf = xmalloc(n + 1);
    srand(42);
    for (int round = 0; round < 3000; round++) {
        memcpy(buf, seed, n + 1);
        for (int k = 0; k < 1 + round % 7; k++)
            buf[rand() % n] = (char)(rand() % 256);
        ck_error *e = NULL;
        json_t *j = ck_yaml_load(buf, n, &e);
        json_decref(j);
        ck_error_free(e);
        e = NULL;
        json_t *d = json_array();
        j = ck_json_load(buf, n, d, &e);
        json_decref(j);
        json_decref(d);
        ck_error_free(e);
    }
    free(buf);
    assert_true(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yaml),
        cmocka_unit_test(test_yaml_errors),
        cmocka_unit_test(test_yaml_multi),
        cmocka_unit_test(test_billion_laughs),
        cmocka_unit_test(test_deep),
        cmocka_unit_test(test_json_dups),
        cmocka_unit_test(test_content_types),
        cmocka_unit_test(test_fuzzish),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
