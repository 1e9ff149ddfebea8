/* jsonscan.c - see jsonscan.h. */
#include "lib/jsonscan.h"
#include "lib/util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ---- syntax errors in the words of Go's encoding/json scanner ----
 * A byte-at-a-time state machine with the same states as Go's, so the first error is found at
 * the same byte and described with the same context phrase. */

enum go_state {
    GS_BEGIN_VALUE, GS_BEGIN_VALUE_OR_EMPTY, GS_BEGIN_STRING, GS_BEGIN_STRING_OR_EMPTY,
    GS_END_VALUE, GS_END_TOP, GS_IN_STRING, GS_IN_STRING_ESC, GS_ESC_U1, GS_ESC_U2, GS_ESC_U3,
    GS_ESC_U4, GS_NEG, GS_ZERO, GS_ONE, GS_DOT, GS_DOT0, GS_E, GS_ESIGN, GS_E0, GS_LITERAL,
};
enum { PS_OBJECT_KEY, PS_OBJECT_VALUE, PS_ARRAY_VALUE };

struct go_scan {
    enum go_state st;
    char *stack;
    size_t depth, cap;
    const char *lit;      /* GS_LITERAL: the literal ("true") and the next byte expected */
    size_t lit_at;
    const char *err;      /* the context phrase of the error */
    unsigned char bad;
};

static bool go_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
static bool go_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static void go_push(struct go_scan *s, char ps)
{
    if (s->depth == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->stack = xrealloc(s->stack, s->cap);
    }
    s->stack[s->depth++] = ps;
}

static void go_fail(struct go_scan *s, unsigned char c, const char *context)
{
    s->err = context;
    s->bad = c;
}

/* One byte; sets s->err on a syntax error. */
static void go_step(struct go_scan *s, unsigned char c)
{
    for (;;) {
        switch (s->st) {
        case GS_BEGIN_VALUE_OR_EMPTY:
            if (go_space(c))
                return;
            if (c == ']') {
                s->st = GS_END_VALUE;
                continue;
            }
            s->st = GS_BEGIN_VALUE;
            continue;
        case GS_BEGIN_VALUE:
            if (go_space(c))
                return;
            switch (c) {
            case '{': go_push(s, PS_OBJECT_KEY); s->st = GS_BEGIN_STRING_OR_EMPTY; return;
            case '[': go_push(s, PS_ARRAY_VALUE); s->st = GS_BEGIN_VALUE_OR_EMPTY; return;
            case '"': s->st = GS_IN_STRING; return;
            case '-': s->st = GS_NEG; return;
            case '0': s->st = GS_ZERO; return;
            case 't': s->lit = "true"; s->lit_at = 1; s->st = GS_LITERAL; return;
            case 'f': s->lit = "false"; s->lit_at = 1; s->st = GS_LITERAL; return;
            case 'n': s->lit = "null"; s->lit_at = 1; s->st = GS_LITERAL; return;
            default:
                if (c >= '1' && c <= '9') {
                    s->st = GS_ONE;
                    return;
                }
                return go_fail(s, c, "looking for beginning of value");
            }
        case GS_BEGIN_STRING_OR_EMPTY:
            if (go_space(c))
                return;
            if (c == '}') {
                s->stack[s->depth - 1] = PS_OBJECT_VALUE;
                s->st = GS_END_VALUE;
                continue;
            }
            s->st = GS_BEGIN_STRING;
            continue;
        case GS_BEGIN_STRING:
            if (go_space(c))
                return;
            if (c == '"') {
                s->st = GS_IN_STRING;
                return;
            }
            return go_fail(s, c, "looking for beginning of object key string");
        case GS_END_VALUE:
            if (s->depth == 0) {
                s->st = GS_END_TOP;
                continue;
            }
            if (go_space(c))
                return;
            switch (s->stack[s->depth - 1]) {
            case PS_OBJECT_KEY:
                if (c == ':') {
                    s->stack[s->depth - 1] = PS_OBJECT_VALUE;
                    s->st = GS_BEGIN_VALUE;
                    return;
                }
                return go_fail(s, c, "after object key");
            case PS_OBJECT_VALUE:
                if (c == ',') {
                    s->stack[s->depth - 1] = PS_OBJECT_KEY;
                    s->st = GS_BEGIN_STRING;
                    return;
                }
                if (c == '}') {
                    s->depth--;
                    return;   /* stays in GS_END_VALUE */
                }
                return go_fail(s, c, "after object key:value pair");
            default:
                if (c == ',') {
                    s->st = GS_BEGIN_VALUE;
                    return;
                }
                if (c == ']') {
                    s->depth--;
                    return;
                }
                return go_fail(s, c, "after array element");
            }
        case GS_END_TOP:
            if (!go_space(c))
                go_fail(s, c, "after top-level value");
            return;
        case GS_IN_STRING:
            if (c == '"')
                s->st = GS_END_VALUE;
            else if (c == '\\')
                s->st = GS_IN_STRING_ESC;
            else if (c < 0x20)
                go_fail(s, c, "in string literal");
            return;
        case GS_IN_STRING_ESC:
            if (strchr("bfnrt\\/\"", c) && c)
                s->st = GS_IN_STRING;
            else if (c == 'u')
                s->st = GS_ESC_U1;
            else
                go_fail(s, c, "in string escape code");
            return;
        case GS_ESC_U1: case GS_ESC_U2: case GS_ESC_U3: case GS_ESC_U4:
            if (!go_digit(c) && !((c | 0x20) >= 'a' && (c | 0x20) <= 'f'))
                return go_fail(s, c, "in \\u hexadecimal character escape");
            s->st = s->st == GS_ESC_U4 ? GS_IN_STRING : s->st + 1;
            return;
        case GS_NEG:
            if (c == '0')
                s->st = GS_ZERO;
            else if (c >= '1' && c <= '9')
                s->st = GS_ONE;
            else
                go_fail(s, c, "in numeric literal");
            return;
        case GS_ONE:
            if (go_digit(c))
                return;
            s->st = GS_ZERO;
            continue;
        case GS_ZERO:   /* after the integer part */
        case GS_DOT0:   /* after a fraction digit */
            if (s->st == GS_ZERO && c == '.') {
                s->st = GS_DOT;
                return;
            }
            if (s->st == GS_DOT0 && go_digit(c))
                return;
            if (c == 'e' || c == 'E') {   /* both may go on to an exponent */
                s->st = GS_E;
                return;
            }
            s->st = GS_END_VALUE;
            continue;
        case GS_DOT:
            if (go_digit(c))
                s->st = GS_DOT0;
            else
                go_fail(s, c, "after decimal point in numeric literal");
            return;
        case GS_E:
            if (c == '+' || c == '-') {
                s->st = GS_ESIGN;
                return;
            }
            s->st = GS_ESIGN;
            continue;
        case GS_ESIGN:
            if (go_digit(c))
                s->st = GS_E0;
            else
                go_fail(s, c, "in exponent of numeric literal");
            return;
        case GS_E0:
            if (go_digit(c))
                return;
            s->st = GS_END_VALUE;
            continue;
        case GS_LITERAL:
            if (c == (unsigned char)s->lit[s->lit_at]) {
                if (!s->lit[++s->lit_at])
                    s->st = GS_END_VALUE;
                return;
            }
            return go_fail(s, c, "in literal");
        }
    }
}

/* Go's quoteChar: the byte as a rune U+0000..U+00FF in single quotes, escaped as strconv.Quote
 * would (control and other non-printable runes as \x.. or \u00..). */
static void go_quote_char(unsigned char c, char out[16])
{
    if (c == '\'') {
        strcpy(out, "'\\''");
    } else if (c == '"') {
        strcpy(out, "'\"'");
    } else if (c == '\\') {
        strcpy(out, "'\\\\'");
    } else if (c < 0x20 || c == 0x7f) {
        static const char esc[] = "\a\b\f\n\r\t\v", name[] = "abfnrtv";
        const char *e = c ? strchr(esc, c) : NULL;
        if (e)
            snprintf(out, 16, "'\\%c'", name[e - esc]);
        else
            snprintf(out, 16, "'\\x%02x'", c);
    } else if (c < 0x80) {
        snprintf(out, 16, "'%c'", c);
    } else if (c < 0xa1 || c == 0xad) {   /* C1 controls, no-break space, soft hyphen */
        snprintf(out, 16, "'\\u%04x'", c);
    } else {
        snprintf(out, 16, "'%c%c'", 0xc0 | (c >> 6), 0x80 | (c & 0x3f));
    }
}

bool ck_jsonscan_go_error(const char *p, const char *end, char *out, size_t cap)
{
    struct go_scan s = {.st = GS_BEGIN_VALUE};
    for (; p < end && !s.err; p++)
        go_step(&s, (unsigned char)*p);
    if (!s.err && s.st != GS_END_TOP) {
        go_step(&s, ' ');   /* as Go at the end: a space may end a number or the top value */
        if (!s.err && s.st != GS_END_TOP && !(s.st == GS_END_VALUE && s.depth == 0)) {
            free(s.stack);
            snprintf(out, cap, "unexpected end of JSON input");
            return true;
        }
    }
    free(s.stack);
    if (!s.err)
        return false;
    char q[16];
    go_quote_char(s.bad, q);
    if (!strcmp(s.err, "in literal"))
        snprintf(out, cap, "invalid character %s in literal %s (expecting '%c')", q, s.lit,
                 s.lit[s.lit_at]);
    else
        snprintf(out, cap, "invalid character %s %s", q, s.err);
    return true;
}
