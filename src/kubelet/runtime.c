/* runtime.c - containers through an OCI runtime binary (runc; crun where the host allows it).
 *
 * Each container runs under a shim (`ckube kubelet-shim`, a double-forked, session-leading child
 * reparented away from the kubelet, like conmon): it is the child subreaper of `runc create`, so
 * the container's init becomes its child (`runc run --detach`: one runtime exec); it holds the read ends of the container's stdout and
 * stderr pipes and writes them to the log file in CRI format; when init exits it writes
 * "<exit code> <finished wall ns>" to the exit file and leaves.  The kubelet therefore needs no
 * live link to a container: a restarted kubelet finds containers running (pid alive, no exit file)
 * or finished (exit file), and logs keep flowing meanwhile.
 *
 * ck_run_cmd is the one fork+exec helper: output bounded, a timeout, every fd but 0-2 closed in
 * the child.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kubelet/kubelet.h"
#include "lib/flags.h"
#include "lib/util.h"

#define CMD_OUTPUT_LIMIT (256 * 1024)

extern char **environ;

static void close_from(int lowfd)
{
    if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0) == 0)
        return;
    for (int fd = lowfd; fd < 4096; fd++)
        close(fd);
}

static char *find_exe(const char *name)
{
    if (strchr(name, '/'))
        return xstrdup(name);
    const char *path = getenv("PATH");
    cleanup_free char *copy = xstrdup(path && *path ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
    char *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char *p = xasprintf("%s/%s", d, name);
        if (access(p, X_OK) == 0)
            return p;
        free(p);
    }
    return xstrdup(name);
}

int ck_run_cmd(char *const argv[], const char *stdin_data, char *const envp[], int timeout_ms,
               char **out, ck_error **err)
{
    int inp[2] = {-1, -1}, outp[2];
    if (pipe2(outp, O_CLOEXEC) < 0)
        return ck_error_sys(err, CK_E_IO, "pipe");
    if (stdin_data && pipe2(inp, O_CLOEXEC) < 0) {
        close(outp[0]);
        close(outp[1]);
        return ck_error_sys(err, CK_E_IO, "pipe");
    }
    cleanup_free char *exe = find_exe(argv[0]);
    pid_t pid = fork();
    if (pid < 0) {
        close(outp[0]);
        close(outp[1]);
        if (inp[0] >= 0) {
            close(inp[0]);
            close(inp[1]);
        }
        return ck_error_sys(err, CK_E_IO, "fork");
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(inp[0] >= 0 ? inp[0] : devnull, 0);
        dup2(outp[1], 1);
        dup2(outp[1], 2);
        close_from(3);
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        execve(exe, argv, envp ? envp : environ);
        _exit(127);
    }
    close(outp[1]);
    if (inp[0] >= 0) {
        close(inp[0]);
        size_t len = strlen(stdin_data), off = 0;
        while (off < len) {
            ssize_t w = write(inp[1], stdin_data + off, len - off);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        close(inp[1]);
    }
    ck_buf b;
    ck_buf_init(&b, CMD_OUTPUT_LIMIT);
    int64_t deadline = ck_now_ns() + (int64_t)timeout_ms * 1000000;
    bool timed_out = false;
    for (;;) {
        int64_t left = (deadline - ck_now_ns()) / 1000000;
        if (timeout_ms > 0 && left <= 0) {
            timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        struct pollfd p = {.fd = outp[0], .events = POLLIN};
        int r = poll(&p, 1, timeout_ms > 0 ? (int)left : -1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        char tmp[4096];
        ssize_t n = read(outp[0], tmp, sizeof tmp);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        (void)ck_buf_add(&b, tmp, (size_t)n);  /* past the limit: keep the start */
    }
    close(outp[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (out)
        *out = ck_buf_steal(&b);
    else
        ck_buf_free(&b);
    if (timed_out)
        return ck_error_set(err, CK_E_TIMEOUT, "%s: timed out after %d ms", argv[0], timeout_ms);
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int ck_write_file_nosync(const char *path, const void *data, size_t len, int mode)
{
    cleanup_free char *tmp = xasprintf("%s.tmp.%d.%lld", path, (int)getpid(), (long long)ck_now_ns());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, data, len);
    if (close(fd) < 0 || n != (ssize_t)len || rename(tmp, path) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Run a runtime subcommand; non-zero exit -> error with its output. */
static int runtime_cmd(const ck_runtime *rt, char *const args[], int timeout_ms, ck_error **err)
{
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)rt->runc;
    argv[n++] = "--root";
    argv[n++] = (char *)rt->root;
    for (int i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    cleanup_free char *out = NULL;
    int rc = ck_run_cmd(argv, NULL, NULL, timeout_ms, &out, err);
    if (rc < 0)
        return -1;
    if (rc != 0) {
        size_t l = strlen(out);
        while (l && (out[l - 1] == '\n' || out[l - 1] == ' '))
            out[--l] = '\0';
        return ck_error_set(err, CK_E_INTERNAL, "%s %s: %s", rt->runc, args[0], out);
    }
    return 0;
}

int ck_runtime_kill(const ck_runtime *rt, const char *id, int sig, ck_error **err)
{
    char s[16];
    snprintf(s, sizeof s, "%d", sig);
    char *args[] = {"kill", (char *)id, s, NULL};
    return runtime_cmd(rt, args, 10000, err);
}

int ck_runtime_delete(const ck_runtime *rt, const char *id, ck_error **err)
{
    char *args[] = {"delete", "--force", (char *)id, NULL};
    ck_error *e = NULL;
    if (runtime_cmd(rt, args, 10000, &e) < 0) {
        bool gone = strstr(e->msg, "does not exist") || strstr(e->msg, "not exist");
        if (gone) {
            ck_error_free(e);
            return 0;
        }
        if (err)
            *err = e;
        else
            ck_error_free(e);
        return -1;
    }
    return 0;
}

int ck_runtime_exec(const ck_runtime *rt, const char *id, char *const argv[], int timeout_ms,
                    char **out, ck_error **err)
{
    char *a[64];
    int n = 0;
    a[n++] = (char *)rt->runc;
    a[n++] = "--root";
    a[n++] = (char *)rt->root;
    a[n++] = "exec";
    a[n++] = (char *)id;
    for (int i = 0; argv[i] && n < 63; i++)
        a[n++] = argv[i];
    a[n] = NULL;
    return ck_run_cmd(a, NULL, NULL, timeout_ms, out, err);
}

pid_t ck_runtime_run(const ck_runtime *rt, const char *id, const char *bundle,
                     const char *log_path, const char *exit_path, ck_error **err)
{
    int sync[2];
    if (pipe2(sync, O_CLOEXEC) < 0)
        return ck_error_sys(err, CK_E_IO, "pipe");
    char *argv[] = {(char *)rt->self_exe, "kubelet-shim", "--id", (char *)id, "--bundle",
                    (char *)bundle, "--log", (char *)log_path, "--exit", (char *)exit_path,
                    "--runtime", (char *)rt->runc, "--runtime-root", (char *)rt->root, NULL};
    pid_t pid = fork();
    if (pid < 0) {
        close(sync[0]);
        close(sync[1]);
        return ck_error_sys(err, CK_E_IO, "fork");
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
        dup2(sync[1], 3);
        close_from(4);
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        execve(rt->self_exe, argv, environ);
        _exit(127);
    }
    close(sync[1]);
    /* The shim forks once more and its first process exits: reap it now. */
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    char msg[4096];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(sync[0], msg + len, sizeof msg - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len >= sizeof msg - 1)
            break;
    }
    close(sync[0]);
    msg[len] = '\0';
    if (!strncmp(msg, "ok ", 3))
        return (pid_t)atol(msg + 3);
    if (!strncmp(msg, "err ", 4)) {
        char *m = msg + 4;
        size_t l = strlen(m);
        while (l && (m[l - 1] == '\n' || m[l - 1] == ' '))
            m[--l] = '\0';
        return ck_error_set(err, CK_E_INTERNAL, "%s", m);
    }
    return ck_error_set(err, CK_E_INTERNAL, "container shim failed to start (status %d)", st);
}

/* ---------------- the shim process ---------------- */

static void shim_report(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void shim_report(int fd, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 1)
        n = sizeof buf - 1;
    for (char *p = buf + 4; p < buf + n; p++)
        if (*p == '\n')
            *p = ' ';
    if (write(fd, buf, (size_t)n) < 0) {
        /* the kubelet went away; nothing else to tell */
    }
    close(fd);
}

/* Run argv with stdout/stderr = out_fd, err_fd; wait for it; returns exit status. */
static int shim_spawn(char *const argv[], int out_fd, int err_fd)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(out_fd, 1);
        dup2(err_fd, 2);
        close_from(3);
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

typedef struct shim_stream {
    int fd;
    const char *name;
    char buf[16384];
    size_t len;
} shim_stream;

/* Write whole lines (F) and, when the buffer is full or at EOF, a partial one (P). */
/* Size rotation: past LOG_MAX_BYTES the file becomes <log>.1 (one rotated file kept, as
 * upstream's containerLogMaxFiles=2) and a new one is started. */
#define LOG_MAX_BYTES (10 * 1024 * 1024)
static const char *shim_log_path;
static off_t shim_log_size;

static void shim_rotate(int *log_fd)
{
    char old[4096];
    snprintf(old, sizeof old, "%s.1", shim_log_path);
    if (rename(shim_log_path, old) < 0)
        return;
    int fd = open(shim_log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        return;
    close(*log_fd);
    *log_fd = fd;
    shim_log_size = 0;
}

static void shim_flush(shim_stream *s, int *log_fd, bool final)
{
    size_t start = 0;
    for (;;) {
        char *nl = memchr(s->buf + start, '\n', s->len - start);
        size_t end;
        char tag;
        if (nl) {
            end = (size_t)(nl - s->buf);
            tag = 'F';
        } else if (s->len - start > 0 && (final || s->len == sizeof s->buf)) {
            end = s->len;
            tag = 'P';
        } else {
            break;
        }
        char ts[40];
        ck_cri_format_time(ck_wall_ns(), ts);
        char head[80];
        int hl = snprintf(head, sizeof head, "%s %s %c ", ts, s->name, tag);
        /* one write per line keeps lines whole for concurrent readers */
        size_t ll = end - start;
        char *line = xmalloc((size_t)hl + ll + 1);
        memcpy(line, head, (size_t)hl);
        memcpy(line + hl, s->buf + start, ll);
        line[hl + ll] = '\n';
        if (shim_log_size + (off_t)(hl + ll + 1) > LOG_MAX_BYTES)
            shim_rotate(log_fd);
        if (write(*log_fd, line, (size_t)hl + ll + 1) < 0) {
            /* disk full: drop the line rather than block the container */
        } else {
            shim_log_size += (off_t)(hl + ll + 1);
        }
        free(line);
        start = nl ? end + 1 : end;
    }
    memmove(s->buf, s->buf + start, s->len - start);
    s->len -= start;
}

int ck_shim_main(int argc, char **argv)
{
    char *id = NULL, *bundle = NULL, *log_path = NULL, *exit_path = NULL, *runc = "runc",
         *rroot = "/run/ckube-runc";
    ck_flag flags[] = {
        {"id", CK_FLAG_STRING, &id, "container id"},
        {"bundle", CK_FLAG_STRING, &bundle, "OCI bundle"},
        {"log", CK_FLAG_STRING, &log_path, "CRI log file"},
        {"exit", CK_FLAG_STRING, &exit_path, "exit code file"},
        {"runtime", CK_FLAG_STRING, &runc, "OCI runtime binary"},
        {"runtime-root", CK_FLAG_STRING, &rroot, "OCI runtime state dir"},
    };
    ck_flags_parse("kubelet-shim", "Container shim (internal)", argc, argv, flags,
                   ARRAY_SIZE(flags));
    int sync = 3;
    if (!id || !bundle || !log_path || !exit_path) {
        shim_report(sync, "err shim: missing flags\n");
        /* run by hand there is no sync pipe: say it where a person looks */
        fprintf(stderr, "Error: --id, --bundle, --log and --exit are required (internal command, "
                        "started by the kubelet)\n");
        return 2;
    }
    pid_t p = fork();
    if (p < 0) {
        shim_report(sync, "err shim: fork: %s\n", strerror(errno));
        return 1;
    }
    if (p > 0)
        _exit(0);
    setsid();
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    signal(SIGPIPE, SIG_IGN);
    int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    shim_log_path = log_path;
    if (log_fd < 0) {
        shim_report(sync, "err open log %s: %s\n", log_path, strerror(errno));
        return 1;
    }
    int outp[2], errp[2];
    if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
        shim_report(sync, "err pipe: %s\n", strerror(errno));
        return 1;
    }
    cleanup_free char *pidfile = xasprintf("%s/init.pid", bundle);
    char *run[] = {runc, "--root", rroot, "run", "--detach", "--bundle", bundle, "--pid-file",
                   pidfile, id, NULL};
    /* One runtime exec (run --detach = create + start).  The runtime's own stdio is the
     * container's, so its error message arrives on the stderr pipe. */
    int rc = shim_spawn(run, outp[1], errp[1]);
    close(outp[1]);
    close(errp[1]);
    if (rc != 0) {
        char ebuf[2048];
        fcntl(errp[0], F_SETFL, O_NONBLOCK);
        ssize_t n = read(errp[0], ebuf, sizeof ebuf - 1);
        ebuf[n > 0 ? n : 0] = '\0';
        shim_report(sync, "err %s run: %s\n", runc, n > 0 ? ebuf : "failed");
        char *del[] = {runc, "--root", rroot, "delete", "--force", id, NULL};
        int dn = open("/dev/null", O_WRONLY);
        shim_spawn(del, dn, dn);
        return 1;
    }
    char pidbuf[32] = "";
    {
        int fd = open(pidfile, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, pidbuf, sizeof pidbuf - 1) : -1;
        pidbuf[n > 0 ? n : 0] = '\0';
        if (fd >= 0)
            close(fd);
    }
    pid_t init = (pid_t)atol(pidbuf);
    shim_report(sync, "ok %ld\n", (long)init);
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(devnull, 2);

    shim_stream streams[2] = {{.fd = outp[0], .name = "stdout"}, {.fd = errp[0], .name = "stderr"}};
    fcntl(outp[0], F_SETFL, O_NONBLOCK);
    fcntl(errp[0], F_SETFL, O_NONBLOCK);
    int open_streams = 2, status = -1;
    bool exited = false;
    int64_t exit_at = 0;
    while (open_streams > 0 || !exited) {
        struct pollfd pf[2];
        int np = 0;
        for (int i = 0; i < 2; i++)
            if (streams[i].fd >= 0)
                pf[np++] = (struct pollfd){.fd = streams[i].fd, .events = POLLIN};
        if (np)
            poll(pf, (nfds_t)np, 200);
        else
            usleep(200 * 1000);
        for (int i = 0; i < 2; i++) {
            shim_stream *s = &streams[i];
            if (s->fd < 0)
                continue;
            ssize_t n = read(s->fd, s->buf + s->len, sizeof s->buf - s->len);
            if (n > 0) {
                s->len += (size_t)n;
                shim_flush(s, &log_fd, false);
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                shim_flush(s, &log_fd, true);
                close(s->fd);
                s->fd = -1;
                open_streams--;
            }
        }
        int st;
        pid_t w;
        while ((w = waitpid(-1, &st, WNOHANG)) > 0)
            if (w == init) {
                status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                exited = true;
                exit_at = ck_now_ns();
            }
        if (w < 0 && errno == ECHILD && !exited) {
            exited = true;  /* init is not ours (should not happen): give up waiting */
            exit_at = ck_now_ns();
        }
        /* a daemon that escaped the pid namespace may hold the pipes: stop after 2 s */
        if (exited && ck_now_ns() - exit_at > 2000000000LL)
            break;
    }
    for (int i = 0; i < 2; i++)
        if (streams[i].len)
            shim_flush(&streams[i], &log_fd, true);
    close(log_fd);
    char out[64];
    int n = snprintf(out, sizeof out, "%d %lld\n", status, (long long)ck_wall_ns());
    ck_write_file_nosync(exit_path, out, (size_t)n, 0644);
    return 0;
}
