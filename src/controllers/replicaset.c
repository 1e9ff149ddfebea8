/* replicaset.c - the ReplicaSet and ReplicationController controllers (one code path, two kinds).
 *
 * A sync of one set: claim pods (ours by controllerRef; orphans whose labels match are adopted,
 * ours that no longer match are released), then - when the expectations of earlier syncs are met -
 * create or delete pods to reach spec.replicas, then write status.  Creations go in slow-start
 * batches (1, 2, 4, ... in parallel, at most 500 a sync) so a failing quota or webhook costs one
 * request, not thousands; deletions prefer unscheduled, pending, not-ready, newest pods.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver/selector.h"
#include "controllers/cm.h"
#include "lib/log.h"
#include "lib/util.h"

#define RS_BURST 500
#define RS_PARALLEL 16

typedef struct rsc {
    cm *m;
    const char *kind;          /* "ReplicaSet" / "ReplicationController" */
    const char *component;     /* "replicaset-controller" */
    const ck_resource *res;
    ck_informer *sets, *pods;
    ck_workqueue *q;
    /* pods by controller uid (ours only) and orphans by namespace, so a sync looks at its own
     * pods and the adoptable ones instead of scanning the whole pod cache */
    pthread_mutex_t idx_lock;
    json_t *by_owner;     /* uid -> {pod key: null} (the pods are in the informer) */
    json_t *orphans;      /* namespace -> {pod key: null} */
} rsc;

/* What a sync reads of one of its pods, read once: a sync walks thousands of cached pods, and
 * each path lookup in a pod's tree is a cache miss, so claiming, counting and ranking for
 * deletion share one read of each pod (a third of rolling-update CPU went to re-reading). */
typedef struct podsum {
    json_t *pod;          /* borrowed from the claim array */
    bool active, ready;
    /* deletion rank, filled by delete_pods only */
    int scheduled, phase;
    int64_t ready_since, created;
} podsum;

static char *set_key(const char *ns, const char *name)
{
    return xasprintf("%s/%s", ns, name);
}

/* The selector of a set: a LabelSelector (apps) or a plain map (v1 RC). */
static ck_selector *set_selector(rsc *c, const json_t *set)
{
    json_t *sel = cm_get(set, "spec.selector");
    ck_selector *s;
    if (!strcmp(c->kind, "ReplicationController")) {
        json_t *ls = json_pack("{s:O}", "matchLabels", sel ? sel : json_object());
        if (!sel)   /* RC defaulting copies template labels; be tolerant if not defaulted */
            json_object_set(ls, "matchLabels", cm_get(set, "spec.template.metadata.labels"));
        s = ck_label_selector_from_json(ls, NULL);
        json_decref(ls);
    } else {
        s = ck_label_selector_from_json(sel, NULL);
    }
    return s;
}

static bool owned_by_kind(rsc *c, const json_t *ref)
{
    return ref && !strcmp(json_string_value(json_object_get(ref, "kind")) ?: "", c->kind);
}

/* Enqueue every set in the pod's namespace whose selector matches it (for orphans). */
static void enqueue_matching(rsc *c, const json_t *pod)
{
    json_t *all = ck_informer_list(c->sets);
    size_t i;
    json_t *set;
    const char *ns = cm_ns(pod);
    json_array_foreach(all, i, set) {
        if (strcmp(cm_ns(set) ?: "", ns ?: ""))
            continue;
        ck_selector *s = set_selector(c, set);
        if (s && ck_label_selector_matches(s, cm_get(pod, "metadata.labels"))) {
            cleanup_free char *k = set_key(cm_ns(set), cm_name(set));
            ck_workqueue_add(c->q, k);
        }
        ck_selector_free(s);
    }
    json_decref(all);
}

static void on_pod_add(void *ctx, json_t *pod)
{
    rsc *c = ctx;
    json_t *ref = cm_controller_ref(pod);
    if (owned_by_kind(c, ref)) {
        cleanup_free char *k = set_key(cm_ns(pod), json_string_value(json_object_get(ref, "name")));
        if (cm_deleting(pod)) {
            cleanup_free char *pk = ck_informer_key(pod);
            cm_observe_del(c->m, k, pk);
        } else {
            cm_observe_add(c->m, k);
        }
        ck_workqueue_add(c->q, k);
    } else if (!ref && !cm_deleting(pod)) {
        enqueue_matching(c, pod);
    }
}

static void on_pod_delete(void *ctx, json_t *pod)
{
    rsc *c = ctx;
    json_t *ref = cm_controller_ref(pod);
    if (!owned_by_kind(c, ref))
        return;
    cleanup_free char *k = set_key(cm_ns(pod), json_string_value(json_object_get(ref, "name")));
    cleanup_free char *pk = ck_informer_key(pod);
    cm_observe_del(c->m, k, pk);
    ck_workqueue_add(c->q, k);
}

static void on_pod_update(void *ctx, json_t *old, json_t *pod)
{
    rsc *c = ctx;
    if (cm_deleting(pod) && !cm_deleting(old)) {
        on_pod_delete(ctx, pod);
        return;
    }
    json_t *oref = cm_controller_ref(old), *nref = cm_controller_ref(pod);
    /* a binding or any change a set's sync does not read (its status counts labels, phase,
     * readiness; claiming reads labels and references) is no reason to sync the set: during a
     * rollout this skips about a third of the pod events */
    if (json_equal(oref, nref) &&
        json_equal(cm_get(old, "metadata.labels"), cm_get(pod, "metadata.labels")) &&
        json_equal(cm_get(old, "metadata.ownerReferences"), cm_get(pod, "metadata.ownerReferences")) &&
        json_equal(cm_get(old, "status.phase"), cm_get(pod, "status.phase")) &&
        json_equal(cm_pod_condition(old, "Ready"), cm_pod_condition(pod, "Ready")) &&
        cm_deleting(old) == cm_deleting(pod))
        return;
    if (owned_by_kind(c, oref) && !json_equal(oref, nref)) {
        cleanup_free char *k = set_key(cm_ns(old), json_string_value(json_object_get(oref, "name")));
        ck_workqueue_add(c->q, k);
    }
    if (owned_by_kind(c, nref)) {
        cleanup_free char *k = set_key(cm_ns(pod), json_string_value(json_object_get(nref, "name")));
        ck_workqueue_add(c->q, k);
    } else if (!nref && (!json_equal(cm_get(old, "metadata.labels"), cm_get(pod, "metadata.labels")) ||
                         oref)) {
        enqueue_matching(c, pod);
    }
}

/* ---------------------------------------------------------------- pod index */

static json_t *idx_bucket(rsc *c, const json_t *pod, bool create)
{
    json_t *ref = cm_controller_ref(pod);
    json_t *map;
    const char *k;
    if (owned_by_kind(c, ref)) {
        map = c->by_owner;
        k = json_string_value(json_object_get(ref, "uid"));
    } else if (!ref) {
        map = c->orphans;
        k = cm_ns(pod);
    } else {
        return NULL;
    }
    if (!k)
        return NULL;
    json_t *b = json_object_get(map, k);
    if (!b && create) {
        b = json_object();
        json_object_set_new(map, k, b);
    }
    return b;
}

/* The buckets hold keys only (the pods are read from the informer's cache when a set syncs):
 * an update that keeps the owners then writes nothing here, where storing the new object cost
 * a hash write per pod event (a tenth of the controller-manager's pod informer with thousands
 * of orphans in one namespace). */
static void idx_put(rsc *c, json_t *pod)
{
    cleanup_free char *key = ck_informer_key(pod);
    pthread_mutex_lock(&c->idx_lock);
    json_t *b = idx_bucket(c, pod, true);
    if (b && !json_object_get(b, key))
        json_object_set_new(b, key, json_null());
    pthread_mutex_unlock(&c->idx_lock);
}

static void idx_del(rsc *c, const json_t *pod)
{
    cleanup_free char *key = ck_informer_key(pod);
    pthread_mutex_lock(&c->idx_lock);
    json_t *b = idx_bucket(c, pod, false);
    if (b) {
        json_object_del(b, key);
        if (!json_object_size(b)) {
            json_t *ref = cm_controller_ref(pod);
            if (ref)
                json_object_del(c->by_owner, json_string_value(json_object_get(ref, "uid")));
            else
                json_object_del(c->orphans, cm_ns(pod));
        }
    }
    pthread_mutex_unlock(&c->idx_lock);
}

/* The pods a set may claim: those it controls and the orphans of its namespace.  NEW array. */
static json_t *idx_candidates(rsc *c, const json_t *set)
{
    json_t *keys = json_array(), *out = json_array();
    pthread_mutex_lock(&c->idx_lock);
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(c->by_owner, cm_uid(set) ?: ""), k, v)
        json_array_append_new(keys, json_string(k));
    json_object_foreach(json_object_get(c->orphans, cm_ns(set) ?: ""), k, v)
        json_array_append_new(keys, json_string(k));
    pthread_mutex_unlock(&c->idx_lock);
    size_t i;
    json_array_foreach(keys, i, v) {
        char *ns = NULL;
        const char *name = NULL;
        cm_split_key(json_string_value(v), &ns, &name);
        json_t *pod = ck_informer_get(c->pods, ns, name);   /* NULL: gone meanwhile */
        free(ns);
        if (pod)
            json_array_append_new(out, pod);
    }
    json_decref(keys);
    return out;
}

static void h_pod_add(void *ctx, json_t *pod)
{
    idx_put(ctx, pod);
    on_pod_add(ctx, pod);
}

static void h_pod_update(void *ctx, json_t *old, json_t *pod)
{
    /* same owners (the shared ownerReferences, or none; an update keeps the key, so the
     * namespace too): same bucket, nothing to write; only a move changes buckets */
    json_t *oref = cm_get(old, "metadata.ownerReferences"), *nref = cm_get(pod, "metadata.ownerReferences");
    if (!(oref == nref || json_equal(oref, nref))) {
        idx_del(ctx, old);
        idx_put(ctx, pod);
    }
    on_pod_update(ctx, old, pod);
}

static void h_pod_delete(void *ctx, json_t *pod)
{
    idx_del(ctx, pod);
    on_pod_delete(ctx, pod);
}

static void on_set(void *ctx, json_t *set)
{
    rsc *c = ctx;
    cleanup_free char *k = ck_informer_key(set);
    ck_workqueue_add(c->q, k);
}

static void on_set_update(void *ctx, json_t *old, json_t *set)
{
    (void)old;
    on_set(ctx, set);
}

static void on_set_delete(void *ctx, json_t *set)
{
    rsc *c = ctx;
    cleanup_free char *k = ck_informer_key(set);
    cm_expect_forget(c->m, k);
    ck_workqueue_add(c->q, k);
}

/* ---------------------------------------------------------------- claiming */

static int patch_owner_refs(rsc *c, const json_t *pod, json_t *refs, ck_error **err)
{
    json_t *patch = json_pack("{s:{s:O, s:s}}", "metadata", "ownerReferences", refs, "uid",
                              cm_uid(pod));
    json_t *out = ck_client_patch(cm_client(c->m), cm_res("", "pods"), cm_ns(pod), cm_name(pod),
                                  NULL, "application/merge-patch+json", patch, err);
    json_decref(patch);
    if (!out)
        return -1;
    json_decref(out);
    return 0;
}

static int adopt(rsc *c, const json_t *set, const json_t *pod, ck_error **err)
{
    json_t *refs = json_deep_copy(cm_get(pod, "metadata.ownerReferences"));
    if (!refs)
        refs = json_array();
    json_array_append_new(refs, cm_owner_ref(set, true));
    int rc = patch_owner_refs(c, pod, refs, err);
    json_decref(refs);
    return rc;
}

static int release(rsc *c, const json_t *set, const json_t *pod, ck_error **err)
{
    json_t *refs = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(cm_get(pod, "metadata.ownerReferences"), i, r)
        if (strcmp(json_string_value(json_object_get(r, "uid")) ?: "", cm_uid(set)))
            json_array_append(refs, r);
    int rc = patch_owner_refs(c, pod, refs, err);
    json_decref(refs);
    if (rc < 0 && (*err)->code == CK_E_NOT_FOUND) {
        ck_error_free(*err);
        *err = NULL;
        rc = 0;
    }
    return rc;
}

/* Our pods, after adopting and releasing.  NEW array. */
static json_t *claim_pods(rsc *c, const json_t *set, const ck_selector *sel, int *errors)
{
    json_t *all = idx_candidates(c, set), *mine = json_array();
    const char *ns = cm_ns(set), *uid = cm_uid(set);
    size_t i;
    json_t *pod;
    json_array_foreach(all, i, pod) {
        if (strcmp(cm_ns(pod) ?: "", ns))
            continue;
        bool matches = ck_label_selector_matches(sel, cm_get(pod, "metadata.labels"));
        json_t *ref = cm_controller_ref(pod);
        const char *ruid = ref ? json_string_value(json_object_get(ref, "uid")) : NULL;
        ck_error *err = NULL;
        if (ruid && !strcmp(ruid, uid)) {
            if (matches || cm_deleting(set)) {
                json_array_append(mine, pod);
            } else if (release(c, set, pod, &err) < 0) {
                (*errors)++;
                ck_error_free(err);
            }
        } else if (!ref && matches && !cm_deleting(set) && cm_pod_active(pod)) {
            if (adopt(c, set, pod, &err) == 0) {
                json_array_append(mine, pod);
            } else {
                (*errors)++;
                ck_error_free(err);
            }
        }
    }
    json_decref(all);
    return mine;
}

/* ---------------------------------------------------------------- scaling */

typedef struct create_ctx {
    rsc *c;
    const json_t *set;
    json_t *pod;          /* the template pod */
    const char *key;
    ck_error *first_err;
    pthread_mutex_t lock;
} create_ctx;

/* What is decoded of a created pod. */
static const ck_jsonpick name_keep[] = {{"name", NULL}, {NULL, NULL}};
static const ck_jsonpick name_only[] = {{"metadata", name_keep}, {NULL, NULL}};

static int create_one(void *arg, int i)
{
    (void)i;
    create_ctx *cc = arg;
    ck_error *err = NULL;
    cleanup_free char *path = ck_client_path(cm_res("", "pods"), cm_ns(cc->set), NULL, NULL);
    json_t *out = ck_client_request_pick(cm_client(cc->c->m), "POST", path, cc->pod, name_only,
                                         &err);
    if (out) {
        cm_event(cc->c->m, cc->set, cc->c->component, "Normal", "SuccessfulCreate",
                 "Created pod: %s", cm_name(out));
        json_decref(out);
        return 0;
    }
    cm_observe_add(cc->c->m, cc->key);    /* the pod will never be seen */
    if (err->code == CK_E_FORBIDDEN && strstr(err->msg, "being terminated")) {
        ck_error_free(err);   /* the namespace goes away; so will we (upstream ignores it too) */
        return 0;
    }
    pthread_mutex_lock(&cc->lock);
    if (!cc->first_err)
        cc->first_err = err;
    else
        ck_error_free(err);
    pthread_mutex_unlock(&cc->lock);
    return -1;
}

static json_t *pod_from_template(rsc *c, const json_t *set)
{
    json_t *tmpl = cm_get(set, "spec.template");
    cleanup_free char *gen = xasprintf("%s-", cm_name(set));
    json_t *md = json_pack("{s:s, s:s, s:[o]}", "generateName", gen, "namespace", cm_ns(set),
                           "ownerReferences", cm_owner_ref(set, true));
    json_t *labels = cm_get(tmpl, "metadata.labels"), *ann = cm_get(tmpl, "metadata.annotations");
    if (labels)
        json_object_set_new(md, "labels", json_deep_copy(labels));
    if (ann)
        json_object_set_new(md, "annotations", json_deep_copy(ann));
    json_t *spec = cm_get(tmpl, "spec");
    (void)c;
    return json_pack("{s:s, s:s, s:o, s:o}", "apiVersion", "v1", "kind", "Pod", "metadata", md,
                     "spec", spec ? json_deep_copy(spec) : json_object());
}

static int create_pods(rsc *c, const json_t *set, const char *key, int n, ck_error **err)
{
    cm_expect(c->m, key, n, NULL);
    create_ctx cc = {.c = c, .set = set, .pod = pod_from_template(c, set), .key = key};
    pthread_mutex_init(&cc.lock, NULL);
    int done = 0, batch = 1, rc = 0;
    while (done < n) {
        int this = batch < n - done ? batch : n - done;
        int fails = cm_parallel(this, RS_PARALLEL, create_one, &cc);
        done += this;
        if (fails) {
            /* Skip the rest: they will not be seen either. */
            for (int i = done; i < n; i++)
                cm_observe_add(c->m, key);
            cm_event(c->m, set, c->component, "Warning", "FailedCreate", "Error creating: %s",
                     cc.first_err ? cc.first_err->msg : "?");
            *err = cc.first_err;
            cc.first_err = NULL;
            rc = -1;
            break;
        }
        batch *= 2;
    }
    json_decref(cc.pod);
    pthread_mutex_destroy(&cc.lock);
    return rc;
}

/* Rank for deletion: lower = delete first. */
static int phase_rank(const json_t *pod)
{
    const char *p = cm_str(pod, "status.phase");
    if (!p || !strcmp(p, "Pending"))
        return 0;
    if (!strcmp(p, "Unknown"))
        return 1;
    return 2;
}

/* Unscheduled, then pending/unknown, then not ready, then ready for less time, then newer. */
static int delete_order(const void *a, const void *b)
{
    const podsum *x = a, *y = b;
    if (x->scheduled != y->scheduled)
        return x->scheduled - y->scheduled;
    if (x->phase != y->phase)
        return x->phase - y->phase;
    if (x->ready != y->ready)
        return (int)x->ready - (int)y->ready;
    if (x->ready && x->ready_since != y->ready_since)
        return x->ready_since > y->ready_since ? -1 : 1;
    if (x->created != y->created)
        return x->created > y->created ? -1 : 1;     /* newer first */
    return strcmp(cm_name(y->pod), cm_name(x->pod));
}

typedef struct delete_ctx {
    rsc *c;
    const json_t *set;
    podsum *pods;
    const char *key;
    ck_error *first_err;
    pthread_mutex_t lock;
} delete_ctx;

static int delete_one(void *arg, int i)
{
    delete_ctx *dc = arg;
    json_t *pod = dc->pods[i].pod;
    ck_error *err = NULL;
    if (cm_delete(dc->c->m, cm_res("", "pods"), cm_ns(pod), cm_name(pod), cm_uid(pod), NULL,
                  &err) == 0) {
        cm_event(dc->c->m, dc->set, dc->c->component, "Normal", "SuccessfulDelete",
                 "Deleted pod: %s", cm_name(pod));
        return 0;
    }
    cleanup_free char *pk = ck_informer_key(pod);
    cm_observe_del(dc->c->m, dc->key, pk);
    pthread_mutex_lock(&dc->lock);
    if (!dc->first_err)
        dc->first_err = err;
    else
        ck_error_free(err);
    pthread_mutex_unlock(&dc->lock);
    return -1;
}

/* Delete n of the active pods (v[0..total), reordered). */
static int delete_pods(rsc *c, const json_t *set, const char *key, podsum *v, size_t total, int n,
                       ck_error **err)
{
    for (size_t i = 0; i < total; i++) {
        const json_t *pod = v[i].pod;
        v[i].scheduled = cm_str(pod, "spec.nodeName") != NULL;
        v[i].phase = phase_rank(pod);
        v[i].ready_since = v[i].ready ? cm_time(cm_pod_condition(pod, "Ready"), "lastTransitionTime") : 0;
        v[i].created = cm_time(pod, "metadata.creationTimestamp");
    }
    qsort(v, total, sizeof *v, delete_order);
    json_t *keys = json_array();
    for (int i = 0; i < n; i++) {
        char *k = ck_informer_key(v[i].pod);
        json_array_append_new(keys, json_string(k));
        free(k);
    }
    cm_expect(c->m, key, 0, keys);
    json_decref(keys);
    delete_ctx dc = {.c = c, .set = set, .pods = v, .key = key};
    pthread_mutex_init(&dc.lock, NULL);
    int fails = cm_parallel(n, RS_PARALLEL, delete_one, &dc);
    pthread_mutex_destroy(&dc.lock);
    if (fails) {
        *err = dc.first_err;
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- status */

static json_t *compute_status(rsc *c, const json_t *set, const podsum *v, size_t n, int64_t now,
                              bool *requeue)
{
    (void)c;
    long min_ready = (long)cm_int(set, "spec.minReadySeconds", 0);
    json_t *tlabels = cm_get(set, "spec.template.metadata.labels");
    long replicas = 0, labeled = 0, ready = 0, available = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *pod = v[i].pod;
        if (!v[i].active)
            continue;
        replicas++;
        json_t *labels = cm_get(pod, "metadata.labels");
        const char *k;
        json_t *want;
        bool full = true;
        json_object_foreach(tlabels, k, want)
            if (!json_equal(json_object_get(labels, k), want))
                full = false;
        labeled += full;
        if (v[i].ready) {
            ready++;
            if (cm_pod_available(pod, min_ready, now))
                available++;
            else
                *requeue = true;
        }
    }
    json_t *st = json_pack("{s:I, s:I, s:I, s:I, s:I}", "replicas", (json_int_t)replicas,
                           "fullyLabeledReplicas", (json_int_t)labeled, "readyReplicas",
                           (json_int_t)ready, "availableReplicas", (json_int_t)available,
                           "observedGeneration", (json_int_t)cm_int(set, "metadata.generation", 0));
    json_t *conds = cm_get(set, "status.conditions");
    if (conds)
        json_object_set(st, "conditions", conds);
    return st;
}

static int update_status(rsc *c, const json_t *set, json_t *st, ck_error **err)
{
    json_t *old = cm_get(set, "status");
    if (old && json_equal(old, st))
        return 0;
    json_t *copy = json_deep_copy(set);
    json_object_set(copy, "status", st);
    json_t *out = ck_client_update_status(cm_client(c->m), c->res, cm_ns(set), copy, err);
    json_decref(copy);
    if (!out) {
        if ((*err)->code == CK_E_NOT_FOUND) {
            ck_error_free(*err);
            *err = NULL;
            return 0;
        }
        return -1;
    }
    json_decref(out);
    return 0;
}

/* ---------------------------------------------------------------- sync */

static int sync_set(void *self, const char *key, ck_error **err)
{
    rsc *c = self;
    cleanup_free char *ns = NULL;
    const char *name;
    cm_split_key(key, &ns, &name);
    json_t *set = ck_informer_get(c->sets, ns, name);
    if (!set) {
        cm_expect_forget(c->m, key);
        return 0;
    }
    int rc = 0;
    ck_selector *sel = set_selector(c, set);
    if (!sel) {
        json_decref(set);
        return 0;
    }
    bool need_sync = cm_expectations_met(c->m, key);
    int claim_errors = 0;
    json_t *mine = claim_pods(c, set, sel, &claim_errors);
    ck_selector_free(sel);
    size_t nmine = json_array_size(mine), nactive = 0;
    podsum *sums = xcalloc(nmine ? nmine : 1, sizeof *sums);
    podsum *active = xcalloc(nmine ? nmine : 1, sizeof *active);
    for (size_t i = 0; i < nmine; i++) {
        json_t *pod = json_array_get(mine, i);
        sums[i] = (podsum){.pod = pod, .active = cm_pod_active(pod), .ready = cm_pod_ready(pod)};
        if (sums[i].active)
            active[nactive++] = sums[i];
    }

    if (need_sync && !cm_deleting(set)) {
        long want = (long)cm_int(set, "spec.replicas", 1);
        long diff = (long)nactive - want;
        if (diff < 0) {
            int n = (int)(-diff > RS_BURST ? RS_BURST : -diff);
            rc = create_pods(c, set, key, n, err);
        } else if (diff > 0) {
            int n = (int)(diff > RS_BURST ? RS_BURST : diff);
            rc = delete_pods(c, set, key, active, nactive, n, err);
        }
    }
    bool requeue = false;
    int64_t now = cm_now();
    json_t *st = compute_status(c, set, sums, nmine, now, &requeue);
    ck_error *serr = NULL;
    if (update_status(c, set, st, &serr) < 0) {
        if (rc == 0) {
            *err = serr;
            rc = -1;
        } else {
            ck_error_free(serr);
        }
    }
    long min_ready = (long)cm_int(set, "spec.minReadySeconds", 0);
    if (requeue && min_ready > 0)
        ck_workqueue_add_after(c->q, key, min_ready * 1000 + 100);
    if (rc == 0 && claim_errors)
        rc = ck_error_set(err, CK_E_CONFLICT, "could not claim every pod");
    json_decref(st);
    free(active);
    free(sums);
    json_decref(mine);
    json_decref(set);
    return rc;
}

static int init_kind(cm *m, const char *group, const char *resource, const char *kind,
                     const char *component)
{
    rsc *c = xcalloc(1, sizeof *c);
    c->m = m;
    c->kind = kind;
    c->component = component;
    c->res = cm_res(group, resource);
    ck_informer_handlers sh = {on_set, on_set_update, on_set_delete};
    c->sets = cm_informer(m, group, resource, &sh, c);
    pthread_mutex_init(&c->idx_lock, NULL);
    c->by_owner = json_object();
    c->orphans = json_object();
    ck_informer_handlers ph = {h_pod_add, h_pod_update, h_pod_delete};
    c->pods = cm_informer(m, "", "pods", &ph, c);
    c->q = cm_queue(m, component, 5, sync_set, c);
    return 0;
}

int cm_replicaset_init(cm *m)
{
    return init_kind(m, "apps", "replicasets", "ReplicaSet", "replicaset-controller");
}

int cm_replicationcontroller_init(cm *m)
{
    return init_kind(m, "", "replicationcontrollers", "ReplicationController",
                     "replication-controller");
}
