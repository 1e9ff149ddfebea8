/* job.c - the Job controller (with the ttl-after-finished controller folded in), as
 * kube-controller-manager 1.33 runs it.
 *
 * Pods are tracked with the batch.kubernetes.io/job-tracking finalizer: every pod is created with
 * it, and a finished pod keeps it until its outcome is recorded.  A sync first writes the UIDs of
 * newly finished pods to status.uncountedTerminatedPods (Indexed jobs: their indexes to
 * completedIndexes), then removes their finalizers; a later sync that sees a listed pod without
 * the finalizer (or gone) moves it from the list to status.succeeded/failed.  Nothing is counted
 * twice or lost across a crash at any point, and finished pods may be deleted at will.
 *
 * A sync decides, in upstream's order: a FailJob podFailurePolicy rule, failures > backoffLimit
 * (BackoffLimitExceeded), activeDeadlineSeconds (DeadlineExceeded), for backoffLimitPerIndex
 * jobs maxFailedIndexes (MaxFailedIndexesExceeded) or every index done with some failed
 * (FailedIndexes), spec.successPolicy (SuccessPolicy), and completions reached
 * (CompletionsReached).  As in 1.33 (JobManagedBy/JobPodReplacementPolicy on) the decision is
 * first written as the interim condition FailureTarget or SuccessCriteriaMet; running pods are
 * deleted; the terminal Failed/Complete condition (and completionTime) follow once no pod is
 * uncounted or terminating.  Otherwise the job keeps min(parallelism, remaining) pods active;
 * a replacement for failed pods waits the pod failure backoff (10 s doubling per consecutive
 * failure since the last success, at most 10 min; per index with backoffLimitPerIndex, counted
 * in the job-index-failure-count annotations).  Suspending deletes the active pods and sets the
 * Suspended condition; resuming resets startTime.  status.active/ready/terminating as upstream.
 *
 * With restartPolicy OnFailure, container restarts of running pods count against backoffLimit
 * too (upstream's pastBackoffLimitOnFailure).
 *
 * A sync lists at most 500 pods in uncountedTerminatedPods (upstream's MaxUncountedPods: the
 * status stays small and one big job does not starve the others); the next sync takes the rest.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "controllers/cm.h"
#include "controllers/jobutil.h"
#include "lib/log.h"
#include "lib/util.h"

#define COMPONENT "job-controller"
#define INDEX_KEY "batch.kubernetes.io/job-completion-index"
#define TRACKING "batch.kubernetes.io/job-tracking"
#define FAIL_COUNT "batch.kubernetes.io/job-index-failure-count"
#define IGNORED_COUNT "batch.kubernetes.io/job-index-ignored-failure-count"
#define MAX_INDEX 100000
#define MAX_PER_SYNC 500
#define MAX_UNCOUNTED 500   /* UIDs in uncountedTerminatedPods (+ new indexes) per sync */

typedef struct jc {
    cm *m;
    ck_informer *jobs, *pods;
    ck_workqueue *q;
    pthread_mutex_t lock;
    json_t *backoff;    /* "ns/name" -> [failures, last failure ms] */
} jc;

static char *exp_key(const char *ns, const char *name)
{
    return xasprintf("job:%s/%s", ns ? ns : "", name);
}

static void enqueue(jc *c, const char *ns, const char *name)
{
    cleanup_free char *k = xasprintf("%s/%s", ns ? ns : "", name);
    ck_workqueue_add(c->q, k);
}

static void on_job(void *ctx, json_t *j)
{
    enqueue(ctx, cm_ns(j), cm_name(j));
}

static void on_job_update(void *ctx, json_t *old, json_t *j)
{
    (void)old;
    on_job(ctx, j);
}

static const char *job_owner(const json_t *pod)
{
    json_t *ref = cm_controller_ref(pod);
    if (!ref || strcmp(json_string_value(json_object_get(ref, "kind")) ?: "", "Job"))
        return NULL;
    return json_string_value(json_object_get(ref, "name"));
}

static void on_pod_add(void *ctx, json_t *pod)
{
    jc *c = ctx;
    const char *owner = job_owner(pod);
    if (!owner)
        return;
    cleanup_free char *ek = exp_key(cm_ns(pod), owner);
    cm_observe_add(c->m, ek);
    enqueue(c, cm_ns(pod), owner);
}

static void on_pod_update(void *ctx, json_t *old, json_t *pod)
{
    (void)old;
    jc *c = ctx;
    const char *owner = job_owner(pod);
    if (owner)
        enqueue(c, cm_ns(pod), owner);
}

static void on_pod_delete(void *ctx, json_t *pod)
{
    on_pod_update(ctx, NULL, pod);
}

static json_t *cond(const json_t *job, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach(cm_get(job, "status.conditions"), i, c)
        if (!strcmp(cm_str(c, "type") ?: "", type) && !strcmp(cm_str(c, "status") ?: "", "True"))
            return c;
    return NULL;
}

static long pod_index(const json_t *pod)
{
    const char *s = cm_annotation(pod, INDEX_KEY);
    if (!s || !*s)
        return -1;
    char *end;
    long v = strtol(s, &end, 10);
    return *end || v < 0 ? -1 : v;
}

static long ann_count(const json_t *pod, const char *key)
{
    const char *s = cm_annotation(pod, key);
    return s ? atol(s) : 0;
}

static bool is_phase(const json_t *pod, const char *phase)
{
    return !strcmp(cm_str(pod, "status.phase") ?: "", phase);
}

static json_t *pod_for(const json_t *job, long index, long fails, long ignored)
{
    json_t *tmpl = cm_get(job, "spec.template");
    cleanup_free char *gen = index >= 0 ? xasprintf("%s-%ld-", cm_name(job), index)
                                        : xasprintf("%s-", cm_name(job));
    json_t *md = json_pack("{s:s, s:s, s:[o], s:[s]}", "generateName", gen, "namespace", cm_ns(job),
                           "ownerReferences", cm_owner_ref(job, true), "finalizers", TRACKING);
    json_t *labels = cm_copy_object(tmpl, "metadata.labels");
    json_t *ann = cm_copy_object(tmpl, "metadata.annotations");
    json_t *spec = cm_copy_object(tmpl, "spec");
    /* the labels the API server's generated selector would have put on the template */
    static const char *const name_labels[] = {"batch.kubernetes.io/job-name", "job-name"};
    static const char *const uid_labels[] = {"batch.kubernetes.io/controller-uid", "controller-uid"};
    for (size_t i = 0; i < 2; i++) {
        if (!json_object_get(labels, name_labels[i]))
            json_object_set_new(labels, name_labels[i], json_string(cm_name(job)));
        if (!json_object_get(labels, uid_labels[i]))
            json_object_set_new(labels, uid_labels[i], json_string(cm_uid(job) ?: ""));
    }
    if (index >= 0) {
        char idx[32];
        snprintf(idx, sizeof idx, "%ld", index);
        json_object_set_new(labels, INDEX_KEY, json_string(idx));
        json_object_set_new(ann, INDEX_KEY, json_string(idx));
        if (json_is_integer(cm_get(job, "spec.backoffLimitPerIndex"))) {
            char n[32];
            snprintf(n, sizeof n, "%ld", fails);
            json_object_set_new(ann, FAIL_COUNT, json_string(n));
            if (ignored) {
                snprintf(n, sizeof n, "%ld", ignored);
                json_object_set_new(ann, IGNORED_COUNT, json_string(n));
            }
        }
        size_t i;
        json_t *ctr;
        json_array_foreach(json_object_get(spec, "containers"), i, ctr) {
            if (!json_object_get(ctr, "env"))
                json_object_set_new(ctr, "env", json_array());
            json_array_append_new(json_object_get(ctr, "env"),
                                  json_pack("{s:s, s:s}", "name", "JOB_COMPLETION_INDEX", "value", idx));
        }
        cleanup_free char *host = xasprintf("%s-%ld", cm_name(job), index);
        if (!json_object_get(spec, "hostname"))
            json_object_set_new(spec, "hostname", json_string(host));
    }
    json_object_set_new(md, "labels", labels);
    json_object_set_new(md, "annotations", ann);
    return json_pack("{s:s, s:s, s:o, s:o}", "apiVersion", "v1", "kind", "Pod", "metadata", md,
                     "spec", spec);
}

/* ---------------------------------------------------------------- writes to pods */

typedef struct batch {
    jc *c;
    const json_t *job;
    const char *ek;
    long *indexes, *fails, *ignored;   /* creations; NULL for NonIndexed */
    json_t *pods;                      /* deletions / finalizer removals */
    bool unfinalize;                   /* deletions: remove the finalizer first */
    ck_error *err;
    pthread_mutex_t lock;
} batch;

static void keep_err(batch *b, ck_error *e)
{
    pthread_mutex_lock(&b->lock);
    if (!b->err)
        b->err = e;
    else
        ck_error_free(e);
    pthread_mutex_unlock(&b->lock);
}

static int make_one(void *arg, int i)
{
    batch *k = arg;
    json_t *pod = pod_for(k->job, k->indexes ? k->indexes[i] : -1, k->fails ? k->fails[i] : 0,
                          k->ignored ? k->ignored[i] : 0);
    ck_error *e = NULL;
    json_t *out = ck_client_create(cm_client(k->c->m), cm_res("", "pods"), cm_ns(k->job), pod, &e);
    json_decref(pod);
    if (out) {
        cm_event(k->c->m, k->job, COMPONENT, "Normal", "SuccessfulCreate", "Created pod: %s",
                 cm_name(out));
        json_decref(out);
        return 0;
    }
    cm_observe_add(k->c->m, k->ek);
    keep_err(k, e);
    return -1;
}

static int unfinalize_pod(cm *m, const json_t *pod, ck_error **err)
{
    if (!cm_has_finalizer(pod, TRACKING))
        return 0;
    json_t *patch = json_pack("{s:{s:[s]}}", "metadata", "$deleteFromPrimitiveList/finalizers", TRACKING);
    ck_error *e = NULL;
    json_t *out = ck_client_patch(cm_client(m), cm_res("", "pods"), cm_ns(pod), cm_name(pod), NULL,
                                  "application/strategic-merge-patch+json", patch, &e);
    json_decref(patch);
    json_decref(out);
    if (out || e->code == CK_E_NOT_FOUND) {
        ck_error_free(e);
        return 0;
    }
    *err = e;
    return -1;
}

static int unfinalize_one(void *arg, int i)
{
    batch *b = arg;
    ck_error *e = NULL;
    if (unfinalize_pod(b->c->m, json_array_get(b->pods, (size_t)i), &e) < 0) {
        keep_err(b, e);
        return -1;
    }
    return 0;
}

static int delete_one(void *arg, int i)
{
    batch *b = arg;
    json_t *p = json_array_get(b->pods, (size_t)i);
    ck_error *e = NULL;
    if ((b->unfinalize && unfinalize_pod(b->c->m, p, &e) < 0) ||
        cm_delete(b->c->m, cm_res("", "pods"), cm_ns(p), cm_name(p), cm_uid(p), NULL, &e) < 0) {
        keep_err(b, e);
        return -1;
    }
    cm_event(b->c->m, b->job, COMPONENT, "Normal", "SuccessfulDelete", "Deleted pod: %s", cm_name(p));
    return 0;
}

/* Run fn over b->pods (or n creations); the first error into *err.  Returns the successes. */
static int run_batch(batch *b, int n, int (*fn)(void *, int), ck_error **err)
{
    if (n <= 0)
        return 0;
    pthread_mutex_init(&b->lock, NULL);
    int fails = cm_parallel(n, 16, fn, b);
    pthread_mutex_destroy(&b->lock);
    if (b->err) {
        if (*err)
            ck_error_free(b->err);
        else
            *err = b->err;
        b->err = NULL;
    }
    return n - fails;
}

static int pods_batch(jc *c, const json_t *job, json_t *pods, bool unfinalize,
                      int (*fn)(void *, int), ck_error **err)
{
    batch b = {.c = c, .job = job, .pods = pods, .unfinalize = unfinalize};
    return run_batch(&b, (int)json_array_size(pods), fn, err);
}

/* Pods of a deleted or finished job keep no tracking finalizer (upstream's orphan handling). */
static int release_pods(jc *c, const char *ns, const char *name, const char *uid, ck_error **err)
{
    json_t *all = ck_informer_list(c->pods), *todo = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(all, i, p) {
        json_t *ref = cm_controller_ref(p);
        if (!cm_has_finalizer(p, TRACKING) || strcmp(cm_ns(p) ?: "", ns ?: "") ||
            strcmp(job_owner(p) ?: "", name))
            continue;
        if (uid && strcmp(json_string_value(json_object_get(ref, "uid")) ?: "", uid))
            continue;
        json_array_append(todo, p);
    }
    json_decref(all);
    size_t n = json_array_size(todo);
    int ok = pods_batch(c, NULL, todo, false, unfinalize_one, err);
    json_decref(todo);
    return (size_t)ok == n ? 0 : -1;
}

static void add_condition(json_t *st, const char *type, const char *reason, const char *msg)
{
    char now[32];
    cm_now_str(now);
    if (!json_object_get(st, "conditions"))
        json_object_set_new(st, "conditions", json_array());
    json_t *c = json_pack("{s:s, s:s, s:s, s:s}", "type", type, "status", "True", "lastProbeTime", now,
                          "lastTransitionTime", now);
    if (reason && *reason)
        json_object_set_new(c, "reason", json_string(reason));
    if (msg && *msg)
        json_object_set_new(c, "message", json_string(msg));
    json_array_append_new(json_object_get(st, "conditions"), c);
}

/* ensureJobConditionStatus: set type to status (adding it only when True); true if changed. */
static bool ensure_condition(json_t *st, const char *type, const char *status, const char *reason,
                             const char *msg)
{
    size_t i;
    json_t *c;
    char now[32];
    cm_now_str(now);
    json_array_foreach(json_object_get(st, "conditions"), i, c) {
        if (strcmp(cm_str(c, "type") ?: "", type))
            continue;
        if (!strcmp(cm_str(c, "status") ?: "", status))
            return false;
        json_object_set_new(c, "status", json_string(status));
        json_object_set_new(c, "reason", json_string(reason));
        json_object_set_new(c, "message", json_string(msg));
        json_object_set_new(c, "lastProbeTime", json_string(now));
        json_object_set_new(c, "lastTransitionTime", json_string(now));
        return true;
    }
    if (strcmp(status, "True"))
        return false;
    add_condition(st, type, reason, msg);
    return true;
}

/* A set (object uid -> true) of a list of UIDs: membership tests stay O(1) when thousands of pods
 * finish at once.  NEW. */
static json_t *uid_set(const json_t *list)
{
    json_t *set = json_object();
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
        if (json_string_value(v))
            json_object_set_new(set, json_string_value(v), json_true());
    return set;
}

static bool uid_in(const json_t *set, const char *uid)
{
    return json_object_get(set, uid ?: "") != NULL;
}

/* Add uid to both the list and its set. */
static void uid_add(json_t *list, json_t *set, const char *uid)
{
    json_array_append_new(list, json_string(uid));
    json_object_set_new(set, uid, json_true());
}

/* ---------------------------------------------------------------- sync */

/* What one sync learns from the job's pods. */
typedef struct view {
    bool indexed, per_index, only_failed;
    long completions, bpi;
    json_t *pods, *active;         /* owned pods; active ones */
    long ready, terminating;
    long restarts;                 /* container restarts of running/pending pods (OnFailure) */
    int64_t *new_s, *new_f;        /* finish times of newly finished pods (backoff) */
    size_t n_new_s, n_new_f;
    long new_succeeded, new_failed;   /* not yet in status or uncounted (ignored failures out) */
    char fail_msg[512];            /* a FailJob rule matched */
    unsigned char *done, *running, *failed_idx;   /* per index (Indexed jobs) */
    const json_t **last_failed;    /* per index: the latest failed pod (backoffLimitPerIndex) */
} view;

static void view_free(view *v)
{
    json_decref(v->pods);
    json_decref(v->active);
    free(v->new_s);
    free(v->new_f);
    free(v->done);
    free(v->running);
    free(v->failed_idx);
    free(v->last_failed);
}

/* Failed as the job sees it: phase Failed, or (unless only failed pods are replaced) deleted
 * before it succeeded. */
static bool considered_failed(const view *v, const json_t *pod)
{
    if (is_phase(pod, "Failed"))
        return true;
    return !v->only_failed && cm_deleting(pod) && !is_phase(pod, "Succeeded");
}

static bool counted_failure(const json_t *job, const json_t *pod)
{
    const char *action;
    char msg[8];
    cm_job_failure_rule(job, pod, &action, msg, sizeof msg);
    return strcmp(action, "Ignore") != 0;
}

static long abs_failures(const json_t *pod)
{
    return ann_count(pod, FAIL_COUNT) + ann_count(pod, IGNORED_COUNT);
}

static void look(const json_t *job, view *v, json_t *all, const json_t *unc_s, const json_t *unc_f,
                 int64_t now_ms)
{
    long n = v->completions;
    if (v->indexed && n > 0) {
        v->done = xcalloc((size_t)n, 1);
        v->running = xcalloc((size_t)n, 1);
        cm_job_ranges_parse(cm_str(job, "status.completedIndexes"), v->done, n);
    }
    if (v->per_index) {
        v->failed_idx = xcalloc((size_t)n, 1);
        v->last_failed = xcalloc((size_t)n, sizeof *v->last_failed);
        cm_job_ranges_parse(cm_str(job, "status.failedIndexes"), v->failed_idx, n);
    }
    v->pods = json_array();
    v->active = json_array();
    size_t cap = json_array_size(all) + 1;
    v->new_s = xcalloc(cap, sizeof *v->new_s);
    v->new_f = xcalloc(cap, sizeof *v->new_f);
    size_t i;
    json_t *pod;
    json_array_foreach(all, i, pod) {
        json_t *ref = cm_controller_ref(pod);
        if (!ref || strcmp(json_string_value(json_object_get(ref, "uid")) ?: "", cm_uid(job)))
            continue;
        json_array_append(v->pods, pod);
        long idx = pod_index(pod);
        bool valid_idx = !v->indexed || (idx >= 0 && idx < n);
        bool terminal = is_phase(pod, "Succeeded") || is_phase(pod, "Failed");
        if (!terminal && !cm_deleting(pod)) {
            json_array_append(v->active, pod);
            v->ready += cm_pod_ready(pod);
            if (v->running && valid_idx)
                v->running[idx] = 1;
        }
        if (!terminal && cm_deleting(pod))
            v->terminating++;
        if (is_phase(pod, "Running") || is_phase(pod, "Pending")) {
            static const char *const lists[] = {"status.containerStatuses", "status.initContainerStatuses"};
            for (size_t l = 0; l < ARRAY_SIZE(lists); l++) {
                size_t k;
                json_t *cs;
                json_array_foreach(cm_get(pod, lists[l]), k, cs)
                    v->restarts += (long)json_integer_value(json_object_get(cs, "restartCount"));
            }
        }
        bool failed = considered_failed(v, pod);
        if (failed && !v->fail_msg[0] && cm_get(job, "spec.podFailurePolicy")) {
            const char *action;
            char msg[512];
            cm_job_failure_rule(job, pod, &action, msg, sizeof msg);
            if (!strcmp(action, "FailJob"))
                snprintf(v->fail_msg, sizeof v->fail_msg, "%s", msg);
        }
        bool fin = cm_has_finalizer(pod, TRACKING);
        if (v->per_index && failed && valid_idx && idx >= 0) {
            const json_t *prev = v->last_failed[idx];
            if (!prev || abs_failures(pod) > abs_failures(prev) ||
                (abs_failures(pod) == abs_failures(prev) &&
                 cm_job_pod_finish_ms(pod, now_ms) > cm_job_pod_finish_ms(prev, now_ms)))
                v->last_failed[idx] = pod;
            if (fin) {   /* calculateFailedIndexes */
                const char *action;
                char msg[8];
                cm_job_failure_rule(job, pod, &action, msg, sizeof msg);
                if (!strcmp(action, "FailIndex") ||
                    (strcmp(action, "Ignore") && ann_count(pod, FAIL_COUNT) >= v->bpi))
                    v->failed_idx[idx] = 1;
            }
        }
        if (!fin || uid_in(unc_s, cm_uid(pod)) || uid_in(unc_f, cm_uid(pod)) || !valid_idx)
            continue;
        if (is_phase(pod, "Succeeded")) {
            v->new_s[v->n_new_s++] = cm_job_pod_finish_ms(pod, now_ms);
            v->new_succeeded++;
            if (v->done)
                v->done[idx] = 1;
        } else if (failed) {
            v->new_f[v->n_new_f++] = cm_job_pod_finish_ms(pod, now_ms);
            v->new_failed += counted_failure(job, pod);
        }
    }
    if (v->per_index)   /* a succeeded index is not a failed one */
        for (long k = 0; k < n; k++)
            if (v->done[k])
                v->failed_idx[k] = 0;
}

/* pastBackoffLimitOnFailure: with restartPolicy OnFailure the restarts of running containers
 * count against backoffLimit. */
static bool past_restart_limit(const json_t *job, const view *v, long backoff_limit)
{
    if (strcmp(cm_str(job, "spec.template.spec.restartPolicy") ?: "", "OnFailure"))
        return false;
    return backoff_limit == 0 ? v->restarts > 0 : v->restarts >= backoff_limit;
}

static long count_bits(const unsigned char *b, long n)
{
    long c = 0;
    for (long i = 0; b && i < n; i++)
        c += b[i];
    return c;
}

/* Pods to delete when there are too many: not ready first, then the newest. */
static int removal_order(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    bool rx = cm_pod_ready(x), ry = cm_pod_ready(y);
    if (rx != ry)
        return rx ? 1 : -1;
    int64_t tx = cm_time(x, "metadata.creationTimestamp"), ty = cm_time(y, "metadata.creationTimestamp");
    return tx > ty ? -1 : tx < ty;
}

/* manageJob: suspend, scale down or create (respecting the failure backoff).  Updates *active,
 * v->ready and v->terminating by what it deleted. */
static int manage(jc *c, const json_t *job, const char *key, const char *ek, view *v,
                  const cm_job_backoff *bo, long succeeded, long *active, ck_error **err)
{
    bool suspend = cm_bool(job, "spec.suspend", false);
    long parallelism = (long)cm_int(job, "spec.parallelism", 1);
    long want;
    if (suspend)
        want = 0;
    else if (v->completions < 0)
        want = succeeded > 0 ? *active : parallelism;
    else {
        want = v->completions - succeeded;
        if (want > parallelism)
            want = parallelism;
        if (want < 0)
            want = 0;
    }
    /* Indexed: a second pod for one index is surplus too */
    json_t *extra = json_array();
    if (v->indexed) {
        unsigned char *seen = v->completions > 0 ? xcalloc((size_t)v->completions, 1) : NULL;
        size_t i;
        json_t *p;
        json_array_foreach(v->active, i, p) {
            long idx = pod_index(p);
            if (idx < 0 || idx >= v->completions || seen[idx] || (v->done && v->done[idx]))
                json_array_append(extra, p);
            else
                seen[idx] = 1;
        }
        free(seen);
    }
    long rm = *active - want;
    if (rm > (long)json_array_size(extra)) {
        size_t n = json_array_size(v->active);
        json_t **vec = xcalloc(n + 1, sizeof *vec);
        for (size_t i = 0; i < n; i++)
            vec[i] = json_array_get(v->active, i);
        qsort(vec, n, sizeof *vec, removal_order);
        for (size_t i = 0; i < n && (long)json_array_size(extra) < rm; i++) {
            bool dup = false;
            size_t j;
            json_t *e;
            json_array_foreach(extra, j, e)
                dup |= e == vec[i];
            if (!dup)
                json_array_append(extra, vec[i]);
        }
        free(vec);
    }
    while (json_array_size(extra) > MAX_PER_SYNC)
        json_array_remove(extra, json_array_size(extra) - 1);
    if (json_array_size(extra)) {
        /* the finalizer goes first: a pod removed on purpose is not a failure */
        size_t i;
        json_t *p;
        long ready = 0;
        json_array_foreach(extra, i, p)
            ready += cm_pod_ready(p);
        int done = pods_batch(c, job, extra, true, delete_one, err);
        *active -= done;
        v->terminating += done;
        v->ready -= done == (int)json_array_size(extra) ? ready : 0;
        json_decref(extra);
        return done == (int)json_array_size(extra) ? 0 : -1;
    }
    json_decref(extra);
    long diff = want - (v->only_failed ? v->terminating : 0) - *active;
    if (diff <= 0 || suspend)
        return 0;
    int64_t now_ms = ck_wall_ns() / 1000000;
    if (!v->per_index) {
        int64_t wait = cm_job_backoff_remaining_ms(bo->failures, bo->last_failure_ms, now_ms);
        if (wait > 0) {
            ck_workqueue_add_after(c->q, key, wait + 100);
            return 0;
        }
    }
    if (diff > MAX_PER_SYNC)
        diff = MAX_PER_SYNC;
    batch b = {.c = c, .job = job, .ek = ek};
    long n = diff;
    if (v->indexed && v->completions > 0) {
        b.indexes = xcalloc((size_t)n, sizeof *b.indexes);
        b.fails = xcalloc((size_t)n, sizeof *b.fails);
        b.ignored = xcalloc((size_t)n, sizeof *b.ignored);
        long m = 0;
        int64_t soonest = 0;
        for (long k = 0; k < v->completions && m < n; k++) {
            if (v->done[k] || v->running[k] || (v->failed_idx && v->failed_idx[k]))
                continue;
            const json_t *last = v->last_failed ? v->last_failed[k] : NULL;
            if (last) {
                int64_t wait = cm_job_backoff_remaining_ms((int)abs_failures(last) + 1,
                                                           cm_job_pod_finish_ms(last, now_ms), now_ms);
                if (wait > 0) {
                    if (!soonest || wait < soonest)
                        soonest = wait;
                    continue;
                }
                bool counted = counted_failure(job, last);
                b.fails[m] = ann_count(last, FAIL_COUNT) + counted;
                b.ignored[m] = ann_count(last, IGNORED_COUNT) + !counted;
            }
            b.indexes[m++] = k;
        }
        if (soonest)
            ck_workqueue_add_after(c->q, key, soonest + 100);
        n = m;
    }
    int rc = 0;
    if (n > 0) {
        cm_expect(c->m, ek, (int)n, NULL);
        int made = run_batch(&b, (int)n, make_one, err);
        *active += made;
        rc = made == n ? 0 : -1;
    }
    free(b.indexes);
    free(b.fails);
    free(b.ignored);
    return rc;
}

static int finished_job(jc *c, const char *key, const json_t *job, const json_t *done_cond, ck_error **err)
{
    int64_t now = cm_now();
    pthread_mutex_lock(&c->lock);
    json_object_del(c->backoff, key);
    pthread_mutex_unlock(&c->lock);
    if (release_pods(c, cm_ns(job), cm_name(job), cm_uid(job), err) < 0)
        return -1;
    json_t *ttl = cm_get(job, "spec.ttlSecondsAfterFinished");
    if (!json_is_integer(ttl) || cm_deleting(job))
        return 0;
    int64_t at = cm_time(done_cond, "lastTransitionTime") + json_integer_value(ttl);
    if (at <= now)
        return cm_delete(c->m, cm_res("batch", "jobs"), cm_ns(job), cm_name(job), cm_uid(job),
                         "Background", err);
    ck_workqueue_add_after(c->q, key, (at - now) * 1000 + 100);
    return 0;
}

static int sync_job(void *self, const char *key, ck_error **err)
{
    jc *c = self;
    cleanup_free char *ns = NULL;
    const char *name;
    cm_split_key(key, &ns, &name);
    cleanup_free char *ek = exp_key(ns, name);
    json_t *job = ck_informer_get(c->jobs, ns, name);
    if (!job) {
        cm_expect_forget(c->m, ek);
        pthread_mutex_lock(&c->lock);
        json_object_del(c->backoff, key);
        pthread_mutex_unlock(&c->lock);
        return release_pods(c, ns, name, NULL, err);
    }
    /* spec.managedBy names another controller: this one leaves the job alone (JobManagedBy) */
    const char *managed_by = cm_str(job, "spec.managedBy");
    if (managed_by && strcmp(managed_by, "kubernetes.io/job-controller")) {
        json_decref(job);
        return 0;
    }
    json_t *done_cond = cond(job, "Complete") ?: cond(job, "Failed");
    if (done_cond || cm_deleting(job)) {
        int rc = done_cond ? finished_job(c, key, job, done_cond, err)
                           : release_pods(c, ns, name, cm_uid(job), err);
        json_decref(job);
        return rc;
    }

    int64_t now = cm_now(), now_ms = ck_wall_ns() / 1000000;
    view v = {0};
    v.indexed = !strcmp(cm_str(job, "spec.completionMode") ?: "NonIndexed", "Indexed");
    json_t *jcomp = cm_get(job, "spec.completions");
    v.completions = json_is_integer(jcomp) ? (long)json_integer_value(jcomp) : -1;
    if (v.completions > MAX_INDEX)
        v.completions = MAX_INDEX;
    json_t *bpi = cm_get(job, "spec.backoffLimitPerIndex");
    v.per_index = v.indexed && v.completions > 0 && json_is_integer(bpi);
    v.bpi = v.per_index ? (long)json_integer_value(bpi) : 0;
    v.only_failed = cm_get(job, "spec.podFailurePolicy") ||
                    !strcmp(cm_str(job, "spec.podReplacementPolicy") ?: "", "Failed");
    long backoff_limit = (long)cm_int(job, "spec.backoffLimit", 6);
    bool suspend = cm_bool(job, "spec.suspend", false);
    json_t *unc_s = cm_get(job, "status.uncountedTerminatedPods.succeeded");
    json_t *unc_f = cm_get(job, "status.uncountedTerminatedPods.failed");

    json_t *all = ck_informer_list(c->pods);
    json_t *unc_s_set = uid_set(unc_s), *unc_f_set = uid_set(unc_f);
    look(job, &v, all, unc_s_set, unc_f_set, now_ms);
    json_decref(all);
    json_decref(unc_s_set);
    json_decref(unc_f_set);

    cm_job_backoff bo = {0};
    pthread_mutex_lock(&c->lock);
    json_t *rec = json_object_get(c->backoff, key);
    if (rec) {
        bo.failures = (int)json_integer_value(json_array_get(rec, 0));
        bo.last_failure_ms = json_integer_value(json_array_get(rec, 1));
    }
    pthread_mutex_unlock(&c->lock);
    cm_job_backoff_update(&bo, v.new_s, v.n_new_s, v.new_f, v.n_new_f);

    long succeeded = v.indexed && v.done ? count_bits(v.done, v.completions)
                                         : (long)cm_int(job, "status.succeeded", 0) +
                                               (long)json_array_size(unc_s) + v.new_succeeded;
    long failed = (long)cm_int(job, "status.failed", 0) + (long)json_array_size(unc_f) + v.new_failed;
    long failed_indexes = count_bits(v.failed_idx, v.completions);

    json_t *st = cm_copy_object(job, "status");
    if (!suspend && !json_object_get(st, "startTime")) {
        char ts[32];
        cm_now_str(ts);
        json_object_set_new(st, "startTime", json_string(ts));
    }
    int64_t start = cm_time(st, "startTime");
    json_t *deadline = cm_get(job, "spec.activeDeadlineSeconds");

    /* the finish decision: *fin_type is the terminal condition, interim the one written first */
    const char *fin_type = NULL, *interim = NULL;
    char reason[64] = "", msg[512] = "";
    json_t *had;
    if ((had = cond(job, "SuccessCriteriaMet")) || (had = cond(job, "FailureTarget"))) {
        fin_type = !strcmp(cm_str(had, "type"), "SuccessCriteriaMet") ? "Complete" : "Failed";
        snprintf(reason, sizeof reason, "%s", cm_str(had, "reason") ?: "");
        snprintf(msg, sizeof msg, "%s", cm_str(had, "message") ?: "");
    } else if (v.fail_msg[0]) {
        fin_type = "Failed";
        snprintf(reason, sizeof reason, "PodFailurePolicy");
        snprintf(msg, sizeof msg, "%s", v.fail_msg);
    } else if (!v.per_index && (failed > backoff_limit || past_restart_limit(job, &v, backoff_limit))) {
        fin_type = "Failed";
        snprintf(reason, sizeof reason, "BackoffLimitExceeded");
        snprintf(msg, sizeof msg, "Job has reached the specified backoff limit");
    } else if (json_is_integer(deadline) && start && !suspend &&
               now - start >= json_integer_value(deadline)) {
        fin_type = "Failed";
        snprintf(reason, sizeof reason, "DeadlineExceeded");
        snprintf(msg, sizeof msg, "Job was active longer than specified deadline");
    } else if (v.per_index && json_is_integer(cm_get(job, "spec.maxFailedIndexes")) &&
               failed_indexes > cm_int(job, "spec.maxFailedIndexes", 0)) {
        fin_type = "Failed";
        snprintf(reason, sizeof reason, "MaxFailedIndexesExceeded");
        snprintf(msg, sizeof msg, "Job has exceeded the specified maximal number of failed indexes");
    } else if (v.per_index && failed_indexes && failed_indexes + succeeded >= v.completions) {
        fin_type = "Failed";
        snprintf(reason, sizeof reason, "FailedIndexes");
        snprintf(msg, sizeof msg, "Job has failed indexes");
    } else if (v.indexed && v.done && cm_job_success_policy(job, v.done, v.completions, msg, sizeof msg)) {
        fin_type = "Complete";
        snprintf(reason, sizeof reason, "SuccessPolicy");
    }
    if (fin_type && !had)
        interim = !strcmp(fin_type, "Failed") ? "FailureTarget" : "SuccessCriteriaMet";
    if (!fin_type && json_is_integer(deadline) && start && !suspend) {
        int64_t left = start + json_integer_value(deadline) - now;
        ck_workqueue_add_after(c->q, key, (left > 0 ? left : 0) * 1000 + 100);
    }

    int rc = 0;
    long active = (long)json_array_size(v.active);
    if (fin_type) {   /* running pods go; their finalizers are removed below */
        long ready = v.ready;
        int n = pods_batch(c, job, v.active, false, delete_one, err);
        if (n < (int)json_array_size(v.active))
            rc = -1;
        active -= n;
        v.terminating += n;
        v.ready = n == (int)json_array_size(v.active) ? 0 : ready;
    } else {
        bool managed = false;
        if (cm_expectations_met(c->m, ek)) {
            rc = manage(c, job, key, ek, &v, &bo, succeeded, &active, err);
            managed = true;
        }
        if ((v.completions < 0 && succeeded > 0 && active == 0) ||
            (v.completions >= 0 && succeeded >= v.completions && active == 0)) {
            fin_type = "Complete";
            interim = "SuccessCriteriaMet";
            snprintf(reason, sizeof reason, "CompletionsReached");
            snprintf(msg, sizeof msg, "Reached expected number of succeeded pods");
        } else if (managed && suspend) {
            if (ensure_condition(st, "Suspended", "True", "JobSuspended", "Job suspended")) {
                cm_event(c->m, job, COMPONENT, "Normal", "Suspended", "Job suspended");
                json_object_del(st, "startTime");
            }
        } else if (managed) {
            if (ensure_condition(st, "Suspended", "False", "JobResumed", "Job resumed")) {
                cm_event(c->m, job, COMPONENT, "Normal", "Resumed", "Job resumed");
                char ts[32];
                cm_now_str(ts);
                json_object_set_new(st, "startTime", json_string(ts));
            }
        }
    }
    bool failing = fin_type && !strcmp(fin_type, "Failed");

    /* tracking: uncounted pods whose finalizer is gone are counted; newly finished pods are
     * listed as uncounted and lose their finalizer once that is written */
    json_t *ns_list = json_array(), *nf_list = json_array(), *unfin = json_array();
    json_t *ns_set = json_object(), *nf_set = json_object();
    long st_succ = (long)cm_int(job, "status.succeeded", 0), st_fail = (long)cm_int(job, "status.failed", 0);
    size_t i;
    json_t *u, *pod;
    json_t *with_fin = json_object();
    json_array_foreach(v.pods, i, pod)
        if (cm_has_finalizer(pod, TRACKING))
            json_object_set_new(with_fin, cm_uid(pod), json_true());
    json_array_foreach(unc_s, i, u) {
        if (json_object_get(with_fin, json_string_value(u) ?: ""))
            uid_add(ns_list, ns_set, json_string_value(u));
        else
            st_succ++;
    }
    json_array_foreach(unc_f, i, u) {
        if (json_object_get(with_fin, json_string_value(u) ?: ""))
            uid_add(nf_list, nf_set, json_string_value(u));
        else
            st_fail++;
    }
    json_decref(with_fin);
    size_t new_indexes = 0;
    bool capped = false;
    json_array_foreach(v.pods, i, pod) {
        if (!cm_has_finalizer(pod, TRACKING))
            continue;
        bool pfailed = considered_failed(&v, pod);
        long idx = pod_index(pod);
        bool valid_idx = !v.indexed || (idx >= 0 && idx < v.completions);
        bool can = fin_type || is_phase(pod, "Succeeded") || pfailed;
        /* backoffLimitPerIndex: the latest failure of an index stays until its replacement exists
         * (its annotations carry the count) */
        if (can && !fin_type && pfailed && v.per_index && valid_idx && v.last_failed[idx] == pod &&
            !v.done[idx] && !v.failed_idx[idx] && !v.running[idx])
            can = false;
        if (!can)
            continue;
        const char *uid = cm_uid(pod);
        /* pods already listed always go on; new ones only while the list is under the cap (the
         * status update requeues the job, whose next sync takes the rest) */
        if (!uid_in(ns_set, uid) && !uid_in(nf_set, uid) &&
            json_array_size(ns_list) + json_array_size(nf_list) + new_indexes >= MAX_UNCOUNTED) {
            capped = true;
            continue;
        }
        json_array_append(unfin, pod);
        if (is_phase(pod, "Succeeded") && !uid_in(nf_set, uid)) {
            if (!v.indexed && !uid_in(ns_set, uid))
                uid_add(ns_list, ns_set, uid);
            else if (v.indexed)
                new_indexes++;
        } else if ((pfailed || failing) && !uid_in(nf_set, uid) && valid_idx &&
                   counted_failure(job, pod)) {
            uid_add(nf_list, nf_set, uid);
        }
    }
    if (v.indexed && v.done)
        st_succ = count_bits(v.done, v.completions);
    json_object_set_new(st, "succeeded", json_integer(st_succ));
    json_object_set_new(st, "failed", json_integer(st_fail));
    json_object_set_new(st, "uncountedTerminatedPods", json_object());
    if (json_array_size(ns_list))
        json_object_set(json_object_get(st, "uncountedTerminatedPods"), "succeeded", ns_list);
    if (json_array_size(nf_list))
        json_object_set(json_object_get(st, "uncountedTerminatedPods"), "failed", nf_list);
    if (v.done) {
        char *r = cm_job_ranges_format(v.done, v.completions);
        if (*r)
            json_object_set_new(st, "completedIndexes", json_string(r));
        else
            json_object_del(st, "completedIndexes");
        free(r);
    }
    if (v.per_index) {   /* present (maybe empty) whenever backoffLimitPerIndex is set, as upstream */
        char *r = cm_job_ranges_format(v.failed_idx, v.completions);
        json_object_set_new(st, "failedIndexes", json_string(r));
        free(r);
    }
    if (interim && !cond(job, interim))
        add_condition(st, interim, reason, msg);
    bool finishing = fin_type && !json_array_size(ns_list) && !json_array_size(nf_list) &&
                     v.terminating == 0 && rc == 0;
    if (finishing) {
        add_condition(st, fin_type, reason, msg);
        if (!strcmp(fin_type, "Complete")) {
            json_object_set(st, "completionTime",
                            json_object_get(json_array_get(json_object_get(st, "conditions"),
                                                           json_array_size(json_object_get(st, "conditions")) - 1),
                                            "lastTransitionTime"));
            if (v.completions >= 0 && st_succ > v.completions)
                cm_event(c->m, job, COMPONENT, "Warning", "TooManySucceededPods",
                         "Too many succeeded pods running after completion count reached");
            cm_event(c->m, job, COMPONENT, "Normal", "Completed", "Job completed");
        } else {
            cm_event(c->m, job, COMPONENT, "Warning", reason, "%s", msg);
        }
    }
    json_object_set_new(st, "active", json_integer(active));
    json_object_set_new(st, "ready", json_integer(v.ready < 0 ? 0 : v.ready));
    json_object_set_new(st, "terminating", json_integer(v.terminating));
    static const char *const omit_zero[] = {"active", "succeeded", "failed"};
    for (size_t k = 0; k < ARRAY_SIZE(omit_zero); k++)
        if (!json_integer_value(json_object_get(st, omit_zero[k])))
            json_object_del(st, omit_zero[k]);

    ck_error *e = NULL;
    if (cm_write_status(c->m, cm_res("batch", "jobs"), job, st, &e) < 0) {
        if (rc == 0 && !*err) {
            *err = e;
            rc = -1;
        } else {
            ck_error_free(e);
        }
    } else {
        if (v.n_new_s || v.n_new_f) {
            pthread_mutex_lock(&c->lock);
            json_object_set_new(c->backoff, key, json_pack("[i, I]", bo.failures, (json_int_t)bo.last_failure_ms));
            pthread_mutex_unlock(&c->lock);
        }
        /* only now that the outcomes are written may the finalizers go */
        size_t n = json_array_size(unfin);
        if (n && (size_t)pods_batch(c, job, unfin, false, unfinalize_one, err) != n)
            rc = -1;
        if (capped)
            ck_workqueue_add(c->q, key);
    }
    json_decref(st);
    json_decref(ns_list);
    json_decref(nf_list);
    json_decref(ns_set);
    json_decref(nf_set);
    json_decref(unfin);
    view_free(&v);
    json_decref(job);
    return rc;
}

int cm_job_init(cm *m)
{
    jc *c = xcalloc(1, sizeof *c);
    c->m = m;
    pthread_mutex_init(&c->lock, NULL);
    c->backoff = json_object();
    ck_informer_handlers jh = {on_job, on_job_update, on_job};
    c->jobs = cm_informer(m, "batch", "jobs", &jh, c);
    ck_informer_handlers ph = {on_pod_add, on_pod_update, on_pod_delete};
    c->pods = cm_informer(m, "", "pods", &ph, c);
    c->q = cm_queue(m, COMPONENT, 4, sync_job, c);
    return 0;
}
