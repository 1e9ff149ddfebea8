/* streaming.c - the kubelet's exec, attach and port-forward endpoints, on src/streams:
 *
 *   GET|POST /exec/NS/POD/CONTAINER?command=...&stdin=&stdout=&stderr=&tty=
 *   GET|POST /attach/NS/POD/CONTAINER?...
 *   GET|POST /portForward/NS/POD
 *
 * exec without a tty joins the container itself (ck_streams_spawn_native: its cgroups,
 * namespaces, user, capabilities, env, cwd from runc's state and config.json), 20-40 ms sooner
 * than `runc exec`; a container with settings it does not apply goes through `runc exec -d`
 * under the adopting helper.  With a tty, `runc exec -t ID CMD...`: runc's stdio is the slave of
 * a pty we own, so window size changes reach the container through runc's SIGWINCH handling.
 * port-forward connects to 127.0.0.1:PORT inside the pod's network namespace from a helper
 * thread.  attach reaches the container's own stdio through its shim's socket (attach.c): the
 * shim hands over pipes it fans the output into, the container's stdin and the pty master; the
 * session ends when the container's output does.  A missing pod or container is answered before
 * the upgrade, so kubectl prints upstream's "unable to upgrade connection: container not found".
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kubelet/kubelet.h"
#include "lib/http_util.h"
#include "lib/util.h"
#include "streams/streams.h"

typedef struct exec_ctx {
    ck_kubelet *k;
    char *id;
} exec_ctx;

static int spawn_runc(void *ctx, const ck_stream_exec_opts *o, ck_stream_proc *p, ck_error **err)
{
    exec_ctx *x = ctx;
    const ck_runtime *rt = &x->k->rt;
    if (o->tty) {
        char *prefix[] = {(char *)rt->runc, "--root", (char *)rt->root, "exec", "-t", x->id, NULL};
        return ck_streams_spawn(prefix, o, p, err);
    }
    /* without runc when the container allows (ck_streams_spawn_native); CKUBE_EXEC_VIA_RUNC=1
     * keeps runc for every exec (comparisons, a suspected difference) */
    static int via_runc = -1;
    if (via_runc < 0)
        via_runc = getenv("CKUBE_EXEC_VIA_RUNC") && !strcmp(getenv("CKUBE_EXEC_VIA_RUNC"), "1");
    if (!via_runc) {
        int rc = ck_streams_spawn_native(rt->root, x->id, o, p, err);
        if (rc <= 0)
            return rc;
    }
    /* detached: the command writes into our pipes itself (see ck_streams_spawn_adopt) */
    static unsigned long seq;
    char pid_file[4200];
    snprintf(pid_file, sizeof pid_file, "%s/exec.%d.%lu.pid", x->k->root, (int)getpid(),
             __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
    char *prefix[] = {(char *)rt->runc, "--root", (char *)rt->root, "exec", "-d",
                      "--pid-file", pid_file, x->id, NULL};
    return ck_streams_spawn_adopt(prefix, pid_file, o, p, err);
}

static void exec_ctx_free(void *ctx)
{
    exec_ctx *x = ctx;
    free(x->id);
    free(x);
}

/* attach: ctx is the container's directory */
static int attach_shim(void *ctx, const ck_stream_exec_opts *o, ck_stream_proc *p, ck_error **err)
{
    int fds[4];
    if (ck_attach_connect(ctx, o->stdin_, o->stdout_, o->stderr_, fds, err) < 0)
        return -1;
    *p = (ck_stream_proc){.pid = -1, .in_fd = fds[0], .out_fd = fds[1], .err_fd = fds[2],
                          .pty_fd = fds[3]};
    /* stderr asked for but absent (a tty): a stream that ends at once, so a SPDY client sees
     * its end instead of waiting for the connection to close */
    int pp[2];
    if (o->stderr_ && p->err_fd < 0 && pipe2(pp, O_CLOEXEC) == 0) {
        close(pp[1]);
        p->err_fd = pp[0];
    }
    return 0;
}

static int connect_netns(void *ctx, int port, ck_error **err)
{
    return ck_streams_connect_netns(ctx, port, err);
}

static void respond_status(ck_http_resp *resp, int code, const char *reason, const char *msg)
{
    char *body = ck_http__status_json(code, reason, msg);
    ck_http_respond(resp, code, "application/json", NULL, body, strlen(body));
    free(body);
}

void ck_kubelet_streaming_serve(ck_kubelet *k, ck_http_req *req, ck_http_resp *resp)
{
    char what[16], ns[256], pod[256], ct[256] = "";
    if (sscanf(req->path, "/%15[^/]/%255[^/]/%255[^/]/%255s", what, ns, pod, ct) < 3)
        return respond_status(resp, 404, "NotFound", "want /exec|attach/NS/POD/CONTAINER or "
                              "/portForward/NS/POD");
    ck_error *e = NULL;
    if (!strcmp(what, "attach")) {
        char *dir = NULL;
        if (ck_pods_attach_target(k, ns, pod, ct, NULL, NULL, &dir, &e) < 0) {
            respond_status(resp, 404, "NotFound", e->msg);
            ck_error_free(e);
            return;
        }
        ck_streams_config cfg = {.ctx_free = free};
        return ck_streams_serve_exec(req, resp, ct, true, &cfg, attach_shim, dir);
    }
    if (!strcmp(what, "portForward")) {
        char *netns = NULL;
        if (ck_pods_exec_target(k, ns, pod, NULL, NULL, &netns, &e) < 0 || !netns) {
            respond_status(resp, 404, "NotFound", e ? e->msg : "pod has no network namespace");
            ck_error_free(e);
            free(netns);
            return;
        }
        char desc[600];
        snprintf(desc, sizeof desc, "%s/%s", ns, pod);
        ck_streams_config cfg = {.pod_desc = desc, .ctx_free = free};
        return ck_streams_serve_portforward(req, resp, &cfg, connect_netns, netns);
    }
    if (strcmp(what, "exec"))
        return respond_status(resp, 404, "NotFound", "not found");
    exec_ctx *x = xcalloc(1, sizeof *x);
    x->k = k;
    if (ck_pods_exec_target(k, ns, pod, ct, &x->id, NULL, &e) < 0) {
        respond_status(resp, 404, "NotFound", e->msg);
        ck_error_free(e);
        free(x);
        return;
    }
    ck_streams_config cfg = {.ctx_free = exec_ctx_free};
    ck_streams_serve_exec(req, resp, ct, false, &cfg, spawn_runc, x);
}
