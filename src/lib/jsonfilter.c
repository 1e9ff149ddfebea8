/* jsonfilter.c - see jsonfilter.h.  One pass over the text; kept parts are copied verbatim, so
 * every output byte is an input byte and the output never outgrows the input.  Dropped values
 * are skipped by bracket counting (strings honoured), not validated: jansson validates what is
 * kept. */
#include "lib/jsonfilter.h"
#include "lib/util.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define FILTER_MAX_DEPTH 64

typedef struct scan {
    const char *p, *end;
    char *out;
    size_t n;
} scan;

static void ws(scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static void emit(scan *s, const char *from, size_t n)
{
    memcpy(s->out + s->n, from, n);
    s->n += n;
}

/* s->p at '"': past the closing quote. */
static bool skip_string(scan *s)
{
    s->p++;
    while (s->p < s->end) {
        char c = *s->p++;
        if (c == '\\') {
            if (s->p >= s->end)
                return false;
            s->p++;
        } else if (c == '"') {
            return true;
        }
    }
    return false;
}

static bool skip_value(scan *s)
{
    ws(s);
    if (s->p >= s->end)
        return false;
    char c = *s->p;
    if (c == '"')
        return skip_string(s);
    if (c == '{' || c == '[') {
        long depth = 0;
        while (s->p < s->end) {
            c = *s->p;
            if (c == '"') {
                if (!skip_string(s))
                    return false;
                continue;
            }
            s->p++;
            if (c == '{' || c == '[')
                depth++;
            else if ((c == '}' || c == ']') && --depth == 0)
                return true;
        }
        return false;
    }
    const char *start = s->p;   /* number, true, false, null */
    while (s->p < s->end && *s->p != ',' && *s->p != '}' && *s->p != ']' && *s->p != ' ' &&
           *s->p != '\t' && *s->p != '\n' && *s->p != '\r')
        s->p++;
    return s->p > start;
}

static bool copy_value(scan *s)
{
    ws(s);
    const char *start = s->p;
    if (!skip_value(s))
        return false;
    emit(s, start, (size_t)(s->p - start));
    return true;
}

static bool filter(scan *s, const json_t *spec, int depth);

static bool filter_array(scan *s, const json_t *spec, int depth)
{
    emit(s, s->p++, 1);
    ws(s);
    if (s->p < s->end && *s->p == ']') {
        emit(s, s->p++, 1);
        return true;
    }
    for (;;) {
        if (!filter(s, spec, depth + 1))
            return false;
        ws(s);
        if (s->p >= s->end)
            return false;
        if (*s->p == ']') {
            emit(s, s->p++, 1);
            return true;
        }
        if (*s->p != ',')
            return false;
        emit(s, s->p++, 1);
    }
}

static bool filter_object(scan *s, const json_t *spec, int depth)
{
    emit(s, s->p++, 1);
    ws(s);
    if (s->p < s->end && *s->p == '}') {
        emit(s, s->p++, 1);
        return true;
    }
    const json_t *dflt = json_object_get(spec, "*");
    bool any = false;
    for (;;) {
        ws(s);
        if (s->p >= s->end || *s->p != '"')
            return false;
        const char *ks = s->p;
        if (!skip_string(s))
            return false;
        const char *ke = s->p;
        size_t klen = (size_t)(ke - ks) - 2;
        ws(s);
        if (s->p >= s->end || *s->p != ':')
            return false;
        s->p++;
        const json_t *child = memchr(ks + 1, '\\', klen) ? NULL : json_object_getn(spec, ks + 1, klen);
        if (!child)
            child = dflt;
        if (!child || json_is_false(child)) {
            if (!skip_value(s))
                return false;
        } else {
            if (any)
                emit(s, ",", 1);
            emit(s, ks, (size_t)(ke - ks));
            emit(s, ":", 1);
            if (!filter(s, child, depth + 1))
                return false;
            any = true;
        }
        ws(s);
        if (s->p >= s->end)
            return false;
        if (*s->p == '}') {
            emit(s, s->p++, 1);
            return true;
        }
        if (*s->p != ',')
            return false;
        s->p++;
    }
}

static bool filter(scan *s, const json_t *spec, int depth)
{
    ws(s);
    if (s->p >= s->end)
        return false;
    if (!json_is_object(spec) || depth > FILTER_MAX_DEPTH || (*s->p != '{' && *s->p != '['))
        return copy_value(s);
    return *s->p == '[' ? filter_array(s, spec, depth) : filter_object(s, spec, depth);
}

char *ck_json_filter(const char *text, size_t len, const json_t *spec, size_t *out_len)
{
    scan s = {.p = text, .end = text + len, .out = xmalloc(len + 1)};
    if (!filter(&s, spec, 0)) {
        free(s.out);
        return NULL;
    }
    ws(&s);
    if (s.p != s.end) {
        free(s.out);
        return NULL;
    }
    s.out[s.n] = 0;
    *out_len = s.n;
    return s.out;
}

void ck_json_filter_tree(json_t *v, const json_t *spec)
{
    if (!json_is_object(spec))
        return;
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
            ck_json_filter_tree(e, spec);
        return;
    }
    if (!json_is_object(v))
        return;
    const json_t *dflt = json_object_get(spec, "*");
    const char *k;
    json_t *m;
    void *tmp;
    json_object_foreach_safe(v, tmp, k, m) {
        const json_t *child = json_object_get(spec, k);
        if (!child)
            child = dflt;
        if (!child || json_is_false(child))
            json_object_del(v, k);
        else
            ck_json_filter_tree(m, child);
    }
}
