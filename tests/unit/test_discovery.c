/* Unit tests for apiserver/discovery: Accept negotiation for every header kubectl sends
 * (kubectl-wire.md 1), legacy and aggregated document shapes against the resource table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <stdio.h>

#include "apiserver/discovery.h"
#include "apiserver/resources.h"

/* The space-separated word lists of the resource table (verbs, subresources, field lists). */
static void test_words(void **state)
{
    (void)state;
    static const struct { const char *list; const char *want; } cases[] = {
        {"get list watch", "get|list|watch|"}, {"  status   scale ", "status|scale|"},
        {"", ""}, {"   ", ""}, {NULL, ""}, {"one", "one|"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char got[64] = "";
        size_t len, n = 0;
        for (const char *p = cases[i].list, *w; (w = ck_word_next(&p, &len));)
            n += (size_t)snprintf(got + n, sizeof got - n, "%.*s|", (int)len, w);
        assert_string_equal(got, cases[i].want);
    }
    assert_true(ck_word_in("get list watch", "list"));
    assert_true(ck_word_in(" watch", "watch"));
    assert_false(ck_word_in("get list watch", "lis"));
    assert_false(ck_word_in("get listx", "list"));
    assert_false(ck_word_in("get  list", ""));
    assert_false(ck_word_in(NULL, "get"));
}

static void test_negotiate(void **state)
{
    static const struct {
        const char *accept;
        enum ck_discovery_format want;
    } cases[] = {
        /* kubectl 1.27-1.29 */
        {"application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
         CK_DISCOVERY_V2BETA1},
        /* kubectl 1.30-1.33 */
        {"application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
         "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
         CK_DISCOVERY_V2},
        /* with spaces and a protobuf range first (skipped: JSON only) */
        {"application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList, "
         "application/json; g=apidiscovery.k8s.io; v=v2; as=APIGroupDiscoveryList, application/json",
         CK_DISCOVERY_V2},
        /* legacy clients */
        {"application/json, */*", CK_DISCOVERY_LEGACY},
        {"application/json", CK_DISCOVERY_LEGACY},
        {"*/*", CK_DISCOVERY_LEGACY},
        {"", CK_DISCOVERY_LEGACY},
        {NULL, CK_DISCOVERY_LEGACY},
        /* an unknown version is not served; the next range wins */
        {"application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList,application/json",
         CK_DISCOVERY_LEGACY},
        /* legacy listed first wins over aggregated listed later */
        {"application/json,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
         CK_DISCOVERY_LEGACY},
        /* q=0 excludes */
        {"application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0,"
         "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
         CK_DISCOVERY_V2BETA1},
        /* a Table request is not aggregated discovery */
        {"application/json;as=Table;v=v1;g=meta.k8s.io,application/json", CK_DISCOVERY_LEGACY},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum ck_discovery_format f = ck_discovery_negotiate(cases[i].accept);
        if (f != cases[i].want)
            fail_msg("case %zu (%s): got %d want %d", i, cases[i].accept ? cases[i].accept : "(null)",
                     f, cases[i].want);
    }
    assert_string_equal(ck_discovery_content_type(CK_DISCOVERY_V2),
                        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList");
    assert_string_equal(ck_discovery_content_type(CK_DISCOVERY_V2BETA1),
                        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList");
    assert_string_equal(ck_discovery_content_type(CK_DISCOVERY_LEGACY), "application/json");
}

static void test_legacy(void **state)
{
    ck_discovery_set_server_address("127.0.0.1:6443");
    json_t *v = ck_discovery_api_versions();
    assert_string_equal(json_string_value(json_object_get(v, "kind")), "APIVersions");
    assert_string_equal(json_string_value(json_array_get(json_object_get(v, "versions"), 0)), "v1");
    json_t *addr = json_array_get(json_object_get(v, "serverAddressByClientCIDRs"), 0);
    assert_string_equal(json_string_value(json_object_get(addr, "clientCIDR")), "0.0.0.0/0");
    assert_string_equal(json_string_value(json_object_get(addr, "serverAddress")), "127.0.0.1:6443");
    json_decref(v);

    json_t *g = ck_discovery_api_groups();
    assert_string_equal(json_string_value(json_object_get(g, "kind")), "APIGroupList");
    json_t *groups = json_object_get(g, "groups");
    /* every non-core group in the table appears once, with its preferred version */
    for (size_t i = 0; i < ck_nresources; i++) {
        const ck_resource *r = &ck_resources[i];
        if (!r->group[0])
            continue;
        int found = 0;
        size_t k;
        json_t *grp;
        json_array_foreach(groups, k, grp) {
            if (strcmp(json_string_value(json_object_get(grp, "name")), r->group))
                continue;
            found++;
            json_t *pv = json_object_get(grp, "preferredVersion");
            assert_non_null(json_string_value(json_object_get(pv, "groupVersion")));
            size_t j;
            json_t *ver;
            int hasv = 0;
            json_array_foreach(json_object_get(grp, "versions"), j, ver)
                hasv += !strcmp(json_string_value(json_object_get(ver, "version")), r->version);
            assert_int_equal(hasv, 1);
        }
        assert_int_equal(found, 1);
    }
    /* authentication.k8s.io prefers v1 though it also serves v1beta1 */
    size_t k;
    json_t *grp;
    json_array_foreach(groups, k, grp)
        if (!strcmp(json_string_value(json_object_get(grp, "name")), "authentication.k8s.io"))
            assert_string_equal(json_string_value(json_object_get(json_object_get(grp, "preferredVersion"), "version")), "v1");
    json_decref(g);

    assert_null(ck_discovery_resource_list("nope.k8s.io", "v1"));
    assert_null(ck_discovery_resource_list("apps", "v2"));
}

static json_t *find_named(json_t *arr, const char *key, const char *name)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        const char *n = json_string_value(json_object_get(e, key));
        if (n && !strcmp(n, name))
            return e;
    }
    return NULL;
}

static int has_word(json_t *arr, const char *w)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
        if (json_is_string(e) && !strcmp(json_string_value(e), w))
            return 1;
    return 0;
}

static void test_resource_list(void **state)
{
    json_t *l = ck_discovery_resource_list("", "v1");
    assert_non_null(l);
    assert_string_equal(json_string_value(json_object_get(l, "groupVersion")), "v1");
    json_t *res = json_object_get(l, "resources");
    json_t *pods = find_named(res, "name", "pods");
    assert_non_null(pods);
    assert_true(json_is_true(json_object_get(pods, "namespaced")));
    assert_string_equal(json_string_value(json_object_get(pods, "kind")), "Pod");
    assert_string_equal(json_string_value(json_object_get(pods, "singularName")), "pod");
    assert_string_equal(json_string_value(json_array_get(json_object_get(pods, "shortNames"), 0)), "po");
    assert_string_equal(json_string_value(json_array_get(json_object_get(pods, "categories"), 0)), "all");
    assert_non_null(json_object_get(pods, "storageVersionHash"));
    json_t *log = find_named(res, "name", "pods/log");
    assert_non_null(log);
    assert_string_equal(json_string_value(json_object_get(log, "kind")), "Pod");
    assert_string_equal(json_string_value(json_object_get(log, "singularName")), "");
    json_t *ev = find_named(res, "name", "pods/eviction");
    assert_string_equal(json_string_value(json_object_get(ev, "group")), "policy");
    assert_string_equal(json_string_value(json_object_get(ev, "kind")), "Eviction");
    json_t *st = find_named(res, "name", "pods/status");
    assert_null(json_object_get(st, "group"));
    assert_int_equal(json_array_size(json_object_get(st, "verbs")), 3);
    json_t *ns = find_named(res, "name", "namespaces");
    assert_true(json_is_false(json_object_get(ns, "namespaced")));
    json_t *tok = find_named(res, "name", "serviceaccounts/token");
    assert_string_equal(json_string_value(json_object_get(tok, "kind")), "TokenRequest");
    assert_string_equal(json_string_value(json_object_get(tok, "group")), "authentication.k8s.io");
    json_t *sp = find_named(res, "name", "services/proxy");
    assert_string_equal(json_string_value(json_object_get(sp, "kind")), "ServiceProxyOptions");
    json_decref(l);

    l = ck_discovery_resource_list("apps", "v1");
    assert_string_equal(json_string_value(json_object_get(l, "groupVersion")), "apps/v1");
    json_t *sc = find_named(json_object_get(l, "resources"), "name", "deployments/scale");
    assert_non_null(sc);
    assert_string_equal(json_string_value(json_object_get(sc, "group")), "autoscaling");
    assert_string_equal(json_string_value(json_object_get(sc, "version")), "v1");
    assert_string_equal(json_string_value(json_object_get(sc, "kind")), "Scale");
    assert_true(has_word(json_object_get(sc, "verbs"), "patch"));
    json_decref(l);
}

/* Every table entry appears in aggregated discovery with its scope, kind, verbs, names. */
static void check_aggregated(enum ck_discovery_format f, const char *api_version)
{
    json_t *docs[2] = {ck_discovery_aggregated(1, f), ck_discovery_aggregated(0, f)};
    for (int d = 0; d < 2; d++) {
        assert_string_equal(json_string_value(json_object_get(docs[d], "kind")), "APIGroupDiscoveryList");
        assert_string_equal(json_string_value(json_object_get(docs[d], "apiVersion")), api_version);
    }
    assert_int_equal(json_array_size(json_object_get(docs[0], "items")), 1);
    assert_null(json_object_get(json_object_get(json_array_get(json_object_get(docs[0], "items"), 0), "metadata"), "name"));
    for (size_t i = 0; i < ck_nresources; i++) {
        const ck_resource *r = &ck_resources[i];
        json_t *items = json_object_get(docs[r->group[0] ? 1 : 0], "items");
        json_t *item = NULL;
        size_t k;
        json_t *it;
        json_array_foreach(items, k, it) {
            const char *n = json_string_value(json_object_get(json_object_get(it, "metadata"), "name"));
            if (!strcmp(n ? n : "", r->group))
                item = it;
        }
        assert_non_null(item);
        json_t *ver = find_named(json_object_get(item, "versions"), "version", r->version);
        assert_non_null(ver);
        assert_string_equal(json_string_value(json_object_get(ver, "freshness")), "Current");
        json_t *res = find_named(json_object_get(ver, "resources"), "resource", r->resource);
        if (!res)
            fail_msg("%s/%s %s missing", r->group, r->version, r->resource);
        assert_string_equal(json_string_value(json_object_get(res, "scope")),
                            r->namespaced ? "Namespaced" : "Cluster");
        assert_string_equal(json_string_value(json_object_get(res, "singularResource")), r->singular);
        json_t *rk = json_object_get(res, "responseKind");
        assert_string_equal(json_string_value(json_object_get(rk, "kind")), r->kind);
        assert_string_equal(json_string_value(json_object_get(rk, "group")), r->group);
        assert_string_equal(json_string_value(json_object_get(rk, "version")), r->version);
        json_t *verbs = json_object_get(res, "verbs");
        size_t nv = 0;
        for (const char *p = r->verbs; *p; p++)
            nv += (p == r->verbs || p[-1] == ' ') && *p != ' ';
        assert_int_equal(json_array_size(verbs), nv);
        size_t vi;
        json_t *vb;
        json_array_foreach(verbs, vi, vb)
            assert_true(ck_word_in(r->verbs, json_string_value(vb)));
        if (r->short_names[0])
            assert_true(ck_word_in(r->short_names, json_string_value(json_array_get(json_object_get(res, "shortNames"), 0))));
        if (ck_word_in(r->categories, "all"))
            assert_true(has_word(json_object_get(res, "categories"), "all"));
        json_t *subs = json_object_get(res, "subresources");
        size_t si;
        json_t *s;
        json_array_foreach(subs, si, s) {
            assert_true(ck_word_in(r->subresources, json_string_value(json_object_get(s, "subresource"))));
            assert_non_null(json_string_value(json_object_get(json_object_get(s, "responseKind"), "kind")));
            assert_true(json_array_size(json_object_get(s, "verbs")) > 0);
        }
    }
    /* deployments/scale -> autoscaling/v1 Scale */
    json_t *apps = NULL;
    size_t k;
    json_t *it;
    json_array_foreach(json_object_get(docs[1], "items"), k, it)
        if (!strcmp(json_string_value(json_object_get(json_object_get(it, "metadata"), "name")), "apps"))
            apps = it;
    json_t *dep = find_named(json_object_get(json_array_get(json_object_get(apps, "versions"), 0), "resources"),
                             "resource", "deployments");
    json_t *scale = find_named(json_object_get(dep, "subresources"), "subresource", "scale");
    assert_string_equal(json_string_value(json_object_get(json_object_get(scale, "responseKind"), "group")), "autoscaling");
    assert_string_equal(json_string_value(json_object_get(json_object_get(scale, "responseKind"), "kind")), "Scale");
    json_decref(docs[0]);
    json_decref(docs[1]);
}

static void test_aggregated(void **state)
{
    check_aggregated(CK_DISCOVERY_V2, "apidiscovery.k8s.io/v2");
    check_aggregated(CK_DISCOVERY_V2BETA1, "apidiscovery.k8s.io/v2beta1");
}

/* With CK_DISCOVERY_DUMP=DIR, write every document to DIR for the stub-server check in
 * tests/e2e/discovery_kubectl.sh (file names are URL paths with '/' -> '_'). */
static void dump(const char *dir, const char *name, json_t *doc)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    assert_int_equal(json_dump_file(doc, path, JSON_COMPACT), 0);
    json_decref(doc);
}

static void test_dump(void **state)
{
    const char *dir = getenv("CK_DISCOVERY_DUMP");
    if (!dir)
        return;
    dump(dir, "api", ck_discovery_api_versions());
    dump(dir, "apis", ck_discovery_api_groups());
    dump(dir, "agg_api_v2", ck_discovery_aggregated(1, CK_DISCOVERY_V2));
    dump(dir, "agg_apis_v2", ck_discovery_aggregated(0, CK_DISCOVERY_V2));
    dump(dir, "agg_api_v2beta1", ck_discovery_aggregated(1, CK_DISCOVERY_V2BETA1));
    dump(dir, "agg_apis_v2beta1", ck_discovery_aggregated(0, CK_DISCOVERY_V2BETA1));
    for (size_t i = 0; i < ck_nresources; i++) {
        const ck_resource *r = &ck_resources[i];
        char name[256];
        if (r->group[0])
            snprintf(name, sizeof name, "apis_%s_%s", r->group, r->version);
        else
            snprintf(name, sizeof name, "api_%s", r->version);
        dump(dir, name, ck_discovery_resource_list(r->group, r->version));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_words),
        cmocka_unit_test(test_negotiate),
        cmocka_unit_test(test_legacy),
        cmocka_unit_test(test_resource_list),
        cmocka_unit_test(test_aggregated),
        cmocka_unit_test(test_dump),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
