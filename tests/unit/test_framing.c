/* Malformed input for the stream framings a peer controls: websocket (lib/websocket.h) and SPDY/3.1
 * (lib/spdy.h), as kubectl exec/attach/port-forward send them to the API server and kubelet.
 *
 * Two parts.  Tables of hand-made bad frames, each with the answer it must get (need more bytes,
 * a protocol error with its close code, or delivered).  Then deterministic mutation fuzzing of
 * valid frame sequences (xorshift; CK_FUZZ_SEED / CK_FUZZ_ITERS override): every feed must keep
 * the error contract (-1 with an error, otherwise none), end within a watchdog (a hang is a
 * failure), and give the same messages whether the bytes come in one piece or one at a time.
 * Memory errors are the sanitizer build's job (make asan). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "lib/error.h"
#include "lib/spdy.h"
#include "lib/util.h"
#include "lib/websocket.h"

static uint64_t rng = 88172645463325252ULL;
static long iters = 3000;
static const char *watchdog_what = "";

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t rndn(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

static void on_alarm(int sig)
{
    (void)sig;
    static const char m[] = "watchdog: a feed did not return (hang) in ";
    ssize_t w = write(2, m, sizeof m - 1);
    w = write(2, watchdog_what, strlen(watchdog_what));
    w = write(2, "\n", 1);
    (void)w;
    _exit(3);
}

static int setup(void **state)
{
    const char *s = getenv("CK_FUZZ_SEED"), *n = getenv("CK_FUZZ_ITERS");
    if (s && *s)
        rng = strtoull(s, NULL, 0) | 1;
    if (n && *n)
        iters = strtol(n, NULL, 0);
    signal(SIGALRM, on_alarm);
    return 0;
}

/* ---- websocket ------------------------------------------------------------------------------ */

/* What a feed delivered: "op:len:bytes|" per message, to compare two feeds. */
static int ws_record(void *ctx, enum ck_ws_opcode op, const uint8_t *d, size_t len)
{
    ck_buf *log = ctx;
    ck_buf_printf(log, "%d:%zu:", (int)op, len);
    ck_buf_add(log, d, len);
    ck_buf_add(log, "|", 1);
    return 0;
}

/* A masked (client) frame with the given first byte, payload and masking key 0. */
static size_t ws_raw(uint8_t *out, uint8_t b0, bool mask, const char *payload, size_t len)
{
    size_t n = 0;
    out[n++] = b0;
    if (len < 126) {
        out[n++] = (uint8_t)((mask ? 0x80 : 0) | len);
    } else {
        out[n++] = (uint8_t)((mask ? 0x80 : 0) | 126);
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    }
    if (mask) {
        memset(out + n, 0, 4);   /* a zero key leaves the payload as is */
        n += 4;
    }
    memcpy(out + n, payload, len);
    return n + len;
}

static void test_ws_malformed(void **state)
{
    uint8_t b[512];
    char big[200];
    memset(big, 'p', sizeof big);
    struct {
        const char *name;
        const uint8_t *in;
        size_t len;
        bool server;
        size_t max;
        int rc, close_code;      /* expected feed result; close code when rc is -1 */
        const char *delivered;   /* the record of delivered messages when rc >= 0 */
    } cases[] = {
        {"one byte", (const uint8_t *)"\x82", 1, true, 0, 0, 0, ""},
        {"16-bit length cut", (const uint8_t *)"\x82\xfe\x01", 3, true, 0, 0, 0, ""},
        {"64-bit length cut", (const uint8_t *)"\x82\xff\x00\x00\x00", 5, true, 0, 0, 0, ""},
        {"mask key cut", (const uint8_t *)"\x82\x83\x00\x00", 4, true, 0, 0, 0, ""},
        {"payload cut", (const uint8_t *)"\x82\x85\x00\x00\x00\x00" "ab", 8, true, 0, 0, 0, ""},
        {"reserved bits", (const uint8_t *)"\xc2\x80\x00\x00\x00\x00", 6, true, 0, -1, 1002, NULL},
        {"unmasked to server", (const uint8_t *)"\x82\x01x", 3, true, 0, -1, 1002, NULL},
        {"masked to client", (const uint8_t *)"\x82\x81\x00\x00\x00\x00x", 7, false, 0, -1, 1002,
         NULL},
        {"fragmented ping", (const uint8_t *)"\x09\x80\x00\x00\x00\x00", 6, true, 0, -1, 1002, NULL},
        {"unknown data opcode", (const uint8_t *)"\x83\x80\x00\x00\x00\x00", 6, true, 0, -1, 1002,
         NULL},
        {"unknown control opcode", (const uint8_t *)"\x8b\x80\x00\x00\x00\x00", 6, true, 0, -1,
         1002, NULL},
        {"continuation first", (const uint8_t *)"\x80\x80\x00\x00\x00\x00", 6, true, 0, -1, 1002,
         NULL},
        {"2^63 length", (const uint8_t *)"\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00", 10, true, 0,
         -1, 1009, NULL},
        {"2^64-1 length", (const uint8_t *)"\x82\xff\xff\xff\xff\xff\xff\xff\xff\xff", 10, true, 0,
         -1, 1009, NULL},
        {"over max_message", (const uint8_t *)"\x82\x91", 2, true, 16, -1, 1009, NULL},
        {"fragments over max_message",
         (const uint8_t *)"\x02\x8a\x00\x00\x00\x00" "0123456789"
                          "\x80\x8a\x00\x00\x00\x00" "0123456789",
         32, true, 16, -1, 1009, NULL},
        {"new message inside a fragmented one",
         (const uint8_t *)"\x02\x81\x00\x00\x00\x00" "a\x82\x81\x00\x00\x00\x00" "b", 14, true, 0, -1,
         1002, NULL},
        {"empty binary", (const uint8_t *)"\x82\x80\x00\x00\x00\x00", 6, true, 0, 0, 0, "2:0:|"},
        {"ping between fragments",
         (const uint8_t *)"\x02\x81\x00\x00\x00\x00" "a\x89\x80\x00\x00\x00\x00"
                          "\x80\x81\x00\x00\x00\x00" "b", 20, true, 0, 0, 0, "9:0:|2:2:ab|"},
        /* invalid UTF-8 in a text frame and a 1-byte close body are passed on: the
         * channel.k8s.io protocols carry bytes, and the tunnel closes on any close frame */
        {"invalid utf-8 text", (const uint8_t *)"\x81\x82\x00\x00\x00\x00\xc3\x28", 8, true, 0, 0,
         0, "1:2:\xc3\x28|"},
        {"1-byte close body", (const uint8_t *)"\x88\x81\x00\x00\x00\x00\x03", 7, true, 0, 0, 0,
         "8:1:\x03|"},
        {"close, then more", (const uint8_t *)"\x88\x80\x00\x00\x00\x00\x82\x80\x00\x00\x00\x00",
         12, true, 0, 0, 0, "8:0:|2:0:|"},
        {"control of 126 bytes", b, ws_raw(b, 0x89, true, big, 126), true, 0, -1, 1002, NULL},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        for (int bytewise = 0; bytewise < 2; bytewise++) {
            ck_ws ws;
            ck_ws_init(&ws, cases[i].server, cases[i].max);
            ck_buf log;
            ck_buf_init(&log, 0);
            ck_error *e = NULL;
            int rc = 0;
            if (bytewise) {
                for (size_t k = 0; k < cases[i].len && rc == 0; k++)
                    rc = ck_ws_feed(&ws, cases[i].in + k, 1, ws_record, &log, &e);
            } else {
                rc = ck_ws_feed(&ws, cases[i].in, cases[i].len, ws_record, &log, &e);
            }
            if (rc != cases[i].rc)
                fail_msg("ws case %s (bytewise %d): rc %d, want %d (%s)", cases[i].name, bytewise,
                         rc, cases[i].rc, e ? e->msg : "no error");
            if (rc < 0) {
                assert_non_null(e);
                assert_int_equal(e->code, CK_E_BAD_REQUEST);
                if (ws.close_code != cases[i].close_code)
                    fail_msg("ws case %s: close code %d, want %d", cases[i].name, ws.close_code,
                             cases[i].close_code);
            } else {
                assert_null(e);
                size_t dl = strlen(cases[i].delivered);
                if (log.len != dl || memcmp(log.data ? log.data : "", cases[i].delivered, dl))
                    fail_msg("ws case %s: delivered '%.*s', want '%s'", cases[i].name,
                             (int)log.len, log.data ? log.data : "", cases[i].delivered);
            }
            ck_error_free(e);
            ck_buf_free(&log);
            ck_ws_free(&ws);
        }
    }
}

/* Feed in one piece and byte by byte (or in random pieces): same result, same messages. */
static void ws_check(const uint8_t *in, size_t len, bool server, size_t max)
{
    bool bounded = max && len > max;
    ck_buf logs[2];
    int rcs[2];
    for (int mode = 0; mode < 2; mode++) {
        ck_ws ws;
        ck_ws_init(&ws, server, max);
        ck_buf_init(&logs[mode], 0);
        ck_error *e = NULL;
        int rc = 0;
        if (mode == 0) {
            rc = ck_ws_feed(&ws, in, len, ws_record, &logs[mode], &e);
        } else {
            for (size_t k = 0; k < len && rc == 0;) {
                size_t piece = 1 + rndn(7);
                if (piece > len - k)
                    piece = len - k;
                rc = ck_ws_feed(&ws, in + k, piece, ws_record, &logs[mode], &e);
                k += piece;
            }
        }
        if ((rc < 0) != (e != NULL))
            fail_msg("ws: rc %d with error %s", rc, e ? e->msg : "none");
        if (rc < 0 && ws.close_code != 1002 && ws.close_code != 1009)
            fail_msg("ws: protocol error with close code %d", ws.close_code);
        rcs[mode] = rc;
        ck_error_free(e);
        ck_ws_free(&ws);
    }
    /* a piece over the buffer bound fails at once, so a small bound compares only the rc */
    bool same_log = logs[0].len == logs[1].len &&
                    (!logs[0].len || !memcmp(logs[0].data, logs[1].data, logs[0].len));
    if ((!bounded && rcs[0] != rcs[1]) || (rcs[0] >= 0 && rcs[1] >= 0 && !same_log))
        fail_msg("ws: one piece rc %d (%zu bytes delivered) != pieces rc %d (%zu)", rcs[0],
                 logs[0].len, rcs[1], logs[1].len);
    ck_buf_free(&logs[0]);
    ck_buf_free(&logs[1]);
}

static void mutate(ck_buf *m)
{
    int edits = 1 + (int)rndn(4);
    for (int e = 0; e < edits && m->len > 1; e++) {
        size_t at = rndn(m->len);
        switch (rndn(5)) {
        case 0:
            m->data[at] = (char)rnd();
            break;
        case 1:
            m->data[at] ^= (char)(1u << rndn(8));
            break;
        case 2:
            memmove(m->data + at, m->data + at + 1, m->len - at - 1);
            m->len--;
            break;
        case 3:
            m->len = at;
            break;
        default: {
            char c = (char)rnd();
            ck_buf_add(m, &c, 1);
            memmove(m->data + at + 1, m->data + at, m->len - at - 1);
            m->data[at] = c;
        }
        }
    }
}

static void test_ws_fuzz(void **state)
{
    /* seeds: what kubectl and our relay send, both roles */
    ck_buf seeds[2];
    for (int role = 0; role < 2; role++) {
        bool mask = role == 0;   /* role 0: client frames for a server parser */
        ck_buf *s = &seeds[role];
        ck_buf_init(s, 0);
        ck_ws_frame_prefixed(s, CK_WS_BINARY, mask, 0, "ls -l", 5);
        ck_ws_frame(s, CK_WS_PING, mask, "p", 1);
        char mid[300];
        memset(mid, 'm', sizeof mid);
        ck_ws_frame(s, CK_WS_TEXT, mask, mid, sizeof mid);
        /* a fragmented message: first fragment, then the final continuation */
        size_t at = s->len;
        ck_ws_frame(s, CK_WS_BINARY, mask, "frag1", 5);
        s->data[at] &= 0x7f;
        at = s->len;
        ck_ws_frame(s, CK_WS_BINARY, mask, "frag2", 5);
        s->data[at] = (char)(0x80 | CK_WS_CONT);
        ck_ws_close_frame(s, mask, 1000, "bye");
    }
    for (long it = 0; it < iters; it++) {
        int role = (int)rndn(2);
        ck_buf m;
        ck_buf_init(&m, 0);
        ck_buf_add(&m, seeds[role].data, seeds[role].len);
        mutate(&m);
        watchdog_what = "websocket";
        alarm(10);
        ws_check((const uint8_t *)m.data, m.len, role == 0, it % 3 ? 0 : 64);
        alarm(0);
        ck_buf_free(&m);
    }
    ck_buf_free(&seeds[0]);
    ck_buf_free(&seeds[1]);
}

/* ---- SPDY ----------------------------------------------------------------------------------- */

static int spdy_record(void *ctx, const ck_spdy_frame *f)
{
    ck_buf *log = ctx;
    ck_buf_printf(log, "t%d f%d s%u", (int)f->type, f->flags, f->stream_id);
    for (size_t i = 0; i < f->nheaders; i++)
        ck_buf_printf(log, " %s=%s", f->headers[i].name, f->headers[i].value);
    if (f->type == CK_SPDY_DATA) {
        ck_buf_printf(log, " %zu:", f->len);
        ck_buf_add(log, f->data, f->len);
    }
    for (size_t i = 0; i < f->nsettings; i++)
        ck_buf_printf(log, " %u=%u", f->setting_ids[i], f->setting_values[i]);
    ck_buf_add(log, "|", 1);
    return 0;
}

/* zlib-compress raw with the SPDY dictionary; finish: end the zlib stream (final block + adler)
 * instead of the sync flush SPDY peers use. */
static void spdy_deflate(ck_buf *out, const void *raw, size_t len, bool finish, bool dict)
{
    z_stream z = {0};
    assert_int_equal(deflateInit(&z, Z_DEFAULT_COMPRESSION), Z_OK);
    if (dict) {
        size_t dl;
        const uint8_t *d = ck_spdy_dictionary(&dl);
        assert_int_equal(deflateSetDictionary(&z, d, (uInt)dl), Z_OK);
    }
    uint8_t chunk[65536];
    z.next_in = (Bytef *)raw;
    z.avail_in = (uInt)len;
    int rc;
    do {
        z.next_out = chunk;
        z.avail_out = sizeof chunk;
        rc = deflate(&z, finish ? Z_FINISH : Z_SYNC_FLUSH);
        ck_buf_add(out, chunk, sizeof chunk - z.avail_out);
    } while (z.avail_out == 0 || (finish && rc != Z_STREAM_END));
    deflateEnd(&z);
}

static void put32(ck_buf *b, uint32_t v)
{
    uint8_t p[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    ck_buf_add(b, p, 4);
}

/* A control frame: head + body. */
static void spdy_ctrl(ck_buf *out, unsigned version, unsigned type, uint8_t flags,
                      const void *body, size_t len)
{
    uint8_t h[8] = {(uint8_t)(0x80 | (version >> 8)), (uint8_t)version, (uint8_t)(type >> 8),
                    (uint8_t)type, flags, (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                    (uint8_t)len};
    ck_buf_add(out, h, 8);
    ck_buf_add(out, body, len);
}

/* A SYN_STREAM (id 1) whose header block is the compressed nv bytes given. */
static void spdy_syn_raw(ck_buf *out, const ck_buf *nv, bool finish, bool dict)
{
    ck_buf body;
    ck_buf_init(&body, 0);
    put32(&body, 1);
    put32(&body, 0);
    ck_buf_add(&body, "\0\0", 2);
    spdy_deflate(&body, nv->data, nv->len, finish, dict);
    spdy_ctrl(out, 3, CK_SPDY_SYN_STREAM, 0, body.data, body.len);
    ck_buf_free(&body);
}

/* An uncompressed name/value block: count, then length-prefixed strings. */
static void nv_block(ck_buf *nv, uint32_t count, const char *const *fields, size_t nfields)
{
    ck_buf_init(nv, 0);
    put32(nv, count);
    for (size_t i = 0; i < nfields; i++) {
        put32(nv, (uint32_t)strlen(fields[i]));
        ck_buf_addstr(nv, fields[i]);
    }
}

struct spdy_case {
    char name[64];
    ck_buf in;
    int rc;
    const char *delivered;   /* record when rc >= 0 */
};

static void spdy_case_add(struct spdy_case *c, size_t *n, const char *name, int rc,
                          const char *delivered)
{
    snprintf(c[*n].name, sizeof c[*n].name, "%s", name);
    c[*n].rc = rc;
    c[*n].delivered = delivered;
    (*n)++;
}

static void test_spdy_malformed(void **state)
{
    static struct spdy_case cases[32];
    size_t n = 0;
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
        ck_buf_init(&cases[i].in, 0);
    ck_buf nv;
    const char *const ok_fields[] = {"streamtype", "error"};

    ck_buf_add(&cases[n].in, "\x80\x03\x00\x06\x00\x00\x00", 7);
    spdy_case_add(cases, &n, "7 bytes", 0, "");
    ck_buf_add(&cases[n].in, "\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00", 10);
    spdy_case_add(cases, &n, "body cut", 0, "");
    spdy_ctrl(&cases[n].in, 2, CK_SPDY_PING, 0, "\0\0\0\1", 4);
    spdy_case_add(cases, &n, "version 2", -1, NULL);
    ck_buf_add(&cases[n].in, "\x00\x00\x00\x01\x00\xff\xff\xff", 8);
    spdy_case_add(cases, &n, "DATA over max_frame", -1, NULL);
    spdy_ctrl(&cases[n].in, 3, CK_SPDY_SYN_STREAM, 0, "\0\0\0\1\0\0\0\0\0", 9);
    spdy_case_add(cases, &n, "SYN_STREAM of 9 bytes", -1, NULL);
    spdy_ctrl(&cases[n].in, 3, CK_SPDY_SYN_REPLY, 0, "\0\0\0", 3);
    spdy_case_add(cases, &n, "SYN_REPLY of 3 bytes", -1, NULL);
    spdy_ctrl(&cases[n].in, 3, CK_SPDY_RST_STREAM, 0, "\0\0\0\1\0\0\0", 7);
    spdy_case_add(cases, &n, "RST_STREAM of 7 bytes", -1, NULL);
    spdy_ctrl(&cases[n].in, 3, CK_SPDY_PING, 0, "\0\0\0\1\0", 5);
    spdy_case_add(cases, &n, "PING of 5 bytes", -1, NULL);
    spdy_ctrl(&cases[n].in, 3, CK_SPDY_GOAWAY, 0, "\0\0\0\1", 4);
    spdy_case_add(cases, &n, "GOAWAY of 4 bytes", -1, NULL);
    spdy_ctrl(&cases[n].in, 3, CK_SPDY_WINDOW_UPDATE, 0, "\0\0\0\1\0\0\0\1\0", 9);
    spdy_case_add(cases, &n, "WINDOW_UPDATE of 9 bytes", -1, NULL);
    spdy_ctrl(&cases[n].in, 3, CK_SPDY_SETTINGS, 0, "\0\0\0\2\0\0\0\7\0\0\0\1", 12);
    spdy_case_add(cases, &n, "SETTINGS count past its length", -1, NULL);
    {
        ck_buf b;
        ck_buf_init(&b, 0);
        put32(&b, 65);
        for (int i = 0; i < 65; i++) {
            put32(&b, 7);
            put32(&b, 1);
        }
        spdy_ctrl(&cases[n].in, 3, CK_SPDY_SETTINGS, 0, b.data, b.len);
        ck_buf_free(&b);
    }
    spdy_case_add(cases, &n, "SETTINGS with 65 entries", -1, NULL);
    spdy_ctrl(&cases[n].in, 3, 0x0a, 0, "abc", 3);
    spdy_ctrl(&cases[n].in, 3, CK_SPDY_PING, 0, "\0\0\0\1", 4);
    spdy_case_add(cases, &n, "unknown control type skipped", 0, "t6 f0 s0|");
    spdy_ctrl(&cases[n].in, 3, CK_SPDY_SYN_STREAM, 0, "\0\0\0\1\0\0\0\0\0\0garbage!", 18);
    spdy_case_add(cases, &n, "header block not zlib", -1, NULL);
    nv_block(&nv, 1, ok_fields, 2);
    spdy_syn_raw(&cases[n].in, &nv, false, false);
    ck_buf_free(&nv);
    spdy_case_add(cases, &n, "header block without the dictionary", 0, "t1 f0 s1 streamtype=error|");
    {
        /* zlib asks for a dictionary, but not SPDY's */
        z_stream z = {0};
        assert_int_equal(deflateInit(&z, Z_DEFAULT_COMPRESSION), Z_OK);
        assert_int_equal(deflateSetDictionary(&z, (const Bytef *)"other", 5), Z_OK);
        nv_block(&nv, 1, ok_fields, 2);
        uint8_t out[512];
        z.next_in = (Bytef *)nv.data;
        z.avail_in = (uInt)nv.len;
        z.next_out = out;
        z.avail_out = sizeof out;
        deflate(&z, Z_SYNC_FLUSH);
        ck_buf body;
        ck_buf_init(&body, 0);
        ck_buf_add(&body, "\0\0\0\1\0\0\0\0\0\0", 10);
        ck_buf_add(&body, out, sizeof out - z.avail_out);
        spdy_ctrl(&cases[n].in, 3, CK_SPDY_SYN_STREAM, 0, body.data, body.len);
        ck_buf_free(&body);
        ck_buf_free(&nv);
        deflateEnd(&z);
    }
    spdy_case_add(cases, &n, "header block with another dictionary", -1, NULL);
    nv_block(&nv, 1, ok_fields, 2);
    spdy_syn_raw(&cases[n].in, &nv, true, true);
    spdy_ctrl(&cases[n].in, 3, CK_SPDY_PING, 0, "\0\0\0\1", 4);
    ck_buf_free(&nv);
    spdy_case_add(cases, &n, "zlib stream ended", 0, "t1 f0 s1 streamtype=error|t6 f0 s0|");
    {
        /* a complete zlib stream followed by more bytes in the same header block */
        nv_block(&nv, 1, ok_fields, 2);
        ck_buf body;
        ck_buf_init(&body, 0);
        ck_buf_add(&body, "\0\0\0\1\0\0\0\0\0\0", 10);
        spdy_deflate(&body, nv.data, nv.len, true, true);
        ck_buf_add(&body, "\x00\x00\xff\xff", 4);
        spdy_ctrl(&cases[n].in, 3, CK_SPDY_SYN_STREAM, 0, body.data, body.len);
        ck_buf_free(&body);
        ck_buf_free(&nv);
    }
    spdy_case_add(cases, &n, "bytes after the zlib stream end", -1, NULL);
    nv_block(&nv, 257, NULL, 0);
    spdy_syn_raw(&cases[n].in, &nv, false, true);
    ck_buf_free(&nv);
    spdy_case_add(cases, &n, "257 header pairs", -1, NULL);
    nv_block(&nv, 2, ok_fields, 2);
    spdy_syn_raw(&cases[n].in, &nv, false, true);
    ck_buf_free(&nv);
    spdy_case_add(cases, &n, "count past the pairs", -1, NULL);
    {
        const char *const f[] = {"", "x"};
        nv_block(&nv, 1, f, 2);
    }
    spdy_syn_raw(&cases[n].in, &nv, false, true);
    ck_buf_free(&nv);
    spdy_case_add(cases, &n, "empty header name", -1, NULL);
    nv_block(&nv, 1, ok_fields, 1);
    put32(&nv, 0xffffffff);
    spdy_syn_raw(&cases[n].in, &nv, false, true);
    ck_buf_free(&nv);
    spdy_case_add(cases, &n, "value length 2^32-1", -1, NULL);
    spdy_syn_raw(&cases[n].in, &(ck_buf){.data = "\0\0", .len = 2}, false, true);
    spdy_case_add(cases, &n, "block shorter than its count", -1, NULL);
    {
        /* 300 KiB of header value: over the 256 KiB inflated bound (a zlib bomb's shape) */
        size_t vl = 300 * 1024;
        char *v = xmalloc(vl + 1);
        memset(v, 'a', vl);
        v[vl] = 0;
        const char *const f[] = {"x", v};
        nv_block(&nv, 1, f, 2);
        spdy_syn_raw(&cases[n].in, &nv, false, true);
        ck_buf_free(&nv);
        free(v);
    }
    spdy_case_add(cases, &n, "header block inflating past 256 KiB", -1, NULL);
    ck_buf_init(&nv, 0);   /* value "80\081": two values of one name */
    put32(&nv, 1);
    put32(&nv, 4);
    ck_buf_add(&nv, "Port", 4);
    put32(&nv, 5);
    ck_buf_add(&nv, "80\0" "81", 5);
    spdy_syn_raw(&cases[n].in, &nv, false, true);
    ck_buf_free(&nv);
    spdy_case_add(cases, &n, "two values, upper-case name", 0, "t1 f0 s1 port=80 port=81|");

    for (size_t i = 0; i < n; i++) {
        for (int bytewise = 0; bytewise < 2; bytewise++) {
            ck_spdy s;
            ck_spdy_init(&s, true, 64 * 1024);
            ck_buf log;
            ck_buf_init(&log, 0);
            ck_error *e = NULL;
            int rc = 0;
            watchdog_what = cases[i].name;
            alarm(10);
            if (bytewise) {
                for (size_t k = 0; k < cases[i].in.len && rc == 0; k++)
                    rc = ck_spdy_feed(&s, cases[i].in.data + k, 1, spdy_record, &log, &e);
            } else {
                rc = ck_spdy_feed(&s, cases[i].in.data, cases[i].in.len, spdy_record, &log, &e);
            }
            alarm(0);
            if (rc != cases[i].rc)
                fail_msg("spdy case %s (bytewise %d): rc %d, want %d (%s)", cases[i].name,
                         bytewise, rc, cases[i].rc, e ? e->msg : "no error");
            if (rc < 0) {
                assert_non_null(e);
                assert_int_equal(e->code, CK_E_BAD_REQUEST);
            } else {
                assert_null(e);
                size_t dl = strlen(cases[i].delivered);
                if (log.len != dl || memcmp(log.data ? log.data : "", cases[i].delivered, dl))
                    fail_msg("spdy case %s: delivered '%.*s', want '%s'", cases[i].name,
                             (int)log.len, log.data ? log.data : "", cases[i].delivered);
            }
            ck_error_free(e);
            ck_buf_free(&log);
            ck_spdy_free(&s);
        }
    }
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
        ck_buf_free(&cases[i].in);
}

static void spdy_check(const uint8_t *in, size_t len)
{
    ck_buf logs[2];
    int rcs[2];
    for (int mode = 0; mode < 2; mode++) {
        ck_spdy s;
        ck_spdy_init(&s, true, 64 * 1024);
        ck_buf_init(&logs[mode], 0);
        ck_error *e = NULL;
        int rc = 0;
        if (mode == 0) {
            rc = ck_spdy_feed(&s, in, len, spdy_record, &logs[mode], &e);
        } else {
            for (size_t k = 0; k < len && rc == 0;) {
                size_t piece = 1 + rndn(9);
                if (piece > len - k)
                    piece = len - k;
                rc = ck_spdy_feed(&s, in + k, piece, spdy_record, &logs[mode], &e);
                k += piece;
            }
        }
        if ((rc < 0) != (e != NULL))
            fail_msg("spdy: rc %d with error %s", rc, e ? e->msg : "none");
        rcs[mode] = rc;
        ck_error_free(e);
        ck_spdy_free(&s);
    }
    if (rcs[0] != rcs[1] || logs[0].len != logs[1].len ||
        (logs[0].len && memcmp(logs[0].data, logs[1].data, logs[0].len)))
        fail_msg("spdy: one piece rc %d (%zu bytes delivered) != pieces rc %d (%zu)", rcs[0],
                 logs[0].len, rcs[1], logs[1].len);
    ck_buf_free(&logs[0]);
    ck_buf_free(&logs[1]);
}

static void test_spdy_fuzz(void **state)
{
    /* a kubectl exec session as the client sends it */
    ck_spdy c;
    ck_spdy_init(&c, false, 0);
    ck_buf seed;
    ck_buf_init(&seed, 0);
    const uint32_t ids[] = {CK_SPDY_SETTINGS_INITIAL_WINDOW_SIZE}, vals[] = {1 << 20};
    ck_spdy_settings(&seed, ids, vals, 1);
    const ck_spdy_header h1[] = {{"streamType", "error"}, {"requestID", "0"}};
    const ck_spdy_header h2[] = {{"streamtype", "stdin"}, {"requestid", "0"}, {"x", "a\0b"}};
    ck_spdy_syn_stream(&c, &seed, 1, 0, 0, 0, h1, 2);
    ck_spdy_syn_stream(&c, &seed, 3, 0, 0, 0, h2, 3);
    ck_spdy_data(&seed, 3, 0, "echo hi\n", 8);
    ck_spdy_ping(&seed, 1);
    ck_spdy_window_update(&seed, 0, 4096);
    ck_spdy_headers(&c, &seed, 3, CK_SPDY_FLAG_FIN, h1, 1);
    ck_spdy_data(&seed, 3, CK_SPDY_FLAG_FIN, NULL, 0);
    ck_spdy_rst_stream(&seed, 1, CK_SPDY_CANCEL);
    ck_spdy_goaway(&seed, 3, 0);
    ck_spdy_free(&c);
    for (long it = 0; it < iters; it++) {
        ck_buf m;
        ck_buf_init(&m, 0);
        ck_buf_add(&m, seed.data, seed.len);
        mutate(&m);
        watchdog_what = "spdy fuzz";
        alarm(10);
        spdy_check((const uint8_t *)m.data, m.len);
        alarm(0);
        ck_buf_free(&m);
    }
    ck_buf_free(&seed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_malformed),
        cmocka_unit_test(test_ws_fuzz),
        cmocka_unit_test(test_spdy_malformed),
        cmocka_unit_test(test_spdy_fuzz),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
