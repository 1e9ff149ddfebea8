/* patch.c - JSON merge patch (RFC 7386) and JSON patch (RFC 6902).  Both work on a deep copy
 * of the target, so inputs are never modified.  JSON-patch errors read as evanphx/json-patch's
 * (which upstream uses) and are 422 when an op does not apply, 400 when the patch is malformed. */
#include "apiserver/patch.h"
#include "lib/util.h"

#include <stdlib.h>
#include <string.h>

static json_t *merge(json_t *target, const json_t *patch)
{
    if (!json_is_object(patch)) {
        json_decref(target);
        return json_deep_copy(patch);
    }
    if (!json_is_object(target)) {
        json_decref(target);
        target = json_object();
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)patch, k, v) {
        if (json_is_null(v)) {
            json_object_del(target, k);
            continue;
        }
        json_t *cur = json_object_get(target, k);
        json_object_set_new(target, k, merge(cur ? json_incref(cur) : NULL, v));
    }
    return target;
}

json_t *ck_patch_merge(const json_t *target, const json_t *patch, ck_error **err)
{
    if (!patch) {
        ck_error_set(err, CK_E_BAD_REQUEST, "empty merge patch");
        return NULL;
    }
    /* merge() shares no structure with its inputs: copy the target first */
    return merge(target ? json_deep_copy(target) : NULL, patch);
}

/* ---- JSON pointer ---- */

/* Split "/a/b~1c" into unescaped tokens; NULL on a malformed pointer. */
static char **pointer_split(const char *p, size_t *n)
{
    *n = 0;
    if (*p && *p != '/')
        return NULL;
    char **toks = xcalloc(1, sizeof *toks);
    if (!*p)
        return toks;
    const char *s = p + 1;
    for (;;) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        char *t = xmalloc(len + 1), *w = t;
        for (size_t i = 0; i < len; i++) {
            if (s[i] == '~' && i + 1 < len && (s[i + 1] == '0' || s[i + 1] == '1')) {
                *w++ = s[i + 1] == '0' ? '~' : '/';
                i++;
            } else {
                *w++ = s[i];
            }
        }
        *w = 0;
        toks = xrealloc(toks, (*n + 2) * sizeof *toks);
        toks[(*n)++] = t;
        if (!e)
            break;
        s = e + 1;
    }
    return toks;
}

static void toks_free(char **t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(t[i]);
    free(t);
}

/* Array index token: digits without leading zeros; -1 if not an index. */
static long parse_index(const char *t)
{
    if (!*t || (t[0] == '0' && t[1]) || strlen(t) > 9)
        return -1;
    for (const char *p = t; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    return atol(t);
}

/* The container that holds the last token; NULL if a step is missing. */
static json_t *walk(json_t *doc, char **toks, size_t n)
{
    json_t *cur = doc;
    for (size_t i = 0; i < n && cur; i++) {
        if (json_is_object(cur)) {
            cur = json_object_get(cur, toks[i]);
        } else if (json_is_array(cur)) {
            long idx = parse_index(toks[i]);
            cur = idx < 0 ? NULL : json_array_get(cur, (size_t)idx);
        } else {
            cur = NULL;
        }
    }
    return cur;
}

static json_t *get_at(json_t *doc, const char *path)
{
    size_t n;
    char **t = pointer_split(path, &n);
    if (!t)
        return NULL;
    json_t *v = walk(doc, t, n);
    toks_free(t, n);
    return v;
}

enum { OK = 0, MISSING = -1, BADIDX = -2 };

/* add/replace/remove at path in *doc (doc may be replaced for path ""). */
static int op_add(json_t **doc, const char *path, json_t *val /* stolen */, bool replace_only)
{
    size_t n;
    char **t = pointer_split(path, &n);
    if (!t) {
        json_decref(val);
        return MISSING;
    }
    int rc = OK;
    if (n == 0) {
        json_decref(*doc);
        *doc = val;
        goto out;
    }
    json_t *parent = walk(*doc, t, n - 1);
    const char *last = t[n - 1];
    if (json_is_object(parent)) {
        if (replace_only && !json_object_get(parent, last))
            rc = MISSING;
        else
            json_object_set(parent, last, val);
    } else if (json_is_array(parent)) {
        size_t size = json_array_size(parent);
        if (replace_only) {
            long idx = parse_index(last);
            if (idx < 0 || (size_t)idx >= size)
                rc = BADIDX;
            else
                json_array_set(parent, (size_t)idx, val);
        } else if (!strcmp(last, "-")) {
            json_array_append(parent, val);
        } else {
            long idx = parse_index(last);
            if (idx < 0 || (size_t)idx > size)
                rc = BADIDX;
            else
                json_array_insert(parent, (size_t)idx, val);
        }
    } else {
        rc = MISSING;
    }
    json_decref(val);
out:
    toks_free(t, n);
    return rc;
}

static int op_remove(json_t *doc, const char *path)
{
    size_t n;
    char **t = pointer_split(path, &n);
    if (!t || n == 0) {
        if (t)
            toks_free(t, n);
        return MISSING;
    }
    int rc = OK;
    json_t *parent = walk(doc, t, n - 1);
    const char *last = t[n - 1];
    if (json_is_object(parent)) {
        if (json_object_del(parent, last) < 0)
            rc = MISSING;
    } else if (json_is_array(parent)) {
        long idx = parse_index(last);
        if (idx < 0 || (size_t)idx >= json_array_size(parent))
            rc = BADIDX;
        else
            json_array_remove(parent, (size_t)idx);
    } else {
        rc = MISSING;
    }
    toks_free(t, n);
    return rc;
}

static int fail_op(ck_error **err, const char *op, const char *path, int rc)
{
    if (rc == BADIDX)
        return ck_error_set(err, CK_E_INVALID, "%s operation does not apply: doc is missing path: \"%s\": "
                                               "invalid index referenced", op, path);
    if (!strcmp(op, "replace") || !strcmp(op, "remove"))
        return ck_error_set(err, CK_E_INVALID, "%s operation does not apply: doc is missing key: %s: missing value",
                            op, path);
    return ck_error_set(err, CK_E_INVALID, "%s operation does not apply: doc is missing path: \"%s\": missing value",
                        op, path);
}

json_t *ck_patch_json(const json_t *doc, const json_t *ops, ck_error **err)
{
    if (!json_is_array(ops)) {
        ck_error_set(err, CK_E_BAD_REQUEST, "json: cannot unmarshal object into Go value of type jsonpatch.Patch");
        return NULL;
    }
    if (json_array_size(ops) > CK_JSON_PATCH_MAX_OPS) {
        ck_error_set(err, CK_E_TOO_LARGE, "The allowed operations count is %d, got %zu", CK_JSON_PATCH_MAX_OPS,
                     json_array_size(ops));
        return NULL;
    }
    json_t *out = doc ? json_deep_copy(doc) : json_object();
    size_t i;
    json_t *op;
    json_array_foreach(ops, i, op) {
        const char *kind = json_string_value(json_object_get(op, "op"));
        const char *path = json_string_value(json_object_get(op, "path"));
        if (!json_is_object(op) || !kind) {
            ck_error_set(err, CK_E_INVALID, "Unexpected kind: unknown");
            goto fail;
        }
        if (!path) {
            ck_error_set(err, CK_E_INVALID, "%s operation failed to decode path", kind);
            goto fail;
        }
        json_t *value = json_object_get(op, "value");
        int rc;
        if (!strcmp(kind, "add") || !strcmp(kind, "replace")) {
            if (!value) {
                ck_error_set(err, CK_E_INVALID, "%s operation failed to decode value", kind);
                goto fail;
            }
            rc = op_add(&out, path, json_deep_copy(value), !strcmp(kind, "replace"));
            if (rc < 0) {
                fail_op(err, kind, path, rc);
                goto fail;
            }
        } else if (!strcmp(kind, "remove")) {
            if ((rc = op_remove(out, path)) < 0) {
                fail_op(err, kind, path, rc);
                goto fail;
            }
        } else if (!strcmp(kind, "move") || !strcmp(kind, "copy")) {
            const char *from = json_string_value(json_object_get(op, "from"));
            if (!from) {
                ck_error_set(err, CK_E_INVALID, "%s operation failed to decode from", kind);
                goto fail;
            }
            json_t *src = get_at(out, from);
            if (!src) {
                ck_error_set(err, CK_E_INVALID, "%s operation does not apply: doc is missing from path: %s: missing value",
                             kind, from);
                goto fail;
            }
            bool move = !strcmp(kind, "move");
            size_t fl = strlen(from);
            if (move && !strncmp(path, from, fl) && path[fl] == '/') {
                ck_error_set(err, CK_E_INVALID, "move operation does not apply: from %s is a prefix of path %s",
                             from, path);
                goto fail;
            }
            json_t *v = json_deep_copy(src);
            if (move)
                op_remove(out, from);
            if ((rc = op_add(&out, path, v, false)) < 0) {
                fail_op(err, kind, path, rc);
                goto fail;
            }
        } else if (!strcmp(kind, "test")) {
            json_t *cur = get_at(out, path);
            bool eq = cur && value ? json_equal(cur, value) : (!cur && (!value || json_is_null(value)));
            if (!eq) {
                ck_error_set(err, CK_E_INVALID, "testing value %s failed: test failed", path);
                goto fail;
            }
        } else {
            ck_error_set(err, CK_E_INVALID, "Unexpected kind: %s", kind);
            goto fail;
        }
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}
