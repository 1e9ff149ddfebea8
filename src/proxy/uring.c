/* uring.c - the userspace mode's TCP relay on io_uring (one ring per worker thread).
 *
 * Per connection and direction (0 client -> backend through c2b, 1 backend -> client through b2c)
 * one operation at a time: a recv into the direction's buffer, then a send of what came, then the
 * next recv.  Everything a thread queues while handling a batch of completions goes to the kernel
 * with the one io_uring_enter that also waits for the next ones (DEFER_TASKRUN: the completions'
 * work runs then, in this thread, not at arbitrary points).  Per request that is a fraction of a
 * syscall where the epoll relay makes two reads, two writes and a share of epoll_wait.
 *
 * Connects go through the ring too: a refused endpoint is closed and the next one dialled; a
 * backend that goes away before its first byte has its operations drained, then the next endpoint
 * gets what the client sent so far (the replay, as in the epoll relay).  Tearing down shuts both
 * sockets, which completes whatever the kernel holds; the last completion frees the connection.
 * The worker's epoll set (listeners, UDP, the stop signal) is polled through the ring.  Since no
 * thread sleeps in epoll_wait then, EPOLLEXCLUSIVE no longer picks one thread per new connection:
 * each polls its set, tries accept4 and the others get EAGAIN (a cost per connection, not per
 * request).
 */
#include "proxy/userspace.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

/* user_data of an operation: the connection | the operation (connections are 16-byte aligned) */
enum { OP_RECV = 0, OP_SEND = 2, OP_CONNECT = 4, OP_CANCEL = 5, OP_MASK = 7 };
#define UD_EPOLL 0ull         /* the multishot poll on the worker's epoll set */

static struct io_uring_sqe *u_sqe(worker *w)
{
    struct io_uring_sqe *s = io_uring_get_sqe(&w->ring);
    while (!s) {
        /* the submission queue is full: hand it to the kernel now */
        io_uring_submit(&w->ring);
        s = io_uring_get_sqe(&w->ring);
    }
    return s;
}

static void u_queue(conn *c, struct io_uring_sqe *s, int op)
{
    io_uring_sqe_set_data64(s, (uint64_t)(uintptr_t)c | (uint64_t)op);
    c->inflight++;
}

/* d 0: from the client into c2b; d 1: from the backend into b2c */
static void u_recv(worker *w, conn *c, int d)
{
    struct io_uring_sqe *s = u_sqe(w);
    io_uring_prep_recv(s, d ? c->bfd : c->cfd, d ? c->b2c : c->c2b, BUF_SIZE, 0);
    /* a recv follows a send of the other way (the peer has yet to answer) or the first: the
     * socket is most likely empty, so wait for data rather than try a read that fails */
    s->ioprio |= IORING_RECVSEND_POLL_FIRST;
    u_queue(c, s, OP_RECV + d);
    c->st[d] = U_RECV;
}

/* what is left of sp[d] to the other side */
static void u_send(worker *w, conn *c, int d)
{
    struct io_uring_sqe *s = u_sqe(w);
    io_uring_prep_send(s, d ? c->cfd : c->bfd, c->sp[d] + c->so[d], c->sl[d] - c->so[d],
                       MSG_NOSIGNAL);
    u_queue(c, s, OP_SEND + d);
    c->st[d] = U_SEND;
}

static void u_send_buf(worker *w, conn *c, int d, const char *p, size_t n)
{
    c->sp[d] = p;
    c->sl[d] = n;
    c->so[d] = 0;
    u_send(w, c, d);
}

/* Connect to the next endpoint; false when every endpoint has been tried.  The sockets are
 * blocking: io_uring polls them itself, and nothing else reads or writes them. */
static bool u_dial(worker *w, conn *c)
{
    while (c->tries < c->l->n_eps && c->tries < 8) {
        c->tries++;
        if (!pick_ep(c->l, &c->dial))
            return false;
        c->bfd = socket(c->dial.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->bfd < 0)
            return false;
        int one = 1;
        setsockopt(c->bfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct io_uring_sqe *s = u_sqe(w);
        io_uring_prep_connect(s, c->bfd, &c->dial.sa, sa_len(&c->dial));
        u_queue(c, s, OP_CONNECT);
        return true;
    }
    return false;
}

static void u_free(worker *w, conn *c)
{
    if (c->cfd >= 0)
        close(c->cfd);
    if (c->bfd >= 0)
        close(c->bfd);
    ck_proxy_us_conn_free(w, c);
}

/* Shut both sockets: what the kernel still holds completes at once, and the last completion
 * frees the connection.  The caller must not touch c afterwards. */
static void u_close(worker *w, conn *c)
{
    if (!c->closing) {
        c->closing = true;
        if (c->cfd >= 0)
            shutdown(c->cfd, SHUT_RDWR);
        if (c->bfd >= 0)
            shutdown(c->bfd, SHUT_RDWR);
    }
    if (!c->inflight)
        u_free(w, c);
}

/* Once the dead backend's operations (a recv from it, a send to it) have drained: connect the
 * next endpoint; what the client sent goes there first (replay_due). */
static void u_redial_go(worker *w, conn *c)
{
    if (c->st[1] == U_RECV || c->st[0] == U_SEND)
        return;
    c->redial_wait = false;
    close(c->bfd);
    c->bfd = -1;
    c->st[1] = U_IDLE;
    c->replay_due = true;
    if (!u_dial(w, c))
        u_close(w, c);
}

/* The backend went away before its first byte: shut it and redial (the caller must not touch c
 * afterwards). */
static void u_redial(worker *w, conn *c)
{
    if (c->no_replay || c->tries >= c->l->n_eps) {
        u_close(w, c);
        return;
    }
    c->redial_wait = true;
    c->connected = false;
    c->b_eof = false;
    shutdown(c->bfd, SHUT_RDWR);
    u_redial_go(w, c);
}

/* Both ends said EOF and nothing is being sent: the connection is over (true: c is gone). */
static bool u_done(worker *w, conn *c)
{
    if (c->c_eof && c->b_eof && c->st[0] != U_SEND && c->st[1] != U_SEND) {
        u_close(w, c);
        return true;
    }
    return false;
}

/* Client -> backend direction when the backend is connected and nothing of d 0 is in flight. */
static void u_client_next(worker *w, conn *c)
{
    bool replay = c->replay_due && c->replay_len;
    c->replay_due = false;
    if (replay) {
        u_send_buf(w, c, 0, c->replay, c->replay_len);
    } else if (c->c_eof) {
        shutdown(c->bfd, SHUT_WR);
        c->st[0] = U_IDLE;
    } else {
        u_recv(w, c, 0);
    }
}

static void u_complete(worker *w, conn *c, int op, int res)
{
    c->inflight--;
    if (c->closing) {
        if (!c->inflight)
            u_free(w, c);
        return;
    }
    switch (op) {
    case OP_CONNECT:
        if (res < 0) {
            /* this endpoint is dead: the client never notices, try the next */
            close(c->bfd);
            c->bfd = -1;
            if (!u_dial(w, c))
                u_close(w, c);
            return;
        }
        c->connected = true;
        u_recv(w, c, 1);
        if (c->st[0] != U_RECV) {
            u_client_next(w, c);
        } else if (c->replay_due) {
            /* the client's recv in flight holds the direction, and the client may wait for an
             * answer to what it sent already: take the recv back, then send the replay */
            struct io_uring_sqe *s = u_sqe(w);
            io_uring_prep_cancel64(s, (uint64_t)(uintptr_t)c | OP_RECV, 0);
            u_queue(c, s, OP_CANCEL);
        }
        return;
    case OP_CANCEL:
        return;
    case OP_RECV: /* from the client */
        if (res == -ECANCELED) {
            c->st[0] = U_IDLE;
            if (c->connected)
                u_client_next(w, c);
            return;
        }
        if (res <= 0) {
            if (res < 0) {
                u_close(w, c);
                return;
            }
            c->c_eof = true;
            c->st[0] = U_IDLE;
            if (c->connected && !c->replay_due)
                shutdown(c->bfd, SHUT_WR);
            else if (c->connected)
                u_client_next(w, c);
            if (!u_done(w, c) && c->redial_wait)
                u_redial_go(w, c);
            return;
        }
        if (!c->answered && !c->no_replay) {
            if (c->replay_len + (size_t)res > BUF_SIZE) {
                c->no_replay = true;
            } else {
                if (!c->replay)
                    c->replay = xmalloc(BUF_SIZE);
                memcpy(c->replay + c->replay_len, c->c2b, (size_t)res);
                c->replay_len += (size_t)res;
            }
        }
        if (!c->connected) {
            /* a redial is under way: these bytes are in the replay, or cannot be replayed */
            c->st[0] = U_HELD;
            if (c->no_replay)
                u_close(w, c);
            else if (c->redial_wait)
                u_redial_go(w, c);
            return;
        }
        if (c->replay_due)
            u_client_next(w, c);
        else
            u_send_buf(w, c, 0, c->c2b, (size_t)res);
        return;
    case OP_RECV + 1: /* from the backend */
        c->st[1] = U_IDLE;
        if (c->redial_wait) {
            u_redial_go(w, c);
            return;
        }
        if (res <= 0 && !c->answered) {
            u_redial(w, c);
            return;
        }
        if (res < 0) {
            u_close(w, c);
            return;
        }
        if (res == 0) {
            c->b_eof = true;
            shutdown(c->cfd, SHUT_WR);
            u_done(w, c);
            return;
        }
        if (!c->answered) {
            c->answered = true;
            /* the replay only matters before the first answer (unless it is being sent) */
            if (c->sp[0] != c->replay || c->st[0] != U_SEND) {
                free(c->replay);
                c->replay = NULL;
                c->replay_len = 0;
            }
        }
        u_send_buf(w, c, 1, c->b2c, (size_t)res);
        return;
    case OP_SEND: /* to the backend */
        c->st[0] = U_IDLE;
        if (c->redial_wait) {
            u_redial_go(w, c);
            return;
        }
        if (res < 0) {
            if (!c->answered)
                u_redial(w, c);
            else
                u_close(w, c);
            return;
        }
        if ((c->so[0] += (size_t)res) < c->sl[0]) {
            u_send(w, c, 0);
            return;
        }
        if (c->answered && c->replay) {
            free(c->replay);
            c->replay = NULL;
            c->replay_len = 0;
        }
        u_client_next(w, c);
        u_done(w, c);
        return;
    case OP_SEND + 1: /* to the client */
        c->st[1] = U_IDLE;
        if (res < 0) {
            u_close(w, c);
            return;
        }
        if ((c->so[1] += (size_t)res) < c->sl[1])
            u_send(w, c, 1);
        else
            u_recv(w, c, 1);
        return;
    }
}

/* Handle the completions the ring holds; true when the epoll set has events. */
static bool reap_cqes(worker *w)
{
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    bool ep_ready = false;
    io_uring_for_each_cqe(&w->ring, head, cqe) {
        seen++;
        uint64_t ud = cqe->user_data;
        if (ud == LIBURING_UDATA_TIMEOUT)
            continue;
        if (ud == UD_EPOLL) {
            ep_ready = true;
            if (!(cqe->flags & IORING_CQE_F_MORE))
                w->ep_armed = false;
            continue;
        }
        u_complete(w, (conn *)(uintptr_t)(ud & ~(uint64_t)OP_MASK), (int)(ud & OP_MASK), cqe->res);
    }
    io_uring_cq_advance(&w->ring, seen);
    return ep_ready;
}

void ck_proxy_us_uring_loop(worker *w)
{
    us *u = w->owner;
    struct epoll_event evs[256];
    int64_t last_sweep = ck_now_ns();
    for (;;) {
        if (!w->ep_armed) {
            struct io_uring_sqe *s = u_sqe(w);
            io_uring_prep_poll_multishot(s, w->ep, POLLIN);
            io_uring_sqe_set_data64(s, UD_EPOLL);
            w->ep_armed = true;
        }
        /* one syscall: what this turn queued goes in, and the next completions come back */
        struct __kernel_timespec ts = {.tv_sec = 1};
        struct io_uring_cqe *cqe;
        io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
        pthread_mutex_lock(&w->mu);
        if (!u->running) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        if (reap_cqes(w)) {
            int n;
            do {
                n = epoll_wait(w->ep, evs, 256, 0);
                ck_proxy_us_dispatch(w, evs, n);
            } while (n == 256);
        }
        ck_proxy_us_sweep(w, &last_sweep);
        pthread_mutex_unlock(&w->mu);
    }
    /* stopping: shut every connection and let the kernel hand back what it holds, so no
     * operation still points into a freed buffer */
    for (conn *c = w->conns, *n; c; c = n) {
        n = c->next;
        u_close(w, c);
    }
    for (int i = 0; i < 50 && w->conns; i++) {
        struct __kernel_timespec ts = {.tv_nsec = 100000000};
        struct io_uring_cqe *cqe;
        io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
        reap_cqes(w);
    }
    io_uring_queue_exit(&w->ring);
    while (w->conns) {
        conn *c = w->conns;
        c->inflight = 0;
        u_free(w, c);
    }
}

/* An io_uring for this thread (it must be made by the thread that submits: SINGLE_ISSUER); false
 * when the kernel cannot give one with what the relay needs. */
bool ck_proxy_us_uring_init(worker *w)
{
    struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
    int rc = io_uring_queue_init_params(1024, &w->ring, &p);
    if (rc == -EINVAL) {
        /* before 6.1: completions run as task work at any syscall, still batched */
        memset(&p, 0, sizeof p);
        rc = io_uring_queue_init_params(1024, &w->ring, &p);
    }
    if (rc < 0) {
        if (w->idx == 0)
            log_info("userspace: no io_uring (%s), the relay uses epoll", strerror(-rc));
        return false;
    }
    struct io_uring_probe *pr = io_uring_get_probe_ring(&w->ring);
    bool ok = pr && (p.features & IORING_FEAT_NODROP) && io_uring_opcode_supported(pr, IORING_OP_CONNECT) &&
              io_uring_opcode_supported(pr, IORING_OP_RECV) && io_uring_opcode_supported(pr, IORING_OP_SEND) &&
              io_uring_opcode_supported(pr, IORING_OP_POLL_ADD);
    io_uring_free_probe(pr);
    if (!ok) {
        io_uring_queue_exit(&w->ring);
        if (w->idx == 0)
            log_info("userspace: this kernel's io_uring lacks connect/recv/send, the relay uses epoll");
        return false;
    }
    return true;
}

void ck_proxy_us_uring_start(worker *w, conn *c)
{
    if (!u_dial(w, c))
        u_free(w, c);
}
