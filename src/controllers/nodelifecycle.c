/* nodelifecycle.c - the node lifecycle controller (with upstream's NoExecute taint manager).
 *
 * Health comes from the node's Lease in kube-node-lease: we note on OUR clock when its renewTime
 * last changed (so clock skew does not matter, as upstream).  A node not renewed for
 * --node-monitor-grace-period (40 s) gets its conditions set to Unknown ("Kubelet stopped posting
 * node status."), the node.kubernetes.io/unreachable taints (NoSchedule and NoExecute, with
 * timeAdded) and its pods' Ready conditions set to False.  A node that reports Ready=False gets the
 * not-ready taints instead.  When the node is healthy again, the taints go.
 *
 * Eviction: a pod on a node with NoExecute taints is deleted at once when it does not tolerate
 * one of them, else when the shortest matching tolerationSeconds has passed since the taint was
 * added (no tolerationSeconds = tolerated forever).  Admission gives pods 300 s by default.
 */
#include <pthread.h>
#include <string.h>

#include "controllers/cm.h"
#include "controllers/podindex.h"
#include "lib/log.h"
#include "lib/util.h"

#define UNREACHABLE "node.kubernetes.io/unreachable"
#define NOT_READY "node.kubernetes.io/not-ready"
#define COMPONENT "node-controller"

typedef struct nlc {
    cm *m;
    ck_informer *nodes, *leases, *pods;
    cm_podindex *on_node;   /* node -> its pods, from the pod informer */
    ck_workqueue *q;
    pthread_mutex_t lock;
    json_t *seen;      /* node -> [renewTime text, monotonic ms when it changed] */
} nlc;

static int64_t mono_ms(void)
{
    return ck_now_ns() / 1000000;
}

static void on_node(void *ctx, json_t *node)
{
    nlc *c = ctx;
    ck_workqueue_add(c->q, cm_name(node));
}

static void on_node_update(void *ctx, json_t *old, json_t *node)
{
    (void)old;
    on_node(ctx, node);
}

static void on_lease(void *ctx, json_t *lease)
{
    nlc *c = ctx;
    if (strcmp(cm_ns(lease) ?: "", "kube-node-lease"))
        return;
    const char *renew = cm_str(lease, "spec.renewTime") ?: "";
    pthread_mutex_lock(&c->lock);
    json_t *s = json_object_get(c->seen, cm_name(lease));
    bool changed = !s || strcmp(json_string_value(json_array_get(s, 0)) ?: "", renew);
    if (changed)
        json_object_set_new(c->seen, cm_name(lease), json_pack("[s, I]", renew, (json_int_t)mono_ms()));
    pthread_mutex_unlock(&c->lock);
    if (changed && !s)
        ck_workqueue_add(c->q, cm_name(lease));
}

static void on_lease_update(void *ctx, json_t *old, json_t *lease)
{
    (void)old;
    on_lease(ctx, lease);
}

static const char *cond_status(const json_t *node, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach(cm_get(node, "status.conditions"), i, c)
        if (!strcmp(cm_str(c, "type") ?: "", type))
            return cm_str(c, "status");
    return NULL;
}

static bool tolerates(const json_t *tol, const json_t *taint)
{
    const char *te = cm_str(tol, "effect");
    if (te && *te && strcmp(te, cm_str(taint, "effect") ?: ""))
        return false;
    const char *tk = cm_str(tol, "key");
    const char *op = cm_str(tol, "operator") ?: "Equal";
    if (!tk || !*tk)
        return !strcmp(op, "Exists");
    if (strcmp(tk, cm_str(taint, "key") ?: ""))
        return false;
    if (!strcmp(op, "Exists"))
        return true;
    return !strcmp(cm_str(tol, "value") ?: "", cm_str(taint, "value") ?: "");
}

/* Seconds after which pod must go for the NoExecute taints: 0 = now, -1 = never. */
static long evict_after(const json_t *pod, json_t *taints, int64_t now)
{
    long when = -1;   /* absolute seconds */
    size_t i, j;
    json_t *t, *tol;
    json_array_foreach(taints, i, t) {
        if (strcmp(cm_str(t, "effect") ?: "", "NoExecute"))
            continue;
        bool tolerated = false;
        long best = -1;     /* min tolerationSeconds of matching tolerations; -1 = forever */
        json_array_foreach(cm_get(pod, "spec.tolerations"), j, tol) {
            if (!tolerates(tol, t))
                continue;
            tolerated = true;
            json_t *s = json_object_get(tol, "tolerationSeconds");
            if (json_is_integer(s) && (best < 0 || json_integer_value(s) < best))
                best = (long)json_integer_value(s);
        }
        if (!tolerated)
            return 0;
        if (best >= 0) {   /* else every matching toleration is forever */
            int64_t added = cm_time(t, "timeAdded");
            long at = (long)((added ? added : now) + (best > 0 ? best : 0));
            if (when < 0 || at < when)
                when = at;
        }
    }
    if (when < 0)
        return -1;
    return when <= now ? 0 : when - (long)now;
}

/* Set (want=true) or clear the unreachable / not-ready NoExecute+NoSchedule taints. */
static int set_taints(nlc *c, const json_t *node, const char *key, bool want, ck_error **err)
{
    json_t *taints = cm_get(node, "spec.taints");
    json_t *out_taints = json_array();
    bool present = false, other = false;
    const char *other_key = !strcmp(key, UNREACHABLE) ? NOT_READY : UNREACHABLE;
    size_t i;
    json_t *t;
    json_array_foreach(taints, i, t) {
        const char *k = cm_str(t, "key") ?: "";
        if (!strcmp(k, key)) {
            present = true;
            if (want)
                json_array_append(out_taints, t);
        } else if (!strcmp(k, other_key) && want) {
            other = true;    /* the two are exclusive, as upstream swaps them */
        } else {
            json_array_append(out_taints, t);
        }
    }
    if (present == want && !other) {
        json_decref(out_taints);
        return 0;
    }
    if (want && !present) {
        char now[32];
        cm_now_str(now);
        json_array_append_new(out_taints, json_pack("{s:s, s:s}", "key", key, "effect", "NoSchedule"));
        json_array_append_new(out_taints, json_pack("{s:s, s:s, s:s}", "key", key, "effect",
                                                    "NoExecute", "timeAdded", now));
    }
    json_t *copy = json_deep_copy(node);
    if (!json_object_get(copy, "spec"))
        json_object_set_new(copy, "spec", json_object());
    if (json_array_size(out_taints))
        json_object_set_new(json_object_get(copy, "spec"), "taints", out_taints);
    else {   /* upstream omits an empty list */
        json_object_del(json_object_get(copy, "spec"), "taints");
        json_decref(out_taints);
    }
    json_t *out = ck_client_update(cm_client(c->m), cm_res("", "nodes"), NULL, copy, err);
    json_decref(copy);
    if (!out)
        return -1;
    json_decref(out);
    log_info("node %s: %s taint %s", cm_name(node), want ? "added" : "removed", key);
    return 0;
}

/* The cached pods the index puts on node, each checked again against the cache (the index and
 * the cache are read at different moments); NEW array. */
static json_t *pods_on(cm_podindex *idx, cm_pod_lookup get, void *ctx, const char *node)
{
    json_t *keys = cm_podindex_keys(idx, node), *out = json_array();
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        json_t *pod = get(ctx, json_string_value(k));
        if (pod && !strcmp(cm_str(pod, "spec.nodeName") ?: "", node))
            json_array_append(out, pod);
        json_decref(pod);
    }
    json_decref(keys);
    return out;
}

json_t *cm_nodelifecycle_not_ready(cm_podindex *idx, cm_pod_lookup get, void *ctx,
                                   const char *node)
{
    json_t *pods = pods_on(idx, get, ctx, node);
    for (size_t i = json_array_size(pods); i-- > 0;)
        if (!cm_pod_ready(json_array_get(pods, i)))
            json_array_remove(pods, i);
    return pods;
}

json_t *cm_nodelifecycle_evictions(cm_podindex *idx, cm_pod_lookup get, void *ctx,
                                   const char *node, json_t *taints, int64_t now, long *next)
{
    json_t *pods = pods_on(idx, get, ctx, node), *out = json_array();
    size_t i;
    json_t *pod;
    json_array_foreach(pods, i, pod) {
        if (cm_deleting(pod))
            continue;
        long after = evict_after(pod, taints, now);
        if (after == 0)
            json_array_append(out, pod);
        else if (after > 0 && (*next < 0 || after < *next))
            *next = after;
    }
    json_decref(pods);
    return out;
}

static json_t *cached_pod(void *ctx, const char *key)
{
    nlc *c = ctx;
    char *ns = NULL;
    const char *name = NULL;
    cm_split_key(key, &ns, &name);
    json_t *pod = ck_informer_get(c->pods, ns, name);
    free(ns);
    return pod;
}

static int mark_unknown(nlc *c, const json_t *node, ck_error **err)
{
    json_t *copy = json_deep_copy(node);
    char now[32];
    cm_now_str(now);
    size_t i;
    json_t *cond;
    json_array_foreach(cm_get(copy, "status.conditions"), i, cond) {
        if (!strcmp(cm_str(cond, "status") ?: "", "Unknown"))
            continue;
        json_object_set_new(cond, "status", json_string("Unknown"));
        json_object_set_new(cond, "reason", json_string("NodeStatusUnknown"));
        json_object_set_new(cond, "message", json_string("Kubelet stopped posting node status."));
        json_object_set_new(cond, "lastTransitionTime", json_string(now));
    }
    json_t *out = ck_client_update_status(cm_client(c->m), cm_res("", "nodes"), NULL, copy, err);
    json_decref(copy);
    if (!out)
        return -1;
    json_decref(out);
    cm_event(c->m, node, COMPONENT, "Normal", "NodeNotReady", "Node %s status is now: NodeNotReady",
             cm_name(node));
    /* pods on it are no longer ready */
    json_t *pods = cm_nodelifecycle_not_ready(c->on_node, cached_pod, c, cm_name(node));
    json_t *pod;
    json_array_foreach(pods, i, pod) {
        /* a strategic merge patch of the Ready condition alone (conditions merge by type): the
         * cached pod is trimmed (cm.c) to its Ready condition, so neither the pod nor its
         * condition list may be sent back whole */
        json_t *patch = json_pack("{s:{s:[{s:s, s:s, s:s}]}}", "status", "conditions", "type", "Ready",
                                  "status", "False", "lastTransitionTime", now);
        json_t *po = ck_client_patch(cm_client(c->m), cm_res("", "pods"), cm_ns(pod), cm_name(pod),
                                     "status", "application/strategic-merge-patch+json", patch, NULL);
        json_decref(po);
        json_decref(patch);
    }
    json_decref(pods);
    return 0;
}

static int evict(nlc *c, const json_t *node, const char *key, ck_error **err)
{
    json_t *taints = cm_get(node, "spec.taints");
    bool any = false;
    size_t i;
    json_t *t;
    json_array_foreach(taints, i, t)
        if (!strcmp(cm_str(t, "effect") ?: "", "NoExecute"))
            any = true;
    if (!any)
        return 0;
    long next = -1;
    json_t *pods = cm_nodelifecycle_evictions(c->on_node, cached_pod, c, cm_name(node), taints,
                                              cm_now(), &next);
    json_t *pod;
    int rc = 0;
    json_array_foreach(pods, i, pod) {
        cm_event(c->m, pod, "taint-eviction-controller", "Normal", "TaintManagerEviction",
                 "Marking for deletion Pod %s/%s", cm_ns(pod), cm_name(pod));
        if (cm_delete(c->m, cm_res("", "pods"), cm_ns(pod), cm_name(pod), cm_uid(pod), NULL, err) < 0) {
            rc = -1;
            break;
        }
    }
    json_decref(pods);
    if (next > 0)
        ck_workqueue_add_after(c->q, key, next * 1000 + 100);
    return rc;
}

static int sync_node(void *self, const char *key, ck_error **err)
{
    nlc *c = self;
    json_t *node = ck_informer_get(c->nodes, NULL, key);
    if (!node) {
        pthread_mutex_lock(&c->lock);
        json_object_del(c->seen, key);
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    pthread_mutex_lock(&c->lock);
    json_t *s = json_object_get(c->seen, key);
    if (!s) {   /* no lease seen yet: start the grace period now */
        s = json_pack("[s, I]", "", (json_int_t)mono_ms());
        json_object_set_new(c->seen, key, s);
    }
    int64_t since = json_integer_value(json_array_get(s, 1));
    pthread_mutex_unlock(&c->lock);
    int64_t age = mono_ms() - since;
    const char *ready = cond_status(node, "Ready");
    int rc = 0;
    if (age > cm_node_grace_ms) {
        if (ready && strcmp(ready, "Unknown"))
            rc = mark_unknown(c, node, err);
        if (rc == 0)
            rc = set_taints(c, node, UNREACHABLE, true, err);
    } else if (ready && !strcmp(ready, "False")) {
        rc = set_taints(c, node, NOT_READY, true, err);
    } else if (ready && !strcmp(ready, "True")) {
        rc = set_taints(c, node, UNREACHABLE, false, err);
        if (rc == 0)
            rc = set_taints(c, node, NOT_READY, false, err);
    }
    if (rc == 0)
        rc = evict(c, node, key, err);
    /* look again when the grace period would run out */
    int64_t left = cm_node_grace_ms - age;
    ck_workqueue_add_after(c->q, key, left > 0 ? left + 50 : cm_node_eviction_check_ms);
    json_decref(node);
    return rc;
}

int cm_nodelifecycle_init(cm *m)
{
    nlc *c = xcalloc(1, sizeof *c);
    c->m = m;
    pthread_mutex_init(&c->lock, NULL);
    c->seen = json_object();
    ck_informer_handlers nh = {on_node, on_node_update, on_node};
    c->nodes = cm_informer(m, "", "nodes", &nh, c);
    ck_informer_handlers lh = {on_lease, on_lease_update, NULL};
    c->leases = cm_informer(m, "coordination.k8s.io", "leases", &lh, c);
    c->on_node = cm_podindex_new();
    c->pods = cm_informer(m, "", "pods", &cm_podindex_handlers, c->on_node);
    c->q = cm_queue(m, COMPONENT, 2, sync_node, c);
    return 0;
}
