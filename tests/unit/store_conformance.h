/* store_conformance.h - the one conformance suite every store backend (store/store.h) must pass.
 *
 * The cases use only the ck_store interface.  A backend test file provides a cmocka setup that opens
 * a store and puts the `ck_store *` in *state, and a teardown that closes it (and removes its files),
 * then includes this header and runs the suite:
 *
 *     static int setup(void **state) { *state = open_my_store(); return *state ? 0 : -1; }
 *     static int teardown(void **state) { ck_store_close(*state); ...; return 0; }
 *     #include "store_conformance.h"
 *     int main(void) {
 *         size_t n;
 *         const struct CMUnitTest *t = store_conformance_tests(setup, teardown, &n);
 *         return _cmocka_run_group_tests("store_conformance_mybackend", t, n, NULL, NULL);
 *     }
 *
 * Every case writes under its own random root ("/registry/conf-<random>/..."), so a backend whose
 * setup cannot give a fresh store (a shared etcd) still passes; cases never assume an empty store.
 * Revision checks assume nothing else writes to the store while a case runs.
 *
 * Semantics pinned down here (both backends follow them):
 *  - list/watch at a revision below the compacted revision: CK_E_EXPIRED (watch may return it from
 *    watch() or deliver it to the callback as the ending call).  Cases only use revisions well below
 *    the compacted one, so either "<" or "<=" at the boundary passes.
 *  - count_only: n == 0 and `remaining` holds the number of matching keys.
 *  - list at a revision above the current one: CK_E_TIMEOUT ("Too large resource version", as
 *    upstream answers 504 with a retry).
 *  - ck_store_watch_cancel() may be called from inside the watch's own callback.
 *  - watch with after_rev 0 ("from now") delivers every write that starts after watch() returned
 *    (a backend whose watch is set up asynchronously must pin the current revision first).
 *  - values of 1.5 MiB must work (etcd: start it with --max-request-bytes >= 2 MiB).
 */
#ifndef CK_STORE_CONFORMANCE_H
#define CK_STORE_CONFORMANCE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <cmocka.h>

#include "lib/error.h"
#include "lib/util.h"
#include "store/store.h"

#define SC_WAIT_MS 20000   /* how long a case waits for a watch event before failing */

/* Set by a backend test before a second run of the suite: every watch the cases open is declared
 * inline (ck_store_watch_inline; the cases' callbacks are short and never write). */
static bool sc_inline_watches;

/* ---- small helpers ---------------------------------------------------------------------------- */

/* A random root for one case, e.g. "/registry/conf-k3j9x0/". */
static void sc_root(char out[64])
{
    char sfx[37];
    ck_uuid4(sfx);
    snprintf(out, 64, "/registry/conf-%.8s/", sfx);
}

static char *sc_key(const char *root, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *sc_key(const char *root, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *tail = xvasprintf(fmt, ap);
    va_end(ap);
    char *k = xasprintf("%s%s", root, tail);
    free(tail);
    return k;
}

/* Fail the case with the error's message if rc != 0. */
#define SC_OK(call)                                                                         \
    do {                                                                                    \
        ck_error *sc_e_ = NULL;                                                             \
        ck_error **err_ = &sc_e_;                                                           \
        (void)err_;                                                                         \
        if ((call) != 0) {                                                                  \
            print_error("%s failed: %s (%s)\n", #call, sc_e_ ? sc_e_->msg : "?",           \
                        sc_e_ ? ck_error_name(sc_e_->code) : "?");                          \
            ck_error_free(sc_e_);                                                           \
            fail();                                                                         \
        }                                                                                   \
        ck_error_free(sc_e_);                                                               \
    } while (0)

/* Expect the call to fail with `code`. */
#define SC_FAILS(call, want_code)                                                                \
    do {                                                                                    \
        ck_error *sc_e_ = NULL;                                                             \
        ck_error **err_ = &sc_e_;                                                           \
        (void)err_;                                                                         \
        int sc_rc_ = (call);                                                                \
        if (sc_rc_ != -1 || !sc_e_ || sc_e_->code != (want_code)) {                              \
            print_error("%s: want %s, got rc=%d %s (%s)\n", #call, ck_error_name(want_code),     \
                        sc_rc_, sc_e_ ? ck_error_name(sc_e_->code) : "no error",            \
                        sc_e_ && sc_e_->msg ? sc_e_->msg : "");                             \
            ck_error_free(sc_e_);                                                           \
            fail();                                                                         \
        }                                                                                   \
        ck_error_free(sc_e_);                                                               \
    } while (0)

/* Inside SC_OK/SC_FAILS write `err_` as the error argument. */

static int64_t sc_create(ck_store *s, const char *key, const char *val)
{
    int64_t rev = 0;
    SC_OK(ck_store_create(s, key, val, strlen(val), &rev, err_));
    assert_true(rev > 0);
    return rev;
}

static int64_t sc_update(ck_store *s, const char *key, const char *val, int64_t expect)
{
    int64_t rev = 0;
    SC_OK(ck_store_update(s, key, val, strlen(val), expect, &rev, err_));
    assert_true(rev > 0);
    return rev;
}

static int64_t sc_delete(ck_store *s, const char *key, int64_t expect)
{
    int64_t rev = 0;
    SC_OK(ck_store_delete(s, key, expect, NULL, &rev, err_));
    assert_true(rev > 0);
    return rev;
}

static int64_t sc_current(ck_store *s)
{
    int64_t rev = -1;
    SC_OK(ck_store_current_revision(s, &rev, err_));
    assert_true(rev >= 0);
    return rev;
}

static void sc_assert_value(ck_store *s, const char *key, const char *want)
{
    ck_kv kv = {0};
    SC_OK(ck_store_get(s, key, &kv, err_));
    assert_string_equal(kv.key, key);
    assert_int_equal(kv.value_len, strlen(want));
    assert_memory_equal(kv.value, want, kv.value_len);
    ck_kv_free(&kv);
}

/* ---- a watch collector: copies every event; the test thread waits on it ---------------------- */

typedef struct sc_ev {
    enum ck_event_type type;
    int64_t revision;
    bool created;
    char *key, *value, *prev_key, *prev_value;   /* values: NUL-terminated copies */
    size_t value_len, prev_value_len;
    int64_t create_revision, mod_revision, prev_mod_revision;
} sc_ev;

static char *sc_memdup(const char *p, size_t n)
{
    char *c = xmalloc(n + 1);
    if (n)
        memcpy(c, p, n);
    c[n] = '\0';
    return c;
}

typedef struct sc_watch {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    sc_ev *evs;
    size_t n, cap;
    bool ended;
    enum ck_error_code end_code;
    int bad_calls;          /* n > 0 with err set, or calls after the end */
    int empty_calls;        /* n == 0 without err */
    ck_watch_handle *h;
} sc_watch;

static void sc_watch_cb(void *ctx, const ck_event *events, size_t n, const ck_error *err)
{
    sc_watch *w = ctx;
    pthread_mutex_lock(&w->mu);
    if (w->ended || (n > 0 && err))
        w->bad_calls++;
    if (n == 0 && !err)
        w->empty_calls++;
    for (size_t i = 0; i < n; i++) {
        if (w->n == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 64;
            w->evs = xrealloc(w->evs, w->cap * sizeof *w->evs);
        }
        const ck_event *e = &events[i];
        sc_ev *c = &w->evs[w->n++];
        memset(c, 0, sizeof *c);
        c->type = e->type;
        c->revision = e->revision;
        c->created = e->created;
        c->key = e->kv.key ? xstrdup(e->kv.key) : NULL;
        c->value = e->kv.value ? sc_memdup(e->kv.value, e->kv.value_len) : NULL;
        c->value_len = e->kv.value_len;
        c->create_revision = e->kv.create_revision;
        c->mod_revision = e->kv.mod_revision;
        c->prev_key = e->prev.key ? xstrdup(e->prev.key) : NULL;
        c->prev_value = e->prev.key && e->prev.value ? sc_memdup(e->prev.value, e->prev.value_len)
                                                     : NULL;
        c->prev_value_len = e->prev.value_len;
        c->prev_mod_revision = e->prev.mod_revision;
    }
    if (n == 0 && err) {
        w->ended = true;
        w->end_code = err->code;
    }
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

static void sc_watch_init(sc_watch *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
}

/* Start a watch; returns 0, or -1 with *code set if watch() itself failed. */
static int sc_watch_start(ck_store *s, sc_watch *w, const char *prefix, int64_t after,
                          enum ck_error_code *code)
{
    sc_watch_init(w);
    ck_error *e = NULL;
    if (ck_store_watch(s, prefix, after, sc_watch_cb, w, &w->h, &e) != 0) {
        *code = e ? e->code : CK_E_INTERNAL;
        ck_error_free(e);
        w->h = NULL;
        return -1;
    }
    if (sc_inline_watches)
        ck_store_watch_inline(s, w->h);
    return 0;
}

static void sc_watch_stop(ck_store *s, sc_watch *w)
{
    if (w->h)
        ck_store_watch_cancel(s, w->h);
    w->h = NULL;
    for (size_t i = 0; i < w->n; i++) {
        free(w->evs[i].key);
        free(w->evs[i].value);
        free(w->evs[i].prev_key);
        free(w->evs[i].prev_value);
    }
    free(w->evs);
    w->evs = NULL;
    w->n = w->cap = 0;
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cond);
}

/* Wait until the watch has seen an event with revision >= rev (or `count` events if rev == 0), or
 * ended; true if reached. */
static bool sc_watch_wait(sc_watch *w, int64_t rev, size_t count)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += SC_WAIT_MS / 1000;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        bool done = rev ? (w->n > 0 && w->evs[w->n - 1].revision >= rev) : w->n >= count;
        if (done || w->ended) {
            pthread_mutex_unlock(&w->mu);
            return done;
        }
        if (pthread_cond_timedwait(&w->cond, &w->mu, &dl) != 0) {
            done = rev ? (w->n > 0 && w->evs[w->n - 1].revision >= rev) : w->n >= count;
            pthread_mutex_unlock(&w->mu);
            return done;
        }
    }
}

static bool sc_watch_wait_end(sc_watch *w)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += SC_WAIT_MS / 1000;
    pthread_mutex_lock(&w->mu);
    while (!w->ended && pthread_cond_timedwait(&w->cond, &w->mu, &dl) == 0)
        ;
    bool ended = w->ended;
    pthread_mutex_unlock(&w->mu);
    return ended;
}

static void sc_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- cases ------------------------------------------------------------------------------------ */

static void sc_test_create_get(void **state)
{
    ck_store *s = *state;
    char root[64];
    sc_root(root);
    cleanup_free char *k = sc_key(root, "pods/default/a");
    cleanup_free char *missing = sc_key(root, "pods/default/missing");

    int64_t before = sc_current(s);
    int64_t rev = sc_create(s, k, "{\"v\":1}");
    assert_true(rev > before);

    ck_kv kv = {0};
    SC_OK(ck_store_get(s, k, &kv, err_));
    assert_string_equal(kv.key, k);
    assert_string_equal(kv.value, "{\"v\":1}");
    assert_int_equal(kv.value_len, 7);
    assert_int_equal(kv.create_revision, rev);
    assert_int_equal(kv.mod_revision, rev);
    ck_kv_free(&kv);

    int64_t r2 = 0;
    SC_FAILS(ck_store_create(s, k, "x", 1, &r2, err_), CK_E_EXISTS);
    SC_FAILS(ck_store_get(s, missing, &kv, err_), CK_E_NOT_FOUND);
    SC_FAILS(ck_store_create(s, "", "x", 1, &r2, err_), CK_E_INVALID);
    /* a failed write does not consume a revision */
    assert_int_equal(sc_current(s), rev);
    sc_assert_value(s, k, "{\"v\":1}");

    /* an empty value is a value */
    cleanup_free char *k2 = sc_key(root, "pods/default/empty");
    int64_t r3 = sc_create(s, k2, "");
    assert_int_equal(r3, rev + 1);
    SC_OK(ck_store_get(s, k2, &kv, err_));
    assert_int_equal(kv.value_len, 0);
    ck_kv_free(&kv);
}

static void sc_test_update_cas(void **state)
{
    ck_store *s = *state;
    char root[64];
    sc_root(root);
    cleanup_free char *k = sc_key(root, "cm/ns/a");
    cleanup_free char *missing = sc_key(root, "cm/ns/missing");

    int64_t r1 = sc_create(s, k, "one");
    int64_t r2 = sc_update(s, k, "two", r1);
    assert_int_equal(r2, r1 + 1);

    int64_t out = 0;
    SC_FAILS(ck_store_update(s, k, "stale", 5, r1, &out, err_), CK_E_CONFLICT);
    sc_assert_value(s, k, "two");
    SC_FAILS(ck_store_update(s, missing, "x", 1, 0, &out, err_), CK_E_NOT_FOUND);
    SC_FAILS(ck_store_update(s, missing, "x", 1, r2, &out, err_), CK_E_NOT_FOUND);
    assert_int_equal(sc_current(s), r2);

    int64_t r3 = sc_update(s, k, "three", 0);   /* unconditional */
    assert_int_equal(r3, r2 + 1);
    ck_kv kv = {0};
    SC_OK(ck_store_get(s, k, &kv, err_));
    assert_string_equal(kv.value, "three");
    assert_int_equal(kv.create_revision, r1);
    assert_int_equal(kv.mod_revision, r3);
    ck_kv_free(&kv);
}

typedef struct sc_cas_arg {
    ck_store *s;
    const char *key;
    int incs;
    int failures;
    int conflicts;
} sc_cas_arg;

static void *sc_cas_thread(void *p)
{
    sc_cas_arg *a = p;
    for (int i = 0; i < a->incs;) {
        ck_kv kv = {0};
        ck_error *e = NULL;
        if (ck_store_get(a->s, a->key, &kv, &e) != 0) {
            ck_error_free(e);
            a->failures++;
            return NULL;
        }
        long v = strtol(kv.value, NULL, 10);
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%ld", v + 1);
        int64_t rev;
        int rc = ck_store_update(a->s, a->key, buf, (size_t)n, kv.mod_revision, &rev, &e);
        ck_kv_free(&kv);
        if (rc == 0) {
            i++;
        } else if (e && e->code == CK_E_CONFLICT) {
            a->conflicts++;
        } else {
            a->failures++;
            ck_error_free(e);
            return NULL;
        }
        ck_error_free(e);
    }
    return NULL;
}

/* Read-modify-write with CAS from many threads loses no increment. */
static void sc_test_cas_counter(void **state)
{
    ck_store *s = *state;
    char root[64];
    sc_root(root);
    cleanup_free char *k = sc_key(root, "counter");
    sc_create(s, k, "0");
    enum { T = 8, INCS = 25 };
    pthread_t th[T];
    sc_cas_arg args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (sc_cas_arg){s, k, INCS, 0, 0};
        pthread_create(&th[i], NULL, sc_cas_thread, &args[i]);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    char want[16];
    snprintf(want, sizeof want, "%d", T * INCS);
    sc_assert_value(s, k, want);
}

static void sc_test_delete(void **state)
{
    ck_store *s = *state;
    char root[64];
    sc_root(root);
    cleanup_free char *k = sc_key(root, "secrets/ns/a");

    int64_t r1 = sc_create(s, k, "v1");
    int64_t r2 = sc_update(s, k, "v2", r1);
    int64_t out = 0;
    SC_FAILS(ck_store_delete(s, k, r1, NULL, &out, err_), CK_E_CONFLICT);
    sc_assert_value(s, k, "v2");

    ck_kv prev = {0};
    int64_t r3 = 0;
    SC_OK(ck_store_delete(s, k, r2, &prev, &r3, err_));
    assert_int_equal(r3, r2 + 1);
    assert_non_null(prev.key);
    assert_string_equal(prev.key, k);
    assert_string_equal(prev.value, "v2");
    assert_int_equal(prev.mod_revision, r2);
    assert_int_equal(prev.create_revision, r1);
    ck_kv_free(&prev);

    ck_kv kv = {0};
    SC_FAILS(ck_store_get(s, k, &kv, err_), CK_E_NOT_FOUND);
    SC_FAILS(ck_store_delete(s, k, 0, NULL, &out, err_), CK_E_NOT_FOUND);
    SC_FAILS(ck_store_update(s, k, "x", 1, 0, &out, err_), CK_E_NOT_FOUND);
    assert_int_equal(sc_current(s), r3);

    /* re-create after delete: a new object (new create_revision) */
    int64_t r4 = sc_create(s, k, "v3");
    assert_int_equal(r4, r3 + 1);
    SC_OK(ck_store_get(s, k, &kv, err_));
    assert_int_equal(kv.create_revision, r4);
    ck_kv_free(&kv);

    /* unconditional delete */
    int64_t r5 = sc_delete(s, k, 0);
    assert_int_equal(r5, r4 + 1);
    cleanup_free char *list_prefix = xstrdup(root);
    ck_list l = {0};
    SC_OK(ck_store_list(s, list_prefix, &(ck_list_opts){0}, &l, err_));
    assert_int_equal(l.n, 0);
    ck_list_free(&l);
}

static void sc_test_revisions(void **state)
{
    ck_store *s = *state;
    char root[64];
    sc_root(root);
    int64_t last = sc_current(s);
    for (int i = 0; i < 30; i++) {
        cleanup_free char *k = sc_key(root, "k%d", i % 7);
        ck_kv kv = {0};
        ck_error *e = NULL;
        int64_t rev;
        if (ck_store_get(s, k, &kv, &e) == 0) {
            rev = (i % 3 == 0) ? sc_delete(s, k, kv.mod_revision) : sc_update(s, k, "u", 0);
            ck_kv_free(&kv);
        } else {
            assert_int_equal(e->code, CK_E_NOT_FOUND);
            ck_error_free(e);
            rev = sc_create(s, k, "c");
        }
        assert_int_equal(rev, last + 1);   /* strictly +1, global across keys and ops */
        last = rev;
        assert_int_equal(sc_current(s), last);
    }
}

/* Fetch a whole prefix page by page at one revision, checking more/remaining on each page. */
static void sc_list_paged(ck_store *s, const char *prefix, int64_t rev, size_t limit, ck_list *all)
{
    memset(all, 0, sizeof *all);
    cleanup_free char *after = NULL;
    size_t cap = 0;
    for (int pages = 0;; pages++) {
        assert_true(pages < 100000);
        ck_list_opts o = {.revision = rev, .limit = limit, .start_after = after};
        ck_list l = {0};
        SC_OK(ck_store_list(s, prefix, &o, &l, err_));
        assert_true(l.n <= limit);
        if (rev)
            assert_int_equal(l.revision, rev);
        rev = l.revision;
        all->revision = rev;
        if (l.more) {
            assert_int_equal(l.n, limit);
            assert_true(l.remaining > 0);
        } else {
            assert_int_equal(l.remaining, 0);
        }
        for (size_t i = 0; i < l.n; i++) {
            if (all->n == cap) {
                cap = cap ? cap * 2 : 64;
                all->items = xrealloc(all->items, cap * sizeof *all->items);
            }
            all->items[all->n++] = l.items[i];
        }
        bool more = l.more;
        int64_t remaining = l.remaining;
        if (l.n) {
            free(after);
            after = xstrdup(l.items[l.n - 1].key);
        }
        free(l.items);   /* the kvs moved into all */
        if (!more)
            break;
        /* remaining is what is left after this page */
        ck_list probe = {0};
        ck_list_opts po = {.revision = rev, .start_after = after, .count_only = true};
        SC_OK(ck_store_list(s, prefix, &po, &probe, err_));
        assert_int_equal(probe.remaining, remaining);
        ck_list_free(&probe);
    }
}

static void sc_test_list_prefix(void **state)
{
    ck_store *s = *state;
    char root[64];
    sc_root(root);
    enum { N = 25 };
    for (int i = 0; i < N; i++) {
        cleanup_free char *k = sc_key(root, "pods/ns1/p%02d", (i * 7) % N);   /* out of order */
        cleanup_free char *v = xasprintf("val-%d", (i * 7) % N);
        sc_create(s, k, v);
    }
    /* neighbours that a sloppy prefix match would include */
    cleanup_free char *n1 = sc_key(root, "pods/ns10/x");
    cleanup_free char *n2 = sc_key(root, "pods/ns1");
    cleanup_free char *n3 = sc_key(root, "pods/ns0/x");
    cleanup_free char *n4 = sc_key(root, "pods/ns1" "0");
    sc_create(s, n1, "no");
    sc_create(s, n2, "no");
    sc_create(s, n3, "no");
    sc_create(s, n4, "no");

    cleanup_free char *prefix = sc_key(root, "pods/ns1/");
    ck_list l = {0};
    SC_OK(ck_store_list(s, prefix, &(ck_list_opts){0}, &l, err_));
    assert_int_equal(l.n, N);
    assert_false(l.more);
    assert_int_equal(l.remaining, 0);
    assert_int_equal(l.revision, sc_current(s));
    for (int i = 0; i < N; i++) {
        cleanup_free char *k = sc_key(root, "pods/ns1/p%02d", i);
        char v[16];
        snprintf(v, sizeof v, "val-%d", i);
        assert_string_equal(l.items[i].key, k);
        assert_string_equal(l.items[i].value, v);
        assert_true(l.items[i].mod_revision > 0);
    }
    ck_list_free(&l);

    for (size_t limit = 1; limit <= 30; limit += 6) {
        ck_list all;
        sc_list_paged(s, prefix, 0, limit, &all);
        assert_int_equal(all.n, N);
        for (int i = 0; i < N; i++) {
            cleanup_free char *k = sc_key(root, "pods/ns1/p%02d", i);
            assert_string_equal(all.items[i].key, k);
        }
        ck_list_free(&all);
    }

    /* keys_only and count_only */
    ck_list_opts ko = {.keys_only = true, .limit = 5};
    SC_OK(ck_store_list(s, prefix, &ko, &l, err_));
    assert_int_equal(l.n, 5);
    assert_true(l.more);
    assert_int_equal(l.remaining, N - 5);
    assert_non_null(l.items[0].key);
    ck_list_free(&l);
    ck_list_opts co = {.count_only = true};
    SC_OK(ck_store_list(s, prefix, &co, &l, err_));
    assert_int_equal(l.n, 0);
    assert_int_equal(l.remaining, N);
    ck_list_free(&l);

    /* the whole root: 25 + 4 */
    SC_OK(ck_store_list(s, root, &(ck_list_opts){0}, &l, err_));
    assert_int_equal(l.n, N + 4);
    for (size_t i = 1; i < l.n; i++)
        assert_true(strcmp(l.items[i - 1].key, l.items[i].key) < 0);
    ck_list_free(&l);

    /* an empty prefix range */
    cleanup_free char *none = sc_key(root, "nothing/");
    SC_OK(ck_store_list(s, none, &(ck_list_opts){.limit = 3}, &l, err_));
    assert_int_equal(l.n, 0);
    assert_false(l.more);
    ck_list_free(&l);
}

/* A writer thread that logs every acknowledged write. */
typedef struct sc_oplog {
    int64_t rev;
    int key;          /* index */
    int deleted;
    char value[32];
} sc_oplog;

typedef struct sc_writer {
    ck_store *s;
    const char *root;
    const char *sub;    /* e.g. "w/" */
    int nkeys;
    int nops;
    atomic_int stop;          /* set by the test thread */
    int failures;
    sc_oplog *log;
    int nlog;
    atomic_llong last_rev;    /* progress, read by the test thread while writing */
    atomic_int progress;      /* == nlog, published */
    atomic_int done;          /* the thread finished (or failed) */
    unsigned seed;
} sc_writer;

static void *sc_writer_thread(void *p)
{
    sc_writer *w = p;
    w->log = xcalloc((size_t)w->nops, sizeof *w->log);
    for (int i = 0; i < w->nops && !atomic_load(&w->stop); i++) {
        int ki = (int)(rand_r(&w->seed) % (unsigned)w->nkeys);
        cleanup_free char *k = sc_key(w->root, "%s%04d", w->sub, ki);
        sc_oplog *op = &w->log[w->nlog];
        snprintf(op->value, sizeof op->value, "v%d-%d", ki, i);
        op->key = ki;
        ck_error *e = NULL;
        int64_t rev = 0;
        int rc = ck_store_update(w->s, k, op->value, strlen(op->value), 0, &rev, &e);
        if (rc != 0 && e && e->code == CK_E_NOT_FOUND) {
            ck_error_free(e);
            e = NULL;
            rc = ck_store_create(w->s, k, op->value, strlen(op->value), &rev, &e);
        } else if (rc == 0 && i % 5 == 4) {
            op->rev = rev;
            w->nlog++;
            op = &w->log[w->nlog];
            op->key = ki;
            op->deleted = 1;
            rc = ck_store_delete(w->s, k, rev, NULL, &rev, &e);
        }
        if (rc != 0) {
            w->failures++;
            ck_error_free(e);
            break;
        }
        op->rev = rev;
        w->nlog++;
        atomic_store(&w->last_rev, rev);
        atomic_store(&w->progress, w->nlog);
        if (w->nlog >= w->nops - 1)
            break;
    }
    atomic_store(&w->done, 1);
    return NULL;
}

/* Pages at a fixed revision stay consistent while writes continue. */
static void sc_test_list_consistent(void **state)
{
    ck_store *s = *state;
    char root[64];
    sc_root(root);
    enum { NK = 200 };
    /* initial state: keys 0..NK-1 with value "init-i" */
    char *init_val[NK];
    int64_t model_rev[NK];
    for (int i = 0; i < NK; i++) {
        cleanup_free char *k = sc_key(root, "w/%04d", i);
        init_val[i] = xasprintf("init-%d", i);
        model_rev[i] = sc_create(s, k, init_val[i]);
    }
    int64_t base = sc_current(s);
    sc_writer w = {.s = s, .root = root, .sub = "w/", .nkeys = NK, .nops = 4000, .seed = 7};
    pthread_t th;
    pthread_create(&th, NULL, sc_writer_thread, &w);
    while (atomic_load(&w.progress) == 0 && !atomic_load(&w.done))
        sc_sleep_ms(1);
    sc_sleep_ms(20);

    cleanup_free char *prefix = sc_key(root, "w/");
    ck_list all;
    sc_list_paged(s, prefix, 0, 17, &all);   /* page 1 at current, the rest at its revision */
    int64_t R = all.revision;
    /* also a second view: list at R in one page, done later */
    sc_sleep_ms(20);
    atomic_store(&w.stop, 1);
    pthread_join(th, NULL);
    assert_int_equal(w.failures, 0);
    assert_true(R >= base);

    /* the model at R */
    const char *val[NK];
    bool present[NK];
    int64_t mrev[NK];
    for (int i = 0; i < NK; i++) {
        val[i] = init_val[i];
        present[i] = true;
        mrev[i] = model_rev[i];
    }
    for (int i = 0; i < w.nlog; i++) {
        sc_oplog *op = &w.log[i];
        if (op->rev > R)
            continue;
        present[op->key] = !op->deleted;
        val[op->key] = op->value;
        mrev[op->key] = op->rev;
    }
    /* every write landed between base and the end, so the writes at or below R are exactly the
     * prefix of the log ordered by revision */
    size_t j = 0;
    for (int i = 0; i < NK; i++) {
        if (!present[i])
            continue;
        assert_true(j < all.n);
        cleanup_free char *k = sc_key(root, "w/%04d", i);
        assert_string_equal(all.items[j].key, k);
        assert_string_equal(all.items[j].value, val[i]);
        assert_int_equal(all.items[j].mod_revision, mrev[i]);
        j++;
    }
    assert_int_equal(j, all.n);
    ck_list_free(&all);

    /* the same list at R in one page, after the writes, is identical */
    ck_list again = {0};
    SC_OK(ck_store_list(s, prefix, &(ck_list_opts){.revision = R}, &again, err_));
    assert_int_equal(again.n, j);
    assert_int_equal(again.revision, R);
    ck_list_free(&again);

    for (int i = 0; i < NK; i++)
        free(init_val[i]);
    free(w.log);
}

static void sc_test_list_old_revision(void **state)
{
    ck_store *s = *state;
    char root[64];
    sc_root(root);
    cleanup_free char *a = sc_key(root, "x/a");
    cleanup_free char *b = sc_key(root, "x/b");
    cleanup_free char *prefix = sc_key(root, "x/");
    int64_t r1 = sc_create(s, a, "a1");
    int64_t r2 = sc_update(s, a, "a2", r1);
    int64_t r3 = sc_create(s, b, "b1");
    int64_t r4 = sc_delete(s, a, r2);
    int64_t r5 = sc_update(s, b, "b2", r3);
    (void)r5;

    struct { int64_t rev; const char *want; } cases[] = {
        {r1, "a=a1"}, {r2, "a=a2"}, {r3, "a=a2 b=b1"}, {r4, "b=b1"}, {r5, "b=b2"}, {0, "b=b2"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        ck_list l = {0};
        SC_OK(ck_store_list(s, prefix, &(ck_list_opts){.revision = cases[i].rev}, &l, err_));
        ck_buf got;
        ck_buf_init(&got, 0);
        for (size_t j = 0; j < l.n; j++)
            ck_buf_printf(&got, "%s%s=%s", j ? " " : "", l.items[j].key + strlen(prefix),
                          l.items[j].value);
        if (strcmp(got.data ? got.data : "", cases[i].want) != 0) {
            print_error("list at %lld: got '%s' want '%s'\n", (long long)cases[i].rev,
                        got.data ? got.data : "", cases[i].want);
            fail();
        }
        if (cases[i].rev)
            assert_int_equal(l.revision, cases[i].rev);
        ck_buf_free(&got);
        ck_list_free(&l);
    }
    /* the kv at an old revision carries that revision's mod_revision */
    ck_list l = {0};
    SC_OK(ck_store_list(s, prefix, &(ck_list_opts){.revision = r3}, &l, err_));
    assert_int_equal(l.n, 2);
    assert_int_equal(l.items[0].mod_revision, r2);
    assert_int_equal(l.items[0].create_revision, r1);
    assert_int_equal(l.items[1].mod_revision, r3);
    ck_list_free(&l);
}

/* Check a watch saw exactly revisions (from, to], in order, each once, all under prefix. */
static void sc_check_contiguous(sc_watch *w, int64_t from, int64_t to, const char *prefix)
{
    pthread_mutex_lock(&w->mu);
    size_t n = w->n;
    pthread_mutex_unlock(&w->mu);
    int64_t want = from + 1;
    for (size_t i = 0; i < n; i++) {
        if (w->evs[i].revision != want) {
            print_error("event %zu: revision %lld, want %lld\n", i, (long long)w->evs[i].revision,
                        (long long)want);
            fail();
        }
        assert_non_null(w->evs[i].key);
        assert_true(strncmp(w->evs[i].key, prefix, strlen(prefix)) == 0);
        if (w->evs[i].type == CK_EVENT_PUT)
            assert_int_equal(w->evs[i].mod_revision, w->evs[i].revision);
        want++;
    }
    assert_int_equal(want - 1, to);
}

/* Watch from revision N while writes race: history -> live hand-off loses and repeats nothing. */
static void sc_test_watch_handoff(void **state)
{
    ck_store *s = *state;
    char root[64];
    sc_root(root);
    cleanup_free char *prefix = sc_key(root, "w/");
    for (int round = 0; round < 3; round++) {
        sc_writer wr = {.s = s, .root = root, .sub = "w/", .nkeys = 50, .nops = 1500,
                        .seed = 11u + (unsigned)round};
        int64_t start = sc_current(s);
        pthread_t th;
        pthread_create(&th, NULL, sc_writer_thread, &wr);
        /* let some history build up, then watch from a point in the middle of it */
        while (atomic_load(&wr.progress) < 100 + round * 200 && !atomic_load(&wr.done))
            sc_sleep_ms(1);
        int64_t N = start + (atomic_load(&wr.last_rev) - start) / 2;
        sc_watch w;
        enum ck_error_code code;
        assert_int_equal(sc_watch_start(s, &w, prefix, N, &code), 0);
        pthread_join(th, NULL);
        assert_int_equal(wr.failures, 0);
        int64_t last = sc_current(s);
        assert_int_equal(last, wr.log[wr.nlog - 1].rev);
        assert_true(sc_watch_wait(&w, last, 0));
        sc_sleep_ms(50);   /* a duplicate would show up here */
        sc_check_contiguous(&w, N, last, prefix);
        assert_int_equal(w.bad_calls, 0);
        assert_false(w.ended);
        /* contents match the writer's log */
        for (size_t i = 0; i < w.n; i++) {
            sc_oplog *op = NULL;
            for (int j = 0; j < wr.nlog; j++)
                if (wr.log[j].rev == w.evs[i].revision)
                    op = &wr.log[j];
            assert_non_null(op);
            cleanup_free char *k = sc_key(root, "w/%04d", op->key);
            assert_string_equal(w.evs[i].key, k);
            assert_int_equal(w.evs[i].type, op->deleted ? CK_EVENT_DELETE : CK_EVENT_PUT);
            if (!op->deleted)
                assert_string_equal(w.evs[i].value, op->value);
        }
        sc_watch_stop(s, &w);
        free(wr.log);
    }
}

/* after_rev 0 = from now: only later writes arrive. */
static void sc_test_watch_from_now(void **state)
{
    ck_store *s = *state;
    char root[64];
    sc_root(root);
    cleanup_free char *k = sc_key(root, "a");
    sc_create(s, k, "old");
    sc_watch w;
    enum ck_error_code code;
    assert_int_equal(sc_watch_start(s, &w, root, 0, &code), 0);
    int64_t r = sc_update(s, k, "new", 0);
    assert_true(sc_watch_wait(&w, r, 0));
    sc_sleep_ms(30);
    assert_int_equal(w.n, 1);
    assert_int_equal(w.evs[0].revision, r);
    assert_string_equal(w.evs[0].value, "new");
    sc_watch_stop(s, &w);
}

static void sc_test_watch_prefix(void **state)
{
    ck_store *s = *state;
    char root[64];
    sc_root(root);
    cleanup_free char *pa = sc_key(root, "a/");
    int64_t start = sc_current(s);
    sc_watch w;
    enum ck_error_code code;
    assert_int_equal(sc_watch_start(s, &w, pa, start, &code), 0);
    int64_t last_a = 0;
    for (int i = 0; i < 20; i++) {
        cleanup_free char *ka = sc_key(root, "a/%d", i);
        cleanup_free char *kb = sc_key(root, "ab/%d", i);   /* shares the text "a" but not "a/" */
        cleanup_free char *kc = sc_key(root, "b/%d", i);
        sc_create(s, kb, "b");
        last_a = sc_create(s, ka, "a");
        sc_create(s, kc, "c");
    }
    cleanup_free char *bare = sc_key(root, "a");
    sc_create(s, bare, "bare");
    assert_true(sc_watch_wait(&w, last_a, 0));
    sc_sleep_ms(50);
    assert_int_equal(w.n, 20);
    for (size_t i = 0; i < w.n; i++) {
        assert_true(strncmp(w.evs[i].key, pa, strlen(pa)) == 0);
        assert_string_equal(w.evs[i].value, "a");
        assert_true(w.evs[i].created);
        if (i)
            assert_true(w.evs[i].revision > w.evs[i - 1].revision);
    }
    sc_watch_stop(s, &w);
}

static void sc_test_watch_prev(void **state)
{
    ck_store *s = *state;
    char root[64];
    sc_root(root);
    cleanup_free char *k = sc_key(root, "obj");
    cleanup_free char *marker = sc_key(root, "marker");
    int64_t start = sc_create(s, marker, "m");   /* so that start > 0 even in a fresh store */
    /* history part: before the watch starts */
    int64_t r1 = sc_create(s, k, "v1");
    int64_t r2 = sc_update(s, k, "v2", r1);
    sc_watch w;
    enum ck_error_code code;
    assert_int_equal(sc_watch_start(s, &w, root, start, &code), 0);
    /* live part */
    int64_t r3 = sc_delete(s, k, r2);
    int64_t r4 = sc_create(s, k, "v3");
    assert_true(sc_watch_wait(&w, r4, 0));
    sc_sleep_ms(30);
    assert_int_equal(w.n, 4);
    sc_ev *e = w.evs;
    assert_int_equal(e[0].type, CK_EVENT_PUT);
    assert_true(e[0].created);
    assert_int_equal(e[0].revision, r1);
    assert_int_equal(e[0].create_revision, r1);
    assert_null(e[0].prev_key);
    assert_string_equal(e[0].value, "v1");

    assert_int_equal(e[1].type, CK_EVENT_PUT);
    assert_false(e[1].created);
    assert_int_equal(e[1].revision, r2);
    assert_int_equal(e[1].create_revision, r1);
    assert_string_equal(e[1].value, "v2");
    assert_non_null(e[1].prev_key);
    assert_string_equal(e[1].prev_value, "v1");
    assert_int_equal(e[1].prev_mod_revision, r1);

    assert_int_equal(e[2].type, CK_EVENT_DELETE);
    assert_int_equal(e[2].revision, r3);
    assert_string_equal(e[2].key, k);
    assert_int_equal(e[2].value_len, 0);
    assert_non_null(e[2].prev_key);
    assert_string_equal(e[2].prev_value, "v2");
    assert_int_equal(e[2].prev_mod_revision, r2);

    assert_int_equal(e[3].type, CK_EVENT_PUT);
    assert_true(e[3].created);
    assert_int_equal(e[3].revision, r4);
    assert_int_equal(e[3].create_revision, r4);
    assert_null(e[3].prev_key);
    sc_watch_stop(s, &w);
}

/* After cancel returns, no callback runs. */
static void sc_test_watch_cancel(void **state)
{
    ck_store *s = *state;
    char root[64];
    sc_root(root);
    sc_watch w;
    enum ck_error_code code;
    assert_int_equal(sc_watch_start(s, &w, root, 0, &code), 0);
    cleanup_free char *k = sc_key(root, "k");
    int64_t r = sc_create(s, k, "1");
    assert_true(sc_watch_wait(&w, r, 0));
    ck_store_watch_cancel(s, w.h);
    w.h = NULL;
    pthread_mutex_lock(&w.mu);
    size_t n = w.n;
    pthread_mutex_unlock(&w.mu);
    for (int i = 0; i < 20; i++)
        sc_update(s, k, "x", 0);
    sc_sleep_ms(100);
    pthread_mutex_lock(&w.mu);
    assert_int_equal(w.n, n);
    pthread_mutex_unlock(&w.mu);
    sc_watch_stop(s, &w);
}

static void sc_test_compaction(void **state)
{
    ck_store *s = *state;
    char root[64];
    sc_root(root);
    cleanup_free char *a = sc_key(root, "a");
    cleanup_free char *b = sc_key(root, "b");
    cleanup_free char *c = sc_key(root, "c");
    int64_t first = sc_create(s, a, "a0");
    int64_t ra = first;
    for (int i = 1; i <= 10; i++) {
        char v[16];
        snprintf(v, sizeof v, "a%d", i);
        ra = sc_update(s, a, v, ra);
    }
    int64_t rb = sc_create(s, b, "b0");
    int64_t rc = sc_create(s, c, "c0");
    sc_delete(s, c, rc);
    int64_t mid = sc_update(s, b, "b1", rb);
    int64_t compact_at = sc_current(s);
    SC_OK(ck_store_compact(s, compact_at, err_));
    int64_t after = sc_update(s, a, "a11", ra);

    /* current values survive; the deleted key stays deleted */
    sc_assert_value(s, a, "a11");
    sc_assert_value(s, b, "b1");
    ck_kv kv = {0};
    SC_FAILS(ck_store_get(s, c, &kv, err_), CK_E_NOT_FOUND);
    SC_OK(ck_store_get(s, b, &kv, err_));
    assert_int_equal(kv.create_revision, rb);
    assert_int_equal(kv.mod_revision, mid);
    ck_kv_free(&kv);
    ck_list l = {0};
    SC_OK(ck_store_list(s, root, &(ck_list_opts){0}, &l, err_));
    assert_int_equal(l.n, 2);
    assert_int_equal(l.revision, after);
    ck_list_free(&l);

    /* list well below the compacted revision: expired */
    SC_FAILS(ck_store_list(s, root, &(ck_list_opts){.revision = first + 2}, &l, err_),
             CK_E_EXPIRED);

    /* watch from well below: expired, either from watch() or as the ending callback */
    sc_watch w;
    enum ck_error_code code = CK_E_INTERNAL;
    if (sc_watch_start(s, &w, root, first + 1, &code) == 0) {
        assert_true(sc_watch_wait_end(&w));
        assert_int_equal(w.end_code, CK_E_EXPIRED);
        assert_int_equal(w.bad_calls, 0);
        sc_watch_stop(s, &w);
    } else {
        assert_int_equal(code, CK_E_EXPIRED);
    }

    /* watch from the compacted revision still works and sees the later write */
    assert_int_equal(sc_watch_start(s, &w, root, compact_at, &code), 0);
    assert_true(sc_watch_wait(&w, after, 0));
    assert_int_equal(w.evs[0].revision, after);
    assert_string_equal(w.evs[0].value, "a11");
    sc_watch_stop(s, &w);

    /* writes after compaction keep counting from where they were */
    cleanup_free char *d = sc_key(root, "d");
    assert_int_equal(sc_create(s, d, "d"), after + 1);
    /* compacting again at an older revision is harmless; current values stay */
    ck_error *e = NULL;
    if (ck_store_compact(s, first, &e) != 0) {
        assert_int_equal(e->code, CK_E_EXPIRED);
        ck_error_free(e);
    }
    sc_assert_value(s, a, "a11");
}

/* Compaction of churned keys keeps exactly the current state. */
static void sc_test_compaction_churn(void **state)
{
    ck_store *s = *state;
    char root[64];
    sc_root(root);
    enum { NK = 40 };
    sc_writer wr = {.s = s, .root = root, .sub = "", .nkeys = NK, .nops = 600, .seed = 3};
    sc_writer_thread(&wr);
    assert_int_equal(wr.failures, 0);
    ck_list before = {0};
    SC_OK(ck_store_list(s, root, &(ck_list_opts){0}, &before, err_));
    SC_OK(ck_store_compact(s, before.revision, err_));
    ck_list now = {0};
    SC_OK(ck_store_list(s, root, &(ck_list_opts){0}, &now, err_));
    assert_int_equal(now.n, before.n);
    for (size_t i = 0; i < now.n; i++) {
        assert_string_equal(now.items[i].key, before.items[i].key);
        assert_string_equal(now.items[i].value, before.items[i].value);
        assert_int_equal(now.items[i].mod_revision, before.items[i].mod_revision);
        assert_int_equal(now.items[i].create_revision, before.items[i].create_revision);
    }
    ck_list_free(&before);
    ck_list_free(&now);
    free(wr.log);
}

static void sc_test_large_values(void **state)
{
    ck_store *s = *state;
    char root[64];
    sc_root(root);
    cleanup_free char *k = sc_key(root, "big");
    size_t n = 1536 * 1024;   /* 1.5 MiB */
    cleanup_free char *v1 = xmalloc(n);
    cleanup_free char *v2 = xmalloc(n);
    ck_random_bytes(v1, n);
    ck_random_bytes(v2, n);
    v1[100] = '\0';   /* binary values: NULs inside are data */
    int64_t r1 = 0, r2 = 0;
    SC_OK(ck_store_create(s, k, v1, n, &r1, err_));
    ck_kv kv = {0};
    SC_OK(ck_store_get(s, k, &kv, err_));
    assert_int_equal(kv.value_len, n);
    assert_memory_equal(kv.value, v1, n);
    assert_int_equal(kv.value[n], '\0');
    ck_kv_free(&kv);
    SC_OK(ck_store_update(s, k, v2, n, r1, &r2, err_));
    ck_list l = {0};
    SC_OK(ck_store_list(s, root, &(ck_list_opts){0}, &l, err_));
    assert_int_equal(l.n, 1);
    assert_int_equal(l.items[0].value_len, n);
    assert_memory_equal(l.items[0].value, v2, n);
    ck_list_free(&l);
    SC_OK(ck_store_list(s, root, &(ck_list_opts){.revision = r1}, &l, err_));
    assert_int_equal(l.n, 1);
    assert_memory_equal(l.items[0].value, v1, n);
    ck_list_free(&l);

    /* watch events and a delete's prev carry the whole binary value */
    sc_watch w;
    enum ck_error_code code;
    assert_int_equal(sc_watch_start(s, &w, root, r1, &code), 0);
    ck_kv prev = {0};
    int64_t r3 = 0;
    SC_OK(ck_store_delete(s, k, r2, &prev, &r3, err_));
    assert_int_equal(prev.value_len, n);
    assert_memory_equal(prev.value, v2, n);
    ck_kv_free(&prev);
    assert_true(sc_watch_wait(&w, r3, 0));
    assert_int_equal(w.n, 2);
    assert_int_equal(w.evs[0].value_len, n);
    assert_memory_equal(w.evs[0].value, v2, n);
    assert_int_equal(w.evs[0].prev_value_len, n);
    assert_memory_equal(w.evs[0].prev_value, v1, n);
    assert_int_equal(w.evs[1].type, CK_EVENT_DELETE);
    assert_int_equal(w.evs[1].prev_value_len, n);
    assert_memory_equal(w.evs[1].prev_value, v2, n);
    sc_watch_stop(s, &w);
}

static void sc_test_unusual_keys(void **state)
{
    ck_store *s = *state;
    char root[64];
    sc_root(root);
    static const char *tails[] = {
        "a:b", "a.b", "a-b", "a_b", "a~b", "a%2Fb", "a b", "a+b", "a=b&c", "a@b",
        "\xc3\xbc" "ber", "\xe6\x97\xa5\xe6\x9c\xac", "\xf0\x9f\x93\xa6", "x/y/z", "trail/",
        "'quote\"", "back\\slash",
    };
    for (size_t i = 0; i < ARRAY_SIZE(tails); i++) {
        cleanup_free char *k = sc_key(root, "ns/%s", tails[i]);
        cleanup_free char *v = xasprintf("value of %s", tails[i]);
        sc_create(s, k, v);
        sc_assert_value(s, k, v);
    }
    cleanup_free char *prefix = sc_key(root, "ns/");
    ck_list l = {0};
    SC_OK(ck_store_list(s, prefix, &(ck_list_opts){0}, &l, err_));
    assert_int_equal(l.n, ARRAY_SIZE(tails));
    for (size_t i = 1; i < l.n; i++)   /* byte order, as etcd sorts */
        assert_true(strcmp(l.items[i - 1].key, l.items[i].key) < 0);
    ck_list_free(&l);
    /* a prefix ending in a multi-byte character */
    cleanup_free char *up = sc_key(root, "ns/\xc3\xbc");
    SC_OK(ck_store_list(s, up, &(ck_list_opts){0}, &l, err_));
    assert_int_equal(l.n, 1);
    ck_list_free(&l);
    /* LIKE/GLOB metacharacters in a prefix are plain text */
    cleanup_free char *pct = sc_key(root, "ns/a%%");
    SC_OK(ck_store_list(s, pct, &(ck_list_opts){0}, &l, err_));
    assert_int_equal(l.n, 1);
    ck_list_free(&l);
    cleanup_free char *us = sc_key(root, "ns/a_");
    SC_OK(ck_store_list(s, us, &(ck_list_opts){0}, &l, err_));
    assert_int_equal(l.n, 1);
    ck_list_free(&l);
}

typedef struct sc_storm {
    ck_store *s;
    const char *root;
    int id, n;
    int64_t *revs;
    int failures;
} sc_storm;

static void *sc_storm_thread(void *p)
{
    sc_storm *a = p;
    for (int i = 0; i < a->n; i++) {
        cleanup_free char *k = sc_key(a->root, "t%02d/%04d", a->id, i);
        ck_error *e = NULL;
        if (ck_store_create(a->s, k, "x", 1, &a->revs[i], &e) != 0) {
            a->failures++;
            ck_error_free(e);
        }
    }
    return NULL;
}

static int sc_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* 16 threads x 200 writes: every revision distinct, together contiguous. */
static void sc_test_concurrent_writers(void **state)
{
    ck_store *s = *state;
    char root[64];
    sc_root(root);
    enum { T = 16, N = 200 };
    int64_t base = sc_current(s);
    cleanup_free int64_t *revs = xcalloc(T * N, sizeof *revs);
    pthread_t th[T];
    sc_storm args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (sc_storm){s, root, i, N, revs + i * N, 0};
        pthread_create(&th[i], NULL, sc_storm_thread, &args[i]);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    /* each thread's own revisions increase */
    for (int i = 0; i < T; i++)
        for (int j = 1; j < N; j++)
            assert_true(revs[i * N + j] > revs[i * N + j - 1]);
    qsort(revs, T * N, sizeof *revs, sc_cmp_i64);
    for (int i = 0; i < T * N; i++)
        assert_int_equal(revs[i], base + 1 + i);
    assert_int_equal(sc_current(s), base + T * N);
    ck_list l = {0};
    SC_OK(ck_store_list(s, root, &(ck_list_opts){.count_only = true}, &l, err_));
    assert_int_equal(l.remaining, T * N);
    ck_list_free(&l);
}

/* Bad arguments and revisions from the future. */
static void sc_test_invalid(void **state)
{
    ck_store *s = *state;
    char root[64];
    sc_root(root);
    int64_t rev = 0;
    ck_kv kv = {0};
    SC_FAILS(ck_store_update(s, "", "x", 1, 0, &rev, err_), CK_E_INVALID);
    SC_FAILS(ck_store_delete(s, "", 0, NULL, &rev, err_), CK_E_INVALID);
    SC_FAILS(ck_store_get(s, "", &kv, err_), CK_E_INVALID);
    cleanup_free char *k = sc_key(root, "k");
    int64_t cur = sc_create(s, k, "v");
    /* a list at a revision that does not exist yet: "Too large resource version" (504) */
    ck_list l = {0};
    SC_FAILS(ck_store_list(s, root, &(ck_list_opts){.revision = cur + 1000}, &l, err_),
             CK_E_TIMEOUT);
    SC_OK(ck_store_list(s, root, &(ck_list_opts){.revision = cur}, &l, err_));
    assert_int_equal(l.n, 1);
    ck_list_free(&l);
}

/* A watch may be cancelled from inside its own callback. */
typedef struct sc_selfcancel {
    ck_store *s;
    ck_watch_handle *h;
    atomic_int calls;
    pthread_mutex_t mu;
} sc_selfcancel;

static void sc_selfcancel_cb(void *ctx, const ck_event *events, size_t n, const ck_error *err)
{
    sc_selfcancel *c = ctx;
    atomic_fetch_add(&c->calls, 1);
    pthread_mutex_lock(&c->mu);   /* wait until the handle is stored */
    ck_watch_handle *h = c->h;
    c->h = NULL;
    pthread_mutex_unlock(&c->mu);
    if (h)
        ck_store_watch_cancel(c->s, h);
}

static void sc_test_watch_cancel_in_callback(void **state)
{
    ck_store *s = *state;
    char root[64];
    sc_root(root);
    sc_selfcancel c = {.s = s};
    atomic_init(&c.calls, 0);
    pthread_mutex_init(&c.mu, NULL);
    pthread_mutex_lock(&c.mu);
    SC_OK(ck_store_watch(s, root, 0, sc_selfcancel_cb, &c, &c.h, err_));
    if (sc_inline_watches)
        ck_store_watch_inline(s, c.h);
    pthread_mutex_unlock(&c.mu);
    cleanup_free char *k = sc_key(root, "k");
    sc_create(s, k, "1");
    for (int i = 0; i < 2000 && atomic_load(&c.calls) == 0; i++)
        sc_sleep_ms(5);
    assert_int_equal(atomic_load(&c.calls), 1);
    for (int i = 0; i < 10; i++)
        sc_update(s, k, "x", 0);
    sc_sleep_ms(100);
    assert_int_equal(atomic_load(&c.calls), 1);
    pthread_mutex_destroy(&c.mu);
}

/* ---- asynchronous writes (ck_store_write_async) ----------------------------------------------- */

#define SC_ASYNC_MAX 64

typedef struct sc_async {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int calls[SC_ASYNC_MAX];        /* completions per write: each must be exactly 1 */
    int64_t rev[SC_ASYNC_MAX];
    int code[SC_ASYNC_MAX];         /* -1: success, else the error code */
    int order[SC_ASYNC_MAX];        /* write index in completion order */
    int ndone;
} sc_async;

typedef struct sc_async_slot {
    sc_async *a;
    int i;
} sc_async_slot;

static void sc_async_done(void *ctx, int64_t rev, ck_error *err)
{
    sc_async_slot *sl = ctx;
    sc_async *a = sl->a;
    pthread_mutex_lock(&a->mu);
    a->calls[sl->i]++;
    a->rev[sl->i] = rev;
    a->code[sl->i] = err ? (int)err->code : -1;
    if (a->ndone < SC_ASYNC_MAX)
        a->order[a->ndone] = sl->i;
    a->ndone++;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->mu);
    ck_error_free(err);
}

static bool sc_async_wait(sc_async *a, int n)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += SC_WAIT_MS / 1000;
    pthread_mutex_lock(&a->mu);
    while (a->ndone < n)
        if (pthread_cond_timedwait(&a->cond, &a->mu, &dl) != 0)
            break;
    bool ok = a->ndone >= n;
    pthread_mutex_unlock(&a->mu);
    return ok;
}

/* Every write completes exactly once, failures with the synchronous call's codes; one
 * submitter's writes complete in submission order with increasing revisions; a completed write
 * is visible to get. */
static void sc_test_async_writes(void **state)
{
    ck_store *s = *state;
    char root[64];
    sc_root(root);
    cleanup_free char *dup = sc_key(root, "dup");
    cleanup_free char *upd = sc_key(root, "upd");
    cleanup_free char *missing = sc_key(root, "missing");
    cleanup_free char *del = sc_key(root, "del");
    sc_create(s, dup, "0");
    int64_t urev = sc_create(s, upd, "0");
    int64_t drev = sc_create(s, del, "0");
    static const struct {
        enum ck_store_write_kind kind;
        const char *key;            /* NULL: a fresh key k<i>; "" an invalid one */
        int expect;                 /* 0: urev (del: its revision), -1: wrong revision,
                                     * 1: unconditional */
        int want;                   /* -1 success, else the error */
    } cases[] = {
        {CK_STORE_CREATE, NULL, 0, -1},
        {CK_STORE_CREATE, "dup", 0, CK_E_EXISTS},
        {CK_STORE_UPDATE, "upd", -1, CK_E_CONFLICT},
        {CK_STORE_UPDATE, "upd", 0, -1},
        {CK_STORE_UPDATE, "missing", 1, CK_E_NOT_FOUND},
        {CK_STORE_CREATE, NULL, 0, -1},
        {CK_STORE_UPDATE, "upd", 1, -1},
        {CK_STORE_CREATE, "", 0, CK_E_INVALID},
        {CK_STORE_CREATE, NULL, 0, -1},
        {CK_STORE_DELETE, "del", -1, CK_E_CONFLICT},
        {CK_STORE_DELETE, "missing", 1, CK_E_NOT_FOUND},
        {CK_STORE_DELETE, "del", 0, -1},
        {CK_STORE_DELETE, "del", 1, CK_E_NOT_FOUND},
    };
    enum { N = ARRAY_SIZE(cases) };
    sc_async a = {.ndone = 0};
    pthread_mutex_init(&a.mu, NULL);
    pthread_cond_init(&a.cond, NULL);
    sc_async_slot slots[N];
    char *keys[N];
    char vals[N][16];
    for (int i = 0; i < N; i++) {
        if (!cases[i].key)
            keys[i] = sc_key(root, "k%d", i);
        else if (!*cases[i].key)
            keys[i] = xstrdup("");
        else
            keys[i] = sc_key(root, "%s", cases[i].key);
        snprintf(vals[i], sizeof vals[i], "v%d", i);
        slots[i] = (sc_async_slot){&a, i};
        int64_t base = cases[i].kind == CK_STORE_DELETE ? drev : urev;
        bool d = cases[i].kind == CK_STORE_DELETE;
        ck_write w = {.kind = cases[i].kind, .key = keys[i], .val = d ? NULL : vals[i],
                      .len = d ? 0 : strlen(vals[i]),
                      .expected = cases[i].expect == 0 ? base : cases[i].expect < 0 ? base + 1000 : 0};
        ck_store_write_async(s, &w, sc_async_done, &slots[i]);
    }
    assert_true(sc_async_wait(&a, N));
    sc_sleep_ms(50);   /* a second completion would show up here */
    int64_t last = 0;
    for (int k = 0; k < N; k++) {
        int i = a.order[k];
        assert_int_equal(a.calls[i], 1);
        if (a.code[i] != cases[i].want)
            print_error("write %d: want %d, got %d\n", i, cases[i].want, a.code[i]);
        assert_int_equal(a.code[i], cases[i].want);
        if (cases[i].want == -1) {
            assert_true(a.rev[i] > last);   /* in submission order, revisions increasing */
            last = a.rev[i];
            ck_kv kv = {0};
            if (cases[i].kind == CK_STORE_DELETE) {
                ck_error *ge = NULL;
                assert_int_equal(ck_store_get(s, keys[i], &kv, &ge), -1);
                assert_int_equal(ge->code, CK_E_NOT_FOUND);
                ck_error_free(ge);
                continue;
            }
            SC_OK(ck_store_get(s, keys[i], &kv, err_));
            if (cases[i].kind == CK_STORE_CREATE)
                assert_string_equal(kv.value, vals[i]);
            assert_true(kv.mod_revision >= a.rev[i]);
            ck_kv_free(&kv);
        } else {
            assert_int_equal(a.rev[i], 0);
        }
    }
    assert_int_equal(a.ndone, N);
    /* the successful ones are in submission order */
    int prev = -1;
    for (int k = 0; k < N; k++) {
        int i = a.order[k];
        if (cases[i].want != -1)
            continue;
        assert_true(i > prev);
        prev = i;
    }
    sc_assert_value(s, upd, "v6");
    for (int i = 0; i < N; i++)
        free(keys[i]);
    pthread_mutex_destroy(&a.mu);
    pthread_cond_destroy(&a.cond);
}

/* A completion may queue the next asynchronous write (it must not wait for it). */
typedef struct sc_chain {
    ck_store *s;
    char *key;
    char val[16];
    int left;
    int64_t last_rev;
    sc_async *a;
} sc_chain;

static void sc_chain_done(void *ctx, int64_t rev, ck_error *err)
{
    sc_chain *ch = ctx;
    if (err || rev <= ch->last_rev)
        ch->left = -1000;          /* seen by the test as a failure */
    ck_error_free(err);
    ch->last_rev = rev;
    if (--ch->left > 0) {
        snprintf(ch->val, sizeof ch->val, "%d", ch->left);
        ck_write w = {.kind = CK_STORE_UPDATE, .key = ch->key, .val = ch->val,
                      .len = strlen(ch->val), .expected = rev};
        ck_store_write_async(ch->s, &w, sc_chain_done, ch);
        return;
    }
    pthread_mutex_lock(&ch->a->mu);
    ch->a->ndone++;
    pthread_cond_broadcast(&ch->a->cond);
    pthread_mutex_unlock(&ch->a->mu);
}

static void sc_test_async_chain(void **state)
{
    ck_store *s = *state;
    char root[64];
    sc_root(root);
    sc_async a = {.ndone = 0};
    pthread_mutex_init(&a.mu, NULL);
    pthread_cond_init(&a.cond, NULL);
    sc_chain ch = {.s = s, .key = sc_key(root, "chain"), .left = 20, .a = &a};
    ch.last_rev = sc_create(s, ch.key, "start");
    snprintf(ch.val, sizeof ch.val, "%d", ch.left);
    ck_write w = {.kind = CK_STORE_UPDATE, .key = ch.key, .val = ch.val, .len = strlen(ch.val),
                  .expected = ch.last_rev};
    ck_store_write_async(s, &w, sc_chain_done, &ch);
    assert_true(sc_async_wait(&a, 1));
    assert_int_equal(ch.left, 0);
    sc_assert_value(s, ch.key, "1");
    free(ch.key);
    pthread_mutex_destroy(&a.mu);
    pthread_cond_destroy(&a.cond);
}

/* ---- the table -------------------------------------------------------------------------------- */

#define SC_CASES(X)                    \
    X(sc_test_create_get)              \
    X(sc_test_update_cas)              \
    X(sc_test_cas_counter)             \
    X(sc_test_delete)                  \
    X(sc_test_revisions)               \
    X(sc_test_list_prefix)             \
    X(sc_test_list_consistent)         \
    X(sc_test_list_old_revision)       \
    X(sc_test_watch_handoff)           \
    X(sc_test_watch_from_now)          \
    X(sc_test_watch_prefix)            \
    X(sc_test_watch_prev)              \
    X(sc_test_watch_cancel)            \
    X(sc_test_compaction)              \
    X(sc_test_compaction_churn)        \
    X(sc_test_large_values)            \
    X(sc_test_unusual_keys)            \
    X(sc_test_concurrent_writers)     \
    X(sc_test_invalid)                \
    X(sc_test_watch_cancel_in_callback) \
    X(sc_test_async_writes)           \
    X(sc_test_async_chain)

/* The suite with the backend's per-case setup/teardown.  The array is static: call once. */
static inline const struct CMUnitTest *store_conformance_tests(CMFixtureFunction setup,
                                                               CMFixtureFunction teardown,
                                                               size_t *n)
{
    static struct CMUnitTest tests[] = {
#define SC_ROW(f) {#f, f, NULL, NULL, NULL},
        SC_CASES(SC_ROW)
#undef SC_ROW
    };
    for (size_t i = 0; i < ARRAY_SIZE(tests); i++) {
        tests[i].setup_func = setup;
        tests[i].teardown_func = teardown;
    }
    *n = ARRAY_SIZE(tests);
    return tests;
}

#endif
