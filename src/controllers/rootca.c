/* rootca.c - the root-ca-cert-publisher controller: every active namespace has a ConfigMap
 * kube-root-ca.crt whose data["ca.crt"] is the CA that serves the API server, so pods can trust
 * it (the ServiceAccount admission plugin projects it into every pod's kube-api-access volume).
 * A deleted ConfigMap is recreated and an edited one is put back, as upstream does.  The CA is
 * --root-ca-file, else the certificate authority of the manager's kubeconfig (cm_root_ca); with
 * neither the controller does nothing. */
#include <string.h>

#include "controllers/cm.h"
#include "lib/util.h"

#define ROOT_CA_NAME "kube-root-ca.crt"
#define ROOT_CA_DESC                                                                           \
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "  \
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "  \
    "guaranteed across distributions of Kubernetes clusters."

char *cm_root_ca;

typedef struct rootca {
    cm *m;
    ck_informer *nss, *cms;
    ck_workqueue *q;
} rootca;

static void on_ns(void *ctx, json_t *ns)
{
    rootca *c = ctx;
    ck_workqueue_add(c->q, cm_name(ns));
}

static void on_ns_update(void *ctx, json_t *old, json_t *ns)
{
    (void)old;
    on_ns(ctx, ns);
}

static void on_cm(void *ctx, json_t *obj)
{
    rootca *c = ctx;
    if (!strcmp(cm_name(obj) ?: "", ROOT_CA_NAME) && cm_ns(obj))
        ck_workqueue_add(c->q, cm_ns(obj));
}

static void on_cm_update(void *ctx, json_t *old, json_t *obj)
{
    (void)old;
    on_cm(ctx, obj);
}

/* Create or correct one namespace's ConfigMap; done when the namespace is gone or terminating. */
static int sync_ns(void *self, const char *key, ck_error **err)
{
    rootca *c = self;
    if (!cm_namespace_active(c->nss, key))
        return 0;
    json_t *cur = ck_informer_get(c->cms, key, ROOT_CA_NAME);
    json_t *out = NULL;
    ck_error *e = NULL;
    if (!cur) {
        json_t *obj = json_pack("{s:s,s:s,s:{s:s,s:s,s:{s:s}},s:{s:s}}", "apiVersion", "v1",
                                "kind", "ConfigMap", "metadata", "name", ROOT_CA_NAME,
                                "namespace", key, "annotations", "kubernetes.io/description",
                                ROOT_CA_DESC, "data", "ca.crt", cm_root_ca);
        out = ck_client_create(cm_client(c->m), cm_res("", "configmaps"), key, obj, &e);
        json_decref(obj);
    } else {
        json_t *data = cm_get(cur, "data");
        bool same = json_object_size(data) == 1 &&
                    !strcmp(json_string_value(json_object_get(data, "ca.crt")) ?: "", cm_root_ca) &&
                    !json_object_size(cm_get(cur, "binaryData"));
        if (same) {
            json_decref(cur);
            return 0;
        }
        json_t *obj = json_deep_copy(cur);
        json_decref(cur);
        json_object_set_new(obj, "data", json_pack("{s:s}", "ca.crt", cm_root_ca));
        json_object_del(obj, "binaryData");
        out = ck_client_update(cm_client(c->m), cm_res("", "configmaps"), key, obj, &e);
        json_decref(obj);
    }
    if (out) {
        json_decref(out);
        return 0;
    }
    /* our cache lags (exists / conflict: the watch brings the object and requeues), or the
     * namespace started terminating: nothing more to do now */
    if (e->code == CK_E_EXISTS || e->code == CK_E_CONFLICT || e->code == CK_E_FORBIDDEN ||
        e->code == CK_E_NOT_FOUND) {
        ck_error_free(e);
        return 0;
    }
    *err = e;
    return -1;
}

int cm_rootca_init(cm *m)
{
    if (!cm_root_ca || !*cm_root_ca)
        return 0;   /* nothing to publish */
    rootca *c = xcalloc(1, sizeof *c);
    c->m = m;
    ck_informer_handlers nh = {on_ns, on_ns_update, NULL};
    c->nss = cm_informer(m, "", "namespaces", &nh, c);
    ck_informer_handlers ch = {on_cm, on_cm_update, on_cm};
    c->cms = cm_informer(m, "", "configmaps", &ch, c);
    c->q = cm_queue(m, "root-ca-cert-publisher", 2, sync_ns, c);
    return 0;
}
