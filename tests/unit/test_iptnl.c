/* test_iptnl.c - the iptables mode's netlink writer (src/proxy/iptnl.c): what it refuses (before
 * anything reaches the kernel), and, as root, a ruleset with every construct the mode writes
 * programmed in a private network namespace of a child process, partial changes by handle
 * included.  tests/e2e/proxy.sh compares the result with iptables-nft-restore's byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/util.h"
#include "proxy/iptnl.h"

static bool own(const char *name, size_t len)
{
    return len > 5 && !strncmp(name, "KUBE-", 5);
}

static const char *const tracked[] = {"nat/KUBE-SERVICES", NULL};

static void test_refuses(void **state)
{
    (void)state;
    static const struct { const char *script, *why; } cases[] = {
        {"*nat\n-A KUBE-X -m foo --bar 1 -j ACCEPT\n", "unknown match"},
        {"*nat\n-A KUBE-X -m tcp -p tcp --dport 80 --syn -j ACCEPT\n", "unknown option"},
        {"*nat\n-A KUBE-X -s 10.0.0.300/32 -j ACCEPT\n", "bad address"},
        {"*nat\n-A KUBE-X -s 10.0.0.0/33 -j ACCEPT\n", "bad prefix"},
        {"*nat\n-A KUBE-X -j DNAT --to-destination 10.0.0.1\n", "DNAT without port"},
        {"*nat\n-A KUBE-X -j REJECT --reject-with icmp-host-prohibited\n", "other reject"},
        {"*nat\n-A KUBE-X -m udp -p tcp --dport 53 -j ACCEPT\n", "udp match on tcp"},
        {"*nat\n-A KUBE-X -m comment --comment \"unterminated -j ACCEPT\n", "quote"},
        {"*nat\n-A KUBE-X -p tcp\n", "no target"},
        {"*nat\n-A KUBE-X -j lowercase\n", "not a chain name"},
        {"*nat\n-I KUBE-X 2 -j ACCEPT\n", "insert not first"},
        {"*nat\n-Z KUBE-X\n", "unknown command"},
        {"-A KUBE-X -j ACCEPT\n", "no table"},
    };
    ck_error *err = NULL;
    ck_iptnl *n = ck_iptnl_new(4, tracked, &err);
    if (!n) {
        ck_error_free(err);
        skip();
    }
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        err = NULL;
        int rc = ck_iptnl_apply(n, cases[i].script, false, own, NULL, 0, &err);
        if (rc != -1 || !err || err->code != CK_E_INVALID)
            fail_msg("%s: rc %d, %s", cases[i].why, rc, err ? err->msg : "no error");
        ck_error_free(err);
    }
    err = NULL;
    assert_int_equal(ck_iptnl_apply(n, "*nat\n-D KUBE-SERVICES -j ACCEPT\n", false, own, NULL, 0, &err), -1);
    assert_int_equal(err->code, CK_E_NOT_FOUND);   /* not a reason to give the writer up */
    ck_error_free(err);
    ck_iptnl_free(n);
}

/* Every construct of src/proxy/iptables.c, both tables. */
static const char full4[] =
    "*nat\n"
    ":KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n"
    ":KUBE-POSTROUTING - [0:0]\n:KUBE-SVC-A - [0:0]\n:KUBE-SEP-A - [0:0]\n:KUBE-EXT-A - [0:0]\n"
    "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n"
    "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n"
    "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" "
    "-j MASQUERADE --random-fully\n"
    "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n"
    "-A KUBE-SERVICES -m comment --comment \"ns/a:http cluster IP\" -m tcp -p tcp "
    "-d 10.96.0.1/32 --dport 80 -j KUBE-SVC-A\n"
    "-A KUBE-SVC-A -m comment --comment \"ns/a:http cluster IP\" -m tcp -p tcp -d 10.96.0.1/32 "
    "--dport 80 ! -s 10.244.0.0/14 -j KUBE-MARK-MASQ\n"
    "-A KUBE-SVC-A -m comment --comment \"ns/a:http -> 10.244.1.2:80\" -m recent --name KUBE-SEP-A "
    "--mask 255.255.255.255 --rsource --rcheck --seconds 10800 --reap -j KUBE-SEP-A\n"
    "-A KUBE-SVC-A -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-A\n"
    "-A KUBE-SEP-A -m comment --comment ns/a:http -s 10.244.1.2/32 -j KUBE-MARK-MASQ\n"
    "-A KUBE-SEP-A -m recent --set --name KUBE-SEP-A --mask 255.255.255.255 --rsource -m tcp "
    "-p tcp -j DNAT --to-destination 10.244.1.2:80\n"
    "-A KUBE-EXT-A -m comment --comment \"masquerade LOCAL traffic\" -m addrtype --src-type LOCAL "
    "-j KUBE-MARK-MASQ\n"
    "-A KUBE-NODEPORTS -m comment --comment ns/a:http -m tcp -p tcp --dport 30080 -j KUBE-EXT-A\n"
    "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the "
    "last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n"
    "COMMIT\n"
    "*filter\n"
    ":KUBE-SERVICES - [0:0]\n:KUBE-FORWARD - [0:0]\n"
    "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n"
    "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack "
    "--ctstate RELATED,ESTABLISHED -j ACCEPT\n"
    "-A KUBE-SERVICES -m comment --comment \"ns/b:dns has no endpoints\" -m udp -p udp "
    "-d 10.96.0.2/32 --dport 53 -j REJECT\n"
    "-A KUBE-SERVICES -m comment --comment \"ns/b:web has no endpoints\" -m tcp -p tcp "
    "-d 10.96.0.3/32 --dport 80 -j REJECT --reject-with tcp-reset\n"
    "COMMIT\n";

static const ck_iptnl_jump jumps4[] = {
    {"nat", "PREROUTING", "KUBE-SERVICES", "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"},
    {"filter", "INPUT", "KUBE-SERVICES", "-m conntrack --ctstate NEW -j KUBE-SERVICES"},
};

static int count_lines(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* In a child with its own network namespace; returns a failure description or NULL. */
static const char *in_netns(void)
{
    if (unshare(CLONE_NEWNET) < 0)
        return "unshare";
    ck_error *err = NULL;
    ck_iptnl *n = ck_iptnl_new(4, tracked, &err);
    if (!n || ck_iptnl_apply(n, full4, true, own, jumps4, ARRAY_SIZE(jumps4), &err) < 0)
        return "full apply";
    /* again: chains exist now (flushed, not created), jumps not doubled */
    if (ck_iptnl_apply(n, full4, true, own, jumps4, ARRAY_SIZE(jumps4), &err) < 0)
        return "second full apply";
    /* partial: a new service inserted at the top by handle, then removed by handle */
    static const char add[] = "*nat\n:KUBE-SVC-B - [0:0]\n"
                              "-A KUBE-SVC-B -j KUBE-SEP-A\n"
                              "-I KUBE-SERVICES 1 -m tcp -p tcp -d 10.96.0.9/32 --dport 81 -j KUBE-SVC-B\n"
                              "COMMIT\n";
    static const char del[] = "*nat\n:KUBE-SVC-B - [0:0]\n"
                              "-D KUBE-SERVICES -m tcp -p tcp -d 10.96.0.9/32 --dport 81 -j KUBE-SVC-B\n"
                              "-D KUBE-SERVICES -m comment --comment \"ns/a:http cluster IP\" -m tcp -p tcp "
                              "-d 10.96.0.1/32 --dport 80 -j KUBE-SVC-A\n"
                              "-X KUBE-SVC-B\nCOMMIT\n";
    if (ck_iptnl_apply(n, add, false, own, NULL, 0, &err) < 0)
        return "partial add";
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_iptnl_dump(4, f, &err);
    fclose(f);
    bool added = count_lines(buf, "rule KUBE-SVC-B #0") == 1 && count_lines(buf, "rule KUBE-SERVICES #2") == 1;
    int base = count_lines(buf, "rule PREROUTING ") + count_lines(buf, "rule INPUT ");
    free(buf);
    if (!added)
        return "partial add: not in the dump";
    if (base != 2)
        return "the jumps are not exactly once each";
    if (ck_iptnl_apply(n, del, false, own, NULL, 0, &err) < 0)
        return "partial delete by handle";
    /* shrink: the chains of ours not declared are flushed and deleted (the jumps from the
     * built-in chains still need KUBE-SERVICES) */
    if (ck_iptnl_apply(n, "*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n*filter\n:KUBE-SERVICES - [0:0]\nCOMMIT\n",
                       true, own, NULL, 0, &err) < 0)
        return "full apply of less";
    buf = NULL;
    f = open_memstream(&buf, &len);
    ck_iptnl_dump(4, f, &err);
    fclose(f);
    int kube = count_lines(buf, "chain KUBE-"), rules = count_lines(buf, "rule KUBE-");
    free(buf);
    ck_iptnl_free(n);
    if (kube != 2 || rules)
        return "chains of ours left after the smaller full apply";
    return NULL;
}

static void test_program_in_netns(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        const char *why = in_netns();
        if (why && write(p[1], why, strlen(why)) < 0)
            _exit(2);
        _exit(why ? 1 : 0);
    }
    close(p[1]);
    char why[256] = "";
    ssize_t r = read(p[0], why, sizeof why - 1);
    close(p[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st))
        fail_msg("in a private netns: %s", r > 0 ? why : "crashed");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refuses),
        cmocka_unit_test(test_program_in_netns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
