/* http1.h - a lean HTTP/1.1-over-TLS request path for clients that make thousands of small
 * writes a second (the scheduler's bindings, the hollow node's pod status patches and Lease
 * renewals).
 *
 * libcurl's easy interface costs ~0.25 ms of CPU a request on this machine for a 200-byte PATCH
 * (handle reset and options, the multi state machine, polls): more than the TLS itself.  This
 * is one SSL_write of the whole request and SSL_reads of the answer on a kept-alive connection
 * from a pool, with the TLS identity loaded once into a shared SSL_CTX.
 *
 * Contract: https:// servers only (host or IPv4/IPv6 literal, explicit or default port, no path
 * prefix); the server's certificate is checked against the kubeconfig's CA (or the system store)
 * and the host name or IP unless insecure; a client certificate and/or bearer token as the
 * kubeconfig says.  A request on a reused connection that the server had closed is sent once
 * more on a fresh one (as libcurl does).  The first ck_http1_new sets SIGPIPE to ignored if it
 * is at its default (OpenSSL writes with plain write()).  Answers are bounded by the caller's ck_buf limit.
 * Watches stream through ck_http1_stream on a connection of their own.  Safe from any thread.
 */
#ifndef CK_HTTP1_H
#define CK_HTTP1_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/error.h"
#include "lib/kubeconfig.h"
#include "lib/util.h"

typedef struct ck_http1 ck_http1;

/* NULL with *err when the kubeconfig's server or identity cannot be used this way (then the
 * caller keeps libcurl). */
ck_http1 *ck_http1_new(const ck_kubeconfig *kc, const char *user_agent, ck_error **err);
void ck_http1_free(ck_http1 *h);

/* One request: body may be NULL (content_type then unused).  On a complete answer returns 0
 * with *status and the body in resp; -1 with *err (CK_E_UNAVAILABLE) on a transport failure. */
int ck_http1_request(ck_http1 *h, const char *method, const char *path, const char *content_type,
                     const char *body, size_t body_len, long *status, ck_buf *resp,
                     ck_error **err);

/* A streamed GET (a watch) on its own connection: each piece of the 200 answer's body goes to
 * on_data as it arrives (return false to stop).  cancel (may be NULL) is polled every 100 ms;
 * idle_ms of silence ends the stream as broken.  A non-200 answer's body goes to err_body.
 * Returns 0 when the server ends the body, on_data stops it or cancel is set (*status says
 * which answer came), -1 with *err (CK_E_UNAVAILABLE) on a transport failure. */
typedef bool (*ck_http1_data_cb)(void *ctx, const char *data, size_t len);
int ck_http1_stream(ck_http1 *h, const char *path, const volatile bool *cancel, int idle_ms,
                    long *status, ck_buf *err_body, ck_http1_data_cb on_data, void *ctx,
                    ck_error **err);

#endif
