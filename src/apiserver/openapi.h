/* openapi.h - OpenAPI documents for clients: /openapi/v3 (root index and one document per
 * group-version with components.schemas carrying x-kubernetes-group-version-kind, description and
 * properties, enough for `kubectl explain` and for kubectl to enable server-side field validation:
 * PATCH operations with a fieldValidation parameter), and /openapi/v2 as kubectl 1.27/1.28 need it.
 * The same schemas drive fieldValidation (unknown fields). */
#ifndef CK_OPENAPI_H
#define CK_OPENAPI_H

#include <jansson.h>
#include <stdbool.h>

#include "apiserver/resources.h"

json_t *ck_openapi_v3_root(void);
/* gv_path: "api/v1", "apis/apps/v1"; NULL if unknown. */
json_t *ck_openapi_v3_document(const char *gv_path);
/* The same document serialized (compact JSON), cached for the life of the process: serve it
 * without rebuilding.  *hash (optional) is the value the root puts after "?hash=", usable as an
 * ETag.  NULL if unknown.  Do not free. */
const char *ck_openapi_v3_document_json(const char *gv_path, size_t *len, const char **hash);
/* The /openapi/v2 answer: body bytes and content type (see kubectl-wire.md section 1). */
void ck_openapi_v2(const char *accept, const char **content_type, const char **body, size_t *len);
/* Append to `unknown` (a JSON array) a string per field of obj the kind's schema does not
 * declare, as a path like ".spec.containers[0].imagePullPolicyy".  Fields inside free-form maps
 * (labels, annotations, data, x-kubernetes-preserve-unknown-fields) are never unknown. */
void ck_openapi_unknown_fields(const ck_resource *r, const json_t *obj, json_t *unknown);
/* A JSON value of the wrong type for its field in a built-in kind, worded as upstream's Go
 * decoder words it ("json: cannot unmarshal array into Go struct field ConfigMap.data of type
 * map[string]string"; a malformed quantity gets ParseQuantity's text); path is where it is
 * (".data", "spec.containers[0].ports[1].containerPort" without the dot). */
typedef struct ck_type_error {
    bool found;
    char msg[1024];
    char path[1024];
} ck_type_error;
/* One walk over obj: the unknown fields of ck_openapi_unknown_fields when unknown is non-NULL,
 * and the first JSON type mismatch in *te (objects vs arrays vs strings vs numbers vs booleans,
 * int32/int64 range, int-or-string, quantities; null is accepted anywhere, as the decoder does).
 * Returns te->found. */
bool ck_openapi_check(const ck_resource *r, const json_t *obj, json_t *unknown, ck_type_error *te);
/* The same for the body of a subresource write: status and ephemeralcontainers take the
 * resource's kind, scale an autoscaling/v1 Scale, token a TokenRequest, eviction an Eviction,
 * binding a Binding; other subresources (log, exec, proxy, ...) have no schema: nothing is unknown.
 * (ck_openapi_unknown_fields also honours a body whose "kind" names one of those.) */
void ck_openapi_subresource_unknown_fields(const ck_resource *r, const char *subresource,
                                           const json_t *obj, json_t *unknown);

#endif
