/* userspace.c - the userspace mode: the proxy itself carries the traffic.
 *
 * Each service port gets a listening socket on an ephemeral port; iptables (nat chains
 * KUBE-PORTALS-CONTAINER from PREROUTING and KUBE-PORTALS-HOST from OUTPUT) REDIRECTs the cluster
 * IP, external IPs and node port to it.  A few relay threads (one per CPU) do everything else, no
 * thread per connection: TCP connections pick an endpoint round robin and, when the connect
 * fails, try the next one (so one dead backend costs a client nothing); UDP keeps a session per
 * client address (60 s idle) with a connected socket to its endpoint.  Ports without endpoints
 * are REJECTed (filter KUBE-PORTALS-REJECT), as in the iptables mode.
 *
 * The TCP relay runs on an io_uring per thread where the kernel allows it (uring.c: a fraction of
 * a syscall per request instead of two reads, two writes and a share of epoll_wait); listeners,
 * UDP and the stop signal stay in an epoll set that the ring polls.  Without io_uring (old kernel,
 * io_uring_disabled, seccomp) or with --userspace-epoll-relay, the relay is epoll + read/write
 * (here).  Types shared by the two files: userspace.h.
 *
 * With --userspace-kernel-relay, once a TCP connection's backend has answered and nothing is
 * buffered, the two sockets are paired in the kernel (sockmap.c): later bytes cross without
 * waking this thread, which still sees EOF and errors on both sockets and tears the connection
 * down as before.  Off by default: on this 2-core test machine the kernel's relay (a workqueue
 * item per message) was no faster than this thread (docs/proxy.md).
 */
#include "proxy/userspace.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

static void lock_all(us *u)
{
    for (int i = 0; i < u->nw; i++)
        pthread_mutex_lock(&u->w[i].mu);
}

static void unlock_all(us *u)
{
    for (int i = u->nw - 1; i >= 0; i--)
        pthread_mutex_unlock(&u->w[i].mu);
}

static listener *find_listener(us *u, const char *key)
{
    json_t *v = json_object_get(u->open, key);
    return v ? (listener *)(intptr_t)json_integer_value(v) : NULL;
}

static void conn_close(worker *u, conn *c)
{
    if (c->dead)
        return;
    for (conn **p = &u->shut; *p; p = &(*p)->next_shut)
        if (*p == c) {
            *p = c->next_shut;
            break;
        }
    if (c->cfd >= 0)
        close(c->cfd);
    if (c->bfd >= 0)
        close(c->bfd);
    c->cfd = c->bfd = -1;
    c->dead = true;
    c->next_dead = u->dead;
    u->dead = c;
}

static void conn_link(worker *w, conn *c)
{
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
}

void ck_proxy_us_conn_free(worker *w, conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->replay);
    free(c);
}

static void reap(worker *u)
{
    for (conn *c = u->dead, *n; c; c = n) {
        n = c->next_dead;
        ck_proxy_us_conn_free(u, c);
    }
    u->dead = NULL;
}

static void conn_arm(worker *u, conn *c)
{
    uint32_t cev = (c->c2b_len < BUF_SIZE && !c->c_eof && c->connected ? EPOLLIN : 0) |
                   (c->b2c_len ? EPOLLOUT : 0) | EPOLLRDHUP;
    uint32_t bev = (!c->connected ? EPOLLOUT : 0) |
                   (c->connected && c->b2c_len < BUF_SIZE && !c->b_eof ? EPOLLIN : 0) |
                   (c->connected && c->c2b_len ? EPOLLOUT : 0);
    if (cev != c->cev) {
        struct epoll_event ev = {.events = cev, .data.ptr = &c->ct};
        epoll_ctl(u->ep, EPOLL_CTL_MOD, c->cfd, &ev);
        c->cev = cev;
    }
    if (bev != c->bev) {
        struct epoll_event ev = {.events = bev, .data.ptr = &c->bt};
        epoll_ctl(u->ep, EPOLL_CTL_MOD, c->bfd, &ev);
        c->bev = bev;
    }
}

/* Start a connect to the next endpoint; false when every endpoint has been tried. */
static bool conn_try(worker *u, conn *c)
{
    sa_any sa;
    while (c->tries < c->l->n_eps && c->tries < 8) {
        c->tries++;
        if (!pick_ep(c->l, &sa))
            return false;
        if (c->bfd >= 0) {
            epoll_ctl(u->ep, EPOLL_CTL_DEL, c->bfd, NULL);
            close(c->bfd);
        }
        c->bfd = socket(sa.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->bfd < 0)
            return false;
        int one = 1;
        setsockopt(c->bfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(c->bfd, &sa.sa, sa_len(&sa)) < 0 && errno != EINPROGRESS)
            continue;
        struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = &c->bt};
        epoll_ctl(u->ep, EPOLL_CTL_ADD, c->bfd, &ev);
        c->bev = EPOLLOUT;
        return true;
    }
    return false;
}

static void on_accept(worker *u, listener *l)
{
    if (l->fd < 0)
        return;
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, (u->uring ? 0 : SOCK_NONBLOCK) | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *c = xcalloc(1, sizeof *c);
        c->cfd = fd;
        c->bfd = -1;
        c->l = l;
        conn_link(u, c);
        if (u->uring) {
            ck_proxy_us_uring_start(u, c);
            continue;
        }
        c->ct = (tag){K_CONN_CLIENT, c};
        c->bt = (tag){K_CONN_BACKEND, c};
        struct epoll_event ev = {.events = 0, .data.ptr = &c->ct};
        epoll_ctl(u->ep, EPOLL_CTL_ADD, fd, &ev);
        c->cev = 0;
        if (!conn_try(u, c)) {
            conn_close(u, c);
            continue;
        }
    }
}

/* Move bytes: returns false when the connection is done. */
static void shut_write(worker *u, conn *c, int side)
{
    if (c->shut_done[side])
        return;
    if (!c->paired) {
        shutdown(side ? c->cfd : c->bfd, SHUT_WR);
        c->shut_done[side] = true;
        return;
    }
    if (c->shut_at[side])
        return;
    c->shut_at[side] = ck_now_ns() + SHUT_GRACE_NS;
    if (!c->shut_at[!side] || c->shut_done[!side]) {
        c->next_shut = u->shut;
        u->shut = c;
    }
}

static void run_shutdowns(worker *u)
{
    int64_t now = ck_now_ns();
    for (conn **p = &u->shut; *p;) {
        conn *c = *p;
        bool pending = false;
        for (int side = 0; side < 2; side++) {
            if (!c->shut_at[side] || c->shut_done[side])
                continue;
            if (now >= c->shut_at[side]) {
                shutdown(side ? c->cfd : c->bfd, SHUT_WR);
                c->shut_done[side] = true;
            } else {
                pending = true;
            }
        }
        if (pending)
            p = &c->next_shut;
        else
            *p = c->next_shut;
    }
}

/* side: the socket written to, 0 the backend, 1 the client */
static bool pump(worker *u, conn *c, int side, char *buf, size_t *len, bool *eof, bool readable,
                 conn *tee, bool *got)
{
    int from = side ? c->bfd : c->cfd, to = side ? c->cfd : c->bfd;
    if (readable && *len < BUF_SIZE && !*eof) {
        ssize_t r = read(from, buf + *len, BUF_SIZE - *len);
        if (r > 0 && got)
            *got = true;
        if (r > 0 && tee && !tee->answered && !tee->no_replay) {
            if (tee->replay_len + (size_t)r > BUF_SIZE) {
                tee->no_replay = true;
            } else {
                if (!tee->replay)
                    tee->replay = xmalloc(BUF_SIZE);
                memcpy(tee->replay + tee->replay_len, buf + *len, (size_t)r);
                tee->replay_len += (size_t)r;
            }
        }
        if (r > 0)
            *len += (size_t)r;
        else if (r == 0 || (errno != EAGAIN && errno != EINTR))
            *eof = true;
    }
    if (*len) {
        ssize_t w = send(to, buf, *len, MSG_NOSIGNAL);
        if (w > 0) {
            memmove(buf, buf + w, *len - (size_t)w);
            *len -= (size_t)w;
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            return false;
        }
    }
    /* a backend's EOF before its first byte is not passed on: the request goes to the next
     * endpoint (on_conn) */
    if (*eof && !*len && !(side == 1 && !c->answered))
        shut_write(u, c, side);
    return true;
}

static void on_conn(worker *u, conn *c, bool backend, uint32_t evs)
{
    if (backend && !c->connected) {
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        getsockopt(c->bfd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr || (evs & (EPOLLERR | EPOLLHUP))) {
            /* this endpoint is dead: the client never notices, try the next */
            if (!conn_try(u, c)) {
                epoll_ctl(u->ep, EPOLL_CTL_DEL, c->cfd, NULL);
                if (c->bfd >= 0)
                    epoll_ctl(u->ep, EPOLL_CTL_DEL, c->bfd, NULL);
                conn_close(u, c);
            }
            return;
        }
        c->connected = true;
        conn_arm(u, c);
        return;
    }
    bool ok = true;
    bool got = false;
    if (backend)
        ok = pump(u, c, 1, c->b2c, &c->b2c_len, &c->b_eof, evs & (EPOLLIN | EPOLLHUP | EPOLLERR), NULL, &got) &&
             pump(u, c, 0, c->c2b, &c->c2b_len, &c->c_eof, false, c, NULL);
    else
        ok = pump(u, c, 0, c->c2b, &c->c2b_len, &c->c_eof, evs & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR), c, NULL) &&
             pump(u, c, 1, c->b2c, &c->b2c_len, &c->b_eof, false, NULL, NULL);
    if (got && !c->answered) {
        c->answered = true;
        free(c->replay);
        c->replay = NULL;
    }
    bool backend_died = (!ok || c->b_eof || (backend && (evs & EPOLLERR))) && !c->answered;
    if (backend_died && !c->no_replay && c->tries < c->l->n_eps) {
        /* the backend went away before answering: replay the request to the next endpoint */
        epoll_ctl(u->ep, EPOLL_CTL_DEL, c->bfd, NULL);
        close(c->bfd);
        c->bfd = -1;
        c->connected = false;
        c->b_eof = false;
        struct epoll_event ev = {.events = 0, .data.ptr = &c->ct};
        epoll_ctl(u->ep, EPOLL_CTL_MOD, c->cfd, &ev);
        c->cev = 0;
        c->c2b_len = c->replay_len;
        if (c->replay_len)
            memcpy(c->c2b, c->replay, c->replay_len);
        if (conn_try(u, c))
            return;
        ok = false;
    }
    if (backend_died)
        ok = false;     /* gone without a byte and nowhere to replay to: the client sees the end */
    if (!ok || (c->c_eof && c->b_eof && !c->c2b_len && !c->b2c_len)) {
        epoll_ctl(u->ep, EPOLL_CTL_DEL, c->cfd, NULL);
        if (c->bfd >= 0)
            epoll_ctl(u->ep, EPOLL_CTL_DEL, c->bfd, NULL);
        conn_close(u, c);
        return;
    }
    /* answered and nothing buffered: from now on the kernel carries the bytes (the replay of a
     * request to another endpoint only matters before the first answer) */
    if (u->sm && !c->paired && !c->pair_failed && c->answered && c->connected && !c->c2b_len &&
        !c->b2c_len && !c->c_eof && !c->b_eof) {
        if (ck_proxy_sockmap_pair(u->sm, c->cfd, c->bfd) == 0)
            c->paired = true;
        else
            c->pair_failed = true;
    }
    conn_arm(u, c);
}

static void on_udp(worker *u, listener *l)
{
    char buf[BUF_SIZE];
    for (;;) {
        sa_any from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(l->fd, buf, sizeof buf, MSG_DONTWAIT, &from.sa, &fl);
        if (n < 0)
            return;
        udp_sess *s = l->sessions;
        while (s && !sa_equal(&s->client, &from))
            s = s->next;
        if (!s) {
            sa_any ep;
            if (!pick_ep(l, &ep))
                continue;
            int fd = socket(ep.sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0 || connect(fd, &ep.sa, sa_len(&ep)) < 0) {
                if (fd >= 0)
                    close(fd);
                continue;
            }
            s = xcalloc(1, sizeof *s);
            s->client = from;
            s->fd = fd;
            s->l = l;
            s->t = (tag){K_UDP_BACKEND, s};
            s->next = l->sessions;
            l->sessions = s;
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->t};
            epoll_ctl(u->ep, EPOLL_CTL_ADD, fd, &ev);
        }
        s->last = ck_now_ns();
        send(s->fd, buf, (size_t)n, MSG_DONTWAIT);
    }
}

static void on_udp_reply(worker *u, udp_sess *s)
{
    char buf[BUF_SIZE];
    ssize_t n;
    while ((n = recv(s->fd, buf, sizeof buf, MSG_DONTWAIT)) >= 0) {
        s->last = ck_now_ns();
        sendto(s->l->fd, buf, (size_t)n, MSG_DONTWAIT, &s->client.sa, sa_len(&s->client));
    }
}

static void sweep_udp(us *u)
{
    int64_t now = ck_now_ns();
    for (listener *l = u->ls; l; l = l->next)
        for (udp_sess **p = &l->sessions; *p;) {
            udp_sess *s = *p;
            if (now - s->last > UDP_IDLE_NS) {
                *p = s->next;
                close(s->fd);
                free(s);
            } else {
                p = &s->next;
            }
        }
}

void ck_proxy_us_dispatch(worker *w, struct epoll_event *evs, int n)
{
    for (int i = 0; i < n; i++) {
        tag *t = evs[i].data.ptr;
        switch (t->kind) {
        case K_WAKE:
            break;        /* stopping: running is false on the next batch */
        case K_LISTEN: {
            listener *l = t->obj;
            if (l->udp)
                on_udp(w, l);
            else
                on_accept(w, l);
            break;
        }
        case K_CONN_CLIENT:
            if (!((conn *)t->obj)->dead)
                on_conn(w, t->obj, false, evs[i].events);
            break;
        case K_CONN_BACKEND:
            if (!((conn *)t->obj)->dead)
                on_conn(w, t->obj, true, evs[i].events);
            break;
        case K_UDP_BACKEND:
            on_udp_reply(w, t->obj);
            break;
        }
    }
}

/* UDP sessions live on worker 0 only */
void ck_proxy_us_sweep(worker *w, int64_t *last_sweep)
{
    if (w->idx == 0 && ck_now_ns() - *last_sweep > 1000000000ll) {
        sweep_udp(w->owner);
        *last_sweep = ck_now_ns();
    }
}

static void loop_epoll(worker *w)
{
    us *u = w->owner;
    struct epoll_event evs[256];
    int64_t last_sweep = ck_now_ns();
    for (;;) {
        int n = epoll_wait(w->ep, evs, 256, w->shut ? 10 : 1000);
        pthread_mutex_lock(&w->mu);
        if (!u->running) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        ck_proxy_us_dispatch(w, evs, n);
        if (w->shut)
            run_shutdowns(w);
        reap(w);
        ck_proxy_us_sweep(w, &last_sweep);
        pthread_mutex_unlock(&w->mu);
    }
    while (w->conns) {
        conn *c = w->conns;
        if (c->cfd >= 0)
            close(c->cfd);
        if (c->bfd >= 0)
            close(c->bfd);
        ck_proxy_us_conn_free(w, c);
    }
}

static void *loop(void *arg)
{
    worker *w = arg;
    if (!w->owner->o.epoll_relay && !w->sm && ck_proxy_us_uring_init(w)) {
        w->uring = true;
        ck_proxy_us_uring_loop(w);
    } else {
        loop_epoll(w);
    }
    return NULL;
}

static int us_probe(ck_error **err)
{
    if (!ck_proxy_have_binary("iptables-restore"))
        return ck_error_set(err, CK_E_UNAVAILABLE, "userspace mode: iptables-restore not found "
                            "in PATH (apt-get install iptables)");
    return 0;
}

static void *us_new(const ck_proxy_opts *o, ck_error **err)
{
    us *u = xcalloc(1, sizeof *u);
    u->o = *o;
    u->applied = json_object();
    u->open = json_object();
    for (int i = 0; i < PORTAL_BUCKETS; i++)
        u->members[i] = json_object();
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    u->nw = o->workers > 0 ? o->workers : cpus > 0 ? (int)cpus : 1;
    if (u->nw > MAX_WORKERS)
        u->nw = MAX_WORKERS;
    if (o->dry_run && !o->dry_run_relay)
        u->nw = 1;
    u->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    static tag wake_tag = {K_WAKE, NULL};
    u->running = true;
    u->v6 = o->dry_run || ck_proxy_ipv6_usable();
    ck_error *e = NULL;
    if (!o->dry_run && o->kernel_relay && !(u->sm = ck_proxy_sockmap_new(&e))) {
        log_warn("userspace: no kernel relay, every byte goes through the proxy: %s", e->msg);
        ck_error_free(e);
    }
    for (int i = 0; i < u->nw; i++) {
        worker *w = &u->w[i];
        w->owner = u;
        w->idx = i;
        w->sm = u->sm;
        pthread_mutex_init(&w->mu, NULL);
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &wake_tag};
        epoll_ctl(w->ep, EPOLL_CTL_ADD, u->wakefd, &ev);
    }
    if (!o->dry_run || o->dry_run_relay)
        for (int i = 0; i < u->nw; i++)
            pthread_create(&u->w[i].thr, NULL, loop, &u->w[i]);
    return u;
}

/* Ports come from our own cursor over the ephemeral range: bind(port 0) searches the range for
 * a free port each time, which grows with every port held (10,000 listeners: seconds). */
static int bind_port(us *u, int fd, int family)
{
    if (!u->port_lo) {
        u->port_lo = 32768, u->port_hi = 60999;
        FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
        if (f) {
            int lo, hi;
            if (fscanf(f, "%d %d", &lo, &hi) == 2 && lo > 0 && hi >= lo && hi < 65536)
                u->port_lo = lo, u->port_hi = hi;
            fclose(f);
        }
        u->port_next = (int)(ck_now_ns() % (u->port_hi - u->port_lo + 1));
    }
    int span = u->port_hi - u->port_lo + 1;
    for (int i = 0; i < span; i++) {
        /* dry run (tests): no listener beyond loopback */
        uint16_t port = htons((uint16_t)(u->port_lo + u->port_next));
        sa_any sa = {0};
        if (family == AF_INET6) {
            sa.v6 = (struct sockaddr_in6){.sin6_family = AF_INET6, .sin6_port = port,
                                          .sin6_addr = u->o.dry_run ? in6addr_loopback : in6addr_any};
        } else {
            sa.v4 = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = port,
                                         .sin_addr.s_addr = htonl(u->o.dry_run ? INADDR_LOOPBACK
                                                                               : INADDR_ANY)};
        }
        u->port_next = (u->port_next + 1) % span;
        if (bind(fd, &sa.sa, sa_len(&sa)) == 0)
            return 0;
        if (errno != EADDRINUSE && errno != EACCES)
            return -1;
    }
    errno = EADDRINUSE;
    return -1;
}

static listener *listener_open(us *u, const char *key, bool udp, int family, ck_error **err)
{
    int fd = socket(family, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        ck_error_sys(err, CK_E_IO, "userspace: socket");
        return NULL;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    sa_any sa = {0};
    socklen_t sl = sizeof sa;
    if (bind_port(u, fd, family) < 0 || (!udp && listen(fd, 1024) < 0) ||
        getsockname(fd, &sa.sa, &sl) < 0) {
        ck_error_sys(err, CK_E_IO, "userspace: listen for %s", key);
        close(fd);
        return NULL;
    }
    listener *l = xcalloc(1, sizeof *l);
    l->key = xstrdup(key);
    l->udp = udp;
    l->family = family;
    l->fd = fd;
    l->local_port = ntohs(family == AF_INET6 ? sa.v6.sin6_port : sa.v4.sin_port);
    l->t = (tag){K_LISTEN, l};
    for (int i = 0; i < (udp ? 1 : u->nw); i++) {
        struct epoll_event ev = {.events = EPOLLIN | (udp ? 0 : EPOLLEXCLUSIVE), .data.ptr = &l->t};
        epoll_ctl(u->w[i].ep, EPOLL_CTL_ADD, fd, &ev);
    }
    l->next = u->ls;
    u->ls = l;
    json_object_set_new(u->open, key, json_integer((json_int_t)(intptr_t)l));
    return l;
}

static void listener_close(us *u, listener *l)
{
    for (int i = 0; i < (l->udp ? 1 : u->nw); i++)
        epoll_ctl(u->w[i].ep, EPOLL_CTL_DEL, l->fd, NULL);
    close(l->fd);
    for (udp_sess *s = l->sessions, *n; s; s = n) {
        n = s->next;
        epoll_ctl(u->w[0].ep, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
        free(s);
    }
    l->sessions = NULL;
    /* open TCP connections keep a pointer to l and keep working (their endpoint is chosen), so
     * l stays on the list (fd -1, no endpoints) until the mode is freed */
    l->n_eps = 0;
}

static void listener_drop(us *u, const char *key)
{
    listener *l = find_listener(u, key);
    if (!l)
        return;
    json_object_del(u->open, key);
    listener_close(u, l);
    l->fd = -1;
}

static int bucket_of(const char *key)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 16777619u;
    return (int)(h % PORTAL_BUCKETS);
}

/* Open/update the listeners of one Service and render its portal lines, per family ("nat" and
 * "filter" for iptables, "nat6" and "filter6" for ip6tables); NULL s: gone. */
static json_t *render_service(us *u, const ck_proxy_service *s, ck_error **err)
{
    ck_buf nat[2], filter[2];
    for (int f = 0; f < 2; f++) {
        ck_buf_init(&nat[f], 0);
        ck_buf_init(&filter[f], 0);
    }
    json_t *ls = json_array();
    char chain[32];
    snprintf(chain, sizeof chain, "KUBE-PORTALS-B-%02d", bucket_of(s->key));
    char rchain[32];
    snprintf(rchain, sizeof rchain, "KUBE-PORTALS-R-%02d", bucket_of(s->key));
    int rc = 0;
    for (size_t i = 0; i < s->n_ports; i++) {
        const ck_proxy_port *p = &s->ports[i];
        int f = p->family == 6;
        if (f && !u->v6)
            continue;
        u->any_v6 |= f;
        const char *host = f ? "/128" : "/32";
        int af = f ? AF_INET6 : AF_INET;
        cleanup_free char *key = xasprintf("%s/%s%s", p->name, p->proto, f ? "/6" : "");
        listener *l = find_listener(u, key);
        if (!l && !(l = listener_open(u, key, !strcmp(p->proto, "udp"), af, err))) {
            rc = -1;
            break;
        }
        json_array_append_new(ls, json_string(key));
        const ck_proxy_ep *eps[p->n_eps + 1];
        size_t n = ck_proxy_port_pick(p, p->int_local, eps);
        free(l->eps);
        l->eps = xcalloc(n + 1, sizeof *l->eps);
        for (size_t j = 0; j < n; j++) {
            if (f) {
                l->eps[j].v6.sin6_family = AF_INET6;
                l->eps[j].v6.sin6_port = htons((uint16_t)eps[j]->port);
                inet_pton(AF_INET6, eps[j]->ip, &l->eps[j].v6.sin6_addr);
            } else {
                l->eps[j].v4.sin_family = AF_INET;
                l->eps[j].v4.sin_port = htons((uint16_t)eps[j]->port);
                inet_pton(AF_INET, eps[j]->ip, &l->eps[j].v4.sin_addr);
            }
        }
        l->n_eps = n;
        const char *pr = p->proto;
        if (!n) {
            ck_buf_printf(&filter[f], "-A %s -m comment --comment \"%s has no endpoints\" -m %s -p %s "
                          "-d %s%s --dport %d -j REJECT%s\n", rchain, p->name, pr, pr,
                          p->cluster_ip, host, p->port,
                          !strcmp(pr, "tcp") ? " --reject-with tcp-reset" : "");
            continue;
        }
        ck_buf_printf(&nat[f], "-A %s -m comment --comment \"%s\" -m %s -p %s -d %s%s --dport %d "
                      "-j REDIRECT --to-ports %d\n", chain, p->name, pr, pr, p->cluster_ip, host,
                      p->port, l->local_port);
        for (size_t j = 0; j < p->n_external; j++)
            ck_buf_printf(&nat[f], "-A %s -m comment --comment \"%s\" -m %s -p %s -d %s%s --dport %d "
                          "-j REDIRECT --to-ports %d\n", chain, p->name, pr, pr, p->external[j],
                          host, p->port, l->local_port);
        if (p->node_port)
            ck_buf_printf(&nat[f], "-A %s -m comment --comment \"%s\" -m addrtype --dst-type LOCAL "
                          "-m %s -p %s --dport %d -j REDIRECT --to-ports %d\n", chain, p->name, pr,
                          pr, p->node_port, l->local_port);
    }
    json_t *r = json_pack("{s:i,s:s,s:s,s:s,s:s,s:o}", "b", bucket_of(s->key),
                          "nat", nat[0].data ? nat[0].data : "",
                          "filter", filter[0].data ? filter[0].data : "",
                          "nat6", nat[1].data ? nat[1].data : "",
                          "filter6", filter[1].data ? filter[1].data : "", "ls", ls);
    for (int f = 0; f < 2; f++) {
        ck_buf_free(&nat[f]);
        ck_buf_free(&filter[f]);
    }
    if (rc < 0) {
        json_decref(r);
        return NULL;
    }
    return r;
}

/* Apply one Service's new rendering (NULL: gone): listeners it no longer has are closed. */
static void apply_service(us *u, const char *key, json_t *r, bool *dirty)
{
    json_t *old = json_object_get(u->applied, key);
    if (old) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(old, "ls"), i, v) {
            bool kept = false;
            size_t j;
            json_t *w;
            json_array_foreach(json_object_get(r, "ls"), j, w)
                kept = kept || json_equal(v, w);
            if (!kept)
                listener_drop(u, json_string_value(v));
        }
        int b = (int)json_integer_value(json_object_get(old, "b"));
        dirty[b] = true;
        json_object_del(u->members[b], key);
    }
    if (r) {
        int b = (int)json_integer_value(json_object_get(r, "b"));
        dirty[b] = true;
        json_object_set_new(u->members[b], key, json_true());
        json_object_set_new(u->applied, key, r);
    } else {
        json_object_del(u->applied, key);
    }
}

typedef struct full_ctx {
    us *u;
    json_t *seen;
    bool *dirty;
    ck_error **err;
    int rc;
} full_ctx;

static bool full_one(void *ctx, const ck_proxy_service *s)
{
    full_ctx *x = ctx;
    json_t *r = render_service(x->u, s, x->err);
    if (!r) {
        x->rc = -1;
        return false;
    }
    json_object_set_new(x->seen, s->key, json_true());
    apply_service(x->u, s->key, r, x->dirty);
    return true;
}

static const struct { const char *table, *chain, *rule; } us_jumps[] = {
    {"nat", "PREROUTING", "-m comment --comment \"handle ClusterIPs; NOTE: this must be before the NodePort rules\" -j KUBE-PORTALS-CONTAINER"},
    {"nat", "OUTPUT", "-m comment --comment \"handle ClusterIPs; NOTE: this must be before the NodePort rules\" -j KUBE-PORTALS-HOST"},
    {"filter", "INPUT", "-m conntrack --ctstate NEW -j KUBE-PORTALS-REJECT"},
    {"filter", "OUTPUT", "-m conntrack --ctstate NEW -j KUBE-PORTALS-REJECT"},
    {"filter", "FORWARD", "-m conntrack --ctstate NEW -j KUBE-PORTALS-REJECT"},
};

/* The restore input of one family (f 0: iptables, 1: ip6tables) for the dirty buckets. */
static char *portal_script(us *u, const bool *dirty, int f)
{
    ck_buf nat, filter;
    ck_buf_init(&nat, 0);
    ck_buf_init(&filter, 0);
    if (!u->started) {
        ck_buf_addstr(&nat, ":KUBE-PORTALS-CONTAINER - [0:0]\n:KUBE-PORTALS-HOST - [0:0]\n");
        ck_buf_addstr(&filter, ":KUBE-PORTALS-REJECT - [0:0]\n");
    }
    for (int b = 0; b < PORTAL_BUCKETS; b++)
        if (dirty[b]) {
            ck_buf_printf(&nat, ":KUBE-PORTALS-B-%02d - [0:0]\n", b);
            ck_buf_printf(&filter, ":KUBE-PORTALS-R-%02d - [0:0]\n", b);
        }
    if (!u->started)
        for (int b = 0; b < PORTAL_BUCKETS; b++) {
            ck_buf_printf(&nat, "-A KUBE-PORTALS-CONTAINER -j KUBE-PORTALS-B-%02d\n", b);
            ck_buf_printf(&nat, "-A KUBE-PORTALS-HOST -j KUBE-PORTALS-B-%02d\n", b);
            ck_buf_printf(&filter, "-A KUBE-PORTALS-REJECT -j KUBE-PORTALS-R-%02d\n", b);
        }
    for (int b = 0; b < PORTAL_BUCKETS; b++) {
        if (!dirty[b])
            continue;
        const char *k;
        json_t *v;
        json_object_foreach(u->members[b], k, v) {
            json_t *r = json_object_get(u->applied, k);
            ck_buf_addstr(&nat, json_string_value(json_object_get(r, f ? "nat6" : "nat")));
            ck_buf_addstr(&filter, json_string_value(json_object_get(r, f ? "filter6" : "filter")));
        }
    }
    ck_buf out;
    ck_buf_init(&out, 0);
    ck_buf_addstr(&out, "*nat\n");
    if (nat.len)
        ck_buf_add(&out, nat.data, nat.len);
    ck_buf_addstr(&out, "COMMIT\n*filter\n");
    if (filter.len)
        ck_buf_add(&out, filter.data, filter.len);
    ck_buf_addstr(&out, "COMMIT\n");
    ck_buf_free(&nat);
    ck_buf_free(&filter);
    return ck_buf_steal(&out);
}

static int us_sync(void *st, ck_proxy_model *m, const json_t *changed, ck_error **err)
{
    us *u = st;
    bool dirty[PORTAL_BUCKETS] = {0};
    bool full = !changed || !u->started;
    int rc = 0;
    lock_all(u);
    if (full) {
        full_ctx x = {u, json_object(), dirty, err, 0};
        ck_proxy_model_foreach(m, full_one, &x);
        rc = x.rc;
        const char *k;
        json_t *v, *gone = json_array();
        json_object_foreach(u->applied, k, v)
            if (!json_object_get(x.seen, k))
                json_array_append_new(gone, json_string(k));
        size_t i;
        json_array_foreach(gone, i, v)
            apply_service(u, json_string_value(v), NULL, dirty);
        json_decref(gone);
        json_decref(x.seen);
        for (int b = 0; b < PORTAL_BUCKETS; b++)
            dirty[b] = true;
    } else {
        size_t i;
        json_t *kv;
        json_array_foreach(changed, i, kv) {
            const char *k = json_string_value(kv);
            const ck_proxy_service *s = ck_proxy_model_get(m, k);
            json_t *r = NULL;
            if (s && !(r = render_service(u, s, err))) {
                rc = -1;
                break;
            }
            apply_service(u, k, r, dirty);
        }
    }
    unlock_all(u);
    if (rc < 0)
        return ck_error_wrap(err, "userspace sync");
    /* one restore per family: dirty bucket chains re-declared (flushed) and refilled */
    free(u->script);
    u->script = portal_script(u, dirty, 0);
    cleanup_free char *s6 = u->v6 ? portal_script(u, dirty, 1) : NULL;
    if (u->o.dry_run) {
        if (u->any_v6) {
            char *both = xasprintf("%s# ip6tables\n%s", u->script, s6);
            free(u->script);
            u->script = both;
        }
        u->started = true;
        return 0;
    }
    for (int f = 0; f < (u->v6 ? 2 : 1); f++) {
        const char *argv[] = {ck_proxy_ipt_fam(f ? 6 : 4, CK_IPT_RESTORE), "-w", "--noflush", NULL};
        const char *text = f ? s6 : u->script;
        if (ck_proxy_exec(argv, text, strlen(text), NULL, err) < 0) {
            u->started = false;     /* next sync: everything again */
            return ck_error_wrap(err, "userspace sync");
        }
    }
    if (!u->started)
        for (int f = 0; f < (u->v6 ? 2 : 1); f++)
            for (size_t i = 0; i < ARRAY_SIZE(us_jumps); i++)
                if (ck_proxy_iptables_ensure_jump(f ? 6 : 4, us_jumps[i].table, us_jumps[i].chain,
                                                  us_jumps[i].rule, err) < 0)
                    return -1;
    u->started = true;
    return 0;
}

static const char *us_last(void *st)
{
    return ((us *)st)->script;
}

static void us_free(void *st)
{
    us *u = st;
    if (!u)
        return;
    lock_all(u);
    u->running = false;
    unlock_all(u);
    uint64_t one = 1;
    if (write(u->wakefd, &one, sizeof one) < 0) {
    }
    if (!u->o.dry_run || u->o.dry_run_relay)
        for (int i = 0; i < u->nw; i++)
            pthread_join(u->w[i].thr, NULL);
    for (listener *l = u->ls, *n; l; l = n) {
        n = l->next;
        if (l->fd >= 0)
            listener_close(u, l);
        free(l->eps);
        free(l->key);
        free(l);
    }
    for (int i = 0; i < u->nw; i++) {
        close(u->w[i].ep);
        pthread_mutex_destroy(&u->w[i].mu);
    }
    close(u->wakefd);
    ck_proxy_sockmap_free(u->sm);
    json_decref(u->applied);
    json_decref(u->open);
    for (int i = 0; i < PORTAL_BUCKETS; i++)
        json_decref(u->members[i]);
    free(u->script);
    free(u);
}

static int us_cleanup(ck_error **err)
{
    static const char *const prefixes[] = {"KUBE-PORTALS-", NULL};
    for (int fam = 4; fam <= 6; fam += 2) {
        if (fam == 6 && !ck_proxy_ipv6_usable())
            break;
        for (size_t i = 0; i < ARRAY_SIZE(us_jumps); i++)
            ck_proxy_iptables_delete_jump(fam, us_jumps[i].table, us_jumps[i].chain, us_jumps[i].rule);
        if (ck_proxy_iptables_delete_chains(fam, "nat", prefixes, err) < 0 ||
            ck_proxy_iptables_delete_chains(fam, "filter", prefixes, err) < 0)
            return ck_error_wrap(err, "userspace cleanup");
    }
    return 0;
}

const ck_proxy_mode ck_proxy_mode_userspace = {
    .name = "userspace",
    .probe = us_probe,
    .new = us_new,
    .sync = us_sync,
    .last_script = us_last,
    .free = us_free,
    .cleanup = us_cleanup,
};
