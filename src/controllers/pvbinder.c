/* pvbinder.c - a static PersistentVolume binder, the binding half of upstream's persistentvolume
 * controller (no provisioning, no attach).
 *
 * A Pending claim without spec.volumeName is bound to the smallest Available volume that fits
 * it: the same storageClassName ("" matches ""), the same volumeMode (Filesystem by default),
 * every access mode the claim asks for, storage capacity >= the request, matchLabels of the
 * claim's selector, and no claimRef naming another claim.  Binding writes, in upstream's order,
 * the volume's claimRef and phase Bound, then the claim's volumeName (with the bind-completed
 * annotations) and its status (Bound, accessModes, capacity).  A claim that names its volume is
 * completed the same way.  A claim that fits nothing stays Pending with a FailedBinding event; a
 * new or changed volume requeues every unbound claim.  A bound volume whose claim is gone
 * (or was recreated with another uid) becomes Released under reclaimPolicy Retain, and its
 * object is deleted under Delete (the data on disk stays: hostPath/local have no deleter here).
 * volumeBindingMode WaitForFirstConsumer is not honoured: claims bind at once.
 */
#include <stdlib.h>
#include <string.h>

#include "controllers/cm.h"
#include "lib/log.h"
#include "lib/quantity.h"
#include "lib/util.h"

#define COMPONENT "persistentvolume-controller"

typedef struct pvb {
    cm *m;
    ck_informer *pvs, *pvcs;
    ck_workqueue *claims, *volumes;
} pvb;

static int64_t storage(const json_t *list)
{
    const char *s = json_string_value(json_object_get(list, "storage"));
    int64_t v;
    return s && ck_quantity_parse(s, &v) == 0 ? v : -1;
}

static bool has_mode(const json_t *modes, const char *m)
{
    size_t i;
    json_t *v;
    json_array_foreach(modes, i, v) if (!strcmp(json_string_value(v) ?: "", m)) return true;
    return false;
}

bool cm_pv_fits(const json_t *pv, const json_t *claim)
{
    const char *phase = cm_str(pv, "status.phase") ?: "";
    if (*phase && strcmp(phase, "Available") && strcmp(phase, "Pending"))
        return false;
    if (cm_deleting(pv))
        return false;
    json_t *ref = cm_get(pv, "spec.claimRef");
    if (ref) {
        /* pre-bound to a claim: only that one (by uid when it names one) */
        const char *rn = cm_str(ref, "name"), *rns = cm_str(ref, "namespace"), *ru = cm_str(ref, "uid");
        if (!rn || strcmp(rn, cm_name(claim) ?: "") || strcmp(rns ?: "", cm_ns(claim) ?: "") ||
            (ru && *ru && strcmp(ru, cm_uid(claim) ?: "")))
            return false;
    }
    if (strcmp(cm_str(pv, "spec.storageClassName") ?: "", cm_str(claim, "spec.storageClassName") ?: ""))
        return false;
    if (strcmp(cm_str(pv, "spec.volumeMode") ?: "Filesystem", cm_str(claim, "spec.volumeMode") ?: "Filesystem"))
        return false;
    size_t i;
    json_t *m;
    json_array_foreach(cm_get(claim, "spec.accessModes"), i, m)
        if (!has_mode(cm_get(pv, "spec.accessModes"), json_string_value(m) ?: ""))
            return false;
    int64_t want = storage(cm_get(claim, "spec.resources.requests"));
    int64_t have = storage(cm_get(pv, "spec.capacity"));
    if (want > 0 && have < want)
        return false;
    const char *k;
    json_t *v;
    json_object_foreach(cm_get(claim, "spec.selector.matchLabels"), k, v)
        if (!json_equal(json_object_get(cm_get(pv, "metadata.labels"), k), v))
            return false;
    return true;
}

json_t *cm_pv_pick(const json_t *pvs, const json_t *claim)
{
    json_t *best = NULL;
    int64_t best_cap = 0;
    size_t i;
    json_t *pv;
    json_array_foreach(pvs, i, pv) {
        if (!cm_pv_fits(pv, claim))
            continue;
        int64_t cap = storage(cm_get(pv, "spec.capacity"));
        /* a volume pre-bound to this claim wins; else the smallest that fits */
        if (cm_get(pv, "spec.claimRef"))
            return pv;
        if (!best || cap < best_cap) {
            best = pv;
            best_cap = cap;
        }
    }
    return best;
}

static int write_status(pvb *c, const char *res, const char *ns, json_t *obj, ck_error **err)
{
    json_t *out = ck_client_update_status(cm_client(c->m), cm_res("", res), ns, obj, err);
    json_decref(out);
    return out ? 0 : -1;
}

/* The volume's claimRef -> claim, phase Bound; then the claim's volumeName and status. */
static int bind_claim(pvb *c, const json_t *pv0, const json_t *claim0, ck_error **err)
{
    ck_client *cl = cm_client(c->m);
    const char *ns = cm_ns(claim0);
    json_t *pv = json_deep_copy(pv0);
    json_t *spec = json_object_get(pv, "spec");
    json_object_set_new(spec, "claimRef", json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s}", "kind", "PersistentVolumeClaim", "apiVersion", "v1",
        "namespace", ns, "name", cm_name(claim0), "uid", cm_uid(claim0) ?: "", "resourceVersion",
        cm_str(claim0, "metadata.resourceVersion") ?: ""));
    json_t *upd = json_equal(json_object_get(spec, "claimRef"), cm_get(pv0, "spec.claimRef"))
                  ? json_incref(pv) : ck_client_update(cl, cm_res("", "persistentvolumes"), NULL, pv, err);
    json_decref(pv);
    if (!upd)
        return -1;
    if (strcmp(cm_str(upd, "status.phase") ?: "", "Bound")) {
        json_object_set_new(upd, "status", json_pack("{s:s}", "phase", "Bound"));
        if (write_status(c, "persistentvolumes", NULL, upd, err) < 0) {
            json_decref(upd);
            return -1;
        }
    }
    json_t *claim = json_deep_copy(claim0);
    int rc = 0;
    if (!cm_str(claim, "spec.volumeName") || !cm_annotation(claim, "pv.kubernetes.io/bind-completed")) {
        json_object_set_new(json_object_get(claim, "spec"), "volumeName", json_string(cm_name(upd)));
        json_t *md = json_object_get(claim, "metadata");
        if (!json_is_object(json_object_get(md, "annotations")))
            json_object_set_new(md, "annotations", json_object());
        json_t *an = json_object_get(md, "annotations");
        json_object_set_new(an, "pv.kubernetes.io/bind-completed", json_string("yes"));
        json_object_set_new(an, "pv.kubernetes.io/bound-by-controller", json_string("yes"));
        json_t *out = ck_client_update(cl, cm_res("", "persistentvolumeclaims"), ns, claim, err);
        json_decref(claim);
        claim = out;
    }
    if (claim) {
        json_t *st = json_pack("{s:s, s:O, s:O}", "phase", "Bound", "accessModes",
                               cm_get(upd, "spec.accessModes") ?: json_array(), "capacity",
                               cm_get(upd, "spec.capacity") ?: json_object());
        json_object_set_new(claim, "status", st);
        rc = write_status(c, "persistentvolumeclaims", ns, claim, err);
        if (rc == 0)
            cm_event(c->m, claim, COMPONENT, "Normal", "Bound", "bound to volume %s", cm_name(upd));
    } else {
        rc = -1;
    }
    json_decref(claim);
    json_decref(upd);
    return rc;
}

static int sync_claim(void *self, const char *key, ck_error **err)
{
    pvb *c = self;
    char *ns;
    const char *name;
    cm_split_key(key, &ns, &name);
    json_t *claim = ck_informer_get(c->pvcs, ns, name);
    free(ns);
    if (!claim || cm_deleting(claim)) {
        json_decref(claim);
        return 0;
    }
    int rc = 0;
    const char *vn = cm_str(claim, "spec.volumeName");
    bool bound = !strcmp(cm_str(claim, "status.phase") ?: "", "Bound");
    if (vn && *vn) {
        json_t *pv = ck_informer_get(c->pvs, NULL, vn);
        const char *ru = pv ? cm_str(pv, "spec.claimRef.uid") : NULL;
        const char *rn = pv ? cm_str(pv, "spec.claimRef.name") : NULL;
        const char *rns = pv ? cm_str(pv, "spec.claimRef.namespace") : NULL;
        bool other = (ru && *ru && strcmp(ru, cm_uid(claim) ?: "")) ||
                     (rn && (strcmp(rn, cm_name(claim) ?: "") || strcmp(rns ?: "", cm_ns(claim) ?: "")));
        if (!pv) {
            if (bound) {
                json_t *cp = json_deep_copy(claim);
                json_object_set_new(cp, "status", json_pack("{s:s}", "phase", "Lost"));
                rc = write_status(c, "persistentvolumeclaims", cm_ns(claim), cp, err);
                json_decref(cp);
            }
        } else if (other) {
            cm_event(c->m, claim, COMPONENT, "Warning", "FailedBinding",
                     "volume \"%s\" is bound to another claim", vn);
        } else if (!bound || strcmp(cm_str(pv, "status.phase") ?: "", "Bound")) {
            rc = bind_claim(c, pv, claim, err);
        }
        json_decref(pv);
    } else {
        json_t *all = ck_informer_list(c->pvs);
        json_t *pv = cm_pv_pick(all, claim);
        if (pv) {
            rc = bind_claim(c, pv, claim, err);
        } else {
            if (strcmp(cm_str(claim, "status.phase") ?: "", "Pending")) {
                json_t *cp = json_deep_copy(claim);
                json_object_set_new(cp, "status", json_pack("{s:s}", "phase", "Pending"));
                write_status(c, "persistentvolumeclaims", cm_ns(claim), cp, NULL);
                json_decref(cp);
            }
            cm_event(c->m, claim, COMPONENT, "Warning", "FailedBinding",
                     "no persistent volumes available for this claim and no storage class is set");
        }
        json_decref(all);
    }
    json_decref(claim);
    return rc;
}

static int sync_volume(void *self, const char *key, ck_error **err)
{
    pvb *c = self;
    json_t *pv = ck_informer_get(c->pvs, NULL, key);
    if (!pv)
        return 0;
    int rc = 0;
    const char *phase = cm_str(pv, "status.phase") ?: "";
    json_t *ref = cm_get(pv, "spec.claimRef");
    const char *ru = cm_str(ref, "uid");
    if (!ref && strcmp(phase, "Available")) {
        json_t *cp = json_deep_copy(pv);
        json_object_set_new(cp, "status", json_pack("{s:s}", "phase", "Available"));
        rc = write_status(c, "persistentvolumes", NULL, cp, err);
        json_decref(cp);
    } else if (ref && ru && *ru && !strcmp(phase, "Bound")) {
        json_t *claim = ck_informer_get(c->pvcs, cm_str(ref, "namespace"), cm_str(ref, "name"));
        bool gone = !claim || strcmp(cm_uid(claim) ?: "", ru);
        json_decref(claim);
        if (gone) {
            /* confirm with the API server: the cache may lag behind a fresh claim */
            ck_error *e = NULL;
            json_t *live = ck_client_get(cm_client(c->m), cm_res("", "persistentvolumeclaims"),
                                         cm_str(ref, "namespace"), cm_str(ref, "name"), &e);
            gone = !live && e && e->code == CK_E_NOT_FOUND;
            if (live && strcmp(cm_uid(live) ?: "", ru))
                gone = true;
            json_decref(live);
            ck_error_free(e);
        }
        if (gone) {
            const char *policy = cm_str(pv, "spec.persistentVolumeReclaimPolicy") ?: "Retain";
            if (!strcmp(policy, "Delete")) {
                rc = cm_delete(c->m, cm_res("", "persistentvolumes"), NULL, key, cm_uid(pv), NULL, err);
            } else {
                json_t *cp = json_deep_copy(pv);
                json_object_set_new(cp, "status", json_pack("{s:s}", "phase", "Released"));
                rc = write_status(c, "persistentvolumes", NULL, cp, err);
                json_decref(cp);
            }
        }
    } else if (ref && (!ru || !*ru || strcmp(phase, "Bound"))) {
        /* pre-bound or half-bound: the claim's sync finishes it */
        char *k = xasprintf("%s/%s", cm_str(ref, "namespace") ?: "", cm_str(ref, "name") ?: "");
        ck_workqueue_add(c->claims, k);
        free(k);
    }
    json_decref(pv);
    return rc;
}

static void on_claim(void *ctx, json_t *claim)
{
    pvb *c = ctx;
    char *k = ck_informer_key(claim);
    ck_workqueue_add(c->claims, k);
    free(k);
}

static void on_claim_update(void *ctx, json_t *old, json_t *claim)
{
    (void)old;
    on_claim(ctx, claim);
}

static void on_claim_delete(void *ctx, json_t *claim)
{
    pvb *c = ctx;
    const char *vn = cm_str(claim, "spec.volumeName");
    if (vn && *vn)
        ck_workqueue_add(c->volumes, vn);
}

/* A volume appeared or changed: it may fit a waiting claim. */
static void on_volume(void *ctx, json_t *pv)
{
    pvb *c = ctx;
    ck_workqueue_add(c->volumes, cm_name(pv));
    json_t *all = ck_informer_list(c->pvcs);
    size_t i;
    json_t *claim;
    json_array_foreach(all, i, claim)
        if (strcmp(cm_str(claim, "status.phase") ?: "", "Bound"))
            on_claim(c, claim);
    json_decref(all);
}

static void on_volume_update(void *ctx, json_t *old, json_t *pv)
{
    (void)old;
    on_volume(ctx, pv);
}

int cm_pvbinder_init(cm *m)
{
    pvb *c = xcalloc(1, sizeof *c);
    c->m = m;
    ck_informer_handlers vh = {on_volume, on_volume_update, NULL};
    c->pvs = cm_informer(m, "", "persistentvolumes", &vh, c);
    ck_informer_handlers ch = {on_claim, on_claim_update, on_claim_delete};
    c->pvcs = cm_informer(m, "", "persistentvolumeclaims", &ch, c);
    /* one worker each: two claims must not race for the same volume */
    c->claims = cm_queue(m, "persistentvolume-binder-claims", 1, sync_claim, c);
    c->volumes = cm_queue(m, "persistentvolume-binder-volumes", 1, sync_volume, c);
    return 0;
}
