/* statefulset.c - the StatefulSet controller: pods with stable names <set>-<ordinal>, as
 * kube-controller-manager 1.33.
 *
 * Ordinals run from spec.ordinals.start (default 0) for spec.replicas pods.  Each pod gets
 * hostname <set>-<ordinal>, subdomain spec.serviceName, the labels
 * statefulset.kubernetes.io/pod-name and apps.kubernetes.io/pod-index, and for every
 * volumeClaimTemplate a PVC <template>-<set>-<ordinal>, created before the pod (a pod whose claim
 * is being deleted waits) and mounted as a volume of the template's name.
 * persistentVolumeClaimRetentionPolicy decides the claims' owner references as upstream:
 * whenDeleted=Delete makes the set their controller (the garbage collector removes them with the
 * set), whenScaled=Delete makes a pod beyond the replicas the controller of its claims before the
 * pod is deleted (they go with it); Retain (the default) owns nothing.
 *
 * OrderedReady creates ordinals in order, each once the ones before are Running and available
 * (Ready for minReadySeconds), and removes surplus ordinals from the highest, one at a time;
 * Parallel does both at once.  RollingUpdate replaces pods whose controller-revision-hash is not
 * the update revision, from the highest ordinal down to spec.updateStrategy.rollingUpdate.
 * partition, one at a time and only while every pod is available; a pod below the partition that
 * is deleted comes back from the current revision (its template read from the ControllerRevision).
 * OnDelete replaces nothing: deleted pods come back from the update revision.  Status carries
 * currentRevision/updateRevision (<set>-<hash>; the current one moves to the update revision when a
 * RollingUpdate has updated and readied every pod) and replicas/ready/available/current/updated
 * counts for `kubectl rollout status sts`.
 *
 * Every template gets a ControllerRevision named as its update revision (history.c), so
 * `kubectl rollout history/undo sts` work as upstream.
 *
 * Limits: no maxUnavailable (alpha upstream), failed pods are replaced without backoff.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "controllers/cm.h"
#include "lib/log.h"
#include "lib/util.h"

#define COMPONENT "statefulset-controller"
#define HASH_LABEL "controller-revision-hash"
#define MAX_REPLICAS 10000

typedef struct ssc {
    cm *m;
    ck_informer *sets, *pods, *pvcs, *revs;
    ck_workqueue *q;
} ssc;

static void on_set(void *ctx, json_t *s)
{
    ssc *c = ctx;
    cleanup_free char *k = ck_informer_key(s);
    ck_workqueue_add(c->q, k);
}

static void on_set_update(void *ctx, json_t *old, json_t *s)
{
    (void)old;
    on_set(ctx, s);
}

/* pods and revisions: their owner looks again */
static void on_pod(void *ctx, json_t *pod)
{
    ssc *c = ctx;
    cleanup_free char *k = cm_owner_key(pod, "StatefulSet");
    if (k)
        ck_workqueue_add(c->q, k);
}

static void on_pod_update(void *ctx, json_t *old, json_t *pod)
{
    (void)old;
    on_pod(ctx, pod);
}

/* ordinal of "<set>-<n>", or -1 */
static long ordinal_of(const char *set, const char *pod)
{
    size_t n = strlen(set);
    if (strncmp(pod, set, n) || pod[n] != '-' || !pod[n + 1])
        return -1;
    char *end;
    long v = strtol(pod + n + 1, &end, 10);
    return *end || v < 0 ? -1 : v;
}

static const char *hash_of(const json_t *pod)
{
    return json_string_value(json_object_get(cm_get(pod, "metadata.labels"), HASH_LABEL)) ?: "";
}

static bool owned_by(const json_t *obj, const json_t *owner)
{
    json_t *ref = cm_controller_ref(obj);
    return ref && !strcmp(json_string_value(json_object_get(ref, "uid")) ?: "", cm_uid(owner) ?: "");
}

/* ---------------------------------------------------------------- claims */

static bool policy_delete(const json_t *set, const char *when)
{
    json_t *p = cm_get(set, "spec.persistentVolumeClaimRetentionPolicy");
    return !strcmp(json_string_value(json_object_get(p, when)) ?: "Retain", "Delete");
}

static bool ref_to(const json_t *ref, const json_t *obj)
{
    return obj && !strcmp(json_string_value(json_object_get(ref, "uid")) ?: "", cm_uid(obj) ?: "") &&
           !strcmp(json_string_value(json_object_get(ref, "name")) ?: "", cm_name(obj));
}

/* updateClaimOwnerRefForSetAndPod (declared in cm.h). */
json_t *cm_sts_claim_refs(const json_t *claim_refs_now, const json_t *set, const json_t *pod,
                          bool scaled_down)
{
    json_t *refs = json_array();
    bool foreign_controller = false;
    size_t i;
    json_t *r;
    json_array_foreach(claim_refs_now, i, r) {
        if (ref_to(r, set) || ref_to(r, pod))
            continue;
        foreign_controller |= json_is_true(json_object_get(r, "controller"));
        json_array_append(refs, r);
    }
    if (foreign_controller)
        return refs;
    bool del_deleted = policy_delete(set, "whenDeleted"), del_scaled = policy_delete(set, "whenScaled");
    if (scaled_down && del_scaled && pod)
        json_array_append_new(refs, json_pack("{s:s, s:s, s:s, s:s, s:b, s:b}", "apiVersion", "v1",
                                              "kind", "Pod", "name", cm_name(pod), "uid", cm_uid(pod),
                                              "controller", 1, "blockOwnerDeletion", 1));
    else if (!scaled_down && del_deleted)
        json_array_append_new(refs, cm_owner_ref(set, true));
    return refs;
}

static char *claim_name(const json_t *tmpl, const json_t *set, long ord)
{
    return xasprintf("%s-%s-%ld", cm_name(tmpl), cm_name(set), ord);
}

/* Bring the owner references of pod's existing claims in line with the retention policy. */
static int fix_claims(ssc *c, const json_t *set, const json_t *pod, long ord, bool scaled_down,
                      ck_error **err)
{
    size_t i;
    json_t *t;
    json_array_foreach(cm_get(set, "spec.volumeClaimTemplates"), i, t) {
        cleanup_free char *claim = claim_name(t, set, ord);
        json_t *have = ck_informer_get(c->pvcs, cm_ns(set), claim);
        if (!have || cm_deleting(have)) {
            json_decref(have);
            continue;
        }
        json_t *want = cm_sts_claim_refs(cm_get(have, "metadata.ownerReferences"), set, pod, scaled_down);
        json_t *now = cm_get(have, "metadata.ownerReferences");
        bool same = json_array_size(want) == json_array_size(now) &&
                    (!json_array_size(want) || json_equal(want, now));
        if (!same) {
            json_t *patch = json_pack("{s:{s:O, s:s}}", "metadata", "ownerReferences", want, "uid",
                                      cm_uid(have) ?: "");
            ck_error *e = NULL;
            json_t *out = ck_client_patch(cm_client(c->m), cm_res("", "persistentvolumeclaims"),
                                          cm_ns(set), claim, NULL, "application/merge-patch+json",
                                          patch, &e);
            json_decref(patch);
            if (!out && e->code != CK_E_NOT_FOUND) {
                *err = e;
                json_decref(want);
                json_decref(have);
                return -1;
            }
            ck_error_free(e);
            json_decref(out);
        }
        json_decref(want);
        json_decref(have);
    }
    return 0;
}

/* Create the missing claims of ordinal ord; 1 when one is being deleted (the pod must wait). */
static int ensure_pvcs(ssc *c, const json_t *set, long ord, ck_error **err)
{
    size_t i;
    json_t *t;
    json_array_foreach(cm_get(set, "spec.volumeClaimTemplates"), i, t) {
        cleanup_free char *claim = claim_name(t, set, ord);
        json_t *have = ck_informer_get(c->pvcs, cm_ns(set), claim);
        if (have) {
            bool going = cm_deleting(have);
            json_decref(have);
            if (going)
                return 1;
            continue;
        }
        json_t *md = json_pack("{s:s, s:s}", "name", claim, "namespace", cm_ns(set));
        json_t *labels = cm_copy_object(set, "spec.selector.matchLabels");
        if (cm_get(t, "metadata.labels"))
            json_object_update(labels, cm_get(t, "metadata.labels"));
        json_object_set_new(md, "labels", labels);
        if (cm_get(t, "metadata.annotations"))
            json_object_set(md, "annotations", cm_get(t, "metadata.annotations"));
        json_t *refs = cm_sts_claim_refs(NULL, set, NULL, false);
        if (json_array_size(refs))
            json_object_set(md, "ownerReferences", refs);
        json_decref(refs);
        json_t *pvc = json_pack("{s:s, s:s, s:o, s:o}", "apiVersion", "v1", "kind",
                                "PersistentVolumeClaim", "metadata", md, "spec",
                                cm_copy_object(t, "spec"));
        ck_error *e = NULL;
        json_t *out = ck_client_create(cm_client(c->m), cm_res("", "persistentvolumeclaims"),
                                       cm_ns(set), pvc, &e);
        json_decref(pvc);
        if (!out && e->code != CK_E_EXISTS) {
            cm_event(c->m, set, COMPONENT, "Warning", "FailedCreate",
                     "create Claim %s for Pod %s-%ld in StatefulSet %s failed error: %s", claim,
                     cm_name(set), ord, cm_name(set), e->msg);
            *err = e;
            return -1;
        }
        if (out)
            cm_event(c->m, set, COMPONENT, "Normal", "SuccessfulCreate",
                     "create Claim %s Pod %s-%ld in StatefulSet %s success", claim, cm_name(set), ord,
                     cm_name(set));
        ck_error_free(e);
        json_decref(out);
    }
    return 0;
}

/* ---------------------------------------------------------------- pods */

/* The pod template of revision rev: the set's own for the update revision, else the one the
 * ControllerRevision's data restores.  Borrowed from set or revs' copy (*hold: free it). */
static const json_t *template_of(ssc *c, const json_t *set, const char *rev, const char *update_rev,
                                 json_t **hold)
{
    *hold = NULL;
    if (!strcmp(rev, update_rev))
        return cm_get(set, "spec.template");
    json_t *cr = ck_informer_get(c->revs, cm_ns(set), rev);
    json_t *t = cm_get(cr, "data.spec.template");
    if (!t) {
        json_decref(cr);
        return cm_get(set, "spec.template");
    }
    *hold = cr;
    return t;
}

static int create_pod(ssc *c, const json_t *set, long ord, const char *rev, const json_t *tmpl,
                      ck_error **err)
{
    int pvc = ensure_pvcs(c, set, ord, err);
    if (pvc < 0)
        return -1;
    if (pvc > 0) {
        cleanup_free char *key = ck_informer_key(set);
        ck_workqueue_add_after(c->q, key, 1000);   /* a claim is being deleted: wait for it */
        return 0;
    }
    cleanup_free char *name = xasprintf("%s-%ld", cm_name(set), ord);
    char idx[32];
    snprintf(idx, sizeof idx, "%ld", ord);
    json_t *labels = cm_copy_object(tmpl, "metadata.labels");
    json_object_set_new(labels, HASH_LABEL, json_string(rev));
    json_object_set_new(labels, "statefulset.kubernetes.io/pod-name", json_string(name));
    json_object_set_new(labels, "apps.kubernetes.io/pod-index", json_string(idx));
    json_t *md = json_pack("{s:s, s:s, s:o, s:[o]}", "name", name, "namespace", cm_ns(set), "labels",
                           labels, "ownerReferences", cm_owner_ref(set, true));
    if (cm_get(tmpl, "metadata.annotations"))
        json_object_set_new(md, "annotations", json_deep_copy(cm_get(tmpl, "metadata.annotations")));
    json_t *spec = cm_copy_object(tmpl, "spec");
    json_object_set_new(spec, "hostname", json_string(name));
    if (cm_str(set, "spec.serviceName") && *cm_str(set, "spec.serviceName"))
        json_object_set_new(spec, "subdomain", json_string(cm_str(set, "spec.serviceName")));
    size_t i;
    json_t *t;
    json_array_foreach(cm_get(set, "spec.volumeClaimTemplates"), i, t) {
        if (!json_object_get(spec, "volumes"))
            json_object_set_new(spec, "volumes", json_array());
        cleanup_free char *claim = claim_name(t, set, ord);
        json_array_append_new(json_object_get(spec, "volumes"),
                              json_pack("{s:s, s:{s:s}}", "name", cm_name(t), "persistentVolumeClaim",
                                        "claimName", claim));
    }
    json_t *pod = json_pack("{s:s, s:s, s:o, s:o}", "apiVersion", "v1", "kind", "Pod", "metadata", md,
                            "spec", spec);
    ck_error *e = NULL;
    json_t *out = ck_client_create(cm_client(c->m), cm_res("", "pods"), cm_ns(set), pod, &e);
    json_decref(pod);
    if (!out) {
        if (e->code == CK_E_EXISTS) {   /* our cache lags; the next sync sees it */
            ck_error_free(e);
            return 0;
        }
        cm_event(c->m, set, COMPONENT, "Warning", "FailedCreate",
                 "create Pod %s in StatefulSet %s failed error: %s", name, cm_name(set), e->msg);
        *err = e;
        return -1;
    }
    cm_event(c->m, set, COMPONENT, "Normal", "SuccessfulCreate", "create Pod %s in StatefulSet %s successful",
             name, cm_name(set));
    json_decref(out);
    return 0;
}

static int delete_pod(ssc *c, const json_t *set, const json_t *pod, ck_error **err)
{
    if (cm_delete(c->m, cm_res("", "pods"), cm_ns(pod), cm_name(pod), cm_uid(pod), NULL, err) < 0)
        return -1;
    cm_event(c->m, set, COMPONENT, "Normal", "SuccessfulDelete", "delete Pod %s in StatefulSet %s successful",
             cm_name(pod), cm_name(set));
    return 0;
}

static bool running_available(const json_t *pod, long min_ready, int64_t now)
{
    return pod && !cm_deleting(pod) && !strcmp(cm_str(pod, "status.phase") ?: "", "Running") &&
           cm_pod_available(pod, min_ready, now);
}

/* ---------------------------------------------------------------- sync */

static int sync_set(void *self, const char *key, ck_error **err)
{
    ssc *c = self;
    cleanup_free char *ns = NULL;
    const char *name;
    cm_split_key(key, &ns, &name);
    json_t *set = ck_informer_get(c->sets, ns, name);
    if (!set)
        return 0;
    long replicas = (long)cm_int(set, "spec.replicas", 1);
    if (replicas > MAX_REPLICAS)
        replicas = MAX_REPLICAS;
    long start = (long)cm_int(set, "spec.ordinals.start", 0);
    long min_ready = (long)cm_int(set, "spec.minReadySeconds", 0);
    int64_t now = cm_now();
    char hash[16];
    cm_hash(cm_get(set, "spec.template"), 0, hash);
    cleanup_free char *update_rev = xasprintf("%s-%s", name, hash);
    bool parallel = !strcmp(cm_str(set, "spec.podManagementPolicy") ?: "OrderedReady", "Parallel");
    bool rolling = !strcmp(cm_str(set, "spec.updateStrategy.type") ?: "RollingUpdate", "RollingUpdate");
    long partition = rolling ? (long)cm_int(set, "spec.updateStrategy.rollingUpdate.partition", 0) : 0;

    /* our pods by ordinal (slot = ordinal - start); the rest are condemned */
    json_t *all = ck_informer_list(c->pods), *mine = json_array(), *condemned = json_array();
    json_t **slot = xcalloc((size_t)replicas + 1, sizeof *slot);
    size_t i;
    json_t *pod;
    json_array_foreach(all, i, pod) {
        if (!owned_by(pod, set))
            continue;
        json_array_append(mine, pod);
        long ord = ordinal_of(name, cm_name(pod));
        if (ord >= start && ord < start + replicas)
            slot[ord - start] = pod;
        else
            json_array_append(condemned, pod);
    }
    json_decref(all);
    bool deleting = cm_deleting(set);
    /* the revision of this template, before any pod is made from it */
    json_t *live = json_object();
    json_object_set_new(live, update_rev, json_true());
    const char *cur_rev = cm_str(set, "status.currentRevision");
    if (cur_rev)
        json_object_set_new(live, cur_rev, json_true());
    json_array_foreach(mine, i, pod)
        json_object_set_new(live, hash_of(pod), json_true());
    long long revision = 0;
    int rc = deleting ? 0 : cm_history_sync(c->m, c->revs, set, update_rev, hash, live, &revision, err);
    json_decref(live);
    /* a current revision that is gone from history is the update revision, as upstream */
    if (cur_rev) {
        json_t *cr = ck_informer_get(c->revs, ns, cur_rev);
        if (!cr)
            cur_rev = NULL;
        json_decref(cr);
    }
    const char *base_rev = cur_rev ? cur_rev : update_rev;
    json_t *hold = NULL;
    const json_t *base_tmpl = template_of(c, set, base_rev, update_rev, &hold);

    /* failed pods are replaced */
    for (long o = 0; o < replicas && rc == 0 && !deleting; o++) {
        const char *ph = slot[o] ? cm_str(slot[o], "status.phase") : NULL;
        if (ph && !strcmp(ph, "Failed") && !cm_deleting(slot[o])) {
            rc = delete_pod(c, set, slot[o], err);
            slot[o] = NULL;
        }
    }
    /* claims follow the retention policy */
    for (long o = 0; o < replicas && rc == 0 && !deleting; o++)
        if (slot[o] && !cm_deleting(slot[o]))
            rc = fix_claims(c, set, slot[o], start + o, false, err);
    bool all_avail = true;
    for (long o = 0; o < replicas && rc == 0 && !deleting; o++) {
        if (!slot[o]) {
            /* below the partition a pod comes back as the current revision */
            bool old = rolling && o < partition && strcmp(base_rev, update_rev);
            rc = create_pod(c, set, start + o, old ? base_rev : update_rev, old ? base_tmpl
                            : cm_get(set, "spec.template"), err);
            all_avail = false;
            if (!parallel)
                break;
            continue;
        }
        if (!running_available(slot[o], min_ready, now)) {
            all_avail = false;
            if (!parallel)
                break;
        }
    }
    /* surplus ordinals: highest first; ordered = one at a time, after the rest are available;
     * their claims change owner first (whenScaled) */
    if (rc == 0 && !deleting && json_array_size(condemned) && (parallel || all_avail)) {
        json_t *victim = NULL;
        long best = -1;
        json_array_foreach(condemned, i, pod) {
            long o = ordinal_of(name, cm_name(pod));
            if (parallel) {
                if (!cm_deleting(pod) && (fix_claims(c, set, pod, o, true, err) < 0 ||
                                          delete_pod(c, set, pod, err) < 0)) {
                    rc = -1;
                    break;
                }
                continue;
            }
            if (cm_deleting(pod)) {   /* one already going: wait for it */
                victim = NULL;
                best = LONG_MAX;
                break;
            }
            if (o > best) {
                best = o;
                victim = pod;
            }
        }
        if (!parallel && victim) {
            rc = fix_claims(c, set, victim, best, true, err);
            if (rc == 0)
                rc = delete_pod(c, set, victim, err);
        }
    }
    /* rolling update from the highest ordinal down to the partition */
    if (rc == 0 && !deleting && rolling && all_avail && !json_array_size(condemned)) {
        for (long o = replicas - 1; o >= partition && o >= 0; o--) {
            if (slot[o] && strcmp(hash_of(slot[o]), update_rev)) {
                rc = delete_pod(c, set, slot[o], err);
                break;
            }
        }
    }

    /* status */
    long have = 0, ready = 0, available = 0, updated = 0, current = 0;
    json_array_foreach(mine, i, pod) {
        if (!cm_pod_active(pod))
            continue;
        have++;
        ready += cm_pod_ready(pod);
        available += cm_pod_available(pod, min_ready, now);
        if (!strcmp(hash_of(pod), update_rev))
            updated++;
        if (!strcmp(hash_of(pod), base_rev))
            current++;
    }
    const char *new_cur = base_rev;
    if (rolling && updated == replicas && have == replicas && ready == replicas) {
        new_cur = update_rev;
        current = updated;
    }
    if (min_ready > 0 && ready > available)
        ck_workqueue_add_after(c->q, key, min_ready * 1000 + 100);
    json_t *st = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:s}",
                           "observedGeneration", (json_int_t)cm_int(set, "metadata.generation", 0),
                           "replicas", (json_int_t)have, "readyReplicas", (json_int_t)ready,
                           "availableReplicas", (json_int_t)available, "currentReplicas", (json_int_t)current,
                           "updatedReplicas", (json_int_t)updated, "currentRevision", new_cur,
                           "updateRevision", update_rev);
    json_t *cc = cm_get(set, "status.collisionCount");
    json_object_set_new(st, "collisionCount", json_integer(json_integer_value(cc)));
    ck_error *e = NULL;
    if (cm_write_status(c->m, cm_res("apps", "statefulsets"), set, st, &e) < 0) {
        if (rc == 0) {
            *err = e;
            rc = -1;
        } else {
            ck_error_free(e);
        }
    }
    json_decref(st);
    json_decref(hold);
    free(slot);
    json_decref(condemned);
    json_decref(mine);
    json_decref(set);
    return rc;
}

int cm_statefulset_init(cm *m)
{
    ssc *c = xcalloc(1, sizeof *c);
    c->m = m;
    ck_informer_handlers sh = {on_set, on_set_update, NULL};
    c->sets = cm_informer(m, "apps", "statefulsets", &sh, c);
    ck_informer_handlers ph = {on_pod, on_pod_update, on_pod};
    c->pods = cm_informer(m, "", "pods", &ph, c);
    ck_informer_handlers ch = {NULL, NULL, on_pod};   /* a claim gone: a waiting pod may go on */
    c->pvcs = cm_informer(m, "", "persistentvolumeclaims", &ch, c);
    ck_informer_handlers rh = {on_pod, NULL, on_pod};
    c->revs = cm_informer(m, "apps", "controllerrevisions", &rh, c);
    c->q = cm_queue(m, COMPONENT, 2, sync_set, c);
    return 0;
}
