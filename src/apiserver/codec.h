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

/* json_loadb(s, n, flags, NULL)'s tree, faster for the plain JSON API objects are (jsonin.c);
 * flags: 0 or JSON_DECODE_ANY.  _plain: NULL when it did not handle the text (call json_loadb
 * then, for its tree or its error). */
json_t *ck_json_load_fast(const char *s, size_t n, size_t flags);
json_t *ck_json_parse_plain(const char *s, size_t n, size_t flags);

/* Decode by Content-Type ("application/json", "application/yaml",
 * "application/vnd.kubernetes.protobuf", and the patch types whose bodies are JSON or YAML).
 * duplicates (may be NULL): receives a JSON array of duplicate field paths (".metadata.name"). */
json_t *ck_decode_body(const char *content_type, const char *body, size_t len, json_t *duplicates,
                       ck_error **err);
/* JSON alone (any top-level value); duplicates as above. */
json_t *ck_json_load(const char *buf, size_t len, json_t *duplicates, ck_error **err);
/* The first YAML document (JSON null if there is none); YAML 1.1 scalars as sigs.k8s.io/yaml
 * resolves them; anchors/aliases expanded within a size budget; duplicates as above. */
json_t *ck_yaml_load(const char *buf, size_t len, ck_error **err);
json_t *ck_yaml_load_dups(const char *buf, size_t len, json_t *duplicates, ck_error **err);
/* Every non-empty document of a multi-document stream, as a JSON array. */
json_t *ck_yaml_load_all(const char *buf, size_t len, ck_error **err);
/* Nesting deeper than this (objects + arrays) is refused with CK_E_TOO_LARGE. */
#define CK_DECODE_MAX_DEPTH 1000
/* Alias expansion budget (nodes) of one YAML document: the billion-laughs guard. */
#define CK_YAML_MAX_NODES 2000000
json_t *ck_protobuf_decode(const void *buf, size_t len, ck_error **err);

#endif
