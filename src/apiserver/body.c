/* body.c - the body of a create or update: decoded by its media type (json, yaml, protobuf; no
 * patch types), and the errors of a body upstream could not take, in upstream's order and words.
 * Upstream reads apiVersion and kind first (Go's encoding/json into an anonymous struct), then
 * decodes the type they name and converts it to the resource's internal type; a body that fails
 * before its kind is known is reported by handlers/rest.go transformDecodeError with a summary
 * of the body, a wrong kind or version by the scheme or the converter (docs/qa.md). */
#include "apiserver/apiserver.h"
#include "apiserver/codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *ck_rest_media_type(const char *ctype)
{
    if (!ctype || !*ctype)
        return xstrdup("application/json");
    size_t n = strcspn(ctype, ";");
    while (n && ctype[n - 1] == ' ')
        n--;
    char *m = xstrndup(ctype, n);
    for (char *p = m; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return m;
}

json_t *ck_rest_body(ck_reqctx *c, json_t *duplicates, ck_error **err)
{
    if (c->req->body_len > CK_MAX_BODY) {
        ck_error_set(err, CK_E_TOO_LARGE, "Request entity too large: limit is %u", CK_MAX_BODY);
        return NULL;
    }
    const char *ctype = ck_http_req_header(c->req, "Content-Type");
    cleanup_free char *mt = ck_rest_media_type(ctype);
    bool json = strstr(mt, "json") != NULL;
    if (strstr(mt, "patch")) {   /* create and update take objects: no patch types */
        ck_error_set(err, CK_E_UNSUPPORTED_TYPE, "the body of the request was in an unknown format - "
                     "accepted media types include: application/json, application/yaml, "
                     "application/vnd.kubernetes.protobuf");
        return NULL;
    }
    if (c->req->body_len == 0) {
        if (json)   /* Go's encoding/json on no bytes */
            ck_error_set(err, CK_E_BAD_REQUEST, "couldn't get version/kind; json parse error: "
                         "unexpected end of JSON input");
        else if (strstr(mt, "protobuf"))
            ck_error_set(err, CK_E_BAD_REQUEST, "empty data");
        else
            ck_error_set(err, CK_E_BAD_REQUEST, "Object 'Kind' is missing in ''");
        return NULL;
    }
    json_t *obj = ck_decode_body(ctype ? ctype : "application/json", c->req->body,
                                 c->req->body_len, duplicates, err);
    if (!obj)
        return NULL;
    /* upstream unmarshals apiVersion and kind into an anonymous struct first (YAML after its
     * conversion to JSON): a member of another JSON type fails there */
    static const char *const tm[] = {"apiVersion", "kind"};
    for (size_t i = 0; json_is_object(obj) && !strstr(mt, "protobuf") && i < 2; i++) {
        json_t *v = json_object_get(obj, tm[i]);
        if (!v || json_is_string(v) || json_is_null(v))
            continue;
        const char *t = json_is_array(v) ? "array" : json_is_object(v) ? "object"
                        : json_is_boolean(v) ? "bool" : "number";
        json_decref(obj);
        ck_error_set(err, CK_E_BAD_REQUEST, "couldn't get version/kind; json parse error: json: "
                     "cannot unmarshal %s into Go struct field .%s of type string", t, tm[i]);
        return NULL;
    }
    if (!json_is_object(obj)) {
        /* upstream unmarshals apiVersion and kind into an anonymous struct first */
        const char *t = json_is_array(obj) ? "array" : json_is_string(obj) ? "string"
                        : json_is_boolean(obj) ? "bool" : json_is_null(obj) ? NULL : "number";
        json_decref(obj);
        if (t && json)
            ck_error_set(err, CK_E_BAD_REQUEST, "couldn't get version/kind; json parse error: json: "
                         "cannot unmarshal %s into Go value of type struct { APIVersion string "
                         "\"json:\\\"apiVersion,omitempty\\\"\"; Kind string "
                         "\"json:\\\"kind,omitempty\\\"\" }", t);
        else
            ck_error_set(err, CK_E_BAD_REQUEST, "the body of the request must be a JSON object");
        return NULL;
    }
    return obj;
}

/* upstream's transformDecodeError for a create or update body whose apiVersion and kind could
 * not be read: the type expected, the decoder's error and the first 30 bytes of the body (as
 * text when it starts with '{', else in hex). */
ck_error *ck_rest_unrecognized_body(const ck_reqctx *c, const ck_resource *r, ck_error *e)
{
    static const char *const unread[] = {
        "couldn't get version/kind", "error converting YAML to JSON",
        "provided data does not appear to be a protobuf message", "empty data", "empty body",
        "unable to decode protobuf body: truncated runtime.Unknown",
        "unable to decode protobuf body: truncated TypeMeta",
    };
    bool wrap = false;
    for (size_t i = 0; e && i < ARRAY_SIZE(unread) && !wrap; i++)
        wrap = !strncmp(e->msg, unread[i], strlen(unread[i]));
    if (!wrap || e->code != CK_E_BAD_REQUEST)
        return e;
    const char *b = c->req->body;
    size_t n = c->req->body_len, k = n > 30 ? 30 : n;
    ck_buf sum;
    ck_buf_init(&sum, 0);
    if (n == 0)
        ck_buf_addstr(&sum, "<empty>");
    else if (b[0] == '{')
        ck_buf_add(&sum, b, k);
    else
        for (size_t i = 0; i < k; i++)
            ck_buf_printf(&sum, "%02x", (unsigned char)b[i]);
    if (n > 30)
        ck_buf_addstr(&sum, " ...");
    ck_error *w = NULL;
    ck_error_set(&w, CK_E_BAD_REQUEST, "the object provided is unrecognized (must be of type %s): "
                 "%s (%s)", r->kind, e->msg, sum.data);
    ck_buf_free(&sum);
    ck_error_free(e);
    return w;
}

/* Whether upstream's scheme knows kind in group/version: a served kind or its list. */
static bool kind_registered(const char *group, const char *version, const char *kind)
{
    size_t kl = strlen(kind);
    for (size_t i = 0; i < ck_nresources; i++) {
        const ck_resource *x = &ck_resources[i];
        size_t xl = strlen(x->kind);
        if (strcmp(x->group, group) || strcmp(x->version, version))
            continue;
        if (!strcmp(x->kind, kind) || (kl == xl + 4 && !strncmp(kind, x->kind, xl) &&
                                       !strcmp(kind + xl, "List")))
            return true;
    }
    return false;
}

/* The Go package of a group's internal types, as the converter names them: core for the core
 * group and events.k8s.io, else the group's first label (apps, rbac, networking, ...). */
static void internal_package(const char *group, char out[64])
{
    if (!*group || !strcmp(group, "events.k8s.io")) {
        strcpy(out, "core");
        return;
    }
    size_t n = strcspn(group, ".");
    if (n > 63)
        n = 63;
    memcpy(out, group, n);
    out[n] = 0;
}

/* Upstream decodes a body as the type its apiVersion and kind name (the resource's filling
 * what is missing), then converts it to the resource's internal type: a kind its scheme does
 * not have in that version fails in the scheme, another kind in the converter, and the same
 * kind of another version converts but is refused after.  Their words, in that order. */
int ck_rest_check_type(const ck_resource *r, json_t *obj, ck_error **err)
{
    const char *av = json_string_value(json_object_get(obj, "apiVersion"));
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    const char *want = ck_resource_api_version(r);
    if (!kind || !*kind)
        kind = r->kind;
    char group[256], version[256];
    const char *s2 = av ? strchr(av, '/') : NULL;
    if (av && (!strcmp(av, "/") || (s2 && strchr(s2 + 1, '/'))))
        av = NULL;   /* not a group/version (ParseGroupVersion fails): upstream defaults it */
    if (!av || !*av) {
        snprintf(group, sizeof group, "%s", r->group);
        snprintf(version, sizeof version, "%s", r->version);
    } else {
        const char *slash = strchr(av, '/');
        if (slash) {
            snprintf(group, sizeof group, "%.*s", (int)(slash - av), av);
            snprintf(version, sizeof version, "%s", slash + 1);
        } else {
            group[0] = 0;
            snprintf(version, sizeof version, "%s", av);
        }
    }
    bool same_gv = !strcmp(group, r->group) && !strcmp(version, r->version);
    if (!same_gv || strcmp(kind, r->kind)) {
        if (!kind_registered(group, version, kind))
            return ck_error_set(err, CK_E_BAD_REQUEST,
                                "%s in version \"%s\" cannot be handled as a %s: no kind \"%s\" is "
                                "registered for version \"%s\" in scheme "
                                "\"pkg/api/legacyscheme/scheme.go:30\"", kind, version, r->kind, kind,
                                av && *av ? av : want);
        if (strcmp(kind, r->kind)) {
            char pkg[64];
            internal_package(r->group, pkg);
            return ck_error_set(err, CK_E_BAD_REQUEST,
                                "%s in version \"%s\" cannot be handled as a %s: converting "
                                "(%s.%s) to (%s.%s): unknown conversion", kind, version, r->kind,
                                version, kind, pkg, r->kind);
        }
        return ck_error_set(err, CK_E_BAD_REQUEST,
                            "the API version in the data (%s) does not match the expected API "
                            "version (%s)", av, want);
    }
    json_object_set_new(obj, "apiVersion", json_string(want));
    json_object_set_new(obj, "kind", json_string(r->kind));
    return 0;
}
