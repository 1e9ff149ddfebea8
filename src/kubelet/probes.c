/* probes.c - probes (liveness, readiness, startup) and lifecycle hooks (postStart, preStop).
 *
 * A handler is exec (runc exec in the container; exit 0 = success), httpGet (libcurl from the
 * node to the pod IP through the bridge; 200-399 = success) or tcpSocket (a connect).  Probes run
 * from the sync loop when due (initialDelaySeconds, periodSeconds), with successThreshold and
 * failureThreshold as upstream; a startup probe holds the others back until it succeeds; a
 * liveness or startup failure asks the sync loop to restart the container.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kubelet/pods.h"
#include "lib/util.h"

static int resolve_port(json_t *container, json_t *port)
{
    if (json_is_integer(port))
        return (int)json_integer_value(port);
    const char *name = json_string_value(port);
    if (!name)
        return -1;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(container, "ports"), i, p)
        if (!strcmp(json_string_value(json_object_get(p, "name")) ?: "", name))
            return (int)json_integer_value(json_object_get(p, "containerPort"));
    return atoi(name) > 0 ? atoi(name) : -1;
}

static size_t discard(char *ptr, size_t size, size_t n, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * n;
}

static int http_get(const char *host, int port, const char *path, const char *scheme,
                    json_t *headers, int timeout_ms, char **msg)
{
    CURL *h = curl_easy_init();
    if (!h)
        return -1;
    bool v6 = strchr(host, ':') != NULL;
    cleanup_free char *url = xasprintf("%s://%s%s%s:%d%s%s", scheme && !strcasecmp(scheme, "HTTPS") ? "https" : "http",
                                       v6 ? "[" : "", host, v6 ? "]" : "", port,
                                       path && path[0] == '/' ? "" : "/", path ? path : "");
    struct curl_slist *hl = NULL;
    hl = curl_slist_append(hl, "User-Agent: kube-probe/1.30");
    size_t i;
    json_t *hd;
    json_array_foreach(headers, i, hd) {
        char *line = xasprintf("%s: %s", json_string_value(json_object_get(hd, "name")) ?: "X",
                               json_string_value(json_object_get(hd, "value")) ?: "");
        hl = curl_slist_append(hl, line);
        free(line);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK) {
        if (msg)
            *msg = xasprintf("Get \"%s\": %s", url, curl_easy_strerror(rc));
        return -1;
    }
    if (code < 200 || code >= 400) {
        if (msg)
            *msg = xasprintf("HTTP probe failed with statuscode: %ld", code);
        return -1;
    }
    return 0;
}

static int tcp_connect(const char *host, int port, int timeout_ms, char **msg)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        if (msg)
            *msg = xasprintf("bad address %s", host);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    if (rc < 0 && errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        rc = poll(&p, 1, timeout_ms) == 1 ? 0 : -1;
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (rc == 0 && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr))
            rc = -1;
        if (soerr)
            errno = soerr;
    }
    if (rc < 0 && msg)
        *msg = xasprintf("dial tcp %s:%d: %s", host, port, strerror(errno ? errno : ETIMEDOUT));
    close(fd);
    return rc < 0 ? -1 : 0;
}

/* An httpGet or tcpSocket handler h's host (the pod's IP when unset) and port. */
static int handler_target(const pod_rec *r, const json_t *h, const char *what, const char **host,
                          int *port, char **msg)
{
    *host = json_string_value(json_object_get(h, "host"));
    /* named ports were resolved by the caller */
    *port = resolve_port(NULL, json_object_get(h, "port"));
    if (!*host || !**host)
        *host = r->ip;
    if (!*host || *port <= 0) {
        if (msg)
            *msg = xasprintf("%s: no host or port", what);
        return -1;
    }
    return 0;
}

int ck_handler_run(ck_kubelet *k, pod_rec *r, ctr_state *c, json_t *handler, int timeout_ms,
                   char **msg)
{
    json_t *h;
    if ((h = json_object_get(handler, "exec"))) {
        json_t *cmd = json_object_get(h, "command");
        size_t n = json_array_size(cmd);
        if (!n || n > 60) {
            if (msg)
                *msg = xstrdup("exec handler without a command");
            return -1;
        }
        char *argv[64];
        for (size_t i = 0; i < n; i++)
            argv[i] = (char *)(json_string_value(json_array_get(cmd, i)) ?: "");
        argv[n] = NULL;
        char *out = NULL;
        ck_error *err = NULL;
        int rc = ck_runtime_exec(&k->rt, c->id, argv, timeout_ms, &out, &err);
        if (rc != 0 && msg)
            *msg = err ? xstrdup(err->msg) : xasprintf("command exited %d: %.200s", rc, out ? out : "");
        ck_error_free(err);
        free(out);
        return rc == 0 ? 0 : -1;
    }
    const char *host;
    int port;
    if ((h = json_object_get(handler, "httpGet"))) {
        if (handler_target(r, h, "httpGet", &host, &port, msg) < 0)
            return -1;
        return http_get(host, port, json_string_value(json_object_get(h, "path")),
                        json_string_value(json_object_get(h, "scheme")),
                        json_object_get(h, "httpHeaders"), timeout_ms, msg);
    }
    if ((h = json_object_get(handler, "tcpSocket"))) {
        if (handler_target(r, h, "tcpSocket", &host, &port, msg) < 0)
            return -1;
        return tcp_connect(host, port, timeout_ms, msg);
    }
    if ((h = json_object_get(handler, "sleep"))) {
        json_int_t s = json_integer_value(json_object_get(h, "seconds"));
        if (s > 0 && s * 1000 <= timeout_ms)
            usleep((useconds_t)(s * 1000000));
        return 0;
    }
    if (msg)
        *msg = xstrdup("unknown handler");
    return -1;
}

static int ival(json_t *p, const char *k, int dflt)
{
    json_t *v = json_object_get(p, k);
    return json_is_integer(v) ? (int)json_integer_value(v) : dflt;
}

void ck_probes_run(ck_kubelet *k, pod_rec *r, ctr_state *c, json_t *container)
{
    static const char *const keys[PROBE__COUNT] = {"livenessProbe", "readinessProbe", "startupProbe"};
    int64_t now = ck_now_ns();
    int64_t since_start = ck_wall_ns() - c->started_ns;
    bool startup_pending = json_object_get(container, "startupProbe") &&
                           !(c->probes[PROBE_STARTUP].known && c->probes[PROBE_STARTUP].result);
    for (int kind = PROBE__COUNT - 1; kind >= 0; kind--) {
        json_t *p = json_object_get(container, keys[kind]);
        if (!p)
            continue;
        probe_state *s = &c->probes[kind];
        if (kind != PROBE_STARTUP && startup_pending)
            continue;
        if (kind == PROBE_STARTUP && s->known && s->result)
            continue;
        if (since_start < (int64_t)ival(p, "initialDelaySeconds", 0) * 1000000000)
            continue;
        if (s->next_ns && now < s->next_ns)
            continue;
        s->next_ns = now + (int64_t)ival(p, "periodSeconds", 10) * 1000000000;
        int timeout_ms = ival(p, "timeoutSeconds", 1) * 1000;
        /* the handler needs the container spec for named ports */
        json_t *h = json_deep_copy(p);
        int rc;
        {
            json_t *hg = json_object_get(h, "httpGet");
            json_t *ts = json_object_get(h, "tcpSocket");
            json_t *port = hg ? json_object_get(hg, "port") : ts ? json_object_get(ts, "port") : NULL;
            if (json_is_string(port))
                json_object_set_new(hg ? hg : ts, "port", json_integer(resolve_port(container, port)));
            rc = ck_handler_run(k, r, c, h, timeout_ms, NULL);
        }
        json_decref(h);
        if (rc == 0) {
            s->failures = 0;
            if (++s->successes >= (kind == PROBE_READINESS ? ival(p, "successThreshold", 1) : 1)) {
                s->result = true;
                s->known = true;
            }
        } else {
            s->successes = 0;
            if (++s->failures >= ival(p, "failureThreshold", 3)) {
                s->result = false;
                s->known = true;
                if (kind != PROBE_READINESS) {
                    c->kill_requested = true;
                    s->failures = 0;
                }
            }
        }
    }
}
