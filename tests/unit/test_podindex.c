/* test_podindex.c - the controller-manager's pod-by-node index (controllers/podindex.h) and the
 * node lifecycle choices made from it (cm_nodelifecycle_not_ready / _evictions): the index
 * follows adds, status updates, rebinds, unbinds, deletes and re-adds, and the pods chosen for a
 * node are exactly those a scan of every cached pod finds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "controllers/cm.h"
#include "controllers/podindex.h"
#include "lib/util.h"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of the array as one sorted, comma-separated string (caller frees). */
static char *joined(json_t *arr, bool objects)
{
    size_t n = json_array_size(arr);
    const char **v = xcalloc(n + 1, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(arr, i);
        v[i] = objects ? cm_name(e) : json_string_value(e);
    }
    qsort(v, n, sizeof *v, cmp_str);
    ck_buf b;
    ck_buf_init(&b, 0);
    ck_buf_add(&b, "", 0);
    for (size_t i = 0; i < n; i++)
        ck_buf_printf(&b, "%s%s", i ? "," : "", v[i]);
    free(v);
    return ck_buf_steal(&b);
}

static void check_keys(cm_podindex *x, const char *node, const char *want)
{
    json_t *keys = cm_podindex_keys(x, node);
    char *got = joined(keys, false);
    assert_string_equal(got, want);
    free(got);
    json_decref(keys);
}

/* Steps through the informer handlers, with what each node holds after each. */
static void test_index_steps(void **state)
{
    (void)state;
    enum { ADD, UPDATE, DELETE };
    static const struct {
        int op;
        const char *name, *old_node, *node;     /* NULL node: not bound */
        const char *on_a, *on_b;                /* the keys on n-a and n-b afterwards */
        size_t count;
    } steps[] = {
        {ADD, "p1", NULL, NULL, "", "", 0},                    /* pending: on no node */
        {UPDATE, "p1", NULL, "n-a", "ns/p1", "", 1},           /* bound */
        {ADD, "p2", NULL, "n-a", "ns/p1,ns/p2", "", 2},        /* created bound (a DaemonSet's) */
        {UPDATE, "p2", "n-a", "n-a", "ns/p1,ns/p2", "", 2},    /* a status report */
        {UPDATE, "p1", "n-a", "n-b", "ns/p2", "ns/p1", 2},     /* rebound (a relist's view) */
        {ADD, "p1", NULL, "n-b", "ns/p2", "ns/p1", 2},         /* added twice: no double entry */
        {UPDATE, "p2", "n-a", NULL, "", "ns/p1", 1},           /* nodeName cleared */
        {DELETE, "p1", "n-b", "n-b", "", "", 0},
        {DELETE, "p1", "n-b", "n-b", "", "", 0},               /* deleted twice */
        {ADD, "p1", NULL, "n-a", "ns/p1", "", 1},              /* the name again, a new pod */
        {DELETE, "p2", NULL, NULL, "ns/p1", "", 1},            /* never indexed */
    };
    cm_podindex *x = cm_podindex_new();
    const ck_informer_handlers *h = &cm_podindex_handlers;
    for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
        json_t *old = json_pack("{s:{s:s, s:s}, s:{}}", "metadata", "name", steps[i].name,
                                "namespace", "ns", "spec");
        json_t *pod = json_deep_copy(old);
        if (steps[i].old_node)
            json_object_set_new(json_object_get(old, "spec"), "nodeName", json_string(steps[i].old_node));
        if (steps[i].node)
            json_object_set_new(json_object_get(pod, "spec"), "nodeName", json_string(steps[i].node));
        if (steps[i].op == ADD)
            h->on_add(x, pod);
        else if (steps[i].op == UPDATE)
            h->on_update(x, old, pod);
        else
            h->on_delete(x, pod);
        check_keys(x, "n-a", steps[i].on_a);
        check_keys(x, "n-b", steps[i].on_b);
        check_keys(x, "n-none", "");
        assert_int_equal(cm_podindex_count(x), steps[i].count);
        json_decref(old);
        json_decref(pod);
    }
    cm_podindex_free(x);
}

/* ---- many nodes and pods: the index and the choices against a scan of the whole cache */

#define NODES 300
#define PODS 9000


typedef struct cache {
    json_t *pods;                   /* "ns/name" -> pod, as the informer's cache */
} cache;

static json_t *lookup(void *ctx, const char *key)
{
    return json_incref(json_object_get(((cache *)ctx)->pods, key));
}

/* kind: 0 ready, no tolerations (evicted at once); 1 ready, tolerates unreachable forever;
 * 2 ready, tolerates it 60 s (added 100 s ago: evicted); 3 not ready, tolerates it 300 s (due
 * in 200 s); 4 ready but being deleted (not evicted again). */
static json_t *make_pod(int i, int node, int kind)
{
    char name[32], nn[32];
    snprintf(name, sizeof name, "p%05d", i);
    snprintf(nn, sizeof nn, "n%03d", node);
    json_t *pod = json_pack("{s:{s:s, s:s}, s:{s:s}, s:{s:[{s:s, s:s}]}}", "metadata", "name", name,
                            "namespace", i % 2 ? "a" : "b", "spec", "nodeName", nn, "status",
                            "conditions", "type", "Ready", "status", kind == 3 ? "False" : "True");
    json_t *spec = json_object_get(pod, "spec");
    if (node < 0)
        json_object_del(spec, "nodeName");
    if (kind == 1)
        json_object_set_new(spec, "tolerations", json_pack("[{s:s, s:s}]", "key",
                            "node.kubernetes.io/unreachable", "operator", "Exists"));
    if (kind == 2 || kind == 3)
        json_object_set_new(spec, "tolerations", json_pack("[{s:s, s:s, s:s, s:i}]", "key",
                            "node.kubernetes.io/unreachable", "operator", "Exists", "effect",
                            "NoExecute", "tolerationSeconds", kind == 2 ? 60 : 300));
    if (kind == 4)
        json_object_set_new(json_object_get(pod, "metadata"), "deletionTimestamp",
                            json_string("2026-01-01T00:00:00Z"));
    json_object_set_new(pod, "kind_", json_integer(kind));   /* the test's own note */
    return pod;
}

static char *key_of(const json_t *pod)
{
    return xasprintf("%s/%s", cm_ns(pod), cm_name(pod));
}

static void test_index_many(void **state)
{
    (void)state;
    cm_podindex *x = cm_podindex_new();
    const ck_informer_handlers *h = &cm_podindex_handlers;
    cache c = {json_object()};
    srand(7);
    /* create: a tenth pending */
    for (int i = 0; i < PODS; i++) {
        json_t *pod = make_pod(i, i % 10 == 0 ? -1 : rand() % NODES, rand() % 5);
        char *k = key_of(pod);
        json_object_set_new(c.pods, k, pod);
        h->on_add(x, pod);
        free(k);
    }
    /* churn: status updates, binds, rebinds, unbinds, deletes and re-creates */
    for (int step = 0; step < 3 * PODS; step++) {
        int i = rand() % PODS;
        json_t *fresh = make_pod(i, rand() % NODES, rand() % 5);
        char *k = key_of(fresh);
        json_t *old = json_object_get(c.pods, k);
        int what = rand() % 6;
        if (!old) {                                   /* deleted earlier: create again */
            json_object_set(c.pods, k, fresh);
            h->on_add(x, fresh);
        } else if (what == 0) {                       /* deleted */
            json_incref(old);
            json_object_del(c.pods, k);
            h->on_delete(x, old);
            json_decref(old);
        } else {
            if (what == 1)                            /* unbound */
                json_object_del(json_object_get(fresh, "spec"), "nodeName");
            else if (what <= 3)                       /* same node: a status report */
                json_object_set_new(json_object_get(fresh, "spec"), "nodeName",
                                    json_string(cm_str(old, "spec.nodeName") ?: "n000"));
            json_incref(old);
            json_object_set(c.pods, k, fresh);
            h->on_update(x, old, fresh);
            json_decref(old);
        }
        json_decref(fresh);
        free(k);
    }
    /* every node's keys are what a scan of the cache finds; so are the choices */
    json_t *taints = json_pack("[{s:s, s:s}, {s:s, s:s, s:s}]", "key", "node.kubernetes.io/unreachable",
                               "effect", "NoSchedule", "key", "node.kubernetes.io/unreachable",
                               "effect", "NoExecute", "timeAdded", "1970-01-12T13:45:00Z");
    int64_t added = cm_time(json_array_get(taints, 1), "timeAdded");
    size_t bound = 0, marked = 0, evicted = 0;
    for (int n = 0; n < NODES; n++) {
        char nn[32];
        snprintf(nn, sizeof nn, "n%03d", n);
        json_t *scan = json_array(), *ready = json_array(), *evict = json_array();
        bool due = false;
        const char *k;
        json_t *pod;
        json_object_foreach(c.pods, k, pod) {
            if (strcmp(cm_str(pod, "spec.nodeName") ?: "", nn))
                continue;
            json_array_append_new(scan, json_string(k));
            int kind = (int)json_integer_value(json_object_get(pod, "kind_"));
            if (cm_pod_ready(pod))
                json_array_append(ready, pod);
            if (kind == 0 || kind == 2)
                json_array_append(evict, pod);
            due |= kind == 3;
        }
        bound += json_array_size(scan);
        char *want = joined(scan, false);
        check_keys(x, nn, want);
        free(want);

        json_t *got = cm_nodelifecycle_not_ready(x, lookup, &c, nn);
        char *g = joined(got, true), *w = joined(ready, true);
        assert_string_equal(g, w);
        marked += json_array_size(got);
        free(g);
        free(w);
        json_decref(got);

        long next = -1;
        got = cm_nodelifecycle_evictions(x, lookup, &c, nn, taints, added + 100, &next);
        g = joined(got, true);
        w = joined(evict, true);
        assert_string_equal(g, w);
        assert_int_equal(next, due ? 200 : -1);
        evicted += json_array_size(got);
        free(g);
        free(w);
        json_decref(got);
        json_decref(scan);
        json_decref(ready);
        json_decref(evict);
    }
    assert_int_equal(cm_podindex_count(x), bound);
    assert_true(bound > PODS / 2);     /* the churn left most pods bound: the check means something */
    assert_true(marked > 0 && evicted > 0);

    /* a stale index entry (the cache moved on first) is checked against the cache */
    cm_podindex_set(x, "a/p00001", "n-stale");
    json_t *got = cm_nodelifecycle_not_ready(x, lookup, &c, "n-stale");
    assert_int_equal(json_array_size(got), 0);
    json_decref(got);

    json_decref(taints);
    json_decref(c.pods);
    cm_podindex_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_steps),
        cmocka_unit_test(test_index_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
