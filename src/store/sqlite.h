/* sqlite.h - knobs of the embedded SQLite store that the generic interface (store.h) has no
 * place for.  Open it with ck_store_open_sqlite() (store.h); see docs/store.md.
 *
 * Automatic compaction: every `interval_ms` the store compacts history older than the newest
 * `keep_revisions` revisions.  Defaults: 60s and 10000, overridden at open by the environment
 * variables CKUBE_SQLITE_COMPACT_INTERVAL (a duration such as "30s"; "0" turns it off) and
 * CKUBE_SQLITE_COMPACT_KEEP (a count).
 *
 * Value cache: get answers from memory for recently written or read keys, up to
 * CKUBE_SQLITE_CACHE_BYTES (default 32 MiB; "0" turns it off) - see docs/store.md. */
#ifndef CK_STORE_SQLITE_H
#define CK_STORE_SQLITE_H

#include <stdint.h>

#include "store/store.h"

/* interval_ms <= 0 turns automatic compaction off.  Returns -1 (CK_E_INVALID) if s is not a
 * SQLite store or keep_revisions < 1. */
int ck_store_sqlite_set_compaction(ck_store *s, int64_t interval_ms, int64_t keep_revisions,
                                   ck_error **err);

/* Functions the writer calls on its thread around what follows each commit (the watch
 * deliveries it makes itself and the write completions): begin before the first, end after the
 * last.  The API server holds its HTTP server's I/O-thread wakes there (ck_httpd_wake_hold /
 * ck_httpd_wake_flush), so a commit wakes the I/O thread once.  NULL: none.  Takes effect from
 * the next batch; -1 (CK_E_INVALID) if s is not a SQLite store. */
int ck_store_sqlite_set_notify_hooks(ck_store *s, void (*begin)(void), void (*end)(void),
                                     ck_error **err);

typedef struct ck_sqlite_stats {
    int64_t writes;        /* acknowledged successful writes */
    int64_t commits;       /* write transactions (each one WAL fsync) */
    int64_t max_batch;     /* most writes in one commit */
    int64_t compactions;   /* finished compactions */
    int64_t watch_resyncs; /* times a lagging watcher dropped its queue and re-read the log */
    int64_t watch_inline;  /* commits delivered to a watcher by the writer itself ... */
    int64_t watch_queued;  /* ... and queued for a watcher's thread */
    int64_t cache_hits;    /* gets answered from the value cache ... */
    int64_t cache_misses;  /* ... and read from the file */
    int64_t cache_bytes;   /* the value cache's size now */
} ck_sqlite_stats;

/* Counters since open; -1 (CK_E_INVALID) if s is not a SQLite store. */
int ck_store_sqlite_stats(ck_store *s, ck_sqlite_stats *out, ck_error **err);

#endif
