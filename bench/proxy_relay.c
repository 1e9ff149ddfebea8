/* proxy_relay.c - the userspace proxy's relay loop stripped to its core, with the variants the
 * data-path work asked about, so each can be measured under the same wrk load
 * (bench/proxy_relay.sh): CPU per request and requests/s.
 *
 *   proxy_relay LISTEN_PORT BACKEND_IP BACKEND_PORT MODE THREADS
 *
 * MODE: rw      one read + one write per message, level-triggered (what userspace.c does)
 *       et      the same, edge-triggered (EPOLLET; reads until EAGAIN)
 *       splice  socket -> pipe -> socket per direction (no copy through user memory)
 *       uring   io_uring: recv then send per direction, every submission of a turn in one
 *               io_uring_enter (DEFER_TASKRUN; RELAY_URING_PLAIN=1: without)
 *       uring-ms  io_uring with a multishot recv per socket into a provided-buffer ring (no
 *               poll armed per recv); a message is sent from its ring buffer, which goes back
 *               to the ring when the send completes (RELAY_FIXED=1: registered files too)
 * THREADS: threads, each with its own SO_REUSEPORT listener (the kernel spreads accepts).
 * RELAY_CC=NAME / RELAY_RCVBUF=N (uring): a congestion control / a fixed receive buffer on both
 * sockets.  bench/proxy_relay.sh runs it against ckube's relay.
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

enum { M_RW, M_ET, M_SPLICE, M_URING, M_URING_MS };
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

/* RELAY_CC=NAME: that congestion control on both sockets; RELAY_RCVBUF=N: a fixed receive
 * buffer (no autotuning) - to measure what they cost per message. */
static void sock_opts(int fd)
{
    const char *cc = getenv("RELAY_CC"), *rb = getenv("RELAY_RCVBUF");
    if (cc)
        setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, (socklen_t)strlen(cc));
    if (rb) {
        int n = atoi(rb);
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &n, sizeof n);
    }
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
                sock_opts(c->fd[0]);
                sock_opts(c->fd[1]);
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

/* uring-ms: a ring of NBUF provided buffers per thread; per connection and direction a
 * multishot recv (it stays armed: no poll set up per message) and a FIFO of received buffers
 * waiting to be sent (one send in flight per direction). */
#define NBUF 256
#define BUFSZ 16384
#define QMAX 16
typedef struct mconn {
    int fd[2];
    int slot[2];               /* registered file index, or -1 */
    uint16_t q[2][QMAX];       /* received buffer ids not yet sent, per direction */
    uint32_t qlen[2][QMAX];
    int qh[2], qn[2];
    size_t off[2];             /* sent of the head buffer */
    bool sending[2], armed[2];
    int inflight;
    bool closing;
} mconn;

typedef struct mring {
    struct io_uring r;
    struct io_uring_buf_ring *br;
    char *bufs;
    bool fixed;
    int next_slot;
} mring;

static void m_fd(mring *m, struct io_uring_sqe *s, mconn *c, int k)
{
    if (m->fixed && c->slot[k] >= 0) {
        s->fd = c->slot[k];
        s->flags |= IOSQE_FIXED_FILE;
    }
}

static void m_recv(mring *m, mconn *c, int k)
{
    struct io_uring_sqe *s = sqe_get(&m->r);
    io_uring_prep_recv_multishot(s, c->fd[k], NULL, 0, 0);
    m_fd(m, s, c, k);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = 0;
    io_uring_sqe_set_data64(s, (uint64_t)(uintptr_t)c | (uint64_t)k);
    c->inflight++;
    c->armed[k] = true;
}

static void m_send(mring *m, mconn *c, int k)
{
    int i = c->qh[k];
    struct io_uring_sqe *s = sqe_get(&m->r);
    io_uring_prep_send(s, c->fd[!k], m->bufs + (size_t)c->q[k][i] * BUFSZ + c->off[k],
                       c->qlen[k][i] - c->off[k], MSG_NOSIGNAL);
    m_fd(m, s, c, !k);
    io_uring_sqe_set_data64(s, (uint64_t)(uintptr_t)c | (uint64_t)(2 + k));
    c->inflight++;
    c->sending[k] = true;
}

static void m_give(mring *m, uint16_t bid)
{
    io_uring_buf_ring_add(m->br, m->bufs + (size_t)bid * BUFSZ, BUFSZ, bid, io_uring_buf_ring_mask(NBUF), 0);
    io_uring_buf_ring_advance(m->br, 1);
}

static void m_close(mring *m, mconn *c)
{
    if (!c->closing) {
        c->closing = true;
        shutdown(c->fd[0], SHUT_RDWR);
        shutdown(c->fd[1], SHUT_RDWR);
        for (int k = 0; k < 2; k++)
            for (; c->qn[k]; c->qn[k]--, c->qh[k] = (c->qh[k] + 1) % QMAX)
                m_give(m, c->q[k][c->qh[k]]);
    }
}

static void *mworker(void *arg)
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
    mring *m = calloc(1, sizeof *m);
    struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
    if (!m || io_uring_queue_init_params(1024, &m->r, &p) < 0) {
        perror("io_uring");
        exit(1);
    }
    m->fixed = getenv("RELAY_FIXED") != NULL;
    if (m->fixed && io_uring_register_files_sparse(&m->r, 4096) < 0) {
        perror("files");
        exit(1);
    }
    if (posix_memalign((void **)&m->br, 4096, NBUF * sizeof(struct io_uring_buf)) ||
        !(m->bufs = malloc((size_t)NBUF * BUFSZ)))
        exit(1);
    io_uring_buf_ring_init(m->br);
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)m->br, .ring_entries = NBUF, .bgid = 0};
    if (io_uring_register_buf_ring(&m->r, &reg, 0) < 0) {
        perror("buf ring");
        exit(1);
    }
    for (int i = 0; i < NBUF; i++)
        m_give(m, (uint16_t)i);
    struct io_uring_sqe *s = sqe_get(&m->r);
    io_uring_prep_multishot_accept(s, ls, NULL, NULL, 0);
    io_uring_sqe_set_data64(s, 0);
    for (;;) {
        io_uring_submit_and_wait(&m->r, 1);
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&m->r, head, cqe) {
            seen++;
            uint64_t ud = cqe->user_data;
            int res = cqe->res;
            if (ud == 1)
                continue;      /* files update */
            if (!ud) {
                if (!(cqe->flags & IORING_CQE_F_MORE)) {
                    s = sqe_get(&m->r);
                    io_uring_prep_multishot_accept(s, ls, NULL, NULL, 0);
                    io_uring_sqe_set_data64(s, 0);
                }
                if (res < 0)
                    continue;
                mconn *c = calloc(1, sizeof *c);
                if (!c)
                    exit(1);
                c->fd[0] = res;
                c->fd[1] = socket(AF_INET, SOCK_STREAM, 0);
                c->slot[0] = c->slot[1] = -1;
                setsockopt(c->fd[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                setsockopt(c->fd[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                if (connect(c->fd[1], (struct sockaddr *)&backend, sizeof backend) < 0) {
                    close(c->fd[0]);
                    close(c->fd[1]);
                    free(c);
                    continue;
                }
                if (m->fixed) {
                    c->slot[0] = m->next_slot++ % 4096;
                    c->slot[1] = m->next_slot++ % 4096;
                    io_uring_register_files_update(&m->r, (unsigned)c->slot[0], c->fd, 2);
                }
                m_recv(m, c, 0);
                m_recv(m, c, 1);
                continue;
            }
            mconn *c = (mconn *)(uintptr_t)(ud & ~(uint64_t)3);
            int op = (int)(ud & 3);
            if (op < 2) {
                if (!(cqe->flags & IORING_CQE_F_MORE)) {
                    c->inflight--;
                    c->armed[op] = false;
                }
                if (res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
                    uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
                    if (c->closing || c->qn[op] == QMAX) {
                        m_give(m, bid);
                        m_close(m, c);
                    } else {
                        int t = (c->qh[op] + c->qn[op]++) % QMAX;
                        c->q[op][t] = bid;
                        c->qlen[op][t] = (uint32_t)res;
                        if (!c->sending[op]) {
                            c->off[op] = 0;
                            m_send(m, c, op);
                        }
                    }
                    if (!c->armed[op] && !c->closing)
                        m_recv(m, c, op);      /* ended (ring ran dry, say): arm it again */
                } else if (res == -ENOBUFS && !c->closing) {
                    m_recv(m, c, op);
                } else {
                    m_close(m, c);
                }
            } else {
                int k = op - 2;
                c->inflight--;
                c->sending[k] = false;
                if (res < 0 || c->closing) {
                    m_close(m, c);
                } else if ((c->off[k] += (size_t)res) < c->qlen[k][c->qh[k]]) {
                    m_send(m, c, k);
                } else {
                    m_give(m, c->q[k][c->qh[k]]);
                    c->qh[k] = (c->qh[k] + 1) % QMAX;
                    c->qn[k]--;
                    c->off[k] = 0;
                    if (c->qn[k])
                        m_send(m, c, k);
                }
            }
            if (c->closing && !c->inflight) {
                close(c->fd[0]);
                close(c->fd[1]);
                free(c);
            }
        }
        io_uring_cq_advance(&m->r, seen);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: proxy_relay LISTEN_PORT BACKEND_IP BACKEND_PORT rw|et|splice|uring|uring-ms THREADS\n");
        return 2;
    }
    lport = atoi(argv[1]);
    backend.sin_family = AF_INET;
    backend.sin_port = htons((uint16_t)atoi(argv[3]));
    if (inet_pton(AF_INET, argv[2], &backend.sin_addr) != 1)
        return 2;
    mode = !strcmp(argv[4], "et") ? M_ET : !strcmp(argv[4], "splice") ? M_SPLICE :
           !strcmp(argv[4], "uring") ? M_URING : !strcmp(argv[4], "uring-ms") ? M_URING_MS : M_RW;
    int threads = atoi(argv[5]);
    if (threads < 1 || threads > 64)
        return 2;
    pthread_t t[64];
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, mode == M_URING ? uworker : mode == M_URING_MS ? mworker : worker, NULL);
    usleep(100000);
    printf("ready\n");
    fflush(stdout);
    pthread_join(t[0], NULL);
    return 0;
}
