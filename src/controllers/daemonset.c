/* daemonset.c - the DaemonSet controller: one pod per eligible node, as kube-controller-manager 1.33.
 *
 * A node should run a daemon pod when the template's nodeName, nodeSelector and required node
 * affinity match it and the pod tolerates its NoSchedule/NoExecute taints - with the tolerations
 * every daemon pod gets: not-ready/unreachable NoExecute, disk/memory/pid-pressure and
 * unschedulable NoSchedule, and network-unavailable NoSchedule for hostNetwork pods.  A pod
 * already on a node that stops qualifying only because of a NoSchedule taint keeps running
 * (counted in numberMisscheduled); an untolerated NoExecute taint or a selector/affinity change
 * removes it.  Pods are created as upstream does since 1.12: pinned with a required node affinity
 * on metadata.name (matchFields) and bound by the scheduler.  Surplus pods on a node go (the oldest
 * stays).  A Succeeded pod is deleted (SucceededDaemonPod); a Failed one too (FailedDaemonPod),
 * but as upstream's failedPodsBackoff: per set and node, the first kill at once, each further one
 * only after a delay that starts at 1 s and doubles up to 15 min (reset after 30 min without a
 * failure), so a pod the kubelet keeps refusing is not recreated in a hot loop.  A node whose pod
 * is being killed gets its replacement from the sync that sees the deletion.
 *
 * Each pod carries the controller-revision-hash of the template it was made from.  RollingUpdate
 * follows upstream's rollingUpdate: with maxSurge 0, old pods are deleted (unavailable ones
 * first, then while fewer than maxUnavailable nodes are unavailable) and recreated by the next
 * sync; with maxSurge > 0, a new pod is created next to the old one (at once where the old one is
 * unavailable, else while fewer than maxSurge nodes are surging) and the old pod is deleted once
 * the new one is available (minReadySeconds); a sync deletes before it creates, so no more than
 * desired + maxSurge pods run at once.  OnDelete replaces nothing: a pod deleted by the
 * user comes back from the current template.  Status (desired/current/ready/available/
 * unavailable/updated/misscheduled) is computed from the oldest pod of each node, as upstream.
 *
 * Every template gets a ControllerRevision <set>-<hash> (history.c), so `kubectl rollout
 * history/undo ds` work as upstream.
 *
 * Limits: no template-generation label matching (the revision hash alone says "updated").
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "controllers/cm.h"
#include "lib/log.h"
#include "lib/util.h"

#define COMPONENT "daemonset-controller"
#define HASH_LABEL "controller-revision-hash"

#define BACKOFF_INITIAL_MS 1000
#define BACKOFF_MAX_MS (15 * 60 * 1000)

typedef struct dsc {
    cm *m;
    ck_informer *sets, *nodes, *pods, *revs;
    ck_workqueue *q;
    pthread_mutex_t mu;        /* guards backoff (workers sync different sets at once) */
    json_t *backoff;           /* "<set uid>/<node>" -> [delay ms, last kill ms] */
    int64_t backoff_gc_ms;     /* when stale entries were last dropped */
} dsc;

/* Upstream's flowcontrol.Backoff as the DaemonSet controller uses it.  Returns 0 when a failed
 * pod on this node may be killed now (and starts the next, doubled delay), else the ms left. */
static int64_t backoff_take(dsc *c, const char *set_uid, const char *node, int64_t now_ms)
{
    cleanup_free char *key = xasprintf("%s/%s", set_uid, node);
    pthread_mutex_lock(&c->mu);
    if (now_ms - c->backoff_gc_ms > 60 * 1000) {   /* entries untouched for 2x the max go */
        const char *k;
        json_t *v, *tmp;
        json_object_foreach_safe(c->backoff, tmp, k, v)
            if (now_ms - json_integer_value(json_array_get(v, 1)) > 2 * BACKOFF_MAX_MS)
                json_object_del(c->backoff, k);
        c->backoff_gc_ms = now_ms;
    }
    json_t *e = json_object_get(c->backoff, key);
    int64_t delay = e ? json_integer_value(json_array_get(e, 0)) : 0;
    int64_t last = e ? json_integer_value(json_array_get(e, 1)) : 0;
    int64_t left = 0;
    if (e && now_ms - last < delay) {
        left = delay - (now_ms - last);
    } else {
        if (!e || now_ms - last > 2 * BACKOFF_MAX_MS)
            delay = BACKOFF_INITIAL_MS;
        else
            delay = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
        json_object_set_new(c->backoff, key, json_pack("[I, I]", (json_int_t)delay, (json_int_t)now_ms));
    }
    pthread_mutex_unlock(&c->mu);
    return left;
}

static void enqueue_set(dsc *c, const json_t *ds)
{
    cleanup_free char *k = ck_informer_key(ds);
    ck_workqueue_add(c->q, k);
}

static void on_ds(void *ctx, json_t *ds)
{
    enqueue_set(ctx, ds);
}

static void on_ds_update(void *ctx, json_t *old, json_t *ds)
{
    (void)old;
    enqueue_set(ctx, ds);
}

static void enqueue_all(dsc *c)
{
    json_t *all = ck_informer_list(c->sets);
    size_t i;
    json_t *ds;
    json_array_foreach(all, i, ds)
        enqueue_set(c, ds);
    json_decref(all);
}

static void on_node(void *ctx, json_t *node)
{
    (void)node;
    enqueue_all(ctx);
}

static void on_node_update(void *ctx, json_t *old, json_t *node)
{
    /* only what changes eligibility or availability matters */
    if (!json_equal(cm_get(old, "metadata.labels"), cm_get(node, "metadata.labels")) ||
        !json_equal(cm_get(old, "spec.taints"), cm_get(node, "spec.taints")))
        enqueue_all(ctx);
}

static void on_pod(void *ctx, json_t *pod)
{
    dsc *c = ctx;
    cleanup_free char *k = cm_owner_key(pod, "DaemonSet");
    if (!k)
        return;
    cleanup_free char *ek = xasprintf("ds:%s", k);
    if (!cm_deleting(pod))
        cm_observe_add(c->m, ek);
    ck_workqueue_add(c->q, k);
}

/* pod updates and deletions, revisions: the owner looks again */
static void on_owned(void *ctx, json_t *obj)
{
    dsc *c = ctx;
    cleanup_free char *k = cm_owner_key(obj, "DaemonSet");
    if (k)
        ck_workqueue_add(c->q, k);
}

static void on_owned_update(void *ctx, json_t *old, json_t *obj)
{
    (void)old;
    on_owned(ctx, obj);
}

/* ---------------------------------------------------------------- eligibility */

static bool expr_matches(const json_t *e, const char *value)
{
    const char *op = cm_str(e, "operator") ?: "";
    json_t *vals = json_object_get(e, "values");
    bool in = false;
    size_t i;
    json_t *v;
    json_array_foreach(vals, i, v)
        if (value && !strcmp(json_string_value(v) ?: "", value))
            in = true;
    if (!strcmp(op, "In"))
        return in;
    if (!strcmp(op, "NotIn"))
        return !in;
    if (!strcmp(op, "Exists"))
        return value != NULL;
    if (!strcmp(op, "DoesNotExist"))
        return value == NULL;
    if (!strcmp(op, "Gt") || !strcmp(op, "Lt")) {
        if (!value || !json_array_size(vals))
            return false;
        long a = atol(value), b = atol(json_string_value(json_array_get(vals, 0)) ?: "0");
        return !strcmp(op, "Gt") ? a > b : a < b;
    }
    return false;
}

static bool node_matches_template(const json_t *tmpl_spec, const json_t *node)
{
    json_t *labels = cm_get(node, "metadata.labels");
    const char *k;
    json_t *v;
    json_object_foreach(cm_get(tmpl_spec, "nodeSelector"), k, v)
        if (!json_equal(json_object_get(labels, k), v))
            return false;
    json_t *terms = cm_get(tmpl_spec,
                           "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms");
    if (!json_array_size(terms))
        return true;
    size_t i, j;
    json_t *t, *e;
    json_array_foreach(terms, i, t) {   /* terms are ORed, expressions ANDed */
        bool all = true;
        json_array_foreach(json_object_get(t, "matchExpressions"), j, e)
            all = all && expr_matches(e, json_string_value(json_object_get(labels, cm_str(e, "key") ?: "")));
        json_array_foreach(json_object_get(t, "matchFields"), j, e)
            all = all && (!strcmp(cm_str(e, "key") ?: "", "metadata.name")
                              ? expr_matches(e, cm_name(node)) : false);
        if (all)
            return true;
    }
    return false;
}

static bool tolerated(const json_t *tols, const json_t *taint)
{
    size_t i;
    json_t *t;
    json_array_foreach(tols, i, t) {
        const char *te = cm_str(t, "effect");
        if (te && *te && strcmp(te, cm_str(taint, "effect") ?: ""))
            continue;
        const char *tk = cm_str(t, "key"), *op = cm_str(t, "operator") ?: "Equal";
        if (!tk || !*tk) {
            if (!strcmp(op, "Exists"))
                return true;
            continue;
        }
        if (strcmp(tk, cm_str(taint, "key") ?: ""))
            continue;
        if (!strcmp(op, "Exists") || !strcmp(cm_str(t, "value") ?: "", cm_str(taint, "value") ?: ""))
            return true;
    }
    return false;
}

/* The tolerations a daemon pod gets on top of its template's. NEW array. */
static json_t *daemon_tolerations(const json_t *tmpl_spec)
{
    json_t *tols = cm_copy_array(tmpl_spec, "tolerations");
    static const struct { const char *key, *effect; } add[] = {
        {"node.kubernetes.io/not-ready", "NoExecute"}, {"node.kubernetes.io/unreachable", "NoExecute"},
        {"node.kubernetes.io/disk-pressure", "NoSchedule"}, {"node.kubernetes.io/memory-pressure", "NoSchedule"},
        {"node.kubernetes.io/pid-pressure", "NoSchedule"}, {"node.kubernetes.io/unschedulable", "NoSchedule"},
        {"node.kubernetes.io/network-unavailable", "NoSchedule"},
    };
    size_t n = ARRAY_SIZE(add) - 1;
    if (cm_bool(tmpl_spec, "hostNetwork", false))
        n++;   /* the last one: only host-network pods run without the pod network */
    for (size_t i = 0; i < n; i++) {
        json_t *taint = json_pack("{s:s, s:s}", "key", add[i].key, "effect", add[i].effect);
        if (!tolerated(tols, taint))
            json_array_append_new(tols, json_pack("{s:s, s:s, s:s}", "key", add[i].key, "operator",
                                                  "Exists", "effect", add[i].effect));
        json_decref(taint);
    }
    return tols;
}

/* NodeShouldRunDaemonPod: *run = a new pod belongs there (name, selector, affinity, NoSchedule
 * and NoExecute taints tolerated); *stay = a pod already there may keep running (only an
 * untolerated NoExecute taint evicts it). */
static void should_run(const json_t *tmpl_spec, const json_t *tols, const json_t *node, bool *run, bool *stay)
{
    const char *want_node = cm_str(tmpl_spec, "nodeName");
    *run = *stay = false;
    if ((want_node && *want_node && strcmp(want_node, cm_name(node))) || !node_matches_template(tmpl_spec, node))
        return;
    *run = *stay = true;
    size_t i;
    json_t *t;
    json_array_foreach(cm_get(node, "spec.taints"), i, t) {
        const char *eff = cm_str(t, "effect") ?: "";
        if ((!strcmp(eff, "NoSchedule") || !strcmp(eff, "NoExecute")) && !tolerated(tols, t)) {
            *run = false;
            if (!strcmp(eff, "NoExecute"))
                *stay = false;
        }
    }
}

/* The node a daemon pod is for: spec.nodeName, else its matchFields pin. */
static const char *pod_node(const json_t *pod)
{
    const char *n = cm_str(pod, "spec.nodeName");
    if (n && *n)
        return n;
    json_t *terms = cm_get(pod, "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms");
    size_t i, j;
    json_t *t, *e;
    json_array_foreach(terms, i, t)
        json_array_foreach(json_object_get(t, "matchFields"), j, e)
            if (!strcmp(cm_str(e, "key") ?: "", "metadata.name") && !strcmp(cm_str(e, "operator") ?: "", "In"))
                return json_string_value(json_array_get(json_object_get(e, "values"), 0));
    return NULL;
}

/* ---------------------------------------------------------------- sync */

static json_t *daemon_pod(const json_t *ds, const char *node, const char *hash, const json_t *tols)
{
    json_t *tmpl = cm_get(ds, "spec.template");
    cleanup_free char *gen = xasprintf("%s-", cm_name(ds));
    json_t *labels = cm_copy_object(tmpl, "metadata.labels");
    json_object_set_new(labels, HASH_LABEL, json_string(hash));
    char g[32];
    snprintf(g, sizeof g, "%lld", cm_int(ds, "metadata.generation", 1));
    json_object_set_new(labels, "pod-template-generation", json_string(g));
    json_t *md = json_pack("{s:s, s:s, s:o, s:[o]}", "generateName", gen, "namespace", cm_ns(ds),
                           "labels", labels, "ownerReferences", cm_owner_ref(ds, true));
    if (cm_get(tmpl, "metadata.annotations"))
        json_object_set_new(md, "annotations", json_deep_copy(cm_get(tmpl, "metadata.annotations")));
    json_t *spec = cm_copy_object(tmpl, "spec");
    json_object_set(spec, "tolerations", (json_t *)tols);
    /* pin to the node (replacing any nodeAffinity the template had: it was checked already) */
    json_t *aff = json_object_get(spec, "affinity");
    if (!aff) {
        aff = json_object();
        json_object_set_new(spec, "affinity", aff);
    }
    json_object_set_new(aff, "nodeAffinity", json_pack(
        "{s:{s:[{s:[{s:s, s:s, s:[s]}]}]}}", "requiredDuringSchedulingIgnoredDuringExecution",
        "nodeSelectorTerms", "matchFields", "key", "metadata.name", "operator", "In", "values", node));
    return json_pack("{s:s, s:s, s:o, s:o}", "apiVersion", "v1", "kind", "Pod", "metadata", md,
                     "spec", spec);
}

typedef struct work {
    dsc *c;
    const json_t *ds;
    const char *ek, *hash;
    const json_t *tols;
    json_t *nodes;      /* names to create on */
    json_t *victims;    /* pods to delete */
} work;

static int create_on(void *arg, int i)
{
    work *w = arg;
    const char *node = json_string_value(json_array_get(w->nodes, (size_t)i));
    json_t *pod = daemon_pod(w->ds, node, w->hash, w->tols);
    ck_error *e = NULL;
    json_t *out = ck_client_create(cm_client(w->c->m), cm_res("", "pods"), cm_ns(w->ds), pod, &e);
    json_decref(pod);
    if (!out) {
        cm_observe_add(w->c->m, w->ek);
        log_warn("daemonset %s: create on %s: %s", cm_name(w->ds), node, e->msg);
        ck_error_free(e);
        return -1;
    }
    cm_event(w->c->m, w->ds, COMPONENT, "Normal", "SuccessfulCreate", "Created pod: %s", cm_name(out));
    json_decref(out);
    return 0;
}

static int delete_one(void *arg, int i)
{
    work *w = arg;
    json_t *pod = json_array_get(w->victims, (size_t)i);
    if (cm_delete(w->c->m, cm_res("", "pods"), cm_ns(pod), cm_name(pod), cm_uid(pod), NULL, NULL) < 0)
        return -1;
    cm_event(w->c->m, w->ds, COMPONENT, "Normal", "SuccessfulDelete", "Deleted pod: %s", cm_name(pod));
    return 0;
}

static bool is_new(const json_t *pod, const char *hash)
{
    return !strcmp(json_string_value(json_object_get(cm_get(pod, "metadata.labels"), HASH_LABEL)) ?: "", hash);
}

static int by_creation(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int64_t tx = cm_time(x, "metadata.creationTimestamp"), ty = cm_time(y, "metadata.creationTimestamp");
    if (tx != ty)
        return tx < ty ? -1 : 1;
    return strcmp(cm_name(x), cm_name(y));
}

static bool node_runs(const json_t *tspec, const json_t *tols, const json_t *node)
{
    bool run, stay;
    should_run(tspec, tols, node, &run, &stay);
    return run;
}

/* maxSurge / maxUnavailable: an integer, or a percentage of the desired nodes rounded up */
static long scaled(const json_t *v, long desired, long dflt)
{
    if (json_is_integer(v))
        return (long)json_integer_value(v);
    if (json_is_string(v))
        return (atol(json_string_value(v)) * desired + 99) / 100;
    return dflt;
}

static void victim(work *w, json_t *doomed, json_t *pod)
{
    if (json_object_get(doomed, cm_name(pod)))
        return;
    json_object_set_new(doomed, cm_name(pod), json_true());
    json_array_append(w->victims, pod);
}

void cm_ds_should_run(const json_t *tmpl_spec, const json_t *node, bool *run, bool *stay)
{
    json_t *tols = daemon_tolerations(tmpl_spec);
    should_run(tmpl_spec, tols, node, run, stay);
    json_decref(tols);
}

static int sync_ds(void *self, const char *key, ck_error **err)
{
    dsc *c = self;
    cleanup_free char *ns = NULL;
    const char *name;
    cm_split_key(key, &ns, &name);
    cleanup_free char *ek = xasprintf("ds:%s", key);
    json_t *ds = ck_informer_get(c->sets, ns, name);
    if (!ds) {
        cm_expect_forget(c->m, ek);
        return 0;
    }
    json_t *tspec = cm_get(ds, "spec.template.spec");
    json_t *tols = daemon_tolerations(tspec);
    char hash[16];
    cm_hash(cm_get(ds, "spec.template"), 0, hash);
    long min_ready = (long)cm_int(ds, "spec.minReadySeconds", 0);
    int64_t now = cm_now();

    /* pods by node: running or being deleted; finished (Succeeded/Failed) ones are deleted and replaced */
    json_t *by_node = json_object();   /* node -> [pods], oldest first */
    json_t *all = ck_informer_list(c->pods), *finished_pods = json_array();
    size_t i;
    json_t *pod;
    json_array_foreach(all, i, pod) {
        json_t *ref = cm_controller_ref(pod);
        if (!ref || strcmp(json_string_value(json_object_get(ref, "uid")) ?: "", cm_uid(ds)))
            continue;
        const char *phase = cm_str(pod, "status.phase") ?: "";
        if (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed")) {
            if (!cm_deleting(pod))
                json_array_append(finished_pods, pod);
            continue;
        }
        const char *n = pod_node(pod) ?: "";
        if (!json_object_get(by_node, n))
            json_object_set_new(by_node, n, json_array());
        json_array_append(json_object_get(by_node, n), pod);
    }
    json_decref(all);
    const char *nk;
    json_t *np_;
    json_object_foreach(by_node, nk, np_)
        cm_sort_array(np_, by_creation);     /* oldest first */

    /* the revision of this template, before any pod is made from it */
    json_t *live = json_object();
    cleanup_free char *rev_name = xasprintf("%s-%s", name, hash);
    json_object_set_new(live, rev_name, json_true());
    json_object_foreach(by_node, nk, np_) {
        size_t j;
        json_t *p;
        json_array_foreach(np_, j, p) {
            const char *h = json_string_value(json_object_get(cm_get(p, "metadata.labels"), HASH_LABEL));
            if (h) {
                cleanup_free char *rn = xasprintf("%s-%s", name, h);
                json_object_set_new(live, rn, json_true());
            }
        }
    }
    long long revision = 0;
    int hrc = cm_deleting(ds) ? 0 : cm_history_sync(c->m, c->revs, ds, rev_name, hash, live, &revision, err);
    json_decref(live);
    if (hrc < 0) {
        json_decref(by_node);
        json_decref(finished_pods);
        json_decref(tols);
        json_decref(ds);
        return -1;
    }

    json_t *nodes = ck_informer_list(c->nodes);
    work w = {.c = c, .ds = ds, .ek = ek, .hash = hash, .tols = tols, .nodes = json_array(),
              .victims = json_array()};
    json_t *doomed = json_object();   /* names of victims: a pod is deleted once */
    json_t *held = json_object();     /* nodes whose finished pod is still there: no new pod yet */
    int64_t retry_ms = 0;
    json_array_foreach(finished_pods, i, pod) {
        const char *n = pod_node(pod) ?: "";
        json_object_set_new(held, n, json_true());
        if (!strcmp(cm_str(pod, "status.phase") ?: "", "Succeeded")) {
            cm_event(c->m, ds, COMPONENT, "Normal", "SucceededDaemonPod",
                     "Found succeeded daemon pod %s/%s on node %s, will try to delete it",
                     cm_ns(pod), cm_name(pod), n);
            victim(&w, doomed, pod);
            continue;
        }
        int64_t left = backoff_take(c, cm_uid(ds), n, ck_now_ns() / 1000000);
        if (left > 0) {   /* killed too recently on this node: look again when the delay is over */
            if (!retry_ms || left < retry_ms)
                retry_ms = left;
            continue;
        }
        cm_event(c->m, ds, COMPONENT, "Warning", "FailedDaemonPod",
                 "Found failed daemon pod %s/%s on node %s, will try to kill it", cm_ns(pod), cm_name(pod), n);
        victim(&w, doomed, pod);
    }
    if (retry_ms > 0)
        ck_workqueue_add_after(c->q, key, retry_ms + 10);
    long desired = 0;
    json_t *node;
    json_array_foreach(nodes, i, node)
        desired += node_runs(tspec, tols, node);
    bool rolling = !strcmp(cm_str(ds, "spec.updateStrategy.type") ?: "RollingUpdate", "RollingUpdate");
    long max_surge = rolling ? scaled(cm_get(ds, "spec.updateStrategy.rollingUpdate.maxSurge"), desired, 0) : 0;
    long max_unavail = scaled(cm_get(ds, "spec.updateStrategy.rollingUpdate.maxUnavailable"), desired, 1);
    if (desired > 0 && max_unavail == 0 && max_surge == 0)
        max_unavail = 1;
    bool surge = max_surge > 0;

    /* manage (podsShouldBeOnNode) and status, node by node */
    long current = 0, mis = 0, ready = 0, available = 0, updated = 0;
    json_array_foreach(nodes, i, node) {
        json_t *pods = json_object_get(by_node, cm_name(node));
        json_t *running = json_array();   /* not being deleted, oldest first */
        size_t j;
        json_t *p;
        json_array_foreach(pods, j, p)
            if (!cm_deleting(p))
                json_array_append(running, p);
        bool run, stay;
        should_run(tspec, tols, node, &run, &stay);
        if (run && json_array_size(pods)) {
            current++;
            json_t *oldest = json_array_get(pods, 0);
            if (cm_pod_ready(oldest)) {
                ready++;
                available += cm_pod_available(oldest, min_ready, now);
            }
            updated += is_new(oldest, hash);
        } else if (!run && json_array_size(pods)) {
            mis++;
        } else if (run && json_object_get(held, cm_name(node))) {
            current++;   /* its finished pod is still there (upstream counts it scheduled) */
        }
        if (!stay) {
            json_array_foreach(running, j, p)
                victim(&w, doomed, p);
        } else if (run && !json_array_size(running)) {
            if (!json_object_get(held, cm_name(node)))
                json_array_append_new(w.nodes, json_string(cm_name(node)));
        } else if (!surge) {   /* one pod a node: the oldest */
            for (j = 1; j < json_array_size(running); j++)
                victim(&w, doomed, json_array_get(running, j));
        } else if (json_array_size(running) > 1) {
            /* surging: the oldest new and the oldest old pod may run side by side until the new
             * one is available (or the old one is not ready); any others go */
            json_t *new_pod = NULL, *old_pod = NULL;
            json_array_foreach(running, j, p) {
                json_t **slot = is_new(p, hash) ? &new_pod : &old_pod;
                if (!*slot)
                    *slot = p;
                else
                    victim(&w, doomed, p);
            }
            if (new_pod && old_pod &&
                (!cm_pod_ready(old_pod) || cm_pod_available(new_pod, min_ready, now)))
                victim(&w, doomed, old_pod);
        }
        json_decref(running);
    }

    /* rolling update (upstream's rollingUpdate), over the nodes that have pods */
    if (rolling) {
        long num_unavail = 0, num_surge = 0;
        json_t *allowed = json_array(), *candidates = json_array();   /* pods to delete / nodes to surge onto */
        json_object_foreach(by_node, nk, np_) {
            json_t *new_pod = NULL, *old_pod = NULL;
            bool ok = true;
            size_t j;
            json_t *p;
            json_array_foreach(np_, j, p) {
                if (cm_deleting(p))
                    continue;
                json_t **slot = is_new(p, hash) ? &new_pod : &old_pod;
                if (*slot)
                    ok = false;
                *slot = p;
            }
            if (!ok) {   /* the manage step cleans this node up */
                num_unavail++;
                num_surge++;
                continue;
            }
            if (!surge) {
                if ((!old_pod && !new_pod) || (old_pod && new_pod))
                    num_unavail++;
                else if (new_pod)
                    num_unavail += !cm_pod_available(new_pod, min_ready, now);
                else if (!cm_pod_available(old_pod, min_ready, now))
                    json_array_append(allowed, old_pod);
                else if (num_unavail < max_unavail)
                    json_array_append(candidates, old_pod);
                continue;
            }
            if (!old_pod)
                continue;
            if (!new_pod) {   /* a surge candidate */
                json_t *nd = NULL;
                json_t *n2;
                size_t k;
                json_array_foreach(nodes, k, n2)
                    if (!strcmp(cm_name(n2), nk))
                        nd = n2;
                if (cm_pod_available(old_pod, min_ready, now))
                    json_array_append_new(candidates, json_string(nk));
                else if (nd && node_runs(tspec, tols, nd))
                    json_array_append_new(allowed, json_string(nk));
                else
                    victim(&w, doomed, old_pod);
            } else if (!cm_pod_available(new_pod, min_ready, now)) {
                num_surge++;
            } else {
                victim(&w, doomed, old_pod);
            }
        }
        long room = surge ? max_surge - num_surge : max_unavail - num_unavail;
        if (room < 0)
            room = 0;
        if (room > (long)json_array_size(candidates))
            room = (long)json_array_size(candidates);
        for (long k = 0; k < room; k++)
            json_array_append(allowed, json_array_get(candidates, (size_t)k));
        json_array_foreach(allowed, i, pod) {
            if (surge)
                json_array_append(w.nodes, pod);   /* a node name */
            else
                victim(&w, doomed, pod);
        }
        json_decref(allowed);
        json_decref(candidates);
    }
    json_decref(doomed);
    json_decref(held);
    json_decref(nodes);

    int rc = 0;
    if (cm_expectations_met(c->m, ek) && !cm_deleting(ds)) {
        size_t nc = json_array_size(w.nodes), nd = json_array_size(w.victims);
        /* deletes first: an old pod whose surge replacement is available goes before the next
         * node's surge pod is made, so no more than desired + maxSurge pods ever run at once */
        if (nd && cm_parallel((int)nd, 16, delete_one, &w))
            rc = ck_error_set(err, CK_E_UNAVAILABLE, "some daemon pods could not be deleted");
        if (nc) {
            cm_expect(c->m, ek, (int)nc, NULL);
            if (cm_parallel((int)nc, 16, create_on, &w) && rc == 0)
                rc = ck_error_set(err, CK_E_UNAVAILABLE, "some daemon pods could not be created");
        }
    }
    if (min_ready > 0 && (ready > available || updated < desired))
        ck_workqueue_add_after(c->q, key, min_ready * 1000 + 100);

    json_t *st = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                           "desiredNumberScheduled", (json_int_t)desired,
                           "currentNumberScheduled", (json_int_t)current,
                           "numberMisscheduled", (json_int_t)mis, "numberReady", (json_int_t)ready,
                           "numberAvailable", (json_int_t)available,
                           "numberUnavailable", (json_int_t)(desired - available),
                           "updatedNumberScheduled", (json_int_t)updated,
                           "observedGeneration", (json_int_t)cm_int(ds, "metadata.generation", 0));
    if (!available)
        json_object_del(st, "numberAvailable");
    if (desired - available == 0)
        json_object_del(st, "numberUnavailable");
    ck_error *e = NULL;
    if (cm_write_status(c->m, cm_res("apps", "daemonsets"), ds, st, &e) < 0 && rc == 0) {
        *err = e;
        rc = -1;
    } else {
        ck_error_free(e);
    }
    json_decref(st);
    json_decref(finished_pods);
    json_decref(w.nodes);
    json_decref(w.victims);
    json_decref(by_node);
    json_decref(tols);
    json_decref(ds);
    return rc;
}

int cm_daemonset_init(cm *m)
{
    dsc *c = xcalloc(1, sizeof *c);
    c->m = m;
    pthread_mutex_init(&c->mu, NULL);
    c->backoff = json_object();
    ck_informer_handlers dh = {on_ds, on_ds_update, NULL};
    c->sets = cm_informer(m, "apps", "daemonsets", &dh, c);
    ck_informer_handlers nh = {on_node, on_node_update, on_node};
    c->nodes = cm_informer(m, "", "nodes", &nh, c);
    ck_informer_handlers ph = {on_pod, on_owned_update, on_owned};
    c->pods = cm_informer(m, "", "pods", &ph, c);
    ck_informer_handlers rh = {on_owned, NULL, on_owned};
    c->revs = cm_informer(m, "apps", "controllerrevisions", &rh, c);
    c->q = cm_queue(m, COMPONENT, 2, sync_ds, c);
    return 0;
}
