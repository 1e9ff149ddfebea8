/* Unit tests for server/supervise: restart after a crash, exponential backoff, stop with a
 * deadline, exec failure, and no orphans when the supervisor itself is SIGKILLed.  Children are
 * trivial programs (/bin/sleep, /bin/sh). */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/log.h"
#include "lib/util.h"
#include "server/supervise.h"

#define MAX_EVENTS 64

typedef struct events {
    int nstart, nexit;
    int64_t start_ns[MAX_EVENTS], exit_ns[MAX_EVENTS];
    int exit_status[MAX_EVENTS];
    pid_t exit_pid[MAX_EVENTS];
} events;

static void on_start(void *ud, const char *name, pid_t pid)
{
    events *e = ud;
    if (e->nstart < MAX_EVENTS)
        e->start_ns[e->nstart++] = ck_now_ns();
}

static void on_exit_(void *ud, const char *name, pid_t pid, int st)
{
    events *e = ud;
    if (e->nexit < MAX_EVENTS) {
        e->exit_ns[e->nexit] = ck_now_ns();
        e->exit_pid[e->nexit] = pid;
        e->exit_status[e->nexit++] = st;
    }
}

static bool alive(pid_t pid)
{
    return kill(pid, 0) == 0;
}

/* Poll until cond holds or ms pass. */
#define POLL_UNTIL(s, ms, cond)                                          \
    do {                                                                 \
        int64_t end_ = ck_now_ns() + (int64_t)(ms) * 1000000;            \
        while (!(cond) && ck_now_ns() < end_)                            \
            ck_supervisor_poll((s), -1, 20);                             \
    } while (0)

static void test_restart_after_kill(void **state)
{
    events ev = {0};
    ck_supervisor_opts o = {.backoff_initial_ms = 50, .on_start = on_start, .on_exit = on_exit_,
                            .ud = &ev};
    ck_supervisor *s = ck_supervisor_new(&o);
    char *argv[] = {"sleep", "30", NULL};
    ck_error *err = NULL;
    assert_int_equal(ck_supervisor_add(s, "sleeper", "/bin/sleep", argv, &err), 0);
    pid_t first = ck_supervisor_pid(s, "sleeper");
    assert_true(first > 0);
    assert_true(alive(first));
    assert_int_equal(kill(first, SIGKILL), 0);
    POLL_UNTIL(s, 3000, ck_supervisor_pid(s, "sleeper") > 0 &&
                            ck_supervisor_pid(s, "sleeper") != first);
    pid_t second = ck_supervisor_pid(s, "sleeper");
    assert_true(second > 0 && second != first);
    assert_int_equal(ck_supervisor_restarts(s, "sleeper"), 1);
    assert_int_equal(ev.nexit, 1);
    assert_int_equal(ev.exit_pid[0], first);
    assert_true(WIFSIGNALED(ev.exit_status[0]) && WTERMSIG(ev.exit_status[0]) == SIGKILL);
    char why[128];
    ck_supervisor_describe_status(ev.exit_status[0], why, sizeof why);
    assert_string_equal(why, "killed by signal 9 (Killed)");
    assert_int_equal(ck_supervisor_stop(s, 2000), 0);
    assert_false(alive(second));
    ck_supervisor_free(s);
}

/* A child that dies at once is restarted with doubling delays, capped. */
static void test_backoff(void **state)
{
    events ev = {0};
    ck_supervisor_opts o = {.backoff_initial_ms = 40, .backoff_max_ms = 160, .on_start = on_start,
                            .on_exit = on_exit_, .ud = &ev};
    ck_supervisor *s = ck_supervisor_new(&o);
    char *argv[] = {"sh", "-c", "exit 3", NULL};
    ck_error *err = NULL;
    assert_int_equal(ck_supervisor_add(s, "crasher", "/bin/sh", argv, &err), 0);
    POLL_UNTIL(s, 5000, ev.nstart >= 7);
    assert_true(ev.nstart >= 7);
    assert_true(WIFEXITED(ev.exit_status[0]) && WEXITSTATUS(ev.exit_status[0]) == 3);
    /* from each exit to the next start: ~40, 80, 160, 160, 160 ms (slack for a loaded host) */
    const long want[] = {40, 80, 160, 160, 160};
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        long gap = (long)((ev.start_ns[i + 1] - ev.exit_ns[i]) / 1000000);
        if (gap < want[i] - 5 || gap > want[i] + 250)
            fail_msg("restart %zu: gap %ldms, want about %ldms", i + 1, gap, want[i]);
    }
    ck_supervisor_stop(s, 1000);
    ck_supervisor_free(s);
}

/* stop: SIGTERM first; a child ignoring it is SIGKILLed at the deadline; none restarted. */
static void test_stop_deadline(void **state)
{
    events ev = {0};
    ck_supervisor_opts o = {.backoff_initial_ms = 10, .on_exit = on_exit_, .ud = &ev};
    ck_supervisor *s = ck_supervisor_new(&o);
    char *polite[] = {"sleep", "30", NULL};
    /* ignores SIGTERM; prints when its trap is set so we do not race the signal */
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    cleanup_free char *script = xasprintf("trap '' TERM; echo ready >&%d; while :; do sleep 1; done",
                                          pfd[1]);
    char *stubborn[] = {"sh", "-c", script, NULL};
    ck_error *err = NULL;
    assert_int_equal(ck_supervisor_add(s, "polite", "/bin/sleep", polite, &err), 0);
    assert_int_equal(ck_supervisor_add(s, "stubborn", "/bin/sh", stubborn, &err), 0);
    close(pfd[1]);
    char buf[8];
    assert_true(read(pfd[0], buf, sizeof buf) > 0);
    close(pfd[0]);
    pid_t p1 = ck_supervisor_pid(s, "polite"), p2 = ck_supervisor_pid(s, "stubborn");
    int64_t t0 = ck_now_ns();
    assert_int_equal(ck_supervisor_stop(s, 300), 1);
    long took = (long)((ck_now_ns() - t0) / 1000000);
    assert_in_range(took, 290, 3000);
    assert_false(alive(p1));
    assert_false(alive(p2));
    assert_int_equal(ev.nexit, 2);
    for (int i = 0; i < 2; i++) {
        int sig = ev.exit_pid[i] == p1 ? SIGTERM : SIGKILL;
        assert_true(WIFSIGNALED(ev.exit_status[i]) && WTERMSIG(ev.exit_status[i]) == sig);
    }
    /* nothing comes back after stop */
    ck_supervisor_poll(s, -1, 50);
    assert_int_equal(ck_supervisor_pid(s, "polite"), 0);
    assert_int_equal(ck_supervisor_pid(s, "stubborn"), 0);
    ck_supervisor_free(s);
}

/* exec failure is exit code 127 and is retried like any crash. */
static void test_exec_failure(void **state)
{
    events ev = {0};
    ck_supervisor_opts o = {.backoff_initial_ms = 20, .on_start = on_start, .on_exit = on_exit_,
                            .ud = &ev};
    ck_supervisor *s = ck_supervisor_new(&o);
    char *argv[] = {"nope", NULL};
    ck_error *err = NULL;
    assert_int_equal(ck_supervisor_add(s, "missing", "/nonexistent/ckube-binary", argv, &err), 0);
    POLL_UNTIL(s, 3000, ev.nexit >= 2);
    assert_true(ev.nexit >= 2);
    assert_true(WIFEXITED(ev.exit_status[0]) && WEXITSTATUS(ev.exit_status[0]) == 127);
    assert_true(ck_supervisor_restarts(s, "missing") >= 1);
    ck_supervisor_stop(s, 1000);
    ck_supervisor_free(s);
}

/* The wake fd interrupts the wait and is reported. */
static void test_wake_fd(void **state)
{
    ck_supervisor *s = ck_supervisor_new(NULL);
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(ck_supervisor_poll(s, p[0], 10), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    int64_t t0 = ck_now_ns();
    assert_int_equal(ck_supervisor_poll(s, p[0], 5000), 1);
    assert_true(ck_now_ns() - t0 < 4000000000LL);   /* not the 5 s timeout */
    close(p[0]);
    close(p[1]);
    ck_supervisor_free(s);
}

/* A supervisor killed with SIGKILL leaves no child behind (PR_SET_PDEATHSIG). */
static void test_no_orphans(void **state)
{
    /* orphans re-parent to us, so we can reap them and see they are gone */
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t sup = fork();
    assert_true(sup >= 0);
    if (sup == 0) {
        close(p[0]);
        ck_supervisor *s = ck_supervisor_new(NULL);
        char *argv[] = {"sleep", "30", NULL};
        if (ck_supervisor_add(s, "sleeper", "/bin/sleep", argv, NULL) < 0)
            _exit(1);
        pid_t c = ck_supervisor_pid(s, "sleeper");
        if (write(p[1], &c, sizeof c) != sizeof c)
            _exit(1);
        for (;;)
            pause();
    }
    close(p[1]);
    pid_t grandchild = 0;
    assert_int_equal(read(p[0], &grandchild, sizeof grandchild), (ssize_t)sizeof grandchild);
    close(p[0]);
    assert_true(grandchild > 0 && alive(grandchild));
    /* wait until it runs sleep: PDEATHSIG is armed before exec (before that, the child's own
     * getppid() check covers the window) */
    cleanup_free char *comm_path = xasprintf("/proc/%d/comm", (int)grandchild);
    int64_t until = ck_now_ns() + 5000000000LL;
    for (;;) {
        cleanup_free char *comm = NULL;
        if (ck_read_file(comm_path, 256, &comm, NULL) == 0 && !strcmp(comm, "sleep\n"))
            break;
        assert_true(ck_now_ns() < until);
        usleep(1000);
    }
    kill(sup, SIGKILL);
    int st;
    assert_int_equal(waitpid(sup, &st, 0), sup);
    /* the grandchild gets SIGTERM from the kernel, re-parents to us, and we reap it */
    int64_t end = ck_now_ns() + 5000000000LL;
    pid_t r = 0;
    while ((r = waitpid(grandchild, &st, WNOHANG)) == 0 && ck_now_ns() < end)
        usleep(10000);
    assert_int_equal(r, grandchild);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
    prctl(PR_SET_CHILD_SUBREAPER, 0);
}

int main(void)
{
    ck_log_init("test", CK_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_after_kill),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_stop_deadline),
        cmocka_unit_test(test_exec_failure),
        cmocka_unit_test(test_wake_fd),
        cmocka_unit_test(test_no_orphans),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
