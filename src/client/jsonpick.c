/* jsonpick.c - see jsonpick.h. */
#include "client/jsonpick.h"
#include "lib/jsonscan.h"

#include <stdbool.h>
#include <string.h>

#define PICK_MAX_DEPTH CK_JSONSCAN_MAX_DEPTH

typedef struct scan {
    const char *p, *end;
    const char *why;            /* first error, for the message */
    int depth;
} scan;

static const ck_jsonpick keep_all = {"", NULL};

static json_t *fail(scan *s, const char *why)
{
    if (!s->why)
        s->why = why;
    return NULL;
}

static void skip_ws(scan *s)
{
    s->p = ck_jsonscan_ws(s->p, s->end);
}

static bool skip_string(scan *s)
{
    const char *e = ck_jsonscan_string(s->p, s->end);
    if (e)
        s->p = e;
    return e != NULL;
}

/* Move past one value (balance only: brackets and strings). */
static bool skip_value(scan *s)
{
    skip_ws(s);
    const char *e = ck_jsonscan_skip(s->p, s->end);
    if (e)
        s->p = e;
    return e != NULL;
}

static json_t *load_slice(scan *s, const char *start)
{
    json_error_t jerr;
    json_t *v = json_loadb(start, (size_t)(s->p - start), JSON_DECODE_ANY, &jerr);
    return v ? v : fail(s, "invalid JSON value");
}

static json_t *pick_object(scan *s, const ck_jsonpick *keep);

/* A string, number or literal built by the shared plain builder (jansson's loader has a fixed
 * cost per call that dominated small values); what is not plain (escapes, reals) goes to jansson. */
static json_t *scalar(scan *s)
{
    const char *start = s->p;
    if (!skip_value(s))
        return fail(s, *start == '"' ? "unterminated string" : "bad value");
    size_t n = (size_t)(s->p - start);
    if (*start == '"' && !memchr(start + 1, '\\', n - 2)) {
        /* as before the shared lexer: only UTF-8 checked (raw control bytes pass) */
        json_t *v = json_stringn(start + 1, n - 2);
        return v ? v : fail(s, "invalid UTF-8 in a string");
    }
    ck_jsonscan l = {.p = start, .end = s->p};
    json_t *v = ck_jsonscan_value(&l);
    ck_jsonscan_done(&l);
    if (v && l.p == s->p)
        return v;
    json_decref(v);
    return load_slice(s, start);
}

/* One kept value: objects and arrays are walked (objects picked with sub, or kept whole when
 * sub is NULL), scalars built directly. */
static json_t *pick_value(scan *s, const ck_jsonpick *sub)
{
    skip_ws(s);
    if (s->p >= s->end)
        return fail(s, "truncated");
    if (*s->p != '{' && *s->p != '[')
        return scalar(s);
    if (++s->depth > PICK_MAX_DEPTH)
        return fail(s, "nested too deeply");
    json_t *v = NULL;
    if (*s->p == '{') {
        v = pick_object(s, sub);
    } else {
        s->p++;
        json_t *arr = json_array();
        skip_ws(s);
        if (s->p < s->end && *s->p == ']') {
            s->p++;
            v = arr;
        }
        while (!v) {
            json_t *e = pick_value(s, sub);
            if (!e) {
                json_decref(arr);
                break;
            }
            json_array_append_new(arr, e);
            skip_ws(s);
            if (s->p < s->end && *s->p == ',') {
                s->p++;
                continue;
            }
            if (s->p < s->end && *s->p == ']') {
                s->p++;
                v = arr;
                break;
            }
            json_decref(arr);
            fail(s, "expected ',' or ']'");
            break;
        }
    }
    s->depth--;
    return v;
}

const ck_jsonpick ck_jsonpick_drop[1] = {{NULL, NULL}};

/* The entry that rules member k (NULL: drop it).  keep NULL: every member, whole. */
static const ck_jsonpick *find_key(const ck_jsonpick *keep, const char *k, size_t len)
{
    if (!keep)
        return &keep_all;
    const ck_jsonpick *e, *dflt = NULL;
    for (e = keep; e->key; e++) {
        if (strnlen(e->key, len + 1) == len && !memcmp(e->key, k, len))
            break;
        if (e->key[0] == '*' && !e->key[1])
            dflt = e;
    }
    if (!e->key)
        e = dflt;
    return e && e->sub != ck_jsonpick_drop ? e : NULL;
}

static json_t *pick_object(scan *s, const ck_jsonpick *keep)
{
    skip_ws(s);
    if (s->p >= s->end || *s->p != '{')
        return fail(s, "expected an object");
    s->p++;
    json_t *out = json_object();
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return out;
    }
    for (;;) {
        skip_ws(s);
        if (s->p >= s->end || *s->p != '"')
            goto bad;
        const char *kq = s->p;
        if (!skip_string(s))
            goto bad;
        const char *k = kq + 1;
        size_t klen = (size_t)(s->p - 1 - k);
        json_t *escaped = NULL;         /* a key with escapes, decoded */
        if (memchr(k, '\\', klen)) {
            escaped = json_loadb(kq, (size_t)(s->p - kq), JSON_DECODE_ANY, NULL);
            if (!json_is_string(escaped)) {
                json_decref(escaped);
                goto bad;
            }
            k = json_string_value(escaped);
            klen = json_string_length(escaped);
        }
        skip_ws(s);
        if (s->p >= s->end || *s->p != ':') {
            json_decref(escaped);
            goto bad;
        }
        s->p++;
        const ck_jsonpick *e = find_key(keep, k, klen);
        if (e) {
            json_t *v = pick_value(s, e->sub);
            if (!v || json_object_setn_new(out, k, klen, v) < 0) {
                json_decref(escaped);
                goto bad;
            }
        } else if (!skip_value(s)) {
            json_decref(escaped);
            goto bad;
        }
        json_decref(escaped);
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == '}') {
            s->p++;
            return out;
        }
        goto bad;
    }
bad:
    json_decref(out);
    return fail(s, "malformed object");
}

json_t *ck_jsonpick_parse(const char *text, size_t len, const ck_jsonpick *keep, ck_error **err)
{
    scan s = {.p = text, .end = text + len};
    json_t *out = pick_object(&s, keep);
    if (out) {
        skip_ws(&s);
        if (s.p == s.end)
            return out;
        json_decref(out);
        fail(&s, "text after the object");
    }
    ck_error_set(err, CK_E_BAD_REQUEST, "bad JSON at byte %zu: %s", (size_t)(s.p - text), s.why);
    return NULL;
}

void ck_jsonpick_tree(json_t *v, const ck_jsonpick *keep)
{
    if (!keep)
        return;
    if (json_is_array(v)) {
        size_t i;
        json_t *el;
        json_array_foreach(v, i, el)
            ck_jsonpick_tree(el, keep);
        return;
    }
    if (!json_is_object(v))
        return;
    const char *k;
    json_t *m;
    void *tmp;
    json_object_foreach_safe(v, tmp, k, m) {
        const ck_jsonpick *e = find_key(keep, k, strlen(k));
        if (!e)
            json_object_del(v, k);
        else
            ck_jsonpick_tree(m, e->sub);
    }
}
