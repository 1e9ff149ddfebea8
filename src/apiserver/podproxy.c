/* podproxy.c - relay pods/exec|attach|portforward to the kubelet: see podproxy.h. */
#include "apiserver/podproxy.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lib/bufpool.h"
#include "lib/log.h"

#define HIGH_WATER (4u << 20)
#define IN_LIMIT (16u << 20)
#define HEAD_LIMIT (64u * 1024)
#define BODY_LIMIT (1u << 20)
#define CONNECT_TIMEOUT_MS 10000
#define BULK_AFTER (1u << 20)     /* as CK_STREAMS_BULK_AFTER / _READ on the node side */
#define BULK_READ (256 * 1024)

/* TLS sessions to resume, one per kubelet address (the newest ticket it gave us): a resumed
 * handshake skips the kubelet's certificate signature and our check of it on every exec.  A
 * small table: a cluster with more kubelets than slots just resumes less often. */
#define SESSION_SLOTS 64

static struct {
    pthread_mutex_t mu;
    SSL_CTX *ctx;
    char *cert, *key, *ca;
    int idle_ms;
    int key_idx;                 /* SSL ex_data: the "host:port" of a connection */
    struct {
        char *addr;
        SSL_SESSION *sess;
    } sessions[SESSION_SLOTS];
    unsigned next_slot;
} cfg = {.mu = PTHREAD_MUTEX_INITIALIZER, .idle_ms = 4 * 3600 * 1000, .key_idx = -1};

static void sessions_clear_locked(void)
{
    for (size_t i = 0; i < SESSION_SLOTS; i++) {
        free(cfg.sessions[i].addr);
        if (cfg.sessions[i].sess)
            SSL_SESSION_free(cfg.sessions[i].sess);
        cfg.sessions[i].addr = NULL;
        cfg.sessions[i].sess = NULL;
    }
}

/* OpenSSL calls this when the kubelet sends a ticket (TLS 1.3: after the handshake, seen by our
 * first read); keep the newest per address. */
static int session_new_cb(SSL *ssl, SSL_SESSION *sess)
{
    const char *addr = cfg.key_idx >= 0 ? SSL_get_ex_data(ssl, cfg.key_idx) : NULL;
    if (!addr || !SSL_SESSION_is_resumable(sess))
        return 0;
    pthread_mutex_lock(&cfg.mu);
    size_t slot = SESSION_SLOTS;
    for (size_t i = 0; i < SESSION_SLOTS && slot == SESSION_SLOTS; i++)
        if (cfg.sessions[i].addr && !strcmp(cfg.sessions[i].addr, addr))
            slot = i;
    if (slot == SESSION_SLOTS) {
        slot = cfg.next_slot++ % SESSION_SLOTS;
        free(cfg.sessions[slot].addr);
        cfg.sessions[slot].addr = xstrdup(addr);
    }
    if (cfg.sessions[slot].sess)
        SSL_SESSION_free(cfg.sessions[slot].sess);
    cfg.sessions[slot].sess = sess;   /* returning 1: the reference is ours */
    pthread_mutex_unlock(&cfg.mu);
    return 1;
}

/* Offer the kept session for addr, if any, and tag ssl with addr for the ticket callback. */
static void session_attach(SSL *ssl, const char *host, int port)
{
    char *addr = xasprintf("%s:%d", host, port);
    pthread_mutex_lock(&cfg.mu);
    for (size_t i = 0; i < SESSION_SLOTS; i++)
        if (cfg.sessions[i].addr && !strcmp(cfg.sessions[i].addr, addr) && cfg.sessions[i].sess) {
            SSL_set_session(ssl, cfg.sessions[i].sess);
            break;
        }
    pthread_mutex_unlock(&cfg.mu);
    if (cfg.key_idx < 0 || !SSL_set_ex_data(ssl, cfg.key_idx, addr))
        free(addr);
}

static void addr_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    free(ptr);
}

void ck_podproxy_configure(const char *client_cert, const char *client_key, const char *ca_file,
                           int idle_timeout_ms)
{
    pthread_mutex_lock(&cfg.mu);
    free(cfg.cert);
    free(cfg.key);
    free(cfg.ca);
    cfg.cert = client_cert ? xstrdup(client_cert) : NULL;
    cfg.key = client_key ? xstrdup(client_key) : NULL;
    cfg.ca = ca_file ? xstrdup(ca_file) : NULL;
    if (idle_timeout_ms > 0)
        cfg.idle_ms = idle_timeout_ms;
    if (cfg.ctx) {
        SSL_CTX_free(cfg.ctx);
        cfg.ctx = NULL;
    }
    sessions_clear_locked();   /* made with the old client identity */
    pthread_mutex_unlock(&cfg.mu);
}

static SSL_CTX *client_ctx(ck_error **err)
{
    pthread_mutex_lock(&cfg.mu);
    if (!cfg.ctx) {
        SSL_CTX *c = SSL_CTX_new(TLS_client_method());
        if (!c)
            goto fail;
        SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
        SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        /* read ahead: one read(2) per TLS record instead of two (head, then body).  The
         * buffer stays at its default (one record): OpenSSL moves the unread rest of a bigger
         * one to its front after every record, which cost more than the reads it saved */
        SSL_CTX_set_read_ahead(c, 1);
        /* resumption: sessions are kept in our own table (session_new_cb), not OpenSSL's */
        if (cfg.key_idx < 0)
            cfg.key_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, addr_free);
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(c, session_new_cb);
        if (cfg.cert && cfg.key &&
            (SSL_CTX_use_certificate_chain_file(c, cfg.cert) != 1 ||
             SSL_CTX_use_PrivateKey_file(c, cfg.key, SSL_FILETYPE_PEM) != 1)) {
            SSL_CTX_free(c);
            goto fail;
        }
        if (cfg.ca) {
            if (SSL_CTX_load_verify_locations(c, cfg.ca, NULL) != 1) {
                SSL_CTX_free(c);
                goto fail;
            }
            SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
        }
        cfg.ctx = c;
    }
    SSL_CTX_up_ref(cfg.ctx);
    SSL_CTX *c = cfg.ctx;
    pthread_mutex_unlock(&cfg.mu);
    return c;
fail:
    pthread_mutex_unlock(&cfg.mu);
    ck_error_set(err, CK_E_INTERNAL, "kubelet client TLS setup failed");
    return NULL;
}

bool ck_podproxy_handles(const ck_route *rt)
{
    return rt->kind == CK_ROUTE_RESOURCE && rt->res && !rt->res->group[0] && rt->subresource &&
           !strcmp(rt->res->resource, "pods") &&
           (!strcmp(rt->subresource, "exec") || !strcmp(rt->subresource, "attach") ||
            !strcmp(rt->subresource, "portforward"));
}

/* ---- finding the kubelet ---- */

static const char *container_names(json_t *pod, ck_buf *b)
{
    json_t *cs = json_object_get(json_object_get(pod, "spec"), "containers"), *ct;
    size_t i;
    ck_buf_addstr(b, "");
    json_array_foreach(cs, i, ct)
        ck_buf_printf(b, "%s%s", i ? " " : "", json_string_value(json_object_get(ct, "name")) ?: "");
    return b->data;
}

static bool has_container(json_t *pod, const char *name)
{
    const char *lists[] = {"containers", "initContainers", "ephemeralContainers"};
    for (size_t l = 0; l < ARRAY_SIZE(lists); l++) {
        json_t *cs = json_object_get(json_object_get(pod, "spec"), lists[l]), *ct;
        size_t i;
        json_array_foreach(cs, i, ct)
            if (!strcmp(json_string_value(json_object_get(ct, "name")) ?: "", name))
                return true;
    }
    return false;
}

/* The kubelet's host and port from the Node object. */
static int kubelet_address(ck_apiserver *srv, const char *node, char **host, int *port,
                           ck_error **err)
{
    const ck_resource *nr = ck_resource_find("", "v1", "nodes");
    int64_t rev;
    json_t *n = nr ? ck_rest_read(srv, nr, NULL, node, &rev, err) : NULL;
    if (!n)
        return ck_error_wrap(err, "node of the pod");
    json_t *st = json_object_get(n, "status");
    json_t *addrs = json_object_get(st, "addresses"), *a;
    const char *pref[] = {"InternalIP", "Hostname", "ExternalIP"};
    *host = NULL;
    for (size_t k = 0; k < ARRAY_SIZE(pref) && !*host; k++) {
        size_t i;
        json_array_foreach(addrs, i, a)
            if (!strcmp(json_string_value(json_object_get(a, "type")) ?: "", pref[k]) &&
                json_string_value(json_object_get(a, "address"))) {
                *host = xstrdup(json_string_value(json_object_get(a, "address")));
                break;
            }
    }
    json_int_t p = json_integer_value(json_object_get(
        json_object_get(json_object_get(st, "daemonEndpoints"), "kubeletEndpoint"), "Port"));
    *port = p > 0 && p < 65536 ? (int)p : 10250;
    json_decref(n);
    if (!*host)
        return ck_error_set(err, CK_E_BAD_REQUEST, "node \"%s\" has no address", node);
    return 0;
}

static int dial(const char *host, int port, ck_error **err)
{
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0)
        return ck_error_set(err, CK_E_UNAVAILABLE, "error dialing backend: lookup %s: %s", host,
                            gai_strerror(rc));
    int fd = -1, e = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
            e = errno;
            close(fd);
            fd = -1;
            continue;
        }
        struct pollfd pf = {fd, POLLOUT, 0};
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (poll(&pf, 1, CONNECT_TIMEOUT_MS) != 1 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
            e = soerr ? soerr : ETIMEDOUT;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return ck_error_set(err, CK_E_UNAVAILABLE, "error dialing backend: dial tcp %s:%d: %s",
                            host, port, strerror(e));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);   /* blocking for the handshake */
    int one = 1;   /* keystrokes and control frames go out at once (Go's default, too) */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {CONNECT_TIMEOUT_MS / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

/* ---- the relay ---- */

typedef struct relay {
    pthread_mutex_t mu;
    int refs;
    ck_http_stream *hs;
    ck_buf inq;             /* client -> kubelet, under mu */
    bool gone;              /* client gone or overflowed, under mu */
    int wake_r, wake_w;
    SSL *ssl;
    int fd;
    int64_t last_ns;
} relay;

static void relay_unref(relay *r)
{
    if (__atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL))
        return;
    if (r->hs)
        ck_http_stream_release(r->hs);
    if (r->ssl)
        SSL_free(r->ssl);
    if (r->fd >= 0)
        close(r->fd);
    ck_buf_free(&r->inq);
    close(r->wake_r);
    close(r->wake_w);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static void wake(relay *r)
{
    char c = 1;
    ssize_t w = write(r->wake_w, &c, 1);
    (void)w;
}

static void relay_on_data(void *ctx, const char *data, size_t len)
{
    relay *r = ctx;
    pthread_mutex_lock(&r->mu);
    if (!r->gone && ck_buf_add(&r->inq, data, len) < 0) {
        log_warn("podproxy: kubelet does not keep up with the client; closing the session");
        r->gone = true;
    }
    pthread_mutex_unlock(&r->mu);
    wake(r);
}

static void relay_on_close(void *ctx)
{
    relay *r = ctx;
    pthread_mutex_lock(&r->mu);
    r->gone = true;
    pthread_mutex_unlock(&r->mu);
    wake(r);
    relay_unref(r);
}

static void set_rcvlowat(int fd, int lowat)
{
    setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
}

static void *relay_thread(void *arg)
{
    relay *r = arg;
    char *buf = NULL;       /* one batch from the kubelet, handed to httpd without a copy */
    const size_t bufsz = 1 << 20;
    /* batches are recycled (no page faults per MiB); at most 6 out, then plain buffers */
    ck_bufpool *pool = ck_bufpool_new(bufsz, 4);
    bool pooled = false;
    ck_buf w;               /* bytes being written to the kubelet */
    ck_buf_init(&w, IN_LIMIT);
    size_t woff = 0;
    int flags = fcntl(r->fd, F_GETFL);
    fcntl(r->fd, F_SETFL, flags | O_NONBLOCK);
    bool kubelet_eof = false;
    /* bulk coalescing (as the node side, streams.h): once 1 MiB came down, poll wakes when
     * 256 KiB wait on the socket (SO_RCVLOWAT) or after 1 ms; 100 ms without data ends it */
    uint64_t down_total = 0;
    bool bulk = false;
    int64_t last_down_ns = 0;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        bool gone = r->gone;
        if (woff == w.len && r->inq.len) {   /* swap buffers rather than copy */
            ck_buf done = w;
            w = r->inq;
            r->inq = done;
            ck_buf_reset(&r->inq);
            woff = 0;
        }
        pthread_mutex_unlock(&r->mu);
        if (gone)
            break;
        bool want_r = false, want_w = false;
        while (woff < w.len) {
            int n = SSL_write(r->ssl, w.data + woff, (int)(w.len - woff));
            if (n > 0) {
                woff += (size_t)n;
                r->last_ns = ck_now_ns();
                continue;
            }
            int e = SSL_get_error(r->ssl, n);
            if (e == SSL_ERROR_WANT_WRITE)
                want_w = true;
            else if (e == SSL_ERROR_WANT_READ)
                want_r = true;
            else
                kubelet_eof = true;
            break;
        }
        bool room = ck_http_stream_pending(r->hs) < HIGH_WATER;
        size_t got = 0;
        /* batch reads into one write: each write is a trip to httpd's I/O thread */
        while (room && !kubelet_eof && got < bufsz) {
            if (!buf) {
                pooled = ck_bufpool_outstanding(pool) < 6;
                buf = pooled ? ck_bufpool_get(pool) : xmalloc(bufsz);
            }
            int n = SSL_read(r->ssl, buf + got, (int)(bufsz - got));
            if (n > 0) {
                r->last_ns = ck_now_ns();
                got += (size_t)n;
                continue;
            }
            int e = SSL_get_error(r->ssl, n);
            if (e == SSL_ERROR_WANT_READ)
                want_r = true;
            else if (e == SSL_ERROR_WANT_WRITE)
                want_w = true;
            else
                kubelet_eof = true;
            break;
        }
        if (got) {
            down_total += got;
            last_down_ns = ck_now_ns();
            if (!bulk && down_total >= BULK_AFTER) {
                bulk = true;
                set_rcvlowat(r->fd, BULK_READ);
            }
        } else if (bulk && ck_now_ns() - last_down_ns > 100 * 1000000LL) {
            bulk = false;
            down_total = 0;
            set_rcvlowat(r->fd, 1);
        }
        if (got) {
            int wrc;
            if (pooled && got < 64 * 1024) {   /* a small batch: copy, recycle the buffer */
                char *small = xmalloc(got);
                memcpy(small, buf, got);
                ck_bufpool_release(buf);
                wrc = ck_http_stream_write_owned(r->hs, small, got);
            } else if (pooled) {
                wrc = ck_http_stream_write_ref(r->hs, buf, got, ck_bufpool_release);
            } else {
                if (bufsz - got > 64 * 1024)
                    buf = xrealloc(buf, got);
                wrc = ck_http_stream_write_owned(r->hs, buf, got);
            }
            buf = NULL;
            if (wrc < 0)
                break;   /* the client is gone */
        }
        room = ck_http_stream_pending(r->hs) < HIGH_WATER;
        if (kubelet_eof)
            break;
        if (ck_now_ns() - r->last_ns > (int64_t)cfg.idle_ms * 1000000) {
            log_info("podproxy: idle timeout");
            break;
        }
        struct pollfd pf[2] = {{r->wake_r, POLLIN, 0}, {r->fd, 0, 0}};
        if (want_r || (room && !want_w))
            pf[1].events |= POLLIN;
        if (want_w)
            pf[1].events |= POLLOUT;
        /* read-ahead may hold whole records the socket no longer shows as readable */
        poll(pf, 2, SSL_has_pending(r->ssl) && room ? 0 : !room || bulk ? 1 : 1000);
        char drain[256];
        while (read(r->wake_r, drain, sizeof drain) > 0)
            ;
    }
    ck_buf_free(&w);
    if (pooled)
        ck_bufpool_release(buf);
    else
        free(buf);
    ck_bufpool_close(pool);
    SSL_shutdown(r->ssl);
    shutdown(r->fd, SHUT_RDWR);
    ck_http_stream_end(r->hs);
    relay_unref(r);
    return NULL;
}

/* Read the kubelet's response head (bounded); *head_len = bytes of the head incl. CRLFCRLF. */
static int read_head(SSL *ssl, ck_buf *b, size_t *head_len, ck_error **err)
{
    for (;;) {
        char *end = b->len ? strstr(b->data, "\r\n\r\n") : NULL;
        if (end) {
            *head_len = (size_t)(end - b->data) + 4;
            return 0;
        }
        char tmp[4096];
        int n = SSL_read(ssl, tmp, sizeof tmp);
        if (n <= 0)
            return ck_error_set(err, CK_E_UNAVAILABLE,
                                "error dialing backend: the kubelet closed the connection");
        if (ck_buf_add(b, tmp, (size_t)n) < 0 || b->len > HEAD_LIMIT)
            return ck_error_set(err, CK_E_UNAVAILABLE, "kubelet response head too large");
    }
}

static bool hop_header(const char *name)
{
    static const char *const drop[] = {"host", "authorization", "content-length",
                                       "transfer-encoding", "cookie", "proxy-authorization"};
    for (size_t i = 0; i < ARRAY_SIZE(drop); i++)
        if (!strcasecmp(name, drop[i]))
            return true;
    return !strncasecmp(name, "impersonate-", 12);
}

void ck_podproxy_serve(ck_reqctx *c)
{
    ck_error *e = NULL;
    const ck_route *rt = &c->route;
    ck_http_req *req = c->req;
    const char *sub = rt->subresource;
    int64_t t0 = ck_now_ns();
    int64_t rev;
    json_t *pod = ck_rest_read(c->srv, rt->res, rt->namespace_, rt->name, &rev, &e);
    if (!pod)
        return ck_respond_error(c, e);
    bool pf = !strcmp(sub, "portforward");
    char *container = pf ? NULL : ck_query(c, "container");
    ck_buf names;
    ck_buf_init(&names, 64 * 1024);
    const char *node = json_string_value(json_object_get(json_object_get(pod, "spec"), "nodeName"));
    const char *phase = json_string_value(json_object_get(json_object_get(pod, "status"), "phase"));
    size_t ncont = json_array_size(json_object_get(json_object_get(pod, "spec"), "containers"));
    if (!pf && (!container || !*container)) {
        free(container);
        container = NULL;
        if (ncont == 1)
            container = xstrdup(json_string_value(json_object_get(
                json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0),
                "name")) ?: "");
        else
            ck_error_set(&e, CK_E_BAD_REQUEST,
                         "a container name must be specified for pod %s, choose one of: [%s]",
                         rt->name, container_names(pod, &names));
    }
    if (!e && container && !has_container(pod, container))
        ck_error_set(&e, CK_E_BAD_REQUEST, "container %s is not valid for pod %s", container,
                     rt->name);
    if (!e && (!node || !*node))
        ck_error_set(&e, CK_E_BAD_REQUEST, "pod %s does not have a host assigned", rt->name);
    if (!e && phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed")) && !pf)
        ck_error_set(&e, CK_E_BAD_REQUEST,
                     "cannot exec into a container in a completed pod; current phase is %s", phase);
    char *host = NULL;
    int port = 0;
    if (!e)
        kubelet_address(c->srv, node, &host, &port, &e);
    json_decref(pod);
    ck_buf_free(&names);
    if (e) {
        free(container);
        free(host);
        return ck_respond_error(c, e);
    }

    /* the request to the kubelet */
    ck_buf rq;
    ck_buf_init(&rq, 256 * 1024);
    if (pf)
        ck_buf_printf(&rq, "%s /portForward/%s/%s", req->method, rt->namespace_, rt->name);
    else
        ck_buf_printf(&rq, "%s /%s/%s/%s/%s", req->method, sub, rt->namespace_, rt->name,
                      container);
    ck_buf_printf(&rq, "%s%s HTTP/1.1\r\nHost: %s:%d\r\n", req->query[0] ? "?" : "", req->query,
                  host, port);
    for (size_t i = 0; i < req->nheaders; i++)
        if (!hop_header(req->headers[i].name))
            ck_buf_printf(&rq, "%s: %s\r\n", req->headers[i].name, req->headers[i].value);
    if (!strcmp(req->method, "POST"))
        ck_buf_addstr(&rq, "Content-Length: 0\r\n");
    ck_buf_addstr(&rq, "\r\n");
    free(container);

    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    int fd = dial(host, port, &e);
    if (fd >= 0)
        ctx = client_ctx(&e);
    if (ctx) {
        ssl = SSL_new(ctx);
        SSL_CTX_free(ctx);
        SSL_set_fd(ssl, fd);
        SSL_set_tlsext_host_name(ssl, host);
        session_attach(ssl, host, port);
        if (SSL_connect(ssl) != 1) {
            unsigned long le = ERR_get_error();
            char eb[256];
            ERR_error_string_n(le, eb, sizeof eb);
            ck_error_set(&e, CK_E_UNAVAILABLE, "error dialing backend: tls: %s", eb);
        } else if (SSL_write(ssl, rq.data, (int)rq.len) != (int)rq.len) {
            ck_error_set(&e, CK_E_UNAVAILABLE, "error dialing backend: write failed");
        }
    }
    ck_buf_free(&rq);
    free(host);
    ck_buf head;
    ck_buf_init(&head, HEAD_LIMIT + 8192);
    size_t hlen = 0;
    if (!e)
        read_head(ssl, &head, &hlen, &e);
    if (e) {
        log_info("podproxy: %s %s/%s: %s after %.1f ms", sub, rt->namespace_, rt->name, e->msg,
                 (double)(ck_now_ns() - t0) / 1e6);
        if (ssl)
            SSL_free(ssl);
        if (fd >= 0)
            close(fd);
        ck_buf_free(&head);
        return ck_respond_error(c, e);
    }
    int status = 0;
    sscanf(head.data, "HTTP/1.%*d %d", &status);
    /* (a slow upgrade shows here: pod and node lookup, dial, TLS, the kubelet's answer) */
    log_info("podproxy: %s %s/%s: kubelet answered %d after %.1f ms (TLS %s)", sub,
             rt->namespace_, rt->name, status, (double)(ck_now_ns() - t0) / 1e6,
             SSL_session_reused(ssl) ? "resumed" : "full handshake");
    /* headers worth passing on */
    ck_buf out;
    ck_buf_init(&out, HEAD_LIMIT);
    char *ctype = NULL;
    long clen = -1;
    for (char *line = strstr(head.data, "\r\n") + 2; line < head.data + hlen - 2;) {
        char *eol = strstr(line, "\r\n");
        *eol = '\0';
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = '\0';
            char *v = colon + 1;
            while (*v == ' ')
                v++;
            if (!strcasecmp(line, "Content-Type"))
                ctype = xstrdup(v);
            else if (!strcasecmp(line, "Content-Length"))
                clen = strtol(v, NULL, 10);
            else if (status == 101 && strcasecmp(line, "Date"))
                ck_buf_printf(&out, "%s: %s\r\n", line, v);
        }
        line = eol + 2;
    }
    if (status != 101) {
        /* an error from the kubelet: pass it on with its body */
        ck_buf body;
        ck_buf_init(&body, BODY_LIMIT);
        ck_buf_add(&body, head.data + hlen, head.len - hlen);
        char tmp[8192];
        while (clen < 0 || (long)body.len < clen) {
            int n = SSL_read(ssl, tmp, sizeof tmp);
            if (n <= 0 || ck_buf_add(&body, tmp, (size_t)n) < 0)
                break;
        }
        c->status = status ? status : 502;
        c->responded = true;
        ck_http_respond(c->resp, c->status, ctype ? ctype : "text/plain", NULL, body.data,
                        clen >= 0 && (size_t)clen < body.len ? (size_t)clen : body.len);
        ck_buf_free(&body);
        free(ctype);
        ck_buf_free(&out);
        ck_buf_free(&head);
        SSL_free(ssl);
        close(fd);
        return;
    }
    free(ctype);
    relay *r = xcalloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
        abort();
    r->wake_r = p[0];
    r->wake_w = p[1];
    r->ssl = ssl;
    r->fd = fd;
    r->refs = 2;   /* the relay thread + httpd's on_close */
    r->last_ns = ck_now_ns();
    ck_buf_init(&r->inq, IN_LIMIT);
    c->status = 101;
    c->responded = true;
    ck_http_stream *hs = ck_http_upgrade(c->resp, out.data, relay_on_data, relay_on_close, r);
    ck_buf_free(&out);
    if (!hs) {
        r->refs = 1;
        relay_unref(r);
        ck_buf_free(&head);
        return;
    }
    /* bytes the kubelet sent right after its 101 */
    if (head.len > hlen)
        ck_http_stream_write(hs, head.data + hlen, head.len - hlen);
    ck_buf_free(&head);
    pthread_mutex_lock(&r->mu);
    r->hs = hs;
    pthread_mutex_unlock(&r->mu);
    pthread_t th;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &a, relay_thread, r) != 0) {
        ck_http_stream_end(hs);
        relay_unref(r);
    }
    pthread_attr_destroy(&a);
}
