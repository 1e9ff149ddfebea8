/* Unit tests for store/watchcache: every case runs against each backend in `backends` (a small
 * in-memory fake store defined here, the real SQLite store, and a real etcd started for the group
 * by etcd_harness.h), always through a thin proxy store that can end the backend watch with an
 * injected error and make watch() fail on demand.  One more case stops and restarts the real etcd
 * under a live cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"
#include "store/store.h"
#include "store/watchcache.h"

#include "etcd_harness.h"

#define PODS "/registry/pods/"

/* ---------------------------------------------------------------------------------------------
 * The fake store: a revisioned map with full history, delivering watch events synchronously from
 * the writing thread while holding its lock (so they arrive in revision order).
 */
typedef struct fake_watch {
    struct fake_watch *next;
    char *prefix;
    ck_watch_cb cb;
    void *ctx;
} fake_watch;

typedef struct fake_store {
    ck_store base;
    pthread_mutex_t mu;
    int64_t rev, compacted;
    ck_event *hist;              /* every event, index = revision - 1 */
    size_t nhist;
    fake_watch *watches;
} fake_store;

static void copy_kv(ck_kv *d, const ck_kv *s)
{
    memset(d, 0, sizeof(*d));
    if (!s->key)
        return;
    d->key = xstrdup(s->key);
    d->value = xstrndup(s->value ? s->value : "", s->value_len);
    d->value_len = s->value_len;
    d->create_revision = s->create_revision;
    d->mod_revision = s->mod_revision;
}

/* The current kv of key, from history (NULL if absent). */
static const ck_kv *fake_cur(fake_store *f, const char *key)
{
    for (size_t i = f->nhist; i-- > 0;)
        if (!strcmp(f->hist[i].kv.key, key))
            return f->hist[i].type == CK_EVENT_PUT ? &f->hist[i].kv : NULL;
    return NULL;
}

/* Append one event under the lock and deliver it.  Returns the revision. */
static int64_t fake_write(fake_store *f, enum ck_event_type type, const char *key, const void *val,
                          size_t len)
{
    ck_kv prevkv = {0};
    const ck_kv *found = fake_cur(f, key);
    if (found)
        copy_kv(&prevkv, found);   /* history is about to move (realloc) */
    const ck_kv *cur = found ? &prevkv : NULL;
    f->hist = xrealloc(f->hist, (f->nhist + 1) * sizeof(*f->hist));
    ck_event *e = &f->hist[f->nhist++];
    memset(e, 0, sizeof(*e));
    e->type = type;
    e->revision = ++f->rev;
    e->created = type == CK_EVENT_PUT && !cur;
    e->kv.key = xstrdup(key);
    e->kv.value = xstrndup(val ? val : "", type == CK_EVENT_PUT ? len : 0);
    e->kv.value_len = type == CK_EVENT_PUT ? len : 0;
    e->kv.mod_revision = e->revision;
    e->kv.create_revision = cur ? cur->create_revision : e->revision;
    e->prev = prevkv;
    for (fake_watch *w = f->watches; w; w = w->next)
        if (!strncmp(key, w->prefix, strlen(w->prefix)))
            w->cb(w->ctx, e, 1, NULL);
    return e->revision;
}

static int fake_create(ck_store *s, const char *key, const void *val, size_t len, int64_t *rev,
                       ck_error **err)
{
    fake_store *f = (fake_store *)s;
    pthread_mutex_lock(&f->mu);
    int rc = 0;
    if (fake_cur(f, key))
        rc = ck_error_set(err, CK_E_EXISTS, "%s exists", key);
    else if (rev)
        *rev = fake_write(f, CK_EVENT_PUT, key, val, len);
    else
        fake_write(f, CK_EVENT_PUT, key, val, len);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int fake_get(ck_store *s, const char *key, ck_kv *out, ck_error **err)
{
    fake_store *f = (fake_store *)s;
    pthread_mutex_lock(&f->mu);
    const ck_kv *cur = fake_cur(f, key);
    if (cur)
        copy_kv(out, cur);
    pthread_mutex_unlock(&f->mu);
    return cur ? 0 : ck_error_set(err, CK_E_NOT_FOUND, "%s not found", key);
}

static int fake_update(ck_store *s, const char *key, const void *val, size_t len, int64_t exp,
                       int64_t *rev, ck_error **err)
{
    fake_store *f = (fake_store *)s;
    pthread_mutex_lock(&f->mu);
    const ck_kv *cur = fake_cur(f, key);
    int rc = 0;
    if (!cur)
        rc = ck_error_set(err, CK_E_NOT_FOUND, "%s not found", key);
    else if (exp && exp != cur->mod_revision)
        rc = ck_error_set(err, CK_E_CONFLICT, "%s changed", key);
    else {
        int64_t r = fake_write(f, CK_EVENT_PUT, key, val, len);
        if (rev)
            *rev = r;
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int fake_delete(ck_store *s, const char *key, int64_t exp, ck_kv *prev, int64_t *rev,
                       ck_error **err)
{
    fake_store *f = (fake_store *)s;
    pthread_mutex_lock(&f->mu);
    const ck_kv *cur = fake_cur(f, key);
    int rc = 0;
    if (!cur)
        rc = ck_error_set(err, CK_E_NOT_FOUND, "%s not found", key);
    else if (exp && exp != cur->mod_revision)
        rc = ck_error_set(err, CK_E_CONFLICT, "%s changed", key);
    else {
        if (prev)
            copy_kv(prev, cur);
        int64_t r = fake_write(f, CK_EVENT_DELETE, key, NULL, 0);
        if (rev)
            *rev = r;
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int fake_list(ck_store *s, const char *prefix, const ck_list_opts *o, ck_list *out,
                     ck_error **err)
{
    return ck_error_set(err, CK_E_INTERNAL, "fake store: list not implemented");
}

static int fake_current_revision(ck_store *s, int64_t *rev, ck_error **err)
{
    fake_store *f = (fake_store *)s;
    pthread_mutex_lock(&f->mu);
    *rev = f->rev;
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int fake_compact(ck_store *s, int64_t rev, ck_error **err)
{
    fake_store *f = (fake_store *)s;
    pthread_mutex_lock(&f->mu);
    if (rev > f->compacted)
        f->compacted = rev;
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int fake_watch_fn(ck_store *s, const char *prefix, int64_t after, ck_watch_cb cb, void *ctx,
                         ck_watch_handle **out, ck_error **err)
{
    fake_store *f = (fake_store *)s;
    pthread_mutex_lock(&f->mu);
    if (after && after < f->compacted) {
        pthread_mutex_unlock(&f->mu);
        return ck_error_set(err, CK_E_EXPIRED, "revision %lld compacted", (long long)after);
    }
    for (int64_t r = after + 1; after && r <= f->rev; r++) {
        ck_event *e = &f->hist[r - 1];
        if (!strncmp(e->kv.key, prefix, strlen(prefix)))
            cb(ctx, e, 1, NULL);
    }
    fake_watch *w = xcalloc(1, sizeof(*w));
    w->prefix = xstrdup(prefix);
    w->cb = cb;
    w->ctx = ctx;
    w->next = f->watches;
    f->watches = w;
    pthread_mutex_unlock(&f->mu);
    *out = (ck_watch_handle *)w;
    return 0;
}

static void fake_watch_cancel(ck_store *s, ck_watch_handle *h)
{
    fake_store *f = (fake_store *)s;
    pthread_mutex_lock(&f->mu);
    for (fake_watch **pp = &f->watches; *pp; pp = &(*pp)->next) {
        if (*pp == (fake_watch *)h) {
            fake_watch *w = *pp;
            *pp = w->next;
            free(w->prefix);
            free(w);
            break;
        }
    }
    pthread_mutex_unlock(&f->mu);
}

static void fake_close(ck_store *s)
{
    fake_store *f = (fake_store *)s;
    while (f->watches)
        fake_watch_cancel(s, (ck_watch_handle *)f->watches);
    for (size_t i = 0; i < f->nhist; i++)
        ck_event_free(&f->hist[i]);
    free(f->hist);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static const ck_store_ops fake_ops = {
    .name = "fake",
    .create = fake_create,
    .get = fake_get,
    .update = fake_update,
    .delete = fake_delete,
    .list = fake_list,
    .current_revision = fake_current_revision,
    .compact = fake_compact,
    .watch = fake_watch_fn,
    .watch_cancel = fake_watch_cancel,
    .close = fake_close,
};

static ck_store *open_fake(const char *dir, ck_error **err)
{
    fake_store *f = xcalloc(1, sizeof(*f));
    f->base.ops = &fake_ops;
    pthread_mutex_init(&f->mu, NULL);
    return &f->base;
}

static ck_store *open_sqlite(const char *dir, ck_error **err)
{
    cleanup_free char *path = xasprintf("%s/store.db", dir);
    return ck_store_open_sqlite(path, err);
}

/* The group's etcd; each test starts from an empty /registry/ (revisions carry on). */
static etcd_proc test_etcd;

static ck_store *open_etcd(const char *dir, ck_error **err)
{
    ck_store *s = ck_store_open_etcd(test_etcd.url, err);
    if (!s)
        return NULL;
    ck_list l = {0};
    ck_list_opts o = {.keys_only = true};
    if (ck_store_list(s, "/registry/", &o, &l, err) < 0) {
        ck_store_close(s);
        return NULL;
    }
    for (size_t i = 0; i < l.n; i++)
        if (ck_store_delete(s, l.items[i].key, 0, NULL, NULL, err) < 0) {
            ck_list_free(&l);
            ck_store_close(s);
            return NULL;
        }
    ck_list_free(&l);
    return s;
}

static int etcd_group_setup(void **state)
{
    return etcd_harness_start(&test_etcd) < 0 ? -1 : 0;
}

static int etcd_group_teardown(void **state)
{
    etcd_harness_destroy(&test_etcd);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The proxy store: forwards everything to an inner store; its watches can be ended with an
 * injected error (as etcd going away would), and the next N watch() calls can be made to fail.
 */
typedef struct proxy_watch {
    struct proxy_watch *next;
    ck_watch_handle *inner;      /* NULL once ended by injection */
    ck_watch_cb cb;
    void *ctx;
} proxy_watch;

typedef struct proxy_store {
    ck_store base;
    ck_store *inner;
    pthread_mutex_t mu;
    proxy_watch *watches;
    int fail_watches;            /* fail this many watch() calls ... */
    enum ck_error_code fail_code;    /* ... with this code */
    atomic_int watch_calls;
} proxy_store;

#define PX(s) ((proxy_store *)(s))

static int px_create(ck_store *s, const char *k, const void *v, size_t n, int64_t *rev, ck_error **err)
{ return ck_store_create(PX(s)->inner, k, v, n, rev, err); }
static int px_get(ck_store *s, const char *k, ck_kv *out, ck_error **err)
{ return ck_store_get(PX(s)->inner, k, out, err); }
static int px_update(ck_store *s, const char *k, const void *v, size_t n, int64_t exp, int64_t *rev,
                     ck_error **err)
{ return ck_store_update(PX(s)->inner, k, v, n, exp, rev, err); }
static int px_delete(ck_store *s, const char *k, int64_t exp, ck_kv *prev, int64_t *rev, ck_error **err)
{ return ck_store_delete(PX(s)->inner, k, exp, prev, rev, err); }
static int px_list(ck_store *s, const char *p, const ck_list_opts *o, ck_list *out, ck_error **err)
{ return ck_store_list(PX(s)->inner, p, o, out, err); }
static int px_current_revision(ck_store *s, int64_t *rev, ck_error **err)
{ return ck_store_current_revision(PX(s)->inner, rev, err); }
static int px_compact(ck_store *s, int64_t rev, ck_error **err)
{ return ck_store_compact(PX(s)->inner, rev, err); }

static int px_watch(ck_store *s, const char *prefix, int64_t after, ck_watch_cb cb, void *ctx,
                    ck_watch_handle **out, ck_error **err)
{
    proxy_store *p = PX(s);
    atomic_fetch_add(&p->watch_calls, 1);
    pthread_mutex_lock(&p->mu);
    if (p->fail_watches > 0) {
        p->fail_watches--;
        pthread_mutex_unlock(&p->mu);
        return ck_error_set(err, p->fail_code, "proxy: injected watch failure");
    }
    pthread_mutex_unlock(&p->mu);
    /* The proxy hands the inner store the caller's callback directly: events need no rewriting. */
    proxy_watch *w = xcalloc(1, sizeof(*w));
    w->cb = cb;
    w->ctx = ctx;
    if (ck_store_watch(p->inner, prefix, after, cb, ctx, &w->inner, err) < 0) {
        free(w);
        return -1;
    }
    pthread_mutex_lock(&p->mu);
    w->next = p->watches;
    p->watches = w;
    pthread_mutex_unlock(&p->mu);
    *out = (ck_watch_handle *)w;
    return 0;
}

static void px_watch_cancel(ck_store *s, ck_watch_handle *h)
{
    proxy_store *p = PX(s);
    proxy_watch *w = (proxy_watch *)h;
    pthread_mutex_lock(&p->mu);
    for (proxy_watch **pp = &p->watches; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    pthread_mutex_unlock(&p->mu);
    if (w->inner)
        ck_store_watch_cancel(p->inner, w->inner);
    free(w);
}

static void px_watch_inline(ck_store *s, ck_watch_handle *h)
{
    proxy_watch *w = (proxy_watch *)h;
    if (w->inner)
        ck_store_watch_inline(PX(s)->inner, w->inner);
}

static void px_close(ck_store *s)
{
    proxy_store *p = PX(s);
    while (p->watches)
        px_watch_cancel(s, (ck_watch_handle *)p->watches);
    ck_store_close(p->inner);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static const ck_store_ops proxy_ops = {
    .name = "proxy",
    .create = px_create,
    .get = px_get,
    .update = px_update,
    .delete = px_delete,
    .list = px_list,
    .current_revision = px_current_revision,
    .compact = px_compact,
    .watch = px_watch,
    .watch_cancel = px_watch_cancel,
    .close = px_close,
    .watch_inline = px_watch_inline,
};

/* End every open watch with `code` (the inner watch is cancelled first, so nothing follows). */
static void px_inject_end(ck_store *s, enum ck_error_code code)
{
    proxy_store *p = PX(s);
    pthread_mutex_lock(&p->mu);
    for (proxy_watch *w = p->watches; w; w = w->next) {
        if (!w->inner)
            continue;
        ck_store_watch_cancel(p->inner, w->inner);
        w->inner = NULL;
        ck_error e = {.code = code, .msg = "proxy: injected end of watch"};
        w->cb(w->ctx, NULL, 0, &e);
    }
    pthread_mutex_unlock(&p->mu);
}

static void px_fail_next_watches(ck_store *s, int n, enum ck_error_code code)
{
    proxy_store *p = PX(s);
    pthread_mutex_lock(&p->mu);
    p->fail_watches = n;
    p->fail_code = code;
    pthread_mutex_unlock(&p->mu);
}

/* ---------------------------------------------------------------------------------------------
 * Fixture: one backend per test group, a temp dir per test.
 */
typedef struct backend {
    const char *name;
    ck_store *(*open)(const char *dir, ck_error **err);
} backend;

static const backend backends[] = {
    {"fake", open_fake},
    {"sqlite", open_sqlite},
    {"etcd", open_etcd},
};

typedef struct env {
    const backend *be;
    char dir[64];
    ck_store *s;                 /* the proxy */
} env;

static int env_setup(void **state)
{
    env *e = xcalloc(1, sizeof(*e));
    e->be = *state;
    snprintf(e->dir, sizeof(e->dir), "/tmp/ck-wc-test-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    ck_error *err = NULL;
    ck_store *inner = e->be->open(e->dir, &err);
    if (!inner)
        fail_msg("open %s store: %s", e->be->name, err ? err->msg : "?");
    proxy_store *p = xcalloc(1, sizeof(*p));
    p->base.ops = &proxy_ops;
    p->inner = inner;
    pthread_mutex_init(&p->mu, NULL);
    e->s = &p->base;
    *state = e;
    /* Start every test at a non-zero revision: after_rev 0 means "from now", not "from 0". */
    int64_t rev = 0;
    if (ck_store_create(e->s, "/registry/seed", "x", 1, &rev, &err) < 0 || rev < 1)
        fail_msg("seed write: %s", err ? err->msg : "revision < 1");
    return 0;
}

static int env_teardown(void **state)
{
    env *e = *state;
    ck_store_close(e->s);
    cleanup_free char *cmd = xasprintf("rm -rf '%s'", e->dir);
    int rc = system(cmd);
    *state = (void *)e->be;
    free(e);
    return rc == 0 ? 0 : -1;
}

static int64_t put(ck_store *s, const char *key, const char *val)
{
    ck_error *err = NULL;
    int64_t rev = 0;
    if (ck_store_create(s, key, val, strlen(val), &rev, &err) < 0) {
        if (err->code != CK_E_EXISTS)
            fail_msg("create %s: %s", key, err->msg);
        ck_error_free(err);
        err = NULL;
        if (ck_store_update(s, key, val, strlen(val), 0, &rev, &err) < 0)
            fail_msg("update %s: %s", key, err->msg);
    }
    return rev;
}

static int64_t current_rev(ck_store *s)
{
    int64_t rev = -1;
    ck_error *err = NULL;
    assert_int_equal(ck_store_current_revision(s, &rev, &err), 0);
    return rev;
}

/* The second run of the cases: rounds on the backend's thread (opts.inline_delivery). */
static bool inline_mode;

static ck_watchcache *cache_new(ck_store *s, size_t window, int bookmark_ms)
{
    ck_watchcache_opts o = {.window_events = window, .bookmark_interval_ms = bookmark_ms,
                            .inline_delivery = inline_mode};
    ck_error *err = NULL;
    ck_watchcache *c = ck_watchcache_new(s, PODS, &o, &err);
    if (!c)
        fail_msg("ck_watchcache_new: %s", err->msg);
    return c;
}

/* ---------------------------------------------------------------------------------------------
 * A recording watcher.
 */
typedef struct rec rec;
struct rec {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t *revs;
    char **keys;
    size_t n, cap;
    int64_t last;                /* last revision seen */
    int disorder;                /* events at or below `last` */
    int errors;
    enum ck_error_code err_code;
    int bookmarks;
    int64_t last_bookmark;
    bool keep_keys;
    int after_error;             /* notifications after an error (must stay 0) */
    /* remove-during-delivery */
    useconds_t sleep_us;
    atomic_bool removed;
    atomic_int late_calls;
    atomic_bool in_cb;
    ck_watchcache *self_remove_cache;   /* from the callback, at revision self_remove_at, */
    ck_wc_watcher *self;                /* remove this watcher */
    struct rec *self_rec;               /* (whose recorder is this) */
    int64_t self_remove_at;
};

static void rec_init(rec *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
}

static void rec_free(rec *r)
{
    for (size_t i = 0; r->keys && i < r->n; i++)
        free(r->keys[i]);
    free(r->keys);
    free(r->revs);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

static void rec_cb(void *ctx, const ck_wc_note *n)
{
    rec *r = ctx;
    if (atomic_load(&r->removed))
        atomic_fetch_add(&r->late_calls, 1);
    atomic_store(&r->in_cb, true);
    if (r->sleep_us)
        usleep(r->sleep_us);
    pthread_mutex_lock(&r->mu);
    if (r->errors)
        r->after_error++;
    switch (n->kind) {
    case CK_WC_EVENT:
        if (n->revision <= r->last)
            r->disorder++;
        r->last = n->revision;
        if (r->n == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 64;
            r->revs = xrealloc(r->revs, r->cap * sizeof(*r->revs));
            if (r->keep_keys)
                r->keys = xrealloc(r->keys, r->cap * sizeof(*r->keys));
        }
        if (r->keep_keys)
            r->keys[r->n] = xstrdup(ck_wc_event_get(n->event)->kv.key);
        r->revs[r->n++] = n->revision;
        if (ck_wc_event_get(n->event)->revision != n->revision)
            r->disorder++;
        break;
    case CK_WC_BOOKMARK:
        r->bookmarks++;
        r->last_bookmark = n->revision;
        break;
    case CK_WC_ERROR:
        r->errors++;
        r->err_code = n->err->code;
        break;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    atomic_store(&r->in_cb, false);
    if (r->self_remove_cache && n->kind == CK_WC_EVENT && n->revision >= r->self_remove_at) {
        ck_watchcache *c = r->self_remove_cache;
        r->self_remove_cache = NULL;
        ck_watchcache_remove(c, r->self);
        atomic_store(&r->self_rec->removed, true);
    }
}

/* Wait until pred holds (checked under r->mu) or 10 s pass. */
#define REC_WAIT(r, pred)                                                                     \
    ({                                                                                        \
        struct timespec _ts;                                                                  \
        clock_gettime(CLOCK_REALTIME, &_ts);                                                  \
        _ts.tv_sec += 10;                                                                     \
        pthread_mutex_lock(&(r)->mu);                                                         \
        int _rc = 0;                                                                          \
        while (!(pred) && _rc == 0)                                                           \
            _rc = pthread_cond_timedwait(&(r)->cv, &(r)->mu, &_ts);                           \
        bool _ok = (pred);                                                                    \
        pthread_mutex_unlock(&(r)->mu);                                                       \
        _ok;                                                                                  \
    })

static ck_wc_watcher *watch(ck_watchcache *c, rec *r, int64_t after, const char *prefix)
{
    ck_wc_watch_opts o = {.after_rev = after, .prefix = prefix};
    ck_error *err = NULL;
    ck_wc_watcher *w = ck_watchcache_add(c, &o, rec_cb, r, &err);
    if (!w)
        fail_msg("ck_watchcache_add(after %lld): %s", (long long)after, err->msg);
    return w;
}

/* r saw exactly the revisions from..to, each once, in order. */
static void assert_contiguous(rec *r, int64_t from, int64_t to)
{
    pthread_mutex_lock(&r->mu);
    assert_int_equal(r->disorder, 0);
    assert_int_equal(r->n, (size_t)(to - from + 1));
    for (size_t i = 0; i < r->n; i++)
        assert_int_equal(r->revs[i], from + (int64_t)i);
    pthread_mutex_unlock(&r->mu);
}

/* ---------------------------------------------------------------------------------------------
 * Cases
 */

/* One event reaches 1,000 watchers, each once, in order. */
static void test_fanout(void **state)
{
    env *e = *state;
    ck_watchcache *c = cache_new(e->s, 0, -1);
    enum { NW = 1000, NE = 100 };
    rec *recs = xcalloc(NW, sizeof(*recs));
    ck_wc_watcher **ws = xcalloc(NW, sizeof(*ws));
    for (int i = 0; i < NW; i++) {
        rec_init(&recs[i]);
        ws[i] = watch(c, &recs[i], 0, NULL);
    }
    int64_t first = 0, last = 0;
    char key[64];
    for (int i = 0; i < NE; i++) {
        snprintf(key, sizeof(key), PODS "default/p%d", i);
        last = put(e->s, key, "{}");
        if (!first)
            first = last;
    }
    for (int i = 0; i < NW; i++) {
        assert_true(REC_WAIT(&recs[i], recs[i].n >= NE));
        assert_contiguous(&recs[i], first, last);
    }
    ck_watchcache_stats st;
    ck_watchcache_get_stats(c, &st);
    assert_int_equal(st.watchers, NW);
    assert_int_equal(st.revision, last);
    assert_int_equal(st.events_received, NE);
    for (int i = 0; i < NW; i++) {
        ck_watchcache_remove(c, ws[i]);
        rec_free(&recs[i]);
    }
    ck_watchcache_get_stats(c, &st);
    assert_int_equal(st.watchers, 0);
    ck_watchcache_free(c);
    free(recs);
    free(ws);
}

typedef struct writer_arg {
    ck_store *s;
    int id, n;
    atomic_llong *last_rev;
} writer_arg;

static void *writer_main(void *arg)
{
    writer_arg *a = arg;
    char key[64];
    for (int i = 0; i < a->n; i++) {
        snprintf(key, sizeof(key), PODS "ns%d/w%d-%d", a->id % 3, a->id, i);
        int64_t rev = put(a->s, key, "{\"x\":1}");
        usleep(200);
        long long prev = atomic_load(a->last_rev);
        while (rev > prev && !atomic_compare_exchange_weak(a->last_rev, &prev, rev))
            ;
    }
    return NULL;
}

/* Watchers join at revisions inside the window while writers keep writing: each sees every
 * revision after its after_rev exactly once, in order (replay then live, no gap, no repeat). */
static void test_replay_then_live(void **state)
{
    env *e = *state;
    ck_watchcache *c = cache_new(e->s, 100000, -1);
    int64_t base = current_rev(e->s);
    enum { NWRITERS = 4, PER = 150, NJOIN = 40 };
    atomic_llong last_rev = base;
    writer_arg args[NWRITERS];
    pthread_t th[NWRITERS];
    for (int i = 0; i < NWRITERS; i++) {
        args[i] = (writer_arg){e->s, i, PER, &last_rev};
        assert_int_equal(pthread_create(&th[i], NULL, writer_main, &args[i]), 0);
    }
    rec recs[NJOIN];
    ck_wc_watcher *ws[NJOIN];
    int64_t after[NJOIN];
    for (int i = 0; i < NJOIN; i++) {
        rec_init(&recs[i]);
        /* Alternate: from a revision already written (replay + live), and from now (0). */
        int64_t cur = ck_watchcache_revision(c);
        after[i] = i % 4 == 3 ? 0 : (cur > base ? base + (cur - base) / 2 : base);
        if (after[i] == 0)
            after[i] = cur;   /* what "now" means to the cache at this instant, at the latest */
        ws[i] = watch(c, &recs[i], i % 4 == 3 ? 0 : after[i], NULL);
        usleep(2000);
    }
    for (int i = 0; i < NWRITERS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&last_rev), base + NWRITERS * PER);
    /* One more write that every watcher must see, joined early or late. */
    int64_t end = put(e->s, PODS "sync", "{}");
    assert_int_equal(end, base + NWRITERS * PER + 1);
    for (int i = 0; i < NJOIN; i++) {
        assert_true(REC_WAIT(&recs[i], recs[i].last >= end));
        if (i % 4 == 3) {
            /* "From now": a contiguous run ending at `end` that starts no earlier than the
             * revision the cache had seen just before the add. */
            pthread_mutex_lock(&recs[i].mu);
            int64_t from = recs[i].n ? recs[i].revs[0] : end + 1;
            pthread_mutex_unlock(&recs[i].mu);
            assert_true(from > after[i]);
            assert_contiguous(&recs[i], from, end);
        } else {
            assert_contiguous(&recs[i], after[i] + 1, end);
        }
        assert_int_equal(recs[i].errors, 0);
    }
    for (int i = 0; i < NJOIN; i++) {
        ck_watchcache_remove(c, ws[i]);
        rec_free(&recs[i]);
    }
    ck_watchcache_free(c);
}

/* A namespace prefix and an exact key each get only their own events. */
static void test_prefix_filter(void **state)
{
    env *e = *state;
    ck_watchcache *c = cache_new(e->s, 0, -1);
    rec all, ns_a, one, ns_ab;
    rec_init(&all);
    rec_init(&ns_a);
    rec_init(&one);
    rec_init(&ns_ab);
    ns_a.keep_keys = one.keep_keys = ns_ab.keep_keys = true;
    ck_wc_watcher *w1 = watch(c, &all, 0, PODS);
    ck_wc_watcher *w2 = watch(c, &ns_a, 0, PODS "a/");
    ck_wc_watcher *w3 = watch(c, &one, 0, PODS "b/x");
    ck_wc_watcher *w4 = watch(c, &ns_ab, 0, PODS "ab/");

    ck_error *err = NULL;
    ck_wc_watch_opts bad = {.prefix = "/registry/services/"};
    assert_null(ck_watchcache_add(c, &bad, rec_cb, &all, &err));
    assert_int_equal(err->code, CK_E_INVALID);
    ck_error_free(err);

    const char *keys[] = {PODS "a/1", PODS "b/x", PODS "ab/1", PODS "a/2", PODS "b/xy",
                          PODS "b/y", PODS "a/1"};
    int64_t last = 0;
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
        last = put(e->s, keys[i], "v");
    /* Deleting and writing outside the cache's prefix: the delete is seen, the service is not. */
    int64_t rev = 0;
    assert_int_equal(ck_store_delete(e->s, PODS "a/2", 0, NULL, &rev, &err), 0);
    put(e->s, "/registry/services/a/1", "v");
    last = rev;
    assert_true(REC_WAIT(&all, all.last >= last));
    assert_true(REC_WAIT(&ns_a, ns_a.last >= last));
    assert_int_equal(all.n, ARRAY_SIZE(keys) + 1);
    assert_int_equal(ns_a.n, 4);
    for (size_t i = 0; i < ns_a.n; i++)
        assert_memory_equal(ns_a.keys[i], PODS "a/", strlen(PODS "a/"));
    /* The exact-key filter is a prefix, so b/xy matches too; b/y does not. */
    assert_true(REC_WAIT(&one, one.n >= 2));
    assert_int_equal(one.n, 2);
    assert_string_equal(one.keys[0], PODS "b/x");
    assert_string_equal(one.keys[1], PODS "b/xy");
    assert_true(REC_WAIT(&ns_ab, ns_ab.n >= 1));
    assert_int_equal(ns_ab.n, 1);
    assert_string_equal(ns_ab.keys[0], PODS "ab/1");

    ck_watchcache_remove(c, w1);
    ck_watchcache_remove(c, w2);
    ck_watchcache_remove(c, w3);
    ck_watchcache_remove(c, w4);
    ck_watchcache_free(c);
    rec_free(&all);
    rec_free(&ns_a);
    rec_free(&one);
    rec_free(&ns_ab);
}

/* Past the window: CK_E_EXPIRED; at the window's start: the whole window replayed. */
static void test_expired(void **state)
{
    env *e = *state;
    ck_watchcache *c = cache_new(e->s, 10, -1);
    int64_t start = current_rev(e->s);
    rec sync;
    rec_init(&sync);
    ck_wc_watcher *ws = watch(c, &sync, 0, NULL);
    char key[64];
    int64_t revs[30];
    for (int i = 0; i < 30; i++) {
        snprintf(key, sizeof(key), PODS "default/e%d", i);
        revs[i] = put(e->s, key, "{}");
    }
    assert_int_equal(revs[29], start + 30);
    /* Once a watcher has seen the last write, the window holds it. */
    assert_true(REC_WAIT(&sync, sync.last >= revs[29]));
    ck_watchcache_remove(c, ws);
    rec_free(&sync);

    ck_watchcache_stats st;
    ck_watchcache_get_stats(c, &st);
    assert_int_equal(st.window_events, 10);
    assert_int_equal(st.window_start, revs[19]);

    ck_error *err = NULL;
    ck_wc_watch_opts o = {.after_rev = revs[5]};
    assert_null(ck_watchcache_add(c, &o, rec_cb, NULL, &err));
    assert_int_equal(err->code, CK_E_EXPIRED);
    assert_int_equal(ck_error_http_status(err->code), 410);
    ck_error_free(err);
    err = NULL;
    o.after_rev = revs[18];
    assert_null(ck_watchcache_add(c, &o, rec_cb, NULL, &err));
    assert_int_equal(err->code, CK_E_EXPIRED);
    ck_error_free(err);

    rec r;
    rec_init(&r);
    ck_wc_watcher *w = watch(c, &r, revs[19], NULL);
    assert_true(REC_WAIT(&r, r.n >= 10));
    snprintf(key, sizeof(key), PODS "default/e%d", 30);
    int64_t more = put(e->s, key, "{}");
    assert_true(REC_WAIT(&r, r.n >= 11));
    assert_contiguous(&r, revs[19] + 1, more);
    ck_watchcache_remove(c, w);
    rec_free(&r);
    ck_watchcache_free(c);
}

typedef struct remover_arg {
    ck_watchcache *c;
    ck_wc_watcher *w;
    rec *r;
    bool in_cb_after_remove;
} remover_arg;

static void *remover_main(void *arg)
{
    remover_arg *a = arg;
    /* Wait until the watcher is inside its (slow) callback, then remove it. */
    for (int i = 0; i < 5000 && !atomic_load(&a->r->in_cb); i++)
        usleep(200);
    ck_watchcache_remove(a->c, a->w);
    /* remove has returned: no callback may be running now or start later. */
    a->in_cb_after_remove = atomic_load(&a->r->in_cb);
    atomic_store(&a->r->removed, true);
    return NULL;
}

/* Removal from another thread while a callback runs; removal from inside its own callback; and
 * a callback removing another watcher. */
static void test_remove_during_delivery(void **state)
{
    env *e = *state;
    ck_watchcache *c = cache_new(e->s, 0, -1);
    rec slow, selfr, other, victim;
    rec_init(&slow);
    rec_init(&selfr);
    rec_init(&other);
    rec_init(&victim);
    slow.sleep_us = 20000;
    ck_wc_watcher *ws = watch(c, &slow, 0, NULL);
    ck_wc_watcher *wself = watch(c, &selfr, 0, NULL);
    ck_wc_watcher *wother = watch(c, &other, 0, NULL);
    ck_wc_watcher *wvictim = watch(c, &victim, 0, NULL);
    int64_t base = current_rev(e->s);
    selfr.self_remove_cache = c;
    selfr.self = wself;
    selfr.self_rec = &selfr;
    selfr.self_remove_at = base + 3;
    /* `other` removes `victim` from its own callback once it reaches base + 2. */
    other.self_remove_cache = c;
    other.self = wvictim;
    other.self_rec = &victim;
    other.self_remove_at = base + 2;

    remover_arg ra = {c, ws, &slow, false};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, remover_main, &ra), 0);
    char key[64];
    int64_t last = 0;
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), PODS "default/r%d", i);
        last = put(e->s, key, "{}");
    }
    pthread_join(th, NULL);
    assert_true(atomic_load(&slow.removed));
    assert_false(ra.in_cb_after_remove);
    /* A watcher that stays gives the sync point: it has seen everything. */
    rec tail;
    rec_init(&tail);
    ck_wc_watcher *wt = watch(c, &tail, base, NULL);
    assert_true(REC_WAIT(&tail, tail.last >= last));
    usleep(50000);
    assert_int_equal(atomic_load(&slow.late_calls), 0);
    assert_true(slow.n < 20);
    assert_int_equal(atomic_load(&selfr.late_calls), 0);
    assert_true(atomic_load(&selfr.removed));
    assert_int_equal(selfr.n, 3);
    assert_true(REC_WAIT(&other, other.last >= last));
    /* Within one round delivery is watcher by watcher, so the victim may have seen the whole
     * batch before `other` removed it; after that it sees nothing. */
    assert_true(atomic_load(&victim.removed));
    int64_t after = put(e->s, PODS "default/after", "{}");
    assert_true(REC_WAIT(&tail, tail.last >= after));
    assert_true(victim.last < after);
    assert_true(selfr.last < after);
    assert_true(slow.last < after);
    assert_int_equal(atomic_load(&victim.late_calls), 0);
    ck_watchcache_stats st;
    ck_watchcache_get_stats(c, &st);
    assert_int_equal(st.watchers, 2);  /* other, tail */
    ck_watchcache_remove(c, wother);
    ck_watchcache_remove(c, wt);
    ck_watchcache_free(c);
    rec_free(&slow);
    rec_free(&selfr);
    rec_free(&other);
    rec_free(&victim);
    rec_free(&tail);
}

/* The memo: serialization runs once per event however many watchers see it. */
static atomic_int memo_computed, memo_freed;

static void memo_free(void *p)
{
    atomic_fetch_add(&memo_freed, 1);
    free(p);
}

typedef struct memo_rec {
    atomic_int seen;
    atomic_int mismatches;
} memo_rec;

static void memo_cb(void *ctx, const ck_wc_note *n)
{
    memo_rec *m = ctx;
    if (n->kind != CK_WC_EVENT)
        return;
    const ck_wc_memo *mm = ck_wc_event_memo(n->event, 2);
    if (!mm) {
        atomic_fetch_add(&memo_computed, 1);
        char *line = xasprintf("{\"type\":\"ADDED\",\"rv\":%lld}\n", (long long)n->revision);
        mm = ck_wc_event_memo_set(n->event, 2, line, strlen(line), memo_free);
    }
    cleanup_free char *want = xasprintf("{\"type\":\"ADDED\",\"rv\":%lld}\n", (long long)n->revision);
    if (mm->len != strlen(want) || memcmp(mm->data, want, mm->len))
        atomic_fetch_add(&m->mismatches, 1);
    atomic_fetch_add(&m->seen, 1);
}

typedef struct race_arg {
    ck_wc_event *ev;
    const ck_wc_memo *got;
    pthread_barrier_t *bar;
} race_arg;

static void *race_main(void *arg)
{
    race_arg *a = arg;
    pthread_barrier_wait(a->bar);
    char *v = xstrdup("value");
    a->got = ck_wc_event_memo_set(a->ev, 0, v, 5, memo_free);
    return NULL;
}

/* Keeps a ref to the first event it sees. */
static void keep_cb(void *ctx, const ck_wc_note *n)
{
    ck_wc_event **slot = ctx;
    if (n->kind == CK_WC_EVENT && !*slot)
        *slot = ck_wc_event_ref(n->event);
}

static void test_memo_once(void **state)
{
    env *e = *state;
    atomic_store(&memo_computed, 0);
    atomic_store(&memo_freed, 0);
    ck_watchcache *c = cache_new(e->s, 0, -1);
    enum { NW = 100, NE = 20 };
    memo_rec mr[NW];
    ck_wc_watcher *ws[NW];
    ck_error *err = NULL;
    for (int i = 0; i < NW; i++) {
        atomic_init(&mr[i].seen, 0);
        atomic_init(&mr[i].mismatches, 0);
        ws[i] = ck_watchcache_add(c, &(ck_wc_watch_opts){0}, memo_cb, &mr[i], &err);
        assert_non_null(ws[i]);
    }
    ck_wc_event *kept = NULL;
    ck_wc_watcher *wk = ck_watchcache_add(c, &(ck_wc_watch_opts){0}, keep_cb, &kept, &err);
    assert_non_null(wk);
    char key[64];
    for (int i = 0; i < NE; i++) {
        snprintf(key, sizeof(key), PODS "default/m%d", i);
        put(e->s, key, "{}");
    }
    for (int i = 0; i < NW; i++) {
        for (int t = 0; t < 1000 && atomic_load(&mr[i].seen) < NE; t++)
            usleep(10000);
        assert_int_equal(atomic_load(&mr[i].seen), NE);
        assert_int_equal(atomic_load(&mr[i].mismatches), 0);
    }
    assert_int_equal(atomic_load(&memo_computed), NE);
    for (int i = 0; i < NW; i++)
        ck_watchcache_remove(c, ws[i]);
    ck_watchcache_remove(c, wk);
    assert_non_null(kept);

    /* Concurrent setters on one slot: one wins, all see the winner, the losers' values are
     * freed at once, the winner's with the event. */
    assert_null(ck_wc_event_memo(kept, 0));
    atomic_store(&memo_freed, 0);
    enum { NT = 8 };
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, NT);
    race_arg ra[NT];
    pthread_t th[NT];
    for (int i = 0; i < NT; i++) {
        ra[i] = (race_arg){kept, NULL, &bar};
        assert_int_equal(pthread_create(&th[i], NULL, race_main, &ra[i]), 0);
    }
    for (int i = 0; i < NT; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    for (int i = 1; i < NT; i++)
        assert_ptr_equal(ra[i].got, ra[0].got);
    assert_ptr_equal(ck_wc_event_memo(kept, 0), ra[0].got);
    assert_int_equal(atomic_load(&memo_freed), NT - 1);
    assert_null(ck_wc_event_memo(kept, CK_WC_MEMO_SLOTS));
    assert_null(ck_wc_event_memo_set(kept, CK_WC_MEMO_SLOTS, xstrdup("x"), 1, memo_free));
    assert_int_equal(atomic_load(&memo_freed), NT);
    /* The cache dropping its window and our ref dropping free the event and its memos. */
    ck_watchcache_free(c);
    int before = atomic_load(&memo_freed);
    ck_wc_event_unref(kept);
    assert_int_equal(atomic_load(&memo_freed), before + 2);   /* slot 0 and slot 2 */
}

/* The backend watch ends with UNAVAILABLE and can resume: watchers lose nothing. */
static void test_backend_resume(void **state)
{
    env *e = *state;
    ck_watchcache *c = cache_new(e->s, 0, -1);
    int64_t base = current_rev(e->s);
    rec r;
    rec_init(&r);
    ck_wc_watcher *w = watch(c, &r, 0, NULL);
    char key[64];
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), PODS "default/a%d", i);
        put(e->s, key, "{}");
    }
    assert_true(REC_WAIT(&r, r.last >= base + 5));
    px_inject_end(e->s, CK_E_UNAVAILABLE);
    /* Writes while the watch is being resumed are not lost: the resume starts at the cache's
     * revision. */
    int64_t last = 0;
    for (int i = 5; i < 10; i++) {
        snprintf(key, sizeof(key), PODS "default/a%d", i);
        last = put(e->s, key, "{}");
    }
    assert_true(REC_WAIT(&r, r.last >= last));
    assert_contiguous(&r, base + 1, last);
    assert_int_equal(r.errors, 0);
    ck_watchcache_stats st;
    ck_watchcache_get_stats(c, &st);
    assert_int_equal(st.resumes, 1);
    assert_int_equal(st.restarts, 0);
    assert_true(st.healthy);
    ck_watchcache_remove(c, w);
    ck_watchcache_free(c);
    rec_free(&r);
}

/* The backend watch ends with EXPIRED: watchers end with EXPIRED, the window restarts at the
 * current revision, new watchers work. */
static void test_backend_expired(void **state)
{
    env *e = *state;
    ck_watchcache *c = cache_new(e->s, 0, -1);
    int64_t base = current_rev(e->s);
    rec r1, r2;
    rec_init(&r1);
    rec_init(&r2);
    ck_wc_watcher *w1 = watch(c, &r1, 0, NULL);
    ck_wc_watcher *w2 = watch(c, &r2, 0, PODS "x/");
    int64_t rev1 = put(e->s, PODS "default/b1", "{}");
    assert_true(REC_WAIT(&r1, r1.last >= rev1));
    px_inject_end(e->s, CK_E_EXPIRED);
    assert_true(REC_WAIT(&r1, r1.errors > 0));
    assert_true(REC_WAIT(&r2, r2.errors > 0));
    assert_int_equal(r1.err_code, CK_E_EXPIRED);
    assert_int_equal(r2.err_code, CK_E_EXPIRED);
    /* Wait for the restart. */
    ck_watchcache_stats st;
    for (int t = 0; t < 500; t++) {
        ck_watchcache_get_stats(c, &st);
        if (st.restarts == 1 && st.healthy)
            break;
        usleep(10000);
    }
    assert_int_equal(st.restarts, 1);
    assert_true(st.healthy);
    assert_int_equal(st.window_events, 0);
    int64_t rev2 = put(e->s, PODS "default/b2", "{}");
    /* An ended watcher gets nothing more; an old revision is now expired; a new watcher works. */
    ck_error *err = NULL;
    ck_wc_watch_opts o = {.after_rev = base};
    assert_null(ck_watchcache_add(c, &o, rec_cb, &r1, &err));
    assert_int_equal(err->code, CK_E_EXPIRED);
    ck_error_free(err);
    rec r3;
    rec_init(&r3);
    ck_wc_watcher *w3 = watch(c, &r3, rev2 - 1, NULL);
    assert_true(REC_WAIT(&r3, r3.last >= rev2));
    assert_contiguous(&r3, rev2, rev2);
    usleep(20000);
    assert_int_equal(r1.after_error, 0);
    assert_int_equal(r1.n, 1);
    ck_watchcache_remove(c, w1);
    ck_watchcache_remove(c, w2);
    ck_watchcache_remove(c, w3);
    ck_watchcache_free(c);
    rec_free(&r1);
    rec_free(&r2);
    rec_free(&r3);
}

/* The backend stays down for a while: watchers end with UNAVAILABLE, adds fail with
 * UNAVAILABLE, and the cache comes back by itself. */
static void test_backend_down(void **state)
{
    env *e = *state;
    ck_watchcache *c = cache_new(e->s, 0, -1);
    rec r;
    rec_init(&r);
    ck_wc_watcher *w = watch(c, &r, 0, NULL);
    /* resume fails, then the first two restarts fail (with backoff), then it works. */
    px_fail_next_watches(e->s, 3, CK_E_UNAVAILABLE);
    px_inject_end(e->s, CK_E_UNAVAILABLE);
    assert_true(REC_WAIT(&r, r.errors > 0));
    assert_int_equal(r.err_code, CK_E_UNAVAILABLE);
    ck_error *err = NULL;
    ck_wc_watch_opts o = {0};
    ck_wc_watcher *w2 = ck_watchcache_add(c, &o, rec_cb, &r, &err);
    if (w2) {
        /* The restart may already have succeeded on a fast machine; then the add is valid. */
        ck_watchcache_remove(c, w2);
    } else {
        assert_int_equal(err->code, CK_E_UNAVAILABLE);
        ck_error_free(err);
    }
    ck_watchcache_stats st;
    for (int t = 0; t < 500; t++) {
        ck_watchcache_get_stats(c, &st);
        if (st.healthy)
            break;
        usleep(10000);
    }
    assert_true(st.healthy);
    assert_int_equal(st.restarts, 1);
    assert_int_equal(atomic_load(&PX(e->s)->watch_calls), 1 + 1 + 3);
    rec r2;
    rec_init(&r2);
    ck_wc_watcher *w3 = watch(c, &r2, 0, NULL);
    int64_t rev = put(e->s, PODS "default/c1", "{}");
    assert_true(REC_WAIT(&r2, r2.last >= rev));
    ck_watchcache_remove(c, w);
    ck_watchcache_remove(c, w3);
    ck_watchcache_free(c);
    rec_free(&r);
    rec_free(&r2);
}

/* Bookmarks carry the cache's progress; ck_watchcache_wait sees revisions arrive. */
static void test_bookmarks_and_wait(void **state)
{
    env *e = *state;
    ck_watchcache *c = cache_new(e->s, 0, 50);
    rec r, quiet;
    rec_init(&r);
    rec_init(&quiet);
    ck_wc_watch_opts o = {.bookmarks = true};
    ck_error *err = NULL;
    ck_wc_watcher *w = ck_watchcache_add(c, &o, rec_cb, &r, &err);
    assert_non_null(w);
    ck_wc_watcher *wq = watch(c, &quiet, 0, NULL);
    int64_t rev = put(e->s, PODS "default/k", "{}");
    assert_int_equal(ck_watchcache_wait(c, rev, 5000, &err), 0);
    assert_int_equal(ck_watchcache_revision(c), rev);
    assert_int_equal(ck_watchcache_wait(c, rev + 100, 100, &err), -1);
    assert_int_equal(err->code, CK_E_TIMEOUT);
    ck_error_free(err);
    assert_true(REC_WAIT(&r, r.bookmarks >= 2 && r.last_bookmark >= rev));
    assert_int_equal(r.last_bookmark, rev);
    assert_int_equal(r.n, 1);
    assert_int_equal(quiet.bookmarks, 0);
    ck_watchcache_remove(c, w);
    ck_watchcache_remove(c, wq);
    ck_watchcache_free(c);
    rec_free(&r);
    rec_free(&quiet);
}

/* A byte-bounded window evicts by size; a watcher at an evicted revision is expired. */
static void test_window_bytes(void **state)
{
    env *e = *state;
    ck_watchcache_opts o = {.window_bytes = 4096, .bookmark_interval_ms = -1,
                            .inline_delivery = inline_mode};
    ck_error *err = NULL;
    ck_watchcache *c = ck_watchcache_new(e->s, PODS, &o, &err);
    assert_non_null(c);
    int64_t base = current_rev(e->s);
    char val[1000];
    memset(val, 'v', sizeof(val) - 1);
    val[sizeof(val) - 1] = 0;
    char key[64];
    int64_t last = 0;
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), PODS "default/big%d", i);
        last = put(e->s, key, val);
    }
    rec r;
    rec_init(&r);
    ck_wc_watcher *w = watch(c, &r, 0, NULL);
    int64_t sync = put(e->s, PODS "default/sync", "x");
    assert_true(REC_WAIT(&r, r.last >= sync));
    ck_watchcache_stats st;
    ck_watchcache_get_stats(c, &st);
    assert_true(st.window_bytes <= 4096);
    assert_true(st.window_events >= 2 && st.window_events < 10);
    assert_true(st.window_start > base && st.window_start < last);
    ck_wc_watch_opts wo = {.after_rev = base + 1};
    assert_null(ck_watchcache_add(c, &wo, rec_cb, &r, &err));
    assert_int_equal(err->code, CK_E_EXPIRED);
    ck_error_free(err);
    ck_watchcache_remove(c, w);
    ck_watchcache_free(c);
    rec_free(&r);
}

/* A watcher from a revision the cache has not reached yet gets exactly the events after it. */
static void test_future_rev(void **state)
{
    env *e = *state;
    ck_watchcache *c = cache_new(e->s, 0, -1);
    int64_t now = current_rev(e->s);
    rec r;
    rec_init(&r);
    ck_wc_watcher *w = watch(c, &r, now + 2, NULL);
    int64_t last = 0;
    for (int i = 0; i < 4; i++) {
        char key[64];
        snprintf(key, sizeof(key), PODS "default/f%d", i);
        last = put(e->s, key, "{}");
    }
    assert_int_equal(last, now + 4);
    assert_true(REC_WAIT(&r, r.last >= last));
    assert_contiguous(&r, now + 3, now + 4);
    ck_watchcache_remove(c, w);
    ck_watchcache_free(c);
    rec_free(&r);
}

/* Blocks the dispatch thread in one callback, or sleeps in each. */
typedef struct blocker {
    int64_t block_at;             /* sleep block_ms when this revision arrives */
    int block_ms, first_ms;       /* first_ms: sleep this long in the first callback */
    atomic_bool entered;          /* a callback has started */
    atomic_bool released;
    atomic_int events;
} blocker;

static void blocker_cb(void *ctx, const ck_wc_note *n)
{
    blocker *b = ctx;
    if (n->kind != CK_WC_EVENT)
        return;
    atomic_store(&b->entered, true);
    if (atomic_fetch_add(&b->events, 1) == 0 && b->first_ms)
        usleep((useconds_t)b->first_ms * 1000);
    if (n->revision == b->block_at)
        usleep((useconds_t)b->block_ms * 1000);
    atomic_store(&b->released, true);
}

/* The narrow race the window allows: a watcher passes the add-time check, but a burst evicts its
 * revision before the dispatch thread replays it.  It must end with EXPIRED, not miss events. */
static void test_expired_race(void **state)
{
    env *e = *state;
    ck_watchcache *c = cache_new(e->s, 10, -1);
    int64_t base = current_rev(e->s);
    char key[64];
    /* 1. A blocker holds the dispatch thread (live delivery of base+1) for 600 ms. */
    blocker blk = {.block_at = base + 1, .block_ms = 600};
    ck_error *err = NULL;
    ck_wc_watcher *wb = ck_watchcache_add(c, &(ck_wc_watch_opts){0}, blocker_cb, &blk, &err);
    assert_non_null(wb);
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), PODS "default/x%d", i);
        put(e->s, key, "{}");
    }
    for (int t = 0; t < 500 && !atomic_load(&blk.entered); t++)
        usleep(2000);
    assert_true(atomic_load(&blk.entered));
    /* 2. Meanwhile: a slow joiner S from base (its replay stalls 300 ms in its first callback),
     * and a burst of 20 more events; both are taken by the next round. */
    blocker slow = {.first_ms = 300};
    ck_wc_watcher *ws = ck_watchcache_add(c, &(ck_wc_watch_opts){.after_rev = base}, blocker_cb,
                                          &slow, &err);
    assert_non_null(ws);
    int64_t last = 0;
    for (int i = 10; i < 30; i++) {
        snprintf(key, sizeof(key), PODS "default/x%d", i);
        last = put(e->s, key, "{}");
    }
    /* 3. While S is being replayed, X joins at the window's start: accepted, but the burst will
     * have evicted its revision by the time X's turn comes. */
    for (int t = 0; t < 1000 && !atomic_load(&slow.entered); t++)
        usleep(1000);
    assert_true(atomic_load(&slow.entered));
    ck_watchcache_stats st;
    ck_watchcache_get_stats(c, &st);
    rec x;
    rec_init(&x);
    ck_wc_watcher *wx = watch(c, &x, st.window_start, NULL);
    assert_true(REC_WAIT(&x, x.errors > 0 || x.last >= last));
    assert_int_equal(x.errors, 1);
    assert_int_equal(x.err_code, CK_E_EXPIRED);
    assert_int_equal(x.n, 0);
    /* S itself lost nothing: 10 replayed + 20 live. */
    for (int t = 0; t < 1000 && atomic_load(&slow.events) < 30; t++)
        usleep(2000);
    assert_int_equal(atomic_load(&slow.events), 30);
    ck_watchcache_remove(c, wb);
    ck_watchcache_remove(c, ws);
    ck_watchcache_remove(c, wx);
    ck_watchcache_free(c);
    rec_free(&x);
}

/* Who runs the rounds: with inline delivery, live events are delivered on the backend's thread
 * (no dispatch-thread round for them) while a joiner's replay still goes to the dispatch thread;
 * without it, every round is the dispatch thread's.  Many writers, a watcher that is slow (but
 * never blocks), joiners and removals meanwhile: every watcher still sees each of its revisions
 * once, in order. */
static void test_round_owner(void **state)
{
    env *e = *state;
    ck_watchcache *c = cache_new(e->s, 100000, -1);
    int64_t base = current_rev(e->s);
    rec first, slow;
    rec_init(&first);
    rec_init(&slow);
    slow.sleep_us = 300;
    ck_wc_watcher *w1 = watch(c, &first, base, NULL);
    ck_wc_watcher *ws = watch(c, &slow, base, NULL);
    enum { NWRITERS = 4, PER = 60, NJOIN = 8 };
    atomic_llong last_rev = base;
    writer_arg args[NWRITERS];
    pthread_t th[NWRITERS];
    for (int i = 0; i < NWRITERS; i++) {
        args[i] = (writer_arg){e->s, i, PER, &last_rev};
        assert_int_equal(pthread_create(&th[i], NULL, writer_main, &args[i]), 0);
    }
    rec joins[NJOIN];
    ck_wc_watcher *wj[NJOIN];
    for (int i = 0; i < NJOIN; i++) {
        rec_init(&joins[i]);
        usleep(5000);
        wj[i] = watch(c, &joins[i], base, NULL);     /* a replay from base, then live */
        if (i % 2)
            ck_watchcache_remove(c, wj[i - 1]);       /* and a removal while events flow */
    }
    for (int i = 0; i < NWRITERS; i++)
        pthread_join(th[i], NULL);
    /* once every joiner is live, nothing keeps later commits off the backend's thread */
    int64_t mid = atomic_load(&last_rev);
    for (int i = 1; i < NJOIN; i += 2)
        assert_true(REC_WAIT(&joins[i], joins[i].last >= mid));
    assert_true(REC_WAIT(&first, first.last >= mid));
    assert_true(REC_WAIT(&slow, slow.last >= mid));   /* the dispatch thread is idle now */
    int64_t end = 0;
    for (int i = 0; i < 10; i++) {
        usleep(3000);   /* a round the dispatch thread was finishing is over by then */
        end = put(e->s, PODS "sync", "{}");
    }
    assert_int_equal(end, base + NWRITERS * PER + 10);
    assert_true(REC_WAIT(&first, first.last >= end));
    assert_true(REC_WAIT(&slow, slow.last >= end));
    assert_contiguous(&first, base + 1, end);
    assert_contiguous(&slow, base + 1, end);
    for (int i = 1; i < NJOIN; i += 2) {
        assert_true(REC_WAIT(&joins[i], joins[i].last >= end));
        assert_contiguous(&joins[i], base + 1, end);
    }
    ck_watchcache_stats st;
    ck_watchcache_get_stats(c, &st);
    assert_true(st.rounds_thread > 0);              /* the replays at least */
    if (inline_mode)
        assert_true(st.rounds_inline > 0);
    else
        assert_int_equal(st.rounds_inline, 0);
    ck_watchcache_remove(c, w1);
    ck_watchcache_remove(c, ws);
    for (int i = 1; i < NJOIN; i += 2)
        ck_watchcache_remove(c, wj[i]);
    ck_watchcache_free(c);
    rec_free(&first);
    rec_free(&slow);
    for (int i = 0; i < NJOIN; i++)
        rec_free(&joins[i]);
}

/* The real etcd stops under a live cache: watchers end with UNAVAILABLE, adds fail with
 * UNAVAILABLE while it is down, and once etcd is back the cache restarts by itself. */
static void test_etcd_restart(void **state)
{
    env *e = *state;
    ck_watchcache *c = cache_new(e->s, 0, -1);
    rec r;
    rec_init(&r);
    ck_wc_watcher *w = watch(c, &r, 0, NULL);
    int64_t rev = put(e->s, PODS "default/before", "{}");
    assert_true(REC_WAIT(&r, r.last >= rev));

    etcd_harness_stop(&test_etcd);
    assert_true(REC_WAIT(&r, r.errors > 0));
    assert_int_equal(r.err_code, CK_E_UNAVAILABLE);
    ck_error *err = NULL;
    assert_null(ck_watchcache_add(c, &(ck_wc_watch_opts){0}, rec_cb, &r, &err));
    assert_int_equal(err->code, CK_E_UNAVAILABLE);
    ck_error_free(err);

    assert_int_equal(etcd_harness_restart(&test_etcd), 0);
    ck_watchcache_stats st;
    for (int t = 0; t < 1500; t++) {
        ck_watchcache_get_stats(c, &st);
        if (st.healthy)
            break;
        usleep(10000);
    }
    assert_true(st.healthy);
    assert_int_equal(st.restarts, 1);
    rec r2;
    rec_init(&r2);
    ck_wc_watcher *w2 = watch(c, &r2, 0, NULL);
    int64_t rev2 = put(e->s, PODS "default/after", "{}");
    assert_true(REC_WAIT(&r2, r2.last >= rev2));
    assert_contiguous(&r2, rev2, rev2);
    assert_int_equal(r.after_error, 0);
    ck_watchcache_remove(c, w);
    ck_watchcache_remove(c, w2);
    ck_watchcache_free(c);
    rec_free(&r);
    rec_free(&r2);
}

#define CASES(be)                                                                             \
    cmocka_unit_test_prestate_setup_teardown(test_fanout, env_setup, env_teardown, be),       \
    cmocka_unit_test_prestate_setup_teardown(test_replay_then_live, env_setup, env_teardown, be), \
    cmocka_unit_test_prestate_setup_teardown(test_prefix_filter, env_setup, env_teardown, be), \
    cmocka_unit_test_prestate_setup_teardown(test_expired, env_setup, env_teardown, be),      \
    cmocka_unit_test_prestate_setup_teardown(test_remove_during_delivery, env_setup, env_teardown, be), \
    cmocka_unit_test_prestate_setup_teardown(test_memo_once, env_setup, env_teardown, be),    \
    cmocka_unit_test_prestate_setup_teardown(test_backend_resume, env_setup, env_teardown, be), \
    cmocka_unit_test_prestate_setup_teardown(test_backend_expired, env_setup, env_teardown, be), \
    cmocka_unit_test_prestate_setup_teardown(test_backend_down, env_setup, env_teardown, be), \
    cmocka_unit_test_prestate_setup_teardown(test_bookmarks_and_wait, env_setup, env_teardown, be), \
    cmocka_unit_test_prestate_setup_teardown(test_window_bytes, env_setup, env_teardown, be), \
    cmocka_unit_test_prestate_setup_teardown(test_future_rev, env_setup, env_teardown, be),   \
    cmocka_unit_test_prestate_setup_teardown(test_round_owner, env_setup, env_teardown, be),  \
    /* last two: not in the inline run (a blocking callback there holds the writer) */      \
    cmocka_unit_test_prestate_setup_teardown(test_expired_race, env_setup, env_teardown, be)

int main(void)
{
    int failed = 0;
    for (size_t i = 0; i < ARRAY_SIZE(backends); i++) {
        void *be = (void *)&backends[i];
        bool etcd = backends[i].open == open_etcd;
        const struct CMUnitTest tests[] = {
            CASES(be),
            cmocka_unit_test_prestate_setup_teardown(test_etcd_restart, env_setup, env_teardown, be),
        };
        char name[64];
        snprintf(name, sizeof(name), "watchcache/%s", backends[i].name);
        /* The etcd restart case only means something against the real etcd. */
        failed += _cmocka_run_group_tests(name, tests, ARRAY_SIZE(tests) - !etcd,
                                          etcd ? etcd_group_setup : NULL,
                                          etcd ? etcd_group_teardown : NULL);
        /* Again with rounds on the backend's thread, less the cases whose callbacks block. */
        inline_mode = true;
        snprintf(name, sizeof(name), "watchcache/%s/inline", backends[i].name);
        failed += _cmocka_run_group_tests(name, tests, ARRAY_SIZE(tests) - 2,
                                          etcd ? etcd_group_setup : NULL,
                                          etcd ? etcd_group_teardown : NULL);
        inline_mode = false;
    }
    return failed ? 1 : 0;
}
