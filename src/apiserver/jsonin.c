/* jsonin.c - ck_json_load_fast: json_loadb's tree, built with a lexer that does less.
 *
 * Every update parses the stored object (and the request body) with jansson, whose lexer reads
 * the text one character at a time through a stream with UTF-8 checks and copies each token
 * into a growing buffer.  The shared plain builder (lib/jsonscan.h) handles the subset API
 * objects are made of and builds the same tree json_loadb would; this file only adds the
 * top-level rules (a container unless JSON_DECODE_ANY, nothing but whitespace after it) and
 * the fallback: on anything the builder declines - a \u escape, invalid UTF-8, a real, a
 * number jansson would reject, bad syntax - json_loadb parses the text instead (and reports
 * the error, when there is one).  test_apiserver compares the two. */
#include "apiserver/codec.h"
#include "lib/jsonscan.h"
#include "lib/util.h"

#include <string.h>

json_t *ck_json_parse_plain(const char *s, size_t n, size_t flags)
{
    ck_jsonscan l = {.p = s, .end = s + n};
    l.p = ck_jsonscan_ws(l.p, l.end);
    json_t *v = NULL;
    if (l.p < l.end && (*l.p == '{' || *l.p == '[' || (flags & JSON_DECODE_ANY)))
        v = ck_jsonscan_value(&l);
    if (v && ck_jsonscan_ws(l.p, l.end) != l.end) {
        json_decref(v);
        v = NULL;
    }
    ck_jsonscan_done(&l);
    return v;
}

json_t *ck_json_load_fast(const char *s, size_t n, size_t flags)
{
    json_t *v = ck_json_parse_plain(s, n, flags);
    return v ? v : json_loadb(s, n, flags, NULL);
}

/* ---- raw members (codec.h) ---- */

#define RAW_MARK "\xff\xfe"   /* never in UTF-8 text: no decoded string starts so */

const char *ck_json_raw_text(const json_t *v, size_t *len)
{
    if (!json_is_string(v) || json_string_length(v) < 2 || memcmp(json_string_value(v), RAW_MARK, 2))
        return NULL;
    *len = json_string_length(v) - 2;
    return json_string_value(v) + 2;
}

static bool word_in(const char *words, const char *w, size_t n)
{
    for (const char *p = words; *p;) {
        size_t l = strcspn(p, " ");
        if (l == n && !memcmp(p, w, n))
            return true;
        p += l;
        while (*p == ' ')
            p++;
    }
    return false;
}

/* raw_keys names a path below key k ("k.rest ..."): the words for k's value, "" if none */
static void words_below(const char *words, const char *k, size_t kn, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = 0;
    for (const char *p = words; *p;) {
        size_t l = strcspn(p, " ");
        if (l > kn + 1 && !memcmp(p, k, kn) && p[kn] == '.' && o + l - kn < cap) {
            if (o)
                out[o++] = ' ';
            memcpy(out + o, p + kn + 1, l - kn - 1);
            o += l - kn - 1;
            out[o] = 0;
        }
        p += l;
        while (*p == ' ')
            p++;
    }
}

static json_t *load_value(const char **pp, const char *end, const char *words, int depth);

/* the object at *pp with raw members per words; *pp moves past it; NULL on anything odd */
static json_t *load_object(const char **pp, const char *end, const char *words, int depth)
{
    const char *p = *pp;
    if (depth > 8 || p >= end || *p != '{')
        return NULL;
    json_t *o = json_object();
    p = ck_jsonscan_ws(p + 1, end);
    if (p < end && *p == '}') {
        *pp = p + 1;
        return o;
    }
    while (p < end && *p == '"') {
        const char *ke = ck_jsonscan_string(p, end);
        if (!ke)
            break;
        const char *key = p + 1;
        size_t kn = (size_t)(ke - p) - 2;
        bool plain = kn > 0;
        for (size_t i = 0; i < kn && plain; i++)
            plain = key[i] != '\\' && (unsigned char)key[i] >= 0x20 && (unsigned char)key[i] < 0x80;
        const char *colon = ck_jsonscan_ws(ke, end);
        if (!plain || colon >= end || *colon != ':' || json_object_getn(o, key, kn))
            break;
        const char *vs = ck_jsonscan_ws(colon + 1, end);
        char below[256];
        words_below(words, key, kn, below, sizeof below);
        json_t *v = NULL;
        const char *ve = vs;
        if (word_in(words, key, kn)) {
            ve = vs < end && *vs == '{' ? ck_jsonscan_skip(vs, end) : NULL;
            if (ve) {
                size_t len = (size_t)(ve - vs);
                char *t = xmalloc(len + 2);
                memcpy(t, RAW_MARK, 2);
                memcpy(t + 2, vs, len);
                v = json_stringn_nocheck(t, len + 2);
                free(t);
            }
        } else if (below[0] && vs < end && (*vs == '{' || *vs == '[')) {
            v = load_value(&ve, end, below, depth + 1);
        } else {
            ve = vs < end ? ck_jsonscan_skip(vs, end) : NULL;
            v = ve && ve != vs ? ck_json_load_fast(vs, (size_t)(ve - vs), JSON_DECODE_ANY) : NULL;
        }
        if (!v)
            break;
        json_object_setn_new_nocheck(o, key, kn, v);
        p = ck_jsonscan_ws(ve, end);
        if (p < end && *p == ',') {
            p = ck_jsonscan_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}') {
            *pp = p + 1;
            return o;
        }
        break;
    }
    json_decref(o);
    return NULL;
}

/* an object (raw members per words) or an array of them (other elements parsed whole) */
static json_t *load_value(const char **pp, const char *end, const char *words, int depth)
{
    const char *p = *pp;
    if (*p == '{')
        return load_object(pp, end, words, depth);
    json_t *a = json_array();
    p = ck_jsonscan_ws(p + 1, end);
    if (p < end && *p == ']') {
        *pp = p + 1;
        return a;
    }
    while (p < end) {
        json_t *v;
        if (*p == '{') {
            v = load_object(&p, end, words, depth + 1);
        } else {
            const char *ve = ck_jsonscan_skip(p, end);
            v = ve && ve != p ? ck_json_load_fast(p, (size_t)(ve - p), JSON_DECODE_ANY) : NULL;
            p = ve;
        }
        if (!v)
            break;
        json_array_append_new(a, v);
        p = ck_jsonscan_ws(p, end);
        if (p < end && *p == ',') {
            p = ck_jsonscan_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == ']') {
            *pp = p + 1;
            return a;
        }
        break;
    }
    json_decref(a);
    return NULL;
}

json_t *ck_json_load_raw(const char *s, size_t n, const char *raw_keys)
{
    const char *p = ck_jsonscan_ws(s, s + n), *end = s + n;
    json_t *o = load_object(&p, end, raw_keys, 0);
    if (o && ck_jsonscan_ws(p, end) != end) {
        json_decref(o);
        o = NULL;
    }
    return o;
}
