/* Unit tests for apiserver/patch: merge, JSON and strategic merge patches driven by the case
 * files under tests/data/patch/ (each case: orig, patch, want or code+error), and server-side
 * apply / managedFields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libgen.h>
#include <cmocka.h>

#include "apiserver/patch.h"
#include "lib/util.h"

/* tests/data relative to the binary (ROOT/<build>/tests/<name>). */
static json_t *load_cases(const char *name)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = 0;
    char *root = dirname(dirname(dirname(exe)));
    char *path = xasprintf("%s/tests/data/patch/%s", root, name);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j)
        fail_msg("%s: %s line %d", path, je.text, je.line);
    free(path);
    return j;
}

static const char *code_name(enum ck_error_code c) { return ck_error_name(c); }

static void check(const json_t *c, json_t *got, ck_error *e)
{
    const char *name = json_string_value(json_object_get(c, "name"));
    const json_t *want = json_object_get(c, "want");
    const char *code = json_string_value(json_object_get(c, "code"));
    const char *msg = json_string_value(json_object_get(c, "error"));
    if (want) {
        if (!got)
            fail_msg("%s: error %s", name, e ? e->msg : "?");
        if (!json_equal(got, want)) {
            char *g = json_dumps(got, JSON_COMPACT);
            fail_msg("%s: got %s", name, g);
        }
    } else {
        if (got)
            fail_msg("%s: expected an error", name);
        if (strcmp(code_name(e->code), code))
            fail_msg("%s: code %s, want %s (%s)", name, code_name(e->code), code, e->msg);
        if (msg && strcmp(e->msg, msg))
            fail_msg("%s: message '%s', want '%s'", name, e->msg, msg);
    }
}

static const ck_resource *res_of(const json_t *c)
{
    const char *r = json_string_value(json_object_get(c, "resource"));
    if (!r)
        return NULL;
    char g[64] = "", v[16], res[64];
    if (sscanf(r, "%63[^/]/%15[^/]/%63s", g, v, res) == 3)
        return ck_resource_find(g, v, res);
    if (sscanf(r, "%15[^/]/%63s", v, res) == 2)
        return ck_resource_find("", v, res);
    return NULL;
}

static void run_file(const char *file, int type)
{
    json_t *cases = load_cases(file);
    size_t i;
    json_t *c;
    assert_true(json_array_size(cases) > 5);
    json_array_foreach(cases, i, c) {
        const json_t *orig = json_object_get(c, "orig"), *patch = json_object_get(c, "patch");
        json_t *orig_before = json_deep_copy(orig), *patch_before = json_deep_copy(patch);
        ck_error *e = NULL;
        json_t *got = type == 0 ? ck_patch_merge(orig, patch, &e)
                    : type == 1 ? ck_patch_json(orig, patch, &e)
                                : ck_patch_strategic(orig, patch, res_of(c), &e);
        check(c, got, e);
        /* inputs are never modified */
        assert_true(json_equal(orig, orig_before));
        assert_true(json_equal(patch, patch_before));
        json_decref(orig_before);
        json_decref(patch_before);
        json_decref(got);
        ck_error_free(e);
    }
    json_decref(cases);
}

static void test_merge(void **state) { run_file("merge.json", 0); }
static void test_json(void **state) { run_file("json.json", 1); }
static void test_strategic(void **state) { run_file("strategic.json", 2); }

static void test_deep_and_big(void **state)
{
    /* deep nesting and huge arrays must not crash (inputs are bounded upstream by the codec) */
    json_t *deep = json_object(), *cur = deep;
    for (int i = 0; i < 900; i++) {
        json_t *n = json_object();
        json_object_set_new(cur, "a", n);
        cur = n;
    }
    json_t *big = json_array();
    for (int i = 0; i < 100000; i++)
        json_array_append_new(big, json_integer(i));
    json_object_set_new(cur, "list", big);
    ck_error *e = NULL;
    json_t *m = ck_patch_merge(deep, deep, &e);
    assert_non_null(m);
    assert_true(json_equal(m, deep));
    json_decref(m);
    json_t *s = ck_patch_strategic(deep, deep, ck_resource_find("", "v1", "pods"), &e);
    assert_non_null(s);
    json_decref(s);
    json_t *ops = json_pack("[{s:s, s:s, s:i}]", "op", "add", "path", "/b", "value", 1);
    json_t *j = ck_patch_json(deep, ops, &e);
    assert_non_null(j);
    json_decref(j);
    json_decref(ops);
    json_decref(deep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_strategic),
        cmocka_unit_test(test_deep_and_big),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
