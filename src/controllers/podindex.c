/* podindex.c - see podindex.h.  Two chained hash tables under one mutex: pod key -> entry, and
 * node name -> the node's entries (a doubly linked list, so a move or a delete is O(1)).  One
 * allocation a bound pod; most pod events (status reports) keep the node, which the update
 * handler sees from the old and new objects without taking the lock.  (Jansson objects as the
 * two maps cost ~4 us a bind, 4.5% of the controller-manager's pod informer in the scheduler
 * benchmark.) */
#include "controllers/podindex.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lib/util.h"

typedef struct pnode pnode;
typedef struct pentry {
    struct pentry *hnext;        /* the key table's chain */
    struct pentry *prev, *next;  /* the node's list */
    pnode *node;
    char key[];
} pentry;

struct pnode {
    pnode *hnext;                /* the node table's chain */
    pentry *head;
    char name[];
};

struct cm_podindex {
    pthread_mutex_t lock;
    pentry **keys;
    size_t kcap, kcount;
    pnode **nodes;
    size_t ncap, ncount;
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;       /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

cm_podindex *cm_podindex_new(void)
{
    cm_podindex *x = xcalloc(1, sizeof *x);
    pthread_mutex_init(&x->lock, NULL);
    x->kcap = x->ncap = 64;
    x->keys = xcalloc(x->kcap, sizeof *x->keys);
    x->nodes = xcalloc(x->ncap, sizeof *x->nodes);
    return x;
}

void cm_podindex_free(cm_podindex *x)
{
    if (!x)
        return;
    for (size_t i = 0; i < x->kcap; i++)
        for (pentry *e = x->keys[i], *n; e; e = n) {
            n = e->hnext;
            free(e);
        }
    for (size_t i = 0; i < x->ncap; i++)
        for (pnode *d = x->nodes[i], *n; d; d = n) {
            n = d->hnext;
            free(d);
        }
    free(x->keys);
    free(x->nodes);
    pthread_mutex_destroy(&x->lock);
    free(x);
}

static pentry **key_slot(cm_podindex *x, const char *key)
{
    pentry **p = &x->keys[hash(key) & (x->kcap - 1)];
    while (*p && strcmp((*p)->key, key))
        p = &(*p)->hnext;
    return p;
}

static pnode **node_slot(cm_podindex *x, const char *name)
{
    pnode **p = &x->nodes[hash(name) & (x->ncap - 1)];
    while (*p && strcmp((*p)->name, name))
        p = &(*p)->hnext;
    return p;
}

/* Doubles a table once it holds as many entries as buckets. */
static void grow_keys(cm_podindex *x)
{
    size_t cap = x->kcap * 2;
    pentry **t = xcalloc(cap, sizeof *t);
    for (size_t i = 0; i < x->kcap; i++)
        for (pentry *e = x->keys[i], *n; e; e = n) {
            n = e->hnext;
            size_t b = hash(e->key) & (cap - 1);
            e->hnext = t[b];
            t[b] = e;
        }
    free(x->keys);
    x->keys = t;
    x->kcap = cap;
}

static void grow_nodes(cm_podindex *x)
{
    size_t cap = x->ncap * 2;
    pnode **t = xcalloc(cap, sizeof *t);
    for (size_t i = 0; i < x->ncap; i++)
        for (pnode *d = x->nodes[i], *n; d; d = n) {
            n = d->hnext;
            size_t b = hash(d->name) & (cap - 1);
            d->hnext = t[b];
            t[b] = d;
        }
    free(x->nodes);
    x->nodes = t;
    x->ncap = cap;
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
        pnode **p = node_slot(x, d->name);
        *p = d->hnext;
        x->ncount--;
        free(d);
    }
}

static void link_entry(cm_podindex *x, pentry *e, const char *node)
{
    pnode **p = node_slot(x, node);
    pnode *d = *p;
    if (!d) {
        size_t n = strlen(node);
        d = xcalloc(1, sizeof *d + n + 1);
        memcpy(d->name, node, n + 1);
        *p = d;
        if (++x->ncount > x->ncap)
            grow_nodes(x);
    }
    e->node = d;
    e->prev = NULL;
    e->next = d->head;
    if (d->head)
        d->head->prev = e;
    d->head = e;
}

/* Called with the lock held. */
static void forget(cm_podindex *x, const char *key)
{
    pentry **p = key_slot(x, key), *e = *p;
    if (!e)
        return;
    unlink_entry(x, e);
    *p = e->hnext;
    x->kcount--;
    free(e);
}

void cm_podindex_set(cm_podindex *x, const char *key, const char *node)
{
    if (node && !*node)
        node = NULL;
    pthread_mutex_lock(&x->lock);
    pentry **p = key_slot(x, key), *e = *p;
    if (!node) {
        if (e)
            forget(x, key);
    } else if (e) {
        if (strcmp(e->node->name, node)) {      /* moved */
            unlink_entry(x, e);
            link_entry(x, e, node);
        }
    } else {
        size_t n = strlen(key);
        e = xcalloc(1, sizeof *e + n + 1);
        memcpy(e->key, key, n + 1);
        *p = e;
        link_entry(x, e, node);
        if (++x->kcount > x->kcap)
            grow_keys(x);
    }
    pthread_mutex_unlock(&x->lock);
}

void cm_podindex_del(cm_podindex *x, const char *key)
{
    pthread_mutex_lock(&x->lock);
    forget(x, key);
    pthread_mutex_unlock(&x->lock);
}

json_t *cm_podindex_keys(cm_podindex *x, const char *node)
{
    json_t *out = json_array();
    pthread_mutex_lock(&x->lock);
    pnode *d = *node_slot(x, node ? node : "");
    for (pentry *e = d ? d->head : NULL; e; e = e->next)
        json_array_append_new(out, json_string(e->key));
    pthread_mutex_unlock(&x->lock);
    return out;
}

size_t cm_podindex_count(cm_podindex *x)
{
    pthread_mutex_lock(&x->lock);
    size_t n = x->kcount;
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
