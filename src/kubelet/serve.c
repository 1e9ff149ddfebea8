/* serve.c - the kubelet's HTTPS port (10250): what the API server proxies to.
 *
 *   GET /healthz                                       ok
 *   GET /containerLogs/<ns>/<pod>/<container>?follow=&tailLines=&sinceSeconds=&sinceTime=
 *       &timestamps=&previous=&limitBytes=             a container's log (text/plain, streamed)
 *
 * TLS with a serving certificate from --tls-cert-file/--tls-private-key-file, or one the kubelet
 * makes under ROOT/pki.  With --client-ca-file, only clients presenting a certificate that
 * chains to it are served (the API server has one); without it the port is open to anyone who
 * can reach it, so it binds to the node IP only.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kubelet/kubelet.h"
#include "lib/httpd.h"
#include "lib/log.h"
#include "lib/pki.h"
#include "lib/util.h"

static void respond_status(ck_http_resp *resp, int code, const char *reason, const char *msg)
{
    json_t *st = json_pack("{s:s, s:s, s:{}, s:s, s:s, s:s, s:i}", "kind", "Status", "apiVersion",
                           "v1", "metadata", "status", "Failure", "message", msg, "reason", reason,
                           "code", code);
    char *s = json_dumps(st, JSON_COMPACT);
    json_decref(st);
    ck_http_respond(resp, code, "application/json", NULL, s, strlen(s));
    free(s);
}

static long qlong(const char *q, const char *name, long dflt)
{
    cleanup_free char *v = ck_http_query_param(q, name);
    return v && *v ? strtol(v, NULL, 10) : dflt;
}

typedef struct log_job {
    ck_kubelet *k;
    ck_http_stream *s;
    char *path, *ns, *pod, *container;
    ck_log_opts o;
    bool running;
    volatile bool gone;     /* the client went away (on_close) */
    int refs;               /* the log thread + on_close */
} log_job;

static void job_unref(log_job *j)
{
    if (__atomic_sub_fetch(&j->refs, 1, __ATOMIC_ACQ_REL))
        return;
    free(j->path);
    free(j->ns);
    free(j->pod);
    free(j->container);
    free(j);
}

static void job_closed(void *ctx)
{
    log_job *j = ctx;
    j->gone = true;
    job_unref(j);
}

static int job_write(void *ctx, const char *data, size_t len)
{
    log_job *j = ctx;
    if (len == 0)
        return j->gone || j->k->stop ? -1 : 0;
    return ck_http_stream_write(j->s, data, len);
}

/* For follow: is the container still the one writing this file? */
static bool job_alive(void *ctx)
{
    log_job *j = ctx;
    bool running = false;
    char *p = ck_pods_log_path(j->k, j->ns, j->pod, j->container, false, &running, NULL);
    bool same = p && !strcmp(p, j->path);
    free(p);
    return same && running;
}

static void *log_thread(void *arg)
{
    log_job *j = arg;
    ck_error *err = NULL;
    if (ck_logs_read(j->path, &j->o, job_write, j, job_alive, &err) < 0 && err)
        log_debug("logs %s: %s", j->path, err->msg);
    ck_error_free(err);
    ck_http_stream_end(j->s);
    ck_http_stream_release(j->s);
    job_unref(j);
    return NULL;
}

static void serve_logs(ck_kubelet *k, ck_http_req *req, ck_http_resp *resp, char *rest)
{
    char *parts[3] = {0};
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(rest, "/", &save); t && n < 3; t = strtok_r(NULL, "/", &save))
        parts[n++] = t;
    if (n < 2) {
        respond_status(resp, 404, "NotFound", "want /containerLogs/<namespace>/<pod>/<container>");
        return;
    }
    const char *q = req->query;
    bool previous = ck_http_query_bool(q, "previous");
    bool running = false;
    ck_error *err = NULL;
    char *path = ck_pods_log_path(k, parts[0], parts[1], parts[2] ? parts[2] : "", previous,
                                  &running, &err);
    if (!path) {
        respond_status(resp, ck_error_http_status(err->code), ck_error_reason(err->code), err->msg);
        ck_error_free(err);
        return;
    }
    log_job *j = xcalloc(1, sizeof *j);
    j->k = k;
    j->path = path;
    j->ns = xstrdup(parts[0]);
    j->pod = xstrdup(parts[1]);
    j->container = xstrdup(parts[2] ? parts[2] : "");
    j->running = running;
    j->o.follow = ck_http_query_bool(q, "follow") && !previous;
    j->o.timestamps = ck_http_query_bool(q, "timestamps");
    j->o.tail_lines = qlong(q, "tailLines", -1);
    j->o.limit_bytes = qlong(q, "limitBytes", 0);
    long since = qlong(q, "sinceSeconds", 0);
    if (since > 0)
        j->o.since_ns = ck_wall_ns() - (int64_t)since * 1000000000;
    cleanup_free char *st = ck_http_query_param(q, "sinceTime");
    int64_t sec;
    if (st && ck_parse_rfc3339(st, &sec) == 0)
        j->o.since_ns = sec * 1000000000;
    j->refs = 2;
    j->s = ck_http_stream_start(resp, 200, "text/plain", NULL, job_closed, j);
    if (!j->o.follow) {   /* a bounded read: answer from this worker, no thread needed */
        log_thread(j);
        return;
    }
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* default stack size (safe whatever static TLS the linked libraries bring) */
    int rc = pthread_create(&t, &attr, log_thread, j);
    pthread_attr_destroy(&attr);
    if (rc != 0) {   /* never leave the client waiting on a stream nobody feeds */
        log_error("logs %s: cannot start a log thread: %s", path, strerror(rc));
        ck_http_stream_end(j->s);
        ck_http_stream_release(j->s);
        job_unref(j);
    }
}

static void handler(void *ctx, ck_http_req *req, ck_http_resp *resp)
{
    ck_kubelet *k = ctx;
    if (k->client_ca && !req->client_cn) {
        respond_status(resp, 401, "Unauthorized", "Unauthorized");
        return;
    }
    if (!strcmp(req->path, "/healthz")) {
        ck_http_respond(resp, 200, "text/plain", NULL, "ok", 2);
        return;
    }
    if (!strncmp(req->path, "/containerLogs/", 15)) {
        if (strcmp(req->method, "GET")) {
            respond_status(resp, 405, "MethodNotAllowed", "only GET");
            return;
        }
        cleanup_free char *rest = xstrdup(req->path + 15);
        serve_logs(k, req, resp, rest);
        return;
    }
    if (!strncmp(req->path, "/exec/", 6) || !strncmp(req->path, "/attach/", 8) ||
        !strncmp(req->path, "/portForward/", 13))
        return ck_kubelet_streaming_serve(k, req, resp);
    respond_status(resp, 404, "NotFound", "not found");
}

int ck_serve_start(ck_kubelet *k, ck_error **err)
{
    if (!k->cert_file) {
        cleanup_free char *dir = xasprintf("%s/pki", k->root);
        ck_mkdir_p(dir, 0700);
        cleanup_free char *ca = xasprintf("%s/kubelet-ca.crt", dir);
        cleanup_free char *cakey = xasprintf("%s/kubelet-ca.key", dir);
        k->cert_file = xasprintf("%s/kubelet.crt", dir);
        k->key_file = xasprintf("%s/kubelet.key", dir);
        const char *sans[] = {k->node_name, k->node_ip, "127.0.0.1", "localhost", NULL};
        ck_pki_cert_opts o = {.cn = k->node_name, .sans = sans, .server = true};
        if (ck_pki_ensure_ca(ca, cakey, "ckube-kubelet-ca", err) < 0 ||
            ck_pki_ensure_cert(ca, cakey, k->cert_file, k->key_file, &o, err) < 0)
            return ck_error_wrap(err, "kubelet serving certificate");
    }
    ck_httpd_config cfg = {.bind_addr = k->node_ip, .port = (int)k->port, .cert_file = k->cert_file,
                           .key_file = k->key_file, .client_ca_file = k->client_ca, .workers = 4,
                           .handler = handler, .handler_ctx = k};
    k->httpd = ck_httpd_start(&cfg, err);
    if (!k->httpd)
        return ck_error_wrap(err, "kubelet port %ld", k->port);
    return 0;
}

void ck_serve_stop(ck_kubelet *k)
{
    if (k->httpd)
        ck_httpd_stop(k->httpd);
    k->httpd = NULL;
}
