/* bind.c - every API write the scheduler makes, done by a pool of worker threads so the
 * scheduling thread never waits on a round trip (upstream's asynchronous binding cycle):
 *
 *   bind     POST /api/v1/namespaces/NS/pods/NAME/binding, printed from a text template and
 *            sent through a ck_sender (client.h): many bindings in flight from one thread over
 *            a few connections, where one blocking worker a binding cost a thread wakeup, a
 *            poll and a context switch each.  Success: the assumed pod is marked bound (the
 *            informer's update will confirm it).  Failure: handed to the workers, which drop
 *            the assumption, freeing its resources, and put the pod back into backoff.
 *   report   a FailedScheduling Warning event (repeats of the same message bump count and
 *            lastTimestamp, as the event recorder does) and PodScheduled=False/Unschedulable with
 *            the same message on the pod's status (+ nominatedNodeName after preemption).
 *   victim   a graceful delete (uid precondition) of a preemption victim, and a Preempted event.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"
#include "scheduler/sched.h"

/* Connections the bindings share (the sender keeps this many in flight).  A binding is answered
 * after its commit is durable, so the binding rate is at most conns / commit latency: with 16 the
 * scheduler waited on answers while the CPUs idled (docs/benchmarks.md, session 7).  Upstream
 * binds each pod in a goroutine of its own, with no small cap. */
#define SC_BIND_CONNS 32

enum job_kind { JOB_BIND_FAILED, JOB_REPORT, JOB_VICTIM };

typedef struct job {
    struct job *next;
    enum job_kind kind;
    char *ns, *name, *uid, *node, *message;
    char *by_uid;                 /* victim: the preemptor */
    json_t *obj;                  /* report: the pod as the scheduler saw it */
    int attempts;
    enum ck_error_code code;      /* bind failed: why (message: the text) */
    sc_binder *b;                 /* a binding in the sender: whose */
} job;

typedef struct recorded {         /* the last FailedScheduling event per pod */
    char *event, *message;
    int count;
} recorded;

static void recorded_free(recorded *r)
{
    if (!r)
        return;
    free(r->event);
    free(r->message);
    free(r);
}

/* Frees the map of recorded events and everything in it. */
static void events_free(sc_map *events)
{
    const char *k;
    void *v;
    for (size_t it = 0; sc_map_next(events, &it, &k, &v);)
        recorded_free(v);
    sc_map_free(events);
}

struct sc_binder {
    sc_sched *s;
    pthread_mutex_t lock;
    pthread_cond_t cond, idle;
    job *head, *tail;
    int running, nthreads;
    bool stop;
    pthread_t *threads;
    pthread_mutex_t ev_lock;
    sc_map *events;               /* pod key -> recorded */
    ck_sender *sender;            /* the bindings */
};

static const ck_resource *pods_res(void)
{
    return ck_resource_find("", "v1", "pods");
}

static void job_free(job *j)
{
    free(j->ns);
    free(j->name);
    free(j->uid);
    free(j->node);
    free(j->message);
    free(j->by_uid);
    json_decref(j->obj);
    free(j);
}

static void push(sc_binder *b, job *j)
{
    pthread_mutex_lock(&b->lock);
    if (b->tail)
        b->tail->next = j;
    else
        b->head = j;
    b->tail = j;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

static job *new_job(enum job_kind kind, const sc_pod *p)
{
    job *j = xcalloc(1, sizeof *j);
    j->kind = kind;
    j->ns = xstrdup(p->ns);
    j->name = xstrdup(p->name);
    j->uid = xstrdup(p->uid);
    return j;
}


void sc_report_failure_async(sc_binder *b, const sc_pod *p, const char *message,
                             const char *nominated)
{
    job *j = new_job(JOB_REPORT, p);
    j->message = xstrdup(message);
    j->node = nominated ? xstrdup(nominated) : NULL;
    j->obj = json_incref(p->obj);
    push(b, j);
}

void sc_delete_victim_async(sc_binder *b, const sc_pod *victim, const sc_pod *preemptor,
                            const char *node)
{
    job *j = new_job(JOB_VICTIM, victim);
    j->node = xstrdup(node);
    j->by_uid = xstrdup(preemptor->uid);
    j->message = xasprintf("Preempted by pod %s on node %s", preemptor->uid, node);
    push(b, j);
}

/* ---- bind ---- */

static void bind_failed(sc_binder *b, job *j)
{
    sc_sched *s = b->s;
    cleanup_free char *key = xasprintf("%s/%s", j->ns, j->name);
    pthread_mutex_lock(&s->lock);
    sc_pod *cp = sc_cache_pod(&s->cache, key);
    if (cp && cp->assumed)
        sc_cache_pod_del(&s->cache, key);
    s->bind_failed++;
    pthread_mutex_unlock(&s->lock);
    sc_queue_move(s->queue, SC_EV_POD_DELETE);     /* its resources are free again */
    if (j->code == CK_E_NOT_FOUND)
        return;                                     /* deleted meanwhile */
    log_warn("binding %s to %s failed: %s", key, j->node, j->message);
    /* retry from the latest copy, unless someone bound it meanwhile */
    ck_error *gerr = NULL;      /* the pods informer caches stubs only: ask the API */
    json_t *obj = ck_client_get(s->client, pods_res(), j->ns, j->name, &gerr);
    ck_error_free(gerr);
    const char *nn = json_string_value(json_object_get(json_object_get(obj, "spec"), "nodeName"));
    if (obj && !(nn && *nn)) {
        ck_error *perr = NULL;
        sc_pod *p = sc_pod_new(obj, &perr);
        if (p) {
            sc_pod_resolve_priority(p, sc_sched_priority, s);
            sc_pod_compact(p);
            sc_queue_add_backoff(s->queue, p, j->attempts);
        } else {
            ck_error_free(perr);
        }
    }
    json_decref(obj);
}

/* s as a JSON string: as is when it needs no escaping (API names never do), else jansson's. */
static void add_json_str(ck_buf *out, const char *s)
{
    bool plain = true;
    for (const unsigned char *p = (const unsigned char *)s; *p && plain; p++)
        plain = *p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\';
    if (plain) {
        ck_buf_add(out, "\"", 1);
        ck_buf_addstr(out, s);
        ck_buf_add(out, "\"", 1);
        return;
    }
    json_t *v = json_string(s);
    cleanup_free char *text = v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    ck_buf_addstr(out, text ? text : "\"\"");
}

/* The Binding object as text (no tree built and printed per pod). */
char *sc_binding_text(const char *ns, const char *name, const char *uid, const char *node,
                      size_t *len)
{
    ck_buf t;
    ck_buf_init(&t, 0);
    ck_buf_addstr(&t, "{\"apiVersion\":\"v1\",\"kind\":\"Binding\",\"metadata\":{\"name\":");
    add_json_str(&t, name);
    ck_buf_addstr(&t, ",\"namespace\":");
    add_json_str(&t, ns);
    ck_buf_addstr(&t, ",\"uid\":");
    add_json_str(&t, uid);
    ck_buf_addstr(&t, "},\"target\":{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"name\":");
    add_json_str(&t, node);
    ck_buf_addstr(&t, "}}");
    *len = t.len;
    return ck_buf_steal(&t);
}

/* The sender's answer to a binding (on its thread: no API call here, a failure goes to the
 * workers). */
static void bind_done(void *ctx, const ck_error *err)
{
    job *j = ctx;
    sc_binder *b = j->b;
    sc_sched *s = b->s;
    if (err) {
        j->kind = JOB_BIND_FAILED;
        j->code = err->code;
        j->message = xstrdup(err->msg);
        push(b, j);
        return;
    }
    cleanup_free char *key = xasprintf("%s/%s", j->ns, j->name);
    pthread_mutex_lock(&s->lock);
    sc_pod *cp = sc_cache_pod(&s->cache, key);
    if (cp)
        cp->bound = true;
    s->bound++;
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_lock(&b->ev_lock);
    recorded *r = sc_map_len(b->events) ? sc_map_del(b->events, key) : NULL;
    pthread_mutex_unlock(&b->ev_lock);
    recorded_free(r);
    job_free(j);
}

void sc_bind_async(sc_binder *b, const sc_pod *p, const char *node, int attempts)
{
    job *j = new_job(JOB_BIND_FAILED, p);   /* the kind it takes if it comes back */
    j->node = xstrdup(node);
    j->attempts = attempts;
    j->b = b;
    size_t len;
    char *body = sc_binding_text(j->ns, j->name, j->uid, j->node, &len);
    cleanup_free char *path = ck_client_path(pods_res(), j->ns, j->name, "binding");
    ck_sender_send(b->sender, "POST", path, body, len, NULL, bind_done, j);
}

/* ---- events and conditions ---- */

static void post_event(sc_binder *b, const char *ns, const char *name, const char *uid,
                       const char *type, const char *reason, const char *message, const char *key)
{
    sc_sched *s = b->s;
    const ck_resource *events = ck_resource_find("", "v1", "events");
    char now[32];
    ck_rfc3339(ck_wall_ns() / 1000000000, now);
    ck_error *err = NULL;
    /* the same message again: bump the count of the event we made */
    if (key) {
        pthread_mutex_lock(&b->ev_lock);
        recorded *r = sc_map_get(b->events, key);
        cleanup_free char *ev = r && !strcmp(r->message, message) ? xstrdup(r->event) : NULL;
        int count = r ? ++r->count : 0;
        pthread_mutex_unlock(&b->ev_lock);
        if (ev) {
            json_t *patch = json_pack("{s:i, s:s}", "count", count, "lastTimestamp", now);
            json_t *out = ck_client_patch(s->client, events, ns, ev, NULL,
                                          "application/merge-patch+json", patch, &err);
            json_decref(patch);
            if (out) {
                json_decref(out);
                return;
            }
            ck_error_free(err);
            err = NULL;
        }
    }
    char suffix[9];
    uint64_t rnd;
    ck_random_bytes(&rnd, sizeof rnd);
    snprintf(suffix, sizeof suffix, "%08llx", (unsigned long long)(rnd & 0xffffffffu));
    cleanup_free char *ev_name = xasprintf("%s.%s%08llx", name, suffix,
                                           (unsigned long long)(ck_wall_ns() & 0xffffffff));
    ck_event_about about = {.api_version = "v1", .kind = "Pod", .ns = ns, .name = name, .uid = uid};
    json_t *e = ck_event_new(ev_name, ns, &about, s->name, s->identity ? s->identity : s->name, NULL,
                             type, reason, message, now);
    json_t *out = ck_client_create(s->client, events, ns, e, &err);
    json_decref(e);
    if (!out) {
        log_warn("event for pod %s/%s: %s", ns, name, err->msg);
        ck_error_free(err);
        return;
    }
    json_decref(out);
    if (key) {
        pthread_mutex_lock(&b->ev_lock);
        if (sc_map_len(b->events) > 20000) {       /* bounded: forget old history */
            events_free(b->events);
            b->events = sc_map_new();
        }
        recorded *r = sc_map_get(b->events, key);
        if (!r) {
            r = xcalloc(1, sizeof *r);
            sc_map_put(b->events, key, r);
        }
        free(r->event);
        free(r->message);
        r->event = xstrdup(ev_name);
        r->message = xstrdup(message);
        r->count = 1;
        pthread_mutex_unlock(&b->ev_lock);
    }
}

static void do_report(sc_binder *b, job *j)
{
    sc_sched *s = b->s;
    cleanup_free char *key = xasprintf("%s/%s", j->ns, j->name);
    post_event(b, j->ns, j->name, j->uid, "Warning", "FailedScheduling", j->message, key);

    /* the condition, unless it already says exactly this */
    json_t *status = json_object_get(j->obj, "status");
    size_t i;
    json_t *c;
    bool same = false;
    json_array_foreach(json_object_get(status, "conditions"), i, c) {
        const char *type = json_string_value(json_object_get(c, "type"));
        const char *msg = json_string_value(json_object_get(c, "message"));
        const char *st = json_string_value(json_object_get(c, "status"));
        if (type && !strcmp(type, "PodScheduled") && st && !strcmp(st, "False") && msg &&
            !strcmp(msg, j->message))
            same = true;
    }
    const char *nom = json_string_value(json_object_get(status, "nominatedNodeName"));
    bool nom_same = !j->node || (nom && !strcmp(nom, j->node));
    if (same && nom_same)
        return;
    char now[32];
    ck_rfc3339(ck_wall_ns() / 1000000000, now);
    json_t *st = json_pack("{s:[{s:s, s:s, s:s, s:s, s:n, s:s}]}", "conditions", "type",
                           "PodScheduled", "status", "False", "reason", "Unschedulable", "message",
                           j->message, "lastProbeTime", "lastTransitionTime", now);
    if (j->node)
        json_object_set_new(st, "nominatedNodeName", json_string(j->node));
    json_t *patch = json_pack("{s:o}", "status", st);
    ck_error *err = NULL;
    json_t *out = ck_client_patch(s->client, pods_res(), j->ns, j->name, "status",
                                  "application/strategic-merge-patch+json", patch, &err);
    json_decref(patch);
    if (!out) {
        if (err->code != CK_E_NOT_FOUND)
            log_warn("status of pod %s: %s", key, err->msg);
        ck_error_free(err);
        return;
    }
    json_decref(out);
}

static void do_victim(sc_binder *b, job *j)
{
    sc_sched *s = b->s;
    json_t *opts = json_pack("{s:s, s:s, s:{s:s}}", "kind", "DeleteOptions", "apiVersion", "v1",
                             "preconditions", "uid", j->uid);
    ck_error *err = NULL;
    if (ck_client_delete(s->client, pods_res(), j->ns, j->name, opts, &err) < 0) {
        if (err->code != CK_E_NOT_FOUND && err->code != CK_E_CONFLICT)
            log_warn("preemption: deleting %s/%s: %s", j->ns, j->name, err->msg);
        ck_error_free(err);
        json_decref(opts);
        return;
    }
    json_decref(opts);
    log_info("preempted %s/%s on %s", j->ns, j->name, j->node);
    post_event(b, j->ns, j->name, j->uid, "Normal", "Preempted", j->message, NULL);
}

static void *worker(void *arg)
{
    sc_binder *b = arg;
    pthread_mutex_lock(&b->lock);
    for (;;) {
        while (!b->head && !b->stop)
            pthread_cond_wait(&b->cond, &b->lock);
        if (!b->head)
            break;
        job *j = b->head;
        b->head = j->next;
        if (!b->head)
            b->tail = NULL;
        b->running++;
        pthread_mutex_unlock(&b->lock);
        switch (j->kind) {
        case JOB_BIND_FAILED: bind_failed(b, j); break;
        case JOB_REPORT: do_report(b, j); break;
        case JOB_VICTIM: do_victim(b, j); break;
        }
        job_free(j);
        pthread_mutex_lock(&b->lock);
        b->running--;
        if (!b->head && !b->running)
            pthread_cond_broadcast(&b->idle);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

sc_binder *sc_binder_start(sc_sched *s, int workers)
{
    sc_binder *b = xcalloc(1, sizeof *b);
    b->s = s;
    pthread_mutex_init(&b->lock, NULL);
    pthread_mutex_init(&b->ev_lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    pthread_cond_init(&b->idle, NULL);
    b->events = sc_map_new();
    b->sender = ck_sender_new(s->client, SC_BIND_CONNS);
    b->nthreads = workers;
    b->threads = xcalloc((size_t)workers, sizeof(pthread_t));
    for (int i = 0; i < workers; i++)
        pthread_create(&b->threads[i], NULL, worker, b);
    return b;
}

void sc_binder_drain(sc_binder *b)
{
    ck_sender_drain(b->sender);
    pthread_mutex_lock(&b->lock);
    while (b->head || b->running)
        pthread_cond_wait(&b->idle, &b->lock);
    pthread_mutex_unlock(&b->lock);
}

void sc_binder_stop(sc_binder *b)
{
    if (!b)
        return;
    ck_sender_free(b->sender);   /* the bindings in flight are answered (failures queued) */
    pthread_mutex_lock(&b->lock);
    b->stop = true;
    /* queued jobs are dropped: a new leader redoes whatever is left */
    while (b->head) {
        job *j = b->head;
        b->head = j->next;
        job_free(j);
    }
    b->tail = NULL;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    for (int i = 0; i < b->nthreads; i++)
        pthread_join(b->threads[i], NULL);
    events_free(b->events);
    pthread_mutex_destroy(&b->lock);
    pthread_mutex_destroy(&b->ev_lock);
    pthread_cond_destroy(&b->cond);
    pthread_cond_destroy(&b->idle);
    free(b->threads);
    free(b);
}
