/* http1.c - see http1.h. */
#include "client/http1.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define H1_POOL_MAX 64
#define H1_HEADER_MAX (64u * 1024)
#define H1_IO_TIMEOUT_S 60
#define H1_CONNECT_TIMEOUT_S 5

typedef struct conn {
    int fd;
    SSL *ssl;
    char in[16384];             /* bytes read past the current position */
    size_t in_off, in_len;
    const volatile bool *cancel;    /* streams: polled every 100 ms while waiting */
    int idle_ms;                    /* streams: silence for this long ends it */
    bool cancelled;
} conn;

struct ck_http1 {
    char *host, *port, *user_agent, *auth;   /* auth: "Authorization: Bearer ...\r\n" or "" */
    bool host_is_ip;
    SSL_CTX *ctx;
    pthread_mutex_t lock;
    conn *idle[H1_POOL_MAX];
    int nidle;
};

static int tls_error(ck_error **err, const char *what)
{
    char buf[256] = "";
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return ck_error_set(err, CK_E_UNAVAILABLE, "%s%s%s", what, *buf ? ": " : "", buf);
}

/* "https://host[:port]" (no path) -> host, port. */
static int parse_server(ck_http1 *h, const char *server, ck_error **err)
{
    if (strncmp(server, "https://", 8))
        return ck_error_set(err, CK_E_INVALID, "not an https server: %s", server);
    const char *p = server + 8, *end = p + strlen(p);
    while (end > p && end[-1] == '/')
        end--;
    if (memchr(p, '/', (size_t)(end - p)) || memchr(p, '@', (size_t)(end - p)))
        return ck_error_set(err, CK_E_INVALID, "server URL has a path: %s", server);
    const char *colon;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb)
            return ck_error_set(err, CK_E_INVALID, "bad server URL %s", server);
        h->host = xstrndup(p + 1, (size_t)(rb - p - 1));
        colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        h->host = xstrndup(p, (size_t)((colon ? colon : end) - p));
    }
    h->port = colon ? xstrndup(colon + 1, (size_t)(end - colon - 1)) : xstrdup("443");
    unsigned char tmp[16];
    h->host_is_ip = inet_pton(AF_INET, h->host, tmp) == 1 || inet_pton(AF_INET6, h->host, tmp) == 1;
    if (!*h->host || !*h->port)
        return ck_error_set(err, CK_E_INVALID, "bad server URL %s", server);
    return 0;
}

static int load_identity(ck_http1 *h, const ck_kubeconfig *kc, ck_error **err)
{
    if (kc->insecure) {
        SSL_CTX_set_verify(h->ctx, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(h->ctx, SSL_VERIFY_PEER, NULL);
        if (kc->ca_pem) {
            BIO *b = BIO_new_mem_buf(kc->ca_pem, (int)kc->ca_len);
            X509_STORE *st = SSL_CTX_get_cert_store(h->ctx);
            X509 *x;
            int n = 0;
            while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
                X509_STORE_add_cert(st, x);
                X509_free(x);
                n++;
            }
            BIO_free(b);
            ERR_clear_error();          /* the end of the PEM text */
            if (!n)
                return ck_error_set(err, CK_E_INVALID, "no certificate in the CA data");
        } else if (SSL_CTX_set_default_verify_paths(h->ctx) != 1) {
            return tls_error(err, "system trust store");
        }
    }
    if (kc->cert_pem && kc->key_pem) {
        BIO *b = BIO_new_mem_buf(kc->cert_pem, (int)kc->cert_len);
        X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
        int ok = x && SSL_CTX_use_certificate(h->ctx, x) == 1;
        X509_free(x);
        X509 *extra;
        while (ok && (extra = PEM_read_bio_X509(b, NULL, NULL, NULL)))
            if (SSL_CTX_add_extra_chain_cert(h->ctx, extra) != 1)
                X509_free(extra);
        BIO_free(b);
        ERR_clear_error();
        if (!ok)
            return ck_error_set(err, CK_E_INVALID, "bad client certificate");
        b = BIO_new_mem_buf(kc->key_pem, (int)kc->key_len);
        EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
        BIO_free(b);
        ok = k && SSL_CTX_use_PrivateKey(h->ctx, k) == 1 && SSL_CTX_check_private_key(h->ctx) == 1;
        EVP_PKEY_free(k);
        if (!ok)
            return tls_error(err, "bad client key");
    }
    return 0;
}

ck_http1 *ck_http1_new(const ck_kubeconfig *kc, const char *user_agent, ck_error **err)
{
    /* OpenSSL writes with plain write(): a server that closed the connection must be an
     * EPIPE error, not a SIGPIPE that ends the process (as lib/httpd does for servers) */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    ck_http1 *h = xcalloc(1, sizeof *h);
    pthread_mutex_init(&h->lock, NULL);
    if (parse_server(h, kc->server, err) < 0)
        goto fail;
    h->ctx = SSL_CTX_new(TLS_client_method());
    if (!h->ctx) {
        tls_error(err, "TLS context");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(h->ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(h->ctx, SSL_MODE_AUTO_RETRY);
    if (load_identity(h, kc, err) < 0)
        goto fail;
    h->user_agent = xstrdup(user_agent ? user_agent : "ckube");
    h->auth = kc->token ? xasprintf("Authorization: Bearer %s\r\n", kc->token) : xstrdup("");
    return h;
fail:
    ck_http1_free(h);
    return NULL;
}

static void conn_close(conn *c)
{
    if (!c)
        return;
    if (c->ssl)
        SSL_free(c->ssl);       /* no close_notify: the server treats EOF alike */
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

void ck_http1_free(ck_http1 *h)
{
    if (!h)
        return;
    for (int i = 0; i < h->nidle; i++)
        conn_close(h->idle[i]);
    SSL_CTX_free(h->ctx);
    free(h->host);
    free(h->port);
    free(h->user_agent);
    if (h->auth) {
        memset(h->auth, 0, strlen(h->auth));
        free(h->auth);
    }
    pthread_mutex_destroy(&h->lock);
    free(h);
}

static conn *conn_open(ck_http1 *h, ck_error **err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(h->host, h->port, &hints, &res);
    if (rc) {
        ck_error_set(err, CK_E_UNAVAILABLE, "resolve %s: %s", h->host, gai_strerror(rc));
        return NULL;
    }
    conn *c = xcalloc(1, sizeof *c);
    c->fd = -1;
    for (struct addrinfo *a = res; a && c->fd < 0; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        struct timeval ct = {.tv_sec = H1_CONNECT_TIMEOUT_S};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &ct, sizeof ct);   /* bounds connect() too */
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            c->fd = fd;
        } else {
            close(fd);
        }
    }
    freeaddrinfo(res);
    if (c->fd < 0) {
        ck_error_sys(err, CK_E_UNAVAILABLE, "connect to %s:%s", h->host, h->port);
        conn_close(c);
        return NULL;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    struct timeval io = {.tv_sec = H1_IO_TIMEOUT_S};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &io, sizeof io);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &io, sizeof io);
    c->ssl = SSL_new(h->ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
        goto tls_fail;
    if (h->host_is_ip) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), h->host) != 1)
            goto tls_fail;
    } else {
        SSL_set_tlsext_host_name(c->ssl, h->host);
        if (SSL_set1_host(c->ssl, h->host) != 1)
            goto tls_fail;
    }
    if (SSL_connect(c->ssl) != 1)
        goto tls_fail;
    return c;
tls_fail:
    tls_error(err, "TLS handshake");
    ck_error_wrap(err, "connect to %s:%s", h->host, h->port);
    conn_close(c);
    return NULL;
}

/* Fill c->in when empty; returns bytes available, 0 on EOF, -1 on error. */
static ssize_t conn_fill(conn *c)
{
    if (c->in_off < c->in_len)
        return (ssize_t)(c->in_len - c->in_off);
    c->in_off = c->in_len = 0;
    if (c->cancel && !SSL_pending(c->ssl)) {
        struct pollfd pf = {.fd = c->fd, .events = POLLIN};
        int waited = 0;
        for (;;) {
            if (*c->cancel) {
                c->cancelled = true;
                return -1;
            }
            int r = poll(&pf, 1, 100);
            if (r > 0)
                break;
            if (r < 0 && errno != EINTR)
                return -1;
            if ((waited += 100) >= c->idle_ms)
                return -1;
        }
    }
    int n = SSL_read(c->ssl, c->in, (int)sizeof c->in);
    if (n <= 0) {
        int e = SSL_get_error(c->ssl, n);
        ERR_clear_error();
        return e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
    }
    c->in_len = (size_t)n;
    return n;
}

/* Append up to want bytes (SIZE_MAX: until EOF) to out. */
static int read_body(conn *c, size_t want, ck_buf *out, bool to_eof)
{
    while (to_eof || want) {
        ssize_t n = conn_fill(c);
        if (n == 0)
            return to_eof ? 0 : -1;
        if (n < 0)
            return -1;
        size_t take = to_eof || (size_t)n < want ? (size_t)n : want;
        if (ck_buf_add(out, c->in + c->in_off, take) < 0)
            return -1;
        c->in_off += take;
        if (!to_eof)
            want -= take;
    }
    return 0;
}

/* One line (CRLF stripped) into line; -1 past max or on EOF/error. */
static int read_line(conn *c, ck_buf *line, size_t max)
{
    ck_buf_reset(line);
    for (;;) {
        if (conn_fill(c) <= 0)
            return -1;
        char *s = c->in + c->in_off, *nl = memchr(s, '\n', c->in_len - c->in_off);
        size_t take = nl ? (size_t)(nl - s) + 1 : c->in_len - c->in_off;
        if (line->len + take > max || ck_buf_add(line, s, take) < 0)
            return -1;
        c->in_off += take;
        if (nl)
            break;
    }
    while (line->len && (line->data[line->len - 1] == '\n' || line->data[line->len - 1] == '\r'))
        line->data[--line->len] = '\0';
    return 0;
}

static int read_chunked(conn *c, ck_buf *out)
{
    ck_buf line;
    ck_buf_init(&line, 4096);
    int rc = -1;
    for (;;) {
        if (read_line(c, &line, 4096) < 0)
            goto out;
        char *end;
        unsigned long long n = strtoull(line.data, &end, 16);
        if (end == line.data)
            goto out;
        if (n == 0)
            break;
        if (read_body(c, (size_t)n, out, false) < 0 || read_line(c, &line, 4096) < 0)
            goto out;
    }
    do {                                  /* trailers up to the empty line */
        if (read_line(c, &line, 4096) < 0)
            goto out;
    } while (line.len);
    rc = 0;
out:
    ck_buf_free(&line);
    return rc;
}

/* Status line and headers of one answer (1xx skipped). */
static int read_head(conn *c, long *status, long long *clen, bool *chunked, bool *keep)
{
    ck_buf line;
    ck_buf_init(&line, H1_HEADER_MAX);
    int rc = -1;
    size_t total = 0;
    for (;;) {
        if (read_line(c, &line, H1_HEADER_MAX) < 0 || strncmp(line.data, "HTTP/1.", 7) ||
            line.len < 12)
            goto out;
        *status = strtol(line.data + 9, NULL, 10);
        *keep = line.data[7] == '1';
        *clen = -1;
        *chunked = false;
        for (;;) {
            if (read_line(c, &line, H1_HEADER_MAX) < 0)
                goto out;
            total += line.len;
            if (total > H1_HEADER_MAX)
                goto out;
            if (!line.len)
                break;
            char *colon = strchr(line.data, ':');
            if (!colon)
                continue;
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t kn = (size_t)(colon - line.data);
            if (kn == 14 && !strncasecmp(line.data, "Content-Length", 14))
                *clen = strtoll(v, NULL, 10);
            else if (kn == 17 && !strncasecmp(line.data, "Transfer-Encoding", 17))
                *chunked = strcasestr(v, "chunked") != NULL;
            else if (kn == 10 && !strncasecmp(line.data, "Connection", 10))
                *keep = strcasestr(v, "close") ? false : strcasestr(v, "keep-alive") ? true : *keep;
        }
        if (*status < 100 || *status >= 200) {
            rc = 0;
            break;
        }
    }
out:
    ck_buf_free(&line);
    return rc;
}

/* Read one answer.  *got_any tells whether any byte came (a retry is safe only when not). */
static int read_response(conn *c, bool head, long *status, ck_buf *resp, bool *keep,
                         bool *got_any)
{
    *got_any = false;
    if (conn_fill(c) <= 0)
        return -1;
    *got_any = true;
    long long clen;
    bool chunked;
    if (read_head(c, status, &clen, &chunked, keep) < 0)
        return -1;
    if (head || *status == 204 || *status == 304)
        return 0;
    if (chunked)
        return read_chunked(c, resp);
    if (clen >= 0)
        return read_body(c, (size_t)clen, resp, false);
    *keep = false;
    return read_body(c, 0, resp, true);
}

static conn *take(ck_http1 *h, bool *reused, ck_error **err)
{
    pthread_mutex_lock(&h->lock);
    conn *c = h->nidle ? h->idle[--h->nidle] : NULL;
    pthread_mutex_unlock(&h->lock);
    *reused = c != NULL;
    return c ? c : conn_open(h, err);
}

static void give(ck_http1 *h, conn *c)
{
    pthread_mutex_lock(&h->lock);
    if (h->nidle < H1_POOL_MAX && c->in_off == c->in_len) {
        h->idle[h->nidle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&h->lock);
    conn_close(c);
}

static void drain(ck_http1 *h)
{
    pthread_mutex_lock(&h->lock);
    int n = h->nidle;
    conn *idle[H1_POOL_MAX];
    memcpy(idle, h->idle, (size_t)n * sizeof *idle);
    h->nidle = 0;
    pthread_mutex_unlock(&h->lock);
    for (int i = 0; i < n; i++)
        conn_close(idle[i]);
}

static bool write_all(conn *c, const char *p, size_t n)
{
    while (n) {
        int w = SSL_write(c->ssl, p, n > (1u << 30) ? 1 << 30 : (int)n);
        if (w <= 0) {
            ERR_clear_error();
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

int ck_http1_request(ck_http1 *h, const char *method, const char *path, const char *content_type,
                     const char *body, size_t body_len, long *status, ck_buf *resp,
                     ck_error **err)
{
    ck_buf req;
    ck_buf_init(&req, 0);
    ck_buf_printf(&req, "%s %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\nUser-Agent: %s\r\n"
                  "Accept: application/json\r\n%s", method, path, strchr(h->host, ':') ? "[" : "",
                  h->host, strchr(h->host, ':') ? "]" : "", ":", h->port, h->user_agent, h->auth);
    if (body)
        ck_buf_printf(&req, "Content-Type: %s\r\nContent-Length: %zu\r\n",
                      content_type ? content_type : "application/json", body_len);
    else if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        ck_buf_addstr(&req, "Content-Length: 0\r\n");
    ck_buf_addstr(&req, "\r\n");
    if (body && ck_buf_add(&req, body, body_len) < 0) {
        ck_buf_free(&req);
        return ck_error_set(err, CK_E_TOO_LARGE, "%s %s: request body too large", method, path);
    }
    bool head = !strcmp(method, "HEAD");
    int rc = -1;
    for (int attempt = 0;; attempt++) {
        bool reused = false, keep = false, got_any = false;
        ck_error *cerr = NULL;
        conn *c = take(h, &reused, &cerr);
        if (!c) {
            ck_error_wrap(&cerr, "%s %s", method, path);
            if (err)
                *err = cerr;
            else
                ck_error_free(cerr);
            break;
        }
        size_t mark = resp->len;
        if (write_all(c, req.data, req.len) &&
            read_response(c, head, status, resp, &keep, &got_any) == 0) {
            if (keep)
                give(h, c);
            else
                conn_close(c);
            rc = 0;
            break;
        }
        conn_close(c);
        resp->len = mark;
        if (resp->data)
            resp->data[mark] = '\0';
        /* a kept-alive connection the server had closed: send once more on a fresh one (the
         * other idle ones are likely closed too: a server restart) */
        if (reused && !got_any && attempt == 0) {
            drain(h);
            continue;
        }
        ck_error_set(err, CK_E_UNAVAILABLE, "%s https://%s:%s%s: connection failed", method,
                     h->host, h->port, path);
        break;
    }
    memset(req.data, 0, req.len);       /* may hold a bearer token */
    ck_buf_free(&req);
    return rc;
}

/* Chunked (or to-EOF) body handed to on_data piece by piece. */
static int stream_body(conn *c, bool chunked, ck_http1_data_cb on_data, void *ctx)
{
    if (!chunked) {
        for (;;) {
            ssize_t n = conn_fill(c);
            if (n <= 0)
                return n == 0 ? 0 : -1;
            bool go = on_data(ctx, c->in + c->in_off, (size_t)n);
            c->in_off += (size_t)n;
            if (!go)
                return 0;
        }
    }
    ck_buf line;
    ck_buf_init(&line, 4096);
    int rc = -1;
    for (;;) {
        if (read_line(c, &line, 4096) < 0)
            goto out;
        char *end;
        unsigned long long want = strtoull(line.data, &end, 16);
        if (end == line.data)
            goto out;
        if (want == 0) {
            rc = 0;
            goto out;
        }
        while (want) {
            ssize_t n = conn_fill(c);
            if (n <= 0)
                goto out;
            size_t take = (size_t)n < want ? (size_t)n : (size_t)want;
            bool go = on_data(ctx, c->in + c->in_off, take);
            c->in_off += take;
            want -= take;
            if (!go) {
                rc = 0;
                goto out;
            }
        }
        if (read_line(c, &line, 4096) < 0)
            goto out;
    }
out:
    ck_buf_free(&line);
    return rc;
}

int ck_http1_stream(ck_http1 *h, const char *path, const volatile bool *cancel, int idle_ms,
                    long *status, ck_buf *err_body, ck_http1_data_cb on_data, void *ctx,
                    ck_error **err)
{
    conn *c = conn_open(h, err);        /* its own connection: a watch holds it for minutes */
    if (!c)
        return -1;
    c->cancel = cancel;
    c->idle_ms = idle_ms > 0 ? idle_ms : 300000;
    ck_buf req;
    ck_buf_init(&req, 0);
    ck_buf_printf(&req, "GET %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: %s\r\n"
                  "Accept: application/json\r\n%s\r\n", path, strchr(h->host, ':') ? "[" : "",
                  h->host, strchr(h->host, ':') ? "]" : "", h->port, h->user_agent, h->auth);
    bool wrote = write_all(c, req.data, req.len);
    memset(req.data, 0, req.len);
    ck_buf_free(&req);
    int rc = -1;
    long long clen = -1;
    bool chunked = false, keep = false;
    if (!wrote || read_head(c, status, &clen, &chunked, &keep) < 0) {
        if (c->cancelled)
            rc = 0;
        else
            ck_error_set(err, CK_E_UNAVAILABLE, "watch https://%s:%s%s: connection failed",
                         h->host, h->port, path);
        goto out;
    }
    if (*status != 200) {
        rc = chunked ? read_chunked(c, err_body)
                     : clen >= 0 ? read_body(c, (size_t)clen, err_body, false)
                                 : read_body(c, 0, err_body, true);
        if (rc < 0)
            ck_error_set(err, CK_E_UNAVAILABLE, "watch https://%s:%s%s: HTTP %ld, body cut",
                         h->host, h->port, path, *status);
        goto out;
    }
    rc = stream_body(c, chunked, on_data, ctx);
    if (rc < 0 && c->cancelled)
        rc = 0;
    else if (rc < 0)
        ck_error_set(err, CK_E_UNAVAILABLE, "watch https://%s:%s%s: stream broken", h->host,
                     h->port, path);
out:
    conn_close(c);
    return rc;
}
