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

CURL *ck_client_handle_new(ck_client *c, ck_error **err)
{
    return handle_new(c, err);
}

const ck_kubeconfig *ck_client_kubeconfig(const ck_client *c)
{
    return &c->kc;
}

const char *ck_client_user_agent(const ck_client *c)
{
    return c->user_agent;
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

/* ---- watch ---- */

struct watch_state {
    ck_buf line;
    ck_client_watch_cb cb;
    void *ctx;
    const ck_jsonpick *keep;   /* decode only these parts of each event (NULL: all) */
    const ck_jsonpick *light;  /* the first look (ck_client_watch_peek), or NULL */
    ck_client_watch_peek_cb peek;
    const volatile bool *cancel;
    bool stopped;        /* the callback asked to stop */
    bool expired;        /* the server sent a 410 ERROR event */
    char *error_msg;
    long http;
    CURL *h;
};

/* The first look of a peeking watch: true when the event is to be decoded with the full keep
 * list and delivered, false when the peek dealt with it (or stop said to end: *go_on). */
static bool first_look(struct watch_state *w, const char *text, size_t len, bool *go_on)
{
    /* the API server writes the type first: an event that is not an update is not worth a
     * light pass (it would be decoded twice) */
    static const char prefix[] = "{\"type\":\"";
    if (len > sizeof prefix + 8 && !memcmp(text, prefix, sizeof prefix - 1) &&
        memcmp(text + sizeof prefix - 1, "MODIFIED\"", 9))
        return true;
    ck_error *perr = NULL;
    json_t *ev = ck_jsonpick_parse(text, len, w->light, &perr);
    if (!ev) {
        ck_error_free(perr);
        return true;             /* the full decode reports it */
    }
    const char *type = json_string_value(json_object_get(ev, "type"));
    json_t *obj = json_object_get(ev, "object");
    bool full = true;
    if (type && obj && !strcmp(type, "MODIFIED"))
        full = w->peek(w->ctx, type, obj, go_on);
    json_decref(ev);
    return full;
}

static bool deliver_line(struct watch_state *w, const char *text, size_t len)
{
    if (len == 0)
        return true;
    if (w->light) {
        bool go_on = true;
        if (!first_look(w, text, len, &go_on)) {
            if (!go_on)
                w->stopped = true;
            return go_on;
        }
    }
    json_error_t jerr;
    json_t *ev;
    if (w->keep) {
        ck_error *perr = NULL;
        ev = ck_jsonpick_parse(text, len, w->keep, &perr);
        if (!ev) {
            w->error_msg = xasprintf("bad watch event JSON: %s", perr->msg);
            ck_error_free(perr);
            return false;
        }
    } else {
        ev = json_loadb(text, len, 0, &jerr);
        if (!ev) {
            w->error_msg = xasprintf("bad watch event JSON: %s", jerr.text);
            return false;
        }
    }
    const char *type = json_string_value(json_object_get(ev, "type"));
    if (w->keep && type && !strcmp(type, "ERROR")) {
        /* keep describes objects, not a Status: decode it whole */
        json_decref(ev);
        ev = json_loadb(text, len, 0, &jerr);
        if (!ev) {
            w->error_msg = xasprintf("bad watch event JSON: %s", jerr.text);
            return false;
        }
        type = json_string_value(json_object_get(ev, "type"));
    }
    json_t *obj = json_object_get(ev, "object");
    bool go_on = true;
    if (type && !strcmp(type, "ERROR")) {
        json_int_t code = json_integer_value(json_object_get(obj, "code"));
        const char *msg = json_string_value(json_object_get(obj, "message"));
        if (code == 410)
            w->expired = true;
        free(w->error_msg);
        w->error_msg = xstrdup(msg ? msg : "watch error");
        go_on = false;
    }
    if (go_on && type && obj && !w->cb(w->ctx, type, obj)) {
        w->stopped = true;
        go_on = false;
    }
    json_decref(ev);
    return go_on;
}

static size_t watch_write(char *data, size_t size, size_t n, void *userp)
{
    struct watch_state *w = userp;
    size_t total = size * n;
    if (!w->http)
        curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &w->http);
    if (w->http != 200) {   /* an error Status body: collect it whole */
        return ck_buf_add(&w->line, data, total) < 0 ? 0 : total;
    }
    const char *p = data, *end = data + total;
    const char *nl;
    while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
        if (ck_buf_add(&w->line, p, (size_t)(nl - p)) < 0)
            return 0;
        bool ok = deliver_line(w, w->line.data, w->line.len);
        ck_buf_reset(&w->line);
        if (!ok)
            return 0;
        p = nl + 1;
    }
    return ck_buf_add(&w->line, p, (size_t)(end - p)) < 0 ? 0 : total;
}

static int watch_progress(void *userp, curl_off_t a, curl_off_t b, curl_off_t c2, curl_off_t d)
{
    struct watch_state *w = userp;
    return (w->cancel && *w->cancel) ? 1 : 0;
}

int ck_client_watch(ck_client *c, const char *path, ck_client_watch_cb cb, void *ctx,
                    const volatile bool *cancel, ck_error **err)
{
    return ck_client_watch_pick(c, path, NULL, cb, ctx, cancel, err);
}

int ck_client_watch_pick(ck_client *c, const char *path, const ck_jsonpick *keep,
                         ck_client_watch_cb cb, void *ctx, const volatile bool *cancel,
                         ck_error **err)
{
    return ck_client_watch_peek(c, path, NULL, NULL, keep, cb, ctx, cancel, err);
}

int ck_client_watch_peek(ck_client *c, const char *path, const ck_jsonpick *light,
                         ck_client_watch_peek_cb peek, const ck_jsonpick *keep,
                         ck_client_watch_cb cb, void *ctx, const volatile bool *cancel,
                         ck_error **err)
{
    struct watch_state w = {.cb = cb, .ctx = ctx, .cancel = cancel, .keep = keep,
                            .light = peek ? light : NULL, .peek = peek};
    ck_buf_init(&w.line, CLIENT_MAX_WATCH_LINE);
    CURL *h = curl_easy_init();
    w.h = h;
    int rc = -1;
    if (!h) {
        ck_error_set(err, CK_E_INTERNAL, "curl_easy_init failed");
        goto done;
    }
    if (setup_common(c, h, err) < 0)
        goto done;
    /* a watch connection is never idle for long: keeping OpenSSL's buffers spares a 17 KB
     * malloc and free per TLS record read (each large malloc consolidating the heap's
     * fastbins), which was a tenth of a busy pod informer's CPU */
    curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, NULL);
    setup_target(c, h, "GET", path);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->hdr_plain);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, watch_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &w);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, watch_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &w);
    /* A silent connection for this long is dead (the server sends bookmarks far more often). */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 300L);

    CURLcode cc = curl_easy_perform(h);
    if (!w.http)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &w.http);
    if (w.http && w.http != 200) {
        ck_client_status_error(w.http, w.line.data, "WATCH", path, err);
        goto done;
    }
    if (w.expired) {
        ck_error_set(err, CK_E_EXPIRED, "%s", w.error_msg);
        goto done;
    }
    if (w.error_msg) {
        ck_error_set(err, CK_E_INTERNAL, "watch %s: %s", path, w.error_msg);
        goto done;
    }
    if (w.stopped || (cancel && *cancel) || cc == CURLE_OK) {
        if (w.line.len)   /* a last event without its newline */
            deliver_line(&w, w.line.data, w.line.len);
        rc = 0;
        goto done;
    }
    ck_error_set(err, CK_E_UNAVAILABLE, "watch %s%s: %s", c->kc.server, path,
                 curl_easy_strerror(cc));
done:
    free(w.error_msg);
    ck_buf_free(&w.line);
    curl_easy_cleanup(h);
    return rc;
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
