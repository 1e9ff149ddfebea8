/* Unit tests for lib/websocket and lib/spdy: RFC vectors, round trips between the two roles,
 * byte-at-a-time feeding, fragmentation, limits, and bytes captured from the real kubectl. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "lib/spdy.h"
#include "lib/websocket.h"

/* ---- websocket ---- */

struct wsmsgs {
    int n;
    int op[16];
    char data[16][256];
    size_t len[16];
};

static int ws_collect(void *ctx, enum ck_ws_opcode op, const uint8_t *d, size_t len)
{
    struct wsmsgs *m = ctx;
    assert_true(m->n < 16);
    m->op[m->n] = op;
    m->len[m->n] = len;
    memcpy(m->data[m->n], d, len < 255 ? len : 255);
    m->n++;
    return 0;
}

static void test_ws_accept_key(void **state)
{
    char out[29];
    ck_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out);   /* RFC 6455 section 1.3 */
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_ws_pick_protocol(void **state)
{
    static const char *const ours[] = {"v5.channel.k8s.io", "v4.channel.k8s.io",
                                       "channel.k8s.io"};
    struct { const char *offered, *want; } cases[] = {
        {"v4.channel.k8s.io,v5.channel.k8s.io", "v5.channel.k8s.io"},
        {"v4.channel.k8s.io, base64.channel.k8s.io", "v4.channel.k8s.io"},
        {"v5.channel.k8s.io.x", NULL},
        {"", NULL},
        {NULL, NULL},
        {" channel.k8s.io ", "channel.k8s.io"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        const char *got = ck_ws_pick_protocol(cases[i].offered, ours, ARRAY_SIZE(ours));
        if (cases[i].want)
            assert_string_equal(got, cases[i].want);
        else
            assert_null(got);
    }
}

static void test_ws_rfc_masked_hello(void **state)
{
    /* RFC 6455 section 5.7: a single-frame masked text message "Hello" */
    const uint8_t f[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    ck_ws ws;
    ck_ws_init(&ws, true, 0);
    struct wsmsgs m = {0};
    for (size_t i = 0; i < sizeof f; i++)   /* a byte at a time */
        assert_int_equal(ck_ws_feed(&ws, f + i, 1, ws_collect, &m, NULL), 0);
    assert_int_equal(m.n, 1);
    assert_int_equal(m.op[0], CK_WS_TEXT);
    assert_int_equal(m.len[0], 5);
    assert_memory_equal(m.data[0], "Hello", 5);
    ck_ws_free(&ws);
    /* the same frame unmasked is what a server sends */
    ck_buf b;
    ck_buf_init(&b, 0);
    ck_ws_frame(&b, CK_WS_TEXT, false, "Hello", 5);
    const uint8_t want[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    ck_buf_free(&b);
}

struct chk {
    const uint8_t *want;
    size_t n;
    int seen;
};

static int ws_check(void *ctx, enum ck_ws_opcode op, const uint8_t *d, size_t len)
{
    struct chk *k = ctx;
    assert_int_equal(op, CK_WS_BINARY);
    assert_int_equal(len, k->n + 1);
    assert_int_equal(d[0], 1);
    if (k->n)
        assert_memory_equal(d + 1, k->want, k->n);
    k->seen++;
    return 0;
}

static void test_ws_roundtrip_sizes(void **state)
{
    size_t sizes[] = {0, 1, 7, 8, 9, 17, 124, 125, 126, 127, 65534, 65535, 65536, 200000};
    for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
        size_t n = sizes[i];
        uint8_t *payload = malloc(n + 1);
        for (size_t j = 0; j < n; j++)
            payload[j] = (uint8_t)(j * 7 + 3);
        for (int masked = 0; masked < 2; masked++) {
            ck_buf b;
            ck_buf_init(&b, 0);
            ck_ws_frame_prefixed(&b, CK_WS_BINARY, masked, 1, payload, n);
            ck_ws ws;
            ck_ws_init(&ws, masked, 0);
            struct chk c = {payload, n, 0};
            size_t half = b.len / 2;
            assert_int_equal(ck_ws_feed(&ws, b.data, half, ws_check, &c, NULL), 0);
            assert_int_equal(c.seen, 0);
            assert_int_equal(ck_ws_feed(&ws, b.data + half, b.len - half, ws_check, &c, NULL), 0);
            assert_int_equal(c.seen, 1);
            ck_ws_free(&ws);
            ck_buf_free(&b);
        }
        free(payload);
    }
}

static void test_ws_fragments_and_ping(void **state)
{
    /* client side: a fragmented binary message with a ping between fragments, sent masked */
    ck_buf b;
    ck_buf_init(&b, 0);
    uint8_t key[4] = {1, 2, 3, 4};
    struct { int op; bool fin; const char *d; } frames[] = {
        {CK_WS_BINARY, false, "abc"}, {CK_WS_PING, true, "p"}, {CK_WS_CONT, false, "def"},
        {CK_WS_CONT, true, "g"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(frames); i++) {
        size_t l = strlen(frames[i].d);
        uint8_t h[6] = {(uint8_t)((frames[i].fin ? 0x80 : 0) | frames[i].op), (uint8_t)(0x80 | l),
                        key[0], key[1], key[2], key[3]};
        ck_buf_add(&b, h, 6);
        for (size_t j = 0; j < l; j++) {
            uint8_t c = (uint8_t)frames[i].d[j] ^ key[j & 3];
            ck_buf_add(&b, &c, 1);
        }
    }
    ck_ws ws;
    ck_ws_init(&ws, true, 0);
    struct wsmsgs m = {0};
    assert_int_equal(ck_ws_feed(&ws, b.data, b.len, ws_collect, &m, NULL), 0);
    assert_int_equal(m.n, 2);
    assert_int_equal(m.op[0], CK_WS_PING);
    assert_memory_equal(m.data[0], "p", 1);
    assert_int_equal(m.op[1], CK_WS_BINARY);
    assert_int_equal(m.len[1], 7);
    assert_memory_equal(m.data[1], "abcdefg", 7);
    ck_ws_free(&ws);
    ck_buf_free(&b);
}

static void test_ws_errors(void **state)
{
    struct { bool server; size_t max; uint8_t f[12]; size_t n; int code; } cases[] = {
        {true, 0, {0x82, 0x01, 'x'}, 3, 1002},                       /* unmasked to a server */
        {false, 0, {0x82, 0x81, 0, 0, 0, 0, 'x'}, 7, 1002},          /* masked to a client */
        {false, 4, {0x82, 0x05, 1, 2, 3, 4, 5}, 7, 1009},            /* over the limit */
        {false, 0, {0x89, 0x7e, 0, 200}, 4, 1002},                   /* control frame > 125 */
        {false, 0, {0x09, 0x00}, 2, 1002},                           /* fragmented control */
        {false, 0, {0x80, 0x00}, 2, 1002},                           /* continuation alone */
        {false, 0, {0xc2, 0x00}, 2, 1002},                           /* RSV1 without extension */
        {false, 0, {0x83, 0x00}, 2, 1002},                           /* reserved opcode */
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        ck_ws ws;
        ck_ws_init(&ws, cases[i].server, cases[i].max);
        struct wsmsgs m = {0};
        ck_error *e = NULL;
        assert_int_equal(ck_ws_feed(&ws, cases[i].f, cases[i].n, ws_collect, &m, &e), -1);
        assert_non_null(e);
        assert_int_equal(ws.close_code, cases[i].code);
        assert_int_equal(m.n, 0);
        ck_error_free(e);
        ck_ws_free(&ws);
    }
}

static void test_ws_close_frame(void **state)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    ck_ws_close_frame(&b, true, 1000, "bye");
    ck_ws ws;
    ck_ws_init(&ws, true, 0);
    struct wsmsgs m = {0};
    assert_int_equal(ck_ws_feed(&ws, b.data, b.len, ws_collect, &m, NULL), 0);
    assert_int_equal(m.n, 1);
    assert_int_equal(m.op[0], CK_WS_CLOSE);
    assert_int_equal(m.len[0], 5);
    assert_int_equal((uint8_t)m.data[0][0] << 8 | (uint8_t)m.data[0][1], 1000);
    assert_true(ws.closed);
    ck_ws_free(&ws);
    ck_buf_free(&b);
}

/* ---- spdy ---- */

struct sframes {
    int n;
    ck_spdy_frame f[16];
    char hdr[16][8][2][64];
    char data[16][128];
};

static int spdy_collect(void *ctx, const ck_spdy_frame *f)
{
    struct sframes *s = ctx;
    assert_true(s->n < 16);
    s->f[s->n] = *f;
    for (size_t i = 0; i < f->nheaders && i < 8; i++) {
        snprintf(s->hdr[s->n][i][0], 64, "%s", f->headers[i].name);
        snprintf(s->hdr[s->n][i][1], 64, "%s", f->headers[i].value);
    }
    if (f->type == CK_SPDY_DATA)
        memcpy(s->data[s->n], f->data, f->len < 127 ? f->len : 127);
    s->f[s->n].headers = NULL;
    s->f[s->n].data = NULL;
    s->n++;
    return 0;
}

static void test_spdy_dictionary(void **state)
{
    size_t len;
    const uint8_t *d = ck_spdy_dictionary(&len);
    assert_int_equal(len, 1423);   /* the SPDY/3 dictionary's size */
    assert_memory_equal(d, "\0\0\0\7options\0\0\0\4head", 15);
    assert_memory_equal(d + len - 7, ",enq=0.", 7);
    /* the dictionary id a zlib stream announces (adler32 of the dictionary) */
    assert_int_equal(adler32(adler32(0, NULL, 0), d, (uInt)len), 0xe3c6a7c2);
}

static void test_spdy_roundtrip(void **state)
{
    ck_spdy client, server;
    ck_spdy_init(&client, false, 0);
    ck_spdy_init(&server, true, 0);
    ck_buf b;
    ck_buf_init(&b, 0);
    const ck_spdy_header h1[] = {{"streamType", "error"}, {"port", "8080"}, {"requestID", "0"}};
    const ck_spdy_header h2[] = {{"streamType", "data"}, {"port", "8080"}, {"requestID", "0"}};
    uint32_t id1 = ck_spdy_next_stream_id(&client), id2 = ck_spdy_next_stream_id(&client);
    assert_int_equal(id1, 1);
    assert_int_equal(id2, 3);
    ck_spdy_syn_stream(&client, &b, id1, 0, 0, 0, h1, 3);
    ck_spdy_syn_stream(&client, &b, id2, 0, 0, 0, h2, 3);   /* reuses the compression context */
    ck_spdy_data(&b, id2, CK_SPDY_FLAG_FIN, "GET /", 5);
    ck_spdy_ping(&b, 1);
    uint32_t ids[] = {CK_SPDY_SETTINGS_INITIAL_WINDOW_SIZE}, vals[] = {1 << 20};
    ck_spdy_settings(&b, ids, vals, 1);
    ck_spdy_window_update(&b, 0, 1000);
    ck_spdy_rst_stream(&b, id1, CK_SPDY_CANCEL);
    ck_spdy_goaway(&b, 0, 0);
    struct sframes *s = calloc(1, sizeof *s);
    for (size_t i = 0; i < b.len; i++)   /* byte at a time: partial frames wait */
        assert_int_equal(ck_spdy_feed(&server, b.data + i, 1, spdy_collect, s, NULL), 0);
    assert_int_equal(s->n, 8);
    assert_int_equal(s->f[0].type, CK_SPDY_SYN_STREAM);
    assert_int_equal(s->f[0].stream_id, 1);
    assert_int_equal(s->f[0].nheaders, 3);
    assert_string_equal(s->hdr[0][0][0], "streamtype");   /* names travel lowercase */
    assert_string_equal(s->hdr[0][0][1], "error");
    assert_string_equal(s->hdr[1][0][1], "data");
    assert_string_equal(s->hdr[1][1][1], "8080");
    assert_int_equal(s->f[2].type, CK_SPDY_DATA);
    assert_int_equal(s->f[2].flags, CK_SPDY_FLAG_FIN);
    assert_int_equal(s->f[2].len, 5);
    assert_memory_equal(s->data[2], "GET /", 5);
    assert_int_equal(s->f[3].type, CK_SPDY_PING);
    assert_int_equal(s->f[3].ping_id, 1);
    assert_int_equal(s->f[4].type, CK_SPDY_SETTINGS);
    assert_int_equal(server.peer_initial_window, 1 << 20);
    assert_int_equal(s->f[5].type, CK_SPDY_WINDOW_UPDATE);
    assert_int_equal(server.send_window, CK_SPDY_DEFAULT_WINDOW + 1000);
    assert_int_equal(s->f[6].type, CK_SPDY_RST_STREAM);
    assert_int_equal(s->f[6].status, CK_SPDY_CANCEL);
    assert_int_equal(s->f[7].type, CK_SPDY_GOAWAY);

    /* the reply direction has its own compression context */
    ck_buf_reset(&b);
    memset(s, 0, sizeof *s);
    const ck_spdy_header r[] = {{"a", "x\0y"}};   /* NUL-joined values arrive split */
    ck_spdy_syn_reply(&server, &b, 1, 0, r, 1);
    ck_spdy_syn_reply(&server, &b, 3, CK_SPDY_FLAG_FIN, r, 1);
    assert_int_equal(ck_spdy_feed(&client, b.data, b.len, spdy_collect, s, NULL), 0);
    assert_int_equal(s->n, 2);
    assert_int_equal(s->f[1].type, CK_SPDY_SYN_REPLY);
    assert_int_equal(s->f[1].stream_id, 3);
    assert_int_equal(s->f[1].flags, CK_SPDY_FLAG_FIN);
    free(s);
    ck_buf_free(&b);
    ck_spdy_free(&client);
    ck_spdy_free(&server);
}

static void test_spdy_errors(void **state)
{
    struct { uint8_t f[16]; size_t n; size_t max; } cases[] = {
        {{0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1}, 12, 0},   /* SPDY/2 */
        {{0x80, 0x03, 0x00, 0x06, 0, 0, 0, 3, 0, 0, 0}, 11, 0},      /* PING of 3 bytes */
        {{0x00, 0x00, 0x00, 0x01, 0, 0, 1, 0}, 8, 64},               /* DATA over max_frame */
        {{0x80, 0x03, 0x00, 0x02, 0, 0, 0, 6, 0, 0, 0, 1, 0x78, 0x01}, 14, 0}, /* bad zlib */
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        ck_spdy s;
        ck_spdy_init(&s, true, cases[i].max);
        ck_error *e = NULL;
        struct sframes *fr = calloc(1, sizeof *fr);
        assert_int_equal(ck_spdy_feed(&s, cases[i].f, cases[i].n, spdy_collect, fr, &e), -1);
        assert_non_null(e);
        assert_int_equal(fr->n, 0);
        ck_error_free(e);
        free(fr);
        ck_spdy_free(&s);
    }
}

static void test_spdy_flow_accounting(void **state)
{
    ck_spdy s;
    ck_spdy_init(&s, true, 0);
    ck_buf b;
    ck_buf_init(&b, 0);
    ck_spdy_consumed(&s, &b, 1, 40000);
    assert_int_equal(b.len, 0);                 /* off by default: spdystream ignores them */
    s.flow_control = true;
    ck_spdy_consumed(&s, &b, 1, 40000);
    assert_int_equal(b.len, 32);                /* stream update + session update */
    ck_spdy peer;
    ck_spdy_init(&peer, false, 0);
    struct sframes *fr = calloc(1, sizeof *fr);
    assert_int_equal(ck_spdy_feed(&peer, b.data, b.len, spdy_collect, fr, NULL), 0);
    assert_int_equal(fr->n, 2);
    assert_int_equal(fr->f[0].stream_id, 1);
    assert_int_equal(fr->f[0].delta, 40000);
    assert_int_equal(fr->f[1].stream_id, 0);
    free(fr);
    ck_buf_free(&b);
    ck_spdy_free(&peer);
    ck_spdy_free(&s);
}

/* ---- bytes captured from the real kubectl (tests/data/streams/, via a loopback recorder) ---- */

static char *read_capture(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "tests/data/streams/%s", name);
    char *data = NULL;
    if (ck_read_file(path, 1 << 20, &data, len) < 0) {
        /* run from elsewhere: the binary is ROOT/BUILD/tests/test_wire */
        char exe[400];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        assert_true(n > 0);
        exe[n] = '\0';
        for (int up = 0; up < 3; up++)
            *strrchr(exe, '/') = '\0';
        snprintf(path, sizeof path, "%s/tests/data/streams/%s", exe, name);
        assert_int_equal(ck_read_file(path, 1 << 20, &data, len), 0);
    }
    char *body = strstr(data, "\r\n\r\n");
    assert_non_null(body);
    body += 4;
    *len -= (size_t)(body - data);
    memmove(data, body, *len);
    return data;
}

static void test_capture_kubectl127_spdy_exec(void **state)
{
    /* kubectl 1.27 `exec sp -- echo hi`: SYN_STREAMs for error, stdout, stderr (v4) */
    size_t len;
    char *d = read_capture("spdy-1.27-exec-echo.client", &len);
    assert_memory_equal(d, "\x80\x03\x00\x01", 4);          /* SPDY/3 SYN_STREAM */
    assert_memory_equal(d + 18, "\x78\xf9\xe3\xc6\xa7\xc2", 6);   /* zlib, FDICT = SPDY/3 */
    ck_spdy s;
    ck_spdy_init(&s, true, 0);
    struct sframes *fr = calloc(1, sizeof *fr);
    assert_int_equal(ck_spdy_feed(&s, d, len, spdy_collect, fr, NULL), 0);
    int syn = 0;
    const char *want[] = {"error", "stdout", "stderr"};
    for (int i = 0; i < fr->n; i++) {
        if (fr->f[i].type != CK_SPDY_SYN_STREAM)
            continue;
        assert_int_equal(fr->f[i].stream_id, 2 * syn + 1);   /* client ids are odd */
        bool found = false;
        for (size_t h = 0; h < fr->f[i].nheaders && h < 8; h++)
            if (!strcmp(fr->hdr[i][h][0], "streamtype")) {
                assert_string_equal(fr->hdr[i][h][1], want[syn]);
                found = true;
            }
        assert_true(found);
        syn++;
    }
    assert_int_equal(syn, 3);
    assert_int_equal(s.in.len, 0);   /* every byte was a whole frame */
    free(fr);
    ck_spdy_free(&s);
    free(d);
}

static void test_capture_kubectl133_ws_stdin(void **state)
{
    /* kubectl 1.33 `echo hi | exec -i sp -- cat` over v5.channel.k8s.io: stdin "hi\n" on
     * channel 0, then the v5 close of channel 0, then a close frame */
    size_t len;
    char *d = read_capture("ws-1.33-exec-stdin.client", &len);
    ck_ws ws;
    ck_ws_init(&ws, true, 0);
    struct wsmsgs m = {0};
    assert_int_equal(ck_ws_feed(&ws, d, len, ws_collect, &m, NULL), 0);
    assert_int_equal(m.n, 3);
    assert_int_equal(m.op[0], CK_WS_BINARY);
    assert_int_equal(m.len[0], 4);
    assert_memory_equal(m.data[0], "\0hi\n", 4);
    assert_int_equal(m.op[1], CK_WS_BINARY);
    assert_int_equal(m.len[1], 2);
    assert_memory_equal(m.data[1], "\xff\0", 2);
    assert_int_equal(m.op[2], CK_WS_CLOSE);
    assert_true(ws.closed);
    ck_ws_free(&ws);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_accept_key),
        cmocka_unit_test(test_ws_pick_protocol),
        cmocka_unit_test(test_ws_rfc_masked_hello),
        cmocka_unit_test(test_ws_roundtrip_sizes),
        cmocka_unit_test(test_ws_fragments_and_ping),
        cmocka_unit_test(test_ws_errors),
        cmocka_unit_test(test_ws_close_frame),
        cmocka_unit_test(test_spdy_dictionary),
        cmocka_unit_test(test_spdy_roundtrip),
        cmocka_unit_test(test_spdy_errors),
        cmocka_unit_test(test_spdy_flow_accounting),
        cmocka_unit_test(test_capture_kubectl127_spdy_exec),
        cmocka_unit_test(test_capture_kubectl133_ws_stdin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
