/* http_bench - requests/s of lib/httpd with a trivial handler, measured with wrk.
 *
 * Usage: http_bench [SECONDS] [plain]
 * Makes a throwaway CA and serving certificate (openssl CLI) in a temp dir, starts the server on
 * 127.0.0.1 (HTTPS unless "plain"), runs `wrk` over keep-alive connections with 1, 16 and 64
 * connections, and prints one line per run: requests/s, latency, and the CPU the server process
 * (I/O thread + workers) and wrk (with its shell) used per request, in microseconds (user+sys, from
 * getrusage), so runs on a busy machine can still be compared.  CONNS="1" (env) runs only the
 * listed connection counts, e.g. for one long keep-alive run under callgrind (instructions a
 * request without handshakes).  Everything it made is removed on
 * exit.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/httpd.h"
#include "lib/util.h"

static long served;   /* atomic */

static double cpu_s(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void handler(void *ctx, ck_http_req *req, ck_http_resp *resp)
{
    __atomic_add_fetch(&served, 1, __ATOMIC_RELAXED);
    ck_http_respond(resp, 200, "application/json", NULL, "{\"ok\":true}\n", 12);
}

static int run(const char *cmd)
{
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

int main(int argc, char **argv)
{
    int seconds = argc > 1 ? atoi(argv[1]) : 5;
    bool tls = !(argc > 2 && !strcmp(argv[2], "plain"));
    if (seconds <= 0)
        seconds = 5;
    if (run("command -v wrk >/dev/null") != 0) {
        fprintf(stderr, "http_bench: wrk not installed (apt-get install wrk)\n");
        return 2;
    }
    char dir[] = "/tmp/ck-http-bench-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    cleanup_free char *crt = xasprintf("%s/server.crt", dir);
    cleanup_free char *key = xasprintf("%s/server.key", dir);
    cleanup_free char *mk = xasprintf(
        "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout server.key -out server.crt -days 1 -subj /CN=localhost "
        "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1", dir);
    int rc = 1;
    ck_httpd *h = NULL;
    if (tls && run(mk) != 0) {
        fprintf(stderr, "http_bench: openssl failed\n");
        goto out;
    }
    ck_httpd_config cfg = {.bind_addr = "127.0.0.1", .handler = handler, .workers = 4};
    if (tls) {
        cfg.cert_file = crt;
        cfg.key_file = key;
    }
    ck_error *err = NULL;
    h = ck_httpd_start(&cfg, &err);
    if (!h) {
        fprintf(stderr, "http_bench: %s\n", err->msg);
        ck_error_free(err);
        goto out;
    }
    printf("# lib/httpd, trivial handler, %s keep-alive, wrk %d s per run, %ld CPUs\n",
           tls ? "HTTPS" : "plain HTTP", seconds, sysconf(_SC_NPROCESSORS_ONLN));
    int conns[8] = {1, 16, 64};
    size_t nconns = 3;
    const char *env = getenv("CONNS");
    if (env && *env) {
        nconns = 0;
        for (char *end; *env && nconns < ARRAY_SIZE(conns); env = end) {
            long v = strtol(env, &end, 10);
            if (end == env)
                break;
            if (v > 0)
                conns[nconns++] = (int)v;
        }
    }
    for (size_t i = 0; i < nconns; i++) {
        int threads = conns[i] < 2 ? 1 : 2;
        cleanup_free char *cmd = xasprintf(
            "wrk -t%d -c%d -d%ds --latency %s://127.0.0.1:%d/ 2>&1 | "
            "awk '/Requests\\/sec/ {rps=$2} /^ +50%%/ {p50=$2} /^ +99%%/ {p99=$2} "
            "/Non-2xx|Socket errors/ {err=err $0} "
            "END {printf \"connections=%-3d requests/s=%%s p50=%%s p99=%%s %%s\\n\", rps, p50, p99, err}'",
            threads, conns[i], seconds, tls ? "https" : "http", ck_httpd_port(h), conns[i]);
        fflush(stdout);
        double s0 = cpu_s(RUSAGE_SELF), c0 = cpu_s(RUSAGE_CHILDREN);
        long n0 = __atomic_load_n(&served, __ATOMIC_RELAXED);
        if (run(cmd) != 0)
            goto out;
        long n = __atomic_load_n(&served, __ATOMIC_RELAXED) - n0;
        if (n > 0)
            printf("connections=%-3d server CPU %.1f us/request, wrk CPU %.1f us/request (%ld requests)\n",
                   conns[i], (cpu_s(RUSAGE_SELF) - s0) * 1e6 / (double)n,
                   (cpu_s(RUSAGE_CHILDREN) - c0) * 1e6 / (double)n, n);
    }
    rc = 0;
out:
    ck_httpd_stop(h);
    cleanup_free char *rm = xasprintf("rm -rf %s", dir);
    run(rm);
    return rc;
}
