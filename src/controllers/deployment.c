/* deployment.c - the Deployment controller: owns ReplicaSets, one per pod template (named
 * <deployment>-<hash of the template>, labelled pod-template-hash), and moves replicas from the
 * old ones to the new one.
 *
 * RollingUpdate: scale the new set up while the total stays within replicas+maxSurge, scale old
 * sets down (unhealthy pods first) while availability stays at or above replicas-maxUnavailable.
 * Recreate: scale every old set to 0, wait until their pods are gone, then scale the new one up.
 * Revisions live in the deployment.kubernetes.io/revision annotation of each set (a rollback is
 * kubectl writing an old template back: its set gets the next revision).  The status fields and
 * the Available/Progressing conditions follow upstream, since `kubectl rollout status` reads
 * exactly them.  Changing replicas mid-rollout scales the active sets proportionally.
 */
#include <stdlib.h>
#include <string.h>

#include "apiserver/selector.h"
#include "controllers/cm.h"
#include "lib/log.h"
#include "lib/util.h"

#define REV_ANN "deployment.kubernetes.io/revision"
#define DESIRED_ANN "deployment.kubernetes.io/desired-replicas"
#define MAX_ANN "deployment.kubernetes.io/max-replicas"
#define HASH_LABEL "pod-template-hash"
#define COMPONENT "deployment-controller"

typedef struct dc {
    cm *m;
    ck_informer *deps, *sets, *pods;
    ck_workqueue *q;
    const ck_resource *dres, *rsres;
} dc;

/* ---------------------------------------------------------------- handlers */

static void enqueue(dc *c, const char *ns, const char *name)
{
    cleanup_free char *k = xasprintf("%s/%s", ns ? ns : "", name);
    ck_workqueue_add(c->q, k);
}

static void on_dep(void *ctx, json_t *d)
{
    enqueue(ctx, cm_ns(d), cm_name(d));
}

static void on_dep_update(void *ctx, json_t *old, json_t *d)
{
    (void)old;
    on_dep(ctx, d);
}

static bool is_dep_ref(const json_t *ref)
{
    return ref && !strcmp(json_string_value(json_object_get(ref, "kind")) ?: "", "Deployment");
}

static void enqueue_matching(dc *c, const json_t *rs)
{
    json_t *all = ck_informer_list(c->deps);
    size_t i;
    json_t *d;
    json_array_foreach(all, i, d) {
        if (strcmp(cm_ns(d) ?: "", cm_ns(rs) ?: ""))
            continue;
        ck_selector *s = ck_label_selector_from_json(cm_get(d, "spec.selector"), NULL);
        if (s && ck_label_selector_matches(s, cm_get(rs, "metadata.labels")))
            enqueue(c, cm_ns(d), cm_name(d));
        ck_selector_free(s);
    }
    json_decref(all);
}

static void on_rs(void *ctx, json_t *rs)
{
    dc *c = ctx;
    json_t *ref = cm_controller_ref(rs);
    if (is_dep_ref(ref))
        enqueue(c, cm_ns(rs), json_string_value(json_object_get(ref, "name")));
    else if (!ref)
        enqueue_matching(c, rs);
}

static void on_rs_update(void *ctx, json_t *old, json_t *rs)
{
    dc *c = ctx;
    json_t *oref = cm_controller_ref(old);
    if (is_dep_ref(oref) && !json_equal(oref, cm_controller_ref(rs)))
        enqueue(c, cm_ns(old), json_string_value(json_object_get(oref, "name")));
    on_rs(ctx, rs);
}

/* A pod gone may unblock a Recreate rollout waiting for old pods. */
static void on_pod_delete(void *ctx, json_t *pod)
{
    dc *c = ctx;
    json_t *ref = cm_controller_ref(pod);
    if (!ref || strcmp(json_string_value(json_object_get(ref, "kind")) ?: "", "ReplicaSet"))
        return;
    json_t *rs = ck_informer_get(c->sets, cm_ns(pod), json_string_value(json_object_get(ref, "name")));
    if (!rs)
        return;
    json_t *dref = cm_controller_ref(rs);
    if (is_dep_ref(dref)) {
        json_t *d = ck_informer_get(c->deps, cm_ns(rs), json_string_value(json_object_get(dref, "name")));
        if (d && !strcmp(cm_str(d, "spec.strategy.type") ?: "", "Recreate"))
            enqueue(c, cm_ns(d), cm_name(d));
        json_decref(d);
    }
    json_decref(rs);
}

/* ---------------------------------------------------------------- small helpers */

static long replicas_of(const json_t *o)
{
    return (long)cm_int(o, "spec.replicas", 1);
}

static long revision_of(const json_t *rs)
{
    const char *r = cm_annotation(rs, REV_ANN);
    return r ? atol(r) : 0;
}

/* intOrString against total: percentages round up for surge, down for unavailable. */
static long resolve(const json_t *v, long total, bool round_up, long dflt_pct)
{
    if (json_is_integer(v))
        return (long)json_integer_value(v);
    long pct = dflt_pct;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = strlen(s);
        pct = n && s[n - 1] == '%' ? atol(s) : atol(s);
    }
    return round_up ? (pct * total + 99) / 100 : pct * total / 100;
}

static bool is_recreate(const json_t *d)
{
    return !strcmp(cm_str(d, "spec.strategy.type") ?: "RollingUpdate", "Recreate");
}

static long max_surge(const json_t *d)
{
    if (is_recreate(d))
        return 0;
    return resolve(cm_get(d, "spec.strategy.rollingUpdate.maxSurge"), replicas_of(d), true, 25);
}

static long max_unavailable(const json_t *d)
{
    if (is_recreate(d))
        return 0;
    long r = replicas_of(d);
    long u = resolve(cm_get(d, "spec.strategy.rollingUpdate.maxUnavailable"), r, false, 25);
    if (u == 0 && max_surge(d) == 0)
        u = 1;
    return u > r ? r : u;
}

/* The template without the pod-template-hash label, for comparing. NEW reference. */
static json_t *template_sans_hash(const json_t *tmpl)
{
    json_t *t = json_deep_copy(tmpl ? tmpl : json_null());
    /* kubectl's undo patch carries "creationTimestamp": null, which means "unset" */
    json_t *md = json_object_get(t, "metadata");
    if (json_is_null(json_object_get(md, "creationTimestamp")))
        json_object_del(md, "creationTimestamp");
    json_t *labels = cm_get(t, "metadata.labels");
    if (labels)
        json_object_del(labels, HASH_LABEL);
    if (labels && !json_object_size(labels))
        json_object_del(cm_get(t, "metadata"), "labels");
    return t;
}

static void template_hash(const json_t *tmpl, long collisions, char out[16])
{
    json_t *t = template_sans_hash(tmpl);
    cm_hash(t, collisions, out);
    json_decref(t);
}

static bool same_template(const json_t *a, const json_t *b)
{
    json_t *x = template_sans_hash(a), *y = template_sans_hash(b);
    bool eq = json_equal(x, y);
    json_decref(x);
    json_decref(y);
    return eq;
}

static int by_creation(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int64_t cx = cm_time(x, "metadata.creationTimestamp"), cy = cm_time(y, "metadata.creationTimestamp");
    if (cx != cy)
        return cx < cy ? -1 : 1;
    return strcmp(cm_name(x), cm_name(y));
}

static int by_revision(const void *a, const void *b)
{
    long x = revision_of(*(json_t *const *)a), y = revision_of(*(json_t *const *)b);
    return x < y ? -1 : x > y;
}

/* ---------------------------------------------------------------- writes */

static json_t *put_rs(dc *c, json_t *rs, ck_error **err)
{
    return ck_client_update(cm_client(c->m), c->rsres, cm_ns(rs), rs, err);
}

/* Scale rs to n (and refresh its desired/max annotations); *rs is replaced by the result. */
static int scale_rs(dc *c, const json_t *d, json_t **rs, long n, ck_error **err)
{
    long old = replicas_of(*rs);
    char want_desired[32], want_max[32];
    snprintf(want_desired, sizeof want_desired, "%ld", replicas_of(d));
    snprintf(want_max, sizeof want_max, "%ld", replicas_of(d) + max_surge(d));
    const char *cd = cm_annotation(*rs, DESIRED_ANN), *cmx = cm_annotation(*rs, MAX_ANN);
    bool ann = !cd || strcmp(cd, want_desired) || !cmx || strcmp(cmx, want_max);
    if (old == n && !ann)
        return 0;
    json_t *copy = json_deep_copy(*rs);
    json_object_set_new(json_object_get(copy, "spec"), "replicas", json_integer(n));
    json_t *md = json_object_get(copy, "metadata");
    if (!json_object_get(md, "annotations"))
        json_object_set_new(md, "annotations", json_object());
    json_t *a = json_object_get(md, "annotations");
    json_object_set_new(a, DESIRED_ANN, json_string(want_desired));
    json_object_set_new(a, MAX_ANN, json_string(want_max));
    json_t *out = put_rs(c, copy, err);
    json_decref(copy);
    if (!out)
        return -1;
    if (old != n)
        cm_event(c->m, d, COMPONENT, "Normal", "ScalingReplicaSet",
                 "Scaled %s replica set %s from %ld to %ld", n > old ? "up" : "down", cm_name(out),
                 old, n);
    json_decref(*rs);
    *rs = out;
    return 1;
}

static int patch_refs(dc *c, const json_t *rs, json_t *refs, ck_error **err)
{
    json_t *patch = json_pack("{s:{s:O, s:s}}", "metadata", "ownerReferences", refs, "uid", cm_uid(rs));
    json_t *out = ck_client_patch(cm_client(c->m), c->rsres, cm_ns(rs), cm_name(rs), NULL,
                                  "application/merge-patch+json", patch, err);
    json_decref(patch);
    json_decref(out);
    return out ? 0 : -1;
}

/* The sets this deployment controls (adopting orphans, releasing strays), NEW array. */
static json_t *claim_sets(dc *c, const json_t *d, ck_error **err)
{
    ck_selector *sel = ck_label_selector_from_json(cm_get(d, "spec.selector"), NULL);
    json_t *all = ck_informer_list(c->sets), *mine = json_array();
    size_t i;
    json_t *rs;
    int rc = 0;
    json_array_foreach(all, i, rs) {
        if (strcmp(cm_ns(rs) ?: "", cm_ns(d) ?: ""))
            continue;
        json_t *ref = cm_controller_ref(rs);
        bool match = sel && ck_label_selector_matches(sel, cm_get(rs, "metadata.labels"));
        if (ref && !strcmp(json_string_value(json_object_get(ref, "uid")) ?: "", cm_uid(d))) {
            if (match || cm_deleting(d)) {
                json_array_append(mine, rs);
            } else {
                json_t *refs = json_array();
                size_t j;
                json_t *r;
                json_array_foreach(cm_get(rs, "metadata.ownerReferences"), j, r)
                    if (r != ref)
                        json_array_append(refs, r);
                if (patch_refs(c, rs, refs, err) < 0)
                    rc = -1;
                json_decref(refs);
            }
        } else if (!ref && match && !cm_deleting(d) && !cm_deleting(rs)) {
            json_t *refs = json_deep_copy(cm_get(rs, "metadata.ownerReferences"));
            if (!refs)
                refs = json_array();
            json_array_append_new(refs, cm_owner_ref(d, true));
            if (patch_refs(c, rs, refs, err) == 0)
                json_array_append(mine, rs);
            else
                rc = -1;
            json_decref(refs);
        }
        if (rc < 0)
            break;
    }
    ck_selector_free(sel);
    json_decref(all);
    if (rc < 0) {
        json_decref(mine);
        return NULL;
    }
    return mine;
}

/* ---------------------------------------------------------------- conditions and status */

static json_t *find_cond(json_t *status, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(status, "conditions"), i, c)
        if (!strcmp(json_string_value(json_object_get(c, "type")) ?: "", type))
            return c;
    return NULL;
}

static void remove_cond(json_t *status, const char *type)
{
    json_t *conds = json_object_get(status, "conditions");
    for (size_t i = 0; i < json_array_size(conds); i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(conds, i), "type")) ?: "", type)) {
            json_array_remove(conds, i);
            return;
        }
}

/* upstream SetDeploymentCondition: same status and reason = keep as is. */
static void set_cond(json_t *status, const char *type, const char *st, const char *reason,
                     const char *msg, bool keep_transition_if_same_status)
{
    json_t *cur = find_cond(status, type);
    char now[32];
    cm_now_str(now);
    if (cur && !strcmp(json_string_value(json_object_get(cur, "status")) ?: "", st) &&
        !strcmp(json_string_value(json_object_get(cur, "reason")) ?: "", reason) &&
        !keep_transition_if_same_status)
        return;
    char trans[32];
    snprintf(trans, sizeof trans, "%s", now);
    if (cur && !strcmp(json_string_value(json_object_get(cur, "status")) ?: "", st) &&
        json_string_value(json_object_get(cur, "lastTransitionTime")))
        snprintf(trans, sizeof trans, "%s", json_string_value(json_object_get(cur, "lastTransitionTime")));
    remove_cond(status, type);
    if (!json_object_get(status, "conditions"))
        json_object_set_new(status, "conditions", json_array());
    json_array_append_new(json_object_get(status, "conditions"),
                          json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", type, "status", st,
                                    "lastUpdateTime", now, "lastTransitionTime", trans, "reason",
                                    reason, "message", msg));
}

static json_t *calc_status(const json_t *d, json_t *sets, const json_t *new_rs)
{
    long replicas = 0, updated = 0, ready = 0, available = 0, spec_total = 0;
    size_t i;
    json_t *rs;
    json_array_foreach(sets, i, rs) {
        replicas += (long)cm_int(rs, "status.replicas", 0);
        ready += (long)cm_int(rs, "status.readyReplicas", 0);
        available += (long)cm_int(rs, "status.availableReplicas", 0);
        spec_total += replicas_of(rs);
    }
    if (new_rs)
        updated = (long)cm_int(new_rs, "status.replicas", 0);
    long unavailable = spec_total - available;
    if (unavailable < 0)
        unavailable = 0;
    json_t *st = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "observedGeneration",
                           (json_int_t)cm_int(d, "metadata.generation", 0), "replicas",
                           (json_int_t)replicas, "updatedReplicas", (json_int_t)updated,
                           "readyReplicas", (json_int_t)ready, "availableReplicas",
                           (json_int_t)available, "unavailableReplicas", (json_int_t)unavailable);
    json_t *cc = cm_get(d, "status.collisionCount");
    if (cc)
        json_object_set(st, "collisionCount", cc);
    json_t *conds = cm_get(d, "status.conditions");
    json_object_set_new(st, "conditions", conds ? json_deep_copy(conds) : json_array());
    if (available >= replicas_of(d) - max_unavailable(d))
        set_cond(st, "Available", "True", "MinimumReplicasAvailable",
                 "Deployment has minimum availability.", false);
    else
        set_cond(st, "Available", "False", "MinimumReplicasUnavailable",
                 "Deployment does not have minimum availability.", false);
    return st;
}

static bool complete(const json_t *d, const json_t *st)
{
    long r = replicas_of(d);
    return cm_int(st, "updatedReplicas", 0) == r && cm_int(st, "replicas", 0) == r &&
           cm_int(st, "availableReplicas", 0) == r &&
           cm_int(st, "observedGeneration", 0) >= cm_int(d, "metadata.generation", 0);
}

static bool progressing(const json_t *d, const json_t *st)
{
    json_t *o = cm_get(d, "status");
    long oold = cm_int(o, "replicas", 0) - cm_int(o, "updatedReplicas", 0);
    long nold = cm_int(st, "replicas", 0) - cm_int(st, "updatedReplicas", 0);
    return cm_int(st, "updatedReplicas", 0) > cm_int(o, "updatedReplicas", 0) || nold < oold ||
           cm_int(st, "readyReplicas", 0) > cm_int(o, "readyReplicas", 0) ||
           cm_int(st, "availableReplicas", 0) > cm_int(o, "availableReplicas", 0);
}

static int write_status(dc *c, const json_t *d, json_t *st, ck_error **err)
{
    if (json_equal(cm_get(d, "status"), st))
        return 0;
    json_t *copy = json_deep_copy(d);
    json_object_set(copy, "status", st);
    json_t *out = ck_client_update_status(cm_client(c->m), c->dres, cm_ns(d), copy, err);
    json_decref(copy);
    if (!out)
        return -1;
    json_decref(out);
    return 0;
}

/* Status plus the Progressing condition (kubectl rollout status reads both). */
static int sync_rollout_status(dc *c, const json_t *d, json_t *sets, const json_t *new_rs,
                               bool made, const char *key, ck_error **err)
{
    json_t *st = calc_status(d, sets, new_rs);
    if (new_rs && !cm_bool(d, "spec.paused", false)) {
        cleanup_free char *msg = NULL;
        if (made) {
            msg = xasprintf("Created new replica set \"%s\"", cm_name(new_rs));
            set_cond(st, "Progressing", "True", "NewReplicaSetCreated", msg, true);
        } else if (!find_cond(st, "Progressing")) {
            msg = xasprintf("Found new replica set \"%s\"", cm_name(new_rs));
            set_cond(st, "Progressing", "True", "FoundNewReplicaSet", msg, true);
        }
    }
    long deadline = (long)cm_int(d, "spec.progressDeadlineSeconds", 600);
    bool paused = cm_bool(d, "spec.paused", false);
    json_t *cur = find_cond(st, "Progressing");
    const char *cur_reason = cur ? json_string_value(json_object_get(cur, "reason")) : NULL;
    if (paused) {
        if (!cur_reason || strcmp(cur_reason, "DeploymentPaused"))
            set_cond(st, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", false);
    } else if (cur_reason && !strcmp(cur_reason, "DeploymentPaused")) {
        set_cond(st, "Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed", false);
    } else if (new_rs && !(cur_reason && !strcmp(cur_reason, "ProgressDeadlineExceeded") &&
                           !progressing(d, st) && !complete(d, st))) {
        cleanup_free char *msg = NULL;
        if (complete(d, st)) {
            msg = xasprintf("ReplicaSet \"%s\" has successfully progressed.", cm_name(new_rs));
            set_cond(st, "Progressing", "True", "NewReplicaSetAvailable", msg, false);
        } else if (progressing(d, st)) {
            msg = xasprintf("ReplicaSet \"%s\" is progressing.", cm_name(new_rs));
            set_cond(st, "Progressing", "True", "ReplicaSetUpdated", msg, true);
        } else if (cur && cm_time(cur, "lastUpdateTime") + deadline <= cm_now()) {
            msg = xasprintf("ReplicaSet \"%s\" has timed out progressing.", cm_name(new_rs));
            set_cond(st, "Progressing", "False", "ProgressDeadlineExceeded", msg, false);
            cm_event(c->m, d, COMPONENT, "Warning", "ProgressDeadlineExceeded",
                     "Deployment %s has timed out progressing.", cm_name(d));
        }
        if (!complete(d, st) && deadline > 0) {
            json_t *pc = find_cond(st, "Progressing");
            int64_t left = pc ? cm_time(pc, "lastUpdateTime") + deadline - cm_now() : deadline;
            ck_workqueue_add_after(c->q, key, (left > 0 ? left : 1) * 1000 + 200);
        }
    }
    int rc = write_status(c, d, st, err);
    json_decref(st);
    return rc;
}

/* ---------------------------------------------------------------- new/old sets */

/* The set running d's template: found (its revision bumped to the next one when older) or, with
 * create, made.  *created tells which.  NULL without create when none exists. */
static json_t *new_set(dc *c, const json_t *d, json_t *sets, json_t *olds, bool create,
                       bool *made, ck_error **err)
{
    json_t *tmpl = cm_get(d, "spec.template");
    json_t *existing = NULL;
    size_t i;
    json_t *rs;
    json_array_foreach(sets, i, rs)
        if (same_template(cm_get(rs, "spec.template"), tmpl) && !existing)
            existing = rs;
    long max_rev = 0;
    json_array_foreach(olds, i, rs)
        if (revision_of(rs) > max_rev)
            max_rev = revision_of(rs);
    char rev[32];
    snprintf(rev, sizeof rev, "%ld", max_rev + 1);
    *made = false;
    if (existing) {
        json_t *out = json_incref(existing);
        if (revision_of(existing) < max_rev + 1 ||
            (long)cm_int(existing, "spec.minReadySeconds", 0) != (long)cm_int(d, "spec.minReadySeconds", 0)) {
            json_t *copy = json_deep_copy(existing);
            json_t *md = json_object_get(copy, "metadata");
            if (!json_object_get(md, "annotations"))
                json_object_set_new(md, "annotations", json_object());
            json_object_set_new(json_object_get(md, "annotations"), REV_ANN, json_string(rev));
            json_object_set_new(json_object_get(copy, "spec"), "minReadySeconds",
                                json_integer(cm_int(d, "spec.minReadySeconds", 0)));
            json_decref(out);
            out = put_rs(c, copy, err);
            json_decref(copy);
        }
        return out;
    }
    if (!create)
        return NULL;

    long collisions = (long)cm_int(d, "status.collisionCount", 0);
    char hash[16];
    template_hash(tmpl, collisions, hash);
    cleanup_free char *name = xasprintf("%s-%s", cm_name(d), hash);
    json_t *t = json_deep_copy(tmpl);
    json_t *tmd = json_object_get(t, "metadata");
    if (!tmd) {
        tmd = json_object();
        json_object_set_new(t, "metadata", tmd);
    }
    if (!json_object_get(tmd, "labels"))
        json_object_set_new(tmd, "labels", json_object());
    json_object_set_new(json_object_get(tmd, "labels"), HASH_LABEL, json_string(hash));
    json_t *sel = json_deep_copy(cm_get(d, "spec.selector"));
    if (!json_object_get(sel, "matchLabels"))
        json_object_set_new(sel, "matchLabels", json_object());
    json_object_set_new(json_object_get(sel, "matchLabels"), HASH_LABEL, json_string(hash));

    /* replicas: rolling update starts within the surge budget; recreate starts full */
    long want = replicas_of(d), total = 0;
    json_array_foreach(sets, i, rs)
        total += replicas_of(rs);
    long n = want;
    if (!is_recreate(d)) {
        long room = want + max_surge(d) - total;
        n = room < 0 ? 0 : (room < want ? room : want);
    }
    json_t *ann = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(cm_get(d, "metadata.annotations"), k, v)
        if (strcmp(k, "kubectl.kubernetes.io/last-applied-configuration") && strcmp(k, REV_ANN))
            json_object_set(ann, k, v);
    json_object_set_new(ann, REV_ANN, json_string(rev));
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", want);
    json_object_set_new(ann, DESIRED_ANN, json_string(buf));
    snprintf(buf, sizeof buf, "%ld", want + max_surge(d));
    json_object_set_new(ann, MAX_ANN, json_string(buf));
    json_t *labels = json_deep_copy(cm_get(t, "metadata.labels"));
    json_t *obj = json_pack(
        "{s:s, s:s, s:{s:s, s:s, s:o, s:o, s:[o]}, s:{s:I, s:I, s:o, s:o}}",
        "apiVersion", "apps/v1", "kind", "ReplicaSet",
        "metadata", "name", name, "namespace", cm_ns(d), "labels", labels, "annotations", ann,
        "ownerReferences", cm_owner_ref(d, true),
        "spec", "replicas", (json_int_t)n, "minReadySeconds",
        (json_int_t)cm_int(d, "spec.minReadySeconds", 0), "selector", sel, "template", t);
    json_t *out = ck_client_create(cm_client(c->m), c->rsres, cm_ns(d), obj, err);
    json_decref(obj);
    if (!out && (*err)->code == CK_E_EXISTS) {
        /* Ours from an earlier sync not yet in the cache, or a real hash collision. */
        ck_error *gerr = NULL;
        json_t *got = ck_client_get(cm_client(c->m), c->rsres, cm_ns(d), name, &gerr);
        json_t *ref = got ? cm_controller_ref(got) : NULL;
        if (got && ref && !strcmp(json_string_value(json_object_get(ref, "uid")) ?: "", cm_uid(d)) &&
            same_template(cm_get(got, "spec.template"), tmpl)) {
            ck_error_free(*err);
            *err = NULL;
            return got;
        }
        ck_error_free(gerr);
        json_decref(got);
        /* collision: bump status.collisionCount so the next sync picks another name */
        json_t *copy = json_deep_copy(d);
        json_object_set_new(json_object_get(copy, "status"), "collisionCount",
                            json_integer(collisions + 1));
        json_t *u = ck_client_update_status(cm_client(c->m), c->dres, cm_ns(d), copy, NULL);
        json_decref(u);
        json_decref(copy);
        return NULL;
    }
    if (!out)
        return NULL;
    *made = true;
    if (n > 0)
        cm_event(c->m, d, COMPONENT, "Normal", "ScalingReplicaSet",
                 "Scaled up replica set %s from 0 to %ld", name, n);
    return out;
}

/* Keep the deployment's own revision annotation equal to its new set's. */
static int sync_dep_revision(dc *c, const json_t *d, const json_t *new_rs, ck_error **err)
{
    const char *want = cm_annotation(new_rs, REV_ANN), *have = cm_annotation(d, REV_ANN);
    if (!want || (have && !strcmp(want, have)))
        return 0;
    json_t *patch = json_pack("{s:{s:{s:s}}}", "metadata", "annotations", REV_ANN, want);
    json_t *out = ck_client_patch(cm_client(c->m), c->dres, cm_ns(d), cm_name(d), NULL,
                                  "application/merge-patch+json", patch, err);
    json_decref(patch);
    json_decref(out);
    return out ? 0 : -1;
}

/* ---------------------------------------------------------------- scaling & rollouts */

static long sum_spec(json_t *sets)
{
    long n = 0;
    size_t i;
    json_t *rs;
    json_array_foreach(sets, i, rs)
        n += replicas_of(rs);
    return n;
}

/* replicas changed: the one active set takes it all, else scale proportionally. */
static int scale(dc *c, const json_t *d, json_t *sets, json_t *new_rs, json_t *olds, ck_error **err)
{
    json_t *active = json_array();
    size_t i;
    json_t *rs;
    json_array_foreach(sets, i, rs)
        if (replicas_of(rs) > 0)
            json_array_append(active, rs);
    long want = replicas_of(d);
    int rc = 0;
    if (json_array_size(active) <= 1) {
        json_t *target = json_array_size(active) ? json_array_get(active, 0) : new_rs;
        if (!target && json_array_size(olds)) {   /* the newest old set */
            target = json_array_get(olds, 0);
            json_array_foreach(olds, i, rs)
                if (by_creation(&rs, &target) > 0)
                    target = rs;
        }
        if (target) {
            json_t *t = json_incref(target);
            rc = scale_rs(c, d, &t, want, err) < 0 ? -1 : 0;
            json_decref(t);
        }
        json_decref(active);
        return rc;
    }
    if (new_rs && replicas_of(new_rs) == want && cm_int(new_rs, "status.availableReplicas", 0) == want) {
        json_array_foreach(olds, i, rs) {
            json_t *t = json_incref(rs);
            if (scale_rs(c, d, &t, 0, err) < 0)
                rc = -1;
            json_decref(t);
            if (rc < 0)
                break;
        }
        json_decref(active);
        return rc;
    }
    if (!is_recreate(d)) {
        long allowed = want + max_surge(d), cur = sum_spec(active);
        long to_add = allowed - cur;
        if (to_add != 0 && cur > 0) {
            long left = to_add;
            size_t n = json_array_size(active);
            for (size_t k = 0; k < n && rc == 0; k++) {
                json_t *t = json_incref(json_array_get(active, k));
                long share = k + 1 == n ? left : to_add * replicas_of(t) / cur;
                if ((to_add > 0 && share > left) || (to_add < 0 && share < left))
                    share = left;
                long target = replicas_of(t) + share;
                if (target < 0) {
                    share -= target;
                    target = 0;
                }
                left -= share;
                rc = scale_rs(c, d, &t, target, err) < 0 ? -1 : 0;
                json_decref(t);
            }
        }
    }
    json_decref(active);
    return rc;
}

static bool scaling_event(const json_t *d, json_t *sets)
{
    char want[32];
    snprintf(want, sizeof want, "%ld", replicas_of(d));
    size_t i;
    json_t *rs;
    json_array_foreach(sets, i, rs) {
        if (replicas_of(rs) <= 0)
            continue;
        const char *a = cm_annotation(rs, DESIRED_ANN);
        if (a && strcmp(a, want))
            return true;
    }
    return false;
}

static int reconcile_new(dc *c, const json_t *d, json_t *sets, json_t **new_rs, ck_error **err)
{
    long want = replicas_of(d), cur = replicas_of(*new_rs);
    if (cur == want)
        return 0;
    if (cur > want)
        return scale_rs(c, d, new_rs, want, err);
    long room = want + max_surge(d) - sum_spec(sets);
    if (room <= 0)
        return 0;
    long n = cur + (room < want - cur ? room : want - cur);
    return scale_rs(c, d, new_rs, n, err);
}

static int reconcile_old(dc *c, const json_t *d, json_t *sets, json_t *olds, const json_t *new_rs,
                         ck_error **err)
{
    if (sum_spec(olds) == 0)
        return 0;
    long want = replicas_of(d);
    long min_avail = want - max_unavailable(d);
    long new_unavail = replicas_of(new_rs) - (long)cm_int(new_rs, "status.availableReplicas", 0);
    long max_down = sum_spec(sets) - min_avail - new_unavail;
    if (max_down <= 0)
        return 0;
    size_t n = json_array_size(olds);
    json_t **v = xcalloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(olds, i));
    qsort(v, n, sizeof *v, by_creation);
    int scaled = 0;
    /* first the pods that are not available anyway */
    long cleaned = 0;
    for (size_t i = 0; i < n && cleaned < max_down; i++) {
        long unhealthy = replicas_of(v[i]) - (long)cm_int(v[i], "status.availableReplicas", 0);
        if (unhealthy <= 0)
            continue;
        long down = unhealthy < max_down - cleaned ? unhealthy : max_down - cleaned;
        int r = scale_rs(c, d, &v[i], replicas_of(v[i]) - down, err);
        if (r < 0) {
            scaled = -1;
            goto out;
        }
        cleaned += down;
        scaled |= r;
    }
    /* then available ones, keeping minAvailable */
    long available = 0;
    size_t i;
    json_t *rs;
    json_array_foreach(sets, i, rs)
        available += (long)cm_int(rs, "status.availableReplicas", 0);
    long budget = available - min_avail - cleaned;
    for (size_t k = 0; k < n && budget > 0; k++) {
        long r = replicas_of(v[k]);
        if (r == 0)
            continue;
        long down = r < budget ? r : budget;
        int s = scale_rs(c, d, &v[k], r - down, err);
        if (s < 0) {
            scaled = -1;
            goto out;
        }
        budget -= down;
        scaled |= s;
    }
out:
    for (size_t k = 0; k < n; k++)
        json_decref(v[k]);
    free(v);
    return scaled;
}

/* Delete fully scaled-down old sets beyond revisionHistoryLimit, oldest revision first. */
static void cleanup(dc *c, const json_t *d, json_t *olds)
{
    long limit = (long)cm_int(d, "spec.revisionHistoryLimit", 10);
    size_t n = json_array_size(olds);
    json_t **v = xcalloc(n ? n : 1, sizeof *v);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *rs = json_array_get(olds, i);
        if (replicas_of(rs) == 0 && cm_int(rs, "status.replicas", 0) == 0 && !cm_deleting(rs))
            v[m++] = rs;
    }
    qsort(v, m, sizeof *v, by_revision);
    for (long i = 0; i < (long)m - limit; i++)
        cm_delete(c->m, c->rsres, cm_ns(v[i]), cm_name(v[i]), cm_uid(v[i]), NULL, NULL);
    free(v);
}

static bool old_pods_running(dc *c, json_t *olds)
{
    json_t *pods = ck_informer_list(c->pods);
    bool running = false;
    size_t i, j;
    json_t *pod, *rs;
    json_array_foreach(pods, i, pod) {
        json_t *ref = cm_controller_ref(pod);
        if (!ref)
            continue;
        const char *uid = json_string_value(json_object_get(ref, "uid"));
        json_array_foreach(olds, j, rs)
            if (uid && !strcmp(uid, cm_uid(rs))) {
                const char *ph = cm_str(pod, "status.phase");
                if (!ph || (strcmp(ph, "Succeeded") && strcmp(ph, "Failed")))
                    running = true;
            }
        if (running)
            break;
    }
    json_decref(pods);
    return running;
}

static int sync_dep(void *self, const char *key, ck_error **err)
{
    dc *c = self;
    cleanup_free char *ns = NULL;
    const char *name;
    cm_split_key(key, &ns, &name);
    json_t *d = ck_informer_get(c->deps, ns, name);
    if (!d)
        return 0;
    int rc = 0;
    json_t *sets = claim_sets(c, d, err), *olds = json_array(), *new_rs = NULL;
    if (!sets) {
        json_decref(d);
        json_decref(olds);
        return -1;
    }
    json_t *tmpl = cm_get(d, "spec.template");
    size_t i;
    json_t *rs;
    bool made = false;
    if (cm_deleting(d)) {
        new_rs = NULL;
        json_array_foreach(sets, i, rs)
            if (same_template(cm_get(rs, "spec.template"), tmpl))
                new_rs = json_incref(rs);
        rc = write_status(c, d, json_object_get(d, "status"), err);
        goto out;
    }
    json_array_foreach(sets, i, rs)
        if (!same_template(cm_get(rs, "spec.template"), tmpl))
            json_array_append(olds, rs);

    bool paused = cm_bool(d, "spec.paused", false);
    if (paused || scaling_event(d, sets)) {
        new_rs = new_set(c, d, sets, olds, false, &made, err);
        if (!new_rs && *err) {
            rc = -1;
            goto out;
        }
        if (scale(c, d, sets, new_rs, olds, err) < 0) {
            rc = -1;
            goto out;
        }
        if (paused)
            cleanup(c, d, olds);
        rc = sync_rollout_status(c, d, sets, new_rs, made, key, err);
        goto out;
    }

    if (is_recreate(d)) {
        new_rs = new_set(c, d, sets, olds, false, &made, err);
        if (!new_rs && *err) {
            rc = -1;
            goto out;
        }
        int scaled = 0;
        json_array_foreach(olds, i, rs) {
            json_t *t = json_incref(rs);
            int r = scale_rs(c, d, &t, 0, err);
            json_decref(t);
            if (r < 0) {
                rc = -1;
                goto out;
            }
            scaled |= r;
        }
        if (scaled || old_pods_running(c, olds)) {
            rc = sync_rollout_status(c, d, sets, new_rs, made, key, err);
            goto out;
        }
        if (!new_rs) {
            new_rs = new_set(c, d, sets, olds, true, &made, err);
            if (!new_rs) {
                rc = *err ? -1 : 0;
                goto out;
            }
            json_array_append(sets, new_rs);
        }
        if (scale_rs(c, d, &new_rs, replicas_of(d), err) < 0) {
            rc = -1;
            goto out;
        }
    } else {
        new_rs = new_set(c, d, sets, olds, true, &made, err);
        if (!new_rs) {
            rc = *err ? -1 : 0;
            goto out;
        }
        if (made)
            json_array_append(sets, new_rs);
        int r = reconcile_new(c, d, sets, &new_rs, err);
        if (r < 0) {
            rc = -1;
            goto out;
        }
        if (r == 0) {
            r = reconcile_old(c, d, sets, olds, new_rs, err);
            if (r < 0) {
                rc = -1;
                goto out;
            }
        }
    }
    if (sync_dep_revision(c, d, new_rs, err) < 0) {
        rc = -1;
        goto out;
    }
    /* new_rs may have been rewritten: compute status over the freshest copies */
    json_t *fresh = json_array();
    json_array_foreach(sets, i, rs)
        json_array_append(fresh, !strcmp(cm_uid(rs), cm_uid(new_rs)) ? new_rs : rs);
    json_t *st_probe = calc_status(d, fresh, new_rs);
    if (complete(d, st_probe))
        cleanup(c, d, olds);
    json_decref(st_probe);
    rc = sync_rollout_status(c, d, fresh, new_rs, made, key, err);
    json_decref(fresh);
out:
    json_decref(new_rs);
    json_decref(olds);
    json_decref(sets);
    json_decref(d);
    return rc;
}

int cm_deployment_init(cm *m)
{
    dc *c = xcalloc(1, sizeof *c);
    c->m = m;
    c->dres = cm_res("apps", "deployments");
    c->rsres = cm_res("apps", "replicasets");
    ck_informer_handlers dh = {on_dep, on_dep_update, on_dep};
    c->deps = cm_informer(m, "apps", "deployments", &dh, c);
    ck_informer_handlers rh = {on_rs, on_rs_update, on_rs};
    c->sets = cm_informer(m, "apps", "replicasets", &rh, c);
    ck_informer_handlers ph = {NULL, NULL, on_pod_delete};
    c->pods = cm_informer(m, "", "pods", &ph, c);
    c->q = cm_queue(m, COMPONENT, 5, sync_dep, c);
    return 0;
}
