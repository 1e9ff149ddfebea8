/* Mutation fuzzing of the decoders and patchers that see peer bytes: protobuf, JSON, YAML, label
 * and field selectors, merge/JSON/strategic patches and server-side apply, and the client's HTTP
 * answer parser.  Deterministic (a fixed
 * xorshift seed; CK_FUZZ_SEED and CK_FUZZ_ITERS override), meant for the ASan/UBSan build where a
 * memory error aborts the test.  Each call must keep the error contract: a result, or NULL with an
 * error set - never both, never neither. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <libgen.h>
#include <cmocka.h>

#include "apiserver/codec.h"
#include "apiserver/patch.h"
#include "apiserver/resources.h"
#include "apiserver/selector.h"
#include "client/client_int.h"
#include "lib/http_util.h"
#include "lib/jsonscan.h"
#include "lib/httpd.h"
#include "lib/util.h"

static uint64_t rng = 88172645463325252ULL;
static long iters = 3000;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t rndn(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

static int setup(void **state)
{
    const char *s = getenv("CK_FUZZ_SEED"), *n = getenv("CK_FUZZ_ITERS");
    if (s && *s)
        rng = strtoull(s, NULL, 0) | 1;
    if (n && *n)
        iters = strtol(n, NULL, 0);
    return 0;
}

typedef struct {
    char **data;
    size_t *len;
    size_t n;
} corpus;

static void corpus_add(corpus *c, const char *buf, size_t len)
{
    c->data = xrealloc(c->data, (c->n + 1) * sizeof *c->data);
    c->len = xrealloc(c->len, (c->n + 1) * sizeof *c->len);
    c->data[c->n] = xmalloc(len + 1);
    memcpy(c->data[c->n], buf, len);
    c->data[c->n][len] = 0;
    c->len[c->n++] = len;
}

static void corpus_free(corpus *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->data[i]);
    free(c->data);
    free(c->len);
}

/* Every file in tests/data/<dir> whose name ends in suffix. */
static void corpus_load(corpus *c, const char *dir, const char *suffix)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = 0;
    cleanup_free char *path = xasprintf("%s/tests/data/%s", dirname(dirname(dirname(exe))), dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t nl = strlen(de->d_name), sl = strlen(suffix);
        if (nl < sl || strcmp(de->d_name + nl - sl, suffix))
            continue;
        cleanup_free char *f = xasprintf("%s/%s", path, de->d_name);
        cleanup_free char *buf = NULL;
        size_t len = 0;
        if (ck_read_file(f, 1 << 20, &buf, &len) == 0)
            corpus_add(c, buf, len);
    }
    closedir(d);
    assert_true(c->n > 0);
}

/* 1-4 random edits: bit flips, interesting bytes, inserts, deletes, duplicated runs, truncation. */
static char *mutate(const char *in, size_t n, size_t *outn)
{
    static const char interesting[] = {0, '\xff', '\x7f', '\x80', '{', '}', '[', ']', '"', '\\',
                                       ':', ',', '\n', ' ', '-', '&', '*', '!', '\xc0', '\xe2'};
    size_t cap = n * 2 + 64, len = n;
    char *b = xmalloc(cap);
    memcpy(b, in, n);
    int edits = 1 + (int)rndn(4);
    for (int e = 0; e < edits; e++) {
        size_t at = rndn(len + 1);
        switch (rndn(7)) {
        case 0:
            if (len)
                b[rndn(len)] ^= (char)(1u << rndn(8));
            break;
        case 1:
            if (len)
                b[rndn(len)] = interesting[rndn(sizeof interesting)];
            break;
        case 2:
            if (len + 1 < cap) {
                memmove(b + at + 1, b + at, len - at);
                b[at] = (char)rnd();
                len++;
            }
            break;
        case 3: {
            size_t k = 1 + rndn(16);
            if (at + k > len)
                k = len - at;
            memmove(b + at, b + at + k, len - at - k);
            len -= k;
            break;
        }
        case 4: {
            size_t k = 1 + rndn(32);
            if (at + k > len)
                k = len - at;
            if (len + k < cap) {
                memmove(b + at + k, b + at, len - at);
                len += k;
            }
            break;
        }
        case 5:
            len = at;
            break;
        default:
            if (len)
                b[rndn(len)] = (char)rnd();
        }
    }
    *outn = len;
    return b;
}

static void check_contract(json_t *j, ck_error *e, const char *what)
{
    if ((j == NULL) == (e == NULL))
        fail_msg("%s: result %p with error %p (want exactly one)", what, (void *)j, (void *)e);
    if (e && (!e->msg || !*e->msg))
        fail_msg("%s: error without a message", what);
}

static void test_fuzz_protobuf(void **state)
{
    corpus c = {0};
    corpus_load(&c, "protobuf", ".pb");
    for (long i = 0; i < iters * 4; i++) {
        size_t k = rndn(c.n), n;
        char *m = mutate(c.data[k], c.len[k], &n);
        ck_error *e = NULL;
        json_t *j = ck_protobuf_decode(m, n, &e);
        check_contract(j, e, "protobuf");
        json_decref(j);
        ck_error_free(e);
        free(m);
    }
    corpus_free(&c);
}

static void test_fuzz_json_yaml(void **state)
{
    corpus c = {0};
    corpus_load(&c, "protobuf", ".json");
    static const char *const yamls[] = {
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: {x: \"1\"}\ndata:\n  k: |\n    line\n",
        "a: &x [1, 2, {b: *x}]\nc: !!str 3\nd: ~\ne: 0x1F\nf: 1e3\ng: yes\n<<: {h: 1}\n",
        "---\nkind: A\n---\n- 1\n- - 2\n  - 3\n...\n--- |\n  text\n",
        "k: 'single ''quoted'''\nl: \"esc \\u00e9 \\x41\"\nm: ? complex\n  : key\n",
    };
    for (size_t i = 0; i < ARRAY_SIZE(yamls); i++)
        corpus_add(&c, yamls[i], strlen(yamls[i]));
    static const char *const types[] = {
        "application/json", "application/yaml", "application/apply-patch+yaml",
        "application/merge-patch+json", "application/strategic-merge-patch+json",
        "application/json-patch+json", "application/vnd.kubernetes.protobuf",
    };
    for (long i = 0; i < iters * 2; i++) {
        size_t k = rndn(c.n), n;
        char *m = mutate(c.data[k], c.len[k], &n);
        ck_error *e = NULL;
        json_t *dups = json_array();
        json_t *j = ck_json_load(m, n, dups, &e);
        check_contract(j, e, "json");
        /* Go's grammar (ck_jsonscan_go_error) is never stricter than the decoder's, which adds
         * UTF-8, NUL and range checks: what it refuses must not decode */
        char goerr[160];
        if (ck_jsonscan_go_error(m, m + n, goerr, sizeof goerr) && j)
            fail_msg("go syntax error '%s' on JSON that decodes: %.*s", goerr, (int)n, m);
        if (e && !strncmp(e->msg, "couldn't get version/kind", 25) && strstr(e->msg, "(line ") &&
            !strstr(e->msg, "NUL") && !strstr(e->msg, "UTF-8") && !strstr(e->msg, "overflow") &&
            !strstr(e->msg, "too big") && !strstr(e->msg, "unable to decode byte"))
            fail_msg("a syntax error Go's words missed: %s: %.*s", e->msg, (int)n, m);
        json_decref(j);
        ck_error_free(e);
        e = NULL;
        j = ck_yaml_load_dups(m, n, dups, &e);
        check_contract(j, e, "yaml");
        json_decref(j);
        ck_error_free(e);
        e = NULL;
        j = ck_yaml_load_all(m, n, &e);
        check_contract(j, e, "yaml all");
        json_decref(j);
        ck_error_free(e);
        e = NULL;
        j = ck_decode_body(types[rndn(ARRAY_SIZE(types))], m, n, NULL, &e);
        check_contract(j, e, "decode body");
        json_decref(j);
        ck_error_free(e);
        json_decref(dups);
        free(m);
    }
    corpus_free(&c);
}

static void test_fuzz_selectors(void **state)
{
    static const char *const seeds[] = {
        "app=web,tier!=db", "env in (prod, staging),!canary", "x notin (a,b),y", "a==b,c!=,d in ()",
        "metadata.name=x,metadata.namespace!=y", "spec.nodeName=", "status.phase=Running",
        "involvedObject.kind=Pod,involvedObject.name=p", "type=kubernetes.io/tls", "a.b/c-d_e=f.g-h",
    };
    corpus c = {0};
    for (size_t i = 0; i < ARRAY_SIZE(seeds); i++)
        corpus_add(&c, seeds[i], strlen(seeds[i]));
    const ck_resource *pods = ck_resource_find("", "v1", "pods");
    const ck_resource *events = ck_resource_find("", "v1", "events");
    assert_non_null(pods);
    json_t *labels = json_pack("{s:s,s:s,s:s}", "app", "web", "env", "prod", "x", "c");
    json_t *obj = json_pack("{s:{s:s,s:s},s:{s:s},s:{s:s}}", "metadata", "name", "x", "namespace",
                            "y", "spec", "nodeName", "n1", "status", "phase", "Running");
    for (long i = 0; i < iters * 4; i++) {
        size_t k = rndn(c.n), n;
        char *m = mutate(c.data[k], c.len[k], &n);
        m[n] = 0;                                      /* selectors are C strings */
        ck_error *e = NULL;
        ck_selector *s = ck_label_selector_parse(m, &e);
        if ((s == NULL) == (e == NULL))
            fail_msg("label selector %s: result and error disagree", m);
        if (s)
            (void)ck_label_selector_matches(s, labels);
        ck_selector_free(s);
        ck_error_free(e);
        e = NULL;
        s = ck_field_selector_parse(m, (i & 1) && events ? events : pods, &e);
        if ((s == NULL) == (e == NULL))
            fail_msg("field selector %s: result and error disagree", m);
        if (s) {
            (void)ck_field_selector_matches(s, obj);
            (void)ck_selector_exact(s, "metadata.name");
        }
        ck_selector_free(s);
        ck_error_free(e);
        free(m);
    }
    json_decref(labels);
    json_decref(obj);
    corpus_free(&c);
}

/* Patches: random patch documents (mutated seeds that still parse) against a pod. */
static void test_fuzz_patches(void **state)
{
    static const char *const pod_json =
        "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"namespace\":\"d\","
        "\"labels\":{\"a\":\"1\"},\"finalizers\":[\"f\"]},\"spec\":{\"containers\":[{\"name\":\"c\","
        "\"image\":\"i\",\"ports\":[{\"containerPort\":80,\"protocol\":\"TCP\"}],\"env\":[{\"name\":"
        "\"E\",\"value\":\"v\"}]}],\"volumes\":[{\"name\":\"v\",\"emptyDir\":{}}],\"tolerations\":"
        "[{\"key\":\"k\"}]},\"status\":{\"phase\":\"Pending\"}}";
    static const char *const seeds[] = {
        "{\"metadata\":{\"labels\":{\"a\":null,\"b\":\"2\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"j\"}]}}",
        "{\"spec\":{\"$setElementOrder/containers\":[{\"name\":\"c\"},{\"name\":\"d\"}],\"containers\":"
        "[{\"name\":\"d\",\"image\":\"x\"},{\"name\":\"c\",\"$patch\":\"delete\"}]}}",
        "{\"spec\":{\"containers\":[{\"name\":\"c\",\"ports\":[{\"containerPort\":81}],\"$retainKeys\":[\"name\"]}],"
        "\"volumes\":[{\"$patch\":\"replace\"}]},\"metadata\":{\"$deleteFromPrimitiveList/finalizers\":[\"f\"]}}",
        "[{\"op\":\"add\",\"path\":\"/metadata/labels/b\",\"value\":\"2\"},{\"op\":\"remove\",\"path\":"
        "\"/spec/containers/0/ports/0\"},{\"op\":\"test\",\"path\":\"/kind\",\"value\":\"Pod\"}]",
        "[{\"op\":\"move\",\"from\":\"/spec/volumes\",\"path\":\"/spec/vols\"},{\"op\":\"copy\",\"from\":"
        "\"/metadata\",\"path\":\"/spec/containers/-\"},{\"op\":\"replace\",\"path\":\"/a~1b~0\",\"value\":1}]",
        "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"namespace\":\"d\",\"labels\":"
        "{\"z\":\"1\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"k\"}]}}",
    };
    corpus c = {0};
    for (size_t i = 0; i < ARRAY_SIZE(seeds); i++)
        corpus_add(&c, seeds[i], strlen(seeds[i]));
    const ck_resource *pods = ck_resource_find("", "v1", "pods");
    assert_non_null(pods);
    json_t *pod = json_loads(pod_json, 0, NULL);
    assert_non_null(pod);
    long parsed = 0;
    for (long i = 0; i < iters * 2; i++) {
        size_t k = rndn(c.n), n;
        char *m = mutate(c.data[k], c.len[k], &n);
        json_t *p = json_loadb(m, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        free(m);
        if (!p)
            continue;
        parsed++;
        ck_error *e = NULL;
        json_t *j = ck_patch_merge(pod, p, &e);
        check_contract(j, e, "merge patch");
        json_decref(j);
        ck_error_free(e);
        e = NULL;
        j = ck_patch_json(pod, p, &e);
        check_contract(j, e, "json patch");
        json_decref(j);
        ck_error_free(e);
        e = NULL;
        j = ck_patch_strategic(pod, p, pods, &e);
        check_contract(j, e, "strategic patch");
        json_decref(j);
        ck_error_free(e);
        e = NULL;
        j = ck_patch_apply((i & 1) ? pod : NULL, p, pods, "fuzz", (i & 2) != 0, &e);
        check_contract(j, e, "apply");
        if (j) {
            /* a second manager applying over the result exercises managedFields merging */
            ck_error *e2 = NULL;
            json_t *j2 = ck_patch_apply(j, pod, pods, "other", false, &e2);
            check_contract(j2, e2, "apply over apply");
            json_decref(j2);
            ck_error_free(e2);
            json_t *upd = json_deep_copy(j);
            ck_managed_fields_record(upd, j, "upd", "Update", "v1");
            json_decref(upd);
        }
        json_decref(j);
        ck_error_free(e);
        json_decref(p);
    }
    assert_true(parsed > iters / 20);   /* the mutations left enough valid patches to mean something */
    json_decref(pod);
    corpus_free(&c);
}

/* The client's HTTP/1.1 answer parser (what components read from the API server): every prefix
 * of a mutated answer, in an exact-size heap copy so ASan sees any overread.  An answer found
 * complete in a prefix must be the same one the whole input gives. */
static void test_fuzz_http_answers(void **state)
{
    static const char *const seeds[] = {
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\nA\r\n0123456789\r\n"
        "0\r\nTrailer: 1\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 409 Conflict\r\nConnection: close\r\n"
        "Content-Length: 5\r\n\r\nabcde",
        "HTTP/1.0 200 OK\r\n\r\nuntil the end",
        "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    };
    long complete = 0;
    for (long i = 0; i < iters; i++) {
        const char *seed = seeds[rndn(ARRAY_SIZE(seeds))];
        size_t n;
        char *m = mutate(seed, strlen(seed), &n);
        ck_client_answer whole = {0};
        ck_buf_init(&whole.body, 1u << 16);
        bool eof = rndn(2);
        int rc = ck_client_parse_answer(n ? m : NULL, n, eof, 1u << 16, &whole);
        if (rc < -1 || rc > 1)
            fail_msg("http answer: rc %d", rc);
        if (rc == 1) {
            complete++;
            if (whole.used > n || whole.status < 0 || whole.status > 999 ||
                whole.body.len > (1u << 16))
                fail_msg("http answer: used %zu of %zu, status %d", whole.used, n, whole.status);
        }
        for (size_t k = 0; k < n; k += 1 + rndn(5)) {
            char *pre = xmalloc(k ? k : 1);
            memcpy(pre, m, k);
            ck_client_answer a = {0};
            ck_buf_init(&a.body, 1u << 16);
            int prc = ck_client_parse_answer(k ? pre : NULL, k, false, 1u << 16, &a);
            if (prc == 1 && rc == 1 && (a.used != whole.used || a.status != whole.status))
                fail_msg("http answer: a prefix of %zu bytes gave another answer", k);
            ck_buf_free(&a.body);
            free(pre);
        }
        ck_buf_free(&whole.body);
        free(m);
    }
    assert_true(complete > iters / 20);
}

/* The request parser's helpers on mutated targets and header values: percent-decoding (both
 * modes, exact-size input), query parameters, tokens, and the Status body built from a message
 * that may echo the peer's bytes (it must stay JSON). */
static void test_fuzz_http_helpers(void **state)
{
    static const char *const seeds[] = {
        "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb%2Ctier+in+(a,b)&limit=5&watch=1",
        "fieldSelector=metadata.name%3Dx&timeoutSeconds=30&resourceVersion=12&%zz=%4",
        "chunked, gzip;q=0.5 ,Upgrade, keep-alive",
        "/a%2F%252e%2e/%C3%A9%00%",
    };
    /* a message echoing a pod name from the URL: it was printed into the JSON unescaped */
    char *st0 = ck_http__status_json(404, "NotFound", "pod \"default/a\"}\\\x01\xff\" not found");
    json_t *j0 = json_loads(st0, 0, NULL);
    assert_non_null(j0);
    assert_string_equal(json_string_value(json_object_get(j0, "message")),
                        "pod \"default/a\"}\\\x01\xef\xbf\xbd\" not found");
    assert_int_equal(json_integer_value(json_object_get(j0, "code")), 404);
    json_decref(j0);
    free(st0);
    for (long i = 0; i < iters * 4; i++) {
        const char *seed = seeds[rndn(ARRAY_SIZE(seeds))];
        size_t n;
        char *m = mutate(seed, strlen(seed), &n);
        char *exact = xmalloc(n ? n : 1);
        memcpy(exact, m, n);
        free(ck_http__pct_decode(exact, n, true, false));
        char *d = ck_http__pct_decode(exact, n, false, true);
        if (d && strlen(d) > n)
            fail_msg("pct_decode grew the text");
        free(d);
        free(exact);
        char *z = xstrndup(m, n);   /* the string helpers take NUL-terminated text */
        free(ck_http_query_param(z, "limit"));
        free(ck_http_query_param(z, ""));
        (void)ck_http_query_bool(z, "watch");
        (void)ck_http__has_token(z, "chunked");
        (void)ck_http__is_token(z, strlen(z));
        (void)ck_http__is_field_value(z, strlen(z));
        char *st = ck_http__status_json(400, "BadRequest", z);
        json_error_t je;
        json_t *j = json_loads(st, 0, &je);
        if (!j)
            fail_msg("status body is not JSON: %s (%s)", je.text, st);
        json_decref(j);
        free(st);
        free(z);
        free(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fuzz_protobuf),
        cmocka_unit_test(test_fuzz_json_yaml),
        cmocka_unit_test(test_fuzz_selectors),
        cmocka_unit_test(test_fuzz_patches),
        cmocka_unit_test(test_fuzz_http_answers),
        cmocka_unit_test(test_fuzz_http_helpers),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
