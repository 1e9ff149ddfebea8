/* podproxy.h - pods/exec, pods/attach, pods/portforward: the API server's side of streaming.
 *
 * The router calls ck_podproxy_serve for those subresources (after authentication and
 * authorization).  It finds the pod's node and the kubelet's address (node status: InternalIP,
 * else Hostname/ExternalIP, and daemonEndpoints.kubeletEndpoint.Port, default 10250), opens a
 * TLS connection to the kubelet, forwards the client's upgrade request to
 * /exec|/attach/NS/POD/CONTAINER or /portForward/NS/POD, and, once the kubelet answers 101,
 * answers the client with the kubelet's 101 headers and relays raw bytes both ways (websocket or
 * SPDY alike: the relay does not parse them).  A non-101 answer is passed back as is.
 *
 * After the 101 the client's connection is taken out of httpd (ck_http_upgrade_take) and one
 * thread per session relays both TLS connections itself (records decrypted and encrypted again,
 * nothing parsed; in the kubelet -> client direction by lib/tlsrec, not OpenSSL, from a KeyUpdate
 * each way on).  The next connection to a kubelet is dialed ahead in the background (one
 * spare per kubelet, at most 30 s old), so an exec does not wait for the dial and handshake.
 *
 * Back-pressure and limits: each side is read only while the other side has less than 256 KiB
 * of records waiting for its socket, so a slow reader (either way) stalls the writer at the far
 * end; nothing grows.  Both directions idle for idle_timeout (default 4 h) close the session.
 * No stream is ever buffered whole.
 */
#ifndef CK_APISERVER_PODPROXY_H
#define CK_APISERVER_PODPROXY_H

#include <stdbool.h>

#include "apiserver/apiserver.h"
#include "lib/httpd.h"

/* Kubelet client settings (all optional; call before serving).  Without a CA the kubelet's
 * serving certificate is not verified, as kube-apiserver without --kubelet-certificate-authority. */
void ck_podproxy_configure(const char *client_cert, const char *client_key, const char *ca_file,
                           int idle_timeout_ms);

/* True if the route is one of ours (pods/exec|attach|portforward). */
bool ck_podproxy_handles(const ck_route *rt);
/* Answer the request (upgrade + relay, or an error Status). */
void ck_podproxy_serve(ck_reqctx *c);

/* The relay alone (ck_podproxy_serve uses it; also for tests): a thread relays the kubelet's
 * connection (kubelet_fd with kubelet_ssl, handshake done) and the taken client connection
 * until either ends, the idle timeout passes, or a write fails.  `early`: plaintext the kubelet
 * sent after its 101, for the client.  Takes ownership of the fds and SSLs (and frees client's
 * buffers) in every case.  t0_ns: when the request came (for the log).  0, or -1 if the thread
 * could not start (everything closed). */
int ck_podproxy_relay_start(int kubelet_fd, SSL *kubelet_ssl, ck_http_taken *client,
                            const char *early, size_t early_len, const char *label,
                            int64_t t0_ns, bool handoff);
/* handoff: the kubelet accepted the sealing hand-off (docs/podproxy.md, "Sealing hand-off
 * (session 9)"): its bytes after the 101 are the client's records, forwarded verbatim after the
 * client's 101 and our KeyUpdate; early must be empty. */
/* The hand-off is offered unless CKUBE_RELAY_SEAL=0 (or CKUBE_RELAY_OPENSSL=1). */
bool ck_podproxy_seal_enabled(void);
/* Sessions ended so far that used the hand-off (for tests). */
int ck_podproxy_relays_handed(void);
/* Relay threads running now (tests wait for 0; a gauge for the curious). */
int ck_podproxy_relays_active(void);
/* Sessions ended so far that opened the kubelet's records / sealed the client's with lib/tlsrec
 * instead of OpenSSL (for tests). */
void ck_podproxy_relays_own(int *opened, int *sealed);

#endif
