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
/* Reorder a merged list as upstream's normalizeElementOrder does: the elements `order` names, in
 * that order, merged with the others (kept in their order); a server-only element goes first only
 * when both compared elements are in `server` and it comes earlier there. */
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
            bool take_ordered = !(px >= 0 && py >= 0 && py < px);
            if (take_ordered)
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

/* The keyed-list merge proper: $patch replace/delete elements, merge by key, append new ones. */
/* The server order upstream compares against under $setElementOrder.  Its list merge deletes
 * elements in place in a Go slice and then appends the new ones into the freed capacity, which
 * the order list still sees: so the order is the surviving elements followed by the first new
 * ones, cut to the original length.  (Bug-compatible on purpose: kubectl's apply patches depend
 * on where a new container lands next to server-side ones.) */
static json_t *alias_order(const json_t *server, const json_t *plist, const char *key)
{
    if (!key || !json_is_array(plist) || !json_is_array(server))
        return server ? json_incref((json_t *)server) : json_array();
    json_t *out = json_array();
    size_t i, j;
    json_t *e, *p;
    json_array_foreach(server, i, e) {
        bool deleted = false;
        json_array_foreach(plist, j, p) {
            const char *d = json_string_value(json_object_get(p, "$patch"));
            if (d && !strcmp(d, "delete") && same_key(e, p, key))
                deleted = true;
        }
        if (!deleted)
            json_array_append(out, e);
    }
    json_array_foreach(plist, j, p) {
        if (json_array_size(out) >= json_array_size(server))
            break;
        if (!json_is_object(p) || json_object_get(p, "$patch"))
            continue;
        bool found = false;
        json_array_foreach(server, i, e)
            if (same_key(e, p, key))
                found = true;
        if (!found)
            json_array_append(out, p);
    }
    return out;
}

/* Upstream refuses a $setElementOrder list that does not hold the patch's own elements in the
 * patch's order. */
static bool order_consistent(const json_t *plist, const json_t *order, const char *key)
{
    size_t at = 0, n = json_array_size(order), i;
    json_t *p;
    json_array_foreach(plist, i, p) {
        if (key && (!json_is_object(p) || json_object_get(p, "$patch")))
            continue;
        bool found = false;
        while (at < n && !found) {
            const json_t *o = json_array_get(order, at++);
            found = key ? json_is_object(o) && same_key(o, p, key) : json_equal(o, p);
        }
        if (!found)
            return false;
    }
    return true;
}

static json_t *merge_keyed(json_t *orig /* owned */, const json_t *patch, const ck_pfield *f, ck_error **err)
{
    size_t i;
    json_t *p;
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
    return orig;
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
        json_t *server = json_deep_copy(orig);
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
        /* upstream normalizes the order here too: patch values first, in patch order */
        orig = apply_order(orig, patch, server, NULL);
        json_decref(server);
        return orig;
    }
    /* list of maps merged on f->key, then ordered as upstream's normalizeElementOrder does:
     * the patch's elements in patch order, interleaved with the server-only ones by server order */
    json_t *server = json_array();   /* the original order, as key-only objects */
    json_t *x;
    json_array_foreach(orig, i, x) {
        const json_t *kv = json_object_get(x, f->key);
        if (kv)
            json_array_append_new(server, json_pack("{s:O}", f->key, kv));
    }
    json_t *out = merge_keyed(orig, patch, f, err);
    if (out) {
        json_t *order = json_array();
        json_array_foreach(patch, i, x) {
            const char *d = json_string_value(json_object_get(x, "$patch"));
            const json_t *kv = json_object_get(x, f->key);
            if (kv && !d)
                json_array_append_new(order, json_pack("{s:O}", f->key, kv));
        }
        out = apply_order(out, order, server, f->key);
        json_decref(order);
    }
    json_decref(server);
    return out;
}

static json_t *merge_value(json_t *orig, const json_t *patch, const ck_pfield *f, ck_error **err)
{
    /* structType=atomic matters to server-side apply only: strategic merge still merges into it */
    if (json_is_object(patch))
        return merge_map(json_is_object(orig) ? orig : (json_decref(orig), NULL), patch, f ? f->type : NULL, err);
    if (json_is_array(patch))
        return merge_list(orig, patch, f, err);
    json_decref(orig);
    return json_deep_copy(patch);
}

static json_t *merge_map(json_t *orig, const json_t *patch, const ck_ptype *t, ck_error **err)
{
    bool fresh = !orig;   /* upstream takes a new element's patch as is: no order check there */
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
    /* the server's order of each list a $setElementOrder reorders, taken before merging; a new
     * map (fresh) is taken as the patch gives it, as upstream does */
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
        if (!fresh && !order_consistent(json_object_get(patch, field), pv, key)) {
            cleanup_free char *pl = json_dumps(json_object_get(patch, field), JSON_COMPACT | JSON_ENCODE_ANY);
            cleanup_free char *ol = json_dumps(pv, JSON_COMPACT | JSON_ENCODE_ANY);
            ck_error_set(err, CK_E_BAD_REQUEST, "The order in patch list:\n%s\n doesn't match $setElementOrder list:\n%s\n",
                         pl ? pl : "null", ol ? ol : "null");
            json_decref(orig);
            json_decref(server_order);
            return NULL;
        }
        if (!fresh) {
            json_t *srv = alias_order(json_object_get(server_order, k), json_object_get(patch, field), key);
            json_object_set_new(orig, field, apply_order(json_incref(list), pv, srv, key));
            json_decref(srv);
        }
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
