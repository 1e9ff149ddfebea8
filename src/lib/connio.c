/* connio.c - a plain or TLS socket for one event-loop thread: see connio.h for the contract and
 * docs/http.md ("The socket layer") for why it replaced bufferevent_openssl.
 *
 * TLS runs over our own BIO instead of a socket BIO:
 *   - reading: OpenSSL reads ahead (one large read fills its buffer with whole records), and the
 *     BIO calls read(2) at most once a wake unless the last read filled what was asked: a read
 *     shorter than asked means the socket was empty then, and level-triggered epoll will report
 *     anything newer.  So a wake costs one read, not a header read, a body read and an EAGAIN.
 *   - writing: records are appended to `wire` (never a retry for OpenSSL), and wire leaves in one
 *     write however many records a flush made.  wire is one flat buffer, not an evbuffer: an
 *     evbuffer took a new 32 KiB chain from malloc for every 16 KiB record and freed it once
 *     written (4% of the kubelet's CPU over a bulk exec).  It is freed when empty, except on a
 *     connection that keeps its buffers (a tunnel, ck_connio_keep_buffers).
 * Plain sockets use the same two paths without the BIO.  The server SSL_CTX is made here too.
 */
#include "lib/connio.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>

#include "lib/certcache.h"
#include "lib/log.h"
#include "lib/tlsrec.h"
#include "lib/util.h"

/* One read / SSL_read goes to a stack buffer and is then appended: reserving evbuffer space
 * instead would leave an empty 16 KiB chain on every idle connection (the last read that found
 * nothing), and the copy is small next to the decryption. */
#define READ_CHUNK 16384
#define PLAIN_READS_A_WAKE 8         /* then let other connections run (epoll comes back) */
#define TLS_RECORD_MAX 16384         /* plaintext per SSL_write: one full record */
#define WIRE_HIGH (256u * 1024)      /* encrypt no further ahead of the socket than this */
#define WIRE_INITIAL (32u * 1024)    /* the wire buffer's first size (a few records) */

struct ck_connio {
    struct event_base *base;
    int fd;
    SSL *ssl;
    struct evbuffer *in, *out;
    uint8_t *wire;                   /* TLS records not yet written (TLS only): [woff, wlen) */
    size_t woff, wlen, wcap;
    bool keep_bufs;                  /* a tunnel: keep wire (and OpenSSL's buffers) when empty */
    struct event *rev, *wev;
    size_t read_limit;
    bool started, read_paused, eof, write_armed, failed;
    bool may_read;                   /* the BIO may call read(2) (once a wake, see above) */
    bool sock_eof;                   /* read(2) returned 0 */
    int busy;                        /* callbacks running: free is deferred */
    bool dead;
    ck_connio_cb on_read, on_drained;
    ck_connio_event_cb on_event;
    void *arg;
};

/* ---- the BIO -------------------------------------------------------------------------------- */

static BIO_METHOD *bio_meth;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *data, int len)
{
    ck_connio *io = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    size_t n = (size_t)len;
    if (io->wlen + n > io->wcap && io->woff) {   /* move the unsent rest to the front first */
        memmove(io->wire, io->wire + io->woff, io->wlen - io->woff);
        io->wlen -= io->woff;
        io->woff = 0;
    }
    if (io->wlen + n > io->wcap) {   /* bounded: encrypt_out stops at WIRE_HIGH */
        size_t cap = io->wcap ? io->wcap : WIRE_INITIAL;
        while (cap < io->wlen + n)
            cap *= 2;
        io->wire = xrealloc(io->wire, cap);
        io->wcap = cap;
    }
    memcpy(io->wire + io->wlen, data, n);
    io->wlen += n;
    return len;
}

static int bio_read(BIO *b, char *data, int len)
{
    ck_connio *io = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (!io->may_read) {
        BIO_set_retry_read(b);
        return -1;
    }
    for (;;) {
        ssize_t n = read(io->fd, data, (size_t)len);
        if (n > 0) {
            if (n < len)
                io->may_read = false;
            return (int)n;
        }
        if (n == 0) {
            io->sock_eof = true;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            io->may_read = false;
            BIO_set_retry_read(b);
        }
        return -1;
    }
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    ck_connio *io = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_EOF:
        return io && io->sock_eof;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int bio_destroy(BIO *b)
{
    BIO_set_data(b, NULL);
    return 1;
}

static void bio_meth_init(void)
{
    bio_meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ckube connio");
    if (!bio_meth)
        return;
    BIO_meth_set_write(bio_meth, bio_write);
    BIO_meth_set_read(bio_meth, bio_read);
    BIO_meth_set_ctrl(bio_meth, bio_ctrl);
    BIO_meth_set_create(bio_meth, bio_create);
    BIO_meth_set_destroy(bio_meth, bio_destroy);
}

/* ---- writing -------------------------------------------------------------------------------- */

static void set_write_interest(ck_connio *io, bool want)
{
    if (want && !io->write_armed) {
        event_add(io->wev, NULL);
        io->write_armed = true;
    } else if (!want && io->write_armed) {
        event_del(io->wev);
        io->write_armed = false;
    }
}

/* Plaintext -> records in wire, while wire is not too far ahead of the socket. */
static size_t wire_len(const ck_connio *io)
{
    return io->wlen - io->woff;
}

static size_t unsent_wire(ck_connio *io)
{
    return io->ssl ? wire_len(io) : evbuffer_get_length(io->out);
}

static void encrypt_out(ck_connio *io)
{
    /* a successful SSL_write leaves no error behind: one clear before the records, not one
     * each (it looks up the thread's error state every time) */
    if (evbuffer_get_length(io->out) == 0)
        return;
    ERR_clear_error();
    while (evbuffer_get_length(io->out) > 0 && wire_len(io) < WIRE_HIGH) {
        if (!SSL_is_init_finished(io->ssl))
            return;                     /* the handshake's reads will flush again */
        size_t n = evbuffer_get_length(io->out);
        if (n > TLS_RECORD_MAX)
            n = TLS_RECORD_MAX;
        unsigned char *p = evbuffer_pullup(io->out, (ssize_t)n);
        if (!p) {
            io->failed = true;
            return;
        }
        int r = SSL_write(io->ssl, p, (int)n);
        if (r <= 0) {
            int e = SSL_get_error(io->ssl, r);
            ERR_clear_error();
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                io->failed = true;
            return;
        }
        evbuffer_drain(io->out, (size_t)r);
    }
}

/* The wire buffer (TLS) or the output (plain) to the socket: one write(v) unless it fills. */
static void write_wire(ck_connio *io)
{
    while (io->ssl && wire_len(io) > 0) {
        ssize_t n = send(io->fd, io->wire + io->woff, wire_len(io), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                io->failed = true;
            return;
        }
        io->woff += (size_t)n;
        if (io->woff < io->wlen)
            return;                     /* the socket is full: wait for EV_WRITE */
        io->woff = io->wlen = 0;
        if (!io->keep_bufs) {           /* an idle connection holds no wire buffer */
            free(io->wire);
            io->wire = NULL;
            io->wcap = 0;
        }
    }
    struct evbuffer *b = io->out;
    while (!io->ssl && evbuffer_get_length(b) > 0) {
        int n = evbuffer_write(b, io->fd);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                io->failed = true;
            return;
        }
        /* a short write means the socket buffer is full: wait for EV_WRITE rather than
         * trying again for an EAGAIN */
        return;
    }
}

static void flush(ck_connio *io)
{
    while (!io->failed) {
        if (io->ssl)
            encrypt_out(io);
        write_wire(io);
        if (io->failed || unsent_wire(io) > 0 || evbuffer_get_length(io->out) == 0 ||
            (io->ssl && !SSL_is_init_finished(io->ssl)))
            break;
        /* the socket took all of wire and more plaintext waits: encrypt the next part */
    }
    if (io->failed) {
        set_write_interest(io, false);
        return;
    }
    set_write_interest(io, unsent_wire(io) > 0);
}

void ck_connio_keep_buffers(ck_connio *io)
{
    io->keep_bufs = true;
    if (io->ssl)
        SSL_clear_mode(io->ssl, SSL_MODE_RELEASE_BUFFERS);
}

void ck_connio_flush(ck_connio *io)
{
    if (io->dead || io->failed)
        return;
    flush(io);
    if (io->failed)
        event_active(io->rev, EV_READ, 0);   /* reported from the loop, see connio.h */
}

/* ---- reading -------------------------------------------------------------------------------- */

static void pause_reading(ck_connio *io)
{
    if (!io->read_paused) {
        io->read_paused = true;
        event_del(io->rev);
    }
}

/* Input consumed below the limit: read again, and at once (OpenSSL may hold whole records). */
static void input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    ck_connio *io = arg;
    if (!info->n_deleted || !io->read_paused || io->dead ||
        (io->read_limit && evbuffer_get_length(buf) >= io->read_limit))
        return;
    io->read_paused = false;
    if (!io->eof && io->started) {
        event_add(io->rev, NULL);
        event_active(io->rev, EV_READ, 0);
    }
}

static bool over_limit(ck_connio *io)
{
    return io->read_limit && evbuffer_get_length(io->in) >= io->read_limit;
}

/* Returns CK_CONNIO_EOF / CK_CONNIO_ERROR or 0; *got: plaintext was added. */
static int read_tls(ck_connio *io, bool *got)
{
    io->may_read = true;
    for (;;) {
        if (over_limit(io)) {
            pause_reading(io);
            return 0;
        }
        char buf[READ_CHUNK];
        ERR_clear_error();
        int r = SSL_read(io->ssl, buf, (int)sizeof buf);
        if (r > 0) {
            if (evbuffer_add(io->in, buf, (size_t)r) != 0)
                return CK_CONNIO_ERROR;
            *got = true;
            continue;
        }
        int e = SSL_get_error(io->ssl, r);
        ERR_clear_error();
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0;
        if (e == SSL_ERROR_ZERO_RETURN || io->sock_eof)
            return CK_CONNIO_EOF;       /* close_notify, or a dirty close: both end the input */
        return CK_CONNIO_ERROR;
    }
}

static int read_plain(ck_connio *io, bool *got)
{
    for (int i = 0; i < PLAIN_READS_A_WAKE; i++) {
        if (over_limit(io)) {
            pause_reading(io);
            return 0;
        }
        char buf[READ_CHUNK];
        ssize_t n = read(io->fd, buf, sizeof buf);
        if (n > 0) {
            if (evbuffer_add(io->in, buf, (size_t)n) != 0)
                return CK_CONNIO_ERROR;
            *got = true;
            if ((size_t)n < sizeof buf)
                return 0;
            continue;
        }
        if (n == 0)
            return CK_CONNIO_EOF;
        if (errno == EINTR) {
            i--;
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return CK_CONNIO_ERROR;
    }
    return 0;
}

static void destroy(ck_connio *io)
{
    event_free(io->rev);
    event_free(io->wev);
    evbuffer_free(io->in);
    evbuffer_free(io->out);
    free(io->wire);
    if (io->ssl)
        SSL_free(io->ssl);              /* and our BIO with it */
    if (io->fd >= 0)
        close(io->fd);
    free(io);
}

/* Callbacks may free io: a deferred free happens here once the outermost one returned. */
static void leave(ck_connio *io)
{
    if (--io->busy == 0 && io->dead)
        destroy(io);
}

static void read_ev(evutil_socket_t fd, short what, void *arg)
{
    ck_connio *io = arg;
    io->busy++;
    if (io->failed) {
        if (io->on_event)
            io->on_event(io, CK_CONNIO_ERROR, io->arg);
        leave(io);
        return;
    }
    if (io->eof || io->read_paused) {   /* a stale activation */
        leave(io);
        return;
    }
    bool got = false;
    int ev = io->ssl ? read_tls(io, &got) : read_plain(io, &got);
    if (io->ssl && !io->failed)
        flush(io);                      /* handshake messages, alerts, tickets; data held back
                                         * until the handshake finished */
    if (ev) {
        event_del(io->rev);
        if (ev == CK_CONNIO_EOF)
            io->eof = true;
        else
            io->failed = true;
    } else if (io->failed) {
        ev = CK_CONNIO_ERROR;
    }
    if (got && io->on_read) {
        io->on_read(io, io->arg);
        if (io->dead) {
            leave(io);
            return;
        }
    }
    if (ev && io->on_event)
        io->on_event(io, ev, io->arg);
    leave(io);
}

static void write_ev(evutil_socket_t fd, short what, void *arg)
{
    ck_connio *io = arg;
    io->busy++;
    if (!io->failed)
        flush(io);
    if (io->failed) {
        if (io->on_event)
            io->on_event(io, CK_CONNIO_ERROR, io->arg);
    } else if (ck_connio_unsent(io) == 0 && io->on_drained) {
        io->on_drained(io, io->arg);
    }
    leave(io);
}

/* ---- the server context -------------------------------------------------------------------- */

static int ssl_err(ck_error **err, const char *what, const char *file)
{
    char buf[256] = "";
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return ck_error_set(err, CK_E_USAGE, "%s %s: %s", what, file ? file : "", buf);
}

/* Client certificates are requested, never required, and a bad one does not fail the
 * handshake: as in kube-apiserver, an unverified client is simply anonymous (the verify result
 * is checked per connection in conn_tls_identity). */
static int verify_accept_cb(int ok, X509_STORE_CTX *store)
{
    return 1;
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char ours[] = "\x08http/1.1";
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, ours, sizeof ours - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;            /* e.g. h2 only: proceed without ALPN */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* TLS 1.3: a client that sends no psk_key_exchange_modes cannot resume a session (RFC 8446
 * 4.2.9), so it gets no session ticket: Go clients without a session cache (kubectl, client-go)
 * are such clients.  A ticket holds the whole session, the client's certificate included, and
 * costs the server ~0.2 ms of CPU to make and encrypt under OpenSSL 3.0, in the handshake every
 * kubectl command waits for (and ~700 bytes kubectl reads before its answer).  OpenSSL clients
 * (the API server's relay to the kubelets, libcurl) send the extension and still get one. */
static int client_hello_cb(SSL *ssl, int *alert, void *arg)
{
    const unsigned char *ext;
    size_t len;
    (void)alert, (void)arg;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_psk_kex_modes, &ext, &len) != 1)
        SSL_set_num_tickets(ssl, 0);
    return SSL_CLIENT_HELLO_SUCCESS;
}

SSL_CTX *ck_connio_tls_server_ctx(const char *cert_file, const char *key_file,
                                  const char *client_ca_file, ck_error **err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_err(err, "SSL_CTX_new", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"ckube", 5);
    /* an idle connection (every informer's watch) gives back its ~34 KiB of record buffers;
     * they are taken again from malloc when traffic comes */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* TLS 1.3: AES-128-GCM first, as Go servers (kube-apiserver, kubelet) choose on hardware
     * with AES; OpenSSL's default order would pick AES-256-GCM, ~15% more cipher work for the
     * bulk of exec and port-forward streams */
    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                                  "TLS_CHACHA20_POLY1305_SHA256");
    /* each connection's server traffic secret, for a relay that seals its records itself
     * (apiserver/podproxy.c, lib/tlsrec.h) */
    ck_tlsrec_keylog_install(ctx);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        ssl_err(err, "loading serving certificate", cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        ssl_err(err, "loading serving key", key_file);
        goto fail;
    }
    if (client_ca_file) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca_file);
        if (!names || SSL_CTX_load_verify_locations(ctx, client_ca_file, NULL) != 1) {
            if (names)
                sk_X509_NAME_pop_free(names, X509_NAME_free);
            ssl_err(err, "loading client CA", client_ca_file);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_accept_cb);
        /* a client's chain verified lately is not verified again (every kubectl command makes
         * two handshakes with one certificate; certcache.h) */
        if (ck_certcache_install(ctx) < 0)
            log_warn("tls: no client certificate cache: every handshake verifies the chain");
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
    /* TLS 1.3: one session ticket after a full handshake, as Go servers send (OpenSSL sends two).
     * kubectl and client-go never resume (no session cache); the API server's relay keeps one
     * ticket per kubelet.  Under OpenSSL 3.0 each ticket costs the server ~0.2 ms of CPU on a
     * client-certificate connection, in the handshake every kubectl command waits for. */
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, NULL);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* ---- setup ---------------------------------------------------------------------------------- */

ck_connio *ck_connio_new(struct event_base *base, int fd, SSL *ssl)
{
    ck_connio *io = xcalloc(1, sizeof *io);
    io->base = base;
    io->fd = fd;
    io->in = evbuffer_new();
    io->out = evbuffer_new();
    io->rev = event_new(base, fd, EV_READ | EV_PERSIST, read_ev, io);
    io->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, write_ev, io);
    if (!io->in || !io->out || !io->rev || !io->wev) {
        fprintf(stderr, "connio: out of memory\n");
        abort();                        /* as xmalloc does */
    }
    evbuffer_add_cb(io->in, input_cb, io);
    if (ssl) {
        pthread_once(&bio_once, bio_meth_init);
        BIO *b = bio_meth ? BIO_new(bio_meth) : NULL;
        if (!b) {
            io->fd = -1;                /* not taken: the caller still owns fd and ssl */
            destroy(io);
            return NULL;
        }
        io->ssl = ssl;
        BIO_set_data(b, io);
        SSL_set_bio(ssl, b, b);         /* one reference, now the SSL's */
        /* whole records (several, if they came together) in one read */
        SSL_set_read_ahead(ssl, 1);
        SSL_set_accept_state(ssl);
    }
    return io;
}

void ck_connio_setcb(ck_connio *io, ck_connio_cb on_read, ck_connio_cb on_drained,
                     ck_connio_event_cb on_event, void *arg)
{
    io->on_read = on_read;
    io->on_drained = on_drained;
    io->on_event = on_event;
    io->arg = arg;
}

void ck_connio_set_read_limit(ck_connio *io, size_t limit)
{
    io->read_limit = limit;
}

void ck_connio_start(ck_connio *io)
{
    if (io->started)
        return;
    io->started = true;
    event_add(io->rev, NULL);
}

struct evbuffer *ck_connio_input(ck_connio *io)
{
    return io->in;
}

struct evbuffer *ck_connio_output(ck_connio *io)
{
    return io->out;
}

size_t ck_connio_unsent(ck_connio *io)
{
    return evbuffer_get_length(io->out) + wire_len(io);
}

void ck_connio_shutdown_write(ck_connio *io)
{
    if (!io->ssl)
        shutdown(io->fd, SHUT_WR);
}

int ck_connio_fd(ck_connio *io)
{
    return io->fd;
}

int ck_connio_detach(ck_connio *io, int *fd, SSL **ssl, struct evbuffer *unsent,
                     struct evbuffer *input)
{
    if (io->fd < 0 || io->failed)
        return -1;
    if (io->ssl) {
        /* every plaintext byte into records now: the new owner gets bytes for the wire only */
        while (evbuffer_get_length(io->out) > 0) {
            if (!SSL_is_init_finished(io->ssl))
                return -1;
            size_t n = evbuffer_get_length(io->out);
            if (n > TLS_RECORD_MAX)
                n = TLS_RECORD_MAX;
            unsigned char *p = evbuffer_pullup(io->out, (ssize_t)n);
            ERR_clear_error();
            int r = p ? SSL_write(io->ssl, p, (int)n) : -1;
            ERR_clear_error();
            if (r <= 0)
                return -1;
            evbuffer_drain(io->out, (size_t)r);
        }
        BIO *b = BIO_new_socket(io->fd, BIO_NOCLOSE);
        if (!b)
            return -1;
        SSL_set_bio(io->ssl, b, b);     /* frees ours */
        if (wire_len(io) > 0 && evbuffer_add(unsent, io->wire + io->woff, wire_len(io)) < 0)
            return -1;
        io->woff = io->wlen = 0;
    } else {
        evbuffer_add_buffer(unsent, io->out);
    }
    evbuffer_add_buffer(input, io->in);
    /* no epoll operation on the fd once another thread may have closed it */
    event_del(io->rev);
    event_del(io->wev);
    io->write_armed = false;
    io->read_paused = true;
    io->eof = true;
    *fd = io->fd;
    *ssl = io->ssl;
    io->fd = -1;
    io->ssl = NULL;
    return 0;
}

void ck_connio_free(ck_connio *io)
{
    if (!io)
        return;
    if (io->busy) {
        io->dead = true;
        event_del(io->rev);
        event_del(io->wev);
        return;
    }
    destroy(io);
}
