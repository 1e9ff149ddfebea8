/* rest.c - the object verbs: get, create, update (PUT), patch (4 content types), delete,
 * deletecollection.  Create and update share one pipeline each (decode -> field validation ->
 * defaulting -> strategy (status reset, metadata) -> allocation -> validation -> managedFields ->
 * store write with the read revision as precondition), reused by the subresources and by
 * server-side apply.  Objects are stored as compact JSON without resourceVersion (meta.c). */
#include "apiserver/podproxy.h"
#include "apiserver/apiserver.h"
#include "apiserver/codec.h"
#include "apiserver/names.h"
#include "apiserver/openapi.h"
#include "apiserver/patch.h"
#include "apiserver/table.h"
#include "apiserver/validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CONFLICT_RETRIES 32   /* upstream's GuaranteedUpdate retries an unpinned write until it lands */

static double since(int64_t t0)
{
    return (double)(ck_now_ns() - t0) / 1e9;
}

int ck_rest_read_text(ck_apiserver *s, const ck_resource *r, const char *ns, const char *name,
                      ck_kv *kv, ck_error **err)
{
    cleanup_free char *key = ck_resource_key(r, ns, name);
    int64_t t0 = ck_now_ns();
    ck_error *e = NULL;
    int rc = ck_store_get(s->store, key, kv, &e);
    ck_metrics_store("get", since(t0));
    if (rc < 0) {
        if (e->code == CK_E_NOT_FOUND) {
            ck_error_free(e);
            ck_err_not_found(err, r, name);
        } else if (err) {
            *err = e;
        } else {
            ck_error_free(e);
        }
        return -1;
    }
    return 0;
}

json_t *ck_rest_read(ck_apiserver *s, const ck_resource *r, const char *ns, const char *name,
                     int64_t *rev, ck_error **err)
{
    return ck_rest_read_raw(s, r, ns, name, rev, NULL, err);
}

json_t *ck_rest_read_raw(ck_apiserver *s, const ck_resource *r, const char *ns, const char *name,
                         int64_t *rev, const char *raw_keys, ck_error **err)
{
    ck_kv kv = {0};
    if (ck_rest_read_text(s, r, ns, name, &kv, err) < 0)
        return NULL;
    json_t *obj = raw_keys ? ck_json_load_raw(kv.value, kv.value_len, raw_keys) : NULL;
    if (!obj)
        obj = ck_json_load_fast(kv.value, kv.value_len, 0);
    if (!json_is_object(obj)) {
        json_decref(obj);
        ck_error_set(err, CK_E_CORRUPT, "stored object %s is not a JSON object",
                     kv.key ? kv.key : name);
        ck_kv_free(&kv);
        return NULL;
    }
    ck_meta_set_rv(obj, kv.mod_revision);
    if (rev)
        *rev = kv.mod_revision;
    ck_kv_free(&kv);
    return obj;
}

static void opt_cause(json_t *causes, const char *reason, const char *field, const char *msg)
{
    json_array_append_new(causes, json_pack("{s:s,s:s,s:s}", "reason", reason, "message", msg,
                                            "field", field));
}

/* upstream's unicode.IsPrint, for what a field manager can hold: C0 and C1 controls, DEL and
 * the soft hyphen are not printable; -1 if s is all printable, else the byte offset. */
static long first_unprintable(const char *s, unsigned *cp)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            *cp = *p;
            return (long)(p - (const unsigned char *)s);
        }
        if (*p == 0xc2 && ((p[1] >= 0x80 && p[1] <= 0x9f) || p[1] == 0xad)) {
            *cp = p[1];
            return (long)(p - (const unsigned char *)s);
        }
    }
    return -1;
}

/* The user agent's program name, printable characters only, at most 128 bytes (upstream). */
static char *manager_from_user_agent(const char *ua)
{
    size_t n = ua ? strcspn(ua, "/") : 0;
    char *m = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n && o < 128; i++)
        if ((unsigned char)ua[i] >= 0x20 && ua[i] != 0x7f)
            m[o++] = ua[i];
    m[o] = 0;
    return m;
}

int ck_write_opts_parse(const char *query, const char *user_agent, enum ck_write_verb verb,
                        ck_write_opts *o, char **owned_manager, char **owned_fv, json_t **details,
                        ck_error **err)
{
    static const char *const kinds[] = {"CreateOptions", "UpdateOptions", "PatchOptions",
                                        "PatchOptions"};
    memset(o, 0, sizeof *o);
    *owned_manager = *owned_fv = NULL;
    if (details)
        *details = NULL;
    json_t *causes = json_array();
    cleanup_free char *dry = ck_http_query_param(query, "dryRun");
    cleanup_free char *fm = ck_http_query_param(query, "fieldManager");
    cleanup_free char *force = ck_http_query_param(query, "force");
    char *fv = ck_http_query_param(query, "fieldValidation");
    /* the order of upstream's Validate*Options */
    if (verb == CK_WRITE_PATCH && force)
        opt_cause(causes, "FieldValueForbidden", "force",
                  "Forbidden: may not be specified for non-apply patch");
    if (verb == CK_WRITE_APPLY && (!fm || !*fm))
        opt_cause(causes, "FieldValueRequired", "fieldManager",
                  "Required value: is required for apply patch");
    if (fm && strlen(fm) > 128)
        opt_cause(causes, "FieldValueTooLong", "fieldManager", "Too long: must have at most 128 bytes");
    unsigned cp = 0;
    long at = fm ? first_unprintable(fm, &cp) : -1;
    if (at >= 0) {
        cleanup_free char *q = ck_go_quote(fm);
        cleanup_free char *m = xasprintf("Invalid value: %s: invalid character U+%04X (at position %ld)",
                                         q, cp, at);
        opt_cause(causes, "FieldValueInvalid", "fieldManager", m);
    }
    if (dry && strcmp(dry, "All")) {
        cleanup_free char *q = ck_go_quote(dry);
        cleanup_free char *m = xasprintf("Unsupported value: []string{%s}: supported values: \"All\"", q);
        opt_cause(causes, "FieldValueNotSupported", "dryRun", m);
    }
    if (fv && *fv && strcmp(fv, "Ignore") && strcmp(fv, "Warn") && strcmp(fv, "Strict")) {
        cleanup_free char *q = ck_go_quote(fv);
        cleanup_free char *m = xasprintf("Unsupported value: %s: supported values: \"\", \"Ignore\", "
                                         "\"Strict\", \"Warn\"", q);
        opt_cause(causes, "FieldValueNotSupported", "fieldValidation", m);
    }
    if (json_array_size(causes)) {
        free(fv);
        return ck_options_invalid(kinds[verb], causes, details, err);
    }
    json_decref(causes);
    o->dry_run = dry != NULL;
    if (fm && *fm) {
        *owned_manager = fm;
        fm = NULL;
    } else {
        *owned_manager = manager_from_user_agent(user_agent);
    }
    o->manager = *owned_manager;
    *owned_fv = fv;
    o->field_validation = fv && *fv ? fv : "Warn";
    o->verb = verb;
    return 0;
}

int ck_write_opts_from_query(ck_reqctx *c, ck_write_opts *o, char **owned_manager, char **owned_fv,
                             ck_error **err)
{
    enum ck_write_verb verb = CK_WRITE_CREATE;
    const char *m = c->req->method;
    if (!strcmp(m, "PUT")) {
        verb = CK_WRITE_UPDATE;
    } else if (!strcmp(m, "PATCH")) {
        cleanup_free char *mt = ck_rest_media_type(ck_http_req_header(c->req, "Content-Type"));
        verb = !strcmp(mt, "application/apply-patch+yaml") ? CK_WRITE_APPLY : CK_WRITE_PATCH;
    }
    json_t *details = NULL;
    int rc = ck_write_opts_parse(c->req->query, ck_http_req_header(c->req, "User-Agent"), verb, o,
                                 owned_manager, owned_fv, &details, err);
    if (details) {
        json_decref(c->details);
        c->details = details;
    }
    return rc;
}

/* A JSON type mismatch as upstream reports it where it decodes (see apiserver.h). */
static int type_mismatch(ck_reqctx *c, const ck_resource *r, const json_t *obj,
                         const ck_write_opts *o, const ck_type_error *te, ck_error **err)
{
    if (o->verb == CK_WRITE_CREATE || o->verb == CK_WRITE_UPDATE)
        return ck_error_set(err, CK_E_BAD_REQUEST, "%s in version \"%s\" cannot be handled as a %s: %s",
                            r->kind, r->version, r->kind, te->msg);
    if (o->verb == CK_WRITE_APPLY) {
        const char *ns = ck_meta_str(obj, "namespace"), *name = ck_meta_str(obj, "name");
        return ck_error_set(err, CK_E_BAD_REQUEST,
                            "failed to create typed patch object (%s/%s; %s/%s, Kind=%s): .%s: %s",
                            ns ? ns : "", name ? name : "", r->group, r->version, r->kind,
                            te->path, te->msg);
    }
    /* JSON, merge and strategic patches: an Invalid with no kind, on the field "patch" */
    char *text = json_dumps(obj, JSON_COMPACT);
    cleanup_free char *q = ck_go_quote(text ? text : "");
    free(text);
    cleanup_free char *m = xasprintf("Invalid value: %s: %s", q, te->msg);
    json_t *causes = json_pack("[{s:s,s:s,s:s}]", "reason", "FieldValueInvalid", "message", m,
                               "field", "patch");
    json_decref(c->details);
    c->details = json_pack("{s:o}", "causes", causes);
    return ck_error_set(err, CK_E_INVALID, " \"\" is invalid: patch: %s", m);
}

int ck_rest_check_fields(ck_reqctx *c, const ck_resource *r, const json_t *obj, const json_t *dups,
                        const ck_write_opts *o, ck_error **err)
{
    const char *fv = o->field_validation;
    bool ignore = !strcasecmp(fv, "Ignore");
    bool strict = !strcasecmp(fv, "Strict");
    if (!ignore && !strict && strcasecmp(fv, "Warn"))
        return ck_error_set(err, CK_E_BAD_REQUEST,
                            "fieldValidation parameter unsupported: %s (supported: Ignore, Warn, "
                            "Strict)", fv);
    json_t *unknown = ignore ? NULL : json_array();
    ck_type_error te;
    if (ck_openapi_check(r, obj, unknown, &te)) {
        json_decref(unknown);
        return type_mismatch(c, r, obj, o, &te, err);
    }
    if (ignore)
        return 0;
    ck_buf msg;
    ck_buf_init(&msg, 64 * 1024);
    size_t i;
    json_t *v;
    json_array_foreach(unknown, i, v) {
        const char *p = json_string_value(v);
        if (p && *p == '.')
            p++;
        if (strict)
            ck_buf_printf(&msg, "%sunknown field \"%s\"", msg.len ? ", " : "", p ? p : "");
        else
            ck_warn(c, "unknown field \"%s\"", p ? p : "");
    }
    json_array_foreach(dups, i, v) {
        const char *p = json_string_value(v);
        if (p && *p == '.')
            p++;
        if (strict)
            ck_buf_printf(&msg, "%sduplicate field \"%s\"", msg.len ? ", " : "", p ? p : "");
        else
            ck_warn(c, "duplicate field \"%s\"", p ? p : "");
    }
    json_decref(unknown);
    int rc = 0;
    if (msg.len)
        rc = ck_error_set(err, CK_E_BAD_REQUEST, "strict decoding error: %s", msg.data);
    ck_buf_free(&msg);
    return rc;
}

int ck_rest_check_types(ck_reqctx *c, const ck_resource *r, const json_t *obj,
                        const ck_write_opts *o, ck_error **err)
{
    ck_type_error te;
    if (ck_openapi_check(r, obj, NULL, &te))
        return type_mismatch(c, r, obj, o, &te, err);
    return 0;
}

static int set_namespace(const ck_resource *r, json_t *obj, const char *ns, ck_error **err)
{
    json_t *m = ck_meta(obj);
    if (!r->namespaced) {
        json_object_del(m, "namespace");
        return 0;
    }
    const char *have = json_string_value(json_object_get(m, "namespace"));
    if (have && *have && ns && strcmp(have, ns))
        return ck_error_set(err, CK_E_BAD_REQUEST,
                            "the namespace of the provided object does not match the namespace "
                            "sent on the request");
    if (ns)
        json_object_set_new(m, "namespace", json_string(ns));
    return 0;
}

int ck_namespace_check(ck_apiserver *s, const ck_resource *r, const char *ns, const char *name,
                       ck_error **err)
{
    if (!r->namespaced)
        return 0;
    const ck_resource *nsr = ck_resource_find("", "v1", "namespaces");
    ck_error *e = NULL;
    /* Fast path, run on every namespaced create: the stored text is our own compact dump (keys
     * and "Terminating" are never escaped), so if neither marker occurs in it the namespace is
     * not terminating and parsing it (~15% of a create's CPU) can be skipped. */
    cleanup_free char *key = ck_resource_key(nsr, NULL, ns);
    ck_kv kv = {0};
    if (ck_store_get(s->store, key, &kv, NULL) == 0) {
        bool maybe = strstr(kv.value, "\"deletionTimestamp\"") || strstr(kv.value, "Terminating");
        ck_kv_free(&kv);
        if (!maybe)
            return 0;
    }
    json_t *o = ck_rest_read(s, nsr, NULL, ns, NULL, &e);
    if (!o) {
        return ck_error_pass(err, e);
    }
    bool terminating = json_object_get(json_object_get(o, "metadata"), "deletionTimestamp") ||
        !strcmp(json_string_value(json_object_get(json_object_get(o, "status"), "phase")) ?: "",
                "Terminating");
    json_decref(o);
    if (terminating)
        return ck_error_set(err, CK_E_FORBIDDEN,
                            "%s \"%s\" is forbidden: unable to create new content in namespace %s "
                            "because it is being terminated", ck_res_qualified(r), name ? name : "",
                            ns);
    return 0;
}

/* Pod QoS class as upstream computes it at creation. */
static const char *pod_qos(const json_t *pod)
{
    bool any = false, guaranteed = true;
    const char *lists[] = {"containers", "initContainers"};
    for (size_t l = 0; l < 2; l++) {
        size_t i;
        json_t *ctr;
        json_array_foreach(json_object_get(json_object_get(pod, "spec"), lists[l]), i, ctr) {
            json_t *res = json_object_get(ctr, "resources");
            json_t *req = json_object_get(res, "requests"), *lim = json_object_get(res, "limits");
            if (json_object_size(req) || json_object_size(lim))
                any = true;
            static const char *const rs[] = {"cpu", "memory"};
            for (size_t k = 0; k < 2; k++) {
                json_t *lv = json_object_get(lim, rs[k]), *rv = json_object_get(req, rs[k]);
                if (!lv || (rv && !json_equal(lv, rv)))
                    guaranteed = false;
            }
        }
    }
    return !any ? "BestEffort" : guaranteed ? "Guaranteed" : "Burstable";
}

/* Strategy PrepareForCreate: status is the server's to set for kinds with a status
 * subresource (nodes excepted: the kubelet registers with status). */
static void prepare_create(const ck_resource *r, json_t *obj)
{
    if (!strcmp(r->resource, "namespaces")) {
        json_t *spec = json_object_get(obj, "spec");
        if (!json_is_object(spec)) {
            spec = json_object();
            json_object_set_new(obj, "spec", spec);
        }
        if (!json_object_get(spec, "finalizers"))
            json_object_set_new(spec, "finalizers", json_pack("[s]", "kubernetes"));
        json_object_set_new(obj, "status", json_pack("{s:s}", "phase", "Active"));
        json_t *labels = json_object_get(ck_meta(obj), "labels");
        if (!json_is_object(labels)) {
            labels = json_object();
            json_object_set_new(ck_meta(obj), "labels", labels);
        }
        const char *name = ck_meta_str(obj, "name");
        if (name)
            json_object_set_new(labels, "kubernetes.io/metadata.name", json_string(name));
        return;
    }
    if (!ck_res_has_status(r) || !strcmp(r->resource, "nodes"))
        return;
    if (!strcmp(r->resource, "pods"))
        json_object_set_new(obj, "status", json_pack("{s:s,s:s}", "phase", "Pending", "qosClass",
                                                     pod_qos(obj)));
    else if (!strcmp(r->resource, "persistentvolumeclaims") ||
             !strcmp(r->resource, "persistentvolumes"))
        json_object_set_new(obj, "status", json_pack("{s:s}", "phase", "Pending"));
    else if (!strcmp(r->resource, "services"))
        json_object_set_new(obj, "status", json_pack("{s:{}}", "loadBalancer"));
    else
        json_object_set_new(obj, "status", json_object());
}

static int invalid_from_causes(ck_reqctx *c, const ck_resource *r, const char *name, json_t *causes,
                               ck_error **err)
{
    char *msg = ck_validate_message(r, name ? name : "", causes);
    ck_error_set(err, CK_E_INVALID, "%s", msg);
    free(msg);
    json_decref(c->causes);
    c->causes = causes;
    return -1;
}

static bool is_service(const ck_resource *r);

/* A Service's IPs and node ports allocated, then the object validated, for a create (old NULL)
 * or an update: 0, or -1 with *err (an invalid object: its causes in c->causes) and nothing left
 * allocated. */
static int allocate_and_validate(ck_reqctx *c, const ck_resource *r, json_t *obj,
                                 const json_t *old, const char *name, ck_error **err)
{
    json_t *causes = json_array();
    if (is_service(r) && ck_service_allocate(c->srv, obj, old, causes, err) < 0) {
        if (json_array_size(causes)) {
            json_decref(c->causes);
            c->causes = causes;
        } else {
            json_decref(causes);
        }
        return -1;
    }
    json_decref(causes);
    causes = ck_validate(r, obj, old);
    if (json_array_size(causes)) {
        if (is_service(r))
            ck_service_release(c->srv, obj, old);
        return invalid_from_causes(c, r, name, causes, err);
    }
    json_decref(causes);
    return 0;
}

static bool is_core(const ck_resource *r, const char *resource)
{
    return !r->group[0] && !strcmp(r->resource, resource);
}

static bool is_service(const ck_resource *r)
{
    return is_core(r, "services");
}

/* resp: if not NULL, gets the response text on a stored create: the stored text with the
 * resourceVersion spliced in, which saves printing the object a second time (left empty for a
 * dry run, or if the splice fails: then the caller prints the returned object). */
static json_t *create_obj(ck_reqctx *c, const ck_resource *r, const char *ns, json_t *obj,
                          const ck_write_opts *o, ck_buf *resp, ck_error **err)
{
    ck_apiserver *s = c->srv;
    if (ck_rest_check_type(r, obj, err) < 0 || set_namespace(r, obj, ns, err) < 0)
        return NULL;
    json_t *m = ck_meta(obj);
    const char *name = json_string_value(json_object_get(m, "name"));
    const char *gen = json_string_value(json_object_get(m, "generateName"));
    bool generated = (!name || !*name) && gen && *gen;
    if (generated) {
        char sfx[6];
        ck_meta_random_suffix(sfx);
        char *n = xasprintf("%s%s", gen, sfx);
        json_object_set_new(m, "name", json_string(n));
        free(n);
    }
    name = ck_meta_str(obj, "name");
    if (!name || !*name) {
        json_t *causes = json_pack("[{s:s,s:s,s:s}]", "reason", "FieldValueRequired", "message",
                                   "Required value: name or generateName is required", "field",
                                   "metadata.name");
        invalid_from_causes(c, r, "", causes, err);
        return NULL;
    }
    bool named_here = !c->route.name;
    if (!c->route.name) {
        free(c->route.name);
        c->route.name = xstrdup(name);
    }
    if (ck_namespace_check(s, r, ns, name, err) < 0)
        return NULL;
    ck_default(r, obj);
    /* a namespace's default ServiceAccount may not exist yet: rather than wait on this thread,
     * serve the request again a little later (writedefer.c) */
    bool can_retry = resp && ck_defer_can_retry(c);
    int arc = ck_admit_create_try(s, r, ns, obj, can_retry ? c->admit_tries : -1, err);
    if (arc < 0)
        return NULL;
    if (arc > 0) {
        if (named_here) {                       /* the next run names it again */
            free(c->route.name);
            c->route.name = NULL;
        }
        c->admit_tries++;
        ck_defer_retry(c, CK_ADMIT_SA_RETRY_MS + rand() % 100);
        json_incref(obj);
        return obj;
    }
    prepare_create(r, obj);
    if (is_core(r, "resourcequotas"))
        ck_quota_fill_status(s, obj);
    ck_meta_on_create(r, obj, ck_wall_ns() / 1000000000);
    /* again, now that the uid exists: a Job's generated selector is keyed on it */
    ck_default(r, obj);
    if (allocate_and_validate(c, r, obj, NULL, name, err) < 0)
        return NULL;
    bool qlocked = false;     /* ResourceQuota charged, its lock held until the write is done */
    if (ck_quota_admit(s, r, ns, obj, o->dry_run, &qlocked, err) < 0) {
        if (is_service(r))
            ck_service_release(s, obj, NULL);
        return NULL;
    }
    if (!o->applied)
        ck_managed_fields_record(obj, NULL, o->manager, "Update", ck_resource_api_version(r));
    if (o->dry_run) {
        if (is_service(r))
            ck_service_release(s, obj, NULL);
        json_incref(obj);
        return obj;
    }
    for (int attempt = 0;; attempt++) {
        name = ck_meta_str(obj, "name");
        cleanup_free char *key = ck_resource_key(r, ns, name);
        size_t len;
        cleanup_free char *text = ck_meta_dump_for_store(obj, &len);
        /* answered by the store's completion (writedefer.c): nothing below runs after a
         * successful write but the splice, and a failure answers as below (a generated name
         * that clashed: the request is rerun, which picks another suffix) */
        c->async_retry = generated;
        if (resp && !qlocked && !is_service(r) &&
            ck_defer_write(c, r, CK_STORE_CREATE, name, key, text, len, 0, 201, false)) {
            key = text = NULL;
            json_incref(obj);
            return obj;
        }
        int64_t rev = 0, t0 = ck_now_ns();
        ck_error *e = NULL;
        int rc = ck_store_create(s->store, key, text, len, &rev, &e);
        ck_admission_note_write(s, r);   /* after the write: a reader that sees the old
                                          * generation may have read the old state */
        ck_metrics_store("create", since(t0));
        if (rc == 0) {
            ck_quota_done(qlocked);
            ck_meta_set_rv(obj, rev);
            if (resp && ck_json_splice_rv(text, len, rev, resp) < 0)
                ck_buf_reset(resp);
            json_incref(obj);
            return obj;
        }
        if (e->code == CK_E_EXISTS && generated && attempt < 8) {
            ck_error_free(e);
            char sfx[6];
            ck_meta_random_suffix(sfx);
            char *n = xasprintf("%s%s", gen, sfx);
            json_object_set_new(m, "name", json_string(n));
            free(n);
            continue;
        }
        if (is_service(r))
            ck_service_release(s, obj, NULL);
        ck_quota_done(qlocked);
        if (qlocked)
            ck_quota_refresh(s, r, ns);   /* give back what was charged */
        if (e->code == CK_E_EXISTS) {
            ck_error_free(e);
            ck_err_exists(err, r, name);
        } else if (err) {
            *err = e;
        } else {
            ck_error_free(e);
        }
        return NULL;
    }
}

json_t *ck_rest_create_obj(ck_reqctx *c, const ck_resource *r, const char *ns, json_t *obj,
                           const ck_write_opts *o, ck_error **err)
{
    return create_obj(c, r, ns, obj, o, NULL, err);
}

/* json_equal of two objects' metadata without resourceVersion (and managedFields unless
 * with_mf), without copying them. */
static bool meta_equal(const json_t *a, const json_t *b, bool with_mf)
{
    if (!json_is_object(a) || !json_is_object(b))
        return json_equal(a, b);
    size_t na = 0, nb = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)a, k, v) {
        if (!strcmp(k, "resourceVersion") || (!with_mf && !strcmp(k, "managedFields")))
            continue;
        na++;
        if (!json_equal(v, json_object_get(b, k)))
            return false;
    }
    json_object_foreach((json_t *)b, k, v)
        if (strcmp(k, "resourceVersion") && (with_mf || strcmp(k, "managedFields")))
            nb++;
    return na == nb;
}

/* Equal ignoring what every write changes anyway (metadata.resourceVersion, and managedFields
 * unless with_managed_fields).  Compared in place: this runs on every update, and copying both
 * objects to delete those keys cost two deep copies of the object per write. */
static bool same_object(const json_t *a, const json_t *b, bool with_managed_fields)
{
    if (!json_is_object(a) || !json_is_object(b))
        return json_equal(a, b);
    if (json_object_size(a) != json_object_size(b))
        return false;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)a, k, v) {
        json_t *w = json_object_get(b, k);
        if (!w)
            return false;
        if (!strcmp(k, "metadata") ? !meta_equal(v, w, with_managed_fields) : !json_equal(v, w))
            return false;
    }
    return true;
}

/* A failed compare-and-swap write: the store's CONFLICT / NOT_FOUND become upstream's Status
 * texts for this object; anything else is passed up as it is.  Takes e; returns -1. */
static int store_write_error(ck_error *e, const ck_resource *r, const char *name, ck_error **err)
{
    if (e->code == CK_E_CONFLICT) {
        ck_error_free(e);
        return ck_err_conflict(err, r, name);
    }
    if (e->code == CK_E_NOT_FOUND) {
        ck_error_free(e);
        return ck_err_not_found(err, r, name);
    }
    return ck_error_pass(err, e);
}

static bool has_finalizers(const json_t *obj)
{
    return json_array_size(json_object_get(json_object_get(obj, "metadata"), "finalizers")) > 0;
}

static int store_update_resp(ck_apiserver *s, ck_reqctx *c, const ck_resource *r, json_t *obj,
                             int64_t expected, ck_buf *resp, ck_error **err);

int ck_rest_store_update(ck_apiserver *s, const ck_resource *r, json_t *obj, int64_t expected,
                        ck_error **err)
{
    return store_update_resp(s, NULL, r, obj, expected, NULL, err);
}

int ck_rest_store_update_text(ck_apiserver *s, const ck_resource *r, const char *ns,
                              const char *name, const char *text, size_t len, int64_t expected,
                              int64_t *rev, ck_error **err)
{
    cleanup_free char *key = ck_resource_key(r, ns, name);
    int64_t nrev = 0, t0 = ck_now_ns();
    ck_error *e = NULL;
    int rc = ck_store_update(s->store, key, text, len, expected, &nrev, &e);
    ck_admission_note_write(s, r);
    ck_metrics_store("update", since(t0));
    if (rc == 0) {
        if (rev)
            *rev = nrev;
        return 0;
    }
    return store_write_error(e, r, name, err);
}

/* ck_rest_store_update; on success resp (if given) gets the stored text with the new
 * resourceVersion spliced in: the answer, without printing the object a second time.  With c
 * and resp, the write may be handed to the store and answered by its completion (c->defer). */
static int store_update_resp(ck_apiserver *s, ck_reqctx *c, const ck_resource *r, json_t *obj,
                             int64_t expected, ck_buf *resp, ck_error **err)
{
    size_t len;
    cleanup_free char *text = ck_meta_dump_for_store(obj, &len);
    if (c && resp && ck_defer_can(c)) {
        const char *ns = ck_meta_str(obj, "namespace"), *name = ck_meta_str(obj, "name");
        char *key = ck_resource_key(r, ns, name);
        if (ck_defer_write(c, r, CK_STORE_UPDATE, name, key, text, len, expected, 200, false)) {
            text = NULL;
            return 0;
        }
        free(key);
    }
    int64_t rev = 0;
    if (ck_rest_store_update_text(s, r, ck_meta_str(obj, "namespace"), ck_meta_str(obj, "name"), text,
                                  len, expected, &rev, err) < 0)
        return -1;
    ck_meta_set_rv(obj, rev);
    if (resp && ck_json_splice_rv(text, len, rev, resp) < 0)
        ck_buf_reset(resp);
    return 0;
}

int ck_rest_store_delete(ck_apiserver *s, const ck_resource *r, const char *ns, const char *name,
                         int64_t expected, int64_t *rev, ck_error **err)
{
    cleanup_free char *key = ck_resource_key(r, ns, name);
    int64_t t0 = ck_now_ns();
    ck_error *e = NULL;
    int rc = ck_store_delete(s->store, key, expected, NULL, rev, &e);
    ck_admission_note_write(s, r);
    ck_metrics_store("delete", since(t0));
    if (rc == 0)
        return 0;
    return store_write_error(e, r, name, err);
}

bool ck_rest_should_finish(const ck_resource *r, const json_t *obj)
{
    if (!json_object_get(json_object_get(obj, "metadata"), "deletionTimestamp") || has_finalizers(obj))
        return false;
    if (is_core(r, "pods")) {
        /* the kubelet's grace-0 delete removes a pod; once that delete came (or the pod had no
         * node), removing the last finalizer does, as upstream */
        json_t *g = json_object_get(json_object_get(obj, "metadata"), "deletionGracePeriodSeconds");
        return json_is_integer(g) && json_integer_value(g) == 0;
    }
    /* a namespace also waits for spec.finalizers (the namespace controller's "kubernetes") */
    if (is_core(r, "namespaces"))
        return !json_array_size(json_object_get(json_object_get(obj, "spec"), "finalizers"));
    return true;
}

static bool new_finalizers_added(const json_t *obj, const json_t *old)
{
    json_t *of = json_object_get(json_object_get(old, "metadata"), "finalizers");
    size_t i, k;
    json_t *f, *g;
    json_array_foreach(json_object_get(json_object_get(obj, "metadata"), "finalizers"), i, f) {
        bool found = false;
        json_array_foreach(of, k, g)
            if (json_equal(f, g))
                found = true;
        if (!found)
            return true;
    }
    return false;
}

/* old with obj's status, for a status write: a new top level and metadata (the two levels this
 * path sets keys in) sharing every other value with old.  Nothing below changes a shared value in
 * place (ck_default only fills unset fields, which a stored object has), so old stays as read;
 * a deep copy of the whole pod here was a fifth of a kubelet status report's cost. */
static json_t *status_shell_of(const json_t *old, const json_t *obj)
{
    json_t *n = json_object();
    json_t *st = json_object_get(obj, "status");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)old, k, v) {
        if (!strcmp(k, "status")) {
            if (st)
                json_object_set(n, k, st);   /* in old's place, as a deep copy + set kept it */
        } else if (!strcmp(k, "metadata") && json_is_object(v)) {
            json_object_set_new(n, k, json_copy(v));
        } else {
            json_object_set(n, k, v);
        }
    }
    if (st && !json_object_get(n, "status"))
        json_object_set(n, "status", st);
    return n;
}

json_t *ck_rest_update_obj(ck_reqctx *c, const ck_resource *r, json_t *obj, json_t *old,
                           int64_t old_rev, const ck_write_opts *o, unsigned flags,
                           ck_buf *resp, ck_error **err)
{
    bool status_only = flags & CK_UPDATE_STATUS;
    ck_apiserver *s = c->srv;
    const char *name = ck_meta_str(old, "name");
    const char *ns = ck_meta_str(old, "namespace");
    const char *rv = ck_meta_str(obj, "resourceVersion");
    if (rv && *rv && strtoll(rv, NULL, 10) != old_rev) {
        ck_err_conflict(err, r, name);
        return NULL;
    }
    if (ck_rest_check_type(r, obj, err) < 0)
        return NULL;
    json_t *nobj;
    if (status_only) {
        /* status writes change status only (upstream resets metadata and spec to the old) */
        nobj = status_shell_of(old, obj);
    } else {
        /* the caller's own object (a patch result) is used as it is, else a copy */
        nobj = flags & CK_UPDATE_OWN ? json_incref(obj) : json_deep_copy(obj);
        if (ck_res_has_status(r)) {
            json_t *st = json_object_get(old, "status");
            if (st)
                json_object_set(nobj, "status", st);
            else
                json_object_del(nobj, "status");
        }
        if (!strcmp(r->resource, "namespaces")) {
            json_t *spec = json_object_get(nobj, "spec");
            json_t *of = json_object_get(json_object_get(old, "spec"), "finalizers");
            if (!json_is_object(spec)) {
                spec = json_object();
                json_object_set_new(nobj, "spec", spec);
            }
            if (of)
                json_object_set(spec, "finalizers", of);
        }
    }
    set_namespace(r, nobj, ns, NULL);
    json_object_set_new(ck_meta(nobj), "name", json_string(name));
    if (!strcmp(r->resource, "namespaces") && !r->group[0]) {
        /* upstream keeps this label equal to the name whatever an update says (a copy: the
         * labels may be old's, shared by a status write) */
        json_t *labels = json_object_get(ck_meta(nobj), "labels");
        labels = json_is_object(labels) ? json_copy(labels) : json_object();
        json_object_set_new(ck_meta(nobj), "labels", labels);
        json_object_set_new(labels, "kubernetes.io/metadata.name", json_string(name));
    }
    ck_default(r, nobj);
    if (!status_only && ck_admit_update(s, r, nobj, old, err) < 0) {
        json_decref(nobj);
        return NULL;
    }
    if (!status_only && is_core(r, "resourcequotas") &&
        !json_equal(json_object_get(json_object_get(nobj, "spec"), "hard"),
                    json_object_get(json_object_get(old, "status"), "hard")))
        ck_quota_fill_status(s, nobj);
    ck_meta_on_update(r, nobj, old);
    if (json_object_get(json_object_get(old, "metadata"), "deletionTimestamp") &&
        new_finalizers_added(nobj, old)) {
        json_t *causes = json_pack("[{s:s,s:s,s:s}]", "reason", "FieldValueForbidden", "message",
                                   "Forbidden: no new finalizers can be added if the object is "
                                   "being deleted", "field", "metadata.finalizers");
        invalid_from_causes(c, r, name, causes, err);
        json_decref(nobj);
        return NULL;
    }
    if (allocate_and_validate(c, r, nobj, old, name, err) < 0) {
        json_decref(nobj);
        return NULL;
    }
    /* an apply that only changed ownership is still a write; an Update's entry is recorded
     * below, after this check, so it is compared without managedFields */
    if (same_object(nobj, old, o->applied)) {
        /* a no-op write: upstream neither writes nor bumps resourceVersion */
        json_decref(nobj);
        json_incref(old);
        return old;
    }
    if (!o->applied) {
        if (status_only)
            ck_managed_fields_record_sub(nobj, old, o->manager, "Update",
                                         ck_resource_api_version(r), "status");
        else
            ck_managed_fields_record(nobj, old, o->manager, "Update", ck_resource_api_version(r));
    }
    bool finish = ck_rest_should_finish(r, nobj);
    if (o->dry_run) {
        if (is_service(r))
            ck_service_release(s, nobj, old);
        return nobj;
    }
    int rc;
    if (finish) {
        /* the last finalizer went away from an object being deleted: now it goes */
        int64_t rev = 0;
        rc = ck_rest_store_delete(s, r, ns, name, old_rev, &rev, err);
        if (rc == 0)
            ck_meta_set_rv(nobj, rev);
    } else {
        rc = store_update_resp(s, is_service(r) ? NULL : c, r, nobj, old_rev, resp, err);
    }
    if (rc < 0) {
        if (is_service(r))
            ck_service_release(s, nobj, old);
        json_decref(nobj);
        return NULL;
    }
    if (is_service(r))
        ck_service_release(s, old, finish ? NULL : nobj);
    if (finish)
        ck_quota_refresh(s, r, ns);
    return nobj;
}

void ck_rest_respond_update(ck_reqctx *c, int code, json_t *out, ck_buf *resp)
{
    if (c->defer) {
        json_decref(out);   /* the store's completion answers (writedefer.c) */
    } else if (resp->len) {
        json_decref(out);
        ck_respond_bytes(c, code, "application/json", resp->data, resp->len);
    } else {
        ck_respond_json(c, code, out);
    }
    ck_buf_free(resp);
}

/* ---- delete ---- */

static json_int_t opt_int(const json_t *opts, const char *k, json_int_t dflt)
{
    json_t *v = json_object_get(opts, k);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static void set_deletion(json_t *obj, int64_t grace)
{
    char ts[32];
    ck_rfc3339(ck_wall_ns() / 1000000000 + grace, ts);
    json_t *m = ck_meta(obj);
    json_object_set_new(m, "deletionTimestamp", json_string(ts));
    json_object_set_new(m, "deletionGracePeriodSeconds", json_integer(grace));
}

static void add_finalizer(json_t *obj, const char *f)
{
    json_t *m = ck_meta(obj);
    json_t *fs = json_object_get(m, "finalizers");
    if (!json_is_array(fs)) {
        fs = json_array();
        json_object_set_new(m, "finalizers", fs);
    }
    size_t i;
    json_t *v;
    json_array_foreach(fs, i, v)
        if (json_is_string(v) && !strcmp(json_string_value(v), f))
            return;
    json_array_append_new(fs, json_string(f));
}

json_t *ck_rest_delete_obj(ck_reqctx *c, const ck_resource *r, const char *ns, const char *name,
                           const json_t *opts, ck_error **err)
{
    ck_apiserver *s = c->srv;
    bool dry = false;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(opts, "dryRun"), i, v)
        if (json_is_string(v) && !strcmp(json_string_value(v), "All"))
            dry = true;
    const char *policy = json_string_value(json_object_get(opts, "propagationPolicy"));
    if (!policy && json_is_true(json_object_get(opts, "orphanDependents")))
        policy = "Orphan";
    for (int attempt = 0; attempt < CONFLICT_RETRIES; attempt++) {
        int64_t rev = 0;
        json_t *obj = ck_rest_read(s, r, ns, name, &rev, err);
        if (!obj)
            return NULL;
        json_t *pre = json_object_get(opts, "preconditions");
        const char *puid = json_string_value(json_object_get(pre, "uid"));
        const char *prv = json_string_value(json_object_get(pre, "resourceVersion"));
        const char *uid = ck_meta_str(obj, "uid");
        if (puid && uid && strcmp(puid, uid)) {
            ck_error_set(err, CK_E_CONFLICT,
                         "Precondition failed: UID in precondition: %s, UID in object meta: %s",
                         puid, uid);
            json_decref(obj);
            return NULL;
        }
        if (prv && strtoll(prv, NULL, 10) != rev) {
            ck_error_set(err, CK_E_CONFLICT,
                         "Precondition failed: ResourceVersion in precondition: %s, "
                         "ResourceVersion in object meta: %lld", prv, (long long)rev);
            json_decref(obj);
            return NULL;
        }
        json_t *m = ck_meta(obj);
        bool deleting = json_object_get(m, "deletionTimestamp") != NULL;
        bool keep = false;       /* the object stays with deletionTimestamp set */
        json_int_t grace = opt_int(opts, "gracePeriodSeconds", -1);

        if (!strcmp(r->resource, "namespaces") && !r->group[0]) {
            /* namespace lifecycle: Terminating until the namespace controller has emptied it
             * and removed the `kubernetes` finalizer from spec.finalizers */
            bool spec_fin = json_array_size(json_object_get(json_object_get(obj, "spec"),
                                                            "finalizers")) > 0;
            if (!deleting) {
                set_deletion(obj, 0);
                json_object_set_new(obj, "status", json_pack("{s:s}", "phase", "Terminating"));
                keep = true;
            } else if (spec_fin || has_finalizers(obj)) {
                json_decref(obj);
                return ck_rest_read(s, r, ns, name, NULL, err);
            }
        } else {
            if (policy && !strcmp(policy, "Foreground") && !deleting)
                add_finalizer(obj, "foregroundDeletion");
            else if (policy && !strcmp(policy, "Orphan") && !deleting)
                add_finalizer(obj, "orphan");
            bool pod = !strcmp(r->resource, "pods") && !r->group[0];
            const char *phase = json_string_value(json_object_get(json_object_get(obj, "status"),
                                                                  "phase"));
            const char *node = json_string_value(json_object_get(json_object_get(obj, "spec"),
                                                                 "nodeName"));
            bool terminal = phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed"));
            if (pod && grace < 0) {
                json_t *tg = json_object_get(json_object_get(obj, "spec"),
                                             "terminationGracePeriodSeconds");
                grace = json_is_integer(tg) ? json_integer_value(tg) : 30;
            }
            if (pod && node && *node && grace > 0 && !terminal) {
                /* graceful: the kubelet stops the containers, then deletes with grace 0 */
                if (!deleting) {
                    set_deletion(obj, grace);
                    keep = true;
                } else {
                    json_int_t cur = json_integer_value(json_object_get(m, "deletionGracePeriodSeconds"));
                    if (grace < cur) {
                        set_deletion(obj, grace);
                        keep = true;
                    } else {
                        return obj;
                    }
                }
            } else if (has_finalizers(obj)) {
                json_t *cur = json_object_get(m, "deletionGracePeriodSeconds");
                if (deleting && !(pod && grace == 0 && json_integer_value(cur) != 0)) {
                    return obj;
                }
                set_deletion(obj, 0);
                keep = true;
            }
        }
        if (keep) {
            if (ck_meta_has_generation(r))
                json_object_set_new(m, "generation",
                                    json_integer(json_integer_value(json_object_get(m, "generation")) + 1));
            if (dry)
                return obj;
            ck_error *e = NULL;
            /* answered by the store's completion (writedefer.c) where the caller allows it
             * (do_delete): the answer is the object printed with its new resourceVersion; a
             * conflict reruns the request */
            if (c->async_ok && ck_defer_can(c)) {
                size_t len;
                char *text = ck_meta_dump_for_store(obj, &len);
                c->async_retry = true;
                json_incref(obj);
                if (ck_defer_write_json(c, r, CK_STORE_UPDATE, name, ck_resource_key(r, ns, name),
                                        text, len, rev, obj, true))
                    return obj;
                json_decref(obj);
                free(text);
            }
            if (ck_rest_store_update(s, r, obj, rev, &e) < 0) {
                json_decref(obj);
                if (e->code == CK_E_CONFLICT) {
                    ck_error_free(e);
                    continue;
                }
                ck_error_pass(err, e);
                return NULL;
            }
            return obj;
        }
        json_t *details = json_pack("{s:s,s:s}", "name", name, "kind", r->resource);
        if (r->group[0])
            json_object_set_new(details, "group", json_string(r->group));
        if (uid)
            json_object_set_new(details, "uid", json_string(uid));
        json_t *answer = ck_status_json(200, NULL, NULL, details);
        /* the same for the removal, unless something must follow it on this thread (a
         * Service's addresses go back to the allocator, a ResourceQuota is recounted) */
        if (!dry && c->async_ok && !is_service(r) && !ck_quota_may_track(s, r, ns)) {
            c->async_retry = true;
            char *key = ck_resource_key(r, ns, name);
            json_incref(answer);
            if (ck_defer_write_json(c, r, CK_STORE_DELETE, name, key, NULL, 0, rev, answer, false)) {
                json_decref(obj);
                return answer;
            }
            free(key);
            json_decref(answer);   /* not taken: the reference given is dropped here */
        }
        if (!dry) {
            ck_error *e = NULL;
            int64_t drev = 0;
            if (ck_rest_store_delete(s, r, ns, name, rev, &drev, &e) < 0) {
                json_decref(obj);
                json_decref(answer);
                if (e->code == CK_E_CONFLICT) {
                    ck_error_free(e);
                    continue;
                }
                ck_error_pass(err, e);
                return NULL;
            }
            if (is_service(r))
                ck_service_release(s, obj, NULL);
            ck_quota_refresh(s, r, ns);
        }
        json_decref(obj);
        return answer;
    }
    ck_err_conflict(err, r, name);
    return NULL;
}

/* ---- the verbs ---- */

static const char *ns_of(ck_reqctx *c)
{
    return c->route.res->namespaced ? c->route.namespace_ : NULL;
}

static json_t *as_table_or_obj(ck_reqctx *c, json_t *obj)
{
    enum ck_accept_as as = ck_accept_as(c);
    if (as == CK_AS_PARTIAL) {
        json_t *p = ck_partial_metadata(obj);
        json_decref(obj);
        return p;
    }
    if (as != CK_AS_TABLE)
        return obj;
    json_t *items = json_pack("[O]", obj);
    cleanup_free char *inc = ck_query(c, "includeObject");
    const char *rv = ck_meta_str(obj, "resourceVersion");
    json_t *t = ck_table_wrap(c->route.res, items, inc, rv ? strtoll(rv, NULL, 10) : 0);
    json_decref(items);
    json_decref(obj);
    return t;
}

static void do_get(ck_reqctx *c)
{
    ck_error *e = NULL;
    json_t *obj = ck_rest_read(c->srv, c->route.res, ns_of(c), c->route.name, NULL, &e);
    if (!obj)
        return ck_respond_error(c, e);
    ck_respond_json(c, 200, as_table_or_obj(c, obj));
}

static void do_create(ck_reqctx *c)
{
    ck_error *e = NULL;
    const ck_resource *r = c->route.res;
    if (r->namespaced && !c->route.namespace_) {
        ck_error_set(&e, CK_E_METHOD, "the server does not allow this method on the requested resource");
        return ck_respond_error(c, e);
    }
    ck_write_opts o;
    cleanup_free char *mgr = NULL, *fv = NULL;
    if (ck_write_opts_from_query(c, &o, &mgr, &fv, &e) < 0)
        return ck_respond_error(c, e);
    json_t *dups = json_array();
    json_t *obj = ck_rest_body(c, dups, &e);
    if (!obj)
        e = ck_rest_unrecognized_body(c, r, e);
    if (!obj || ck_rest_check_fields(c, r, obj, dups, &o, &e) < 0) {
        json_decref(dups);
        json_decref(obj);
        return ck_respond_error(c, e);
    }
    json_decref(dups);
    ck_buf resp;
    ck_buf_init(&resp, 0);
    c->async_ok = true;   /* the answer is the stored text */
    json_t *out = create_obj(c, r, ns_of(c), obj, &o, &resp, &e);
    c->async_ok = false;
    json_decref(obj);
    if (!out) {
        ck_buf_free(&resp);
        return ck_respond_error(c, e);
    }
    if (c->defer) {
        json_decref(out);   /* the store's completion answers (writedefer.c) */
    } else if (resp.len) {
        json_decref(out);
        ck_respond_text(c, 201, "application/json", resp.data);
    } else {
        ck_respond_json(c, 201, out);
    }
    ck_buf_free(&resp);
}

int ck_rest_check_name(ck_reqctx *c, json_t *obj, ck_error **err)
{
    const char *name = ck_meta_str(obj, "name");
    if (name && *name && strcmp(name, c->route.name))
        return ck_error_set(err, CK_E_BAD_REQUEST,
                            "the name of the object (%s) does not match the name on the URL (%s)",
                            name, c->route.name);
    json_object_set_new(ck_meta(obj), "name", json_string(c->route.name));
    return set_namespace(c->route.res, obj, ns_of(c), err);
}

/* upstream's checkName on an update body: the name must be there and be the URL's, and a
 * namespace, when given, the request's (a patch result may leave the name to the URL). */
static int update_names(ck_reqctx *c, json_t *obj, ck_error **err)
{
    const char *name = ck_meta_str(obj, "name"), *ns = ck_meta_str(obj, "namespace");
    if (!name || !*name)
        return ck_error_set(err, CK_E_BAD_REQUEST, "the name of the object (%s based on URL) was "
                            "undeterminable: name must be provided", c->route.name);
    if (c->route.res->namespaced && ns && *ns && ns_of(c) && strcmp(ns, ns_of(c)))
        return ck_error_set(err, CK_E_BAD_REQUEST, "the namespace of the object (%s) does not match "
                            "the namespace on the request (%s)", ns, ns_of(c));
    return 0;
}

static bool allow_create_on_update(const ck_resource *r)
{
    static const char *const core = "endpoints events limitranges services";
    if (!r->group[0])
        return ck_word_in(core, r->resource);
    return !strcmp(r->group, "coordination.k8s.io") || !strcmp(r->group, "events.k8s.io") ||
           !strcmp(r->group, "rbac.authorization.k8s.io");
}

/* A read-modify-write attempt failed with *e: true to read again and retry (a conflict on a
 * write not pinned to a resourceVersion; *e is cleared), false to answer with *e - also after
 * the last attempt, so that a write that keeps losing the race gets its 409, never an empty 500. */
static bool retry_on_conflict(ck_error **e, bool pinned, int attempt)
{
    if (pinned || (*e)->code != CK_E_CONFLICT || attempt + 1 >= CONFLICT_RETRIES)
        return false;
    ck_error_free(*e);
    *e = NULL;
    return true;
}

void ck_rest_put(ck_reqctx *c, bool status_only)
{
    ck_error *e = NULL;
    const ck_resource *r = c->route.res;
    ck_write_opts o;
    cleanup_free char *mgr = NULL, *fv = NULL;
    if (ck_write_opts_from_query(c, &o, &mgr, &fv, &e) < 0)
        return ck_respond_error(c, e);
    json_t *dups = json_array();
    json_t *obj = ck_rest_body(c, dups, &e);
    if (!obj)
        e = ck_rest_unrecognized_body(c, r, e);
    if (!obj || update_names(c, obj, &e) < 0 || ck_rest_check_name(c, obj, &e) < 0 ||
        ck_rest_check_fields(c, r, obj, dups, &o, &e) < 0) {
        json_decref(dups);
        json_decref(obj);
        return ck_respond_error(c, e);
    }
    json_decref(dups);
    const char *rv = ck_meta_str(obj, "resourceVersion");
    bool conditional = rv && *rv;
    for (int attempt = 0; attempt < CONFLICT_RETRIES; attempt++) {
        int64_t rev = 0;
        json_t *old = ck_rest_read(c->srv, r, ns_of(c), c->route.name, &rev, &e);
        if (!old && e->code == CK_E_NOT_FOUND && !status_only && !conditional &&
            allow_create_on_update(r)) {
            /* upstream's AllowCreateOnUpdate kinds: PUT of a missing object creates it */
            ck_error_free(e);
            e = NULL;
            json_t *out = ck_rest_create_obj(c, r, ns_of(c), obj, &o, &e);
            if (out) {
                json_decref(obj);
                return ck_respond_json(c, 201, out);
            }
            if (e->code != CK_E_EXISTS)
                break;
            ck_error_free(e);     /* created meanwhile: update it */
            e = NULL;
            continue;
        }
        if (!old)
            break;
        bool done = ck_rest_update_answer(c, r, obj, old, rev, &o,
                                          status_only ? CK_UPDATE_STATUS : 0, !conditional, &e);
        json_decref(old);
        if (done) {
            json_decref(obj);
            return;
        }
        if (!retry_on_conflict(&e, conditional, attempt))
            break;
    }
    json_decref(obj);
    ck_respond_error(c, e);
}

bool ck_rest_update_answer(ck_reqctx *c, const ck_resource *r, json_t *obj, json_t *old,
                           int64_t old_rev, const ck_write_opts *o, unsigned flags, bool retry,
                           ck_error **err)
{
    ck_buf resp;
    ck_buf_init(&resp, 0);
    c->async_ok = true;
    c->async_retry = retry;
    json_t *out = ck_rest_update_obj(c, r, obj, old, old_rev, o, flags, &resp, err);
    c->async_ok = false;
    if (!out) {
        ck_buf_free(&resp);
        return false;
    }
    ck_rest_respond_update(c, 200, out, &resp);
    return true;
}

static int patch_type_of(ck_reqctx *c, enum ck_patch_type *t, ck_error **err)
{
    cleanup_free char *mt = ck_rest_media_type(ck_http_req_header(c->req, "Content-Type"));
    if (!strcmp(mt, "application/json-patch+json"))
        *t = CK_PATCH_JSON;
    else if (!strcmp(mt, "application/merge-patch+json"))
        *t = CK_PATCH_MERGE;
    else if (!strcmp(mt, "application/strategic-merge-patch+json"))
        *t = CK_PATCH_STRATEGIC;
    else if (!strcmp(mt, "application/apply-patch+yaml"))
        *t = CK_PATCH_APPLY;
    else
        return ck_error_set(err, CK_E_UNSUPPORTED_TYPE,
                            "the body of the request was in an unknown format - accepted media "
                            "types include: application/json-patch+json, "
                            "application/merge-patch+json, application/apply-patch+yaml, "
                            "application/strategic-merge-patch+json");
    return 0;
}

json_t *ck_rest_patch_apply(enum ck_patch_type t, const json_t *old, const json_t *patch,
                            const ck_resource *schema_res, const ck_write_opts *o, bool force,
                            ck_error **err)
{
    switch (t) {
    case CK_PATCH_JSON:
        return ck_patch_json(old, patch, err);
    case CK_PATCH_MERGE:
        return ck_patch_merge(old, patch, err);
    case CK_PATCH_STRATEGIC:
        return ck_patch_strategic(old, patch, schema_res, err);
    case CK_PATCH_APPLY:
        return ck_patch_apply(old, patch, schema_res, o->manager, force, err);
    }
    return NULL;
}

json_t *ck_rest_patch_body(ck_reqctx *c, enum ck_patch_type *t, ck_error **err)
{
    if (patch_type_of(c, t, err) < 0)
        return NULL;
    if (c->req->body_len > CK_MAX_BODY) {
        ck_error_set(err, CK_E_TOO_LARGE, "Request entity too large: limit is %u", CK_MAX_BODY);
        return NULL;
    }
    const char *ctype = ck_http_req_header(c->req, "Content-Type");
    json_t *p = ck_decode_body(ctype, c->req->body, c->req->body_len, NULL, err);
    if (!p)
        return NULL;
    if ((*t == CK_PATCH_JSON && !json_is_array(p)) || (*t != CK_PATCH_JSON && !json_is_object(p))) {
        json_decref(p);
        ck_error_set(err, CK_E_BAD_REQUEST,
                     *t == CK_PATCH_JSON ? "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
                                  : "the patch must be a JSON object");
        return NULL;
    }
    return p;
}

/* A Lease renewal on the stored text (leasetext.c): 1 answered, 0 declined (the tree path runs),
 * -1 with *err (a lost race: CONFLICT, retried by the caller as the tree path's). */
static int lease_renew(ck_reqctx *c, const ck_resource *r, const json_t *patch,
                       const ck_write_opts *o, ck_error **err)
{
    ck_kv kv = {0};
    if (ck_rest_read_text(c->srv, r, ns_of(c), c->route.name, &kv, err) < 0)
        return -1;
    char now[32];
    ck_rfc3339(ck_wall_ns() / 1000000000, now);
    ck_buf text, resp;
    ck_buf_init(&text, 0);
    ck_buf_init(&resp, 0);
    int rc = 0;
    int64_t rev = 0;
    if (ck_lease_renew_text(kv.value, kv.value_len, patch, o->manager, now, &text)) {
        /* answered by the store's completion (writedefer.c) with the same splice; a conflict
         * reruns the request (synchronously), as the caller retries one */
        c->async_ok = true;
        c->async_retry = true;
        if (ck_defer_can(c)) {
            size_t len = text.len;
            char *key = ck_resource_key(r, ns_of(c), c->route.name);
            char *owned = ck_buf_steal(&text);
            if (ck_defer_write(c, r, CK_STORE_UPDATE, c->route.name, key, owned, len,
                               kv.mod_revision, 200, false)) {
                c->async_ok = false;
                ck_kv_free(&kv);
                return 1;
            }
            free(key);
            ck_buf_add(&text, owned, len);
            free(owned);
        }
        c->async_ok = false;
        rc = ck_rest_store_update_text(c->srv, r, ns_of(c), c->route.name, text.data, text.len,
                                       kv.mod_revision, &rev, err) < 0 ? -1 : 1;
        /* the text has a metadata object (leasetext.c requires one): the splice succeeds */
        if (rc == 1 && ck_json_splice_rv(text.data, text.len, rev, &resp) == 0)
            ck_respond_bytes(c, 200, "application/json", resp.data, resp.len);
        else if (rc == 1)
            ck_respond_bytes(c, 200, "application/json", text.data, text.len);
    }
    ck_buf_free(&text);
    ck_buf_free(&resp);
    ck_kv_free(&kv);
    return rc;
}

static bool is_lease(const ck_resource *r)
{
    return !strcmp(r->group, "coordination.k8s.io") && !strcmp(r->resource, "leases");
}

static void do_patch(ck_reqctx *c)
{
    ck_error *e = NULL;
    const ck_resource *r = c->route.res;
    ck_write_opts o;
    cleanup_free char *mgr = NULL, *fv = NULL;
    enum ck_patch_type t;
    /* upstream: an unknown patch type (415), then the options, then the body */
    if (patch_type_of(c, &t, &e) < 0 || ck_write_opts_from_query(c, &o, &mgr, &fv, &e) < 0)
        return ck_respond_error(c, e);
    json_t *patch = ck_rest_patch_body(c, &t, &e);
    if (!patch)
        return ck_respond_error(c, e);
    bool force = ck_query_bool(c, "force");
    o.applied = t == CK_PATCH_APPLY;
    /* upstream types the applied configuration before it looks for conflicts */
    if (t == CK_PATCH_APPLY && ck_rest_check_types(c, r, patch, &o, &e) < 0) {
        json_decref(patch);
        return ck_respond_error(c, e);
    }
    for (int attempt = 0; attempt < CONFLICT_RETRIES; attempt++) {
        if (t == CK_PATCH_MERGE && !o.dry_run && is_lease(r)) {
            int lr = lease_renew(c, r, patch, &o, &e);
            if (lr > 0) {
                json_decref(patch);
                return;
            }
            if (lr < 0 && retry_on_conflict(&e, false, attempt))
                continue;
            if (lr < 0)
                break;
        }
        int64_t rev = 0;
        json_t *old = ck_rest_read(c->srv, r, ns_of(c), c->route.name, &rev, &e);
        if (!old && t == CK_PATCH_APPLY && e->code == CK_E_NOT_FOUND) {
            /* server-side apply creates */
            ck_error_free(e);
            e = NULL;
            json_t *obj = ck_patch_apply(NULL, patch, r, o.manager, force, &e);
            if (!obj || ck_rest_check_name(c, obj, &e) < 0 || ck_rest_check_fields(c, r, obj, NULL, &o, &e) < 0) {
                json_decref(obj);
                break;
            }
            json_t *out = ck_rest_create_obj(c, r, ns_of(c), obj, &o, &e);
            json_decref(obj);
            if (!out)
                break;
            json_decref(patch);
            return ck_respond_json(c, 201, out);
        }
        if (!old)
            break;
        json_t *obj = ck_rest_patch_apply(t, old, patch, r, &o, force, &e);
        if (!obj && e && e->code != CK_E_CONFLICT)
            c->no_details = true;     /* the patch itself is wrong: say why, not which object */
        if (!obj || ck_rest_check_name(c, obj, &e) < 0 || ck_rest_check_fields(c, r, obj, NULL, &o, &e) < 0) {
            json_decref(obj);
            json_decref(old);
            break;
        }
        const char *prv = ck_meta_str(obj, "resourceVersion");
        const char *orv = ck_meta_str(old, "resourceVersion");
        bool pinned = prv && orv && strcmp(prv, orv);
        /* merge and JSON patches build a tree of their own; the others may share values */
        unsigned fl = t == CK_PATCH_MERGE || t == CK_PATCH_JSON ? CK_UPDATE_OWN : 0;
        bool done = ck_rest_update_answer(c, r, obj, old, rev, &o, fl, !pinned, &e);
        json_decref(obj);
        json_decref(old);
        if (done) {
            json_decref(patch);
            return;
        }
        if (!retry_on_conflict(&e, pinned, attempt))
            break;
    }
    json_decref(patch);
    ck_respond_error(c, e);
}

/* upstream's ValidateDeleteOptions, in its order: orphanDependents with propagationPolicy,
 * the policy's value, then every dryRun value */
static int delete_options_check(ck_reqctx *c, const json_t *opts, ck_error **err)
{
    json_t *causes = json_array();
    json_t *pp = json_object_get(opts, "propagationPolicy");
    json_t *orphan = json_object_get(opts, "orphanDependents");
    const char *policy = json_string_value(pp);
    if (pp && !json_is_null(pp) && orphan && !json_is_null(orphan)) {
        cleanup_free char *q = ck_go_quote(policy ? policy : "");
        cleanup_free char *m = xasprintf("Invalid value: %s: orphanDependents and deletionPropagation "
                                         "cannot be both set", q);
        opt_cause(causes, "FieldValueInvalid", "propagationPolicy", m);
    }
    if (policy && strcmp(policy, "Foreground") && strcmp(policy, "Background") &&
        strcmp(policy, "Orphan")) {
        cleanup_free char *q = ck_go_quote(policy);
        cleanup_free char *m = xasprintf("Unsupported value: %s: supported values: \"Foreground\", "
                                         "\"Background\", \"Orphan\", \"nil\"", q);
        opt_cause(causes, "FieldValueNotSupported", "propagationPolicy", m);
    }
    json_t *dry = json_object_get(opts, "dryRun");
    size_t i;
    json_t *v;
    json_array_foreach(dry, i, v) {
        if (json_is_string(v) && !strcmp(json_string_value(v), "All"))
            continue;
        cleanup_free char *q = ck_go_quote(json_is_string(v) ? json_string_value(v) : "");
        cleanup_free char *m = xasprintf("Unsupported value: []string{%s}: supported values: \"All\"", q);
        opt_cause(causes, "FieldValueNotSupported", "dryRun", m);
        break;
    }
    if (!json_array_size(causes)) {
        json_decref(causes);
        return 0;
    }
    json_t *details = NULL;
    ck_options_invalid("DeleteOptions", causes, &details, err);
    json_decref(c->details);
    c->details = details;
    return -1;
}

json_t *ck_rest_delete_options(ck_reqctx *c, ck_error **err)
{
    json_t *opts = NULL;
    if (c->req->body_len) {
        opts = ck_rest_body(c, NULL, err);
        if (!opts)
            return NULL;
    } else {
        opts = json_object();
    }
    cleanup_free char *gp = ck_query(c, "gracePeriodSeconds");
    cleanup_free char *pp = ck_query(c, "propagationPolicy");
    cleanup_free char *dry = ck_query(c, "dryRun");
    if (gp && *gp) {
        int64_t grace = 0;
        cleanup_free char *why = NULL;
        if (ck_parse_go_int(gp, false, &grace, &why) < 0) {
            ck_error_set(err, CK_E_BAD_REQUEST, "%s", why);
            json_decref(opts);
            return NULL;
        }
        json_object_set_new(opts, "gracePeriodSeconds", json_integer(grace));
    }
    if (pp && *pp)
        json_object_set_new(opts, "propagationPolicy", json_string(pp));
    if (dry && *dry)
        json_object_set_new(opts, "dryRun", json_pack("[s]", dry));
    if (delete_options_check(c, opts, err) < 0) {
        json_decref(opts);
        return NULL;
    }
    return opts;
}

static void do_delete(ck_reqctx *c)
{
    ck_error *e = NULL;
    json_t *opts = ck_rest_delete_options(c, &e);
    if (!opts)
        return ck_respond_error(c, e);
    c->async_ok = true;   /* the answer is the stored object or a Status built before */
    json_t *out = ck_rest_delete_obj(c, c->route.res, ns_of(c), c->route.name, opts, &e);
    c->async_ok = false;
    json_decref(opts);
    if (!out)
        return ck_respond_error(c, e);
    if (c->defer)
        json_decref(out);   /* the store's completion answers (writedefer.c) */
    else
        ck_respond_json(c, 200, out);
}

void ck_rest_serve(ck_reqctx *c)
{
    const ck_route *rt = &c->route;
    const ck_resource *r = rt->res;
    if (!strcmp(r->group, "authentication.k8s.io") || !strcmp(r->group, "authorization.k8s.io") ||
        (!r->group[0] && !strcmp(r->resource, "bindings")))
        return ck_reviews_serve(c);
    if (ck_podproxy_handles(rt))
        return ck_podproxy_serve(c);   /* exec, attach, portforward: relayed to the kubelet */
    if (rt->subresource)
        return ck_subres_serve(c);
    ck_error *ae = NULL;   /* subresources such as log stream other media types */
    if (ck_accept_check(c, &ae) < 0)
        return ck_respond_error(c, ae);
    if (r->namespaced && rt->name && !rt->namespace_) {
        ck_error *e = NULL;
        ck_error_set(&e, CK_E_NOT_FOUND, "the server could not find the requested resource");
        return ck_respond_error(c, e);
    }
    switch (rt->verb) {
    case CK_VERB_GET: return do_get(c);
    case CK_VERB_LIST:
    case CK_VERB_DELETECOLLECTION: return ck_list_serve(c);
    case CK_VERB_WATCH: return ck_watch_serve(c);
    case CK_VERB_CREATE: return do_create(c);
    case CK_VERB_UPDATE: return ck_rest_put(c, false);
    case CK_VERB_PATCH: return do_patch(c);
    case CK_VERB_DELETE: return do_delete(c);
    default: break;
    }
    ck_error *e = NULL;
    ck_error_set(&e, CK_E_METHOD, "the server does not allow this method on the requested resource");
    ck_respond_error(c, e);
}
