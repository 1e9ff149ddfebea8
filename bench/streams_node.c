/* streams_node - a STAND-IN kubelet for streaming tests and benchmarks (not a kubelet).
 *
 * Usage: streams_node PORT CERT KEY [PORTFILE]
 * Serves the kubelet's streaming endpoints over HTTPS on 127.0.0.1:PORT (0: pick one, written
 * to PORTFILE) with src/streams: /exec/NS/POD/CONTAINER and /portForward/NS/POD run commands and
 * connect to ports on THIS host (no container, no namespaces), /attach/... attaches to one
 * long-running process started here that prints "attached-output N" lines and echoes its stdin.
 * It exists so the protocol stack (kubectl -> API server relay -> node side) can be tested end to
 * end before and independently of the real kubelet; tests that use it say so in their names.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/httpd.h"
#include "lib/log.h"
#include "lib/util.h"
#include "streams/streams.h"

static ck_stream_proc attached = {.pid = -1, .in_fd = -1, .out_fd = -1, .err_fd = -1, .pty_fd = -1};

static int spawn_host(void *ctx, const ck_stream_exec_opts *o, ck_stream_proc *p, ck_error **err)
{
    if (o->container && !strcmp(o->container, "missing"))
        return ck_error_set(err, CK_E_NOT_FOUND, "container not found (\"missing\")");
    if (o->attach) {
        *p = (ck_stream_proc){.pid = -1, .in_fd = -1, .out_fd = -1, .err_fd = -1, .pty_fd = -1};
        p->out_fd = o->stdout_ ? dup(attached.out_fd) : -1;
        p->in_fd = o->stdin_ ? dup(attached.in_fd) : -1;
        return 0;
    }
    return ck_streams_spawn(NULL, o, p, err);
}

static int connect_host(void *ctx, int port, ck_error **err)
{
    return ck_streams_connect_netns(NULL, port, err);
}

static void handler(void *ctx, ck_http_req *req, ck_http_resp *resp)
{
    char ns[256], pod[256], ct[256];
    ck_streams_config cfg = {0};
    if (sscanf(req->path, "/exec/%255[^/]/%255[^/]/%255s", ns, pod, ct) == 3)
        return ck_streams_serve_exec(req, resp, ct, false, &cfg, spawn_host, NULL);
    if (sscanf(req->path, "/attach/%255[^/]/%255[^/]/%255s", ns, pod, ct) == 3)
        return ck_streams_serve_exec(req, resp, ct, true, &cfg, spawn_host, NULL);
    if (sscanf(req->path, "/portForward/%255[^/]/%255s", ns, pod) == 2) {
        char desc[600];
        snprintf(desc, sizeof desc, "%s/%s", ns, pod);
        cfg.pod_desc = desc;
        return ck_streams_serve_portforward(req, resp, &cfg, connect_host, NULL);
    }
    ck_http_respond(resp, 404, "text/plain", NULL, "not found\n", 10);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: streams_node PORT CERT KEY [PORTFILE]\n");
        return 2;
    }
    ck_log_init("streams-node", CK_LOG_INFO);
    /* signals go to sigwait below, not to the server's threads (children get a clean mask) */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    char *cmd[] = {"sh", "-c", "(while read l; do echo got:$l; done) & i=0; "
                   "while :; do i=$((i+1)); echo attached-output $i; sleep 0.3; done", NULL};
    ck_stream_exec_opts ao = {.command = cmd, .ncommand = 3, .stdin_ = true, .stdout_ = true};
    ck_error *e = NULL;
    if (ck_streams_spawn(NULL, &ao, &attached, &e) < 0) {
        fprintf(stderr, "streams_node: %s\n", e->msg);
        return 1;
    }
    ck_httpd_config cfg = {.bind_addr = "127.0.0.1", .port = atoi(argv[1]), .cert_file = argv[2],
                           .key_file = argv[3], .handler = handler};
    ck_httpd *h = ck_httpd_start(&cfg, &e);
    if (!h) {
        fprintf(stderr, "streams_node: %s\n", e->msg);
        kill(attached.pid, SIGKILL);
        return 1;
    }
    if (argc > 4) {
        FILE *f = fopen(argv[4], "w");
        if (f) {
            fprintf(f, "%d\n", ck_httpd_port(h));
            fclose(f);
        }
    }
    int sig;
    sigwait(&set, &sig);
    ck_httpd_stop(h);
    kill(attached.pid, SIGKILL);
    return 0;
}
