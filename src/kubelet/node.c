/* node.c - the kubelet's Node: registration with the machine's real capacity, node info and
 * addresses, a Lease in kube-node-lease renewed every 10 s, and the node status (conditions,
 * heartbeat) refreshed every minute or when a pressure condition changes.
 *
 * Pressure conditions are read from the machine: MemoryPressure when MemAvailable < 100Mi,
 * DiskPressure when the root dir's filesystem has < 10% free, PIDPressure when fewer than 10% of
 * pid_max remain (upstream's default hard eviction thresholds).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "client/leader.h"
#include "kubelet/kubelet.h"
#include "lib/log.h"
#include "lib/util.h"
#include "version.h"

#define LEASE_PERIOD_MS 10000
#define STATUS_PERIOD_MS 60000

static const ck_resource *res(const char *group, const char *resource)
{
    return ck_resource_find(group, "v1", resource);
}

static long meminfo_kib(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "re");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static long read_long(const char *path)
{
    FILE *f = fopen(path, "re");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

static json_t *condition(const char *type, bool status, const char *reason, const char *msg,
                         const char *now)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", type, "status",
                     status ? "True" : "False", "reason", reason, "message", msg,
                     "lastHeartbeatTime", now, "lastTransitionTime", now);
}

static json_t *node_status(ck_kubelet *k)
{
    char now[32];
    ck_rfc3339(ck_wall_ns() / 1000000000, now);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long mem = meminfo_kib("MemTotal"), avail = meminfo_kib("MemAvailable");
    struct statvfs vfs;
    unsigned long long disk = 0, disk_free = 0;
    if (statvfs(k->root, &vfs) == 0) {
        disk = (unsigned long long)vfs.f_blocks * vfs.f_frsize;
        disk_free = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
    }
    char cpu_s[32], mem_s[32], disk_s[32];
    snprintf(cpu_s, sizeof cpu_s, "%ld", cpus > 0 ? cpus : 1);
    snprintf(mem_s, sizeof mem_s, "%ldKi", mem > 0 ? mem : 0);
    snprintf(disk_s, sizeof disk_s, "%llu", disk);
    json_t *cap = json_pack("{s:s, s:s, s:s, s:s}", "cpu", cpu_s, "memory", mem_s,
                            "ephemeral-storage", disk_s, "pods", "110");
    long pid_max = read_long("/proc/sys/kernel/pid_max");
    struct sysinfo si;
    long procs = sysinfo(&si) == 0 ? si.procs : 0;
    bool mem_p = avail >= 0 && avail < 100 * 1024;
    bool disk_p = disk && disk_free * 10 < disk;
    bool pid_p = pid_max > 0 && (pid_max - procs) * 10 < pid_max;
    json_t *conds = json_array();
    json_array_append_new(conds, condition("MemoryPressure", mem_p, mem_p ? "KubeletHasInsufficientMemory" : "KubeletHasSufficientMemory",
                                           mem_p ? "kubelet has insufficient memory available" : "kubelet has sufficient memory available", now));
    json_array_append_new(conds, condition("DiskPressure", disk_p, disk_p ? "KubeletHasDiskPressure" : "KubeletHasNoDiskPressure",
                                           disk_p ? "kubelet has disk pressure" : "kubelet has no disk pressure", now));
    json_array_append_new(conds, condition("PIDPressure", pid_p, pid_p ? "KubeletHasInsufficientPID" : "KubeletHasSufficientPID",
                                           pid_p ? "kubelet has insufficient PID available" : "kubelet has sufficient PID available", now));
    json_array_append_new(conds, condition("Ready", true, "KubeletReady", "kubelet is posting ready status", now));
    struct utsname u;
    uname(&u);
    char machine_id[64] = "";
    FILE *f = fopen("/etc/machine-id", "re");
    if (f) {
        if (!fgets(machine_id, sizeof machine_id, f))
            machine_id[0] = '\0';
        machine_id[strcspn(machine_id, "\n")] = '\0';
        fclose(f);
    }
    char runtime[64];
    snprintf(runtime, sizeof runtime, "%s://%s", k->rt.runc, "1");
    return json_pack("{s:o, s:O, s:o, s:[{s:s, s:s}, {s:s, s:s}], s:{s:{s:i}}, s:{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}}",
                     "capacity", cap, "allocatable", cap, "conditions", conds, "addresses",
                     "type", "InternalIP", "address", k->node_ip, "type", "Hostname", "address",
                     k->node_name, "daemonEndpoints", "kubeletEndpoint", "Port", (int)k->port,
                     "nodeInfo", "kubeletVersion", CK_KUBE_GIT_VERSION, "kubeProxyVersion",
                     CK_KUBE_GIT_VERSION, "operatingSystem", "linux", "architecture", "amd64",
                     "containerRuntimeVersion", runtime, "osImage", "Linux", "kernelVersion",
                     u.release, "machineID", machine_id, "systemUUID", machine_id, "bootID", "");
}

int ck_node_register(ck_kubelet *k, ck_error **err)
{
    const ck_resource *nodes = res("", "nodes");
    json_t *status = node_status(k);
    json_t *want = json_pack("{s:s, s:s, s:{s:s, s:{s:s, s:s, s:s}}, s:{s:s, s:[s]}, s:O}",
                             "apiVersion", "v1", "kind", "Node", "metadata", "name", k->node_name,
                             "labels", "kubernetes.io/hostname", k->node_name, "kubernetes.io/os",
                             "linux", "kubernetes.io/arch", "amd64", "spec", "podCIDR",
                             k->pod_cidr, "podCIDRs", k->pod_cidr, "status", status);
    json_t *got = ck_client_create(k->client, nodes, NULL, want, err);
    if (!got && (*err)->code == CK_E_EXISTS) {
        ck_error_free(*err);
        *err = NULL;
        got = ck_client_get(k->client, nodes, NULL, k->node_name, err);
    }
    json_decref(want);
    if (!got) {
        json_decref(status);
        return -1;
    }
    json_object_set_new(got, "status", status);
    json_t *upd = ck_client_update_status(k->client, nodes, NULL, got, err);
    json_decref(got);
    if (!upd)
        return -1;
    json_decref(upd);
    return 0;
}

static int renew_lease(ck_kubelet *k, ck_error **err)
{
    const ck_resource *leases = res("coordination.k8s.io", "leases");
    char now[48];
    ck_micro_time(ck_wall_ns(), now);
    json_t *patch = json_pack("{s:{s:s, s:i, s:s}}", "spec", "holderIdentity", k->node_name,
                              "leaseDurationSeconds", 40, "renewTime", now);
    json_t *out = ck_client_patch(k->client, leases, "kube-node-lease", k->node_name, NULL,
                                  "application/merge-patch+json", patch, err);
    if (!out && (*err)->code == CK_E_NOT_FOUND) {
        ck_error_free(*err);
        *err = NULL;
        json_t *obj = json_pack("{s:s, s:s, s:{s:s, s:s}, s:O}", "apiVersion",
                                "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name",
                                k->node_name, "namespace", "kube-node-lease", "spec",
                                json_object_get(patch, "spec"));
        out = ck_client_create(k->client, leases, "kube-node-lease", obj, err);
        json_decref(obj);
    }
    json_decref(patch);
    if (!out)
        return -1;
    json_decref(out);
    return 0;
}

static int update_status(ck_kubelet *k, ck_error **err)
{
    const ck_resource *nodes = res("", "nodes");
    json_t *patch = json_pack("{s:o}", "status", node_status(k));
    json_t *out = ck_client_patch(k->client, nodes, NULL, k->node_name, "status",
                                  "application/merge-patch+json", patch, err);
    json_decref(patch);
    if (!out) {
        if ((*err)->code == CK_E_NOT_FOUND) {  /* the Node was deleted: register again */
            ck_error_free(*err);
            *err = NULL;
            return ck_node_register(k, err);
        }
        return -1;
    }
    json_decref(out);
    return 0;
}

void *ck_node_loop(void *arg)
{
    ck_kubelet *k = arg;
    int64_t last_status = ck_now_ns();
    while (!k->stop) {
        ck_error *err = NULL;
        if (renew_lease(k, &err) < 0) {
            log_warn("node lease: %s", err->msg);
            ck_error_free(err);
            err = NULL;
        }
        if (ck_now_ns() - last_status >= (int64_t)STATUS_PERIOD_MS * 1000000) {
            if (update_status(k, &err) < 0) {
                log_warn("node status: %s", err->msg);
                ck_error_free(err);
            }
            last_status = ck_now_ns();
        }
        for (int i = 0; i < LEASE_PERIOD_MS / 100 && !k->stop; i++)
            usleep(100 * 1000);
    }
    return NULL;
}
