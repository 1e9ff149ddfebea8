/* Unit tests for what the controller-manager's shared informers cache of an object
 * (cm_cache_decode: the text cut, the transform, the shared parts). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "controllers/cm.h"
#include "lib/util.h"

/* A pod as the API server sends it (abridged managedFields), name/uid/phase/ip filled in. */
static char *pod_text(const char *name, const char *uid, const char *phase, const char *ip)
{
    return xasprintf(
        "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"%s\",\"generateName\":\"web-5d-\","
        "\"namespace\":\"default\",\"uid\":\"%s\",\"resourceVersion\":\"42\","
        "\"creationTimestamp\":\"2026-11-25T23:24:52Z\",\"labels\":{\"app\":\"web\",\"pod-template-hash\":\"5d\"},"
        "\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\",\"name\":\"web-5d\","
        "\"uid\":\"rs-uid\",\"controller\":true,\"blockOwnerDeletion\":true}],"
        "\"managedFields\":[{\"manager\":\"m\",\"fieldsV1\":{\"f:metadata\":{\"f:labels\":{\".\":{}}}}}]},"
        "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"img:1\",\"resources\":{}}],"
        "\"nodeName\":\"node-1\",\"schedulerName\":\"default-scheduler\","
        "\"tolerations\":[{\"key\":\"node.kubernetes.io/not-ready\",\"operator\":\"Exists\","
        "\"effect\":\"NoExecute\",\"tolerationSeconds\":300}]},"
        "\"status\":{\"phase\":\"%s\",\"qosClass\":\"BestEffort\",\"podIP\":\"%s\",\"hostIP\":\"10.0.0.1\","
        "\"conditions\":[{\"type\":\"PodScheduled\",\"status\":\"True\",\"lastTransitionTime\":\"2026-11-25T23:24:53Z\"},"
        "{\"type\":\"Ready\",\"status\":\"True\",\"lastTransitionTime\":\"2026-11-25T23:24:53Z\",\"message\":\"m\"}],"
        "\"containerStatuses\":[{\"name\":\"c\",\"ready\":true,\"image\":\"img:1\","
        "\"state\":{\"terminated\":{\"exitCode\":42,\"reason\":\"Error\",\"finishedAt\":\"2026-11-25T23:25:00Z\"}}}],"
        "\"startTime\":\"2026-11-25T23:24:53Z\"}}",
        name, uid, phase, ip);
}

static json_t *decode_pod(const char *name, const char *uid, const char *phase, const char *ip)
{
    char *t = pod_text(name, uid, phase, ip);
    json_t *p = cm_cache_decode(true, t, strlen(t));
    free(t);
    assert_non_null(p);
    return p;
}

static void test_pod_cut(void **state)
{
    (void)state;
    json_t *p = decode_pod("web-5d-a", "uid-a", "Running", "10.1.0.1");
    /* what controllers read is there */
    assert_string_equal(cm_name(p), "web-5d-a");
    assert_string_equal(cm_uid(p), "uid-a");
    assert_string_equal(cm_ns(p), "default");
    assert_string_equal(cm_str(p, "kind"), "Pod");
    assert_string_equal(cm_str(p, "metadata.resourceVersion"), "42");
    assert_string_equal(cm_str(p, "metadata.labels.app"), "web");
    assert_non_null(cm_controller_ref(p));
    assert_string_equal(cm_str(p, "spec.nodeName"), "node-1");
    assert_int_equal(json_array_size(cm_get(p, "spec.tolerations")), 1);
    assert_string_equal(cm_str(p, "status.podIP"), "10.1.0.1");
    assert_true(cm_pod_ready(p));
    assert_int_equal(json_array_size(cm_get(p, "status.conditions")), 1);   /* Ready only */
    /* what none reads is not */
    assert_null(cm_get(p, "metadata.managedFields"));
    assert_null(cm_get(p, "metadata.generateName"));
    assert_null(cm_get(p, "spec.containers"));       /* no ports declared */
    assert_null(cm_get(p, "spec.schedulerName"));
    assert_null(cm_get(p, "status.qosClass"));
    assert_null(cm_get(p, "status.containerStatuses"));   /* not Failed */
    assert_null(cm_get(p, "status.conditions.0.message"));
    json_decref(p);
}

static void test_failed_pod_keeps_exit_codes(void **state)
{
    (void)state;
    json_t *p = decode_pod("web-5d-f", "uid-f", "Failed", "10.1.0.2");
    json_t *cs = json_array_get(cm_get(p, "status.containerStatuses"), 0);
    assert_non_null(cs);
    assert_string_equal(cm_str(cs, "name"), "c");
    assert_int_equal(cm_int(cs, "state.terminated.exitCode", -1), 42);
    assert_string_equal(cm_str(cs, "state.terminated.finishedAt"), "2026-11-25T23:25:00Z");
    assert_null(cm_get(cs, "state.terminated.reason"));
    assert_null(cm_get(cs, "image"));
    assert_int_equal(json_array_size(cm_get(p, "status.conditions")), 2);   /* every condition */
    json_decref(p);
}

static void test_pods_share_parts(void **state)
{
    (void)state;
    json_t *a = decode_pod("web-5d-a", "uid-a", "Running", "10.1.0.1");
    json_t *b = decode_pod("web-5d-b", "uid-b", "Running", "10.1.0.2");
    /* equal parts are one value; unique ones are not */
    assert_ptr_equal(cm_get(a, "metadata.labels"), cm_get(b, "metadata.labels"));
    assert_ptr_equal(cm_get(a, "metadata.ownerReferences"), cm_get(b, "metadata.ownerReferences"));
    assert_ptr_equal(cm_get(a, "spec"), cm_get(b, "spec"));
    assert_ptr_equal(cm_get(a, "status.conditions"), cm_get(b, "status.conditions"));
    assert_ptr_equal(cm_get(a, "metadata.namespace"), cm_get(b, "metadata.namespace"));
    assert_ptr_not_equal(cm_get(a, "metadata"), cm_get(b, "metadata"));
    assert_ptr_not_equal(cm_get(a, "status"), cm_get(b, "status"));
    /* a deep copy (how controllers write) is independent of the shared parts */
    json_t *copy = json_deep_copy(a);
    json_object_set_new(cm_get(copy, "metadata.labels"), "app", json_string("other"));
    assert_string_equal(cm_str(b, "metadata.labels.app"), "web");
    json_decref(copy);
    /* a shared part outlives the pod it came from, and goes when no object holds it */
    json_t *labels = json_incref(cm_get(b, "metadata.labels"));
    json_decref(a);
    assert_string_equal(cm_str(b, "metadata.labels.app"), "web");
    json_decref(b);
    cm_intern_prune();
    assert_int_equal(labels->refcount, 2);   /* the table's and ours: kept */
    json_decref(labels);
    assert_int_equal(cm_intern_prune(), 0);  /* nothing holds anything: all dropped */
}

static void test_other_objects(void **state)
{
    (void)state;
    static const char node[] =
        "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"n1\",\"managedFields\":[{}],"
        "\"labels\":{\"a\":\"b\"}},\"status\":{\"capacity\":{\"cpu\":\"4\"},\"nodeInfo\":{\"machineID\":\"m\"}}}";
    json_t *n = cm_cache_decode(false, node, strlen(node));
    assert_non_null(n);
    assert_null(cm_get(n, "metadata.managedFields"));
    assert_string_equal(cm_str(n, "status.nodeInfo.machineID"), "m");   /* nodes are PUT back whole */
    assert_string_equal(cm_str(n, "status.capacity.cpu"), "4");
    json_decref(n);
    assert_null(cm_cache_decode(false, "{\"kind\":", 8));
    cm_intern_prune();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pod_cut),
        cmocka_unit_test(test_failed_pod_keeps_exit_codes),
        cmocka_unit_test(test_pods_share_parts),
        cmocka_unit_test(test_other_objects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
