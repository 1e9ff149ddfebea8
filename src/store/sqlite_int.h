/* sqlite_int.h - shared between the SQLite store's files (sqlite.c: open, writer, reads;
 * sqlite_watch.c: watch hub and watcher threads).  Not for other modules. */
#ifndef CK_STORE_SQLITE_INT_H
#define CK_STORE_SQLITE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "store/store.h"

#define APP_ID            0x636b7562   /* "ckub" */
#define SCHEMA_VERSION    1
#define N_READERS         4
#define MAX_KEY           (64 * 1024)
#define MAX_VALUE         (16 * 1024 * 1024)
#define MAX_BATCH_OPS     4096
#define MAX_BATCH_BYTES   (64u * 1024 * 1024)
#define WQ_MAX_EVENTS     20000               /* per-watcher live queue bound ... */
#define WQ_MAX_BYTES      (64u * 1024 * 1024) /* ... then it re-reads the log instead */
#define HIST_CHUNK        512                 /* history rows per read ... */
#define HIST_MAX_BYTES    (16u * 1024 * 1024) /* ... and at most this much value data */
#define DELIVER_CHUNK     256
#define COMPACT_CHUNK     5000                /* revisions per compaction transaction */
#define CKPT_PAGES        1000                /* WAL pages before the checkpointer runs ... */
#define CKPT_STEP         250                 /* ... and new pages between its runs */
#define GATHER_DEFAULT_US 500                 /* group commit: wait for more writes ... */
#define GATHER_MAX        64                  /* ... until this many are queued */

typedef struct wreq wreq;   /* a queued write (sqlite.c) */

/* A committed event shared by every watcher queue that holds it. */
typedef struct sev {
    atomic_int refs;
    size_t bytes;
    ck_event ev;
} sev;

typedef struct rconn {
    sqlite3 *db;
    sqlite3_stmt *latest, *value, *meta, *list_ge, *list_gt, *hist;
    bool busy;
} rconn;

typedef struct sqlite_store sqlite_store;

/* sqlite_cache.c: the newest value of recently written or read keys (contract in that file). */
typedef struct kvcache kvcache;
typedef struct kvcache_op {   /* one committed write */
    const char *key;
    const void *val;
    size_t len;
    int64_t create_rev, mod_rev;
    bool deleted;
} kvcache_op;
#define KVCACHE_DEFAULT_BYTES (32u * 1024 * 1024)

struct ck_watch_handle {
    sqlite_store *st;
    char *prefix, *end;       /* key range [prefix, end); end NULL: unbounded */
    size_t plen;
    ck_watch_cb cb;
    void *ctx;
    pthread_t th;
    int64_t pos;              /* last revision considered (delivered or skipped) */
    /* under st->hmu: */
    pthread_cond_t cond;
    bool in_list, need_catchup, self_cancelled, finished;
    bool inline_ok;           /* ck_store_watch_inline: the writer may call cb itself */
    bool thread_busy;         /* the watch's thread is delivering (catch-up or its queue) */
    bool inline_busy;         /* the writer is delivering to it (outside hmu) */
    atomic_bool cancelled;        /* also read without the lock while delivering */
    sev **q;
    size_t qn, qcap, qbytes;
    struct ck_watch_handle *next, *prevw;
};

struct sqlite_store {
    ck_store base;
    char *path;
    int lock_fd;
    bool opened;              /* open completed (close may checkpoint) */
    dev_t dev;                /* the file's identity, in the registry of stores open here */
    ino_t ino;
    sqlite3 *wdb;
    sqlite3_stmt *w_latest, *w_value, *w_insert, *w_setmeta, *w_compact_old,
        *w_compact_tomb;
    sqlite3_stmt *w_begin, *w_commit;   /* the group commit's BEGIN IMMEDIATE and COMMIT, prepared once */
    int64_t rev;              /* writer-owned: last assigned revision */

    pthread_mutex_t qmu;      /* write queue */
    pthread_cond_t qcond;
    wreq *qhead, *qtail;
    int qlen;                 /* requests queued */
    bool stopping;
    bool gathering;           /* the writer waits for more writes before a commit (gather()) */
    void (*notify_begin)(void), (*notify_end)(void);   /* ck_store_sqlite_set_notify_hooks */
    int64_t gather_us;        /* 0: never */
    size_t last_batch;        /* writes in the last batch taken */
    pthread_t writer;
    bool writer_started;
    /* compaction job (writer-owned, requests handed over under qmu) */
    int64_t cjob_target, cjob_done;
    wreq *cjob_waiters;

    pthread_mutex_t hmu;      /* watch hub */
    int64_t published;        /* last committed revision visible to readers */
    atomic_llong compact_rev;
    ck_watch_handle *watchers;
    atomic_int nwatchers;
    int watch_threads;        /* running watcher threads; close waits for 0 */
    pthread_cond_t hcond;

    pthread_mutex_t pmu;      /* read pool */
    pthread_cond_t pcond;
    rconn readers[N_READERS];

    pthread_mutex_t cmu;      /* checkpointer + auto-compactor */
    pthread_cond_t ccond;
    bool ckpt_wanted, cstop;
    int ckpt_mark;            /* writer (wal_hook): WAL frames when the checkpointer was last woken */
    sqlite3 *cdb;
    pthread_t ckpt_th, comp_th;
    bool ckpt_started, comp_started;
    int64_t comp_interval_ms, comp_keep;
    int comp_gen;             /* bumped when the settings change: restarts the timer */

    kvcache *cache;           /* NULL: off (CKUBE_SQLITE_CACHE_BYTES=0) */
    atomic_llong st_writes, st_commits, st_max_batch, st_compactions, st_resyncs;
    atomic_llong st_inline, st_queued;   /* watch deliveries by the writer / by watch threads */
    ck_event *inl_batch;      /* writer-owned: the shallow batch of an inline delivery */
    size_t inl_cap;
};


/* sqlite_walbuf.c: the VFS every connection opens with (NULL: the default one), which gathers
 * WAL writes into one pwrite per sync; and its counters (writes SQLite made, pwrites done) */
#define CK_SQLITE_VFS "ckube-walbuf"
const char *ck__sqlite_vfs(void);
void ck__sqlite_walbuf_stats(long long *writes, long long *flushes);

/* sqlite.c */
rconn *ck__sqlite_pool_get(sqlite_store *st);
void ck__sqlite_pool_put(sqlite_store *st, rconn *c);   /* also ends the read snapshot */
int ck__sqlite_read_begin(rconn *c, int64_t *cur, int64_t *compacted, ck_error **err);
char *ck__sqlite_prefix_end(const char *prefix);
void ck__sqlite_bind_end(sqlite3_stmt *s, int i, const char *end);
char *ck__sqlite_col_dup(sqlite3_stmt *s, int i, size_t *len);

/* sqlite_cache.c; every function is a no-op (or a miss) on a NULL cache */
kvcache *ck__kvcache_new(size_t max_bytes, int64_t applied);   /* NULL if max_bytes is 0 */
void ck__kvcache_free(kvcache *c);
/* writer: before the COMMIT of a batch (its successful writes, in order), then after it, before
 * acknowledging: apply if it committed, abort if not */
void ck__kvcache_begin(kvcache *c, const kvcache_op *ops, size_t n);
void ck__kvcache_abort(kvcache *c);
void ck__kvcache_apply(kvcache *c, const kvcache_op *ops, size_t n, int64_t applied);
/* 1 and a copy in *out (key, value, revisions) on a hit, 0 on a miss */
int ck__kvcache_get(kvcache *c, const char *key, ck_kv *out);
/* 1 and a copy of the value if the entry is at exactly mod_rev */
int ck__kvcache_value_at(kvcache *c, const char *key, int64_t mod_rev, char **val, size_t *len);
/* a reader's miss, read in a snapshot whose current revision was snap_rev */
void ck__kvcache_fill(kvcache *c, const ck_kv *kv, int64_t snap_rev);
void ck__kvcache_stats(kvcache *c, uint64_t *hits, uint64_t *misses, size_t *bytes);

/* sqlite_watch.c */
#define INLINE_MAX        16                  /* watchers the writer delivers to per commit */
void ck__sqlite_publish(sqlite_store *st, int64_t last, sev **evs, size_t n, bool built);
void ck__sqlite_sev_unref(sev *e);
int ck__sqlite_watch(ck_store *s, const char *prefix, int64_t after_rev, ck_watch_cb cb,
                     void *ctx, ck_watch_handle **out, ck_error **err);
void ck__sqlite_watch_cancel(ck_store *s, ck_watch_handle *w);
void ck__sqlite_watch_inline(ck_store *s, ck_watch_handle *w);
void ck__sqlite_watch_close_all(sqlite_store *st);

#endif
