/* http_stream_bench - what idle connections and open streams cost in lib/httpd.
 *
 * Usage: http_stream_bench [N]   (default 4000)
 * Opens N plain-HTTP connections to a server in this process (127.0.0.1), measures RSS growth,
 * turns each into an open chunked stream (a watch), measures again, then times one thread
 * writing one 32-byte event to every stream and every client receiving it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/httpd.h"
#include "lib/util.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static ck_http_stream **streams;
static int nstreams;

static void handler(void *ctx, ck_http_req *req, ck_http_resp *resp)
{
    ck_http_stream *s = ck_http_stream_start(resp, 200, "application/json", NULL, NULL, NULL);
    pthread_mutex_lock(&mu);
    streams[nstreams++] = s;
    pthread_mutex_unlock(&mu);
}

static long rss_kib(void)
{
    cleanup_fclose FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            v = atol(line + 6);
    return v;
}

/* Read from fd until `want` bytes arrived or 5 s passed. */
static size_t drain(int fd, size_t want)
{
    size_t got = 0;
    char buf[4096];
    while (got < want) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0)
            break;
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 4000;
    if (n <= 0)
        n = 4000;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rlim_t need = (rlim_t)n * 2 + 100;
    if (rl.rlim_cur < need) {
        rl.rlim_cur = need < rl.rlim_max ? need : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < need) {
            fprintf(stderr, "http_stream_bench: RLIMIT_NOFILE too low for %d connections\n", n);
            return 2;
        }
    }
    streams = xcalloc((size_t)n, sizeof *streams);
    int *fds = xcalloc((size_t)n, sizeof *fds);
    ck_httpd_config cfg = {.bind_addr = "127.0.0.1", .handler = handler, .workers = 4};
    ck_error *err = NULL;
    ck_httpd *h = ck_httpd_start(&cfg, &err);
    if (!h) {
        fprintf(stderr, "http_stream_bench: %s\n", err->msg);
        return 1;
    }
    usleep(100 * 1000);
    long r0 = rss_kib();
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ck_httpd_port(h))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(fds[i], (struct sockaddr *)&sa, sizeof sa) < 0) {
            perror("connect");
            return 1;
        }
    }
    usleep(300 * 1000);
    long r1 = rss_kib();
    const char *req = "GET /watch HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < n; i++)
        if (send(fds[i], req, strlen(req), MSG_NOSIGNAL) < 0)
            return 1;
    for (int waited = 0; waited < 1000; waited++) {
        pthread_mutex_lock(&mu);
        int k = nstreams;
        pthread_mutex_unlock(&mu);
        if (k == n)
            break;
        usleep(10 * 1000);
    }
    if (nstreams != n) {
        fprintf(stderr, "http_stream_bench: only %d of %d streams opened\n", nstreams, n);
        return 1;
    }
    usleep(300 * 1000);
    long r2 = rss_kib();
    /* headers first, so the timed read below sees only the event */
    for (int i = 0; i < n; i++) {
        char buf[1024];
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        if (poll(&p, 1, 5000) > 0 && recv(fds[i], buf, sizeof buf, 0) <= 0)
            return 1;
    }
    static const char ev[] = "{\"type\":\"MODIFIED\",\"object\":{}}\n";   /* 32 bytes */
    int64_t t0 = ck_now_ns();
    for (int i = 0; i < n; i++)
        ck_http_stream_write(streams[i], ev, sizeof ev - 1);
    int64_t t1 = ck_now_ns();
    size_t framed = sizeof ev - 1 + 6;   /* "20\r\n" + data + "\r\n" */
    int complete = 0;
    for (int i = 0; i < n; i++)
        complete += drain(fds[i], framed) == framed;
    int64_t t2 = ck_now_ns();
    printf("# lib/httpd streams, plain HTTP, %d connections in one process\n", n);
    printf("idle connection: %.1f KiB RSS each\n", (double)(r1 - r0) / n);
    printf("open stream:     %.1f KiB RSS more each\n", (double)(r2 - r1) / n);
    printf("fan-out: %d writes from one thread in %.2f ms; all %d clients had the event after "
           "%.2f ms\n", n, (double)(t1 - t0) / 1e6, complete, (double)(t2 - t0) / 1e6);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    ck_httpd_stop(h);
    for (int i = 0; i < n; i++)
        ck_http_stream_release(streams[i]);
    free(streams);
    free(fds);
    return complete == n ? 0 : 1;
}
