/* Unit tests for apiserver/admission: the mutating plugins (DefaultTolerationSeconds,
 * ServiceAccount, Priority, LimitRanger) on pods built from table rows, the one-globalDefault
 * rule, ResourceQuota's exceeded/must-specify errors and its status.used accounting, and the
 * --disable-admission-plugins parser, the kube-api-access token volume and bound-token
 * authentication (a token bound to a pod stops working when the pod is gone or re-created).  Each test runs on a fresh SQLite store in a temp dir that
 * it removes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "apiserver/apiserver.h"
#include "lib/util.h"

typedef struct fixture {
    char dir[64];
    ck_apiserver s;
} fixture;

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    if (!j)
        fail_msg("bad test JSON: %s: %s", e.text, s);
    return j;
}

/* Store an object as the API server would (no resourceVersion in the value). */
static void put(fixture *f, const char *group, const char *resource, const char *ns, const char *json)
{
    const ck_resource *r = ck_resource_find(group, "v1", resource);
    assert_non_null(r);
    json_t *o = parse(json);
    char *key = ck_resource_key(r, ns, ck_meta_str(o, "name"));
    size_t len;
    char *text = ck_meta_dump_for_store(o, &len);
    assert_int_equal(ck_store_create(f->s.store, key, text, len, NULL, NULL), 0);
    free(text);
    free(key);
    json_decref(o);
}

static int setup(void **state)
{
    fixture *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ck-test-admission-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char *db = xasprintf("%s/state.db", f->dir);
    f->s.store = ck_store_open_sqlite(db, NULL);
    free(db);
    assert_non_null(f->s.store);
    put(f, "", "serviceaccounts", "ns", "{\"metadata\":{\"name\":\"default\",\"namespace\":\"ns\"},"
        "\"imagePullSecrets\":[{\"name\":\"pull\"}]}");
    put(f, "scheduling.k8s.io", "priorityclasses", NULL,
        "{\"metadata\":{\"name\":\"high\"},\"value\":1000,\"preemptionPolicy\":\"Never\"}");
    put(f, "scheduling.k8s.io", "priorityclasses", NULL,
        "{\"metadata\":{\"name\":\"system-node-critical\"},\"value\":2000001000,"
        "\"preemptionPolicy\":\"PreemptLowerPriority\"}");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ck_store_close(f->s.store);
    char *cmd = xasprintf("rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f);
    return 0;
}

static const ck_resource *pods(void)
{
    return ck_resource_find("", "v1", "pods");
}

/* pod "p" in ns with the given spec members (JSON text without braces) */
static json_t *pod(const char *spec_members)
{
    char *s = xasprintf("{\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\"},\"spec\":{%s%s"
                        "\"containers\":[{\"name\":\"c\",\"image\":\"i\"}]}}",
                        spec_members, *spec_members ? "," : "");
    json_t *o = parse(s);
    free(s);
    return o;
}

static const char *spec_str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(json_object_get(o, "spec"), k));
}

static void test_pod_defaults(void **state)
{
    fixture *f = *state;
    json_t *p = pod("");
    assert_int_equal(ck_admit_create(&f->s, pods(), "ns", p, NULL), 0);
    json_t *spec = json_object_get(p, "spec");
    assert_string_equal(spec_str(p, "serviceAccountName"), "default");
    assert_string_equal(spec_str(p, "serviceAccount"), "default");
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(spec, "imagePullSecrets"), 0), "name")), "pull");
    assert_int_equal(json_integer_value(json_object_get(spec, "priority")), 0);
    assert_string_equal(spec_str(p, "preemptionPolicy"), "PreemptLowerPriority");
    json_t *want = parse("[{\"key\":\"node.kubernetes.io/not-ready\",\"operator\":\"Exists\",\"effect\":\"NoExecute\","
                         "\"tolerationSeconds\":300},{\"key\":\"node.kubernetes.io/unreachable\",\"operator\":"
                         "\"Exists\",\"effect\":\"NoExecute\",\"tolerationSeconds\":300}]");
    assert_true(json_equal(json_object_get(spec, "tolerations"), want));
    json_decref(want);
    /* an update that drops what admission set keeps it, and adds no second toleration */
    json_t *upd = pod("");
    assert_int_equal(ck_admit_update(&f->s, pods(), upd, p, NULL), 0);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(upd, "spec"), "priority")), 0);
    assert_int_equal(json_array_size(json_object_get(json_object_get(upd, "spec"), "tolerations")), 2);
    assert_int_equal(ck_admit_update(&f->s, pods(), upd, p, NULL), 0);
    assert_int_equal(json_array_size(json_object_get(json_object_get(upd, "spec"), "tolerations")), 2);
    json_decref(upd);
    json_decref(p);
}

/* table: a pod spec, then either the error text or the expected priority */
static void test_pod_cases(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *spec, *error;
        json_int_t priority;
        size_t tolerations;
    } cases[] = {
        {"\"priorityClassName\":\"high\"", NULL, 1000, 2},
        {"\"priorityClassName\":\"system-node-critical\"", NULL, 2000001000, 2},
        {"\"priorityClassName\":\"nope\"", "pods \"p\" is forbidden: no PriorityClass with name nope was found", 0, 0},
        {"\"priorityClassName\":\"high\",\"priority\":5",
         "pods \"p\" is forbidden: the integer value of priority (5) must not be provided in pod spec; priority "
         "admission controller computed 1000 from the given PriorityClass name", 0, 0},
        {"\"priorityClassName\":\"high\",\"preemptionPolicy\":\"PreemptLowerPriority\"",
         "pods \"p\" is forbidden: the string value of PreemptionPolicy (PreemptLowerPriority) must not be provided "
         "in pod spec; priority admission controller computed Never from the given PriorityClass name", 0, 0},
        {"\"serviceAccountName\":\"ghost\"",
         "pods \"p\" is forbidden: error looking up service account ns/ghost: serviceaccounts \"ghost\" not found", 0, 0},
        {"\"tolerations\":[{\"operator\":\"Exists\"}]", NULL, 0, 1},
        {"\"tolerations\":[{\"key\":\"node.kubernetes.io/unreachable\",\"operator\":\"Exists\",\"effect\":\"NoExecute\"}]",
         NULL, 0, 2},
        {"\"tolerations\":[{\"key\":\"node.kubernetes.io/not-ready\",\"operator\":\"Exists\",\"effect\":\"NoSchedule\"}]",
         NULL, 0, 3},
        {"\"tolerations\":[{\"operator\":\"Exists\",\"effect\":\"NoExecute\"}]", NULL, 0, 1},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        json_t *p = pod(cases[i].spec);
        ck_error *e = NULL;
        int rc = ck_admit_create(&f->s, pods(), "ns", p, &e);
        if (cases[i].error) {
            if (rc == 0)
                fail_msg("case %zu: admitted, want %s", i, cases[i].error);
            assert_int_equal(e->code, CK_E_FORBIDDEN);
            if (strcmp(e->msg, cases[i].error))
                fail_msg("case %zu: got '%s'\nwant '%s'", i, e->msg, cases[i].error);
            ck_error_free(e);
            e = NULL;
        } else {
            if (rc < 0)
                fail_msg("case %zu: %s", i, e->msg);
            json_t *spec = json_object_get(p, "spec");
            assert_int_equal(json_integer_value(json_object_get(spec, "priority")), cases[i].priority);
            assert_int_equal(json_array_size(json_object_get(spec, "tolerations")), cases[i].tolerations);
        }
        json_decref(p);
    }
}

/* The ServiceAccount wait without a sleeping thread (ck_admit_create_try): while lookups are
 * left, a missing default account asks for another run; the last one fails with the same text
 * as the waiting ck_admit_create; an account that appears meanwhile is taken. */
static void test_sa_retry(void **state)
{
    fixture *f = *state;
    const char *missing =
        "pods \"p\" is forbidden: error looking up service account late/default: serviceaccounts \"default\" not found";
    struct {
        const char *spec;
        int tries;
        int rc;
        const char *error;
    } cases[] = {
        {"", 0, 1, NULL},
        {"", 1, 1, NULL},
        {"", CK_ADMIT_SA_LOOKUPS - 2, 1, NULL},
        {"", CK_ADMIT_SA_LOOKUPS - 1, -1, missing},
        {"", CK_ADMIT_SA_LOOKUPS + 3, -1, missing},
        /* a named account is looked up once, as before */
        {"\"serviceAccountName\":\"ghost\"", 0, -1,
         "pods \"p\" is forbidden: error looking up service account late/ghost: serviceaccounts \"ghost\" not found"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        json_t *p = pod(cases[i].spec);
        ck_error *e = NULL;
        int rc = ck_admit_create_try(&f->s, pods(), "late", p, cases[i].tries, &e);
        if (rc != cases[i].rc)
            fail_msg("case %zu: rc %d, want %d (%s)", i, rc, cases[i].rc, e ? e->msg : "");
        if (cases[i].error) {
            assert_non_null(e);
            assert_int_equal(e->code, CK_E_FORBIDDEN);
            assert_string_equal(e->msg, cases[i].error);
            ck_error_free(e);
        } else {
            assert_null(e);
        }
        json_decref(p);
    }
    /* the waiting form (tries < 0) gives up with the same text, after its sleeps */
    json_t *p = pod("");
    ck_error *e = NULL;
    int64_t t0 = ck_now_ns();
    assert_int_equal(ck_admit_create_try(&f->s, pods(), "late", p, -1, &e), -1);
    assert_true(ck_now_ns() - t0 >= (int64_t)(CK_ADMIT_SA_LOOKUPS - 1) * CK_ADMIT_SA_RETRY_MS * 1000000);
    assert_string_equal(e->msg, missing);
    ck_error_free(e);
    json_decref(p);
    /* the account appears: the next run takes it */
    put(f, "", "serviceaccounts", "late", "{\"metadata\":{\"name\":\"default\",\"namespace\":\"late\"}}");
    p = pod("");
    assert_int_equal(ck_admit_create_try(&f->s, pods(), "late", p, 4, NULL), 0);
    assert_string_equal(spec_str(p, "serviceAccountName"), "default");
    json_decref(p);
}

/* ---- the service account token volume and bound tokens ---- */

static void load_sa_key(fixture *f)
{
    char *cmd = xasprintf("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
                          "-out %s/sa.key 2>/dev/null", f->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    char *path = xasprintf("%s/sa.key", f->dir);
    f->s.sa_keys = ck_sa_keys_load(path, NULL, "https://kubernetes.default.svc.cluster.local", NULL);
    free(path);
    assert_non_null(f->s.sa_keys);
}

static json_t *find_volume(json_t *spec, const char *prefix)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(spec, "volumes"), i, v)
        if (!strncmp(json_string_value(json_object_get(v, "name")) ?: "", prefix, strlen(prefix)))
            return v;
    return NULL;
}

/* how many of the pod's containers + init containers mount vname at the token path */
static size_t token_mounts(json_t *spec, const char *vname)
{
    size_t n = 0, i, j;
    json_t *c, *m;
    static const char *const lists[] = {"initContainers", "containers"};
    for (size_t l = 0; l < 2; l++)
        json_array_foreach(json_object_get(spec, lists[l]), i, c)
            json_array_foreach(json_object_get(c, "volumeMounts"), j, m)
                if (!strcmp(json_string_value(json_object_get(m, "name")) ?: "", vname) &&
                    !strcmp(json_string_value(json_object_get(m, "mountPath")) ?: "",
                            "/var/run/secrets/kubernetes.io/serviceaccount") &&
                    json_is_true(json_object_get(m, "readOnly")))
                    n++;
    return n;
}

static void test_token_volume(void **state)
{
    fixture *f = *state;
    /* no signing key: no token could be issued, so no volume */
    json_t *p = pod("");
    assert_int_equal(ck_admit_create(&f->s, pods(), "ns", p, NULL), 0);
    assert_null(find_volume(json_object_get(p, "spec"), "kube-api-access-"));
    json_decref(p);
    load_sa_key(f);
    put(f, "", "serviceaccounts", "ns", "{\"metadata\":{\"name\":\"quiet\",\"namespace\":\"ns\"},"
        "\"automountServiceAccountToken\":false}");
    static const struct {
        const char *spec;
        bool volume;
        size_t mounts;      /* containers mounting it */
        const char *name;   /* expected volume name, NULL: kube-api-access-<5 random> */
    } cases[] = {
        {"", true, 1, NULL},
        {"\"initContainers\":[{\"name\":\"i\",\"image\":\"i\"}]", true, 2, NULL},
        {"\"automountServiceAccountToken\":false", false, 0, NULL},
        {"\"serviceAccountName\":\"quiet\"", false, 0, NULL},
        {"\"serviceAccountName\":\"quiet\",\"automountServiceAccountToken\":true", true, 1, NULL},
        /* a container with its own mount at the path keeps it; the other gets the volume */
        {"\"initContainers\":[{\"name\":\"i\",\"image\":\"i\",\"volumeMounts\":[{\"name\":\"x\","
         "\"mountPath\":\"/var/run/secrets/kubernetes.io/serviceaccount\"}]}],\"volumes\":[{\"name\":"
         "\"x\",\"emptyDir\":{}}]", true, 1, NULL},
        /* an existing kube-api-access-* volume is reused, not doubled */
        {"\"volumes\":[{\"name\":\"kube-api-access-abcde\",\"emptyDir\":{}}]", true, 1,
         "kube-api-access-abcde"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        p = pod(cases[i].spec);
        ck_error *e = NULL;
        if (ck_admit_create(&f->s, pods(), "ns", p, &e) < 0)
            fail_msg("case %zu: %s", i, e->msg);
        json_t *spec = json_object_get(p, "spec");
        json_t *v = find_volume(spec, "kube-api-access-");
        if (!cases[i].volume) {
            assert_null(v);
            assert_int_equal(token_mounts(spec, "kube-api-access-"), 0);
            json_decref(p);
            continue;
        }
        assert_non_null(v);
        const char *vname = json_string_value(json_object_get(v, "name"));
        size_t nvol = 0, j;
        json_t *w;
        json_array_foreach(json_object_get(spec, "volumes"), j, w)
            nvol += !strncmp(json_string_value(json_object_get(w, "name")), "kube-api-access-", 16);
        assert_int_equal(nvol, 1);
        if (cases[i].name) {
            assert_string_equal(vname, cases[i].name);
        } else {
            assert_int_equal(strlen(vname), strlen("kube-api-access-") + 5);
            assert_int_equal(strspn(vname + 16, "bcdfghjklmnpqrstvwxz2456789"), 5);
            json_t *want = parse("{\"projected\":{\"defaultMode\":420,\"sources\":["
                                 "{\"serviceAccountToken\":{\"expirationSeconds\":3607,\"path\":\"token\"}},"
                                 "{\"configMap\":{\"name\":\"kube-root-ca.crt\",\"items\":[{\"key\":"
                                 "\"ca.crt\",\"path\":\"ca.crt\"}]}},{\"downwardAPI\":{\"items\":[{"
                                 "\"path\":\"namespace\",\"fieldRef\":{\"apiVersion\":\"v1\","
                                 "\"fieldPath\":\"metadata.namespace\"}}]}}]}}");
            json_object_set_new(want, "name", json_string(vname));
            assert_true(json_equal(v, want));
            json_decref(want);
        }
        if (token_mounts(spec, vname) != cases[i].mounts)
            fail_msg("case %zu: %zu mounts, want %zu", i, token_mounts(spec, vname), cases[i].mounts);
        json_decref(p);
    }
    ck_sa_keys_free(f->s.sa_keys);
    f->s.sa_keys = NULL;
}

/* a bearer token through ck_authn: 0 and the user, or -1 */
static int authn_token(fixture *f, const char *tok, ck_user *u)
{
    char *hv = xasprintf("Bearer %s", tok);
    ck_http_header h = {"Authorization", hv};
    ck_http_req req = {.method = "GET", .target = "/api", .path = "/api", .query = "",
                       .headers = &h, .nheaders = 1};
    ck_error *e = NULL;
    int rc = ck_authn(&f->s, &req, u, &e);
    ck_error_free(e);
    free(hv);
    return rc;
}

static void test_bound_token(void **state)
{
    fixture *f = *state;
    load_sa_key(f);
    char old_s[32], recent_s[32];
    int64_t now = ck_wall_ns() / 1000000000;
    ck_rfc3339(now - 120, old_s);
    ck_rfc3339(now - 10, recent_s);
    put(f, "", "pods", "ns", "{\"metadata\":{\"name\":\"live\",\"namespace\":\"ns\",\"uid\":\"u1\"}}");
    char *js = xasprintf("{\"metadata\":{\"name\":\"dying\",\"namespace\":\"ns\",\"uid\":\"u2\","
                         "\"deletionTimestamp\":\"%s\"}}", recent_s);
    put(f, "", "pods", "ns", js);
    free(js);
    js = xasprintf("{\"metadata\":{\"name\":\"dead\",\"namespace\":\"ns\",\"uid\":\"u3\","
                   "\"deletionTimestamp\":\"%s\"}}", old_s);
    put(f, "", "pods", "ns", js);
    free(js);
    static const struct {
        const char *pod, *uid;
        bool ok;
    } cases[] = {
        {NULL, NULL, true},         /* not bound */
        {"live", "u1", true},
        {"live", "u-old", false},   /* the pod was deleted and re-created */
        {"gone", "u9", false},      /* the pod was deleted */
        {"dying", "u2", true},      /* shutting down: still works for a minute */
        {"dead", "u3", false},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char *tok = ck_sa_token_issue(f->s.sa_keys, "ns", "default", NULL, NULL, 3600,
                                      cases[i].pod, cases[i].uid, NULL, NULL);
        assert_non_null(tok);
        ck_user u = {0};
        int rc = authn_token(f, tok, &u);
        if ((rc == 0) != cases[i].ok)
            fail_msg("case %zu (%s): authn %d", i, cases[i].pod ? cases[i].pod : "-", rc);
        if (rc == 0) {
            assert_string_equal(u.name, "system:serviceaccount:ns:default");
            assert_true(u.ngroups >= 2);
            assert_string_equal(u.groups[0], "system:serviceaccounts");
            assert_string_equal(u.groups[1], "system:serviceaccounts:ns");
            ck_user_free(&u);
        }
        free(tok);
    }
    ck_sa_keys_free(f->s.sa_keys);
    f->s.sa_keys = NULL;
}

static void test_global_default(void **state)
{
    fixture *f = *state;
    const ck_resource *pcr = ck_resource_find("scheduling.k8s.io", "v1", "priorityclasses");
    put(f, "scheduling.k8s.io", "priorityclasses", NULL,
        "{\"metadata\":{\"name\":\"dflt\"},\"value\":50,\"globalDefault\":true}");
    json_t *p = pod("");
    assert_int_equal(ck_admit_create(&f->s, pods(), "ns", p, NULL), 0);
    assert_string_equal(spec_str(p, "priorityClassName"), "dflt");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "spec"), "priority")), 50);
    /* no preemptionPolicy on the class: none is set */
    assert_null(spec_str(p, "preemptionPolicy"));
    json_decref(p);
    json_t *second = parse("{\"metadata\":{\"name\":\"other\"},\"value\":60,\"globalDefault\":true}");
    ck_error *e = NULL;
    assert_int_equal(ck_admit_create(&f->s, pcr, NULL, second, &e), -1);
    assert_string_equal(e->msg, "priorityclasses.scheduling.k8s.io \"other\" is forbidden: PriorityClass dflt is "
                                "already marked as default. Only one default can exist");
    ck_error_free(e);
    e = NULL;
    /* updating the default class itself is fine */
    json_t *same = parse("{\"metadata\":{\"name\":\"dflt\"},\"value\":50,\"globalDefault\":true}");
    assert_int_equal(ck_admit_update(&f->s, pcr, same, same, NULL), 0);
    json_decref(same);
    json_decref(second);
    /* two defaults (a race past the check above, stored directly): the lowest value wins, on
     * either side of the other in the list */
    put(f, "scheduling.k8s.io", "priorityclasses", NULL,
        "{\"metadata\":{\"name\":\"a-low\"},\"value\":10,\"globalDefault\":true}");
    put(f, "scheduling.k8s.io", "priorityclasses", NULL,
        "{\"metadata\":{\"name\":\"z-mid\"},\"value\":30,\"globalDefault\":true}");
    p = pod("");
    assert_int_equal(ck_admit_create(&f->s, pods(), "ns", p, NULL), 0);
    assert_string_equal(spec_str(p, "priorityClassName"), "a-low");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "spec"), "priority")), 10);
    json_decref(p);
}

static void test_limit_ranger(void **state)
{
    fixture *f = *state;
    put(f, "", "limitranges", "ns",
        "{\"metadata\":{\"name\":\"lr\",\"namespace\":\"ns\"},\"spec\":{\"limits\":[{\"type\":\"Container\","
        "\"default\":{\"cpu\":\"500m\"},\"defaultRequest\":{\"cpu\":\"100m\",\"memory\":\"64Mi\"},"
        "\"max\":{\"cpu\":\"1\"},\"min\":{\"memory\":\"32Mi\"}},{\"type\":\"Pod\",\"max\":{\"cpu\":\"9\"}}]}}");
    json_t *p = pod("");
    assert_int_equal(ck_admit_create(&f->s, pods(), "ns", p, NULL), 0);
    json_t *res = json_object_get(json_array_get(json_object_get(json_object_get(p, "spec"), "containers"), 0), "resources");
    json_t *want = parse("{\"limits\":{\"cpu\":\"500m\"},\"requests\":{\"cpu\":\"100m\",\"memory\":\"64Mi\"}}");
    assert_true(json_equal(res, want));
    json_decref(want);
    json_decref(p);
    /* stated values win over defaults; bounds are checked on the result */
    json_t *big = parse("{\"metadata\":{\"name\":\"big\"},\"spec\":{\"containers\":[{\"name\":\"c\",\"resources\":"
                        "{\"limits\":{\"cpu\":\"2\"},\"requests\":{\"memory\":\"16Mi\"}}}]}}");
    ck_error *e = NULL;
    assert_int_equal(ck_admit_create(&f->s, pods(), "ns", big, &e), -1);
    assert_string_equal(e->msg, "pods \"big\" is forbidden: [minimum memory usage per Container is 32Mi, but "
                                "request is 16Mi, maximum cpu usage per Container is 1, but limit is 2]");
    ck_error_free(e);
    e = NULL;
    json_decref(big);
}

static json_t *read_quota(fixture *f, const char *name)
{
    return ck_rest_read(&f->s, ck_resource_find("", "v1", "resourcequotas"), "ns", name, NULL, NULL);
}

static void test_quota(void **state)
{
    fixture *f = *state;
    put(f, "", "resourcequotas", "ns",
        "{\"metadata\":{\"name\":\"q\",\"namespace\":\"ns\"},\"spec\":{\"hard\":{\"pods\":\"2\","
        "\"requests.memory\":\"1Gi\",\"configmaps\":\"5\"}}}");
    put(f, "", "pods", "ns", "{\"metadata\":{\"name\":\"a\",\"namespace\":\"ns\"},\"spec\":{\"containers\":"
        "[{\"name\":\"c\",\"resources\":{\"requests\":{\"memory\":\"512Mi\"}}}]}}");
    put(f, "", "pods", "ns", "{\"metadata\":{\"name\":\"done\",\"namespace\":\"ns\"},\"spec\":{\"containers\":"
        "[{\"name\":\"c\",\"resources\":{\"requests\":{\"memory\":\"512Mi\"}}}]},\"status\":{\"phase\":\"Succeeded\"}}");
    /* a pod must state what the quota tracks */
    json_t *bare = parse("{\"metadata\":{\"name\":\"bare\"},\"spec\":{\"containers\":[{\"name\":\"c\"},{\"name\":\"d\"}]}}");
    bool locked = true;
    ck_error *e = NULL;
    assert_int_equal(ck_quota_admit(&f->s, pods(), "ns", bare, false, &locked, &e), -1);
    assert_false(locked);
    assert_string_equal(e->msg, "pods \"bare\" is forbidden: failed quota: q: must specify requests.memory for: c,d");
    ck_error_free(e);
    e = NULL;
    json_decref(bare);
    /* fits: charged (the terminal pod does not count) */
    json_t *b = parse("{\"metadata\":{\"name\":\"b\"},\"spec\":{\"containers\":[{\"name\":\"c\",\"resources\":"
                      "{\"requests\":{\"memory\":\"512Mi\"}}}]}}");
    assert_int_equal(ck_quota_admit(&f->s, pods(), "ns", b, false, &locked, NULL), 0);
    assert_true(locked);
    ck_quota_done(locked);
    json_t *q = read_quota(f, "q");
    json_t *want = parse("{\"pods\":\"2\",\"requests.memory\":\"1Gi\",\"configmaps\":\"0\"}");
    assert_true(json_equal(json_object_get(json_object_get(q, "status"), "used"), want));
    assert_true(json_equal(json_object_get(json_object_get(q, "status"), "hard"),
                           json_object_get(json_object_get(q, "spec"), "hard")));
    json_decref(want);
    json_decref(q);
    put(f, "", "pods", "ns", "{\"metadata\":{\"name\":\"b\",\"namespace\":\"ns\"},\"spec\":{\"containers\":"
        "[{\"name\":\"c\",\"resources\":{\"requests\":{\"memory\":\"512Mi\"}}}]}}");
    /* full: the error names what was asked, used and allowed */
    json_t *c = parse("{\"metadata\":{\"name\":\"c\"},\"spec\":{\"containers\":[{\"name\":\"c\",\"resources\":"
                      "{\"requests\":{\"memory\":\"100Mi\"}}}]}}");
    assert_int_equal(ck_quota_admit(&f->s, pods(), "ns", c, false, &locked, &e), -1);
    assert_string_equal(e->msg, "pods \"c\" is forbidden: exceeded quota: q, requested: pods=1,requests.memory=100Mi, "
                                "used: pods=2,requests.memory=1Gi, limited: pods=2,requests.memory=1Gi");
    ck_error_free(e);
    e = NULL;
    json_decref(c);
    /* a dry run is checked but not charged and holds no lock */
    const ck_resource *cms = ck_resource_find("", "v1", "configmaps");
    json_t *cm = parse("{\"metadata\":{\"name\":\"cm\"}}");
    assert_int_equal(ck_quota_admit(&f->s, cms, "ns", cm, true, &locked, NULL), 0);
    assert_false(locked);
    q = read_quota(f, "q");
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(q, "status"), "used"),
                                                          "configmaps")), "0");
    json_decref(q);
    json_decref(cm);
    /* a delete recounts */
    char *key = ck_resource_key(pods(), "ns", "a");
    assert_int_equal(ck_store_delete(f->s.store, key, 0, NULL, NULL, NULL), 0);
    free(key);
    ck_quota_refresh(&f->s, pods(), "ns");
    q = read_quota(f, "q");
    want = parse("{\"pods\":\"1\",\"requests.memory\":\"512Mi\",\"configmaps\":\"0\"}");
    assert_true(json_equal(json_object_get(json_object_get(q, "status"), "used"), want));
    json_decref(want);
    json_decref(q);
    json_decref(b);
}

static void test_quota_fill_status(void **state)
{
    fixture *f = *state;
    put(f, "", "services", "ns", "{\"metadata\":{\"name\":\"np\",\"namespace\":\"ns\"},\"spec\":{\"type\":\"NodePort\","
        "\"ports\":[{\"port\":1},{\"port\":2}]}}");
    put(f, "", "pods", "ns", "{\"metadata\":{\"name\":\"a\",\"namespace\":\"ns\"},\"spec\":{\"containers\":"
        "[{\"name\":\"c\",\"resources\":{\"requests\":{\"cpu\":\"250m\"},\"limits\":{\"cpu\":\"1500m\"}}},"
        "{\"name\":\"d\",\"resources\":{\"requests\":{\"cpu\":\"750m\"}}}],\"initContainers\":[{\"name\":\"i\","
        "\"resources\":{\"requests\":{\"cpu\":\"3\"}}}]}}");
    json_t *q = parse("{\"metadata\":{\"name\":\"q\",\"namespace\":\"ns\"},\"spec\":{\"hard\":{\"services\":\"9\","
                      "\"services.nodeports\":\"9\",\"requests.cpu\":\"10\",\"limits.cpu\":\"10\",\"count/pods\":\"9\","
                      "\"count/deployments.apps\":\"9\",\"example.com/unknown\":\"1\"}}}");
    ck_quota_fill_status(&f->s, q);
    /* the init container's 3 cpu is more than the containers' 1 */
    json_t *want = parse("{\"services\":\"1\",\"services.nodeports\":\"2\",\"requests.cpu\":\"3\",\"limits.cpu\":\"1500m\","
                         "\"count/pods\":\"1\",\"count/deployments.apps\":\"0\",\"example.com/unknown\":\"0\"}");
    if (!json_equal(json_object_get(json_object_get(q, "status"), "used"), want)) {
        char *d = json_dumps(json_object_get(q, "status"), JSON_COMPACT);
        fail_msg("got %s", d);
    }
    json_decref(want);
    json_decref(q);
}

/* With a cache, what admission read is reused until a write of that kind goes through the
 * server (here: the store is written behind its back, then the write is noted). */
static void test_cache(void **state)
{
    fixture *f = *state;
    f->s.admit_cache = ck_admission_cache_new();
    json_t *p = pod("");
    assert_int_equal(ck_admit_create(&f->s, pods(), "ns", p, NULL), 0);
    json_decref(p);
    put(f, "", "limitranges", "ns",
        "{\"metadata\":{\"name\":\"lr\",\"namespace\":\"ns\"},\"spec\":{\"limits\":[{\"type\":\"Container\","
        "\"default\":{\"cpu\":\"1\"}}]}}");
    p = pod("");
    assert_int_equal(ck_admit_create(&f->s, pods(), "ns", p, NULL), 0);
    json_t *lim = json_object_get(json_object_get(json_array_get(json_object_get(json_object_get(p, "spec"),
                                                                                 "containers"), 0), "resources"), "limits");
    assert_null(lim);   /* the cached (empty) list */
    json_decref(p);
    ck_admission_note_write(&f->s, ck_resource_find("", "v1", "limitranges"));
    p = pod("");
    assert_int_equal(ck_admit_create(&f->s, pods(), "ns", p, NULL), 0);
    lim = json_object_get(json_object_get(json_array_get(json_object_get(json_object_get(p, "spec"), "containers"), 0),
                                          "resources"), "limits");
    assert_string_equal(json_string_value(json_object_get(lim, "cpu")), "1");
    json_decref(p);
    /* the cached service account is shared: the pod gets its own copy of imagePullSecrets */
    p = pod("");
    assert_int_equal(ck_admit_create(&f->s, pods(), "ns", p, NULL), 0);
    json_t *ips = json_object_get(json_object_get(p, "spec"), "imagePullSecrets");
    json_array_clear(ips);
    json_decref(p);
    p = pod("");
    assert_int_equal(ck_admit_create(&f->s, pods(), "ns", p, NULL), 0);
    assert_int_equal(json_array_size(json_object_get(json_object_get(p, "spec"), "imagePullSecrets")), 1);
    json_decref(p);
    ck_admission_cache_free(f->s.admit_cache);
    f->s.admit_cache = NULL;
}

static void test_disable_flag(void **state)
{
    fixture *f = *state;
    unsigned bits = 0;
    assert_int_equal(ck_admission_parse_disabled("Priority, DefaultTolerationSeconds", &bits, NULL), 0);
    assert_int_equal(bits, CK_ADMIT_PRIORITY | CK_ADMIT_TOLERATIONS);
    ck_error *e = NULL;
    assert_int_equal(ck_admission_parse_disabled("Priority,NoSuchPlugin", &bits, &e), -1);
    assert_non_null(strstr(e->msg, "NoSuchPlugin"));
    ck_error_free(e);
    e = NULL;
    f->s.admission_off = CK_ADMIT_PRIORITY | CK_ADMIT_TOLERATIONS | CK_ADMIT_SERVICEACCOUNT;
    json_t *p = pod("\"priorityClassName\":\"nope\"");
    assert_int_equal(ck_admit_create(&f->s, pods(), "ns", p, NULL), 0);
    assert_null(json_object_get(json_object_get(p, "spec"), "tolerations"));
    assert_null(json_object_get(json_object_get(p, "spec"), "priority"));
    assert_null(spec_str(p, "serviceAccountName"));
    json_decref(p);
}

/* the token volume and mount built member by member are json_pack's trees, in the same order */
static void test_token_volume_shape(void **state)
{
    (void)state;
    json_t *want = json_pack("{s:s,s:{s:i,s:[{s:{s:i,s:s}},{s:{s:s,s:[{s:s,s:s}]}},"
                             "{s:{s:[{s:s,s:{s:s,s:s}}]}}]}}",
                             "name", "kube-api-access-abcde", "projected", "defaultMode", 0644, "sources",
                             "serviceAccountToken", "expirationSeconds", CK_SA_TOKEN_VOLUME_SECONDS, "path",
                             "token", "configMap", "name", "kube-root-ca.crt", "items", "key", "ca.crt",
                             "path", "ca.crt", "downwardAPI", "items", "path", "namespace", "fieldRef",
                             "apiVersion", "v1", "fieldPath", "metadata.namespace");
    json_t *got = ck_admission_token_volume("kube-api-access-abcde");
    char *a = ck_json_print(want, NULL), *b = ck_json_print(got, NULL);
    assert_string_equal(a, b);
    free(a);
    free(b);
    json_decref(want);
    json_decref(got);
    json_t *spec = json_pack("{s:[{s:s},{s:s,s:[]}]}", "containers", "name", "a", "name", "b", "volumeMounts");
    ck_admission_mount_token(spec);
    const char *vname = json_string_value(json_object_get(json_array_get(json_object_get(spec, "volumes"), 0), "name"));
    assert_non_null(vname);
    json_t *mount = json_pack("{s:s,s:b,s:s}", "name", vname, "readOnly", 1, "mountPath", CK_SA_TOKEN_MOUNT_PATH);
    for (size_t i = 0; i < 2; i++) {
        json_t *m = json_array_get(json_object_get(json_array_get(json_object_get(spec, "containers"), i),
                                                   "volumeMounts"), 0);
        a = ck_json_print(mount, NULL);
        json_t *wrap = json_pack("[O]", m);
        b = ck_json_print(wrap, NULL);
        json_decref(wrap);
        char *c = xasprintf("[%s]", a);
        assert_string_equal(c, b);
        free(a);
        free(b);
        free(c);
    }
    json_decref(mount);
    json_decref(spec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pod_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pod_cases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sa_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_volume, setup, teardown),
        cmocka_unit_test(test_token_volume_shape),
        cmocka_unit_test_setup_teardown(test_bound_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_global_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit_ranger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quota, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quota_fill_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disable_flag, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
