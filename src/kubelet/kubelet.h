/* kubelet.h - the kubelet's modules and what they share (internal to src/kubelet/).
 *
 * Shape (docs/kubelet.md): node.c registers the Node and heartbeats its Lease; pods.c keeps one
 * record per pod bound to this node and drives it toward its spec from a work queue (the sync
 * loop); sandbox.c makes a pod's network namespace through CNI; images.c is the OCI layout store;
 * oci.c turns a container spec into an OCI runtime config; runtime.c runs containers through runc
 * under a small per-container shim (the `ckube kubelet-shim` process) that owns the container's
 * stdio and records its exit code, so containers and their logs outlive a kubelet restart;
 * logs.c writes and reads CRI-format log files; serve.c is the kubelet's HTTPS port.
 *
 * Error contract: lib/error.h.
 */
#ifndef CK_KUBELET_H
#define CK_KUBELET_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "client/client.h"
#include "lib/error.h"
#include "lib/httpd.h"

typedef struct ck_kubelet ck_kubelet;

/* ---- images.c: OCI layout store under ROOT/images ---- */
typedef struct ck_image {
    char *ref;          /* normalized reference, "docker.io/library/busybox:latest" */
    char *id;           /* config digest, "sha256:..." */
    char *manifest;     /* manifest digest */
    char **layers;      /* unpacked layer dirs, bottom first */
    size_t nlayers;
    json_t *config;     /* the image config's "config" object (Env, Entrypoint, Cmd, User, WorkingDir) */
} ck_image;

/* "busybox" -> "docker.io/library/busybox:latest"; caller frees. */
char *ck_image_normalize(const char *ref);
/* Import an OCI layout (directory or tar) or a docker-archive tar; returns the refs imported
 * (a NEW array of strings).  name (may be NULL) names the layout's first image instead of its
 * ref.name annotation (umoci writes bare tags). */
json_t *ck_images_import(const char *root, const char *file, const char *name, ck_error **err);
/* The image for ref if present in the store, else NULL with CK_E_NOT_FOUND. */
ck_image *ck_images_get(const char *root, const char *ref, ck_error **err);
void ck_image_free(ck_image *img);

/* store internals shared with registry.c: blobs are digest-checked copies (want may be NULL;
 * out gets the digest), layers unpacked once, refs recorded; writers hold the store lock. */
int ck_images__store_blob(const char *root, const char *src, const char *want, char out[72],
                          ck_error **err);
int ck_images__store_data(const char *root, const char *data, size_t len, char out[72],
                          ck_error **err);
int ck_images__unpack(const char *root, const char *digest, ck_error **err);
int ck_images__set_ref(const char *root, const char *ref, const char *manifest, ck_error **err);
int ck_images__lock(const char *root);   /* fd to close to unlock */

/* ---- registry.c: pulls over the registry v2 API into the store ---- */
/* auths: a docker config object {"auths": {"host[:port]": {"username","password"|"auth"}}}
 * (the pod's imagePullSecrets merged), or NULL for anonymous pulls. */
int ck_images_pull(const char *root, const char *ref, const json_t *auths, ck_error **err);
/* The credentials auths holds for a registry host (keys matched as upstream's keyring: scheme
 * and path ignored, "*.domain" wildcards, docker.io aliases); 0 and both set, or -1. */
int ck_registry_creds(const json_t *auths, const char *host, char **user, char **pass);
/* Comma-separated registry hosts pulls may contact besides loopback ("*" = any). */
void ck_registry_set_allowed(const char *list);

/* ---- sandbox.c: a pod's network namespace through CNI ---- */
typedef struct ck_sandbox_cfg {
    const char *root;          /* kubelet root dir (netns files, IPAM data) */
    const char *cni_bin;       /* /usr/lib/cni */
    const char *bridge;        /* ckube0 */
    const char *pod_cidr;      /* 10.244.0.0/24 */
} ck_sandbox_cfg;
/* Creates ROOT/netns/<id> and runs CNI ADD (loopback, bridge+host-local, then portmap when
 * port_mappings, a CNI portMappings array, is not empty); *ip gets the pod IP. */
int ck_sandbox_create(const ck_sandbox_cfg *c, const char *id, const json_t *port_mappings,
                      char **netns, char **ip, ck_error **err);
/* The pod's hostPort mappings as CNI runtimeConfig portMappings (NEW array, maybe empty). */
json_t *ck_sandbox_port_mappings(const json_t *pod_spec);
/* CNI DEL and netns removal; safe to call on a half-made or missing sandbox. */
int ck_sandbox_destroy(const ck_sandbox_cfg *c, const char *id, ck_error **err);

/* ---- runtime.c: runc under a shim ---- */
typedef struct ck_runtime {
    const char *runc;          /* runtime binary: "runc" or "crun" */
    const char *root;          /* runtime state dir (--root) */
    const char *self_exe;      /* our binary, for the shim */
    int launcher_fd;           /* > 0: socket to the shim launcher (ck_runtime_launcher_start) */
    pid_t launcher_pid;
} ck_runtime;
/* Start / stop `ckube kubelet-shim --launcher`, which forks the shims (no exec per container).
 * Without it (start failed, or it died) ck_runtime_run executes the shim itself. */
void ck_runtime_launcher_start(ck_runtime *rt);
void ck_runtime_launcher_stop(ck_runtime *rt);
/* Run a bundle: the shim does `runc create` + `runc start` with stdout/stderr into log_path
 * (CRI format) and writes the exit code to exit_path when the container's init exits.  io: the
 * container's stdin is a pipe the shim keeps (CK_SHIM_STDIN, +CK_SHIM_STDIN_ONCE), its stdio a
 * pty (CK_SHIM_TTY: the bundle must say terminal: true); either way it serves attach on
 * bundle/attach.sock (attach.c).  Returns the container's init pid. */
enum { CK_SHIM_STDIN = 1, CK_SHIM_STDIN_ONCE = 2, CK_SHIM_TTY = 4 };
pid_t ck_runtime_run(const ck_runtime *rt, const char *id, const char *bundle,
                     const char *log_path, const char *exit_path, unsigned io, ck_error **err);
int ck_runtime_kill(const ck_runtime *rt, const char *id, int sig, ck_error **err);
int ck_runtime_delete(const ck_runtime *rt, const char *id, ck_error **err);
/* Signal a container whose init is pid: directly through a pidfd once pid is checked to be in
 * the container's cgroup (no runtime exec), else through `runc kill`. */
int ck_runtime_signal(const ck_runtime *rt, const char *id, pid_t pid, int sig, ck_error **err);
/* Remove a container whose init has exited: its cgroups (cgroup = its cgroupsPath) and the
 * runtime's state dir, without a runtime exec; `runc delete --force` if processes remain. */
int ck_runtime_forget(const ck_runtime *rt, const char *id, const char *cgroup, ck_error **err);
/* rm -rf --one-file-system, in process. */
void ck_rm_tree(const char *path);
/* Run argv (NULL-terminated) inside a running container; *out gets combined output (bounded). */
int ck_runtime_exec(const ck_runtime *rt, const char *id, char *const argv[], int timeout_ms,
                    char **out, ck_error **err);
/* Run a command; returns its exit status (0..255) or -1.  stdout+stderr captured into *out. */
int ck_run_cmd(char *const argv[], const char *stdin_data, char *const envp[], int timeout_ms,
               char **out, ck_error **err);
/* posix_spawn exe (path) with stdin/stdout/stderr = the fds (-1: /dev/null), extra_fd (if >= 0) as
 * fd 3, every other fd closed; envp NULL = ours.  Returns 0 or an errno value. */
int ck_spawn(pid_t *pid, const char *exe, char *const argv[], char *const envp[], int in_fd,
             int out_fd, int err_fd, int extra_fd);
/* tmp + rename without fsync: the kubelet's own files are rebuilt from the API after a crash. */
int ck_write_file_nosync(const char *path, const void *data, size_t len, int mode);
/* The `ckube kubelet-shim` entry point. */
int ck_shim_main(int argc, char **argv);

/* ---- attach.c: the container's own stdio for attach, through the shim's socket ---- */
/* The shim's end: a listener at DIR/attach.sock (0600). */
typedef struct ck_attach_srv ck_attach_srv;
ck_attach_srv *ck_attach_listen(const char *dir, ck_error **err);
/* What attaches get: stdin_fd (owned; -1 none; with stdin_once the first attach that asks takes
 * it), pty_fd (duplicated; -1 without a tty, else output is one stream and resizes apply to it). */
void ck_attach_set_io(ck_attach_srv *s, int stdin_fd, bool stdin_once, int pty_fd);
/* A console socket for `runc --console-socket *path`; ck_attach_console_recv (after runc ran)
 * returns the pty master it sent. */
int ck_attach_console_listen(ck_attach_srv *s, const char *dir, char **path, ck_error **err);
int ck_attach_console_recv(ck_attach_srv *s, int lfd, ck_error **err);
/* Poll integration: append the server's fds (at most max), then hand the same slice back. */
struct pollfd;
int ck_attach_pollfds(ck_attach_srv *s, struct pollfd *pf, int max);
void ck_attach_handle(ck_attach_srv *s, const struct pollfd *pf, int n);
/* Fan the container's output (stream 0 stdout, 1 stderr) out to the attached clients. */
void ck_attach_output(ck_attach_srv *s, int stream, const void *data, size_t len);
/* Close the listener and every client (their output ends: attaches see EOF); NULL is fine. */
void ck_attach_close(ck_attach_srv *s);
/* The kubelet's end: attach to the shim of the container whose dir is `dir`.  fds gets stdin,
 * stdout, stderr, pty master (-1 for what was not asked for or the container does not have: no
 * stdin without spec stdin or after a stdinOnce attach, no stderr with a tty). */
int ck_attach_connect(const char *dir, bool in, bool out, bool errs, int fds[4], ck_error **err);

/* ---- cgroups.c: QoS classes and pod cgroups ---- */
/* "Guaranteed", "Burstable" or "BestEffort" for a PodSpec, as upstream computes it. */
const char *ck_pod_qos(const json_t *spec);
typedef struct ck_pod_res {
    const char *qos;
    int64_t cpu_shares;        /* >= 2 */
    int64_t cpu_quota;         /* per 100 ms period; 0 = none */
    int64_t memory_limit;      /* bytes; 0 = none */
} ck_pod_res;
/* The pod-level cgroup settings (upstream's ResourceConfigForPod). */
void ck_pod_resources(const json_t *spec, ck_pod_res *out);
/* "/ckube/kubepods[/burstable|/besteffort]/pod<uid>"; caller frees. */
char *ck_pod_cgroup(const char *uid, const char *qos);
/* Makes the pod cgroup with its limits (v1 or v2); *path gets ck_pod_cgroup(). */
int ck_cgroup_create_pod(const json_t *spec, const char *uid, char **path, ck_error **err);
/* Removes the pod cgroup wherever it is (every hierarchy, every QoS parent) and the container
 * cgroups inside; returns how many are still there (busy: killed processes not gone yet). */
int ck_cgroup_remove_pod(const char *uid);
/* SIGKILL the processes still in the pod's cgroups (any hierarchy, any QoS parent): the last
 * resort when they outlived their containers; returns how many were signalled. */
int ck_cgroup_kill_pod(const char *uid);
/* rmdir one cgroup path ("/ckube/...") in every hierarchy; returns how many are still there. */
int ck_cgroup_remove(const char *path);
/* The host's cgroup layout. */
typedef enum { CK_CGROUP_V1, CK_CGROUP_HYBRID, CK_CGROUP_V2 } ck_cgroup_mode;
/* From mountinfo text (/proc/self/mountinfo): V2 when cgroup2 is mounted at root (the unified
 * mode), HYBRID for v1 controllers under root with a cgroup2 mount elsewhere, else V1. */
ck_cgroup_mode ck_cgroup_detect(const char *mountinfo, const char *root);
/* This host's mode (/proc/self/mountinfo, read once), or what ck_cgroup_set_root set. */
ck_cgroup_mode ck_cgroup_mode_get(void);
/* Use root instead of /sys/fs/cgroup, in the given mode (tests: a plain directory tree). */
void ck_cgroup_set_root(const char *root, ck_cgroup_mode mode);
/* runc's cpu shares -> cgroup v2 cpu.weight conversion. */
int64_t ck_cpu_shares_to_weight(int64_t shares);

/* What the pod requests of a resource ("cpu", "memory"), in milli-units, as upstream sums it:
 * app containers added up, each init container on its own, the larger wins (a request left out
 * defaults to its limit). */
int64_t ck_pod_request(const json_t *spec, const char *name);

/* ---- admit.c: the kubelet's admission of a pod (upstream's predicate admit handler) ---- */
typedef struct ck_node_alloc {
    int64_t cpu_milli, memory, pods;
} ck_node_alloc;
/* This machine's allocatable (= the capacity the Node reports). */
void ck_node_allocatable(ck_node_alloc *out);
/* spec against others (an array of the PodSpecs admitted and still active on the node): 0, or
 * -1 with upstream's reason ("OutOfpods", "OutOfcpu", "OutOfmemory", "NodePorts") and message
 * (both allocated; the pod status says "Pod was rejected: " + message). */
int ck_kubelet_admit(const json_t *spec, const json_t *others, const ck_node_alloc *alloc,
                     char **reason, char **message);

/* ---- oci.c: OCI runtime config from a PodSpec container ---- */
typedef struct ck_oci_input {
    const json_t *pod;
    const json_t *container;
    const ck_image *image;
    const char *rootfs;        /* mounted overlay */
    const char *netns;
    const char *cgroup_path;   /* "/ckube/kubepods/burstable/pod<uid>/<id>" */
    const char *pod_dir;       /* etc-hosts, resolv.conf, hostname files live here */
    json_t *env;               /* resolved env: array of "K=V" strings (borrowed) */
    json_t *mounts;            /* extra mounts from volumes (borrowed array of OCI mounts) */
} ck_oci_input;
json_t *ck_oci_config(const ck_oci_input *in, ck_error **err);

/* ---- logs.c: CRI log format ---- */
/* Append one CRI line "<rfc3339nano> <stream> <P|F> <text>\n" to buf (bounded). */
void ck_cri_format_time(int64_t wall_ns, char out[40]);
typedef struct ck_log_opts {
    bool follow, timestamps;
    long tail_lines;           /* -1 = all */
    int64_t since_ns;          /* 0 = all */
    long limit_bytes;          /* 0 = no limit */
} ck_log_opts;
/* Write the selected lines of a CRI log to fd/cb; for follow, keep going while alive() says the
 * container may still write. */
typedef int (*ck_log_write_cb)(void *ctx, const char *data, size_t len);
int ck_logs_read(const char *path, const ck_log_opts *o, ck_log_write_cb cb, void *ctx,
                 bool (*alive)(void *ctx), ck_error **err);

/* ---- node.c ---- */
int ck_node_register(ck_kubelet *k, ck_error **err);
void *ck_node_loop(void *arg);

/* ---- pods.c ---- */
int ck_pods_start(ck_kubelet *k, ck_error **err);
void ck_pods_stop(ck_kubelet *k);
/* The log file of a container ("" container = the only one); caller frees. */
char *ck_pods_log_path(ck_kubelet *k, const char *ns, const char *pod, const char *container,
                       bool previous, bool *running, ck_error **err);

/* The runtime id of a running container and the pod's netns path (either out may be NULL;
 * container "" = the first app container); CK_E_NOT_FOUND with upstream's wording if none. */
int ck_pods_exec_target(ck_kubelet *k, const char *ns, const char *pod, const char *container,
                        char **id, char **netns, ck_error **err);
/* The same, and (dir may be NULL) the running container's directory (its attach socket). */
int ck_pods_attach_target(ck_kubelet *k, const char *ns, const char *pod, const char *container,
                          char **id, char **netns, char **dir, ck_error **err);

/* ---- streaming.c: exec, attach, port-forward (src/streams) ---- */
void ck_kubelet_streaming_serve(ck_kubelet *k, ck_http_req *req, ck_http_resp *resp);

/* ---- serve.c ---- */
int ck_serve_start(ck_kubelet *k, ck_error **err);
void ck_serve_stop(ck_kubelet *k);

/* ---- the kubelet ---- */
struct ck_kubelet {
    ck_client *client;
    char *node_name;
    char *root;                /* --root-dir, absolute */
    char *pod_cidr;
    char *node_ip;
    long port;
    ck_runtime rt;
    ck_sandbox_cfg sb;
    volatile bool stop;
    struct ck_pods *pods;      /* pods.c state */
    struct ck_httpd *httpd;
    char *cert_file, *key_file, *client_ca;
};

#endif
