/* sched_bench.c - scheduler throughput and latency, measured from outside like upstream's
 * scheduler_perf: create N pods as fast as the API server accepts them (T client threads) and
 * watch until every one has spec.nodeName.  Prints pods bound per second from the first create to
 * the last bind, create rate, and per-pod latency (create sent -> binding seen) p50/p99/max.
 *
 *   sched_bench --kubeconfig F [--pods 10000] [--threads 8] [--namespace bench]
 *               [--anti-affinity-groups G]   (pods get app=gK, K = i % G, and required
 *                                              anti-affinity to their own group on hostname)
 *               [--scheduler-name S] [--phase both|create|bind]
 * --phase create only creates (for a scheduler that is not running yet); --phase bind only
 * watches, from its start, until the N pods bench-0..N-1 are bound (start that scheduler then):
 * this isolates the scheduler's own throughput from the API server's create rate.
 *
 * The client is lean so its CPU does not compete with what is measured: each create is a POST of
 * text printed from a template, sent through a ck_sender (client.h: --threads creates in flight
 * from one thread over as many kept-alive connections, the next one sent from the answer's
 * callback on that thread, so no other thread wakes per create),
 * its 2xx answer the acknowledgement (the created pod is not decoded), and the watch decodes only
 * each event's name and nodeName (client/jsonpick.h).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/client.h"
#include "lib/flags.h"
#include "lib/util.h"

typedef struct bench {
    ck_client *c;
    const char *ns, *scheduler;
    char *ns_json, *sched_json, *create_path;   /* JSON-quoted names; the pods collection */
    long pods, threads, groups;
    int64_t *created_ns, *bound_ns;
    long nbound;
    pthread_mutex_t lock;
    ck_cancel stop;
    long create_errors;
    long inflight;                /* chains of creates still sending; under lock */
    long next;                    /* the next pod to create (atomic) */
    pthread_cond_t answered;
} bench;

static const ck_resource *pods_res(void)
{
    return ck_resource_find("", "v1", "pods");
}

/* s as a JSON string literal (quoted, escaped); NULL if not UTF-8.  Caller frees. */
static char *json_quote(const char *s)
{
    json_t *q = json_string(s);
    char *out = q ? json_dumps(q, JSON_ENCODE_ANY) : NULL;
    json_decref(q);
    return out;
}

/* A pod's JSON text, printed from a template: a create costs the client what an HTTP POST costs,
 * not a tree built and printed per pod.  Returns snprintf's length. */
static int pod_text(const bench *b, long i, char *buf, size_t size)
{
    long g = b->groups ? i % b->groups : 0;
    char sched[300] = "", anti[300] = "";
    if (b->sched_json)
        snprintf(sched, sizeof sched, "\"schedulerName\":%s,", b->sched_json);
    if (b->groups)
        snprintf(anti, sizeof anti,
                 ",\"affinity\":{\"podAntiAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":"
                 "[{\"labelSelector\":{\"matchLabels\":{\"app\":\"g%ld\"}},"
                 "\"topologyKey\":\"kubernetes.io/hostname\"}]}}", g);
    return snprintf(buf, size,
                    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"bench-%ld\","
                    "\"namespace\":%s,\"labels\":{\"app\":\"g%ld\"}},\"spec\":{%s\"containers\":"
                    "[{\"name\":\"c\",\"image\":\"registry.k8s.io/pause:3.9\",\"resources\":"
                    "{\"requests\":{\"cpu\":\"10m\",\"memory\":\"50Mi\"}}}]%s}}",
                    i, b->ns_json, g, sched, anti);
}

typedef struct create_ctx {
    bench *b;
    ck_sender *snd;
    long i;
} create_ctx;

static void created(void *ctx, const ck_error *err);

/* Queue the next create, if any is left (b->next counts them out).  Returns whether one was. */
static bool send_next(bench *b, ck_sender *snd)
{
    for (;;) {
        long i = __atomic_fetch_add(&b->next, 1, __ATOMIC_RELAXED);
        if (i >= b->pods || ck_cancel_fired(&b->stop))
            return false;
        char *body = xmalloc(2048);
        int len = pod_text(b, i, body, 2048);
        if (len < 0 || len >= 2048) {
            fprintf(stderr, "create bench-%ld: pod text too long\n", i);
            free(body);
            __atomic_fetch_add(&b->create_errors, 1, __ATOMIC_RELAXED);
            continue;
        }
        create_ctx *c = xmalloc(sizeof *c);
        *c = (create_ctx){.b = b, .snd = snd, .i = i};
        b->created_ns[i] = ck_now_ns();
        ck_sender_send(snd, "POST", b->create_path, body, (size_t)len, NULL, created, c);
        return true;
    }
}

/* Each create is acknowledged by its 2xx answer; the created pod in it is not decoded (the
 * watch reports the binding).  The next create is sent from here, on the sender's thread: no
 * other thread wakes per create. */
static void created(void *ctx, const ck_error *err)
{
    create_ctx *c = ctx;
    bench *b = c->b;
    if (err) {
        fprintf(stderr, "create bench-%ld: %s\n", c->i, err->msg);
        __atomic_fetch_add(&b->create_errors, 1, __ATOMIC_RELAXED);
    }
    bool more = send_next(b, c->snd);
    free(c);
    if (!more) {
        pthread_mutex_lock(&b->lock);
        if (--b->inflight == 0)
            pthread_cond_signal(&b->answered);
        pthread_mutex_unlock(&b->lock);
    }
}

/* Keeps `threads` creates in flight until all are sent; returns when all are answered. */
static void create_all(bench *b)
{
    ck_sender *snd = ck_sender_new(b->c, (int)b->threads);
    pthread_mutex_lock(&b->lock);
    for (long k = 0; k < b->threads; k++) {
        b->inflight++;                 /* a chain of creates, each sending the next */
        if (!send_next(b, snd)) {
            b->inflight--;
            break;
        }
    }
    while (b->inflight > 0)
        pthread_cond_wait(&b->answered, &b->lock);
    pthread_mutex_unlock(&b->lock);
    ck_sender_drain(snd);
    ck_sender_free(snd);
}

/* What the watch decodes of each event (client/jsonpick.h): the name and the node. */
static const ck_jsonpick md_keep[] = {{"name", NULL}, {NULL, NULL}};
static const ck_jsonpick spec_keep[] = {{"nodeName", NULL}, {NULL, NULL}};
static const ck_jsonpick pod_keep[] = {{"metadata", md_keep}, {"spec", spec_keep}, {NULL, NULL}};
static const ck_jsonpick event_keep[] = {{"type", NULL}, {"object", pod_keep}, {NULL, NULL}};

static bool on_event(void *ctx, const char *type, json_t *obj)
{
    bench *b = ctx;
    const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
    const char *node = json_string_value(json_object_get(json_object_get(obj, "spec"), "nodeName"));
    if (!name || strncmp(name, "bench-", 6) || !node || !*node)
        return !ck_cancel_fired(&b->stop);
    long i = strtol(name + 6, NULL, 10);
    if (i < 0 || i >= b->pods)
        return !ck_cancel_fired(&b->stop);
    pthread_mutex_lock(&b->lock);
    if (!b->bound_ns[i]) {
        b->bound_ns[i] = ck_now_ns();
        b->nbound++;
    }
    bool more = b->nbound < b->pods && !ck_cancel_fired(&b->stop);
    pthread_mutex_unlock(&b->lock);
    return more;
}

typedef struct watch_arg {
    bench *b;
    char *path;
} watch_arg;

static void *watcher(void *arg)
{
    watch_arg *w = arg;
    ck_error *err = NULL;
    if (ck_client_watch_pick(w->b->c, w->path, event_keep, on_event, w->b,
                             &w->b->stop, &err) < 0) {
        fprintf(stderr, "watch: %s\n", err->msg);
        ck_error_free(err);
    }
    return NULL;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    char *kubeconfig = NULL, *ns = "bench", *scheduler = NULL, *phase = "both";
    long pods = 10000, threads = 8, groups = 0, timeout_s = 300;
    ck_flag flags[] = {
        {"kubeconfig", CK_FLAG_STRING, &kubeconfig, "kubeconfig of the cluster (required)"},
        {"pods", CK_FLAG_INT, &pods, "pods to create (default 10000)"},
        {"threads", CK_FLAG_INT, &threads, "creates in flight at once (default 8)"},
        {"namespace", CK_FLAG_STRING, &ns, "namespace (default bench; created if missing)"},
        {"anti-affinity-groups", CK_FLAG_INT, &groups, "pod anti-affinity groups (default 0 = none)"},
        {"timeout", CK_FLAG_INT, &timeout_s, "give up after this many seconds (default 300)"},
        {"scheduler-name", CK_FLAG_STRING, &scheduler, "spec.schedulerName of the pods"},
        {"phase", CK_FLAG_STRING, &phase, "both (default), create (no watch) or bind (no create)"},
    };
    ck_flags_parse("sched_bench", "scheduler throughput benchmark", argc, argv, flags, ARRAY_SIZE(flags));
    if (!kubeconfig || pods < 1 || threads < 1) {
        fprintf(stderr, "sched_bench: --kubeconfig required\n");
        return 2;
    }
    ck_error *err = NULL;
    ck_client *c = ck_client_from_file(kubeconfig, "sched-bench", &err);
    if (!c) {
        fprintf(stderr, "sched_bench: %s\n", err->msg);
        return 1;
    }
    json_t *nsobj = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Namespace",
                              "metadata", "name", ns);
    json_decref(ck_client_create(c, ck_resource_find("", "v1", "namespaces"), NULL, nsobj, NULL));
    json_decref(nsobj);

    bench b = {.c = c, .ns = ns, .scheduler = scheduler, .pods = pods, .threads = threads,
               .groups = groups};
    b.ns_json = json_quote(ns);
    b.sched_json = scheduler ? json_quote(scheduler) : NULL;
    if (!b.ns_json || strlen(b.ns_json) > 256 || (scheduler && (!b.sched_json || strlen(b.sched_json) > 256))) {
        fprintf(stderr, "sched_bench: --namespace and --scheduler-name: UTF-8, at most 250 bytes\n");
        return 2;
    }
    b.create_path = ck_client_path(pods_res(), ns, NULL, NULL);
    bool do_create = strcmp(phase, "bind") != 0, do_watch = strcmp(phase, "create") != 0;
    pthread_mutex_init(&b.lock, NULL);
    pthread_cond_init(&b.answered, NULL);
    ck_cancel_init(&b.stop);
    b.created_ns = xcalloc((size_t)pods, sizeof(int64_t));
    b.bound_ns = xcalloc((size_t)pods, sizeof(int64_t));

    /* watch from "now" so no bind is missed */
    cleanup_free char *lpath = xasprintf("/api/v1/namespaces/%s/pods?limit=1", ns);
    json_t *list = ck_client_request(c, "GET", lpath, NULL, NULL, &err);
    if (!list) {
        fprintf(stderr, "sched_bench: list: %s\n", err->msg);
        return 1;
    }
    watch_arg w = {.b = &b, .path = xasprintf("/api/v1/namespaces/%s/pods?watch=1&resourceVersion=%s",
                                              ns, json_string_value(json_object_get(json_object_get(list, "metadata"), "resourceVersion")))};
    json_decref(list);
    pthread_t wt;
    if (do_watch) {
        pthread_create(&wt, NULL, watcher, &w);
        usleep(200 * 1000);
    }

    int64_t t0 = ck_now_ns();
    if (do_create) {
        create_all(&b);
    } else {
        for (long i = 0; i < pods; i++)
            b.created_ns[i] = t0;        /* latency from the start of the watch */
    }
    int64_t t_created = ck_now_ns();
    if (!do_watch) {
        printf("created=%ld create_errors=%ld create_rate=%.0f pods/s\n", pods - b.create_errors,
               b.create_errors, (double)pods / ((double)(t_created - t0) / 1e9));
        return b.create_errors ? 1 : 0;
    }
    while (ck_now_ns() - t0 < timeout_s * 1000000000LL) {
        pthread_mutex_lock(&b.lock);
        long n = b.nbound;
        pthread_mutex_unlock(&b.lock);
        if (n >= pods - b.create_errors)
            break;
        usleep(20 * 1000);
    }
    ck_cancel_fire(&b.stop);
    pthread_join(wt, NULL);

    int64_t first = INT64_MAX, last = 0;
    int64_t *lat = xcalloc((size_t)pods, sizeof(int64_t));
    long nl = 0;
    for (long i = 0; i < pods; i++) {
        if (b.created_ns[i] && b.created_ns[i] < first)
            first = b.created_ns[i];
        if (b.bound_ns[i]) {
            if (b.bound_ns[i] > last)
                last = b.bound_ns[i];
            lat[nl++] = b.bound_ns[i] - b.created_ns[i];
        }
    }
    qsort(lat, (size_t)nl, sizeof *lat, cmp64);
    double span = (double)(last - first) / 1e9;
    printf("pods=%ld bound=%ld create_errors=%ld anti_affinity_groups=%ld\n", pods, nl,
           b.create_errors, groups);
    if (do_create)
        printf("create_rate=%.0f pods/s (%.2f s)\n", (double)pods / ((double)(t_created - t0) / 1e9),
           (double)(t_created - t0) / 1e9);
    printf("throughput=%.0f pods/s (%s -> last bind %.2f s)\n", span > 0 ? (double)nl / span : 0,
           do_create ? "first create" : "watch start", span);
    if (!do_create) {
        int64_t fb = INT64_MAX;
        for (long i = 0; i < pods; i++)
            if (b.bound_ns[i] && b.bound_ns[i] < fb)
                fb = b.bound_ns[i];
        if (nl > 1 && last > fb)
            printf("throughput_first_to_last_bind=%.0f pods/s (%.2f s)\n",
                   (double)(nl - 1) / ((double)(last - fb) / 1e9), (double)(last - fb) / 1e9);
    }
    if (nl)
        printf("latency_ms p50=%.1f p99=%.1f max=%.1f\n", (double)lat[nl / 2] / 1e6,
               (double)lat[(nl * 99) / 100 < nl ? (nl * 99) / 100 : nl - 1] / 1e6,
               (double)lat[nl - 1] / 1e6);
    free(lat);
    free(w.path);
    free(b.created_ns);
    free(b.bound_ns);
    free(b.ns_json);
    free(b.sched_json);
    free(b.create_path);
    ck_client_free(c);
    return nl == pods ? 0 : 1;
}
