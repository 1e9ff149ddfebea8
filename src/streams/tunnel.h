/* tunnel.h - internal to src/streams: one upgraded client connection as a framed transport.
 *
 * The tunnel owns the httpd stream and the framing state.  Client bytes (httpd I/O thread) are
 * parsed under `mu` and handed to the session's callbacks (also under `mu`); everything to send
 * is framed into `out` under `mu`, and only the pump thread moves `out` into the httpd stream,
 * holding back while the client has CK_STREAMS_HIGH_WATER bytes unsent.  Freed when both the
 * pump (ck_tunnel_release) and httpd (on_close) let go.
 */
#ifndef CK_STREAMS_TUNNEL_H
#define CK_STREAMS_TUNNEL_H

#include <pthread.h>
#include <stdint.h>

#include "lib/bufpool.h"
#include "lib/spdy.h"
#include "lib/websocket.h"
#include "streams/streams.h"

typedef struct ck_tunnel ck_tunnel;
typedef void (*ck_tunnel_ws_cb)(void *user, ck_tunnel *t, uint8_t channel, const uint8_t *data,
                                size_t len);
typedef void (*ck_tunnel_spdy_cb)(void *user, ck_tunnel *t, const ck_spdy_frame *f);

struct ck_tunnel {
    pthread_mutex_t mu;
    ck_http_stream *hs;
    bool ws, spdy_on;
    ck_ws wsp;
    ck_spdy spdy;
    ck_buf out;                 /* framed bytes for the client */
    int wake_r, wake_w;         /* wakes the pump */
    bool gone;                  /* the client closed, or a protocol error */
    bool client_closed_ws;      /* a websocket close frame arrived */
    int refs;
    int64_t last_ns;            /* last traffic either way (idle timeout) */
    ck_tunnel_ws_cb on_ws;      /* channel messages (exec over websocket) */
    ck_tunnel_spdy_cb on_spdy;  /* SPDY frames (raw, or inside websocket) */
    void *user;
    ck_bufpool *pool;           /* batch buffers (NULL: plain malloc, as in unit tests) */
};

/* Upgrade: sends the 101 with extra_headers.  Returns NULL (and answers nothing more) if the
 * response could not be claimed. */
ck_tunnel *ck_tunnel_open(ck_http_resp *resp, const char *extra_headers, bool ws, bool spdy,
                          ck_tunnel_ws_cb on_ws, ck_tunnel_spdy_cb on_spdy, void *user);
void ck_tunnel_wake(ck_tunnel *t);
/* Under t->mu: frame and queue. */
void ck_tunnel_send_channel(ck_tunnel *t, uint8_t channel, const void *data, size_t len);
/* Under t->mu: queue SPDY bytes just encoded into b (wrapped in a websocket message if needed). */
void ck_tunnel_send_spdy_bytes(ck_tunnel *t, const ck_buf *b);
/* Pump thread: move queued bytes to the client.  Returns bytes still waiting (queued + httpd's
 * unsent), or -1 if the client is gone. */
ssize_t ck_tunnel_flush(ck_tunnel *t);
/* The same under t->mu, from the I/O thread (e.g. a SYN_REPLY while the pump is busy
 * starting the process); keeps the order of everything queued. */
void ck_tunnel_flush_locked(ck_tunnel *t);
/* Pump thread: wait for a wake or fd events.  fds may be NULL. */
/* Close the client side (websocket close frame if ws), after flushing. */
void ck_tunnel_finish(ck_tunnel *t);
void ck_tunnel_release(ck_tunnel *t);
/* Stop calling the session back (before the session is freed). */
void ck_tunnel_detach(ck_tunnel *t);
/* Drain the wake pipe. */
void ck_tunnel_drain_wake(ck_tunnel *t);

/* Bulk output without copies (pump thread only).  A batch is one malloc'd buffer in which data
 * frames lie back to back: the pump reads each payload straight into its slot (a readv over the
 * slots), the frame heads are written into the gaps before them, and the whole batch goes to
 * httpd by reference.  Payloads are at most CK_TUNNEL_SLOT bytes (frames and websocket
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
/* Queue the batch behind the tunnel's pending bytes and give it to httpd; b is left empty
 * (a pooled buffer goes by reference unless the batch is small; then it is copied and the
 * buffer goes back to the pool at once).  Returns -1 if the client is gone. */
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
