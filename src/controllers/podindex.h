/* podindex.h - which pods are bound to which node, kept from the controller-manager's shared pod
 * informer (client-go's indexer with a spec.nodeName index, our code).
 *
 * A controller that acts on "the pods of node N" (node lifecycle: mark them not ready, evict
 * them) reads the keys here instead of listing every cached pod per node: O(pods on N), not
 * O(all pods).  The index is fed by informer handlers (cm_podindex_handlers), so it follows adds,
 * updates (a pod bound, rebound, or its nodeName cleared), deletes and relists as the cache does.
 * Keys are the informer's ("namespace/name"); a reader looks each up in the informer and checks
 * spec.nodeName again, since the cache may have moved on between the two reads.
 * Safe to use from any thread.
 */
#ifndef CK_CM_PODINDEX_H
#define CK_CM_PODINDEX_H

#include <jansson.h>
#include <stddef.h>

#include "client/informer.h"

typedef struct cm_podindex cm_podindex;

cm_podindex *cm_podindex_new(void);
void cm_podindex_free(cm_podindex *x);
/* Records that pod `key` is on `node` (NULL or "": on none, i.e. forgets it). */
void cm_podindex_set(cm_podindex *x, const char *key, const char *node);
void cm_podindex_del(cm_podindex *x, const char *key);
/* A NEW array of the keys (strings) of the pods on node, in no particular order. */
json_t *cm_podindex_keys(cm_podindex *x, const char *node);
size_t cm_podindex_count(cm_podindex *x);            /* pods on some node */
/* Handlers that keep x in step with a pod informer (ctx = x). */
extern const ck_informer_handlers cm_podindex_handlers;

#endif
