/* scheduler.c - `ckube scheduler --kubeconfig F`: watch pods without a node, place each on a node
 * that fits, bind it; say why when none fits.  Talks to the API server only through its public
 * API, so it could run against any Kubernetes API server.
 *
 * Threads: four informers (pods, nodes, priorityclasses, poddisruptionbudgets) feed the cache
 * and the queue; one
 * scheduling thread runs cycles back to back (the cache lock is held for a cycle); binding workers
 * make the API writes.  With --leader-elect (the default) the informers start at once (a warm
 * standby) but scheduling starts only once this replica holds the Lease; losing it ends the
 * process (exit 1), as upstream, so its supervisor restarts it as a standby.
 */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/component.h"
#include "client/leader.h"
#include "commands.h"
#include "lib/alloc.h"
#include "lib/flags.h"
#include "lib/log.h"
#include "lib/util.h"
#include "scheduler/sched.h"
#include "version.h"

static const ck_resource *res(const char *group, const char *resource)
{
    return ck_resource_find(group, "v1", resource);
}

int sc_sched_priority(void *ctx, const char *class_name, int32_t *value, bool *never)
{
    sc_sched *s = ctx;
    json_t *pc = NULL;
    if (class_name) {
        pc = ck_informer_get(s->classes_inf, NULL, class_name);
    } else {
        json_t *all = ck_informer_list(s->classes_inf);
        size_t i;
        json_t *c;
        json_array_foreach(all, i, c)
            if (json_is_true(json_object_get(c, "globalDefault")))
                pc = json_incref(c);
        json_decref(all);
    }
    if (!pc)
        return -1;
    *value = (int32_t)json_integer_value(json_object_get(pc, "value"));
    const char *pp = json_string_value(json_object_get(pc, "preemptionPolicy"));
    *never = pp && !strcmp(pp, "Never");
    json_decref(pc);
    return 0;
}

/* ---- informer transforms: keep only what the scheduler reads (memory at 10,000s of pods) ---- */

static void keep_only(json_t *obj, const char *const *keys, size_t n)
{
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(obj, tmp, k, v) {
        bool keep = false;
        for (size_t i = 0; i < n && !keep; i++)
            keep = !strcmp(k, keys[i]);
        if (!keep)
            json_object_del(obj, k);
    }
}

static void trim_pod(void *ctx, json_t *pod)
{
    static const char *const md_keys[] = {"name", "namespace", "uid", "labels", "resourceVersion",
                                          "deletionTimestamp"};
    static const char *const c_keys[] = {"name", "resources", "ports", "restartPolicy"};
    static const char *const st_keys[] = {"phase", "conditions", "nominatedNodeName"};
    keep_only(json_object_get(pod, "metadata"), md_keys, ARRAY_SIZE(md_keys));
    static const char *const spec_keys[] = {
        "nodeName", "schedulerName", "priority", "priorityClassName", "preemptionPolicy",
        "containers", "initContainers", "overhead", "tolerations", "nodeSelector", "affinity",
        "topologySpreadConstraints"};
    json_t *spec = json_object_get(pod, "spec");
    keep_only(spec, spec_keys, ARRAY_SIZE(spec_keys));
    static const char *const lists[] = {"containers", "initContainers"};
    for (size_t l = 0; l < ARRAY_SIZE(lists); l++) {
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(spec, lists[l]), i, c)
            keep_only(c, c_keys, ARRAY_SIZE(c_keys));
    }
    json_t *status = json_object_get(pod, "status");
    const char *node = json_string_value(json_object_get(spec, "nodeName"));
    if (node && *node)      /* placed pods: only the phase matters */
        keep_only(status, st_keys, 1);
    else
        keep_only(status, st_keys, ARRAY_SIZE(st_keys));
}

static void trim_node(void *ctx, json_t *node)
{
    static const char *const md_keys[] = {"name", "uid", "labels", "resourceVersion"};
    static const char *const st_keys[] = {"allocatable", "capacity", "conditions"};
    keep_only(json_object_get(node, "metadata"), md_keys, ARRAY_SIZE(md_keys));
    json_t *status = json_object_get(node, "status");
    keep_only(status, st_keys, ARRAY_SIZE(st_keys));
    if (json_object_get(status, "allocatable"))
        json_object_del(status, "capacity");
    /* of the conditions only Ready's status is read; heartbeat times would only cost memory */
    json_t *ready = NULL;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(status, "conditions"), i, c) {
        const char *type = json_string_value(json_object_get(c, "type"));
        if (type && !strcmp(type, "Ready"))
            ready = json_pack("[{s:s, s:O}]", "type", "Ready", "status", json_object_get(c, "status"));
    }
    if (ready)
        json_object_set_new(status, "conditions", ready);
    else
        json_object_del(status, "conditions");
}

/* What the informers decode at all (client/jsonpick.h): the same fields the trims keep, so the
 * rest of each watched object (managedFields, env, images, volumes, node images ...) is
 * skipped as text and never becomes a tree.  The trims stay: they also cut placed pods' status. */
static const ck_jsonpick pod_md_keep[] = {
    {"name", NULL}, {"namespace", NULL}, {"uid", NULL}, {"labels", NULL},
    {"resourceVersion", NULL}, {"deletionTimestamp", NULL}, {NULL, NULL}};
static const ck_jsonpick container_keep[] = {
    {"name", NULL}, {"resources", NULL}, {"ports", NULL}, {"restartPolicy", NULL}, {NULL, NULL}};
static const ck_jsonpick pod_spec_keep[] = {
    {"nodeName", NULL}, {"schedulerName", NULL}, {"priority", NULL}, {"priorityClassName", NULL},
    {"preemptionPolicy", NULL}, {"containers", container_keep},
    {"initContainers", container_keep}, {"overhead", NULL}, {"tolerations", NULL},
    {"nodeSelector", NULL}, {"affinity", NULL}, {"topologySpreadConstraints", NULL},
    {NULL, NULL}};
static const ck_jsonpick pod_status_keep[] = {
    {"phase", NULL}, {"conditions", NULL}, {"nominatedNodeName", NULL}, {NULL, NULL}};
static const ck_jsonpick pod_keep[] = {
    {"apiVersion", NULL}, {"kind", NULL}, {"metadata", pod_md_keep}, {"spec", pod_spec_keep},
    {"status", pod_status_keep}, {NULL, NULL}};
/* The first look at a pod update (ck_informer_set_light): what sc_sched_placed_unchanged reads.
 * Two pod events in three (our binding coming back, the kubelet's status report) end there. */
static const ck_jsonpick light_md_keep[] = {
    {"name", NULL}, {"namespace", NULL}, {"uid", NULL}, {"labels", NULL},
    {"resourceVersion", NULL}, {"deletionTimestamp", NULL}, {NULL, NULL}};
static const ck_jsonpick light_spec_keep[] = {{"nodeName", NULL}, {NULL, NULL}};
static const ck_jsonpick light_status_keep[] = {{"phase", NULL}, {NULL, NULL}};
static const ck_jsonpick pod_light_keep[] = {
    {"metadata", light_md_keep}, {"spec", light_spec_keep}, {"status", light_status_keep},
    {NULL, NULL}};
static const ck_jsonpick node_md_keep[] = {
    {"name", NULL}, {"uid", NULL}, {"labels", NULL}, {"resourceVersion", NULL}, {NULL, NULL}};
static const ck_jsonpick node_cond_keep[] = {{"type", NULL}, {"status", NULL}, {NULL, NULL}};
static const ck_jsonpick node_status_keep[] = {
    {"allocatable", NULL}, {"capacity", NULL}, {"conditions", node_cond_keep}, {NULL, NULL}};
static const ck_jsonpick node_keep[] = {
    {"apiVersion", NULL}, {"kind", NULL}, {"metadata", node_md_keep}, {"spec", NULL},
    {"status", node_status_keep}, {NULL, NULL}};

/* ---- informer handlers ---- */

/* sched.h: the kubelet's status reports (a third of all pod events) and our own bindings
 * coming back (another third) are not compiled again. */
bool sc_sched_placed_unchanged(sc_sched *s, const json_t *obj)
{
    json_t *md = json_object_get(obj, "metadata"), *spec = json_object_get(obj, "spec");
    const char *node = json_string_value(json_object_get(spec, "nodeName"));
    const char *phase = json_string_value(json_object_get(json_object_get(obj, "status"), "phase"));
    if (!node || !*node || json_object_get(md, "deletionTimestamp") ||
        (phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed"))))
        return false;
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    const char *name = json_string_value(json_object_get(md, "name"));
    const char *uid = json_string_value(json_object_get(md, "uid"));
    if (!name)
        return false;
    char key[512];
    if (snprintf(key, sizeof key, "%s/%s", ns ? ns : "default", name) >= (int)sizeof key)
        return false;
    json_t *labels = json_object_get(md, "labels");
    pthread_mutex_lock(&s->lock);
    sc_pod *old = sc_cache_pod(&s->cache, key);
    bool same = old && old->node && !strcmp(old->node, node) &&
                json_equal(old->labels ? old->labels : json_null(), labels ? labels : json_null());
    bool confirm = same && old->assumed;
    if (confirm && (!uid || !old->uid || strcmp(uid, old->uid)))
        same = confirm = false;
    if (confirm) {
        old->assumed = false;
        sc_cache_unnominate(&s->cache, key);
        s->confirmed++;
    }
    pthread_mutex_unlock(&s->lock);
    if (confirm) {
        sc_queue_delete(s->queue, key);
    }
    return same;
}

static void pod_changed(sc_sched *s, json_t *obj, bool is_new)
{
    if (!is_new && sc_sched_placed_unchanged(s, obj))
        return;
    ck_error *err = NULL;
    sc_pod *p = sc_pod_new(obj, &err);
    if (!p) {
        log_warn("ignoring pod: %s", err->msg);
        ck_error_free(err);
        return;
    }
    if (p->node) {
        sc_queue_delete(s->queue, p->key);
        pthread_mutex_lock(&s->lock);
        sc_cache_unnominate(&s->cache, p->key);       /* bound (by us or anyone) */
        sc_pod *old = sc_cache_pod(&s->cache, p->key);
        bool fresh = !old;
        /* an update of a placed pod matters to others only if its labels changed */
        bool relabeled = old && !old->assumed && !json_equal(old->labels ? old->labels : json_null(),
                                                             p->labels ? p->labels : json_null());
        if (p->terminal)
            sc_cache_pod_del(&s->cache, p->key);
        else
            sc_cache_pod_set(&s->cache, p);
        pthread_mutex_unlock(&s->lock);
        if (p->terminal) {
            sc_pod_free(p);
            sc_queue_move(s->queue, SC_EV_POD_DELETE);
        } else if (fresh) {
            sc_queue_move(s->queue, SC_EV_POD_ADD);
        } else if (relabeled) {
            sc_queue_move(s->queue, SC_EV_POD_DELETE | SC_EV_POD_ADD);
        }
        return;
    }
    if (strcmp(p->scheduler_name, s->name) || p->terminating || p->terminal) {
        sc_queue_delete(s->queue, p->key);
        pthread_mutex_lock(&s->lock);
        sc_cache_unnominate(&s->cache, p->key);
        pthread_mutex_unlock(&s->lock);
        sc_pod_free(p);
        return;
    }
    pthread_mutex_lock(&s->lock);
    sc_pod *cp = sc_cache_pod(&s->cache, p->key);
    bool assumed = cp && cp->assumed;
    pthread_mutex_unlock(&s->lock);
    if (assumed) {                 /* our binding is in flight */
        sc_pod_free(p);
        return;
    }
    (void)is_new;
    sc_pod_resolve_priority(p, sc_sched_priority, s);
    /* a nomination made by a previous leader (or us) holds the room on that node; an update
     * without one does not clear ours: our status write may simply not have landed yet */
    const char *nom = json_string_value(json_object_get(json_object_get(p->obj, "status"),
                                                        "nominatedNodeName"));
    if (nom && *nom) {
        pthread_mutex_lock(&s->lock);
        sc_cache_nominate(&s->cache, p, nom);
        pthread_mutex_unlock(&s->lock);
    }
    /* compact forms are for memory when many pods wait (a start with thousands pending); a pod
     * that will be scheduled within a few cycles keeps its tree: printing it was a twentieth
     * of the scheduler's CPU in a burst */
    int active = 0, backoff = 0, unsched = 0;
    sc_queue_stats(s->queue, &active, &backoff, &unsched);
    if (active + backoff + unsched >= SC_COMPACT_QUEUED)
        sc_pod_compact(p);
    sc_queue_add(s->queue, p);
}

static bool consume_pod_update(void *ctx, json_t *light)
{
    return sc_sched_placed_unchanged(ctx, light);
}

static void on_pod_add(void *ctx, json_t *obj)
{
    pod_changed(ctx, obj, true);
}

static void on_pod_update(void *ctx, json_t *old_obj, json_t *obj)
{
    pod_changed(ctx, obj, false);
}

static void on_pod_delete(void *ctx, json_t *obj)
{
    sc_sched *s = ctx;
    char *key = ck_informer_key(obj);
    sc_queue_delete(s->queue, key);
    pthread_mutex_lock(&s->lock);
    bool had = sc_cache_pod(&s->cache, key) != NULL ||
               sc_cache_nominated_node(&s->cache, key) != NULL;   /* its reservation goes too */
    sc_cache_pod_del(&s->cache, key);
    sc_cache_unnominate(&s->cache, key);
    pthread_mutex_unlock(&s->lock);
    if (had)
        sc_queue_move(s->queue, SC_EV_POD_DELETE);
    free(key);
}

static void on_node_add(void *ctx, json_t *obj)
{
    sc_sched *s = ctx;
    ck_error *err = NULL;
    pthread_mutex_lock(&s->lock);
    int rc = sc_cache_node_set(&s->cache, obj, &err);
    pthread_mutex_unlock(&s->lock);
    if (rc < 0) {
        log_warn("ignoring node: %s", err->msg);
        ck_error_free(err);
        return;
    }
    sc_queue_move(s->queue, SC_EV_NODE_ADD);
}

static void on_node_update(void *ctx, json_t *old_obj, json_t *obj)
{
    sc_sched *s = ctx;
    ck_error *err = NULL;
    const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
    pthread_mutex_lock(&s->lock);
    /* compare with our copy: the informer keeps stubs only */
    sc_node *n = name ? sc_cache_node(&s->cache, name) : NULL;
    bool changed = !n || n->idx < 0 || sc_node_sched_differs(n, obj);
    int rc = sc_cache_node_set(&s->cache, obj, &err);
    pthread_mutex_unlock(&s->lock);
    if (rc < 0) {
        ck_error_free(err);
        return;
    }
    if (changed)
        sc_queue_move(s->queue, SC_EV_NODE_UPDATE);
}

static void on_node_delete(void *ctx, json_t *obj)
{
    sc_sched *s = ctx;
    const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
    if (!name)
        return;
    pthread_mutex_lock(&s->lock);
    sc_cache_node_del(&s->cache, name);
    pthread_mutex_unlock(&s->lock);
}

/* PodDisruptionBudgets only steer the choice of preemption victims: no queue moves. */
static void on_pdb_set(void *ctx, json_t *obj)
{
    sc_sched *s = ctx;
    ck_error *err = NULL;
    pthread_mutex_lock(&s->lock);
    int rc = sc_cache_pdb_set(&s->cache, obj, &err);
    pthread_mutex_unlock(&s->lock);
    if (rc < 0) {
        log_warn("ignoring PodDisruptionBudget: %s", err->msg);
        ck_error_free(err);
    }
}

static void on_pdb_update(void *ctx, json_t *old_obj, json_t *obj)
{
    on_pdb_set(ctx, obj);
}

static void on_pdb_delete(void *ctx, json_t *obj)
{
    sc_sched *s = ctx;
    const json_t *md = json_object_get(obj, "metadata");
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    const char *name = json_string_value(json_object_get(md, "name"));
    if (!ns || !name)
        return;
    pthread_mutex_lock(&s->lock);
    sc_cache_pdb_del(&s->cache, ns, name);
    pthread_mutex_unlock(&s->lock);
}

/* ---- the scheduling loop ---- */

static void schedule_one(sc_sched *s, sc_qitem *it)
{
    sc_pod *pod = it->pod;
    pthread_mutex_lock(&s->lock);
    if (sc_cache_pod(&s->cache, pod->key)) {      /* bound meanwhile (another replica) */
        pthread_mutex_unlock(&s->lock);
        sc_pod_free(sc_queue_done(s->queue, it));
        return;
    }
    s->attempts++;
    sc_result r;
    sc_schedule(&s->algo, &s->cache, pod, &r);
    if (r.node) {
        cleanup_free char *node = xstrdup(r.node->name);
        int attempts = it->attempts;
        sc_pod *p = sc_queue_done(s->queue, it);
        sc_cache_unnominate(&s->cache, p->key);
        sc_cache_assume(&s->cache, p, node);
        s->scheduled++;
        sc_bind_async(s->binder, p, node, attempts);   /* copies what it needs */
        pthread_mutex_unlock(&s->lock);
        sc_result_release(&r);
        return;
    }
    s->unschedulable++;
    cleanup_free char *fit = sc_fit_message(&r);
    sc_preemption pr = {0};
    if (r.nnodes)
        sc_preempt(&s->cache, pod, &r, &pr);
    cleanup_free char *nominated = pr.node ? xstrdup(pr.node->name) : NULL;
    if (pr.node) {
        s->preemptions++;
        /* the room is ours: lower-priority pods nominated there look again (upstream), and
         * our own nomination holds what the victims free against other pods meanwhile */
        sc_cache_unnominate_lower(&s->cache, nominated, pod->priority);
        sc_cache_nominate(&s->cache, pod, nominated);
        for (int i = 0; i < pr.nvictims; i++)
            sc_delete_victim_async(s->binder, pr.victims[i], pod, nominated);
        if (pr.pdb_violations)
            log_info("preempting on %s violates %d PodDisruptionBudget(s): no other choice",
                     nominated, pr.pdb_violations);
    }
    unsigned mask = r.reject_mask;
    pthread_mutex_unlock(&s->lock);
    cleanup_free char *msg = pr.message ? xasprintf("%s %s", fit, pr.message) : xstrdup(fit);
    log_info("pod %s is unschedulable: %s", pod->key, msg);
    sc_report_failure_async(s->binder, pod, msg, nominated);
    sc_preemption_release(&pr);
    sc_result_release(&r);
    /* victims' deletions are the event that brings the pod back */
    sc_queue_requeue_failed(s->queue, it, nominated ? (mask | SC_EV_POD_DELETE) : mask);
}

static void *schedule_loop(void *arg)
{
    sc_sched *s = arg;
    sc_qitem *it;
    while ((it = sc_queue_pop(s->queue))) {
        int64_t t0 = ck_now_ns();
        schedule_one(s, it);
        int64_t dt = ck_now_ns() - t0;
        pthread_mutex_lock(&s->lock);
        s->cycle_ns += dt;
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

/* ---- the command ---- */

typedef struct runner {
    sc_sched *s;
    long bind_workers;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
} runner;

static void start_scheduling(runner *r)
{
    pthread_mutex_lock(&r->lock);
    if (!r->started) {
        r->started = true;
        r->s->binder = sc_binder_start(r->s, (int)r->bind_workers);
        pthread_create(&r->thread, NULL, schedule_loop, r->s);
        log_info("scheduling as %s", r->s->identity ? r->s->identity : r->s->name);
    }
    pthread_mutex_unlock(&r->lock);
}

static void on_started_leading(void *ctx)
{
    start_scheduling(ctx);
}

static void on_stopped_leading(void *ctx)
{
    log_error("leader election lost; exiting so a standby can take over");
    kill(getpid(), SIGUSR1);
}

int cmd_scheduler(int argc, char **argv)
{
    char *kubeconfig = NULL, *name = "default-scheduler", *lease_ns = "kube-system",
         *lease_name = "kube-scheduler", *identity = NULL;
    bool leader_elect = true;
    long bind_workers = 32, percentage = 0, lease_ms = 15000, renew_ms = 10000, retry_ms = 2000;
    ck_flag flags[] = {
        {"kubeconfig", CK_FLAG_STRING, &kubeconfig, "Path to a kubeconfig for the API server (required)"},
        {"scheduler-name", CK_FLAG_STRING, &name,
         "Schedule only pods whose spec.schedulerName is this (default default-scheduler)"},
        {"leader-elect", CK_FLAG_BOOL, &leader_elect,
         "Run leader election on a Lease; only the leader schedules (default true)"},
        {"leader-elect-lease-namespace", CK_FLAG_STRING, &lease_ns, "Namespace of the Lease (default kube-system)"},
        {"leader-elect-lease-name", CK_FLAG_STRING, &lease_name, "Name of the Lease (default kube-scheduler)"},
        CK_COMPONENT_LEADER_FLAGS(&lease_ms, &renew_ms, &retry_ms, &identity),
        {"bind-workers", CK_FLAG_INT, &bind_workers, "Workers for API writes other than bindings: events, conditions, victim deletes, failed bindings (default 32)"},
        {"percentage-of-nodes-to-score", CK_FLAG_INT, &percentage,
         "Percent of nodes to find feasible before scoring; 0 = adaptive like upstream (default 0)"},
    };
    const char *summary = "Assign pods to nodes (kube-scheduler)";
    int npos = ck_flags_parse("scheduler", summary, argc, argv, flags, ARRAY_SIZE(flags));
    if (ck_component_check_args(npos, argv, kubeconfig) < 0)
        return 2;
    if (bind_workers < 1 || bind_workers > 256 || percentage < 0 || percentage > 100 ||
        lease_ms <= 0 || renew_ms <= 0 || retry_ms <= 0 || renew_ms >= lease_ms) {
        fprintf(stderr, "Error: --bind-workers must be 1..256, --percentage-of-nodes-to-score "
                        "0..100, and renew deadline < lease duration\n");
        return 2;
    }
    ck_log_init("scheduler", CK_LOG_INFO);
    /* many threads allocate and free pod objects: a few malloc arenas keep RSS from growing
     * with the thread count through fragmentation */
    mallopt(M_ARENA_MAX, 2);
    ck_client *client = ck_component_client(kubeconfig, "ckube-scheduler/" CK_VERSION);
    if (!client)
        return 2;
    sigset_t sigs;
    ck_component_block_signals(&sigs, (const int[]){SIGUSR1, 0});

    sc_sched s = {.client = client, .name = name};
    pthread_mutex_init(&s.lock, NULL);
    sc_cache_init(&s.cache);
    ck_random_bytes(&s.algo.rng, sizeof s.algo.rng);
    s.algo.percentage = (int)percentage;
    s.queue = sc_queue_new(1000, 10000);

    /* classes first: pods resolve their priority through it */
    s.classes_inf = ck_informer_new(client, ck_resource_find("scheduling.k8s.io", "v1", "priorityclasses"),
                                    NULL, NULL, NULL, NULL, NULL);
    ck_informer_start(s.classes_inf);
    ck_informer_wait_synced(s.classes_inf, 10000);
    ck_informer_handlers nh = {on_node_add, on_node_update, on_node_delete};
    s.nodes_inf = ck_informer_new(client, res("", "nodes"), NULL, NULL, NULL, &nh, &s);
    ck_informer_set_transform(s.nodes_inf, trim_node);
    ck_informer_set_keep(s.nodes_inf, node_keep);
    ck_informer_set_cache_stubs(s.nodes_inf, true);
    ck_informer_start(s.nodes_inf);
    ck_informer_wait_synced(s.nodes_inf, 30000);
    ck_informer_handlers bh = {on_pdb_set, on_pdb_update, on_pdb_delete};
    s.pdbs_inf = ck_informer_new(client, ck_resource_find("policy", "v1", "poddisruptionbudgets"),
                                 NULL, NULL, NULL, &bh, &s);
    ck_informer_set_cache_stubs(s.pdbs_inf, true);
    ck_informer_start(s.pdbs_inf);
    ck_informer_wait_synced(s.pdbs_inf, 10000);
    ck_informer_handlers ph = {on_pod_add, on_pod_update, on_pod_delete};
    s.pods_inf = ck_informer_new(client, res("", "pods"), NULL, NULL, NULL, &ph, &s);
    ck_informer_set_transform(s.pods_inf, trim_pod);
    ck_informer_set_keep(s.pods_inf, pod_keep);
    ck_informer_set_cache_stubs(s.pods_inf, true);
    ck_informer_set_light(s.pods_inf, pod_light_keep, consume_pod_update);
    ck_informer_start(s.pods_inf);
    ck_informer_wait_synced(s.pods_inf, 30000);

    runner r = {.s = &s, .bind_workers = bind_workers};
    pthread_mutex_init(&r.lock, NULL);
    ck_leader *leader = NULL;
    if (leader_elect) {
        ck_leader_config lc = {.lease_namespace = lease_ns, .lease_name = lease_name,
                               .identity = identity, .lease_duration_ms = (int)lease_ms,
                               .renew_deadline_ms = (int)renew_ms, .retry_period_ms = (int)retry_ms,
                               .on_started_leading = on_started_leading,
                               .on_stopped_leading = on_stopped_leading, .ctx = &r};
        leader = ck_leader_start(client, &lc);
        s.identity = ck_leader_identity(leader);
        log_info("waiting to become leader of %s/%s as %s", lease_ns, lease_name, s.identity);
    } else {
        start_scheduling(&r);
    }

    /* wait for a stop signal; meanwhile hand memory freed after bursts back to the system */
    int sig = 0;
    for (;;) {
        struct timespec period = {.tv_sec = 10};
        sig = sigtimedwait(&sigs, NULL, &period);
        if (sig > 0)
            break;
        ck_alloc_trim();
    }
    int status = sig == SIGUSR1 ? 1 : 0;
    log_info("stopping (%s)", sig == SIGUSR1 ? "lost leadership" : "signal");
    sc_queue_shutdown(s.queue);
    pthread_mutex_lock(&r.lock);
    bool started = r.started;
    r.started = true;          /* no late start from the leader thread */
    pthread_mutex_unlock(&r.lock);
    if (started)
        pthread_join(r.thread, NULL);
    sc_binder_stop(s.binder);
    if (leader)
        ck_leader_stop(leader);
    ck_informer_free(s.pods_inf);
    ck_informer_free(s.nodes_inf);
    ck_informer_free(s.classes_inf);
    ck_informer_free(s.pdbs_inf);
    sc_queue_free(s.queue);
    sc_cache_destroy(&s.cache);
    pthread_mutex_destroy(&s.lock);
    pthread_mutex_destroy(&r.lock);
    log_info("scheduled %llu pods (%llu bound, %llu bind failures, %llu unschedulable attempts, "
             "%llu preemptions, %llu confirmed without a compile); %llu cycles took %.1f ms in all (%.1f us each)",
             (unsigned long long)s.scheduled, (unsigned long long)s.bound,
             (unsigned long long)s.bind_failed, (unsigned long long)s.unschedulable,
             (unsigned long long)s.preemptions, (unsigned long long)s.confirmed,
             (unsigned long long)s.attempts,
             (double)s.cycle_ns / 1e6, s.attempts ? (double)s.cycle_ns / 1e3 / (double)s.attempts : 0.0);
    ck_client_free(client);
    return status;
}
