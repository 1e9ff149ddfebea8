/* codec.h - request bodies to JSON trees: JSON (with duplicate-field detection for
 * fieldValidation), YAML (libyaml; apply-patch+yaml and kubectl's YAML), and Kubernetes protobuf
 * (the "k8s\0" + runtime.Unknown envelope that kubectl 1.32+ sends for the kinds listed in
 * docs kubectl-wire.md section 3).
 *
 * Errors: CK_E_BAD_REQUEST for malformed input (message as upstream words it, e.g.
 * `couldn't get version/kind; json parse error: ...`), CK_E_UNSUPPORTED_TYPE (415) for a content
 * type we do not decode, CK_E_TOO_LARGE for nesting deeper than the limit.
 */
#ifndef CK_CODEC_H
#define CK_CODEC_H

#include <jansson.h>
#include <stddef.h>

#include "lib/error.h"

/* Decode by Content-Type ("application/json", "application/yaml",
 * "application/vnd.kubernetes.protobuf", and the patch types whose bodies are JSON or YAML).
 * duplicates (may be NULL): receives a JSON array of duplicate field paths (".metadata.name"). */
json_t *ck_decode_body(const char *content_type, const char *body, size_t len, json_t *duplicates,
                       ck_error **err);
json_t *ck_yaml_load(const char *buf, size_t len, ck_error **err);
json_t *ck_protobuf_decode(const void *buf, size_t len, ck_error **err);

#endif
