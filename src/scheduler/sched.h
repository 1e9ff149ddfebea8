/* sched.h - the scheduler's internal model, shared by the files of src/scheduler/ (nothing outside
 * the scheduler includes it; the only public entry point is cmd_scheduler in commands.h).
 *
 *   map.c      string -> pointer hash map
 *   podinfo.c  JSON Pod/Node -> sc_pod/sc_node (requests incl. init containers, taints,
 *              tolerations, affinity terms compiled to selectors, host ports, priority)
 *   cache.c    nodes with what their pods request, assigned and "assumed" pods
 *   queue.c    active (priority heap) / backoff / unschedulable sub-queues, moved on cluster events
 *   filters.c  per-pod pre-computation (affinity and spread counts) and the node filters
 *   scores.c   the node scores, normalized and weighted as the default profile does
 *   schedule.c one scheduling cycle: sample nodes fairly, filter, score, pick (ties broken at random)
 *   preempt.c  choose victims whose removal makes a pod fit
 *   bind.c     binding workers, FailedScheduling events, PodScheduled condition, victim deletion
 *   scheduler.c the command: informers, leader election, the scheduling loop
 *
 * Locking: one mutex (sc_sched.lock) guards the cache; the queue has its own.  The scheduling
 * thread holds the cache lock for a whole cycle; informer handlers and binding workers take it
 * briefly.
 */
#ifndef CK_SCHED_H
#define CK_SCHED_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "apiserver/selector.h"
#include "client/client.h"
#include "client/informer.h"

/* ---- map.c: string keys (copied) -> pointer values ---- */
typedef struct sc_map sc_map;
sc_map *sc_map_new(void);
void sc_map_free(sc_map *m);                       /* values are not freed */
void *sc_map_get(const sc_map *m, const char *key);
void sc_map_put(sc_map *m, const char *key, void *val);
void *sc_map_del(sc_map *m, const char *key);      /* returns the old value */
size_t sc_map_len(const sc_map *m);
/* Iterate: for (size_t it = 0; sc_map_next(m, &it, &k, &v);) */
bool sc_map_next(const sc_map *m, size_t *it, const char **key, void **val);
/* Counters stored in the value slot. */
static inline intptr_t sc_map_count(const sc_map *m, const char *key)
{
    return (intptr_t)sc_map_get(m, key);
}
void sc_map_add(sc_map *m, const char *key, intptr_t delta);

/* ---- resources ---- */
#define SC_MAX_SCALARS 8
typedef struct sc_res {
    int64_t cpu;            /* millicores */
    int64_t mem, storage;   /* bytes */
    int64_t pods;
    int64_t scalar[SC_MAX_SCALARS];   /* extended resources, by sc_scalar_index */
} sc_res;

/* Index of an extended resource name ("nvidia.com/gpu", "hugepages-2Mi"); -1 when the table is
 * full (and create) or unknown (and !create). */
int sc_scalar_index(const char *name, bool create);
const char *sc_scalar_name(int i);
void sc_res_add(sc_res *a, const sc_res *b, int sign);

/* ---- pods and nodes ---- */
typedef struct sc_taint {
    char *key, *value, *effect;
} sc_taint;

typedef struct sc_toleration {
    char *key, *value, *effect;   /* NULL = empty */
    bool exists;                  /* operator Exists (else Equal) */
} sc_toleration;

typedef struct sc_port {
    int port;
    char proto[8];
    char ip[48];                  /* "" = all addresses */
} sc_port;

/* A compiled pod (anti-)affinity term. */
typedef struct sc_term {
    ck_selector *sel;
    char *topology_key;
    char **namespaces;            /* NULL with all_ns false = the pod's own namespace */
    int nns;
    bool all_ns;
    int weight;                   /* preferred terms only */
    int id;                       /* interned (owner namespace, term): equal terms, equal ids */
} sc_term;

/* A compiled node selector requirement list (one nodeSelectorTerm). */
typedef struct sc_node_term {
    json_t *exprs;                /* matchExpressions (borrowed from the pod object) */
    json_t *fields;               /* matchFields */
    int weight;
} sc_node_term;

typedef struct sc_spread {
    int max_skew, min_domains;
    char *topology_key;
    bool hard;                    /* DoNotSchedule */
    ck_selector *sel;
} sc_spread;

typedef struct sc_pod {
    char *key, *ns, *name, *uid;
    json_t *obj;                  /* the object (NULL once placed: see sc_pod_slim; only the
                                   * parts filters borrow while queued: see sc_pod_compact) */
    char *text;                   /* compact: the whole (trimmed) object as JSON text */
    json_t *labels;               /* borrowed from obj, or owned once slim */
    bool labels_owned;
    int lset;                     /* interned (namespace, labels) */
    char *node;                   /* spec.nodeName, or the node it is assumed on */
    char *scheduler_name;
    sc_res req;                   /* what it requests (upstream's effective requests) */
    bool has_scalars;             /* requests an extended resource */
    int64_t nz_cpu, nz_mem;       /* requests with upstream's non-zero defaults, for scoring */
    int32_t priority;
    bool preempt_never;
    bool terminating, terminal;
    bool assumed;                 /* placed by us; the API has not confirmed yet */
    bool bound;                   /* the binding call succeeded */
    sc_toleration *tols;
    int ntols;
    sc_port *ports;
    int nports;
    json_t *node_selector;        /* spec.nodeSelector (borrowed) */
    sc_node_term *node_req;       /* required node affinity terms (ORed) */
    int nnode_req;
    bool has_node_req;
    sc_node_term *node_pref;
    int nnode_pref;
    sc_term *aff, *anti, *aff_pref, *anti_pref;
    int naff, nanti, naff_pref, nanti_pref;
    sc_spread *spread;
    int nspread;
    int64_t deletion_ns;          /* when we asked for its deletion (victims) */
} sc_pod;

typedef struct sc_node {
    char *name;
    json_t *labels;               /* owned (the node object itself is not kept: as a jansson
                                   * tree it was ~4.6 KB a node, 23 MB at 5,000 nodes) */
    sc_res alloc, used;
    int64_t nz_cpu, nz_mem;
    sc_pod **pods;
    int npods, cap;
    int n_with_ports, n_with_anti, n_with_aff;
    sc_taint *taints;
    int ntaints;
    bool unschedulable, ready;
    int idx;                      /* position in cache.list, -1 for placeholders (pods of a
                                   * node not seen yet, or deleted) */
} sc_node;

/* podinfo.c.  The pod takes a reference to obj.  NULL with *err on a malformed object. */
sc_pod *sc_pod_new(json_t *obj, ck_error **err);
void sc_pod_free(sc_pod *p);
/* A placed pod is only matched against (labels, requests, ports, compiled terms): drop the
 * object and what borrows from it, so 10,000s of placed pods stay small. */
void sc_pod_slim(sc_pod *p);
/* A queued pod waits with only what its cycles read as a tree (labels, nodeSelector, affinity,
 * status conditions and nomination: what the compiled fields borrow) and the rest as compact
 * JSON text: 10,000 pending pods as full jansson trees were ~8 KB each, the preload case's RSS. */
void sc_pod_compact(sc_pod *p);
/* p->labels becomes the shared tree of its interned label set (owned reference). */
void sc_pod_share_labels(sc_pod *p);
/* The whole object (a NEW reference): parsed again from the text of a compact pod. */
json_t *sc_pod_object(const sc_pod *p);
/* The pod's priority: spec.priority, else from its class via lookup (may be NULL). */
typedef int (*sc_priority_lookup)(void *ctx, const char *class_name, int32_t *value, bool *never);
void sc_pod_resolve_priority(sc_pod *p, sc_priority_lookup lookup, void *ctx);
/* Fill the node fields from obj (taking a reference); keeps pods/used. */
int sc_node_set(sc_node *n, json_t *obj, ck_error **err);
const char *sc_node_label(const sc_node *n, const char *key);
/* Whether obj differs from n in anything a filter or score reads (labels, taints,
 * unschedulable, allocatable, Ready): heartbeats do not. */
bool sc_node_sched_differs(const sc_node *n, json_t *obj);
void sc_node_free_fields(sc_node *n);       /* taints and object; not pods */
bool sc_term_matches(const sc_term *t, const sc_pod *owner, const sc_pod *other);
/* Upper bound of interned ids (term ids and label-set ids share one space). */
int sc_intern_bound(void);
bool sc_pod_tolerates(const sc_pod *p, const sc_taint *t);

/* ---- cache.c ---- */
typedef struct sc_cache {
    sc_map *nodes;                /* name -> sc_node (real and placeholder) */
    sc_node **list;               /* real nodes, for sampling */
    int nlist, caplist;
    sc_map *pods;                 /* key -> sc_pod, assigned or assumed */
    uint64_t generation;          /* bumped on every change */
    int pods_with_terms;          /* placed pods with (anti-)affinity terms: 0 skips that work */
    sc_map *nominated;            /* key -> compiled copy (node = the nominated node) */
    struct sc_pdb *pdbs;          /* PodDisruptionBudgets, for choosing preemption victims */
    int npdbs;
} sc_cache;

/* A PodDisruptionBudget as preemption reads it. */
typedef struct sc_pdb {
    char *ns, *name;
    ck_selector *sel;             /* NULL: an empty or missing selector (matches nothing here) */
    int64_t allowed;              /* status.disruptionsAllowed */
    char **disrupted;             /* status.disruptedPods names (already being evicted) */
    int ndisrupted;
} sc_pdb;

void sc_cache_init(sc_cache *c);
void sc_cache_destroy(sc_cache *c);
/* Node add or update (obj referenced) / delete. */
int sc_cache_node_set(sc_cache *c, json_t *obj, ck_error **err);
void sc_cache_node_del(sc_cache *c, const char *name);
sc_node *sc_cache_node(sc_cache *c, const char *name);
/* An assigned pod seen from the API (add/update): replaces any assumed or older copy.  The cache
 * owns p.  Returns the node it was put on. */
void sc_cache_pod_set(sc_cache *c, sc_pod *p);
/* Remove a pod (deleted, terminal, or an assumption that failed).  Frees it. */
void sc_cache_pod_del(sc_cache *c, const char *key);
sc_pod *sc_cache_pod(sc_cache *c, const char *key);
/* Put p on node (assumed): the cache owns p afterwards. */
void sc_cache_assume(sc_cache *c, sc_pod *p, const char *node);
/* Detach a pod from its node and re-attach (preemption simulation). */
void sc_node_remove_pod(sc_node *n, sc_pod *p);
void sc_node_add_pod(sc_node *n, sc_pod *p);
/* Nominated pods (status.nominatedNodeName, or chosen by our preemption): what they request is
 * held on that node against pods of lower or equal priority (upstream's nominator).  nominate
 * compiles its own copy of p (p->obj is needed); a new nomination replaces the old one. */
void sc_cache_nominate(sc_cache *c, const sc_pod *p, const char *node);
void sc_cache_unnominate(sc_cache *c, const char *key);
const char *sc_cache_nominated_node(sc_cache *c, const char *key);
/* Drop nominations to node of pods with priority below prio (a preemptor took their place);
 * returns how many. */
int sc_cache_unnominate_lower(sc_cache *c, const char *node, int32_t prio);
/* PodDisruptionBudgets: set (add or replace by namespace/name) from the object, or delete. */
int sc_cache_pdb_set(sc_cache *c, const json_t *obj, ck_error **err);
void sc_cache_pdb_del(sc_cache *c, const char *ns, const char *name);

/* ---- queue.c ---- */
/* Cluster events that can make an unschedulable pod schedulable, and the filters they help. */
enum {
    SC_F_UNSCHEDULABLE = 1 << 0, SC_F_NODENAME = 1 << 1, SC_F_TAINT = 1 << 2,
    SC_F_NODE_AFFINITY = 1 << 3, SC_F_PORTS = 1 << 4, SC_F_RESOURCES = 1 << 5,
    SC_F_SPREAD = 1 << 6, SC_F_POD_AFFINITY = 1 << 7, SC_F_NOT_READY = 1 << 8,
    SC_F_ALL = 0x1ff,
};
#define SC_EV_NODE_ADD     SC_F_ALL
#define SC_EV_NODE_UPDATE  SC_F_ALL
#define SC_EV_POD_DELETE   (SC_F_RESOURCES | SC_F_PORTS | SC_F_SPREAD | SC_F_POD_AFFINITY)
#define SC_EV_POD_ADD      (SC_F_SPREAD | SC_F_POD_AFFINITY)

typedef struct sc_queue sc_queue;
typedef struct sc_qitem {
    sc_pod *pod;                  /* owned by the queue item while queued */
    int attempts;
    int64_t added_ns;             /* first seen (latency, FIFO tie break) */
    int64_t backoff_until_ns;
    uint64_t pop_cycle;           /* the queue's move counter when popped */
    unsigned reject_mask;         /* filters that rejected it last time */
    int where;                    /* internal */
    int heap_idx;
} sc_qitem;

sc_queue *sc_queue_new(int64_t backoff_initial_ms, int64_t backoff_max_ms);
void sc_queue_free(sc_queue *q);
/* A new or updated unassigned pod (the queue owns p).  Updates refresh the queued copy; an
 * update to an unschedulable pod moves it to active (its spec may have changed). */
void sc_queue_add(sc_queue *q, sc_pod *p);
void sc_queue_delete(sc_queue *q, const char *key);
/* Blocks for the next pod (the caller owns the item) or returns NULL once shut down. */
sc_qitem *sc_queue_pop(sc_queue *q);
/* After a failed attempt: back into backoff or unschedulable (the queue owns it again). */
void sc_queue_requeue_failed(sc_queue *q, sc_qitem *it, unsigned reject_mask);
/* After a failed binding: the pod again (the queue owns p), straight to backoff. */
void sc_queue_add_backoff(sc_queue *q, sc_pod *p, int attempts);
/* Done with an item that was placed: frees the item, hands its pod to the caller. */
sc_pod *sc_queue_done(sc_queue *q, sc_qitem *it);
/* A cluster event: move unschedulable pods whose rejecting filters intersect mask. */
void sc_queue_move(sc_queue *q, unsigned mask);
void sc_queue_shutdown(sc_queue *q);
void sc_queue_stats(sc_queue *q, int *active, int *backoff, int *unsched);
bool sc_queue_contains(sc_queue *q, const char *key);

/* ---- filters.c ---- */
#define SC_MAX_REASONS 4
typedef struct sc_status {
    unsigned plugin;              /* SC_F_* that failed, 0 = fits */
    bool unresolvable;            /* preemption cannot help */
    int nreasons;
    char reasons[SC_MAX_REASONS][160];
} sc_status;

typedef struct sc_spread_state {
    sc_map *counts;               /* topology value -> matching pods */
    int64_t min;
    bool self_match;
} sc_spread_state;

/* Counters per topology pair (key, value), plus the distinct keys so a node is checked with one
 * lookup per key instead of a walk over every pair. */
#define SC_MAX_TOPO_KEYS 8
typedef struct sc_pairs {
    sc_map *m;                    /* "key\x1fvalue" -> count or weight */
    const char *keys[SC_MAX_TOPO_KEYS];
    int nkeys;
} sc_pairs;
void sc_pairs_add(sc_pairs *p, const char *key, const char *value, intptr_t delta);
intptr_t sc_pairs_get(const sc_pairs *p, const char *key, const char *value);
/* Sum over the distinct keys of the pair counts for n's label values. */
intptr_t sc_pairs_node_sum(const sc_pairs *p, const sc_node *n);
void sc_pairs_free(sc_pairs *p);

/* What a cycle pre-computes for one pod over the whole cache. */
typedef struct sc_cycle {
    sc_pod *pod;
    sc_pairs aff;                 /* pods matching all of the pod's affinity terms */
    sc_pairs anti;                /* pods matching one of its anti-affinity terms */
    sc_pairs existing_anti;       /* existing pods whose anti-affinity matches the pod */
    sc_spread_state *spread;      /* per pod->spread */
    sc_pairs pref;                /* preferred (anti-)affinity weights, for scoring */
    bool has_pref;
    sc_pod **nominated;           /* others' nominations of priority >= the pod's */
    int nnominated;
} sc_cycle;

void sc_cycle_prepare(sc_cycle *cy, sc_cache *c, sc_pod *pod);
void sc_cycle_release(sc_cycle *cy);
/* Count pod e on node n into (sign 1) or out of (sign -1) the pre-computed affinity and spread
 * state, as if it had been there at prepare time (upstream's PreFilter AddPod/RemovePod): the
 * preemption simulation removes victims this way, nominated pods are added this way. */
void sc_cycle_update_pod(sc_cycle *cy, const sc_node *n, const sc_pod *e, int sign);
/* Runs the filters in upstream's order, stopping at the first failure. */
void sc_filter(const sc_cycle *cy, const sc_node *n, sc_status *st);
/* sc_filter with the node's nominated pods (cy->nominated) counted as if running there; when
 * they were and the pod fits, once more without them (an affinity they alone satisfied does not
 * count), as upstream's RunFilterPluginsWithNominatedPods. */
void sc_filter_nominated(sc_cycle *cy, sc_node *n, sc_status *st);
/* Individual filters (unit tests call them one by one). */
void sc_filter_unschedulable(const sc_cycle *cy, const sc_node *n, sc_status *st);
void sc_filter_node_name(const sc_cycle *cy, const sc_node *n, sc_status *st);
void sc_filter_taints(const sc_cycle *cy, const sc_node *n, sc_status *st);
void sc_filter_node_affinity(const sc_cycle *cy, const sc_node *n, sc_status *st);
void sc_filter_ports(const sc_cycle *cy, const sc_node *n, sc_status *st);
void sc_filter_resources(const sc_cycle *cy, const sc_node *n, sc_status *st);
void sc_filter_spread(const sc_cycle *cy, const sc_node *n, sc_status *st);
void sc_filter_pod_affinity(const sc_cycle *cy, const sc_node *n, sc_status *st);
bool sc_node_matches_pod_selector(const sc_pod *p, const sc_node *n);
bool sc_node_term_matches(const sc_node_term *t, const sc_node *n);

/* ---- scores.c: each 0..100 after normalization ---- */
typedef struct sc_scored {
    sc_node *node;
    int64_t total;
    int64_t raw[6];
} sc_scored;
/* Score nodes[0..n) into out (total = weighted sum of the default profile's plugins). */
void sc_score(const sc_cycle *cy, sc_scored *out, int n);
int64_t sc_score_least_allocated(const sc_pod *p, const sc_node *n);
int64_t sc_score_balanced(const sc_pod *p, const sc_node *n);
int64_t sc_score_node_affinity_raw(const sc_pod *p, const sc_node *n);
int64_t sc_score_taint_raw(const sc_pod *p, const sc_node *n);
int64_t sc_score_spread_raw(const sc_cycle *cy, const sc_node *n);
int64_t sc_score_pod_affinity_raw(const sc_cycle *cy, const sc_node *n);

/* ---- schedule.c ---- */
typedef struct sc_result {
    sc_node *node;                /* chosen, or NULL */
    int nnodes;                   /* nodes considered in total */
    sc_map *reasons;              /* reason text -> count, when nothing fits */
    unsigned reject_mask;
    int n_unresolvable;           /* nodes preemption cannot help */
    char **resolvable;            /* names of nodes that failed only resolvably */
    int nresolvable;
    int evaluated, feasible;
} sc_result;

typedef struct sc_algo {
    int next_start;               /* rotates the sampling start (fairness) */
    uint64_t rng;
    int percentage;               /* percentageOfNodesToScore; 0 = adaptive */
} sc_algo;

void sc_schedule(sc_algo *a, sc_cache *c, sc_pod *pod, sc_result *res);
void sc_result_release(sc_result *r);
/* "0/5 nodes are available: 3 Insufficient cpu, 2 node(s) had untolerated taint {k: v}." */
char *sc_fit_message(const sc_result *r);
int sc_num_to_find(int nnodes, int percentage);
uint64_t sc_rand(uint64_t *state);

/* ---- preempt.c ---- */
typedef struct sc_preemption {
    sc_node *node;                /* NULL: none */
    sc_pod **victims;
    int nvictims;
    int pdb_violations;           /* victims whose eviction a PodDisruptionBudget forbids */
    char *message;                /* "preemption: 0/3 nodes are available: ..." */
} sc_preemption;
void sc_preempt(sc_cache *c, sc_pod *pod, const sc_result *r, sc_preemption *out);
void sc_preemption_release(sc_preemption *pr);

/* ---- the running scheduler (scheduler.c) ---- */
typedef struct sc_binder sc_binder;
/* Queued pods are kept compact (sc_pod_compact) once this many wait. */
#define SC_COMPACT_QUEUED 256

typedef struct sc_sched {
    ck_client *client;
    const char *name;             /* --scheduler-name */
    const char *identity;
    pthread_mutex_t lock;         /* guards cache and algo */
    sc_cache cache;
    sc_algo algo;
    sc_queue *queue;
    sc_binder *binder;
    ck_informer *pods_inf, *nodes_inf, *classes_inf, *pdbs_inf;
    /* counters (under lock) */
    uint64_t attempts, scheduled, unschedulable, bound, bind_failed, preemptions;
    uint64_t confirmed;           /* assumed pods confirmed by their update without a compile */
    int64_t cycle_ns;             /* time spent in scheduling cycles */
} sc_sched;

/* Whether a pod update (obj, from the informer) needs no compile: the pod is placed (nodeName,
 * not being deleted, not terminal) and the cache holds it on that node with the same labels,
 * either confirmed (a kubelet's status report) or assumed by us with the same uid (our own
 * binding coming back: then it is marked confirmed in place, unnominated and dropped from the
 * queue).  Takes s->lock. */
bool sc_sched_placed_unchanged(sc_sched *s, const json_t *obj);

/* Look a pod's priority class up in the PriorityClass informer (sc_priority_lookup). */
int sc_sched_priority(void *ctx, const char *class_name, int32_t *value, bool *never);

/* ---- bind.c: API writes off the scheduling thread ---- */
sc_binder *sc_binder_start(sc_sched *s, int workers);
void sc_binder_stop(sc_binder *b);
/* POST pods/NAME/binding; on failure the assumption is dropped and the pod retried. */
/* The Binding's JSON text (len bytes; caller frees), printed from a template. */
char *sc_binding_text(const char *ns, const char *name, const char *uid, const char *node,
                      size_t *len);
void sc_bind_async(sc_binder *b, const sc_pod *p, const char *node, int attempts);
/* FailedScheduling event + PodScheduled=False condition (+ nominatedNodeName). */
void sc_report_failure_async(sc_binder *b, const sc_pod *p, const char *message,
                             const char *nominated);
/* Graceful delete of a preemption victim, with a Preempted event. */
void sc_delete_victim_async(sc_binder *b, const sc_pod *victim, const sc_pod *preemptor,
                            const char *node);
/* Wait until no job is queued or running (tests, shutdown). */
void sc_binder_drain(sc_binder *b);

#endif
