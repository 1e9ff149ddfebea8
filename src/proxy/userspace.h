/* userspace.h - the userspace mode's internals, shared by its two files (not a public API):
 * userspace.c (listeners, portal rules, threads, the epoll relay, UDP) and uring.c (the io_uring
 * TCP relay).  One worker thread owns its connections; w->mu is held while it handles a batch of
 * events, and the sync path takes every worker's mu to change listeners and endpoints.
 */
#ifndef CK_PROXY_USERSPACE_H
#define CK_PROXY_USERSPACE_H

#include <jansson.h>
#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "proxy/proxy.h"

#define BUF_SIZE 65536
#define UDP_IDLE_NS (60ll * 1000000000)
/* A paired connection's kernel relay may still hold bytes that arrived before an EOF (its
 * backlog work sends them): the write side of the peer is shut only after this grace. */
#define SHUT_GRACE_NS (50ll * 1000000)
/* Portal rules live in bucket chains (by hash of the Service key), so a partial sync rewrites
 * the few buckets of the changed Services, not one chain of every port. */
#define PORTAL_BUCKETS 64
/* Relay threads: one per online CPU up to this many.  A TCP listener is in every thread's epoll
 * set with EPOLLEXCLUSIVE (the kernel wakes one thread per new connection; one socket, not one
 * per thread: 10,000 services would otherwise hold 10,000 x threads descriptors); a connection
 * then lives on the thread that accepted it and no lock is shared per message. */
#define MAX_WORKERS 8

enum kind { K_LISTEN, K_CONN_CLIENT, K_CONN_BACKEND, K_UDP_BACKEND, K_WAKE };

/* An IPv4 or IPv6 socket address (a listener and its endpoints are of one family). */
typedef union sa_any {
    struct sockaddr sa;
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
} sa_any;

static inline socklen_t sa_len(const sa_any *a)
{
    return a->sa.sa_family == AF_INET6 ? sizeof a->v6 : sizeof a->v4;
}

static inline bool sa_equal(const sa_any *a, const sa_any *b)
{
    if (a->sa.sa_family != b->sa.sa_family)
        return false;
    if (a->sa.sa_family == AF_INET6)
        return a->v6.sin6_port == b->v6.sin6_port &&
               !memcmp(&a->v6.sin6_addr, &b->v6.sin6_addr, sizeof a->v6.sin6_addr);
    return a->v4.sin_port == b->v4.sin_port && a->v4.sin_addr.s_addr == b->v4.sin_addr.s_addr;
}

typedef struct listener listener;
typedef struct conn conn;
typedef struct tag { enum kind kind; void *obj; } tag;

typedef struct udp_sess {
    sa_any client;
    int fd;
    int64_t last;
    listener *l;
    tag t;
    struct udp_sess *next;
} udp_sess;

struct listener {
    char *key;                /* port name + proto */
    bool udp;
    int family;               /* AF_INET or AF_INET6 */
    int fd, local_port;       /* TCP: in every worker's epoll set; UDP: worker 0's only */
    sa_any *eps;
    size_t n_eps, rr;
    tag t;
    udp_sess *sessions;
    listener *next;
};

struct conn {
    int cfd, bfd;
    listener *l;
    size_t tries;
    bool connected;
    char c2b[BUF_SIZE], b2c[BUF_SIZE];
    size_t c2b_len, b2c_len;
    bool c_eof, b_eof;
    uint32_t cev, bev;        /* interest currently registered (skip no-op epoll_ctl) */
    /* what the client sent before the backend answered: replayed to the next endpoint when the
     * backend dies before its first byte (a backend killed mid-test costs no request) */
    char *replay;
    size_t replay_len;
    bool answered, no_replay;
    bool dead;                /* closed; freed after the current epoll batch */
    conn *next_dead;
    bool paired, pair_failed; /* relayed by the kernel (sockmap) */
    int64_t shut_at[2];       /* paired: when to shut the write side of [0] backend [1] client */
    bool shut_done[2];
    conn *next_shut;          /* on us.shut while a shutdown is pending */
    tag ct, bt;
    conn *prev, *next;        /* the worker's live connections (freed when the thread stops) */
    /* io_uring relay: per direction (0 client -> backend into c2b, 1 backend -> client into b2c)
     * one operation at a time, so a direction's buffer is never read and written at once */
    int inflight;             /* operations the kernel still holds: freed only at 0 */
    uint8_t st[2];            /* U_IDLE, U_RECV, U_SEND, U_HELD */
    const char *sp[2];        /* what the send of a direction sends: c2b/b2c, or replay */
    size_t sl[2], so[2];
    bool closing;             /* both sockets shut: waits for inflight to drain */
    bool redial_wait;         /* the backend died unanswered: its operations drain, then redial */
    bool replay_due;          /* connected to a redialed backend, the replay not sent yet */
    sa_any dial;              /* the endpoint being connected (the connect operation reads it) */
};

enum { U_IDLE, U_RECV, U_SEND, U_HELD };

typedef struct us us;

/* One epoll thread: its connections live on its epoll set only; mu is held per event batch
 * (the sync path takes every worker's mu to change listeners and endpoints). */
typedef struct worker {
    us *owner;
    int idx;
    pthread_mutex_t mu;
    int ep;
    pthread_t thr;
    conn *dead;               /* closed this batch: later events in the batch may name them */
    conn *shut;               /* paired connections with a deferred shutdown */
    ck_proxy_sockmap *sm;     /* NULL: every byte is relayed by this thread */
    conn *conns;              /* live connections */
    bool uring;               /* connections relayed on ring; ep has listeners, UDP, wake only */
    bool ep_armed;            /* ring: the multishot poll on ep is in place */
    struct io_uring ring;
} worker;

struct us {
    ck_proxy_opts o;
    worker w[MAX_WORKERS];
    int nw;
    int wakefd;               /* readable once stopping: wakes every worker */
    bool running;
    listener *ls;
    ck_proxy_sockmap *sm;
    json_t *applied;          /* service key -> {"b": bucket, "nat": text, "filter": text, "ls": [port keys]} */
    json_t *open;             /* port key -> listener (pointer as integer) of open listeners */
    json_t *members[PORTAL_BUCKETS]; /* service keys per bucket */
    bool started;             /* bucket chains and jumps are in place */
    bool v6;                  /* the host has IPv6: ip6tables portals and IPv6 listeners too */
    bool any_v6;              /* some Service had an IPv6 port (dry run: show that script) */
    int port_lo, port_hi, port_next; /* listener ports: the ephemeral range, a cursor */
    char *script;
};

static inline bool pick_ep(listener *l, sa_any *out)
{
    if (!l->n_eps)
        return false;
    /* workers pick concurrently (each under its own lock): the cursor is atomic */
    *out = l->eps[__atomic_fetch_add(&l->rr, 1, __ATOMIC_RELAXED) % l->n_eps];
    return true;
}

/* userspace.c */
void ck_proxy_us_conn_free(worker *w, conn *c);           /* unlink and free (fds already closed) */
void ck_proxy_us_dispatch(worker *w, struct epoll_event *evs, int n); /* listeners, UDP, wake */
void ck_proxy_us_sweep(worker *w, int64_t *last_sweep);   /* UDP idle sessions, once a second */

/* uring.c */
bool ck_proxy_us_uring_init(worker *w);      /* the thread's ring; false: use epoll */
void ck_proxy_us_uring_loop(worker *w);      /* until stopping; frees the thread's connections */
void ck_proxy_us_uring_start(worker *w, conn *c); /* a new accepted connection: dial an endpoint */

#endif
