/* jsonscan.h - the one hand-written JSON lexer: skip whitespace, strings and values, and build
 * jansson trees for plain JSON.
 *
 * Contract: every function takes the text as [p, end) and never reads at or past end; none
 * needs the text NUL-terminated.  The skippers check balance only (brackets and strings), not
 * syntax, and do not recurse, so any nesting is safe.  The builder (ck_jsonscan_value) accepts
 * the plain subset API objects are made of - strings with the short escapes (ASCII when escaped,
 * UTF-8 checked by jansson otherwise), integers of at most 18 digits, true/false/null, objects
 * and arrays nested at most CK_JSONSCAN_MAX_DEPTH deep - and builds the same tree json_loadb
 * would (key order, a repeated key's last value in its first place).  On anything else (\u
 * escapes, reals, big numbers, bad syntax, deeper nesting) it returns NULL and the caller decides
 * (usually: let jansson parse the text and report the error). */
#ifndef CK_LIB_JSONSCAN_H
#define CK_LIB_JSONSCAN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define CK_JSONSCAN_MAX_DEPTH 512

/* Past the JSON whitespace at p (end when it runs to the end). */
const char *ck_jsonscan_ws(const char *p, const char *end);

/* p at an opening quote: past the closing quote, or NULL when the string is unterminated. */
const char *ck_jsonscan_string(const char *p, const char *end);

/* p at the first character of a value: past the value, or NULL when it is unterminated,
 * unbalanced or empty.  A scalar ends at ',', '}', ']' or whitespace. */
const char *ck_jsonscan_skip(const char *p, const char *end);

/* The builder's state: p advances past what was built; tmp is unescape scratch. */
typedef struct ck_jsonscan {
    const char *p, *end;
    char *tmp;
    size_t tmpcap;
    int depth;
    bool no_dups;   /* set: decline an object that repeats a key (unescaped compare) */
} ck_jsonscan;

/* Build the value at l->p (no leading whitespace) and move past it; NULL (l->p anywhere) when
 * it is not plain JSON as above. */
json_t *ck_jsonscan_value(ck_jsonscan *l);

/* Free the scratch; l may be reused after. */
void ck_jsonscan_done(ck_jsonscan *l);

/* The first syntax error of [p, end) as Go's encoding/json words it ("invalid character 'x'
 * after object key", "unexpected end of JSON input"), in out (cap bytes, truncated); false when
 * the text is valid JSON.  Byte for byte Go's scanner: UTF-8 is not checked, and nesting is not
 * limited (the caller bounds it first). */
bool ck_jsonscan_go_error(const char *p, const char *end, char *out, size_t cap);

#endif
