/* httpd_parse.c - the HTTP server's request parser (see httpd_int.h; httpd.c has the design).
 *
 * I/O thread only.  It reads a request's line, headers and body (Content-Length or chunked, with
 * trailers) from a connection's input into c->cur, within the server's header, header-count and
 * body limits, and says which HTTP status a malformed or too large request fails with;
 * ck__httpd_fail_status sends that answer and closes.  httpd.c's conn_process drives it and
 * dispatches the complete request.
 */
#include "lib/httpd_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "lib/connio.h"
#include "lib/http_util.h"
#include "lib/util.h"

#define MAX_CHUNK_LINE 1024           /* chunk-size line incl. extensions */

/* ---- I/O thread: the request parser ----------------------------------------------------- */

static int parse_request_line(struct conn *c, char *line, size_t n)
{
    ck_http_resp *r = c->cur;
    char *sp1 = memchr(line, ' ', n);
    if (!sp1)
        return 400;
    char *sp2 = memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - line));
    if (!sp2)
        return 400;
    size_t mlen = (size_t)(sp1 - line), tlen = (size_t)(sp2 - sp1 - 1);
    const char *ver = sp2 + 1;
    size_t vlen = n - (size_t)(ver - line);
    if (!ck_http__is_token(line, mlen) || tlen == 0)
        return 400;
    for (size_t i = 0; i < tlen; i++) {
        unsigned char ch = (unsigned char)sp1[1 + i];
        if (ch <= 0x20 || ch == 0x7f)
            return 400;
    }
    if (vlen != 8 || memcmp(ver, "HTTP/", 5) || ver[6] != '.' ||
        ver[5] < '0' || ver[5] > '9' || ver[7] < '0' || ver[7] > '9')
        return 400;
    if (ver[5] != '1')
        return 505;
    r->http10 = ver[7] == '0';
    r->method = xstrndup(line, mlen);
    r->target = xstrndup(sp1 + 1, tlen);

    const char *t = r->target;
    if (!strncasecmp(t, "http://", 7) || !strncasecmp(t, "https://", 8)) {
        t = strstr(t, "://") + 3;   /* absolute-form: drop scheme and authority */
        t += strcspn(t, "/?");
    }
    const char *q = strchr(t, '?');
    size_t plen = q ? (size_t)(q - t) : strlen(t);
    if (plen == 0)
        r->path = xstrdup("/");
    else if (t[0] != '/' && !(plen == 1 && t[0] == '*'))
        return 400;
    else if (!(r->path = ck_http__pct_decode(t, plen, false, true)))
        return 400;
    r->query = xstrdup(q ? q + 1 : "");
    r->req.method = r->method;
    r->req.target = r->target;
    r->req.path = r->path;
    r->req.query = r->query;
    r->head = !strcmp(r->method, "HEAD");
    return 0;
}

static int parse_header_line(struct conn *c, char *line, size_t n)
{
    ck_http_resp *r = c->cur;
    if (line[0] == ' ' || line[0] == '\t')
        return 400;                             /* obsolete line folding */
    char *colon = memchr(line, ':', n);
    if (!colon || !ck_http__is_token(line, (size_t)(colon - line)))
        return 400;
    const char *v = colon + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (!ck_http__is_field_value(v, (size_t)(end - v)))
        return 400;
    if (r->req.nheaders >= c->h->cfg.max_headers)
        return 431;
    if (r->req.nheaders == r->hdr_cap) {
        r->hdr_cap = r->hdr_cap ? r->hdr_cap * 2 : 16;
        r->req.headers = xrealloc(r->req.headers, r->hdr_cap * sizeof *r->req.headers);
    }
    ck_http_header *hd = &r->req.headers[r->req.nheaders++];
    hd->name = xstrndup(line, (size_t)(colon - line));
    hd->value = xstrndup(v, (size_t)(end - v));
    return 0;
}

void ck__httpd_fail_status(struct conn *c, int status)
{
    switch (status) {
    case 413:
        ck__httpd_conn_fail(c, 413, "RequestEntityTooLarge", "the request body is too large");
        break;
    case 431:
        ck__httpd_conn_fail(c, 431, "BadRequest", "the request header fields are too large");
        break;
    case 417:
        ck__httpd_conn_fail(c, 417, "BadRequest", "unsupported Expect header");
        break;
    case 501:
        ck__httpd_conn_fail(c, 501, "BadRequest", "unsupported Transfer-Encoding");
        break;
    case 505:
        ck__httpd_conn_fail(c, 505, "BadRequest", "unsupported HTTP version");
        break;
    default:
        ck__httpd_conn_fail(c, 400, "BadRequest", "malformed HTTP request");
        break;
    }
}

/* 1: headers complete, 0: need more input, -1: failed (answer sent). */
int ck__httpd_parse_headers(struct conn *c, struct evbuffer *in)
{
    size_t max = c->h->cfg.max_header_bytes;
    for (;;) {
        size_t n;
        char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
        if (!line) {
            if (c->hdr_bytes + evbuffer_get_length(in) > max) {
                ck__httpd_fail_status(c, 431);
                return -1;
            }
            return 0;
        }
        c->hdr_bytes += n + 2;
        int status = 0;
        if (c->hdr_bytes > max)
            status = 431;
        else if (memchr(line, '\0', n))
            status = 400;
        else if (!c->got_request_line) {
            if (n > 0) {                        /* a stray CRLF before a request is ignored */
                status = parse_request_line(c, line, n);
                c->got_request_line = true;
            }
        } else if (n == 0) {
            free(line);
            return 1;
        } else {
            status = parse_header_line(c, line, n);
        }
        free(line);
        if (status) {
            ck__httpd_fail_status(c, status);
            return -1;
        }
    }
}

/* Decide how the body is framed once the headers are in.  0 or an HTTP status to fail with. */
int ck__httpd_prepare_body(struct conn *c, struct evbuffer *in)
{
    ck_http_resp *r = c->cur;
    const ck_http_req *q = &r->req;
    bool have_cl = false, have_te = false, expect_continue = false;
    uint64_t cl = 0;
    bool keepalive = !r->http10, host = false;
    for (size_t i = 0; i < q->nheaders; i++) {
        const char *name = q->headers[i].name, *v = q->headers[i].value;
        if (!strcasecmp(name, "Content-Length")) {
            if (!*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 18)
                return 400;
            uint64_t x = strtoull(v, NULL, 10);
            if (have_cl && x != cl)
                return 400;
            have_cl = true;
            cl = x;
        } else if (!strcasecmp(name, "Transfer-Encoding")) {
            if (have_te || strcasecmp(v, "chunked"))
                return 501;
            have_te = true;
        } else if (!strcasecmp(name, "Connection")) {
            if (ck_http__has_token(v, "close"))
                keepalive = false;
            else if (r->http10 && ck_http__has_token(v, "keep-alive"))
                keepalive = true;
        } else if (!strcasecmp(name, "Expect")) {
            if (strcasecmp(v, "100-continue"))
                return 417;
            expect_continue = !r->http10;
        } else if (!strcasecmp(name, "Host")) {
            host = true;
        }
    }
    if (!r->http10 && !host)
        return 400;                             /* as Go's net/http: HTTP/1.1 needs Host */
    if (have_cl && have_te)
        return 400;                             /* ambiguous framing: refuse (smuggling) */
    r->keepalive = keepalive;
    if (have_te) {
        c->body_mode = BODY_CHUNKED;
        c->chunk = CH_SIZE;
    } else if (have_cl && cl > 0) {
        if (cl > c->h->cfg.max_body_bytes)
            return 413;
        c->body_mode = BODY_LENGTH;
        c->body_left = cl;
        r->body_cap = (size_t)cl + 1;
        r->body = xmalloc(r->body_cap);
    } else {
        c->body_mode = BODY_NONE;
    }
    if (c->body_mode != BODY_NONE && expect_continue && evbuffer_get_length(in) == 0)
    {
        evbuffer_add(ck_connio_output(c->io), "HTTP/1.1 100 Continue\r\n\r\n", 25);
        ck_connio_flush(c->io);
    }
    return 0;
}

static int body_append(struct conn *c, struct evbuffer *in, size_t n)
{
    ck_http_resp *r = c->cur;
    if (r->req.body_len + n > c->h->cfg.max_body_bytes)
        return 413;
    if (r->req.body_len + n + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        while (cap < r->req.body_len + n + 1)
            cap *= 2;
        r->body = xrealloc(r->body, cap);
        r->body_cap = cap;
    }
    evbuffer_remove(in, r->body + r->req.body_len, n);
    r->req.body_len += n;
    return 0;
}

/* 1: body complete, 0: need more, or an HTTP status to fail with. */
int ck__httpd_parse_body(struct conn *c, struct evbuffer *in)
{
    for (;;) {
        size_t avail = evbuffer_get_length(in);
        if (c->body_mode == BODY_LENGTH || (c->body_mode == BODY_CHUNKED && c->chunk == CH_DATA)) {
            size_t take = avail < c->body_left ? avail : (size_t)c->body_left;
            if (take) {
                int st = body_append(c, in, take);
                if (st)
                    return st;
                c->body_left -= take;
            }
            if (c->body_left > 0)
                return 0;
            if (c->body_mode == BODY_LENGTH)
                return 1;
            c->chunk = CH_DATA_CRLF;
            continue;
        }
        size_t n;
        char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
        if (!line)
            return evbuffer_get_length(in) > MAX_CHUNK_LINE ? 400 : 0;
        int st = 0;
        if (c->chunk == CH_SIZE) {
            /* hex digits only, as Go's parseHexUint: strtoull alone would take "0x10" */
            size_t digits = strspn(line, "0123456789abcdefABCDEF");
            char *end = line + digits;
            unsigned long long size = 0;
            for (size_t k = 0; k < digits && k < 16; k++)
                size = size << 4 | (unsigned long long)(isdigit((unsigned char)line[k])
                                                        ? line[k] - '0'
                                                        : (line[k] | 0x20) - 'a' + 10);
            if (digits == 0 || digits > 16 || (*end && *end != ';' && *end != ' ' && *end != '\t'))
                st = 400;
            else if (size > c->h->cfg.max_body_bytes)
                st = 413;
            else if (size == 0)
                c->chunk = CH_TRAILER;
            else {
                c->body_left = size;
                c->chunk = CH_DATA;
            }
        } else if (c->chunk == CH_DATA_CRLF) {
            st = n == 0 ? 0 : 400;
            c->chunk = CH_SIZE;
        } else {                                /* CH_TRAILER: ignore fields, bounded */
            c->hdr_bytes += n + 2;
            if (c->hdr_bytes > c->h->cfg.max_header_bytes)
                st = 431;
            else if (n == 0) {
                free(line);
                return 1;
            }
        }
        free(line);
        if (st)
            return st;
    }
}
