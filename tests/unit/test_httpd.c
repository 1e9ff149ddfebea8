/* Unit tests for lib/httpd: a live server on 127.0.0.1 (port 0), driven by libcurl and, where
 * curl cannot express the case (pipelining, garbage, slow loris, raw tunnels), raw sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "lib/http_util.h"
#include "lib/httpd.h"
#include "lib/util.h"

/* ---- shared test state and the handler -------------------------------------------------- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool block_released;
    int blocked;               /* handlers waiting in /block */
    int closes;                /* on_close calls */
    ck_http_stream *watch;     /* the stream /watch left open */
    int slow_result;           /* what the /slow writer's last write returned */
    int slow_done;
    int stream_writes_done;    /* chunks the /stream writer has sent */
    ck_http_stream *many[2100]; /* streams /many left open */
    int nmany;
} T = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void t_signal(void)
{
    pthread_cond_broadcast(&T.cond);
}

/* Lets every request held in /block go on. */
static void t_release_blocked(void)
{
    pthread_mutex_lock(&T.mu);
    T.block_released = true;
    t_signal();
    pthread_mutex_unlock(&T.mu);
}

/* Wait (up to ms) until *flag reaches at least want; returns the value seen. */
static int t_wait_int(int *flag, int want, int ms)
{
    int64_t deadline = ck_now_ns() + (int64_t)ms * 1000000;
    pthread_mutex_lock(&T.mu);
    while (*flag < want && ck_now_ns() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&T.cond, &T.mu, &ts);
    }
    int v = *flag;
    pthread_mutex_unlock(&T.mu);
    return v;
}

static void on_close_count(void *ctx)
{
    pthread_mutex_lock(&T.mu);
    T.closes++;
    t_signal();
    pthread_mutex_unlock(&T.mu);
}

static void *stream_writer(void *arg)
{
    ck_http_stream *s = arg;
    for (int i = 0; i < 5; i++) {
        char line[32];
        int n = snprintf(line, sizeof line, "event-%d\n", i);
        ck_http_stream_write(s, line, (size_t)n);
        pthread_mutex_lock(&T.mu);
        T.stream_writes_done = i + 1;
        t_signal();
        pthread_mutex_unlock(&T.mu);
        usleep(100 * 1000);
    }
    ck_http_stream_end(s);
    ck_http_stream_release(s);
    return NULL;
}

static void *slow_writer(void *arg)
{
    ck_http_stream *s = arg;
    static char block[64 * 1024];
    memset(block, 'x', sizeof block);
    int rc = 0;
    int64_t deadline = ck_now_ns() + 20LL * 1000000000;
    while (rc == 0 && ck_now_ns() < deadline) {
        rc = ck_http_stream_write(s, block, sizeof block);
        if (ck_http_stream_pending(s) > 512 * 1024)
            usleep(1000);
    }
    pthread_mutex_lock(&T.mu);
    T.slow_result = rc;
    T.slow_done = 1;
    t_signal();
    pthread_mutex_unlock(&T.mu);
    ck_http_stream_release(s);
    return NULL;
}

struct tunnel {
    pthread_mutex_t mu;
    ck_http_stream *s;
};

static void tunnel_data(void *ctx, const char *data, size_t len)
{
    struct tunnel *t = ctx;
    pthread_mutex_lock(&t->mu);   /* the handler sets t->s under this lock */
    if (len >= 4 && !memcmp(data, "quit", 4))
        ck_http_stream_end(t->s);
    else
        ck_http_stream_write(t->s, data, len);
    pthread_mutex_unlock(&t->mu);
}

static void tunnel_close(void *ctx)
{
    struct tunnel *t = ctx;
    on_close_count(NULL);
    ck_http_stream_release(t->s);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static void *deferred_answer(void *arg)
{
    usleep(50 * 1000);
    ck_http_respond(arg, 202, "text/plain", NULL, "later", 5);
    return NULL;
}

/* Waits for block_released (set after the server stopped), then starts a stream. */
static void *late_stream(void *arg)
{
    pthread_mutex_lock(&T.mu);
    while (!T.block_released)
        pthread_cond_wait(&T.cond, &T.mu);
    pthread_mutex_unlock(&T.mu);
    ck_http_stream *s = ck_http_stream_start(arg, 200, "text/plain", NULL, on_close_count, NULL);
    int rc = ck_http_stream_write(s, "x", 1);
    pthread_mutex_lock(&T.mu);
    T.slow_result = rc;
    T.slow_done = 1;
    pthread_mutex_unlock(&T.mu);
    ck_http_stream_release(s);
    return NULL;
}

static void detach(void *(*fn)(void *), void *arg)
{
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fn, arg), 0);
    pthread_detach(th);
}

static void raw_send(int fd, const char *s, size_t n);

/* The owner of a taken connection (ck_http_upgrade_take): blocking I/O on its own thread.  It
 * sends the 101 httpd left to it, then "early:" + the client's bytes after the request, then
 * echoes until "quit" and closes the socket itself. */
static void *taker(void *arg)
{
    ck_http_taken *t = arg;
    fcntl(t->fd, F_SETFL, fcntl(t->fd, F_GETFL) & ~O_NONBLOCK);
    for (size_t off = 0; off < t->unsent_len;) {
        ssize_t n = write(t->fd, t->unsent + off, t->unsent_len - off);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    cleanup_free char *early = xasprintf("early:%.*s", (int)t->input_len, t->input);
    if (t->ssl)
        SSL_write(t->ssl, early, (int)strlen(early));
    else
        raw_send(t->fd, early, strlen(early));
    char buf[4096];
    for (;;) {
        int n = t->ssl ? SSL_read(t->ssl, buf, sizeof buf) : (int)read(t->fd, buf, sizeof buf);
        if (n <= 0 || (n >= 4 && !memcmp(buf, "quit", 4)))
            break;
        if (t->ssl)
            SSL_write(t->ssl, buf, n);
        else
            raw_send(t->fd, buf, (size_t)n);
    }
    ck_http_taken_free(t);
    free(t);
    pthread_mutex_lock(&T.mu);
    T.closes++;
    t_signal();
    pthread_mutex_unlock(&T.mu);
    return NULL;
}

static void handler(void *ctx, ck_http_req *req, ck_http_resp *resp)
{
    const char *p = req->path;
    if (!strcmp(p, "/echo")) {
        cleanup_free char *body = xasprintf("%s %s q=%s remote=%s", req->method, req->path,
                                            req->query, req->remote_addr);
        ck_http_respond(resp, 200, "text/plain", "X-Extra: yes\r\n", body, strlen(body));
    } else if (!strcmp(p, "/body")) {
        ck_http_respond(resp, 200, "application/octet-stream", NULL, req->body, req->body_len);
    } else if (!strcmp(p, "/whoami")) {
        ck_buf b;
        ck_buf_init(&b, 4096);
        ck_buf_printf(&b, "cn=%s orgs=", req->client_cn ? req->client_cn : "(none)");
        for (size_t i = 0; i < req->nclient_orgs; i++)
            ck_buf_printf(&b, "%s%s", i ? "," : "", req->client_orgs[i]);
        ck_http_respond(resp, 200, "text/plain", NULL, b.data, b.len);
        ck_buf_free(&b);
    } else if (!strcmp(p, "/query")) {
        cleanup_free char *a = ck_http_query_param(req->query, "a");
        const char *h = ck_http_req_header(req, "x-test");
        cleanup_free char *body = xasprintf("a=%s h=%s", a ? a : "(none)", h ? h : "(none)");
        ck_http_respond(resp, 200, "text/plain", NULL, body, strlen(body));
    } else if (!strcmp(p, "/block")) {
        pthread_mutex_lock(&T.mu);
        T.blocked++;
        t_signal();
        while (!T.block_released)
            pthread_cond_wait(&T.cond, &T.mu);
        pthread_mutex_unlock(&T.mu);
        ck_http_respond(resp, 200, "text/plain", NULL, "unblocked", 9);
    } else if (!strcmp(p, "/stream")) {
        ck_http_stream *s = ck_http_stream_start(resp, 200, "text/plain", NULL, on_close_count, NULL);
        detach(stream_writer, s);
    } else if (!strcmp(p, "/watch")) {
        ck_http_stream *s = ck_http_stream_start(resp, 200, "application/json", NULL,
                                                 on_close_count, NULL);
        pthread_mutex_lock(&T.mu);
        T.watch = s;
        t_signal();
        pthread_mutex_unlock(&T.mu);
        ck_http_stream_write(s, "{\"type\":\"ADDED\"}\n", 17);
    } else if (!strcmp(p, "/many")) {
        ck_http_stream *s = ck_http_stream_start(resp, 200, "application/json", NULL,
                                                 on_close_count, NULL);
        pthread_mutex_lock(&T.mu);
        if (T.nmany < (int)ARRAY_SIZE(T.many))
            T.many[T.nmany++] = s;
        else
            ck_http_stream_release(s);
        t_signal();
        pthread_mutex_unlock(&T.mu);
    } else if (!strcmp(p, "/late")) {
        pthread_mutex_lock(&T.mu);
        T.blocked++;
        t_signal();
        pthread_mutex_unlock(&T.mu);
        detach(late_stream, resp);
    } else if (!strcmp(p, "/big")) {
        /* n bytes of a pattern whose every position can be checked: byte i is 'a' + i % 23 */
        cleanup_free char *nq = ck_http_query_param(req->query, "n");
        size_t n = nq ? strtoul(nq, NULL, 10) : 0;
        cleanup_free char *body = xmalloc(n + 1);
        for (size_t i = 0; i < n; i++)
            body[i] = (char)('a' + i % 23);
        ck_http_respond(resp, 200, "application/octet-stream", NULL, body, n);
    } else if (!strcmp(p, "/defer")) {
        detach(deferred_answer, resp);      /* answered from another thread, after we return */
    } else if (!strcmp(p, "/slow")) {
        ck_http_stream *s = ck_http_stream_start(resp, 200, "text/plain", NULL, on_close_count, NULL);
        detach(slow_writer, s);
    } else if (!strcmp(p, "/take")) {
        ck_http_taken *t = xcalloc(1, sizeof *t);
        ck_error *e = NULL;
        if (ck_http_upgrade_take(resp, "Connection: Upgrade\r\nUpgrade: test-tunnel\r\n", t,
                                 &e) < 0) {
            ck_error_free(e);
            free(t);
            return;
        }
        detach(taker, t);
    } else if (!strcmp(p, "/upgrade")) {
        struct tunnel *t = xcalloc(1, sizeof *t);
        pthread_mutex_init(&t->mu, NULL);
        pthread_mutex_lock(&t->mu);
        t->s = ck_http_upgrade(resp, "Connection: Upgrade\r\nUpgrade: test-tunnel\r\n", tunnel_data,
                               tunnel_close, t);
        pthread_mutex_unlock(&t->mu);
    } else {
        ck_http_respond(resp, 404, "text/plain", NULL, "not found", 9);
    }
}

/* ---- fixtures and clients --------------------------------------------------------------- */

static ck_httpd *start_server(ck_httpd_config cfg)
{
    cfg.bind_addr = "127.0.0.1";
    cfg.handler = handler;
    if (!cfg.workers)
        cfg.workers = 4;
    ck_error *err = NULL;
    ck_httpd *h = ck_httpd_start(&cfg, &err);
    if (!h)
        fail_msg("ck_httpd_start: %s", err->msg);
    pthread_mutex_lock(&T.mu);
    T.block_released = false;
    T.blocked = T.closes = T.stream_writes_done = 0;
    T.watch = NULL;
    T.nmany = 0;
    T.slow_done = 0;
    T.slow_result = 0;
    pthread_mutex_unlock(&T.mu);
    return h;
}

static ck_httpd *start_plain(void)
{
    return start_server((ck_httpd_config){0});
}

static size_t curl_sink(char *p, size_t sz, size_t n, void *arg)
{
    ck_buf_add(arg, p, sz * n);
    return sz * n;
}

/* GET/POST with an optional reused handle; returns the status, body in *out (caller frees). */
static long curl_do(CURL *c, const char *url, const char *post, size_t post_len, ck_buf *out)
{
    ck_buf_init(out, 16 * 1024 * 1024);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (post) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)post_len);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        return -(long)rc;
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

static char *url(ck_httpd *h, const char *path)
{
    return xasprintf("http://127.0.0.1:%d%s", ck_httpd_port(h), path);
}

/* A TCP connection to 127.0.0.1:port; rcvbuf > 0 shrinks its receive buffer first (a client
 * whose socket fills quickly). */
static int raw_connect_rcvbuf(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (rcvbuf > 0)
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static int raw_connect(int port)
{
    return raw_connect_rcvbuf(port, 0);
}

static void raw_send(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        assert_true(w > 0);
        s += w;
        n -= (size_t)w;
    }
}

/* Read until `until` appears (NULL: until EOF) or timeout.  Returns true if the peer closed. */
static bool raw_read(int fd, ck_buf *out, const char *until, int timeout_ms)
{
    int64_t deadline = ck_now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        if (until && out->data && strstr(out->data, until))
            return false;
        int left = (int)((deadline - ck_now_ns()) / 1000000);
        if (left <= 0)
            return false;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, left) <= 0)
            return false;
        char buf[65536];
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r <= 0)
            return true;
        ck_buf_add(out, buf, (size_t)r);
    }
}

/* Read TLS application data until `until` appears; true if the peer closed. */
static bool tls_read(SSL *ssl, ck_buf *out, const char *until)
{
    for (;;) {
        if (until && out->data && strstr(out->data, until))
            return false;
        char buf[16384];
        int r = SSL_read(ssl, buf, sizeof buf);
        if (r <= 0)
            return SSL_get_error(ssl, r) == SSL_ERROR_ZERO_RETURN ||
                   SSL_get_error(ssl, r) == SSL_ERROR_SYSCALL ||
                   SSL_get_error(ssl, r) == SSL_ERROR_SSL;
        ck_buf_add(out, buf, (size_t)r);
    }
}

/* Writes all of s as application data. */
static void tls_send(SSL *ssl, const char *s, size_t n)
{
    assert_int_equal(SSL_write(ssl, s, (int)n), (int)n);
}

/* A client connection: plain (ssl NULL) or TLS over fd, so one test body serves both. */
typedef struct tconn {
    int fd;
    SSL *ssl;
} tconn;

static void conn_send(tconn *c, const char *s, size_t n)
{
    if (c->ssl)
        tls_send(c->ssl, s, n);
    else
        raw_send(c->fd, s, n);
}

/* Reads until `until` appears (NULL: until the peer closes); true if the peer closed.  Plain
 * reads give up after 3 s, TLS ones after the socket's SO_RCVTIMEO. */
static bool conn_read(tconn *c, ck_buf *out, const char *until)
{
    return c->ssl ? tls_read(c->ssl, out, until) : raw_read(c->fd, out, until, 3000);
}

/* One read: >0 bytes added to out, 0 at EOF or an error, -1 when ms pass with nothing (plain;
 * a TLS read waits for the socket's SO_RCVTIMEO). */
static int conn_read_some(tconn *c, ck_buf *out, int ms)
{
    char buf[65536];
    int r;
    if (c->ssl) {
        r = SSL_read(c->ssl, buf, sizeof buf);
    } else {
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (poll(&pfd, 1, ms) <= 0)
            return -1;
        r = (int)recv(c->fd, buf, sizeof buf, 0);
    }
    if (r <= 0)
        return 0;
    ck_buf_add(out, buf, (size_t)r);
    return r;
}

/* Reads an answer into out until its body has n bytes (or timeout_s passes): the body's start,
 * or NULL when the head never came. */
static const char *conn_read_body(tconn *c, ck_buf *out, size_t n, int timeout_s)
{
    const char *got = NULL;
    int64_t deadline = ck_now_ns() + (int64_t)timeout_s * 1000000000;
    while (ck_now_ns() < deadline) {
        int r = conn_read_some(c, out, 50);
        if (r == 0)
            break;
        got = out->data ? strstr(out->data, "\r\n\r\n") : NULL;
        if (got && out->len - (size_t)(got + 4 - out->data) >= n)
            break;
    }
    return got ? got + 4 : NULL;
}

static void conn_close(tconn *c)
{
    SSL_free(c->ssl);
    close(c->fd);
}

/* Asks for the test-tunnel upgrade of path with `early` bytes right behind the request and
 * reads until `until`: the 101 comes first. */
static void tunnel_open(tconn *c, ck_buf *r, const char *path, const char *early, const char *until)
{
    cleanup_free char *req = xasprintf("GET %s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                                       "Upgrade: test-tunnel\r\n\r\n%s", path, early);
    conn_send(c, req, strlen(req));
    ck_buf_reset(r);
    conn_read(c, r, until);
    assert_true(!strncmp(r->data, "HTTP/1.1 101 Switching Protocols\r\n", 34));
}

/* msg through the tunnel and back, as it was sent (raw: no chunk framing). */
static void tunnel_echo(tconn *c, ck_buf *r, const char *msg)
{
    ck_buf_reset(r);
    conn_send(c, msg, strlen(msg));
    conn_read(c, r, msg);
    assert_string_equal(r->data, msg);
}

/* "quit": the tunnel's owner closes the connection. */
static void tunnel_quit(tconn *c, ck_buf *r)
{
    conn_send(c, "quit", 4);
    assert_true(conn_read(c, r, NULL));
}

static int count_substr(const char *s, const char *sub)
{
    int n = 0;
    for (const char *p = s; p && (p = strstr(p, sub)); p += strlen(sub))
        n++;
    return n;
}

/* Is b (len n) the /big pattern? */
static bool big_ok(const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != (char)('a' + i % 23))
            return false;
    return true;
}

/* Asks for n bytes of the /big pattern. */
static void send_big_get(tconn *c, size_t n)
{
    cleanup_free char *req = xasprintf("GET /big?n=%zu HTTP/1.1\r\nHost: x\r\n\r\n", n);
    conn_send(c, req, strlen(req));
}

/* body (from conn_read_body) is the answer's whole body in r: n bytes of the /big pattern. */
static void assert_big_body(const ck_buf *r, const char *body, size_t n)
{
    assert_non_null(body);
    assert_int_equal(r->len - (size_t)(body - r->data), n);
    assert_true(big_ok(body, n));
}

/* A fresh connection still gets a 200 for /echo. */
static void assert_echo_200(ck_httpd *h)
{
    CURL *c = curl_easy_init();
    cleanup_free char *u = url(h, "/echo");
    ck_buf b;
    assert_int_equal(curl_do(c, u, NULL, 0, &b), 200);
    ck_buf_free(&b);
    curl_easy_cleanup(c);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_query_helpers(void **state)
{
    static const struct {
        const char *query, *name, *want;
    } cases[] = {
        {"a=1&b=2", "b", "2"},
        {"a=1&b=2", "c", NULL},
        {"labelSelector=app%3Dweb%2Ctier+in+(x)", "labelSelector", "app=web,tier in (x)"},
        {"watch", "watch", ""},
        {"a=1&a=2", "a", "1"},
        {"x%41=y", "xA", "y"},
        {"a=%zz%4", "a", "%zz%4"},
        {"", "a", NULL},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        cleanup_free char *v = ck_http_query_param(cases[i].query, cases[i].name);
        if (!cases[i].want)
            assert_null(v);
        else
            assert_string_equal(v, cases[i].want);
    }
    /* booleans as upstream's query conversion: anything but 0 / false (any case) is true */
    static const struct {
        const char *query;
        bool want;
    } bools[] = {
        {"watch=true", true}, {"watch=True", true}, {"watch=1", true}, {"watch", true},
        {"watch=", true},     {"watch=yes", true},  {"watch=false", false}, {"watch=FALSE", false},
        {"watch=0", false},   {"a=1", false},       {NULL, false},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bools); i++)
        assert_int_equal(ck_http_query_bool(bools[i].query, "watch"), bools[i].want);
    ck_http_header hs[] = {{"Content-Type", "a/b"}, {"X-Test", "1"}};
    ck_http_req req = {.headers = hs, .nheaders = 2};
    assert_string_equal(ck_http_req_header(&req, "content-type"), "a/b");
    assert_null(ck_http_req_header(&req, "accept"));
    assert_true(ck_http__has_token("Upgrade, close", "close"));
    assert_false(ck_http__has_token("closed", "close"));
    assert_null(ck_http__pct_decode("/a%00b", 6, false, true));
    cleanup_free char *d = ck_http__pct_decode("/a%2Fb", 6, false, true);
    assert_string_equal(d, "/a/b");
}

static void test_keepalive_reuse(void **state)
{
    ck_httpd *h = start_plain();
    CURL *c = curl_easy_init();
    cleanup_free char *u = url(h, "/echo?x=1");
    ck_buf b1, b2;
    assert_int_equal(curl_do(c, u, NULL, 0, &b1), 200);
    assert_non_null(strstr(b1.data, "GET /echo q=x=1 remote=127.0.0.1:"));
    assert_int_equal(curl_do(c, u, NULL, 0, &b2), 200);
    long conns = -1;
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns);
    assert_int_equal(conns, 0);                       /* the second request reused the conn */
    assert_string_equal(b1.data, b2.data);            /* same remote port: same connection */
    curl_easy_cleanup(c);
    ck_buf_free(&b1);
    ck_buf_free(&b2);

    /* Raw: headers we promise, HEAD without a body, HTTP/1.0 closes. */
    int fd = raw_connect(ck_httpd_port(h));
    const char *head = "HEAD /echo HTTP/1.1\r\nHost: x\r\n\r\n";
    raw_send(fd, head, strlen(head));
    ck_buf r;
    ck_buf_init(&r, 1 << 20);
    raw_read(fd, &r, "\r\n\r\n", 3000);
    assert_non_null(strstr(r.data, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r.data, "\r\nDate: "));
    assert_non_null(strstr(r.data, "\r\nContent-Type: text/plain\r\n"));
    assert_non_null(strstr(r.data, "\r\nX-Extra: yes\r\n"));
    assert_non_null(strstr(r.data, "\r\nContent-Length: "));
    const char *get = "GET /echo HTTP/1.0\r\n\r\n";
    raw_send(fd, get, strlen(get));
    assert_true(raw_read(fd, &r, NULL, 3000));        /* 1.0 without keep-alive: closed */
    assert_int_equal(count_substr(r.data, "HTTP/1.1 200 OK"), 2);
    assert_int_equal(count_substr(r.data, "GET /echo"), 1);   /* HEAD had no body */
    ck_buf_free(&r);
    close(fd);

    /* A stream to an HTTP/1.0 client: raw bytes, then close (no chunked coding in 1.0). */
    fd = raw_connect(ck_httpd_port(h));
    const char *get10 = "GET /stream HTTP/1.0\r\n\r\n";
    raw_send(fd, get10, strlen(get10));
    ck_buf_init(&r, 1 << 20);
    assert_true(raw_read(fd, &r, NULL, 5000));
    assert_null(strstr(r.data, "Transfer-Encoding"));
    assert_non_null(strstr(r.data, "\r\n\r\nevent-0\nevent-1\nevent-2\nevent-3\nevent-4\n"));
    assert_int_equal(t_wait_int(&T.closes, 1, 3000), 1);
    ck_buf_free(&r);
    close(fd);
    ck_httpd_stop(h);
}

static void test_ipv6_and_bind_errors(void **state)
{
    ck_error *err = NULL;
    ck_httpd_config cfg = {.bind_addr = "::1", .handler = handler, .workers = 2};
    ck_httpd *h = ck_httpd_start(&cfg, &err);
    if (!h)
        fail_msg("::1: %s", err->msg);
    CURL *c = curl_easy_init();
    cleanup_free char *u = xasprintf("http://[::1]:%d/echo", ck_httpd_port(h));
    ck_buf b;
    assert_int_equal(curl_do(c, u, NULL, 0, &b), 200);
    assert_non_null(strstr(b.data, "remote=[::1]:"));
    ck_buf_free(&b);
    curl_easy_cleanup(c);

    /* The same port again, a bad address, a bad port: errors, not crashes. */
    ck_httpd_config dup = {.bind_addr = "::1", .port = ck_httpd_port(h), .handler = handler};
    assert_null(ck_httpd_start(&dup, &err));
    assert_non_null(strstr(err->msg, "listen"));
    ck_error_free(err);
    err = NULL;
    ck_httpd_stop(h);
    ck_httpd_config bad = {.bind_addr = "not-an-ip", .handler = handler};
    assert_null(ck_httpd_start(&bad, &err));
    ck_error_free(err);
    err = NULL;
    bad.bind_addr = "127.0.0.1";
    bad.port = 70000;
    assert_null(ck_httpd_start(&bad, &err));
    ck_error_free(err);
}

static void test_pipelining(void **state)
{
    ck_httpd *h = start_plain();
    int fd = raw_connect(ck_httpd_port(h));
    const char *reqs = "GET /echo?n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                       "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nn=two"
                       "GET /block HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /echo?n=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    raw_send(fd, reqs, strlen(reqs));
    /* /block holds the third request: the fourth must wait behind it. */
    assert_int_equal(t_wait_int(&T.blocked, 1, 3000), 1);
    usleep(100 * 1000);
    ck_buf r;
    ck_buf_init(&r, 1 << 20);
    raw_read(fd, &r, "n=two", 3000);
    assert_null(strstr(r.data, "n=3"));
    t_release_blocked();
    assert_true(raw_read(fd, &r, NULL, 3000));
    const char *p1 = strstr(r.data, "q=n=1"), *p2 = strstr(r.data, "n=two"),
               *p3 = strstr(r.data, "unblocked"), *p4 = strstr(r.data, "q=n=3");
    assert_true(p1 && p2 && p3 && p4);
    assert_true(p1 < p2 && p2 < p3 && p3 < p4);
    assert_int_equal(count_substr(r.data, "HTTP/1.1 200 OK"), 4);
    ck_buf_free(&r);
    close(fd);
    ck_httpd_stop(h);
}

struct chunk_src {
    const char *data;
    size_t len, off;
};

static size_t chunk_read(char *buf, size_t sz, size_t n, void *arg)
{
    struct chunk_src *s = arg;
    size_t take = s->len - s->off;
    if (take > 1000)
        take = 1000;        /* many small chunks */
    if (take > sz * n)
        take = sz * n;
    memcpy(buf, s->data + s->off, take);
    s->off += take;
    return take;
}

static void test_post_bodies(void **state)
{
    ck_httpd *h = start_plain();
    cleanup_free char *u = url(h, "/body");
    size_t n = 300 * 1024;
    cleanup_free char *data = xmalloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (char)('a' + i % 26);

    CURL *c = curl_easy_init();
    ck_buf b;
    assert_int_equal(curl_do(c, u, data, n, &b), 200);      /* Content-Length */
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, data, n);
    ck_buf_free(&b);
    curl_easy_cleanup(c);

    /* Chunked, with Expect: 100-continue. */
    c = curl_easy_init();
    struct chunk_src src = {data, n, 0};
    struct curl_slist *hdrs = curl_slist_append(NULL, "Transfer-Encoding: chunked");
    hdrs = curl_slist_append(hdrs, "Expect: 100-continue");
    ck_buf_init(&b, 1 << 24);
    curl_easy_setopt(c, CURLOPT_URL, u);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, chunk_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &src);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_EXPECT_100_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    int64_t t0 = ck_now_ns();
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    long code;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    assert_int_equal(code, 200);
    assert_true(ck_now_ns() - t0 < 20000000000LL);           /* 100 Continue came, no 30 s wait */
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, data, n);
    ck_buf_free(&b);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);

    /* Raw chunked with an extension and a trailer, then a keep-alive follow-up. */
    int fd = raw_connect(ck_httpd_port(h));
    const char *req = "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
                      "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    raw_send(fd, req, strlen(req));
    ck_buf r;
    ck_buf_init(&r, 1 << 20);
    assert_true(raw_read(fd, &r, NULL, 3000));
    assert_non_null(strstr(r.data, "Content-Length: 11\r\n"));
    assert_non_null(strstr(r.data, "\r\n\r\nhello world"));
    assert_non_null(strstr(r.data, "GET /echo"));
    ck_buf_free(&r);
    close(fd);
    ck_httpd_stop(h);
}

/* Joins n client threads, each of which must have got a 200. */
static void join_all_200(pthread_t *th, int n)
{
    for (int i = 0; i < n; i++) {
        void *rc;
        pthread_join(th[i], &rc);
        assert_int_equal((intptr_t)rc, 200);
    }
}

static void *block_client(void *arg)
{
    ck_buf b;
    CURL *c = curl_easy_init();
    long code = curl_do(c, arg, NULL, 0, &b);
    curl_easy_cleanup(c);
    ck_buf_free(&b);
    return (void *)(intptr_t)code;
}

static void test_blocking_handler(void **state)
{
    ck_httpd *h = start_plain();
    cleanup_free char *ub = url(h, "/block");
    cleanup_free char *ue = url(h, "/echo");
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, block_client, ub), 0);
    assert_int_equal(t_wait_int(&T.blocked, 2, 3000), 2);
    /* Two workers are stuck; other connections are still answered. */
    for (int i = 0; i < 3; i++) {
        CURL *c = curl_easy_init();
        ck_buf b;
        int64_t t0 = ck_now_ns();
        assert_int_equal(curl_do(c, ue, NULL, 0, &b), 200);
        assert_true(ck_now_ns() - t0 < 8000000000LL);   /* not stuck behind the blocked ones */
        ck_buf_free(&b);
        curl_easy_cleanup(c);
    }
    t_release_blocked();
    join_all_200(th, 2);
    ck_httpd_stop(h);
}

/* Every worker (and more) held by a slow handler: the pool grows and other requests are still
 * answered; once released, all the held ones complete. */
static void test_all_workers_held(void **state)
{
    ck_httpd *h = start_server((ck_httpd_config){.workers = 2, .max_workers = 6});
    assert_int_equal(ck_httpd_workers(h), 2);
    cleanup_free char *ub = url(h, "/block");
    cleanup_free char *ue = url(h, "/echo");
    enum { NBLOCK = 4 };
    pthread_t th[NBLOCK];
    for (int i = 0; i < NBLOCK; i++)
        assert_int_equal(pthread_create(&th[i], NULL, block_client, ub), 0);
    /* two run on the core workers; the other two wait until the pool grows for them */
    assert_int_equal(t_wait_int(&T.blocked, NBLOCK, 5000), NBLOCK);
    int64_t t0 = ck_now_ns();
    CURL *c = curl_easy_init();
    ck_buf b;
    assert_int_equal(curl_do(c, ue, NULL, 0, &b), 200);
    assert_true(ck_now_ns() - t0 < 3000000000LL);
    ck_buf_free(&b);
    curl_easy_cleanup(c);
    int n = ck_httpd_workers(h);
    assert_true(n >= NBLOCK + 1 && n <= 6);
    t_release_blocked();
    join_all_200(th, NBLOCK);
    ck_httpd_stop(h);
}

/* At the cap, held workers delay the rest but the pool does not grow past max_workers. */
static void test_worker_cap(void **state)
{
    ck_httpd *h = start_server((ck_httpd_config){.workers = 1, .max_workers = 2});
    cleanup_free char *ub = url(h, "/block");
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, block_client, ub), 0);
    assert_int_equal(t_wait_int(&T.blocked, 2, 5000), 2);
    usleep(400 * 1000);                         /* several stall periods */
    assert_int_equal(ck_httpd_workers(h), 2);
    pthread_mutex_lock(&T.mu);
    assert_int_equal(T.blocked, 2);
    pthread_mutex_unlock(&T.mu);
    t_release_blocked();
    join_all_200(th, 3);
    ck_httpd_stop(h);
}

struct burst {
    const char *url;
    int ok;
};

static void *burst_client(void *arg)
{
    struct burst *bu = arg;
    CURL *c = curl_easy_init();
    for (int i = 0; i < 200; i++) {
        ck_buf b;
        if (curl_do(c, bu->url, NULL, 0, &b) == 200 && b.len > 0)
            bu->ok++;
        ck_buf_free(&b);
    }
    curl_easy_cleanup(c);
    return NULL;
}

/* Many clients at once over few workers: the one-waker hand-off loses no request. */
static void test_worker_handoff_burst(void **state)
{
    ck_httpd *h = start_server((ck_httpd_config){.workers = 3});
    cleanup_free char *ue = url(h, "/echo?a=1");
    enum { NCLI = 8 };
    pthread_t th[NCLI];
    struct burst bu[NCLI];
    for (int i = 0; i < NCLI; i++) {
        bu[i] = (struct burst){.url = ue};
        assert_int_equal(pthread_create(&th[i], NULL, burst_client, &bu[i]), 0);
    }
    for (int i = 0; i < NCLI; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(bu[i].ok, 200);
    }
    assert_true(ck_httpd_workers(h) >= 3);
    ck_httpd_stop(h);
}

struct arrivals {
    ck_buf body;
    int calls;
    int writes_seen_at_first;
};

static size_t arrival_sink(char *p, size_t sz, size_t n, void *arg)
{
    struct arrivals *a = arg;
    if (a->calls++ == 0) {
        pthread_mutex_lock(&T.mu);
        a->writes_seen_at_first = T.stream_writes_done;
        pthread_mutex_unlock(&T.mu);
    }
    ck_buf_add(&a->body, p, sz * n);
    return sz * n;
}

static void test_stream_incremental(void **state)
{
    ck_httpd *h = start_plain();
    cleanup_free char *u = url(h, "/stream");
    CURL *c = curl_easy_init();
    struct arrivals a = {0};
    ck_buf_init(&a.body, 1 << 20);
    curl_easy_setopt(c, CURLOPT_URL, u);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, arrival_sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    assert_string_equal(a.body.data, "event-0\nevent-1\nevent-2\nevent-3\nevent-4\n");
    assert_true(a.calls >= 3);                    /* arrived in pieces... */
    assert_true(a.writes_seen_at_first < 5);      /* ...the first before the writer finished */
    assert_int_equal(t_wait_int(&T.closes, 1, 3000), 1);   /* ended: on_close once */
    /* The connection is reusable after the last chunk. */
    ck_buf b;
    cleanup_free char *ue = url(h, "/echo");
    assert_int_equal(curl_do(c, ue, NULL, 0, &b), 200);
    long conns = -1;
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns);
    assert_int_equal(conns, 0);
    ck_buf_free(&b);
    ck_buf_free(&a.body);
    curl_easy_cleanup(c);
    usleep(50 * 1000);
    assert_int_equal(T.closes, 1);
    ck_httpd_stop(h);
}

static void test_stream_client_disconnect(void **state)
{
    ck_httpd *h = start_plain();
    int fd = raw_connect(ck_httpd_port(h));
    const char *req = "GET /watch HTTP/1.1\r\nHost: x\r\n\r\n";
    raw_send(fd, req, strlen(req));
    ck_buf r;
    ck_buf_init(&r, 1 << 20);
    raw_read(fd, &r, "ADDED", 3000);
    assert_non_null(strstr(r.data, "Transfer-Encoding: chunked\r\n"));
    assert_non_null(strstr(r.data, "\r\n11\r\n{\"type\":\"ADDED\"}\n\r\n"));
    ck_buf_free(&r);
    pthread_mutex_lock(&T.mu);
    ck_http_stream *s = T.watch;
    pthread_mutex_unlock(&T.mu);
    assert_non_null(s);
    assert_int_equal(ck_http_stream_write(s, "more\n", 5), 0);
    close(fd);
    assert_int_equal(t_wait_int(&T.closes, 1, 3000), 1);
    assert_int_equal(ck_http_stream_write(s, "late\n", 5), -1);
    ck_http_stream_end(s);                        /* harmless after close */
    usleep(50 * 1000);
    assert_int_equal(T.closes, 1);                /* exactly once */
    ck_http_stream_release(s);
    ck_httpd_stop(h);
}

static void test_slow_stream_closed(void **state)
{
    ck_httpd *h = start_server((ck_httpd_config){.stream_buffer_limit = 1024 * 1024});
    int fd = raw_connect_rcvbuf(ck_httpd_port(h), 16 * 1024);
    const char *req = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n";
    raw_send(fd, req, strlen(req));
    /* Never read: the writer must be cut off at the limit instead of buffering forever. */
    assert_int_equal(t_wait_int(&T.closes, 1, 15000), 1);
    assert_int_equal(t_wait_int(&T.slow_done, 1, 3000), 1);
    assert_int_equal(T.slow_result, -1);
    close(fd);
    ck_httpd_stop(h);
}

static void test_upgrade_tunnel(void **state)
{
    ck_httpd *h = start_plain();
    tconn c = {.fd = raw_connect(ck_httpd_port(h))};
    ck_buf r;
    ck_buf_init(&r, 1 << 20);
    tunnel_open(&c, &r, "/upgrade", "early-bytes", "early-bytes");
    assert_non_null(strstr(r.data, "\r\nUpgrade: test-tunnel\r\n"));
    assert_non_null(strstr(r.data, "\r\n\r\nearly-bytes"));
    assert_null(strstr(r.data, "Transfer-Encoding"));
    tunnel_echo(&c, &r, "ping-1");
    tunnel_quit(&c, &r);                          /* the server ended the tunnel */
    assert_int_equal(t_wait_int(&T.closes, 1, 3000), 1);
    ck_buf_free(&r);
    conn_close(&c);
    ck_httpd_stop(h);
}

/* An upgrade that takes the socket out of httpd: the 101 and the bytes sent after the request
 * reach the new owner, which then talks to the client directly; the server stops cleanly with
 * the taken connection still open, and the connection lives on without it. */
static void test_upgrade_take(void **state)
{
    ck_httpd *h = start_plain();
    tconn c = {.fd = raw_connect(ck_httpd_port(h))};
    ck_buf r;
    ck_buf_init(&r, 1 << 20);
    tunnel_open(&c, &r, "/take", "after-request", "early:after-request");
    assert_non_null(strstr(r.data, "\r\nUpgrade: test-tunnel\r\n\r\nearly:after-request"));
    tunnel_echo(&c, &r, "ping-1");
    ck_httpd_stop(h);                              /* httpd forgot the connection */
    tunnel_echo(&c, &r, "ping-2");
    tunnel_quit(&c, &r);                           /* the owner closed it */
    assert_int_equal(t_wait_int(&T.closes, 1, 3000), 1);
    ck_buf_free(&r);
    conn_close(&c);
}

/* Malformed and oversized requests: each answered with a status and a closed connection. */
static void test_bad_requests(void **state)
{
    ck_httpd *h = start_plain();
    cleanup_free char *huge_hdr = NULL, *many_hdrs = NULL;
    {
        ck_buf b;
        ck_buf_init(&b, 1 << 20);
        ck_buf_addstr(&b, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
        for (int i = 0; i < 70 * 1024; i++)
            ck_buf_add(&b, "a", 1);
        ck_buf_addstr(&b, "\r\n\r\n");
        huge_hdr = ck_buf_steal(&b);
        ck_buf_init(&b, 1 << 20);
        ck_buf_addstr(&b, "GET / HTTP/1.1\r\nHost: x\r\n");
        for (int i = 0; i < 150; i++)
            ck_buf_printf(&b, "X-H%d: v\r\n", i);
        ck_buf_addstr(&b, "\r\n");
        many_hdrs = ck_buf_steal(&b);
    }
    const struct {
        const char *name, *input, *status;
    } cases[] = {
        {"garbage", "\x01\x02\x03 garbage\r\n\r\n", "HTTP/1.1 400 "},
        {"no version", "GET /\r\n\r\n", "HTTP/1.1 400 "},
        {"bad header", "GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", "HTTP/1.1 400 "},
        {"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", "HTTP/1.1 400 "},
        {"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", "HTTP/1.1 400 "},
        {"no host", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "},
        {"bad length", "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", "HTTP/1.1 400 "},
        {"cl+te", "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400 "},
        {"bad chunk", "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
         "HTTP/1.1 400 "},
        {"0x chunk size", "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "0x5\r\nhello\r\n0\r\n\r\n", "HTTP/1.1 400 "},
        {"17-digit chunk size", "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                "00000000000000005\r\nhello\r\n0\r\n\r\n", "HTTP/1.1 400 "},
        {"gzip te", "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "HTTP/1.1 501 "},
        {"http2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "HTTP/1.1 505 "},
        {"bad expect", "GET / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", "HTTP/1.1 417 "},
        {"bad escape", "GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
        {"nul in path", "GET /a%00 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
        {"ctl in value", "GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n", "HTTP/1.1 400 "},
        {"huge header", huge_hdr, "HTTP/1.1 431 "},
        {"many headers", many_hdrs, "HTTP/1.1 431 "},
        {"big length", "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 4194304\r\n\r\n",
         "HTTP/1.1 413 "},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        int fd = raw_connect(ck_httpd_port(h));
        raw_send(fd, cases[i].input, strlen(cases[i].input));
        ck_buf r;
        ck_buf_init(&r, 1 << 20);
        bool closed = raw_read(fd, &r, NULL, 3000);
        if (!r.data || strncmp(r.data, cases[i].status, strlen(cases[i].status)) || !closed)
            fail_msg("case %s: closed=%d got %.60s", cases[i].name, closed,
                     r.data ? r.data : "(nothing)");
        assert_non_null(strstr(r.data, "\"kind\":\"Status\""));
        ck_buf_free(&r);
        close(fd);
    }
    /* The server survived all of it. */
    assert_echo_200(h);
    ck_httpd_stop(h);
}

/* Mutated requests (flipped, inserted, dropped bytes; truncation): every answer is a well-formed
 * status line, nothing crashes (run under ASan), and the server still serves afterwards. */
static void test_mutated_requests(void **state)
{
    ck_httpd *h = start_server((ck_httpd_config){.header_timeout_ms = 500});
    static const char *seeds[] = {
        "GET /echo?a=1&b=%41 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n",
        "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world",
        "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: 1\r\n\r\n",
        "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /echo HTTP/1.1\r\nHost: y\r\n\r\n",
    };
    static const char alphabet[] = "\r\n :;%0aF\x00\x7f\xff\t-+/?";
    unsigned seed = 12345;
    int answered = 0;
    for (int i = 0; i < 400; i++) {
        const char *base = seeds[i % ARRAY_SIZE(seeds)];
        ck_buf m;
        ck_buf_init(&m, 4096);
        ck_buf_add(&m, base, strlen(base));
        int edits = 1 + (int)(rand_r(&seed) % 4);
        for (int e = 0; e < edits && m.len > 1; e++) {
            size_t at = (size_t)rand_r(&seed) % m.len;
            char ch = alphabet[(size_t)rand_r(&seed) % (sizeof alphabet - 1)];
            switch (rand_r(&seed) % 4) {
            case 0: m.data[at] = ch; break;                              /* flip */
            case 1: memmove(m.data + at, m.data + at + 1, m.len - at - 1); m.len--; break;
            case 2: m.len = at; break;                                   /* truncate */
            default:                                                     /* insert */
                ck_buf_add(&m, "x", 1);
                memmove(m.data + at + 1, m.data + at, m.len - at - 1);
                m.data[at] = ch;
            }
        }
        int fd = raw_connect(ck_httpd_port(h));
        raw_send(fd, m.data, m.len);
        shutdown(fd, SHUT_WR);                  /* then EOF: the server must not wait for more */
        ck_buf r;
        ck_buf_init(&r, 1 << 20);
        bool closed = raw_read(fd, &r, NULL, 3000);
        if (!closed)
            fail_msg("mutation %d left the connection open: %.*s", i, (int)m.len, m.data);
        if (r.len) {
            if (strncmp(r.data, "HTTP/1.1 ", 9))
                fail_msg("mutation %d: bad answer %.40s", i, r.data);
            answered++;
        }
        ck_buf_free(&r);
        ck_buf_free(&m);
        close(fd);
    }
    assert_true(answered > 100);
    assert_echo_200(h);
    ck_httpd_stop(h);
}

static void test_body_too_large(void **state)
{
    ck_httpd *h = start_plain();
    cleanup_free char *u = url(h, "/body");
    size_t n = 4 * 1024 * 1024;
    cleanup_free char *data = xcalloc(1, n);
    memset(data, 'z', n);
    CURL *c = curl_easy_init();
    ck_buf b;
    assert_int_equal(curl_do(c, u, data, n, &b), 413);
    assert_non_null(strstr(b.data, "\"reason\":\"RequestEntityTooLarge\""));
    assert_non_null(strstr(b.data, "\"code\":413"));
    ck_buf_free(&b);
    curl_easy_cleanup(c);

    /* Chunked past the limit: 413 too. */
    c = curl_easy_init();
    struct chunk_src src = {data, n, 0};
    struct curl_slist *hdrs = curl_slist_append(NULL, "Transfer-Encoding: chunked");
    ck_buf_init(&b, 1 << 20);
    curl_easy_setopt(c, CURLOPT_URL, u);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, chunk_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &src);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK && rc != CURLE_SEND_ERROR)
        fail_msg("chunked 413: curl %s", curl_easy_strerror(rc));
    assert_int_equal(code, 413);
    ck_buf_free(&b);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    ck_httpd_stop(h);
}

static void test_slow_loris(void **state)
{
    ck_httpd *h = start_server((ck_httpd_config){.header_timeout_ms = 300, .idle_timeout_ms = 400});
    int fd = raw_connect(ck_httpd_port(h));
    const char *start = "GET /echo HTTP/1.1\r\nHost: x\r\n";
    raw_send(fd, start, strlen(start));
    int64_t t0 = ck_now_ns();
    bool closed = false;
    for (int i = 0; i < 200 && !closed; i++) {      /* one header byte every 50 ms */
        if (send(fd, "X", 1, MSG_NOSIGNAL) != 1)
            break;
        ck_buf r;
        ck_buf_init(&r, 4096);
        closed = raw_read(fd, &r, "\n", 50);
        ck_buf_free(&r);
    }
    int64_t took_ms = (ck_now_ns() - t0) / 1000000;
    if (!closed) {                                  /* a send may have failed on the reset */
        ck_buf r;
        ck_buf_init(&r, 4096);
        closed = raw_read(fd, &r, NULL, 100);
        ck_buf_free(&r);
    }
    assert_true(closed);
    /* the lower bound is the point; the upper one only proves the deadline is enforced at all
     * (generous: the suite runs on loaded 2-core machines) */
    assert_true(took_ms >= 250 && took_ms < 8000);
    close(fd);

    /* Idle keep-alive connections are closed too, after a served request. */
    fd = raw_connect(ck_httpd_port(h));
    const char *req = "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n";
    raw_send(fd, req, strlen(req));
    ck_buf r;
    ck_buf_init(&r, 1 << 20);
    t0 = ck_now_ns();
    assert_true(raw_read(fd, &r, NULL, 10000));
    took_ms = (ck_now_ns() - t0) / 1000000;
    assert_non_null(strstr(r.data, "HTTP/1.1 200 OK"));
    assert_true(took_ms >= 300 && took_ms < 8000);
    ck_buf_free(&r);
    close(fd);
    ck_httpd_stop(h);
}

static void test_many_idle_connections(void **state)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rlim_t want = 8192;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
        want = rl.rlim_max;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    if (want < 4200)                              /* both ends live in this process */
        fail_msg("RLIMIT_NOFILE hard limit %lu is below the 4200 this test needs",
                 (unsigned long)rl.rlim_max);

    ck_httpd *h = start_plain();
    enum { N = 2000 };
    int *fds = xcalloc(N, sizeof(int));
    for (int i = 0; i < N; i++)
        fds[i] = raw_connect(ck_httpd_port(h));
    /* A partial request on some of them, so they are not all in the same state. */
    for (int i = 0; i < N; i += 10)
        raw_send(fds[i], "GET /echo HTTP/1.1\r\n", 20);

    CURL *c = curl_easy_init();
    cleanup_free char *u = url(h, "/echo");
    ck_buf b;
    int64_t t0 = ck_now_ns();
    assert_int_equal(curl_do(c, u, NULL, 0, &b), 200);
    assert_true(ck_now_ns() - t0 < 8000000000LL);   /* idle ones do not slow it down */
    ck_buf_free(&b);
    curl_easy_cleanup(c);

    /* The first and the last of the idle ones still answer. */
    int probe[] = {0, 1, N - 1};
    for (size_t i = 0; i < ARRAY_SIZE(probe); i++) {
        int fd = fds[probe[i]];
        const char *rest = probe[i] == 0 ? "Host: x\r\n\r\n" : "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n";
        raw_send(fd, rest, strlen(rest));
        ck_buf r;
        ck_buf_init(&r, 1 << 20);
        raw_read(fd, &r, "remote=", 3000);
        assert_non_null(strstr(r.data, "HTTP/1.1 200 OK"));
        ck_buf_free(&r);
    }
    for (int i = 0; i < N; i++)
        close(fds[i]);
    free(fds);
    ck_httpd_stop(h);
}

static void test_many_streams(void **state)
{
    ck_httpd *h = start_plain();
    enum { N = 1500 };
    int *fds = xcalloc(N, sizeof(int));
    const char *req = "GET /many HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < N; i++) {
        fds[i] = raw_connect(ck_httpd_port(h));
        raw_send(fds[i], req, strlen(req));
    }
    assert_int_equal(t_wait_int(&T.nmany, N, 10000), N);
    /* One thread fans an event out to every stream; each client gets it as one chunk. */
    for (int i = 0; i < N; i++)
        assert_int_equal(ck_http_stream_write(T.many[i], "{\"type\":\"MODIFIED\"}\n", 20), 0);
    for (int i = 0; i < N; i++) {
        ck_buf r;
        ck_buf_init(&r, 1 << 16);
        raw_read(fds[i], &r, "MODIFIED\"}\n\r\n", 5000);
        assert_non_null(strstr(r.data, "\r\n14\r\n{\"type\":\"MODIFIED\"}\n\r\n"));
        ck_buf_free(&r);
    }
    /* Half the clients leave: exactly their streams are closed. */
    for (int i = 0; i < N / 2; i++)
        close(fds[i]);
    assert_int_equal(t_wait_int(&T.closes, N / 2, 10000), N / 2);
    usleep(100 * 1000);
    assert_int_equal(T.closes, N / 2);
    int refused = 0;                  /* streams are in handler order, not socket order */
    for (int i = 0; i < N; i++)
        refused += ck_http_stream_write(T.many[i], "x", 1) == -1;
    assert_int_equal(refused, N / 2);
    /* Stopping the server closes the rest. */
    ck_httpd_stop(h);
    assert_int_equal(T.closes, N);
    for (int i = N / 2; i < N; i++)
        close(fds[i]);
    for (int i = 0; i < N; i++)
        ck_http_stream_release(T.many[i]);
    free(fds);
}

/* Held wakes (ck_httpd_wake_hold): writes to many streams made under a hold reach their clients
 * once the flush comes, holds nest, and the wake is not lost when the connection that first
 * needed it closes before the flush (a later one that needs a wake takes over). */
static void test_held_wakes(void **state)
{
    ck_httpd *h = start_plain();
    enum { N = 8 };
    int fds[N];
    const char *req = "GET /many HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < N; i++) {
        fds[i] = raw_connect(ck_httpd_port(h));
        raw_send(fds[i], req, strlen(req));
    }
    assert_int_equal(t_wait_int(&T.nmany, N, 10000), N);
    /* streams are in handler order, not socket order: which stream is whose */
    ck_http_stream *of[N];
    for (int i = 0; i < N; i++) {
        char tag[16];
        int n = snprintf(tag, sizeof tag, "<s%d>\n", i);
        assert_int_equal(ck_http_stream_write(T.many[i], tag, (size_t)n), 0);
    }
    for (int i = 0; i < N; i++) {
        ck_buf r;
        ck_buf_init(&r, 1 << 16);
        raw_read(fds[i], &r, ">\n", 3000);
        assert_non_null(r.data);
        const char *t = strstr(r.data, "<s");
        assert_non_null(t);
        of[i] = T.many[atoi(t + 2)];
        ck_buf_free(&r);
    }
    for (int round = 0; round < 50; round++) {
        char line[32];
        int n = snprintf(line, sizeof line, "{\"r\":%d}\n", round);
        ck_httpd_wake_hold();
        if (round % 2)
            ck_httpd_wake_hold();                     /* nested: the inner flush does nothing */
        for (int i = 0; i < N; i++)
            assert_int_equal(ck_http_stream_write(T.many[i], line, (size_t)n), 0);
        if (round % 2)
            ck_httpd_wake_flush();
        if (round % 10 == 0)
            usleep(5000);                             /* the I/O thread is asleep by now */
        ck_httpd_wake_flush();
        for (int i = 0; i < N; i++) {
            ck_buf r;
            ck_buf_init(&r, 1 << 16);
            raw_read(fds[i], &r, line, 3000);
            assert_non_null(strstr(r.data, line));
            ck_buf_free(&r);
        }
    }
    /* The first stream's client leaves while its write holds the wake; the second stream's
     * write, made once the I/O thread has closed the first and gone back to sleep, must still
     * be woken for by the flush. */
    usleep(20000);                                    /* the I/O thread is asleep */
    ck_httpd_wake_hold();
    assert_int_equal(ck_http_stream_write(of[0], "gone\n", 5), 0);
    close(fds[0]);                                    /* this wakes the I/O thread anyway */
    assert_int_equal(t_wait_int(&T.closes, 1, 5000), 1);
    usleep(20000);
    assert_int_equal(ck_http_stream_write(of[1], "after\n", 6), 0);
    ck_httpd_wake_flush();
    ck_buf r;
    ck_buf_init(&r, 1 << 16);
    raw_read(fds[1], &r, "after\n", 3000);
    assert_non_null(r.data);
    assert_non_null(strstr(r.data, "after\n"));
    ck_buf_free(&r);
    ck_httpd_stop(h);
    for (int i = 1; i < N; i++)
        close(fds[i]);
    for (int i = 0; i < N; i++)
        ck_http_stream_release(T.many[i]);
}

static void test_deferred_answer(void **state)
{
    ck_httpd *h = start_plain();
    cleanup_free char *u = url(h, "/defer");
    CURL *c = curl_easy_init();
    for (int i = 0; i < 3; i++) {
        ck_buf b;
        assert_int_equal(curl_do(c, u, NULL, 0, &b), 202);
        assert_string_equal(b.data, "later");
        ck_buf_free(&b);
    }
    curl_easy_cleanup(c);

    /* A stream started after the server stopped: writes fail, on_close still runs once. */
    int fd = raw_connect(ck_httpd_port(h));
    const char *req = "GET /late HTTP/1.1\r\nHost: x\r\n\r\n";
    raw_send(fd, req, strlen(req));
    assert_int_equal(t_wait_int(&T.blocked, 1, 3000), 1);
    ck_httpd_stop(h);
    t_release_blocked();
    assert_int_equal(t_wait_int(&T.closes, 1, 3000), 1);
    assert_int_equal(t_wait_int(&T.slow_done, 1, 3000), 1);
    assert_int_equal(T.slow_result, -1);
    close(fd);
}

/* ---- TLS ---------------------------------------------------------------------------------- */

/* A response far larger than the socket buffers, to a client that does not read at first: the
 * direct write stops at EAGAIN, the rest goes out on EV_WRITE, byte-exact; then the same
 * connection serves the next request (written directly again). */
static void test_large_response_after_eagain(void **state)
{
    ck_httpd *h = start_plain();
    tconn c = {.fd = raw_connect_rcvbuf(ck_httpd_port(h), 16 * 1024)};
    size_t n = 8u << 20;
    send_big_get(&c, n);
    usleep(300 * 1000);                           /* the server meets a full socket */
    ck_buf r;
    ck_buf_init(&r, 16u << 20);
    assert_big_body(&r, conn_read_body(&c, &r, n, 10), n);
    cleanup_free char *cl = xasprintf("Content-Length: %zu\r\n", n);
    assert_non_null(strstr(r.data, cl));
    ck_buf_reset(&r);
    const char *req2 = "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n";
    conn_send(&c, req2, strlen(req2));
    conn_read(&c, &r, "remote=");
    assert_true(!strncmp(r.data, "HTTP/1.1 200 ", 13));
    ck_buf_free(&r);
    conn_close(&c);
    ck_httpd_stop(h);
}

/* Many writer threads fan events out to many streams at once (the wake list under contention):
 * every client gets every event, each writer's events in its order. */
struct fan {
    int id, nstreams, events;
};

static void *fan_writer(void *arg)
{
    struct fan *f = arg;
    for (int e = 0; e < f->events; e++) {
        char line[64];
        int n = snprintf(line, sizeof line, "w%d-e%04d\n", f->id, e);
        for (int i = 0; i < f->nstreams; i++)
            assert_int_equal(ck_http_stream_write(T.many[i], line, (size_t)n), 0);
        if (e % 50 == 0)
            usleep(1000);                         /* let the I/O thread fall asleep sometimes */
    }
    return NULL;
}

static void test_many_wakes(void **state)
{
    ck_httpd *h = start_plain();
    enum { N = 64, W = 8, E = 200 };
    int fds[N];
    const char *req = "GET /many HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < N; i++) {
        fds[i] = raw_connect(ck_httpd_port(h));
        raw_send(fds[i], req, strlen(req));
    }
    assert_int_equal(t_wait_int(&T.nmany, N, 10000), N);
    pthread_t th[W];
    struct fan f[W];
    for (int w = 0; w < W; w++) {
        f[w] = (struct fan){.id = w, .nstreams = N, .events = E};
        assert_int_equal(pthread_create(&th[w], NULL, fan_writer, &f[w]), 0);
    }
    for (int w = 0; w < W; w++)
        pthread_join(th[w], NULL);
    for (int i = 0; i < N; i++)
        ck_http_stream_end(T.many[i]);
    for (int i = 0; i < N; i++) {
        ck_buf r;
        ck_buf_init(&r, 1 << 20);
        raw_read(fds[i], &r, "\r\n0\r\n\r\n", 10000);
        assert_non_null(r.data);
        assert_int_equal(count_substr(r.data, "-e"), W * E);
        for (int w = 0; w < W; w++) {             /* per writer, in order */
            const char *p = r.data;
            for (int e = 0; e < E; e++) {
                char line[64];
                snprintf(line, sizeof line, "w%d-e%04d\n", w, e);
                p = strstr(p, line);
                assert_non_null(p);
            }
        }
        ck_buf_free(&r);
    }
    assert_int_equal(t_wait_int(&T.closes, N, 5000), N);
    for (int i = 0; i < N; i++) {
        close(fds[i]);
        ck_http_stream_release(T.many[i]);
    }
    ck_httpd_stop(h);
}

static char tls_dir[64];
static char tls_crt[96], tls_key[96], tls_ca[96];   /* the server's pair and the CA, in tls_dir */

static int sh(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cleanup_free char *cmd = xvasprintf(fmt, ap);
    va_end(ap);
    cleanup_free char *full = xasprintf("cd %s && (%s) >/dev/null 2>&1", tls_dir, cmd);
    return system(full);
}

static void make_cert(const char *ca, const char *name, const char *subj, const char *ext)
{
    assert_int_equal(sh("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                        "-keyout %s.key -out %s.csr -subj '%s'", name, name, subj), 0);
    assert_int_equal(sh("printf '%s\\n' > %s.ext && openssl x509 -req -in %s.csr -CA %s.crt "
                        "-CAkey %s.key -CAcreateserial -days 1 -out %s.crt -extfile %s.ext",
                        ext, name, name, ca, ca, name, name), 0);
}

static int tls_setup(void **state)
{
    strcpy(tls_dir, "/tmp/ck-httpd-tls-XXXXXX");
    if (!mkdtemp(tls_dir))
        return -1;
    snprintf(tls_crt, sizeof tls_crt, "%s/server.crt", tls_dir);
    snprintf(tls_key, sizeof tls_key, "%s/server.key", tls_dir);
    snprintf(tls_ca, sizeof tls_ca, "%s/ca.crt", tls_dir);
    for (int i = 0; i < 2; i++) {
        const char *ca = i ? "otherca" : "ca";
        if (sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
               "-keyout %s.key -out %s.crt -days 1 -subj '/CN=%s'", ca, ca, ca))
            return -1;
    }
    make_cert("ca", "server", "/CN=localhost",
              "subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth");
    make_cert("ca", "alice", "/O=system:masters/O=devs/CN=alice", "extendedKeyUsage=clientAuth");
    make_cert("otherca", "mallory", "/O=system:masters/CN=mallory", "extendedKeyUsage=clientAuth");
    return 0;
}

/* A TLS server with the test pair; client_ca: client certificates checked against the test CA. */
static ck_httpd *start_tls(bool client_ca)
{
    return start_server((ck_httpd_config){.cert_file = tls_crt, .key_file = tls_key,
                                          .client_ca_file = client_ca ? tls_ca : NULL});
}

static int tls_teardown(void **state)
{
    cleanup_free char *cmd = xasprintf("rm -rf %s", tls_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static long tls_get(ck_httpd *h, const char *client, long http_version, ck_buf *out,
                    long *used_version)
{
    CURL *c = curl_easy_init();
    cleanup_free char *u = xasprintf("https://127.0.0.1:%d/whoami", ck_httpd_port(h));
    const char *ca = tls_ca;
    cleanup_free char *crt = client ? xasprintf("%s/%s.crt", tls_dir, client) : NULL;
    cleanup_free char *key = client ? xasprintf("%s/%s.key", tls_dir, client) : NULL;
    curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    if (client) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, crt);
        curl_easy_setopt(c, CURLOPT_SSLKEY, key);
    }
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, http_version);
    long code = curl_do(c, u, NULL, 0, out);
    if (used_version)
        curl_easy_getinfo(c, CURLINFO_HTTP_VERSION, used_version);
    /* keep-alive over TLS */
    if (code == 200) {
        ck_buf again;
        assert_int_equal(curl_do(c, u, NULL, 0, &again), 200);
        long conns = -1;
        curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns);
        assert_int_equal(conns, 0);
        ck_buf_free(&again);
    }
    curl_easy_cleanup(c);
    return code;
}

static void test_tls_client_certs(void **state)
{
    ck_httpd *h = start_tls(true);
    ck_buf b;
    long ver = 0;
    assert_int_equal(tls_get(h, "alice", CURL_HTTP_VERSION_2TLS, &b, &ver), 200);
    assert_string_equal(b.data, "cn=alice orgs=system:masters,devs");
    assert_int_equal(ver, CURL_HTTP_VERSION_1_1);        /* ALPN: only http/1.1 offered */
    ck_buf_free(&b);
    assert_int_equal(tls_get(h, NULL, CURL_HTTP_VERSION_1_1, &b, NULL), 200);
    assert_string_equal(b.data, "cn=(none) orgs=");
    ck_buf_free(&b);
    /* A certificate from an unknown CA: the handshake succeeds, the client stays anonymous. */
    assert_int_equal(tls_get(h, "mallory", CURL_HTTP_VERSION_1_1, &b, NULL), 200);
    assert_string_equal(b.data, "cn=(none) orgs=");
    ck_buf_free(&b);
    /* Plain HTTP to a TLS port is not served. */
    CURL *c = curl_easy_init();
    cleanup_free char *u = url(h, "/echo");
    assert_true(curl_do(c, u, NULL, 0, &b) != 200);
    ck_buf_free(&b);
    curl_easy_cleanup(c);
    ck_httpd_stop(h);

    /* Without a client CA, client certificates are ignored. */
    h = start_tls(false);
    assert_int_equal(tls_get(h, "alice", CURL_HTTP_VERSION_1_1, &b, NULL), 200);
    assert_string_equal(b.data, "cn=(none) orgs=");
    ck_buf_free(&b);
    ck_httpd_stop(h);

    /* A bad key file is a startup error, not a crash. */
    ck_error *err = NULL;
    ck_httpd_config bad = {.bind_addr = "127.0.0.1", .cert_file = tls_crt, .key_file = tls_ca,
                           .handler = handler};
    assert_null(ck_httpd_start(&bad, &err));
    assert_non_null(err);
    ck_error_free(err);
}

/* A client context that trusts the test CA (alpn: the protocols offered, or NULL). */
static SSL_CTX *tls_client_ctx(const char *alpn, unsigned alpn_len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, tls_ca, NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (alpn)
        assert_int_equal(SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)alpn, alpn_len), 0);
    return ctx;
}

/* A raw TLS connection to 127.0.0.1:port, the server's certificate checked; reads give up after
 * timeout_s.  The caller frees it with conn_close. */
static tconn tls_connect(SSL_CTX *ctx, int port, int timeout_s)
{
    tconn c = {.fd = raw_connect(port)};
    struct timeval tv = {timeout_s, 0};
    setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    c.ssl = SSL_new(ctx);
    SSL_set_fd(c.ssl, c.fd);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c.ssl), "127.0.0.1");
    assert_int_equal(SSL_connect(c.ssl), 1);
    return c;
}

/* Sends the records queued in the memory BIO mem in one segment. */
static void tls_flush(BIO *mem, int fd)
{
    char *wire;
    long wn = BIO_get_mem_data(mem, &wire);
    assert_true(wn > 0);
    raw_send(fd, wire, (size_t)wn);
    (void)BIO_reset(mem);
}

/* Records as the server's reads see them: a record split over several TCP segments (header and
 * body apart, even a 1-byte piece), two requests' records in one segment (both served, in order),
 * and a 100 KB body of seven records in one go; then a large answer back. */
static void test_tls_split_records(void **state)
{
    ck_httpd *h = start_tls(false);
    SSL_CTX *ctx = tls_client_ctx(NULL, 0);
    tconn c = tls_connect(ctx, ck_httpd_port(h), 5);
    SSL *ssl = c.ssl;
    int fd = c.fd;
    /* from now on the client's records go to a memory BIO; we send its bytes as we like */
    BIO *mem = BIO_new(BIO_s_mem());
    SSL_set0_wbio(ssl, mem);
    const char *req = "GET /echo?split=1 HTTP/1.1\r\nHost: x\r\n\r\n";
    tls_send(ssl, req, strlen(req));
    char *wire;
    long wn = BIO_get_mem_data(mem, &wire);
    assert_true(wn > 10);
    const long cuts[] = {1, 3, 2, 5, 1};          /* header in pieces, then the body in two */
    long off = 0;
    for (size_t i = 0; i < ARRAY_SIZE(cuts); i++) {
        raw_send(fd, wire + off, (size_t)cuts[i]);
        off += cuts[i];
        usleep(20 * 1000);
    }
    raw_send(fd, wire + off, (size_t)(wn - off));
    (void)BIO_reset(mem);
    ck_buf r;
    ck_buf_init(&r, 16u << 20);
    tls_read(ssl, &r, "remote=127.0.0.1:");
    assert_true(!strncmp(r.data, "HTTP/1.1 200 ", 13));
    assert_non_null(strstr(r.data, "GET /echo q=split=1"));
    ck_buf_reset(&r);

    /* two requests, each its own record, in one segment */
    const char *r1 = "GET /echo?n=1 HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *r2 = "GET /echo?n=2 HTTP/1.1\r\nHost: x\r\n\r\n";
    tls_send(ssl, r1, strlen(r1));
    tls_send(ssl, r2, strlen(r2));
    tls_flush(mem, fd);
    tls_read(ssl, &r, "q=n=2");
    char *a = strstr(r.data, "q=n=1"), *b = strstr(r.data, "q=n=2");
    assert_non_null(a);
    assert_non_null(b);
    assert_true(a < b);
    ck_buf_reset(&r);

    /* a 100 KB body: seven records arriving together, more than one read's worth */
    size_t bn = 100 * 1000;
    cleanup_free char *body = xmalloc(bn);
    for (size_t i = 0; i < bn; i++)
        body[i] = (char)('a' + i % 23);
    cleanup_free char *hdr = xasprintf("POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", bn);
    tls_send(ssl, hdr, strlen(hdr));
    tls_send(ssl, body, bn);
    tls_flush(mem, fd);
    cleanup_free char *cl = xasprintf("Content-Length: %zu\r\n", bn);
    assert_big_body(&r, conn_read_body(&c, &r, bn, 5), bn);
    assert_non_null(strstr(r.data, cl));
    ck_buf_reset(&r);

    /* 4 MiB back (hundreds of records, the socket fills), still byte-exact */
    size_t big = 4u << 20;
    send_big_get(&c, big);
    tls_flush(mem, fd);
    usleep(200 * 1000);
    assert_big_body(&r, conn_read_body(&c, &r, big, 10), big);
    ck_buf_free(&r);
    conn_close(&c);
    SSL_CTX_free(ctx);
    ck_httpd_stop(h);
}

/* Streams, tunnels and refusals over TLS: the paths kubectl watch / exec / apply really take. */
static void test_tls_streams_and_tunnel(void **state)
{
    ck_httpd *h = start_tls(true);
    cleanup_free char *base = xasprintf("https://127.0.0.1:%d", ck_httpd_port(h));
    cleanup_free char *us = xasprintf("%s/stream", base);
    cleanup_free char *ub = xasprintf("%s/body", base);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_CAINFO, tls_ca);
    ck_buf b;
    assert_int_equal(curl_do(c, us, NULL, 0, &b), 200);
    assert_string_equal(b.data, "event-0\nevent-1\nevent-2\nevent-3\nevent-4\n");
    ck_buf_free(&b);
    size_t n = 4 * 1024 * 1024;
    cleanup_free char *big = xcalloc(1, n);
    assert_int_equal(curl_do(c, ub, big, n, &b), 413);
    assert_non_null(strstr(b.data, "RequestEntityTooLarge"));
    ck_buf_free(&b);
    assert_int_equal(curl_do(c, ub, "small", 5, &b), 200);   /* a new connection works */
    assert_string_equal(b.data, "small");
    ck_buf_free(&b);
    curl_easy_cleanup(c);

    /* A raw TLS client that offers only h2: no ALPN agreed, HTTP/1.1 upgrade to a tunnel. */
    SSL_CTX *ctx = tls_client_ctx("\x02h2", 3);
    tconn tc = tls_connect(ctx, ck_httpd_port(h), 3);
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(tc.ssl, &alpn, &alpn_len);
    assert_int_equal(alpn_len, 0);
    ck_buf r;
    ck_buf_init(&r, 1 << 20);
    tunnel_open(&tc, &r, "/upgrade", "early", "\r\n\r\nearly");
    tunnel_echo(&tc, &r, "ping-tls");
    tunnel_quit(&tc, &r);
    assert_int_equal(t_wait_int(&T.closes, 2, 3000), 2);   /* /stream's and the tunnel's */
    conn_close(&tc);

    /* the same through a taken connection: the 101's records and the SSL move to the taker */
    tc = tls_connect(ctx, ck_httpd_port(h), 3);
    tunnel_open(&tc, &r, "/take", "secret", "early:secret");
    assert_non_null(strstr(r.data, "\r\n\r\nearly:secret"));
    tunnel_echo(&tc, &r, "ping-taken");
    tunnel_quit(&tc, &r);
    assert_int_equal(t_wait_int(&T.closes, 3, 3000), 3);
    ck_buf_free(&r);
    conn_close(&tc);
    SSL_CTX_free(ctx);
    ck_httpd_stop(h);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    /* SIGPIPE is left at its default: ck_httpd_start must ignore it (raw_send uses NOSIGNAL). */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_helpers),
        cmocka_unit_test(test_keepalive_reuse),
        cmocka_unit_test(test_ipv6_and_bind_errors),
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_post_bodies),
        cmocka_unit_test(test_blocking_handler),
        cmocka_unit_test(test_all_workers_held),
        cmocka_unit_test(test_worker_cap),
        cmocka_unit_test(test_worker_handoff_burst),
        cmocka_unit_test(test_stream_incremental),
        cmocka_unit_test(test_stream_client_disconnect),
        cmocka_unit_test(test_slow_stream_closed),
        cmocka_unit_test(test_upgrade_tunnel),
        cmocka_unit_test(test_upgrade_take),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_mutated_requests),
        cmocka_unit_test(test_body_too_large),
        cmocka_unit_test(test_slow_loris),
        cmocka_unit_test(test_many_idle_connections),
        cmocka_unit_test(test_many_streams),
        cmocka_unit_test(test_deferred_answer),
        cmocka_unit_test(test_held_wakes),
        cmocka_unit_test(test_large_response_after_eagain),
        cmocka_unit_test(test_many_wakes),
        cmocka_unit_test_setup_teardown(test_tls_client_certs, tls_setup, tls_teardown),
        cmocka_unit_test_setup_teardown(test_tls_streams_and_tunnel, tls_setup, tls_teardown),
        cmocka_unit_test_setup_teardown(test_tls_split_records, tls_setup, tls_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
