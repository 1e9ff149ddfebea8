/* watchcache.c - see watchcache.h.
 *
 * Shape: the backend watch callback (a backend thread) turns each ck_event into a refcounted
 * ck_wc_event and appends it to `pending`.  One dispatch thread per cache loops in rounds:
 *
 *   1. under the lock: take `pending`, snapshot the watcher list, flip JOINING watchers to LIVE;
 *   2. replay the window to the watchers that just joined (events <= dispatched_rev);
 *   3. under the lock: append the taken events to the window ring (evicting the oldest);
 *   4. deliver the taken events to every watcher of the snapshot (each skips revisions <= its
 *      cursor, so a joiner whose after_rev lies in the future loses nothing and repeats nothing).
 *
 * Only the dispatch thread writes the window, so step 2 reads it without the lock, and replay
 * followed by live delivery has no gap or duplicate.  add() checks window_start under the lock;
 * should the window move past a joiner's cursor before its replay (a burst between add() and the
 * next round), the joiner is ended with CK_E_EXPIRED exactly as if it had come a moment later.
 *
 * Inline rounds (opts.inline_delivery): the backend callback runs the round itself, on the
 * backend's thread (the SQLite writer, right after the commit: ck_store_watch_inline), when no
 * round is running, no watcher is joining and the backend watch is healthy; otherwise it queues
 * and signals as above.  `in_round` (under the lock) says a thread owns the rounds: the
 * dispatch thread or an inline caller, never both; the window, the snapshot and the round's
 * batch belong to the owner.  So rounds stay serial and in revision order, and a commit costs
 * no dispatch-thread wake.  The dispatch thread keeps the joiners' replays (which may be long),
 * bookmarks, removals and backend recovery.
 *
 * Removal: `current` (an atomic) names the watcher whose callbacks are running; remove() marks
 * the watcher, unlinks it and waits while it is current (unless called on the dispatch thread).
 * Delivery takes no lock per watcher: on two cores a lock holder that gets preempted would stall
 * the whole round.  Removed watchers are freed by the next round's owner before it takes a
 * snapshot, when no snapshot refers to them any more.
 */
#include "store/watchcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "lib/util.h"

struct ck_wc_event {
    ck_event ev;
    atomic_uint refs;
    size_t bytes;
    _Atomic(ck_wc_memo *) memo[CK_WC_MEMO_SLOTS];
};

enum wstate { W_JOINING, W_LIVE, W_ENDED };

struct ck_wc_watcher {
    ck_wc_watcher *prev, *next;     /* c->watchers (registered), under the lock */
    ck_wc_watcher *dead_next;       /* c->dead once removed */
    enum wstate state;              /* under the lock */
    atomic_bool removed;
    bool replay;                    /* dispatch thread: replay the window this round */
    int64_t cursor;                 /* last revision delivered (or skipped) */
    char *prefix;                   /* NULL: everything */
    size_t prefix_len;
    bool bookmarks;
    ck_wc_cb cb;
    void *ctx;
};

typedef struct evvec {
    ck_wc_event **v;
    size_t n, cap;
} evvec;

struct ck_watchcache {
    ck_store *store;
    char *prefix;
    size_t window_max, bytes_max;
    int64_t bookmark_ns;            /* 0: never */

    pthread_mutex_t mu;
    pthread_cond_t wake;            /* the dispatch thread waits for work */
    pthread_cond_t idle;            /* remove() waits for current != w */
    pthread_cond_t rev_cond;        /* ck_watchcache_wait() */
    pthread_t thread;
    bool thread_started;
    bool stop;

    ck_watch_handle *handle;        /* owned by the dispatch thread after creation */
    bool inline_rounds;             /* opts.inline_delivery */
    bool in_round;                  /* a thread runs a round or the recovery (it owns the window,
                                     * `snap` and `rbatch`) */
    bool dispatch_waits;            /* the dispatch thread waits for an inline round to end */
    evvec rbatch;                   /* the round's events */
    ck_wc_watcher **snap;           /* the round's watchers */
    size_t snap_cap;
    ck_error *backend_err;          /* the backend watch ended: handled by the dispatch thread */
    bool healthy;

    evvec pending;                  /* received, not yet dispatched */
    int64_t latest_rev;             /* newest received */

    /* window: a ring of the newest dispatched events; written only by the dispatch thread, under
     * the lock; read by the dispatch thread without it. */
    ck_wc_event **ring;
    size_t ring_cap, ring_head, ring_len, ring_bytes;
    int64_t window_start;
    int64_t dispatched_rev;

    ck_wc_watcher *watchers;        /* doubly linked, registered */
    size_t nwatchers, njoining;
    ck_wc_watcher *dead;
    _Atomic(ck_wc_watcher *) current;   /* whose callbacks run now (dispatch thread writes) */
    atomic_int nwaiting;            /* remove() calls waiting on `idle` */
    int64_t next_bookmark;          /* ck_now_ns() deadline */

    uint64_t events_received, restarts, resumes, rounds_inline, rounds_thread;
};

/* The cache whose dispatch thread is the calling thread, if any. */
static __thread ck_watchcache *tl_dispatching;

/* ---- events ---- */

static void kv_copy(ck_kv *dst, const ck_kv *src)
{
    memset(dst, 0, sizeof(*dst));
    if (!src->key)
        return;
    dst->key = xstrdup(src->key);
    dst->value = src->value ? xstrndup(src->value, src->value_len) : xstrdup("");
    dst->value_len = src->value ? src->value_len : 0;
    dst->create_revision = src->create_revision;
    dst->mod_revision = src->mod_revision;
}

static ck_wc_event *event_new(const ck_event *src)
{
    ck_wc_event *e = xcalloc(1, sizeof(*e));
    e->ev.type = src->type;
    e->ev.revision = src->revision;
    e->ev.created = src->created;
    kv_copy(&e->ev.kv, &src->kv);
    kv_copy(&e->ev.prev, &src->prev);
    atomic_init(&e->refs, 1);
    for (unsigned i = 0; i < CK_WC_MEMO_SLOTS; i++)
        atomic_init(&e->memo[i], NULL);
    e->bytes = sizeof(*e) + e->ev.kv.value_len + e->ev.prev.value_len +
               (e->ev.kv.key ? strlen(e->ev.kv.key) : 0) +
               (e->ev.prev.key ? strlen(e->ev.prev.key) : 0);
    return e;
}

const ck_event *ck_wc_event_get(const ck_wc_event *e)
{
    return &e->ev;
}

ck_wc_event *ck_wc_event_ref(ck_wc_event *e)
{
    atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
    return e;
}

void ck_wc_event_unref(ck_wc_event *e)
{
    if (!e || atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (unsigned i = 0; i < CK_WC_MEMO_SLOTS; i++) {
        ck_wc_memo *m = atomic_load_explicit(&e->memo[i], memory_order_acquire);
        if (!m)
            continue;
        if (m->free_fn)
            m->free_fn(m->data);
        free(m);
    }
    ck_event_free(&e->ev);
    free(e);
}

const ck_wc_memo *ck_wc_event_memo(const ck_wc_event *e, unsigned slot)
{
    if (slot >= CK_WC_MEMO_SLOTS)
        return NULL;
    /* The slots are atomic; reading through a const event is still a plain atomic load. */
    return atomic_load_explicit((_Atomic(ck_wc_memo *) *)&e->memo[slot], memory_order_acquire);
}

const ck_wc_memo *ck_wc_event_memo_set(ck_wc_event *e, unsigned slot, void *data, size_t len,
                                       void (*free_fn)(void *data))
{
    if (slot >= CK_WC_MEMO_SLOTS) {
        if (free_fn)
            free_fn(data);
        return NULL;
    }
    ck_wc_memo *m = xmalloc(sizeof(*m));
    *m = (ck_wc_memo){.data = data, .len = len, .free_fn = free_fn};
    ck_wc_memo *expected = NULL;
    if (atomic_compare_exchange_strong_explicit(&e->memo[slot], &expected, m, memory_order_acq_rel,
                                                memory_order_acquire))
        return m;
    if (free_fn)
        free_fn(data);
    free(m);
    return expected;
}

static void evvec_push(evvec *v, ck_wc_event *e)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->v = xrealloc(v->v, v->cap * sizeof(*v->v));
    }
    v->v[v->n++] = e;
}

static void evvec_clear(evvec *v)
{
    for (size_t i = 0; i < v->n; i++)
        ck_wc_event_unref(v->v[i]);
    v->n = 0;
}

/* ---- locking helpers ---- */

static void lock(ck_watchcache *c)
{
    pthread_mutex_lock(&c->mu);
}

static void unlock(ck_watchcache *c)
{
    pthread_mutex_unlock(&c->mu);
}

static struct timespec deadline_in_ns(int64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t t = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + ns;
    ts.tv_sec = t / 1000000000;
    ts.tv_nsec = t % 1000000000;
    return ts;
}

/* ---- the window ring (dispatch thread) ---- */

static ck_wc_event *ring_at(ck_watchcache *c, size_t i)
{
    return c->ring[(c->ring_head + i) % c->ring_cap];
}

static void ring_evict_oldest(ck_watchcache *c)
{
    ck_wc_event *e = c->ring[c->ring_head];
    c->ring[c->ring_head] = NULL;
    c->ring_head = (c->ring_head + 1) % c->ring_cap;
    c->ring_len--;
    c->ring_bytes -= e->bytes;
    c->window_start = e->ev.revision;
    ck_wc_event_unref(e);
}

/* Caller holds the lock. */
static void ring_push(ck_watchcache *c, ck_wc_event *e)
{
    if (c->ring_len == c->ring_cap)
        ring_evict_oldest(c);
    c->ring[(c->ring_head + c->ring_len) % c->ring_cap] = ck_wc_event_ref(e);
    c->ring_len++;
    c->ring_bytes += e->bytes;
    while (c->bytes_max && c->ring_bytes > c->bytes_max && c->ring_len > 1)
        ring_evict_oldest(c);
}

/* Caller holds the lock. */
static void ring_clear(ck_watchcache *c)
{
    while (c->ring_len)
        ring_evict_oldest(c);
    c->ring_head = 0;
}

/* Index of the first window event with revision > rev (ring_len if none). */
static size_t ring_find_after(ck_watchcache *c, int64_t rev)
{
    size_t lo = 0, hi = c->ring_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ring_at(c, mid)->ev.revision <= rev)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* ---- delivery (dispatch thread) ---- */

static void wake_removers(ck_watchcache *c)
{
    lock(c);
    pthread_cond_broadcast(&c->idle);
    unlock(c);
}

static bool matches(const ck_wc_watcher *w, const ck_wc_event *e)
{
    return !w->prefix || !strncmp(e->ev.kv.key, w->prefix, w->prefix_len);
}

/* Claim `w` for callbacks; false if it was removed or has ended.  No lock: `current` and
 * `removed` are sequentially consistent atomics, written in opposite order by this thread
 * (current, then read removed) and by remove() (removed, then read current), so at least one of
 * the two sees the other: either we skip the watcher or remove() waits for us. */
static bool begin_calls(ck_watchcache *c, ck_wc_watcher *w)
{
    if (w->state == W_ENDED)      /* written only by this thread */
        return false;
    atomic_store(&c->current, w);
    if (atomic_load(&w->removed)) {
        atomic_store(&c->current, NULL);
        if (atomic_load(&c->nwaiting))
            wake_removers(c);
        return false;
    }
    return true;
}

static void end_calls(ck_watchcache *c, ck_wc_watcher *w, bool ended)
{
    if (ended) {
        lock(c);
        w->state = W_ENDED;
        unlock(c);
    }
    atomic_store(&c->current, NULL);
    if (atomic_load(&c->nwaiting))
        wake_removers(c);
}

static void deliver_one(ck_wc_watcher *w, ck_wc_event *e)
{
    ck_wc_note n = {.kind = CK_WC_EVENT, .event = e, .revision = e->ev.revision};
    w->cursor = e->ev.revision;
    w->cb(w->ctx, &n);
}

/* End `w` with an error notification. */
static void end_watcher(ck_watchcache *c, ck_wc_watcher *w, enum ck_error_code code, const char *msg)
{
    if (!begin_calls(c, w))
        return;
    ck_error e = {.code = code, .msg = (char *)msg};
    ck_wc_note n = {.kind = CK_WC_ERROR, .err = &e, .revision = w->cursor};
    w->cb(w->ctx, &n);
    end_calls(c, w, true);
}

/* Replay the window to a watcher that just joined. */
static void replay(ck_watchcache *c, ck_wc_watcher *w)
{
    if (w->cursor < c->window_start) {
        char msg[160];
        snprintf(msg, sizeof(msg), "too old resource version: %lld (%lld)", (long long)w->cursor,
                 (long long)c->window_start);
        end_watcher(c, w, CK_E_EXPIRED, msg);
        return;
    }
    size_t i = ring_find_after(c, w->cursor);
    while (i < c->ring_len && !matches(w, ring_at(c, i)))
        i++;
    if (i == c->ring_len)
        return;
    if (!begin_calls(c, w))
        return;
    for (; i < c->ring_len && !atomic_load(&w->removed); i++) {
        ck_wc_event *e = ring_at(c, i);
        if (matches(w, e))
            deliver_one(w, e);
    }
    end_calls(c, w, false);
}

/* Deliver a batch of new events (and maybe a bookmark) to one watcher. */
static void deliver(ck_watchcache *c, ck_wc_watcher *w, const evvec *batch, bool bookmark)
{
    size_t i = 0;
    for (; i < batch->n; i++) {
        ck_wc_event *e = batch->v[i];
        if (e->ev.revision > w->cursor && matches(w, e))
            break;
    }
    bookmark = bookmark && w->bookmarks;
    if (i == batch->n && !bookmark)
        return;
    if (!begin_calls(c, w))
        return;
    for (; i < batch->n && !atomic_load(&w->removed); i++) {
        ck_wc_event *e = batch->v[i];
        if (e->ev.revision > w->cursor && matches(w, e))
            deliver_one(w, e);
    }
    if (bookmark && !atomic_load(&w->removed)) {
        int64_t rev = w->cursor > c->dispatched_rev ? w->cursor : c->dispatched_rev;
        ck_wc_note n = {.kind = CK_WC_BOOKMARK, .revision = rev};
        w->cb(w->ctx, &n);
    }
    end_calls(c, w, false);
}

/* ---- the backend watch ---- */

static void round_inline(ck_watchcache *c);

/* Watchers removed since the last round (lock held, no round running). */
static void free_dead(ck_watchcache *c)
{
    while (c->dead) {
        ck_wc_watcher *w = c->dead;
        c->dead = w->dead_next;
        free(w->prefix);
        free(w);
    }
}


static void backend_cb(void *ctx, const ck_event *events, size_t n, const ck_error *err)
{
    ck_watchcache *c = ctx;
    if (n == 0) {
        if (!err)
            return;
        lock(c);
        if (!c->backend_err) {
            c->backend_err = xcalloc(1, sizeof(ck_error));
            c->backend_err->code = err->code;
            c->backend_err->sys_errno = err->sys_errno;
            c->backend_err->msg = xstrdup(err->msg ? err->msg : ck_error_name(err->code));
        }
        pthread_cond_signal(&c->wake);
        unlock(c);
        return;
    }
    size_t plen = strlen(c->prefix);
    ck_wc_event *conv[64];
    for (size_t off = 0; off < n; off += ARRAY_SIZE(conv)) {
        size_t m = n - off < ARRAY_SIZE(conv) ? n - off : ARRAY_SIZE(conv);
        for (size_t i = 0; i < m; i++) {
            const ck_event *ev = &events[off + i];
            conv[i] = ev->kv.key && !strncmp(ev->kv.key, c->prefix, plen) ? event_new(ev) : NULL;
        }
        lock(c);
        for (size_t i = 0; i < m; i++) {
            /* A resumed watch may repeat what we have: revisions only move forward. */
            if (conv[i] && conv[i]->ev.revision > c->latest_rev) {
                c->latest_rev = conv[i]->ev.revision;
                c->events_received++;
                evvec_push(&c->pending, conv[i]);
            } else {
                ck_wc_event_unref(conv[i]);
            }
        }
        if (!c->inline_rounds)
            pthread_cond_signal(&c->wake);
        pthread_cond_broadcast(&c->rev_cond);
        if (c->inline_rounds && off + m >= n)
            round_inline(c);
        unlock(c);
    }
}

/* The backend watch ended with an error.  Called with the lock held, returns with it held. */
static void backend_recover(ck_watchcache *c)
{
    ck_error *cause = steal_pointer(&c->backend_err);
    c->healthy = false;
    int64_t from = c->latest_rev;
    unlock(c);

    log_warn("watch cache %s: backend watch ended: %s", c->prefix, cause->msg);
    if (c->handle)
        ck_store_watch_cancel(c->store, c->handle);
    c->handle = NULL;

    if (cause->code != CK_E_EXPIRED) {
        ck_error *err = NULL;
        if (ck_store_watch(c->store, c->prefix, from, backend_cb, c, &c->handle, &err) == 0) {
            if (c->inline_rounds)
                ck_store_watch_inline(c->store, c->handle);
            log_info("watch cache %s: backend watch resumed at revision %lld", c->prefix,
                     (long long)from);
            lock(c);
            c->healthy = true;
            c->resumes++;
            ck_error_free(cause);
            return;
        }
        log_warn("watch cache %s: resume at %lld failed: %s", c->prefix, (long long)from, err->msg);
        ck_error_free(err);
    }

    /* Reset: end every watcher (they relist), drop history, start over from the current revision. */
    lock(c);
    size_t nw = 0;
    ck_wc_watcher **ws = xcalloc(c->nwatchers + 1, sizeof(*ws));
    for (ck_wc_watcher *w = c->watchers; w; w = w->next) {
        if (w->state == W_ENDED)
            continue;
        if (w->state == W_JOINING) {
            w->state = W_LIVE;
            c->njoining--;
        }
        ws[nw++] = w;
    }
    evvec_clear(&c->pending);
    ring_clear(c);
    unlock(c);

    enum ck_error_code code = cause->code == CK_E_EXPIRED ? CK_E_EXPIRED : CK_E_UNAVAILABLE;
    cleanup_free char *msg = xasprintf("watch of %s restarted: %s", c->prefix, cause->msg);
    for (size_t i = 0; i < nw; i++)
        end_watcher(c, ws[i], code, msg);
    free(ws);
    ck_error_free(cause);

    int64_t backoff_ms = 100;
    lock(c);
    while (!c->stop) {
        unlock(c);
        ck_error *err = NULL;
        int64_t rev = 0;
        int rc = ck_store_current_revision(c->store, &rev, &err);
        if (rc == 0)
            rc = ck_store_watch(c->store, c->prefix, rev, backend_cb, c, &c->handle, &err);
        if (rc == 0 && c->inline_rounds)
            ck_store_watch_inline(c->store, c->handle);
        lock(c);
        if (rc == 0) {
            c->latest_rev = c->window_start = c->dispatched_rev = rev;
            c->healthy = true;
            c->restarts++;
            pthread_cond_broadcast(&c->rev_cond);
            log_info("watch cache %s: backend watch restarted at revision %lld", c->prefix,
                     (long long)rev);
            return;
        }
        log_warn("watch cache %s: restart failed (retrying in %lld ms): %s", c->prefix,
                 (long long)backoff_ms, err->msg);
        ck_error_free(err);
        struct timespec ts = deadline_in_ns(backoff_ms * 1000000);
        if (!c->stop)
            pthread_cond_timedwait(&c->wake, &c->mu, &ts);
        backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
    }
}

/* ---- the dispatch thread ---- */

/* One round (see the top of the file).  The caller holds the lock and has set in_round; the lock
 * is dropped for the callbacks and held again on return. */
static void run_round(ck_watchcache *c, bool bm_due)
{
    /* 1. take the new events and a snapshot of the watchers */
    evvec tmp = c->rbatch;
    c->rbatch = c->pending;
    c->pending = tmp;
    if (c->snap_cap < c->nwatchers) {
        c->snap_cap = c->nwatchers * 2;
        c->snap = xrealloc(c->snap, c->snap_cap * sizeof(*c->snap));
    }
    ck_wc_watcher **snap = c->snap;
    evvec *batch = &c->rbatch;
    size_t nsnap = 0;
    bool any_replay = false;
    for (ck_wc_watcher *w = c->watchers; w; w = w->next) {
        if (w->state == W_ENDED)
            continue;
        w->replay = w->state == W_JOINING;
        any_replay |= w->replay;
        w->state = W_LIVE;
        snap[nsnap++] = w;
    }
    c->njoining = 0;
    unlock(c);

    /* 2. replay the window to the joiners */
    if (any_replay)
        for (size_t i = 0; i < nsnap; i++)
            if (snap[i]->replay)
                replay(c, snap[i]);

    /* 3. the new events enter the window */
    if (batch->n) {
        lock(c);
        for (size_t i = 0; i < batch->n; i++)
            ring_push(c, batch->v[i]);
        c->dispatched_rev = batch->v[batch->n - 1]->ev.revision;
        unlock(c);
    }

    /* 4. live delivery */
    for (size_t i = 0; i < nsnap; i++)
        deliver(c, snap[i], batch, bm_due);
    evvec_clear(batch);
    lock(c);
}

/* The backend's thread, lock held: deliver what is pending now unless the dispatch thread must
 * (a joiner's replay, a recovery) or already does (in_round). */
static void round_inline(ck_watchcache *c)
{
    if (!c->pending.n || c->in_round || c->njoining || c->backend_err || c->stop || !c->healthy) {
        pthread_cond_signal(&c->wake);
        return;
    }
    c->in_round = true;
    ck_watchcache *outer = tl_dispatching;
    tl_dispatching = c;   /* remove() from a callback must not wait for itself */
    free_dead(c);
    run_round(c, false);
    tl_dispatching = outer;
    c->in_round = false;
    c->rounds_inline++;
    /* the dispatch thread has work (a joiner or removal meanwhile) or waited for us */
    if (c->dispatch_waits || c->njoining || c->dead || c->pending.n || c->backend_err)
        pthread_cond_signal(&c->wake);
}

static void *dispatch_main(void *arg)
{
    ck_watchcache *c = arg;
    pthread_setname_np(pthread_self(), "watch-cache");
    tl_dispatching = c;

    lock(c);
    for (;;) {
        if (c->in_round) {   /* an inline round runs: it signals when it ends */
            c->dispatch_waits = true;
            pthread_cond_wait(&c->wake, &c->mu);
            c->dispatch_waits = false;
            continue;
        }
        free_dead(c);
        if (c->stop)
            break;
        if (c->backend_err) {
            c->in_round = true;
            backend_recover(c);
            c->in_round = false;
            continue;
        }
        int64_t now = ck_now_ns();
        bool bm_due = c->bookmark_ns && now >= c->next_bookmark;
        if (!c->pending.n && !c->njoining && !bm_due) {
            if (c->bookmark_ns) {
                struct timespec ts = deadline_in_ns(c->next_bookmark - now);
                pthread_cond_timedwait(&c->wake, &c->mu, &ts);
            } else {
                pthread_cond_wait(&c->wake, &c->mu);
            }
            continue;
        }
        if (bm_due)
            c->next_bookmark = now + c->bookmark_ns;
        c->in_round = true;
        run_round(c, bm_due);
        c->in_round = false;
        c->rounds_thread++;
    }
    unlock(c);

    if (c->handle)
        ck_store_watch_cancel(c->store, c->handle);
    c->handle = NULL;
    return NULL;
}

/* ---- public ---- */

ck_watchcache *ck_watchcache_new(ck_store *store, const char *prefix, const ck_watchcache_opts *opts,
                                 ck_error **err)
{
    if (!prefix || !*prefix)
        return ck_error_set(err, CK_E_INVALID, "watch cache: empty prefix"), NULL;
    ck_watchcache_opts o = opts ? *opts : (ck_watchcache_opts){0};
    int64_t rev = 0;
    if (ck_store_current_revision(store, &rev, err) < 0)
        return ck_error_wrap(err, "watch cache %s", prefix), NULL;

    ck_watchcache *c = xcalloc(1, sizeof(*c));
    c->store = store;
    c->prefix = xstrdup(prefix);
    c->window_max = o.window_events ? o.window_events : CK_WC_DEFAULT_WINDOW;
    c->bytes_max = o.window_bytes;
    c->bookmark_ns = o.bookmark_interval_ms < 0 ? 0
                     : (int64_t)(o.bookmark_interval_ms ? o.bookmark_interval_ms : 60000) * 1000000;
    c->next_bookmark = ck_now_ns() + c->bookmark_ns;
    c->ring_cap = c->window_max;
    c->ring = xcalloc(c->ring_cap, sizeof(*c->ring));
    c->latest_rev = c->window_start = c->dispatched_rev = rev;
    c->healthy = true;
    c->inline_rounds = o.inline_delivery;

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->wake, &ca);
    pthread_cond_init(&c->idle, &ca);
    pthread_cond_init(&c->rev_cond, &ca);
    pthread_condattr_destroy(&ca);

    if (ck_store_watch(store, prefix, rev, backend_cb, c, &c->handle, err) < 0) {
        ck_error_wrap(err, "watch cache %s", prefix);
        c->handle = NULL;
        ck_watchcache_free(c);
        return NULL;
    }
    if (c->inline_rounds)
        ck_store_watch_inline(store, c->handle);
    int rc = pthread_create(&c->thread, NULL, dispatch_main, c);
    c->thread_started = rc == 0;
    if (rc != 0) {
        errno = rc;
        ck_error_sys(err, CK_E_INTERNAL, "watch cache %s: pthread_create", prefix);
        ck_store_watch_cancel(store, c->handle);
        c->handle = NULL;
        ck_watchcache_free(c);
        return NULL;
    }
    return c;
}

void ck_watchcache_free(ck_watchcache *c)
{
    if (!c)
        return;
    lock(c);
    c->stop = true;
    pthread_cond_broadcast(&c->wake);
    pthread_cond_broadcast(&c->rev_cond);
    unlock(c);
    if (c->thread_started)
        pthread_join(c->thread, NULL);
    /* The dispatch thread cancelled the backend watch; nothing else touches c now. */
    while (c->watchers) {
        ck_wc_watcher *w = c->watchers;
        c->watchers = w->next;
        free(w->prefix);
        free(w);
    }
    free_dead(c);
    evvec_clear(&c->pending);
    free(c->pending.v);
    evvec_clear(&c->rbatch);
    free(c->rbatch.v);
    free(c->snap);
    ring_clear(c);
    free(c->ring);
    ck_error_free(c->backend_err);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->wake);
    pthread_cond_destroy(&c->idle);
    pthread_cond_destroy(&c->rev_cond);
    free(c->prefix);
    free(c);
}

int64_t ck_watchcache_revision(ck_watchcache *c)
{
    lock(c);
    int64_t r = c->latest_rev;
    unlock(c);
    return r;
}

int ck_watchcache_wait(ck_watchcache *c, int64_t rev, int timeout_ms, ck_error **err)
{
    struct timespec ts = deadline_in_ns((int64_t)timeout_ms * 1000000);
    lock(c);
    int rc = 0;
    while (c->latest_rev < rev && !c->stop && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&c->rev_cond, &c->mu, &ts);
    int64_t have = c->latest_rev;
    bool stopped = c->stop;
    unlock(c);
    if (have >= rev)
        return 0;
    if (stopped)
        return ck_error_set(err, CK_E_UNAVAILABLE, "watch cache %s is shutting down", c->prefix);
    return ck_error_set(err, CK_E_TIMEOUT, "watch cache %s: revision %lld not reached (at %lld)",
                        c->prefix, (long long)rev, (long long)have);
}

void ck_watchcache_get_stats(ck_watchcache *c, ck_watchcache_stats *out)
{
    lock(c);
    *out = (ck_watchcache_stats){
        .revision = c->latest_rev,
        .window_start = c->window_start,
        .window_events = c->ring_len,
        .window_bytes = c->ring_bytes,
        .watchers = c->nwatchers,
        .events_received = c->events_received,
        .restarts = c->restarts,
        .resumes = c->resumes,
        .rounds_inline = c->rounds_inline,
        .rounds_thread = c->rounds_thread,
        .healthy = c->healthy,
    };
    unlock(c);
}

ck_wc_watcher *ck_watchcache_add(ck_watchcache *c, const ck_wc_watch_opts *opts, ck_wc_cb cb,
                                 void *ctx, ck_error **err)
{
    ck_wc_watch_opts o = opts ? *opts : (ck_wc_watch_opts){0};
    size_t cplen = strlen(c->prefix);
    if (o.prefix && *o.prefix && strncmp(o.prefix, c->prefix, cplen))
        return ck_error_set(err, CK_E_INVALID, "watch prefix %s is not under %s", o.prefix,
                            c->prefix), NULL;
    if (o.after_rev < 0)
        return ck_error_set(err, CK_E_INVALID, "negative resource version %lld",
                            (long long)o.after_rev), NULL;

    ck_wc_watcher *w = xcalloc(1, sizeof(*w));
    atomic_init(&w->removed, false);
    /* A filter equal to the cache prefix filters nothing. */
    if (o.prefix && strlen(o.prefix) > cplen) {
        w->prefix = xstrdup(o.prefix);
        w->prefix_len = strlen(o.prefix);
    }
    w->bookmarks = o.bookmarks;
    w->cb = cb;
    w->ctx = ctx;
    w->state = W_JOINING;

    lock(c);
    if (!c->healthy || c->stop) {
        unlock(c);
        free(w->prefix);
        free(w);
        return ck_error_set(err, CK_E_UNAVAILABLE, "watch cache %s: backend watch is down",
                            c->prefix), NULL;
    }
    if (o.after_rev && o.after_rev < c->window_start) {
        int64_t start = c->window_start;
        unlock(c);
        free(w->prefix);
        free(w);
        return ck_error_set(err, CK_E_EXPIRED, "too old resource version: %lld (%lld)",
                            (long long)o.after_rev, (long long)start), NULL;
    }
    w->cursor = o.after_rev ? o.after_rev : c->latest_rev;
    w->next = c->watchers;
    if (c->watchers)
        c->watchers->prev = w;
    c->watchers = w;
    c->nwatchers++;
    c->njoining++;
    pthread_cond_signal(&c->wake);
    unlock(c);
    return w;
}

void ck_watchcache_remove(ck_watchcache *c, ck_wc_watcher *w)
{
    if (!w)
        return;
    lock(c);
    atomic_store(&w->removed, true);
    if (w->prev)
        w->prev->next = w->next;
    else
        c->watchers = w->next;
    if (w->next)
        w->next->prev = w->prev;
    if (w->state == W_JOINING)
        c->njoining--;
    c->nwatchers--;
    if (tl_dispatching != c) {
        atomic_fetch_add(&c->nwaiting, 1);
        while (atomic_load(&c->current) == w)
            pthread_cond_wait(&c->idle, &c->mu);
        atomic_fetch_sub(&c->nwaiting, 1);
    }
    w->dead_next = c->dead;
    c->dead = w;
    pthread_cond_signal(&c->wake);
    unlock(c);
}
