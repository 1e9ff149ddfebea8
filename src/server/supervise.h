/* supervise.h - run named child processes, restart them when they die, stop them all.
 *
 * Each child is fork+exec'd with an empty signal mask, default dispositions, stdin on /dev/null,
 * its own process group (so a terminal's ^C reaches only the supervisor, which then stops
 * children in order) and PR_SET_PDEATHSIG=SIGTERM (so a supervisor killed with SIGKILL leaves no
 * orphans).  Children are watched through pidfds, so the caller's event loop is one poll():
 * ck_supervisor_poll() waits for a child exit, a due restart or the caller's own fd (e.g. a
 * signalfd), whichever comes first.
 *
 * A child that exits (any reason) is restarted after a delay that starts at backoff_initial_ms
 * and doubles up to backoff_max_ms; a child that ran at least stable_ms before dying starts
 * again from the initial delay.  Every exit is logged with its code or signal.
 *
 * Single-threaded: call everything from one thread.
 */
#ifndef CK_SUPERVISE_H
#define CK_SUPERVISE_H

#include <stdbool.h>
#include <sys/types.h>

#include "lib/error.h"

typedef struct ck_supervisor ck_supervisor;

typedef struct ck_supervisor_opts {
    long backoff_initial_ms;   /* 0 = 1000 */
    long backoff_max_ms;       /* 0 = 30000 */
    long stable_ms;            /* 0 = 60000 */
    const char *log_dir;       /* NULL: children inherit stdout/stderr; else <log_dir>/<name>.log */
    /* Called after a child was reaped (wstatus as from waitpid) and after one was started. */
    void (*on_exit)(void *ud, const char *name, pid_t pid, int wstatus);
    void (*on_start)(void *ud, const char *name, pid_t pid);
    void *ud;
} ck_supervisor_opts;

ck_supervisor *ck_supervisor_new(const ck_supervisor_opts *opts);

/* Register child `name` running `path` with argv (NULL-terminated; copied) and start it now.
 * A failed fork is an error; a failed exec shows up as exit code 127 and is retried. */
int ck_supervisor_add(ck_supervisor *s, const char *name, const char *path, char *const argv[],
                      ck_error **err);

/* Wait up to timeout_ms (-1: no limit) for a child to exit, a restart to fall due, or wake_fd
 * (-1: none) to become readable; reap, log and restart as needed.  Returns 1 if wake_fd is
 * readable, 0 otherwise, -1 if poll failed (errno set; EINTR is not a failure). */
int ck_supervisor_poll(ck_supervisor *s, int wake_fd, long timeout_ms);

/* The running pid of `name`, 0 if it is not running (waiting to restart, or unknown). */
pid_t ck_supervisor_pid(const ck_supervisor *s, const char *name);
/* How many times `name` has been restarted. */
int ck_supervisor_restarts(const ck_supervisor *s, const char *name);

/* SIGTERM every running child (newest first), wait up to deadline_ms for all to exit, then
 * SIGKILL (their whole process groups) whatever is left and reap it.  No restarts afterwards.
 * Returns how many children had to be killed. */
int ck_supervisor_stop(ck_supervisor *s, long deadline_ms);

/* Frees; children still running are stopped first (deadline 5 s). */
void ck_supervisor_free(ck_supervisor *s);

/* "exited with code 3" / "killed by signal 9 (Killed)" for a waitpid status; out >= 64 bytes. */
void ck_supervisor_describe_status(int wstatus, char *out, size_t n);

#endif
