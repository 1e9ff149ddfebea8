/* etcd_harness.h - start a real etcd (Debian etcd-server, /usr/bin/etcd) for a test.
 *
 * Header-only, static helpers:
 *   etcd_harness_start(&p)    fresh temp dir, free loopback ports, fork/exec etcd, wait until it
 *                             answers; p.url is its client URL.  0 or -1 (reason on stderr).
 *   etcd_harness_stop(&p)     SIGTERM, then SIGKILL after 5 s; keeps the dir (restart reuses it).
 *   etcd_harness_restart(&p)  start again on the same dir and ports.
 *   etcd_harness_pause/resume SIGSTOP / SIGCONT (a hung server).
 *   etcd_harness_destroy(&p)  stop and rm -rf the dir.
 * The etcd_proc must outlive the test (static storage): every started etcd is registered: an atexit handler and a handler for fatal/termination signals
 * kill it and remove its dir, and the child has PR_SET_PDEATHSIG, so nothing is left running even if
 * an assertion or a crash ends the test early.  etcd runs with --max-request-bytes 8 MiB so that
 * 1.5 MiB values fit after base64 (see docs/store-etcd.md).  ETCD_BIN overrides /usr/bin/etcd.
 */
#ifndef CK_ETCD_HARNESS_H
#define CK_ETCD_HARNESS_H

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ETCD_HARNESS_MAX 8
#define ETCD_HARNESS_UNUSED __attribute__((unused))

typedef struct etcd_proc {
    pid_t pid;                  /* 0: not running */
    int client_port, peer_port;
    char dir[256];              /* "" until started */
    char url[64];
    char rm_path[280];          /* dir, prepared for the signal handler */
} etcd_proc;

static etcd_proc *etcd_harness_procs[ETCD_HARNESS_MAX];
static int etcd_harness_hooked;

/* Signal-safe: kill every registered etcd and remove its dir with a forked rm. */
static void etcd_harness_kill_all(void)
{
    for (int i = 0; i < ETCD_HARNESS_MAX; i++) {
        etcd_proc *p = etcd_harness_procs[i];
        if (!p)
            continue;
        if (p->pid > 0) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, NULL, 0);
            p->pid = 0;
        }
        if (p->dir[0]) {
            pid_t rm = fork();
            if (rm == 0) {
                char *argv[] = {"rm", "-rf", "--", p->rm_path, NULL};
                char *envp[] = {NULL};
                execve("/bin/rm", argv, envp);
                _exit(127);
            }
            if (rm > 0)
                waitpid(rm, NULL, 0);
            p->dir[0] = '\0';
        }
        etcd_harness_procs[i] = NULL;
    }
}

static void etcd_harness_on_signal(int sig)
{
    etcd_harness_kill_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void etcd_harness_hook(void)
{
    if (etcd_harness_hooked)
        return;
    etcd_harness_hooked = 1;
    atexit(etcd_harness_kill_all);
    int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = etcd_harness_on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
}

static void etcd_harness_register(etcd_proc *p, int on)
{
    for (int i = 0; i < ETCD_HARNESS_MAX; i++) {
        if (on && !etcd_harness_procs[i]) {
            etcd_harness_procs[i] = p;
            return;
        }
        if (!on && etcd_harness_procs[i] == p) {
            etcd_harness_procs[i] = NULL;
            return;
        }
    }
}

/* A loopback port that was free a moment ago (the kernel picks it). */
static int etcd_harness_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static size_t etcd_harness_discard(char *p, size_t s, size_t n, void *u)
{
    (void)p; (void)u;
    return s * n;
}

/* 1 if GET /health answers 200. */
static int etcd_harness_healthy(const etcd_proc *p)
{
    char url[96];
    snprintf(url, sizeof url, "%s/health", p->url);
    CURL *c = curl_easy_init();
    if (!c)
        return 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, etcd_harness_discard);
    long status = 0;
    int ok = curl_easy_perform(c) == CURLE_OK &&
             curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 200;
    curl_easy_cleanup(c);
    return ok;
}

static void etcd_harness_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* fork/exec etcd on p->dir and p's ports; wait up to 30 s for /health.  0, or -1 if it exited. */
static int etcd_harness_spawn(etcd_proc *p)
{
    char data[300], logf[300], curl_[64], purl[64], cluster[96];
    snprintf(data, sizeof data, "%s/data", p->dir);
    snprintf(logf, sizeof logf, "%s/etcd.log", p->dir);
    snprintf(p->url, sizeof p->url, "http://127.0.0.1:%d", p->client_port);
    snprintf(curl_, sizeof curl_, "http://127.0.0.1:%d", p->client_port);
    snprintf(purl, sizeof purl, "http://127.0.0.1:%d", p->peer_port);
    snprintf(cluster, sizeof cluster, "default=%s", purl);
    const char *bin = getenv("ETCD_BIN") ? getenv("ETCD_BIN") : "/usr/bin/etcd";
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        int fd = open(logf, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(bin, bin, "--name", "default", "--data-dir", data, "--listen-client-urls", curl_,
              "--advertise-client-urls", curl_, "--listen-peer-urls", purl,
              "--initial-advertise-peer-urls", purl, "--initial-cluster", cluster,
              "--max-request-bytes", "8388608", "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    p->pid = pid;
    for (int i = 0; i < 300; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            p->pid = 0;
            fprintf(stderr, "etcd_harness: etcd exited early (see %s)\n", logf);
            return -1;
        }
        if (etcd_harness_healthy(p))
            return 0;
        etcd_harness_sleep_ms(100);
    }
    fprintf(stderr, "etcd_harness: etcd not healthy after 30 s (see %s)\n", logf);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    p->pid = 0;
    return -1;
}

static int etcd_harness_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    remove(path);
    return 0;
}

/* Remove dirs that earlier test processes, since killed with SIGKILL, could not (their etcd died with
 * them through PR_SET_PDEATHSIG).  The creator's pid is in the name: only dead creators' go. */
static void etcd_harness_sweep(const char *tmp)
{
    DIR *d = opendir(tmp);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        int pid = 0;
        char rest[32];
        if (sscanf(e->d_name, "ck-etcd-%d-%31s", &pid, rest) != 2 || pid <= 0)
            continue;
        if (kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", tmp, e->d_name);
        nftw(path, etcd_harness_rm, 16, FTW_DEPTH | FTW_PHYS);
    }
    closedir(d);
}

static ETCD_HARNESS_UNUSED int etcd_harness_start(etcd_proc *p)
{
    etcd_harness_hook();
    memset(p, 0, sizeof *p);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    etcd_harness_sweep(tmp);
    snprintf(p->dir, sizeof p->dir, "%s/ck-etcd-%d-XXXXXX", tmp, (int)getpid());
    if (!mkdtemp(p->dir)) {
        perror("etcd_harness: mkdtemp");
        p->dir[0] = '\0';
        return -1;
    }
    snprintf(p->rm_path, sizeof p->rm_path, "%s", p->dir);
    etcd_harness_register(p, 1);
    for (int attempt = 0; attempt < 3; attempt++) {   /* a port may be taken in between */
        p->client_port = etcd_harness_free_port();
        p->peer_port = etcd_harness_free_port();
        if (p->client_port > 0 && p->peer_port > 0 && p->client_port != p->peer_port &&
            etcd_harness_spawn(p) == 0)
            return 0;
    }
    return -1;
}

static ETCD_HARNESS_UNUSED int etcd_harness_restart(etcd_proc *p)
{
    if (p->pid > 0 || !p->dir[0])
        return -1;
    return etcd_harness_spawn(p);
}

static ETCD_HARNESS_UNUSED void etcd_harness_stop(etcd_proc *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGCONT);   /* in case it was paused */
    kill(p->pid, SIGTERM);
    for (int i = 0; i < 50; i++) {
        if (waitpid(p->pid, NULL, WNOHANG) == p->pid) {
            p->pid = 0;
            return;
        }
        etcd_harness_sleep_ms(100);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    p->pid = 0;
}

/* True once every thread of pid is stopped ('T' in /proc/PID/task/TID/stat). */
static bool etcd_harness_all_stopped(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return true;   /* gone: nothing left to answer */
    bool all = true;
    struct dirent *de;
    while (all && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char sp[384], buf[512];
        snprintf(sp, sizeof sp, "%s/%s/stat", path, de->d_name);
        FILE *f = fopen(sp, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *st = strrchr(buf, ')');   /* "pid (comm) S ..." */
        if (st && st[1] == ' ' && st[2] != 'T' && st[2] != 't')
            all = false;
    }
    closedir(d);
    return all;
}

/* SIGSTOP is delivered asynchronously: on a loaded machine etcd can still answer a request sent
 * right after kill() returns, so wait (bounded) until every thread is really stopped. */
static ETCD_HARNESS_UNUSED void etcd_harness_pause(etcd_proc *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGSTOP);
    for (int i = 0; i < 500 && !etcd_harness_all_stopped(p->pid); i++)
        etcd_harness_sleep_ms(10);
}

static ETCD_HARNESS_UNUSED void etcd_harness_resume(etcd_proc *p)
{
    if (p->pid > 0)
        kill(p->pid, SIGCONT);
}

static ETCD_HARNESS_UNUSED void etcd_harness_destroy(etcd_proc *p)
{
    etcd_harness_stop(p);
    if (p->dir[0]) {
        nftw(p->dir, etcd_harness_rm, 16, FTW_DEPTH | FTW_PHYS);
        p->dir[0] = '\0';
    }
    etcd_harness_register(p, 0);
}

#endif
