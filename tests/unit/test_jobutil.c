/* Unit tests for the Job controller's pure logic (controllers/jobutil.c): the pod failure
 * backoff (record and delay), pod finish times, index ranges, successPolicy, and init containers
 * in podFailurePolicy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "controllers/cm.h"
#include "controllers/jobutil.h"
#include "lib/util.h"

/* 10 s, doubled per consecutive failure, capped at 10 min; time already waited counts. */
static void test_backoff_delay(void **state)
{
    (void)state;
    static const struct { int failures; int64_t elapsed_ms, want_ms; } cases[] = {
        {0, 0, 0},
        {1, 0, 10000},
        {1, 4000, 6000},
        {1, 10000, 0},
        {1, 60000, 0},
        {2, 0, 20000},
        {3, 5000, 35000},
        {6, 0, 320000},
        {7, 0, 600000},      /* 640 s capped */
        {30, 0, 600000},
        {30, 599000, 1000},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        int64_t now = 1000000000;
        int64_t got = cm_job_backoff_remaining_ms(cases[i].failures, now - cases[i].elapsed_ms, now);
        if (got != cases[i].want_ms)
            fail_msg("case %zu: %lld, want %lld", i, (long long)got, (long long)cases[i].want_ms);
    }
}

/* newBackoffRecord: failures add up until a success; a success keeps only later failures. */
static void test_backoff_record(void **state)
{
    (void)state;
    cm_job_backoff b = {0};
    cm_job_backoff_update(&b, NULL, 0, NULL, 0);
    assert_int_equal(b.failures, 0);
    int64_t f1[] = {3000, 1000};
    cm_job_backoff_update(&b, NULL, 0, f1, 2);
    assert_int_equal(b.failures, 2);
    assert_int_equal(b.last_failure_ms, 3000);
    int64_t f2[] = {5000};
    cm_job_backoff_update(&b, NULL, 0, f2, 1);
    assert_int_equal(b.failures, 3);
    assert_int_equal(b.last_failure_ms, 5000);
    /* a success at 7000 with failures at 6000, 9000, 8000: two remain, the last at 9000 */
    int64_t s[] = {7000}, f3[] = {6000, 9000, 8000};
    cm_job_backoff_update(&b, s, 1, f3, 3);
    assert_int_equal(b.failures, 2);
    assert_int_equal(b.last_failure_ms, 9000);
    /* a success alone resets */
    int64_t s2[] = {10000};
    cm_job_backoff_update(&b, s2, 1, NULL, 0);
    assert_int_equal(b.failures, 0);
    assert_int_equal(b.last_failure_ms, 0);
}

static void test_finish_time(void **state)
{
    (void)state;
    static const struct { const char *pod; int64_t want_ms; } cases[] = {
        /* latest container finish */
        {"{\"status\":{\"containerStatuses\":["
         "{\"state\":{\"terminated\":{\"finishedAt\":\"2026-01-01T00:00:10Z\"}}},"
         "{\"state\":{\"terminated\":{\"finishedAt\":\"2026-01-01T00:00:20Z\"}}}]}}", 1767225620000},
        /* a container without finish time: the Ready=False transition */
        {"{\"status\":{\"containerStatuses\":[{\"state\":{\"terminated\":{\"exitCode\":1}}}],"
         "\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\",\"lastTransitionTime\":\"2026-01-01T00:00:30Z\"}]}}",
         1767225630000},
        /* Ready still True: deletion time minus grace */
        {"{\"metadata\":{\"deletionTimestamp\":\"2026-01-01T00:01:00Z\",\"deletionGracePeriodSeconds\":30},"
         "\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}", 1767225630000},
        {"{\"metadata\":{\"creationTimestamp\":\"2026-01-01T00:00:01Z\"},\"status\":{\"phase\":\"Failed\"}}",
         1767225601000},                                /* nothing known: its creation */
        {"{\"status\":{\"phase\":\"Failed\"}}", 42},   /* not even that: now */
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        json_t *pod = json_loads(cases[i].pod, 0, NULL);
        assert_non_null(pod);
        int64_t got = cm_job_pod_finish_ms(pod, 42);
        if (got != cases[i].want_ms)
            fail_msg("case %zu: %lld, want %lld", i, (long long)got, (long long)cases[i].want_ms);
        json_decref(pod);
    }
}

static void test_ranges(void **state)
{
    (void)state;
    static const struct { const char *in; long n; const char *out; } cases[] = {
        {"", 5, ""},
        {"0", 5, "0"},
        {"0-2,4", 5, "0-2,4"},
        {"1,2,3", 5, "1-3"},
        {"3-9", 5, "3-4"},          /* beyond completions: dropped */
        {"0,2-3,7", 10, "0,2-3,7"},
        {"x", 5, ""},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        unsigned char bits[16] = {0};
        cm_job_ranges_parse(cases[i].in, bits, cases[i].n);
        char *got = cm_job_ranges_format(bits, cases[i].n);
        if (strcmp(got, cases[i].out))
            fail_msg("case %zu (%s): %s, want %s", i, cases[i].in, got, cases[i].out);
        free(got);
    }
}

static void test_success_policy(void **state)
{
    (void)state;
    static const struct { const char *rules, *done; bool met; const char *msg; } cases[] = {
        {"[{\"succeededIndexes\":\"0\"}]", "0", true, "Matched rules at index 0"},
        {"[{\"succeededIndexes\":\"0-2\"}]", "0,2", false, ""},
        {"[{\"succeededIndexes\":\"0-2\",\"succeededCount\":2}]", "0,2", true, "Matched rules at index 0"},
        {"[{\"succeededCount\":3}]", "0-1", false, ""},
        {"[{\"succeededIndexes\":\"4\"},{\"succeededCount\":2}]", "0-1", true, "Matched rules at index 1"},
        {"[{\"succeededCount\":1}]", "", false, ""},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        json_t *job = json_pack("{s:{s:{s:o}}}", "spec", "successPolicy", "rules",
                                json_loads(cases[i].rules, 0, NULL));
        unsigned char done[5] = {0};
        cm_job_ranges_parse(cases[i].done, done, 5);
        char msg[64] = "";
        bool met = cm_job_success_policy(job, done, 5, msg, sizeof msg);
        if (met != cases[i].met || (met && strcmp(msg, cases[i].msg)))
            fail_msg("case %zu: %d \"%s\"", i, met, msg);
        json_decref(job);
    }
}

/* onExitCodes looks at init containers too. */
static void test_failure_rule_init(void **state)
{
    (void)state;
    json_t *job = json_loads("{\"spec\":{\"podFailurePolicy\":{\"rules\":[{\"action\":\"FailJob\","
                             "\"onExitCodes\":{\"operator\":\"In\",\"values\":[5]}}]}}}", 0, NULL);
    json_t *pod = json_loads("{\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\"},\"status\":{"
                             "\"initContainerStatuses\":[{\"name\":\"init\",\"state\":{\"terminated\":{\"exitCode\":5}}}]}}",
                             0, NULL);
    const char *action;
    char msg[256];
    assert_int_equal(cm_job_failure_rule(job, pod, &action, msg, sizeof msg), 0);
    assert_string_equal(action, "FailJob");
    assert_string_equal(msg, "Container init for pod ns/p failed with exit code 5 matching FailJob rule at index 0");
    json_decref(pod);
    json_decref(job);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_delay),
        cmocka_unit_test(test_backoff_record),
        cmocka_unit_test(test_finish_time),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_success_policy),
        cmocka_unit_test(test_failure_rule_init),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
