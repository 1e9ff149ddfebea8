/* nsexec.h - a non-tty exec in a running runc container without runc (nsexec.c): the plan is
 * made in the caller (runc's state.json and the bundle's config.json, fds opened), the forked
 * helper runs it with system calls only.  Internal to src/streams; the entry point for callers
 * is ck_streams_spawn_native (streams.h). */
#ifndef CK_STREAMS_NSEXEC_H
#define CK_STREAMS_NSEXEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/error.h"
#include "streams/streams.h"

#define CK_NSEXEC_MAX_CGROUPS 16
#define CK_NSEXEC_MAX_GROUPS 64

typedef struct ck_nsexec_plan {
    pid_t init_pid;
    unsigned long long init_start;
    int pidns_fd;
    int ns_flag[4], ns_fd[4];       /* ipc, uts, net, mnt (flag 0: not joined) */
    /* joining the cgroups: each v1 hierarchy's `tasks` (the command is one thread: writing
     * "0" there moves it without the global lock cgroup.procs takes, see nsexec.c), and the
     * unified hierarchy's directory (cg2_dir, for clone3's CLONE_INTO_CGROUP) with its
     * cgroup.procs (cg2_procs, written when clone3 cannot); -1 when there is none */
    int cg_fd[CK_NSEXEC_MAX_CGROUPS], ncg;
    int cg2_dir, cg2_procs;
    uid_t uid;
    gid_t gid, groups[CK_NSEXEC_MAX_GROUPS];
    size_t ngroups;
    uint64_t cap_bnd, cap_eff, cap_prm, cap_inh, cap_amb;
    int last_cap;
    bool nnp, has_path, has_home;
    char cwd[4096];
    char **argv;                    /* the caller's (o->command) */
    char **envp;                    /* owned; HOME slot points at `home` */
    char *path;                     /* PATH's value, owned */
    char home[4200];
    char exe[8192];                 /* the child's PATH lookup buffer */
    char passwd[16384];             /* the child's read of the container's /etc/passwd */
} ck_nsexec_plan;

/* Whether a container (runc state.json, OCI config.json) is within what the native exec
 * applies: 0 and the plan's credentials/namespace kinds filled, or 1 with *why (the caller
 * runs the runtime instead). */
int ck_nsexec_check(const json_t *state, const json_t *config, int last_cap, ck_nsexec_plan *pl,
                    const char **why);
/* The whole plan for container `id` under runc root `runc_root`: 0 (free it with
 * ck_nsexec_plan_free), 1 with *why when declined (nothing to free). */
int ck_nsexec_prepare(const char *runc_root, const char *id, const ck_stream_exec_opts *o,
                      ck_nsexec_plan *pl, const char **why, ck_error **err);
void ck_nsexec_plan_free(ck_nsexec_plan *pl);
/* The checked part of each container's plan is cached (nsexec.c, "the plan's source"): hits
 * and misses since the start, and a way to forget every entry (tests). */
void ck_nsexec_cache_stats(unsigned long *hits, unsigned long *misses);
void ck_nsexec_cache_clear(void);
/* In the forked child with stdio in place: run the plan, exit with the command's status;
 * an error before the command's execve goes to ex_w as an errno. */
_Noreturn void ck_nsexec_child(ck_nsexec_plan *pl, int ex_w);

/* Start the command without a helper and without copying the kubelet's address space: a
 * clone3(CLONE_VM | CLONE_VFORK | CLONE_INTO_CGROUP) child on a stack of its own runs the plan
 * with in_fd/out_fd/err_fd (-1: /dev/null) as its stdio and execs; the calling thread waits
 * for that execve (or the child's failure, reported on ex_w as ever) and the command is its
 * child, to be waited for directly.  -1 with errno ENOSYS where this is not available (not
 * x86-64, or the kernel lacks clone3): use a forked helper (ck_nsexec_child) instead. */
pid_t ck_nsexec_clone(ck_nsexec_plan *pl, int in_fd, int out_fd, int err_fd, int ex_w);

/* In a forked exec helper (runtime.c, here): stdio to /dev/null and every other fd closed, so
 * only the command holds the pipes, then wait for `pid` and return its status as a shell
 * reports it (128 + signal), 255 if the wait fails.  Async-signal-safe calls only. */
int ck__streams_release_and_wait(pid_t pid);

#endif
