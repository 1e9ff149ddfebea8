/* tunnel.c - an upgraded client connection as a framed transport: see tunnel.h. */
#include "streams/tunnel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lib/log.h"

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

static void on_data(void *ctx, const char *data, size_t len)
{
    ck_tunnel *t = ctx;
    ck_error *e = NULL;
    pthread_mutex_lock(&t->mu);
    t->last_ns = ck_now_ns();
    if (!t->gone) {
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
    pthread_mutex_unlock(&t->mu);
    ck_tunnel_wake(t);
}

static void tunnel_free(ck_tunnel *t)
{
    if (t->hs)
        ck_http_stream_release(t->hs);
    if (t->ws)
        ck_ws_free(&t->wsp);
    if (t->spdy_on)
        ck_spdy_free(&t->spdy);
    ck_buf_free(&t->out);
    ck_bufpool_close(t->pool);
    close(t->wake_r);
    close(t->wake_w);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

void ck_tunnel_release(ck_tunnel *t)
{
    if (__atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) == 0)
        tunnel_free(t);
}

static void on_close(void *ctx)
{
    ck_tunnel *t = ctx;
    pthread_mutex_lock(&t->mu);
    t->gone = true;
    pthread_mutex_unlock(&t->mu);
    ck_tunnel_wake(t);
    ck_tunnel_release(t);
}

ck_tunnel *ck_tunnel_open(ck_http_resp *resp, const char *extra_headers, bool ws, bool spdy,
                          ck_tunnel_ws_cb on_ws, ck_tunnel_spdy_cb on_spdy, void *user)
{
    ck_tunnel *t = xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
        free(t);
        ck_http_respond(resp, 500, "text/plain", NULL, "pipe failed\n", 12);
        return NULL;
    }
    t->wake_r = p[0];
    t->wake_w = p[1];
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
    t->refs = 2;   /* the pump and httpd's on_close */
    t->last_ns = ck_now_ns();
    pthread_mutex_lock(&t->mu);
    ck_http_stream *hs = ck_http_upgrade(resp, extra_headers, on_data, on_close, t);
    if (!hs) {
        pthread_mutex_unlock(&t->mu);
        t->refs = 1;
        ck_tunnel_release(t);
        return NULL;
    }
    t->hs = hs;
    pthread_mutex_unlock(&t->mu);
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

void ck_tunnel_flush_locked(ck_tunnel *t)
{
    if (t->out.len && !t->gone && ck_http_stream_pending(t->hs) < CK_STREAMS_HIGH_WATER) {
        if (ck_http_stream_write(t->hs, t->out.data, t->out.len) < 0)
            t->gone = true;
        ck_buf_reset(&t->out);
    }
}

ssize_t ck_tunnel_flush(ck_tunnel *t)
{
    pthread_mutex_lock(&t->mu);
    if (t->gone && !t->client_closed_ws && t->out.len == 0) {
        pthread_mutex_unlock(&t->mu);
        return -1;
    }
    size_t pending = ck_http_stream_pending(t->hs);
    if (t->out.len && pending < CK_STREAMS_HIGH_WATER) {
        if (ck_http_stream_write(t->hs, t->out.data, t->out.len) < 0) {
            t->gone = true;
            ck_buf_reset(&t->out);
            pthread_mutex_unlock(&t->mu);
            return -1;
        }
        t->last_ns = ck_now_ns();
        ck_buf_reset(&t->out);
        pending = ck_http_stream_pending(t->hs);
    }
    ssize_t waiting = (ssize_t)(pending + t->out.len);
    bool gone = t->gone;
    pthread_mutex_unlock(&t->mu);
    return gone && waiting == 0 ? -1 : waiting;
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
    return rc;
}

int ck_tunnel_batch_send_locked(ck_tunnel *t, ck_tunnel_batch *b)
{
    int rc = 0;
    if (t->out.len) {   /* control bytes queued earlier go first */
        rc = ck_http_stream_write(t->hs, t->out.data, t->out.len);
        ck_buf_reset(&t->out);
    }
    if (b->len) {
        if (b->pooled && b->len < 64 * 1024) {
            /* a short read: copy it out and recycle the big buffer at once, so that little
             * outputs (an interactive shell) do not hold megabytes while they wait */
            uint8_t *d = xmalloc(b->len);
            memcpy(d, b->data, b->len);
            ck_bufpool_release(b->data);
            *b = (ck_tunnel_batch){.data = d, .len = b->len, .cap = b->len};
        } else if (!b->pooled && b->cap - b->len > CK_TUNNEL_SLOT) {
            b->data = xrealloc(b->data, b->len);   /* give back the unused slots */
        }
        if (rc < 0)
            ck_tunnel_batch_free(b);
        else if (b->pooled)
            rc = ck_http_stream_write_ref(t->hs, b->data, b->len, ck_bufpool_release);
        else
            rc = ck_http_stream_write_owned(t->hs, b->data, b->len);
        *b = (ck_tunnel_batch){0};
        t->last_ns = ck_now_ns();
    }
    if (rc < 0)
        t->gone = true;
    return rc;
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
    if (t->ws && !t->client_closed_ws)
        ck_ws_close_frame(&t->out, false, 1000, "");
    if (t->out.len)
        ck_http_stream_write(t->hs, t->out.data, t->out.len);
    ck_buf_reset(&t->out);
    pthread_mutex_unlock(&t->mu);
    ck_http_stream_end(t->hs);
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
