/* endpointslice.c - the EndpointSlice controller: for every Service with a selector, slices
 * (discovery.k8s.io/v1, addressType IPv4, at most 100 endpoints each) labelled
 * kubernetes.io/service-name and endpointslice.kubernetes.io/managed-by, owned by the Service.
 * Unlike Endpoints, terminating pods stay listed with conditions ready=false, serving=<Ready>,
 * terminating=true, so proxies can drain them.  Endpoints with the same resolved ports share a
 * slice; the desired chunks are matched to the existing slices in name order (update in place),
 * surplus slices are deleted and missing ones created (generateName "<service>-").
 */
#include <stdlib.h>
#include <string.h>

#include "controllers/cm.h"
#include "lib/util.h"

#define SLICE_MAX 100
#define MANAGED_BY "endpointslice-controller.k8s.io"

typedef struct esc {
    cm *m;
    ck_informer *svcs, *pods, *slices;
    ck_workqueue *q;
} esc;

static void on_svc(void *ctx, json_t *svc)
{
    esc *c = ctx;
    cleanup_free char *k = ck_informer_key(svc);
    ck_workqueue_add(c->q, k);
}

static void on_svc_update(void *ctx, json_t *old, json_t *svc)
{
    (void)old;
    on_svc(ctx, svc);
}

static void on_pod(void *ctx, json_t *pod)
{
    esc *c = ctx;
    cm_enqueue_services_for_pod(c->svcs, c->q, pod);
}

static void on_pod_update(void *ctx, json_t *old, json_t *pod)
{
    esc *c = ctx;
    if (!json_equal(cm_get(old, "metadata.labels"), cm_get(pod, "metadata.labels")))
        cm_enqueue_services_for_pod(c->svcs, c->q, old);
    cm_enqueue_services_for_pod(c->svcs, c->q, pod);
}

static void on_slice(void *ctx, json_t *s)
{
    esc *c = ctx;
    const char *svc = json_string_value(json_object_get(cm_get(s, "metadata.labels"),
                                                        "kubernetes.io/service-name"));
    if (svc && cm_ns(s)) {
        cleanup_free char *k = xasprintf("%s/%s", cm_ns(s), svc);
        ck_workqueue_add(c->q, k);
    }
}

/* A slice we created is now in the cache: the next sync may count it. */
static void on_slice_add(void *ctx, json_t *s)
{
    esc *c = ctx;
    const char *svc = json_string_value(json_object_get(cm_get(s, "metadata.labels"),
                                                        "kubernetes.io/service-name"));
    if (svc && cm_ns(s)) {
        cleanup_free char *ek = xasprintf("slice:%s/%s", cm_ns(s), svc);
        cm_observe_add(c->m, ek);
    }
    on_slice(ctx, s);
}

static void on_slice_update(void *ctx, json_t *old, json_t *s)
{
    (void)old;
    on_slice(ctx, s);
}

static int by_name(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int r = strcmp(cm_str(x, "targetRef.name") ?: "", cm_str(y, "targetRef.name") ?: "");
    return r ? r : strcmp(cm_name(x), cm_name(y));
}

static void sort_by(json_t *arr, int (*cmp)(const void *, const void *))
{
    size_t n = json_array_size(arr);
    if (n < 2)
        return;
    json_t **v = xcalloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(arr, i));
    qsort(v, n, sizeof *v, cmp);
    json_array_clear(arr);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, v[i]);
    free(v);
}

/* [{ports, endpoints}] chunks of at most SLICE_MAX endpoints.  NEW array. */
static json_t *desired_chunks(esc *c, const json_t *svc)
{
    json_t *groups = json_object();
    json_t *pods = ck_informer_list(c->pods);
    bool publish = cm_bool(svc, "spec.publishNotReadyAddresses", false);
    size_t i;
    json_t *pod;
    json_array_foreach(pods, i, pod) {
        if (strcmp(cm_ns(pod) ?: "", cm_ns(svc) ?: "") || !cm_service_selects(svc, pod))
            continue;
        const char *ip = cm_str(pod, "status.podIP");
        const char *phase = cm_str(pod, "status.phase");
        if (!ip || !*ip || (phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed"))))
            continue;
        json_t *ports = json_array();
        size_t j;
        json_t *sp;
        json_array_foreach(cm_get(svc, "spec.ports"), j, sp) {
            long port = cm_target_port(sp, pod);
            if (port <= 0)
                continue;
            json_t *p = json_pack("{s:s, s:I, s:s}", "name", cm_str(sp, "name") ?: "", "port",
                                  (json_int_t)port, "protocol", cm_str(sp, "protocol") ?: "TCP");
            if (cm_str(sp, "appProtocol"))
                json_object_set_new(p, "appProtocol", json_string(cm_str(sp, "appProtocol")));
            json_array_append_new(ports, p);
        }
        char *pk = json_dumps(ports, JSON_COMPACT | JSON_SORT_KEYS);
        json_t *g = json_object_get(groups, pk);
        if (!g) {
            g = json_pack("{s:O, s:[]}", "ports", ports, "endpoints");
            json_object_set_new(groups, pk, g);
        }
        free(pk);
        json_decref(ports);
        bool terminating = cm_deleting(pod), ready = cm_pod_ready(pod);
        json_t *ep = json_pack("{s:[s], s:{s:b, s:b, s:b}, s:{s:s, s:s, s:s, s:s}}", "addresses", ip,
                               "conditions", "ready", (publish || ready) && !terminating, "serving",
                               publish || ready, "terminating", terminating, "targetRef", "kind", "Pod",
                               "namespace", cm_ns(pod), "name", cm_name(pod), "uid", cm_uid(pod) ?: "");
        if (cm_str(pod, "spec.nodeName"))
            json_object_set_new(ep, "nodeName", json_string(cm_str(pod, "spec.nodeName")));
        json_array_append_new(json_object_get(g, "endpoints"), ep);
    }
    json_decref(pods);
    json_t *chunks = json_array();
    const char *k;
    json_t *g;
    json_object_foreach(groups, k, g) {
        json_t *eps = json_object_get(g, "endpoints");
        sort_by(eps, by_name);
        size_t n = json_array_size(eps);
        for (size_t off = 0; off < n || off == 0; off += SLICE_MAX) {
            json_t *part = json_array();
            for (size_t x = off; x < n && x < off + SLICE_MAX; x++)
                json_array_append(part, json_array_get(eps, x));
            json_array_append_new(chunks, json_pack("{s:O, s:o}", "ports", json_object_get(g, "ports"),
                                                    "endpoints", part));
            if (!n)
                break;
        }
    }
    json_decref(groups);
    if (!json_array_size(chunks))   /* a service without endpoints still has one empty slice */
        json_array_append_new(chunks, json_pack("{s:[], s:[]}", "ports", "endpoints"));
    return chunks;
}

static int sync_svc(void *self, const char *key, ck_error **err)
{
    esc *c = self;
    cleanup_free char *ns = NULL;
    const char *name;
    cm_split_key(key, &ns, &name);
    const ck_resource *sres = cm_res("discovery.k8s.io", "endpointslices");
    cleanup_free char *ek = xasprintf("slice:%s", key);
    if (!cm_expectations_met(c->m, ek)) {   /* slices we made are not all in the cache yet */
        ck_workqueue_add_after(c->q, key, 100);
        return 0;
    }
    json_t *svc = ck_informer_get(c->svcs, ns, name);

    /* our existing slices for this service, in name order */
    json_t *all = ck_informer_list(c->slices), *mine = json_array();
    size_t i;
    json_t *s;
    json_array_foreach(all, i, s) {
        json_t *labels = cm_get(s, "metadata.labels");
        if (!strcmp(cm_ns(s) ?: "", ns ? ns : "") &&
            !strcmp(json_string_value(json_object_get(labels, "kubernetes.io/service-name")) ?: "", name) &&
            !strcmp(json_string_value(json_object_get(labels, "endpointslice.kubernetes.io/managed-by")) ?: "",
                    MANAGED_BY))
            json_array_append(mine, s);
    }
    json_decref(all);
    int rc = 0;
    if (!svc || !json_object_size(cm_get(svc, "spec.selector"))) {
        /* the owner reference lets the garbage collector remove them; do it now anyway */
        if (!svc)
            json_array_foreach(mine, i, s)
                if (cm_delete(c->m, sres, ns, cm_name(s), cm_uid(s), NULL, err) < 0)
                    rc = -1;
        json_decref(mine);
        json_decref(svc);
        return rc;
    }
    size_t n = json_array_size(mine);
    json_t **v = xcalloc(n ? n : 1, sizeof *v);
    for (i = 0; i < n; i++)
        v[i] = json_array_get(mine, i);
    qsort(v, n, sizeof *v, by_name);

    json_t *chunks = desired_chunks(c, svc);
    json_t *labels = json_deep_copy(cm_get(svc, "metadata.labels"));
    if (!labels)
        labels = json_object();
    json_object_set_new(labels, "kubernetes.io/service-name", json_string(name));
    json_object_set_new(labels, "endpointslice.kubernetes.io/managed-by", json_string(MANAGED_BY));
    json_t *chunk;
    size_t creating = json_array_size(chunks) > n ? json_array_size(chunks) - n : 0;
    if (creating)
        cm_expect(c->m, ek, (int)creating, NULL);
    json_array_foreach(chunks, i, chunk) {
        json_t *obj, *out;
        if (i < n) {
            json_t *cur = v[i];
            if (json_equal(json_object_get(cur, "endpoints") ?: json_array(), json_object_get(chunk, "endpoints")) &&
                json_equal(json_object_get(cur, "ports") ?: json_array(), json_object_get(chunk, "ports")) &&
                json_equal(cm_get(cur, "metadata.labels"), labels))
                continue;
            obj = json_deep_copy(cur);
            json_object_set(obj, "endpoints", json_object_get(chunk, "endpoints"));
            json_object_set(obj, "ports", json_object_get(chunk, "ports"));
            json_object_set(json_object_get(obj, "metadata"), "labels", labels);
            out = ck_client_update(cm_client(c->m), sres, ns, obj, err);
        } else {
            cleanup_free char *gen = xasprintf("%s-", name);
            obj = json_pack("{s:s, s:s, s:{s:s, s:s, s:O, s:[o]}, s:s, s:O, s:O}", "apiVersion",
                            "discovery.k8s.io/v1", "kind", "EndpointSlice", "metadata",
                            "generateName", gen, "namespace", ns, "labels", labels,
                            "ownerReferences", cm_owner_ref(svc, true), "addressType", "IPv4",
                            "endpoints", json_object_get(chunk, "endpoints"), "ports",
                            json_object_get(chunk, "ports"));
            /* Services from the informer carry kind/apiVersion, so the reference is complete */
            out = ck_client_create(cm_client(c->m), sres, ns, obj, err);
            if (!out)
                cm_observe_add(c->m, ek);
        }
        json_decref(obj);
        if (!out) {
            cm_expect_forget(c->m, ek);   /* the rest were never asked for */
            rc = -1;
            break;
        }
        json_decref(out);
    }
    for (size_t k = json_array_size(chunks); rc == 0 && k < n; k++)
        if (cm_delete(c->m, sres, ns, cm_name(v[k]), cm_uid(v[k]), NULL, err) < 0)
            rc = -1;
    free(v);
    json_decref(labels);
    json_decref(chunks);
    json_decref(mine);
    json_decref(svc);
    return rc;
}

int cm_endpointslice_init(cm *m)
{
    esc *c = xcalloc(1, sizeof *c);
    c->m = m;
    ck_informer_handlers sh = {on_svc, on_svc_update, on_svc};
    c->svcs = cm_informer(m, "", "services", &sh, c);
    ck_informer_handlers ph = {on_pod, on_pod_update, on_pod};
    c->pods = cm_informer(m, "", "pods", &ph, c);
    ck_informer_handlers eh = {on_slice_add, on_slice_update, on_slice};
    c->slices = cm_informer(m, "discovery.k8s.io", "endpointslices", &eh, c);
    c->q = cm_queue(m, "endpointslice-controller", 4, sync_svc, c);
    return 0;
}
