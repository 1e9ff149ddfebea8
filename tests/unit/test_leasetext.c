/* test_leasetext: the Lease renewal text path (leasetext.c) against the tree path it stands in
 * for (merge patch, defaults, metadata, validation, managedFields, print): the same bytes
 * whenever it answers, a decline wherever the tree path would do something it does not (a new
 * owner, a field moving between managers, an integer change, a no-op, odd shapes), and a table
 * plus random Leases to show both. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "apiserver/apiserver.h"
#include "apiserver/codec.h"
#include "apiserver/patch.h"
#include "apiserver/validate.h"
#include "lib/util.h"

static const ck_resource *leases(void)
{
    return ck_resource_find("coordination.k8s.io", "v1", "leases");
}

/* rest.c's create pipeline for a Lease body, as stored */
static char *create_lease(const char *body, const char *manager)
{
    json_t *o = ck_json_load_fast(body, strlen(body), 0);
    assert_non_null(o);
    ck_default(leases(), o);
    ck_meta_on_create(leases(), o, 1700000000);
    json_t *causes = ck_validate(leases(), o, NULL);
    assert_int_equal(json_array_size(causes), 0);
    json_decref(causes);
    ck_managed_fields_record(o, NULL, manager, "Update", "coordination.k8s.io/v1");
    size_t len;
    char *text = ck_meta_dump_for_store(o, &len);
    json_decref(o);
    return text;
}

/* rest.c's patch pipeline (do_patch + ck_rest_update_obj) for a merge patch of a Lease: the
 * stored text, or NULL where it answers without a write (a no-op) or with an error */
static char *tree_renew(const char *stored, const json_t *patch, const char *manager)
{
    json_t *old = ck_json_load_fast(stored, strlen(stored), 0);
    assert_non_null(old);
    ck_meta_set_rv(old, 42);
    json_t *n = ck_patch_merge(old, patch, NULL);
    ck_default(leases(), n);
    ck_meta_on_update(leases(), n, old);
    json_t *causes = ck_validate(leases(), n, old);
    bool bad = json_array_size(causes) > 0;
    json_decref(causes);
    char *text = NULL;
    if (!bad) {
        /* the no-op check compares without managedFields and resourceVersion */
        json_t *a = json_deep_copy(n), *b = json_deep_copy(old);
        json_object_del(json_object_get(a, "metadata"), "managedFields");
        json_object_del(json_object_get(b, "metadata"), "managedFields");
        bool same = json_equal(a, b);
        json_decref(a);
        json_decref(b);
        if (!same) {
            ck_managed_fields_record(n, old, manager, "Update", "coordination.k8s.io/v1");
            size_t len;
            text = ck_meta_dump_for_store(n, &len);
        }
    }
    json_decref(n);
    json_decref(old);
    return text;
}

/* Both paths on one renewal; returns whether the text path answered (then with the tree's
 * bytes).  Retried when the second turns between the two (managedFields carry the time). */
static bool check_one(const char *stored, const char *patch_text, const char *manager)
{
    json_t *patch = ck_json_load_fast(patch_text, strlen(patch_text), 0);
    assert_non_null(patch);
    for (;;) {
        char now[32], after[32];
        ck_rfc3339(ck_wall_ns() / 1000000000, now);
        ck_buf out;
        ck_buf_init(&out, 0);
        int rc = ck_lease_renew_text(stored, strlen(stored), patch, manager, now, &out);
        char *tree = tree_renew(stored, patch, manager);
        ck_rfc3339(ck_wall_ns() / 1000000000, after);
        if (strcmp(now, after)) {
            free(tree);
            ck_buf_free(&out);
            continue;
        }
        if (rc) {
            if (!tree || strlen(tree) != out.len || memcmp(tree, out.data, out.len)) {
                fprintf(stderr, "stored: %s\npatch:  %s\ntree:   %s\ntext:   %.*s\n", stored,
                        patch_text, tree ? tree : "(none)", (int)out.len, out.data);
                fail_msg("the text path differs from the tree path");
            }
        } else {
            assert_int_equal(out.len, 0);
        }
        free(tree);
        ck_buf_free(&out);
        json_decref(patch);
        return rc == 1;
    }
}

#define HOLLOW "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":{\"name\":" \
               "\"hollow-17\",\"namespace\":\"kube-node-lease\"},\"spec\":{\"holderIdentity\":\"hollow-17\"," \
               "\"leaseDurationSeconds\":40,\"renewTime\":\"2026-11-26T05:00:00.000000Z\"}}"
#define RENEW(t) "{\"spec\":{\"holderIdentity\":\"hollow-17\",\"leaseDurationSeconds\":40,\"renewTime\":\"" t "\"}}"

static void test_renew_table(void **state)
{
    (void)state;
    char *hollow = create_lease(HOLLOW, "hollow-node");
    const char *kubelet_body =
        "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":{\"name\":\"n1\","
        "\"namespace\":\"kube-node-lease\",\"labels\":{\"a\":\"b\"},\"ownerReferences\":[{\"apiVersion\":"
        "\"v1\",\"kind\":\"Node\",\"name\":\"n1\",\"uid\":\"7a1b\"}]},\"spec\":{\"holderIdentity\":\"n1\","
        "\"leaseDurationSeconds\":40,\"renewTime\":\"2026-11-26T05:00:00.000000Z\"}}";
    char *kubelet = create_lease(kubelet_body, "kubelet");
    char *unknown = create_lease(HOLLOW, "");
    struct {
        const char *what, *stored, *patch, *manager;
        bool fast;
    } cases[] = {
        {"hollow renewal", hollow, RENEW("2026-11-26T05:00:10.000000Z"), "hollow-node", true},
        {"renewTime only", hollow, "{\"spec\":{\"renewTime\":\"2026-11-26T05:00:10.5Z\"}}", "hollow-node", true},
        {"kubelet lease with owner", kubelet,
         "{\"spec\":{\"renewTime\":\"2026-11-26T05:00:10.000000Z\"}}", "kubelet", true},
        {"string with escapes", hollow, "{\"spec\":{\"holderIdentity\":\"a\\\"b\\u00e9\"}}", "hollow-node", true},
        {"no change (no-op)", hollow, RENEW("2026-11-26T05:00:00.000000Z"), "hollow-node", false},
        {"another manager", hollow, RENEW("2026-11-26T05:00:10.000000Z"), "someone", false},
        {"integer change", hollow, "{\"spec\":{\"leaseDurationSeconds\":41}}", "hollow-node", false},
        {"invalid integer", hollow, "{\"spec\":{\"leaseDurationSeconds\":0}}", "hollow-node", false},
        {"new field", hollow, "{\"spec\":{\"acquireTime\":\"2026-11-26T05:00:10.000000Z\"}}", "hollow-node", false},
        {"null removes", hollow, "{\"spec\":{\"renewTime\":null}}", "hollow-node", false},
        {"type change", hollow, "{\"spec\":{\"renewTime\":5}}", "hollow-node", false},
        {"unknown field", hollow, "{\"spec\":{\"bogus\":\"x\"}}", "hollow-node", false},
        {"metadata too", hollow, "{\"metadata\":{\"labels\":{\"a\":\"b\"}},\"spec\":{\"renewTime\":\"x\"}}",
         "hollow-node", false},
        {"spec not an object", hollow, "{\"spec\":[1]}", "hollow-node", false},
        {"manager with a quote", hollow, RENEW("2026-11-26T05:00:10.000000Z"), "a\"b", false},
        {"no manager (unknown)", unknown, RENEW("2026-11-26T05:00:10.000000Z"), "", true},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        bool fast = check_one(cases[i].stored, cases[i].patch, cases[i].manager);
        if (fast != cases[i].fast)
            fail_msg("%s: text path %s", cases[i].what, fast ? "answered" : "declined");
    }
    /* a chain of renewals stays on the text path */
    char *cur = xstrdup(hollow);
    for (int i = 1; i <= 5; i++) {
        char p[160];
        snprintf(p, sizeof p, RENEW("2026-11-26T05:00:%02d.000000Z"), i * 10);
        json_t *patch = ck_json_load_fast(p, strlen(p), 0);
        char now[32];
        ck_rfc3339(ck_wall_ns() / 1000000000, now);
        ck_buf out;
        ck_buf_init(&out, 0);
        assert_int_equal(ck_lease_renew_text(cur, strlen(cur), patch, "hollow-node", now, &out), 1);
        assert_true(check_one(cur, p, "hollow-node"));
        free(cur);
        cur = ck_buf_steal(&out);
        json_decref(patch);
    }
    free(cur);
    free(hollow);
    free(kubelet);
    free(unknown);
}

/* Two managers: the entries are sorted by time again after a renewal (entries_store), a field
 * the writer does not own or another owns is declined. */
static void test_renew_two_managers(void **state)
{
    (void)state;
    const char *stored =
        "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":{\"name\":\"l\","
        "\"namespace\":\"ns\",\"uid\":\"u\",\"creationTimestamp\":\"2026-11-26T05:00:00Z\",\"managedFields\":["
        "{\"manager\":\"a\",\"operation\":\"Update\",\"apiVersion\":\"coordination.k8s.io/v1\",\"time\":"
        "\"2026-11-26T05:00:00Z\",\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:spec\":{\"f:renewTime\":{}}}},"
        "{\"manager\":\"b\",\"operation\":\"Update\",\"apiVersion\":\"coordination.k8s.io/v1\",\"time\":"
        "\"2026-11-26T05:00:05Z\",\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:spec\":{\"f:holderIdentity\":{},"
        "\"f:leaseDurationSeconds\":{}}}}]},\"spec\":{\"holderIdentity\":\"h\",\"leaseDurationSeconds\":40,"
        "\"renewTime\":\"2026-11-26T05:00:00.000000Z\"}}";
    assert_true(check_one(stored, "{\"spec\":{\"renewTime\":\"r2\"}}", "a"));
    assert_true(check_one(stored, "{\"spec\":{\"renewTime\":\"r2\",\"leaseDurationSeconds\":40}}", "a"));
    assert_true(check_one(stored, "{\"spec\":{\"holderIdentity\":\"h2\"}}", "b"));
    assert_false(check_one(stored, "{\"spec\":{\"holderIdentity\":\"h2\"}}", "a"));  /* b owns it */
    assert_false(check_one(stored, "{\"spec\":{\"renewTime\":\"r2\"}}", "b"));       /* a owns it */
    /* an Apply entry, a subresource entry and an entry with an unknown key are left to the tree */
    const char *shapes[] = {
        "{\"manager\":\"a\",\"operation\":\"Apply\",\"apiVersion\":\"coordination.k8s.io/v1\",\"time\":"
        "\"2026-11-26T05:00:00Z\",\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:spec\":{\"f:renewTime\":{}}}}",
        "{\"manager\":\"a\",\"operation\":\"Update\",\"apiVersion\":\"coordination.k8s.io/v1\",\"time\":"
        "\"2026-11-26T05:00:00Z\",\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:spec\":{\"f:renewTime\":{}}},"
        "\"subresource\":\"status\"}",
        "{\"manager\":\"a\",\"operation\":\"Update\",\"apiVersion\":\"coordination.k8s.io/v1\",\"time\":"
        "\"2026-11-26T05:00:00Z\",\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:spec\":{\"f:renewTime\":{}}},"
        "\"extra\":1}",
        "{\"operation\":\"Update\",\"manager\":\"a\",\"apiVersion\":\"coordination.k8s.io/v1\",\"time\":"
        "\"2026-11-26T05:00:00Z\",\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:spec\":{\"f:renewTime\":{}}}}",
    };
    for (size_t i = 0; i < ARRAY_SIZE(shapes); i++) {
        char *s = xasprintf("{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":"
                            "{\"name\":\"l\",\"namespace\":\"ns\",\"managedFields\":[%s]},\"spec\":"
                            "{\"renewTime\":\"x\"}}", shapes[i]);
        assert_false(check_one(s, "{\"spec\":{\"renewTime\":\"r2\"}}", "a"));
        free(s);
    }
}

static const char *pick(unsigned *seed, const char *const *v, size_t n)
{
    return v[(size_t)rand_r(seed) % n];
}

/* Random Leases (metadata extras, several managers with random times and fields) and random
 * patches: whenever the text path answers, it matches the tree byte for byte; it answers often. */
static void test_renew_random(void **state)
{
    (void)state;
    unsigned seed = 4242;
    static const char *const managers[] = {"a", "b", "kubelet", "hollow-node"};
    static const char *const times[] = {"2026-11-26T05:00:00Z", "2026-11-26T05:00:05Z",
                                        "2026-11-26T05:00:05Z", "2099-01-01T00:00:00Z"};
    static const char *const fields[] = {"holderIdentity", "renewTime", "acquireTime",
                                         "leaseDurationSeconds"};
    static const char *const metas[] = {"", ",\"labels\":{\"x\":\"y\"}", ",\"labels\":{}",
                                        ",\"annotations\":{\"k\":\"v\"}", ",\"finalizers\":[\"f\"]",
                                        ",\"generation\":3", ",\"deletionTimestamp\":\"2026-11-26T05:00:00Z\"",
                                        ",\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":\"Node\","
                                        "\"name\":\"n\",\"uid\":\"u\",\"bogus\":1}]"};
    int answered = 0, runs = 2000;
    for (int r = 0; r < runs; r++) {
        ck_buf s;
        ck_buf_init(&s, 0);
        ck_buf_printf(&s, "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":"
                          "{\"name\":\"l\",\"namespace\":\"ns\"%s,\"managedFields\":[",
                      pick(&seed, metas, ARRAY_SIZE(metas)));
        /* managers in a random order with distinct (or, at random, overlapping) fields */
        int nm = 1 + rand_r(&seed) % 3;
        bool owned[4] = {0};
        for (int m = 0; m < nm; m++) {
            ck_buf_printf(&s, "%s{\"manager\":\"%s\",\"operation\":\"Update\",\"apiVersion\":\"%s\","
                              "\"time\":\"%s\",\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:spec\":{",
                          m ? "," : "", managers[m], rand_r(&seed) % 8 ? "coordination.k8s.io/v1" : "v1",
                          pick(&seed, times, ARRAY_SIZE(times)));
            bool first = true;
            for (int f = 0; f < 4; f++) {
                /* the first manager mostly holds renewTime, as a node holds its Lease */
                bool take = m == 0 && f == 1 ? rand_r(&seed) % 8 != 0 : rand_r(&seed) % 2 == 0;
                if ((owned[f] && rand_r(&seed) % 6) || !take)
                    continue;
                owned[f] = true;
                ck_buf_printf(&s, "%s\"f:%s\":{}", first ? "" : ",", fields[f]);
                first = false;
            }
            if (first)
                ck_buf_addstr(&s, "\"f:renewTime\":{}");
            ck_buf_addstr(&s, "}}}");
        }
        ck_buf_printf(&s, "]},\"spec\":{\"holderIdentity\":\"h\",\"leaseDurationSeconds\":40,"
                          "\"renewTime\":\"2026-11-26T05:00:00.000000Z\"}}");
        char *stored = ck_buf_steal(&s);
        ck_buf p;
        ck_buf_init(&p, 0);
        ck_buf_addstr(&p, "{\"spec\":{");
        bool first = true;
        for (int f = 0; f < 4; f++) {
            if (f == 1 ? rand_r(&seed) % 4 == 0 : rand_r(&seed) % 4 != 0)
                continue;
            if (f == 3)
                ck_buf_printf(&p, "%s\"%s\":%d", first ? "" : ",", fields[f], rand_r(&seed) % 4 ? 40 : 41);
            else
                ck_buf_printf(&p, "%s\"%s\":\"%s\"", first ? "" : ",", fields[f],
                              rand_r(&seed) % 4 ? "v2" : (f == 0 ? "h" : "2026-11-26T05:00:00.000000Z"));
            first = false;
        }
        if (first)
            ck_buf_addstr(&p, "\"renewTime\":\"v3\"");
        ck_buf_addstr(&p, "}}");
        char *patch = ck_buf_steal(&p);
        if (check_one(stored, patch, managers[rand_r(&seed) % 3 ? 0 : rand_r(&seed) % 4]))
            answered++;
        free(stored);
        free(patch);
    }
    fprintf(stderr, "random: %d of %d renewals on the text path\n", answered, runs);
    /* the generator makes many renewable Leases: the short-cut must take a fair share */
    assert_true(answered > runs / 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_renew_table),
        cmocka_unit_test(test_renew_two_managers),
        cmocka_unit_test(test_renew_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
