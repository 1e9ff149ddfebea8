/* bufpool.c - recycled bulk buffers for one streaming session (see bufpool.h).
 *
 * Each buffer carries its pool in a header before the bytes handed out, so a release needs only
 * the pointer (httpd's cleanup callbacks get nothing else).  The pool counts one reference for
 * its owner and one per buffer out; the last one frees it.
 */
#include "lib/bufpool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "lib/util.h"

#define POOL_MAX_KEEP 8

struct ck_bufpool {
    pthread_mutex_t mu;
    size_t size;
    int keep, nidle, refs;
    bool closed;
    void *idle[POOL_MAX_KEEP];
};

/* the header keeps the bytes handed out 16-byte aligned, as malloc's */
typedef union pool_head {
    ck_bufpool *pool;
    max_align_t align;
} pool_head;

ck_bufpool *ck_bufpool_new(size_t size, int keep)
{
    ck_bufpool *p = xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    p->size = size;
    p->keep = keep < 0 ? 0 : keep > POOL_MAX_KEEP ? POOL_MAX_KEEP : keep;
    p->refs = 1;
    return p;
}

size_t ck_bufpool_size(const ck_bufpool *p)
{
    return p->size;
}

int ck_bufpool_outstanding(ck_bufpool *p)
{
    pthread_mutex_lock(&p->mu);
    int n = p->refs - (p->closed ? 0 : 1);
    pthread_mutex_unlock(&p->mu);
    return n;
}

static void pool_free(ck_bufpool *p)
{
    for (int i = 0; i < p->nidle; i++)
        free(p->idle[i]);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void *ck_bufpool_get(ck_bufpool *p)
{
    pool_head *h = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->nidle)
        h = p->idle[--p->nidle];
    p->refs++;
    pthread_mutex_unlock(&p->mu);
    if (!h) {
        h = xmalloc(sizeof *h + p->size);
        h->pool = p;
    }
    return h + 1;
}

void ck_bufpool_release(void *buf)
{
    if (!buf)
        return;
    pool_head *h = (pool_head *)buf - 1;
    ck_bufpool *p = h->pool;
    pthread_mutex_lock(&p->mu);
    if (!p->closed && p->nidle < p->keep) {
        p->idle[p->nidle++] = h;
        h = NULL;
    }
    bool last = --p->refs == 0;
    pthread_mutex_unlock(&p->mu);
    free(h);
    if (last)
        pool_free(p);
}

void ck_bufpool_close(ck_bufpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->closed = true;
    for (int i = 0; i < p->nidle; i++)
        free(p->idle[i]);
    p->nidle = 0;
    bool last = --p->refs == 0;
    pthread_mutex_unlock(&p->mu);
    if (last)
        pool_free(p);
}
