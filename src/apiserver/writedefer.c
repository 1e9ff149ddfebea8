/* writedefer.c - API writes answered by the store's completion instead of a waiting worker.
 *
 * A create, update, patch, status write or binding ends with one store write whose successful
 * answer is the stored text with the new resourceVersion spliced in; a delete's is a Status
 * built before the write.  With the SQLite store the
 * worker hands that write over (ck_store_write_async) and takes the next request; the store's
 * writer thread, after the group commit is durable, completes it here and answers through httpd
 * (which takes answers from any thread).  That saves the worker's sleep and wake-up (a futex
 * wait, a context switch) per write: see docs/apiserver.md "Writes answered by the store".
 *
 * Contract:
 *  - Nothing is answered before the commit: the completion runs after the COMMIT (synchronous
 *    = FULL), the value cache and the watchers have the write.
 *  - The answer is the synchronous path's, byte for byte: the same splice (or, if the text has
 *    no top-level metadata, the same print of the object), the same error texts (404,
 *    409 AlreadyExists / Conflict, the store's own errors as they are).
 *  - A failure that the synchronous path would have retried (async_retry: an unpinned update's
 *    conflict, a generated name's clash) reruns the whole request on the rerun thread with
 *    c->sync_only set: the handler reads again (or picks another name) and retries as before.
 *  - Two parties hold the request: the handler (until it returns) and the completion; the last
 *    one to let go answers, so the answer never races with a handler still unwinding, and the
 *    request is read (metrics, log line) before the answer lets httpd free it.
 *  - The writer thread must not wait on the store: the answer is built and queued (no write),
 *    and a rerun goes to the rerun thread.
 *  - A request that must wait for something another party makes soon (a namespace's default
 *    ServiceAccount: ck_defer_retry) is served again from the top by the rerun thread once its
 *    delay has passed, as it is (not synchronous only), instead of sleeping on its worker.
 */
#include "apiserver/apiserver.h"
#include "lib/log.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct ck_defer {
    atomic_int holders;       /* handler + completion */
    const ck_resource *r;
    enum ck_store_write_kind kind;
    char *name, *key, *text;
    size_t len;
    size_t rv_at;             /* where the resourceVersion goes (ck_json_rv_slot) */
    bool rv_empty;
    int code;
    bool status_answer;
    json_t *answer;           /* a delete's Status or kept object, printed as the answer */
    bool answer_rv;           /* the new resourceVersion goes into answer first */
    int64_t t0;
    int64_t rev;              /* the result */
    ck_error *err;
    bool again;               /* ck_defer_retry: serve again at due_ns */
    int64_t due_ns;
    struct ck_defer *next;    /* rerun queue */
    ck_reqctx *c;
} ck_defer;

/* in-flight deferred requests (for ck_defer_drain) and the rerun queue */
static pthread_mutex_t dmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dcond = PTHREAD_COND_INITIALIZER;
static long inflight;
static ck_defer *rq_head, **rq_tail = &rq_head;
static pthread_once_t rerun_once = PTHREAD_ONCE_INIT;
static atomic_llong n_deferred, n_reruns, n_retries;

bool ck_defer_can(const ck_reqctx *c)
{
    return c->async_ok && !c->sync_only && c->resp && ck_store_async_native(c->srv->store);
}

static void defer_free(ck_defer *d)
{
    free(d->name);
    free(d->key);
    free(d->text);
    json_decref(d->answer);
    ck_error_free(d->err);
    free(d);
}

static void inflight_done(void)
{
    pthread_mutex_lock(&dmu);
    if (--inflight == 0)
        pthread_cond_broadcast(&dcond);
    pthread_mutex_unlock(&dmu);
}

/* Under dmu: the queued request due first, unlinked, once it is due (waits until then). */
static ck_defer *next_due_locked(void)
{
    for (;;) {
        ck_defer **best = NULL;
        for (ck_defer **p = &rq_head; *p; p = &(*p)->next)
            if (!best || (*p)->due_ns < (*best)->due_ns)
                best = p;
        if (!best) {
            pthread_cond_wait(&dcond, &dmu);
            continue;
        }
        int64_t wait = (*best)->due_ns - ck_now_ns();
        if (wait <= 0) {
            ck_defer *d = *best;
            *best = d->next;
            if (rq_tail == &d->next)
                rq_tail = best;
            return d;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + wait;
        ts.tv_sec += ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&dcond, &dmu, &ts);
    }
}

/* The rerun thread: a request whose asynchronous write lost a race, served again from the top
 * with every write synchronous (the handler's read-modify-write retry loop); or one that asked
 * to be served again later (ck_defer_retry), served as it is. */
static void *rerun_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "api-rerun");
    for (;;) {
        pthread_mutex_lock(&dmu);
        ck_defer *d = next_due_locked();
        pthread_mutex_unlock(&dmu);

        ck_reqctx *c = d->c;
        bool again = d->again;
        defer_free(d);
        c->defer = NULL;
        c->sync_only = c->sync_only || !again;
        c->async_ok = c->async_retry = false;
        c->no_details = false;
        ck_buf_reset(&c->warnings);
        json_decref(c->causes);
        json_decref(c->details);
        c->causes = c->details = NULL;
        /* the request is freed by httpd once answered: keep what the log line needs */
        char *method = xstrdup(c->req->method), *target = xstrdup(c->req->target);
        int64_t received = c->req->received_ns;
        ck_rest_serve(c);
        if (c->defer) {               /* handed on again: that one answers (and counts) */
            free(method);
            free(target);
            ck_defer_handler_done(c);
            inflight_done();
            continue;
        }
        if (!c->responded)
            ck_respond_json(c, 500, ck_status_json(500, "InternalError", "no response", NULL));
        ck_reqctx_account(c, method, target, received);
        free(method);
        free(target);
        ck_reqctx_free(c);
        inflight_done();
    }
    return NULL;
}

static void rerun_start(void)
{
    pthread_t th;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &a, rerun_main, NULL) != 0) {
        log_error("cannot start the API rerun thread");
        abort();   /* a conflicted write could never be answered */
    }
    pthread_attr_destroy(&a);
}

/* Queues d for the rerun thread (due_ns 0: at once). */
static void rerun(ck_defer *d)
{
    pthread_once(&rerun_once, rerun_start);
    pthread_mutex_lock(&dmu);
    d->next = NULL;
    *rq_tail = d;
    rq_tail = &d->next;
    pthread_cond_broadcast(&dcond);
    pthread_mutex_unlock(&dmu);
}

/* The synchronous path's error for a failed write (rest.c: create_obj, store_write_error). */
static ck_error *map_error(ck_defer *d)
{
    ck_error *e = d->err, *out = NULL;
    d->err = NULL;
    if (d->kind == CK_STORE_CREATE && e->code == CK_E_EXISTS)
        ck_err_exists(&out, d->r, d->name);
    else if (d->kind == CK_STORE_UPDATE && e->code == CK_E_CONFLICT)
        ck_err_conflict(&out, d->r, d->name);
    else if (d->kind != CK_STORE_CREATE && e->code == CK_E_NOT_FOUND)
        ck_err_not_found(&out, d->r, d->name);
    else if (d->kind == CK_STORE_DELETE && e->code == CK_E_CONFLICT)
        ck_err_conflict(&out, d->r, d->name);
    else
        return e;
    ck_error_free(e);
    return out;
}

/* Both parties are done: answer (after reading the request for metrics and the log line, as
 * the answer lets httpd free it), or queue the rerun. */
static void settle(ck_reqctx *c)
{
    ck_defer *d = c->defer;
    ck_http_req *req = c->req;
    if (d->again)
        return rerun(d);
    /* what the synchronous path retries: an unpinned update's conflict, a generated name's
     * clash, a delete's conflict (read again) */
    if (d->err && c->async_retry &&
        d->err->code == (d->kind == CK_STORE_CREATE ? CK_E_EXISTS : CK_E_CONFLICT)) {
        atomic_fetch_add(&n_reruns, 1);
        return rerun(d);
    }
    c->defer = NULL;
    if (d->err) {
        ck_error *e = map_error(d);
        c->status = ck_error_http_status(e->code);
        ck_reqctx_account(c, req->method, req->target, req->received_ns);
        ck_respond_error(c, e);
    } else if (d->answer) {
        c->status = d->code;
        ck_reqctx_account(c, req->method, req->target, req->received_ns);
        json_t *a = d->answer;
        d->answer = NULL;
        if (d->answer_rv)
            ck_meta_set_rv(a, d->rev);
        ck_respond_json(c, d->code, a);
    } else if (d->status_answer) {
        c->status = d->code;
        ck_reqctx_account(c, req->method, req->target, req->received_ns);
        ck_respond_success(c, d->code);
    } else {
        ck_buf b;
        ck_buf_init(&b, 0);
        c->status = d->code;
        ck_reqctx_account(c, req->method, req->target, req->received_ns);
        if (ck_json_splice_rv_at(d->text, d->len, d->rv_at, d->rv_empty, d->rev, &b) == 0)
            ck_respond_bytes(c, d->code, "application/json", b.data, b.len);
        else   /* out of memory only: the buffer has no limit */
            ck_respond_json(c, 500, ck_status_json(500, "InternalError", "encoding failed", NULL));
        ck_buf_free(&b);
    }
    defer_free(d);
    ck_reqctx_free(c);
    inflight_done();
}

static void let_go(ck_reqctx *c)
{
    if (atomic_fetch_sub(&c->defer->holders, 1) == 1)
        settle(c);
}

/* the store's completion (usually on its writer thread) */
static void write_done(void *ctx, int64_t rev, ck_error *err)
{
    ck_reqctx *c = ctx;
    ck_defer *d = c->defer;
    /* after the write, as the synchronous path: admission's cached reads are stale from here */
    ck_admission_note_write(c->srv, d->r);
    static const char *const kinds[] = {"create", "update", "delete"};
    ck_metrics_store(kinds[d->kind], (double)(ck_now_ns() - d->t0) / 1e9);
    d->rev = rev;
    d->err = err;
    if (!err && rev <= 0)
        ck_error_set(&d->err, CK_E_INTERNAL, "write completed without a revision");
    let_go(c);
}

/* A new deferral of c, held by `holders` parties and counted in flight (ck_defer_drain). */
static ck_defer *defer_new(ck_reqctx *c, int holders)
{
    ck_defer *d = xcalloc(1, sizeof *d);
    atomic_init(&d->holders, holders);
    d->c = c;
    c->defer = d;
    pthread_mutex_lock(&dmu);
    inflight++;
    pthread_mutex_unlock(&dmu);
    return d;
}

/* A deferred write: held by the handler and the completion; owns key and text. */
static ck_defer *defer_new_write(ck_reqctx *c, const ck_resource *r,
                                 enum ck_store_write_kind kind, const char *name, char *key,
                                 char *text, size_t len, int code)
{
    ck_defer *d = defer_new(c, 2);
    d->r = r;
    d->kind = kind;
    d->name = xstrdup(name ? name : "");
    d->key = key;
    d->text = text;
    d->len = len;
    d->code = code;
    d->t0 = ck_now_ns();
    return d;
}

/* Hands d's write to the store; write_done completes it. */
static void defer_submit(ck_defer *d, int64_t expected)
{
    atomic_fetch_add(&n_deferred, 1);
    ck_write w = {.kind = d->kind, .key = d->key, .val = d->text, .len = d->len,
                  .expected = expected};
    ck_store_write_async(d->c->srv->store, &w, write_done, d->c);
}

bool ck_defer_write(ck_reqctx *c, const ck_resource *r, enum ck_store_write_kind kind,
                    const char *name, char *key, char *text, size_t len, int64_t expected,
                    int code, bool status_answer)
{
    size_t at = 0;
    bool empty = false;
    /* no metadata to splice into: the synchronous path prints the object instead */
    if (!ck_defer_can(c) || (!status_answer && ck_json_rv_slot(text, len, &at, &empty) < 0))
        return false;
    ck_defer *d = defer_new_write(c, r, kind, name, key, text, len, code);
    d->rv_at = at;
    d->rv_empty = empty;
    d->status_answer = status_answer;
    defer_submit(d, expected);
    return true;
}

bool ck_defer_can_retry(const ck_reqctx *c)
{
    return c->async_ok && !c->sync_only && c->resp;
}

void ck_defer_retry(ck_reqctx *c, int delay_ms)
{
    ck_defer *d = defer_new(c, 1);   /* the handler only: once it returns, the rerun queue */
    d->again = true;
    d->due_ns = ck_now_ns() + (int64_t)delay_ms * 1000000;
    atomic_fetch_add(&n_retries, 1);
}

bool ck_defer_write_json(ck_reqctx *c, const ck_resource *r, enum ck_store_write_kind kind,
                         const char *name, char *key, char *text, size_t len, int64_t expected,
                         json_t *answer, bool answer_rv)
{
    if (!ck_defer_can(c))
        return false;
    ck_defer *d = defer_new_write(c, r, kind, name, key, text, len, 200);
    d->answer = answer;
    d->answer_rv = answer_rv;
    defer_submit(d, expected);
    return true;
}

void ck_defer_handler_done(ck_reqctx *c)
{
    let_go(c);
}

void ck_defer_drain(void)
{
    pthread_mutex_lock(&dmu);
    while (inflight > 0)
        pthread_cond_wait(&dcond, &dmu);
    pthread_mutex_unlock(&dmu);
}

void ck_defer_stats(long long *deferred, long long *reruns, long long *retries)
{
    *deferred = atomic_load(&n_deferred);
    *reruns = atomic_load(&n_reruns);
    *retries = atomic_load(&n_retries);
}
