/* base64.h - unpadded base64url (RFC 4648 section 5), as upstream's continue tokens and JWTs use,
 * and padded standard base64 (section 4), as Secret data and registry credentials use.
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

/* Standard alphabet, padded: a NUL-terminated string.  Caller frees. */
char *ck_b64_encode(const void *in, size_t n);

/* Standard alphabet, padded (length a multiple of 4); returns a NUL-terminated copy with the
 * byte count in *outlen, or NULL if s is not valid base64.  Caller frees. */
unsigned char *ck_b64_decode(const char *s, size_t *outlen);

/* [s, s+n) in the standard or the URL alphabet, whitespace skipped, '=' padding optional, as
 * kubeconfig "*-data" fields and etcd's JSON gateway carry bytes.  A NUL-terminated copy with
 * the byte count in *outlen, or NULL on any other character.  Caller frees. */
unsigned char *ck_b64_decode_lenient(const char *s, size_t n, size_t *outlen);

#endif
