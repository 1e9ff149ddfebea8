/* openapi.h - OpenAPI documents for clients: /openapi/v3 (root index and one document per
 * group-version with components.schemas carrying x-kubernetes-group-version-kind, description and
 * properties, enough for `kubectl explain` and for kubectl to enable server-side field validation:
 * PATCH operations with a fieldValidation parameter), and /openapi/v2 as kubectl 1.27/1.28 need it.
 * The same schemas drive fieldValidation (unknown fields). */
#ifndef CK_OPENAPI_H
#define CK_OPENAPI_H

#include <jansson.h>

#include "apiserver/resources.h"

json_t *ck_openapi_v3_root(void);
/* gv_path: "api/v1", "apis/apps/v1"; NULL if unknown. */
json_t *ck_openapi_v3_document(const char *gv_path);
/* The /openapi/v2 answer: body bytes and content type (see kubectl-wire.md section 1). */
void ck_openapi_v2(const char *accept, const char **content_type, const char **body, size_t *len);
/* Append to `unknown` (a JSON array) a string per field of obj the kind's schema does not
 * declare, as a path like ".spec.containers[0].imagePullPolicyy".  Fields inside free-form maps
 * (labels, annotations, data, x-kubernetes-preserve-unknown-fields) are never unknown. */
void ck_openapi_unknown_fields(const ck_resource *r, const json_t *obj, json_t *unknown);

#endif
