/* rawin.h - a socket's incoming bytes, read(2) in large pieces, handed out to a TLS BIO.
 *
 * The session threads that own a TLS socket themselves (the API server's exec/port-forward relay,
 * src/apiserver/podproxy.c, and the kubelet's session pump, src/streams/tunnel.c) give OpenSSL its
 * bytes through a BIO of their own: one read(2) per poll wake into `buf`, then OpenSSL takes them
 * from there.  No further read(2) is tried once one came back short (the socket was empty then;
 * poll says when it is not: the owner sets `may_read` again), so a wake costs one read, not one
 * per record.  The owner keeps the fd; this keeps the buffer.  No locking: one thread.
 */
#ifndef CK_LIB_RAWIN_H
#define CK_LIB_RAWIN_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/bio.h>

typedef struct ck_rawin {
    char *buf;              /* bytes read from the fd, not yet taken */
    size_t cap, off, len;
    bool may_read;          /* a read(2) may be tried: poll said readable */
    bool eof;               /* read(2) returned 0 */
    unsigned reads;         /* read(2) calls, for the owner's log line */
} ck_rawin;

/* cap bytes of buffer; may_read set (the first wake reads) */
void ck_rawin_init(ck_rawin *in, size_t cap);
void ck_rawin_free(ck_rawin *in);

/* Up to len bytes from fd through the buffer: >0 bytes copied, 0 at EOF, -1 if none now (EAGAIN,
 * or no read allowed this wake), -2 on a read error (errno set). */
int ck_rawin_take(ck_rawin *in, int fd, char *data, size_t len);

/* The body of a BIO read callback over ck_rawin_take: clears the BIO's retry flags, sets "retry
 * read" when nothing is there now; returns what BIO_meth_set_read's callback returns. */
int ck_rawin_bio_read(ck_rawin *in, int fd, BIO *b, char *data, int len);

/* The body of a BIO ctrl callback: FLUSH succeeds (the owner flushes its wire itself), EOF is
 * the socket's EOF with nothing left in the buffer, anything else 0. */
long ck_rawin_bio_ctrl(const ck_rawin *in, int cmd);

#endif
