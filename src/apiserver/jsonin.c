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
