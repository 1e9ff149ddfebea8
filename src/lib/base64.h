/* base64.h - unpadded base64url (RFC 4648 section 5), as upstream's continue tokens and JWTs use.
 *
 * Encoding appends to a ck_buf (so a caller can build "a.b.c" in one buffer) and never pads.
 * Decoding takes the URL alphabet only, tolerates trailing '=' padding, and returns a
 * NUL-terminated copy (so text can be parsed directly) or NULL on any other character. */
#ifndef CK_BASE64_H
#define CK_BASE64_H

#include "lib/util.h"

#include <stddef.h>

/* -1 if out's limit is reached (out then holds a prefix). */
int ck_b64url_encode(ck_buf *out, const void *in, size_t n);

/* Decode [s, s+n); *outlen gets the byte count.  Caller frees. */
unsigned char *ck_b64url_decode(const char *s, size_t n, size_t *outlen);

#endif
