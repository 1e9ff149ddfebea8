/* Unit tests for the API server's own logic: routing, continue tokens, metadata, service IP and
 * node port allocation, the static token file, and Status errors. */
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

/* ---- router (table-driven) ---- */

static const struct route_case {
    const char *method, *path, *query;
    int rc;                     /* 0 or the error code */
    enum ck_route_kind kind;
    const char *resource, *ns, *name, *sub;
    enum ck_verb verb;
} route_cases[] = {
    {"GET", "/api", "", 0, CK_ROUTE_API, NULL, NULL, NULL, NULL, 0},
    {"GET", "/apis", "", 0, CK_ROUTE_APIS, NULL, NULL, NULL, NULL, 0},
    {"GET", "/apis/apps", "", 0, CK_ROUTE_GROUP, NULL, NULL, NULL, NULL, 0},
    {"GET", "/api/v1", "", 0, CK_ROUTE_GROUP_VERSION, NULL, NULL, NULL, NULL, 0},
    {"GET", "/apis/apps/v1", "", 0, CK_ROUTE_GROUP_VERSION, NULL, NULL, NULL, NULL, 0},
    {"GET", "/api/v1/pods", "", 0, CK_ROUTE_RESOURCE, "pods", NULL, NULL, NULL, CK_VERB_LIST},
    {"GET", "/api/v1/pods", "watch=true", 0, CK_ROUTE_RESOURCE, "pods", NULL, NULL, NULL, CK_VERB_WATCH},
    {"GET", "/api/v1/namespaces/default/pods", "watch=1&rv=3", 0, CK_ROUTE_RESOURCE, "pods", "default", NULL, NULL, CK_VERB_WATCH},
    {"GET", "/api/v1/namespaces/default/pods/web", "", 0, CK_ROUTE_RESOURCE, "pods", "default", "web", NULL, CK_VERB_GET},
    {"PUT", "/api/v1/namespaces/default/pods/web/status", "", 0, CK_ROUTE_RESOURCE, "pods", "default", "web", "status", CK_VERB_UPDATE},
    {"POST", "/api/v1/namespaces/default/pods/web/binding", "", 0, CK_ROUTE_RESOURCE, "pods", "default", "web", "binding", CK_VERB_CREATE},
    {"POST", "/api/v1/namespaces/default/pods", "", 0, CK_ROUTE_RESOURCE, "pods", "default", NULL, NULL, CK_VERB_CREATE},
    {"DELETE", "/api/v1/namespaces/default/pods", "", 0, CK_ROUTE_RESOURCE, "pods", "default", NULL, NULL, CK_VERB_DELETECOLLECTION},
    {"DELETE", "/api/v1/namespaces/default/pods/x", "", 0, CK_ROUTE_RESOURCE, "pods", "default", "x", NULL, CK_VERB_DELETE},
    {"PATCH", "/apis/apps/v1/namespaces/ns1/deployments/d/scale", "", 0, CK_ROUTE_RESOURCE, "deployments", "ns1", "d", "scale", CK_VERB_PATCH},
    {"GET", "/api/v1/namespaces", "", 0, CK_ROUTE_RESOURCE, "namespaces", NULL, NULL, NULL, CK_VERB_LIST},
    {"GET", "/api/v1/namespaces/kube-system", "", 0, CK_ROUTE_RESOURCE, "namespaces", NULL, "kube-system", NULL, CK_VERB_GET},
    {"PUT", "/api/v1/namespaces/kube-system/finalize", "", 0, CK_ROUTE_RESOURCE, "namespaces", NULL, "kube-system", "finalize", CK_VERB_UPDATE},
    {"GET", "/api/v1/namespaces/kube-system/status", "", 0, CK_ROUTE_RESOURCE, "namespaces", NULL, "kube-system", "status", CK_VERB_GET},
    {"GET", "/api/v1/watch/namespaces/default/configmaps", "", 0, CK_ROUTE_RESOURCE, "configmaps", "default", NULL, NULL, CK_VERB_WATCH},
    {"GET", "/api/v1/nodes/n1", "", 0, CK_ROUTE_RESOURCE, "nodes", NULL, "n1", NULL, CK_VERB_GET},
    {"GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles", "", 0, CK_ROUTE_RESOURCE, "clusterroles", NULL, NULL, NULL, CK_VERB_LIST},
    {"GET", "/api/v1/namespaces/default/nodes", "", CK_E_NOT_FOUND, 0, NULL, NULL, NULL, NULL, 0},
    {"GET", "/api/v1/nosuch", "", CK_E_NOT_FOUND, 0, NULL, NULL, NULL, NULL, 0},
    {"GET", "/api/v2/pods", "", CK_E_NOT_FOUND, 0, NULL, NULL, NULL, NULL, 0},
    {"GET", "/api/v1/namespaces/default/pods/web/nosub", "", CK_E_NOT_FOUND, 0, NULL, NULL, NULL, NULL, 0},
    {"GET", "/healthz", "", CK_E_NOT_FOUND, 0, NULL, NULL, NULL, NULL, 0},
    {"PUT", "/api/v1/namespaces/default/pods", "", CK_E_METHOD, 0, NULL, NULL, NULL, NULL, 0},
    {"POST", "/api/v1/namespaces/default/pods/web", "", CK_E_METHOD, 0, NULL, NULL, NULL, NULL, 0},
    {"GET", "/api/v1/namespaces/default/bindings", "", CK_E_METHOD, 0, NULL, NULL, NULL, NULL, 0},
    {"DELETE", "/api/v1/namespaces", "", CK_E_METHOD, 0, NULL, NULL, NULL, NULL, 0},
    {"POST", "/api", "", CK_E_METHOD, 0, NULL, NULL, NULL, NULL, 0},
};

static void test_router(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(route_cases); i++) {
        const struct route_case *tc = &route_cases[i];
        ck_route r;
        ck_error *e = NULL;
        int rc = ck_route_parse(tc->method, tc->path, tc->query, &r, &e);
        if (tc->rc) {
            if (rc != -1 || !e || (int)e->code != tc->rc)
                fail_msg("case %zu %s %s: wanted error %d", i, tc->method, tc->path, tc->rc);
            ck_error_free(e);
            continue;
        }
        if (rc != 0)
            fail_msg("case %zu %s %s: %s", i, tc->method, tc->path, e ? e->msg : "?");
        assert_int_equal(r.kind, tc->kind);
        if (tc->resource) {
            assert_non_null(r.res);
            assert_string_equal(r.res->resource, tc->resource);
            assert_int_equal(r.verb, tc->verb);
        }
#define STR_EQ(a, b)                      \
    do {                                  \
        if (b) assert_string_equal(a, b); \
        else assert_null(a);              \
    } while (0)
        if (tc->kind == CK_ROUTE_RESOURCE) {
            STR_EQ(r.namespace_, tc->ns);
            STR_EQ(r.name, tc->name);
            STR_EQ(r.subresource, tc->sub);
        }
        ck_route_free(&r);
    }
}

/* ---- continue tokens ---- */

static void test_continue_roundtrip(void **state)
{
    char *tok = ck_continue_encode(42, "default/web-7");
    assert_null(strchr(tok, '='));        /* raw base64url, no padding */
    int64_t rev = 0;
    char *start = NULL;
    assert_int_equal(ck_continue_decode(tok, &rev, &start, NULL), 0);
    assert_int_equal(rev, 42);
    assert_string_equal(start, "default/web-7");
    free(start);
    free(tok);
}

static void test_continue_rejects_garbage(void **state)
{
    static const char *const bad[] = {"", "!!!", "e30", /* {} */
                                      "eyJ2IjoieCIsInJ2IjoxLCJzdGFydCI6ImEifQ" /* wrong v */};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        int64_t rev = 0;
        char *start = NULL;
        ck_error *e = NULL;
        assert_int_equal(ck_continue_decode(bad[i], &rev, &start, &e), -1);
        assert_int_equal(e->code, CK_E_BAD_REQUEST);
        ck_error_free(e);
        assert_null(start);
    }
    /* a token must not escape the listed prefix */
    char *tok = ck_continue_encode(5, "../secrets/x");
    int64_t rev;
    char *start = NULL;
    assert_int_equal(ck_continue_decode(tok, &rev, &start, NULL), -1);
    free(tok);
}

/* ---- metadata ---- */

static void test_random_suffix(void **state)
{
    char a[6], b[6];
    ck_meta_random_suffix(a);
    ck_meta_random_suffix(b);
    assert_int_equal(strlen(a), 5);
    assert_true(strspn(a, "bcdfghjklmnpqrstvwxz2456789") == 5);
    /* two draws of 27^5 colliding is ~1e-7: treat as a failure of the generator */
    assert_string_not_equal(a, b);
}

static void test_meta_create_update(void **state)
{
    const ck_resource *dep = ck_resource_find("apps", "v1", "deployments");
    const ck_resource *cm = ck_resource_find("", "v1", "configmaps");
    json_t *d = json_loads("{\"metadata\":{\"name\":\"d\",\"resourceVersion\":\"9\"},"
                           "\"spec\":{\"replicas\":1}}", 0, NULL);
    ck_meta_on_create(dep, d, 1700000000);
    assert_non_null(ck_meta_str(d, "uid"));
    assert_int_equal(strlen(ck_meta_str(d, "uid")), 36);
    assert_string_equal(ck_meta_str(d, "creationTimestamp"), "2023-11-14T22:13:20Z");
    assert_null(ck_meta_str(d, "resourceVersion"));
    assert_int_equal(json_integer_value(json_object_get(ck_meta(d), "generation")), 1);

    /* a label change keeps the generation, a spec change bumps it; uid cannot be changed */
    json_t *n = json_deep_copy(d);
    json_object_set_new(ck_meta(n), "uid", json_string("forged"));
    json_object_set_new(ck_meta(n), "labels", json_pack("{s:s}", "a", "b"));
    ck_meta_on_update(dep, n, d);
    assert_string_equal(ck_meta_str(n, "uid"), ck_meta_str(d, "uid"));
    assert_int_equal(json_integer_value(json_object_get(ck_meta(n), "generation")), 1);
    json_object_set_new(json_object_get(n, "spec"), "replicas", json_integer(3));
    ck_meta_on_update(dep, n, d);
    assert_int_equal(json_integer_value(json_object_get(ck_meta(n), "generation")), 2);
    json_decref(n);

    json_t *c = json_loads("{\"metadata\":{\"name\":\"c\",\"generation\":5}}", 0, NULL);
    ck_meta_on_create(cm, c, 0);
    assert_null(json_object_get(ck_meta(c), "generation"));   /* no spec, no generation */

    /* resourceVersion is never stored */
    ck_meta_set_rv(c, 77);
    assert_string_equal(ck_meta_str(c, "resourceVersion"), "77");
    size_t len;
    char *text = ck_meta_dump_for_store(c, &len);
    assert_null(strstr(text, "resourceVersion"));
    assert_string_equal(ck_meta_str(c, "resourceVersion"), "77");
    free(text);
    json_decref(c);
    json_decref(d);
    assert_string_equal(ck_res_qualified(dep), "deployments.apps");
    assert_string_equal(ck_res_qualified(cm), "configmaps");
}

static void test_splice_rv(void **state)
{
    static const struct { const char *in, *out; } cases[] = {
        {"{\"metadata\":{\"name\":\"a\"},\"x\":1}",
         "{\"metadata\":{\"resourceVersion\":\"7\",\"name\":\"a\"},\"x\":1}"},
        {"{\"kind\":\"P\",\"spec\":{\"metadata\":{\"deep\":\"}\"}},\"metadata\":{}}",
         "{\"kind\":\"P\",\"spec\":{\"metadata\":{\"deep\":\"}\"}},\"metadata\":{\"resourceVersion\":\"7\"}}"},
        {"{\"a\":\"\\\"metadata\\\":{\",\"b\":[1,{\"c\":[]}],\"metadata\":{\"n\":1}}",
         "{\"a\":\"\\\"metadata\\\":{\",\"b\":[1,{\"c\":[]}],\"metadata\":{\"resourceVersion\":\"7\",\"n\":1}}"},
        {"{\"x\":true,\"y\":null}", NULL},
        {"[1]", NULL},
        {"{\"metadata\":5}", NULL},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        ck_buf b;
        ck_buf_init(&b, 0);
        int rc = ck_json_splice_rv(cases[i].in, strlen(cases[i].in), 7, &b);
        if (cases[i].out) {
            assert_int_equal(rc, 0);
            assert_string_equal(b.data, cases[i].out);
            json_t *j = json_loads(b.data, 0, NULL);     /* still valid JSON */
            assert_non_null(j);
            json_decref(j);
        } else {
            assert_int_equal(rc, -1);
        }
        ck_buf_free(&b);
    }
}

/* ---- allocation ---- */

static void test_alloc_ips(void **state)
{
    ck_error *e = NULL;
    ck_alloc *a = ck_alloc_new("10.96.0.0/12", 30000, 32767, &e);
    assert_non_null(a);
    assert_int_equal(ck_alloc_ip_claim(a, "10.96.0.1", NULL), 0);
    assert_int_equal(ck_alloc_ip_claim(a, "10.96.0.1", &e), -1);
    assert_int_equal(e->code, CK_E_INVALID);
    assert_non_null(strstr(e->msg, "provided IP is already allocated"));
    ck_error_free(e);
    e = NULL;
    assert_int_equal(ck_alloc_ip_claim(a, "10.200.0.1", &e), -1);
    assert_non_null(strstr(e->msg, "The range of valid IPs is 10.96.0.0/12"));
    ck_error_free(e);
    assert_false(ck_alloc_ip_in_range(a, "10.96.0.0"));       /* network address */
    assert_false(ck_alloc_ip_in_range(a, "10.111.255.255"));  /* broadcast */
    assert_true(ck_alloc_ip_in_range(a, "10.111.255.254"));
    char ip[16];
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(ck_alloc_ip_next(a, ip, NULL), 0);
        assert_true(ck_alloc_ip_in_range(a, ip));
        assert_string_not_equal(ip, "10.96.0.1");
    }
    assert_int_equal(ck_alloc_ip_used(a), 1001);
    ck_alloc_ip_release(a, "10.96.0.1");
    assert_int_equal(ck_alloc_ip_used(a), 1000);
    assert_int_equal(ck_alloc_ip_claim(a, "10.96.0.1", NULL), 0);
    ck_alloc_free(a);
}

static void test_alloc_small_range_exhausts(void **state)
{
    ck_alloc *a = ck_alloc_new("192.168.7.0/29", 30000, 30002, NULL);
    assert_non_null(a);
    char ip[16], seen[8][16];
    for (int i = 0; i < 6; i++) {            /* 8 addresses minus network and broadcast */
        assert_int_equal(ck_alloc_ip_next(a, ip, NULL), 0);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(seen[j], ip);
        strcpy(seen[i], ip);
    }
    assert_int_equal(ck_alloc_ip_next(a, ip, NULL), -1);
    int p, ports[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ck_alloc_port_next(a, &ports[i], NULL), 0);
        assert_true(ports[i] >= 30000 && ports[i] <= 30002);
        for (int j = 0; j < i; j++)
            assert_int_not_equal(ports[j], ports[i]);
    }
    assert_int_equal(ck_alloc_port_next(a, &p, NULL), -1);
    ck_alloc_port_release(a, ports[1]);
    assert_int_equal(ck_alloc_port_next(a, &p, NULL), 0);
    assert_int_equal(p, ports[1]);
    ck_error *e = NULL;
    assert_int_equal(ck_alloc_port_claim(a, 80, &e), -1);
    assert_non_null(strstr(e->msg, "provided port is not in the valid range"));
    ck_error_free(e);
    assert_null(ck_alloc_new("10.0.0.0/33", 1, 2, NULL));
    assert_null(ck_alloc_new("10.96.0.0/12", 5, 2, NULL));
    ck_alloc_free(a);
}

/* Dual-stack service ranges: IPv6 and IPv4+IPv6 allocation per ipFamilies / ipFamilyPolicy. */
static void test_service_dual_stack(void **state)
{
    ck_apiserver s = {0};
    assert_null(ck_alloc_new("10.96.0.0/12,10.0.0.0/16", 30000, 32767, NULL)); /* same family */
    assert_null(ck_alloc_new("fd00::/64", 30000, 32767, NULL));               /* over /108 */
    s.alloc = ck_alloc_new("10.96.0.0/12,fd00:96::/112", 30000, 32767, NULL);
    assert_non_null(s.alloc);
    assert_int_equal(ck_alloc_family(s.alloc, 0), 4);
    assert_int_equal(ck_alloc_family(s.alloc, 1), 6);
    assert_false(ck_alloc_ip_in_range(s.alloc, "fd00:96::"));      /* network address */
    assert_true(ck_alloc_ip_in_range(s.alloc, "fd00:96::ffff"));   /* no broadcast in IPv6 */
    assert_false(ck_alloc_ip_in_range(s.alloc, "fd00:97::1"));
    static const struct { const char *spec; int rc; const char *fams; const char *ip0; } cases[] = {
        {"{}", 0, "[\"IPv4\"]", NULL},
        {"{\"ipFamilies\":[\"IPv6\"]}", 0, "[\"IPv6\"]", NULL},
        {"{\"ipFamilyPolicy\":\"PreferDualStack\"}", 0, "[\"IPv4\",\"IPv6\"]", NULL},
        {"{\"ipFamilyPolicy\":\"RequireDualStack\",\"ipFamilies\":[\"IPv6\"]}", 0, "[\"IPv6\",\"IPv4\"]", NULL},
        {"{\"clusterIP\":\"fd00:96::10\"}", 0, "[\"IPv6\"]", "fd00:96::10"},
        {"{\"clusterIPs\":[\"fd00:96::11\",\"10.96.0.11\"],\"ipFamilyPolicy\":\"RequireDualStack\"}", 0,
         "[\"IPv6\",\"IPv4\"]", "fd00:96::11"},
        {"{\"clusterIP\":\"fd00:96::10\"}", -1, NULL, NULL},                  /* taken */
        {"{\"clusterIPs\":[\"10.96.0.12\",\"fd00:96::12\"]}", -1, NULL, NULL}, /* SingleStack */
        {"{\"clusterIP\":\"fd00:99::1\"}", -1, NULL, NULL},                   /* out of range */
    };
    size_t used = 0;
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char *t = xasprintf("{\"metadata\":{\"name\":\"s%zu\"},\"spec\":%s}", i, cases[i].spec);
        json_t *svc = json_loads(t, 0, NULL);
        free(t);
        ck_error *e = NULL;
        int rc = ck_service_allocate(&s, svc, NULL, NULL, &e);
        assert_int_equal(rc, cases[i].rc);
        const json_t *spec = json_object_get(svc, "spec");
        if (rc == 0) {
            json_t *want = json_loads(cases[i].fams, 0, NULL);
            assert_true(json_equal(want, json_object_get(spec, "ipFamilies")));
            const json_t *ips = json_object_get(spec, "clusterIPs");
            assert_int_equal(json_array_size(ips), json_array_size(want));
            for (size_t k = 0; k < json_array_size(ips); k++)
                assert_true(ck_alloc_ip_in_range(s.alloc, json_string_value(json_array_get(ips, k))));
            assert_string_equal(json_string_value(json_object_get(spec, "clusterIP")),
                                json_string_value(json_array_get(ips, 0)));
            if (cases[i].ip0)
                assert_string_equal(json_string_value(json_array_get(ips, 0)), cases[i].ip0);
            used += json_array_size(ips);
            json_decref(want);
        } else {
            assert_non_null(e);
            ck_error_free(e);
        }
        assert_int_equal(ck_alloc_ip_used(s.alloc), used);   /* a failure takes nothing */
        json_decref(svc);
    }
    /* release gives back both families */
    json_t *d = json_loads("{\"spec\":{\"clusterIPs\":[\"fd00:96::11\",\"10.96.0.11\"]}}", 0, NULL);
    ck_service_release(&s, d, NULL);
    assert_int_equal(ck_alloc_ip_used(s.alloc), used - 2);
    json_decref(d);
    ck_alloc_free(s.alloc);
}

static void test_service_allocate(void **state)
{
    ck_apiserver s = {0};
    s.alloc = ck_alloc_new("10.96.0.0/12", 30000, 32767, NULL);
    json_t *svc = json_loads("{\"metadata\":{\"name\":\"a\"},\"spec\":{\"type\":\"NodePort\","
                             "\"ports\":[{\"port\":80},{\"port\":81,\"nodePort\":30081}]}}", 0, NULL);
    json_t *causes = json_array();
    assert_int_equal(ck_service_allocate(&s, svc, NULL, causes, NULL), 0);
    const char *ip = json_string_value(json_object_get(json_object_get(svc, "spec"), "clusterIP"));
    assert_non_null(ip);
    assert_true(ck_alloc_ip_in_range(s.alloc, ip));
    json_t *ports = json_object_get(json_object_get(svc, "spec"), "ports");
    json_int_t np0 = json_integer_value(json_object_get(json_array_get(ports, 0), "nodePort"));
    assert_true(np0 >= 30000 && np0 <= 32767);
    assert_int_equal(ck_alloc_port_used(s.alloc), 2);

    /* a second service asking for the same node port: 422 with the field path */
    json_t *b = json_loads("{\"metadata\":{\"name\":\"b\"},\"spec\":{\"type\":\"NodePort\","
                           "\"ports\":[{\"port\":1},{\"port\":2,\"nodePort\":30081}]}}", 0, NULL);
    ck_error *e = NULL;
    assert_int_equal(ck_service_allocate(&s, b, NULL, causes, &e), -1);
    assert_int_equal(e->code, CK_E_INVALID);
    assert_non_null(strstr(e->msg, "spec.ports[1].nodePort: Invalid value: 30081: provided port is already allocated"));
    ck_error_free(e);
    assert_int_equal(json_array_size(causes), 1);
    /* ... and what it took before failing was given back */
    assert_int_equal(ck_alloc_port_used(s.alloc), 2);
    assert_int_equal(ck_alloc_ip_used(s.alloc), 1);

    /* update that drops a port and keeps the IP */
    json_t *upd = json_deep_copy(svc);
    json_array_remove(json_object_get(json_object_get(upd, "spec"), "ports"), 1);
    json_object_del(json_object_get(upd, "spec"), "clusterIP");
    assert_int_equal(ck_service_allocate(&s, upd, svc, causes, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(upd, "spec"), "clusterIP")), ip);
    ck_service_release(&s, svc, upd);
    assert_int_equal(ck_alloc_port_used(s.alloc), 1);
    ck_service_release(&s, upd, NULL);
    assert_int_equal(ck_alloc_port_used(s.alloc), 0);
    assert_int_equal(ck_alloc_ip_used(s.alloc), 0);

    json_t *headless = json_loads("{\"spec\":{\"clusterIP\":\"None\"}}", 0, NULL);
    assert_int_equal(ck_service_allocate(&s, headless, NULL, causes, NULL), 0);
    assert_int_equal(ck_alloc_ip_used(s.alloc), 0);
    json_decref(headless);
    json_decref(upd);
    json_decref(b);
    json_decref(svc);
    json_decref(causes);
    ck_alloc_free(s.alloc);
}

/* ---- token file ---- */

static void test_token_file(void **state)
{
    ck_error *e = NULL;
    ck_token_file *t = ck_token_file_parse("# comment\n"
                                           "abc,alice,u1,\"dev,ops\"\n"
                                           "\n"
                                           "xyz,bob,u2\n", &e);
    assert_non_null(t);
    ck_user u;
    assert_int_equal(ck_token_file_lookup(t, "abc", &u), 0);
    assert_string_equal(u.name, "alice");
    assert_string_equal(u.uid, "u1");
    assert_int_equal(u.ngroups, 3);
    assert_string_equal(u.groups[0], "dev");
    assert_string_equal(u.groups[1], "ops");
    assert_string_equal(u.groups[2], "system:authenticated");
    ck_user_free(&u);
    assert_int_equal(ck_token_file_lookup(t, "xyz", &u), 0);
    assert_string_equal(u.name, "bob");
    ck_user_free(&u);
    assert_int_equal(ck_token_file_lookup(t, "ab", &u), -1);
    assert_int_equal(ck_token_file_lookup(t, "", &u), -1);
    ck_token_file_free(t);
    assert_null(ck_token_file_parse("onlytoken\n", &e));
    assert_int_equal(e->code, CK_E_INVALID);
    ck_error_free(e);
}

/* ---- Status ---- */

static void test_status_from_error(void **state)
{
    ck_route rt;
    assert_int_equal(ck_route_parse("GET", "/apis/apps/v1/namespaces/d/deployments/web", "", &rt, NULL), 0);
    ck_error *e = NULL;
    ck_err_not_found(&e, rt.res, "web");
    json_t *st = ck_status_from_error(e, &rt, NULL);
    assert_string_equal(json_string_value(json_object_get(st, "message")),
                        "deployments.apps \"web\" not found");
    assert_string_equal(json_string_value(json_object_get(st, "reason")), "NotFound");
    assert_int_equal(json_integer_value(json_object_get(st, "code")), 404);
    json_t *d = json_object_get(st, "details");
    assert_string_equal(json_string_value(json_object_get(d, "kind")), "deployments");
    assert_string_equal(json_string_value(json_object_get(d, "group")), "apps");
    assert_string_equal(json_string_value(json_object_get(d, "name")), "web");
    json_decref(st);
    ck_error_free(e);
    e = NULL;
    ck_err_conflict(&e, rt.res, "web");
    assert_string_equal(e->msg, "Operation cannot be fulfilled on deployments.apps \"web\": the "
                                "object has been modified; please apply your changes to the "
                                "latest version and try again");
    st = ck_status_from_error(e, &rt, NULL);
    assert_int_equal(json_integer_value(json_object_get(st, "code")), 409);
    assert_string_equal(json_string_value(json_object_get(st, "reason")), "Conflict");
    json_decref(st);
    ck_error_free(e);
    e = NULL;
    json_t *causes = json_pack("[{s:s,s:s,s:s}]", "reason", "FieldValueRequired", "message",
                               "Required value", "field", "spec.template");
    ck_error_set(&e, CK_E_INVALID, "Deployment.apps \"web\" is invalid: spec.template: Required value");
    st = ck_status_from_error(e, &rt, causes);
    d = json_object_get(st, "details");
    assert_string_equal(json_string_value(json_object_get(d, "kind")), "Deployment");
    assert_int_equal(json_array_size(json_object_get(d, "causes")), 1);
    assert_int_equal(json_integer_value(json_object_get(st, "code")), 422);
    json_decref(st);
    json_decref(causes);
    ck_error_free(e);
    ck_route_free(&rt);
}

/* ---- service account tokens ---- */

static void test_sa_tokens(void **state)
{
    char dir[] = "/tmp/ck-test-sa-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *cmd = xasprintf("cd %s && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
                          "-out ec.key 2>/dev/null && openssl genpkey -algorithm RSA -pkeyopt "
                          "rsa_keygen_bits:2048 -out rsa.key 2>/dev/null && openssl genpkey "
                          "-algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key 2>/dev/null",
                          dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    static const char *const keys[] = {"ec.key", "rsa.key"};
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        char *path = xasprintf("%s/%s", dir, keys[i]);
        ck_sa_keys *k = ck_sa_keys_load(path, NULL, "https://issuer.test", NULL);
        free(path);
        assert_non_null(k);
        int64_t exp = 0;
        char *tok = ck_sa_token_issue(k, "ns1", "robot", "uid-1", NULL, 3600, "pod-a", "puid",
                                      &exp, NULL);
        assert_non_null(tok);
        assert_true(ck_sa_token_looks_like_jwt(tok));
        assert_true(exp > ck_wall_ns() / 1000000000 + 3500);
        ck_sa_claims cl;
        assert_int_equal(ck_sa_token_verify(k, tok, &cl, NULL), 0);
        assert_string_equal(cl.ns, "ns1");
        assert_string_equal(cl.name, "robot");
        assert_string_equal(cl.uid, "uid-1");
        assert_string_equal(cl.pod, "pod-a");
        assert_string_equal(cl.pod_uid, "puid");
        ck_sa_claims_free(&cl);
        /* a flipped byte in the payload breaks the signature */
        char *bad = xstrdup(tok);
        char *dot = strchr(bad, '.');
        dot[3] = dot[3] == 'A' ? 'B' : 'A';
        ck_error *e = NULL;
        assert_int_equal(ck_sa_token_verify(k, bad, &cl, &e), -1);
        assert_int_equal(e->code, CK_E_UNAUTHORIZED);
        ck_error_free(e);
        free(bad);
        /* another key does not accept it; a token for another audience is refused */
        char *other = xasprintf("%s/other.key", dir);
        ck_sa_keys *k2 = ck_sa_keys_load(other, NULL, "https://issuer.test", NULL);
        free(other);
        if (i == 0)
            assert_int_equal(ck_sa_token_verify(k2, tok, &cl, NULL), -1);
        json_t *aud = json_pack("[s]", "vault");
        char *tok2 = ck_sa_token_issue(k, "ns1", "robot", "uid-1", aud, 3600, NULL, NULL, NULL, NULL);
        assert_int_equal(ck_sa_token_verify(k, tok2, &cl, NULL), -1);
        json_decref(aud);
        free(tok2);
        char *tok4 = ck_sa_token_issue(k, "ns1", "robot", "uid-1", NULL, 3600, NULL, NULL, NULL, NULL);
        assert_int_equal(ck_sa_token_verify(k, tok4, &cl, NULL), 0);
        assert_null(cl.pod);    /* not bound */
        ck_sa_claims_free(&cl);
        free(tok4);
        /* expired */
        char *tok3 = ck_sa_token_issue(k, "ns1", "robot", "uid-1", NULL, -10, NULL, NULL, NULL, NULL);
        assert_int_equal(ck_sa_token_verify(k, tok3, &cl, NULL), -1);
        free(tok3);
        assert_int_equal(ck_sa_token_verify(k, "a.b.c", &cl, NULL), -1);
        assert_int_equal(ck_sa_token_verify(k, "notajwt", &cl, NULL), -1);
        ck_sa_keys_free(k2);
        ck_sa_keys_free(k);
        free(tok);
    }
    cmd = xasprintf("rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

/* ---- pods/binding on the stored text == on the tree (table-driven) ---- */

static const struct bind_case {
    const char *pod, *node;
    enum ck_bind_result want;     /* the tree path's answer */
    bool text_declines;           /* the text edit hands this shape to the tree */
} bind_cases[] = {
    {"{\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":[]}}", "n1", CK_BIND_OK, false},
    {"{\"metadata\":{\"name\":\"p\"},\"spec\":{},\"status\":{}}", "n1", CK_BIND_OK, false},
    {"{\"metadata\":{\"name\":\"p\"},\"spec\":{\"a\":1},\"status\":{\"phase\":\"Pending\"}}", "n1", CK_BIND_OK, false},
    {"{\"metadata\":{\"name\":\"p\"},\"spec\":{},\"status\":{\"conditions\":[]}}", "n1", CK_BIND_OK, false},
    {"{\"metadata\":{\"name\":\"p\"},\"spec\":{\"nodeName\":\"\",\"x\":[1,{\"y\":\"}\"}]},\"status\":{\"conditions\":"
     "[{\"type\":\"Ready\"},{\"type\":\"PodScheduled\",\"status\":\"False\",\"reason\":\"Unschedulable\"},"
     "{\"type\":\"PodScheduled\"},5,{\"x\":\"type\"}],\"qosClass\":\"BestEffort\"}}", "n1", CK_BIND_OK, false},
    {"{\"spec\":{\"nodeName\":null},\"metadata\":{\"name\":\"p\",\"annotations\":{\"a\":\"\\\"nodeName\\\":\\\"z\\\"\"}},"
     "\"status\":{\"conditions\":[{\"type\":\"PodScheduled\"}]},\"kind\":\"Pod\"}", "n\xc3\xb6\"de", CK_BIND_OK, false},
    {"{\"status\":{\"conditions\":[{\"type\":\"PodScheduled\"}]},\"spec\":{}}", "n1", CK_BIND_OK, false},
    {"{\"metadata\":{\"name\":\"p\"},\"spec\":{\"nodeName\":\"n0\"}}", "n1", CK_BIND_ASSIGNED, false},
    {"{\"metadata\":{\"name\":\"p\",\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"},\"spec\":{}}", "n1",
     CK_BIND_DELETING, false},
    {"{\"metadata\":{\"name\":\"p\"},\"spec\":[]}", "n1", CK_BIND_OK, true},
    {"{\"metadata\":{\"name\":\"p\"}}", "n1", CK_BIND_OK, true},
    {"{\"metadata\":{\"name\":\"p\"},\"spec\":{},\"status\":{\"conditions\":{}}}", "n1", CK_BIND_OK, true},
    {"{\"metadata\":{\"name\":\"p\"},\"spec\":{},\"status\":\"x\"}", "n1", CK_BIND_OK, true},
};

static void test_pod_bind_text(void **state)
{
    (void)state;
    const char *ts = "2026-11-25T23:00:00Z";
    for (size_t i = 0; i < sizeof bind_cases / sizeof bind_cases[0]; i++) {
        const struct bind_case *bc = &bind_cases[i];
        json_t *pod = json_loads(bc->pod, 0, NULL);
        assert_non_null(pod);
        char *tree_assigned = NULL, *text_assigned = NULL;
        enum ck_bind_result tr = ck_pod_bind_tree(pod, bc->node, ts, &tree_assigned);
        assert_int_equal(tr, bc->want);
        ck_buf out;
        ck_buf_init(&out, 0);
        enum ck_bind_result xr = ck_pod_bind_text(bc->pod, strlen(bc->pod), bc->node, ts, &out,
                                                  &text_assigned);
        if (bc->text_declines) {
            assert_int_equal(xr, CK_BIND_DECLINE);
        } else {
            assert_int_equal(xr, tr);
            if (tr == CK_BIND_ASSIGNED)
                assert_string_equal(text_assigned, tree_assigned);
            if (tr == CK_BIND_OK) {
                char *want = json_dumps(pod, JSON_COMPACT);
                ck_buf_add(&out, "", 1);
                if (strcmp(want, out.data))
                    fail_msg("case %zu:\n tree %s\n text %s", i, want, out.data);
                free(want);
            }
        }
        free(tree_assigned);
        free(text_assigned);
        ck_buf_free(&out);
        json_decref(pod);
    }
}

/* ---- ck_json_print == json_dumps(JSON_COMPACT) ---- */

static json_t *random_tree(unsigned *seed, int depth)
{
    static const char *const strs[] = {"", "a", "caf\xc3\xa9", "q\"b\\s/", "\x01\x1f\x7f", "tab\there\n",
                                       "\xe2\x80\xa8 line sep", "\xf0\x9f\x98\x80", "\b\f\r"};
    int kind = depth > 4 ? rand_r(seed) % 6 : rand_r(seed) % 8;
    switch (kind) {
    case 0: return json_string(strs[rand_r(seed) % (sizeof strs / sizeof strs[0])]);
    case 1: return json_integer((json_int_t)rand_r(seed) * (rand_r(seed) % 2 ? -1 : 1) * 1000003LL);
    case 2: return json_real((double)rand_r(seed) / 7.0);
    case 3: return rand_r(seed) % 2 ? json_true() : json_false();
    case 4: return json_null();
    case 5: return json_stringn("nul\0in", 6);
    case 6: {
        json_t *o = json_object();
        int n = rand_r(seed) % 5;
        for (int i = 0; i < n; i++) {
            char k[16];
            snprintf(k, sizeof k, "%s%d", i % 2 ? "k\"" : "key", rand_r(seed) % 100);
            json_object_set_new(o, k, random_tree(seed, depth + 1));
        }
        return o;
    }
    default: {
        json_t *a = json_array();
        int n = rand_r(seed) % 5;
        for (int i = 0; i < n; i++)
            json_array_append_new(a, random_tree(seed, depth + 1));
        return a;
    }
    }
}

static void test_json_print(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{}", "[]", "{\"a\":{},\"b\":[],\"c\":[{}],\"d\":null}",
        "{\"metadata\":{\"name\":\"p\",\"labels\":{\"app\":\"x\"}},\"spec\":{\"containers\":[{\"name\":\"c\","
        "\"image\":\"i\",\"resources\":{\"requests\":{\"cpu\":\"10m\"}}}],\"n\":-9223372036854775807,"
        "\"f\":1.5e300,\"g\":0.1,\"t\":true}}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        json_t *j = json_loads(docs[i], 0, NULL);
        assert_non_null(j);
        char *want = json_dumps(j, JSON_COMPACT);
        size_t len = 0;
        char *got = ck_json_print(j, &len);
        assert_string_equal(got, want);
        assert_int_equal(len, strlen(want));
        free(want);
        free(got);
        json_decref(j);
    }
    unsigned seed = 42;
    for (int i = 0; i < 500; i++) {
        json_t *j = json_object();
        json_object_set_new(j, "x", random_tree(&seed, 0));
        char *want = json_dumps(j, JSON_COMPACT);
        size_t len = 0;
        char *got = ck_json_print(j, &len);
        assert_non_null(want);
        assert_non_null(got);
        assert_int_equal(len, strlen(want));
        assert_memory_equal(got, want, len);
        free(want);
        free(got);
        json_decref(j);
    }
    json_t *s = json_string("x");
    assert_null(ck_json_print(s, NULL));   /* as json_dumps without JSON_ENCODE_ANY */
    json_decref(s);
}

/* ---- ck_json_load_fast == json_loadb ---- */

static void test_json_load_fast(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{}", " [ ] ", "{\"a\":1,\"b\":-0,\"c\":[true,false,null],\"d\":{\"e\":\"x\\\"y\\\\z\\/\\n\\t\\b\\f\\r\"}}",
        "{\"a\":1,\"a\":2,\"b\":3}", "{\"k\":-922337203685477580}", "{\"k\":9223372036854775807}",
        "{\"k\":99999999999999999999}", "{\"k\":1.5}", "{\"k\":1e3}", "{\"k\":\"\\u00e9\"}", "{\"k\":\"caf\xc3\xa9\"}",
        "{\"k\":01}", "{\"k\":\"a\x01\"}", "{\"k\":\"\\u0000\"}", "{\"k\" : [ 1 , 2 ] }", "{\"k\":tru}", "{\"k\":1}x",
        "{\"k\":1,}", "[1,]", "\"str\"", "5", "", "{\"k\":-}", "{\"\\\"q\":{\"x\\ty\":\"v\"}}",
        "{\"ab\\u0063\":1}", "[\"\\x\"]", "{\"k\":\"unterminated}",
        "{\"k\":\"\xff\"}", "{\"caf\xc3\xa9\":\"\xc3\xa9\"}", "{\"\xff\":1}", "[\"\xc3\xa9\\n\"]",
    };
    for (size_t f = 0; f < 2; f++) {
        size_t flags = f ? JSON_DECODE_ANY : 0;
        for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
            json_t *want = json_loadb(docs[i], strlen(docs[i]), flags, NULL);
            json_t *got = ck_json_load_fast(docs[i], strlen(docs[i]), flags);
            if (!want) {
                assert_null(got);
                continue;
            }
            assert_non_null(got);
            char *a = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);
            char *b = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
            if (strcmp(a, b) || !json_equal(want, got))
                fail_msg("doc %zu: %s != %s", i, a, b);
            free(a);
            free(b);
            json_decref(want);
            json_decref(got);
        }
    }
    /* random trees printed and read back */
    unsigned seed = 7;
    for (int i = 0; i < 300; i++) {
        json_t *j = json_object();
        json_object_set_new(j, "x", random_tree(&seed, 0));
        char *text = json_dumps(j, JSON_COMPACT);
        json_t *want = json_loads(text, 0, NULL), *got = ck_json_load_fast(text, strlen(text), 0);
        if (!want) {    /* a \u0000 jansson refuses without JSON_ALLOW_NUL */
            assert_null(got);
            free(text);
            json_decref(j);
            continue;
        }
        char *a = json_dumps(want, JSON_COMPACT), *b = json_dumps(got, JSON_COMPACT);
        assert_string_equal(a, b);
        free(a);
        free(b);
        free(text);
        json_decref(want);
        json_decref(got);
        json_decref(j);
    }
}

/* ---- pods/binding: the one-pass text edit == the tree path on random pods ---- */

static json_t *rand_str(unsigned *seed)
{
    static const char *const v[] = {"n0", "", "n\xc3\xb6" "de", "a\"b", "x\ty", "}", "\"nodeName\":\"z\"",
                                    "PodScheduled", "podScheduled", "PodScheduled "};
    return json_string(v[rand_r(seed) % ARRAY_SIZE(v)]);
}

static json_t *rand_value(unsigned *seed, int depth)
{
    switch (rand_r(seed) % (depth > 2 ? 4 : 6)) {
    case 0: return rand_str(seed);
    case 1: return json_integer(rand_r(seed) % 100);
    case 2: return rand_r(seed) % 2 ? json_null() : json_true();
    case 3: return json_object();
    case 4: {
        json_t *a = json_array();
        for (int i = rand_r(seed) % 3; i > 0; i--)
            json_array_append_new(a, rand_value(seed, depth + 1));
        return a;
    }
    default: {
        static const char *const keys[] = {"type", "nodeName", "spec", "status", "conditions", "f:spec", "k"};
        json_t *o = json_object();
        for (int i = rand_r(seed) % 4; i > 0; i--)
            json_object_set_new(o, keys[rand_r(seed) % ARRAY_SIZE(keys)], rand_value(seed, depth + 1));
        return o;
    }
    }
}

/* a random condition: mostly objects with a type, some PodScheduled, some odd elements */
static json_t *rand_condition(unsigned *seed)
{
    int r = rand_r(seed) % 6;
    if (r == 0)
        return rand_value(seed, 2);
    json_t *c = json_object();
    if (r != 1)
        json_object_set_new(c, "status", json_string("True"));
    json_object_set_new(c, "type", r == 2 ? rand_str(seed) : json_string(r % 2 ? "PodScheduled" : "Ready"));
    if (rand_r(seed) % 2)
        json_object_set_new(c, "reason", rand_value(seed, 2));
    return c;
}

/* Returns whether the text edit may decline this pod (an odd shape the tree path handles). */
static json_t *rand_pod(unsigned *seed, bool *odd)
{
    json_t *pod = json_object();
    *odd = false;
    const char *order[] = {"apiVersion", "kind", "metadata", "spec", "status", "extra"};
    for (int i = (int)ARRAY_SIZE(order) - 1; i > 0; i--) {   /* shuffle the top level */
        int j = rand_r(seed) % (i + 1);
        const char *t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
        const char *k = order[i];
        int r = rand_r(seed) % 10;
        if (!strcmp(k, "apiVersion")) {
            json_object_set_new(pod, k, json_string("v1"));
        } else if (!strcmp(k, "kind")) {
            if (r < 8)
                json_object_set_new(pod, k, json_string("Pod"));
        } else if (!strcmp(k, "extra")) {
            if (r < 3)
                json_object_set_new(pod, "zz", rand_value(seed, 0));
        } else if (!strcmp(k, "metadata")) {
            if (r == 0)
                continue;
            json_t *m = json_pack("{s:s,s:s}", "name", "p", "namespace", "ns");
            if (r == 1)
                json_object_set_new(m, "deletionTimestamp", rand_r(seed) % 2 ? json_null() : json_string("2026-01-01T00:00:00Z"));
            if (rand_r(seed) % 2)
                json_object_set_new(m, "managedFields", rand_value(seed, 0));
            if (rand_r(seed) % 2)
                json_object_set_new(m, "annotations", json_pack("{s:s}", "deletionTimestamp", "\"x\"}"));
            json_object_set_new(pod, k, m);
        } else if (!strcmp(k, "spec")) {
            if (r == 0) {
                *odd = true;   /* no spec, or not an object */
                if (rand_r(seed) % 2)
                    json_object_set_new(pod, k, rand_r(seed) % 2 ? json_array() : json_string("x"));
                continue;
            }
            json_t *sp = json_object();
            if (r > 3)
                json_object_set_new(sp, "containers", rand_value(seed, 0));
            if (r % 3 == 0)
                json_object_set_new(sp, "nodeName", rand_r(seed) % 3 ? rand_str(seed) : rand_value(seed, 2));
            if (rand_r(seed) % 2)
                json_object_set_new(sp, "schedulerName", json_string("default-scheduler"));
            json_object_set_new(pod, k, sp);
        } else {   /* status */
            if (r < 2)
                continue;
            if (r == 2) {
                json_object_set_new(pod, k, rand_value(seed, 3));
                if (!json_is_object(json_object_get(pod, k)))
                    *odd = true;
                continue;
            }
            json_t *st = json_object();
            if (r > 4)
                json_object_set_new(st, "phase", json_string("Pending"));
            if (r > 5) {
                if (r == 9) {
                    json_object_set_new(st, "conditions", rand_value(seed, 3));
                    if (!json_is_array(json_object_get(st, "conditions")))
                        *odd = true;
                } else {
                    json_t *cs = json_array();
                    for (int n = rand_r(seed) % 4; n > 0; n--)
                        json_array_append_new(cs, rand_condition(seed));
                    json_object_set_new(st, "conditions", cs);
                }
            }
            if (rand_r(seed) % 2)
                json_object_set_new(st, "qosClass", json_string("BestEffort"));
            json_object_set_new(pod, k, st);
        }
    }
    return pod;
}

static void test_pod_bind_text_random(void **state)
{
    (void)state;
    const char *ts = "2026-11-25T23:00:00Z";
    unsigned seed = 7;
    int counts[4] = {0};   /* OK, ASSIGNED, DELETING, declined */
    for (int r = 0; r < 5000; r++) {
        bool odd;
        json_t *pod = rand_pod(&seed, &odd);
        char *text = json_dumps(pod, JSON_COMPACT);
        const char *node = r % 7 ? "hollow-1" : "n\xc3\xb6" "\"de";
        char *tree_assigned = NULL, *text_assigned = NULL;
        ck_buf out;
        ck_buf_init(&out, 0);
        enum ck_bind_result xr = ck_pod_bind_text(text, strlen(text), node, ts, &out, &text_assigned);
        enum ck_bind_result tr = ck_pod_bind_tree(pod, node, ts, &tree_assigned);
        if (xr == CK_BIND_DECLINE) {
            if (!odd)
                fail_msg("declined a plain pod: %s", text);
            counts[3]++;
        } else {
            if (xr != tr)
                fail_msg("text %d, tree %d: %s", xr, tr, text);
            if (tr == CK_BIND_ASSIGNED)
                assert_string_equal(text_assigned, tree_assigned);
            if (tr == CK_BIND_OK) {
                char *want = json_dumps(pod, JSON_COMPACT);
                ck_buf_add(&out, "", 1);
                if (strcmp(want, out.data))
                    fail_msg("pod %s\n tree %s\n text %s", text, want, out.data);
                free(want);
            }
            counts[tr == CK_BIND_OK ? 0 : tr == CK_BIND_ASSIGNED ? 1 : 2]++;
        }
        free(tree_assigned);
        free(text_assigned);
        ck_buf_free(&out);
        free(text);
        json_decref(pod);
    }
    /* every outcome was reached often */
    for (int i = 0; i < 4; i++)
        assert_true(counts[i] > 100);
}

/* the fixed Status Success text == the printed ck_status_json tree */
static void test_status_success_text(void **state)
{
    (void)state;
    for (int code = 100; code < 400; code++) {
        json_t *st = ck_status_json(code, NULL, NULL, NULL);
        size_t len = 0;
        char *want = ck_json_print(st, &len);
        char buf[160];
        size_t n = ck_status_success_text(code, buf, sizeof buf);
        assert_int_equal(n, len);
        assert_memory_equal(buf, want, len);
        free(want);
        json_decref(st);
    }
    char tiny[8];
    assert_int_equal(ck_status_success_text(201, tiny, sizeof tiny), 0);   /* too small: none */
}

/* storage keys joined by hand == the printf formats they replaced */
static void test_resource_keys(void **state)
{
    (void)state;
    const char *nss[] = {NULL, "default", "kube-system"};
    for (size_t i = 0; i < ck_nresources; i++) {
        const ck_resource *r = &ck_resources[i];
        const char *g = r->group[0] ? r->group : NULL;
        for (size_t j = 0; j < ARRAY_SIZE(nss); j++) {
            const char *ns = nss[j];
            char *want = ns && r->namespaced
                             ? (g ? xasprintf("/registry/%s/%s/%s/", g, r->resource, ns)
                                  : xasprintf("/registry/%s/%s/", r->resource, ns))
                             : (g ? xasprintf("/registry/%s/%s/", g, r->resource)
                                  : xasprintf("/registry/%s/", r->resource));
            char *prefix = ck_resource_key_prefix(r, ns);
            assert_string_equal(prefix, want);
            char *key = ck_resource_key(r, ns, "obj-1");
            char *want_key = xasprintf("%sobj-1", want);
            assert_string_equal(key, want_key);
            free(prefix);
            free(key);
            free(want_key);
            free(want);
        }
    }
    char *k = ck_resource_key(ck_resource_find("", "v1", "pods"), "ns", "p");
    assert_string_equal(k, "/registry/pods/ns/p");
    free(k);
}

/* the revision written by hand == printf's %lld, with and without a following member */
static void test_splice_rv_numbers(void **state)
{
    (void)state;
    int64_t revs[] = {0, 1, 9, 10, 99, 100, 123456789, INT64_MAX, -1, -10, INT64_MIN};
    unsigned seed = 3;
    for (int i = 0; i < 1000 + (int)ARRAY_SIZE(revs); i++) {
        int64_t rev = i < (int)ARRAY_SIZE(revs) ? revs[i]
                                               : ((int64_t)rand_r(&seed) << 31 | rand_r(&seed)) >> (rand_r(&seed) % 60);
        for (int empty = 0; empty < 2; empty++) {
            const char *in = empty ? "{\"metadata\":{}}" : "{\"metadata\":{\"name\":\"a\"}}";
            size_t at = strlen("{\"metadata\":{");
            ck_buf b;
            ck_buf_init(&b, 0);
            assert_int_equal(ck_json_splice_rv_at(in, strlen(in), at, empty, rev, &b), 0);
            ck_buf_add(&b, "", 1);
            char *want = xasprintf("{\"metadata\":{\"resourceVersion\":\"%lld\"%s%s", (long long)rev,
                                   empty ? "" : ",", in + at);
            assert_string_equal(b.data, want);
            free(want);
            ck_buf_free(&b);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router),
        cmocka_unit_test(test_continue_roundtrip),
        cmocka_unit_test(test_continue_rejects_garbage),
        cmocka_unit_test(test_random_suffix),
        cmocka_unit_test(test_meta_create_update),
        cmocka_unit_test(test_splice_rv),
        cmocka_unit_test(test_splice_rv_numbers),
        cmocka_unit_test(test_pod_bind_text),
        cmocka_unit_test(test_pod_bind_text_random),
        cmocka_unit_test(test_json_print),
        cmocka_unit_test(test_json_load_fast),
        cmocka_unit_test(test_alloc_ips),
        cmocka_unit_test(test_alloc_small_range_exhausts),
        cmocka_unit_test(test_service_allocate),
        cmocka_unit_test(test_service_dual_stack),
        cmocka_unit_test(test_token_file),
        cmocka_unit_test(test_status_from_error),
        cmocka_unit_test(test_status_success_text),
        cmocka_unit_test(test_resource_keys),
        cmocka_unit_test(test_sa_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
