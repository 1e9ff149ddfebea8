/* jsonin.c - ck_json_load_fast: json_loadb's tree, built with a lexer that does less.
 *
 * Every update parses the stored object (and the request body) with jansson, whose lexer reads
 * the text one character at a time through a stream with UTF-8 checks and copies each token
 * into a growing buffer.  This parser handles the plain subset that API objects are made of
 * (ASCII strings with the short escapes, integers, true/false/null, nesting) and builds the tree
 * with the same jansson calls json_loadb makes, so the result is the same tree (key order,
 * a repeated key's last value in its first place).  On anything else - a \u escape, a byte
 * >= 0x80, a real, a number jansson would reject, bad syntax - it gives up and json_loadb
 * parses the text instead (and reports the error, when there is one).  test_apiserver compares
 * the two. */
#include "apiserver/codec.h"
#include "lib/util.h"

#include <string.h>

struct lex {
    const char *p, *end;
    char *tmp;          /* unescaped string scratch */
    size_t tmpcap;
    int depth;
};

#define MAX_DEPTH 512   /* deeper: jansson decides */

static void ws(struct lex *l)
{
    while (l->p < l->end && (*l->p == ' ' || *l->p == '\n' || *l->p == '\t' || *l->p == '\r'))
        l->p++;
}

/* At the opening quote.  *s, *n: the string (in the text, or unescaped in l->tmp). */
static bool string(struct lex *l, const char **s, size_t *n)
{
    const char *start = ++l->p, *q = start;
    while (q < l->end && *q != '"' && *q != '\\') {
        if ((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x80)
            return false;
        q++;
    }
    if (q < l->end && *q == '"') {
        *s = start;
        *n = (size_t)(q - start);
        l->p = q + 1;
        return true;
    }
    /* escapes: unescape into tmp */
    size_t len = 0;
    for (q = start; q < l->end && *q != '"'; q++) {
        if (len + 2 > l->tmpcap) {
            l->tmpcap = l->tmpcap ? l->tmpcap * 2 : 256;
            l->tmp = xrealloc(l->tmp, l->tmpcap);
        }
        unsigned char c = (unsigned char)*q;
        if (c < 0x20 || c >= 0x80)
            return false;
        if (c != '\\') {
            l->tmp[len++] = (char)c;
            continue;
        }
        if (++q >= l->end)
            return false;
        switch (*q) {
        case '"': case '\\': case '/': l->tmp[len++] = *q; break;
        case 'b': l->tmp[len++] = '\b'; break;
        case 'f': l->tmp[len++] = '\f'; break;
        case 'n': l->tmp[len++] = '\n'; break;
        case 'r': l->tmp[len++] = '\r'; break;
        case 't': l->tmp[len++] = '\t'; break;
        default: return false;   /* \u and invalid escapes: jansson */
        }
    }
    if (q >= l->end)
        return false;
    *s = l->tmp;
    *n = len;
    l->p = q + 1;
    return true;
}

static json_t *value(struct lex *l);

static json_t *object(struct lex *l)
{
    json_t *o = json_object();
    l->p++;
    ws(l);
    if (l->p < l->end && *l->p == '}') {
        l->p++;
        return o;
    }
    for (;;) {
        const char *k;
        size_t kn;
        if (l->p >= l->end || *l->p != '"' || !string(l, &k, &kn))
            break;
        /* the key may live in tmp, which the value's strings reuse: keep a copy */
        char kbuf[128];
        char *key = kn < sizeof kbuf ? kbuf : xmalloc(kn + 1);
        memcpy(key, k, kn);
        key[kn] = 0;
        ws(l);
        json_t *v = NULL;
        if (l->p < l->end && *l->p == ':') {
            l->p++;
            ws(l);
            v = value(l);
        }
        if (v)
            json_object_setn_new_nocheck(o, key, kn, v);
        if (key != kbuf)
            free(key);
        if (!v)
            break;
        ws(l);
        if (l->p < l->end && *l->p == ',') {
            l->p++;
            ws(l);
            continue;
        }
        if (l->p < l->end && *l->p == '}') {
            l->p++;
            return o;
        }
        break;
    }
    json_decref(o);
    return NULL;
}

static json_t *array(struct lex *l)
{
    json_t *a = json_array();
    l->p++;
    ws(l);
    if (l->p < l->end && *l->p == ']') {
        l->p++;
        return a;
    }
    for (;;) {
        json_t *v = value(l);
        if (!v)
            break;
        json_array_append_new(a, v);
        ws(l);
        if (l->p < l->end && *l->p == ',') {
            l->p++;
            ws(l);
            continue;
        }
        if (l->p < l->end && *l->p == ']') {
            l->p++;
            return a;
        }
        break;
    }
    json_decref(a);
    return NULL;
}

static json_t *number(struct lex *l)
{
    const char *q = l->p;
    bool neg = q < l->end && *q == '-';
    if (neg)
        q++;
    if (q >= l->end || *q < '0' || *q > '9')
        return NULL;
    if (*q == '0' && q + 1 < l->end && q[1] >= '0' && q[1] <= '9')
        return NULL;
    unsigned long long u = 0;
    const char *d0 = q;
    while (q < l->end && *q >= '0' && *q <= '9') {
        if (q - d0 >= 18)
            return NULL;    /* may overflow: jansson checks */
        u = u * 10 + (unsigned)(*q - '0');
        q++;
    }
    if (q < l->end && (*q == '.' || *q == 'e' || *q == 'E'))
        return NULL;        /* a real */
    l->p = q;
    return json_integer(neg ? -(json_int_t)u : (json_int_t)u);
}

static bool literal(struct lex *l, const char *word, size_t n)
{
    if ((size_t)(l->end - l->p) < n || memcmp(l->p, word, n))
        return false;
    l->p += n;
    return true;
}

static json_t *value(struct lex *l)
{
    if (l->p >= l->end)
        return NULL;
    if (++l->depth > MAX_DEPTH)
        return NULL;
    json_t *v = NULL;
    switch (*l->p) {
    case '{': v = object(l); break;
    case '[': v = array(l); break;
    case '"': {
        const char *s;
        size_t n;
        if (string(l, &s, &n))
            v = json_stringn_nocheck(s, n);
        break;
    }
    case 't': v = literal(l, "true", 4) ? json_true() : NULL; break;
    case 'f': v = literal(l, "false", 5) ? json_false() : NULL; break;
    case 'n': v = literal(l, "null", 4) ? json_null() : NULL; break;
    default: v = number(l); break;
    }
    l->depth--;
    return v;
}

json_t *ck_json_parse_plain(const char *s, size_t n, size_t flags)
{
    struct lex l = {.p = s, .end = s + n};
    ws(&l);
    json_t *v = NULL;
    if (l.p < l.end && (*l.p == '{' || *l.p == '[' || (flags & JSON_DECODE_ANY)))
        v = value(&l);
    if (v) {
        ws(&l);
        if (l.p != l.end) {
            json_decref(v);
            v = NULL;
        }
    }
    free(l.tmp);
    return v;
}

json_t *ck_json_load_fast(const char *s, size_t n, size_t flags)
{
    json_t *v = ck_json_parse_plain(s, n, flags);
    return v ? v : json_loadb(s, n, flags, NULL);
}
