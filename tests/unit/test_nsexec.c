/* Unit tests for src/streams/nsexec.c (exec without runc): which container configs are within
 * what it applies (the rest falls back to runc), and, as root, a real run of the forked side
 * against this process's own namespaces and cgroup standing in for a container: user, groups,
 * capabilities, HOME, cwd, no_new_privs, exit codes and a missing binary's error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/error.h"
#include "lib/util.h"
#include "streams/nsexec.h"
#include "streams/streams.h"

#define STATE_OK "{\"init_process_pid\": 4242, \"init_process_start\": 77, \"rootless\": false, " \
                 "\"intel_rdt_path\": \"\", \"cgroup_paths\": {\"memory\": \"/sys/fs/cgroup/memory/x\"}}"
#define PROC_OK "\"user\": {\"uid\": 1000, \"gid\": 1001, \"additionalGids\": [5, 6]}, " \
                "\"args\": [\"sh\"], \"env\": [\"PATH=/bin\"], \"cwd\": \"/w\", \"terminal\": false, " \
                "\"capabilities\": {\"bounding\": [\"CAP_CHOWN\", \"CAP_KILL\"], " \
                "\"effective\": [\"CAP_KILL\"], \"permitted\": [\"CAP_CHOWN\", \"CAP_KILL\"]}, " \
                "\"noNewPrivileges\": true"
#define LINUX_OK "\"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"ipc\"}, {\"type\": \"uts\"}, " \
                 "{\"type\": \"mount\"}, {\"type\": \"network\", \"path\": \"/n\"}], " \
                 "\"cgroupsPath\": \"/x\", \"resources\": {}, \"maskedPaths\": [], \"readonlyPaths\": []"

static void test_check_table(void **state)
{
    static const struct {
        const char *name, *st, *proc, *lin;
        int rc;
    } cases[] = {
        {"ours", STATE_OK, PROC_OK, LINUX_OK, 0},
        {"seccomp", STATE_OK, PROC_OK, LINUX_OK ", \"seccomp\": {\"defaultAction\": \"SCMP_ACT_ERRNO\"}", 1},
        {"apparmor", STATE_OK, PROC_OK ", \"apparmorProfile\": \"x\"", LINUX_OK, 1},
        {"rlimits", STATE_OK, PROC_OK ", \"rlimits\": []", LINUX_OK, 1},
        {"oom score", STATE_OK, PROC_OK ", \"oomScoreAdj\": 5", LINUX_OK, 1},
        {"user namespace", STATE_OK, PROC_OK, "\"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"user\"}]", 1},
        {"no pid namespace", STATE_OK, PROC_OK, "\"namespaces\": [{\"type\": \"mount\"}]", 1},
        {"unknown capability", STATE_OK,
         "\"user\": {\"uid\": 0, \"gid\": 0}, \"env\": [\"PATH=/bin\"], \"cwd\": \"/\", "
         "\"capabilities\": {\"bounding\": [\"CAP_NOT_A_CAP\"]}", LINUX_OK, 1},
        {"no PATH", STATE_OK, "\"user\": {\"uid\": 0, \"gid\": 0}, \"env\": [\"A=b\"], \"cwd\": \"/\"",
         LINUX_OK, 1},
        {"umask", STATE_OK, "\"user\": {\"uid\": 0, \"gid\": 0, \"umask\": 63}, \"env\": [\"PATH=/bin\"], \"cwd\": \"/\"",
         LINUX_OK, 1},
        {"rootless", "{\"init_process_pid\": 9, \"rootless\": true, \"cgroup_paths\": {\"a\": \"/b\"}}",
         PROC_OK, LINUX_OK, 1},
        {"no cgroups", "{\"init_process_pid\": 9, \"cgroup_paths\": {}}", PROC_OK, LINUX_OK, 1},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        cleanup_free char *cfg = xasprintf("{\"process\": {%s}, \"linux\": {%s}}", cases[i].proc,
                                           cases[i].lin);
        json_t *st = json_loads(cases[i].st, 0, NULL), *c = json_loads(cfg, 0, NULL);
        assert_non_null(st);
        assert_non_null(c);
        ck_nsexec_plan *pl = xmalloc(sizeof *pl);
        const char *why = NULL;
        int rc = ck_nsexec_check(st, c, 40, pl, &why);
        if (rc != cases[i].rc)
            fail_msg("%s: rc %d (%s)", cases[i].name, rc, why ? why : "");
        if (rc)
            assert_non_null(why);
        if (i == 0) {
            assert_int_equal(pl->init_pid, 4242);
            assert_int_equal(pl->uid, 1000);
            assert_int_equal(pl->gid, 1001);
            assert_int_equal(pl->ngroups, 2);
            assert_int_equal(pl->groups[1], 6);
            assert_int_equal(pl->cap_bnd, (1u << 0) | (1u << 5));
            assert_int_equal(pl->cap_eff, 1u << 5);
            assert_int_equal(pl->cap_inh, 0);
            assert_true(pl->nnp);
            assert_string_equal(pl->cwd, "/w");
            for (int k = 0; k < 4; k++)
                assert_true(pl->ns_flag[k] != 0);
        }
        free(pl);
        json_decref(st);
        json_decref(c);
    }
}

/* this process's cgroup in the unified hierarchy (hybrid or pure v2), or NULL */
static char *own_cgroup(void)
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    char line[4096], *res = NULL;
    while (f && !res && fgets(line, sizeof line, f)) {
        if (strncmp(line, "0::", 3))
            continue;
        line[strcspn(line, "\n")] = '\0';
        const char *roots[] = {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"};
        for (size_t i = 0; i < ARRAY_SIZE(roots) && !res; i++) {
            char *p = xasprintf("%s%s/cgroup.procs", roots[i], line + 3);
            if (access(p, W_OK) == 0)
                res = xasprintf("%s%s", roots[i], line + 3);
            free(p);
        }
    }
    if (f)
        fclose(f);
    return res;
}

static unsigned long long own_start(void)
{
    char b[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(b, 1, sizeof b - 1, f) : 0;
    if (f)
        fclose(f);
    b[n] = '\0';
    char *p = strrchr(b, ')');
    for (int i = 2; p && i < 22; i++)
        p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

typedef struct fake {
    char dir[64];
    char *cg;
    char *made_cg[2];   /* test cgroups, removed in teardown if a failed test left them */
} fake;

/* a "container" that is this process: state.json and config.json under a temp dir */
static int fake_setup(void **state)
{
    fake *f = xcalloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/ck-nsexec.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->cg = own_cgroup();
    *state = f;
    return 0;
}

static int fake_teardown(void **state)
{
    fake *f = *state;
    cleanup_free char *cmd = xasprintf("rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    for (size_t i = 0; i < ARRAY_SIZE(f->made_cg); i++) {
        if (f->made_cg[i])
            rmdir(f->made_cg[i]);
        free(f->made_cg[i]);
    }
    free(f->cg);
    free(f);
    return 0;
}

/* written as runc writes its state: a new file renamed over the old one */
static void write_file(const char *path, const char *text)
{
    cleanup_free char *tmp = xasprintf("%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(rename(tmp, path), 0);
}

/* cgpaths: the state's cgroup_paths object, NULL for {"": our own unified cgroup} */
static void write_container_cg(fake *f, const char *process, const char *cgpaths)
{
    cleanup_free char *cdir = xasprintf("%s/c1", f->dir);
    mkdir(cdir, 0700);
    cleanup_free char *own = xasprintf("{\"\": \"%s\"}", f->cg);
    cleanup_free char *st = xasprintf(
        "{\"init_process_pid\": %d, \"init_process_start\": %llu, \"cgroup_paths\": %s, "
        "\"config\": {\"labels\": [\"bundle=%s\"]}}", (int)getpid(), own_start(),
        cgpaths ? cgpaths : own, f->dir);
    cleanup_free char *sp = xasprintf("%s/state.json", cdir);
    write_file(sp, st);
    cleanup_free char *cfg = xasprintf("{\"process\": {%s}, \"linux\": {%s}}", process, LINUX_OK);
    cleanup_free char *cp = xasprintf("%s/config.json", f->dir);
    write_file(cp, cfg);
}

static void write_container(fake *f, const char *process)
{
    write_container_cg(f, process, NULL);
}

/* run argv in the fake container; returns the exit code, output in out */
static int run(fake *f, char **argv, char *out, size_t outsz, ck_error **err)
{
    size_t n = 0;
    while (argv[n])
        n++;
    ck_stream_exec_opts o = {.command = argv, .ncommand = n, .stdout_ = true, .stderr_ = true};
    ck_stream_proc p;
    int rc = ck_streams_spawn_native(f->dir, "c1", &o, &p, err);
    if (rc != 0)
        return rc > 0 ? -100 : -1;
    size_t got = 0;
    ssize_t r;
    while (got + 1 < outsz && (r = read(p.out_fd, out + got, outsz - 1 - got)) > 0)
        got += (size_t)r;
    out[got] = '\0';
    close(p.out_fd);
    close(p.err_fd);
    int st = 0;
    assert_int_equal(waitpid(p.pid, &st, 0), p.pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_run_as_container(void **state)
{
    fake *f = *state;
    if (geteuid() != 0 || !f->cg)
        skip();   /* needs root (setns, capabilities) and a writable cgroup */
    write_container(f, "\"user\": {\"uid\": 65534, \"gid\": 65534, \"additionalGids\": [4242]}, "
                       "\"args\": [\"sh\"], \"env\": [\"PATH=/usr/bin:/bin\", \"X=y\"], "
                       "\"cwd\": \"/tmp\", \"capabilities\": {\"bounding\": [\"CAP_CHOWN\", "
                       "\"CAP_KILL\"], \"effective\": [\"CAP_KILL\"], \"permitted\": [\"CAP_KILL\"], "
                       "\"inheritable\": [\"CAP_KILL\"], \"ambient\": [\"CAP_KILL\"]}, "
                       "\"noNewPrivileges\": true");
    char out[8192];
    ck_error *e = NULL;
    char *argv[] = {"sh", "-c",
                    "id -u; id -G; grep -E '^(CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status; "
                    "echo HOME=$HOME X=$X; pwd; ls /proc/self/fd | wc -l; exit 3", NULL};
    int rc = run(f, argv, out, sizeof out, &e);
    if (rc == -100 || rc == -1)
        fail_msg("spawn: %d %s", rc, e ? e->msg : "declined");
    assert_int_equal(rc, 3);
    assert_non_null(strstr(out, "65534\n"));
    assert_non_null(strstr(out, "4242"));
    assert_non_null(strstr(out, "CapEff:\t0000000000000020"));
    assert_non_null(strstr(out, "CapBnd:\t0000000000000021"));
    assert_non_null(strstr(out, "CapAmb:\t0000000000000020"));
    assert_non_null(strstr(out, "NoNewPrivs:\t1"));
    assert_non_null(strstr(out, " X=y\n"));
    assert_non_null(strstr(out, "HOME=/"));   /* nobody's home, or / */
    assert_non_null(strstr(out, "\n/tmp\n"));
    /* stdin, stdout, stderr and ls's own directory fd: no kubelet fd leaks in */
    assert_non_null(strstr(out, "\n4\n"));
    /* the cgroup was joined (our own) and the process is gone from it */
    char *argv2[] = {"/no/such/binary", NULL};
    rc = run(f, argv2, out, sizeof out, &e);
    assert_int_equal(rc, -1);
    assert_non_null(e);
    assert_non_null(strstr(e->msg, "not found"));
    ck_error_free(e);
    e = NULL;
    char *argv3[] = {"nosuchcommand", NULL};
    rc = run(f, argv3, out, sizeof out, &e);
    assert_int_equal(rc, -1);
    ck_error_free(e);
}

/* this process's cgroup in a v1 hierarchy (e.g. "pids"), relative, or NULL (pure v2) */
static char *own_v1_cgroup(const char *hier)
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    char line[4096], *res = NULL;
    cleanup_free char *key = xasprintf(":%s:", hier);
    while (f && !res && fgets(line, sizeof line, f)) {
        char *k = strstr(line, key);
        line[strcspn(line, "\n")] = '\0';
        if (k)
            res = xstrdup(k + strlen(key));
    }
    if (f)
        fclose(f);
    return res;
}

/* The command joins cgroups other than the kubelet's: the unified one through clone3's
 * CLONE_INTO_CGROUP, a v1 hierarchy (hybrid hosts) through its `tasks` file. */
static void test_joins_cgroups(void **state)
{
    fake *f = *state;
    if (geteuid() != 0 || !f->cg)
        skip();
    size_t cl = strlen(f->cg);   /* "/sys/fs/cgroup/unified/" for the root cgroup */
    cleanup_free char *v2 = xasprintf("%.*s/ck-nsexec-%d", (int)(cl && f->cg[cl - 1] == '/' ? cl - 1 : cl),
                                      f->cg, (int)getpid());
    assert_int_equal(mkdir(v2, 0755), 0);
    f->made_cg[0] = xstrdup(v2);
    cleanup_free char *rel1 = own_v1_cgroup("pids");
    cleanup_free char *v1 = rel1 && !access("/sys/fs/cgroup/pids/tasks", W_OK)
                                ? xasprintf("/sys/fs/cgroup/pids%s/ck-nsexec-%d",
                                            strcmp(rel1, "/") ? rel1 : "", (int)getpid())
                                : NULL;
    if (v1) {
        assert_int_equal(mkdir(v1, 0755), 0);
        f->made_cg[1] = xstrdup(v1);
    }
    cleanup_free char *paths = v1 ? xasprintf("{\"\": \"%s\", \"pids\": \"%s\"}", v2, v1)
                                  : xasprintf("{\"\": \"%s\"}", v2);
    write_container_cg(f, "\"user\": {\"uid\": 0, \"gid\": 0}, \"args\": [\"sh\"], "
                          "\"env\": [\"PATH=/usr/bin:/bin\"], \"cwd\": \"/\"", paths);
    char out[8192];
    ck_error *e = NULL;
    char *argv[] = {"cat", "/proc/self/cgroup", NULL};
    int rc = run(f, argv, out, sizeof out, &e);
    if (rc == -100 || rc == -1)
        fail_msg("spawn: %d %s", rc, e ? e->msg : "declined");
    assert_int_equal(rc, 0);
    /* the unified path as the kernel shows it: relative to the hierarchy's mount */
    const char *v2rel = strncmp(v2, "/sys/fs/cgroup/unified", 22) ? v2 + 14 : v2 + 22;
    cleanup_free char *want2 = xasprintf("0::%s\n", v2rel);
    if (!strstr(out, want2))
        fail_msg("want %s in:\n%s", want2, out);
    if (v1) {
        cleanup_free char *want1 = xasprintf(":pids:%s\n", v1 + strlen("/sys/fs/cgroup/pids"));
        assert_non_null(strstr(out, want1));
    }
    /* the command is gone (its helper reaped it): the cgroups are empty again */
    assert_int_equal(rmdir(v2), 0);
    if (v1)
        assert_int_equal(rmdir(v1), 0);
}

static volatile sig_atomic_t usr1_seen;
static void on_usr1(int sig)
{
    usr1_seen = 1;
}

static char *ns_link(const char *path)
{
    char buf[256];
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n < 0)
        return NULL;
    buf[n] = '\0';
    return xstrdup(buf);
}

/* The command is cloned from the calling thread on its memory (ck_nsexec_clone): the caller
 * must come back as it was (dumpable, its own pid namespace for later children, its signal
 * handlers and mask), and the command must be its direct child, killed by the child's own
 * default dispositions rather than by our handler. */
static void test_clone_leaves_caller(void **state)
{
    fake *f = *state;
    if (geteuid() != 0 || !f->cg)
        skip();
    write_container(f, "\"user\": {\"uid\": 0, \"gid\": 0}, \"args\": [\"sh\"], "
                       "\"env\": [\"PATH=/usr/bin:/bin\"], \"cwd\": \"/\"");
    struct sigaction sa = {.sa_handler = on_usr1}, old;
    sigaction(SIGUSR1, &sa, &old);
    cleanup_free char *pidns0 = ns_link("/proc/thread-self/ns/pid_for_children");
    assert_non_null(pidns0);
    int dump0 = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    char *argv[] = {"sh", "-c", "kill -USR1 $$; echo survived", NULL};
    ck_stream_exec_opts o = {.command = argv, .ncommand = 3, .stdout_ = true};
    ck_stream_proc p;
    ck_error *e = NULL;
    int rc = ck_streams_spawn_native(f->dir, "c1", &o, &p, &e);
    if (rc != 0)
        fail_msg("spawn: %d %s", rc, e ? e->msg : "declined");
    char out[256];
    ssize_t n = read(p.out_fd, out, sizeof out - 1);
    close(p.out_fd);
    int st = 0;
    assert_int_equal(waitpid(p.pid, &st, 0), p.pid);   /* our child: no helper between */
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGUSR1);            /* the default action, not on_usr1 */
    assert_true(n <= 0);
    assert_int_equal(usr1_seen, 0);
    assert_int_equal(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), dump0);
    cleanup_free char *pidns1 = ns_link("/proc/thread-self/ns/pid_for_children");
    assert_string_equal(pidns0, pidns1);
    sigset_t mask;
    sigprocmask(SIG_SETMASK, NULL, &mask);
    assert_false(sigismember(&mask, SIGUSR1));
    sigaction(SIGUSR1, &old, NULL);
}

static void test_declined_without_state(void **state)
{
    fake *f = *state;
    char *argv[] = {"true", NULL};
    ck_stream_exec_opts o = {.command = argv, .ncommand = 1, .stdout_ = true};
    ck_stream_proc p;
    ck_error *e = NULL;
    assert_int_equal(ck_streams_spawn_native(f->dir, "missing", &o, &p, &e), 1);
    assert_null(e);
    o.tty = true;   /* a tty always goes through the runtime */
    assert_int_equal(ck_streams_spawn_native(f->dir, "missing", &o, &p, &e), 1);
}

/* The checked plan is cached per container, and only while its files are the same: a changed
 * config.json is read again, and a restarted container (a new state.json whose init is another
 * process) is never run from the old plan. */
static void test_plan_cache(void **state)
{
    fake *f = *state;
    if (geteuid() != 0 || !f->cg)
        skip();
    ck_nsexec_cache_clear();
    const char *proc = "\"user\": {\"uid\": 0, \"gid\": 0}, \"args\": [\"sh\"], "
                       "\"env\": [\"PATH=/usr/bin:/bin\", \"X=%s\"], \"cwd\": \"/tmp\"";
    cleanup_free char *p1 = xasprintf(proc, "one");
    cleanup_free char *p2 = xasprintf(proc, "two");
    write_container(f, p1);
    char out[256];
    ck_error *e = NULL;
    char *argv[] = {"sh", "-c", "echo X=$X", NULL};
    unsigned long h0, m0, h1, m1;
    ck_nsexec_cache_stats(&h0, &m0);
    assert_int_equal(run(f, argv, out, sizeof out, &e), 0);
    assert_string_equal(out, "X=one\n");
    assert_int_equal(run(f, argv, out, sizeof out, &e), 0);
    assert_string_equal(out, "X=one\n");
    ck_nsexec_cache_stats(&h1, &m1);
    assert_int_equal(m1 - m0, 1);
    assert_int_equal(h1 - h0, 1);
    /* the container's config changed: parsed again */
    write_container(f, p2);
    assert_int_equal(run(f, argv, out, sizeof out, &e), 0);
    assert_string_equal(out, "X=two\n");
    ck_nsexec_cache_stats(&h0, &m0);
    assert_int_equal(m0 - m1, 1);
    /* "restarted": state.json now names an init that is not this process; the cached plan
     * (whose init is) must not be used */
    cleanup_free char *sp = xasprintf("%s/c1/state.json", f->dir);
    cleanup_free char *st = xasprintf(
        "{\"init_process_pid\": %d, \"init_process_start\": %llu, \"cgroup_paths\": "
        "{\"\": \"%s\"}, \"config\": {\"labels\": [\"bundle=%s\"]}}", (int)getpid(),
        own_start() + 1, f->cg, f->dir);
    write_file(sp, st);
    assert_int_equal(run(f, argv, out, sizeof out, &e), -100);   /* declined: not running */
    assert_null(e);
    /* the container back (a new state.json again): parsed again */
    write_container(f, p1);
    assert_int_equal(run(f, argv, out, sizeof out, &e), 0);
    ck_nsexec_cache_stats(&h1, &m1);
    assert_int_equal(m1 - m0, 2);
    /* an init that dies after its plan was cached, state.json untouched: the cached plan is
     * found (a hit) and declined, since the pid is no longer the process runc started */
    pid_t init = fork();
    assert_true(init >= 0);
    if (init == 0) {
        pause();
        _exit(0);
    }
    char sp_init[64], b[1024];
    snprintf(sp_init, sizeof sp_init, "/proc/%d/stat", (int)init);
    unsigned long long start = 0;
    for (int i = 0; i < 100 && !start; i++) {   /* the child's start time, once it exists */
        FILE *fp = fopen(sp_init, "r");
        size_t n = fp ? fread(b, 1, sizeof b - 1, fp) : 0;
        if (fp)
            fclose(fp);
        b[n] = '\0';
        char *q = strrchr(b, ')');
        for (int k = 2; q && k < 22; k++)
            q = strchr(q + 1, ' ');
        start = q ? strtoull(q + 1, NULL, 10) : 0;
    }
    cleanup_free char *st2 = xasprintf(
        "{\"init_process_pid\": %d, \"init_process_start\": %llu, \"cgroup_paths\": "
        "{\"\": \"%s\"}, \"config\": {\"labels\": [\"bundle=%s\"]}}", (int)init, start,
        f->cg, f->dir);
    write_file(sp, st2);
    assert_int_equal(run(f, argv, out, sizeof out, &e), 0);    /* parsed, cached */
    assert_int_equal(run(f, argv, out, sizeof out, &e), 0);    /* from the cache */
    kill(init, SIGKILL);
    assert_int_equal(waitpid(init, NULL, 0), init);
    ck_nsexec_cache_stats(&h0, &m0);
    assert_int_equal(run(f, argv, out, sizeof out, &e), -100); /* a hit, declined */
    assert_null(e);
    ck_nsexec_cache_stats(&h1, &m1);
    assert_int_equal(h1 - h0, 1);
    assert_int_equal(m1 - m0, 0);
    ck_nsexec_cache_clear();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_table),
        cmocka_unit_test_setup_teardown(test_run_as_container, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_joins_cgroups, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_clone_leaves_caller, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_declined_without_state, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_plan_cache, fake_setup, fake_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
