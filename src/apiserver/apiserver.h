/* apiserver.h - internals shared by the API server's files (the .c files of src/apiserver); nothing outside
 * the API server includes it.
 *
 * Request path (docs/apiserver.md): httpd worker -> ck_apiserver_handle (apiserver.c) -> health,
 * version, metrics (anonymous allowed) -> authentication (authn.c) -> discovery/openapi -> route
 * (router.c) -> authorizer hook -> verb (rest.c, list.c, watch.c, subres.c).  Every failure is a
 * metav1.Status (status.c) built from a ck_error whose code picks the HTTP status and reason.
 */
#ifndef CK_APISERVER_H
#define CK_APISERVER_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "apiserver/resources.h"
#include "lib/error.h"
#include "lib/httpd.h"
#include "lib/util.h"
#include "store/store.h"

#define CK_MAX_BODY (3u * 1024 * 1024)

/* ---- identity (authn.c) ---- */
typedef struct ck_user {
    char *name;
    char *uid;
    char **groups;
    size_t ngroups;
} ck_user;

void ck_user_free(ck_user *u);   /* members only */
void ck_user_copy(ck_user *dst, const ck_user *src);

typedef struct ck_token_file ck_token_file;
/* Upstream static token file: `token,user,uid,"group1,group2"` per line; '#' comments. */
ck_token_file *ck_token_file_load(const char *path, ck_error **err);
ck_token_file *ck_token_file_parse(const char *text, ck_error **err);
void ck_token_file_free(ck_token_file *t);
/* 0 and *out filled if the token is known, -1 otherwise. */
int ck_token_file_lookup(const ck_token_file *t, const char *token, ck_user *out);
/* Identity of a request: client cert, then bearer token.  -1 (CK_E_UNAUTHORIZED) for a bad token
 * or no credentials. */
int ck_authn_request(const ck_token_file *t, const ck_http_req *req, ck_user *out, ck_error **err);

/* ---- service account tokens (satoken.c) ---- */
typedef struct ck_sa_keys ck_sa_keys;
typedef struct ck_sa_claims {
    char *ns, *name, *uid;    /* the service account the token names */
    char *pod, *pod_uid;      /* the pod a bound token is bound to, else NULL */
} ck_sa_claims;
/* priv_file may be NULL (verify only); pub_file NULL: use the private key's public half. */
ck_sa_keys *ck_sa_keys_load(const char *priv_file, const char *pub_file, const char *issuer,
                            ck_error **err);
void ck_sa_keys_free(ck_sa_keys *k);
bool ck_sa_keys_can_sign(const ck_sa_keys *k);
/* A signed JWT (caller frees); audiences NULL/empty: the issuer; pod may be NULL. */
char *ck_sa_token_issue(ck_sa_keys *k, const char *ns, const char *sa, const char *sa_uid,
                        const json_t *audiences, int64_t seconds, const char *pod,
                        const char *pod_uid, int64_t *expires, ck_error **err);
bool ck_sa_token_looks_like_jwt(const char *tok);
/* Signature, issuer, audience and lifetime; CK_E_UNAUTHORIZED otherwise. */
int ck_sa_token_verify(ck_sa_keys *k, const char *tok, ck_sa_claims *out, ck_error **err);
void ck_sa_claims_free(ck_sa_claims *c);
/* The ServiceAccount admission plugin's token volume (admission.c), as upstream makes it. */
#define CK_SA_TOKEN_MOUNT_PATH "/var/run/secrets/kubernetes.io/serviceaccount"
#define CK_SA_TOKEN_VOLUME_SECONDS 3607
/* The kube-api-access-NAME projected volume: token, kube-root-ca.crt's ca.crt, namespace. NEW. */
json_t *ck_admission_token_volume(const char *name);
/* Mount that volume (adding it once) in every container of spec without a mount at the path. */
void ck_admission_mount_token(json_t *spec);

/* ---- routing (router.c) ---- */
enum ck_verb {
    CK_VERB_GET, CK_VERB_LIST, CK_VERB_WATCH, CK_VERB_CREATE, CK_VERB_UPDATE, CK_VERB_PATCH,
    CK_VERB_DELETE, CK_VERB_DELETECOLLECTION, CK_VERB__COUNT
};
const char *ck_verb_name(enum ck_verb v);

enum ck_route_kind {
    CK_ROUTE_NONE,            /* not an API path (health, metrics, openapi) */
    CK_ROUTE_RESOURCE,        /* a served resource (res set) */
    CK_ROUTE_API,             /* GET /api */
    CK_ROUTE_APIS,            /* GET /apis */
    CK_ROUTE_GROUP,           /* GET /apis/<group> */
    CK_ROUTE_GROUP_VERSION,   /* GET /api/v1, /apis/<group>/<version> */
};

typedef struct ck_route {
    enum ck_route_kind kind;
    const ck_resource *res;
    char *group, *version;
    char *namespace_;         /* NULL: all namespaces / cluster-scoped */
    char *name;               /* NULL: the collection */
    char *subresource;        /* NULL: the object itself */
    enum ck_verb verb;
} ck_route;

/* Parse an API path.  CK_E_NOT_FOUND for a path that names nothing we serve, CK_E_METHOD for a
 * method the target does not take. */
int ck_route_parse(const char *method, const char *path, const char *query, ck_route *out,
                   ck_error **err);
void ck_route_free(ck_route *r);

/* ---- authorization hook ---- */
typedef struct ck_authz_attrs {
    const ck_user *user;
    const char *verb;         /* upstream verb: get list watch create update patch delete ... */
    const char *group, *resource, *subresource, *namespace_, *name;
    const char *path;         /* non-resource requests */
} ck_authz_attrs;
/* true = allow.  *reason (may stay NULL) is malloc'd. */
typedef bool (*ck_authorizer)(void *ctx, const ck_authz_attrs *a, char **reason);

/* ---- allocation (alloc.c) ---- */
typedef struct ck_alloc ck_alloc;
ck_alloc *ck_alloc_new(const char *cidr, int port_lo, int port_hi, ck_error **err);
void ck_alloc_free(ck_alloc *a);
/* Claim a specific IP / any free one (out holds 16 bytes).  CK_E_INVALID with upstream's words
 * when taken or out of range. */
int ck_alloc_ip_claim(ck_alloc *a, const char *ip, ck_error **err);
int ck_alloc_ip_next(ck_alloc *a, char out[16], ck_error **err);
/* cidr may be dual-stack ("10.96.0.0/12,fd00:96::/108", primary first; IPv6 /108 to /126).
 * The family (4 or 6) of range i (0 primary, 1 secondary), 0 when there is none. */
int ck_alloc_family(ck_alloc *a, int i);
/* Any free IP of a family (out holds out_len bytes; 46 fits any). */
int ck_alloc_ip_next_family(ck_alloc *a, int family, char *out, size_t out_len, ck_error **err);
void ck_alloc_ip_release(ck_alloc *a, const char *ip);
bool ck_alloc_ip_in_range(ck_alloc *a, const char *ip);
int ck_alloc_port_claim(ck_alloc *a, int port, ck_error **err);
int ck_alloc_port_next(ck_alloc *a, int *port, ck_error **err);
void ck_alloc_port_release(ck_alloc *a, int port);
size_t ck_alloc_ip_used(ck_alloc *a);
size_t ck_alloc_port_used(ck_alloc *a);

/* ---- metadata (meta.c) ---- */
/* 5 characters from upstream's generateName alphabet (no vowels, no confusable digits). */
void ck_meta_random_suffix(char out[6]);
/* Continue tokens: opaque base64 of {"v":"meta.k8s.io/v1","rv":N,"start":"<key after prefix>"}. */
char *ck_continue_encode(int64_t rev, const char *start);
int ck_continue_decode(const char *tok, int64_t *rev, char **start, ck_error **err);
json_t *ck_meta(json_t *obj);                     /* obj.metadata, created if missing */
const char *ck_meta_str(const json_t *obj, const char *field);   /* metadata.<field> string */
void ck_meta_set_rv(json_t *obj, int64_t rev);
/* First-write metadata: uid, creationTimestamp, generation (kinds with generation). */
void ck_meta_on_create(const ck_resource *r, json_t *obj, int64_t now);
/* Carry over what a client cannot change on update (uid, creationTimestamp, deletion fields,
 * generation) and bump generation when spec changed. */
void ck_meta_on_update(const ck_resource *r, json_t *obj, const json_t *old);
bool ck_meta_has_generation(const ck_resource *r);
/* Whether the resource has a status subresource (status kept apart from spec writes). */
bool ck_res_has_status(const ck_resource *r);
/* Upstream's qualified resource ("pods", "deployments.apps"); static per thread. */
const char *ck_res_qualified(const ck_resource *r);
/* Append the stored JSON object text s with metadata.resourceVersion = rev inserted, without
 * parsing it; -1 (out may hold a partial write) if s has no top-level metadata object. */
int ck_json_splice_rv(const char *s, size_t n, int64_t rev, ck_buf *out);
/* Its two halves: where the resourceVersion goes (just inside the top-level metadata; empty: the
 * metadata object is empty), -1 if s has none; and the splice at that place. */
int ck_json_rv_slot(const char *s, size_t n, size_t *at, bool *empty);
int ck_json_splice_rv_at(const char *s, size_t n, size_t at, bool empty, int64_t rev, ck_buf *out);
/* s[i] starts a JSON value (of text this server printed); the index after it (n if cut). */
size_t ck_json_skip_value(const char *s, size_t i, size_t n);

/* ---- pods/binding (podbind.c) ---- */
enum ck_bind_result {
    CK_BIND_OK,         /* bound: the pod (or out) has nodeName and PodScheduled=True */
    CK_BIND_ASSIGNED,   /* spec.nodeName already set: *assigned (caller frees) names the node */
    CK_BIND_DELETING,   /* metadata.deletionTimestamp is set */
    CK_BIND_DECLINE,    /* (text only) not a shape the text edit handles: use the tree */
};
/* Bind the pod tree in place to node, the condition's lastTransitionTime ts. */
enum ck_bind_result ck_pod_bind_tree(json_t *pod, const char *node, const char *ts, char **assigned);
/* The same on the stored compact text s: out gets exactly the compact print of the tree path's
 * result (resourceVersion aside: stored text has none). */
enum ck_bind_result ck_pod_bind_text(const char *s, size_t n, const char *node, const char *ts,
                                     ck_buf *out, char **assigned);
/* A Lease renewal on the stored text (leasetext.c): 1 with out = what the tree path (merge patch,
 * checks, managedFields by `manager` at `now`, an RFC 3339 second) would store for the compact
 * stored Lease s[0..n) and merge patch `patch`; 0 (out untouched) when it declines: then the
 * caller takes the tree path. */
int ck_lease_renew_text(const char *s, size_t n, const json_t *patch, const char *manager,
                        const char *now, ck_buf *out);
/* json_dumps(v, JSON_COMPACT), the same bytes, faster (jsonout.c); *len (if given) gets the
 * length.  NULL if v is not an object or array (or nests absurdly deep). */
char *ck_json_print(const json_t *v, size_t *len);
/* The object as JSON text for the store (without resourceVersion).  Caller frees. */
char *ck_meta_dump_for_store(json_t *obj, size_t *len);

/* ---- metrics (metrics.c) ---- */
void ck_metrics_request(const char *verb, const char *resource, int code, double seconds);
void ck_metrics_store(const char *op, double seconds);
void ck_metrics_watchers(int delta);
char *ck_metrics_render(void);

/* ---- the server ---- */
typedef struct ck_watch_hub ck_watch_hub;

typedef struct ck_apiserver {
    ck_store *store;
    ck_token_file *tokens;
    ck_sa_keys *sa_keys;      /* NULL: no service account tokens */
    ck_authorizer authorize;
    void *authorize_ctx;
    ck_alloc *alloc;
    pthread_mutex_t alloc_mu;
    ck_watch_hub *watch;      /* watch.c */
    int secure_port;
    const char *advertise_ip;
    unsigned admission_off;   /* CK_ADMIT_* bits of --disable-admission-plugins */
    struct ck_admission_cache *admit_cache;   /* NULL: admission reads the store every time */
    bool ready;
    int64_t started_wall;
} ck_apiserver;

/* One request in flight. */
typedef struct ck_reqctx {
    ck_apiserver *srv;
    ck_http_req *req;
    ck_http_resp *resp;
    ck_user user;
    ck_route route;
    ck_buf warnings;          /* "Warning: 299 - ..." header lines */
    json_t *causes;           /* for 422 Invalid (stolen by the response) */
    json_t *details;          /* replaces the route's Status details (errors about query options) */
    int status;               /* HTTP status sent (for metrics) */
    bool responded;
    bool no_details;          /* error Status without details (errors about the request itself) */
    const char *metric_verb, *metric_res;   /* static strings */
    /* asynchronous store writes (writedefer.c): a handler sets async_ok just before a write
     * whose successful answer is only the stored text with its new resourceVersion (nothing
     * else happens after the write), and async_retry if the failure is retried (an unpinned
     * update's conflict, a generated name's clash); the write may then be handed to the store
     * and answered by its completion (defer set), the handler returning without an answer. */
    bool async_ok, async_retry;
    bool sync_only;           /* a rerun after an asynchronous conflict: every write waits */
    int admit_tries;          /* ServiceAccount lookups made by earlier runs (ck_defer_retry) */
    struct ck_defer *defer;
} ck_reqctx;

/* ---- request lifetime (apiserver.c) ---- */
/* Heap-allocated by ck_apiserver_handle.  account: the request metric and log line (reads the
 * request: call before the answer when the handler has returned); free: the context itself. */
void ck_reqctx_account(ck_reqctx *c, const char *method, const char *target, int64_t received_ns);
void ck_reqctx_free(ck_reqctx *c);

/* ---- asynchronous writes (writedefer.c) ---- */
/* true if this write may be handed to the store: the handler allowed it (async_ok), this is not
 * a rerun, and the store completes writes on its own thread (SQLite). */
bool ck_defer_can(const ck_reqctx *c);
/* Hands the write to the store if it can (ck_defer_can, and the text has a top-level metadata
 * for the resourceVersion, unless status_answer): true with key and text taken and c->defer
 * set, and the caller returns without answering; the completion answers `code` with the stored
 * text and its resourceVersion (status_answer: a Status Success instead), or the error as the
 * synchronous path would (404, 409 AlreadyExists/Conflict; with async_retry, a conflict or a
 * generated name's clash reruns the whole request with every write synchronous).  false:
 * nothing taken, write synchronously. */
bool ck_defer_write(ck_reqctx *c, const ck_resource *r, enum ck_store_write_kind kind,
                    const char *name, char *key, char *text, size_t len, int64_t expected,
                    int code, bool status_answer);
/* true if the handler may return without an answer and have the request served again later
 * (ck_defer_retry): a create answered with the stored text (async_ok), not a synchronous rerun. */
bool ck_defer_can_retry(const ck_reqctx *c);
/* Serve the whole request again (ck_rest_serve, on the rerun thread) in delay_ms, instead of
 * waiting on this thread; sets c->defer, and the caller returns without answering. */
void ck_defer_retry(ck_reqctx *c, int delay_ms);
/* The same for a write answered with a JSON object printed (200): a delete's Status (text
 * NULL), or a delete's kept object (answer_rv: its new resourceVersion set first).  true with
 * key, text and answer taken; a conflict reruns the request (with async_retry), as the
 * synchronous path reads and tries again; a 404 is NotFound as there. */
bool ck_defer_write_json(ck_reqctx *c, const ck_resource *r, enum ck_store_write_kind kind,
                         const char *name, char *key, char *text, size_t len, int64_t expected,
                         json_t *answer, bool answer_rv);
/* ck_apiserver_handle, after the handler returned with c->defer set. */
void ck_defer_handler_done(ck_reqctx *c);
/* Waits until no deferred request is in flight (after the HTTP server stopped, before the store
 * closes). */
void ck_defer_drain(void);
/* writes handed to the store, requests rerun after a conflict, and requests to be served again
 * later (ck_defer_retry), since the process started */
void ck_defer_stats(long long *deferred, long long *reruns, long long *retries);

/* ---- responses (status.c) ---- */
json_t *ck_status_json(int code, const char *reason, const char *message, json_t *details);
/* A Status for err, with details from the route (name, group, kind = resource or Kind). */
json_t *ck_status_from_error(const ck_error *e, const ck_route *rt, json_t *causes);
void ck_respond_json(ck_reqctx *c, int status, json_t *body /* stolen */);
/* metav1.Status Success with CODE (< 400): the same bytes as ck_respond_json of
 * ck_status_json(code, NULL, NULL, NULL), from a fixed text */
void ck_respond_success(ck_reqctx *c, int code);
size_t ck_status_success_text(int code, char *buf, size_t size);
void ck_respond_error(ck_reqctx *c, ck_error *e /* freed */);
void ck_respond_text(ck_reqctx *c, int status, const char *ctype, const char *text);
void ck_respond_bytes(ck_reqctx *c, int status, const char *ctype, const char *body, size_t len);
void ck_respond_json_ct(ck_reqctx *c, int status, const char *ctype, json_t *body /* stolen */);
void ck_warn(ck_reqctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Error helpers with upstream's wording. */
int ck_err_not_found(ck_error **err, const ck_resource *r, const char *name);
int ck_err_exists(ck_error **err, const ck_resource *r, const char *name);
int ck_err_conflict(ck_error **err, const ck_resource *r, const char *name);
char *ck_query(const ck_reqctx *c, const char *name);   /* caller frees */
bool ck_query_bool(const ck_reqctx *c, const char *name);
bool ck_accept_table(const ck_reqctx *c);
/* 0 when the Accept header names a media type the API serves (or none at all); -1 with 406
 * NotAcceptable in upstream's words otherwise. */
int ck_accept_check(const ck_reqctx *c, ck_error **err);
/* What the Accept header asks for: the object, a meta.k8s.io Table, or PartialObjectMetadata
 * (metadata-only clients such as the garbage collector). */
enum ck_accept_as { CK_AS_OBJECT, CK_AS_TABLE, CK_AS_PARTIAL };
enum ck_accept_as ck_accept_as(const ck_reqctx *c);
/* {"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":...}; NEW reference. */
json_t *ck_partial_metadata(const json_t *obj);

/* ---- verbs ---- */
void ck_rest_serve(ck_reqctx *c);              /* rest.c: dispatch a CK_ROUTE_RESOURCE request */
void ck_list_serve(ck_reqctx *c);              /* list.c */
void ck_subres_serve(ck_reqctx *c);            /* subres.c: status, scale, binding, finalize */
void ck_reviews_serve(ck_reqctx *c);           /* subres.c: SelfSubjectReview & co */
void ck_podlog_serve(ck_reqctx *c);            /* podlog.c: pods/log, proxied to the kubelet */
json_t *ck_table_wrap(const ck_resource *r, json_t *items /* borrowed array */, const char *include,
                      int64_t rev);

/* Shared write machinery (rest.c). */
enum ck_write_verb { CK_WRITE_CREATE, CK_WRITE_UPDATE, CK_WRITE_PATCH, CK_WRITE_APPLY };
typedef struct ck_write_opts {
    enum ck_write_verb verb;   /* which write the options came with */
    bool dry_run;
    const char *manager;       /* fieldManager */
    const char *field_validation;   /* Strict|Warn|Ignore */
    bool applied;              /* the object comes from ck_patch_apply (it recorded itself) */
} ck_write_opts;
/* The write options a create (POST), update (PUT) or patch (PATCH) takes from the query, checked
 * as upstream's ValidateCreateOptions / ValidateUpdateOptions / ValidatePatchOptions do before
 * the body is looked at: dryRun other than All, a fieldManager over 128 bytes or with control
 * characters, fieldValidation other than Strict/Warn/Ignore, force on a non-apply patch and an
 * apply without fieldManager are 422 Invalid `<Kind>Options.meta.k8s.io "" is invalid: ...`
 * (*details then holds the Status details: group meta.k8s.io, the options kind, one cause per
 * field).  ck_write_opts_parse is the parser; ck_write_opts_from_query picks the verb from the
 * request and puts the details on the request for ck_respond_error. */
int ck_write_opts_parse(const char *query, const char *user_agent, enum ck_write_verb verb,
                        ck_write_opts *o, char **owned_manager, char **owned_fv, json_t **details,
                        ck_error **err);
int ck_write_opts_from_query(ck_reqctx *c, ck_write_opts *o, char **owned_manager,
                             char **owned_fv, ck_error **err);

/* The options of a list, watch or deletecollection (list.c), parsed and checked as upstream
 * decodes metav1.ListOptions and runs ValidateListOptions: limit and timeoutSeconds must be
 * integers (400 `strconv.ParseInt: parsing "abc": invalid syntax`), resourceVersion an unsigned
 * integer when given (400 `resourceVersion: Invalid value: "abc": strconv.ParseUint: ...`), and
 * resourceVersionMatch / sendInitialEvents combinations follow upstream's rules (422
 * `ListOptions.meta.k8s.io "" is invalid: ...`, details in *details). */
typedef struct ck_list_query {
    char *label_selector, *field_selector, *cont, *rv, *rvm;   /* NULL when absent */
    int64_t limit;             /* <= 0: no limit (upstream ignores a negative one) */
    bool has_timeout;
    int64_t timeout_seconds;
    bool send_initial_set, send_initial;
    bool bookmarks;
    int64_t rev;               /* resourceVersion as a number; 0 for absent, "" or "0" */
} ck_list_query;
int ck_list_query_parse(const char *query, bool watch, ck_list_query *q, json_t **details,
                        ck_error **err);
void ck_list_query_free(ck_list_query *q);
/* ck_list_query_parse on the request's query; details go on the request. */
int ck_list_query_from_request(ck_reqctx *c, bool watch, ck_list_query *q, ck_error **err);
/* 422 `<kind>.meta.k8s.io "" is invalid: ...` for query options; causes stolen. */
int ck_options_invalid(const char *kind, json_t *causes, json_t **details, ck_error **err);
/* Read an object; *rev receives its mod revision.  NULL + CK_E_NOT_FOUND (upstream text). */
json_t *ck_rest_read(ck_apiserver *s, const ck_resource *r, const char *ns, const char *name,
                     int64_t *rev, ck_error **err);
/* ck_rest_read with the top-level members named in raw_keys (space-separated; NULL: none) kept as
 * their stored text (codec.h, ck_json_load_raw): for a write that only carries them over. */
json_t *ck_rest_read_raw(ck_apiserver *s, const ck_resource *r, const char *ns, const char *name,
                         int64_t *rev, const char *raw_keys, ck_error **err);
/* ck_rest_update_obj flags */
enum {
    CK_UPDATE_STATUS = 1,   /* a status write: only obj's status is taken */
    CK_UPDATE_OWN = 2,      /* obj is the caller's to give: used (and changed) in place instead of
                             * copied; it shares nothing with old, and the caller only drops it */
};
/* The update path shared by PUT, PATCH, status and scale writes: `obj` is the desired object,
 * `old`/`old_rev` the live one.  Returns the stored object (RV set) or NULL.  When resp is given
 * and the object was written, resp gets the answer's JSON text (the stored text with the new
 * resourceVersion spliced in); it stays empty for a no-op or when the splice fails (answer
 * with the returned object then). */
json_t *ck_rest_update_obj(ck_reqctx *c, const ck_resource *r, json_t *obj, json_t *old,
                           int64_t old_rev, const ck_write_opts *o, unsigned flags,
                           ck_buf *resp, ck_error **err);
/* Answer an update: resp's text when it has some (see ck_rest_update_obj), else out printed.
 * Takes out and frees resp's data. */
void ck_rest_respond_update(ck_reqctx *c, int code, json_t *out, ck_buf *resp);
/* One attempt of a write handler's update (PUT, PATCH, status): ck_rest_update_obj with the
 * answer left to the store's completion where it can be (writedefer.c; retry: a conflict there
 * reruns the request), answered 200 when it succeeds.  true: answered; false: *err set, for the
 * caller to retry on or answer. */
bool ck_rest_update_answer(ck_reqctx *c, const ck_resource *r, json_t *obj, json_t *old,
                           int64_t old_rev, const ck_write_opts *o, unsigned flags, bool retry,
                           ck_error **err);
/* The create path shared by POST and apply-create. */
json_t *ck_rest_create_obj(ck_reqctx *c, const ck_resource *r, const char *ns, json_t *obj,
                           const ck_write_opts *o, ck_error **err);
/* Delete one object with options; returns the object if it stays (graceful / finalizers), else
 * a Status Success.  *code gets 200/202. */
json_t *ck_rest_delete_obj(ck_reqctx *c, const ck_resource *r, const char *ns, const char *name,
                           const json_t *options, ck_error **err);
/* Decode the request body per Content-Type into an object; duplicates filled when non-NULL. */
json_t *ck_rest_body(ck_reqctx *c, json_t *duplicates, ck_error **err);
/* body.c: the media type of a Content-Type, without parameters, lowercased ("application/json"
 * when none).  Caller frees. */
char *ck_rest_media_type(const char *ctype);
/* body.c: e (a ck_rest_body error) as upstream's transformDecodeError words it for a create or
 * update of r when the body's apiVersion and kind could not be read; other errors unchanged. */
ck_error *ck_rest_unrecognized_body(const ck_reqctx *c, const ck_resource *r, ck_error *e);
/* body.c: the body's apiVersion and kind against r's (upstream's scheme, converter and
 * AcceptsGroupVersion checks, their words); sets r's on success. */
int ck_rest_check_type(const ck_resource *r, json_t *obj, ck_error **err);

enum ck_patch_type { CK_PATCH_JSON, CK_PATCH_MERGE, CK_PATCH_STRATEGIC, CK_PATCH_APPLY };
/* Decode a PATCH body by Content-Type (array for JSON patch, object otherwise). */
json_t *ck_rest_patch_body(ck_reqctx *c, enum ck_patch_type *t, ck_error **err);
json_t *ck_rest_patch_apply(enum ck_patch_type t, const json_t *old, const json_t *patch,
                            const ck_resource *schema_res, const ck_write_opts *o, bool force,
                            ck_error **err);
/* PUT of the object (status_only false) or of its status subresource. */
void ck_rest_put(ck_reqctx *c, bool status_only);
/* DeleteOptions from the body (kubectl sends JSON) or the query. */
/* DeleteOptions from the body and the query (gracePeriodSeconds, propagationPolicy, dryRun),
 * validated as upstream's ValidateDeleteOptions: NULL with 400 (unparsable number) or 422
 * DeleteOptions Invalid (c->details carries the causes). */
json_t *ck_rest_delete_options(ck_reqctx *c, ck_error **err);
/* Go's strconv.ParseInt(s, 10, 64) / ParseUint: 0, or -1 with upstream's error text in *why
 * (the caller frees it). */
int ck_parse_go_int(const char *s, bool is_unsigned, int64_t *out, char **why);
/* The body's name must match the URL's; sets name and namespace from the URL. */
int ck_rest_check_name(ck_reqctx *c, json_t *obj, ck_error **err);
/* One walk over obj (openapi.h): JSON types always (a mismatch is upstream's decode error: 400
 * `<Kind> in version "v1" cannot be handled as a <Kind>: json: cannot unmarshal ...` for a create
 * or update body, 422 `patch: Invalid value: ...` for the result of a JSON, merge or strategic
 * patch, 400 `failed to create typed patch object ...` for an apply), then fieldValidation
 * Strict/Warn/Ignore over the unknown fields and the duplicates (codec.h) found. */
int ck_rest_check_fields(ck_reqctx *c, const ck_resource *r, const json_t *obj, const json_t *dups,
                         const ck_write_opts *o, ck_error **err);
/* The type half of ck_rest_check_fields alone (status writes, whose unknown fields are never
 * reported). */
int ck_rest_check_types(ck_reqctx *c, const ck_resource *r, const json_t *obj,
                        const ck_write_opts *o, ck_error **err);

/* Write obj (its metadata names the key) with expected revision, bypassing strategy and
 * validation (binding, finalize); sets obj's resourceVersion.  Upstream errors. */
int ck_rest_store_update(ck_apiserver *s, const ck_resource *r, json_t *obj, int64_t expected,
                         ck_error **err);
/* ck_rest_store_update of an object's stored text (no resourceVersion in it); *rev (if given)
 * gets the write's revision. */
int ck_rest_store_update_text(ck_apiserver *s, const ck_resource *r, const char *ns,
                              const char *name, const char *text, size_t len, int64_t expected,
                              int64_t *rev, ck_error **err);
/* The stored text of (r, ns, name) into *kv (ck_kv_free it); upstream's 404. */
int ck_rest_read_text(ck_apiserver *s, const ck_resource *r, const char *ns, const char *name,
                      ck_kv *kv, ck_error **err);

/* Delete the key of (r, ns, name) if its revision is still expected; *rev gets the delete's
 * revision.  Upstream errors (404, 409). */
int ck_rest_store_delete(ck_apiserver *s, const ck_resource *r, const char *ns, const char *name,
                         int64_t expected, int64_t *rev, ck_error **err);
/* Whether a write leaves obj to be removed instead of stored: deletionTimestamp set and no
 * finalizers left (a namespace also needs spec.finalizers empty; pods never: the kubelet
 * deletes them). */
bool ck_rest_should_finish(const ck_resource *r, const json_t *obj);

/* Namespace lifecycle: 0 if writes may go into ns; 404 / 403 otherwise. */
int ck_namespace_check(ck_apiserver *s, const ck_resource *r, const char *ns, const char *name,
                       ck_error **err);

/* Service allocation (alloc.c).  On create/update, fill spec.clusterIP(s) and nodePorts. */
int ck_service_allocate(ck_apiserver *s, json_t *svc, const json_t *old, json_t *causes,
                        ck_error **err);
void ck_service_release(ck_apiserver *s, const json_t *svc, const json_t *keep);
int ck_alloc_recover(ck_apiserver *s, ck_error **err);

/* ---- admission (admission.c) ---- */
enum {
    CK_ADMIT_LIMITRANGER = 1u << 0,
    CK_ADMIT_SERVICEACCOUNT = 1u << 1,
    CK_ADMIT_PRIORITY = 1u << 2,
    CK_ADMIT_TOLERATIONS = 1u << 3,     /* DefaultTolerationSeconds */
    CK_ADMIT_RESOURCEQUOTA = 1u << 4,
};
typedef struct ck_admission_cache ck_admission_cache;
ck_admission_cache *ck_admission_cache_new(void);
void ck_admission_cache_free(ck_admission_cache *c);
/* Every store write of an object of r through this server (rest.c's create, update, delete). */
void ck_admission_note_write(ck_apiserver *s, const ck_resource *r);
/* "LimitRanger,Priority" (upstream's plugin names) -> CK_ADMIT_* bits; CK_E_USAGE if unknown. */
int ck_admission_parse_disabled(const char *list, unsigned *out, ck_error **err);
/* Mutating plugins on a create (after defaulting, before the strategy): LimitRanger,
 * ServiceAccount, Priority, DefaultTolerationSeconds for pods; the one-globalDefault rule for
 * PriorityClasses.  403 Forbidden with upstream's texts. */
int ck_admit_create(ck_apiserver *s, const ck_resource *r, const char *ns, json_t *obj,
                    ck_error **err);
/* ServiceAccount admission looks a namespace's default account up this many times, 100-200 ms
 * apart (it is made by a controller right after the namespace), before it gives up. */
#define CK_ADMIT_SA_LOOKUPS 10
#define CK_ADMIT_SA_RETRY_MS 100   /* + up to 100 ms at random */
/* ck_admit_create without the wait: tries (>= 0) lookups of the default account were made by
 * earlier runs of this request; 1 if it is still missing and may yet come, so the caller serves
 * the request again in CK_ADMIT_SA_RETRY_MS (ck_defer_retry) instead of sleeping (obj may be
 * half-admitted: start over from the request).  After the last lookup, upstream's 403 as
 * ck_admit_create.  tries < 0 is ck_admit_create. */
int ck_admit_create_try(ck_apiserver *s, const ck_resource *r, const char *ns, json_t *obj,
                        int tries, ck_error **err);
/* The same on an update (pods keep their resolved priority; tolerations defaulted). */
int ck_admit_update(ck_apiserver *s, const ck_resource *r, json_t *obj, const json_t *old,
                    ck_error **err);
/* ResourceQuota on a create, after validation: 403 if a quota in ns would be exceeded, else
 * charges the quotas' status.used (unless dry_run).  *locked: the quota lock is held; the caller
 * calls ck_quota_done(*locked) once the store write is done, then ck_quota_refresh if it failed. */
int ck_quota_admit(ck_apiserver *s, const ck_resource *r, const char *ns, const json_t *obj,
                   bool dry_run, bool *locked, ck_error **err);
void ck_quota_done(bool locked);
/* Recount the quotas in ns that track r (after a delete or a failed create). */
void ck_quota_refresh(ck_apiserver *s, const ck_resource *r, const char *ns);
/* false if ck_quota_refresh(s, r, ns) would do nothing now (no ResourceQuota in ns, the plugin
 * off, r cluster-scoped) */
bool ck_quota_may_track(ck_apiserver *s, const ck_resource *r, const char *ns);
/* status.hard and status.used of a ResourceQuota being created or changed. */
void ck_quota_fill_status(ck_apiserver *s, json_t *quota);

/* ---- watch (watch.c) ---- */
ck_watch_hub *ck_watch_hub_new(ck_apiserver *s, ck_error **err);
void ck_watch_hub_free(ck_watch_hub *h);
/* Delivery rounds of the shared watch cache so far: run on the store's thread (inline) and on
 * the cache's dispatch thread. */
void ck_watch_hub_rounds(ck_watch_hub *h, uint64_t *inline_rounds, uint64_t *thread_rounds);
void ck_watch_serve(ck_reqctx *c);

/* Client certificate, static token, then service account JWT (whose account must still exist
 * with the uid in the token). */
int ck_authn(ck_apiserver *s, const ck_http_req *req, ck_user *out, ck_error **err);

/* ---- bootstrap (bootstrap.c) ---- */
int ck_bootstrap(ck_apiserver *s, ck_error **err);

/* The request entry point (apiserver.c), exported for tests. */
void ck_apiserver_handle(void *ctx, ck_http_req *req, ck_http_resp *resp);

#endif
