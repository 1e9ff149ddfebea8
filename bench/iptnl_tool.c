/* iptnl_tool.c - the iptables mode's netlink writer (src/proxy/iptnl.c) on its own, for the
 * floor benchmark (bench/proxy_ipt_floor.sh) and the iptables-nft comparison test
 * (tests/e2e/proxy_iptnl.sh).  Run it inside a scratch network namespace.
 *
 *   iptnl_tool apply [-6] [--full] < restore-input   program it in one transaction; prints
 *                                                    "cpu_ms=N wall_ms=N" on stderr
 *   iptnl_tool dump [-6]                             the family's tables/chains/rules, raw
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "lib/util.h"
#include "proxy/iptnl.h"

static bool own(const char *name, size_t len)
{
    return len > 5 && !strncmp(name, "KUBE-", 5);
}

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static double wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    int fam = 4;
    bool full = false;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-6"))
            fam = 6;
        else if (!strcmp(argv[i], "--full"))
            full = true;
    }
    ck_error *err = NULL;
    if (argc > 1 && !strcmp(argv[1], "dump")) {
        if (ck_iptnl_dump(fam, stdout, &err) < 0) {
            fprintf(stderr, "iptnl_tool: %s\n", err->msg);
            return 1;
        }
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "apply")) {
        fprintf(stderr, "usage: iptnl_tool apply [-6] [--full] < script | dump [-6]\n");
        return 2;
    }
    ck_buf in;
    ck_buf_init(&in, 0);
    char chunk[65536];
    size_t r;
    while ((r = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        ck_buf_add(&in, chunk, r);
    ck_buf_add(&in, "", 1);
    double c0 = cpu_ms(), w0 = wall_ms();
    static const char *const tracked[] = {"nat/KUBE-SERVICES", NULL};
    ck_iptnl *n = ck_iptnl_new(fam, tracked, &err);
    int rc = n ? ck_iptnl_apply(n, in.data, full, own, NULL, 0, &err) : -1;
    fprintf(stderr, "cpu_ms=%.0f wall_ms=%.0f\n", cpu_ms() - c0, wall_ms() - w0);
    if (rc < 0)
        fprintf(stderr, "iptnl_tool: %s\n", err->msg);
    ck_iptnl_free(n);
    ck_buf_free(&in);
    return rc < 0;
}
