/* queue.c - the scheduling queue (upstream's PriorityQueue, our code).
 *
 * Three sub-queues: active (a heap: higher priority first, then first come), backoff (a heap on
 * the time the pod's backoff ends: 1 s doubling per failed attempt up to 10 s) and unschedulable
 * (a set).  A pod that failed waits in unschedulable until a cluster event that could help it
 * (node added or changed, a pod deleted, ...: the event's mask intersects the filters that
 * rejected it) moves it to backoff or, if its backoff already ended, to active.  A pod that failed
 * while such an event happened during its own cycle goes to backoff directly, so no event is lost.
 * Nothing polls, except upstream's safety net: a pod left unschedulable for 5 minutes is retried.
 *
 * An item popped for scheduling stays known ("in flight"): updates and deletes that arrive
 * meanwhile are recorded on it and applied when it comes back.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/util.h"
#include "scheduler/sched.h"

enum { Q_ACTIVE = 1, Q_BACKOFF, Q_UNSCHED, Q_INFLIGHT };
#define UNSCHED_MAX_NS (300LL * 1000000000)

typedef struct heap {
    sc_qitem **v;
    int n, cap;
    bool (*less)(const sc_qitem *a, const sc_qitem *b);
} heap;

typedef struct qextra {           /* per item bookkeeping kept beside sc_qitem */
    sc_pod *next;                 /* newer copy that arrived while in flight */
    bool deleted;
    int64_t unsched_since;
} qextra;

typedef struct item {
    sc_qitem pub;
    qextra x;
} item;

struct sc_queue {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    sc_map *items;                /* key -> item */
    heap active, backoff, unsched;
    uint64_t moves;               /* bumped by every move event */
    int64_t backoff_initial_ns, backoff_max_ns;
    bool shutdown;
};

static bool active_less(const sc_qitem *a, const sc_qitem *b)
{
    if (a->pod->priority != b->pod->priority)
        return a->pod->priority > b->pod->priority;
    return a->added_ns < b->added_ns;
}

static bool backoff_less(const sc_qitem *a, const sc_qitem *b)
{
    return a->backoff_until_ns < b->backoff_until_ns;
}

static void hswap(heap *h, int i, int j)
{
    sc_qitem *t = h->v[i];
    h->v[i] = h->v[j];
    h->v[j] = t;
    h->v[i]->heap_idx = i;
    h->v[j]->heap_idx = j;
}

static void hup(heap *h, int i)
{
    while (h->less && i > 0 && h->less(h->v[i], h->v[(i - 1) / 2])) {
        hswap(h, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void hdown(heap *h, int i)
{
    if (!h->less)
        return;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && h->less(h->v[l], h->v[m]))
            m = l;
        if (r < h->n && h->less(h->v[r], h->v[m]))
            m = r;
        if (m == i)
            return;
        hswap(h, i, m);
        i = m;
    }
}

static void hpush(heap *h, sc_qitem *it)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->v = xrealloc(h->v, (size_t)h->cap * sizeof *h->v);
    }
    it->heap_idx = h->n;
    h->v[h->n++] = it;
    hup(h, it->heap_idx);
}

static void hremove(heap *h, sc_qitem *it)
{
    int i = it->heap_idx;
    h->n--;
    if (i != h->n) {
        hswap(h, i, h->n);
        hdown(h, i);
        hup(h, i);
    }
    it->heap_idx = -1;
}

static heap *heap_of(sc_queue *q, int where)
{
    return where == Q_ACTIVE ? &q->active : where == Q_BACKOFF ? &q->backoff
         : where == Q_UNSCHED ? &q->unsched : NULL;
}

static void place(sc_queue *q, item *it, int where)
{
    heap *h = heap_of(q, it->pub.where);
    if (h)
        hremove(h, &it->pub);
    it->pub.where = where;
    if (where == Q_UNSCHED)
        it->x.unsched_since = ck_now_ns();
    h = heap_of(q, where);
    if (h)
        hpush(h, &it->pub);
    if (where == Q_ACTIVE)
        pthread_cond_signal(&q->cond);
}

sc_queue *sc_queue_new(int64_t backoff_initial_ms, int64_t backoff_max_ms)
{
    sc_queue *q = xcalloc(1, sizeof *q);
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cond, &ca);
    pthread_condattr_destroy(&ca);
    q->items = sc_map_new();
    q->active.less = active_less;
    q->backoff.less = backoff_less;
    q->backoff_initial_ns = backoff_initial_ms * 1000000;
    q->backoff_max_ns = backoff_max_ms * 1000000;
    return q;
}

static void item_free(item *it)
{
    sc_pod_free(it->pub.pod);
    sc_pod_free(it->x.next);
    free(it);
}

void sc_queue_free(sc_queue *q)
{
    if (!q)
        return;
    const char *k;
    void *v;
    for (size_t i = 0; sc_map_next(q->items, &i, &k, &v);)
        if (((item *)v)->pub.where != Q_INFLIGHT)
            item_free(v);
    sc_map_free(q->items);
    free(q->active.v);
    free(q->backoff.v);
    free(q->unsched.v);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond);
    free(q);
}

void sc_queue_add(sc_queue *q, sc_pod *p)
{
    pthread_mutex_lock(&q->lock);
    item *it = sc_map_get(q->items, p->key);
    if (!it) {
        it = xcalloc(1, sizeof *it);
        it->pub.pod = p;
        it->pub.added_ns = ck_now_ns();
        it->pub.heap_idx = -1;
        sc_map_put(q->items, p->key, it);
        place(q, it, Q_ACTIVE);
    } else if (it->pub.where == Q_INFLIGHT) {
        sc_pod_free(it->x.next);
        it->x.next = p;
    } else {
        int where = it->pub.where;
        heap *h = heap_of(q, where);
        hremove(h, &it->pub);
        sc_pod_free(it->pub.pod);
        it->pub.pod = p;
        it->pub.where = 0;
        /* an update may make it schedulable (labels, tolerations, ...): retry it */
        if (where == Q_UNSCHED)
            where = it->pub.backoff_until_ns > ck_now_ns() ? Q_BACKOFF : Q_ACTIVE;
        place(q, it, where);
    }
    pthread_mutex_unlock(&q->lock);
}

void sc_queue_delete(sc_queue *q, const char *key)
{
    pthread_mutex_lock(&q->lock);
    item *it = sc_map_get(q->items, key);
    if (it && it->pub.where == Q_INFLIGHT) {
        it->x.deleted = true;
    } else if (it) {
        hremove(heap_of(q, it->pub.where), &it->pub);
        sc_map_del(q->items, key);
        item_free(it);
    }
    pthread_mutex_unlock(&q->lock);
}

bool sc_queue_contains(sc_queue *q, const char *key)
{
    pthread_mutex_lock(&q->lock);
    bool in = sc_map_get(q->items, key) != NULL;
    pthread_mutex_unlock(&q->lock);
    return in;
}

static void flush(sc_queue *q, int64_t now)
{
    while (q->backoff.n && q->backoff.v[0]->backoff_until_ns <= now)
        place(q, (item *)q->backoff.v[0], Q_ACTIVE);
    for (int i = 0; i < q->unsched.n;) {
        item *it = (item *)q->unsched.v[i];
        if (now - it->x.unsched_since >= UNSCHED_MAX_NS)
            place(q, it, Q_ACTIVE);     /* swaps another item into slot i */
        else
            i++;
    }
}

sc_qitem *sc_queue_pop(sc_queue *q)
{
    pthread_mutex_lock(&q->lock);
    int64_t last_unsched_check = 0;
    for (;;) {
        if (q->shutdown) {
            pthread_mutex_unlock(&q->lock);
            return NULL;
        }
        int64_t now = ck_now_ns();
        while (q->backoff.n && q->backoff.v[0]->backoff_until_ns <= now)
            place(q, (item *)q->backoff.v[0], Q_ACTIVE);
        if (now - last_unsched_check > 1000000000LL) {
            flush(q, now);
            last_unsched_check = now;
        }
        if (q->active.n) {
            item *it = (item *)q->active.v[0];
            hremove(&q->active, &it->pub);
            it->pub.where = Q_INFLIGHT;
            it->pub.pop_cycle = q->moves;
            pthread_mutex_unlock(&q->lock);
            return &it->pub;
        }
        int64_t wake = now + 1000000000LL;
        if (q->backoff.n && q->backoff.v[0]->backoff_until_ns < wake)
            wake = q->backoff.v[0]->backoff_until_ns;
        struct timespec ts = {.tv_sec = wake / 1000000000, .tv_nsec = wake % 1000000000};
        pthread_cond_timedwait(&q->cond, &q->lock, &ts);
    }
}

static int64_t backoff_ns(sc_queue *q, int attempts)
{
    int64_t d = q->backoff_initial_ns;
    for (int i = 1; i < attempts && d < q->backoff_max_ns; i++)
        d *= 2;
    return d < q->backoff_max_ns ? d : q->backoff_max_ns;
}

/* Returns false when the item was dropped (deleted while in flight). */
static bool take_back(sc_queue *q, item *it)
{
    if (it->x.deleted) {
        sc_map_del(q->items, it->pub.pod->key);
        item_free(it);
        return false;
    }
    if (it->x.next) {
        sc_pod_free(it->pub.pod);
        it->pub.pod = it->x.next;
        it->x.next = NULL;
    }
    it->pub.attempts++;
    it->pub.backoff_until_ns = ck_now_ns() + backoff_ns(q, it->pub.attempts);
    return true;
}

void sc_queue_requeue_failed(sc_queue *q, sc_qitem *pub, unsigned reject_mask)
{
    item *it = (item *)pub;
    pthread_mutex_lock(&q->lock);
    bool updated = it->x.next != NULL;
    if (take_back(q, it)) {
        it->pub.reject_mask = reject_mask ? reject_mask : SC_F_ALL;
        it->pub.where = 0;
        /* something changed while it was being scheduled: do not wait for another event */
        place(q, it, q->moves != it->pub.pop_cycle || updated ? Q_BACKOFF : Q_UNSCHED);
    }
    pthread_mutex_unlock(&q->lock);
}

void sc_queue_add_backoff(sc_queue *q, sc_pod *p, int attempts)
{
    pthread_mutex_lock(&q->lock);
    if (sc_map_get(q->items, p->key)) {     /* a newer copy is queued already */
        pthread_mutex_unlock(&q->lock);
        sc_pod_free(p);
        return;
    }
    item *it = xcalloc(1, sizeof *it);
    it->pub.pod = p;
    it->pub.added_ns = ck_now_ns();
    it->pub.heap_idx = -1;
    it->pub.attempts = attempts + 1;
    it->pub.backoff_until_ns = ck_now_ns() + backoff_ns(q, it->pub.attempts);
    sc_map_put(q->items, p->key, it);
    place(q, it, Q_BACKOFF);
    pthread_mutex_unlock(&q->lock);
}

sc_pod *sc_queue_done(sc_queue *q, sc_qitem *pub)
{
    item *it = (item *)pub;
    pthread_mutex_lock(&q->lock);
    if (sc_map_get(q->items, it->pub.pod->key) == it)
        sc_map_del(q->items, it->pub.pod->key);
    pthread_mutex_unlock(&q->lock);
    sc_pod *p = it->pub.pod;
    it->pub.pod = NULL;
    item_free(it);
    return p;
}

void sc_queue_move(sc_queue *q, unsigned mask)
{
    pthread_mutex_lock(&q->lock);
    q->moves++;
    int64_t now = ck_now_ns();
    for (int i = 0; i < q->unsched.n;) {
        item *it = (item *)q->unsched.v[i];
        if (it->pub.reject_mask & mask)
            place(q, it, it->pub.backoff_until_ns > now ? Q_BACKOFF : Q_ACTIVE);
        else
            i++;
    }
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

void sc_queue_shutdown(sc_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->shutdown = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

void sc_queue_stats(sc_queue *q, int *active, int *backoff, int *unsched)
{
    pthread_mutex_lock(&q->lock);
    *active = q->active.n;
    *backoff = q->backoff.n;
    *unsched = q->unsched.n;
    pthread_mutex_unlock(&q->lock);
}
