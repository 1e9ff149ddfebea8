/* runtime.c - ready-made runtime pieces for the streaming handlers: start a command (optionally
 * behind a prefix such as nsenter or `runc exec`) with pipes or a pty, connect to a port inside
 * a network namespace, resize a pty.  See streams.h. */
#include "streams/streams.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <pty.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "streams/nsexec.h"

void ck_streams_resize(int pty_fd, unsigned width, unsigned height)
{
    struct winsize ws = {.ws_row = (unsigned short)height, .ws_col = (unsigned short)width};
    ioctl(pty_fd, TIOCSWINSZ, &ws);
}

static int status_code(int st)
{
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 255;
}

int ck__streams_release_and_wait(pid_t pid)
{
    /* the command holds the pipes, not us (nor any other fd of the kubelet's we inherited:
     * a stdin write end kept here would keep its EOF from the command) */
    int dn = open("/dev/null", O_RDWR);
    if (dn >= 0) {
        dup2(dn, 0);
        dup2(dn, 1);
        dup2(dn, 2);
    }
    close_range(3, ~0u, 0);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return 255;
    return status_code(st);
}

/* The forked child, with a runtime that detaches (`runc exec -d --pid-file F`): become a
 * subreaper, run the runtime, adopt the command once the runtime exits (its exit reparents the
 * command here), and exit with the command's status, or the runtime's if it failed.  The command
 * keeps our pipes as its stdio, so no runtime process copies its output.  Async-signal-safe
 * calls only: this is a fork of a threaded process. */
static _Noreturn void adopt_and_wait(char **argv, const char *pid_file, int ex_w)
{
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    pid_t rt = fork();
    if (rt <= 0) {
        if (rt == 0)
            execvp(argv[0], argv);
        int e = errno;
        ssize_t w = write(ex_w, &e, sizeof e);
        (void)w;
        _exit(127);
    }
    int rc = ck__streams_release_and_wait(rt);
    if (rc != 0) {
        unlink(pid_file);
        _exit(rc);
    }
    int st;
    char buf[32];
    ssize_t n = -1;
    int fd = open(pid_file, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        n = read(fd, buf, sizeof buf - 1);
        close(fd);
        unlink(pid_file);
    }
    pid_t cmd = 0;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
        cmd = cmd * 10 + (buf[i] - '0');
    if (cmd <= 0)
        _exit(255);
    for (;;) {   /* other orphans (the command's background children) are reaped on the way */
        pid_t w = waitpid(-1, &st, 0);
        if (w == cmd)
            _exit(status_code(st));
        if (w < 0 && errno != EINTR)
            _exit(255);
    }
}

static int spawn(char *const *prefix, const char *pid_file, ck_nsexec_plan *plan,
                 const ck_stream_exec_opts *o, ck_stream_proc *p, ck_error **err)
{
    size_t np = 0;
    while (prefix && prefix[np])
        np++;
    if (o->ncommand == 0)
        return ck_error_set(err, CK_E_BAD_REQUEST, "no command");
    cleanup_free char **argv = xcalloc(np + o->ncommand + 1, sizeof *argv);
    for (size_t i = 0; i < np; i++)
        argv[i] = prefix[i];
    for (size_t i = 0; i < o->ncommand; i++)
        argv[np + i] = o->command[i];
    *p = (ck_stream_proc){.pid = -1, .in_fd = -1, .out_fd = -1, .err_fd = -1, .pty_fd = -1};
    int in[2] = {-1, -1}, out[2] = {-1, -1}, er[2] = {-1, -1}, ex[2] = {-1, -1};
    int master = -1, slave = -1;
    if (pipe2(ex, O_CLOEXEC) < 0)
        return ck_error_sys(err, CK_E_INTERNAL, "pipe");
    if (o->tty) {
        if (openpty(&master, &slave, NULL, NULL, NULL) < 0) {
            close(ex[0]);
            close(ex[1]);
            return ck_error_sys(err, CK_E_INTERNAL, "openpty");
        }
        fcntl(master, F_SETFD, FD_CLOEXEC);
    } else if ((o->stdin_ && pipe2(in, O_CLOEXEC) < 0) || (o->stdout_ && pipe2(out, O_CLOEXEC) < 0) ||
               (o->stderr_ && pipe2(er, O_CLOEXEC) < 0)) {
        int fds[] = {in[0], in[1], out[0], out[1], er[0], er[1], ex[0], ex[1]};
        for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
            if (fds[i] >= 0)
                close(fds[i]);
        return ck_error_sys(err, CK_E_INTERNAL, "pipe");
    }
    /* the native exec: the command straight from here, no helper, nothing copied */
    pid_t pid = plan ? ck_nsexec_clone(plan, in[0], out[1], er[1], ex[1]) : -1;
    if (!plan || (pid < 0 && errno == ENOSYS))
        pid = fork();
    if (pid == 0) {
        /* child: new session (a tty becomes the controlling terminal), stdio, exec */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        setsid();
        int devnull = open("/dev/null", O_RDWR);
        if (o->tty) {
            ioctl(slave, TIOCSCTTY, 0);
            dup2(slave, 0);
            dup2(slave, 1);
            dup2(slave, 2);
        } else {
            dup2(o->stdin_ ? in[0] : devnull, 0);
            dup2(o->stdout_ ? out[1] : devnull, 1);
            dup2(o->stderr_ ? er[1] : devnull, 2);
        }
        if (!getenv("PATH"))
            setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
        if (o->tty && !getenv("TERM"))
            setenv("TERM", "xterm", 1);
        if (plan)
            ck_nsexec_child(plan, ex[1]);
        if (pid_file && !o->tty)
            adopt_and_wait(argv, pid_file, ex[1]);
        execvp(argv[0], argv);
        int e = errno;
        ssize_t w = write(ex[1], &e, sizeof e);
        (void)w;
        _exit(127);
    }
    int e = pid < 0 ? errno : 0;
    close(ex[1]);
    if (slave >= 0)
        close(slave);
    if (in[0] >= 0)
        close(in[0]);
    if (out[1] >= 0)
        close(out[1]);
    if (er[1] >= 0)
        close(er[1]);
    if (pid > 0) {
        ssize_t r = read(ex[0], &e, sizeof e);   /* EOF: exec succeeded (CLOEXEC) */
        if (r != sizeof e)
            e = 0;
    }
    close(ex[0]);
    if (pid < 0 || e) {
        if (master >= 0)
            close(master);
        int fds[] = {in[1], out[0], er[0]};
        for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
            if (fds[i] >= 0)
                close(fds[i]);
        if (pid > 0)
            waitpid(pid, NULL, 0);
        errno = e;
        /* upstream's wording for a missing binary in the container */
        return ck_error_set(err, CK_E_INTERNAL,
                            "failed to exec in container: starting container process caused: "
                            "exec: \"%s\": %s", o->command[0],
                            e == ENOENT ? "executable file not found in $PATH" : strerror(e));
    }
    p->pid = pid;
    /* bigger pipes: fewer, larger reads on the output path */
    if (out[0] >= 0)
        fcntl(out[0], F_SETPIPE_SZ, 1 << 20);
    if (in[1] >= 0)
        fcntl(in[1], F_SETPIPE_SZ, 1 << 20);
    if (o->tty) {
        p->pty_fd = master;
        p->out_fd = master;
        p->in_fd = o->stdin_ ? master : -1;
    } else {
        p->in_fd = in[1];
        p->out_fd = out[0];
        p->err_fd = er[0];
    }
    return 0;
}

int ck_streams_spawn(char *const *prefix, const ck_stream_exec_opts *o, ck_stream_proc *p,
                     ck_error **err)
{
    return spawn(prefix, NULL, NULL, o, p, err);
}

int ck_streams_spawn_adopt(char *const *prefix, const char *pid_file, const ck_stream_exec_opts *o,
                           ck_stream_proc *p, ck_error **err)
{
    return spawn(prefix, pid_file, NULL, o, p, err);
}

int ck_streams_spawn_native(const char *runc_root, const char *id, const ck_stream_exec_opts *o,
                            ck_stream_proc *p, ck_error **err)
{
    ck_nsexec_plan *plan = xmalloc(sizeof *plan);
    const char *why = NULL;
    int64_t t0 = ck_now_ns();
    int rc = ck_nsexec_prepare(runc_root, id, o, plan, &why, err);
    if (rc == 0) {
        int64_t t1 = ck_now_ns();
        rc = spawn(NULL, NULL, plan, o, p, err);
        ck_nsexec_plan_free(plan);
        log_debug("exec in %s: planned in %.2f ms, command started %.2f ms later", id,
                  (double)(t1 - t0) / 1e6, (double)(ck_now_ns() - t1) / 1e6);
    } else if (rc > 0) {
        log_debug("exec in %s through the runtime: %s", id, why);
    }
    free(plan);
    return rc;
}

struct nsconn {
    const char *path;
    int port;
    int fd;
    int err;
    const char *step;
};

static void *nsconn_thread(void *arg)
{
    struct nsconn *c = arg;
    if (c->path) {
        int nfd = open(c->path, O_RDONLY | O_CLOEXEC);
        if (nfd < 0) {
            c->err = errno;
            c->step = "open netns";
            return NULL;
        }
        /* this thread only: unshare the fs attributes first is not needed for CLONE_NEWNET */
        if (setns(nfd, CLONE_NEWNET) < 0) {
            c->err = errno;
            c->step = "setns";
            close(nfd);
            return NULL;
        }
        close(nfd);
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        c->err = errno;
        c->step = "socket";
        return NULL;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        c->err = errno;
        c->step = "dial tcp4 127.0.0.1";
        close(fd);
        return NULL;
    }
    int one = 1;   /* as Go's net.Dial: small writes (requests, keystrokes) go out at once */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    return NULL;
}

int ck_streams_connect_netns(const char *netns_path, int port, ck_error **err)
{
    struct nsconn c = {.path = netns_path, .port = port, .fd = -1};
    pthread_t th;
    /* a thread of its own: setns(CLONE_NEWNET) changes only the calling thread, which then
     * exits, so the caller's namespace never changes */
    if (pthread_create(&th, NULL, nsconn_thread, &c) != 0)
        return ck_error_set(err, CK_E_INTERNAL, "cannot start a thread");
    pthread_join(th, NULL);
    if (c.fd < 0) {
        errno = c.err;
        return ck_error_set(err, CK_E_INTERNAL, "%s:%d: %s: %s", c.step, port,
                            c.err == ECONNREFUSED ? "connect" : "error", strerror(c.err));
    }
    return c.fd;
}
