/* apply.c - server-side apply and managedFields, after structured-merge-diff's model reduced to
 * what the built-in kinds need.
 *
 * A field set is held flat: a JSON object used as a hash set whose keys are paths, each path the
 * FieldsV1 path elements ("f:spec", "k:{\"name\":\"c\"}", "v:\"x\"", "i:0") joined by SEP.  It is
 * converted from/to the nested FieldsV1 form ({"f:spec":{"f:replicas":{}}}, "." marking a node
 * that is itself a member and has children) only at the edges.  The schema (schema.h) says which
 * lists are keyed maps (k:), sets (v:) or atomic (a leaf).
 *
 * Apply: the manager's new set is the set of its applied config; fields it applied before and no
 * longer applies are removed unless another manager owns them; a field another manager owns with
 * a different value is a conflict (409) unless force, which moves ownership.
 * Update: the writer takes the fields whose value it changed; fields that disappeared leave
 * every set. */
#include "apiserver/codec.h"
#include "apiserver/patch.h"
#include "apiserver/schema.h"
#include "lib/util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SEP "\x01"


/* Fields never tracked (upstream's strip set), and status on the main resource (only status on
 * the status subresource). */
static bool stripped(const char *path, bool status_sub)
{
    bool is_status = !strncmp(path, "f:status", 8) && (path[8] == 0 || path[8] == SEP[0]);
    if (status_sub)
        return !is_status;
    if (is_status || !strcmp(path, "f:apiVersion") || !strcmp(path, "f:kind") || !strcmp(path, "f:metadata"))
        return true;
    if (strncmp(path, "f:metadata" SEP, 11))
        return false;
    static const char *const meta[] = {
        "f:name", "f:namespace", "f:creationTimestamp", "f:selfLink", "f:uid", "f:generation",
        "f:managedFields", "f:resourceVersion", "f:deletionTimestamp", "f:deletionGracePeriodSeconds", NULL,
    };
    const char *rest = path + 11;
    size_t n = strcspn(rest, SEP);
    for (const char *const *m = meta; *m; m++)
        if (strlen(*m) == n && !memcmp(*m, rest, n))
            return true;
    return false;
}

/* ---- building sets from objects ---- */

struct build {
    json_t *set;
    bool update_mode;    /* granular maps are members themselves */
    bool status_sub;
    ck_buf path;         /* the current path; pushed and popped as the walk descends */
};

/* The set maps each path to (a reference to) its value in the walked object, so callers compare
 * values without walking again. */
static void add_member(struct build *b, const json_t *v)
{
    const char *path = b->path.data;
    if (path && *path && !stripped(path, b->status_sub))
        json_object_set(b->set, path, (json_t *)v);
}

/* Append one path element; returns the length to pop back to. */
static size_t push(ck_buf *p, const char *kind, const char *text, size_t n)
{
    size_t mark = p->len;
    if (p->len)
        ck_buf_add(p, SEP, 1);
    ck_buf_addstr(p, kind);
    ck_buf_add(p, text, n);
    return mark;
}

static void pop(ck_buf *p, size_t mark)
{
    p->len = mark;
    if (p->data)
        p->data[mark] = 0;
}

/* JSON text of a scalar key value into b (strings escaped as encoding/json does for ASCII). */
static void json_scalar(ck_buf *b, const json_t *v)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        ck_buf_addstr(b, "\"");
        for (; *s; s++) {
            unsigned char c = (unsigned char)*s;
            if (c == '"' || c == '\\')
                ck_buf_printf(b, "\\%c", c);
            else if (c < 0x20)
                ck_buf_printf(b, "\\u%04x", c);
            else
                ck_buf_add(b, s, 1);
        }
        ck_buf_addstr(b, "\"");
    } else if (json_is_integer(v)) {
        ck_buf_printf(b, "%lld", (long long)json_integer_value(v));
    } else {
        char *d = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        ck_buf_addstr(b, d ? d : "null");
        free(d);
    }
}

/* The body of a "k:" element, {"key":value[,"key2":value]} with keys sorted; false if the item
 * lacks its key. */
static bool item_key(ck_buf *out, const json_t *item, const ck_pfield *f)
{
    const json_t *k1 = json_object_get(item, f->key);
    if (!k1)
        return false;
    const json_t *k2 = f->key2 ? json_object_get(item, f->key2) : NULL;
    json_t *def = NULL;
    if (f->key2 && !k2 && f->key2_default)
        k2 = def = json_string(f->key2_default);
    const char *n1 = f->key, *n2 = f->key2;
    const json_t *v1 = k1, *v2 = k2;
    if (k2 && strcmp(n2, n1) < 0) {
        n1 = f->key2, n2 = f->key, v1 = k2, v2 = k1;
    }
    ck_buf_printf(out, "{\"%s\":", n1);
    json_scalar(out, v1);
    if (k2) {
        ck_buf_printf(out, ",\"%s\":", n2);
        json_scalar(out, v2);
    }
    ck_buf_addstr(out, "}");
    json_decref(def);
    return true;
}

static void walk(struct build *b, const json_t *v, const ck_ptype *t);

/* The path element of list item i into *pe: its key ("k:"), its value in a set ("v:"), or its
 * index when it has no key ("i:"); returns the kind. */
static const char *item_elem(ck_buf *pe, const json_t *e, size_t i, const ck_pfield *f)
{
    pe->len = 0;
    if (f->list == CK_LIST_SET) {
        json_scalar(pe, e);
        return "v:";
    }
    if (json_is_object(e) && item_key(pe, e, f))
        return "k:";
    pe->len = 0;
    ck_buf_printf(pe, "%zu", i);
    return "i:";
}

static void walk_field(struct build *b, const json_t *v, const ck_pfield *f)
{
    if (json_is_object(v) && !(f && f->atomic)) {
        if (json_object_size(v) == 0 || (b->update_mode && f && f->granular))
            add_member(b, v);
        walk(b, v, f ? f->type : NULL);
        return;
    }
    if (json_is_array(v) && f && f->list != CK_LIST_ATOMIC && json_array_size(v)) {
        size_t i;
        json_t *e;
        ck_buf pe;
        ck_buf_init(&pe, 0);
        json_array_foreach(v, i, e) {
            const char *kind = item_elem(&pe, e, i, f);
            size_t mark = push(&b->path, kind, pe.data ? pe.data : "", pe.len);
            add_member(b, e);
            if (f->list == CK_LIST_MAP && json_is_object(e))
                walk(b, e, f->type);
            pop(&b->path, mark);
        }
        ck_buf_free(&pe);
        return;
    }
    add_member(b, v);
}

static void walk(struct build *b, const json_t *v, const ck_ptype *t)
{
    const char *k;
    json_t *c;
    bool top = b->path.len == 0;
    json_object_foreach((json_t *)v, k, c) {
        if (top && (!strcmp(k, "apiVersion") || !strcmp(k, "kind")))
            continue;
        /* a subtree stripped() drops whole is not walked: status on the main resource,
         * everything but status on the status subresource */
        if (top && b->status_sub != !strcmp(k, "status"))
            continue;
        size_t mark = push(&b->path, "f:", k, strlen(k));
        walk_field(b, c, ck_schema_field(t, k));
        pop(&b->path, mark);
    }
}

static json_t *set_of(const json_t *obj, const ck_resource *r, bool update_mode, bool status_sub)
{
    struct build b = {.set = json_object(), .update_mode = update_mode, .status_sub = status_sub};
    ck_buf_init(&b.path, 0);
    if (json_is_object(obj))
        walk(&b, obj, ck_schema_root(r));
    ck_buf_free(&b.path);
    return b.set;
}

/* The sets of an update's new and old objects, built only under the members whose values
 * differ: identical subtrees give identical paths with equal values, which add nothing to what
 * changed or went away.  Under metadata it goes one level down and leaves out the members whose
 * paths are all stripped (managedFields, resourceVersion, ...), so a write that changes spec
 * does not compare or walk them (a Lease renewal walked its metadata twice for nothing). */
static void walk_under(struct build *b, const char *k, const json_t *v, const ck_pfield *f)
{
    size_t mark = push(&b->path, "f:", k, strlen(k));
    walk_field(b, v, f);
    pop(&b->path, mark);
}

static void sets_of_diff(const json_t *nobj, const json_t *oobj, const ck_resource *r, bool status_sub,
                         json_t **new_set, json_t **old_set)
{
    struct build nb = {.set = json_object(), .update_mode = true, .status_sub = status_sub};
    struct build ob = {.set = json_object(), .update_mode = true, .status_sub = status_sub};
    ck_buf_init(&nb.path, 0);
    ck_buf_init(&ob.path, 0);
    const ck_ptype *root = ck_schema_root(r);
    for (int side = 0; side < 2; side++) {
        const json_t *a = side ? oobj : nobj, *other = side ? nobj : oobj;
        if (!json_is_object(a))
            continue;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)a, k, v) {
            if (!strcmp(k, "apiVersion") || !strcmp(k, "kind") || status_sub != !strcmp(k, "status"))
                continue;
            const json_t *ov = json_is_object(other) ? json_object_get(other, k) : NULL;
            if (side && ov)
                continue;   /* both sides: done from the new side */
            const ck_pfield *f = ck_schema_field(root, k);
            const json_t *nv = side ? NULL : v;
            const json_t *old_v = side ? v : ov;
            if (nv && old_v && json_equal(nv, old_v))
                continue;
            if (!status_sub && !strcmp(k, "metadata") && json_is_object(nv) && json_is_object(old_v) &&
                json_object_size(nv) && json_object_size(old_v)) {
                /* f:metadata itself is stripped: its members one by one */
                size_t mark_n = push(&nb.path, "f:", k, strlen(k));
                size_t mark_o = push(&ob.path, "f:", k, strlen(k));
                for (int ms = 0; ms < 2; ms++) {
                    const json_t *ma = ms ? old_v : nv, *mother = ms ? nv : old_v;
                    const char *mk;
                    json_t *mv;
                    json_object_foreach((json_t *)ma, mk, mv) {
                        const json_t *mov = json_object_get(mother, mk);
                        if (ms && mov)
                            continue;
                        size_t m2 = push(&nb.path, "f:", mk, strlen(mk));
                        bool gone = stripped(nb.path.data, false);
                        pop(&nb.path, m2);
                        if (gone)
                            continue;
                        const json_t *mn = ms ? NULL : mv, *mo = ms ? mv : mov;
                        if (mn && mo && json_equal(mn, mo))
                            continue;
                        const ck_pfield *mf = ck_schema_field(f ? f->type : NULL, mk);
                        if (mn)
                            walk_under(&nb, mk, mn, mf);
                        if (mo)
                            walk_under(&ob, mk, mo, mf);
                    }
                }
                pop(&nb.path, mark_n);
                pop(&ob.path, mark_o);
                continue;
            }
            if (nv)
                walk_under(&nb, k, nv, f);
            if (old_v)
                walk_under(&ob, k, old_v, f);
        }
    }
    ck_buf_free(&nb.path);
    ck_buf_free(&ob.path);
    *new_set = nb.set;
    *old_set = ob.set;
}

/* ---- FieldsV1 <-> flat sets ---- */

static void flatten_at(const json_t *node, ck_buf *path, json_t *set)
{
    if (!json_is_object(node))
        return;
    if (path->len && (json_object_size(node) == 0 || json_object_get(node, ".")))
        json_object_set_new(set, path->data, json_true());
    const char *k;
    json_t *c;
    json_object_foreach((json_t *)node, k, c) {
        if (!strcmp(k, "."))
            continue;
        size_t mark = push(path, "", k, strlen(k));
        flatten_at(c, path, set);
        pop(path, mark);
    }
}

static void flatten(const json_t *node, json_t *set)
{
    ck_buf path;
    ck_buf_init(&path, 0);
    flatten_at(node, &path, set);
    ck_buf_free(&path);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Nested FieldsV1 from a flat set.  Paths are taken in sorted order: SEP sorts lowest, so a
 * node comes right before its children and siblings come sorted, which leaves every object's keys
 * sorted.  A node in the set gets "." (first) only when it has children, i.e. when the next path
 * continues it; a leaf is {}.  (It used to put "." in every node and drop the lone ones after:
 * an object and two hash operations more a leaf, on every status write's own entry.) */
static json_t *to_fields_v1(const json_t *set)
{
    size_t n = json_object_size(set), i = 0;
    const char **paths = xcalloc(n ? n : 1, sizeof *paths);
    size_t *lens = xcalloc(n ? n : 1, sizeof *lens);
    const char *path;
    json_t *v;
    json_object_foreach((json_t *)set, path, v)
        paths[i++] = path;
    qsort(paths, n, sizeof *paths, cmp_str);
    for (i = 0; i < n; i++)
        lens[i] = strlen(paths[i]);
    json_t *root = json_object();
    for (i = 0; i < n; i++) {
        json_t *cur = root;
        const char *p = paths[i];
        for (;;) {
            const char *sep = strchr(p, SEP[0]);
            size_t len = sep ? (size_t)(sep - p) : strlen(p);
            json_t *next = json_object_getn(cur, p, len);
            if (!next) {
                next = json_object();
                json_object_setn_new_nocheck(cur, p, len, next);
            }
            cur = next;
            if (!sep)
                break;
            p = sep + 1;
        }
        bool has_kids = i + 1 < n && lens[i + 1] > lens[i] && paths[i + 1][lens[i]] == SEP[0] &&
                        !memcmp(paths[i + 1], paths[i], lens[i]);
        if (has_kids && !json_object_get(cur, "."))
            json_object_set_new_nocheck(cur, ".", json_object());
    }
    free(lens);
    free(paths);
    return root;
}

/* ---- FieldsV1 straight from an object ----
 *
 * A create's only entry is the whole object's set: flattening it into path strings, sorting them
 * and nesting them again (set_of + to_fields_v1) was most of managedFields' cost on a pod create.
 * fields_of builds the same nested FieldsV1 in one walk: each node's children are sorted by their
 * path element, which is the order sorted full paths give (SEP sorts below every byte a path
 * element holds), and a member node with children gets "." first.  It gives up (NULL, *bail) where
 * the flat form would differ: two siblings with the same element (list items sharing a key, which
 * the set merges) or a key holding SEP; the caller then takes the flat path. */

struct fbuild {
    bool update_mode, status_sub, bail;
    ck_buf path;
};

struct fkid {
    char *elem;
    const json_t *v;
    size_t idx;
};

/* kind + text[0..n), NUL-terminated (xasprintf's format parsing was a fifth of fields_of) */
static char *elem_new(const char *kind, const char *text, size_t n)
{
    size_t k = strlen(kind);
    char *e = xmalloc(k + n + 1);
    memcpy(e, kind, k);
    memcpy(e + k, text, n);
    e[k + n] = 0;
    return e;
}

static int fkid_cmp(const void *a, const void *b)
{
    return strcmp(((const struct fkid *)a)->elem, ((const struct fkid *)b)->elem);
}

static json_t *fb_field(struct fbuild *b, const json_t *v, const ck_pfield *f);

/* The children of node (sorted, each built under path + elem) into out; *bail on a duplicate. */
static void fb_kids(struct fbuild *b, json_t *out, struct fkid *kids, size_t n, const ck_pfield *lf,
                    const ck_ptype *t)
{
    qsort(kids, n, sizeof *kids, fkid_cmp);
    for (size_t i = 0; i < n && !b->bail; i++) {
        if (i && !strcmp(kids[i].elem, kids[i - 1].elem)) {
            b->bail = true;
            break;
        }
        size_t mark = b->path.len;
        if (b->path.len)
            ck_buf_add(&b->path, SEP, 1);
        ck_buf_addstr(&b->path, kids[i].elem);
        json_t *node;
        if (lf) {
            /* a list item: a member itself, its fields below when the list is a map */
            node = lf->list == CK_LIST_MAP && json_is_object(kids[i].v)
                       ? json_object() : NULL;
            if (node) {
                json_object_set_new(node, ".", json_object());
                const char *k;
                json_t *c;
                size_t m = json_object_size(kids[i].v), j = 0;
                struct fkid *sub = xcalloc(m ? m : 1, sizeof *sub);
                json_object_foreach((json_t *)kids[i].v, k, c) {
                    if (strchr(k, SEP[0]))
                        b->bail = true;
                    sub[j++] = (struct fkid){elem_new("f:", k, strlen(k)), c, 0};
                }
                fb_kids(b, node, sub, m, NULL, t);
                for (j = 0; j < m; j++)
                    free(sub[j].elem);
                free(sub);
                if (json_object_size(node) == 1)
                    json_object_del(node, ".");
            } else {
                node = json_object();
            }
            if (stripped(b->path.data, b->status_sub) && !json_object_size(node)) {
                json_decref(node);
                node = NULL;
            } else if (stripped(b->path.data, b->status_sub) && json_object_get(node, ".")) {
                json_object_del(node, ".");
            }
        } else {
            node = fb_field(b, kids[i].v, ck_schema_field(t, kids[i].elem + 2));
        }
        pop(&b->path, mark);
        if (node)
            json_object_set_new(out, kids[i].elem, node);
    }
}

/* The FieldsV1 node of the value v at b->path, NULL if nothing at or below it is a member. */
static json_t *fb_field(struct fbuild *b, const json_t *v, const ck_pfield *f)
{
    bool member;
    json_t *node = json_object();
    if (json_is_object(v) && !(f && f->atomic)) {
        member = json_object_size(v) == 0 || (b->update_mode && f && f->granular);
        member = member && !stripped(b->path.data, b->status_sub);
        if (member)
            json_object_set_new(node, ".", json_object());
        size_t m = json_object_size(v), j = 0;
        struct fkid *kids = xcalloc(m ? m : 1, sizeof *kids);
        const char *k;
        json_t *c;
        json_object_foreach((json_t *)v, k, c) {
            if (strchr(k, SEP[0]))
                b->bail = true;
            kids[j++] = (struct fkid){elem_new("f:", k, strlen(k)), c, 0};
        }
        fb_kids(b, node, kids, m, NULL, f ? f->type : NULL);
        for (j = 0; j < m; j++)
            free(kids[j].elem);
        free(kids);
    } else if (json_is_array(v) && f && f->list != CK_LIST_ATOMIC && json_array_size(v)) {
        member = false;
        size_t m = json_array_size(v), i;
        struct fkid *kids = xcalloc(m, sizeof *kids);
        json_t *e;
        ck_buf pe;
        ck_buf_init(&pe, 0);
        json_array_foreach(v, i, e) {
            const char *kind = item_elem(&pe, e, i, f);
            kids[i] = (struct fkid){elem_new(kind, pe.data ? pe.data : "", pe.len), e, i};
            if (memchr(kids[i].elem, SEP[0], strlen(kids[i].elem)))
                b->bail = true;
        }
        ck_buf_free(&pe);
        fb_kids(b, node, kids, m, f, f->type);
        for (i = 0; i < m; i++)
            free(kids[i].elem);
        free(kids);
    } else {
        member = !stripped(b->path.data, b->status_sub);
    }
    size_t n = json_object_size(node);
    if (member && n == 1) {
        json_object_del(node, ".");   /* a leaf: {} */
        return node;
    }
    if (n == 0 && !member) {
        json_decref(node);
        return NULL;
    }
    return node;
}

/* The nested FieldsV1 of obj's whole set as set_of + to_fields_v1 would give it; NULL with *bail
 * where they might differ (see above). */
static json_t *fields_of(const json_t *obj, const ck_resource *r, bool update_mode, bool status_sub,
                         bool *bail)
{
    struct fbuild b = {.update_mode = update_mode, .status_sub = status_sub};
    ck_buf_init(&b.path, 0);
    json_t *root = json_object();
    if (json_is_object(obj)) {
        size_t m = json_object_size(obj), j = 0;
        struct fkid *kids = xcalloc(m ? m : 1, sizeof *kids);
        const char *k;
        json_t *c;
        json_object_foreach((json_t *)obj, k, c) {
            if (!strcmp(k, "apiVersion") || !strcmp(k, "kind") || status_sub != !strcmp(k, "status"))
                continue;
            if (strchr(k, SEP[0]))
                b.bail = true;
            kids[j++] = (struct fkid){elem_new("f:", k, strlen(k)), c, 0};
        }
        fb_kids(&b, root, kids, j, NULL, ck_schema_root(r));
        for (size_t i = 0; i < j; i++)
            free(kids[i].elem);
        free(kids);
    }
    ck_buf_free(&b.path);
    *bail = b.bail;
    if (b.bail) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* ---- navigating objects by path elements ---- */

static bool item_matches(const json_t *item, const char *pe)
{
    if (!strncmp(pe, "k:", 2)) {
        json_t *k = json_loads(pe + 2, 0, NULL);
        if (!k)
            return false;
        bool ok = json_is_object(item);
        const char *kk;
        json_t *kv;
        json_object_foreach(k, kk, kv) {
            const json_t *iv = json_object_get(item, kk);
            if (!iv && json_is_string(kv) && !strcmp(kk, "protocol") && !strcmp(json_string_value(kv), "TCP"))
                continue;   /* defaulted key field */
            if (!iv || !json_equal(iv, kv))
                ok = false;
        }
        json_decref(k);
        return ok;
    }
    if (!strncmp(pe, "v:", 2)) {
        json_t *v = json_loads(pe + 2, JSON_DECODE_ANY, NULL);
        bool ok = v && json_equal(v, item);
        json_decref(v);
        return ok;
    }
    return false;
}

/* The index of the element a k:/v:/i: path element selects, -1 if none. */
static long find_item(const json_t *arr, const char *pe)
{
    if (!json_is_array(arr))
        return -1;
    if (!strncmp(pe, "i:", 2)) {
        long i = atol(pe + 2);
        return i >= 0 && (size_t)i < json_array_size(arr) ? i : -1;
    }
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
        if (item_matches(e, pe))
            return (long)i;
    return -1;
}

static json_t *step(json_t *cur, const char *pe)
{
    if (!strncmp(pe, "f:", 2))
        return json_is_object(cur) ? json_object_get(cur, pe + 2) : NULL;
    long i = find_item(cur, pe);
    return i < 0 ? NULL : json_array_get(cur, (size_t)i);
}

static json_t *value_at(const json_t *obj, const char *path)
{
    char *copy = xstrdup(path), *save = NULL;
    json_t *cur = (json_t *)obj;
    for (char *pe = strtok_r(copy, SEP, &save); pe && cur; pe = strtok_r(NULL, SEP, &save))
        cur = step(cur, pe);
    free(copy);
    return cur;
}

static void delete_at(json_t *obj, const char *path)
{
    char *copy = xstrdup(path);
    char *last = strrchr(copy, SEP[0]);
    json_t *parent = obj;
    if (last) {
        *last++ = 0;
        parent = value_at(obj, copy);
    } else {
        last = copy;
    }
    if (parent) {
        if (!strncmp(last, "f:", 2)) {
            if (json_is_object(parent))
                json_object_del(parent, last + 2);
        } else {
            long i = find_item(parent, last);
            if (i >= 0)
                json_array_remove(parent, (size_t)i);
        }
    }
    free(copy);
}

/* Upstream's fieldpath string: .spec.containers[name="c"].image, [="x"] for set values. */
static char *path_string(const char *path)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    char *copy = xstrdup(path), *save = NULL;
    for (char *pe = strtok_r(copy, SEP, &save); pe; pe = strtok_r(NULL, SEP, &save)) {
        if (!strncmp(pe, "f:", 2)) {
            ck_buf_printf(&b, ".%s", pe + 2);
        } else if (!strncmp(pe, "k:", 2)) {
            json_t *k = json_loads(pe + 2, 0, NULL);
            ck_buf_addstr(&b, "[");
            const char *kk;
            json_t *kv;
            bool first = true;
            json_object_foreach(k, kk, kv) {
                char *vs = json_dumps(kv, JSON_ENCODE_ANY | JSON_COMPACT);
                ck_buf_printf(&b, "%s%s=%s", first ? "" : ",", kk, vs ? vs : "");
                free(vs);
                first = false;
            }
            ck_buf_addstr(&b, "]");
            json_decref(k);
        } else if (!strncmp(pe, "v:", 2)) {
            ck_buf_printf(&b, "[=%s]", pe + 2);
        } else {
            ck_buf_printf(&b, "[%s]", pe + 2);
        }
    }
    free(copy);
    return ck_buf_steal(&b);
}

/* ---- managedFields entries ---- */

struct entry {
    char *manager, *operation, *api_version, *time, *subresource;
    json_t *set;      /* flat; NULL while the entry is only `fields` (see entry_set) */
    json_t *fields;   /* the stored FieldsV1 it was loaded from, while set is NULL */
    char lacks[64];   /* a first path element its raw FieldsV1 text is known not to hold */
};

struct entries {
    struct entry *v;
    size_t n;
};

static void entries_free(struct entries *es)
{
    for (size_t i = 0; i < es->n; i++) {
        free(es->v[i].manager);
        free(es->v[i].operation);
        free(es->v[i].api_version);
        free(es->v[i].time);
        free(es->v[i].subresource);
        json_decref(es->v[i].set);
        json_decref(es->v[i].fields);
    }
    free(es->v);
}

static char *sdup(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? xstrdup(s) : NULL;
}

/* An Update touches one or two managers' fields, yet flattening every entry and nesting it back
 * was most of managedFields' cost on a pod (its creator's entry holds the whole spec).  So a
 * lazy entry keeps its stored FieldsV1 (which entries_store printed, normalized) and is
 * flattened only when a path in it must change; untouched, it is written back as it was. */

/* What flatten_at would make a member: a node that is {} or has "." */
static bool fields_member(const json_t *node)
{
    return json_is_object(node) && (json_object_size(node) == 0 || json_object_get(node, "."));
}

/* flatten(fields) would not be empty */
static bool fields_nonempty(const json_t *node)
{
    const char *k;
    json_t *c;
    json_object_foreach((json_t *)node, k, c) {
        if (!strcmp(k, "."))
            continue;
        if (fields_member(c) || fields_nonempty(c))
            return true;
    }
    return false;
}

/* flat path p is in flatten(fields) */
static bool fields_has(const json_t *fields, const char *p)
{
    const json_t *cur = fields;
    for (;;) {
        const char *sep = strchr(p, SEP[0]);
        size_t len = sep ? (size_t)(sep - p) : strlen(p);
        if (len == 1 && *p == '.')
            return false;
        cur = json_object_getn(cur, p, len);
        if (!json_is_object(cur))
            return false;
        if (!sep)
            return fields_member(cur);
        p = sep + 1;
    }
}

/* A stored entry's FieldsV1 may be raw (codec.h: a status write reads the pod with it as text):
 * made a tree when a walk needs one.  The text is our own compact print, so an entry whose text
 * never names a path's first element cannot hold the path, and one with a member that is {} or
 * has "." (`"k":{}` / `"k":{".":` for a key k other than ".") is not empty: those two questions
 * (asked of every stored entry by every status write) are answered from the text. */
static const json_t *entry_fields(struct entry *x)
{
    size_t n;
    const char *t = ck_json_raw_text(x->fields, &n);
    if (t) {
        json_t *tree = ck_json_load_fast(t, n, 0);
        json_decref(x->fields);
        x->fields = json_is_object(tree) ? tree : json_object();
        if (tree && !json_is_object(tree))
            json_decref(tree);
    }
    return x->fields;
}

/* raw FieldsV1 text that certainly lacks path p: its first element is not in it as a key */
static bool raw_lacks(const char *t, size_t n, const char *p)
{
    size_t l = strcspn(p, SEP);
    if (l == 0 || l > 200)
        return false;
    char key[208];
    key[0] = '"';
    memcpy(key + 1, p, l);
    key[l + 1] = '"';
    for (size_t i = 0; i < l; i++)
        if (p[i] == '"' || p[i] == '\\' || (unsigned char)p[i] < 0x20)
            return false;   /* escaped in the text: ask the tree */
    return !memmem(t, n, key, l + 2);
}

/* raw FieldsV1 text with a non-"." member that is {} or starts with "." */
static bool raw_nonempty(const char *t, size_t n)
{
    static const char *const pats[] = {"\":{}", "\":{\".\":"};
    for (size_t k = 0; k < 2; k++) {
        size_t pl = strlen(pats[k]);
        for (const char *q = t; (q = memmem(q, n - (size_t)(q - t), pats[k], pl)); q++)
            if (!(q - t >= 2 && q[-1] == '.' && q[-2] == '"') && !(q > t && q[-1] == '\\'))
                return true;
    }
    return false;
}

static bool entry_nonempty(struct entry *x)
{
    size_t n;
    const char *t = ck_json_raw_text(x->fields, &n);
    if (t && raw_nonempty(t, n))
        return true;
    return fields_nonempty(entry_fields(x));
}

static bool entry_has(struct entry *x, const char *p)
{
    size_t n;
    const char *t = ck_json_raw_text(x->fields, &n);
    if (t) {
        /* a write's paths mostly share their first element (f:status): one text search */
        size_t l = strcspn(p, SEP);
        if (x->lacks[0] && strlen(x->lacks) == l && !memcmp(x->lacks, p, l))
            return false;
        if (raw_lacks(t, n, p)) {
            if (l < sizeof x->lacks) {
                memcpy(x->lacks, p, l);
                x->lacks[l] = 0;
            }
            return false;
        }
    }
    return fields_has(entry_fields(x), p);
}

static json_t *entry_set(struct entry *x)
{
    if (!x->set) {
        entry_fields(x);
        x->set = json_object();
        flatten(x->fields, x->set);
        json_decref(x->fields);
        x->fields = NULL;
    }
    return x->set;
}

static void entry_del(struct entry *x, const char *p)
{
    if (!x->set && !entry_has(x, p))
        return;
    json_object_del(entry_set(x), p);
}

static void entries_load_lazy(struct entries *es, const json_t *mf, bool lazy)
{
    size_t i;
    json_t *e;
    json_array_foreach(mf, i, e) {
        if (!json_is_object(e))
            continue;
        es->v = xrealloc(es->v, (es->n + 1) * sizeof *es->v);
        struct entry *x = &es->v[es->n++];
        x->manager = sdup(e, "manager");
        x->operation = sdup(e, "operation");
        x->api_version = sdup(e, "apiVersion");
        x->time = sdup(e, "time");
        x->subresource = sdup(e, "subresource");
        x->set = NULL;
        x->lacks[0] = 0;
        x->fields = json_incref(json_object_get(e, "fieldsV1"));
        if (!x->fields)
            x->fields = json_object();
        if (!lazy)
            entry_set(x);
    }
}

static void entries_load(struct entries *es, const json_t *mf)
{
    entries_load_lazy(es, mf, false);
}

static bool streq(const char *a, const char *b) { return (a ? a : "")[0] == (b ? b : "")[0] && !strcmp(a ? a : "", b ? b : ""); }

static struct entry *entry_get(struct entries *es, const char *manager, const char *op, const char *api_version,
                               const char *sub, bool create)
{
    for (size_t i = 0; i < es->n; i++) {
        struct entry *x = &es->v[i];
        if (streq(x->manager, manager) && streq(x->operation, op) && streq(x->subresource, sub) &&
            (!strcmp(op, "Apply") || streq(x->api_version, api_version)))
            return x;
    }
    if (!create)
        return NULL;
    es->v = xrealloc(es->v, (es->n + 1) * sizeof *es->v);
    struct entry *x = &es->v[es->n++];
    *x = (struct entry){xstrdup(manager), xstrdup(op), api_version ? xstrdup(api_version) : NULL, NULL,
                        sub && *sub ? xstrdup(sub) : NULL, json_object(), NULL, ""};
    return x;
}

static int entry_cmp(const void *pa, const void *pb)
{
    const struct entry *p = pa, *q = pb;
    int c = strcmp(p->operation ? p->operation : "", q->operation ? q->operation : "");
    if (c)
        return c;
    /* RFC 3339 UTC timestamps order as strings; none sorts first */
    c = strcmp(p->time ? p->time : "", q->time ? q->time : "");
    if (c)
        return c;
    c = strcmp(p->manager ? p->manager : "", q->manager ? q->manager : "");
    if (c)
        return c;
    c = strcmp(p->api_version ? p->api_version : "", q->api_version ? q->api_version : "");
    if (c)
        return c;
    return strcmp(p->subresource ? p->subresource : "", q->subresource ? q->subresource : "");
}

static void entries_store(struct entries *es, json_t *obj)
{
    if (es->n)
        qsort(es->v, es->n, sizeof *es->v, entry_cmp);
    json_t *mf = json_array();
    for (size_t i = 0; i < es->n; i++) {
        struct entry *x = &es->v[i];
        if (x->set ? !json_object_size(x->set) : !entry_nonempty(x))
            continue;
        json_t *e = json_object();
        json_object_set_new(e, "manager", json_string(x->manager ? x->manager : ""));
        json_object_set_new(e, "operation", json_string(x->operation ? x->operation : "Update"));
        if (x->api_version)
            json_object_set_new(e, "apiVersion", json_string(x->api_version));
        if (x->time)
            json_object_set_new(e, "time", json_string(x->time));
        json_object_set_new(e, "fieldsType", json_string("FieldsV1"));
        json_object_set_new(e, "fieldsV1", x->set ? to_fields_v1(x->set) : json_incref(x->fields));
        if (x->subresource)
            json_object_set_new(e, "subresource", json_string(x->subresource));
        json_array_append_new(mf, e);
    }
    json_t *meta = json_object_get(obj, "metadata");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(obj, "metadata", meta);
    }
    if (json_array_size(mf))
        json_object_set_new(meta, "managedFields", mf);
    else {
        json_object_del(meta, "managedFields");
        json_decref(mf);
    }
}

static char *now_rfc3339(void)
{
    char t[32];
    ck_rfc3339(ck_wall_ns() / 1000000000, t);
    return xstrdup(t);
}

static const json_t *managed_of(const json_t *obj)
{
    return json_object_get(json_object_get(obj, "metadata"), "managedFields");
}

/* ---- apply ---- */

static bool last_is_item(const char *path)
{
    const char *l = strrchr(path, SEP[0]);
    l = l ? l + 1 : path;
    return !strncmp(l, "k:", 2) || !strncmp(l, "v:", 2) || !strncmp(l, "i:", 2);
}

/* Conflict text as upstream prints it (single conflict inline, several grouped by manager). */
static char *manager_text(const struct entry *x)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    ck_buf_printf(&b, "\"%s\"", x->manager ? x->manager : "");
    if (x->subresource)
        ck_buf_printf(&b, " with subresource \"%s\"", x->subresource);
    if (x->operation && !strcmp(x->operation, "Update")) {
        ck_buf_printf(&b, " using %s", x->api_version ? x->api_version : "");
        if (x->time)
            ck_buf_printf(&b, " at %s", x->time);
    }
    return ck_buf_steal(&b);
}

json_t *ck_patch_apply(const json_t *live, const json_t *applied, const ck_resource *r, const char *manager,
                       bool force, ck_error **err)
{
    if (!json_is_object(applied)) {
        ck_error_set(err, CK_E_BAD_REQUEST, "error decoding YAML: the applied configuration must be an object");
        return NULL;
    }
    if (!manager || !*manager) {
        ck_error_set(err, CK_E_BAD_REQUEST, "PATCH, application/apply-patch+yaml requests must have a fieldManager");
        return NULL;
    }
    struct entries es = {0};
    entries_load(&es, managed_of(live));
    if (live && !es.n) {
        /* an object nobody tracked yet: upstream gives its fields to "before-first-apply" */
        struct entry *b = entry_get(&es, "before-first-apply", "Update", ck_resource_api_version(r), NULL, true);
        json_decref(b->set);
        b->set = set_of(live, r, true, false);
    }
    json_t *applied_set = set_of(applied, r, false, false);
    struct entry *own = entry_get(&es, manager, "Apply", NULL, NULL, true);
    size_t own_idx = (size_t)(own - es.v);
    json_t *live_set = set_of(live, r, false, false);

    /* conflicts: a field another manager owns whose value the config changes */
    ck_buf msg;
    ck_buf_init(&msg, 0);
    size_t nconf = 0;
    json_t *causes = json_array();
    for (size_t i = 0; live && i < es.n; i++) {
        if (i == own_idx)
            continue;
        struct entry *x = &es.v[i];
        const char *p;
        json_t *tv;
        void *tmp;
        json_object_foreach_safe(x->set, tmp, p, tv) {
            if (!json_object_get(applied_set, p) || last_is_item(p))
                continue;
            json_t *lv = json_object_get(live_set, p), *av = json_object_get(applied_set, p);
            if (!lv || !av || json_equal(lv, av))
                continue;
            if (json_is_object(av) && json_object_size(av))
                continue;   /* a map the config only adds to */
            if (force) {
                json_object_del(x->set, p);
                continue;
            }
            cleanup_free char *ps = path_string(p);
            cleanup_free char *mt = manager_text(x);
            json_array_append_new(causes, json_pack("{s:s,s:s}", "path", ps, "manager", mt));
            nconf++;
        }
    }
    if (nconf) {
        if (nconf == 1) {
            json_t *c = json_array_get(causes, 0);
            ck_buf_printf(&msg, "Apply failed with 1 conflict: conflict with %s: %s",
                          json_string_value(json_object_get(c, "manager")), json_string_value(json_object_get(c, "path")));
        } else {
            ck_buf_printf(&msg, "Apply failed with %zu conflicts: ", nconf);
            /* group by manager, managers sorted */
            json_t *by = json_object();
            size_t i;
            json_t *c;
            json_array_foreach(causes, i, c) {
                const char *m = json_string_value(json_object_get(c, "manager"));
                json_t *l = json_object_get(by, m);
                if (!l) {
                    l = json_array();
                    json_object_set_new(by, m, l);
                }
                json_array_append(l, json_object_get(c, "path"));
            }
            size_t nm = json_object_size(by), k = 0;
            const char **names = xcalloc(nm, sizeof *names);
            const char *m;
            json_t *l;
            json_object_foreach(by, m, l)
                names[k++] = m;
            qsort(names, nm, sizeof *names, cmp_str);
            for (k = 0; k < nm; k++) {
                ck_buf_printf(&msg, "%sconflicts with %s:", k ? "\n" : "", names[k]);
                json_array_foreach(json_object_get(by, names[k]), i, c)
                    ck_buf_printf(&msg, "\n- %s", json_string_value(c));
            }
            free(names);
            json_decref(by);
        }
        ck_error_set(err, CK_E_CONFLICT, "%s", msg.data);
        ck_buf_free(&msg);
        json_decref(causes);
        json_decref(applied_set);
        json_decref(live_set);
        entries_free(&es);
        return NULL;
    }
    ck_buf_free(&msg);
    json_decref(causes);
    json_decref(live_set);

    /* merge the config into the live object */
    json_t *base = live ? json_deep_copy(live) : json_object();
    json_t *cfg = json_deep_copy(applied);
    json_t *meta_cfg = json_object_get(cfg, "metadata");
    if (json_is_object(meta_cfg))
        json_object_del(meta_cfg, "managedFields");
    if (live)
        json_object_del(cfg, "status");   /* status is reset on the main resource */
    json_t *out = ck__strategic_merge(base, cfg, ck_schema_root(r), err);
    json_decref(cfg);
    if (!out) {
        json_decref(applied_set);
        entries_free(&es);
        return NULL;
    }
    /* fields this manager applied before and no longer applies go, unless someone else owns them */
    own = &es.v[own_idx];
    const char *p;
    json_t *tv;
    const char **gone = xcalloc(json_object_size(own->set) + 1, sizeof *gone);
    size_t ngone = 0;
    json_object_foreach(own->set, p, tv) {
        if (json_object_get(applied_set, p))
            continue;
        bool other = false;
        for (size_t i = 0; i < es.n && !other; i++)
            if (i != own_idx && json_object_get(es.v[i].set, p))
                other = true;
        if (!other)
            gone[ngone++] = p;
    }
    /* sorted, a path's descendants follow it (SEP sorts lowest): delete only the outermost */
    qsort(gone, ngone, sizeof *gone, cmp_str);
    const char *last = NULL;
    for (size_t i = 0; i < ngone; i++) {
        size_t ll = last ? strlen(last) : 0;
        if (last && !strncmp(gone[i], last, ll) && gone[i][ll] == SEP[0])
            continue;
        delete_at(out, gone[i]);
        last = gone[i];
    }
    free(gone);

    /* a re-apply of the same fields keeps its entry as it was (time included), so a no-op apply
     * leaves the object unchanged, as upstream's is */
    const char *av = json_string_value(json_object_get(applied, "apiVersion"));
    av = av ? av : ck_resource_api_version(r);
    bool same = own->time && own->api_version && !strcmp(own->api_version, av) &&
                json_object_size(own->set) == json_object_size(applied_set);
    json_object_foreach(own->set, p, tv)
        if (same && !json_object_get(applied_set, p))
            same = false;
    json_decref(own->set);
    own->set = applied_set;
    if (!same) {
        free(own->time);
        own->time = now_rfc3339();
        free(own->api_version);
        own->api_version = xstrdup(av);
    }
    entries_store(&es, out);
    entries_free(&es);
    return out;
}

/* ---- update ---- */

bool ck__managed_fields_no_shortcut;
unsigned long ck__managed_fields_shortcuts;

static const ck_resource *resource_of(const json_t *obj)
{
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    const char *avs = json_string_value(json_object_get(obj, "apiVersion"));
    if (!kind)
        return NULL;
    char group[128] = "";
    const char *slash = avs ? strchr(avs, '/') : NULL;
    if (slash && (size_t)(slash - avs) < sizeof group) {
        memcpy(group, avs, (size_t)(slash - avs));
        group[slash - avs] = 0;
    }
    return ck_resource_by_kind(group, kind);
}

/* An object with no previous state and no managedFields of its own (a create): its one entry
 * holds every field, built by fields_of.  False if fields_of declines (nothing done). */
static bool record_fresh(json_t *obj, const char *manager, const char *operation, const char *api_version,
                         const char *subresource, bool status_sub)
{
    bool bail = false;
    json_t *fields = fields_of(obj, resource_of(obj), true, status_sub, &bail);
    if (bail)
        return false;
    json_t *meta = json_object_get(obj, "metadata");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(obj, "metadata", meta);
    }
    if (!json_object_size(fields)) {
        json_decref(fields);
        json_object_del(meta, "managedFields");
        __atomic_add_fetch(&ck__managed_fields_shortcuts, 1, __ATOMIC_RELAXED);
        return true;
    }
    char t[32];
    ck_rfc3339(ck_wall_ns() / 1000000000, t);
    json_t *e = json_object();
    json_object_set_new(e, "manager", json_string(manager));
    json_object_set_new(e, "operation", json_string(operation));
    if (api_version)
        json_object_set_new(e, "apiVersion", json_string(api_version));
    json_object_set_new(e, "time", json_string(t));
    json_object_set_new(e, "fieldsType", json_string("FieldsV1"));
    json_object_set_new(e, "fieldsV1", fields);
    if (subresource && *subresource)
        json_object_set_new(e, "subresource", json_string(subresource));
    json_t *mf = json_array();
    json_array_append_new(mf, e);
    json_object_set_new(meta, "managedFields", mf);
    __atomic_add_fetch(&ck__managed_fields_shortcuts, 1, __ATOMIC_RELAXED);
    return true;
}

void ck_managed_fields_record_sub(json_t *obj, const json_t *old, const char *manager, const char *operation,
                                  const char *api_version, const char *subresource)
{
    if (!json_is_object(obj))
        return;
    if (!manager || !*manager)
        manager = "unknown";
    if (!operation || !*operation)
        operation = "Update";
    bool status_sub = subresource && !strcmp(subresource, "status");
    const json_t *mf0 = managed_of(obj);
    if (!old && !json_array_size(mf0) && !ck__managed_fields_no_shortcut && record_fresh(obj, manager, operation, api_version, subresource,
                                                       status_sub))
        return;
    struct entries es = {0};
    /* the request's managedFields when it carries some (a client may set them; [{}] resets them),
     * else the live object's, as upstream: an empty list does not wipe them */
    const json_t *mf = managed_of(obj), *omf = managed_of(old);
    if (!json_array_size(mf))
        mf = omf;
    /* lazy only for the stored entries (printed normalized by entries_store); a client's own
     * managedFields are flattened and printed again as before */
    entries_load_lazy(&es, mf, mf == omf || json_equal(mf, omf));
    /* the schema of the object's kind, when the object says which it is */
    const ck_resource *r = resource_of(obj);
    json_t *new_set, *old_set;
    if (ck__managed_fields_no_shortcut) {
        new_set = set_of(obj, r, true, status_sub);
        old_set = set_of(old, r, true, status_sub);
    } else {
        sets_of_diff(obj, old, r, status_sub, &new_set, &old_set);
    }
    json_t *changed = json_object();
    const char *p;
    json_t *tv;
    json_object_foreach(new_set, p, tv) {
        if (!json_object_get(old_set, p)) {
            json_object_set_new(changed, p, json_true());
            continue;
        }
        if (last_is_item(p))
            continue;
        json_t *nv = tv, *ov = json_object_get(old_set, p);
        if (json_is_object(nv) && json_object_size(nv))
            continue;   /* a granular map: its keys carry the changes */
        if (!ov || !nv || !json_equal(nv, ov))
            json_object_set_new(changed, p, json_true());
    }
    json_t *removed = json_object();
    json_object_foreach(old_set, p, tv)
        if (!json_object_get(new_set, p))
            json_object_set_new(removed, p, json_true());
    struct entry *own = entry_get(&es, manager, operation, api_version, subresource,
                                  json_object_size(changed) > 0);
    for (size_t i = 0; i < es.n; i++) {
        struct entry *x = &es.v[i];
        json_object_foreach(removed, p, tv)
            entry_del(x, p);
        if (x == own)
            continue;
        json_object_foreach(changed, p, tv)
            entry_del(x, p);
    }
    if (own && json_object_size(changed)) {
        /* a manager writing the fields it owns already (a Lease renewal, a kubelet's status)
         * leaves its FieldsV1 as stored: only the entry's time changes */
        bool owned = !own->set;
        json_object_foreach(changed, p, tv)
            if (owned && !entry_has(own, p))
                owned = false;
        if (!owned && own->set && !own->fields && !json_object_size(own->set)) {
            /* a new entry (a kubelet's first status): its set is the changed set itself */
            json_decref(own->set);
            own->set = json_incref(changed);
        } else if (!owned) {
            json_object_update(entry_set(own), changed);
        }
        free(own->time);
        own->time = now_rfc3339();
    }
    entries_store(&es, obj);
    entries_free(&es);
    json_decref(changed);
    json_decref(removed);
    json_decref(new_set);
    json_decref(old_set);
}

void ck_managed_fields_record(json_t *obj, const json_t *old, const char *manager, const char *operation,
                              const char *api_version)
{
    ck_managed_fields_record_sub(obj, old, manager, operation, api_version, NULL);
}
