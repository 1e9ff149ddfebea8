/* manager.c - `ckube controller-manager`: flags, leader election, and the table of controllers.
 *
 * With --leader-elect (the default) nothing starts until this replica holds the Lease
 * kube-system/kube-controller-manager; then the enabled controllers register their handlers,
 * the shared informers list and watch, and the workers start.  Losing the Lease exits 1 (as
 * upstream), so the supervisor restarts the process as a standby with empty caches: a controller
 * never carries state across leaderships, it relists and converges.
 */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/component.h"
#include "client/leader.h"
#include "commands.h"
#include "controllers/cm.h"
#include "lib/flags.h"
#include "lib/kubeconfig.h"
#include "lib/log.h"
#include "lib/util.h"
#include "version.h"

static const struct {
    const char *name;
    int (*init)(cm *m);
} controllers[] = {
    {"replicaset", cm_replicaset_init},
    {"replicationcontroller", cm_replicationcontroller_init},
    {"deployment", cm_deployment_init},
    {"serviceaccount", cm_serviceaccount_init},
    {"root-ca-cert-publisher", cm_rootca_init},
    {"namespace", cm_namespace_init},
    {"garbagecollector", cm_gc_init},
    {"endpoint", cm_endpoints_init},
    {"endpointslice", cm_endpointslice_init},
    {"nodelifecycle", cm_nodelifecycle_init},
    {"job", cm_job_init},
    {"daemonset", cm_daemonset_init},
    {"cronjob", cm_cronjob_init},
    {"statefulset", cm_statefulset_init},
    {"persistentvolume-binder", cm_pvbinder_init},
};

/* --controllers: "*" = all, "name" = on, "-name" = off (upstream syntax). */
static bool enabled(const char *list, const char *name)
{
    bool on = false;
    cleanup_free char *copy = xstrdup(list);
    char *save = NULL;
    for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        if (!strcmp(w, "*"))
            on = true;
        else if (w[0] == '-' && !strcmp(w + 1, name))
            return false;
        else if (!strcmp(w, name))
            on = true;
    }
    return on;
}

static int check_list(const char *list)
{
    cleanup_free char *copy = xstrdup(list);
    char *save = NULL;
    for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        const char *n = w[0] == '-' ? w + 1 : w;
        bool known = !strcmp(n, "*");
        for (size_t i = 0; i < ARRAY_SIZE(controllers); i++)
            known |= !strcmp(n, controllers[i].name);
        if (!known) {
            fprintf(stderr, "Error: --controllers: unknown controller \"%s\"\n", n);
            return -1;
        }
    }
    return 0;
}

static void on_started_leading(void *ctx)
{
    (void)ctx;
    kill(getpid(), SIGUSR2);
}

static void on_stopped_leading(void *ctx)
{
    (void)ctx;
    log_error("leader election lost; exiting so a standby can take over");
    kill(getpid(), SIGUSR1);
}

static int start_controllers(ck_client *client, const char *list)
{
    cm *m = cm_new(client);
    int n = 0;
    for (size_t i = 0; i < ARRAY_SIZE(controllers); i++) {
        if (!enabled(list, controllers[i].name))
            continue;
        if (controllers[i].init(m) < 0) {
            log_error("controller %s failed to start", controllers[i].name);
            return -1;
        }
        log_info("started %s controller", controllers[i].name);
        n++;
    }
    ck_error *err = NULL;
    if (cm_run(m, &err) < 0) {
        log_error("%s", err->msg);
        ck_error_free(err);
        return -1;
    }
    log_info("%d controllers running", n);
    return 0;
}

/* The CA the root-ca-cert-publisher publishes: --root-ca-file, else the kubeconfig's. */
static int load_root_ca(const char *kubeconfig, const char *file)
{
    ck_error *err = NULL;
    if (file) {
        size_t len = 0;
        if (ck_read_file(file, 1 << 20, &cm_root_ca, &len) < 0) {
            fprintf(stderr, "Error: --root-ca-file: cannot read %s\n", file);
            return -1;
        }
        return 0;
    }
    ck_kubeconfig *kc = ck_kubeconfig_load(kubeconfig, NULL, &err);
    if (!kc) {
        ck_error_free(err);
        return 0;   /* the client reports it */
    }
    if (kc->ca_pem)
        cm_root_ca = xstrndup(kc->ca_pem, kc->ca_len);
    else
        log_warn("no --root-ca-file and no CA in the kubeconfig: kube-root-ca.crt is not published");
    ck_kubeconfig_free(kc);
    return 0;
}

int cmd_controller_manager(int argc, char **argv)
{
    char *kubeconfig = NULL, *list = "*", *identity = NULL, *root_ca = NULL;
    bool leader_elect = true;
    long lease_ms = 15000, renew_ms = 10000, retry_ms = 2000, grace_ms = 40000;
    ck_flag flags[] = {
        {"kubeconfig", CK_FLAG_STRING, &kubeconfig, "Path to a kubeconfig for the API server (required)"},
        {"controllers", CK_FLAG_STRING, &list,
         "Controllers to run: '*' = all, 'foo' enables, '-foo' disables (default *). Known: "
         "replicaset, replicationcontroller, deployment, serviceaccount, root-ca-cert-publisher, "
         "namespace, garbagecollector, "
         "endpoint, endpointslice, nodelifecycle, job, cronjob, daemonset, statefulset, persistentvolume-binder"},
        {"leader-elect", CK_FLAG_BOOL, &leader_elect,
         "Run leader election on the Lease kube-system/kube-controller-manager (default true)"},
        CK_COMPONENT_LEADER_FLAGS(&lease_ms, &renew_ms, &retry_ms, &identity),
        {"root-ca-file", CK_FLAG_STRING, &root_ca,
         "CA bundle published as the kube-root-ca.crt ConfigMap in every namespace (default: the "
         "kubeconfig's certificate authority)"},
        {"node-monitor-grace-period", CK_FLAG_DURATION_MS, &grace_ms,
         "How long a node's Lease may go unrenewed before it is marked Unknown (default 40s)"},
    };
    const char *summary = "Run the controllers that turn desired state into actual state";
    int npos = ck_flags_parse("controller-manager", summary, argc, argv, flags, ARRAY_SIZE(flags));
    if (ck_component_check_args(npos, argv, kubeconfig) < 0)
        return 2;
    if (check_list(list) < 0)
        return 2;
    if (lease_ms <= 0 || renew_ms <= 0 || retry_ms <= 0 || renew_ms >= lease_ms || grace_ms <= 0) {
        fprintf(stderr, "Error: durations must be positive and renew deadline < lease duration\n");
        return 2;
    }
    cm_node_grace_ms = grace_ms;
    /* Many short-lived worker threads would each get a malloc arena that keeps its freed
     * memory; two arenas keep RSS close to what the caches really hold.  A fixed mmap threshold
     * sends big transient buffers (list pages, watch lines) to mmap, where freeing returns them,
     * instead of letting glibc's sliding threshold put them among the cached pods. */
    mallopt(M_ARENA_MAX, 2);
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    ck_log_init("controller-manager", CK_LOG_INFO);
    ck_client *client = ck_component_client(kubeconfig, "ckube-controller-manager/" CK_VERSION);
    if (!client)
        return 2;
    if (load_root_ca(kubeconfig, root_ca) < 0)
        return 2;   /* an unreadable --root-ca-file is a bad flag value */
    sigset_t sigs;
    ck_component_block_signals(&sigs, (const int[]){SIGUSR1, SIGUSR2, 0});

    ck_leader *leader = NULL;
    if (leader_elect) {
        ck_leader_config lc = {.lease_namespace = "kube-system",
                               .lease_name = "kube-controller-manager", .identity = identity,
                               .lease_duration_ms = (int)lease_ms, .renew_deadline_ms = (int)renew_ms,
                               .retry_period_ms = (int)retry_ms,
                               .on_started_leading = on_started_leading,
                               .on_stopped_leading = on_stopped_leading};
        leader = ck_leader_start(client, &lc);
        log_info("waiting to become leader of kube-system/kube-controller-manager as %s",
                 ck_leader_identity(leader));
    } else if (start_controllers(client, list) < 0) {
        return 1;
    }
    int status = 0;
    for (;;) {
        int sig = 0;
        sigwait(&sigs, &sig);
        if (sig == SIGUSR2) {
            log_info("became leader as %s", ck_leader_identity(leader));
            if (start_controllers(client, list) < 0) {
                status = 1;
                break;
            }
            continue;
        }
        status = sig == SIGUSR1 ? 1 : 0;
        log_info("stopping (%s)", sig == SIGUSR1 ? "lost leadership" : "signal");
        break;
    }
    if (leader && status == 0)
        ck_leader_stop(leader);
    /* Workers and informers are detached and hold no state worth flushing: exit now, as
     * upstream does, rather than wait for in-flight requests. */
    fflush(stderr);
    _exit(status);
}
