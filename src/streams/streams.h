/* streams.h - the Kubernetes streaming protocols, node side: exec/attach and port-forward.
 *
 * What kubectl speaks to the kubelet (relayed by the API server, src/apiserver/podproxy.c):
 *   exec/attach  websocket `v5.channel.k8s.io` / `v4.channel.k8s.io` (a channel byte before every
 *                message: 0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize, 255 close) or SPDY/3.1
 *                with `X-Stream-Protocol-Version` v4/v3/v2/channel.k8s.io (one SPDY stream per
 *                `streamType`: error, stdin, stdout, stderr, resize).  The status is a
 *                metav1.Status: Success, or Failure/NonZeroExitCode with an ExitCode cause.
 *   port-forward SPDY/3.1 `portforward.k8s.io` (an `error` and a `data` stream per connection,
 *                with `port` and `requestID` headers), or the same SPDY bytes inside websocket
 *                binary messages (`SPDY/3.1+portforward.k8s.io`, kubectl 1.31+).
 *
 * Shape: the serve functions negotiate and upgrade on the calling (httpd worker) thread, then
 * hand the session to one pump thread that owns the process/socket fds and is the only writer to
 * the client.  Client bytes arrive on httpd's I/O thread and are parsed there into bounded
 * queues.  Back-pressure: the pump reads the process or socket only while less than
 * CK_STREAMS_HIGH_WATER bytes wait for the client; client input beyond CK_STREAMS_IN_LIMIT
 * bytes not yet taken by the process ends the session (httpd cannot pause a tunnel's reads).
 * Sessions idle for idle_timeout (default 4 h, as the kubelet's streaming-connection-idle-timeout)
 * are closed.
 *
 * The runtime is pluggable: the kubelet passes a spawn callback (how to start a process in a
 * container, or reach its stdio for attach) and a connect callback (how to reach a port in the
 * pod's network namespace).  ck_streams_spawn and ck_streams_connect_netns are ready-made ones.
 */
#ifndef CK_STREAMS_H
#define CK_STREAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "lib/error.h"
#include "lib/httpd.h"

#define CK_STREAMS_HIGH_WATER (4u << 20)
#define CK_STREAMS_IN_LIMIT (16u << 20)
/* Bulk coalescing: once a session has moved CK_STREAMS_BULK_AFTER bytes one way, the pump stops
 * waking up for every few KiB a producer writes (busybox cat writes 4 KiB at a time; each
 * wake-up is a hand-off to httpd's thread and a TLS flush):
 *  - pipes (exec): after a read of less than CK_STREAMS_BULK_READ it waits
 *    CK_STREAMS_BULK_WAIT_US before looking again, so the pipe (1 MiB) fills meanwhile;
 *  - sockets (port-forward, the API server's relay): SO_RCVLOWAT = CK_STREAMS_BULK_READ, so
 *    poll wakes once that much is there, and a poll timeout of CK_STREAMS_BULK_WAIT_US takes
 *    whatever came in less.
 * Small outputs and the first bytes go out at once; a tty never waits. */
#define CK_STREAMS_BULK_AFTER (1u << 20)
#define CK_STREAMS_BULK_READ (256u << 10)
#define CK_STREAMS_BULK_WAIT_US 1000

typedef struct ck_stream_exec_opts {
    char **command;        /* NULL-terminated; empty for attach */
    size_t ncommand;
    const char *container;
    bool stdin_, stdout_, stderr_, tty;
    bool attach;
} ck_stream_exec_opts;

/* What a spawn callback hands back.  Unrequested fds are -1.  With a tty, out_fd is the pty
 * master (in_fd may be a dup of it) and err_fd is -1.  pid > 0 is waited for and its exit status
 * reported; pid <= 0 (attach) ends the session when the output ends. */
typedef struct ck_stream_proc {
    pid_t pid;
    int in_fd, out_fd, err_fd;
    int pty_fd;            /* for resize; -1 without a tty */
} ck_stream_proc;

typedef int (*ck_stream_spawn_fn)(void *ctx, const ck_stream_exec_opts *o, ck_stream_proc *p,
                                  ck_error **err);
/* Return a connected socket to `port` in the pod, or -1 with *err. */
typedef int (*ck_stream_connect_fn)(void *ctx, int port, ck_error **err);

typedef struct ck_streams_config {
    int idle_timeout_ms;          /* 0: 4 h */
    int stream_create_timeout_ms; /* SPDY: wait for the client's streams (0: 30 s) */
    const char *pod_desc;         /* "ns/name" for error messages; may be NULL */
    void (*ctx_free)(void *ctx);  /* if set, the serve function owns the spawn/connect ctx and
                                   * frees it with this when the session ends (or is refused) */
} ck_streams_config;

/* Serve GET/POST exec or attach.  The query carries command (repeated), container, stdin,
 * stdout, stderr, tty; `container` (from the path) wins over the query's.  Answers 400 without
 * an upgrade, with an unsupported protocol or without any stream requested. */
void ck_streams_serve_exec(ck_http_req *req, ck_http_resp *resp, const char *container,
                           bool attach, const ck_streams_config *cfg, ck_stream_spawn_fn spawn,
                           void *ctx);
/* Serve port-forward (SPDY/3.1 or SPDY inside websocket). */
void ck_streams_serve_portforward(ck_http_req *req, ck_http_resp *resp,
                                  const ck_streams_config *cfg, ck_stream_connect_fn connect,
                                  void *ctx);

/* Ready-made runtime pieces (runtime.c). */
/* Start prefix + o->command (prefix NULL-terminated, may be NULL: run on the host, as a stand-in
 * does) with pipes, or a pty when o->tty.  E.g. prefix {"nsenter","-t","PID","-m","-u","-i","-n",
 * "-p","--",NULL} or {"runc","exec","ID",NULL}. */
int ck_streams_spawn(char *const *prefix, const ck_stream_exec_opts *o, ck_stream_proc *p,
                     ck_error **err);
/* The same for a runtime that starts the command detached and writes its pid to pid_file
 * (prefix e.g. {"runc","exec","-d","--pid-file",pid_file,"ID",NULL}): the forked child becomes
 * a subreaper, adopts the command when the runtime exits and exits with the command's status
 * (the runtime's if it failed), so p->pid is waited for as usual.  The command writes into our
 * pipes itself (plain `runc exec` copies them through its own).  A tty goes the plain way. */
int ck_streams_spawn_adopt(char *const *prefix, const char *pid_file, const ck_stream_exec_opts *o,
                           ck_stream_proc *p, ck_error **err);
/* A non-tty exec in runc container `id` (runc root `runc_root`) without runc: the command,
 * cloned from the calling thread without copying its memory (a forked helper where that is not
 * available), joins the container's cgroups and namespaces and applies config.json's user,
 * groups, capabilities, env, cwd and no_new_privs itself (nsexec.c), 20-40 ms sooner than `runc
 * exec`.  0 with *p filled (p->pid is the command itself, or the helper that exits with its
 * status); 1 (nothing started) when the container has settings
 * it does not apply (seccomp, LSM labels, rlimits, user namespace...), a tty, or no state:
 * the caller runs the runtime instead; -1 with *err when the command could not start. */
int ck_streams_spawn_native(const char *runc_root, const char *id, const ck_stream_exec_opts *o,
                            ck_stream_proc *p, ck_error **err);
/* Connect to 127.0.0.1:port inside the network namespace at netns_path (e.g.
 * "/proc/PID/ns/net"; NULL: this one), from a helper thread so the caller's namespace stays. */
int ck_streams_connect_netns(const char *netns_path, int port, ck_error **err);
/* Apply a terminal size to a pty. */
void ck_streams_resize(int pty_fd, unsigned width, unsigned height);

/* The status JSON written on the error stream / channel 3 (caller frees). */
char *ck_streams_status_json(int exit_code, const char *error_message);

#endif
