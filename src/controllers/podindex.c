/* podindex.c - see podindex.h.  Two hash tables (lib/htab.h) under one mutex: pod key -> entry,
 * and node name -> the node's entries (a doubly linked list, so a move or a delete is O(1)).  One
 * allocation a bound pod; most pod events (status reports) keep the node, which the update
 * handler sees from the old and new objects without taking the lock.  (Jansson objects as the
 * two maps cost ~4 us a bind, 4.5% of the controller-manager's pod informer in the scheduler
 * benchmark.) */
#include "controllers/podindex.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lib/htab.h"
#include "lib/util.h"

typedef struct pnode pnode;
typedef struct pentry {
    ck_hnode hn;                 /* in the key table */
    struct pentry *prev, *next;  /* the node's list */
    pnode *node;
    char key[];
} pentry;

struct pnode {
    ck_hnode hn;                 /* in the node table */
    pentry *head;
    char name[];
};

struct cm_podindex {
    pthread_mutex_t lock;
    ck_htab keys, nodes;
};

cm_podindex *cm_podindex_new(void)
{
    cm_podindex *x = xcalloc(1, sizeof *x);
    pthread_mutex_init(&x->lock, NULL);
    ck_htab_init(&x->keys, 64);
    ck_htab_init(&x->nodes, 64);
    return x;
}

void cm_podindex_free(cm_podindex *x)
{
    if (!x)
        return;
    ck_htab_iter it;
    ck_htab_iter_init(&it, &x->keys);
    for (ck_hnode *n; (n = ck_htab_iter_next(&it));)
        free(ck_htab_entry(n, pentry, hn));
    ck_htab_iter_init(&it, &x->nodes);
    for (ck_hnode *n; (n = ck_htab_iter_next(&it));)
        free(ck_htab_entry(n, pnode, hn));
    ck_htab_free(&x->keys);
    ck_htab_free(&x->nodes);
    pthread_mutex_destroy(&x->lock);
    free(x);
}

static pnode *node_find(cm_podindex *x, const char *name)
{
    ck_hnode *n = ck_htab_get(&x->nodes, name);
    return n ? ck_htab_entry(n, pnode, hn) : NULL;
}

/* Takes e off its node's list; a node left with no pods goes. */
static void unlink_entry(cm_podindex *x, pentry *e)
{
    pnode *d = e->node;
    if (e->prev)
        e->prev->next = e->next;
    else
        d->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    e->prev = e->next = NULL;
    e->node = NULL;
    if (!d->head) {
        ck_htab_del(&x->nodes, &d->hn);
        free(d);
    }
}

static void link_entry(cm_podindex *x, pentry *e, const char *node)
{
    size_t n = strlen(node);
    uint64_t h = ck_htab_hash(node, n);
    ck_hnode *hn = ck_htab_find(&x->nodes, node, n, h);
    pnode *d = hn ? ck_htab_entry(hn, pnode, hn) : NULL;
    if (!d) {
        d = xcalloc(1, sizeof *d + n + 1);
        memcpy(d->name, node, n + 1);
        ck_htab_add(&x->nodes, &d->hn, d->name, n, h);
    }
    e->node = d;
    e->prev = NULL;
    e->next = d->head;
    if (d->head)
        d->head->prev = e;
    d->head = e;
}

/* Called with the lock held. */
static void forget(cm_podindex *x, pentry *e)
{
    unlink_entry(x, e);
    ck_htab_del(&x->keys, &e->hn);
    free(e);
}

void cm_podindex_set(cm_podindex *x, const char *key, const char *node)
{
    if (node && !*node)
        node = NULL;
    size_t n = strlen(key);
    uint64_t h = ck_htab_hash(key, n);
    pthread_mutex_lock(&x->lock);
    ck_hnode *hn = ck_htab_find(&x->keys, key, n, h);
    pentry *e = hn ? ck_htab_entry(hn, pentry, hn) : NULL;
    if (!node) {
        if (e)
            forget(x, e);
    } else if (e) {
        if (strcmp(e->node->name, node)) {      /* moved */
            unlink_entry(x, e);
            link_entry(x, e, node);
        }
    } else {
        e = xcalloc(1, sizeof *e + n + 1);
        memcpy(e->key, key, n + 1);
        ck_htab_add(&x->keys, &e->hn, e->key, n, h);
        link_entry(x, e, node);
    }
    pthread_mutex_unlock(&x->lock);
}

void cm_podindex_del(cm_podindex *x, const char *key)
{
    size_t n = strlen(key);
    uint64_t h = ck_htab_hash(key, n);
    pthread_mutex_lock(&x->lock);
    ck_hnode *hn = ck_htab_find(&x->keys, key, n, h);
    if (hn)
        forget(x, ck_htab_entry(hn, pentry, hn));
    pthread_mutex_unlock(&x->lock);
}

json_t *cm_podindex_keys(cm_podindex *x, const char *node)
{
    json_t *out = json_array();
    pthread_mutex_lock(&x->lock);
    pnode *d = node_find(x, node ? node : "");
    for (pentry *e = d ? d->head : NULL; e; e = e->next)
        json_array_append_new(out, json_string(e->key));
    pthread_mutex_unlock(&x->lock);
    return out;
}

size_t cm_podindex_count(cm_podindex *x)
{
    pthread_mutex_lock(&x->lock);
    size_t n = x->keys.n;
    pthread_mutex_unlock(&x->lock);
    return n;
}

static const char *pod_node(const json_t *pod)
{
    return json_string_value(json_object_get(json_object_get(pod, "spec"), "nodeName"));
}

/* The informer's key ("namespace/name") in buf, or NULL when it does not fit (then the caller
 * allocates). */
static const char *pod_key(const json_t *pod, char *buf, size_t size, char **heap)
{
    json_t *md = json_object_get(pod, "metadata");
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    const char *name = json_string_value(json_object_get(md, "name"));
    *heap = NULL;
    if (!name)
        return NULL;
    int n = ns && *ns ? snprintf(buf, size, "%s/%s", ns, name) : snprintf(buf, size, "%s", name);
    if (n >= 0 && (size_t)n < size)
        return buf;
    return *heap = ck_informer_key(pod);
}

static void on_add(void *ctx, json_t *pod)
{
    char buf[320], *heap;
    const char *key = pod_key(pod, buf, sizeof buf, &heap);
    if (key)
        cm_podindex_set(ctx, key, pod_node(pod));
    free(heap);
}

static void on_update(void *ctx, json_t *old, json_t *pod)
{
    const char *a = pod_node(old), *b = pod_node(pod);
    if (a == b || (a && b && !strcmp(a, b)))
        return;                  /* the same node (a status report): nothing moves */
    on_add(ctx, pod);
}

static void on_delete(void *ctx, json_t *pod)
{
    char buf[320], *heap;
    const char *key = pod_key(pod, buf, sizeof buf, &heap);
    if (key)
        cm_podindex_del(ctx, key);
    free(heap);
}

const ck_informer_handlers cm_podindex_handlers = {on_add, on_update, on_delete};
