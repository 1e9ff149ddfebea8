/* proxy.c - `ckube proxy`: watch Services and EndpointSlices, keep the model, sync the mode.
 *
 * Informer threads only update the model and wake the sync loop.  The loop syncs at most once
 * per --min-sync-period (events in between coalesce into one partial sync), and does a full
 * resync every --sync-period, so a rule someone else deleted comes back.  A failed sync is
 * retried (as a full sync) after min-sync-period.
 */
#include "proxy/proxy.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apiserver/resources.h"
#include "client/client.h"
#include "client/component.h"
#include "client/informer.h"
#include "commands.h"
#include "lib/flags.h"
#include "lib/log.h"
#include "lib/util.h"

static const ck_proxy_mode *const modes[] = {&ck_proxy_mode_iptables, &ck_proxy_mode_nftables,
                                             &ck_proxy_mode_ipvs, &ck_proxy_mode_userspace};

const ck_proxy_mode *ck_proxy_mode_find(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(modes); i++)
        if (!strcmp(modes[i]->name, name))
            return modes[i];
    return NULL;
}

typedef struct proxier {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ck_proxy_model *model;
    bool dirty;
} proxier;

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    stopping = 1;
}

static void wake(proxier *p)
{
    p->dirty = true;
    pthread_cond_signal(&p->cv);
}

static void svc_add(void *ctx, json_t *o)
{
    proxier *p = ctx;
    pthread_mutex_lock(&p->mu);
    ck_proxy_model_set_service(p->model, o);
    wake(p);
    pthread_mutex_unlock(&p->mu);
}

static void svc_update(void *ctx, json_t *old, json_t *o)
{
    svc_add(ctx, o);
}

static void svc_delete(void *ctx, json_t *o)
{
    proxier *p = ctx;
    pthread_mutex_lock(&p->mu);
    ck_proxy_model_delete_service(p->model, o);
    wake(p);
    pthread_mutex_unlock(&p->mu);
}

static void slice_add(void *ctx, json_t *o)
{
    proxier *p = ctx;
    pthread_mutex_lock(&p->mu);
    ck_proxy_model_set_slice(p->model, o);
    wake(p);
    pthread_mutex_unlock(&p->mu);
}

static void slice_update(void *ctx, json_t *old, json_t *o)
{
    slice_add(ctx, o);
}

static void slice_delete(void *ctx, json_t *o)
{
    proxier *p = ctx;
    pthread_mutex_lock(&p->mu);
    ck_proxy_model_delete_slice(p->model, o);
    wake(p);
    pthread_mutex_unlock(&p->mu);
}

static void write_sysctl(const char *path, const char *val)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        log_warn("sysctl %s: %s", path, strerror(errno));
        return;
    }
    fputs(val, f);
    fclose(f);
}

int cmd_proxy(int argc, char **argv)
{
    char *kubeconfig = NULL, *mode_name = "iptables", *hostname = NULL, *cidr = NULL;
    bool cleanup = false, masq_all = false, kernel_relay = false, epoll_relay = false;
    long workers = 0;
    long min_sync = 1000, sync_period = 30000;
    const ck_flag flags[] = {
        {"kubeconfig", CK_FLAG_STRING, &kubeconfig, "Path to a kubeconfig file (the API server and credentials)"},
        {"proxy-mode", CK_FLAG_STRING, &mode_name, "Which proxy mode to use: iptables (default), nftables, ipvs or userspace"},
        {"cleanup", CK_FLAG_BOOL, &cleanup, "Remove every rule any mode made, then exit"},
        {"hostname-override", CK_FLAG_STRING, &hostname, "The node name to use instead of the hostname (picks local endpoints)"},
        {"min-sync-period", CK_FLAG_DURATION_MS, &min_sync, "Minimum time between syncs; changes in between coalesce (default 1s)"},
        {"sync-period", CK_FLAG_DURATION_MS, &sync_period, "Period of full resyncs (default 30s)"},
        {"cluster-cidr", CK_FLAG_STRING, &cidr, "The pods' CIDR: cluster-IP traffic from outside it is masqueraded"},
        {"masquerade-all", CK_FLAG_BOOL, &masq_all, "Masquerade all traffic sent to cluster IPs"},
        {"userspace-workers", CK_FLAG_INT, &workers, "userspace mode: threads relaying connections (default: one per CPU, at most 8)"},
        {"userspace-epoll-relay", CK_FLAG_BOOL, &epoll_relay, "userspace mode: relay with epoll and read/write instead of io_uring (io_uring is used where the kernel allows it)"},
        {"userspace-kernel-relay", CK_FLAG_BOOL, &kernel_relay, "userspace mode: once a connection's backend has answered, let the kernel (sockmap) carry its bytes"},
    };
    int npos = ck_flags_parse("proxy", "Run the network proxy (Service virtual IPs and node ports)",
                              argc, argv, flags, ARRAY_SIZE(flags));
    if (npos) {
        fprintf(stderr, "Error: unexpected argument \"%s\"\n", argv[0]);
        return 2;
    }
    ck_log_init("proxy", CK_LOG_INFO);
    const ck_proxy_mode *mode = ck_proxy_mode_find(mode_name);
    if (!mode) {
        fprintf(stderr, "Error: invalid --proxy-mode \"%s\": want iptables, nftables, ipvs or userspace\n",
                mode_name);
        return 2;
    }
    if (cleanup) {
        int rc = 0;
        for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
            if (modes[i]->probe && modes[i] != &ck_proxy_mode_ipvs && modes[i]->probe(NULL) < 0)
                continue;
            /* the iptables-based modes: in both backends (ours may be in either) */
            bool ipt = modes[i] == &ck_proxy_mode_iptables || modes[i] == &ck_proxy_mode_userspace;
            ck_proxy_ipt_use(CK_IPT_INSTALLED);
            for (int pass = 0; pass < (ipt ? 2 : 1); pass++) {
                if (pass == 1) {
                    ck_proxy_ipt_backend other = ck_proxy_ipt_other();
                    if (other == CK_IPT_INSTALLED)
                        break;
                    ck_proxy_ipt_use(other);
                }
                ck_error *e = NULL;
                if (modes[i]->cleanup(&e) < 0) {
                    log_error("cleanup %s: %s", modes[i]->name, e->msg);
                    ck_error_free(e);
                    rc = 1;
                }
            }
            ck_proxy_ipt_use(CK_IPT_INSTALLED);
        }
        if (!rc)
            log_info("cleanup done");
        return rc;
    }
    if (!kubeconfig) {
        fprintf(stderr, "Error: --kubeconfig is required\n");
        return 2;
    }
    if (min_sync < 0 || sync_period <= 0) {
        fprintf(stderr, "Error: --min-sync-period and --sync-period must be positive\n");
        return 2;
    }
    if (workers < 0 || workers > 1024) {
        fprintf(stderr, "Error: invalid argument \"%ld\" for \"--userspace-workers\": must be 0..1024\n",
                workers);
        return 2;
    }
    if (cidr && *cidr && !ck_flags_check_cidrs("proxy", "cluster-cidr", cidr))
        return 2;
    ck_error *e = NULL;
    if (mode == &ck_proxy_mode_iptables || mode == &ck_proxy_mode_userspace) {
        /* the backend this host uses; none of our rules left in the other one */
        ck_proxy_ipt_backend use = ck_proxy_ipt_detect(), other = ck_proxy_ipt_other();
        if (other != CK_IPT_INSTALLED) {
            ck_proxy_ipt_use(other);
            const char *save[] = {ck_proxy_ipt(CK_IPT_SAVE), "-t", "nat", NULL};
            cleanup_free char *dump = NULL;
            /* only when our service chains are there (KUBE-MARK-MASQ and friends alone may be
             * an old kubelet's) */
            if (ck_proxy_exec(save, NULL, 0, &dump, NULL) == 0 &&
                (strstr(dump, ":KUBE-SERVICES ") || strstr(dump, ":KUBE-PORTALS-"))) {
                log_info("removing this proxy's rules left in %s", ck_proxy_ipt(CK_IPT_CMD));
                ck_proxy_mode_iptables.cleanup(NULL);
                ck_proxy_mode_userspace.cleanup(NULL);
            }
            ck_proxy_ipt_use(use);
        }
    }
    if (mode->probe(&e) < 0) {
        fprintf(stderr, "Error: %s\n", e->msg);
        ck_error_free(e);
        return 1;
    }
    char host[256] = "";
    if (!hostname) {
        /* lower-cased, as upstream and the kubelet's node name */
        if (gethostname(host, sizeof host - 1) < 0 || !host[0])
            snprintf(host, sizeof host, "localhost");
        for (char *c = host; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        hostname = host;
    }
    ck_client *c = ck_component_client(kubeconfig, "ckube-proxy");
    if (!c)
        return 2;
    ck_proxy_opts o = {.node_name = hostname, .cluster_cidr = cidr, .masquerade_all = masq_all,
                       .kernel_relay = kernel_relay, .workers = (int)workers,
                       .epoll_relay = epoll_relay};
    void *st = mode->new(&o, &e);
    if (!st) {
        fprintf(stderr, "Error: %s\n", e ? e->msg : "mode failed to start");
        ck_error_free(e);
        ck_client_free(c);
        return 1;
    }
    if (strcmp(mode->name, "ipvs"))
        write_sysctl("/proc/sys/net/ipv4/conf/all/route_localnet", "1");

    proxier p = {.model = ck_proxy_model_new(hostname)};
    pthread_mutex_init(&p.mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p.cv, &ca);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    const ck_informer_handlers sh = {svc_add, svc_update, svc_delete};
    const ck_informer_handlers eh = {slice_add, slice_update, slice_delete};
    ck_informer *si = ck_informer_new(c, ck_resource_find("", "v1", "services"), NULL, NULL, NULL, &sh, &p);
    ck_informer *ei = ck_informer_new(c, ck_resource_find("discovery.k8s.io", "v1", "endpointslices"),
                                      NULL, "!service.kubernetes.io/headless", NULL, &eh, &p);
    ck_informer_start(si);
    ck_informer_start(ei);
    while (!stopping && !(ck_informer_synced(si) && ck_informer_synced(ei)))
        usleep(50000);
    log_info("mode %s, node %s, min-sync-period %ldms, sync-period %ldms", mode->name, hostname,
             min_sync, sync_period);

    int64_t last_sync = 0, last_full = 0;
    bool need_full = true;
    while (!stopping) {
        pthread_mutex_lock(&p.mu);
        int64_t now = ck_now_ns();
        bool due_full = need_full || now - last_full >= sync_period * 1000000;
        bool due_min = now - last_sync >= min_sync * 1000000;
        if (!((p.dirty || due_full) && due_min)) {
            int64_t wait_ns = 200000000;
            if (p.dirty && !due_min)
                wait_ns = min_sync * 1000000 - (now - last_sync);
            if (wait_ns > 200000000)
                wait_ns = 200000000;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += wait_ns;
            ts.tv_sec += ts.tv_nsec / 1000000000;
            ts.tv_nsec %= 1000000000;
            pthread_cond_timedwait(&p.cv, &p.mu, &ts);
            pthread_mutex_unlock(&p.mu);
            continue;
        }
        p.dirty = false;
        json_t *changed = ck_proxy_model_take_changes(p.model);
        int64_t t0 = ck_now_ns();
        int rc = mode->sync(st, p.model, due_full ? NULL : changed, &e);
        int64_t t1 = ck_now_ns();
        size_t nsvc = ck_proxy_model_count(p.model);
        pthread_mutex_unlock(&p.mu);
        last_sync = t1;
        if (rc < 0) {
            log_error("sync failed (retrying as a full sync): %s", e->msg);
            ck_error_free(e);
            e = NULL;
            need_full = true;
        } else {
            log_info("%s sync: %zu services (%zu changed) in %.1f ms", due_full ? "full" : "partial",
                     nsvc, json_array_size(changed), (double)(t1 - t0) / 1e6);
            if (due_full)
                last_full = t1;
            need_full = false;
        }
        json_decref(changed);
    }
    log_info("stopping");
    ck_informer_free(si);
    ck_informer_free(ei);
    mode->free(st);
    ck_proxy_model_free(p.model);
    ck_client_free(c);
    return 0;
}
