/* client_int.h - what client.c shares with sender.c and watch.c (not for other modules), and the sender's
 * HTTP/1.1 answer parser, exported for its unit test. */
#ifndef CK_CLIENT_INT_H
#define CK_CLIENT_INT_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

#include "client/client.h"
#include "lib/kubeconfig.h"
#include "lib/util.h"

/* A connection of its own to the server, opened by libcurl in CONNECT_ONLY mode (TCP, TLS with
 * the client's identity, ALPN offering http/1.1 only) and handed over: the caller prints its
 * requests and reads the answers with curl_easy_send/recv on *fd, and frees the handle with
 * curl_easy_cleanup.  NULL with *err (CK_E_UNAVAILABLE, "server: why") when it cannot connect. */
CURL *ck_client_connect_only(ck_client *c, curl_socket_t *fd, ck_error **err);
const ck_kubeconfig *ck_client_kubeconfig(const ck_client *c);
const char *ck_client_user_agent(const ck_client *c);
/* *err from a non-2xx answer's Status body (body may be NULL); returns -1. */
int ck_client_status_error(long http, const char *body, const char *method, const char *path,
                           ck_error **err);

/* The server URL's path ("" or "/base", no trailing slash): what goes before a request's path. */
const char *ck_client_prefix(const ck_client *c);
/* "Host: ...\r\nUser-Agent: ...\r\n[Authorization: Bearer ...\r\n]", printed once a client
 * (it may hold the token: wiped when the client is freed). */
const char *ck_client_fixed_headers(const ck_client *c, size_t *len);

/* The head of an HTTP/1.1 answer (1xx answers before it skipped). */
typedef struct ck_client_head {
    int status;
    bool chunked, has_len, close;
    size_t clen;       /* Content-Length when has_len */
    size_t used;       /* bytes up to the end of the head */
} ck_client_head;
/* 1: complete, 0: more bytes needed, -1: malformed (or eof before its end). */
int ck_client_parse_head(const char *p, size_t len, bool eof, ck_client_head *h);

/* One HTTP/1.1 answer parsed from the bytes received so far (p[0..len), eof: the peer closed). */
typedef struct ck_client_answer {
    int status;
    bool close;        /* the connection cannot carry another request */
    size_t used;       /* bytes of p the answer took (header, body, chunk framing) */
    ck_buf body;       /* the body, de-chunked (init it before; the caller frees it) */
} ck_client_answer;
/* 1: complete (a->*), 0: more bytes needed, -1: malformed or over max_body. */
int ck_client_parse_answer(const char *p, size_t len, bool eof, size_t max_body,
                           ck_client_answer *a);

#endif
