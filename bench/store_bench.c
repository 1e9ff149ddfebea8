/* store_bench.c - the store backends side by side, in one run: embedded SQLite and a real etcd
 * 3.x that the benchmark starts itself (loopback ports, temp dir, removed afterwards).
 *
 * Measures, per backend:
 *   writes    creates of distinct ~1 KiB values by 1, 16 and 64 concurrent writers for --seconds
 *             each: writes/s and per-write latency p50/p99 (every commit durable: SQLite
 *             synchronous=FULL, etcd's fsync'd WAL);
 *   gets      random gets of 10,000 keys by 16 readers: gets/s, p50/p99;
 *   lists     full lists of the 10,000 keys: per-list latency p50/p99;
 *   fan-out   one watch cache (store/watchcache.c) on a prefix with 1,000 watchers; 10,000 events
 *             written; latency from the write's acknowledgement (the create call returning) to each
 *             watcher's callback, over every (event, watcher) pair: p50/p99/max.
 * and prints one table with the targets next to the numbers.  Usage: store_bench --help.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "lib/flags.h"
#include "lib/log.h"
#include "lib/util.h"
#include "store/store.h"
#include "store/watchcache.h"

#include "../tests/unit/etcd_harness.h"

static long opt_seconds = 3;
static long opt_watchers = 1000;
static long opt_events = 10000;
static long opt_items = 10000;
static long opt_fan_writers = 4;
static long opt_fan_rate = 0;
static long opt_value = 1024;
static char *opt_backends = "sqlite,etcd";
static char *opt_phases = "writes,gets,lists,fanout";

static bool phase(const char *name)
{
    size_t n = strlen(name);
    for (const char *p = opt_phases; (p = strstr(p, name)); p += n)
        if ((p == opt_phases || p[-1] == ',') && (p[n] == ',' || !p[n]))
            return true;
    return false;
}

static const int writer_counts[] = {1, 16, 64};
#define NWC ((int)ARRAY_SIZE(writer_counts))

/* ---- latency samples ---- */

typedef struct lat {
    int64_t *v;
    size_t n, cap;
} lat;

static void lat_add(lat *l, int64_t ns)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = ns;
}

static void lat_merge(lat *dst, const lat *src)
{
    for (size_t i = 0; i < src->n; i++)
        lat_add(dst, src->v[i]);
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Percentile p (0..100) in milliseconds; sorts in place. */
static double lat_pct_ms(lat *l, double p)
{
    if (!l->n)
        return NAN;
    qsort(l->v, l->n, sizeof(*l->v), cmp64);
    size_t i = (size_t)ceil(p / 100.0 * (double)l->n);
    i = i ? i - 1 : 0;
    if (i >= l->n)
        i = l->n - 1;
    return (double)l->v[i] / 1e6;
}

/* ---- results ---- */

typedef struct result {
    const char *name;
    char *error;                  /* the backend could not run: why */
    double wps[NWC], w_p50[NWC], w_p99[NWC];
    long werr;
    double gps, g_p50, g_p99;
    double l_p50, l_p99, lps;
    size_t l_items;
    double f_p50, f_p99, f_max, f_rate;
    double r_p50, r_p99;          /* the backend's own watch, no cache */
    double s_p50, s_p99;          /* per event: first to last watcher */
    uint64_t f_delivered, f_expected;
} result;

static char *value;               /* opt_value bytes of JSON-ish text */

static void make_value(void)
{
    value = xmalloc((size_t)opt_value + 1);
    int n = snprintf(value, (size_t)opt_value + 1, "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"pad\":\"");
    memset(value + n, 'x', (size_t)opt_value - (size_t)n - 2);
    memcpy(value + opt_value - 2, "\"}", 2);
    value[opt_value] = 0;
}

/* ---- writes ---- */

typedef struct wthread {
    ck_store *s;
    int id, nthreads;
    const char *prefix;
    int64_t deadline;             /* ck_now_ns(); 0: write `count` keys */
    long count;
    lat l;
    long done, errors;
} wthread;

static void *write_main(void *arg)
{
    wthread *t = arg;
    char key[128];
    for (long i = 0;; i++) {
        if (t->deadline ? ck_now_ns() >= t->deadline : i >= t->count)
            break;
        if (t->deadline)
            snprintf(key, sizeof(key), "%s%d/k%ld", t->prefix, t->id, i);
        else   /* the populate phase: keys item-00000 .. spread over the threads */
            snprintf(key, sizeof(key), "%sitem-%05ld", t->prefix, i * t->nthreads + t->id);
        ck_error *err = NULL;
        int64_t rev, t0 = ck_now_ns();
        if (ck_store_create(t->s, key, value, (size_t)opt_value, &rev, &err) < 0) {
            if (!t->errors)
                fprintf(stderr, "store_bench: create %s: %s\n", key, err->msg);
            ck_error_free(err);
            t->errors++;
            continue;
        }
        lat_add(&t->l, ck_now_ns() - t0);
        t->done++;
    }
    return NULL;
}

/* Run n writer threads; returns writes/s and fills all (merged latencies). */
static double run_writers(ck_store *s, int n, const char *prefix, int64_t dur_ns, long count,
                          lat *all, long *errors)
{
    wthread *ts = xcalloc((size_t)n, sizeof(*ts));
    pthread_t *th = xcalloc((size_t)n, sizeof(*th));
    int64_t t0 = ck_now_ns();
    for (int i = 0; i < n; i++) {
        ts[i] = (wthread){.s = s, .id = i, .nthreads = n, .prefix = prefix,
                          .deadline = dur_ns ? t0 + dur_ns : 0,
                          .count = count ? (count + n - 1 - i) / n : 0};
        pthread_create(&th[i], NULL, write_main, &ts[i]);
    }
    long done = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        done += ts[i].done;
        *errors += ts[i].errors;
        if (all)
            lat_merge(all, &ts[i].l);
        free(ts[i].l.v);
    }
    double secs = (double)(ck_now_ns() - t0) / 1e9;
    free(ts);
    free(th);
    return (double)done / secs;
}

/* ---- gets ---- */

typedef struct gthread {
    ck_store *s;
    int64_t deadline;
    unsigned seed;
    lat l;
    long done, errors;
} gthread;

static void *get_main(void *arg)
{
    gthread *t = arg;
    char key[128];
    while (ck_now_ns() < t->deadline) {
        long i = rand_r(&t->seed) % opt_items;
        snprintf(key, sizeof(key), "/registry/benchlist/default/item-%05ld", i);
        ck_kv kv = {0};
        ck_error *err = NULL;
        int64_t t0 = ck_now_ns();
        if (ck_store_get(t->s, key, &kv, &err) < 0) {
            if (!t->errors)
                fprintf(stderr, "store_bench: get %s: %s\n", key, err->msg);
            ck_error_free(err);
            t->errors++;
            continue;
        }
        lat_add(&t->l, ck_now_ns() - t0);
        ck_kv_free(&kv);
        t->done++;
    }
    return NULL;
}

/* ---- fan-out ---- */

typedef struct fan {
    int64_t t0;
    int64_t base;                 /* revision before the first event */
    long nevents;
    _Atomic int64_t *ack;         /* per event: ns since t0 when its create returned */
    long nwatchers;
    uint32_t *deliv;              /* [event * nwatchers + watcher]: µs since t0, +1 (0: none) */
    _Atomic int64_t *raw;         /* per event: ns since t0 when a direct backend watch saw it */
    atomic_ullong delivered;
    atomic_ullong stray;          /* events outside [base+1, base+nevents] */
} fan;

typedef struct fan_watcher {
    fan *f;
    long idx;
} fan_watcher;

static void fan_cb(void *ctx, const ck_wc_note *n)
{
    fan_watcher *w = ctx;
    if (n->kind != CK_WC_EVENT)
        return;
    fan *f = w->f;
    int64_t e = n->revision - f->base - 1;
    if (e < 0 || e >= f->nevents) {
        atomic_fetch_add_explicit(&f->stray, 1, memory_order_relaxed);
        return;
    }
    f->deliv[e * f->nwatchers + w->idx] = (uint32_t)((ck_now_ns() - f->t0) / 1000 + 1);
    atomic_fetch_add_explicit(&f->delivered, 1, memory_order_relaxed);
}

/* A plain backend watch next to the cache: separates the store's own watch latency from the
 * cache's fan-out. */
static void raw_cb(void *ctx, const ck_event *evs, size_t n, const ck_error *err)
{
    fan *f = ctx;
    int64_t now = ck_now_ns() - f->t0;
    for (size_t i = 0; i < n; i++) {
        int64_t e = evs[i].revision - f->base - 1;
        if (e >= 0 && e < f->nevents)
            atomic_store_explicit(&f->raw[e], now, memory_order_relaxed);
    }
}

typedef struct fwriter {
    ck_store *s;
    fan *f;
    int id, n;
    long errors;
} fwriter;

static void *fan_write_main(void *arg)
{
    fwriter *t = arg;
    fan *f = t->f;
    char key[128];
    long per = f->nevents / t->n + (t->id < f->nevents % t->n);
    double gap_ns = opt_fan_rate > 0 ? 1e9 * t->n / (double)opt_fan_rate : 0;
    int64_t start = ck_now_ns();
    for (long i = 0; i < per; i++) {
        if (gap_ns > 0) {
            int64_t due = start + (int64_t)(gap_ns * (double)i);
            int64_t now = ck_now_ns();
            if (due > now)
                usleep((useconds_t)((due - now) / 1000));
        }
        snprintf(key, sizeof(key), "/registry/fanout/ns%d/e%ld", t->id % 8, i * t->n + t->id);
        ck_error *err = NULL;
        int64_t rev;
        if (ck_store_create(t->s, key, value, (size_t)opt_value, &rev, &err) < 0) {
            if (!t->errors)
                fprintf(stderr, "store_bench: fan-out create: %s\n", err->msg);
            ck_error_free(err);
            t->errors++;
            continue;
        }
        int64_t e = rev - f->base - 1;
        if (e >= 0 && e < f->nevents)
            atomic_store_explicit(&f->ack[e], ck_now_ns() - f->t0, memory_order_relaxed);
    }
    return NULL;
}

static int run_fanout(ck_store *s, result *r)
{
    ck_error *err = NULL;
    ck_watchcache_opts co = {.bookmark_interval_ms = -1};
    ck_watchcache *c = ck_watchcache_new(s, "/registry/fanout/", &co, &err);
    if (!c) {
        fprintf(stderr, "store_bench: watch cache: %s\n", err->msg);
        ck_error_free(err);
        return -1;
    }
    fan f = {.nevents = opt_events, .nwatchers = opt_watchers};
    f.ack = xcalloc((size_t)f.nevents, sizeof(*f.ack));
    f.raw = xcalloc((size_t)f.nevents, sizeof(*f.raw));
    f.deliv = xcalloc((size_t)(opt_watchers * f.nevents), sizeof(*f.deliv));
    fan_watcher *fw = xcalloc((size_t)opt_watchers, sizeof(*fw));
    ck_wc_watcher **ws = xcalloc((size_t)opt_watchers, sizeof(*ws));
    if (ck_store_current_revision(s, &f.base, &err) < 0) {
        fprintf(stderr, "store_bench: %s\n", err->msg);
        ck_error_free(err);
        return -1;
    }
    for (long i = 0; i < opt_watchers; i++) {
        fw[i] = (fan_watcher){&f, i};
        ck_wc_watch_opts wo = {.after_rev = f.base};
        ws[i] = ck_watchcache_add(c, &wo, fan_cb, &fw[i], &err);
        if (!ws[i]) {
            fprintf(stderr, "store_bench: add watcher: %s\n", err->msg);
            ck_error_free(err);
            return -1;
        }
    }
    ck_watch_handle *rawh = NULL;
    if (ck_store_watch(s, "/registry/fanout/", f.base, raw_cb, &f, &rawh, &err) < 0) {
        fprintf(stderr, "store_bench: backend watch: %s\n", err->msg);
        ck_error_free(err);
        return -1;
    }
    f.t0 = ck_now_ns();
    int nw = (int)opt_fan_writers;
    fwriter *wt = xcalloc((size_t)nw, sizeof(*wt));
    pthread_t *th = xcalloc((size_t)nw, sizeof(*th));
    for (int i = 0; i < nw; i++) {
        wt[i] = (fwriter){s, &f, i, nw, 0};
        pthread_create(&th[i], NULL, fan_write_main, &wt[i]);
    }
    for (int i = 0; i < nw; i++)
        pthread_join(th[i], NULL);
    double wsecs = (double)(ck_now_ns() - f.t0) / 1e9;
    r->f_rate = (double)f.nevents / wsecs;
    r->f_expected = (uint64_t)opt_watchers * (uint64_t)f.nevents;
    int64_t deadline = ck_now_ns() + 60 * (int64_t)1000000000;
    while (atomic_load(&f.delivered) < r->f_expected && ck_now_ns() < deadline)
        usleep(10000);
    for (long i = 0; i < opt_watchers; i++)
        ck_watchcache_remove(c, ws[i]);
    ck_watchcache_free(c);
    ck_store_watch_cancel(s, rawh);
    r->f_delivered = atomic_load(&f.delivered);

    /* Latency per (watcher, event): delivery - acknowledgement; a delivery that beat the
     * acknowledgement (the watch is that fast) counts as 0. */
    lat l = {0};
    l.cap = r->f_delivered;
    l.v = xmalloc((l.cap ? l.cap : 1) * sizeof(*l.v));
    for (long e = 0; e < f.nevents; e++) {
        int64_t ack = atomic_load(&f.ack[e]);
        if (!ack)
            continue;
        for (long w = 0; w < opt_watchers; w++) {
            uint32_t d = f.deliv[e * f.nwatchers + w];
            if (!d)
                continue;
            int64_t ns = (int64_t)(d - 1) * 1000 - ack;
            l.v[l.n++] = ns > 0 ? ns : 0;
        }
    }
    r->f_p50 = lat_pct_ms(&l, 50);
    r->f_p99 = lat_pct_ms(&l, 99);
    r->f_max = l.n ? (double)l.v[l.n - 1] / 1e6 : NAN;
    l.n = 0;
    for (long e = 0; e < f.nevents; e++) {
        int64_t ack = atomic_load(&f.ack[e]), raw = atomic_load(&f.raw[e]);
        if (ack && raw)
            l.v[l.n++] = raw > ack ? raw - ack : 0;
    }
    /* Per event: the spread from its first to its last watcher (the cost of one fan-out). */
    lat sp = {0};
    for (long e = 0; e < f.nevents; e++) {
        uint32_t lo = UINT32_MAX, hi = 0;
        for (long w = 0; w < opt_watchers; w++) {
            uint32_t d = f.deliv[e * f.nwatchers + w];
            if (d && d < lo)
                lo = d;
            if (d > hi)
                hi = d;
        }
        if (hi)
            lat_add(&sp, (int64_t)(hi - lo) * 1000);
    }
    r->s_p50 = lat_pct_ms(&sp, 50);
    r->s_p99 = lat_pct_ms(&sp, 99);
    free(sp.v);
    r->r_p50 = lat_pct_ms(&l, 50);
    r->r_p99 = lat_pct_ms(&l, 99);
    free(l.v);
    free(f.raw);
    free(f.ack);
    free(f.deliv);
    free(fw);
    free(ws);
    free(wt);
    free(th);
    return 0;
}

/* ---- one backend ---- */

static void run_backend(ck_store *s, result *r)
{
    fprintf(stderr, "== %s: writes\n", r->name);
    for (int i = 0; i < NWC && phase("writes"); i++) {
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "/registry/benchw/w%d/", writer_counts[i]);
        lat l = {0};
        r->wps[i] = run_writers(s, writer_counts[i], prefix, opt_seconds * (int64_t)1000000000, 0,
                                &l, &r->werr);
        r->w_p50[i] = lat_pct_ms(&l, 50);
        r->w_p99[i] = lat_pct_ms(&l, 99);
        free(l.v);
        fprintf(stderr, "   %2d writers: %.0f writes/s p50 %.2f ms p99 %.2f ms\n", writer_counts[i],
                r->wps[i], r->w_p50[i], r->w_p99[i]);
    }

    if (!phase("gets") && !phase("lists"))
        goto fanout;
    fprintf(stderr, "== %s: populate %ld keys, gets\n", r->name, opt_items);
    run_writers(s, 16, "/registry/benchlist/default/", 0, opt_items, NULL, &r->werr);
    enum { NREADERS = 16 };
    gthread gt[NREADERS];
    pthread_t th[NREADERS];
    int64_t t0 = ck_now_ns();
    for (int i = 0; i < NREADERS && phase("gets"); i++) {
        gt[i] = (gthread){.s = s, .deadline = t0 + opt_seconds * (int64_t)1000000000,
                          .seed = (unsigned)i * 7919u + 1};
        pthread_create(&th[i], NULL, get_main, &gt[i]);
    }
    lat gl = {0};
    long gets = 0;
    for (int i = 0; i < NREADERS && phase("gets"); i++) {
        pthread_join(th[i], NULL);
        gets += gt[i].done;
        lat_merge(&gl, &gt[i].l);
        free(gt[i].l.v);
    }
    r->gps = phase("gets") ? (double)gets / ((double)(ck_now_ns() - t0) / 1e9) : 0;
    r->g_p50 = lat_pct_ms(&gl, 50);
    r->g_p99 = lat_pct_ms(&gl, 99);
    free(gl.v);

    fprintf(stderr, "== %s: lists\n", r->name);
    lat ll = {0};
    t0 = ck_now_ns();
    for (int i = 0; i < 200 && phase("lists") && (i < 5 || ck_now_ns() - t0 < opt_seconds * (int64_t)1000000000); i++) {
        ck_list out = {0};
        ck_list_opts lo = {0};
        ck_error *err = NULL;
        int64_t l0 = ck_now_ns();
        if (ck_store_list(s, "/registry/benchlist/", &lo, &out, &err) < 0) {
            fprintf(stderr, "store_bench: list: %s\n", err->msg);
            ck_error_free(err);
            break;
        }
        lat_add(&ll, ck_now_ns() - l0);
        r->l_items = out.n;
        ck_list_free(&out);
    }
    r->lps = (double)ll.n / ((double)(ck_now_ns() - t0) / 1e9);
    r->l_p50 = lat_pct_ms(&ll, 50);
    r->l_p99 = lat_pct_ms(&ll, 99);
    free(ll.v);

fanout:
    if (!phase("fanout"))
        return;
    fprintf(stderr, "== %s: fan-out %ld watchers x %ld events\n", r->name, opt_watchers, opt_events);
    if (run_fanout(s, r) < 0)
        r->error = xstrdup("fan-out failed");
}

/* ---- the table ---- */

static void cell(char *out, size_t n, const result *r, double v, const char *fmt)
{
    if (r->error && isnan(v))
        snprintf(out, n, "n/a");
    else if (isnan(v))
        snprintf(out, n, "-");
    else
        snprintf(out, n, fmt, v);
}

static void row(const char *label, const result *rs, int nr, double (*get)(const result *, int),
                int arg, const char *fmt)
{
    printf("| %-38s |", label);
    for (int i = 0; i < nr; i++) {
        char c[32];
        cell(c, sizeof(c), &rs[i], get(&rs[i], arg), fmt);
        printf(" %12s |", c);
    }
    printf("\n");
}

static double g_wps(const result *r, int i) { return r->error && !r->wps[i] ? NAN : r->wps[i]; }
static double g_wp50(const result *r, int i) { return r->error && !r->wps[i] ? NAN : r->w_p50[i]; }
static double g_wp99(const result *r, int i) { return r->error && !r->wps[i] ? NAN : r->w_p99[i]; }
static double g_gps(const result *r, int i) { return r->gps ? r->gps : NAN; }
static double g_gp50(const result *r, int i) { return r->gps ? r->g_p50 : NAN; }
static double g_gp99(const result *r, int i) { return r->gps ? r->g_p99 : NAN; }
static double g_lp50(const result *r, int i) { return r->l_items ? r->l_p50 : NAN; }
static double g_lp99(const result *r, int i) { return r->l_items ? r->l_p99 : NAN; }
static double g_litems(const result *r, int i) { return r->l_items ? (double)r->l_items : NAN; }
static double g_frate(const result *r, int i) { return r->f_expected ? r->f_rate : NAN; }
static double g_fp50(const result *r, int i) { return r->f_expected ? r->f_p50 : NAN; }
static double g_fp99(const result *r, int i) { return r->f_expected ? r->f_p99 : NAN; }
static double g_fmax(const result *r, int i) { return r->f_expected ? r->f_max : NAN; }
static double g_sp50(const result *r, int i) { return r->f_expected ? r->s_p50 : NAN; }
static double g_sp99(const result *r, int i) { return r->f_expected ? r->s_p99 : NAN; }
static double g_rp50(const result *r, int i) { return r->f_expected ? r->r_p50 : NAN; }
static double g_rp99(const result *r, int i) { return r->f_expected ? r->r_p99 : NAN; }
static double g_fdel(const result *r, int i)
{
    return r->f_expected ? 100.0 * (double)r->f_delivered / (double)r->f_expected : NAN;
}

static void print_table(result *rs, int nr)
{
    struct utsname u;
    uname(&u);
    char when[32];
    ck_rfc3339(ck_wall_ns() / 1000000000, when);
    double load[3] = {0};
    if (getloadavg(load, 3) < 0)
        load[0] = load[1] = load[2] = NAN;
    printf("\nStore benchmark, %s, %s %s, %ld cores (load average %.2f %.2f %.2f at the end); "
           "%ld-byte values, %ld s per phase\n\n", when, u.sysname, u.release,
           sysconf(_SC_NPROCESSORS_ONLN), load[0], load[1], load[2], opt_value, opt_seconds);
    printf("| %-38s |", "metric");
    for (int i = 0; i < nr; i++)
        printf(" %12s |", rs[i].name);
    printf("\n|%s|", "----------------------------------------");
    for (int i = 0; i < nr; i++)
        printf("%s|", "--------------:");
    printf("\n");
    char label[64];
    for (int i = 0; i < NWC; i++) {
        snprintf(label, sizeof(label), "writes/s, %d writer%s", writer_counts[i],
                 writer_counts[i] > 1 ? "s" : "");
        row(label, rs, nr, g_wps, i, "%.0f");
        snprintf(label, sizeof(label), "  write p50 ms, %d writer%s", writer_counts[i],
                 writer_counts[i] > 1 ? "s" : "");
        row(label, rs, nr, g_wp50, i, "%.2f");
        snprintf(label, sizeof(label), "  write p99 ms, %d writer%s", writer_counts[i],
                 writer_counts[i] > 1 ? "s" : "");
        row(label, rs, nr, g_wp99, i, "%.2f");
    }
    row("gets/s, 16 readers", rs, nr, g_gps, 0, "%.0f");
    row("  get p50 ms", rs, nr, g_gp50, 0, "%.3f");
    row("  get p99 ms", rs, nr, g_gp99, 0, "%.3f");
    row("list: items per list", rs, nr, g_litems, 0, "%.0f");
    row("  list p50 ms", rs, nr, g_lp50, 0, "%.1f");
    row("  list p99 ms", rs, nr, g_lp99, 0, "%.1f");
    snprintf(label, sizeof(label), "fan-out: events/s written (%ld wr.)", opt_fan_writers);
    row(label, rs, nr, g_frate, 0, "%.0f");
    snprintf(label, sizeof(label), "  delivered %% of %ld x %ld", opt_watchers, opt_events);
    row(label, rs, nr, g_fdel, 0, "%.1f");
    row("  delivery p50 ms (ack -> callback)", rs, nr, g_fp50, 0, "%.2f");
    row("  delivery p99 ms", rs, nr, g_fp99, 0, "%.2f");
    row("  delivery max ms", rs, nr, g_fmax, 0, "%.2f");
    row("  first->last watcher p50 ms", rs, nr, g_sp50, 0, "%.2f");
    row("  first->last watcher p99 ms", rs, nr, g_sp99, 0, "%.2f");
    row("  backend watch alone p50 ms", rs, nr, g_rp50, 0, "%.2f");
    row("  backend watch alone p99 ms", rs, nr, g_rp99, 0, "%.2f");
    for (int i = 0; i < nr; i++)
        if (rs[i].error)
            printf("\n%s: %s", rs[i].name, rs[i].error);

    /* Targets. */
    const result *sq = NULL, *et = NULL;
    for (int i = 0; i < nr; i++) {
        if (!strcmp(rs[i].name, "sqlite") && !rs[i].error)
            sq = &rs[i];
        if (!strcmp(rs[i].name, "etcd") && !rs[i].error)
            et = &rs[i];
    }
    printf("\nTargets:\n");
    if (sq && et && sq->wps[2] > 0 && et->wps[2] > 0)
        printf("  %-4s sqlite writes/s at 64 writers >= 2x etcd: %.0f vs %.0f (%.1fx)\n",
               sq->wps[2] >= 2 * et->wps[2] ? "MET" : "MISS", sq->wps[2], et->wps[2],
               et->wps[2] > 0 ? sq->wps[2] / et->wps[2] : 0);
    for (int i = 0; i < nr; i++) {
        if (rs[i].error)
            continue;
        if (rs[i].wps[1] > 0)
            printf("  %-4s %s write p99 <= 5 ms at 16 writers: %.2f ms\n",
                   rs[i].w_p99[1] <= 5 ? "MET" : "MISS", rs[i].name, rs[i].w_p99[1]);
        if (rs[i].f_expected)
            printf("  %-4s %s fan-out delivery p99 <= 50 ms: %.2f ms (%.1f%% delivered)\n",
                   rs[i].f_p99 <= 50 && rs[i].f_delivered == rs[i].f_expected ? "MET" : "MISS",
                   rs[i].name, rs[i].f_p99, g_fdel(&rs[i], 0));
    }
}

int main(int argc, char **argv)
{
    ck_log_init("store_bench", CK_LOG_WARN);
    ck_flag flags[] = {
        {"backends", CK_FLAG_STRING, &opt_backends, "comma-separated: sqlite,etcd"},
        {"phases", CK_FLAG_STRING, &opt_phases, "comma-separated: writes,gets,lists,fanout"},
        {"seconds", CK_FLAG_INT, &opt_seconds, "seconds per write/get/list phase"},
        {"items", CK_FLAG_INT, &opt_items, "keys to populate for gets and lists"},
        {"value-bytes", CK_FLAG_INT, &opt_value, "bytes per value"},
        {"watchers", CK_FLAG_INT, &opt_watchers, "fan-out watchers"},
        {"events", CK_FLAG_INT, &opt_events, "fan-out events"},
        {"fanout-writers", CK_FLAG_INT, &opt_fan_writers, "concurrent writers in the fan-out phase"},
        {"fanout-rate", CK_FLAG_INT, &opt_fan_rate,
         "fan-out events per second over all writers (0: as fast as they go)"},
    };
    int npos = ck_flags_parse("store_bench", "SQLite vs etcd store benchmark", argc, argv, flags,
                              (int)ARRAY_SIZE(flags));
    if (npos || opt_seconds < 1 || opt_value < 64 || opt_items < 1 || opt_watchers < 1 ||
        opt_events < 1 || opt_fan_writers < 1) {
        fprintf(stderr, "store_bench: bad arguments (see --help)\n");
        return 2;
    }
    make_value();

    result rs[2];
    int nr = 0;
    char tmpl[] = "/tmp/ck-store-bench-XXXXXX";
    char *dir = NULL;
    cleanup_free char *list = xstrdup(opt_backends);
    char *save = NULL;
    for (char *b = strtok_r(list, ",", &save); b; b = strtok_r(NULL, ",", &save)) {
        result *r = &rs[nr++];
        memset(r, 0, sizeof(*r));
        ck_error *err = NULL;
        if (!strcmp(b, "sqlite")) {
            r->name = "sqlite";
            if (!dir && !(dir = mkdtemp(tmpl))) {
                r->error = xstrdup("mkdtemp failed");
                continue;
            }
            cleanup_free char *path = xasprintf("%s/store.db", dir);
            ck_store *s = ck_store_open_sqlite(path, &err);
            if (!s) {
                r->error = xasprintf("open: %s", err->msg);
                ck_error_free(err);
                continue;
            }
            run_backend(s, r);
            ck_store_close(s);
        } else if (!strcmp(b, "etcd")) {
            r->name = "etcd";
            static etcd_proc ep;
            if (etcd_harness_start(&ep) < 0) {
                r->error = xstrdup("could not start etcd (is etcd-server installed?)");
                etcd_harness_destroy(&ep);
                continue;
            }
            ck_store *s = ck_store_open_etcd(ep.url, &err);
            if (!s) {
                r->error = xasprintf("open: %s", err->msg);
                ck_error_free(err);
            } else {
                run_backend(s, r);
                ck_store_close(s);
            }
            etcd_harness_destroy(&ep);
        } else {
            fprintf(stderr, "store_bench: unknown backend %s\n", b);
            return 2;
        }
        if (nr == (int)ARRAY_SIZE(rs))
            break;
    }
    if (dir) {
        cleanup_free char *cmd = xasprintf("rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "store_bench: could not remove %s\n", dir);
    }
    print_table(rs, nr);
    int failed = 0;
    for (int i = 0; i < nr; i++) {
        failed |= rs[i].error != NULL;
        free(rs[i].error);
    }
    free(value);
    return failed ? 1 : 0;
}
