/* Unit tests for the DaemonSet and StatefulSet controllers' pure decisions: which nodes a daemon
 * pod should run on (taints against the automatic daemon tolerations) and the owner references of
 * a StatefulSet's claims under persistentVolumeClaimRetentionPolicy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "controllers/cm.h"
#include "lib/util.h"

static void test_ds_should_run(void **state)
{
    (void)state;
    static const struct { const char *tmpl, *node; bool run, stay; } cases[] = {
        {"{}", "{}", true, true},
        /* NoSchedule not tolerated: no new pod, the old one stays */
        {"{}", "{\"spec\":{\"taints\":[{\"key\":\"k\",\"effect\":\"NoSchedule\"}]}}", false, true},
        /* NoExecute not tolerated: gone */
        {"{}", "{\"spec\":{\"taints\":[{\"key\":\"k\",\"effect\":\"NoExecute\"}]}}", false, false},
        {"{\"tolerations\":[{\"key\":\"k\",\"operator\":\"Exists\"}]}",
         "{\"spec\":{\"taints\":[{\"key\":\"k\",\"effect\":\"NoExecute\"}]}}", true, true},
        {"{\"tolerations\":[{\"key\":\"k\",\"value\":\"a\"}]}",
         "{\"spec\":{\"taints\":[{\"key\":\"k\",\"value\":\"b\",\"effect\":\"NoSchedule\"}]}}", false, true},
        /* PreferNoSchedule never keeps a daemon off */
        {"{}", "{\"spec\":{\"taints\":[{\"key\":\"k\",\"effect\":\"PreferNoSchedule\"}]}}", true, true},
        /* the automatic tolerations */
        {"{}", "{\"spec\":{\"taints\":[{\"key\":\"node.kubernetes.io/unschedulable\",\"effect\":\"NoSchedule\"},"
               "{\"key\":\"node.kubernetes.io/disk-pressure\",\"effect\":\"NoSchedule\"},"
               "{\"key\":\"node.kubernetes.io/memory-pressure\",\"effect\":\"NoSchedule\"},"
               "{\"key\":\"node.kubernetes.io/pid-pressure\",\"effect\":\"NoSchedule\"},"
               "{\"key\":\"node.kubernetes.io/not-ready\",\"effect\":\"NoExecute\"},"
               "{\"key\":\"node.kubernetes.io/unreachable\",\"effect\":\"NoExecute\"}]}}", true, true},
        /* network-unavailable: only hostNetwork pods */
        {"{}", "{\"spec\":{\"taints\":[{\"key\":\"node.kubernetes.io/network-unavailable\",\"effect\":\"NoSchedule\"}]}}",
         false, true},
        {"{\"hostNetwork\":true}",
         "{\"spec\":{\"taints\":[{\"key\":\"node.kubernetes.io/network-unavailable\",\"effect\":\"NoSchedule\"}]}}",
         true, true},
        /* the automatic ones tolerate their effect only */
        {"{}", "{\"spec\":{\"taints\":[{\"key\":\"node.kubernetes.io/unschedulable\",\"effect\":\"NoExecute\"}]}}",
         false, false},
        /* selectors and nodeName: neither run nor stay */
        {"{\"nodeSelector\":{\"disk\":\"ssd\"}}", "{\"metadata\":{\"labels\":{\"disk\":\"hdd\"}}}", false, false},
        {"{\"nodeSelector\":{\"disk\":\"ssd\"}}", "{\"metadata\":{\"labels\":{\"disk\":\"ssd\"}}}", true, true},
        {"{\"nodeName\":\"other\"}", "{\"metadata\":{\"name\":\"n1\"}}", false, false},
        {"{\"nodeName\":\"n1\"}", "{\"metadata\":{\"name\":\"n1\"}}", true, true},
        {"{\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":{\"nodeSelectorTerms\":"
         "[{\"matchExpressions\":[{\"key\":\"zone\",\"operator\":\"In\",\"values\":[\"a\",\"b\"]}]}]}}}}",
         "{\"metadata\":{\"labels\":{\"zone\":\"c\"}}}", false, false},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        json_t *tmpl = json_loads(cases[i].tmpl, 0, NULL), *node = json_loads(cases[i].node, 0, NULL);
        assert_non_null(tmpl);
        assert_non_null(node);
        bool run = !cases[i].run, stay = !cases[i].stay;
        cm_ds_should_run(tmpl, node, &run, &stay);
        if (run != cases[i].run || stay != cases[i].stay)
            fail_msg("case %zu: run %d stay %d", i, run, stay);
        json_decref(tmpl);
        json_decref(node);
    }
}

/* "Kind/name/controller" of each ref, comma separated. */
static char *refs_text(const json_t *refs)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    size_t i;
    json_t *r;
    json_array_foreach(refs, i, r)
        ck_buf_printf(&b, "%s%s/%s/%d", i ? "," : "", cm_str(r, "kind"), cm_str(r, "name"),
                      json_is_true(json_object_get(r, "controller")));
    return ck_buf_steal(&b);
}

static void test_sts_claim_refs(void **state)
{
    (void)state;
    json_t *pod = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind", "Pod", "metadata",
                            "name", "web-3", "uid", "pod-uid");
    static const struct { const char *deleted, *scaled, *existing; bool scaled_down, with_pod; const char *want; } cases[] = {
        {"Retain", "Retain", NULL, false, true, ""},
        {"Delete", "Retain", NULL, false, true, "StatefulSet/web/1"},
        {"Delete", "Retain", NULL, true, true, ""},
        {"Retain", "Delete", NULL, false, true, ""},
        {"Retain", "Delete", NULL, true, true, "Pod/web-3/1"},
        {"Retain", "Delete", NULL, true, false, ""},          /* no pod to own it */
        {"Delete", "Delete", NULL, false, true, "StatefulSet/web/1"},
        {"Delete", "Delete", NULL, true, true, "Pod/web-3/1"},
        /* our old refs are replaced, others kept */
        {"Delete", "Delete", "[{\"kind\":\"StatefulSet\",\"name\":\"web\",\"uid\":\"set-uid\",\"controller\":true},"
                             "{\"kind\":\"ConfigMap\",\"name\":\"x\",\"uid\":\"x-uid\"}]", true, true,
         "ConfigMap/x/0,Pod/web-3/1"},
        {"Retain", "Retain", "[{\"kind\":\"StatefulSet\",\"name\":\"web\",\"uid\":\"set-uid\",\"controller\":true}]",
         false, true, ""},
        /* another controller: ours are scrubbed, nothing added */
        {"Delete", "Delete", "[{\"kind\":\"Other\",\"name\":\"o\",\"uid\":\"o-uid\",\"controller\":true}]", false, true,
         "Other/o/1"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        json_t *set = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:{s:s, s:s}}}", "apiVersion", "apps/v1", "kind",
                                "StatefulSet", "metadata", "name", "web", "uid", "set-uid", "spec",
                                "persistentVolumeClaimRetentionPolicy", "whenDeleted", cases[i].deleted,
                                "whenScaled", cases[i].scaled);
        json_t *existing = cases[i].existing ? json_loads(cases[i].existing, 0, NULL) : NULL;
        json_t *refs = cm_sts_claim_refs(existing, set, cases[i].with_pod ? pod : NULL, cases[i].scaled_down);
        char *got = refs_text(refs);
        if (strcmp(got, cases[i].want))
            fail_msg("case %zu: \"%s\", want \"%s\"", i, got, cases[i].want);
        free(got);
        json_decref(refs);
        json_decref(existing);
        json_decref(set);
    }
    json_decref(pod);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ds_should_run),
        cmocka_unit_test(test_sts_claim_refs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
