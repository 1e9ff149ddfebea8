/* statefulset.c - the StatefulSet controller: pods with stable names <set>-<ordinal>.
 *
 * Each pod gets hostname <set>-<ordinal>, subdomain spec.serviceName, the labels
 * statefulset.kubernetes.io/pod-name and apps.kubernetes.io/pod-index, and for every
 * volumeClaimTemplate a PVC <template>-<set>-<ordinal> (created if missing, never deleted) mounted
 * as a volume of the template's name.  OrderedReady creates ordinals in order, each once the one
 * before is Running and Ready, and removes surplus ordinals from the highest, one at a time;
 * Parallel does both at once.  RollingUpdate replaces pods whose controller-revision-hash is not
 * the template's, from the highest ordinal down to spec.updateStrategy.rollingUpdate.partition,
 * one at a time and only while every pod is ready; OnDelete waits for the user.  Status carries
 * currentRevision/updateRevision (<set>-<hash>) and the counts `kubectl rollout status sts` reads.
 *
 * Every template gets a ControllerRevision named as its update revision (history.c), so
 * `kubectl rollout history/undo sts` work as upstream.
 *
 * Limits: no maxUnavailable, no
 * persistentVolumeClaimRetentionPolicy, no minReadySeconds-based availability beyond Ready.
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

static int ensure_pvcs(ssc *c, const json_t *set, long ord, ck_error **err)
{
    size_t i;
    json_t *t;
    json_array_foreach(cm_get(set, "spec.volumeClaimTemplates"), i, t) {
        cleanup_free char *claim = xasprintf("%s-%s-%ld", cm_name(t), cm_name(set), ord);
        json_t *have = ck_informer_get(c->pvcs, cm_ns(set), claim);
        if (have) {
            json_decref(have);
            continue;
        }
        json_t *md = json_pack("{s:s, s:s}", "name", claim, "namespace", cm_ns(set));
        json_t *labels = json_deep_copy(cm_get(set, "spec.selector.matchLabels") ?: json_object());
        json_object_update(labels, cm_get(t, "metadata.labels") ?: json_object());
        json_object_set_new(md, "labels", labels);
        json_t *pvc = json_pack("{s:s, s:s, s:o, s:O}", "apiVersion", "v1", "kind",
                                "PersistentVolumeClaim", "metadata", md, "spec",
                                cm_get(t, "spec") ?: json_object());
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

static int create_pod(ssc *c, const json_t *set, long ord, const char *rev, ck_error **err)
{
    if (ensure_pvcs(c, set, ord, err) < 0)
        return -1;
    json_t *tmpl = cm_get(set, "spec.template");
    cleanup_free char *name = xasprintf("%s-%ld", cm_name(set), ord);
    char idx[32];
    snprintf(idx, sizeof idx, "%ld", ord);
    json_t *labels = json_deep_copy(cm_get(tmpl, "metadata.labels") ?: json_object());
    json_object_set_new(labels, HASH_LABEL, json_string(rev));
    json_object_set_new(labels, "statefulset.kubernetes.io/pod-name", json_string(name));
    json_object_set_new(labels, "apps.kubernetes.io/pod-index", json_string(idx));
    json_t *md = json_pack("{s:s, s:s, s:o, s:[o]}", "name", name, "namespace", cm_ns(set), "labels",
                           labels, "ownerReferences", cm_owner_ref(set, true));
    if (cm_get(tmpl, "metadata.annotations"))
        json_object_set_new(md, "annotations", json_deep_copy(cm_get(tmpl, "metadata.annotations")));
    json_t *spec = json_deep_copy(cm_get(tmpl, "spec") ?: json_object());
    json_object_set_new(spec, "hostname", json_string(name));
    if (cm_str(set, "spec.serviceName") && *cm_str(set, "spec.serviceName"))
        json_object_set_new(spec, "subdomain", json_string(cm_str(set, "spec.serviceName")));
    size_t i;
    json_t *t;
    json_array_foreach(cm_get(set, "spec.volumeClaimTemplates"), i, t) {
        if (!json_object_get(spec, "volumes"))
            json_object_set_new(spec, "volumes", json_array());
        cleanup_free char *claim = xasprintf("%s-%s-%ld", cm_name(t), cm_name(set), ord);
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

static bool running_ready(const json_t *pod)
{
    return pod && !cm_deleting(pod) && !strcmp(cm_str(pod, "status.phase") ?: "", "Running") &&
           cm_pod_ready(pod);
}

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
    char hash[16];
    cm_hash(cm_get(set, "spec.template"), 0, hash);
    cleanup_free char *update_rev = xasprintf("%s-%s", name, hash);
    bool parallel = !strcmp(cm_str(set, "spec.podManagementPolicy") ?: "OrderedReady", "Parallel");

    /* our pods by ordinal; strays (bad names) are condemned */
    json_t *all = ck_informer_list(c->pods), *condemned = json_array();
    long top = replicas;
    json_t **slot = xcalloc((size_t)replicas + 1, sizeof *slot);
    size_t i;
    json_t *pod;
    json_array_foreach(all, i, pod) {
        json_t *ref = cm_controller_ref(pod);
        if (!ref || strcmp(json_string_value(json_object_get(ref, "uid")) ?: "", cm_uid(set)))
            continue;
        long ord = ordinal_of(name, cm_name(pod));
        if (ord >= 0 && ord < replicas)
            slot[ord] = pod;
        else
            json_array_append(condemned, pod);
        if (ord >= top)
            top = ord + 1;
    }
    bool deleting = cm_deleting(set);
    /* the revision of this template, before any pod is made from it */
    json_t *live = json_object();
    json_object_set_new(live, update_rev, json_true());
    if (cm_str(set, "status.currentRevision"))
        json_object_set_new(live, cm_str(set, "status.currentRevision"), json_true());
    json_array_foreach(all, i, pod) {
        json_t *ref = cm_controller_ref(pod);
        if (ref && !strcmp(json_string_value(json_object_get(ref, "uid")) ?: "", cm_uid(set)))
            json_object_set_new(live, hash_of(pod), json_true());
    }
    long long revision = 0;
    int rc = deleting ? 0 : cm_history_sync(c->m, c->revs, set, update_rev, hash, live, &revision, err);
    json_decref(live);
    /* failed pods are replaced */
    for (long o = 0; o < replicas && rc == 0 && !deleting; o++) {
        const char *ph = slot[o] ? cm_str(slot[o], "status.phase") : NULL;
        if (ph && !strcmp(ph, "Failed") && !cm_deleting(slot[o])) {
            rc = delete_pod(c, set, slot[o], err);
            slot[o] = NULL;
        }
    }
    bool all_ready = true;
    for (long o = 0; o < replicas && rc == 0 && !deleting; o++) {
        if (!slot[o]) {
            rc = create_pod(c, set, o, update_rev, err);
            all_ready = false;
            if (!parallel)
                break;
            continue;
        }
        if (!running_ready(slot[o])) {
            all_ready = false;
            if (!parallel)
                break;
        }
    }
    /* surplus ordinals: highest first; ordered = one at a time, after the rest are ready */
    if (rc == 0 && !deleting && json_array_size(condemned) && (parallel || all_ready)) {
        json_t *victim = NULL;
        long best = -1;
        json_array_foreach(condemned, i, pod) {
            if (parallel) {
                if (!cm_deleting(pod) && delete_pod(c, set, pod, err) < 0) {
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
            long o = ordinal_of(name, cm_name(pod));
            if (o > best) {
                best = o;
                victim = pod;
            }
        }
        if (!parallel && victim)
            rc = delete_pod(c, set, victim, err);
    }
    /* rolling update from the highest ordinal down to the partition */
    long partition = (long)cm_int(set, "spec.updateStrategy.rollingUpdate.partition", 0);
    bool rolling = !strcmp(cm_str(set, "spec.updateStrategy.type") ?: "RollingUpdate", "RollingUpdate");
    if (rc == 0 && !deleting && rolling && all_ready && !json_array_size(condemned)) {
        for (long o = replicas - 1; o >= partition && o >= 0; o--) {
            if (slot[o] && strcmp(hash_of(slot[o]), update_rev)) {
                rc = delete_pod(c, set, slot[o], err);
                break;
            }
        }
    }

    /* status */
    long have = 0, ready = 0, updated = 0, current = 0;
    const char *cur_rev = cm_str(set, "status.currentRevision");
    json_array_foreach(all, i, pod) {
        json_t *ref = cm_controller_ref(pod);
        if (!ref || strcmp(json_string_value(json_object_get(ref, "uid")) ?: "", cm_uid(set)) ||
            !cm_pod_active(pod))
            continue;
        have++;
        ready += cm_pod_ready(pod);
        if (!strcmp(hash_of(pod), update_rev))
            updated++;
        if (cur_rev && !strcmp(hash_of(pod), cur_rev))
            current++;
    }
    const char *new_cur = cur_rev ? cur_rev : update_rev;
    if (updated == replicas && have == replicas && ready == replicas) {
        new_cur = update_rev;
        current = updated;
    } else if (!cur_rev) {
        current = updated;
    }
    json_t *st = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:s}",
                           "observedGeneration", (json_int_t)cm_int(set, "metadata.generation", 0),
                           "replicas", (json_int_t)have, "readyReplicas", (json_int_t)ready,
                           "availableReplicas", (json_int_t)ready, "currentReplicas", (json_int_t)current,
                           "updatedReplicas", (json_int_t)updated, "currentRevision", new_cur,
                           "updateRevision", update_rev);
    json_t *cc = cm_get(set, "status.collisionCount");
    json_object_set_new(st, "collisionCount", json_integer(json_integer_value(cc)));
    if (!json_equal(st, cm_get(set, "status"))) {
        json_t *copy = json_deep_copy(set);
        json_object_set(copy, "status", st);
        ck_error *e = NULL;
        json_t *out = ck_client_update_status(cm_client(c->m), cm_res("apps", "statefulsets"), ns, copy, &e);
        json_decref(copy);
        if (!out && rc == 0) {
            *err = e;
            rc = -1;
        } else {
            ck_error_free(e);
        }
        json_decref(out);
    }
    (void)top;
    json_decref(st);
    free(slot);
    json_decref(condemned);
    json_decref(all);
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
    c->pvcs = cm_informer(m, "", "persistentvolumeclaims", NULL, NULL);
    ck_informer_handlers rh = {on_pod, NULL, on_pod};
    c->revs = cm_informer(m, "apps", "controllerrevisions", &rh, c);
    c->q = cm_queue(m, COMPONENT, 2, sync_set, c);
    return 0;
}
