/* http_util.c - see http_util.h; also the request accessors declared in httpd.h. */
#include "lib/http_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/httpd.h"
#include "lib/util.h"

bool ck_http__is_token(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
            continue;
        if (!strchr("!#$%&'*+-.^_`|~", ch) || ch == 0)
            return false;
    }
    return true;
}

bool ck_http__is_field_value(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\t')
            continue;
        if (ch < 0x20 || ch == 0x7f)
            return false;
    }
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *ck_http__pct_decode(const char *s, size_t n, bool plus_space, bool strict)
{
    char *out = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            int hi = i + 1 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi >= 0 && lo >= 0) {
                char d = (char)(hi * 16 + lo);
                if (d == '\0' && strict)
                    goto bad;
                out[o++] = d;
                i += 2;
                continue;
            }
            if (strict)
                goto bad;
            out[o++] = ch;
        } else if (ch == '+' && plus_space) {
            out[o++] = ' ';
        } else {
            out[o++] = ch;
        }
    }
    out[o] = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

const char *ck_http__reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Request Entity Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

void ck_http__date(char out[32])
{
    static __thread time_t cached_sec = -1;
    static __thread char cached[32];
    time_t now = time(NULL);
    if (now != cached_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(cached, sizeof cached, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cached_sec = now;
    }
    memcpy(out, cached, 32);
}

/* s as the inside of a JSON string: quotes, backslashes and control bytes escaped, bytes that
 * are not UTF-8 replaced by U+FFFD (as Go's encoding/json writes them). */
static void json_escape(ck_buf *b, const char *s)
{
    cleanup_free char *clean = ck_utf8_sanitize(s);
    for (const unsigned char *p = (const unsigned char *)clean; *p; p++) {
        if (*p == '"' || *p == '\\')
            ck_buf_printf(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            ck_buf_printf(b, "\\u%04x", *p);
        else
            ck_buf_add(b, p, 1);
    }
}

char *ck_http__status_json(int code, const char *reason, const char *message)
{
    /* the message may echo a peer's bytes (a pod name from the URL, a header): escaped */
    ck_buf b;
    ck_buf_init(&b, 0);
    ck_buf_addstr(&b, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                      "\"status\":\"Failure\",\"message\":\"");
    json_escape(&b, message);
    ck_buf_addstr(&b, "\",\"reason\":\"");
    json_escape(&b, reason);
    ck_buf_printf(&b, "\",\"code\":%d}\n", code);
    return ck_buf_steal(&b);
}

bool ck_http__has_token(const char *value, const char *token)
{
    size_t tl = strlen(token);
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if ((size_t)(end - start) == tl && !strncasecmp(start, token, tl))
            return true;
    }
    return false;
}

bool ck_http__lines_have_token(const char *lines, const char *name, const char *token)
{
    size_t nl = strlen(name);
    for (const char *p = lines; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > nl && p[nl] == ':' && !strncasecmp(p, name, nl)) {
            char *v = xstrndup(p + nl + 1, len - nl - 1);
            bool has = ck_http__has_token(v, token);
            free(v);
            if (has)
                return true;
        }
        p = eol ? eol + 2 : NULL;
    }
    return false;
}

const char *ck_http_req_header(const ck_http_req *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (!strcasecmp(req->headers[i].name, name))
            return req->headers[i].value;
    return NULL;
}

char *ck_http_query_param(const char *query, const char *name)
{
    if (!query)
        return NULL;
    size_t nl = strlen(name);
    const char *p = query;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        cleanup_free char *key = ck_http__pct_decode(p, klen, true, false);
        if (strlen(key) == nl && !memcmp(key, name, nl)) {
            if (!eq)
                return xstrdup("");
            return ck_http__pct_decode(eq + 1, len - klen - 1, true, false);
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return NULL;
}

bool ck_http_query_bool(const char *query, const char *name)
{
    cleanup_free char *v = ck_http_query_param(query, name);
    return v && strcmp(v, "0") && strcasecmp(v, "false");
}
