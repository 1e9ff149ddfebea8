/* patch.h - the four ways a client changes part of an object: JSON merge patch (RFC 7386),
 * JSON patch (RFC 6902), strategic merge patch (built-in kinds' merge keys and the $patch,
 * $setElementOrder, $retainKeys, $deleteFromPrimitiveList directives), and server-side apply
 * (managedFields per field manager, conflicts).
 *
 * All functions return a NEW object and never modify their inputs; on failure they return NULL
 * with *err set: CK_E_BAD_REQUEST for a malformed patch, CK_E_INVALID (422) where upstream answers
 * 422 (e.g. a failed JSON-patch "test" op or a path that does not exist), CK_E_CONFLICT for apply
 * conflicts (message lists the conflicting fields and managers as upstream does).
 */
#ifndef CK_PATCH_H
#define CK_PATCH_H

#include <jansson.h>
#include <stdbool.h>

#include "apiserver/resources.h"
#include "lib/error.h"

json_t *ck_patch_merge(const json_t *target, const json_t *patch, ck_error **err);
/* More operations than this: CK_E_TOO_LARGE, as upstream's maxJSONPatchOperations. */
#define CK_JSON_PATCH_MAX_OPS 10000
json_t *ck_patch_json(const json_t *doc, const json_t *ops, ck_error **err);
/* r selects the merge keys (containers by name, ports by containerPort, env by name, volumes by
 * name, ...); for kinds without a schema it behaves like a merge patch. */
json_t *ck_patch_strategic(const json_t *orig, const json_t *patch, const ck_resource *r,
                           ck_error **err);
/* Server-side apply of `applied` (the user's intent) by `manager` onto `live` (NULL: create).
 * Returns the new object with metadata.managedFields updated (operation Apply). */
json_t *ck_patch_apply(const json_t *live, const json_t *applied, const ck_resource *r,
                       const char *manager, bool force, ck_error **err);
/* Record a non-apply write (operation "Update") by `manager` in obj's managedFields, given the
 * previous object (NULL on create).  In place.  The entries start from obj's own managedFields when
 * the request carries a non-empty list (a client may edit them; [{}] resets them), else from old's.
 * The writer takes every field whose value it changed; removed fields leave every entry; the
 * entry's time moves only when it took something.  Do not call it after ck_patch_apply: an apply
 * records itself (operation Apply) and must not also leave an Update entry. */
void ck_managed_fields_record(json_t *obj, const json_t *old, const char *manager,
                              const char *operation, const char *api_version);
/* Same for a write to a subresource ("status": only status fields are tracked, and the entry
 * carries "subresource"; NULL = the main resource, where status is not tracked). */
void ck_managed_fields_record_sub(json_t *obj, const json_t *old, const char *manager,
                                  const char *operation, const char *api_version,
                                  const char *subresource);
/* Tests only: true makes every record take the general (flatten, sort, nest) path instead of the
 * short-cuts, so a test can hold the two to the same output. */
extern bool ck__managed_fields_no_shortcut;
extern unsigned long ck__managed_fields_shortcuts;   /* how often the create short-cut ran */

#endif
