/* meta.c - object metadata semantics the API server owns: uid, creationTimestamp, generation,
 * resourceVersion (never stored: it is the store's mod revision, injected on every read),
 * generateName suffixes, and list continue tokens. */
#include "apiserver/apiserver.h"
#include "lib/base64.h"
#include "lib/jsonscan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ck_meta_random_suffix(char out[6])
{
    /* upstream's alphabet: no vowels (no words), no 0/1/3 (confusable) */
    static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
    unsigned char r[5];
    ck_random_bytes(r, sizeof r);
    for (int i = 0; i < 5; i++)
        out[i] = alphabet[r[i] % (sizeof alphabet - 1)];
    out[5] = '\0';
}

char *ck_continue_encode(int64_t rev, const char *start)
{
    json_t *j = json_pack("{s:s,s:I,s:s}", "v", "meta.k8s.io/v1", "rv", (json_int_t)rev, "start",
                          start);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    ck_buf b;
    ck_buf_init(&b, 0);
    ck_b64url_encode(&b, text, strlen(text));
    free(text);
    return ck_buf_steal(&b);
}

int ck_continue_decode(const char *tok, int64_t *rev, char **start, ck_error **err)
{
    size_t n = 0;
    cleanup_free char *raw = tok ? (char *)ck_b64url_decode(tok, strlen(tok), &n) : NULL;
    json_t *j = raw ? json_loadb(raw, n, 0, NULL) : NULL;
    const char *v = json_string_value(json_object_get(j, "v"));
    const char *s = json_string_value(json_object_get(j, "start"));
    json_int_t r = json_integer_value(json_object_get(j, "rv"));
    if (!j || !v || strcmp(v, "meta.k8s.io/v1") || !s || r <= 0 || strstr(s, "..") ||
        s[0] == '/') {
        json_decref(j);
        return ck_error_set(err, CK_E_BAD_REQUEST, "continue key is not valid: %s",
                            !j ? "incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
                               : "invalid continue token");
    }
    *rev = r;
    *start = xstrdup(s);
    json_decref(j);
    return 0;
}

json_t *ck_meta(json_t *obj)
{
    json_t *m = json_object_get(obj, "metadata");
    if (!json_is_object(m)) {
        m = json_object();
        json_object_set_new(obj, "metadata", m);
    }
    return m;
}

const char *ck_meta_str(const json_t *obj, const char *field)
{
    return json_string_value(json_object_get(json_object_get(obj, "metadata"), field));
}

void ck_meta_set_rv(json_t *obj, int64_t rev)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (long long)rev);
    json_object_set_new(ck_meta(obj), "resourceVersion", json_string(buf));
}

bool ck_meta_has_generation(const ck_resource *r)
{
    static const char *const kinds =
        "deployments replicasets statefulsets daemonsets jobs cronjobs replicationcontrollers "
        "poddisruptionbudgets";
    return ck_word_in(kinds, r->resource);
}

bool ck_res_has_status(const ck_resource *r)
{
    return ck_word_in(r->subresources, "status");
}

const char *ck_res_qualified(const ck_resource *r)
{
    static __thread char buf[160];
    if (!r->group[0])
        return r->resource;
    snprintf(buf, sizeof buf, "%s.%s", r->resource, r->group);
    return buf;
}

/* ObjectMeta's lists and maps are `omitempty` in Go: an empty one is never stored or shown
 * (removing the last finalizer leaves no "finalizers": []). */
static void drop_empty_lists(json_t *m)
{
    static const char *const fields[] = {"finalizers", "ownerReferences", "labels", "annotations"};
    for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
        json_t *v = json_object_get(m, fields[i]);
        if ((json_is_array(v) && !json_array_size(v)) || (json_is_object(v) && !json_object_size(v)) ||
            json_is_null(v))
            json_object_del(m, fields[i]);
    }
}

void ck_meta_on_create(const ck_resource *r, json_t *obj, int64_t now)
{
    json_t *m = ck_meta(obj);
    drop_empty_lists(m);
    char uid[37], ts[32];
    ck_uuid4(uid);
    ck_rfc3339(now, ts);
    json_object_set_new(m, "uid", json_string(uid));
    json_object_set_new(m, "creationTimestamp", json_string(ts));
    json_object_del(m, "resourceVersion");
    json_object_del(m, "selfLink");
    json_object_del(m, "deletionTimestamp");
    json_object_del(m, "deletionGracePeriodSeconds");
    if (ck_meta_has_generation(r))
        json_object_set_new(m, "generation", json_integer(1));
    else
        json_object_del(m, "generation");
}

void ck_meta_on_update(const ck_resource *r, json_t *obj, const json_t *old)
{
    json_t *m = ck_meta(obj);
    drop_empty_lists(m);
    const json_t *om = json_object_get(old, "metadata");
    static const char *const kept[] = {"uid", "creationTimestamp", "deletionTimestamp",
                                       "deletionGracePeriodSeconds"};
    for (size_t i = 0; i < ARRAY_SIZE(kept); i++) {
        json_t *v = json_object_get(om, kept[i]);
        if (v)
            json_object_set(m, kept[i], v);
        else
            json_object_del(m, kept[i]);
    }
    json_object_del(m, "selfLink");
    if (!ck_meta_has_generation(r)) {
        json_object_del(m, "generation");
        return;
    }
    json_int_t gen = json_integer_value(json_object_get(om, "generation"));
    if (gen <= 0)
        gen = 1;
    if (!json_equal(json_object_get(obj, "spec"), json_object_get(old, "spec")))
        gen++;
    json_object_set_new(m, "generation", json_integer(gen));
}

char *ck_meta_dump_for_store(json_t *obj, size_t *len)
{
    json_t *m = json_object_get(obj, "metadata");
    json_t *rv = json_object_get(m, "resourceVersion");
    if (rv) {
        json_incref(rv);
        json_object_del(m, "resourceVersion");
    }
    *len = 0;
    char *text = ck_json_print(obj, len);
    if (rv) {
        json_object_set_new(m, "resourceVersion", rv);
    }
    return text;
}

/* ---- resourceVersion without a parse ----
 * Lists of thousands of objects are most of the API server's CPU if every stored object is
 * parsed into a tree and printed again only to add metadata.resourceVersion.  Stored values are
 * compact JSON objects written by us, so a scan that skips strings and nested values finds the
 * top-level "metadata" object, and the field is inserted as text. */

static size_t skip_ws(const char *s, size_t i, size_t n)
{
    return (size_t)(ck_jsonscan_ws(s + i, s + n) - s);
}

/* i at an opening quote; returns the index after the closing quote, or n on error. */
static size_t skip_string(const char *s, size_t i, size_t n)
{
    const char *e = ck_jsonscan_string(s + i, s + n);
    return e ? (size_t)(e - s) : n;
}

/* i at the first character of a value; returns the index after it: n when it is unterminated,
 * i when it is empty. */
size_t ck_json_skip_value(const char *s, size_t i, size_t n)
{
    if (i >= n)
        return n;
    const char *e = ck_jsonscan_skip(s + i, s + n);
    if (e)
        return (size_t)(e - s);
    return s[i] == '"' || s[i] == '{' || s[i] == '[' ? n : i;
}

int ck_json_rv_slot(const char *s, size_t n, size_t *at, bool *empty)
{
    size_t i = skip_ws(s, 0, n);
    if (i >= n || s[i] != '{')
        return -1;
    i = skip_ws(s, i + 1, n);
    while (i < n && s[i] == '"') {
        size_t kstart = i;
        size_t kend = skip_string(s, i, n);
        i = skip_ws(s, kend, n);
        if (i >= n || s[i] != ':')
            return -1;
        i = skip_ws(s, i + 1, n);
        if (kend - kstart == 10 && !memcmp(s + kstart, "\"metadata\"", 10)) {
            if (i >= n || s[i] != '{')
                return -1;
            size_t after = skip_ws(s, i + 1, n);
            *empty = after < n && s[after] == '}';
            *at = i + 1;
            return 0;
        }
        i = skip_ws(s, ck_json_skip_value(s, i, n), n);
        if (i < n && s[i] == ',')
            i = skip_ws(s, i + 1, n);
        else
            break;
    }
    return -1;
}

int ck_json_splice_rv_at(const char *s, size_t n, size_t at, bool empty, int64_t rev, ck_buf *out)
{
    /* "resourceVersion":"<rev>", without printf: every answer and watch line of a write
     * passes here */
    char mid[64] = "\"resourceVersion\":\"";
    size_t m = sizeof "\"resourceVersion\":\"" - 1;
    char digits[24];
    size_t nd = 0;
    uint64_t u = rev < 0 ? (uint64_t)0 - (uint64_t)rev : (uint64_t)rev;
    do {
        digits[nd++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (rev < 0)
        mid[m++] = '-';
    while (nd)
        mid[m++] = digits[--nd];
    mid[m++] = '"';
    if (!empty)
        mid[m++] = ',';
    if (ck_buf_add(out, s, at) < 0 || ck_buf_add(out, mid, m) < 0 || ck_buf_add(out, s + at, n - at) < 0)
        return -1;
    return 0;
}

int ck_json_splice_rv(const char *s, size_t n, int64_t rev, ck_buf *out)
{
    size_t at;
    bool empty;
    if (ck_json_rv_slot(s, n, &at, &empty) < 0)
        return -1;
    return ck_json_splice_rv_at(s, n, at, empty, rev, out);
}
