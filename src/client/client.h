/* client.h - the REST client every component uses to talk to the API server (its only door to
 * cluster state), configured from a kubeconfig as upstream components are (--kubeconfig FILE).
 *
 * Requests are JSON in, JSON out, over libcurl with kept-alive TLS connections (a small pool of
 * easy handles sharing one connection cache and TLS sessions), safe to call from any thread.
 *
 * Error contract (lib/error.h): a non-2xx answer becomes *err with the code that matches the
 * Status reason (NotFound -> CK_E_NOT_FOUND, AlreadyExists -> CK_E_EXISTS, Conflict ->
 * CK_E_CONFLICT, Expired/Gone -> CK_E_EXPIRED, Invalid -> CK_E_INVALID, ...) and the Status
 * message as the text; a transport failure is CK_E_UNAVAILABLE.
 */
#ifndef CK_CLIENT_H
#define CK_CLIENT_H

#include <jansson.h>
#include <stdbool.h>

#include "apiserver/resources.h"
#include "lib/cancel.h"
#include "lib/error.h"
#include "client/jsonpick.h"
#include "lib/kubeconfig.h"

typedef struct ck_client ck_client;

/* The client keeps its own copy of what it needs from kc. */
ck_client *ck_client_new(const ck_kubeconfig *kc, const char *user_agent, ck_error **err);
ck_client *ck_client_from_file(const char *kubeconfig_path, const char *user_agent, ck_error **err);
void ck_client_free(ck_client *c);

/* One request.  path is absolute ("/api/v1/namespaces/default/pods?limit=500"); body may be NULL;
 * content_type NULL = application/json.  Returns the decoded JSON body (a NEW reference; an empty
 * body gives an empty object). */
json_t *ck_client_request(ck_client *c, const char *method, const char *path, const json_t *body,
                          const char *content_type, ck_error **err);

/* As ck_client_request, decoding only the parts of a 2xx body that keep names (client/jsonpick.h):
 * for list pages of which a consumer reads a few fields, a created object of which it reads
 * the name. */
json_t *ck_client_request_pick(ck_client *c, const char *method, const char *path,
                               const json_t *body, const ck_jsonpick *keep, ck_error **err);
/* A write whose answer the caller does not read: 0 on 2xx (the body is not decoded), -1 with
 * *err as ck_client_request. */
int ck_client_send(ck_client *c, const char *method, const char *path, const json_t *body,
                   const char *content_type, ck_error **err);
/* As ck_client_send with the body already encoded (body[0..len), JSON text the caller built,
 * e.g. from a template): a hot writer neither builds a tree nor prints it. */
int ck_client_send_text(ck_client *c, const char *method, const char *path, const char *body,
                        size_t len, const char *content_type, ck_error **err);

/* A sender: writes whose answers are not read (as ck_client_send_text), many in flight at once
 * from one thread of its own over up to `conns` kept-alive connections (a libcurl multi
 * handle).  A busy writer (the scheduler's bindings, the hollow node's Lease renewals and status
 * patches) then pays one wakeup and one poll for many requests, not a thread and a blocking
 * round trip each.  Requests start in the order queued. */
typedef struct ck_sender ck_sender;
/* Called on the sender's thread when the answer came: err NULL on 2xx, else as ck_client_send
 * sets it (owned by the sender: copy what you keep).  Must not wait on the sender. */
typedef void (*ck_sender_done_cb)(void *ctx, const ck_error *err);
ck_sender *ck_sender_new(ck_client *c, int conns);
/* Queues one request and returns at once.  body (len bytes of JSON text, may be NULL) is taken
 * over (freed by the sender); content_type NULL = application/json; done may be NULL. */
void ck_sender_send(ck_sender *s, const char *method, const char *path, char *body, size_t len,
                    const char *content_type, ck_sender_done_cb done, void *ctx);
size_t ck_sender_pending(ck_sender *s);      /* queued or in flight */
void ck_sender_drain(ck_sender *s);          /* waits until nothing is pending */
/* Waits for the answers of the requests in flight, then frees; the ones not started yet are not
 * sent (their callbacks get CK_E_UNAVAILABLE): ck_sender_drain first to send everything. */
void ck_sender_free(ck_sender *s);

/* "/api/v1/namespaces/<ns>/pods/<name>/<sub>" for a resource; ns ignored for cluster-scoped
 * kinds, name/sub may be NULL.  Caller frees. */
char *ck_client_path(const ck_resource *r, const char *ns, const char *name, const char *sub);

json_t *ck_client_get(ck_client *c, const ck_resource *r, const char *ns, const char *name,
                      ck_error **err);
json_t *ck_client_create(ck_client *c, const ck_resource *r, const char *ns, const json_t *obj,
                         ck_error **err);
json_t *ck_client_update(ck_client *c, const ck_resource *r, const char *ns, const json_t *obj,
                         ck_error **err);                 /* PUT; name from obj */
json_t *ck_client_update_status(ck_client *c, const ck_resource *r, const char *ns,
                                const json_t *obj, ck_error **err);
/* patch_type: "application/merge-patch+json", "application/strategic-merge-patch+json", ... */
json_t *ck_client_patch(ck_client *c, const ck_resource *r, const char *ns, const char *name,
                        const char *sub, const char *patch_type, const json_t *patch, ck_error **err);
/* The deleted object in the answer is not decoded. */
int ck_client_delete(ck_client *c, const ck_resource *r, const char *ns, const char *name,
                     const json_t *options, ck_error **err);

/* Watch events as they arrive.  type is "ADDED", "MODIFIED", "DELETED", "BOOKMARK" or "ERROR";
 * return false from the callback to stop watching. */
typedef bool (*ck_client_watch_cb)(void *ctx, const char *type, json_t *object);

/* Blocks the calling thread, streaming a watch on path (which carries watch=1 and the
 * resourceVersion).  Returns 0 when the server or the callback ends it, -1 with *err on failure
 * (CK_E_EXPIRED when the server says the resourceVersion is too old).  cancel (may be NULL; one
 * watch at a time on it) ends the watch with 0 as soon as it fires, from any thread: the watch
 * attaches its socket to it and does not wake to look (a silent watch does not wake at all). */
int ck_client_watch(ck_client *c, const char *path, ck_client_watch_cb cb, void *ctx,
                    ck_cancel *cancel, ck_error **err);

/* As ck_client_watch, decoding only what keep names of each event line ({"type", "object"}
 * members; an ERROR event is decoded whole). */
int ck_client_watch_pick(ck_client *c, const char *path, const ck_jsonpick *keep,
                         ck_client_watch_cb cb, void *ctx, ck_cancel *cancel,
                         ck_error **err);

/* A first look at an event (ck_client_watch_peek): return true to have it decoded with the full
 * keep list and passed to the watch callback, false when the light form was enough (the
 * callback is not called for it; set *go_on false to end the watch). */
typedef bool (*ck_client_watch_peek_cb)(void *ctx, const char *type, json_t *light_object,
                                        bool *go_on);

/* As ck_client_watch_pick, each MODIFIED event first decoded with `light` (an event-line keep
 * list naming fewer fields than keep) and shown to peek: updates a consumer can tell apart from
 * a few fields (its own writes coming back) skip the full decode.  The light pass still scans
 * the line once; a line it cannot decode goes the full way, and other events (told by the
 * line's first member when it is the type, as the API server writes it) go straight to it. */
int ck_client_watch_peek(ck_client *c, const char *path, const ck_jsonpick *light,
                         ck_client_watch_peek_cb peek, const ck_jsonpick *keep,
                         ck_client_watch_cb cb, void *ctx, ck_cancel *cancel,
                         ck_error **err);

/* Map a metav1.Status reason to our error code (CK_E_INTERNAL when unknown). */
enum ck_error_code ck_client_code_from_reason(const char *reason, long http_status);

/* The object an Event is about (its involvedObject); resource_version may be NULL. */
typedef struct ck_event_about {
    const char *api_version, *kind, *ns, *name, *uid, *resource_version;
} ck_event_about;

/* A new core/v1 Event named `name` in namespace event_ns (count 1, first = last timestamp =
 * now_rfc3339) about one object, from component/instance; host (source.host) may be NULL.
 * The kubelet, the scheduler and the controller-manager all post events of this shape.
 * Returns a NEW reference. */
json_t *ck_event_new(const char *name, const char *event_ns, const ck_event_about *about,
                     const char *component, const char *instance, const char *host,
                     const char *type, const char *reason, const char *message,
                     const char *now_rfc3339);

#endif
