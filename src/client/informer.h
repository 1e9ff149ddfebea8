/* informer.h - a list+watch cache of one resource type (client-go's shared informer, our code).
 *
 * A background thread lists (paginated), then watches from the list's resourceVersion, keeps an
 * in-memory map "namespace/name" -> object, and calls the handlers after each change.  When the
 * watch ends it re-watches from the last seen resourceVersion; when the server says that version is
 * too old (410) it relists and turns the difference into add/update/delete calls, so a consumer
 * never depends on having seen every event (level-triggered).  A dead API server is retried with
 * backoff, never fatal.
 *
 * Handlers run on the informer thread, one at a time, after the cache holds the change.  They must
 * not block for long (controllers enqueue a key into a workqueue and return).  The objects passed
 * are borrowed: json_incref what you keep.
 */
#ifndef CK_INFORMER_H
#define CK_INFORMER_H

#include <jansson.h>
#include <stdbool.h>

#include "apiserver/resources.h"
#include "client/client.h"

typedef struct ck_informer_handlers {
    void (*on_add)(void *ctx, json_t *obj);
    void (*on_update)(void *ctx, json_t *old_obj, json_t *new_obj);
    void (*on_delete)(void *ctx, json_t *obj);
} ck_informer_handlers;

typedef struct ck_informer ck_informer;

/* ns NULL or "" = all namespaces; selectors may be NULL.  handlers may be NULL (cache only). */
ck_informer *ck_informer_new(ck_client *c, const ck_resource *r, const char *ns,
                             const char *label_selector, const char *field_selector,
                             const ck_informer_handlers *handlers, void *ctx);
/* Optional, before start: called on every object (listed or watched) before it is cached, to
 * drop what the consumer never reads (client-go's TransformFunc; e.g. managedFields, which can
 * be most of an object's size). */
typedef void (*ck_informer_transform)(void *ctx, json_t *obj);
void ck_informer_set_transform(ck_informer *inf, ck_informer_transform fn);
/* Optional, before start: cache only each object's resourceVersion, for consumers that keep what
 * they need themselves and must stay small at tens of thousands of objects.  Handlers still get
 * whole new objects; old_obj in on_update and the object of a relist's on_delete are then stubs
 * holding only metadata.name/namespace, and ck_informer_get/list return resourceVersion strings. */
void ck_informer_set_cache_stubs(ck_informer *inf, bool stubs);
/* Optional, before start: decode only what keep names of each listed or watched object
 * (client/jsonpick.h; it must keep metadata.name, namespace and resourceVersion, and outlive the
 * informer): the parsing cost and the garbage of the rest are never paid.  The transform still
 * runs on what is decoded. */
void ck_informer_set_keep(ck_informer *inf, const ck_jsonpick *keep);
/* Optional, before start, after set_cache_stubs(true) (aborts otherwise): a first look at each
 * watched MODIFIED event of a cached object, decoded with `light` (a keep list naming fewer
 * fields than set_keep's: it must keep metadata.name, namespace and resourceVersion, and
 * outlive the informer).  consume(ctx, light_obj) returns true when the consumer dealt with the
 * update from those fields (its own write coming back, a status report it does not read): the
 * cache records the new resourceVersion and no handler is called.  false: the event is decoded
 * with the keep list and delivered as usual.  Adds, deletes and relists are never consumed. */
typedef bool (*ck_informer_consume)(void *ctx, json_t *light_obj);
void ck_informer_set_light(ck_informer *inf, const ck_jsonpick *light, ck_informer_consume fn);
/* Strips metadata.managedFields: a ready-made transform. */
void ck_informer_strip_managed_fields(void *ctx, json_t *obj);
void ck_informer_start(ck_informer *inf);
/* True once the first list has been delivered. */
bool ck_informer_synced(ck_informer *inf);
/* Wait up to timeout_ms for synced; returns whether it is. */
bool ck_informer_wait_synced(ck_informer *inf, int timeout_ms);

/* A NEW reference to the cached object, or NULL.  ns is ignored for cluster-scoped kinds. */
json_t *ck_informer_get(ck_informer *inf, const char *ns, const char *name);
/* A NEW array holding (references to) every cached object. */
json_t *ck_informer_list(ck_informer *inf);
size_t ck_informer_count(ck_informer *inf);
/* The cache key of an object: "namespace/name" or "name".  Caller frees. */
char *ck_informer_key(const json_t *obj);

/* Stops the thread (within about a second), frees everything. */
void ck_informer_free(ck_informer *inf);

#endif
