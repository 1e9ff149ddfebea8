/* httpd.c - the HTTP/1.1 server: see httpd.h for the contract and docs/http.md for the shape.
 *
 * Threads.  One I/O thread owns the event_base, every socket (lib/connio: plain or TLS), timer
 * and parser state.  Worker threads run handlers.  A handler (or any thread holding a stream)
 * never touches a socket: it appends bytes to the connection's locked `outbox`, records what
 * happened (`events`: response done, stream started/ended, abort, upgrade) and puts the
 * connection on the server's wake list; the I/O thread then moves the outbox to the socket and
 * acts on the events.  This keeps OpenSSL and libevent single-threaded per connection and makes
 * ordering trivial.
 *
 * Wakes.  The wake list is a lock-free stack of connections drained once a loop pass.  A writer
 * that finds it empty writes the server's eventfd only if the I/O thread said it was about to
 * sleep (`io_idle`); while the I/O thread runs, it drains the list before sleeping again.  So a
 * burst of answers and watch events costs one wake, and none while the I/O thread is busy.  A
 * thread may also hold its wakes (ck_httpd_wake_hold) and give the one it owes at the flush.
 *
 * Lifetimes.  A connection is reference-counted: the I/O side holds one reference while it is
 * open, each dispatched request one, each stream one.  Closing (I/O thread) marks it `gone`
 * under its lock, so late writers see -1 instead of touching freed libevent objects.
 * A request (struct ck_http_resp) starts with two references, the running handler and the
 * unanswered response, so it is freed only when both are done, whichever thread finishes last.
 *
 * Workers.  Complete requests go on one FIFO queue; the worker pool that serves it is in
 * httpd_workers.c (see the top of that file).
 *
 * Pipelining.  Only one request per connection is dispatched at a time; the parser resumes when
 * its response is complete, so responses leave in request order.  Input that arrives meanwhile
 * waits in the connection's input, capped by a read limit.
 *
 * Files.  This file has the connections, the I/O thread, the response and stream calls and
 * start/stop; httpd_parse.c the request parser, httpd_workers.c the worker pool; httpd_int.h
 * what they share.
 */
#include "lib/httpd.h"
#include "lib/httpd_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "lib/connio.h"
#include "lib/http_util.h"
#include "lib/log.h"
#include "lib/util.h"

#define DEFAULT_WORKERS 16
#define DEFAULT_MIN_MAX_WORKERS 64    /* the pool may grow to max(4 x workers, this) */
#define DEFAULT_MAX_HEADER_BYTES (64u * 1024)
#define DEFAULT_MAX_BODY_BYTES (3u * 1024 * 1024 + 64 * 1024)
#define DEFAULT_HEADER_TIMEOUT_MS 30000
#define DEFAULT_IDLE_TIMEOUT_MS 90000
#define DEFAULT_MAX_HEADERS 100
#define DEFAULT_STREAM_LIMIT (16u * 1024 * 1024)
#define CLOSE_WAIT_MS 5000            /* a closing connection's response must drain within this */
#define LINGER_MS 1000                /* then read and discard the peer's leftovers this long */

static void conn_process(struct conn *c);
static void conn_close(struct conn *c);
static void outbuf_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg);

/* ---- references ------------------------------------------------------------------------- */

static void conn_ref(struct conn *c)
{
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
}

static void hub_unref(struct hub *hub)
{
    if (__atomic_sub_fetch(&hub->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    pthread_mutex_destroy(&hub->mu);
    free(hub);
}

static void conn_unref(struct conn *c)
{
    if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    hub_unref(c->hub);
    pthread_mutex_destroy(&c->mu);
    evbuffer_free(c->outbox);
    free(c->client_cn);
    OPENSSL_cleanse(&c->tls_secret, sizeof c->tls_secret);
    for (size_t i = 0; i < c->nclient_orgs; i++)
        free(c->client_orgs[i]);
    free(c->client_orgs);
    free(c);
}

void ck__httpd_resp_free(ck_http_resp *r)
{
    for (size_t i = 0; i < r->req.nheaders; i++) {
        free(r->req.headers[i].name);
        free(r->req.headers[i].value);
    }
    free(r->req.headers);
    free(r->method);
    free(r->target);
    free(r->path);
    free(r->query);
    free(r->body);
    if (r->c)
        conn_unref(r->c);
    free(r);
}

void ck__httpd_resp_unref(ck_http_resp *r)
{
    if (__atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) == 0)
        ck__httpd_resp_free(r);
}

/* Claim the one answer a request gets; false (and a log line) on a second attempt. */
static bool resp_claim(ck_http_resp *r)
{
    if (__atomic_exchange_n(&r->answered, 1, __ATOMIC_ACQ_REL)) {
        log_error("httpd: %s %s answered twice", r->req.method, r->req.target);
        return false;
    }
    return true;
}

void ck_http_stream_release(ck_http_stream *s)
{
    if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    conn_unref(s->c);
    free(s);
}

/* ---- cross-thread posting --------------------------------------------------------------- */

static void wake_io_thread(ck_httpd *h)
{
    uint64_t one = 1;
    while (write(h->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

/* ck_httpd_wake_hold depth, and the connection whose push found the I/O thread idle meanwhile
 * (referenced; its server gets the wake at the flush) */
static __thread int tl_hold;
static __thread struct conn *tl_held;

/* Under c->mu.  A connection that is not gone has its server (closing marks it gone first, and
 * the server is freed only after every connection closed), so c->h is safe to use here. */
static void schedule_wake_locked(struct conn *c)
{
    if (c->wake_scheduled || c->gone)
        return;
    c->wake_scheduled = true;
    conn_ref(c);                        /* the list's; dropped once the I/O thread took it */
    ck_httpd *h = c->h;
    struct conn *head = __atomic_load_n(&h->wake_head, __ATOMIC_RELAXED);
    do {
        c->wnext = head;
    } while (!__atomic_compare_exchange_n(&h->wake_head, &head, c, true, __ATOMIC_SEQ_CST,
                                          __ATOMIC_RELAXED));
    /* the first on an empty list wakes the I/O thread, unless it is running (then it drains
     * the list before it sleeps: it sets io_idle, then looks at the list, both seq_cst) */
    if (!head && __atomic_load_n(&h->io_idle, __ATOMIC_SEQ_CST)) {
        if (tl_hold && (!tl_held || tl_held->h == h)) {
            /* the flush wakes, through the last connection that needed it: if that one is gone
             * at the flush, the I/O thread ran after its push and drains before it sleeps */
            if (tl_held != c) {
                conn_ref(c);
                if (tl_held)
                    conn_unref(tl_held);
                tl_held = c;
            }
        } else {
            wake_io_thread(h);
        }
    }
}

void ck_httpd_wake_hold(void)
{
    tl_hold++;
}

void ck_httpd_wake_flush(void)
{
    if (tl_hold > 0 && --tl_hold > 0)
        return;
    struct conn *c = tl_held;
    tl_held = NULL;
    if (!c)
        return;
    /* a connection that is not gone has its server (under its lock: closing takes it) */
    pthread_mutex_lock(&c->mu);
    if (!c->gone && __atomic_load_n(&c->h->wake_head, __ATOMIC_SEQ_CST) &&
        __atomic_load_n(&c->h->io_idle, __ATOMIC_SEQ_CST))
        wake_io_thread(c->h);
    pthread_mutex_unlock(&c->mu);
    conn_unref(c);
}

static size_t pending_locked(struct conn *c)
{
    return evbuffer_get_length(c->outbox) + __atomic_load_n(&c->io_pending, __ATOMIC_RELAXED);
}

/* ---- response builders ------------------------------------------------------------------ */

static bool status_has_body(int status)
{
    return !(status < 200 || status == 204 || status == 304);
}

static void add_head(struct evbuffer *b, int status, const char *content_type,
                     const char *extra_headers)
{
    char date[32];
    ck_http__date(date);
    evbuffer_add_printf(b, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, ck_http__reason(status), date);
    if (content_type && *content_type)
        evbuffer_add_printf(b, "Content-Type: %s\r\n", content_type);
    if (extra_headers && *extra_headers)
        evbuffer_add(b, extra_headers, strlen(extra_headers));
}

void ck_http_respond(ck_http_resp *resp, int status, const char *content_type,
                     const char *extra_headers, const char *body, size_t len)
{
    if (!resp_claim(resp))
        return;
    struct conn *c = resp->c;
    bool close = !resp->keepalive ||
                 (extra_headers && ck_http__lines_have_token(extra_headers, "Connection", "close"));
    struct evbuffer *b = evbuffer_new();
    add_head(b, status, content_type, extra_headers);
    if (status_has_body(status))
        evbuffer_add_printf(b, "Content-Length: %zu\r\n", len);
    if (close)
        evbuffer_add(b, "Connection: close\r\n", 19);
    else if (resp->http10)
        evbuffer_add(b, "Connection: keep-alive\r\n", 24);
    evbuffer_add(b, "\r\n", 2);
    if (!resp->head && status_has_body(status) && len)
        evbuffer_add(b, body, len);

    pthread_mutex_lock(&c->mu);
    if (!c->gone) {
        evbuffer_add_buffer(c->outbox, b);
        c->events |= EV_RESP_DONE;
        c->resp_close = close;
        schedule_wake_locked(c);
    }
    pthread_mutex_unlock(&c->mu);
    evbuffer_free(b);
    ck__httpd_resp_unref(resp);
}

/* A stream on a connection that is already gone still gets its on_close, on the I/O thread. */
static void late_close_cb(evutil_socket_t fd, short what, void *arg)
{
    ck_http_stream *s = arg;
    if (!s->close_called) {
        s->close_called = true;
        if (s->on_close)
            s->on_close(s->ctx);
    }
    ck_http_stream_release(s);
}

static ck_http_stream *stream_open(ck_http_resp *resp, struct evbuffer *head, unsigned event,
                                   bool tunnel, ck_http_data_cb on_data, ck_http_close_cb on_close,
                                   void *ctx)
{
    struct conn *c = resp->c;
    ck_http_stream *s = xcalloc(1, sizeof *s);
    s->refs = 2;          /* the caller's and the connection's */
    s->c = c;
    conn_ref(c);
    s->tunnel = tunnel;
    s->head = !tunnel && resp->head;
    s->chunked = !tunnel && !resp->http10 && !resp->head;
    s->on_close = on_close;
    s->on_data = on_data;
    s->ctx = ctx;

    pthread_mutex_lock(&c->mu);
    bool gone = c->gone;
    if (!gone) {
        evbuffer_add_buffer(c->outbox, head);
        c->stream = s;
        c->events |= event;
        schedule_wake_locked(c);
    } else {
        s->closed = true;
    }
    pthread_mutex_unlock(&c->mu);
    if (gone) {
        pthread_mutex_lock(&c->hub->mu);
        bool queued = c->hub->base &&
                      event_base_once(c->hub->base, -1, EV_TIMEOUT, late_close_cb, s, NULL) == 0;
        pthread_mutex_unlock(&c->hub->mu);
        if (!queued)
            late_close_cb(-1, 0, s);   /* the server is stopped: no I/O thread to run it */
    }
    evbuffer_free(head);
    ck__httpd_resp_unref(resp);
    return s;
}

ck_http_stream *ck_http_stream_start(ck_http_resp *resp, int status, const char *content_type,
                                     const char *extra_headers, ck_http_close_cb on_close,
                                     void *close_ctx)
{
    if (!resp_claim(resp))
        return NULL;
    struct evbuffer *b = evbuffer_new();
    add_head(b, status, content_type, extra_headers);
    if (resp->http10 || resp->head)
        evbuffer_add(b, "Connection: close\r\n", 19);
    else
        evbuffer_add(b, "Transfer-Encoding: chunked\r\n", 28);
    evbuffer_add(b, "\r\n", 2);
    return stream_open(resp, b, EV_STREAM_START, false, NULL, on_close, close_ctx);
}

ck_http_stream *ck_http_upgrade(ck_http_resp *resp, const char *extra_headers,
                                ck_http_data_cb on_data, ck_http_close_cb on_close, void *ctx)
{
    if (!resp_claim(resp))
        return NULL;
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "HTTP/1.1 101 Switching Protocols\r\n");
    if (extra_headers && *extra_headers)
        evbuffer_add(b, extra_headers, strlen(extra_headers));
    evbuffer_add(b, "\r\n", 2);
    return stream_open(resp, b, EV_UPGRADE, true, on_data, on_close, ctx);
}

static void take_finish(struct take *t, bool ok)
{
    pthread_mutex_lock(&t->mu);
    t->ok = ok;
    t->done = true;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->mu);
}

int ck_http_upgrade_take(ck_http_resp *resp, const char *extra_headers, ck_http_taken *out,
                         ck_error **err)
{
    memset(out, 0, sizeof *out);
    out->fd = -1;
    if (!resp_claim(resp))
        return ck_error_set(err, CK_E_INTERNAL, "request already answered");
    struct conn *c = resp->c;
    struct take t = {.fd = -1, .unsent = evbuffer_new(), .input = evbuffer_new()};
    pthread_mutex_init(&t.mu, NULL);
    pthread_cond_init(&t.cond, NULL);
    pthread_mutex_lock(&c->mu);
    bool gone = c->gone;
    if (!gone) {
        evbuffer_add_printf(c->outbox, "HTTP/1.1 101 Switching Protocols\r\n");
        if (extra_headers && *extra_headers)
            evbuffer_add(c->outbox, extra_headers, strlen(extra_headers));
        evbuffer_add(c->outbox, "\r\n", 2);
        c->take = &t;
        c->events |= EV_TAKE;
        schedule_wake_locked(c);
    }
    pthread_mutex_unlock(&c->mu);
    ck__httpd_resp_unref(resp);
    int rc = 0;
    if (gone) {
        rc = ck_error_set(err, CK_E_UNAVAILABLE, "the client went away before the upgrade");
    } else {
        /* one trip through the I/O thread's loop; conn_close answers it if the connection ends
         * first (also at ck_httpd_stop) */
        pthread_mutex_lock(&t.mu);
        while (!t.done)
            pthread_cond_wait(&t.cond, &t.mu);
        pthread_mutex_unlock(&t.mu);
        if (!t.ok) {
            rc = ck_error_set(err, CK_E_UNAVAILABLE, "the client went away before the upgrade");
        } else {
            out->fd = t.fd;
            out->ssl = t.ssl;
            out->unsent_len = evbuffer_get_length(t.unsent);
            out->input_len = evbuffer_get_length(t.input);
            out->unsent = xmalloc(out->unsent_len + 1);
            out->input = xmalloc(out->input_len + 1);
            evbuffer_remove(t.unsent, out->unsent, out->unsent_len);
            evbuffer_remove(t.input, out->input, out->input_len);
        }
    }
    evbuffer_free(t.unsent);
    evbuffer_free(t.input);
    pthread_cond_destroy(&t.cond);
    pthread_mutex_destroy(&t.mu);
    return rc;
}

int ck_http_resp_tls_secret(const ck_http_resp *resp, ck_tlsrec_secret *out)
{
    /* written by the I/O thread before the request was queued (the queue's lock orders it),
     * never changed after */
    if (!resp->c || !resp->c->has_tls_secret)
        return -1;
    *out = resp->c->tls_secret;
    return 0;
}

void ck_http_taken_free(ck_http_taken *t)
{
    free(t->unsent);
    free(t->input);
    t->unsent = t->input = NULL;
    if (t->ssl)
        SSL_free(t->ssl);
    t->ssl = NULL;
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
}

/* evbuffer cleanup for referenced data: extra is the release function */
static void release_ref(const void *data, size_t len, void *extra)
{
    ((ck_http_release_fn)(uintptr_t)extra)((void *)data);
}

static void release_free(void *data)
{
    free(data);
}

/* release != NULL: data is handed to the outbox by reference and released by it (or here if
 * not queued) */
static int stream_write(ck_http_stream *s, const void *data, size_t len,
                        ck_http_release_fn release)
{
    struct conn *c = s->c;
    int rc = 0;
    bool queued = false;
    pthread_mutex_lock(&c->mu);
    if (s->closed || c->gone) {
        rc = -1;
    } else if (len == 0 || s->head) {
        /* nothing to send (an empty chunk would end the stream) */
    } else {
        size_t pending = pending_locked(c);
        if (pending > 0 && pending + len > c->stream_limit) {
            s->closed = true;
            c->events |= EV_ABORT;
            rc = -1;
        } else {
            if (s->chunked)
                evbuffer_add_printf(c->outbox, "%zx\r\n", len);
            if (!release)
                evbuffer_add(c->outbox, data, len);
            else
                queued = evbuffer_add_reference(c->outbox, data, len, release_ref,
                                                (void *)(uintptr_t)release) == 0;
            if (s->chunked)
                evbuffer_add(c->outbox, "\r\n", 2);
        }
        schedule_wake_locked(c);
    }
    pthread_mutex_unlock(&c->mu);
    if (release && !queued)
        release((void *)data);
    return rc;
}

int ck_http_stream_write(ck_http_stream *s, const void *data, size_t len)
{
    return stream_write(s, data, len, NULL);
}

int ck_http_stream_write_owned(ck_http_stream *s, void *data, size_t len)
{
    return stream_write(s, data, len, release_free);
}

int ck_http_stream_write_ref(ck_http_stream *s, void *data, size_t len, ck_http_release_fn release)
{
    return stream_write(s, data, len, release);
}

size_t ck_http_stream_pending(ck_http_stream *s)
{
    pthread_mutex_lock(&s->c->mu);
    size_t n = pending_locked(s->c);
    pthread_mutex_unlock(&s->c->mu);
    return n;
}

void ck_http_stream_end(ck_http_stream *s)
{
    struct conn *c = s->c;
    pthread_mutex_lock(&c->mu);
    if (!s->closed && !c->gone) {
        s->closed = true;
        if (s->chunked)
            evbuffer_add(c->outbox, "0\r\n\r\n", 5);
        c->events |= EV_STREAM_END;
        schedule_wake_locked(c);
    }
    pthread_mutex_unlock(&c->mu);
}

/* ---- I/O thread: connection lifecycle --------------------------------------------------- */

static void arm_timer(struct conn *c, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

static void stream_fire_close(ck_http_stream *s)
{
    if (!s->close_called) {
        s->close_called = true;
        if (s->on_close)
            s->on_close(s->ctx);
    }
}

/* Tear the connection down now (I/O thread, or the stopping thread after the loop ended). */
static void conn_close(struct conn *c)
{
    if (!c->io)
        return;
    pthread_mutex_lock(&c->mu);
    c->gone = true;
    ck_http_stream *s = c->stream;
    c->stream = NULL;
    struct take *take = c->take;
    c->take = NULL;
    if (s)
        s->closed = true;
    evbuffer_drain(c->outbox, evbuffer_get_length(c->outbox));
    pthread_mutex_unlock(&c->mu);
    if (take)
        take_finish(take, false);

    if (c->cur) {
        ck__httpd_resp_free(c->cur);
        c->cur = NULL;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        c->h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    evbuffer_remove_cb(ck_connio_output(c->io), outbuf_cb, c);
    ck_connio_free(c->io);
    c->io = NULL;
    event_free(c->timer);
    c->io_stream = NULL;
    if (s) {
        stream_fire_close(s);
        ck_http_stream_release(s);
    }
    conn_unref(c);
}

static void finish_write_then_linger(struct conn *c)
{
    c->write_shut = true;
    ck_connio_shutdown_write(c->io);
    arm_timer(c, LINGER_MS);
}

/* Stop taking requests; close once what is queued has been written (and the peer's leftovers
 * were read, so the kernel does not answer them with a reset that eats our response). */
static void conn_begin_close(struct conn *c)
{
    c->state = CS_CLOSING;
    if (c->cur) {
        ck__httpd_resp_free(c->cur);
        c->cur = NULL;
    }
    ck_connio_flush(c->io);
    if (ck_connio_unsent(c->io) == 0)
        finish_write_then_linger(c);
    else
        arm_timer(c, CLOSE_WAIT_MS);
}

/* The server's own error answer (malformed, too large...): metav1.Status JSON, then close. */
void ck__httpd_conn_fail(struct conn *c, int status, const char *reason, const char *message)
{
    cleanup_free char *body = ck_http__status_json(status, reason, message);
    char date[32];
    ck_http__date(date);
    evbuffer_add_printf(ck_connio_output(c->io),
                        "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: application/json\r\n"
                        "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                        status, ck_http__reason(status), date, strlen(body), body);
    conn_begin_close(c);
}

static void conn_next_request(struct conn *c)
{
    c->state = CS_HEADERS;
    c->header_timer_armed = false;
    c->got_request_line = false;
    c->hdr_bytes = 0;
    arm_timer(c, c->h->cfg.idle_timeout_ms);
    conn_process(c);
}

/* A connection taken off the wake list (I/O thread). */
static void conn_wake(struct conn *c)
{
    pthread_mutex_lock(&c->mu);
    unsigned ev = c->events;
    c->events = 0;
    c->wake_scheduled = false;
    bool resp_close = c->resp_close;
    c->resp_close = false;
    ck_http_stream *started = c->stream;
    struct take *take = (ev & EV_TAKE) ? c->take : NULL;
    if (take)
        c->take = NULL;
    size_t out = evbuffer_get_length(c->outbox);
    if (out) {
        /* no copy: the chains move (connio gathers them into TLS records) */
        evbuffer_add_buffer(ck_connio_output(c->io), c->outbox);
    }
    pthread_mutex_unlock(&c->mu);
    if (out)
        ck_connio_flush(c->io);         /* written now; EV_WRITE only if the socket is full */

    if (ev & EV_ABORT) {
        if (take)
            take_finish(take, false);
        conn_close(c);
        return;
    }
    if (take) {
        /* the socket (and the client's bytes after its request) go to the taker; the
         * connection ends here without touching them */
        bool ok = ck_connio_detach(c->io, &take->fd, &take->ssl, take->unsent, take->input) == 0;
        if (ok)
            c->ssl = NULL;
        take_finish(take, ok);
        conn_close(c);
        return;
    }
    if (ev & (EV_STREAM_START | EV_UPGRADE)) {
        c->io_stream = started;
        c->state = (ev & EV_UPGRADE) ? CS_TUNNEL : CS_STREAMING;
        if (c->state == CS_TUNNEL)
            ck_connio_keep_buffers(c->io);   /* bulk both ways: no free/malloc per record */
        if (c->peer_eof) {
            conn_close(c);
            return;
        }
        if (c->state == CS_TUNNEL)
            conn_process(c);   /* bytes the client sent right after its upgrade request */
    }
    if (ev & EV_STREAM_END) {
        ck_http_stream *s = c->io_stream;
        c->io_stream = NULL;
        pthread_mutex_lock(&c->mu);
        if (c->stream == s)
            c->stream = NULL;
        pthread_mutex_unlock(&c->mu);
        bool reuse = s && s->chunked && c->keepalive && !c->peer_eof;
        if (s) {
            stream_fire_close(s);
            ck_http_stream_release(s);
        }
        if (reuse)
            conn_next_request(c);
        else
            conn_begin_close(c);
        return;
    }
    if (ev & EV_RESP_DONE) {
        if (!c->keepalive || resp_close || c->peer_eof)
            conn_begin_close(c);
        else
            conn_next_request(c);
    }
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    ck__httpd_io_awake(c->h);
    switch (c->state) {
    case CS_HEADERS:
    case CS_BODY:
    case CS_CLOSING:
        conn_close(c);
        break;
    default:
        break;
    }
}

static void read_cb(ck_connio *io, void *arg)
{
    struct conn *c = arg;
    ck__httpd_io_awake(c->h);
    conn_process(c);
}

static void write_cb(ck_connio *io, void *arg)
{
    struct conn *c = arg;
    ck__httpd_io_awake(c->h);
    if (c->state == CS_CLOSING && !c->write_shut && ck_connio_unsent(io) == 0)
        finish_write_then_linger(c);
}

static void event_cb(ck_connio *io, int what, void *arg)
{
    struct conn *c = arg;
    ck__httpd_io_awake(c->h);
    if ((what & CK_CONNIO_EOF) && !(what & CK_CONNIO_ERROR) && c->state == CS_DISPATCHED) {
        /* Half-closed after sending a request: answer it, then close. */
        c->peer_eof = true;
        return;
    }
    conn_close(c);
}

static void outbuf_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct conn *c = arg;
    if (info->n_added)
        __atomic_add_fetch(&c->io_pending, info->n_added, __ATOMIC_RELAXED);
    if (info->n_deleted)
        __atomic_sub_fetch(&c->io_pending, info->n_deleted, __ATOMIC_RELAXED);
}

static void conn_tls_identity(struct conn *c)
{
    if (!c->ssl || c->tls_checked)
        return;
    c->tls_checked = true;
    c->has_tls_secret = ck_tlsrec_kept(c->ssl, &c->tls_secret, NULL) == 0;
    X509 *peer = SSL_get0_peer_certificate(c->ssl);
    if (!peer || SSL_get_verify_result(c->ssl) != X509_V_OK)
        return;                                 /* absent or unverified: anonymous */
    X509_NAME *name = X509_get_subject_name(peer);
    for (int idx = -1; (idx = X509_NAME_get_index_by_NID(name, NID_commonName, idx)) >= 0;) {
        unsigned char *utf8 = NULL;
        int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)));
        if (len >= 0 && !c->client_cn)
            c->client_cn = xstrndup((char *)utf8, (size_t)len);
        OPENSSL_free(utf8);
    }
    for (int idx = -1; (idx = X509_NAME_get_index_by_NID(name, NID_organizationName, idx)) >= 0;) {
        unsigned char *utf8 = NULL;
        int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)));
        if (len >= 0) {
            c->client_orgs = xrealloc(c->client_orgs, (c->nclient_orgs + 1) * sizeof(char *));
            c->client_orgs[c->nclient_orgs++] = xstrndup((char *)utf8, (size_t)len);
        }
        OPENSSL_free(utf8);
    }
}

static void conn_dispatch(struct conn *c)
{
    ck_httpd *h = c->h;
    ck_http_resp *r = c->cur;
    c->cur = NULL;
    conn_tls_identity(c);
    if (!r->body)
        r->body = xstrdup("");
    r->body[r->req.body_len] = '\0';
    r->req.body = r->body;
    r->req.client_cn = c->client_cn;
    r->req.client_orgs = c->client_orgs;
    r->req.nclient_orgs = c->nclient_orgs;
    r->req.remote_addr = c->remote;
    r->req.received_ns = ck_now_ns();
    r->c = c;
    conn_ref(c);
    r->refs = 2;
    c->keepalive = r->keepalive;
    c->state = CS_DISPATCHED;
    evtimer_del(c->timer);

    ck__httpd_queue_request(h, r);
}

static void deliver_tunnel(struct conn *c, struct evbuffer *in)
{
    ck_http_stream *s = c->io_stream;
    while (evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        if (s && s->on_data)
            s->on_data(s->ctx, v.iov_base, v.iov_len);
        evbuffer_drain(in, v.iov_len);
    }
}

static void conn_process(struct conn *c)
{
    struct evbuffer *in = ck_connio_input(c->io);
    for (;;) {
        int st;
        switch (c->state) {
        case CS_HEADERS:
            if (!c->cur) {
                if (evbuffer_get_length(in) == 0)
                    return;
                c->cur = xcalloc(1, sizeof *c->cur);
            }
            if (!c->header_timer_armed) {       /* from the request's first byte */
                c->header_timer_armed = true;
                arm_timer(c, c->h->cfg.header_timeout_ms);
            }
            st = ck__httpd_parse_headers(c, in);
            if (st <= 0)
                return;
            st = ck__httpd_prepare_body(c, in);
            if (st) {
                ck__httpd_fail_status(c, st);
                return;
            }
            if (c->body_mode == BODY_NONE) {
                conn_dispatch(c);
                return;
            }
            c->state = CS_BODY;
            c->hdr_bytes = 0;                   /* trailers get their own header budget */
            arm_timer(c, c->h->cfg.idle_timeout_ms);
            break;
        case CS_BODY:
            if (evbuffer_get_length(in) > 0)
                arm_timer(c, c->h->cfg.idle_timeout_ms);   /* progress resets the body clock */
            st = ck__httpd_parse_body(c, in);
            if (st == 0)
                return;
            if (st != 1) {
                ck__httpd_fail_status(c, st);
                return;
            }
            conn_dispatch(c);
            return;
        case CS_TUNNEL:
            deliver_tunnel(c, in);
            return;
        case CS_CLOSING:
            evbuffer_drain(in, evbuffer_get_length(in));
            return;
        case CS_DISPATCHED:
        case CS_STREAMING:
            return;
        }
    }
}

/* ---- accepting ---------------------------------------------------------------------------- */

static void accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    ck_httpd *h = arg;
    ck__httpd_io_awake(h);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = xcalloc(1, sizeof *c);
    c->h = h;
    c->hub = h->hub;
    __atomic_add_fetch(&h->hub->refs, 1, __ATOMIC_RELAXED);
    c->stream_limit = h->cfg.stream_buffer_limit;
    c->refs = 1;
    pthread_mutex_init(&c->mu, NULL);
    c->outbox = evbuffer_new();
    if (sa->sa_family == AF_INET6) {
        char ip[INET6_ADDRSTRLEN];
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        snprintf(c->remote, sizeof c->remote, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else if (sa->sa_family == AF_INET) {
        char ip[INET_ADDRSTRLEN];
        struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        snprintf(c->remote, sizeof c->remote, "%s:%u", ip, ntohs(s4->sin_port));
    }
    if (h->ssl_ctx)
        c->ssl = SSL_new(h->ssl_ctx);
    if (!(h->ssl_ctx && !c->ssl))
        c->io = ck_connio_new(h->base, fd, c->ssl);
    if (!c->io) {
        log_warn("httpd: cannot set up connection from %s", c->remote);
        if (c->ssl)
            SSL_free(c->ssl);
        close(fd);
        conn_unref(c);
        return;
    }
    c->timer = evtimer_new(h->base, timer_cb, c);
    evbuffer_add_cb(ck_connio_output(c->io), outbuf_cb, c);
    /* Pipelined input waiting behind a dispatched request stays bounded. */
    ck_connio_set_read_limit(c->io, h->cfg.max_header_bytes + 64 * 1024);
    ck_connio_setcb(c->io, read_cb, write_cb, event_cb, c);
    ck_connio_start(c->io);
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    c->state = CS_HEADERS;
    c->header_timer_armed = true;                /* covers the TLS handshake too */
    arm_timer(c, h->cfg.header_timeout_ms);
}

static void listen_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    ck_httpd *h = arg;
    evconnlistener_enable(h->lis);
}

static void accept_error_cb(struct evconnlistener *lis, void *arg)
{
    ck_httpd *h = arg;
    int e = EVUTIL_SOCKET_ERROR();
    log_warn("httpd: accept: %s", evutil_socket_error_to_string(e));
    /* Out of descriptors: pause accepting briefly rather than spin on the error. */
    evconnlistener_disable(lis);
    struct timeval tv = {0, 100 * 1000};
    evtimer_add(h->listen_retry, &tv);
}

/* Take the whole wake list and serve it in the order it was filled.  false if it was empty. */
static bool drain_wakes(ck_httpd *h)
{
    struct conn *c = __atomic_exchange_n(&h->wake_head, NULL, __ATOMIC_SEQ_CST);
    if (!c)
        return false;
    struct conn *fifo = NULL;
    while (c) {
        struct conn *next = c->wnext;
        c->wnext = fifo;
        fifo = c;
        c = next;
    }
    while (fifo) {
        c = fifo;
        fifo = c->wnext;
        if (c->io)
            conn_wake(c);
        else {                          /* closed meanwhile */
            pthread_mutex_lock(&c->mu);
            c->wake_scheduled = false;
            pthread_mutex_unlock(&c->mu);
        }
        conn_unref(c);
    }
    return true;
}

/* The eventfd is edge-triggered: each write is one wake-up, nothing to read back. */
static void wake_ev_cb(evutil_socket_t fd, short what, void *arg)
{
    ck_httpd *h = arg;
    ck__httpd_io_awake(h);
    drain_wakes(h);
}

static void *io_main(void *arg)
{
    ck_httpd *h = arg;
    pthread_setname_np(pthread_self(), "http-io");
    while (!__atomic_load_n(&h->io_quit, __ATOMIC_ACQUIRE)) {
        /* about to sleep: say so, then look at the list once more (pairs with the writer's
         * push-then-load in schedule_wake_locked) */
        __atomic_store_n(&h->io_idle, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&h->wake_head, __ATOMIC_SEQ_CST)) {
            ck__httpd_io_awake(h);
            drain_wakes(h);
            continue;
        }
        event_base_loop(h->base, EVLOOP_ONCE);
    }
    return NULL;
}

/* ---- start / stop ------------------------------------------------------------------------- */

static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;
static void evthread_init(void)
{
    evthread_use_pthreads();
    /* connio writes with plain writev (evbuffer_write), not MSG_NOSIGNAL: a peer that vanished must
     * be an EPIPE error, not a process-killing signal.  Leave a handler someone installed. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
}

ck_httpd *ck_httpd_start(const ck_httpd_config *cfg, ck_error **err)
{
    if (!cfg->handler) {
        ck_error_set(err, CK_E_USAGE, "httpd: no handler");
        return NULL;
    }
    if (!cfg->cert_file != !cfg->key_file) {
        ck_error_set(err, CK_E_USAGE, "httpd: a serving certificate needs both cert and key");
        return NULL;
    }
    pthread_once(&evthread_once, evthread_init);
    ck_httpd *h = xcalloc(1, sizeof *h);
    h->wake_fd = -1;
    h->cfg = *cfg;
    if (h->cfg.workers <= 0)
        h->cfg.workers = DEFAULT_WORKERS;
    if (!h->cfg.max_header_bytes)
        h->cfg.max_header_bytes = DEFAULT_MAX_HEADER_BYTES;
    if (!h->cfg.max_body_bytes)
        h->cfg.max_body_bytes = DEFAULT_MAX_BODY_BYTES;
    if (h->cfg.header_timeout_ms <= 0)
        h->cfg.header_timeout_ms = DEFAULT_HEADER_TIMEOUT_MS;
    if (h->cfg.idle_timeout_ms <= 0)
        h->cfg.idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_MS;
    if (!h->cfg.max_headers)
        h->cfg.max_headers = DEFAULT_MAX_HEADERS;
    if (!h->cfg.stream_buffer_limit)
        h->cfg.stream_buffer_limit = DEFAULT_STREAM_LIMIT;
    h->cfg.bind_addr = NULL;   /* not kept: only used below */
    h->cfg.cert_file = h->cfg.key_file = h->cfg.client_ca_file = NULL;
    h->max_workers = h->cfg.max_workers > 0 ? h->cfg.max_workers : 4 * h->cfg.workers;
    if (h->max_workers < DEFAULT_MIN_MAX_WORKERS && h->cfg.max_workers <= 0)
        h->max_workers = DEFAULT_MIN_MAX_WORKERS;
    if (h->max_workers < h->cfg.workers)
        h->max_workers = h->cfg.workers;
    pthread_mutex_init(&h->qmu, NULL);
    h->hub = xcalloc(1, sizeof *h->hub);
    h->hub->refs = 1;
    pthread_mutex_init(&h->hub->mu, NULL);

    if (cfg->cert_file &&
        !(h->ssl_ctx = ck_connio_tls_server_ctx(cfg->cert_file, cfg->key_file,
                                                cfg->client_ca_file, err)))
        goto fail;
    h->base = h->hub->base = event_base_new();
    if (!h->base) {
        ck_error_set(err, CK_E_INTERNAL, "httpd: event_base_new failed");
        goto fail;
    }
    h->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (h->wake_fd < 0) {
        ck_error_sys(err, CK_E_INTERNAL, "httpd: eventfd");
        goto fail;
    }
    h->wake_ev = event_new(h->base, h->wake_fd, EV_READ | EV_PERSIST | EV_ET, wake_ev_cb, h);
    if (!h->wake_ev || event_add(h->wake_ev, NULL) != 0) {
        ck_error_set(err, CK_E_INTERNAL, "httpd: cannot watch the wake eventfd");
        goto fail;
    }
    const char *addr = cfg->bind_addr ? cfg->bind_addr : "127.0.0.1";
    struct sockaddr_storage ss = {0};
    int sslen;
    char spec[128];
    snprintf(spec, sizeof spec, strchr(addr, ':') ? "[%s]:%d" : "%s:%d", addr, cfg->port);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (cfg->port < 0 || cfg->port > 65535) {
        ck_error_set(err, CK_E_USAGE, "httpd: bad port %d", cfg->port);
        goto fail;
    } else if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)cfg->port);
        sslen = sizeof *s4;
    } else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)cfg->port);
        sslen = sizeof *s6;
    } else {
        ck_error_set(err, CK_E_USAGE, "httpd: bad bind address %s", addr);
        goto fail;
    }
    h->lis = evconnlistener_new_bind(h->base, accept_cb, h,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                                         LEV_OPT_CLOSE_ON_EXEC,
                                     /* a burst of connects must not overflow the accept
                                      * queue (dropped SYNs cost the client 1 s); the
                                      * kernel caps this at net.core.somaxconn, as Go does */
                                     4096, (struct sockaddr *)&ss, sslen);
    if (!h->lis) {
        ck_error_sys(err, CK_E_IO, "httpd: listen on %s", spec);
        goto fail;
    }
    evconnlistener_set_error_cb(h->lis, accept_error_cb);
    h->listen_retry = evtimer_new(h->base, listen_retry_cb, h);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    getsockname(evconnlistener_get_fd(h->lis), (struct sockaddr *)&bound, &blen);
    h->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);

    h->stall_ev = evtimer_new(h->base, ck__httpd_stall_cb, h);
    if (!h->stall_ev) {
        ck_error_set(err, CK_E_INTERNAL, "httpd: evtimer_new failed");
        goto fail;
    }
    for (int i = 0; i < h->cfg.workers; i++) {
        pthread_mutex_lock(&h->qmu);
        h->nlive++;
        pthread_mutex_unlock(&h->qmu);
        if (ck__httpd_start_worker(h, false) < 0) {
            pthread_mutex_lock(&h->qmu);
            h->nlive--;
            pthread_mutex_unlock(&h->qmu);
            ck_error_set(err, CK_E_INTERNAL, "httpd: cannot start worker threads");
            goto fail;
        }
    }
    if (pthread_create(&h->io_thread, NULL, io_main, h)) {
        ck_error_set(err, CK_E_INTERNAL, "httpd: cannot start the I/O thread");
        goto fail;
    }
    h->io_started = true;
    return h;
fail:
    ck_httpd_stop(h);
    return NULL;
}

int ck_httpd_port(ck_httpd *h)
{
    return h->port;
}

void ck_httpd_stop(ck_httpd *h)
{
    if (!h)
        return;
    if (h->io_started) {
        __atomic_store_n(&h->io_quit, 1, __ATOMIC_RELEASE);
        wake_io_thread(h);
        pthread_join(h->io_thread, NULL);
    }
    if (h->lis)
        evconnlistener_free(h->lis);
    if (h->listen_retry)
        event_free(h->listen_retry);
    while (h->conns)
        conn_close(h->conns);

    ck__httpd_stop_workers(h);
    if (h->stall_ev)
        event_free(h->stall_ev);
    while (h->qhead) {
        ck_http_resp *r = h->qhead;
        h->qhead = r->qnext;
        ck__httpd_resp_free(r);
    }
    drain_wakes(h);                   /* every connection is closed: this only drops refs */
    if (h->wake_ev)
        event_free(h->wake_ev);
    if (h->wake_fd >= 0)
        close(h->wake_fd);
    pthread_mutex_lock(&h->hub->mu);
    h->hub->base = NULL;              /* from now on late on_close runs on the caller's thread */
    pthread_mutex_unlock(&h->hub->mu);
    hub_unref(h->hub);
    if (h->base) {
        event_base_loop(h->base, EVLOOP_NONBLOCK);   /* late on_close callbacks queued before */
        event_base_free(h->base);
    }
    if (h->ssl_ctx)
        SSL_CTX_free(h->ssl_ctx);
    pthread_mutex_destroy(&h->qmu);
    free(h);
}
