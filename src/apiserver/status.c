/* status.c - every API answer leaves through here: metav1.Status for errors (HTTP status and
 * reason from the error table in lib/error.h, details from the route), JSON bodies with the
 * request's Warning headers, and the small query helpers the verbs share. */
#include "apiserver/apiserver.h"
#include "apiserver/validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A JSON string even when s is not valid UTF-8 (a name or message echoing a peer's bytes):
 * jansson refuses those, and an error must never turn into a 500 for it. */
static json_t *lossy_string(const char *s)
{
    json_t *j = json_string(s);
    if (!j) {
        char *clean = ck_utf8_sanitize(s);
        j = json_string(clean);
        free(clean);
    }
    return j;
}

json_t *ck_status_json(int code, const char *reason, const char *message, json_t *details)
{
    json_t *st = json_pack("{s:s, s:s, s:{}, s:s, s:o}", "kind", "Status", "apiVersion", "v1",
                           "metadata", "status", code < 400 ? "Success" : "Failure", "message",
                           lossy_string(message ? message : ""));
    if (code >= 400 && reason && *reason)
        json_object_set_new(st, "reason", json_string(reason));
    if (details)
        json_object_set_new(st, "details", details);
    json_object_set_new(st, "code", json_integer(code));
    return st;
}

json_t *ck_status_from_error(const ck_error *e, const ck_route *rt, json_t *causes)
{
    int code = ck_error_http_status(e->code);
    const char *reason = ck_error_reason(e->code);
    json_t *details = NULL;
    const ck_resource *r = rt ? rt->res : NULL;
    if (r && rt->kind == CK_ROUTE_RESOURCE &&
        (e->code == CK_E_NOT_FOUND || e->code == CK_E_EXISTS || e->code == CK_E_CONFLICT ||
         e->code == CK_E_INVALID || e->code == CK_E_FORBIDDEN || e->code == CK_E_EXPIRED)) {
        details = json_object();
        if (rt->name)
            json_object_set_new(details, "name", lossy_string(rt->name));
        if (r->group[0])
            json_object_set_new(details, "group", json_string(r->group));
        /* upstream: the Kind for Invalid, the plural resource for the rest */
        json_object_set_new(details, "kind",
                            json_string(e->code == CK_E_INVALID ? r->kind : r->resource));
    }
    if (causes && json_array_size(causes)) {
        if (!details)
            details = json_object();
        json_object_set(details, "causes", causes);
    }
    if (e->code == CK_E_TOO_MANY) {
        if (!details)
            details = json_object();
        json_object_set_new(details, "retryAfterSeconds", json_integer(1));
    }
    return ck_status_json(code, reason, e->msg, details);
}

static void respond_body(ck_reqctx *c, int status, const char *ctype, const char *body, size_t len)
{
    if (c->responded)
        return;
    c->responded = true;
    c->status = status;
    ck_http_respond(c->resp, status, ctype, c->warnings.len ? c->warnings.data : NULL, body, len);
}

void ck_respond_json(ck_reqctx *c, int status, json_t *body)
{
    size_t len = 0;
    char *text = ck_json_print(body, &len);
    json_decref(body);
    if (!text) {
        static const char fallback[] = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                                       "\"status\":\"Failure\",\"message\":\"encoding failed\","
                                       "\"reason\":\"InternalError\",\"code\":500}";
        respond_body(c, 500, "application/json", fallback, sizeof fallback - 1);
        return;
    }
    respond_body(c, status, "application/json", text, len);
    free(text);
}

/* Status Success's text for a 2xx code: what ck_json_print(ck_status_json(code, NULL, NULL,
 * NULL)) gives (test_apiserver compares them), without building and printing a tree on every
 * binding. */
size_t ck_status_success_text(int code, char *buf, size_t size)
{
    int n = snprintf(buf, size, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                                "\"status\":\"Success\",\"message\":\"\",\"code\":%d}", code);
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

void ck_respond_success(ck_reqctx *c, int code)
{
    char buf[160];
    size_t n = code >= 100 && code < 400 ? ck_status_success_text(code, buf, sizeof buf) : 0;
    if (!n)
        return ck_respond_json(c, code, ck_status_json(code, NULL, NULL, NULL));
    respond_body(c, code, "application/json", buf, n);
}

void ck_respond_error(ck_reqctx *c, ck_error *e)
{
    if (!e) {
        ck_error *tmp = NULL;
        ck_error_set(&tmp, CK_E_INTERNAL, "unknown error");
        e = tmp;
    }
    json_t *st;
    if (c->details) {
        /* an error about the request's options: upstream names the options kind, not the route */
        st = ck_status_json(ck_error_http_status(e->code), ck_error_reason(e->code), e->msg,
                            c->details);
        c->details = NULL;
    } else {
        st = ck_status_from_error(e, c->no_details ? NULL : &c->route, c->causes);
    }
    int code = ck_error_http_status(e->code);
    ck_error_free(e);
    ck_respond_json(c, code, st);
}

void ck_respond_text(ck_reqctx *c, int status, const char *ctype, const char *text)
{
    respond_body(c, status, ctype, text, strlen(text));
}

void ck_respond_bytes(ck_reqctx *c, int status, const char *ctype, const char *body, size_t len)
{
    respond_body(c, status, ctype, body, len);
}

void ck_respond_json_ct(ck_reqctx *c, int status, const char *ctype, json_t *body)
{
    size_t len = 0;
    char *text = ck_json_print(body, &len);
    json_decref(body);
    if (!text)
        return ck_respond_json(c, 500, ck_status_json(500, "InternalError", "encoding failed", NULL));
    respond_body(c, status, ctype, text, len);
    free(text);
}

void ck_warn(ck_reqctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    ck_buf_addstr(&c->warnings, "Warning: 299 - \"");
    for (const char *p = msg; *p; p++) {
        if (*p == '"' || *p == '\\')
            ck_buf_add(&c->warnings, "\\", 1);
        if (*p == '\r' || *p == '\n')
            continue;
        ck_buf_add(&c->warnings, p, 1);
    }
    ck_buf_addstr(&c->warnings, "\"\r\n");
    free(msg);
}

int ck_err_not_found(ck_error **err, const ck_resource *r, const char *name)
{
    return ck_error_set(err, CK_E_NOT_FOUND, "%s \"%s\" not found", ck_res_qualified(r), name);
}

int ck_err_exists(ck_error **err, const ck_resource *r, const char *name)
{
    return ck_error_set(err, CK_E_EXISTS, "%s \"%s\" already exists", ck_res_qualified(r), name);
}

int ck_err_conflict(ck_error **err, const ck_resource *r, const char *name)
{
    return ck_error_set(err, CK_E_CONFLICT,
                        "Operation cannot be fulfilled on %s \"%s\": the object has been modified; "
                        "please apply your changes to the latest version and try again",
                        ck_res_qualified(r), name);
}

char *ck_query(const ck_reqctx *c, const char *name)
{
    if (!c->req->query || !*c->req->query)
        return NULL;
    return ck_http_query_param(c->req->query, name);
}

bool ck_query_bool(const ck_reqctx *c, const char *name)
{
    return c->req && ck_http_query_bool(c->req->query, name);
}

/* The first media range we can produce decides (protobuf ranges are skipped: we answer JSON). */
enum ck_accept_as ck_accept_as(const ck_reqctx *c)
{
    const char *accept = c->req ? ck_http_req_header(c->req, "Accept") : NULL;
    if (!accept)
        return CK_AS_OBJECT;
    for (const char *p = accept; *p;) {
        size_t n = strcspn(p, ",");
        char *range = xstrndup(p, n);
        p += n;
        if (*p == ',')
            p++;
        bool json = strstr(range, "application/json") || strstr(range, "*/*");
        enum ck_accept_as as = CK_AS_OBJECT;
        if (strstr(range, "g=meta.k8s.io")) {
            if (strstr(range, "as=Table"))
                as = CK_AS_TABLE;
            else if (strstr(range, "as=PartialObjectMetadata"))
                as = CK_AS_PARTIAL;
        }
        free(range);
        if (json)
            return as;
    }
    return CK_AS_OBJECT;
}

int ck_accept_check(const ck_reqctx *c, ck_error **err)
{
    static const char *const served[] = {"application/json", "application/yaml",
                                         "application/vnd.kubernetes.protobuf", "application/*",
                                         "*/*"};
    const char *accept = c->req ? ck_http_req_header(c->req, "Accept") : NULL;
    if (!accept || !*accept)
        return 0;
    for (const char *p = accept; *p;) {
        p += strspn(p, " \t");
        size_t n = strcspn(p, ",;");
        size_t t = n;
        while (t && (p[t - 1] == ' ' || p[t - 1] == '\t'))
            t--;
        for (size_t i = 0; i < ARRAY_SIZE(served); i++)
            if (t == strlen(served[i]) && !strncasecmp(p, served[i], t))
                return 0;
        if (t == 0 && p[n] != ';')
            return 0;   /* an empty range ("Accept: ,") asks for nothing in particular */
        p += strcspn(p, ",");
        if (*p == ',')
            p++;
    }
    ck_error_set(err, CK_E_NOT_ACCEPTABLE, "only the following media types are accepted: "
                 "application/json, application/yaml, application/vnd.kubernetes.protobuf");
    return -1;
}

bool ck_accept_table(const ck_reqctx *c)
{
    return ck_accept_as(c) == CK_AS_TABLE;
}

json_t *ck_partial_metadata(const json_t *obj)
{
    json_t *m = json_object_get(obj, "metadata");
    return json_pack("{s:s,s:s,s:O}", "kind", "PartialObjectMetadata", "apiVersion",
                     "meta.k8s.io/v1", "metadata", m ? m : json_object());
}

int ck_options_invalid(const char *kind, json_t *causes, json_t **details, ck_error **err)
{
    const ck_resource opts = {.group = "meta.k8s.io", .kind = kind};
    char *msg = ck_validate_message(&opts, "", causes);
    ck_error_set(err, CK_E_INVALID, "%s", msg);
    free(msg);
    if (details)
        *details = json_pack("{s:s,s:s,s:o}", "group", "meta.k8s.io", "kind", kind, "causes", causes);
    else
        json_decref(causes);
    return -1;
}
