/* codec.c - see codec.h.  JSON goes through jansson; before that a small scanner walks the text
 * once to measure nesting depth and to find duplicate object keys (jansson keeps the last value
 * silently, as Go's decoder does, but fieldValidation=Strict must report them). */
#include "apiserver/codec.h"
#include "lib/jsonscan.h"
#include "lib/util.h"

#include <string.h>
#include <strings.h>

/* One open container on the scanner's path: the key (raw text between the quotes) or index
 * that leads to the value being scanned now. */
struct seg {
    const char *key;
    size_t klen;
    size_t idx;
    bool is_key;
};

/* A raw key seen in the current object (escapes are compared as written: a key spelled once
 * with and once without an escape is not reported, which no client does). */
struct rawkey {
    const char *p;
    size_t n;
};

struct scan {
    const char *p, *end;
    json_t *dups;       /* NULL: depth check only */
    struct seg *path;   /* CK_DECODE_MAX_DEPTH + 1 entries */
    int depth;
    bool too_deep;
};

static void skip_ws(struct scan *s)
{
    s->p = ck_jsonscan_ws(s->p, s->end);
}

/* A JSON string at s->p: its raw contents in raw and rawn.  -1 on anything malformed (jansson
 * will report it). */
static int scan_string(struct scan *s, const char **raw, size_t *rawn)
{
    if (s->p >= s->end || *s->p != '"')
        return -1;
    const char *after = ck_jsonscan_string(s->p, s->end);
    if (!after)
        return -1;
    if (raw) {
        *raw = s->p + 1;
        *rawn = (size_t)(after - 1 - (s->p + 1));
    }
    s->p = after;
    return 0;
}

/* The path of the key at the current depth, ".a.b[0].c" (keys unescaped for the common escapes). */
static void report_dup(struct scan *s)
{
    ck_buf b;
    ck_buf_init(&b, 1u << 20);
    for (int i = 1; i <= s->depth; i++) {
        const struct seg *g = &s->path[i];
        if (!g->is_key) {
            ck_buf_printf(&b, "[%zu]", g->idx);
            continue;
        }
        ck_buf_addstr(&b, ".");
        for (size_t k = 0; k < g->klen; k++) {
            char c = g->key[k];
            if (c == '\\' && k + 1 < g->klen) {
                char e = g->key[++k];
                c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f' : e;
                if (e == 'u') {
                    ck_buf_add(&b, "\\u", 2);
                    continue;
                }
            }
            ck_buf_add(&b, &c, 1);
        }
    }
    json_array_append_new(s->dups, json_string(b.data ? b.data : ""));
    ck_buf_free(&b);
}

static int scan_value(struct scan *s);

static int scan_object(struct scan *s)
{
    s->p++;
    struct rawkey local[8], *keys = local;   /* small: this frame recurses */
    size_t nkeys = 0, cap = ARRAY_SIZE(local);
    int rc = -1;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return 0;
    }
    for (;;) {
        skip_ws(s);
        const char *k;
        size_t kn;
        if (scan_string(s, &k, &kn) < 0)
            goto out;
        struct seg *g = &s->path[s->depth];
        *g = (struct seg){.key = k, .klen = kn, .is_key = true};
        if (s->dups) {
            bool dup = false;
            for (size_t i = 0; i < nkeys && !dup; i++)
                dup = keys[i].n == kn && !memcmp(keys[i].p, k, kn);
            if (dup) {
                report_dup(s);
            } else {
                if (nkeys == cap) {
                    cap *= 2;
                    if (keys == local) {
                        keys = xmalloc(cap * sizeof *keys);
                        memcpy(keys, local, sizeof local);
                    } else {
                        keys = xrealloc(keys, cap * sizeof *keys);
                    }
                }
                keys[nkeys++] = (struct rawkey){k, kn};
            }
        }
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
    if (keys != local)
        free(keys);
    return rc;
}

static int scan_array(struct scan *s)
{
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return 0;
    }
    for (size_t i = 0;; i++) {
        s->path[s->depth] = (struct seg){.idx = i};
        if (scan_value(s) < 0)
            return -1;
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
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
        if (s->depth + 1 > CK_DECODE_MAX_DEPTH) {
            s->too_deep = true;
            return -1;
        }
        s->depth++;
        int rc = *s->p == '{' ? scan_object(s) : scan_array(s);
        s->depth--;
        return rc;
    }
    if (*s->p == '"')
        return scan_string(s, NULL, NULL);
    /* number, true, false, null: jansson checks the spelling */
    while (s->p < s->end && *s->p != ',' && *s->p != ']' && *s->p != '}' && *s->p != ' ' && *s->p != '\n' &&
           *s->p != '\t' && *s->p != '\r')
        s->p++;
    return 0;
}

json_t *ck_json_load(const char *buf, size_t len, json_t *duplicates, ck_error **err)
{
    /* the common case in one pass: the builder, declining on a repeated key (and on nesting
     * beyond its 512 levels, within our limit); anything it declines takes the scan below,
     * which reports duplicates and depth as before */
    ck_jsonscan l = {.p = buf, .end = buf + len, .no_dups = true};
    l.p = ck_jsonscan_ws(l.p, l.end);
    json_t *fast = ck_jsonscan_value(&l);
    if (fast && ck_jsonscan_ws(l.p, l.end) != l.end) {
        json_decref(fast);
        fast = NULL;
    }
    ck_jsonscan_done(&l);
    if (fast)
        return fast;
    struct scan s = {.p = buf, .end = buf + len, .dups = duplicates};
    s.path = xcalloc(CK_DECODE_MAX_DEPTH + 2, sizeof *s.path);
    scan_value(&s);
    free(s.path);
    if (s.too_deep) {
        ck_error_set(err, CK_E_TOO_LARGE, "json: exceeded max depth of %d", CK_DECODE_MAX_DEPTH);
        return NULL;
    }
    json_error_t je;
    json_t *j = ck_json_parse_plain(buf, len, JSON_DECODE_ANY);
    if (j)
        return j;
    /* upstream reads apiVersion and kind with Go's encoding/json first: its grammar and words.
     * Checked before jansson, which takes a NUL byte after a number or literal as nothing
     * ({"a":null\0,"b":1} decoded) */
    char goerr[160];
    if (ck_jsonscan_go_error(buf, buf + len, goerr, sizeof goerr)) {
        ck_error_set(err, CK_E_BAD_REQUEST, "couldn't get version/kind; json parse error: %s", goerr);
        return NULL;
    }
    j = json_loadb(buf, len, JSON_DECODE_ANY, &je);
    if (!j) {   /* valid for Go, not for jansson: NUL, bad UTF-8, out of range (docs/qa.md) */
        ck_error_set(err, CK_E_BAD_REQUEST,
                     "couldn't get version/kind; json parse error: %s (line %d, column %d)",
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
