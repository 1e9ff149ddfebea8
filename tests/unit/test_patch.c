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

#include "testdata.h"

#include "apiserver/patch.h"
#include "lib/util.h"

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
    json_t *cases = test_data_load("patch", file);
    size_t i;
    json_t *c;
    assert_true(json_array_size(cases) > 5);
    int type0 = type;
    json_array_foreach(cases, i, c) {
        const json_t *orig = json_object_get(c, "orig"), *patch = json_object_get(c, "patch");
        json_t *orig_before = json_deep_copy(orig), *patch_before = json_deep_copy(patch);
        ck_error *e = NULL;
        const char *ct = json_string_value(json_object_get(c, "type"));
        type = type0;
        if (ct)
            type = !strcmp(ct, "merge") ? 0 : !strcmp(ct, "json") ? 1 : 2;
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
static void test_kubectl_patches(void **state) { run_file("kubectl.json", -1); }
/* Random pod patches whose expected results kubectl 1.33's own strategic-merge code computed
 * (`kubectl patch --local`; directives it leaves inside new elements removed). */
static void test_strategic_oracle(void **state) { run_file("strategic-oracle.json", 2); }
/* Random merge patches with nulls in nested objects and arrays, results from kubectl 1.33 (evanphx). */
static void test_merge_oracle(void **state) { run_file("merge-oracle.json", 0); }

/* The server-side apply body real kubectl sent, then its follow-up carrying last-applied. */
static void test_kubectl_server_side(void **state)
{
    json_t *cases = test_data_load("patch", "kubectl.json");
    json_t *body = test_data_load("patch", "kubectl-apply-server-side.json");
    json_t *la = test_data_load("patch", "kubectl-apply-last-applied.json");
    const ck_resource *d = ck_resource_find("apps", "v1", "deployments");
    /* live: what client-side apply left, its fields owned by kubectl-client-side-apply */
    json_t *live = json_deep_copy(json_object_get(json_array_get(cases, 0), "orig"));
    ck_managed_fields_record(live, NULL, "kubectl-client-side-apply", "Update", "apps/v1");
    ck_error *e = NULL;
    json_t *out = ck_patch_apply(live, body, d, "kubectl", false, &e);
    if (!out)
        fail_msg("%s", e->msg);
    /* same values: shared ownership, no conflict; both managers listed */
    const json_t *mf = json_object_get(json_object_get(out, "metadata"), "managedFields");
    assert_int_equal(json_array_size(mf), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(mf, 0), "operation")), "Apply");
    json_t *fields = json_object_get(json_array_get(mf, 0), "fieldsV1");
    json_t *c = json_object_get(json_object_get(json_object_get(json_object_get(json_object_get(fields, "f:spec"),
                                "f:template"), "f:spec"), "f:containers"), "k:{\"name\":\"a\"}");
    assert_non_null(c);
    assert_non_null(json_object_get(json_object_get(c, "f:env"), "k:{\"name\":\"Q\"}"));
    assert_non_null(json_object_get(json_object_get(c, "f:ports"), "k:{\"containerPort\":81,\"protocol\":\"TCP\"}"));
    /* the follow-up apply carries a newer last-applied annotation than the one
     * kubectl-client-side-apply wrote: a conflict (kubectl migrates that ownership first) */
    json_t *out2 = ck_patch_apply(out, la, d, "kubectl-last-applied", false, &e);
    assert_null(out2);
    assert_non_null(strstr(e->msg, "conflict with \"kubectl-client-side-apply\" using apps/v1 at "));
    assert_non_null(strstr(e->msg, ": .metadata.annotations.kubectl.kubernetes.io/last-applied-configuration"));
    ck_error_free(e);
    e = NULL;
    out2 = ck_patch_apply(out, la, d, "kubectl-last-applied", true, &e);
    if (!out2)
        fail_msg("%s", e->msg);
    assert_true(json_equal(json_object_get(json_object_get(out2, "metadata"), "annotations"),
                           json_object_get(json_object_get(la, "metadata"), "annotations")));
    assert_true(json_equal(json_object_get(out2, "spec"), json_object_get(out, "spec")));
    /* a changed image under kubectl's ownership conflicts with another applier */
    json_t *other = json_deep_copy(body);
    json_object_set_new(json_array_get(json_object_get(json_object_get(json_object_get(json_object_get(other, "spec"),
                        "template"), "spec"), "containers"), 0), "image", json_string("a:9"));
    json_t *out3 = ck_patch_apply(out2, other, d, "someone", false, &e);
    assert_null(out3);
    assert_int_equal(e->code, CK_E_CONFLICT);
    assert_non_null(strstr(e->msg, "Apply failed with 2 conflicts: conflicts with \"kubectl\":\n- .spec.template.spec.containers[name=\"a\"].image"));
    ck_error_free(e);
    json_decref(other);
    json_decref(out2);
    json_decref(out);
    json_decref(live);
    json_decref(la);
    json_decref(body);
    json_decref(cases);
}

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
    /* upstream's cap on JSON patch operations */
    ops = json_array();
    for (int i = 0; i <= CK_JSON_PATCH_MAX_OPS; i++)
        json_array_append_new(ops, json_pack("{s:s,s:s}", "op", "test", "path", ""));
    e = NULL;
    assert_null(ck_patch_json(NULL, ops, &e));
    assert_int_equal(e->code, CK_E_TOO_LARGE);
    assert_string_equal(e->msg, "The allowed operations count is 10000, got 10001");
    ck_error_free(e);
    json_decref(ops);
}

static json_t *J(const char *s)
{
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    if (!j)
        fail_msg("bad JSON in test: %s: %s", s, je.text);
    return j;
}

static void assert_fields(const json_t *obj, size_t idx, const char *manager, const char *op, const char *fields)
{
    const json_t *mf = json_object_get(json_object_get(obj, "metadata"), "managedFields");
    const json_t *e = json_array_get(mf, idx);
    if (!e) {
        char *d = json_dumps(mf, JSON_COMPACT);
        fail_msg("no managedFields[%zu] (%s)", idx, d);
    }
    assert_string_equal(json_string_value(json_object_get(e, "manager")), manager);
    assert_string_equal(json_string_value(json_object_get(e, "operation")), op);
    assert_string_equal(json_string_value(json_object_get(e, "fieldsType")), "FieldsV1");
    assert_non_null(json_string_value(json_object_get(e, "time")));
    json_t *want = J(fields);
    if (!json_equal(json_object_get(e, "fieldsV1"), want)) {
        char *d = json_dumps(json_object_get(e, "fieldsV1"), JSON_COMPACT);
        fail_msg("%s fieldsV1: got %s want %s", manager, d, fields);
    }
    json_decref(want);
}

static void test_apply_configmap(void **state)
{
    const ck_resource *cm = ck_resource_find("", "v1", "configmaps");
    json_t *cfg1 = J("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\",\"labels\":{\"a\":\"1\"}},"
                     "\"data\":{\"k\":\"v\",\"k2\":\"v2\"}}");
    ck_error *e = NULL;
    json_t *o1 = ck_patch_apply(NULL, cfg1, cm, "kubectl", false, &e);
    assert_non_null(o1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o1, "data"), "k")), "v");
    assert_fields(o1, 0, "kubectl", "Apply",
                  "{\"f:data\":{\"f:k\":{},\"f:k2\":{}},\"f:metadata\":{\"f:labels\":{\"f:a\":{}}}}");
    assert_string_equal(json_string_value(json_object_get(json_array_get(
        json_object_get(json_object_get(o1, "metadata"), "managedFields"), 0), "apiVersion")), "v1");

    /* another writer changes k2 (an Update) and adds a label of its own */
    json_t *o2 = json_deep_copy(o1);
    json_object_set_new(json_object_get(o2, "data"), "k2", json_string("edited"));
    json_object_set_new(json_object_get(json_object_get(o2, "metadata"), "labels"), "b", json_string("2"));
    ck_managed_fields_record(o2, o1, "editor", "Update", "v1");
    assert_fields(o2, 0, "kubectl", "Apply", "{\"f:data\":{\"f:k\":{}},\"f:metadata\":{\"f:labels\":{\"f:a\":{}}}}");
    assert_fields(o2, 1, "editor", "Update", "{\"f:data\":{\"f:k2\":{}},\"f:metadata\":{\"f:labels\":{\"f:b\":{}}}}");

    /* re-applying the old value of k2 now conflicts with editor */
    json_t *o3 = ck_patch_apply(o2, cfg1, cm, "kubectl", false, &e);
    assert_null(o3);
    assert_int_equal(e->code, CK_E_CONFLICT);
    if (strncmp(e->msg, "Apply failed with 1 conflict: conflict with \"editor\" using v1 at ", 64) ||
        !strstr(e->msg, ": .data.k2"))
        fail_msg("conflict message: %s", e->msg);
    ck_error_free(e);
    e = NULL;

    /* force takes k2 over; editor keeps only its label */
    o3 = ck_patch_apply(o2, cfg1, cm, "kubectl", true, &e);
    assert_non_null(o3);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o3, "data"), "k2")), "v2");
    assert_fields(o3, 0, "kubectl", "Apply",
                  "{\"f:data\":{\"f:k\":{},\"f:k2\":{}},\"f:metadata\":{\"f:labels\":{\"f:a\":{}}}}");
    assert_fields(o3, 1, "editor", "Update", "{\"f:metadata\":{\"f:labels\":{\"f:b\":{}}}}");

    /* applying without label a and key k removes them; b (editor's) stays */
    json_t *cfg2 = J("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\"},\"data\":{\"k2\":\"v2\"}}");
    json_t *o4 = ck_patch_apply(o3, cfg2, cm, "kubectl", false, &e);
    assert_non_null(o4);
    json_t *want_labels = J("{\"b\":\"2\"}"), *want_data = J("{\"k2\":\"v2\"}");
    assert_true(json_equal(json_object_get(json_object_get(o4, "metadata"), "labels"), want_labels));
    assert_true(json_equal(json_object_get(o4, "data"), want_data));
    assert_fields(o4, 0, "kubectl", "Apply", "{\"f:data\":{\"f:k2\":{}}}");

    /* re-applying the same config changes nothing, managedFields included */
    json_t *again = ck_patch_apply(o4, cfg2, cm, "kubectl", false, &e);
    assert_non_null(again);
    assert_true(json_equal(again, o4));
    json_decref(again);
    /* a second applier agreeing on a value shares it without conflict */
    json_t *o5 = ck_patch_apply(o4, cfg2, cm, "other", false, &e);
    assert_non_null(o5);
    assert_fields(o5, 1, "other", "Apply", "{\"f:data\":{\"f:k2\":{}}}");

    json_decref(want_labels);
    json_decref(want_data);
    json_decref(cfg1);
    json_decref(cfg2);
    json_decref(o1);
    json_decref(o2);
    json_decref(o3);
    json_decref(o4);
    json_decref(o5);
}

static void test_apply_deployment(void **state)
{
    const ck_resource *d = ck_resource_find("apps", "v1", "deployments");
    json_t *cfg = J("{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\"},"
                    "\"spec\":{\"replicas\":2,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},"
                    "\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},\"spec\":{\"containers\":["
                    "{\"name\":\"a\",\"image\":\"a:1\",\"ports\":[{\"containerPort\":80}]},{\"name\":\"b\",\"image\":\"b:1\"}]}}}}");
    ck_error *e = NULL;
    json_t *o1 = ck_patch_apply(NULL, cfg, d, "kubectl", false, &e);
    assert_non_null(o1);
    assert_fields(o1, 0, "kubectl", "Apply",
        "{\"f:spec\":{\"f:replicas\":{},\"f:selector\":{},\"f:template\":{\"f:metadata\":{\"f:labels\":{\"f:app\":{}}},"
        "\"f:spec\":{\"f:containers\":{\"k:{\\\"name\\\":\\\"a\\\"}\":{\".\":{},\"f:image\":{},\"f:name\":{},"
        "\"f:ports\":{\"k:{\\\"containerPort\\\":80,\\\"protocol\\\":\\\"TCP\\\"}\":{\".\":{},\"f:containerPort\":{}}}},"
        "\"k:{\\\"name\\\":\\\"b\\\"}\":{\".\":{},\"f:image\":{},\"f:name\":{}}}}}}}");
    /* kubectl scale (an Update by another manager) then a re-apply of replicas: 2 conflicts */
    json_t *o2 = json_deep_copy(o1);
    json_object_set_new(json_object_get(o2, "spec"), "replicas", json_integer(5));
    ck_managed_fields_record(o2, o1, "kubectl-scale", "Update", "apps/v1");
    json_t *o3 = ck_patch_apply(o2, cfg, d, "kubectl", false, &e);
    assert_null(o3);
    assert_non_null(strstr(e->msg, "conflict with \"kubectl-scale\" using apps/v1 at "));
    assert_non_null(strstr(e->msg, ": .spec.replicas"));
    ck_error_free(e);
    e = NULL;
    /* dropping container b from the config removes it; a keeps its fields */
    json_t *cfg2 = json_deep_copy(cfg);
    json_object_del(json_object_get(cfg2, "spec"), "replicas");
    json_array_remove(json_object_get(json_object_get(json_object_get(json_object_get(cfg2, "spec"), "template"), "spec"), "containers"), 1);
    o3 = ck_patch_apply(o2, cfg2, d, "kubectl", false, &e);
    if (!o3)
        fail_msg("%s", e->msg);
    json_t *cs = json_object_get(json_object_get(json_object_get(json_object_get(o3, "spec"), "template"), "spec"), "containers");
    assert_int_equal(json_array_size(cs), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(cs, 0), "name")), "a");
    /* replicas stays: kubectl-scale owns it */
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o3, "spec"), "replicas")), 5);
    json_decref(cfg);
    json_decref(cfg2);
    json_decref(o1);
    json_decref(o2);
    json_decref(o3);
}

static void test_apply_untracked(void **state)
{
    /* a live object without managedFields: its fields belong to "before-first-apply" */
    const ck_resource *cm = ck_resource_find("", "v1", "configmaps");
    json_t *live = J("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\"},\"data\":{\"a\":\"1\"}}");
    json_t *cfg = J("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\"},\"data\":{\"a\":\"2\"}}");
    ck_error *e = NULL;
    assert_null(ck_patch_apply(live, cfg, cm, "kubectl", false, &e));
    assert_int_equal(e->code, CK_E_CONFLICT);
    assert_non_null(strstr(e->msg, "conflict with \"before-first-apply\" using v1: .data.a"));
    ck_error_free(e);
    e = NULL;
    json_t *out = ck_patch_apply(live, cfg, cm, "kubectl", true, &e);
    assert_non_null(out);
    assert_fields(out, 0, "kubectl", "Apply", "{\"f:data\":{\"f:a\":{}}}");
    json_decref(out);
    json_decref(live);
    json_decref(cfg);
}

static void test_record_create(void **state)
{
    json_t *o = J("{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\",\"uid\":\"u\","
                  "\"labels\":{\"app\":\"web\"}},\"spec\":{\"replicas\":1,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},"
                  "\"template\":{\"spec\":{\"containers\":[{\"name\":\"nginx\",\"image\":\"nginx\",\"resources\":{}}]}}},"
                  "\"status\":{}}");
    ck_managed_fields_record(o, NULL, "kubectl-create", "Update", "apps/v1");
    assert_fields(o, 0, "kubectl-create", "Update",
        "{\"f:metadata\":{\"f:labels\":{\".\":{},\"f:app\":{}}},\"f:spec\":{\"f:replicas\":{},\"f:selector\":{},"
        "\"f:template\":{\"f:spec\":{\"f:containers\":{\"k:{\\\"name\\\":\\\"nginx\\\"}\":{\".\":{},\"f:image\":{},"
        "\"f:name\":{},\"f:resources\":{}}}}}}}");
    /* a no-op update leaves the entry alone; a status write is tracked with its subresource */
    json_t *old = json_deep_copy(o);
    ck_managed_fields_record(o, old, "other", "Update", "apps/v1");
    assert_int_equal(json_array_size(json_object_get(json_object_get(o, "metadata"), "managedFields")), 1);
    json_object_set_new(json_object_get(o, "status"), "replicas", json_integer(1));
    ck_managed_fields_record_sub(o, old, "kube-controller-manager", "Update", "apps/v1", "status");
    const json_t *mf = json_object_get(json_object_get(o, "metadata"), "managedFields");
    assert_int_equal(json_array_size(mf), 2);
    /* entries sort by operation, time, manager: find it by name */
    const json_t *st = NULL;
    for (size_t i = 0; i < json_array_size(mf); i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(mf, i), "manager")), "kube-controller-manager"))
            st = json_array_get(mf, i);
    assert_non_null(st);
    assert_string_equal(json_string_value(json_object_get(st, "subresource")), "status");
    json_t *want = J("{\"f:status\":{\"f:replicas\":{}}}");
    assert_true(json_equal(json_object_get(st, "fieldsV1"), want));
    json_decref(want);
    /* a request without managedFields (or with []) keeps the live ones; [{}] resets them */
    json_t *prev = json_deep_copy(o);
    json_object_set_new(json_object_get(o, "metadata"), "managedFields", json_array());
    ck_managed_fields_record(o, prev, "other", "Update", "apps/v1");
    assert_int_equal(json_array_size(json_object_get(json_object_get(o, "metadata"), "managedFields")), 2);
    json_object_set_new(json_object_get(o, "metadata"), "managedFields", json_pack("[{}]"));
    ck_managed_fields_record(o, prev, "other", "Update", "apps/v1");
    assert_null(json_object_get(json_object_get(o, "metadata"), "managedFields"));
    json_decref(prev);
    json_decref(old);
    json_decref(o);
}

/* ---- random trees through every function: must not crash (ASan checks the rest) ---- */

static const char *const vocab[] = {
    "metadata", "spec", "status", "template", "containers", "initContainers", "name", "image", "ports",
    "containerPort", "protocol", "env", "value", "volumes", "volumeMounts", "mountPath", "labels",
    "annotations", "finalizers", "ownerReferences", "uid", "conditions", "type", "selector", "matchLabels",
    "strategy", "rollingUpdate", "managedFields", "fieldsV1", "manager", "operation", "f:spec", "k:{\"name\":\"a\"}",
    "$patch", "$retainKeys", "$setElementOrder/containers", "$deleteFromPrimitiveList/finalizers", "replace",
    "delete", "merge", "apiVersion", "kind", "data", "a", "b", ".", "",
};

static json_t *rnd_tree(int depth)
{
    int r = rand() % (depth > 5 ? 4 : 7);
    switch (r) {
    case 0: return json_string(vocab[rand() % ARRAY_SIZE(vocab)]);
    case 1: return json_integer(rand() % 5);
    case 2: return rand() % 2 ? json_null() : json_true();
    case 3: return json_real(0.5);
    case 4: case 5: {
        json_t *o = json_object();
        for (int i = rand() % 5; i > 0; i--)
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
    srand(1234);
    const ck_resource *rs[] = {ck_resource_find("", "v1", "pods"), ck_resource_find("apps", "v1", "deployments"),
                               ck_resource_find("", "v1", "services"), ck_resource_find("", "v1", "configmaps")};
    for (int round = 0; round < 4000; round++) {
        json_t *a = rnd_tree(0), *b = rnd_tree(0);
        const ck_resource *r = rs[round % 4];
        ck_error *e = NULL;
        json_t *out;
        out = ck_patch_merge(a, b, &e); json_decref(out); ck_error_free(e); e = NULL;
        out = ck_patch_json(a, b, &e); json_decref(out); ck_error_free(e); e = NULL;
        out = ck_patch_strategic(a, b, r, &e); json_decref(out); ck_error_free(e); e = NULL;
        out = ck_patch_apply(json_is_object(a) ? a : NULL, b, r, "m", round % 2, &e);
        if (out) {
            json_t *again = ck_patch_apply(out, b, r, "other", false, &e);
            json_decref(again);
            ck_error_free(e);
            e = NULL;
            json_t *c = json_deep_copy(out);
            ck_managed_fields_record(c, a, "u", "Update", "v1");
            json_decref(c);
        }
        json_decref(out); ck_error_free(e); e = NULL;
        json_t *c = json_deep_copy(b);
        ck_managed_fields_record(c, a, "u", "Update", "v1");
        json_decref(c);
        json_decref(a);
        json_decref(b);
    }
    assert_true(1);
}

/* Stored entries are used lazily (kept as stored unless a path in them changes); a client's own
 * managedFields are flattened and rebuilt.  Both must give the same entries: each step runs
 * twice, once from the live object's entries (lazy) and once with them sent back reversed (not
 * equal to the live ones: the eager path), and the results are compared without their times. */
static void strip_times(json_t *o)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(json_object_get(o, "metadata"), "managedFields"), i, e)
        json_object_del(e, "time");
}

/* A create's managedFields come from fields_of's one walk unless it declines; the general
 * path (flat set, sort, nest) must give the same bytes for every object, main resource and
 * status subresource alike: real pods (the strategic-oracle cases), hand-made shapes (duplicate
 * list keys and a key holding the path separator, where the short-cut declines; empty objects,
 * granular maps, stripped metadata, list items without keys) and random trees. */
static int fresh_compare(json_t *obj, const char *sub)
{
    json_t *fast = json_deep_copy(obj), *slow = json_deep_copy(obj);
    unsigned long before = ck__managed_fields_shortcuts;
    ck_managed_fields_record_sub(fast, NULL, "creator", "Update", "v1", sub);
    int took = ck__managed_fields_shortcuts != before;
    ck__managed_fields_no_shortcut = true;
    ck_managed_fields_record_sub(slow, NULL, "creator", "Update", "v1", sub);
    ck__managed_fields_no_shortcut = false;
    strip_times(fast);
    strip_times(slow);
    char *sf = json_dumps(fast, JSON_COMPACT), *ss = json_dumps(slow, JSON_COMPACT);
    if (strcmp(sf, ss)) {
        char *so = json_dumps(obj, JSON_COMPACT);
        fail_msg("object %s (sub %s):\n fast %s\n slow %s", so, sub ? sub : "-", sf, ss);
    }
    free(sf);
    free(ss);
    json_decref(fast);
    json_decref(slow);
    return took;
}

static void test_record_fresh_matches_general(void **state)
{
    (void)state;
    static const char *const objs[] = {
        "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"namespace\":\"d\",\"uid\":\"u\","
        "\"labels\":{\"a\":\"1\",\"b\":\"2\"},\"annotations\":{},\"finalizers\":[\"x\",\"y\"],"
        "\"ownerReferences\":[{\"uid\":\"o1\",\"kind\":\"ReplicaSet\",\"name\":\"rs\"}],\"generateName\":\"p-\"},"
        "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\",\"ports\":[{\"containerPort\":80},"
        "{\"containerPort\":53,\"protocol\":\"UDP\"},{\"containerPort\":53}],\"env\":[{\"name\":\"B\",\"value\":\"1\"},"
        "{\"name\":\"A\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":\"x\"}}}],\"resources\":{},"
        "\"volumeMounts\":[{\"name\":\"v\",\"mountPath\":\"/m\"}]},{\"name\":\"b\",\"image\":\"j\",\"args\":[\"x\"]}],"
        "\"volumes\":[{\"name\":\"v\",\"emptyDir\":{}}],\"tolerations\":[{\"key\":\"k\"}],\"nodeSelector\":{\"z\":\"1\"},"
        "\"securityContext\":{}},\"status\":{\"phase\":\"Pending\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\"},"
        "{\"status\":\"x\"}],\"qosClass\":\"BestEffort\"}}",
        /* duplicate env names: the set merges them, the short-cut declines */
        "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":[{\"name\":\"c\","
        "\"env\":[{\"name\":\"A\",\"value\":\"1\"},{\"name\":\"A\",\"valueFrom\":{}}]}]}}",
        "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\"},\"data\":{\"a\\u0001b\":\"1\"}}",
        "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\"},\"data\":{\"ab\":\"1\",\"a\":\"2\","
        "\"a.b\":\"3\",\"a-b\":\"4\",\"\":\"5\"},\"binaryData\":{}}",
        "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\"}}",
        "{\"metadata\":{\"name\":\"c\"},\"spec\":{\"x\":[1,2],\"y\":{}}}",
        "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"d\",\"labels\":{}},\"spec\":{\"replicas\":2,"
        "\"selector\":{\"matchLabels\":{\"a\":\"b\"}},\"strategy\":{\"type\":\"RollingUpdate\",\"rollingUpdate\":{}},"
        "\"template\":{\"metadata\":{\"labels\":{\"a\":\"b\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\","
        "\"ports\":[{\"containerPort\":8080,\"protocol\":\"TCP\"},{\"containerPort\":\"x\"}]},{\"image\":\"nameless\"}]}}}}",
        "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"s\"},\"spec\":{\"ports\":[{\"port\":80,"
        "\"protocol\":\"TCP\"},{\"port\":81}],\"selector\":{\"a\":\"b\"},\"clusterIPs\":[\"10.0.0.1\"]}}",
        "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"finalizers\":[\"a\",\"a\"]}}",
        "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"finalizers\":[{\"x\":1},2,\"q\\\"\\u0001\"]}}",
        "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"status\":{}}",
        "{}",
    };
    int took = 0;
    for (size_t i = 0; i < ARRAY_SIZE(objs); i++) {
        json_t *o = J(objs[i]);
        took += fresh_compare(o, NULL);
        fresh_compare(o, "status");
        json_decref(o);
    }
    /* the short-cut ran where it should (all but the duplicate and separator cases) */
    assert_int_equal(took, (int)ARRAY_SIZE(objs) - 3);
    json_t *cases = test_data_load("patch", "strategic-oracle.json");
    size_t i;
    json_t *c;
    took = 0;
    json_array_foreach(cases, i, c) {
        took += fresh_compare(json_object_get(c, "orig"), NULL);
        fresh_compare(json_object_get(c, "orig"), "status");
        if (json_is_object(json_object_get(c, "want"))) {
            fresh_compare(json_object_get(c, "want"), NULL);
            fresh_compare(json_object_get(c, "want"), "status");
        }
    }
    assert_true(took > 0);
    json_decref(cases);
    srand(4321);
    static const char *const kinds[][2] = {{"v1", "Pod"}, {"apps/v1", "Deployment"}, {"v1", "Service"},
                                           {"v1", "ConfigMap"}};
    for (int round = 0; round < 3000; round++) {
        json_t *o = json_object();
        json_object_set_new(o, "apiVersion", json_string(kinds[round % 4][0]));
        json_object_set_new(o, "kind", json_string(kinds[round % 4][1]));
        static const char *const top[] = {"metadata", "spec", "status", "data", "template"};
        for (size_t k = 0; k < ARRAY_SIZE(top); k++)
            if (rand() % 2)
                json_object_set_new(o, top[k], rnd_tree(1));
        fresh_compare(o, NULL);
        fresh_compare(o, "status");
        json_decref(o);
    }
}

/* An update's sets are built only under the members that differ (sets_of_diff); the general
 * path builds both whole.  Same entries for every pair: strategic-oracle before/after pods,
 * chains of random trees (whose managedFields carry over, so earlier entries are edited),
 * metadata-only and status-only changes. */
static void update_compare(json_t *obj, const json_t *old, const char *sub)
{
    json_t *fast = json_deep_copy(obj), *slow = json_deep_copy(obj);
    ck_managed_fields_record_sub(fast, old, "editor", "Update", "v1", sub);
    ck__managed_fields_no_shortcut = true;
    ck_managed_fields_record_sub(slow, old, "editor", "Update", "v1", sub);
    ck__managed_fields_no_shortcut = false;
    strip_times(fast);
    strip_times(slow);
    char *sf = json_dumps(fast, JSON_COMPACT), *ss = json_dumps(slow, JSON_COMPACT);
    if (strcmp(sf, ss)) {
        char *so = json_dumps(old, JSON_COMPACT), *sn = json_dumps(obj, JSON_COMPACT);
        fail_msg("old %s\nnew %s (sub %s):\n fast %s\n slow %s", so, sn, sub ? sub : "-", sf, ss);
    }
    free(sf);
    free(ss);
    json_decref(fast);
    json_decref(slow);
}

static void test_record_update_diff_matches_general(void **state)
{
    (void)state;
    json_t *cases = test_data_load("patch", "strategic-oracle.json");
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        json_t *orig = json_deep_copy(json_object_get(c, "orig"));
        const json_t *want = json_object_get(c, "want");
        if (!json_is_object(orig) || !json_is_object(want)) {
            json_decref(orig);
            continue;
        }
        ck_managed_fields_record(orig, NULL, "creator", "Update", "v1");
        json_t *next = json_deep_copy(want);
        json_object_set(json_object_get(next, "metadata"), "managedFields",
                        json_object_get(json_object_get(orig, "metadata"), "managedFields"));
        update_compare(next, orig, NULL);
        update_compare(next, orig, "status");
        update_compare(orig, next, NULL);
        json_decref(next);
        json_decref(orig);
    }
    json_decref(cases);
    /* a Lease renewal: spec changes, metadata (with its managedFields) does not */
    json_t *lease = J("{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":{\"name\":\"n\","
                      "\"ownerReferences\":[{\"uid\":\"u\",\"name\":\"n\"}],\"labels\":{\"a\":\"b\"}},"
                      "\"spec\":{\"holderIdentity\":\"n\",\"renewTime\":\"t1\"}}");
    ck_managed_fields_record(lease, NULL, "kubelet", "Update", "coordination.k8s.io/v1");
    json_t *renew = json_deep_copy(lease);
    json_object_set_new(json_object_get(renew, "spec"), "renewTime", json_string("t2"));
    update_compare(renew, lease, NULL);
    json_object_set_new(json_object_get(renew, "metadata"), "labels", json_pack("{s:s}", "a", "c"));
    json_object_set_new(json_object_get(renew, "metadata"), "resourceVersion", json_string("9"));
    update_compare(renew, lease, NULL);
    json_object_set_new(json_object_get(renew, "metadata"), "labels", json_object());
    update_compare(renew, lease, NULL);
    json_object_del(renew, "metadata");
    update_compare(renew, lease, NULL);
    json_decref(renew);
    json_decref(lease);
    srand(777);
    static const char *const kinds[][2] = {{"v1", "Pod"}, {"apps/v1", "Deployment"}, {"v1", "Service"},
                                           {"v1", "ConfigMap"}};
    static const char *const top[] = {"metadata", "spec", "status", "data"};
    json_t *prev = NULL;
    for (int round = 0; round < 3000; round++) {
        json_t *o = json_object();
        json_object_set_new(o, "apiVersion", json_string(kinds[(round / 10) % 4][0]));
        json_object_set_new(o, "kind", json_string(kinds[(round / 10) % 4][1]));
        for (size_t k = 0; k < ARRAY_SIZE(top); k++) {
            /* often keep the previous value: unchanged members are what the diff skips */
            json_t *pv = prev ? json_object_get(prev, top[k]) : NULL;
            if (pv && rand() % 3)
                json_object_set_new(o, top[k], json_deep_copy(pv));
            else if (rand() % 2)
                json_object_set_new(o, top[k], rnd_tree(1));
        }
        if (prev) {
            update_compare(o, prev, NULL);
            update_compare(o, prev, "status");
        }
        json_t *rec = json_deep_copy(o);
        ck_managed_fields_record_sub(rec, prev, round % 2 ? "a" : "b", "Update", "v1", round % 3 ? NULL : "status");
        json_decref(o);
        json_decref(prev);
        prev = rec;
    }
    json_decref(prev);
}

static void test_record_lazy_matches_eager(void **state)
{
    (void)state;
    static const struct step {
        const char *manager, *sub, *obj;
    } steps[] = {
        {"create", NULL, "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"labels\":{\"a\":\"1\",\"b\":\"2\"}},"
                         "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\"}],\"x\":1}}"},
        {"kubelet", "status", "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"labels\":{\"a\":\"1\",\"b\":\"2\"}},"
                              "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\"}],\"x\":1},\"status\":{\"phase\":\"Running\"}}"},
        {"kubelet", "status", "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"labels\":{\"a\":\"1\",\"b\":\"2\"}},"
                              "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\"}],\"x\":1},\"status\":{\"phase\":\"Failed\"}}"},
        {"editor", NULL, "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"labels\":{\"a\":\"1\"}},"
                         "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"j\"}],\"x\":1},\"status\":{\"phase\":\"Failed\"}}"},
        {"editor", NULL, "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"labels\":{\"a\":\"1\"}},"
                         "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"k\"}],\"x\":2},\"status\":{\"phase\":\"Failed\"}}"},
        {"create", NULL, "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"},"
                         "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"k\"}]},\"status\":{\"phase\":\"Failed\"}}"},
    };
    json_t *live = NULL;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        json_t *lazy = J(steps[i].obj), *eager = J(steps[i].obj);
        const json_t *mf = live ? json_object_get(json_object_get(live, "metadata"), "managedFields") : NULL;
        if (json_array_size(mf) > 1) {
            json_t *rev = json_array();
            for (size_t k = json_array_size(mf); k-- > 0;)
                json_array_append_new(rev, json_deep_copy(json_array_get(mf, k)));
            json_object_set_new(json_object_get(eager, "metadata"), "managedFields", rev);
        }
        ck_managed_fields_record_sub(lazy, live, steps[i].manager, "Update", "v1", steps[i].sub);
        ck_managed_fields_record_sub(eager, live, steps[i].manager, "Update", "v1", steps[i].sub);
        json_t *a = json_deep_copy(lazy), *b = json_deep_copy(eager);
        strip_times(a);
        strip_times(b);
        char *sa = json_dumps(a, JSON_COMPACT), *sb = json_dumps(b, JSON_COMPACT);
        if (strcmp(sa, sb))
            fail_msg("step %zu:\n lazy  %s\n eager %s", i, sa, sb);
        free(sa);
        free(sb);
        json_decref(a);
        json_decref(b);
        json_decref(eager);
        json_decref(live);
        live = lazy;
    }
    /* the end state: create owns the spec it kept, editor the image it changed last, the
     * kubelet the status (its second write changed only the time) */
    char *out = json_dumps(json_object_get(json_object_get(live, "metadata"), "managedFields"), JSON_COMPACT);
    assert_non_null(strstr(out, "\"manager\":\"kubelet\""));
    assert_non_null(strstr(out, "\"f:phase\""));
    free(out);
    json_decref(live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_strategic),
        cmocka_unit_test(test_kubectl_patches),
        cmocka_unit_test(test_strategic_oracle),
        cmocka_unit_test(test_merge_oracle),
        cmocka_unit_test(test_kubectl_server_side),
        cmocka_unit_test(test_deep_and_big),
        cmocka_unit_test(test_apply_configmap),
        cmocka_unit_test(test_apply_deployment),
        cmocka_unit_test(test_apply_untracked),
        cmocka_unit_test(test_record_create),
        cmocka_unit_test(test_record_lazy_matches_eager),
        cmocka_unit_test(test_record_fresh_matches_general),
        cmocka_unit_test(test_record_update_diff_matches_general),
        cmocka_unit_test(test_random_trees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
