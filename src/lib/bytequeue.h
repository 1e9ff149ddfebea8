/* bytequeue.h - a growable byte queue with a hard bound: bytes appended at the end, taken from
 * the front.
 *
 * The exec/port-forward relay (src/apiserver/podproxy.c) and the kubelet's session pump
 * (src/streams/tunnel.c) queue TLS records for a non-blocking socket in one: records are made
 * (or sealed) straight into reserved room, the socket takes what it can from the front.  Room
 * starts at 64 KiB and doubles; the taken front is moved away only when the end has no room;
 * going past the caller's limit is an error, not a realloc forever.  The buffer is kept (not
 * shrunk) until ck_bytequeue_free.  No locking: one thread.
 */
#ifndef CK_LIB_BYTEQUEUE_H
#define CK_LIB_BYTEQUEUE_H

#include <stddef.h>

#include "lib/error.h"

#define CK_BYTEQUEUE_FIRST (64u * 1024)   /* the first allocation */

typedef struct ck_bytequeue {
    char *buf;
    size_t off;         /* the front: bytes before it were taken */
    size_t len;         /* the end: bytes [off, len) are pending */
    size_t cap;
    size_t limit;       /* cap never grows past it */
} ck_bytequeue;

/* An empty queue (nothing allocated) whose buffer never grows past limit bytes. */
void ck_bytequeue_init(ck_bytequeue *q, size_t limit);
void ck_bytequeue_free(ck_bytequeue *q);

/* The slow half of ck_bytequeue_reserve: moves the pending bytes to the front or grows. */
char *ck__bytequeue_grow(ck_bytequeue *q, size_t n, ck_error **err);

/* Room for n more bytes at the end (write them, then ck_bytequeue_commit); NULL with CK_E_TOO_LARGE
 * when the buffer would pass the limit (nothing is changed then). */
static inline char *ck_bytequeue_reserve(ck_bytequeue *q, size_t n, ck_error **err)
{
    if (q->off == q->len)
        q->off = q->len = 0;
    if (n <= q->cap - q->len)   /* len <= cap: no wrap, whatever n a caller passes */
        return q->buf + q->len;
    return ck__bytequeue_grow(q, n, err);
}

/* n bytes written into the reserved room are now pending. */
static inline void ck_bytequeue_commit(ck_bytequeue *q, size_t n)
{
    q->len += n;
}

/* A copy of data at the end; <0 (CK_E_TOO_LARGE) past the limit, nothing appended then. */
int ck_bytequeue_append(ck_bytequeue *q, const void *data, size_t n, ck_error **err);

static inline const char *ck_bytequeue_data(const ck_bytequeue *q)
{
    return q->buf + q->off;
}

static inline size_t ck_bytequeue_pending(const ck_bytequeue *q)
{
    return q->len - q->off;
}

/* n (at most pending) bytes taken from the front. */
static inline void ck_bytequeue_consume(ck_bytequeue *q, size_t n)
{
    q->off += n;
}

/* The pending bytes to a non-blocking socket, send(2) (MSG_NOSIGNAL) until it is full or they
 * are gone: 1 all sent (the queue reset), 0 the socket is full (a short write or EAGAIN: wait for
 * POLLOUT), -1 (CK_E_IO) on a send error, the unsent bytes kept.  *sends (if not NULL) counts the
 * send(2) calls. */
int ck_bytequeue_send(ck_bytequeue *q, int fd, unsigned *sends, ck_error **err);

/* Everything pending dropped; the buffer is kept for reuse. */
static inline void ck_bytequeue_reset(ck_bytequeue *q)
{
    q->off = q->len = 0;
}

#endif
