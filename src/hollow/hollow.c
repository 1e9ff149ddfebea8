/* hollow.c - `ckube hollow-node --count N`: one process simulating N kubelets that run no
 * containers (upstream's kubemark), the scale-test tool for the scheduler, the controllers and the
 * API server.
 *
 * It registers N Nodes (capacity/allocatable from flags, Ready), renews one Lease per node in
 * kube-node-lease every 10 s (as kubelets do; paced over the period), watches all pods and, for
 * each pod bound to one of its nodes, reports it Running and Ready (a merge PATCH of pods/status,
 * as a kubelet would once containers started); a pod being deleted (deletionTimestamp set) is
 * finalized with a grace-0 delete.  Work goes through a rate-limited work queue served by a few worker threads,
 * so bursts of thousands of pods are absorbed and failed writes retried.  The two writes made
 * most, Lease renewals and status patches, go through senders (client.h: many in flight from
 * one thread each), so neither the pacing loop nor a worker waits on a round trip.
 */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/client.h"
#include "client/component.h"
#include "client/informer.h"
#include "client/leader.h"
#include "client/workqueue.h"
#include "commands.h"
#include "hollow/hollow.h"
#include "lib/flags.h"
#include "lib/log.h"
#include "lib/util.h"
#include "version.h"

#define HOLLOW_LEASE_PERIOD_MS 10000

typedef struct hollow {
    ck_client *client;
    char *prefix;
    long count;
    char *cpu, *memory, *pods, *storage;
    ck_informer *pods_inf, *nodes_inf;
    ck_workqueue *queue;
    ck_sender *lease_sender, *pod_sender;
    volatile bool stop;
} hollow;

/* Connections each sender keeps in flight. */
#define HOLLOW_SENDER_CONNS 8

static const ck_resource *res(const char *group, const char *resource)
{
    return ck_resource_find(group, "v1", resource);
}

static bool ours(hollow *h, const char *node)
{
    size_t n = strlen(h->prefix);
    return node && !strncmp(node, h->prefix, n) && node[n] >= '0' && node[n] <= '9';
}

static json_t *node_object(hollow *h, const char *name)
{
    char now[32];
    ck_rfc3339(ck_wall_ns() / 1000000000, now);
    json_t *cap = json_pack("{s:s, s:s, s:s, s:s}", "cpu", h->cpu, "memory", h->memory, "pods",
                            h->pods, "ephemeral-storage", h->storage);
    json_t *conds = json_array();
    static const char *pressures[] = {"MemoryPressure", "DiskPressure", "PIDPressure"};
    for (size_t i = 0; i < ARRAY_SIZE(pressures); i++)
        json_array_append_new(conds, json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:s}", "type", pressures[i], "status", "False", "reason",
            "KubeletHasSufficientResources", "message", "hollow node", "lastHeartbeatTime", now,
            "lastTransitionTime", now));
    json_array_append_new(conds, json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "Ready", "status", "True", "reason",
        "KubeletReady", "message", "hollow kubelet is posting ready status", "lastHeartbeatTime",
        now, "lastTransitionTime", now));
    return json_pack(
        "{s:s, s:s, s:{s:s, s:{s:s, s:s, s:s, s:s}}, s:{},"
        " s:{s:o, s:o, s:o, s:[{s:s, s:s}], s:{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}}}",
        "apiVersion", "v1", "kind", "Node",
        "metadata", "name", name, "labels", "kubernetes.io/hostname", name, "kubernetes.io/os",
        "linux", "kubernetes.io/arch", "amd64", "ckube.io/hollow", "true",
        "spec",
        "status", "capacity", cap, "allocatable", json_deep_copy(cap), "conditions", conds,
        "addresses", "type", "Hostname", "address", name,
        "nodeInfo", "kubeletVersion", CK_KUBE_GIT_VERSION, "kubeProxyVersion", CK_KUBE_GIT_VERSION,
        "operatingSystem", "linux", "architecture", "amd64", "containerRuntimeVersion",
        "hollow://0", "osImage", "hollow", "kernelVersion", "hollow", "machineID", name);
}

/* Create the node (or take over an existing one) and make its status Ready. */
static int register_node(hollow *h, const char *name, ck_error **err)
{
    const ck_resource *nodes = res("", "nodes");
    json_t *want = node_object(h, name);
    json_t *got = ck_client_create(h->client, nodes, NULL, want, err);
    if (!got && (*err)->code == CK_E_EXISTS) {
        ck_error_free(*err);
        *err = NULL;
        got = ck_client_get(h->client, nodes, NULL, name, err);
    }
    if (!got) {
        json_decref(want);
        return -1;
    }
    /* Creation may drop status (as for most kinds); set it through the status subresource. */
    json_object_set(got, "status", json_object_get(want, "status"));
    json_t *upd = ck_client_update_status(h->client, nodes, NULL, got, err);
    json_decref(want);
    json_decref(got);
    if (!upd)
        return -1;
    json_decref(upd);
    return 0;
}

/* s as a JSON string (quoted, escaped) appended to b: as is when nothing needs escaping (names,
 * images), through jansson otherwise.  -1 when over b's limit. */
static int add_json_string(ck_buf *b, const char *s)
{
    const char *p = s;
    while (*p && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
        p++;
    if (!*p)
        return ck_buf_add(b, "\"", 1) < 0 || ck_buf_addstr(b, s) < 0 || ck_buf_add(b, "\"", 1) < 0
                   ? -1 : 0;
    json_t *v = json_string(s);
    cleanup_free char *text = v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    return ck_buf_addstr(b, text ? text : "\"\"");
}

/* The Lease of node `name` as JSON text, for a create (first renewal) or a merge patch of its
 * spec (every renewal after): printed from a template, no tree built and printed each time. */
static char *lease_text(const char *name, bool create, size_t *len)
{
    char now[48];
    ck_micro_time(ck_wall_ns(), now);
    ck_buf t;
    ck_buf_init(&t, 0);
    if (create) {
        ck_buf_addstr(&t, "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\","
                          "\"metadata\":{\"name\":");
        add_json_string(&t, name);
        ck_buf_addstr(&t, ",\"namespace\":\"kube-node-lease\"},");
    } else {
        ck_buf_addstr(&t, "{");
    }
    ck_buf_addstr(&t, "\"spec\":{\"holderIdentity\":");
    add_json_string(&t, name);
    ck_buf_printf(&t, ",\"leaseDurationSeconds\":40,\"renewTime\":\"%s\"}}", now);
    *len = t.len;
    return ck_buf_steal(&t);
}

typedef struct lease_job {
    hollow *h;
    bool create;
    char name[];
} lease_job;

static void lease_send(hollow *h, const char *name, bool create);

/* The sender's answer to a renewal (its thread): a Lease that does not exist yet (the first
 * round, or deleted by someone) is created, also through the sender. */
static void lease_done(void *ctx, const ck_error *err)
{
    lease_job *j = ctx;
    if (err && !j->create && err->code == CK_E_NOT_FOUND && !j->h->stop)
        lease_send(j->h, j->name, true);
    else if (err && !(j->create && err->code == CK_E_EXISTS))
        log_warn("lease %s: %s", j->name, err->msg);
    free(j);
}

static void lease_send(hollow *h, const char *name, bool create)
{
    const ck_resource *leases = res("coordination.k8s.io", "leases");
    size_t nlen = strlen(name), len;
    lease_job *j = xmalloc(sizeof *j + nlen + 1);
    j->h = h;
    j->create = create;
    memcpy(j->name, name, nlen + 1);
    char *body = lease_text(name, create, &len);
    /* the answer (the whole Lease) is not read, so it is not decoded either */
    cleanup_free char *path = ck_client_path(leases, "kube-node-lease", create ? NULL : name, NULL);
    ck_sender_send(h->lease_sender, create ? "POST" : "PATCH", path, body, len,
                   create ? NULL : "application/merge-patch+json", lease_done, j);
}

static bool pod_ready(const json_t *pod);
static int report_running(hollow *h, const char *key, const json_t *pod, bool queued);

bool ck_hollow_pod_needs_sync(const json_t *pod)
{
    if (json_object_get(json_object_get(pod, "metadata"), "deletionTimestamp"))
        return true;                       /* to finalize */
    const char *phase = json_string_value(json_object_get(json_object_get(pod, "status"), "phase"));
    if (phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed")))
        return false;                      /* final */
    return !phase || strcmp(phase, "Running") || !pod_ready(pod);
}

static void enqueue_pod(void *ctx, json_t *pod)
{
    hollow *h = ctx;
    const char *node = json_string_value(json_object_get(json_object_get(pod, "spec"), "nodeName"));
    /* our own report coming back (Running and Ready) needs nothing: not queued, so no worker
     * wakes for a third of all pod events */
    if (!ours(h, node) || !ck_hollow_pod_needs_sync(pod))
        return;
    char *key = ck_informer_key(pod);
    /* a status report is queued to the sender from here (its answer comes to report_done):
     * no worker thread woken per pod; deletes (blocking) and retries go through the queue */
    if (json_object_get(json_object_get(pod, "metadata"), "deletionTimestamp") ||
        report_running(h, key, pod, false) < 0)
        ck_workqueue_add(h->queue, key);
    free(key);
}

static void on_pod_update(void *ctx, json_t *old_pod, json_t *pod)
{
    enqueue_pod(ctx, pod);
}

/* What the informers decode (client/jsonpick.h): what sync_pod, running_status and node_ready
 * read; the rest of every watched pod (managedFields, resources, volumes ...) stays text. */
static const ck_jsonpick pod_md_keep[] = {
    {"name", NULL}, {"namespace", NULL}, {"uid", NULL}, {"resourceVersion", NULL},
    {"deletionTimestamp", NULL}, {NULL, NULL}};
static const ck_jsonpick container_keep[] = {{"name", NULL}, {"image", NULL}, {NULL, NULL}};
static const ck_jsonpick pod_spec_keep[] = {
    {"nodeName", NULL}, {"containers", container_keep}, {NULL, NULL}};
static const ck_jsonpick cond_keep[] = {{"type", NULL}, {"status", NULL}, {NULL, NULL}};
static const ck_jsonpick pod_status_keep[] = {
    {"phase", NULL}, {"conditions", cond_keep}, {NULL, NULL}};
static const ck_jsonpick pod_keep[] = {
    {"metadata", pod_md_keep}, {"spec", pod_spec_keep}, {"status", pod_status_keep},
    {NULL, NULL}};
static const ck_jsonpick node_md_keep[] = {
    {"name", NULL}, {"resourceVersion", NULL}, {NULL, NULL}};
static const ck_jsonpick node_status_keep[] = {{"conditions", cond_keep}, {NULL, NULL}};
static const ck_jsonpick node_keep[] = {
    {"metadata", node_md_keep}, {"status", node_status_keep}, {NULL, NULL}};

/* The merge patch {"status": ...} that reports pod Running and Ready with every container
 * started, as text into out (a template: no tree built and printed per pod).  -1 when over
 * out's limit. */
static int running_patch(const json_t *pod, ck_buf *out)
{
    char now[32];
    ck_rfc3339(ck_wall_ns() / 1000000000, now);
    int rc = ck_buf_addstr(out, "{\"status\":{\"phase\":\"Running\",\"conditions\":[");
    static const char *types[] = {"PodScheduled", "Initialized", "ContainersReady", "Ready"};
    for (size_t k = 0; k < ARRAY_SIZE(types); k++)
        rc |= ck_buf_printf(out, "%s{\"type\":\"%s\",\"status\":\"True\",\"lastTransitionTime\":\"%s\"}",
                            k ? "," : "", types[k], now);
    rc |= ck_buf_addstr(out, "],\"containerStatuses\":[");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(json_object_get(pod, "spec"), "containers"), i, c) {
        const char *name = json_string_value(json_object_get(c, "name")) ?: "";
        const char *image = json_string_value(json_object_get(c, "image")) ?: "";
        rc |= ck_buf_addstr(out, i ? ",{\"name\":" : "{\"name\":");
        rc |= add_json_string(out, name);
        rc |= ck_buf_addstr(out, ",\"ready\":true,\"started\":true,\"restartCount\":0,\"image\":");
        rc |= add_json_string(out, image);
        rc |= ck_buf_addstr(out, ",\"imageID\":");
        rc |= add_json_string(out, image);
        rc |= ck_buf_printf(out, ",\"containerID\":\"hollow://0\",\"state\":{\"running\":"
                            "{\"startedAt\":\"%s\"}}}", now);
    }
    rc |= ck_buf_printf(out, "],\"hostIP\":\"127.0.0.1\",\"podIP\":\"127.0.0.1\",\"startTime\":\"%s\","
                        "\"qosClass\":\"BestEffort\"}}", now);
    return rc < 0 ? -1 : 0;
}

static bool pod_ready(const json_t *pod)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(json_object_get(pod, "status"), "conditions"), i, c)
        if (!strcmp(json_string_value(json_object_get(c, "type")) ?: "", "Ready"))
            return !strcmp(json_string_value(json_object_get(c, "status")) ?: "", "True");
    return false;
}

typedef struct status_job {
    hollow *h;
    bool queued;                /* the key is in process in the queue (a worker sent it) */
    char key[];
} status_job;

/* The sender's answer to a status patch (its thread).  A queued key's processing ends here; a
 * report sent straight from the informer is retried through the queue when it failed. */
static void status_done(void *ctx, const ck_error *err)
{
    status_job *j = ctx;
    hollow *h = j->h;
    const char *key = j->key;
    bool ok = !err || err->code == CK_E_NOT_FOUND;
    if (!ok && err->code != CK_E_CONFLICT)
        log_warn("pod %s: %s", key, err->msg);
    if (j->queued) {
        if (ok)
            ck_workqueue_forget(h->queue, key);
        else
            ck_workqueue_add_rate_limited(h->queue, key);
        ck_workqueue_done(h->queue, key);
    } else if (!ok && !h->stop) {
        ck_workqueue_add_rate_limited(h->queue, key);
    }
    free(j);
}

/* Queue the Running+Ready status patch of pod (key "ns/name") to the pod sender: 1 when sent
 * (status_done finishes it), -1 with *err when the patch cannot be built. */
static int report_running(hollow *h, const char *key, const json_t *pod, bool queued)
{
    const ck_resource *pods = res("", "pods");
    const char *slash = strchr(key, '/');
    if (!slash)
        return -1;
    /* a merge patch of the status alone, as a kubelet patches pods/status: the request carries
     * ~1 KB instead of the whole pod, and neither side copies or prints it */
    ck_buf patch;
    ck_buf_init(&patch, 1024 * 1024);
    if (running_patch(pod, &patch) < 0) {
        ck_buf_free(&patch);
        return -1;
    }
    cleanup_free char *ns = xstrndup(key, (size_t)(slash - key));
    cleanup_free char *path = ck_client_path(pods, ns, slash + 1, "status");
    /* the answer (the whole pod) is not read, so it is not decoded either */
    size_t len = patch.len, klen = strlen(key);
    status_job *j = xmalloc(sizeof *j + klen + 1);
    j->h = h;
    j->queued = queued;
    memcpy(j->key, key, klen + 1);
    ck_sender_send(h->pod_sender, "PATCH", path, ck_buf_steal(&patch), len,
                   "application/merge-patch+json", status_done, j);
    return 1;
}

/* Bring one pod to where a kubelet would: Running+Ready, or gone if being deleted.  A Running
 * pod marked not ready by someone else (the node lifecycle controller, when our lease renewals
 * came late) is reported Ready again, as a kubelet's status sync would. */
static int sync_pod(hollow *h, const char *key, ck_error **err)
{
    const ck_resource *pods = res("", "pods");
    char *slash = strchr(key, '/');
    if (!slash)
        return 0;
    cleanup_free char *ns = xstrndup(key, (size_t)(slash - key));
    const char *name = slash + 1;
    json_t *pod = ck_informer_get(h->pods_inf, ns, name);
    if (!pod)
        return 0;
    json_t *md = json_object_get(pod, "metadata");
    int rc = 0;
    if (json_object_get(md, "deletionTimestamp")) {
        json_t *opts = json_pack("{s:s, s:s, s:i, s:{s:s}}", "kind", "DeleteOptions", "apiVersion",
                                 "v1", "gracePeriodSeconds", 0, "preconditions", "uid",
                                 json_string_value(json_object_get(md, "uid")));
        rc = ck_client_delete(h->client, pods, ns, name, opts, err);
        if (rc < 0 && (*err)->code == CK_E_NOT_FOUND) {
            ck_error_free(*err);
            *err = NULL;
            rc = 0;
        }
        json_decref(opts);
    } else if (ck_hollow_pod_needs_sync(pod)) {
        rc = report_running(h, key, pod, true);
        if (rc < 0)
            ck_error_set(err, CK_E_INVALID, "pod %s: status patch over 1 MB", key);
    }
    json_decref(pod);
    return rc;
}

static void *pod_worker(void *arg)
{
    hollow *h = arg;
    char *key;
    while ((key = ck_workqueue_get(h->queue))) {
        ck_error *err = NULL;
        int rc = sync_pod(h, key, &err);
        if (rc > 0) {            /* a status patch in the sender: status_done finishes it */
            free(key);
            continue;
        }
        if (rc == 0) {
            ck_workqueue_forget(h->queue, key);
        } else {
            if (err->code != CK_E_CONFLICT)
                log_warn("pod %s: %s", key, err->msg);
            ck_error_free(err);
            ck_workqueue_add_rate_limited(h->queue, key);
        }
        ck_workqueue_done(h->queue, key);
        free(key);
    }
    return NULL;
}

/* Whether our cached copy of the node says Ready=True (true when not cached yet). */
static bool node_ready(hollow *h, const char *name)
{
    json_t *node = ck_informer_get(h->nodes_inf, NULL, name);
    if (!node)
        return true;
    bool ready = false;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(json_object_get(node, "status"), "conditions"), i, c)
        if (!strcmp(json_string_value(json_object_get(c, "type")) ?: "", "Ready"))
            ready = !strcmp(json_string_value(json_object_get(c, "status")) ?: "", "True");
    json_decref(node);
    return ready;
}

/* Lease renewals are paced over the period (node i due at i/N of it), as thousands of real
 * kubelets spread over time; each is queued to the lease sender, so a slow answer under load
 * delays no renewal behind it (a serialized loop of blocking renewals fell behind exactly when
 * the API server was busiest, quietly lightening its load).  The loop wakes every few ms and
 * queues what is due. */
#define HOLLOW_LEASE_TICK_MS 5

static void lease_loop(hollow *h)
{
    while (!h->stop) {
        int64_t start = ck_now_ns();
        for (long i = 0; i < h->count && !h->stop; i++) {
            /* pace: the whole set in one period */
            int64_t due = start + (int64_t)HOLLOW_LEASE_PERIOD_MS * 1000000 * i / h->count;
            while (!h->stop && due - ck_now_ns() > 0)
                usleep(HOLLOW_LEASE_TICK_MS * 1000);
            char name[256];
            snprintf(name, sizeof name, "%s%ld", h->prefix, i);
            lease_send(h, name, false);
            /* As a kubelet does: when the stored status is not what we report (the node
             * controller marked us Unknown while we were away), post it again. */
            ck_error *err = NULL;
            if (!node_ready(h, name) && register_node(h, name, &err) < 0) {
                log_warn("node status %s: %s", name, err->msg);
                ck_error_free(err);
            }
        }
        while (!h->stop && ck_now_ns() - start < (int64_t)HOLLOW_LEASE_PERIOD_MS * 1000000)
            usleep(50 * 1000);
    }
}

/* Registers every node, then renews every lease each period (lease_loop). */
static void *node_loop(void *arg)
{
    hollow *h = arg;
    for (long i = 0; i < h->count && !h->stop; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s%ld", h->prefix, i);
        ck_error *err = NULL;
        while (!h->stop && register_node(h, name, &err) < 0) {
            log_warn("register node %s: %s", name, err->msg);
            ck_error_free(err);
            err = NULL;
            usleep(500 * 1000);
        }
    }
    log_info("registered %ld hollow nodes", h->count);
    lease_loop(h);
    return NULL;
}

int cmd_hollow_node(int argc, char **argv)
{
    char *kubeconfig = NULL, *prefix = "hollow-node-", *cpu = "4", *memory = "32Gi",
         *pods = "110", *storage = "100Gi";
    long count = 1, workers = 2;
    ck_flag flags[] = {
        {"kubeconfig", CK_FLAG_STRING, &kubeconfig, "Path to a kubeconfig for the API server (required)"},
        {"count", CK_FLAG_INT, &count, "Number of nodes to simulate (default 1)"},
        {"name-prefix", CK_FLAG_STRING, &prefix, "Node names are <prefix><index> (default hollow-node-)"},
        {"cpu", CK_FLAG_STRING, &cpu, "CPU capacity of each node (default 4)"},
        {"memory", CK_FLAG_STRING, &memory, "Memory capacity of each node (default 32Gi)"},
        {"max-pods", CK_FLAG_STRING, &pods, "Pod capacity of each node (default 110)"},
        {"ephemeral-storage", CK_FLAG_STRING, &storage, "Ephemeral storage of each node (default 100Gi)"},
        {"workers", CK_FLAG_INT, &workers, "Pod status workers (default 2)"},
    };
    const char *summary = "Simulate N kubelets that run no containers (for scale tests)";
    int npos = ck_flags_parse("hollow-node", summary, argc, argv, flags, ARRAY_SIZE(flags));
    if (ck_component_check_args(npos, argv, kubeconfig) < 0)
        return 2;
    if (count < 1 || count > 100000 || workers < 1 || workers > 256) {
        fprintf(stderr, "Error: --count must be 1..100000 and --workers 1..256\n");
        return 2;
    }
    if (!ck_flags_check_quantity("hollow-node", "cpu", cpu) ||
        !ck_flags_check_quantity("hollow-node", "memory", memory) ||
        !ck_flags_check_quantity("hollow-node", "max-pods", pods) ||
        !ck_flags_check_quantity("hollow-node", "ephemeral-storage", storage))
        return 2;
    ck_log_init("hollow-node", CK_LOG_INFO);
    ck_client *client = ck_component_client(kubeconfig, "ckube-hollow-node/" CK_VERSION);
    if (!client)
        return 2;
    hollow h = {.client = client, .prefix = prefix, .count = count, .cpu = cpu, .memory = memory,
                .pods = pods, .storage = storage};
    h.queue = ck_workqueue_new();
    h.lease_sender = ck_sender_new(client, HOLLOW_SENDER_CONNS);
    h.pod_sender = ck_sender_new(client, HOLLOW_SENDER_CONNS);
    ck_informer_handlers handlers = {.on_add = enqueue_pod, .on_update = on_pod_update};
    /* every pod, not fieldSelector spec.nodeName!= (as a kubelet watches its node's): the API
     * server serves an unfiltered watch from the stored bytes, a filtered one decodes each
     * event's objects to match them, which cost it more than it saved us (docs/scheduler.md) */
    h.pods_inf = ck_informer_new(client, res("", "pods"), NULL, NULL, NULL, &handlers, &h);
    h.nodes_inf = ck_informer_new(client, res("", "nodes"), NULL, NULL, NULL, NULL, NULL);
    ck_informer_set_keep(h.pods_inf, pod_keep);
    ck_informer_set_keep(h.nodes_inf, node_keep);

    /* Threads inherit a mask blocking the stop signals; main waits for them with sigwait. */
    sigset_t stop_signals;
    ck_component_block_signals(&stop_signals, NULL);

    pthread_t nodes_thread, *worker_threads = xcalloc((size_t)workers, sizeof(pthread_t));
    pthread_create(&nodes_thread, NULL, node_loop, &h);
    ck_informer_start(h.pods_inf);
    ck_informer_start(h.nodes_inf);
    for (long i = 0; i < workers; i++)
        pthread_create(&worker_threads[i], NULL, pod_worker, &h);
    int sig = 0;
    sigwait(&stop_signals, &sig);
    log_info("stopping on signal %d", sig);
    h.stop = true;
    ck_workqueue_shutdown(h.queue);
    for (long i = 0; i < workers; i++)
        pthread_join(worker_threads[i], NULL);
    pthread_join(nodes_thread, NULL);
    ck_sender_free(h.lease_sender);
    ck_sender_free(h.pod_sender);      /* its callbacks touch the queue: before it goes */
    ck_informer_free(h.pods_inf);
    ck_informer_free(h.nodes_inf);
    ck_workqueue_free(h.queue);
    ck_client_free(client);
    free(worker_threads);
    return 0;
}
