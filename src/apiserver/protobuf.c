/* protobuf.c - placeholder until the table-driven decoder lands. */
#include "apiserver/codec.h"

json_t *ck_protobuf_decode(const void *buf, size_t len, ck_error **err)
{
    ck_error_set(err, CK_E_UNSUPPORTED_TYPE, "protobuf bodies are not decoded yet");
    return NULL;
}
