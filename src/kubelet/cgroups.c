/* cgroups.c - pod QoS classes and the pod cgroups, laid out as upstream's cgroupfs driver does
 * under the kubelet's cgroup root /ckube:
 *
 *   /ckube/kubepods/pod<uid>/<container>             Guaranteed
 *   /ckube/kubepods/burstable/pod<uid>/<container>   Burstable
 *   /ckube/kubepods/besteffort/pod<uid>/<container>  BestEffort (the QoS cgroup has cpu shares 2)
 *
 * The QoS class is upstream's GetPodQOS over cpu and memory of init and app containers (a
 * request left out defaults to its limit, as API defaulting does).  The pod cgroup carries the
 * pod's own limits (upstream's ResourceConfigForPod): cpu shares from the summed requests, a CFS
 * quota and a memory limit only when every container sets that limit (an init container counts
 * as max(init, sum of app containers)).  The kubelet writes them before runc creates the
 * container cgroups inside.  cgroup v1 (the cpu and memory hierarchies; also on hybrid hosts,
 * whose cgroup2 mount beside them has no controllers) or, when /proc/self/mountinfo shows
 * cgroup2 mounted at /sys/fs/cgroup (the unified mode, as runc decides it), v2: cpu, io, memory
 * and pids enabled in cgroup.subtree_control from the root down to the pod cgroup, cpu.weight
 * (runc's conversion of the shares), cpu.max, memory.max, pids.max.  The root and mode can be
 * set (ck_cgroup_set_root) so tests run the same code on a directory tree.  Removal looks in every hierarchy and every QoS parent, so it needs no
 * pod spec (a pod deleted while the kubelet was down is cleaned up too).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kubelet/kubelet.h"
#include "lib/quantity.h"
#include "lib/util.h"

#define CG_ROOT "/sys/fs/cgroup"
#define QOS_ROOT "/ckube/kubepods"
#define CFS_PERIOD 100000

static const char *const qos_parents[] = {QOS_ROOT, QOS_ROOT "/burstable", QOS_ROOT "/besteffort",
                                          "/ckube" /* layout before QoS cgroups */};

/* a quantity of cpu or memory in milli-units; 0 when absent or not positive */
static int64_t qty(const json_t *list, const char *name)
{
    const char *s = json_string_value(json_object_get(list, name));
    int64_t v;
    return s && ck_quantity_parse_milli(s, &v) == 0 && v > 0 ? v : 0;
}

const char *ck_pod_qos(const json_t *spec)
{
    static const char *const names[] = {"cpu", "memory"};
    int64_t req[2] = {0, 0}, lim[2] = {0, 0};
    bool any_req[2] = {false, false}, any_lim[2] = {false, false};
    bool guaranteed = true;
    static const char *const lists[] = {"initContainers", "containers"};
    for (size_t l = 0; l < 2; l++) {
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(spec, lists[l]), i, c) {
            json_t *res = json_object_get(c, "resources");
            json_t *rq = json_object_get(res, "requests"), *lm = json_object_get(res, "limits");
            for (size_t n = 0; n < 2; n++) {
                int64_t q = qty(rq, names[n]), m = qty(lm, names[n]);
                if (!json_object_get(rq, names[n]))
                    q = m;   /* API defaulting: requests default to limits */
                if (q) {
                    req[n] += q;
                    any_req[n] = true;
                }
                if (m) {
                    lim[n] += m;
                    any_lim[n] = true;
                } else {
                    guaranteed = false;   /* every container must limit cpu and memory */
                }
            }
        }
    }
    if (!any_req[0] && !any_req[1] && !any_lim[0] && !any_lim[1])
        return "BestEffort";
    if (!guaranteed)
        return "Burstable";
    for (size_t n = 0; n < 2; n++)
        if (any_req[n] != any_lim[n] || req[n] != lim[n])
            return "Burstable";
    return "Guaranteed";
}

/* Sum over app containers, then max with each init container (they run one at a time). */
static int64_t pod_total(const json_t *spec, const char *which, const char *name, bool *all)
{
    int64_t sum = 0, init_max = 0;
    size_t i;
    json_t *c;
    *all = true;
    bool any = false;
    json_array_foreach(json_object_get(spec, "containers"), i, c) {
        json_t *res = json_object_get(c, "resources");
        int64_t v = qty(json_object_get(res, which), name);
        if (!strcmp(which, "requests") && !json_object_get(json_object_get(res, "requests"), name))
            v = qty(json_object_get(res, "limits"), name);
        if (!v)
            *all = false;
        sum += v;
        any = true;
    }
    json_array_foreach(json_object_get(spec, "initContainers"), i, c) {
        json_t *res = json_object_get(c, "resources");
        int64_t v = qty(json_object_get(res, which), name);
        if (!strcmp(which, "requests") && !json_object_get(json_object_get(res, "requests"), name))
            v = qty(json_object_get(res, "limits"), name);
        if (!v)
            *all = false;
        if (v > init_max)
            init_max = v;
    }
    if (!any)
        *all = false;
    return sum > init_max ? sum : init_max;
}

int64_t ck_pod_request(const json_t *spec, const char *name)
{
    bool all;
    return pod_total(spec, "requests", name, &all);
}

void ck_pod_resources(const json_t *spec, ck_pod_res *out)
{
    const char *qos = ck_pod_qos(spec);
    bool all_cpu, all_mem, dummy;
    int64_t cpu_req = pod_total(spec, "requests", "cpu", &dummy);
    int64_t cpu_lim = pod_total(spec, "limits", "cpu", &all_cpu);
    int64_t mem_lim = pod_total(spec, "limits", "memory", &all_mem);
    memset(out, 0, sizeof *out);
    out->qos = qos;
    /* upstream's MilliCPUToShares: 1024 per CPU, at least 2; BestEffort gets the minimum */
    out->cpu_shares = 2;
    if (strcmp(qos, "BestEffort") && cpu_req * 1024 / 1000 > 2)
        out->cpu_shares = cpu_req * 1024 / 1000;
    if (all_cpu && cpu_lim > 0) {
        out->cpu_quota = cpu_lim * CFS_PERIOD / 1000;
        if (out->cpu_quota < 1000)
            out->cpu_quota = 1000;   /* the kernel's minimum quota */
    }
    if (all_mem && mem_lim > 0)
        out->memory_limit = mem_lim / 1000;
}

char *ck_pod_cgroup(const char *uid, const char *qos)
{
    if (!strcmp(qos, "Guaranteed"))
        return xasprintf(QOS_ROOT "/pod%s", uid);
    return xasprintf(QOS_ROOT "/%s/pod%s", !strcmp(qos, "Burstable") ? "burstable" : "besteffort", uid);
}

/* ---------------- the cgroup filesystem ---------------- */

static pthread_once_t mode_once = PTHREAD_ONCE_INIT;
static char cg_root[256] = CG_ROOT;
static ck_cgroup_mode cg_mode;
static bool cg_mode_set;

ck_cgroup_mode ck_cgroup_detect(const char *mountinfo, const char *root)
{
    /* as runc decides (statfs of the root): cgroup2 mounted at the root is the unified mode;
     * v1 controller mounts beside a cgroup2 mount elsewhere is hybrid, which runs as v1 */
    bool v1 = false, v2_elsewhere = false;
    size_t rl = strlen(root);
    for (const char *line = mountinfo; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char buf[1024];
        snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf ? len : sizeof buf - 1), line);
        line = eol ? eol + 1 : NULL;
        /* "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS...] - FSTYPE SOURCE SUPEROPTS" */
        char mp[512] = "", fstype[64] = "";
        const char *sep = strstr(buf, " - ");
        if (!sep || sscanf(buf, "%*s %*s %*s %*s %511s", mp) != 1 ||
            sscanf(sep + 3, "%63s", fstype) != 1)
            continue;
        bool under = !strncmp(mp, root, rl) && (mp[rl] == '\0' || mp[rl] == '/');
        if (!strcmp(fstype, "cgroup2") && !strcmp(mp, root))
            return CK_CGROUP_V2;
        if (!strcmp(fstype, "cgroup2"))
            v2_elsewhere = true;
        else if (!strcmp(fstype, "cgroup") && under)
            v1 = true;
    }
    return v1 && v2_elsewhere ? CK_CGROUP_HYBRID : CK_CGROUP_V1;
}

static void detect_mode(void)
{
    if (cg_mode_set)
        return;
    cleanup_free char *mi = NULL;
    size_t len;
    cg_mode = ck_read_file("/proc/self/mountinfo", 1 << 22, &mi, &len) == 0
                  ? ck_cgroup_detect(mi, CG_ROOT) : CK_CGROUP_V1;
}

ck_cgroup_mode ck_cgroup_mode_get(void)
{
    pthread_once(&mode_once, detect_mode);
    return cg_mode;
}

void ck_cgroup_set_root(const char *root, ck_cgroup_mode mode)
{
    snprintf(cg_root, sizeof cg_root, "%s", root);
    cg_mode = mode;
    cg_mode_set = true;
}

static bool unified(void)
{
    return ck_cgroup_mode_get() == CK_CGROUP_V2;
}

/* O_CREAT: a control file of a real cgroup exists already (the kernel refuses to create
 * others); a test's plain directory tree gets the file */
static int write_val(const char *dir, const char *file, const char *val, ck_error **err)
{
    cleanup_free char *path = xasprintf("%s/%s", dir, file);
    cleanup_close int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, val, strlen(val)) < 0)
        return ck_error_sys(err, CK_E_IO, "write %s to %s", val, path);
    return 0;
}

/* The controllers the pod cgroups use, in the order written to cgroup.subtree_control. */
static const char *const v2_wanted[] = {"cpu", "io", "memory", "pids"};

/* w is a word of the space-separated list */
static bool has_word(const char *list, const char *w)
{
    size_t wl = strlen(w);
    for (const char *q = list; (q = strstr(q, w)); q += wl)
        if ((q == list || q[-1] == ' ') && (q[wl] == '\0' || q[wl] == ' ' || q[wl] == '\n'))
            return true;
    return false;
}

/* v2: from the root down to path (inclusive: runc makes the container cgroups inside it),
 * each cgroup hands the wanted controllers it has to its children.  A level's cgroup.controllers
 * lists what its parent handed down; where it cannot be read (a test tree) the parent's grant
 * stands in, as the kernel would fill it.  have (128 bytes) gets path's own controllers. */
static int v2_enable(const char *path, char *have, ck_error **err)
{
    cleanup_free char *cur = xstrdup(cg_root);
    cleanup_free char *copy = xstrdup(path);
    char granted[128] = "";
    bool top = true;
    char *save = NULL;
    char *t = strtok_r(copy, "/", &save);
    for (;;) {
        cleanup_free char *cpath = xasprintf("%s/cgroup.controllers", cur);
        cleanup_free char *avail = NULL;
        size_t len;
        if (ck_read_file(cpath, 4096, &avail, &len) < 0) {
            free(avail);
            avail = xstrdup(top ? "" : granted);
        }
        top = false;
        snprintf(have, 128, "%s", avail);
        char line[128] = "";
        size_t n = 0;
        granted[0] = '\0';
        for (size_t i = 0; i < ARRAY_SIZE(v2_wanted); i++)
            if (has_word(avail, v2_wanted[i])) {
                n += (size_t)snprintf(line + n, sizeof line - n, "%s+%s", n ? " " : "", v2_wanted[i]);
                snprintf(granted + strlen(granted), sizeof granted - strlen(granted), "%s%s",
                         *granted ? " " : "", v2_wanted[i]);
            }
        if (n && write_val(cur, "cgroup.subtree_control", line, err) < 0)
            return -1;
        if (!t)
            return 0;
        char *next = xasprintf("%s/%s", cur, t);
        free(cur);
        cur = next;
        if (mkdir(cur, 0755) < 0 && errno != EEXIST)
            return ck_error_sys(err, CK_E_IO, "mkdir %s", cur);
        t = strtok_r(NULL, "/", &save);
    }
}

/* runc's conversion of cpu shares [2, 262144] to cpu.weight [1, 10000] */
int64_t ck_cpu_shares_to_weight(int64_t shares)
{
    if (shares < 2)
        shares = 2;
    if (shares > 262144)
        shares = 262144;
    return 1 + (shares - 2) * 9999 / 262142;
}

static int create_v2(const char *cg, const ck_pod_res *res, ck_error **err)
{
    char v[64], have[128];
    cleanup_free char *be = xasprintf("%s%s/besteffort", cg_root, QOS_ROOT);
    if (v2_enable(QOS_ROOT "/besteffort", have, err) < 0)
        return -1;
    if (has_word(have, "cpu"))
        write_val(be, "cpu.weight", "1", NULL);   /* shares 2, as on v1 */
    if (v2_enable(cg, have, err) < 0)
        return -1;
    /* a limit the pod asks for needs its controller; what it does not ask for can go without */
    if ((res->cpu_quota && !has_word(have, "cpu")) || (res->memory_limit && !has_word(have, "memory")))
        return ck_error_set(err, CK_E_INTERNAL, "cgroup v2 controllers cpu/memory not available "
                            "in %s%s (have \"%s\")", cg_root, cg, have);
    cleanup_free char *dir = xasprintf("%s%s", cg_root, cg);
    if (has_word(have, "cpu")) {
        snprintf(v, sizeof v, "%lld", (long long)ck_cpu_shares_to_weight(res->cpu_shares));
        if (write_val(dir, "cpu.weight", v, err) < 0)
            return -1;
        if (res->cpu_quota)
            snprintf(v, sizeof v, "%lld %d", (long long)res->cpu_quota, CFS_PERIOD);
        else
            snprintf(v, sizeof v, "max %d", CFS_PERIOD);
        if (write_val(dir, "cpu.max", v, err) < 0)
            return -1;
    }
    if (has_word(have, "memory")) {
        if (res->memory_limit)
            snprintf(v, sizeof v, "%lld", (long long)res->memory_limit);
        else
            snprintf(v, sizeof v, "max");
        if (write_val(dir, "memory.max", v, err) < 0)
            return -1;
    }
    /* no pod-level pids limit (upstream's podPidsLimit defaults to none); each container has
     * its own from the OCI config */
    if (has_word(have, "pids") && write_val(dir, "pids.max", "max", err) < 0)
        return -1;
    return 0;
}

static int create_v1(const char *cg, const ck_pod_res *res, ck_error **err)
{
    /* the cpu and memory hierarchies; runc makes the others when it creates the container
     * cgroup (and fills cpuset from the parents) */
    char v[32];
    cleanup_free char *be = xasprintf("%s/cpu" QOS_ROOT "/besteffort", cg_root);
    ck_mkdir_p(be, 0755);
    write_val(be, "cpu.shares", "2", NULL);
    cleanup_free char *cpu = xasprintf("%s/cpu%s", cg_root, cg);
    cleanup_free char *mem = xasprintf("%s/memory%s", cg_root, cg);
    ck_mkdir_p(cpu, 0755);
    ck_mkdir_p(mem, 0755);
    snprintf(v, sizeof v, "%lld", (long long)res->cpu_shares);
    if (write_val(cpu, "cpu.shares", v, err) < 0)
        return -1;
    snprintf(v, sizeof v, "%d", CFS_PERIOD);
    if (write_val(cpu, "cpu.cfs_period_us", v, err) < 0)
        return -1;
    snprintf(v, sizeof v, "%lld", res->cpu_quota ? (long long)res->cpu_quota : -1LL);
    if (write_val(cpu, "cpu.cfs_quota_us", v, err) < 0)
        return -1;
    snprintf(v, sizeof v, "%lld", res->memory_limit ? (long long)res->memory_limit : -1LL);
    return write_val(mem, "memory.limit_in_bytes", v, err);
}

int ck_cgroup_create_pod(const json_t *spec, const char *uid, char **path, ck_error **err)
{
    ck_pod_res res;
    ck_pod_resources(spec, &res);
    char *cg = ck_pod_cgroup(uid, res.qos);
    int rc = unified() ? create_v2(cg, &res, err) : create_v1(cg, &res, err);
    if (rc < 0) {
        free(cg);
        return ck_error_wrap(err, "pod cgroup %s", uid);
    }
    *path = cg;
    return 0;
}

/* Apply fn to each child cgroup (a container's) of a pod cgroup; returns the sum of its results. */
static int each_child(const char *path, int (*fn)(const char *path))
{
    DIR *pd = opendir(path);
    if (!pd)
        return 0;
    int sum = 0;
    struct dirent *ce;
    while ((ce = readdir(pd))) {
        if (ce->d_type != DT_DIR || ce->d_name[0] == '.')
            continue;
        char sub[1024];
        snprintf(sub, sizeof sub, "%s/%s", path, ce->d_name);
        sum += fn(sub);
    }
    closedir(pd);
    return sum;
}

static int rmdir_quiet(const char *path)
{
    rmdir(path);
    return 0;
}

static int rmdir_pod(const char *path)
{
    each_child(path, rmdir_quiet);
    return rmdir(path) < 0 && errno != ENOENT ? 1 : 0;
}

/* SIGKILL every process listed in one cgroup's cgroup.procs; returns how many were signalled. */
static int kill_procs(const char *dir)
{
    char file[1100];
    snprintf(file, sizeof file, "%s/cgroup.procs", dir);
    FILE *f = fopen(file, "r");
    if (!f)
        return 0;
    int n = 0;
    long pid;
    while (fscanf(f, "%ld", &pid) == 1)
        if (pid > 1 && kill((pid_t)pid, SIGKILL) == 0)
            n++;
    fclose(f);
    return n;
}

/* A pod cgroup and its container cgroups: kill what is left in them, for rmdir to succeed. */
static int kill_pod(const char *path)
{
    return kill_procs(path) + each_child(path, kill_procs);
}

/* Calls fn with every hierarchy's root: the unified one, or each v1 controller's directory
 * (co-mount symlinks skipped); returns the sum of fn's results. */
static int each_hierarchy(int (*fn)(const char *hier, const void *arg), const void *arg)
{
    if (unified())
        return fn(cg_root, arg);
    DIR *d = opendir(cg_root);
    if (!d)
        return 0;
    int sum = 0;
    char hier[512];
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || e->d_type == DT_LNK)
            continue;
        snprintf(hier, sizeof hier, "%s/%s", cg_root, e->d_name);
        sum += fn(hier, arg);
    }
    closedir(d);
    return sum;
}

struct pod_fn {
    const char *uid;
    int (*fn)(const char *path);
};

static int pod_in_hierarchy(const char *hier, const void *arg)
{
    const struct pod_fn *pf = arg;
    int sum = 0;
    char path[1024];
    for (size_t q = 0; q < ARRAY_SIZE(qos_parents); q++) {
        snprintf(path, sizeof path, "%s%s/pod%s", hier, qos_parents[q], pf->uid);
        sum += pf->fn(path);
    }
    return sum;
}

/* Apply fn to the pod's cgroup under every hierarchy and every QoS parent (no pod spec needed:
 * a pod deleted while the kubelet was down is found too); returns the sum of fn's results. */
static int each_pod_cgroup(const char *uid, int (*fn)(const char *path))
{
    struct pod_fn pf = {uid, fn};
    return each_hierarchy(pod_in_hierarchy, &pf);
}

int ck_cgroup_remove_pod(const char *uid)
{
    return each_pod_cgroup(uid, rmdir_pod);
}

int ck_cgroup_kill_pod(const char *uid)
{
    return each_pod_cgroup(uid, kill_pod);
}

/* 1 when hier's cg is still there after rmdir (v1: a controller directory that is not one
 * does not count). */
static int rmdir_in_hierarchy(const char *hier, const void *cg)
{
    char path[1024];
    snprintf(path, sizeof path, "%s%s", hier, (const char *)cg);
    return rmdir(path) < 0 && errno != ENOENT && (unified() || errno != ENOTDIR);
}

int ck_cgroup_remove(const char *cg)
{
    return each_hierarchy(rmdir_in_hierarchy, cg);
}
