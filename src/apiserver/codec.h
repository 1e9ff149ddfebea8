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

/* Raw members (jsonin.c, jsonout.c).  A status write keeps the stored spec as it is, so parsing it
 * into a tree, freeing it and printing it again is work without effect.  ck_json_load_raw
 * parses the top-level object s[0..n) like ck_json_load_fast except that the members named in
 * raw_keys (space-separated; "a.b.c" names c in the objects under a.b, array elements included)
 * stay their text: an opaque string node ck_json_print prints verbatim.  Everything else sees a string, so only a member no step of the write looks into may
 * be raw (a status write's spec: shared by old and new, skipped by validation and managedFields,
 * defaults leave non-objects alone).  No UTF-8 string can begin as a raw node does (0xFF), so no
 * decoded value is ever mistaken for one.  NULL (use ck_json_load_fast) unless s is a plain
 * object with unescaped ASCII keys, each once, and the raw members are objects.  The raw text is
 * printed as stored: like lists and watch, this relies on stored values being our compact print
 * (test_apiserver holds the output to a full parse's). */
json_t *ck_json_load_raw(const char *s, size_t n, const char *raw_keys);
/* what a pod status merge patch reads raw */
#define CK_STATUS_RAW_KEYS "spec metadata.managedFields.fieldsV1"
/* the raw text of a node ck_json_load_raw made, else NULL */
const char *ck_json_raw_text(const json_t *v, size_t *len);

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
