/* proxy_relay.c - the userspace proxy's relay loop stripped to its core, with the variants the
 * data-path work asked about, so each can be measured under the same wrk load (bench/proxy.sh,
 * RELAY=1): CPU per request and requests/s.
 *
 *   proxy_relay LISTEN_PORT BACKEND_IP BACKEND_PORT MODE THREADS
 *
 * MODE: rw      one read + one write per message, level-triggered (what userspace.c does)
 *       et      the same, edge-triggered (EPOLLET; reads until EAGAIN)
 *       splice  socket -> pipe -> socket per direction (no copy through user memory)
 *       uring   io_uring: recv then send per direction, every submission of a turn in one
 *               io_uring_enter (DEFER_TASKRUN; RELAY_URING_PLAIN=1: without)
 * THREADS: epoll threads, each with its own SO_REUSEPORT listener (the kernel spreads accepts).
 * Prints "ready" once listening; runs until killed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <liburing.h>

enum { M_RW, M_ET, M_SPLICE, M_URING };
static int mode, lport;
static struct sockaddr_in backend;

typedef struct half {
    int from, to;
    int pipe[2];               /* splice */
    size_t in_pipe;
    char buf[65536];           /* rw / et */
    size_t len;
} half;

typedef struct conn {
    int fd[2];                 /* 0 client, 1 backend */
    half h[2];                 /* h[0] client -> backend, h[1] backend -> client */
    struct conn *self[2];      /* epoll data: &self[i] names socket i */
} conn;

static void conn_free(int ep, conn *c)
{
    for (int i = 0; i < 2; i++) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd[i], NULL);
        close(c->fd[i]);
        if (mode == M_SPLICE) {
            close(c->h[i].pipe[0]);
            close(c->h[i].pipe[1]);
        }
    }
    free(c);
}

/* Move what is readable on h->from to h->to; -1 when the connection is over. */
static int pump(half *h)
{
    for (;;) {
        if (mode == M_SPLICE) {
            if (!h->in_pipe) {
                ssize_t r = splice(h->from, NULL, h->pipe[1], NULL, 1 << 20,
                                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (r == 0)
                    return -1;
                if (r < 0)
                    return errno == EAGAIN ? 0 : -1;
                h->in_pipe = (size_t)r;
            }
            ssize_t w = splice(h->pipe[0], NULL, h->to, NULL, h->in_pipe,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (w < 0)
                return errno == EAGAIN ? 0 : -1;
            h->in_pipe -= (size_t)w;
        } else {
            if (!h->len) {
                ssize_t r = read(h->from, h->buf, sizeof h->buf);
                if (r == 0)
                    return -1;
                if (r < 0)
                    return errno == EAGAIN ? 0 : -1;
                h->len = (size_t)r;
            }
            ssize_t w = write(h->to, h->buf, h->len);
            if (w < 0)
                return errno == EAGAIN ? 0 : -1;
            memmove(h->buf, h->buf + w, h->len - (size_t)w);
            h->len -= (size_t)w;
        }
        /* level-triggered: one message per wakeup is the common case; edge: until EAGAIN */
        if (mode != M_ET)
            return 0;
    }
}

static void *worker(void *arg)
{
    (void)arg;
    int one = 1;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(ls, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)lport)};
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 1024) < 0) {
        perror("listen");
        exit(1);
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    uint32_t sock_ev = EPOLLIN | EPOLLRDHUP | (mode == M_ET ? EPOLLET : 0);
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == (void *)1)
                continue;
            if (!evs[i].data.ptr) {
                int fd;
                while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    conn *c = calloc(1, sizeof *c);
                    if (!c)
                        exit(1);
                    c->fd[0] = fd;
                    c->fd[1] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
                    setsockopt(c->fd[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    setsockopt(c->fd[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    /* blocking-style connect is fine here: the backend is local */
                    fcntl(c->fd[1], F_SETFL, 0);
                    if (connect(c->fd[1], (struct sockaddr *)&backend, sizeof backend) < 0) {
                        close(c->fd[0]);
                        close(c->fd[1]);
                        free(c);
                        continue;
                    }
                    fcntl(c->fd[1], F_SETFL, O_NONBLOCK);
                    for (int k = 0; k < 2; k++) {
                        c->h[k].from = c->fd[k];
                        c->h[k].to = c->fd[!k];
                        if (mode == M_SPLICE && pipe2(c->h[k].pipe, O_NONBLOCK) < 0)
                            exit(1);
                        c->self[k] = c;
                        struct epoll_event e = {.events = sock_ev, .data.ptr = &c->self[k]};
                        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd[k], &e);
                    }
                }
                continue;
            }
            conn **slot = evs[i].data.ptr;
            conn *c = *slot;
            int k = (int)(slot - c->self);
            /* a full socket buffer on the other side would need EPOLLOUT; request/response
             * traffic never fills one, so this stripped relay does not handle it */
            if (pump(&c->h[k]) < 0) {
                /* later events of this batch may name c: drop them */
                for (int j = i + 1; j < n; j++)
                    if (evs[j].data.ptr == &c->self[0] || evs[j].data.ptr == &c->self[1])
                        evs[j].data.ptr = (void *)1;
                conn_free(ep, c);
            }
        }
    }
    return NULL;
}

/* io_uring: per connection one buffer per direction; a recv into it, then a send of what came,
 * then the next recv; every submission of a loop turn goes in with one io_uring_enter. */
typedef struct uconn {
    int fd[2];
    char buf[2][16384];        /* buf[k]: read from fd[k], written to fd[!k] */
    size_t len[2], off[2];
    int inflight;
    bool closing;
} uconn;

static struct io_uring_sqe *sqe_get(struct io_uring *r)
{
    struct io_uring_sqe *s = io_uring_get_sqe(r);
    if (!s) {
        io_uring_submit(r);
        s = io_uring_get_sqe(r);
    }
    return s;
}

/* user_data: pointer | op (0 recv from fd[0], 1 recv from fd[1], 2 send to fd[1], 3 send to fd[0]) */
static void u_recv(struct io_uring *r, uconn *c, int k)
{
    struct io_uring_sqe *s = sqe_get(r);
    io_uring_prep_recv(s, c->fd[k], c->buf[k], sizeof c->buf[k], 0);
    io_uring_sqe_set_data64(s, (uint64_t)(uintptr_t)c | (uint64_t)k);
    c->inflight++;
}

static void u_send(struct io_uring *r, uconn *c, int k)
{
    struct io_uring_sqe *s = sqe_get(r);
    io_uring_prep_send(s, c->fd[!k], c->buf[k] + c->off[k], c->len[k] - c->off[k], MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, (uint64_t)(uintptr_t)c | (uint64_t)(2 + k));
    c->inflight++;
}

static void u_close(uconn *c)
{
    if (!c->closing) {
        c->closing = true;
        shutdown(c->fd[0], SHUT_RDWR);
        shutdown(c->fd[1], SHUT_RDWR);
    }
}

static void *uworker(void *arg)
{
    (void)arg;
    int one = 1;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(ls, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)lport)};
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 1024) < 0) {
        perror("listen");
        exit(1);
    }
    struct io_uring r;
    struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
    if (getenv("RELAY_URING_PLAIN"))
        p.flags = 0;
    if (io_uring_queue_init_params(1024, &r, &p) < 0) {
        perror("io_uring");
        exit(1);
    }
    struct io_uring_sqe *s = sqe_get(&r);
    io_uring_prep_multishot_accept(s, ls, NULL, NULL, 0);
    io_uring_sqe_set_data64(s, 0);
    for (;;) {
        io_uring_submit_and_wait(&r, 1);
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&r, head, cqe) {
            seen++;
            uint64_t ud = cqe->user_data;
            int res = cqe->res;
            if (!ud) {
                if (!(cqe->flags & IORING_CQE_F_MORE)) {
                    s = sqe_get(&r);
                    io_uring_prep_multishot_accept(s, ls, NULL, NULL, 0);
                    io_uring_sqe_set_data64(s, 0);
                }
                if (res < 0)
                    continue;
                uconn *c = calloc(1, sizeof *c);
                if (!c)
                    exit(1);
                c->fd[0] = res;
                c->fd[1] = socket(AF_INET, SOCK_STREAM, 0);
                setsockopt(c->fd[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                setsockopt(c->fd[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                if (connect(c->fd[1], (struct sockaddr *)&backend, sizeof backend) < 0) {
                    close(c->fd[0]);
                    close(c->fd[1]);
                    free(c);
                    continue;
                }
                u_recv(&r, c, 0);
                u_recv(&r, c, 1);
                continue;
            }
            uconn *c = (uconn *)(uintptr_t)(ud & ~(uint64_t)3);
            int op = (int)(ud & 3);
            c->inflight--;
            if (op < 2) {
                if (res <= 0 || c->closing)
                    u_close(c);
                else {
                    c->len[op] = (size_t)res;
                    c->off[op] = 0;
                    u_send(&r, c, op);
                }
            } else {
                int k = op - 2;
                if (res < 0 || c->closing)
                    u_close(c);
                else if ((c->off[k] += (size_t)res) < c->len[k])
                    u_send(&r, c, k);
                else
                    u_recv(&r, c, k);
            }
            if (c->closing && !c->inflight) {
                close(c->fd[0]);
                close(c->fd[1]);
                free(c);
            }
        }
        io_uring_cq_advance(&r, seen);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: proxy_relay LISTEN_PORT BACKEND_IP BACKEND_PORT rw|et|splice THREADS\n");
        return 2;
    }
    lport = atoi(argv[1]);
    backend.sin_family = AF_INET;
    backend.sin_port = htons((uint16_t)atoi(argv[3]));
    if (inet_pton(AF_INET, argv[2], &backend.sin_addr) != 1)
        return 2;
    mode = !strcmp(argv[4], "et") ? M_ET : !strcmp(argv[4], "splice") ? M_SPLICE :
           !strcmp(argv[4], "uring") ? M_URING : M_RW;
    int threads = atoi(argv[5]);
    if (threads < 1 || threads > 64)
        return 2;
    pthread_t t[64];
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, mode == M_URING ? uworker : worker, NULL);
    usleep(100000);
    printf("ready\n");
    fflush(stdout);
    pthread_join(t[0], NULL);
    return 0;
}
