/* endpointslice.c - the EndpointSlice controller: for every Service with a selector, slices
 * (discovery.k8s.io/v1, addressType IPv4, at most 100 endpoints each) labelled
 * kubernetes.io/service-name and endpointslice.kubernetes.io/managed-by, owned by the Service.
 * Unlike Endpoints, terminating pods stay listed with conditions ready=false, serving=<Ready>,
 * terminating=true, so proxies can drain them.  Endpoints with the same resolved ports share
 * slices.
 *
 * Reconciling minimizes churn as upstream's reconciler does, per port set: every existing slice
 * keeps the endpoints it has that are still wanted (updated in place when one changed; deleted
 * when none is left); new endpoints go first into slices being written anyway (up to 100), then
 * into new slices of 100 (reusing a slice that would be deleted instead of create + delete),
 * and a last remainder into the fullest unchanged slice it fits in, else a new slice.  Slices
 * are never rebalanced, so a slice may stay part full: one pod going away rewrites one slice.
 * A Service without endpoints keeps one empty slice.
 */
#include <stdlib.h>
#include <string.h>

#include "controllers/cm.h"
#include "lib/util.h"

#define SLICE_MAX 100
#define MANAGED_BY "endpointslice-controller.k8s.io"

typedef struct esc {
    cm *m;
    cm_service_keys keys;   /* services, pods, queue */
    ck_informer *slices;
} esc;

static void on_slice(void *ctx, json_t *s)
{
    esc *c = ctx;
    const char *svc = json_string_value(json_object_get(cm_get(s, "metadata.labels"),
                                                        "kubernetes.io/service-name"));
    if (svc && cm_ns(s)) {
        cleanup_free char *k = xasprintf("%s/%s", cm_ns(s), svc);
        ck_workqueue_add(c->keys.q, k);
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

/* Text key of a port list (the slice grouping). Caller frees. */
static char *port_key(const json_t *ports)
{
    return json_dumps(ports ? ports : json_array(), JSON_COMPACT | JSON_SORT_KEYS);
}

/* Identity of an endpoint across syncs: its pod (uid) and address. Caller frees. */
static char *ep_key(const json_t *ep)
{
    return xasprintf("%s|%s", cm_str(ep, "targetRef.uid") ?: cm_str(ep, "targetRef.name") ?: "",
                     json_string_value(json_array_get(json_object_get(ep, "addresses"), 0)) ?: "");
}

/* port key -> {ports, endpoints: {ep key: endpoint}} (endpoints in pod name order).  NEW. */
static json_t *desired_groups(esc *c, const json_t *svc)
{
    json_t *groups = json_object();
    json_t *pods = ck_informer_list(c->keys.pods);
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
        json_t *ports = cm_endpoint_ports(svc, pod, true);
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
    const char *k;
    json_t *g;
    json_object_foreach(groups, k, g) {
        json_t *eps = json_object_get(g, "endpoints"), *byk = json_object();
        cm_sort_array(eps, by_name);
        size_t x;
        json_t *ep;
        json_array_foreach(eps, x, ep) {
            char *ek = ep_key(ep);
            json_object_set(byk, ek, ep);
            free(ek);
        }
        json_object_set_new(g, "endpoints", byk);
    }
    return groups;
}

/* One slice in the plan: an existing one (obj) or a new one (obj NULL), with the endpoints it
 * should hold. */
typedef struct plan_slice {
    json_t *obj;        /* borrowed cached slice, or NULL = create */
    json_t *ports;      /* borrowed */
    json_t *eps;        /* owned array */
    bool dirty;
} plan_slice;

typedef struct plan {
    plan_slice *v;
    size_t n, cap;
    json_t *deletes;    /* cached slices to delete */
} plan;

static plan_slice *plan_add(plan *p, json_t *obj, json_t *ports, json_t *eps, bool dirty)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 8;
        p->v = xrealloc(p->v, p->cap * sizeof *p->v);
    }
    p->v[p->n] = (plan_slice){obj, ports, eps, dirty};
    return &p->v[p->n++];
}

/* Move up to `room` endpoints from the front of want (key -> endpoint) to the array eps. */
static void take(json_t *want, json_t *eps, size_t room)
{
    const char *k;
    json_t *ep;
    void *tmp;
    json_object_foreach_safe(want, tmp, k, ep) {
        if (!room--)
            break;
        json_array_append(eps, ep);
        json_object_del(want, k);
    }
}

/* Plan the slices of one port set: existing (theirs, cached) against want (key -> endpoint). */
static void plan_group(plan *p, json_t *ports, json_t *want, json_t *theirs, json_t *labels)
{
    size_t i;
    json_t *s;
    size_t first = p->n;
    json_t *recycle = json_array();
    json_array_foreach(theirs, i, s) {
        json_t *keep = json_array(), *ep;
        size_t j;
        bool changed = false;
        json_array_foreach(json_object_get(s, "endpoints"), j, ep) {
            char *k = ep_key(ep);
            json_t *w = json_object_get(want, k);
            if (w) {
                json_array_append(keep, w);
                changed |= !json_equal(w, ep);
                json_object_del(want, k);
            } else {
                changed = true;
            }
            free(k);
        }
        if (!json_array_size(keep)) {
            json_decref(keep);
            json_array_append(recycle, s);
            continue;
        }
        changed |= !json_equal(cm_get(s, "metadata.labels"), labels);
        plan_add(p, s, ports, keep, changed);
    }
    /* 1: fill the slices that are written anyway */
    for (i = first; i < p->n && json_object_size(want); i++)
        if (p->v[i].dirty && json_array_size(p->v[i].eps) < SLICE_MAX)
            take(want, p->v[i].eps, SLICE_MAX - json_array_size(p->v[i].eps));
    /* 2: whole new slices while the rest fits in no unchanged slice */
    for (;;) {
        size_t left = json_object_size(want), best = (size_t)-1;
        if (!left)
            break;
        for (i = first; i < p->n; i++)
            if (!p->v[i].dirty && json_array_size(p->v[i].eps) + left <= SLICE_MAX &&
                (best == (size_t)-1 || json_array_size(p->v[i].eps) > json_array_size(p->v[best].eps)))
                best = i;
        if (left < SLICE_MAX && best != (size_t)-1) {
            /* 3: the remainder into the fullest unchanged slice it fits in */
            take(want, p->v[best].eps, left);
            p->v[best].dirty = true;
            break;
        }
        json_t *eps = json_array();
        take(want, eps, SLICE_MAX);
        json_t *reuse = json_array_size(recycle) ? json_array_get(recycle, json_array_size(recycle) - 1) : NULL;
        plan_add(p, reuse, ports, eps, true);
        if (reuse)
            json_array_remove(recycle, json_array_size(recycle) - 1);
    }
    json_array_foreach(recycle, i, s)
        json_array_append(p->deletes, s);
    json_decref(recycle);
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
        ck_workqueue_add_after(c->keys.q, key, 100);
        return 0;
    }
    json_t *svc = ck_informer_get(c->keys.services, ns, name);

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
    cm_sort_array(mine, by_name);

    json_t *groups = desired_groups(c, svc);
    json_t *labels = json_deep_copy(cm_get(svc, "metadata.labels"));
    if (!labels)
        labels = json_object();
    json_object_set_new(labels, "kubernetes.io/service-name", json_string(name));
    json_object_set_new(labels, "endpointslice.kubernetes.io/managed-by", json_string(MANAGED_BY));

    /* existing slices by port set */
    json_t *theirs = json_object();
    json_array_foreach(mine, i, s) {
        char *pk = port_key(json_object_get(s, "ports"));
        if (!json_object_get(theirs, pk))
            json_object_set_new(theirs, pk, json_array());
        json_array_append(json_object_get(theirs, pk), s);
        free(pk);
    }
    plan p = {.deletes = json_array()};
    json_t *no_ports = json_array();
    const char *pk;
    json_t *g;
    json_object_foreach(groups, pk, g)
        plan_group(&p, json_object_get(g, "ports"), json_object_get(g, "endpoints"),
                   json_object_get(theirs, pk) ?: json_array(), labels);
    json_t *arr;
    json_object_foreach(theirs, pk, arr)
        if (!json_object_get(groups, pk))
            json_array_foreach(arr, i, s)
                json_array_append(p.deletes, s);
    if (!json_object_size(groups)) {
        /* no endpoints: one empty slice stays (the first existing one, or a new one) */
        json_t *keep = json_array_size(p.deletes) ? json_array_get(p.deletes, 0) : NULL;
        bool dirty = !keep || json_array_size(json_object_get(keep, "endpoints")) ||
                     json_array_size(json_object_get(keep, "ports")) ||
                     !json_equal(cm_get(keep, "metadata.labels"), labels);
        plan_add(&p, keep, no_ports, json_array(), dirty);
        if (keep)
            json_array_remove(p.deletes, 0);
    }

    size_t creating = 0;
    for (i = 0; i < p.n; i++)
        creating += !p.v[i].obj;
    if (creating)
        cm_expect(c->m, ek, (int)creating, NULL);
    for (i = 0; i < p.n && rc == 0; i++) {
        plan_slice *ps = &p.v[i];
        if (!ps->dirty)
            continue;
        json_t *obj, *out;
        if (ps->obj) {
            obj = json_deep_copy(ps->obj);
            json_object_set(obj, "endpoints", ps->eps);
            json_object_set(obj, "ports", ps->ports);
            json_object_set(json_object_get(obj, "metadata"), "labels", labels);
            out = ck_client_update(cm_client(c->m), sres, ns, obj, err);
        } else {
            cleanup_free char *gen = xasprintf("%s-", name);
            obj = json_pack("{s:s, s:s, s:{s:s, s:s, s:O, s:[o]}, s:s, s:O, s:O}", "apiVersion",
                            "discovery.k8s.io/v1", "kind", "EndpointSlice", "metadata",
                            "generateName", gen, "namespace", ns, "labels", labels,
                            "ownerReferences", cm_owner_ref(svc, true), "addressType", "IPv4",
                            "endpoints", ps->eps, "ports", ps->ports);
            /* Services from the informer carry kind/apiVersion, so the reference is complete */
            out = ck_client_create(cm_client(c->m), sres, ns, obj, err);
            if (!out)
                cm_observe_add(c->m, ek);
        }
        json_decref(obj);
        if (!out) {
            cm_expect_forget(c->m, ek);   /* the rest were never asked for */
            rc = -1;
        }
        json_decref(out);
    }
    json_array_foreach(p.deletes, i, s) {
        if (rc < 0)
            break;
        if (cm_delete(c->m, sres, ns, cm_name(s), cm_uid(s), NULL, err) < 0)
            rc = -1;
    }
    for (i = 0; i < p.n; i++)
        json_decref(p.v[i].eps);
    free(p.v);
    json_decref(p.deletes);
    json_decref(no_ports);
    json_decref(theirs);
    json_decref(labels);
    json_decref(groups);
    json_decref(mine);
    json_decref(svc);
    return rc;
}

int cm_endpointslice_init(cm *m)
{
    esc *c = xcalloc(1, sizeof *c);
    c->m = m;
    cm_service_keys_init(m, &c->keys, cm_queue(m, "endpointslice-controller", 4, sync_svc, c));
    ck_informer_handlers eh = {on_slice_add, on_slice_update, on_slice};
    c->slices = cm_informer(m, "discovery.k8s.io", "endpointslices", &eh, c);
    return 0;
}
