/* test_rawmember: raw members (codec.h ck_json_load_raw, printed verbatim by ck_json_print).
 * The loader gives the full parse's tree for every other member and declines odd text; a
 * decoded string is never taken for a raw node; and a pod status merge patch run through the
 * write path's steps (rest.c's status branch) stores the same bytes whether the stored pod's
 * spec was parsed or kept raw - on the strategic-oracle pods, pods made by the create pipeline
 * and random status patches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libgen.h>
#include <unistd.h>
#include <cmocka.h>

#include "testdata.h"

#include "apiserver/apiserver.h"
#include "apiserver/codec.h"
#include "apiserver/patch.h"
#include "apiserver/validate.h"
#include "lib/util.h"

static void test_load_raw(void **state)
{
    (void)state;
    const char *ok[] = {
        "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\"},\"spec\":{\"x\":[1,{\"y\":null}]},"
        "\"status\":{\"phase\":\"Pending\"}}",
        "{\"spec\":{}}",
        "{}",
        "{\"a\":1,\"b\":\"\\u00e9\\n\",\"c\":1.5,\"spec\":{\"k\":\"v\"},\"d\":[true,false,null]}",
    };
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
        json_t *raw = ck_json_load_raw(ok[i], strlen(ok[i]), "spec");
        json_t *full = ck_json_load_fast(ok[i], strlen(ok[i]), 0);
        assert_non_null(raw);
        char *a = ck_json_print(raw, NULL), *b = ck_json_print(full, NULL);
        assert_string_equal(a, b);
        const char *k;
        json_t *v;
        json_object_foreach(full, k, v) {
            size_t n;
            if (!strcmp(k, "spec"))
                assert_non_null(ck_json_raw_text(json_object_get(raw, k), &n));
            else
                assert_true(json_equal(v, json_object_get(raw, k)));
        }
        assert_int_equal(json_object_size(raw), json_object_size(full));
        free(a);
        free(b);
        json_decref(raw);
        json_decref(full);
    }
    const char *declined[] = {
        "[1]", "{\"spec\":1}", "{\"spec\":[1]}", "{\"a\":1,\"a\":2}", "{\"sp\\u0065c\":{}}",
        "{\"a\":1} x", "{\"a\":1,}", "{\"a\":}", "", "{\"spec\":{}", "{\"\xc3\xa9\":1}",
    };
    for (size_t i = 0; i < ARRAY_SIZE(declined); i++) {
        json_t *raw = ck_json_load_raw(declined[i], strlen(declined[i]), "spec");
        if (raw)
            fail_msg("declined[%zu] was loaded", i);
    }
    /* no decoded string is a raw node: 0xFF is not UTF-8, \u00ff decodes to C3 BF */
    const char *strings[] = {"[\"\\u00ff\\u00fe{}\"]", "[\"\xff\xfe{}\"]"};
    for (size_t i = 0; i < ARRAY_SIZE(strings); i++) {
        json_t *v = ck_json_load_fast(strings[i], strlen(strings[i]), 0);
        size_t n;
        assert_true(!v || !ck_json_raw_text(json_array_get(v, 0), &n));
        json_decref(v);
        v = ck_json_load(strings[i], strlen(strings[i]), NULL, NULL);
        assert_true(!v || !ck_json_raw_text(json_array_get(v, 0), &n));
        json_decref(v);
    }
}

/* rest.c's status write on a stored pod (status_merge_shell + ck_rest_update_obj's status
 * branch): the stored text, or "" for a no-op, or "invalid" */
static char *status_write(const char *stored, const json_t *patch, bool raw)
{
    const ck_resource *pods = ck_resource_find("", "v1", "pods");
    json_t *old = raw ? ck_json_load_raw(stored, strlen(stored), CK_STATUS_RAW_KEYS)
                      : ck_json_load_fast(stored, strlen(stored), 0);
    assert_non_null(old);
    ck_meta_set_rv(old, 42);
    json_t *st = ck_patch_merge(json_is_object(json_object_get(old, "status")) ? json_object_get(old, "status")
                                                                               : NULL,
                                json_object_get(patch, "status"), NULL);
    json_t *n = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(old, k, v) {
        if (!strcmp(k, "status"))
            json_object_set(n, k, st);
        else if (!strcmp(k, "metadata"))
            json_object_set_new(n, k, json_copy(v));
        else
            json_object_set(n, k, v);
    }
    if (!json_object_get(n, "status"))
        json_object_set(n, "status", st);
    json_decref(st);
    ck_default(pods, n);
    ck_meta_on_update(pods, n, old);
    json_t *causes = ck_validate(pods, n, old);
    char *out;
    if (json_array_size(causes)) {
        out = xstrdup("invalid");
    } else {
        json_t *a = json_deep_copy(n), *b = json_deep_copy(old);
        json_object_del(json_object_get(a, "metadata"), "managedFields");
        json_object_del(json_object_get(b, "metadata"), "managedFields");
        json_object_del(json_object_get(a, "metadata"), "resourceVersion");
        json_object_del(json_object_get(b, "metadata"), "resourceVersion");
        bool same = json_equal(a, b);
        json_decref(a);
        json_decref(b);
        if (same) {
            out = xstrdup("");
        } else {
            ck_managed_fields_record_sub(n, old, "hollow-node", "Update", "v1", "status");
            size_t len;
            out = ck_meta_dump_for_store(n, &len);
        }
    }
    json_decref(causes);
    json_decref(n);
    json_decref(old);
    return out;
}

/* both reads of one write, within one wall-clock second (managedFields carry the time) */
static void both(const char *stored, const json_t *patch, char **full, char **raw)
{
    for (;;) {
        char t0[32], t1[32];
        ck_rfc3339(ck_wall_ns() / 1000000000, t0);
        *full = status_write(stored, patch, false);
        *raw = status_write(stored, patch, true);
        ck_rfc3339(ck_wall_ns() / 1000000000, t1);
        if (!strcmp(t0, t1))
            return;
        free(*full);
        free(*raw);
    }
}

static int compare_on(const json_t *pod, const char *patch_text)
{
    size_t len;
    char *stored = ck_json_print(pod, &len);
    json_t *patch = ck_json_load_fast(patch_text, strlen(patch_text), 0);
    assert_non_null(patch);
    char *a, *b;
    both(stored, patch, &a, &b);
    if (strcmp(a, b)) {
        fprintf(stderr, "stored: %s\npatch: %s\nfull: %s\nraw:  %s\n", stored, patch_text, a, b);
        fail_msg("a raw spec changed the status write");
    }
    int wrote = *a && strcmp(a, "invalid");
    if (wrote) {
        /* a second status write by the same manager, on the first one's result (its entry is
         * now stored: the raw entries are read for ownership) */
        static const char *const again = "{\"status\":{\"phase\":\"Succeeded\",\"podIP\":\"127.0.0.2\"}}";
        json_t *p2 = ck_json_load_fast(again, strlen(again), 0);
        char *c2, *d2;
        both(a, p2, &c2, &d2);
        if (strcmp(c2, d2)) {
            fprintf(stderr, "stored: %s\nfull: %s\nraw:  %s\n", a, c2, d2);
            fail_msg("a raw spec changed the second status write");
        }
        free(c2);
        free(d2);
        json_decref(p2);
    }
    free(a);
    free(b);
    free(stored);
    json_decref(patch);
    return wrote;
}

static const char *const patches[] = {
    "{\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\","
    "\"lastTransitionTime\":\"2026-11-26T05:00:00Z\"}],\"podIP\":\"127.0.0.1\"}}",
    "{\"status\":{\"phase\":\"Running\"}}",
    "{\"status\":{\"containerStatuses\":[{\"name\":\"c\",\"ready\":true,\"state\":{\"running\":{}}}]}}",
    "{\"status\":{\"conditions\":null,\"message\":\"m\"}}",
    "{\"status\":{}}",
};

/* a pod from the create pipeline with a few random shapes, then one stored write earlier */
static json_t *random_pod(unsigned *seed)
{
    const ck_resource *pods = ck_resource_find("", "v1", "pods");
    json_t *o = json_pack("{s:s,s:s,s:{s:s,s:s,s:{s:s}},s:{s:[]}}", "apiVersion", "v1", "kind", "Pod",
                          "metadata", "name", "p", "namespace", "ns", "labels", "app", "x", "spec",
                          "containers");
    json_t *cs = json_object_get(json_object_get(o, "spec"), "containers");
    int nc = 1 + rand_r(seed) % 3;
    for (int i = 0; i < nc; i++) {
        char name[16];
        snprintf(name, sizeof name, "c%d", i);
        json_array_append_new(cs, json_pack("{s:s,s:s,s:{s:{s:s}}}", "name", name, "image", "img:1",
                                            "resources", "requests", "cpu", "10m"));
    }
    if (rand_r(seed) % 2)
        json_object_set_new(json_object_get(o, "spec"), "tolerations",
                            json_pack("[{s:s,s:s}]", "key", "k\"\\\n", "operator", "Exists"));
    if (rand_r(seed) % 2)
        json_object_set_new(json_object_get(o, "spec"), "nodeName", json_string("n\xc3\xa9"));
    ck_default(pods, o);
    ck_admission_mount_token(json_object_get(o, "spec"));
    json_object_set_new(o, "status", json_pack("{s:s,s:s}", "phase", "Pending", "qosClass", "Burstable"));
    ck_meta_on_create(pods, o, 1700000000);
    ck_default(pods, o);
    ck_managed_fields_record(o, NULL, "creator", "Update", "v1");
    return o;
}

static void test_status_write_raw_spec(void **state)
{
    (void)state;
    int wrote = 0;
    json_t *cases = test_data_load("patch", "strategic-oracle.json");
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        const json_t *orig = json_object_get(c, "orig");
        if (!json_is_object(orig) || !json_is_object(json_object_get(orig, "spec")))
            continue;
        for (size_t p = 0; p < ARRAY_SIZE(patches); p++)
            wrote += compare_on(orig, patches[p]);
    }
    json_decref(cases);
    unsigned seed = 99;
    for (int r = 0; r < 300; r++) {
        json_t *pod = random_pod(&seed);
        for (size_t p = 0; p < ARRAY_SIZE(patches); p++)
            wrote += compare_on(pod, patches[p]);
        json_decref(pod);
    }
    /* most of those are real writes (not no-ops or invalid) */
    assert_true(wrote > 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_raw),
        cmocka_unit_test(test_status_write_raw_spec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
