/* workqueue.c - see workqueue.h.  Sets are jansson objects used as string hash sets (jansson is
 * already our JSON library and its object is a well-tested hash table). */
#include "client/workqueue.h"
#include "lib/util.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_BASE_MS 5
#define BACKOFF_MAX_MS (1000 * 1000)

typedef struct delayed {
    int64_t ready_ns;
    char *key;
} delayed;

struct ck_workqueue {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char **queue;          /* FIFO ring of keys ready to process */
    size_t head, len, cap;
    json_t *dirty;         /* keys queued or to be requeued when done */
    json_t *processing;    /* keys handed to a worker */
    json_t *failures;      /* key -> retry count */
    delayed *heap;         /* min-heap on ready_ns */
    size_t nheap, capheap;
    bool shutting_down;
};

ck_workqueue *ck_workqueue_new(void)
{
    ck_workqueue *q = xcalloc(1, sizeof *q);
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cond, &attr);
    pthread_condattr_destroy(&attr);
    q->dirty = json_object();
    q->processing = json_object();
    q->failures = json_object();
    return q;
}

static void push_locked(ck_workqueue *q, const char *key)
{
    if (q->len == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        char **n = xmalloc(cap * sizeof *n);
        for (size_t i = 0; i < q->len; i++)
            n[i] = q->queue[(q->head + i) % q->cap];
        free(q->queue);
        q->queue = n;
        q->cap = cap;
        q->head = 0;
    }
    q->queue[(q->head + q->len) % q->cap] = xstrdup(key);
    q->len++;
}

static void add_locked(ck_workqueue *q, const char *key)
{
    if (q->shutting_down || json_object_get(q->dirty, key))
        return;
    json_object_set_new(q->dirty, key, json_true());
    if (json_object_get(q->processing, key))
        return;   /* re-queued by done() */
    push_locked(q, key);
    pthread_cond_signal(&q->cond);
}

void ck_workqueue_add(ck_workqueue *q, const char *key)
{
    pthread_mutex_lock(&q->lock);
    add_locked(q, key);
    pthread_mutex_unlock(&q->lock);
}

static void heap_push(ck_workqueue *q, int64_t ready, const char *key)
{
    if (q->nheap == q->capheap) {
        q->capheap = q->capheap ? q->capheap * 2 : 32;
        q->heap = xrealloc(q->heap, q->capheap * sizeof *q->heap);
    }
    size_t i = q->nheap++;
    q->heap[i] = (delayed){ready, xstrdup(key)};
    while (i && q->heap[(i - 1) / 2].ready_ns > q->heap[i].ready_ns) {
        delayed t = q->heap[i];
        q->heap[i] = q->heap[(i - 1) / 2];
        q->heap[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static delayed heap_pop(ck_workqueue *q)
{
    delayed top = q->heap[0];
    q->heap[0] = q->heap[--q->nheap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < q->nheap && q->heap[l].ready_ns < q->heap[m].ready_ns)
            m = l;
        if (r < q->nheap && q->heap[r].ready_ns < q->heap[m].ready_ns)
            m = r;
        if (m == i)
            break;
        delayed t = q->heap[i];
        q->heap[i] = q->heap[m];
        q->heap[m] = t;
        i = m;
    }
    return top;
}

void ck_workqueue_add_after(ck_workqueue *q, const char *key, int64_t delay_ms)
{
    if (delay_ms <= 0) {
        ck_workqueue_add(q, key);
        return;
    }
    pthread_mutex_lock(&q->lock);
    if (!q->shutting_down) {
        heap_push(q, ck_now_ns() + delay_ms * 1000000, key);
        pthread_cond_broadcast(&q->cond);   /* a getter may need a shorter timed wait */
    }
    pthread_mutex_unlock(&q->lock);
}

void ck_workqueue_add_rate_limited(ck_workqueue *q, const char *key)
{
    pthread_mutex_lock(&q->lock);
    json_int_t n = json_integer_value(json_object_get(q->failures, key));
    json_object_set_new(q->failures, key, json_integer(n + 1));
    pthread_mutex_unlock(&q->lock);
    int64_t delay = BACKOFF_BASE_MS;
    for (json_int_t i = 0; i < n && delay < BACKOFF_MAX_MS; i++)
        delay *= 2;
    if (delay > BACKOFF_MAX_MS)
        delay = BACKOFF_MAX_MS;
    ck_workqueue_add_after(q, key, delay);
}

void ck_workqueue_forget(ck_workqueue *q, const char *key)
{
    pthread_mutex_lock(&q->lock);
    json_object_del(q->failures, key);
    pthread_mutex_unlock(&q->lock);
}

int ck_workqueue_retries(ck_workqueue *q, const char *key)
{
    pthread_mutex_lock(&q->lock);
    int n = (int)json_integer_value(json_object_get(q->failures, key));
    pthread_mutex_unlock(&q->lock);
    return n;
}

char *ck_workqueue_get(ck_workqueue *q)
{
    pthread_mutex_lock(&q->lock);
    for (;;) {
        int64_t now = ck_now_ns();
        while (q->nheap && q->heap[0].ready_ns <= now) {
            delayed d = heap_pop(q);
            add_locked(q, d.key);
            free(d.key);
        }
        if (q->len || q->shutting_down)
            break;
        if (q->nheap) {
            int64_t at = q->heap[0].ready_ns;
            struct timespec ts = {.tv_sec = at / 1000000000, .tv_nsec = at % 1000000000};
            pthread_cond_timedwait(&q->cond, &q->lock, &ts);
        } else {
            pthread_cond_wait(&q->cond, &q->lock);
        }
    }
    char *key = NULL;
    if (q->len && !q->shutting_down) {
        key = q->queue[q->head];
        q->head = (q->head + 1) % q->cap;
        q->len--;
        json_object_set_new(q->processing, key, json_true());
        json_object_del(q->dirty, key);
    }
    pthread_mutex_unlock(&q->lock);
    return key;
}

void ck_workqueue_done(ck_workqueue *q, const char *key)
{
    pthread_mutex_lock(&q->lock);
    json_object_del(q->processing, key);
    if (json_object_get(q->dirty, key) && !q->shutting_down) {
        push_locked(q, key);
        pthread_cond_signal(&q->cond);
    }
    pthread_mutex_unlock(&q->lock);
}

size_t ck_workqueue_len(ck_workqueue *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->len;
    pthread_mutex_unlock(&q->lock);
    return n;
}

void ck_workqueue_shutdown(ck_workqueue *q)
{
    pthread_mutex_lock(&q->lock);
    q->shutting_down = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

void ck_workqueue_free(ck_workqueue *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->len; i++)
        free(q->queue[(q->head + i) % q->cap]);
    free(q->queue);
    for (size_t i = 0; i < q->nheap; i++)
        free(q->heap[i].key);
    free(q->heap);
    json_decref(q->dirty);
    json_decref(q->processing);
    json_decref(q->failures);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond);
    free(q);
}
