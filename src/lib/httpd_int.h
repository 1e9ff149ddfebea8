/* httpd_int.h - shared between the HTTP server's files, internal: not part of the public API in
 * httpd.h and not for other modules.  httpd.c: connections, the I/O thread, responses, streams,
 * start/stop (its top comment describes the design); httpd_parse.c: the request parser (I/O
 * thread); httpd_workers.c: the request queue and the worker pool. */
#ifndef CK_LIB_HTTPD_INT_H
#define CK_LIB_HTTPD_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "lib/connio.h"
#include "lib/httpd.h"
#include "lib/tlsrec.h"

enum conn_state {
    CS_HEADERS,     /* reading a request line + headers (cur == NULL until the first byte) */
    CS_BODY,        /* reading a Content-Length or chunked body */
    CS_DISPATCHED,  /* a worker has the request; input waits */
    CS_STREAMING,   /* a chunked response stream is open */
    CS_TUNNEL,      /* upgraded: raw bytes both ways */
    CS_CLOSING,     /* last response going out, then close */
};
enum body_mode { BODY_NONE, BODY_LENGTH, BODY_CHUNKED };
enum chunk_state { CH_SIZE, CH_DATA, CH_DATA_CRLF, CH_TRAILER };

/* Events a non-I/O thread reports to the I/O thread (conn->events, under conn->mu). */
#define EV_RESP_DONE    0x01u
#define EV_STREAM_START 0x02u
#define EV_STREAM_END   0x04u
#define EV_ABORT        0x08u
#define EV_UPGRADE      0x10u
#define EV_TAKE         0x20u   /* upgrade, then hand the socket to c->take's waiter */

/* ck_http_upgrade_take's rendezvous with the I/O thread (on the waiter's stack). */
struct take {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done, ok;
    int fd;
    SSL *ssl;
    struct evbuffer *unsent, *input;
};

struct conn;

/* What a connection may still need after ck_httpd_stop freed the server: the event base (NULL
 * once stopped) for on_close of a stream started on a connection that is already gone. */
struct hub {
    int refs;                   /* atomic: the server + every connection */
    pthread_mutex_t mu;
    struct event_base *base;
};

struct ck_http_resp {
    ck_http_req req;            /* what the handler sees; strings below */
    struct conn *c;
    int refs;                   /* atomic: running handler + unanswered response */
    int answered;               /* atomic flag */
    bool head, keepalive, http10;
    char *method, *target, *path, *query;
    char *body;
    size_t body_cap;
    size_t hdr_cap;
    struct ck_http_resp *qnext;
};

struct ck_http_stream {
    int refs;                   /* atomic: the holder(s) + the connection until on_close */
    struct conn *c;
    bool tunnel, chunked, head;
    bool closed;                /* under c->mu: no more writes */
    bool close_called;          /* I/O thread */
    ck_http_close_cb on_close;
    ck_http_data_cb on_data;
    void *ctx;
};

struct conn {
    ck_httpd *h;                /* I/O thread only: the server may be gone for other threads */
    struct hub *hub;
    size_t stream_limit;
    int refs;                   /* atomic */
    pthread_mutex_t mu;
    /* under mu */
    struct evbuffer *outbox;
    unsigned events;
    bool wake_scheduled, gone, resp_close;
    ck_http_stream *stream;     /* the started stream or tunnel; the conn holds a reference */
    struct take *take;          /* an upgrade waiting to take the socket (EV_TAKE) */
    size_t io_pending;          /* atomic: bytes in the socket's output buffer */
    struct conn *wnext;         /* on the server's wake list (while wake_scheduled) */
    /* I/O thread only */
    ck_connio *io;
    struct event *timer;
    SSL *ssl;
    enum conn_state state;
    bool header_timer_armed, peer_eof, write_shut, tls_checked, keepalive;
    ck_http_stream *io_stream;  /* the stream as the I/O thread knows it (started) */
    ck_http_resp *cur;          /* request being parsed */
    bool got_request_line;
    size_t hdr_bytes;
    enum body_mode body_mode;
    enum chunk_state chunk;
    uint64_t body_left;
    char remote[64];
    char *client_cn;
    /* the connection's kept SERVER_TRAFFIC_SECRET_0 (lib/tlsrec), copied by the I/O thread
     * before the first request is dispatched, for ck_http_resp_tls_secret */
    ck_tlsrec_secret tls_secret;
    bool has_tls_secret;
    char **client_orgs;
    size_t nclient_orgs;
    struct conn *prev, *next;
};

struct ck_httpd {
    ck_httpd_config cfg;
    struct hub *hub;
    struct event_base *base;
    struct evconnlistener *lis;
    struct event *listen_retry;
    SSL_CTX *ssl_ctx;
    int port;
    pthread_t io_thread;
    bool io_started;
    /* the request queue and the worker pool (see the top of httpd_workers.c) */
    pthread_mutex_t qmu;
    ck_http_resp *qhead, *qtail;
    struct worker *idle;        /* under qmu: sleeping workers, most recently idle first */
    struct worker *all;         /* under qmu: every worker thread not yet joined */
    int nidle, nwaking, nlive;  /* under qmu */
    int max_workers;
    bool quit;                  /* under qmu */
    uint64_t served;            /* atomic: requests the workers have finished */
    uint64_t stall_mark;        /* I/O thread: `served` when the stall timer was armed */
    bool stall_armed;           /* I/O thread */
    struct event *stall_ev;
    uint64_t extra_started;     /* atomic: extra workers started after a stall (for tests) */
    struct conn *conns;         /* I/O thread */
    /* the wake list (see "Wakes" at the top of httpd.c) */
    struct conn *wake_head;     /* atomic */
    int io_idle;                /* atomic: the I/O thread may be asleep in epoll_wait */
    int io_quit;                /* atomic */
    int wake_fd;                /* eventfd, edge-triggered in the loop: never read */
    struct event *wake_ev;
};

/* Every I/O-thread entry point says the thread is awake: writers need not wake it. */
static inline void ck__httpd_io_awake(ck_httpd *h)
{
    __atomic_store_n(&h->io_idle, 0, __ATOMIC_RELAXED);
}

/* httpd.c */
void ck__httpd_resp_free(ck_http_resp *r);
void ck__httpd_resp_unref(ck_http_resp *r);
/* The server's own error answer (I/O thread): metav1.Status JSON, then close. */
void ck__httpd_conn_fail(struct conn *c, int status, const char *reason, const char *message);

/* httpd_parse.c: the request parser, on c->cur (I/O thread). */
/* 1: headers complete, 0: need more input, -1: failed (answer sent). */
int ck__httpd_parse_headers(struct conn *c, struct evbuffer *in);
/* Decide how the body is framed once the headers are in.  0 or an HTTP status to fail with. */
int ck__httpd_prepare_body(struct conn *c, struct evbuffer *in);
/* 1: body complete, 0: need more, or an HTTP status to fail with. */
int ck__httpd_parse_body(struct conn *c, struct evbuffer *in);
/* Answer a parse failure with its status (ck__httpd_conn_fail). */
void ck__httpd_fail_status(struct conn *c, int status);

/* httpd_workers.c: the request queue and the worker pool. */
/* I/O thread: hand a complete request to the pool. */
void ck__httpd_queue_request(ck_httpd *h, ck_http_resp *r);
/* Starts a worker; the caller has counted it in nlive.  -1 if the thread cannot start. */
int ck__httpd_start_worker(ck_httpd *h, bool extra);
/* h->stall_ev's callback (I/O thread): start an extra worker if every one is held. */
void ck__httpd_stall_cb(evutil_socket_t fd, short what, void *arg);
/* ck_httpd_stop, after the I/O thread has stopped: tell every worker to quit and join them. */
void ck__httpd_stop_workers(ck_httpd *h);

#endif
