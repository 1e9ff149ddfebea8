/* Unit tests for the controller-manager's shared pieces (controllers/cm.c): expectations, JSON
 * accessors, pod readiness/availability, Service targetPort resolution, the template hash and
 * cm_parallel.  The controllers themselves are tested end to end (tests/e2e/controllers.sh). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "controllers/cm.h"
#include "lib/tz.h"
#include "lib/util.h"

static void test_expectations(void **state)
{
    (void)state;
    cm *m = cm_new(NULL);
    assert_true(cm_expectations_met(m, "ns/unknown"));
    json_t *dels = json_pack("[s]", "ns/p1");
    cm_expect(m, "ns/rs", 2, dels);
    json_decref(dels);
    assert_false(cm_expectations_met(m, "ns/rs"));
    cm_observe_add(m, "ns/rs");
    cm_observe_add(m, "ns/rs");
    assert_false(cm_expectations_met(m, "ns/rs"));      /* the deletion is still pending */
    cm_observe_del(m, "ns/rs", "ns/other");              /* not one we asked for */
    assert_false(cm_expectations_met(m, "ns/rs"));
    cm_observe_del(m, "ns/rs", "ns/p1");
    assert_true(cm_expectations_met(m, "ns/rs"));
    cm_observe_del(m, "ns/rs", "ns/p1");                 /* seen twice (deleting, then gone) */
    assert_true(cm_expectations_met(m, "ns/rs"));
    cm_expect(m, "ns/rs", 1, NULL);
    assert_false(cm_expectations_met(m, "ns/rs"));
    cm_expect_forget(m, "ns/rs");
    assert_true(cm_expectations_met(m, "ns/rs"));
    cm_free(m);
}

static void test_accessors(void **state)
{
    (void)state;
    json_t *o = json_loads("{\"metadata\":{\"name\":\"a\",\"namespace\":\"ns\",\"uid\":\"u1\","
                           "\"annotations\":{\"x.io/y\":\"v\"},\"finalizers\":[\"orphan\"],"
                           "\"ownerReferences\":[{\"name\":\"o1\"},{\"name\":\"o2\",\"controller\":true}]},"
                           "\"spec\":{\"replicas\":3,\"paused\":true}}", 0, NULL);
    assert_non_null(o);
    assert_string_equal(cm_name(o), "a");
    assert_string_equal(cm_ns(o), "ns");
    assert_string_equal(cm_uid(o), "u1");
    assert_int_equal(cm_int(o, "spec.replicas", 1), 3);
    assert_int_equal(cm_int(o, "spec.missing", 7), 7);
    assert_true(cm_bool(o, "spec.paused", false));
    assert_false(cm_bool(o, "spec.nope", false));
    assert_null(cm_get(o, "spec.replicas.deeper"));
    assert_string_equal(cm_annotation(o, "x.io/y"), "v");
    assert_true(cm_has_finalizer(o, "orphan"));
    assert_false(cm_has_finalizer(o, "foregroundDeletion"));
    assert_string_equal(json_string_value(json_object_get(cm_controller_ref(o), "name")), "o2");
    assert_false(cm_deleting(o));
    char *ns = NULL;
    const char *name = NULL;
    cm_split_key("default/web", &ns, &name);
    assert_string_equal(ns, "default");
    assert_string_equal(name, "web");
    free(ns);
    cm_split_key("node-1", &ns, &name);
    assert_null(ns);
    assert_string_equal(name, "node-1");
    json_decref(o);
}

static void test_pods(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        bool active, ready, avail_now, avail_10s;
    } cases[] = {
        {"{\"status\":{\"phase\":\"Pending\"}}", true, false, false, false},
        {"{\"status\":{\"phase\":\"Succeeded\"}}", false, false, false, false},
        {"{\"status\":{\"phase\":\"Failed\"}}", false, false, false, false},
        {"{\"metadata\":{\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"},\"status\":{\"phase\":\"Running\"}}",
         false, false, false, false},
        {"{\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\","
         "\"lastTransitionTime\":\"2026-01-01T00:00:00Z\"}]}}", true, true, true, true},
        {"{\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\"}]}}",
         true, false, false, false},
    };
    int64_t t0 = 0;
    assert_int_equal(ck_parse_rfc3339("2026-01-01T00:00:05Z", &t0), 0);
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        json_t *p = json_loads(cases[i].json, 0, NULL);
        assert_non_null(p);
        assert_int_equal(cm_pod_active(p), cases[i].active);
        assert_int_equal(cm_pod_ready(p), cases[i].ready);
        assert_int_equal(cm_pod_available(p, 0, t0), cases[i].avail_now);
        /* ready at 00:00:00; at 00:00:05 it is not yet available with minReadySeconds 10 */
        assert_false(cm_pod_available(p, 10, t0));
        assert_int_equal(cm_pod_available(p, 10, t0 + 10), cases[i].avail_10s);
        json_decref(p);
    }
}

static void test_target_port(void **state)
{
    (void)state;
    json_t *pod = json_loads("{\"spec\":{\"containers\":[{\"name\":\"a\",\"ports\":[{\"name\":\"http\","
                             "\"containerPort\":8080}]},{\"name\":\"b\",\"ports\":[{\"name\":\"metrics\","
                             "\"containerPort\":9090}]}]}}", 0, NULL);
    static const struct { const char *port; long want; } cases[] = {
        {"{\"port\":80,\"targetPort\":8081}", 8081},
        {"{\"port\":80,\"targetPort\":\"http\"}", 8080},
        {"{\"port\":80,\"targetPort\":\"metrics\"}", 9090},
        {"{\"port\":80,\"targetPort\":\"nope\"}", -1},
        {"{\"port\":80}", 80},
        {"{\"port\":80,\"targetPort\":\"9000\"}", 9000},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        json_t *sp = json_loads(cases[i].port, 0, NULL);
        assert_int_equal(cm_target_port(sp, pod), cases[i].want);
        json_decref(sp);
    }
    json_decref(pod);
}

static void test_hash(void **state)
{
    (void)state;
    json_t *a = json_loads("{\"x\":1,\"y\":{\"b\":2,\"a\":1}}", 0, NULL);
    json_t *b = json_loads("{\"y\":{\"a\":1,\"b\":2},\"x\":1}", 0, NULL);
    json_t *c = json_loads("{\"x\":2,\"y\":{\"b\":2,\"a\":1}}", 0, NULL);
    char ha[16], hb[16], hc[16], hs[16];
    cm_hash(a, 0, ha);
    cm_hash(b, 0, hb);
    cm_hash(c, 0, hc);
    cm_hash(a, 1, hs);
    assert_string_equal(ha, hb);            /* key order does not matter */
    assert_string_not_equal(ha, hc);
    assert_string_not_equal(ha, hs);        /* the collision count changes the name */
    assert_true(strlen(ha) > 0 && strlen(ha) <= 10);
    for (const char *p = ha; *p; p++)
        assert_non_null(strchr("bcdfghjklmnpqrstvwxz2456789", *p));
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

static int add_index(void *ctx, int i)
{
    int *slots = ctx;
    slots[i] = i + 1;
    return i % 3 == 0 ? -1 : 0;
}

static void test_parallel(void **state)
{
    (void)state;
    static const int widths[] = {1, 4, 64, 100};
    for (size_t w = 0; w < ARRAY_SIZE(widths); w++) {
        int slots[50] = {0};
        int fails = cm_parallel(50, widths[w], add_index, slots);
        assert_int_equal(fails, 17);                 /* 0, 3, ..., 48 */
        for (int i = 0; i < 50; i++)
            assert_int_equal(slots[i], i + 1);       /* every index ran exactly once */
    }
    assert_int_equal(cm_parallel(0, 8, add_index, NULL), 0);
}

static void test_cron(void **state)
{
    (void)state;
    int64_t base = 0;   /* Wed 2026-11-25 17:25:30 UTC */
    assert_int_equal(ck_parse_rfc3339("2026-11-25T17:25:30Z", &base), 0);
    static const struct { const char *spec, *want; } cases[] = {
        {"* * * * *", "2026-11-25T17:26:00Z"},
        {"*/15 * * * *", "2026-11-25T17:30:00Z"},
        {"0 * * * *", "2026-11-25T18:00:00Z"},
        {"@hourly", "2026-11-25T18:00:00Z"},
        {"@daily", "2026-11-26T00:00:00Z"},
        {"30 9 * * mon-fri", "2026-11-26T09:30:00Z"},
        {"0 0 * * sun", "2026-11-29T00:00:00Z"},
        {"0 0 * * 7", "2026-11-29T00:00:00Z"},
        {"0 0 1 jan *", "2027-01-01T00:00:00Z"},
        {"5,10 17,18 * * *", "2026-11-25T18:05:00Z"},
        {"0 0 25 12 *", "2026-12-25T00:00:00Z"},
    };
    char got[32];
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        int64_t t = cm_cron_next(cases[i].spec, base);
        assert_true(t > 0);
        ck_rfc3339(t, got);
        assert_string_equal(got, cases[i].want);
    }
    /* both day fields restricted: either matches (Tue Dec 1 comes before Wed Dec 2) */
    ck_rfc3339(cm_cron_next("0 12 1 * 3", base), got);
    assert_string_equal(got, "2026-12-01T12:00:00Z");
    static const char *const bad[] = {"", "* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *",
                                      "* * * 13 *", "* * * * 8", "a * * * *", "*/0 * * * *", "5-1 * * * *"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_int_equal(cm_cron_next(bad[i], base), 0);
}

/* Schedules on a zone's wall clock, across DST changes. */
static void test_cron_tz(void **state)
{
    (void)state;
    static const struct { const char *zone, *spec, *after, *want; } cases[] = {
        {"America/New_York", "0 9 * * *", "2026-11-25T17:25:30Z", "2026-11-26T14:00:00Z"},
        {"Europe/Berlin", "0 9 * * *", "2026-07-01T00:00:00Z", "2026-07-01T07:00:00Z"},
        {"Asia/Kolkata", "30 9 * * *", "2026-07-01T00:00:00Z", "2026-07-01T04:00:00Z"},
        {"UTC", "0 9 * * *", "2026-07-01T00:00:00Z", "2026-07-01T09:00:00Z"},
        /* 02:30 does not exist on 2026-03-29 in Berlin (02:00 -> 03:00): the next day's */
        {"Europe/Berlin", "30 2 * * *", "2026-03-28T12:00:00Z", "2026-03-30T00:30:00Z"},
        /* 01:30 happens twice on 2026-11-01 in New York: EDT, then EST */
        {"America/New_York", "30 1 * * *", "2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z"},
        {"America/New_York", "30 1 * * *", "2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z"},
        /* southern hemisphere: Sydney midnight in January is 13:00 UTC the day before */
        {"Australia/Sydney", "0 0 1 1 *", "2026-06-01T00:00:00Z", "2026-12-31T13:00:00Z"},
    };
    char got[32];
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        ck_error *err = NULL;
        ck_tz *tz = ck_tz_load(cases[i].zone, NULL, &err);
        if (!tz)
            fail_msg("%s: %s", cases[i].zone, err->msg);
        int64_t after = 0;
        assert_int_equal(ck_parse_rfc3339(cases[i].after, &after), 0);
        ck_rfc3339(cm_cron_next_tz(cases[i].spec, tz, after), got);
        if (strcmp(got, cases[i].want))
            fail_msg("%s in %s after %s: %s, want %s", cases[i].spec, cases[i].zone, cases[i].after,
                     got, cases[i].want);
        ck_tz_free(tz);
    }
}

/* podFailurePolicy: which rule a failed pod matches, first match wins. */
static void test_pod_failure_policy(void **state)
{
    (void)state;
    json_t *job = json_loads(
        "{\"spec\":{\"podFailurePolicy\":{\"rules\":["
        "{\"action\":\"FailJob\",\"onExitCodes\":{\"containerName\":\"main\",\"operator\":\"In\",\"values\":[42,43]}},"
        "{\"action\":\"Ignore\",\"onPodConditions\":[{\"type\":\"DisruptionTarget\"}]},"
        "{\"action\":\"FailIndex\",\"onExitCodes\":{\"operator\":\"NotIn\",\"values\":[1,2]}},"
        "{\"action\":\"Count\",\"onPodConditions\":[{\"type\":\"ConfigIssue\",\"status\":\"False\"}]}"
        "]}}}", 0, NULL);
    assert_non_null(job);
    static const struct { const char *status; int rule; const char *action, *msg; } cases[] = {
        {"{\"containerStatuses\":[{\"name\":\"main\",\"state\":{\"terminated\":{\"exitCode\":42}}}]}", 0,
         "FailJob", "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 0"},
        /* 42 in another container: not rule 0 (containerName), but NotIn [1,2] of rule 2 */
        {"{\"containerStatuses\":[{\"name\":\"side\",\"state\":{\"terminated\":{\"exitCode\":42}}}]}", 2,
         "FailIndex", "Container side for pod ns/p failed with exit code 42 matching FailIndex rule at index 2"},
        {"{\"containerStatuses\":[{\"name\":\"main\",\"state\":{\"terminated\":{\"exitCode\":1}}}]}", -1, "Count", ""},
        /* exit code 0 never matches, not even NotIn */
        {"{\"containerStatuses\":[{\"name\":\"main\",\"state\":{\"terminated\":{\"exitCode\":0}}}]}", -1, "Count", ""},
        {"{\"conditions\":[{\"type\":\"DisruptionTarget\",\"status\":\"True\"}]}", 1, "Ignore",
         "Pod ns/p has condition DisruptionTarget matching Ignore rule at index 1"},
        {"{\"conditions\":[{\"type\":\"DisruptionTarget\",\"status\":\"False\"}]}", -1, "Count", ""},
        {"{\"conditions\":[{\"type\":\"ConfigIssue\",\"status\":\"False\"}]}", 3, "Count",
         "Pod ns/p has condition ConfigIssue matching Count rule at index 3"},
        /* both an exit code and a condition: the earlier rule wins */
        {"{\"conditions\":[{\"type\":\"DisruptionTarget\",\"status\":\"True\"}],"
         "\"containerStatuses\":[{\"name\":\"main\",\"state\":{\"terminated\":{\"exitCode\":43}}}]}", 0, "FailJob",
         "Container main for pod ns/p failed with exit code 43 matching FailJob rule at index 0"},
        {"{}", -1, "Count", ""},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        json_t *pod = json_pack("{s:{s:s, s:s}, s:o}", "metadata", "name", "p", "namespace", "ns", "status",
                                json_loads(cases[i].status, 0, NULL));
        const char *action = NULL;
        char msg[256];
        int r = cm_job_failure_rule(job, pod, &action, msg, sizeof msg);
        if (r != cases[i].rule || strcmp(action, cases[i].action) || strcmp(msg, cases[i].msg))
            fail_msg("case %zu: rule %d %s \"%s\"", i, r, action, msg);
        json_decref(pod);
    }
    /* no policy: every failure counts */
    json_t *plain = json_object(), *pod = json_pack("{s:{}}", "status");
    const char *action = NULL;
    char msg[16];
    assert_int_equal(cm_job_failure_rule(plain, pod, &action, msg, sizeof msg), -1);
    assert_string_equal(action, "Count");
    json_decref(plain);
    json_decref(pod);
    json_decref(job);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expectations),
        cmocka_unit_test(test_accessors),
        cmocka_unit_test(test_pods),
        cmocka_unit_test(test_target_port),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_parallel),
        cmocka_unit_test(test_cron),
        cmocka_unit_test(test_cron_tz),
        cmocka_unit_test(test_pod_failure_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
