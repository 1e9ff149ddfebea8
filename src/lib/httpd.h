/* httpd.h - the HTTP/1.1 server under the API server and the kubelet.
 *
 * Why our own framing: see docs/http.md.  Shape: one I/O thread (libevent; sockets and TLS
 * through lib/connio, which writes at once and reads once a wake) parses requests with hard limits; each complete request is handed to a
 * worker thread pool, so a handler may block (on the store) without stalling other connections.
 * Long responses (watch, logs -f) are streams that any thread may write to later; upgraded
 * connections (101: websocket, SPDY) become raw byte tunnels.  No thread per connection or watch.
 *
 * Error contract: functions returning int return 0 or -1 (with *err set where they take one).
 */
#ifndef CK_HTTPD_H
#define CK_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "lib/error.h"

typedef struct ck_httpd ck_httpd;
typedef struct ck_http_stream ck_http_stream;

typedef struct ck_http_header {
    char *name;   /* as received; compare case-insensitively */
    char *value;
} ck_http_header;

typedef struct ck_http_req {
    const char *method;       /* "GET", "POST", ... */
    const char *target;       /* raw request target, "/api/v1/pods?limit=500" */
    const char *path;         /* percent-decoded path, no query */
    const char *query;        /* raw query string without '?', "" if none */
    ck_http_header *headers;
    size_t nheaders;
    const char *body;         /* NUL-terminated; body_len excludes the NUL */
    size_t body_len;
    /* TLS client identity, if the client presented a certificate that chains to the client CA. */
    const char *client_cn;    /* NULL if none */
    char **client_orgs;       /* O= values */
    size_t nclient_orgs;
    const char *remote_addr;  /* "127.0.0.1:53412" */
    int64_t received_ns;      /* ck_now_ns() when the request was complete */
} ck_http_req;

/* Header lookup, case-insensitive; NULL if absent. */
const char *ck_http_req_header(const ck_http_req *req, const char *name);
/* Query parameter value (percent-decoded, caller frees); NULL if absent. */
char *ck_http_query_param(const char *query, const char *name);
/* A boolean query parameter as upstream's query conversion reads it (Convert_Slice_string_To_bool):
 * present and not "0" or "false" (any case) is true, so "True" (the Python client) and "" are. */
bool ck_http_query_bool(const char *query, const char *name);

/* The handle a handler answers through.  Exactly one of respond / stream_start / upgrade must be
 * called, once, from any thread (usually the worker running the handler; another thread may
 * answer after the handler returned).  req stays valid until both the handler has returned and
 * the answer was given.  A request that is never answered holds its connection forever. */
typedef struct ck_http_resp ck_http_resp;

typedef void (*ck_http_handler)(void *ctx, ck_http_req *req, ck_http_resp *resp);

typedef struct ck_httpd_config {
    const char *bind_addr;        /* "127.0.0.1", "0.0.0.0", "::" (NULL: 127.0.0.1) */
    int port;                     /* 0: pick a free port (see ck_httpd_port) */
    const char *cert_file, *key_file;  /* serving cert; NULL for plain HTTP */
    const char *client_ca_file;   /* verify client certs against this CA; certs are optional and
                                   * one that does not verify leaves the client anonymous
                                   * (client_cn NULL), as kube-apiserver does */
    int workers;                  /* handler threads (default 16) */
    int max_workers;              /* the pool grows past `workers` only when every worker is
                                   * held and none finished a request for 100 ms; extras leave
                                   * after 10 s idle (default: max(4 x workers, 64)) */
    size_t max_header_bytes;      /* default 64 KiB */
    size_t max_body_bytes;        /* default 3 MiB + 64 KiB: bigger -> 413 (metav1.Status), close */
    int header_timeout_ms;        /* a request's headers (and the TLS handshake) must arrive
                                   * within this from their first byte (slow loris; default 30 s) */
    int idle_timeout_ms;          /* keep-alive idle close (default 90 s) */
    size_t max_headers;           /* header lines per request (default 100): more -> 431 */
    size_t stream_buffer_limit;   /* bytes a stream may have unsent (default 16 MiB) */
    ck_http_handler handler;
    void *handler_ctx;
} ck_httpd_config;

/* Zero config fields take the defaults.  cfg's strings are not kept after start returns.  The
 * first start sets SIGPIPE to ignored if it is at its default (connio writes with
 * plain writev), and enables libevent's pthread locking for the whole process. */
ck_httpd *ck_httpd_start(const ck_httpd_config *cfg, ck_error **err);
int ck_httpd_port(ck_httpd *h);
/* Handler threads running now (workers, plus extras started while all were held). */
int ck_httpd_workers(ck_httpd *h);
/* Closes every connection (on_close for open streams), waits for running handlers, joins the
 * threads.  Answers given after stop are dropped; streams started after it are closed at once. */
void ck_httpd_stop(ck_httpd *h);

/* A complete response.  extra_headers: "Name: value\r\n" lines or NULL; a "Connection: close"
 * among them closes the connection after the response.  HEAD gets the headers only. */
void ck_http_respond(ck_http_resp *resp, int status, const char *content_type,
                     const char *extra_headers, const char *body, size_t len);

/* Start a chunked response.  The stream outlives the handler; write from any thread.  on_close
 * (may be NULL) is called once, on the I/O thread, when the client goes away or the stream is
 * ended (or, for a stream still open at ck_httpd_stop, on the thread calling stop); writes fail
 * from the moment the stream is closed.  on_close may call stream functions, including release.
 * Release the stream when done with it.  HTTP/1.0 clients get the raw bytes and a close at the
 * end instead of chunks.  Cost per open stream: one small struct, no thread. */
typedef void (*ck_http_close_cb)(void *ctx);
ck_http_stream *ck_http_stream_start(ck_http_resp *resp, int status, const char *content_type,
                                     const char *extra_headers, ck_http_close_cb on_close,
                                     void *close_ctx);
/* -1 if the client is gone, or if more than the stream's buffered limit is pending (a client too
 * slow to keep up is disconnected rather than grown without bound; on_close follows).  Writing 0
 * bytes is a no-op.  Writes are framed as one chunk each, in call order. */
int ck_http_stream_write(ck_http_stream *s, const void *data, size_t len);
/* The same, but takes ownership of `data` (from malloc): it is queued without a copy and freed
 * once sent, or when the connection ends; also freed right away on -1 or when len is 0. */
int ck_http_stream_write_owned(ck_http_stream *s, void *data, size_t len);
/* The same with release(data) instead of free (e.g. ck_bufpool_release), called on httpd's I/O
 * thread once the bytes are sent, or in the calling thread if they are not queued. */
typedef void (*ck_http_release_fn)(void *data);
int ck_http_stream_write_ref(ck_http_stream *s, void *data, size_t len, ck_http_release_fn release);
size_t ck_http_stream_pending(ck_http_stream *s);
void ck_http_stream_end(ck_http_stream *s);          /* final chunk; connection may be reused */
void ck_http_stream_release(ck_http_stream *s);

/* Batch I/O-thread wake-ups made by the calling thread: between ck_httpd_wake_hold() and
 * ck_httpd_wake_flush(), answers and stream writes queue as usual, but a wake the I/O thread
 * needs waits for the flush, so a burst of writes to many connections (the store writer's watch
 * deliveries and completions of one commit) wakes it once.  Holds nest; keep them short (a
 * held wake delays every connection queued meanwhile). */
void ck_httpd_wake_hold(void);
void ck_httpd_wake_flush(void);

/* Switch the connection to a raw tunnel after sending `101 Switching Protocols` with the given
 * headers.  on_data receives every byte the client sends afterwards (on the I/O thread), possibly
 * before ck_http_upgrade has returned to its caller: if on_data needs the returned stream, store
 * it under a lock that on_data also takes.  Write with ck_http_stream_write (no chunk framing on
 * a tunnel), close with ck_http_stream_end (the connection closes once the bytes are out). */
typedef void (*ck_http_data_cb)(void *ctx, const char *data, size_t len);
ck_http_stream *ck_http_upgrade(ck_http_resp *resp, const char *extra_headers,
                                ck_http_data_cb on_data, ck_http_close_cb on_close, void *ctx);

/* Upgrade and take the connection out of httpd: `101 Switching Protocols` with the given headers
 * is queued, and once the I/O thread has it (one trip through its loop: this blocks that long)
 * the caller owns the socket and relays it from its own thread, with no hand-off per write and
 * none of httpd's buffering (the pod relay).  *out: the nonblocking fd; the SSL (NULL on a plain
 * server) with a socket BIO that does not close fd; `unsent`, bytes to write to the socket before
 * anything else (the 101's TLS records or plain bytes, whatever the socket did not take yet);
 * `input`, plaintext the client sent after its request (more may wait inside the SSL).  httpd
 * forgets the connection (ck_httpd_stop does not close it).  -1 and *err if the client is gone.
 * Free with ck_http_taken_free (closes what is still set in it). */
typedef struct ck_http_taken {
    int fd;
    SSL *ssl;
    char *unsent, *input;
    size_t unsent_len, input_len;
} ck_http_taken;
/* The kept SERVER_TRAFFIC_SECRET_0 and suite of the TLS 1.3 AES-GCM connection a request came on
 * (lib/tlsrec; for the relay's sealing hand-off, docs/podproxy.md): 0, or -1 when there is none
 * (plain HTTP, TLS 1.2, another suite).  A copy: the SSL stays httpd's. */
struct ck_tlsrec_secret;
int ck_http_resp_tls_secret(const ck_http_resp *resp, struct ck_tlsrec_secret *out);
int ck_http_upgrade_take(ck_http_resp *resp, const char *extra_headers, ck_http_taken *out,
                         ck_error **err);
void ck_http_taken_free(ck_http_taken *t);

#endif
