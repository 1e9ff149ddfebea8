/* selector.h - label and field selectors (apimachinery's labels/fields packages, our own code).
 *
 * Label selector strings: "a=b", "a==b", "a!=b", "a in (x,y)", "a notin (x)", "a", "!a", comma
 * separated = AND.  Field selector strings: "f=v", "f==v", "f!=v", comma separated.
 * An empty or NULL string parses to a selector that matches everything.
 * Errors: CK_E_BAD_REQUEST with upstream's wording (e.g. `unable to parse requirement: ...`,
 * `field label not supported: spec.foo`).
 */
#ifndef CK_SELECTOR_H
#define CK_SELECTOR_H

#include <jansson.h>
#include <stdbool.h>

#include "apiserver/resources.h"
#include "lib/error.h"

typedef struct ck_selector ck_selector;

ck_selector *ck_label_selector_parse(const char *s, ck_error **err);
/* From a metav1.LabelSelector object ({matchLabels, matchExpressions}).  Upstream semantics: a
 * NULL json selector matches nothing, an empty object {} matches everything. */
ck_selector *ck_label_selector_from_json(const json_t *label_selector, ck_error **err);
/* labels: the metadata.labels object (may be NULL = no labels). */
bool ck_label_selector_matches(const ck_selector *s, const json_t *labels);

/* Field selectors are checked against the fields upstream supports for the resource
 * (metadata.name and metadata.namespace everywhere, plus per kind: pods spec.nodeName,
 * spec.schedulerName, status.phase, status.podIP, spec.restartPolicy, spec.serviceAccountName...;
 * events involvedObject.*, reason, source, type; secrets type; nodes spec.unschedulable;
 * namespaces status.phase; jobs status.successful; ...).  Unsupported field -> CK_E_BAD_REQUEST. */
ck_selector *ck_field_selector_parse(const char *s, const ck_resource *r, ck_error **err);
bool ck_field_selector_matches(const ck_selector *s, const json_t *obj);
/* If the selector pins one value of a field with "=" (e.g. metadata.name=x), return it (else NULL). */
const char *ck_selector_exact(const ck_selector *s, const char *field);

bool ck_selector_is_empty(const ck_selector *s);   /* matches everything */
void ck_selector_free(ck_selector *s);

#endif
