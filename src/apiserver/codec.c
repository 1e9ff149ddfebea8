/* codec.c - see codec.h.  JSON goes through jansson; before that a small scanner walks the text
 * once to measure nesting depth and to find duplicate object keys (jansson keeps the last value
 * silently, as Go's decoder does, but fieldValidation=Strict must report them). */
#include "apiserver/codec.h"
#include "lib/util.h"

#include <string.h>
#include <strings.h>

struct scan {
    const char *p, *end;
    json_t *dups;       /* NULL: depth check only */
    ck_buf path;
    int depth;
    bool too_deep;
};

static void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* A JSON string at s->p; its decoded text (escapes other than \uXXXX resolved) into *out if
 * out != NULL.  -1 on anything malformed: jansson will report it. */
static int scan_string(struct scan *s, ck_buf *out)
{
    if (s->p >= s->end || *s->p != '"')
        return -1;
    s->p++;
    while (s->p < s->end && *s->p != '"') {
        char c = *s->p++;
        if (c == '\\') {
            if (s->p >= s->end)
                return -1;
            char e = *s->p++;
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u':
                if (out && ck_buf_add(out, s->p - 2, 2) < 0)
                    return -1;
                c = 0;
                break;
            default: c = e;
            }
            if (!c)
                continue;
        }
        if (out && ck_buf_add(out, &c, 1) < 0)
            return -1;
    }
    if (s->p >= s->end)
        return -1;
    s->p++;
    return 0;
}

static int scan_value(struct scan *s);

static int scan_object(struct scan *s)
{
    s->p++;
    json_t *seen = s->dups ? json_object() : NULL;
    size_t base = s->path.len;
    int rc = -1;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        rc = 0;
        goto out;
    }
    for (;;) {
        skip_ws(s);
        ck_buf key;
        ck_buf_init(&key, 1u << 20);
        if (scan_string(s, &key) < 0) {
            ck_buf_free(&key);
            goto out;
        }
        if (seen) {
            const char *k = key.data ? key.data : "";
            s->path.len = base;
            ck_buf_printf(&s->path, ".%s", k);
            if (json_object_get(seen, k))
                json_array_append_new(s->dups, json_string(s->path.data));
            else
                json_object_set_new(seen, k, json_true());
        }
        ck_buf_free(&key);
        skip_ws(s);
        if (s->p >= s->end || *s->p != ':')
            goto out;
        s->p++;
        if (scan_value(s) < 0)
            goto out;
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == '}') {
            s->p++;
            rc = 0;
        }
        goto out;
    }
out:
    json_decref(seen);
    s->path.len = base;
    if (s->path.data)
        s->path.data[base] = 0;
    return rc;
}

static int scan_array(struct scan *s)
{
    s->p++;
    size_t base = s->path.len;
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return 0;
    }
    for (size_t i = 0;; i++) {
        if (s->dups) {
            s->path.len = base;
            ck_buf_printf(&s->path, "[%zu]", i);
        }
        if (scan_value(s) < 0)
            return -1;
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        s->path.len = base;
        if (s->path.data)
            s->path.data[base] = 0;
        if (s->p < s->end && *s->p == ']') {
            s->p++;
            return 0;
        }
        return -1;
    }
}

static int scan_value(struct scan *s)
{
    skip_ws(s);
    if (s->p >= s->end)
        return -1;
    if (*s->p == '{' || *s->p == '[') {
        if (++s->depth > CK_DECODE_MAX_DEPTH) {
            s->too_deep = true;
            return -1;
        }
        int rc = *s->p == '{' ? scan_object(s) : scan_array(s);
        s->depth--;
        return rc;
    }
    if (*s->p == '"')
        return scan_string(s, NULL);
    /* number, true, false, null: jansson checks the spelling */
    while (s->p < s->end && !strchr(",]} \t\r\n", *s->p))
        s->p++;
    return 0;
}

json_t *ck_json_load(const char *buf, size_t len, json_t *duplicates, ck_error **err)
{
    struct scan s = {.p = buf, .end = buf + len, .dups = duplicates};
    ck_buf_init(&s.path, 1u << 20);
    scan_value(&s);
    ck_buf_free(&s.path);
    if (s.too_deep) {
        ck_error_set(err, CK_E_TOO_LARGE, "json: exceeded max depth of %d", CK_DECODE_MAX_DEPTH);
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(buf, len, JSON_DECODE_ANY, &je);
    if (!j) {
        ck_error_set(err, CK_E_BAD_REQUEST, "couldn't get version/kind; json parse error: %s (line %d, column %d)",
                     je.text, je.line, je.column);
        return NULL;
    }
    return j;
}

/* The media type without parameters, lowercased, in out (bounded). */
static void media_type(const char *ct, char out[128])
{
    size_t n = 0;
    if (ct)
        while (*ct == ' ')
            ct++;
    for (; ct && *ct && *ct != ';' && *ct != ' ' && n < 127; ct++)
        out[n++] = (char)((*ct >= 'A' && *ct <= 'Z') ? *ct + 32 : *ct);
    out[n] = 0;
}

json_t *ck_decode_body(const char *content_type, const char *body, size_t len, json_t *duplicates,
                       ck_error **err)
{
    char mt[128];
    media_type(content_type, mt);
    if (!*mt || !strcmp(mt, "application/json") || !strcmp(mt, "application/merge-patch+json") ||
        !strcmp(mt, "application/json-patch+json") || !strcmp(mt, "application/strategic-merge-patch+json"))
        return ck_json_load(body, len, duplicates, err);
    if (!strcmp(mt, "application/yaml") || !strcmp(mt, "application/apply-patch+yaml") ||
        !strcmp(mt, "text/yaml") || !strcmp(mt, "application/x-yaml"))
        return ck_yaml_load_dups(body, len, duplicates, err);
    if (!strcmp(mt, "application/vnd.kubernetes.protobuf"))
        return ck_protobuf_decode(body, len, err);
    ck_error_set(err, CK_E_UNSUPPORTED_TYPE,
                 "the body of the request was in an unknown format - accepted media types include: "
                 "application/json, application/yaml, application/vnd.kubernetes.protobuf");
    return NULL;
}
