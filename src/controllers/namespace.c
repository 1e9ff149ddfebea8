/* namespace.c - the Namespace controller: a namespace being deleted (phase Terminating, spec
 * finalizer "kubernetes") is emptied - every namespaced resource type is deleted by collection,
 * then listed until nothing is left (pods take their grace period) - and then finalized
 * (PUT .../finalize without "kubernetes"), after which the API server removes it.
 *
 * It goes through the public API only, so it sees exactly the resource types the server table
 * lists; a type that cannot be listed or deleted is skipped, not waited on forever.
 */
#include <string.h>

#include "controllers/cm.h"
#include "lib/log.h"
#include "lib/util.h"

typedef struct nsc {
    cm *m;
    ck_informer *nss;
    ck_workqueue *q;
} nsc;

static void on_ns(void *ctx, json_t *ns)
{
    nsc *c = ctx;
    if (cm_deleting(ns))
        ck_workqueue_add(c->q, cm_name(ns));
}

static void on_ns_update(void *ctx, json_t *old, json_t *ns)
{
    (void)old;
    on_ns(ctx, ns);
}

/* Delete everything of type r in ns; returns how many objects are left (-1 on error). */
static long empty_type(nsc *c, const ck_resource *r, const char *ns, ck_error **err)
{
    ck_client *cl = cm_client(c->m);
    cleanup_free char *path = ck_client_path(r, ns, NULL, NULL);
    if (ck_word_in(r->verbs, "deletecollection")) {
        ck_error *e = NULL;
        json_t *out = ck_client_request(cl, "DELETE", path, NULL, NULL, &e);
        json_decref(out);
        if (!out) {
            bool skip = e->code == CK_E_NOT_FOUND || e->code == CK_E_METHOD ||
                        e->code == CK_E_FORBIDDEN;
            if (!skip) {
                *err = e;
                return -1;
            }
            ck_error_free(e);
        }
    }
    cleanup_free char *lpath = xasprintf("%s?limit=500", path);
    ck_error *e = NULL;
    json_t *list = ck_client_request(cl, "GET", lpath, NULL, NULL, &e);
    if (!list) {
        bool skip = e->code == CK_E_NOT_FOUND || e->code == CK_E_METHOD || e->code == CK_E_FORBIDDEN;
        if (skip) {
            ck_error_free(e);
            return 0;
        }
        *err = e;
        return -1;
    }
    json_t *items = json_object_get(list, "items");
    long left = (long)json_array_size(items);
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
        if (!cm_deleting(it) && ck_word_in(r->verbs, "delete"))
            cm_delete(c->m, r, ns, cm_name(it), cm_uid(it), NULL, NULL);
    json_decref(list);
    return left;
}

static int finalize(nsc *c, const json_t *ns, ck_error **err)
{
    json_t *copy = json_deep_copy(ns);
    json_t *fins = json_array();
    size_t i;
    json_t *f;
    json_array_foreach(cm_get(ns, "spec.finalizers"), i, f)
        if (strcmp(json_string_value(f) ?: "", "kubernetes"))
            json_array_append(fins, f);
    json_object_set_new(json_object_get(copy, "spec"), "finalizers", fins);
    cleanup_free char *path = ck_client_path(cm_res("", "namespaces"), NULL, cm_name(ns), "finalize");
    json_t *out = ck_client_request(cm_client(c->m), "PUT", path, copy, NULL, err);
    json_decref(copy);
    if (!out) {
        if ((*err)->code == CK_E_NOT_FOUND) {
            ck_error_free(*err);
            *err = NULL;
            return 0;
        }
        return -1;
    }
    /* Upstream's registry removes a finalized namespace on this update; a server that keeps it
     * gets the DELETE again (what upstream's deleter does with deleteNamespaceWhenDone). */
    bool still = json_object_get(json_object_get(out, "metadata"), "deletionTimestamp") &&
                 !json_array_size(cm_get(out, "spec.finalizers")) &&
                 !json_array_size(cm_get(out, "metadata.finalizers"));
    json_decref(out);
    if (still)
        return cm_delete(c->m, cm_res("", "namespaces"), NULL, cm_name(ns), NULL, NULL, err);
    return 0;
}

static bool has_kubernetes_finalizer(const json_t *ns)
{
    size_t i;
    json_t *f;
    json_array_foreach(cm_get(ns, "spec.finalizers"), i, f)
        if (!strcmp(json_string_value(f) ?: "", "kubernetes"))
            return true;
    return false;
}

static int sync_ns(void *self, const char *key, ck_error **err)
{
    nsc *c = self;
    json_t *ns = ck_informer_get(c->nss, NULL, key);
    if (!ns || !cm_deleting(ns)) {
        json_decref(ns);
        return 0;
    }
    if (!has_kubernetes_finalizer(ns)) {   /* finalized but still there: see finalize() */
        int rc = 0;
        if (!json_array_size(cm_get(ns, "metadata.finalizers")))
            rc = cm_delete(c->m, cm_res("", "namespaces"), NULL, key, NULL, NULL, err);
        json_decref(ns);
        return rc;
    }
    long left = 0;
    for (size_t i = 0; i < ck_nresources; i++) {
        const ck_resource *r = &ck_resources[i];
        if (!r->namespaced || !ck_word_in(r->verbs, "list"))
            continue;
        long n = empty_type(c, r, key, err);
        if (n < 0) {
            json_decref(ns);
            return -1;
        }
        left += n;
    }
    int rc = 0;
    if (left > 0) {
        log_debug("namespace %s: %ld objects left", key, left);
        ck_workqueue_add_after(c->q, key, 1000);
    } else {
        rc = finalize(c, ns, err);
    }
    json_decref(ns);
    return rc;
}

int cm_namespace_init(cm *m)
{
    nsc *c = xcalloc(1, sizeof *c);
    c->m = m;
    ck_informer_handlers h = {on_ns, on_ns_update, NULL};
    c->nss = cm_informer(m, "", "namespaces", &h, c);
    c->q = cm_queue(m, "namespace-controller", 2, sync_ns, c);
    return 0;
}
