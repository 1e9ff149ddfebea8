/* util.h - allocation that cannot silently fail, cleanup attributes, bounded buffers.
 *
 * Allocation: x*alloc abort the process with a message on OOM (as redis zmalloc does), so callers
 * never check for NULL.  Cleanup: `cleanup_free char *p = NULL;` frees on every return path.
 * Buffers fed by a peer are `ck_buf`s with a hard limit: appending past it fails (-1), never grows
 * forever.
 */
#ifndef CK_UTIL_H
#define CK_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdbool.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap);

void ck_freep(void *pp);
void ck_closep(int *fd);
void ck_fclosep(void *fp);
#define cleanup_free   __attribute__((cleanup(ck_freep)))
#define cleanup_close  __attribute__((cleanup(ck_closep)))
#define cleanup_fclose __attribute__((cleanup(ck_fclosep)))

/* Return p and set *pp to NULL: hand ownership out of a cleanup_ variable. */
#define steal_pointer(pp) ({ __typeof__(*(pp)) _p = *(pp); *(pp) = NULL; _p; })

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* A growable byte buffer with a hard upper limit (limit 0 = CK_BUF_DEFAULT_LIMIT).  Always
 * NUL-terminated so text can be used as a C string. */
#define CK_BUF_DEFAULT_LIMIT (64u * 1024 * 1024)
typedef struct ck_buf {
    char *data;
    size_t len, cap, limit;
} ck_buf;

void ck_buf_init(ck_buf *b, size_t limit);
int ck_buf_add(ck_buf *b, const void *p, size_t n);            /* -1 if over the limit */
int ck_buf_addstr(ck_buf *b, const char *s);
int ck_buf_printf(ck_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ck_buf_reset(ck_buf *b);
void ck_buf_free(ck_buf *b);
char *ck_buf_steal(ck_buf *b);                                  /* caller frees; b is reset */

/* Monotonic and wall clocks. */
int64_t ck_now_ns(void);      /* CLOCK_MONOTONIC */
int64_t ck_wall_ns(void);     /* CLOCK_REALTIME */
/* RFC 3339 UTC ("2026-11-25T16:50:52Z") of a wall time in seconds; out must hold 32 bytes. */
void ck_rfc3339(int64_t wall_sec, char out[32]);
int ck_parse_rfc3339(const char *s, int64_t *wall_sec);

/* Files: read a whole file (bounded), write atomically (tmp + fsync + rename). */
int ck_read_file(const char *path, size_t limit, char **out, size_t *len);
int ck_write_file_atomic(const char *path, const void *data, size_t len, int mode);
int ck_mkdir_p(const char *path, int mode);

/* UTF-8: valid means well-formed (no overlongs, surrogates or code points past U+10FFFF) as
 * jansson demands of every string it stores; sanitize copies s (caller frees) with each invalid
 * byte replaced by U+FFFD, as Go's encoding/json does when it writes a bad string. */
bool ck_utf8_valid(const char *s, size_t n);
char *ck_utf8_sanitize(const char *s);

/* Random bytes (getrandom) and a random lowercase-alphanumeric suffix / UUIDv4. */
void ck_random_bytes(void *p, size_t n);
void ck_uuid4(char out[37]);

#endif
