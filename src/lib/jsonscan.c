/* jsonscan.c - see jsonscan.h. */
#include "lib/jsonscan.h"
#include "lib/util.h"

#include <stdbool.h>
#include <string.h>

const char *ck_jsonscan_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r'))
        p++;
    return p;
}

/* A quote is escaped iff an odd run of backslashes precedes it, so memchr can do the scanning. */
const char *ck_jsonscan_string(const char *p, const char *end)
{
    const char *start = p + 1;
    for (p = start; p < end;) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (!q)
            return NULL;
        size_t bs = 0;
        while (q - bs > start && q[-1 - (ptrdiff_t)bs] == '\\')
            bs++;
        if (!(bs & 1))
            return q + 1;
        p = q + 1;
    }
    return NULL;
}

const char *ck_jsonscan_skip(const char *p, const char *end)
{
    if (p >= end)
        return NULL;
    if (*p == '"')
        return ck_jsonscan_string(p, end);
    if (*p == '{' || *p == '[') {
        size_t depth = 0;
        while (p < end) {
            char c = *p;
            if (c == '"') {
                if (!(p = ck_jsonscan_string(p, end)))
                    return NULL;
                continue;
            }
            if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (--depth == 0)
                    return p + 1;
            }
            p++;
        }
        return NULL;
    }
    const char *start = p;
    while (p < end && !strchr(",}] \t\r\n", *p))
        p++;
    return p > start ? p : NULL;
}

/* At the opening quote.  *s, *n: the string (in the text, or unescaped in l->tmp); *ascii:
 * false when it has bytes >= 0x80, which jansson must check as UTF-8. */
static bool string(ck_jsonscan *l, const char **s, size_t *n, bool *ascii)
{
    const char *start = ++l->p, *q = start;
    *ascii = true;
    while (q < l->end && *q != '"' && *q != '\\') {
        if ((unsigned char)*q < 0x20)
            return false;
        if ((unsigned char)*q >= 0x80)
            *ascii = false;
        q++;
    }
    if (q < l->end && *q == '"') {
        *s = start;
        *n = (size_t)(q - start);
        l->p = q + 1;
        return true;
    }
    if (!*ascii)
        return false;       /* escapes and UTF-8: jansson */
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

static void ws(ck_jsonscan *l)
{
    l->p = ck_jsonscan_ws(l->p, l->end);
}

/* After an element of a container closed by `close`: true to go on (past ','), false when
 * done, with *ok telling whether the close was found. */
static bool next(ck_jsonscan *l, char close, bool *ok)
{
    ws(l);
    *ok = false;
    if (l->p < l->end && *l->p == ',') {
        l->p++;
        ws(l);
        return true;
    }
    if (l->p < l->end && *l->p == close) {
        l->p++;
        *ok = true;
    }
    return false;
}

/* At a container's opening bracket: past it (and its whitespace); true when `close` follows
 * at once (an empty container, moved past). */
static bool open_empty(ck_jsonscan *l, char close)
{
    l->p++;
    ws(l);
    if (l->p < l->end && *l->p == close) {
        l->p++;
        return true;
    }
    return false;
}

static json_t *object(ck_jsonscan *l)
{
    json_t *o = json_object();
    bool ok = open_empty(l, '}');
    while (!ok) {
        const char *k;
        size_t kn;
        bool ascii;
        if (l->p >= l->end || *l->p != '"' || !string(l, &k, &kn, &ascii))
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
            v = ck_jsonscan_value(l);
        }
        int rc = -1;
        size_t before = json_object_size(o);
        if (v)
            rc = ascii ? json_object_setn_new_nocheck(o, key, kn, v)
                       : json_object_setn_new(o, key, kn, v);   /* checks UTF-8 */
        if (rc == 0 && l->no_dups && json_object_size(o) == before)
            rc = -1;    /* the key replaced an earlier one */
        if (key != kbuf)
            free(key);
        if (rc < 0 || !next(l, '}', &ok))
            break;
    }
    if (ok)
        return o;
    json_decref(o);
    return NULL;
}

static json_t *array(ck_jsonscan *l)
{
    json_t *a = json_array();
    bool ok = open_empty(l, ']');
    while (!ok) {
        json_t *v = ck_jsonscan_value(l);
        if (!v)
            break;
        json_array_append_new(a, v);
        if (!next(l, ']', &ok))
            break;
    }
    if (ok)
        return a;
    json_decref(a);
    return NULL;
}

static json_t *number(ck_jsonscan *l)
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

static bool literal(ck_jsonscan *l, const char *word, size_t n)
{
    if ((size_t)(l->end - l->p) < n || memcmp(l->p, word, n))
        return false;
    l->p += n;
    return true;
}

json_t *ck_jsonscan_value(ck_jsonscan *l)
{
    if (l->p >= l->end)
        return NULL;
    if (++l->depth > CK_JSONSCAN_MAX_DEPTH) {
        l->depth--;
        return NULL;
    }
    json_t *v = NULL;
    switch (*l->p) {
    case '{': v = object(l); break;
    case '[': v = array(l); break;
    case '"': {
        const char *s;
        size_t n;
        bool ascii;
        if (string(l, &s, &n, &ascii))
            v = ascii ? json_stringn_nocheck(s, n) : json_stringn(s, n);  /* NULL: not UTF-8 */
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

void ck_jsonscan_done(ck_jsonscan *l)
{
    free(l->tmp);
    l->tmp = NULL;
    l->tmpcap = 0;
}
