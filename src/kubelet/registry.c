/* registry.c - image pulls over the registry v2 API (placeholder: not implemented yet).
 *
 * Until it is, a missing image fails with ErrImagePull and this message, and images are put on
 * the node with `ckube images import`. */
#include "kubelet/kubelet.h"

int ck_images_pull(const char *root, const char *ref, const json_t *auths, ck_error **err)
{
    (void)root;
    (void)auths;
    return ck_error_set(err, CK_E_UNAVAILABLE,
                        "pulling %s: registry pulls are not implemented yet (use ckube images import)", ref);
}
