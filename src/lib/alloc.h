/* alloc.h - which malloc every ckube process runs on, and handing freed memory back.
 *
 * The Makefile links one allocator into the binary (ALLOC=jemalloc, the default: Debian's
 * libjemalloc_pic.a, linked statically so that every malloc in the process, libc's and the
 * shared libraries' included, goes to it) or none (ALLOC=glibc; always so in sanitizer builds,
 * where ASan brings its own).  Its tuning is fixed in alloc.c, read before the first malloc.
 * docs/allocator.md says why.
 */
#ifndef CK_ALLOC_H
#define CK_ALLOC_H

/* "jemalloc 5.3.0-0-g54eaed1d8b56..." or "glibc 2.36": the allocator in use (static text). */
const char *ck_alloc_name(void);
/* Return the memory freed since the last call to the system now (after a burst), rather than
 * when the allocator's own decay gets to it. */
void ck_alloc_trim(void);

#endif
