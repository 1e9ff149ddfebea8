/* informer.c - see informer.h. */
#include "client/informer.h"
#include "lib/log.h"
#include "lib/util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define INFORMER_PAGE 500
#define INFORMER_BACKOFF_MAX_MS 30000

struct ck_informer {
    ck_client *client;
    const ck_resource *res;
    char *ns, *label_selector, *field_selector;
    ck_informer_handlers handlers;
    void *ctx;
    ck_informer_transform transform;
    bool stubs;
    ck_jsonpick list_keep[3], watch_keep[3];   /* set_keep: {items, *} / {object, *} */
    bool keep;
    ck_jsonpick light_keep[3];                 /* set_light: {object, light}, {type} */
    ck_informer_consume consume;

    pthread_mutex_t lock;
    pthread_cond_t synced_cond;
    json_t *cache;                 /* key -> object */
    bool synced;
    char *resource_version;        /* last seen, for re-watching */

    pthread_t thread;
    bool started;
    ck_cancel stop;                /* ck_informer_free fires it: ends the watch or backoff */
};

char *ck_informer_key(const json_t *obj)
{
    json_t *md = json_object_get(obj, "metadata");
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    const char *name = json_string_value(json_object_get(md, "name"));
    if (!name)
        name = "";
    return ns && *ns ? xasprintf("%s/%s", ns, name) : xstrdup(name);
}

/* What the cache keeps of obj (a NEW reference): obj itself, or in stub mode just its
 * resourceVersion string (enough to tell a relist what changed). */
static json_t *cached_form(ck_informer *inf, json_t *obj)
{
    if (!inf->stubs)
        return json_incref(obj);
    const char *rv = json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
    return json_string(rv ? rv : "");
}

/* A stub object for a handler from a cache key "ns/name" or "name". */
static json_t *stub_object(const char *key)
{
    const char *slash = strchr(key, '/');
    if (!slash)
        return json_pack("{s:{s:s}}", "metadata", "name", key);
    char *ns = xstrndup(key, (size_t)(slash - key));
    json_t *o = json_pack("{s:{s:s, s:s}}", "metadata", "namespace", ns, "name", slash + 1);
    free(ns);
    return o;
}

static const char *obj_rv(const json_t *obj)
{
    if (json_is_string(obj))
        return json_string_value(obj);
    return json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
}

ck_informer *ck_informer_new(ck_client *c, const ck_resource *r, const char *ns,
                             const char *label_selector, const char *field_selector,
                             const ck_informer_handlers *handlers, void *ctx)
{
    ck_informer *inf = xcalloc(1, sizeof *inf);
    inf->client = c;
    inf->res = r;
    inf->ns = ns && *ns ? xstrdup(ns) : NULL;
    inf->label_selector = label_selector && *label_selector ? xstrdup(label_selector) : NULL;
    inf->field_selector = field_selector && *field_selector ? xstrdup(field_selector) : NULL;
    if (handlers)
        inf->handlers = *handlers;
    inf->ctx = ctx;
    pthread_mutex_init(&inf->lock, NULL);
    pthread_cond_init(&inf->synced_cond, NULL);
    ck_cancel_init(&inf->stop);
    inf->cache = json_object();
    return inf;
}

/* "?limit=..&labelSelector=..": the query shared by list and watch.  Caller frees. */
static char *base_path(ck_informer *inf, const char *extra)
{
    ck_buf b;
    ck_buf_init(&b, 16384);
    char *p = ck_client_path(inf->res, inf->ns, NULL, NULL);
    ck_buf_addstr(&b, p);
    free(p);
    ck_buf_addstr(&b, "?");
    ck_buf_addstr(&b, extra);
    CURL *h = curl_easy_init();
    if (inf->label_selector) {
        char *e = curl_easy_escape(h, inf->label_selector, 0);
        ck_buf_printf(&b, "&labelSelector=%s", e);
        curl_free(e);
    }
    if (inf->field_selector) {
        char *e = curl_easy_escape(h, inf->field_selector, 0);
        ck_buf_printf(&b, "&fieldSelector=%s", e);
        curl_free(e);
    }
    curl_easy_cleanup(h);
    return ck_buf_steal(&b);
}

static void sleep_ms(ck_informer *inf, int ms)
{
    ck_cancel_sleep(&inf->stop, ms);
}

/* A listed obj against prev, what the cache held under key (NULL: nothing): an add, or an update
 * when the resourceVersion moved (from a stub object when the cache keeps stubs). */
static void deliver_change(ck_informer *inf, const char *key, json_t *prev, json_t *obj)
{
    if (!prev) {
        if (inf->handlers.on_add)
            inf->handlers.on_add(inf->ctx, obj);
        return;
    }
    const char *a = obj_rv(prev), *b = obj_rv(obj);
    if (inf->handlers.on_update && (!a || !b || strcmp(a, b))) {
        json_t *o = json_is_string(prev) ? stub_object(key) : json_incref(prev);
        inf->handlers.on_update(inf->ctx, o, obj);
        json_decref(o);
    }
}

/* Stub mode: an add or update for one listed object, against what the cache holds now. */
static void deliver_listed(ck_informer *inf, const char *key, json_t *obj)
{
    pthread_mutex_lock(&inf->lock);
    json_t *prev = json_incref(json_object_get(inf->cache, key));
    pthread_mutex_unlock(&inf->lock);
    deliver_change(inf, key, prev, obj);
    json_decref(prev);
}

/* List everything (paginated) into a fresh map; NULL on failure.  In stub mode the handlers
 * see each add/update as its page arrives and the map holds stubs. */
static json_t *list_all(ck_informer *inf, char **rv_out, ck_error **err)
{
    json_t *fresh = json_object();
    cleanup_free char *cont = NULL;
    for (;;) {
        cleanup_free char *extra = NULL;
        if (cont) {
            CURL *h = curl_easy_init();
            char *e = curl_easy_escape(h, cont, 0);
            extra = xasprintf("limit=%d&continue=%s", INFORMER_PAGE, e);
            curl_free(e);
            curl_easy_cleanup(h);
        } else {
            extra = xasprintf("limit=%d", INFORMER_PAGE);
        }
        cleanup_free char *path = base_path(inf, extra);
        json_t *page = ck_client_request_pick(inf->client, "GET", path, NULL,
                                              inf->keep ? inf->list_keep : NULL, err);
        if (!page) {
            json_decref(fresh);
            return NULL;
        }
        json_t *items = json_object_get(page, "items");
        size_t i;
        json_t *it;
        /* List items carry no kind/apiVersion; fill them in as watch events have them. */
        json_array_foreach(items, i, it) {
            json_object_set_new(it, "kind", json_string(inf->res->kind));
            json_object_set_new(it, "apiVersion", json_string(ck_resource_api_version(inf->res)));
            if (inf->transform)
                inf->transform(inf->ctx, it);
            char *key = ck_informer_key(it);
            if (inf->stubs) {
                /* deliver page by page so a big list never sits in memory whole */
                deliver_listed(inf, key, it);
                json_object_set_new(fresh, key, cached_form(inf, it));
            } else {
                /* an object the cache holds unchanged stays as it is: a relist of thousands of
                 * objects does not hold two copies of each until the swap */
                pthread_mutex_lock(&inf->lock);
                json_t *prev = json_incref(json_object_get(inf->cache, key));
                pthread_mutex_unlock(&inf->lock);
                const char *a = prev ? obj_rv(prev) : NULL, *b = obj_rv(it);
                json_object_set(fresh, key, a && b && !strcmp(a, b) ? prev : it);
                json_decref(prev);
            }
            free(key);
        }
        json_t *md = json_object_get(page, "metadata");
        const char *next = json_string_value(json_object_get(md, "continue"));
        free(cont);
        cont = next && *next ? xstrdup(next) : NULL;
        if (!cont) {
            const char *rv = json_string_value(json_object_get(md, "resourceVersion"));
            *rv_out = xstrdup(rv ? rv : "0");
            json_decref(page);
            return fresh;
        }
        json_decref(page);
    }
}

/* Swap in a fresh list and tell the handlers what changed since the old cache. */
static void replace_cache(ck_informer *inf, json_t *fresh, char *rv)
{
    pthread_mutex_lock(&inf->lock);
    json_t *old = inf->cache;
    inf->cache = fresh;
    free(inf->resource_version);
    inf->resource_version = rv;
    pthread_mutex_unlock(&inf->lock);

    const char *key;
    json_t *obj;
    json_object_foreach(fresh, key, obj) {
        if (inf->stubs)
            break;                      /* delivered by list_all already */
        deliver_change(inf, key, json_object_get(old, key), obj);
    }
    json_object_foreach(old, key, obj) {
        if (!json_object_get(fresh, key) && inf->handlers.on_delete) {
            json_t *o = json_is_string(obj) ? stub_object(key) : json_incref(obj);
            inf->handlers.on_delete(inf->ctx, o);
            json_decref(o);
        }
    }
    json_decref(old);

    pthread_mutex_lock(&inf->lock);
    if (!inf->synced) {
        inf->synced = true;
        pthread_cond_broadcast(&inf->synced_cond);
    }
    pthread_mutex_unlock(&inf->lock);
}

static bool on_event(void *ctx, const char *type, json_t *obj)
{
    ck_informer *inf = ctx;
    const char *rv = obj_rv(obj);
    if (!strcmp(type, "BOOKMARK")) {
        pthread_mutex_lock(&inf->lock);
        if (rv) {
            free(inf->resource_version);
            inf->resource_version = xstrdup(rv);
        }
        pthread_mutex_unlock(&inf->lock);
        return !ck_cancel_fired(&inf->stop);
    }
    if (inf->transform)
        inf->transform(inf->ctx, obj);
    cleanup_free char *key = ck_informer_key(obj);
    pthread_mutex_lock(&inf->lock);
    json_t *prev = json_object_get(inf->cache, key);
    json_incref(prev);
    if (!strcmp(type, "DELETED"))
        json_object_del(inf->cache, key);
    else
        json_object_set_new(inf->cache, key, cached_form(inf, obj));
    if (rv) {
        free(inf->resource_version);
        inf->resource_version = xstrdup(rv);
    }
    pthread_mutex_unlock(&inf->lock);

    if (!strcmp(type, "DELETED")) {
        if (inf->handlers.on_delete)
            inf->handlers.on_delete(inf->ctx, obj);
    } else if (prev) {
        if (inf->handlers.on_update) {
            json_t *o = json_is_string(prev) ? stub_object(key) : json_incref(prev);
            inf->handlers.on_update(inf->ctx, o, obj);
            json_decref(o);
        }
    } else if (inf->handlers.on_add) {
        inf->handlers.on_add(inf->ctx, obj);
    }
    json_decref(prev);
    return !ck_cancel_fired(&inf->stop);
}

/* The light look (ck_informer_set_light): a MODIFIED event of a cached object that the consumer
 * deals with from its light form is only recorded (its resourceVersion) here. */
static bool peek_event(void *ctx, const char *type, json_t *light, bool *go_on)
{
    ck_informer *inf = ctx;
    *go_on = !ck_cancel_fired(&inf->stop);
    if (strcmp(type, "MODIFIED"))
        return true;
    const char *rv = obj_rv(light);
    cleanup_free char *key = ck_informer_key(light);
    pthread_mutex_lock(&inf->lock);
    bool cached = json_object_get(inf->cache, key) != NULL;
    pthread_mutex_unlock(&inf->lock);
    if (!cached || !rv || !inf->consume(inf->ctx, light))
        return true;
    pthread_mutex_lock(&inf->lock);
    json_object_set_new(inf->cache, key, json_string(rv));
    free(inf->resource_version);
    inf->resource_version = xstrdup(rv);
    pthread_mutex_unlock(&inf->lock);
    return false;
}

static void *informer_main(void *arg)
{
    ck_informer *inf = arg;
    int backoff = 250;
    while (!ck_cancel_fired(&inf->stop)) {
        ck_error *err = NULL;
        char *rv = NULL;
        json_t *fresh = list_all(inf, &rv, &err);
        if (!fresh) {
            log_warn("informer %s: list failed: %s (retry in %d ms)", inf->res->resource, err->msg,
                     backoff);
            ck_error_free(err);
            sleep_ms(inf, backoff);
            backoff = backoff * 2 > INFORMER_BACKOFF_MAX_MS ? INFORMER_BACKOFF_MAX_MS : backoff * 2;
            continue;
        }
        replace_cache(inf, fresh, rv);
        backoff = 250;
        /* Watch until the server says our version is too old; then relist. */
        while (!ck_cancel_fired(&inf->stop)) {
            pthread_mutex_lock(&inf->lock);
            cleanup_free char *extra = xasprintf(
                "watch=1&allowWatchBookmarks=true&timeoutSeconds=%d&resourceVersion=%s",
                300 + rand() % 300, inf->resource_version);
            pthread_mutex_unlock(&inf->lock);
            cleanup_free char *path = base_path(inf, extra);
            if (ck_client_watch_peek(inf->client, path, inf->light_keep,
                                     inf->consume ? peek_event : NULL,
                                     inf->keep ? inf->watch_keep : NULL, on_event, inf,
                                     &inf->stop, &err) == 0) {
                backoff = 250;
                continue;
            }
            bool expired = err->code == CK_E_EXPIRED;
            if (!expired)
                log_warn("informer %s: watch failed: %s (retry in %d ms)", inf->res->resource,
                         err->msg, backoff);
            ck_error_free(err);
            err = NULL;
            if (expired)
                break;
            sleep_ms(inf, backoff);
            backoff = backoff * 2 > INFORMER_BACKOFF_MAX_MS ? INFORMER_BACKOFF_MAX_MS : backoff * 2;
        }
    }
    return NULL;
}

void ck_informer_set_transform(ck_informer *inf, ck_informer_transform fn)
{
    inf->transform = fn;
}

void ck_informer_set_keep(ck_informer *inf, const ck_jsonpick *keep)
{
    /* a list page and a watch event: everything but the objects whole, the objects picked */
    inf->keep = keep != NULL;
    inf->list_keep[0] = (ck_jsonpick){"items", keep};
    inf->list_keep[1] = (ck_jsonpick){"*", NULL};
    inf->list_keep[2] = (ck_jsonpick){NULL, NULL};
    inf->watch_keep[0] = (ck_jsonpick){"object", keep};
    inf->watch_keep[1] = (ck_jsonpick){"*", NULL};
    inf->watch_keep[2] = (ck_jsonpick){NULL, NULL};
}

void ck_informer_set_light(ck_informer *inf, const ck_jsonpick *light, ck_informer_consume fn)
{
    if (!inf->stubs)
        abort();                 /* a cached light object would be a wrong cache */
    inf->consume = fn;
    inf->light_keep[0] = (ck_jsonpick){"type", NULL};
    inf->light_keep[1] = (ck_jsonpick){"object", light};
    inf->light_keep[2] = (ck_jsonpick){NULL, NULL};
}

void ck_informer_set_cache_stubs(ck_informer *inf, bool stubs)
{
    inf->stubs = stubs;
}

void ck_informer_strip_managed_fields(void *ctx, json_t *obj)
{
    json_object_del(json_object_get(obj, "metadata"), "managedFields");
}

void ck_informer_start(ck_informer *inf)
{
    if (inf->started)
        return;
    inf->started = true;
    pthread_create(&inf->thread, NULL, informer_main, inf);
}

bool ck_informer_synced(ck_informer *inf)
{
    pthread_mutex_lock(&inf->lock);
    bool s = inf->synced;
    pthread_mutex_unlock(&inf->lock);
    return s;
}

bool ck_informer_wait_synced(ck_informer *inf, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&inf->lock);
    while (!inf->synced)
        if (pthread_cond_timedwait(&inf->synced_cond, &inf->lock, &deadline))
            break;
    bool s = inf->synced;
    pthread_mutex_unlock(&inf->lock);
    return s;
}

json_t *ck_informer_get(ck_informer *inf, const char *ns, const char *name)
{
    cleanup_free char *key = inf->res->namespaced && ns ? xasprintf("%s/%s", ns, name)
                                                        : xstrdup(name);
    pthread_mutex_lock(&inf->lock);
    json_t *obj = json_incref(json_object_get(inf->cache, key));
    pthread_mutex_unlock(&inf->lock);
    return obj;
}

json_t *ck_informer_list(ck_informer *inf)
{
    json_t *out = json_array();
    pthread_mutex_lock(&inf->lock);
    const char *key;
    json_t *obj;
    json_object_foreach(inf->cache, key, obj)
        json_array_append(out, obj);
    pthread_mutex_unlock(&inf->lock);
    return out;
}

size_t ck_informer_count(ck_informer *inf)
{
    pthread_mutex_lock(&inf->lock);
    size_t n = json_object_size(inf->cache);
    pthread_mutex_unlock(&inf->lock);
    return n;
}

void ck_informer_free(ck_informer *inf)
{
    if (!inf)
        return;
    ck_cancel_fire(&inf->stop);
    if (inf->started)
        pthread_join(inf->thread, NULL);
    ck_cancel_destroy(&inf->stop);
    json_decref(inf->cache);
    free(inf->resource_version);
    free(inf->ns);
    free(inf->label_selector);
    free(inf->field_selector);
    pthread_mutex_destroy(&inf->lock);
    pthread_cond_destroy(&inf->synced_cond);
    free(inf);
}
