/* watch.c - watch over chunked HTTP without a thread per watch.
 *
 * One watch cache (store/watchcache.h) on all of /registry/, created at startup and shared by every
 * resource: each watcher filters by its resource's key prefix, so one backend watch and one
 * dispatch thread serve all types (a cache per type cost two idle threads each, ~2 MB of RSS for
 * ~35 types).  Every key belongs to exactly one resource prefix, so the per-event memo slots below
 * are never shared between two types.  The window is global, as resourceVersions are, and sized
 * for all types together (SHARED_WINDOW).  A watch request starts a
 * chunked stream, optionally writes the initial ADDED events (resourceVersion "" / "0" /
 * sendInitialEvents) from a store list at revision R, then registers a cache watcher from R (or
 * from the client's resourceVersion).  From then on the cache calls us with each event (on the
 * SQLite writer right after the commit: inline delivery; on the cache's dispatch thread for a
 * replay) and we write one JSON line into the stream; nothing blocks, and nothing here may wait
 * for a store write.
 *
 * Each event is serialized once for all watchers that see it the same way: the cache's per-event
 * memo slots hold the parsed objects and the finished lines (slots below).  Selector transitions
 * follow upstream's cacher: an update that leaves the selector is DELETED (with the previous
 * object), one that enters it is ADDED.
 *
 * Lifetime: the HTTP stream's on_close only flags the watch; one reaper thread removes flagged
 * watchers from their cache, releases the stream and frees the watch, and ends watches whose
 * timeout passed (timeoutSeconds, else 30-60 minutes as upstream's min-request-timeout jitter).
 */
#include "apiserver/apiserver.h"
#include "apiserver/selector.h"
#include "apiserver/table.h"
#include "lib/log.h"
#include "store/watchcache.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
    SLOT_LINE,          /* natural type, plain JSON */
    SLOT_NEW,           /* parsed new object (json_t *) */
    SLOT_PREV,          /* parsed previous object, RV = event revision */
    SLOT_ADD_LINE,      /* ADDED with the new object (entered the selector) */
    SLOT_DEL_LINE,      /* DELETED with the previous object (left the selector) */
    SLOT_TABLE_LINE,    /* natural type, Table with includeObject=Metadata */
    SLOT_TABLE_ADD,
    SLOT_TABLE_DEL,
};

typedef struct watch {
    struct watch *prev, *next;
    ck_watch_hub *hub;
    ck_watchcache *cache;
    ck_wc_watcher *w;
    ck_http_stream *stream;
    const ck_resource *res;
    ck_selector *lsel, *fsel;
    bool filtered;
    char *exact_key;
    bool table;
    bool partial;           /* PartialObjectMetadata events (not memoized: few such watchers) */
    bool bookmarks;
    int64_t deadline_ns;
    int closed;             /* atomic: on_close ran */
    int failed;             /* atomic: a write failed or we ended it */
    bool ended;
} watch;

/* events of all types together: four times a single type's default */
#define SHARED_WINDOW (4 * CK_WC_DEFAULT_WINDOW)

struct ck_watch_hub {
    ck_apiserver *srv;
    ck_watchcache *shared;      /* all of /registry/ */
    ck_watchcache **caches;     /* by resource index: `shared`, or NULL if not watchable */
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* CLOCK_MONOTONIC, as the deadlines */
    watch *head;
    int64_t wake_ns;            /* when the reaper wakes next (INT64_MAX: when told) */
    bool stop;
    pthread_t reaper;
};

static void decref_fn(void *p)
{
    json_decref(p);
}

/* ---- per-event derived values (dispatch thread only) ---- */

static json_t *event_new_obj(ck_wc_event *e)
{
    const ck_wc_memo *m = ck_wc_event_memo(e, SLOT_NEW);
    if (m)
        return m->data;
    const ck_event *ev = ck_wc_event_get(e);
    json_t *o = NULL;
    if (ev->type == CK_EVENT_PUT && ev->kv.value) {
        o = json_loadb(ev->kv.value, ev->kv.value_len, 0, NULL);
        if (json_is_object(o))
            ck_meta_set_rv(o, ev->revision);
    }
    if (!json_is_object(o)) {
        json_decref(o);
        o = json_null();
    }
    m = ck_wc_event_memo_set(e, SLOT_NEW, o, 0, decref_fn);
    return m ? m->data : NULL;
}

/* The object as it was before this event, stamped with the event's revision (what a DELETED
 * event carries).  Without a previous value: a stub naming the key. */
static json_t *event_prev_obj(ck_wc_event *e, const ck_resource *r)
{
    const ck_wc_memo *m = ck_wc_event_memo(e, SLOT_PREV);
    if (m)
        return m->data;
    const ck_event *ev = ck_wc_event_get(e);
    json_t *o = NULL;
    if (ev->prev.key && ev->prev.value)
        o = json_loadb(ev->prev.value, ev->prev.value_len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        o = json_null();
        if (ev->type == CK_EVENT_DELETE && ev->kv.key) {
            /* key = prefix + [ns/]name */
            const char *k = ev->kv.key;
            const char *slash = strrchr(k, '/');
            o = json_pack("{s:s,s:s,s:{s:s}}", "kind", r->kind, "apiVersion",
                          ck_resource_api_version(r), "metadata", "name", slash ? slash + 1 : k);
            if (r->namespaced && slash) {
                const char *b = slash - 1;
                while (b > k && *b != '/')
                    b--;
                char *ns = xstrndup(b + 1, (size_t)(slash - b - 1));
                json_object_set_new(ck_meta(o), "namespace", json_string(ns));
                free(ns);
            }
        }
    }
    if (json_is_object(o))
        ck_meta_set_rv(o, ev->revision);
    m = ck_wc_event_memo_set(e, SLOT_PREV, o, 0, decref_fn);
    return m ? m->data : NULL;
}

/* A finished line, shared by the event's memo slot and every stream it is queued on (by
 * reference: one copy an event, not one a watcher); freed by the last of them. */
typedef struct sline {
    atomic_uint refs;
    char text[];
} sline;

static sline *sline_of(const void *text)
{
    return (sline *)((char *)text - offsetof(sline, text));
}

static void sline_unref(void *text)
{
    sline *l = sline_of(text);
    if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) == 1)
        free(l);
}

/* A memo of a shared line holding a copy of data[0..len). */
static const ck_wc_memo *memo_line(ck_wc_event *e, unsigned slot, const char *data, size_t len)
{
    sline *l = xmalloc(sizeof *l + len + 1);
    atomic_init(&l->refs, 1);
    memcpy(l->text, data, len);
    l->text[len] = '\0';
    return ck_wc_event_memo_set(e, slot, l->text, len, sline_unref);
}

static char *line_for(const char *type, json_t *obj, size_t *len)
{
    json_t *ev = json_pack("{s:s,s:O}", "type", type, "object", obj);
    char *s = ck_json_print(ev, NULL);
    json_decref(ev);
    if (!s)
        s = xstrdup("{}");
    size_t n = strlen(s);
    s = xrealloc(s, n + 2);
    s[n] = '\n';
    s[n + 1] = '\0';
    *len = n + 1;
    return s;
}

static json_t *table_of(const ck_resource *r, json_t *obj)
{
    json_t *items = json_pack("[O]", obj);
    const char *rv = ck_meta_str(obj, "resourceVersion");
    json_t *t = ck_table_wrap(r, items, NULL, rv ? strtoll(rv, NULL, 10) : 0);
    json_decref(items);
    return t;
}

/* A plain (not Table) line straight from the stored text of the new (or, with `prev`, the
 * previous) object with the event's revision spliced in: no parse, no print (stored values are
 * our own compact dumps, as the list path relies on too).  NULL if there is no such text or it
 * is not the object we expect; the caller then prints the parsed object. */
static const ck_wc_memo *raw_line(ck_wc_event *e, unsigned slot, const char *type, bool prev)
{
    const ck_wc_memo *m = ck_wc_event_memo(e, slot);
    if (m)
        return m;
    const ck_event *ev = ck_wc_event_get(e);
    const char *v = prev ? (ev->prev.key ? ev->prev.value : NULL)
                         : (ev->type == CK_EVENT_PUT ? ev->kv.value : NULL);
    size_t n = prev ? ev->prev.value_len : ev->kv.value_len;
    if (!v)
        return NULL;
    ck_buf b;
    ck_buf_init(&b, 0);
    /* built behind room for the sline header, so the memo is the buffer itself */
    sline hdr;
    atomic_init(&hdr.refs, 1);
    if (ck_buf_add(&b, &hdr, offsetof(sline, text)) < 0 ||
        ck_buf_printf(&b, "{\"type\":\"%s\",\"object\":", type) < 0 ||
        ck_json_splice_rv(v, n, ev->revision, &b) < 0 || ck_buf_add(&b, "}\n", 2) < 0) {
        ck_buf_free(&b);
        return NULL;
    }
    size_t len = b.len - offsetof(sline, text);
    sline *l = (sline *)ck_buf_steal(&b);
    return ck_wc_event_memo_set(e, slot, l->text, len, sline_unref);
}

static const ck_wc_memo *event_line(ck_wc_event *e, const ck_resource *r, unsigned slot,
                                    const char *type, json_t *obj, bool table)
{
    const ck_wc_memo *m = ck_wc_event_memo(e, slot);
    if (m)
        return m;
    size_t len;
    char *line;
    if (table) {
        json_t *t = table_of(r, obj);
        line = line_for(type, t, &len);
        json_decref(t);
    } else {
        line = line_for(type, obj, &len);
    }
    const ck_wc_memo *m2 = memo_line(e, slot, line, len);
    free(line);
    return m2;
}

static bool matches(const watch *w, const json_t *obj)
{
    if (!json_is_object(obj))
        return false;
    return ck_label_selector_matches(w->lsel, json_object_get(json_object_get(obj, "metadata"),
                                                              "labels")) &&
           ck_field_selector_matches(w->fsel, obj);
}

static void write_partial(watch *w, const char *line, size_t len);

static void watch_write(watch *w, const void *data, size_t len)
{
    if (__atomic_load_n(&w->failed, __ATOMIC_ACQUIRE))
        return;
    if (ck_http_stream_write(w->stream, data, len) < 0)
        __atomic_store_n(&w->failed, 1, __ATOMIC_RELEASE);
}

/* A memoized line, queued by reference (the stream releases its reference once sent). */
static void watch_write_line(watch *w, const ck_wc_memo *line)
{
    if (__atomic_load_n(&w->failed, __ATOMIC_ACQUIRE))
        return;
    atomic_fetch_add_explicit(&sline_of(line->data)->refs, 1, memory_order_relaxed);
    if (ck_http_stream_write_ref(w->stream, line->data, line->len, sline_unref) < 0)
        __atomic_store_n(&w->failed, 1, __ATOMIC_RELEASE);
}

static void write_status_event(watch *w, int code, const char *reason, const char *msg)
{
    json_t *st = ck_status_json(code, reason, msg, NULL);
    size_t len;
    char *line = line_for("ERROR", st, &len);
    json_decref(st);
    watch_write(w, line, len);
    free(line);
}

static void write_bookmark(watch *w, int64_t rev, bool initial_end)
{
    char rvb[24];
    snprintf(rvb, sizeof rvb, "%lld", (long long)rev);
    json_t *o = json_pack("{s:s,s:s,s:{s:s}}", "kind", w->res->kind, "apiVersion",
                          ck_resource_api_version(w->res), "metadata", "resourceVersion", rvb);
    if (initial_end)
        json_object_set_new(json_object_get(o, "metadata"), "annotations",
                            json_pack("{s:s}", "k8s.io/initial-events-end", "true"));
    size_t len;
    char *line = line_for("BOOKMARK", o, &len);
    json_decref(o);
    watch_write(w, line, len);
    free(line);
}

static void end_watch(watch *w)
{
    __atomic_store_n(&w->failed, 1, __ATOMIC_RELEASE);
    ck_http_stream_end(w->stream);
}

static void on_note(void *ctx, const ck_wc_note *n)
{
    watch *w = ctx;
    if (__atomic_load_n(&w->failed, __ATOMIC_ACQUIRE))
        return;
    if (n->kind == CK_WC_BOOKMARK) {
        if (w->bookmarks)
            write_bookmark(w, n->revision, false);
        return;
    }
    if (n->kind == CK_WC_ERROR) {
        if (n->err && n->err->code == CK_E_EXPIRED)
            write_status_event(w, 410, "Expired", "The resourceVersion for the provided watch is "
                                                  "too old.");
        else
            write_status_event(w, 500, "InternalError", n->err ? n->err->msg : "watch ended");
        end_watch(w);
        return;
    }
    ck_wc_event *e = n->event;
    const ck_event *ev = ck_wc_event_get(e);
    if (w->exact_key && (!ev->kv.key || strcmp(ev->kv.key, w->exact_key)))
        return;
    const char *natural = ev->type == CK_EVENT_DELETE ? "DELETED" : ev->created ? "ADDED" : "MODIFIED";
    unsigned base = w->table ? SLOT_TABLE_LINE : SLOT_LINE;
    const ck_wc_memo *line = NULL;
    bool del = ev->type == CK_EVENT_DELETE;
    if (!w->filtered) {
        if (!w->table)
            line = raw_line(e, base, natural, del);
        if (!line) {
            json_t *obj = del ? event_prev_obj(e, w->res) : event_new_obj(e);
            if (!json_is_object(obj))
                return;
            line = event_line(e, w->res, base, natural, obj, w->table);
        }
    } else if (del) {
        json_t *prev = event_prev_obj(e, w->res);
        if (!matches(w, prev))
            return;
        if (!w->table)
            line = raw_line(e, base, natural, true);
        if (!line)
            line = event_line(e, w->res, base, natural, prev, w->table);
    } else {
        json_t *cur = event_new_obj(e);
        bool now = matches(w, cur);
        bool before;
        if (ev->created)
            before = false;
        else if (ev->prev.key && ev->prev.value)
            before = matches(w, event_prev_obj(e, w->res));
        else
            before = now;
        if (now && (before || ev->created)) {
            if (!w->table)
                line = raw_line(e, base, natural, false);
            if (!line)
                line = event_line(e, w->res, base, natural, cur, w->table);
        } else if (now) {
            if (!w->table)
                line = raw_line(e, SLOT_ADD_LINE, "ADDED", false);
            if (!line)
                line = event_line(e, w->res, w->table ? SLOT_TABLE_ADD : SLOT_ADD_LINE, "ADDED",
                                  cur, w->table);
        } else if (before) {
            if (!w->table)
                line = raw_line(e, SLOT_DEL_LINE, "DELETED", true);
            if (!line)
                line = event_line(e, w->res, w->table ? SLOT_TABLE_DEL : SLOT_DEL_LINE, "DELETED",
                                  event_prev_obj(e, w->res), w->table);
        } else {
            return;
        }
    }
    if (line && w->partial)
        write_partial(w, line->data, line->len);
    else if (line)
        watch_write_line(w, line);
}

/* A PartialObjectMetadata watcher: the memoized line is re-encoded with metadata only. */
static void write_partial(watch *w, const char *line, size_t len)
{
    json_t *ev = json_loadb(line, len, 0, NULL);
    json_t *obj = json_object_get(ev, "object");
    const char *type = json_string_value(json_object_get(ev, "type"));
    if (obj && type) {
        json_t *p = ck_partial_metadata(obj);
        size_t n;
        char *out = line_for(type, p, &n);
        json_decref(p);
        watch_write(w, out, n);
        free(out);
    }
    json_decref(ev);
}

static void on_close(void *ctx)
{
    watch *w = ctx;
    ck_watch_hub *h = w->hub;
    /* flag under the hub lock: the reaper frees w as soon as it sees the flag, so w must not be
     * touched after the unlock */
    pthread_mutex_lock(&h->mu);
    __atomic_store_n(&w->closed, 1, __ATOMIC_RELEASE);
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

static void watch_free(watch *w)
{
    ck_selector_free(w->lsel);
    ck_selector_free(w->fsel);
    free(w->exact_key);
    free(w);
}

/* ---- the reaper ---- */

static void *reaper_main(void *arg)
{
    ck_watch_hub *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        /* sleep until the next deadline or a close: an idle server does not wake */
        if (h->wake_ns == INT64_MAX) {
            pthread_cond_wait(&h->cv, &h->mu);
        } else {
            struct timespec ts = {.tv_sec = h->wake_ns / 1000000000,
                                  .tv_nsec = h->wake_ns % 1000000000};
            pthread_cond_timedwait(&h->cv, &h->mu, &ts);
        }
        int64_t now = ck_now_ns();
        h->wake_ns = INT64_MAX;
        watch *done = NULL;
        for (watch *w = h->head, *next; w; w = next) {
            next = w->next;
            if (__atomic_load_n(&w->closed, __ATOMIC_ACQUIRE)) {
                if (w->prev)
                    w->prev->next = w->next;
                else
                    h->head = w->next;
                if (w->next)
                    w->next->prev = w->prev;
                w->next = done;
                done = w;
            } else if (!w->ended && now >= w->deadline_ns) {
                w->ended = true;
                end_watch(w);
            } else if (!w->ended && w->deadline_ns < h->wake_ns) {
                h->wake_ns = w->deadline_ns;
            }
        }
        pthread_mutex_unlock(&h->mu);
        while (done) {
            watch *w = done;
            done = w->next;
            ck_watchcache_remove(w->cache, w->w);
            ck_http_stream_release(w->stream);
            ck_metrics_watchers(-1);
            watch_free(w);
        }
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

ck_watch_hub *ck_watch_hub_new(ck_apiserver *s, ck_error **err)
{
    ck_watch_hub *h = xcalloc(1, sizeof *h);
    h->srv = s;
    h->caches = xcalloc(ck_nresources, sizeof *h->caches);
    pthread_mutex_init(&h->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cv, &ca);
    pthread_condattr_destroy(&ca);
    h->wake_ns = INT64_MAX;
    /* the byte cap keeps a burst of big objects from holding 40,000 of them */
    /* inline: on_note only encodes and queues bytes on a stream, so the store's writer may run
     * the delivery right after its commit (no watch-thread and dispatch-thread wake a commit) */
    ck_watchcache_opts o = {.window_events = SHARED_WINDOW, .window_bytes = 64u << 20,
                            .bookmark_interval_ms = 60000, .inline_delivery = true};
    h->shared = ck_watchcache_new(s->store, "/registry/", &o, err);
    if (!h->shared) {
        ck_error_wrap(err, "watch cache for /registry/");
        ck_watch_hub_free(h);
        return NULL;
    }
    for (size_t i = 0; i < ck_nresources; i++)
        if (ck_word_in(ck_resources[i].verbs, "watch"))
            h->caches[i] = h->shared;
    if (pthread_create(&h->reaper, NULL, reaper_main, h) != 0) {
        ck_error_set(err, CK_E_INTERNAL, "start the watch reaper thread");
        h->reaper = 0;
        ck_watch_hub_free(h);
        return NULL;
    }
    return h;
}

void ck_watch_hub_free(ck_watch_hub *h)
{
    if (!h)
        return;
    if (h->reaper) {
        pthread_mutex_lock(&h->mu);
        h->stop = true;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->reaper, NULL);
    }
    /* called after the HTTP server stopped: no on_close can arrive any more */
    for (watch *w = h->head, *next; w; w = next) {
        next = w->next;
        ck_watchcache_remove(w->cache, w->w);
        ck_http_stream_end(w->stream);
        ck_http_stream_release(w->stream);
        ck_metrics_watchers(-1);
        watch_free(w);
    }
    h->head = NULL;
    if (h->shared)
        ck_watchcache_free(h->shared);
    free(h->caches);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}

void ck_watch_hub_rounds(ck_watch_hub *h, uint64_t *inline_rounds, uint64_t *thread_rounds)
{
    ck_watchcache_stats st = {0};
    if (h && h->shared)
        ck_watchcache_get_stats(h->shared, &st);
    *inline_rounds = st.rounds_inline;
    *thread_rounds = st.rounds_thread;
}

/* ---- serving ---- */

static int64_t default_timeout_ns(void)
{
    uint32_t r;
    ck_random_bytes(&r, sizeof r);
    return (1800 + (int64_t)(r % 1800)) * 1000000000LL;
}

/* Initial ADDED events from a store list of the watch's scope; returns the list revision. */
static int initial_events(ck_reqctx *c, watch *w, const char *prefix, int64_t *rev, ck_error **err)
{
    ck_list_opts o = {0};
    const char *start = NULL;
    cleanup_free char *startbuf = NULL;
    *rev = 0;
    for (;;) {
        ck_list l = {0};
        o.revision = *rev;
        o.limit = 1000;
        o.start_after = start;
        if (ck_store_list(c->srv->store, prefix, &o, &l, err) < 0)
            return -1;
        *rev = l.revision;
        for (size_t i = 0; i < l.n; i++) {
            if (w->exact_key && strcmp(l.items[i].key, w->exact_key))
                continue;
            json_t *obj = json_loadb(l.items[i].value, l.items[i].value_len, 0, NULL);
            if (!json_is_object(obj) || (w->filtered && !matches(w, obj))) {
                json_decref(obj);
                continue;
            }
            ck_meta_set_rv(obj, l.items[i].mod_revision);
            json_t *o2 = w->table     ? table_of(w->res, obj)
                         : w->partial ? ck_partial_metadata(obj)
                                      : json_incref(obj);
            size_t len;
            char *line = line_for("ADDED", o2, &len);
            json_decref(o2);
            json_decref(obj);
            watch_write(w, line, len);
            free(line);
        }
        bool more = l.more && l.n;
        if (more) {
            free(startbuf);
            startbuf = xstrdup(l.items[l.n - 1].key);
            start = startbuf;
        }
        ck_list_free(&l);
        if (!more)
            return 0;
    }
}

void ck_watch_serve(ck_reqctx *c)
{
    ck_apiserver *s = c->srv;
    const ck_resource *r = c->route.res;
    ck_watch_hub *h = __atomic_load_n(&s->watch, __ATOMIC_ACQUIRE);
    ck_error *e = NULL;
    ck_watchcache *cache = h ? h->caches[r - ck_resources] : NULL;
    if (!cache) {
        ck_error_set(&e, CK_E_METHOD, "watch is not supported on %s", ck_res_qualified(r));
        return ck_respond_error(c, e);
    }
    ck_list_query lq;
    if (ck_list_query_from_request(c, true, &lq, &e) < 0)
        return ck_respond_error(c, e);
    watch *w = xcalloc(1, sizeof *w);
    w->hub = h;
    w->cache = cache;
    w->res = r;
    w->lsel = ck_label_selector_parse(lq.label_selector, &e);
    if (w->lsel)
        w->fsel = ck_field_selector_parse(lq.field_selector, r, &e);
    if (!w->lsel || !w->fsel) {
        watch_free(w);
        ck_list_query_free(&lq);
        return ck_respond_error(c, e);
    }
    bool send_initial = lq.send_initial;
    w->filtered = !ck_selector_is_empty(w->lsel) || !ck_selector_is_empty(w->fsel);
    w->bookmarks = lq.bookmarks;
    w->table = ck_accept_as(c) == CK_AS_TABLE;
    w->partial = ck_accept_as(c) == CK_AS_PARTIAL;
    const char *ns = r->namespaced ? c->route.namespace_ : NULL;
    const char *fns = ck_selector_exact(w->fsel, "metadata.namespace");
    if (!ns && r->namespaced && fns)
        ns = fns;
    const char *name = c->route.name ? c->route.name : ck_selector_exact(w->fsel, "metadata.name");
    cleanup_free char *prefix = ck_resource_key_prefix(r, ns);
    if (name && (ns || !r->namespaced))
        w->exact_key = xasprintf("%s%s", prefix, name);
    /* upstream: 0 or absent picks the default; a negative timeout ends the watch at once */
    int64_t tsec = lq.timeout_seconds;
    tsec = tsec > 315360000 ? 315360000 : tsec < 0 ? 0 : tsec;   /* the ns product cannot overflow */
    w->deadline_ns = ck_now_ns() + (lq.timeout_seconds < 0 ? 0
                                    : tsec > 0 ? tsec * 1000000000LL : default_timeout_ns());

    w->stream = ck_http_stream_start(c->resp, 200, "application/json", c->warnings.len ?
                                     c->warnings.data : NULL, on_close, w);
    c->responded = true;
    c->status = 200;
    int64_t after = lq.rev;
    bool initial = send_initial || after == 0;
    ck_list_query_free(&lq);
    if (!w->stream) {
        watch_free(w);
        return;
    }
    ck_metrics_watchers(1);
    if (initial) {
        int64_t rev = 0;
        if (initial_events(c, w, prefix, &rev, &e) < 0) {
            write_status_event(w, ck_error_http_status(e->code), ck_error_reason(e->code), e->msg);
            ck_error_free(e);
            e = NULL;
            end_watch(w);
        } else {
            if (send_initial)
                write_bookmark(w, rev, true);
            after = rev;
        }
    }
    if (!__atomic_load_n(&w->failed, __ATOMIC_ACQUIRE)) {
        ck_wc_watch_opts wo = {.after_rev = after, .prefix = w->exact_key ? w->exact_key : prefix,
                               .bookmarks = w->bookmarks};
        w->w = ck_watchcache_add(cache, &wo, on_note, w, &e);
        if (!w->w) {
            if (e->code == CK_E_EXPIRED) {
                char *msg = xasprintf("too old resource version: %lld (%lld)", (long long)after,
                                      (long long)ck_watchcache_revision(cache));
                write_status_event(w, 410, "Expired", msg);
                free(msg);
            } else {
                write_status_event(w, ck_error_http_status(e->code), ck_error_reason(e->code),
                                   e->msg);
            }
            ck_error_free(e);
            end_watch(w);
        }
    }
    /* hand the watch to the reaper, which frees it once the stream has closed */
    pthread_mutex_lock(&h->mu);
    w->next = h->head;
    if (h->head)
        h->head->prev = w;
    h->head = w;
    if (w->deadline_ns < h->wake_ns) {   /* sooner than the reaper planned to look */
        h->wake_ns = w->deadline_ns;
        pthread_cond_signal(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
}
