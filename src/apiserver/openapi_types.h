/* openapi_types.h - the schema data openapi.c turns into OpenAPI documents and uses for unknown-field
 * detection.  One entry per type:
 *   name    unique id; the schema name is the id without a "CoreV1"/"EventsV1"/"DiscoveryV1"/
 *           "AuthenticationV1" prefix (those only disambiguate same-named types of two packages)
 *   pkg     "core.v1", "apps.v1", ..., or "meta" (apimachinery meta/v1)
 *   desc    one line, or NULL
 *   fields  space-separated "name:type" with an optional trailing '!' for required; type is
 *           string|integer|number|boolean|Time|Quantity|IntOrString|RawJSON|<TypeName>, optionally
 *           prefixed by "[]" (list) or "{}" (map of string to); RawJSON is a free-form subtree.
 *           Strategic-merge metadata follows: "@key" = patch strategy merge with merge key key,
 *           "@" = merge of a primitive list, "+retainKeys" = add retainKeys to the strategy
 *           ("volumes:[]Volume@name+retainKeys"); kubectl 1.30+ computes apply patches from it.
 * Field descriptions live in ck_oa_field_docs, keyed "Type.field". */
#ifndef CK_OPENAPI_TYPES_H
#define CK_OPENAPI_TYPES_H

#include <stddef.h>

typedef struct ck_oa_type {
    const char *name, *pkg, *desc, *fields;
} ck_oa_type;

typedef struct ck_oa_doc {
    const char *path, *desc;
} ck_oa_doc;

extern const ck_oa_type ck_oa_types[];
extern const size_t ck_oa_ntypes;
extern const ck_oa_doc ck_oa_field_docs[];
extern const size_t ck_oa_nfield_docs;

#endif
