/* admit.c - the kubelet's own admission of a pod bound to this node, as upstream's predicate
 * admit handler does it (its "general filter"): the node's allocatable pods, cpu and memory
 * against what the pods already admitted request, then the hostPorts those pods hold.  The
 * scheduler checks the same, but pods bound by nodeName (or by two schedulers racing) reach the
 * kubelet unchecked; a rejected pod is Failed with upstream's reason and message and never runs.
 * Pure functions over PodSpecs: the caller (pods.c) keeps the list of admitted, active pods.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kubelet/kubelet.h"
#include "lib/util.h"

void ck_node_allocatable(ck_node_alloc *out)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    out->cpu_milli = (cpus > 0 ? cpus : 1) * 1000;
    out->pods = 110;
    out->memory = 0;
    FILE *f = fopen("/proc/meminfo", "re");
    char line[256];
    long long kib;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemTotal: %lld kB", &kib) == 1)
            out->memory = (int64_t)kib * 1024;
    if (f)
        fclose(f);
}

typedef struct host_port {
    const char *ip, *proto;
    json_int_t port;
} host_port;

/* hostIP "" is 0.0.0.0 and protocol "" is TCP, as upstream's HostPortInfo */
static size_t host_ports(const json_t *spec, host_port *out, size_t max)
{
    static const char *const lists[] = {"initContainers", "containers"};
    size_t n = 0;
    for (size_t l = 0; l < 2; l++) {
        size_t i, j;
        json_t *c, *p;
        json_array_foreach(json_object_get(spec, lists[l]), i, c)
            json_array_foreach(json_object_get(c, "ports"), j, p) {
                json_int_t hp = json_integer_value(json_object_get(p, "hostPort"));
                if (hp <= 0 || n >= max)
                    continue;
                const char *ip = json_string_value(json_object_get(p, "hostIP"));
                const char *proto = json_string_value(json_object_get(p, "protocol"));
                out[n++] = (host_port){.ip = ip && *ip ? ip : "0.0.0.0",
                                       .proto = proto && *proto ? proto : "TCP", .port = hp};
            }
    }
    return n;
}

static bool ports_conflict(const host_port *a, const host_port *b)
{
    if (a->port != b->port || strcmp(a->proto, b->proto))
        return false;
    return !strcmp(a->ip, b->ip) || !strcmp(a->ip, "0.0.0.0") || !strcmp(b->ip, "0.0.0.0");
}

#define MAX_PORTS 256

int ck_kubelet_admit(const json_t *spec, const json_t *others, const ck_node_alloc *alloc,
                     char **reason, char **message)
{
    size_t i;
    json_t *o;
    /* resources: pods first, then cpu and memory requests (upstream's order of reasons) */
    int64_t used_pods = (int64_t)json_array_size(others);
    int64_t used_cpu = 0, used_mem = 0;
    json_array_foreach(others, i, o) {
        used_cpu += ck_pod_request(o, "cpu");
        used_mem += ck_pod_request(o, "memory") / 1000;
    }
    int64_t cpu = ck_pod_request(spec, "cpu"), mem = ck_pod_request(spec, "memory") / 1000;
    const char *res = NULL;
    int64_t req = 0, used = 0, cap = 0;
    if (used_pods + 1 > alloc->pods)
        res = "pods", req = 1, used = used_pods, cap = alloc->pods;
    else if (cpu > 0 && cpu > alloc->cpu_milli - used_cpu)
        res = "cpu", req = cpu, used = used_cpu, cap = alloc->cpu_milli;
    else if (mem > 0 && alloc->memory && mem > alloc->memory - used_mem)
        res = "memory", req = mem, used = used_mem, cap = alloc->memory;
    if (res) {
        *reason = xasprintf("OutOf%s", res);
        *message = xasprintf("Node didn't have enough resource: %s, requested: %lld, used: %lld, capacity: %lld",
                             res, (long long)req, (long long)used, (long long)cap);
        return -1;
    }
    host_port want[MAX_PORTS], have[MAX_PORTS];
    size_t nw = host_ports(spec, want, MAX_PORTS);
    json_array_foreach(others, i, o) {
        if (!nw)
            break;
        size_t nh = host_ports(o, have, MAX_PORTS);
        for (size_t a = 0; a < nw; a++)
            for (size_t b = 0; b < nh; b++)
                if (ports_conflict(&want[a], &have[b])) {
                    *reason = xstrdup("NodePorts");
                    *message = xstrdup("Predicate NodePorts failed: node(s) didn't have free ports "
                                       "for the requested pod ports");
                    return -1;
                }
    }
    return 0;
}
