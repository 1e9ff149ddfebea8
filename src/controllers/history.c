/* history.c - ControllerRevision history for DaemonSets and StatefulSets (see cm.h).
 *
 * As upstream, a revision's data is the strategic merge patch that restores the owner's pod
 * template ({"spec":{"template":{..., "$patch":"replace"}}}): `kubectl rollout undo` applies it
 * to the owner as it is, and `rollout history --revision=N` shows the template it yields.  The
 * revision carries the template's labels (so the owner's selector finds it) plus
 * controller-revision-hash, the owner's annotations (kubernetes.io/change-cause for `rollout
 * history`) and a controller ownerReference (the garbage collector removes it with the owner).
 *
 * Revisions are numbered 1, 2, ... per owner.  When the template goes back to one recorded
 * before (an undo), that revision is renumbered to be the newest instead of making a copy.
 * History beyond revisionHistoryLimit (default 10) is pruned oldest first, never a revision a
 * pod or the owner's status still names.
 */
#include <stdlib.h>
#include <string.h>

#include "controllers/cm.h"
#include "lib/log.h"
#include "lib/util.h"

#define DEFAULT_HISTORY_LIMIT 10

json_t *cm_history_data(const json_t *owner)
{
    json_t *tmpl = cm_copy_object(owner, "spec.template");
    json_object_set_new(tmpl, "$patch", json_string("replace"));
    return json_pack("{s:{s:o}}", "spec", "template", tmpl);
}

static long long revision_of(const json_t *cr)
{
    return cm_int(cr, "revision", 0);
}

static int by_revision(const void *a, const void *b)
{
    long long x = revision_of(*(json_t *const *)a), y = revision_of(*(json_t *const *)b);
    return x < y ? -1 : x > y;
}

/* The revisions owner controls, oldest first.  NEW array. */
static json_t *owned(ck_informer *revs, const json_t *owner)
{
    json_t *all = ck_informer_list(revs), *mine = json_array();
    size_t i;
    json_t *cr;
    json_array_foreach(all, i, cr) {
        json_t *ref = cm_controller_ref(cr);
        if (ref && !strcmp(json_string_value(json_object_get(ref, "uid")) ?: "", cm_uid(owner) ?: "") &&
            !cm_deleting(cr))
            json_array_append(mine, cr);
    }
    json_decref(all);
    cm_sort_array(mine, by_revision);
    return mine;
}

static json_t *new_revision(const json_t *owner, const char *name, const char *hash, json_t *data,
                            long long revision)
{
    json_t *labels = cm_copy_object(owner, "spec.template.metadata.labels");
    json_object_set_new(labels, "controller-revision-hash", json_string(hash));
    json_t *md = json_pack("{s:s, s:s, s:o, s:[o]}", "name", name, "namespace", cm_ns(owner),
                           "labels", labels, "ownerReferences", cm_owner_ref(owner, true));
    json_t *ann = cm_get(owner, "metadata.annotations");
    if (json_object_size(ann)) {
        json_t *copy = json_deep_copy(ann);
        /* kubectl's own bookkeeping of the last applied owner is not history */
        json_object_del(copy, "kubectl.kubernetes.io/last-applied-configuration");
        json_object_set_new(md, "annotations", copy);
    }
    return json_pack("{s:s, s:s, s:o, s:O, s:I}", "apiVersion", "apps/v1", "kind",
                     "ControllerRevision", "metadata", md, "data", data, "revision",
                     (json_int_t)revision);
}

/* Give cr the number `revision` (PUT). */
static int renumber(cm *m, const json_t *cr, long long revision, ck_error **err)
{
    json_t *copy = json_deep_copy(cr);
    json_object_set_new(copy, "revision", json_integer(revision));
    json_t *out = ck_client_update(cm_client(m), cm_res("apps", "controllerrevisions"), cm_ns(cr),
                                   copy, err);
    json_decref(copy);
    if (!out)
        return -1;
    json_decref(out);
    return 0;
}

int cm_history_sync(cm *m, ck_informer *revs, const json_t *owner, const char *name,
                    const char *hash, const json_t *live, long long *revision, ck_error **err)
{
    const ck_resource *res = cm_res("apps", "controllerrevisions");
    json_t *mine = owned(revs, owner), *data = cm_history_data(owner);
    size_t n = json_array_size(mine), i;
    long long max = n ? revision_of(json_array_get(mine, n - 1)) : 0;
    json_t *cur = NULL, *cr;
    json_array_foreach(mine, i, cr)
        if (json_equal(json_object_get(cr, "data"), data))
            cur = cr;
    int rc = 0;
    if (cur) {
        *revision = revision_of(cur);
        if (*revision < max) {   /* an older template came back: it is the newest again */
            rc = renumber(m, cur, max + 1, err);
            *revision = max + 1;
        }
    } else {
        json_t *obj = new_revision(owner, name, hash, data, max + 1);
        ck_error *e = NULL;
        json_t *out = ck_client_create(cm_client(m), res, cm_ns(owner), obj, &e);
        json_decref(obj);
        *revision = max + 1;
        if (!out && e->code == CK_E_EXISTS) {
            /* our cache lags behind our own create, or the name is taken: look at it */
            ck_error_free(e);
            e = NULL;
            json_t *have = ck_client_get(cm_client(m), res, cm_ns(owner), name, &e);
            json_t *ref = have ? cm_controller_ref(have) : NULL;
            if (have && ref && !strcmp(json_string_value(json_object_get(ref, "uid")) ?: "", cm_uid(owner)) &&
                json_equal(json_object_get(have, "data"), data)) {
                *revision = revision_of(have);
                if (*revision < max)
                    rc = renumber(m, have, (*revision = max + 1), &e);
            } else if (have) {
                rc = ck_error_set(&e, CK_E_EXISTS, "controllerrevision %s exists with other contents",
                                  name);
            } else {
                rc = -1;
            }
            json_decref(have);
        } else if (!out) {
            rc = -1;
        }
        json_decref(out);
        if (rc < 0) {
            ck_error_wrap(&e, "recording revision %s", name);
            *err = e;
        } else {
            ck_error_free(e);
        }
    }

    /* prune: oldest first, never the current one or one still in use */
    long long limit = cm_int(owner, "spec.revisionHistoryLimit", DEFAULT_HISTORY_LIMIT);
    long long old = 0;
    json_array_foreach(mine, i, cr)
        if (cr != cur && !json_object_get(live, cm_name(cr)))
            old++;
    json_array_foreach(mine, i, cr) {
        if (rc < 0 || old <= limit)
            break;
        if (cr == cur || json_object_get(live, cm_name(cr)))
            continue;
        if (cm_delete(m, res, cm_ns(cr), cm_name(cr), cm_uid(cr), NULL, err) < 0)
            rc = -1;
        old--;
    }
    json_decref(data);
    json_decref(mine);
    return rc;
}

char *cm_owner_key(const json_t *obj, const char *kind)
{
    json_t *ref = cm_controller_ref(obj);
    if (!ref || strcmp(json_string_value(json_object_get(ref, "kind")) ?: "", kind))
        return NULL;
    const char *ns = cm_ns(obj), *name = json_string_value(json_object_get(ref, "name"));
    if (!name)
        return NULL;
    return ns && *ns ? xasprintf("%s/%s", ns, name) : xstrdup(name);
}
