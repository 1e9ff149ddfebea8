/* Tests for store/etcd.c against a real etcd started by etcd_harness.h: conditional writes,
 * pagination, watch order, expiry after compaction, endpoint errors, and a dead or hung etcd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include "etcd_harness.h"
#include "lib/error.h"
#include "lib/util.h"
#include "store/store.h"

static etcd_proc etcd;          /* shared by the group */
static ck_store *store;

static int group_setup(void **state)
{
    if (etcd_harness_start(&etcd) < 0)
        return -1;
    ck_error *err = NULL;
    store = ck_store_open_etcd(etcd.url, &err);
    if (!store) {
        fprintf(stderr, "open: %s\n", err->msg);
        ck_error_free(err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    ck_store_close(store);
    etcd_harness_destroy(&etcd);
    return 0;
}

static int64_t must_create(const char *key, const char *val)
{
    ck_error *err = NULL;
    int64_t rev = 0;
    int rc = ck_store_create(store, key, val, strlen(val), &rev, &err);
    if (rc < 0)
        fail_msg("create %s: %s", key, err->msg);
    return rev;
}

/* CODE_OF(call using &err): the error code of a call that must fail; frees and clears err. */
#define CODE_OF(call) ({ int rc_ = (call); enum ck_error_code c_ = code_of(rc_, err); err = NULL; c_; })
static enum ck_error_code code_of(int rc, ck_error *err)
{
    assert_int_equal(rc, -1);
    assert_non_null(err);
    enum ck_error_code c = err->code;
    ck_error_free(err);
    return c;
}

/* ---- a watch callback that copies what it gets ---- */

typedef struct seen {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ck_event *evs;
    size_t n, cap;
    int batches;
    bool ended;
    enum ck_error_code end_code;
    bool out_of_order;
    int64_t last_rev;
    int calls_after_end;
} seen;

static void seen_init(seen *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
}

static void seen_free(seen *s)
{
    for (size_t i = 0; i < s->n; i++)
        ck_event_free(&s->evs[i]);
    free(s->evs);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}

static char *dup_or_null(const char *p)
{
    return p ? xstrdup(p) : NULL;
}

static void seen_cb(void *ctx, const ck_event *evs, size_t n, const ck_error *err)
{
    seen *s = ctx;
    pthread_mutex_lock(&s->mu);
    if (s->ended)
        s->calls_after_end++;
    if (n == 0 && err) {
        s->ended = true;
        s->end_code = err->code;
    }
    if (n)
        s->batches++;
    for (size_t i = 0; i < n; i++) {
        if (s->n == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 64;
            s->evs = xrealloc(s->evs, s->cap * sizeof *s->evs);
        }
        ck_event *e = &s->evs[s->n++];
        *e = evs[i];
        e->kv.key = dup_or_null(evs[i].kv.key);
        e->kv.value = evs[i].kv.value ? xstrndup(evs[i].kv.value, evs[i].kv.value_len) : NULL;
        e->prev.key = dup_or_null(evs[i].prev.key);
        e->prev.value = evs[i].prev.value ? xstrndup(evs[i].prev.value, evs[i].prev.value_len)
                                          : NULL;
        if (evs[i].revision <= s->last_rev)
            s->out_of_order = true;
        s->last_rev = evs[i].revision;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Wait until `want` events arrived or the watch ended; false on timeout. */
static bool seen_wait(seen *s, size_t want, bool for_end, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    while (!(for_end ? s->ended : (s->n >= want || s->ended)))
        if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) != 0)
            break;
    bool ok = for_end ? s->ended : s->n >= want;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

/* ---- tests ---- */

static void test_open_errors(void **state)
{
    static const char *bad[] = {"", "ftp://127.0.0.1:2379", "not a url", "http://", ",",
                                "http://127.0.0.1:2379/?q=1"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        ck_error *err = NULL;
        assert_null(ck_store_open_etcd(bad[i], &err));
        assert_non_null(err);
        if (err->code != CK_E_INVALID)
            fail_msg("\"%s\": %s (%s)", bad[i], ck_error_name(err->code), err->msg);
        ck_error_free(err);
    }
    /* nothing listens on a port just freed: fails fast with UNAVAILABLE naming every endpoint */
    int p1 = etcd_harness_free_port(), p2 = etcd_harness_free_port();
    char *eps = xasprintf("http://127.0.0.1:%d,http://127.0.0.1:%d", p1, p2);
    char *u1 = xasprintf("127.0.0.1:%d", p1), *u2 = xasprintf("127.0.0.1:%d", p2);
    ck_error *err = NULL;
    int64_t t0 = ck_now_ns();
    assert_null(ck_store_open_etcd(eps, &err));
    assert_true(ck_now_ns() - t0 < 8000000000LL);   /* generous: loaded CI machines */
    assert_non_null(err);
    assert_int_equal(err->code, CK_E_UNAVAILABLE);
    assert_non_null(strstr(err->msg, u1));
    assert_non_null(strstr(err->msg, u2));
    ck_error_free(err);
    free(eps);
    free(u1);
    free(u2);

    /* a dead endpoint first, then the live one: every call fails over */
    eps = xasprintf(" http://127.0.0.1:%d/ , %s ", p1, etcd.url);
    ck_store *s2 = ck_store_open_etcd(eps, &err);
    assert_non_null(s2);
    int64_t rev = 0;
    assert_int_equal(ck_store_create(s2, "/t/open/failover", "x", 1, &rev, &err), 0);
    ck_kv kv;
    assert_int_equal(ck_store_get(s2, "/t/open/failover", &kv, &err), 0);
    assert_int_equal(kv.mod_revision, rev);
    ck_kv_free(&kv);
    seen sw;
    seen_init(&sw);
    ck_watch_handle *w = NULL;
    assert_int_equal(ck_store_watch(s2, "/t/open/", rev - 1, seen_cb, &sw, &w, &err), 0);
    assert_true(seen_wait(&sw, 1, false, 5000));
    assert_int_equal(sw.evs[0].revision, rev);
    ck_store_watch_cancel(s2, w);
    seen_free(&sw);
    ck_store_close(s2);
    free(eps);
}

static void test_crud_cas(void **state)
{
    ck_error *err = NULL;
    int64_t r1 = must_create("/t/crud/a", "one");
    assert_true(r1 > 0);
    int64_t rev = 0;
    assert_int_equal(CODE_OF(ck_store_create(store, "/t/crud/a", "x", 1, &rev, &err)),
                     CK_E_EXISTS);

    ck_kv kv;
    assert_int_equal(ck_store_get(store, "/t/crud/a", &kv, &err), 0);
    assert_string_equal(kv.key, "/t/crud/a");
    assert_string_equal(kv.value, "one");
    assert_int_equal(kv.value_len, 3);
    assert_int_equal(kv.create_revision, r1);
    assert_int_equal(kv.mod_revision, r1);
    ck_kv_free(&kv);

    /* update: right revision ok (+1), stale revision CONFLICT, missing key NOT_FOUND */
    int64_t r2 = 0;
    assert_int_equal(ck_store_update(store, "/t/crud/a", "two", 3, r1, &r2, &err), 0);
    assert_int_equal(r2, r1 + 1);
    assert_int_equal(CODE_OF(ck_store_update(store, "/t/crud/a", "3", 1, r1, &rev, &err)),
                     CK_E_CONFLICT);
    assert_int_equal(CODE_OF(ck_store_update(store, "/t/crud/none", "3", 1, 0, &rev, &err)),
                     CK_E_NOT_FOUND);
    assert_int_equal(CODE_OF(ck_store_update(store, "/t/crud/none", "3", 1, 5, &rev, &err)),
                     CK_E_NOT_FOUND);
    /* unconditional update; an empty value round-trips */
    int64_t r3 = 0;
    assert_int_equal(ck_store_update(store, "/t/crud/a", "", 0, 0, &r3, &err), 0);
    assert_int_equal(r3, r2 + 1);
    assert_int_equal(ck_store_get(store, "/t/crud/a", &kv, &err), 0);
    assert_int_equal(kv.value_len, 0);
    assert_string_equal(kv.value, "");
    assert_int_equal(kv.create_revision, r1);
    assert_int_equal(kv.mod_revision, r3);
    ck_kv_free(&kv);

    /* delete: stale CONFLICT (nothing deleted), right revision returns prev, then NOT_FOUND */
    assert_int_equal(CODE_OF(ck_store_delete(store, "/t/crud/a", r2, NULL, &rev, &err)),
                     CK_E_CONFLICT);
    ck_kv prev;
    int64_t r4 = 0;
    assert_int_equal(ck_store_delete(store, "/t/crud/a", r3, &prev, &r4, &err), 0);
    assert_int_equal(r4, r3 + 1);
    assert_string_equal(prev.key, "/t/crud/a");
    assert_int_equal(prev.mod_revision, r3);
    ck_kv_free(&prev);
    assert_int_equal(CODE_OF(ck_store_get(store, "/t/crud/a", &kv, &err)), CK_E_NOT_FOUND);
    assert_int_equal(CODE_OF(ck_store_delete(store, "/t/crud/a", 0, NULL, &rev, &err)),
                     CK_E_NOT_FOUND);
    assert_int_equal(CODE_OF(ck_store_create(store, "", "x", 1, &rev, &err)), CK_E_INVALID);

    /* binary-safe values (NUL bytes, high bytes) */
    const char bin[] = {'a', 0, (char)0xff, 'b', 0};
    assert_int_equal(ck_store_create(store, "/t/crud/bin", bin, sizeof bin, &rev, &err), 0);
    assert_int_equal(ck_store_get(store, "/t/crud/bin", &kv, &err), 0);
    assert_int_equal(kv.value_len, sizeof bin);
    assert_memory_equal(kv.value, bin, sizeof bin);
    ck_kv_free(&kv);

    int64_t cur = 0;
    assert_int_equal(ck_store_current_revision(store, &cur, &err), 0);
    assert_int_equal(cur, rev);
}

static void test_list_pagination(void **state)
{
    ck_error *err = NULL;
    char key[64];
    for (int i = 0; i < 25; i++) {
        snprintf(key, sizeof key, "/t/list/p/k%02d", i);
        must_create(key, "v");
    }
    /* neighbours that a sloppy prefix would include */
    must_create("/t/list/p", "parent");
    must_create("/t/list/p0/x", "sibling");
    must_create("/t/list/q/x", "other");

    ck_list_opts o = {.limit = 10};
    ck_list l;
    assert_int_equal(ck_store_list(store, "/t/list/p/", &o, &l, &err), 0);
    assert_int_equal(l.n, 10);
    assert_true(l.more);
    assert_int_equal(l.remaining, 15);
    assert_string_equal(l.items[0].key, "/t/list/p/k00");
    assert_string_equal(l.items[9].key, "/t/list/p/k09");
    assert_string_equal(l.items[0].value, "v");
    int64_t at = l.revision;
    char *next = xstrdup(l.items[9].key);
    ck_list_free(&l);

    /* writes between pages do not show in a list pinned at a revision */
    must_create("/t/list/p/k10a", "late");
    assert_int_equal(ck_store_delete(store, "/t/list/p/k20", 0, NULL, NULL, &err), 0);

    o = (ck_list_opts){.limit = 10, .revision = at, .start_after = next};
    assert_int_equal(ck_store_list(store, "/t/list/p/", &o, &l, &err), 0);
    assert_int_equal(l.n, 10);
    assert_int_equal(l.revision, at);
    assert_string_equal(l.items[0].key, "/t/list/p/k10");
    assert_string_equal(l.items[9].key, "/t/list/p/k19");
    assert_true(l.more);
    assert_int_equal(l.remaining, 5);
    free(next);
    next = xstrdup(l.items[9].key);
    ck_list_free(&l);

    o.start_after = next;
    assert_int_equal(ck_store_list(store, "/t/list/p/", &o, &l, &err), 0);
    assert_int_equal(l.n, 5);
    assert_false(l.more);
    assert_int_equal(l.remaining, 0);
    assert_string_equal(l.items[0].key, "/t/list/p/k20");
    assert_string_equal(l.items[4].key, "/t/list/p/k24");
    free(next);
    ck_list_free(&l);

    /* current state: k10a added, k20 gone; keys only; count only */
    o = (ck_list_opts){.keys_only = true};
    assert_int_equal(ck_store_list(store, "/t/list/p/", &o, &l, &err), 0);
    assert_int_equal(l.n, 25);
    assert_false(l.more);
    assert_string_equal(l.items[11].key, "/t/list/p/k10a");
    assert_int_equal(l.items[0].value_len, 0);
    assert_true(l.items[0].mod_revision > 0);
    ck_list_free(&l);
    o = (ck_list_opts){.count_only = true};
    assert_int_equal(ck_store_list(store, "/t/list/p/", &o, &l, &err), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(l.remaining, 25);
    assert_true(l.revision > at);
    ck_list_free(&l);

    /* a continue key outside the prefix is refused */
    o = (ck_list_opts){.start_after = "/t/other"};
    assert_int_equal(CODE_OF(ck_store_list(store, "/t/list/p/", &o, &l, &err)), CK_E_INVALID);
}

static void test_large_value(void **state)
{
    ck_error *err = NULL;
    size_t n = 1536 * 1024;   /* the largest object upstream's etcd default admits */
    char *v = xmalloc(n);
    for (size_t i = 0; i < n; i++)
        v[i] = (char)(i * 7 + 3);
    int64_t rev = 0;
    seen sw;
    seen_init(&sw);
    ck_watch_handle *w = NULL;
    assert_int_equal(ck_store_watch(store, "/t/large/", 0, seen_cb, &sw, &w, &err), 0);
    if (ck_store_create(store, "/t/large/a", v, n, &rev, &err) < 0)
        fail_msg("create 1.5 MiB: %s", err->msg);
    /* the watch carries it too, and an update carries old and new (2 x 1.5 MiB in one message) */
    int64_t rev2 = 0;
    assert_int_equal(ck_store_update(store, "/t/large/a", v, n, rev, &rev2, &err), 0);
    assert_true(seen_wait(&sw, 2, false, 10000));
    ck_store_watch_cancel(store, w);
    assert_int_equal(sw.evs[1].revision, rev2);
    assert_int_equal(sw.evs[1].kv.value_len, n);
    assert_memory_equal(sw.evs[1].kv.value, v, n);
    assert_int_equal(sw.evs[1].prev.value_len, n);
    seen_free(&sw);
    ck_kv kv;
    assert_int_equal(ck_store_get(store, "/t/large/a", &kv, &err), 0);
    assert_int_equal(kv.value_len, n);
    assert_memory_equal(kv.value, v, n);
    ck_kv_free(&kv);
    free(v);
}

typedef struct writer_arg {
    int id, n;
    const char *prefix;
    int64_t *revs;
    int failures;
} writer_arg;

/* create, update and delete its own keys; records each write's revision */
static void *writer(void *p)
{
    writer_arg *a = p;
    char key[96];
    for (int i = 0; i < a->n; i++) {
        ck_error *err = NULL;
        snprintf(key, sizeof key, "%s/w%d/k%d", a->prefix, a->id, i / 3);
        int rc;
        switch (i % 3) {
        case 0: rc = ck_store_create(store, key, "c", 1, &a->revs[i], &err); break;
        case 1: rc = ck_store_update(store, key, "u", 1, a->revs[i - 1], &a->revs[i], &err); break;
        default: rc = ck_store_delete(store, key, a->revs[i - 1], NULL, &a->revs[i], &err); break;
        }
        if (rc < 0) {
            a->failures++;
            ck_error_free(err);
        }
    }
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_watch_order(void **state)
{
    ck_error *err = NULL;
    int64_t start = must_create("/t/watch/pre", "before");
    must_create("/t/watchx/outside", "x");   /* not under "/t/watch/" */
    seen s;
    seen_init(&s);
    ck_watch_handle *w = NULL;
    /* from just before "pre": the first event is its creation */
    assert_int_equal(ck_store_watch(store, "/t/watch/", start - 1, seen_cb, &s, &w, &err), 0);

    enum { T = 4, N = 60 };
    pthread_t th[T];
    writer_arg args[T];
    int64_t revs[T][N];
    for (int t = 0; t < T; t++) {
        args[t] = (writer_arg){.id = t, .n = N, .prefix = "/t/watch", .revs = revs[t]};
        pthread_create(&th[t], NULL, writer, &args[t]);
    }
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(args[t].failures, 0);
    }
    must_create("/t/watchx/outside2", "x");
    assert_true(seen_wait(&s, 1 + T * N, false, 10000));
    ck_store_watch_cancel(store, w);

    assert_false(s.ended);
    assert_false(s.out_of_order);
    assert_int_equal(s.n, 1 + T * N);
    assert_true(s.batches >= 1);
    assert_int_equal(s.evs[0].revision, start);
    assert_true(s.evs[0].created);
    assert_string_equal(s.evs[0].kv.value, "before");
    /* the events are exactly the writers' revisions, each with the right shape */
    int64_t all[T * N];
    for (int t = 0; t < T; t++)
        memcpy(all + t * N, revs[t], sizeof revs[t]);
    qsort(all, T * N, sizeof all[0], cmp_i64);
    for (size_t i = 1; i < s.n; i++) {
        ck_event *e = &s.evs[i];
        assert_int_equal(e->revision, all[i - 1]);
        assert_non_null(strstr(e->kv.key, "/t/watch/w"));
        int id, k;
        assert_int_equal(sscanf(e->kv.key, "/t/watch/w%d/k%d", &id, &k), 2);
        int step = -1;
        for (int j = 0; j < 3; j++)
            if (revs[id][k * 3 + j] == e->revision)
                step = j;
        assert_int_not_equal(step, -1);
        assert_int_equal(e->type, step == 2 ? CK_EVENT_DELETE : CK_EVENT_PUT);
        assert_int_equal(e->created, step == 0);
        if (step == 0) {
            assert_null(e->prev.key);
        } else {
            assert_non_null(e->prev.key);
            assert_int_equal(e->prev.mod_revision, revs[id][k * 3 + step - 1]);
            assert_string_equal(e->prev.value, step == 1 ? "c" : "u");
        }
    }
    seen_free(&s);
}

static void test_watch_from_now_and_cancel(void **state)
{
    ck_error *err = NULL;
    seen s;
    seen_init(&s);
    ck_watch_handle *w = NULL;
    assert_int_equal(ck_store_watch(store, "/t/now/", 0, seen_cb, &s, &w, &err), 0);
    int64_t rev = must_create("/t/now/a", "1");   /* right after watch() returns: must be seen */
    assert_true(seen_wait(&s, 1, false, 5000));
    assert_int_equal(s.evs[0].revision, rev);
    /* an idle watch cancels promptly */
    int64_t t0 = ck_now_ns();
    ck_store_watch_cancel(store, w);
    assert_true(ck_now_ns() - t0 < 3000000000LL);
    must_create("/t/now/b", "2");
    assert_int_equal(s.n, 1);
    assert_false(s.ended);
    seen_free(&s);
}

/* A callback that cancels its own watch from inside the callback. */
typedef struct self_cancel {
    ck_watch_handle *w;
    atomic_int calls;
} self_cancel;

static void self_cancel_cb(void *ctx, const ck_event *evs, size_t n, const ck_error *err)
{
    self_cancel *sc = ctx;
    atomic_fetch_add(&sc->calls, 1);
    ck_store_watch_cancel(store, sc->w);
}

static void test_watch_cancel_in_callback(void **state)
{
    ck_error *err = NULL;
    self_cancel sc = {0};
    assert_int_equal(ck_store_watch(store, "/t/self/", 0, self_cancel_cb, &sc, &sc.w, &err), 0);
    must_create("/t/self/a", "1");
    for (int i = 0; i < 100 && atomic_load(&sc.calls) == 0; i++)
        etcd_harness_sleep_ms(20);
    must_create("/t/self/b", "1");
    etcd_harness_sleep_ms(200);
    assert_int_equal(atomic_load(&sc.calls), 1);
}

static void test_compaction_expired(void **state)
{
    ck_error *err = NULL;
    int64_t r1 = must_create("/t/compact/a", "1");
    int64_t r2 = 0, r3 = 0;
    assert_int_equal(ck_store_update(store, "/t/compact/a", "2", 1, r1, &r2, &err), 0);
    assert_int_equal(ck_store_update(store, "/t/compact/a", "3", 1, r2, &r3, &err), 0);
    assert_int_equal(ck_store_compact(store, r3, &err), 0);
    assert_int_equal(ck_store_compact(store, r2, &err), 0);   /* already done: not an error */

    ck_list l;
    ck_list_opts o = {.revision = r1};
    assert_int_equal(CODE_OF(ck_store_list(store, "/t/compact/", &o, &l, &err)), CK_E_EXPIRED);
    /* current values are kept */
    ck_kv kv;
    assert_int_equal(ck_store_get(store, "/t/compact/a", &kv, &err), 0);
    assert_string_equal(kv.value, "3");
    ck_kv_free(&kv);
    o.revision = r3;
    assert_int_equal(ck_store_list(store, "/t/compact/", &o, &l, &err), 0);
    assert_int_equal(l.n, 1);
    ck_list_free(&l);

    /* a watch from compacted history ends with EXPIRED (at once or by its one callback) */
    seen s;
    seen_init(&s);
    ck_watch_handle *w = NULL;
    int rc = ck_store_watch(store, "/t/compact/", r1, seen_cb, &s, &w, &err);
    if (rc == 0) {
        assert_true(seen_wait(&s, 0, true, 5000));
        assert_int_equal(s.end_code, CK_E_EXPIRED);
        assert_int_equal(s.n, 0);
        ck_store_watch_cancel(store, w);
        assert_int_equal(s.calls_after_end, 0);
    } else {
        assert_int_equal(code_of(rc, err), CK_E_EXPIRED);
    }
    seen_free(&s);
    /* a future revision is refused as upstream does ("Too large resource version") */
    int64_t cur = 0;
    assert_int_equal(ck_store_current_revision(store, &cur, &err), 0);
    o.revision = cur + 100;
    assert_int_equal(CODE_OF(ck_store_list(store, "/t/compact/", &o, &l, &err)), CK_E_TIMEOUT);
}

static void test_concurrent_writers(void **state)
{
    ck_error *err = NULL;
    enum { T = 16, N = 30 };
    int64_t before = 0, after = 0;
    assert_int_equal(ck_store_current_revision(store, &before, &err), 0);
    pthread_t th[T];
    writer_arg args[T];
    static int64_t revs[T][N];
    for (int t = 0; t < T; t++) {
        args[t] = (writer_arg){.id = t, .n = N, .prefix = "/t/conc", .revs = revs[t]};
        pthread_create(&th[t], NULL, writer, &args[t]);
    }
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(args[t].failures, 0);
    }
    assert_int_equal(ck_store_current_revision(store, &after, &err), 0);
    assert_int_equal(after - before, T * N);   /* one revision per write, none lost */
    int64_t all[T * N];
    for (int t = 0; t < T; t++)
        memcpy(all + t * N, revs[t], sizeof revs[t]);
    qsort(all, T * N, sizeof all[0], cmp_i64);
    for (int i = 0; i < T * N; i++)
        assert_int_equal(all[i], before + 1 + i);
}

/* A stopped etcd: calls fail fast with UNAVAILABLE, an active watch ends with UNAVAILABLE; after a
 * restart the same store works again.  A hung (SIGSTOPped) etcd: calls time out as UNAVAILABLE. */
static etcd_proc dying;

static void test_dead_etcd(void **state)
{
    assert_int_equal(etcd_harness_start(&dying), 0);
    setenv("CKUBE_ETCD_TIMEOUT_MS", "1500", 1);
    ck_error *err = NULL;
    ck_store *s = ck_store_open_etcd(dying.url, &err);
    unsetenv("CKUBE_ETCD_TIMEOUT_MS");
    assert_non_null(s);
    int64_t rev = 0;
    assert_int_equal(ck_store_create(s, "/t/dead/a", "1", 1, &rev, &err), 0);

    seen sw;
    seen_init(&sw);
    ck_watch_handle *w = NULL;
    assert_int_equal(ck_store_watch(s, "/t/dead/", rev, seen_cb, &sw, &w, &err), 0);

    /* hung server: a bounded wait, then UNAVAILABLE */
    etcd_harness_pause(&dying);
    int64_t t0 = ck_now_ns();
    ck_kv kv;
    assert_int_equal(CODE_OF(ck_store_get(s, "/t/dead/a", &kv, &err)), CK_E_UNAVAILABLE);
    int64_t took = ck_now_ns() - t0;
    assert_true(took >= 1000000000LL && took < 10000000000LL);
    /* a list is not capped at the request timeout but fails once no byte arrives for it */
    ck_list l;
    t0 = ck_now_ns();
    assert_int_equal(CODE_OF(ck_store_list(s, "/t/dead/", NULL, &l, &err)), CK_E_UNAVAILABLE);
    took = ck_now_ns() - t0;
    assert_true(took >= 1000000000LL && took < 12000000000LL);
    /* a watch that etcd never confirms */
    {
        seen sw3;
        seen_init(&sw3);
        ck_watch_handle *w3 = NULL;
        t0 = ck_now_ns();
        assert_int_equal(CODE_OF(ck_store_watch(s, "/t/dead/", rev, seen_cb, &sw3, &w3, &err)),
                         CK_E_UNAVAILABLE);
        assert_true(ck_now_ns() - t0 < 12000000000LL);
        seen_free(&sw3);
    }
    etcd_harness_resume(&dying);
    assert_int_equal(ck_store_get(s, "/t/dead/a", &kv, &err), 0);
    ck_kv_free(&kv);
    assert_false(sw.ended);

    etcd_harness_stop(&dying);
    assert_true(seen_wait(&sw, 0, true, 10000));
    assert_int_equal(sw.end_code, CK_E_UNAVAILABLE);
    t0 = ck_now_ns();
    assert_int_equal(CODE_OF(ck_store_get(s, "/t/dead/a", &kv, &err)), CK_E_UNAVAILABLE);
    assert_int_equal(CODE_OF(ck_store_create(s, "/t/dead/b", "1", 1, &rev, &err)),
                     CK_E_UNAVAILABLE);
    assert_int_equal(CODE_OF(ck_store_list(s, "/t/dead/", NULL, &l, &err)), CK_E_UNAVAILABLE);
    ck_watch_handle *w2 = NULL;
    seen sw2;
    seen_init(&sw2);
    assert_int_equal(CODE_OF(ck_store_watch(s, "/t/dead/", 1, seen_cb, &sw2, &w2, &err)),
                     CK_E_UNAVAILABLE);
    assert_true(ck_now_ns() - t0 < 8000000000LL);   /* refused connections fail fast */
    ck_store_watch_cancel(s, w);
    assert_int_equal(sw.calls_after_end, 0);

    assert_int_equal(etcd_harness_restart(&dying), 0);
    assert_int_equal(ck_store_get(s, "/t/dead/a", &kv, &err), 0);
    assert_string_equal(kv.value, "1");
    ck_kv_free(&kv);
    ck_store_close(s);
    etcd_harness_destroy(&dying);
    seen_free(&sw);
    seen_free(&sw2);
}

/* The shared conformance suite, each case on a freshly opened store over the group's etcd. */
static int conf_setup(void **state)
{
    ck_error *err = NULL;
    *state = ck_store_open_etcd(etcd.url, &err);
    if (!*state) {
        fprintf(stderr, "open: %s\n", err->msg);
        ck_error_free(err);
        return -1;
    }
    return 0;
}

static int conf_teardown(void **state)
{
    ck_store_close(*state);
    return 0;
}

#include "store_conformance.h"

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_crud_cas),
        cmocka_unit_test(test_list_pagination),
        cmocka_unit_test(test_large_value),
        cmocka_unit_test(test_watch_order),
        cmocka_unit_test(test_watch_from_now_and_cancel),
        cmocka_unit_test(test_watch_cancel_in_callback),
        cmocka_unit_test(test_compaction_expired),
        cmocka_unit_test(test_concurrent_writers),
        cmocka_unit_test(test_dead_etcd),
    };
    int failed = cmocka_run_group_tests_name("store_etcd", tests, group_setup, group_teardown);
    size_t n;
    const struct CMUnitTest *conf = store_conformance_tests(conf_setup, conf_teardown, &n);
    failed += _cmocka_run_group_tests("store_conformance_etcd", conf, n, group_setup,
                                      group_teardown);
    return failed;
}
