/* workqueue.h - the controllers' work queue (client-go's workqueue, our code): a set of string keys
 * where a key is queued at most once, is never processed by two workers at once (re-added while in
 * flight -> queued again when done), can be delayed, and is rate limited per key with exponential
 * backoff on failures (5 ms doubling to 1000 s, reset by forget).
 *
 * Usage:  while ((key = ck_workqueue_get(q))) { ok = sync(key); ok ? forget(q,key) :
 *         add_rate_limited(q,key); ck_workqueue_done(q, key); free(key); }
 */
#ifndef CK_WORKQUEUE_H
#define CK_WORKQUEUE_H

#include <stddef.h>
#include <stdint.h>

typedef struct ck_workqueue ck_workqueue;

ck_workqueue *ck_workqueue_new(void);
void ck_workqueue_add(ck_workqueue *q, const char *key);
void ck_workqueue_add_after(ck_workqueue *q, const char *key, int64_t delay_ms);
void ck_workqueue_add_rate_limited(ck_workqueue *q, const char *key);
void ck_workqueue_forget(ck_workqueue *q, const char *key);
int ck_workqueue_retries(ck_workqueue *q, const char *key);
/* Blocks until a key is ready (caller frees it) or the queue is shut down (NULL). */
char *ck_workqueue_get(ck_workqueue *q);
void ck_workqueue_done(ck_workqueue *q, const char *key);
size_t ck_workqueue_len(ck_workqueue *q);
/* Wakes every blocked get with NULL; later adds are ignored. */
void ck_workqueue_shutdown(ck_workqueue *q);
void ck_workqueue_free(ck_workqueue *q);

#endif
