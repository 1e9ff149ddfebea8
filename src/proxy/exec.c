/* exec.c - running iptables-restore / nft / conntrack with a script on stdin (see proxy.h). */
#include "proxy/proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

#define EXEC_OUT_LIMIT (256u * 1024 * 1024)
#define EXEC_ERR_LIMIT (64u * 1024)

bool ck_proxy_have_binary(const char *name)
{
    const char *path = getenv("PATH");
    cleanup_free char *copy = xstrdup(path && *path ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
    char *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        cleanup_free char *p = xasprintf("%s/%s", d, name);
        if (access(p, X_OK) == 0)
            return true;
    }
    return false;
}

static void close_pair(int p[2])
{
    for (int i = 0; i < 2; i++)
        if (p[i] >= 0)
            close(p[i]);
    p[0] = p[1] = -1;
}

int ck_proxy_exec(const char *const *argv, const char *in, size_t in_len, char **out, ck_error **err)
{
    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
    if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0) {
        ck_error_sys(err, CK_E_IO, "%s: pipe", argv[0]);
        close_pair(pin), close_pair(pout), close_pair(perr);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        ck_error_sys(err, CK_E_IO, "%s: fork", argv[0]);
        close_pair(pin), close_pair(pout), close_pair(perr);
        return -1;
    }
    if (pid == 0) {
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(pin[0]), close(pout[1]), close(perr[1]);
    int wfd = pin[1], ofd = pout[0], efd = perr[0];
    fcntl(wfd, F_SETFL, O_NONBLOCK);
    if (!in || !in_len) {
        close(wfd);
        wfd = -1;
    }
    ck_buf ob, eb;
    ck_buf_init(&ob, EXEC_OUT_LIMIT);
    ck_buf_init(&eb, EXEC_ERR_LIMIT);
    size_t off = 0;
    bool overflow = false;
    while (ofd >= 0 || efd >= 0 || wfd >= 0) {
        struct pollfd pf[3] = {{wfd, POLLOUT, 0}, {ofd, POLLIN, 0}, {efd, POLLIN, 0}};
        if (poll(pf, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (wfd >= 0 && pf[0].revents) {
            ssize_t w = write(wfd, in + off, in_len - off);
            if (w > 0)
                off += (size_t)w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || off == in_len) {
                close(wfd);
                wfd = -1;
            }
        }
        for (int i = 1; i < 3; i++) {
            int *fd = i == 1 ? &ofd : &efd;
            if (*fd < 0 || !pf[i].revents)
                continue;
            char chunk[65536];
            ssize_t r = read(*fd, chunk, sizeof chunk);
            if (r > 0) {
                if (ck_buf_add(i == 1 ? &ob : &eb, chunk, (size_t)r) < 0)
                    overflow = true; /* keep draining so the child can exit */
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(*fd);
                *fd = -1;
            }
        }
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    int rc = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status)) {
        char *nl = eb.data ? strchr(eb.data, '\n') : NULL;
        if (nl)
            *nl = 0;
        ck_error_set(err, CK_E_INTERNAL, "%s failed (%s %d): %s", argv[0],
                     WIFEXITED(status) ? "exit" : "signal",
                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                     eb.data && *eb.data ? eb.data : "no message");
        rc = -1;
    } else if (overflow) {
        ck_error_set(err, CK_E_TOO_LARGE, "%s: output over the limit", argv[0]);
        rc = -1;
    }
    if (rc == 0 && out)
        *out = ob.data ? ck_buf_steal(&ob) : xstrdup("");
    ck_buf_free(&ob);
    ck_buf_free(&eb);
    return rc;
}

void ck_proxy_conntrack_flush_udp(const char *service_ip, const char *endpoint_ip)
{
    static bool warned;
    if (!ck_proxy_have_binary("conntrack")) {
        if (!warned)
            log_warn("conntrack tool not installed: stale UDP conntrack entries for removed "
                     "endpoints are not flushed (apt-get install conntrack)");
        warned = true;
        return;
    }
    const char *argv[] = {"conntrack", "-D", "-f", strchr(endpoint_ip, ':') ? "ipv6" : "ipv4",
                          "-p", "udp", "--dst-nat", endpoint_ip,
                          service_ip ? "--orig-dst" : NULL, service_ip, NULL};
    ck_error *e = NULL;
    if (ck_proxy_exec(argv, NULL, 0, NULL, &e) < 0) {
        /* exit 1 with "0 flow entries" is the common case: nothing to delete */
        log_debug("conntrack flush %s -> %s: %s", service_ip, endpoint_ip, e->msg);
        ck_error_free(e);
    }
}

/* ---- which iptables backend ---- */

static const char *ipt_names[3][3] = {
    {"iptables", "iptables-save", "iptables-restore"},
    {"iptables-legacy", "iptables-legacy-save", "iptables-legacy-restore"},
    {"iptables-nft", "iptables-nft-save", "iptables-nft-restore"},
};
static const char *ip6t_names[3][3] = {
    {"ip6tables", "ip6tables-save", "ip6tables-restore"},
    {"ip6tables-legacy", "ip6tables-legacy-save", "ip6tables-legacy-restore"},
    {"ip6tables-nft", "ip6tables-nft-save", "ip6tables-nft-restore"},
};
static ck_proxy_ipt_backend ipt_backend = CK_IPT_INSTALLED;

const char *ck_proxy_ipt(ck_proxy_ipt_tool tool)
{
    return ipt_names[ipt_backend][tool];
}

const char *ck_proxy_ipt_fam(int family, ck_proxy_ipt_tool tool)
{
    return (family == 6 ? ip6t_names : ipt_names)[ipt_backend][tool];
}

bool ck_proxy_ipv6_usable(void)
{
    static int cached = -1;
    if (cached < 0) {
        cached = access("/proc/net/if_inet6", R_OK) == 0 &&
                 ck_proxy_have_binary(ip6t_names[ipt_backend][CK_IPT_RESTORE]);
        if (!cached)
            log_info("no IPv6 on this host (or no ip6tables): IPv4 services only");
    }
    return cached;
}

void ck_proxy_ipt_use(ck_proxy_ipt_backend b)
{
    ipt_backend = b;
}

/* Rules and non-built-in chains in a backend (-1: cannot tell).  The legacy tables are only read
 * when the kernel has some: listing them would create them. */
static long backend_rules(ck_proxy_ipt_backend b)
{
    if (b == CK_IPT_LEGACY) {
        FILE *f = fopen("/proc/net/ip_tables_names", "r");
        if (!f)
            return 0;
        char line[64];
        bool any = fgets(line, sizeof line, f) != NULL;
        fclose(f);
        if (!any)
            return 0;
    }
    const char *argv[] = {ipt_names[b][CK_IPT_SAVE], NULL};
    cleanup_free char *dump = NULL;
    if (!ck_proxy_have_binary(argv[0]) || ck_proxy_exec(argv, NULL, 0, &dump, NULL) < 0)
        return -1;
    static const char *const builtin[] = {":PREROUTING ", ":INPUT ", ":FORWARD ", ":OUTPUT ",
                                          ":POSTROUTING ", NULL};
    long n = 0;
    for (char *line = dump; line && *line;) {
        if (!strncmp(line, "-A ", 3)) {
            n++;
        } else if (line[0] == ':') {
            bool b_in = false;
            for (const char *const *p = builtin; *p; p++)
                b_in = b_in || !strncmp(line, *p, strlen(*p));
            n += !b_in;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return n;
}

/* The backend `iptables` is installed as, by its --version ("(legacy)" or "(nf_tables)"). */
static ck_proxy_ipt_backend installed_backend(void)
{
    static ck_proxy_ipt_backend cached = CK_IPT_INSTALLED;
    if (cached != CK_IPT_INSTALLED)
        return cached;
    const char *ver[] = {"iptables", "--version", NULL};
    cleanup_free char *out = NULL;
    if (ck_proxy_exec(ver, NULL, 0, &out, NULL) < 0)
        return CK_IPT_INSTALLED;
    return cached = strstr(out, "legacy") ? CK_IPT_LEGACY : CK_IPT_NFT;
}

ck_proxy_ipt_backend ck_proxy_ipt_detect(void)
{
    ck_proxy_ipt_backend installed = installed_backend();
    ipt_backend = CK_IPT_INSTALLED;
    if (installed == CK_IPT_INSTALLED)
        return ipt_backend;
    ck_proxy_ipt_backend other = installed == CK_IPT_LEGACY ? CK_IPT_NFT : CK_IPT_LEGACY;
    long mine = backend_rules(installed), theirs = backend_rules(other);
    if (mine == 0 && theirs > 0) {
        log_info("iptables: the installed backend (%s) has no rules and %s has %ld: using %s, as "
                 "the rest of this host does", ipt_names[installed][0], ipt_names[other][0],
                 theirs, ipt_names[other][0]);
        ipt_backend = other;
    }
    return ipt_backend;
}

bool ck_proxy_ipt_is_nft(void)
{
    return ipt_backend == CK_IPT_NFT ||
           (ipt_backend == CK_IPT_INSTALLED && installed_backend() == CK_IPT_NFT);
}

ck_proxy_ipt_backend ck_proxy_ipt_other(void)
{
    ck_proxy_ipt_backend installed = installed_backend();
    if (installed == CK_IPT_INSTALLED)
        return CK_IPT_INSTALLED;
    ck_proxy_ipt_backend in_use = ipt_backend == CK_IPT_INSTALLED ? installed : ipt_backend;
    ck_proxy_ipt_backend other = in_use == CK_IPT_LEGACY ? CK_IPT_NFT : CK_IPT_LEGACY;
    return backend_rules(other) > 0 ? other : CK_IPT_INSTALLED;
}

static char *jump_words(int family, const char *rule, const char ***argvp, const char *table,
                        const char *op, const char *chain)
{
    /* split rule on spaces; a "..." quoted comment stays one word */
    char *copy = xstrdup(rule);
    size_t n = 0, cap = 16;
    const char **a = xcalloc(cap, sizeof *a);
    a[n++] = ck_proxy_ipt_fam(family, CK_IPT_CMD), a[n++] = "-w", a[n++] = "-t", a[n++] = table, a[n++] = op, a[n++] = chain;
    for (char *p = copy; *p;) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        if (n + 2 >= cap)
            a = xrealloc(a, (cap *= 2) * sizeof *a);
        if (*p == '"') {
            a[n++] = ++p;
            while (*p && *p != '"')
                p++;
        } else {
            a[n++] = p;
            while (*p && *p != ' ')
                p++;
        }
        if (*p)
            *p++ = 0;
    }
    a[n] = NULL;
    *argvp = a;
    return copy;
}

int ck_proxy_iptables_ensure_jump(int family, const char *table, const char *chain, const char *rule,
                                  ck_error **err)
{
    const char **argv = NULL;
    cleanup_free char *c = jump_words(family, rule, &argv, table, "-C", chain);
    if (ck_proxy_exec(argv, NULL, 0, NULL, NULL) == 0) {
        free(argv);
        return 0;
    }
    argv[4] = "-I";
    int rc = ck_proxy_exec(argv, NULL, 0, NULL, err);
    free(argv);
    return rc < 0 ? ck_error_wrap(err, "jump from %s %s", table, chain) : 0;
}

int ck_proxy_iptables_delete_jump(int family, const char *table, const char *chain, const char *rule)
{
    const char **argv = NULL;
    cleanup_free char *c = jump_words(family, rule, &argv, table, "-D", chain);
    int n = 0;
    while (n < 16 && ck_proxy_exec(argv, NULL, 0, NULL, NULL) == 0)
        n++;
    free(argv);
    return n;
}

int ck_proxy_iptables_delete_chains(int family, const char *table, const char *const *prefixes,
                                    ck_error **err)
{
    const char *save[] = {ck_proxy_ipt_fam(family, CK_IPT_SAVE), "-t", table, NULL};
    cleanup_free char *dump = NULL;
    if (ck_proxy_exec(save, NULL, 0, &dump, err) < 0)
        return -1;
    ck_buf flush, del;
    ck_buf_init(&flush, 0);
    ck_buf_init(&del, 0);
    ck_buf_printf(&flush, "*%s\n", table);
    int n = 0;
    for (char *line = dump, *nl; line && *line; line = nl) {
        nl = strchr(line, '\n');
        if (nl)
            *nl++ = 0;
        if (line[0] != ':')
            continue;
        char *sp = strchr(line, ' ');
        if (sp)
            *sp = 0;
        for (const char *const *p = prefixes; *p; p++)
            if (!strncmp(line + 1, *p, strlen(*p))) {
                ck_buf_printf(&flush, "%s - [0:0]\n", line);
                ck_buf_printf(&del, "-X %s\n", line + 1);
                n++;
                break;
            }
    }
    int rc = 0;
    if (n) {
        ck_buf_add(&flush, del.data, del.len);
        ck_buf_addstr(&flush, "COMMIT\n");
        const char *argv[] = {ck_proxy_ipt_fam(family, CK_IPT_RESTORE), "-w", "--noflush", NULL};
        rc = ck_proxy_exec(argv, flush.data, flush.len, NULL, err);
    }
    ck_buf_free(&flush);
    ck_buf_free(&del);
    return rc;
}
