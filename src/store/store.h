/* store.h - the storage interface: a revisioned key-value store with watch.
 *
 * Two backends implement it: embedded SQLite (store/sqlite.c, the default) and a real etcd 3.x
 * cluster (store/etcd.c).  A watch cache (store/watchcache.c) sits in front of either and fans one
 * backend watch per resource prefix out to any number of in-memory watchers.
 *
 * Keys are "/registry/<group>/<resource>/<namespace>/<name>" (core group: "/registry/<resource>/...",
 * as upstream).  Values are opaque bytes (the API server stores JSON without resourceVersion).
 *
 * Revisions: one global counter, incremented by exactly one per successful write (create, update,
 * delete).  A key's mod_revision is the revision of its last write; it becomes the object's
 * metadata.resourceVersion.  Revisions start at 1; 0 means "none / current".
 *
 * Error contract (lib/error.h): every call returning int returns 0 on success and -1 with *err set:
 *   CK_E_EXISTS     create of a key that exists
 *   CK_E_NOT_FOUND  get/update/delete of a missing key
 *   CK_E_CONFLICT   update/delete whose expected revision is not the key's mod_revision
 *   CK_E_EXPIRED    list/watch at a revision that compaction removed (or older than a watch window)
 *   CK_E_INVALID    bad arguments (empty key, bad continue token)
 *   CK_E_UNAVAILABLE backend unreachable (etcd down); CK_E_IO / CK_E_CORRUPT for local failures.
 *
 * Threads: every function may be called from any thread concurrently.  Writes from many threads are
 * batched into shared commits (group commit) by the SQLite backend.  Watch callbacks run on a
 * backend-owned thread and must not block for long.
 */
#ifndef CK_STORE_H
#define CK_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

typedef struct ck_kv {
    char *key;
    char *value;              /* NUL-terminated for convenience; value_len excludes the NUL */
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
} ck_kv;

void ck_kv_free(ck_kv *kv);   /* frees the members, not kv itself */

typedef struct ck_list_opts {
    int64_t revision;         /* 0: the current revision; else list as of this revision */
    size_t limit;             /* 0: no limit */
    const char *start_after;  /* continue: list keys strictly greater than this (NULL: from start) */
    bool keys_only;           /* do not fetch values */
    bool count_only;          /* fill only count/revision */
} ck_list_opts;

typedef struct ck_list {
    ck_kv *items;
    size_t n;
    int64_t revision;         /* the revision the list is consistent at */
    bool more;                /* more keys after the last item (then continue from items[n-1].key) */
    int64_t remaining;        /* keys left after this page (0 if !more) */
} ck_list;

void ck_list_free(ck_list *l);

enum ck_event_type { CK_EVENT_PUT, CK_EVENT_DELETE };

typedef struct ck_event {
    enum ck_event_type type;
    int64_t revision;         /* the revision of this write */
    bool created;             /* PUT that created the key (ADDED) vs updated it (MODIFIED) */
    ck_kv kv;                 /* PUT: the new value; DELETE: key only, value empty */
    ck_kv prev;               /* previous value (update/delete); key NULL if none/unknown */
} ck_event;

void ck_event_free(ck_event *ev);   /* frees members */

/* Receives events in revision order, each exactly once.  `n` events in one call (a batch from one
 * commit or one backend message).  A call with n == 0 and err set means the watch ended (e.g.
 * CK_E_EXPIRED, CK_E_UNAVAILABLE); no calls follow.  Ownership of events stays with the caller of
 * the callback: copy what you keep. */
typedef void (*ck_watch_cb)(void *ctx, const ck_event *events, size_t n, const ck_error *err);

typedef struct ck_store ck_store;
typedef struct ck_watch_handle ck_watch_handle;

/* An asynchronous write (create, update or delete; see ck_store_write_async).  key and val must
 * stay valid until the completion has been called.  A delete has no val; rev is the delete's. */
enum ck_store_write_kind { CK_STORE_CREATE, CK_STORE_UPDATE, CK_STORE_DELETE };
typedef struct ck_write {
    enum ck_store_write_kind kind;
    const char *key;
    const void *val;
    size_t len;
    int64_t expected;         /* update, delete: as ck_store_update's expected_rev (0: unconditional) */
} ck_write;

/* Called exactly once per ck_store_write_async: rev > 0 and err NULL once the write is durable,
 * or rev 0 and err (the same codes as the synchronous call; the callee frees it).  It may run on
 * the backend's writer thread, so it must be short and must not write to the same store
 * synchronously (the writer would wait for itself). */
typedef void (*ck_write_done_cb)(void *ctx, int64_t rev, ck_error *err);

typedef struct ck_store_ops {
    const char *name;
    int (*create)(ck_store *s, const char *key, const void *val, size_t len, int64_t *rev,
                  ck_error **err);
    int (*get)(ck_store *s, const char *key, ck_kv *out, ck_error **err);
    /* expected_rev 0: unconditional.  On CK_E_CONFLICT nothing is written. */
    int (*update)(ck_store *s, const char *key, const void *val, size_t len, int64_t expected_rev,
                  int64_t *rev, ck_error **err);
    /* expected_rev 0: unconditional.  prev (may be NULL) receives the deleted value. */
    int (*delete)(ck_store *s, const char *key, int64_t expected_rev, ck_kv *prev, int64_t *rev,
                  ck_error **err);
    int (*list)(ck_store *s, const char *prefix, const ck_list_opts *opts, ck_list *out,
                ck_error **err);
    int (*current_revision)(ck_store *s, int64_t *rev, ck_error **err);
    /* Forget history at or below `revision` (current values are kept). */
    int (*compact)(ck_store *s, int64_t revision, ck_error **err);
    /* Events on keys under `prefix` with revision > after_rev, in order; after_rev 0 = from now. */
    int (*watch)(ck_store *s, const char *prefix, int64_t after_rev, ck_watch_cb cb, void *ctx,
                 ck_watch_handle **out, ck_error **err);
    /* Stops a watch; when it returns no callback is running or will run. */
    void (*watch_cancel)(ck_store *s, ck_watch_handle *w);
    void (*close)(ck_store *s);
    /* Optional (NULL: ck_store_write_async runs the synchronous call).  Queues the write and
     * returns; the completion runs on the backend's writer thread after the commit, or on the
     * calling thread if the write is refused before it was queued (bad key, store closing). */
    void (*write_async)(ck_store *s, const ck_write *w, ck_write_done_cb done, void *ctx);
    /* Optional (NULL: nothing changes).  See ck_store_watch_inline. */
    void (*watch_inline)(ck_store *s, ck_watch_handle *w);
} ck_store_ops;

struct ck_store {
    const ck_store_ops *ops;
};

/* Open a backend.  sqlite: path of the database file (created if missing; a corrupt or foreign
 * file is CK_E_CORRUPT and is never overwritten).  etcd: comma-separated client URLs. */
ck_store *ck_store_open_sqlite(const char *path, ck_error **err);
ck_store *ck_store_open_etcd(const char *endpoints, ck_error **err);

/* Convenience wrappers over ops. */
static inline int ck_store_create(ck_store *s, const char *k, const void *v, size_t n, int64_t *rev,
                                  ck_error **err)
{ return s->ops->create(s, k, v, n, rev, err); }
static inline int ck_store_get(ck_store *s, const char *k, ck_kv *out, ck_error **err)
{ return s->ops->get(s, k, out, err); }
static inline int ck_store_update(ck_store *s, const char *k, const void *v, size_t n, int64_t exp,
                                  int64_t *rev, ck_error **err)
{ return s->ops->update(s, k, v, n, exp, rev, err); }
static inline int ck_store_delete(ck_store *s, const char *k, int64_t exp, ck_kv *prev, int64_t *rev,
                                  ck_error **err)
{ return s->ops->delete(s, k, exp, prev, rev, err); }
static inline int ck_store_list(ck_store *s, const char *prefix, const ck_list_opts *o, ck_list *out,
                                ck_error **err)
{ return s->ops->list(s, prefix, o, out, err); }
static inline int ck_store_current_revision(ck_store *s, int64_t *rev, ck_error **err)
{ return s->ops->current_revision(s, rev, err); }
static inline int ck_store_compact(ck_store *s, int64_t rev, ck_error **err)
{ return s->ops->compact(s, rev, err); }
static inline int ck_store_watch(ck_store *s, const char *prefix, int64_t after, ck_watch_cb cb,
                                 void *ctx, ck_watch_handle **out, ck_error **err)
{ return s->ops->watch(s, prefix, after, cb, ctx, out, err); }
static inline void ck_store_watch_cancel(ck_store *s, ck_watch_handle *w)
{ s->ops->watch_cancel(s, w); }
/* Declare that w's callback is short, never blocks and never waits for a write to this store, so the backend may call it on its
 * writer thread right after a commit instead of handing the events to the watch's own thread.
 * The watch contract is unchanged: events in revision order, each exactly once, batches as
 * before; calls never overlap (a watch that is catching up from the log, or has events queued,
 * keeps its thread until it is live again).  The callback may cancel its own watch.  A backend
 * without the op ignores the call. */
static inline void ck_store_watch_inline(ck_store *s, ck_watch_handle *w)
{ if (s->ops->watch_inline && w) s->ops->watch_inline(s, w); }
static inline void ck_store_close(ck_store *s)
{ if (s) s->ops->close(s); }

/* A create or update whose result goes to `done` (exactly once, see ck_write_done_cb) instead of
 * the caller waiting for it.  The SQLite backend completes it on its writer thread after the
 * group commit, in commit order, after the value cache and watchers have the write; a backend
 * without write_async (etcd) makes the synchronous call and completes on the calling thread. */
void ck_store_write_async(ck_store *s, const ck_write *w, ck_write_done_cb done, void *ctx);
/* true if writes complete on a backend thread (write_async), not in ck_store_write_async */
static inline bool ck_store_async_native(const ck_store *s)
{ return s && s->ops->write_async != NULL; }

#endif
