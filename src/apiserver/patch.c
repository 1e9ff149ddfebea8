/* patch.c - JSON merge patch (RFC 7386) and JSON patch (RFC 6902).  Both work on a deep copy
 * of the target, so inputs are never modified.  JSON-patch errors read as evanphx/json-patch's
 * (which upstream uses) and are 422 when an op does not apply, 400 when the patch is malformed. */
#include "apiserver/patch.h"
#include "lib/util.h"

#include <stdlib.h>
#include <string.h>

/* A patch value copied in whole loses the null members of the objects inside it (arrays keep their
 * null elements), as evanphx/json-patch's merge patch (what upstream uses) prunes them: except
 * when a non-object replaces an object, which it copies verbatim. */
static json_t *pruned_copy(const json_t *v)
{
    if (json_is_object(v)) {
        json_t *o = json_object();
        const char *k;
        json_t *c;
        json_object_foreach((json_t *)v, k, c)
            if (!json_is_null(c))
                json_object_set_new(o, k, pruned_copy(c));
        return o;
    }
    if (json_is_array(v)) {
        json_t *a = json_array();
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c)
            json_array_append_new(a, pruned_copy(c));
        return a;
    }
    return json_deep_copy(v);
}

static json_t *merge(json_t *target, const json_t *patch)
{
    if (!json_is_object(patch)) {
        bool verbatim = json_is_object(target);
        json_decref(target);
        return verbatim ? json_deep_copy(patch) : pruned_copy(patch);
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

/* An array index as Go's strconv.Atoi reads it (sign, digits); false if it is not one. */
static bool parse_index(const char *t, long *out)
{
    const char *p = t;
    if (*p == '+' || *p == '-')
        p++;
    if (!*p || strlen(p) > 9)
        return false;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9')
            return false;
    *out = atol(t);
    return true;
}

/* evanphx/json-patch v4 (what upstream uses) accepts negative indices counting from the end. */
static bool resolve_index(long idx, size_t size, size_t *out)
{
    if (idx >= (long)size || idx < -(long)size)
        return false;
    *out = (size_t)(idx < 0 ? idx + (long)size : idx);
    return true;
}

/* An array position as v4 resolves it: 0 and *at set, or -1 with *why set to its error text. */
static int array_pos(const char *tok, size_t size, char **why, size_t *at)
{
    long idx;
    if (!parse_index(tok, &idx)) {
        *why = xasprintf("strconv.Atoi: parsing \"%s\": invalid syntax", tok);
        return -1;
    }
    if (!resolve_index(idx, size, at)) {
        *why = xasprintf("Unable to access invalid index: %ld: invalid index referenced", idx);
        return -1;
    }
    return 0;
}

/* The container that holds the last token; NULL if a step is missing. */
static json_t *walk(json_t *doc, char **toks, size_t n)
{
    json_t *cur = doc;
    for (size_t i = 0; i < n && cur; i++) {
        if (json_is_object(cur)) {
            cur = json_object_get(cur, toks[i]);
        } else if (json_is_array(cur)) {
            long idx;
            size_t at;
            cur = parse_index(toks[i], &idx) && resolve_index(idx, json_array_size(cur), &at)
                      ? json_array_get(cur, at) : NULL;
        } else {
            cur = NULL;
        }
    }
    return cur;
}

/* The parent container of path and its last token; NULL parent if a step is missing. */
struct target {
    char **toks;
    size_t n;
    json_t *parent;
    const char *last;
};

static bool target_of(json_t *doc, const char *path, struct target *t)
{
    t->toks = pointer_split(path, &t->n);
    if (!t->toks)
        return false;
    t->parent = t->n ? walk(doc, t->toks, t->n - 1) : NULL;
    if (t->parent && !json_is_object(t->parent) && !json_is_array(t->parent))
        t->parent = NULL;
    t->last = t->n ? t->toks[t->n - 1] : "";
    return true;
}

static void target_free(struct target *t)
{
    if (t->toks)
        toks_free(t->toks, t->n);
}

/* The value at a path for test/copy/move: NULL with *parent_found false when a step is missing;
 * a missing object key is (NULL, found) as v4 reads it; a bad array index sets *why. */
static json_t *get_at(json_t *doc, const char *path, bool *parent_found, char **why)
{
    struct target t;
    *parent_found = false;
    *why = NULL;
    if (!target_of(doc, path, &t))
        return NULL;
    json_t *v = NULL;
    if (t.n == 0) {
        *parent_found = true;
        v = doc;
    } else if (t.parent) {
        *parent_found = true;
        size_t at;
        if (json_is_object(t.parent))
            v = json_object_get(t.parent, t.last);
        else if (array_pos(t.last, json_array_size(t.parent), why, &at) == 0)
            v = json_array_get(t.parent, at);
    }
    target_free(&t);
    return v;
}

static int invalid_index(ck_error **err, const char *op, const char *path, const char *tok)
{
    return ck_error_set(err, CK_E_INVALID, "error in %s for path: '%s': Unable to access invalid index: %s: "
                                           "invalid index referenced", op, path, tok);
}

/* add (insert into arrays, set in objects); val is stolen. */
static int op_add(json_t **doc, const char *op, const char *path, json_t *val, ck_error **err)
{
    struct target t;
    int rc = 0;
    if (!target_of(*doc, path, &t)) {
        json_decref(val);
        return ck_error_set(err, CK_E_INVALID, "%s operation failed to decode path", op);
    }
    if (t.n == 0) {
        json_decref(*doc);
        *doc = val;
        target_free(&t);
        return 0;
    }
    if (!t.parent) {
        if (!strcmp(op, "add"))
            rc = ck_error_set(err, CK_E_INVALID, "add operation does not apply: doc is missing path: \"%s\": missing value",
                              path);
        else
            rc = ck_error_set(err, CK_E_INVALID, "%s operation does not apply: doc is missing destination path: %s: "
                                                 "missing value", op, path);
    } else if (json_is_object(t.parent)) {
        json_object_set(t.parent, t.last, val);
    } else if (!strcmp(t.last, "-")) {
        json_array_append(t.parent, val);
    } else {
        long idx;
        size_t at;
        if (!parse_index(t.last, &idx))
            rc = ck_error_set(err, CK_E_INVALID, "error in %s for path: '%s': value was not a proper array index: '%s': "
                              "strconv.Atoi: parsing \"%s\": invalid syntax", op, path, t.last, t.last);
        else if (!resolve_index(idx, json_array_size(t.parent) + 1, &at) && !strcmp(op, "copy"))
            rc = ck_error_set(err, CK_E_INVALID, "error while adding value during copy: Unable to access invalid index: "
                                                 "%s: invalid index referenced", t.last);
        else if (!resolve_index(idx, json_array_size(t.parent) + 1, &at))
            rc = invalid_index(err, op, path, t.last);
        else
            json_array_insert(t.parent, at, val);
    }
    json_decref(val);
    target_free(&t);
    return rc;
}

static int op_remove(json_t *doc, const char *op, const char *path, ck_error **err)
{
    struct target t;
    int rc = 0;
    if (!target_of(doc, path, &t))
        return ck_error_set(err, CK_E_INVALID, "%s operation failed to decode path", op);
    if (!t.parent) {
        rc = ck_error_set(err, CK_E_INVALID, "%s operation does not apply: doc is missing path: \"%s\": missing value",
                          op, path);
    } else if (json_is_object(t.parent)) {
        if (json_object_del(t.parent, t.last) < 0)
            rc = ck_error_set(err, CK_E_INVALID, "error in %s for path: '%s': Unable to remove nonexistent key: %s: "
                                                 "missing value", op, strcmp(op, "move") ? path : t.last, t.last);
    } else {
        size_t at;
        cleanup_free char *why = NULL;
        if (array_pos(t.last, json_array_size(t.parent), &why, &at) < 0)
            rc = ck_error_set(err, CK_E_INVALID, "error in %s for path: '%s': %s", op, path, why);
        else
            json_array_remove(t.parent, at);
    }
    target_free(&t);
    return rc;
}

static int op_replace(json_t **doc, const char *path, json_t *val, ck_error **err)
{
    struct target t;
    int rc = 0;
    if (!target_of(*doc, path, &t)) {
        json_decref(val);
        return ck_error_set(err, CK_E_INVALID, "replace operation failed to decode path");
    }
    if (t.n == 0) {
        json_decref(*doc);
        *doc = val;
        target_free(&t);
        return 0;
    }
    if (!t.parent) {
        rc = ck_error_set(err, CK_E_INVALID, "replace operation does not apply: doc is missing path: %s: missing value",
                          path);
    } else if (json_is_object(t.parent)) {
        /* v4 sets a missing key rather than failing */
        json_object_set(t.parent, t.last, val);
    } else {
        long idx;
        size_t at;
        if (!parse_index(t.last, &idx) || !resolve_index(idx, json_array_size(t.parent), &at))
            rc = ck_error_set(err, CK_E_INVALID, "replace operation does not apply: doc is missing key: %s: missing value",
                              path);
        else
            json_array_set(t.parent, at, val);
    }
    json_decref(val);
    target_free(&t);
    return rc;
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
        if (!kind) {
            ck_error_set(err, CK_E_INVALID, "Unexpected kind: unknown");
            goto fail;
        }
        bool known = !strcmp(kind, "add") || !strcmp(kind, "remove") || !strcmp(kind, "replace") ||
                     !strcmp(kind, "move") || !strcmp(kind, "copy") || !strcmp(kind, "test");
        if (!known) {
            ck_error_set(err, CK_E_INVALID, "Unexpected kind: %s", kind);
            goto fail;
        }
        if (!path) {
            ck_error_set(err, CK_E_INVALID, "%s operation failed to decode path", kind);
            goto fail;
        }
        /* a missing value reads as null, as v4 does */
        json_t *value = json_object_get(op, "value");
        json_t *vcopy = value ? json_deep_copy(value) : json_null();
        int rc = 0;
        if (!strcmp(kind, "add")) {
            rc = op_add(&out, "add", path, vcopy, err);
        } else if (!strcmp(kind, "replace")) {
            rc = op_replace(&out, path, vcopy, err);
        } else if (!strcmp(kind, "remove")) {
            json_decref(vcopy);
            rc = op_remove(out, "remove", path, err);
        } else if (!strcmp(kind, "move") || !strcmp(kind, "copy")) {
            json_decref(vcopy);
            const char *from = json_string_value(json_object_get(op, "from"));
            if (!from) {
                ck_error_set(err, CK_E_INVALID, "%s operation failed to decode from", kind);
                goto fail;
            }
            bool parent_found;
            cleanup_free char *why = NULL;
            json_t *src = get_at(out, from, &parent_found, &why);
            if (why) {
                if (!strcmp(kind, "move")) {
                    const char *key = strrchr(from, '/');
                    ck_error_set(err, CK_E_INVALID, "error in move for path: '%s': %s", key ? key + 1 : from, why);
                } else {
                    ck_error_set(err, CK_E_INVALID, "error in copy for from: '%s': %s", from, why);
                }
                goto fail;
            }
            if (!parent_found) {
                ck_error_set(err, CK_E_INVALID, "%s operation does not apply: doc is missing from path: %s: missing value",
                             kind, from);
                goto fail;
            }
            /* v4: a missing key copies as null; moving it fails on the removal */
            json_t *v = src ? json_deep_copy(src) : json_null();
            if (!strcmp(kind, "move")) {
                if (op_remove(out, "move", from, err) < 0) {
                    json_decref(v);
                    goto fail;
                }
            }
            rc = op_add(&out, kind, path, v, err);
        } else {   /* test */
            bool parent_found;
            cleanup_free char *why = NULL;
            json_t *cur = get_at(out, path, &parent_found, &why);
            if (why) {
                json_decref(vcopy);
                ck_error_set(err, CK_E_INVALID, "error in test for path: '%s': %s", path, why);
                goto fail;
            }
            if (!parent_found) {
                json_decref(vcopy);
                ck_error_set(err, CK_E_INVALID, "test operation does not apply: is missing path: %s: missing value", path);
                goto fail;
            }
            bool eq = cur ? json_equal(cur, vcopy) : json_is_null(vcopy);
            json_decref(vcopy);
            if (!eq) {
                ck_error_set(err, CK_E_INVALID, "testing value %s failed: test failed", path);
                goto fail;
            }
        }
        if (rc < 0)
            goto fail;
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}
