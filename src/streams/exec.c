/* exec.c - exec and attach, node side: negotiation, the channel/stream protocols, the pump.
 *
 * One session per request.  The pump thread owns the client's connection (tunnel.h) and the
 * process fds: it parses client input (stdin bytes, resize events, half-close) into the session,
 * writes stdin from the bounded queue, reads stdout/stderr while the client keeps up, encrypts
 * and sends each batch at once, and reports the exit status last.  An exec's process is started
 * by the httpd worker that upgraded, while the pump already serves the client (over SPDY the
 * start overlaps kubectl's opening of its streams).  See streams.h for the protocols.
 */
#include "streams/tunnel.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/http_util.h"
#include "lib/log.h"

enum { CH_STDIN, CH_STDOUT, CH_STDERR, CH_ERROR, CH_RESIZE, CH__N };
static const char *const stream_types[CH__N] = {"stdin", "stdout", "stderr", "error", "resize"};

/* protocol versions: websocket v5/v4 and SPDY v4 write a Status JSON; older SPDY plain text */
enum proto { P_WS_V5, P_WS_V4, P_SPDY_V4, P_SPDY_V3, P_SPDY_V2, P_SPDY_V1 };

typedef struct session {
    ck_tunnel *t;
    enum proto proto;
    ck_stream_exec_opts o;
    ck_streams_config cfg;
    ck_stream_spawn_fn spawn;
    void *spawn_ctx;
    /* under t->mu */
    uint32_t sid[CH__N];        /* SPDY stream ids, 0 until the client opened them */
    ck_buf in_q;                /* stdin bytes not yet written */
    bool stdin_eof;
    bool overflow;
    ck_buf resize_buf;          /* SPDY resize stream: newline-separated JSON */
    unsigned pend_w, pend_h;    /* a resize that arrived before the pty */
    int pty_fd;
    int64_t received_ns;        /* when the request arrived (first-byte latency) */
    int64_t upgraded_ns, spawned_ns;   /* the 101 queued, the command started (exec start) */
    /* exec's early spawn, on the worker thread (under t->mu) */
    bool spawn_done;
    int sprc;
    ck_stream_proc proc;
    ck_error *spawn_err;
} session;

static void apply_resize_json(session *s, const char *js, size_t len)
{
    json_t *j = json_loadb(js, len, 0, NULL);
    if (!j)
        return;
    json_int_t w = json_integer_value(json_object_get(j, "Width"));
    json_int_t h = json_integer_value(json_object_get(j, "Height"));
    json_decref(j);
    if (w <= 0 || h <= 0 || w > 65535 || h > 65535)
        return;
    if (s->pty_fd >= 0)
        ck_streams_resize(s->pty_fd, (unsigned)w, (unsigned)h);
    else {
        s->pend_w = (unsigned)w;
        s->pend_h = (unsigned)h;
    }
}

static void stdin_bytes(session *s, ck_tunnel *t, const uint8_t *d, size_t len)
{
    if (!s->o.stdin_ || s->stdin_eof)
        return;
    if (ck_buf_add(&s->in_q, d, len) < 0) {
        s->overflow = true;     /* the process does not keep up: end rather than grow */
        t->gone = true;
    }
}

/* websocket channel messages (under t->mu) */
static void on_ws(void *user, ck_tunnel *t, uint8_t ch, const uint8_t *d, size_t len)
{
    session *s = user;
    if (ch == CH_STDIN)
        stdin_bytes(s, t, d, len);
    else if (ch == CH_RESIZE)
        apply_resize_json(s, (const char *)d, len);
    else if (ch == 255 && s->proto == P_WS_V5 && len >= 1 && d[0] == CH_STDIN)
        s->stdin_eof = true;
}

/* SPDY frames (under t->mu) */
static void on_spdy(void *user, ck_tunnel *t, const ck_spdy_frame *f)
{
    session *s = user;
    ck_buf b;
    ck_buf_init(&b, 0);
    if (f->type == CK_SPDY_SYN_STREAM) {
        const char *st = ck_spdy_frame_header(f, "streamtype");
        int ch = -1;
        for (int i = 0; st && i < CH__N; i++)
            if (!strcmp(st, stream_types[i]))
                ch = i;
        if (ch < 0 || s->sid[ch]) {
            ck_spdy_rst_stream(&b, f->stream_id, CK_SPDY_PROTOCOL_ERROR);
        } else {
            s->sid[ch] = f->stream_id;
            ck_spdy_syn_reply(&t->spdy, &b, f->stream_id, 0, NULL, 0);
            if (ch == CH_STDIN && (f->flags & CK_SPDY_FLAG_FIN))
                s->stdin_eof = true;
        }
    } else if (f->type == CK_SPDY_DATA) {
        if (f->stream_id && f->stream_id == s->sid[CH_STDIN]) {
            stdin_bytes(s, t, f->data, f->len);
            if (f->flags & CK_SPDY_FLAG_FIN)
                s->stdin_eof = true;
        } else if (f->stream_id && f->stream_id == s->sid[CH_RESIZE]) {
            if (ck_buf_add(&s->resize_buf, f->data, f->len) < 0)
                ck_buf_reset(&s->resize_buf);
            char *nl;
            while ((nl = memchr(s->resize_buf.data, '\n', s->resize_buf.len))) {
                size_t l = (size_t)(nl - s->resize_buf.data);
                apply_resize_json(s, s->resize_buf.data, l);
                memmove(s->resize_buf.data, nl + 1, s->resize_buf.len - l - 1);
                s->resize_buf.len -= l + 1;
            }
            /* a JSON object without a trailing newline */
            if (s->resize_buf.len && s->resize_buf.data[s->resize_buf.len - 1] == '}') {
                apply_resize_json(s, s->resize_buf.data, s->resize_buf.len);
                ck_buf_reset(&s->resize_buf);
            }
        }
    } else if (f->type == CK_SPDY_RST_STREAM && f->stream_id == s->sid[CH_STDIN]) {
        s->stdin_eof = true;
    }
    /* (the pump sends the replies right after this round's parse: kubectl waits for each
     * stream's reply before it opens the next) */
    if (b.len)
        ck_tunnel_send_spdy_bytes(t, &b);
    ck_buf_free(&b);
}

/* Under t->mu: send output on a channel/stream. */
static void send_out(session *s, int ch, const void *d, size_t len, bool fin)
{
    ck_tunnel *t = s->t;
    if (t->ws) {   /* messages of at most 64 KiB, as clients expect modest reads */
        for (const uint8_t *q = d; len > 0;) {
            size_t n = len > 65536 ? 65536 : len;
            ck_tunnel_send_channel(t, (uint8_t)ch, q, n);
            q += n;
            len -= n;
        }
        return;
    }
    if (!s->sid[ch])
        return;
    ck_buf b;
    ck_buf_init(&b, 0);
    const uint8_t *p = d;
    while (len > 0) {
        size_t n = len > 65536 ? 65536 : len;
        ck_spdy_data(&b, s->sid[ch], 0, p, n);
        p += n;
        len -= n;
    }
    if (fin)
        ck_spdy_data(&b, s->sid[ch], CK_SPDY_FLAG_FIN, NULL, 0);
    ck_tunnel_send_spdy_bytes(t, &b);
    ck_buf_free(&b);
}

char *ck_streams_status_json(int exit_code, const char *error_message)
{
    json_t *st = json_object();
    json_object_set_new(st, "metadata", json_object());
    if (error_message) {
        json_object_set_new(st, "status", json_string("Failure"));
        json_object_set_new(st, "message", json_string(error_message));
        json_object_set_new(st, "reason", json_string("InternalError"));
        json_object_set_new(st, "code", json_integer(500));
    } else if (exit_code != 0) {
        char *msg = xasprintf("command terminated with non-zero exit code: exit status %d",
                              exit_code);
        char code[16];
        snprintf(code, sizeof code, "%d", exit_code);
        json_object_set_new(st, "status", json_string("Failure"));
        json_object_set_new(st, "message", json_string(msg));
        json_object_set_new(st, "reason", json_string("NonZeroExitCode"));
        json_object_set_new(st, "details",
                            json_pack("{s:[{s:s,s:s}]}", "causes", "reason", "ExitCode", "message",
                                      code));
        free(msg);
    } else {
        json_object_set_new(st, "status", json_string("Success"));
    }
    char *out = json_dumps(st, JSON_COMPACT);
    json_decref(st);
    return out;
}

/* Under t->mu: the final status on channel 3 / the error stream. */
static void send_status(session *s, int exit_code, const char *errmsg)
{
    if (s->proto == P_WS_V5 || s->proto == P_WS_V4 || s->proto == P_SPDY_V4) {
        char *js = ck_streams_status_json(exit_code, errmsg);
        send_out(s, CH_ERROR, js, strlen(js), true);
        free(js);
        return;
    }
    char *msg = errmsg ? xstrdup(errmsg)
                       : exit_code ? xasprintf("command terminated with non-zero exit code: "
                                               "exit status %d", exit_code)
                                   : NULL;
    send_out(s, CH_ERROR, msg, msg ? strlen(msg) : 0, true);
    free(msg);
}

static bool streams_ready(session *s)
{
    if (s->t->ws)
        return true;
    if (!s->sid[CH_ERROR])
        return false;
    if (s->o.stdin_ && !s->sid[CH_STDIN])
        return false;
    if (s->o.stdout_ && !s->sid[CH_STDOUT])
        return false;
    if (s->o.stderr_ && !s->o.tty && !s->sid[CH_STDERR])
        return false;
    if (s->o.tty && s->proto <= P_SPDY_V3 && !s->t->ws && !s->sid[CH_RESIZE])
        return false;
    return true;
}

static void set_nonblock(int fd)
{
    if (fd >= 0)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* a started process whose client went away before its streams were there */
static void stop_proc(ck_stream_proc *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
    }
    if (p->in_fd == p->pty_fd)
        p->in_fd = -1;
    if (p->out_fd == p->pty_fd)
        p->out_fd = -1;
    close_fd(&p->in_fd);
    close_fd(&p->out_fd);
    close_fd(&p->err_fd);
    close_fd(&p->pty_fd);
}

static void session_free(session *s)
{
    if (s->cfg.ctx_free)
        s->cfg.ctx_free(s->spawn_ctx);
    ck_buf_free(&s->in_q);
    ck_buf_free(&s->resize_buf);
    for (size_t i = 0; i < s->o.ncommand; i++)
        free(s->o.command[i]);
    free(s->o.command);
    free((char *)s->o.container);
    free(s);
}

static void *pump(void *arg)
{
    session *s = arg;
    ck_tunnel *t = s->t;
    int idle_ms = s->cfg.idle_timeout_ms > 0 ? s->cfg.idle_timeout_ms : 4 * 3600 * 1000;
    int create_ms = s->cfg.stream_create_timeout_ms > 0 ? s->cfg.stream_create_timeout_ms : 30000;
    ck_stream_proc p = {.pid = -1, .in_fd = -1, .out_fd = -1, .err_fd = -1, .pty_fd = -1};

    /* exec starts the command at once.  Over SPDY the worker that upgraded starts it
     * (exec_start_early) while this thread answers the client's opening of its streams (kubectl
     * waits for each reply before it opens the next: round trips through the API server); over
     * websocket, with nothing to answer, this thread does (no hand-off).  attach waits for the
     * streams first. */
    ck_error *e = NULL;
    bool early = !s->o.attach && !t->ws;
    int sprc = 0;
    if (!s->o.attach && t->ws) {
        sprc = s->spawn(s->spawn_ctx, &s->o, &p, &e);
        s->spawned_ns = ck_now_ns();
    }

    /* SPDY: wait for the client's streams (and exec's start) */
    int64_t deadline = ck_now_ns() + (int64_t)create_ms * 1000000;
    for (;;) {
        bool failed = ck_tunnel_flush(t) < 0;
        pthread_mutex_lock(&t->mu);
        bool ready = streams_ready(s), gone = t->gone, started = !early || s->spawn_done;
        pthread_mutex_unlock(&t->mu);
        failed = failed || gone;
        if (!failed && !ready && ck_now_ns() > deadline) {
            log_warn("streams: client did not open its streams in time");
            failed = true;
        }
        if (failed) {
            if (early) {   /* the worker may still be starting it: wait, then stop it */
                for (;;) {
                    pthread_mutex_lock(&t->mu);
                    started = s->spawn_done;
                    pthread_mutex_unlock(&t->mu);
                    if (started)
                        break;
                    struct pollfd pf = {t->wake_r, POLLIN, 0};
                    poll(&pf, 1, 100);
                    ck_tunnel_drain_wake(t);
                }
                if (s->sprc == 0)
                    stop_proc(&s->proc);
                ck_error_free(s->spawn_err);
            } else if (!s->o.attach) {   /* started above */
                if (sprc == 0)
                    stop_proc(&p);
                ck_error_free(e);
            }
            ck_tunnel_finish(t);
            goto out;
        }
        if (ready && started)
            break;
        struct pollfd pf[2] = {{t->wake_r, POLLIN, 0}, {t->fd, ck_tunnel_poll_events(t), 0}};
        if (poll(pf, 2, 100) > 0)
            ck_tunnel_polled(t, pf[1].revents);
        ck_tunnel_drain_wake(t);
    }
    if (early) {
        p = s->proc;
        sprc = s->sprc;
        e = s->spawn_err;
        s->spawn_err = NULL;
    }

    if (s->o.attach)
        sprc = s->spawn(s->spawn_ctx, &s->o, &p, &e);
    if (sprc < 0) {
        pthread_mutex_lock(&t->mu);
        send_status(s, 0, e->msg);
        pthread_mutex_unlock(&t->mu);
        ck_error_free(e);
        ck_tunnel_drain(t, 10000);
        ck_tunnel_finish(t);
        goto out;
    }
    set_nonblock(p.in_fd);
    set_nonblock(p.out_fd);
    set_nonblock(p.err_fd);
    pthread_mutex_lock(&t->mu);
    s->pty_fd = p.pty_fd;
    if (s->pend_w && p.pty_fd >= 0)
        ck_streams_resize(p.pty_fd, s->pend_w, s->pend_h);
    pthread_mutex_unlock(&t->mu);

    bool exited = false, client_gone = false;
    int status = 0;
    /* the process's exit wakes the poll (a pidfd), so the status follows the last output at
     * once instead of at the next poll timeout */
    int pidfd = p.pid > 0 ? (int)syscall(SYS_pidfd_open, p.pid, 0) : -1;
    uint64_t out_total = 0;     /* output bytes so far (bulk coalescing) */
    bool drained = false;       /* the last output read was short: the producer is slow */
    size_t in_off = 0;
    ck_buf in_local;
    ck_buf_init(&in_local, CK_STREAMS_IN_LIMIT);
    for (;;) {
        ssize_t waiting = ck_tunnel_flush(t);
        if (waiting < 0) {
            client_gone = true;
            break;
        }
        /* take stdin from the shared queue */
        pthread_mutex_lock(&t->mu);
        if (s->in_q.len && in_off == in_local.len) {   /* all written: swap, no copy */
            ck_buf done = in_local;
            in_local = s->in_q;
            s->in_q = done;
            ck_buf_reset(&s->in_q);
            in_off = 0;
        } else if (s->in_q.len && in_local.len - in_off < CK_STREAMS_HIGH_WATER) {
            if (in_off) {
                memmove(in_local.data, in_local.data + in_off, in_local.len - in_off);
                in_local.len -= in_off;
                in_off = 0;
            }
            ck_buf_add(&in_local, s->in_q.data, s->in_q.len);
            ck_buf_reset(&s->in_q);
        }
        bool eof_in = s->stdin_eof && s->in_q.len == 0;
        bool gone = t->gone;
        pthread_mutex_unlock(&t->mu);
        if (gone) {
            client_gone = true;
            break;
        }
        if (eof_in && in_off == in_local.len && p.in_fd >= 0) {
            if (p.in_fd != p.pty_fd || p.pty_fd < 0)
                close_fd(&p.in_fd);
            else
                p.in_fd = -1;   /* the pty stays open for output */
        }
        if (!exited && p.pid > 0) {
            pid_t r = waitpid(p.pid, &status, WNOHANG);
            if (r == p.pid)
                exited = true;
        }
        if (p.out_fd < 0 && p.err_fd < 0 && (exited || p.pid <= 0))
            break;
        if (ck_now_ns() - t->last_ns > (int64_t)idle_ms * 1000000) {
            log_info("streams: idle timeout");
            client_gone = true;
            break;
        }
        struct pollfd pf[6];
        int n = 0, iout = -1, ierr = -1, iin = -1;
        pf[n++] = (struct pollfd){t->wake_r, POLLIN, 0};
        pf[n++] = (struct pollfd){t->fd, ck_tunnel_poll_events(t), 0};
        if (pidfd >= 0 && !exited)
            pf[n++] = (struct pollfd){pidfd, POLLIN, 0};
        bool room = (size_t)waiting < CK_TUNNEL_WIRE_HIGH;
        if (p.out_fd >= 0 && room) {
            iout = n;
            pf[n++] = (struct pollfd){p.out_fd, POLLIN, 0};
        }
        if (p.err_fd >= 0 && room) {
            ierr = n;
            pf[n++] = (struct pollfd){p.err_fd, POLLIN, 0};
        }
        if (p.in_fd >= 0 && in_off < in_local.len) {
            iin = n;
            pf[n++] = (struct pollfd){p.in_fd, POLLOUT, 0};
        }
        int timeout = (p.pid > 0 && !exited) ? 100 : 1000;
        if (exited && p.pty_fd >= 0)
            timeout = 20;   /* drain the pty, whose EOF may never come (background children) */
        if (drained && room && !s->o.tty && out_total >= CK_STREAMS_BULK_AFTER)
            usleep(CK_STREAMS_BULK_WAIT_US);   /* a bulk transfer: let the pipe fill */
        drained = false;
        int pr = poll(pf, (nfds_t)n, timeout);
        if (pr > 0)
            ck_tunnel_polled(t, pf[1].revents);
        ck_tunnel_drain_wake(t);
        if (pr == 0 && exited && p.pty_fd >= 0) {
            close_fd(&p.out_fd);
            continue;
        }
        int fds[2] = {iout, ierr};
        for (int k = 0; k < 2; k++) {
            if (fds[k] < 0 || !(pf[fds[k]].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            int *fd = k == 0 ? &p.out_fd : &p.err_fd;
            int ch = k == 0 ? CH_STDOUT : CH_STDERR;
            /* up to ~1 MiB per wake-up, read straight into frames that go to httpd without a
             * copy (one readv; a short one means the pipe is empty for now) */
            ck_tunnel_batch b = {0};
            struct iovec iov[CK_TUNNEL_BATCH_SLOTS];
            int ni = ck_tunnel_batch_slots(t, &b, iov, CK_TUNNEL_BATCH_SLOTS);
            ssize_t r = readv(*fd, iov, ni);
            int rerr = errno;
            if (r > 0) {
                out_total += (uint64_t)r;
                if ((size_t)r < CK_STREAMS_BULK_READ)
                    drained = true;
                if (s->received_ns) {
                    int64_t now = ck_now_ns(), r0 = s->received_ns;
                    log_info("exec: first output %.1f ms after the request (upgraded %.1f, "
                             "started %.1f)", (double)(now - r0) / 1e6,
                             (double)(s->upgraded_ns - r0) / 1e6,
                             s->spawned_ns ? (double)(s->spawned_ns - r0) / 1e6 : 0.0);
                    s->received_ns = 0;
                }
                pthread_mutex_lock(&t->mu);
                uint32_t id = t->ws ? (uint32_t)ch : s->sid[ch];
                pthread_mutex_unlock(&t->mu);
                if (id) {   /* (a SPDY stream the client did not open: dropped) */
                    ck_tunnel_batch_commit(t, &b, id, (size_t)r);
                    ck_tunnel_batch_send(t, &b);
                }
            }
            ck_tunnel_batch_free(&b);
            if (r == 0 || (r < 0 && rerr != EAGAIN && rerr != EINTR)) {
                /* EOF (EIO on a pty whose last slave closed) */
                pthread_mutex_lock(&t->mu);
                send_out(s, k == 0 ? CH_STDOUT : CH_STDERR, NULL, 0, true);
                pthread_mutex_unlock(&t->mu);
                if (*fd == p.pty_fd)
                    p.pty_fd = -1;
                if (*fd == p.in_fd)
                    p.in_fd = -1;
                close_fd(fd);
            }
        }
        if (iin >= 0 && (pf[iin].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(p.in_fd, in_local.data + in_off, in_local.len - in_off);
            if (w > 0)
                in_off += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                close_fd(&p.in_fd);    /* the process closed its stdin: drop the rest */
                in_off = in_local.len;
            }
        }
    }
    ck_buf_free(&in_local);
    close_fd(&pidfd);
    if (client_gone) {   /* gone, protocol error or idle: stop the process, close the tunnel */
        if (p.pid > 0 && !exited) {
            kill(p.pid, SIGKILL);
            waitpid(p.pid, &status, 0);
        }
        ck_tunnel_finish(t);
    } else {
        if (p.pid > 0 && !exited)
            waitpid(p.pid, &status, 0);
        int code = 0;
        if (p.pid > 0)
            code = WIFEXITED(status) ? WEXITSTATUS(status)
                                     : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;
        pthread_mutex_lock(&t->mu);
        if (!t->ws) {   /* SPDY: every stream we write ends with FIN */
            if (p.out_fd >= 0)
                send_out(s, CH_STDOUT, NULL, 0, true);
            if (p.err_fd >= 0)
                send_out(s, CH_STDERR, NULL, 0, true);
        }
        send_status(s, code, NULL);
        pthread_mutex_unlock(&t->mu);
        ck_tunnel_drain(t, 10000);
        ck_tunnel_finish(t);
    }
    close_fd(&p.in_fd);
    close_fd(&p.out_fd);
    close_fd(&p.err_fd);
out:
    if (p.pty_fd >= 0)
        close_fd(&p.pty_fd);
    ck_tunnel_detach(t);
    session_free(s);
    ck_tunnel_release(t);
    return NULL;
}

/* exec: start the command on the calling (worker) thread while the pump serves the client;
 * the pump takes the result once spawn_done is set (and frees s only after that). */
static void exec_start_early(session *s, ck_tunnel *t)
{
    ck_stream_proc p = {.pid = -1, .in_fd = -1, .out_fd = -1, .err_fd = -1, .pty_fd = -1};
    ck_error *e = NULL;
    int rc = s->spawn(s->spawn_ctx, &s->o, &p, &e);
    pthread_mutex_lock(&t->mu);
    s->spawned_ns = ck_now_ns();
    s->proc = p;
    s->sprc = rc;
    s->spawn_err = e;
    s->spawn_done = true;
    pthread_mutex_unlock(&t->mu);   /* (s is the pump's from here) */
    ck_tunnel_wake(t);
    ck_tunnel_release(t);
}

/* Every value of a repeated query parameter. */
static char **query_all(const char *query, const char *name, size_t *n)
{
    char **out = xcalloc(1, sizeof *out);
    *n = 0;
    size_t nl = strlen(name);
    for (const char *p = query; p && *p;) {
        const char *e = strchr(p, '&');
        if (!e)
            e = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(e - p));
        if (eq && (size_t)(eq - p) == nl && !strncmp(p, name, nl) && *n < 256) {
            char *v = ck_http__pct_decode(eq + 1, (size_t)(e - eq - 1), true, false);
            if (v) {
                out = xrealloc(out, (*n + 2) * sizeof *out);
                out[(*n)++] = v;
                out[*n] = NULL;
            }
        }
        p = *e ? e + 1 : e;
    }
    return out;
}

static void bad_request(ck_http_resp *resp, const char *msg)
{
    char *body = ck_http__status_json(400, "BadRequest", msg);
    ck_http_respond(resp, 400, "application/json", NULL, body, strlen(body));
    free(body);
}

void ck_streams_serve_exec(ck_http_req *req, ck_http_resp *resp, const char *container,
                           bool attach, const ck_streams_config *cfg, ck_stream_spawn_fn spawn,
                           void *ctx)
{
    session *s = xcalloc(1, sizeof *s);
    s->pty_fd = -1;
    s->received_ns = req->received_ns;
    s->o.attach = attach;
    /* the API server passes the client's query on: read it as the API server would ("True" too) */
    const char *q = req->query;
    s->o.stdin_ = ck_http_query_bool(q, "stdin") || ck_http_query_bool(q, "input");
    s->o.stdout_ = ck_http_query_bool(q, "stdout") || ck_http_query_bool(q, "output");
    s->o.stderr_ = ck_http_query_bool(q, "stderr") || ck_http_query_bool(q, "error");
    s->o.tty = ck_http_query_bool(q, "tty");
    if (s->o.tty)
        s->o.stderr_ = false;
    s->o.container = container ? xstrdup(container) : ck_http_query_param(req->query, "container");
    s->o.command = query_all(req->query, "command", &s->o.ncommand);
    if (cfg)
        s->cfg = *cfg;
    s->spawn = spawn;
    s->spawn_ctx = ctx;
    ck_buf_init(&s->in_q, CK_STREAMS_IN_LIMIT);
    ck_buf_init(&s->resize_buf, 4096);

    const char *err = NULL;
    if (!s->o.stdin_ && !s->o.stdout_ && !s->o.stderr_)
        err = "you must specify at least 1 of stdin, stdout, stderr";
    else if (!attach && s->o.ncommand == 0)
        err = "you must specify at least one command for the container";
    bool ws = ck_tunnel_is_websocket(req), spdy = !ws && ck_tunnel_is_spdy(req);
    if (!err && !ws && !spdy)
        err = "Upgrade request required";
    char *hdrs = NULL;
    if (!err && ws) {
        static const char *const protos[] = {"v5.channel.k8s.io", "v4.channel.k8s.io"};
        const char *pr = NULL;
        for (size_t i = 0; i < ARRAY_SIZE(protos) && !pr; i++)
            if (ck_tunnel_header_has(req, "Sec-WebSocket-Protocol", protos[i]))
                pr = protos[i];
        if (!pr)
            err = "unable to upgrade: no supported websocket subprotocol (want v5.channel.k8s.io "
                  "or v4.channel.k8s.io)";
        else {
            s->proto = pr[1] == '5' ? P_WS_V5 : P_WS_V4;
            hdrs = ck_tunnel_ws_accept_headers(req, pr);
            if (!hdrs)
                err = "missing Sec-WebSocket-Key";
        }
    } else if (!err) {
        static const struct { const char *name; enum proto p; } protos[] = {
            {"v4.channel.k8s.io", P_SPDY_V4}, {"v3.channel.k8s.io", P_SPDY_V3},
            {"v2.channel.k8s.io", P_SPDY_V2}, {"channel.k8s.io", P_SPDY_V1},
        };
        const char *pr = NULL;
        for (size_t i = 0; i < ARRAY_SIZE(protos) && !pr; i++)
            if (ck_tunnel_header_has(req, "X-Stream-Protocol-Version", protos[i].name)) {
                pr = protos[i].name;
                s->proto = protos[i].p;
            }
        if (!pr)
            err = "unable to upgrade: unable to negotiate protocol: client supports none of "
                  "v4.channel.k8s.io v3.channel.k8s.io v2.channel.k8s.io channel.k8s.io";
        else
            hdrs = xasprintf("Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                             "X-Stream-Protocol-Version: %s\r\n", pr);
    }
    if (err) {
        bad_request(resp, err);
        session_free(s);
        return;
    }
    static const char *const pnames[] = {"websocket v5.channel.k8s.io", "websocket v4.channel.k8s.io",
                                         "SPDY/3.1 v4.channel.k8s.io", "SPDY/3.1 v3.channel.k8s.io",
                                         "SPDY/3.1 v2.channel.k8s.io", "SPDY/3.1 channel.k8s.io"};
    log_info("%s %s%s: %s", attach ? "attach" : "exec", s->o.command && s->o.command[0]
             ? s->o.command[0] : "", s->o.tty ? " (tty)" : "", pnames[s->proto]);
    /* the tunnel calls back into s from the I/O thread as soon as it exists */
    s->t = ck_tunnel_open(resp, req, hdrs, ws, spdy, on_ws, on_spdy, s);
    s->upgraded_ns = ck_now_ns();
    free(hdrs);
    if (!s->t) {
        session_free(s);
        return;
    }
    ck_tunnel *t = s->t;
    bool early = !attach && !ws;
    if (early)
        ck_tunnel_ref(t);   /* exec_start_early's, below */
    pthread_t th;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&th, &a, pump, s);
    pthread_attr_destroy(&a);
    if (rc != 0) {
        log_error("streams: cannot start a pump thread");
        ck_tunnel_detach(t);
        ck_tunnel_finish(t);
        session_free(s);
        if (early)
            ck_tunnel_release(t);
        ck_tunnel_release(t);
        return;
    }
    if (early)
        exec_start_early(s, t);
}
