/* jsonpick.h - decode only the parts of a JSON document a consumer reads.
 *
 * A watch event or list page of pods is mostly what a scheduler or hollow kubelet never looks at
 * (managedFields, env, volumes, images, probes ...), yet jansson's json_loadb builds a tree of it
 * all, one allocation per value: that was a third of the scheduler's CPU.  ck_jsonpick_parse
 * walks the text once, skips unwanted members by scanning bytes (no allocation), and hands only
 * the kept values to jansson.
 *
 * A keep list is an array of {key, sub} ended by {NULL}:
 *   {"name", NULL}              keep that member whole;
 *   {"name", sub}               an object value is picked recursively with sub, an array value
 *                               has each element picked with sub (scalars are kept as they are);
 *   {"name", CK_JSONPICK_DROP}  drop that member (for use with "*");
 *   {"*", sub}                  what every member the list does not name gets (NULL: kept
 *                               whole); without a "*" entry members not named are dropped.
 * A NULL keep list keeps everything; an empty one ({NULL}) keeps no member.  Member names are
 * matched after unescaping.  Keep lists are static C data: no allocation, no set-up.
 *
 * ck_jsonpick_tree applies the same cut to an already-decoded value (a cache's transform that
 * must end the same whatever path the object came by).
 *
 * Contract: text must be one JSON object.  The skipped parts are checked only for balance, not
 * fully validated (the kept parts are); a document that is not balanced, or whose top level is
 * not an object, is an error (CK_E_BAD_REQUEST).
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

/* The sub of a member to drop (an empty list, told apart by its address). */
extern const ck_jsonpick ck_jsonpick_drop[1];
#define CK_JSONPICK_DROP ck_jsonpick_drop

/* A NEW object holding the kept members of the object in text[0..len), or NULL with *err. */
json_t *ck_jsonpick_parse(const char *text, size_t len, const ck_jsonpick *keep, ck_error **err);

/* The same cut applied to v in place (members dropped, kept ones cut further). */
void ck_jsonpick_tree(json_t *v, const ck_jsonpick *keep);

#endif
