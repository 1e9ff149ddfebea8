/* Unit tests for the session pumps of src/streams owning the client's connection (session 8):
 * an in-process TLS httpd serves exec with ck_streams_serve_exec, and the tests are the client
 * (OpenSSL, lib/websocket, lib/spdy) over loopback.  What they pin down: bulk output and the exit
 * status over TLS, pings answered by the pump (websocket, and SPDY before and after the streams
 * exist), a client that stops reading stalls the command without growing this process, and a
 * client that disconnects mid-stream gets its command killed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lib/httpd.h"
#include "lib/spdy.h"
#include "lib/tlsrec.h"
#include "lib/websocket.h"
#include "streams/streams.h"

static ck_httpd *srv;
static SSL_CTX *cctx;
static char dir[64];

static int spawn_host(void *ctx, const ck_stream_exec_opts *o, ck_stream_proc *p, ck_error **err)
{
    (void)ctx;
    return ck_streams_spawn(NULL, o, p, err);
}

static void handler(void *ctx, ck_http_req *req, ck_http_resp *resp)
{
    (void)ctx;
    ck_streams_serve_exec(req, resp, "c", false, NULL, spawn_host, NULL);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/ck-pump.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char *cmd = xasprintf("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                          "-nodes -days 1 -subj /CN=localhost -keyout %s/k.pem -out %s/c.pem "
                          ">/dev/null 2>&1", dir, dir);
    int rc = system(cmd);
    free(cmd);
    if (rc != 0)
        return -1;
    char crt[96], key[96];
    snprintf(crt, sizeof crt, "%s/c.pem", dir);
    snprintf(key, sizeof key, "%s/k.pem", dir);
    ck_httpd_config cfg = {.port = 0, .handler = handler, .workers = 2, .cert_file = crt,
                           .key_file = key};
    srv = ck_httpd_start(&cfg, NULL);
    cctx = SSL_CTX_new(TLS_client_method());
    return srv && cctx ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    ck_httpd_stop(srv);
    SSL_CTX_free(cctx);
    char *cmd = xasprintf("rm -rf %s", dir);
    int rc = system(cmd);
    (void)rc;
    free(cmd);
    return 0;
}

/* ---- a blocking TLS client ---- */

typedef struct cli {
    int fd;
    SSL *ssl;
    ck_buf rest;    /* bytes after the response head */
} cli;

static void cli_send(cli *c, const void *d, size_t n)
{
    assert_int_equal(SSL_write(c->ssl, d, (int)n), (int)n);
}

/* Read some bytes within ms: >0, 0 at EOF/error, -1 on timeout. */
static int cli_read(cli *c, char *buf, size_t cap, int ms)
{
    if (SSL_pending(c->ssl) == 0) {
        struct pollfd pf = {c->fd, POLLIN, 0};
        if (poll(&pf, 1, ms) != 1)
            return -1;
    }
    int r = SSL_read(c->ssl, buf, (int)cap);
    ERR_clear_error();
    return r > 0 ? r : 0;
}

static char head101[4096];   /* the last 101's head, for the hand-off tests */

static void cli_open(cli *c, const char *request)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);   /* not inherited by the commands */
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ck_httpd_port(srv))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    c->ssl = SSL_new(cctx);
    SSL_set_fd(c->ssl, c->fd);
    assert_int_equal(SSL_connect(c->ssl), 1);
    cli_send(c, request, strlen(request));
    ck_buf_init(&c->rest, 0);
    ck_buf b;
    ck_buf_init(&b, 65536);
    char *end = NULL;
    while (!(end = b.len ? strstr(b.data, "\r\n\r\n") : NULL)) {
        char tmp[4096];
        int r = cli_read(c, tmp, sizeof tmp - 1, 5000);
        assert_true(r > 0);
        ck_buf_add(&b, tmp, (size_t)r);
    }
    int status = 0;
    sscanf(b.data, "HTTP/1.1 %d", &status);
    assert_int_equal(status, 101);
    size_t hl = (size_t)(end - b.data) + 4;
    snprintf(head101, sizeof head101, "%.*s", (int)hl, b.data);
    ck_buf_add(&c->rest, b.data + hl, b.len - hl);
    ck_buf_free(&b);
}

static void cli_close(cli *c)
{
    SSL_free(c->ssl);
    close(c->fd);
    ck_buf_free(&c->rest);
}

/* Reads for up to ms, handing each piece to feed, until done(arg) or the connection ends. */
static void cli_until(cli *c, bool (*done)(void *), void (*feed)(void *, const char *, size_t),
                      void *arg, int ms)
{
    int64_t until = ck_now_ns() + (int64_t)ms * 1000000;
    while (!done(arg) && ck_now_ns() < until) {
        char tmp[65536];
        int r = cli_read(c, tmp, sizeof tmp, 100);
        if (r == 0)
            break;
        if (r > 0)
            feed(arg, tmp, (size_t)r);
    }
}

static char *ws_request_with(const char *query, const char *extra)
{
    char key[25];
    ck_ws_client_key(key);
    return xasprintf("GET /exec?%s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                     "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n%s\r\n", query, key, extra);
}

static char *ws_request(const char *query)
{
    return ws_request_with(query, "");
}

/* ---- websocket v5 client state ---- */

typedef struct wsc {
    uint64_t out_bytes;
    char status[512];
    char pong[64];
    bool closed;
} wsc;

static int ws_cb(void *ctx, enum ck_ws_opcode op, const uint8_t *d, size_t len)
{
    wsc *c = ctx;
    if (op == CK_WS_CLOSE)
        c->closed = true;
    else if (op == CK_WS_PONG)
        snprintf(c->pong, sizeof c->pong, "%.*s", (int)len, d);
    else if (op == CK_WS_BINARY && len > 0 && d[0] == 1)
        c->out_bytes += len - 1;
    else if (op == CK_WS_BINARY && len > 0 && d[0] == 3)
        snprintf(c->status, sizeof c->status, "%.*s", (int)(len - 1), d + 1);
    return 0;
}

/* One websocket exec session: the TLS client, its frame parser and what arrived; the wait's
 * goal (out_bytes at least want_out, and with want_close the close frame) for cli_until. */
typedef struct wss {
    cli c;
    ck_ws ws;
    wsc st;
    uint64_t want_out;
    bool want_close;
} wss;

static void wss_feed(void *arg, const char *d, size_t n)
{
    wss *s = arg;
    assert_true(ck_ws_feed(&s->ws, d, n, ws_cb, &s->st, NULL) >= 0);
}

static bool wss_done(void *arg)
{
    wss *s = arg;
    return s->st.out_bytes >= s->want_out && (!s->want_close || s->st.closed);
}

/* Starts exec?query over websocket v5 and parses what came with the 101. */
static void wss_open(wss *s, const char *query)
{
    memset(s, 0, sizeof *s);
    char *rq = ws_request(query);
    cli_open(&s->c, rq);
    free(rq);
    ck_ws_init(&s->ws, false, 0);
    wss_feed(s, s->c.rest.data, s->c.rest.len);
}

/* Reads until at least n output bytes arrived (within ms). */
static void wss_wait_out(wss *s, uint64_t n, int ms)
{
    s->want_out = n;
    s->want_close = false;
    cli_until(&s->c, wss_done, wss_feed, s, ms);
    assert_true(s->st.out_bytes >= n);
}

/* Reads until the close frame (within ms). */
static void wss_wait_closed(wss *s, int ms)
{
    s->want_out = 0;
    s->want_close = true;
    cli_until(&s->c, wss_done, wss_feed, s, ms);
    assert_true(s->st.closed);
}

/* `head -c n /dev/zero` in the session, stdout and stderr. */
static void wss_open_zeros(wss *s, uint64_t n)
{
    char *q = xasprintf("command=head&command=-c&command=%llu&command=/dev/zero&"
                        "stdout=true&stderr=true", (unsigned long long)n);
    wss_open(s, q);
    free(q);
}

/* Reads to the close frame: all n bytes came, then the Success status. */
static void wss_wait_success(wss *s, uint64_t n, int ms)
{
    wss_wait_closed(s, ms);
    assert_int_equal(s->st.out_bytes, n);
    assert_string_equal(s->st.status, "{\"metadata\":{},\"status\":\"Success\"}");
}

static void wss_close(wss *s)
{
    ck_ws_free(&s->ws);
    cli_close(&s->c);
}

/* Children of this process whose command name is comm. */
static int children_named(const char *comm)
{
    int n = 0;
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t r = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[r] = 0;
        char *lp = strchr(buf, '('), *rp = strrchr(buf, ')');
        if (!lp || !rp)
            continue;
        int ppid = 0;
        char state = 0;
        if (sscanf(rp + 2, "%c %d", &state, &ppid) != 2)
            continue;
        if (ppid == getpid() && state != 'Z' && (size_t)(rp - lp - 1) == strlen(comm) &&
            !strncmp(lp + 1, comm, strlen(comm)))
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            v = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static void test_tls_bulk_and_ping(void **state)
{
    /* 48 MiB of output over TLS, a ping answered mid-stream by the pump, the status last */
    (void)state;
    wss s;
    wss_open_zeros(&s, 50331648);
    wss_wait_out(&s, 1u << 20, 5000);
    ck_buf b;
    ck_buf_init(&b, 0);
    ck_ws_frame(&b, CK_WS_PING, true, "mid-stream", 10);
    cli_send(&s.c, b.data, b.len);
    wss_wait_success(&s, 50331648, 20000);
    assert_string_equal(s.st.pong, "mid-stream");
    ck_buf_free(&b);
    wss_close(&s);
}

static void test_slow_client_stalls(void **state)
{
    /* a client that stops reading: the command stalls (still running after 1.5 s with 64 MiB
     * to write, which it does in well under a second otherwise) and this process does not grow
     * with it; then everything arrives */
    (void)state;
    wss s;
    wss_open_zeros(&s, 67108864);
    wss_wait_out(&s, 2u << 20, 5000);
    long rss0 = rss_kib();
    usleep(1500 * 1000);
    long rss1 = rss_kib();
    assert_int_equal(children_named("head"), 1);
    assert_true(rss1 - rss0 < 32 * 1024);
    wss_wait_success(&s, 67108864, 30000);
    wss_close(&s);
}

static void test_client_disconnects_mid_stream(void **state)
{
    /* the client vanishes (no close frame, no TLS close_notify) while output flows: the pump
     * notices and kills the command */
    (void)state;
    wss s;
    wss_open(&s, "command=yes&stdout=true&stderr=true");
    wss_wait_out(&s, 4u << 20, 5000);
    assert_int_equal(children_named("yes"), 1);
    wss_close(&s);
    int left = 1;
    for (int i = 0; i < 50 && (left = children_named("yes")) > 0; i++)
        usleep(100 * 1000);
    assert_int_equal(left, 0);
}

/* ---- SPDY ---- */

typedef struct spc {
    uint32_t err_id, out_id;
    int replies;
    uint32_t ping_back, want_ping;
    ck_buf out, errst;
    bool out_fin, err_fin;
} spc;

static int spdy_cb(void *ctx, const ck_spdy_frame *f)
{
    spc *c = ctx;
    if (f->type == CK_SPDY_SYN_REPLY)
        c->replies++;
    if (f->type == CK_SPDY_PING)
        c->ping_back = f->ping_id;
    if (f->type == CK_SPDY_DATA) {
        ck_buf *b = f->stream_id == c->out_id ? &c->out : &c->errst;
        ck_buf_add(b, f->data, f->len);
        if (f->flags & CK_SPDY_FLAG_FIN)
            *(f->stream_id == c->out_id ? &c->out_fin : &c->err_fin) = true;
    }
    return 0;
}

struct spdy_wait {
    ck_spdy *s;
    spc *st;
    bool (*cond)(spc *);
};

static void spdy_wait_feed(void *arg, const char *d, size_t n)
{
    struct spdy_wait *w = arg;
    assert_true(ck_spdy_feed(w->s, d, n, spdy_cb, w->st, NULL) >= 0);
}

static bool spdy_wait_done(void *arg)
{
    struct spdy_wait *w = arg;
    return w->cond(w->st);
}

static void spdy_until(cli *c, ck_spdy *s, spc *st, bool (*cond)(spc *), int ms)
{
    struct spdy_wait w = {s, st, cond};
    cli_until(c, spdy_wait_done, spdy_wait_feed, &w, ms);
}

static bool got_ping(spc *c) { return c->ping_back == c->want_ping; }
static bool got_two_replies(spc *c) { return c->replies == 2; }
static bool got_all(spc *c) { return c->out_fin && c->err_fin; }

/* Sends PING id and waits for the pump to answer it. */
static void spdy_ping_back(cli *c, ck_spdy *s, spc *st, uint32_t id)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    ck_spdy_ping(&b, id);
    cli_send(c, b.data, b.len);
    ck_buf_free(&b);
    st->want_ping = id;
    spdy_until(c, s, st, got_ping, 3000);
    assert_int_equal(st->ping_back, id);
}

static void test_spdy_ping_and_exit(void **state)
{
    /* a PING before any stream exists (the pump waits for them) and one after, answered with
     * the same id; the replies to the streams; output and exit code 3 */
    (void)state;
    const char *rq = "POST /exec?command=sh&command=-c&command=sleep%200.3%3B%20echo%20hi%3B%20exit%203"
                     "&stdout=true HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                     "X-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n";
    cli c;
    cli_open(&c, rq);
    ck_spdy s;
    ck_spdy_init(&s, false, 0);
    spc st = {0};
    ck_buf_init(&st.out, 0);
    ck_buf_init(&st.errst, 0);
    assert_int_equal(ck_spdy_feed(&s, c.rest.data, c.rest.len, spdy_cb, &st, NULL), 0);
    spdy_ping_back(&c, &s, &st, 1);
    ck_buf b;
    ck_buf_init(&b, 0);
    st.err_id = ck_spdy_next_stream_id(&s);
    st.out_id = ck_spdy_next_stream_id(&s);
    ck_spdy_header he[] = {{"streamType", "error"}}, ho[] = {{"streamType", "stdout"}};
    ck_spdy_syn_stream(&s, &b, st.err_id, 0, 0, 0, he, 1);
    ck_spdy_syn_stream(&s, &b, st.out_id, 0, 0, 0, ho, 1);
    cli_send(&c, b.data, b.len);
    spdy_until(&c, &s, &st, got_two_replies, 3000);
    assert_int_equal(st.replies, 2);
    spdy_ping_back(&c, &s, &st, 3);
    spdy_until(&c, &s, &st, got_all, 5000);
    assert_true(st.out_fin && st.err_fin);
    assert_int_equal(st.out.len, 3);
    assert_memory_equal(st.out.data, "hi\n", 3);
    assert_non_null(strstr(st.errst.data, "\"reason\":\"ExitCode\",\"message\":\"3\""));
    ck_buf_free(&b);
    ck_buf_free(&st.out);
    ck_buf_free(&st.errst);
    ck_spdy_free(&s);
    cli_close(&c);
}

/* ---- the sealing hand-off: the test is the API server's relay and kubectl in one ---- */

/* The secret a relay would hand over (random here: the pump only seals with it). */
static void handoff_secret(ck_tlsrec_secret *s, char *hdr, size_t cap)
{
    s->suite = 0x1301;
    s->len = 32;
    for (size_t i = 0; i < s->len; i++)
        s->b[i] = (unsigned char)(rand() ^ (int)(i * 37));
    char v[CK_TLSREC_SEAL_VALUE_MAX];
    ck_tlsrec_seal_value(s, v);
    snprintf(hdr, cap, "X-Ckube-Seal: %s\r\n", v);
}

/* Raw records from the socket, opened with the handed-over key (sequence 0 on): websocket
 * bytes fed to ws; *alert set by a close_notify; returns false at EOF or timeout. */
static bool handoff_read(cli *c, ck_tlsrec *open, ck_buf *raw, ck_ws *ws, wsc *st, bool *alert,
                         int ms)
{
    for (;;) {
        long rl = ck_tlsrec_record_len((unsigned char *)raw->data, raw->len, NULL);
        assert_true(rl >= 0);
        if (rl > 0 && raw->len >= (size_t)rl) {
            unsigned char *pl;
            size_t plen;
            uint8_t type;
            assert_int_equal(ck_tlsrec_open(open, (unsigned char *)raw->data, (size_t)rl, &pl,
                                            &plen, &type, NULL), 0);
            if (type == CK_TLSREC_ALERT) {
                assert_int_equal(plen, 2);
                assert_int_equal(pl[0], 1);   /* warning */
                assert_int_equal(pl[1], 0);   /* close_notify */
                *alert = true;
            } else {
                assert_int_equal(type, CK_TLSREC_APPDATA);
                assert_false(*alert);         /* nothing after the close_notify */
                assert_true(ck_ws_feed(ws, pl, plen, ws_cb, st, NULL) >= 0);
            }
            memmove(raw->data, raw->data + rl, raw->len - (size_t)rl);
            raw->len -= (size_t)rl;
            return true;
        }
        struct pollfd pf = {c->fd, POLLIN, 0};
        if (poll(&pf, 1, ms) != 1)
            return false;
        char tmp[65536];
        ssize_t n = read(c->fd, tmp, sizeof tmp);
        if (n <= 0)
            return false;
        ck_buf_add(raw, tmp, (size_t)n);
    }
}

/* The pump accepts a hand-off: the 101 (through its TLS session, nothing after the head in
 * those records) says so, then every byte is a record sealed with the handed-over key from
 * sequence 0: 8 MiB of output, the pong to a ping sent through the TLS session, the status, the
 * close frame, a close_notify last, then EOF. */
static void test_handoff_sealed_output(void **state)
{
    (void)state;
    ck_tlsrec_secret sec;
    char hdr[256];
    handoff_secret(&sec, hdr, sizeof hdr);
    char *rq = ws_request_with("command=head&command=-c&command=8388608&command=/dev/zero&"
                               "stdout=true&stderr=true", hdr);
    cli c;
    cli_open(&c, rq);
    free(rq);
    assert_non_null(strstr(head101, "\r\nX-Ckube-Seal: v1\r\n"));
    assert_int_equal(c.rest.len, 0);
    assert_int_equal(SSL_pending(c.ssl), 0);
    ck_tlsrec open;
    assert_int_equal(ck_tlsrec_init_secret(&open, &sec, false, NULL), 0);
    ck_buf raw;
    ck_buf_init(&raw, 0);
    ck_ws ws;
    ck_ws_init(&ws, false, 0);
    wsc st = {0};
    bool alert = false, pinged = false;
    while (!alert && handoff_read(&c, &open, &raw, &ws, &st, &alert, 5000))
        if (!pinged && st.out_bytes >= (1u << 20)) {
            ck_buf b;
            ck_buf_init(&b, 0);
            ck_ws_frame(&b, CK_WS_PING, true, "sealed", 6);
            cli_send(&c, b.data, b.len);   /* up through the kubelet's TLS session */
            ck_buf_free(&b);
            pinged = true;
        }
    assert_true(alert);
    assert_true(st.closed);
    assert_string_equal(st.pong, "sealed");
    assert_int_equal(st.out_bytes, 8388608);
    assert_string_equal(st.status, "{\"metadata\":{},\"status\":\"Success\"}");
    assert_true(open.seq > 8388608 / 16384);
    char tmp[64];
    struct pollfd pf = {c.fd, POLLIN, 0};
    assert_int_equal(poll(&pf, 1, 5000), 1);
    assert_int_equal(read(c.fd, tmp, sizeof tmp), 0);   /* EOF: nothing after the alert */
    ck_tlsrec_free(&open);
    ck_buf_free(&raw);
    ck_ws_free(&ws);
    cli_close(&c);
}

/* A client that stops reading under the hand-off: the command stalls (the pump's wire bound
 * holds with sealed records too) and this process does not grow; then every byte arrives,
 * sealed from sequence 0 on, and the close_notify last. */
static void test_handoff_slow_client(void **state)
{
    (void)state;
    ck_tlsrec_secret sec;
    char hdr[256];
    handoff_secret(&sec, hdr, sizeof hdr);
    char *rq = ws_request_with("command=head&command=-c&command=67108864&command=/dev/zero&"
                               "stdout=true&stderr=true", hdr);
    cli c;
    cli_open(&c, rq);
    free(rq);
    assert_non_null(strstr(head101, "\r\nX-Ckube-Seal: v1\r\n"));
    ck_tlsrec open;
    assert_int_equal(ck_tlsrec_init_secret(&open, &sec, false, NULL), 0);
    ck_buf raw;
    ck_buf_init(&raw, 0);
    ck_ws ws;
    ck_ws_init(&ws, false, 0);
    wsc st = {0};
    bool alert = false;
    while (st.out_bytes < (2u << 20) && handoff_read(&c, &open, &raw, &ws, &st, &alert, 5000))
        ;
    assert_true(st.out_bytes >= (2u << 20));
    long rss0 = rss_kib();
    usleep(1500 * 1000);
    long rss1 = rss_kib();
    assert_int_equal(children_named("head"), 1);
    assert_true(rss1 - rss0 < 32 * 1024);
    while (!alert && handoff_read(&c, &open, &raw, &ws, &st, &alert, 30000))
        ;
    assert_true(alert);
    assert_true(st.closed);
    assert_int_equal(st.out_bytes, 67108864);
    assert_string_equal(st.status, "{\"metadata\":{},\"status\":\"Success\"}");
    ck_tlsrec_free(&open);
    ck_buf_free(&raw);
    ck_ws_free(&ws);
    cli_close(&c);
}

/* A hand-off value the pump cannot use (a suite it does not seal): refused, the 101 does not
 * accept it and the output comes through the TLS session as before. */
static void test_handoff_refused(void **state)
{
    (void)state;
    char hdr[256] = "X-Ckube-Seal: v1; suite=1303; secret=";
    for (int i = 0; i < 32; i++)
        strcat(hdr, "00");
    strcat(hdr, "\r\n");
    char *rq = ws_request_with("command=head&command=-c&command=100000&command=/dev/zero&"
                               "stdout=true&stderr=true", hdr);
    wss s;
    memset(&s, 0, sizeof s);
    cli_open(&s.c, rq);
    free(rq);
    assert_null(strstr(head101, "X-Ckube-Seal"));
    ck_ws_init(&s.ws, false, 0);
    wss_feed(&s, s.c.rest.data, s.c.rest.len);
    wss_wait_closed(&s, 5000);
    assert_int_equal(s.st.out_bytes, 100000);
    wss_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_bulk_and_ping),
        cmocka_unit_test(test_slow_client_stalls),
        cmocka_unit_test(test_client_disconnects_mid_stream),
        cmocka_unit_test(test_spdy_ping_and_exit),
        cmocka_unit_test(test_handoff_sealed_output),
        cmocka_unit_test(test_handoff_slow_client),
        cmocka_unit_test(test_handoff_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
