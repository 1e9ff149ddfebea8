/* error.h - the error contract (after crun's design-docs/error_handling.md).
 *
 * A function that can fail takes `ck_error **err` as its last parameter and returns a negative
 * value (or NULL).  On failure it sets *err to a newly allocated error; the caller either handles
 * it (and calls ck_error_free) or adds context with ck_error_wrap and returns it upward.
 * On success *err is left untouched.  Passing err == NULL is allowed: the error is dropped.
 *
 * Every error has a code from CK_ERRORS below; the table maps it to the HTTP status and the
 * Kubernetes metav1.Status reason that the API server sends, so the mapping lives in one place.
 */
#ifndef CK_ERROR_H
#define CK_ERROR_H

#include <stdarg.h>

/*        name              http  kubernetes reason */
#define CK_ERRORS(X)                                              \
    X(CK_E_INTERNAL,         500, "InternalError")                \
    X(CK_E_NOT_FOUND,        404, "NotFound")                     \
    X(CK_E_EXISTS,           409, "AlreadyExists")                \
    X(CK_E_CONFLICT,         409, "Conflict")                     \
    X(CK_E_INVALID,          422, "Invalid")                      \
    X(CK_E_BAD_REQUEST,      400, "BadRequest")                   \
    X(CK_E_UNAUTHORIZED,     401, "Unauthorized")                 \
    X(CK_E_FORBIDDEN,        403, "Forbidden")                    \
    X(CK_E_METHOD,           405, "MethodNotAllowed")             \
    X(CK_E_NOT_ACCEPTABLE,   406, "NotAcceptable")                \
    X(CK_E_EXPIRED,          410, "Expired")                      \
    X(CK_E_TOO_LARGE,        413, "RequestEntityTooLarge")        \
    X(CK_E_UNSUPPORTED_TYPE, 415, "UnsupportedMediaType")         \
    X(CK_E_TOO_MANY,         429, "TooManyRequests")              \
    X(CK_E_TIMEOUT,          504, "Timeout")                      \
    X(CK_E_UNAVAILABLE,      503, "ServiceUnavailable")           \
    X(CK_E_IO,               500, "InternalError")                \
    X(CK_E_CORRUPT,          500, "InternalError")                \
    X(CK_E_USAGE,            400, "BadRequest")

enum ck_error_code {
#define CK_X_ENUM(name, http, reason) name,
    CK_ERRORS(CK_X_ENUM)
#undef CK_X_ENUM
    CK_E__COUNT
};

typedef struct ck_error {
    enum ck_error_code code;
    int sys_errno;      /* errno at the failure, 0 if none */
    char *msg;          /* human-readable, already includes context */
} ck_error;

/* Set *err (if err != NULL) and return -1, so `return ck_error_set(err, ...)` reads naturally. */
int ck_error_set(ck_error **err, enum ck_error_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Same, appending ": strerror(errno)" and recording errno. */
int ck_error_sys(ck_error **err, enum ck_error_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix context: "ctx: old message".  Returns -1. */
int ck_error_wrap(ck_error **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands e (an error a callee set) to the caller: into *err when the caller asked for errors,
 * freed otherwise.  Returns -1. */
int ck_error_pass(ck_error **err, ck_error *e);
void ck_error_free(ck_error *e);
void ck_error_freep(ck_error **e);
#define cleanup_error __attribute__((cleanup(ck_error_freep)))

int ck_error_http_status(enum ck_error_code code);
const char *ck_error_reason(enum ck_error_code code);
const char *ck_error_name(enum ck_error_code code);

#endif
