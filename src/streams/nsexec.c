/* nsexec.c - start a non-tty exec in a running runc container without runc (see streams.h,
 * ck_streams_native_plan).
 *
 * Why: `runc exec` is two Go program starts (runc, then `runc init` inside the namespaces),
 * 20-40 ms before the command's first byte, in every `kubectl exec`.  What it does for a
 * container whose config we wrote ourselves (src/kubelet/oci.c) is small: join the
 * container's cgroups and namespaces, set the user, groups and capabilities of config.json's
 * process, its env (plus HOME), cwd and no_new_privs, and exec.  We do exactly that, and
 * nothing else: a config with anything beyond it (seccomp, AppArmor/SELinux labels, rlimits,
 * oomScoreAdj, a user or cgroup namespace, a umask, an unknown capability, no PATH...) is
 * declined and the caller runs `runc exec` as before.
 *
 * Shape.  Everything that needs malloc or JSON happens in the caller (the plan: open fds of
 * the namespaces and of each cgroup.procs, capability masks, argv, env); the child only makes
 * system calls (it is a child of a threaded process):
 *   x86-64 (ck_nsexec_clone, at the end): the calling thread enters the container's pid
 *     namespace for its children, clones the command with CLONE_VM | CLONE_VFORK (no copy of
 *     the kubelet's memory; the thread waits for the execve) into the unified cgroup, and
 *     returns to its own namespace; the command is the kubelet's child, waited for directly;
 *   elsewhere, a helper (forked by runtime.c's spawn, holds the stdio pipes):
 *     PR_SET_DUMPABLE 0, setns(pid) (for its children), fork the command, then drop every
 *     fd and wait for the command, exiting with its status (as the runc -d helper does);
 *   command: started by clone3 straight into the unified hierarchy's cgroup
 *     (CLONE_INTO_CGROUP; a clone without it and a write to its cgroup.procs where the cgroup
 *     refuses), writes
 *     "0" to each v1 hierarchy's `tasks` (joins them), setns ipc, uts, net, mnt (the
 *     container's root and cwd), close every fd but stdio and the exec-error pipe, bounding
 *     set, setgroups/setresgid, setresuid keeping caps, capset, ambient, no_new_privs,
 *     umask 022, chdir, HOME from the container's /etc/passwd if the env has none, PATH
 *     lookup in the container's PATH, execve.
 * Why not cgroup.procs everywhere: a write there takes the kernel's global
 * cgroup_threadgroup_rwsem for writing, which waits for an RCU grace period unless another
 * writer came within the last one: 10-70 ms for the first exec after a pause (docs/streams.md,
 * "kubectl's ceiling").  Moving the calling thread itself through `tasks` skips that lock
 * (the kernel needs it only to hold a whole thread group still), and a single-threaded
 * command is its whole process; CLONE_INTO_CGROUP does not migrate at all.
 * Container processes cannot ptrace or open /proc of the command before its execve (not
 * dumpable; the container has no CAP_SYS_PTRACE unless privileged, when it owns the host
 * anyway) and no kubelet fd survives into it.
 */
#include "streams/nsexec.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>

#include "lib/caps.h"
#include "lib/log.h"
#include "lib/util.h"

/* the namespaces we join, in order (pid separately: it applies to the helper's children) */
static const struct {
    const char *oci, *proc;
    int flag;
} ns_kinds[] = {
    {"ipc", "ipc", CLONE_NEWIPC},
    {"uts", "uts", CLONE_NEWUTS},
    {"network", "net", CLONE_NEWNET},
    {"mount", "mnt", CLONE_NEWNS},
};

static int decline(const char **why, const char *what)
{
    *why = what;
    return 1;
}

/* A capability list -> mask; false for an unknown name or one this kernel lacks. */
static bool cap_mask(const json_t *list, int last_cap, uint64_t *mask)
{
    *mask = 0;
    if (!list || json_is_null(list))
        return true;
    if (!json_is_array(list))
        return false;
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        const char *n = json_string_value(v);
        int c = ck_cap_number(n);
        if (c < 0 || c > last_cap)
            return false;
        *mask |= 1ull << c;
    }
    return true;
}

static bool only_keys(const json_t *obj, const char *const *keys, size_t nkeys)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        size_t i = 0;
        while (i < nkeys && strcmp(keys[i], k))
            i++;
        if (i == nkeys)
            return false;
    }
    return true;
}

int ck_nsexec_check(const json_t *state, const json_t *config, int last_cap, ck_nsexec_plan *pl,
                    const char **why)
{
    memset(pl, 0, sizeof *pl);
    pl->pidns_fd = pl->cg2_dir = pl->cg2_procs = -1;
    if (json_is_true(json_object_get(state, "rootless")))
        return decline(why, "rootless container");
    const char *rdt = json_string_value(json_object_get(state, "intel_rdt_path"));
    if (rdt && *rdt)
        return decline(why, "intel RDT");
    json_int_t pid = json_integer_value(json_object_get(state, "init_process_pid"));
    if (pid <= 1)
        return decline(why, "no init pid");
    pl->init_pid = (pid_t)pid;
    pl->init_start =
        (unsigned long long)json_integer_value(json_object_get(state, "init_process_start"));
    json_t *cgs = json_object_get(state, "cgroup_paths");
    if (!json_is_object(cgs) || json_object_size(cgs) == 0 ||
        json_object_size(cgs) > CK_NSEXEC_MAX_CGROUPS)
        return decline(why, "cgroup paths");

    const json_t *linux_ = json_object_get(config, "linux");
    static const char *const linux_ok[] = {"namespaces", "cgroupsPath", "resources",
                                           "maskedPaths", "readonlyPaths"};
    if (!json_is_object(linux_) || !only_keys(linux_, linux_ok, ARRAY_SIZE(linux_ok)))
        return decline(why, "linux settings beyond ours (seccomp, devices, sysctl, ...)");
    const json_t *nss = json_object_get(linux_, "namespaces"), *ns;
    size_t i;
    bool have_pid = false, have[ARRAY_SIZE(ns_kinds)] = {false};
    json_array_foreach(nss, i, ns) {
        const char *t = json_string_value(json_object_get(ns, "type")) ?: "";
        size_t k = 0;
        while (k < ARRAY_SIZE(ns_kinds) && strcmp(ns_kinds[k].oci, t))
            k++;
        if (!strcmp(t, "pid"))
            have_pid = true;
        else if (k < ARRAY_SIZE(ns_kinds))
            have[k] = true;
        else
            return decline(why, "user, cgroup or time namespace");
    }
    if (!have_pid)
        return decline(why, "no pid namespace");
    for (size_t k = 0; k < ARRAY_SIZE(ns_kinds); k++)
        pl->ns_flag[k] = have[k] ? ns_kinds[k].flag : 0;

    const json_t *proc = json_object_get(config, "process");
    static const char *const proc_ok[] = {"terminal", "user", "args", "env", "cwd",
                                          "capabilities", "noNewPrivileges", "consoleSize"};
    if (!json_is_object(proc) || !only_keys(proc, proc_ok, ARRAY_SIZE(proc_ok)))
        return decline(why, "process settings beyond ours (rlimits, apparmor, selinux, ...)");
    const json_t *user = json_object_get(proc, "user");
    static const char *const user_ok[] = {"uid", "gid", "additionalGids"};
    if (!json_is_object(user) || !only_keys(user, user_ok, ARRAY_SIZE(user_ok)))
        return decline(why, "user settings beyond uid/gid/additionalGids");
    pl->uid = (uid_t)json_integer_value(json_object_get(user, "uid"));
    pl->gid = (gid_t)json_integer_value(json_object_get(user, "gid"));
    const json_t *groups = json_object_get(user, "additionalGids"), *g;
    if (json_array_size(groups) > CK_NSEXEC_MAX_GROUPS)
        return decline(why, "too many groups");
    json_array_foreach(groups, i, g)
        pl->groups[pl->ngroups++] = (gid_t)json_integer_value(g);
    const json_t *caps = json_object_get(proc, "capabilities");
    if (!cap_mask(json_object_get(caps, "bounding"), last_cap, &pl->cap_bnd) ||
        !cap_mask(json_object_get(caps, "effective"), last_cap, &pl->cap_eff) ||
        !cap_mask(json_object_get(caps, "permitted"), last_cap, &pl->cap_prm) ||
        !cap_mask(json_object_get(caps, "inheritable"), last_cap, &pl->cap_inh) ||
        !cap_mask(json_object_get(caps, "ambient"), last_cap, &pl->cap_amb))
        return decline(why, "unknown capability");
    pl->last_cap = last_cap;
    pl->nnp = json_is_true(json_object_get(proc, "noNewPrivileges"));
    const char *cwd = json_string_value(json_object_get(proc, "cwd"));
    if (!cwd || cwd[0] != '/' || strlen(cwd) >= sizeof pl->cwd)
        return decline(why, "cwd");
    strcpy(pl->cwd, cwd);
    const json_t *env = json_object_get(proc, "env"), *e;
    pl->has_path = pl->has_home = false;
    json_array_foreach(env, i, e) {
        const char *s = json_string_value(e) ?: "";
        pl->has_path |= !strncmp(s, "PATH=", 5);
        pl->has_home |= !strncmp(s, "HOME=", 5);
    }
    if (!pl->has_path)
        return decline(why, "no PATH in the env");
    return 0;
}

void ck_nsexec_plan_free(ck_nsexec_plan *pl)
{
    if (pl->pidns_fd >= 0)
        close(pl->pidns_fd);
    for (size_t k = 0; k < ARRAY_SIZE(pl->ns_fd); k++)
        if (pl->ns_fd[k] > 0)
            close(pl->ns_fd[k]);
    for (int i = 0; i < pl->ncg; i++)
        close(pl->cg_fd[i]);
    if (pl->cg2_dir >= 0)
        close(pl->cg2_dir);
    if (pl->cg2_procs >= 0)
        close(pl->cg2_procs);
    pl->cg2_dir = pl->cg2_procs = -1;
    if (pl->envp) {
        for (char **e = pl->envp; *e; e++)
            if (*e != pl->home)
                free(*e);
        free(pl->envp);
    }
    free(pl->path);
    pl->envp = NULL;
    pl->path = NULL;
    pl->pidns_fd = -1;
    pl->ncg = 0;
    memset(pl->ns_fd, 0, sizeof pl->ns_fd);
}

static int last_cap(void)
{
    char b[16] = {0};
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, b, sizeof b - 1) : -1;
    if (fd >= 0)
        close(fd);
    return n > 0 ? atoi(b) : 40;
}

/* start time (field 22 of /proc/PID/stat) */
static unsigned long long proc_start(pid_t pid)
{
    char path[64], b[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, b, sizeof b - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return 0;
    b[n] = '\0';
    char *p = strrchr(b, ')');
    for (int f = 2; p && f < 22; f++)
        p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

/* ---- the plan's source, cached per container ----
 * Parsing runc's state.json (~13 KiB: it repeats the whole config) and the bundle's
 * config.json, and checking them, is most of the plan (0.5-0.8 ms of every exec's start, on the
 * path to kubectl's first byte).  Their result depends on those two files only, so it is kept
 * per state.json path with both files' identity (device, inode, size, mtime): runc replaces
 * state.json (a new inode) whenever the container changes, and a restarted container is a new
 * state.json and a new init pid.  The fds are never cached (a cached namespace fd would keep a
 * dead container's namespaces alive): they are opened for each exec, after the init process's
 * start time is checked again. */

#define PLAN_CACHE_SLOTS 8
#define PLAN_FIXED offsetof(ck_nsexec_plan, argv)   /* the part ck_nsexec_check fills */

typedef struct file_sig {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} file_sig;

typedef struct plan_src {
    char *state_path, *config_path;
    file_sig st, cf;
    unsigned char fixed[PLAN_FIXED];
    char **cg_dirs, **env;          /* NULL-terminated */
    uint64_t used;
} plan_src;

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static plan_src plan_cache[PLAN_CACHE_SLOTS];
static uint64_t cache_tick;
static unsigned long cache_hits, cache_misses;

static bool file_sig_get(const char *path, file_sig *sig)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return false;
    *sig = (file_sig){st.st_dev, st.st_ino, st.st_size, st.st_mtim};
    return true;
}

static bool file_sig_eq(const file_sig *a, const file_sig *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static char **strv_dup(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    char **r = xcalloc(n + 1, sizeof *r);
    for (size_t i = 0; i < n; i++)
        r[i] = xstrdup(v[i]);
    return r;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static void plan_src_clear(plan_src *c)
{
    free(c->state_path);
    free(c->config_path);
    strv_free(c->cg_dirs);
    strv_free(c->env);
    memset(c, 0, sizeof *c);
}

void ck_nsexec_cache_stats(unsigned long *hits, unsigned long *misses)
{
    pthread_mutex_lock(&cache_mu);
    *hits = cache_hits;
    *misses = cache_misses;
    pthread_mutex_unlock(&cache_mu);
}

void ck_nsexec_cache_clear(void)
{
    pthread_mutex_lock(&cache_mu);
    for (size_t i = 0; i < PLAN_CACHE_SLOTS; i++)
        plan_src_clear(&plan_cache[i]);
    pthread_mutex_unlock(&cache_mu);
}

/* 0 with the checked part of the plan and copies of the lists when both files are unchanged */
static int cache_get(const char *sp, ck_nsexec_plan *pl, char ***cg_dirs, char ***env)
{
    file_sig st, cf;
    if (!file_sig_get(sp, &st))
        return -1;
    int rc = -1;
    pthread_mutex_lock(&cache_mu);
    for (size_t i = 0; i < PLAN_CACHE_SLOTS && rc < 0; i++) {
        plan_src *c = &plan_cache[i];
        if (!c->state_path || strcmp(c->state_path, sp))
            continue;
        if (file_sig_eq(&c->st, &st) && file_sig_get(c->config_path, &cf) &&
            file_sig_eq(&c->cf, &cf)) {
            memcpy(pl, c->fixed, PLAN_FIXED);
            *cg_dirs = strv_dup(c->cg_dirs);
            *env = strv_dup(c->env);
            c->used = ++cache_tick;
            rc = 0;
        } else {
            plan_src_clear(c);   /* the container changed: parse again */
        }
    }
    if (rc == 0)
        cache_hits++;
    else
        cache_misses++;
    pthread_mutex_unlock(&cache_mu);
    return rc;
}

static void cache_put(const char *sp, const file_sig *st, const char *cp, const file_sig *cf,
                      const ck_nsexec_plan *pl, char *const *cg_dirs, char *const *env)
{
    pthread_mutex_lock(&cache_mu);
    plan_src *slot = &plan_cache[0];
    for (size_t i = 0; i < PLAN_CACHE_SLOTS; i++) {
        plan_src *c = &plan_cache[i];
        if (c->state_path && !strcmp(c->state_path, sp)) {
            slot = c;
            break;
        }
        if (c->used < slot->used)   /* an empty slot has used 0 */
            slot = c;
    }
    plan_src_clear(slot);
    slot->state_path = xstrdup(sp);
    slot->config_path = xstrdup(cp);
    slot->st = *st;
    slot->cf = *cf;
    memcpy(slot->fixed, pl, PLAN_FIXED);
    slot->cg_dirs = strv_dup(cg_dirs);
    slot->env = strv_dup(env);
    slot->used = ++cache_tick;
    pthread_mutex_unlock(&cache_mu);
}

/* The plan from the files: 0 with the checked part and the lists (and cached), 1 with *why */
static int plan_parse(const char *sp, ck_nsexec_plan *pl, char ***cg_dirs, char ***env,
                      const char **why)
{
    file_sig st, cf;
    /* the identity first: a file replaced meanwhile is cached under the older one and parsed
     * again next time */
    if (!file_sig_get(sp, &st))
        return decline(why, "no runc state");
    json_t *state = json_load_file(sp, 0, NULL);
    if (!state)
        return decline(why, "no runc state");
    const char *bundle = NULL;
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(json_object_get(state, "config"), "labels"), i, l)
        if (json_string_value(l) && !strncmp(json_string_value(l), "bundle=", 7))
            bundle = json_string_value(l) + 7;
    cleanup_free char *cp = bundle ? xasprintf("%s/config.json", bundle) : NULL;
    bool have_cf = cp && file_sig_get(cp, &cf);
    json_t *config = have_cf ? json_load_file(cp, 0, NULL) : NULL;
    int rc = config ? ck_nsexec_check(state, config, last_cap(), pl, why)
                    : decline(why, "no config.json");
    if (rc == 0) {
        json_t *cgs = json_object_get(state, "cgroup_paths"), *v;
        const char *sub;
        *cg_dirs = xcalloc(json_object_size(cgs) + 1, sizeof **cg_dirs);
        size_t k = 0;
        json_object_foreach(cgs, sub, v)
            (*cg_dirs)[k++] = xstrdup(json_string_value(v) ?: "");
        (void)sub;
        json_t *ev = json_object_get(json_object_get(config, "process"), "env"), *e;
        *env = xcalloc(json_array_size(ev) + 1, sizeof **env);
        json_array_foreach(ev, i, e)
            (*env)[i] = xstrdup(json_string_value(e) ?: "");
        cache_put(sp, &st, cp, &cf, pl, *cg_dirs, *env);
    }
    json_decref(state);
    json_decref(config);
    return rc;
}

/* the fds the child needs, opened here (it may not allocate): 0, or 1 with *why */
static int plan_open(ck_nsexec_plan *pl, char *const *cg_dirs, const char **why)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/pid", (int)pl->init_pid);
    pl->pidns_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (pl->pidns_fd < 0)
        return decline(why, "namespace gone");
    for (size_t k = 0; k < ARRAY_SIZE(ns_kinds); k++) {
        if (!pl->ns_flag[k])
            continue;
        snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)pl->init_pid, ns_kinds[k].proc);
        pl->ns_fd[k] = open(path, O_RDONLY | O_CLOEXEC);
        if (pl->ns_fd[k] < 0) {
            pl->ns_fd[k] = 0;
            return decline(why, "namespace gone");
        }
    }
    for (size_t i = 0; cg_dirs[i]; i++) {
        const char *dir = cg_dirs[i];
        cleanup_free char *t = xasprintf("%s/tasks", dir);
        int fd = open(t, O_WRONLY | O_CLOEXEC);   /* a v1 hierarchy */
        if (fd >= 0) {
            if (pl->ncg == CK_NSEXEC_MAX_CGROUPS) {
                close(fd);
                return decline(why, "too many cgroup hierarchies");
            }
            pl->cg_fd[pl->ncg++] = fd;
            continue;
        }
        cleanup_free char *p = xasprintf("%s/cgroup.procs", dir);
        fd = open(p, O_WRONLY | O_CLOEXEC);
        int dfd = fd >= 0 ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        if (fd < 0 || dfd < 0 || pl->cg2_dir >= 0) {   /* gone, or two unified paths */
            if (fd >= 0)
                close(fd);
            if (dfd >= 0)
                close(dfd);
            return decline(why, fd < 0 || dfd < 0 ? "cgroup gone" : "two unified cgroups");
        }
        pl->cg2_procs = fd;
        pl->cg2_dir = dfd;
    }
    return 0;
}

int ck_nsexec_prepare(const char *runc_root, const char *id, const ck_stream_exec_opts *o,
                      ck_nsexec_plan *pl, const char **why, ck_error **err)
{
    memset(pl, 0, sizeof *pl);
    pl->pidns_fd = pl->cg2_dir = pl->cg2_procs = -1;
    if (o->tty || !o->ncommand)
        return decline(why, "tty");
    cleanup_free char *sp = xasprintf("%s/%s/state.json", runc_root, id);
    char **cg_dirs = NULL, **env = NULL;
    int rc = cache_get(sp, pl, &cg_dirs, &env) == 0 ? 0 : plan_parse(sp, pl, &cg_dirs, &env, why);
    /* whether cached or not: the container's init is still the process runc started */
    if (rc == 0 && proc_start(pl->init_pid) != pl->init_start)
        rc = decline(why, "container not running");   /* runc gives the error */
    if (rc == 0)
        rc = plan_open(pl, cg_dirs, why);
    if (rc == 0) {
        size_t n = 0;
        while (env[n])
            n++;
        pl->envp = xcalloc(n + 2, sizeof *pl->envp);
        for (size_t i = 0; i < n; i++) {
            pl->envp[i] = xstrdup(env[i]);
            if (!strncmp(env[i], "PATH=", 5)) {
                free(pl->path);
                pl->path = xstrdup(env[i] + 5);
            }
        }
        if (!pl->has_home)   /* filled in by the child from the container's /etc/passwd */
            pl->envp[n] = pl->home;
        pl->argv = o->command;
    }
    strv_free(cg_dirs);
    strv_free(env);
    if (rc)
        ck_nsexec_plan_free(pl);
    (void)err;
    return rc;
}

/* ---- the forked side: system calls only ---- */

/* Raw system calls: a sanitizer's _exit (a leak check) cannot run in a CLONE_VM child. */
static _Noreturn void fail(int ex_w, int e)
{
    syscall(SYS_write, ex_w, &e, sizeof e);
    for (;;)
        syscall(SYS_exit_group, 127);
}

/* HOME=<the uid's home in /etc/passwd>, else "/" (runc's rule) */
static void set_home(ck_nsexec_plan *pl)
{
    char *buf = pl->passwd;   /* not static: a CLONE_VM child shares the kubelet's memory */
    memcpy(pl->home, "HOME=/", 7);
    int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof pl->passwd - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    for (char *line = buf; line && *line;) {
        char *eol = strchr(line, '\n');
        if (eol)
            *eol = '\0';
        /* name:pw:uid:gid:gecos:home:shell */
        char *f[7] = {line};
        int nf = 1;
        for (char *c = line; *c && nf < 7; c++)
            if (*c == ':') {
                *c = '\0';
                f[nf++] = c + 1;
            }
        if (nf == 7 && f[2][0]) {
            unsigned long u = 0;
            char *c = f[2];
            while (*c >= '0' && *c <= '9')
                u = u * 10 + (unsigned long)(*c++ - '0');
            size_t hl = strlen(f[5]);
            if (!*c && u == pl->uid && hl && hl + 6 < sizeof pl->home) {
                memcpy(pl->home + 5, f[5], hl + 1);
                return;
            }
        }
        line = eol ? eol + 1 : NULL;
    }
}

static void try_exec(const char *path, char **argv, char **envp, int *err)
{
    execve(path, argv, envp);
    if (errno != ENOENT && errno != ENOTDIR)
        *err = errno;   /* found but not runnable: that error wins, as in a shell */
}

static _Noreturn void run_command(ck_nsexec_plan *pl, int ex_w, bool in_cg2)
{
    if (!in_cg2 && pl->cg2_procs >= 0 && write(pl->cg2_procs, "0", 1) != 1)
        fail(ex_w, errno);
    for (int i = 0; i < pl->ncg; i++)
        if (write(pl->cg_fd[i], "0", 1) != 1)
            fail(ex_w, errno);
    for (size_t k = 0; k < ARRAY_SIZE(ns_kinds); k++)
        if (pl->ns_flag[k] && setns(pl->ns_fd[k], pl->ns_flag[k]) < 0)
            fail(ex_w, errno);
    /* nothing of the kubelet's but stdio and the error pipe (CLOEXEC) goes on */
    int keep = ex_w;
    if (keep > 3)
        close_range(3, (unsigned)keep - 1, 0);
    close_range((unsigned)keep + 1, ~0u, 0);
    for (int c = 0; c <= pl->last_cap; c++)
        if (!(pl->cap_bnd & (1ull << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 &&
            errno != EINVAL)
            fail(ex_w, errno);
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 ||
        syscall(SYS_setgroups, pl->ngroups, pl->groups) < 0 ||
        syscall(SYS_setresgid, pl->gid, pl->gid, pl->gid) < 0 ||
        syscall(SYS_setresuid, pl->uid, pl->uid, pl->uid) < 0 ||
        prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
        fail(ex_w, errno);
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {
        {(uint32_t)pl->cap_eff, (uint32_t)pl->cap_prm, (uint32_t)pl->cap_inh},
        {(uint32_t)(pl->cap_eff >> 32), (uint32_t)(pl->cap_prm >> 32),
         (uint32_t)(pl->cap_inh >> 32)},
    };
    if (syscall(SYS_capset, &h, d) < 0)
        fail(ex_w, errno);
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    for (int c = 0; c <= pl->last_cap; c++)
        if ((pl->cap_amb & (1ull << c)) &&
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
            fail(ex_w, errno);
    if (pl->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        fail(ex_w, errno);
    umask(022);
    if (chdir(pl->cwd) < 0)
        fail(ex_w, errno);
    if (!pl->has_home)
        set_home(pl);
    const char *cmd = pl->argv[0];
    int err = ENOENT;
    if (strchr(cmd, '/')) {
        execve(cmd, pl->argv, pl->envp);
        fail(ex_w, errno);
    }
    size_t cl = strlen(cmd);
    for (const char *dir = pl->path; dir;) {
        const char *end = strchr(dir, ':');
        size_t dl = end ? (size_t)(end - dir) : strlen(dir);
        if (dl + 1 + cl < sizeof pl->exe) {
            memcpy(pl->exe, dl ? dir : ".", dl ? dl : 1);
            size_t o = dl ? dl : 1;
            pl->exe[o] = '/';
            memcpy(pl->exe + o + 1, cmd, cl + 1);
            try_exec(pl->exe, pl->argv, pl->envp, &err);
        }
        dir = end ? end + 1 : NULL;
    }
    fail(ex_w, err);
}

_Noreturn void ck_nsexec_child(ck_nsexec_plan *pl, int ex_w)
{
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (setns(pl->pidns_fd, CLONE_NEWPID) < 0)
        fail(ex_w, errno);
    bool in_cg2 = false;
    pid_t cmd = -1;
    if (pl->cg2_dir >= 0) {
        /* struct clone_args up to `cgroup` (CLONE_ARGS_SIZE_VER2), spelled out so that no
         * kernel header is needed; a raw clone3 without CLONE_VM returns twice, like fork */
        uint64_t args[11] = {0};
        args[0] = 0x200000000ULL;   /* flags: CLONE_INTO_CGROUP */
        args[4] = SIGCHLD;          /* exit_signal */
        args[10] = (uint64_t)pl->cg2_dir;
        long r = syscall(SYS_clone3, args, sizeof args);
        if (r >= 0) {
            cmd = (pid_t)r;
            in_cg2 = true;
        }
    }
    if (!in_cg2)   /* no clone3 (ENOSYS), or the cgroup refused (EBUSY, EOPNOTSUPP...) */
        cmd = fork();
    if (cmd < 0)
        fail(ex_w, errno);
    if (cmd == 0)
        run_command(pl, ex_w, in_cg2);
    /* the command alone holds the pipes and the error pipe */
    _exit(ck__streams_release_and_wait(cmd));
}

/* ---- the command without a helper (x86-64) ----
 *
 * Why: the helper was a fork() of the kubelet, so for the whole session it held a copy-on-write
 * image of the kubelet's memory: every page the kubelet wrote afterwards (batch buffers, TLS
 * buffers, heap) was copied once (~4% of the kubelet's CPU over a 100 MiB exec), and the start
 * paid two page-table copies (helper, command).  A CLONE_VM | CLONE_VFORK child copies nothing:
 * it runs on the kubelet's memory, on a stack of its own, until its execve, while the calling
 * thread waits (as posix_spawn does); CLONE_INTO_CGROUP keeps it out of cgroup.procs' global
 * lock.  The child only makes system calls and writes only the plan (its own) and the caller's
 * errno (suspended).  Signals: blocked around the clone; the child sets every handler back to
 * the default before unblocking, so no kubelet handler runs on the shared memory.  Dumpable:
 * not until its execve (container processes must not ptrace it, which would now mean the
 * kubelet's memory): the flag belongs to the memory, so the kubelet is marked not dumpable while
 * any such child is between clone and execve. */
#if defined(__x86_64__)
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif
/* long ck__clone3_run(struct clone_args *a, size_t size, int (*fn)(void *), void *arg): the
 * child (new stack from a->stack) calls fn(arg) and exits with its value; the parent returns
 * the syscall's result.  r8/r9 survive the syscall in both. */
__asm__(".text\n"
        ".type ck__clone3_run, @function\n"
        "ck__clone3_run:\n"
        "    mov %rdx, %r8\n"
        "    mov %rcx, %r9\n"
        "    mov $435, %eax\n"          /* SYS_clone3 */
        "    syscall\n"
        "    test %rax, %rax\n"
        "    jz 1f\n"
        "    ret\n"
        "1:  xor %ebp, %ebp\n"
        "    and $-16, %rsp\n"
        "    mov %r9, %rdi\n"
        "    call *%r8\n"
        "    mov %eax, %edi\n"
        "    mov $60, %eax\n"           /* SYS_exit: this task only */
        "    syscall\n"
        "    hlt\n"
        ".size ck__clone3_run, .-ck__clone3_run\n");
long ck__clone3_run(uint64_t *args, size_t size, int (*fn)(void *), void *arg)
    __attribute__((visibility("hidden")));

struct clone_child {
    ck_nsexec_plan *pl;
    int in_fd, out_fd, err_fd, ex_w;
    bool in_cg2;
};

static int clone_child(void *arg)
{
    struct clone_child *c = arg;
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL);   /* 32/33 (glibc's own) refuse: never delivered here */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setsid();
    int dn = open("/dev/null", O_RDWR | O_CLOEXEC);
    int fds[3] = {c->in_fd, c->out_fd, c->err_fd};
    for (int i = 0; i < 3; i++) {
        int f = fds[i] >= 0 ? fds[i] : dn;
        if (f < 0 || dup2(f, i) < 0)
            fail(c->ex_w, f < 0 ? ENOENT : errno);
    }
    run_command(c->pl, c->ex_w, c->in_cg2);
}

static pthread_mutex_t dump_mu = PTHREAD_MUTEX_INITIALIZER;
static int dump_holds, dump_was = -1;

static void dumpable_hold(bool hold)
{
    pthread_mutex_lock(&dump_mu);
    if (hold && dump_holds++ == 0) {
        dump_was = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
        if (dump_was > 0)
            prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    } else if (!hold && --dump_holds == 0 && dump_was > 0) {
        prctl(PR_SET_DUMPABLE, dump_was, 0, 0, 0);
    }
    pthread_mutex_unlock(&dump_mu);
}

pid_t ck_nsexec_clone(ck_nsexec_plan *pl, int in_fd, int out_fd, int err_fd, int ex_w)
{
    static int no_clone3;
    if (__atomic_load_n(&no_clone3, __ATOMIC_RELAXED)) {
        errno = ENOSYS;
        return -1;
    }
    enum { STACK = 256 << 10 };
    void *stack = mmap(NULL, STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
                       -1, 0);
    if (stack == MAP_FAILED)
        return -1;
    int self_pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
    if (self_pidns < 0) {
        int e = errno;
        munmap(stack, STACK);
        errno = e;
        return -1;
    }
    struct clone_child c = {pl, in_fd, out_fd, err_fd, ex_w, false};
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    dumpable_hold(true);
    long pid = -1;
    int e = 0;
    /* the command's pid namespace is its creator's pid_for_children: this thread's, for the
     * clone only */
    if (setns(pl->pidns_fd, CLONE_NEWPID) < 0) {
        e = errno;
    } else {
        /* struct clone_args up to `cgroup` (CLONE_ARGS_SIZE_VER2), as in ck_nsexec_child */
        uint64_t args[11] = {0};
        args[0] = 0x100ULL | 0x4000ULL;   /* CLONE_VM | CLONE_VFORK */
        args[4] = SIGCHLD;                /* exit_signal */
        args[5] = (uint64_t)(uintptr_t)stack;
        args[6] = STACK;
        if (pl->cg2_dir >= 0) {
            args[0] |= 0x200000000ULL;    /* CLONE_INTO_CGROUP */
            args[10] = (uint64_t)pl->cg2_dir;
            c.in_cg2 = true;
            pid = ck__clone3_run(args, sizeof args, clone_child, &c);
        }
        if (pid < 0 && pid != -ENOSYS) {   /* no cgroup v2, or it refused: join by cgroup.procs */
            args[0] &= ~0x200000000ULL;
            args[10] = 0;
            c.in_cg2 = false;
            pid = ck__clone3_run(args, sizeof args, clone_child, &c);
        }
        if (pid < 0)
            e = (int)-pid;
        if (setns(self_pidns, CLONE_NEWPID) < 0)   /* only this thread's future children */
            log_warn("exec: cannot return to the kubelet's pid namespace: %s", strerror(errno));
    }
    dumpable_hold(false);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(self_pidns);
#if defined(__SANITIZE_ADDRESS__)
    /* the child's frames left their poison in the shadow: the next mmap may get this range */
    __asan_unpoison_memory_region(stack, STACK);
#endif
    munmap(stack, STACK);   /* the child has exec'd or exited (CLONE_VFORK) */
    if (e) {
        if (e == ENOSYS)
            __atomic_store_n(&no_clone3, 1, __ATOMIC_RELAXED);
        errno = e;
        return -1;
    }
    return (pid_t)pid;
}
#else
pid_t ck_nsexec_clone(ck_nsexec_plan *pl, int in_fd, int out_fd, int err_fd, int ex_w)
{
    errno = ENOSYS;
    return -1;
}
#endif
