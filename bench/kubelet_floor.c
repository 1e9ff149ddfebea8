/* kubelet_floor - what starting N pods costs with no ckube at all: the floor under bench/kubelet.sh.
 *
 * Usage (root; run by bench/kubelet_floor.sh): kubelet_floor N P MODE TEMPLATE WORKDIR CNI_BIN
 * For N "pods" taken by P threads it does only the parts a pod start cannot skip, as directly as
 * possible: a network namespace (unshare in the thread, bind mount, lo up), CNI `bridge` ADD
 * (with host-local IPAM, bridge ckfloor0, 10.244.200.0/24), an overlay rootfs over the template's
 * rootfs, and `runc run --detach` of `sleep 3600` (config = TEMPLATE/config.json with the netns
 * and a cgroup /ckfloor/pI).  MODE: all | cni (netns + CNI only) | runc (overlay + runc only).
 * All pods start at t0; prints wall time, completion p50/p99, and the CPU used by this process
 * and its waited-for children (runc init's CPU after its parent exits is not in it).  Then it
 * tears everything down (runc delete, CNI DEL, unmounts) and prints how long that took.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int n_pods, n_threads;
static const char *mode, *tmpl, *work, *cni_bin;
static json_t *tmpl_cfg;
static atomic_int next_pod;
static double *done_at;
static double t0;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Spawn argv with stdin from `in` (may be NULL), output discarded; wait; exit status. */
static int run(char *const argv[], char *const envp[], const char *in)
{
    int p[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (in) {
        if (pipe2(p, O_CLOEXEC) < 0)
            return -1;
        posix_spawn_file_actions_adddup2(&fa, p[0], 0);
    } else {
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    }
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp ? envp : environ);
    posix_spawn_file_actions_destroy(&fa);
    if (in) {
        close(p[0]);
        if (rc == 0 && write(p[1], in, strlen(in)) < 0)
            rc = errno;
        close(p[1]);
    }
    if (rc != 0)
        return -1;
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int cni(const char *cmd, int i)
{
    char conf[1024], e_cmd[64], e_id[64], e_ns[512], e_path[512], exe[512];
    snprintf(conf, sizeof conf,
             "{\"cniVersion\":\"1.0.0\",\"name\":\"ckfloor\",\"type\":\"bridge\",\"bridge\":"
             "\"ckfloor0\",\"isGateway\":true,\"ipMasq\":false,\"hairpinMode\":true,\"ipam\":"
             "{\"type\":\"host-local\",\"ranges\":[[{\"subnet\":\"10.244.200.0/24\"}]],"
             "\"routes\":[{\"dst\":\"0.0.0.0/0\"}],\"dataDir\":\"%s/cni\"}}", work);
    snprintf(e_cmd, sizeof e_cmd, "CNI_COMMAND=%s", cmd);
    snprintf(e_id, sizeof e_id, "CNI_CONTAINERID=floor-%d", i);
    snprintf(e_ns, sizeof e_ns, "CNI_NETNS=%s/netns-%d", work, i);
    snprintf(e_path, sizeof e_path, "CNI_PATH=%s", cni_bin);
    snprintf(exe, sizeof exe, "%s/bridge", cni_bin);
    char *envp[] = {e_cmd, e_id, e_ns, "CNI_IFNAME=eth0", e_path, "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    char *argv[] = {exe, NULL};
    return run(argv, envp, conf);
}

static int netns(int i)
{
    char path[512];
    snprintf(path, sizeof path, "%s/netns-%d", work, i);
    int fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0444);
    if (fd < 0)
        return -1;
    close(fd);
    int orig = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (orig < 0 || unshare(CLONE_NEWNET) < 0)
        return -1;
    int rc = mount("/proc/thread-self/ns/net", path, NULL, MS_BIND, NULL);
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    if (s >= 0)
        close(s);
    if (setns(orig, CLONE_NEWNET) < 0)
        abort();
    close(orig);
    return rc;
}

static int container(int i)
{
    char dir[512], sub[600], opts[2048], nspath[512], cg[64], id[32];
    snprintf(dir, sizeof dir, "%s/p%d", work, i);
    mkdir(dir, 0755);
    const char *subs[] = {"upper", "work", "rootfs"};
    for (int k = 0; k < 3; k++) {
        snprintf(sub, sizeof sub, "%s/%s", dir, subs[k]);
        mkdir(sub, 0755);
    }
    snprintf(opts, sizeof opts, "lowerdir=%s/rootfs,upperdir=%s/upper,workdir=%s/work", tmpl, dir, dir);
    snprintf(sub, sizeof sub, "%s/rootfs", dir);
    if (mount("overlay", sub, "overlay", 0, opts) < 0)
        return -1;
    json_t *cfg = json_deep_copy(tmpl_cfg);
    json_object_set_new(json_object_get(cfg, "root"), "path", json_string(sub));
    json_object_set_new(json_object_get(cfg, "root"), "readonly", json_false());
    snprintf(cg, sizeof cg, "/ckfloor/p%d", i);
    json_object_set_new(json_object_get(cfg, "linux"), "cgroupsPath", json_string(cg));
    snprintf(nspath, sizeof nspath, "%s/netns-%d", work, i);
    size_t k;
    json_t *ns;
    json_array_foreach(json_object_get(json_object_get(cfg, "linux"), "namespaces"), k, ns)
        if (!strcmp(json_string_value(json_object_get(ns, "type")) ?: "", "network")) {
            if (!strcmp(mode, "runc"))
                json_object_del(ns, "path");
            else
                json_object_set_new(ns, "path", json_string(nspath));
        }
    snprintf(sub, sizeof sub, "%s/config.json", dir);
    int rc = json_dump_file(cfg, sub, JSON_COMPACT);
    json_decref(cfg);
    if (rc < 0)
        return -1;
    snprintf(id, sizeof id, "floor-%d", i);
    char root[600];
    snprintf(root, sizeof root, "%s/runc", work);
    char *argv[] = {"/usr/sbin/runc", "--root", root, "run", "--detach", "--bundle", dir, id, NULL};
    return run(argv, NULL, NULL);
}

static void *worker(void *arg)
{
    (void)arg;
    int i;
    while ((i = atomic_fetch_add(&next_pod, 1)) < n_pods) {
        bool net = strcmp(mode, "runc"), ctr = strcmp(mode, "cni");
        if (net && (netns(i) < 0 || cni("ADD", i) != 0))
            fprintf(stderr, "pod %d: netns/CNI failed\n", i);
        if (ctr && container(i) != 0)
            fprintf(stderr, "pod %d: container failed\n", i);
        done_at[i] = now() - t0;
    }
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double cpu_ms(void)
{
    struct rusage s, c;
    getrusage(RUSAGE_SELF, &s);
    getrusage(RUSAGE_CHILDREN, &c);
    return (s.ru_utime.tv_sec + s.ru_stime.tv_sec + c.ru_utime.tv_sec + c.ru_stime.tv_sec) * 1e3 +
           (s.ru_utime.tv_usec + s.ru_stime.tv_usec + c.ru_utime.tv_usec + c.ru_stime.tv_usec) / 1e3;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: kubelet_floor N P all|cni|runc TEMPLATE WORKDIR CNI_BIN\n");
        return 2;
    }
    n_pods = atoi(argv[1]);
    n_threads = atoi(argv[2]);
    mode = argv[3];
    tmpl = argv[4];
    work = argv[5];
    cni_bin = argv[6];
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", tmpl);
    tmpl_cfg = json_load_file(path, 0, NULL);
    if (n_pods < 1 || n_threads < 1 || !tmpl_cfg) {
        fprintf(stderr, "kubelet_floor: bad arguments or no %s\n", path);
        return 2;
    }
    done_at = calloc((size_t)n_pods, sizeof *done_at);
    pthread_t *th = calloc((size_t)n_threads, sizeof *th);
    double c0 = cpu_ms();
    t0 = now();
    for (int i = 0; i < n_threads; i++)
        pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < n_threads; i++)
        pthread_join(th[i], NULL);
    double wall = now() - t0, cpu = cpu_ms() - c0;
    qsort(done_at, (size_t)n_pods, sizeof *done_at, cmp);
    printf("floor mode=%s pods=%d threads=%d: all started %.2fs, p50=%.0fms p99=%.0fms, "
           "%.1f pods/s, CPU %.1f ms/pod (+ runc init)\n", mode, n_pods, n_threads, wall,
           done_at[n_pods / 2] * 1e3, done_at[n_pods * 99 / 100] * 1e3, n_pods / wall,
           cpu / n_pods);
    fflush(stdout);
    /* teardown */
    double t1 = now();
    char root[600];
    snprintf(root, sizeof root, "%s/runc", work);
    for (int i = 0; i < n_pods; i++) {
        char id[32], p[600];
        snprintf(id, sizeof id, "floor-%d", i);
        if (strcmp(mode, "cni")) {
            char *a[] = {"/usr/sbin/runc", "--root", root, "delete", "--force", id, NULL};
            run(a, NULL, NULL);
            snprintf(p, sizeof p, "%s/p%d/rootfs", work, i);
            umount2(p, MNT_DETACH);
        }
        if (strcmp(mode, "runc")) {
            cni("DEL", i);
            snprintf(p, sizeof p, "%s/netns-%d", work, i);
            umount2(p, MNT_DETACH);
            unlink(p);
        }
    }
    printf("floor teardown: %.2fs\n", now() - t1);
    json_decref(tmpl_cfg);
    free(done_at);
    free(th);
    return 0;
}
