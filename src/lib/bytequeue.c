/* bytequeue.c - see bytequeue.h. */
#include "lib/bytequeue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/util.h"

void ck_bytequeue_init(ck_bytequeue *q, size_t limit)
{
    *q = (ck_bytequeue){.limit = limit};
}

void ck_bytequeue_free(ck_bytequeue *q)
{
    free(q->buf);
    *q = (ck_bytequeue){.limit = q->limit};
}

char *ck__bytequeue_grow(ck_bytequeue *q, size_t n, ck_error **err)
{
    if (q->off == q->len)
        q->off = q->len = 0;
    /* the taken front first: a queue that keeps up never grows */
    if (n > q->cap - q->len && q->off) {
        memmove(q->buf, q->buf + q->off, q->len - q->off);
        q->len -= q->off;
        q->off = 0;
    }
    if (n > q->cap - q->len) {
        if (n > q->limit || q->len > q->limit - n) {
            ck_error_set(err, CK_E_TOO_LARGE, "byte queue: %zu bytes pending, %zu more pass the "
                         "limit of %zu", q->len, n, q->limit);
            return NULL;
        }
        size_t cap = q->cap ? q->cap : CK_BYTEQUEUE_FIRST;
        while (cap < q->len + n)
            cap *= 2;
        if (cap > q->limit) {
            ck_error_set(err, CK_E_TOO_LARGE, "byte queue: %zu bytes pending, room for %zu more "
                         "passes the limit of %zu", q->len, n, q->limit);
            return NULL;
        }
        q->buf = xrealloc(q->buf, cap);
        q->cap = cap;
    }
    return q->buf + q->len;
}

int ck_bytequeue_append(ck_bytequeue *q, const void *data, size_t n, ck_error **err)
{
    if (n == 0)
        return 0;
    char *p = ck_bytequeue_reserve(q, n, err);
    if (!p)
        return -1;
    memcpy(p, data, n);
    q->len += n;
    return 0;
}

int ck_bytequeue_send(ck_bytequeue *q, int fd, unsigned *sends, ck_error **err)
{
    while (ck_bytequeue_pending(q)) {
        ssize_t n = send(fd, ck_bytequeue_data(q), ck_bytequeue_pending(q), MSG_NOSIGNAL);
        if (sends)
            (*sends)++;
        if (n > 0) {
            ck_bytequeue_consume(q, (size_t)n);
            if (ck_bytequeue_pending(q))
                return 0;   /* a short write: the socket is full */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return ck_error_sys(err, CK_E_IO, "send");
    }
    ck_bytequeue_reset(q);
    return 1;
}
