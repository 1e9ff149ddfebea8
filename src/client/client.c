/* client.c - see client.h. */
#include "client/client.h"
#include "client/client_int.h"
#include "apiserver/apiserver.h"   /* ck_json_print */
#include "client/jsonpick.h"
#include "lib/log.h"
#include "lib/util.h"

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define CLIENT_POOL_MAX 32
#define CLIENT_MAX_RESPONSE (512u * 1024 * 1024)   /* a list of 150k pods stays below this */
#define CLIENT_MAX_WATCH_LINE (16u * 1024 * 1024)

struct ck_client {
    ck_kubeconfig kc;            /* owned copies of the strings */
    char *user_agent;
    pthread_mutex_t lock;
    CURL *pool[CLIENT_POOL_MAX]; /* idle handles, configured once; each keeps its live connection */
    int npool;
    /* TLS sessions and DNS answers shared by every handle: a new connection (a watch, a burst
     * beyond the pool) resumes a session instead of a full handshake */
    CURLSH *share;
    pthread_mutex_t share_lock[CURL_LOCK_DATA_LAST];
    /* the headers of a request without and with a JSON body (Authorization when a token) */
    struct curl_slist *hdr_plain, *hdr_json;
    bool env_proxy;              /* a proxy variable is set: libcurl must read the environment */
    /* for the requests printed here (sender, watches): the server URL's path, and the Host,
     * User-Agent and Authorization headers */
    char *prefix, *fixed;
    size_t fixed_len;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *dup_or_null(const char *s, size_t len)
{
    return s ? xstrndup(s, len) : NULL;
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *userp)
{
    (void)h;
    (void)access;
    pthread_mutex_lock(&((ck_client *)userp)->share_lock[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *userp)
{
    (void)h;
    pthread_mutex_unlock(&((ck_client *)userp)->share_lock[data]);
}

/* accept false: no Accept header at all ("Accept:" tells libcurl not to add its own), for
 * writes whose answer is not read: libcurl prints every header byte by byte, ~100 instructions
 * a byte. */
static struct curl_slist *header_list(const ck_client *c, const char *content_type, bool accept)
{
    struct curl_slist *l = NULL;
    if (c->kc.token) {
        cleanup_free char *auth = xasprintf("Authorization: Bearer %s", c->kc.token);
        l = curl_slist_append(l, auth);
        OPENSSL_cleanse(auth, strlen(auth));
    }
    l = curl_slist_append(l, accept ? "Accept: application/json" : "Accept:");
    if (content_type) {
        cleanup_free char *ct = xasprintf("Content-Type: %s", content_type);
        l = curl_slist_append(l, ct);
    }
    if (!l)
        abort();                /* out of memory, as xmalloc */
    return l;
}

ck_client *ck_client_new(const ck_kubeconfig *kc, const char *user_agent, ck_error **err)
{
    if (!kc->server || !*kc->server) {
        ck_error_set(err, CK_E_INVALID, "kubeconfig has no server");
        return NULL;
    }
    pthread_once(&curl_once, curl_init_once);
    ck_client *c = xcalloc(1, sizeof *c);
    c->kc.server = xstrdup(kc->server);
    c->kc.insecure = kc->insecure;
    c->kc.ca_pem = dup_or_null(kc->ca_pem, kc->ca_len);
    c->kc.ca_len = kc->ca_len;
    c->kc.cert_pem = dup_or_null(kc->cert_pem, kc->cert_len);
    c->kc.cert_len = kc->cert_len;
    c->kc.key_pem = dup_or_null(kc->key_pem, kc->key_len);
    c->kc.key_len = kc->key_len;
    c->kc.token = kc->token ? xstrdup(kc->token) : NULL;
    c->user_agent = xstrdup(user_agent ? user_agent : "ckube");
    pthread_mutex_init(&c->lock, NULL);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&c->share_lock[i], NULL);
    c->share = curl_share_init();
    if (c->share) {
        curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
        curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
        curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    }
    static const char *const proxy_vars[] = {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                                             "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"};
    for (size_t i = 0; i < ARRAY_SIZE(proxy_vars); i++)
        c->env_proxy |= getenv(proxy_vars[i]) != NULL;
    c->hdr_plain = header_list(c, NULL, true);
    c->hdr_json = header_list(c, "application/json", true);
    char *host = NULL, *port = NULL, *path = NULL;
    CURLU *u = curl_url();
    if (!u)
        abort();                /* out of memory, as xmalloc */
    if (curl_url_set(u, CURLUPART_URL, c->kc.server, 0) == CURLUE_OK) {
        curl_url_get(u, CURLUPART_HOST, &host, 0);
        curl_url_get(u, CURLUPART_PORT, &port, 0);
        curl_url_get(u, CURLUPART_PATH, &path, 0);
    }
    curl_url_cleanup(u);
    size_t plen = path ? strlen(path) : 0;
    while (plen && path[plen - 1] == '/')
        plen--;
    c->prefix = xstrndup(path ? path : "", plen);
    ck_buf b;
    ck_buf_init(&b, 1u << 20);
    ck_buf_printf(&b, "Host: %s%s%s\r\nUser-Agent: %s\r\n", host ? host : "localhost",
                  port ? ":" : "", port ? port : "", c->user_agent);
    if (c->kc.token)
        ck_buf_printf(&b, "Authorization: Bearer %s\r\n", c->kc.token);
    c->fixed_len = b.len;
    c->fixed = ck_buf_steal(&b);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    return c;
}

ck_client *ck_client_from_file(const char *path, const char *user_agent, ck_error **err)
{
    ck_kubeconfig *kc = ck_kubeconfig_load(path, NULL, err);
    if (!kc)
        return NULL;            /* the error names the file already */
    ck_client *c = ck_client_new(kc, user_agent, err);
    ck_kubeconfig_free(kc);
    return c;
}

void ck_client_free(ck_client *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->npool; i++)
        curl_easy_cleanup(c->pool[i]);
    if (c->share)                /* after every handle that used it */
        curl_share_cleanup(c->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&c->share_lock[i]);
    if (c->hdr_plain)
        OPENSSL_cleanse(c->hdr_plain->data, strlen(c->hdr_plain->data));
    if (c->hdr_json)
        OPENSSL_cleanse(c->hdr_json->data, strlen(c->hdr_json->data));
    curl_slist_free_all(c->hdr_plain);
    curl_slist_free_all(c->hdr_json);
    OPENSSL_cleanse(c->fixed, c->fixed_len);
    free(c->fixed);
    free(c->prefix);
    free(c->kc.server);
    free(c->kc.ca_pem);
    free(c->kc.cert_pem);
    free(c->kc.key_pem);
    free(c->kc.token);
    free(c->user_agent);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static int setup_common(ck_client *c, CURL *h, ck_error **err);
static size_t collect(char *data, size_t size, size_t n, void *userp);

/* An idle handle, or a new one with everything that does not change between requests set once
 * (TLS identity, user agent, timeouts, the share): a request then sets only its URL, method,
 * body and headers.  NULL with *err when the identity cannot be set. */
static CURL *handle_new(ck_client *c, ck_error **err)
{
    CURL *h = curl_easy_init();
    if (!h) {
        ck_error_set(err, CK_E_INTERNAL, "curl_easy_init failed");
        return NULL;
    }
    if (setup_common(c, h, err) < 0) {
        curl_easy_cleanup(h);
        return NULL;
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 60000L);
    return h;
}

CURL *ck_client_connect_only(ck_client *c, curl_socket_t *fd, ck_error **err)
{
    *fd = CURL_SOCKET_BAD;
    CURL *h = handle_new(c, err);
    if (!h)
        return NULL;
    curl_easy_setopt(h, CURLOPT_URL, c->kc.server);
    curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);   /* ALPN: no h2 */
    /* a connection of its own is busy or long-lived: OpenSSL's buffers are kept rather than
     * freed after every record (17 KB malloc and free per record read otherwise) */
    curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, NULL);
    CURLcode cc = curl_easy_perform(h);
    if (cc == CURLE_OK)
        cc = curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, fd);
    if (cc != CURLE_OK || *fd == CURL_SOCKET_BAD) {
        ck_error_set(err, CK_E_UNAVAILABLE, "%s: %s", c->kc.server,
                     cc != CURLE_OK ? curl_easy_strerror(cc) : "no socket");
        curl_easy_cleanup(h);
        *fd = CURL_SOCKET_BAD;
        return NULL;
    }
    return h;
}

const ck_kubeconfig *ck_client_kubeconfig(const ck_client *c)
{
    return &c->kc;
}

const char *ck_client_user_agent(const ck_client *c)
{
    return c->user_agent;
}

const char *ck_client_prefix(const ck_client *c)
{
    return c->prefix;
}

const char *ck_client_fixed_headers(const ck_client *c, size_t *len)
{
    *len = c->fixed_len;
    return c->fixed;
}

static CURL *handle_take(ck_client *c, ck_error **err)
{
    pthread_mutex_lock(&c->lock);
    CURL *h = c->npool ? c->pool[--c->npool] : NULL;
    pthread_mutex_unlock(&c->lock);
    return h ? h : handle_new(c, err);
}

static void handle_give(ck_client *c, CURL *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&c->lock);
    if (c->npool < CLIENT_POOL_MAX) {
        c->pool[c->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    if (h)
        curl_easy_cleanup(h);
}

static size_t collect(char *data, size_t size, size_t n, void *userp)
{
    ck_buf *b = userp;
    return ck_buf_add(b, data, size * n) < 0 ? 0 : size * n;
}

/* OpenSSL keeps a ~17 KB read and write buffer per connection for its life; pooled idle
 * connections (dozens in a controller-manager) need none. */
static CURLcode ssl_ctx_setup(CURL *h, void *ssl_ctx, void *arg)
{
    (void)h;
    (void)arg;
    SSL_CTX_set_mode((SSL_CTX *)ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
    return CURLE_OK;
}

/* What every handle has, set once a handle: TLS identity (the blobs are copied into the handle
 * once, not each request), user agent, timeouts, the share. */
static int setup_common(ck_client *c, CURL *h, ck_error **err)
{
    struct curl_slist *unused = NULL;     /* the token header: c->hdr_* carry it */
    int rc = ck_kubeconfig_apply_curl(&c->kc, h, &unused, err);
    if (unused)
        OPENSSL_cleanse(unused->data, strlen(unused->data));
    curl_slist_free_all(unused);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    if (rc < 0)
        return -1;
    if (c->share)
        curl_easy_setopt(h, CURLOPT_SHARE, c->share);
    curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    /* libcurl keeps a 64 KB send buffer per handle (and a process keeps dozens of handles:
     * parallel writers, one per watch); bodies we send are small */
    curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
    curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_setup);
    /* libcurl looks the proxy variables up in the environment on every request (five getenv
     * walks of environ); when none is set, say so once */
    if (!c->env_proxy)
        curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    return 0;
}

/* A request's own options: URL and method. */
static void setup_target(ck_client *c, CURL *h, const char *method, const char *path)
{
    cleanup_free char *url = ck_kubeconfig_url(&c->kc, path);
    curl_easy_setopt(h, CURLOPT_URL, url);        /* copied by libcurl */
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
}

enum ck_error_code ck_client_code_from_reason(const char *reason, long http)
{
    static const struct { const char *reason; enum ck_error_code code; } map[] = {
        {"NotFound", CK_E_NOT_FOUND}, {"AlreadyExists", CK_E_EXISTS},
        {"Conflict", CK_E_CONFLICT}, {"Invalid", CK_E_INVALID},
        {"BadRequest", CK_E_BAD_REQUEST}, {"Unauthorized", CK_E_UNAUTHORIZED},
        {"Forbidden", CK_E_FORBIDDEN}, {"MethodNotAllowed", CK_E_METHOD},
        {"Expired", CK_E_EXPIRED}, {"Gone", CK_E_EXPIRED},
        {"RequestEntityTooLarge", CK_E_TOO_LARGE}, {"UnsupportedMediaType", CK_E_UNSUPPORTED_TYPE},
        {"TooManyRequests", CK_E_TOO_MANY}, {"Timeout", CK_E_TIMEOUT},
        {"ServiceUnavailable", CK_E_UNAVAILABLE},
    };
    for (size_t i = 0; reason && i < ARRAY_SIZE(map); i++)
        if (!strcmp(reason, map[i].reason))
            return map[i].code;
    switch (http) {
    case 404: return CK_E_NOT_FOUND;
    case 409: return CK_E_CONFLICT;
    case 410: return CK_E_EXPIRED;
    case 422: return CK_E_INVALID;
    case 400: return CK_E_BAD_REQUEST;
    case 401: return CK_E_UNAUTHORIZED;
    case 403: return CK_E_FORBIDDEN;
    case 429: return CK_E_TOO_MANY;
    case 503: return CK_E_UNAVAILABLE;
    default: return CK_E_INTERNAL;
    }
}

/* Turn a non-2xx answer into *err from its Status body (or the bare HTTP code). */
int ck_client_status_error(long http, const char *body, const char *method, const char *path,
                           ck_error **err)
{
    json_t *st = body ? json_loads(body, 0, NULL) : NULL;
    const char *reason = st ? json_string_value(json_object_get(st, "reason")) : NULL;
    const char *msg = st ? json_string_value(json_object_get(st, "message")) : NULL;
    ck_error_set(err, ck_client_code_from_reason(reason, http), "%s",
                 msg ? msg : "the server returned an error");
    if (!msg)
        ck_error_wrap(err, "%s %s: HTTP %ld", method, path, http);
    json_decref(st);
    return -1;
}

/* One request with an already encoded body (payload NULL: none); a 2xx answer is decoded whole
 * (keep NULL), picked (keep), or dropped (discard: then the result is an empty object). */
static json_t *request_text(ck_client *c, const char *method, const char *path,
                            const char *payload, size_t payload_len, const char *content_type,
                            const ck_jsonpick *keep, bool discard, ck_error **err)
{
    struct curl_slist *headers = NULL;    /* only for an unusual content type */
    ck_buf resp;
    ck_buf_init(&resp, CLIENT_MAX_RESPONSE);
    json_t *out = NULL;
    CURL *h = handle_take(c, err);
    if (!h)
        goto done;

    setup_target(c, h, method, path);
    if (payload) {
        if (content_type && strcmp(content_type, "application/json"))
            headers = header_list(c, content_type, true);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers ? headers : c->hdr_json);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)payload_len);
    } else {
        /* a pooled handle may have sent a body last time: back to none (the method is
         * CUSTOMREQUEST's either way) */
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->hdr_plain);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);

    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        ck_error_set(err, CK_E_UNAVAILABLE, "%s %s%s: %s", method, c->kc.server, path,
                     curl_easy_strerror(rc));
        goto done;
    }
    long http = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
    if (http < 200 || http > 299) {
        ck_client_status_error(http, resp.data, method, path, err);
        goto done;
    }
    if (resp.len == 0 || discard) {
        out = json_object();
        goto done;
    }
    if (keep) {
        out = ck_jsonpick_parse(resp.data, resp.len, keep, err);
        if (!out)
            ck_error_wrap(err, "%s %s: bad JSON from server", method, path);
        goto done;
    }
    json_error_t jerr;
    out = json_loadb(resp.data, resp.len, 0, &jerr);
    if (!out)
        ck_error_set(err, CK_E_INTERNAL, "%s %s: bad JSON from server: %s", method, path, jerr.text);
done:
    if (headers)
        OPENSSL_cleanse(headers->data, strlen(headers->data));
    curl_slist_free_all(headers);
    ck_buf_free(&resp);
    handle_give(c, h);
    return out;
}

/* request_text with body encoded here (ck_json_print: jansson's compact bytes, faster). */
static json_t *request(ck_client *c, const char *method, const char *path, const json_t *body,
                       const char *content_type, const ck_jsonpick *keep, bool discard,
                       ck_error **err)
{
    size_t len = 0;
    cleanup_free char *payload = NULL;
    if (body) {
        payload = ck_json_print(body, &len);
        if (!payload) {
            ck_error_set(err, CK_E_INVALID, "%s %s: the body is not a JSON object or array",
                         method, path);
            return NULL;
        }
    }
    return request_text(c, method, path, payload, len, content_type, keep, discard, err);
}

json_t *ck_client_request(ck_client *c, const char *method, const char *path, const json_t *body,
                          const char *content_type, ck_error **err)
{
    return request(c, method, path, body, content_type, NULL, false, err);
}

json_t *ck_client_request_pick(ck_client *c, const char *method, const char *path,
                               const json_t *body, const ck_jsonpick *keep, ck_error **err)
{
    return request(c, method, path, body, NULL, keep, false, err);
}

int ck_client_send(ck_client *c, const char *method, const char *path, const json_t *body,
                   const char *content_type, ck_error **err)
{
    json_t *out = request(c, method, path, body, content_type, NULL, true, err);
    if (!out)
        return -1;
    json_decref(out);
    return 0;
}

int ck_client_send_text(ck_client *c, const char *method, const char *path, const char *body,
                        size_t len, const char *content_type, ck_error **err)
{
    json_t *out = request_text(c, method, path, body, len, content_type, NULL, true, err);
    if (!out)
        return -1;
    json_decref(out);
    return 0;
}

char *ck_client_path(const ck_resource *r, const char *ns, const char *name, const char *sub)
{
    ck_buf b;
    ck_buf_init(&b, 4096);
    if (r->group[0])
        ck_buf_printf(&b, "/apis/%s/%s", r->group, r->version);
    else
        ck_buf_printf(&b, "/api/%s", r->version);
    if (r->namespaced && ns && *ns)
        ck_buf_printf(&b, "/namespaces/%s", ns);
    ck_buf_printf(&b, "/%s", r->resource);
    if (name)
        ck_buf_printf(&b, "/%s", name);
    if (name && sub)
        ck_buf_printf(&b, "/%s", sub);
    return ck_buf_steal(&b);
}

static const char *obj_name(const json_t *obj)
{
    return json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
}

json_t *ck_client_get(ck_client *c, const ck_resource *r, const char *ns, const char *name,
                      ck_error **err)
{
    cleanup_free char *p = ck_client_path(r, ns, name, NULL);
    return ck_client_request(c, "GET", p, NULL, NULL, err);
}

json_t *ck_client_create(ck_client *c, const ck_resource *r, const char *ns, const json_t *obj,
                         ck_error **err)
{
    cleanup_free char *p = ck_client_path(r, ns, NULL, NULL);
    return ck_client_request(c, "POST", p, obj, NULL, err);
}

static json_t *put(ck_client *c, const ck_resource *r, const char *ns, const json_t *obj,
                   const char *sub, ck_error **err)
{
    const char *name = obj_name(obj);
    if (!name) {
        ck_error_set(err, CK_E_INVALID, "update of a %s without metadata.name", r->kind);
        return NULL;
    }
    cleanup_free char *p = ck_client_path(r, ns, name, sub);
    return ck_client_request(c, "PUT", p, obj, NULL, err);
}

json_t *ck_client_update(ck_client *c, const ck_resource *r, const char *ns, const json_t *obj,
                         ck_error **err)
{
    return put(c, r, ns, obj, NULL, err);
}

json_t *ck_client_update_status(ck_client *c, const ck_resource *r, const char *ns,
                                const json_t *obj, ck_error **err)
{
    return put(c, r, ns, obj, "status", err);
}

json_t *ck_client_patch(ck_client *c, const ck_resource *r, const char *ns, const char *name,
                        const char *sub, const char *patch_type, const json_t *patch, ck_error **err)
{
    cleanup_free char *p = ck_client_path(r, ns, name, sub);
    return ck_client_request(c, "PATCH", p, patch, patch_type, err);
}

int ck_client_delete(ck_client *c, const ck_resource *r, const char *ns, const char *name,
                     const json_t *options, ck_error **err)
{
    cleanup_free char *p = ck_client_path(r, ns, name, NULL);
    return ck_client_send(c, "DELETE", p, options, NULL, err);   /* the answer is not read */
}

json_t *ck_event_new(const char *name, const char *event_ns, const ck_event_about *about,
                     const char *component, const char *instance, const char *host,
                     const char *type, const char *reason, const char *message,
                     const char *now_rfc3339)
{
    json_t *involved = json_pack("{s:s, s:s, s:s, s:s, s:s}", "apiVersion", about->api_version,
                                 "kind", about->kind, "namespace", about->ns, "name", about->name,
                                 "uid", about->uid);
    if (about->resource_version)
        json_object_set_new(involved, "resourceVersion", json_string(about->resource_version));
    json_t *source = json_pack("{s:s}", "component", component);
    if (host)
        json_object_set_new(source, "host", json_string(host));
    return json_pack("{s:s, s:s, s:{s:s, s:s}, s:o, s:s, s:s, s:s, s:o, s:s, s:s, s:i, s:s, s:s}",
                     "apiVersion", "v1", "kind", "Event", "metadata", "name", name, "namespace",
                     event_ns, "involvedObject", involved, "reason", reason, "message", message,
                     "type", type, "source", source, "firstTimestamp", now_rfc3339,
                     "lastTimestamp", now_rfc3339, "count", 1, "reportingComponent", component,
                     "reportingInstance", instance);
}
