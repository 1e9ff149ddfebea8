/* pending.c - TEMPORARY weak placeholders for validate.h (branch kube-json), so this branch links
 * and runs before it is merged.  Every definition is weak: the real implementation replaces it at
 * link time as soon as it is merged, and this file is then deleted.  They validate nothing. */
#include "apiserver/validate.h"
#include "lib/util.h"

#define WEAK __attribute__((weak))

WEAK json_t *ck_validate(const ck_resource *r, const json_t *obj, const json_t *old) { return json_array(); }
WEAK char *ck_validate_message(const ck_resource *r, const char *name, const json_t *causes)
{ return xasprintf("%s \"%s\" is invalid", r->kind, name); }
WEAK void ck_default(const ck_resource *r, json_t *obj) {}
