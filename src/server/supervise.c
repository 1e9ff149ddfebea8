/* supervise.c - see supervise.h. */
#include "server/supervise.h"
#include "lib/log.h"
#include "lib/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct child {
    char *name, *path, **argv;
    char *log_path;          /* NULL: inherit stdout/stderr */
    pid_t pid;               /* 0: not running */
    int pidfd;               /* -1 when not running */
    int64_t started_ns;
    int64_t restart_at_ns;   /* when not running: when to start again; 0 = never */
    long delay_ms;           /* the next restart delay */
    int restarts;
} child;

struct ck_supervisor {
    ck_supervisor_opts o;
    child *children;
    size_t n;
    bool stopping;
};

static int pidfd_open_(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

ck_supervisor *ck_supervisor_new(const ck_supervisor_opts *opts)
{
    ck_supervisor *s = xcalloc(1, sizeof *s);
    if (opts)
        s->o = *opts;
    if (s->o.backoff_initial_ms <= 0)
        s->o.backoff_initial_ms = 1000;
    if (s->o.backoff_max_ms <= 0)
        s->o.backoff_max_ms = 30000;
    if (s->o.stable_ms <= 0)
        s->o.stable_ms = 60000;
    return s;
}

void ck_supervisor_describe_status(int wstatus, char *out, size_t n)
{
    if (WIFEXITED(wstatus))
        snprintf(out, n, "exited with code %d", WEXITSTATUS(wstatus));
    else if (WIFSIGNALED(wstatus))
        snprintf(out, n, "killed by signal %d (%s)%s", WTERMSIG(wstatus),
                 strsignal(WTERMSIG(wstatus)), WCOREDUMP(wstatus) ? ", core dumped" : "");
    else
        snprintf(out, n, "changed state (status 0x%x)", (unsigned)wstatus);
}

/* In the child between fork and exec: async-signal-safe calls only. */
static void __attribute__((noreturn)) exec_child(const child *c, pid_t parent)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    static const int sigs[] = {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGQUIT};
    for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
        signal(sigs[i], SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)   /* the supervisor died before prctl took effect */
        _exit(1);
    setpgid(0, 0);
    int in = open("/dev/null", O_RDONLY);
    if (in >= 0 && in != STDIN_FILENO) {
        dup2(in, STDIN_FILENO);
        close(in);
    }
    if (c->log_path) {
        int fd = open(c->log_path, O_WRONLY | O_CREAT | O_APPEND, 0640);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            if (fd > STDERR_FILENO)
                close(fd);
        }
    }
    execv(c->path, c->argv);
    const char *parts[] = {"ckube: supervisor: exec ", c->path, " failed\n"};
    for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
        ssize_t w = write(STDERR_FILENO, parts[i], strlen(parts[i]));
        (void)w;
    }
    _exit(127);
}

static int spawn(ck_supervisor *s, child *c, ck_error **err)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return ck_error_sys(err, CK_E_INTERNAL, "fork %s", c->name);
    if (pid == 0)
        exec_child(c, parent);
    setpgid(pid, pid);   /* also in the parent, so a kill(-pid) right away reaches the group */
    c->pid = pid;
    c->pidfd = pidfd_open_(pid);
    if (c->pidfd < 0)
        log_warn("%s: pidfd_open: %s (exit noticed on the next poll tick)", c->name,
                 strerror(errno));
    c->started_ns = ck_now_ns();
    c->restart_at_ns = 0;
    log_info("started %s (pid %d)", c->name, (int)pid);
    if (s->o.on_start)
        s->o.on_start(s->o.ud, c->name, pid);
    return 0;
}

int ck_supervisor_add(ck_supervisor *s, const char *name, const char *path, char *const argv[],
                      ck_error **err)
{
    s->children = xrealloc(s->children, (s->n + 1) * sizeof *s->children);
    child *c = &s->children[s->n];
    memset(c, 0, sizeof *c);
    c->name = xstrdup(name);
    c->path = xstrdup(path);
    size_t argc = 0;
    while (argv[argc])
        argc++;
    c->argv = xcalloc(argc + 1, sizeof *c->argv);
    for (size_t i = 0; i < argc; i++)
        c->argv[i] = xstrdup(argv[i]);
    c->log_path = s->o.log_dir ? xasprintf("%s/%s.log", s->o.log_dir, name) : NULL;
    c->pidfd = -1;
    c->delay_ms = s->o.backoff_initial_ms;
    s->n++;
    if (s->stopping)
        return 0;
    return spawn(s, c, err);
}

static child *find(const ck_supervisor *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->children[i].name, name))
            return &s->children[i];
    return NULL;
}

pid_t ck_supervisor_pid(const ck_supervisor *s, const char *name)
{
    child *c = find(s, name);
    return c ? c->pid : 0;
}

int ck_supervisor_restarts(const ck_supervisor *s, const char *name)
{
    child *c = find(s, name);
    return c ? c->restarts : -1;
}

/* Reap c if it has exited; schedule its restart.  Returns true if it was reaped. */
static bool reap(ck_supervisor *s, child *c, int flags)
{
    int st;
    pid_t r;
    do
        r = waitpid(c->pid, &st, flags);
    while (r < 0 && errno == EINTR);
    if (r <= 0)
        return false;
    int64_t now = ck_now_ns();
    double ran_s = (double)(now - c->started_ns) / 1e9;
    pid_t pid = c->pid;
    c->pid = 0;
    if (c->pidfd >= 0)
        close(c->pidfd);
    c->pidfd = -1;
    char why[128];
    ck_supervisor_describe_status(st, why, sizeof why);
    if (s->stopping) {
        log_info("%s (pid %d) %s", c->name, (int)pid, why);
    } else {
        if (ran_s * 1000 >= (double)s->o.stable_ms)
            c->delay_ms = s->o.backoff_initial_ms;
        c->restart_at_ns = now + (int64_t)c->delay_ms * 1000000;
        log_warn("%s (pid %d) %s after %.1fs; restarting in %ldms", c->name, (int)pid, why, ran_s,
                 c->delay_ms);
        c->delay_ms = c->delay_ms * 2 > s->o.backoff_max_ms ? s->o.backoff_max_ms : c->delay_ms * 2;
    }
    if (s->o.on_exit)
        s->o.on_exit(s->o.ud, c->name, pid, st);
    return true;
}

static void start_due(ck_supervisor *s)
{
    int64_t now = ck_now_ns();
    for (size_t i = 0; i < s->n && !s->stopping; i++) {
        child *c = &s->children[i];
        if (c->pid || !c->restart_at_ns || c->restart_at_ns > now)
            continue;
        c->restarts++;
        ck_error *err = NULL;
        if (spawn(s, c, &err) < 0) {
            log_error("restart %s: %s", c->name, err->msg);
            ck_error_free(err);
            c->restart_at_ns = now + (int64_t)c->delay_ms * 1000000;
        }
    }
}

int ck_supervisor_poll(ck_supervisor *s, int wake_fd, long timeout_ms)
{
    struct pollfd *fds = xcalloc(s->n + 1, sizeof *fds);
    nfds_t nfds = 0;
    if (wake_fd >= 0)
        fds[nfds++] = (struct pollfd){.fd = wake_fd, .events = POLLIN};
    bool blind = false;   /* a child without a pidfd: fall back to a short tick */
    int64_t now = ck_now_ns();
    for (size_t i = 0; i < s->n; i++) {
        child *c = &s->children[i];
        if (c->pid && c->pidfd >= 0) {
            fds[nfds++] = (struct pollfd){.fd = c->pidfd, .events = POLLIN};
        } else if (c->pid) {
            blind = true;
        } else if (c->restart_at_ns && !s->stopping) {
            long due = (long)((c->restart_at_ns - now + 999999) / 1000000);
            if (due < 0)
                due = 0;
            if (timeout_ms < 0 || due < timeout_ms)
                timeout_ms = due;
        }
    }
    if (blind && (timeout_ms < 0 || timeout_ms > 200))
        timeout_ms = 200;
    int r = poll(fds, nfds, timeout_ms > INT32_MAX ? INT32_MAX : (int)timeout_ms);
    int ret = 0;
    if (r < 0 && errno != EINTR)
        ret = -1;
    if (r > 0 && wake_fd >= 0 && (fds[0].revents & POLLIN))
        ret = 1;
    for (size_t i = 0; i < s->n; i++)
        if (s->children[i].pid)
            reap(s, &s->children[i], WNOHANG);
    free(fds);
    start_due(s);
    return ret;
}

int ck_supervisor_stop(ck_supervisor *s, long deadline_ms)
{
    s->stopping = true;
    for (size_t i = s->n; i-- > 0;) {
        child *c = &s->children[i];
        c->restart_at_ns = 0;
        if (c->pid) {
            log_info("stopping %s (pid %d)", c->name, (int)c->pid);
            kill(c->pid, SIGTERM);
        }
    }
    int64_t end = ck_now_ns() + (int64_t)deadline_ms * 1000000;
    for (;;) {
        bool any = false;
        for (size_t i = 0; i < s->n; i++)
            any |= s->children[i].pid != 0;
        int64_t left = (end - ck_now_ns()) / 1000000;
        if (!any || left <= 0)
            break;
        ck_supervisor_poll(s, -1, left);
    }
    int killed = 0;
    for (size_t i = 0; i < s->n; i++) {
        child *c = &s->children[i];
        if (!c->pid)
            continue;
        log_warn("%s (pid %d) did not stop within %ldms; killing it", c->name, (int)c->pid,
                 deadline_ms);
        kill(-c->pid, SIGKILL);
        kill(c->pid, SIGKILL);
        reap(s, c, 0);
        killed++;
    }
    return killed;
}

void ck_supervisor_free(ck_supervisor *s)
{
    if (!s)
        return;
    bool running = false;
    for (size_t i = 0; i < s->n; i++)
        running |= s->children[i].pid != 0;
    if (running)
        ck_supervisor_stop(s, 5000);
    for (size_t i = 0; i < s->n; i++) {
        child *c = &s->children[i];
        for (char **a = c->argv; *a; a++)
            free(*a);
        free(c->argv);
        free(c->name);
        free(c->path);
        free(c->log_path);
    }
    free(s->children);
    free(s);
}
