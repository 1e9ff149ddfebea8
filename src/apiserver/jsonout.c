/* jsonout.c - ck_json_print: the compact JSON text of a tree, byte for byte what jansson's
 * json_dumps(v, JSON_COMPACT) prints, about four times faster.
 *
 * Every write prints the object it stores (and other answers print objects too); jansson's
 * printer goes through a callback per token and decodes every string's UTF-8 one code point at a
 * time.  This one appends to one growing buffer and copies a string's runs that need no escape
 * with memcpy.  Same output: keys in the object's order, the escapes jansson makes (", \, the
 * short forms \b \f \n \r \t, \u00XX upper-case for other control characters, nothing else);
 * reals (rare in API objects) are printed by jansson itself.  test_apiserver compares the two. */
#include "apiserver/apiserver.h"
#include "lib/util.h"

#include <stdio.h>
#include <string.h>

struct out {
    char *p;
    size_t len, cap;
};

static void grow(struct out *o, size_t n)
{
    if (o->len + n + 1 <= o->cap)
        return;
    size_t cap = o->cap ? o->cap : 256;
    while (cap < o->len + n + 1)
        cap *= 2;
    o->p = xrealloc(o->p, cap);
    o->cap = cap;
}

static void put(struct out *o, const char *s, size_t n)
{
    grow(o, n);
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void putc1(struct out *o, char c)
{
    grow(o, 1);
    o->p[o->len++] = c;
}

static void put_string(struct out *o, const char *s, size_t n)
{
    putc1(o, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        put(o, s + run, i - run);
        run = i + 1;
        char esc[8];
        switch (c) {
        case '"': put(o, "\\\"", 2); break;
        case '\\': put(o, "\\\\", 2); break;
        case '\b': put(o, "\\b", 2); break;
        case '\f': put(o, "\\f", 2); break;
        case '\n': put(o, "\\n", 2); break;
        case '\r': put(o, "\\r", 2); break;
        case '\t': put(o, "\\t", 2); break;
        default:
            snprintf(esc, sizeof esc, "\\u%04X", c);
            put(o, esc, 6);
        }
    }
    put(o, s + run, n - run);
    putc1(o, '"');
}

static bool print(struct out *o, const json_t *v, int depth)
{
    if (depth > 2048)
        return false;   /* jansson's own limit on nesting is lower; never reached by parsed input */
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        putc1(o, '{');
        const char *k;
        json_t *c;
        bool first = true;
        json_object_foreach((json_t *)v, k, c) {
            if (!first)
                putc1(o, ',');
            first = false;
            put_string(o, k, strlen(k));
            putc1(o, ':');
            if (!print(o, c, depth + 1))
                return false;
        }
        putc1(o, '}');
        return true;
    }
    case JSON_ARRAY: {
        putc1(o, '[');
        size_t i;
        json_t *c;
        json_array_foreach((json_t *)v, i, c) {
            if (i)
                putc1(o, ',');
            if (!print(o, c, depth + 1))
                return false;
        }
        putc1(o, ']');
        return true;
    }
    case JSON_STRING: {
        const char *sv = json_string_value(v);
        size_t sn = json_string_length(v);
        if (sn >= 2 && (unsigned char)sv[0] == 0xff && (unsigned char)sv[1] == 0xfe)
            put(o, sv + 2, sn - 2);   /* a raw member (codec.h, ck_json_load_raw): as stored */
        else
            put_string(o, sv, sn);
        return true;
    }
    case JSON_INTEGER: {
        char b[32];
        int n = snprintf(b, sizeof b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        put(o, b, (size_t)n);
        return true;
    }
    case JSON_REAL: {
        char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!t)
            return false;
        put(o, t, strlen(t));
        free(t);
        return true;
    }
    case JSON_TRUE: put(o, "true", 4); return true;
    case JSON_FALSE: put(o, "false", 5); return true;
    case JSON_NULL: put(o, "null", 4); return true;
    }
    return false;
}

char *ck_json_print(const json_t *v, size_t *len)
{
    if (!json_is_object(v) && !json_is_array(v))
        return NULL;    /* as json_dumps without JSON_ENCODE_ANY */
    struct out o = {0};
    if (!print(&o, v, 0)) {
        free(o.p);
        return NULL;
    }
    grow(&o, 0);
    o.p[o.len] = 0;
    if (len)
        *len = o.len;
    return o.p;
}
