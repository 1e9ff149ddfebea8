/* serviceaccount.c - the ServiceAccount controller: every active namespace has a ServiceAccount
 * named "default" (recreated if deleted), as pods without spec.serviceAccountName use it. */
#include <string.h>

#include "controllers/cm.h"
#include "lib/util.h"

typedef struct sac {
    cm *m;
    ck_informer *nss, *sas;
    ck_workqueue *q;
} sac;

static void on_ns(void *ctx, json_t *ns)
{
    sac *c = ctx;
    ck_workqueue_add(c->q, cm_name(ns));
}

static void on_ns_update(void *ctx, json_t *old, json_t *ns)
{
    (void)old;
    on_ns(ctx, ns);
}

static void on_sa_delete(void *ctx, json_t *sa)
{
    sac *c = ctx;
    if (!strcmp(cm_name(sa), "default") && cm_ns(sa))
        ck_workqueue_add(c->q, cm_ns(sa));
}

static int sync_ns(void *self, const char *key, ck_error **err)
{
    sac *c = self;
    if (!cm_namespace_active(c->nss, key))
        return 0;
    json_t *sa = ck_informer_get(c->sas, key, "default");
    if (sa) {
        json_decref(sa);
        return 0;
    }
    json_t *obj = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind",
                            "ServiceAccount", "metadata", "name", "default", "namespace", key);
    ck_error *e = NULL;
    json_t *out = ck_client_create(cm_client(c->m), cm_res("", "serviceaccounts"), key, obj, &e);
    json_decref(obj);
    json_decref(out);
    if (!out) {
        /* exists already (our cache lags) or the namespace started terminating: done */
        if (e->code == CK_E_EXISTS || e->code == CK_E_FORBIDDEN || e->code == CK_E_NOT_FOUND) {
            ck_error_free(e);
            return 0;
        }
        *err = e;
        return -1;
    }
    return 0;
}

int cm_serviceaccount_init(cm *m)
{
    sac *c = xcalloc(1, sizeof *c);
    c->m = m;
    ck_informer_handlers nh = {on_ns, on_ns_update, NULL};
    c->nss = cm_informer(m, "", "namespaces", &nh, c);
    ck_informer_handlers sh = {NULL, NULL, on_sa_delete};
    c->sas = cm_informer(m, "", "serviceaccounts", &sh, c);
    c->q = cm_queue(m, "serviceaccount-controller", 2, sync_ns, c);
    return 0;
}
