/* test_proxy.c - the proxy's model and rule rendering (dry run: nothing touches the kernel). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/util.h"
#include "proxy/model.h"
#include "proxy/proxy.h"

static json_t *js(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, 0, &je);
    if (!v)
        fail_msg("bad test JSON: %s", je.text);
    return v;
}

#define SVC_WEB                                                                                    \
    "{\"metadata\":{\"name\":\"web\",\"namespace\":\"default\"},\"spec\":{\"type\":\"NodePort\","  \
    "\"clusterIP\":\"10.96.100.10\",\"externalIPs\":[\"192.0.2.7\"],\"ports\":[{\"name\":\"http\"," \
    "\"port\":80,\"protocol\":\"TCP\",\"nodePort\":30080},{\"name\":\"dns\",\"port\":53,"          \
    "\"protocol\":\"UDP\"}]}}"

static json_t *slice_web(const char *ready2, const char *term2)
{
    char *t = xasprintf(
        "{\"metadata\":{\"name\":\"web-1\",\"namespace\":\"default\",\"labels\":"
        "{\"kubernetes.io/service-name\":\"web\"}},\"addressType\":\"IPv4\",\"ports\":["
        "{\"name\":\"http\",\"port\":8080,\"protocol\":\"TCP\"},{\"name\":\"dns\",\"port\":5353,"
        "\"protocol\":\"UDP\"}],\"endpoints\":["
        "{\"addresses\":[\"10.244.0.11\"],\"conditions\":{\"ready\":true},\"nodeName\":\"node1\"},"
        "{\"addresses\":[\"10.244.0.12\"],\"conditions\":{\"ready\":%s,\"serving\":true,"
        "\"terminating\":%s},\"nodeName\":\"node2\"},"
        "{\"addresses\":[\"10.244.0.13\"],\"conditions\":{\"ready\":true},\"nodeName\":\"node2\"}]}",
        ready2, term2);
    json_t *v = js(t);
    free(t);
    return v;
}

static void test_build_ports(void **state)
{
    json_t *svc = js(SVC_WEB), *sl = slice_web("true", "false");
    json_t *arr = json_pack("[O]", sl);
    size_t n = 0;
    ck_proxy_port *p = ck_proxy_build_ports(svc, arr, "node1", &n);
    assert_int_equal(n, 2);
    assert_string_equal(p[0].name, "default/web:http");
    assert_string_equal(p[0].proto, "tcp");
    assert_int_equal(p[0].node_port, 30080);
    assert_int_equal(p[0].n_external, 1);
    assert_int_equal(p[0].n_eps, 3);
    assert_int_equal(p[0].eps[0].port, 8080);
    assert_true(p[0].eps[0].local);
    assert_false(p[0].eps[1].local);
    assert_string_equal(p[1].proto, "udp");
    assert_int_equal(p[1].eps[0].port, 5353);
    assert_int_equal(p[1].node_port, 30080 * 0); /* the UDP port has no nodePort */
    ck_proxy_ports_free(p, n);
    json_decref(arr);
    json_decref(svc);
    json_decref(sl);
}

/* Table: which endpoints a path uses (ready, else serving-terminating; local filter). */
static void test_pick(void **state)
{
    static const struct {
        const char *ready2, *term2;
        bool local;
        size_t want;
    } cases[] = {
        {"true", "false", false, 3},
        {"false", "false", false, 2},  /* unready leaves the rotation */
        {"false", "true", false, 2},   /* others are ready: no fallback */
        {"true", "false", true, 1},    /* node1 has one */
    };
    json_t *svc = js(SVC_WEB);
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        json_t *sl = slice_web(cases[i].ready2, cases[i].term2), *arr = json_pack("[o]", sl);
        size_t n = 0;
        ck_proxy_port *p = ck_proxy_build_ports(svc, arr, "node1", &n);
        const ck_proxy_ep *out[8];
        assert_int_equal(ck_proxy_port_pick(&p[0], cases[i].local, out), cases[i].want);
        ck_proxy_ports_free(p, n);
        json_decref(arr);
    }
    json_decref(svc);
}

static void test_fallback_terminating(void **state)
{
    json_t *svc = js(SVC_WEB);
    json_t *sl = js("{\"metadata\":{\"name\":\"s\",\"namespace\":\"default\",\"labels\":"
                    "{\"kubernetes.io/service-name\":\"web\"}},\"ports\":[{\"name\":\"http\","
                    "\"port\":8080}],\"endpoints\":[{\"addresses\":[\"10.244.0.11\"],\"conditions\":"
                    "{\"ready\":false,\"serving\":true,\"terminating\":true}},{\"addresses\":"
                    "[\"10.244.0.12\"],\"conditions\":{\"ready\":false,\"serving\":false,"
                    "\"terminating\":true}}]}");
    json_t *arr = json_pack("[o]", sl);
    size_t n = 0;
    ck_proxy_port *p = ck_proxy_build_ports(svc, arr, "node1", &n);
    const ck_proxy_ep *out[4];
    assert_int_equal(ck_proxy_port_pick(&p[0], false, out), 1);
    assert_string_equal(out[0]->ip, "10.244.0.11");
    ck_proxy_ports_free(p, n);
    json_decref(arr);
    json_decref(svc);
}

static void test_headless_and_externalname(void **state)
{
    const char *svcs[] = {
        "{\"metadata\":{\"name\":\"h\",\"namespace\":\"d\"},\"spec\":{\"clusterIP\":\"None\",\"ports\":[{\"port\":80}]}}",
        "{\"metadata\":{\"name\":\"e\",\"namespace\":\"d\"},\"spec\":{\"type\":\"ExternalName\",\"externalName\":\"x.example\"}}",
    };
    for (size_t i = 0; i < ARRAY_SIZE(svcs); i++) {
        json_t *s = js(svcs[i]), *arr = json_array();
        size_t n = 7;
        assert_null(ck_proxy_build_ports(s, arr, "n", &n));
        assert_int_equal(n, 0);
        json_decref(s);
        json_decref(arr);
    }
}

static void test_model_changes(void **state)
{
    ck_proxy_model *m = ck_proxy_model_new("node1");
    json_t *svc = js(SVC_WEB), *sl = slice_web("true", "false");
    ck_proxy_model_set_service(m, svc);
    ck_proxy_model_set_slice(m, sl);
    json_t *ch = ck_proxy_model_take_changes(m);
    assert_int_equal(json_array_size(ch), 1);
    assert_string_equal(json_string_value(json_array_get(ch, 0)), "default/web");
    json_decref(ch);
    const ck_proxy_service *s = ck_proxy_model_get(m, "default/web");
    assert_non_null(s);
    assert_int_equal(s->ports[0].n_eps, 3);
    ch = ck_proxy_model_take_changes(m);
    assert_int_equal(json_array_size(ch), 0);
    json_decref(ch);
    ck_proxy_model_delete_slice(m, sl);
    json_decref(ck_proxy_model_take_changes(m));
    assert_int_equal(ck_proxy_model_get(m, "default/web")->ports[0].n_eps, 0);
    ck_proxy_model_delete_service(m, svc);
    json_decref(ck_proxy_model_take_changes(m));
    assert_null(ck_proxy_model_get(m, "default/web"));
    assert_int_equal(ck_proxy_model_count(m), 0);
    json_decref(svc);
    json_decref(sl);
    ck_proxy_model_free(m);
}

static void test_hash16(void **state)
{
    char a[17], b[17];
    ck_proxy_hash16("default/web:httptcp", a);
    ck_proxy_hash16("default/web:httpudp", b);
    assert_int_equal(strlen(a), 16);
    assert_string_not_equal(a, b);
    for (int i = 0; i < 16; i++)
        assert_true((a[i] >= 'A' && a[i] <= 'Z') || (a[i] >= '2' && a[i] <= '7'));
}

/* Render with a mode in dry-run: full, then a partial sync after one change. */
static char *render(const ck_proxy_mode *mode, const char *ready2, char **partial)
{
    ck_proxy_opts o = {.node_name = "node1", .cluster_cidr = "10.244.0.0/16", .dry_run = true};
    void *st = mode->new(&o, NULL);
    ck_proxy_model *m = ck_proxy_model_new("node1");
    json_t *svc = js(SVC_WEB), *sl = slice_web("true", "false");
    ck_proxy_model_set_service(m, svc);
    ck_proxy_model_set_slice(m, sl);
    json_decref(ck_proxy_model_take_changes(m));
    assert_int_equal(mode->sync(st, m, NULL, NULL), 0);
    char *full = xstrdup(mode->last_script(st));
    json_t *sl2 = slice_web(ready2, "false");
    ck_proxy_model_set_slice(m, sl2);
    json_t *ch = ck_proxy_model_take_changes(m);
    assert_int_equal(mode->sync(st, m, ch, NULL), 0);
    *partial = xstrdup(mode->last_script(st));
    json_decref(ch);
    json_decref(svc);
    json_decref(sl);
    json_decref(sl2);
    ck_proxy_model_free(m);
    mode->free(st);
    return full;
}

static void test_iptables_render(void **state)
{
    char *partial = NULL;
    char *full = render(&ck_proxy_mode_iptables, "false", &partial);
    /* upstream layout and the pieces the issue names */
    static const char *const want[] = {
        "*nat\n", ":KUBE-SERVICES - [0:0]", "-A KUBE-SERVICES -m comment --comment \"default/web:http cluster IP\" -m tcp -p tcp -d 10.96.100.10/32 --dport 80 -j KUBE-SVC-",
        "-m statistic --mode random --probability 0.3333333333", "-j DNAT --to-destination 10.244.0.11:8080",
        "-A KUBE-NODEPORTS -m comment --comment default/web:http -m tcp -p tcp --dport 30080 -j KUBE-EXT-",
        "-d 192.0.2.7/32 --dport 80 -j KUBE-EXT-", "! -s 10.244.0.0/16 -j KUBE-MARK-MASQ",
        "-s 10.244.0.11/32 -j KUBE-MARK-MASQ", "-j MASQUERADE --random-fully",
        "-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\nCOMMIT", "*filter\n",
    };
    for (size_t i = 0; i < ARRAY_SIZE(want); i++)
        if (!strstr(full, want[i]))
            fail_msg("full iptables script lacks \"%s\"", want[i]);
    /* one endpoint unready: only that service's chains rewritten, its SEP chain deleted */
    assert_null(strstr(partial, ":KUBE-SERVICES"));
    assert_non_null(strstr(partial, "-X KUBE-SEP-"));
    assert_non_null(strstr(partial, "--probability 0.5000000000"));
    assert_null(strstr(partial, "10.244.0.12:8080"));
    free(full);
    free(partial);
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_userspace_render(void **state)
{
    char *partial = NULL;
    char *full = render(&ck_proxy_mode_userspace, "false", &partial);
    static const char *const want[] = {
        "*nat\n:KUBE-PORTALS-CONTAINER - [0:0]\n:KUBE-PORTALS-HOST - [0:0]\n",
        "-A KUBE-PORTALS-CONTAINER -j KUBE-PORTALS-B-00\n", "-A KUBE-PORTALS-HOST -j KUBE-PORTALS-B-63\n",
        "-m comment --comment \"default/web:http\" -m tcp -p tcp -d 10.96.100.10/32 --dport 80 -j REDIRECT --to-ports ",
        "-p tcp -d 192.0.2.7/32 --dport 80 -j REDIRECT", "-m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30080 -j REDIRECT",
        "-m udp -p udp -d 10.96.100.10/32 --dport 53 -j REDIRECT", "*filter\n:KUBE-PORTALS-REJECT - [0:0]\n",
        "-A KUBE-PORTALS-REJECT -j KUBE-PORTALS-R-17\n",
    };
    for (size_t i = 0; i < ARRAY_SIZE(want); i++)
        if (!strstr(full, want[i]))
            fail_msg("full userspace script lacks \"%s\"", want[i]);
    assert_int_equal(count(full, ":KUBE-PORTALS-B-"), 64);
    /* a partial sync rewrites the changed Service's bucket only, and keeps its listener port */
    assert_null(strstr(partial, "KUBE-PORTALS-CONTAINER"));
    assert_int_equal(count(partial, ":KUBE-PORTALS-B-"), 1);
    assert_int_equal(count(partial, ":KUBE-PORTALS-R-"), 1);
    const char *p = strstr(full, "--dport 80 -j REDIRECT --to-ports ");
    assert_non_null(p);
    char port[16];
    snprintf(port, sizeof port, "%.*s", (int)strcspn(p + 34, "\n"), p + 34);
    assert_non_null(strstr(partial, port));
    /* http: cluster IP, external IP, node port; dns: cluster IP, external IP */
    assert_int_equal(count(partial, "-j REDIRECT"), 5);
    free(full);
    free(partial);
}

static void test_iptables_no_endpoints_reject(void **state)
{
    ck_proxy_opts o = {.node_name = "node1", .dry_run = true};
    void *st = ck_proxy_mode_iptables.new(&o, NULL);
    ck_proxy_model *m = ck_proxy_model_new("node1");
    json_t *svc = js(SVC_WEB);
    ck_proxy_model_set_service(m, svc);
    json_decref(ck_proxy_model_take_changes(m));
    assert_int_equal(ck_proxy_mode_iptables.sync(st, m, NULL, NULL), 0);
    const char *s = ck_proxy_mode_iptables.last_script(st);
    assert_non_null(strstr(s, "-A KUBE-SERVICES -m comment --comment \"default/web:http has no endpoints\" -m tcp -p tcp -d 10.96.100.10/32 --dport 80 -j REJECT --reject-with tcp-reset"));
    assert_non_null(strstr(s, "--dport 30080 -j REJECT --reject-with tcp-reset"));
    assert_null(strstr(s, "KUBE-SVC-"));
    json_decref(svc);
    ck_proxy_model_free(m);
    ck_proxy_mode_iptables.free(st);
}

static void test_nftables_render(void **state)
{
    char *partial = NULL;
    char *full = render(&ck_proxy_mode_nftables, "false", &partial);
    static const char *const want[] = {
        "delete table ip kube-proxy", "map ep { typeof meta mark . numgen random mod 1 : ip daddr . th dport; }",
        "add element ip kube-proxy svc { ", "10.96.100.10 . tcp . 80 : 0x", "tcp . 30080 : 0x",
        "192.0.2.7 . tcp . 80 : 0x", "10.244.0.13 . 8080", "ip saddr != 10.244.0.0/16 ct mark set 0x4000",
        "add chain ip kube-proxy pick-3", "ct status dnat ip saddr . ip daddr @hairpin masquerade",
        "add element ip kube-proxy hairpin { 10.244.0.11 . 10.244.0.11 }",
    };
    for (size_t i = 0; i < ARRAY_SIZE(want); i++)
        if (!strstr(full, want[i]))
            fail_msg("full nft script lacks \"%s\"\n%s", want[i], full);
    /* the partial sync only touches elements: no table rebuild */
    assert_null(strstr(partial, "delete table"));
    assert_non_null(strstr(partial, "delete element ip kube-proxy svc { "));
    assert_non_null(strstr(partial, "10.96.100.10 . tcp . 80"));
    assert_non_null(strstr(partial, "add chain ip kube-proxy pick-2"));
    assert_null(strstr(partial, "10.244.0.12 . 8080"));
    free(full);
    free(partial);
}

static void test_nftables_affinity(void **state)
{
    ck_proxy_opts o = {.node_name = "node1", .dry_run = true};
    void *st = ck_proxy_mode_nftables.new(&o, NULL);
    ck_proxy_model *m = ck_proxy_model_new("node1");
    json_t *svc = js(SVC_WEB), *sl = slice_web("true", "false");
    json_object_set_new(json_object_get(svc, "spec"), "sessionAffinity", json_string("ClientIP"));
    ck_proxy_model_set_service(m, svc);
    ck_proxy_model_set_slice(m, sl);
    json_decref(ck_proxy_model_take_changes(m));
    assert_int_equal(ck_proxy_mode_nftables.sync(st, m, NULL, NULL), 0);
    const char *s = ck_proxy_mode_nftables.last_script(st);
    assert_non_null(strstr(s, "flags dynamic,timeout; timeout 10800s;"));
    assert_non_null(strstr(s, "update @aff-1-0 { ip saddr }"));
    assert_non_null(strstr(s, "numgen random mod 3 vmap { 0 : goto aff-1-e0"));
    json_decref(svc);
    json_decref(sl);
    ck_proxy_model_free(m);
    ck_proxy_mode_nftables.free(st);
}

static void test_iptables_affinity(void **state)
{
    ck_proxy_opts o = {.node_name = "node1", .dry_run = true};
    void *st = ck_proxy_mode_iptables.new(&o, NULL);
    ck_proxy_model *m = ck_proxy_model_new("node1");
    json_t *svc = js(SVC_WEB), *sl = slice_web("true", "false");
    json_object_set_new(json_object_get(svc, "spec"), "sessionAffinity", json_string("ClientIP"));
    ck_proxy_model_set_service(m, svc);
    ck_proxy_model_set_slice(m, sl);
    json_decref(ck_proxy_model_take_changes(m));
    assert_int_equal(ck_proxy_mode_iptables.sync(st, m, NULL, NULL), 0);
    const char *s = ck_proxy_mode_iptables.last_script(st);
    assert_non_null(strstr(s, "--rcheck --seconds 10800 --reap -j KUBE-SEP-"));
    assert_non_null(strstr(s, "-m recent --set --name KUBE-SEP-"));
    json_decref(svc);
    json_decref(sl);
    ck_proxy_model_free(m);
    ck_proxy_mode_iptables.free(st);
}

/* Dual-stack: a Service with an IPv4 and an IPv6 cluster IP and a slice per family.  The model
 * gives each port once per family with that family's endpoints; every mode renders the IPv6
 * half in its IPv6 form (ip6tables input, table ip6 kube-proxy, ip6tables portals). */
#define SVC_DUAL                                                                                   \
    "{\"metadata\":{\"name\":\"dual\",\"namespace\":\"default\"},\"spec\":{\"type\":\"NodePort\"," \
    "\"clusterIP\":\"10.96.100.20\",\"clusterIPs\":[\"10.96.100.20\",\"fd00:96::20\"],"            \
    "\"ipFamilies\":[\"IPv4\",\"IPv6\"],\"ipFamilyPolicy\":\"RequireDualStack\","                  \
    "\"externalIPs\":[\"192.0.2.8\",\"2001:db8::8\"],\"ports\":[{\"name\":\"http\",\"port\":80,"   \
    "\"protocol\":\"TCP\",\"nodePort\":30090}]}}"
#define SLICE_DUAL(fam, a, b)                                                                      \
    "{\"metadata\":{\"name\":\"dual-" fam "\",\"namespace\":\"default\",\"labels\":"               \
    "{\"kubernetes.io/service-name\":\"dual\"}},\"addressType\":\"IP" fam "\",\"ports\":["         \
    "{\"name\":\"http\",\"port\":8080,\"protocol\":\"TCP\"}],\"endpoints\":["                      \
    "{\"addresses\":[\"" a "\"],\"nodeName\":\"node1\"},{\"addresses\":[\"" b "\"]}]}"

static void test_dual_stack(void **state)
{
    json_t *svc = js(SVC_DUAL);
    json_t *sl = json_pack("[oo]", js(SLICE_DUAL("v4", "10.244.0.21", "10.244.0.22")),
                           js(SLICE_DUAL("v6", "fd00:10::21", "fd00:10::22")));
    size_t n = 0;
    ck_proxy_port *p = ck_proxy_build_ports(svc, sl, "node1", &n);
    assert_int_equal(n, 2);
    assert_int_equal(p[0].family, 4);
    assert_string_equal(p[0].cluster_ip, "10.96.100.20");
    assert_int_equal(p[0].n_eps, 2);
    assert_string_equal(p[0].eps[0].ip, "10.244.0.21");
    assert_int_equal(p[0].n_external, 1);
    assert_int_equal(p[1].family, 6);
    assert_string_equal(p[1].cluster_ip, "fd00:96::20");
    assert_int_equal(p[1].n_eps, 2);
    assert_string_equal(p[1].eps[1].ip, "fd00:10::22");
    assert_int_equal(p[1].n_external, 1);
    assert_string_equal(p[1].external[0], "2001:db8::8");
    assert_string_equal(p[0].name, p[1].name);
    ck_proxy_ports_free(p, n);
    assert_int_equal(ck_proxy_ip_family("fd00::1"), 6);
    assert_int_equal(ck_proxy_ip_family("10.0.0.1"), 4);
    assert_int_equal(ck_proxy_ip_family("None"), 0);

    static const struct { const ck_proxy_mode *mode; const char *want[8]; } cases[] = {
        {&ck_proxy_mode_iptables, {"-d 10.96.100.20/32 --dport 80", "# ip6tables\n*nat\n",
                                   "-d fd00:96::20/128 --dport 80 -j KUBE-SVC-",
                                   "-j DNAT --to-destination [fd00:10::21]:8080",
                                   "-s fd00:10::22/128 -j KUBE-MARK-MASQ", "! -s fd00:10::/64",
                                   "-d 2001:db8::8/128 --dport 80 -j KUBE-EXT-", NULL}},
        {&ck_proxy_mode_nftables, {"add element ip kube-proxy svc { 10.96.100.20 . tcp . 80",
                                   "table ip6 kube-proxy {", "typeof ip6 daddr . meta l4proto",
                                   "add element ip6 kube-proxy svc { fd00:96::20 . tcp . 80",
                                   "fd00:10::21 . 8080", "ip6 saddr != fd00:10::/64",
                                   "dnat ip6 to meta mark", NULL}},
        {&ck_proxy_mode_userspace, {"-d 10.96.100.20/32 --dport 80 -j REDIRECT", "# ip6tables\n",
                                    "-d fd00:96::20/128 --dport 80 -j REDIRECT --to-ports",
                                    "-d 2001:db8::8/128 --dport 80 -j REDIRECT", NULL}},
    };
    for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
        ck_proxy_opts o = {.node_name = "node1", .cluster_cidr = "10.244.0.0/16,fd00:10::/64",
                           .dry_run = true};
        void *st = cases[c].mode->new(&o, NULL);
        ck_proxy_model *m = ck_proxy_model_new("node1");
        ck_proxy_model_set_service(m, svc);
        size_t i;
        json_t *v;
        json_array_foreach(sl, i, v)
            ck_proxy_model_set_slice(m, v);
        json_decref(ck_proxy_model_take_changes(m));
        assert_int_equal(cases[c].mode->sync(st, m, NULL, NULL), 0);
        const char *full = cases[c].mode->last_script(st);
        for (size_t w = 0; cases[c].want[w]; w++)
            if (!strstr(full, cases[c].want[w]))
                fail_msg("%s: script lacks \"%s\"\n%s", cases[c].mode->name, cases[c].want[w], full);
        /* the IPv6 half never carries an IPv4 address, nor the IPv4 half an IPv6 one */
        const char *six = strstr(full, cases[c].mode == &ck_proxy_mode_nftables ? "table ip6 kube-proxy {"
                                                                                 : "# ip6tables");
        assert_non_null(six);
        assert_null(strstr(six, "10.244.0.2"));
        cleanup_free char *four = xstrndup(full, (size_t)(six - full));
        assert_null(strstr(four, "fd00:"));
        ck_proxy_model_free(m);
        cases[c].mode->free(st);
    }
    json_decref(svc);
    json_decref(sl);
}

static void test_mode_find(void **state)
{
    assert_ptr_equal(ck_proxy_mode_find("iptables"), &ck_proxy_mode_iptables);
    assert_ptr_equal(ck_proxy_mode_find("nftables"), &ck_proxy_mode_nftables);
    assert_ptr_equal(ck_proxy_mode_find("userspace"), &ck_proxy_mode_userspace);
    assert_ptr_equal(ck_proxy_mode_find("ipvs"), &ck_proxy_mode_ipvs);
    assert_null(ck_proxy_mode_find("kernelspace"));
}

static void test_exec(void **state)
{
    char *out = NULL;
    const char *cat[] = {"cat", NULL};
    assert_int_equal(ck_proxy_exec(cat, "hello\n", 6, &out, NULL), 0);
    assert_string_equal(out, "hello\n");
    free(out);
    ck_error *e = NULL;
    const char *f[] = {"sh", "-c", "echo boom >&2; exit 3", NULL};
    assert_int_equal(ck_proxy_exec(f, NULL, 0, NULL, &e), -1);
    assert_non_null(strstr(e->msg, "boom"));
    ck_error_free(e);
}

/* A listening socket on 127.0.0.1 (ephemeral port) and a connected pair through it. */
static int lo_listen(struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    *sa = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof *sa;
    assert_int_equal(bind(fd, (struct sockaddr *)sa, sizeof *sa), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)sa, &l), 0);
    return fd;
}

static void lo_pair(int *out_connected, int *out_accepted)
{
    struct sockaddr_in sa;
    int ls = lo_listen(&sa);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof sa), 0);
    int a = accept(ls, NULL, NULL);
    assert_true(a >= 0);
    close(ls);
    *out_connected = c;
    *out_accepted = a;
}

static void expect_bytes(int fd, const char *want)
{
    char buf[64] = "";
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 2000) != 1)
        fail_msg("nothing arrived where \"%s\" was expected", want);
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    assert_int_equal(n, (ssize_t)strlen(want));
    assert_string_equal(buf, want);
}

/* The sockmap relay: client -> [proxy accepted A | proxy connected B] -> backend D; once A and B
 * are paired, bytes cross in the kernel (the proxy never reads them from A or B). */
static void test_sockmap_pair(void **state)
{
    (void)state;
    ck_error *e = NULL;
    ck_proxy_sockmap *sm = ck_proxy_sockmap_new(&e);
    if (!sm) {
        /* not root or no sockmap in this kernel: the proxy relays in userspace then */
        ck_error_free(e);
        skip();
    }
    int client, a, b, d;
    lo_pair(&client, &a);
    lo_pair(&b, &d);
    assert_int_equal(send(client, "early", 5, 0), 5);
    struct pollfd p = {a, POLLIN, 0};
    assert_int_equal(poll(&p, 1, 2000), 1);
    assert_int_equal(ck_proxy_sockmap_pair(sm, a, b), 0);
    /* queued before pairing: A stays readable; the proxy's read of it hands the bytes to the
     * verdict program (EAGAIN for the proxy) and they leave through B in order */
    char c;
    assert_int_equal(poll(&p, 1, 2000), 1);
    assert_int_equal(recv(a, &c, 1, MSG_DONTWAIT), -1);
    expect_bytes(d, "early");
    assert_int_equal(send(client, "request", 7, 0), 7);
    expect_bytes(d, "request");
    assert_int_equal(send(d, "response", 8, 0), 8);
    expect_bytes(client, "response");
    assert_int_equal(send(client, "again", 5, 0), 5);
    expect_bytes(d, "again");
    /* nothing was delivered to the proxy's own sockets; EOF still reaches it */
    assert_int_equal(recv(a, &c, 1, MSG_DONTWAIT), -1);
    assert_int_equal(recv(b, &c, 1, MSG_DONTWAIT), -1);
    shutdown(client, SHUT_WR);
    assert_int_equal(poll(&p, 1, 2000), 1);
    assert_int_equal(recv(a, &c, 1, MSG_DONTWAIT), 0);
    close(client), close(a), close(b), close(d);
    ck_proxy_sockmap_free(sm);
}

/* Backends of the relay test, all on one port P: 127.0.0.1:P refuses (bound, not listening),
 * 127.0.0.2:P takes a request and closes without answering, 127.0.0.3:P echoes. */
typedef struct relay_backends {
    int port, dead, closer, echo, stop[2];
    int closed_unanswered;      /* requests the closer took */
    pthread_t thr;
} relay_backends;

static int bind_lo(const char *ip, int port, bool listening)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, ip, &sa.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    if (listening)
        assert_int_equal(listen(fd, 64), 0);
    return fd;
}

static void *relay_backends_run(void *arg)
{
    relay_backends *b = arg;
    struct pollfd p[64];
    int kind[64], n = 3;       /* kind: 0 stop, 1 closer listener, 2 echo listener, 3 closer conn, 4 echo conn */
    p[0] = (struct pollfd){b->stop[0], POLLIN, 0}, kind[0] = 0;
    p[1] = (struct pollfd){b->closer, POLLIN, 0}, kind[1] = 1;
    p[2] = (struct pollfd){b->echo, POLLIN, 0}, kind[2] = 2;
    char buf[65536];
    for (;;) {
        if (poll(p, (nfds_t)n, -1) <= 0)
            continue;
        if (p[0].revents)
            break;
        for (int i = 1; i < n; i++) {
            if (!p[i].revents)
                continue;
            if (kind[i] <= 2) {
                int c = accept(p[i].fd, NULL, NULL);
                if (c >= 0 && n < 64)
                    p[n] = (struct pollfd){c, POLLIN, 0}, kind[n++] = kind[i] + 2;
                continue;
            }
            ssize_t r = recv(p[i].fd, buf, sizeof buf, 0);
            if (r > 0 && kind[i] == 4) {
                for (ssize_t off = 0; off < r;) {
                    ssize_t w = send(p[i].fd, buf + off, (size_t)(r - off), MSG_NOSIGNAL);
                    if (w <= 0)
                        break;
                    off += w;
                }
                continue;
            }
            if (r > 0)
                __atomic_fetch_add(&b->closed_unanswered, 1, __ATOMIC_RELAXED);
            close(p[i].fd);
            p[i] = p[--n], kind[i] = kind[n];
            i--;
        }
    }
    for (int i = 3; i < n; i++)
        close(p[i].fd);
    return NULL;
}

/* Send all of out and read back as much (the echo backend through the proxy), both at once. */
static void echo_through(int fd, const char *out, size_t len)
{
    char *in = xmalloc(len);
    size_t sent = 0, got = 0;
    while (got < len) {
        struct pollfd p = {fd, (short)(POLLIN | (sent < len ? POLLOUT : 0)), 0};
        if (poll(&p, 1, 5000) != 1)
            fail_msg("relay stalled: %zu of %zu bytes sent, %zu back", sent, len, got);
        if ((p.revents & POLLOUT) && sent < len) {
            ssize_t w = send(fd, out + sent, len - sent > 16384 ? 16384 : len - sent,
                             MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = recv(fd, in + got, len - got, MSG_DONTWAIT);
            if (r == 0)
                fail_msg("relay closed after %zu of %zu bytes", got, len);
            if (r > 0)
                got += (size_t)r;
        }
    }
    assert_memory_equal(in, out, len);
    free(in);
}

/* The userspace relay itself, io_uring and epoll: round robin with a refused endpoint and one that
 * closes before answering (its request is replayed to the next), keep-alive requests, a transfer
 * larger than the relay's buffers and the socket buffers, half-close passed on as EOF. */
static void relay_run(bool epoll_relay)
{
    relay_backends b = {0};
    b.dead = bind_lo("127.0.0.1", 0, false);
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    getsockname(b.dead, (struct sockaddr *)&sa, &sl);
    b.port = ntohs(sa.sin_port);
    b.closer = bind_lo("127.0.0.2", b.port, true);
    b.echo = bind_lo("127.0.0.3", b.port, true);
    assert_int_equal(pipe(b.stop), 0);
    pthread_create(&b.thr, NULL, relay_backends_run, &b);

    ck_proxy_opts o = {.node_name = "node1", .dry_run = true, .dry_run_relay = true, .workers = 2,
                       .epoll_relay = epoll_relay};
    void *st = ck_proxy_mode_userspace.new(&o, NULL);
    ck_proxy_model *m = ck_proxy_model_new("node1");
    json_t *svc = js("{\"metadata\":{\"name\":\"r\",\"namespace\":\"default\"},\"spec\":{"
                     "\"clusterIP\":\"10.96.100.30\",\"ports\":[{\"name\":\"t\",\"port\":80,\"protocol\":\"TCP\"}]}}");
    char *slt = xasprintf("{\"metadata\":{\"name\":\"r-1\",\"namespace\":\"default\",\"labels\":"
                          "{\"kubernetes.io/service-name\":\"r\"}},\"addressType\":\"IPv4\",\"ports\":"
                          "[{\"name\":\"t\",\"port\":%d,\"protocol\":\"TCP\"}],\"endpoints\":["
                          "{\"addresses\":[\"127.0.0.1\"],\"conditions\":{\"ready\":true}},"
                          "{\"addresses\":[\"127.0.0.2\"],\"conditions\":{\"ready\":true}},"
                          "{\"addresses\":[\"127.0.0.3\"],\"conditions\":{\"ready\":true}}]}", b.port);
    json_t *sl1 = js(slt);
    free(slt);
    ck_proxy_model_set_service(m, svc);
    ck_proxy_model_set_slice(m, sl1);
    json_decref(ck_proxy_model_take_changes(m));
    assert_int_equal(ck_proxy_mode_userspace.sync(st, m, NULL, NULL), 0);
    const char *p = strstr(ck_proxy_mode_userspace.last_script(st), "--dport 80 -j REDIRECT --to-ports ");
    assert_non_null(p);
    struct sockaddr_in ls = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(p + 34)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

    for (int i = 0; i < 6; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_int_equal(connect(fd, (struct sockaddr *)&ls, sizeof ls), 0);
        char req[32];
        snprintf(req, sizeof req, "request %d", i);
        echo_through(fd, req, strlen(req));
        echo_through(fd, "again", 5);
        if (i == 0) {
            size_t big = 1 << 20;
            char *data = xmalloc(big);
            for (size_t j = 0; j < big; j++)
                data[j] = (char)(j * 7 + j / 4096);
            echo_through(fd, data, big);
            free(data);
        }
        /* our EOF reaches the backend, which closes: its EOF comes back */
        shutdown(fd, SHUT_WR);
        struct pollfd pf = {fd, POLLIN, 0};
        assert_int_equal(poll(&pf, 1, 5000), 1);
        char c;
        assert_int_equal(recv(fd, &c, 1, 0), 0);
        close(fd);
    }
    /* the closer took requests that were then answered by the echo backend (replayed) */
    assert_true(__atomic_load_n(&b.closed_unanswered, __ATOMIC_RELAXED) > 0);

    ck_proxy_mode_userspace.free(st);
    ck_proxy_model_free(m);
    json_decref(svc);
    json_decref(sl1);
    assert_int_equal(write(b.stop[1], "x", 1), 1);
    pthread_join(b.thr, NULL);
    close(b.stop[0]), close(b.stop[1]), close(b.dead), close(b.closer), close(b.echo);
}

static void test_userspace_relay_uring(void **state)
{
    (void)state;
    relay_run(false);
}

static void test_userspace_relay_epoll(void **state)
{
    (void)state;
    relay_run(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_ports),
        cmocka_unit_test(test_pick),
        cmocka_unit_test(test_fallback_terminating),
        cmocka_unit_test(test_headless_and_externalname),
        cmocka_unit_test(test_model_changes),
        cmocka_unit_test(test_hash16),
        cmocka_unit_test(test_iptables_render),
        cmocka_unit_test(test_iptables_no_endpoints_reject),
        cmocka_unit_test(test_userspace_render),
        cmocka_unit_test(test_iptables_affinity),
        cmocka_unit_test(test_nftables_render),
        cmocka_unit_test(test_nftables_affinity),
        cmocka_unit_test(test_dual_stack),
        cmocka_unit_test(test_mode_find),
        cmocka_unit_test(test_exec),
        cmocka_unit_test(test_sockmap_pair),
        cmocka_unit_test(test_userspace_relay_uring),
        cmocka_unit_test(test_userspace_relay_epoll),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
