/* watchcache.h - one backend watch per resource prefix, fanned out in memory to many watchers.
 *
 * A ck_watchcache covers one key prefix ("/registry/pods/").  At creation it reads the store's
 * current revision R0 and opens ONE backend watch (ck_store_watch) for events after R0.  Every event
 * becomes a shared, immutable, reference-counted ck_wc_event, kept in a bounded history window
 * and handed to every matching watcher by the cache's single dispatch thread (no thread per
 * watcher, no copy per watcher).
 *
 * Window and revisions:
 *   - ck_watchcache_revision(): the newest revision the cache has received (R0 before any event).
 *   - The window holds the most recent events (opts.window_events, default 10,000, and optionally
 *     opts.window_bytes).  Its "start" is the oldest after_rev it can still serve: R0 until the
 *     first eviction, then the revision of the last evicted event.
 *   - A watcher added with after_rev >= start gets, in revision order and each exactly once, every
 *     matching event with revision > after_rev: first replayed from the window, then live, with no
 *     gap or duplicate between the two (both are delivered by the dispatch thread).
 *   - after_rev < start fails with CK_E_EXPIRED (the API server answers 410 Gone).
 *   - after_rev 0 means "from now": events after ck_watchcache_revision() at the time of the add.
 *   - after_rev greater than the cache's revision is allowed: events up to it are skipped (use
 *     ck_watchcache_wait() first if the caller must know the cache has caught up).
 *
 * Filtering: a watcher may give a sub-prefix of the cache prefix ("/registry/pods/default/") or an
 * exact key; only events whose key starts with it are delivered (an exact key is matched as a
 * prefix too: compare the name if that matters).  The check is one strncmp per event.
 *
 * Delivery: the callback runs on the dispatch thread (or, with opts.inline_delivery, on the
 * backend's thread: the SQLite writer), one call per notification, and MUST NOT block (queue the event - ck_wc_event_ref() it - and return).  The cache lock is not held during
 * callbacks, so a callback may call any function here, including ck_watchcache_remove() on any
 * watcher (itself included) and ck_watchcache_add().  Notifications:
 *   CK_WC_EVENT     note->event (borrowed for the call; ref it to keep it), note->revision.
 *   CK_WC_BOOKMARK  note->revision: every event up to it has been delivered to this watcher.  Sent
 *                   every opts.bookmark_interval_ms to watchers that asked for bookmarks.
 *   CK_WC_ERROR     note->err: the watcher has ended; no further callbacks for it.  Codes:
 *                   CK_E_EXPIRED (the cache lost history, e.g. the backend watch was compacted
 *                   away; relist), CK_E_UNAVAILABLE (the backend went away; relist later).
 *
 * Every watcher, ended or not, must be released with ck_watchcache_remove().  When remove returns,
 * no callback for that watcher is running (unless remove was called from that very callback, in
 * which case none follows it) and none will run.
 *
 * Backend failure: if the backend watch ends with an error, the cache first tries to resume it
 * from its own revision (etcd reconnects lose nothing that way).  If that fails, or the error was
 * CK_E_EXPIRED, the cache ends every current watcher with CK_WC_ERROR, drops its window, re-reads
 * the current revision and restarts the watch from there (retrying with backoff while the backend
 * is down; ck_watchcache_add() fails with CK_E_UNAVAILABLE in that time), as upstream's cacher does.
 *
 * Memo slots: every event has CK_WC_MEMO_SLOTS slots the API server may fill once with a derived
 * value (say, the event serialized as a JSON watch line for one encoding), so serialization runs
 * once per event rather than once per watcher.  Slots are set with compare-and-swap from any
 * thread; the first setter wins, later setters get the winner's memo back and their own value is
 * freed.  Memos are freed with the event.  Slot numbers are the caller's convention.
 *
 * Threads: every function may be called from any thread.
 */
#ifndef CK_WATCHCACHE_H
#define CK_WATCHCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"
#include "store/store.h"

#define CK_WC_DEFAULT_WINDOW 10000
#define CK_WC_MEMO_SLOTS 8

typedef struct ck_watchcache ck_watchcache;
typedef struct ck_wc_watcher ck_wc_watcher;
typedef struct ck_wc_event ck_wc_event;

/* ---- shared events ---- */

/* The event (type, revision, created, kv, prev).  Read-only; valid while a reference is held. */
const ck_event *ck_wc_event_get(const ck_wc_event *e);
ck_wc_event *ck_wc_event_ref(ck_wc_event *e);
void ck_wc_event_unref(ck_wc_event *e);       /* NULL is a no-op */

typedef struct ck_wc_memo {
    void *data;
    size_t len;
    void (*free_fn)(void *data);              /* NULL: data is not freed */
} ck_wc_memo;

/* The memo in `slot`, or NULL if none was set yet (or slot out of range). */
const ck_wc_memo *ck_wc_event_memo(const ck_wc_event *e, unsigned slot);
/* Install (data, len, free_fn) in an empty slot and return it.  If the slot was already set, free
 * `data` with free_fn and return the memo that is there.  NULL only if slot is out of range (then
 * data is freed too). */
const ck_wc_memo *ck_wc_event_memo_set(ck_wc_event *e, unsigned slot, void *data, size_t len,
                                       void (*free_fn)(void *data));

/* ---- the cache ---- */

typedef struct ck_watchcache_opts {
    size_t window_events;       /* max events kept; 0: CK_WC_DEFAULT_WINDOW */
    size_t window_bytes;        /* max key+value+prev bytes kept; 0: no byte limit */
    int bookmark_interval_ms;   /* 0: 60000 (as upstream, about a minute); < 0: never */
    /* Deliver on the backend's thread when possible (the SQLite writer, right after a commit)
     * instead of waking the dispatch thread for every batch.  Then every callback must also
     * never wait for a write to the store (ck_store_watch_inline).  Order, exactly-once,
     * replay and removal guarantees are unchanged. */
    bool inline_delivery;
} ck_watchcache_opts;

/* Start a cache for `prefix` on `store` (opts may be NULL).  The store must outlive the cache. */
ck_watchcache *ck_watchcache_new(ck_store *store, const char *prefix, const ck_watchcache_opts *opts,
                                 ck_error **err);
/* Stop the backend watch and the dispatch thread and free everything.  Watchers should be removed
 * first; any left are freed without further callbacks (their handles become invalid).  Not from a
 * callback of this cache (it joins the dispatch thread). */
void ck_watchcache_free(ck_watchcache *c);

/* Newest revision the cache has received. */
int64_t ck_watchcache_revision(ck_watchcache *c);
/* Block until the cache has received revision >= rev: 0, or -1 with CK_E_TIMEOUT after timeout_ms
 * (or CK_E_UNAVAILABLE if the cache is shutting down). */
int ck_watchcache_wait(ck_watchcache *c, int64_t rev, int timeout_ms, ck_error **err);

typedef struct ck_watchcache_stats {
    int64_t revision;           /* as ck_watchcache_revision */
    int64_t window_start;       /* smallest after_rev that is served */
    size_t window_events, window_bytes;
    size_t watchers;            /* registered, not yet removed */
    uint64_t events_received;   /* since creation */
    uint64_t restarts;          /* backend watch re-establishments that reset the window */
    uint64_t resumes;           /* backend watch resumptions that lost nothing */
    uint64_t rounds_inline;     /* delivery rounds run on the backend's thread ... */
    uint64_t rounds_thread;     /* ... and on the dispatch thread */
    bool healthy;               /* backend watch running */
} ck_watchcache_stats;

void ck_watchcache_get_stats(ck_watchcache *c, ck_watchcache_stats *out);

/* ---- watchers ---- */

enum ck_wc_kind { CK_WC_EVENT, CK_WC_BOOKMARK, CK_WC_ERROR };

typedef struct ck_wc_note {
    enum ck_wc_kind kind;
    ck_wc_event *event;         /* CK_WC_EVENT: borrowed for the call */
    int64_t revision;           /* EVENT: the event's revision; BOOKMARK: progress revision;
                                 * ERROR: the last revision delivered to this watcher */
    const ck_error *err;        /* CK_WC_ERROR: why the watcher ended (borrowed) */
} ck_wc_note;

typedef void (*ck_wc_cb)(void *ctx, const ck_wc_note *note);

typedef struct ck_wc_watch_opts {
    int64_t after_rev;          /* deliver events with revision > after_rev; 0: from now */
    const char *prefix;         /* NULL or "": every key of the cache; else a sub-prefix or key */
    bool bookmarks;             /* send CK_WC_BOOKMARK periodically */
} ck_wc_watch_opts;

/* Register a watcher.  CK_E_EXPIRED if after_rev is older than the window; CK_E_INVALID if the
 * prefix is not under the cache's prefix; CK_E_UNAVAILABLE while the backend watch is down. */
ck_wc_watcher *ck_watchcache_add(ck_watchcache *c, const ck_wc_watch_opts *opts, ck_wc_cb cb,
                                 void *ctx, ck_error **err);
/* Unregister and free a watcher (see the callback guarantee above).  NULL is a no-op. */
void ck_watchcache_remove(ck_watchcache *c, ck_wc_watcher *w);

#endif
