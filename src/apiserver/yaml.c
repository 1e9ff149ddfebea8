/* yaml.c - YAML to JSON trees with libyaml's event parser, resolving plain scalars as
 * sigs.k8s.io/yaml (go-yaml v2, YAML 1.1) does: null/~/empty, y/yes/on/true and n/no/off/false
 * booleans, ints in any base (0x, 0o, 0b, leading 0, underscores), floats (integral ones become
 * JSON integers, as a JSON round trip in Go gives them), everything else a string.  Quoted and
 * block scalars are always strings.  Aliases are deep-copied within a node budget (billion laughs),
 * "<<" merge keys are honoured, nesting is bounded, duplicate keys are reported by path. */
#include "apiserver/codec.h"
#include "lib/util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct frame {
    json_t *node;
    bool map;
    char *key;              /* map: pending key, NULL when the next scalar is a key */
    bool key_is_merge;
    json_t *explicit_keys;  /* map: keys set by the document itself (merges may not override) */
    char *anchor;
};

struct anchor {
    char *name;
    json_t *node;
    size_t size;            /* nodes in the subtree */
};

struct ydoc {
    struct frame *st;
    size_t n, cap;
    struct anchor *anchors;
    size_t nanchors;
    size_t expanded;        /* nodes created by alias expansion */
    json_t *dups;
    json_t *root;
    bool have_root;
};

static size_t tree_size(const json_t *j)
{
    size_t n = 1;
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v)
            n += tree_size(v);
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
            n += tree_size(v);
    }
    return n;
}

static bool str_in(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(s, *list))
            return true;
    return false;
}

static const char *const null_words[] = {"", "~", "null", "Null", "NULL", NULL};
static const char *const true_words[] = {"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", NULL};
static const char *const false_words[] = {"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", NULL};

/* Go's strconv.ParseInt(s, 0, 64) after removing underscores. */
static bool parse_int(const char *in, long long *out, bool *overflow)
{
    char buf[128];
    size_t n = 0;
    for (; *in && n < sizeof buf - 1; in++)
        if (*in != '_')
            buf[n++] = *in;
    if (*in)
        return false;
    buf[n] = 0;
    const char *p = buf;
    bool neg = false;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    int base = 10;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) { base = 16; p += 2; }
    else if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O')) { base = 8; p += 2; }
    else if (p[0] == '0' && (p[1] == 'b' || p[1] == 'B')) { base = 2; p += 2; }
    else if (p[0] == '0' && p[1]) { base = 8; p += 1; }
    if (!*p)
        return false;
    for (const char *q = p; *q; q++) {
        int d = (*q >= '0' && *q <= '9') ? *q - '0' : (*q >= 'a' && *q <= 'f') ? *q - 'a' + 10 :
                (*q >= 'A' && *q <= 'F') ? *q - 'A' + 10 : 99;
        if (d >= base)
            return false;
    }
    errno = 0;
    unsigned long long u = strtoull(p, NULL, base);
    if (errno == ERANGE || u > (neg ? 9223372036854775808ull : 9223372036854775807ull)) {
        *overflow = true;
        return false;
    }
    *out = neg ? (long long)(0 - u) : (long long)u;
    return true;
}

/* ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$ */
static bool is_yaml_float(const char *s)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    size_t digits = 0;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') { p++; digits++; }
        if (!digits)
            return false;
    } else {
        while (*p >= '0' && *p <= '9') { p++; digits++; }
        if (!digits)
            return false;
        if (*p == '.') {
            p++;
            while (*p >= '0' && *p <= '9')
                p++;
        }
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == 0;
}

static json_t *float_value(double d)
{
    if (d == floor(d) && fabs(d) < 9.2e18)
        return json_integer((json_int_t)d);
    return json_real(d);
}

/* A !!binary scalar decodes to its bytes (go-yaml does), which must then be text. */
static json_t *binary_value(const char *v, size_t len, ck_error **err)
{
    char *out = xmalloc(len + 1);
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        char c = v[i];
        int d = c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26 : c >= '0' && c <= '9' ? c - '0' + 52
              : c == '+' ? 62 : c == '/' ? 63 : -1;
        if (c == '=' || c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (d < 0) {
            free(out);
            ck_error_set(err, CK_E_BAD_REQUEST, "error converting YAML to JSON: yaml: !!binary value contains invalid base64 data");
            return NULL;
        }
        acc = (acc << 6) | (unsigned)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    json_t *j = json_stringn(out, n);
    free(out);
    if (!j)
        ck_error_set(err, CK_E_BAD_REQUEST, "error converting YAML to JSON: invalid UTF-8 in a !!binary value");
    return j;
}

/* Resolve one scalar event to a JSON value; NULL with *err set on a value JSON cannot hold. */
static json_t *resolve(const yaml_event_t *ev, ck_error **err)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    if (tag && !strcmp(tag, YAML_STR_TAG))
        plain = false;
    if (tag && (!strcmp(tag, YAML_INT_TAG) || !strcmp(tag, YAML_FLOAT_TAG) || !strcmp(tag, YAML_BOOL_TAG) ||
                !strcmp(tag, YAML_NULL_TAG)))
        plain = true;
    if (plain && strlen(v) == len) {
        if (str_in(v, null_words))
            return json_null();
        if (str_in(v, true_words))
            return json_true();
        if (str_in(v, false_words))
            return json_false();
        if (strchr("+-.0123456789", v[0])) {
            long long i;
            bool overflow = false;
            if (parse_int(v, &i, &overflow))
                return json_integer(i);
            if (!strcmp(v, ".inf") || !strcmp(v, "+.inf") || !strcmp(v, "-.inf") || !strcmp(v, ".nan") ||
                !strcasecmp(v, ".Inf") || !strcasecmp(v, "+.Inf") || !strcasecmp(v, "-.Inf") ||
                !strcasecmp(v, ".NaN")) {
                ck_error_set(err, CK_E_BAD_REQUEST, "error converting YAML to JSON: json: unsupported value: %s", v);
                return NULL;
            }
            char clean[128];
            size_t n = 0;
            for (const char *q = v; *q && n < sizeof clean - 1; q++)
                if (*q != '_')
                    clean[n++] = *q;
            clean[n] = 0;
            if (overflow || is_yaml_float(clean)) {
                double d = strtod(clean, NULL);
                if (isfinite(d))   /* out of range: go-yaml keeps the text as a string */
                    return float_value(d);
            }
        }
        if (tag && strcmp(tag, YAML_STR_TAG) && (!strcmp(tag, YAML_INT_TAG) || !strcmp(tag, YAML_FLOAT_TAG) ||
                                                 !strcmp(tag, YAML_BOOL_TAG) || !strcmp(tag, YAML_NULL_TAG))) {
            ck_error_set(err, CK_E_BAD_REQUEST, "error converting YAML to JSON: yaml: cannot decode %s as %s", v, tag);
            return NULL;
        }
    }
    if (tag && !strcmp(tag, "tag:yaml.org,2002:binary"))
        return binary_value(v, len, err);
    json_t *s = json_stringn(v, len);
    if (!s)
        ck_error_set(err, CK_E_BAD_REQUEST, "error converting YAML to JSON: invalid UTF-8 in a string");
    return s;
}

/* A mapping key's JSON name: scalars as their resolved text (bool keys read "true"/"false"). */
static char *key_text(const json_t *k)
{
    if (json_is_string(k))
        return xstrdup(json_string_value(k));
    if (json_is_true(k))
        return xstrdup("true");
    if (json_is_false(k))
        return xstrdup("false");
    if (json_is_integer(k))
        return xasprintf("%lld", (long long)json_integer_value(k));
    if (json_is_real(k))
        return xasprintf("%.17g", json_real_value(k));
    return NULL;
}

static void dup_path(struct ydoc *d, const char *key)
{
    ck_buf b;
    ck_buf_init(&b, 1u << 20);
    for (size_t i = 0; i + 1 < d->n; i++) {
        if (d->st[i].map)
            ck_buf_printf(&b, ".%s", d->st[i].key ? d->st[i].key : "");
        else
            ck_buf_printf(&b, "[%zu]", json_array_size(d->st[i].node));
    }
    ck_buf_printf(&b, ".%s", key);
    json_array_append_new(d->dups, json_string(b.data ? b.data : ""));
    ck_buf_free(&b);
}

static void merge_into(json_t *map, const json_t *src)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)src, k, v)
        if (!json_object_get(map, k))
            json_object_set(map, k, v);
}

/* Attach a finished value (reference stolen) to the parent frame or make it the root. */
static int attach(struct ydoc *d, json_t *v, bool plain_merge_candidate, ck_error **err)
{
    if (!d->n) {
        json_decref(d->root);
        d->root = v;
        d->have_root = true;
        return 0;
    }
    struct frame *f = &d->st[d->n - 1];
    if (!f->map) {
        json_array_append_new(f->node, v);
        return 0;
    }
    if (!f->key) {
        f->key = key_text(v);
        f->key_is_merge = plain_merge_candidate && f->key && !strcmp(f->key, "<<");
        bool null_key = json_is_null(v);
        json_decref(v);
        if (null_key)   /* sigs.k8s.io/yaml refuses a null key */
            return ck_error_set(err, CK_E_BAD_REQUEST,
                                "error converting YAML to JSON: unsupported map key of type: %%!s(<nil>), key: <nil>");
        if (!f->key)
            return ck_error_set(err, CK_E_BAD_REQUEST, "error converting YAML to JSON: yaml: unsupported map key");
        return 0;
    }
    if (f->key_is_merge) {
        if (json_is_object(v)) {
            merge_into(f->node, v);
        } else if (json_is_array(v)) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) {
                if (!json_is_object(e)) {
                    json_decref(v);
                    return ck_error_set(err, CK_E_BAD_REQUEST,
                                        "error converting YAML to JSON: yaml: map merge requires map or sequence of maps as the value");
                }
                merge_into(f->node, e);
            }
        } else {
            json_decref(v);
            return ck_error_set(err, CK_E_BAD_REQUEST,
                                "error converting YAML to JSON: yaml: map merge requires map or sequence of maps as the value");
        }
        json_decref(v);
    } else {
        if (json_object_get(f->explicit_keys, f->key) && d->dups)
            dup_path(d, f->key);
        json_object_set_new(f->explicit_keys, f->key, json_true());
        json_object_set_new(f->node, f->key, v);
    }
    free(f->key);
    f->key = NULL;
    f->key_is_merge = false;
    return 0;
}

static void remember(struct ydoc *d, const char *name, json_t *node)
{
    if (!name)
        return;
    for (size_t i = 0; i < d->nanchors; i++) {
        if (!strcmp(d->anchors[i].name, name)) {
            json_decref(d->anchors[i].node);
            d->anchors[i].node = json_incref(node);
            d->anchors[i].size = tree_size(node);
            return;
        }
    }
    d->anchors = xrealloc(d->anchors, (d->nanchors + 1) * sizeof *d->anchors);
    d->anchors[d->nanchors++] = (struct anchor){xstrdup(name), json_incref(node), tree_size(node)};
}

static void doc_reset(struct ydoc *d)
{
    for (size_t i = 0; i < d->n; i++) {
        json_decref(d->st[i].node);
        json_decref(d->st[i].explicit_keys);
        free(d->st[i].key);
        free(d->st[i].anchor);
    }
    d->n = 0;
    for (size_t i = 0; i < d->nanchors; i++) {
        free(d->anchors[i].name);
        json_decref(d->anchors[i].node);
    }
    free(d->anchors);
    d->anchors = NULL;
    d->nanchors = 0;
    d->expanded = 0;
    json_decref(d->root);
    d->root = NULL;
    d->have_root = false;
}

static int on_event(struct ydoc *d, yaml_event_t *ev, ck_error **err)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        json_t *v = resolve(ev, err);
        if (!v)
            return -1;
        remember(d, (const char *)ev->data.scalar.anchor, v);
        return attach(d, v, ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE, err);
    }
    case YAML_ALIAS_EVENT: {
        const char *name = (const char *)ev->data.alias.anchor;
        for (size_t i = d->nanchors; i-- > 0;) {
            if (strcmp(d->anchors[i].name, name))
                continue;
            d->expanded += d->anchors[i].size;
            if (d->expanded > CK_YAML_MAX_NODES)
                return ck_error_set(err, CK_E_BAD_REQUEST,
                                    "error converting YAML to JSON: yaml: document contains excessive aliasing");
            return attach(d, json_deep_copy(d->anchors[i].node), false, err);
        }
        return ck_error_set(err, CK_E_BAD_REQUEST, "error converting YAML to JSON: yaml: unknown anchor '%s' referenced",
                            name);
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        if (d->n && d->st[d->n - 1].map && !d->st[d->n - 1].key)
            return ck_error_set(err, CK_E_BAD_REQUEST, "error converting YAML to JSON: yaml: unsupported map key");
        if (d->n >= CK_DECODE_MAX_DEPTH)
            return ck_error_set(err, CK_E_TOO_LARGE, "yaml: exceeded max depth of %d", CK_DECODE_MAX_DEPTH);
        if (d->n == d->cap) {
            d->cap = d->cap ? d->cap * 2 : 16;
            d->st = xrealloc(d->st, d->cap * sizeof *d->st);
        }
        bool map = ev->type == YAML_MAPPING_START_EVENT;
        const char *anchor = (const char *)(map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor);
        d->st[d->n++] = (struct frame){
            .node = map ? json_object() : json_array(),
            .map = map,
            .explicit_keys = map ? json_object() : NULL,
            .anchor = anchor ? xstrdup(anchor) : NULL,
        };
        return 0;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
        struct frame f = d->st[--d->n];
        json_decref(f.explicit_keys);
        free(f.key);
        remember(d, f.anchor, f.node);
        free(f.anchor);
        return attach(d, f.node, false, err);
    }
    default:
        return 0;
    }
}

/* Parse the stream; each finished document's root goes to `out` (an array) or, when first_only,
 * parsing stops after the first document. */
static int parse_stream(const char *buf, size_t len, json_t *out, bool first_only, json_t *dups, ck_error **err)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return ck_error_set(err, CK_E_INTERNAL, "yaml: cannot initialize parser");
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
    struct ydoc d = {.dups = dups};
    int rc = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = ck_error_set(err, CK_E_BAD_REQUEST, "error converting YAML to JSON: yaml: line %zu: %s",
                              p.problem_mark.line + 1, p.problem ? p.problem : "parse error");
            break;
        }
        yaml_event_type_t t = ev.type;
        if (t == YAML_DOCUMENT_START_EVENT) {
            doc_reset(&d);
        } else if (t == YAML_DOCUMENT_END_EVENT) {
            json_array_append(out, d.have_root ? d.root : json_null());
        } else if (on_event(&d, &ev, err) < 0) {
            rc = -1;
        }
        yaml_event_delete(&ev);
        if (rc < 0 || t == YAML_STREAM_END_EVENT || (first_only && t == YAML_DOCUMENT_END_EVENT))
            break;
    }
    doc_reset(&d);
    free(d.st);
    yaml_parser_delete(&p);
    return rc;
}

json_t *ck_yaml_load_dups(const char *buf, size_t len, json_t *duplicates, ck_error **err)
{
    json_t *docs = json_array();
    if (parse_stream(buf, len, docs, true, duplicates, err) < 0) {
        json_decref(docs);
        return NULL;
    }
    json_t *first = json_array_size(docs) ? json_incref(json_array_get(docs, 0)) : json_null();
    json_decref(docs);
    return first;
}

json_t *ck_yaml_load(const char *buf, size_t len, ck_error **err)
{
    return ck_yaml_load_dups(buf, len, NULL, err);
}

json_t *ck_yaml_load_all(const char *buf, size_t len, ck_error **err)
{
    json_t *docs = json_array();
    if (parse_stream(buf, len, docs, false, NULL, err) < 0) {
        json_decref(docs);
        return NULL;
    }
    json_t *out = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(docs, i, v)
        if (!json_is_null(v))
            json_array_append(out, v);
    json_decref(docs);
    return out;
}
