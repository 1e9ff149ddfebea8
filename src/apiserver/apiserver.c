/* apiserver.c - `ckube apiserver`: flags, startup (store, allocations, bootstrap, watch caches,
 * HTTPS), the request entry point (health, version, metrics, authentication, discovery, OpenAPI,
 * then the REST verbs), and a clean stop on SIGTERM/SIGINT. */
#include "apiserver/apiserver.h"
#include "apiserver/discovery.h"
#include "apiserver/openapi.h"
#include "commands.h"
#include "lib/flags.h"
#include "lib/log.h"
#include "store/sqlite.h"
#include "version.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <malloc.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_WORKERS_SQLITE 8   /* --workers 0: see cmd_apiserver */
#define DEFAULT_WORKERS_ETCD 16

/* ---- health, version ---- */

static bool path_is(const char *path, const char *p)
{
    size_t n = strlen(p);
    return !strncmp(path, p, n) && (path[n] == '\0' || (path[n] == '/' && path[n + 1] == '\0'));
}

static void serve_health(ck_reqctx *c, const char *which)
{
    ck_apiserver *s = c->srv;
    int64_t rev = 0;
    ck_error *e = NULL;
    bool store_ok = ck_store_current_revision(s->store, &rev, &e) == 0;
    ck_error_free(e);
    bool ready = __atomic_load_n(&s->ready, __ATOMIC_ACQUIRE);
    struct { const char *name; bool ok; bool readiness_only; } checks[] = {
        {"ping", true, false},
        {"log", true, false},
        {"etcd", store_ok, false},
        {"poststarthook/bootstrap-controller", ready, false},
        {"poststarthook/start-watch-cache", __atomic_load_n(&s->watch, __ATOMIC_ACQUIRE) != NULL, true},
        {"informer-sync", ready, true},
    };
    bool readyz = !strcmp(which, "readyz");
    bool all = true;
    ck_buf b;
    ck_buf_init(&b, 0);
    for (size_t i = 0; i < ARRAY_SIZE(checks); i++) {
        if (checks[i].readiness_only && !readyz)
            continue;
        all &= checks[i].ok;
        ck_buf_printf(&b, "[%c]%s %s\n", checks[i].ok ? '+' : '-', checks[i].name,
                      checks[i].ok ? "ok" : "failed: reason withheld");
    }
    bool verbose = c->req->query && strstr(c->req->query, "verbose");
    if (verbose || !all) {
        ck_buf_printf(&b, "%s check %s\n", which, all ? "passed" : "failed");
        ck_respond_text(c, all ? 200 : 500, "text/plain; charset=utf-8", b.data);
    } else {
        ck_respond_text(c, 200, "text/plain; charset=utf-8", "ok");
    }
    ck_buf_free(&b);
}

static void serve_version(ck_reqctx *c)
{
    ck_respond_json(c, 200,
                    json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "major", CK_KUBE_MAJOR,
                              "minor", CK_KUBE_MINOR, "gitVersion", CK_KUBE_GIT_VERSION,
                              "gitCommit", "ckube-" CK_VERSION, "gitTreeState", "clean",
                              "buildDate", "1970-01-01T00:00:00Z", "goVersion", "none",
                              "compiler", "gcc", "platform", "linux/amd64"));
}

/* ---- discovery and OpenAPI ---- */

static void serve_discovery(ck_reqctx *c)
{
    const ck_route *rt = &c->route;
    const char *accept = ck_http_req_header(c->req, "Accept");
    ck_error *e = NULL;
    json_t *body = NULL;
    switch (rt->kind) {
    case CK_ROUTE_API:
    case CK_ROUTE_APIS: {
        enum ck_discovery_format f = ck_discovery_negotiate(accept);
        if (f != CK_DISCOVERY_LEGACY)
            return ck_respond_json_ct(c, 200, ck_discovery_content_type(f),
                                      ck_discovery_aggregated(rt->kind == CK_ROUTE_API, f));
        body = rt->kind == CK_ROUTE_API ? ck_discovery_api_versions() : ck_discovery_api_groups();
        break;
    }
    case CK_ROUTE_GROUP: {
        json_t *groups = ck_discovery_api_groups();
        size_t i;
        json_t *g;
        json_array_foreach(json_object_get(groups, "groups"), i, g) {
            const char *name = json_string_value(json_object_get(g, "name"));
            if (name && !strcmp(name, rt->group)) {
                body = json_deep_copy(g);
                json_object_set_new(body, "kind", json_string("APIGroup"));
                json_object_set_new(body, "apiVersion", json_string("v1"));
                break;
            }
        }
        json_decref(groups);
        break;
    }
    case CK_ROUTE_GROUP_VERSION:
        body = ck_discovery_resource_list(rt->group, rt->version);
        break;
    default:
        break;
    }
    if (!body) {
        ck_error_set(&e, CK_E_NOT_FOUND, "the server could not find the requested resource");
        return ck_respond_error(c, e);
    }
    ck_respond_json(c, 200, body);
}

static void serve_openapi(ck_reqctx *c, const char *path)
{
    ck_error *e = NULL;
    if (path_is(path, "/openapi/v2")) {
        const char *ct = NULL, *body = NULL;
        size_t len = 0;
        ck_openapi_v2(ck_http_req_header(c->req, "Accept"), &ct, &body, &len);
        return ck_respond_bytes(c, 200, ct ? ct : "application/json", body ? body : "", len);
    }
    json_t *doc = NULL;
    if (path_is(path, "/openapi/v3"))
        doc = ck_openapi_v3_root();
    else if (!strncmp(path, "/openapi/v3/", 12))
        doc = ck_openapi_v3_document(path + 12);
    if (!doc) {
        ck_error_set(&e, CK_E_NOT_FOUND, "the server could not find the requested resource");
        return ck_respond_error(c, e);
    }
    ck_respond_json(c, 200, doc);
}

/* ---- authorization ---- */

static bool allow_authenticated(void *ctx, const ck_authz_attrs *a, char **reason)
{
    return a->user && a->user->name && *a->user->name;
}

static int authorize(ck_reqctx *c, ck_error **err)
{
    ck_apiserver *s = c->srv;
    if (!s->authorize)
        return 0;
    const ck_route *rt = &c->route;
    bool resource = rt->kind == CK_ROUTE_RESOURCE && rt->res;
    ck_authz_attrs a = {
        .user = &c->user,
        .verb = resource ? ck_verb_name(rt->verb) : "get",
        .group = resource ? rt->res->group : NULL,
        .resource = resource ? rt->res->resource : NULL,
        .subresource = rt->subresource,
        .namespace_ = rt->namespace_,
        .name = rt->name,
        .path = resource ? NULL : c->req->path,
    };
    char *reason = NULL;
    if (s->authorize(s->authorize_ctx, &a, &reason)) {
        free(reason);
        return 0;
    }
    if (resource)
        ck_error_set(err, CK_E_FORBIDDEN,
                     "%s%s%s is forbidden: User \"%s\" cannot %s resource \"%s%s%s\" in API group "
                     "\"%s\"%s%s%s%s", ck_res_qualified(rt->res), rt->name ? " \"" : "",
                     rt->name ? rt->name : "", c->user.name, a.verb, rt->res->resource,
                     rt->subresource ? "/" : "", rt->subresource ? rt->subresource : "",
                     rt->res->group, rt->namespace_ ? " in the namespace \"" : "",
                     rt->namespace_ ? rt->namespace_ : "", rt->namespace_ ? "\"" : "",
                     reason ? reason : "");
    else
        ck_error_set(err, CK_E_FORBIDDEN, "forbidden: User \"%s\" cannot get path \"%s\"",
                     c->user.name, c->req->path);
    free(reason);
    return -1;
}

/* ---- the entry point ---- */

static void dispatch(ck_reqctx *c, const char **metric_verb, const char **metric_res)
{
    ck_apiserver *s = c->srv;
    ck_http_req *req = c->req;
    const char *path = req->path;
    ck_error *e = NULL;
    if (path_is(path, "/healthz") || path_is(path, "/livez") || path_is(path, "/readyz") ||
        !strncmp(path, "/healthz/", 9) || !strncmp(path, "/livez/", 7) ||
        !strncmp(path, "/readyz/", 8)) {
        const char *which = path[1] == 'h' ? "healthz" : path[1] == 'l' ? "livez" : "readyz";
        return serve_health(c, which);
    }
    if (path_is(path, "/version"))
        return serve_version(c);
    if (ck_authn(s, req, &c->user, &e) < 0)
        return ck_respond_error(c, e);
    if (path_is(path, "/metrics")) {
        char *text = ck_metrics_render();
        ck_buf b;
        ck_buf_init(&b, 0);
        ck_buf_addstr(&b, text);
        free(text);
        /* the SQLite store's group commit: writes / commits is the mean batch */
        ck_sqlite_stats st;
        ck_error *se = NULL;
        if (ck_store_sqlite_stats(s->store, &st, &se) == 0)
            ck_buf_printf(&b, "# HELP ckube_store_writes_total Writes committed by the SQLite "
                              "store.\n# TYPE ckube_store_writes_total counter\n"
                              "ckube_store_writes_total %lld\n"
                              "# HELP ckube_store_commits_total SQLite write transactions (one "
                              "WAL fsync each).\n# TYPE ckube_store_commits_total counter\n"
                              "ckube_store_commits_total %lld\n", (long long)st.writes,
                          (long long)st.commits);
        if (se == NULL)
            ck_buf_printf(&b, "# HELP ckube_store_watch_deliveries_total Commits handed to a "
                              "watch, by the thread that ran its callback.\n"
                              "# TYPE ckube_store_watch_deliveries_total counter\n"
                              "ckube_store_watch_deliveries_total{thread=\"writer\"} %lld\n"
                              "ckube_store_watch_deliveries_total{thread=\"watch\"} %lld\n",
                          (long long)st.watch_inline, (long long)st.watch_queued);
        ck_error_free(se);
        uint64_t rin = 0, rth = 0;
        ck_watch_hub_rounds(s->watch, &rin, &rth);
        ck_buf_printf(&b, "# HELP ckube_watch_cache_rounds_total Watch cache delivery rounds, by "
                          "the thread that ran them.\n# TYPE ckube_watch_cache_rounds_total counter\n"
                          "ckube_watch_cache_rounds_total{thread=\"store\"} %llu\n"
                          "ckube_watch_cache_rounds_total{thread=\"dispatch\"} %llu\n",
                          (unsigned long long)rin, (unsigned long long)rth);
        long long deferred, reruns, retries;
        ck_defer_stats(&deferred, &reruns, &retries);
        ck_buf_printf(&b, "# HELP ckube_apiserver_async_writes_total Writes answered by the "
                          "store's completion.\n# TYPE ckube_apiserver_async_writes_total counter\n"
                          "ckube_apiserver_async_writes_total %lld\n"
                          "# HELP ckube_apiserver_async_reruns_total Requests served again after "
                          "their asynchronous write conflicted.\n"
                          "# TYPE ckube_apiserver_async_reruns_total counter\n"
                          "ckube_apiserver_async_reruns_total %lld\n"
                          "# HELP ckube_apiserver_retries_total Requests served again later "
                          "instead of waiting on a worker (a ServiceAccount not there yet).\n"
                          "# TYPE ckube_apiserver_retries_total counter\n"
                          "ckube_apiserver_retries_total %lld\n", deferred, reruns, retries);
        ck_respond_text(c, 200, "text/plain; version=0.0.4", b.data);
        ck_buf_free(&b);
        return;
    }
    if (!strncmp(path, "/openapi/", 9) || path_is(path, "/openapi")) {
        if (authorize(c, &e) < 0)
            return ck_respond_error(c, e);
        return serve_openapi(c, path);
    }
    if (ck_route_parse(req->method, path, req->query, &c->route, &e) < 0)
        return ck_respond_error(c, e);
    if (authorize(c, &e) < 0)
        return ck_respond_error(c, e);
    if (c->route.kind != CK_ROUTE_RESOURCE)
        return serve_discovery(c);
    *metric_verb = c->route.verb == CK_VERB_WATCH ? "WATCH" : ck_verb_name(c->route.verb);
    *metric_res = c->route.res->resource;
    if (req->body_len > CK_MAX_BODY) {
        ck_error_set(&e, CK_E_TOO_LARGE, "Request entity too large: limit is %u", CK_MAX_BODY);
        return ck_respond_error(c, e);
    }
    ck_rest_serve(c);
}

void ck_reqctx_account(ck_reqctx *c, const char *method, const char *target, int64_t received_ns)
{
    int64_t t0 = received_ns ? received_ns : ck_now_ns();
    ck_metrics_request(c->metric_verb, c->metric_res, c->status, (double)(ck_now_ns() - t0) / 1e9);
    if (c->status >= 500)
        log_warn("%s %s -> %d", method, target, c->status);
    else
        log_debug("%s %s -> %d", method, target, c->status);
}

void ck_reqctx_free(ck_reqctx *c)
{
    ck_route_free(&c->route);
    ck_user_free(&c->user);
    ck_buf_free(&c->warnings);
    json_decref(c->causes);
    json_decref(c->details);
    free(c);
}

void ck_apiserver_handle(void *ctx, ck_http_req *req, ck_http_resp *resp)
{
    /* on the heap: a write handed to the store (writedefer.c) is answered after this returns */
    ck_reqctx *c = xcalloc(1, sizeof *c);
    *c = (ck_reqctx){.srv = ctx, .req = req, .resp = resp, .metric_verb = "get", .metric_res = ""};
    ck_buf_init(&c->warnings, 64 * 1024);
    dispatch(c, &c->metric_verb, &c->metric_res);
    if (c->defer)
        return ck_defer_handler_done(c);
    if (!c->responded)
        ck_respond_json(c, 500, ck_status_json(500, "InternalError", "no response", NULL));
    ck_reqctx_account(c, req->method, req->target, req->received_ns);
    ck_reqctx_free(c);
}

/* ---- the command ---- */

static char *first_host_ip(void)
{
    struct ifaddrs *ifs = NULL;
    char *out = NULL;
    if (getifaddrs(&ifs) < 0)
        return NULL;
    for (struct ifaddrs *i = ifs; i && !out; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK) ||
            !(i->ifa_flags & IFF_UP))
            continue;
        char buf[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, buf, sizeof buf);
        out = xstrdup(buf);
    }
    freeifaddrs(ifs);
    return out;
}

int cmd_apiserver(int argc, char **argv)
{
    char *data_dir = NULL, *bind = "0.0.0.0", *etcd = NULL, *cert = NULL, *key = NULL, *ca = NULL,
         *tokens = NULL, *cidr = "10.96.0.0/12", *ports = "30000-32767", *advertise = NULL,
         *vlevel = NULL, *sa_sign = NULL, *sa_pub = NULL, *admission_off = NULL,
         *sa_issuer = "https://kubernetes.default.svc.cluster.local";
    long port = 6443, workers = 0;
    ck_flag flags[] = {
        {"data-dir", CK_FLAG_STRING, &data_dir, "Directory for state (DIR/db/state.db with SQLite)"},
        {"secure-port", CK_FLAG_INT, &port, "Port to serve HTTPS on (default 6443)"},
        {"bind-address", CK_FLAG_STRING, &bind, "Address to listen on (default 0.0.0.0)"},
        {"advertise-address", CK_FLAG_STRING, &advertise,
         "Address published in the kubernetes Endpoints (default: bind address or first host IP)"},
        {"etcd-servers", CK_FLAG_STRING, &etcd, "Comma-separated etcd client URLs; empty: SQLite"},
        {"tls-cert-file", CK_FLAG_STRING, &cert, "Serving certificate (PEM); none: plain HTTP"},
        {"tls-private-key-file", CK_FLAG_STRING, &key, "Serving key (PEM)"},
        {"client-ca-file", CK_FLAG_STRING, &ca, "CA that signs client certificates (x509 authn)"},
        {"token-auth-file", CK_FLAG_STRING, &tokens, "Static bearer tokens: token,user,uid,\"groups\""},
        {"service-cluster-ip-range", CK_FLAG_STRING, &cidr, "Service IP range (default 10.96.0.0/12)"},
        {"service-node-port-range", CK_FLAG_STRING, &ports, "Node port range (default 30000-32767)"},
        {"workers", CK_FLAG_INT, &workers,
         "Request handler threads (default 8 with SQLite, 16 with etcd; more start while every "
         "one is held)"},
        {"service-account-signing-key-file", CK_FLAG_STRING, &sa_sign,
         "Private key (PEM, EC P-256 or RSA) that signs service account tokens "
         "(default DATA-DIR/pki/sa.key if present)"},
        {"service-account-key-file", CK_FLAG_STRING, &sa_pub,
         "Public key (PEM) that verifies service account tokens (default DATA-DIR/pki/sa.pub)"},
        {"service-account-issuer", CK_FLAG_STRING, &sa_issuer,
         "Issuer (iss) of service account tokens"},
        {"disable-admission-plugins", CK_FLAG_STRING, &admission_off,
         "Comma-separated admission plugins to turn off (LimitRanger, ServiceAccount, Priority, "
         "DefaultTolerationSeconds, ResourceQuota)"},
        {"v", CK_FLAG_STRING, &vlevel, "Log verbosity (0-10; >= 4 logs every request)"},
    };
    int npos = ck_flags_parse("apiserver", "Run the Kubernetes API server", argc, argv, flags,
                              (int)ARRAY_SIZE(flags));
    if (npos > 0) {
        fprintf(stderr, "Error: unexpected argument \"%s\"\n", argv[0]);
        return 2;
    }
    ck_log_init("apiserver", vlevel && atoi(vlevel) >= 4 ? CK_LOG_DEBUG : CK_LOG_INFO);
    if ((!etcd || !*etcd) && (!data_dir || !*data_dir)) {  /* "" would mean /db */
        fprintf(stderr, "Error: --data-dir or --etcd-servers is required\n");
        return 2;
    }
    if (port < 0 || port > 65535 || workers < 0 || workers > 1024) {
        fprintf(stderr, "Error: bad --secure-port or --workers\n");
        return 2;
    }
    int lo = 0, hi = 0;
    if (sscanf(ports, "%d-%d", &lo, &hi) != 2) {
        fprintf(stderr, "Error: bad --service-node-port-range %s\n", ports);
        return 2;
    }
    char *vend = NULL;
    if (vlevel && (strtol(vlevel, &vend, 10) < 0 || vend == vlevel || *vend)) {
        fprintf(stderr, "Error: invalid argument \"%s\" for \"--v\": not a log level (0-10)\n", vlevel);
        return 2;
    }
    if ((advertise && *advertise && !ck_flags_check_ip("apiserver", "advertise-address", advertise)) ||
        !ck_flags_check_cidrs("apiserver", "service-cluster-ip-range", cidr))
        return 2;
    /* every thread inherits this mask: signals arrive only at sigwait below */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* a few malloc arenas instead of one per worker thread: big list responses otherwise leave
     * each arena's high-water mark resident */
    mallopt(M_ARENA_MAX, 8);

    ck_apiserver s = {.authorize = allow_authenticated, .started_wall = ck_wall_ns() / 1000000000,
                      .admit_cache = ck_admission_cache_new()};
    ck_error *err = NULL;
    if (ck_admission_parse_disabled(admission_off, &s.admission_off, &err) < 0) {
        fprintf(stderr, "Error: --disable-admission-plugins: %s\n", err->msg);
        ck_error_free(err);
        ck_admission_cache_free(s.admit_cache);
        return 2;
    }
    int rc = 1;
    ck_httpd *httpd = NULL;
    cleanup_free char *host_ip = NULL;
    /* declared before the first `goto out`: a jump past a cleanup variable's initialization
     * would free garbage */
    cleanup_free char *def_sign = data_dir ? xasprintf("%s/pki/sa.key", data_dir) : NULL;
    cleanup_free char *def_pub = data_dir ? xasprintf("%s/pki/sa.pub", data_dir) : NULL;
    if (!(s.alloc = ck_alloc_new(cidr, lo, hi, &err)))
        goto out;
    if (tokens && *tokens && !(s.tokens = ck_token_file_load(tokens, &err)))
        goto out;
    if (!sa_sign && def_sign && access(def_sign, R_OK) == 0)
        sa_sign = def_sign;
    if (!sa_pub && def_pub && access(def_pub, R_OK) == 0)
        sa_pub = def_pub;
    if ((sa_sign || sa_pub) && !(s.sa_keys = ck_sa_keys_load(sa_sign, sa_pub, sa_issuer, &err)))
        goto out;
    if (etcd && *etcd) {
        s.store = ck_store_open_etcd(etcd, &err);
    } else {
        cleanup_free char *dbdir = xasprintf("%s/db", data_dir);
        cleanup_free char *db = xasprintf("%s/db/state.db", data_dir);
        if (ck_mkdir_p(dbdir, 0700) < 0) {
            ck_error_sys(&err, CK_E_IO, "create %s", dbdir);
            goto out;
        }
        s.store = ck_store_open_sqlite(db, &err);
        /* what follows a commit (watch events, answers) wakes the I/O thread once */
        if (s.store &&
            ck_store_sqlite_set_notify_hooks(s.store, ck_httpd_wake_hold, ck_httpd_wake_flush,
                                             &err) < 0)
            goto out;
    }
    if (!s.store)
        goto out;
    s.secure_port = (int)port;
    if (advertise && *advertise)
        s.advertise_ip = advertise;
    else if (strcmp(bind, "0.0.0.0") && strcmp(bind, "::"))
        s.advertise_ip = bind;
    else
        s.advertise_ip = host_ip = first_host_ip();
    if (ck_alloc_recover(&s, &err) < 0)
        goto out;
    ck_httpd_config hc = {
        .bind_addr = bind, .port = (int)port, .cert_file = cert, .key_file = key,
        .client_ca_file = ca, .max_body_bytes = CK_MAX_BODY + 4096,
        /* with SQLite a write is answered by the store's writer (writedefer.c) and nothing
         * else waits long on a worker, so a few suffice; etcd writes wait for their round trip
         * (docs/apiserver.md, "Session 7") */
        .workers = workers ? (int)workers
                           : ck_store_async_native(s.store) ? DEFAULT_WORKERS_SQLITE
                                                            : DEFAULT_WORKERS_ETCD,
        .header_timeout_ms = 30000, .idle_timeout_ms = 90000,
        .handler = ck_apiserver_handle, .handler_ctx = &s,
    };
    if (!(httpd = ck_httpd_start(&hc, &err)))
        goto out;
    /* serving first (the port may have been picked by the kernel and the kubernetes Service
     * points at it); /readyz says 503 until bootstrap and the watch caches are done */
    s.secure_port = ck_httpd_port(httpd);
    if (ck_bootstrap(&s, &err) < 0)
        goto out;
    ck_watch_hub *hub = ck_watch_hub_new(&s, &err);
    if (!hub)
        goto out;
    __atomic_store_n(&s.watch, hub, __ATOMIC_RELEASE);
    __atomic_store_n(&s.ready, true, __ATOMIC_RELEASE);
    log_info("serving %s on %s:%d (store %s)", cert ? "HTTPS" : "HTTP", bind, s.secure_port,
             s.store->ops->name);
    int sig = 0;
    sigwait(&set, &sig);
    log_info("signal %d: shutting down", sig);
    __atomic_store_n(&s.ready, false, __ATOMIC_RELEASE);
    rc = 0;
out:
    if (err) {
        fprintf(stderr, "Error: %s\n", err->msg);
        ck_error_free(err);
    }
    /* the HTTP server first (it fires every stream's on_close), then the watches */
    if (httpd)
        ck_httpd_stop(httpd);
    ck_defer_drain();   /* writes handed to the store: answered (dropped) or rerun before it closes */
    ck_watch_hub_free(s.watch);
    s.watch = NULL;
    ck_store_close(s.store);
    ck_token_file_free(s.tokens);
    ck_sa_keys_free(s.sa_keys);
    ck_alloc_free(s.alloc);
    ck_admission_cache_free(s.admit_cache);
    return rc;
}
