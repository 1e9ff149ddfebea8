/* oci.c - the OCI runtime config (config.json) of one container, from its PodSpec entry, the
 * image config and what the kubelet prepared (rootfs, netns, env, volume mounts).
 *
 * Policy as upstream's defaults: command/args override the image's Entrypoint/Cmd (command
 * replaces both, args only Cmd); workingDir, else the image's; runAsUser/runAsGroup, else the
 * image's numeric User; the container runtime's default capability set, all of them when
 * privileged, plus/minus securityContext.capabilities; new pid, ipc, uts and mount namespaces,
 * the pod's network namespace by path; masked and read-only /proc paths unless privileged;
 * resources.limits -> memory limit, CFS quota; requests.cpu -> shares.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>

#include "kubelet/kubelet.h"
#include "lib/caps.h"
#include "lib/quantity.h"
#include "lib/util.h"

static const char *const default_caps[] = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
};

/* what a privileged container (or capabilities.add ALL) gets: ck_cap_names up to CAP_AUDIT_READ */
#define ALL_CAPS (CAP_AUDIT_READ + 1)

static bool str_in(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (!strcmp(json_string_value(v), s)) return true;
    return false;
}

static json_t *capabilities(const json_t *sc)
{
    bool priv = json_is_true(json_object_get(sc, "privileged"));
    json_t *set = json_array();
    if (priv)
        for (size_t i = 0; i < ALL_CAPS; i++)
            json_array_append_new(set, json_string(ck_cap_names[i]));
    else
        for (size_t i = 0; i < ARRAY_SIZE(default_caps); i++)
            json_array_append_new(set, json_string(default_caps[i]));
    json_t *caps = json_object_get(sc, "capabilities");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(caps, "add"), i, v) {
        const char *n = json_string_value(v);
        if (!n)
            continue;
        if (!strcmp(n, "ALL")) {
            json_array_clear(set);
            for (size_t k = 0; k < ALL_CAPS; k++)
                json_array_append_new(set, json_string(ck_cap_names[k]));
            continue;
        }
        char *full = strncmp(n, "CAP_", 4) ? xasprintf("CAP_%s", n) : xstrdup(n);
        if (!str_in(set, full))
            json_array_append_new(set, json_string(full));
        free(full);
    }
    json_array_foreach(json_object_get(caps, "drop"), i, v) {
        const char *n = json_string_value(v);
        if (!n)
            continue;
        if (!strcmp(n, "ALL")) {
            json_array_clear(set);
            break;
        }
        cleanup_free char *full = strncmp(n, "CAP_", 4) ? xasprintf("CAP_%s", n) : xstrdup(n);
        for (size_t k = 0; k < json_array_size(set); k++)
            if (!strcmp(json_string_value(json_array_get(set, k)), full)) {
                json_array_remove(set, k);
                break;
            }
    }
    return json_pack("{s:O, s:O, s:o}", "bounding", set, "effective", set, "permitted", set);
}

static json_t *mount_entry(const char *dst, const char *type, const char *src, const char *opts)
{
    json_t *o = json_array();
    cleanup_free char *copy = xstrdup(opts);
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        json_array_append_new(o, json_string(t));
    return json_pack("{s:s, s:s, s:s, s:o}", "destination", dst, "type", type, "source", src,
                     "options", o);
}

/* The process argv: command/args over the image's Entrypoint/Cmd. */
static json_t *process_args(const json_t *c, const json_t *icfg)
{
    json_t *cmd = json_object_get(c, "command"), *args = json_object_get(c, "args");
    json_t *out = json_array();
    if (json_array_size(cmd)) {
        json_array_extend(out, cmd);
        if (json_array_size(args))
            json_array_extend(out, args);
        return out;
    }
    json_t *ep = json_object_get(icfg, "Entrypoint");
    if (json_is_array(ep))
        json_array_extend(out, ep);
    if (json_array_size(args))
        json_array_extend(out, args);
    else if (json_is_array(json_object_get(icfg, "Cmd")))
        json_array_extend(out, json_object_get(icfg, "Cmd"));
    return out;
}

static json_t *resources(const json_t *c)
{
    json_t *res = json_object();
    json_t *lim = json_object_get(json_object_get(c, "resources"), "limits");
    json_t *req = json_object_get(json_object_get(c, "resources"), "requests");
    const char *mem = json_string_value(json_object_get(lim, "memory"));
    const char *cpu = json_string_value(json_object_get(lim, "cpu"));
    const char *rcpu = json_string_value(json_object_get(req, "cpu"));
    if (!rcpu)
        rcpu = cpu;
    int64_t v;
    if (mem && ck_quantity_parse(mem, &v) == 0 && v > 0)
        json_object_set_new(res, "memory", json_pack("{s:I}", "limit", (json_int_t)v));
    json_t *cpuo = json_object();
    if (cpu && ck_quantity_parse_milli(cpu, &v) == 0 && v > 0) {
        json_object_set_new(cpuo, "quota", json_integer(v * 100000 / 1000 < 1000 ? 1000 : v * 100));
        json_object_set_new(cpuo, "period", json_integer(100000));
    }
    /* shares: 1024 per CPU, at least 2 (upstream's MilliCPUToShares) */
    int64_t shares = 2;
    if (rcpu && ck_quantity_parse_milli(rcpu, &v) == 0 && v > 0)
        shares = v * 1024 / 1000 < 2 ? 2 : v * 1024 / 1000;
    json_object_set_new(cpuo, "shares", json_integer(shares));
    json_object_set_new(res, "cpu", cpuo);
    json_object_set_new(res, "pids", json_pack("{s:i}", "limit", 4096));
    json_object_set_new(res, "devices", json_pack("[{s:b, s:s}]", "allow", 0, "access", "rwm"));
    return res;
}

json_t *ck_oci_config(const ck_oci_input *in, ck_error **err)
{
    const json_t *c = in->container, *icfg = in->image ? in->image->config : NULL;
    json_t *spec = json_object_get(in->pod, "spec");
    json_t *psc = json_object_get(spec, "securityContext");
    json_t *sc = json_object_get(c, "securityContext");
    json_t *args = process_args(c, icfg);
    if (!json_array_size(args)) {
        json_decref(args);
        ck_error_set(err, CK_E_INVALID, "no command specified");
        return NULL;
    }
    /* user: container securityContext, then pod, then the image's numeric User */
    json_int_t uid = 0, gid = 0;
    const char *iuser = json_string_value(json_object_get(icfg, "User"));
    if (iuser && *iuser) {
        char *end;
        long u = strtol(iuser, &end, 10);
        if (end != iuser && (*end == '\0' || *end == ':')) {
            uid = u;
            if (*end == ':')
                gid = strtol(end + 1, NULL, 10);
        }
    }
    json_t *v;
    if ((v = json_object_get(psc, "runAsUser")) && json_is_integer(v))
        uid = json_integer_value(v);
    if ((v = json_object_get(sc, "runAsUser")) && json_is_integer(v))
        uid = json_integer_value(v);
    if ((v = json_object_get(psc, "runAsGroup")) && json_is_integer(v))
        gid = json_integer_value(v);
    if ((v = json_object_get(sc, "runAsGroup")) && json_is_integer(v))
        gid = json_integer_value(v);
    json_t *groups = json_array();
    size_t i;
    json_array_foreach(json_object_get(psc, "supplementalGroups"), i, v)
        json_array_append(groups, v);
    if ((v = json_object_get(psc, "fsGroup")) && json_is_integer(v))
        json_array_append(groups, v);

    const char *cwd = json_string_value(json_object_get(c, "workingDir"));
    if (!cwd || !*cwd)
        cwd = json_string_value(json_object_get(icfg, "WorkingDir"));
    if (!cwd || !*cwd)
        cwd = "/";
    bool priv = json_is_true(json_object_get(sc, "privileged"));
    bool ro = json_is_true(json_object_get(sc, "readOnlyRootFilesystem"));
    const char *hostname = json_string_value(json_object_get(json_object_get(in->pod, "metadata"), "name"));
    const char *hn = json_string_value(json_object_get(spec, "hostname"));
    if (hn && *hn)
        hostname = hn;

    /* tty: the runtime makes a pty (its master goes to the shim) and, as containerd does, the
     * container gets TERM=xterm unless it sets TERM itself */
    bool tty = json_is_true(json_object_get(c, "tty"));
    json_t *env = json_copy(in->env);
    bool has_term = false;
    json_array_foreach(in->env, i, v)
        has_term |= json_is_string(v) && !strncmp(json_string_value(v), "TERM=", 5);
    if (tty && !has_term)
        json_array_append_new(env, json_string("TERM=xterm"));
    json_t *process = json_pack("{s:b, s:{s:I, s:I, s:o}, s:o, s:o, s:s, s:o, s:b}",
                                "terminal", tty, "user", "uid", uid, "gid", gid, "additionalGids",
                                groups, "args", args, "env", env, "cwd", cwd, "capabilities",
                                capabilities(sc), "noNewPrivileges",
                                json_is_false(json_object_get(sc, "allowPrivilegeEscalation")));

    json_t *mounts = json_array();
    json_array_append_new(mounts, mount_entry("/proc", "proc", "proc", "nosuid,noexec,nodev"));
    json_array_append_new(mounts, mount_entry("/dev", "tmpfs", "tmpfs", "nosuid,strictatime,mode=755,size=65536k"));
    json_array_append_new(mounts, mount_entry("/dev/pts", "devpts", "devpts", "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5"));
    json_array_append_new(mounts, mount_entry("/dev/shm", "tmpfs", "shm", "nosuid,noexec,nodev,mode=1777,size=65536k"));
    json_array_append_new(mounts, mount_entry("/dev/mqueue", "mqueue", "mqueue", "nosuid,noexec,nodev"));
    json_array_append_new(mounts, mount_entry("/sys", "sysfs", "sysfs", priv ? "nosuid,noexec,nodev" : "nosuid,noexec,nodev,ro"));
    json_array_append_new(mounts, mount_entry("/sys/fs/cgroup", "cgroup", "cgroup", priv ? "nosuid,noexec,nodev,relatime" : "nosuid,noexec,nodev,relatime,ro"));
    static const char *const etc[] = {"hosts", "resolv.conf", "hostname"};
    for (i = 0; i < ARRAY_SIZE(etc); i++) {
        cleanup_free char *src = xasprintf("%s/etc-%s", in->pod_dir, etc[i]);
        cleanup_free char *dst = xasprintf("/etc/%s", etc[i]);
        json_array_append_new(mounts, mount_entry(dst, "bind", src, "rbind,rprivate,rw"));
    }
    if (in->mounts)
        json_array_extend(mounts, in->mounts);

    json_t *ns = json_pack("[{s:s}, {s:s}, {s:s}, {s:s}, {s:s, s:s}]", "type", "pid", "type",
                           "ipc", "type", "uts", "type", "mount", "type", "network", "path",
                           in->netns);
    json_t *linux_ = json_pack("{s:o, s:s, s:o}", "namespaces", ns, "cgroupsPath",
                               in->cgroup_path, "resources", resources(c));
    if (!priv) {
        json_object_set_new(linux_, "maskedPaths", json_pack(
            "[s,s,s,s,s,s,s,s]", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware"));
        json_object_set_new(linux_, "readonlyPaths", json_pack(
            "[s,s,s,s,s,s]", "/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
            "/proc/sysrq-trigger"));
    }
    return json_pack("{s:s, s:o, s:{s:s, s:b}, s:s, s:o, s:o}", "ociVersion", "1.0.2",
                     "process", process, "root", "path", in->rootfs, "readonly", ro, "hostname",
                     hostname ? hostname : "pod", "mounts", mounts, "linux", linux_);
}
