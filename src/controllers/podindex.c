/* podindex.c - see podindex.h.  Two jansson maps under one mutex: node -> {key: null} and
 * key -> node.  Most pod events (status reports) keep the node: the update handler sees that from
 * the old and new objects without taking the lock. */
#include "controllers/podindex.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "lib/util.h"

struct cm_podindex {
    pthread_mutex_t lock;
    json_t *by_node;    /* node -> object whose member names are the pod keys */
    json_t *node_of;    /* pod key -> node name */
};

cm_podindex *cm_podindex_new(void)
{
    cm_podindex *x = xcalloc(1, sizeof *x);
    pthread_mutex_init(&x->lock, NULL);
    x->by_node = json_object();
    x->node_of = json_object();
    return x;
}

void cm_podindex_free(cm_podindex *x)
{
    if (!x)
        return;
    json_decref(x->by_node);
    json_decref(x->node_of);
    pthread_mutex_destroy(&x->lock);
    free(x);
}

/* Called with the lock held. */
static void forget(cm_podindex *x, const char *key)
{
    const char *old = json_string_value(json_object_get(x->node_of, key));
    if (!old)
        return;
    json_t *set = json_object_get(x->by_node, old);
    json_object_del(set, key);
    if (set && !json_object_size(set))
        json_object_del(x->by_node, old);   /* old points into node_of's value: still alive */
    json_object_del(x->node_of, key);
}

void cm_podindex_set(cm_podindex *x, const char *key, const char *node)
{
    pthread_mutex_lock(&x->lock);
    const char *old = json_string_value(json_object_get(x->node_of, key));
    if (!(old && node && !strcmp(old, node))) {
        forget(x, key);
        if (node && *node) {
            json_t *set = json_object_get(x->by_node, node);
            if (!set) {
                set = json_object();
                json_object_set_new(x->by_node, node, set);
            }
            json_object_set_new(set, key, json_null());
            json_object_set_new(x->node_of, key, json_string(node));
        }
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
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(x->by_node, node), key, v)
        json_array_append_new(out, json_string(key));
    pthread_mutex_unlock(&x->lock);
    return out;
}

size_t cm_podindex_count(cm_podindex *x)
{
    pthread_mutex_lock(&x->lock);
    size_t n = json_object_size(x->node_of);
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
