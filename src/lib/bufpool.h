/* bufpool.h - recycled bulk buffers for one streaming session.
 *
 * A relay or a streaming pump reads ~1 MiB at a time into a fresh buffer and hands it to httpd,
 * which frees it once written.  With malloc/free per batch, glibc gives the freed megabytes back
 * to the kernel (arena trimming, madvise) and the next batch faults every page in again: ~25-30k
 * page faults per GiB, 6-8% of the relay's and the kubelet's CPU.  A pool keeps a few buffers of
 * one size for the session: ck_bufpool_get hands out one (recycled or new), ck_bufpool_release
 * (any thread, e.g. httpd's I/O thread when the bytes are sent) gives it back, and
 * ck_bufpool_close (the session's end) frees the idle ones; buffers still out are freed when
 * they come back, and the pool itself with the last of them.  So an idle process keeps nothing.
 */
#ifndef CK_BUFPOOL_H
#define CK_BUFPOOL_H

#include <stddef.h>

typedef struct ck_bufpool ck_bufpool;

/* Buffers of `size` bytes; at most `keep` idle ones are kept. */
ck_bufpool *ck_bufpool_new(size_t size, int keep);
size_t ck_bufpool_size(const ck_bufpool *p);
/* A buffer of ck_bufpool_size(p) bytes (never NULL). */
void *ck_bufpool_get(ck_bufpool *p);
/* Buffers handed out and not yet given back (a bound on the memory a session holds). */
int ck_bufpool_outstanding(ck_bufpool *p);
/* Give back a buffer from ck_bufpool_get (of any pool; thread-safe). */
void ck_bufpool_release(void *buf);
/* The owner lets go; p must not be used for ck_bufpool_get after this. */
void ck_bufpool_close(ck_bufpool *p);

#endif
