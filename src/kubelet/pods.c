/* pods.c - the pod workers and the sync loop.
 *
 * An informer watches the pods bound to this node (fieldSelector spec.nodeName); every change
 * and a 1 s resync put the pod's "ns/name" key on a work queue; a few workers run sync_pod, which
 * is level-triggered: it compares the pod's spec with what runs (records below) and takes the
 * next step -- admission (first sight), sandbox, volumes, the next init container, start or
 * restart containers (with CrashLoopBackOff), probes -- then writes the status if it changed.
 * Nothing in sync_pod waits for a container: a pod being deleted is handed to a terminator
 * thread of its own (preStop, SIGTERM, grace period, SIGKILL, teardown, API delete), so deletes
 * run side by side and never hold the workers that start pods.
 *
 * Each pod has a record (by uid) persisted as ROOT/pods/<uid>/state.json, so a restarted kubelet
 * adopts its running containers (their shims kept running and logging) instead of restarting
 * them, and removes what belongs to pods that are gone.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/informer.h"
#include "client/workqueue.h"
#include "kubelet/pods.h"
#include "lib/log.h"
#include "lib/util.h"

/* Pod workers: two per core (a pod start waits on CNI and runc about as long as it computes),
 * at least 4 so a slow pod (a pull, a preStop hook) does not hold up the rest, at most 16.
 * More only share the same cores and stretch every start: bench/kubelet_floor.sh started 100
 * pods no faster with 8 threads than with 2 or 4 on this 2-core machine. */
#define WORKERS_MIN 4
#define WORKERS_MAX 16
#define RESYNC_MS 1000
#define BACKOFF_START_MS 10000
#define BACKOFF_MAX_MS 300000

struct ck_pods {
    ck_kubelet *k;
    ck_informer *inf;
    ck_workqueue *q;
    pthread_t workers[WORKERS_MAX], resync;
    int nworkers;
    pthread_mutex_t mu;
    pod_rec **recs;
    size_t nrecs;
    int nterminators;       /* terminator threads running (under mu) */
    ck_node_alloc alloc;
    pthread_cond_t terminators_done;
};

static const ck_resource *pods_res(void)
{
    return ck_resource_find("", "v1", "pods");
}

/* ---------------- records ---------------- */

/* By key and/or uid; by key alone a live record wins over one being torn down. */
static pod_rec *rec_find(ck_pods *p, const char *key, const char *uid)
{
    pod_rec *dying = NULL;
    for (size_t i = 0; i < p->nrecs; i++)
        if ((!key || !strcmp(p->recs[i]->key, key)) && (!uid || !strcmp(p->recs[i]->uid, uid))) {
            if (!p->recs[i]->terminating || uid)
                return p->recs[i];
            dying = dying ? dying : p->recs[i];
        }
    return dying;
}

static void rec_free(pod_rec *r)
{
    for (size_t i = 0; i < r->nctrs; i++)
        ck_ctr_free(&r->ctrs[i]);
    free(r->ctrs);
    free(r->key);
    free(r->ns);
    free(r->name);
    free(r->uid);
    free(r->dir);
    free(r->netns);
    free(r->ip);
    free(r->cgroup);
    free(r->last_status);
    free(r->start_time);
    free(r->refuse_reason);
    free(r->refuse_msg);
    json_decref(r->spec);
    free(r);
}

static void rec_remove(ck_pods *p, pod_rec *r)
{
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->nrecs; i++)
        if (p->recs[i] == r) {
            p->recs[i] = p->recs[--p->nrecs];
            break;
        }
    pthread_mutex_unlock(&p->mu);
    rec_free(r);
}

ctr_state *ck_rec_ctr(pod_rec *r, const char *name, bool init)
{
    for (size_t i = 0; i < r->nctrs; i++)
        if (!strcmp(r->ctrs[i].name, name) && r->ctrs[i].init == init)
            return &r->ctrs[i];
    r->ctrs = xrealloc(r->ctrs, (r->nctrs + 1) * sizeof *r->ctrs);
    ctr_state *c = &r->ctrs[r->nctrs++];
    memset(c, 0, sizeof *c);
    c->name = xstrdup(name);
    c->init = init;
    c->attempt = -1;
    return c;
}

void ck_ctr_free(ctr_state *c)
{
    free(c->name);
    free(c->id);
    free(c->image);
    free(c->image_id);
    free(c->wait_reason);
    free(c->wait_msg);
    free(c->term_reason);
    free(c->last.reason);
    free(c->last.id);
}

static json_t *ctr_to_json(const ctr_state *c)
{
    return json_pack("{s:s, s:b, s:i, s:s?, s:i, s:I, s:s?, s:s?, s:b, s:i, s:I, s:I, s:I, s:i, s:s?, s:s?, s:I, s:I, s:I}",
                     "name", c->name, "init", c->init, "attempt", c->attempt, "id", c->id, "pid",
                     (int)c->pid, "started", (json_int_t)c->started_ns, "image", c->image,
                     "imageID", c->image_id, "exited", c->exited, "exitCode", c->exit_code,
                     "finished", (json_int_t)c->finished_ns, "backoffUntil",
                     (json_int_t)c->backoff_until, "backoffMs", (json_int_t)c->backoff_ms,
                     "lastExit", c->last.exit_code, "lastReason", c->last.reason, "lastID",
                     c->last.id, "lastStarted", (json_int_t)c->last.started_ns, "lastFinished",
                     (json_int_t)c->last.finished_ns, "restarts", (json_int_t)c->restarts);
}

void ck_rec_save(pod_rec *r)
{
    json_t *ctrs = json_array();
    for (size_t i = 0; i < r->nctrs; i++)
        json_array_append_new(ctrs, ctr_to_json(&r->ctrs[i]));
    json_t *j = json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s?, s:o}", "namespace", r->ns, "name",
                          r->name, "uid", r->uid, "netns", r->netns, "ip", r->ip, "startTime",
                          r->start_time, "containers", ctrs);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    cleanup_free char *path = xasprintf("%s/state.json", r->dir);
    ck_write_file_nosync(path, s, strlen(s), 0600);
    free(s);
}

static char *jdup(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? xstrdup(s) : NULL;
}

static pod_rec *rec_load(ck_pods *p, const char *dir)
{
    cleanup_free char *path = xasprintf("%s/state.json", dir);
    cleanup_free char *data = NULL;
    size_t len;
    if (ck_read_file(path, 1 << 20, &data, &len) < 0)
        return NULL;
    json_t *j = json_loadb(data, len, 0, NULL);
    if (!j)
        return NULL;
    pod_rec *r = xcalloc(1, sizeof *r);
    r->ns = jdup(j, "namespace");
    r->name = jdup(j, "name");
    r->uid = jdup(j, "uid");
    if (!r->ns || !r->name || !r->uid) {
        json_decref(j);
        rec_free(r);
        return NULL;
    }
    r->key = xasprintf("%s/%s", r->ns, r->name);
    r->dir = xstrdup(dir);
    r->netns = jdup(j, "netns");
    r->ip = jdup(j, "ip");
    r->start_time = jdup(j, "startTime");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(j, "containers"), i, c) {
        ctr_state *s = ck_rec_ctr(r, json_string_value(json_object_get(c, "name")),
                                  json_is_true(json_object_get(c, "init")));
        s->attempt = (int)json_integer_value(json_object_get(c, "attempt"));
        s->id = jdup(c, "id");
        s->pid = (pid_t)json_integer_value(json_object_get(c, "pid"));
        s->started_ns = json_integer_value(json_object_get(c, "started"));
        s->image = jdup(c, "image");
        s->image_id = jdup(c, "imageID");
        s->exited = json_is_true(json_object_get(c, "exited"));
        s->exit_code = (int)json_integer_value(json_object_get(c, "exitCode"));
        s->finished_ns = json_integer_value(json_object_get(c, "finished"));
        s->backoff_until = json_integer_value(json_object_get(c, "backoffUntil"));
        s->backoff_ms = json_integer_value(json_object_get(c, "backoffMs"));
        s->last.exit_code = (int)json_integer_value(json_object_get(c, "lastExit"));
        s->last.reason = jdup(c, "lastReason");
        s->last.id = jdup(c, "lastID");
        s->last.started_ns = json_integer_value(json_object_get(c, "lastStarted"));
        s->last.finished_ns = json_integer_value(json_object_get(c, "lastFinished"));
        s->restarts = (int)json_integer_value(json_object_get(c, "restarts"));
    }
    json_decref(j);
    (void)p;
    return r;
}

/* ---------------- sync ---------------- */

/* Containers the record does not know (a kubelet killed between starting one and saving its
 * state): every runtime container whose id starts with the pod uid. */
static void remove_unknown_containers(ck_kubelet *k, pod_rec *r)
{
    DIR *d = opendir(k->rt.root);
    if (!d)
        return;
    size_t ul = strlen(r->uid);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, r->uid, ul) || e->d_name[ul] != '-')
            continue;
        ck_runtime_kill(&k->rt, e->d_name, SIGKILL, NULL);
        ck_runtime_delete(&k->rt, e->d_name, NULL);
    }
    closedir(d);
}

/* Unmount whatever is still mounted under dir (deepest first). */
static void umount_under(const char *dir)
{
    FILE *f = fopen("/proc/self/mounts", "re");
    if (!f)
        return;
    size_t dl = strlen(dir);
    char line[4096];
    char **list = NULL;
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        char *sp = strchr(line, ' ');
        char *mp = sp ? sp + 1 : NULL;
        char *end = mp ? strchr(mp, ' ') : NULL;
        if (!end)
            continue;
        *end = '\0';
        if (!strncmp(mp, dir, dl) && mp[dl] == '/') {
            list = xrealloc(list, (n + 1) * sizeof *list);
            list[n++] = xstrdup(mp);
        }
    }
    fclose(f);
    while (n-- > 0) {
        umount2(list[n], MNT_DETACH);
        free(list[n]);
    }
    free(list);
}

static void cleanup_pod(ck_pods *p, pod_rec *r)
{
    ck_kubelet *k = p->k;
    for (size_t i = 0; i < r->nctrs; i++)
        ck_ctr_remove(k, r, &r->ctrs[i]);
    remove_unknown_containers(k, r);
    ck_volumes_teardown(k, r);
    ck_error *err = NULL;
    if (r->netns && ck_sandbox_destroy(&k->sb, r->uid, &err) < 0) {
        log_warn("pod %s: sandbox teardown: %s", r->key, err->msg);
        ck_error_free(err);
    } else if (!r->netns) {
        ck_sandbox_destroy(&k->sb, r->uid, NULL);
    }
    /* killed processes leave their cgroups a moment after the signal: retry for up to 2 s
     * (this is the pod's own terminator thread, no worker waits on it); processes that outlived
     * their containers (runc delete failed) are then killed, and 2 s more given */
    int busy = 0;
    for (int i = 0; i < 80 && (busy = ck_cgroup_remove_pod(r->uid)) > 0; i++) {
        if (i == 39) {
            int n = ck_cgroup_kill_pod(r->uid);
            log_warn("pod %s: %d cgroup(s) still busy after 2 s, killed %d process(es) left in them",
                     r->key, busy, n);
        }
        usleep(50 * 1000);
    }
    if (busy > 0)
        log_warn("pod %s: %d cgroup(s) could not be removed", r->key, busy);
    umount_under(r->dir);
    ck_rm_tree(r->dir);
    cleanup_free char *logs = ck_pod_log_dir(k, r);
    ck_rm_tree(logs);
    log_info("pod %s (%s): cleaned up", r->key, r->uid);
}

/* Finish a graceful delete: containers stopped, everything torn down, the API object removed. */
static int finish_delete(ck_pods *p, pod_rec *r, ck_error **err)
{
    cleanup_pod(p, r);
    json_t *opts = json_pack("{s:s, s:s, s:i, s:{s:s}}", "kind", "DeleteOptions", "apiVersion",
                             "v1", "gracePeriodSeconds", 0, "preconditions", "uid", r->uid);
    int rc = ck_client_delete(p->k->client, pods_res(), r->ns, r->name, opts, err);
    json_decref(opts);
    if (rc < 0 && ((*err)->code == CK_E_NOT_FOUND || (*err)->code == CK_E_CONFLICT)) {
        ck_error_free(*err);
        *err = NULL;
        rc = 0;
    }
    return rc;
}

void ck_pod_event(ck_kubelet *k, pod_rec *r, const char *type, const char *reason,
                  const char *msg)
{
    char now[32];
    int64_t wall = ck_wall_ns();
    ck_rfc3339(wall / 1000000000, now);
    cleanup_free char *name = xasprintf("%s.%llx", r->name, (unsigned long long)wall);
    ck_event_about about = {.api_version = "v1", .kind = "Pod", .ns = r->ns, .name = r->name,
                            .uid = r->uid};
    json_t *ev = ck_event_new(name, r->ns, &about, "kubelet", k->node_name, k->node_name, type,
                              reason, msg, now);
    ck_error *err = NULL;
    json_t *out = ck_client_create(k->client, ck_resource_find("", "v1", "events"), r->ns, ev, &err);
    if (!out) {
        log_warn("pod %s: event %s: %s", r->key, reason, err->msg);
        ck_error_free(err);
    }
    json_decref(out);
    json_decref(ev);
}

static int write_status(ck_pods *p, pod_rec *r, json_t *pod, json_t *status, ck_error **err)
{
    char *s = json_dumps(status, JSON_COMPACT | JSON_SORT_KEYS);
    if (r->last_status && !strcmp(r->last_status, s)) {
        free(s);
        json_decref(status);
        return 0;
    }
    json_t *copy = json_deep_copy(pod);
    json_object_set_new(copy, "status", status);
    json_t *out = ck_client_update_status(p->k->client, pods_res(), r->ns, copy, err);
    if (!out && (*err)->code == CK_E_CONFLICT) {
        /* our cached copy is stale: take the current one and try once more */
        ck_error_free(*err);
        *err = NULL;
        json_t *cur = ck_client_get(p->k->client, pods_res(), r->ns, r->name, err);
        if (cur) {
            json_object_set(cur, "status", json_object_get(copy, "status"));
            out = ck_client_update_status(p->k->client, pods_res(), r->ns, cur, err);
            json_decref(cur);
        }
    }
    json_decref(copy);
    if (!out) {
        free(s);
        if ((*err)->code == CK_E_NOT_FOUND) {
            ck_error_free(*err);
            *err = NULL;
            return 0;
        }
        return -1;
    }
    json_decref(out);
    free(r->last_status);
    r->last_status = s;
    return 0;
}

/* ---------------- termination ----------------
 *
 * A pod being deleted gets a thread of its own (upstream's pod worker per pod): preStop hooks,
 * SIGTERM, the grace period, SIGKILL, the teardown and the final API delete run there, so a
 * hundred pods terminate side by side and the shared workers keep starting pods meanwhile.  The
 * record is the thread's (r->terminating) until it removes it; sync_pod leaves it alone. */

typedef struct terminator {
    ck_pods *p;
    pod_rec *r;
    json_t *pod;            /* NULL: the API object is gone (grace 0, no status, no delete) */
    int64_t grace_s;
} terminator;

static void *terminator_main(void *arg)
{
    terminator *t = arg;
    ck_pods *p = t->p;
    pod_rec *r = t->r;
    ck_error *err = NULL;
    if (t->pod) {
        /* Ready turns False at once (the status shows the pod terminating) */
        json_t *st = ck_pod_status(p->k, r, t->pod);
        if (write_status(p, r, t->pod, st, &err) < 0) {
            ck_error_free(err);
            err = NULL;
        }
    }
    log_info("pod %s (%s): terminating, grace period %lld s", r->key, r->uid, (long long)t->grace_s);
    bool done = ck_pod_kill(p->k, r, t->pod, t->grace_s);
    if (done)
        log_info("pod %s (%s): containers stopped", r->key, r->uid);
    bool removed = false;
    if (done && t->pod) {
        if (finish_delete(p, r, &err) < 0) {
            /* the API refused the delete: a worker takes the key again (a fresh record,
             * nothing left to stop, the delete retried) */
            log_warn("pod %s: delete: %s", r->key, err->msg);
            ck_error_free(err);
            ck_workqueue_add_after(p->q, r->key, 1000);
        }
        rec_remove(p, r);
        removed = true;
    } else if (done) {
        cleanup_pod(p, r);
        rec_remove(p, r);
        removed = true;
    }
    pthread_mutex_lock(&p->mu);
    if (!removed)
        r->terminating = false;   /* the kubelet is stopping: a restart takes it up again */
    p->nterminators--;
    pthread_cond_broadcast(&p->terminators_done);
    pthread_mutex_unlock(&p->mu);
    json_decref(t->pod);
    free(t);
    return NULL;
}

/* Hands r to a terminator thread (pod NULL: the object is gone, kill at once). */
static void terminate(ck_pods *p, pod_rec *r, json_t *pod)
{
    int64_t grace = 0;
    if (pod) {
        json_t *g = json_object_get(json_object_get(pod, "metadata"), "deletionGracePeriodSeconds");
        if (!json_is_integer(g))
            g = json_object_get(json_object_get(pod, "spec"), "terminationGracePeriodSeconds");
        grace = json_is_integer(g) ? json_integer_value(g) : 30;
        if (grace < 0)
            grace = 0;
    }
    terminator *t = xcalloc(1, sizeof *t);
    *t = (terminator){.p = p, .r = r, .pod = pod ? json_incref(pod) : NULL, .grace_s = grace};
    r->term_started = true;
    pthread_mutex_lock(&p->mu);
    r->terminating = true;
    p->nterminators++;
    pthread_mutex_unlock(&p->mu);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t th;
    if (pthread_create(&th, &attr, terminator_main, t) != 0)
        terminator_main(t);   /* no thread to be had: do it in this worker */
    pthread_attr_destroy(&attr);
}

/* ---------------- admission ---------------- */

/* What admission needs of a spec (each container's ports and resources), copied small so a
 * record does not pin a whole pod object the informer has since replaced. */
static json_t *admission_spec(const json_t *spec)
{
    static const char *const lists[] = {"initContainers", "containers"};
    json_t *out = json_object();
    for (size_t l = 0; l < 2; l++) {
        json_t *arr = json_array();
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(spec, lists[l]), i, c) {
            json_t *o = json_object();
            json_t *v;
            if ((v = json_object_get(c, "ports")))
                json_object_set_new(o, "ports", json_deep_copy(v));
            if ((v = json_object_get(c, "resources")))
                json_object_set_new(o, "resources", json_deep_copy(v));
            json_array_append_new(arr, o);
        }
        json_object_set_new(out, lists[l], arr);
    }
    return out;
}

/* Admit r (first sight of its pod) against the pods admitted and still active, atomically
 * under the records lock so two workers cannot both take the last port or cpu.  A pod that is
 * already Succeeded/Failed in the API (a kubelet restart that lost its record) is not run. */
static void admit(ck_pods *p, pod_rec *r, json_t *pod)
{
    json_t *spec = json_object_get(pod, "spec");
    const char *phase = json_string_value(json_object_get(json_object_get(pod, "status"), "phase"));
    pthread_mutex_lock(&p->mu);
    if (!r->admitted && phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed"))) {
        r->refused = true;
        pthread_mutex_unlock(&p->mu);
        return;
    }
    if (r->admitted) {
        if (!r->spec)
            r->spec = admission_spec(spec);   /* adopted */
        pthread_mutex_unlock(&p->mu);
        return;
    }
    json_t *others = json_array();
    for (size_t i = 0; i < p->nrecs; i++) {
        pod_rec *o = p->recs[i];
        if (o != r && o->admitted && o->spec && !o->refused && !o->terminating && !o->finished)
            json_array_append(others, o->spec);
    }
    char *reason = NULL, *msg = NULL;
    if (ck_kubelet_admit(spec, others, &p->alloc, &reason, &msg) == 0) {
        r->admitted = true;
        r->spec = admission_spec(spec);
    } else {
        r->refused = true;
        r->refuse_reason = reason;
        r->refuse_msg = msg;
    }
    pthread_mutex_unlock(&p->mu);
    json_decref(others);
    if (r->refused && r->refuse_reason) {
        log_info("pod %s rejected: %s: %s", r->key, r->refuse_reason, r->refuse_msg);
        ck_pod_event(p->k, r, "Warning", r->refuse_reason, r->refuse_msg);
    }
}

/* The status of a rejected pod, as upstream's rejectPod sets it. */
static json_t *refused_status(pod_rec *r, json_t *pod)
{
    cleanup_free char *m = xasprintf("Pod was rejected: %s", r->refuse_msg);
    return json_pack("{s:s, s:s, s:s, s:s}", "phase", "Failed", "reason", r->refuse_reason,
                     "message", m, "qosClass", ck_pod_qos(json_object_get(pod, "spec")));
}

static int sync_pod(ck_pods *p, const char *key, ck_error **err)
{
    ck_kubelet *k = p->k;
    char *slash = strchr(key, '/');
    if (!slash)
        return 0;
    cleanup_free char *ns = xstrndup(key, (size_t)(slash - key));
    json_t *pod = ck_informer_get(p->inf, ns, slash + 1);
    const char *uid = pod ? json_string_value(json_object_get(json_object_get(pod, "metadata"), "uid")) : NULL;
    const char *node = pod ? json_string_value(json_object_get(json_object_get(pod, "spec"), "nodeName")) : NULL;
    if (pod && (!node || strcmp(node, k->node_name))) {
        json_decref(pod);
        pod = NULL;
        uid = NULL;
    }
    /* records of this key that are not this pod (deleted, or recreated under the same name):
     * killed at once, each by its own terminator */
    for (;;) {
        pthread_mutex_lock(&p->mu);
        pod_rec *stale = NULL;
        for (size_t i = 0; i < p->nrecs && !stale; i++)
            if (!strcmp(p->recs[i]->key, key) && (!uid || strcmp(p->recs[i]->uid, uid)) &&
                !p->recs[i]->terminating)
                stale = p->recs[i];
        pthread_mutex_unlock(&p->mu);
        if (!stale)
            break;
        terminate(p, stale, NULL);
    }
    if (!pod)
        return 0;
    pthread_mutex_lock(&p->mu);
    pod_rec *r = rec_find(p, key, uid);
    if (r && r->terminating) {
        pthread_mutex_unlock(&p->mu);
        json_decref(pod);
        return 0;   /* its terminator has it */
    }
    if (!r) {
        r = xcalloc(1, sizeof *r);
        r->key = xstrdup(key);
        r->ns = xstrdup(ns);
        r->name = xstrdup(slash + 1);
        r->uid = xstrdup(uid);
        r->dir = xasprintf("%s/pods/%s", k->root, uid);
        p->recs = xrealloc(p->recs, (p->nrecs + 1) * sizeof *p->recs);
        p->recs[p->nrecs++] = r;
    }
    pthread_mutex_unlock(&p->mu);
    r->created_ns = r->created_ns ? r->created_ns : ck_now_ns();

    int rc = 0;
    json_t *md = json_object_get(pod, "metadata");
    ck_ctrs_refresh(k, r);
    if (json_object_get(md, "deletionTimestamp")) {
        terminate(p, r, pod);
        json_decref(pod);
        return 0;
    }
    if (!r->admitted && !r->refused)
        admit(p, r, pod);
    else if (r->admitted && !r->spec)
        admit(p, r, pod);
    if (r->refused) {
        if (r->refuse_reason)
            rc = write_status(p, r, pod, refused_status(r, pod), err);
        json_decref(pod);
        return rc;
    }
    /* state.json is saved where it changes (sandbox made, container started), not per sync */
    int64_t next_ms = ck_pod_advance(k, r, pod);
    json_t *st = ck_pod_status(k, r, pod);
    const char *phase = json_string_value(json_object_get(st, "phase"));
    bool finished = phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed"));
    if (finished != r->finished) {
        pthread_mutex_lock(&p->mu);
        r->finished = finished;
        pthread_mutex_unlock(&p->mu);
    }
    rc = write_status(p, r, pod, st, err);
    if (next_ms > 0)
        ck_workqueue_add_after(p->q, key, next_ms);
    json_decref(pod);
    return rc;
}

static void *worker(void *arg)
{
    ck_pods *p = arg;
    char *key;
    while ((key = ck_workqueue_get(p->q))) {
        ck_error *err = NULL;
        if (sync_pod(p, key, &err) == 0) {
            ck_workqueue_forget(p->q, key);
        } else {
            if (err && err->code != CK_E_CONFLICT)
                log_warn("pod %s: %s", key, err->msg);
            ck_error_free(err);
            ck_workqueue_add_rate_limited(p->q, key);
        }
        ck_workqueue_done(p->q, key);
        free(key);
    }
    return NULL;
}

static void enqueue(void *ctx, json_t *pod)
{
    ck_pods *p = ctx;
    char *key = ck_informer_key(pod);
    ck_workqueue_add(p->q, key);
    free(key);
}

static void on_update(void *ctx, json_t *old_pod, json_t *pod)
{
    (void)old_pod;
    enqueue(ctx, pod);
}

/* Every second: every known pod and every record (a record without a pod is cleaned up). */
static void *resync_loop(void *arg)
{
    ck_pods *p = arg;
    while (!p->k->stop) {
        for (int i = 0; i < RESYNC_MS / 100 && !p->k->stop; i++)
            usleep(100 * 1000);
        if (!ck_informer_synced(p->inf))
            continue;
        json_t *all = ck_informer_list(p->inf);
        size_t i;
        json_t *pod;
        json_array_foreach(all, i, pod) enqueue(p, pod);
        json_decref(all);
        pthread_mutex_lock(&p->mu);
        for (size_t j = 0; j < p->nrecs; j++)
            ck_workqueue_add(p->q, p->recs[j]->key);
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}

static void adopt(ck_pods *p)
{
    cleanup_free char *dir = xasprintf("%s/pods", p->k->root);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        cleanup_free char *pd = xasprintf("%s/%s", dir, e->d_name);
        pod_rec *r = rec_load(p, pd);
        if (!r)
            continue;
        ck_ctrs_refresh(p->k, r);
        size_t running = 0;
        for (size_t i = 0; i < r->nctrs; i++)
            running += r->ctrs[i].id && !r->ctrs[i].exited;
        log_info("adopted pod %s (%s): %zu container(s) running", r->key, r->uid, running);
        r->admitted = true;   /* it ran here before; its spec comes with its first sync */
        p->recs = xrealloc(p->recs, (p->nrecs + 1) * sizeof *p->recs);
        p->recs[p->nrecs++] = r;
    }
    closedir(d);
}

int ck_pods_start(ck_kubelet *k, ck_error **err)
{
    (void)err;
    ck_pods *p = xcalloc(1, sizeof *p);
    p->k = k;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->terminators_done, NULL);
    ck_node_allocatable(&p->alloc);
    p->q = ck_workqueue_new();
    k->pods = p;
    adopt(p);
    cleanup_free char *fs = xasprintf("spec.nodeName=%s", k->node_name);
    ck_informer_handlers h = {.on_add = enqueue, .on_update = on_update, .on_delete = enqueue};
    p->inf = ck_informer_new(k->client, pods_res(), NULL, NULL, fs, &h, p);
    ck_informer_start(p->inf);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    p->nworkers = cpus * 2 < WORKERS_MIN ? WORKERS_MIN : cpus * 2 > WORKERS_MAX ? WORKERS_MAX : (int)cpus * 2;
    const char *wenv = getenv("CKUBE_KUBELET_WORKERS");   /* benchmarks: try other counts */
    if (wenv && atoi(wenv) > 0)
        p->nworkers = atoi(wenv) > WORKERS_MAX ? WORKERS_MAX : atoi(wenv);
    for (int i = 0; i < p->nworkers; i++)
        pthread_create(&p->workers[i], NULL, worker, p);
    pthread_create(&p->resync, NULL, resync_loop, p);
    return 0;
}

void ck_pods_stop(ck_kubelet *k)
{
    ck_pods *p = k->pods;
    if (!p)
        return;
    ck_workqueue_shutdown(p->q);
    for (int i = 0; i < p->nworkers; i++)
        pthread_join(p->workers[i], NULL);
    pthread_join(p->resync, NULL);
    /* terminators see k->stop and hand their records back */
    pthread_mutex_lock(&p->mu);
    while (p->nterminators > 0)
        pthread_cond_wait(&p->terminators_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    ck_informer_free(p->inf);
    ck_workqueue_free(p->q);
    for (size_t i = 0; i < p->nrecs; i++)
        rec_free(p->recs[i]);
    free(p->recs);
    pthread_cond_destroy(&p->terminators_done);
    pthread_mutex_destroy(&p->mu);
    free(p);
    k->pods = NULL;
}

char *ck_pods_log_path(ck_kubelet *k, const char *ns, const char *pod, const char *container,
                       bool previous, bool *running, ck_error **err)
{
    ck_pods *p = k->pods;
    cleanup_free char *key = xasprintf("%s/%s", ns, pod);
    char *path = NULL;
    pthread_mutex_lock(&p->mu);
    pod_rec *r = rec_find(p, key, NULL);
    if (!r) {
        pthread_mutex_unlock(&p->mu);
        ck_error_set(err, CK_E_NOT_FOUND, "pod %s not found on this node", key);
        return NULL;
    }
    ctr_state *c = NULL;
    size_t napp = 0;
    for (size_t i = 0; i < r->nctrs; i++) {
        if (!r->ctrs[i].init)
            napp++;
        if (container && *container ? !strcmp(r->ctrs[i].name, container) : !r->ctrs[i].init)
            c = c ? c : &r->ctrs[i];
    }
    if (!c || (!(container && *container) && napp > 1)) {
        pthread_mutex_unlock(&p->mu);
        if (!c)
            ck_error_set(err, CK_E_BAD_REQUEST, "container %s is not valid for pod %s",
                         container && *container ? container : "(none)", pod);
        else
            ck_error_set(err, CK_E_BAD_REQUEST,
                         "a container name must be specified for pod %s", pod);
        return NULL;
    }
    int attempt = previous ? c->attempt - 1 : c->attempt;
    if (attempt < 0) {
        pthread_mutex_unlock(&p->mu);
        ck_error_set(err, CK_E_BAD_REQUEST,
                     previous ? "previous terminated container \"%s\" in pod \"%s\" not found"
                              : "container \"%s\" in pod \"%s\" is waiting to start",
                     c->name, pod);
        return NULL;
    }
    cleanup_free char *dir = ck_pod_log_dir(k, r);
    path = xasprintf("%s/%s/%d.log", dir, c->name, attempt);
    if (running)
        *running = !previous && c->id && !c->exited;
    pthread_mutex_unlock(&p->mu);
    return path;
}

int ck_pods_exec_target(ck_kubelet *k, const char *ns, const char *pod, const char *container,
                        char **id, char **netns, ck_error **err)
{
    return ck_pods_attach_target(k, ns, pod, container, id, netns, NULL, err);
}

int ck_pods_attach_target(ck_kubelet *k, const char *ns, const char *pod, const char *container,
                          char **id, char **netns, char **dir, ck_error **err)
{
    ck_pods *p = k->pods;
    cleanup_free char *key = xasprintf("%s/%s", ns, pod);
    pthread_mutex_lock(&p->mu);
    pod_rec *r = rec_find(p, key, NULL);
    if (!r) {
        pthread_mutex_unlock(&p->mu);
        return ck_error_set(err, CK_E_NOT_FOUND, "pod %s not found on this node", key);
    }
    ctr_state *c = NULL;
    for (size_t i = 0; container && *container && i < r->nctrs && !c; i++)
        if (!strcmp(r->ctrs[i].name, container))
            c = &r->ctrs[i];
    for (size_t i = 0; !(container && *container) && i < r->nctrs && !c; i++)
        if (!r->ctrs[i].init)
            c = &r->ctrs[i];
    if ((id || dir) && (!c || !c->id || c->exited)) {
        pthread_mutex_unlock(&p->mu);
        return ck_error_set(err, CK_E_NOT_FOUND, "container not found (\"%s\")",
                            container ? container : "");
    }
    if (id)
        *id = xstrdup(c->id);
    if (dir)
        *dir = ck_ctr_dir(r, c, c->attempt);
    if (netns)
        *netns = r->netns ? xstrdup(r->netns) : NULL;
    pthread_mutex_unlock(&p->mu);
    return 0;
}
