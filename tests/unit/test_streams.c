/* Unit tests for src/streams over a real loopback connection: an in-process httpd serves
 * exec and port-forward with ck_streams_*, and the tests speak the client side with lib/spdy and
 * lib/websocket (SPDY v4 exec with exit code, websocket v5 exec with stdin and half-close,
 * port-forward inside websocket to a local listener, refusals before the upgrade). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <link.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/httpd.h"
#include "lib/spdy.h"
#include "lib/websocket.h"
#include "streams/streams.h"
#include "streams/tunnel.h"

static ck_httpd *srv;

static int spawn_host(void *ctx, const ck_stream_exec_opts *o, ck_stream_proc *p, ck_error **err)
{
    return ck_streams_spawn(NULL, o, p, err);
}

static int connect_local(void *ctx, int port, ck_error **err)
{
    return ck_streams_connect_netns(NULL, port, err);
}

static void handler(void *ctx, ck_http_req *req, ck_http_resp *resp)
{
    if (!strncmp(req->path, "/exec-idle", 10)) {
        ck_streams_config cfg = {.idle_timeout_ms = 300};
        return ck_streams_serve_exec(req, resp, "c", false, &cfg, spawn_host, NULL);
    }
    if (!strncmp(req->path, "/exec", 5))
        return ck_streams_serve_exec(req, resp, "c", false, NULL, spawn_host, NULL);
    return ck_streams_serve_portforward(req, resp, NULL, connect_local, NULL);
}

static int setup(void **state)
{
    ck_httpd_config cfg = {.port = 0, .handler = handler, .workers = 2};
    srv = ck_httpd_start(&cfg, NULL);
    return srv ? 0 : -1;
}

static int teardown(void **state)
{
    ck_httpd_stop(srv);
    return 0;
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void send_all(int fd, const void *d, size_t n)
{
    const char *p = d;
    while (n) {
        ssize_t w = write(fd, p, n);
        assert_true(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

/* Read the response head; returns the status and leaves extra bytes in *rest. */
static int read_head(int fd, ck_buf *rest)
{
    ck_buf b;
    ck_buf_init(&b, 65536);
    char *end = NULL;
    while (!(end = b.len ? strstr(b.data, "\r\n\r\n") : NULL)) {
        char tmp[4096];
        struct pollfd pf = {fd, POLLIN, 0};
        assert_int_equal(poll(&pf, 1, 5000), 1);
        ssize_t r = read(fd, tmp, sizeof tmp);
        assert_true(r > 0);
        ck_buf_add(&b, tmp, (size_t)r);
    }
    int status = 0;
    sscanf(b.data, "HTTP/1.1 %d", &status);
    size_t hl = (size_t)(end - b.data) + 4;
    ck_buf_add(rest, b.data + hl, b.len - hl);
    ck_buf_free(&b);
    return status;
}

/* ---- SPDY v4 exec ---- */

struct spdy_client {
    uint32_t err_id, out_id;
    ck_buf out, errst;
    bool out_fin, err_fin;
    int replies;
};

static int spdy_cb(void *ctx, const ck_spdy_frame *f)
{
    struct spdy_client *c = ctx;
    if (f->type == CK_SPDY_SYN_REPLY)
        c->replies++;
    if (f->type == CK_SPDY_DATA) {
        ck_buf *b = f->stream_id == c->out_id ? &c->out : &c->errst;
        ck_buf_add(b, f->data, f->len);
        if (f->flags & CK_SPDY_FLAG_FIN)
            *(f->stream_id == c->out_id ? &c->out_fin : &c->err_fin) = true;
    }
    return 0;
}

static void test_spdy_exec_exit_code(void **state)
{
    int fd = dial(ck_httpd_port(srv));
    const char *rq = "POST /exec?command=sh&command=-c&command=echo%20hello%3B%20exit%203&stdout=true "
                     "HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                     "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
                     "X-Stream-Protocol-Version: channel.k8s.io\r\nContent-Length: 0\r\n\r\n";
    send_all(fd, rq, strlen(rq));
    ck_buf rest;
    ck_buf_init(&rest, 0);
    assert_int_equal(read_head(fd, &rest), 101);
    ck_spdy s;
    ck_spdy_init(&s, false, 0);
    ck_buf b;
    ck_buf_init(&b, 0);
    struct spdy_client c = {0};
    ck_buf_init(&c.out, 0);
    ck_buf_init(&c.errst, 0);
    c.err_id = ck_spdy_next_stream_id(&s);
    c.out_id = ck_spdy_next_stream_id(&s);
    ck_spdy_header he[] = {{"streamType", "error"}}, ho[] = {{"streamType", "stdout"}};
    ck_spdy_syn_stream(&s, &b, c.err_id, 0, 0, 0, he, 1);
    ck_spdy_syn_stream(&s, &b, c.out_id, 0, 0, 0, ho, 1);
    send_all(fd, b.data, b.len);
    assert_int_equal(ck_spdy_feed(&s, rest.data, rest.len, spdy_cb, &c, NULL), 0);
    while (!(c.out_fin && c.err_fin)) {
        char tmp[4096];
        struct pollfd pf = {fd, POLLIN, 0};
        assert_int_equal(poll(&pf, 1, 5000), 1);
        ssize_t r = read(fd, tmp, sizeof tmp);
        if (r <= 0)
            break;
        assert_true(ck_spdy_feed(&s, tmp, (size_t)r, spdy_cb, &c, NULL) >= 0);
    }
    assert_int_equal(c.replies, 2);
    assert_true(c.out_fin && c.err_fin);
    assert_string_equal(c.out.data, "hello\n");
    assert_non_null(strstr(c.errst.data, "\"reason\":\"NonZeroExitCode\""));
    assert_non_null(strstr(c.errst.data, "\"reason\":\"ExitCode\",\"message\":\"3\""));
    ck_buf_free(&c.out);
    ck_buf_free(&c.errst);
    ck_buf_free(&b);
    ck_buf_free(&rest);
    ck_spdy_free(&s);
    close(fd);
}

/* ---- websocket v5 exec ---- */

struct ws_client {
    ck_buf out;
    char status[512];
    bool closed;
};

static int ws_cb(void *ctx, enum ck_ws_opcode op, const uint8_t *d, size_t len)
{
    struct ws_client *c = ctx;
    if (op == CK_WS_CLOSE) {
        c->closed = true;
        return 0;
    }
    if (op != CK_WS_BINARY || len == 0)
        return 0;
    if (d[0] == 1)
        ck_buf_add(&c->out, d + 1, len - 1);
    if (d[0] == 3)
        snprintf(c->status, sizeof c->status, "%.*s", (int)(len - 1), d + 1);
    return 0;
}

static void test_ws_v5_exec_stdin(void **state)
{
    int fd = dial(ck_httpd_port(srv));
    char key[25];
    ck_ws_client_key(key);
    char *rq = xasprintf("GET /exec?command=cat&stdin=true&stdout=true&stderr=true HTTP/1.1\r\n"
                         "Host: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                         "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n"
                         "Sec-WebSocket-Protocol: v5.channel.k8s.io,v4.channel.k8s.io\r\n\r\n", key);
    send_all(fd, rq, strlen(rq));
    free(rq);
    ck_buf rest;
    ck_buf_init(&rest, 0);
    assert_int_equal(read_head(fd, &rest), 101);
    ck_buf b;
    ck_buf_init(&b, 0);
    /* 200 KiB of stdin in pieces, then close channel 0 (v5) */
    size_t total = 200 * 1024;
    char *data = malloc(total);
    for (size_t i = 0; i < total; i++)
        data[i] = (char)('a' + i % 26);
    for (size_t off = 0; off < total; off += 30000)
        ck_ws_frame_prefixed(&b, CK_WS_BINARY, true, 0, data + off,
                             total - off < 30000 ? total - off : 30000);
    ck_ws_frame(&b, CK_WS_PING, true, "p", 1);
    uint8_t close0[2] = {255, 0};
    ck_ws_frame(&b, CK_WS_BINARY, true, close0, 2);
    send_all(fd, b.data, b.len);
    ck_ws ws;
    ck_ws_init(&ws, false, 0);
    struct ws_client c = {0};
    ck_buf_init(&c.out, 0);
    assert_true(ck_ws_feed(&ws, rest.data, rest.len, ws_cb, &c, NULL) >= 0);
    while (!c.closed) {
        char tmp[65536];
        struct pollfd pf = {fd, POLLIN, 0};
        assert_int_equal(poll(&pf, 1, 5000), 1);
        ssize_t r = read(fd, tmp, sizeof tmp);
        if (r <= 0)
            break;
        assert_true(ck_ws_feed(&ws, tmp, (size_t)r, ws_cb, &c, NULL) >= 0);
    }
    assert_true(c.closed);
    assert_int_equal(c.out.len, total);
    assert_memory_equal(c.out.data, data, total);
    assert_string_equal(c.status, "{\"metadata\":{},\"status\":\"Success\"}");
    free(data);
    ck_buf_free(&c.out);
    ck_buf_free(&b);
    ck_buf_free(&rest);
    ck_ws_free(&ws);
    close(fd);
}

/* One websocket v5 exec of `cmd` (URL-encoded query part); fills c until the close frame. */
static void ws_exec(const char *cmdq, struct ws_client *c)
{
    int fd = dial(ck_httpd_port(srv));
    char key[25];
    ck_ws_client_key(key);
    char *rq = xasprintf("GET /exec?%s&stdout=true&stderr=true HTTP/1.1\r\n"
                         "Host: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                         "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n"
                         "Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n", cmdq, key);
    send_all(fd, rq, strlen(rq));
    free(rq);
    ck_buf rest;
    ck_buf_init(&rest, 0);
    assert_int_equal(read_head(fd, &rest), 101);
    ck_ws ws;
    ck_ws_init(&ws, false, 0);
    ck_buf_init(&c->out, 0);
    assert_true(ck_ws_feed(&ws, rest.data, rest.len, ws_cb, c, NULL) >= 0);
    while (!c->closed) {
        char tmp[65536];
        struct pollfd pf = {fd, POLLIN, 0};
        assert_int_equal(poll(&pf, 1, 5000), 1);
        ssize_t r = read(fd, tmp, sizeof tmp);
        if (r <= 0)
            break;
        assert_true(ck_ws_feed(&ws, tmp, (size_t)r, ws_cb, c, NULL) >= 0);
    }
    ck_buf_free(&rest);
    ck_ws_free(&ws);
    close(fd);
}

static void test_spawn_failure_then_serve(void **state)
{
    /* a command that cannot start: a Failure status with upstream's wording, a closed stream,
     * and the node keeps serving (the pump's early exit path once freed an uninitialized
     * pointer and took the whole stand-in node down) */
    for (int round = 0; round < 3; round++) {
        struct ws_client c = {0};
        ws_exec("command=/no/such/binary", &c);
        assert_true(c.closed);
        assert_non_null(strstr(c.status, "\"status\":\"Failure\""));
        assert_non_null(strstr(c.status, "failed to exec in container"));
        ck_buf_free(&c.out);
    }
    struct ws_client ok = {0};
    ws_exec("command=echo&command=still-here", &ok);
    assert_true(ok.closed);
    assert_int_equal(ok.out.len, 11);
    assert_memory_equal(ok.out.data, "still-here\n", 11);
    assert_string_equal(ok.status, "{\"metadata\":{},\"status\":\"Success\"}");
    ck_buf_free(&ok.out);
}

/* ---- port-forward: SPDY inside websocket to a local listener ---- */

struct pf_client {
    uint32_t data_id;
    ck_buf data;
    bool fin;
    ck_spdy *s;
};

static int pf_spdy_cb(void *ctx, const ck_spdy_frame *f)
{
    struct pf_client *c = ctx;
    if (f->type == CK_SPDY_DATA && f->stream_id == c->data_id) {
        ck_buf_add(&c->data, f->data, f->len);
        if (f->flags & CK_SPDY_FLAG_FIN)
            c->fin = true;
    }
    return 0;
}

static int pf_ws_cb(void *ctx, enum ck_ws_opcode op, const uint8_t *d, size_t len)
{
    struct pf_client *c = ctx;
    if (op == CK_WS_BINARY)
        assert_true(ck_spdy_feed(c->s, d, len, pf_spdy_cb, c, NULL) >= 0);
    return 0;
}

static void test_ws_portforward(void **state)
{
    /* the "pod": a listener that sends a greeting and closes */
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(l, 4), 0);
    getsockname(l, (struct sockaddr *)&sa, &sl);
    char port[8];
    snprintf(port, sizeof port, "%d", ntohs(sa.sin_port));

    int fd = dial(ck_httpd_port(srv));
    char key[25];
    ck_ws_client_key(key);
    char *rq = xasprintf("GET /portforward HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                         "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                         "Sec-WebSocket-Key: %s\r\n"
                         "Sec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io\r\n\r\n", key);
    send_all(fd, rq, strlen(rq));
    free(rq);
    ck_buf rest;
    ck_buf_init(&rest, 0);
    assert_int_equal(read_head(fd, &rest), 101);
    ck_spdy s;
    ck_spdy_init(&s, false, 0);
    ck_buf b, w;
    ck_buf_init(&b, 0);
    ck_buf_init(&w, 0);
    struct pf_client c = {.s = &s};
    ck_buf_init(&c.data, 0);
    uint32_t eid = ck_spdy_next_stream_id(&s);
    c.data_id = ck_spdy_next_stream_id(&s);
    ck_spdy_header he[] = {{"streamType", "error"}, {"port", port}, {"requestID", "0"}};
    ck_spdy_header hd[] = {{"streamType", "data"}, {"port", port}, {"requestID", "0"}};
    ck_spdy_syn_stream(&s, &b, eid, 0, 0, 0, he, 3);
    ck_spdy_syn_stream(&s, &b, c.data_id, 0, 0, 0, hd, 3);
    ck_spdy_data(&b, c.data_id, CK_SPDY_FLAG_FIN, "ping", 4);
    ck_ws_frame(&w, CK_WS_BINARY, true, b.data, b.len);
    send_all(fd, w.data, w.len);

    int a = accept(l, NULL, NULL);
    assert_true(a >= 0);
    char got[8] = {0};
    size_t n = 0;
    while (n < 4) {
        ssize_t r = read(a, got + n, 4 - n);
        assert_true(r > 0);
        n += (size_t)r;
    }
    assert_string_equal(got, "ping");
    send_all(a, "pong!", 5);
    close(a);

    ck_ws ws;
    ck_ws_init(&ws, false, 0);
    assert_true(ck_ws_feed(&ws, rest.data, rest.len, pf_ws_cb, &c, NULL) >= 0);
    while (!c.fin) {
        char tmp[4096];
        struct pollfd pf = {fd, POLLIN, 0};
        assert_int_equal(poll(&pf, 1, 5000), 1);
        ssize_t r = read(fd, tmp, sizeof tmp);
        if (r <= 0)
            break;
        assert_true(ck_ws_feed(&ws, tmp, (size_t)r, pf_ws_cb, &c, NULL) >= 0);
    }
    assert_true(c.fin);
    assert_int_equal(c.data.len, 5);
    assert_memory_equal(c.data.data, "pong!", 5);
    ck_buf_free(&c.data);
    ck_buf_free(&b);
    ck_buf_free(&w);
    ck_buf_free(&rest);
    ck_ws_free(&ws);
    ck_spdy_free(&s);
    close(fd);
    close(l);
}

static void test_refusals(void **state)
{
    struct { const char *rq; int status; const char *msg; } cases[] = {
        {"GET /exec?command=true&stdout=true HTTP/1.1\r\nHost: x\r\n\r\n", 400,
         "Upgrade request required"},
        {"GET /exec?stdout=true HTTP/1.1\r\nHost: x\r\nUpgrade: SPDY/3.1\r\nConnection: Upgrade\r\n"
         "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n", 400, "at least one command"},
        {"GET /exec?command=true HTTP/1.1\r\nHost: x\r\nUpgrade: SPDY/3.1\r\nConnection: Upgrade\r\n"
         "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n", 400, "at least 1 of stdin"},
        {"GET /exec?command=true&stdout=1 HTTP/1.1\r\nHost: x\r\nUpgrade: SPDY/3.1\r\n"
         "Connection: Upgrade\r\nX-Stream-Protocol-Version: v9.channel.k8s.io\r\n\r\n", 400,
         "unable to negotiate protocol"},
        {"GET /portforward HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n"
         "\r\n", 400, "no supported websocket subprotocol"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        int fd = dial(ck_httpd_port(srv));
        send_all(fd, cases[i].rq, strlen(cases[i].rq));
        ck_buf rest;
        ck_buf_init(&rest, 0);
        assert_int_equal(read_head(fd, &rest), cases[i].status);
        /* the body may still be arriving */
        for (int k = 0; k < 50 && !strstr(rest.data ? rest.data : "", cases[i].msg); k++) {
            char tmp[4096];
            struct pollfd pf = {fd, POLLIN, 0};
            if (poll(&pf, 1, 100) == 1) {
                ssize_t r = read(fd, tmp, sizeof tmp);
                if (r > 0)
                    ck_buf_add(&rest, tmp, (size_t)r);
            }
        }
        assert_non_null(strstr(rest.data, cases[i].msg));
        ck_buf_free(&rest);
        close(fd);
    }
}

static void test_idle_timeout(void **state)
{
    /* a session with no traffic either way is closed after idle_timeout (and its process
     * killed), well before the command would end */
    int fd = dial(ck_httpd_port(srv));
    const char *rq = "POST /exec-idle?command=sleep&command=30&stdout=true HTTP/1.1\r\nHost: x\r\n"
                     "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                     "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n";
    send_all(fd, rq, strlen(rq));
    ck_buf rest;
    ck_buf_init(&rest, 0);
    assert_int_equal(read_head(fd, &rest), 101);
    ck_spdy s;
    ck_spdy_init(&s, false, 0);
    ck_buf b;
    ck_buf_init(&b, 0);
    ck_spdy_header he[] = {{"streamType", "error"}}, ho[] = {{"streamType", "stdout"}};
    ck_spdy_syn_stream(&s, &b, ck_spdy_next_stream_id(&s), 0, 0, 0, he, 1);
    ck_spdy_syn_stream(&s, &b, ck_spdy_next_stream_id(&s), 0, 0, 0, ho, 1);
    send_all(fd, b.data, b.len);
    int64_t t0 = ck_now_ns();
    char tmp[4096];
    for (;;) {
        struct pollfd pf = {fd, POLLIN, 0};
        assert_int_equal(poll(&pf, 1, 5000), 1);   /* never 5 s of silence */
        if (read(fd, tmp, sizeof tmp) <= 0)
            break;   /* closed by the server */
    }
    double secs = (double)(ck_now_ns() - t0) / 1e9;
    assert_true(secs >= 0.25);
    assert_true(secs < 3.0);
    ck_buf_free(&b);
    ck_buf_free(&rest);
    ck_spdy_free(&s);
    close(fd);
}

static void test_status_json(void **state)
{
    char *s = ck_streams_status_json(0, NULL);
    assert_string_equal(s, "{\"metadata\":{},\"status\":\"Success\"}");
    free(s);
    s = ck_streams_status_json(0, "boom");
    assert_non_null(strstr(s, "\"status\":\"Failure\""));
    assert_non_null(strstr(s, "\"message\":\"boom\""));
    free(s);
}

/* ---- batches framed in place, for each tunnel framing ---- */

struct batch_chk {
    ck_buf got;
    uint32_t id;
    int frames;
    ck_spdy *spdy;   /* SPDY inside websocket */
};

static int batch_spdy_cb(void *ctx, const ck_spdy_frame *f)
{
    struct batch_chk *c = ctx;
    assert_int_equal(f->type, CK_SPDY_DATA);
    assert_int_equal(f->stream_id, c->id);
    assert_true(f->len <= CK_TUNNEL_SLOT);
    ck_buf_add(&c->got, f->data, f->len);
    c->frames++;
    return 0;
}

static int batch_ws_cb(void *ctx, enum ck_ws_opcode op, const uint8_t *d, size_t len)
{
    struct batch_chk *c = ctx;
    assert_int_equal(op, CK_WS_BINARY);
    assert_true(len < 65536);
    if (c->spdy)
        return ck_spdy_feed(c->spdy, d, len, batch_spdy_cb, c, NULL) < 0;
    assert_true(len >= 1);
    assert_int_equal(d[0], c->id);
    ck_buf_add(&c->got, d + 1, len - 1);
    c->frames++;
    return 0;
}

static void test_batch_framing(void **state)
{
    /* websocket channels (exec v4/v5), raw SPDY (exec, port-forward), SPDY inside websocket
     * (port-forward 1.31+); sizes around the short-head and slot boundaries, several readv
     * rounds into one batch */
    size_t sizes[] = {1, 117, 118, 124, 125, 126, 4096, 65519, 65520, 65521, 3 * 65520 + 5};
    struct { bool ws, spdy; uint32_t id; } modes[] = {{true, false, 1}, {false, true, 7},
                                                      {true, true, 5}};
    size_t srclen = 0;
    for (size_t k = 0; k < ARRAY_SIZE(sizes); k++)
        srclen += sizes[k];
    uint8_t *src = malloc(srclen);
    for (size_t i = 0; i < srclen; i++)
        src[i] = (uint8_t)(i * 131 + 7);
    for (size_t m = 0; m < 2 * ARRAY_SIZE(modes); m++) {   /* second round: a buffer pool */
        ck_tunnel t;
        memset(&t, 0, sizeof t);
        t.ws = modes[m % 3].ws;
        t.spdy_on = modes[m % 3].spdy;
        if (m >= 3)
            t.pool = ck_bufpool_new(CK_TUNNEL_BATCH_BYTES, 2);
        ck_tunnel_batch b = {0};
        size_t total = 0;
        for (size_t k = 0; k < ARRAY_SIZE(sizes); k++) {   /* one "readv" of sizes[k] bytes */
            struct iovec iov[CK_TUNNEL_BATCH_SLOTS];
            int ni = ck_tunnel_batch_slots(&t, &b, iov, CK_TUNNEL_BATCH_SLOTS);
            size_t left = sizes[k], off = total;
            for (int i = 0; i < ni && left; i++) {
                size_t n = left < iov[i].iov_len ? left : iov[i].iov_len;
                memcpy(iov[i].iov_base, src + off, n);
                off += n;
                left -= n;
            }
            ck_tunnel_batch_commit(&t, &b, modes[m % 3].id, sizes[k]);
            total += sizes[k];
        }
        struct batch_chk c = {.id = modes[m % 3].id};
        ck_buf_init(&c.got, 0);
        ck_spdy sp;
        ck_spdy_init(&sp, false, 0);
        if (t.ws) {
            ck_ws ws;
            ck_ws_init(&ws, false, 0);
            c.spdy = t.spdy_on ? &sp : NULL;
            assert_int_equal(ck_ws_feed(&ws, b.data, b.len, batch_ws_cb, &c, NULL), 0);
            assert_int_equal(ws.in.len, 0);   /* no bytes left over: frames are contiguous */
            ck_ws_free(&ws);
        } else {
            assert_int_equal(ck_spdy_feed(&sp, b.data, b.len, batch_spdy_cb, &c, NULL), 0);
        }
        assert_int_equal(c.got.len, total);
        for (size_t i = 0; i < total; i++)
            if ((uint8_t)c.got.data[i] != src[i])
                fail_msg("mode %zu: byte %zu differs", m, i);
        assert_true(c.frames >= (int)ARRAY_SIZE(sizes));
        ck_buf_free(&c.got);
        ck_spdy_free(&sp);
        ck_tunnel_batch_free(&b);
        ck_bufpool_close(t.pool);
    }
    free(src);
}

/* The static TLS of this binary (every src object but main.c): every thread of every ckube
 * process reserves and clears it at creation.  A 1 MiB `static __thread` buffer once made each
 * API server thread 1 MiB bigger and kept 256 KiB-stack threads from starting. */
static int tls_size_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    if (info->dlpi_name && info->dlpi_name[0])
        return 0;   /* shared libraries: not ours */
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_TLS)
            *(size_t *)data += info->dlpi_phdr[i].p_memsz;
    return 1;       /* the executable comes first */
}

/* ck_streams_spawn_adopt with a stand-in for `runc exec -d --pid-file F`: a shell that starts
 * the command in the background, writes its pid and exits (so the command is orphaned and must
 * be adopted).  Output, stdin EOF and the exit status go straight between us and the command. */
static void test_spawn_adopt(void **state)
{
    /* the stand-in for `runc exec -d --pid-file F`: start the command, write its pid, exit
     * without reaping it (as runc). A shell will not do: dash reaps a background job that ends
     * before the shell exits, which under load left the adopter nothing to wait for. */
    static const char rt_script[] =
        "my $f = shift; my $p = fork(); defined $p or exit 9;"
        "if ($p == 0) { exec { $ARGV[0] } @ARGV; exit 127 }"
        "open(my $h, '>', $f) or exit 8; print $h \"$p\\n\"; close($h) or exit 8; exit 0";
    static const struct {
        const char *what;
        const char *cmd[4];
        const char *in;
        const char *out;
        int code;
        bool rt_fails;
    } cases[] = {
        {"stdin to EOF", {"cat", NULL}, "hello", "hello", 0, false},
        {"exit code", {"sh", "-c", "echo out; exit 3", NULL}, NULL, "out\n", 3, false},
        {"killed", {"sh", "-c", "kill -9 $$", NULL}, NULL, "", 137, false},
        {"runtime fails", {"true", NULL}, NULL, "", 7, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char pid_file[] = "/tmp/ck-adopt-XXXXXX";
        int tfd = mkstemp(pid_file);
        assert_true(tfd >= 0);
        close(tfd);
        char *prefix_ok[] = {"/usr/bin/perl", "-e", (char *)rt_script, pid_file, NULL};
        char *prefix_fail[] = {"/bin/sh", "-c", "exit 7", "rt", NULL};
        char *cmd[4] = {0};
        size_t n = 0;
        while (cases[i].cmd[n]) {
            cmd[n] = (char *)cases[i].cmd[n];
            n++;
        }
        ck_stream_exec_opts o = {.command = cmd, .ncommand = n, .stdin_ = true, .stdout_ = true};
        ck_stream_proc p;
        ck_error *e = NULL;
        assert_int_equal(ck_streams_spawn_adopt(cases[i].rt_fails ? prefix_fail : prefix_ok,
                                                pid_file, &o, &p, &e), 0);
        if (cases[i].in)
            assert_int_equal(write(p.in_fd, cases[i].in, strlen(cases[i].in)),
                             (ssize_t)strlen(cases[i].in));
        close(p.in_fd);
        char out[256];
        size_t got = 0;
        ssize_t r;
        while (got < sizeof out - 1 && (r = read(p.out_fd, out + got, sizeof out - 1 - got)) > 0)
            got += (size_t)r;
        out[got] = '\0';
        close(p.out_fd);
        int st = 0;
        assert_int_equal(waitpid(p.pid, &st, 0), p.pid);
        print_message("%s: out '%s' status %d\n", cases[i].what, out, st);
        assert_string_equal(out, cases[i].out);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), cases[i].code);
        assert_int_equal(access(pid_file, F_OK), -1);   /* read and removed, or removed */
    }
}

static void test_static_tls_small(void **state)
{
    size_t tls = 0;
    dl_iterate_phdr(tls_size_cb, &tls);
    assert_true(tls < 16 * 1024);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_json),
        cmocka_unit_test(test_static_tls_small),
        cmocka_unit_test(test_batch_framing),
        cmocka_unit_test(test_spdy_exec_exit_code),
        cmocka_unit_test(test_ws_v5_exec_stdin),
        cmocka_unit_test(test_spawn_failure_then_serve),
        cmocka_unit_test(test_spawn_adopt),
        cmocka_unit_test(test_ws_portforward),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_idle_timeout),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
