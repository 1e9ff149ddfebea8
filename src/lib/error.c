/* error.c - see error.h. */
#include "lib/error.h"
#include "lib/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    int http;
    const char *reason, *name;
} error_table[] = {
#define CK_X_ROW(name, http, reason) {http, reason, #name},
    CK_ERRORS(CK_X_ROW)
#undef CK_X_ROW
};

static int set_v(ck_error **err, enum ck_error_code code, int sys, const char *fmt, va_list ap)
{
    if (!err)
        return -1;
    ck_error *e = xcalloc(1, sizeof *e);
    e->code = code;
    e->sys_errno = sys;
    char *m = xvasprintf(fmt, ap);
    if (sys) {
        e->msg = xasprintf("%s: %s", m, strerror(sys));
        free(m);
    } else {
        e->msg = m;
    }
    if (*err)   /* a caller forgot to free an earlier error: keep the newest, drop the old */
        ck_error_free(*err);
    *err = e;
    return -1;
}

int ck_error_set(ck_error **err, enum ck_error_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_v(err, code, 0, fmt, ap);
    va_end(ap);
    return -1;
}

int ck_error_sys(ck_error **err, enum ck_error_code code, const char *fmt, ...)
{
    int sys = errno;
    va_list ap;
    va_start(ap, fmt);
    set_v(err, code, sys ? sys : EIO, fmt, ap);
    va_end(ap);
    return -1;
}

int ck_error_wrap(ck_error **err, const char *fmt, ...)
{
    if (!err || !*err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    char *ctx = xvasprintf(fmt, ap);
    va_end(ap);
    char *m = xasprintf("%s: %s", ctx, (*err)->msg);
    free(ctx);
    free((*err)->msg);
    (*err)->msg = m;
    return -1;
}

int ck_error_pass(ck_error **err, ck_error *e)
{
    if (err)
        *err = e;
    else
        ck_error_free(e);
    return -1;
}

void ck_error_free(ck_error *e)
{
    if (!e)
        return;
    free(e->msg);
    free(e);
}

void ck_error_freep(ck_error **e)
{
    ck_error_free(*e);
    *e = NULL;
}

int ck_error_http_status(enum ck_error_code code)
{
    return code < CK_E__COUNT ? error_table[code].http : 500;
}

const char *ck_error_reason(enum ck_error_code code)
{
    return code < CK_E__COUNT ? error_table[code].reason : "InternalError";
}

const char *ck_error_name(enum ck_error_code code)
{
    return code < CK_E__COUNT ? error_table[code].name : "CK_E_?";
}
