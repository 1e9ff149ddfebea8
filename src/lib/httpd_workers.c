/* httpd_workers.c - the HTTP server's request queue and worker pool (see httpd_int.h; httpd.c
 * has the rest of the design).
 *
 * Workers.  Complete requests go on one FIFO queue (qmu).  Each worker sleeps on its own
 * semaphore on a LIFO idle stack; the queuer wakes one only if none is already on its way, a
 * woken worker wakes the next if more wait, and a worker drains the queue before it sleeps:
 * under load requests pass between running threads without a futex wake each.  If every worker
 * is held (slow handlers) and none finishes for STALL_MS while requests wait, the I/O thread
 * starts an extra worker (up to max_workers; it leaves when idle), so held workers can delay
 * other requests but never starve them.
 *
 * The I/O thread queues (ck__httpd_queue_request) and runs the stall timer (ck__httpd_stall_cb);
 * workers run the handler and drop their reference to the request.  ck_httpd_start starts the
 * first workers, ck_httpd_stop joins them all (ck__httpd_stop_workers).
 */
#include "lib/httpd_int.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#include "lib/log.h"
#include "lib/util.h"

#define STALL_MS 100                  /* every worker busy and none finished this long: one more */
#define EXTRA_IDLE_S 10               /* an extra worker idle this long leaves */

/* ---- workers ------------------------------------------------------------------------------ */

/* A handler thread.  Each sleeps on its own semaphore, so a wake-up is one futex wake aimed at
 * one thread, posted after the queue lock is released (no herd on a shared condvar, and the
 * woken thread does not find the lock still held by its waker). */
struct worker {
    ck_httpd *h;
    pthread_t th;
    sem_t sem;
    bool extra;                 /* started after a stall: leaves after EXTRA_IDLE_S idle */
    bool woken;                 /* under qmu: taken off the idle stack by a waker */
    bool in_idle;               /* under qmu: on h->idle */
    bool exited;                /* under qmu: the thread is returning (join it) */
    struct worker *inext;       /* h->idle */
    struct worker *anext;       /* h->all */
};

/* Under qmu: the sleeper to wake for queued work, or NULL.  At most one worker is on its way at
 * a time: it takes a request and, if more are queued, wakes the next, so a burst wakes workers
 * one by one as they are needed, and a busy worker coming back for more takes what is queued
 * before any sleeper is disturbed.  The most recently idle sleeper goes first (warm caches). */
static struct worker *pick_waker_locked(ck_httpd *h)
{
    if (!h->qhead || h->nwaking > 0 || !h->idle)
        return NULL;
    struct worker *w = h->idle;
    h->idle = w->inext;
    h->nidle--;
    w->in_idle = false;
    w->woken = true;
    h->nwaking++;
    return w;
}

static void sem_wait_intr(sem_t *s)
{
    while (sem_wait(s) < 0 && errno == EINTR)
        ;
}

static void serve_request(ck_httpd *h, ck_http_resp *r)
{
    pthread_mutex_lock(&r->c->mu);
    bool gone = r->c->gone;
    pthread_mutex_unlock(&r->c->mu);
    if (gone) {                                 /* the client left while it was queued */
        ck__httpd_resp_free(r);
        return;
    }
    h->cfg.handler(h->cfg.handler_ctx, &r->req, r);
    ck__httpd_resp_unref(r);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    ck_httpd *h = w->h;
    pthread_setname_np(pthread_self(), "http-worker");
    pthread_mutex_lock(&h->qmu);
    for (;;) {
        if (w->woken) {
            w->woken = false;
            h->nwaking--;
        }
        if (h->quit)
            break;
        ck_http_resp *r = h->qhead;
        if (r) {                                /* drain the queue before sleeping */
            h->qhead = r->qnext;
            if (!h->qhead)
                h->qtail = NULL;
            struct worker *next = pick_waker_locked(h);
            pthread_mutex_unlock(&h->qmu);
            if (next)
                sem_post(&next->sem);
            serve_request(h, r);
            __atomic_add_fetch(&h->served, 1, __ATOMIC_RELAXED);
            pthread_mutex_lock(&h->qmu);
            continue;
        }
        w->inext = h->idle;
        h->idle = w;
        h->nidle++;
        w->in_idle = true;
        pthread_mutex_unlock(&h->qmu);
        if (!w->extra) {
            sem_wait_intr(&w->sem);
            pthread_mutex_lock(&h->qmu);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += EXTRA_IDLE_S;
        int rc;
        while ((rc = sem_timedwait(&w->sem, &ts)) < 0 && errno == EINTR)
            ;
        pthread_mutex_lock(&h->qmu);
        if (rc < 0 && w->in_idle) {             /* idle long enough: leave */
            for (struct worker **p = &h->idle; *p; p = &(*p)->inext)
                if (*p == w) {
                    *p = w->inext;
                    break;
                }
            h->nidle--;
            w->in_idle = false;
            break;
        }
        if (rc < 0) {                           /* a waker took it meanwhile: its post is due */
            pthread_mutex_unlock(&h->qmu);
            sem_wait_intr(&w->sem);
            pthread_mutex_lock(&h->qmu);
        }
    }
    h->nlive--;
    w->exited = true;
    pthread_mutex_unlock(&h->qmu);
    return NULL;
}

/* Starts a worker; the caller has counted it in nlive.  -1 if the thread cannot start. */
int ck__httpd_start_worker(ck_httpd *h, bool extra)
{
    struct worker *w = xcalloc(1, sizeof *w);
    w->h = h;
    w->extra = extra;
    if (sem_init(&w->sem, 0, 0) < 0) {
        free(w);
        return -1;
    }
    pthread_mutex_lock(&h->qmu);
    w->anext = h->all;
    h->all = w;
    pthread_mutex_unlock(&h->qmu);
    if (pthread_create(&w->th, NULL, worker_main, w) == 0)
        return 0;
    pthread_mutex_lock(&h->qmu);
    h->all = w->anext;          /* only the I/O thread or start adds: still first */
    pthread_mutex_unlock(&h->qmu);
    sem_destroy(&w->sem);
    free(w);
    return -1;
}

/* Joins and frees workers that have exited (extras that idled out). */
static void reap_workers(ck_httpd *h)
{
    struct worker *dead = NULL;
    pthread_mutex_lock(&h->qmu);
    for (struct worker **p = &h->all; *p;) {
        struct worker *w = *p;
        if (w->exited) {
            *p = w->anext;
            w->anext = dead;
            dead = w;
        } else {
            p = &w->anext;
        }
    }
    pthread_mutex_unlock(&h->qmu);
    while (dead) {
        struct worker *w = dead;
        dead = w->anext;
        pthread_join(w->th, NULL);
        sem_destroy(&w->sem);
        free(w);
    }
}

static void arm_stall_timer(ck_httpd *h)
{
    struct timeval tv = {0, STALL_MS * 1000};
    h->stall_armed = true;
    h->stall_mark = __atomic_load_n(&h->served, __ATOMIC_RELAXED);
    evtimer_add(h->stall_ev, &tv);
}

/* Every worker was busy when a request was queued.  If, a while later, requests still wait,
 * no worker is idle or on its way, and not one request finished meanwhile, the workers are all
 * held by something slow: start one more, so a slow request (or one waiting for another
 * request to be served) cannot starve the rest.  Extras leave again when idle. */
void ck__httpd_stall_cb(evutil_socket_t fd, short what, void *arg)
{
    ck_httpd *h = arg;
    ck__httpd_io_awake(h);
    h->stall_armed = false;
    bool progress = __atomic_load_n(&h->served, __ATOMIC_RELAXED) != h->stall_mark;
    pthread_mutex_lock(&h->qmu);
    bool waiting = h->qhead != NULL;
    bool spawn = waiting && !progress && !h->idle && h->nwaking == 0 && !h->quit &&
                 h->nlive < h->max_workers;
    if (spawn)
        h->nlive++;
    pthread_mutex_unlock(&h->qmu);
    reap_workers(h);
    if (spawn) {
        if (ck__httpd_start_worker(h, true) == 0) {
            __atomic_add_fetch(&h->extra_started, 1, __ATOMIC_RELAXED);
            log_debug("httpd: every worker busy for %d ms: started one more", STALL_MS);
        } else {
            pthread_mutex_lock(&h->qmu);
            h->nlive--;
            pthread_mutex_unlock(&h->qmu);
            log_warn("httpd: every worker is busy and no more can start");
        }
    }
    if (waiting)
        arm_stall_timer(h);
}

/* I/O thread: hand a complete request to the pool. */
void ck__httpd_queue_request(ck_httpd *h, ck_http_resp *r)
{
    r->qnext = NULL;
    pthread_mutex_lock(&h->qmu);
    if (h->qtail)
        h->qtail->qnext = r;
    else
        h->qhead = r;
    h->qtail = r;
    struct worker *w = pick_waker_locked(h);
    pthread_mutex_unlock(&h->qmu);
    if (w)
        sem_post(&w->sem);
    /* the watch for held workers runs while requests come (one timer a STALL_MS, not one a
     * request); queued now behind a waker, this one may find every worker held later */
    if (!h->stall_armed && h->stall_ev)
        arm_stall_timer(h);
}

int ck_httpd_workers(ck_httpd *h)
{
    pthread_mutex_lock(&h->qmu);
    int n = h->nlive;
    pthread_mutex_unlock(&h->qmu);
    return n;
}

/* ck_httpd_stop, after the I/O thread has stopped and every connection closed. */
void ck__httpd_stop_workers(ck_httpd *h)
{
    pthread_mutex_lock(&h->qmu);
    h->quit = true;
    for (struct worker *w = h->all; w; w = w->anext)
        if (!w->exited)
            sem_post(&w->sem);
    pthread_mutex_unlock(&h->qmu);
    /* the I/O thread is gone: nothing adds workers any more */
    while (h->all) {
        struct worker *w = h->all;
        h->all = w->anext;
        pthread_join(w->th, NULL);
        sem_destroy(&w->sem);
        free(w);
    }
}
