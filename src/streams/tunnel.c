/* tunnel.c - an upgraded client connection as a framed transport: see tunnel.h. */
#include "streams/tunnel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <unistd.h>

#include <poll.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lib/bytequeue.h"
#include "lib/log.h"
#include "lib/tlsrec.h"

#define RAW_CAP (64u * 1024)      /* one read(2) from the client: keystrokes, stdin, SPDY frames */
#define PLAIN_CHUNK 16384         /* one TLS record's plaintext */
#define IN_PER_ROUND (256u * 1024) /* client bytes parsed per round (output is not starved) */
#define WIRE_LIMIT (64u << 20)    /* hard bound on the wire; the pumps stay far below it */
#define LINGER_MS 1000
#ifndef SEND_PIECE
#define SEND_PIECE (256u * 1024) /* batch bytes encrypted per send(2) */
#endif

static int ws_msg(void *ctx, enum ck_ws_opcode op, const uint8_t *d, size_t len)
{
    ck_tunnel *t = ctx;
    switch (op) {
    case CK_WS_PING:
        ck_ws_frame(&t->out, CK_WS_PONG, false, d, len);
        return 0;
    case CK_WS_PONG:
        return 0;
    case CK_WS_CLOSE:
        t->client_closed_ws = true;
        t->gone = true;
        return 1;
    default:
        break;
    }
    if (len == 0)
        return 0;
    if (t->on_ws)
        t->on_ws(t->user, t, d[0], d + 1, len - 1);
    return 0;
}

static int spdy_frame(void *ctx, const ck_spdy_frame *f)
{
    ck_tunnel *t = ctx;
    if (f->type == CK_SPDY_PING) {
        /* answer the peer's pings (ids of the other parity are answers to ours) */
        if ((f->ping_id & 1) != (t->spdy.server ? 0u : 1u)) {
            ck_buf b;
            ck_buf_init(&b, 0);
            ck_spdy_ping(&b, f->ping_id);
            ck_tunnel_send_spdy_bytes(t, &b);
            ck_buf_free(&b);
        }
        return 0;
    }
    if (f->type == CK_SPDY_GOAWAY) {
        t->gone = true;
        return 1;
    }
    if (t->on_spdy)
        t->on_spdy(t->user, t, f);
    return 0;
}

/* SPDY inside websocket: the websocket message payloads are a byte stream of SPDY frames. */
static int ws_spdy_msg(void *ctx, enum ck_ws_opcode op, const uint8_t *d, size_t len)
{
    ck_tunnel *t = ctx;
    if (op == CK_WS_BINARY || op == CK_WS_TEXT) {
        ck_error *e = NULL;
        if (ck_spdy_feed(&t->spdy, d, len, spdy_frame, t, &e) < 0) {
            log_warn("streams: %s", e->msg);
            ck_error_free(e);
            t->gone = true;
            return 1;
        }
        return 0;
    }
    return ws_msg(ctx, op, d, len);
}

/* Parse client bytes (pump thread, under t->mu). */
static void feed(ck_tunnel *t, const char *data, size_t len)
{
    ck_error *e = NULL;
    t->last_ns = ck_now_ns();
    if (t->gone)
        return;
    int rc;
    if (t->ws)
        rc = ck_ws_feed(&t->wsp, data, len, t->spdy_on ? ws_spdy_msg : ws_msg, t, &e);
    else
        rc = ck_spdy_feed(&t->spdy, data, len, spdy_frame, t, &e);
    if (rc < 0) {
        log_warn("streams: client protocol error: %s", e->msg);
        if (t->ws)
            ck_ws_close_frame(&t->out, false, t->wsp.close_code, e->msg);
        t->gone = true;
        ck_error_free(e);
    }
}

/* ---- the socket: our BIO under the SSL ----
 *
 * Reads: one read(2) into `raw` per poll wake (a short read means the socket is empty; poll says
 * when it is not), OpenSSL's record reads are served from it.  Writes: each record goes to the
 * socket as OpenSSL makes it; once the socket is full, records queue in `wire` (in order) and
 * leave in one send(2) when poll says it has room. */

/* Bytes for the socket, after those queued. */
static int wire_append(ck_tunnel *t, const char *data, size_t len)
{
    return ck_bytequeue_append(&t->wire, data, len, NULL);
}

/* Records of inner type `type` sealed with the handed-over key straight onto the wire. */
static int seal_write(ck_tunnel *t, uint8_t type, const char *data, size_t len)
{
    do {
        size_t n = len < CK_TLSREC_MAX_PLAIN ? len : CK_TLSREC_MAX_PLAIN;
        ck_error *e = NULL;
        char *p = ck_bytequeue_reserve(&t->wire, CK_TLSREC_SEALED(n), &e);
        if (!p || ck_tlsrec_seal(t->seal, type, (const unsigned char *)data, n,
                                 (unsigned char *)p, &e) < 0) {
            log_warn("streams: %s", e ? e->msg : "wire limit");
            ck_error_free(e);
            t->gone = true;
            return -1;
        }
        ck_bytequeue_commit(&t->wire, CK_TLSREC_SEALED(n));
        data += n;
        len -= n;
    } while (len > 0);
    return 0;
}

static size_t wire_pending(const ck_tunnel *t)
{
    return ck_bytequeue_pending(&t->wire);
}

static int tbio_write(BIO *b, const char *data, int len)
{
    ck_tunnel *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (t->seal) {
        /* our own TLS session writing after the hand-off (a KeyUpdate answer, an alert) would
         * put its record among the client's: end the session instead */
        log_warn("streams: OpenSSL wrote a record after the seal hand-off; ending the session");
        t->gone = true;
        return -1;
    }
    /* a record straight from OpenSSL's (hot) buffer to the socket while nothing waits before
     * it: measured cheaper than collecting a round's records for one send (no copy of every
     * byte into the wire; 10-15 ms of CPU less per 100 MiB on the stand-in node) */
    if (!wire_pending(t) && !t->gone) {
        ssize_t n;
        do
            n = send(t->fd, data, (size_t)len, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n == len) {
            t->last_ns = ck_now_ns();
            return len;
        }
        /* the socket is full (or failed: flush_wire will say): the rest waits in the wire */
        size_t sent = n > 0 ? (size_t)n : 0;
        return wire_append(t, data + sent, (size_t)len - sent) < 0 ? -1 : len;
    }
    return wire_append(t, data, (size_t)len) < 0 ? -1 : len;
}

static int tbio_read(BIO *b, char *data, int len)
{
    ck_tunnel *t = BIO_get_data(b);
    return ck_rawin_bio_read(&t->in, t->fd, b, data, len);
}

static long tbio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    ck_tunnel *t = BIO_get_data(b);
    (void)num, (void)ptr;
    return t ? ck_rawin_bio_ctrl(&t->in, cmd) : 0;
}

static int tbio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *tbio_meth;
static pthread_once_t tbio_once = PTHREAD_ONCE_INIT;

static void tbio_init(void)
{
    tbio_meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ckube streams");
    if (!tbio_meth)
        return;
    BIO_meth_set_write(tbio_meth, tbio_write);
    BIO_meth_set_read(tbio_meth, tbio_read);
    BIO_meth_set_ctrl(tbio_meth, tbio_ctrl);
    BIO_meth_set_create(tbio_meth, tbio_create);
}

/* Plaintext onto the wire as records (never blocks: the BIO only appends). */
static int tun_write(ck_tunnel *t, const void *data, size_t len)
{
    if (t->seal)
        return len ? seal_write(t, CK_TLSREC_APPDATA, data, len) : 0;
    if (!t->ssl) {
        if (wire_append(t, data, len) < 0)
            t->gone = true;
        return t->gone ? -1 : 0;
    }
    const char *p = data;
    while (len > 0) {
        int n = SSL_write(t->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
        if (n <= 0) {
            ERR_clear_error();
            t->gone = true;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The wire to the socket: one send for everything queued, unless the socket is full. */
static void flush_wire(ck_tunnel *t)
{
    size_t before = wire_pending(t);
    if (!before)
        return;
    int rc = ck_bytequeue_send(&t->wire, t->fd, NULL, NULL);   /* 0: full, poll says when not */
    if (wire_pending(t) < before)
        t->last_ns = ck_now_ns();
    if (rc < 0) {
        t->gone = true;   /* the client is gone: drop what it will never read */
        ck_bytequeue_reset(&t->wire);
    }
}

/* Read and parse what the client sent, up to IN_PER_ROUND bytes. */
static void read_client(ck_tunnel *t)
{
    if (t->early_len) {
        pthread_mutex_lock(&t->mu);
        feed(t, t->early_in, t->early_len);
        pthread_mutex_unlock(&t->mu);
        t->early_len = 0;
    }
    for (size_t got = 0; got < IN_PER_ROUND && !t->gone;) {
        int n;
        if (t->ssl) {
            n = SSL_read(t->ssl, t->plain, PLAIN_CHUNK);
            if (n <= 0) {
                int e = SSL_get_error(t->ssl, n);
                ERR_clear_error();
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                    t->gone = true;   /* close_notify, a dirty close, or an error */
                break;
            }
        } else {
            n = ck_rawin_take(&t->in, t->fd, t->plain, PLAIN_CHUNK);
            if (n <= 0) {
                if (n != -1)
                    t->gone = true;
                break;
            }
        }
        pthread_mutex_lock(&t->mu);
        feed(t, t->plain, (size_t)n);
        pthread_mutex_unlock(&t->mu);
        got += (size_t)n;
    }
}

static void tunnel_free(ck_tunnel *t)
{
    if (t->ssl)
        SSL_free(t->ssl);   /* and our BIO */
    if (t->fd >= 0)
        close(t->fd);
    if (t->ws)
        ck_ws_free(&t->wsp);
    if (t->spdy_on)
        ck_spdy_free(&t->spdy);
    ck_buf_free(&t->out);
    ck_bufpool_close(t->pool);
    free(t->early_in);
    ck_rawin_free(&t->in);
    ck_bytequeue_free(&t->wire);
    free(t->plain);
    if (t->seal) {
        ck_tlsrec_free(t->seal);
        free(t->seal);
    }
    close(t->wake_r);
    close(t->wake_w);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

void ck_tunnel_ref(ck_tunnel *t)
{
    __atomic_add_fetch(&t->refs, 1, __ATOMIC_ACQ_REL);
}

void ck_tunnel_release(ck_tunnel *t)
{
    if (__atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) == 0)
        tunnel_free(t);
}

/* The sealing hand-off the API server asks for, if the value parses; NULL otherwise (the session
 * goes on as before).  Who may ask is who may exec: the kubelet's handler already refused a
 * client without a certificate from --client-ca-file when one is set (the API server's
 * kubelet-client identity), and the key only changes how output the requester may read anyway
 * is encrypted.  The value is never logged. */
static ck_tlsrec *seal_accept(const ck_http_req *req)
{
    const char *v = req ? ck_http_req_header(req, CK_TLSREC_SEAL_HEADER) : NULL;
    if (!v)
        return NULL;
    ck_tlsrec_secret sec;
    ck_tlsrec r;
    ck_error *e = NULL;
    int rc = ck_tlsrec_seal_parse(v, &sec, &e);
    if (rc == 0)
        rc = ck_tlsrec_init_secret(&r, &sec, true, &e);
    OPENSSL_cleanse(&sec, sizeof sec);
    if (rc < 0) {
        log_warn("streams: seal hand-off refused: %s", e->msg);
        ck_error_free(e);
        return NULL;
    }
    ck_tlsrec *p = xmalloc(sizeof *p);
    *p = r;
    return p;
}

ck_tunnel *ck_tunnel_open(ck_http_resp *resp, const ck_http_req *req, const char *extra_headers,
                          bool ws, bool spdy, ck_tunnel_ws_cb on_ws, ck_tunnel_spdy_cb on_spdy,
                          void *user)
{
    ck_http_taken tk;
    ck_error *e = NULL;
    ck_tlsrec *seal = seal_accept(req);
    cleanup_free char *hdrs = seal ? xasprintf("%s" CK_TLSREC_SEAL_HEADER ": " CK_TLSREC_SEAL_ACCEPT
                                               "\r\n", extra_headers ? extra_headers : "")
                                   : NULL;
    if (ck_http_upgrade_take(resp, seal ? hdrs : extra_headers, &tk, &e) < 0) {
        log_info("streams: %s", e->msg);
        ck_error_free(e);
        if (seal) {
            ck_tlsrec_free(seal);
            free(seal);
        }
        return NULL;
    }
    if (seal && !tk.ssl) {   /* a plain-HTTP server: the relay only offers it over TLS */
        ck_tlsrec_free(seal);
        free(steal_pointer(&seal));
        ck_http_taken_free(&tk);
        return NULL;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
        ck_http_taken_free(&tk);
        return NULL;
    }
    ck_tunnel *t = xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    ck_bytequeue_init(&t->wire, WIRE_LIMIT);
    t->wake_r = p[0];
    t->wake_w = p[1];
    t->fd = tk.fd;
    t->ssl = tk.ssl;
    tk.fd = -1;
    tk.ssl = NULL;
    t->ws = ws;
    t->spdy_on = spdy;
    if (ws)
        ck_ws_init(&t->wsp, true, 0);
    if (spdy)
        ck_spdy_init(&t->spdy, true, 0);
    ck_buf_init(&t->out, 0);
    t->pool = ck_bufpool_new(CK_TUNNEL_BATCH_BYTES, 4);
    t->on_ws = on_ws;
    t->on_spdy = on_spdy;
    t->user = user;
    t->refs = 1;   /* the pump */
    t->last_ns = ck_now_ns();
    ck_rawin_init(&t->in, RAW_CAP);
    t->plain = xmalloc(PLAIN_CHUNK);
    t->early_in = tk.input;
    t->early_len = tk.input_len;
    /* the 101 (tk.unsent) is whole records of our own session ending with its header block;
     * every byte after it is sealed with the handed-over key */
    t->seal = seal;
    tk.input = NULL;
    fcntl(t->fd, F_SETFL, fcntl(t->fd, F_GETFL) | O_NONBLOCK);
    bool ok = wire_append(t, tk.unsent, tk.unsent_len) == 0;
    if (ok && t->ssl) {
        pthread_once(&tbio_once, tbio_init);
        BIO *b = tbio_meth ? BIO_new(tbio_meth) : NULL;
        if (b) {
            BIO_set_data(b, t);
            SSL_set_bio(t->ssl, b, b);
            /* httpd's connections give their record buffers back when idle; a session keeps
             * them (no malloc and free per record) */
            SSL_clear_mode(t->ssl, SSL_MODE_RELEASE_BUFFERS);
        } else {
            ok = false;
        }
    }
    ck_http_taken_free(&tk);
    if (!ok) {
        tunnel_free(t);
        return NULL;
    }
    flush_wire(t);   /* the 101, now */
    return t;
}

void ck_tunnel_detach(ck_tunnel *t)
{
    pthread_mutex_lock(&t->mu);
    t->on_ws = NULL;
    t->on_spdy = NULL;
    t->gone = true;
    pthread_mutex_unlock(&t->mu);
}

void ck_tunnel_wake(ck_tunnel *t)
{
    char c = 1;
    ssize_t r = write(t->wake_w, &c, 1);
    (void)r;   /* a full pipe already means "wake" */
}

void ck_tunnel_drain_wake(ck_tunnel *t)
{
    char buf[256];
    while (read(t->wake_r, buf, sizeof buf) > 0)
        ;
}

void ck_tunnel_send_channel(ck_tunnel *t, uint8_t channel, const void *data, size_t len)
{
    ck_ws_frame_prefixed(&t->out, CK_WS_BINARY, false, channel, data, len);
}

void ck_tunnel_send_spdy_bytes(ck_tunnel *t, const ck_buf *b)
{
    if (t->ws)
        ck_ws_frame(&t->out, CK_WS_BINARY, false, b->data, b->len);
    else
        ck_buf_add(&t->out, b->data, b->len);
}

/* Under t->mu: the queued control bytes onto the wire. */
static void out_to_wire(ck_tunnel *t)
{
    if (t->out.len) {
        if (!t->gone || t->client_closed_ws)
            tun_write(t, t->out.data, t->out.len);
        ck_buf_reset(&t->out);
    }
}

ssize_t ck_tunnel_flush(ck_tunnel *t)
{
    read_client(t);
    pthread_mutex_lock(&t->mu);
    bool closing = t->gone && !t->client_closed_ws;
    if (!closing)
        out_to_wire(t);
    size_t queued = t->out.len;
    pthread_mutex_unlock(&t->mu);
    if (closing)
        return -1;
    flush_wire(t);
    ssize_t waiting = (ssize_t)(wire_pending(t) + queued);
    return t->gone && (waiting == 0 || !t->client_closed_ws) ? -1 : waiting;
}

short ck_tunnel_poll_events(const ck_tunnel *t)
{
    short ev = 0;
    if (!t->in.eof && !t->gone)
        ev |= POLLIN;
    if (wire_pending(t))
        ev |= POLLOUT;
    return ev;
}

void ck_tunnel_polled(ck_tunnel *t, short revents)
{
    if (revents & (POLLIN | POLLHUP | POLLERR))
        t->in.may_read = true;
}

int ck_tunnel_drain(ck_tunnel *t, int ms)
{
    int64_t until = ck_now_ns() + (int64_t)ms * 1000000;
    for (;;) {
        ssize_t w = ck_tunnel_flush(t);
        if (w <= 0)
            return (int)w;
        int64_t left = (until - ck_now_ns()) / 1000000;
        if (left <= 0)
            return -1;
        struct pollfd pf = {t->fd, ck_tunnel_poll_events(t), 0};
        if (poll(&pf, 1, (int)(left < 100 ? left : 100)) > 0)
            ck_tunnel_polled(t, pf.revents);
    }
}

/* ---- bulk output laid out in place ---- */

/* The head room reserved before each slot: the head of a full slot's frame. */
static size_t slot_room(const ck_tunnel *t)
{
    if (t->ws && !t->spdy_on)
        return 4 + 1;      /* websocket head for 126..65535 bytes + the channel byte */
    if (!t->ws)
        return 8;          /* SPDY DATA head */
    return 4 + 8;          /* websocket head around a SPDY DATA frame */
}

/* Write the head of a frame carrying n payload bytes on id into h; returns its size. */
static size_t frame_head(const ck_tunnel *t, uint8_t *h, uint32_t id, size_t n)
{
    if (t->ws && !t->spdy_on) {
        size_t hl = ck_ws_server_head(h, CK_WS_BINARY, n + 1);
        h[hl] = (uint8_t)id;
        return hl + 1;
    }
    if (!t->ws) {
        ck_spdy_data_head(h, id, 0, n);
        return 8;
    }
    size_t hl = ck_ws_server_head(h, CK_WS_BINARY, n + 8);
    ck_spdy_data_head(h + hl, id, 0, n);
    return hl + 8;
}

int ck_tunnel_batch_slots(ck_tunnel *t, ck_tunnel_batch *b, struct iovec *iov, int nslots)
{
    size_t room = slot_room(t), need = (size_t)nslots * (room + CK_TUNNEL_SLOT);
    /* pooled buffers go out whole while httpd counts only their bytes: at most 6 out (6 MiB)
     * per session, beyond that plain buffers trimmed to size */
    if (!b->data && t->pool && need <= ck_bufpool_size(t->pool) &&
        ck_bufpool_outstanding(t->pool) < 6) {
        b->data = ck_bufpool_get(t->pool);
        b->cap = ck_bufpool_size(t->pool);
        b->pooled = true;
    } else if (b->cap - b->len < need) {
        size_t len = b->len;
        uint8_t *d = xmalloc(len + need);
        if (len)
            memcpy(d, b->data, len);
        ck_tunnel_batch_free(b);
        *b = (ck_tunnel_batch){.data = d, .len = len, .cap = len + need};
    }
    for (int i = 0; i < nslots; i++) {
        iov[i].iov_base = b->data + b->len + (size_t)i * (room + CK_TUNNEL_SLOT) + room;
        iov[i].iov_len = CK_TUNNEL_SLOT;
    }
    return nslots;
}

void ck_tunnel_batch_commit(ck_tunnel *t, ck_tunnel_batch *b, uint32_t id, size_t n)
{
    size_t room = slot_room(t);
    while (n > 0) {
        uint8_t *start = b->data + b->len;
        size_t k = n < CK_TUNNEL_SLOT ? n : CK_TUNNEL_SLOT;
        uint8_t h[24];
        size_t hl = frame_head(t, h, id, k);
        if (hl < room)   /* a short message's head is smaller: close the gap (k < 126) */
            memmove(start + hl, start + room, k);
        memcpy(start, h, hl);
        b->len += hl + k;
        n -= k;
    }
}

int ck_tunnel_batch_send(ck_tunnel *t, ck_tunnel_batch *b)
{
    pthread_mutex_lock(&t->mu);
    int rc = ck_tunnel_batch_send_locked(t, b);
    pthread_mutex_unlock(&t->mu);
    flush_wire(t);
    return t->gone ? -1 : rc;
}

int ck_tunnel_batch_send_locked(ck_tunnel *t, ck_tunnel_batch *b)
{
    out_to_wire(t);   /* control bytes queued earlier go first */
    /* in pieces, each sent as soon as it is encrypted, so the records are still in the cache
     * when the socket copies them (the caller holds t->mu for its own reasons; sending holds
     * nothing the client could need) */
    for (size_t off = 0; off < b->len && !t->gone;) {
        size_t n = b->len - off < SEND_PIECE ? b->len - off : SEND_PIECE;
        tun_write(t, b->data + off, n);
        off += n;
        if (wire_pending(t) >= SEND_PIECE)
            flush_wire(t);
    }
    ck_tunnel_batch_free(b);
    return t->gone ? -1 : 0;
}

void ck_tunnel_batch_free(ck_tunnel_batch *b)
{
    if (b->pooled)
        ck_bufpool_release(b->data);
    else
        free(b->data);
    *b = (ck_tunnel_batch){0};
}

void ck_tunnel_finish(ck_tunnel *t)
{
    pthread_mutex_lock(&t->mu);
    bool was_gone = t->gone && !t->client_closed_ws;
    if (t->ws && !t->client_closed_ws && !was_gone)
        ck_ws_close_frame(&t->out, false, 1000, "");
    if (!was_gone)
        out_to_wire(t);
    ck_buf_reset(&t->out);
    if (t->seal && !was_gone) {
        /* the client's TLS ends with our close_notify (the relay adds nothing after us) */
        static const char close_notify[2] = {1, 0};
        seal_write(t, CK_TLSREC_ALERT, close_notify, sizeof close_notify);
    }
    pthread_mutex_unlock(&t->mu);
    if (t->in.eof || (was_gone && !wire_pending(t)) || t->fd < 0)
        return;
    /* the last bytes out (at most 10 s), our side shut, the client's leftovers read */
    int64_t until = ck_now_ns() + 10LL * 1000000000;
    while (wire_pending(t) && ck_now_ns() < until) {
        flush_wire(t);
        if (!wire_pending(t) || (t->gone && !t->client_closed_ws && !wire_pending(t)))
            break;
        struct pollfd pf = {t->fd, POLLOUT, 0};
        poll(&pf, 1, 100);
    }
    shutdown(t->fd, SHUT_WR);
    until = ck_now_ns() + LINGER_MS * 1000000LL;
    char tmp[4096];
    for (int64_t left; (left = (until - ck_now_ns()) / 1000000) > 0;) {
        struct pollfd pf = {t->fd, POLLIN, 0};
        if (poll(&pf, 1, (int)left) <= 0)
            break;
        ssize_t r = read(t->fd, tmp, sizeof tmp);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
            break;
    }
}

/* ---- negotiation ---- */

static bool token_in(const char *list, const char *token)
{
    size_t tl = strlen(token);
    for (const char *p = list; p && *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = strchr(p, ',');
        if (!e)
            e = p + strlen(p);
        const char *q = e;
        while (q > p && q[-1] == ' ')
            q--;
        if ((size_t)(q - p) == tl && !strncasecmp(p, token, tl))
            return true;
        p = e;
    }
    return false;
}

bool ck_tunnel_header_has(const ck_http_req *req, const char *name, const char *token)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (!strcasecmp(req->headers[i].name, name) && token_in(req->headers[i].value, token))
            return true;
    return false;
}

bool ck_tunnel_is_websocket(const ck_http_req *req)
{
    return ck_tunnel_header_has(req, "Upgrade", "websocket");
}

bool ck_tunnel_is_spdy(const ck_http_req *req)
{
    return ck_tunnel_header_has(req, "Upgrade", "SPDY/3.1");
}

char *ck_tunnel_ws_accept_headers(const ck_http_req *req, const char *proto)
{
    const char *key = ck_http_req_header(req, "Sec-WebSocket-Key");
    if (!key || strlen(key) > 64)
        return NULL;
    char acc[29];
    ck_ws_accept_key(key, acc);
    return xasprintf("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                     "Sec-WebSocket-Protocol: %s\r\n", acc, proto);
}
