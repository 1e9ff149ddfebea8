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
 * Back-pressure and limits: kubelet -> client is read only while the client has less than 4 MiB
 * unsent; client -> kubelet waits in a queue of at most 16 MiB (beyond it the session ends).
 * Both directions idle for idle_timeout (default 4 h) close the session.  One thread per open
 * session; no stream is ever buffered whole.
 */
#ifndef CK_APISERVER_PODPROXY_H
#define CK_APISERVER_PODPROXY_H

#include <stdbool.h>

#include "apiserver/apiserver.h"

/* Kubelet client settings (all optional; call before serving).  Without a CA the kubelet's
 * serving certificate is not verified, as kube-apiserver without --kubelet-certificate-authority. */
void ck_podproxy_configure(const char *client_cert, const char *client_key, const char *ca_file,
                           int idle_timeout_ms);

/* True if the route is one of ours (pods/exec|attach|portforward). */
bool ck_podproxy_handles(const ck_route *rt);
/* Answer the request (upgrade + relay, or an error Status). */
void ck_podproxy_serve(ck_reqctx *c);

#endif
