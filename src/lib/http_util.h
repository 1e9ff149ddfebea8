/* http_util.h - small pure HTTP/1.1 helpers shared by httpd.c (internal to src/lib).
 *
 * Nothing here touches sockets or threads: token and field checks for the request parser,
 * percent-decoding, reason phrases, the Date header and the metav1.Status error body.  Kept apart
 * so the parser rules can be unit-tested without a server.
 */
#ifndef CK_HTTP_UTIL_H
#define CK_HTTP_UTIL_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 9110 tchar (method and header field names). */
bool ck_http__is_token(const char *s, size_t n);
/* Field value: visible ASCII, obs-text, SP and HTAB only (no CR, LF, NUL or other CTLs). */
bool ck_http__is_field_value(const char *s, size_t n);
/* Percent-decode s[0..n) into a new string.  plus_space: '+' means ' ' (query strings).
 * strict: a malformed %-escape or a decoded NUL is an error (NULL); otherwise kept literally. */
char *ck_http__pct_decode(const char *s, size_t n, bool plus_space, bool strict);
/* "OK", "Not Found", ...; "Unknown" for codes we never send. */
const char *ck_http__reason(int status);
/* IMF-fixdate for now ("Wed, 25 Nov 2026 16:50:52 GMT"); out must hold 32 bytes.  Cached per
 * second per thread. */
void ck_http__date(char out[32]);
/* A metav1.Status JSON body for an error the server answers itself (400, 413, 431, ...). */
char *ck_http__status_json(int code, const char *reason, const char *message);
/* Does a comma-separated header value contain `token` (case-insensitive)? */
bool ck_http__has_token(const char *value, const char *token);
/* Does a block of "Name: value\r\n" lines contain a header `name` whose value has `token`? */
bool ck_http__lines_have_token(const char *lines, const char *name, const char *token);

#endif
