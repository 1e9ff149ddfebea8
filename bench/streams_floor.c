/* streams_floor - the cheapest server kubectl can exec and port-forward through: kubectl's ceiling.
 *
 * Usage: streams_floor CERT KEY PORTFILE [MIB]
 * Listens on 127.0.0.1 (a free port, written to PORTFILE) with TLS (OpenSSL, the same cert the
 * API server serves, TLS 1.3 AES-128-GCM preferred as httpd does), one thread per connection,
 * blocking I/O, and answers just enough of the API for `kubectl exec POD -- ...` and `kubectl
 * port-forward pod/POD L:R`: discovery (/api, /api/v1, /apis), GET of any pod (Running, one
 * container "main"), and the upgrades:
 *   exec:         websocket v5/v4.channel.k8s.io (kubectl 1.30+) or SPDY/3.1 v4.channel.k8s.io
 *                 (1.27-1.29): MIB MiB (default 100) on stdout from memory, then a Success status;
 *   port-forward: SPDY/3.1 portforward.k8s.io, raw (1.27-1.30) or inside websocket messages
 *                 (1.31+): each data stream that sends a request gets an HTTP/1.1 200 with MIB MiB
 *                 of body, then FIN on its data and error streams.
 * The command, the port and the request are ignored.  Framing comes from src/lib (websocket.h,
 * spdy.h), so the bytes on the wire are the shape our kubelet sends; nothing is relayed, no
 * process runs: what kubectl reaches here is what kubectl itself can take on this machine.
 * Knobs (environment): FLOOR_MSG bytes per websocket message / SPDY DATA frame (default 65536,
 * as src/streams), FLOOR_WBUF bytes of a buffering BIO under TLS (default 0: OpenSSL writes each
 * 16 KiB record with its own write(2); N > 0 gathers records into writes of up to N bytes),
 * FLOOR_VERBOSE=1 logs each request and each transfer's time to stderr.
 * Session 10's knobs (all off unless set; docs/streams.md "Is the floor a ceiling?"):
 *   FLOOR_SNDBUF=N     SO_SNDBUFFORCE of N bytes on each client socket;
 *   FLOOR_NODELAY=0    leave Nagle on (default: TCP_NODELAY, as httpd);
 *   FLOOR_LOWAT=N      TCP_NOTSENT_LOWAT of N bytes;
 *   FLOOR_CPU=N        the connection's thread pinned to CPU N (sched_setaffinity);
 *   FLOOR_PRESEAL=1    exec only: after the upgrade (and, for SPDY, the streams) a KeyUpdate
 *                      through OpenSSL, then the whole output (frames, status, close_notify)
 *                      sealed by lib/tlsrec into one buffer (touched at start-up) before its
 *                      first byte is written, so the server spends no cipher CPU during the
 *                      stream; anything sent after that is sealed the same way;
 *   FLOOR_PRESEAL=2    websocket exec (SPDY: as 1): the same buffer, sealed by a second thread
 *                      while the connection's thread writes what is sealed so far (the sealing
 *                      runs ahead of kubectl at AES speed and is over early in the stream; no
 *                      wait before the first byte);
 *   FLOOR_WCHUNK=N     with FLOOR_PRESEAL: bytes per write(2) (default 0: the whole buffer in
 *                      one blocking send; 16406 = one full 16 KiB record per write);
 *   FLOOR_SCHED=idle|batch  the connection's thread under SCHED_IDLE or SCHED_BATCH (it yields
 *                      the CPU to kubectl's threads whenever they are runnable);
 *   FLOOR_TLS12=1      TLS 1.2 at most (ECDHE-ECDSA-AES128-GCM-SHA256 with kubectl; no pre-seal).
 * Not a server for anything else: no authentication, no limits beyond bounded request heads.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/spdy.h"
#include "lib/tlsrec.h"
#include "lib/util.h"
#include "lib/websocket.h"

#define HEAD_MAX 65536

static SSL_CTX *ctx;
static uint64_t payload_bytes = 100ull << 20;
static size_t msg_size = 65536, wbuf_size;
static bool verbose;
static int sndbuf, nodelay = 1, lowat, pin_cpu = -1;
static int preseal;
static int sched_policy = -1;
static size_t wchunk;
static uint8_t *pre_buf;          /* the pre-sealed output, allocated and touched at start-up */
static size_t pre_cap;
static pthread_mutex_t pre_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t pattern[1 << 16];

typedef struct conn {
    int fd;
    SSL *ssl;
    BIO *wbio;           /* the buffering BIO when FLOOR_WBUF is set, else NULL */
    char head[HEAD_MAX];
    size_t hlen;         /* bytes in head (a request head, then leftover protocol bytes) */
    int64_t t0;
    ck_tlsrec rec;       /* FLOOR_PRESEAL: our own records after the KeyUpdate */
    bool sealing;        /* every send goes through rec */
    bool collecting;     /* sends are sealed into pre_buf, written by pre_flush */
    size_t pre_len;      /* FLOOR_PRESEAL=2: published to the writer with release stores */
    bool async;          /* FLOOR_PRESEAL=2: a sealing thread fills pre_buf */
    bool produced;       /* ... and has finished (release store) */
    bool alert_sent;     /* our close_notify is in pre_buf already */
    int64_t t_sealed;
} conn;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int write_all(int fd, const uint8_t *p, size_t n, size_t chunk)
{
    while (n) {
        size_t k = chunk && chunk < n ? chunk : n;
        ssize_t w = send(fd, p, k, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Seal n bytes as application-data records of up to 16 KiB, into pre_buf (collecting) or a
 * scratch buffer written at once. */
static int seal_send(conn *c, const uint8_t *p, size_t n, uint8_t type)
{
    static __thread uint8_t scratch[CK_TLSREC_SEALED(CK_TLSREC_MAX_PLAIN) * 4];
    size_t sl = 0;
    do {
        size_t k = n < CK_TLSREC_MAX_PLAIN ? n : CK_TLSREC_MAX_PLAIN;
        uint8_t *out;
        if (c->collecting) {
            if (c->pre_len + CK_TLSREC_SEALED(k) > pre_cap)
                return -1;
            out = pre_buf + c->pre_len;
        } else {
            if (sl + CK_TLSREC_SEALED(k) > sizeof scratch) {
                if (write_all(c->fd, scratch, sl, wchunk) < 0)
                    return -1;
                sl = 0;
            }
            out = scratch + sl;
            sl += CK_TLSREC_SEALED(k);
        }
        ck_error *e = NULL;
        if (ck_tlsrec_seal(&c->rec, type, p, k, out, &e) < 0) {
            ck_error_free(e);
            return -1;
        }
        if (c->collecting)   /* the record is complete before the writer may see it */
            __atomic_store_n(&c->pre_len, c->pre_len + CK_TLSREC_SEALED(k), __ATOMIC_RELEASE);
        p += k;
        n -= k;
    } while (n);
    return sl ? write_all(c->fd, scratch, sl, wchunk) : 0;
}

/* FLOOR_PRESEAL: KeyUpdate through OpenSSL (its last record), our own records from then on, and
 * every send collected into pre_buf until pre_flush.  -1 if that is not possible (not TLS 1.3
 * AES-GCM, or pre_buf busy): the stream then goes through OpenSSL as without the knob. */
static int pre_start(conn *c)
{
    ck_error *e = NULL;
    if (!preseal || pthread_mutex_trylock(&pre_lock) != 0)
        return -1;
    if (SSL_key_update(c->ssl, SSL_KEY_UPDATE_NOT_REQUESTED) != 1 ||
        SSL_do_handshake(c->ssl) != 1 || (c->wbio && BIO_flush(c->wbio) <= 0) ||
        ck_tlsrec_init(&c->rec, c->ssl, true, &e) < 0) {
        ck_error_free(e);
        ERR_clear_error();
        pthread_mutex_unlock(&pre_lock);
        fprintf(stderr, "floor: pre-seal not possible, through OpenSSL\n");
        return -1;
    }
    c->sealing = c->collecting = true;
    c->pre_len = 0;
    return 0;
}

/* FLOOR_PRESEAL=2: write pre_buf as the sealing thread fills it, until it is done */
static int pre_follow(conn *c)
{
    size_t done = 0;
    int rc = 0;
    for (;;) {
        bool fin = __atomic_load_n(&c->produced, __ATOMIC_ACQUIRE);
        size_t avail = __atomic_load_n(&c->pre_len, __ATOMIC_ACQUIRE);
        if (avail > done) {
            size_t n = avail - done;
            if (rc == 0 && write_all(c->fd, pre_buf + done, n, wchunk) < 0)
                rc = -1;   /* keep following: the producer owns pre_buf until it is done */
            done = avail;
        } else if (fin) {
            return rc;
        } else {
            usleep(20);   /* only before the first records: sealing outruns the socket */
        }
    }
}

static int pre_flush(conn *c)
{
    if (!c->collecting)
        return 0;
    if (c->async) {   /* written by pre_follow already */
        c->collecting = false;
        pthread_mutex_unlock(&pre_lock);
        return 0;
    }
    c->collecting = false;
    c->t_sealed = now_us();
    int rc = write_all(c->fd, pre_buf, c->pre_len, wchunk);
    pthread_mutex_unlock(&pre_lock);
    return rc;
}

static int tls_send(conn *c, const void *p, size_t n)
{
    if (c->sealing)
        return n ? seal_send(c, p, n, CK_TLSREC_APPDATA) : 0;
    if (n && SSL_write(c->ssl, p, (int)n) <= 0)
        return -1;
    if (c->wbio && BIO_flush(c->wbio) <= 0)
        return -1;
    return 0;
}

static int send_buf(conn *c, ck_buf *b)
{
    int rc = tls_send(c, b->data, b->len);
    ck_buf_reset(b);
    return rc;
}

/* Reads one request head into c->head; returns its length (through "\r\n\r\n"), 0 at EOF. */
static size_t read_head(conn *c)
{
    for (;;) {
        char *e = c->hlen >= 4 ? memmem(c->head, c->hlen, "\r\n\r\n", 4) : NULL;
        if (e)
            return (size_t)(e - c->head) + 4;
        if (c->hlen == sizeof c->head)
            return 0;
        int r = SSL_read(c->ssl, c->head + c->hlen, (int)(sizeof c->head - c->hlen));
        if (r <= 0)
            return 0;
        c->hlen += (size_t)r;
    }
}

/* A header's value in a head (first occurrence, case-insensitive name), copied to out. */
static bool header(const char *head, size_t len, const char *name, char *out, size_t outsz)
{
    size_t nl = strlen(name);
    for (const char *p = head; p < head + len;) {
        const char *e = memmem(p, (size_t)(head + len - p), "\r\n", 2);
        if (!e)
            break;
        if ((size_t)(e - p) > nl && p[nl] == ':' && !strncasecmp(p, name, nl)) {
            const char *v = p + nl + 1;
            while (v < e && *v == ' ')
                v++;
            snprintf(out, outsz, "%.*s", (int)(e - v), v);
            return true;
        }
        p = e + 2;
    }
    return false;
}

/* Whether any line of a header lists token (X-Stream-Protocol-Version comes once per version). */
static bool header_has(const char *head, size_t len, const char *name, const char *token)
{
    size_t nl = strlen(name);
    for (const char *p = head; p < head + len;) {
        const char *e = memmem(p, (size_t)(head + len - p), "\r\n", 2);
        if (!e)
            break;
        if ((size_t)(e - p) > nl && p[nl] == ':' && !strncasecmp(p, name, nl) &&
            memmem(p + nl, (size_t)(e - p - nl), token, strlen(token)))
            return true;
        p = e + 2;
    }
    return false;
}

static int respond(conn *c, int status, const char *body)
{
    char h[256];
    int n = snprintf(h, sizeof h, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n", status, status == 200 ? "OK" : "Not Found",
                     strlen(body));
    ck_buf b;
    ck_buf_init(&b, 0);
    ck_buf_add(&b, h, (size_t)n);
    ck_buf_addstr(&b, body);
    int rc = send_buf(c, &b);
    ck_buf_free(&b);
    return rc;
}

/* The output: payload_bytes in frames of msg_size, laid out in ~1 MiB batches that are written
 * with one SSL_write each (so TLS records are full 16 KiB across frame boundaries, as httpd
 * writes them).  head(out, n) writes one frame's head for n payload bytes and returns its size. */
typedef size_t (*head_fn)(void *ctx, uint8_t *out, size_t n);

static int send_payload(conn *c, head_fn head, void *hctx, const char *prefix, size_t plen)
{
    size_t per = (1u << 20) / msg_size;
    if (per == 0)
        per = 1;
    size_t cap = per * (msg_size + 32) + plen;
    uint8_t *batch = xmalloc(cap);
    uint64_t left = payload_bytes;
    int rc = 0;
    bool first = true;
    while (left > 0 && rc == 0) {
        size_t off = 0;
        if (first && plen) {   /* e.g. port-forward's HTTP response head, a frame of its own */
            off += head(hctx, batch, plen);
            memcpy(batch + off, prefix, plen);
            off += plen;
        }
        first = false;
        for (size_t i = 0; i < per && left > 0; i++) {
            size_t n = left < msg_size ? (size_t)left : msg_size;
            off += head(hctx, batch + off, n);
            for (size_t k = 0; k < n; k += sizeof pattern)
                memcpy(batch + off + k, pattern, n - k < sizeof pattern ? n - k : sizeof pattern);
            off += n;
            left -= n;
        }
        rc = tls_send(c, batch, off);
    }
    free(batch);
    return rc;
}

static size_t ws_head(void *hctx, uint8_t *out, size_t n)
{
    (void)hctx;
    size_t hl = ck_ws_server_head(out, CK_WS_BINARY, n + 1);
    out[hl] = 1;   /* stdout */
    return hl + 1;
}

typedef struct spdy_ctx {
    uint32_t id;
    bool in_ws;   /* each SPDY frame inside a websocket binary message */
} spdy_ctx;

static size_t spdy_head(void *hctx, uint8_t *out, size_t n)
{
    spdy_ctx *s = hctx;
    size_t hl = s->in_ws ? ck_ws_server_head(out, CK_WS_BINARY, n + 8) : 0;
    ck_spdy_data_head(out + hl, s->id, 0, n);
    return hl + 8;
}

/* After the last byte: half-close and wait (bounded) for the client to close, so that no unread
 * input turns our close into a reset that could cut the client's reading short. */
static void finish(conn *c)
{
    if (c->sealing) {   /* OpenSSL's write state is behind ours: our own close_notify */
        static const uint8_t alert[2] = {1, 0};
        if (!c->alert_sent)
            seal_send(c, alert, sizeof alert, CK_TLSREC_ALERT);
        pre_flush(c);
    } else {
        SSL_shutdown(c->ssl);
    }
    if (c->wbio)
        BIO_flush(c->wbio);
    shutdown(c->fd, SHUT_WR);
    struct timeval tv = {5, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char junk[16384];
    while (SSL_read(c->ssl, junk, sizeof junk) > 0)
        ;
}

static const char status_ok[] = "{\"metadata\":{},\"status\":\"Success\"}";

/* The websocket exec's output after the 101: frames, status, close (and with FLOOR_PRESEAL=2
 * our close_notify, the producer's last record). */
static void *ws_body(void *arg)
{
    conn *c = arg;
    if (send_payload(c, ws_head, NULL, NULL, 0) == 0) {
        ck_buf b;
        ck_buf_init(&b, 0);
        ck_ws_frame_prefixed(&b, CK_WS_BINARY, false, 3, status_ok, strlen(status_ok));
        ck_ws_close_frame(&b, false, 1000, "");
        send_buf(c, &b);
        ck_buf_free(&b);
    }
    if (c->async) {
        static const uint8_t alert[2] = {1, 0};
        seal_send(c, alert, sizeof alert, CK_TLSREC_ALERT);
        c->alert_sent = true;
        c->t_sealed = now_us();
        __atomic_store_n(&c->produced, true, __ATOMIC_RELEASE);
    }
    return NULL;
}

static void exec_ws(conn *c, bool v5)
{
    char key[128] = "", acc[29];
    header(c->head, c->hlen, "Sec-WebSocket-Key", key, sizeof key);
    ck_ws_accept_key(key, acc);
    char h[512];
    int n = snprintf(h, sizeof h, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                     "Sec-WebSocket-Protocol: %s\r\n\r\n", acc,
                     v5 ? "v5.channel.k8s.io" : "v4.channel.k8s.io");
    int64_t t1 = now_us();
    if (tls_send(c, h, (size_t)n) < 0)
        return;
    pthread_t th;
    if (pre_start(c) == 0 && preseal == 2 &&
        (c->async = true, pthread_create(&th, NULL, ws_body, c) == 0)) {
        pre_follow(c);
        pthread_join(th, NULL);
    } else {
        c->async = false;
        ws_body(c);
    }
    finish(c);
    if (verbose)
        fprintf(stderr, "floor: exec ws %s: accept->101 %.1f ms, 101->last byte %.1f ms "
                "(sealed after %.1f ms)\n", v5 ? "v5" : "v4", (double)(t1 - c->t0) / 1e3,
                (double)(now_us() - t1) / 1e3, c->t_sealed ? (c->t_sealed - t1) / 1e3 : 0.0);
}

/* SPDY session state: exec's streams, port-forward's pairs */
typedef struct pf_pair {
    char rid[32];
    uint32_t err_id, data_id;
    bool requested, served;
} pf_pair;

typedef struct sp {
    conn *c;
    ck_spdy spdy;
    ck_ws ws;            /* port-forward 1.31+: SPDY frames inside websocket messages */
    bool in_ws;
    ck_buf out;
    uint32_t err_id, out_id, errout_id;   /* exec */
    bool want_stderr;
    pf_pair pairs[64];
    size_t npairs;
    bool bad;
} sp;

static pf_pair *pair_of(sp *s, const char *rid, uint32_t sid)
{
    for (size_t i = 0; i < s->npairs; i++) {
        pf_pair *p = &s->pairs[i];
        if ((rid && !strcmp(p->rid, rid)) || (sid && (p->err_id == sid || p->data_id == sid)))
            return p;
    }
    return NULL;
}

/* Queue SPDY bytes (wrapped in a websocket message when in_ws) to s->out. */
static void sp_queue(sp *s, ck_buf *frames)
{
    if (!frames->len)
        return;
    if (s->in_ws)
        ck_ws_frame(&s->out, CK_WS_BINARY, false, frames->data, frames->len);
    else
        ck_buf_add(&s->out, frames->data, frames->len);
    ck_buf_reset(frames);
}

static int on_frame(void *ctx, const ck_spdy_frame *f)
{
    sp *s = ctx;
    ck_buf b;
    ck_buf_init(&b, 0);
    if (f->type == CK_SPDY_SYN_STREAM) {
        const char *st = ck_spdy_frame_header(f, "streamtype");
        const char *rid = ck_spdy_frame_header(f, "requestid");
        st = st ? st : "";
        if (rid) {   /* port-forward */
            pf_pair *p = pair_of(s, rid, 0);
            if (!p && s->npairs < 64) {
                p = &s->pairs[s->npairs++];
                *p = (pf_pair){0};
                snprintf(p->rid, sizeof p->rid, "%s", rid);
            }
            if (p && !strcmp(st, "error"))
                p->err_id = f->stream_id;
            else if (p)
                p->data_id = f->stream_id;
        } else if (!strcmp(st, "error")) {
            s->err_id = f->stream_id;
        } else if (!strcmp(st, "stdout")) {
            s->out_id = f->stream_id;
        } else if (!strcmp(st, "stderr")) {
            s->errout_id = f->stream_id;
        }
        ck_spdy_syn_reply(&s->spdy, &b, f->stream_id, 0, NULL, 0);
    } else if (f->type == CK_SPDY_DATA) {
        pf_pair *p = pair_of(s, NULL, f->stream_id);
        if (p && f->stream_id == p->data_id && f->len)
            p->requested = true;
    } else if (f->type == CK_SPDY_PING) {
        ck_spdy_ping(&b, f->ping_id);
    }
    sp_queue(s, &b);
    ck_buf_free(&b);
    return 0;
}

static int on_ws_msg(void *ctx, enum ck_ws_opcode op, const uint8_t *d, size_t len)
{
    sp *s = ctx;
    ck_error *e = NULL;
    if (op == CK_WS_BINARY && ck_spdy_feed(&s->spdy, d, len, on_frame, s, &e) < 0) {
        ck_error_free(e);
        s->bad = true;
        return 1;
    }
    if (op == CK_WS_CLOSE)
        s->bad = true;
    return 0;
}

/* Feed n received bytes; flush what the frames asked to send.  -1 on a protocol error. */
static int sp_feed(sp *s, const void *d, size_t n)
{
    ck_error *e = NULL;
    int rc = s->in_ws ? ck_ws_feed(&s->ws, d, n, on_ws_msg, s, &e)
                      : ck_spdy_feed(&s->spdy, d, n, on_frame, s, &e);
    ck_error_free(e);
    if (rc < 0 || s->bad)
        return -1;
    return s->out.len ? send_buf(s->c, &s->out) : 0;
}

static int sp_read(sp *s)
{
    char buf[16384];
    int r = SSL_read(s->c->ssl, buf, sizeof buf);
    return r <= 0 ? -1 : sp_feed(s, buf, (size_t)r);
}

static void exec_spdy(conn *c)
{
    static const char h[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                            "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n";
    sp *s = xcalloc(1, sizeof *s);
    s->c = c;
    ck_spdy_init(&s->spdy, true, 0);
    ck_buf_init(&s->out, 0);
    s->want_stderr = strstr(c->head, "stderr=true") || strstr(c->head, "stderr=1");
    int64_t t1 = now_us();
    if (tls_send(c, h, sizeof h - 1) < 0)
        goto out;
    while (!s->err_id || !s->out_id || (s->want_stderr && !s->errout_id))
        if (sp_read(s) < 0)
            goto out;
    int64_t t2 = now_us();
    spdy_ctx sc = {.id = s->out_id};
    pre_start(c);
    if (send_payload(c, spdy_head, &sc, NULL, 0) < 0)
        goto out;
    ck_buf b;
    ck_buf_init(&b, 0);
    ck_spdy_data(&b, s->out_id, CK_SPDY_FLAG_FIN, NULL, 0);
    if (s->errout_id)
        ck_spdy_data(&b, s->errout_id, CK_SPDY_FLAG_FIN, NULL, 0);
    ck_spdy_data(&b, s->err_id, CK_SPDY_FLAG_FIN, status_ok, strlen(status_ok));
    send_buf(c, &b);
    ck_buf_free(&b);
    pre_flush(c);
    if (verbose)
        fprintf(stderr, "floor: exec spdy: accept->101 %.1f ms, streams %.1f ms, data %.1f ms\n",
                (double)(t1 - c->t0) / 1e3, (double)(t2 - t1) / 1e3,
                (double)(now_us() - t2) / 1e3);
    /* the client closes once it has read everything */
    while (sp_read(s) == 0)
        ;
out:
    pre_flush(c);
    ck_spdy_free(&s->spdy);
    ck_buf_free(&s->out);
    free(s);
}

static void portforward(conn *c, bool ws)
{
    sp *s = xcalloc(1, sizeof *s);
    s->c = c;
    s->in_ws = ws;
    ck_spdy_init(&s->spdy, true, 0);
    ck_ws_init(&s->ws, true, 0);
    ck_buf_init(&s->out, 0);
    char h[512];
    int n;
    if (ws) {
        char key[128] = "", acc[29];
        header(c->head, c->hlen, "Sec-WebSocket-Key", key, sizeof key);
        ck_ws_accept_key(key, acc);
        n = snprintf(h, sizeof h, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                     "Sec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io\r\n\r\n", acc);
    } else {
        n = snprintf(h, sizeof h, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                     "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n");
    }
    if (tls_send(c, h, (size_t)n) < 0)
        goto out;
    char resp[128];
    int rl = snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\n"
                      "Content-Type: application/octet-stream\r\n\r\n",
                      (unsigned long long)payload_bytes);
    for (;;) {
        if (sp_read(s) < 0)
            break;
        for (size_t i = 0; i < s->npairs; i++) {
            pf_pair *p = &s->pairs[i];
            if (!p->requested || p->served || !p->data_id)
                continue;
            p->served = true;
            int64_t t1 = now_us();
            spdy_ctx sc = {.id = p->data_id, .in_ws = ws};
            if (send_payload(c, spdy_head, &sc, resp, (size_t)rl) < 0)
                goto out;
            ck_buf b;
            ck_buf_init(&b, 0);
            ck_spdy_data(&b, p->data_id, CK_SPDY_FLAG_FIN, NULL, 0);
            if (p->err_id)
                ck_spdy_data(&b, p->err_id, CK_SPDY_FLAG_FIN, NULL, 0);
            sp_queue(s, &b);
            ck_buf_free(&b);
            if (send_buf(c, &s->out) < 0)
                goto out;
            if (verbose)
                fprintf(stderr, "floor: port-forward %s: %.1f ms\n", ws ? "ws" : "spdy",
                        (double)(now_us() - t1) / 1e3);
        }
        /* a pair whose streams were both reset or finished could be forgotten; the few a
         * benchmark makes fit the table */
        if (s->npairs == 64) {
            size_t k = 0;
            for (size_t i = 0; i < s->npairs; i++)
                if (!s->pairs[i].served)
                    s->pairs[k++] = s->pairs[i];
            s->npairs = k;
        }
    }
out:
    ck_spdy_free(&s->spdy);
    ck_ws_free(&s->ws);
    ck_buf_free(&s->out);
    free(s);
}

static const char api_json[] =
    "{\"kind\":\"APIVersions\",\"versions\":[\"v1\"],\"serverAddressByClientCIDRs\":"
    "[{\"clientCIDR\":\"0.0.0.0/0\",\"serverAddress\":\"127.0.0.1\"}]}";
static const char apis_json[] = "{\"kind\":\"APIGroupList\",\"apiVersion\":\"v1\",\"groups\":[]}";
static const char v1_json[] =
    "{\"kind\":\"APIResourceList\",\"groupVersion\":\"v1\",\"resources\":["
    "{\"name\":\"pods\",\"singularName\":\"pod\",\"namespaced\":true,\"kind\":\"Pod\","
    "\"verbs\":[\"get\",\"list\"],\"shortNames\":[\"po\"]},"
    "{\"name\":\"pods/exec\",\"singularName\":\"\",\"namespaced\":true,\"kind\":"
    "\"PodExecOptions\",\"verbs\":[\"create\",\"get\"]},"
    "{\"name\":\"pods/portforward\",\"singularName\":\"\",\"namespaced\":true,\"kind\":"
    "\"PodPortForwardOptions\",\"verbs\":[\"create\",\"get\"]}]}";
static const char notfound_json[] =
    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
    "\"reason\":\"NotFound\",\"code\":404}";

static void *serve(void *arg)
{
    conn *c = arg;
    if (pin_cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(pin_cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) < 0)
            perror("floor: sched_setaffinity");
    }
    if (sched_policy >= 0) {
        struct sched_param sp0 = {0};
        if (sched_setscheduler(0, sched_policy, &sp0) < 0)   /* 0: this thread (Linux) */
            perror("floor: sched_setscheduler");
    }
    c->ssl = SSL_new(ctx);
    if (wbuf_size) {
        BIO *sock = BIO_new_socket(c->fd, BIO_NOCLOSE);
        c->wbio = BIO_new(BIO_f_buffer());
        BIO_set_write_buffer_size(c->wbio, (long)wbuf_size);
        BIO_push(c->wbio, sock);
        BIO *rbio = BIO_new_socket(c->fd, BIO_NOCLOSE);
        SSL_set_bio(c->ssl, rbio, c->wbio);
    } else {
        SSL_set_fd(c->ssl, c->fd);
    }
    if (SSL_accept(c->ssl) != 1)
        goto out;
    for (;;) {
        size_t hl = read_head(c);
        if (!hl)
            break;
        char method[16] = "", target[2048] = "";
        sscanf(c->head, "%15s %2047s", method, target);
        char *q = strchr(target, '?');
        char path[2048];
        snprintf(path, sizeof path, "%.*s", (int)(q ? q - target : (long)strlen(target)), target);
        if (verbose)
            fprintf(stderr, "floor: %s %s\n", method, target);
        bool upgrade_ws = header_has(c->head, hl, "Upgrade", "websocket");
        bool upgrade_spdy = header_has(c->head, hl, "Upgrade", "SPDY/3.1");
        size_t plen = strlen(path);
        if ((upgrade_ws || upgrade_spdy) && plen > 5 && !strcmp(path + plen - 5, "/exec")) {
            c->head[hl - 1] = '\0';   /* strstr on the head in exec_spdy */
            if (upgrade_ws)
                exec_ws(c, header_has(c->head, hl, "Sec-WebSocket-Protocol", "v5.channel.k8s.io"));
            else
                exec_spdy(c);
            break;
        }
        if ((upgrade_ws || upgrade_spdy) && plen > 12 && !strcmp(path + plen - 12, "/portforward")) {
            c->hlen -= hl;   /* nothing follows an upgrade request before our 101 */
            portforward(c, upgrade_ws);
            break;
        }
        const char *body = notfound_json;
        int status = 404;
        char pod[1024];
        char ns[256], name[256];
        if (!strcmp(path, "/api")) {
            body = api_json;
            status = 200;
        } else if (!strcmp(path, "/apis")) {
            body = apis_json;
            status = 200;
        } else if (!strcmp(path, "/api/v1")) {
            body = v1_json;
            status = 200;
        } else if (sscanf(path, "/api/v1/namespaces/%255[^/]/pods/%255[^/]", ns, name) == 2 &&
                   !strchr(path + strlen("/api/v1/namespaces/") + strlen(ns) + 6, '/')) {
            snprintf(pod, sizeof pod,
                     "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"%s\","
                     "\"namespace\":\"%s\",\"uid\":\"00000000-0000-0000-0000-000000000001\"},"
                     "\"spec\":{\"containers\":[{\"name\":\"main\",\"image\":\"busybox\"}]},"
                     "\"status\":{\"phase\":\"Running\"}}", name, ns);
            body = pod;
            status = 200;
        }
        if (respond(c, status, body) < 0)
            break;
        memmove(c->head, c->head + hl, c->hlen - hl);
        c->hlen -= hl;
    }
out:
    if (c->collecting)
        pre_flush(c);
    if (c->rec.ctx)
        ck_tlsrec_free(&c->rec);
    SSL_free(c->ssl);
    close(c->fd);
    free(c);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: streams_floor CERT KEY PORTFILE [MIB]\n");
        return 2;
    }
    if (argc > 4)
        payload_bytes = strtoull(argv[4], NULL, 10) << 20;
    const char *m = getenv("FLOOR_MSG"), *w = getenv("FLOOR_WBUF"), *v = getenv("FLOOR_VERBOSE");
    if (m && atol(m) > 0)
        msg_size = (size_t)atol(m) < (1u << 24) - 16 ? (size_t)atol(m) : (1u << 24) - 16;
    if (w && atol(w) > 0)
        wbuf_size = (size_t)atol(w);
    verbose = v && *v == '1';
    const char *k;
    if ((k = getenv("FLOOR_SNDBUF")) && atoi(k) > 0)
        sndbuf = atoi(k);
    if ((k = getenv("FLOOR_NODELAY")) && *k == '0')
        nodelay = 0;
    if ((k = getenv("FLOOR_LOWAT")) && atoi(k) > 0)
        lowat = atoi(k);
    if ((k = getenv("FLOOR_CPU")) && *k)
        pin_cpu = atoi(k);
    if ((k = getenv("FLOOR_SCHED")) && *k)
        sched_policy = !strcmp(k, "idle") ? SCHED_IDLE : !strcmp(k, "batch") ? SCHED_BATCH : -1;
    if ((k = getenv("FLOOR_WCHUNK")) && atol(k) > 0)
        wchunk = (size_t)atol(k);
    if ((k = getenv("FLOOR_PRESEAL")) && (*k == '1' || *k == '2')) {
        preseal = *k - '0';
        /* the payload's frames plus the status and close, as records of 16 KiB with 22 bytes
         * of overhead each; touched now so the stream pays no page faults */
        uint64_t frames = payload_bytes + (payload_bytes / msg_size + 2) * 32 + 4096;
        pre_cap = (size_t)(frames + (frames / CK_TLSREC_MAX_PLAIN + 1024) * 64);
        pre_buf = xmalloc(pre_cap);
        memset(pre_buf, 0, pre_cap);
    }
    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = (uint8_t)('a' + i % 26);
    signal(SIGPIPE, SIG_IGN);
    ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384");
    if (preseal)
        ck_tlsrec_keylog_install(ctx);
    if ((k = getenv("FLOOR_TLS12")) && *k == '1') {
        SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256");
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, argv[1]) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, argv[2], SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "streams_floor: cannot load %s / %s\n", argv[1], argv[2]);
        return 1;
    }
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 64) < 0 ||
        getsockname(ls, (struct sockaddr *)&a, &al) < 0) {
        perror("streams_floor: listen");
        return 1;
    }
    FILE *f = fopen(argv[3], "w");
    if (!f) {
        perror(argv[3]);
        return 1;
    }
    fprintf(f, "%d\n", ntohs(a.sin_port));
    fclose(f);
    for (;;) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (nodelay)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);   /* as httpd */
        if (sndbuf && setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) < 0)
            perror("floor: SO_SNDBUFFORCE");
        if (lowat && setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat) < 0)
            perror("floor: TCP_NOTSENT_LOWAT");
        conn *c = xcalloc(1, sizeof *c);
        c->fd = fd;
        c->t0 = now_us();
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &at, serve, c) != 0) {
            close(fd);
            free(c);
        }
        pthread_attr_destroy(&at);
    }
    return 0;
}
