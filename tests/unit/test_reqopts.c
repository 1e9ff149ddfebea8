/* Unit tests for the API server's query option parsers (apiserver.h): ck_write_opts_parse
 * (CreateOptions / UpdateOptions / PatchOptions: dryRun, fieldManager, fieldValidation, force)
 * and ck_list_query_parse (ListOptions for list and watch: limit, timeoutSeconds,
 * resourceVersion, resourceVersionMatch, sendInitialEvents).  Each row is a query and the code
 * and message upstream's handlers answer, or the values the parser must produce. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "apiserver/apiserver.h"

static const struct {
    const char *query;
    enum ck_write_verb verb;
    int code;                  /* 0: accepted */
    const char *msg;           /* the error message, or the expected manager when accepted */
    bool dry_run;
    const char *fv;            /* accepted: field_validation */
} write_cases[] = {
    {"", CK_WRITE_CREATE, 0, "kubectl", false, "Warn"},
    {NULL, CK_WRITE_UPDATE, 0, "kubectl", false, "Warn"},
    {"dryRun=All&fieldManager=me&fieldValidation=Strict", CK_WRITE_CREATE, 0, "me", true, "Strict"},
    {"fieldValidation=Ignore", CK_WRITE_PATCH, 0, "kubectl", false, "Ignore"},
    {"fieldValidation=", CK_WRITE_CREATE, 0, "kubectl", false, "Warn"},
    {"fieldManager=", CK_WRITE_CREATE, 0, "kubectl", false, "Warn"},
    {"fieldManager=kubectl&force=true", CK_WRITE_APPLY, 0, "kubectl", false, "Warn"},
    {"dryRun=Bogus", CK_WRITE_CREATE, 422,
     "CreateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"Bogus\"}: "
     "supported values: \"All\"", false, NULL},
    {"dryRun=", CK_WRITE_UPDATE, 422,
     "UpdateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"\"}: "
     "supported values: \"All\"", false, NULL},
    {"fieldValidation=strict", CK_WRITE_PATCH, 422,
     "PatchOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"strict\": "
     "supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"", false, NULL},
    {"fieldManager=a%01b", CK_WRITE_CREATE, 422,
     "CreateOptions.meta.k8s.io \"\" is invalid: fieldManager: Invalid value: \"a\\x01b\": invalid "
     "character U+0001 (at position 1)", false, NULL},
    {"fieldManager=ok%C2%85", CK_WRITE_CREATE, 422,
     "CreateOptions.meta.k8s.io \"\" is invalid: fieldManager: Invalid value: \"ok\\u0085\": invalid "
     "character U+0085 (at position 2)", false, NULL},
    {"fieldManager=caf%C3%A9", CK_WRITE_CREATE, 0, "caf\xc3\xa9", false, "Warn"},
    {"force=true", CK_WRITE_PATCH, 422,
     "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply "
     "patch", false, NULL},
    {"force=false", CK_WRITE_APPLY, 422,
     "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply "
     "patch", false, NULL},
    /* several causes: one message in brackets, in upstream's order */
    {"dryRun=x&fieldValidation=y&force=1", CK_WRITE_PATCH, 422,
     "PatchOptions.meta.k8s.io \"\" is invalid: [force: Forbidden: may not be specified for non-apply "
     "patch, dryRun: Unsupported value: []string{\"x\"}: supported values: \"All\", fieldValidation: "
     "Unsupported value: \"y\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"]", false, NULL},
};

static void test_write_opts(void **state)
{
    char long_manager[200] = "fieldManager=";
    memset(long_manager + 13, 'm', 129);
    for (size_t i = 0; i <= sizeof write_cases / sizeof write_cases[0]; i++) {
        bool extra = i == sizeof write_cases / sizeof write_cases[0];
        const char *query = extra ? long_manager : write_cases[i].query;
        ck_write_opts o;
        char *mgr = (char *)"x", *fv = (char *)"x";
        json_t *details = NULL;
        ck_error *e = NULL;
        int rc = ck_write_opts_parse(query, "kubectl/v1.33.1 (linux/amd64)",
                                     extra ? CK_WRITE_CREATE : write_cases[i].verb, &o, &mgr, &fv,
                                     &details, &e);
        if (extra) {
            assert_int_equal(rc, -1);
            assert_string_equal(e->msg, "CreateOptions.meta.k8s.io \"\" is invalid: fieldManager: "
                                        "Too long: must have at most 128 bytes");
            ck_error_free(e);
            json_decref(details);
            break;
        }
        if (write_cases[i].code) {
            if (rc != -1)
                fail_msg("case %zu (%s): accepted", i, query);
            assert_int_equal(ck_error_http_status(e->code), write_cases[i].code);
            assert_string_equal(e->msg, write_cases[i].msg);
            /* the Status details name the options kind and carry one cause per field */
            assert_string_equal(json_string_value(json_object_get(details, "group")), "meta.k8s.io");
            const char *kind = json_string_value(json_object_get(details, "kind"));
            assert_non_null(kind);
            assert_non_null(strstr(write_cases[i].msg, kind));
            assert_true(json_array_size(json_object_get(details, "causes")) >= 1);
            assert_null(mgr);
            assert_null(fv);
            ck_error_free(e);
            json_decref(details);
            continue;
        }
        if (rc != 0)
            fail_msg("case %zu (%s): %s", i, query, e ? e->msg : "?");
        assert_null(details);
        assert_string_equal(o.manager, write_cases[i].msg);
        assert_ptr_equal(o.manager, mgr);
        assert_int_equal(o.dry_run, write_cases[i].dry_run);
        assert_string_equal(o.field_validation, write_cases[i].fv);
        assert_int_equal(o.verb, write_cases[i].verb);
        free(mgr);
        free(fv);
    }
}

/* The user agent's program name is the default manager: printable bytes, at most 128. */
static void test_write_opts_user_agent(void **state)
{
    static const char *const ua[][2] = {
        {"kubectl.1.27/v1.27.16 (linux/amd64) kubernetes/abc", "kubectl.1.27"},
        {"", ""},
        {NULL, ""},
        {"a\tb\x01" "c/1", "abc"},
    };
    for (size_t i = 0; i < sizeof ua / sizeof ua[0]; i++) {
        ck_write_opts o;
        char *mgr = NULL, *fv = NULL;
        assert_int_equal(ck_write_opts_parse("", ua[i][0], CK_WRITE_CREATE, &o, &mgr, &fv, NULL, NULL), 0);
        assert_string_equal(mgr, ua[i][1]);
        free(mgr);
        free(fv);
    }
    char big[400];
    memset(big, 'u', sizeof big - 1);
    big[sizeof big - 1] = 0;
    ck_write_opts o;
    char *mgr = NULL, *fv = NULL;
    assert_int_equal(ck_write_opts_parse("", big, CK_WRITE_CREATE, &o, &mgr, &fv, NULL, NULL), 0);
    assert_int_equal(strlen(mgr), 128);
    free(mgr);
    free(fv);
}

static const struct {
    const char *query;
    bool watch;
    int code;                  /* 0: accepted */
    const char *msg;
    int64_t limit, timeout, rev;
} list_cases[] = {
    {"", false, 0, NULL, 0, 0, 0},
    {"limit=500&continue=abc", false, 0, NULL, 500, 0, 0},
    {"limit=-1", false, 0, NULL, -1, 0, 0},
    {"limit=%2B7", false, 0, NULL, 7, 0, 0},
    {"resourceVersion=0", false, 0, NULL, 0, 0, 0},
    {"resourceVersion=12345&resourceVersionMatch=Exact", false, 0, NULL, 0, 0, 12345},
    {"resourceVersion=18446744073709551615", false, 0, NULL, 0, 0, INT64_MAX},
    {"watch=1&timeoutSeconds=30&resourceVersion=9&allowWatchBookmarks=true", true, 0, NULL, 0, 30, 9},
    {"watch=1&timeoutSeconds=-5", true, 0, NULL, 0, -5, 0},
    {"watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan", true, 0, NULL, 0, 0, 0},
    {"limit=abc", false, 400, "strconv.ParseInt: parsing \"abc\": invalid syntax", 0, 0, 0},
    {"limit=", false, 400, "strconv.ParseInt: parsing \"\": invalid syntax", 0, 0, 0},
    {"limit=1.5", false, 400, "strconv.ParseInt: parsing \"1.5\": invalid syntax", 0, 0, 0},
    {"limit=9223372036854775808", false, 400,
     "strconv.ParseInt: parsing \"9223372036854775808\": value out of range", 0, 0, 0},
    {"timeoutSeconds=abc&limit=xyz", true, 400, "strconv.ParseInt: parsing \"abc\": invalid syntax", 0, 0, 0},
    {"resourceVersion=abc", false, 400,
     "resourceVersion: Invalid value: \"abc\": strconv.ParseUint: parsing \"abc\": invalid syntax", 0, 0, 0},
    {"resourceVersion=-1", true, 400,
     "resourceVersion: Invalid value: \"-1\": strconv.ParseUint: parsing \"-1\": invalid syntax", 0, 0, 0},
    {"resourceVersion=99999999999999999999999", false, 400,
     "resourceVersion: Invalid value: \"99999999999999999999999\": strconv.ParseUint: parsing "
     "\"99999999999999999999999\": value out of range", 0, 0, 0},
    {"resourceVersion=1&resourceVersionMatch=Bogus", false, 422,
     "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Unsupported value: \"Bogus\": "
     "supported values: \"Exact\", \"NotOlderThan\", \"\"", 0, 0, 0},
    {"resourceVersionMatch=NotOlderThan", false, 422,
     "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch "
     "is forbidden unless resourceVersion is provided", 0, 0, 0},
    {"resourceVersion=0&resourceVersionMatch=Exact", false, 422,
     "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch "
     "\"exact\" is forbidden for resourceVersion \"0\"", 0, 0, 0},
    {"resourceVersion=5&resourceVersionMatch=Exact&continue=x", false, 422,
     "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch "
     "is forbidden when continue is provided", 0, 0, 0},
    {"sendInitialEvents=false", false, 422,
     "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is "
     "forbidden for list", 0, 0, 0},
    {"watch=1&resourceVersionMatch=NotOlderThan", true, 422,
     "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch "
     "is forbidden for watch unless sendInitialEvents is provided", 0, 0, 0},
    {"watch=1&sendInitialEvents=true", true, 422,
     "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents "
     "requires setting resourceVersionMatch to NotOlderThan", 0, 0, 0},
    {"watch=1&sendInitialEvents=true&resourceVersionMatch=Exact", true, 422,
     "ListOptions.meta.k8s.io \"\" is invalid: [resourceVersionMatch: Forbidden: sendInitialEvents "
     "requires setting resourceVersionMatch to NotOlderThan, resourceVersionMatch: Unsupported value: "
     "\"Exact\": supported values: \"NotOlderThan\"]", 0, 0, 0},
};

static void test_list_query(void **state)
{
    for (size_t i = 0; i < sizeof list_cases / sizeof list_cases[0]; i++) {
        ck_list_query q;
        json_t *details = NULL;
        ck_error *e = NULL;
        int rc = ck_list_query_parse(list_cases[i].query, list_cases[i].watch, &q, &details, &e);
        if (list_cases[i].code) {
            if (rc != -1)
                fail_msg("case %zu (%s): accepted", i, list_cases[i].query);
            assert_int_equal(ck_error_http_status(e->code), list_cases[i].code);
            assert_string_equal(e->msg, list_cases[i].msg);
            if (list_cases[i].code == 422)
                assert_string_equal(json_string_value(json_object_get(details, "kind")), "ListOptions");
            else
                assert_null(details);
            assert_null(q.rv);      /* nothing left to free */
            ck_error_free(e);
            json_decref(details);
            continue;
        }
        if (rc != 0)
            fail_msg("case %zu (%s): %s", i, list_cases[i].query, e ? e->msg : "?");
        assert_int_equal(q.limit, list_cases[i].limit);
        assert_int_equal(q.timeout_seconds, list_cases[i].timeout);
        assert_int_equal(q.rev, list_cases[i].rev);
        ck_list_query_free(&q);
    }
    /* the flags and strings come through */
    ck_list_query q;
    assert_int_equal(ck_list_query_parse("labelSelector=a%3Db&fieldSelector=x&allowWatchBookmarks=1&"
                                         "sendInitialEvents=0&resourceVersionMatch=NotOlderThan&timeoutSeconds=0",
                                         true, &q, NULL, NULL), 0);
    assert_string_equal(q.label_selector, "a=b");
    assert_string_equal(q.field_selector, "x");
    assert_true(q.bookmarks);
    assert_true(q.send_initial_set);
    assert_false(q.send_initial);
    assert_true(q.has_timeout);
    ck_list_query_free(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_opts),
        cmocka_unit_test(test_write_opts_user_agent),
        cmocka_unit_test(test_list_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
