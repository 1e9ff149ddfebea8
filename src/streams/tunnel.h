/* tunnel.h - internal to src/streams: one upgraded client connection as a framed transport.
 *
 * Since session 8 the session's pump thread owns the client's connection: after the 101 the
 * socket (and its TLS) is taken out of httpd (ck_http_upgrade_take), and the pump reads, parses
 * and answers the client's frames itself (ck_tunnel_flush: pings, SPDY SYN_REPLYs) and encrypts
 * each batch of output right after reading it, into a wire buffer that leaves in one send(2) per
 * round.  No other thread touches the socket or the SSL.  `mu` still guards what the parse
 * callbacks share with a thread that starts the process (exec's early spawn runs on the httpd
 * worker, see exec.c) and the framed control bytes in `out`.  Back-pressure: the pump reads
 * output only while less than CK_TUNNEL_WIRE_HIGH bytes of records wait for the socket; client
 * input is always read (a peer gone must be seen), into the sessions' bounded queues, whose
 * overflow ends the session (exec) or the connection (port-forward), as before.
 * Freed when the last reference (the pump's; the early spawn's) is released.
 */
#ifndef CK_STREAMS_TUNNEL_H
#define CK_STREAMS_TUNNEL_H

#include <pthread.h>
#include <stdint.h>

#include <openssl/types.h>

#include "lib/bufpool.h"
#include "lib/bytequeue.h"
#include "lib/rawin.h"
#include "lib/spdy.h"
#include "lib/websocket.h"
#include "streams/streams.h"

/* Records (or plain bytes) waiting for the client's socket beyond which the pump reads no more
 * output: a batch (~1 MiB) on top of this is the most a session holds. */
#define CK_TUNNEL_WIRE_HIGH (1u << 20)

typedef struct ck_tunnel ck_tunnel;
typedef void (*ck_tunnel_ws_cb)(void *user, ck_tunnel *t, uint8_t channel, const uint8_t *data,
                                size_t len);
typedef void (*ck_tunnel_spdy_cb)(void *user, ck_tunnel *t, const ck_spdy_frame *f);

struct ck_tunnel {
    pthread_mutex_t mu;
    int fd;                     /* the client's socket (nonblocking), ours since the 101 */
    SSL *ssl;                   /* NULL on a plain-HTTP server */
    bool ws, spdy_on;
    ck_ws wsp;
    ck_spdy spdy;
    ck_buf out;                 /* framed control bytes for the client (under mu) */
    int wake_r, wake_w;         /* wakes the pump (exec's early spawn is done) */
    bool gone;                  /* the client closed, or a protocol error */
    bool client_closed_ws;      /* a websocket close frame arrived */
    int refs;
    int64_t last_ns;            /* last traffic either way (idle timeout) */
    ck_tunnel_ws_cb on_ws;      /* channel messages (exec over websocket) */
    ck_tunnel_spdy_cb on_spdy;  /* SPDY frames (raw, or inside websocket) */
    void *user;
    ck_bufpool *pool;           /* batch buffers (NULL: plain malloc, as in unit tests) */
    /* the socket, pump thread only */
    char *early_in;             /* plaintext the client sent with its request (fed first) */
    size_t early_len;
    ck_rawin in;                /* bytes read from fd, not yet taken by OpenSSL / the parser */
    ck_bytequeue wire;          /* records (or plain bytes) for fd */
    char *plain;                /* one record's plaintext (input) */
    /* the sealing hand-off (docs/podproxy.md "Sealing hand-off (session 9)"): everything after
     * the 101 is sealed here with the key of the API server's connection to its client and
     * written outside our own TLS session, which must not write again */
    struct ck_tlsrec *seal;
};

/* Upgrade: queues the 101 with extra_headers, takes the connection out of httpd and sends the
 * 101 at once.  Returns NULL (and answers nothing more) if the client is gone.  A request with
 * a valid X-Ckube-Seal hand-off from a client that authenticated with a certificate (the API
 * server) is accepted: the 101 says so and t->seal seals everything after it. */
ck_tunnel *ck_tunnel_open(ck_http_resp *resp, const ck_http_req *req, const char *extra_headers, bool ws, bool spdy,
                          ck_tunnel_ws_cb on_ws, ck_tunnel_spdy_cb on_spdy, void *user);
void ck_tunnel_wake(ck_tunnel *t);
/* Under t->mu: frame and queue. */
void ck_tunnel_send_channel(ck_tunnel *t, uint8_t channel, const void *data, size_t len);
/* Under t->mu: queue SPDY bytes just encoded into b (wrapped in a websocket message if needed). */
void ck_tunnel_send_spdy_bytes(ck_tunnel *t, const ck_buf *b);
/* Pump thread: one round with the client: read and parse what it sent (the session's callbacks
 * run here, under t->mu; pings are answered), encrypt the queued control bytes and send what
 * the socket takes.  Returns bytes still waiting for the socket (or queued), or -1 if the client
 * is gone (and nothing is left to send it). */
ssize_t ck_tunnel_flush(ck_tunnel *t);
/* Pump thread: the client's pollfd for this round (POLLIN unless the client ended,
 * POLLOUT while records wait), and what poll said about it. */
short ck_tunnel_poll_events(const ck_tunnel *t);
void ck_tunnel_polled(ck_tunnel *t, short revents);
/* Pump thread: send what is queued, waiting for the socket at most ms (still reading the
 * client meanwhile).  0 once all is out, -1 if the client is gone or the time ran out. */
int ck_tunnel_drain(ck_tunnel *t, int ms);
/* Close the client side (websocket close frame if ws), after flushing: the last bytes out,
 * then our write side shut and the client's leftovers read for up to a second (so the kernel
 * does not answer them with a reset that eats ours), as httpd ends a tunnel. */
void ck_tunnel_finish(ck_tunnel *t);
void ck_tunnel_ref(ck_tunnel *t);
void ck_tunnel_release(ck_tunnel *t);
/* Stop calling the session back (before the session is freed). */
void ck_tunnel_detach(ck_tunnel *t);
/* Drain the wake pipe. */
void ck_tunnel_drain_wake(ck_tunnel *t);

/* Bulk output (pump thread only).  A batch is one buffer in which data frames lie back to back:
 * the pump reads each payload straight into its slot (a readv over the slots), the frame heads
 * are written into the gaps before them, and the whole batch is encrypted at once, while it is
 * still in the cache.  Payloads are at most CK_TUNNEL_SLOT bytes (frames and websocket
 * messages stay under 64 KiB). */
#define CK_TUNNEL_SLOT 65520u
#define CK_TUNNEL_BATCH_SLOTS 16
typedef struct ck_tunnel_batch {
    uint8_t *data;
    size_t len, cap;
    bool pooled;                /* data is from t->pool */
} ck_tunnel_batch;
/* A batch buffer: room for CK_TUNNEL_BATCH_SLOTS slots with the largest head before each. */
#define CK_TUNNEL_BATCH_BYTES ((size_t)CK_TUNNEL_BATCH_SLOTS * (12 + CK_TUNNEL_SLOT))
struct iovec;
/* Room for up to nslots (<= CK_TUNNEL_BATCH_SLOTS) more frames: fills iov with their payload
 * slots and returns how many. */
int ck_tunnel_batch_slots(ck_tunnel *t, ck_tunnel_batch *b, struct iovec *iov, int nslots);
/* n bytes were read into the slots just handed out (filling them in order): frame them as data
 * on `id` (the channel byte for exec over websocket, else the SPDY stream id). */
void ck_tunnel_batch_commit(ck_tunnel *t, ck_tunnel_batch *b, uint32_t id, size_t n);
/* Encrypt the batch behind the tunnel's queued control bytes onto the wire and send what the
 * socket takes; b is left empty (its buffer back to the pool, or freed).  Returns -1 if the
 * client is gone. */
int ck_tunnel_batch_send(ck_tunnel *t, ck_tunnel_batch *b);
int ck_tunnel_batch_send_locked(ck_tunnel *t, ck_tunnel_batch *b);   /* caller holds t->mu */
void ck_tunnel_batch_free(ck_tunnel_batch *b);

/* Negotiation helpers shared by exec and port-forward. */
bool ck_tunnel_is_websocket(const ck_http_req *req);
bool ck_tunnel_is_spdy(const ck_http_req *req);
/* Every value of a header that may repeat, comma lists split: is `token` among them? */
bool ck_tunnel_header_has(const ck_http_req *req, const char *name, const char *token);
/* Headers for a websocket 101 choosing proto (caller frees); NULL if no usable key. */
char *ck_tunnel_ws_accept_headers(const ck_http_req *req, const char *proto);

#endif
