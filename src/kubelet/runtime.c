/* runtime.c - containers through an OCI runtime binary (runc; crun where the host allows it).
 *
 * Each container runs under a shim (`ckube kubelet-shim`, a double-forked, session-leading child
 * reparented away from the kubelet, like conmon): it is the child subreaper of `runc create`, so
 * the container's init becomes its child (`runc run --detach`: one runtime exec); it holds the read ends of the container's stdout and
 * stderr pipes (or the pty master for tty containers) and writes them to the log file in CRI
 * format, keeps the container's stdin, and serves attach on a socket (attach.c); when init exits it writes
 * "<exit code> <finished wall ns>" to the exit file and leaves.  The kubelet therefore needs no
 * live link to a container: a restarted kubelet finds containers running (pid alive, no exit file)
 * or finished (exit file), and logs keep flowing meanwhile.  Shims are forked by one long-lived
 * `ckube kubelet-shim --launcher` (no exec per container); the kubelet executes the shim itself
 * only when the launcher is gone.
 *
 * ck_spawn is the one process-starting helper (posix_spawn: no fork of the multi-threaded
 * kubelet); ck_run_cmd runs a command with it: output bounded, a timeout, every fd but 0-2
 * closed in the child.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <spawn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kubelet/kubelet.h"
#include "lib/flags.h"
#include "lib/log.h"
#include "lib/util.h"

#define CMD_OUTPUT_LIMIT (256 * 1024)
#define LAUNCH_MSG_MAX 16384
#define LAUNCH_MAX_ARGS 32

extern char **environ;

static int launcher_main(int sock);

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

/* Start exe with the given stdio, every other fd closed, an empty signal mask and SIGPIPE at its
 * default.  posix_spawn (clone with CLONE_VM|CLONE_VFORK in glibc) instead of fork: the kubelet is
 * multi-threaded and tens of MB, and a fork per CNI/runc/rm call copied its page tables and then
 * paid copy-on-write faults in every thread; that was most of the kubelet's own CPU in a burst of
 * pod starts.  extra_fd >= 0 becomes fd 3.  Returns 0 or an errno value. */
int ck_spawn(pid_t *pid, const char *exe, char *const argv[], char *const envp[], int in_fd,
             int out_fd, int err_fd, int extra_fd)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    int dn = -1;
    if (in_fd < 0 || out_fd < 0 || err_fd < 0)
        dn = open("/dev/null", O_RDWR | O_CLOEXEC);
    /* dup2 onto itself would keep O_CLOEXEC: move such fds out of the way first */
    int moved[4] = {-1, -1, -1, -1};
    int src[4] = {in_fd < 0 ? dn : in_fd, out_fd < 0 ? dn : out_fd, err_fd < 0 ? dn : err_fd, extra_fd};
    for (int i = 0; i < 4; i++)
        if (src[i] >= 0 && src[i] <= 3) {
            moved[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 10);
            src[i] = moved[i];
        }
    for (int i = 0; i < 4; i++)
        if (src[i] >= 0)
            posix_spawn_file_actions_adddup2(&fa, src[i], i);
    posix_spawn_file_actions_addclosefrom_np(&fa, extra_fd >= 0 ? 4 : 3);
    sigset_t none, def;
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int rc = posix_spawn(pid, exe, &fa, &at, argv, envp ? envp : environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    for (int i = 0; i < 4; i++)
        if (moved[i] >= 0)
            close(moved[i]);
    if (dn >= 0)
        close(dn);
    return rc;
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
    pid_t pid;
    int src = ck_spawn(&pid, exe, argv, envp, inp[0], outp[1], outp[1], -1);
    if (src != 0) {
        /* as a shell would: the command could not be run -> 127 and the reason as output */
        close(outp[0]);
        close(outp[1]);
        if (inp[0] >= 0) {
            close(inp[0]);
            close(inp[1]);
        }
        if (out)
            *out = xasprintf("%s: %s\n", argv[0], strerror(src));
        return 127;
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
        return ck_error_pass(err, e);
    }
    return 0;
}

/* Is pid (still) the init of container id?  runc put it in the cgroup ".../<id>". */
static bool pid_is_container(pid_t pid, const char *id)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
    cleanup_free char *data = NULL;
    size_t len;
    if (ck_read_file(path, 1 << 16, &data, &len) < 0)
        return false;
    cleanup_free char *want = xasprintf("/%s\n", id);
    return strstr(data, want) != NULL;
}

int ck_runtime_signal(const ck_runtime *rt, const char *id, pid_t pid, int sig, ck_error **err)
{
    if (pid > 0) {
        /* a pidfd pins the process: once it is checked to be the container's init, the signal
         * cannot reach a process that reused the pid */
        int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pfd < 0 && errno == ESRCH)
            return 0;   /* gone already */
        if (pfd >= 0) {
            bool ours = pid_is_container(pid, id);
            int rc = ours ? (int)syscall(SYS_pidfd_send_signal, pfd, sig, NULL, 0) : -1;
            int e = errno;
            close(pfd);
            if (ours && (rc == 0 || e == ESRCH))
                return 0;
        }
    }
    return ck_runtime_kill(rt, id, sig, err);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void ck_rm_tree(const char *path)
{
    /* FTW_MOUNT: never into a mount left under path (rm --one-file-system) */
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

int ck_runtime_forget(const ck_runtime *rt, const char *id, const char *cgroup, ck_error **err)
{
    /* a stopped container is its state dir and its (empty) cgroups; a cgroup still busy means
     * processes outlived init: runc delete --force kills them */
    if (ck_cgroup_remove(cgroup) > 0)
        return ck_runtime_delete(rt, id, err);
    cleanup_free char *dir = xasprintf("%s/%s", rt->root, id);
    ck_rm_tree(dir);
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

/* Ask the launcher to fork a shim: one SOCK_SEQPACKET message with the shim's argv (NUL
 * separated) and the sync pipe's write end as SCM_RIGHTS.  -1 when the launcher is gone. */
static int launcher_send(const ck_runtime *rt, char *const argv[], int sync_fd)
{
    char buf[LAUNCH_MSG_MAX];
    size_t len = 0;
    for (int i = 0; argv[i]; i++) {
        size_t l = strlen(argv[i]) + 1;
        if (len + l > sizeof buf)
            return -1;
        memcpy(buf + len, argv[i], l);
        len += l;
    }
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                       .msg_controllen = sizeof ctl.b};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &sync_fd, sizeof(int));
    ssize_t n;
    while ((n = sendmsg(rt->launcher_fd, &m, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    return n == (ssize_t)len ? 0 : -1;
}

pid_t ck_runtime_run(const ck_runtime *rt, const char *id, const char *bundle,
                     const char *log_path, const char *exit_path, unsigned io, ck_error **err)
{
    int sync[2];
    if (pipe2(sync, O_CLOEXEC) < 0)
        return ck_error_sys(err, CK_E_IO, "pipe");
    char *argv[20] = {(char *)rt->self_exe, "kubelet-shim", "--id", (char *)id, "--bundle",
                      (char *)bundle, "--log", (char *)log_path, "--exit", (char *)exit_path,
                      "--runtime", (char *)rt->runc, "--runtime-root", (char *)rt->root};
    int na = 14;
    if (io & CK_SHIM_STDIN)
        argv[na++] = "--stdin";
    if (io & CK_SHIM_STDIN_ONCE)
        argv[na++] = "--stdin-once";
    if (io & CK_SHIM_TTY)
        argv[na++] = "--tty";
    argv[na] = NULL;
    int st = 0;
    if (rt->launcher_fd > 0 && launcher_send(rt, argv + 1, sync[1]) == 0) {
        /* the launcher reaps the shim's first process */
    } else {
        if (rt->launcher_fd > 0)
            log_warn("shim launcher gone (%s): executing the shim", strerror(errno));
        pid_t pid;
        int src = ck_spawn(&pid, rt->self_exe, argv, NULL, -1, -1, -1, sync[1]);
        if (src != 0) {
            close(sync[0]);
            close(sync[1]);
            errno = src;
            return ck_error_sys(err, CK_E_IO, "spawn %s", rt->self_exe);
        }
        close(sync[1]);
        sync[1] = -1;
        /* The shim forks once more and its first process exits: reap it now. */
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
    }
    if (sync[1] >= 0)
        close(sync[1]);
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

/* Run argv with stdio = in_fd, out_fd, err_fd; wait for it; returns exit status. */
static int shim_spawn(char *const argv[], int in_fd, int out_fd, int err_fd)
{
    cleanup_free char *exe = find_exe(argv[0]);
    pid_t pid;
    if (ck_spawn(&pid, exe, argv, NULL, in_fd, out_fd, err_fd, -1) != 0)
        return 127;
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
    bool launcher = false, opt_stdin = false, stdin_once = false, tty = false;
    ck_flag flags[] = {
        {"id", CK_FLAG_STRING, &id, "container id"},
        {"bundle", CK_FLAG_STRING, &bundle, "OCI bundle"},
        {"log", CK_FLAG_STRING, &log_path, "CRI log file"},
        {"exit", CK_FLAG_STRING, &exit_path, "exit code file"},
        {"runtime", CK_FLAG_STRING, &runc, "OCI runtime binary"},
        {"runtime-root", CK_FLAG_STRING, &rroot, "OCI runtime state dir"},
        {"launcher", CK_FLAG_BOOL, &launcher, "serve shim launch requests on fd 3 (internal)"},
        {"stdin", CK_FLAG_BOOL, &opt_stdin, "keep the container's stdin open for attach"},
        {"stdin-once", CK_FLAG_BOOL, &stdin_once, "close stdin when the first attach ends"},
        {"tty", CK_FLAG_BOOL, &tty, "the container's stdio is a pty (bundle: terminal true)"},
    };
    ck_flags_parse("kubelet-shim", "Container shim (internal)", argc, argv, flags,
                   ARRAY_SIZE(flags));
    int sync = 3;
    if (launcher)
        return launcher_main(sync);
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
    int outp[2], errp[2], inp[2] = {-1, -1};
    if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
        (opt_stdin && !tty && pipe2(inp, O_CLOEXEC) < 0)) {
        shim_report(sync, "err pipe: %s\n", strerror(errno));
        return 1;
    }
    /* attach (attach.c): the socket exists before the container runs */
    ck_error *e = NULL;
    ck_attach_srv *as = ck_attach_listen(bundle, &e);
    if (!as) {
        shim_report(sync, "err attach socket: %s\n", e->msg);
        return 1;
    }
    int con_l = -1;
    cleanup_free char *con_path = NULL;
    if (tty && (con_l = ck_attach_console_listen(as, bundle, &con_path, &e)) < 0) {
        shim_report(sync, "err console socket: %s\n", e->msg);
        return 1;
    }
    cleanup_free char *pidfile = xasprintf("%s/init.pid", bundle);
    char *run[] = {runc, "--root", rroot, "run", "--detach", "--bundle", bundle, "--pid-file",
                   pidfile, tty ? "--console-socket" : id, tty ? con_path : NULL, id, NULL};
    /* One runtime exec (run --detach = create + start).  Without a tty the runtime's own stdio
     * is the container's, so its error message arrives on the stderr pipe; with one, the
     * container gets the pty's slave and the runtime sends us the master. */
    int rc = shim_spawn(run, inp[0], outp[1], errp[1]);
    close(outp[1]);
    close(errp[1]);
    if (inp[0] >= 0)
        close(inp[0]);
    int pty = -1;
    if (rc == 0 && tty && (pty = ck_attach_console_recv(as, con_l, &e)) < 0)
        rc = -1;
    if (rc != 0) {
        char ebuf[2048];
        fcntl(errp[0], F_SETFL, O_NONBLOCK);
        ssize_t n = read(errp[0], ebuf, sizeof ebuf - 1);
        ebuf[n > 0 ? n : 0] = '\0';
        if (e)
            shim_report(sync, "err %s\n", e->msg);
        else
            shim_report(sync, "err %s run: %s\n", runc, n > 0 ? ebuf : "failed");
        char *del[] = {runc, "--root", rroot, "delete", "--force", id, NULL};
        int dn = open("/dev/null", O_WRONLY);
        shim_spawn(del, -1, dn, dn);
        ck_attach_close(as);
        return 1;
    }
    if (tty) {
        fcntl(pty, F_SETFL, O_NONBLOCK);
        close(outp[0]);       /* the runtime's stdout; the container's output is the pty's */
        outp[0] = pty;
    }
    ck_attach_set_io(as, tty ? (opt_stdin ? fcntl(pty, F_DUPFD_CLOEXEC, 3) : -1) : inp[1],
                     stdin_once, pty);
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
        struct pollfd pf[64];
        int np = 0;
        for (int i = 0; i < 2; i++)
            if (streams[i].fd >= 0)
                pf[np++] = (struct pollfd){.fd = streams[i].fd, .events = POLLIN};
        int na = ck_attach_pollfds(as, pf + np, (int)ARRAY_SIZE(pf) - np);
        poll(pf, (nfds_t)(np + na), 200);
        ck_attach_handle(as, pf + np, na);
        for (int i = 0; i < 2; i++) {
            shim_stream *s = &streams[i];
            if (s->fd < 0)
                continue;
            ssize_t n = read(s->fd, s->buf + s->len, sizeof s->buf - s->len);
            if (n > 0) {
                /* with a tty, stream 1 is the runtime's own stderr: logged, not attached */
                if (!tty || i == 0)
                    ck_attach_output(as, i, s->buf + s->len, (size_t)n);
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
    ck_attach_close(as);
    close(log_fd);
    char out[64];
    int n = snprintf(out, sizeof out, "%d %lld\n", status, (long long)ck_wall_ns());
    ck_write_file_nosync(exit_path, out, (size_t)n, 0644);
    return 0;
}

/* ---------------- the shim launcher ---------------- */

/* `ckube kubelet-shim --launcher`: started once by the kubelet with a SOCK_SEQPACKET socket as
 * fd 3; for each request it forks a shim (ck_shim_main in the child, no exec).  Executing
 * ckube per container cost ~6 ms of CPU (dynamic linking of ~40 libraries), a tenth of a pod
 * start.  It exits when the kubelet closes the socket or dies (PDEATHSIG). */
/* Make /proc/PID/cmdline of a forked shim read "ckube kubelet-shim --id ID --bundle ..." like
 * an executed one (for ps and for scripts that find shims by their arguments).  Best effort:
 * needs CAP_SYS_RESOURCE and CONFIG_CHECKPOINT_RESTORE; otherwise the launcher's command line
 * (which names the runtime root) stays. */
static void set_cmdline(int argc, char **argv)
{
    size_t len = strlen("ckube") + 1;
    for (int i = 0; i < argc; i++)
        len += strlen(argv[i]) + 1;
    char *b = xmalloc(len), *p = b;  /* kept for the life of the shim */
    p = stpcpy(p, "ckube") + 1;
    for (int i = 0; i < argc; i++)
        p = stpcpy(p, argv[i]) + 1;
    unsigned long start = (unsigned long)b, end = (unsigned long)(b + len);
    /* start <= end must hold after each call: try both orders */
    if (prctl(PR_SET_MM, PR_SET_MM_ARG_START, start, 0, 0) < 0 ||
        prctl(PR_SET_MM, PR_SET_MM_ARG_END, end, 0, 0) < 0) {
        if (prctl(PR_SET_MM, PR_SET_MM_ARG_END, end, 0, 0) == 0)
            prctl(PR_SET_MM, PR_SET_MM_ARG_START, start, 0, 0);
    }
}

static int launcher_main(int sock)
{
    pid_t parent = getppid();
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        return 0;
    for (;;) {
        char buf[LAUNCH_MSG_MAX + 1];
        union {
            struct cmsghdr h;
            char b[CMSG_SPACE(sizeof(int))];
        } ctl;
        struct iovec iov = {.iov_base = buf, .iov_len = LAUNCH_MSG_MAX};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                           .msg_controllen = sizeof ctl.b};
        ssize_t n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        int fd = -1;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                memcpy(&fd, CMSG_DATA(c), sizeof(int));
        if (fd < 0)
            continue;
        buf[n] = '\0';
        char *argv[LAUNCH_MAX_ARGS + 1];
        int argc = 0;
        for (char *p = buf; p < buf + n && argc < LAUNCH_MAX_ARGS; p += strlen(p) + 1)
            argv[argc++] = p;
        argv[argc] = NULL;
        pid_t pid = fork();
        if (pid == 0) {
            close(sock);
            /* only fd 3 may hold the pipe: the kubelet waits for its EOF */
            if (dup2(fd, 3) < 0)
                _exit(1);
            close(fd);
            set_cmdline(argc, argv);
            _exit(ck_shim_main(argc, argv));
        }
        if (pid < 0)
            shim_report(fd, "err shim launcher: fork: %s\n", strerror(errno));
        else
            close(fd);
        /* the child forks the shim proper and exits at once */
        int st;
        while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
    }
}

void ck_runtime_launcher_start(ck_runtime *rt)
{
    rt->launcher_fd = -1;
    rt->launcher_pid = -1;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        log_warn("shim launcher: socketpair: %s (shims will be executed)", strerror(errno));
        return;
    }
    char *argv[] = {(char *)rt->self_exe, "kubelet-shim", "--launcher", "--runtime-root",
                    (char *)rt->root, NULL};
    pid_t pid;
    int rc = ck_spawn(&pid, rt->self_exe, argv, NULL, -1, -1, 2, sv[1]);
    close(sv[1]);
    if (rc != 0) {
        log_warn("shim launcher: %s (shims will be executed)", strerror(rc));
        close(sv[0]);
        return;
    }
    rt->launcher_fd = sv[0];
    rt->launcher_pid = pid;
}

void ck_runtime_launcher_stop(ck_runtime *rt)
{
    if (rt->launcher_fd > 0)
        close(rt->launcher_fd);
    rt->launcher_fd = -1;
    if (rt->launcher_pid > 0)
        while (waitpid(rt->launcher_pid, NULL, 0) < 0 && errno == EINTR)
            ;
    rt->launcher_pid = -1;
}
