/* test_proxy_conntrack.c - when a UDP endpoint leaves a Service, the iptables and nftables modes
 * flush its conntrack entries only after the new rules are in (as upstream kube-proxy): flushed
 * before, a packet of the flow would be DNATed by the old rules to the gone endpoint again and
 * make a new stale entry.  The tools (nft, iptables*, conntrack) are stand-ins in a temp dir on
 * PATH that log their calls: nothing touches the kernel. */
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"
#include "proxy/model.h"
#include "proxy/proxy.h"

static char dir[] = "/tmp/ckube-test-ct.XXXXXX";
static char *saved_path;

static json_t *js(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, 0, &je);
    if (!v)
        fail_msg("bad test JSON: %s", je.text);
    return v;
}

static const char *svc_text =
    "{\"metadata\":{\"name\":\"dns\",\"namespace\":\"default\"},\"spec\":{\"clusterIP\":"
    "\"10.96.100.53\",\"ports\":[{\"name\":\"dns\",\"port\":53,\"protocol\":\"UDP\"}]}}";

/* the slice of Service dns: 10.244.0.11 always, 10.244.0.12 when `second` */
static json_t *slice(bool second)
{
    char *t = xasprintf(
        "{\"metadata\":{\"name\":\"dns-1\",\"namespace\":\"default\",\"labels\":"
        "{\"kubernetes.io/service-name\":\"dns\"}},\"addressType\":\"IPv4\",\"ports\":["
        "{\"name\":\"dns\",\"port\":5353,\"protocol\":\"UDP\"}],\"endpoints\":["
        "{\"addresses\":[\"10.244.0.11\"],\"conditions\":{\"ready\":true}}%s]}",
        second ? ",{\"addresses\":[\"10.244.0.12\"],\"conditions\":{\"ready\":true}}" : "");
    json_t *v = js(t);
    free(t);
    return v;
}

static char *read_log(void)
{
    cleanup_free char *path = xasprintf("%s/calls.log", dir);
    char *data = NULL;
    size_t len = 0;
    if (ck_read_file(path, 1 << 20, &data, &len) < 0)
        return xstrdup("");
    unlink(path);
    return data;
}

static int setup(void **state)
{
    (void)state;
    /* as root, a network namespace of our own: whatever a mode programs past the fake tools (the
     * iptables mode's netlink writer) never reaches the host */
    if (getuid() == 0 && unshare(CLONE_NEWNET) < 0)
        return -1;
    if (!mkdtemp(dir))
        return -1;
    cleanup_free char *tool = xasprintf("%s/tool", dir);
    FILE *f = fopen(tool, "w");
    if (!f)
        return -1;
    fprintf(f, "#!/bin/sh\nPATH=/usr/bin:/bin\nn=$(basename \"$0\")\n"
               "case $n in *-restore|nft) cat >/dev/null ;; esac\n"
               "echo \"$n $*\" >>%s/calls.log\nexit 0\n", dir);
    fclose(f);
    chmod(tool, 0755);
    static const char *const names[] = {"nft", "conntrack", "iptables", "iptables-save",
                                        "iptables-restore", "ip6tables", "ip6tables-save",
                                        "ip6tables-restore"};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        cleanup_free char *link = xasprintf("%s/%s", dir, names[i]);
        if (symlink("tool", link) < 0)
            return -1;
    }
    const char *p = getenv("PATH");
    saved_path = xstrdup(p ? p : "/usr/bin:/bin");
    setenv("PATH", dir, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    setenv("PATH", saved_path, 1);
    free(saved_path);
    cleanup_free char *cmd = xasprintf("rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* The flush of 10.244.0.12 must come after the line of the rules tool `writer` in the log. */
static void assert_flush_after(const char *log, const char *writer, const char *what)
{
    const char *w = strstr(log, writer);
    const char *c = strstr(log, "conntrack -D -f ipv4 -p udp --dst-nat 10.244.0.12");
    if (!c)
        fail_msg("%s: no conntrack flush of the gone endpoint; calls:\n%s", what, log);
    if (!w || c < w)
        fail_msg("%s: conntrack flushed before %s applied the rules; calls:\n%s", what, writer, log);
    assert_null(strstr(log, "--dst-nat 10.244.0.11"));   /* the endpoint that stays is left */
}

static void run(const ck_proxy_mode *mode, const char *writer)
{
    ck_proxy_opts o = {.node_name = "node1", .cluster_cidr = "10.244.0.0/16"};
    void *st = mode->new(&o, NULL);
    assert_non_null(st);
    ck_proxy_model *m = ck_proxy_model_new("node1");
    json_t *svc = js(svc_text), *both = slice(true), *one = slice(false);
    ck_proxy_model_set_service(m, svc);
    ck_proxy_model_set_slice(m, both);
    json_decref(ck_proxy_model_take_changes(m));
    assert_int_equal(mode->sync(st, m, NULL, NULL), 0);
    free(read_log());

    /* a partial sync: the endpoint leaves */
    ck_proxy_model_set_slice(m, one);
    json_t *ch = ck_proxy_model_take_changes(m);
    assert_int_equal(mode->sync(st, m, ch, NULL), 0);
    json_decref(ch);
    cleanup_free char *log = read_log();
    assert_flush_after(log, writer, "partial sync");

    /* back, then gone again in a full sync (a resync) */
    ck_proxy_model_set_slice(m, both);
    ch = ck_proxy_model_take_changes(m);
    assert_int_equal(mode->sync(st, m, ch, NULL), 0);
    json_decref(ch);
    free(read_log());
    ck_proxy_model_set_slice(m, one);
    json_decref(ck_proxy_model_take_changes(m));
    assert_int_equal(mode->sync(st, m, NULL, NULL), 0);
    cleanup_free char *log2 = read_log();
    assert_flush_after(log2, writer, "full sync");

    json_decref(svc);
    json_decref(both);
    json_decref(one);
    ck_proxy_model_free(m);
    mode->free(st);
}

static void test_nftables_flush_after_apply(void **state)
{
    (void)state;
    run(&ck_proxy_mode_nftables, "nft -f -");
}

static void test_iptables_flush_after_apply(void **state)
{
    (void)state;
    /* the restore path, whose tool call the log shows (the netlink writer's batch it cannot) */
    setenv("CKUBE_PROXY_IPT_RESTORE", "1", 1);
    run(&ck_proxy_mode_iptables, "iptables-restore -w");
    unsetenv("CKUBE_PROXY_IPT_RESTORE");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nftables_flush_after_apply),
        cmocka_unit_test(test_iptables_flush_after_apply),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
