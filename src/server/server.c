/* server.c - `ckube server`: a whole single-node cluster as supervised child processes.
 *
 * Start-up: validate flags; take DIR/.lock (one server per data dir); create the PKI and token
 * file on first start (reused afterwards); write one kubeconfig per component that needs one;
 * start the API server; once GET /readyz answers "ok", write the admin kubeconfig DIR/kubeconfig
 * and start the components that talk to the API server.  Every component is its own process
 * (this binary re-exec'd with the component's command), restarted with backoff when it dies
 * (supervise.h).  SIGTERM/SIGINT stop every child (deadline, then SIGKILL) and exit 0.
 *
 * Components are the rows of `components` below; a row whose command is not built into this
 * binary yet is skipped with a log line, so adding a component is adding its command.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "commands.h"
#include "lib/error.h"
#include "lib/flags.h"
#include "lib/kubeconfig.h"
#include "lib/log.h"
#include "lib/pki.h"
#include "lib/util.h"
#include "server/supervise.h"

#define SUMMARY "Run a single-node cluster: every component as a supervised child process"
#define STOP_DEADLINE_MS 10000
#define READY_POLL_MS 250

typedef struct server {
    char *dir;                 /* absolute data dir */
    long port;
    const char *bind;
    const char *etcd;          /* NULL: the apiserver's embedded SQLite store */
    bool disable_agent;
    bool disable_kube_proxy;   /* k3s's flag: run the kubelet but not the proxy */
    const char *tls_san;       /* comma-separated extra SANs */
    char *node_name;
    char *url;                 /* how local clients reach the API server */
    int lock_fd;               /* holds the flock on DIR/.lock */
    char *self;                /* the binary children run */
    bool self_override;        /* CKUBE_SELF_EXE set */
    ck_kubeconfig *admin;      /* for the readiness probe and DIR/kubeconfig */
    ck_supervisor *sup;
    bool api_ready, ever_ready;
    int64_t waiting_since_ns, last_wait_log_ns;
    char last_probe_error[CURL_ERROR_SIZE + 64];
} server;

/* A growing NULL-terminated argv. */
typedef struct argv_b {
    char **v;
    size_t n;
} argv_b;

static void arg(argv_b *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void arg(argv_b *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    a->v = xrealloc(a->v, (a->n + 2) * sizeof *a->v);
    a->v[a->n++] = xvasprintf(fmt, ap);
    a->v[a->n] = NULL;
    va_end(ap);
}

static void argv_free(argv_b *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
}

static void apiserver_args(const server *s, argv_b *a)
{
    arg(a, "--data-dir=%s", s->dir);
    arg(a, "--secure-port=%ld", s->port);
    arg(a, "--bind-address=%s", s->bind);
    if (s->etcd)
        arg(a, "--etcd-servers=%s", s->etcd);
    arg(a, "--tls-cert-file=%s/pki/apiserver.crt", s->dir);
    arg(a, "--tls-private-key-file=%s/pki/apiserver.key", s->dir);
    arg(a, "--client-ca-file=%s/pki/ca.crt", s->dir);
    arg(a, "--token-auth-file=%s/pki/tokens.csv", s->dir);
}

static void kubelet_args(const server *s, argv_b *a)
{
    arg(a, "--root-dir=%s/kubelet", s->dir);
    arg(a, "--node-name=%s", s->node_name);
}

/* The proxy picks "local" endpoints by node name: the same name the kubelet registers; the pod
 * CIDR is the cluster default (off-cluster sources of cluster-IP traffic are masqueraded). */
static void proxy_args(const server *s, argv_b *a)
{
    arg(a, "--hostname-override=%s", s->node_name);
    arg(a, "--cluster-cidr=10.244.0.0/16");
}

/* One row per component.  Rows with a `user` talk to the API server: they get a client
 * certificate (CN=user, O=group) in DIR/pki/<name>.{crt,key}, a kubeconfig
 * DIR/kubeconfigs/<name>.kubeconfig passed as --kubeconfig, and start once the API server is
 * ready.  `args` adds any further flags.  `agent` rows are node components (--disable-agent). */
typedef struct component {
    const char *name;          /* the `ckube <name>` command */
    bool required;             /* the cluster cannot run without it */
    bool agent;
    const char *user;          /* NULL: needs no kubeconfig (the API server itself) */
    const char *group;
    bool per_node;             /* user is "<user><node name>" (kubelet: system:node:<name>) */
    void (*args)(const server *s, argv_b *a);
} component;

static const component components[] = {
    /* name                required agent  user                              group           per_node args */
    {"apiserver",          true,  false, NULL,                             NULL,           false, apiserver_args},
    {"scheduler",          false, false, "system:kube-scheduler",          NULL,           false, NULL},
    {"controller-manager", false, false, "system:kube-controller-manager", NULL,           false, NULL},
    {"kubelet",            false, true,  "system:node:",                   "system:nodes", true,  kubelet_args},
    {"proxy",              false, true,  "system:kube-proxy",              NULL,           false, proxy_args},
};

static bool command_built_in(const char *name)
{
#define CK_X_NAME(n, fn, summary) n,
    static const char *const names[] = {CK_COMMANDS(CK_X_NAME)};
#undef CK_X_NAME
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (!strcmp(names[i], name))
            return true;
    return false;
}

/* Required rows always run (with CKUBE_SELF_EXE the other binary provides them); optional rows
 * run once their command exists. */
static bool component_enabled(const server *s, const component *c)
{
    if (s->disable_kube_proxy && !strcmp(c->name, "proxy"))
        return false;
    return !(c->agent && s->disable_agent) &&
           (command_built_in(c->name) || (c->required && s->self_override));
}

/* One line, exit 2: the flag contract of every command. */
static void __attribute__((noreturn)) usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *m = xvasprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "Error: %s (see 'ckube server --help')\n", m);
    free(m);
    exit(2);
}

static bool is_ip(const char *s)
{
    unsigned char b[16];
    return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

static void validate_etcd(const char *urls)
{
    cleanup_free char *copy = xstrdup(urls);
    char *save = NULL;
    int n = 0;
    for (char *u = strtok_r(copy, ",", &save); u; u = strtok_r(NULL, ",", &save), n++)
        if (strncmp(u, "http://", 7) && strncmp(u, "https://", 8))
            usage_error("invalid --etcd-servers entry \"%s\": want http://host:port or "
                        "https://host:port", u);
    if (!n)
        usage_error("--etcd-servers is empty");
}

/* Create (if needed) and lock the data dir.  The lock fd stays open for the process lifetime
 * (close-on-exec: children do not hold it). */
static int take_data_dir(server *s, const char *dir, ck_error **err)
{
    struct stat st;
    if (ck_mkdir_p(dir, 0700) < 0)
        return ck_error_sys(err, CK_E_IO, "data dir %s: cannot create it", dir);
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return ck_error_set(err, CK_E_IO, "data dir %s: not a directory", dir);
    char abs[PATH_MAX];
    if (!realpath(dir, abs))
        return ck_error_sys(err, CK_E_IO, "data dir %s", dir);
    s->dir = xstrdup(abs);
    cleanup_free char *lock = xasprintf("%s/.lock", s->dir);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return ck_error_sys(err, CK_E_IO, "data dir %s is not writable", s->dir);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        close(fd);
        if (e == EWOULDBLOCK)
            return ck_error_set(err, CK_E_CONFLICT,
                                "data dir %s is in use by another ckube server%s%s%s", s->dir,
                                pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
        errno = e;
        return ck_error_sys(err, CK_E_IO, "lock %s", lock);
    }
    s->lock_fd = fd;   /* kept open for the process lifetime: it is the lock */
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len)
        return ck_error_sys(err, CK_E_IO, "data dir %s is not writable", s->dir);
    static const char *const subdirs[] = {"pki", "db", "kubeconfigs"};
    for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
        cleanup_free char *p = xasprintf("%s/%s", s->dir, subdirs[i]);
        if (ck_mkdir_p(p, 0700) < 0)
            return ck_error_sys(err, CK_E_IO, "create %s", p);
    }
    return 0;
}

static int setup_pki(server *s, ck_error **err)
{
    /* extra SANs: --tls-san entries, and the bind address when it is a specific one */
    size_t n = 0;
    const char **sans = xcalloc(64, sizeof *sans);
    cleanup_free char *copy = s->tls_san ? xstrdup(s->tls_san) : NULL;
    char *save = NULL;
    for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t && n < 62; t = strtok_r(NULL, ",", &save))
        if (*t)
            sans[n++] = t;
    if (strcmp(s->bind, "0.0.0.0") && strcmp(s->bind, "::"))
        sans[n++] = s->bind;
    cleanup_free char *pki = xasprintf("%s/pki", s->dir);
    int rc = ck_pki_ensure_cluster(pki, sans, err);
    free(sans);
    if (rc < 0)
        return -1;
    log_info("%s PKI in %s", rc ? "created" : "reusing", pki);

    cleanup_free char *ca = xasprintf("%s/ca.crt", pki);
    cleanup_free char *ca_key = xasprintf("%s/ca.key", pki);
    for (size_t i = 0; i < ARRAY_SIZE(components); i++) {
        const component *c = &components[i];
        if (!c->user || !component_enabled(s, c))
            continue;
        cleanup_free char *user = c->per_node ? xasprintf("%s%s", c->user, s->node_name)
                                              : xstrdup(c->user);
        const char *groups[] = {c->group, NULL};
        cleanup_free char *crt = xasprintf("%s/%s.crt", pki, c->name);
        cleanup_free char *key = xasprintf("%s/%s.key", pki, c->name);
        if (ck_pki_ensure_client_cert(ca, ca_key, crt, key, user, c->group ? groups : NULL,
                                      err) < 0)
            return -1;
        ck_kubeconfig *kc = ck_kubeconfig_from_files(s->url, ca, crt, key, err);
        if (!kc)
            return -1;
        kc->user_name = xstrdup(c->name);
        cleanup_free char *path = xasprintf("%s/kubeconfigs/%s.kubeconfig", s->dir, c->name);
        rc = ck_kubeconfig_write(path, kc, err);
        ck_kubeconfig_free(kc);
        if (rc < 0)
            return -1;
    }
    cleanup_free char *adm = xasprintf("%s/admin.crt", pki);
    cleanup_free char *adm_key = xasprintf("%s/admin.key", pki);
    s->admin = ck_kubeconfig_from_files(s->url, ca, adm, adm_key, err);
    return s->admin ? 0 : -1;
}

static int start_component(server *s, const component *c, ck_error **err)
{
    argv_b a = {0};
    arg(&a, "ckube");
    arg(&a, "%s", c->name);
    if (c->user)
        arg(&a, "--kubeconfig=%s/kubeconfigs/%s.kubeconfig", s->dir, c->name);
    if (c->args)
        c->args(s, &a);
    int rc = ck_supervisor_add(s->sup, c->name, s->self, a.v, err);
    argv_free(&a);
    return rc;
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    return ck_buf_add(ud, p, size * n) < 0 ? 0 : size * n;
}

/* GET /readyz with the admin credentials: true on 200 "ok". */
static bool probe_ready(server *s)
{
    CURL *h = curl_easy_init();
    if (!h)
        return false;
    struct curl_slist *headers = NULL;
    ck_error *err = NULL;
    cleanup_free char *url = ck_kubeconfig_url(s->admin, "/readyz");
    char errbuf[CURL_ERROR_SIZE] = "";
    ck_buf body;
    ck_buf_init(&body, 4096);
    bool ok = false;
    if (ck_kubeconfig_apply_curl(s->admin, h, &headers, &err) < 0) {
        snprintf(s->last_probe_error, sizeof s->last_probe_error, "%s", err->msg);
        ck_error_free(err);
        goto out;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK) {
        snprintf(s->last_probe_error, sizeof s->last_probe_error, "%s",
                 errbuf[0] ? errbuf : curl_easy_strerror(rc));
    } else if (code != 200 || strncmp(body.data ? body.data : "", "ok", 2)) {
        snprintf(s->last_probe_error, sizeof s->last_probe_error, "/readyz answered %ld: %.80s",
                 code, body.data ? body.data : "");
    } else {
        ok = true;
    }
out:
    ck_buf_free(&body);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return ok;
}

static void became_ready(server *s)
{
    s->api_ready = true;
    if (s->ever_ready) {
        log_info("API server ready again");
        return;
    }
    s->ever_ready = true;
    cleanup_free char *path = xasprintf("%s/kubeconfig", s->dir);
    ck_error *err = NULL;
    if (ck_kubeconfig_write(path, s->admin, &err) < 0) {
        log_error("%s", err->msg);
        ck_error_free(err);
    } else {
        log_info("cluster ready in %.1fs; kubeconfig: %s",
                 (double)(ck_now_ns() - s->waiting_since_ns) / 1e9, path);
    }
    for (size_t i = 0; i < ARRAY_SIZE(components); i++) {
        const component *c = &components[i];
        if (!c->user || !component_enabled(s, c))
            continue;
        if (start_component(s, c, &err) < 0) {
            log_error("start %s: %s", c->name, err->msg);
            ck_error_free(err);
        }
    }
}

static void on_child_exit(void *ud, const char *name, pid_t pid, int wstatus)
{
    server *s = ud;
    if (!strcmp(name, "apiserver") && s->api_ready) {
        s->api_ready = false;
        s->waiting_since_ns = s->last_wait_log_ns = ck_now_ns();
    }
}

static void wait_ready_tick(server *s)
{
    if (probe_ready(s)) {
        became_ready(s);
        return;
    }
    int64_t now = ck_now_ns();
    if (now - s->last_wait_log_ns > 15 * 1000000000LL) {
        log_info("waiting for the API server: %s", s->last_probe_error);
        s->last_wait_log_ns = now;
    }
}

static char *local_url(const char *bind, long port)
{
    if (!strcmp(bind, "0.0.0.0"))
        return xasprintf("https://127.0.0.1:%ld", port);
    if (!strcmp(bind, "::"))
        return xasprintf("https://[::1]:%ld", port);
    if (strchr(bind, ':'))
        return xasprintf("https://[%s]:%ld", bind, port);
    return xasprintf("https://%s:%ld", bind, port);
}

static char *host_node_name(void)
{
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) < 0 || !host[0])
        snprintf(host, sizeof host, "localhost");
    for (char *p = host; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return xstrdup(host);
}

/* Everything before the first child: data dir, lock, PKI, kubeconfigs.  No process started. */
static int prepare(server *s, const char *data_dir, ck_error **err)
{
    const char *self = getenv("CKUBE_SELF_EXE");   /* run components from another binary/wrapper */
    s->self_override = self && *self;
    s->self = xstrdup(s->self_override ? self : "/proc/self/exe");
    if (take_data_dir(s, data_dir, err) < 0)
        return -1;
    for (size_t i = 0; i < ARRAY_SIZE(components); i++)
        if (components[i].required && !component_enabled(s, &components[i]))
            return ck_error_set(err, CK_E_INVALID,
                                "this ckube binary has no `%s` command; the server needs it",
                                components[i].name);
    s->node_name = host_node_name();
    s->url = local_url(s->bind, s->port);
    return setup_pki(s, err);
}

/* Start the children and supervise them until SIGTERM/SIGINT; stop them all.  Exit status. */
static int run(server *s, int sfd)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* GnuTLS is only loaded as a dependency of libcurl's LDAP support, which no component uses;
     * its implicit initialization at load time costs every child ~0.7 MB of RSS (the API server's
     * idle target is 15 MB).  libldap still initializes it explicitly if it ever needs it. */
    setenv("GNUTLS_NO_IMPLICIT_INIT", "1", 0);
    ck_supervisor_opts o = {.on_exit = on_child_exit, .ud = s};
    s->sup = ck_supervisor_new(&o);
    for (size_t i = 0; i < ARRAY_SIZE(components); i++) {
        const component *c = &components[i];
        if (!(c->agent && s->disable_agent) &&
            !(s->disable_kube_proxy && !strcmp(c->name, "proxy")) && !component_enabled(s, c))
            log_info("%s: not built into this binary yet; not started", c->name);
    }
    log_info("starting a cluster in %s; API server at %s", s->dir, s->url);
    s->waiting_since_ns = s->last_wait_log_ns = ck_now_ns();
    int rc = 0;
    ck_error *err = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(components); i++) {
        const component *c = &components[i];
        if (!c->user && component_enabled(s, c) && start_component(s, c, &err) < 0) {
            log_error("start %s: %s", c->name, err->msg);
            ck_error_free(err);
            err = NULL;
            rc = 1;
        }
    }
    for (bool stop = rc != 0; !stop;) {
        int r = ck_supervisor_poll(s->sup, sfd, s->api_ready ? -1 : READY_POLL_MS);
        if (r == 1) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                if (si.ssi_signo == SIGHUP) {
                    log_info("SIGHUP ignored");
                } else {
                    log_info("%s received; stopping", strsignal((int)si.ssi_signo));
                    stop = true;
                }
            }
        } else if (r < 0) {
            log_error("poll: %s", strerror(errno));
            rc = 1;
            stop = true;
        }
        if (!stop && !s->api_ready)
            wait_ready_tick(s);
    }
    int killed = ck_supervisor_stop(s->sup, STOP_DEADLINE_MS);
    log_info("stopped%s", killed ? " (some components had to be killed)" : "");
    curl_global_cleanup();
    return rc;
}

static void server_free(server *s)
{
    ck_supervisor_free(s->sup);
    ck_kubeconfig_free(s->admin);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s->dir);
    free(s->url);
    free(s->self);
    free(s->node_name);
}

int cmd_server(int argc, char **argv)
{
    char *data_dir = NULL, *bind = "0.0.0.0", *etcd = NULL, *tls_san = NULL;
    long port = 6443;
    bool disable_agent = false, disable_kube_proxy = false;
    ck_flag flags[] = {
        {"data-dir", CK_FLAG_STRING, &data_dir,
         "Directory for all cluster state: pki/, db/, kubeconfig (required)"},
        {"secure-port", CK_FLAG_INT, &port, "Port the API server serves HTTPS on (default 6443)"},
        {"bind-address", CK_FLAG_STRING, &bind,
         "IP address the API server listens on (default 0.0.0.0)"},
        {"etcd-servers", CK_FLAG_STRING, &etcd,
         "Comma-separated etcd URLs; default: the embedded SQLite store in DIR/db"},
        {"disable-agent", CK_FLAG_BOOL, &disable_agent,
         "Do not run the node components (kubelet, proxy) on this machine"},
        {"disable-kube-proxy", CK_FLAG_BOOL, &disable_kube_proxy,
         "Run the kubelet but not the service proxy (its rules go into this network namespace)"},
        {"tls-san", CK_FLAG_STRING, &tls_san,
         "Comma-separated extra host names or IPs for the API server's certificate"},
    };
    int npos = ck_flags_parse("server", SUMMARY, argc, argv, flags, ARRAY_SIZE(flags));
    if (npos > 0)
        usage_error("unexpected argument \"%s\"", argv[0]);
    if (!data_dir || !*data_dir)
        usage_error("--data-dir is required");
    if (port < 1 || port > 65535)
        usage_error("invalid --secure-port %ld: want 1-65535", port);
    if (!is_ip(bind))
        usage_error("invalid --bind-address \"%s\": want an IP address", bind);
    if (etcd)
        validate_etcd(etcd);

    ck_log_init("server", CK_LOG_INFO);
    server s = {.port = port, .bind = bind, .etcd = etcd, .disable_agent = disable_agent,
                .disable_kube_proxy = disable_kube_proxy, .tls_san = tls_san, .lock_fd = -1};
    /* Signals arrive through a signalfd, polled with the children's pidfds.  Blocked before any
     * work, so a SIGTERM during start-up is a clean stop too. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    cleanup_close int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd < 0) {
        fprintf(stderr, "Error: signalfd: %s\n", strerror(errno));
        return 1;
    }
    ck_error *err = NULL;
    int rc = prepare(&s, data_dir, &err) < 0 ? 1 : run(&s, sfd);
    if (err)
        fprintf(stderr, "Error: %s\n", err->msg);
    ck_error_free(err);
    server_free(&s);
    return rc;
}
