/* gc.c - the garbage collector: ownerReferences turned into deletions.
 *
 * It watches the resource types that carry owner references in practice (workloads, pods,
 * services and their endpoints, config, leases...) and keeps two indexes: uid -> object and
 * owner uid -> dependents.  Two kinds of work:
 *   "a" attempt: a dependent whose owners are all gone (absent from the index and confirmed by a
 *       live GET, since our caches may lag) is deleted - in the foreground when an owner is itself
 *       waiting for its dependents, else in the background; references to owners that are gone
 *       while others remain are patched away.
 *   "o" owner: an owner being deleted with the `orphan` finalizer has its references removed from
 *       every dependent, then the finalizer; with `foregroundDeletion`, its dependents are
 *       deleted and the finalizer is removed once no dependent with blockOwnerDeletion is left.
 * Background deletion needs nothing more: the owner is gone, so its dependents become "a" work.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "controllers/cm.h"
#include "lib/log.h"
#include "lib/util.h"

typedef struct gcc gcc;

typedef struct mon {
    gcc *g;
    const ck_resource *res;
    ck_informer *inf;
} mon;

static const struct { const char *group, *resource; } monitored[] = {
    {"", "pods"}, {"apps", "replicasets"}, {"", "replicationcontrollers"},
    {"apps", "deployments"}, {"apps", "daemonsets"}, {"apps", "statefulsets"},
    {"apps", "controllerrevisions"}, {"batch", "jobs"}, {"batch", "cronjobs"},
    {"", "services"}, {"", "endpoints"}, {"discovery.k8s.io", "endpointslices"},
    {"", "configmaps"}, {"", "secrets"}, {"", "serviceaccounts"},
    {"", "persistentvolumeclaims"}, {"coordination.k8s.io", "leases"}, {"", "nodes"},
};
#define NMON (sizeof monitored / sizeof monitored[0])

struct gcc {
    cm *m;
    mon mons[NMON];
    ck_workqueue *q;
    pthread_mutex_t lock;
    json_t *by_uid;       /* uid -> "monidx|ns|name" */
    json_t *dependents;   /* owner uid -> {"monidx|ns|name": true} */
};

static char *ref_of(mon *mo, const json_t *obj)
{
    const char *ns = cm_ns(obj);
    return xasprintf("%d|%s|%s", (int)(mo - mo->g->mons), ns ? ns : "", cm_name(obj));
}

/* Parse "idx|ns|name". */
static mon *parse_ref(gcc *g, const char *ref, char **ns, const char **name)
{
    int idx = atoi(ref);
    const char *p = strchr(ref, '|');
    const char *q = p ? strchr(p + 1, '|') : NULL;
    if (!q || idx < 0 || idx >= (int)NMON)
        return NULL;
    *ns = q > p + 1 ? xstrndup(p + 1, (size_t)(q - p - 1)) : NULL;
    *name = q + 1;
    return &g->mons[idx];
}

static void enqueue(gcc *g, char kind, const char *ref)
{
    cleanup_free char *k = xasprintf("%c|%s", kind, ref);
    ck_workqueue_add(g->q, k);
}

static void index_refs(gcc *g, const json_t *obj, const char *ref, bool add)
{
    size_t i;
    json_t *r;
    json_array_foreach(cm_get(obj, "metadata.ownerReferences"), i, r) {
        const char *ouid = json_string_value(json_object_get(r, "uid"));
        if (!ouid)
            continue;
        json_t *set = json_object_get(g->dependents, ouid);
        if (add) {
            if (!set) {
                set = json_object();
                json_object_set_new(g->dependents, ouid, set);
            }
            json_object_set_new(set, ref, json_true());
        } else if (set) {
            json_object_del(set, ref);
            if (!json_object_size(set))
                json_object_del(g->dependents, ouid);
        }
    }
}

static void on_change(mon *mo, json_t *old, json_t *obj, bool gone)
{
    gcc *g = mo->g;
    const char *uid = cm_uid(obj);
    json_t *refs = cm_get(obj, "metadata.ownerReferences"), *old_refs = cm_get(old, "metadata.ownerReferences");
    /* an update that keeps the uid and the owners and does not start a deletion (status
     * reports, Lease renewals: most events) leaves both indexes as they are */
    if (old && !gone && !cm_deleting(obj) && uid && !strcmp(cm_uid(old) ?: "", uid) &&
        (refs == old_refs || json_equal(refs, old_refs))) {
        if (json_array_size(refs)) {
            cleanup_free char *r = ref_of(mo, obj);
            enqueue(g, 'a', r);
        }
        return;
    }
    cleanup_free char *ref = ref_of(mo, obj);
    pthread_mutex_lock(&g->lock);
    if (old)
        index_refs(g, old, ref, false);
    if (gone) {
        index_refs(g, obj, ref, false);
        if (uid)
            json_object_del(g->by_uid, uid);
    } else {
        index_refs(g, obj, ref, true);
        if (uid)
            json_object_set_new(g->by_uid, uid, json_string(ref));
    }
    /* dependents to revisit: an owner gone, or one that started deleting (copied only then:
     * a ReplicaSet's status changes often and it may have thousands of dependents) */
    json_t *deps = uid && (gone || cm_deleting(obj)) ? json_deep_copy(json_object_get(g->dependents, uid))
                                                     : NULL;
    pthread_mutex_unlock(&g->lock);

    if (!gone && json_array_size(cm_get(obj, "metadata.ownerReferences")))
        enqueue(g, 'a', ref);
    if (!gone && cm_deleting(obj) &&
        (cm_has_finalizer(obj, "orphan") || cm_has_finalizer(obj, "foregroundDeletion")))
        enqueue(g, 'o', ref);
    if (gone || cm_deleting(obj)) {
        const char *k;
        json_t *v;
        json_object_foreach(deps, k, v)
            enqueue(g, 'a', k);
    }
    /* a dependent gone may let its foreground-deleting owner finish */
    if (gone) {
        size_t i;
        json_t *r;
        json_array_foreach(cm_get(obj, "metadata.ownerReferences"), i, r) {
            pthread_mutex_lock(&g->lock);
            const char *oref = json_string_value(json_object_get(g->by_uid,
                                                 json_string_value(json_object_get(r, "uid")) ?: ""));
            char *copy = oref ? xstrdup(oref) : NULL;
            pthread_mutex_unlock(&g->lock);
            if (copy)
                enqueue(g, 'o', copy);
            free(copy);
        }
    }
    json_decref(deps);
}

static void h_add(void *ctx, json_t *o) { on_change(ctx, NULL, o, false); }
static void h_update(void *ctx, json_t *a, json_t *b) { on_change(ctx, a, b, false); }
static void h_delete(void *ctx, json_t *o) { on_change(ctx, NULL, o, true); }

/* ---------------------------------------------------------------- owner lookups */

enum owner_state { OWNER_SOLID, OWNER_GONE, OWNER_WAITING };

static enum owner_state owner_state(gcc *g, const json_t *dep, const json_t *ref)
{
    const char *uid = json_string_value(json_object_get(ref, "uid"));
    const char *api = json_string_value(json_object_get(ref, "apiVersion")) ?: "";
    const char *kind = json_string_value(json_object_get(ref, "kind")) ?: "";
    const char *name = json_string_value(json_object_get(ref, "name")) ?: "";
    if (!uid)
        return OWNER_SOLID;
    pthread_mutex_lock(&g->lock);
    const char *r = json_string_value(json_object_get(g->by_uid, uid));
    char *known = r ? xstrdup(r) : NULL;
    pthread_mutex_unlock(&g->lock);
    if (known) {
        char *ns = NULL;
        const char *nm;
        mon *mo = parse_ref(g, known, &ns, &nm);
        json_t *o = mo ? ck_informer_get(mo->inf, ns, nm) : NULL;
        enum owner_state st = o && cm_deleting(o) && cm_has_finalizer(o, "foregroundDeletion")
                                  ? OWNER_WAITING : OWNER_SOLID;
        json_decref(o);
        free(ns);
        free(known);
        return st;
    }
    /* not in our caches: ask the server (the cache may lag, or the type is not watched) */
    const char *slash = strchr(api, '/');
    cleanup_free char *group = slash ? xstrndup(api, (size_t)(slash - api)) : xstrdup("");
    const ck_resource *res = ck_resource_by_kind(group, kind);
    if (!res)
        return OWNER_SOLID;      /* a type we cannot look at: never delete on a guess */
    ck_error *err = NULL;
    json_t *o = ck_client_get(cm_client(g->m), res, res->namespaced ? cm_ns(dep) : NULL, name, &err);
    if (!o) {
        enum owner_state st = err->code == CK_E_NOT_FOUND ? OWNER_GONE : OWNER_SOLID;
        ck_error_free(err);
        return st;
    }
    enum owner_state st = strcmp(cm_uid(o) ?: "", uid) ? OWNER_GONE
                          : cm_deleting(o) && cm_has_finalizer(o, "foregroundDeletion") ? OWNER_WAITING
                                                                                        : OWNER_SOLID;
    json_decref(o);
    return st;
}

/* Merge-patches obj (takes patch); an object gone meanwhile needs nothing more. */
static int merge_patch(gcc *g, mon *mo, const json_t *obj, json_t *patch, ck_error **err)
{
    json_t *out = ck_client_patch(cm_client(g->m), mo->res, cm_ns(obj), cm_name(obj), NULL,
                                  "application/merge-patch+json", patch, err);
    json_decref(patch);
    if (!out && (*err)->code == CK_E_NOT_FOUND) {
        ck_error_free(*err);
        *err = NULL;
        return 0;
    }
    json_decref(out);
    return out ? 0 : -1;
}

static int patch_refs(gcc *g, mon *mo, const json_t *obj, json_t *refs, ck_error **err)
{
    json_t *patch = json_pack("{s:{s:O, s:s}}", "metadata", "ownerReferences", refs, "uid", cm_uid(obj));
    return merge_patch(g, mo, obj, patch, err);
}

typedef struct ref_states {
    size_t n, solid, gone, waiting;
    json_t *keep;   /* the references whose owners are not gone */
} ref_states;

static void classify(gcc *g, const json_t *obj, ref_states *rs)
{
    json_t *refs = cm_get(obj, "metadata.ownerReferences");
    *rs = (ref_states){.n = json_array_size(refs), .keep = json_array()};
    size_t i;
    json_t *r;
    json_array_foreach(refs, i, r) {
        enum owner_state st = owner_state(g, obj, r);
        if (st == OWNER_GONE) {
            rs->gone++;
            continue;
        }
        if (st == OWNER_SOLID)
            rs->solid++;
        else
            rs->waiting++;
        json_array_append(rs->keep, r);
    }
}

static int attempt(gcc *g, mon *mo, const char *ns, const char *name, ck_error **err)
{
    json_t *obj = ck_informer_get(mo->inf, ns, name);
    if (!obj || cm_deleting(obj)) {
        json_decref(obj);
        return 0;
    }
    ref_states rs;
    classify(g, obj, &rs);
    if (rs.gone > 0 || (rs.n > 0 && rs.solid == 0)) {
        /* about to delete or edit: decide on the live object, as upstream's attemptToDeleteItem
         * does - the cached one may still carry references an orphaning owner has removed */
        json_decref(rs.keep);
        json_t *live = ck_client_get(cm_client(g->m), mo->res, ns, name, err);
        if (!live) {
            json_decref(obj);
            if ((*err)->code != CK_E_NOT_FOUND)
                return -1;
            ck_error_free(*err);
            *err = NULL;
            return 0;
        }
        bool same = !strcmp(cm_uid(live) ?: "", cm_uid(obj) ?: "") && !cm_deleting(live);
        json_decref(obj);
        obj = live;
        if (!same) {
            json_decref(obj);
            return 0;
        }
        classify(g, obj, &rs);
    }
    size_t n = rs.n, solid = rs.solid, gone = rs.gone, waiting = rs.waiting;
    json_t *keep = rs.keep;
    int rc = 0;
    if (n == 0) {
        /* nothing */
    } else if (solid > 0) {
        if (gone > 0)
            rc = patch_refs(g, mo, obj, keep, err);
    } else if (waiting > 0) {
        /* an owner waits for us: go in the foreground so our own dependents go first */
        bool has_deps;
        pthread_mutex_lock(&g->lock);
        has_deps = json_object_size(json_object_get(g->dependents, cm_uid(obj))) > 0;
        pthread_mutex_unlock(&g->lock);
        rc = cm_delete(g->m, mo->res, ns, name, cm_uid(obj), has_deps ? "Foreground" : "Background",
                       err);
    } else {
        const char *policy = cm_has_finalizer(obj, "orphan") ? "Orphan"
                             : cm_has_finalizer(obj, "foregroundDeletion") ? "Foreground"
                                                                           : "Background";
        log_info("garbage collecting %s %s%s%s (owners gone)", mo->res->kind, ns ? ns : "",
                 ns ? "/" : "", name);
        rc = cm_delete(g->m, mo->res, ns, name, cm_uid(obj), policy, err);
    }
    json_decref(keep);
    json_decref(obj);
    return rc;
}

static int remove_finalizer(gcc *g, mon *mo, const json_t *obj, const char *fin, ck_error **err)
{
    json_t *fins = json_array();
    size_t i;
    json_t *f;
    json_array_foreach(cm_get(obj, "metadata.finalizers"), i, f)
        if (strcmp(json_string_value(f) ?: "", fin))
            json_array_append(fins, f);
    json_t *patch = json_pack("{s:{s:o, s:s}}", "metadata", "finalizers", fins, "resourceVersion",
                              cm_str(obj, "metadata.resourceVersion") ?: "");
    return merge_patch(g, mo, obj, patch, err);
}

static int process_owner(gcc *g, mon *mo, const char *ns, const char *name, ck_error **err)
{
    json_t *obj = ck_informer_get(mo->inf, ns, name);
    if (!obj || !cm_deleting(obj)) {
        json_decref(obj);
        return 0;
    }
    const char *uid = cm_uid(obj);
    pthread_mutex_lock(&g->lock);
    json_t *deps = json_deep_copy(json_object_get(g->dependents, uid));
    pthread_mutex_unlock(&g->lock);
    int rc = 0;
    const char *k;
    json_t *v;
    if (cm_has_finalizer(obj, "orphan")) {
        json_object_foreach(deps, k, v) {
            char *dns = NULL;
            const char *dname;
            mon *dm = parse_ref(g, k, &dns, &dname);
            json_t *d = dm ? ck_informer_get(dm->inf, dns, dname) : NULL;
            if (d) {
                json_t *refs = json_array();
                size_t i;
                json_t *r;
                json_array_foreach(cm_get(d, "metadata.ownerReferences"), i, r)
                    if (strcmp(json_string_value(json_object_get(r, "uid")) ?: "", uid))
                        json_array_append(refs, r);
                if (patch_refs(g, dm, d, refs, err) < 0)
                    rc = -1;
                json_decref(refs);
            }
            json_decref(d);
            free(dns);
            if (rc < 0)
                break;
        }
        if (rc == 0)
            rc = remove_finalizer(g, mo, obj, "orphan", err);
    } else if (cm_has_finalizer(obj, "foregroundDeletion")) {
        size_t blocking = 0;
        json_object_foreach(deps, k, v) {
            char *dns = NULL;
            const char *dname;
            mon *dm = parse_ref(g, k, &dns, &dname);
            json_t *d = dm ? ck_informer_get(dm->inf, dns, dname) : NULL;
            if (d) {
                size_t i;
                json_t *r;
                json_array_foreach(cm_get(d, "metadata.ownerReferences"), i, r)
                    if (!strcmp(json_string_value(json_object_get(r, "uid")) ?: "", uid) &&
                        json_is_true(json_object_get(r, "blockOwnerDeletion")))
                        blocking++;
                if (!cm_deleting(d))
                    enqueue(g, 'a', k);
            }
            json_decref(d);
            free(dns);
        }
        if (blocking == 0)
            rc = remove_finalizer(g, mo, obj, "foregroundDeletion", err);
        else
            rc = 1;    /* dependents' deletions re-enqueue us; look again anyway */
    }
    json_decref(deps);
    json_decref(obj);
    return rc;
}

static int sync_gc(void *self, const char *key, ck_error **err)
{
    gcc *g = self;
    if (!key[0] || !key[1])
        return 0;
    char *ns = NULL;
    const char *name;
    mon *mo = parse_ref(g, key + 2, &ns, &name);
    if (!mo)
        return 0;
    int rc = key[0] == 'a' ? attempt(g, mo, ns, name, err) : process_owner(g, mo, ns, name, err);
    free(ns);
    if (rc > 0) {
        ck_workqueue_add_after(g->q, key, 2000);
        rc = 0;
    }
    return rc;
}

int cm_gc_init(cm *m)
{
    gcc *g = xcalloc(1, sizeof *g);
    g->m = m;
    pthread_mutex_init(&g->lock, NULL);
    g->by_uid = json_object();
    g->dependents = json_object();
    for (size_t i = 0; i < NMON; i++) {
        mon *mo = &g->mons[i];
        mo->g = g;
        mo->res = cm_res(monitored[i].group, monitored[i].resource);
        ck_informer_handlers h = {h_add, h_update, h_delete};
        mo->inf = cm_informer(m, monitored[i].group, monitored[i].resource, &h, mo);
    }
    g->q = cm_queue(m, "garbage-collector", 4, sync_gc, g);
    return 0;
}
