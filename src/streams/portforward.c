/* portforward.c - port-forward, node side: SPDY/3.1 `portforward.k8s.io`, raw or inside
 * websocket messages (`SPDY/3.1+portforward.k8s.io`).
 *
 * The pump thread owns the client's connection (tunnel.h) and every pod socket.  Each forwarded
 * connection is a pair of client-opened streams sharing a requestID: `error`
 * (we write a message there if the port cannot be reached) and `data` (the bytes).  Once both
 * exist the pump connects through the kubelet's connect callback and copies both ways; the
 * pod closing its side ends the data stream (FIN), the client's FIN half-closes the socket.
 */
#include "streams/tunnel.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lib/http_util.h"
#include "lib/log.h"

#define MAX_PAIRS 256
#define PAIR_IN_LIMIT (4u << 20)

typedef struct pair {
    char *request_id;
    int port;
    uint32_t err_id, data_id;
    int fd;                 /* -1 until connected */
    bool connect_tried;
    bool client_fin;        /* client sent FIN on data: shut our write side after in_q */
    bool pod_eof;
    bool shut_wr;
    bool reset;             /* client reset a stream: drop the pair */
    ck_buf in_q;            /* client -> pod (under t->mu) */
    size_t in_off;          /* bytes of in_q already written to the pod */
} pair;

typedef struct pfsession {
    ck_streams_config cfg;
    ck_stream_connect_fn connect;
    void *ctx;
    ck_tunnel *t;
    pair *pairs[MAX_PAIRS];   /* under t->mu */
    size_t npairs;
} pfsession;

static pair *find_pair(pfsession *s, const char *rid, uint32_t sid)
{
    for (size_t i = 0; i < s->npairs; i++) {
        pair *p = s->pairs[i];
        if ((rid && !strcmp(p->request_id, rid)) || (sid && (p->err_id == sid || p->data_id == sid)))
            return p;
    }
    return NULL;
}

static void on_spdy(void *user, ck_tunnel *t, const ck_spdy_frame *f)
{
    pfsession *s = user;
    ck_buf b;
    ck_buf_init(&b, 0);
    if (f->type == CK_SPDY_SYN_STREAM) {
        const char *st = ck_spdy_frame_header(f, "streamtype");
        const char *port = ck_spdy_frame_header(f, "port");
        const char *rid = ck_spdy_frame_header(f, "requestid");
        char ridbuf[32];
        if (!rid) {   /* very old clients: pair by stream order */
            snprintf(ridbuf, sizeof ridbuf, "s%u", st && !strcmp(st, "data") ? f->stream_id - 2
                                                                              : f->stream_id);
            rid = ridbuf;
        }
        long pn = port ? strtol(port, NULL, 10) : 0;
        bool is_err = st && !strcmp(st, "error"), is_data = st && !strcmp(st, "data");
        pair *p = find_pair(s, rid, 0);
        if ((!is_err && !is_data) || pn <= 0 || pn > 65535 ||
            (!p && s->npairs == MAX_PAIRS)) {
            ck_spdy_rst_stream(&b, f->stream_id, CK_SPDY_PROTOCOL_ERROR);
        } else {
            if (!p) {
                p = xcalloc(1, sizeof *p);
                p->request_id = xstrdup(rid);
                p->port = (int)pn;
                p->fd = -1;
                ck_buf_init(&p->in_q, PAIR_IN_LIMIT);
                s->pairs[s->npairs++] = p;
            }
            if (is_err)
                p->err_id = f->stream_id;
            else
                p->data_id = f->stream_id;
            ck_spdy_syn_reply(&t->spdy, &b, f->stream_id, 0, NULL, 0);
        }
    } else if (f->type == CK_SPDY_DATA) {
        pair *p = find_pair(s, NULL, f->stream_id);
        if (p && f->stream_id == p->data_id) {
            /* drop what was written once it outweighs what was not (amortized O(1) a byte),
             * and whenever the limit would otherwise count it */
            if (p->in_off && (p->in_off >= p->in_q.len - p->in_off ||
                              p->in_q.len + f->len > PAIR_IN_LIMIT)) {
                memmove(p->in_q.data, p->in_q.data + p->in_off, p->in_q.len - p->in_off);
                p->in_q.len -= p->in_off;
                p->in_off = 0;
            }
            if (ck_buf_add(&p->in_q, f->data, f->len) < 0)
                p->reset = true;   /* the pod does not keep up: drop this connection */
            if (f->flags & CK_SPDY_FLAG_FIN)
                p->client_fin = true;
        }
    } else if (f->type == CK_SPDY_RST_STREAM) {
        pair *p = find_pair(s, NULL, f->stream_id);
        if (p)
            p->reset = true;
    }
    if (b.len)
        ck_tunnel_send_spdy_bytes(t, &b);
    ck_buf_free(&b);
}

static void pair_free(pair *p)
{
    if (p->fd >= 0)
        close(p->fd);
    ck_buf_free(&p->in_q);
    free(p->request_id);
    free(p);
}

/* Under t->mu: DATA on stream id (FIN if fin). */
static void send_data(ck_tunnel *t, uint32_t id, const void *d, size_t len, bool fin)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    const uint8_t *q = d;
    do {   /* frames (and websocket messages) of at most 64 KiB */
        size_t n = len > 65536 ? 65536 : len;
        ck_buf_reset(&b);
        ck_spdy_data(&b, id, fin && n == len ? CK_SPDY_FLAG_FIN : 0, q, n);
        ck_tunnel_send_spdy_bytes(t, &b);
        q += n;
        len -= n;
    } while (len > 0);
    ck_buf_free(&b);
}

/* In a bulk episode poll reports a pod socket readable once CK_STREAMS_BULK_READ bytes wait (or
 * it closed); the pump's 1 ms rounds pick up smaller amounts. */
static void set_rcvlowat(int fd, int lowat)
{
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
}

static void *pump(void *arg)
{
    pfsession *s = arg;
    ck_tunnel *t = s->t;
    int idle_ms = s->cfg.idle_timeout_ms > 0 ? s->cfg.idle_timeout_ms : 4 * 3600 * 1000;
    /* bulk coalescing (streams.h): an episode starts once CK_STREAMS_BULK_AFTER bytes came from
     * the pods, and ends (RCVLOWAT back to 1) after 100 ms without any */
    uint64_t out_total = 0;
    bool bulk = false;
    int64_t last_read_ns = 0;
    for (;;) {
        ssize_t waiting = ck_tunnel_flush(t);
        if (waiting < 0)
            break;
        if (ck_now_ns() - t->last_ns > (int64_t)idle_ms * 1000000) {
            log_info("streams: port-forward idle timeout");
            break;
        }
        bool room = (size_t)waiting < CK_TUNNEL_WIRE_HIGH;
        /* connect new pairs, drop finished ones, collect fds to poll */
        struct pollfd pf[MAX_PAIRS + 2];
        pair *pp[MAX_PAIRS + 2];
        int n = 0;
        pf[n] = (struct pollfd){t->wake_r, POLLIN, 0};
        pp[n++] = NULL;
        pf[n] = (struct pollfd){t->fd, 0, 0};   /* the client: events set below */
        pp[n++] = NULL;
        pthread_mutex_lock(&t->mu);
        for (size_t i = 0; i < s->npairs;) {
            pair *p = s->pairs[i];
            size_t unsent = p->in_q.len - p->in_off;
            bool done = p->reset || (p->pod_eof && p->client_fin && unsent == 0) ||
                        (p->connect_tried && p->fd < 0);
            if (done) {
                s->pairs[i] = s->pairs[--s->npairs];
                pair_free(p);
                continue;
            }
            i++;
            if (!p->connect_tried && p->err_id && p->data_id) {
                p->connect_tried = true;
                ck_error *e = NULL;
                /* connecting to a port in the pod is a local operation: done inline */
                pthread_mutex_unlock(&t->mu);
                int fd = s->connect(s->ctx, p->port, &e);
                pthread_mutex_lock(&t->mu);
                if (fd < 0) {
                    char *msg = xasprintf("error forwarding port %d to pod %s: %s", p->port,
                                          s->cfg.pod_desc ? s->cfg.pod_desc : "", e->msg);
                    send_data(t, p->err_id, msg, strlen(msg), true);
                    send_data(t, p->data_id, NULL, 0, true);
                    free(msg);
                    ck_error_free(e);
                    continue;
                }
                fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
                p->fd = fd;
                if (bulk)
                    set_rcvlowat(fd, CK_STREAMS_BULK_READ);
            }
            if (p->fd < 0)
                continue;
            short ev = 0;
            if (!p->pod_eof && room)
                ev |= POLLIN;
            if (unsent)
                ev |= POLLOUT;
            if (p->client_fin && unsent == 0 && !p->shut_wr) {
                shutdown(p->fd, SHUT_WR);
                p->shut_wr = true;
            }
            if (ev) {
                pf[n] = (struct pollfd){p->fd, ev, 0};
                pp[n++] = p;
            }
        }
        if (bulk && ck_now_ns() - last_read_ns > 100 * 1000000LL) {
            bulk = false;
            out_total = 0;
            for (size_t i = 0; i < s->npairs; i++)
                set_rcvlowat(s->pairs[i]->fd, 1);
        }
        pthread_mutex_unlock(&t->mu);
        pf[1].events = ck_tunnel_poll_events(t);
        if (poll(pf, (nfds_t)n, bulk ? CK_STREAMS_BULK_WAIT_US / 1000 : 1000) > 0)
            ck_tunnel_polled(t, pf[1].revents);
        ck_tunnel_drain_wake(t);
        pthread_mutex_lock(&t->mu);
        for (int i = 2; i < n; i++) {
            pair *p = pp[i];
            if (p->reset)
                continue;
            if (pf[i].revents & POLLOUT && p->in_off < p->in_q.len) {
                ssize_t w = write(p->fd, p->in_q.data + p->in_off, p->in_q.len - p->in_off);
                if (w > 0)
                    p->in_off += (size_t)w;
                else if (w < 0 && errno != EAGAIN && errno != EINTR)
                    p->in_off = p->in_q.len;   /* the pod closed its side: drop the rest */
                if (p->in_off == p->in_q.len) {
                    ck_buf_reset(&p->in_q);
                    p->in_off = 0;
                }
            }
            /* (in a bulk episode a socket below its RCVLOWAT is read on every round anyway) */
            if ((pf[i].revents & (POLLIN | POLLHUP | POLLERR)) ||
                (bulk && (pf[i].events & POLLIN))) {
                /* up to ~1 MiB straight into frames that go to httpd without a copy */
                ck_tunnel_batch b = {0};
                struct iovec iov[CK_TUNNEL_BATCH_SLOTS];
                int ni = ck_tunnel_batch_slots(t, &b, iov, CK_TUNNEL_BATCH_SLOTS);
                ssize_t r = readv(p->fd, iov, ni);
                int rerr = errno;
                if (r > 0) {
                    last_read_ns = ck_now_ns();
                    out_total += (uint64_t)r;
                    if (!bulk && out_total >= CK_STREAMS_BULK_AFTER) {
                        bulk = true;
                        for (size_t j = 0; j < s->npairs; j++)
                            set_rcvlowat(s->pairs[j]->fd, CK_STREAMS_BULK_READ);
                    }
                    ck_tunnel_batch_commit(t, &b, p->data_id, (size_t)r);
                    ck_tunnel_batch_send_locked(t, &b);
                }
                ck_tunnel_batch_free(&b);
                if (r == 0 || (r < 0 && rerr != EAGAIN && rerr != EINTR)) {
                    p->pod_eof = true;
                    send_data(t, p->data_id, NULL, 0, true);
                    send_data(t, p->err_id, NULL, 0, true);
                }
            }
        }
        pthread_mutex_unlock(&t->mu);
    }
    ck_tunnel_detach(t);
    ck_tunnel_finish(t);
    for (size_t i = 0; i < s->npairs; i++)
        pair_free(s->pairs[i]);
    free((char *)s->cfg.pod_desc);
    if (s->cfg.ctx_free)
        s->cfg.ctx_free(s->ctx);
    ck_tunnel_release(t);
    free(s);
    return NULL;
}

void ck_streams_serve_portforward(ck_http_req *req, ck_http_resp *resp,
                                  const ck_streams_config *cfg, ck_stream_connect_fn connect,
                                  void *ctx)
{
    bool ws = ck_tunnel_is_websocket(req), spdy = !ws && ck_tunnel_is_spdy(req);
    char *hdrs = NULL;
    const char *err = NULL;
    if (ws) {
        if (!ck_tunnel_header_has(req, "Sec-WebSocket-Protocol", "SPDY/3.1+portforward.k8s.io"))
            err = "unable to upgrade: no supported websocket subprotocol (want "
                  "SPDY/3.1+portforward.k8s.io)";
        else if (!(hdrs = ck_tunnel_ws_accept_headers(req, "SPDY/3.1+portforward.k8s.io")))
            err = "missing Sec-WebSocket-Key";
    } else if (spdy) {
        if (!ck_tunnel_header_has(req, "X-Stream-Protocol-Version", "portforward.k8s.io"))
            err = "unable to upgrade: unable to negotiate protocol: client supports none of "
                  "portforward.k8s.io";
        else
            hdrs = xstrdup("Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                           "X-Stream-Protocol-Version: portforward.k8s.io\r\n");
    } else {
        err = "Upgrade request required";
    }
    if (err) {
        char *body = ck_http__status_json(400, "BadRequest", err);
        ck_http_respond(resp, 400, "application/json", NULL, body, strlen(body));
        free(body);
        free(hdrs);
        if (cfg && cfg->ctx_free)
            cfg->ctx_free(ctx);
        return;
    }
    log_info("port-forward %s: %s", cfg && cfg->pod_desc ? cfg->pod_desc : "",
             ws ? "SPDY/3.1 inside websocket" : "SPDY/3.1");
    pfsession *s = xcalloc(1, sizeof *s);
    if (cfg)
        s->cfg = *cfg;
    s->cfg.pod_desc = cfg && cfg->pod_desc ? xstrdup(cfg->pod_desc) : NULL;
    s->connect = connect;
    s->ctx = ctx;
    s->t = ck_tunnel_open(resp, hdrs, ws, true, NULL, on_spdy, s);
    free(hdrs);
    if (!s->t) {
        free((char *)s->cfg.pod_desc);
        if (s->cfg.ctx_free)
            s->cfg.ctx_free(s->ctx);
        free(s);
        return;
    }
    pthread_t th;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &a, pump, s) != 0) {
        ck_tunnel *t = s->t;
        ck_tunnel_detach(t);
        ck_tunnel_finish(t);
        free((char *)s->cfg.pod_desc);
        if (s->cfg.ctx_free)
            s->cfg.ctx_free(s->ctx);
        free(s);
        ck_tunnel_release(t);
    }
    pthread_attr_destroy(&a);
}
