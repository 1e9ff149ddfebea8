/* job.c - the Job controller (with the ttl-after-finished controller folded in).
 *
 * A sync counts the job's pods (controllerRef): active, succeeded, failed, ready.  It finishes the
 * job when it can - Complete once `completions` pods succeeded (every index 0..completions-1 for
 * Indexed jobs; for a job without completions, once one succeeded and none is active), Failed
 * when failures exceed backoffLimit (BackoffLimitExceeded) or activeDeadlineSeconds passed
 * (DeadlineExceeded), deleting what still runs - and otherwise keeps min(parallelism, remaining)
 * pods active (expectations guard bursts, as for ReplicaSets).  Indexed pods carry the
 * batch.kubernetes.io/job-completion-index annotation and label and JOB_COMPLETION_INDEX in
 * every container's env.  Succeeded/failed counts only grow, so deleting finished pods does not
 * undo progress.  A finished job with ttlSecondsAfterFinished is deleted (background) that long
 * after its completion/failure time.  Suspended jobs keep no active pods.
 *
 * spec.podFailurePolicy decides what a Failed pod means, first matching rule wins: onExitCodes
 * (In/NotIn over the non-zero exit codes of its containers, optionally one containerName) or
 * onPodConditions (e.g. DisruptionTarget=True); FailJob fails the job at once (reason
 * PodFailurePolicy), Ignore does not count the failure, Count counts it (the default), FailIndex
 * fails the pod's index.  Indexed jobs with spec.backoffLimitPerIndex retry each index that many
 * times, then mark it in status.failedIndexes and go on with the others; the job fails
 * (FailedIndexes) when every index has succeeded or failed and some failed, or at once when more
 * than maxFailedIndexes have failed (MaxFailedIndexesExceeded).
 *
 * Limits: no backoff delay between retries, no tracking finalizers, no FailureTarget /
 * SuccessCriteriaMet conditions, init containers' exit codes are not matched.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "controllers/cm.h"
#include "lib/log.h"
#include "lib/util.h"

#define COMPONENT "job-controller"
#define INDEX_KEY "batch.kubernetes.io/job-completion-index"
#define MAX_INDEX 100000

typedef struct jc {
    cm *m;
    ck_informer *jobs, *pods;
    ck_workqueue *q;
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

/* "0-2,5,7-8" from a bitmap. Caller frees. */
static char *ranges(const unsigned char *done, long n)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    for (long i = 0; i < n; i++) {
        if (!done[i])
            continue;
        long j = i;
        while (j + 1 < n && done[j + 1])
            j++;
        if (b.len)
            ck_buf_addstr(&b, ",");
        if (j > i)
            ck_buf_printf(&b, "%ld-%ld", i, j);
        else
            ck_buf_printf(&b, "%ld", i);
        i = j;
    }
    return ck_buf_steal(&b);
}

static json_t *pod_for(const json_t *job, long index)
{
    json_t *tmpl = cm_get(job, "spec.template");
    cleanup_free char *gen = index >= 0 ? xasprintf("%s-%ld-", cm_name(job), index)
                                        : xasprintf("%s-", cm_name(job));
    json_t *md = json_pack("{s:s, s:s, s:[o]}", "generateName", gen, "namespace", cm_ns(job),
                           "ownerReferences", cm_owner_ref(job, true));
    json_t *labels = json_deep_copy(cm_get(tmpl, "metadata.labels") ?: json_object());
    json_t *ann = json_deep_copy(cm_get(tmpl, "metadata.annotations") ?: json_object());
    json_t *spec = json_deep_copy(cm_get(tmpl, "spec") ?: json_object());
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

/* ---------------------------------------------------------------- pod failure policy */

static bool exit_codes_match(const json_t *req, const json_t *pod, const char **ctr, long long *code)
{
    const char *want_ctr = cm_str(req, "containerName");
    bool in = !strcmp(cm_str(req, "operator") ?: "In", "In");
    size_t i, j;
    json_t *cs, *v;
    json_array_foreach(cm_get(pod, "status.containerStatuses"), i, cs) {
        if (want_ctr && *want_ctr && strcmp(cm_str(cs, "name") ?: "", want_ctr))
            continue;
        json_t *ec = cm_get(cs, "state.terminated.exitCode");
        if (!json_is_integer(ec) || json_integer_value(ec) == 0)   /* 0 never matches */
            continue;
        bool listed = false;
        json_array_foreach(json_object_get(req, "values"), j, v)
            listed |= json_integer_value(v) == json_integer_value(ec);
        if (listed == in) {
            *ctr = cm_str(cs, "name") ?: "";
            *code = json_integer_value(ec);
            return true;
        }
    }
    return false;
}

static const char *condition_match(const json_t *patterns, const json_t *pod)
{
    size_t i;
    json_t *pat;
    json_array_foreach(patterns, i, pat) {
        json_t *c = cm_pod_condition(pod, cm_str(pat, "type") ?: "");
        if (c && !strcmp(cm_str(c, "status") ?: "", cm_str(pat, "status") ?: "True"))
            return cm_str(pat, "type");
    }
    return NULL;
}

int cm_job_failure_rule(const json_t *job, const json_t *pod, const char **action, char *msg, size_t msglen)
{
    size_t i;
    json_t *rule;
    json_array_foreach(cm_get(job, "spec.podFailurePolicy.rules"), i, rule) {
        const char *ctr = NULL, *cond = NULL;
        long long code = 0;
        json_t *ec = json_object_get(rule, "onExitCodes");
        json_t *pc = json_object_get(rule, "onPodConditions");
        if (ec ? !exit_codes_match(ec, pod, &ctr, &code) : !(cond = condition_match(pc, pod)))
            continue;
        *action = cm_str(rule, "action") ?: "Count";
        if (ctr)
            snprintf(msg, msglen, "Container %s for pod %s/%s failed with exit code %lld matching %s rule at index %zu",
                     ctr, cm_ns(pod) ?: "", cm_name(pod), code, *action, i);
        else
            snprintf(msg, msglen, "Pod %s/%s has condition %s matching %s rule at index %zu",
                     cm_ns(pod) ?: "", cm_name(pod), cond, *action, i);
        return (int)i;
    }
    *action = "Count";
    if (msglen)
        msg[0] = 0;
    return -1;
}

typedef struct mk {
    jc *c;
    const json_t *job;
    const char *ek;
    long *indexes;    /* NULL for NonIndexed */
    ck_error *err;
    pthread_mutex_t lock;
} mk;

static int make_one(void *arg, int i)
{
    mk *k = arg;
    json_t *pod = pod_for(k->job, k->indexes ? k->indexes[i] : -1);
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
    pthread_mutex_lock(&k->lock);
    if (!k->err)
        k->err = e;
    else
        ck_error_free(e);
    pthread_mutex_unlock(&k->lock);
    return -1;
}

static int delete_all(jc *c, json_t *pods, ck_error **err)
{
    size_t i;
    json_t *p;
    int rc = 0;
    json_array_foreach(pods, i, p)
        if (cm_delete(c->m, cm_res("", "pods"), cm_ns(p), cm_name(p), cm_uid(p), "Background", err) < 0) {
            rc = -1;
            break;
        }
    return rc;
}

static void add_condition(json_t *st, const char *type, const char *reason, const char *msg)
{
    char now[32];
    cm_now_str(now);
    if (!json_object_get(st, "conditions"))
        json_object_set_new(st, "conditions", json_array());
    json_array_append_new(json_object_get(st, "conditions"),
                          json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", type, "status", "True",
                                    "lastProbeTime", now, "lastTransitionTime", now, "reason",
                                    reason, "message", msg));
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
        return 0;
    }
    int rc = 0;
    int64_t now = cm_now();
    json_t *done_cond = cond(job, "Complete") ?: cond(job, "Failed");
    if (done_cond) {   /* finished: only the TTL is left to honour */
        json_t *ttl = cm_get(job, "spec.ttlSecondsAfterFinished");
        if (json_is_integer(ttl) && !cm_deleting(job)) {
            int64_t fin = cm_time(done_cond, "lastTransitionTime");
            int64_t at = fin + json_integer_value(ttl);
            if (at <= now)
                rc = cm_delete(c->m, cm_res("batch", "jobs"), ns, name, cm_uid(job), "Background", err);
            else
                ck_workqueue_add_after(c->q, key, (at - now) * 1000 + 100);
        }
        json_decref(job);
        return rc;
    }

    bool indexed = !strcmp(cm_str(job, "spec.completionMode") ?: "NonIndexed", "Indexed");
    json_t *jc_ = cm_get(job, "spec.completions");
    long completions = json_is_integer(jc_) ? (long)json_integer_value(jc_) : -1;
    long parallelism = (long)cm_int(job, "spec.parallelism", 1);
    long backoff = (long)cm_int(job, "spec.backoffLimit", 6);
    bool suspend = cm_bool(job, "spec.suspend", false);
    if (completions > MAX_INDEX)
        completions = MAX_INDEX;

    json_t *all = ck_informer_list(c->pods), *active = json_array();
    long succeeded = 0, failed = 0, ready = 0;
    unsigned char *done = indexed && completions > 0 ? xcalloc((size_t)completions, 1) : NULL;
    unsigned char *running = indexed && completions > 0 ? xcalloc((size_t)completions, 1) : NULL;
    /* backoffLimitPerIndex: failures per index, and the indexes given up on */
    json_t *bpi = cm_get(job, "spec.backoffLimitPerIndex");
    bool per_index = indexed && completions > 0 && json_is_integer(bpi);
    long *idx_failures = per_index ? xcalloc((size_t)completions, sizeof *idx_failures) : NULL;
    unsigned char *idx_failed = per_index ? xcalloc((size_t)completions, 1) : NULL;
    char fail_msg[512] = "";
    size_t i;
    json_t *pod;
    json_array_foreach(all, i, pod) {
        json_t *ref = cm_controller_ref(pod);
        if (!ref || strcmp(json_string_value(json_object_get(ref, "uid")) ?: "", cm_uid(job)))
            continue;
        const char *phase = cm_str(pod, "status.phase") ?: "";
        long idx = pod_index(pod);
        if (!strcmp(phase, "Succeeded")) {
            succeeded++;
            if (done && idx >= 0 && idx < completions)
                done[idx] = 1;
        } else if (!strcmp(phase, "Failed")) {
            const char *action;
            char msg[512];
            cm_job_failure_rule(job, pod, &action, msg, sizeof msg);
            if (!strcmp(action, "Ignore"))
                continue;
            failed++;
            if (!strcmp(action, "FailJob") && !fail_msg[0])
                snprintf(fail_msg, sizeof fail_msg, "%s", msg);
            if (idx_failures && idx >= 0 && idx < completions) {
                idx_failures[idx]++;
                if (!strcmp(action, "FailIndex"))
                    idx_failed[idx] = 1;
            }
        } else if (!cm_deleting(pod)) {
            json_array_append(active, pod);
            ready += cm_pod_ready(pod);
            if (running && idx >= 0 && idx < completions)
                running[idx] = 1;
        }
    }
    json_decref(all);
    long done_count = succeeded;
    if (done) {
        done_count = 0;
        for (long k = 0; k < completions; k++)
            done_count += done[k];
    }
    /* counts never go back (finished pods may have been deleted) */
    long prev_s = (long)cm_int(job, "status.succeeded", 0), prev_f = (long)cm_int(job, "status.failed", 0);
    if (!indexed && succeeded < prev_s)
        succeeded = prev_s;
    if (failed < prev_f)
        failed = prev_f;
    if (!indexed)
        done_count = succeeded;
    long failed_indexes = 0;
    if (per_index)
        for (long k = 0; k < completions; k++) {
            if (done[k])
                idx_failed[k] = 0;
            else if (idx_failures[k] > json_integer_value(bpi))
                idx_failed[k] = 1;
            failed_indexes += idx_failed[k];
        }
    json_t *max_fi = cm_get(job, "spec.maxFailedIndexes");

    json_t *st = json_deep_copy(cm_get(job, "status") ?: json_object());
    if (!suspend && !json_object_get(st, "startTime")) {
        char ts[32];
        cm_now_str(ts);
        json_object_set_new(st, "startTime", json_string(ts));
    }
    int64_t start = cm_time(st, "startTime");
    json_t *deadline = cm_get(job, "spec.activeDeadlineSeconds");
    bool finished = false;
    if (fail_msg[0]) {
        rc = delete_all(c, active, err);
        add_condition(st, "Failed", "PodFailurePolicy", fail_msg);
        cm_event(c->m, job, COMPONENT, "Warning", "PodFailurePolicy", "%s", fail_msg);
        finished = true;
    } else if (per_index && json_is_integer(max_fi) && failed_indexes > json_integer_value(max_fi)) {
        rc = delete_all(c, active, err);
        add_condition(st, "Failed", "MaxFailedIndexesExceeded",
                      "Job has exceeded the specified maximal number of failed indexes");
        cm_event(c->m, job, COMPONENT, "Warning", "MaxFailedIndexesExceeded",
                 "Job has exceeded the specified maximal number of failed indexes");
        finished = true;
    } else if (per_index && done_count + failed_indexes >= completions && failed_indexes &&
               json_array_size(active) == 0) {
        add_condition(st, "Failed", "FailedIndexes", "Job has failed indexes");
        cm_event(c->m, job, COMPONENT, "Warning", "FailedIndexes", "Job has failed indexes");
        finished = true;
    } else if (!per_index && failed > backoff) {
        rc = delete_all(c, active, err);
        add_condition(st, "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit");
        cm_event(c->m, job, COMPONENT, "Warning", "BackoffLimitExceeded",
                 "Job has reached the specified backoff limit");
        finished = true;
    } else if (json_is_integer(deadline) && start && !suspend &&
               now - start >= json_integer_value(deadline)) {
        rc = delete_all(c, active, err);
        add_condition(st, "Failed", "DeadlineExceeded", "Job was active longer than specified deadline");
        cm_event(c->m, job, COMPONENT, "Warning", "DeadlineExceeded",
                 "Job was active longer than specified deadline");
        finished = true;
    } else if ((completions >= 0 && done_count >= completions) ||
               (completions < 0 && succeeded > 0 && json_array_size(active) == 0)) {
        char ts[32];
        cm_now_str(ts);
        json_object_set_new(st, "completionTime", json_string(ts));
        add_condition(st, "Complete", "CompletionsReached", "Reached expected number of succeeded pods");
        cm_event(c->m, job, COMPONENT, "Normal", "Completed", "Job completed");
        finished = true;
    } else if (cm_expectations_met(c->m, ek)) {
        long want = suspend ? 0 : parallelism;
        if (!suspend && completions >= 0 && completions - done_count - failed_indexes < want)
            want = completions - done_count - failed_indexes;
        if (!suspend && completions < 0 && succeeded > 0)
            want = (long)json_array_size(active) < want ? (long)json_array_size(active) : want;
        long have = (long)json_array_size(active);
        if (have < want) {
            long n = want - have;
            long *indexes = NULL;
            if (indexed && completions > 0) {
                indexes = xcalloc((size_t)n, sizeof *indexes);
                long m = 0;
                for (long k = 0; k < completions && m < n; k++)
                    if (!done[k] && !running[k] && !(idx_failed && idx_failed[k]))
                        indexes[m++] = k;
                n = m;
            }
            if (n > 0) {
                cm_expect(c->m, ek, (int)n, NULL);
                mk k = {.c = c, .job = job, .ek = ek, .indexes = indexes};
                pthread_mutex_init(&k.lock, NULL);
                if (cm_parallel((int)n, 16, make_one, &k)) {
                    *err = k.err;
                    k.err = NULL;
                    rc = -1;
                }
                pthread_mutex_destroy(&k.lock);
            }
            free(indexes);
        } else if (have > want) {
            json_t *extra = json_array();
            for (long k = want; k < have; k++)
                json_array_append(extra, json_array_get(active, (size_t)k));
            rc = delete_all(c, extra, err);
            json_decref(extra);
        }
        if (json_is_integer(deadline) && start && !suspend) {
            int64_t left = start + json_integer_value(deadline) - now;
            ck_workqueue_add_after(c->q, key, (left > 0 ? left : 0) * 1000 + 100);
        }
    }
    json_object_set_new(st, "active", json_integer(finished ? 0 : (json_int_t)json_array_size(active)));
    json_object_set_new(st, "succeeded", json_integer(succeeded));
    json_object_set_new(st, "failed", json_integer(failed));
    json_object_set_new(st, "ready", json_integer(finished ? 0 : ready));
    if (!json_integer_value(json_object_get(st, "succeeded")))
        json_object_del(st, "succeeded");
    if (!json_integer_value(json_object_get(st, "failed")))
        json_object_del(st, "failed");
    if (!json_integer_value(json_object_get(st, "active")))
        json_object_del(st, "active");
    if (done) {
        char *r = ranges(done, completions);
        if (*r)
            json_object_set_new(st, "completedIndexes", json_string(r));
        free(r);
    }
    if (per_index) {   /* present (maybe empty) whenever backoffLimitPerIndex is set, as upstream */
        char *r = ranges(idx_failed, completions);
        json_object_set_new(st, "failedIndexes", json_string(r));
        free(r);
    }
    if (!json_equal(st, cm_get(job, "status"))) {
        json_t *copy = json_deep_copy(job);
        json_object_set(copy, "status", st);
        ck_error *e = NULL;
        json_t *out = ck_client_update_status(cm_client(c->m), cm_res("batch", "jobs"), ns, copy, &e);
        json_decref(copy);
        if (!out) {
            if (rc == 0) {
                *err = e;
                rc = -1;
            } else {
                ck_error_free(e);
            }
        }
        json_decref(out);
    }
    json_decref(st);
    free(done);
    free(running);
    free(idx_failures);
    free(idx_failed);
    json_decref(active);
    json_decref(job);
    return rc;
}

int cm_job_init(cm *m)
{
    jc *c = xcalloc(1, sizeof *c);
    c->m = m;
    ck_informer_handlers jh = {on_job, on_job_update, NULL};
    c->jobs = cm_informer(m, "batch", "jobs", &jh, c);
    ck_informer_handlers ph = {on_pod_add, on_pod_update, on_pod_delete};
    c->pods = cm_informer(m, "", "pods", &ph, c);
    c->q = cm_queue(m, COMPONENT, 4, sync_job, c);
    return 0;
}
