/* test_hollow.c - the hollow kubelet's decisions that need no cluster (hollow/hollow.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hollow/hollow.h"

/* Which updates of a pod bound to our node wake a worker: not our own Running+Ready report. */
static void test_needs_sync(void **state)
{
    static const struct {
        const char *pod;
        bool needs;
    } cases[] = {
        {"{\"spec\":{\"nodeName\":\"n\"}}", true},                                   /* just bound */
        {"{\"spec\":{\"nodeName\":\"n\"},\"status\":{\"phase\":\"Pending\"}}", true},
        {"{\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}", false},
        {"{\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"PodScheduled\",\"status\":\"True\"},"
         "{\"type\":\"Ready\",\"status\":\"False\"}]}}", true},                     /* marked not ready */
        {"{\"status\":{\"phase\":\"Running\"}}", true},
        {"{\"status\":{\"phase\":\"Succeeded\"}}", false},
        {"{\"status\":{\"phase\":\"Failed\"}}", false},
        {"{\"metadata\":{\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"},\"status\":{\"phase\":\"Running\","
         "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}", true},       /* to finalize */
        {"{\"metadata\":{\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"},\"status\":{\"phase\":\"Failed\"}}", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *p = json_loads(cases[i].pod, 0, NULL);
        assert_non_null(p);
        assert_int_equal(ck_hollow_pod_needs_sync(p), cases[i].needs);
        json_decref(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_needs_sync)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
