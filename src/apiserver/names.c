/* names.c - see names.h.  Hand-written matchers for upstream's validation regular expressions;
 * the messages carry upstream's wording because clients and users match on them. */
#include "apiserver/names.h"
#include "lib/util.h"

#include <stdio.h>
#include <string.h>

#define QNAME_FMT "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
#define QNAME_MSG "must consist of alphanumeric characters, '-', '_' or '.', and must start and end " \
                  "with an alphanumeric character"
#define QNAME_EX  "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '" QNAME_FMT "')"
#define LABEL_FMT "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
#define SUBDOMAIN_FMT LABEL_FMT "(\\." LABEL_FMT ")*"
#define SUBDOMAIN_MSG "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, " \
                      "'-' or '.', and must start and end with an alphanumeric character (e.g. " \
                      "'example.com', regex used for validation is '" SUBDOMAIN_FMT "')"
#define LABEL_MSG "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', " \
                  "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', " \
                  "regex used for validation is '" LABEL_FMT "')"

static bool is_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
static bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

/* Joins messages with "; " into a ck_buf. */
static void add_msg(ck_buf *b, const char *m)
{
    if (b->len)
        ck_buf_addstr(b, "; ");
    ck_buf_addstr(b, m);
}

static char *finish(ck_buf *b)
{
    if (!b->len) {
        ck_buf_free(b);
        return NULL;
    }
    return ck_buf_steal(b);
}

/* [a-z0-9]([-a-z0-9]*[a-z0-9])? over s[0..n) */
static bool match_label(const char *s, size_t n)
{
    if (n == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_lower_alnum(s[i]) && s[i] != '-')
            return false;
    return true;
}

static bool match_subdomain(const char *s)
{
    size_t n = strlen(s);
    if (n == 0)
        return false;
    const char *p = s;
    for (;;) {
        const char *dot = memchr(p, '.', n - (size_t)(p - s));
        size_t len = dot ? (size_t)(dot - p) : n - (size_t)(p - s);
        if (!match_label(p, len))
            return false;
        if (!dot)
            return true;
        p = dot + 1;
    }
}

/* ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9] */
static bool match_qname(const char *s, size_t n)
{
    if (n == 0 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return false;
    return true;
}

static void max_len(ck_buf *b, size_t max)
{
    char m[64];
    snprintf(m, sizeof m, "must be no more than %zu characters", max);
    add_msg(b, m);
}

char *ck_check_dns1123_label(const char *s)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    size_t n = strlen(s);
    if (n > 63)
        max_len(&b, 63);
    if (!match_label(s, n))
        add_msg(&b, match_subdomain(s) ? "must not contain dots" : LABEL_MSG);
    return finish(&b);
}

char *ck_check_dns1123_subdomain(const char *s)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    if (strlen(s) > 253)
        max_len(&b, 253);
    if (!match_subdomain(s))
        add_msg(&b, SUBDOMAIN_MSG);
    return finish(&b);
}

char *ck_check_dns1035_label(const char *s)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    size_t n = strlen(s);
    if (n > 63)
        max_len(&b, 63);
    if (!match_label(s, n) || !(s[0] >= 'a' && s[0] <= 'z'))
        add_msg(&b, "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
                    "with an alphabetic character, and end with an alphanumeric character (e.g. "
                    "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')");
    return finish(&b);
}

char *ck_check_qualified_name(const char *s)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    const char *slash = strchr(s, '/');
    const char *name = s;
    if (slash && strchr(slash + 1, '/')) {
        add_msg(&b, "a qualified name " QNAME_MSG " " QNAME_EX
                    " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')");
        return finish(&b);
    }
    if (slash) {
        name = slash + 1;
        cleanup_free char *prefix = xstrndup(s, (size_t)(slash - s));
        if (!*prefix) {
            add_msg(&b, "prefix part must be non-empty");
        } else {
            cleanup_free char *pm = ck_check_dns1123_subdomain(prefix);
            if (pm) {
                /* upstream prefixes each message of the prefix check */
                char *save = NULL;
                for (char *t = strtok_r(pm, ";", &save); t; t = strtok_r(NULL, ";", &save)) {
                    while (*t == ' ')
                        t++;
                    cleanup_free char *m = xasprintf("prefix part %s", t);
                    add_msg(&b, m);
                }
            }
        }
    }
    size_t n = strlen(name);
    if (n == 0)
        add_msg(&b, "name part must be non-empty");
    else if (n > 63)
        add_msg(&b, "name part must be no more than 63 characters");
    if (!match_qname(name, n))
        add_msg(&b, "name part " QNAME_MSG " " QNAME_EX);
    return finish(&b);
}

char *ck_check_label_value(const char *s)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    size_t n = strlen(s);
    if (n > 63)
        max_len(&b, 63);
    if (n && !match_qname(s, n))
        add_msg(&b, "a valid label must be an empty string or consist of alphanumeric characters, '-', "
                    "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  "
                    "or 'my_value',  or '12345', regex used for validation is '(" QNAME_FMT ")?')");
    return finish(&b);
}

static void dots(ck_buf *b, const char *s)
{
    if (!strcmp(s, "."))
        add_msg(b, "must not be '.'");
    else if (!strcmp(s, ".."))
        add_msg(b, "must not be '..'");
    else if (!strncmp(s, "..", 2))
        add_msg(b, "must not start with '..'");
}

char *ck_check_config_map_key(const char *s)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    size_t n = strlen(s);
    if (n > 253)
        max_len(&b, 253);
    bool ok = n > 0;
    for (size_t i = 0; i < n && ok; i++)
        ok = is_alnum(s[i]) || s[i] == '-' || s[i] == '_' || s[i] == '.';
    if (!ok)
        add_msg(&b, "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
                    "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
                    "'[-._a-zA-Z0-9]+')");
    dots(&b, s);
    return finish(&b);
}

char *ck_check_env_var_name(const char *s)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    size_t n = strlen(s);
    bool ok = n > 0 && !(s[0] >= '0' && s[0] <= '9');
    for (size_t i = 0; i < n && ok; i++)
        ok = is_alnum(s[i]) || s[i] == '-' || s[i] == '_' || s[i] == '.';
    if (!ok)
        add_msg(&b, "a valid environment variable name must consist of alphabetic characters, digits, "
                    "'_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or "
                    "'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is "
                    "'[-._a-zA-Z][-._a-zA-Z0-9]*')");
    dots(&b, s);
    return finish(&b);
}

char *ck_check_port_name(const char *s)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    size_t n = strlen(s);
    if (n > 15)
        max_len(&b, 15);
    bool charset = n > 0, letter = false;
    for (size_t i = 0; i < n; i++) {
        if (!is_lower_alnum(s[i]) && s[i] != '-')
            charset = false;
        if (s[i] >= 'a' && s[i] <= 'z')
            letter = true;
    }
    if (!charset)
        add_msg(&b, "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    if (!letter)
        add_msg(&b, "must contain at least one letter (a-z)");
    if (strstr(s, "--"))
        add_msg(&b, "must not contain consecutive hyphens");
    if (n && (s[0] == '-' || s[n - 1] == '-'))
        add_msg(&b, "must not begin or end with a hyphen");
    return finish(&b);
}

/* Length of a valid UTF-8 sequence at p (max n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len;
    unsigned cp;
    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xe0) == 0xc0) { len = 2; cp = p[0] & 0x1f; }
    else if ((p[0] & 0xf0) == 0xe0) { len = 3; cp = p[0] & 0x0f; }
    else if ((p[0] & 0xf8) == 0xf0) { len = 4; cp = p[0] & 0x07; }
    else return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

char *ck_go_quote(const char *s)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    ck_buf_addstr(&b, "\"");
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t l = utf8_len((const unsigned char *)s + i, n - i);
            unsigned char c2 = l == 2 ? (unsigned char)s[i + 1] : 0;
            if (l == 2 && c == 0xc2 && (c2 <= 0x9f || c2 == 0xad)) {
                /* C1 controls and the soft hyphen are not printable: Go writes \u0085 */
                ck_buf_printf(&b, "\\u%04x", c2);
                i += 2;
            } else if (l) {
                ck_buf_add(&b, s + i, l);
                i += l;
            } else {
                ck_buf_printf(&b, "\\x%02x", c);
                i++;
            }
            continue;
        }
        switch (c) {
        case '"': ck_buf_addstr(&b, "\\\""); break;
        case '\\': ck_buf_addstr(&b, "\\\\"); break;
        case '\a': ck_buf_addstr(&b, "\\a"); break;
        case '\b': ck_buf_addstr(&b, "\\b"); break;
        case '\f': ck_buf_addstr(&b, "\\f"); break;
        case '\n': ck_buf_addstr(&b, "\\n"); break;
        case '\r': ck_buf_addstr(&b, "\\r"); break;
        case '\t': ck_buf_addstr(&b, "\\t"); break;
        case '\v': ck_buf_addstr(&b, "\\v"); break;
        default:
            if (c < 0x20 || c == 0x7f)
                ck_buf_printf(&b, "\\x%02x", c);
            else
                ck_buf_add(&b, &c, 1);
        }
        i++;
    }
    ck_buf_addstr(&b, "\"");
    return ck_buf_steal(&b);
}
