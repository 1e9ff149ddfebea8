/* jsonpick.h - decode only the parts of a JSON document a consumer reads.
 *
 * A watch event or list page of pods is mostly what a scheduler or hollow kubelet never looks at
 * (managedFields, env, volumes, images, probes ...), yet jansson's json_loadb builds a tree of it
 * all, one allocation per value: that was a third of the scheduler's CPU.  ck_jsonpick_parse
 * walks the text once, skips unwanted members by scanning bytes (no allocation), and hands only
 * the kept values to jansson.
 *
 * A keep list is an array of {key, sub} ended by {NULL}: members not named are dropped; a member
 * with sub NULL is kept whole; with sub, an object value is picked recursively with sub and an
 * array value has each object element picked with sub (other values are kept as they are).
 *
 * Contract: text must be one JSON object.  The skipped parts are checked only for balance, not
 * fully validated (the kept parts are, by jansson); a document that is not balanced, or whose
 * top level is not an object, is an error (CK_E_BAD_REQUEST).
 */
#ifndef CK_JSONPICK_H
#define CK_JSONPICK_H

#include <jansson.h>
#include <stddef.h>

#include "lib/error.h"

typedef struct ck_jsonpick {
    const char *key;
    const struct ck_jsonpick *sub;
} ck_jsonpick;

/* A NEW object holding the kept members of the object in text[0..len), or NULL with *err. */
json_t *ck_jsonpick_parse(const char *text, size_t len, const ck_jsonpick *keep, ck_error **err);

#endif
