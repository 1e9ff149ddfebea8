/* jsonfilter.h - cut a JSON text down to the members a reader wants, before it is parsed.
 *
 * Decoding a whole Kubernetes object with jansson costs ~10x its text in small allocations; a
 * cache that keeps a tenth of the fields still pays for building and freeing the whole tree.
 * ck_json_filter scans the text once (no allocation beyond the output) and copies only the
 * members a spec keeps, so jansson builds just those.
 *
 * A spec is a jansson value:
 *   true (or any non-object, non-false)  keep the value whole;
 *   false                                drop it (as a member value);
 *   an object                            for a JSON object: keep the members the spec names
 *                                        (each filtered by its own spec); members it does not
 *                                        name follow spec["*"] (absent = dropped).  For a JSON
 *                                        array: each element is filtered by this same spec.
 *                                        For a scalar: kept.
 * Member names are compared as raw text (a name written with escapes is never matched, so it
 * follows "*").
 */
#ifndef CK_JSONFILTER_H
#define CK_JSONFILTER_H

#include <jansson.h>
#include <stddef.h>

/* The filtered text of text[0..len) (NUL-terminated, never longer than len; caller frees), its
 * length in *out_len; NULL when the text is not well-formed JSON (the caller then parses it
 * unfiltered, which reports the error). */
char *ck_json_filter(const char *text, size_t len, const json_t *spec, size_t *out_len);

/* The same cut applied to a decoded value, in place (for text that was decoded whole). */
void ck_json_filter_tree(json_t *v, const json_t *spec);

#endif
