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
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lib/log.h"
#include "lib/rawin.h"
#include "lib/tlsrec.h"

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

static void spares_clear(void);

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
    spares_clear();
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
        /* the kubelet's traffic secret, for the relay's own record layer (lib/tlsrec) */
        ck_tlsrec_keylog_install(c);
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

/* A TLS connection to the kubelet at host:port (resumed when we hold a ticket); *tls_ns: the
 * handshake's time.  0, or -1 and *err. */
static int kubelet_connect(const char *host, int port, int *fdp, SSL **sslp, int64_t *tls_ns,
                           ck_error **err)
{
    *fdp = -1;
    *sslp = NULL;
    int fd = dial(host, port, err);
    if (fd < 0)
        return -1;
    SSL_CTX *ctx = client_ctx(err);
    if (!ctx) {
        close(fd);
        return -1;
    }
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, host);
    session_attach(ssl, host, port);
    int64_t t = ck_now_ns();
    int ok = SSL_connect(ssl);
    if (tls_ns)
        *tls_ns = ck_now_ns() - t;
    if (ok != 1) {
        unsigned long le = ERR_get_error();
        char eb[256];
        ERR_error_string_n(le, eb, sizeof eb);
        ERR_clear_error();
        SSL_free(ssl);
        close(fd);
        return ck_error_set(err, CK_E_UNAVAILABLE, "error dialing backend: tls: %s", eb);
    }
    *fdp = fd;
    *sslp = ssl;
    return 0;
}

/* Spare connections: after an upgrade to a kubelet, a background thread dials the next one
 * (TCP + TLS, resumed), so the next exec on that node skips the dial and the handshake (1-2 ms
 * of its first byte).  One per kubelet, dropped after SPARE_MAX_AGE_MS (well inside httpd's
 * 90 s idle timeout on the kubelet's side) or when the kubelet closed it. */
#define SPARE_SLOTS 16
#define SPARE_MAX_AGE_MS 30000

static struct {
    pthread_mutex_t mu;
    struct {
        char *addr;      /* "host:port" */
        int fd;
        SSL *ssl;
        int64_t born_ns;
        bool dialing;
    } s[SPARE_SLOTS];
} spares = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void spare_drop_locked(size_t i)
{
    if (spares.s[i].ssl) {   /* fd is valid only with an ssl */
        SSL_free(spares.s[i].ssl);
        close(spares.s[i].fd);
    }
    spares.s[i].ssl = NULL;
    spares.s[i].fd = -1;
}

static void spares_clear(void)
{
    pthread_mutex_lock(&spares.mu);
    for (size_t i = 0; i < SPARE_SLOTS; i++)
        spare_drop_locked(i);
    pthread_mutex_unlock(&spares.mu);
}

/* The slot for addr (made if create; the oldest spare is given up for it). */
static ssize_t spare_slot_locked(const char *addr, bool create)
{
    size_t victim = 0;
    for (size_t i = 0; i < SPARE_SLOTS; i++) {
        if (spares.s[i].addr && !strcmp(spares.s[i].addr, addr))
            return (ssize_t)i;
        if (!spares.s[i].addr ||
            (spares.s[victim].addr && spares.s[i].born_ns < spares.s[victim].born_ns &&
             !spares.s[i].dialing))
            victim = i;
    }
    if (!create || (spares.s[victim].addr && spares.s[victim].dialing))
        return -1;
    spare_drop_locked(victim);
    free(spares.s[victim].addr);
    spares.s[victim].addr = xstrdup(addr);
    spares.s[victim].born_ns = 0;
    return (ssize_t)victim;
}

/* A live spare for host:port, if one is kept: true and *fd, *ssl are the caller's. */
static bool spare_take(const char *host, int port, int *fd, SSL **ssl)
{
    cleanup_free char *addr = xasprintf("%s:%d", host, port);
    bool got = false;
    pthread_mutex_lock(&spares.mu);
    ssize_t i = spare_slot_locked(addr, false);
    if (i >= 0 && spares.s[i].ssl) {
        /* the kubelet may have closed it (idle timeout, restart): FIN or RST shows at once */
        struct pollfd pf = {spares.s[i].fd, POLLRDHUP, 0};
        bool fresh = ck_now_ns() - spares.s[i].born_ns < SPARE_MAX_AGE_MS * 1000000LL;
        if (fresh && poll(&pf, 1, 0) == 0) {
            *fd = spares.s[i].fd;
            *ssl = spares.s[i].ssl;
            spares.s[i].fd = -1;
            spares.s[i].ssl = NULL;
            got = true;
        } else {
            spare_drop_locked((size_t)i);
        }
    }
    pthread_mutex_unlock(&spares.mu);
    return got;
}

static void *spare_dialer(void *arg)
{
    char *addr = arg;
    char *colon = strrchr(addr, ':');
    *colon = '\0';
    int fd = -1;
    SSL *ssl = NULL;
    ck_error *e = NULL;
    if (kubelet_connect(addr, atoi(colon + 1), &fd, &ssl, NULL, &e) < 0)
        ck_error_free(e);
    *colon = ':';
    pthread_mutex_lock(&spares.mu);
    ssize_t i = spare_slot_locked(addr, true);
    if (i >= 0) {
        spares.s[i].dialing = false;
        spare_drop_locked((size_t)i);
        if (ssl) {
            spares.s[i].fd = fd;
            spares.s[i].ssl = ssl;
            spares.s[i].born_ns = ck_now_ns();
            ssl = NULL;
        }
    }
    pthread_mutex_unlock(&spares.mu);
    if (ssl) {
        SSL_free(ssl);
        close(fd);
    }
    free(addr);
    return NULL;
}

/* Dial the next spare for host:port in the background, unless one is kept or on its way. */
static void spare_refill(const char *host, int port)
{
    char *addr = xasprintf("%s:%d", host, port);
    pthread_mutex_lock(&spares.mu);
    ssize_t i = spare_slot_locked(addr, true);
    bool go = i >= 0 && !spares.s[i].ssl && !spares.s[i].dialing;
    if (go)
        spares.s[i].dialing = true;
    pthread_mutex_unlock(&spares.mu);
    if (!go) {
        free(addr);
        return;
    }
    pthread_t th;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &a, spare_dialer, addr) != 0) {
        pthread_mutex_lock(&spares.mu);
        spares.s[i].dialing = false;
        pthread_mutex_unlock(&spares.mu);
        free(addr);
    }
    pthread_attr_destroy(&a);
}

/* ---- the relay ----
 *
 * One thread per session owns both TLS connections (the kubelet's, and the client's, taken out
 * of httpd after the 101): it decrypts a record from one side into a 16 KiB buffer that stays in
 * cache and encrypts it at once for the other.  Both SSLs run over our own BIO: socket reads of
 * up to 256 KiB that OpenSSL's record reads are served from (one read(2) per 16 records in bulk,
 * not one each), and records appended to a wire buffer that leaves in one send(2) however many
 * records a round made.  No hand-off to httpd's thread, no batch buffers.  Back-pressure: a side
 * is read only while the other side's wire holds less than WIRE_HIGH, so a slow reader stalls
 * the writer on the far end instead of growing us (both ways: a client's input waits in its own
 * socket when the kubelet does not take it).
 * Records (docs/podproxy.md, "Records"): in the bulk direction the relay opens the kubelet's
 * records in place in its read buffer and seals them into the client's wire buffer itself
 * (lib/tlsrec), from a KeyUpdate each way on; OpenSSL keeps the other direction. */

#define WIRE_HIGH (256u * 1024)   /* records ahead of a socket: read the other side no further */
#define WIRE_LIMIT (4u << 20)     /* hard bound (WIRE_HIGH + one round's records in practice) */
#define RAW_KUBELET (256u * 1024) /* one read(2) from the kubelet: as SO_RCVLOWAT in bulk */
#define RAW_CLIENT (32u * 1024)   /* the client sends keystrokes and control frames */
#define PLAIN_CHUNK 16384         /* one TLS record's plaintext */
#define LINGER_MS 1000            /* as httpd: read the client's leftovers before closing */

typedef struct side {
    int fd;
    SSL *ssl;
    ck_rawin in;            /* bytes read from fd, not yet taken by OpenSSL (or opened by us) */
    char *wire;             /* records for fd, from SSL_write */
    size_t wire_cap, wire_off, wire_len;
    bool eof;               /* no more plaintext comes from this side (close_notify, EOF, error) */
    bool failed;            /* writing to it failed: the peer is gone */
    unsigned reads, sends;  /* syscalls, for the session's log line */
    /* our own record layer (lib/tlsrec) in the bulk direction: the client's records are sealed
     * here (`seal`, from the relay's start on), the kubelet's opened here (`open`, from the
     * record after its KeyUpdate: `open_next` until then) */
    ck_tlsrec *seal, *open, *open_next;
    bool update_seen;       /* OpenSSL read the kubelet's KeyUpdate: it gets no further bytes */
    bool handed;            /* the client's records come sealed from the kubelet (hand-off):
                             * OpenSSL must not write to it again */
    bool update_asked;      /* the client sent a KeyUpdate with update_requested */
    uint64_t fast_records;  /* records opened / sealed by us */
} side;

static size_t wire_pending(const side *s)
{
    return s->wire_len - s->wire_off;
}

static BIO_METHOD *side_meth;
static pthread_once_t side_once = PTHREAD_ONCE_INIT;

/* Room for len more bytes at the wire's end (the relay bounds the wire by reading no further;
 * NULL past WIRE_LIMIT). */
static char *wire_reserve(side *s, size_t len)
{
    if (s->wire_off == s->wire_len)
        s->wire_off = s->wire_len = 0;
    if (s->wire_len + len > s->wire_cap && s->wire_off) {
        memmove(s->wire, s->wire + s->wire_off, s->wire_len - s->wire_off);
        s->wire_len -= s->wire_off;
        s->wire_off = 0;
    }
    if (s->wire_len + len > s->wire_cap) {
        size_t cap = s->wire_cap ? s->wire_cap : 64 * 1024;
        while (cap < s->wire_len + len)
            cap *= 2;
        if (cap > WIRE_LIMIT)
            return NULL;
        s->wire = xrealloc(s->wire, cap);
        s->wire_cap = cap;
    }
    return s->wire + s->wire_len;
}

/* Bytes for the socket, after those queued. */
static int wire_append(side *s, const char *data, size_t len)
{
    if (len == 0)
        return 0;
    char *p = wire_reserve(s, len);
    if (!p)
        return -1;
    memcpy(p, data, len);
    s->wire_len += len;
    return 0;
}

/* TLS records go to the wire, never a retry. */
static int side_bio_write(BIO *b, const char *data, int len)
{
    side *s = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (s->seal || s->handed) {
        /* OpenSSL writing after we took its sequence over (an alert, a KeyUpdate answer) would
         * break the stream: end the session instead */
        if (s->in.eof)   /* its alert for a client that left without close_notify: expected */
            log_debug("podproxy: OpenSSL's alert to a client that left, dropped");
        else
            log_warn("podproxy: OpenSSL wrote a record to a client whose records we seal");
        s->failed = true;
        return -1;
    }
    return wire_append(s, data, (size_t)len) < 0 ? -1 : len;
}

/* OpenSSL's reads (read-ahead: as much as its record buffer takes) come from raw. */
static int side_bio_read(BIO *b, char *data, int len)
{
    side *s = BIO_get_data(b);
    if (s->update_seen && len > 0) {
        BIO_clear_retry_flags(b);
        BIO_set_retry_read(b);   /* the records from here on are ours (pump_open) */
        return -1;
    }
    return ck_rawin_bio_read(&s->in, s->fd, b, data, len);
}

static long side_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    side *s = BIO_get_data(b);
    (void)num, (void)ptr;
    return s ? ck_rawin_bio_ctrl(&s->in, cmd) : 0;
}

static int side_bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void side_meth_init(void)
{
    side_meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ckube relay");
    if (!side_meth)
        return;
    BIO_meth_set_write(side_meth, side_bio_write);
    BIO_meth_set_read(side_meth, side_bio_read);
    BIO_meth_set_ctrl(side_meth, side_bio_ctrl);
    BIO_meth_set_create(side_meth, side_bio_create);
}

/* Put ssl (handshake done, on fd) on our BIO; records it read ahead stay in it.  s owns fd and
 * ssl from here on, also when this fails. */
static int side_init(side *s, int fd, SSL *ssl, size_t raw_cap)
{
    memset(s, 0, sizeof *s);
    s->fd = fd;
    s->ssl = ssl;
    ck_rawin_init(&s->in, raw_cap);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (!ssl)
        return 0;   /* a plain client (a server without TLS) */
    pthread_once(&side_once, side_meth_init);
    BIO *b = side_meth ? BIO_new(side_meth) : NULL;
    if (!b)
        return -1;
    BIO_set_data(b, s);
    SSL_set_bio(ssl, b, b);
    /* httpd's connections give their record buffers back when idle; a relay keeps them (no
     * malloc and free per record) */
    SSL_clear_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
    return 0;
}

static void side_free(side *s)
{
    if (s->ssl)
        SSL_free(s->ssl);   /* and our BIO */
    if (s->fd >= 0)
        close(s->fd);
    ck_rawin_free(&s->in);
    free(s->wire);
    ck_tlsrec *t[3] = {s->seal, s->open, s->open_next};
    for (int i = 0; i < 3; i++)
        if (t[i]) {
            ck_tlsrec_free(t[i]);
            free(t[i]);
        }
}

/* Plaintext into records on s's wire (never blocks: the BIO only appends). */
static int side_write(side *s, const char *data, size_t len)
{
    while (s->seal && len > 0 && !s->failed) {
        size_t n = len < CK_TLSREC_MAX_PLAIN ? len : CK_TLSREC_MAX_PLAIN;
        char *p = wire_reserve(s, CK_TLSREC_SEALED(n));
        ck_error *e = NULL;
        if (!p || ck_tlsrec_seal(s->seal, CK_TLSREC_APPDATA, (const unsigned char *)data, n,
                                 (unsigned char *)p, &e) < 0) {
            log_warn("podproxy: %s", e ? e->msg : "wire limit");
            ck_error_free(e);
            s->failed = true;
            break;
        }
        s->wire_len += CK_TLSREC_SEALED(n);
        s->fast_records++;
        data += n;
        len -= n;
    }
    if (s->seal)
        return s->failed ? -1 : 0;
    if (!s->ssl) {
        if (wire_append(s, data, len) < 0)
            s->failed = true;
        return s->failed ? -1 : 0;
    }
    while (len > 0) {
        int n = SSL_write(s->ssl, data, len > INT32_MAX ? INT32_MAX : (int)len);
        if (n <= 0) {
            ERR_clear_error();
            s->failed = true;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The handshake messages of a record of the kubelet's that we opened: a KeyUpdate moves our
 * key on (and is answered through OpenSSL, which owns the way to the kubelet when asked); a
 * NewSessionTicket is dropped (the kept one stays); anything else ends the session. */
static int kubelet_handshake(side *k, const unsigned char *m, size_t len)
{
    while (len >= 4) {
        size_t ml = (size_t)m[1] << 16 | (size_t)m[2] << 8 | m[3];
        if (ml > len - 4)
            return -1;
        if (m[0] == SSL3_MT_KEY_UPDATE && ml == 1) {
            if (ck_tlsrec_update(k->open, NULL) < 0)
                return -1;
            if (m[4] == SSL_KEY_UPDATE_REQUESTED &&
                (SSL_key_update(k->ssl, SSL_KEY_UPDATE_NOT_REQUESTED) != 1 ||
                 SSL_do_handshake(k->ssl) != 1)) {
                ERR_clear_error();
                return -1;
            }
        } else if (m[0] != SSL3_MT_NEWSESSION_TICKET) {
            return -1;
        }
        m += 4 + ml;
        len -= 4 + ml;
    }
    return len ? -1 : 0;
}

/* The kubelet's records opened in place in raw and sealed (or written through OpenSSL) for the
 * client, while its wire has room: no copy of ours, no OpenSSL record layer on this side.  raw
 * keeps a partial record at its front for the next read(2). */
static size_t pump_open(side *src, side *dst)
{
    size_t moved = 0;
    while (!src->eof && !dst->failed && wire_pending(dst) < WIRE_HIGH) {
        unsigned char *rec = (unsigned char *)src->in.buf + src->in.off;
        size_t avail = src->in.len - src->in.off;
        ck_error *e = NULL;
        long rl = ck_tlsrec_record_len(rec, avail, &e);
        if (rl < 0) {
            log_warn("podproxy: kubelet: %s", e->msg);
            ck_error_free(e);
            src->eof = true;
            break;
        }
        if (rl == 0 || avail < (size_t)rl) {
            if (src->in.eof) {
                src->eof = true;   /* a dirty close (mid-record or between records) */
                break;
            }
            if (!src->in.may_read)
                break;
            if (src->in.off) {
                memmove(src->in.buf, rec, avail);
                src->in.off = 0;
                src->in.len = avail;
            }
            ssize_t n;
            do
                n = read(src->fd, src->in.buf + src->in.len, src->in.cap - src->in.len);
            while (n < 0 && errno == EINTR);
            src->in.reads++;
            if (n == 0)
                src->in.eof = true;
            else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                src->eof = true;
            else if (n < 0 || (size_t)n < src->in.cap - src->in.len)
                src->in.may_read = false;
            if (n > 0)
                src->in.len += (size_t)n;
            continue;
        }
        unsigned char *plain;
        size_t plen;
        uint8_t type;
        if (ck_tlsrec_open(src->open, rec, (size_t)rl, &plain, &plen, &type, &e) < 0) {
            log_warn("podproxy: kubelet: %s", e->msg);
            ck_error_free(e);
            src->eof = true;
            break;
        }
        src->in.off += (size_t)rl;
        src->fast_records++;
        if (type == CK_TLSREC_APPDATA) {
            if (side_write(dst, (const char *)plain, plen) < 0)
                break;
            moved += plen;
        } else if (type == CK_TLSREC_HANDSHAKE) {
            if (kubelet_handshake(src, plain, plen) < 0) {
                log_warn("podproxy: kubelet: a handshake message the relay does not take");
                src->eof = true;
            }
        } else {
            src->eof = true;   /* an alert: close_notify, or an error */
        }
    }
    return moved;
}

/* Our KeyUpdate reached the kubelet and its answer was the last record OpenSSL read: the
 * records after it are ours to open (key 1, sequence 0). */
static void open_take_over(side *k)
{
    if (SSL_has_pending(k->ssl) || SSL_pending(k->ssl)) {
        /* not at a record boundary (cannot happen with read-ahead off): OpenSSL keeps going */
        log_warn("podproxy: kubelet: no record boundary at its KeyUpdate; relaying through OpenSSL");
        ck_tlsrec_free(k->open_next);
        free(k->open_next);
        k->open_next = NULL;
        k->update_seen = false;
        return;
    }
    SSL_set_msg_callback(k->ssl, NULL);
    k->open = k->open_next;
    k->open_next = NULL;
}

/* Records from src, decrypted and encrypted again for dst, while dst's wire has room. */
static size_t pump(side *src, side *dst, char *plain)
{
    if (src->open)
        return pump_open(src, dst);
    size_t moved = 0;
    while (!src->eof && !dst->failed && wire_pending(dst) < WIRE_HIGH) {
        int n;
        if (src->ssl) {
            /* (the error queue is empty: every failure below clears it) */
            n = SSL_read(src->ssl, plain, PLAIN_CHUNK);
            if (n <= 0) {
                int e = SSL_get_error(src->ssl, n);
                ERR_clear_error();
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                    src->eof = true;   /* close_notify, a dirty close, or an error */
                else if (src->update_seen && src->open_next) {
                    open_take_over(src);
                    if (src->open)
                        moved += pump_open(src, dst);
                }
                break;
            }
        } else {
            n = ck_rawin_take(&src->in, src->fd, plain, PLAIN_CHUNK);
            if (n <= 0) {
                if (n != -1)
                    src->eof = true;
                break;
            }
        }
        if (side_write(dst, plain, (size_t)n) < 0)
            break;
        moved += (size_t)n;
    }
    return moved;
}

/* The wire to the socket: one send for everything queued, unless the socket is full. */
static void flush_wire(side *s)
{
    while (!s->failed && s->wire_off < s->wire_len) {
        ssize_t n = send(s->fd, s->wire + s->wire_off, s->wire_len - s->wire_off, MSG_NOSIGNAL);
        s->sends++;
        if (n > 0) {
            s->wire_off += (size_t)n;
            if (s->wire_off < s->wire_len)
                return;   /* a short write: the socket is full, poll says when it is not */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        s->failed = true;
    }
    if (s->wire_off == s->wire_len)
        s->wire_off = s->wire_len = 0;
}

static void set_rcvlowat(int fd, int lowat)
{
    setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
}

static int relays_active;   /* atomic: relay threads running */
static int relays_opened, relays_sealed;   /* atomic: sessions that did records themselves */
static int relays_handed;   /* atomic: sessions the kubelet sealed for (the hand-off) */

int ck_podproxy_relays_handed(void)
{
    return __atomic_load_n(&relays_handed, __ATOMIC_ACQUIRE);
}

bool ck_podproxy_seal_enabled(void)
{
    const char *off = getenv("CKUBE_RELAY_OPENSSL"), *seal = getenv("CKUBE_RELAY_SEAL");
    if (off && *off && strcmp(off, "0") != 0)
        return false;
    return !(seal && !strcmp(seal, "0"));
}

void ck_podproxy_relays_own(int *opened, int *sealed)
{
    *opened = __atomic_load_n(&relays_opened, __ATOMIC_ACQUIRE);
    *sealed = __atomic_load_n(&relays_sealed, __ATOMIC_ACQUIRE);
}

int ck_podproxy_relays_active(void)
{
    return __atomic_load_n(&relays_active, __ATOMIC_ACQUIRE);
}

typedef struct relay {
    side k, c;              /* the kubelet, the client */
    /* the sealing hand-off: the kubelet's bytes go to the client verbatim, socket -> pipe ->
     * socket with splice(2) (or through c's wire if splice is refused) */
    bool handoff, no_splice, pipe_full;
    int pipe[2];
    size_t pipe_len, pipe_cap;
    uint64_t spliced;       /* bytes spliced out to the client */
    char *label;            /* for the log */
    int64_t t0_ns;          /* the request reached the handler */
    int64_t ready_ns;       /* the client's socket is ours (its 101 queued) */
} relay;

static void relay_free(relay *r)
{
    if (r->pipe[0] >= 0)
        close(r->pipe[0]);
    if (r->pipe[1] >= 0)
        close(r->pipe[1]);
    side_free(&r->k);
    side_free(&r->c);
    free(r->label);
    free(r);
}

/* Write what is left on s's wire, waiting for the socket at most ms. */
static void drain_wire(side *s, int ms)
{
    int64_t until = ck_now_ns() + (int64_t)ms * 1000000;
    for (;;) {
        flush_wire(s);
        if (s->failed || !wire_pending(s))
            return;
        int64_t left = (until - ck_now_ns()) / 1000000;
        if (left <= 0)
            return;
        struct pollfd pf = {s->fd, POLLOUT, 0};
        poll(&pf, 1, (int)left);
    }
}

/* The hand-off's down direction without splice: the kubelet's bytes read straight onto the
 * client's wire (one copy, no crypto). */
static size_t handoff_read(relay *r)
{
    side *k = &r->k, *c = &r->c;
    size_t moved = 0;
    while (!k->eof && !c->failed && wire_pending(c) < WIRE_HIGH && k->in.may_read) {
        char *p = wire_reserve(c, RAW_KUBELET);
        if (!p) {
            c->failed = true;
            break;
        }
        ssize_t n;
        do
            n = read(k->fd, p, RAW_KUBELET);
        while (n < 0 && errno == EINTR);
        k->in.reads++;
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            k->eof = true;
            break;
        }
        if (n < 0) {
            k->in.may_read = false;
            break;
        }
        c->wire_len += (size_t)n;
        moved += (size_t)n;
        if ((size_t)n < RAW_KUBELET)
            k->in.may_read = false;
        flush_wire(c);
    }
    return moved;
}

/* The hand-off's down direction: the kubelet's bytes (records sealed for the client) spliced
 * socket -> pipe -> socket, verbatim, after whatever waits on c's wire (the 101, our
 * KeyUpdate).  Bounded by the pipe: the kubelet is read only while the pipe has room, so a
 * client that reads nothing stalls the kubelet.  Returns bytes taken from the kubelet. */
static size_t handoff_down(relay *r)
{
    side *k = &r->k, *c = &r->c;
    if (r->no_splice)
        return handoff_read(r);
    size_t moved = 0;
    for (;;) {
        if (wire_pending(c))
            flush_wire(c);
        while (r->pipe_len && !wire_pending(c) && !c->failed) {
            ssize_t n = splice(r->pipe[0], NULL, c->fd, NULL, r->pipe_len,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            c->sends++;
            if (n > 0) {
                r->pipe_len -= (size_t)n;
                r->spliced += (size_t)n;
                r->pipe_full = false;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;   /* the client's socket is full: poll says when it is not */
            c->failed = true;
        }
        if (k->eof || c->failed || r->pipe_full || r->pipe_len >= r->pipe_cap || !k->in.may_read)
            return moved;
        ssize_t n = splice(k->fd, NULL, r->pipe[1], NULL, r->pipe_cap - r->pipe_len,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        k->in.reads++;
        if (n > 0) {
            r->pipe_len += (size_t)n;
            moved += (size_t)n;
            continue;
        }
        if (n == 0) {
            k->eof = true;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            /* the socket is empty, or the pipe's slots are all taken (a slot may hold less
             * than a page of a socket buffer): then wait for the client, not for the kubelet */
            if (r->pipe_len)
                r->pipe_full = true;
            else
                k->in.may_read = false;
        } else if (!r->pipe_len && !r->spliced && (errno == EINVAL || errno == ENOSYS)) {
            log_info("podproxy: splice refused (%s): relaying through a buffer", strerror(errno));
            r->no_splice = true;
            return moved + handoff_read(r);
        } else {
            k->eof = true;
        }
        if (r->pipe_len && !c->failed && !wire_pending(c))
            continue;   /* move what the pipe holds before sleeping */
        return moved;
    }
}

/* The rest of the pipe out to the client, waiting for the socket at most ms. */
static void drain_pipe(relay *r, int ms)
{
    int64_t until = ck_now_ns() + (int64_t)ms * 1000000;
    while (r->pipe_len && !r->c.failed) {
        handoff_down(r);
        int64_t left = (until - ck_now_ns()) / 1000000;
        if (!r->pipe_len || left <= 0)
            return;
        struct pollfd pf = {r->c.fd, POLLOUT, 0};
        poll(&pf, 1, (int)left);
    }
}

static void *relay_thread(void *arg)
{
    relay *r = arg;
    side *k = &r->k, *c = &r->c;
    char *plain = xmalloc(PLAIN_CHUNK);
    int64_t last_ns = ck_now_ns();
    /* bulk coalescing (as the node side, streams.h): once 1 MiB came down, poll wakes when
     * 256 KiB wait on the kubelet's socket (SO_RCVLOWAT) or after 1 ms; 100 ms without data
     * ends it */
    uint64_t down_total = 0;
    bool bulk = false;
    int64_t last_down_ns = 0;
    int64_t first_down_ns = 0, start_ns = ck_now_ns();
    uint64_t total_up = 0, total_down = 0;
    unsigned polls = 0;
    for (;;) {
        size_t down = r->handoff ? handoff_down(r) : pump(k, c, plain);
        flush_wire(c);
        size_t up = pump(c, k, plain);
        flush_wire(k);
        flush_wire(c);   /* a read may have made records of its own (a KeyUpdate answer) */
        int64_t now = ck_now_ns();
        if (down || up)
            last_ns = now;
        if (down && !first_down_ns)
            first_down_ns = now;
        total_up += up;
        total_down += down;
        if (down) {
            down_total += down;
            last_down_ns = now;
            if (!bulk && down_total >= BULK_AFTER) {
                bulk = true;
                set_rcvlowat(k->fd, BULK_READ);
            }
        } else if (bulk && now - last_down_ns > 100 * 1000000LL) {
            bulk = false;
            down_total = 0;
            set_rcvlowat(k->fd, 1);
        }
        if (c->update_asked) {
            log_warn("podproxy: %s: the client asked for a KeyUpdate under the seal hand-off; "
                     "session ended", r->label);
            c->failed = true;
        }
        if (k->failed || c->failed)
            break;
        if (k->eof && !wire_pending(c) && !r->pipe_len)
            break;   /* the kubelet ended the session and everything went out */
        if (c->eof)
            break;   /* the client is gone */
        if (now - last_ns > (int64_t)cfg.idle_ms * 1000000) {
            log_info("podproxy: %s: idle timeout", r->label);
            break;
        }
        struct pollfd pf[2] = {{k->fd, 0, 0}, {c->fd, 0, 0}};
        bool pipe_room = !r->handoff || r->no_splice || (!r->pipe_full && r->pipe_len < r->pipe_cap);
        if (!k->eof && wire_pending(c) < WIRE_HIGH && pipe_room)
            pf[0].events |= POLLIN;
        if (wire_pending(k))
            pf[0].events |= POLLOUT;
        if (!c->eof && !k->eof && wire_pending(k) < WIRE_HIGH)
            pf[1].events |= POLLIN;
        if (wire_pending(c) || r->pipe_len)
            pf[1].events |= POLLOUT;
        int64_t idle_left = (int64_t)cfg.idle_ms - (now - last_ns) / 1000000;
        int timeout = bulk ? 1 : idle_left < 1000 ? (int)(idle_left > 0 ? idle_left : 0) : 1000;
        polls++;
        if (poll(pf, 2, timeout) < 0 && errno != EINTR)
            break;
        if (pf[0].revents || bulk)   /* bulk: a remainder under SO_RCVLOWAT is read after 1 ms */
            k->in.may_read = true;
        if (pf[1].revents)
            c->in.may_read = true;
    }
    free(plain);
    /* the server side of an exec's start: request -> socket taken -> first byte relayed; and
     * what the session cost this thread (CPU, switches, syscalls) */
    struct rusage ru = {0};
    getrusage(RUSAGE_THREAD, &ru);
    log_info("podproxy: %s: relayed %llu bytes down, %llu up in %.1f ms; request -> relaying "
             "%.1f ms, -> first byte down %.1f ms; cpu %.1f ms (user %.1f), switches %ld+%ld, "
             "polls %u, reads %u+%u, sends %u+%u, records opened %llu sealed %llu; seal hand-off "
             "%s (spliced %llu)", r->label,
             (unsigned long long)total_down, (unsigned long long)total_up,
             (double)(ck_now_ns() - start_ns) / 1e6, (double)(r->ready_ns - r->t0_ns) / 1e6,
             first_down_ns ? (double)(first_down_ns - r->t0_ns) / 1e6 : -1.0,
             (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
                 (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3,
             (double)ru.ru_utime.tv_sec * 1e3 + (double)ru.ru_utime.tv_usec / 1e3,
             ru.ru_nvcsw, ru.ru_nivcsw, polls, k->in.reads, c->in.reads, c->sends, k->sends,
             (unsigned long long)k->fast_records, (unsigned long long)c->fast_records,
             r->handoff ? "used" : "not used", (unsigned long long)r->spliced);
    if (r->handoff)
        __atomic_add_fetch(&relays_handed, 1, __ATOMIC_ACQ_REL);
    if (k->fast_records)
        __atomic_add_fetch(&relays_opened, 1, __ATOMIC_ACQ_REL);
    if (c->fast_records)
        __atomic_add_fetch(&relays_sealed, 1, __ATOMIC_ACQ_REL);
    if (k->eof && !c->failed) {
        /* as httpd ends a tunnel: the last bytes out, then the client's leftovers read (so the
         * kernel does not answer them with a reset that eats ours) until it closes */
        drain_wire(c, 10000);
        if (r->handoff) {
            /* the kubelet's sealed close_notify was the last record: nothing of ours after it */
            drain_pipe(r, 10000);
            shutdown(c->fd, SHUT_WR);
        }
        int64_t until = ck_now_ns() + LINGER_MS * 1000000LL;
        char tmp[4096];
        for (int64_t left; (left = (until - ck_now_ns()) / 1000000) > 0;) {
            struct pollfd pf = {c->fd, POLLIN, 0};
            if (poll(&pf, 1, (int)left) <= 0 || read(c->fd, tmp, sizeof tmp) == 0)
                break;
        }
    } else if (!k->failed) {
        drain_wire(k, 1000);
        ERR_clear_error();
        SSL_shutdown(k->ssl);   /* close_notify to the kubelet */
        flush_wire(k);
        ERR_clear_error();
    }
    shutdown(k->fd, SHUT_RDWR);
    relay_free(r);
    __atomic_sub_fetch(&relays_active, 1, __ATOMIC_ACQ_REL);
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
    /* (X-Ckube-Seal: only the relay's own offer reaches the kubelet, never a client's) */
    static const char *const drop[] = {"host", "authorization", "content-length",
                                       "transfer-encoding", "cookie", "proxy-authorization",
                                       CK_TLSREC_SEAL_HEADER};
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
    /* the sealing hand-off: the kubelet may seal the client's records itself with the next
     * server-to-client secret of the client's connection (docs/podproxy.md, "Sealing hand-off
     * (session 9)") */
    bool seal_offered = false;
    {
        ck_tlsrec_secret sec;
        char v[CK_TLSREC_SEAL_VALUE_MAX];
        if (ck_podproxy_seal_enabled() && ck_http_resp_tls_secret(c->resp, &sec) == 0 &&
            ck_tlsrec_secret_next(&sec, NULL) == 0) {
            ck_tlsrec_seal_value(&sec, v);
            ck_buf_printf(&rq, CK_TLSREC_SEAL_HEADER ": %s\r\n", v);
            seal_offered = true;
            OPENSSL_cleanse(v, sizeof v);
        }
        OPENSSL_cleanse(&sec, sizeof sec);
    }
    ck_buf_addstr(&rq, "\r\n");
    free(container);

    SSL *ssl = NULL;
    int fd = -1;
    int64_t t_dial = ck_now_ns(), t_tls = 0;
    ck_buf head;
    ck_buf_init(&head, HEAD_LIMIT + 8192);
    size_t hlen = 0;
    bool spare = spare_take(host, port, &fd, &ssl);
    if (!spare)
        kubelet_connect(host, port, &fd, &ssl, &t_tls, &e);
    /* with a hand-off offered, OpenSSL must not read past the 101's records: what follows are
     * the client's (read-ahead off: it reads exactly the records it processes) */
    if (!e && seal_offered)
        SSL_set_read_ahead(ssl, 0);
    if (!e && SSL_write(ssl, rq.data, (int)rq.len) != (int)rq.len)
        ck_error_set(&e, CK_E_UNAVAILABLE, "error dialing backend: write failed");
    if (!e)
        read_head(ssl, &head, &hlen, &e);
    if (e && spare && head.len == 0) {
        /* the spare died under us before the kubelet read anything: dial as usual */
        ck_error_free(e);
        e = NULL;
        ERR_clear_error();
        SSL_free(ssl);
        close(fd);
        spare = false;
        if (kubelet_connect(host, port, &fd, &ssl, &t_tls, &e) == 0 && seal_offered)
            SSL_set_read_ahead(ssl, 0);
        if (!e && SSL_write(ssl, rq.data, (int)rq.len) != (int)rq.len)
            ck_error_set(&e, CK_E_UNAVAILABLE, "error dialing backend: write failed");
        if (!e)
            read_head(ssl, &head, &hlen, &e);
    }
    if (!e)
        spare_refill(host, port);   /* for the next exec on this node */
    OPENSSL_cleanse(rq.data, rq.len);   /* the hand-off's secret */
    ck_buf_free(&rq);
    free(host);
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
    log_info("podproxy: %s %s/%s: kubelet answered %d after %.1f ms (TLS %s%s; request queued, "
             "authenticated, authorized %.1f ms; pod and node read %.1f ms; dial, TLS, the "
             "kubelet's answer %.1f ms, of it TLS %.1f ms)", sub, rt->namespace_, rt->name, status,
             (double)(ck_now_ns() - t0) / 1e6,
             SSL_session_reused(ssl) ? "resumed" : "full handshake",
             spare ? ", dialed ahead" : "",
             (double)(t0 - req->received_ns) / 1e6, (double)(t_dial - t0) / 1e6,
             (double)(ck_now_ns() - t_dial) / 1e6, (double)t_tls / 1e6);
    /* headers worth passing on */
    ck_buf out;
    ck_buf_init(&out, HEAD_LIMIT);
    char *ctype = NULL;
    long clen = -1;
    bool sealed = false;   /* the kubelet accepted the hand-off */
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
            else if (!strcasecmp(line, CK_TLSREC_SEAL_HEADER))   /* a hop header */
                sealed = status == 101 && seal_offered && !strcmp(v, CK_TLSREC_SEAL_ACCEPT);
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
    if (sealed && (head.len != hlen || SSL_has_pending(ssl))) {
        /* the kubelet's 101 must end its records: bytes after it are the client's records */
        log_warn("podproxy: %s %s/%s: bytes after the kubelet's 101 in its TLS records; session "
                 "refused", sub, rt->namespace_, rt->name);
        ck_buf_free(&out);
        ck_buf_free(&head);
        SSL_free(ssl);
        close(fd);
        ck_error_set(&e, CK_E_UNAVAILABLE, "kubelet sent data inside its upgrade answer");
        return ck_respond_error(c, e);
    }
    if (seal_offered && !sealed)
        SSL_set_read_ahead(ssl, 1);   /* as before; fast_setup decides for itself */
    ck_http_taken t;
    c->status = 101;
    c->responded = true;
    int64_t t1 = ck_now_ns();
    if (ck_http_upgrade_take(c->resp, out.data, &t, &e) < 0) {
        log_info("podproxy: %s %s/%s: %s", sub, rt->namespace_, rt->name, e->msg);
        ck_error_free(e);
        ck_buf_free(&out);
        ck_buf_free(&head);
        SSL_free(ssl);
        close(fd);
        return;
    }
    ck_buf_free(&out);
    cleanup_free char *label = xasprintf("%s %s/%s", sub, rt->namespace_, rt->name);
    log_debug("podproxy: %s: client socket taken after %.2f ms", label,
              (double)(ck_now_ns() - t1) / 1e6);
    ck_podproxy_relay_start(fd, ssl, &t, head.data + hlen, head.len - hlen, label, t0, sealed);
    ck_buf_free(&head);
}

/* OpenSSL read a KeyUpdate from the kubelet: the one we asked for in fast_setup */
static void kubelet_msg(int write_p, int version, int content_type, const void *buf, size_t len,
                        SSL *ssl, void *arg)
{
    (void)version, (void)ssl;
    if (!write_p && content_type == SSL3_RT_HANDSHAKE && len >= 1 &&
        ((const unsigned char *)buf)[0] == SSL3_MT_KEY_UPDATE)
        ((side *)arg)->update_seen = true;
}

static ck_tlsrec *tlsrec_for(SSL *ssl, bool seal)
{
    ck_tlsrec t;
    ck_error *e = NULL;
    if (ck_tlsrec_init(&t, ssl, seal, &e) < 0) {
        log_debug("podproxy: relaying through OpenSSL: %s", e->msg);
        ck_error_free(e);
        return NULL;
    }
    ck_tlsrec *p = xmalloc(sizeof *p);
    *p = t;
    return p;
}

/* Our own record layer for the bulk direction (docs/podproxy.md, "Records"): the client's records
 * are ours from a KeyUpdate we send now; the kubelet's from the KeyUpdate it answers ours with.
 * CKUBE_RELAY_OPENSSL=1 leaves every record to OpenSSL. */
static void fast_setup(relay *r)
{
    const char *off = getenv("CKUBE_RELAY_OPENSSL");
    if (!r->c.ssl || (off && *off && strcmp(off, "0") != 0))
        return;
    ck_tlsrec *seal = tlsrec_for(r->c.ssl, true);
    if (seal && (SSL_key_update(r->c.ssl, SSL_KEY_UPDATE_NOT_REQUESTED) != 1 ||
                 SSL_do_handshake(r->c.ssl) != 1)) {
        ERR_clear_error();
        ck_tlsrec_free(seal);
        free(steal_pointer(&seal));
    }
    r->c.seal = seal;
    ck_tlsrec *open = tlsrec_for(r->k.ssl, false);
    if (!open)
        return;
    /* read-ahead off: OpenSSL takes exactly the records it processes, so the one after the
     * kubelet's KeyUpdate starts at in.off */
    SSL_set_read_ahead(r->k.ssl, 0);
    SSL_set_msg_callback(r->k.ssl, kubelet_msg);
    SSL_set_msg_callback_arg(r->k.ssl, &r->k);
    if (SSL_key_update(r->k.ssl, SSL_KEY_UPDATE_REQUESTED) != 1 ||
        SSL_do_handshake(r->k.ssl) != 1) {
        ERR_clear_error();
        SSL_set_msg_callback(r->k.ssl, NULL);
        ck_tlsrec_free(open);
        free(open);
        return;
    }
    r->k.open_next = open;
}

/* A KeyUpdate from the client that asks for ours (Go never sends one): under the hand-off we
 * cannot answer it, so the session ends */
static void client_msg(int write_p, int version, int content_type, const void *buf, size_t len,
                       SSL *ssl, void *arg)
{
    (void)version, (void)ssl;
    const unsigned char *m = buf;
    if (!write_p && content_type == SSL3_RT_HANDSHAKE && len >= 5 && m[0] == SSL3_MT_KEY_UPDATE &&
        m[4] == SSL_KEY_UPDATE_REQUESTED)
        ((side *)arg)->update_asked = true;
}

/* The hand-off's start: the client gets our KeyUpdate through OpenSSL after its 101 (the
 * kubelet seals from the next secret on, sequence 0), and OpenSSL writes to it no more. */
static int handoff_setup(relay *r, size_t early_len)
{
    if (early_len || !r->c.ssl) {
        log_warn("podproxy: %s: seal hand-off without a TLS client or with bytes inside the "
                 "101; session ended", r->label);
        return -1;
    }
    if (SSL_key_update(r->c.ssl, SSL_KEY_UPDATE_NOT_REQUESTED) != 1 ||
        SSL_do_handshake(r->c.ssl) != 1) {
        ERR_clear_error();
        log_warn("podproxy: %s: KeyUpdate to the client failed; session ended", r->label);
        return -1;
    }
    r->c.handed = true;
    r->handoff = true;
    SSL_set_msg_callback(r->c.ssl, client_msg);
    SSL_set_msg_callback_arg(r->c.ssl, &r->c);
    if (pipe2(r->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        r->pipe[0] = r->pipe[1] = -1;
        r->no_splice = true;
        return 0;
    }
    fcntl(r->pipe[1], F_SETPIPE_SZ, (int)RAW_KUBELET * 4);   /* best effort */
    int sz = fcntl(r->pipe[1], F_GETPIPE_SZ);
    r->pipe_cap = sz > 0 ? (size_t)sz : 65536;
    return 0;
}

int ck_podproxy_relay_start(int kubelet_fd, SSL *kubelet_ssl, ck_http_taken *client,
                            const char *early, size_t early_len, const char *label,
                            int64_t t0_ns, bool handoff)
{
    relay *r = xcalloc(1, sizeof *r);
    r->pipe[0] = r->pipe[1] = -1;
    r->label = xstrdup(label);
    r->t0_ns = t0_ns;
    r->ready_ns = ck_now_ns();
    r->c.fd = -1;
    int rc = side_init(&r->k, kubelet_fd, kubelet_ssl, RAW_KUBELET);
    if (rc == 0) {
        rc = side_init(&r->c, client->fd, client->ssl, RAW_CLIENT);   /* r owns them now */
        client->fd = -1;
        client->ssl = NULL;
    }
    if (rc == 0) {
        /* first the 101 httpd could not send yet, then what the kubelet sent after its 101 and
         * the client after its request */
        wire_append(&r->c, client->unsent, client->unsent_len);
        if (handoff)
            rc = handoff_setup(r, early_len);
        else
            fast_setup(r);
        if (rc == 0 && early_len)
            side_write(&r->c, early, early_len);
        if (rc == 0 && client->input_len)
            side_write(&r->k, client->input, client->input_len);
        if (rc == 0)
            flush_wire(&r->c);
    }
    ck_http_taken_free(client);
    pthread_t th;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    __atomic_add_fetch(&relays_active, 1, __ATOMIC_ACQ_REL);
    if (rc != 0 || pthread_create(&th, &a, relay_thread, r) != 0) {
        log_warn("podproxy: %s: cannot start the relay", r->label);
        relay_free(r);
        __atomic_sub_fetch(&relays_active, 1, __ATOMIC_ACQ_REL);
        rc = -1;
    }
    pthread_attr_destroy(&a);
    return rc;
}
