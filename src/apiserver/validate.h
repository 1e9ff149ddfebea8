/* validate.h - per-kind validation and defaulting, as upstream's pkg/apis/<group>/validation and
 * defaults do for the built-in kinds.
 *
 * ck_validate returns a NEW JSON array of causes, each {"reason","message","field"} with upstream's
 * reasons (FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, FieldValueDuplicate,
 * FieldValueForbidden, FieldValueTooLong) and field paths ("spec.containers[0].image"); an empty
 * array means valid.  old is NULL on create; on update it enables immutability checks (a pod's spec
 * except the fields upstream allows, a Service's clusterIP, a Job's selector/template, ...).
 * ck_validate_message builds the Status message upstream prints:
 *   `Pod "x" is invalid: [spec.containers[0].image: Required value, ...]` (no brackets for one cause).
 */
#ifndef CK_VALIDATE_H
#define CK_VALIDATE_H

#include <jansson.h>

#include "apiserver/resources.h"

json_t *ck_validate(const ck_resource *r, const json_t *obj, const json_t *old);
char *ck_validate_message(const ck_resource *r, const char *name, const json_t *causes);
/* Upstream defaulting, in place (pod restartPolicy, dnsPolicy, terminationGracePeriodSeconds,
 * imagePullPolicy by tag, container terminationMessagePath/Policy, schedulerName, service
 * sessionAffinity/type/protocol/targetPort, deployment strategy/replicas/revisionHistoryLimit/
 * progressDeadlineSeconds, job completions/parallelism/backoffLimit, ...).  Does not allocate
 * cluster IPs or node ports (the REST layer does, it holds the state). */
void ck_default(const ck_resource *r, json_t *obj);

#endif
