/* sqlite_cache.c - the SQLite store's cache of current values (see sqlite_int.h, docs/store.md).
 *
 * Why: a read connection's page cache is thrown away whenever the WAL changed since its last
 * read, which under a steady write load is every read; so every get re-read its B-tree pages
 * with pread (about ten a get) and took the WAL read lock (fcntl).  Most gets are of keys just
 * written (a pod bound, then its status patched; a Lease renewed), so the store keeps the newest
 * value of recently written or read keys in memory and answers get from it.
 *
 * Contract (the invariant: an entry is the newest committed state of its key, or absent):
 *  - Only the writer thread changes entries.  Before its COMMIT it removes the batch's keys and
 *    marks a batch in flight (`ck__kvcache_begin`): while the COMMIT runs, readers of those keys
 *    go to the file, which shows them the old or the new state, never one then the other.  After
 *    the COMMIT and before any caller is acknowledged or any watcher told, it stores the new
 *    values (`ck__kvcache_apply`), or only clears the mark if the COMMIT failed
 *    (`ck__kvcache_abort`).
 *  - A reader that missed may add what it read (`ck__kvcache_fill`) only if nothing was committed
 *    since its snapshot: no batch in flight and `snap_rev` (the current revision in its snapshot)
 *    equal to the last applied revision.  Otherwise the value may be stale and is dropped.
 *  - Bounded by bytes: the least recently used entries go first.  max_bytes 0: no cache.
 *  - One mutex; values are copied in and out under it (a few KiB).
 */
#include "store/sqlite_int.h"
#include "lib/htab.h"
#include "lib/util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct kvent {
    ck_hnode hn;                    /* in the table, by key (hn.klen: the key's length) */
    struct kvent *prev, *next;      /* LRU list, head = oldest */
    int64_t create_rev, mod_rev;
    size_t vlen;
    char *val;                      /* vlen bytes + NUL */
    char key[];                     /* klen bytes + NUL */
} kvent;

struct kvcache {
    pthread_mutex_t mu;
    ck_htab tab;
    size_t bytes, max_bytes;
    kvent *head, *tail;
    int64_t applied;                /* last revision applied by the writer */
    bool inflight;                  /* a batch between begin and apply/abort */
    uint64_t hits, misses;
};

#define ENT_OVERHEAD (sizeof(kvent) + 32)   /* plus malloc headers, roughly */

static size_t ent_bytes(const kvent *e)
{
    return ENT_OVERHEAD + e->hn.klen + e->vlen;
}

kvcache *ck__kvcache_new(size_t max_bytes, int64_t applied)
{
    if (!max_bytes)
        return NULL;
    kvcache *c = xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    ck_htab_init(&c->tab, 1024);
    c->max_bytes = max_bytes;
    c->applied = applied;
    return c;
}

void ck__kvcache_free(kvcache *c)
{
    if (!c)
        return;
    for (kvent *e = c->head, *next; e; e = next) {
        next = e->next;
        free(e->val);
        free(e);
    }
    ck_htab_free(&c->tab);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static kvent *find(kvcache *c, const char *key, size_t klen, uint64_t h)
{
    ck_hnode *n = ck_htab_find(&c->tab, key, klen, h);
    return n ? ck_htab_entry(n, kvent, hn) : NULL;
}

static void lru_unlink(kvcache *c, kvent *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_append(kvcache *c, kvent *e)
{
    e->prev = c->tail;
    e->next = NULL;
    if (c->tail)
        c->tail->next = e;
    else
        c->head = e;
    c->tail = e;
}

static void remove_ent(kvcache *c, kvent *e)
{
    ck_htab_del(&c->tab, &e->hn);
    lru_unlink(c, e);
    c->bytes -= ent_bytes(e);
    free(e->val);
    free(e);
}

/* Insert or replace under the lock; then evict the oldest down to the bound. */
static void upsert(kvcache *c, const char *key, const void *val, size_t vlen,
                   int64_t create_rev, int64_t mod_rev)
{
    size_t klen = strlen(key);
    uint64_t h = ck_htab_hash(key, klen);
    kvent *e = find(c, key, klen, h);
    if (ENT_OVERHEAD + klen + vlen > c->max_bytes / 4) {   /* huge values are not worth it */
        if (e)
            remove_ent(c, e);
        return;
    }
    char *v = xmalloc(vlen + 1);
    if (vlen)
        memcpy(v, val, vlen);
    v[vlen] = '\0';
    if (e) {
        c->bytes -= ent_bytes(e);
        free(e->val);
        lru_unlink(c, e);
    } else {
        e = xcalloc(1, sizeof *e + klen + 1);
        memcpy(e->key, key, klen + 1);
        ck_htab_add(&c->tab, &e->hn, e->key, klen, h);
    }
    e->val = v;
    e->vlen = vlen;
    e->create_rev = create_rev;
    e->mod_rev = mod_rev;
    c->bytes += ent_bytes(e);
    lru_append(c, e);
    while (c->bytes > c->max_bytes && c->head && c->head != e)
        remove_ent(c, c->head);
}

static void remove_key(kvcache *c, const char *key)
{
    size_t klen = strlen(key);
    kvent *e = find(c, key, klen, ck_htab_hash(key, klen));
    if (e)
        remove_ent(c, e);
}

void ck__kvcache_begin(kvcache *c, const kvcache_op *ops, size_t n)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < n; i++)
        remove_key(c, ops[i].key);
    c->inflight = true;
    pthread_mutex_unlock(&c->mu);
}

void ck__kvcache_abort(kvcache *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->inflight = false;
    pthread_mutex_unlock(&c->mu);
}

void ck__kvcache_apply(kvcache *c, const kvcache_op *ops, size_t n, int64_t applied)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < n; i++) {
        const kvcache_op *o = &ops[i];
        if (o->deleted)
            remove_key(c, o->key);
        else
            upsert(c, o->key, o->val, o->len, o->create_rev, o->mod_rev);
    }
    c->applied = applied;
    c->inflight = false;
    pthread_mutex_unlock(&c->mu);
}

int ck__kvcache_get(kvcache *c, const char *key, ck_kv *out)
{
    if (!c)
        return 0;
    size_t klen = strlen(key);
    uint64_t h = ck_htab_hash(key, klen);
    pthread_mutex_lock(&c->mu);
    kvent *e = find(c, key, klen, h);
    if (!e) {
        c->misses++;
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    c->hits++;
    out->value = xmalloc(e->vlen + 1);
    memcpy(out->value, e->val, e->vlen + 1);
    out->value_len = e->vlen;
    out->create_revision = e->create_rev;
    out->mod_revision = e->mod_rev;
    lru_unlink(c, e);
    lru_append(c, e);
    pthread_mutex_unlock(&c->mu);
    out->key = xmalloc(klen + 1);
    memcpy(out->key, key, klen + 1);
    return 1;
}

int ck__kvcache_value_at(kvcache *c, const char *key, int64_t mod_rev, char **val, size_t *len)
{
    if (!c)
        return 0;
    size_t klen = strlen(key);
    uint64_t h = ck_htab_hash(key, klen);
    pthread_mutex_lock(&c->mu);
    kvent *e = find(c, key, klen, h);
    int hit = e && e->mod_rev == mod_rev;
    if (hit) {
        *val = xmalloc(e->vlen + 1);
        memcpy(*val, e->val, e->vlen + 1);
        *len = e->vlen;
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

void ck__kvcache_fill(kvcache *c, const ck_kv *kv, int64_t snap_rev)
{
    if (!c)
        return;
    size_t klen = strlen(kv->key);
    uint64_t h = ck_htab_hash(kv->key, klen);
    pthread_mutex_lock(&c->mu);
    if (!c->inflight && c->applied == snap_rev && !find(c, kv->key, klen, h))
        upsert(c, kv->key, kv->value, kv->value_len, kv->create_revision, kv->mod_revision);
    pthread_mutex_unlock(&c->mu);
}

void ck__kvcache_stats(kvcache *c, uint64_t *hits, uint64_t *misses, size_t *bytes)
{
    *hits = *misses = 0;
    *bytes = 0;
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    *hits = c->hits;
    *misses = c->misses;
    *bytes = c->bytes;
    pthread_mutex_unlock(&c->mu);
}
