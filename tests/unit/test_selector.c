/* Unit tests for apiserver/selector (label and field selectors) and apiserver/names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "apiserver/names.h"
#include "apiserver/selector.h"
#include "lib/util.h"

/* selector, labels JSON, expected match */
static const struct { const char *sel, *labels; bool match; } label_cases[] = {
    {"", "{}", true},
    {"", "null", true},
    {"a=b", "{\"a\":\"b\"}", true},
    {"a==b", "{\"a\":\"b\"}", true},
    {"a=b", "{\"a\":\"c\"}", false},
    {"a=b", "{}", false},
    {"a!=b", "{}", true},
    {"a!=b", "{\"a\":\"b\"}", false},
    {"a!=b", "{\"a\":\"c\"}", true},
    {"a", "{\"a\":\"\"}", true},
    {"a", "{}", false},
    {"!a", "{}", true},
    {"!a", "{\"a\":\"x\"}", false},
    {"a in (x,y)", "{\"a\":\"y\"}", true},
    {"a in (x,y)", "{\"a\":\"z\"}", false},
    {"a in (x,y)", "{}", false},
    {"a notin (x,y)", "{}", true},
    {"a notin (x,y)", "{\"a\":\"x\"}", false},
    {"a notin (x,y)", "{\"a\":\"z\"}", true},
    {"a=b,c=d", "{\"a\":\"b\",\"c\":\"d\"}", true},
    {"a=b,c=d", "{\"a\":\"b\",\"c\":\"e\"}", false},
    {"  a = b , c ", "{\"a\":\"b\",\"c\":\"\"}", true},
    {"a=", "{\"a\":\"\"}", true},
    {"a=", "{\"a\":\"x\"}", false},
    {"a in ()", "{\"a\":\"\"}", true},
    {"a in (x,)", "{\"a\":\"\"}", true},
    {"a>5", "{\"a\":\"7\"}", true},
    {"a>5", "{\"a\":\"3\"}", false},
    {"a<5", "{\"a\":\"3\"}", true},
    {"a<5", "{\"a\":\"x\"}", false},
    {"app.kubernetes.io/name=web", "{\"app.kubernetes.io/name\":\"web\"}", true},
    {"kubernetes.io/cluster-service=true", "{}", false},
    {"env in (prod),tier notin (cache),!legacy", "{\"env\":\"prod\",\"tier\":\"web\"}", true},
    {"in=notin", "{\"in\":\"notin\"}", true},
};

static void test_label_match(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(label_cases); i++) {
        ck_error *e = NULL;
        ck_selector *s = ck_label_selector_parse(label_cases[i].sel, &e);
        if (!s)
            fail_msg("case %zu %s: %s", i, label_cases[i].sel, e->msg);
        json_t *l = json_loads(label_cases[i].labels, JSON_DECODE_ANY, NULL);
        if (ck_label_selector_matches(s, l) != label_cases[i].match)
            fail_msg("case %zu: %s on %s", i, label_cases[i].sel, label_cases[i].labels);
        json_decref(l);
        ck_selector_free(s);
    }
}

/* bad selectors and the start of upstream's message */
static const struct { const char *sel, *msg; } label_errors[] = {
    {"a=b,", "found '', expected: identifier after ','"},
    {",a", "found ',', expected: !, identifier, or 'end of string'"},
    {"a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"},
    {"a in x", "unable to parse requirement: found 'x' expected: '('"},
    {"a in (x", "unable to parse requirement: found '', expected: ',' or ')'"},
    {"a=b c", "found 'c', expected: ',' or 'end of string'"},
    {"!a>", "found '>', expected: ',' or 'end of string'"},
    {"a b=c", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"},
    {"-a=b", "unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of"},
    {"a=-b", "unable to parse requirement: values[0][a]: Invalid value: \"-b\": a valid label must be"},
    {"a>x", "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer"},
    {"a/b/c=d", "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must consist"},
    {"Foo.com/a=b", "unable to parse requirement: <nil>: Invalid value: \"Foo.com/a\": prefix part a lowercase RFC 1123 subdomain"},
};

static void test_label_errors(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(label_errors); i++) {
        ck_error *e = NULL;
        ck_selector *s = ck_label_selector_parse(label_errors[i].sel, &e);
        if (s)
            fail_msg("case %zu %s: parsed", i, label_errors[i].sel);
        assert_int_equal(e->code, CK_E_BAD_REQUEST);
        if (strncmp(e->msg, label_errors[i].msg, strlen(label_errors[i].msg)))
            fail_msg("case %zu %s: got '%s'", i, label_errors[i].sel, e->msg);
        ck_error_free(e);
    }
}

static const struct { const char *ls, *labels; bool match; const char *err; } json_cases[] = {
    {NULL, "{}", false, NULL},
    {"{}", "{}", true, NULL},
    {"{\"matchLabels\":{\"app\":\"web\"}}", "{\"app\":\"web\",\"x\":\"y\"}", true, NULL},
    {"{\"matchLabels\":{\"app\":\"web\"}}", "{\"app\":\"db\"}", false, NULL},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\",\"values\":[\"x\",\"y\"]}]}", "{\"a\":\"x\"}", true, NULL},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"NotIn\",\"values\":[\"x\"]}]}", "{\"a\":\"x\"}", false, NULL},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Exists\"}]}", "{\"a\":\"x\"}", true, NULL},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"DoesNotExist\"}]}", "{\"a\":\"x\"}", false, NULL},
    {"{\"matchLabels\":{\"a\":\"b\"},\"matchExpressions\":[{\"key\":\"c\",\"operator\":\"DoesNotExist\"}]}",
     "{\"a\":\"b\"}", true, NULL},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Gt\",\"values\":[\"1\"]}]}", "{}", false,
     "\"Gt\" is not a valid label selector operator"},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\",\"values\":[]}]}", "{}", false,
     "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"},
    {"{\"matchLabels\":{\"a\":\"b c\"}}", "{}", false, "values[0][a]: Invalid value: \"b c\""},
};

static void test_label_json(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(json_cases); i++) {
        json_t *ls = json_cases[i].ls ? json_loads(json_cases[i].ls, 0, NULL) : NULL;
        ck_error *e = NULL;
        ck_selector *s = ck_label_selector_from_json(ls, &e);
        if (json_cases[i].err) {
            if (s)
                fail_msg("case %zu: parsed", i);
            if (strncmp(e->msg, json_cases[i].err, strlen(json_cases[i].err)))
                fail_msg("case %zu: got '%s'", i, e->msg);
            ck_error_free(e);
        } else {
            if (!s)
                fail_msg("case %zu: %s", i, e->msg);
            json_t *l = json_loads(json_cases[i].labels, 0, NULL);
            if (ck_label_selector_matches(s, l) != json_cases[i].match)
                fail_msg("case %zu: wrong match", i);
            json_decref(l);
            ck_selector_free(s);
        }
        json_decref(ls);
    }
}

static const char *pod =
    "{\"metadata\":{\"name\":\"web-1\",\"namespace\":\"default\"},\"spec\":{\"nodeName\":\"n1\","
    "\"restartPolicy\":\"Always\"},\"status\":{\"phase\":\"Running\",\"podIP\":\"10.244.0.5\"}}";
static const char *event =
    "{\"metadata\":{\"name\":\"e1\",\"namespace\":\"default\"},\"involvedObject\":{\"kind\":\"Pod\","
    "\"name\":\"web-1\",\"namespace\":\"default\",\"uid\":\"u1\"},\"reason\":\"Started\",\"type\":\"Normal\","
    "\"source\":{\"component\":\"kubelet\"}}";

static const struct { const char *group, *resource, *sel, *obj; int match; /* -1: parse error */ const char *err; } field_cases[] = {
    {"", "pods", "metadata.name=web-1", NULL, 1, NULL},
    {"", "pods", "metadata.name==web-1", NULL, 1, NULL},
    {"", "pods", "metadata.name!=web-1", NULL, 0, NULL},
    {"", "pods", "metadata.namespace=default,spec.nodeName=n1", NULL, 1, NULL},
    {"", "pods", "spec.nodeName=", NULL, 0, NULL},
    {"", "pods", "status.phase=Running,status.podIP=10.244.0.5", NULL, 1, NULL},
    {"", "pods", "status.phase!=Running", NULL, 0, NULL},
    {"", "pods", "spec.hostNetwork=false", NULL, 1, NULL},
    {"", "pods", "spec.restartPolicy=Never", NULL, 0, NULL},
    {"", "pods", "spec.foo=bar", NULL, -1, "field label not supported: spec.foo"},
    {"", "pods", "garbage", NULL, -1, "invalid selector: 'garbage'; can't understand 'garbage'"},
    {"", "configmaps", "spec.nodeName=x", NULL, -1, "field label not supported: spec.nodeName"},
    {"", "events", "involvedObject.name=web-1,involvedObject.namespace=default,involvedObject.uid=u1", "e", 1, NULL},
    {"", "events", "involvedObject.kind=Pod,source=kubelet,type=Normal,reason=Started", "e", 1, NULL},
    {"", "events", "involvedObject.name=web-2", "e", 0, NULL},
    {"", "secrets", "type=Opaque", "{\"type\":\"Opaque\"}", 1, NULL},
    {"", "nodes", "spec.unschedulable=false", "{\"spec\":{}}", 1, NULL},
    {"", "nodes", "spec.unschedulable=true", "{\"spec\":{\"unschedulable\":true}}", 1, NULL},
    {"", "namespaces", "status.phase=Active", "{\"status\":{\"phase\":\"Active\"}}", 1, NULL},
    {"apps", "replicasets", "status.replicas=0", "{\"status\":{}}", 1, NULL},
    {"", "replicationcontrollers", "status.replicas=3", "{\"status\":{\"replicas\":3}}", 1, NULL},
    {"batch", "jobs", "status.successful=1", "{\"status\":{\"successful\":1}}", 1, NULL},
    {"apps", "deployments", "status.replicas=1", NULL, -1, "field label not supported: status.replicas"},
    {"", "pods", "metadata.name=a\\,b", "{\"metadata\":{\"name\":\"a,b\"}}", 1, NULL},
    {"", "pods", "", NULL, 1, NULL},
};

static void test_field(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(field_cases); i++) {
        const ck_resource *r = ck_resource_find(field_cases[i].group, "v1", field_cases[i].resource);
        assert_non_null(r);
        ck_error *e = NULL;
        ck_selector *s = ck_field_selector_parse(field_cases[i].sel, r, &e);
        if (field_cases[i].match < 0) {
            if (s)
                fail_msg("case %zu: parsed", i);
            assert_int_equal(e->code, CK_E_BAD_REQUEST);
            if (strcmp(e->msg, field_cases[i].err))
                fail_msg("case %zu: got '%s'", i, e->msg);
            ck_error_free(e);
            continue;
        }
        if (!s)
            fail_msg("case %zu: %s", i, e->msg);
        const char *o = field_cases[i].obj ? field_cases[i].obj : pod;
        if (!strcmp(o, "e"))
            o = event;
        json_t *obj = json_loads(o, 0, NULL);
        assert_non_null(obj);
        if (ck_field_selector_matches(s, obj) != (field_cases[i].match == 1))
            fail_msg("case %zu: %s", i, field_cases[i].sel);
        json_decref(obj);
        ck_selector_free(s);
    }
}

static void test_exact(void **state)
{
    const ck_resource *r = ck_resource_find("", "v1", "pods");
    ck_selector *s = ck_field_selector_parse("metadata.name=x,spec.nodeName!=y", r, NULL);
    assert_string_equal(ck_selector_exact(s, "metadata.name"), "x");
    assert_null(ck_selector_exact(s, "spec.nodeName"));
    assert_false(ck_selector_is_empty(s));
    ck_selector_free(s);
    s = ck_field_selector_parse(NULL, r, NULL);
    assert_true(ck_selector_is_empty(s));
    ck_selector_free(s);
    s = ck_label_selector_parse("app=web", NULL);
    assert_string_equal(ck_selector_exact(s, "app"), "web");
    ck_selector_free(s);
}

static void test_names(void **state)
{
    static const struct { char *(*fn)(const char *); const char *in; const char *err; } cases[] = {
        {ck_check_dns1123_subdomain, "example.com", NULL},
        {ck_check_dns1123_subdomain, "Example", "a lowercase RFC 1123 subdomain must consist of lower case "
         "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
         "'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"},
        {ck_check_dns1123_label, "a.b", "must not contain dots"},
        {ck_check_dns1123_label, "web-1", NULL},
        {ck_check_dns1123_label, "-x", "a lowercase RFC 1123 label must consist of lower case alphanumeric "
         "characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
         "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"},
        {ck_check_dns1035_label, "1abc", "a DNS-1035 label must consist of lower case alphanumeric characters "
         "or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  "
         "or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"},
        {ck_check_qualified_name, "app.kubernetes.io/name", NULL},
        {ck_check_qualified_name, "/a", "prefix part must be non-empty"},
        {ck_check_qualified_name, "a/", "name part must be non-empty; name part must consist of"},
        {ck_check_label_value, "", NULL},
        {ck_check_label_value, "a_b.c-d", NULL},
        {ck_check_label_value, "0123456789012345678901234567890123456789012345678901234567890123",
         "must be no more than 63 characters"},
        {ck_check_config_map_key, "..a", "must not start with '..'"},
        {ck_check_config_map_key, "a b", "a valid config key must consist of alphanumeric characters"},
        {ck_check_env_var_name, "1X", "a valid environment variable name must consist of"},
        {ck_check_env_var_name, "MY_VAR", NULL},
        {ck_check_port_name, "http", NULL},
        {ck_check_port_name, "80", "must contain at least one letter (a-z)"},
        {ck_check_port_name, "a--b", "must not contain consecutive hyphens"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char *m = cases[i].fn(cases[i].in);
        if (!cases[i].err) {
            if (m)
                fail_msg("case %zu %s: %s", i, cases[i].in, m);
        } else if (!m || strncmp(m, cases[i].err, strlen(cases[i].err))) {
            fail_msg("case %zu %s: got %s", i, cases[i].in, m ? m : "(valid)");
        }
        free(m);
    }
    char *q = ck_go_quote("a\"b\n\xff\xc3\xa9");
    assert_string_equal(q, "\"a\\\"b\\n\\xff\xc3\xa9\"");
    free(q);
}

static void test_robust(void **state)
{
    /* long and odd inputs must fail or parse, never crash */
    char *big = xmalloc(200001);
    for (size_t i = 0; i < 200000; i++)
        big[i] = "a=b,(!)= \xff"[i % 11];
    big[200000] = 0;
    ck_error *e = NULL;
    ck_selector *s = ck_label_selector_parse(big, &e);
    ck_selector_free(s);
    ck_error_free(e);
    e = NULL;
    s = ck_field_selector_parse(big, ck_resource_find("", "v1", "pods"), &e);
    ck_selector_free(s);
    ck_error_free(e);
    free(big);
    assert_true(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_match),
        cmocka_unit_test(test_label_errors),
        cmocka_unit_test(test_label_json),
        cmocka_unit_test(test_field),
        cmocka_unit_test(test_exact),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_robust),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
