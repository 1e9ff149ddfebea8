/* strategic.c - strategic merge patch for the built-in kinds (schema.h says which lists merge
 * and on which key).  Directives handled: "$patch": replace|delete|merge on maps and list items,
 * "$setElementOrder/<list>", "$retainKeys", "$deleteFromPrimitiveList/<list>", null deletes.
 * Works on a deep copy of the original; directives never reach the result. */
#include "apiserver/patch.h"
#include "apiserver/schema.h"
#include "lib/util.h"

#include <string.h>

#define ORDER_PREFIX "$setElementOrder/"
#define DELPRIM_PREFIX "$deleteFromPrimitiveList/"

static json_t *merge_value(json_t *orig, const json_t *patch, const ck_pfield *f, ck_error **err);

static bool is_directive(const char *k) { return k[0] == '$'; }

/* Whether two merge-key values identify the same element. */
static bool same_key(const json_t *a, const json_t *b, const char *key)
{
    const json_t *x = json_object_get(a, key), *y = json_object_get(b, key);
    return x && y && json_equal(x, y);
}

static const ck_ptype *elem_type(const ck_pfield *f) { return f ? f->type : NULL; }

static json_t *merge_map(json_t *orig /* owned or NULL */, const json_t *patch, const ck_ptype *t, ck_error **err);

/* Reorder `list` (owned) by $setElementOrder: elements named in `order` come in that order; the
 * others keep their relative place (upstream merges the two sorted runs by the original order). */
static json_t *apply_order(json_t *list, const json_t *order, const json_t *orig_list, const char *key)
{
    if (!json_is_array(order))
        return list;
    json_t *in_order = json_array(), *rest = json_array();
    size_t i, j;
    json_t *o, *e;
    json_array_foreach(order, i, o) {
        json_array_foreach(list, j, e) {
            bool match = key ? (json_is_object(o) && same_key(e, o, key)) : json_equal(e, o);
            if (match) {
                json_array_append(in_order, e);
                break;
            }
        }
    }
    json_array_foreach(list, j, e) {
        bool listed = false;
        json_array_foreach(order, i, o)
            if (key ? (json_is_object(o) && same_key(e, o, key)) : json_equal(e, o)) {
                listed = true;
                break;
            }
        if (!listed)
            json_array_append(rest, e);
    }
    /* merge the two runs by position in the server's list; an element the server lacks comes
     * from the patch run first (as upstream's mergeSortedSlice does) */
    json_t *out = json_array();
    size_t a = 0, b = 0, na = json_array_size(in_order), nb = json_array_size(rest);
    while (a < na || b < nb) {
        if (a < na && b < nb) {
            json_t *x = json_array_get(in_order, a), *y = json_array_get(rest, b);
            long px = -1, py = -1;
            json_array_foreach(orig_list, i, e) {
                if (px < 0 && (key ? same_key(e, x, key) : json_equal(e, x))) px = (long)i;
                if (py < 0 && (key ? same_key(e, y, key) : json_equal(e, y))) py = (long)i;
            }
            if (px < 0 || py < 0 || px < py)
                json_array_append(out, json_array_get(in_order, a++));
            else
                json_array_append(out, json_array_get(rest, b++));
        } else if (a < na) {
            json_array_append(out, json_array_get(in_order, a++));
        } else {
            json_array_append(out, json_array_get(rest, b++));
        }
    }
    json_decref(in_order);
    json_decref(rest);
    json_decref(list);
    return out;
}

static json_t *merge_list(json_t *orig /* owned or NULL */, const json_t *patch, const ck_pfield *f, ck_error **err)
{
    if (!f || f->list == CK_LIST_ATOMIC) {
        json_decref(orig);
        return json_deep_copy(patch);
    }
    if (!json_is_array(orig)) {
        json_decref(orig);
        orig = json_array();
    }
    size_t i;
    json_t *p;
    if (f->list == CK_LIST_SET) {
        json_array_foreach(patch, i, p) {
            if (json_is_object(p)) {
                const char *d = json_string_value(json_object_get(p, "$patch"));
                if (d && !strcmp(d, "replace")) {
                    json_decref(orig);
                    json_t *out = json_array();
                    size_t j;
                    json_t *q;
                    json_array_foreach(patch, j, q)
                        if (!json_is_object(q) || !json_object_get(q, "$patch"))
                            json_array_append(out, q);
                    return out;
                }
            }
        }
        json_array_foreach(patch, i, p) {
            bool have = false;
            size_t j;
            json_t *q;
            json_array_foreach(orig, j, q)
                if (json_equal(p, q)) {
                    have = true;
                    break;
                }
            if (!have)
                json_array_append(orig, p);
        }
        return orig;
    }
    /* list of maps merged on f->key */
    json_array_foreach(patch, i, p) {
        if (!json_is_object(p)) {
            json_decref(orig);
            ck_error_set(err, CK_E_BAD_REQUEST, "strategic merge patch: %s: list element is not an object", f->name);
            return NULL;
        }
        const char *d = json_string_value(json_object_get(p, "$patch"));
        if (d && !strcmp(d, "replace")) {
            json_decref(orig);
            json_t *out = json_array();
            size_t j;
            json_t *q;
            json_array_foreach(patch, j, q) {
                if (json_object_get(q, "$patch"))
                    continue;
                json_t *c = merge_map(NULL, q, elem_type(f), err);
                if (!c) {
                    json_decref(out);
                    return NULL;
                }
                json_array_append_new(out, c);
            }
            return out;
        }
    }
    json_array_foreach(patch, i, p) {
        const char *d = json_string_value(json_object_get(p, "$patch"));
        if (!json_object_get(p, f->key)) {
            json_decref(orig);
            cleanup_free char *dump = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
            ck_error_set(err, CK_E_BAD_REQUEST, "map: %s does not contain declared merge key: %s",
                         dump ? dump : "?", f->key);
            return NULL;
        }
        size_t j;
        json_t *q;
        bool found = false;
        for (j = 0; j < json_array_size(orig); j++) {
            q = json_array_get(orig, j);
            if (!same_key(q, p, f->key))
                continue;
            found = true;
            if (d && !strcmp(d, "delete")) {
                json_array_remove(orig, j);
                j--;
                continue;
            }
            json_incref(q);
            json_array_set_new(orig, j, json_null());   /* hand q over unshared */
            json_t *m = merge_map(q, p, elem_type(f), err);
            if (!m) {
                json_decref(orig);
                return NULL;
            }
            json_array_set_new(orig, j, m);
            break;
        }
        if (!found && !(d && !strcmp(d, "delete"))) {
            json_t *m = merge_map(NULL, p, elem_type(f), err);
            if (!m) {
                json_decref(orig);
                return NULL;
            }
            json_array_append_new(orig, m);
        }
    }
    return orig;
}

static json_t *merge_value(json_t *orig, const json_t *patch, const ck_pfield *f, ck_error **err)
{
    if (json_is_object(patch) && !(f && f->atomic))
        return merge_map(json_is_object(orig) ? orig : (json_decref(orig), NULL), patch, f ? f->type : NULL, err);
    if (json_is_array(patch))
        return merge_list(orig, patch, f, err);
    json_decref(orig);
    return json_deep_copy(patch);
}

static json_t *merge_map(json_t *orig, const json_t *patch, const ck_ptype *t, ck_error **err)
{
    if (!orig)
        orig = json_object();
    else if (orig->refcount > 1) {
        /* never modify a node that another tree still holds */
        json_t *c = json_deep_copy(orig);
        json_decref(orig);
        orig = c;
    }
    const char *d = json_string_value(json_object_get(patch, "$patch"));
    if (d && !strcmp(d, "replace")) {
        json_decref(orig);
        json_t *rest = json_deep_copy(patch);
        json_object_del(rest, "$patch");
        json_t *out = merge_map(NULL, rest, t, err);
        json_decref(rest);
        return out;
    }
    if (d && !strcmp(d, "delete")) {
        json_decref(orig);
        return json_object();
    }
    if (d && strcmp(d, "merge")) {
        json_decref(orig);
        ck_error_set(err, CK_E_BAD_REQUEST, "Unknown patch type: %s in map: %s", d, "$patch");
        return NULL;
    }
    const json_t *retain = json_object_get(patch, "$retainKeys");
    if (retain) {
        if (!json_is_array(retain)) {
            json_decref(orig);
            ck_error_set(err, CK_E_BAD_REQUEST, "invalid patch: the $retainKeys directive must be a list of strings");
            return NULL;
        }
        void *iter = json_object_iter(orig);
        while (iter) {
            const char *k = json_object_iter_key(iter);
            bool keep = false;
            size_t i;
            json_t *r;
            json_array_foreach(retain, i, r)
                if (json_is_string(r) && !strcmp(json_string_value(r), k))
                    keep = true;
            if (!keep) {
                void *next = json_object_iter_next(orig, iter);
                json_object_del(orig, k);
                iter = next;
            } else {
                iter = json_object_iter_next(orig, iter);
            }
        }
    }
    const char *k;
    json_t *pv;
    /* the server's order of each list that $setElementOrder reorders, before merging */
    json_t *server_order = json_object();
    json_object_foreach((json_t *)patch, k, pv) {
        if (!strncmp(k, ORDER_PREFIX, strlen(ORDER_PREFIX))) {
            json_t *l = json_object_get(orig, k + strlen(ORDER_PREFIX));
            json_object_set_new(server_order, k, l ? json_deep_copy(l) : json_array());
        }
    }
    json_object_foreach((json_t *)patch, k, pv) {
        if (!strncmp(k, DELPRIM_PREFIX, strlen(DELPRIM_PREFIX))) {
            const char *field = k + strlen(DELPRIM_PREFIX);
            json_t *list = json_object_get(orig, field);
            if (!json_is_array(pv)) {
                json_decref(orig);
                json_decref(server_order);
                ck_error_set(err, CK_E_BAD_REQUEST, "invalid patch: the $deleteFromPrimitiveList directive must be a list");
                return NULL;
            }
            for (size_t i = 0; json_is_array(list) && i < json_array_size(list); i++) {
                size_t j;
                json_t *x;
                json_array_foreach(pv, j, x)
                    if (json_equal(x, json_array_get(list, i))) {
                        json_array_remove(list, i--);
                        break;
                    }
            }
            continue;
        }
        if (is_directive(k))
            continue;
        const ck_pfield *f = ck_schema_field(t, k);
        if (json_is_null(pv)) {
            json_object_del(orig, k);
            continue;
        }
        json_t *cur = json_object_get(orig, k);
        /* a map-level "$patch: delete" removes the field */
        if (json_is_object(pv)) {
            const char *pd = json_string_value(json_object_get(pv, "$patch"));
            if (pd && !strcmp(pd, "delete")) {
                json_object_del(orig, k);
                continue;
            }
        }
        if (cur) {
            json_incref(cur);
            json_object_set_new(orig, k, json_null());   /* hand cur over unshared, keep key order */
        }
        json_t *merged = merge_value(cur, pv, f, err);
        if (!merged) {
            json_decref(orig);
            json_decref(server_order);
            return NULL;
        }
        json_object_set_new(orig, k, merged);
    }
    /* $setElementOrder after all merges (the lists now hold their final elements) */
    json_object_foreach((json_t *)patch, k, pv) {
        if (strncmp(k, ORDER_PREFIX, strlen(ORDER_PREFIX)))
            continue;
        const char *field = k + strlen(ORDER_PREFIX);
        json_t *list = json_object_get(orig, field);
        if (!json_is_array(list))
            continue;
        if (!json_is_array(pv)) {
            json_decref(orig);
            json_decref(server_order);
            ck_error_set(err, CK_E_BAD_REQUEST, "invalid patch: the $setElementOrder directive must be a list");
            return NULL;
        }
        const ck_pfield *f = ck_schema_field(t, field);
        const char *key = f && f->list == CK_LIST_MAP ? f->key : NULL;
        json_object_set_new(orig, field, apply_order(json_incref(list), pv, json_object_get(server_order, k), key));
    }
    json_decref(server_order);
    return orig;
}

json_t *ck_patch_strategic(const json_t *orig, const json_t *patch, const ck_resource *r, ck_error **err)
{
    if (!json_is_object(patch)) {
        ck_error_set(err, CK_E_BAD_REQUEST, "strategic merge patch must be a JSON object");
        return NULL;
    }
    json_t *copy = orig && json_is_object(orig) ? json_deep_copy(orig) : json_object();
    return merge_map(copy, patch, ck_schema_root(r), err);
}

/* Exported for apply.c: merge a patch without directives under a schema. */
json_t *ck__strategic_merge(json_t *orig, const json_t *patch, const ck_ptype *t, ck_error **err)
{
    return merge_map(orig, patch, t, err);
}
