/* podlog.c - GET pods/NAME/log: the API server proxies to the kubelet of the pod's node
 * (https://<InternalIP>:<daemonEndpoints.kubeletEndpoint.Port>/containerLogs/NS/POD/CONTAINER)
 * with the log options as query parameters, and streams the answer back (follow included).
 *
 * The kubelet's serving certificate is not verified (upstream's default without
 * --kubelet-certificate-authority); the proxied bytes are plain text, bounded by the stream's
 * own buffer limit.  A client that goes away ends the upstream transfer.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver/apiserver.h"
#include "lib/http_util.h"
#include "lib/httpd.h"
#include "lib/util.h"

typedef struct podlog {
    char *url;
    ck_http_resp *resp;
    ck_http_stream *stream;
    volatile bool gone;
    int refs;
    long code;
    ck_buf err_body;       /* a non-200 answer is relayed as one response */
    bool started;
} podlog;

static void pl_unref(podlog *p)
{
    if (__atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL))
        return;
    free(p->url);
    ck_buf_free(&p->err_body);
    free(p);
}

static void pl_closed(void *ctx)
{
    podlog *p = ctx;
    p->gone = true;
    pl_unref(p);
}

static size_t pl_write(char *data, size_t size, size_t n, void *ud)
{
    podlog *p = ud;
    size_t len = size * n;
    if (!p->started) {
        p->started = true;
        if (p->code == 200) {
            p->refs++;  /* on_close's reference */
            p->stream = ck_http_stream_start(p->resp, 200, "text/plain", NULL, pl_closed, p);
        }
    }
    if (p->code != 200) {
        ck_buf_add(&p->err_body, data, len);
        return len;
    }
    if (p->gone || ck_http_stream_write(p->stream, data, len) < 0)
        return 0;
    return len;
}

static size_t pl_header(char *data, size_t size, size_t n, void *ud)
{
    podlog *p = ud;
    if (size * n > 5 && !strncmp(data, "HTTP/", 5)) {
        const char *sp = memchr(data, ' ', size * n);
        p->code = sp ? strtol(sp + 1, NULL, 10) : 0;
    }
    return size * n;
}

static int pl_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    podlog *p = ud;
    return p->gone ? 1 : 0;
}

static void *pl_thread(void *arg)
{
    podlog *p = arg;
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, p->url);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, pl_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, pl_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, p);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, pl_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, p);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    if (p->stream) {
        ck_http_stream_end(p->stream);
        ck_http_stream_release(p->stream);
    } else if (p->code && p->code != 200) {
        /* relay the kubelet's Status (or text) as is */
        const char *ct = p->err_body.len && p->err_body.data[0] == '{' ? "application/json" : "text/plain";
        ck_http_respond(p->resp, (int)p->code, ct, NULL, p->err_body.data ? p->err_body.data : "",
                        p->err_body.len);
    } else if (p->code == 200) {
        /* an empty log: nothing was written, so no stream was started */
        ck_http_respond(p->resp, 200, "text/plain", NULL, "", 0);
    } else {
        char msg[512];
        snprintf(msg, sizeof msg, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                 "\"status\":\"Failure\",\"message\":\"error talking to the kubelet: %s\","
                 "\"reason\":\"InternalError\",\"code\":500}", curl_easy_strerror(rc));
        ck_http_respond(p->resp, 500, "application/json", NULL, msg, strlen(msg));
    }
    pl_unref(p);
    return NULL;
}

static const char *const log_params[] = {"follow", "previous", "timestamps", "tailLines",
                                         "sinceSeconds", "sinceTime", "limitBytes"};

void ck_podlog_serve(ck_reqctx *c)
{
    ck_error *e = NULL;
    const ck_resource *pods = c->route.res;
    json_t *pod = ck_rest_read(c->srv, pods, c->route.namespace_, c->route.name, NULL, &e);
    if (!pod)
        return ck_respond_error(c, e);
    json_t *spec = json_object_get(pod, "spec");
    const char *node_s = json_string_value(json_object_get(spec, "nodeName"));
    cleanup_free char *node = node_s ? xstrdup(node_s) : NULL;
    cleanup_free char *container = ck_query(c, "container");
    if (!container || !*container) {
        free(container);
        container = NULL;
        json_t *ctrs = json_object_get(spec, "containers");
        if (json_array_size(ctrs) == 1) {
            container = xstrdup(json_string_value(json_object_get(json_array_get(ctrs, 0), "name")) ?: "");
        } else {
            ck_buf names;
            ck_buf_init(&names, 0);
            size_t i;
            json_t *x;
            json_array_foreach(ctrs, i, x)
                ck_buf_printf(&names, "%s%s", i ? " " : "", json_string_value(json_object_get(x, "name")) ?: "");
            ck_error_set(&e, CK_E_BAD_REQUEST, "a container name must be specified for pod %s, choose one of: [%s]",
                         c->route.name, names.data ? names.data : "");
            ck_buf_free(&names);
            json_decref(pod);
            c->no_details = true;
            return ck_respond_error(c, e);
        }
    }
    if (!node || !*node) {
        json_decref(pod);
        c->no_details = true;
        ck_error_set(&e, CK_E_BAD_REQUEST, "pod %s does not have a host assigned", c->route.name);
        return ck_respond_error(c, e);
    }
    json_decref(pod);
    json_t *n = ck_rest_read(c->srv, ck_resource_find("", "v1", "nodes"), NULL, node, NULL, &e);
    if (!n)
        return ck_respond_error(c, e);
    json_t *st = json_object_get(n, "status");
    const char *addr = NULL;
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(st, "addresses"), i, a)
        if (!strcmp(json_string_value(json_object_get(a, "type")) ?: "", "InternalIP") && !addr)
            addr = json_string_value(json_object_get(a, "address"));
    json_int_t port = json_integer_value(json_object_get(json_object_get(json_object_get(st, "daemonEndpoints"), "kubeletEndpoint"), "Port"));
    if (!addr || port <= 0) {
        json_decref(n);
        ck_error_set(&e, CK_E_UNAVAILABLE, "node %s has no kubelet address", node);
        return ck_respond_error(c, e);
    }
    ck_buf url;
    ck_buf_init(&url, 0);
    bool v6 = strchr(addr, ':') != NULL;
    CURL *esc = curl_easy_init();
    char *ens = curl_easy_escape(esc, c->route.namespace_, 0);
    char *epod = curl_easy_escape(esc, c->route.name, 0);
    char *ectr = curl_easy_escape(esc, container, 0);
    ck_buf_printf(&url, "https://%s%s%s:%lld/containerLogs/%s/%s/%s?", v6 ? "[" : "", addr, v6 ? "]" : "",
                  (long long)port, ens, epod, ectr);
    curl_free(ens);
    curl_free(epod);
    curl_free(ectr);
    json_decref(n);
    for (i = 0; i < ARRAY_SIZE(log_params); i++) {
        cleanup_free char *v = ck_query(c, log_params[i]);
        if (v) {
            char *ev = curl_easy_escape(esc, v, 0);
            ck_buf_printf(&url, "%s=%s&", log_params[i], ev);
            curl_free(ev);
        }
    }
    curl_easy_cleanup(esc);
    podlog *p = xcalloc(1, sizeof *p);
    p->url = ck_buf_steal(&url);
    p->resp = c->resp;
    p->refs = 1;
    ck_buf_init(&p->err_body, 1024 * 1024);
    c->responded = true;
    c->status = 200;
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_create(&t, &attr, pl_thread, p);
    pthread_attr_destroy(&attr);
}
