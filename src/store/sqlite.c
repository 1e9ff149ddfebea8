/* sqlite.c - the embedded store: a revisioned log in one SQLite file (see store.h, docs/store.md).
 *
 * Contract beyond store.h:
 *  - Durability: WAL with synchronous=FULL; a write is acknowledged only after the COMMIT that
 *    holds it returned.  One writer thread owns the write connection and commits every queued
 *    write in one transaction (group commit: one WAL fsync per batch).
 *  - Schema: table kv is a log, one row per revision (key, value, create_rev, prev_rev, deleted);
 *    the newest row of a key at or below revision R is its state at R.  meta holds the schema
 *    version and the compacted revision; the current revision is the newest row's, or meta's
 *    current_rev (written by compaction) when higher.  PRAGMA application_id marks the file as ours:
 *    an existing file that is not SQLite or carries another application id is refused with
 *    CK_E_CORRUPT before SQLite touches it.
 *  - Reads go through a pool of read connections (WAL readers never block the writer).
 *  - Watch: one thread per watcher reads history from the log, then takes live events the writer
 *    queues after each commit; a watcher whose queue grows past a bound drops it and re-reads the
 *    log from where it is, so a slow consumer costs disk reads, not memory.
 *  - list/watch below the compacted revision: CK_E_EXPIRED (a list at exactly the compacted
 *    revision still works, as in etcd); list above the current revision: CK_E_TIMEOUT ("Too large
 *    resource version", as upstream).  Cancel every watch before ck_store_close().
 */
#include "store/sqlite.h"
#include "store/sqlite_int.h"
#include "store/store.h"
#include "lib/flags.h"
#include "lib/log.h"
#include "lib/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char schema_sql[] =
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO meta VALUES ('schema_version', 1), ('current_rev', 0), ('compact_rev', 0),"
    "  ('compact_done', 0);"
    /* value last: reading the small columns never walks a large value's overflow pages */
    "CREATE TABLE kv (rev INTEGER PRIMARY KEY, key TEXT NOT NULL, create_rev INTEGER NOT NULL,"
    "  prev_rev INTEGER NOT NULL, deleted INTEGER NOT NULL, value BLOB);"
    /* covering for get/list/count: the value is fetched by rev only for rows returned */
    "CREATE INDEX kv_key_rev ON kv (key, rev, deleted, create_rev);";

#define SQL_LATEST "SELECT rev, deleted, create_rev FROM kv WHERE key = ?1 ORDER BY rev DESC LIMIT 1"
#define SQL_VALUE  "SELECT value FROM kv WHERE rev = ?1"
/* The current revision is the newest row's (a seek to the end of kv), or meta's current_rev when
 * that is higher: commits do not write meta (one page less per commit); compaction, which may
 * delete the newest row (a tombstone), records the revision there in its own transaction. */
#define SQL_CURRENT "MAX((SELECT value FROM meta WHERE name = 'current_rev'),"           \
                    "    COALESCE((SELECT MAX(rev) FROM kv), 0))"
#define SQL_META   "SELECT " SQL_CURRENT ", (SELECT value FROM meta WHERE name = 'compact_rev')"
/* the newest row of every key in [lo, hi) at or below ?3 (SQLite takes the bare columns from
 * the row that holds the max) */
#define SQL_LIST(op) "SELECT key, MAX(rev), deleted, create_rev FROM kv WHERE key " op " ?1"  \
                     " AND key < ?2 AND rev <= ?3 GROUP BY key ORDER BY key"
#define SQL_HIST   "SELECT k.rev, k.key, k.create_rev, k.prev_rev, k.deleted, k.value, p.value"  \
                   " FROM kv k LEFT JOIN kv p ON p.rev = k.prev_rev"                          \
                   " WHERE k.rev > ?1 AND k.rev <= ?2 AND k.key >= ?3 AND k.key < ?4"        \
                   " ORDER BY k.rev LIMIT ?5"

/* ---- types ------------------------------------------------------------------------------------ */

enum op_kind { OP_CREATE, OP_UPDATE, OP_DELETE, OP_COMPACT };

typedef struct wreq {
    enum op_kind kind;
    const char *key;
    const void *val;
    size_t len;
    int64_t expected;         /* update/delete precondition; compact: target revision */
    ck_kv *prev;              /* delete: receives the old value (may be NULL) */
    int rc;
    ck_error *err;
    int64_t rev;
    int64_t create_rev;       /* of the key after a successful create/update */
    sem_t done;               /* posted once the result is in; no lock, so a woken caller does
                                 not queue on the writer's mutex */
    ck_write_done_cb done_cb; /* an asynchronous write (heap-allocated, freed after the call):
                                 completed by the writer instead of the semaphore */
    void *done_ctx;
    struct wreq *next;
} wreq;

static const ck_store_ops sqlite_ops;

/* ---- helpers ---------------------------------------------------------------------------------- */

static int sql_err(ck_error **err, sqlite3 *db, int rc, const char *what)
{
    int base = rc & 0xff;
    enum ck_error_code code = (base == SQLITE_CORRUPT || base == SQLITE_NOTADB) ? CK_E_CORRUPT
                              : CK_E_IO;
    return ck_error_set(err, code, "%s: %s (sqlite %d)", what,
                        db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), rc);
}

/* The smallest string greater than every string starting with prefix; NULL if none (empty
 * prefix or all 0xff bytes). */
char *ck__sqlite_prefix_end(const char *prefix)
{
    size_t n = strlen(prefix);
    while (n > 0 && (unsigned char)prefix[n - 1] == 0xff)
        n--;
    if (n == 0)
        return NULL;
    char *e = xstrndup(prefix, n);
    e[n - 1] = (char)((unsigned char)e[n - 1] + 1);
    return e;
}

/* Bind an upper bound; none = an empty BLOB, which sorts after every TEXT key. */
void ck__sqlite_bind_end(sqlite3_stmt *s, int i, const char *end)
{
    if (end)
        sqlite3_bind_text(s, i, end, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_zeroblob(s, i, 0);
}

char *ck__sqlite_col_dup(sqlite3_stmt *s, int i, size_t *len)
{
    const void *p = sqlite3_column_blob(s, i);
    size_t n = (size_t)sqlite3_column_bytes(s, i);
    char *v = xmalloc(n + 1);
    if (n)
        memcpy(v, p, n);
    v[n] = '\0';
    if (len)
        *len = n;
    return v;
}

static int check_key(const char *key, ck_error **err)
{
    if (!key || !*key)
        return ck_error_set(err, CK_E_INVALID, "empty key");
    if (strlen(key) > MAX_KEY)
        return ck_error_set(err, CK_E_INVALID, "key longer than %d bytes", MAX_KEY);
    return 0;
}

static sqlite_store *as_sqlite(ck_store *s, ck_error **err)
{
    if (!s || s->ops != &sqlite_ops) {
        ck_error_set(err, CK_E_INVALID, "not a sqlite store");
        return NULL;
    }
    return (sqlite_store *)s;
}

static void stat_max(atomic_llong *a, long long v)
{
    long long cur = atomic_load(a);
    while (v > cur && !atomic_compare_exchange_weak(a, &cur, v))
        ;
}

static int exec(sqlite3 *db, const char *sql, ck_error **err)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return sql_err(err, db, rc, sql);
    return 0;
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out, ck_error **err)
{
    int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
    if (rc != SQLITE_OK)
        return sql_err(err, db, rc, "prepare");
    return 0;
}

/* Read one integer from a single-row query (-1 on error). */
static int query_i64(sqlite3 *db, const char *sql, int64_t *out, ck_error **err)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(s, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            *out = 0;
            rc = SQLITE_OK;
        }
    }
    if (rc != SQLITE_OK)
        sql_err(err, db, rc, sql);
    sqlite3_finalize(s);
    return rc == SQLITE_OK ? 0 : -1;
}

static int open_conn(const char *path, bool create, sqlite3 **out, ck_error **err)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path, out, flags, ck__sqlite_vfs());
    if (rc != SQLITE_OK) {
        sql_err(err, *out, rc, "open");
        sqlite3_close(*out);
        *out = NULL;
        return -1;
    }
    sqlite3_extended_result_codes(*out, 1);
    sqlite3_busy_timeout(*out, 10000);
    return 0;
}

/* ---- the read pool ---------------------------------------------------------------------------- */

rconn *ck__sqlite_pool_get(sqlite_store *st)
{
    pthread_mutex_lock(&st->pmu);
    for (;;) {
        for (int i = 0; i < N_READERS; i++) {
            if (!st->readers[i].busy) {
                st->readers[i].busy = true;
                pthread_mutex_unlock(&st->pmu);
                return &st->readers[i];
            }
        }
        pthread_cond_wait(&st->pcond, &st->pmu);
    }
}

void ck__sqlite_pool_put(sqlite_store *st, rconn *c)
{
    sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);   /* ends the read snapshot, if any */
    pthread_mutex_lock(&st->pmu);
    c->busy = false;
    pthread_cond_signal(&st->pcond);
    pthread_mutex_unlock(&st->pmu);
}

/* Start a read snapshot and read the current and compacted revisions as of it. */
int ck__sqlite_read_begin(rconn *c, int64_t *cur, int64_t *compacted, ck_error **err)
{
    int rc = sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return sql_err(err, c->db, rc, "begin read");
    rc = sqlite3_step(c->meta);
    if (rc != SQLITE_ROW) {
        sql_err(err, c->db, rc, "read meta");
        sqlite3_reset(c->meta);
        return -1;
    }
    *cur = sqlite3_column_int64(c->meta, 0);
    *compacted = sqlite3_column_int64(c->meta, 1);
    sqlite3_reset(c->meta);
    return 0;
}

static int reader_init(rconn *c, const char *path, ck_error **err)
{
    if (open_conn(path, false, &c->db, err) < 0)
        return -1;
    if (exec(c->db, "PRAGMA query_only = 1; PRAGMA cache_size = -8000", err) < 0 ||
        prepare(c->db, SQL_LATEST, &c->latest, err) < 0 ||
        prepare(c->db, SQL_VALUE, &c->value, err) < 0 ||
        prepare(c->db, SQL_META, &c->meta, err) < 0 ||
        prepare(c->db, SQL_LIST(">="), &c->list_ge, err) < 0 ||
        prepare(c->db, SQL_LIST(">"), &c->list_gt, err) < 0 ||
        prepare(c->db, SQL_HIST, &c->hist, err) < 0)
        return -1;
    return 0;
}

static void reader_close(rconn *c)
{
    sqlite3_finalize(c->latest);
    sqlite3_finalize(c->value);
    sqlite3_finalize(c->meta);
    sqlite3_finalize(c->list_ge);
    sqlite3_finalize(c->list_gt);
    sqlite3_finalize(c->hist);
    sqlite3_close(c->db);
    memset(c, 0, sizeof *c);
}

/* ---- the writer ------------------------------------------------------------------------------- */

typedef struct latest_row {
    bool found;               /* a row exists and is not a tombstone */
    int64_t rev, create_rev;
} latest_row;

static int w_latest(sqlite_store *st, const char *key, latest_row *out, ck_error **err)
{
    sqlite3_stmt *s = st->w_latest;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    memset(out, 0, sizeof *out);
    if (rc == SQLITE_ROW) {
        out->found = sqlite3_column_int(s, 1) == 0;
        out->rev = sqlite3_column_int64(s, 0);
        out->create_rev = sqlite3_column_int64(s, 2);
        rc = SQLITE_DONE;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE)
        return sql_err(err, st->wdb, rc, "lookup");
    return 0;
}

static int w_value(sqlite_store *st, int64_t rev, char **val, size_t *len, ck_error **err)
{
    sqlite3_stmt *s = st->w_value;
    sqlite3_bind_int64(s, 1, rev);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *val = ck__sqlite_col_dup(s, 0, len);
        rc = SQLITE_DONE;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_CORRUPT;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return sql_err(err, st->wdb, rc, "read previous value");
    return 0;
}

static int w_insert(sqlite_store *st, int64_t rev, const wreq *r, int64_t create_rev,
                    int64_t prev_rev, ck_error **err)
{
    sqlite3_stmt *s = st->w_insert;
    sqlite3_bind_int64(s, 1, rev);
    sqlite3_bind_text(s, 2, r->key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, create_rev);
    sqlite3_bind_int64(s, 4, prev_rev);
    sqlite3_bind_int(s, 5, r->kind == OP_DELETE);
    if (r->kind == OP_DELETE)
        sqlite3_bind_null(s, 6);
    else
        sqlite3_bind_blob(s, 6, r->len ? r->val : "", (int)r->len, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE)
        return sql_err(err, st->wdb, rc, "insert");
    return 0;
}

/* Apply one write inside the open transaction.  A failed precondition fails only this request
 * (r->rc = -1, returns 0); a database error returns -1 and fails the whole batch. */
static int apply_one(sqlite_store *st, wreq *r, bool build, sev **evout, ck_error **err)
{
    latest_row cur;
    *evout = NULL;
    if (w_latest(st, r->key, &cur, err) < 0)
        return -1;
    if (r->kind == OP_CREATE && cur.found) {
        r->rc = ck_error_set(&r->err, CK_E_EXISTS, "%s already exists", r->key);
        return 0;
    }
    if (r->kind != OP_CREATE) {
        if (!cur.found) {
            r->rc = ck_error_set(&r->err, CK_E_NOT_FOUND, "%s not found", r->key);
            return 0;
        }
        if (r->expected && r->expected != cur.rev) {
            r->rc = ck_error_set(&r->err, CK_E_CONFLICT,
                                 "%s: revision is %lld, not the expected %lld", r->key,
                                 (long long)cur.rev, (long long)r->expected);
            return 0;
        }
    }
    int64_t rev = st->rev + 1;
    int64_t create_rev = r->kind == OP_CREATE ? rev : cur.create_rev;
    int64_t prev_rev = r->kind == OP_CREATE ? 0 : cur.rev;
    char *pval = NULL;
    size_t plen = 0;
    bool want_prev = r->kind != OP_CREATE && (build || (r->kind == OP_DELETE && r->prev));
    if (want_prev && !ck__kvcache_value_at(st->cache, r->key, cur.rev, &pval, &plen) &&
        w_value(st, cur.rev, &pval, &plen, err) < 0)
        return -1;
    if (w_insert(st, rev, r, create_rev, prev_rev, err) < 0) {
        free(pval);
        return -1;
    }
    st->rev = rev;
    r->rev = rev;
    r->create_rev = create_rev;
    r->rc = 0;
    if (r->kind == OP_DELETE && r->prev) {
        r->prev->key = xstrdup(r->key);
        if (build) {   /* the event keeps pval; the caller gets a copy (binary-safe) */
            r->prev->value = xmalloc(plen + 1);
            memcpy(r->prev->value, pval, plen + 1);
        } else {
            r->prev->value = steal_pointer(&pval);
        }
        r->prev->value_len = plen;
        r->prev->create_revision = cur.create_rev;
        r->prev->mod_revision = cur.rev;
    }
    if (!build) {
        free(pval);
        return 0;
    }
    sev *e = xcalloc(1, sizeof *e);
    atomic_init(&e->refs, 1);
    e->ev.type = r->kind == OP_DELETE ? CK_EVENT_DELETE : CK_EVENT_PUT;
    e->ev.revision = rev;
    e->ev.created = r->kind == OP_CREATE;
    e->ev.kv.key = xstrdup(r->key);
    e->ev.kv.create_revision = create_rev;
    e->ev.kv.mod_revision = rev;
    size_t vlen = r->kind == OP_DELETE ? 0 : r->len;   /* a DELETE's value is "" */
    e->ev.kv.value = xmalloc(vlen + 1);
    if (vlen)
        memcpy(e->ev.kv.value, r->val, vlen);
    e->ev.kv.value[vlen] = '\0';
    e->ev.kv.value_len = vlen;
    if (pval) {
        e->ev.prev.key = xstrdup(r->key);
        e->ev.prev.value = pval;
        e->ev.prev.value_len = plen;
        e->ev.prev.create_revision = cur.create_rev;
        e->ev.prev.mod_revision = cur.rev;
    }
    e->bytes = sizeof *e + strlen(r->key) * 2 + r->len + plen;
    *evout = e;
    return 0;
}

static int set_meta(sqlite_store *st, const char *name, int64_t v, ck_error **err)
{
    sqlite3_stmt *s = st->w_setmeta;
    sqlite3_bind_int64(s, 1, v);
    sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return sql_err(err, st->wdb, rc, "update meta");
    return 0;
}

/* Hand results back: a waiting caller through its semaphore, an asynchronous one through its
 * completion, on this (the writer) thread, in commit order. */
static void wake(sqlite_store *st, wreq *list)
{
    (void)st;
    for (wreq *r = list, *next; r; r = next) {
        next = r->next;         /* r belongs to its caller again after the post */
        if (r->done_cb) {
            r->done_cb(r->done_ctx, r->rc < 0 ? 0 : r->rev, r->rc < 0 ? r->err : NULL);
            free(r);
        } else {
            sem_post(&r->done);
        }
    }
}

/* The batch's successful writes for the value cache (NULL when there is none). */
static kvcache_op *cache_ops(sqlite_store *st, wreq *batch, size_t nops, size_t *n)
{
    *n = 0;
    if (!st->cache)
        return NULL;
    kvcache_op *ops = xcalloc(nops ? nops : 1, sizeof *ops);
    for (wreq *r = batch; r && *n < nops; r = r->next) {
        if (r->rc != 0 || r->kind == OP_COMPACT)
            continue;
        ops[(*n)++] = (kvcache_op){.key = r->key, .val = r->val, .len = r->len,
                                   .create_rev = r->create_rev, .mod_rev = r->rev,
                                   .deleted = r->kind == OP_DELETE};
    }
    return ops;
}

/* A prepared statement without rows (BEGIN, COMMIT) run once: SQLITE_OK or the error.  Unlike
 * sqlite3_exec it does not parse the SQL again on every group commit. */
static int run_stmt(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    int rrc = sqlite3_reset(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rrc != SQLITE_OK ? rrc : rc;
}

/* One group commit: every request in `batch` in one transaction.  hooks: the notify hooks as
 * they were when the batch was taken. */
static void commit_batch(sqlite_store *st, wreq *batch, size_t nops, void (*hooks[2])(void))
{
    ck_error *err = NULL;
    int64_t start_rev = st->rev;
    bool build = atomic_load(&st->nwatchers) > 0;
    sev **evs = build ? xcalloc(nops, sizeof *evs) : NULL;
    size_t nev = 0, nc = 0;
    kvcache_op *ops = NULL;
    int rc = run_stmt(st->w_begin);
    if (rc != SQLITE_OK) {
        sql_err(&err, st->wdb, rc, "begin");
        goto fail;
    }
    for (wreq *r = batch; r; r = r->next) {
        sev *e = NULL;
        if (apply_one(st, r, build, &e, &err) < 0)
            goto rollback;
        if (e)
            evs[nev++] = e;
    }
    /* the value cache forgets the batch's keys while the COMMIT runs, and learns the new values
     * before anyone hears of them (sqlite_cache.c) */
    ops = cache_ops(st, batch, nops, &nc);
    ck__kvcache_begin(st->cache, ops, nc);
    rc = run_stmt(st->w_commit);
    if (rc != SQLITE_OK) {
        sql_err(&err, st->wdb, rc, "commit");
        goto rollback;
    }
    ck__kvcache_apply(st->cache, ops, nc, st->rev);
    free(ops);
    atomic_fetch_add(&st->st_commits, 1);
    atomic_fetch_add(&st->st_writes, (long long)(st->rev - start_rev));
    stat_max(&st->st_max_batch, st->rev - start_rev);
    if (hooks[0])
        hooks[0]();
    if (st->rev != start_rev)
        ck__sqlite_publish(st, st->rev, evs, nev, build);
    wake(st, batch);
    if (hooks[1])
        hooks[1]();
    for (size_t i = 0; i < nev; i++)
        ck__sqlite_sev_unref(evs[i]);
    free(evs);
    return;

rollback:
    sqlite3_exec(st->wdb, "ROLLBACK", NULL, NULL, NULL);
    ck__kvcache_abort(st->cache);
    free(ops);
fail:
    log_error("sqlite store: write batch failed: %s", err ? err->msg : "?");
    st->rev = start_rev;
    for (size_t i = 0; i < nev; i++)
        ck__sqlite_sev_unref(evs[i]);
    free(evs);
    for (wreq *r = batch; r; r = r->next) {
        ck_error_free(r->err);
        r->err = NULL;
        if (r->prev)
            ck_kv_free(r->prev);
        r->rc = ck_error_set(&r->err, err ? err->code : CK_E_IO, "%s", err ? err->msg : "write failed");
    }
    ck_error_free(err);
    wake(st, batch);
}

/* One compaction step: forget history in (cjob_done, cjob_done + COMPACT_CHUNK]. */
static void compact_step(sqlite_store *st)
{
    ck_error *err = NULL;
    int64_t a = st->cjob_done, b = a + COMPACT_CHUNK;
    if (b > st->cjob_target)
        b = st->cjob_target;
    int rc = sqlite3_exec(st->wdb, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        sql_err(&err, st->wdb, rc, "begin");
        goto fail;
    }
    if (set_meta(st, "current_rev", st->rev, &err) < 0 ||
        set_meta(st, "compact_rev", st->cjob_target, &err) < 0 ||
        set_meta(st, "compact_done", b, &err) < 0)
        goto rollback;
    sqlite3_stmt *ss[] = {st->w_compact_old, st->w_compact_tomb};
    for (size_t i = 0; i < ARRAY_SIZE(ss); i++) {
        sqlite3_bind_int64(ss[i], 1, a);
        sqlite3_bind_int64(ss[i], 2, b);
        rc = sqlite3_step(ss[i]);
        sqlite3_reset(ss[i]);
        if (rc != SQLITE_DONE) {
            sql_err(&err, st->wdb, rc, "compact");
            goto rollback;
        }
    }
    rc = sqlite3_exec(st->wdb, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        sql_err(&err, st->wdb, rc, "commit compaction");
        goto rollback;
    }
    stat_max(&st->compact_rev, st->cjob_target);
    st->cjob_done = b;
    if (b < st->cjob_target)
        return;
    /* done: give freed pages back to the file system (bounded per compaction) */
    sqlite3_exec(st->wdb, "PRAGMA incremental_vacuum(4096)", NULL, NULL, NULL);
    atomic_fetch_add(&st->st_compactions, 1);
    for (wreq *r = st->cjob_waiters; r; r = r->next)
        r->rc = 0;
    wake(st, st->cjob_waiters);
    st->cjob_waiters = NULL;
    return;

rollback:
    sqlite3_exec(st->wdb, "ROLLBACK", NULL, NULL, NULL);
fail:
    log_error("sqlite store: compaction failed: %s", err->msg);
    for (wreq *r = st->cjob_waiters; r; r = r->next)
        r->rc = ck_error_set(&r->err, err->code, "%s", err->msg);
    wake(st, st->cjob_waiters);
    st->cjob_waiters = NULL;
    st->cjob_target = st->cjob_done;   /* a later compaction retries */
    ck_error_free(err);
}

/* Take a compaction request (under qmu): finished at once, rejected, or joined to the job. */
static void take_compact(sqlite_store *st, wreq *r, wreq **finished)
{
    int64_t target = r->expected;
    if (target > st->rev) {
        r->rc = ck_error_set(&r->err, CK_E_INVALID, "compact: revision %lld is in the future "
                             "(current %lld)", (long long)target, (long long)st->rev);
    } else if (target <= st->cjob_done && target <= st->cjob_target) {
        r->rc = 0;   /* already compacted at least that far */
    } else {
        if (target > st->cjob_target)
            st->cjob_target = target;
        r->next = st->cjob_waiters;
        st->cjob_waiters = r;
        return;
    }
    r->next = *finished;
    *finished = r;
}

/* Group commit gathering (under qmu).  A commit costs the same fsync, WAL pages and wake-ups
 * whether it holds one write or twenty, so when the last batch showed concurrent writers (two or
 * more), the writer lets more writes queue for up to gather_us before it begins: under load the
 * batches grow several-fold for a bounded added latency; a lone serial writer (batches of one) is
 * never delayed.  Submitters do not wake the writer while it gathers unless the queue is full. */
static void gather(sqlite_store *st)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_nsec += st->gather_us * 1000;
    while (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    st->gathering = true;
    while (!st->stopping && st->qlen < GATHER_MAX &&
           pthread_cond_timedwait(&st->qcond, &st->qmu, &dl) != ETIMEDOUT)
        ;
    st->gathering = false;
}

static void *writer_main(void *arg)
{
    sqlite_store *st = arg;
    pthread_setname_np(pthread_self(), "sqlite-writer");
    pthread_mutex_lock(&st->qmu);
    for (;;) {
        while (!st->qhead && st->cjob_done >= st->cjob_target && !st->stopping)
            pthread_cond_wait(&st->qcond, &st->qmu);
        if (!st->qhead && st->stopping)
            break;
        if (st->qhead && st->gather_us > 0 && st->last_batch >= 2 && st->qlen < GATHER_MAX &&
            !st->stopping)
            gather(st);
        /* take up to a batch of writes; compaction requests join the job */
        wreq *batch = NULL, **tail = &batch, *finished = NULL;
        size_t nops = 0, bytes = 0;
        while (st->qhead && nops < MAX_BATCH_OPS && bytes < MAX_BATCH_BYTES) {
            wreq *r = st->qhead;
            st->qhead = r->next;
            if (!st->qhead)
                st->qtail = NULL;
            r->next = NULL;
            st->qlen--;
            if (r->kind == OP_COMPACT) {
                take_compact(st, r, &finished);
                continue;
            }
            *tail = r;
            tail = &r->next;
            nops++;
            bytes += r->len;
        }
        st->last_batch = nops;
        void (*hooks[2])(void) = {st->notify_begin, st->notify_end};
        pthread_mutex_unlock(&st->qmu);
        wake(st, finished);
        if (batch)
            commit_batch(st, batch, nops, hooks);
        else if (st->cjob_done < st->cjob_target)
            compact_step(st);
        pthread_mutex_lock(&st->qmu);
    }
    /* closing: a compaction still running is abandoned (it resumes at the next open) */
    for (wreq *r = st->cjob_waiters; r; r = r->next)
        r->rc = ck_error_set(&r->err, CK_E_UNAVAILABLE, "store closing");
    pthread_mutex_unlock(&st->qmu);
    wake(st, st->cjob_waiters);
    st->cjob_waiters = NULL;
    return NULL;
}

/* Queue a request for the writer; -1 if the store is closing. */
static int enqueue(sqlite_store *st, wreq *r, ck_error **err)
{
    pthread_mutex_lock(&st->qmu);
    if (st->stopping) {
        pthread_mutex_unlock(&st->qmu);
        return ck_error_set(err, CK_E_UNAVAILABLE, "store is closed");
    }
    r->next = NULL;
    if (st->qtail)
        st->qtail->next = r;
    else
        st->qhead = r;
    st->qtail = r;
    if (++st->qlen >= GATHER_MAX || !st->gathering)
        pthread_cond_signal(&st->qcond);
    pthread_mutex_unlock(&st->qmu);
    return 0;
}

/* Queue a request and wait until the writer has committed (or failed) it. */
static int submit(sqlite_store *st, wreq *r, ck_error **err)
{
    sem_init(&r->done, 0, 0);
    if (enqueue(st, r, err) < 0) {
        sem_destroy(&r->done);
        return -1;
    }
    while (sem_wait(&r->done) < 0 && errno == EINTR)
        ;
    sem_destroy(&r->done);
    if (r->rc < 0) {
        if (err) {
            ck_error_free(*err);
            *err = r->err;
        } else {
            ck_error_free(r->err);
        }
        return -1;
    }
    return 0;
}

/* ---- checkpointer and auto-compactor ---------------------------------------------------------- */

/* Runs on the writer after each commit; `pages` counts every frame since the WAL last restarted
 * (a checkpoint does not lower it).  Past CKPT_PAGES the checkpointer is woken once per CKPT_STEP
 * new frames, not after every commit: each checkpoint ends with an fsync of the database file, so
 * waking it per commit cost an fsync (and two context switches) per commit; CKPT_STEP keeps the
 * tail the writer copies itself at 3 * CKPT_PAGES short. */
static int wal_hook(void *ctx, sqlite3 *db, const char *name, int pages)
{
    sqlite_store *st = ctx;
    if (pages < st->ckpt_mark)
        st->ckpt_mark = 0;   /* the WAL restarted */
    if (pages >= 3 * CKPT_PAGES) {
        /* under steady writes the background checkpoint never catches the WAL's end, so the
         * WAL never restarts; finish the (short) tail here, between two commits */
        sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    } else if (pages >= CKPT_PAGES && pages - st->ckpt_mark >= CKPT_STEP) {
        st->ckpt_mark = pages;
        pthread_mutex_lock(&st->cmu);
        st->ckpt_wanted = true;
        pthread_cond_broadcast(&st->ccond);
        pthread_mutex_unlock(&st->cmu);
    }
    return SQLITE_OK;
}

/* Copies the WAL back into the database file off the writer's path, so commits never wait for
 * a checkpoint. */
static void *ckpt_main(void *arg)
{
    sqlite_store *st = arg;
    pthread_setname_np(pthread_self(), "sqlite-ckpt");
    pthread_mutex_lock(&st->cmu);
    for (;;) {
        while (!st->ckpt_wanted && !st->cstop)
            pthread_cond_wait(&st->ccond, &st->cmu);
        if (st->cstop)
            break;
        st->ckpt_wanted = false;
        pthread_mutex_unlock(&st->cmu);
        int log = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2(st->cdb, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            log_warn("sqlite store: checkpoint: %s", sqlite3_errmsg(st->cdb));
        pthread_mutex_lock(&st->cmu);
    }
    pthread_mutex_unlock(&st->cmu);
    return NULL;
}

static void *comp_main(void *arg)
{
    sqlite_store *st = arg;
    pthread_setname_np(pthread_self(), "sqlite-compact");
    pthread_mutex_lock(&st->cmu);
    for (;;) {
        int64_t ms = st->comp_interval_ms > 0 ? st->comp_interval_ms : 3600 * 1000;
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += ms / 1000;
        dl.tv_nsec += (ms % 1000) * 1000000;
        if (dl.tv_nsec >= 1000000000) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000;
        }
        int rc = 0, gen = st->comp_gen;
        while (!st->cstop && rc != ETIMEDOUT && gen == st->comp_gen)
            rc = pthread_cond_timedwait(&st->ccond, &st->cmu, &dl);
        if (st->cstop)
            break;
        if (gen != st->comp_gen || st->comp_interval_ms <= 0)
            continue;
        int64_t keep = st->comp_keep;
        pthread_mutex_unlock(&st->cmu);
        pthread_mutex_lock(&st->hmu);
        int64_t target = st->published - keep;
        pthread_mutex_unlock(&st->hmu);
        if (target > atomic_load(&st->compact_rev)) {
            ck_error *e = NULL;
            if (ck_store_compact(&st->base, target, &e) < 0) {
                log_warn("sqlite store: automatic compaction: %s", e->msg);
                ck_error_free(e);
            }
        }
        pthread_mutex_lock(&st->cmu);
    }
    pthread_mutex_unlock(&st->cmu);
    return NULL;
}

/* ---- ops: writes ------------------------------------------------------------------------------ */

static int check_value(const void *val, size_t len, ck_error **err)
{
    if (len > MAX_VALUE)
        return ck_error_set(err, CK_E_TOO_LARGE, "value of %zu bytes is over the %d byte limit",
                            len, MAX_VALUE);
    if (len && !val)
        return ck_error_set(err, CK_E_INVALID, "NULL value");
    return 0;
}

static int s_create(ck_store *s, const char *key, const void *val, size_t len, int64_t *rev,
                    ck_error **err)
{
    if (check_key(key, err) < 0 || check_value(val, len, err) < 0)
        return -1;
    wreq r = {.kind = OP_CREATE, .key = key, .val = val, .len = len};
    if (submit((sqlite_store *)s, &r, err) < 0)
        return -1;
    if (rev)
        *rev = r.rev;
    return 0;
}

static int s_update(ck_store *s, const char *key, const void *val, size_t len,
                    int64_t expected_rev, int64_t *rev, ck_error **err)
{
    if (check_key(key, err) < 0 || check_value(val, len, err) < 0)
        return -1;
    wreq r = {.kind = OP_UPDATE, .key = key, .val = val, .len = len, .expected = expected_rev};
    if (submit((sqlite_store *)s, &r, err) < 0)
        return -1;
    if (rev)
        *rev = r.rev;
    return 0;
}

static int s_delete(ck_store *s, const char *key, int64_t expected_rev, ck_kv *prev,
                    int64_t *rev, ck_error **err)
{
    if (check_key(key, err) < 0)
        return -1;
    if (prev)
        memset(prev, 0, sizeof *prev);
    wreq r = {.kind = OP_DELETE, .key = key, .expected = expected_rev, .prev = prev};
    if (submit((sqlite_store *)s, &r, err) < 0)
        return -1;
    if (rev)
        *rev = r.rev;
    return 0;
}

/* The writer completes it (wake); the caller's thread only when it is refused up front. */
static void s_write_async(ck_store *s, const ck_write *w, ck_write_done_cb done, void *ctx)
{
    ck_error *err = NULL;
    if (check_key(w->key, &err) < 0 ||
        (w->kind != CK_STORE_DELETE && check_value(w->val, w->len, &err) < 0))
        return done(ctx, 0, err);
    wreq *r = xcalloc(1, sizeof *r);
    r->kind = w->kind == CK_STORE_CREATE ? OP_CREATE
              : w->kind == CK_STORE_UPDATE ? OP_UPDATE : OP_DELETE;
    r->key = w->key;
    r->val = w->val;
    r->len = w->len;
    r->expected = w->kind == CK_STORE_CREATE ? 0 : w->expected;
    r->done_cb = done;
    r->done_ctx = ctx;
    if (enqueue((sqlite_store *)s, r, &err) < 0) {
        free(r);
        done(ctx, 0, err);
    }
}

static int s_compact(ck_store *s, int64_t revision, ck_error **err)
{
    if (revision <= 0)
        return ck_error_set(err, CK_E_INVALID, "compact: bad revision %lld", (long long)revision);
    wreq r = {.kind = OP_COMPACT, .expected = revision};
    return submit((sqlite_store *)s, &r, err);
}

/* ---- ops: reads ------------------------------------------------------------------------------- */

static int s_current_revision(ck_store *s, int64_t *rev, ck_error **err)
{
    sqlite_store *st = (sqlite_store *)s;
    pthread_mutex_lock(&st->hmu);
    *rev = st->published;
    pthread_mutex_unlock(&st->hmu);
    return 0;
}

static int fetch_value(rconn *c, int64_t rev, ck_kv *kv, ck_error **err)
{
    sqlite3_bind_int64(c->value, 1, rev);
    int rc = sqlite3_step(c->value);
    if (rc == SQLITE_ROW) {
        kv->value = ck__sqlite_col_dup(c->value, 0, &kv->value_len);
        rc = SQLITE_DONE;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_CORRUPT;
    }
    sqlite3_reset(c->value);
    if (rc != SQLITE_DONE)
        return sql_err(err, c->db, rc, "read value");
    return 0;
}

static int s_get(ck_store *s, const char *key, ck_kv *out, ck_error **err)
{
    sqlite_store *st = (sqlite_store *)s;
    if (check_key(key, err) < 0)
        return -1;
    memset(out, 0, sizeof *out);
    if (ck__kvcache_get(st->cache, key, out))
        return 0;
    rconn *c = ck__sqlite_pool_get(st);
    int ret = -1;
    int64_t snap_rev = 0, compacted = 0;
    if (ck__sqlite_read_begin(c, &snap_rev, &compacted, err) < 0)
        goto out;
    sqlite3_bind_text(c->latest, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(c->latest);
    if (rc == SQLITE_ROW && sqlite3_column_int(c->latest, 1) == 0) {
        out->mod_revision = sqlite3_column_int64(c->latest, 0);
        out->create_revision = sqlite3_column_int64(c->latest, 2);
        sqlite3_reset(c->latest);
        if (fetch_value(c, out->mod_revision, out, err) == 0) {
            out->key = xstrdup(key);
            ret = 0;
        }
    } else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        sqlite3_reset(c->latest);
        ck_error_set(err, CK_E_NOT_FOUND, "%s not found", key);
    } else {
        sql_err(err, c->db, rc, "get");
        sqlite3_reset(c->latest);
    }
out:
    sqlite3_clear_bindings(c->latest);
    ck__sqlite_pool_put(st, c);
    if (ret == 0)
        ck__kvcache_fill(st->cache, out, snap_rev);
    return ret;
}

static int s_list(ck_store *s, const char *prefix, const ck_list_opts *opts, ck_list *out,
                  ck_error **err)
{
    sqlite_store *st = (sqlite_store *)s;
    static const ck_list_opts none;
    if (!opts)
        opts = &none;
    if (!prefix)
        return ck_error_set(err, CK_E_INVALID, "list: NULL prefix");
    memset(out, 0, sizeof *out);
    cleanup_free char *end = ck__sqlite_prefix_end(prefix);
    rconn *c = ck__sqlite_pool_get(st);
    int64_t cur, compacted, rev = opts->revision;
    int ret = -1;
    size_t cap = 0;
    if (ck__sqlite_read_begin(c, &cur, &compacted, err) < 0)
        goto out;
    if (rev == 0) {
        rev = cur;
    } else if (rev < 0) {
        ck_error_set(err, CK_E_INVALID, "list at negative revision %lld", (long long)rev);
        goto out;
    } else if (rev > cur) {
        /* as upstream: a resourceVersion from the future is "too large" (504, retry later) */
        ck_error_set(err, CK_E_TIMEOUT, "Too large resource version: %lld, current: %lld",
                     (long long)rev, (long long)cur);
        goto out;
    } else if (rev < compacted) {
        ck_error_set(err, CK_E_EXPIRED, "list at revision %lld: compacted up to %lld",
                     (long long)rev, (long long)compacted);
        goto out;
    }
    bool after = opts->start_after && strcmp(opts->start_after, prefix) >= 0;
    sqlite3_stmt *q = after ? c->list_gt : c->list_ge;
    sqlite3_bind_text(q, 1, after ? opts->start_after : prefix, -1, SQLITE_STATIC);
    ck__sqlite_bind_end(q, 2, end);
    sqlite3_bind_int64(q, 3, rev);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (sqlite3_column_int(q, 2))
            continue;   /* deleted at that revision */
        if (opts->count_only || (opts->limit && out->n >= opts->limit)) {
            out->remaining++;
            continue;
        }
        if (out->n == cap) {
            cap = cap ? cap * 2 : 64;
            out->items = xrealloc(out->items, cap * sizeof *out->items);
        }
        ck_kv *kv = &out->items[out->n++];
        memset(kv, 0, sizeof *kv);
        kv->key = ck__sqlite_col_dup(q, 0, NULL);
        kv->mod_revision = sqlite3_column_int64(q, 1);
        kv->create_revision = sqlite3_column_int64(q, 3);
        if (!opts->keys_only && fetch_value(c, kv->mod_revision, kv, err) < 0) {
            sqlite3_reset(q);
            goto out;
        }
    }
    sqlite3_reset(q);
    if (rc != SQLITE_DONE) {
        sql_err(err, c->db, rc, "list");
        goto out;
    }
    out->more = !opts->count_only && out->remaining > 0;
    out->revision = rev;
    ret = 0;
out:
    sqlite3_clear_bindings(c->list_ge);
    sqlite3_clear_bindings(c->list_gt);
    ck__sqlite_pool_put(st, c);
    if (ret < 0)
        ck_list_free(out);
    return ret;
}

/* ---- open / close ----------------------------------------------------------------------------- */

/* Refuse, before SQLite opens it, an existing file that is not an SQLite database of ours. */
static int check_header(int fd, const char *path, bool *fresh, ck_error **err)
{
    struct stat sb;
    if (fstat(fd, &sb) < 0)
        return ck_error_sys(err, CK_E_IO, "stat %s", path);
    if (!S_ISREG(sb.st_mode))
        return ck_error_set(err, CK_E_CORRUPT, "%s is not a regular file", path);
    *fresh = sb.st_size == 0;
    if (*fresh)
        return 0;
    unsigned char h[100];
    ssize_t n = pread(fd, h, sizeof h, 0);
    if (n < 0)
        return ck_error_sys(err, CK_E_IO, "read %s", path);
    if (n < (ssize_t)sizeof h || memcmp(h, "SQLite format 3", 16) != 0)
        return ck_error_set(err, CK_E_CORRUPT, "%s is not a SQLite database (refusing to touch "
                            "it; move it away to start a new store)", path);
    uint32_t app = (uint32_t)h[68] << 24 | (uint32_t)h[69] << 16 | (uint32_t)h[70] << 8 | h[71];
    if (app != APP_ID)
        return ck_error_set(err, CK_E_CORRUPT, "%s is a SQLite database of another application "
                            "(application_id 0x%08x, want 0x%08x); refusing to touch it", path,
                            app, APP_ID);
    return 0;
}

static void env_compaction(sqlite_store *st)
{
    st->comp_interval_ms = 60 * 1000;
    st->comp_keep = 10000;
    const char *iv = getenv("CKUBE_SQLITE_COMPACT_INTERVAL");
    if (iv && *iv) {
        long ms = strcmp(iv, "0") == 0 ? 0 : ck_parse_duration_ms(iv);
        if (ms >= 0)
            st->comp_interval_ms = ms;
        else
            log_warn("sqlite store: ignoring bad CKUBE_SQLITE_COMPACT_INTERVAL=%s", iv);
    }
    const char *kp = getenv("CKUBE_SQLITE_COMPACT_KEEP");
    if (kp && *kp) {
        char *e;
        long long k = strtoll(kp, &e, 10);
        if (*e == '\0' && k >= 1)
            st->comp_keep = k;
        else
            log_warn("sqlite store: ignoring bad CKUBE_SQLITE_COMPACT_KEEP=%s", kp);
    }
}

/* CKUBE_SQLITE_CACHE_BYTES: the value cache's bound in bytes (0 turns it off) */
static size_t env_cache_bytes(void)
{
    const char *v = getenv("CKUBE_SQLITE_CACHE_BYTES");
    if (!v || !*v)
        return KVCACHE_DEFAULT_BYTES;
    char *e;
    long long n = strtoll(v, &e, 10);
    if (*e != '\0' || n < 0) {
        log_warn("sqlite store: ignoring bad CKUBE_SQLITE_CACHE_BYTES=%s", v);
        return KVCACHE_DEFAULT_BYTES;
    }
    return (size_t)n;
}

/* CKUBE_SQLITE_COMMIT_DELAY_US: how long a commit may wait for more writes when writers are
 * concurrent (microseconds, at most 100 ms; 0 turns gathering off) */
static int64_t env_gather_us(void)
{
    const char *v = getenv("CKUBE_SQLITE_COMMIT_DELAY_US");
    if (!v || !*v)
        return GATHER_DEFAULT_US;
    char *e;
    long long n = strtoll(v, &e, 10);
    if (*e != '\0' || n < 0 || n > 100000) {
        log_warn("sqlite store: ignoring bad CKUBE_SQLITE_COMMIT_DELAY_US=%s", v);
        return GATHER_DEFAULT_US;
    }
    return n;
}

static int open_writer(sqlite_store *st, bool fresh, ck_error **err)
{
    if (open_conn(st->path, true, &st->wdb, err) < 0)
        return -1;
    if (fresh) {
        /* header fields and schema land in the main file before WAL mode is switched on */
        char *sql = xasprintf("PRAGMA page_size = 4096; PRAGMA auto_vacuum = INCREMENTAL;"
                              "PRAGMA application_id = %d; BEGIN; %s COMMIT;", APP_ID, schema_sql);
        int rc = exec(st->wdb, sql, err);
        free(sql);
        if (rc < 0)
            return -1;
    }
    int64_t version = 0;
    if (query_i64(st->wdb, "SELECT value FROM meta WHERE name = 'schema_version'", &version,
                  err) < 0) {
        if (err && *err && (*err)->code == CK_E_IO)
            (*err)->code = CK_E_CORRUPT;   /* ours by its id, but not our schema */
        return -1;
    }
    if (version != SCHEMA_VERSION)
        return ck_error_set(err, CK_E_CORRUPT, "schema version %lld, this ckube knows %d",
                            (long long)version, SCHEMA_VERSION);
    sqlite3_stmt *jm = NULL;
    int rc = sqlite3_prepare_v2(st->wdb, "PRAGMA journal_mode = WAL", -1, &jm, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(jm)) == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(jm, 0);
        rc = mode && strcmp(mode, "wal") == 0 ? SQLITE_OK : SQLITE_CANTOPEN;
    }
    sqlite3_finalize(jm);
    if (rc != SQLITE_OK)
        return sql_err(err, st->wdb, rc, "enable WAL");
    int64_t cur = 0, crev = 0, cdone = 0;
    if (exec(st->wdb, "PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;"
                      "PRAGMA temp_store = MEMORY;"
                      "PRAGMA journal_size_limit = 67108864; PRAGMA cache_size = -16000", err) < 0 ||
        query_i64(st->wdb, "SELECT " SQL_CURRENT, &cur, err) < 0 ||
        query_i64(st->wdb, "SELECT value FROM meta WHERE name = 'compact_rev'", &crev, err) < 0 ||
        query_i64(st->wdb, "SELECT value FROM meta WHERE name = 'compact_done'", &cdone, err) < 0)
        return -1;
    st->rev = cur;
    st->published = st->rev;
    atomic_store(&st->compact_rev, crev);
    st->cjob_done = cdone;
    st->cjob_target = crev;   /* an interrupted compaction resumes */
    if (prepare(st->wdb, SQL_LATEST, &st->w_latest, err) < 0 ||
        prepare(st->wdb, SQL_VALUE, &st->w_value, err) < 0 ||
        prepare(st->wdb, "INSERT INTO kv (rev, key, create_rev, prev_rev, deleted, value)"
                         " VALUES (?1, ?2, ?3, ?4, ?5, ?6)", &st->w_insert, err) < 0 ||
        prepare(st->wdb, "UPDATE meta SET value = ?1 WHERE name = ?2", &st->w_setmeta, err) < 0 ||
        prepare(st->wdb, "BEGIN IMMEDIATE", &st->w_begin, err) < 0 ||
        prepare(st->wdb, "COMMIT", &st->w_commit, err) < 0 ||
        /* rows superseded by a newer row of the same key inside (?1, ?2] */
        prepare(st->wdb, "DELETE FROM kv WHERE rev IN (SELECT o.rev FROM"
                         " (SELECT key, MAX(rev) AS m FROM kv WHERE rev > ?1 AND rev <= ?2"
                         "  GROUP BY key) t JOIN kv o ON o.key = t.key AND o.rev < t.m)",
                &st->w_compact_old, err) < 0 ||
        /* then the tombstones left in (?1, ?2] */
        prepare(st->wdb, "DELETE FROM kv WHERE rev > ?1 AND rev <= ?2 AND deleted = 1",
                &st->w_compact_tomb, err) < 0)
        return -1;
    sqlite3_wal_hook(st->wdb, wal_hook, st);
    return 0;
}

static void s_close(ck_store *s);

/* Stores open in this process, by file identity.  A second open of the same file here must not
 * even open() it: closing that extra descriptor would drop the POSIX locks SQLite holds on the
 * file for the first store. */
static pthread_mutex_t open_mu = PTHREAD_MUTEX_INITIALIZER;
typedef struct open_file {
    dev_t dev;
    ino_t ino;
    pid_t pid;                /* a forked child inherits the list but not the stores */
    struct open_file *next;
} open_file;
static open_file *open_files;

static bool is_open_here(dev_t dev, ino_t ino)
{
    for (open_file *o = open_files; o; o = o->next)
        if (o->dev == dev && o->ino == ino && o->pid == getpid())
            return true;
    return false;
}

static void unregister_open(dev_t dev, ino_t ino)
{
    pthread_mutex_lock(&open_mu);
    for (open_file **p = &open_files; *p; p = &(*p)->next) {
        if ((*p)->dev == dev && (*p)->ino == ino) {
            open_file *o = *p;
            *p = o->next;
            free(o);
            break;
        }
    }
    pthread_mutex_unlock(&open_mu);
}

static ck_store *open_locked(const char *path, ck_error **err);

/* No bulk page-cache allocation per connection (SQLite's default carves 20 pages, ~87 KiB, for
 * each of our six connections up front): pages are allocated as they are read.  Must precede
 * sqlite3_initialize; if SQLite was already initialized by someone else this is a no-op. */
static void sqlite_global_config(void)
{
    sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
}

ck_store *ck_store_open_sqlite(const char *path, ck_error **err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sqlite_global_config);
    if (!path || !*path) {
        ck_error_set(err, CK_E_INVALID, "sqlite store: empty path");
        return NULL;
    }
    pthread_mutex_lock(&open_mu);
    ck_store *s = open_locked(path, err);
    pthread_mutex_unlock(&open_mu);
    return s;
}

static ck_store *open_locked(const char *path, ck_error **err)
{
    struct stat sb;
    bool existed = stat(path, &sb) == 0;
    if (existed && is_open_here(sb.st_dev, sb.st_ino)) {
        ck_error_set(err, CK_E_IO, "sqlite store: %s is in use by this process", path);
        return NULL;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        ck_error_sys(err, CK_E_IO, "sqlite store: open %s", path);
        return NULL;
    }
    /* one process at a time: two writers would each count revisions on their own */
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        ck_error_sys(err, CK_E_IO, "sqlite store: %s is in use by another process", path);
        close(fd);
        return NULL;
    }
    bool fresh = false;
    if (check_header(fd, path, &fresh, err) < 0 || fstat(fd, &sb) < 0) {
        if (err && !*err)
            ck_error_sys(err, CK_E_IO, "stat %s", path);
        ck_error_wrap(err, "sqlite store");
        close(fd);
        return NULL;
    }
    sqlite_store *st = xcalloc(1, sizeof *st);
    st->dev = sb.st_dev;
    st->ino = sb.st_ino;
    st->base.ops = &sqlite_ops;
    st->path = xstrdup(path);
    st->lock_fd = fd;   /* held (and its lock) until after SQLite closed the file */
    pthread_mutex_init(&st->qmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);   /* gather() waits on it with a timeout */
    pthread_cond_init(&st->qcond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&st->hmu, NULL);
    pthread_cond_init(&st->hcond, NULL);
    pthread_mutex_init(&st->pmu, NULL);
    pthread_cond_init(&st->pcond, NULL);
    pthread_mutex_init(&st->cmu, NULL);
    pthread_cond_init(&st->ccond, NULL);
    env_compaction(st);
    st->gather_us = env_gather_us();
    if (open_writer(st, fresh, err) < 0)
        goto fail;
    st->cache = ck__kvcache_new(env_cache_bytes(), st->rev);
    for (int i = 0; i < N_READERS; i++)
        if (reader_init(&st->readers[i], path, err) < 0)
            goto fail;
    /* the checkpointer must have read the file once to know it is in WAL mode */
    if (open_conn(path, false, &st->cdb, err) < 0 ||
        exec(st->cdb, "PRAGMA synchronous = FULL; SELECT count(*) FROM meta", err) < 0)
        goto fail;
    int rc;
    if ((rc = pthread_create(&st->writer, NULL, writer_main, st)) != 0)
        goto fail_thread;
    st->writer_started = true;
    if ((rc = pthread_create(&st->ckpt_th, NULL, ckpt_main, st)) != 0)
        goto fail_thread;
    st->ckpt_started = true;
    if ((rc = pthread_create(&st->comp_th, NULL, comp_main, st)) != 0)
        goto fail_thread;
    st->comp_started = true;
    st->opened = true;
    open_file *o = xcalloc(1, sizeof *o);
    o->dev = st->dev;
    o->ino = st->ino;
    o->pid = getpid();
    o->next = open_files;
    open_files = o;
    return &st->base;

fail_thread:
    errno = rc;
    ck_error_sys(err, CK_E_INTERNAL, "start thread");
fail:
    ck_error_wrap(err, "sqlite store %s", path);
    s_close(&st->base);
    if (!existed && fresh) {   /* do not leave a half-made store behind */
        static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
        for (size_t i = 0; i < ARRAY_SIZE(sfx); i++) {
            char *p = xasprintf("%s%s", path, sfx[i]);
            unlink(p);
            free(p);
        }
    }
    return NULL;
}

static void s_close(ck_store *s)
{
    sqlite_store *st = (sqlite_store *)s;
    if (!st)
        return;
    pthread_mutex_lock(&st->cmu);
    st->cstop = true;
    pthread_cond_broadcast(&st->ccond);
    pthread_mutex_unlock(&st->cmu);
    if (st->comp_started)
        pthread_join(st->comp_th, NULL);
    ck__sqlite_watch_close_all(st);
    pthread_mutex_lock(&st->qmu);
    st->stopping = true;
    pthread_cond_signal(&st->qcond);
    pthread_mutex_unlock(&st->qmu);
    if (st->writer_started)
        pthread_join(st->writer, NULL);
    if (st->ckpt_started)
        pthread_join(st->ckpt_th, NULL);
    ck__kvcache_free(st->cache);
    free(st->inl_batch);
    for (int i = 0; i < N_READERS; i++)
        reader_close(&st->readers[i]);
    sqlite3_close(st->cdb);
    sqlite3_stmt *ws[] = {st->w_latest, st->w_value, st->w_insert, st->w_setmeta,
                          st->w_compact_old, st->w_compact_tomb, st->w_begin, st->w_commit};
    for (size_t i = 0; i < ARRAY_SIZE(ws); i++)
        sqlite3_finalize(ws[i]);
    if (st->wdb && st->opened) {
        sqlite3_wal_hook(st->wdb, NULL, NULL);
        /* fold the WAL back into the file so a closed store is one file */
        sqlite3_wal_checkpoint_v2(st->wdb, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    }
    sqlite3_close(st->wdb);   /* after a failed open: no checkpoint, the file is left as found */
    if (st->lock_fd >= 0)
        close(st->lock_fd);
    if (st->opened)
        unregister_open(st->dev, st->ino);
    pthread_mutex_destroy(&st->qmu);
    pthread_cond_destroy(&st->qcond);
    pthread_mutex_destroy(&st->hmu);
    pthread_cond_destroy(&st->hcond);
    pthread_mutex_destroy(&st->pmu);
    pthread_cond_destroy(&st->pcond);
    pthread_mutex_destroy(&st->cmu);
    pthread_cond_destroy(&st->ccond);
    free(st->path);
    free(st);
}

/* ---- sqlite-only API (sqlite.h) --------------------------------------------------------------- */

int ck_store_sqlite_set_compaction(ck_store *s, int64_t interval_ms, int64_t keep_revisions,
                                   ck_error **err)
{
    sqlite_store *st = as_sqlite(s, err);
    if (!st)
        return -1;
    if (keep_revisions < 1)
        return ck_error_set(err, CK_E_INVALID, "keep_revisions must be at least 1");
    pthread_mutex_lock(&st->cmu);
    st->comp_interval_ms = interval_ms > 0 ? interval_ms : 0;
    st->comp_keep = keep_revisions;
    st->comp_gen++;
    pthread_cond_broadcast(&st->ccond);   /* restart the timer with the new interval */
    pthread_mutex_unlock(&st->cmu);
    return 0;
}

int ck_store_sqlite_set_notify_hooks(ck_store *s, void (*begin)(void), void (*end)(void),
                                     ck_error **err)
{
    sqlite_store *st = as_sqlite(s, err);
    if (!st)
        return -1;
    pthread_mutex_lock(&st->qmu);
    st->notify_begin = begin && end ? begin : NULL;   /* both or neither */
    st->notify_end = begin && end ? end : NULL;
    pthread_mutex_unlock(&st->qmu);
    return 0;
}

int ck_store_sqlite_stats(ck_store *s, ck_sqlite_stats *out, ck_error **err)
{
    sqlite_store *st = as_sqlite(s, err);
    if (!st)
        return -1;
    out->writes = atomic_load(&st->st_writes);
    out->commits = atomic_load(&st->st_commits);
    out->max_batch = atomic_load(&st->st_max_batch);
    out->compactions = atomic_load(&st->st_compactions);
    out->watch_resyncs = atomic_load(&st->st_resyncs);
    out->watch_inline = atomic_load(&st->st_inline);
    out->watch_queued = atomic_load(&st->st_queued);
    uint64_t hits, misses;
    size_t bytes;
    ck__kvcache_stats(st->cache, &hits, &misses, &bytes);
    out->cache_hits = (int64_t)hits;
    out->cache_misses = (int64_t)misses;
    out->cache_bytes = (int64_t)bytes;
    return 0;
}

static const ck_store_ops sqlite_ops = {
    .name = "sqlite",
    .create = s_create,
    .get = s_get,
    .update = s_update,
    .delete = s_delete,
    .list = s_list,
    .current_revision = s_current_revision,
    .compact = s_compact,
    .watch = ck__sqlite_watch,
    .watch_cancel = ck__sqlite_watch_cancel,
    .close = s_close,
    .write_async = s_write_async,
    .watch_inline = ck__sqlite_watch_inline,
};
