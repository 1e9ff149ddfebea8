/* list.c - list and deletecollection: one consistent snapshot (every page is read at the first
 * page's revision), `limit` + opaque `continue` tokens (meta.c), resourceVersion /
 * resourceVersionMatch, label and field selectors filtered here (with a selector we keep reading
 * store pages until `limit` objects matched or the keys ran out), and Table output for kubectl. */
#include "apiserver/apiserver.h"
#include "apiserver/names.h"
#include "apiserver/selector.h"
#include "apiserver/table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* ---- options ---- */

int ck_parse_go_int(const char *s, bool is_unsigned, int64_t *out, char **why)
{
    const char *p = s;
    bool neg = false;
    if (!is_unsigned && (*p == '+' || *p == '-'))
        neg = *p++ == '-';
    const char *fn = is_unsigned ? "strconv.ParseUint" : "strconv.ParseInt";
    if (!*p) {
        cleanup_free char *q = ck_go_quote(s);
        *why = xasprintf("%s: parsing %s: invalid syntax", fn, q);
        return -1;
    }
    uint64_t v = 0;
    bool range = false;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') {
            cleanup_free char *q = ck_go_quote(s);
            *why = xasprintf("%s: parsing %s: invalid syntax", fn, q);
            return -1;
        }
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            range = true;
        else
            v = v * 10 + d;
    }
    uint64_t lim = is_unsigned ? UINT64_MAX : neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (range || v > lim) {
        cleanup_free char *q = ck_go_quote(s);
        *why = xasprintf("%s: parsing %s: value out of range", fn, q);
        return -1;
    }
    /* a uint64 above INT64_MAX is a valid resourceVersion no store has reached: clamp */
    *out = neg ? (int64_t)(0 - v) : v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
    return 0;
}

void ck_list_query_free(ck_list_query *q)
{
    free(q->label_selector);
    free(q->field_selector);
    free(q->cont);
    free(q->rv);
    free(q->rvm);
    memset(q, 0, sizeof *q);
}

static void forbid(json_t *causes, const char *field, const char *detail)
{
    cleanup_free char *m = xasprintf("Forbidden: %s", detail);
    json_array_append_new(causes, json_pack("{s:s,s:s,s:s}", "reason", "FieldValueForbidden",
                                            "message", m, "field", field));
}

static void unsupported(json_t *causes, const char *field, const char *val, const char *supported)
{
    cleanup_free char *q = ck_go_quote(val);
    cleanup_free char *m = xasprintf("Unsupported value: %s: supported values: %s", q, supported);
    json_array_append_new(causes, json_pack("{s:s,s:s,s:s}", "reason", "FieldValueNotSupported",
                                            "message", m, "field", field));
}

/* upstream's string -> bool query conversion: absent, "0" and "false" (any case) are false */
int ck_list_query_parse(const char *query, bool watch, ck_list_query *q, json_t **details,
                        ck_error **err)
{
    memset(q, 0, sizeof *q);
    if (details)
        *details = NULL;
    q->label_selector = ck_http_query_param(query, "labelSelector");
    q->field_selector = ck_http_query_param(query, "fieldSelector");
    q->cont = ck_http_query_param(query, "continue");
    q->rv = ck_http_query_param(query, "resourceVersion");
    q->rvm = ck_http_query_param(query, "resourceVersionMatch");
    cleanup_free char *sie = ck_http_query_param(query, "sendInitialEvents");
    cleanup_free char *tos = ck_http_query_param(query, "timeoutSeconds");
    cleanup_free char *lim = ck_http_query_param(query, "limit");
    q->bookmarks = ck_http_query_bool(query, "allowWatchBookmarks");
    q->send_initial_set = sie != NULL;
    q->send_initial = ck_http_query_bool(query, "sendInitialEvents");
    /* decoding (400), in the order of the generated conversion: timeoutSeconds, then limit */
    char *why = NULL;
    if ((tos && ck_parse_go_int(tos, false, &q->timeout_seconds, &why) < 0) ||
        (lim && ck_parse_go_int(lim, false, &q->limit, &why) < 0)) {
        ck_error_set(err, CK_E_BAD_REQUEST, "%s", why);
        free(why);
        ck_list_query_free(q);
        return -1;
    }
    q->has_timeout = tos != NULL;
    /* ValidateListOptions (422) */
    json_t *causes = json_array();
    const char *rvm = q->rvm ? q->rvm : "";
    bool has_cont = q->cont && *q->cont;
    if (watch) {
        if (q->send_initial_set && strcmp(rvm, "NotOlderThan"))
            forbid(causes, "resourceVersionMatch",
                   "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan");
        if (*rvm) {
            if (!q->send_initial_set)
                forbid(causes, "resourceVersionMatch",
                       "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided");
            if (strcmp(rvm, "NotOlderThan"))
                unsupported(causes, "resourceVersionMatch", rvm, "\"NotOlderThan\"");
            if (has_cont)
                forbid(causes, "resourceVersionMatch",
                       "resourceVersionMatch is forbidden when continue is provided");
        }
    } else {
        if (*rvm) {
            if (!q->rv || !*q->rv)
                forbid(causes, "resourceVersionMatch",
                       "resourceVersionMatch is forbidden unless resourceVersion is provided");
            if (has_cont)
                forbid(causes, "resourceVersionMatch",
                       "resourceVersionMatch is forbidden when continue is provided");
            if (strcmp(rvm, "Exact") && strcmp(rvm, "NotOlderThan"))
                unsupported(causes, "resourceVersionMatch", rvm, "\"Exact\", \"NotOlderThan\", \"\"");
            if (!strcmp(rvm, "Exact") && q->rv && !strcmp(q->rv, "0"))
                forbid(causes, "resourceVersionMatch",
                       "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"");
        }
        if (q->send_initial_set)
            forbid(causes, "sendInitialEvents", "sendInitialEvents is forbidden for list");
    }
    if (json_array_size(causes)) {
        ck_list_query_free(q);
        return ck_options_invalid("ListOptions", causes, details, err);
    }
    json_decref(causes);
    /* the storage layer's resourceVersion parse: upstream's text; 400 rather than released
     * upstream's 500 (kubernetes/kubernetes#139485 asks for 400) */
    if (q->rv && *q->rv && ck_parse_go_int(q->rv, true, &q->rev, &why) < 0) {
        cleanup_free char *qv = ck_go_quote(q->rv);
        ck_error_set(err, CK_E_BAD_REQUEST, "resourceVersion: Invalid value: %s: %s", qv, why);
        free(why);
        ck_list_query_free(q);
        return -1;
    }
    return 0;
}

int ck_list_query_from_request(ck_reqctx *c, bool watch, ck_list_query *q, ck_error **err)
{
    json_t *details = NULL;
    int rc = ck_list_query_parse(c->req->query, watch, q, &details, err);
    if (details) {
        json_decref(c->details);
        c->details = details;
    }
    return rc;
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
            text = ck_json_print(obj, NULL);
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
    ck_list_query lq;
    if (ck_list_query_from_request(c, false, &lq, err) < 0)
        return -1;
    const char *cont = paging ? lq.cont : NULL;
    const char *rvs = lq.rv, *rvm = lq.rvm;
    ck_selector *fsel = NULL;
    ck_selector *lsel = ck_label_selector_parse(lq.label_selector, err);
    if (!lsel) {
        ck_list_query_free(&lq);
        return -1;
    }
    fsel = ck_field_selector_parse(lq.field_selector, r, err);
    if (!fsel) {
        ck_selector_free(lsel);
        ck_list_query_free(&lq);
        return -1;
    }
    bool filtered = !ck_selector_is_empty(lsel) || !ck_selector_is_empty(fsel);
    long long limit = paging && lq.limit > 0 ? lq.limit : 0;
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
    } else if (rvm && !strcmp(rvm, "Exact")) {
        rev = lq.rev;     /* > 0: the parser refused "0" with Exact */
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
    ck_list_query_free(&lq);
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
    enum ck_accept_as as = ck_accept_as(c);
    if (collect(c, true, as == CK_AS_OBJECT, &l, &e) < 0)
        return ck_respond_error(c, e);
    json_t *body;
    char rvbuf[24];
    snprintf(rvbuf, sizeof rvbuf, "%lld", (long long)l.rev);
    if (as == CK_AS_TABLE) {
        cleanup_free char *inc = ck_query(c, "includeObject");
        body = ck_table_wrap(r, l.items, inc, l.rev);
    } else if (as == CK_AS_PARTIAL) {
        json_t *items = json_array();
        size_t i;
        json_t *obj;
        json_array_foreach(l.items, i, obj)
            json_array_append_new(items, ck_partial_metadata(obj));
        body = json_pack("{s:s,s:s,s:{s:s},s:o}", "kind", "PartialObjectMetadataList",
                         "apiVersion", "meta.k8s.io/v1", "metadata", "resourceVersion", rvbuf,
                         "items", items);
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
