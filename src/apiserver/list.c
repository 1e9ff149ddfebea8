/* list.c - list and deletecollection: one consistent snapshot (every page is read at the first
 * page's revision), `limit` + opaque `continue` tokens (meta.c), resourceVersion /
 * resourceVersionMatch, label and field selectors filtered here (with a selector we keep reading
 * store pages until `limit` objects matched or the keys ran out), and Table output for kubectl. */
#include "apiserver/apiserver.h"
#include "apiserver/selector.h"
#include "apiserver/table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_MIN 500

json_t *ck_table_wrap(const ck_resource *r, json_t *items, const char *include, int64_t rev)
{
    json_t *rows = json_array();
    int64_t now = ck_wall_ns() / 1000000000;
    size_t i;
    json_t *obj;
    json_array_foreach(items, i, obj) {
        json_t *row = json_pack("{s:o}", "cells", ck_table_cells(r, obj, now));
        if (!include || !*include || !strcmp(include, "Metadata")) {
            json_t *m = json_object_get(obj, "metadata");
            json_object_set_new(row, "object",
                                json_pack("{s:s,s:s,s:O}", "kind", "PartialObjectMetadata",
                                          "apiVersion", "meta.k8s.io/v1", "metadata",
                                          m ? m : json_object()));
        } else if (!strcmp(include, "Object")) {
            json_object_set(row, "object", obj);
        }
        json_array_append_new(rows, row);
    }
    json_t *meta = json_object();
    if (rev > 0) {
        char buf[24];
        snprintf(buf, sizeof buf, "%lld", (long long)rev);
        json_object_set_new(meta, "resourceVersion", json_string(buf));
    }
    return json_pack("{s:s,s:s,s:o,s:o,s:o}", "kind", "Table", "apiVersion", "meta.k8s.io/v1",
                     "metadata", meta, "columnDefinitions", ck_table_columns(r), "rows", rows);
}

typedef struct list_result {
    json_t *items;            /* parsed objects, or NULL when raw */
    ck_buf raw;               /* raw mode: the items' JSON texts joined by commas */
    size_t nraw;
    int64_t rev;
    char *cont;
    int64_t remaining;        /* -1: unknown */
} list_result;

static void list_result_free(list_result *l)
{
    json_decref(l->items);
    ck_buf_free(&l->raw);
    free(l->cont);
}

static int expired(ck_error **err)
{
    return ck_error_set(err, CK_E_EXPIRED,
                        "The provided continue parameter is too old to display a consistent list "
                        "result. You can start a new list without the continue parameter, or use "
                        "the continue token in this response to retrieve the remainder of the "
                        "results. Continuing with the provided token results in an inconsistent "
                        "list - objects that were created, modified, or deleted between the time "
                        "the first chunk was returned and now may show up in the list.");
}

/* Append one stored object to the raw list text (RV spliced in; parsed only as a fallback). */
static int raw_append(list_result *out, const ck_kv *kv)
{
    size_t mark = out->raw.len;
    if (out->nraw && ck_buf_add(&out->raw, ",", 1) < 0)
        return -1;
    size_t start = out->raw.len;
    if (ck_json_splice_rv(kv->value, kv->value_len, kv->mod_revision, &out->raw) < 0) {
        out->raw.len = start;
        json_t *obj = json_loadb(kv->value, kv->value_len, 0, NULL);
        char *text = NULL;
        if (json_is_object(obj)) {
            ck_meta_set_rv(obj, kv->mod_revision);
            text = json_dumps(obj, JSON_COMPACT);
        }
        json_decref(obj);
        if (!text || ck_buf_addstr(&out->raw, text) < 0) {
            free(text);
            out->raw.len = mark;
            if (out->raw.data)
                out->raw.data[mark] = '\0';
            return 0;       /* skip what cannot be served */
        }
        free(text);
    }
    out->nraw++;
    return 0;
}

/* raw_ok: plain JSON wanted, so unfiltered lists may skip parsing objects. */
static int collect(ck_reqctx *c, bool paging, bool raw_ok, list_result *out, ck_error **err)
{
    const ck_resource *r = c->route.res;
    memset(out, 0, sizeof *out);
    out->remaining = -1;
    cleanup_free char *ls = ck_query(c, "labelSelector");
    cleanup_free char *fs = ck_query(c, "fieldSelector");
    cleanup_free char *lim = paging ? ck_query(c, "limit") : NULL;
    cleanup_free char *cont = paging ? ck_query(c, "continue") : NULL;
    cleanup_free char *rvs = ck_query(c, "resourceVersion");
    cleanup_free char *rvm = ck_query(c, "resourceVersionMatch");
    ck_selector *lsel = ck_label_selector_parse(ls, err);
    if (!lsel)
        return -1;
    ck_selector *fsel = ck_field_selector_parse(fs, r, err);
    if (!fsel) {
        ck_selector_free(lsel);
        return -1;
    }
    bool filtered = !ck_selector_is_empty(lsel) || !ck_selector_is_empty(fsel);
    long long limit = lim && *lim ? strtoll(lim, NULL, 10) : 0;
    if (limit < 0)
        limit = 0;
    const char *ns = r->namespaced ? c->route.namespace_ : NULL;
    const char *fns = ck_selector_exact(fsel, "metadata.namespace");
    if (!ns && r->namespaced && fns)
        ns = fns;
    cleanup_free char *prefix = ck_resource_key_prefix(r, ns);
    const char *fname = ck_selector_exact(fsel, "metadata.name");
    bool by_name = fname && (ns || !r->namespaced);
    cleanup_free char *list_prefix = by_name
                                         ? xasprintf("%s%s", prefix, fname) : xstrdup(prefix);
    int64_t rev = 0;
    cleanup_free char *start = NULL;
    int rc = -1;
    if (cont && *cont) {
        if (rvs && *rvs && strcmp(rvs, "0")) {
            ck_error_set(err, CK_E_BAD_REQUEST,
                         "specifying resource version is not allowed when using continue");
            goto out;
        }
        cleanup_free char *suffix = NULL;
        if (ck_continue_decode(cont, &rev, &suffix, err) < 0)
            goto out;
        start = xasprintf("%s%s", prefix, suffix);
    } else if (rvs && *rvs && rvm && !strcmp(rvm, "Exact")) {
        rev = strtoll(rvs, NULL, 10);
        if (rev <= 0) {
            ck_error_set(err, CK_E_BAD_REQUEST, "resourceVersionMatch \"Exact\" requires a "
                         "resourceVersion greater than 0");
            goto out;
        }
    } else if (rvm && *rvm && strcmp(rvm, "NotOlderThan") && strcmp(rvm, "Exact")) {
        ck_error_set(err, CK_E_BAD_REQUEST, "resourceVersionMatch: Unsupported value: \"%s\"", rvm);
        goto out;
    }
    bool raw = raw_ok && !filtered;
    if (raw)
        ck_buf_init(&out->raw, (size_t)4 << 30);
    else
        out->items = json_array();
    for (;;) {
        ck_list_opts o = {.revision = rev, .start_after = start};
        if (limit)
            o.limit = filtered ? (size_t)(limit > PAGE_MIN ? limit : PAGE_MIN) : (size_t)limit;
        ck_list l = {0};
        int64_t t0 = ck_now_ns();
        ck_error *e = NULL;
        int lrc = ck_store_list(c->srv->store, list_prefix, &o, &l, &e);
        ck_metrics_store("list", (double)(ck_now_ns() - t0) / 1e9);
        if (lrc < 0) {
            if (e->code == CK_E_EXPIRED && cont && *cont) {
                ck_error_free(e);
                expired(err);
            } else if (err) {
                *err = e;
            } else {
                ck_error_free(e);
            }
            goto out;
        }
        rev = l.revision;
        bool stopped = false;
        for (size_t i = 0; i < l.n; i++) {
            ck_kv *kv = &l.items[i];
            if (by_name && strcmp(kv->key + strlen(prefix), fname))
                continue;     /* prefix matched "name2" for name */
            if (raw) {
                if (raw_append(out, kv) < 0) {
                    ck_error_set(err, CK_E_TOO_LARGE, "list result too large");
                    ck_list_free(&l);
                    goto out;
                }
                if (limit && (long long)out->nraw == limit && (i + 1 < l.n || l.more)) {
                    out->cont = ck_continue_encode(rev, kv->key + strlen(prefix));
                    out->remaining = l.remaining + (int64_t)(l.n - i - 1);
                    stopped = true;
                    break;
                }
                continue;
            }
            json_t *obj = json_loadb(kv->value, kv->value_len, 0, NULL);
            if (!json_is_object(obj)) {
                json_decref(obj);
                continue;
            }
            ck_meta_set_rv(obj, kv->mod_revision);
            if (!ck_label_selector_matches(lsel, json_object_get(json_object_get(obj, "metadata"),
                                                                 "labels")) ||
                !ck_field_selector_matches(fsel, obj)) {
                json_decref(obj);
                continue;
            }
            json_array_append_new(out->items, obj);
            if (limit && (long long)json_array_size(out->items) == limit &&
                (i + 1 < l.n || l.more)) {
                out->cont = ck_continue_encode(rev, kv->key + strlen(prefix));
                if (!filtered)
                    out->remaining = l.remaining + (int64_t)(l.n - i - 1);
                stopped = true;
                break;
            }
        }
        if (stopped || !l.more || l.n == 0) {
            ck_list_free(&l);
            break;
        }
        free(start);
        start = xstrdup(l.items[l.n - 1].key);
        ck_list_free(&l);
    }
    out->rev = rev;
    rc = 0;
out:
    ck_selector_free(lsel);
    ck_selector_free(fsel);
    if (rc < 0) {
        list_result_free(out);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

static void serve_list(ck_reqctx *c)
{
    const ck_resource *r = c->route.res;
    list_result l;
    ck_error *e = NULL;
    if (collect(c, true, !ck_accept_table(c), &l, &e) < 0)
        return ck_respond_error(c, e);
    json_t *body;
    char rvbuf[24];
    snprintf(rvbuf, sizeof rvbuf, "%lld", (long long)l.rev);
    if (ck_accept_table(c)) {
        cleanup_free char *inc = ck_query(c, "includeObject");
        body = ck_table_wrap(r, l.items, inc, l.rev);
    } else {
        char *kind = xasprintf("%sList", r->kind);
        body = json_pack("{s:s,s:s,s:{s:s},s:o}", "kind", kind, "apiVersion",
                         ck_resource_api_version(r), "metadata", "resourceVersion", rvbuf, "items",
                         l.items ? json_incref(l.items) : json_array());
        free(kind);
    }
    json_t *meta = json_object_get(body, "metadata");
    if (l.cont) {
        json_object_set_new(meta, "continue", json_string(l.cont));
        if (l.remaining > 0)
            json_object_set_new(meta, "remainingItemCount", json_integer(l.remaining));
    }
    if (!l.items) {
        /* raw: the envelope printed by jansson, the items pasted in */
        json_object_set_new(body, "items", json_array());
        char *env = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        size_t elen = env ? strlen(env) : 0;
        ck_buf b;
        ck_buf_init(&b, (size_t)4 << 30);
        if (!env || elen < 3 || ck_buf_add(&b, env, elen - 2) < 0 ||
            ck_buf_add(&b, l.raw.data ? l.raw.data : "", l.raw.len) < 0 ||
            ck_buf_add(&b, "]}", 2) < 0) {
            free(env);
            ck_buf_free(&b);
            list_result_free(&l);
            ck_error_set(&e, CK_E_INTERNAL, "list encoding failed");
            return ck_respond_error(c, e);
        }
        free(env);
        list_result_free(&l);
        ck_respond_bytes(c, 200, "application/json", b.data, b.len);
        ck_buf_free(&b);
        return;
    }
    list_result_free(&l);
    ck_respond_json(c, 200, body);
}

static void serve_deletecollection(ck_reqctx *c)
{
    const ck_resource *r = c->route.res;
    ck_error *e = NULL;
    json_t *opts = ck_rest_delete_options(c, &e);
    if (!opts)
        return ck_respond_error(c, e);
    list_result l;
    if (collect(c, false, false, &l, &e) < 0) {
        json_decref(opts);
        return ck_respond_error(c, e);
    }
    json_t *deleted = json_array();
    size_t i;
    json_t *obj;
    json_array_foreach(l.items, i, obj) {
        const char *name = ck_meta_str(obj, "name");
        const char *ns = ck_meta_str(obj, "namespace");
        ck_error *de = NULL;
        json_t *out = ck_rest_delete_obj(c, r, ns, name, opts, &de);
        if (!out) {
            if (de->code == CK_E_NOT_FOUND) {
                ck_error_free(de);
                continue;
            }
            json_decref(deleted);
            json_decref(opts);
            list_result_free(&l);
            return ck_respond_error(c, de);
        }
        json_decref(out);
        json_array_append(deleted, obj);
    }
    json_decref(opts);
    char *kind = xasprintf("%sList", r->kind);
    json_t *body = json_pack("{s:s,s:s,s:{},s:o}", "kind", kind, "apiVersion",
                             ck_resource_api_version(r), "metadata", "items", deleted);
    free(kind);
    list_result_free(&l);
    ck_respond_json(c, 200, body);
}

void ck_list_serve(ck_reqctx *c)
{
    if (c->route.verb == CK_VERB_DELETECOLLECTION)
        serve_deletecollection(c);
    else
        serve_list(c);
}
