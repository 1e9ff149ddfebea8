/* cm.c - shared informers, worker pools, events, expectations and JSON helpers (see cm.h). */
#include "controllers/cm.h"

#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apiserver/apiserver.h"   /* ck_json_print */
#include "client/jsonpick.h"
#include "lib/alloc.h"
#include "lib/log.h"
#include "lib/util.h"

#define CM_MAX_INFORMERS 32
#define CM_MAX_HANDLERS 12
#define CM_MAX_QUEUES 24
#define CM_EVENT_QUEUE_MAX 2000
#define CM_EVENT_BURST 25
#define CM_EXPECT_TTL_S 300

typedef struct shared_inf {
    cm *m;
    const ck_resource *res;
    ck_informer *inf;
    ck_informer_handlers h[CM_MAX_HANDLERS];
    void *ctx[CM_MAX_HANDLERS];
    int nh;
} shared_inf;

typedef struct queue_def {
    cm *m;
    const char *name;
    ck_workqueue *q;
    int workers;
    cm_sync_fn fn;
    void *self;
} queue_def;

struct cm {
    ck_client *client;
    shared_inf infs[CM_MAX_INFORMERS];
    int ninfs;
    queue_def queues[CM_MAX_QUEUES];
    int nqueues;

    pthread_mutex_t ev_lock;
    pthread_cond_t ev_cond;
    json_t *ev_pending;     /* array of Event objects to post */
    json_t *ev_counts;      /* "uid/reason" -> count (spam filter) */

    pthread_mutex_t exp_lock;
    json_t *exp;            /* key -> [adds, {pod key: true} deletions, since] */
};

long cm_node_grace_ms = 40000;
long cm_node_eviction_check_ms = 5000;

/* ---------------------------------------------------------------- informers */

static void fan_add(void *ctx, json_t *o)
{
    shared_inf *s = ctx;
    for (int i = 0; i < s->nh; i++)
        if (s->h[i].on_add)
            s->h[i].on_add(s->ctx[i], o);
}

static void fan_update(void *ctx, json_t *a, json_t *b)
{
    shared_inf *s = ctx;
    for (int i = 0; i < s->nh; i++)
        if (s->h[i].on_update)
            s->h[i].on_update(s->ctx[i], a, b);
}

static void fan_delete(void *ctx, json_t *o)
{
    shared_inf *s = ctx;
    for (int i = 0; i < s->nh; i++)
        if (s->h[i].on_delete)
            s->h[i].on_delete(s->ctx[i], o);
}

/* What no controller reads is not worth caching, nor worth decoding: each informer has a
 * client/jsonpick.h keep list that decodes only those parts of the watch and list text (a pod's
 * event is ~4 KB of text, ~35 KB as a tree, of which the cache keeps a tenth), and a transform
 * that applies the same list to the decoded tree (so an object ends the same whatever path it
 * came by), then the cuts a keep list cannot say, then shares repeated parts (intern below).
 *   every type: metadata without managedFields;
 *   pods: metadata without generateName; spec nodeName, tolerations, affinity (daemon pod pins),
 *         containers (name/ports) only when one has ports (named targetPorts); status phase,
 *         podIP, the Ready and DisruptionTarget conditions (type/status/time/reason), and for a
 *         Failed pod every condition and its (init) containers' exit codes and finish times (a
 *         Job's podFailurePolicy and failure backoff); for other pods the (init) containers'
 *         restart counts once one is non-zero (restartPolicy OnFailure jobs).
 * A controller that needs another pod field adds it to pod_keep. */
static const ck_jsonpick md_keep[] = {
    {"managedFields", CK_JSONPICK_DROP}, {"*", NULL}, {NULL, NULL}};
static const ck_jsonpick object_keep[] = {{"metadata", md_keep}, {"*", NULL}, {NULL, NULL}};

static const ck_jsonpick pod_md_keep[] = {
    {"managedFields", CK_JSONPICK_DROP}, {"generateName", CK_JSONPICK_DROP}, {"*", NULL},
    {NULL, NULL}};
static const ck_jsonpick pod_container_keep[] = {{"name", NULL}, {"ports", NULL}, {NULL, NULL}};
static const ck_jsonpick pod_spec_keep[] = {
    {"nodeName", NULL}, {"tolerations", NULL}, {"affinity", NULL},
    {"containers", pod_container_keep}, {NULL, NULL}};
static const ck_jsonpick pod_cond_keep[] = {
    {"type", NULL}, {"status", NULL}, {"lastTransitionTime", NULL}, {"reason", NULL}, {NULL, NULL}};
static const ck_jsonpick terminated_keep[] = {{"exitCode", NULL}, {"finishedAt", NULL}, {NULL, NULL}};
static const ck_jsonpick state_keep[] = {{"terminated", terminated_keep}, {NULL, NULL}};
static const ck_jsonpick cstatus_keep[] = {
    {"name", NULL}, {"restartCount", NULL}, {"state", state_keep}, {NULL, NULL}};
static const ck_jsonpick pod_status_keep[] = {
    {"phase", NULL}, {"podIP", NULL}, {"conditions", pod_cond_keep},
    {"containerStatuses", cstatus_keep}, {"initContainerStatuses", cstatus_keep}, {NULL, NULL}};
static const ck_jsonpick pod_keep[] = {
    {"kind", NULL}, {"apiVersion", NULL}, {"metadata", pod_md_keep}, {"spec", pod_spec_keep},
    {"status", pod_status_keep}, {NULL, NULL}};

/* ---- interning: one shared value for equal parts of many cached objects.
 * A jansson leaf costs ~80-150 bytes and an object ~250 before its members, so the parts that
 * repeat across thousands of objects (a ReplicaSet's pods share labels, ownerReferences, spec
 * and mostly their conditions; every pod says kind Pod, namespace, phase) are kept once,
 * reference-counted.  Cached objects are never modified (writes work on json_deep_copy, which
 * copies shared parts like any other), so sharing is invisible to readers.  The table is keyed
 * by canonical text; values only the table still holds are dropped by cm_intern_prune. */
static pthread_mutex_t intern_lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *interned;             /* canonical JSON text -> the shared value */

/* The table's key for v: a text only values equal to v have.  A string is '"' and its bytes
 * (no escaping: nothing else starts with a quote here), an object or array its compact print
 * (members in their order: equal values printed in another order are merely kept twice), other
 * scalars jansson's print.  This runs for eight parts of every pod event, so it avoids jansson's
 * sorted print (three quarters of the controller-manager's pod informer once). */
static char *intern_key(const json_t *v)
{
    if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v)) {
        size_t n = json_string_length(v);
        char *k = xmalloc(n + 2);
        k[0] = '"';
        memcpy(k + 1, json_string_value(v), n + 1);
        return k;
    }
    if (json_is_object(v) || json_is_array(v))
        return ck_json_print(v, NULL);
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* A NEW reference to the shared value equal to v (v itself when it is the first). */
static json_t *intern(json_t *v)
{
    char *text = intern_key(v);
    if (!text)
        return json_incref(v);
    pthread_mutex_lock(&intern_lock);
    if (!interned)
        interned = json_object();
    json_t *s = json_object_get(interned, text);
    if (!s) {
        json_object_set_nocheck(interned, text, v);
        s = v;
    }
    json_incref(s);
    pthread_mutex_unlock(&intern_lock);
    free(text);
    return s;
}

static void intern_member(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (v)
        json_object_set_new(obj, key, intern(v));
}

size_t cm_intern_prune(void)
{
    size_t left = 0;
    pthread_mutex_lock(&intern_lock);
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(interned, tmp, k, v)
        if (v->refcount <= 1)
            json_object_del(interned, k);
    left = json_object_size(interned);
    pthread_mutex_unlock(&intern_lock);
    return left;
}

/* The parts of any object that repeat: its type, namespace, labels and owners. */
static void intern_common(json_t *obj)
{
    intern_member(obj, "kind");
    intern_member(obj, "apiVersion");
    json_t *md = json_object_get(obj, "metadata");
    intern_member(md, "namespace");
    intern_member(md, "labels");
    intern_member(md, "ownerReferences");
}

static void trim_object(void *ctx, json_t *obj)
{
    (void)ctx;
    ck_jsonpick_tree(obj, object_keep);
    intern_common(obj);
    /* nodes: every node of a pool reports the same capacity and system info layout */
    json_t *st = json_object_get(obj, "status");
    if (st && !strcmp(json_string_value(json_object_get(obj, "kind")) ?: "", "Node")) {
        intern_member(st, "capacity");
        intern_member(st, "allocatable");
    }
}

/* A pod that has not failed keeps its container statuses only once a container restarted (a Job
 * with restartPolicy OnFailure counts restarts against backoffLimit): [{name, restartCount}]
 * then, else nothing. */
static void keep_restarts(json_t *status, const char *list)
{
    json_t *statuses = json_object_get(status, list);
    bool any = false;
    size_t i;
    json_t *cs;
    json_array_foreach(statuses, i, cs)
        any |= json_integer_value(json_object_get(cs, "restartCount")) > 0;
    if (!any) {
        json_object_del(status, list);
        return;
    }
    json_array_foreach(statuses, i, cs)
        json_object_del(cs, "state");
}

static void trim_pod(void *ctx, json_t *pod)
{
    (void)ctx;
    ck_jsonpick_tree(pod, pod_keep);
    json_t *spec = json_object_get(pod, "spec"), *status = json_object_get(pod, "status");
    bool ports = false;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(spec, "containers"), i, c)
        ports |= json_array_size(json_object_get(c, "ports")) > 0;
    if (!ports)
        json_object_del(spec, "containers");
    /* (init) container exit codes and every condition only for a failed pod (podFailurePolicy
     * onExitCodes / onPodConditions, failure backoff); the spec has cut statuses to
     * name + state.terminated already */
    bool failed = !strcmp(json_string_value(json_object_get(status, "phase")) ?: "", "Failed");
    if (!failed) {   /* exit codes and finish times: a failed pod's only */
        keep_restarts(status, "containerStatuses");
        keep_restarts(status, "initContainerStatuses");
    }
    json_t *conds = json_object_get(status, "conditions");
    for (i = json_array_size(conds); i-- > 0 && !failed;) {
        c = json_array_get(conds, i);
        const char *t = json_string_value(json_object_get(c, "type")) ?: "";
        if (strcmp(t, "Ready") && strcmp(t, "DisruptionTarget"))
            json_array_remove(conds, i);
    }
    intern_common(pod);
    intern_member(pod, "spec");     /* the pods of a set on one node: one spec */
    intern_member(status, "phase");
    intern_member(status, "conditions");
}

json_t *cm_cache_decode(bool pod, const char *text, size_t len)
{
    ck_error *err = NULL;
    json_t *o = ck_jsonpick_parse(text, len, pod ? pod_keep : object_keep, &err);
    ck_error_free(err);
    if (o)
        (pod ? trim_pod : trim_object)(NULL, o);
    return o;
}

int cm_write_status(cm *m, const ck_resource *r, const json_t *obj, const json_t *st, ck_error **err)
{
    if (json_equal(st, cm_get(obj, "status")))
        return 0;
    json_t *copy = json_deep_copy(obj);
    json_object_set(copy, "status", (json_t *)st);
    json_t *out = ck_client_update_status(m->client, r, cm_ns(obj), copy, err);
    json_decref(copy);
    json_decref(out);
    return out ? 0 : -1;
}

cm *cm_new(ck_client *c)
{
    cm *m = xcalloc(1, sizeof *m);
    m->client = c;
    pthread_mutex_init(&m->ev_lock, NULL);
    pthread_cond_init(&m->ev_cond, NULL);
    m->ev_pending = json_array();
    m->ev_counts = json_object();
    pthread_mutex_init(&m->exp_lock, NULL);
    m->exp = json_object();
    return m;
}

void cm_free(cm *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->ninfs; i++)
        ck_informer_free(m->infs[i].inf);
    for (int i = 0; i < m->nqueues; i++)
        ck_workqueue_free(m->queues[i].q);
    json_decref(m->ev_pending);
    json_decref(m->ev_counts);
    json_decref(m->exp);
    pthread_mutex_destroy(&m->ev_lock);
    pthread_cond_destroy(&m->ev_cond);
    pthread_mutex_destroy(&m->exp_lock);
    free(m);
}

ck_client *cm_client(cm *m)
{
    return m->client;
}

const ck_resource *cm_res(const char *group, const char *resource)
{
    for (size_t i = 0; i < ck_nresources; i++)
        if (!strcmp(ck_resources[i].group, group) && !strcmp(ck_resources[i].resource, resource))
            return &ck_resources[i];
    log_error("resource %s/%s is not in the resource table", group, resource);
    abort();
}

ck_informer *cm_informer(cm *m, const char *group, const char *resource,
                         const ck_informer_handlers *h, void *ctx)
{
    const ck_resource *r = cm_res(group, resource);
    shared_inf *s = NULL;
    for (int i = 0; i < m->ninfs; i++)
        if (m->infs[i].res == r)
            s = &m->infs[i];
    if (!s) {
        if (m->ninfs == CM_MAX_INFORMERS)
            abort();
        s = &m->infs[m->ninfs++];
        s->m = m;
        s->res = r;
        ck_informer_handlers fan = {fan_add, fan_update, fan_delete};
        s->inf = ck_informer_new(m->client, r, NULL, NULL, NULL, &fan, s);
        bool pods = !strcmp(r->resource, "pods") && !r->group[0];
        ck_informer_set_transform(s->inf, pods ? trim_pod : trim_object);
        ck_informer_set_keep(s->inf, pods ? pod_keep : object_keep);
    }
    if (h) {
        if (s->nh == CM_MAX_HANDLERS)
            abort();
        s->h[s->nh] = *h;
        s->ctx[s->nh++] = ctx;
    }
    return s->inf;
}

/* ---------------------------------------------------------------- workers */

ck_workqueue *cm_queue(cm *m, const char *name, int workers, cm_sync_fn fn, void *self)
{
    if (m->nqueues == CM_MAX_QUEUES)
        abort();
    queue_def *d = &m->queues[m->nqueues++];
    d->m = m;
    d->name = name;
    d->q = ck_workqueue_new();
    d->workers = workers;
    d->fn = fn;
    d->self = self;
    return d->q;
}

static void *worker_main(void *arg)
{
    queue_def *d = arg;
    char *key;
    while ((key = ck_workqueue_get(d->q))) {
        ck_error *err = NULL;
        if (d->fn(d->self, key, &err) == 0) {
            ck_workqueue_forget(d->q, key);
        } else {
            int n = ck_workqueue_retries(d->q, key);
            if (err && err->code != CK_E_CONFLICT)
                log_warn("%s: sync %s failed (retry %d): %s", d->name, key, n,
                         err ? err->msg : "?");
            ck_error_free(err);
            ck_workqueue_add_rate_limited(d->q, key);
        }
        ck_workqueue_done(d->q, key);
        free(key);
    }
    return NULL;
}

static void *event_main(void *arg);

/* Hand freed memory back to the system now and then: after a burst (thousands of pods created
 * then replaced) glibc would otherwise keep the peak. */
static void *trim_main(void *arg)
{
    (void)arg;
    for (;;) {
        sleep(2);
        cm_intern_prune();
        ck_alloc_trim();
    }
    return NULL;
}

int cm_run(cm *m, ck_error **err)
{
    for (int i = 0; i < m->ninfs; i++)
        ck_informer_start(m->infs[i].inf);
    for (int i = 0; i < m->ninfs; i++)
        while (!ck_informer_wait_synced(m->infs[i].inf, 5000))
            log_info("waiting for the %s cache to sync", m->infs[i].res->resource);
    log_info("%d shared informers synced", m->ninfs);
    pthread_t t;
    if (pthread_create(&t, NULL, event_main, m))
        return ck_error_sys(err, CK_E_INTERNAL, "event thread");
    pthread_detach(t);
    if (pthread_create(&t, NULL, trim_main, NULL))
        return ck_error_sys(err, CK_E_INTERNAL, "trim thread");
    pthread_detach(t);
    for (int i = 0; i < m->nqueues; i++)
        for (int w = 0; w < m->queues[i].workers; w++) {
            if (pthread_create(&t, NULL, worker_main, &m->queues[i]))
                return ck_error_sys(err, CK_E_INTERNAL, "worker thread");
            pthread_detach(t);
        }
    return 0;
}

/* ---------------------------------------------------------------- events */

void cm_event(cm *m, const json_t *obj, const char *component, const char *type,
              const char *reason, const char *fmt, ...)
{
    const char *uid = cm_uid(obj);
    cleanup_free char *ck = xasprintf("%s/%s", uid ? uid : cm_name(obj), reason);
    pthread_mutex_lock(&m->ev_lock);
    json_int_t n = json_integer_value(json_object_get(m->ev_counts, ck));
    if (n >= CM_EVENT_BURST || json_array_size(m->ev_pending) >= CM_EVENT_QUEUE_MAX) {
        pthread_mutex_unlock(&m->ev_lock);
        return;
    }
    if (json_object_size(m->ev_counts) > 100000)
        json_object_clear(m->ev_counts);
    json_object_set_new(m->ev_counts, ck, json_integer(n + 1));
    pthread_mutex_unlock(&m->ev_lock);

    va_list ap;
    va_start(ap, fmt);
    cleanup_free char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    char now[32];
    cm_now_str(now);
    unsigned char rnd[8];
    ck_random_bytes(rnd, sizeof rnd);
    cleanup_free char *name = xasprintf("%s.%02x%02x%02x%02x%02x%02x%02x%02x", cm_name(obj),
                                        rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    const char *ns = cm_ns(obj);
    ck_event_about about = {.api_version = cm_str(obj, "apiVersion") ?: "",
                            .kind = cm_str(obj, "kind") ?: "", .ns = ns ?: "",
                            .name = cm_name(obj), .uid = uid ?: "",
                            .resource_version = cm_str(obj, "metadata.resourceVersion")};
    json_t *ev = ck_event_new(name, ns && *ns ? ns : "default", &about, component, component, NULL,
                              type, reason, msg, now);
    pthread_mutex_lock(&m->ev_lock);
    json_array_append_new(m->ev_pending, ev);
    pthread_cond_signal(&m->ev_cond);
    pthread_mutex_unlock(&m->ev_lock);
}

static void *event_main(void *arg)
{
    cm *m = arg;
    const ck_resource *events = cm_res("", "events");
    for (;;) {
        pthread_mutex_lock(&m->ev_lock);
        while (!json_array_size(m->ev_pending))
            pthread_cond_wait(&m->ev_cond, &m->ev_lock);
        json_t *batch = m->ev_pending;
        m->ev_pending = json_array();
        pthread_mutex_unlock(&m->ev_lock);
        size_t i;
        json_t *ev;
        json_array_foreach(batch, i, ev) {
            ck_error *err = NULL;
            json_t *out = ck_client_create(m->client, events, cm_ns(ev), ev, &err);
            if (!out) {
                log_debug("event %s: %s", cm_str(ev, "reason"), err->msg);
                ck_error_free(err);
            }
            json_decref(out);
        }
        json_decref(batch);
    }
    return NULL;
}

/* ---------------------------------------------------------------- expectations */

void cm_expect(cm *m, const char *key, int adds, const json_t *del_keys)
{
    json_t *dels = json_object();
    size_t i;
    json_t *k;
    json_array_foreach(del_keys, i, k)
        json_object_set_new(dels, json_string_value(k), json_true());
    pthread_mutex_lock(&m->exp_lock);
    json_object_set_new(m->exp, key, json_pack("[i, o, I]", adds, dels, (json_int_t)cm_now()));
    pthread_mutex_unlock(&m->exp_lock);
}

void cm_observe_add(cm *m, const char *key)
{
    pthread_mutex_lock(&m->exp_lock);
    json_t *e = json_object_get(m->exp, key);
    if (e)
        json_array_set_new(e, 0, json_integer(json_integer_value(json_array_get(e, 0)) - 1));
    pthread_mutex_unlock(&m->exp_lock);
}

void cm_observe_del(cm *m, const char *key, const char *pod_key)
{
    pthread_mutex_lock(&m->exp_lock);
    json_t *e = json_object_get(m->exp, key);
    if (e)
        json_object_del(json_array_get(e, 1), pod_key);
    pthread_mutex_unlock(&m->exp_lock);
}

bool cm_expectations_met(cm *m, const char *key)
{
    pthread_mutex_lock(&m->exp_lock);
    json_t *e = json_object_get(m->exp, key);
    bool met = !e || (json_integer_value(json_array_get(e, 0)) <= 0 &&
                      json_object_size(json_array_get(e, 1)) == 0) ||
               cm_now() - json_integer_value(json_array_get(e, 2)) > CM_EXPECT_TTL_S;
    pthread_mutex_unlock(&m->exp_lock);
    return met;
}

void cm_expect_forget(cm *m, const char *key)
{
    pthread_mutex_lock(&m->exp_lock);
    json_object_del(m->exp, key);
    pthread_mutex_unlock(&m->exp_lock);
}

/* ---------------------------------------------------------------- JSON */

/* The hottest function of a sync over thousands of pods: no copy of the segments, no strlen
 * per segment beyond the scan (json_object_getn takes a length). */
json_t *cm_get(const json_t *obj, const char *path)
{
    const json_t *cur = obj;
    const char *p = path;
    while (cur && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        cur = json_object_getn(cur, p, n);
        p = dot ? dot + 1 : p + n;
    }
    return (json_t *)cur;
}

const char *cm_str(const json_t *obj, const char *path)
{
    return json_string_value(cm_get(obj, path));
}

long long cm_int(const json_t *obj, const char *path, long long dflt)
{
    json_t *v = cm_get(obj, path);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

bool cm_bool(const json_t *obj, const char *path, bool dflt)
{
    json_t *v = cm_get(obj, path);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

const char *cm_name(const json_t *obj)
{
    const char *s = cm_str(obj, "metadata.name");
    return s ? s : "";
}

const char *cm_ns(const json_t *obj)
{
    return cm_str(obj, "metadata.namespace");
}

const char *cm_uid(const json_t *obj)
{
    return cm_str(obj, "metadata.uid");
}

const char *cm_annotation(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(cm_get(obj, "metadata.annotations"), key));
}

bool cm_deleting(const json_t *obj)
{
    return cm_get(obj, "metadata.deletionTimestamp") != NULL;
}

bool cm_namespace_active(ck_informer *namespaces, const char *name)
{
    json_t *ns = ck_informer_get(namespaces, NULL, name);
    if (!ns)
        return false;
    bool active = !cm_deleting(ns) && strcmp(cm_str(ns, "status.phase") ?: "", "Terminating");
    json_decref(ns);
    return active;
}

void cm_split_key(const char *key, char **ns, const char **name)
{
    const char *slash = strchr(key, '/');
    if (slash) {
        *ns = xstrndup(key, (size_t)(slash - key));
        *name = slash + 1;
    } else {
        *ns = NULL;
        *name = key;
    }
}

json_t *cm_controller_ref(const json_t *obj)
{
    size_t i;
    json_t *r;
    json_array_foreach(cm_get(obj, "metadata.ownerReferences"), i, r)
        if (json_is_true(json_object_get(r, "controller")))
            return r;
    return NULL;
}

json_t *cm_owner_ref(const json_t *owner, bool block)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b}", "apiVersion", cm_str(owner, "apiVersion"),
                     "kind", cm_str(owner, "kind"), "name", cm_name(owner), "uid", cm_uid(owner),
                     "controller", 1, "blockOwnerDeletion", block);
}

bool cm_has_finalizer(const json_t *obj, const char *f)
{
    size_t i;
    json_t *v;
    json_array_foreach(cm_get(obj, "metadata.finalizers"), i, v)
        if (json_string_value(v) && !strcmp(json_string_value(v), f))
            return true;
    return false;
}

int64_t cm_now(void)
{
    return ck_wall_ns() / 1000000000;
}

void cm_now_str(char out[32])
{
    ck_rfc3339(cm_now(), out);
}

int64_t cm_time(const json_t *obj, const char *path)
{
    const char *s = cm_str(obj, path);
    int64_t t = 0;
    if (!s || ck_parse_rfc3339(s, &t) < 0)
        return 0;
    return t;
}

/* ---------------------------------------------------------------- pods */

bool cm_pod_active(const json_t *pod)
{
    const char *phase = cm_str(pod, "status.phase");
    if (phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed")))
        return false;
    return !cm_deleting(pod);
}

json_t *cm_pod_condition(const json_t *pod, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach(cm_get(pod, "status.conditions"), i, c)
        if (!strcmp(json_string_value(json_object_get(c, "type")) ?: "", type))
            return c;
    return NULL;
}

bool cm_pod_ready(const json_t *pod)
{
    json_t *c = cm_pod_condition(pod, "Ready");
    return c && !strcmp(json_string_value(json_object_get(c, "status")) ?: "", "True");
}

bool cm_pod_available(const json_t *pod, long min_ready, int64_t now)
{
    if (!cm_pod_ready(pod))
        return false;
    if (min_ready <= 0)
        return true;
    int64_t t = cm_time(cm_pod_condition(pod, "Ready"), "lastTransitionTime");
    return t && t + min_ready <= now;
}

long cm_target_port(const json_t *sp, const json_t *pod)
{
    json_t *tp = json_object_get(sp, "targetPort");
    if (json_is_integer(tp))
        return (long)json_integer_value(tp);
    const char *name = json_string_value(tp);
    if (!name || !*name)
        return (long)cm_int(sp, "port", -1);
    if (name[0] >= '0' && name[0] <= '9')
        return atol(name);
    size_t i, j;
    json_t *c, *p;
    json_array_foreach(cm_get(pod, "spec.containers"), i, c)
        json_array_foreach(json_object_get(c, "ports"), j, p)
            if (!strcmp(json_string_value(json_object_get(p, "name")) ?: "", name))
                return (long)cm_int(p, "containerPort", -1);
    return -1;
}

json_t *cm_endpoint_ports(const json_t *svc, const json_t *pod, bool empty_name)
{
    json_t *ports = json_array();
    size_t j;
    json_t *sp;
    json_array_foreach(cm_get(svc, "spec.ports"), j, sp) {
        long port = cm_target_port(sp, pod);
        if (port <= 0)
            continue;
        const char *name = cm_str(sp, "name");
        json_t *p = json_pack("{s:I, s:s}", "port", (json_int_t)port, "protocol",
                              cm_str(sp, "protocol") ?: "TCP");
        if ((name && *name) || empty_name)
            json_object_set_new(p, "name", json_string(name ? name : ""));
        if (cm_str(sp, "appProtocol"))
            json_object_set_new(p, "appProtocol", json_string(cm_str(sp, "appProtocol")));
        json_array_append_new(ports, p);
    }
    return ports;
}

void cm_sort_array(json_t *arr, int (*cmp)(const void *, const void *))
{
    size_t n = json_array_size(arr);
    if (n < 2)
        return;
    json_t **v = xcalloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(arr, i));
    qsort(v, n, sizeof *v, cmp);
    json_array_clear(arr);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, v[i]);
    free(v);
}

bool cm_service_selects(const json_t *svc, const json_t *pod)
{
    json_t *sel = cm_get(svc, "spec.selector"), *labels = cm_get(pod, "metadata.labels");
    const char *k;
    json_t *v;
    json_object_foreach(sel, k, v)
        if (!json_equal(json_object_get(labels, k), v))
            return false;
    return true;
}

/* Services in pod's namespace whose selector matches its labels, as keys added to q. */
static void enqueue_services_for_pod(ck_informer *services, ck_workqueue *q, const json_t *pod)
{
    json_t *all = ck_informer_list(services);
    size_t i;
    json_t *svc;
    json_array_foreach(all, i, svc) {
        if (strcmp(cm_ns(svc) ?: "", cm_ns(pod) ?: ""))
            continue;
        if (!json_object_size(cm_get(svc, "spec.selector")))
            continue;
        if (cm_service_selects(svc, pod)) {
            char *key = ck_informer_key(svc);
            ck_workqueue_add(q, key);
            free(key);
        }
    }
    json_decref(all);
}

static void svc_key_obj(void *ctx, json_t *obj)
{
    cm_service_keys *k = ctx;
    cleanup_free char *key = ck_informer_key(obj);
    ck_workqueue_add(k->q, key);
}

static void svc_key_obj_update(void *ctx, json_t *old, json_t *obj)
{
    (void)old;
    svc_key_obj(ctx, obj);
}

static void svc_key_pod(void *ctx, json_t *pod)
{
    cm_service_keys *k = ctx;
    enqueue_services_for_pod(k->services, k->q, pod);
}

/* Only what an endpoint is made of: labels (selection), IP, phase, readiness, deletion, node,
 * container ports (the cached pod is trimmed to about that already, so whole parts compare). */
static void svc_key_pod_update(void *ctx, json_t *old, json_t *pod)
{
    cm_service_keys *k = ctx;
    bool labels_same = json_equal(cm_get(old, "metadata.labels"), cm_get(pod, "metadata.labels"));
    if (labels_same && json_equal(cm_get(old, "status.podIP"), cm_get(pod, "status.podIP")) &&
        json_equal(cm_get(old, "status.phase"), cm_get(pod, "status.phase")) &&
        cm_pod_ready(old) == cm_pod_ready(pod) && cm_deleting(old) == cm_deleting(pod) &&
        json_equal(cm_get(old, "spec.nodeName"), cm_get(pod, "spec.nodeName")) &&
        json_equal(cm_get(old, "spec.containers"), cm_get(pod, "spec.containers")) &&
        json_equal(cm_get(old, "metadata.uid"), cm_get(pod, "metadata.uid")))
        return;
    if (!labels_same)
        enqueue_services_for_pod(k->services, k->q, old);
    enqueue_services_for_pod(k->services, k->q, pod);
}

void cm_service_keys_init(cm *m, cm_service_keys *k, ck_workqueue *q)
{
    k->q = q;
    ck_informer_handlers sh = {svc_key_obj, svc_key_obj_update, svc_key_obj};
    k->services = cm_informer(m, "", "services", &sh, k);
    ck_informer_handlers ph = {svc_key_pod, svc_key_pod_update, svc_key_pod};
    k->pods = cm_informer(m, "", "pods", &ph, k);
}

void cm_service_keys_enqueue(void *ctx, json_t *obj)
{
    svc_key_obj(ctx, obj);
}

void cm_hash(const json_t *obj, long salt, char out[16])
{
    char *text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    uint32_t h = 2166136261u;
    for (const char *p = text; p && *p; p++) {
        h ^= (unsigned char)*p;
        h *= 16777619u;
    }
    free(text);
    if (salt)
        for (int i = 0; i < 8; i++) {
            h ^= (unsigned char)((unsigned long)salt >> (8 * i));
            h *= 16777619u;
        }
    static const char alpha[] = "bcdfghjklmnpqrstvwxz2456789";
    char dec[16];
    snprintf(dec, sizeof dec, "%u", h);
    size_t n = strlen(dec);
    for (size_t i = 0; i < n; i++)
        out[i] = alpha[(unsigned char)dec[i] % (sizeof alpha - 1)];
    out[n] = 0;
}

/* ---------------------------------------------------------------- writes */

int cm_delete(cm *m, const ck_resource *r, const char *ns, const char *name, const char *uid,
              const char *propagation, ck_error **err)
{
    json_t *opts = json_pack("{s:s, s:s}", "kind", "DeleteOptions", "apiVersion", "v1");
    if (uid)
        json_object_set_new(opts, "preconditions", json_pack("{s:s}", "uid", uid));
    if (propagation)
        json_object_set_new(opts, "propagationPolicy", json_string(propagation));
    ck_error *e = NULL;
    int rc = ck_client_delete(m->client, r, ns, name, opts, &e);
    json_decref(opts);
    if (rc < 0) {
        /* Gone already, or a new object under the same name (uid precondition): nothing to do. */
        if (e->code == CK_E_NOT_FOUND || (uid && e->code == CK_E_CONFLICT)) {
            ck_error_free(e);
            return 0;
        }
        return ck_error_pass(err, e);
    }
    return 0;
}

typedef struct par {
    int n, next, fails;
    int (*fn)(void *ctx, int i);
    void *ctx;
    pthread_mutex_t lock;
} par;

static void *par_main(void *arg)
{
    par *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        int i = p->next < p->n ? p->next++ : -1;
        pthread_mutex_unlock(&p->lock);
        if (i < 0)
            return NULL;
        if (p->fn(p->ctx, i) < 0) {
            pthread_mutex_lock(&p->lock);
            p->fails++;
            pthread_mutex_unlock(&p->lock);
        }
    }
}

int cm_parallel(int n, int width, int (*fn)(void *ctx, int i), void *ctx)
{
    par p = {.n = n, .fn = fn, .ctx = ctx};
    pthread_mutex_init(&p.lock, NULL);
    if (width > n)
        width = n;
    if (width <= 1) {
        par_main(&p);
    } else {
        pthread_t t[64];
        if (width > 64)
            width = 64;
        int started = 0;
        for (int i = 0; i < width; i++)
            if (!pthread_create(&t[i], NULL, par_main, &p))
                started++;
            else
                break;
        if (!started)
            par_main(&p);
        for (int i = 0; i < started; i++)
            pthread_join(t[i], NULL);
    }
    pthread_mutex_destroy(&p.lock);
    return p.fails;
}
