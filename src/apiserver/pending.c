/* pending.c - TEMPORARY weak placeholders for functions other branches provide (patch.h,
 * validate.h, openapi.h), so this branch links and runs before they are merged.  Every definition
 * is weak: the real implementation replaces it at link time as soon as its branch is merged, and
 * this file is then deleted.  None of them implements the feature: they refuse or do nothing. */
#include "apiserver/openapi.h"
#include "apiserver/patch.h"
#include "apiserver/validate.h"
#include "lib/util.h"

#include <string.h>

#define WEAK __attribute__((weak))

static json_t *unsupported(ck_error **err)
{
    ck_error_set(err, CK_E_UNSUPPORTED_TYPE, "this patch type is not available yet");
    return NULL;
}

WEAK json_t *ck_patch_merge(const json_t *t, const json_t *p, ck_error **err) { return unsupported(err); }
WEAK json_t *ck_patch_json(const json_t *d, const json_t *o, ck_error **err) { return unsupported(err); }
WEAK json_t *ck_patch_strategic(const json_t *o, const json_t *p, const ck_resource *r, ck_error **err)
{ return unsupported(err); }
WEAK json_t *ck_patch_apply(const json_t *l, const json_t *a, const ck_resource *r, const char *m,
                            bool f, ck_error **err)
{ return unsupported(err); }
WEAK void ck_managed_fields_record(json_t *obj, const json_t *old, const char *manager,
                                   const char *operation, const char *api_version) {}
WEAK json_t *ck_validate(const ck_resource *r, const json_t *obj, const json_t *old) { return json_array(); }
WEAK char *ck_validate_message(const ck_resource *r, const char *name, const json_t *causes)
{ return xasprintf("%s \"%s\" is invalid", r->kind, name); }
WEAK void ck_default(const ck_resource *r, json_t *obj) {}
WEAK json_t *ck_openapi_v3_root(void) { return json_pack("{s:{}}", "paths"); }
WEAK json_t *ck_openapi_v3_document(const char *gv_path) { return NULL; }
WEAK void ck_openapi_v2(const char *accept, const char **ct, const char **body, size_t *len)
{
    *ct = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
    *body = "";
    *len = 0;
}
WEAK void ck_openapi_unknown_fields(const ck_resource *r, const json_t *obj, json_t *unknown) {}
