/* sandbox.c - a pod's sandbox: its own network namespace, wired up by CNI plugins.
 *
 * The namespace is held by a bind mount at ROOT/netns/<pod uid> (no pause process needed: every
 * container joins it by path in its OCI config); the kubelet brings its lo up itself, as
 * containerd's use_internal_loopback does, instead of executing the loopback plugin.  CNI
 * plugins are run as the spec says (env + network config on stdin): bridge with host-local IPAM
 * on the node's pod CIDR.  No masquerade is installed, so pods reach only the node and each
 * other through the bridge.  Containers' hostPorts go to the portmap plugin, chained after
 * bridge (prevResult, runtimeConfig portMappings, snat so that 127.0.0.1:<hostPort> works from
 * the node); the mappings are kept in ROOT/cni/portmap/<id>.json because portmap's DEL needs
 * them to find its rules.  Destroy is idempotent: portmap DEL, CNI DEL (host-local frees the IP,
 * bridge removes the veth), then the namespace mount goes.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "kubelet/kubelet.h"
#include "lib/log.h"
#include "lib/util.h"

static char *netns_path(const ck_sandbox_cfg *c, const char *id)
{
    return xasprintf("%s/netns/%s", c->root, id);
}

static char *net_config(const ck_sandbox_cfg *c, const char *type)
{
    cleanup_free char *dd = xasprintf("%s/cni/networks", c->root);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:b, s:{s:s, s:[[{s:s}]], s:[{s:s}], s:s}}",
                      "cniVersion", "1.0.0", "name", "ckube", "type", "bridge", "bridge",
                      c->bridge, "isGateway", 1, "ipMasq", 0, "hairpinMode", 1, "ipam", "type",
                      "host-local", "ranges", "subnet", c->pod_cidr, "routes", "dst", "0.0.0.0/0",
                      "dataDir", dd);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static char *portmap_file(const ck_sandbox_cfg *c, const char *id)
{
    return xasprintf("%s/cni/portmap/%s.json", c->root, id);
}

/* portmap's config: chained after bridge, so prevResult (may be NULL on DEL) and the mappings. */
static char *portmap_config(const json_t *maps, const char *prev)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:{s:b}, s:b, s:{s:O}}", "cniVersion", "1.0.0", "name",
                          "ckube", "type", "portmap", "capabilities", "portMappings", 1, "snat", 1,
                          "runtimeConfig", "portMappings", maps);
    json_t *pr = prev ? json_loads(prev, 0, NULL) : NULL;
    if (pr)
        json_object_set_new(j, "prevResult", pr);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static int cni_run(const ck_sandbox_cfg *c, const char *cmd, const char *type, const char *id,
                   const char *netns, const char *ifname, const char *conf_in, char **out,
                   ck_error **err)
{
    cleanup_free char *conf = conf_in ? xstrdup(conf_in) : net_config(c, type);
    cleanup_free char *exe = xasprintf("%s/%s", c->cni_bin, type);
    char e_cmd[32], e_id[300], e_ns[600], e_if[64], e_path[600];
    snprintf(e_cmd, sizeof e_cmd, "CNI_COMMAND=%s", cmd);
    snprintf(e_id, sizeof e_id, "CNI_CONTAINERID=%s", id);
    snprintf(e_ns, sizeof e_ns, "CNI_NETNS=%s", netns ? netns : "");
    snprintf(e_if, sizeof e_if, "CNI_IFNAME=%s", ifname);
    snprintf(e_path, sizeof e_path, "CNI_PATH=%s", c->cni_bin);
    char *envp[] = {e_cmd, e_id, e_ns, e_if, e_path, "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    char *argv[] = {exe, NULL};
    char *o = NULL;
    int rc = ck_run_cmd(argv, conf, envp, 60000, &o, err);
    if (rc != 0) {
        if (rc > 0)
            ck_error_set(err, CK_E_INTERNAL, "CNI %s %s: %s", type, cmd, o ? o : "");
        free(o);
        return -1;
    }
    if (out)
        *out = o;
    else
        free(o);
    return 0;
}

/* Bring lo up in the calling thread's network namespace (the kernel then gives it 127.0.0.1/8
 * and ::1, as the loopback CNI plugin would). */
static int lo_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    close(s);
    return rc;
}

/* A new network namespace held by a bind mount at path, with lo up.  Done in the calling thread
 * (a network namespace is per thread): unshare, bind-mount /proc/thread-self/ns/net, lo up,
 * setns back -- no child process, which under a burst of pod starts cost a fork + reap each. */
static int make_netns(const char *path, ck_error **err)
{
    int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (fd < 0)
        return ck_error_sys(err, CK_E_IO, "create %s", path);
    close(fd);
    int orig = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (orig < 0) {
        unlink(path);
        return ck_error_sys(err, CK_E_IO, "open /proc/thread-self/ns/net");
    }
    if (unshare(CLONE_NEWNET) < 0) {
        ck_error_sys(err, CK_E_INTERNAL, "new network namespace %s: unshare", path);
        close(orig);
        unlink(path);
        return -1;
    }
    int rc = 0;
    if (mount("/proc/thread-self/ns/net", path, NULL, MS_BIND, NULL) < 0)
        rc = ck_error_sys(err, CK_E_INTERNAL, "new network namespace %s: bind mount", path);
    else if (lo_up() < 0)
        rc = ck_error_sys(err, CK_E_INTERNAL, "new network namespace %s: lo up", path);
    if (setns(orig, CLONE_NEWNET) < 0) {
        /* this worker would go on in the pod's namespace: nothing sane is left to do */
        log_error("setns back to the node's network namespace: %s", strerror(errno));
        abort();
    }
    close(orig);
    if (rc < 0) {
        umount2(path, MNT_DETACH);
        unlink(path);
    }
    return rc;
}

int ck_sandbox_create(const ck_sandbox_cfg *c, const char *id, const json_t *port_mappings,
                      char **netns, char **ip, ck_error **err)
{
    cleanup_free char *dir = xasprintf("%s/netns", c->root);
    ck_mkdir_p(dir, 0755);
    char *path = netns_path(c, id);
    struct stat st;
    if (stat(path, &st) == 0) {
        /* left over from a failed attempt: start over */
        ck_sandbox_destroy(c, id, NULL);
    }
    if (make_netns(path, err) < 0) {
        free(path);
        return -1;
    }
    cleanup_free char *out = NULL;
    if (cni_run(c, "ADD", "bridge", id, path, "eth0", NULL, &out, err) < 0) {
        ck_sandbox_destroy(c, id, NULL);
        free(path);
        return -1;
    }
    if (json_array_size(port_mappings)) {
        /* remember the mappings first: a failed ADD may have left rules for DEL to find */
        cleanup_free char *pdir = xasprintf("%s/cni/portmap", c->root);
        ck_mkdir_p(pdir, 0755);
        cleanup_free char *pf = portmap_file(c, id);
        cleanup_free char *maps = json_dumps(port_mappings, JSON_COMPACT);
        cleanup_free char *pconf = portmap_config(port_mappings, out);
        if (ck_write_file_nosync(pf, maps, strlen(maps), 0644) < 0) {
            ck_error_sys(err, CK_E_IO, "write %s", pf);
            ck_sandbox_destroy(c, id, NULL);
            free(path);
            return -1;
        }
        if (cni_run(c, "ADD", "portmap", id, path, "eth0", pconf, NULL, err) < 0) {
            ck_sandbox_destroy(c, id, NULL);
            free(path);
            return -1;
        }
    }
    json_t *res = json_loads(out, 0, NULL);
    const char *addr = json_string_value(json_object_get(json_array_get(json_object_get(res, "ips"), 0), "address"));
    if (!addr) {
        json_decref(res);
        ck_sandbox_destroy(c, id, NULL);
        free(path);
        return ck_error_set(err, CK_E_INTERNAL, "CNI bridge ADD: no IP in result");
    }
    *ip = xstrndup(addr, strcspn(addr, "/"));
    json_decref(res);
    *netns = path;
    return 0;
}

int ck_sandbox_destroy(const ck_sandbox_cfg *c, const char *id, ck_error **err)
{
    cleanup_free char *path = netns_path(c, id);
    struct stat st;
    bool have = stat(path, &st) == 0;
    cleanup_free char *pf = portmap_file(c, id);
    char *maps = NULL;
    size_t len;
    if (ck_read_file(pf, 1 << 20, &maps, &len) == 0) {
        json_t *m = json_loadb(maps, len, 0, NULL);
        free(maps);
        cleanup_free char *pconf = m ? portmap_config(m, NULL) : NULL;
        json_decref(m);
        ck_error *e = NULL;
        if (!pconf || cni_run(c, "DEL", "portmap", id, have ? path : NULL, "eth0", pconf, NULL, &e) == 0)
            unlink(pf);
        else if (e) {
            /* keep the file: the next teardown retries */
            ck_error_free(e);
        }
    }
    int rc = cni_run(c, "DEL", "bridge", id, have ? path : NULL, "eth0", NULL, NULL, err);
    if (have) {
        umount2(path, MNT_DETACH);
        unlink(path);
    }
    return rc;
}

json_t *ck_sandbox_port_mappings(const json_t *spec)
{
    json_t *out = json_array();
    size_t i, j;
    json_t *c, *port;
    json_array_foreach(json_object_get(spec, "containers"), i, c) {
        json_array_foreach(json_object_get(c, "ports"), j, port) {
            json_int_t hp = json_integer_value(json_object_get(port, "hostPort"));
            json_int_t cp = json_integer_value(json_object_get(port, "containerPort"));
            if (hp <= 0 || hp > 65535 || cp <= 0 || cp > 65535)
                continue;
            const char *proto = json_string_value(json_object_get(port, "protocol")) ?: "TCP";
            char lower[8];
            size_t n = 0;
            for (; proto[n] && n < sizeof lower - 1; n++)
                lower[n] = (char)(proto[n] >= 'A' && proto[n] <= 'Z' ? proto[n] + 32 : proto[n]);
            lower[n] = '\0';
            const char *hip = json_string_value(json_object_get(port, "hostIP")) ?: "";
            json_array_append_new(out, json_pack("{s:I, s:I, s:s, s:s}", "hostPort", hp,
                                                 "containerPort", cp, "protocol", lower, "hostIP", hip));
        }
    }
    return out;
}
