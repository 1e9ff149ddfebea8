/* Unit tests for client/jsonpick: the partial decoder of the informers (the scheduler's and
 * hollow node's named fields, the controller-manager's "every member but" caches), list pages,
 * watch events and answers, and its tree form, which must cut a decoded value the same way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "client/jsonpick.h"
#include "lib/util.h"

static const ck_jsonpick md_keep[] = {{"name", NULL}, {"labels", NULL}, {NULL, NULL}};
static const ck_jsonpick c_keep[] = {{"name", NULL}, {"resources", NULL}, {NULL, NULL}};
static const ck_jsonpick spec_keep[] = {{"nodeName", NULL}, {"containers", c_keep}, {NULL, NULL}};
static const ck_jsonpick obj_keep[] = {
    {"metadata", md_keep}, {"spec", spec_keep}, {"n", NULL}, {"a\"b", NULL}, {NULL, NULL}};
static const ck_jsonpick ev_keep[] = {{"type", NULL}, {"object", obj_keep}, {NULL, NULL}};

static void test_pick_table(void **state)
{
    static const struct {
        const char *in, *want;      /* want NULL: an error */
    } rows[] = {
        {"{}", "{}"},
        {" { \"type\" : \"ADDED\" } \n", "{\"type\":\"ADDED\"}"},
        /* dropped members of every shape, with strings that look like structure */
        {"{\"x\":{\"a\":[1,{\"}\":\"]\"}],\"b\":\"\\\"}\"},\"type\":\"M\",\"y\":[\"\\\\\"],\"z\":-1.5e3,"
         "\"w\":null,\"v\":true}", "{\"type\":\"M\"}"},
        /* nested picks; arrays of objects picked element by element; scalars in the array kept */
        {"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"p\",\"uid\":\"u\",\"labels\":"
         "{\"a\":\"b\"},\"managedFields\":[{\"f:spec\":{}}]},\"spec\":{\"nodeName\":\"\","
         "\"containers\":[{\"name\":\"c\",\"image\":\"i\",\"resources\":{\"requests\":{\"cpu\":"
         "\"1\"}}},7,{\"env\":[]}],\"volumes\":[]},\"status\":{\"phase\":\"Pending\"},\"n\":12}}",
         "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"p\",\"labels\":{\"a\":\"b\"}},"
         "\"spec\":{\"nodeName\":\"\",\"containers\":[{\"name\":\"c\",\"resources\":{\"requests\":"
         "{\"cpu\":\"1\"}}},7,{}]},\"n\":12}}"},
        /* a kept member whose value is not an object is kept as it is */
        {"{\"object\":{\"metadata\":null,\"spec\":[]}}", "{\"object\":{\"metadata\":null,\"spec\":[]}}"},
        /* escapes in keys and values */
        {"{\"object\":{\"a\\\"b\":\"\\u00e9\\n\",\"n\\u0061me\":1}}",
         "{\"object\":{\"a\\\"b\":\"\\u00e9\\n\"}}"},
        {"{\"type\":\"x\",\"type\":\"y\"}", "{\"type\":\"y\"}"},
        /* errors */
        {"", NULL},
        {"[1]", NULL},
        {"{\"type\":", NULL},
        {"{\"x\":{\"a\":[1,2}", NULL},
        {"{\"x\":\"unterminated}", NULL},
        {"{\"type\":tru}", NULL},          /* a kept value is checked by jansson */
        {"{\"type\":1}x", NULL},
        {"{\"type\" 1}", NULL},
        {"{type:1}", NULL},
        {"{\"object\":{\"spec\":{\"containers\":[{},]}}}", NULL},
    };
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        ck_error *err = NULL;
        json_t *got = ck_jsonpick_parse(rows[i].in, strlen(rows[i].in), ev_keep, &err);
        if (!rows[i].want) {
            if (got)
                fail_msg("row %zu: expected an error", i);
            assert_non_null(err);
            ck_error_free(err);
            continue;
        }
        if (!got)
            fail_msg("row %zu: %s", i, err->msg);
        json_t *want = json_loads(rows[i].want, 0, NULL);
        assert_non_null(want);
        if (!json_equal(got, want)) {
            char *g = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT);
            fail_msg("row %zu: got %s", i, g);
        }
        /* the tree cut of the whole document is the same value */
        json_t *tree = json_loads(rows[i].in, 0, NULL);
        assert_non_null(tree);
        ck_jsonpick_tree(tree, ev_keep);
        if (!json_equal(tree, want))
            fail_msg("row %zu: the tree cut differs", i);
        json_decref(tree);
        json_decref(want);
        json_decref(got);
    }
}

/* Truncating a valid document anywhere never reads past the end (ASan) and is an error. */
static void test_pick_truncated(void **state)
{
    const char *doc = "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"p\\\"q\",\"x\":"
                      "[{\"y\":\"}\"}]},\"spec\":{\"containers\":[{\"name\":\"c\"}]}}}";
    size_t n = strlen(doc);
    for (size_t len = 0; len < n; len++) {
        char *copy = xmalloc(len ? len : 1);
        memcpy(copy, doc, len);
        ck_error *err = NULL;
        json_t *got = ck_jsonpick_parse(copy, len, ev_keep, &err);
        if (got)
            fail_msg("prefix of %zu bytes parsed", len);
        ck_error_free(err);
        free(copy);
    }
    json_t *whole = ck_jsonpick_parse(doc, n, ev_keep, NULL);
    assert_non_null(whole);
    assert_string_equal(json_string_value(json_object_get(json_object_get(
                            json_object_get(whole, "object"), "metadata"), "name")), "p\"q");
    json_decref(whole);
}

/* Kept-whole values are built without jansson's loader: they must equal what json_loads makes
 * of the same text, and what jansson refuses stays refused. */
static void test_pick_whole_values(void **state)
{
    static const ck_jsonpick keep[] = {{"v", NULL}, {NULL, NULL}};
    static const struct {
        const char *value;
        bool ok;
    } rows[] = {
        {"0", true}, {"-0", true}, {"12", true}, {"-9223372036854775807", true},
        {"123456789012345678", true}, {"1234567890123456789", true}, {"1.5", true},
        {"-2e-3", true}, {"1E+2", true}, {"true", true}, {"false", true}, {"null", true},
        {"\"\"", true}, {"\"plain\"", true}, {"\"esc \\\" \\n \\u00e9 \\ud83d\\ude00\"", true},
        {"\"caf\xc3\xa9\"", true},
        {"{\"a\":[1,-2,3.5,\"x\",{\"b\":null}],\"c\":{},\"d\":[]}", true},
        {"[[[[1]]],{\"k\":[true,false]}]", true},
        {"01", false}, {"-", false}, {"tru", false}, {"nul", false}, {"1.", false},
        {"\"\xff\"", false}, {"\"a\\x\"", false}, {"{\"a\" 1}", false}, {"[1 2]", false},
    };
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        char *doc = xasprintf("{\"v\":%s,\"w\":1}", rows[i].value);
        ck_error *err = NULL;
        json_t *got = ck_jsonpick_parse(doc, strlen(doc), keep, &err);
        if (!rows[i].ok) {
            if (got)
                fail_msg("row %zu (%s): parsed", i, rows[i].value);
            ck_error_free(err);
            free(doc);
            continue;
        }
        if (!got)
            fail_msg("row %zu (%s): %s", i, rows[i].value, err->msg);
        json_t *want = json_loads(doc, 0, NULL);
        assert_non_null(want);
        json_object_del(want, "w");
        if (!json_equal(got, want))
            fail_msg("row %zu (%s): differs from jansson", i, rows[i].value);
        json_decref(got);
        json_decref(want);
        free(doc);
    }
    /* nesting is bounded */
    ck_buf deep;
    ck_buf_init(&deep, 0);
    ck_buf_addstr(&deep, "{\"v\":");
    for (int i = 0; i < 600; i++)
        ck_buf_addstr(&deep, "[");
    for (int i = 0; i < 600; i++)
        ck_buf_addstr(&deep, "]");
    ck_buf_addstr(&deep, "}");
    ck_error *err = NULL;
    assert_null(ck_jsonpick_parse(deep.data, deep.len, keep, &err));
    ck_error_free(err);
    ck_buf_free(&deep);
}

/* "*" defaults and drops (the controller-manager's caches: every member but managedFields), a
 * failed pod's exit codes and finish times, empty lists; text and tree cuts agree. */
static const ck_jsonpick cm_md[] = {
    {"managedFields", CK_JSONPICK_DROP}, {"generateName", CK_JSONPICK_DROP}, {"*", NULL},
    {NULL, NULL}};
static const ck_jsonpick cm_ports[] = {{"name", NULL}, {"ports", NULL}, {NULL, NULL}};
static const ck_jsonpick cm_spec[] = {{"nodeName", NULL}, {"containers", cm_ports}, {NULL, NULL}};
static const ck_jsonpick cm_cond[] = {{"type", NULL}, {"status", NULL}, {NULL, NULL}};
static const ck_jsonpick cm_term[] = {{"exitCode", NULL}, {"finishedAt", NULL}, {NULL, NULL}};
static const ck_jsonpick cm_state[] = {{"terminated", cm_term}, {NULL, NULL}};
static const ck_jsonpick cm_cs[] = {{"name", NULL}, {"state", cm_state}, {NULL, NULL}};
static const ck_jsonpick cm_status[] = {
    {"phase", NULL}, {"conditions", cm_cond}, {"containerStatuses", cm_cs},
    {"initContainerStatuses", cm_cs}, {NULL, NULL}};
static const ck_jsonpick cm_pod[] = {
    {"kind", NULL}, {"metadata", cm_md}, {"spec", cm_spec}, {"status", cm_status}, {NULL, NULL}};
static const ck_jsonpick cm_objmd[] = {{"managedFields", CK_JSONPICK_DROP}, {"*", NULL}, {NULL, NULL}};
static const ck_jsonpick cm_obj[] = {{"*", NULL}, {"metadata", cm_objmd}, {NULL, NULL}};
static const ck_jsonpick cm_list[] = {{"items", cm_obj}, {"*", NULL}, {NULL, NULL}};
static const ck_jsonpick named_a[] = {{"*", CK_JSONPICK_DROP}, {"a", NULL}, {NULL, NULL}};
static const ck_jsonpick by_default[] = {{"*", named_a}, {NULL, NULL}};
static const ck_jsonpick nothing[] = {{NULL, NULL}};

static void test_pick_defaults_drops(void **state)
{
    static const struct {
        const ck_jsonpick *keep;
        const char *in, *want;
    } rows[] = {
        {cm_pod,
         "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"a\",\"generateName\":\"x-\","
         "\"managedFields\":[{\"x\":{\"y\":[1,2,{}]}}],\"labels\":{\"app\":\"w\"}},\"spec\":{\"nodeName\":"
         "\"n1\",\"containers\":[{\"name\":\"c\",\"image\":\"i\",\"ports\":[{\"containerPort\":80}]},"
         "{\"name\":\"d\"}],\"volumes\":[]},\"status\":{\"phase\":\"Failed\",\"conditions\":[{\"type\":"
         "\"Ready\",\"status\":\"False\",\"message\":\"} ] \\\" {\"},{\"type\":\"DisruptionTarget\","
         "\"status\":\"True\"}],\"podIP\":\"1.2.3.4\",\"containerStatuses\":[{\"name\":\"c\",\"image\":"
         "\"i\",\"state\":{\"terminated\":{\"exitCode\":42,\"reason\":\"Error\",\"finishedAt\":"
         "\"2026-01-01T00:00:00Z\"}},\"lastState\":{}}],\"initContainerStatuses\":[{\"name\":\"i\","
         "\"state\":{\"terminated\":{\"exitCode\":0,\"finishedAt\":\"t\"}}}]}}",
         "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\",\"labels\":{\"app\":\"w\"}},\"spec\":{\"nodeName\":"
         "\"n1\",\"containers\":[{\"name\":\"c\",\"ports\":[{\"containerPort\":80}]},{\"name\":\"d\"}]},"
         "\"status\":{\"phase\":\"Failed\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\"},"
         "{\"type\":\"DisruptionTarget\",\"status\":\"True\"}],\"containerStatuses\":[{\"name\":\"c\","
         "\"state\":{\"terminated\":{\"exitCode\":42,\"finishedAt\":\"2026-01-01T00:00:00Z\"}}}],"
         "\"initContainerStatuses\":[{\"name\":\"i\",\"state\":{\"terminated\":{\"exitCode\":0,"
         "\"finishedAt\":\"t\"}}}]}}"},
        /* a list page: every member but each item's managedFields, whatever its order */
        {cm_list,
         "{\"kind\":\"ConfigMapList\",\"metadata\":{\"resourceVersion\":\"7\",\"managedFields\":1},"
         "\"items\":[{\"metadata\":{\"managedFields\":[],\"name\":\"a\"},\"data\":{\"k\":\"v\"}},"
         "{\"data\":null,\"metadata\":{\"name\":\"b\"}}]}",
         "{\"kind\":\"ConfigMapList\",\"metadata\":{\"resourceVersion\":\"7\",\"managedFields\":1},"
         "\"items\":[{\"metadata\":{\"name\":\"a\"},\"data\":{\"k\":\"v\"}},{\"data\":null,"
         "\"metadata\":{\"name\":\"b\"}}]}"},
        /* "*" with a sub list; a named DROP beats a later "*"; escaped names match */
        {by_default, "{\"x\":{\"a\":1,\"b\":2},\"y\":[{\"\\u0061\":3,\"c\":4},5],\"z\":6}",
         "{\"x\":{\"a\":1},\"y\":[{\"a\":3},5],\"z\":6}"},
        {named_a, "{\"b\":{\"a\":1},\"a\":{\"b\":2},\"*\":7}", "{\"a\":{\"b\":2}}"},
        /* an empty list keeps nothing */
        {nothing, "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"}}", "{}"},
        {CK_JSONPICK_DROP, "{\"kind\":\"Pod\"}", "{}"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        ck_error *err = NULL;
        json_t *got = ck_jsonpick_parse(rows[i].in, strlen(rows[i].in), rows[i].keep, &err);
        if (!got)
            fail_msg("row %zu: %s", i, err->msg);
        json_t *want = json_loads(rows[i].want, 0, NULL), *tree = json_loads(rows[i].in, 0, NULL);
        assert_non_null(want);
        assert_non_null(tree);
        ck_jsonpick_tree(tree, rows[i].keep);
        if (!json_equal(got, want))
            fail_msg("row %zu: got %s", i, json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT));
        if (!json_equal(tree, want))
            fail_msg("row %zu: tree %s", i, json_dumps(tree, JSON_SORT_KEYS | JSON_COMPACT));
        json_decref(got);
        json_decref(want);
        json_decref(tree);
    }
    /* a NULL list keeps everything, in text and tree */
    const char *doc = "{\"a\":{\"b\":[1,{\"c\":null}]}}";
    json_t *got = ck_jsonpick_parse(doc, strlen(doc), NULL, NULL), *want = json_loads(doc, 0, NULL);
    assert_true(json_equal(got, want));
    ck_jsonpick_tree(want, NULL);
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pick_table),
        cmocka_unit_test(test_pick_truncated),
        cmocka_unit_test(test_pick_whole_values),
        cmocka_unit_test(test_pick_defaults_drops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
