/* daemonset.c - the DaemonSet controller: one pod per eligible node.
 *
 * A node is eligible when the template's nodeSelector and required node affinity match it and
 * the pod (with the tolerations every daemon pod gets: not-ready/unreachable NoExecute,
 * disk/memory/pid-pressure and unschedulable NoSchedule) tolerates its NoSchedule/NoExecute
 * taints.  Pods are created as upstream does since 1.12: pinned with a required node affinity on
 * metadata.name (matchFields) and bound by the scheduler.  Each pod carries the
 * controller-revision-hash of the template it was made from; RollingUpdate deletes old-hash pods
 * while at most maxUnavailable nodes lack an available daemon pod (the next sync recreates them
 * from the new template); OnDelete leaves them.  Extra pods on a node and pods on nodes no longer
 * eligible are deleted.  Status fields are the ones `kubectl rollout status ds` reads.
 *
 * Every template gets a ControllerRevision <set>-<hash> (history.c), so `kubectl rollout
 * history/undo ds` work as upstream.
 *
 * Limits: no maxSurge.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "controllers/cm.h"
#include "lib/log.h"
#include "lib/util.h"

#define COMPONENT "daemonset-controller"
#define HASH_LABEL "controller-revision-hash"

typedef struct dsc {
    cm *m;
    ck_informer *sets, *nodes, *pods, *revs;
    ck_workqueue *q;
} dsc;

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
    json_t *tols = json_deep_copy(cm_get(tmpl_spec, "tolerations") ?: json_array());
    static const struct { const char *key, *effect; } add[] = {
        {"node.kubernetes.io/not-ready", "NoExecute"}, {"node.kubernetes.io/unreachable", "NoExecute"},
        {"node.kubernetes.io/disk-pressure", "NoSchedule"}, {"node.kubernetes.io/memory-pressure", "NoSchedule"},
        {"node.kubernetes.io/pid-pressure", "NoSchedule"}, {"node.kubernetes.io/unschedulable", "NoSchedule"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(add); i++) {
        json_t *taint = json_pack("{s:s, s:s}", "key", add[i].key, "effect", add[i].effect);
        if (!tolerated(tols, taint))
            json_array_append_new(tols, json_pack("{s:s, s:s, s:s}", "key", add[i].key, "operator",
                                                  "Exists", "effect", add[i].effect));
        json_decref(taint);
    }
    return tols;
}

static bool eligible(const json_t *tmpl_spec, const json_t *tols, const json_t *node)
{
    if (!node_matches_template(tmpl_spec, node))
        return false;
    size_t i;
    json_t *t;
    json_array_foreach(cm_get(node, "spec.taints"), i, t) {
        const char *eff = cm_str(t, "effect") ?: "";
        if ((!strcmp(eff, "NoSchedule") || !strcmp(eff, "NoExecute")) && !tolerated(tols, t))
            return false;
    }
    return true;
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
    json_t *labels = json_deep_copy(cm_get(tmpl, "metadata.labels") ?: json_object());
    json_object_set_new(labels, HASH_LABEL, json_string(hash));
    char g[32];
    snprintf(g, sizeof g, "%lld", cm_int(ds, "metadata.generation", 1));
    json_object_set_new(labels, "pod-template-generation", json_string(g));
    json_t *md = json_pack("{s:s, s:s, s:o, s:[o]}", "generateName", gen, "namespace", cm_ns(ds),
                           "labels", labels, "ownerReferences", cm_owner_ref(ds, true));
    if (cm_get(tmpl, "metadata.annotations"))
        json_object_set_new(md, "annotations", json_deep_copy(cm_get(tmpl, "metadata.annotations")));
    json_t *spec = json_deep_copy(cm_get(tmpl, "spec") ?: json_object());
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

    /* pods by node */
    json_t *by_node = json_object();   /* node -> [pods] */
    json_t *all = ck_informer_list(c->pods);
    size_t i;
    json_t *pod;
    json_array_foreach(all, i, pod) {
        json_t *ref = cm_controller_ref(pod);
        if (!ref || strcmp(json_string_value(json_object_get(ref, "uid")) ?: "", cm_uid(ds)) ||
            !cm_pod_active(pod))
            continue;
        const char *n = pod_node(pod) ?: "";
        if (!json_object_get(by_node, n))
            json_object_set_new(by_node, n, json_array());
        json_array_append(json_object_get(by_node, n), pod);
    }
    json_decref(all);

    /* the revision of this template, before any pod is made from it */
    json_t *live = json_object();
    cleanup_free char *rev_name = xasprintf("%s-%s", name, hash);
    json_object_set_new(live, rev_name, json_true());
    const char *nk;
    json_t *np_;
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
        json_decref(tols);
        json_decref(ds);
        return -1;
    }

    json_t *nodes = ck_informer_list(c->nodes);
    work w = {.c = c, .ds = ds, .ek = ek, .hash = hash, .tols = tols, .nodes = json_array(),
              .victims = json_array()};
    long desired = 0, current = 0, mis = 0, ready = 0, available = 0, updated = 0, unavailable_now = 0;
    json_t *old_pods = json_array();   /* candidates for the rolling update */
    json_t *node;
    json_array_foreach(nodes, i, node) {
        json_t *pods = json_object_get(by_node, cm_name(node));
        bool want = eligible(tspec, tols, node);
        size_t np = json_array_size(pods);
        if (!want) {
            if (np) {
                mis++;
                size_t j;
                json_t *p;
                json_array_foreach(pods, j, p)
                    json_array_append(w.victims, p);
            }
            continue;
        }
        desired++;
        if (!np) {
            json_array_append_new(w.nodes, json_string(cm_name(node)));
            unavailable_now++;
            continue;
        }
        current++;
        /* keep one (prefer the current template, then the oldest); delete the rest */
        json_t *keep = json_array_get(pods, 0);
        size_t j;
        json_t *p;
        json_array_foreach(pods, j, p) {
            const char *h = json_string_value(json_object_get(cm_get(p, "metadata.labels"), HASH_LABEL)) ?: "";
            const char *kh = json_string_value(json_object_get(cm_get(keep, "metadata.labels"), HASH_LABEL)) ?: "";
            if (!strcmp(h, hash) && strcmp(kh, hash))
                keep = p;
        }
        json_array_foreach(pods, j, p)
            if (p != keep)
                json_array_append(w.victims, p);
        const char *kh = json_string_value(json_object_get(cm_get(keep, "metadata.labels"), HASH_LABEL)) ?: "";
        bool is_new = !strcmp(kh, hash);
        updated += is_new;
        ready += cm_pod_ready(keep);
        bool avail = cm_pod_available(keep, min_ready, now);
        available += avail;
        if (!avail)
            unavailable_now++;
        if (!is_new)
            json_array_append(old_pods, keep);
    }
    json_decref(nodes);

    /* rolling update: replace old pods, unavailable ones first, within maxUnavailable */
    if (!strcmp(cm_str(ds, "spec.updateStrategy.type") ?: "RollingUpdate", "RollingUpdate")) {
        json_t *mu = cm_get(ds, "spec.updateStrategy.rollingUpdate.maxUnavailable");
        long max_unavail = 1;
        if (json_is_integer(mu))
            max_unavail = (long)json_integer_value(mu);
        else if (json_is_string(mu))
            max_unavail = (atol(json_string_value(mu)) * desired + 99) / 100;
        if (max_unavail < 1)
            max_unavail = 1;
        long budget = max_unavail - unavailable_now;
        json_array_foreach(old_pods, i, pod)
            if (!cm_pod_available(pod, min_ready, now))
                json_array_append(w.victims, pod);   /* costs no availability */
        json_array_foreach(old_pods, i, pod) {
            if (budget <= 0)
                break;
            if (cm_pod_available(pod, min_ready, now)) {
                json_array_append(w.victims, pod);
                budget--;
            }
        }
    }

    int rc = 0;
    if (cm_expectations_met(c->m, ek) && !cm_deleting(ds)) {
        size_t nc = json_array_size(w.nodes), nd = json_array_size(w.victims);
        if (nc) {
            cm_expect(c->m, ek, (int)nc, NULL);
            if (cm_parallel((int)nc, 16, create_on, &w))
                rc = ck_error_set(err, CK_E_UNAVAILABLE, "some daemon pods could not be created");
        }
        if (nd && cm_parallel((int)nd, 16, delete_one, &w) && rc == 0)
            rc = ck_error_set(err, CK_E_UNAVAILABLE, "some daemon pods could not be deleted");
    }
    if (min_ready > 0 && ready > available)
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
    if (!json_equal(st, cm_get(ds, "status"))) {
        json_t *copy = json_deep_copy(ds);
        json_object_set(copy, "status", st);
        ck_error *e = NULL;
        json_t *out = ck_client_update_status(cm_client(c->m), cm_res("apps", "daemonsets"), ns, copy, &e);
        json_decref(copy);
        if (!out && rc == 0) {
            *err = e;
            rc = -1;
        } else {
            ck_error_free(e);
        }
        json_decref(out);
    }
    json_decref(st);
    json_decref(old_pods);
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
