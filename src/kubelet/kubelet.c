/* kubelet.c - `ckube kubelet` (the node agent), `ckube images` (the node's image store) and the
 * internal `ckube kubelet-shim`.  Flags and start-up here; the work is in the other files of
 * src/kubelet/ (see kubelet.h). */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <limits.h>
#include <unistd.h>

#include "client/component.h"
#include "commands.h"
#include "kubelet/kubelet.h"
#include "lib/flags.h"
#include "lib/log.h"
#include "lib/util.h"
#include "version.h"

#define DEFAULT_ROOT "/var/lib/ckube-kubelet"

/* crun 1.8 refuses hybrid cgroup hosts (v1 controllers with a cgroup2 mount beside them). */
static bool hybrid_cgroups(void)
{
    return ck_cgroup_mode_get() == CK_CGROUP_HYBRID;
}

static char *abs_dir(const char *dir)
{
    char buf[PATH_MAX];
    ck_mkdir_p(dir, 0700);
    return realpath(dir, buf) ? xstrdup(buf) : NULL;
}

/* What every way out of cmd_kubelet after the launcher started gives back (LeakSanitizer checks
 * the error paths too). */
static void kubelet_release(ck_kubelet *k)
{
    ck_runtime_launcher_stop(&k->rt);
    ck_client_free(k->client);
    ck_registry_set_allowed(NULL);
    free(k->root);
    free(k->cert_file);
    free(k->key_file);
}

int cmd_kubelet(int argc, char **argv)
{
    char *kubeconfig = NULL, *root = DEFAULT_ROOT, *node_name = NULL, *runtime = "runc",
         *pod_cidr = "10.244.0.0/24", *node_ip = "127.0.0.1", *cni_bin = "/usr/lib/cni",
         *bridge = "ckube0", *cert = NULL, *key = NULL, *client_ca = NULL, *registries = NULL;
    long port = 10250;
    ck_flag flags[] = {
        {"kubeconfig", CK_FLAG_STRING, &kubeconfig, "Path to a kubeconfig for the API server (required)"},
        {"root-dir", CK_FLAG_STRING, &root, "Directory for pods, images, logs and state (default " DEFAULT_ROOT ")"},
        {"node-name", CK_FLAG_STRING, &node_name, "Node name (default: the host name)"},
        {"node-ip", CK_FLAG_STRING, &node_ip, "The node's address, where the kubelet port listens (default 127.0.0.1)"},
        {"container-runtime", CK_FLAG_STRING, &runtime, "OCI runtime binary: runc or crun (default runc)"},
        {"port", CK_FLAG_INT, &port, "The kubelet's HTTPS port (default 10250)"},
        {"pod-cidr", CK_FLAG_STRING, &pod_cidr, "Pod IP range of this node (default 10.244.0.0/24)"},
        {"cni-bin-dir", CK_FLAG_STRING, &cni_bin, "CNI plugin directory (default /usr/lib/cni)"},
        {"cni-bridge", CK_FLAG_STRING, &bridge, "Linux bridge for pods (default ckube0)"},
        {"tls-cert-file", CK_FLAG_STRING, &cert, "Serving certificate (default: made under ROOT/pki)"},
        {"tls-private-key-file", CK_FLAG_STRING, &key, "Serving key"},
        {"client-ca-file", CK_FLAG_STRING, &client_ca, "Require client certificates signed by this CA"},
        {"allowed-registries", CK_FLAG_STRING, &registries,
         "Registry hosts image pulls may contact besides loopback, comma-separated, or * (default: loopback only)"},
    };
    const char *summary = "Run the node agent: register the Node and run its pods in containers";
    int npos = ck_flags_parse("kubelet", summary, argc, argv, flags, ARRAY_SIZE(flags));
    if (ck_component_check_args(npos, argv, kubeconfig) < 0)
        return 2;
    if (strcmp(runtime, "runc") && strcmp(runtime, "crun")) {
        fprintf(stderr, "Error: --container-runtime must be runc or crun\n");
        return 2;
    }
    if (!strcmp(runtime, "crun") && hybrid_cgroups()) {
        fprintf(stderr, "Error: crun does not support this host's hybrid cgroup layout (cgroup v1 "
                        "controllers with cgroup2 mounted at /sys/fs/cgroup/unified); use "
                        "--container-runtime=runc\n");
        return 2;
    }
    if (port < 1 || port > 65535) {
        fprintf(stderr, "Error: invalid argument \"%ld\" for \"--port\": must be between 1 and 65535, inclusive\n",
                port);
        return 2;
    }
    if ((cert && !key) || (key && !cert)) {
        fprintf(stderr, "Error: --tls-cert-file and --tls-private-key-file go together\n");
        return 2;
    }
    if (!ck_flags_check_ip("kubelet", "node-ip", node_ip) ||
        !ck_flags_check_cidrs("kubelet", "pod-cidr", pod_cidr))
        return 2;
    if (geteuid() != 0) {
        fprintf(stderr, "Error: the kubelet must run as root (namespaces, mounts, cgroups)\n");
        return 1;
    }
    ck_log_init("kubelet", CK_LOG_INFO);
    ck_registry_set_allowed(registries);
    char host[256] = "localhost";
    if (!node_name) {
        gethostname(host, sizeof host - 1);
        for (char *p = host; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        node_name = host;
    }
    /* the client first: a bad kubeconfig exits 2 before anything is made on disk */
    ck_client *client = ck_component_client(kubeconfig, "ckube-kubelet/" CK_VERSION);
    if (!client)
        return 2;
    char *root_abs = abs_dir(root);     /* k.root, freed at the end */
    if (!root_abs) {
        fprintf(stderr, "Error: --root-dir %s: %s\n", root, strerror(errno));
        ck_client_free(client);
        return 1;
    }
    /* workers, terminators and the informer would each get a malloc arena (up to 8 per core)
     * whose touched pages stay: two keep the RSS of a 100-pod burst down (as the scheduler's
     * and controller-manager's) */
    mallopt(M_ARENA_MAX, 2);
    ck_kubelet k = {.node_name = node_name, .pod_cidr = pod_cidr, .node_ip = node_ip, .port = port,
                    .cert_file = cert ? xstrdup(cert) : NULL, .key_file = key ? xstrdup(key) : NULL,
                    .client_ca = client_ca, .root = root_abs, .client = client};
    /* our own binary for the shim, even if it was replaced on disk since we started */
    const char *self = "/proc/self/exe";
    cleanup_free char *rt_root = xasprintf("%s/runtime", k.root);
    ck_mkdir_p(rt_root, 0700);
    k.rt = (ck_runtime){.runc = runtime, .root = rt_root, .self_exe = self};
    ck_runtime_launcher_start(&k.rt);
    k.sb = (ck_sandbox_cfg){.root = k.root, .cni_bin = cni_bin, .bridge = bridge, .pod_cidr = pod_cidr};
    ck_error *err = NULL;
    sigset_t stop_signals;
    ck_component_block_signals(&stop_signals, NULL);

    if (ck_serve_start(&k, &err) < 0) {
        fprintf(stderr, "Error: %s\n", err->msg);
        ck_error_free(err);
        kubelet_release(&k);
        return 1;
    }
    while (ck_node_register(&k, &err) < 0) {
        log_warn("register node %s: %s", k.node_name, err->msg);
        ck_error_free(err);
        err = NULL;
        struct timespec ts = {0, 0};
        sigset_t pending;
        sigpending(&pending);
        if (sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT)) {
            ck_serve_stop(&k);
            kubelet_release(&k);
            return 0;
        }
        (void)ts;
        usleep(500 * 1000);
    }
    log_info("node %s registered (pod CIDR %s, runtime %s, root %s)", k.node_name, pod_cidr,
             runtime, k.root);
    pthread_t node_thread;
    pthread_create(&node_thread, NULL, ck_node_loop, &k);
    ck_pods_start(&k, NULL);
    int sig = 0;
    sigwait(&stop_signals, &sig);
    log_info("stopping on signal %d (containers keep running)", sig);
    k.stop = true;
    ck_serve_stop(&k);
    ck_pods_stop(&k);
    pthread_join(node_thread, NULL);
    kubelet_release(&k);
    return 0;
}

int cmd_images(int argc, char **argv)
{
    char *root = DEFAULT_ROOT, *name = NULL;
    ck_flag flags[] = {
        {"root-dir", CK_FLAG_STRING, &root, "The kubelet's root directory (default " DEFAULT_ROOT ")"},
        {"name", CK_FLAG_STRING, &name, "import: the reference to give the (first) image"},
    };
    const char *summary = "The node's image store: `images import FILE` (OCI layout dir/tar or docker-archive tar), `images list`";
    int npos = ck_flags_parse("images", summary, argc, argv, flags, ARRAY_SIZE(flags));
    if (npos < 1 || (strcmp(argv[0], "import") && strcmp(argv[0], "list")) ||
        (!strcmp(argv[0], "import") && npos != 2)) {
        fprintf(stderr, "Error: usage: ckube images import [--name REF] FILE | ckube images list\n");
        return 2;
    }
    cleanup_free char *r = abs_dir(root);
    if (!r) {
        fprintf(stderr, "Error: --root-dir %s: %s\n", root, strerror(errno));
        return 1;
    }
    if (!strcmp(argv[0], "list")) {
        cleanup_free char *path = xasprintf("%s/images/refs.json", r);
        char *data = NULL;
        size_t len;
        if (ck_read_file(path, 1 << 24, &data, &len) == 0) {
            json_t *refs = json_loadb(data, len, 0, NULL);
            const char *key;
            json_t *v;
            json_object_foreach(refs, key, v) printf("%s\t%s\n", key, json_string_value(v));
            json_decref(refs);
            free(data);
        }
        return 0;
    }
    ck_error *err = NULL;
    json_t *refs = ck_images_import(r, argv[1], name, &err);
    if (!refs) {
        fprintf(stderr, "Error: %s\n", err->msg);
        ck_error_free(err);
        return 1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(refs, i, v) printf("imported %s\n", json_string_value(v));
    if (!json_array_size(refs))
        fprintf(stderr, "warning: no named image in %s (use --name)\n", argv[1]);
    json_decref(refs);
    return 0;
}

int cmd_kubelet_shim(int argc, char **argv)
{
    return ck_shim_main(argc, argv);
}
