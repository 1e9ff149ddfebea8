/* sqlite_watch.c - watch for the SQLite store (see sqlite.c and docs/store.md).
 *
 * Each watcher has a thread.  It first reads (after_rev, H] from the log, where H is the revision
 * published when the watcher registered; from registration on, the writer appends every later
 * matching event to the watcher's queue after its commit, so history and live events meet
 * without a gap or an overlap.  A queue that grows past WQ_MAX_EVENTS / WQ_MAX_BYTES is dropped
 * and the watcher goes back to reading the log from its position: a slow consumer costs reads,
 * never unbounded memory, and never stalls the writer.  Callbacks run on the watcher's thread.
 *
 * Inline watchers (ck_store_watch_inline: a callback that is short and never waits for a write)
 * skip the thread while they are live: when the watcher's thread is idle, its queue empty and no
 * catch-up pending, the writer calls the callback itself after the commit (outside the hub lock,
 * with inline_busy set so the thread, a cancel and the next commit keep out).  Otherwise the
 * events are queued as for any watcher, and the thread delivers them; the writer goes back to
 * delivering once the thread has emptied the queue.  Only the writer queues or delivers live
 * events, and it does either for one commit at a time, so the order per watcher is the commit
 * order whichever path an event takes.  This saves a futex wake and two context switches a
 * commit (the watch thread's sleep and wake) on the API server's one watch of /registry/.
 */
#include "store/sqlite_int.h"
#include "lib/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- watch hub: events from the writer to watcher queues -------------------------------------- */

void ck__sqlite_sev_unref(sev *e)
{
    if (atomic_fetch_sub(&e->refs, 1) == 1) {
        ck_event_free(&e->ev);
        free(e);
    }
}

static bool key_in(const ck_watch_handle *w, const char *key)
{
    return strncmp(key, w->prefix, w->plen) == 0;
}

static void wq_clear(ck_watch_handle *w)
{
    for (size_t i = 0; i < w->qn; i++)
        ck__sqlite_sev_unref(w->q[i]);
    w->qn = 0;
    w->qbytes = 0;
}

/* Queue the batch's matching events for `w` (under hmu).  Returns true if any was queued or the
 * queue was dropped (the thread has work). */
static bool wq_add(sqlite_store *st, ck_watch_handle *w, sev **evs, size_t n)
{
    bool added = false;
    for (size_t i = 0; i < n; i++) {
        if (!key_in(w, evs[i]->ev.kv.key))
            continue;
        if (w->qn >= WQ_MAX_EVENTS || w->qbytes + evs[i]->bytes > WQ_MAX_BYTES) {
            /* too far behind: forget the queue, the watcher re-reads the log */
            wq_clear(w);
            w->need_catchup = true;
            atomic_fetch_add(&st->st_resyncs, 1);
            return true;
        }
        if (w->qn == w->qcap) {
            w->qcap = w->qcap ? w->qcap * 2 : 64;
            w->q = xrealloc(w->q, w->qcap * sizeof *w->q);
        }
        atomic_fetch_add(&evs[i]->refs, 1);
        w->q[w->qn++] = evs[i];
        w->qbytes += evs[i]->bytes;
        added = true;
    }
    return added;
}

static bool any_in(const ck_watch_handle *w, sev **evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (key_in(w, evs[i]->ev.kv.key))
            return true;
    return false;
}

static void deliver(ck_watch_handle *w, const ck_event *evs, size_t n);

/* The watch whose callback the writer is running (a cancel from inside it must not wait). */
static __thread ck_watch_handle *tl_inline;

/* Writer: call inline watchers' callbacks with the batch's matching events (hub lock not held;
 * each has inline_busy set, which keeps it alive and its thread out). */
static void deliver_inline(sqlite_store *st, ck_watch_handle **inl, size_t ninl, sev **evs,
                           size_t n)
{
    if (st->inl_cap < n) {
        st->inl_cap = n < 64 ? 64 : n;
        free(st->inl_batch);
        st->inl_batch = xmalloc(st->inl_cap * sizeof *st->inl_batch);
    }
    for (size_t k = 0; k < ninl; k++) {
        ck_watch_handle *w = inl[k];
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (key_in(w, evs[i]->ev.kv.key))
                st->inl_batch[m++] = evs[i]->ev;   /* shallow: the callback only borrows */
        tl_inline = w;
        deliver(w, st->inl_batch, m);
        tl_inline = NULL;
        atomic_fetch_add(&st->st_inline, 1);
    }
    pthread_mutex_lock(&st->hmu);
    bool cancelled = false;
    for (size_t k = 0; k < ninl; k++) {
        ck_watch_handle *w = inl[k];
        w->inline_busy = false;
        if (atomic_load(&w->cancelled)) {
            cancelled = true;
            pthread_cond_signal(&w->cond);   /* its thread may wait to finish (self-cancel) */
        }
    }
    if (cancelled)
        pthread_cond_broadcast(&st->hcond);   /* a cancel waits for inline_busy to clear */
    pthread_mutex_unlock(&st->hmu);
}

/* After a commit: make `last` visible and queue the batch's events (or deliver them, for a live
 * inline watcher).  built == false means the writer saw no watcher and made no events: anyone
 * who registered since re-reads the log. */
void ck__sqlite_publish(sqlite_store *st, int64_t last, sev **evs, size_t n, bool built)
{
    ck_watch_handle *inl[INLINE_MAX];
    size_t ninl = 0;
    pthread_mutex_lock(&st->hmu);
    st->published = last;
    for (ck_watch_handle *w = st->watchers; w; w = w->next) {
        if (w->need_catchup || w->cancelled)
            continue;
        if (!built) {
            wq_clear(w);
            w->need_catchup = true;
            pthread_cond_signal(&w->cond);
            continue;
        }
        if (w->inline_ok && !w->thread_busy && !w->qn && ninl < INLINE_MAX) {
            /* live and idle: the writer delivers (nothing queued can be older) */
            if (any_in(w, evs, n)) {
                w->inline_busy = true;
                inl[ninl++] = w;
            }
            continue;
        }
        if (wq_add(st, w, evs, n)) {
            atomic_fetch_add(&st->st_queued, 1);
            pthread_cond_signal(&w->cond);
        }
    }
    pthread_mutex_unlock(&st->hmu);
    if (ninl)
        deliver_inline(st, inl, ninl, evs, n);
}

/* ---- watch ------------------------------------------------------------------------------------ */

/* Hand events (in revision order) to the callback, skipping those at or below w->pos. */
static void deliver(ck_watch_handle *w, const ck_event *evs, size_t n)
{
    size_t i = 0;
    while (i < n && evs[i].revision <= w->pos)
        i++;
    while (i < n && !atomic_load(&w->cancelled)) {
        size_t k = n - i < DELIVER_CHUNK ? n - i : DELIVER_CHUNK;
        w->cb(w->ctx, evs + i, k, NULL);
        w->pos = evs[i + k - 1].revision;
        i += k;
    }
}

/* Read (w->pos, upto] for the watcher's prefix from the log and deliver it, in chunks. */
static int catch_up(ck_watch_handle *w, int64_t upto, ck_error **err)
{
    sqlite_store *st = w->st;
    while (w->pos < upto && !w->cancelled) {
        rconn *c = ck__sqlite_pool_get(st);
        int64_t cur, compacted;
        if (ck__sqlite_read_begin(c, &cur, &compacted, err) < 0) {
            ck__sqlite_pool_put(st, c);
            return -1;
        }
        if (w->pos < compacted) {
            ck__sqlite_pool_put(st, c);
            return ck_error_set(err, CK_E_EXPIRED, "watch from revision %lld: compacted up to %lld",
                                (long long)w->pos, (long long)compacted);
        }
        sqlite3_stmt *q = c->hist;
        sqlite3_bind_int64(q, 1, w->pos);
        sqlite3_bind_int64(q, 2, upto);
        sqlite3_bind_text(q, 3, w->prefix, -1, SQLITE_STATIC);
        ck__sqlite_bind_end(q, 4, w->end);
        sqlite3_bind_int(q, 5, HIST_CHUNK);
        ck_event *evs = xcalloc(HIST_CHUNK, sizeof *evs);
        size_t n = 0, bytes = 0;
        int rc = SQLITE_DONE;
        /* a chunk is bounded in rows and in bytes (values may be MiBs each) */
        while (bytes < HIST_MAX_BYTES && (rc = sqlite3_step(q)) == SQLITE_ROW) {
            ck_event *e = &evs[n++];
            bool deleted = sqlite3_column_int(q, 4);
            int64_t prev_rev = sqlite3_column_int64(q, 3);
            e->revision = sqlite3_column_int64(q, 0);
            e->type = deleted ? CK_EVENT_DELETE : CK_EVENT_PUT;
            e->created = !deleted && prev_rev == 0;
            e->kv.key = ck__sqlite_col_dup(q, 1, NULL);
            e->kv.create_revision = sqlite3_column_int64(q, 2);
            e->kv.mod_revision = e->revision;
            /* a tombstone's value column is NULL: col_dup gives "" */
            e->kv.value = ck__sqlite_col_dup(q, 5, &e->kv.value_len);
            if (prev_rev && sqlite3_column_type(q, 6) != SQLITE_NULL) {
                e->prev.key = xstrdup(e->kv.key);
                e->prev.value = ck__sqlite_col_dup(q, 6, &e->prev.value_len);
                e->prev.create_revision = e->kv.create_revision;
                e->prev.mod_revision = prev_rev;
            }
            bytes += e->kv.value_len + e->prev.value_len;
        }
        bool exhausted = bytes < HIST_MAX_BYTES && rc == SQLITE_DONE && n < HIST_CHUNK;
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
        ck__sqlite_pool_put(st, c);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            for (size_t i = 0; i < n; i++)
                ck_event_free(&evs[i]);
            free(evs);
            return ck_error_set(err, rc == SQLITE_CORRUPT ? CK_E_CORRUPT : CK_E_IO,
                                "watch: read history: %s", sqlite3_errstr(rc));
        }
        deliver(w, evs, n);
        for (size_t i = 0; i < n; i++)
            ck_event_free(&evs[i]);
        free(evs);
        if (exhausted && !w->cancelled)
            w->pos = upto;   /* nothing else under the prefix up to there */
    }
    return 0;
}

static void watch_unlink(sqlite_store *st, ck_watch_handle *w)
{
    if (!w->in_list)
        return;
    if (w->prevw)
        w->prevw->next = w->next;
    else
        st->watchers = w->next;
    if (w->next)
        w->next->prevw = w->prevw;
    w->in_list = false;
    atomic_fetch_sub(&st->nwatchers, 1);
}

static void watch_free(ck_watch_handle *w)
{
    wq_clear(w);
    free(w->q);
    free(w->prefix);
    free(w->end);
    pthread_cond_destroy(&w->cond);
    free(w);
}

static void *watch_main(void *arg)
{
    ck_watch_handle *w = arg;
    sqlite_store *st = w->st;
    pthread_setname_np(pthread_self(), "sqlite-watch");
    ck_error *err = NULL;
    ck_event *batch = NULL;
    size_t bcap = 0;
    pthread_mutex_lock(&st->hmu);
    while (!w->cancelled) {
        if (w->inline_busy) {
            /* the writer is delivering (it never queues for us meanwhile): wait for it */
            pthread_cond_wait(&w->cond, &st->hmu);
            continue;
        }
        if (w->need_catchup) {
            int64_t upto = st->published;
            w->need_catchup = false;
            w->thread_busy = true;
            pthread_mutex_unlock(&st->hmu);
            int rc = catch_up(w, upto, &err);
            pthread_mutex_lock(&st->hmu);
            w->thread_busy = false;
            if (rc < 0)
                break;
            continue;
        }
        if (w->qn) {
            sev **q = w->q;
            size_t n = w->qn;
            w->q = NULL;
            w->qn = w->qcap = 0;
            w->qbytes = 0;
            w->thread_busy = true;
            pthread_mutex_unlock(&st->hmu);
            if (n > bcap) {
                bcap = n;
                batch = xrealloc(batch, bcap * sizeof *batch);
            }
            for (size_t i = 0; i < n; i++)
                batch[i] = q[i]->ev;   /* shallow: the callback only borrows */
            deliver(w, batch, n);
            for (size_t i = 0; i < n; i++)
                ck__sqlite_sev_unref(q[i]);
            free(q);
            pthread_mutex_lock(&st->hmu);
            w->thread_busy = false;
            continue;
        }
        pthread_cond_wait(&w->cond, &st->hmu);
    }
    watch_unlink(st, w);
    bool cancelled = w->cancelled;
    pthread_mutex_unlock(&st->hmu);
    free(batch);
    if (err && !cancelled)
        w->cb(w->ctx, NULL, 0, err);   /* the end of the watch: no calls follow */
    ck_error_free(err);
    pthread_mutex_lock(&st->hmu);
    while (w->inline_busy)   /* a writer delivery still running (cancelled from inside it) */
        pthread_cond_wait(&st->hcond, &st->hmu);
    w->finished = true;
    bool self = w->self_cancelled;
    st->watch_threads--;
    pthread_cond_broadcast(&st->hcond);
    pthread_mutex_unlock(&st->hmu);
    if (self) {   /* cancelled from its own callback: nobody joins us */
        pthread_detach(pthread_self());
        watch_free(w);
    }
    return NULL;
}

int ck__sqlite_watch(ck_store *s, const char *prefix, int64_t after_rev, ck_watch_cb cb, void *ctx,
                   ck_watch_handle **out, ck_error **err)
{
    sqlite_store *st = (sqlite_store *)s;
    if (!prefix || !cb || after_rev < 0)
        return ck_error_set(err, CK_E_INVALID, "watch: bad arguments");
    int64_t compacted = atomic_load(&st->compact_rev);
    if (after_rev && after_rev < compacted)
        return ck_error_set(err, CK_E_EXPIRED, "watch from revision %lld: compacted up to %lld",
                            (long long)after_rev, (long long)compacted);
    ck_watch_handle *w = xcalloc(1, sizeof *w);
    w->st = st;
    w->prefix = xstrdup(prefix);
    w->plen = strlen(prefix);
    w->end = ck__sqlite_prefix_end(prefix);
    w->cb = cb;
    w->ctx = ctx;
    pthread_cond_init(&w->cond, NULL);
    pthread_mutex_lock(&st->hmu);
    /* from here every commit queues its events for us; the log covers up to `published` */
    w->pos = after_rev ? after_rev : st->published;
    w->need_catchup = w->pos < st->published;
    w->next = st->watchers;
    if (st->watchers)
        st->watchers->prevw = w;
    st->watchers = w;
    w->in_list = true;
    atomic_fetch_add(&st->nwatchers, 1);
    int rc = pthread_create(&w->th, NULL, watch_main, w);
    if (rc != 0) {
        watch_unlink(st, w);
        pthread_mutex_unlock(&st->hmu);
        watch_free(w);
        errno = rc;
        return ck_error_sys(err, CK_E_INTERNAL, "watch: start thread");
    }
    st->watch_threads++;
    pthread_mutex_unlock(&st->hmu);
    *out = w;
    return 0;
}

void ck__sqlite_watch_cancel(ck_store *s, ck_watch_handle *w)
{
    sqlite_store *st = (sqlite_store *)s;
    if (!w)
        return;
    pthread_mutex_lock(&st->hmu);
    w->cancelled = true;
    watch_unlink(st, w);
    pthread_cond_signal(&w->cond);
    if (pthread_equal(pthread_self(), w->th) || tl_inline == w) {
        /* from inside its callback: the thread frees it (after the writer let go of it) */
        w->self_cancelled = true;
        pthread_mutex_unlock(&st->hmu);
        return;
    }
    while (w->inline_busy)
        pthread_cond_wait(&st->hcond, &st->hmu);
    pthread_mutex_unlock(&st->hmu);
    pthread_join(w->th, NULL);
    watch_free(w);
}

void ck__sqlite_watch_inline(ck_store *s, ck_watch_handle *w)
{
    sqlite_store *st = (sqlite_store *)s;
    pthread_mutex_lock(&st->hmu);
    w->inline_ok = true;
    pthread_mutex_unlock(&st->hmu);
}

/* At close: cancel what is still open (no final call) and wait for every watcher thread. */
void ck__sqlite_watch_close_all(sqlite_store *st)
{
    for (;;) {
        pthread_mutex_lock(&st->hmu);
        ck_watch_handle *w = st->watchers;
        pthread_mutex_unlock(&st->hmu);
        if (!w)
            break;
        ck__sqlite_watch_cancel(&st->base, w);
    }
    pthread_mutex_lock(&st->hmu);   /* threads of watches cancelled from their own callback */
    while (st->watch_threads > 0)
        pthread_cond_wait(&st->hcond, &st->hmu);
    pthread_mutex_unlock(&st->hmu);
}
