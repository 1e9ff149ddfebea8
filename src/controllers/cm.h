/* cm.h - what every controller of `ckube controller-manager` shares: the API client, one shared
 * informer per resource type (each controller adds its handlers; one list+watch feeds them all),
 * work queues drained by worker threads with rate-limited retries, an event recorder, the
 * ReplicaSet-style expectations, and small accessors for the JSON objects controllers read.
 *
 * Life cycle: the manager creates a cm, each enabled controller's init registers handlers and
 * queues (nothing runs yet), then cm_run starts the informers, waits until every cache is synced
 * and starts the workers.  Controllers only read cached objects (never modify them: they are
 * shared by every controller); a write works on a json_deep_copy.
 */
#ifndef CK_CM_H
#define CK_CM_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "client/client.h"
#include "client/informer.h"
#include "client/workqueue.h"
#include "lib/error.h"

typedef struct cm cm;

cm *cm_new(ck_client *c);
/* Only for a cm that was never run (tests, start-up failures): running workers are not joined. */
void cm_free(cm *m);
ck_client *cm_client(cm *m);

/* The shared informer of group/resource (version v1 unless the table says otherwise), with h/ctx
 * added to its handlers (h may be NULL: cache only).  Call before cm_run. */
ck_informer *cm_informer(cm *m, const char *group, const char *resource,
                         const ck_informer_handlers *h, void *ctx);
const ck_resource *cm_res(const char *group, const char *resource);
/* Drop the shared parts of cached objects that no cached object holds any more (cm_run's
 * housekeeping thread calls it every 2 s); returns how many are still shared. */
size_t cm_intern_prune(void);
/* An object's text as the shared informers cache it (pod: the pod cut, else the generic one),
 * shared parts included; NULL if it is not JSON.  For tests.  NEW reference. */
json_t *cm_cache_decode(bool pod, const char *text, size_t len);

/* A sync function: 0 = done (the key is forgotten), -1 with *err = retry with backoff. */
typedef int (*cm_sync_fn)(void *self, const char *key, ck_error **err);
/* A work queue that `workers` threads will drain with fn once cm_run has synced the caches. */
ck_workqueue *cm_queue(cm *m, const char *name, int workers, cm_sync_fn fn, void *self);

/* Start informers, wait for their first lists, start workers.  Returns once all run. */
int cm_run(cm *m, ck_error **err);

/* Record an Event about obj (type "Normal"/"Warning") from component, asynchronously; floods are
 * cut as upstream's spam filter does (a burst of 25 per object and reason, then dropped). */
void cm_event(cm *m, const json_t *obj, const char *component, const char *type,
              const char *reason, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* --- expectations (controller.ControllerExpectations): creations/deletions a controller has
 * asked for and not yet seen in its informer, so a sync does not act twice on a burst. */
/* adds pods to be created; del_keys (may be NULL) = "ns/name" of the pods being deleted, tracked by
 * key so that seeing a deletion twice (deletionTimestamp, then gone) counts once. */
void cm_expect(cm *m, const char *key, int adds, const json_t *del_keys);
void cm_observe_add(cm *m, const char *key);               /* a creation seen, or one that failed */
void cm_observe_del(cm *m, const char *key, const char *pod_key);
bool cm_expectations_met(cm *m, const char *key);              /* met, expired (5 min) or unknown */
void cm_expect_forget(cm *m, const char *key);

/* --- JSON accessors (NULL / defaults when absent) */
json_t *cm_get(const json_t *obj, const char *dotted_path);
const char *cm_str(const json_t *obj, const char *dotted_path);
long long cm_int(const json_t *obj, const char *dotted_path, long long dflt);
bool cm_bool(const json_t *obj, const char *dotted_path, bool dflt);
const char *cm_name(const json_t *obj);
const char *cm_ns(const json_t *obj);
const char *cm_uid(const json_t *obj);
const char *cm_annotation(const json_t *obj, const char *key);
bool cm_deleting(const json_t *obj);
/* Whether the namespaces informer holds `name` and it is neither being deleted nor Terminating
 * (the controllers that keep an object in every namespace stop there). */
bool cm_namespace_active(ck_informer *namespaces, const char *name);
/* A deep copy of the value at path, or a new empty object / array when there is none. NEW.
 * (`json_deep_copy(cm_get(...) ?: json_object())` leaks the empty default.) */
static inline json_t *cm_copy_object(const json_t *obj, const char *path)
{
    json_t *v = cm_get(obj, path);
    return v ? json_deep_copy(v) : json_object();
}
static inline json_t *cm_copy_array(const json_t *obj, const char *path)
{
    json_t *v = cm_get(obj, path);
    return v ? json_deep_copy(v) : json_array();
}
/* Split "ns/name" (or "name"); *ns is NULL for cluster keys.  Caller frees *ns. */
void cm_split_key(const char *key, char **ns, const char **name);
/* The ownerReference with controller=true, or NULL. */
json_t *cm_controller_ref(const json_t *obj);
/* A controller ownerReference pointing at owner. NEW reference. */
json_t *cm_owner_ref(const json_t *owner, bool block);
bool cm_has_finalizer(const json_t *obj, const char *f);
/* Now, as RFC 3339 text and seconds; time fields parsed (0 when absent). */
int64_t cm_now(void);
void cm_now_str(char out[32]);
int64_t cm_time(const json_t *obj, const char *dotted_path);

/* --- pods */
bool cm_pod_active(const json_t *pod);      /* not terminal, not being deleted */
bool cm_pod_ready(const json_t *pod);
/* Ready for at least min_ready seconds at now. */
bool cm_pod_available(const json_t *pod, long min_ready, int64_t now);
json_t *cm_pod_condition(const json_t *pod, const char *type);

/* The container port a Service port targets on pod (targetPort by number or by name; default
 * = port); -1 when a named port is not found on the pod. */
long cm_target_port(const json_t *svc_port, const json_t *pod);
/* The Service's ports as they reach pod (a NEW array of {name, port, protocol[, appProtocol]}),
 * the ones whose target the pod lacks left out; an unnamed port's name is "" when
 * empty_name (EndpointSlice), absent otherwise (Endpoints).  Shared by both controllers. */
json_t *cm_endpoint_ports(const json_t *svc, const json_t *pod, bool empty_name);
/* Sorts a JSON array in place by cmp (qsort's, given json_t ** elements). */
void cm_sort_array(json_t *arr, int (*cmp)(const void *, const void *));
/* Whether every key=value of the Service's plain spec.selector map is in pod's labels (an empty
 * selector matches; callers skip selectorless Services themselves). */
bool cm_service_selects(const json_t *svc, const json_t *pod);
/* The informer wiring of a controller keyed by Service (Endpoints, EndpointSlice): a Service's
 * events enqueue its "ns/name"; a pod's enqueue the Services in its namespace whose selector
 * matches it (old and new labels on an update; updates that change nothing an endpoint is made
 * of are skipped).  The caller's struct holds the state; k must outlive the manager. */
typedef struct cm_service_keys {
    ck_informer *services, *pods;
    ck_workqueue *q;
} cm_service_keys;
void cm_service_keys_init(cm *m, cm_service_keys *k, ck_workqueue *q);
/* A handler (ctx = k) that enqueues obj's own key: for objects named as their Service. */
void cm_service_keys_enqueue(void *ctx, json_t *obj);

/* A short name-safe hash of obj's canonical JSON (+ salt): fnv-1a spelled in the
 * consonant-and-digit alphabet upstream uses for pod-template-hash, so names never spell words. */
void cm_hash(const json_t *obj, long salt, char out[16]);

/* "ns/name" of obj's controller when that controller is of the given kind, else NULL.  Caller
 * frees.  (Pod and revision handlers use it to enqueue their owner.) */
char *cm_owner_key(const json_t *obj, const char *kind);

/* --- ControllerRevision history (history.c; DaemonSet and StatefulSet) */
/* The revision data for owner's template: {"spec":{"template":{..., "$patch":"replace"}}}. NEW. */
json_t *cm_history_data(const json_t *owner);
/* Make the revision of owner's current template exist and be the newest: found by data among
 * the revisions owner controls (cached in revs), renumbered max+1 when an older one came back
 * (an undo), else created as `name` with label controller-revision-hash=hash.  Then prune
 * history beyond spec.revisionHistoryLimit (default 10), sparing revisions whose names are keys
 * of live.  *revision = the current revision's number. */
int cm_history_sync(cm *m, ck_informer *revs, const json_t *owner, const char *name,
                    const char *hash, const json_t *live, long long *revision, ck_error **err);

/* --- writes that ignore "already gone" */
int cm_delete(cm *m, const ck_resource *r, const char *ns, const char *name, const char *uid,
              const char *propagation, ck_error **err);

/* Run fn(ctx, i) for i in [0, n) on up to `width` threads; returns the number of failures. */
int cm_parallel(int n, int width, int (*fn)(void *ctx, int i), void *ctx);

/* Controllers: each init registers its informers and queues with m. */
int cm_replicaset_init(cm *m);
int cm_replicationcontroller_init(cm *m);
int cm_deployment_init(cm *m);
int cm_serviceaccount_init(cm *m);
int cm_rootca_init(cm *m);     /* root-ca-cert-publisher (rootca.c) */
int cm_namespace_init(cm *m);
int cm_gc_init(cm *m);
int cm_endpoints_init(cm *m);
int cm_endpointslice_init(cm *m);
int cm_nodelifecycle_init(cm *m);
/* Node lifecycle's choices, for tests: get(ctx, "ns/name") returns a NEW reference to a cached
 * pod or NULL.  The pods on node (per idx, checked again by get) that are Ready, to be marked
 * Ready=False when the node goes Unknown; and those the NoExecute taints of `taints` evict at
 * `now` (seconds), *next lowered to the seconds until the next one is due (-1 = none).  NEW
 * arrays of the pods. */
struct cm_podindex;
typedef json_t *(*cm_pod_lookup)(void *ctx, const char *key);
json_t *cm_nodelifecycle_not_ready(struct cm_podindex *idx, cm_pod_lookup get, void *ctx,
                                   const char *node);
json_t *cm_nodelifecycle_evictions(struct cm_podindex *idx, cm_pod_lookup get, void *ctx,
                                   const char *node, json_t *taints, int64_t now, long *next);
int cm_job_init(cm *m);
int cm_daemonset_init(cm *m);
/* PUT obj's status subresource with st, unless st equals the status obj already has (0 then).
 * -1 with *err on failure. */
int cm_write_status(cm *m, const ck_resource *r, const json_t *obj, const json_t *st, ck_error **err);
int cm_cronjob_init(cm *m);
int cm_statefulset_init(cm *m);
/* The spec.podFailurePolicy rule a Failed pod matches (job.c): its index, *action
 * ("FailJob", "Ignore", "Count", "FailIndex") and the message upstream writes; -1 and "Count"
 * when no rule matches. */
int cm_job_failure_rule(const json_t *job, const json_t *pod, const char **action, char *msg,
                        size_t msglen);
/* statefulset.c: the ownerReferences a StatefulSet's claim should carry under its
 * persistentVolumeClaimRetentionPolicy (upstream's updateClaimOwnerRefForSetAndPod): refs to the
 * set and the pod are replaced by a controller ref to the set (whenDeleted=Delete, ordinal in
 * range) or to the pod (whenScaled=Delete, ordinal scaled away; pod may be NULL); another
 * controller leaves them out altogether.  NEW array. */
json_t *cm_sts_claim_refs(const json_t *refs, const json_t *set, const json_t *pod, bool scaled_down);
/* daemonset.c: NodeShouldRunDaemonPod for a template (its automatic tolerations included):
 * *run = a new daemon pod belongs on node, *stay = one already there may keep running. */
void cm_ds_should_run(const json_t *tmpl_spec, const json_t *node, bool *run, bool *stay);
int cm_pvbinder_init(cm *m);
/* pvbinder.c: whether an Available volume fits a claim (class, volumeMode, access modes,
 * capacity, selector matchLabels, claimRef), and the volume a claim binds to (borrowed from
 * pvs, NULL if none fits). */
bool cm_pv_fits(const json_t *pv, const json_t *claim);
json_t *cm_pv_pick(const json_t *pvs, const json_t *claim);
/* The first time after t (seconds, UTC) a cron schedule fires; 0 if it does not parse. */
int64_t cm_cron_next(const char *spec, int64_t t);
/* The same on the wall clock of tz (lib/tz.h; NULL = UTC). */
struct ck_tz;
int64_t cm_cron_next_tz(const char *spec, const struct ck_tz *tz, int64_t t);

/* Tuning knobs the manager sets from flags. */
extern long cm_node_grace_ms;          /* lease not renewed for this long -> Unknown (40 s) */
extern long cm_node_eviction_check_ms; /* how often node lifecycle looks (5 s) */
extern char *cm_root_ca;               /* PEM published as kube-root-ca.crt (NULL: none) */

#endif
