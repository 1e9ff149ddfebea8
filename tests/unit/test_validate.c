/* Unit tests for apiserver/validate (validation causes and messages) and ck_default, driven by
 * tests/data/validate/{validate,defaults}.json. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libgen.h>
#include <cmocka.h>

#include "testdata.h"

#include "apiserver/validate.h"
#include "lib/util.h"

static const ck_resource *res_of(const json_t *c)
{
    const char *r = json_string_value(json_object_get(c, "resource"));
    char g[64] = "", v[16], res[64];
    if (sscanf(r, "%63[^/]/%15[^/]/%63s", g, v, res) == 3)
        return ck_resource_find(g, v, res);
    if (sscanf(r, "%15[^/]/%63s", v, res) == 2)
        return ck_resource_find("", v, res);
    return NULL;
}

static void test_validate(void **state)
{
    json_t *cases = test_data_load("validate", "validate.json");
    assert_true(json_array_size(cases) > 10);
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        const ck_resource *r = res_of(c);
        if (!r)
            fail_msg("%s: unknown resource", name);
        json_t *got = ck_validate(r, json_object_get(c, "obj"), json_object_get(c, "old"));
        const json_t *want = json_object_get(c, "causes");
        char *dump = json_dumps(got, JSON_COMPACT);
        if (json_array_size(got) != json_array_size(want))
            fail_msg("%s: got %s", name, dump);
        for (size_t k = 0; k < json_array_size(want); k++) {
            const json_t *w = json_array_get(want, k), *g = json_array_get(got, k);
            const char *keys[] = {"reason", "field", "message"};
            for (size_t x = 0; x < 3; x++) {
                const char *ws = json_string_value(json_object_get(w, keys[x]));
                const char *gs = json_string_value(json_object_get(g, keys[x]));
                if (ws && (!gs || strcmp(ws, gs)))
                    fail_msg("%s: cause %zu %s: got '%s' want '%s'", name, k, keys[x], gs ? gs : "(none)", ws);
            }
        }
        const char *wm = json_string_value(json_object_get(c, "message"));
        if (wm) {
            const json_t *meta = json_object_get(json_object_get(c, "obj"), "metadata");
            char *m = ck_validate_message(r, json_string_value(json_object_get(meta, "name")), got);
            if (strcmp(m, wm))
                fail_msg("%s: message '%s' want '%s'", name, m, wm);
            free(m);
        }
        free(dump);
        json_decref(got);
    }
    json_decref(cases);
}

static void test_defaults(void **state)
{
    json_t *cases = test_data_load("validate", "defaults.json");
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        json_t *obj = json_deep_copy(json_object_get(c, "obj"));
        ck_default(res_of(c), obj);
        if (!json_equal(obj, json_object_get(c, "want"))) {
            char *d = json_dumps(obj, JSON_COMPACT);
            fail_msg("%s: got %s", name, d);
        }
        /* defaulting is idempotent */
        json_t *again = json_deep_copy(obj);
        ck_default(res_of(c), again);
        assert_true(json_equal(obj, again));
        json_decref(again);
        json_decref(obj);
    }
    json_decref(cases);
}

static void test_hostile(void **state)
{
    /* wrong JSON types everywhere must not crash */
    const char *objs[] = {
        "{\"metadata\":[],\"spec\":\"x\"}",
        "{\"metadata\":{\"name\":5,\"labels\":[1],\"annotations\":\"a\",\"finalizers\":{}},\"spec\":{\"containers\":{}}}",
        "{\"metadata\":{\"name\":\"a\"},\"spec\":{\"containers\":[1,null,{\"ports\":[1,{\"containerPort\":\"x\"}],\"env\":[null]}],"
        "\"volumes\":[7],\"restartPolicy\":1}}",
        "{\"spec\":{\"selector\":5,\"template\":[]},\"data\":[1],\"binaryData\":{\"a\":1}}",
    };
    for (size_t k = 0; k < ck_nresources; k++) {
        for (size_t i = 0; i < ARRAY_SIZE(objs); i++) {
            json_t *o = json_loads(objs[i], 0, NULL);
            json_t *causes = ck_validate(&ck_resources[k], o, o);
            assert_true(json_is_array(causes));
            json_decref(causes);
            ck_default(&ck_resources[k], o);
            json_decref(o);
        }
    }
}

static const char *const vocab[] = {
    "metadata", "spec", "template", "containers", "initContainers", "name", "image", "ports", "containerPort",
    "hostPort", "protocol", "env", "volumes", "volumeMounts", "mountPath", "labels", "annotations", "finalizers",
    "ownerReferences", "selector", "matchLabels", "matchExpressions", "key", "operator", "values", "In",
    "strategy", "type", "rollingUpdate", "data", "binaryData", "immutable", "clusterIP", "restartPolicy",
    "namespace", "generateName", "jobTemplate", "schedule", "replicas", "configMap", "uid", "a", "",
};

static json_t *rnd_tree(int depth)
{
    int r = rand() % (depth > 5 ? 4 : 7);
    switch (r) {
    case 0: return json_string(vocab[rand() % ARRAY_SIZE(vocab)]);
    case 1: return json_integer(rand() % 70000 - 2);
    case 2: return rand() % 2 ? json_null() : json_false();
    case 3: return json_real(1.5);
    case 4: case 5: {
        json_t *o = json_object();
        for (int i = rand() % 6; i > 0; i--)
            json_object_set_new(o, vocab[rand() % ARRAY_SIZE(vocab)], rnd_tree(depth + 1));
        return o;
    }
    default: {
        json_t *a = json_array();
        for (int i = rand() % 4; i > 0; i--)
            json_array_append_new(a, rnd_tree(depth + 1));
        return a;
    }
    }
}

static void test_random_trees(void **state)
{
    srand(99);
    for (int round = 0; round < 3000; round++) {
        const ck_resource *r = &ck_resources[(size_t)round % ck_nresources];
        json_t *a = rnd_tree(0), *b = rnd_tree(0);
        json_t *causes = ck_validate(r, a, round % 2 ? b : NULL);
        assert_true(json_is_array(causes));
        char *m = ck_validate_message(r, "x", causes);
        free(m);
        json_decref(causes);
        ck_default(r, a);
        json_decref(a);
        json_decref(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_random_trees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
