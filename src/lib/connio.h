/* connio.h - one nonblocking stream socket, plain or TLS (server side), for httpd's I/O thread.
 *
 * What bufferevent(_openssl) did for httpd, with fewer system calls: plaintext goes in and out
 * through two evbuffers; ck_connio_flush writes at once (no write interest is armed unless the
 * socket is full), and a readable socket is read with one read(2) a wake (TLS records are read
 * ahead into OpenSSL's buffer through our own BIO, so a header and a body are not two reads).
 * The write interest (EV_WRITE) is added only when a write could not finish and removed when
 * the backlog is gone; reading stops above a limit and resumes when input is consumed.
 *
 * Threads: everything here runs on the thread of the event_base, as bufferevents without
 * BEV_OPT_THREADSAFE.  Callbacks may call ck_connio_free; the object goes once they return.
 * Errors found while flushing are reported later through the event callback (from the loop),
 * never from inside ck_connio_flush, so callers may flush from anywhere.
 */
#ifndef CK_CONNIO_H
#define CK_CONNIO_H

#include <stddef.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "lib/error.h"

typedef struct ck_connio ck_connio;

#define CK_CONNIO_EOF 0x1     /* the peer closed its side (cleanly or not: dirty TLS close is EOF) */
#define CK_CONNIO_ERROR 0x2   /* socket or TLS error: the connection is unusable */

typedef void (*ck_connio_cb)(ck_connio *io, void *arg);
typedef void (*ck_connio_event_cb)(ck_connio *io, int what, void *arg);

/* The server TLS context httpd uses: the serving chain and key; TLS 1.2+; client certificates
 * requested, never required, verified against client_ca_file (NULL: not requested) with a bad one
 * leaving the client anonymous (the verify result is read per connection); ALPN http/1.1 only;
 * TLS 1.3 suites in Go's order; SSL_MODE_RELEASE_BUFFERS.  NULL and *err on a bad file. */
SSL_CTX *ck_connio_tls_server_ctx(const char *cert_file, const char *key_file,
                                  const char *client_ca_file, ck_error **err);

/* fd must be nonblocking (evconnlistener's are).  Takes ownership of fd and of ssl (NULL:
 * plain), which gets our BIO, read-ahead, and accept state.  NULL (fd and ssl still the
 * caller's) only if OpenSSL cannot make the BIO. */
ck_connio *ck_connio_new(struct event_base *base, int fd, SSL *ssl);
/* on_read: new plaintext in the input.  on_drained: the output (and any TLS backlog) was fully
 * written after the socket had been full.  on_event: CK_CONNIO_EOF / CK_CONNIO_ERROR; after an
 * EOF nothing more is read. */
void ck_connio_setcb(ck_connio *io, ck_connio_cb on_read, ck_connio_cb on_drained,
                     ck_connio_event_cb on_event, void *arg);
/* Stop reading while the input holds this many bytes or more (0: no limit). */
void ck_connio_set_read_limit(ck_connio *io, size_t limit);
/* Start reading (the TLS handshake runs as part of reading). */
void ck_connio_start(ck_connio *io);
struct evbuffer *ck_connio_input(ck_connio *io);
struct evbuffer *ck_connio_output(ck_connio *io);
/* Send what the output holds now, as far as the socket takes it; the rest follows when the
 * socket is writable. */
void ck_connio_flush(ck_connio *io);
/* Bytes not yet handed to the kernel: the output plus TLS records already made. */
size_t ck_connio_unsent(ck_connio *io);
/* Keep OpenSSL's record buffers between records (TLS only): for a connection that carries bulk
 * data (an upgraded tunnel), where SSL_MODE_RELEASE_BUFFERS would free and allocate them again
 * for every 16 KiB record. */
void ck_connio_keep_buffers(ck_connio *io);
/* shutdown(SHUT_WR) on a plain socket (a TLS connection sends nothing: dirty close, as before). */
void ck_connio_shutdown_write(ck_connio *io);
int ck_connio_fd(ck_connio *io);
/* Hand the socket over to another owner (an upgraded tunnel that relays it from its own thread):
 * the plaintext output is encrypted, and what the socket has not taken yet (TLS records, or the
 * plain output) is moved to `unsent`, to be written before anything else; the plaintext already
 * read is moved to `input` (TLS records read ahead stay in the SSL, whose BIO becomes a socket
 * BIO without close-on-free).  *fd (still nonblocking) and *ssl (NULL: plain) are the caller's
 * from then on, and io no longer watches the socket; free io as usual.  -1 if encrypting
 * failed (then nothing is handed over). */
int ck_connio_detach(ck_connio *io, int *fd, SSL **ssl, struct evbuffer *unsent,
                     struct evbuffer *input);
/* Closes the socket, frees the SSL and both buffers (deferred while a callback runs). */
void ck_connio_free(ck_connio *io);

#endif
