/* apply.c - placeholder */
#include "apiserver/patch.h"
json_t *ck_patch_apply(const json_t *live, const json_t *applied, const ck_resource *r,
                       const char *manager, bool force, ck_error **err)
{
    ck_error_set(err, CK_E_UNSUPPORTED_TYPE, "server-side apply not implemented yet");
    return NULL;
}
void ck_managed_fields_record(json_t *obj, const json_t *old, const char *manager,
                              const char *operation, const char *api_version)
{
}
