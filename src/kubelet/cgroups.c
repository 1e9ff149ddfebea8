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
 * container cgroups inside.  cgroup v1 (the cpu and memory hierarchies) or, when
 * /sys/fs/cgroup is a cgroup2 mount, v2 (cpu.weight, cpu.max, memory.max, with the controllers
 * enabled down the path).  Removal looks in every hierarchy and every QoS parent, so it needs no
 * pod spec (a pod deleted while the kubelet was down is cleaned up too).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

static int write_val(const char *dir, const char *file, const char *val, ck_error **err)
{
    cleanup_free char *path = xasprintf("%s/%s", dir, file);
    cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, val, strlen(val)) < 0)
        return ck_error_sys(err, CK_E_IO, "write %s to %s", val, path);
    return 0;
}

static bool cgroup2_unified(void)
{
    return access(CG_ROOT "/cgroup.controllers", F_OK) == 0;
}

/* v2: every cgroup from the root down to path's parent hands cpu and memory to its children. */
static void v2_enable(const char *path)
{
    cleanup_free char *cur = xstrdup(CG_ROOT);
    cleanup_free char *copy = xstrdup(path);
    char *save = NULL;
    for (char *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        write_val(cur, "cgroup.subtree_control", "+cpu +memory", NULL);
        char *next = xasprintf("%s/%s", cur, t);
        free(cur);
        cur = next;
        mkdir(cur, 0755);
    }
}

int ck_cgroup_create_pod(const json_t *spec, const char *uid, char **path, ck_error **err)
{
    ck_pod_res res;
    ck_pod_resources(spec, &res);
    char *cg = ck_pod_cgroup(uid, res.qos);
    char v[32];
    int rc = 0;
    if (cgroup2_unified()) {
        cleanup_free char *besteffort = xstrdup(QOS_ROOT "/besteffort/x");
        v2_enable(besteffort);
        write_val(CG_ROOT QOS_ROOT "/besteffort", "cpu.weight", "1", NULL);
        cleanup_free char *child = xasprintf("%s/x", cg);
        v2_enable(child);
        cleanup_free char *dir = xasprintf(CG_ROOT "%s", cg);
        /* shares -> weight as runc converts them: 1 + (shares - 2) * 9999 / 262142 */
        snprintf(v, sizeof v, "%lld", (long long)(1 + (res.cpu_shares - 2) * 9999 / 262142));
        rc = write_val(dir, "cpu.weight", v, err);
        if (rc == 0) {
            if (res.cpu_quota)
                snprintf(v, sizeof v, "%lld %d", (long long)res.cpu_quota, CFS_PERIOD);
            else
                snprintf(v, sizeof v, "max %d", CFS_PERIOD);
            rc = write_val(dir, "cpu.max", v, err);
        }
        if (rc == 0) {
            if (res.memory_limit)
                snprintf(v, sizeof v, "%lld", (long long)res.memory_limit);
            else
                snprintf(v, sizeof v, "max");
            rc = write_val(dir, "memory.max", v, err);
        }
    } else {
        /* v1: the cpu and memory hierarchies; runc makes the others when it creates the
         * container cgroup (and fills cpuset from the parents) */
        cleanup_free char *be = xasprintf(CG_ROOT "/cpu" QOS_ROOT "/besteffort");
        ck_mkdir_p(be, 0755);
        write_val(be, "cpu.shares", "2", NULL);
        cleanup_free char *cpu = xasprintf(CG_ROOT "/cpu%s", cg);
        cleanup_free char *mem = xasprintf(CG_ROOT "/memory%s", cg);
        ck_mkdir_p(cpu, 0755);
        ck_mkdir_p(mem, 0755);
        snprintf(v, sizeof v, "%lld", (long long)res.cpu_shares);
        rc = write_val(cpu, "cpu.shares", v, err);
        if (rc == 0) {
            snprintf(v, sizeof v, "%d", CFS_PERIOD);
            rc = write_val(cpu, "cpu.cfs_period_us", v, err);
        }
        if (rc == 0) {
            snprintf(v, sizeof v, "%lld", res.cpu_quota ? (long long)res.cpu_quota : -1LL);
            rc = write_val(cpu, "cpu.cfs_quota_us", v, err);
        }
        if (rc == 0) {
            snprintf(v, sizeof v, "%lld", res.memory_limit ? (long long)res.memory_limit : -1LL);
            rc = write_val(mem, "memory.limit_in_bytes", v, err);
        }
    }
    if (rc < 0) {
        free(cg);
        return ck_error_wrap(err, "pod cgroup %s", uid);
    }
    *path = cg;
    return 0;
}

static int rmdir_pod(const char *path)
{
    DIR *pd = opendir(path);
    struct dirent *ce;
    while (pd && (ce = readdir(pd))) {
        if (ce->d_type != DT_DIR || ce->d_name[0] == '.')
            continue;
        char sub[1024];
        snprintf(sub, sizeof sub, "%s/%s", path, ce->d_name);
        rmdir(sub);
    }
    if (pd)
        closedir(pd);
    return rmdir(path) < 0 && errno != ENOENT ? 1 : 0;
}

/* rmdir the pod's cgroup (and container cgroups left inside) in every hierarchy and QoS
 * parent; returns how many are still there. */
static int cgroup_remove_once(const char *uid)
{
    int left = 0;
    char path[512];
    if (cgroup2_unified()) {
        for (size_t q = 0; q < ARRAY_SIZE(qos_parents); q++) {
            snprintf(path, sizeof path, CG_ROOT "%s/pod%s", qos_parents[q], uid);
            left += rmdir_pod(path);
        }
        return left;
    }
    DIR *d = opendir(CG_ROOT);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        for (size_t q = 0; q < ARRAY_SIZE(qos_parents); q++) {
            snprintf(path, sizeof path, CG_ROOT "/%s%s/pod%s", e->d_name, qos_parents[q], uid);
            left += rmdir_pod(path);
        }
    }
    closedir(d);
    return left;
}

int ck_cgroup_remove_pod(const char *uid)
{
    return cgroup_remove_once(uid);
}

int ck_cgroup_remove(const char *cg)
{
    int left = 0;
    char path[1024];
    if (cgroup2_unified()) {
        snprintf(path, sizeof path, CG_ROOT "%s", cg);
        return rmdir(path) < 0 && errno != ENOENT ? 1 : 0;
    }
    DIR *d = opendir(CG_ROOT);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || e->d_type == DT_LNK)
            continue;
        snprintf(path, sizeof path, CG_ROOT "/%s%s", e->d_name, cg);
        left += rmdir(path) < 0 && errno != ENOENT && errno != ENOTDIR;
    }
    closedir(d);
    return left;
}
