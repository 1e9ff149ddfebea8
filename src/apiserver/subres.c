/* subres.c - subresources and the create-only review APIs:
 *   status      GET the object; PUT/PATCH change only .status
 *   scale       autoscaling/v1 Scale view of spec.replicas (deployments, replicasets,
 *               statefulsets, replicationcontrollers)
 *   binding     pods/NAME/binding and namespaces/NS/bindings: set spec.nodeName once (409 after)
 *   eviction    delete the pod (PodDisruptionBudgets are not consulted yet)
 *   finalize    namespaces/NAME/finalize: set spec.finalizers (the namespace controller's door)
 *   SelfSubjectReview, TokenReview, (Self)SubjectAccessReview, SelfSubjectRulesReview.
 * The proxying subresources (log, exec, attach, portforward, proxy) belong to a later issue. */
#include "apiserver/apiserver.h"
#include "apiserver/codec.h"
#include "apiserver/patch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *ns_of(ck_reqctx *c)
{
    return c->route.res->namespaced ? c->route.namespace_ : NULL;
}

static void respond_status_success(ck_reqctx *c, int code)
{
    ck_respond_success(c, code);
}

/* ---- scale ---- */

static char *selector_string(const json_t *sel, bool map_only)
{
    ck_buf b;
    ck_buf_init(&b, 64 * 1024);
    ck_buf_add(&b, "", 0);
    const json_t *ml = map_only ? sel : json_object_get(sel, "matchLabels");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)ml, k, v)
        ck_buf_printf(&b, "%s%s=%s", b.len ? "," : "", k, json_string_value(v) ?: "");
    if (!map_only) {
        size_t i;
        json_t *ex;
        json_array_foreach(json_object_get(sel, "matchExpressions"), i, ex) {
            const char *key = json_string_value(json_object_get(ex, "key")) ?: "";
            const char *op = json_string_value(json_object_get(ex, "operator")) ?: "";
            if (b.len)
                ck_buf_addstr(&b, ",");
            if (!strcmp(op, "Exists")) {
                ck_buf_addstr(&b, key);
            } else if (!strcmp(op, "DoesNotExist")) {
                ck_buf_printf(&b, "!%s", key);
            } else {
                ck_buf_printf(&b, "%s %s (", key, !strcmp(op, "In") ? "in" : "notin");
                size_t j;
                json_t *val;
                json_array_foreach(json_object_get(ex, "values"), j, val)
                    ck_buf_printf(&b, "%s%s", j ? "," : "", json_string_value(val) ?: "");
                ck_buf_addstr(&b, ")");
            }
        }
    }
    return ck_buf_steal(&b);
}

static json_t *to_scale(const ck_resource *r, const json_t *obj)
{
    const json_t *m = json_object_get(obj, "metadata");
    json_t *meta = json_object();
    static const char *const keep[] = {"name", "namespace", "uid", "resourceVersion",
                                       "creationTimestamp"};
    for (size_t i = 0; i < ARRAY_SIZE(keep); i++) {
        json_t *v = json_object_get(m, keep[i]);
        if (v)
            json_object_set(meta, keep[i], v);
    }
    const json_t *spec = json_object_get(obj, "spec");
    const json_t *status = json_object_get(obj, "status");
    json_t *rep = json_object_get(spec, "replicas");
    bool rc = !strcmp(r->resource, "replicationcontrollers");
    char *sel = selector_string(json_object_get(spec, "selector"), rc);
    json_t *st = json_pack("{s:I}", "replicas",
                           (json_int_t)json_integer_value(json_object_get(status, "replicas")));
    if (*sel)
        json_object_set_new(st, "selector", json_string(sel));
    free(sel);
    return json_pack("{s:s,s:s,s:o,s:{s:I},s:o}", "kind", "Scale", "apiVersion", "autoscaling/v1",
                     "metadata", meta, "spec", "replicas",
                     (json_int_t)(json_is_integer(rep) ? json_integer_value(rep) : 1), "status", st);
}

static bool scalable(const ck_resource *r)
{
    return ck_word_in("deployments replicasets statefulsets replicationcontrollers", r->resource);
}

/* Write scale.spec.replicas into the object. */
static json_t *apply_scale(ck_reqctx *c, const json_t *scale, json_t *old, int64_t rev,
                           ck_error **err)
{
    const ck_resource *r = c->route.res;
    const char *rv = ck_meta_str(scale, "resourceVersion");
    if (rv && *rv && strtoll(rv, NULL, 10) != rev) {
        ck_err_conflict(err, r, c->route.name);
        return NULL;
    }
    json_t *rep = json_object_get(json_object_get(scale, "spec"), "replicas");
    if (rep && !json_is_integer(rep)) {
        ck_error_set(err, CK_E_BAD_REQUEST, "spec.replicas must be an integer");
        return NULL;
    }
    json_int_t n = rep ? json_integer_value(rep) : 0;
    if (n < 0) {
        c->causes = json_pack("[{s:s,s:s,s:s}]", "reason", "FieldValueInvalid", "message",
                              "Invalid value: -1: must be greater than or equal to 0", "field",
                              "spec.replicas");
        ck_error_set(err, CK_E_INVALID, "Scale.autoscaling \"%s\" is invalid: spec.replicas: "
                     "Invalid value: %lld: must be greater than or equal to 0", c->route.name,
                     (long long)n);
        return NULL;
    }
    json_t *obj = json_deep_copy(old);
    json_t *spec = json_object_get(obj, "spec");
    if (!json_is_object(spec)) {
        spec = json_object();
        json_object_set_new(obj, "spec", spec);
    }
    json_object_set_new(spec, "replicas", json_integer(n));
    json_object_del(ck_meta(obj), "resourceVersion");
    ck_write_opts o;
    cleanup_free char *mgr = NULL, *fv = NULL;
    if (ck_write_opts_from_query(c, &o, &mgr, &fv, err) < 0) {
        json_decref(obj);
        return NULL;
    }
    json_t *out = ck_rest_update_obj(c, r, obj, old, rev, &o, CK_UPDATE_OWN, NULL, err);
    json_decref(obj);
    return out;
}

static void serve_scale(ck_reqctx *c)
{
    const ck_resource *r = c->route.res;
    ck_error *e = NULL;
    if (!scalable(r)) {
        ck_error_set(&e, CK_E_NOT_FOUND, "the server could not find the requested resource");
        return ck_respond_error(c, e);
    }
    json_t *in = NULL;
    enum ck_patch_type pt = CK_PATCH_MERGE;
    if (c->route.verb == CK_VERB_UPDATE)
        in = ck_rest_body(c, NULL, &e);
    else if (c->route.verb == CK_VERB_PATCH)
        in = ck_rest_patch_body(c, &pt, &e);
    else if (c->route.verb != CK_VERB_GET)
        ck_error_set(&e, CK_E_METHOD, "the server does not allow this method on the requested resource");
    if (e)
        return ck_respond_error(c, e);
    for (int attempt = 0; attempt < 8; attempt++) {
        int64_t rev = 0;
        json_t *old = ck_rest_read(c->srv, r, ns_of(c), c->route.name, &rev, &e);
        if (!old)
            break;
        if (c->route.verb == CK_VERB_GET) {
            json_t *sc = to_scale(r, old);
            json_decref(old);
            return ck_respond_json(c, 200, sc);
        }
        json_t *scale = in;
        bool own = false;
        if (c->route.verb == CK_VERB_PATCH) {
            json_t *cur = to_scale(r, old);
            ck_write_opts o = {.manager = "scale"};
            scale = ck_rest_patch_apply(pt, cur, in, r, &o, true, &e);
            json_decref(cur);
            own = true;
            if (!scale) {
                json_decref(old);
                break;
            }
        }
        json_t *out = apply_scale(c, scale, old, rev, &e);
        bool pinned = ck_meta_str(in, "resourceVersion") != NULL;
        if (own)
            json_decref(scale);
        json_decref(old);
        if (out) {
            json_decref(in);
            json_t *sc = to_scale(r, out);
            json_decref(out);
            return ck_respond_json(c, 200, sc);
        }
        if (pinned || e->code != CK_E_CONFLICT)
            break;
        ck_error_free(e);
        e = NULL;
    }
    json_decref(in);
    ck_respond_error(c, e);
}

/* ---- status ---- */

/* A merge patch that can only change .status (keys status/metadata/apiVersion/kind, status an
 * object): merge it into the old status alone and hand ck_rest_update_obj a shell holding that
 * status (+ the patch's resourceVersion precondition).  A status write keeps everything but
 * .status from the stored object anyway, so merging into a copy of the whole object (the general
 * path) only copied spec and metadata once more: one deep copy of the pod less per kubelet status
 * report.  NULL (nothing set) when the patch does not qualify. */
static bool status_merge_ok(const json_t *patch)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)patch, k, v)
        if (strcmp(k, "status") && strcmp(k, "metadata") && strcmp(k, "apiVersion") &&
            strcmp(k, "kind"))
            return false;
    const json_t *pmd = json_object_get(patch, "metadata");
    return json_is_object(json_object_get(patch, "status")) && (!pmd || json_is_object(pmd));
}

static json_t *status_merge_shell(const json_t *old, const json_t *patch, ck_error **err)
{
    if (!status_merge_ok(patch))
        return NULL;
    const json_t *pst = json_object_get(patch, "status");
    const json_t *pmd = json_object_get(patch, "metadata");
    const json_t *ost = json_object_get(old, "status");
    json_t *st = ck_patch_merge(json_is_object(ost) ? ost : NULL, pst, err);
    if (!st)
        return NULL;
    json_t *shell = json_pack("{s:o, s:{}}", "status", st, "metadata");
    static const char *const type_keys[] = {"apiVersion", "kind"};
    for (size_t i = 0; i < ARRAY_SIZE(type_keys); i++) {
        json_t *tv = json_object_get(patch, type_keys[i]);
        if (!tv)
            tv = json_object_get(old, type_keys[i]);
        if (tv)
            json_object_set(shell, type_keys[i], tv);
    }
    json_t *rv = json_object_get(pmd, "resourceVersion");
    if (rv)
        json_object_set(json_object_get(shell, "metadata"), "resourceVersion", rv);
    else
        json_object_set(json_object_get(shell, "metadata"), "resourceVersion",
                        json_object_get(json_object_get(old, "metadata"), "resourceVersion"));
    return shell;
}

static void serve_status(ck_reqctx *c)
{
    const ck_resource *r = c->route.res;
    ck_error *e = NULL;
    if (c->route.verb == CK_VERB_GET) {
        json_t *obj = ck_rest_read(c->srv, r, ns_of(c), c->route.name, NULL, &e);
        if (!obj)
            return ck_respond_error(c, e);
        return ck_respond_json(c, 200, obj);
    }
    if (c->route.verb == CK_VERB_UPDATE)
        return ck_rest_put(c, true);
    if (c->route.verb != CK_VERB_PATCH) {
        ck_error_set(&e, CK_E_METHOD, "the server does not allow this method on the requested resource");
        return ck_respond_error(c, e);
    }
    enum ck_patch_type pt;
    json_t *patch = ck_rest_patch_body(c, &pt, &e);
    if (!patch)
        return ck_respond_error(c, e);
    ck_write_opts o;
    cleanup_free char *mgr = NULL, *fv = NULL;
    if (ck_write_opts_from_query(c, &o, &mgr, &fv, &e) < 0) {
        json_decref(patch);
        return ck_respond_error(c, e);
    }
    bool force = ck_query_bool(c, "force");
    o.applied = pt == CK_PATCH_APPLY;
    /* a pod's spec and the stored managedFields' FieldsV1 only pass through a status merge:
     * kept as their stored text (codec.h; apply.c reads a FieldsV1 only if a path may be in it) */
    const char *raw = pt == CK_PATCH_MERGE && !r->group[0] && !strcmp(r->resource, "pods") &&
                      status_merge_ok(patch) ? CK_STATUS_RAW_KEYS : NULL;
    for (int attempt = 0; attempt < 8; attempt++) {
        int64_t rev = 0;
        json_t *old = ck_rest_read_raw(c->srv, r, ns_of(c), c->route.name, &rev, raw, &e);
        if (!old)
            break;
        json_t *obj = pt == CK_PATCH_MERGE ? status_merge_shell(old, patch, &e) : NULL;
        if (!obj && !e)
            obj = ck_rest_patch_apply(pt, old, patch, r, &o, force, &e);
        if (!obj || ck_rest_check_types(c, r, obj, &o, &e) < 0) {
            json_decref(obj);
            json_decref(old);
            break;
        }
        const char *prv = ck_meta_str(obj, "resourceVersion");
        const char *orv = ck_meta_str(old, "resourceVersion");
        bool pinned = prv && orv && strcmp(prv, orv);
        bool done = ck_rest_update_answer(c, r, obj, old, rev, &o, CK_UPDATE_STATUS, !pinned, &e);
        json_decref(obj);
        json_decref(old);
        if (done) {
            json_decref(patch);
            return;
        }
        if (pinned || e->code != CK_E_CONFLICT)
            break;
        ck_error_free(e);
        e = NULL;
    }
    json_decref(patch);
    ck_respond_error(c, e);
}

/* ---- binding ---- */

static void bind_pod(ck_reqctx *c, const char *ns, const char *name, const json_t *binding)
{
    const ck_resource *pods = ck_resource_find("", "v1", "pods");
    ck_error *e = NULL;
    const json_t *target = json_object_get(binding, "target");
    const char *node = json_string_value(json_object_get(target, "name"));
    const char *kind = json_string_value(json_object_get(target, "kind"));
    if (!node || !*node || (kind && *kind && strcmp(kind, "Node"))) {
        c->causes = json_pack("[{s:s,s:s,s:s}]", "reason", "FieldValueRequired", "message",
                              "Required value", "field", "target.name");
        ck_error_set(&e, CK_E_INVALID, "Binding \"%s\" is invalid: target.name: Required value",
                     name);
        return ck_respond_error(c, e);
    }
    cleanup_free char *dry = ck_query(c, "dryRun");
    bool dry_run = dry && !strcmp(dry, "All");
    for (int attempt = 0; attempt < 8; attempt++) {
        char ts[32];
        ck_rfc3339(ck_wall_ns() / 1000000000, ts);
        ck_kv kv = {0};
        if (ck_rest_read_text(c->srv, pods, ns, name, &kv, &e) < 0)
            break;
        int64_t rev = kv.mod_revision;
        char *assigned = NULL;
        ck_buf text;
        ck_buf_init(&text, 0);
        /* the stored text edited in place; the parsed pod only for shapes the edit declines */
        enum ck_bind_result br = ck_pod_bind_text(kv.value, kv.value_len, node, ts, &text, &assigned);
        json_t *pod = NULL;
        if (br == CK_BIND_DECLINE) {
            ck_buf_reset(&text);
            pod = json_loadb(kv.value, kv.value_len, 0, NULL);
            if (!json_is_object(pod)) {
                ck_error_set(&e, CK_E_CORRUPT, "stored object %s is not a JSON object", kv.key ? kv.key : name);
                json_decref(pod);
                ck_kv_free(&kv);
                ck_buf_free(&text);
                break;
            }
            br = ck_pod_bind_tree(pod, node, ts, &assigned);
        }
        ck_kv_free(&kv);
        if (br == CK_BIND_ASSIGNED || br == CK_BIND_DELETING) {
            if (br == CK_BIND_ASSIGNED)
                ck_error_set(&e, CK_E_CONFLICT, "Operation cannot be fulfilled on pods/binding \"%s\": "
                             "pod %s is already assigned to node \"%s\"", name, name, assigned);
            else
                ck_error_set(&e, CK_E_CONFLICT, "Operation cannot be fulfilled on pods/binding \"%s\": "
                             "pod %s is being deleted, cannot be assigned to a host", name, name);
            free(assigned);
            json_decref(pod);
            ck_buf_free(&text);
            break;
        }
        if (dry_run) {
            json_decref(pod);
            ck_buf_free(&text);
            return respond_status_success(c, 201);
        }
        c->async_ok = true;   /* the answer is a Status Success; a conflict is retried */
        c->async_retry = true;
        if (!pod && ck_defer_can(c)) {
            /* taken whenever ck_defer_can: a Status answer needs no splice */
            size_t len = text.len;
            ck_defer_write(c, pods, CK_STORE_UPDATE, name, ck_resource_key(pods, ns, name),
                           ck_buf_steal(&text), len, rev, 201, true);
            return;
        }
        c->async_ok = false;
        int rc;
        if (pod) {
            rc = ck_rest_store_update(c->srv, pods, pod, rev, &e);
            json_decref(pod);
        } else {
            rc = ck_rest_store_update_text(c->srv, pods, ns, name, text.data, text.len, rev, NULL, &e);
        }
        ck_buf_free(&text);
        if (rc == 0)
            return respond_status_success(c, 201);
        if (e->code != CK_E_CONFLICT)
            break;
        ck_error_free(e);
        e = NULL;
    }
    ck_respond_error(c, e);
}

/* ---- finalize ---- */

static void serve_finalize(ck_reqctx *c)
{
    const ck_resource *r = c->route.res;
    ck_error *e = NULL;
    if (c->route.verb != CK_VERB_UPDATE) {
        ck_error_set(&e, CK_E_METHOD, "the server does not allow this method on the requested resource");
        return ck_respond_error(c, e);
    }
    json_t *in = ck_rest_body(c, NULL, &e);
    if (!in)
        return ck_respond_error(c, e);
    int64_t rev = 0;
    json_t *ns = ck_rest_read(c->srv, r, NULL, c->route.name, &rev, &e);
    if (!ns) {
        json_decref(in);
        return ck_respond_error(c, e);
    }
    const char *rv = ck_meta_str(in, "resourceVersion");
    if (rv && *rv && strtoll(rv, NULL, 10) != rev) {
        json_decref(in);
        json_decref(ns);
        ck_err_conflict(&e, r, c->route.name);
        return ck_respond_error(c, e);
    }
    json_t *fin = json_object_get(json_object_get(in, "spec"), "finalizers");
    json_t *spec = json_object_get(ns, "spec");
    if (!json_is_object(spec)) {
        spec = json_object();
        json_object_set_new(ns, "spec", spec);
    }
    if (json_is_array(fin))
        json_object_set(spec, "finalizers", fin);
    else
        json_object_del(spec, "finalizers");
    json_decref(in);
    if (ck_rest_should_finish(r, ns)) {
        /* finalized and nothing else holds it: upstream's registry removes it on this write */
        int64_t drev = 0;
        if (ck_rest_store_delete(c->srv, r, NULL, c->route.name, rev, &drev, &e) < 0) {
            json_decref(ns);
            return ck_respond_error(c, e);
        }
        ck_meta_set_rv(ns, drev);
        return ck_respond_json(c, 200, ns);
    }
    if (ck_rest_store_update(c->srv, r, ns, rev, &e) < 0) {
        json_decref(ns);
        return ck_respond_error(c, e);
    }
    ck_respond_json(c, 200, ns);
}

/* The pod a TokenRequest's boundObjectRef names, checked as upstream: it exists, has the uid
 * given (if one is), and runs as the service account the token is for.  Only Pods are bindable
 * here (upstream also binds to Secrets and Nodes). */
static int bound_pod(ck_reqctx *c, const json_t *ref, json_t **out, ck_error **err)
{
    const char *kind = json_string_value(json_object_get(ref, "kind"));
    const char *av = json_string_value(json_object_get(ref, "apiVersion"));
    const char *name = json_string_value(json_object_get(ref, "name"));
    const char *uid = json_string_value(json_object_get(ref, "uid"));
    if (!kind || strcmp(kind, "Pod") || (av && *av && strcmp(av, "v1")))
        return ck_error_set(err, CK_E_BAD_REQUEST, "cannot bind token for serviceaccount \"%s\" "
                            "to object of kind %s/%s", c->route.name, av ? av : "", kind ? kind : "");
    if (!name || !*name)
        return ck_error_set(err, CK_E_BAD_REQUEST, "boundObjectRef.name is required");
    json_t *pod = ck_rest_read(c->srv, ck_resource_find("", "v1", "pods"), c->route.namespace_,
                               name, NULL, err);
    if (!pod)
        return -1;
    const char *puid = ck_meta_str(pod, "uid");
    const char *psa = json_string_value(json_object_get(json_object_get(pod, "spec"),
                                                        "serviceAccountName"));
    if (uid && *uid && (!puid || strcmp(uid, puid))) {
        json_decref(pod);
        return ck_error_set(err, CK_E_CONFLICT, "the UID in the bound object reference (%s) does "
                            "not match the UID in record. The object might have been deleted and "
                            "then recreated", uid);
    }
    if (strcmp(psa && *psa ? psa : "default", c->route.name)) {
        json_decref(pod);
        return ck_error_set(err, CK_E_BAD_REQUEST, "cannot bind token for serviceaccount \"%s\" "
                            "to pod running with different serviceaccount name.", c->route.name);
    }
    *out = pod;
    return 0;
}

/* serviceaccounts/NAME/token: TokenRequest (kubectl create token). */
static void serve_token(ck_reqctx *c)
{
    ck_error *e = NULL;
    json_t *in = ck_rest_body(c, NULL, &e);
    if (!in)
        return ck_respond_error(c, e);
    json_t *sa = ck_rest_read(c->srv, c->route.res, c->route.namespace_, c->route.name, NULL, &e);
    if (!sa) {
        json_decref(in);
        return ck_respond_error(c, e);
    }
    json_t *spec = json_object_get(in, "spec");
    if (!json_is_object(spec)) {
        spec = json_object();
        json_object_set_new(in, "spec", spec);
    }
    json_t *es = json_object_get(spec, "expirationSeconds");
    json_int_t secs = json_is_integer(es) ? json_integer_value(es) : 3600;
    if (secs < 600) {
        c->causes = json_pack("[{s:s,s:s,s:s}]", "reason", "FieldValueInvalid", "message",
                              "Invalid value: may not specify a duration less than 10 minutes",
                              "field", "spec.expirationSeconds");
        c->no_details = false;
        ck_error_set(&e, CK_E_INVALID, "TokenRequest.authentication.k8s.io \"%s\" is invalid: "
                     "spec.expirationSeconds: Invalid value: %lld: may not specify a duration less "
                     "than 10 minutes", c->route.name, (long long)secs);
        json_decref(sa);
        json_decref(in);
        return ck_respond_error(c, e);
    }
    json_object_set_new(spec, "expirationSeconds", json_integer(secs));
    json_t *bound = json_object_get(spec, "boundObjectRef");
    const char *pod = NULL, *pod_uid = NULL;
    json_t *pobj = NULL;
    if (json_is_object(bound) && bound_pod(c, bound, &pobj, &e) < 0) {
        json_decref(sa);
        json_decref(in);
        return ck_respond_error(c, e);
    }
    if (pobj) {
        pod = ck_meta_str(pobj, "name");
        pod_uid = ck_meta_str(pobj, "uid");
        json_object_set_new(bound, "uid", json_string(pod_uid ?: ""));
    }
    int64_t exp = 0;
    char *tok = ck_sa_token_issue(c->srv->sa_keys, c->route.namespace_, c->route.name,
                                  ck_meta_str(sa, "uid"), json_object_get(spec, "audiences"), secs,
                                  pod, pod_uid, &exp, &e);
    json_decref(pobj);
    json_decref(sa);
    if (!tok) {
        json_decref(in);
        return ck_respond_error(c, e);
    }
    char ts[32];
    ck_rfc3339(exp, ts);
    if (!json_array_size(json_object_get(spec, "audiences")))
        json_object_set_new(spec, "audiences", json_array());
    json_t *out = json_pack("{s:s,s:s,s:{s:s,s:s,s:n},s:O,s:{s:s,s:s}}", "kind", "TokenRequest",
                            "apiVersion", "authentication.k8s.io/v1", "metadata", "name",
                            c->route.name, "namespace", c->route.namespace_, "creationTimestamp",
                            "spec", spec, "status", "token", tok, "expirationTimestamp", ts);
    free(tok);
    json_decref(in);
    ck_respond_json(c, 201, out);
}

static void serve_eviction(ck_reqctx *c)
{
    ck_error *e = NULL;
    json_t *in = ck_rest_body(c, NULL, &e);
    if (!in)
        return ck_respond_error(c, e);
    json_t *opts = json_object_get(in, "deleteOptions");
    json_t *o = json_is_object(opts) ? json_incref(opts) : json_object();
    json_decref(in);
    json_t *out = ck_rest_delete_obj(c, c->route.res, ns_of(c), c->route.name, o, &e);
    json_decref(o);
    if (!out)
        return ck_respond_error(c, e);
    json_decref(out);
    respond_status_success(c, 201);
}

void ck_subres_serve(ck_reqctx *c)
{
    const char *sub = c->route.subresource;
    ck_error *e = NULL;
    if (c->route.res->namespaced && !c->route.namespace_) {
        ck_error_set(&e, CK_E_NOT_FOUND, "the server could not find the requested resource");
        return ck_respond_error(c, e);
    }
    if (!strcmp(sub, "status"))
        return serve_status(c);
    if (!strcmp(sub, "scale"))
        return serve_scale(c);
    if (!strcmp(sub, "finalize"))
        return serve_finalize(c);
    if (!strcmp(sub, "binding") && c->route.verb == CK_VERB_CREATE) {
        json_t *b = ck_rest_body(c, NULL, &e);
        if (!b)
            return ck_respond_error(c, e);
        bind_pod(c, c->route.namespace_, c->route.name, b);
        json_decref(b);
        return;
    }
    if (!strcmp(sub, "eviction") && c->route.verb == CK_VERB_CREATE)
        return serve_eviction(c);
    if (!strcmp(sub, "log") && !strcmp(c->route.res->resource, "pods") && !c->route.res->group[0])
        return ck_podlog_serve(c);
    if (!strcmp(sub, "token") && c->route.verb == CK_VERB_CREATE &&
        !strcmp(c->route.res->resource, "serviceaccounts"))
        return serve_token(c);
    ck_error_set(&e, CK_E_METHOD, "%s/%s is not served by this API server yet",
                 c->route.res->resource, sub);
    ck_respond_error(c, e);
}

/* ---- review APIs ---- */

static json_t *user_info(const ck_user *u)
{
    json_t *groups = json_array();
    for (size_t i = 0; i < u->ngroups; i++)
        json_array_append_new(groups, json_string(u->groups[i]));
    json_t *ui = json_pack("{s:s,s:o}", "username", u->name ? u->name : "", "groups", groups);
    if (u->uid && *u->uid)
        json_object_set_new(ui, "uid", json_string(u->uid));
    return ui;
}

static json_t *review_reply(const ck_resource *r, const json_t *in, json_t *status)
{
    json_t *out = json_pack("{s:s,s:s,s:{s:n},s:o}", "kind", r->kind, "apiVersion",
                            ck_resource_api_version(r), "metadata", "creationTimestamp", "status",
                            status);
    json_t *spec = json_object_get(in, "spec");
    if (spec)
        json_object_set(out, "spec", spec);
    return out;
}

void ck_reviews_serve(ck_reqctx *c)
{
    const ck_resource *r = c->route.res;
    ck_error *e = NULL;
    if (c->route.verb != CK_VERB_CREATE) {
        ck_error_set(&e, CK_E_METHOD, "the server does not allow this method on the requested resource");
        return ck_respond_error(c, e);
    }
    json_t *in = ck_rest_body(c, NULL, &e);
    if (!in)
        return ck_respond_error(c, e);
    json_t *status = NULL;
    if (!strcmp(r->resource, "bindings")) {
        const char *name = ck_meta_str(in, "name");
        if (!c->route.namespace_ || !name) {
            json_decref(in);
            ck_error_set(&e, CK_E_BAD_REQUEST, "a binding needs a namespace and metadata.name");
            return ck_respond_error(c, e);
        }
        free(c->route.name);
        c->route.name = xstrdup(name);
        bind_pod(c, c->route.namespace_, name, in);
        json_decref(in);
        return;
    }
    if (!strcmp(r->resource, "selfsubjectreviews")) {
        status = json_pack("{s:o}", "userInfo", user_info(&c->user));
    } else if (!strcmp(r->resource, "tokenreviews")) {
        const char *tok = json_string_value(json_object_get(json_object_get(in, "spec"), "token"));
        ck_user u = {0};
        ck_http_header h = {.name = "Authorization", .value = NULL};
        ck_http_req fake = {.headers = &h, .nheaders = 1};
        char *bearer = tok ? xasprintf("Bearer %s", tok) : NULL;
        h.value = bearer;
        /* the same authenticators as requests use (static tokens, service account JWTs) */
        if (tok && ck_authn(c->srv, &fake, &u, NULL) == 0) {
            status = json_pack("{s:b,s:o}", "authenticated", 1, "user", user_info(&u));
            ck_user_free(&u);
        } else {
            status = json_pack("{s:b,s:s}", "authenticated", 0, "error", "invalid bearer token");
        }
        free(bearer);
    } else if (!strcmp(r->resource, "selfsubjectrulesreviews")) {
        status = json_pack("{s:[{s:[s],s:[s],s:[s]}],s:[{s:[s],s:[s]}],s:b}", "resourceRules",
                           "verbs", "*", "apiGroups", "*", "resources", "*", "nonResourceRules",
                           "verbs", "*", "nonResourceURLs", "*", "incomplete", 0);
    } else {
        /* SelfSubjectAccessReview / SubjectAccessReview: ask the authorizer hook */
        const json_t *spec = json_object_get(in, "spec");
        const json_t *ra = json_object_get(spec, "resourceAttributes");
        const json_t *nra = json_object_get(spec, "nonResourceAttributes");
        ck_user subject = {0};
        if (!strcmp(r->resource, "subjectaccessreviews")) {
            subject.name = (char *)json_string_value(json_object_get(spec, "user"));
        }
        ck_authz_attrs a = {
            .user = subject.name ? &subject : &c->user,
            .verb = json_string_value(json_object_get(ra ? ra : nra, "verb")),
            .group = json_string_value(json_object_get(ra, "group")),
            .resource = json_string_value(json_object_get(ra, "resource")),
            .subresource = json_string_value(json_object_get(ra, "subresource")),
            .namespace_ = json_string_value(json_object_get(ra, "namespace")),
            .name = json_string_value(json_object_get(ra, "name")),
            .path = json_string_value(json_object_get(nra, "path")),
        };
        char *reason = NULL;
        bool ok = c->srv->authorize ? c->srv->authorize(c->srv->authorize_ctx, &a, &reason) : true;
        status = json_pack("{s:b}", "allowed", ok);
        if (reason)
            json_object_set_new(status, "reason", json_string(reason));
        free(reason);
    }
    json_t *out = review_reply(r, in, status);
    json_decref(in);
    ck_respond_json(c, 201, out);
}
